/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The per-pipeline worker loop: refresh, fetch, apply, wait.
 *
 * Each cycle: (1) in a short transaction, re-read the pipeline's state,
 * cursor and handlers, exiting if the pipeline is no longer 'running';
 * (2) fetch a batch of ledgers from the source with no transaction open
 * (the inbox source reads in its own short transaction); (3) apply the batch
 * in short transactions (apply.c); (4) sleep on the latch for poll_ms when
 * there was nothing to do.
 *
 * Errors are caught (autovacuum's pattern: EmitErrorReport,
 * AbortOutOfAnyTransaction, FlushErrorState), recorded in the pipeline's
 * last_error in a new transaction (in its shared slot when the table cannot
 * be written), and retried after a capped exponential backoff with jitter.
 * Source errors (network, a bad response) and transient errors (timeouts,
 * deadlocks, serialization failures, a read-only database: see
 * transient_error) are retried forever; handler errors up to
 * options.max_retries times, after which the pipeline goes to 'failed' with
 * a "state" notification.  A malformed inbox document, a late ledger, a
 * reorg beyond the window and a missing owner, handler or table fail the
 * pipeline at once.  The worker never skips an event and never
 * crash-loops.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"

#include "apply.h"
#include "catalog.h"
#include "factory.h"
#include "ledger_ingest.h"
#include "prefetch.h"
#include "publish.h"
#include "rpc_client.h"
#include "source.h"
#include "xact.h"

#define BACKOFF_MIN_MS	500
#define BACKOFF_MAX_MS	60000

typedef enum WorkerPhase
{
	PHASE_REFRESH,
	PHASE_FETCH,
	PHASE_APPLY,
	PHASE_AFTER
} WorkerPhase;

static LiPipeline pipeline;
static WorkerPhase phase;
static MemoryContext worker_cxt = NULL;
static MemoryContext pipeline_cxt = NULL;	/* options and handlers */

static void
worker_shmem_exit(int code, Datum arg)
{
	LiSlot	   *slot = pipeline.slot;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->latch = NULL;
		slot->wstate = LI_WS_NONE;
	}
	SpinLockRelease(&slot->mutex);
}

/*
 * Is this an error that a retry of the same transaction can fix?  Lock and
 * statement timeouts, deadlocks, serialization failures (class 40),
 * cancellations, a read-only database or server and a shortage of
 * resources (class 53) say nothing about the ledger or the handler: they
 * are retried with the usual backoff, shown in status, and do not count
 * against max_retries, which is for errors a retry will not fix.
 */
static bool
transient_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_TRANSACTION_ROLLBACK:	/* 40001, 40P01, ... */
		case ERRCODE_INSUFFICIENT_RESOURCES:	/* 53100, 53200, 53300 */
			return true;
		default:
			break;
	}
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||	/* 55P03 lock_timeout */
		sqlerrcode == ERRCODE_QUERY_CANCELED ||	/* 57014 statement_timeout */
		sqlerrcode == ERRCODE_READ_ONLY_SQL_TRANSACTION;	/* 25006 */
}

/*
 * Record the pipeline's new state (and error) in its own transaction, with
 * a "state" notification when the state changes.  Only acts while the
 * pipeline is still 'running' (a concurrent stop() wins).
 */
static void
set_pipeline_state(const char *state, const char *error, bool count_error)
{
	MemoryContext caller_cxt = li_txn_begin();

	if (li_catalog_set_state(pipeline.name, state, error, count_error) &&
		strcmp(state, "running") != 0)
		li_notify_state(pipeline.slot, pipeline.name, state, error);
	li_txn_commit(caller_cxt);
}

/*
 * The worker is up: forget the launcher's "could not start the pipeline's
 * worker" (status shows a running pipeline with that last_error and no
 * worker as 'waiting').
 */
static void
clear_start_failure(void)
{
	MemoryContext caller_cxt = li_txn_begin();

	li_catalog_clear_start_failure(pipeline.name);
	li_txn_commit(caller_cxt);
}

