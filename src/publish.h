/*-------------------------------------------------------------------------
 *
 * publish.h
 *	  What becomes visible when a transaction commits (publish.c): the
 *	  committed cursor in shared memory, latches set, and the NOTIFY
 *	  payloads on the ledger_ingest channel.  Nothing here runs work that
 *	  can fail at commit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_PUBLISH_H
#define LI_PUBLISH_H

#include "shmem.h"

/* register the commit/abort callbacks, once per process */
extern void li_register_xact_callback(void);
/* make pos slot's committed cursor if and when the transaction commits */
extern void li_publish_at_commit(LiSlot *slot, const LiPosition *pos);
/* set the launcher's latch at commit (start, stop, drop) */
extern void li_wake_launcher_at_commit(void);
/* have the supervisor probe this database at commit (CREATE/ALTER EXTENSION, resume) */
extern void li_register_database_at_commit(void);
/* set the latch of pipeline's worker at commit (inbox writes) */
extern void li_wake_worker_at_commit(const char *pipeline);

/*
 * queue payload on the ledger_ingest channel unless the notification queue
 * is over ledger_ingest.notify_queue_limit (then count the drop in slot,
 * which may be NULL, and log it at most once a minute); true if queued
 */
extern bool li_notify(LiSlot *slot, const char *pipeline, const char *payload);
/* the "applied" notification of an apply transaction that moves the cursor to pos */
extern void li_notify_applied(LiSlot *slot, const char *pipeline, const LiPosition *pos,
							  const uint8 *hash, int64 from_ledger, int64 nevents);
/* the "reorg" notification of a revert of ledgers fork + 1 .. orphaned_to */
extern void li_notify_reorg(LiSlot *slot, const char *pipeline, int64 fork,
							int64 orphaned_to, int32 depth);
/* the "state" notification; error's SQLSTATE prefix, never its text */
extern void li_notify_state(LiSlot *slot, const char *pipeline, const char *state,
							const char *error);

#endif							/* LI_PUBLISH_H */
