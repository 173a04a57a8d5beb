/*-------------------------------------------------------------------------
 *
 * apply.c
 *	  Apply fetched ledgers in short transactions.
 *
 * Each apply transaction, in this order:
 *	1. moves the cursor with a compare-and-swap: UPDATE ... WHERE the cursor
 *	   is still at the position this worker read.  No row updated means the
 *	   cursor moved (cursor_cas, rewind): the transaction is rolled back and
 *	   the worker re-reads the cursor.  The updated row stays locked until
 *	   commit, so a concurrent cursor_cas waits and then sees the new cursor;
 *	2. calls the matching handlers for every event, in (ledger, tx_index,
 *	   event_index) order and registration order, directly through the
 *	   function manager, as the pipeline owner in a security-restricted
 *	   operation; set-based handlers once with all their events; then the
 *	   raw sinks (sink.c);
 *	3. records the headers of the ledgers it completes and deletes their
 *	   inbox documents;
 *	4. queues one NOTIFY and the shared-memory publication of the new cursor
 *	   (publish.c), then commits.
 * All of it commits or none of it does.  No network I/O or sleep happens
 * while the transaction is open: the ledgers were fetched before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "abi.h"
#include "ledger_ingest.h"

LiApplyContext li_apply_ctx;

/* measured apply cost, for sizing "batch" transactions by batch_max_ms */
static double us_per_event = 0.0;
static double us_per_ledger = 0.0;

static SPIPlanPtr cas_plan = NULL;
static SPIPlanPtr header_plan = NULL;
static SPIPlanPtr inbox_delete_plan = NULL;
static SPIPlanPtr prune_plan = NULL;
static SPIPlanPtr event_journal_plan = NULL;
static SPIPlanPtr event_prune_plan = NULL;
static SPIPlanPtr revert_cas_plan = NULL;
static SPIPlanPtr decode_error_plan = NULL;
static TupleDesc event_tupdesc = NULL;

/* One transaction's share of a ledger: events [first, last). */
typedef struct Segment
{
	LiLedger   *ledger;
	int			first;
	int			last;
} Segment;

static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/* Prepare the internal statements once per worker (inside a transaction). */
static void
prepare_internal_plans(void)
{
	if (cas_plan == NULL)
	{
		Oid			types[10] = {TEXTOID, INT8OID, BYTEAOID, INT4OID, INT4OID,
		INT8OID, INT4OID, INT4OID, INT8OID, INT8OID};

		cas_plan = keep_plan(
							 "UPDATE ledger_ingest.cursor SET "
							 "ledger = $2, ledger_hash = $3, tx_index = $4, event_index = $5, "
							 "events_applied = events_applied OPERATOR(pg_catalog.+) $9, "
							 "ledgers_applied = ledgers_applied OPERATOR(pg_catalog.+) $10, "
							 "last_commit_at = pg_catalog.now() "
							 "WHERE pipeline OPERATOR(pg_catalog.=) $1 "
							 "AND ledger OPERATOR(pg_catalog.=) $6 "
							 "AND ((tx_index IS NULL AND $7 IS NULL) OR tx_index OPERATOR(pg_catalog.=) $7) "
							 "AND ((event_index IS NULL AND $8 IS NULL) OR event_index OPERATOR(pg_catalog.=) $8)",
							 10, types);
	}
	if (header_plan == NULL)
	{
		Oid			types[6] = {TEXTOID, INT8ARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID,
		TIMESTAMPTZARRAYOID, INT4ARRAYOID};

		header_plan = keep_plan(
								"INSERT INTO ledger_ingest.ledger AS l (pipeline, number, hash, parent_hash, time, events) "
								"SELECT $1, u.n, u.h, u.p, u.t, u.e "
								"FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), "
								"pg_catalog.unnest($5), pg_catalog.unnest($6)) AS u(n, h, p, t, e) "
								"ON CONFLICT (pipeline, number) DO UPDATE SET hash = excluded.hash, "
								"parent_hash = excluded.parent_hash, time = excluded.time, "
								"events = excluded.events, applied_at = pg_catalog.now()",
								6, types);
	}
	if (inbox_delete_plan == NULL)
	{
		Oid			types[2] = {INT8ARRAYOID, XIDARRAYOID};

		/* only the versions that were read (xmin): see record_headers */
		inbox_delete_plan = keep_plan(
									  "DELETE FROM ledger_ingest.inbox i "
									  "USING ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS r(id, x) "
									  "WHERE i.id OPERATOR(pg_catalog.=) r.id "
									  "AND i.xmin OPERATOR(pg_catalog.=) r.x",
									  2, types);
	}
	if (prune_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT8OID};

		prune_plan = keep_plan(
							   "DELETE FROM ledger_ingest.journal "
							   "WHERE pipeline OPERATOR(pg_catalog.=) $1 "
							   "AND ledger OPERATOR(pg_catalog.<=) $2",
							   2, types);
	}
	if (event_prune_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT8OID};

		event_prune_plan = keep_plan(
									 "DELETE FROM ledger_ingest.event_journal "
									 "WHERE pipeline OPERATOR(pg_catalog.=) $1 "
									 "AND ledger OPERATOR(pg_catalog.<=) $2",
									 2, types);
	}
	if (revert_cas_plan == NULL)
	{
		Oid			types[7] = {TEXTOID, INT8OID, BYTEAOID, INT4OID,
		INT8OID, INT4OID, INT4OID};

		revert_cas_plan = keep_plan(
									"UPDATE ledger_ingest.cursor SET "
									"ledger = $2, ledger_hash = $3, tx_index = NULL, event_index = NULL, "
									"reorgs = reorgs OPERATOR(pg_catalog.+) 1, last_reorg_depth = $4, "
									"last_reorg_at = pg_catalog.now(), last_commit_at = pg_catalog.now() "
									"WHERE pipeline OPERATOR(pg_catalog.=) $1 "
									"AND ledger OPERATOR(pg_catalog.=) $5 "
									"AND ((tx_index IS NULL AND $6 IS NULL) OR tx_index OPERATOR(pg_catalog.=) $6) "
									"AND ((event_index IS NULL AND $7 IS NULL) OR event_index OPERATOR(pg_catalog.=) $7) "
									"",
									7, types);
	}
	if (event_tupdesc == NULL)
	{
		Oid			nsp = get_namespace_oid(LI_SCHEMA, false);
		Oid			typoid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
											 CStringGetDatum("event"),
											 ObjectIdGetDatum(nsp));
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (!OidIsValid(typoid))
			elog(ERROR, "type ledger_ingest.event does not exist");
		event_tupdesc = lookup_rowtype_tupdesc_copy(typoid, -1);
		BlessTupleDesc(event_tupdesc);
		MemoryContextSwitchTo(old);
	}
	if (event_journal_plan == NULL)
	{
		Oid			types[3] = {TEXTOID, INT8OID, event_tupdesc->tdtypeid};

		event_journal_plan = keep_plan(
									   "INSERT INTO ledger_ingest.event_journal (pipeline, ledger, ev) "
									   "VALUES ($1, $2, $3)",
									   3, types);
	}
}

