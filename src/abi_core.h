/*-------------------------------------------------------------------------
 *
 * abi_core.h
 *	  Solidity ABI signatures and decoding, without PostgreSQL.
 *
 * Pure C99 (plus keccak.c and nettle), so that the same code runs inside
 * the server (abi.c wraps it) and under libFuzzer (test/fuzz/abi_fuzz.c).
 * Follows the Solidity "Contract ABI Specification"
 * (docs.soliditylang.org/en/latest/abi-spec.html): head/tail encoding,
 * offsets relative to the start of the enclosing tuple, events with
 * indexed arguments in topics.
 *
 * Usage: compile a signature once into a descriptor, decode many times:
 *
 *		LiAbiError	err;
 *		LiAbiBuf	out = {0};
 *		LiAbiDesc  *d = li_abi_core_compile_event(sig, strlen(sig), &err);
 *		if (d == NULL) ... err.message ...
 *		if (li_abi_core_decode_event(d, topics, ntopics, data, len, &out, &err)
 *			!= LI_ABI_OK) ... err.message ...
 *		... out.data (NUL-terminated JSON text, out.len bytes) ...
 *		li_abi_buf_free(&out);
 *		li_abi_core_free(d);
 *
 * Signatures accepted (what users paste): "event Transfer(address indexed
 * from, address indexed to, uint256 value);", "Transfer(address,address,
 * uint256)", with or without "event", names, "indexed", a trailing
 * "anonymous" or ";", any whitespace.  Types: address, bool, string, bytes,
 * bytes1..bytes32 (and "byte" = bytes1), uint8..uint256 and int8..int256 in
 * steps of 8 ("uint" = uint256, "int" = int256), tuples "(T1,T2 name,...)"
 * (optionally written "tuple(...)"), fixed arrays T[k] (k >= 1) and dynamic
 * arrays T[], nested to any depth up to LI_ABI_MAX_DEPTH.  Solidity data
 * locations (memory, calldata, storage) after a type are ignored.  Not
 * supported: fixed/ufixed and function types, empty tuples.
 *
 * JSON representation of decoded values (UTF-8 text):
 *	- uintN, intN: JSON numbers, exact decimal (negative with '-'); no
 *	  exponent, no quotes, any magnitude (jsonb stores them as numeric).
 *	- bool: true / false.
 *	- address: string "0x" + 40 lowercase hex digits.
 *	- bytesN, bytes: string "0x" + lowercase hex ("0x" when empty).
 *	- string: JSON string; must be valid UTF-8 without NUL bytes.
 *	- T[k], T[]: JSON arrays.
 *	- tuples: a JSON object keyed by component names when EVERY component
 *	  has a name, otherwise a JSON array in component order.
 *	- events: an object keyed by argument name, in declaration order;
 *	  unnamed arguments are keyed "arg<i>", i being the argument's position
 *	  (0-based, counting all arguments).  An indexed argument of a value
 *	  type (uintN, intN, address, bool, bytesN) is decoded from its topic;
 *	  an indexed string, bytes, array or tuple is only present as its topic
 *	  (the keccak-256 of its encoding, as the ABI specifies), written as a
 *	  "0x" + 64 hex digit string.
 *	- a type list ("uint256,string"): a JSON array, one element per type.
 *
 * Validation is strict: every word must be canonically encoded (zero high
 * bytes of address and uintN, sign extension of intN, bool 0 or 1, zero
 * trailing bytes of bytesN, zero padding after bytes/string contents, which
 * must be present), offsets and lengths must stay inside the data, and
 * strings must be valid UTF-8 without NUL.  Trailing data not reached by
 * any offset is allowed.  Errors name the argument, with a path into
 * arrays and tuples: 'argument "pairs[2].name": ...'.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_ABI_CORE_H
#define LI_ABI_CORE_H

#include <stddef.h>

/* limits against hostile signatures and data */
#define LI_ABI_MAX_SIGNATURE	16384	/* bytes of signature text */
#define LI_ABI_MAX_DEPTH		32		/* nested tuple/array levels */
#define LI_ABI_MAX_NODES		4096	/* types + parameters in a signature */
#define LI_ABI_MAX_STATIC		((size_t) 1 << 30)	/* static encoding size */
#define LI_ABI_DEFAULT_MAX_OUTPUT	((size_t) 64 << 20) /* JSON text bytes */

