/*-------------------------------------------------------------------------
 *
 * rpc_client.c
 *	  A JSON-RPC 2.0 client over HTTP(S) with libcurl.
 *
 * One client per worker (a worker serves one pipeline), its state in one
 * struct: the libcurl handle, reused so that connections are kept alive;
 * the pipeline's endpoints, with failover to the next one on a transport
 * error, an HTTP status other than 200 or a response that is not a
 * JSON-RPC response; the request rate limit (max_requests_per_second),
 * waited on the latch; the response size cap; the node's Retry-After.
 * Responses are checked (JSON, an object, the request's id, "result" or
 * "error") before the caller sees them.  The Ethereum logic that uses it
 * is in source_evm_rpc.c.
 *
 * libcurl runs with CURLOPT_NOSIGNAL (PostgreSQL owns the signals), only
 * the http and https protocols (for redirects too, at most max_redirects),
 * connect and total timeouts, and a response size cap.  Its progress
 * callback aborts the transfer when the worker is asked to die or cancel;
 * CHECK_FOR_INTERRUPTS() then acts on it, so stop(), pg_terminate_backend()
 * and DROP DATABASE never wait on the network.  Errors never name the URL
 * (it may carry credentials): with several URLs, an endpoint is named by
 * its position.  No call is made inside a transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ledger.h"
#include "rpc_client.h"

#define RPC_CONNECT_TIMEOUT_MS	5000

/* A response being received, grown without ereport (inside libcurl). */
typedef struct RpcBuffer
{
	char	   *data;			/* NUL-terminated, in TopMemoryContext */
	size_t		len;
	size_t		cap;
	size_t		limit;			/* max_response_bytes */
	bool		overflow;		/* the limit cut the response */
} RpcBuffer;

/* One of several requests in flight (li_rpc_call_logs_many). */
typedef struct RpcTransfer
{
	CURL	   *easy;			/* made once, from the client's handle */
	RpcBuffer	resp;
	char		errbuf[CURL_ERROR_SIZE];
	char	   *body;
	int64		id;
	bool		added;			/* in the multi handle */
	bool		finished;
	CURLcode	rc;
} RpcTransfer;

/* The worker's one JSON-RPC client (a worker serves one pipeline). */
typedef struct RpcClient
{
	CURL	   *curl;			/* reused: connections are kept alive */
	struct curl_slist *headers;
	char		errbuf[CURL_ERROR_SIZE];
	int64		id;				/* of the last request */
	const LiOptions *opts;		/* the pipeline's, set by li_rpc_client_configure */
	int			cur_url;		/* index into opts->urls */
	bool		call_open;		/* the previous call did not complete */
	TimestampTz last_request_at;
	/* milliseconds the node asked us to wait (Retry-After), 0 if none */
	int64		retry_after_ms;
	RpcBuffer	resp;			/* of the last request */
	long		http_status;	/* of the last response, 0 if none */
	/* calls per batch the node takes, as found out (see li_rpc_call_batch) */
	int			batch_cap;
	/* requests in flight together (li_rpc_call_logs_many) */
	CURLM	   *multi;
	RpcTransfer xfer[LI_RPC_MAX_CONCURRENT];
} RpcClient;

