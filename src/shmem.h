/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  The extension's shared memory (module.c): one slot per running
 *	  pipeline, where its worker publishes the committed cursor and what it
 *	  is doing, and the supervisor's table of databases and launchers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_SHMEM_H
#define LI_SHMEM_H

#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#include "ledger.h"

typedef enum LiWorkerState
{
	LI_WS_NONE = 0,
	LI_WS_STARTING,
	LI_WS_IDLE,
	LI_WS_FETCHING,
	LI_WS_APPLYING,
	LI_WS_RETRYING
} LiWorkerState;

typedef struct LiSlot
{
	/* protected by LiShared->lock */
	bool		in_use;
	Oid			dboid;
	char		name[LI_NAME_MAX];

	/* protected by mutex */
	slock_t		mutex;
	pid_t		pid;			/* worker pid, 0 if none */
	Latch	   *latch;			/* worker latch, NULL if none */
	LiWorkerState wstate;
	int64		head;			/* newest ledger the source reported, -1 */
	int64		fetched;		/* newest ledger fetched ahead, -1: none (prefetch.c) */
	bool		cursor_known;	/* committed cursor published? */
	LiPosition	committed;		/* committed cursor */
	int64		notifies_dropped;	/* NOTIFYs not queued: queue too full */
	char		error[256];		/* an error the worker could not record ("") */

	ConditionVariable cv;		/* broadcast when committed advances */
} LiSlot;

/*
 * The databases the supervisor knows of, and their launchers.  A database
 * is probed (a launcher connects, looks for the extension, and exits when
 * it is not installed or the database is paused); CREATE EXTENSION and
 * resume_database() mark it to be probed again.
 */
#define LI_MAX_DATABASES 256

typedef enum LiDbState
{
	LI_DB_FREE = 0,				/* entry unused */
	LI_DB_PROBE,				/* start a launcher to find out */
	LI_DB_ACTIVE,				/* the extension is installed: keep a launcher */
	LI_DB_ABSENT,				/* no extension: no launcher until registered */
	LI_DB_PAUSED				/* pause_database(): no launcher until resumed */
} LiDbState;

typedef struct LiDatabase
{
	Oid			dboid;
	LiDbState	state;
	uint32		generation;		/* registrations so far */
	pid_t		launcher_pid;	/* 0 if none */
	Latch	   *launcher_latch; /* NULL if none */
} LiDatabase;

typedef struct LiShared
{
	LWLock	   *lock;			/* slot allocation */
	slock_t		mutex;			/* supervisor_latch and dbs[] */
	Latch	   *supervisor_latch;
	LiDatabase	dbs[LI_MAX_DATABASES];
	LiSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} LiShared;

extern LiShared *li_shared;

/* launcher.c: the entry of dboid (created as LI_DB_PROBE), NULL if full; hold li_shared->mutex */
extern LiDatabase *li_db_entry(Oid dboid, bool create);

/* module.c */
/* ERROR 55000 unless the library was preloaded (shared memory set up) */
extern void li_attach_shmem(void);
/* the slot of pipeline name in dboid, claiming a free one with create; NULL if none */
extern LiSlot *li_find_slot(Oid dboid, const char *name, bool create);
/* publish what the worker is doing, for status (slot may be NULL) */
extern void li_set_wstate(LiSlot *slot, LiWorkerState st);
/* has the committed cursor covered all of ledger? */
extern bool li_position_reached(const LiPosition *committed, int64 ledger);

#endif							/* LI_SHMEM_H */
