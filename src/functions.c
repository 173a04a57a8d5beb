/*-------------------------------------------------------------------------
 *
 * functions.c
 *	  SQL-callable functions that need shared memory.
 *
 * The pipeline API itself (create_pipeline, add_handler, start, stop,
 * cursor_cas, rewind, ...) is written in SQL in ledger_ingest--0.1.sql; the
 * functions here give it access to the launcher and to the committed cursor
 * that lives in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "ledger_ingest.h"
#include "publish.h"

PG_FUNCTION_INFO_V1(ledger_ingest_wait_for);
PG_FUNCTION_INFO_V1(ledger_ingest_wake_launcher);
PG_FUNCTION_INFO_V1(ledger_ingest_inbox_written);
PG_FUNCTION_INFO_V1(ledger_ingest_publish_cursor);
PG_FUNCTION_INFO_V1(ledger_ingest_shmem_status);
PG_FUNCTION_INFO_V1(ledger_ingest_shmem_fetched);
PG_FUNCTION_INFO_V1(ledger_ingest_notify);
PG_FUNCTION_INFO_V1(ledger_ingest_register_database);

/* The committed cursor, or an error naming the missing pipeline. */
static LiPosition
read_cursor_or_error(const char *pipeline, bool fresh)
{
	LiPosition	pos;

	if (!li_catalog_read_cursor(pipeline, fresh, &pos))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", pipeline)));
	return pos;
}

/* wait_for's poll of the cursor table where no worker publishes one */
#define WAIT_POLL_MS	100

/* Is "slot" still the shared state of "pipeline" in this database? */
static bool
slot_is(LiSlot *slot, const char *pipeline)
{
	bool		same;

	LWLockAcquire(li_shared->lock, LW_SHARED);
	same = slot->in_use && slot->dboid == MyDatabaseId &&
		strncmp(slot->name, pipeline, LI_NAME_MAX) == 0;
	LWLockRelease(li_shared->lock);
	return same;
}

/*
 * Has pipeline's cursor covered ledger?  Read from its slot when it has
 * one (the cursor its worker published at commit), else from the table
 * with a fresh snapshot.
 */
static bool
cursor_reached(LiSlot *slot, const char *pipeline, int64 ledger)
{
	LiPosition	pos;

	if (slot != NULL)
	{
		bool		known;

		SpinLockAcquire(&slot->mutex);
		known = slot->cursor_known;
		pos = slot->committed;
		SpinLockRelease(&slot->mutex);
		return known && li_position_reached(&pos, ledger);
	}
	pos = read_cursor_or_error(pipeline, true);
	return li_position_reached(&pos, ledger);
}

/*
 * Sleep until the slot's cursor advances (at most a second: a cursor
 * published before we slept) or, without a slot, for the poll interval;
 * never past remaining_ms.
 */
static void
wait_for_cursor(LiSlot *slot, long remaining_ms)
{
	if (slot != NULL)
		ConditionVariableTimedSleep(&slot->cv, Min(remaining_ms, 1000), PG_WAIT_EXTENSION);
	else
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(remaining_ms, WAIT_POLL_MS), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * ledger_ingest.wait_for(pipeline text, ledger bigint, timeout interval)
 *		RETURNS boolean
 *
 * True as soon as the committed cursor covers all of "ledger", false once
 * "timeout" (default 10 s, at most about 24 days) has passed.  The first
 * check reads the cursor table (so a ledger committed before the call
 * counts).  While the pipeline has a worker, the caller then sleeps on the
 * pipeline's condition variable in shared memory, broadcast by the commit
 * callback of the transaction that advances the cursor (publish.c).  Where
 * no worker publishes the cursor (a hot standby, which replays the
 * primary's commits; a stopped pipeline, whose cursor only moves by
 * cursor_cas or rewind) it reads the cursor table every 100 ms
 * (WAIT_POLL_MS), each time with a fresh snapshot.  Raises
 * undefined_object for an unknown pipeline; interruptible.
 */
Datum
ledger_ingest_wait_for(PG_FUNCTION_ARGS)
{
	char	   *pipeline;
	int64		ledger;
	Interval   *timeout;
	int64		timeout_us;
	TimestampTz deadline;
	LiSlot	   *slot;
	LiPosition	pos;
	bool		reached = false;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("wait_for arguments must not be NULL")));
	pipeline = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ledger = PG_GETARG_INT64(1);
	timeout = PG_GETARG_INTERVAL_P(2);
	li_attach_shmem();

	timeout_us = timeout->time + (int64) timeout->day * USECS_PER_DAY +
		(int64) timeout->month * DAYS_PER_MONTH * USECS_PER_DAY;
	if (timeout_us < 0)
		timeout_us = 0;
	deadline = GetCurrentTimestamp() + timeout_us;

	pos = read_cursor_or_error(pipeline, false);
	if (li_position_reached(&pos, ledger))
		PG_RETURN_BOOL(true);

	/* a pipeline without shared state has no worker: poll the table */
	slot = RecoveryInProgress() ? NULL : li_find_slot(MyDatabaseId, pipeline, false);
	if (slot != NULL)
		ConditionVariablePrepareToSleep(&slot->cv);
	for (;;)
	{
		long		remaining_ms;
		TimestampTz now;

		if (slot != NULL && !slot_is(slot, pipeline))
		{
			/* its slot was freed (stopped, dropped) and may be reused */
			ConditionVariableCancelSleep();
			slot = NULL;
		}
		if (cursor_reached(slot, pipeline, ledger))
		{
			reached = true;
			break;
		}
		now = GetCurrentTimestamp();
		if (now >= deadline)
			break;
		remaining_ms = (long) ((deadline - now + 999) / 1000);
		wait_for_cursor(slot, remaining_ms);
		CHECK_FOR_INTERRUPTS();
	}
	if (slot != NULL)
		ConditionVariableCancelSleep();

	/*
	 * The shared cursor may never have been published (no worker since the
	 * server started): the table is the truth.
	 */
	if (!reached)
	{
		pos = read_cursor_or_error(pipeline, true);
		reached = li_position_reached(&pos, ledger);
	}
	PG_RETURN_BOOL(reached);
}

