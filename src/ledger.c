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

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "ledger_ingest.h"

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

static int64
get_quantity(JsonbValue *v, const char *field)
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
	if (n > 0)
		li_hex_to_bytes(field, s, len, (uint8 *) VARDATA(r), n);
	return r;
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

static void
get_fixed(JsonbContainer *obj, const char *key, const char *field,
		  uint8 *out, int outlen, bool required, bool *present)
{
	JsonbValue *v = li_jsonb_get(obj, key);

	if (v == NULL || v->type == jbvNull)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" is missing", field)));
		if (present)
			*present = false;
		return;
	}
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be a 0x-hex string", field)));
	li_hex_to_bytes(field, v->val.string.val, v->val.string.len, out, outlen);
	if (present)
		*present = true;
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

static void
parse_log(JsonbContainer *log, int i, const LiLedger *l, LiEvent *e)
{
	char		field[64];
	JsonbValue *v;
	int64		q;
	int			prefix;

	if (!JsonContainerIsObject(log))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: \"logs[%d]\" must be an object", i)));
	/* field names for errors: "logs[i]." once, then each key after it */
	prefix = snprintf(field, sizeof(field), "logs[%d].", i);

	/* the log must belong to this ledger */
	v = li_jsonb_get(log, "blockNumber");
	if (v != NULL && v->type != jbvNull)
	{
		strlcpy(field + prefix, "blockNumber", sizeof(field) - prefix);
		q = get_quantity(v, field);
		if (q != l->number)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" is " INT64_FORMAT ", but the ledger number is " INT64_FORMAT,
							field, q, l->number)));
	}
	v = li_jsonb_get(log, "blockHash");
	if (v != NULL && v->type != jbvNull)
	{
		uint8		h[LI_HASH_LEN];

		strlcpy(field + prefix, "blockHash", sizeof(field) - prefix);
		get_fixed(log, "blockHash", field, h, LI_HASH_LEN, true, NULL);
		if (memcmp(h, l->hash, LI_HASH_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" does not match the ledger hash", field)));
	}
	v = li_jsonb_get(log, "removed");
	if (v != NULL && v->type == jbvBool && v->val.boolean)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: \"logs[%d]\" is marked removed", i),
				 errdetail("A removed log belongs to an orphaned block; send the canonical block instead.")));

	strlcpy(field + prefix, "transactionIndex", sizeof(field) - prefix);
	q = get_quantity(li_jsonb_get(log, "transactionIndex"), field);
	if (q > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" is out of range", field)));
	e->tx_index = (int32) q;

	strlcpy(field + prefix, "logIndex", sizeof(field) - prefix);
	q = get_quantity(li_jsonb_get(log, "logIndex"), field);
	if (q > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" is out of range", field)));
	e->event_index = (int32) q;

	strlcpy(field + prefix, "transactionHash", sizeof(field) - prefix);
	get_fixed(log, "transactionHash", field, e->tx_hash, LI_HASH_LEN, false, &e->has_tx_hash);

	strlcpy(field + prefix, "address", sizeof(field) - prefix);
	get_fixed(log, "address", field, e->address, LI_ADDRESS_LEN, true, NULL);

	strlcpy(field + prefix, "topics", sizeof(field) - prefix);
	v = li_jsonb_get(log, "topics");
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be an array", field)));
	{
		JsonbContainer *tc = v->val.binary.data;
		int			nt = JsonContainerSize(tc);

		if (nt > LI_MAX_TOPICS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"%s\" has %d topics, at most %d are allowed",
							field, nt, LI_MAX_TOPICS)));
		e->ntopics = nt;
		for (int t = 0; t < nt; t++)
		{
			JsonbValue *tv = getIthJsonbValueFromContainer(tc, t);

			memcpy(field + prefix, "topics[0]", sizeof("topics[0]"));
			field[prefix + 7] = (char) ('0' + t);	/* t < LI_MAX_TOPICS */
			if (tv == NULL || tv->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid ledger document: field \"%s\" must be a 0x-hex string", field)));
			li_hex_to_bytes(field, tv->val.string.val, tv->val.string.len,
							e->topics[t], LI_HASH_LEN);
		}
	}

	strlcpy(field + prefix, "data", sizeof(field) - prefix);
	v = li_jsonb_get(log, "data");
	if (v == NULL || v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"%s\" must be a 0x-hex string", field)));
	e->data = li_hex_to_bytea(field, v->val.string.val, v->val.string.len);
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

	memset(out, 0, sizeof(LiLedger));
	if (doc == NULL || !JsonContainerIsObject(doc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: not a JSON object")));

	out->number = get_quantity(li_jsonb_get(doc, "number"), "number");
	get_fixed(doc, "hash", "hash", out->hash, LI_HASH_LEN, true, NULL);
	get_fixed(doc, "parentHash", "parentHash", out->parent_hash, LI_HASH_LEN, false, &out->has_parent);

	v = li_jsonb_get(doc, "timestamp");
	if (v != NULL && v->type != jbvNull)
	{
		int64		secs = get_quantity(v, "timestamp");

		if (secs > (int64) 1 << 40)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"timestamp\" is out of range")));
		out->time = (TimestampTz) (secs - ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) * USECS_PER_SEC;
	}
	else
		out->time = DT_NOBEGIN;

	v = li_jsonb_get(doc, "logs");
	if (v == NULL || v->type == jbvNull)
		return;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger document: field \"logs\" must be an array")));
	{
		JsonbContainer *lc = v->val.binary.data;
		int			n = JsonContainerSize(lc);

		/*
		 * Grown as logs are read, not sized from the array: a short document
		 * can hold millions of tiny non-log elements, and each LiEvent is
		 * far larger than such an element (found by test/fuzz/ledger_fuzz).
		 */
		int			cap = Min(n, 256);

		out->nevents = n;
		out->events = n > 0 ? palloc0(sizeof(LiEvent) * cap) : NULL;
		for (int i = 0; i < n; i++)
		{
			JsonbValue *lv = getIthJsonbValueFromContainer(lc, i);

			if (lv == NULL || lv->type != jbvBinary)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid ledger document: \"logs[%d]\" must be an object", i)));
			if (i == cap)
			{
				int			newcap = (int) Min((int64) n, (int64) cap * 2);

				out->events = repalloc(out->events, sizeof(LiEvent) * newcap);
				memset(out->events + cap, 0, sizeof(LiEvent) * (newcap - cap));
				cap = newcap;
			}
			parse_log(lv->val.binary.data, i, out, &out->events[i]);
		}
		if (n > 1)
		{
			qsort(out->events, n, sizeof(LiEvent), event_cmp);
			/* logIndex is block-wide: unique, increasing with the tx index */
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
	}
}

/*
 * ledger_ingest.doc_ledger(doc jsonb) RETURNS bigint
 *
 * The "number" of a ledger document, or NULL when it is missing or not a
 * valid quantity.  Never raises: it backs the inbox's generated column, so
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
	v = li_jsonb_get(&doc->root, "number");
	if (!parse_quantity(v, &n, &why))
		PG_RETURN_NULL();
	PG_RETURN_INT64(n);
}