/*
 * Record a retried error in the pipeline's last_error.  Where the table
 * cannot be written (a read-only database: default_transaction_read_only),
 * the error goes to the pipeline's slot instead, which status shows, and
 * to the log; the worker goes on retrying with backoff rather than exiting
 * into a restart loop.
 */
static void
record_error(const char *error)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool recorded = true;

	PG_TRY();
	{
		set_pipeline_state("running", error, true);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		RESUME_INTERRUPTS();
		ereport(WARNING,
				(errmsg("ledger_ingest pipeline \"%s\": could not record its error: %s",
						pipeline.name, edata->message),
				 errdetail("The error: %s", error)));
		FreeErrorData(edata);
		recorded = false;
	}
	PG_END_TRY();
	SpinLockAcquire(&pipeline.slot->mutex);
	if (recorded)
		pipeline.slot->error[0] = '\0';
	else
		strlcpy(pipeline.slot->error, error, sizeof(pipeline.slot->error));
	SpinLockRelease(&pipeline.slot->mutex);
}

/* Stop the worker for good: the pipeline failed or finished. */
static void
finish_pipeline(const char *state, const char *error)
{
	if (strcmp(state, "failed") == 0)
		ereport(LOG,
				(errmsg("ledger_ingest pipeline \"%s\" failed: %s", pipeline.name, error)));
	set_pipeline_state(state, error, strcmp(state, "failed") == 0);
	proc_exit(0);
}

/*
 * The extension was dropped and created again under this worker: its
 * prepared statements and the event type it knows are stale.  Exit; the
 * launcher starts a fresh worker.
 */
static void
exit_if_extension_recreated(LiPipeline *p)
{
	static Oid	extension_oid = InvalidOid;
	Oid			current = get_extension_oid("ledger_ingest", true);

	if (!OidIsValid(extension_oid))
		extension_oid = current;
	if (current != extension_oid)
	{
		ereport(LOG,
				(errmsg("ledger_ingest pipeline \"%s\": the extension was re-created; worker exiting",
						p->name)));
		proc_exit(0);
	}
}

/*
 * Re-read the pipeline: state, owner, options, cursor, handlers, tracked
 * tables and raw sinks, in one short transaction.  Exits when the pipeline
 * is gone or not 'running'; fails it when an object it needs is gone.
 * Returns whether its last_error is the launcher's LI_START_FAILURE.
 */
static bool
refresh_pipeline(LiPipeline *p)
{
	MemoryContext caller_cxt;
	static MemoryContext cxt = NULL;
	bool		start_failure;
	char	   *missing = NULL;
	char	   *state = NULL;

	/* a refresh that failed half-way left its context behind */
	if (cxt != NULL)
		MemoryContextDelete(cxt);
	cxt = AllocSetContextCreate(worker_cxt, "ledger_ingest pipeline",
								ALLOCSET_SMALL_SIZES);

	caller_cxt = li_txn_begin();
	pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: reading pipeline", p->name));
	exit_if_extension_recreated(p);
	switch (li_catalog_read_pipeline(p, cxt, &missing, &state, &start_failure))
	{
		case LI_PIPELINE_GONE:
			ereport(LOG, (errmsg("ledger_ingest pipeline \"%s\" no longer exists; worker exiting", p->name)));
			proc_exit(0);
			break;
		case LI_PIPELINE_NOT_RUNNING:
			ereport(LOG, (errmsg("ledger_ingest pipeline \"%s\" is %s; worker exiting", p->name, state)));
			proc_exit(0);
			break;
		case LI_PIPELINE_RUNNING:
			break;
	}

	/*
	 * The inbox has no head: journal every ledger, pruned by the window;
	 * the Stellar network does not reorganize: journal none.
	 */
	if (p->opts.stellar)
		p->journal_floor = PG_INT64_MAX;
	else if (!p->is_rpc)
		p->journal_floor = PG_INT64_MIN;

	if (pipeline_cxt != NULL)
		MemoryContextDelete(pipeline_cxt);
	pipeline_cxt = cxt;
	cxt = NULL;

	if (missing != NULL)
		missing = MemoryContextStrdup(caller_cxt, missing);	/* past SPI_finish */
	li_txn_commit(caller_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);

	/*
	 * An object the pipeline needs was dropped: never run a handler as a
	 * role that is gone, or a pipeline without one of its handlers.
	 */
	if (missing != NULL)
		finish_pipeline("failed", missing);
	return start_failure;
}

