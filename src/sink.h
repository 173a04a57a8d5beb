/*-------------------------------------------------------------------------
 *
 * sink.h
 *	  Writing rows into a sink table in the apply transaction (sink.c):
 *	  the raw sinks' and the table sinks' (table_sink.c) shared paths.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_SINK_H
#define LI_SINK_H

#include "executor/tuptable.h"
#include "parser/parse_node.h"
#include "utils/rel.h"

#include "pipeline.h"

/*
 * fill a slot with the row of event e of ledger l (ledger_hash: its hash
 * as a bytea Datum) and return true, or return false: e has no row
 */
typedef bool (*LiSinkFill) (void *arg, TupleTableSlot *slot, Datum ledger_hash,
							const LiLedger *l, const LiEvent *e);

/* a sink table opened for writing, as the pipeline's owner */
typedef struct LiSinkTable
{
	Relation	rel;
	ParseState *pstate;			/* its range table: the table alone */
	Oid			save_userid;
	int			save_sec_context;
} LiSinkTable;

/*
 * open table relid as p's owner (a security-restricted operation), who
 * needs INSERT on it; ERROR for a table with row-level security ("what"
 * names the kind of sink)
 */
extern void li_sink_open(LiPipeline *p, Oid relid, const char *what, LiSinkTable *t);
/* close it and become the caller again */
extern void li_sink_close(LiSinkTable *t);
/*
 * can rel take the direct path (sink.c's header): field_of[a] >= 0 for
 * the attributes the rows fill, -1 for those left NULL
 */
extern bool li_sink_direct_ok(Relation rel, const int *field_of);
/* the direct path: rows written, or -1 (nothing done: use li_sink_copy) */
extern int64 li_sink_direct(Relation rel, List *rtable, LiSinkFill fill, void *arg,
							LiLedger **ledgers, int *first, int *last, int nsegs);
/*
 * the COPY path: the attributes with field_of[a] >= 0, one COPY per ledger
 * into a table p tracks (its journal names each row's ledger); rows written
 */
extern int64 li_sink_copy(LiPipeline *p, Relation rel, ParseState *pstate, const int *field_of,
						  LiSinkFill fill, void *arg,
						  LiLedger **ledgers, int *first, int *last, int nsegs);

#endif							/* LI_SINK_H */
