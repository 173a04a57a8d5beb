/*-------------------------------------------------------------------------
 *
 * source_evm_rpc.c
 *	  The evm_rpc source: Ethereum JSON-RPC over HTTP(S) with libcurl.
 *
 * Each fetch, with no transaction open:
 *	1. eth_blockNumber: the head (published to status.head); the pipeline
 *	   applies up to head - confirmations (and to_block);
 *	2. eth_getLogs over [next, end], at most block_range blocks, with the
 *	   pipeline's address and topics filters;
 *	3. eth_getBlockByNumber(n, false) for the first and last block of the
 *	   range and for every block with matching logs;
 *	4. each of those blocks becomes a ledger document (header fields plus
 *	   its logs) and goes through the same parser and checks as an inbox
 *	   document: a log whose blockHash disagrees with the block means the
 *	   chain moved between the calls, and the fetch is retried.
 * Blocks in the range without matching logs are not applied, but the cursor
 * moves past them (it ends at the range's last block, whose header is
 * recorded, so parentHash continuity is checked at every range boundary).
 *
 * Formats follow the Ethereum JSON-RPC specification (ethereum.org,
 * "JSON-RPC API"; execution-apis eth_getLogs, eth_getBlockByNumber).
 *
 * libcurl runs with CURLOPT_NOSIGNAL (PostgreSQL owns the signals), only
 * the http and https protocols, no redirects, connect and total timeouts,
 * and a response size cap.  Its progress callback aborts the transfer when
 * the worker is asked to die or cancel; CHECK_FOR_INTERRUPTS() then acts
 * on it, so stop(), pg_terminate_backend() and DROP DATABASE never wait on
 * the network.  Errors never name the URL (it may carry credentials).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "ledger_ingest.h"

#define RPC_MAX_RESPONSE	(256 * 1024 * 1024)
#define RPC_CONNECT_TIMEOUT_MS	5000

static CURL *curl = NULL;
static struct curl_slist *headers = NULL;
static char curl_errbuf[CURL_ERROR_SIZE];
static int64 rpc_id = 0;

/* response buffer, grown without ereport (we are inside libcurl) */
static char *resp_data = NULL;
static size_t resp_len = 0;
static size_t resp_cap = 0;
static bool resp_overflow = false;

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	size_t		n = size * nmemb;

	if (resp_len + n + 1 > RPC_MAX_RESPONSE)
	{
		resp_overflow = true;
		return 0;				/* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	if (resp_len + n + 1 > resp_cap)
	{
		size_t		newcap = Max(resp_cap * 2, resp_len + n + 1);
		char	   *p;

		newcap = Max(newcap, 64 * 1024);
		p = MemoryContextAllocExtended(TopMemoryContext, newcap, MCXT_ALLOC_NO_OOM);
		if (p == NULL)
			return 0;
		if (resp_data)
		{
			memcpy(p, resp_data, resp_len);
			pfree(resp_data);
		}
		resp_data = p;
		resp_cap = newcap;
	}
	memcpy(resp_data + resp_len, ptr, n);
	resp_len += n;
	resp_data[resp_len] = '\0';
	return n;
}

/* Abort the transfer when the worker must die or cancel. */
static int
progress_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	return (ProcDiePending || QueryCancelPending) ? 1 : 0;
}

static void
rpc_cleanup_cb(int code, Datum arg)
{
	li_rpc_cleanup();
}

/*
 * li_rpc_cleanup -- release the curl handle (at process exit).
 */
void
li_rpc_cleanup(void)
{
	if (curl)
		curl_easy_cleanup(curl);
	curl = NULL;
	if (headers)
		curl_slist_free_all(headers);
	headers = NULL;
}

/*
 * li_rpc_init -- set up the libcurl handle for the pipeline's URL.  One
 * handle per worker, reused so that connections are kept alive.
 */
void
li_rpc_init(LiPipeline *p)
{
	if (curl != NULL)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
	curl = curl_easy_init();
	if (curl == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not create a libcurl handle")));
	headers = curl_slist_append(NULL, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Accept: application/json");
	on_proc_exit(rpc_cleanup_cb, (Datum) 0);

	curl_easy_setopt(curl, CURLOPT_URL, p->opts.url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) RPC_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) p->opts.timeout_ms);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_errbuf);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "ledger_ingest/0.1");
	curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
}

