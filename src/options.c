/*-------------------------------------------------------------------------
 *
 * options.c
 *	  Pipeline options: validation (create_pipeline) and parsing (worker).
 *
 * One parser serves both, so that what create_pipeline accepts is exactly
 * what the worker runs with.  Unknown keys and wrong value types are
 * rejected with an error that names the key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include <ctype.h>

#include "common/base64.h"

#include "ledger.h"
#include "options.h"
#include "scval_core.h"

PG_FUNCTION_INFO_V1(ledger_ingest_validate_options);

typedef enum OptKind
{
	OPT_INT,					/* a JSON integer in [min, max], into an int */
	OPT_INT64,					/* the same, into an int64 */
	OPT_CHOICE,					/* one of choices, stored as "store" says */
	OPT_FILTER,					/* an eth_getLogs filter, kept as jsonb */
	OPT_URLS,					/* "url" or "urls" */
	OPT_STRING,					/* a non-empty JSON string of at most max bytes */
	OPT_BOOL,					/* true or false, into a bool */
	OPT_CONTRACT_IDS,			/* getEvents contractIds: C strkeys, kept as jsonb */
	OPT_STELLAR_TOPICS			/* getEvents topic filters, kept as jsonb */
} OptKind;

/* the sources an option applies to */
#define SRC_INBOX 0x1
#define SRC_EVM 0x2
#define SRC_STELLAR 0x4
#define SRC_ALL (SRC_INBOX | SRC_EVM | SRC_STELLAR)
#define SRC_RPC (SRC_EVM | SRC_STELLAR)

/* how an OPT_CHOICE option is stored */
typedef enum OptStore
{
	STORE_INDEX,				/* the choice's index, into an int or enum */
	STORE_FLAG,					/* whether it is the second choice, into a bool */
	STORE_STRING				/* the choice itself, into a char * */
} OptStore;

typedef struct OptDef
{
	const char *key;
	OptKind		kind;
	int			sources;		/* SRC_* of the sources that take it */
	size_t		offset;			/* the LiOptions field it sets */
	int64		min;			/* OPT_INT, OPT_INT64 */
	int64		max;
	const char *const *choices; /* OPT_CHOICE: NULL-terminated */
	OptStore	store;
} OptDef;

static const char *const commit_choices[] = {"event", "ledger", "batch", NULL};	/* LiCommitMode */
static const char *const finality_choices[] = {"latest", "safe", "finalized", NULL};
static const char *const decode_error_choices[] = {"skip", "fail", NULL};
static const char *const late_ledger_choices[] = {"fail", "skip", NULL};
static const char *const chain_choices[] = {"evm", "stellar", NULL};
static const char *const event_type_choices[] = {"contract", "system", "diagnostic", NULL};

#define INT_OPT(key, src, field, min, max) \
	{key, OPT_INT, src, offsetof(LiOptions, field), min, max, NULL, STORE_INDEX}
#define INT64_OPT(key, src, field, min, max) \
	{key, OPT_INT64, src, offsetof(LiOptions, field), min, max, NULL, STORE_INDEX}
#define CHOICE_OPT(key, src, field, choices, store) \
	{key, OPT_CHOICE, src, offsetof(LiOptions, field), 0, 0, choices, store}
#define KIND_OPT(key, kind, src, field, max) \
	{key, kind, src, offsetof(LiOptions, field), 0, max, NULL, STORE_INDEX}

/*
 * A key may appear once per source: stellar_rpc's "topics" are getEvents
 * topic filters, evm_rpc's eth_getLogs ones; stellar_rpc's from_ledger,
 * to_ledger and ledger_range set the fields evm_rpc's from_block, to_block
 * and block_range set.
 */

