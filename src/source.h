/*-------------------------------------------------------------------------
 *
 * source.h
 *	  The sources a worker fetches ledgers from: the inbox table
 *	  (source_inbox.c), an Ethereum JSON-RPC node (source_evm_rpc.c) and a
 *	  Stellar RPC server (source_stellar_rpc.c).
 *	  A fetch runs with no transaction open (the inbox reads in a short
 *	  read-only one) and fills a LiBatch.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_SOURCE_H
#define LI_SOURCE_H

#include "pipeline.h"

/* source_inbox.c */
/*
 * read, parse and check up to batch_max_ledgers pending documents (at most
 * batch_max_bytes) into batch; stops at the first document to reject (its
 * id and error left in the batch) or at a reorg (batch->reorg)
 */
extern void li_inbox_fetch(LiPipeline *p, LiBatch *batch);
/* mark document id rejected with error, in its own transaction */
extern void li_inbox_reject(LiPipeline *p, int64 id, const char *error);

/* source_evm_rpc.c */
/* the worker's JSON-RPC client (rpc_client.c), configured for pipeline p */
extern void li_rpc_init(LiPipeline *p);
/*
 * fetch the next ledgers with logs matching the pipeline's filters into
 * batch: up to head - confirmations (or the finality tag), at most
 * block_range blocks; ERROR on a node or transport failure (retried)
 */
extern void li_rpc_fetch(LiPipeline *p, LiBatch *batch);
/* reuse the head for a few seconds while ranges end below it (a fetcher) */
extern void li_rpc_reuse_head(void);
/* ranges fetched together with earlier ones start at or before limit (a fetcher) */
extern void li_rpc_limit_ranges(int64 limit);

/* source_stellar_rpc.c */
/* the worker's JSON-RPC client (rpc_client.c), configured for pipeline p */
extern void li_stellar_rpc_init(LiPipeline *p);
/*
 * fetch the next window of Stellar ledgers (getHealth, getEvents,
 * getLedgers) into batch: the window's ends and its ledgers with events;
 * batch->fail_error when the pipeline cannot go on (another network, a
 * pruned cursor, a broken chain); ERROR on a server or transport failure
 * (retried)
 */
extern void li_stellar_rpc_fetch(LiPipeline *p, LiBatch *batch);

typedef enum LiForkResult
{
	LI_FORK_FOUND,				/* *fork is the newest ledger both branches share */
	LI_FORK_BEYOND_WINDOW,		/* no stored ledger in the window matches */
	LI_FORK_NONE				/* the stored chain is canonical after all */
} LiForkResult;

/*
 * after a parentHash mismatch at the cursor, walk back through the stored
 * headers within reorg_window to the newest ledger the node's chain shares
 */
extern LiForkResult li_rpc_find_fork(LiPipeline *p, int64 *fork, uint8 *fork_hash);

#endif							/* LI_SOURCE_H */
