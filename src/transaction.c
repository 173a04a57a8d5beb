/*-------------------------------------------------------------------------
 *
 * transaction.c
 *	  Transactions as ledger_ingest.transaction values, and transaction
 *	  handlers (their parsing is ledger_tx.c's).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "abi.h"
#include "apply.h"
#include "event.h"
#include "factory.h"
#include "handlers.h"
#include "ledger.h"
#include "transaction.h"
#include "xact.h"

static TupleDesc tx_tupdesc = NULL;

/* ledger_ingest.transaction's descriptor, kept for the process */
static TupleDesc
transaction_tupdesc(void)
{
	if (tx_tupdesc == NULL)
		tx_tupdesc = li_type_tupdesc("transaction");
	return tx_tupdesc;
}

/* li_transaction_datum -- see transaction.h */
Datum
li_transaction_datum(Datum pipeline, Datum ledger_hash, const LiLedger *l, const LiTx *t)
{
	Datum		v[LI_TX_NATTS];
	bool		n[LI_TX_NATTS];
	Size		inlen = VARSIZE_ANY_EXHDR(t->input);

	memset(n, 0, sizeof(n));
	v[0] = pipeline;
	v[1] = Int64GetDatum(l->number);
	v[2] = ledger_hash;
	v[3] = Int32GetDatum(t->tx_index);
	v[4] = PointerGetDatum(li_bytes_to_bytea(t->hash, LI_HASH_LEN));
	v[5] = PointerGetDatum(li_bytes_to_bytea(t->from, LI_ADDRESS_LEN));
	n[6] = !(t->has & LI_TX_HAS_TO);
	v[6] = n[6] ? (Datum) 0 : PointerGetDatum(li_bytes_to_bytea(t->to, LI_ADDRESS_LEN));
	v[7] = li_abi_word_numeric(t->value, false);
	v[8] = PointerGetDatum(t->input);
	/* the 4-byte selector of a call; NULL for a plain transfer */
	n[9] = inlen < 4;
	v[9] = n[9] ? (Datum) 0 : PointerGetDatum(li_bytes_to_bytea((const uint8 *) VARDATA_ANY(t->input), 4));
	v[10] = Int64GetDatum(t->nonce);
	v[11] = Int64GetDatum(t->gas);
	n[12] = !(t->has & LI_TX_HAS_GAS_PRICE);
	v[12] = n[12] ? (Datum) 0 : li_abi_word_numeric(t->gas_price, false);
	n[13] = !(t->has & LI_TX_HAS_MAX_FEE);
	v[13] = n[13] ? (Datum) 0 : li_abi_word_numeric(t->max_fee_per_gas, false);
	n[14] = !(t->has & LI_TX_HAS_MAX_PRIORITY_FEE);
	v[14] = n[14] ? (Datum) 0 : li_abi_word_numeric(t->max_priority_fee_per_gas, false);
	v[15] = Int32GetDatum(t->type);
	n[16] = !(t->has & LI_TX_HAS_STATUS);
	v[16] = Int32GetDatum(t->status);
	n[17] = !(t->has & LI_TX_HAS_RECEIPT);
	v[17] = Int64GetDatum(t->gas_used);
	n[18] = !(t->has & LI_TX_HAS_EFFECTIVE_PRICE);
	v[18] = n[18] ? (Datum) 0 : li_abi_word_numeric(t->effective_gas_price, false);
	n[19] = !(t->has & LI_TX_HAS_CONTRACT);
	v[19] = n[19] ? (Datum) 0 : PointerGetDatum(li_bytes_to_bytea(t->contract_address, LI_ADDRESS_LEN));
	return HeapTupleGetDatum(heap_form_tuple(transaction_tupdesc(), v, n));
}

/* li_tx_handler_matches -- see transaction.h */
bool
li_tx_handler_matches(LiPipeline *p, const LiTxHandler *h, const LiTx *t)
{
	Size		inlen = VARSIZE_ANY_EXHDR(t->input);

	if (h->has_address)
	{
		if (!(t->has & LI_TX_HAS_TO) || memcmp(t->to, h->address, LI_ADDRESS_LEN) != 0)
			return false;
	}
	else if (!(t->has & LI_TX_HAS_TO) ? !li_follows_all(p) : !li_follows(p, t->to))
		return false;
	if (h->has_selector)
	{
		if (h->selector_len == 0 ? inlen != 0 :
			(inlen < 4 || memcmp(VARDATA_ANY(t->input), h->selector, 4) != 0))
			return false;
	}
	if ((t->has & LI_TX_HAS_STATUS) && t->status == 0 && !h->failed)
		return false;
	return true;
}

/* li_run_tx_handlers -- see transaction.h */
void
li_run_tx_handlers(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ledger_hash,
				   int32 after, int32 upto)
{
	for (int i = 0; i < l->ntxs; i++)
	{
		LiTx	   *t = &l->txs[i];
		Datum		v = (Datum) 0;

		if (t->tx_index <= after)
			continue;
		if (t->tx_index > upto)
			break;
		CHECK_FOR_INTERRUPTS();
		for (int k = 0; k < p->ntx_handlers; k++)
		{
			LiTxHandler *h = &p->tx_handlers[k];

			if (!li_tx_handler_matches(p, h, t))
				continue;
			if (v == (Datum) 0)
				v = li_transaction_datum(pipeline_text, ledger_hash, l, t);
			li_apply_ctx.handler = h->name;
			li_apply_ctx.tx_index = t->tx_index;
			li_apply_ctx.event_index = -1;
			li_call_as_owner(p->owner, li_handler_fn(p, h->funcoid, &h->fn), v);
		}
	}
	li_apply_ctx.handler = NULL;
}
