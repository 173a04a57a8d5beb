/*-------------------------------------------------------------------------
 *
 * ledger_tx.c
 *	  A ledger document's transactions and receipts (EVM), parsed and
 *	  checked.
 *
 * Shapes (Ethereum execution-apis, eth_getBlockByNumber with full
 * transactions, eth_getBlockReceipts and eth_getTransactionReceipt):
 * a transaction object has hash, from, to (null for a contract creation),
 * value, input, nonce, gas, transactionIndex, type (0x0 when absent),
 * gasPrice, maxFeePerGas and maxPriorityFeePerGas (per type), and
 * blockNumber/blockHash (checked when present); a receipt has
 * transactionHash, transactionIndex, blockHash, blockNumber, status (0x0
 * or 0x1; absent before Byzantium), gasUsed, effectiveGasPrice and
 * contractAddress.  Every error names the field: transactions[3].value.
 * Quantities above 64 bits (wei) are kept as 32-byte words.  An array of
 * transaction hashes (eth_getBlockByNumber without full transactions, as
 * producers have sent since 0.1) carries no transactions.  Pure parsing:
 * the inbox's generated column and the fuzzer (test/fuzz) use it too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "ledger.h"

static void
bad(const char *field, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid ledger document: field \"%s\" %s", field, why)));
}

static const char *
fname(const char *arr, int i, const char *key)
{
	return i < 0 ? psprintf("%s.%s", arr, key) : psprintf("%s[%d].%s", arr, i, key);
}

/* a fixed-size DATA field; false when absent or null and not required */
static bool
hex_field(JsonbContainer *o, const char *arr, int i, const char *key, uint8 *out, int len,
		  bool required)
{
	JsonbValue *v = li_jsonb_get(o, key);

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			bad(fname(arr, i, key), "is missing");
		return false;
	}
	if (v->type != jbvString)
		bad(fname(arr, i, key), "must be a 0x-hex string");
	li_hex_to_bytes(fname(arr, i, key), v->val.string.val, v->val.string.len, out, len);
	return true;
}

/* an int64 QUANTITY field; false when absent or null and not required */
static bool
int_field(JsonbContainer *o, const char *arr, int i, const char *key, int64 *out, bool required)
{
	JsonbValue *v = li_jsonb_get(o, key);

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			bad(fname(arr, i, key), "is missing");
		return false;
	}
	*out = li_quantity_field(v, fname(arr, i, key));
	return true;
}

/*
 * A QUANTITY of up to 256 bits ("0x" and 1 to 64 hex digits, compact) as a
 * 32-byte big-endian word; false when absent or null and not required.
 */