typedef enum LiAbiStatus
{
	LI_ABI_OK = 0,
	LI_ABI_ESIGNATURE,			/* bad signature or type list */
	LI_ABI_EDATA,				/* data or topics not a valid encoding */
	LI_ABI_ELIMIT,				/* output larger than LiAbiBuf.max */
	LI_ABI_ENOMEM				/* malloc failed */
} LiAbiStatus;

typedef struct LiAbiError
{
	LiAbiStatus status;
	char		message[256];	/* NUL-terminated, no trailing period */
} LiAbiError;

/*
 * Growable output buffer.  Zero-initialise it; "max" caps the JSON text
 * length (0: LI_ABI_DEFAULT_MAX_OUTPUT).  A buffer may be reused across
 * decodes (each decode starts at len 0); free it with li_abi_buf_free().
 * After a successful decode data[len] is a NUL.
 */
typedef struct LiAbiBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		max;
} LiAbiBuf;

typedef struct LiAbiDesc LiAbiDesc;

/*
 * li_abi_core_compile_event: compiles an event signature (len bytes of
 * text, need not be NUL-terminated) into a descriptor owned by the caller
 * (free with li_abi_core_free).  Returns NULL with err set (status
 * LI_ABI_ESIGNATURE or LI_ABI_ENOMEM) on error.
 */
extern LiAbiDesc *li_abi_core_compile_event(const char *sig, size_t len,
											LiAbiError *err);

/*
 * li_abi_core_compile_types: compiles a comma-separated type list such as
 * "uint256,string" or "(uint256,string)[]" (names allowed, may be empty).
 * Same ownership and errors as li_abi_core_compile_event.
 */
extern LiAbiDesc *li_abi_core_compile_types(const char *types, size_t len,
											LiAbiError *err);

/* li_abi_core_free: frees a descriptor (NULL is allowed). */
extern void li_abi_core_free(LiAbiDesc *desc);

/*
 * li_abi_core_signature: the canonical form, NUL-terminated, owned by the
 * descriptor: "Transfer(address,address,uint256)" for an event,
 * "uint256,(uint256,string)[]" for a type list.
 */
extern const char *li_abi_core_signature(const LiAbiDesc *desc);

/* li_abi_core_topic0: keccak256 of the canonical event signature. */
extern void li_abi_core_topic0(const LiAbiDesc *desc, unsigned char out[32]);

/* li_abi_core_anonymous: 1 for an "anonymous" event (no topic0), else 0. */
extern int	li_abi_core_anonymous(const LiAbiDesc *desc);

/*
 * li_abi_core_ntopics: the exact number of topics an event's logs carry
 * (indexed arguments, plus topic0 unless anonymous).
 */
extern int	li_abi_core_ntopics(const LiAbiDesc *desc);

/*
 * li_abi_core_decode_event: decodes one log of an event descriptor:
 * "ntopics" 32-byte topics (topics[0] is topic0 unless the event is
 * anonymous; it must equal the descriptor's topic0) and "len" bytes of
 * data, into a JSON object in "out" (see the representation above).
 * Returns LI_ABI_OK, or LI_ABI_EDATA / LI_ABI_ELIMIT / LI_ABI_ENOMEM with
 * err set (LI_ABI_ESIGNATURE if desc is a type list).
 */
extern LiAbiStatus li_abi_core_decode_event(const LiAbiDesc *desc,
											const unsigned char (*topics)[32],
											int ntopics,
											const unsigned char *data,
											size_t len,
											LiAbiBuf *out, LiAbiError *err);