/*
 * ledger_ingest._wake_launcher() RETURNS void
 *
 * Sets the launcher's latch when the calling transaction commits (never
 * before, and not at all on abort), so start/stop/drop act within a second.
 */
Datum
ledger_ingest_wake_launcher(PG_FUNCTION_ARGS)
{
	li_attach_shmem();
	li_wake_launcher_at_commit();
	PG_RETURN_VOID();
}

/*
 * ledger_ingest._inbox_written() RETURNS trigger
 *
 * The inbox's AFTER INSERT OR UPDATE row trigger: the worker of the row's
 * pipeline is woken when the writing transaction commits (not before, and
 * not on abort), so it applies new documents within milliseconds whatever
 * its poll_ms.  An AFTER trigger, so that COPY into the inbox keeps its
 * multi-row inserts; it reads only the pipeline column.
 */
Datum
ledger_ingest_inbox_written(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	int			attnum;
	Datum		d;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger_ingest._inbox_written() must be called as a row trigger")));
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	attnum = SPI_fnumber(trigdata->tg_relation->rd_att, "pipeline");
	if (attnum <= 0)
		elog(ERROR, "ledger_ingest.inbox has no column \"pipeline\"");
	d = heap_getattr(tuple, attnum, trigdata->tg_relation->rd_att, &isnull);
	if (!isnull)
	{
		char	   *name = TextDatumGetCString(d);

		li_attach_shmem();
		li_wake_worker_at_commit(name);
		pfree(name);
	}
	return PointerGetDatum(NULL);
}

/*
 * ledger_ingest._publish_cursor(pipeline text) RETURNS void
 *
 * Makes the pipeline's cursor, as this transaction sees it in the cursor
 * table, its committed cursor in shared memory when the transaction commits
 * (create_pipeline, cursor_cas and rewind call it).  Reading the table, under
 * the caller's row-level security, means a caller can only publish the
 * truth about a pipeline it owns.  No-op when the pipeline is not visible or
 * has no shared state yet.
 */
Datum
ledger_ingest_publish_cursor(PG_FUNCTION_ARGS)
{
	char	   *pipeline;
	LiPosition	pos;
	LiSlot	   *slot;

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	li_attach_shmem();
	pipeline = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!li_catalog_read_cursor(pipeline, true, &pos))
		PG_RETURN_VOID();
	slot = li_find_slot(MyDatabaseId, pipeline, false);
	if (slot != NULL)
		li_publish_at_commit(slot, &pos);
	PG_RETURN_VOID();
}

static const char *
wstate_name(LiWorkerState st)
{
	switch (st)
	{
		case LI_WS_NONE:
			return NULL;
		case LI_WS_STARTING:
			return "starting";
		case LI_WS_IDLE:
			return "idle";
		case LI_WS_FETCHING:
			return "fetching";
		case LI_WS_APPLYING:
			return "applying";
		case LI_WS_RETRYING:
			return "retrying";
	}
	return NULL;
}