static bool
word_field(JsonbContainer *o, const char *arr, int i, const char *key, uint8 *out, bool required)
{
	JsonbValue *v = li_jsonb_get(o, key);
	const char *s;
	int			len;

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			bad(fname(arr, i, key), "is missing");
		return false;
	}
	if (v->type != jbvString)
		bad(fname(arr, i, key), "must be a 0x-prefixed hex quantity");
	s = v->val.string.val;
	len = v->val.string.len;
	if (len < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		bad(fname(arr, i, key), "must be a 0x-prefixed hex quantity");
	if (len > 3 && s[2] == '0')
		bad(fname(arr, i, key), "has leading zeros (a JSON-RPC quantity is compact hex)");
	if (len - 2 > 64)
		bad(fname(arr, i, key), "is out of range for a 256-bit quantity");
	memset(out, 0, 32);
	for (int k = len - 1, nib = 0; k >= 2; k--, nib++)
	{
		char		c = s[k];
		int			d = (c >= '0' && c <= '9') ? c - '0' :
			(c >= 'a' && c <= 'f') ? c - 'a' + 10 :
			(c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;

		if (d < 0)
			bad(fname(arr, i, key), "contains a non-hex character");
		out[31 - nib / 2] |= (uint8) (nib % 2 ? d << 4 : d);
	}
	return true;
}

/* element i of array "arr" must be an object; its container */
static JsonbContainer *
element(JsonbContainer *a, const char *arr, int i, const char *what)
{
	JsonbValue *v = getIthJsonbValueFromContainer(a, i);

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad(psprintf("%s[%d]", arr, i), psprintf("must be %s object", what));
	return v->val.binary.data;
}

/* blockNumber and blockHash of object o (element i of arr), when given, must be l's */
static void
check_block(JsonbContainer *o, const char *arr, int i, const LiLedger *l, bool required)
{
	int64		n;
	uint8		h[LI_HASH_LEN];

	if (int_field(o, arr, i, "blockNumber", &n, required) && n != l->number)
		bad(fname(arr, i, "blockNumber"),
			psprintf("is " INT64_FORMAT ", not this ledger's number " INT64_FORMAT, n, l->number));
	if (hex_field(o, arr, i, "blockHash", h, LI_HASH_LEN, required) &&
		memcmp(h, l->hash, LI_HASH_LEN) != 0)
		bad(fname(arr, i, "blockHash"), "is not this ledger's hash");
}

static int
tx_cmp(const void *a, const void *b)
{
	int32		x = ((const LiTx *) a)->tx_index;
	int32		y = ((const LiTx *) b)->tx_index;

	return x < y ? -1 : x > y;
}

/* li_parse_transactions -- see ledger.h */
void
li_parse_transactions(JsonbValue *v, LiLedger *out)
{
	JsonbContainer *a;
	int			n;

	out->ntxs = 0;
	out->txs = NULL;
	if (v == NULL || v->type == jbvNull)
		return;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		bad("transactions", "must be an array");
	a = v->val.binary.data;
	n = JsonContainerSize(a);
	if (n == 0)
		return;
	/* eth_getBlockByNumber(n, false): the hashes only, nothing to apply */
	if (getIthJsonbValueFromContainer(a, 0)->type == jbvString)
	{
		for (int i = 0; i < n; i++)
		{
			JsonbValue *h = getIthJsonbValueFromContainer(a, i);
			uint8		hash[LI_HASH_LEN];

			if (h->type != jbvString)
				bad(psprintf("transactions[%d]", i), "must be a transaction hash, as the elements before it");
			li_hex_to_bytes(psprintf("transactions[%d]", i), h->val.string.val, h->val.string.len,
							hash, LI_HASH_LEN);
		}
		return;
	}
	/* one element at a time: a huge array of tiny non-objects fails early */
	out->txs = palloc0(sizeof(LiTx) * Min(n, 1024));
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *o = element(a, "transactions", i,
									"a transaction (eth_getBlockByNumber with full transactions)");
		LiTx	   *t;
		int64		q;
		JsonbValue *in;

		if (i >= 1024 && (i & (i - 1)) == 0)
			out->txs = repalloc(out->txs, sizeof(LiTx) * Min(n, i * 2));
		t = &out->txs[i];
		memset(t, 0, sizeof(LiTx));
		hex_field(o, "transactions", i, "hash", t->hash, LI_HASH_LEN, true);
		hex_field(o, "transactions", i, "from", t->from, LI_ADDRESS_LEN, true);
		if (hex_field(o, "transactions", i, "to", t->to, LI_ADDRESS_LEN, false))
			t->has |= LI_TX_HAS_TO;
		word_field(o, "transactions", i, "value", t->value, true);
		int_field(o, "transactions", i, "nonce", &t->nonce, true);
		int_field(o, "transactions", i, "gas", &t->gas, true);
		int_field(o, "transactions", i, "transactionIndex", &q, true);
		if (q > PG_INT32_MAX)
			bad(fname("transactions", i, "transactionIndex"), "is out of range");
		t->tx_index = (int32) q;
		if (int_field(o, "transactions", i, "type", &q, false))
		{
			if (q > 255)
				bad(fname("transactions", i, "type"), "is not a transaction type (0x0 to 0xff)");
			t->type = (int32) q;
		}
		if (word_field(o, "transactions", i, "gasPrice", t->gas_price, false))
			t->has |= LI_TX_HAS_GAS_PRICE;
		if (word_field(o, "transactions", i, "maxFeePerGas", t->max_fee_per_gas, false))
			t->has |= LI_TX_HAS_MAX_FEE;
		if (word_field(o, "transactions", i, "maxPriorityFeePerGas", t->max_priority_fee_per_gas, false))
			t->has |= LI_TX_HAS_MAX_PRIORITY_FEE;
		in = li_jsonb_get(o, "input");
		if (in == NULL || in->type == jbvNull)
			bad(fname("transactions", i, "input"), "is missing");
		if (in->type != jbvString)
			bad(fname("transactions", i, "input"), "must be a 0x-hex string");
		t->input = li_hex_to_bytea(fname("transactions", i, "input"), in->val.string.val,
								   in->val.string.len);
		check_block(o, "transactions", i, out, false);
	}
	qsort(out->txs, n, sizeof(LiTx), tx_cmp);
	for (int i = 1; i < n; i++)
		if (out->txs[i].tx_index == out->txs[i - 1].tx_index)
			bad("transactions", psprintf("has two transactions with transactionIndex %d",
										 out->txs[i].tx_index));
	out->ntxs = n;
}