/*
 * li_abi_core_decode: decodes "len" bytes of data encoded as the tuple of
 * a type-list descriptor (as abi.encode(...) produces) into a JSON array
 * in "out".  Returns as li_abi_core_decode_event.
 */
extern LiAbiStatus li_abi_core_decode(const LiAbiDesc *desc,
									  const unsigned char *data, size_t len,
									  LiAbiBuf *out, LiAbiError *err);

/*
 * li_abi_core_check_event: li_abi_core_decode_event's checks, writing
 * nothing (no output limit applies).  Returns LI_ABI_OK or the status
 * li_abi_core_decode_event would return, with err set.
 */
extern LiAbiStatus li_abi_core_check_event(const LiAbiDesc *desc,
										   const unsigned char (*topics)[32],
										   int ntopics,
										   const unsigned char *data,
										   size_t len, LiAbiError *err);

/* what a top-level event argument holds, as li_abi_core_value gives it */
typedef enum LiAbiValueKind
{
	LI_ABI_V_UINT,				/* a 32-byte big-endian word, bits wide */
	LI_ABI_V_INT,				/* the same, two's complement */
	LI_ABI_V_ADDRESS,			/* a word, the address in its last 20 bytes */
	LI_ABI_V_BOOL,				/* a word, 0 or 1 */
	LI_ABI_V_FIXEDBYTES,		/* a word, bits = N of bytesN, left-aligned */
	LI_ABI_V_BYTES,				/* the contents */
	LI_ABI_V_STRING,			/* the contents: UTF-8, no NUL */
	LI_ABI_V_HASH,				/* an indexed dynamic value: its keccak256 topic */
	LI_ABI_V_COMPOSITE			/* an array or tuple (not given by li_abi_core_value) */
} LiAbiValueKind;

typedef struct LiAbiParamInfo
{
	const char *name;			/* NULL when unnamed */
	LiAbiValueKind kind;
	unsigned	bits;			/* uintN/intN: N; bytesN: N */
	int			indexed;
} LiAbiParamInfo;

typedef struct LiAbiValue
{
	const unsigned char *p;
	size_t		len;			/* 32 for a word or a hash */
} LiAbiValue;

/* li_abi_core_nparams: an event's number of arguments. */
extern size_t li_abi_core_nparams(const LiAbiDesc *desc);

/* li_abi_core_param: argument i's name, kind and width. */
extern void li_abi_core_param(const LiAbiDesc *desc, size_t i, LiAbiParamInfo *info);

/*
 * li_abi_core_value: where argument i (not LI_ABI_V_COMPOSITE) of a log
 * lies: its topic, its head word in data, or a dynamic value's contents.
 * Only for a log li_abi_core_check_event accepted.
 */
extern void li_abi_core_value(const LiAbiDesc *desc, size_t i,
							  const unsigned char (*topics)[32],
							  const unsigned char *data, LiAbiValue *v);

/* li_abi_buf_free: releases a buffer's memory and zeroes it (keeps max). */
extern void li_abi_buf_free(LiAbiBuf *buf);

/*
 * li_abi_buf_grow: makes room in buf for "n" more bytes plus a NUL.
 * Returns LI_ABI_OK, or LI_ABI_ELIMIT (len + n over max) / LI_ABI_ENOMEM,
 * which the caller reports.  Shared with scval_core.c.
 */
extern LiAbiStatus li_abi_buf_grow(LiAbiBuf *buf, size_t n);

/*
 * li_abi_decimal: writes the 256-bit big-endian unsigned integer w (32
 * bytes) in decimal, with a leading '-' when neg, NUL-terminated, into out
 * (LI_ABI_DECIMAL_MAX bytes); returns its length.  Shared with
 * scval_core.c.
 */
#define LI_ABI_DECIMAL_MAX	84
extern size_t li_abi_decimal(const unsigned char *w, int neg, char *out);

#endif							/* LI_ABI_CORE_H */