static RpcClient rpc = {.resp = {.limit = LI_RPC_MAX_RESPONSE}, .batch_cap = INT_MAX};

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	RpcBuffer  *b = userdata;
	size_t		n = size * nmemb;

	if (b->len + n + 1 > b->limit)
	{
		b->overflow = true;
		return 0;				/* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	if (b->len + n + 1 > b->cap)
	{
		size_t		newcap = Max(b->cap * 2, b->len + n + 1);
		char	   *p;

		newcap = Max(newcap, 64 * 1024);
		p = MemoryContextAllocExtended(TopMemoryContext, newcap, MCXT_ALLOC_NO_OOM);
		if (p == NULL)
			return 0;
		if (b->data)
		{
			memcpy(p, b->data, b->len);
			pfree(b->data);
		}
		b->data = p;
		b->cap = newcap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
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
	for (int i = 0; i < LI_RPC_MAX_CONCURRENT; i++)
	{
		RpcTransfer *x = &rpc.xfer[i];

		if (x->added)
			curl_multi_remove_handle(rpc.multi, x->easy);
		x->added = false;
		if (x->easy)
			curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	if (rpc.multi)
		curl_multi_cleanup(rpc.multi);
	rpc.multi = NULL;
	if (rpc.curl)
		curl_easy_cleanup(rpc.curl);
	rpc.curl = NULL;
	if (rpc.headers)
		curl_slist_free_all(rpc.headers);
	rpc.headers = NULL;
}

/*
 * li_rpc_client_init -- create the worker's libcurl handle (one per worker,
 * reused so that connections are kept alive).  The pipeline's settings are
 * applied by li_rpc_client_configure before each fetch, since options can
 * change.
 */
void
li_rpc_client_init(void)
{
	if (rpc.curl != NULL)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
	rpc.curl = curl_easy_init();
	if (rpc.curl == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not create a libcurl handle")));
	rpc.headers = curl_slist_append(NULL, "Content-Type: application/json");
	rpc.headers = curl_slist_append(rpc.headers, "Accept: application/json");
	on_proc_exit(rpc_cleanup_cb, (Datum) 0);

	curl_easy_setopt(rpc.curl, CURLOPT_HTTPHEADER, rpc.headers);
	curl_easy_setopt(rpc.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(rpc.curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(rpc.curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* keep POST (and its body) across 301/302/303 */
	curl_easy_setopt(rpc.curl, CURLOPT_POSTREDIR, (long) CURL_REDIR_POST_ALL);
	curl_easy_setopt(rpc.curl, CURLOPT_CONNECTTIMEOUT_MS, (long) RPC_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(rpc.curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(rpc.curl, CURLOPT_WRITEDATA, &rpc.resp);
	curl_easy_setopt(rpc.curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(rpc.curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(rpc.curl, CURLOPT_ERRORBUFFER, rpc.errbuf);
	curl_easy_setopt(rpc.curl, CURLOPT_USERAGENT, "ledger_ingest/0.1");
	curl_easy_setopt(rpc.curl, CURLOPT_ACCEPT_ENCODING, "");
}

/* the current endpoint, timeout and redirect limit on handle h */
static void
set_endpoint(CURL *h)
{
	curl_easy_setopt(h, CURLOPT_URL, rpc.opts->urls[rpc.cur_url]);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) rpc.opts->timeout_ms);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, rpc.opts->max_redirects > 0 ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long) rpc.opts->max_redirects);
}

/*
 * li_rpc_client_configure -- apply the pipeline's current options to the
 * handle: endpoints, timeouts, redirect limit, response size cap.  opts
 * must stay valid until the next call.
 */
void
li_rpc_client_configure(const LiOptions *opts)
{
	rpc.opts = opts;
	if (rpc.cur_url >= opts->nurls)
		rpc.cur_url = 0;
	set_endpoint(rpc.curl);
	rpc.resp.limit = (size_t) opts->max_response_bytes;
}

/*
 * li_rpc_take_retry_after_ms -- the wait the node last asked for (HTTP
 * Retry-After on 429 or 503, capped at an hour), or 0; forgets it.
 */
int64
li_rpc_take_retry_after_ms(void)
{
	int64		ms = rpc.retry_after_ms;

	rpc.retry_after_ms = 0;
	return ms;
}

/*
 * li_rpc_set_retry_after_ms -- the wait the node asked another process's
 * client for (a fetcher's, prefetch.c), for li_rpc_take_retry_after_ms.
 */
void
li_rpc_set_retry_after_ms(int64 ms)
{
	rpc.retry_after_ms = Max(ms, 0);
}

/* Move to the next endpoint of a pipeline with several URLs. */
static void
rpc_failover(void)
{
	if (rpc.opts->nurls < 2)
		return;
	rpc.cur_url = (rpc.cur_url + 1) % rpc.opts->nurls;
	curl_easy_setopt(rpc.curl, CURLOPT_URL, rpc.opts->urls[rpc.cur_url]);
}

/* " (endpoint i of n)" for messages when there are several; never the URL */
char *
li_rpc_endpoint_label(void)
{
	if (rpc.opts->nurls < 2)
		return "";
	return psprintf(" (endpoint %d of %d)", rpc.cur_url + 1, rpc.opts->nurls);
}

/*
 * Milliseconds until the pipeline's request rate (max_requests_per_second;
 * 0 is no limit) allows another request; 0 when it does now.
 */
static long
rate_limit_wait_ms(void)
{
	TimestampTz next_at;
	TimestampTz now;

	if (rpc.opts->max_requests_per_second <= 0 || rpc.last_request_at == 0)
		return 0;
	next_at = rpc.last_request_at + USECS_PER_SEC / rpc.opts->max_requests_per_second;
	now = GetCurrentTimestamp();
	return now >= next_at ? 0 : (long) ((next_at - now + 999) / 1000);
}

/*
 * Wait, outside any transaction, until the pipeline's request rate allows
 * another request.
 */
static void
rpc_rate_limit(void)
{
	long		ms;

	while ((ms = rate_limit_wait_ms()) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
}

/* the first len bytes of s, cut to at most n bytes at a character boundary */
static char *
clip(const char *s, int len, int n)
{
	return pnstrdup(s, pg_mbcliplen(s, len, n));
}

/* errcontext: which call's response failed to parse */
static void
rpc_error_callback(void *arg)
{
	errcontext("ledger_ingest: JSON-RPC response to %s", (const char *) arg);
}

/*
 * rpc_perform -- send one request body to the current endpoint.  Returns
 * NULL when a response with HTTP status 200 arrived (in rpc.resp.data), else a
 * palloc'd description of what failed (a transport error, an HTTP status,
 * the size cap), after noting any Retry-After the node sent.
 */
static char *
rpc_perform(const char *method, const char *body, int *sqlstate)
{
	CURLcode	rc;
	long		http_status = 0;

	rpc_rate_limit();
	rpc.resp.len = 0;
	rpc.resp.overflow = false;
	rpc.http_status = 0;
	rpc.errbuf[0] = '\0';
	curl_easy_setopt(rpc.curl, CURLOPT_POSTFIELDS, body);
	rpc.last_request_at = GetCurrentTimestamp();
	rc = curl_easy_perform(rpc.curl);
	CHECK_FOR_INTERRUPTS();
	*sqlstate = ERRCODE_CONNECTION_FAILURE;
	if (rc != CURLE_OK)
	{
		if (rpc.resp.overflow)
		{
			*sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			return psprintf("JSON-RPC %s%s: response larger than max_response_bytes (" INT64_FORMAT ")",
							method, li_rpc_endpoint_label(), rpc.opts->max_response_bytes);
		}
		return psprintf("JSON-RPC %s failed%s: %s", method, li_rpc_endpoint_label(),
						rpc.errbuf[0] ? rpc.errbuf : curl_easy_strerror(rc));
	}
	curl_easy_getinfo(rpc.curl, CURLINFO_RESPONSE_CODE, &http_status);
	rpc.http_status = http_status;
	if (http_status != 200)
	{
		curl_off_t	retry_after = 0;

		if ((http_status == 429 || http_status == 503) &&
			curl_easy_getinfo(rpc.curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
			retry_after > 0)
			rpc.retry_after_ms = Max(rpc.retry_after_ms,
										(int64) Min(retry_after, 3600) * 1000);
		return psprintf("JSON-RPC %s failed%s: HTTP status %ld%s", method, li_rpc_endpoint_label(),
						http_status,
						http_status == 429 ? " (rate limited)" : "");
	}
	return NULL;
}

/*
 * Does HTTP status s refuse a JSON-RPC batch as such (a client error other
 * than a timeout or a rate limit: 400, 405, 413, ...)?
 */
static bool
status_refuses_batch(long s)
{
	return s >= 400 && s < 500 && s != 408 && s != 429;
}

/*
 * Send body to the current endpoint, failing over to the next on a
 * transport error or HTTP status (each endpoint once).  true: a response
 * with status 200 is in rpc.resp.data.  A result larger than
 * max_response_bytes returns false with *err set (code 0) when err is
 * given (the caller can ask for less); so does, for a batch, an HTTP
 * status that refuses batches (code -1); every other failure raises the
 * list of what each endpoint did.
 */
static bool
send_with_failover(const char *method, const char *body, LiRpcError *err, bool batch)
{
	char	   *failure = NULL;
	int			sqlstate = 0;

	for (int attempt = 0; attempt < rpc.opts->nurls; attempt++)
	{
		char	   *f;

		if (attempt > 0)
		{
			ereport(LOG,
					(errmsg("ledger_ingest: %s; failing over to the next endpoint", failure)));
			rpc_failover();
		}
		f = rpc_perform(method, body, &sqlstate);
		/* with several endpoints, the error lists what each one did */
		failure = (f == NULL || failure == NULL) ? f : psprintf("%s; %s", failure, f);
		if (f == NULL)
			break;
		if (sqlstate == ERRCODE_PROGRAM_LIMIT_EXCEEDED && err != NULL)
		{
			/* too large a result: the caller can ask for less */
			rpc.call_open = false;
			err->code = 0;
			err->message = failure;
			return false;
		}
		if (batch && status_refuses_batch(rpc.http_status))
		{
			/* the caller sends the calls one by one */
			rpc.call_open = false;
			err->code = -1;
			err->message = failure;
			return false;
		}
	}
	if (failure != NULL)
		ereport(ERROR, (errcode(sqlstate), errmsg_internal("%s", failure)));
	return true;
}

/*
 * ERROR (22P02), naming the call, for an empty body or one that does not
 * start as JSON does (an HTML error page, say).
 */
static void
check_body(const char *method)
{
	const char *p;

	for (p = rpc.resp.data; p && *p && isspace((unsigned char) *p); p++)
		;
	if (rpc.resp.len == 0 || p == NULL || *p == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s%s: empty response", method, li_rpc_endpoint_label())));
	if (*p != '{' && *p != '[')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s%s: the response is not JSON (it starts with \"%s\")",
						method, li_rpc_endpoint_label(),
						clip(p, strnlen(p, 40), 40))));
}

static void
bad_id(const char *method, int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("JSON-RPC %s%s: the response id does not match the request id " INT64_FORMAT,
					method, li_rpc_endpoint_label(), id)));
}

/*
 * The response in rpc.resp.data as jsonb.  ERROR (22P02), naming the call,
 * for an empty body, one that is not JSON (an HTML error page, say) or
 * invalid JSON.
 */
static Jsonb *
parse_response(const char *method)
{
	Jsonb	   *doc;
	ErrorContextCallback errcb;
	MemoryContext cxt;

	check_body(method);
	errcb.callback = rpc_error_callback;
	errcb.arg = (void *) method;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	cxt = CurrentMemoryContext;
	PG_TRY();
	{
		doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(rpc.resp.data)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		const char *why;

		/* name the call in the message itself (status shows only that) */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();		/* an interrupt, out of memory, ... */
		FlushErrorState();
		why = edata->detail ? edata->detail : edata->message;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s%s: the response is not valid JSON (%s)", method,
						li_rpc_endpoint_label(), clip(why, strlen(why), 200))));
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;
	return doc;
}

/*
 * Before sending requests: never inside a transaction; after a call that
 * failed on a bad response, another endpoint; the call is open until
 * answered (call_answered).
 */
static void
begin_call(void)
{
	if (IsTransactionState())
		elog(ERROR, "ledger_ingest: network I/O attempted inside a transaction");
	if (rpc.call_open)
		rpc_failover();
	rpc.call_open = true;
}

/* a JSON-RPC 2.0 request object */
static char *
call_json(int64 id, const char *method, const char *params)
{
	return psprintf("{\"jsonrpc\":\"2.0\",\"id\":" INT64_FORMAT ",\"method\":\"%s\",\"params\":%s}",
					id, method, params);
}

/*
 * li_rpc_call_ex -- one JSON-RPC 2.0 request; returns its "result" (never
 * NULL on success; a JSON null result comes back as a jbvNull value).
 *
 * Transport errors and HTTP statuses other than 200 fail over to the next
 * endpoint at once (each endpoint is tried once per call); when all fail,
 * ERRCODE_CONNECTION_FAILURE is raised.  A response that is not a JSON-RPC
 * response raises ERRCODE_INVALID_TEXT_REPRESENTATION, and the next call
 * starts at the next endpoint.  A JSON-RPC error object raises
 * ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, unless "err" is given: then NULL is
 * returned with the error's code and message in *err.  Must not be called
 * inside a transaction.
 */
static bool
send_call(const char *method, const char *params, LiRpcError *err, int64 *id)
{
	begin_call();
	*id = ++rpc.id;
	return send_with_failover(method, call_json(*id, method, params), err, false);
}

/* the call is answered: the endpoint works, an earlier Retry-After is over */
static void
call_answered(void)
{
	rpc.call_open = false;
	rpc.retry_after_ms = 0;
}

/*
 * The "result" of the response in rpc.resp.data to request id (see
 * li_rpc_call_ex), or NULL with *err for a JSON-RPC error object when err
 * is given.
 */
static JsonbValue *
response_result(const char *method, int64 id, LiRpcError *err)
{
	Jsonb	   *doc = parse_response(method);
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(doc) || JB_ROOT_IS_SCALAR(doc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s%s: the response is not a JSON object", method, li_rpc_endpoint_label())));
	v = li_jsonb_get(&doc->root, "id");
	{
		int64		got;

		if (v == NULL || !li_quantity_from_jsonb(v, &got) || got != id)
			bad_id(method, id);
	}
	v = li_jsonb_get(&doc->root, "error");
	if (v != NULL && v->type != jbvNull)
	{
		JsonbValue *code = NULL;
		JsonbValue *msg = NULL;
		int64		c = 0;
		char	   *m;

		if (v->type == jbvBinary)
		{
			code = li_jsonb_get(v->val.binary.data, "code");
			msg = li_jsonb_get(v->val.binary.data, "message");
		}
		if (code && code->type == jbvNumeric)
			(void) li_numeric_to_int64(code->val.numeric, &c);
		m = (msg && msg->type == jbvString) ?
			clip(msg->val.string.val, msg->val.string.len, 500) :
			"(no message)";
		if (err != NULL)
		{
			/* the caller handles it: the endpoint answered properly */
			rpc.call_open = false;
			err->code = c;
			err->message = m;
			return NULL;
		}
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("JSON-RPC %s%s returned error " INT64_FORMAT ": %s", method,
						li_rpc_endpoint_label(), c, m)));
	}
	v = li_jsonb_get(&doc->root, "result");
	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s%s: the response has neither \"result\" nor \"error\"",
						method, li_rpc_endpoint_label())));
	call_answered();
	return v;
}

