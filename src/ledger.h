/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  Ledgers, events and cursor positions; parsing ledger documents
 *	  (ledger.c) and their packed form (packed.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_LEDGER_H
#define LI_LEDGER_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define LI_SCHEMA			"ledger_ingest"
#define LI_CHANNEL			"ledger_ingest"
#define LI_NAME_MAX			64		/* pipeline names are at most 63 bytes */
#define LI_HASH_LEN			32
#define LI_ADDRESS_LEN		20		/* an EVM address */
#define LI_MAX_ADDRESS_LEN	32		/* a Stellar contract id */
#define LI_MAX_TOPICS		4

/*
 * A cursor position.  complete = true means ledger "ledger" and all its
 * events are applied (SQL: tx_index and event_index NULL); otherwise the
 * ledger is applied up to and including event (tx_index, event_index).
 */
typedef struct LiPosition
{
	int64		ledger;
	bool		complete;
	int32		tx_index;
	int32		event_index;
} LiPosition;

/*
 * One event, parsed and validated: an EVM log, or a Stellar contract or
 * system event.  A topic is 32 bytes (every EVM topic) in topics[t], or of
 * another length (a Stellar topic: the XDR of an ScVal) in var_topics[t];
 * read them with li_event_topic().
 */
typedef struct LiEvent
{
	int32		tx_index;
	int32		event_index;	/* EVM: logIndex */
	uint8		tx_hash[LI_HASH_LEN];
	bool		has_tx_hash;
	uint8		address_len;	/* LI_ADDRESS_LEN; 32 (Stellar); 0: none */
	uint8		address[LI_MAX_ADDRESS_LEN];
	int			ntopics;
	uint8		topics[LI_MAX_TOPICS][LI_HASH_LEN];
	bytea	   *var_topics[LI_MAX_TOPICS];	/* NULL: the topic is in topics[t] */
	bytea	   *data;
} LiEvent;

/* topic t of e (t < e->ntopics), its length in *len */
static inline const uint8 *
li_event_topic(const LiEvent *e, int t, int *len)
{
	if (e->var_topics[t] != NULL)
	{
		*len = (int) VARSIZE_ANY_EXHDR(e->var_topics[t]);
		return (const uint8 *) VARDATA_ANY(e->var_topics[t]);
	}
	*len = LI_HASH_LEN;
	return e->topics[t];
}

/*
 * One ledger, parsed and validated: an EVM block with its logs, or a
 * Stellar ledger with its events (stellar: then parent_hash is the
 * header's previousLedgerHash, and the network never reorganizes).
 */
/*
 * A transaction of a ledger (EVM): the fields of eth_getBlockByNumber's
 * full transaction objects and, when the pipeline asks for receipts, of
 * its receipt (eth_getBlockReceipts).  Quantities that may exceed 64 bits
 * (wei) are 32-byte big-endian words.
 */
#define LI_TX_HAS_TO				0x0001
#define LI_TX_HAS_GAS_PRICE			0x0002
#define LI_TX_HAS_MAX_FEE			0x0004
#define LI_TX_HAS_MAX_PRIORITY_FEE	0x0008
#define LI_TX_HAS_RECEIPT			0x0010
#define LI_TX_HAS_STATUS			0x0020	/* receipt: status (post-Byzantium) */
#define LI_TX_HAS_EFFECTIVE_PRICE	0x0040	/* receipt: effectiveGasPrice */
#define LI_TX_HAS_CONTRACT			0x0080	/* receipt: contractAddress not null */

typedef struct LiTx
{
	int32		tx_index;
	uint32		has;			/* LI_TX_HAS_* */
	uint8		hash[LI_HASH_LEN];
	uint8		from[LI_ADDRESS_LEN];
	uint8		to[LI_ADDRESS_LEN];
	uint8		value[32];
	int64		nonce;
	int64		gas;
	int32		type;
	int32		status;			/* receipt: 1 success, 0 failure */
	uint8		gas_price[32];
	uint8		max_fee_per_gas[32];
	uint8		max_priority_fee_per_gas[32];
	int64		gas_used;		/* receipt */
	uint8		effective_gas_price[32];	/* receipt */
	uint8		contract_address[LI_ADDRESS_LEN];	/* receipt */
	bytea	   *input;
} LiTx;

typedef struct LiLedger
{
	int64		number;
	uint8		hash[LI_HASH_LEN];
	uint8		parent_hash[LI_HASH_LEN];
	bool		has_parent;
	bool		stellar;
	TimestampTz time;
	int			nevents;
	LiEvent    *events;			/* sorted by (tx_index, event_index) */
	int			ntxs;
	LiTx	   *txs;			/* its transactions, by tx_index, or none */
	int64		inbox_id;		/* inbox row it came from, or 0 */
	TransactionId inbox_xmin;	/* the version of that row that was read */
} LiLedger;

/*
 * A log as read from JSON, before its checks: the values of the keys
 * li_parse_log reads.  The inbox reads it from a document's jsonb
 * (li_raw_log_from_jsonb), the evm_rpc source straight from the text of an
 * eth_getLogs response (rpc_stream.c); both then take the same checks.
 */
typedef enum LiLogKey
{
	LI_LOG_BLOCK_NUMBER,
	LI_LOG_BLOCK_HASH,
	LI_LOG_BLOCK_TIMESTAMP,
	LI_LOG_REMOVED,
	LI_LOG_TX_INDEX,
	LI_LOG_LOG_INDEX,
	LI_LOG_TX_HASH,
	LI_LOG_ADDRESS,
	LI_LOG_TOPICS,
	LI_LOG_DATA,
	LI_LOG_NKEYS
} LiLogKey;

typedef struct LiRawLog
{
	bool		is_object;		/* false: the element is not a JSON object */
	bool		present[LI_LOG_NKEYS];	/* key k is there */
	/*
	 * Scalars as jsonb values (strings need not be NUL-terminated); an
	 * object or array has only its type set (jbvObject, jbvArray).
	 */
	JsonbValue	vals[LI_LOG_NKEYS];
	int			ntopics;		/* elements of an array "topics" */
	JsonbValue	topics[LI_MAX_TOPICS];	/* its first LI_MAX_TOPICS, as vals */
} LiRawLog;

/* the value of key k of raw, or NULL when absent */
static inline const JsonbValue *
li_raw_log_get(const LiRawLog *raw, LiLogKey k)
{
	return raw->present[k] ? &raw->vals[k] : NULL;
}

/* the name of key k in JSON ("blockNumber") */
extern const char *li_log_key_name(LiLogKey k);

/*
 * ledger.c: documents in the Ethereum JSON-RPC shape (eth_getBlockByNumber
 * header fields plus "logs" as eth_getLogs returns them)
 */
/*
 * parse and validate one document, EVM or Stellar (by its fields: a
 * Stellar one has "headerXdr"), into *out; ERROR 22023 naming the field
 */
extern void li_parse_ledger(JsonbContainer *doc, LiLedger *out);
/* is doc a Stellar ledger document (it has "headerXdr")? */
extern bool li_is_stellar_document(JsonbContainer *doc);
/*
 * ledger_stellar.c: a Stellar document (a getLedgers entry plus its
 * getEvents "events") into *out; ERROR 22023 naming the field
 */
extern void li_parse_stellar_ledger(JsonbContainer *doc, LiLedger *out);
/* NULL when doc's header hashes to its "hash", else what is wrong (a field named) */
extern char *li_stellar_header_error(JsonbContainer *doc);
/* the header fields (number, hash, parentHash, timestamp) of doc into *out, no events */
extern void li_parse_ledger_header(JsonbContainer *doc, LiLedger *out);
/* an element of "logs" (any JSON value, as jsonb) as a raw log */
extern void li_raw_log_from_jsonb(const JsonbValue *v, LiRawLog *out);
/*
 * does log i (of its ledger, for messages) belong to ledger number (and to
 * hash, unless NULL)?  ERROR 22023 if not, or if it is marked removed
 */
extern void li_check_log_block(const LiRawLog *raw, int i, int64 number, const uint8 *hash);
/* log i's blockHash into hash; false when it has none; ERROR 22023 if invalid */
extern bool li_log_block_hash(const LiRawLog *raw, int i, uint8 *hash);
/* the event fields of log i into *e (not its block: li_check_log_block); ERROR 22023 */
extern void li_parse_log(const LiRawLog *raw, int i, LiEvent *e);
/* events[0..n) as the events of out, sorted; ERROR 22023 on a duplicate logIndex */
extern void li_ledger_set_events(LiLedger *out, LiEvent *events, int n);
/* a JSON-RPC QUANTITY ("0x" hex, or a JSON number) as int64; false if not one */
extern bool li_quantity_from_jsonb(JsonbValue *v, int64 *out);
/* a numeric with an integral value in the int64 range; false otherwise */
extern bool li_numeric_to_int64(Numeric n, int64 *out);
/* a QUANTITY as int64; ERROR 22023 naming field and what is wrong */
extern int64 li_quantity_field(JsonbValue *v, const char *field);
/* "0x" hex of exactly outlen bytes into out; ERROR 22023 naming field */
extern void li_hex_to_bytes(const char *field, const char *s, int len,
							uint8 *out, int outlen);
/* "0x" hex DATA of any even length as a palloc'd bytea; ERROR 22023 naming field */
extern bytea *li_hex_to_bytea(const char *field, const char *s, int len);
/* "0x"-prefixed lower-case hex of b[0..len), palloc'd */
extern char *li_bytes_to_hex(const uint8 *b, int len);
/* a palloc'd bytea holding b[0..len) */
extern bytea *li_bytes_to_bytea(const uint8 *b, int len);
/* the event's topics as a one-dimensional bytea[] without NULLs */
extern struct ArrayType *li_topics_array(const LiEvent *e);
/* the value of key in a JSON object container; NULL if absent or not an object */
extern JsonbValue *li_jsonb_get(JsonbContainer *c, const char *key);

/*
 * transaction.c: a document's "transactions" (eth_getBlockByNumber's full
 * transaction objects) and "receipts" (eth_getBlockReceipts' shape)
 */
/*
 * the array v (field "transactions") into out->txs, sorted by
 * transactionIndex; ERROR 22023 naming the field
 */
extern void li_parse_transactions(JsonbValue *v, LiLedger *out);
/*
 * the receipts in array v (field name "field") onto out's transactions:
 * each must be of out's block and, when strict, of one of its
 * transactions (else it is skipped); ERROR 22023 naming the field
 */
extern void li_parse_receipts(JsonbValue *v, const char *field, LiLedger *out, bool strict);
/* one receipt object (eth_getTransactionReceipt's result) onto tx; ERROR 22023 */
extern void li_parse_receipt(JsonbValue *v, const char *field, const LiLedger *l, LiTx *tx);
/* the transaction tx_index of l, or NULL */
extern LiTx *li_ledger_tx(const LiLedger *l, int32 tx_index);

/* packed.c: the form the inbox computes at insert (inbox.packed) */
/* the packed form of a parsed ledger, palloc'd; NULL when over 1 GB or Stellar */
extern bytea *li_pack_ledger(const LiLedger *l);
/* read a packed ledger into *out (events point into packed); false if invalid */
extern bool li_unpack_ledger(bytea *packed, LiLedger *out);

#endif							/* LI_LEDGER_H */
