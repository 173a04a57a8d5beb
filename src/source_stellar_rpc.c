/*-------------------------------------------------------------------------
 *
 * source_stellar_rpc.c
 *	  The stellar_rpc source: Stellar ledgers and their events from a
 *	  Stellar RPC server (JSON-RPC 2.0 over HTTP(S), rpc_client.c).
 *
 * A fetch runs with no transaction open (the worker fetches in-line: there
 * is no fetcher process for this source):
 *
 * 1. getNetwork, once per process and options: its passphrase must be
 *    network_passphrase, else the pipeline fails (a server of another
 *    network).
 * 2. getHealth: latestLedger (the head) and oldestLedger.  The next ledger
 *    (after the cursor, at least from_ledger) older than oldestLedger fails
 *    the pipeline with a hint to backfill through the inbox; a head more
 *    than LI_STELLAR_RESET_LEDGERS below an applied cursor (a network reset, or a
 *    server of another network with the same passphrase) fails it too; a
 *    head below the next ledger is waited for.
 * 3. getEvents over the window [next, last], last = min(head, next +
 *    ledger_range - 1, to_ledger), with the pipeline's filters (type,
 *    contract_ids in filters of 5, topics), page by page by cursor while
 *    pages are full (a full page ends the window early, at the last whole
 *    ledger with events, once batch_max_events are held).  The page size
 *    starts at stellar-rpc's maximum (10,000) and shrinks to what the
 *    server says ("limit must not exceed N") or halves when a response is
 *    over max_response_bytes; it is kept for the process's life.
 * 4. getLedgers for the window's first and last ledger and for every ledger
 *    with events (contiguous ones in one call, the calls in JSON-RPC
 *    batches of rpc_batch_size).
 * 5. Each ledger becomes a Stellar ledger document (the getLedgers entry
 *    without metadataXdr, plus its events) and goes through the inbox's
 *    parser (ledger_stellar.c, li_parse_stellar_ledger): the same checks.
 *    A header whose SHA-256 is not the ledger's hash, or a ledger whose
 *    previousLedgerHash is not the hash of the stored (or fetched) ledger
 *    before it, fails the pipeline after what came before is applied: the
 *    Stellar network does not reorganize.
 *
 * Anything else that goes wrong (transport, HTTP, JSON-RPC errors, an
 * answer of the wrong shape, an event that fails the document checks) is
 * an ERROR, retried by the worker with backoff.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"

#include "ledger.h"
#include "rpc_client.h"
#include "source.h"

/* the head this far below the cursor is a network reset, not a lagging server */
#define LI_STELLAR_RESET_LEDGERS 1000
/* ledgers asked in one getLedgers call (their metadataXdr comes along) */
#define LEDGERS_PER_CALL 20

/* getEvents page size (stellar-rpc's maximum, shrunk to what the server takes) */
static int	page_limit = LI_STELLAR_SCAN_LIMIT;
/* the network_passphrase getNetwork confirmed, or NULL */
static char *checked_passphrase = NULL;

/* the events of one window, in id order */
typedef struct Window
{
	int64		first;
	int64		last;
	int			nevents;
	int			cap;
	JsonbValue **events;		/* each a jbvBinary object */
	int64	   *ledgers;		/* events[i]'s ledger */
} Window;

/*
 * li_stellar_rpc_init -- the worker's JSON-RPC client (rpc_client.c),
 * configured for pipeline p.
 */
void
li_stellar_rpc_init(LiPipeline *p)
{
	li_rpc_client_init();
	li_rpc_client_configure(&p->opts);
}

/* an integer member of a result object, or an ERROR naming it */
static int64
result_int(JsonbValue *r, const char *method, const char *key)
{
	JsonbValue *v = NULL;
	int64		n;

	if (r->type == jbvBinary && JsonContainerIsObject(r->val.binary.data))
		v = li_jsonb_get(r->val.binary.data, key);
	if (v == NULL || v->type != jbvNumeric || !li_numeric_to_int64(v->val.numeric, &n) || n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("Stellar RPC %s%s: the result has no valid \"%s\"",
						method, li_rpc_endpoint_label(), key)));
	return n;
}

