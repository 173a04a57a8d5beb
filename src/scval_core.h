/*-------------------------------------------------------------------------
 *
 * scval_core.h
 *	  Stellar ScVal decoding and strkeys, without PostgreSQL.
 *
 * Pure C99 (it shares abi_core.c's output buffer and decimal writer), so
 * that the same code runs inside the server (scval.c wraps it) and under
 * libFuzzer (test/fuzz/scval_fuzz.c).
 *
 * An ScVal is the value type of Soroban contract events (topics and data)
 * and contract storage, in XDR (RFC 4506) as defined in stellar-xdr's
 * Stellar-contract.x (SCVal, SCAddress, SCError, SCContractInstance, the
 * 128- and 256-bit parts) of the current protocol (23): every arm of SCVal
 * and of SCAddress is decoded.  Decoding is strict: the value must take
 * exactly the given bytes (no trailing bytes), every discriminant must be a
 * defined one, bool and optional flags 0 or 1, lengths inside the data,
 * symbols at most 32 bytes, padding bytes zero, nesting at most
 * LI_SCVAL_MAX_DEPTH vec, map and contract instance levels.  Errors name
 * the byte offset and the path of the value ("vec[2].map[0].key").
 *
 * Two JSON forms (UTF-8 text, one value):
 *
 * LI_SCVAL_JSON, the lossless tagged form of stellar-xdr's serde (what
 * @stellar/stellar-xdr-json, stellar-rpc's xdrFormat "json" and
 * stellar-etl write): "void", {"bool": true}, {"u32": 7}, {"i32": -7},
 * {"u64": "7"} (u64, i64, timepoint, duration, u128, i128, u256, i256:
 * decimal strings), {"bytes": "<hex>"}, {"string": "..."} and
 * {"symbol": "..."} (bytes escaped as Rust's escape_bytes does: printable
 * ASCII as is, \\ \0 \t \n \r, \xNN otherwise), {"vec": [...] or null},
 * {"map": [{"key": .., "val": ..}, ...] or null}, {"address": "<strkey>"},
 * {"error": {"contract": 7}} or {"error": {"<type>": "<code>"}},
 * {"contract_instance": {"executable": "stellar_asset" or {"wasm":
 * "<hex>"}, "storage": map or null}}, "ledger_key_contract_instance",
 * {"ledger_key_nonce": {"nonce": "<i64>"}}.
 *
 * LI_SCVAL_NATIVE, the convenient form of @stellar/stellar-base's
 * scValToNative: void null; bool; every integer a JSON number, exact (any
 * size); bytes a hex string; string and symbol the text, decoded from
 * UTF-8 as TextDecoder does (each invalid sequence one U+FFFD) and NUL as
 * U+FFFD (PostgreSQL text cannot hold it); vec an array (a null vec []);
 * map an object (a null map {}) when every key is a bool, integer, string,
 * symbol, address or void (keys written as JavaScript would: "true", "7",
 * "null"; of equal keys the last wins), otherwise an array of [key, value]
 * pairs; address the strkey; error {"type": "contract", "code": n} or
 * {"type": "system", "code": n, "value": "scecArithDomain"}.  Three arms
 * scValToNative leaves as XDR objects are written as in the tagged form
 * with native contents: {"executable": .., "storage": {...}},
 * "ledger_key_contract_instance", {"nonce": n}.
 *
 * Strkeys (SEP-23): base32 (RFC 4648, no padding) of a version byte, the
 * payload and a CRC16-XModem checksum (little-endian).  Kinds by their
 * first letter: G account (ed25519 public key, 32 bytes), M muxed account
 * (ed25519 key then the 64-bit id, big-endian: 40 bytes), C contract (32),
 * L liquidity pool (32), B claimable balance (a type byte, 0, then the 32
 * byte hash: 33), T pre-auth transaction (32), X sha256 hash (32).  Secret
 * seeds (S) and signed payloads (P) are not handled.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_SCVAL_CORE_H
#define LI_SCVAL_CORE_H

#include <stddef.h>

#include "abi_core.h"

#define LI_SCVAL_MAX_DEPTH	100		/* nested vec, map, contract instance: the Soroban host's limit */
#define LI_STRKEY_MAX_PAYLOAD	40
#define LI_STRKEY_MAX_LEN	69		/* characters of an M strkey */

typedef enum LiScvalForm
{
	LI_SCVAL_JSON,				/* the tagged form */
	LI_SCVAL_NATIVE				/* the scValToNative form */
} LiScvalForm;

/*
 * li_scval_core_decode: decodes the XDR of one ScVal ("len" bytes, exactly
 * one value) into JSON text in "out" in the given form (see above).
 * Returns LI_ABI_OK, or LI_ABI_EDATA (not one valid ScVal), LI_ABI_ELIMIT
 * (output over out->max), LI_ABI_ENOMEM, with err set.
 */
extern LiAbiStatus li_scval_core_decode(const unsigned char *xdr, size_t len,
										LiScvalForm form, LiAbiBuf *out,
										LiAbiError *err);

/*
 * li_strkey_payload_len: the payload length of a strkey kind ('G', 'M',
 * 'C', 'L', 'B', 'T', 'X'), or 0 for any other character.
 */
extern size_t li_strkey_payload_len(char kind);

/*
 * li_strkey_encode: the strkey of kind (see li_strkey_payload_len) for
 * "n" payload bytes, NUL-terminated into out (LI_STRKEY_MAX_LEN + 1
 * bytes).  Returns its length, or 0 with err set (LI_ABI_EDATA) for an
 * unknown kind, a payload of the wrong length, or a claimable balance whose
 * type byte is not 0.
 */
extern size_t li_strkey_encode(char kind, const unsigned char *payload,
							   size_t n, char *out, LiAbiError *err);

/*
 * li_strkey_decode: the payload of the strkey s ("n" characters) into
 * payload (LI_STRKEY_MAX_PAYLOAD bytes), its length into *plen, its kind
 * into *kind.  Returns LI_ABI_OK, or LI_ABI_EDATA with err naming the
 * problem: a character outside the base32 alphabet (upper case), a length
 * no strkey has, non-zero unused bits, an unknown version byte, a payload
 * of the wrong length for its kind, a checksum mismatch.
 */
extern LiAbiStatus li_strkey_decode(const char *s, size_t n, char *kind,
									unsigned char *payload, size_t *plen,
									LiAbiError *err);

#endif							/* LI_SCVAL_CORE_H */
