/*-------------------------------------------------------------------------
 *
 * ledger_stellar.c
 *	  Stellar ledger documents: a getLedgers entry plus that ledger's
 *	  getEvents events, parsed and validated into a LiLedger.
 *
 * A document (stellar-rpc's shapes, xdrFormat base64):
 *
 *	{"sequence": 63092988, "hash": "<64 hex>", "ledgerCloseTime": "1781828486",
 *	 "headerXdr": "<base64 LedgerHeaderHistoryEntry (or LedgerHeader)>",
 *	 "events": [{"type": "contract", "ledger": 63092988,
 *				 "contractId": "C..." or "", "id": "<TOID>-<index>",
 *				 "operationIndex": 0, "transactionIndex": 1,
 *				 "txHash": "<64 hex>", "topic": ["<base64 ScVal>", ...],
 *				 "value": "<base64 ScVal>", ...}, ...]}
 *
 * "metadataXdr", "ledgerClosedAt" and "inSuccessfulContractCall" may be
 * there and are not read.  The header is the truth: its SHA-256 must be
 * "hash", its ledgerSeq "sequence", its closeTime "ledgerCloseTime"; the
 * ledger's time is that close time and its parent hash the header's
 * previousLedgerHash.  Each event's id must be of this ledger, strictly
 * increasing, and agree with transactionIndex and operationIndex; its
 * position is the id's (stellar_core.h); contractId is a C strkey (the
 * event's address, 32 bytes) or "" (none); 0 to 4 topics and a value, each
 * exactly one ScVal (scval_core.h), kept as their XDR.  JSON-form XDR
 * ("topicJson", "valueJson") is refused.  Every error is 22023 and names
 * the field.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "miscadmin.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "ledger.h"
#include "scval_core.h"
#include "stellar_core.h"

static void bad_document(const char *field, const char *fmt,...) pg_attribute_printf(2, 3) pg_attribute_noreturn();

/* raises "invalid Stellar ledger document: field \"f\" ..." */
static void
bad_document(const char *field, const char *fmt,...)
{
	char		msg[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid Stellar ledger document: field \"%s\" %s", field, msg)));
	pg_unreachable();
}

/* a string field's value (not NUL-terminated), or an error */
static const JsonbValue *
string_field(JsonbContainer *c, const char *key, const char *field)
{
	JsonbValue *v = li_jsonb_get(c, key);

	if (v == NULL || v->type != jbvString)
		bad_document(field, "must be a string");
	return v;
}

/* an integer field in [min, max] */
static int64
int_field(JsonbContainer *c, const char *key, const char *field, int64 min, int64 max)
{
	JsonbValue *v = li_jsonb_get(c, key);
	int64		n;

	if (v == NULL || v->type != jbvNumeric || !li_numeric_to_int64(v->val.numeric, &n) ||
		n < min || n > max)
		bad_document(field, "must be an integer from " INT64_FORMAT " to " INT64_FORMAT, min, max);
	return n;
}

/* exactly 2 * outlen hex digits (no "0x", as stellar-rpc writes hashes) */
static void
hex_field(const JsonbValue *v, const char *field, uint8 *out, int outlen)
{
	const char *s = v->val.string.val;

	if (v->val.string.len != 2 * outlen)
		bad_document(field, "must be %d hex digits", 2 * outlen);
	for (int i = 0; i < 2 * outlen; i++)
	{
		char		c = s[i];
		int			d = (c >= '0' && c <= '9') ? c - '0' : ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') ?
			(c | 0x20) - 'a' + 10 : -1;

		if (d < 0)
			bad_document(field, "must be %d hex digits", 2 * outlen);
		if (i % 2 == 0)
			out[i / 2] = (uint8) (d << 4);
		else
			out[i / 2] |= (uint8) d;
	}
}

/* base64 text as a palloc'd bytea */
static bytea *
base64_field(const JsonbValue *v, const char *field)
{
	int			cap = pg_b64_dec_len(v->val.string.len);
	bytea	   *b = palloc(VARHDRSZ + cap);
	int			n = pg_b64_decode(v->val.string.val, v->val.string.len, VARDATA(b), cap);

	if (n < 0)
		bad_document(field, "is not base64");
	SET_VARSIZE(b, VARHDRSZ + n);
	return b;
}

/* the XDR of exactly one ScVal, or an error naming the field */
static void
check_scval(bytea *xdr, const char *field)
{
	static LiAbiBuf out = {NULL, 0, 0, 0};
	LiAbiError	err;

	if (li_scval_core_decode((const unsigned char *) VARDATA(xdr), VARSIZE(xdr) - VARHDRSZ,
							 LI_SCVAL_JSON, &out, &err) != LI_ABI_OK)
		bad_document(field, "is not one ScVal: %s", err.message);
	if (out.cap > 1024 * 1024)
		li_abi_buf_free(&out);
}