/* a member of a result object that must be an array, or an ERROR */
static JsonbContainer *
result_array(JsonbValue *r, const char *method, const char *key)
{
	JsonbValue *v = NULL;

	if (r->type == jbvBinary && JsonContainerIsObject(r->val.binary.data))
		v = li_jsonb_get(r->val.binary.data, key);
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("Stellar RPC %s%s: the result has no array \"%s\"",
						method, li_rpc_endpoint_label(), key)));
	return v->val.binary.data;
}

/* set the pipeline's failure (the first one wins) */
static void
fail(LiBatch *batch, char *error)
{
	if (batch->fail_error == NULL)
		batch->fail_error = error;
}

/*
 * getNetwork: is the server on the configured network?  Asked once per
 * process and passphrase.
 */
static bool
check_network(LiPipeline *p, LiBatch *batch)
{
	JsonbValue *r;
	JsonbValue *v = NULL;

	if (checked_passphrase != NULL && strcmp(checked_passphrase, p->opts.network_passphrase) == 0)
		return true;
	r = li_rpc_call("getNetwork", "{}");
	if (r->type == jbvBinary && JsonContainerIsObject(r->val.binary.data))
		v = li_jsonb_get(r->val.binary.data, "passphrase");
	if (v == NULL || v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("Stellar RPC getNetwork%s: the result has no string \"passphrase\"",
						li_rpc_endpoint_label())));
	if (v->val.string.len != (int) strlen(p->opts.network_passphrase) ||
		memcmp(v->val.string.val, p->opts.network_passphrase, v->val.string.len) != 0)
	{
		fail(batch, psprintf("the Stellar RPC server%s is on network \"%s\", not the pipeline's network_passphrase \"%s\"",
							 li_rpc_endpoint_label(),
							 pnstrdup(v->val.string.val, Min(v->val.string.len, 200)),
							 p->opts.network_passphrase));
		return false;
	}
	if (checked_passphrase != NULL)
		pfree(checked_passphrase);
	checked_passphrase = MemoryContextStrdup(TopMemoryContext, p->opts.network_passphrase);
	return true;
}

