/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The supervisor and the launcher: one dynamic worker per running
 *	  pipeline.
 *
 * The supervisor is the static background worker.  It connects to no
 * database (like PostgreSQL's logical replication launcher) and keeps one
 * launcher running while ledger_ingest.database exists, restarting it with
 * backoff; when the database is missing (never created, or dropped with
 * DROP DATABASE ... WITH (FORCE), which terminates the launcher and the
 * workers) it waits, logging once, instead of failing at every restart.
 *
 * The launcher connects to ledger_ingest.database and, whenever its latch
 * is set (start/stop/drop commit, a worker exits) or once a second, reads
 * the pipeline table and reconciles: it registers a worker for each
 * pipeline in state 'running' that has none, terminates workers whose
 * pipeline is no longer running, and restarts a worker that exited with
 * exponential backoff (1 s doubling up to 60 s), so that a failing
 * pipeline never crash-loops.  Modelled on PostgreSQL's worker_spi and
 * pg_prewarm's autoprewarm.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ledger_ingest.h"

#define LAUNCHER_NAP_MS		1000
#define RESTART_MIN_MS		1000
#define RESTART_MAX_MS		60000

/* launcher-local bookkeeping per slot */
typedef struct LauncherEntry
{
	BackgroundWorkerHandle *handle;
	TimestampTz next_start;		/* earliest restart after an exit */
	int			backoff_ms;
	TimestampTz started_at;
	bool		wanted;			/* seen as 'running' in the last scan */
	bool		exists;			/* seen at all in the last scan */
} LauncherEntry;

static LauncherEntry *entries;
static MemoryContext scan_cxt;	/* reset after every scan */

static void
launcher_shmem_exit(int code, Datum arg)
{
	SpinLockAcquire(&li_shared->mutex);
	li_shared->launcher_pid = 0;
	li_shared->launcher_latch = NULL;
	SpinLockRelease(&li_shared->mutex);
}

static int
slot_index(LiSlot *s)
{
	return (int) (s - li_shared->slots);
}

/*
 * Show in the pipeline's last_error (and errors counter) why its worker
 * could not be started (every background worker slot or every pipeline
 * slot is taken), so that status shows it 'waiting' and why.  The error
 * is "53000: ..." (insufficient_resources), which the status view reads
 * as 'waiting'.  Recorded, and logged as a WARNING, only when it is not
 * already the pipeline's last_error, so a long wait is not a log flood.
 * Best effort: a failure here is logged and the launcher goes on.
 */
static void
record_start_failure(const char *name, const char *why, const char *hint)
{
	MemoryContext caller_cxt = CurrentMemoryContext;

	PG_TRY();
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		args[2];
		char	   *error = psprintf("53000: could not start the pipeline's worker: %s; waiting", why);
		bool		changed;

		(void) li_txn_begin();
		args[0] = CStringGetTextDatum(name);
		args[1] = CStringGetTextDatum(error);
		if (SPI_execute_with_args("UPDATE ledger_ingest.pipeline SET last_error = $2, "
								  "errors = errors OPERATOR(pg_catalog.+) 1 "
								  "WHERE name OPERATOR(pg_catalog.=) $1 "
								  "AND state OPERATOR(pg_catalog.=) 'running' "
								  "AND last_error IS DISTINCT FROM $2",
								  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "recording the worker start failure failed");
		changed = SPI_processed > 0;
		li_txn_commit(caller_cxt);
		pfree(error);
		if (changed)
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start the worker of ledger_ingest pipeline \"%s\": %s",
							name, why),
					 errhint("%s", hint)));
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		MemoryContextSwitchTo(caller_cxt);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
}

/*
 * Register the dynamic worker of a pipeline.  The pipeline name travels in
 * bgw_extra, the database OID in bgw_main_arg.  Returns false (and logs
 * why) when no worker slot is free.
 */
static bool
start_worker(LiSlot *slot, LauncherEntry *e)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "ledger_ingest", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ledger_ingest_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "ledger_ingest worker %s", slot->name);
	strlcpy(worker.bgw_type, "ledger_ingest worker", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(slot->dboid);
	StaticAssertStmt(LI_NAME_MAX <= BGW_EXTRALEN, "pipeline name must fit in bgw_extra");
	strlcpy(worker.bgw_extra, slot->name, BGW_EXTRALEN);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		char	   *why = psprintf("no background worker slot is free (max_worker_processes = %d)",
								   max_worker_processes);

		record_start_failure(slot->name, why,
							 "Raise max_worker_processes: each running pipeline needs one.");
		pfree(why);
		return false;
	}
	e->handle = handle;
	e->started_at = GetCurrentTimestamp();
	return true;
}