/* Sleep on the latch, with no transaction open. */
static void
worker_sleep(long ms)
{
	Assert(!IsTransactionState());
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Sleep the whole of a backoff: unlike worker_sleep, a set latch (an inbox
 * write, the fetcher's exit) does not end it, so that a node's Retry-After
 * and the backoff hold; interrupts (stop(), shutdown) do.
 */
static void
worker_backoff(long ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0)
			break;
		worker_sleep(left);
	}
}

/* Fetch the next batch from the pipeline's source, no transaction open. */
static void
fetch_batch(MemoryContext batch_cxt, LiBatch *batch)
{
	MemoryContext old;

	li_batch_init(batch, batch_cxt);
	li_set_wstate(pipeline.slot, LI_WS_FETCHING);
	old = MemoryContextSwitchTo(batch_cxt);
	if (pipeline.is_rpc)
		li_prefetch_fetch(&pipeline, batch);
	else if (pipeline.opts.is_stellar_rpc)
		li_stellar_rpc_fetch(&pipeline, batch);
	else
		li_inbox_fetch(&pipeline, batch);
	MemoryContextSwitchTo(old);
}

/*
 * The inbox document the fetch stopped at cannot be applied: mark it
 * rejected and record the error (counted against max_retries), or fail
 * the pipeline when skipping it would lose events.
 */
static void
reject_document(LiBatch *batch)
{
	char	   *msg = psprintf("inbox document " INT64_FORMAT " rejected: %s",
							   batch->reject_id, batch->reject_error);

	li_inbox_reject(&pipeline, batch->reject_id, batch->reject_error);
	if (batch->reject_fatal)
		finish_pipeline("failed", msg);
	set_pipeline_state("running", msg, true);
}

/*
 * evm_rpc saw a reorg at the cursor: walk back through the stored headers
 * to the fork point (batch->fork_ledger), retry when there is none after
 * all, fail the pipeline when it is beyond the reorg window.
 */
static void
find_fork(LiBatch *batch)
{
	switch (li_rpc_find_fork(&pipeline, &batch->fork_ledger, batch->fork_hash))
	{
		case LI_FORK_FOUND:
			batch->has_fork = true;
			break;
		case LI_FORK_NONE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("%s, but every stored ledger is still canonical; retrying",
							batch->reorg_error)));
			break;
		case LI_FORK_BEYOND_WINDOW:
			finish_pipeline("failed",
							psprintf("%s; no applied ledger within reorg_window %d of the cursor is canonical: the fork is deeper than the window",
									 batch->reorg_error, pipeline.opts.reorg_window));
			break;
	}
}

/*
 * Fail the pipeline, with nothing changed, unless everything the ledgers
 * after the fork did can be reverted: the fork within the reorg window and
 * every orphaned ledger in every tracked table's journal.
 */
static void
check_revertible(LiBatch *batch)
{
	int64		depth = pipeline.cursor.ledger - batch->fork_ledger;

	if (depth > pipeline.opts.reorg_window ||
		((pipeline.ntracked > 0 || pipeline.has_revert) && pipeline.is_rpc &&
		 batch->fork_ledger < pipeline.journal_floor))
		finish_pipeline("failed",
						psprintf("reorg at ledger " INT64_FORMAT ": the fork is " INT64_FORMAT " ledgers deep, beyond reorg_window %d; nothing was changed",
								 batch->fork_ledger + 1, depth, pipeline.opts.reorg_window));
	for (int i = 0; i < pipeline.ntracked && pipeline.sql_0_2; i++)
	{
		LiTracked  *t = &pipeline.tracked[i];

		if (!t->has_since || batch->fork_ledger + 1 < t->since)
			finish_pipeline("failed",
							t->has_since ?
							psprintf("reorg at ledger " INT64_FORMAT ": table %s is journaled only from ledger " INT64_FORMAT "; nothing was changed",
									 batch->fork_ledger + 1, t->relname, t->since) :
							psprintf("reorg at ledger " INT64_FORMAT ": table %s was tracked after the orphaned ledgers were applied; nothing was changed",
									 batch->fork_ledger + 1, t->relname));
	}
}

