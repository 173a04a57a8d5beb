/*-------------------------------------------------------------------------
 *
 * publish.c
 *	  Publish in-memory state only when a transaction commits.
 *
 * NOTIFYs are queued inside the transaction (Async_Notify), so PostgreSQL
 * delivers them if and only if the transaction commits.  What lives in
 * shared memory -- the committed cursor that wait_for() sleeps on, the
 * launcher's wake-up and the workers' wake-up after inbox writes -- is
 * recorded here as "pending" during the
 * transaction and applied from XACT_EVENT_COMMIT, where only things that
 * cannot fail are done: spinlock-protected stores, ConditionVariableBroadcast
 * and SetLatch.  On abort the pending state is discarded.
 *
 * See PostgreSQL's xact.c (CommitTransaction) for the order: PRE_COMMIT
 * callbacks, PreCommit_Notify, the commit record, COMMIT callbacks,
 * AtCommit_Notify.
 *
 * Every payload the extension sends on the ledger_ingest channel is built
 * here (applied, reorg, state), except the start/stop notifications of the
 * SQL API, which _notify() queues through li_notify.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "ledger_ingest.h"
#include "publish.h"

#define LI_MAX_PENDING 8

typedef struct LiPending
{
	LiSlot	   *slot;
	LiPosition	pos;
	int			nestlevel;		/* (sub)transaction that recorded it */
} LiPending;

static bool callback_registered = false;
static int	npending = 0;
static LiPending pending[LI_MAX_PENDING];
static bool pending_wake_launcher = false;
static bool pending_register = false;	/* this database wants a launcher */
/* pipelines whose inbox was written: their workers are woken at commit */
#define LI_MAX_WAKE 8
static int	nwake = 0;			/* -1: too many, wake every worker */
static char wake_names[LI_MAX_WAKE][LI_NAME_MAX];

/*
 * Set the latch of the workers of the pipelines in wake_names (of all this
 * database's workers when nwake is -1).  Called at commit: only spinlocks
 * and SetLatch.  A slot's name is read without LiShared->lock, which a
 * commit callback should not wait for: a slot being reassigned at that very
 * moment gets a spurious wake-up or misses one, and its poll_ms covers that.
 */
static void
wake_workers(void)
{
	for (int i = 0; i < li_max_pipelines; i++)
	{
		LiSlot	   *slot = &li_shared->slots[i];
		Latch	   *latch = NULL;
		bool		wanted = nwake < 0;

		if (!slot->in_use || slot->dboid != MyDatabaseId)
			continue;
		for (int w = 0; w < nwake && !wanted; w++)
			wanted = strncmp(slot->name, wake_names[w], LI_NAME_MAX) == 0;
		if (!wanted)
			continue;
		SpinLockAcquire(&slot->mutex);
		latch = slot->latch;
		SpinLockRelease(&slot->mutex);
		if (latch)
			SetLatch(latch);
	}
}

static void
li_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			for (int i = 0; i < npending; i++)
			{
				LiSlot	   *slot = pending[i].slot;

				SpinLockAcquire(&slot->mutex);
				slot->committed = pending[i].pos;
				slot->cursor_known = true;
				SpinLockRelease(&slot->mutex);
				ConditionVariableBroadcast(&slot->cv);
			}
			if ((pending_wake_launcher || pending_register) && li_shared != NULL)
			{
				Latch	   *latch = NULL;
				Latch	   *supervisor = NULL;
				LiDatabase *db;

				SpinLockAcquire(&li_shared->mutex);
				db = li_db_entry(MyDatabaseId, pending_register);
				if (db != NULL)
				{
					latch = db->launcher_latch;

					/*
					 * start(), stop() and drop_pipeline() in a database with
					 * no launcher (an extension created at 0.1, whose script
					 * registers nothing) register it too.
					 */
					if (pending_register || db->launcher_pid == 0)
					{
						/* CREATE EXTENSION, resume_database(): probe it */
						db->generation++;
						if (db->state != LI_DB_ACTIVE)
							db->state = LI_DB_PROBE;
						supervisor = li_shared->supervisor_latch;
					}
				}
				SpinLockRelease(&li_shared->mutex);
				if (latch)
					SetLatch(latch);
				if (supervisor)
					SetLatch(supervisor);
			}
			if (nwake != 0 && li_shared != NULL)
				wake_workers();
			npending = 0;
			pending_wake_launcher = false;
			pending_register = false;
			nwake = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			npending = 0;
			pending_wake_launcher = false;
			pending_register = false;
			nwake = 0;
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (npending > 0 || pending_wake_launcher)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that moved a ledger_ingest cursor or pipeline")));
			break;
		default:
			break;
	}
}