/* errcontext: which call's response failed to parse */
static void
rpc_error_callback(void *arg)
{
	errcontext("ledger_ingest: JSON-RPC response to %s", (const char *) arg);
}

/*
 * rpc_call -- one JSON-RPC 2.0 request; returns its "result" (never
 * NULL; a JSON null result comes back as a jbvNull value).  Raises
 * ERRCODE_CONNECTION_FAILURE for transport errors and HTTP statuses,
 * ERRCODE_INVALID_TEXT_REPRESENTATION for a response that is not a JSON-RPC
 * response, and ERRCODE_EXTERNAL_ROUTINE_EXCEPTION for a JSON-RPC error
 * object.  Must not be called inside a transaction.
 */
static JsonbValue *
rpc_call(const char *method, const char *params)
{
	char	   *body;
	CURLcode	rc;
	long		http_status = 0;
	Jsonb	   *doc;
	JsonbValue *v;
	int64		id;
	ErrorContextCallback errcb;

	if (IsTransactionState())
		elog(ERROR, "ledger_ingest: network I/O attempted inside a transaction");

	id = ++rpc_id;
	body = psprintf("{\"jsonrpc\":\"2.0\",\"id\":" INT64_FORMAT ",\"method\":\"%s\",\"params\":%s}",
					id, method, params);
	resp_len = 0;
	resp_overflow = false;
	curl_errbuf[0] = '\0';
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(curl);
	CHECK_FOR_INTERRUPTS();
	if (rc != CURLE_OK)
	{
		if (resp_overflow)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("JSON-RPC %s: response larger than %d bytes", method, RPC_MAX_RESPONSE)));
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("JSON-RPC %s failed: %s", method,
						curl_errbuf[0] ? curl_errbuf : curl_easy_strerror(rc))));
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
	if (http_status != 200)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("JSON-RPC %s failed: HTTP status %ld", method, http_status)));
	if (resp_len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s: empty response", method)));

	errcb.callback = rpc_error_callback;
	errcb.arg = (void *) method;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(resp_data)));
	error_context_stack = errcb.previous;

	if (!JB_ROOT_IS_OBJECT(doc) || JB_ROOT_IS_SCALAR(doc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s: the response is not a JSON object", method)));
	v = li_jsonb_get(&doc->root, "id");
	{
		int64		got;

		if (v == NULL || !li_quantity_from_jsonb(v, &got) || got != id)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC %s: the response id does not match the request id " INT64_FORMAT,
							method, id)));
	}
	v = li_jsonb_get(&doc->root, "error");
	if (v != NULL && v->type != jbvNull)
	{
		JsonbValue *code = NULL;
		JsonbValue *msg = NULL;
		int64		c = 0;

		if (v->type == jbvBinary)
		{
			code = li_jsonb_get(v->val.binary.data, "code");
			msg = li_jsonb_get(v->val.binary.data, "message");
		}
		if (code && code->type == jbvNumeric)
			(void) li_numeric_to_int64(code->val.numeric, &c);
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("JSON-RPC %s returned error " INT64_FORMAT ": %s", method, c,
						(msg && msg->type == jbvString) ?
						pnstrdup(msg->val.string.val,
								 pg_mbcliplen(msg->val.string.val, msg->val.string.len, 500)) :
						"(no message)")));
	}
	v = li_jsonb_get(&doc->root, "result");
	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s: the response has neither \"result\" nor \"error\"", method)));
	return v;
}

static char *
hexq(int64 n)
{
	return psprintf("\"0x%llx\"", (unsigned long long) n);
}

static int64
result_quantity(JsonbValue *v, const char *method)
{
	int64		n;

	if (!li_quantity_from_jsonb(v, &n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s: the result is not a quantity", method)));
	return n;
}

/* text of a JSON value inside a response */
static char *
json_text(JsonbValue *v)
{
	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	return JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0);
}

typedef struct BlockLogs
{
	int64		number;
	StringInfoData logs;		/* JSON array elements, comma-separated */
	int			nlogs;
} BlockLogs;

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * Fetch block n's header and build its ledger from it and "logs" (a JSON
 * array text).
 */