/*
 * li_rpc_call_ex -- one JSON-RPC 2.0 request; returns its "result" (never
 * NULL on success; a JSON null result comes back as a jbvNull value).
 *
 * Transport errors and HTTP statuses other than 200 fail over to the next
 * endpoint at once (each endpoint is tried once per call); when all fail,
 * ERRCODE_CONNECTION_FAILURE is raised.  A response that is not a JSON-RPC
 * response raises ERRCODE_INVALID_TEXT_REPRESENTATION, and the next call
 * starts at the next endpoint.  A JSON-RPC error object raises
 * ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, unless "err" is given: then NULL is
 * returned with the error's code and message in *err.  Must not be called
 * inside a transaction.
 */
JsonbValue *
li_rpc_call_ex(const char *method, const char *params, LiRpcError *err)
{
	int64		id;

	if (!send_call(method, params, err, &id))
		return NULL;
	return response_result(method, id, err);
}

/*
 * The eth_getLogs answer in rpc.resp to request id, each log to cb (see
 * li_rpc_call_logs).
 */
static bool
logs_answer(const char *method, int64 id, LiRpcError *err, LiLogCallback cb, void *arg)
{
	JsonbValue *v;

	check_body(method);
	switch (li_stream_logs_response(rpc.resp.data, rpc.resp.len, id, cb, arg))
	{
		case LI_STREAM_DONE:
			call_answered();
			return true;
		case LI_STREAM_INVALID:
			(void) parse_response(method);	/* raises jsonb's message */
			elog(ERROR, "JSON-RPC %s: the response is not valid JSON", method);
			break;
		case LI_STREAM_BAD_ID:
			bad_id(method, id);
			break;
		case LI_STREAM_BAD_SHAPE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC %s%s: the response has \"result\" twice, or both \"result\" and \"error\"",
							method, li_rpc_endpoint_label())));
			break;
		case LI_STREAM_ELSEWHERE:
			break;
	}
	v = response_result(method, id, err);
	if (v == NULL)
		return false;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC %s%s: the result is not an array", method, li_rpc_endpoint_label())));
	for (int i = 0; i < (int) JsonContainerSize(v->val.binary.data); i++)
	{
		LiRawLog	raw;

		CHECK_FOR_INTERRUPTS();
		li_raw_log_from_jsonb(getIthJsonbValueFromContainer(v->val.binary.data, i), &raw);
		cb(arg, &raw, i);
	}
	return true;
}

