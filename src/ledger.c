/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  Parse and validate ledger documents.
 *
 * A ledger document is the Ethereum JSON-RPC shape: the header fields of
 * eth_getBlockByNumber ("number", "hash", "parentHash", "timestamp") plus
 * "logs", the block's logs exactly as eth_getLogs returns them.  Encodings
 * follow the JSON-RPC specification (ethereum.org, "JSON-RPC API",
 * "Hex value encoding"): a QUANTITY is "0x" followed by compact hex with no
 * leading zeros ("0x0" for zero); DATA is "0x" followed by two hex digits
 * per byte.  Quantities may also be given as JSON integers.
 *
 * Every error is an ERRCODE_DATA_EXCEPTION-class ereport naming the field,
 * e.g. logs[3].topics[1].
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "ledger.h"

PG_FUNCTION_INFO_V1(ledger_ingest_doc_ledger);

/* hex digit values, -1 for anything else */
static const int8 hexvals[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
};

static inline int
hexval(char c)
{
	return hexvals[(unsigned char) c];
}

/*
 * hex_fixed -- decode s/len when it is "0x" followed by exactly 2 * outlen
 * hex digits; false (out undefined) otherwise, for the caller to report.
 * No branch per byte: the digit values are OR-ed together, and a non-digit
 * (-1 in hexvals, bit 7 set) shows in the result once at the end.
 */
static inline bool
hex_fixed(const char *s, int len, uint8 *out, int outlen)
{
	uint8		bad = 0;

	if (len != 2 + 2 * outlen || s[0] != '0' || (s[1] | 0x20) != 'x')
		return false;
	s += 2;
	for (int i = 0; i < outlen; i++)
	{
		uint8		hi = (uint8) hexvals[(unsigned char) s[2 * i]];
		uint8		lo = (uint8) hexvals[(unsigned char) s[2 * i + 1]];

		bad |= hi | lo;
		out[i] = (uint8) ((hi << 4) | lo);
	}
	return (bad & 0x80) == 0;
}

/*
 * li_jsonb_get -- value of "key" in a JSON object container, or NULL when
 * the key is absent or the container is not an object.
 */
JsonbValue *
li_jsonb_get(JsonbContainer *c, const char *key)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

/*
 * parse_quantity -- a QUANTITY ("0x1b4" or a JSON integer) as a
 * non-negative int64.  Returns false (with *why set) when invalid.
 */
static bool
parse_quantity(JsonbValue *v, int64 *out, const char **why)
{
	if (v == NULL || v->type == jbvNull)
	{
		*why = "is missing";
		return false;
	}
	if (v->type == jbvString)
	{
		const char *s = v->val.string.val;
		int			len = v->val.string.len;
		uint64		acc = 0;

		if (len < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		{
			*why = "must be a 0x-prefixed hex quantity";
			return false;
		}
		if (len > 3 && s[2] == '0')
		{
			*why = "has leading zeros (a JSON-RPC quantity is compact hex)";
			return false;
		}
		if (len - 2 > 16)
		{
			*why = "is out of range for a 64-bit ledger quantity";
			return false;
		}
		for (int i = 2; i < len; i++)
		{
			int			d = hexval(s[i]);

			if (d < 0)
			{
				*why = "contains a non-hex character";
				return false;
			}
			acc = (acc << 4) | (uint64) d;
		}
		if (acc > (uint64) PG_INT64_MAX)
		{
			*why = "is out of range for a 64-bit ledger quantity";
			return false;
		}
		*out = (int64) acc;
		return true;
	}
	if (v->type == jbvNumeric)
	{
		int64		r;

		if (!li_numeric_to_int64(v->val.numeric, &r))
		{
			*why = "must be an integer within the 64-bit range";
			return false;
		}
		if (r < 0)
		{
			*why = "must not be negative";
			return false;
		}
		*out = r;
		return true;
	}
	*why = "must be a 0x-hex string or a JSON integer";
	return false;
}

/*
 * li_numeric_to_int64 -- a JSON number with an integral value in the int64
 * range, false otherwise.  "1e3" counts (it is 1000); "100.0" does not: its
 * numeric value keeps a fractional digit.
 */
bool
li_numeric_to_int64(Numeric n, int64 *out)
{
	char	   *s;
	char	   *end;
	long long	r;

	if (numeric_is_nan(n) || numeric_is_inf(n))
		return false;
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	errno = 0;
	r = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		return false;
	*out = (int64) r;
	return true;
}

/*
 * li_quantity_from_jsonb -- exported form of parse_quantity.
 */
bool
li_quantity_from_jsonb(JsonbValue *v, int64 *out)
{
	const char *why;

	return parse_quantity(v, out, &why);
}

/*
 * li_quantity_field -- the QUANTITY v as int64; ERROR 22023 naming field
 * and what is wrong with it.
 */
int64
li_quantity_field(JsonbValue *v, const char *field)
{
	int64		r;
	const char *why;

	if (!parse_quantity(v, &r, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" %s", field, why)));
	return r;
}

