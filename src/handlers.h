/*-------------------------------------------------------------------------
 *
 * handlers.h
 *	  Matching events to a pipeline's handlers and calling them
 *	  (handlers.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_HANDLERS_H
#define LI_HANDLERS_H

#include "pipeline.h"

/* the events a set-based handler gets in one transaction */
typedef struct LiEventSet
{
	Datum	   *vals;			/* ledger_ingest.event values, in set_cxt */
	int			n;
	int			cap;
} LiEventSet;

/* does handler h take event e (address, topic0, the signature's topic count)? */
extern bool li_handler_matches(const LiHandler *h, const LiEvent *e);
/* the FmgrInfo of funcoid, cached in *cache; ERROR 42883/42501 if gone or not executable by the owner */
extern FmgrInfo *li_handler_fn(LiPipeline *p, Oid funcoid, FmgrInfo **cache);
/* e decoded by h's signature as args; NULL with *error when the log does not decode */
extern Jsonb *li_decode_args(LiHandler *h, LiEvent *e, char **error);
/*
 * call every matching per-event handler for e, journaling it first when
 * journal_events; append it to sets[i] for set-based handler i (values
 * built in set_cxt)
 */
extern void li_run_handlers(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ledger_hash,
							LiEvent *e, bool journal_events, LiEventSet *sets,
							MemoryContext set_cxt);
/* call each set-based handler once with the events it matched */
extern void li_run_set_handlers(LiPipeline *p, LiEventSet *sets);
/*
 * a log "who" (a handler or table sink) cannot decode as signature: ERROR
 * with on_decode_error "fail", else recorded in ledger_ingest.decode_error
 * (ev: the event value without args)
 */
extern void li_decode_failed(LiPipeline *p, const char *who, const char *signature,
							 LiLedger *l, LiEvent *e, Datum ev, const char *error);
/*
 * call each block handler whose every divides l's number with l's header
 * (a ledger_ingest.ledger value), as the owner, in registration order
 */
extern void li_run_block_handlers(LiPipeline *p, Datum pipeline_text, LiLedger *l,
								  Datum ledger_hash);

#endif							/* LI_HANDLERS_H */
