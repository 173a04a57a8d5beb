/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The supervisor and the launcher: one dynamic worker per running
 *	  pipeline.
 *
 * The supervisor is the static background worker.  It connects to no
 * database (like PostgreSQL's logical replication launcher) and keeps one
 * launcher per database where the extension is installed, as TimescaleDB's
 * launcher keeps one scheduler per database.  It learns which databases
 * those are without holding a connection: each database of pg_database
 * that allows connections is probed once (a launcher connects, finds no
 * extension, records that in shared memory and exits; one probe at a
 * time), and CREATE EXTENSION, ALTER EXTENSION UPDATE and
 * resume_database() mark their database to be probed again at commit.
 * So a server that preloads the library but has the extension nowhere
 * keeps no connection open, and CREATE DATABASE ... TEMPLATE or ALTER
 * DATABASE ... RENAME of a database without pipelines just work.  A
 * launcher that exits by accident is restarted with backoff (1 s doubling
 * up to 60 s); a dropped database is forgotten.  With ledger_ingest.database
 * set, only that database is served, and while it does not exist (never
 * created, or dropped with DROP DATABASE ... WITH (FORCE)) the supervisor
 * waits, logging once.
 *
 * A launcher connects to its database and, whenever its latch is set
 * (start/stop/drop commit, a worker exits) or once a second, reads the
 * pipeline table and reconciles: it registers a worker for each pipeline
 * in state 'running' that has none, terminates workers whose pipeline is
 * no longer running, and restarts a worker that exited with exponential
 * backoff (1 s doubling up to 60 s), so that a failing pipeline never
 * crash-loops.  When the extension is dropped, or the database paused
 * (pause_database()), it stops its workers and exits.  Modelled on
 * PostgreSQL's worker_spi and pg_prewarm's autoprewarm.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
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

#include "catalog.h"
#include "ledger_ingest.h"
#include "xact.h"

#define LAUNCHER_NAP_MS		1000
#define RESTART_MIN_MS		1000
#define RESTART_MAX_MS		60000

/*
 * The next delay before restarting a process that could not start or
 * exited: twice the last one, at least RESTART_MIN_MS, at most
 * RESTART_MAX_MS.
 */
static inline int
next_restart_ms(int last_ms)
{
	return Min(Max(last_ms * 2, RESTART_MIN_MS), RESTART_MAX_MS);
}

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

/*
 * li_db_entry -- the supervisor's entry of database dboid; with create, a
 * free entry is claimed for it in state LI_DB_PROBE.  NULL when there is
 * none (or no free one).  The caller holds li_shared->mutex; nothing here
 * can fail (commit callbacks use it).
 */
LiDatabase *
li_db_entry(Oid dboid, bool create)
{
	LiDatabase *free_db = NULL;

	for (int i = 0; i < LI_MAX_DATABASES; i++)
	{
		LiDatabase *db = &li_shared->dbs[i];

		if (db->state == LI_DB_FREE)
		{
			if (free_db == NULL)
				free_db = db;
		}
		else if (db->dboid == dboid)
			return db;
	}
	if (!create || free_db == NULL)
		return NULL;
	memset(free_db, 0, sizeof(LiDatabase));
	free_db->dboid = dboid;
	free_db->state = LI_DB_PROBE;
	return free_db;
}

/*
 * This launcher's database entry, the registrations it had seen when it
 * last scanned, and why it exits.
 */
static LiDatabase *my_db = NULL;
static uint32 scanned_generation = 0;
static LiDbState exit_state = LI_DB_ACTIVE;

/*
 * A launcher that exits on purpose (no extension, paused) records why, so
 * that the supervisor does not start it again -- unless a registration
 * (CREATE EXTENSION, resume_database()) committed after its last scan,
 * which it may not have seen: then the database is probed again.  A
 * launcher that fails leaves its state, and is restarted with backoff.
 */
static void
launcher_shmem_exit(int code, Datum arg)
{
	SpinLockAcquire(&li_shared->mutex);
	if (my_db != NULL && my_db->launcher_pid == MyProcPid)
	{
		my_db->launcher_pid = 0;
		my_db->launcher_latch = NULL;
		if (code == 0)
			my_db->state = my_db->generation == scanned_generation ?
				exit_state : LI_DB_PROBE;
	}
	SpinLockRelease(&li_shared->mutex);
}

static int
slot_index(LiSlot *s)
{
	return (int) (s - li_shared->slots);
}

/*
 * Register a dynamic background worker of this library: function "fn",
 * bgw_type "type", named "type name", connected to database dboid
 * (bgw_main_arg), with "extra" (or nothing) in bgw_extra, never restarted by
 * the postmaster (we restart it, with backoff), notifying this process when
 * it starts and stops.  The handle lives in TopMemoryContext.  Returns
 * false when no background worker slot is free.
 */
static bool
start_bgworker(const char *fn, const char *type, const char *name, Oid dboid,
			   const char *extra, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	MemoryContext old;
	bool		started;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "ledger_ingest", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, fn, BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s %s", type, name);
	strlcpy(worker.bgw_type, type, BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	if (extra != NULL)
		strlcpy(worker.bgw_extra, extra, BGW_EXTRALEN);
	worker.bgw_notify_pid = MyProcPid;
	old = MemoryContextSwitchTo(TopMemoryContext);
	started = RegisterDynamicBackgroundWorker(&worker, handle);
	MemoryContextSwitchTo(old);
	if (!started)
		*handle = NULL;
	return started;
}

/*
 * Has the background worker of *handle exited?  Then forget the handle and
 * set when it may start again: RESTART_MIN_MS after a run of a minute or
 * more, else twice the last backoff, up to RESTART_MAX_MS, so that nothing
 * crash-loops.
 */
static bool
reap(BackgroundWorkerHandle **handle, TimestampTz started_at, int *backoff_ms,
	 TimestampTz *next_start, TimestampTz now)
{
	pid_t		pid;
	BgwHandleStatus st = GetBackgroundWorkerPid(*handle, &pid);

	if (st != BGWH_STOPPED && st != BGWH_POSTMASTER_DIED)
		return false;
	pfree(*handle);
	*handle = NULL;
	*backoff_ms = TimestampDifferenceExceeds(started_at, now, 60000) ? RESTART_MIN_MS :
		next_restart_ms(*backoff_ms);
	*next_start = TimestampTzPlusMilliseconds(now, *backoff_ms);
	return true;
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
		char	   *error = psprintf(LI_START_FAILURE "%s; waiting", why);
		bool		changed;

		(void) li_txn_begin();
		changed = li_catalog_record_start_failure(name, error);
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
	BackgroundWorkerHandle *handle;

	StaticAssertStmt(LI_NAME_MAX <= BGW_EXTRALEN, "pipeline name must fit in bgw_extra");
	if (!start_bgworker("ledger_ingest_worker_main", "ledger_ingest worker", slot->name,
						slot->dboid, slot->name, &handle))
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

/*
 * Scan the pipeline table; mark entries wanted/existing.  Returns
 * LI_DB_ACTIVE, or LI_DB_ABSENT when the extension is not installed and
 * LI_DB_PAUSED when the database is paused (no pipeline is wanted then).
 */
static LiDbState
scan_pipelines(void)
{
	MemoryContext caller_cxt;
	List	   *nwaiting = NIL;
	ListCell   *lc;
	LiDbState	result = LI_DB_ABSENT;

	for (int i = 0; i < li_max_pipelines; i++)
	{
		entries[i].wanted = false;
		entries[i].exists = false;
	}

	caller_cxt = li_txn_begin();
	pgstat_report_activity(STATE_RUNNING, "ledger_ingest launcher: scanning pipelines");

	if (OidIsValid(get_extension_oid("ledger_ingest", true)))
		result = li_catalog_database_paused() ? LI_DB_PAUSED : LI_DB_ACTIVE;
	if (result == LI_DB_ACTIVE)
	{
		char	  **names;
		bool	   *running;
		int			n = li_catalog_list_pipelines(&names, &running);

		for (int r = 0; r < n; r++)
		{
			LiSlot	   *slot = li_find_slot(MyDatabaseId, names[r], running[r]);

			if (slot == NULL)
			{
				if (running[r])
				{
					/* past SPI_finish */
					MemoryContext old = MemoryContextSwitchTo(caller_cxt);

					nwaiting = lappend(nwaiting, pstrdup(names[r]));
					MemoryContextSwitchTo(old);
				}
				continue;
			}
			entries[slot_index(slot)].exists = true;
			entries[slot_index(slot)].wanted = running[r];
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
	return result;
}

/* Does any worker of this database still run (or hold its slot)? */
static bool
any_worker(void)
{
	for (int i = 0; i < li_max_pipelines; i++)
	{
		LiSlot	   *slot = &li_shared->slots[i];

		if (entries[i].handle != NULL)
			return true;
		if (slot->in_use && slot->dboid == MyDatabaseId)
			return true;
	}
	return false;
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

		if (!slot->in_use || slot->dboid != MyDatabaseId)
			continue;

		if (e->handle != NULL)
		{
			if (reap(&e->handle, e->started_at, &e->backoff_ms, &e->next_start, now))
			{
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
					e->backoff_ms = next_restart_ms(e->backoff_ms);
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
 * Scan the pipelines (scan_pipelines).  A failed scan (the extension being
 * dropped under us, say) is logged and retried at the next tick, keeping
 * the workers the launcher knows of; the launcher does not exit.  Returns
 * what the scan found, LI_DB_ACTIVE after a failure.
 */
static LiDbState
try_scan(void)
{
	volatile LiDbState want = LI_DB_ACTIVE;

	PG_TRY();
	{
		MemoryContext old = MemoryContextSwitchTo(scan_cxt);

		SpinLockAcquire(&li_shared->mutex);
		if (my_db != NULL)
			scanned_generation = my_db->generation;
		SpinLockRelease(&li_shared->mutex);
		want = scan_pipelines();
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
	return want;
}

/*
 * ledger_ingest_launcher_main -- entry point of the launcher, a dynamic
 * worker started by the supervisor; bgw_main_arg is the database OID.
 */
void
ledger_ingest_launcher_main(Datum arg)
{
	char	   *dbname;
	bool		announced = false;

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
	my_db = li_db_entry(MyDatabaseId, true);
	if (my_db != NULL)
	{
		my_db->launcher_pid = MyProcPid;
		my_db->launcher_latch = &MyProc->procLatch;
	}
	SpinLockRelease(&li_shared->mutex);
	before_shmem_exit(launcher_shmem_exit, (Datum) 0);

	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	CommitTransactionCommand();
	for (;;)
	{
		long		nap;
		LiDbState	want;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		want = try_scan();
		MemoryContextReset(scan_cxt);
		nap = reconcile();

		if (want == LI_DB_ACTIVE && !announced)
		{
			ereport(LOG,
					(errmsg("ledger_ingest launcher started for database \"%s\"", dbname)));
			SpinLockAcquire(&li_shared->mutex);
			if (my_db != NULL)
				my_db->state = LI_DB_ACTIVE;
			SpinLockRelease(&li_shared->mutex);
			announced = true;
		}
		if (want != LI_DB_ACTIVE && !any_worker())
		{
			/* no extension, or paused: hold no connection to the database */
			if (announced || want == LI_DB_PAUSED)
				ereport(LOG,
						(errmsg("ledger_ingest launcher for database \"%s\" exiting: %s",
								dbname,
								want == LI_DB_PAUSED ? "the database is paused (resume_database())" :
								"the extension is not installed")));
			exit_state = want;
			proc_exit(0);
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* A database the supervisor may serve. */
typedef struct DbInfo
{
	Oid			oid;
	char		name[NAMEDATALEN];
} DbInfo;

/*
 * The databases that allow connections, or only ledger_ingest.database
 * when it is set; *n gets their number.  A heap scan of pg_database, as
 * autovacuum's get_database_list does: without a database the indexes of
 * the shared catalogs cannot be used.  Allocated in CurrentMemoryContext.
 */
static DbInfo *
list_databases(int *n)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			max = 16;
	DbInfo	   *dbs = palloc(sizeof(DbInfo) * max);
	MemoryContext cxt = CurrentMemoryContext;

	*n = 0;
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		CHECK_FOR_INTERRUPTS();
		if (!db->datallowconn)
			continue;
		if (li_database[0] != '\0' && strcmp(NameStr(db->datname), li_database) != 0)
			continue;
		if (*n == max)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			max *= 2;
			dbs = repalloc(dbs, sizeof(DbInfo) * max);
			MemoryContextSwitchTo(old);
		}
		dbs[*n].oid = db->oid;
		strlcpy(dbs[*n].name, NameStr(db->datname), NAMEDATALEN);
		(*n)++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return dbs;
}

/* The supervisor's own bookkeeping per LiShared->dbs entry. */
typedef struct SupervisedDb
{
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz next_start;
	int			backoff_ms;
} SupervisedDb;

/* Start the launcher of database dboid; false (logged) when no slot is free. */
static bool
start_launcher(Oid dboid, const char *name, SupervisedDb *sd, TimestampTz now)
{
	if (start_bgworker("ledger_ingest_launcher_main", "ledger_ingest launcher", name,
					   dboid, NULL, &sd->handle))
	{
		sd->started_at = now;
		return true;
	}
	sd->handle = NULL;
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("could not start the ledger_ingest launcher of database \"%s\"", name),
			 errhint("Raise max_worker_processes.")));
	sd->backoff_ms = next_restart_ms(sd->backoff_ms);
	sd->next_start = TimestampTzPlusMilliseconds(now, sd->backoff_ms);
	return false;
}

/*
 * The supervisor reaps its exited launchers and forgets dropped databases
 * (dbs: the databases that exist).  Returns whether a probing launcher
 * still runs.
 */
static bool
reap_launchers(SupervisedDb *sup, DbInfo *dbs, int ndbs, TimestampTz now)
{
	bool		probing = false;

	for (int i = 0; i < LI_MAX_DATABASES; i++)
	{
		LiDatabase *db = &li_shared->dbs[i];
		SupervisedDb *sd = &sup[i];
		bool		listed = false;

		if (sd->handle != NULL)
			(void) reap(&sd->handle, sd->started_at, &sd->backoff_ms, &sd->next_start, now);
		SpinLockAcquire(&li_shared->mutex);
		if (db->state != LI_DB_FREE)
		{
			for (int j = 0; j < ndbs && !listed; j++)
				listed = dbs[j].oid == db->dboid;
			if (!listed && sd->handle == NULL && db->launcher_pid == 0)
				db->state = LI_DB_FREE;
		}
		if (sd->handle != NULL && db->state == LI_DB_PROBE)
			probing = true;
		SpinLockRelease(&li_shared->mutex);
		if (db->state == LI_DB_FREE && sd->handle == NULL)
			memset(sd, 0, sizeof(SupervisedDb));
	}
	return probing;
}

/*
 * The supervisor starts a launcher for every database it serves (the
 * extension is installed) and, one at a time, for a database to probe,
 * unless one runs or its restart delay has not passed.
 */
static void
start_launchers(SupervisedDb *sup, DbInfo *dbs, int ndbs, TimestampTz now, bool probing)
{
	for (int j = 0; j < ndbs; j++)
	{
		LiDatabase *db;
		LiDbState	state = LI_DB_FREE;
		pid_t		running = 0;
		int			i = -1;

		SpinLockAcquire(&li_shared->mutex);
		db = li_db_entry(dbs[j].oid, true);
		if (db != NULL)
		{
			i = (int) (db - li_shared->dbs);
			state = db->state;
			running = db->launcher_pid;
		}
		SpinLockRelease(&li_shared->mutex);
		if (i < 0)
			continue;			/* more databases than LI_MAX_DATABASES */
		if (sup[i].handle != NULL || running != 0 || now < sup[i].next_start)
			continue;
		if (state == LI_DB_ACTIVE || (state == LI_DB_PROBE && !probing))
		{
			if (start_launcher(dbs[j].oid, dbs[j].name, &sup[i], now) && state == LI_DB_PROBE)
				probing = true;
		}
	}
}

/*
 * ledger_ingest_supervisor_main -- entry point of the static supervisor.
 * See the header comment: one launcher per database where the extension is
 * installed, learnt by probing each database once and by registrations at
 * commit; no connection held to any other database.
 */
void
ledger_ingest_supervisor_main(Datum arg)
{
	SupervisedDb sup[LI_MAX_DATABASES];
	bool		warned_missing = false;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("ledger_ingest supervisor");
	memset(sup, 0, sizeof(sup));
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "ledger_ingest supervisor",
									 ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&li_shared->mutex);
	li_shared->supervisor_latch = &MyProc->procLatch;
	/* a restarted supervisor probes every database again */
	for (int i = 0; i < LI_MAX_DATABASES; i++)
		if (li_shared->dbs[i].state != LI_DB_FREE && li_shared->dbs[i].launcher_pid == 0)
			li_shared->dbs[i].state = LI_DB_PROBE;
	SpinLockRelease(&li_shared->mutex);

	for (;;)
	{
		DbInfo	   *dbs;
		int			ndbs;
		TimestampTz now;
		bool		probing;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		dbs = list_databases(&ndbs);
		now = GetCurrentTimestamp();

		if (li_database[0] != '\0')
		{
			if (ndbs == 0 && !warned_missing)
				ereport(LOG,
						(errmsg("ledger_ingest: database \"%s\" does not exist; waiting for it",
								li_database),
						 errhint("Create it, or set ledger_ingest.database and restart the server.")));
			warned_missing = (ndbs == 0);
		}

		probing = reap_launchers(sup, dbs, ndbs, now);
		start_launchers(sup, dbs, ndbs, now, probing);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAP_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