static const OptDef opt_defs[] = {
	CHOICE_OPT("commit", SRC_ALL, commit, commit_choices, STORE_INDEX),
	INT_OPT("batch_max_events", SRC_ALL, batch_max_events, 1, 10000000),
	INT64_OPT("batch_max_bytes", SRC_INBOX | SRC_EVM, batch_max_bytes, 65536, INT64CONST(1) << 40),
	INT_OPT("batch_max_ledgers", SRC_ALL, batch_max_ledgers, 1, 1000000),
	INT_OPT("batch_max_ms", SRC_ALL, batch_max_ms, 0, 3600000),
	INT_OPT("poll_ms", SRC_ALL, poll_ms, 10, 3600000),
	INT_OPT("max_retries", SRC_ALL, max_retries, 0, 1000000),
	KIND_OPT("url", OPT_URLS, SRC_RPC, urls, 0),
	KIND_OPT("urls", OPT_URLS, SRC_RPC, urls, 0),
	KIND_OPT("addresses", OPT_FILTER, SRC_EVM, addresses, 0),
	KIND_OPT("topics", OPT_FILTER, SRC_EVM, topics, 0),
	INT64_OPT("from_block", SRC_EVM, from_block, 0, PG_INT64_MAX / 2),
	INT64_OPT("to_block", SRC_EVM, to_block, 0, PG_INT64_MAX / 2),
	INT_OPT("confirmations", SRC_EVM, confirmations, 0, 100000),
	INT_OPT("block_range", SRC_EVM, block_range, 1, 1000000),
	INT_OPT("timeout_ms", SRC_RPC, timeout_ms, 100, 600000),
	INT_OPT("max_requests_per_second", SRC_RPC, max_requests_per_second, 0, 100000),
	INT64_OPT("max_response_bytes", SRC_RPC, max_response_bytes, 1024, LI_RPC_MAX_RESPONSE),
	INT_OPT("max_redirects", SRC_RPC, max_redirects, 0, 20),
	INT_OPT("rpc_batch_size", SRC_RPC, rpc_batch_size, 1, 1000),
	INT_OPT("max_concurrent_requests", SRC_EVM, max_concurrent_requests, 1, LI_RPC_MAX_CONCURRENT),
	INT_OPT("fetch_ahead_ledgers", SRC_EVM, fetch_ahead_ledgers, 0, 100000000),
	INT64_OPT("fetch_ahead_bytes", SRC_EVM, fetch_ahead_bytes, 1024 * 1024, INT64CONST(1) << 30),
	INT_OPT("reorg_window", SRC_INBOX | SRC_EVM, reorg_window, 0, 100000),
	CHOICE_OPT("finality", SRC_EVM, finality, finality_choices, STORE_STRING),
	CHOICE_OPT("on_decode_error", SRC_ALL, decode_error_fails, decode_error_choices, STORE_FLAG),
	CHOICE_OPT("late_ledgers", SRC_INBOX | SRC_EVM, skip_late_ledgers, late_ledger_choices, STORE_FLAG),
	CHOICE_OPT("chain", SRC_ALL, stellar, chain_choices, STORE_FLAG),
	KIND_OPT("transactions", OPT_BOOL, SRC_EVM, transactions, 0),
	KIND_OPT("receipts", OPT_BOOL, SRC_EVM, receipts, 0),
	/* stellar_rpc */
	KIND_OPT("network_passphrase", OPT_STRING, SRC_STELLAR, network_passphrase, 1024),
	KIND_OPT("contract_ids", OPT_CONTRACT_IDS, SRC_STELLAR, contract_ids, 0),
	KIND_OPT("topics", OPT_STELLAR_TOPICS, SRC_STELLAR, topics, 0),
	CHOICE_OPT("type", SRC_STELLAR, event_type, event_type_choices, STORE_STRING),
	INT64_OPT("from_ledger", SRC_STELLAR, from_block, 1, PG_UINT32_MAX),
	INT64_OPT("to_ledger", SRC_STELLAR, to_block, 1, PG_UINT32_MAX),
	INT_OPT("ledger_range", SRC_STELLAR, block_range, 1, LI_STELLAR_SCAN_LIMIT),
};