/*
 * li_rpc_call_logs -- li_rpc_call_ex for a call whose result is an array
 * of logs (eth_getLogs): each element goes to cb(arg, log, i) as
 * rpc_stream.c reads it from the response text.  A response that reader
 * leaves to the general path (an error object, a result that is not an
 * array, invalid JSON before the result) takes li_rpc_call_ex's checks and
 * messages.  Returns true when the whole result was read; false with *err
 * as li_rpc_call_ex.  Each check of the general path holds here too: a
 * response whose JSON breaks after some logs, whose id is another, or
 * that has both "result" and "error", raises 22P02 (what cb did is
 * discarded with the caller's fetch).
 */
bool
li_rpc_call_logs(const char *method, const char *params, LiRpcError *err,
				 LiLogCallback cb, void *arg)
{
	int64		id;

	if (!send_call(method, params, err, &id))
		return false;
	return logs_answer(method, id, err, cb, arg);
}

/* the multi handle and transfer i's handle, made on first use */
static RpcTransfer *
transfer(int i)
{
	RpcTransfer *x = &rpc.xfer[i];

	if (rpc.multi == NULL && (rpc.multi = curl_multi_init()) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not create a libcurl multi handle")));
	if (x->easy == NULL)
	{
		x->easy = curl_easy_duphandle(rpc.curl);
		if (x->easy == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not create a libcurl handle")));
		curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, &x->resp);
		curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	}
	return x;
}

/* take every transfer out of the multi handle (also after an error) */
static void
detach_transfers(void)
{
	for (int i = 0; i < LI_RPC_MAX_CONCURRENT; i++)
		if (rpc.xfer[i].added)
		{
			curl_multi_remove_handle(rpc.multi, rpc.xfer[i].easy);
			rpc.xfer[i].added = false;
		}
}

/*
 * Drive the transfers in flight, waiting up to ms milliseconds for one of
 * them; note those that finished.  An interrupt aborts them (progress_cb)
 * and is acted on here.
 */
static void
drive_transfers(int ms)
{
	int			running = 0;
	int			left;
	CURLMsg    *msg;

	curl_multi_perform(rpc.multi, &running);
	if (running > 0 && ms > 0)
	{
		curl_multi_poll(rpc.multi, NULL, 0, ms, NULL);
		curl_multi_perform(rpc.multi, &running);
	}
	while ((msg = curl_multi_info_read(rpc.multi, &left)) != NULL)
		for (int i = 0; i < LI_RPC_MAX_CONCURRENT && msg->msg == CURLMSG_DONE; i++)
			if (rpc.xfer[i].easy == msg->easy_handle)
			{
				rpc.xfer[i].finished = true;
				rpc.xfer[i].rc = msg->data.result;
			}
	CHECK_FOR_INTERRUPTS();
}

/*
 * Start transfer x once the request rate allows (max_requests_per_second
 * holds across the requests in flight), driving those already started
 * while it waits.
 */
static void
start_transfer(RpcTransfer *x)
{
	long		ms;

	while ((ms = rate_limit_wait_ms()) > 0)
		drive_transfers((int) ms);
	if (curl_multi_add_handle(rpc.multi, x->easy) != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start a libcurl transfer")));
	x->added = true;
	rpc.last_request_at = GetCurrentTimestamp();
	drive_transfers(0);
}

/*
 * Read transfer x's eth_getLogs answer as li_rpc_call_logs reads its own
 * (logs_answer, on the client's buffer for the time of the reading).
 */
static bool
read_transfer(const char *method, RpcTransfer *x, LiRpcError *err, LiLogCallback cb, void *arg)
{
	RpcBuffer	own = rpc.resp;
	bool		ok;

	rpc.resp = x->resp;
	PG_TRY();
	{
		ok = logs_answer(method, x->id, err, cb, arg);
	}
	PG_FINALLY();
	{
		x->resp = rpc.resp;
		rpc.resp = own;
	}
	PG_END_TRY();
	return ok;
}

/*
 * li_rpc_call_logs_many -- n calls (at most LI_RPC_MAX_CONCURRENT) like
 * li_rpc_call_logs, params[i] each, all in flight at once (libcurl's
 * multi interface, on the current endpoint, each started when
 * max_requests_per_second allows), then read in order, call i's logs to
 * cb(args[i], ...).  Returns how many were read in full from the first;
 * the next one, if any, failed with errs[] set as li_rpc_call_logs sets
 * *err (a JSON-RPC error object, or code 0 for a response over
 * max_response_bytes), and the later ones are not read.  A request that
 * failed in flight (a transport error, an HTTP status) is sent again
 * alone, through li_rpc_call_logs and its failover, and raises as it
 * does.  Never inside a transaction.
 */
int
li_rpc_call_logs_many(const char *method, char *const *params, int n, LiRpcError *errs,
					  LiLogCallback cb, void *const *args)
{
	Assert(n >= 1 && n <= LI_RPC_MAX_CONCURRENT);
	if (n == 1)
		return li_rpc_call_logs(method, params[0], &errs[0], cb, args[0]) ? 1 : 0;
	begin_call();
	for (int i = 0; i < n; i++)
	{
		RpcTransfer *x = transfer(i);

		x->id = ++rpc.id;
		x->body = call_json(x->id, method, params[i]);
		set_endpoint(x->easy);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
		x->resp.len = 0;
		x->resp.overflow = false;
		x->resp.limit = rpc.resp.limit;
		x->errbuf[0] = '\0';
		x->finished = false;
	}
	detach_transfers();
	PG_TRY();
	{
		bool		all;

		for (int i = 0; i < n; i++)
			start_transfer(&rpc.xfer[i]);
		do
		{
			all = true;
			for (int i = 0; i < n; i++)
				all &= rpc.xfer[i].finished;
			if (!all)
				drive_transfers(100);
		} while (!all);
	}
	PG_FINALLY();
	{
		detach_transfers();
	}
	PG_END_TRY();
	for (int i = 0; i < n; i++)
	{
		RpcTransfer *x = &rpc.xfer[i];
		long		status = 0;
		bool		ok;

		CHECK_FOR_INTERRUPTS();
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (x->rc == CURLE_OK && status == 200)
			ok = read_transfer(method, x, &errs[i], cb, args[i]);
		else if (x->resp.overflow)
		{
			errs[i].code = 0;
			errs[i].message = psprintf("JSON-RPC %s%s: response larger than max_response_bytes (" INT64_FORMAT ")",
									   method, li_rpc_endpoint_label(), rpc.opts->max_response_bytes);
			ok = false;
		}
		else
		{
			/* failed in flight: once more alone, with failover and its errors */
			ereport(LOG,
					(errmsg("ledger_ingest: JSON-RPC %s%s failed in flight (%s); sending it again alone",
							method, li_rpc_endpoint_label(),
							x->rc != CURLE_OK ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->rc)) :
							psprintf("HTTP status %ld", status))));
			ok = li_rpc_call_logs(method, params[i], &errs[i], cb, args[i]);
		}
		pfree(x->body);
		x->body = NULL;
		if (!ok)
			return i;
	}
	return n;
}