/* A rolled-back subtransaction publishes nothing it recorded. */
static void
li_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	int			level;
	int			keep = 0;

	level = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* released into the parent: it now stands or falls with it */
		for (int i = 0; i < npending; i++)
			if (pending[i].nestlevel >= level)
				pending[i].nestlevel = level - 1;
		return;
	}
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (int i = 0; i < npending; i++)
		if (pending[i].nestlevel < level)
			pending[keep++] = pending[i];
	npending = keep;
}

/*
 * li_register_xact_callback -- register the commit/abort callback, once per
 * process.
 */
void
li_register_xact_callback(void)
{
	if (callback_registered)
		return;
	RegisterXactCallback(li_xact_callback, NULL);
	RegisterSubXactCallback(li_subxact_callback, NULL);
	callback_registered = true;
}

/*
 * li_publish_at_commit -- make "pos" the slot's committed cursor if and when
 * the current transaction commits.  A later call for the same slot in the
 * same transaction replaces the earlier one.
 */
void
li_publish_at_commit(LiSlot *slot, const LiPosition *pos)
{
	int			level = GetCurrentTransactionNestLevel();

	li_register_xact_callback();
	for (int i = 0; i < npending; i++)
	{
		if (pending[i].slot == slot && pending[i].nestlevel == level)
		{
			pending[i].pos = *pos;
			return;
		}
	}
	if (npending >= LI_MAX_PENDING)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many ledger_ingest cursors moved in one transaction"),
				 errdetail("At most %d pipelines' cursors can be moved per transaction.",
						   LI_MAX_PENDING)));
	pending[npending].slot = slot;
	pending[npending].pos = *pos;
	pending[npending].nestlevel = level;
	npending++;
}

/*
 * li_wake_launcher_at_commit -- set the launcher's latch when the current
 * transaction commits, so that it reconciles workers with the pipeline
 * table at once (start, stop, drop).
 */
void
li_wake_launcher_at_commit(void)
{
	li_register_xact_callback();
	pending_wake_launcher = true;
}

/*
 * li_register_database_at_commit -- when the current transaction commits,
 * have the supervisor start a launcher for this database (CREATE
 * EXTENSION, ALTER EXTENSION UPDATE, resume_database()).  The launcher
 * finds out for itself whether it has work: it exits when the extension
 * is not installed or the database is paused.
 */
void
li_register_database_at_commit(void)
{
	li_register_xact_callback();
	pending_register = true;
}

/*
 * li_wake_worker_at_commit -- set the latch of pipeline's worker when the
 * current transaction commits, so that documents written to its inbox are
 * applied at once rather than at the next poll.  Past LI_MAX_WAKE distinct
 * pipelines in one transaction, every worker of the database is woken (a
 * worker with nothing new just goes back to sleep).  A rolled-back
 * subtransaction's wake-ups stay: they are harmless.
 */
void
li_wake_worker_at_commit(const char *pipeline)
{
	li_register_xact_callback();
	if (nwake < 0)
		return;
	for (int w = 0; w < nwake; w++)
		if (strncmp(wake_names[w], pipeline, LI_NAME_MAX) == 0)
			return;
	if (nwake == LI_MAX_WAKE)
	{
		nwake = -1;
		return;
	}
	strlcpy(wake_names[nwake++], pipeline, LI_NAME_MAX);
}

/*
 * li_notify -- queue "payload" on the ledger_ingest channel for the
 * current transaction, unless the NOTIFY queue is fuller than
 * ledger_ingest.notify_queue_limit (pg_notification_queue_usage(), a
 * fraction of the queue).  A listener that stays inside a transaction pins
 * the queue; once it is full, PreCommit_Notify fails every transaction that
 * queued a notification ("too many notifications in the NOTIFY queue"), so
 * queueing regardless would stop the pipeline, start() and stop().
 * Notifications are hints (subscribers re-read status): one that is not
 * queued is counted in the pipeline's slot (status.notifications_dropped)
 * and logged, at most once a minute per process.  Returns whether it was
 * queued.  "slot" may be NULL (a pipeline without a worker).
 */