/* Scan the pipeline table; mark entries wanted/existing. */
static void
scan_pipelines(void)
{
	int			ret;
	MemoryContext caller_cxt;
	List	   *nwaiting = NIL;
	ListCell   *lc;

	for (int i = 0; i < li_max_pipelines; i++)
	{
		entries[i].wanted = false;
		entries[i].exists = false;
	}

	caller_cxt = li_txn_begin();
	pgstat_report_activity(STATE_RUNNING, "ledger_ingest launcher: scanning pipelines");

	if (OidIsValid(get_extension_oid("ledger_ingest", true)))
	{
		/* running pipelines first: they claim the free slots */
		ret = SPI_execute("SELECT name, state OPERATOR(pg_catalog.=) 'running' "
						  "FROM ledger_ingest.pipeline ORDER BY 2 DESC, name", true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read ledger_ingest.pipeline: %d", ret);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			char	   *name = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
			bool		running = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r],
															 SPI_tuptable->tupdesc, 2, &isnull));
			LiSlot	   *slot = li_find_slot(MyDatabaseId, name, running);

			if (slot == NULL)
			{
				if (running)
				{
					/* past SPI_finish */
					MemoryContext old = MemoryContextSwitchTo(caller_cxt);

					nwaiting = lappend(nwaiting, pstrdup(name));
					MemoryContextSwitchTo(old);
				}
				continue;
			}
			entries[slot_index(slot)].exists = true;
			entries[slot_index(slot)].wanted = running;
		}
	}

	li_txn_commit(caller_cxt);
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* slots are taken by running pipelines only; these wait for one */
	foreach(lc, nwaiting)
		record_start_failure((char *) lfirst(lc),
							 psprintf("all %d pipeline slots are taken by running pipelines (ledger_ingest.max_pipelines)",
									  li_max_pipelines),
							 "Stop a pipeline or raise ledger_ingest.max_pipelines.");
}

/* Start, stop and restart workers to match the scan; returns ms to sleep. */
static long
reconcile(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		nap = LAUNCHER_NAP_MS;

	for (int i = 0; i < li_max_pipelines; i++)
	{
		LiSlot	   *slot = &li_shared->slots[i];
		LauncherEntry *e = &entries[i];
		pid_t		pid = 0;
		BgwHandleStatus st = BGWH_STOPPED;

		if (!slot->in_use || slot->dboid != MyDatabaseId)
			continue;

		if (e->handle != NULL)
		{
			st = GetBackgroundWorkerPid(e->handle, &pid);
			if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED)
			{
				/* the worker exited: restart it later, with backoff */
				bool		ran_long = TimestampDifferenceExceeds(e->started_at, now, 60000);

				pfree(e->handle);
				e->handle = NULL;
				e->backoff_ms = ran_long ? RESTART_MIN_MS :
					Min(Max(e->backoff_ms * 2, RESTART_MIN_MS), RESTART_MAX_MS);
				e->next_start = TimestampTzPlusMilliseconds(now, e->backoff_ms);
				SpinLockAcquire(&slot->mutex);
				slot->pid = 0;
				slot->latch = NULL;
				slot->wstate = LI_WS_NONE;
				SpinLockRelease(&slot->mutex);
			}
		}

		if (e->handle == NULL)
		{
			/* a worker started by an earlier launcher may still run */
			SpinLockAcquire(&slot->mutex);
			pid = slot->pid;
			SpinLockRelease(&slot->mutex);
			if (pid != 0 && kill(pid, 0) == 0)
			{
				if (!e->wanted)
					kill(pid, SIGTERM);
				continue;
			}
		}

		if (e->handle != NULL && !e->wanted)
		{
			/* stop or drop: terminate the worker (it holds no state) */
			TerminateBackgroundWorker(e->handle);
			continue;
		}

		if (e->handle == NULL && e->wanted)
		{
			if (now >= e->next_start)
			{
				if (!start_worker(slot, e))
				{
					e->backoff_ms = Min(Max(e->backoff_ms * 2, RESTART_MIN_MS), RESTART_MAX_MS);
					e->next_start = TimestampTzPlusMilliseconds(now, e->backoff_ms);
				}
			}
			else
			{
				long		wait = (long) ((e->next_start - now) / 1000) + 1;

				nap = Min(nap, wait);
			}
		}

		if (e->handle == NULL && !e->wanted)
		{
			/*
			 * Stopped, failed, finished or dropped, and no worker left: free
			 * its slot for a running pipeline (wait_for then reads the
			 * cursor table).
			 */
			LWLockAcquire(li_shared->lock, LW_EXCLUSIVE);
			slot->in_use = false;
			LWLockRelease(li_shared->lock);
			ConditionVariableBroadcast(&slot->cv);
			memset(e, 0, sizeof(*e));
		}
	}
	return nap;
}