/*
 * The function-call info of a handler (or revert) function, set up on
 * first use in the pipeline's memory context: handlers are called directly
 * through the function manager, with no per-event parse, plan or executor
 * start.  Checks that the owner may execute it.
 */
static FmgrInfo *
handler_fn(LiPipeline *p, Oid funcoid, FmgrInfo **cache)
{
	if (*cache == NULL)
	{
		FmgrInfo   *fn;
		MemoryContext cxt = GetMemoryChunkContext(p->handlers);

		if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(funcoid)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("handler function %u no longer exists", funcoid)));
		if (pg_proc_aclcheck(funcoid, p->owner, ACL_EXECUTE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for function %s", format_procedure(funcoid))));
		fn = MemoryContextAllocZero(cxt, sizeof(FmgrInfo));
		fmgr_info_cxt(funcoid, fn, cxt);
		*cache = fn;
	}
	return *cache;
}

/*
 * Call fn(arg) as the pipeline owner, in a security-restricted operation,
 * as PostgreSQL runs index expressions and REFRESH MATERIALIZED VIEW for a
 * table owner: the handler cannot SET ROLE, create temporary objects or
 * leave a deferred trigger behind to fire later as the worker's superuser
 * (deferred triggers are fired here, where the restriction refuses them);
 * every setting it changes is undone when it returns.
 */
static void
call_as_owner(LiPipeline *p, FmgrInfo *fn, Datum arg)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	LOCAL_FCINFO(fcinfo, 1);

	InitFunctionCallInfoData(*fcinfo, fn, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = arg;
	fcinfo->args[0].isnull = false;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(p->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) FunctionCallInvoke(fcinfo);
	AfterTriggerFireDeferred();
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	/* what the handler did is visible to the next one */
	CommandCounterIncrement();
}

#define EVENT_NATTS 11

/* the events a set-based handler gets in one transaction */
typedef struct EventSet
{
	Datum	   *vals;			/* ledger_ingest.event values, in set_cxt */
	int			n;
	int			cap;
} EventSet;

/* Build the ledger_ingest.event value of one event, with args (or NULL). */
static Datum
make_event(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ledger_hash,
		   LiEvent *e, Jsonb *args)
{
	Datum		values[EVENT_NATTS];
	bool		nulls[EVENT_NATTS] = {false};
	HeapTuple	tup;

	values[0] = pipeline_text;
	values[1] = Int64GetDatum(l->number);
	values[2] = ledger_hash;
	values[3] = TimestampTzGetDatum(l->time);
	nulls[3] = TIMESTAMP_NOT_FINITE(l->time);
	values[4] = Int32GetDatum(e->tx_index);
	if (e->has_tx_hash)
		values[5] = PointerGetDatum(li_bytes_to_bytea(e->tx_hash, LI_HASH_LEN));
	else
		nulls[5] = true;
	values[6] = Int32GetDatum(e->event_index);
	values[7] = PointerGetDatum(li_bytes_to_bytea(e->address, LI_ADDRESS_LEN));
	values[8] = PointerGetDatum(li_topics_array(e));
	values[9] = PointerGetDatum(e->data);
	values[10] = PointerGetDatum(args);
	nulls[10] = (args == NULL);

	tup = heap_form_tuple(event_tupdesc, values, nulls);
	return HeapTupleGetDatum(tup);
}

/* A copy of event "ev" with its args replaced. */
static Datum
event_with_args(Datum ev, Jsonb *args)
{
	HeapTupleHeader th = DatumGetHeapTupleHeader(ev);
	HeapTupleData tmp;
	Datum		values[EVENT_NATTS];
	bool		nulls[EVENT_NATTS];

	tmp.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tmp.t_self);
	tmp.t_tableOid = InvalidOid;
	tmp.t_data = th;
	heap_deform_tuple(&tmp, event_tupdesc, values, nulls);
	values[10] = PointerGetDatum(args);
	nulls[10] = (args == NULL);
	return HeapTupleGetDatum(heap_form_tuple(event_tupdesc, values, nulls));
}

/*
 * Decode an event for a handler registered by signature.  A log that is
 * not a valid encoding of the event returns NULL with the decoder's
 * message in *error: any contract can emit one under a known topic0.
 */
static Jsonb *
decode_args(LiHandler *h, LiEvent *e, char **error)
{
	return li_abi_try_decode_event_jsonb(h->abi, (const uint8 (*)[32]) e->topics, e->ntopics,
										 (const uint8 *) VARDATA_ANY(e->data),
										 (int) VARSIZE_ANY_EXHDR(e->data), error);
}

/*
 * A log that handler h cannot decode.  With on_decode_error "fail" it is a
 * handler error (the transaction rolls back, retried up to max_retries);
 * by default the handler skips the event and the log is kept, with the
 * error, in ledger_ingest.decode_error, in the apply transaction (so it is
 * recorded exactly once, and a reorg that orphans the ledger forgets it).
 * "ev" is the event value without args.
 */
static void
decode_failed(LiPipeline *p, LiHandler *h, LiLedger *l, LiEvent *e, Datum ev,
			  const char *error)
{
	Datum		v[7];
	int			ret;

	if (p->opts.decode_error_fails || !p->sql_0_2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("%s", error),
				 errdetail("Decoding as %s.", li_abi_event_signature(h->abi))));
	if (decode_error_plan == NULL)
	{
		Oid			types[7] = {TEXTOID, INT8OID, INT4OID, INT4OID, TEXTOID, TEXTOID,
		event_tupdesc->tdtypeid};

		decode_error_plan = keep_plan(
									  "INSERT INTO ledger_ingest.decode_error "
									  "(pipeline, ledger, tx_index, event_index, handler, error, event) "
									  "VALUES ($1, $2, $3, $4, $5, $6, $7) "
									  "ON CONFLICT (pipeline, ledger, tx_index, event_index, handler) "
									  "DO UPDATE SET error = excluded.error, event = excluded.event, "
									  "recorded_at = excluded.recorded_at",
									  7, types);
	}
	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(l->number);
	v[2] = Int32GetDatum(e->tx_index);
	v[3] = Int32GetDatum(e->event_index);
	v[4] = CStringGetTextDatum(h->name);
	v[5] = CStringGetTextDatum(psprintf("%s (decoding as %s)", error, li_abi_event_signature(h->abi)));
	v[6] = ev;
	ret = SPI_execute_plan(decode_error_plan, v, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "recording a decode error failed: %s", SPI_result_code_string(ret));
}

/*
 * Does the handler want this event?  A handler registered by event
 * signature only takes logs with that event's number of topics: an ERC-721
 * Transfer (tokenId indexed, 4 topics) shares topic0 with ERC-20's (3).
 */
static bool
handler_matches(const LiHandler *h, const LiEvent *e)
{
	if (h->abi != NULL && e->ntopics != h->abi_ntopics)
		return false;
	if (h->has_address && memcmp(h->address, e->address, LI_ADDRESS_LEN) != 0)
		return false;
	if (h->has_topic0 &&
		(e->ntopics == 0 || memcmp(h->topic0, e->topics[0], LI_HASH_LEN) != 0))
		return false;
	return true;
}