/* the definition of option key for a source of mask src, or NULL */
static const OptDef *
find_opt(const char *key, int src)
{
	for (size_t i = 0; i < lengthof(opt_defs); i++)
		if (strcmp(opt_defs[i].key, key) == 0 && (opt_defs[i].sources & src) != 0)
			return &opt_defs[i];
	return NULL;
}

static void
set_defaults(LiOptions *o, bool is_rpc, bool is_stellar_rpc)
{
	memset(o, 0, sizeof(LiOptions));
	o->is_rpc = is_rpc;
	o->is_stellar_rpc = is_stellar_rpc;
	o->commit = LI_COMMIT_BATCH;
	o->batch_max_events = 10000;
	o->batch_max_bytes = 64 * 1024 * 1024;
	o->batch_max_ledgers = 1000;
	o->batch_max_ms = 1000;
	o->poll_ms = is_rpc || is_stellar_rpc ? 1000 : 200;
	o->max_retries = 5;
	o->urls = NULL;
	o->nurls = 0;
	o->from_block = 0;
	o->to_block = -1;
	o->confirmations = 0;
	o->block_range = is_stellar_rpc ? LI_STELLAR_SCAN_LIMIT : 1000;
	o->timeout_ms = 30000;
	o->max_requests_per_second = 0;
	o->max_response_bytes = LI_RPC_MAX_RESPONSE;
	o->max_redirects = 3;
	o->rpc_batch_size = 100;
	o->max_concurrent_requests = 4;
	o->fetch_ahead_ledgers = 10000;
	o->fetch_ahead_bytes = 16 * 1024 * 1024;
	o->reorg_window = 128;
	o->finality = "latest";
	o->decode_error_fails = false;
	o->skip_late_ledgers = false;
	o->transactions = false;
	o->receipts = false;
	o->stellar = is_stellar_rpc;
	o->network_passphrase = NULL;
	o->contract_ids = NULL;
	o->event_type = NULL;
}

/*
 * The index of string option "key"'s value v in choices (NULL-terminated),
 * or an error listing the choices.
 */
static int
opt_choice(const char *key, const char *v, const char *const *choices)
{
	StringInfoData list;

	for (int i = 0; choices[i] != NULL; i++)
		if (strcmp(v, choices[i]) == 0)
			return i;
	initStringInfo(&list);
	for (int i = 0; choices[i] != NULL; i++)
		appendStringInfo(&list, "%s\"%s\"", i == 0 ? "" : choices[i + 1] == NULL ? " or " : ", ",
						 choices[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be %s, got \"%s\"", key, list.data, v)));
	return -1;					/* keep compiler quiet */
}

static int64
opt_int(const char *key, JsonbValue *v, const OptDef *d)
{
	int64		r;

	if (v->type != jbvNumeric || !li_numeric_to_int64(v->val.numeric, &r))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an integer", key)));
	if (r < d->min || r > d->max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be between " INT64_FORMAT " and " INT64_FORMAT ", got " INT64_FORMAT,
						key, d->min, d->max, r)));
	return r;
}

/* validate a 20-byte address or 32-byte topic given as a JSON string */
static void
check_hex(const char *key, JsonbValue *v, int nbytes)
{
	bool		ok = v->type == jbvString && v->val.string.len == 2 + 2 * nbytes &&
		v->val.string.val[0] == '0' &&
		(v->val.string.val[1] == 'x' || v->val.string.val[1] == 'X');

	for (int i = 2; ok && i < v->val.string.len; i++)
		ok = isxdigit((unsigned char) v->val.string.val[i]);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must contain 0x-hex strings of %d bytes", key, nbytes)));
}

/*
 * addresses: ["0x<20 bytes>", ...] (or a single string);
 * topics: up to 4 positions, each null, "0x<32 bytes>" or an array of those
 * (the eth_getLogs topic filter).
 */