/*
 * li_hex_to_bytes -- decode "0x"-prefixed hex of exactly outlen bytes.
 * s/len is the JSON string; field names it in errors.
 */
void
li_hex_to_bytes(const char *field, const char *s, int len, uint8 *out, int outlen)
{
	if (hex_fixed(s, len, out, outlen))
		return;
	/* not well-formed: say why */
	if (len < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be 0x-prefixed hex", field)));
	if ((len - 2) % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" has an odd number of hex digits", field)));
	if ((len - 2) / 2 != outlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be %d bytes, got %d",
						field, outlen, (len - 2) / 2)));
	for (int i = 0; i < outlen; i++)
	{
		int			hi = hexval(s[2 + 2 * i]);
		int			lo = hexval(s[3 + 2 * i]);

		if ((hi | lo) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" contains a non-hex character", field)));
		out[i] = (uint8) ((hi << 4) | lo);
	}
}

/*
 * li_hex_to_bytea -- decode "0x"-prefixed hex DATA of any even length.
 */
bytea *
li_hex_to_bytea(const char *field, const char *s, int len)
{
	bytea	   *r;
	int			n;

	if (len < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be 0x-prefixed hex", field)));
	if ((len - 2) % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" has an odd number of hex digits", field)));
	n = (len - 2) / 2;
	r = (bytea *) palloc(VARHDRSZ + n);
	SET_VARSIZE(r, VARHDRSZ + n);
	if (n > 0 && !hex_fixed(s, len, (uint8 *) VARDATA(r), n))
		li_hex_to_bytes(field, s, len, (uint8 *) VARDATA(r), n);
	return r;
}

/*
 * li_bytes_to_bytea -- a palloc'd bytea holding b[0..len).
 */
bytea *
li_bytes_to_bytea(const uint8 *b, int len)
{
	bytea	   *r = palloc(VARHDRSZ + len);

	SET_VARSIZE(r, VARHDRSZ + len);
	memcpy(VARDATA(r), b, len);
	return r;
}

/*
 * li_topics_array -- an event's topics as a one-dimensional bytea[] without
 * NULLs (empty when it has none), written in place: what construct_array
 * makes of bytea elements (the layout in utils/array.h: header, dimension
 * and lower bound, then each element with its 4-byte varlena header,
 * int-aligned), without a bytea per topic.
 */
ArrayType *
li_topics_array(const LiEvent *e)
{
	int			n = e->ntopics;
	Size		size = n > 0 ? ARR_OVERHEAD_NONULLS(1) : sizeof(ArrayType);
	ArrayType  *a;
	char	   *p;
	int			len;

	for (int t = 0; t < n; t++)
	{
		(void) li_event_topic(e, t, &len);
		size += INTALIGN(VARHDRSZ + len);
	}
	a = (ArrayType *) palloc0(size);
	SET_VARSIZE(a, size);
	a->ndim = n > 0 ? 1 : 0;
	a->dataoffset = 0;
	a->elemtype = BYTEAOID;
	if (n == 0)
		return a;
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	p = (char *) a + ARR_OVERHEAD_NONULLS(1);
	for (int t = 0; t < n; t++)
	{
		const uint8 *topic = li_event_topic(e, t, &len);

		SET_VARSIZE(p, VARHDRSZ + len);
		memcpy(p + VARHDRSZ, topic, len);
		p += INTALIGN(VARHDRSZ + len);
	}
	return a;
}