static bool fetch_ledger(int64 n, const char *logs, LiLedger *out, bool missing_ok);

static bool
fetch_ledger(int64 n, const char *logs, LiLedger *out, bool missing_ok)
{
	JsonbValue *r = rpc_call("eth_getBlockByNumber", psprintf("[%s,false]", hexq(n)));
	JsonbContainer *h;
	StringInfoData doc;
	static const char *const fields[] = {"number", "hash", "parentHash", "timestamp"};
	Jsonb	   *jb;

	if (r->type == jbvNull && missing_ok)
		return false;
	if (r->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getBlockByNumber: block " INT64_FORMAT " is not available", n),
				 errhint("The node may be syncing or behind another node.")));
	if (r->type != jbvBinary || !JsonContainerIsObject(r->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getBlockByNumber: the result for block " INT64_FORMAT " is not an object", n)));
	h = r->val.binary.data;

	initStringInfo(&doc);
	appendStringInfoChar(&doc, '{');
	for (size_t i = 0; i < lengthof(fields); i++)
	{
		JsonbValue *f = li_jsonb_get(h, fields[i]);

		if (f == NULL)
			continue;
		appendStringInfo(&doc, "\"%s\":%s,", fields[i], json_text(f));
	}
	appendStringInfo(&doc, "\"logs\":[%s]}", logs);
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(doc.data)));
	li_parse_ledger(&jb->root, out);
	if (out->number != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getBlockByNumber: asked for block " INT64_FORMAT ", got block " INT64_FORMAT,
						n, out->number)));
	return true;
}

/*
 * li_rpc_fetch -- fetch the next range of blocks into the batch (see the
 * file header).  Leaves the batch empty when the pipeline is at the head.
 */