/* li_ledger_tx -- see ledger.h */
LiTx *
li_ledger_tx(const LiLedger *l, int32 tx_index)
{
	int			lo = 0;
	int			hi = l->ntxs - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (l->txs[mid].tx_index == tx_index)
			return &l->txs[mid];
		if (l->txs[mid].tx_index < tx_index)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* receipt object o (element i of field, -1: not in an array) onto tx */
static void
receipt_onto(JsonbContainer *o, const char *field, int i, const LiLedger *l, LiTx *tx)
{
	const char *arr = field;
	uint8		h[LI_HASH_LEN];
	int64		q;

	check_block(o, arr, i, l, true);
	hex_field(o, arr, i, "transactionHash", h, LI_HASH_LEN, true);
	if (memcmp(h, tx->hash, LI_HASH_LEN) != 0)
		bad(fname(arr, i, "transactionHash"),
			psprintf("is not the hash of transaction %d of the ledger", tx->tx_index));
	if (int_field(o, arr, i, "status", &q, false))
	{
		if (q != 0 && q != 1)
			bad(fname(arr, i, "status"), "must be 0x0 or 0x1");
		tx->status = (int32) q;
		tx->has |= LI_TX_HAS_STATUS;
	}
	int_field(o, arr, i, "gasUsed", &tx->gas_used, true);
	if (word_field(o, arr, i, "effectiveGasPrice", tx->effective_gas_price, false))
		tx->has |= LI_TX_HAS_EFFECTIVE_PRICE;
	if (hex_field(o, arr, i, "contractAddress", tx->contract_address, LI_ADDRESS_LEN, false))
		tx->has |= LI_TX_HAS_CONTRACT;
	tx->has |= LI_TX_HAS_RECEIPT;
}

/* the transactionIndex of receipt o, element i of field */
static int32
receipt_index(JsonbContainer *o, const char *field, int i)
{
	int64		q;

	int_field(o, field, i, "transactionIndex", &q, true);
	if (q > PG_INT32_MAX)
		bad(fname(field, i, "transactionIndex"), "is out of range");
	return (int32) q;
}

/* li_parse_receipts -- see ledger.h */
void
li_parse_receipts(JsonbValue *v, const char *field, LiLedger *out, bool strict)
{
	JsonbContainer *a;
	int			n;

	if (v == NULL || v->type == jbvNull)
		return;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		bad(field, "must be an array");
	a = v->val.binary.data;
	n = JsonContainerSize(a);
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *o = element(a, field, i, "a receipt");
		int32		idx = receipt_index(o, field, i);
		LiTx	   *tx = li_ledger_tx(out, idx);

		if (tx == NULL)
		{
			if (strict)
				bad(fname(field, i, "transactionIndex"),
					psprintf("is %d, which no transaction of \"transactions\" has", idx));
			check_block(o, field, i, out, true);
			continue;
		}
		if (strict && (tx->has & LI_TX_HAS_RECEIPT))
			bad(fname(field, i, "transactionIndex"), psprintf("is %d, whose receipt came before", idx));
		receipt_onto(o, field, i, out, tx);
	}
}

/* li_parse_receipt -- see ledger.h */
void
li_parse_receipt(JsonbValue *v, const char *field, const LiLedger *l, LiTx *tx)
{
	JsonbContainer *o;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad(field, "must be a receipt object");
	o = v->val.binary.data;
	if (receipt_index(o, field, -1) != tx->tx_index)
		bad(psprintf("%s.transactionIndex", field), psprintf("is not %d", tx->tx_index));
	receipt_onto(o, field, -1, l, tx);
}