/*
 * From now on, send at most cap calls per batch (1: none), for the life
 * of the process: the node said why in "why".
 */
static void
batch_shrink(int cap, const char *method, int sent, const char *why)
{
	cap = Max(cap, 1);
	if (cap >= rpc.batch_cap)
		return;
	rpc.batch_cap = cap;
	ereport(LOG,
			(errmsg("ledger_ingest: JSON-RPC %s%s: a batch of %d calls was not answered in full (%s); %s",
					method, li_rpc_endpoint_label(), sent, why,
					cap > 1 ? psprintf("sending at most %d calls per batch from now on", cap) :
					"sending calls one by one from now on")));
}

/* the "message" of a JSON-RPC error object v, or "(no message)" */
static char *
error_message(JsonbValue *v)
{
	JsonbValue *msg = NULL;

	if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
		msg = li_jsonb_get(v->val.binary.data, "message");
	if (msg && msg->type == jbvString)
		return clip(msg->val.string.val, msg->val.string.len, 200);
	return "(no message)";
}

/*
 * One batch: calls idx[0..k) of li_rpc_call_batch.  Each answered call's
 * result goes to results[] and done[] is set; returns how many.  The
 * batch limits the node shows lower rpc.batch_cap (batch_shrink); the
 * calls it answered with another error are sent again alone.
 */