static void
check_array(const char *key, JsonbValue *v)
{
	bool		is_topics = strcmp(key, "topics") == 0;
	JsonbContainer *c;
	int			n;

	if (!is_topics && v->type == jbvString)
	{
		check_hex(key, v, LI_ADDRESS_LEN);
		return;
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an array", key)));
	c = v->val.binary.data;
	n = JsonContainerSize(c);
	if (is_topics && n > LI_MAX_TOPICS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"topics\" has %d positions, at most %d are allowed", n, LI_MAX_TOPICS)));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(c, i);

		if (!is_topics)
			check_hex(key, e, LI_ADDRESS_LEN);
		else if (e->type == jbvNull)
			continue;
		else if (e->type == jbvBinary && JsonContainerIsArray(e->val.binary.data))
		{
			JsonbContainer *alt = e->val.binary.data;

			for (uint32 j = 0; j < JsonContainerSize(alt); j++)
				check_hex(key, getIthJsonbValueFromContainer(alt, j), LI_HASH_LEN);
		}
		else
			check_hex(key, e, LI_HASH_LEN);
	}
}

static void
stellar_filter_error(const char *key, const char *fmt,...) pg_attribute_printf(2, 3) pg_attribute_noreturn();

/* raises "option \"key\" ..." */
static void
stellar_filter_error(const char *key, const char *fmt,...)
{
	char		msg[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" %s", key, msg)));
	pg_unreachable();
}

/* the elements of v, which must be a JSON array of min..max strings */
static JsonbContainer *
string_array(const char *key, JsonbValue *v, int min, int max, const char *what)
{
	JsonbContainer *c;
	int			n;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		stellar_filter_error(key, "must be an array of %s", what);
	c = v->val.binary.data;
	n = JsonContainerSize(c);
	if (n < min || n > max)
		stellar_filter_error(key, "must hold %d to %d %s, got %d", min, max, what, n);
	for (int i = 0; i < n; i++)
		if (getIthJsonbValueFromContainer(c, i)->type != jbvString)
			stellar_filter_error(key, "must hold %s (element %d is not a string)", what, i + 1);
	return c;
}

/*
 * contract_ids: 1 to LI_STELLAR_MAX_CONTRACT_IDS contract strkeys
 * ("C..."), getEvents' contractIds (sent as filters of at most 5 each).
 */
static void
check_contract_ids(const char *key, JsonbValue *v)
{
	JsonbContainer *c = string_array(key, v, 1, LI_STELLAR_MAX_CONTRACT_IDS, "contract strkeys");

	for (uint32 i = 0; i < JsonContainerSize(c); i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(c, i);
		char		kind;
		unsigned char payload[LI_STRKEY_MAX_PAYLOAD];
		size_t		plen;
		LiAbiError	err;

		if (li_strkey_decode(e->val.string.val, e->val.string.len, &kind, payload, &plen,
							 &err) != LI_ABI_OK)
			stellar_filter_error(key, "element %u is not a strkey: %s", i + 1, err.message);
		if (kind != 'C')
			stellar_filter_error(key, "element %u is a '%c' strkey, not a contract id ('C')",
								 i + 1, kind);
	}
}

/*
 * topics (stellar_rpc): 1 to 5 topic filters (getEvents' "topics" of one
 * filter: an event matches when any does), each 1 to 4 segments: "*" (any
 * one topic), "**" (any topics after, last only) or the base64 XDR of one
 * ScVal (that topic).
 */
