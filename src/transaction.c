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

/* the names of ledger_ingest.transaction's attributes, in order */
const char *const li_tx_field_names[LI_TX_NATTS] = {
	"pipeline", "ledger", "ledger_hash", "tx_index", "tx_hash", "from", "to", "value",
	"input", "selector", "nonce", "gas", "gas_price", "max_fee_per_gas",
	"max_priority_fee_per_gas", "type", "status", "gas_used", "effective_gas_price",
	"contract_address"
};

/* the SQL types of those attributes */
const Oid	li_tx_field_types[LI_TX_NATTS] = {
	TEXTOID, INT8OID, BYTEAOID, INT4OID, BYTEAOID, BYTEAOID, BYTEAOID, NUMERICOID,
	BYTEAOID, BYTEAOID, INT8OID, INT8OID, NUMERICOID, NUMERICOID,
	NUMERICOID, INT4OID, INT4OID, INT8OID, NUMERICOID,
	BYTEAOID
};

/* a word field, or NULL without flag */
static inline Datum
word_or_null(const LiTx *t, uint32 flag, const uint8 *w, bool *isnull)
{
	*isnull = !(t->has & flag);
	return *isnull ? (Datum) 0 : li_abi_word_numeric(w, false);
}

/* li_transaction_field -- see transaction.h */
Datum
li_transaction_field(int f, Datum pipeline, Datum ledger_hash, const LiLedger *l,
					 const LiTx *t, bool *isnull)
{
	Size		inlen = VARSIZE_ANY_EXHDR(t->input);

	*isnull = false;
	switch (f)
	{
		case 0:
			return pipeline;
		case 1:
			return Int64GetDatum(l->number);
		case 2:
			return ledger_hash;
		case 3:
			return Int32GetDatum(t->tx_index);
		case 4:
			return PointerGetDatum(li_bytes_to_bytea(t->hash, LI_HASH_LEN));
		case 5:
			return PointerGetDatum(li_bytes_to_bytea(t->from, LI_ADDRESS_LEN));
		case 6:
			*isnull = !(t->has & LI_TX_HAS_TO);
			return *isnull ? (Datum) 0 : PointerGetDatum(li_bytes_to_bytea(t->to, LI_ADDRESS_LEN));
		case 7:
			return li_abi_word_numeric(t->value, false);
		case 8:
			return PointerGetDatum(t->input);
		case 9:
			/* the 4-byte selector of a call; NULL for a plain transfer */
			*isnull = inlen < 4;
			return *isnull ? (Datum) 0 :
				PointerGetDatum(li_bytes_to_bytea((const uint8 *) VARDATA_ANY(t->input), 4));
		case 10:
			return Int64GetDatum(t->nonce);
		case 11:
			return Int64GetDatum(t->gas);
		case 12:
			return word_or_null(t, LI_TX_HAS_GAS_PRICE, t->gas_price, isnull);
		case 13:
			return word_or_null(t, LI_TX_HAS_MAX_FEE, t->max_fee_per_gas, isnull);
		case 14:
			return word_or_null(t, LI_TX_HAS_MAX_PRIORITY_FEE, t->max_priority_fee_per_gas, isnull);
		case 15:
			return Int32GetDatum(t->type);
		case 16:
			*isnull = !(t->has & LI_TX_HAS_STATUS);
			return Int32GetDatum(t->status);
		case 17:
			*isnull = !(t->has & LI_TX_HAS_RECEIPT);
			return Int64GetDatum(t->gas_used);
		case 18:
			return word_or_null(t, LI_TX_HAS_EFFECTIVE_PRICE, t->effective_gas_price, isnull);
		case 19:
			*isnull = !(t->has & LI_TX_HAS_CONTRACT);
			return *isnull ? (Datum) 0 :
				PointerGetDatum(li_bytes_to_bytea(t->contract_address, LI_ADDRESS_LEN));
	}
	elog(ERROR, "no transaction field %d", f);
	return (Datum) 0;
}

/* li_transaction_datum -- see transaction.h */
Datum
li_transaction_datum(Datum pipeline, Datum ledger_hash, const LiLedger *l, const LiTx *t)
{
	Datum		v[LI_TX_NATTS];
	bool		n[LI_TX_NATTS];

	for (int f = 0; f < LI_TX_NATTS; f++)
		v[f] = li_transaction_field(f, pipeline, ledger_hash, l, t, &n[f]);
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
			li_apply_ctx.event_index = LI_CTX_TX;
			li_call_as_owner(p->owner, li_handler_fn(p, h->funcoid, &h->fn), v);
		}
	}
	li_apply_ctx.handler = NULL;
}
