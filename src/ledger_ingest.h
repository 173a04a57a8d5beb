/*-------------------------------------------------------------------------
 *
 * ledger_ingest.h
 *	  What every part of the ledger_ingest extension shares: its settings
 *	  (GUCs, module.c) and the entry points of its background workers.
 *
 * One static supervisor keeps one launcher per database with the extension
 * (launcher.c); a launcher starts one dynamic background worker per
 * running pipeline (worker.c).  A worker fetches ledgers from its source
 * (source.h) outside any transaction, then applies them in short
 * transactions (apply.h) that run the user's handlers (handlers.h), record
 * the ledger headers, advance the cursor with a compare-and-swap and queue
 * one NOTIFY; shared state (shmem.h) is published only from the commit
 * callback (publish.h).  src/README.md describes the whole.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_INGEST_H
#define LEDGER_INGEST_H

#include "fmgr.h"

/* GUCs (module.c) */
extern char *li_database;		/* ledger_ingest.database: "" for every database */
extern int	li_max_pipelines;	/* ledger_ingest.max_pipelines: shared slots */
extern double li_notify_queue_limit;	/* ledger_ingest.notify_queue_limit: 0..1 */

/* the search_path of the launcher and the workers (see worker.c) */
#define LI_WORKER_SEARCH_PATH "pg_catalog, public, pg_temp"

/* bytes of freed memory a worker keeps in its heap between batches */
#define LI_MALLOC_KEEP (32 * 1024 * 1024)

/*
 * How the launcher's last_error begins when it cannot start a running
 * pipeline's worker (no pipeline or worker slot): the status view shows
 * such a pipeline as 'waiting', and its worker clears it once up.
 */
#define LI_START_FAILURE "53000: could not start the pipeline's worker: "

/* background worker entry points (launcher.c, worker.c) */
PGDLLEXPORT void ledger_ingest_supervisor_main(Datum arg);
PGDLLEXPORT void ledger_ingest_launcher_main(Datum arg);
PGDLLEXPORT void ledger_ingest_worker_main(Datum arg);
PGDLLEXPORT void ledger_ingest_fetcher_main(Datum arg);

#endif							/* LEDGER_INGEST_H */