/* event i of the document (an object) into *e */
static void
parse_event(JsonbContainer *c, int i, int64 sequence, LiEvent *e, const LiEvent *before)
{
	char		f[64];
	const JsonbValue *v;
	int64		ledger;
	int32		tx;
	int32		ev;
	LiAbiError	err;
	JsonbValue *topics;

#define FIELD(name) (snprintf(f, sizeof(f), "events[%d].%s", i, (name)), f)

	if (li_jsonb_get(c, "topicJson") != NULL || li_jsonb_get(c, "valueJson") != NULL)
		bad_document(FIELD("topicJson"), "is JSON-form XDR: ask getEvents for xdrFormat \"base64\"");
	v = string_field(c, "id", FIELD("id"));
	if (li_stellar_event_position(v->val.string.val, v->val.string.len, &ledger, &tx, &ev, &err) < 0)
		bad_document(f, "is not an event id: %s", err.message);
	if (ledger != sequence)
		bad_document(f, "is an event of ledger " INT64_FORMAT ", not of this ledger " INT64_FORMAT,
					 ledger, sequence);
	if (before != NULL &&
		(tx < before->tx_index || (tx == before->tx_index && ev <= before->event_index)))
		bad_document(f, "does not follow the event before it: ids must be strictly increasing");
	e->tx_index = tx;
	e->event_index = ev;
	if (int_field(c, "transactionIndex", FIELD("transactionIndex"), 0, INT32_MAX) != tx)
		bad_document(f, "is not the transaction of its id (%d)", tx);
	if (int_field(c, "operationIndex", FIELD("operationIndex"), 0, INT32_MAX) != (ev >> 19))
		bad_document(f, "is not the operation of its id (%d)", ev >> 19);
	if (li_jsonb_get(c, "ledger") != NULL &&
		int_field(c, "ledger", FIELD("ledger"), 0, PG_INT64_MAX) != sequence)
		bad_document(f, "is not this ledger " INT64_FORMAT, sequence);
	v = string_field(c, "type", FIELD("type"));
	if (!((v->val.string.len == 8 && memcmp(v->val.string.val, "contract", 8) == 0) ||
		  (v->val.string.len == 6 && memcmp(v->val.string.val, "system", 6) == 0) ||
		  (v->val.string.len == 10 && memcmp(v->val.string.val, "diagnostic", 10) == 0)))
		bad_document(f, "must be \"contract\", \"system\" or \"diagnostic\"");
	v = string_field(c, "contractId", FIELD("contractId"));
	if (v->val.string.len > 0)
	{
		unsigned char payload[LI_STRKEY_MAX_PAYLOAD];
		size_t		n;
		char		kind;

		if (li_strkey_decode(v->val.string.val, v->val.string.len, &kind, payload, &n, &err) != LI_ABI_OK)
			bad_document(f, "is not a strkey: %s", err.message);
		if (kind != 'C')
			bad_document(f, "is a %c strkey, not a contract (C)", kind);
		memcpy(e->address, payload, 32);
		e->address_len = 32;
	}
	v = string_field(c, "txHash", FIELD("txHash"));
	hex_field(v, f, e->tx_hash, LI_HASH_LEN);
	e->has_tx_hash = true;
	topics = li_jsonb_get(c, "topic");
	if (topics != NULL)
	{
		JsonbContainer *tc;
		int			nt;

		if (topics->type != jbvBinary || !JsonContainerIsArray(topics->val.binary.data))
			bad_document(FIELD("topic"), "must be an array");
		tc = topics->val.binary.data;
		nt = JsonContainerSize(tc);
		if (nt > LI_MAX_TOPICS)
			bad_document(FIELD("topic"), "has %d topics, at most %d are allowed", nt, LI_MAX_TOPICS);
		for (int t = 0; t < nt; t++)
		{
			JsonbValue *tv = getIthJsonbValueFromContainer(tc, t);
			bytea	   *x;

			snprintf(f, sizeof(f), "events[%d].topic[%d]", i, t);
			if (tv->type != jbvString)
				bad_document(f, "must be a string");
			x = base64_field(tv, f);
			check_scval(x, f);
			if (VARSIZE(x) - VARHDRSZ == LI_HASH_LEN)
				memcpy(e->topics[t], VARDATA(x), LI_HASH_LEN);
			else
				e->var_topics[t] = x;
		}
		e->ntopics = nt;
	}
	v = string_field(c, "value", FIELD("value"));
	e->data = base64_field(v, f);
	check_scval(e->data, f);
#undef FIELD
}

/*
 * The header of document doc into *h: NULL, or what is wrong with it (a
 * headerXdr that is not a ledger header, or whose SHA-256 is not "hash"),
 * with the field to blame in *field.  A missing or mistyped "hash" or
 * "headerXdr", or one that is not hex or base64, raises.
 */
