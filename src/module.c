/*-------------------------------------------------------------------------
 *
 * module.c
 *	  Module load: GUCs, shared memory and the static launcher worker.
 *
 * The library must be in shared_preload_libraries: the shared memory and
 * the supervisor (which keeps the launcher running) are set up by the
 * postmaster.  Loaded any other way, the SQL
 * functions that need them raise a clear error (li_attach_shmem).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "ledger_ingest.h"
#include "shmem.h"

PG_MODULE_MAGIC;

char	   *li_database = NULL;
int			li_max_pipelines = 16;
double		li_notify_queue_limit = 0.5;

LiShared   *li_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

static Size
li_shmem_size(void)
{
	return add_size(offsetof(LiShared, slots),
					mul_size(sizeof(LiSlot), li_max_pipelines));
}

static void
li_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(li_shmem_size());
	RequestNamedLWLockTranche("ledger_ingest", 1);
}

static void
li_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	li_shared = ShmemInitStruct("ledger_ingest", li_shmem_size(), &found);
	if (!found)
	{
		memset(li_shared, 0, li_shmem_size());
		li_shared->lock = &(GetNamedLWLockTranche("ledger_ingest"))->lock;
		SpinLockInit(&li_shared->mutex);
		for (int i = 0; i < li_max_pipelines; i++)
		{
			SpinLockInit(&li_shared->slots[i].mutex);
			ConditionVariableInit(&li_shared->slots[i].cv);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * li_attach_shmem -- error out unless the library was preloaded.
 *
 * Every SQL function that needs the launcher or shared memory calls this
 * first.
 */
void
li_attach_shmem(void)
{
	if (li_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger_ingest must be loaded via shared_preload_libraries"),
				 errhint("Add ledger_ingest to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * li_find_slot -- the shared slot of pipeline "name" in database "dboid".
 *
 * With create, a free slot is claimed when the pipeline has none; returns
 * NULL when none is free (or none exists and !create).
 */
LiSlot *
li_find_slot(Oid dboid, const char *name, bool create)
{
	LiSlot	   *result = NULL;
	LiSlot	   *free_slot = NULL;

	li_attach_shmem();
	LWLockAcquire(li_shared->lock, create ? LW_EXCLUSIVE : LW_SHARED);
	for (int i = 0; i < li_max_pipelines; i++)
	{
		LiSlot	   *s = &li_shared->slots[i];

		if (!s->in_use)
		{
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (s->dboid == dboid && strcmp(s->name, name) == 0)
		{
			result = s;
			break;
		}
	}
	if (result == NULL && create && free_slot != NULL)
	{
		result = free_slot;
		result->in_use = true;
		result->dboid = dboid;
		strlcpy(result->name, name, LI_NAME_MAX);
		SpinLockAcquire(&result->mutex);
		result->pid = 0;
		result->latch = NULL;
		result->wstate = LI_WS_NONE;
		result->head = -1;
		result->fetched = -1;
		result->cursor_known = false;
		result->notifies_dropped = 0;
		result->error[0] = '\0';
		memset(&result->committed, 0, sizeof(LiPosition));
		SpinLockRelease(&result->mutex);
	}
	LWLockRelease(li_shared->lock);
	return result;
}

/* li_set_wstate -- publish what the worker is doing, for status. */
void
li_set_wstate(LiSlot *slot, LiWorkerState st)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->wstate = st;
	SpinLockRelease(&slot->mutex);
}

/*
 * li_position_reached -- has the committed cursor covered all of "ledger"?
 */
bool
li_position_reached(const LiPosition *committed, int64 ledger)
{
	if (committed->ledger > ledger)
		return true;
	return committed->ledger == ledger && committed->complete;
}

void
_PG_init(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("ledger_ingest.database",
							   "The only database whose pipelines ledger_ingest runs; empty: every database where the extension is installed.",
							   NULL,
							   &li_database,
							   "",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);
	DefineCustomRealVariable("ledger_ingest.notify_queue_limit",
							 "NOTIFY queue usage above which ledger_ingest drops its notifications.",
							 "A fraction of the queue, as pg_notification_queue_usage() reports it. "
							 "Notifications are hints: one that is not queued is counted in status "
							 "and logged, and never holds up applying, start() or stop().",
							 &li_notify_queue_limit,
							 0.5, 0.0, 1.0,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("ledger_ingest.max_pipelines",
							"Maximum number of pipelines with shared state (and workers).",
							"Each running pipeline also needs one of max_worker_processes.",
							&li_max_pipelines,
							16, 1, 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("ledger_ingest");

	if (IsBinaryUpgrade)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = li_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = li_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "ledger_ingest", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "ledger_ingest_supervisor_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "ledger_ingest supervisor", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "ledger_ingest supervisor", BGW_MAXLEN);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}