/* errcontext for handler errors: which ledger, event and handler */
static void
apply_error_callback(void *arg)
{
	if (!li_apply_ctx.active)
		return;
	if (li_apply_ctx.handler && li_apply_ctx.event_index < 0)
		errcontext("ledger_ingest: applying the events of ledgers up to " INT64_FORMAT " with set-based handler %s",
				   li_apply_ctx.ledger, li_apply_ctx.handler);
	else if (li_apply_ctx.handler)
		errcontext("ledger_ingest: applying ledger " INT64_FORMAT ", tx_index %d, event_index %d with handler %s",
				   li_apply_ctx.ledger, li_apply_ctx.tx_index, li_apply_ctx.event_index,
				   li_apply_ctx.handler);
	else
		errcontext("ledger_ingest: applying ledger " INT64_FORMAT, li_apply_ctx.ledger);
}

/* Keep an event that has a revert handler, for a possible reorg. */
static void
journal_event(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ev, LiEvent *e)
{
	Datum		v[3];
	int			ret;
	bool		any = false;

	for (int i = 0; i < p->nhandlers && !any; i++)
		any = OidIsValid(p->handlers[i].revert_oid) && handler_matches(&p->handlers[i], e);
	if (!any)
		return;
	v[0] = pipeline_text;
	v[1] = Int64GetDatum(l->number);
	v[2] = ev;
	ret = SPI_execute_plan(event_journal_plan, v, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "journaling an event failed: %s", SPI_result_code_string(ret));
}

/*
 * Call the revert handlers for every journaled event above "fork", newest
 * event first and, per event, in reverse registration order.
 */
static void
run_revert_handlers(LiPipeline *p, int64 fork)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		v[2];
	int			ret;
	SPITupleTable *rows;
	uint64		nrows;

	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(fork);
	ret = SPI_execute_with_args("SELECT ev, (ev).address, (ev).topics, (ev).data FROM ledger_ingest.event_journal "
								"WHERE pipeline OPERATOR(pg_catalog.=) $1 AND ledger OPERATOR(pg_catalog.>) $2 "
								"ORDER BY (ev).ledger DESC, (ev).tx_index DESC, (ev).event_index DESC",
								2, types, v, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the event journal failed: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 r = 0; r < nrows; r++)
	{
		bool		isnull;
		Datum		ev = SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull);
		bytea	   *addr = DatumGetByteaPP(SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &isnull));
		ArrayType  *topics = DatumGetArrayTypeP(SPI_getbinval(rows->vals[r], rows->tupdesc, 3, &isnull));
		Datum	   *tv;
		int			nt;
		LiEvent		e;

		CHECK_FOR_INTERRUPTS();
		memset(&e, 0, sizeof(e));
		if (VARSIZE_ANY_EXHDR(addr) == LI_ADDRESS_LEN)
			memcpy(e.address, VARDATA_ANY(addr), LI_ADDRESS_LEN);
		deconstruct_array(topics, BYTEAOID, -1, false, TYPALIGN_INT, &tv, NULL, &nt);
		for (int t = 0; t < nt && t < LI_MAX_TOPICS; t++)
		{
			bytea	   *b = DatumGetByteaPP(tv[t]);

			if (VARSIZE_ANY_EXHDR(b) == LI_HASH_LEN)
				memcpy(e.topics[e.ntopics++], VARDATA_ANY(b), LI_HASH_LEN);
		}
		e.data = DatumGetByteaPP(SPI_getbinval(rows->vals[r], rows->tupdesc, 4, &isnull));
		for (int i = p->nhandlers - 1; i >= 0; i--)
		{
			LiHandler  *h = &p->handlers[i];
			Datum		hev = ev;

			if (!OidIsValid(h->revert_oid) || !handler_matches(h, &e))
				continue;
			if (h->abi != NULL)
			{
				char	   *error;
				Jsonb	   *args = decode_args(h, &e, &error);

				/* a log the handler skipped when it was applied */
				if (args == NULL)
					continue;
				hev = event_with_args(ev, args);
			}
			li_apply_ctx.handler = h->revert_name;
			call_as_owner(p, handler_fn(p, h->revert_oid, &h->revert_fn), hev);
			li_apply_ctx.handler = NULL;
		}
	}
}

/*
 * Run every matching handler for one event, as the pipeline owner.  The
 * event value is built once (and once per event signature, with its args
 * decoded, for handlers registered by signature).  Set-based handlers (that
 * take ledger_ingest.event[]) get the event appended to sets[i] and are
 * called once per transaction by run_set_handlers; when there are any, the
 * event values are built in set_cxt, so that the sets can point to them
 * instead of copying them.
 */
static void
run_handlers(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ledger_hash,
			 LiEvent *e, bool journal_events, EventSet *sets,
			 MemoryContext set_cxt)
{
	Datum		base = (Datum) 0;
	bool		have_base = false;
	void	   *last_abi = NULL;
	Datum		last_ev = (Datum) 0;
	MemoryContext old = CurrentMemoryContext;

	if (p->has_set_based)
		MemoryContextSwitchTo(set_cxt);

	li_apply_ctx.ledger = l->number;
	li_apply_ctx.tx_index = e->tx_index;
	li_apply_ctx.event_index = e->event_index;

	if (journal_events)
	{
		base = make_event(p, pipeline_text, l, ledger_hash, e, NULL);
		have_base = true;
		journal_event(p, pipeline_text, l, base, e);
	}
	for (int i = 0; i < p->nhandlers; i++)
	{
		LiHandler  *h = &p->handlers[i];
		Datum		ev;

		if (!handler_matches(h, e))
			continue;
		li_apply_ctx.handler = h->name;
		if (h->abi != NULL)
		{
			if (h->abi != last_abi)
			{
				char	   *error = NULL;
				Jsonb	   *args = decode_args(h, e, &error);

				last_abi = h->abi;
				last_ev = (Datum) 0;
				if (args != NULL)
					last_ev = make_event(p, pipeline_text, l, ledger_hash, e, args);
				else
				{
					if (!have_base)
					{
						base = make_event(p, pipeline_text, l, ledger_hash, e, NULL);
						have_base = true;
					}
					decode_failed(p, h, l, e, base, error);
				}
			}
			if (last_ev == (Datum) 0)
				continue;		/* skipped: it does not decode */
			ev = last_ev;
		}
		else
		{
			if (!have_base)
			{
				base = make_event(p, pipeline_text, l, ledger_hash, e, NULL);
				have_base = true;
			}
			ev = base;
		}
		if (h->set_based)
		{
			EventSet   *set = &sets[i];

			if (set->n == set->cap)
			{
				set->cap = Max(set->cap * 2, 256);
				set->vals = set->vals == NULL ?
					MemoryContextAlloc(set_cxt, sizeof(Datum) * set->cap) :
					repalloc(set->vals, sizeof(Datum) * set->cap);
			}
			set->vals[set->n++] = ev;
		}
		else
		{
			MemoryContextSwitchTo(old);
			call_as_owner(p, handler_fn(p, h->funcoid, &h->fn), ev);
			if (p->has_set_based)
				MemoryContextSwitchTo(set_cxt);
		}
	}
	MemoryContextSwitchTo(old);
	li_apply_ctx.handler = NULL;
}

