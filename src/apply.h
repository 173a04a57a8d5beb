/*-------------------------------------------------------------------------
 *
 * apply.h
 *	  The worker's write transactions: applying a batch (apply.c) and
 *	  reverting to a fork point (revert.c), with what runs inside them: the
 *	  raw sinks (sink.c) and the reorg journal (journal.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_APPLY_H
#define LI_APPLY_H

#include "pipeline.h"

typedef enum LiApplyResult
{
	LI_APPLY_OK,
	LI_APPLY_LOST_CAS			/* the cursor moved: rolled back, nothing changed */
} LiApplyResult;

/* apply.c */
/*
 * apply the batch in transactions cut by options.commit, each with its
 * cursor CAS, handlers, sinks, headers and NOTIFY; ERROR from a handler
 * (the failed transaction rolled back, earlier ones committed)
 */
extern LiApplyResult li_apply_batch(LiPipeline *p, LiBatch *batch);

/* revert.c */
/* roll back every ledger after fork in one transaction; ERROR changes nothing */
extern LiApplyResult li_revert(LiPipeline *p, int64 fork, const uint8 *fork_hash);

/* sink.c */
/* load the segments' events into each raw sink (inside the apply transaction); rows written */
extern uint64 li_sink_write(LiPipeline *p, LiLedger **ledgers, int *first, int *last, int nsegs);
/* what runs next belongs to ledger l (error context, journal) */
extern void li_apply_enter_ledger(LiPipeline *p, const LiLedger *l);
/* table_sink.c: the logs of each table sink's event into its table, decoded */
extern uint64 li_table_sinks_write(LiPipeline *p, LiLedger **ledgers, int *first, int *last, int nsegs);

/* journal.c */
/* start an empty journal buffer for an apply transaction */
extern void li_journal_begin(void);
/* write the buffered journal entries of p with one INSERT (SPI connected) */
extern void li_journal_flush(LiPipeline *p);

/*
 * Where the apply (or revert) transaction is, for error reports and for the
 * journal trigger, which records only inside an apply transaction.
 */
/* li_apply_ctx.event_index when no one event is being applied */
#define LI_CTX_SET		(-1)	/* set-based handlers, sinks */
#define LI_CTX_TX		(-2)	/* a transaction handler, of tx_index */
#define LI_CTX_BLOCK	(-3)	/* a block handler */

typedef struct LiApplyContext
{
	bool		active;
	bool		journal;		/* journal tracked tables for this ledger */
	LiPipeline *pipeline;
	int64		ledger;
	int32		tx_index;
	int32		event_index;	/* or one of LI_CTX_* */
	const char *handler;		/* the handler being called, or NULL */
} LiApplyContext;
extern LiApplyContext li_apply_ctx;

#endif							/* LI_APPLY_H */
