/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  Reads and writes of the extension's tables (catalog.c): the
 *	  pipeline definitions the worker runs, the states it records, what
 *	  the launcher scans, and the SQL API's reads.  The apply and revert
 *	  transactions' own statements (cursor CAS, headers, journals) stay
 *	  with them (apply.c, revert.c); the inbox read with its source.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_CATALOG_H
#define LI_CATALOG_H

#include "pipeline.h"

typedef enum LiPipelineFound
{
	LI_PIPELINE_RUNNING,		/* read in full */
	LI_PIPELINE_GONE,			/* dropped */
	LI_PIPELINE_NOT_RUNNING		/* stopped, failed or finished: *state says */
} LiPipelineFound;

/*
 * Worker side (inside a transaction of li_txn_begin, as the worker)
 */
/*
 * read pipeline p->name into p: row, options, cursor, handlers, tracked
 * tables and raw sinks (allocations in cxt).  *missing: the first object
 * it needs that no longer exists (else untouched); *start_failure: whether
 * last_error is the launcher's LI_START_FAILURE
 */
extern LiPipelineFound li_catalog_read_pipeline(LiPipeline *p, MemoryContext cxt,
												char **missing, char **state,
												bool *start_failure);
/* set state (and last_error unless error is NULL; errors + 1 with count_error) while 'running'; true if it was */
extern bool li_catalog_set_state(const char *pipeline, const char *state,
								 const char *error, bool count_error);
/* forget the launcher's LI_START_FAILURE in last_error */
extern void li_catalog_clear_start_failure(const char *pipeline);
/* record error as the last_error of a running pipeline (errors + 1) unless it already is; true if recorded */
extern bool li_catalog_record_start_failure(const char *pipeline, const char *error);
/* is the current database paused (pause_database(), 0.2 and later)? */
extern bool li_catalog_database_paused(void);
/* every pipeline of the database, running ones first, then by name (in the current context) */
extern int	li_catalog_list_pipelines(char ***names, bool **running);
/* mark inbox document id rejected with error */
extern void li_catalog_reject_document(int64 id, const char *error);
/*
 * the stored ledger headers of p numbered from..to, newest first, into
 * numbers/hashes palloc'd in cxt; returns their count
 */
extern int	li_catalog_stored_headers(LiPipeline *p, int64 from, int64 to, MemoryContext cxt,
									  int64 **numbers, uint8 (**hashes)[LI_HASH_LEN]);

/*
 * run a read-only SELECT with $1 = pipeline (SPI connected); ERROR naming
 * "what" unless it succeeds.  Returns the number of rows (SPI_tuptable).
 */
extern uint64 li_select_for_pipeline(const char *sql, const char *pipeline, const char *what);

/*
 * SQL side (in the caller's transaction, as the caller: row-level security
 * applies; each connects to SPI itself)
 */
/* the committed cursor of pipeline (a fresh snapshot with fresh); false if it is not visible */
extern bool li_catalog_read_cursor(const char *pipeline, bool fresh, LiPosition *out);
/* does the caller see pipeline (row-level security)? */
extern bool li_catalog_pipeline_visible(const char *pipeline);
/* the names of the pipelines the caller sees, palloc'd in the current context */
extern int	li_catalog_visible_pipelines(char ***names);

#endif							/* LI_CATALOG_H */
