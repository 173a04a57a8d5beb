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

#include "ledger.h"
#include "options.h"

PG_FUNCTION_INFO_V1(ledger_ingest_validate_options);

typedef enum OptKind
{
	OPT_INT,					/* a JSON integer in [min, max], into an int */
	OPT_INT64,					/* the same, into an int64 */
	OPT_CHOICE,					/* one of choices, stored as "store" says */
	OPT_FILTER,					/* an eth_getLogs filter, kept as jsonb */
	OPT_URLS					/* "url" or "urls" */
} OptKind;

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
	bool		rpc_only;
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

#define INT_OPT(key, rpc, field, min, max) \
	{key, OPT_INT, rpc, offsetof(LiOptions, field), min, max, NULL, STORE_INDEX}
#define INT64_OPT(key, rpc, field, min, max) \
	{key, OPT_INT64, rpc, offsetof(LiOptions, field), min, max, NULL, STORE_INDEX}
#define CHOICE_OPT(key, rpc, field, choices, store) \
	{key, OPT_CHOICE, rpc, offsetof(LiOptions, field), 0, 0, choices, store}

static const OptDef opt_defs[] = {
	CHOICE_OPT("commit", false, commit, commit_choices, STORE_INDEX),
	INT_OPT("batch_max_events", false, batch_max_events, 1, 10000000),
	INT64_OPT("batch_max_bytes", false, batch_max_bytes, 65536, INT64CONST(1) << 40),
	INT_OPT("batch_max_ledgers", false, batch_max_ledgers, 1, 1000000),
	INT_OPT("batch_max_ms", false, batch_max_ms, 0, 3600000),
	INT_OPT("poll_ms", false, poll_ms, 10, 3600000),
	INT_OPT("max_retries", false, max_retries, 0, 1000000),
	{"url", OPT_URLS, true, offsetof(LiOptions, urls), 0, 0, NULL, STORE_INDEX},
	{"urls", OPT_URLS, true, offsetof(LiOptions, urls), 0, 0, NULL, STORE_INDEX},
	{"addresses", OPT_FILTER, true, offsetof(LiOptions, addresses), 0, 0, NULL, STORE_INDEX},
	{"topics", OPT_FILTER, true, offsetof(LiOptions, topics), 0, 0, NULL, STORE_INDEX},
	INT64_OPT("from_block", true, from_block, 0, PG_INT64_MAX / 2),
	INT64_OPT("to_block", true, to_block, 0, PG_INT64_MAX / 2),
	INT_OPT("confirmations", true, confirmations, 0, 100000),
	INT_OPT("block_range", true, block_range, 1, 1000000),
	INT_OPT("timeout_ms", true, timeout_ms, 100, 600000),
	INT_OPT("max_requests_per_second", true, max_requests_per_second, 0, 100000),
	INT64_OPT("max_response_bytes", true, max_response_bytes, 1024, LI_RPC_MAX_RESPONSE),
	INT_OPT("max_redirects", true, max_redirects, 0, 20),
	INT_OPT("rpc_batch_size", true, rpc_batch_size, 1, 1000),
	INT_OPT("max_concurrent_requests", true, max_concurrent_requests, 1, LI_RPC_MAX_CONCURRENT),
	INT_OPT("fetch_ahead_ledgers", true, fetch_ahead_ledgers, 0, 100000000),
	INT64_OPT("fetch_ahead_bytes", true, fetch_ahead_bytes, 1024 * 1024, INT64CONST(1) << 30),
	INT_OPT("reorg_window", false, reorg_window, 0, 100000),
	CHOICE_OPT("finality", true, finality, finality_choices, STORE_STRING),
	CHOICE_OPT("on_decode_error", false, decode_error_fails, decode_error_choices, STORE_FLAG),
	CHOICE_OPT("late_ledgers", false, skip_late_ledgers, late_ledger_choices, STORE_FLAG),
	CHOICE_OPT("chain", false, stellar, chain_choices, STORE_FLAG),
};

static const OptDef *
find_opt(const char *key)
{
	for (size_t i = 0; i < lengthof(opt_defs); i++)
		if (strcmp(opt_defs[i].key, key) == 0)
			return &opt_defs[i];
	return NULL;
}

static void
set_defaults(LiOptions *o, bool is_rpc)
{
	memset(o, 0, sizeof(LiOptions));
	o->is_rpc = is_rpc;
	o->commit = LI_COMMIT_BATCH;
	o->batch_max_events = 10000;
	o->batch_max_bytes = 64 * 1024 * 1024;
	o->batch_max_ledgers = 1000;
	o->batch_max_ms = 1000;
	o->poll_ms = is_rpc ? 1000 : 200;
	o->max_retries = 5;
	o->urls = NULL;
	o->nurls = 0;
	o->from_block = 0;
	o->to_block = -1;
	o->confirmations = 0;
	o->block_range = 1000;
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
	o->stellar = false;
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
 * li_parse_options -- validate "options" for "source" ('inbox' or
 * 'evm_rpc') and fill *out, defaults first.  Errors name the key.
 */
void
li_parse_options(const char *source, Jsonb *options, LiOptions *out)
{
	bool		is_rpc;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (strcmp(source, "evm_rpc") == 0)
		is_rpc = true;
	else if (strcmp(source, "inbox") == 0)
		is_rpc = false;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid source \"%s\"", source),
				 errhint("source must be 'inbox' or 'evm_rpc'.")));
	set_defaults(out, is_rpc);

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
		d = find_opt(key);
		if (d == NULL || (d->rpc_only && !is_rpc))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\" for source \"%s\"", key, source)));
		set_option(d, key, &val, out);
	}
	if (is_rpc && out->stellar)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"chain\" is \"stellar\": source \"evm_rpc\" reads only EVM ledgers")));
	if (is_rpc && out->urls == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"url\" or \"urls\" is required for source \"evm_rpc\"")));
	if (is_rpc && out->to_block >= 0 && out->to_block < out->from_block)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"to_block\" (" INT64_FORMAT ") is below \"from_block\" (" INT64_FORMAT ")",
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
 * cleared, then each URL, the address and topic filters (jsonb, -1 when
 * absent) and finality, each after its length.
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
	copy.finality = NULL;
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
	out->finality = pnstrdup(v, len);
}
