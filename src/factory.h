/*-------------------------------------------------------------------------
 *
 * factory.h
 *	  Factory contracts: addresses a pipeline follows because a factory
 *	  announced them in an event (factory.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_FACTORY_H
#define LI_FACTORY_H

#include "pipeline.h"

/*
 * read the pipeline's factories into p->factories (inside a transaction,
 * SPI connected; allocations in cxt) and, when it has some, turn its
 * eth_getLogs filter into the one its fetcher uses: no "address", topic0
 * only, the factories' topic0s added (p->watch keeps the options' own
 * filter, which li_factories_filter applies); load the set of addresses it
 * follows unless the one loaded is still current
 */
extern void li_factories_read(LiPipeline *p, MemoryContext cxt);

/*
 * keep only the events of b that the pipeline follows: those of its
 * "addresses", its factories and their children,
 * matching its "topics" (a ledger's announcements are learned before its
 * events are filtered), and the transactions that emitted one of them or
 * are to a followed address.  No transaction needed.
 */
extern void li_factories_filter(LiPipeline *p, LiBatch *b);

/*
 * does the pipeline follow address (its "addresses", factories and
 * children; any address when it has neither)?  After li_factories_read.
 */
extern bool li_follows(LiPipeline *p, const uint8 *address);
/* does it follow every address (no "addresses", no factories)? */
extern bool li_follows_all(LiPipeline *p);

/*
 * inside the apply transaction, for each applied event: if it is a
 * factory's announcement, record the child (ledger_ingest.child); a log
 * that does not decode goes to li_decode_failed
 */
extern void li_factory_announce(LiPipeline *p, Datum pipeline_text, LiLedger *l,
								Datum ledger_hash, LiEvent *e);

/*
 * the loaded set of addresses may hold children that were not committed
 * (an apply that failed or lost its CAS, a revert): read it again next time
 */
extern void li_factories_forget(void);

#endif							/* LI_FACTORY_H */
