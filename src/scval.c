/*-------------------------------------------------------------------------
 *
 * scval.c
 *	  SQL functions for Stellar ScVal decoding and strkeys.
 *
 * The decoding lives in scval_core.c (no PostgreSQL dependency, fuzzed on
 * its own; the forms are described in scval_core.h); this file turns its
 * errors into ereport()s and its JSON text into jsonb.  The SQL
 * declarations are in ledger_ingest--0.4--0.5.sql.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "scval_core.h"

PG_FUNCTION_INFO_V1(ledger_ingest_scval_to_json);
PG_FUNCTION_INFO_V1(ledger_ingest_scval_to_native);
PG_FUNCTION_INFO_V1(ledger_ingest_scval_symbol);
PG_FUNCTION_INFO_V1(ledger_ingest_strkey_encode);
PG_FUNCTION_INFO_V1(ledger_ingest_strkey_decode);

/*
 * The core's output buffer, reused across calls (copied into jsonb right
 * away); freed after an unusually large value.
 */
static LiAbiBuf scval_out;

#define SCVAL_OUT_KEEP	(1024 * 1024)

/* The XDR of one ScVal in the given form, as jsonb; raises 22P03. */
static Datum
scval_decode(bytea *xdr, LiScvalForm form)
{
	LiAbiError	err;
	LiAbiStatus st;
	char	   *json;
	Datum		d;

	st = li_scval_core_decode((const unsigned char *) VARDATA_ANY(xdr),
							  VARSIZE_ANY_EXHDR(xdr), form, &scval_out, &err);
	if (st == LI_ABI_ENOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("%s", err.message)));
	if (st != LI_ABI_OK)
		ereport(ERROR,
				(errcode(st == LI_ABI_ELIMIT ? ERRCODE_PROGRAM_LIMIT_EXCEEDED
						 : ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid ScVal: %s", err.message)));
	json = scval_out.data;
	if (GetDatabaseEncoding() != PG_UTF8)
		json = pg_any_to_server(json, (int) scval_out.len, PG_UTF8);
	d = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	if (scval_out.cap > SCVAL_OUT_KEEP)
		li_abi_buf_free(&scval_out);
	return d;
}

/*
 * scval_to_json(xdr bytea) RETURNS jsonb: one ScVal's XDR (exactly one
 * value) in the lossless tagged form of stellar-xdr-json ({"u32": 7},
 * {"symbol": "transfer"}, {"i128": "-5"}, ...).  Raises 22P03 naming the
 * byte and the path of the value at fault.
 */
Datum
ledger_ingest_scval_to_json(PG_FUNCTION_ARGS)
{
	return scval_decode(PG_GETARG_BYTEA_PP(0), LI_SCVAL_JSON);
}

/*
 * scval_to_native(xdr bytea) RETURNS jsonb: the same value in the form of
 * stellar-base's scValToNative (7, "transfer", -5, strkeys, objects for
 * maps whose keys allow it).  Raises as scval_to_json.
 */
Datum
ledger_ingest_scval_to_native(PG_FUNCTION_ARGS)
{
	return scval_decode(PG_GETARG_BYTEA_PP(0), LI_SCVAL_NATIVE);
}

/*
 * scval_symbol(symbol text) RETURNS bytea: the XDR of the ScVal symbol
 * (SCV_SYMBOL, the length, the characters, zero padding), what an event's
 * topic holds: for comparing topics with, as in add_handler's topic0.  A
 * symbol is 0 to 32 characters of [a-zA-Z0-9_] (CAP-46); raises 22023
 * naming the first character outside them.
 */
Datum
ledger_ingest_scval_symbol(PG_FUNCTION_ARGS)
{
	text	   *sym = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(sym);
	int			n = VARSIZE_ANY_EXHDR(sym);
	int			padded = (n + 3) & ~3;
	bytea	   *out;
	unsigned char *p;
	int			i;

	if (n > 32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a symbol has at most 32 characters, not %d", n)));
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
			  (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("character %d of the symbol is not one of a-z, A-Z, 0-9 and _", i + 1)));
	out = palloc0(VARHDRSZ + 8 + padded);
	SET_VARSIZE(out, VARHDRSZ + 8 + padded);
	p = (unsigned char *) VARDATA(out);
	p[3] = 15;					/* SCV_SYMBOL */
	p[7] = (unsigned char) n;
	memcpy(p + 8, s, n);
	PG_RETURN_BYTEA_P(out);
}

/*
 * strkey_encode(kind text, payload bytea) RETURNS text: the SEP-23 strkey
 * of a payload; kind is its first letter: 'G' account (32 bytes), 'M'
 * muxed account (the key then the 8-byte id, 40), 'C' contract (32), 'L'
 * liquidity pool (32), 'B' claimable balance (a 0 type byte then the hash,
 * 33), 'T' pre-auth transaction (32), 'X' sha256 hash (32).  Raises 22023
 * for another kind or a payload of the wrong length.
 */
Datum
ledger_ingest_strkey_encode(PG_FUNCTION_ARGS)
{
	text	   *kind = PG_GETARG_TEXT_PP(0);
	bytea	   *payload = PG_GETARG_BYTEA_PP(1);
	char		out[LI_STRKEY_MAX_LEN + 1];
	LiAbiError	err;

	if (VARSIZE_ANY_EXHDR(kind) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a strkey kind is one letter: G, M, C, L, B, T or X")));
	if (li_strkey_encode(*VARDATA_ANY(kind), (const unsigned char *) VARDATA_ANY(payload),
						 VARSIZE_ANY_EXHDR(payload), out, &err) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", err.message)));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * strkey_decode(strkey text) RETURNS bytea: the payload of a SEP-23
 * strkey of the kinds strkey_encode writes (its kind is its first letter).
 * Raises 22P02 naming the problem (alphabet, length, checksum, version).
 */
Datum
ledger_ingest_strkey_decode(PG_FUNCTION_ARGS)
{
	text	   *s = PG_GETARG_TEXT_PP(0);
	unsigned char payload[LI_STRKEY_MAX_PAYLOAD];
	size_t		n;
	char		kind;
	LiAbiError	err;
	bytea	   *out;

	if (li_strkey_decode(VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s), &kind, payload, &n,
						 &err) != LI_ABI_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid strkey: %s", err.message)));
	out = palloc(VARHDRSZ + n);
	SET_VARSIZE(out, VARHDRSZ + n);
	memcpy(VARDATA(out), payload, n);
	PG_RETURN_BYTEA_P(out);
}