/* the getEvents filters of the pipeline as JSON text: [] for all events */
static char *
events_filters(LiPipeline *p)
{
	StringInfoData buf;
	JsonbContainer *ids = p->opts.contract_ids ? &p->opts.contract_ids->root : NULL;
	int			nids = ids ? JsonContainerSize(ids) : 0;
	int			nfilters = nids > 0 ? (nids + LI_STELLAR_IDS_PER_FILTER - 1) / LI_STELLAR_IDS_PER_FILTER
		: (p->opts.topics || p->opts.event_type) ? 1 : 0;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int f = 0; f < nfilters; f++)
	{
		bool		any = false;

		appendStringInfoString(&buf, f > 0 ? ",{" : "{");
		if (p->opts.event_type)
		{
			appendStringInfo(&buf, "\"type\":\"%s\"", p->opts.event_type);
			any = true;
		}
		if (nids > 0)
		{
			appendStringInfoString(&buf, any ? ",\"contractIds\":[" : "\"contractIds\":[");
			for (int i = f * LI_STELLAR_IDS_PER_FILTER;
				 i < Min(nids, (f + 1) * LI_STELLAR_IDS_PER_FILTER); i++)
			{
				JsonbValue *e = getIthJsonbValueFromContainer(ids, i);

				if (i > f * LI_STELLAR_IDS_PER_FILTER)
					appendStringInfoChar(&buf, ',');
				escape_json(&buf, pnstrdup(e->val.string.val, e->val.string.len));
			}
			appendStringInfoChar(&buf, ']');
			any = true;
		}
		if (p->opts.topics)
			appendStringInfo(&buf, "%s\"topics\":%s", any ? "," : "",
							 JsonbToCString(NULL, &p->opts.topics->root, VARSIZE(p->opts.topics)));
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/*
 * The page size a getEvents error asks for: stellar-rpc's "limit must not
 * exceed N" gives N; a response over max_response_bytes halves it.  false
 * when the error is not about the page size.
 */
static bool
shrink_page(const LiRpcError *err)
{
	const char *s;
	int			n = 0;

	if (err->code == 0)
	{
		if (page_limit <= 1)
			return false;
		page_limit = Max(1, page_limit / 2);
		return true;
	}
	if (err->message == NULL || (s = strstr(err->message, "limit must not exceed ")) == NULL)
		return false;
	s += strlen("limit must not exceed ");
	while (*s >= '0' && *s <= '9' && n < 100000)
		n = n * 10 + (*s++ - '0');
	if (n < 1 || n >= page_limit)
		return false;
	page_limit = n;
	return true;
}

/* append event v (of ledger) to the window */
static void
window_add(Window *w, JsonbValue *v, int64 ledger)
{
	if (w->nevents == w->cap)
	{
		w->cap = Max(256, w->cap * 2);
		w->events = w->events ? repalloc(w->events, sizeof(JsonbValue *) * w->cap)
			: palloc(sizeof(JsonbValue *) * w->cap);
		w->ledgers = w->ledgers ? repalloc(w->ledgers, sizeof(int64) * w->cap)
			: palloc(sizeof(int64) * w->cap);
	}
	w->events[w->nevents] = v;
	w->ledgers[w->nevents++] = ledger;
}

/*
 * getEvents over [w->first, w->last], page by page; may end the window
 * early (w->last lowered) at a server's lower latestLedger or, after
 * max_events, at the last whole ledger with events.
 */
static void
fetch_events(LiPipeline *p, Window *w)
{
	char	   *filters = events_filters(p);
	char	   *cursor = NULL;

	for (;;)
	{
		char	   *params;
		JsonbValue *r;
		LiRpcError	err;
		JsonbContainer *events;
		int			n;
		int64		latest;
		JsonbValue *c;
		bool		past = false;

		CHECK_FOR_INTERRUPTS();
		if (cursor == NULL)
			params = psprintf("{\"startLedger\":" INT64_FORMAT ",\"endLedger\":" INT64_FORMAT ",\"filters\":%s,\"pagination\":{\"limit\":%d},\"xdrFormat\":\"base64\"}",
							  w->first, w->last + 1, filters, page_limit);
		else
			params = psprintf("{\"filters\":%s,\"pagination\":{\"cursor\":\"%s\",\"limit\":%d},\"xdrFormat\":\"base64\"}",
							  filters, cursor, page_limit);
		r = li_rpc_call_ex("getEvents", params, &err);
		if (r == NULL)
		{
			if (shrink_page(&err))
			{
				ereport(LOG,
						(errmsg("ledger_ingest pipeline \"%s\": getEvents pages of at most %d events from now on",
								p->name, page_limit)));
				continue;
			}
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("Stellar RPC getEvents%s: %s", li_rpc_endpoint_label(),
							err.code == 0 ? "the response is over max_response_bytes" : err.message)));
		}
		events = result_array(r, "getEvents", "events");
		latest = result_int(r, "getEvents", "latestLedger");
		n = JsonContainerSize(events);
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(events, i);
			JsonbValue *l = NULL;
			int64		ledger;

			if (e->type == jbvBinary && JsonContainerIsObject(e->val.binary.data))
				l = li_jsonb_get(e->val.binary.data, "ledger");
			if (l == NULL || l->type != jbvNumeric || !li_numeric_to_int64(l->val.numeric, &ledger))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("Stellar RPC getEvents%s: event %d of the page has no valid \"ledger\"",
								li_rpc_endpoint_label(), i)));
			if (ledger < w->first || (w->nevents > 0 && ledger < w->ledgers[w->nevents - 1]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("Stellar RPC getEvents%s: an event of ledger " INT64_FORMAT " out of order (window " INT64_FORMAT " to " INT64_FORMAT ")",
								li_rpc_endpoint_label(), ledger, w->first, w->last)));
			if (ledger > w->last)
			{
				past = true;	/* a page by cursor scans past the window */
				break;
			}
			window_add(w, e, ledger);
		}
		if (latest < w->last)
			w->last = latest;	/* a server behind the one getHealth asked */
		if (n < page_limit)
			return;				/* the window is scanned to its end */
		if (past)
			return;				/* the page ran past the window */
		if (w->nevents >= p->opts.batch_max_events && w->ledgers[0] < w->ledgers[w->nevents - 1])
		{
			/* enough: end the window at the last whole ledger with events */
			int64		partial = w->ledgers[w->nevents - 1];

			while (w->ledgers[w->nevents - 1] == partial)
				w->nevents--;
			w->last = w->ledgers[w->nevents - 1];
			return;
		}
		c = li_jsonb_get(r->val.binary.data, "cursor");
		if (c == NULL || c->type != jbvString || c->val.string.len == 0 || c->val.string.len > 64)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("Stellar RPC getEvents%s: a full page without a valid \"cursor\"",
							li_rpc_endpoint_label())));
		cursor = pnstrdup(c->val.string.val, c->val.string.len);
		for (char *s = cursor; *s; s++)
			if (!((*s >= '0' && *s <= '9') || *s == '-'))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("Stellar RPC getEvents%s: the cursor is not a getEvents id",
								li_rpc_endpoint_label())));
	}
}

