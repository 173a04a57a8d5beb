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
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
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
static SPIPlanPtr decode_error_plan = NULL;
static TupleDesc event_tupdesc = NULL;

/* One transaction's share of a ledger: events [first, last). */
typedef struct Segment
{
	LiLedger   *ledger;
	int			first;
	int			last;
} Segment;

SPIPlanPtr
li_keep_plan(const char *sql, int nargs, Oid *argtypes)
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
void
li_prepare_apply_plans(void)
{
	if (cas_plan == NULL)
	{
		Oid			types[10] = {TEXTOID, INT8OID, BYTEAOID, INT4OID, INT4OID,
		INT8OID, INT4OID, INT4OID, INT8OID, INT8OID};

		cas_plan = li_keep_plan(
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

		header_plan = li_keep_plan(
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
		inbox_delete_plan = li_keep_plan(
									  "DELETE FROM ledger_ingest.inbox i "
									  "USING ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS r(id, x) "
									  "WHERE i.id OPERATOR(pg_catalog.=) r.id "
									  "AND i.xmin OPERATOR(pg_catalog.=) r.x",
									  2, types);
	}
	if (prune_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT8OID};

		prune_plan = li_keep_plan(
							   "DELETE FROM ledger_ingest.journal "
							   "WHERE pipeline OPERATOR(pg_catalog.=) $1 "
							   "AND ledger OPERATOR(pg_catalog.<=) $2",
							   2, types);
	}
	if (event_prune_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT8OID};

		event_prune_plan = li_keep_plan(
									 "DELETE FROM ledger_ingest.event_journal "
									 "WHERE pipeline OPERATOR(pg_catalog.=) $1 "
									 "AND ledger OPERATOR(pg_catalog.<=) $2",
									 2, types);
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

		event_journal_plan = li_keep_plan(
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
FmgrInfo *
li_handler_fn(LiPipeline *p, Oid funcoid, FmgrInfo **cache)
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
void
li_call_as_owner(LiPipeline *p, FmgrInfo *fn, Datum arg)
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
Datum
li_event_with_args(Datum ev, Jsonb *args)
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
Jsonb *
li_decode_args(LiHandler *h, LiEvent *e, char **error)
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

		decode_error_plan = li_keep_plan(
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
bool
li_handler_matches(const LiHandler *h, const LiEvent *e)
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
		any = OidIsValid(p->handlers[i].revert_oid) && li_handler_matches(&p->handlers[i], e);
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

		if (!li_handler_matches(h, e))
			continue;
		li_apply_ctx.handler = h->name;
		if (h->abi != NULL)
		{
			if (h->abi != last_abi)
			{
				char	   *error = NULL;
				Jsonb	   *args = li_decode_args(h, e, &error);

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
			li_call_as_owner(p, li_handler_fn(p, h->funcoid, &h->fn), ev);
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
		li_call_as_owner(p, li_handler_fn(p, h->funcoid, &h->fn),
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
 * Where a transaction of these segments leaves the cursor (*newpos), and
 * how many events it applies and ledgers it completes.
 */
static void
segments_end(Segment *segs, int nsegs, LiPosition *newpos, int64 *nevents, int64 *nledgers)
{
	Segment    *lastseg = &segs[nsegs - 1];
	LiLedger   *last = lastseg->ledger;

	memset(newpos, 0, sizeof(*newpos));
	newpos->ledger = last->number;
	if (lastseg->last >= last->nevents)
		newpos->complete = true;
	else
	{
		newpos->tx_index = last->events[lastseg->last - 1].tx_index;
		newpos->event_index = last->events[lastseg->last - 1].event_index;
	}
	for (int i = 0; i < nsegs; i++)
	{
		*nevents += segs[i].last - segs[i].first;
		if (segs[i].last >= segs[i].ledger->nevents)
			(*nledgers)++;
	}
}

/*
 * Inside the apply transaction, after the CAS: every matching handler for
 * every event of the segments, in order, then the set-based handlers and
 * the raw sinks, with the error context naming the position.  Returns the
 * first ledger journaled in full, or -1.
 */
static int64
run_segments(LiPipeline *p, Segment *segs, int nsegs)
{
	ErrorContextCallback errcb;
	Datum		pipeline_text;
	MemoryContext txn_cxt;
	MemoryContext set_cxt;
	EventSet   *sets;
	bool		journal_events = false;
	int64		first_journaled = -1;	/* first ledger journaled in full */

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
				any = li_handler_matches(&p->handlers[h], e);
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
	return first_journaled;
}

/*
 * Forget the reorg journal and the event journal at or below "below":
 * those ledgers left the reorg window and can no longer be reverted.
 */
static void
prune_journals(LiPipeline *p, int64 below)
{
	Datum		v[2];
	int			ret;

	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(below);
	if (p->ntracked > 0)
	{
		ret = SPI_execute_plan(prune_plan, v, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "pruning the reorg journal failed: %s", SPI_result_code_string(ret));
	}
	if (p->has_revert)
	{
		ret = SPI_execute_plan(event_prune_plan, v, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "pruning the event journal failed: %s", SPI_result_code_string(ret));
	}
}

/* exponential moving average of the cost per event and per ledger */
static void
note_apply_cost(double elapsed_us, int64 nevents, int nsegs)
{
	if (nevents > 0)
		us_per_event = us_per_event == 0.0 ? elapsed_us / nevents :
			0.8 * us_per_event + 0.2 * (elapsed_us / nevents);
	else
		us_per_ledger = us_per_ledger == 0.0 ? elapsed_us / nsegs :
			0.8 * us_per_ledger + 0.2 * (elapsed_us / nsegs);
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
	TimestampTz started;
	int64		first_journaled;

	segments_end(segs, nsegs, &newpos, &nevents, &nledgers);

	started = GetCurrentTimestamp();
	caller_cxt = li_txn_begin();
	if (nsegs == 1)
		pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: applying ledger " INT64_FORMAT,
													   p->name, last->number));
	else
		pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: applying ledgers " INT64_FORMAT " to " INT64_FORMAT,
													   p->name, segs[0].ledger->number, last->number));
	li_prepare_apply_plans();

	/* an error from here on names the transaction's first ledger */
	li_apply_ctx.ledger = segs[0].ledger->number;
	if (!cursor_cas(p, &newpos, last->hash, nevents, nledgers))
	{
		li_txn_abort(caller_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		return false;
	}

	first_journaled = run_segments(p, segs, nsegs);

	li_journal_flush(p);
	record_headers(p, segs, nsegs);
	if (first_journaled >= 0)
		record_journal_start(p, first_journaled);
	prune_journals(p, newpos.ledger - p->opts.reorg_window);
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
	note_apply_cost((double) (GetCurrentTimestamp() - started), nevents, nsegs);
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
