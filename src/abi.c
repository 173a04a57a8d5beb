/*-------------------------------------------------------------------------
 *
 * abi.c
 *	  SQL functions for Keccak-256 and Solidity ABI decoding, and the
 *	  event decoder the worker uses.
 *
 * The parsing and decoding live in abi_core.c (no PostgreSQL dependency,
 * fuzzed on its own); this file turns its errors into ereport()s and its
 * JSON text into jsonb.  Descriptors are malloc'd by the core; they are
 * tied to a memory context with a reset callback, so they are freed when
 * that context goes away, and never leak on error because the callback is
 * registered before the descriptor exists.
 *
 * The SQL declarations are in src/abi.sql.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "abi.h"
#include "abi_core.h"
#include "keccak.h"

PG_FUNCTION_INFO_V1(ledger_ingest_keccak256);
PG_FUNCTION_INFO_V1(ledger_ingest_event_topic);
PG_FUNCTION_INFO_V1(ledger_ingest_event_signature);
PG_FUNCTION_INFO_V1(ledger_ingest_abi_decode);
PG_FUNCTION_INFO_V1(ledger_ingest_decode_event);

/* A compiled descriptor owned by a memory context. */
typedef struct LiAbiHolder
{
	MemoryContextCallback cb;
	LiAbiDesc  *desc;
	bool		is_event;
	char	   *key;			/* signature text it was compiled from */
	int			keylen;
} LiAbiHolder;

/*
 * The output buffer of the core, reused across calls (its contents are
 * copied into jsonb right away); shrunk after an unusually large value.
 */
static LiAbiBuf abi_out;

#define ABI_OUT_KEEP	(1024 * 1024)

static void
abi_holder_free(void *arg)
{
	LiAbiHolder *h = (LiAbiHolder *) arg;

	li_abi_core_free(h->desc);
	h->desc = NULL;
}

/* Raises the error the core reported; "sig" (or NULL) goes in the detail. */
static void
abi_report(const LiAbiError *err, const char *sig)
{
	int			code;

	switch (err->status)
	{
		case LI_ABI_ESIGNATURE:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		case LI_ABI_EDATA:
			code = ERRCODE_INVALID_BINARY_REPRESENTATION;
			break;
		case LI_ABI_ELIMIT:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case LI_ABI_ENOMEM:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("%s", err->message)));
			return;
		default:
			code = ERRCODE_INTERNAL_ERROR;
			break;
	}
	/* name the signature when the message names an argument */
	if (sig != NULL && strncmp(err->message, "argument ", 9) == 0)
		ereport(ERROR,
				(errcode(code),
				 errmsg("%s", err->message),
				 errdetail("Decoding as %s.", sig)));
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", err->message)));
}

/*
 * Compiles "len" bytes of signature text into a holder allocated in cxt
 * (event: an event signature, else a type list).  Raises on error.
 */
static LiAbiHolder *
abi_compile(const char *text, int len, bool is_event, MemoryContext cxt)
{
	LiAbiHolder *h;
	LiAbiError	err;

	/* the callback first: the descriptor can then never leak */
	h = MemoryContextAllocZero(cxt, sizeof(LiAbiHolder));
	h->is_event = is_event;
	h->cb.func = abi_holder_free;
	h->cb.arg = h;
	MemoryContextRegisterResetCallback(cxt, &h->cb);
	if (is_event)
		h->desc = li_abi_core_compile_event(text, (size_t) len, &err);
	else
		h->desc = li_abi_core_compile_types(text, (size_t) len, &err);
	if (h->desc == NULL)
		abi_report(&err, NULL);
	return h;
}

/*
 * The descriptor for this call site's signature argument, cached in
 * fn_extra across calls (recompiled only when the text changes).
 */
static LiAbiDesc *
abi_cached(FunctionCallInfo fcinfo, text *sig, bool is_event)
{
	LiAbiHolder *h = (LiAbiHolder *) fcinfo->flinfo->fn_extra;
	const char *s = VARDATA_ANY(sig);
	int			len = VARSIZE_ANY_EXHDR(sig);

	if (h != NULL && h->desc != NULL && h->keylen == len &&
		memcmp(h->key, s, len) == 0)
		return h->desc;
	if (h == NULL)
	{
		/* compile before publishing the holder, so a failure leaves none */
		h = abi_compile(s, len, is_event, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = h;
	}
	else
	{
		LiAbiError	err;

		li_abi_core_free(h->desc);
		h->desc = NULL;
		if (h->key != NULL)
			pfree(h->key);
		h->key = NULL;
		h->keylen = 0;
		if (is_event)
			h->desc = li_abi_core_compile_event(s, (size_t) len, &err);
		else
			h->desc = li_abi_core_compile_types(s, (size_t) len, &err);
		if (h->desc == NULL)
			abi_report(&err, NULL);
	}
	h->key = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, len > 0 ? len : 1);
	memcpy(h->key, s, len);
	h->keylen = len;
	return h->desc;
}