static void
check_stellar_topics(const char *key, JsonbValue *v)
{
	JsonbContainer *c;
	int			n;

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		stellar_filter_error(key, "must be an array of topic filters (arrays of segments)");
	c = v->val.binary.data;
	n = JsonContainerSize(c);
	if (n < 1 || n > LI_STELLAR_MAX_TOPIC_FILTERS)
		stellar_filter_error(key, "must hold 1 to %d topic filters, got %d",
							 LI_STELLAR_MAX_TOPIC_FILTERS, n);
	for (int i = 0; i < n; i++)
	{
		JsonbContainer *seg = string_array(key, getIthJsonbValueFromContainer(c, i), 1,
										   LI_MAX_TOPICS, "segments per topic filter");

		for (uint32 k = 0; k < JsonContainerSize(seg); k++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(seg, k);
			const char *t = e->val.string.val;
			int			len = e->val.string.len;
			static LiAbiBuf out = {NULL, 0, 0, 0};
			LiAbiError	err;
			char	   *xdr;
			int			xlen;

			if (len == 1 && t[0] == '*')
				continue;
			if (len == 2 && t[0] == '*' && t[1] == '*')
			{
				if (k != JsonContainerSize(seg) - 1)
					stellar_filter_error(key, "topic filter %d: \"**\" is allowed only as the last segment", i + 1);
				continue;
			}
			xdr = palloc(pg_b64_dec_len(len) + 1);
			xlen = pg_b64_decode(t, len, xdr, pg_b64_dec_len(len));
			if (xlen < 0)
				stellar_filter_error(key, "topic filter %d, segment %u: must be \"*\", \"**\" or the base64 XDR of an ScVal", i + 1, k + 1);
			if (li_scval_core_decode((const unsigned char *) xdr, xlen, LI_SCVAL_JSON, &out, &err) != LI_ABI_OK)
				stellar_filter_error(key, "topic filter %d, segment %u: is not one ScVal: %s", i + 1, k + 1, err.message);
			pfree(xdr);
		}
	}
}

/*
 * url: "http(s)://..."; urls: ["http(s)://...", ...] (1 to LI_MAX_URLS
 * endpoints of the same chain, tried in order, failing over on transport
 * errors).  Only http and https are accepted; a URL is never echoed back in
 * an error, since it may carry credentials.
 */
static void
parse_urls(const char *key, JsonbValue *v, LiOptions *out)
{
	JsonbValue *elems;
	int			n;

	if (strcmp(key, "url") == 0)
	{
		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"url\" must be a string")));
		elems = v;
		n = 1;
	}
	else
	{
		if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"urls\" must be an array of strings")));
		n = JsonContainerSize(v->val.binary.data);
		if (n < 1 || n > LI_MAX_URLS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"urls\" must hold 1 to %d URLs, got %d", LI_MAX_URLS, n)));
		elems = palloc(sizeof(JsonbValue) * n);
		for (int i = 0; i < n; i++)
			elems[i] = *getIthJsonbValueFromContainer(v->val.binary.data, i);
	}
	out->urls = palloc(sizeof(char *) * n);
	out->nurls = n;
	for (int i = 0; i < n; i++)
	{
		char	   *u;

		if (elems[i].type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must hold strings (element %d is not)", key, i + 1)));
		u = pnstrdup(elems[i].val.string.val, elems[i].val.string.len);
		if (pg_strncasecmp(u, "http://", 7) != 0 && pg_strncasecmp(u, "https://", 8) != 0)
		{
			if (strcmp(key, "url") == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"url\" must be an http:// or https:// URL")));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"urls\" must hold http:// or https:// URLs (element %d is not)", i + 1)));
		}
		out->urls[i] = u;
	}
}