/*
 * li_bytes_to_hex -- "0x"-prefixed lower-case hex of b[0..len).
 */
char *
li_bytes_to_hex(const uint8 *b, int len)
{
	static const char digits[] = "0123456789abcdef";
	char	   *r = palloc(2 + 2 * len + 1);

	r[0] = '0';
	r[1] = 'x';
	for (int i = 0; i < len; i++)
	{
		r[2 + 2 * i] = digits[b[i] >> 4];
		r[3 + 2 * i] = digits[b[i] & 0xf];
	}
	r[2 + 2 * len] = '\0';
	return r;
}

static int
event_cmp(const void *a, const void *b)
{
	const LiEvent *x = a;
	const LiEvent *y = b;

	if (x->tx_index != y->tx_index)
		return x->tx_index < y->tx_index ? -1 : 1;
	if (x->event_index != y->event_index)
		return x->event_index < y->event_index ? -1 : 1;
	return 0;
}

/* "0x"-prefixed hex DATA of any even length as a bytea; NULL if malformed */
static bytea *
hex_data(const char *s, int len)
{
	int			n = (len - 2) / 2;
	bytea	   *r;

	if (len < 2 || len % 2 != 0)
		return NULL;
	r = (bytea *) palloc(VARHDRSZ + n);
	SET_VARSIZE(r, VARHDRSZ + n);
	if (!hex_fixed(s, len, (uint8 *) VARDATA(r), n))
	{
		pfree(r);
		return NULL;
	}
	return r;
}

/* "logs[i].name", the name of a log field in messages */
static char *
log_field(int i, const char *name)
{
	return psprintf("logs[%d].%s", i, name);
}

static const char *const log_key_names[LI_LOG_NKEYS] = {
	[LI_LOG_BLOCK_NUMBER] = "blockNumber",
	[LI_LOG_BLOCK_HASH] = "blockHash",
	[LI_LOG_BLOCK_TIMESTAMP] = "blockTimestamp",
	[LI_LOG_REMOVED] = "removed",
	[LI_LOG_TX_INDEX] = "transactionIndex",
	[LI_LOG_LOG_INDEX] = "logIndex",
	[LI_LOG_TX_HASH] = "transactionHash",
	[LI_LOG_ADDRESS] = "address",
	[LI_LOG_TOPICS] = "topics",
	[LI_LOG_DATA] = "data"
};

/* li_log_key_name -- the JSON name of key k */
const char *
li_log_key_name(LiLogKey k)
{
	return log_key_names[k];
}

/*
 * A jsonb value as a raw log value: scalars as they are, a container as
 * its kind only.
 */
static void
raw_value(const JsonbValue *v, JsonbValue *out)
{
	if (v->type == jbvBinary)
		out->type = JsonContainerIsArray(v->val.binary.data) ? jbvArray : jbvObject;
	else
		*out = *v;
}

/*
 * li_raw_log_from_jsonb -- an element of a document's "logs" as a raw log:
 * one pass over the object's pairs, keeping the keys li_parse_log reads
 * (cheaper than a binary search of the object per key: a log has about as
 * many keys as it reads).  A key given twice keeps its last value, as
 * jsonb does.
 */
void
li_raw_log_from_jsonb(const JsonbValue *v, LiRawLog *out)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	jv;
	int			k = -1;

	memset(out->present, 0, sizeof(out->present));
	out->ntopics = 0;
	out->is_object = v != NULL && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
	if (!out->is_object)
		return;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &jv, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			k = -1;
			for (int i = 0; i < LI_LOG_NKEYS; i++)
				if ((int) strlen(log_key_names[i]) == jv.val.string.len &&
					memcmp(log_key_names[i], jv.val.string.val, jv.val.string.len) == 0)
				{
					k = i;
					break;
				}
		}
		else if (tok == WJB_VALUE && k >= 0)
		{
			raw_value(&jv, &out->vals[k]);
			out->present[k] = true;
			if (k == LI_LOG_TOPICS && jv.type == jbvBinary &&
				JsonContainerIsArray(jv.val.binary.data))
			{
				out->ntopics = JsonContainerSize(jv.val.binary.data);
				for (int t = 0; t < Min(out->ntopics, LI_MAX_TOPICS); t++)
					raw_value(getIthJsonbValueFromContainer(jv.val.binary.data, t),
							  &out->topics[t]);
			}
		}
	}
}