static char *
header_error(JsonbContainer *doc, LiStellarHeader *h, const char **field)
{
	bytea	   *header;
	LiAbiError	err;
	uint8		hash[LI_HASH_LEN];

	hex_field(string_field(doc, "hash", "hash"), "hash", hash, LI_HASH_LEN);
	header = base64_field(string_field(doc, "headerXdr", "headerXdr"), "headerXdr");
	if (li_stellar_parse_header((const unsigned char *) VARDATA(header), VARSIZE(header) - VARHDRSZ,
								h, &err) != LI_ABI_OK)
	{
		*field = "headerXdr";
		return psprintf("is not a ledger header: %s", err.message);
	}
	if (memcmp(h->hash, hash, LI_HASH_LEN) != 0)
	{
		*field = "hash";
		return psprintf("is not the SHA-256 of the header (%s)", li_bytes_to_hex(h->hash, LI_HASH_LEN) + 2);
	}
	return NULL;
}

/*
 * li_stellar_header_error -- NULL when Stellar ledger document (or
 * getLedgers entry) doc has a header whose SHA-256 is its "hash"; else
 * what is wrong, as "field \"f\" ..." (stellar_rpc fails the pipeline on
 * it).  A missing or malformed field raises li_parse_stellar_ledger's
 * error.
 */
char *
li_stellar_header_error(JsonbContainer *doc)
{
	LiStellarHeader h;
	const char *field;
	char	   *why = header_error(doc, &h, &field);

	return why ? psprintf("field \"%s\" %s", field, why) : NULL;
}

/*
 * li_parse_stellar_ledger -- a Stellar ledger document (see the header
 * comment) into *out, validated.
 */
void
li_parse_stellar_ledger(JsonbContainer *doc, LiLedger *out)
{
	const JsonbValue *v;
	LiStellarHeader h;
	const char *field;
	char	   *why;
	JsonbValue *events;
	int64		close_time;

	memset(out, 0, sizeof(LiLedger));
	out->stellar = true;
	out->number = int_field(doc, "sequence", "sequence", 1, PG_UINT32_MAX);
	if ((why = header_error(doc, &h, &field)) != NULL)
		bad_document(field, "%s", why);
	if ((int64) h.sequence != out->number)
		bad_document("sequence", "is not the header's ledgerSeq %u", h.sequence);
	v = string_field(doc, "ledgerCloseTime", "ledgerCloseTime");
	{
		char	   *s = pnstrdup(v->val.string.val, v->val.string.len);
		char	   *end;

		errno = 0;
		close_time = strtoll(s, &end, 10);
		if (*s == '\0' || *end != '\0' || errno != 0 || close_time < 0 || (uint64) close_time != h.close_time)
			bad_document("ledgerCloseTime", "is not the header's closeTime " UINT64_FORMAT,
						 (uint64) h.close_time);
	}
	if (h.close_time > ((uint64) 1 << 40))
		bad_document("headerXdr", "has a closeTime out of range");
	memcpy(out->hash, h.hash, LI_HASH_LEN);
	memcpy(out->parent_hash, h.previous_hash, LI_HASH_LEN);
	out->has_parent = true;
	out->time = (TimestampTz) ((int64) h.close_time -
							   ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) * USECS_PER_SEC;

	events = li_jsonb_get(doc, "events");
	if (events != NULL && events->type != jbvNull)
	{
		JsonbContainer *ec;
		int			n;
		int			cap;
		LiEvent    *ev;

		if (events->type != jbvBinary || !JsonContainerIsArray(events->val.binary.data))
			bad_document("events", "must be an array");
		ec = events->val.binary.data;
		n = JsonContainerSize(ec);
		/* grown as events are read (a short document can claim many) */
		cap = Min(n, 256);
		ev = n > 0 ? palloc0(sizeof(LiEvent) * cap) : NULL;
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(ec, i);
			char		f[32];

			CHECK_FOR_INTERRUPTS();
			if (i == cap)
			{
				int			newcap = (int) Min((int64) n, (int64) cap * 2);

				ev = repalloc(ev, sizeof(LiEvent) * newcap);
				memset(ev + cap, 0, sizeof(LiEvent) * (newcap - cap));
				cap = newcap;
			}
			snprintf(f, sizeof(f), "events[%d]", i);
			if (e->type != jbvBinary || !JsonContainerIsObject(e->val.binary.data))
				bad_document(f, "must be an object");
			parse_event(e->val.binary.data, i, out->number, &ev[i], i > 0 ? &ev[i - 1] : NULL);
		}
		out->nevents = n;
		out->events = n > 0 ? ev : NULL;
	}
}