/* Set option d (named key) of *out from its JSON value val. */
static void
set_option(const OptDef *d, const char *key, JsonbValue *val, LiOptions *out)
{
	char	   *field = (char *) out + d->offset;
	int			choice;

	StaticAssertStmt(sizeof(LiCommitMode) == sizeof(int), "STORE_INDEX writes an int");
	switch (d->kind)
	{
		case OPT_INT:
			*(int *) field = (int) opt_int(key, val, d);
			break;
		case OPT_INT64:
			*(int64 *) field = opt_int(key, val, d);
			break;
		case OPT_CHOICE:
			if (val->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" must be a string", key)));
			choice = opt_choice(key, pnstrdup(val->val.string.val, val->val.string.len),
								d->choices);
			if (d->store == STORE_INDEX)
				*(int *) field = choice;
			else if (d->store == STORE_FLAG)
				*(bool *) field = choice == 1;
			else
				*(char **) field = pstrdup(d->choices[choice]);
			break;
		case OPT_FILTER:
			check_array(key, val);
			*(Jsonb **) field = JsonbValueToJsonb(val);
			break;
		case OPT_CONTRACT_IDS:
			check_contract_ids(key, val);
			*(Jsonb **) field = JsonbValueToJsonb(val);
			break;
		case OPT_STELLAR_TOPICS:
			check_stellar_topics(key, val);
			*(Jsonb **) field = JsonbValueToJsonb(val);
			break;
		case OPT_BOOL:
			if (val->type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" must be true or false", key)));
			*(bool *) field = val->val.boolean;
			break;
		case OPT_STRING:
			if (val->type != jbvString || val->val.string.len < 1 || val->val.string.len > d->max)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" must be a non-empty string of at most " INT64_FORMAT " bytes",
								key, d->max)));
			*(char **) field = pnstrdup(val->val.string.val, val->val.string.len);
			break;
		case OPT_URLS:
			if (out->urls != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("options \"url\" and \"urls\" cannot both be given")));
			parse_urls(key, val, out);
			break;
	}
}

/*
 * li_parse_options -- validate "options" for "source" ('inbox', 'evm_rpc'
 * or 'stellar_rpc') and fill *out, defaults first.  Errors name the key.
 */
void
li_parse_options(const char *source, Jsonb *options, LiOptions *out)
{
	int			src;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (strcmp(source, "evm_rpc") == 0)
		src = SRC_EVM;
	else if (strcmp(source, "stellar_rpc") == 0)
		src = SRC_STELLAR;
	else if (strcmp(source, "inbox") == 0)
		src = SRC_INBOX;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid source \"%s\"", source),
				 errhint("source must be 'inbox', 'evm_rpc' or 'stellar_rpc'.")));
	set_defaults(out, src == SRC_EVM, src == SRC_STELLAR);

	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline options must be a JSON object")));

	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		const OptDef *d;
		JsonbValue	val;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &val, true);
		Assert(tok == WJB_VALUE);
		d = find_opt(key, src);
		if (d == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\" for source \"%s\"", key, source)));
		set_option(d, key, &val, out);
	}
	/* a receipt completes a transaction: the receipts need the transactions */
	if (out->receipts)
		out->transactions = true;
	if (src == SRC_EVM && out->stellar)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"chain\" is \"stellar\": source \"evm_rpc\" reads only EVM ledgers")));
	if (src == SRC_STELLAR && !out->stellar)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"chain\" is \"evm\": source \"stellar_rpc\" reads only Stellar ledgers")));
	if (src != SRC_INBOX && out->urls == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"url\" or \"urls\" is required for source \"%s\"", source)));
	if (src == SRC_STELLAR && out->network_passphrase == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"network_passphrase\" is required for source \"stellar_rpc\""),
				 errhint("Pubnet's is \"Public Global Stellar Network ; September 2015\"; getNetwork tells a server's.")));
	if (src == SRC_STELLAR && out->from_block == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"from_ledger\" is required for source \"stellar_rpc\""),
				 errhint("A Stellar RPC server holds only its retention window: getHealth's oldestLedger is the oldest it has; older ledgers can be backfilled through an inbox pipeline.")));
	if (src == SRC_EVM && out->to_block >= 0 && out->to_block < out->from_block)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"to_block\" (" INT64_FORMAT ") is below \"from_block\" (" INT64_FORMAT ")",
						out->to_block, out->from_block)));
	if (src == SRC_STELLAR && out->to_block >= 0 && out->to_block < out->from_block)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"to_ledger\" (" INT64_FORMAT ") is below \"from_ledger\" (" INT64_FORMAT ")",
						out->to_block, out->from_block)));
}