/*
 * log_int32 -- transactionIndex or logIndex: a QUANTITY in 0..INT32_MAX.
 * JSON integers, the common case in documents, are converted without
 * going through text; anything else takes parse_quantity's path and its
 * messages.
 */
static int32
log_int32(const JsonbValue *v, int i, const char *name)
{
	int64		q;
	const char *why;

	if (v != NULL && v->type == jbvNumeric &&
		!numeric_is_nan(v->val.numeric) && !numeric_is_inf(v->val.numeric) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale,
										  NumericGetDatum(v->val.numeric))) == 0)
	{
		bool		err = false;
		int32		r = numeric_int4_opt_error(v->val.numeric, &err);

		if (!err && r >= 0)
			return r;
	}
	if (!parse_quantity((JsonbValue *) v, &q, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" %s", log_field(i, name), why)));
	if (q > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" is out of range",
						log_field(i, name))));
	return (int32) q;
}

/*
 * fixed_value -- a fixed-size DATA field (a hash, an address: outlen bytes)
 * into out.  Returns false when it is absent or null and not required.
 * Its name for messages is "name", or "logs[i].name" for i >= 0, formatted
 * only when there is something to report.
 */
static bool
fixed_value(const JsonbValue *v, int i, const char *name, uint8 *out, int outlen,
			bool required)
{
	if (v != NULL && v->type == jbvString &&
		hex_fixed(v->val.string.val, v->val.string.len, out, outlen))
		return true;
	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" is missing",
							i < 0 ? name : log_field(i, name))));
		return false;
	}
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be a 0x-hex string",
						i < 0 ? name : log_field(i, name))));
	li_hex_to_bytes(i < 0 ? name : log_field(i, name), v->val.string.val,
					v->val.string.len, out, outlen);
	return true;
}

/*
 * li_log_block_hash -- log i's blockHash into hash; false when it has
 * none (absent or null).
 */
bool
li_log_block_hash(const LiRawLog *raw, int i, uint8 *hash)
{
	return fixed_value(li_raw_log_get(raw, LI_LOG_BLOCK_HASH), i, "blockHash",
					   hash, LI_HASH_LEN, false);
}

/*
 * li_check_log_block -- a log's blockNumber and blockHash, when given,
 * must be the ledger's (number; hash unless NULL); a log marked "removed"
 * belongs to an orphaned block.
 */
void
li_check_log_block(const LiRawLog *raw, int i, int64 number, const uint8 *hash)
{
	const JsonbValue *v;
	int64		q;
	const char *why;
	uint8		h[LI_HASH_LEN];

	if (!raw->is_object)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: \"logs[%d]\" must be an object", i)));
	v = li_raw_log_get(raw, LI_LOG_BLOCK_NUMBER);
	if (v != NULL && v->type != jbvNull)
	{
		if (!parse_quantity((JsonbValue *) v, &q, &why))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" %s",
							log_field(i, "blockNumber"), why)));
		if (q != number)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" is " INT64_FORMAT ", but the ledger number is " INT64_FORMAT,
							log_field(i, "blockNumber"), q, number)));
	}
	if (li_log_block_hash(raw, i, h) && hash != NULL && memcmp(h, hash, LI_HASH_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" does not match the ledger hash",
						log_field(i, "blockHash"))));
	v = li_raw_log_get(raw, LI_LOG_REMOVED);
	if (v != NULL && v->type == jbvBool && v->val.boolean)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: \"logs[%d]\" is marked removed", i),
				 errdetail("A removed log belongs to an orphaned block; send the canonical block instead.")));
}

