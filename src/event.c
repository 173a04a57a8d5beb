/*-------------------------------------------------------------------------
 *
 * event.c
 *	  Events as values of the SQL composite type ledger_ingest.event.
 *
 * A handler gets one value per event (or an array of them); a raw sink
 * gets the same fields, one per column (li_event_field in event.h).  Both
 * build them here, from the parsed ledger (ledger.h), so that a column of
 * a sink and the field of the event a handler sees are always the same
 * value.  The type's descriptor is looked up once per process: a worker
 * whose extension is re-created exits (worker.c), so it cannot go stale.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "event.h"

const char *const li_event_field_names[LI_EVENT_ARGS] = {
	"pipeline", "ledger", "ledger_hash", "ledger_time", "tx_index",
	"tx_hash", "event_index", "address", "topics", "data"
};

static TupleDesc event_tupdesc = NULL;

/*
 * li_type_tupdesc -- the blessed descriptor of composite type
 * ledger_ingest.<name>, copied into TopMemoryContext (for the caller to
 * keep; inside a transaction).
 */
TupleDesc
li_type_tupdesc(const char *name)
{
	Oid			nsp = get_namespace_oid(LI_SCHEMA, false);
	Oid			typoid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										 CStringGetDatum(name), ObjectIdGetDatum(nsp));
	MemoryContext old;
	TupleDesc	desc;

	if (!OidIsValid(typoid))
		elog(ERROR, "type ledger_ingest.%s does not exist", name);
	old = MemoryContextSwitchTo(TopMemoryContext);
	desc = lookup_rowtype_tupdesc_copy(typoid, -1);
	BlessTupleDesc(desc);
	MemoryContextSwitchTo(old);
	return desc;
}

/*
 * li_event_tupdesc -- the blessed descriptor of ledger_ingest.event, kept
 * for the process (the first call must be inside a transaction).
 */
TupleDesc
li_event_tupdesc(void)
{
	if (event_tupdesc == NULL)
		event_tupdesc = li_type_tupdesc("event");
	return event_tupdesc;
}

/*
 * li_event_datum -- the ledger_ingest.event value of event e of ledger l,
 * with args (NULL: the attribute is NULL), in the current memory context.
 */
Datum
li_event_datum(Datum pipeline, Datum ledger_hash, const LiLedger *l,
			   const LiEvent *e, Jsonb *args)
{
	Datum		values[LI_EVENT_NATTS];
	bool		nulls[LI_EVENT_NATTS];

	for (int f = 0; f < LI_EVENT_ARGS; f++)
		values[f] = li_event_field((LiEventField) f, pipeline, ledger_hash, l, e, &nulls[f]);
	values[LI_EVENT_ARGS] = PointerGetDatum(args);
	nulls[LI_EVENT_ARGS] = (args == NULL);
	return HeapTupleGetDatum(heap_form_tuple(li_event_tupdesc(), values, nulls));
}

/*
 * li_event_with_args -- a copy of the event value ev with its args
 * replaced (a revert handler registered by signature gets the journaled
 * event decoded again).
 */
Datum
li_event_with_args(Datum ev, Jsonb *args)
{
	HeapTupleHeader th = DatumGetHeapTupleHeader(ev);
	TupleDesc	desc = li_event_tupdesc();
	HeapTupleData tmp;
	Datum		values[LI_EVENT_NATTS];
	bool		nulls[LI_EVENT_NATTS];

	tmp.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tmp.t_self);
	tmp.t_tableOid = InvalidOid;
	tmp.t_data = th;
	heap_deform_tuple(&tmp, desc, values, nulls);
	values[LI_EVENT_ARGS] = PointerGetDatum(args);
	nulls[LI_EVENT_ARGS] = (args == NULL);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}
