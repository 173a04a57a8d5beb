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
 *	   event_index) order and registration order (handlers.c), each
 *	   transaction's handlers before its events' (transaction.c), as the
 *	   pipeline owner in a security-restricted operation; set-based
 *	   handlers once with all their events; then the raw sinks (sink.c);
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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "factory.h"
#include "handlers.h"
#include "publish.h"
#include "transaction.h"
#include "xact.h"

LiApplyContext li_apply_ctx;

/* measured apply cost, for sizing "batch" transactions by batch_max_ms */
static double us_per_event = 0.0;
static double us_per_ledger = 0.0;

static SPIPlanPtr cas_plan = NULL;
static SPIPlanPtr header_plan = NULL;
static SPIPlanPtr inbox_delete_plan = NULL;
static SPIPlanPtr prune_plan = NULL;
static SPIPlanPtr event_prune_plan = NULL;

/* One transaction's share of a ledger: events [first, last). */
typedef struct Segment
{
	LiLedger   *ledger;
	int			first;
	int			last;
} Segment;

/* Prepare the apply statements once per worker (inside a transaction). */
static void
prepare_apply_plans(void)
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
}

/*
 * li_apply_enter_ledger -- what runs next belongs to ledger l: the error
 * context names it, and the journal trigger records changes to tracked
 * tables under it (when l is above the journal floor).
 */
void
li_apply_enter_ledger(LiPipeline *p, const LiLedger *l)
{
	li_apply_ctx.ledger = l->number;
	li_apply_ctx.journal = p->ntracked > 0 && p->opts.reorg_window > 0 &&
		l->number > p->journal_floor;
}

/* errcontext for handler errors: which ledger, event and handler */
static void
apply_error_callback(void *arg)
{
	if (!li_apply_ctx.active)
		return;
	if (li_apply_ctx.handler && li_apply_ctx.event_index == LI_CTX_TX)
		errcontext("ledger_ingest: applying ledger " INT64_FORMAT ", transaction tx_index %d with transaction handler %s",
				   li_apply_ctx.ledger, li_apply_ctx.tx_index, li_apply_ctx.handler);
	else if (li_apply_ctx.handler && li_apply_ctx.event_index == LI_CTX_BLOCK)
		errcontext("ledger_ingest: applying ledger " INT64_FORMAT " with block handler %s",
				   li_apply_ctx.ledger, li_apply_ctx.handler);
	else if (li_apply_ctx.handler && li_apply_ctx.event_index < 0)
		errcontext("ledger_ingest: applying the events of ledgers up to " INT64_FORMAT " with set-based handler %s",
				   li_apply_ctx.ledger, li_apply_ctx.handler);
	else if (li_apply_ctx.handler)
		errcontext("ledger_ingest: applying ledger " INT64_FORMAT ", tx_index %d, event_index %d with handler %s",
				   li_apply_ctx.ledger, li_apply_ctx.tx_index, li_apply_ctx.event_index,
				   li_apply_ctx.handler);
	else
		errcontext("ledger_ingest: applying ledger " INT64_FORMAT, li_apply_ctx.ledger);
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
	LiEventSet   *sets;
	bool		journal_events = false;
	int64		first_journaled = -1;	/* first ledger journaled in full */
	bool		run_tx;
	int32		tx_done;		/* transactions up to it were handled */

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
	sets = MemoryContextAllocZero(set_cxt, sizeof(LiEventSet) * Max(p->nhandlers, 1));
	pipeline_text = CStringGetTextDatum(p->name);

	for (int s = 0; s < nsegs; s++)
	{
		LiLedger   *l = segs[s].ledger;
		Datum		ledger_hash = PointerGetDatum(li_bytes_to_bytea(l->hash, LI_HASH_LEN));

		li_apply_enter_ledger(p, l);
		/* a ledger begun in an earlier transaction was not all journaled */
		if (li_apply_ctx.journal && first_journaled < 0)
			first_journaled = segs[s].first == 0 ? l->number : l->number + 1;
		journal_events = p->has_revert && p->opts.reorg_window > 0 &&
			l->number > p->journal_floor;
		/* transaction handlers: each transaction before its own events */
		run_tx = p->ntx_handlers > 0 && l->ntxs > 0;
		tx_done = segs[s].first > 0 ? l->events[segs[s].first - 1].tx_index : -1;
		/* resuming inside a ledger: its transactions up to the cursor's ran */
		if (l->number == p->cursor.ledger && !p->cursor.complete)
			tx_done = Max(tx_done, p->cursor.tx_index);
		for (int i = segs[s].first; i < segs[s].last; i++)
		{
			LiEvent    *e = &l->events[i];
			MemoryContext old;
			bool		any = false;

			CHECK_FOR_INTERRUPTS();
			if (run_tx && e->tx_index > tx_done)
			{
				old = MemoryContextSwitchTo(txn_cxt);
				li_run_tx_handlers(p, pipeline_text, l, ledger_hash, tx_done, e->tx_index);
				MemoryContextSwitchTo(old);
				MemoryContextReset(txn_cxt);
				tx_done = e->tx_index;
			}
			if (p->nfactories > 0)
			{
				old = MemoryContextSwitchTo(txn_cxt);
				li_factory_announce(p, pipeline_text, l, ledger_hash, e);
				MemoryContextSwitchTo(old);
			}
			for (int h = 0; h < p->nhandlers && !any; h++)
				any = li_handler_matches(&p->handlers[h], e);
			if (!any)
				continue;
			old = MemoryContextSwitchTo(txn_cxt);
			li_run_handlers(p, pipeline_text, l, ledger_hash, e, journal_events, sets, set_cxt);
			MemoryContextSwitchTo(old);
			MemoryContextReset(txn_cxt);
		}
		/* the transactions after its last event, in the transaction that completes it */
		if (run_tx && segs[s].last == l->nevents)
		{
			MemoryContext old = MemoryContextSwitchTo(txn_cxt);

			li_run_tx_handlers(p, pipeline_text, l, ledger_hash, tx_done, PG_INT32_MAX);
			MemoryContextSwitchTo(old);
			MemoryContextReset(txn_cxt);
		}
		/* the ledger's block handlers, once: in the transaction that completes it */
		if (p->nblock_handlers > 0 && segs[s].last == l->nevents)
		{
			MemoryContext old = MemoryContextSwitchTo(txn_cxt);

			li_run_block_handlers(p, pipeline_text, l, ledger_hash);
			MemoryContextSwitchTo(old);
			MemoryContextReset(txn_cxt);
		}
	}
	li_run_set_handlers(p, sets);
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
		li_table_sinks_write(p, ls, firsts, lasts, nsegs);
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
	prepare_apply_plans();

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
	li_notify_applied(p->slot, p->name, &newpos, last->hash, segs[0].ledger->number, nevents);
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