/*
 * One cycle: refresh, fetch, apply, then what the fetch stopped at (a
 * document to reject, a reorg to revert) and the end of a bounded
 * evm_rpc range.  Returns true when the next cycle should follow at once
 * (something was applied, or the cursor moved under the worker).
 */
static bool
worker_cycle(MemoryContext batch_cxt)
{
	LiBatch		batch;
	bool		applied = false;

	phase = PHASE_REFRESH;
	(void) refresh_pipeline(&pipeline);

	phase = PHASE_FETCH;
	fetch_batch(batch_cxt, &batch);
	if (batch.nledgers > 0 && pipeline.nfactories > 0)
		li_factories_filter(&pipeline, &batch);
	if (batch.nledgers > 0)
	{
		phase = PHASE_APPLY;
		if (li_apply_batch(&pipeline, &batch) == LI_APPLY_LOST_CAS)
		{
			li_factories_forget();
			ereport(LOG,
					(errmsg("ledger_ingest pipeline \"%s\": cursor moved concurrently; re-reading it",
							pipeline.name)));
			return true;
		}
		applied = true;
	}

	phase = PHASE_AFTER;
	if (batch.reject_id > 0)
	{
		reject_document(&batch);
		return true;
	}
	if (batch.reorg && batch.nledgers == 0 && pipeline.is_rpc && !batch.has_fork)
		find_fork(&batch);
	if (batch.reorg && batch.has_fork)
	{
		check_revertible(&batch);
		phase = PHASE_APPLY;
		li_factories_forget();
		if (li_revert(&pipeline, batch.fork_ledger, batch.fork_hash) == LI_APPLY_LOST_CAS)
			ereport(LOG,
					(errmsg("ledger_ingest pipeline \"%s\": cursor moved during a reorg; re-reading it",
							pipeline.name)));
		return true;
	}
	if (batch.reorg)
		finish_pipeline("failed", batch.reorg_error);
	if (batch.fail_error != NULL)
		finish_pipeline("failed", batch.fail_error);
	if ((pipeline.is_rpc || pipeline.opts.is_stellar_rpc) && pipeline.opts.to_block >= 0 &&
		pipeline.cursor.complete && pipeline.cursor.ledger >= pipeline.opts.to_block)
		finish_pipeline("finished", NULL);
	return applied;
}

/* consecutive failures of the worker's cycle: any phase, and applying */
static int	failures = 0;
static int	apply_failures = 0;

/*
 * Process settings of the worker, before it touches any pipeline: malloc
 * keeps freed memory between batches, application_name names the
 * pipeline, search_path puts the built-in names first.
 */
static void
set_worker_settings(void)
{
#ifdef __GLIBC__

	/*
	 * Each batch allocates and frees tens of megabytes (parsed ledgers,
	 * event arrays, sink buffers).  With glibc's defaults those blocks are
	 * mmap'd and unmapped, or trimmed from the heap, at every batch, and the
	 * next batch pays a page fault per 4 kB to get them back (12-16% of the
	 * worker's time in perf).  Keep up to LI_MALLOC_KEEP in the heap
	 * instead; larger blocks still go back to the kernel.  The worker's RSS
	 * stays flat either way (make bench samples it).
	 */
	mallopt(M_MMAP_THRESHOLD, LI_MALLOC_KEEP);
	mallopt(M_TRIM_THRESHOLD, LI_MALLOC_KEEP);
#endif
	/* as a setting, so that restoring a handler's settings keeps it */
	SetConfigOption("application_name", psprintf("ledger_ingest %s", pipeline.name),
					PGC_USERSET, PGC_S_SESSION);

	/*
	 * Built-in names first: a search_path set for the database (ALTER
	 * DATABASE ... SET) must not let a schema shadow a function or operator
	 * in what the worker runs as superuser.  "public" stays searched (after
	 * pg_catalog) for handlers that name their objects without a schema;
	 * a handler with its own SET search_path gets that.
	 */
	SetConfigOption("search_path", LI_WORKER_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);
}