/* Call each set-based handler once with the events it matched. */
static void
run_set_handlers(LiPipeline *p, EventSet *sets)
{
	for (int i = 0; i < p->nhandlers; i++)
	{
		LiHandler  *h = &p->handlers[i];

		if (sets[i].n == 0)
			continue;
		li_apply_ctx.handler = h->name;
		li_apply_ctx.event_index = -1;
		/* a composite type's alignment is double (heap tuples) */
		call_as_owner(p, handler_fn(p, h->funcoid, &h->fn),
					  PointerGetDatum(construct_array(sets[i].vals, sets[i].n,
													  event_tupdesc->tdtypeid, -1,
													  false, TYPALIGN_DOUBLE)));
	}
	li_apply_ctx.handler = NULL;
}

/* The CAS: returns false when the cursor is no longer where we read it. */
static bool
cursor_cas(LiPipeline *p, const LiPosition *newpos, const uint8 *newhash,
		   int64 nevents, int64 nledgers)
{
	Datum		v[10];
	char		n[10];
	int			ret;

	memset(n, ' ', sizeof(n));
	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(newpos->ledger);
	v[2] = PointerGetDatum(li_bytes_to_bytea(newhash, LI_HASH_LEN));
	v[3] = Int32GetDatum(newpos->tx_index);
	v[4] = Int32GetDatum(newpos->event_index);
	if (newpos->complete)
		n[3] = n[4] = 'n';
	v[5] = Int64GetDatum(p->cursor.ledger);
	v[6] = Int32GetDatum(p->cursor.tx_index);
	v[7] = Int32GetDatum(p->cursor.event_index);
	if (p->cursor.complete)
		n[6] = n[7] = 'n';
	v[8] = Int64GetDatum(nevents);
	v[9] = Int64GetDatum(nledgers);
	ret = SPI_execute_plan(cas_plan, v, n, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "cursor update failed: %s", SPI_result_code_string(ret));
	return SPI_processed == 1;
}

