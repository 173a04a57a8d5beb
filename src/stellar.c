/*-------------------------------------------------------------------------
 *
 * stellar.c
 *	  SQL functions for Stellar ledger headers and event ids.
 *
 * The parsing lives in stellar_core.c (no PostgreSQL dependency); this
 * file turns its errors into ereport()s and its results into SQL values.
 * The SQL declarations are in ledger_ingest--0.4--0.5.sql.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ledger.h"
#include "stellar_core.h"

PG_FUNCTION_INFO_V1(ledger_ingest_stellar_ledger_header);
PG_FUNCTION_INFO_V1(ledger_ingest_stellar_event_id);
PG_FUNCTION_INFO_V1(ledger_ingest_stellar_event_position);

/*
 * stellar_ledger_header(header_xdr bytea, OUT sequence bigint, OUT hash
 * bytea, OUT previous_ledger_hash bytea, OUT close_time timestamptz, OUT
 * protocol_version integer): the fields of a LedgerHeader's XDR, or of a
 * LedgerHeaderHistoryEntry's (getLedgers' headerXdr, whose hash must be
 * its header's), hash = the SHA-256 of the LedgerHeader XDR.  Raises 22P03
 * naming the field and the byte.
 */
Datum
ledger_ingest_stellar_ledger_header(PG_FUNCTION_ARGS)
{
	bytea	   *xdr = PG_GETARG_BYTEA_PP(0);
	LiStellarHeader h;
	LiAbiError	err;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (li_stellar_parse_header((const unsigned char *) VARDATA_ANY(xdr), VARSIZE_ANY_EXHDR(xdr),
								&h, &err) != LI_ABI_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid Stellar ledger header: %s", err.message)));
	if (h.close_time > (uint64) (PG_INT64_MAX / USECS_PER_SEC))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("invalid Stellar ledger header: closeTime %llu is out of range",
						(unsigned long long) h.close_time)));
	values[0] = Int64GetDatum((int64) h.sequence);
	values[1] = PointerGetDatum(li_bytes_to_bytea(h.hash, 32));
	values[2] = PointerGetDatum(li_bytes_to_bytea(h.previous_hash, 32));
	values[3] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) h.close_time));
	values[4] = Int32GetDatum((int32) h.protocol_version);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * stellar_event_id(ledger bigint, tx_index integer, event_index integer)
 * RETURNS text: the getEvents id of a position of a Stellar pipeline (see
 * stellar_core.h: the TOID ledger << 32 | tx_index << 12 | operation in 19
 * digits, the index in 10, event_index being operation << 19 | index):
 * stellar_event_id(63092996, 3, 1 << 19) = '0270982354426671105-0000000000'.
 * Raises 22003 for a ledger outside 0 to 2^31 - 1, a tx_index outside 0 to
 * 2^20 - 1 or a negative event_index.
 */
Datum
ledger_ingest_stellar_event_id(PG_FUNCTION_ARGS)
{
	char		id[LI_STELLAR_EVENT_ID_LEN + 1];
	LiAbiError	err;

	if (li_stellar_event_id(PG_GETARG_INT64(0), PG_GETARG_INT32(1), PG_GETARG_INT32(2),
							id, &err) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s", err.message)));
	PG_RETURN_TEXT_P(cstring_to_text(id));
}

/*
 * stellar_event_position(id text) RETURNS ledger_ingest.position: the
 * position (ledger, tx_index, event_index) of a getEvents id; the inverse
 * of stellar_event_id.  Raises 22P02 for text that is not an event id.
 */
Datum
ledger_ingest_stellar_event_position(PG_FUNCTION_ARGS)
{
	text	   *id = PG_GETARG_TEXT_PP(0);
	int64_t		ledger;
	int32_t		tx_index;
	int32_t		event_index;
	LiAbiError	err;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (li_stellar_event_position(VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id), &ledger, &tx_index,
								  &event_index, &err) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Stellar event id \"%s\": %s", text_to_cstring(id), err.message)));
	values[0] = Int64GetDatum(ledger);
	values[1] = Int32GetDatum(tx_index);
	values[2] = Int32GetDatum(event_index);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