void
li_rpc_fetch(LiPipeline *p, LiBatch *batch)
{
	JsonbValue *r;
	int64		head;
	int64		safe;
	int64		next;
	int64		end;
	StringInfoData filter;
	JsonbContainer *logs;
	int			nlogs;
	BlockLogs  *blocks = NULL;
	int			nblocks = 0;
	int64	   *numbers;
	int			nnumbers = 0;
	uint8		end_hash[LI_HASH_LEN];

	pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: eth_blockNumber", p->name));
	r = rpc_call("eth_blockNumber", "[]");
	head = result_quantity(r, "eth_blockNumber");
	SpinLockAcquire(&p->slot->mutex);
	p->slot->head = head;
	SpinLockRelease(&p->slot->mutex);

	if (strcmp(p->opts.finality, "latest") == 0)
	{
		safe = head - p->opts.confirmations;
		/* ledgers above this one may still be reorganized: journal them */
		p->journal_floor = head - p->opts.reorg_window;
	}
	else
	{
		/* apply only what the node calls safe or finalized */
		r = rpc_call("eth_getBlockByNumber", psprintf("[\"%s\",false]", p->opts.finality));
		if (r->type == jbvNull)
			safe = -1;
		else if (r->type != jbvBinary ||
				 !li_quantity_from_jsonb(li_jsonb_get(r->val.binary.data, "number"), &safe))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC eth_getBlockByNumber(\"%s\"): the result has no valid number",
							p->opts.finality)));
		p->journal_floor = safe;
	}
	if (p->opts.to_block >= 0)
		safe = Min(safe, p->opts.to_block);
	next = p->cursor.complete ? p->cursor.ledger + 1 : p->cursor.ledger;
	next = Max(next, p->opts.from_block);
	if (next > safe)
	{
		/*
		 * At the head: re-check that the cursor's ledger is still canonical,
		 * so that a reorg that keeps the height is seen too.  A node that
		 * does not have that block (syncing, or a lower head) is not a reorg.
		 */
		if (p->has_cursor_hash && p->cursor.complete && p->cursor.ledger >= 0 &&
			p->cursor.ledger <= head)
		{
			LiLedger	l;

			if (fetch_ledger(p->cursor.ledger, "", &l, true) &&
				memcmp(l.hash, p->cursor_hash, LI_HASH_LEN) != 0)
			{
				batch->reorg = true;
				batch->reorg_error = psprintf("reorg at ledger " INT64_FORMAT ": its hash changed from %s to %s",
											  l.number, li_bytes_to_hex(p->cursor_hash, LI_HASH_LEN),
											  li_bytes_to_hex(l.hash, LI_HASH_LEN));
			}
		}
		pgstat_report_activity(STATE_IDLE, NULL);
		return;
	}
	end = Min(next + p->opts.block_range - 1, safe);

	/*
	 * The hash of the range's last block before eth_getLogs: if it differs
	 * afterwards, the chain moved between the calls (a block without
	 * matching logs in our eth_getLogs answer may have been replaced by one
	 * with some), and the range is fetched again.
	 */
	{
		LiLedger	endl;

		fetch_ledger(end, "", &endl, false);
		memcpy(end_hash, endl.hash, LI_HASH_LEN);
	}

	/* eth_getLogs over [next, end] */
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("ledger_ingest %s: eth_getLogs " INT64_FORMAT "-" INT64_FORMAT,
									p->name, next, end));
	initStringInfo(&filter);
	appendStringInfo(&filter, "[{\"fromBlock\":%s,\"toBlock\":%s", hexq(next), hexq(end));
	if (p->opts.addresses)
		appendStringInfo(&filter, ",\"address\":%s",
						 JsonbToCString(NULL, &p->opts.addresses->root, VARSIZE(p->opts.addresses)));
	if (p->opts.topics)
		appendStringInfo(&filter, ",\"topics\":%s",
						 JsonbToCString(NULL, &p->opts.topics->root, VARSIZE(p->opts.topics)));
	appendStringInfoString(&filter, "}]");
	r = rpc_call("eth_getLogs", filter.data);
	if (r->type != jbvBinary || !JsonContainerIsArray(r->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getLogs: the result is not an array")));
	logs = r->val.binary.data;
	nlogs = JsonContainerSize(logs);

	/* group the logs by block */
	blocks = palloc0(sizeof(BlockLogs) * (nlogs + 2));
	for (int i = 0; i < nlogs; i++)
	{
		JsonbValue *lv = getIthJsonbValueFromContainer(logs, i);
		int64		bn;
		BlockLogs  *b = NULL;

		if (lv->type != jbvBinary ||
			!li_quantity_from_jsonb(li_jsonb_get(lv->val.binary.data, "blockNumber"), &bn))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC eth_getLogs: log %d has no valid blockNumber", i)));
		if (bn < next || bn > end)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC eth_getLogs: log %d is from block " INT64_FORMAT ", outside the requested range " INT64_FORMAT "-" INT64_FORMAT,
							i, bn, next, end)));
		if (nblocks > 0 && blocks[nblocks - 1].number == bn)
			b = &blocks[nblocks - 1];
		else
		{
			for (int j = 0; j < nblocks; j++)
				if (blocks[j].number == bn)
					b = &blocks[j];
		}
		if (b == NULL)
		{
			b = &blocks[nblocks++];
			b->number = bn;
			initStringInfo(&b->logs);
		}
		if (b->nlogs++ > 0)
			appendStringInfoChar(&b->logs, ',');
		appendStringInfoString(&b->logs, json_text(lv));
	}

	/* the blocks to fetch: first, last, and every block with logs */
	numbers = palloc(sizeof(int64) * (nblocks + 2));
	numbers[nnumbers++] = next;
	if (end != next)
		numbers[nnumbers++] = end;
	for (int j = 0; j < nblocks; j++)
		if (blocks[j].number != next && blocks[j].number != end)
			numbers[nnumbers++] = blocks[j].number;
	qsort(numbers, nnumbers, sizeof(int64), int64_cmp);

	for (int k = 0; k < nnumbers; k++)
	{
		const char *blogs = "";
		LiLedger	l;
		LiLedger   *prev = batch->nledgers > 0 ? &batch->ledgers[batch->nledgers - 1] : NULL;
		char	   *reorg_error = NULL;

		CHECK_FOR_INTERRUPTS();
		for (int j = 0; j < nblocks; j++)
			if (blocks[j].number == numbers[k])
				blogs = blocks[j].logs.data;
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("ledger_ingest %s: eth_getBlockByNumber " INT64_FORMAT,
										p->name, numbers[k]));
		fetch_ledger(numbers[k], blogs, &l, false);
		if (numbers[k] == end && memcmp(l.hash, end_hash, LI_HASH_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("block " INT64_FORMAT " changed while its range was fetched; fetching it again", end)));
		if (!li_check_continuity(p, prev, &l, &reorg_error))
		{
			/*
			 * At the cursor: a reorg, for the fork-point walk.  Between two
			 * fetched blocks: the chain moved during the fetch; keep the
			 * consistent prefix and look again from there next cycle.
			 */
			if (prev == NULL)
			{
				batch->reorg = true;
				batch->reorg_error = reorg_error;
			}
			break;
		}
		*li_batch_add(batch) = l;
		batch->nevents += l.nevents;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * li_rpc_find_fork -- after a parentHash mismatch at the cursor, walk back
 * through the stored ledger headers within reorg_window of the cursor,
 * fetching the canonical block at each height, until the hashes agree
 * (ethereumjs-blockstream's fork-point walk, over stored headers).  The
 * headers are read in a short transaction; all fetching happens outside
 * it.  A block the node does not have (syncing, a lower head) raises a
 * retryable error: it is not taken for a reorg.
 */
LiForkResult
li_rpc_find_fork(LiPipeline *p, int64 *fork, uint8 *fork_hash)
{
	MemoryContext caller_cxt;
	Oid			types[3] = {TEXTOID, INT8OID, INT8OID};
	Datum		args[3];
	int			ret;
	int			n;
	int64	   *numbers;
	uint8	  (*hashes)[LI_HASH_LEN];

	caller_cxt = li_txn_begin();
	args[0] = CStringGetTextDatum(p->name);
	args[1] = Int64GetDatum(p->cursor.complete ? p->cursor.ledger : p->cursor.ledger - 1);
	args[2] = Int64GetDatum(p->cursor.ledger - p->opts.reorg_window);
	ret = SPI_execute_with_args("SELECT number, hash FROM ledger_ingest.ledger "
								"WHERE pipeline OPERATOR(pg_catalog.=) $1 "
								"AND number OPERATOR(pg_catalog.<=) $2 AND number OPERATOR(pg_catalog.>=) $3 "
								"ORDER BY number DESC",
								3, types, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading ledger headers failed: %s", SPI_result_code_string(ret));
	n = (int) SPI_processed;
	/* in the caller's context: SPI_finish frees SPI's */
	numbers = MemoryContextAlloc(caller_cxt, sizeof(int64) * Max(n, 1));
	hashes = MemoryContextAlloc(caller_cxt, LI_HASH_LEN * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		bytea	   *h;

		numbers[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		memcpy(hashes[i], VARDATA_ANY(h), LI_HASH_LEN);
	}
	if (!p->cursor.complete && p->has_cursor_hash)
	{
		/*
		 * A partially applied ledger has no stored header yet: it is the
		 * first candidate (its hash is the cursor's).
		 */
		numbers = repalloc(numbers, sizeof(int64) * (n + 1));
		hashes = repalloc(hashes, LI_HASH_LEN * (n + 1));
		memmove(numbers + 1, numbers, sizeof(int64) * n);
		memmove(hashes + 1, hashes, LI_HASH_LEN * n);
		numbers[0] = p->cursor.ledger;
		memcpy(hashes[0], p->cursor_hash, LI_HASH_LEN);
		n++;
	}
	li_txn_commit(caller_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (int i = 0; i < n; i++)
	{
		LiLedger	l;

		CHECK_FOR_INTERRUPTS();
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("ledger_ingest %s: looking for the fork point at block " INT64_FORMAT,
										p->name, numbers[i]));
		fetch_ledger(numbers[i], "", &l, false);
		if (memcmp(l.hash, hashes[i], LI_HASH_LEN) == 0)
		{
			pgstat_report_activity(STATE_IDLE, NULL);
			if (i == 0)
				return LI_FORK_NONE;
			*fork = numbers[i];
			memcpy(fork_hash, hashes[i], LI_HASH_LEN);
			return LI_FORK_FOUND;
		}
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	return LI_FORK_BEYOND_WINDOW;
}