/*
 * ledger_ingest.validate_options(source text, options jsonb) RETURNS jsonb
 *
 * Validates options for a source and returns them unchanged (defaults are
 * applied by the worker, so that later versions can change them).  Raises
 * invalid_parameter_value naming the key on an unknown key or a wrong type.
 */
Datum
ledger_ingest_validate_options(PG_FUNCTION_ARGS)
{
	char	   *source = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *options = PG_GETARG_JSONB_P(1);
	LiOptions	o;

	li_parse_options(source, options, &o);
	PG_RETURN_JSONB_P(options);
}

/* append len bytes of p to buf, after their length */
static void
flat_append(StringInfo buf, const void *p, int len)
{
	appendBinaryStringInfo(buf, (const char *) &len, sizeof(int));
	if (len > 0)
		appendBinaryStringInfo(buf, p, len);
}

static const char *
flat_read(const char **p, int *len)
{
	const char *r;

	memcpy(len, *p, sizeof(int));
	r = *p + sizeof(int);
	*p = r + Max(*len, 0);
	return *len >= 0 ? r : NULL;
}

/*
 * li_options_flatten -- o as one buffer: the struct with its pointers
 * cleared, then each URL, the address and topic filters and the
 * transaction handlers' addresses (jsonb, -1 when absent) and finality,
 * each after its length.
 */
char *
li_options_flatten(const LiOptions *o, Size *len)
{
	StringInfoData buf;
	LiOptions	copy;

	memcpy(&copy, o, sizeof(LiOptions));
	copy.urls = NULL;
	copy.addresses = NULL;
	copy.topics = NULL;
	copy.tx_addresses = NULL;
	copy.finality = NULL;
	copy.network_passphrase = NULL;	/* stellar_rpc has no fetcher */
	copy.contract_ids = NULL;
	copy.event_type = NULL;
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (const char *) &copy, sizeof(LiOptions));
	for (int i = 0; i < o->nurls; i++)
		flat_append(&buf, o->urls[i], strlen(o->urls[i]));
	if (o->addresses)
		flat_append(&buf, o->addresses, VARSIZE(o->addresses));
	else
		flat_append(&buf, NULL, -1);
	if (o->topics)
		flat_append(&buf, o->topics, VARSIZE(o->topics));
	else
		flat_append(&buf, NULL, -1);
	if (o->tx_addresses)
		flat_append(&buf, o->tx_addresses, VARSIZE(o->tx_addresses));
	else
		flat_append(&buf, NULL, -1);
	flat_append(&buf, o->finality, strlen(o->finality));
	*len = buf.len;
	return buf.data;
}

/* li_options_unflatten -- the options li_options_flatten wrote to buf */
void
li_options_unflatten(const char *buf, LiOptions *out)
{
	const char *p = buf + sizeof(LiOptions);
	const char *v;
	int			len;

	memcpy(out, buf, sizeof(LiOptions));
	out->urls = palloc(sizeof(char *) * Max(out->nurls, 1));
	for (int i = 0; i < out->nurls; i++)
	{
		v = flat_read(&p, &len);
		out->urls[i] = pnstrdup(v, len);
	}
	v = flat_read(&p, &len);
	out->addresses = v ? memcpy(palloc(len), v, len) : NULL;
	v = flat_read(&p, &len);
	out->topics = v ? memcpy(palloc(len), v, len) : NULL;
	v = flat_read(&p, &len);
	out->tx_addresses = v ? memcpy(palloc(len), v, len) : NULL;
	v = flat_read(&p, &len);
	out->finality = pnstrdup(v, len);
}