/*
 * ledger_ingest_launcher_main -- entry point of the launcher, a dynamic
 * worker started by the supervisor; bgw_main_arg is the database OID.
 */
void
ledger_ingest_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	/* built-in names first, whatever the database's settings say */
	SetConfigOption("search_path", LI_WORKER_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);
	pgstat_report_appname("ledger_ingest launcher");

	entries = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(LauncherEntry) * li_max_pipelines);
	scan_cxt = AllocSetContextCreate(TopMemoryContext, "ledger_ingest launcher scan",
									 ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&li_shared->mutex);
	li_shared->launcher_pid = MyProcPid;
	li_shared->launcher_latch = &MyProc->procLatch;
	SpinLockRelease(&li_shared->mutex);
	before_shmem_exit(launcher_shmem_exit, (Datum) 0);

	ereport(LOG,
			(errmsg("ledger_ingest launcher started for database \"%s\"", li_database)));

	for (;;)
	{
		long		nap;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/*
		 * A failed scan (the extension being dropped under us, say) is
		 * logged and retried at the next tick; the launcher does not exit.
		 */
		PG_TRY();
		{
			MemoryContext old = MemoryContextSwitchTo(scan_cxt);

			scan_pipelines();
			MemoryContextSwitchTo(old);
		}
		PG_CATCH();
		{
			HOLD_INTERRUPTS();
			EmitErrorReport();
			AbortOutOfAnyTransaction();
			FlushErrorState();
			MemoryContextSwitchTo(TopMemoryContext);
			RESUME_INTERRUPTS();
			for (int i = 0; i < li_max_pipelines; i++)
			{
				/* keep the workers we know of until a scan succeeds */
				entries[i].wanted = entries[i].handle != NULL;
				entries[i].exists = true;
			}
		}
		PG_END_TRY();
		MemoryContextReset(scan_cxt);
		nap = reconcile();

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * The OID of database "name", or InvalidOid.  A heap scan of pg_database,
 * as autovacuum's get_database_list does: without a database the indexes
 * of the shared catalogs cannot be used.
 */
static Oid
find_database(const char *name)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) == 0)
		{
			result = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return result;
}

/*
 * ledger_ingest_supervisor_main -- entry point of the static supervisor.
 */
void
ledger_ingest_supervisor_main(Datum arg)
{
	BackgroundWorkerHandle *handle = NULL;
	TimestampTz started_at = 0;
	TimestampTz next_start = 0;
	int			backoff_ms = 0;
	bool		warned_missing = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("ledger_ingest supervisor");

	for (;;)
	{
		Oid			dboid;
		pid_t		pid;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dboid = find_database(li_database);

		now = GetCurrentTimestamp();
		if (handle != NULL &&
			GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			bool		ran_long = TimestampDifferenceExceeds(started_at, now, 60000);

			pfree(handle);
			handle = NULL;
			backoff_ms = ran_long ? RESTART_MIN_MS :
				Min(Max(backoff_ms * 2, RESTART_MIN_MS), RESTART_MAX_MS);
			next_start = TimestampTzPlusMilliseconds(now, backoff_ms);
		}
		if (!OidIsValid(dboid))
		{
			if (!warned_missing)
				ereport(LOG,
						(errmsg("ledger_ingest: database \"%s\" does not exist; waiting for it",
								li_database),
						 errhint("Create it, or set ledger_ingest.database and restart the server.")));
			warned_missing = true;
		}
		else if (handle == NULL && now >= next_start)
		{
			BackgroundWorker worker;

			warned_missing = false;
			memset(&worker, 0, sizeof(worker));
			worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
			worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
			worker.bgw_restart_time = BGW_NEVER_RESTART;
			strlcpy(worker.bgw_library_name, "ledger_ingest", BGW_MAXLEN);
			strlcpy(worker.bgw_function_name, "ledger_ingest_launcher_main", BGW_MAXLEN);
			strlcpy(worker.bgw_name, "ledger_ingest launcher", BGW_MAXLEN);
			strlcpy(worker.bgw_type, "ledger_ingest launcher", BGW_MAXLEN);
			worker.bgw_main_arg = ObjectIdGetDatum(dboid);
			worker.bgw_notify_pid = MyProcPid;
			if (RegisterDynamicBackgroundWorker(&worker, &handle))
				started_at = now;
			else
			{
				handle = NULL;
				ereport(WARNING,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("could not start the ledger_ingest launcher"),
						 errhint("Raise max_worker_processes.")));
				backoff_ms = Min(Max(backoff_ms * 2, RESTART_MIN_MS), RESTART_MAX_MS);
				next_start = TimestampTzPlusMilliseconds(now, backoff_ms);
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 OidIsValid(dboid) ? LAUNCHER_NAP_MS : 10 * LAUNCHER_NAP_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