bool
li_notify(LiSlot *slot, const char *pipeline, const char *payload)
{
	static TimestampTz last_logged = 0;
	double		usage;

	usage = DatumGetFloat8(OidFunctionCall0(F_PG_NOTIFICATION_QUEUE_USAGE));
	if (usage <= li_notify_queue_limit)
	{
		Async_Notify(LI_CHANNEL, payload);
		return true;
	}
	if (slot != NULL)
	{
		SpinLockAcquire(&slot->mutex);
		slot->notifies_dropped++;
		SpinLockRelease(&slot->mutex);
	}
	if (TimestampDifferenceExceeds(last_logged, GetCurrentTimestamp(), 60000))
	{
		last_logged = GetCurrentTimestamp();
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ledger_ingest pipeline \"%s\": notification dropped: the NOTIFY queue is %.4f%% full, above ledger_ingest.notify_queue_limit (%.4f%%)",
						pipeline, usage * 100, li_notify_queue_limit * 100),
				 errdetail("Applying goes on; subscribers should read ledger_ingest.status."),
				 errhint("A session that listens and stays inside a transaction holds the queue; end that transaction.")));
	}
	return false;
}

/*
 * li_notify_applied -- the "applied" notification of one apply transaction:
 * {"type":"applied","pipeline":...,"ledger":N,"hash":"0x...","tx_index":
 * I|null,"event_index":J|null,"events":E,"from_ledger":F}, well under the
 * 8000-byte payload limit.
 */
void
li_notify_applied(LiSlot *slot, const char *pipeline, const LiPosition *pos,
				  const uint8 *hash, int64 from_ledger, int64 nevents)
{
	StringInfoData buf;
	char	   *hex = li_bytes_to_hex(hash, LI_HASH_LEN);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"type\":\"applied\",\"pipeline\":");
	escape_json(&buf, pipeline);
	appendStringInfo(&buf, ",\"ledger\":" INT64_FORMAT ",\"hash\":\"%s\"", pos->ledger, hex);
	if (pos->complete)
		appendStringInfoString(&buf, ",\"tx_index\":null,\"event_index\":null");
	else
		appendStringInfo(&buf, ",\"tx_index\":%d,\"event_index\":%d",
						 pos->tx_index, pos->event_index);
	appendStringInfo(&buf, ",\"events\":" INT64_FORMAT ",\"from_ledger\":" INT64_FORMAT "}",
					 nevents, from_ledger);
	(void) li_notify(slot, pipeline, buf.data);
}

/*
 * li_notify_reorg -- the "reorg" notification of a revert:
 * {"type":"reorg","pipeline":...,"fork_ledger":F,"orphaned_from":F+1,
 * "orphaned_to":T,"depth":D}.
 */
void
li_notify_reorg(LiSlot *slot, const char *pipeline, int64 fork,
				int64 orphaned_to, int32 depth)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"type\":\"reorg\",\"pipeline\":");
	escape_json(&buf, pipeline);
	appendStringInfo(&buf, ",\"fork_ledger\":" INT64_FORMAT ",\"orphaned_from\":" INT64_FORMAT
					 ",\"orphaned_to\":" INT64_FORMAT ",\"depth\":%d}",
					 fork, fork + 1, orphaned_to, depth);
	(void) li_notify(slot, pipeline, buf.data);
}

/*
 * li_notify_state -- the "state" notification of a worker that changed its
 * pipeline's state: {"type":"state","pipeline":...,"state":...,
 * "sqlstate":"XXXXX"|null}.  Any role connected to the database may
 * LISTEN: the payload carries the error's SQLSTATE (the "XXXXX: " prefix
 * of error), never its text, which may quote data, a URL or a handler's
 * message; the owner reads last_error in status.
 */
void
li_notify_state(LiSlot *slot, const char *pipeline, const char *state,
				const char *error)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"type\":\"state\",\"pipeline\":");
	escape_json(&buf, pipeline);
	appendStringInfoString(&buf, ",\"state\":");
	escape_json(&buf, state);
	appendStringInfoString(&buf, ",\"sqlstate\":");
	if (error && strspn(error, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5 && error[5] == ':')
		appendStringInfo(&buf, "\"%.5s\"", error);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfoChar(&buf, '}');
	(void) li_notify(slot, pipeline, buf.data);
}