static void
record_headers(LiPipeline *p, Segment *segs, int nsegs)
{
	int			nl = 0;
	Datum	   *num = palloc(sizeof(Datum) * nsegs);
	Datum	   *hash = palloc(sizeof(Datum) * nsegs);
	Datum	   *parent = palloc(sizeof(Datum) * nsegs);
	bool	   *parent_null = palloc(sizeof(bool) * nsegs);
	Datum	   *tm = palloc(sizeof(Datum) * nsegs);
	bool	   *tm_null = palloc(sizeof(bool) * nsegs);
	Datum	   *evs = palloc(sizeof(Datum) * nsegs);
	Datum	   *ids = palloc(sizeof(Datum) * nsegs);
	Datum	   *xmins = palloc(sizeof(Datum) * nsegs);
	int			nids = 0;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		v[6];
	int			ret;

	for (int i = 0; i < nsegs; i++)
	{
		LiLedger   *l = segs[i].ledger;

		if (segs[i].last < l->nevents)
			continue;			/* not completed in this transaction */
		num[nl] = Int64GetDatum(l->number);
		hash[nl] = PointerGetDatum(li_bytes_to_bytea(l->hash, LI_HASH_LEN));
		parent[nl] = PointerGetDatum(li_bytes_to_bytea(l->parent_hash, LI_HASH_LEN));
		parent_null[nl] = !l->has_parent;
		tm[nl] = TimestampTzGetDatum(l->time);
		tm_null[nl] = TIMESTAMP_NOT_FINITE(l->time);
		evs[nl] = Int32GetDatum(l->nevents);
		nl++;
		if (l->inbox_id > 0)
		{
			xmins[nids] = TransactionIdGetDatum(l->inbox_xmin);
			ids[nids++] = Int64GetDatum(l->inbox_id);
		}
	}
	if (nl == 0)
		return;
	dims[0] = nl;
	v[0] = CStringGetTextDatum(p->name);
	v[1] = PointerGetDatum(construct_array(num, nl, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[2] = PointerGetDatum(construct_array(hash, nl, BYTEAOID, -1, false, TYPALIGN_INT));
	v[3] = PointerGetDatum(construct_md_array(parent, parent_null, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
	v[4] = PointerGetDatum(construct_md_array(tm, tm_null, 1, dims, lbs, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[5] = PointerGetDatum(construct_array(evs, nl, INT4OID, 4, true, TYPALIGN_INT));
	ret = SPI_execute_plan(header_plan, v, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "recording ledger headers failed: %s", SPI_result_code_string(ret));
	if (nids > 0)
	{
		/*
		 * A producer that updated or deleted a document after the worker
		 * read it: what was applied is not what the inbox holds.  Roll
		 * back and read it again (a transient error: retried, not counted
		 * against max_retries).
		 */
		v[0] = PointerGetDatum(construct_array(ids, nids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		v[1] = PointerGetDatum(construct_array(xmins, nids, XIDOID, sizeof(TransactionId), true, TYPALIGN_INT));
		ret = SPI_execute_plan(inbox_delete_plan, v, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "deleting applied inbox documents failed: %s", SPI_result_code_string(ret));
		if (SPI_processed != (uint64) nids)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("an inbox document of pipeline \"%s\" was updated or deleted after the worker read it; reading the inbox again",
							p->name)));
	}
}

/*
 * The "applied" notification: one per committed apply transaction, well
 * under the 8000-byte payload limit.
 */
static void
queue_notify(LiPipeline *p, const LiPosition *pos, const uint8 *hash,
			 int64 from_ledger, int64 nevents)
{
	StringInfoData buf;
	char	   *hex = li_bytes_to_hex(hash, LI_HASH_LEN);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"type\":\"applied\",\"pipeline\":");
	escape_json(&buf, p->name);
	appendStringInfo(&buf, ",\"ledger\":" INT64_FORMAT ",\"hash\":\"%s\"", pos->ledger, hex);
	if (pos->complete)
		appendStringInfoString(&buf, ",\"tx_index\":null,\"event_index\":null");
	else
		appendStringInfo(&buf, ",\"tx_index\":%d,\"event_index\":%d",
						 pos->tx_index, pos->event_index);
	appendStringInfo(&buf, ",\"events\":" INT64_FORMAT ",\"from_ledger\":" INT64_FORMAT "}",
					 nevents, from_ledger);
	(void) li_notify(p->slot, p->name, buf.data);
}

/*
 * The tracked tables that the worker journals for the first time are
 * journaled from ledger "first" on: record it (tracked.since_ledger), in
 * the apply transaction, so that a reorg forking below it is refused
 * instead of reverting only part of the orphaned ledgers.
 */
static void
record_journal_start(LiPipeline *p, int64 first)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		v[2];
	bool		any = false;
	int			ret;

	for (int i = 0; i < p->ntracked; i++)
		any |= !p->tracked[i].has_since;
	if (!any || !p->sql_0_2)
		return;
	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(first);
	ret = SPI_execute_with_args("UPDATE ledger_ingest.tracked SET since_ledger = $2 "
								"WHERE pipeline OPERATOR(pg_catalog.=) $1 AND since_ledger IS NULL",
								2, types, v, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "recording where the journal starts failed: %s", SPI_result_code_string(ret));
}

/*
 * Apply one transaction's segments.  Returns false on a lost CAS (the
 * transaction is rolled back).
 */
static bool
apply_txn(LiPipeline *p, Segment *segs, int nsegs)
{
	MemoryContext caller_cxt;
	Segment    *lastseg = &segs[nsegs - 1];
	LiLedger   *last = lastseg->ledger;
	LiPosition	newpos;
	int64		nevents = 0;
	int64		nledgers = 0;
	ErrorContextCallback errcb;
	Datum		pipeline_text;
	MemoryContext txn_cxt;
	MemoryContext set_cxt;
	EventSet   *sets;
	TimestampTz started;
	double		elapsed_us;
	bool		journal_events = false;
	int64		first_journaled = -1;	/* first ledger journaled in full */

	memset(&newpos, 0, sizeof(newpos));
	newpos.ledger = last->number;
	if (lastseg->last >= last->nevents)
		newpos.complete = true;
	else
	{
		newpos.tx_index = last->events[lastseg->last - 1].tx_index;
		newpos.event_index = last->events[lastseg->last - 1].event_index;
	}
	for (int i = 0; i < nsegs; i++)
	{
		nevents += segs[i].last - segs[i].first;
		if (segs[i].last >= segs[i].ledger->nevents)
			nledgers++;
	}

	started = GetCurrentTimestamp();
	caller_cxt = li_txn_begin();
	if (nsegs == 1)
		pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: applying ledger " INT64_FORMAT,
													   p->name, last->number));
	else
		pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: applying ledgers " INT64_FORMAT " to " INT64_FORMAT,
													   p->name, segs[0].ledger->number, last->number));
	prepare_internal_plans();

	/* an error from here on names the transaction's first ledger */
	li_apply_ctx.ledger = segs[0].ledger->number;
	if (!cursor_cas(p, &newpos, last->hash, nevents, nledgers))
	{
		li_txn_abort(caller_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		return false;
	}

	errcb.callback = apply_error_callback;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	li_apply_ctx.active = true;
	li_apply_ctx.handler = NULL;
	li_apply_ctx.pipeline = p;
	li_journal_begin();

	/* per-event values are built in a context reset after each event */
	txn_cxt = AllocSetContextCreate(CurTransactionContext, "ledger_ingest event",
									ALLOCSET_DEFAULT_SIZES);
	set_cxt = AllocSetContextCreate(CurTransactionContext, "ledger_ingest event sets",
									ALLOCSET_DEFAULT_SIZES);
	sets = MemoryContextAllocZero(set_cxt, sizeof(EventSet) * Max(p->nhandlers, 1));
	pipeline_text = CStringGetTextDatum(p->name);

	for (int s = 0; s < nsegs; s++)
	{
		LiLedger   *l = segs[s].ledger;
		Datum		ledger_hash = PointerGetDatum(li_bytes_to_bytea(l->hash, LI_HASH_LEN));

		li_apply_ctx.ledger = l->number;
		li_apply_ctx.journal = p->ntracked > 0 && p->opts.reorg_window > 0 &&
			l->number > p->journal_floor;
		/* a ledger begun in an earlier transaction was not all journaled */
		if (li_apply_ctx.journal && first_journaled < 0)
			first_journaled = segs[s].first == 0 ? l->number : l->number + 1;
		journal_events = p->has_revert && p->opts.reorg_window > 0 &&
			l->number > p->journal_floor;
		for (int i = segs[s].first; i < segs[s].last; i++)
		{
			LiEvent    *e = &l->events[i];
			MemoryContext old;
			bool		any = false;

			CHECK_FOR_INTERRUPTS();
			for (int h = 0; h < p->nhandlers && !any; h++)
				any = handler_matches(&p->handlers[h], e);
			if (!any)
				continue;
			old = MemoryContextSwitchTo(txn_cxt);
			run_handlers(p, pipeline_text, l, ledger_hash, e, journal_events, sets, set_cxt);
			MemoryContextSwitchTo(old);
			MemoryContextReset(txn_cxt);
		}
	}
	run_set_handlers(p, sets);
	if (p->nsinks > 0)
	{
		LiLedger  **ls = palloc(sizeof(LiLedger *) * nsegs);
		int		   *firsts = palloc(sizeof(int) * nsegs);
		int		   *lasts = palloc(sizeof(int) * nsegs);

		for (int i = 0; i < nsegs; i++)
		{
			ls[i] = segs[i].ledger;
			firsts[i] = segs[i].first;
			lasts[i] = segs[i].last;
		}
		li_apply_ctx.handler = "raw sink";
		li_apply_ctx.event_index = -1;
		li_sink_write(p, ls, firsts, lasts, nsegs);
		li_apply_ctx.handler = NULL;
	}
	li_apply_ctx.active = false;
	li_apply_ctx.journal = false;
	error_context_stack = errcb.previous;

	li_journal_flush(p);
	record_headers(p, segs, nsegs);
	if (first_journaled >= 0)
		record_journal_start(p, first_journaled);
	if (p->ntracked > 0)
	{
		/* ledgers that left the reorg window can no longer be reverted */
		Datum		v[2];
		int			ret;

		v[0] = CStringGetTextDatum(p->name);
		v[1] = Int64GetDatum(newpos.ledger - p->opts.reorg_window);
		ret = SPI_execute_plan(prune_plan, v, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "pruning the reorg journal failed: %s", SPI_result_code_string(ret));
	}
	if (p->has_revert)
	{
		Datum		v[2];
		int			ret;

		v[0] = CStringGetTextDatum(p->name);
		v[1] = Int64GetDatum(newpos.ledger - p->opts.reorg_window);
		ret = SPI_execute_plan(event_prune_plan, v, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "pruning the event journal failed: %s", SPI_result_code_string(ret));
	}
	queue_notify(p, &newpos, last->hash, segs[0].ledger->number, nevents);
	li_publish_at_commit(p->slot, &newpos);

	li_txn_commit(caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (int i = 0; i < p->ntracked && first_journaled >= 0; i++)
	{
		if (!p->tracked[i].has_since)
		{
			p->tracked[i].has_since = true;
			p->tracked[i].since = first_journaled;
		}
	}
	p->cursor = newpos;
	memcpy(p->cursor_hash, last->hash, LI_HASH_LEN);
	p->has_cursor_hash = true;

	/* exponential moving average of the cost per event and per ledger */
	elapsed_us = (double) (GetCurrentTimestamp() - started);
	if (nevents > 0)
		us_per_event = us_per_event == 0.0 ? elapsed_us / nevents :
			0.8 * us_per_event + 0.2 * (elapsed_us / nevents);
	else
		us_per_ledger = us_per_ledger == 0.0 ? elapsed_us / nsegs :
			0.8 * us_per_ledger + 0.2 * (elapsed_us / nsegs);
	return true;
}

/*
 * li_apply_batch -- apply a fetched batch, split into transactions by the
 * pipeline's commit mode: "event" (one per event; a ledger without events
 * is one), "ledger" (one per ledger) or "batch" (whole ledgers, up to
 * batch_max_ledgers ledgers, closed once batch_max_events events are
 * reached or the measured cost per event and per ledger predicts
 * batch_max_ms milliseconds).
 * Events at or before a partially applied cursor are skipped.  Returns
 * LI_APPLY_LOST_CAS when the cursor moved under the worker.
 */
LiApplyResult
li_apply_batch(LiPipeline *p, LiBatch *b)
{
	Segment    *segs = MemoryContextAlloc(b->cxt, sizeof(Segment) * Max(b->nledgers, 1));
	int			nsegs = 0;
	int64		seg_events = 0;

	li_set_wstate(p->slot, LI_WS_APPLYING);
	for (int li = 0; li < b->nledgers; li++)
	{
		LiLedger   *l = &b->ledgers[li];
		int			first = 0;

		/* resume inside a partially applied ledger */
		if (l->number == p->cursor.ledger && !p->cursor.complete)
		{
			while (first < l->nevents &&
				   (l->events[first].tx_index < p->cursor.tx_index ||
					(l->events[first].tx_index == p->cursor.tx_index &&
					 l->events[first].event_index <= p->cursor.event_index)))
				first++;
		}

		if (p->opts.commit == LI_COMMIT_EVENT)
		{
			if (l->nevents == 0 || first >= l->nevents)
			{
				Segment		s = {l, l->nevents, l->nevents};

				if (!apply_txn(p, &s, 1))
					return LI_APPLY_LOST_CAS;
			}
			for (int i = first; i < l->nevents; i++)
			{
				Segment		s = {l, i, i + 1};

				if (!apply_txn(p, &s, 1))
					return LI_APPLY_LOST_CAS;
			}
			continue;
		}

		segs[nsegs].ledger = l;
		segs[nsegs].first = first;
		segs[nsegs].last = l->nevents;
		nsegs++;
		seg_events += l->nevents - first;
		if (p->opts.commit == LI_COMMIT_LEDGER ||
			nsegs >= p->opts.batch_max_ledgers ||
			seg_events >= p->opts.batch_max_events ||
			(p->opts.batch_max_ms > 0 &&
			 (seg_events * us_per_event + nsegs * us_per_ledger) / 1000.0 >= p->opts.batch_max_ms) ||
			li == b->nledgers - 1)
		{
			if (!apply_txn(p, segs, nsegs))
				return LI_APPLY_LOST_CAS;
			nsegs = 0;
			seg_events = 0;
		}
	}
	return LI_APPLY_OK;
}


/*
 * "OPERATOR(schema.=)" for a key column of relid: its type's default btree
 * equality operator, qualified with the operator's own schema, so that no
 * search_path can substitute another (PostgreSQL's RI triggers qualify
 * their key comparisons the same way).
 */
static char *
pk_equality(Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);
	TypeCacheEntry *tc;
	HeapTuple	optup;
	Form_pg_operator op;
	char	   *result;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of tracked table \"%s\" does not exist",
						column, get_rel_name(relid))));
	tc = lookup_type_cache(get_atttype(relid, attnum), TYPECACHE_EQ_OPR);
	if (!OidIsValid(tc->eq_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("key column \"%s\" of tracked table \"%s\" has no equality operator",
						column, get_rel_name(relid))));
	optup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tc->eq_opr));
	if (!HeapTupleIsValid(optup))
		elog(ERROR, "cache lookup failed for operator %u", tc->eq_opr);
	op = (Form_pg_operator) GETSTRUCT(optup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(optup);
	return result;
}