static int
send_batch(const char *method, char *const *params, const int *idx, int k,
		   JsonbValue **results, bool *done)
{
	StringInfoData body;
	int64		first = rpc.id + 1;
	LiRpcError	err;
	Jsonb	   *doc;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool	   *failed = palloc0(sizeof(bool) * k);
	int			answered = 0;
	int			nfailed = 0;
	char	   *capped = NULL;

	begin_call();
	initStringInfo(&body);
	appendStringInfoChar(&body, '[');
	for (int j = 0; j < k; j++)
	{
		++rpc.id;
		appendStringInfo(&body, "%s%s", j > 0 ? "," : "", call_json(rpc.id, method, params[idx[j]]));
	}
	appendStringInfoChar(&body, ']');
	if (!send_with_failover(method, body.data, &err, true))
	{
		batch_shrink(err.code == 0 ? k / 2 : 1, method, k, err.message);
		return 0;
	}
	doc = parse_response(method);
	if (!JB_ROOT_IS_ARRAY(doc) || JB_ROOT_IS_SCALAR(doc))
	{
		JsonbValue *e = JB_ROOT_IS_OBJECT(doc) ? li_jsonb_get(&doc->root, "error") : NULL;

		/* one error object for the whole batch: the node takes no batches */
		if (e == NULL || e->type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC %s%s: the response to a batch is neither an array nor an error",
							method, li_rpc_endpoint_label())));
		rpc.call_open = false;
		batch_shrink(1, method, k, error_message(e));
		return 0;
	}
	it = JsonbIteratorInit(&doc->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbValue *idv;
		JsonbValue *e;
		JsonbValue *r;
		int64		id;
		int			j;

		CHECK_FOR_INTERRUPTS();
		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC %s%s: an answer in a batch is not a JSON object",
							method, li_rpc_endpoint_label())));
		idv = li_jsonb_get(v.val.binary.data, "id");
		e = li_jsonb_get(v.val.binary.data, "error");
		if (e != NULL && e->type != jbvNull &&
			(idv == NULL || idv->type == jbvNull || strcasestr(error_message(e), "batch")))
		{
			/* about the batch, not about a call (geth: "batch too large") */
			capped = error_message(e);
			continue;
		}
		if (idv == NULL || !li_quantity_from_jsonb(idv, &id) ||
			id < first || id >= first + k || done[idx[id - first]] || failed[id - first])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC %s%s: an answer in a batch has an id that was not asked for, or answered twice",
							method, li_rpc_endpoint_label())));
		j = (int) (id - first);
		if (e != NULL && e->type != jbvNull)
		{
			failed[j] = true;
			nfailed++;
			continue;
		}
		r = li_jsonb_get(v.val.binary.data, "result");
		if (r == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC %s%s: an answer in a batch has neither \"result\" nor \"error\"",
							method, li_rpc_endpoint_label())));
		results[idx[j]] = r;
		done[idx[j]] = true;
		answered++;
	}
	call_answered();
	if (capped != NULL || answered + nfailed < k)
		batch_shrink(answered > 0 ? answered : k / 2, method, k,
					 capped ? capped : psprintf("%d answers missing", k - answered - nfailed));
	for (int j = 0; j < k; j++)
		if (failed[j])
		{
			/* raises the node's error if it gives it again */
			results[idx[j]] = li_rpc_call(method, params[idx[j]]);
			done[idx[j]] = true;
			answered++;
		}
	return answered;
}