/*
 * Take the pipeline's shared slot: exits when another live worker holds
 * it, takes it over from a dead one.  ERROR when no slot is free.
 */
static LiSlot *
claim_slot(Oid dboid)
{
	LiSlot	   *slot;
	pid_t		other = 0;

	slot = li_find_slot(dboid, pipeline.name, true);
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no free ledger_ingest slot for pipeline \"%s\"", pipeline.name),
				 errhint("Raise ledger_ingest.max_pipelines.")));
	SpinLockAcquire(&slot->mutex);
	if (slot->pid != 0 && slot->pid != MyProcPid)
		other = slot->pid;
	else
	{
		slot->pid = MyProcPid;
		slot->latch = &MyProc->procLatch;
		slot->wstate = LI_WS_STARTING;
	}
	SpinLockRelease(&slot->mutex);
	if (other != 0 && kill(other, 0) == 0)
	{
		ereport(LOG,
				(errmsg("ledger_ingest pipeline \"%s\" already has worker %d; exiting",
						pipeline.name, (int) other)));
		proc_exit(0);
	}
	if (other != 0)
	{
		SpinLockAcquire(&slot->mutex);
		slot->pid = MyProcPid;
		slot->latch = &MyProc->procLatch;
		slot->wstate = LI_WS_STARTING;
		SpinLockRelease(&slot->mutex);
	}
	return slot;
}

/*
 * What a failed cycle records as the pipeline's last_error: the SQLSTATE
 * and message, with the ledger, event and handler when it failed applying.
 */
static char *
cycle_error_message(ErrorData *edata, WorkerPhase phase)
{
	if (phase == PHASE_APPLY && li_apply_ctx.handler != NULL)
		return psprintf("%s: %s (ledger " INT64_FORMAT ", tx_index %d, event_index %d, handler %s)",
					   unpack_sql_state(edata->sqlerrcode), edata->message,
					   li_apply_ctx.ledger, li_apply_ctx.tx_index,
					   li_apply_ctx.event_index, li_apply_ctx.handler);
	else if (phase == PHASE_APPLY)
		return psprintf("%s: %s (ledger " INT64_FORMAT ")",
					   unpack_sql_state(edata->sqlerrcode), edata->message,
					   li_apply_ctx.ledger);
	else
		return psprintf("%s: %s", unpack_sql_state(edata->sqlerrcode),
					   edata->message);
}

/*
 * How long to wait before the next attempt after "failures" consecutive
 * failures (1, 2, ...): BACKOFF_MIN_MS doubling up to BACKOFF_MAX_MS, plus
 * up to a quarter of it at random (so that many workers failing together
 * do not retry together), or the node's Retry-After when it sent a longer
 * one, up to the cap.
 */
static long
retry_delay_ms(int failures)
{
	long		backoff;
	int64		retry_after = li_rpc_take_retry_after_ms();

	backoff = BACKOFF_MIN_MS << Min(failures - 1, 10);
	backoff = Min(backoff, BACKOFF_MAX_MS);
	backoff += (long) pg_prng_uint64_range(&pg_global_prng_state, 0, backoff / 4);
	if (retry_after > backoff)
		backoff = (long) Min(retry_after, (int64) BACKOFF_MAX_MS);
	return backoff;
}