/*
 * Restore one tracked table to its state at the end of ledger "fork",
 * undoing only what the orphaned ledgers did, in place.  Per primary key,
 * the journal entries above the fork give: whether the oldest change
 * inserted the row ("ins"); the pre-image "pre", each column's value before
 * the oldest change that touched it (an UPDATE journals only the columns
 * it changed); the post-image "post", each column's value after the newest
 * change that touched it; and whether the newest change deleted the row
 * ("gone").  Then:
 *  - a row that the current table does not hold as the orphaned ledgers
 *    left it (a column they wrote changed since, a row they left deleted
 *    inserted again, or one they left deleted) was written outside the
 *    pipeline since: nothing is changed and the reorg fails, naming the
 *    keys, rather than lose that committed write;
 *  - a row they inserted is deleted;
 *  - a row that existed before them and exists now is set back with
 *    UPDATE, in the columns they changed only (no DELETE and INSERT: no
 *    cascades, no foreign-key failures, the same row; other columns, and
 *    columns added since, keep their values);
 *  - a row that existed before them and is gone now is inserted again
 *    (columns added since get their defaults).
 * Entries journaled by ledger_ingest 0.1 (whole pre-images, no post-image:
 * new_row NULL) are restored the same way, without the conflict check.
 * The statements run as the pipeline owner, like the handlers that made
 * the changes.  Returns the number of keys restored.
 */