/*
 * ledger_ingest._register_database() RETURNS void
 *
 * When the calling transaction commits, have the supervisor start a
 * launcher for the current database (CREATE EXTENSION, ALTER EXTENSION
 * UPDATE and resume_database() call it).  A no-op without
 * shared_preload_libraries, so that CREATE EXTENSION works there too.
 */
Datum
ledger_ingest_register_database(PG_FUNCTION_ARGS)
{
	if (li_shared != NULL)
		li_register_database_at_commit();
	PG_RETURN_VOID();
}

/*
 * ledger_ingest._notify(pipeline text, payload text) RETURNS boolean
 *
 * NOTIFY ledger_ingest, payload -- unless the NOTIFY queue is fuller than
 * ledger_ingest.notify_queue_limit: then the notification is dropped,
 * counted and logged (li_notify), so that start() and stop() never fail on
 * a pinned queue.  Returns whether it was queued.
 */
Datum
ledger_ingest_notify(PG_FUNCTION_ARGS)
{
	char	   *pipeline;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	li_attach_shmem();
	pipeline = text_to_cstring(PG_GETARG_TEXT_PP(0));
	/* a drop is counted only for a pipeline the caller may see */
	PG_RETURN_BOOL(li_notify(li_catalog_pipeline_visible(pipeline) ?
							 li_find_slot(MyDatabaseId, pipeline, false) : NULL,
							 pipeline, text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

/*
 * ledger_ingest._shmem_status() RETURNS SETOF (pipeline text, pid int,
 *		head bigint, worker_state text, notifications_dropped bigint,
 *		worker_error text)
 *
 * One row per pipeline of the current database that has shared state and
 * that the caller may see in ledger_ingest.pipeline: its
 * worker's pid (NULL if none runs), the newest ledger the source reported
 * (NULL if unknown) and what the worker is doing.
 */
Datum
ledger_ingest_shmem_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	  **visible;
	int			nvisible;

	li_attach_shmem();
	InitMaterializedSRF(fcinfo, 0);

	/* only pipelines the caller may see (row-level security) */
	nvisible = li_catalog_visible_pipelines(&visible);

	LWLockAcquire(li_shared->lock, LW_SHARED);
	for (int i = 0; i < li_max_pipelines; i++)
	{
		LiSlot	   *s = &li_shared->slots[i];
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};
		char		error[sizeof(s->error)];
		pid_t		pid;
		int64		head;
		int64		dropped;
		LiWorkerState st;
		const char *stname;

		bool		seen = false;

		if (!s->in_use || s->dboid != MyDatabaseId)
			continue;
		for (int v = 0; v < nvisible && !seen; v++)
			seen = strcmp(visible[v], s->name) == 0;
		if (!seen)
			continue;
		SpinLockAcquire(&s->mutex);
		pid = s->pid;
		head = s->head;
		st = s->wstate;
		dropped = s->notifies_dropped;
		memcpy(error, s->error, sizeof(error));
		SpinLockRelease(&s->mutex);

		values[0] = CStringGetTextDatum(s->name);
		values[1] = Int32GetDatum((int32) pid);
		nulls[1] = (pid == 0);
		values[2] = Int64GetDatum(head);
		nulls[2] = (head < 0);
		stname = pid != 0 ? wstate_name(st) : NULL;
		if (stname)
			values[3] = CStringGetTextDatum(stname);
		else
			nulls[3] = true;
		values[4] = Int64GetDatum(dropped);
		if (error[0] != '\0')
			values[5] = CStringGetTextDatum(error);
		else
			nulls[5] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(li_shared->lock);
	return (Datum) 0;
}

/*
 * ledger_ingest._shmem_fetched(pipeline text) RETURNS bigint
 *
 * The newest ledger the pipeline's fetcher process (prefetch.c) has fetched
 * ahead of its cursor, from shared memory; NULL when it has none, or when
 * the caller may not see the pipeline (row-level security).
 */
Datum
ledger_ingest_shmem_fetched(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	LiSlot	   *s;
	int64		fetched = -1;

	li_attach_shmem();
	if (!li_catalog_pipeline_visible(name))
		PG_RETURN_NULL();
	s = li_find_slot(MyDatabaseId, name, false);
	if (s != NULL)
	{
		SpinLockAcquire(&s->mutex);
		fetched = s->fetched;
		SpinLockRelease(&s->mutex);
	}
	if (fetched < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(fetched);
}