/*
 * The ledgers to fetch: the window's ends, every ledger with events and the
 * multiples of the block handlers' block_every, increasing, each once.
 */
static int64 *
window_ledgers(const Window *w, int64 every, int *n)
{
	int64		nmult = every > 0 ? w->last / every - (w->first + every - 1) / every + 1 : 0;
	int64	   *s = palloc(sizeof(int64) * (w->nevents + 2 + Max(nmult, 0)));
	int			m = 0;

	s[m++] = w->first;
	s[m++] = w->last;
	for (int i = 0; i < w->nevents; i++)
		s[m++] = w->ledgers[i];
	if (every > 0)
		for (int64 x = (w->first + every - 1) / every * every; x <= w->last; x += every)
			s[m++] = x;
	*n = li_sort_unique(s, m);
	return s;
}

/*
 * getLedgers for seqs[0..n) (increasing): entries[i] is ledger seqs[i]'s
 * entry (an object).  Contiguous ledgers share a call.
 */
static void
fetch_ledgers(const int64 *seqs, int n, JsonbValue **entries)
{
	char	  **params = palloc(sizeof(char *) * n);
	int		   *start = palloc(sizeof(int) * n);
	JsonbValue **results = palloc(sizeof(JsonbValue *) * n);
	int			ncalls = 0;

	for (int i = 0; i < n;)
	{
		int			k = 1;

		while (i + k < n && k < LEDGERS_PER_CALL && seqs[i + k] == seqs[i] + k)
			k++;
		start[ncalls] = i;
		params[ncalls++] = psprintf("{\"startLedger\":" INT64_FORMAT ",\"pagination\":{\"limit\":%d},\"xdrFormat\":\"base64\"}",
									seqs[i], k);
		i += k;
	}
	li_rpc_call_batch("getLedgers", params, ncalls, results);
	for (int c = 0; c < ncalls; c++)
	{
		JsonbContainer *ledgers = result_array(results[c], "getLedgers", "ledgers");
		int			want = (c + 1 < ncalls ? start[c + 1] : n) - start[c];

		if ((int) JsonContainerSize(ledgers) < want)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("Stellar RPC getLedgers%s: %u ledgers from " INT64_FORMAT ", %d asked",
							li_rpc_endpoint_label(), JsonContainerSize(ledgers), seqs[start[c]], want)));
		for (int j = 0; j < want; j++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(ledgers, j);
			JsonbValue *s = NULL;
			int64		seq = -1;

			if (e->type == jbvBinary && JsonContainerIsObject(e->val.binary.data))
				s = li_jsonb_get(e->val.binary.data, "sequence");
			if (s == NULL || s->type != jbvNumeric || !li_numeric_to_int64(s->val.numeric, &seq) ||
				seq != seqs[start[c] + j])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("Stellar RPC getLedgers%s: ledger " INT64_FORMAT " asked, %s answered",
								li_rpc_endpoint_label(), seqs[start[c] + j],
								seq >= 0 ? psprintf("ledger " INT64_FORMAT, seq) : "no valid sequence")));
			entries[start[c] + j] = e;
		}
	}
}

/*
 * The Stellar ledger document of a getLedgers entry (without metadataXdr)
 * and its events, parsed into *out.
 */
static void
parse_ledger(JsonbContainer *entry, JsonbValue **events, int nevents, LiLedger *out)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it = JsonbIteratorInit(entry);
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue	key;
	JsonbValue *res;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		key = v;
		tok = JsonbIteratorNext(&it, &v, true);
		if ((key.val.string.len == 11 && memcmp(key.val.string.val, "metadataXdr", 11) == 0) ||
			(key.val.string.len == 6 && memcmp(key.val.string.val, "events", 6) == 0))
			continue;
		(void) pushJsonbValue(&state, WJB_KEY, &key);
		(void) pushJsonbValue(&state, WJB_VALUE, &v);
	}
	key.type = jbvString;
	key.val.string.val = "events";
	key.val.string.len = 6;
	(void) pushJsonbValue(&state, WJB_KEY, &key);
	(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < nevents; i++)
		(void) pushJsonbValue(&state, WJB_ELEM, events[i]);
	(void) pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	li_parse_stellar_ledger(&JsonbValueToJsonb(res)->root, out);
}