static int64
restore_table(LiPipeline *p, LiTracked *t, int64 fork)
{
	Oid			types[3] = {TEXTOID, REGCLASSOID, INT8OID};
	Datum		v[3];
	int			ret;
	bool		isnull;
	Datum		entries;
	int64		nkeys;
	StringInfoData cond;
	StringInfoData sql;
	StringInfoData set;
	StringInfoData cols;
	StringInfoData vals;
	StringInfoData from;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			argtypes[1] = {JSONBARRAYOID};
	Relation	rel;
	TupleDesc	desc;

	v[0] = CStringGetTextDatum(p->name);
	v[1] = ObjectIdGetDatum(t->relid);
	v[2] = Int64GetDatum(fork);
	initStringInfo(&sql);
	/*
	 * One pass, grouped by key (no join between per-key aggregates: the
	 * planner cannot estimate them and would nest loops): each entry once
	 * per column it holds, "o" for old_row, "n" for new_row.
	 */
	appendStringInfo(&sql,
					 "SELECT pg_catalog.array_agg(pg_catalog.jsonb_build_object('pk', s.pk, 'ins', s.ins, "
					 "       'gone', s.gone, 'legacy', s.legacy, 'pre', s.pre, 'post', s.post)), pg_catalog.count(*) "
					 "FROM (SELECT j.pk, "
					 "  (pg_catalog.array_agg(j.old_row IS NULL ORDER BY j.seq))[1] AS ins, "
					 "  coalesce((pg_catalog.array_agg(pg_catalog.jsonb_typeof(j.new_row) OPERATOR(pg_catalog.=) 'null' "
					 "            ORDER BY j.seq DESC))[1], false) AS gone, "
					 "  pg_catalog.bool_or(j.new_row IS NULL) AS legacy, "
					 "  coalesce(pg_catalog.jsonb_object_agg(e.key, e.value ORDER BY j.seq DESC) "
					 "           FILTER (WHERE e.side OPERATOR(pg_catalog.=) 'o'), '{}') AS pre, "
					 "  coalesce(pg_catalog.jsonb_object_agg(e.key, e.value ORDER BY j.seq) "
					 "           FILTER (WHERE e.side OPERATOR(pg_catalog.=) 'n'), '{}') AS post "
					 "  FROM (SELECT pk, seq, old_row, %s AS new_row FROM ledger_ingest.journal "
					 "        WHERE pipeline OPERATOR(pg_catalog.=) $1 AND tbl OPERATOR(pg_catalog.=) $2 "
					 "        AND ledger OPERATOR(pg_catalog.>) $3) AS j "
					 "  LEFT JOIN LATERAL (SELECT 'o' AS side, o.key, o.value FROM pg_catalog.jsonb_each(j.old_row) AS o "
					 "                     UNION ALL "
					 "                     SELECT 'n', n.key, n.value FROM pg_catalog.jsonb_each(CASE WHEN "
					 "                       pg_catalog.jsonb_typeof(j.new_row) OPERATOR(pg_catalog.=) 'object' "
					 "                       THEN j.new_row END) AS n) AS e ON true "
					 "  GROUP BY j.pk) AS s",
					 p->sql_0_2 ? "new_row" : "NULL::pg_catalog.jsonb");
	ret = SPI_execute_with_args(sql.data, 3, types, v, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the reorg journal failed: %s", SPI_result_code_string(ret));
	nkeys = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (nkeys == 0)
		return 0;
	/* keep the array past the next SPI call */
	entries = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								false, -1);

	initStringInfo(&cond);
	for (int i = 0; i < t->npk; i++)
		appendStringInfo(&cond, "%st.%s %s k.%s", i > 0 ? " AND " : "",
						 quote_identifier(t->pk[i]), pk_equality(t->relid, t->pk[i]),
						 quote_identifier(t->pk[i]));
	/* per key: x.e, the entry; j.r, its key and pre-image; k, j.r as a row */
	initStringInfo(&from);
	appendStringInfo(&from, "pg_catalog.unnest($1) AS x(e) "
					 "CROSS JOIN LATERAL (SELECT (x.e OPERATOR(pg_catalog.->) 'pk') OPERATOR(pg_catalog.||) "
					 "(x.e OPERATOR(pg_catalog.->) 'pre') AS r) AS j "
					 "CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%s, j.r) AS k",
					 t->relname);

	/* the columns a restore writes: not generated ones, not the key */
	initStringInfo(&set);
	initStringInfo(&cols);
	initStringInfo(&vals);
	rel = table_open(t->relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		const char *name = quote_identifier(NameStr(att->attname));
		const char *lit = quote_literal_cstr(NameStr(att->attname));
		bool		is_key = false;

		if (att->attisdropped || att->attgenerated != '\0')
			continue;
		appendStringInfo(&cols, "%s%s", cols.len > 0 ? ", " : "", name);
		if (att->atthasdef)
		{
			/* a row inserted again gets a column added since its default */
			Node	   *def = build_column_default(rel, att->attnum);

			appendStringInfo(&vals, "%sCASE WHEN j.r OPERATOR(pg_catalog.?) %s THEN k.%s ELSE (%s) END",
							 vals.len > 0 ? ", " : "", lit, name,
							 deparse_expression(def, NIL, false, false));
		}
		else
			appendStringInfo(&vals, "%sk.%s", vals.len > 0 ? ", " : "", name);
		for (int i = 0; i < t->npk; i++)
			is_key |= strcmp(t->pk[i], NameStr(att->attname)) == 0;
		if (is_key || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			continue;
		appendStringInfo(&set, "%s%s = CASE WHEN j.r OPERATOR(pg_catalog.?) %s THEN k.%s ELSE t.%s END",
						 set.len > 0 ? ", " : "", name, lit, name, name);
	}
	table_close(rel, AccessShareLock);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(p->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();

	/* rows written outside the pipeline since the orphaned ledgers */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.string_agg((x.e OPERATOR(pg_catalog.->) 'pk')::pg_catalog.text, ', '), "
					 "pg_catalog.count(*) FROM %s LEFT JOIN %s t ON %s "
					 "CROSS JOIN LATERAL (SELECT pg_catalog.to_jsonb(t) AS cur) AS cr "	/* once per row */
					 "WHERE NOT (x.e OPERATOR(pg_catalog.->>) 'legacy')::pg_catalog.bool AND "
					 "((t.ctid IS NULL) OPERATOR(pg_catalog.<>) (x.e OPERATOR(pg_catalog.->>) 'gone')::pg_catalog.bool "
					 " OR (t.ctid IS NOT NULL AND EXISTS (SELECT FROM pg_catalog.jsonb_each(x.e OPERATOR(pg_catalog.->) 'post') AS c "
					 "     WHERE cr.cur OPERATOR(pg_catalog.->) c.key IS DISTINCT FROM c.value)))",
					 from.data, t->relname, cond.data);
	ret = SPI_execute_with_args(sql.data, 1, argtypes, &entries, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "checking %s for changes outside the pipeline failed: %s", t->relname,
			 SPI_result_code_string(ret));
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) > 0)
	{
		char	   *keys = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("reorg at ledger " INT64_FORMAT ": rows of %s were changed outside the pipeline since the orphaned ledgers wrote them (keys %s); nothing was changed",
						fork + 1, t->relname, pnstrdup(keys, pg_mbcliplen(keys, strlen(keys), 500))),
				 errhint("Set those rows back to what the pipeline wrote, or untrack the table, then start() the pipeline.")));
	}

	resetStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM %s t USING %s "
					 "WHERE (x.e OPERATOR(pg_catalog.->>) 'ins')::pg_catalog.bool AND %s",
					 t->relname, from.data, cond.data);
	ret = SPI_execute_with_args(sql.data, 1, argtypes, &entries, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "reverting %s failed: %s", t->relname, SPI_result_code_string(ret));
	if (set.len > 0)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql, "UPDATE %s t SET %s FROM %s "
						 "WHERE NOT (x.e OPERATOR(pg_catalog.->>) 'ins')::pg_catalog.bool AND %s",
						 t->relname, set.data, from.data, cond.data);
		ret = SPI_execute_with_args(sql.data, 1, argtypes, &entries, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "reverting %s failed: %s", t->relname, SPI_result_code_string(ret));
	}
	resetStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s "
					 "WHERE NOT (x.e OPERATOR(pg_catalog.->>) 'ins')::pg_catalog.bool "
					 "AND NOT EXISTS (SELECT FROM %s t WHERE %s)",
					 t->relname, cols.data, vals.data, from.data, t->relname, cond.data);
	ret = SPI_execute_with_args(sql.data, 1, argtypes, &entries, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "reverting %s failed: %s", t->relname, SPI_result_code_string(ret));
	AfterTriggerFireDeferred();
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return nkeys;
}

/*
 * Run an internal statement with $1 = the pipeline name and $2 = a ledger
 * number (inside a transaction of li_txn_begin); raise unless SPI answers
 * "expect".
 */
static void
pipeline_ledger_sql(LiPipeline *p, int64 ledger, int expect, const char *sql)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		v[2];
	int			ret;

	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(ledger);
	ret = SPI_execute_with_args(sql, 2, types, v, NULL, false, 0);
	if (ret != expect)
		elog(ERROR, "ledger_ingest internal statement failed (%s): %s",
			 SPI_result_code_string(ret), sql);
}