/*
 * li_rpc_call_batch -- n calls of one method, params[i] each, as JSON-RPC
 * 2.0 batches (https://www.jsonrpc.org/specification#batch) of at most
 * rpc_batch_size calls per HTTP request; results[i] gets call i's result
 * as li_rpc_call returns it.  Answers are matched by id, in whatever order
 * they come.  A node that refuses batches (one error object for the whole
 * batch; an HTTP 4xx other than 408 or 429) or limits them (an error that
 * names the batch, as geth's "batch too large"; answers missing; a
 * response over max_response_bytes) gets smaller batches, down to single
 * calls, for the life of the process (logged once per change), and the
 * calls it did not answer are sent again.  A call answered with any other
 * error is sent again alone, and raises as li_rpc_call does.  ERROR
 * (22P02) for an answer that is not an object or has an id not asked for.
 * Never inside a transaction.
 */
void
li_rpc_call_batch(const char *method, char *const *params, int n, JsonbValue **results)
{
	bool	   *done = palloc0(sizeof(bool) * Max(n, 1));
	int		   *idx = palloc(sizeof(int) * Max(n, 1));
	int			left = n;

	while (left > 0)
	{
		int			cap = Min(rpc.batch_cap, rpc.opts->rpc_batch_size);
		int			k = 0;

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < n && k < cap; i++)
			if (!done[i])
				idx[k++] = i;
		if (k == 1)
		{
			results[idx[0]] = li_rpc_call(method, params[idx[0]]);
			done[idx[0]] = true;
			left--;
			continue;
		}
		left -= send_batch(method, params, idx, k, results, done);
	}
	pfree(done);
	pfree(idx);
}

/* li_rpc_call_ex that raises every JSON-RPC error object */
JsonbValue *
li_rpc_call(const char *method, const char *params)
{
	return li_rpc_call_ex(method, params, NULL);
}