/* The core's JSON text (UTF-8) in abi_out as jsonb. */
static Jsonb *
abi_out_jsonb(void)
{
	char	   *json = abi_out.data;
	Datum		d;

	if (GetDatabaseEncoding() != PG_UTF8)
		json = pg_any_to_server(json, (int) abi_out.len, PG_UTF8);
	d = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	if (abi_out.cap > ABI_OUT_KEEP)
		li_abi_buf_free(&abi_out);
	return DatumGetJsonbP(d);
}

static Jsonb *
abi_decode_event_jsonb(LiAbiDesc *desc, const uint8 (*topics)[32],
					   int ntopics, const uint8 *data, int len)
{
	LiAbiError	err;

	if (li_abi_core_decode_event(desc, topics, ntopics, data, (size_t) len,
								 &abi_out, &err) != LI_ABI_OK)
		abi_report(&err, li_abi_core_signature(desc));
	return abi_out_jsonb();
}

/*
 * li_abi_compile_event: see abi.h.  The returned pointer is the holder,
 * whose descriptor is freed by a reset callback of cxt.
 */
void *
li_abi_compile_event(const char *signature, MemoryContext cxt)
{
	return abi_compile(signature, (int) strlen(signature), true, cxt);
}

/* li_abi_event_ntopics: see abi.h */
int
li_abi_event_ntopics(void *desc)
{
	return li_abi_core_ntopics(((LiAbiHolder *) desc)->desc);
}

/* li_abi_event_topic0: see abi.h */
void
li_abi_event_topic0(void *desc, uint8 out[32])
{
	li_abi_core_topic0(((LiAbiHolder *) desc)->desc, out);
}

/* li_abi_try_decode_event_jsonb: see abi.h */
Jsonb *
li_abi_try_decode_event_jsonb(void *desc, const uint8 (*topics)[32], int ntopics,
							  const uint8 *data, int len, char **error)
{
	LiAbiDesc  *d = ((LiAbiHolder *) desc)->desc;
	LiAbiError	err;

	if (li_abi_core_decode_event(d, topics, ntopics, data, (size_t) len,
								 &abi_out, &err) != LI_ABI_OK)
	{
		if (err.status != LI_ABI_EDATA && err.status != LI_ABI_ELIMIT)
			abi_report(&err, li_abi_core_signature(d));
		*error = pstrdup(err.message);
		return NULL;
	}
	return abi_out_jsonb();
}

/* li_abi_event_signature: see abi.h */
const char *
li_abi_event_signature(void *desc)
{
	return li_abi_core_signature(((LiAbiHolder *) desc)->desc);
}

/* li_abi_decode_event_jsonb: see abi.h */
Jsonb *
li_abi_decode_event_jsonb(void *desc, const uint8 (*topics)[32], int ntopics,
						  const uint8 *data, int len)
{
	return abi_decode_event_jsonb(((LiAbiHolder *) desc)->desc, topics,
								  ntopics, data, len);
}

/*
 * ledger_ingest.keccak256(data bytea) RETURNS bytea
 *
 * Ethereum's Keccak-256 (original Keccak padding, not SHA3-256) of data:
 * 32 bytes.  keccak256('') = \xc5d24601...5d85a470.
 */
Datum
ledger_ingest_keccak256(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	bytea	   *out = palloc(VARHDRSZ + LI_KECCAK256_LEN);

	li_keccak256((const unsigned char *) VARDATA_ANY(in),
				 VARSIZE_ANY_EXHDR(in), (unsigned char *) VARDATA(out));
	SET_VARSIZE(out, VARHDRSZ + LI_KECCAK256_LEN);
	PG_RETURN_BYTEA_P(out);
}

/*
 * ledger_ingest.event_topic(signature text) RETURNS bytea
 *
 * topic0 of an event: keccak256 of its canonical signature, 32 bytes.
 * Accepts what event_signature accepts; raises invalid_parameter_value for
 * a bad signature.
 */
Datum
ledger_ingest_event_topic(PG_FUNCTION_ARGS)
{
	LiAbiDesc  *desc = abi_cached(fcinfo, PG_GETARG_TEXT_PP(0), true);
	bytea	   *out = palloc(VARHDRSZ + 32);

	li_abi_core_topic0(desc, (unsigned char *) VARDATA(out));
	SET_VARSIZE(out, VARHDRSZ + 32);
	PG_RETURN_BYTEA_P(out);
}

/*
 * ledger_ingest.event_signature(signature text) RETURNS text
 *
 * The canonical form of an event signature as used for topic0:
 * 'event Transfer(address indexed from, address indexed to, uint value)'
 * gives 'Transfer(address,address,uint256)'.  Raises
 * invalid_parameter_value for a bad signature (see abi_core.h).
 */