/*
 * li_revert -- roll back every ledger after "fork" in ONE transaction:
 * restore the tracked tables from the reorg journal, delete the orphaned
 * ledgers' headers and journal, move the cursor back to the end of "fork"
 * with the same compare-and-swap as an apply, and queue the "reorg"
 * notification.  Returns LI_APPLY_LOST_CAS when the cursor moved under the
 * worker (nothing is changed then).
 */
LiApplyResult
li_revert(LiPipeline *p, int64 fork, const uint8 *fork_hash)
{
	MemoryContext caller_cxt;
	int64		orphaned_to = p->cursor.ledger;
	int32		depth = (int32) (orphaned_to - fork);
	Datum		v[7];
	char		n[7];
	int			ret;
	int64		restored = 0;
	StringInfoData buf;
	LiPosition	newpos;
	TimestampTz started;

	started = GetCurrentTimestamp();
	caller_cxt = li_txn_begin();
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("ledger_ingest %s: reverting ledgers " INT64_FORMAT " to " INT64_FORMAT,
									p->name, fork + 1, orphaned_to));
	prepare_internal_plans();

	memset(n, ' ', sizeof(n));
	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(fork);
	v[2] = PointerGetDatum(li_bytes_to_bytea(fork_hash, LI_HASH_LEN));
	v[3] = Int32GetDatum(depth);
	v[4] = Int64GetDatum(p->cursor.ledger);
	v[5] = Int32GetDatum(p->cursor.tx_index);
	v[6] = Int32GetDatum(p->cursor.event_index);
	if (p->cursor.complete)
		n[5] = n[6] = 'n';
	ret = SPI_execute_plan(revert_cas_plan, v, n, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "cursor update failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
	{
		li_txn_abort(caller_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		return LI_APPLY_LOST_CAS;
	}

	if (p->has_revert)
		run_revert_handlers(p, fork);
	for (int i = 0; i < p->ntracked; i++)
		restored += restore_table(p, &p->tracked[i], fork);

	/* remember the orphaned headers; forget those left of the window */
	pipeline_ledger_sql(p, fork, SPI_OK_INSERT,
						"INSERT INTO ledger_ingest.orphan (pipeline, number, hash) "
						"SELECT pipeline, number, hash FROM ledger_ingest.ledger "
						"WHERE pipeline OPERATOR(pg_catalog.=) $1 AND number OPERATOR(pg_catalog.>) $2 "
						"ON CONFLICT DO NOTHING");
	pipeline_ledger_sql(p, fork - p->opts.reorg_window, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.orphan WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND number OPERATOR(pg_catalog.<=) $2");
	pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.journal WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND ledger OPERATOR(pg_catalog.>) $2");
	pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.event_journal WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND ledger OPERATOR(pg_catalog.>) $2");
	pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.ledger WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND number OPERATOR(pg_catalog.>) $2");
	if (p->sql_0_2)
		pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
							"DELETE FROM ledger_ingest.decode_error WHERE pipeline OPERATOR(pg_catalog.=) $1 "
							"AND ledger OPERATOR(pg_catalog.>) $2");

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"type\":\"reorg\",\"pipeline\":");
	escape_json(&buf, p->name);
	appendStringInfo(&buf, ",\"fork_ledger\":" INT64_FORMAT ",\"orphaned_from\":" INT64_FORMAT
					 ",\"orphaned_to\":" INT64_FORMAT ",\"depth\":%d}",
					 fork, fork + 1, orphaned_to, depth);
	(void) li_notify(p->slot, p->name, buf.data);

	memset(&newpos, 0, sizeof(newpos));
	newpos.ledger = fork;
	newpos.complete = true;
	li_publish_at_commit(p->slot, &newpos);

	li_txn_commit(caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	ereport(LOG,
			(errmsg("ledger_ingest pipeline \"%s\": reorg of depth %d: reverted ledgers " INT64_FORMAT " to " INT64_FORMAT
					" in %.1f ms, restored " INT64_FORMAT " rows of tracked tables; following the new branch from ledger " INT64_FORMAT,
					p->name, depth, fork + 1, orphaned_to,
					(double) (GetCurrentTimestamp() - started) / 1000.0, restored, fork + 1)));
	p->cursor = newpos;
	memcpy(p->cursor_hash, fork_hash, LI_HASH_LEN);
	p->has_cursor_hash = true;
	return LI_APPLY_OK;
}

/*
 * li_check_continuity -- does ledger l follow prev (or, when prev is NULL,
 * the cursor)?  Only a direct successor (number + 1) with a parentHash can
 * be checked.  On a mismatch returns false with *error saying "reorg at
 * ledger N".
 */
bool
li_check_continuity(LiPipeline *p, const LiLedger *prev, const LiLedger *l, char **error)
{
	int64		prev_number;
	const uint8 *prev_hash;

	if (prev != NULL)
	{
		prev_number = prev->number;
		prev_hash = prev->hash;
	}
	else
	{
		if (!p->has_cursor_hash)
			return true;
		prev_number = p->cursor.ledger;
		prev_hash = p->cursor_hash;
	}
	if (l->number == prev_number && prev == NULL && !p->cursor.complete)
	{
		/* resuming a partially applied ledger: it must be the same one */
		if (memcmp(l->hash, prev_hash, LI_HASH_LEN) != 0)
		{
			*error = psprintf("reorg at ledger " INT64_FORMAT ": its hash %s differs from the partially applied ledger's %s",
							  l->number, li_bytes_to_hex(l->hash, LI_HASH_LEN),
							  li_bytes_to_hex(prev_hash, LI_HASH_LEN));
			return false;
		}
		return true;
	}
	if (l->number != prev_number + 1 || !l->has_parent)
		return true;
	if (memcmp(l->parent_hash, prev_hash, LI_HASH_LEN) != 0)
	{
		*error = psprintf("reorg at ledger " INT64_FORMAT ": its parentHash %s does not match the hash %s of applied ledger " INT64_FORMAT,
						  l->number, li_bytes_to_hex(l->parent_hash, LI_HASH_LEN),
						  li_bytes_to_hex(prev_hash, LI_HASH_LEN), prev_number);
		return false;
	}
	return true;
}

/* li_batch_init -- an empty batch. */
void
li_batch_init(LiBatch *b, MemoryContext cxt)
{
	memset(b, 0, sizeof(LiBatch));
	b->cxt = cxt;
}

/* li_batch_add -- append an (uninitialized) ledger to the batch. */
LiLedger *
li_batch_add(LiBatch *b)
{
	if (b->nledgers >= b->maxledgers)
	{
		b->maxledgers = Max(16, b->maxledgers * 2);
		if (b->ledgers == NULL)
			b->ledgers = MemoryContextAlloc(b->cxt, sizeof(LiLedger) * b->maxledgers);
		else
			b->ledgers = repalloc(b->ledgers, sizeof(LiLedger) * b->maxledgers);
	}
	return &b->ledgers[b->nledgers++];
}