/* A log's "topics": 0 to LI_MAX_TOPICS 32-byte DATA, into e. */
static void
parse_topics(const LiRawLog *raw, int i, LiEvent *e)
{
	const JsonbValue *v = li_raw_log_get(raw, LI_LOG_TOPICS);

	if (v == NULL || v->type != jbvArray)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be an array",
						log_field(i, "topics"))));
	if (raw->ntopics > LI_MAX_TOPICS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" has %d topics, at most %d are allowed",
						log_field(i, "topics"), raw->ntopics, LI_MAX_TOPICS)));
	e->ntopics = raw->ntopics;
	for (int t = 0; t < raw->ntopics; t++)
	{
		const JsonbValue *tv = &raw->topics[t];
		char		name[sizeof("topics[0]")];

		if (tv->type == jbvString &&
			hex_fixed(tv->val.string.val, tv->val.string.len, e->topics[t], LI_HASH_LEN))
			continue;
		snprintf(name, sizeof(name), "topics[%d]", t);
		if (tv->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" must be a 0x-hex string",
							log_field(i, name))));
		li_hex_to_bytes(log_field(i, name), tv->val.string.val, tv->val.string.len,
						e->topics[t], LI_HASH_LEN);
	}
}

/*
 * li_parse_log -- the event fields of log i into *e: transactionIndex,
 * logIndex, transactionHash (optional), address, topics, data.  A field's
 * name for messages ("logs[3].data") is only formatted when there is
 * something to report.
 */
void
li_parse_log(const LiRawLog *raw, int i, LiEvent *e)
{
	const JsonbValue *v;

	if (!raw->is_object)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: \"logs[%d]\" must be an object", i)));
	e->tx_index = log_int32(li_raw_log_get(raw, LI_LOG_TX_INDEX), i, "transactionIndex");
	e->event_index = log_int32(li_raw_log_get(raw, LI_LOG_LOG_INDEX), i, "logIndex");
	e->has_tx_hash = fixed_value(li_raw_log_get(raw, LI_LOG_TX_HASH), i, "transactionHash",
								 e->tx_hash, LI_HASH_LEN, false);
	(void) fixed_value(li_raw_log_get(raw, LI_LOG_ADDRESS), i, "address",
					   e->address, LI_ADDRESS_LEN, true);
	e->address_len = LI_ADDRESS_LEN;

	parse_topics(raw, i, e);

	v = li_raw_log_get(raw, LI_LOG_DATA);
	if (v == NULL || v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be a 0x-hex string",
						log_field(i, "data"))));
	e->data = hex_data(v->val.string.val, v->val.string.len);
	if (e->data == NULL)
		e->data = li_hex_to_bytea(log_field(i, "data"), v->val.string.val, v->val.string.len);
}

/*
 * li_parse_ledger_header -- the header fields of a ledger document, or of
 * an eth_getBlockByNumber result, into *out (zeroed first; no events):
 * "number" (QUANTITY), "hash" (32-byte DATA), and the optional
 * "parentHash" and "timestamp" (seconds since the Unix epoch).
 */
void
li_parse_ledger_header(JsonbContainer *doc, LiLedger *out)
{
	JsonbValue *v;

	memset(out, 0, sizeof(LiLedger));
	if (doc == NULL || !JsonContainerIsObject(doc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: not a JSON object")));

	out->number = li_quantity_field(li_jsonb_get(doc, "number"), "number");
	(void) fixed_value(li_jsonb_get(doc, "hash"), -1, "hash", out->hash, LI_HASH_LEN, true);
	out->has_parent = fixed_value(li_jsonb_get(doc, "parentHash"), -1, "parentHash",
								  out->parent_hash, LI_HASH_LEN, false);

	v = li_jsonb_get(doc, "timestamp");
	if (v != NULL && v->type != jbvNull)
	{
		int64		secs = li_quantity_field(v, "timestamp");

		if (secs > (int64) 1 << 40)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"timestamp\" is out of range")));
		out->time = (TimestampTz) (secs - ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) * USECS_PER_SEC;
	}
	else
		out->time = DT_NOBEGIN;
}

/*
 * li_ledger_set_events -- events[0..n) as the events of out, sorted by
 * (tx_index, event_index); logIndex is block-wide: unique, and increasing
 * with the transaction index.
 */