/*
 * The worker's first read of its pipeline: clears the launcher's note that
 * it had to wait for a slot, publishes the committed cursor for
 * wait_for(), and sets up the JSON-RPC client of an evm_rpc pipeline.
 */
static void
first_refresh(LiSlot *slot)
{
	if (refresh_pipeline(&pipeline))
		clear_start_failure();
	SpinLockAcquire(&slot->mutex);
	slot->committed = pipeline.cursor;
	slot->cursor_known = true;
	SpinLockRelease(&slot->mutex);
	ConditionVariableBroadcast(&slot->cv);
	if (pipeline.is_rpc)
		li_rpc_init(&pipeline);
	else if (pipeline.opts.is_stellar_rpc)
		li_stellar_rpc_init(&pipeline);
}

/*
 * After a failed cycle: fail the pipeline once its handlers have failed
 * more than max_retries times in a row (transient errors do not count),
 * else record the error, show the worker as retrying and wait
 * retry_delay_ms.  msg is pfree'd.
 */
static void
retry_after_failure(char *msg, WorkerPhase failed_phase, bool transient)
{
	failures++;
	if (failed_phase == PHASE_APPLY && !transient)
		apply_failures++;
	if (failed_phase == PHASE_APPLY && apply_failures > pipeline.opts.max_retries)
		finish_pipeline("failed", msg);
	record_error(msg);
	li_set_wstate(pipeline.slot, LI_WS_RETRYING);
	pfree(msg);
	worker_backoff(retry_delay_ms(failures));
}

/*
 * Run one cycle, catching its error (autovacuum's pattern: EmitErrorReport,
 * AbortOutOfAnyTransaction, FlushErrorState), then recording it and
 * backing off (retry_after_failure).  Returns false when it failed;
 * otherwise *applied says whether it applied something.
 */
static bool
try_cycle(MemoryContext batch_cxt, bool *applied)
{
	volatile bool failed = false;
	char	   *volatile errmsg_copy = NULL;
	volatile WorkerPhase failed_phase = PHASE_REFRESH;
	volatile bool transient = false;

	*applied = false;
	PG_TRY();
	{
		*applied = worker_cycle(batch_cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		EmitErrorReport();
		MemoryContextSwitchTo(worker_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		li_apply_ctx.active = false;
		li_factories_forget();
		RESUME_INTERRUPTS();

		failed = true;
		failed_phase = phase;
		transient = transient_error(edata->sqlerrcode);
		errmsg_copy = cycle_error_message(edata, phase);
		li_apply_ctx.handler = NULL;
		FreeErrorData(edata);
	}
	PG_END_TRY();

	if (failed)
		retry_after_failure(errmsg_copy, failed_phase, transient);
	return !failed;
}

/*
 * ledger_ingest_worker_main -- entry point of a pipeline's dynamic worker.
 * bgw_main_arg is the database OID, bgw_extra the pipeline name.
 */
void
ledger_ingest_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext batch_cxt;
	LiSlot	   *slot;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	memset(&pipeline, 0, sizeof(pipeline));
	strlcpy(pipeline.name, MyBgworkerEntry->bgw_extra, LI_NAME_MAX);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	set_worker_settings();

	slot = claim_slot(dboid);
	pipeline.slot = slot;
	before_shmem_exit(worker_shmem_exit, (Datum) 0);
	li_register_xact_callback();

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "ledger_ingest worker",
									   ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(worker_cxt, "ledger_ingest batch",
									  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(worker_cxt);

	first_refresh(slot);

	ereport(LOG,
			(errmsg("ledger_ingest pipeline \"%s\" started at ledger " INT64_FORMAT,
					pipeline.name, pipeline.cursor.ledger)));

	for (;;)
	{
		bool		applied;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(worker_cxt);

		if (!try_cycle(batch_cxt, &applied))
			continue;
		failures = 0;
		apply_failures = 0;
		if (!applied)
		{
			li_set_wstate(slot, LI_WS_IDLE);
			worker_sleep(pipeline.opts.poll_ms);
		}
	}
}