Datum
ledger_ingest_event_signature(PG_FUNCTION_ARGS)
{
	LiAbiDesc  *desc = abi_cached(fcinfo, PG_GETARG_TEXT_PP(0), true);

	PG_RETURN_TEXT_P(cstring_to_text(li_abi_core_signature(desc)));
}

/*
 * ledger_ingest.abi_decode(types text, data bytea) RETURNS jsonb
 *
 * Decodes data encoded as abi.encode(...) of the comma-separated type list
 * (e.g. 'uint256,string' or '(uint256,string)[]') into a jsonb array, one
 * element per type (representation: abi_core.h).  Raises
 * invalid_parameter_value for a bad type list and
 * invalid_binary_representation, naming the argument, for bad data.
 */
Datum
ledger_ingest_abi_decode(PG_FUNCTION_ARGS)
{
	LiAbiDesc  *desc = abi_cached(fcinfo, PG_GETARG_TEXT_PP(0), false);
	bytea	   *data = PG_GETARG_BYTEA_PP(1);
	LiAbiError	err;

	if (li_abi_core_decode(desc, (const unsigned char *) VARDATA_ANY(data),
						   VARSIZE_ANY_EXHDR(data), &abi_out, &err) != LI_ABI_OK)
		abi_report(&err, li_abi_core_signature(desc));
	PG_RETURN_JSONB_P(abi_out_jsonb());
}

/*
 * ledger_ingest.decode_event(signature text, topics bytea[], data bytea)
 *		RETURNS jsonb
 *
 * Decodes one log of the event into a jsonb object of its arguments
 * (representation: abi_core.h).  topics is the log's topic list (each 32
 * bytes, topics[1] = topic0 unless the event is anonymous); its length
 * and topic0 must match the signature.  Raises invalid_parameter_value for
 * a bad signature or topic array and invalid_binary_representation, naming
 * the argument, when topics or data are not a valid encoding.
 */
Datum
ledger_ingest_decode_event(PG_FUNCTION_ARGS)
{
	LiAbiDesc  *desc = abi_cached(fcinfo, PG_GETARG_TEXT_PP(0), true);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	bytea	   *data = PG_GETARG_BYTEA_PP(2);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	uint8		(*topics)[32];

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topics must be a one-dimensional array")));
	deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	topics = palloc(sizeof(*topics) * (n > 0 ? n : 1));
	for (i = 0; i < n; i++)
	{
		bytea	   *t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("topic %d is NULL", i + 1)));
		t = DatumGetByteaPP(elems[i]);
		if (VARSIZE_ANY_EXHDR(t) != 32)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("topic %d is %d bytes long, not 32", i + 1,
							(int) VARSIZE_ANY_EXHDR(t))));
		memcpy(topics[i], VARDATA_ANY(t), 32);
	}
	PG_RETURN_JSONB_P(abi_decode_event_jsonb(desc, (const uint8 (*)[32]) topics, n,
											 (const uint8 *) VARDATA_ANY(data),
											 VARSIZE_ANY_EXHDR(data)));
}

/* li_abi_event_core: see abi.h */
LiAbiDesc *
li_abi_event_core(void *desc)
{
	return ((LiAbiHolder *) desc)->desc;
}

/* li_abi_word_int64 -- the low 8 bytes of a 32-byte word, as two's complement */
int64
li_abi_word_int64(const unsigned char *w)
{
	uint64		v = 0;

	for (int i = 24; i < 32; i++)
		v = (v << 8) | w[i];
	return (int64) v;
}

/*
 * li_abi_word_numeric -- a 32-byte big-endian word as a numeric: unsigned,
 * or two's complement when is_signed
 */
Datum
li_abi_word_numeric(const unsigned char *w, bool is_signed)
{
	char		dec[LI_ABI_DECIMAL_MAX];
	unsigned char mag[32];
	bool		neg = is_signed && (w[0] & 0x80);
	int			k = 0;

	/* most values fit in 63 bits: no decimal text in between */
	while (k < 24 && w[k] == (neg ? 0xff : 0x00))
		k++;
	if (k == 24 && ((w[24] & 0x80) != 0) == neg)
		return NumericGetDatum(int64_to_numeric(li_abi_word_int64(w)));
	if (neg)
	{
		int			carry = 1;

		for (int i = 32; i-- > 0;)
		{
			unsigned	v = (unsigned) (unsigned char) ~w[i] + (unsigned) carry;

			mag[i] = (unsigned char) v;
			carry = v > 0xff;
		}
		w = mag;
	}
	(void) li_abi_decimal(w, neg, dec);
	return DirectFunctionCall3(numeric_in, CStringGetDatum(dec), ObjectIdGetDatum(InvalidOid),
							   Int32GetDatum(-1));
}