void
li_ledger_set_events(LiLedger *out, LiEvent *events, int n)
{
	out->nevents = n;
	out->events = n > 0 ? events : NULL;
	if (n < 2)
		return;
	qsort(out->events, n, sizeof(LiEvent), event_cmp);
	for (int i = 1; i < n; i++)
	{
		if (out->events[i].event_index == out->events[i - 1].event_index)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: duplicate logIndex %d",
							out->events[i].event_index)));
		if (out->events[i].event_index < out->events[i - 1].event_index)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: logIndex %d of transactionIndex %d precedes logIndex %d of transactionIndex %d",
							out->events[i].event_index, out->events[i].tx_index,
							out->events[i - 1].event_index, out->events[i - 1].tx_index)));
	}
}

/*
 * li_parse_ledger -- parse and validate one ledger document into *out.
 *
 * Requires "number" (QUANTITY), "hash" (32-byte DATA) and "logs" (array,
 * may be empty or absent for a ledger without events); "parentHash" and
 * "timestamp" (QUANTITY, seconds since the Unix epoch) are optional.  Each
 * log needs "address", "topics" (0..4 32-byte DATA), "data",
 * "transactionIndex" and "logIndex"; "blockNumber"/"blockHash" must agree
 * with the ledger when present; logIndex must be unique.  Events come out
 * sorted by (transactionIndex, logIndex).
 */
void
li_parse_ledger(JsonbContainer *doc, LiLedger *out)
{
	JsonbValue *v;
	JsonbContainer *lc;
	int			n;
	int			cap;
	LiEvent    *events;

	if (li_is_stellar_document(doc))
	{
		li_parse_stellar_ledger(doc, out);
		return;
	}
	li_parse_ledger_header(doc, out);
	li_parse_transactions(li_jsonb_get(doc, "transactions"), out);
	v = li_jsonb_get(doc, "receipts");
	if (v != NULL && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
		JsonContainerSize(v->val.binary.data) > 0 && out->ntxs == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"receipts\" needs the transactions in field \"transactions\"")));
	li_parse_receipts(v, "receipts", out, true);
	v = li_jsonb_get(doc, "logs");
	if (v == NULL || v->type == jbvNull)
		return;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"logs\" must be an array")));
	lc = v->val.binary.data;
	n = JsonContainerSize(lc);

	/*
	 * Grow the events as logs are read rather than sizing them from the
	 * array: a short document can hold millions of tiny non-log elements,
	 * and each LiEvent is far larger than such an element (found by
	 * test/fuzz/ledger_fuzz).
	 */
	cap = Min(n, 256);
	events = n > 0 ? palloc0(sizeof(LiEvent) * cap) : NULL;
	for (int i = 0; i < n; i++)
	{
		LiRawLog	raw;

		if (i == cap)
		{
			int			newcap = (int) Min((int64) n, (int64) cap * 2);

			events = repalloc(events, sizeof(LiEvent) * newcap);
			memset(events + cap, 0, sizeof(LiEvent) * (newcap - cap));
			cap = newcap;
		}
		li_raw_log_from_jsonb(getIthJsonbValueFromContainer(lc, i), &raw);
		li_check_log_block(&raw, i, out->number, out->hash);
		li_parse_log(&raw, i, &events[i]);
	}
	li_ledger_set_events(out, events, n);
}

/*
 * li_is_stellar_document -- is doc a Stellar ledger document: an object
 * with "headerXdr" (a getLedgers entry)?
 */
bool
li_is_stellar_document(JsonbContainer *doc)
{
	return doc != NULL && JsonContainerIsObject(doc) && li_jsonb_get(doc, "headerXdr") != NULL;
}

/*
 * ledger_ingest.doc_ledger(doc jsonb) RETURNS bigint
 *
 * The "number" of a ledger document (a Stellar one's "sequence"), or NULL
 * when it is missing or not a valid quantity.  Never raises: it backs the inbox's generated column, so
 * that a producer's malformed document is stored and rejected by the worker
 * with a clear error rather than failing the producer's INSERT.
 */
Datum
ledger_ingest_doc_ledger(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc = PG_GETARG_JSONB_P(0);
	JsonbValue *v;
	int64		n;
	const char *why;

	if (!JB_ROOT_IS_OBJECT(doc))
		PG_RETURN_NULL();
	v = li_jsonb_get(&doc->root, li_is_stellar_document(&doc->root) ? "sequence" : "number");
	if (!parse_quantity(v, &n, &why))
		PG_RETURN_NULL();
	PG_RETURN_INT64(n);
}