/*
 * li_stellar_rpc_fetch -- fetch the next window of ledgers into the batch
 * (see the file header).  Leaves the batch empty at the head; sets
 * batch->fail_error when the pipeline cannot go on.
 */
void
li_stellar_rpc_fetch(LiPipeline *p, LiBatch *batch)
{
	JsonbValue *r;
	int64		head;
	int64		oldest;
	int64		next;
	Window		w;
	int64	   *seqs;
	int			nseqs;
	JsonbValue **entries;
	int			ev = 0;

	li_rpc_client_configure(&p->opts);
	pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: getHealth", p->name));
	if (!check_network(p, batch))
		return;
	r = li_rpc_call("getHealth", "{}");
	head = result_int(r, "getHealth", "latestLedger");
	oldest = result_int(r, "getHealth", "oldestLedger");
	SpinLockAcquire(&p->slot->mutex);
	p->slot->head = head;
	SpinLockRelease(&p->slot->mutex);

	next = p->cursor.complete ? p->cursor.ledger + 1 : p->cursor.ledger;
	next = Max(next, p->opts.from_block);
	if (p->opts.to_block >= 0 && next > p->opts.to_block)
	{
		pgstat_report_activity(STATE_IDLE, NULL);
		return;
	}
	if (next < oldest)
	{
		fail(batch, psprintf("Stellar ledger " INT64_FORMAT " is older than the oldest ledger the server%s holds (" INT64_FORMAT "); ingest ledgers " INT64_FORMAT " to " INT64_FORMAT " through an inbox pipeline (a backfill from a ledger archive), then create this pipeline with from_ledger " INT64_FORMAT,
							 next, li_rpc_endpoint_label(), oldest, next, oldest - 1, oldest));
		return;
	}
	if (p->has_cursor_hash && head + LI_STELLAR_RESET_LEDGERS < p->cursor.ledger)
	{
		fail(batch, psprintf("the Stellar RPC server's latest ledger " INT64_FORMAT "%s is more than %d ledgers below the cursor (ledger " INT64_FORMAT "): the network was reset, or the server follows another network",
							 head, li_rpc_endpoint_label(), LI_STELLAR_RESET_LEDGERS, p->cursor.ledger));
		return;
	}
	if (next > head)
	{
		pgstat_report_activity(STATE_IDLE, NULL);
		return;
	}

	memset(&w, 0, sizeof(w));
	w.first = next;
	w.last = Min(head, next + p->opts.block_range - 1);
	if (p->opts.to_block >= 0)
		w.last = Min(w.last, p->opts.to_block);
	pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: getEvents", p->name));
	fetch_events(p, &w);
	if (w.last < w.first)
	{
		pgstat_report_activity(STATE_IDLE, NULL);
		return;
	}

	pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: getLedgers", p->name));
	seqs = window_ledgers(&w, p->opts.block_every, &nseqs);
	entries = palloc(sizeof(JsonbValue *) * nseqs);
	fetch_ledgers(seqs, nseqs, entries);
	for (int i = 0; i < nseqs; i++)
	{
		JsonbContainer *entry = entries[i]->val.binary.data;
		int			first_ev = ev;
		LiLedger   *l;
		LiLedger   *prev = batch->nledgers > 0 ? &batch->ledgers[batch->nledgers - 1] : NULL;
		char	   *why;

		CHECK_FOR_INTERRUPTS();
		/* checked again by the parser, which would only raise */
		if ((why = li_stellar_header_error(entry)) != NULL)
		{
			fail(batch, psprintf("Stellar ledger " INT64_FORMAT " from the server%s is forged or corrupt: %s",
								 seqs[i], li_rpc_endpoint_label(), why));
			break;
		}
		while (ev < w.nevents && w.ledgers[ev] == seqs[i])
			ev++;
		l = li_batch_add(batch);
		parse_ledger(entry, w.events + first_ev, ev - first_ev, l);
		if (!li_check_continuity(p, prev, l, &why))
		{
			/* the Stellar network does not reorganize */
			fail(batch, psprintf("%s, so the server%s is not serving the network the pipeline follows",
								 why, li_rpc_endpoint_label()));
			batch->nledgers--;
			break;
		}
		batch->nevents += l->nevents;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
}
