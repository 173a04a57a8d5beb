/*-------------------------------------------------------------------------
 *
 * transaction.h
 *	  Transactions as values of ledger_ingest.transaction, and the
 *	  pipeline's transaction handlers (transaction.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_TRANSACTION_H
#define LI_TRANSACTION_H

#include "pipeline.h"

/* attributes of ledger_ingest.transaction */
#define LI_TX_NATTS 20

/* ledger_ingest.transaction's attributes: names and types, in order */
extern const char *const li_tx_field_names[LI_TX_NATTS];
extern const Oid li_tx_field_types[LI_TX_NATTS];

/* attribute f of t's ledger_ingest.transaction value (*isnull when NULL) */
extern Datum li_transaction_field(int f, Datum pipeline, Datum ledger_hash, const LiLedger *l,
								  const LiTx *t, bool *isnull);

/* the ledger_ingest.transaction value of t (of ledger l), in the current context */
extern Datum li_transaction_datum(Datum pipeline, Datum ledger_hash, const LiLedger *l,
								  const LiTx *t);

/* does transaction handler h take t (its to, selector and status)? */
extern bool li_tx_handler_matches(LiPipeline *p, const LiTxHandler *h, const LiTx *t);

/*
 * call the pipeline's transaction handlers, as its owner, for each
 * transaction of l whose tx_index is in (after, upto], in order
 */
extern void li_run_tx_handlers(LiPipeline *p, Datum pipeline_text, LiLedger *l,
							   Datum ledger_hash, int32 after, int32 upto);

#endif							/* LI_TRANSACTION_H */
