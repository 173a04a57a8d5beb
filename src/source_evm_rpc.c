/*-------------------------------------------------------------------------
 *
 * source_evm_rpc.c
 *	  The evm_rpc source: Ethereum blocks and logs over JSON-RPC.
 *
 * Each fetch, with no transaction open:
 *	1. eth_blockNumber: the head (published to status.head); the pipeline
 *	   applies up to head - confirmations (and to_block); a fetcher reuses
 *	   it for a few seconds while its ranges end below that point;
 *	2. eth_getLogs over [next, end], at most block_range blocks (more over
 *	   sparse final blocks: grow_sparse_range; fewer when the node says
 *	   the range is too large: fetch_logs), with the pipeline's address
 *	   and topics filters;
 *	3. eth_getBlockByNumber(n, false), in JSON-RPC batches of up to
 *	   rpc_batch_size calls, for the first and last block of the
 *	   range and for every block with matching logs above the final floor
 *	   (final_floor: head - reorg_window, or the finality tag's block); a
 *	   final block with logs is built from its logs alone (their blockHash
 *	   and blockTimestamp), unless a log lacks blockTimestamp; a range that
 *	   is all final needs only the header of its last block, when that
 *	   block has no logs (nothing below the floor can change, so there is
 *	   no continuity to check: the range's first block and the end's header
 *	   before eth_getLogs are skipped);
 *	4. each of those blocks becomes a ledger document (header fields plus
 *	   its logs) and goes through the same parser and checks as an inbox
 *	   document: a log whose blockHash disagrees with the block means the
 *	   chain moved between the calls, and the fetch is retried;
 *	5. with "transactions": every block of the range, with full
 *	   transaction objects (eth_getBlockByNumber(n, true)); the
 *	   transactions kept are those that emitted a matching log or are to
 *	   one of the "addresses" (all without it); with "receipts", the kept
 *	   ones' receipts (eth_getBlockReceipts per block, or
 *	   eth_getTransactionReceipt per transaction on a node without it),
 *	   each checked to be of its block and transaction.
 * Blocks in the range without matching logs are not applied, but the cursor
 * moves past them (it ends at the range's last block, whose header is
 * recorded, so parentHash continuity is checked at every range boundary).
 *
 * Formats follow the Ethereum JSON-RPC specification (ethereum.org,
 * "JSON-RPC API"; execution-apis eth_getLogs, eth_getBlockByNumber).
 *
 * The calls go through the worker's JSON-RPC client (rpc_client.c:
 * libcurl, endpoints and failover, rate limit, response checks).
 *
 * Faults: transport errors and HTTP error statuses fail over to the next
 * URL at once; a bad response moves the next call to the next URL; a
 * Retry-After (429, 503) is passed to the worker's backoff; eth_getLogs
 * range limits shrink the range (fetch_logs).  Everything else is an error
 * for the worker to retry: nothing from a response that fails a check is
 * applied.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "rpc_client.h"
#include "source.h"
#include "xact.h"

/* eth_getLogs range, adapted to the node's limits (see fetch_logs) */
static int	logs_range = 0;
static int	logs_range_max = 0;
static int	logs_successes = 0; /* in a row, since the range last changed */

#define LOGS_GROW_AFTER 10		/* successes before the range grows */
#define LOGS_SPARSE 1000		/* a final range with fewer logs doubles ... */
#define LOGS_RANGE_GROWTH 10	/* ... up to this many times block_range */

/* the smallest eth_getLogs span the node refused as too large, 0: none */
static int64 logs_refused = 0;

static int64 final_floor(LiPipeline *p);
static void add_log(void *arg, const LiRawLog *raw, int i);

/* highest head seen, to notice a node whose head goes back */
static int64 last_head = -1;

/*
 * A fetcher (prefetch.c: options fixed for its life) reuses the safe ledger
 * and final floor of its last eth_blockNumber for up to HEAD_REUSE_MS
 * while its ranges end below that safe ledger: a backfill asks for the
 * head every few seconds, not for every range.
 */
#define HEAD_REUSE_MS 5000
static bool reuse_head = false;
static int64 known_safe = -1;
static int64 known_floor = -1;
static TimestampTz head_read_at = 0;

/*
 * The last ledger at which a range fetched together with earlier ones may
 * start (li_rpc_limit_ranges: the fetcher's fetch_ahead_ledgers).
 */
static int64 range_start_limit = PG_INT64_MAX;

/*
 * Apply the pipeline's current options to the client, and reset the
 * eth_getLogs range when block_range changed.
 */
static void
rpc_configure(LiPipeline *p)
{
	li_rpc_client_configure(&p->opts);
	if (logs_range_max != p->opts.block_range)
	{
		logs_range = logs_range_max = p->opts.block_range;
		logs_refused = 0;
	}
}

/*
 * li_rpc_init -- the worker's JSON-RPC client (rpc_client.c), configured
 * for pipeline p.
 */
void
li_rpc_init(LiPipeline *p)
{
	li_rpc_client_init();
	rpc_configure(p);
}

/*
 * li_rpc_reuse_head -- let li_rpc_fetch reuse the head it read for up to
 * HEAD_REUSE_MS while its ranges end below the safe ledger of that head;
 * only for a process whose pipeline options cannot change (a fetcher).
 */
void
li_rpc_reuse_head(void)
{
	reuse_head = true;
}

/*
 * li_rpc_limit_ranges -- ranges fetched together with earlier ones
 * (max_concurrent_requests) start at or before ledger limit.
 */
void
li_rpc_limit_ranges(int64 limit)
{
	range_start_limit = limit;
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

/* The logs of one block in an eth_getLogs answer, parsed. */
typedef struct BlockLogs
{
	int64		number;
	LiEvent    *events;			/* its logs, in the order of the answer */
	int			nlogs;
	int			cap;
	bool		has_hash;		/* some log has a blockHash: */
	uint8		hash[LI_HASH_LEN];	/* that of log hash_log (all agree) */
	int			hash_log;
	char	   *time;			/* its first log's blockTimestamp (string), or NULL */
	bool		all_timed;		/* every log of it has a blockTimestamp */
} BlockLogs;

/* An eth_getLogs answer over [next, end], grouped by block as it is read. */
typedef struct RangeLogs
{
	int64		next;
	int64		end;
	bool		final;			/* end is at or below the final floor */
	BlockLogs  *blocks;			/* in the order their blocks first appear */
	int			nblocks;
	int			cap;
	int			nlogs;
} RangeLogs;

/*
 * eth_getBlockByNumber's params for block n, with full transaction objects
 * when the pipeline asks for "transactions"
 */
static char *
header_params(int64 n, bool full)
{
	return psprintf("[%s,%s]", hexq(n), full ? "true" : "false");
}

/* eth_getBlockReceipts is missing on the node: eth_getTransactionReceipt instead */
static bool no_block_receipts = false;

/* is to one of the "0x" strings of jsonb array a? */
static bool
to_one_of(JsonbContainer *a, const uint8 *to)
{
	for (int k = 0; a != NULL && k < (int) JsonContainerSize(a); k++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(a, k);
		uint8		addr[LI_ADDRESS_LEN];

		li_hex_to_bytes("addresses", v->val.string.val, v->val.string.len, addr, LI_ADDRESS_LEN);
		if (memcmp(addr, to, LI_ADDRESS_LEN) == 0)
			return true;
	}
	return false;
}

/*
 * Keep the transactions of out that emitted one of its logs or are to one
 * of the options' "addresses" or of the transaction handlers' (all of them
 * without "addresses", as with factories, whose children only the worker
 * knows: li_factories_filter).
 */
static void
keep_transactions(LiPipeline *p, LiLedger *out)
{
	JsonbContainer *a = p->opts.addresses ? &p->opts.addresses->root : NULL;
	JsonbContainer *h = p->opts.tx_addresses ? &p->opts.tx_addresses->root : NULL;
	int			kept = 0;
	int			ev = 0;

	if (a == NULL)
		return;
	for (int i = 0; i < out->ntxs; i++)
	{
		LiTx	   *t = &out->txs[i];
		bool		keep;

		while (ev < out->nevents && out->events[ev].tx_index < t->tx_index)
			ev++;
		keep = (ev < out->nevents && out->events[ev].tx_index == t->tx_index) ||
			((t->has & LI_TX_HAS_TO) && (to_one_of(a, t->to) || to_one_of(h, t->to)));
		if (keep)
			out->txs[kept++] = *t;
	}
	out->ntxs = kept;
}

/*
 * Block n's ledger from r, the node's eth_getBlockByNumber result for it,
 * and the block's logs b (NULL: none).  A node without block n (a null
 * result) is an error; so are logs whose blockHash is not the header's.
 */
static void
header_ledger(LiPipeline *p, int64 n, JsonbValue *r, BlockLogs *b, LiLedger *out)
{
	if (r->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getBlockByNumber: block " INT64_FORMAT " is not available", n),
				 errhint("The node may be syncing or behind another node.")));
	if (r->type != jbvBinary || !JsonContainerIsObject(r->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getBlockByNumber: the result for block " INT64_FORMAT " is not an object", n)));
	li_parse_ledger_header(r->val.binary.data, out);
	if (out->number != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getBlockByNumber: asked for block " INT64_FORMAT ", got block " INT64_FORMAT,
						n, out->number)));
	if (b != NULL)
	{
		if (b->has_hash && memcmp(b->hash, out->hash, LI_HASH_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ledger document: field \"logs[%d].blockHash\" does not match the ledger hash",
							b->hash_log)));
		li_ledger_set_events(out, b->events, b->nlogs);
	}
	if (p != NULL && p->opts.transactions)
	{
		li_parse_transactions(li_jsonb_get(r->val.binary.data, "transactions"), out);
		keep_transactions(p, out);
	}
}

/* Fetch block n's header: header_ledger of one eth_getBlockByNumber. */
static void
fetch_ledger(int64 n, BlockLogs *b, LiLedger *out)
{
	header_ledger(NULL, n, li_rpc_call("eth_getBlockByNumber", header_params(n, false)), b, out);
}

/*
 * The headers of blocks numbers[0..n) (eth_getBlockByNumber results, in
 * that order), fetched in JSON-RPC batches (li_rpc_call_batch).
 */
static JsonbValue **
fetch_headers(const int64 *numbers, int n, bool full)
{
	char	  **params = palloc(sizeof(char *) * Max(n, 1));
	JsonbValue **results = palloc0(sizeof(JsonbValue *) * Max(n, 1));

	for (int i = 0; i < n; i++)
		params[i] = header_params(numbers[i], full);
	li_rpc_call_batch("eth_getBlockByNumber", params, n, results);
	return results;
}

/*
 * Does this eth_getLogs error message say the query was too large (too
 * many logs, too wide a block range, too large a response)?  Providers use
 * different codes for these (-32005, -32602, -32000, -32603, ...), and
 * some of those codes also mean "rate limited", so the message decides,
 * not the code.  The phrases are the ones real providers send (geth,
 * Erigon, Infura, Alchemy, QuickNode, Ankr, BlastAPI, Chainstack).
 */
static bool
logs_error_is_range(const char *message)
{
	static const char *const not_range[] = {
		"rate limit", "request count", "too many requests", "requests per second",
		"compute units", "capacity", "credits", "quota"
	};
	static const char *const range[] = {
		"query returned more than", "more than 10000 results", "block range",
		"range too large", "range is too large", "range too wide", "exceeds max results",
		"exceed max results", "exceeds the max", "max results", "response size exceeded",
		"response size should not", "log response size", "response is too big",
		"too many logs", "too many results", "result set too large", "limit exceeded",
		"logs over", "query timeout", "returned too many", "larger than max_response_bytes"
	};
	char	   *m = asc_tolower(message, strlen(message));

	for (size_t i = 0; i < lengthof(not_range); i++)
		if (strstr(m, not_range[i]) != NULL)
			return false;
	for (size_t i = 0; i < lengthof(range); i++)
		if (strstr(m, range[i]) != NULL)
			return true;
	return false;
}

/* parse "0x..." at *s (advancing it); false when there is none */
static bool
scan_hex_quantity(const char **s, int64 *out)
{
	const char *p = *s;
	uint64		v = 0;
	int			n = 0;

	if (p[0] != '0' || (p[1] != 'x' && p[1] != 'X'))
		return false;
	for (p += 2; isxdigit((unsigned char) *p); p++, n++)
	{
		if (n >= 15)
			return false;
		v = (v << 4) | (uint64) (isdigit((unsigned char) *p) ? *p - '0' :
								 (tolower((unsigned char) *p) - 'a' + 10));
	}
	if (n == 0)
		return false;
	*s = p;
	*out = (int64) v;
	return true;
}

/*
 * A block range an error message suggests, as Infura ("Try with this block
 * range [0x1, 0x2]") and Alchemy ("this block range should work: [0x1,
 * 0x2]") send it; false when there is none.
 */
static bool
logs_error_suggestion(const char *message, int64 *from, int64 *to)
{
	for (const char *b = strchr(message, '['); b != NULL; b = strchr(b + 1, '['))
	{
		const char *p = b + 1;

		while (*p == ' ')
			p++;
		if (!scan_hex_quantity(&p, from))
			continue;
		while (*p == ' ' || *p == ',')
			p++;
		if (scan_hex_quantity(&p, to) && *to >= *from)
			return true;
	}
	return false;
}

/*
 * After a full-size eth_getLogs over final blocks that returned fewer than
 * LOGS_SPARSE logs, ask for twice as many blocks next time, up to
 * LOGS_RANGE_GROWTH times block_range and below the smallest span the node
 * refused: a sparse filter covers thousands of blocks per request, a dense
 * one keeps block_range.  Near the head ranges do not grow: the headers of
 * their blocks with logs are fetched one by one anyway.
 */
static void
grow_sparse_range(LiPipeline *p, int64 to, int64 span, int nlogs)
{
	int64		grown;

	if (to > final_floor(p) || span < logs_range || nlogs >= LOGS_SPARSE)
		return;
	grown = Min((int64) logs_range * 2, (int64) p->opts.block_range * LOGS_RANGE_GROWTH);
	if (logs_refused > 0)
		grown = Min(grown, logs_refused - 1);
	if (grown > logs_range)
		logs_range = (int) grown;
}

/* eth_getLogs's params over [from, to] with the pipeline's filters */
static char *
logs_filter(LiPipeline *p, int64 from, int64 to)
{
	StringInfoData filter;

	initStringInfo(&filter);
	appendStringInfo(&filter, "[{\"fromBlock\":%s,\"toBlock\":%s", hexq(from), hexq(to));
	if (p->opts.addresses)
		appendStringInfo(&filter, ",\"address\":%s",
						 JsonbToCString(NULL, &p->opts.addresses->root, VARSIZE(p->opts.addresses)));
	if (p->opts.topics)
		appendStringInfo(&filter, ",\"topics\":%s",
						 JsonbToCString(NULL, &p->opts.topics->root, VARSIZE(p->opts.topics)));
	appendStringInfoString(&filter, "}]");
	return filter.data;
}

/*
 * An eth_getLogs over range answered in full: after LOGS_GROW_AFTER
 * successes in a row the range grows back by a quarter, up to
 * block_range; a sparse final range grows beyond it (grow_sparse_range).
 */
static void
logs_succeeded(LiPipeline *p, const RangeLogs *range)
{
	if (logs_range < logs_range_max && ++logs_successes >= LOGS_GROW_AFTER)
	{
		logs_range = (int) Min((int64) logs_range_max, (int64) logs_range + Max(1, logs_range / 4));
		logs_successes = 0;
	}
	grow_sparse_range(p, range->end, range->end - range->next + 1, range->nlogs);
}

/*
 * An eth_getLogs over range answered by err: when the node says the query
 * is too large, shrink logs_range (to the range the message suggests,
 * else by half) for the caller to retry; any other JSON-RPC error is
 * raised, and so is a range error for a single block.
 */
static void
logs_failed(LiPipeline *p, const RangeLogs *range, const LiRpcError *err)
{
	int64		from = range->next;
	int64		to = range->end;
	int64		sfrom;
	int64		sto;
	int64		span = to - from + 1;
	int64		shrunk;

	logs_successes = 0;
	logs_refused = logs_refused == 0 ? span : Min(logs_refused, span);
	if (!logs_error_is_range(err->message) || span <= 1)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("JSON-RPC eth_getLogs%s returned error " INT64_FORMAT ": %s",
						li_rpc_endpoint_label(), err->code, err->message),
				 span <= 1 ? errdetail("The query already covers a single block (" INT64_FORMAT ").", from) : 0));
	if (logs_error_suggestion(err->message, &sfrom, &sto) && sfrom == from && sto < to)
		shrunk = sto - sfrom + 1;
	else
		shrunk = span / 2;
	logs_range = (int) Max(1, Min(shrunk, span - 1));
	ereport(LOG,
			(errmsg("ledger_ingest pipeline \"%s\": eth_getLogs over %lld blocks is too large for the node; trying %d",
					p->name, (long long) span, logs_range),
			 errdetail("The node answered error " INT64_FORMAT ": %s", err->code, err->message)));
}

/*
 * fetch_logs -- eth_getLogs over [range->next, range->end] with the
 * pipeline's filters, its logs grouped into range (add_log).  Returns
 * true (logs_succeeded), or false after shrinking logs_range when the
 * node says the query is too large (logs_failed; the caller retries with
 * the new range).
 */
static bool
fetch_logs(LiPipeline *p, RangeLogs *range)
{
	LiRpcError	err;

	range->nblocks = range->nlogs = 0;
	if (li_rpc_call_logs("eth_getLogs", logs_filter(p, range->next, range->end), &err, add_log, range))
	{
		logs_succeeded(p, range);
		return true;
	}
	logs_failed(p, range, &err);
	return false;
}

/*
 * eth_blockNumber: the node's head, published to status.head.  A head
 * lower than one seen before is an error once (a node behind another
 * behind a load balancer, or syncing); then it is followed.
 */
static int64
read_head(LiPipeline *p)
{
	JsonbValue *r;
	int64		head;

	r = li_rpc_call("eth_blockNumber", "[]");
	head = result_quantity(r, "eth_blockNumber");
	if (head < last_head)
	{
		/*
		 * A node that is behind (or another endpoint behind a load
		 * balancer): say so once, then follow it; nothing above its head is
		 * fetched, and a replaced block is found by the hash checks.
		 */
		int64		was = last_head;

		last_head = head;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_blockNumber%s: the head went back from " INT64_FORMAT " to " INT64_FORMAT,
						li_rpc_endpoint_label(), was, head),
				 errhint("The node may be syncing or behind another node.")));
	}
	last_head = head;
	SpinLockAcquire(&p->slot->mutex);
	p->slot->head = head;
	SpinLockRelease(&p->slot->mutex);
	return head;
}

/*
 * The newest ledger the pipeline may apply: head - confirmations with
 * finality "latest", else the node's "safe" or "finalized" block (-1 when
 * it has none); at most to_block.  Sets p->journal_floor, below which no
 * reorg is expected.
 */
static int64
safe_ledger(LiPipeline *p, int64 head)
{
	JsonbValue *r;
	int64		safe;

	if (strcmp(p->opts.finality, "latest") == 0)
	{
		safe = head - p->opts.confirmations;
		/* ledgers above this one may still be reorganized: journal them */
		p->journal_floor = head - p->opts.reorg_window;
	}
	else
	{
		/* apply only what the node calls safe or finalized */
		r = li_rpc_call("eth_getBlockByNumber", psprintf("[\"%s\",false]", p->opts.finality));
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
	return safe;
}

/*
 * At the head: is the cursor's ledger still canonical?  A reorg that keeps
 * the height is seen this way; batch->reorg says so.  A node with a lower
 * head is not asked; one that has no block at a height below its head is
 * inconsistent (an error, retried), not a reorg.
 */
static void
check_cursor_canonical(LiPipeline *p, int64 head, LiBatch *batch)
{
	if (p->has_cursor_hash && p->cursor.complete && p->cursor.ledger >= 0 &&
		p->cursor.ledger <= head)
	{
		LiLedger	l;

		fetch_ledger(p->cursor.ledger, NULL, &l);
		if (memcmp(l.hash, p->cursor_hash, LI_HASH_LEN) != 0)
		{
			batch->reorg = true;
			batch->reorg_error = psprintf("reorg at ledger " INT64_FORMAT ": its hash changed from %s to %s",
										  l.number, li_bytes_to_hex(p->cursor_hash, LI_HASH_LEN),
										  li_bytes_to_hex(l.hash, LI_HASH_LEN));
		}
	}
}

/*
 * add_log -- log i of an eth_getLogs answer (an LiLogCallback), into its
 * block's logs in range, parsed and checked as in a ledger document: a
 * log's index in messages is its index among its block's logs, as in
 * that block's document.  ERROR for a log without a valid blockNumber or
 * outside [next, end].
 */
static void
add_log(void *arg, const LiRawLog *raw, int i)
{
	RangeLogs  *range = arg;
	const JsonbValue *tv = li_raw_log_get(raw, LI_LOG_BLOCK_TIMESTAMP);
	bool		timed = tv != NULL && tv->type == jbvString;
	int64		bn;
	BlockLogs  *b = NULL;
	int			k;

	if (!raw->is_object ||
		!li_quantity_from_jsonb((JsonbValue *) li_raw_log_get(raw, LI_LOG_BLOCK_NUMBER), &bn))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getLogs: log %d has no valid blockNumber", i)));
	if (bn < range->next || bn > range->end)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getLogs: log %d is from block " INT64_FORMAT ", outside the requested range " INT64_FORMAT "-" INT64_FORMAT,
						i, bn, range->next, range->end)));
	/* nodes answer in block order: the block is nearly always the last */
	for (int j = range->nblocks - 1; j >= 0 && b == NULL; j--)
		if (range->blocks[j].number == bn)
			b = &range->blocks[j];
	if (b == NULL)
	{
		if (range->nblocks == range->cap)
		{
			range->cap = Max(range->cap * 2, 16);
			range->blocks = range->blocks == NULL ? palloc(sizeof(BlockLogs) * range->cap) :
				repalloc(range->blocks, sizeof(BlockLogs) * range->cap);
		}
		b = &range->blocks[range->nblocks++];
		memset(b, 0, sizeof(BlockLogs));
		b->number = bn;
		b->time = timed ? pnstrdup(tv->val.string.val, tv->val.string.len) : NULL;
		b->all_timed = timed;
	}
	b->all_timed &= timed;
	k = b->nlogs;
	if (!b->has_hash)
	{
		b->has_hash = li_log_block_hash(raw, k, b->hash);
		b->hash_log = k;
	}
	li_check_log_block(raw, k, bn, b->has_hash ? b->hash : NULL);
	if (k == b->cap)
	{
		b->cap = Max(b->cap * 2, 16);
		b->events = b->events == NULL ? palloc(sizeof(LiEvent) * b->cap) :
			repalloc(b->events, sizeof(LiEvent) * b->cap);
	}
	memset(&b->events[k], 0, sizeof(LiEvent));
	li_parse_log(raw, k, &b->events[k]);
	b->nlogs++;
	range->nlogs++;
}

/*
 * The blocks of one eth_getLogs range: logs_range; with "transactions",
 * every block of a range is fetched whole, so at most rpc_batch_size (one
 * JSON-RPC batch of full blocks held at once).
 */
static int
range_span(LiPipeline *p)
{
	return p->opts.transactions ? Max(1, Min(logs_range, p->opts.rpc_batch_size)) : logs_range;
}

/*
 * eth_getLogs over [next, end], end = min(next + logs_range - 1, safe),
 * with the range shrunk while the node says it is too large (see
 * fetch_logs), its logs grouped into *range.  Before it, unless the range
 * is final (no block of it can change any more), the hash of the range's
 * last block, in end_hash: if it differs afterwards, the chain moved
 * between the calls (a block without matching logs in our eth_getLogs
 * answer may have been replaced by one with some), and the range is
 * fetched again.
 */
static void
fetch_range_logs(LiPipeline *p, int64 next, int64 safe, RangeLogs *range, uint8 *end_hash)
{
	memset(range, 0, sizeof(RangeLogs));
	range->next = next;
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		range->end = Min(next + range_span(p) - 1, safe);
		range->final = range->end <= final_floor(p);
		if (!range->final)
		{
			LiLedger	endl;

			fetch_ledger(range->end, NULL, &endl);
			memcpy(end_hash, endl.hash, LI_HASH_LEN);
		}
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("ledger_ingest %s: eth_getLogs " INT64_FORMAT "-" INT64_FORMAT,
										p->name, next, range->end));
		if (fetch_logs(p, range))
			break;
	}
}

/*
 * The blocks to fetch of range [next, end], sorted, each once: the last,
 * every block with logs, the first unless the range is final (its
 * parentHash ties the range to the cursor; below the final floor there is
 * nothing to tie), and the multiples of the block handlers' block_every.
 * Returns how many.
 */
static int
blocks_to_fetch(LiPipeline *p, const RangeLogs *range, int64 **numbers_out)
{
	int64		next = range->next;
	int64		end = range->end;
	int64		every = p->opts.block_every;
	int64		nmult = every > 0 ? end / every - (next + every - 1) / every + 1 : 0;
	int64	   *numbers = palloc(sizeof(int64) * (range->nblocks + 2 + Max(nmult, 0)));
	int			n = 0;

	if (p->opts.transactions)
	{
		/* a transaction to a followed address may be in any block */
		numbers = repalloc(numbers, sizeof(int64) * (end - next + 1));
		for (int64 b = next; b <= end; b++)
			numbers[n++] = b;
		*numbers_out = numbers;
		return n;
	}
	numbers[n++] = end;
	if (next != end && !range->final)
		numbers[n++] = next;
	for (int j = 0; j < range->nblocks; j++)
		if (range->blocks[j].number != end &&
			(range->final || range->blocks[j].number != next))
			numbers[n++] = range->blocks[j].number;
	if (every > 0)
		for (int64 m = (next + every - 1) / every * every; m <= end; m += every)
			numbers[n++] = m;
	*numbers_out = numbers;
	return li_sort_unique(numbers, n);
}

/*
 * The newest block that can no longer be reorganized, as far as this
 * pipeline is concerned: with finality "latest", head - reorg_window
 * (journal_floor, set by safe_ledger this fetch), none when reorg_window is
 * 0 (every fork must be seen, and fail); with "safe" or "finalized", the
 * node's block of that tag.
 */
static int64
final_floor(LiPipeline *p)
{
	if (strcmp(p->opts.finality, "latest") == 0 && p->opts.reorg_window == 0)
		return -1;
	return p->journal_floor;
}

/*
 * A final block's ledger from its logs alone: number, blockHash and
 * blockTimestamp, which every log carries (eth_getLogs on geth, reth,
 * erigon, anvil), and no parentHash: no continuity to check below the
 * final floor.  The logs go through the same parser and checks as any
 * ledger document (a log with another blockHash fails it).
 */
static void
ledger_from_logs(BlockLogs *b, LiLedger *out)
{
	Jsonb	   *header;
	StringInfoData text;

	initStringInfo(&text);
	appendStringInfo(&text, "{\"number\":%s,\"hash\":\"%s\",\"timestamp\":",
					 hexq(b->number), li_bytes_to_hex(b->hash, LI_HASH_LEN));
	escape_json(&text, b->time);
	appendStringInfoChar(&text, '}');
	header = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text.data)));
	li_parse_ledger_header(&header->root, out);
	li_ledger_set_events(out, b->events, b->nlogs);
}

/* range's logs of block number, NULL if it has none */
static BlockLogs *
block_logs(RangeLogs *range, int64 number)
{
	for (int j = 0; j < range->nblocks; j++)
		if (range->blocks[j].number == number)
			return &range->blocks[j];
	return NULL;
}

/*
 * Is block number of the range built from its logs alone (ledger_from_logs)?
 * A final block with logs that all carry blockTimestamp is, unless it is
 * an end of a range that is not all final.
 */
static bool
from_logs(LiPipeline *p, RangeLogs *range, int64 number)
{
	BlockLogs  *b = block_logs(range, number);

	/* the transactions are in the header only */
	if (p->opts.transactions)
		return false;
	return b != NULL && b->has_hash && b->all_timed &&
		(range->final || (number != range->end && number != range->next &&
						  number <= final_floor(p)));
}

/*
 * Block "number" of range [next, end] with its logs into the batch if it
 * attaches to the batch's last ledger (or to the cursor): built from its
 * logs (from_logs), or from its header, which the caller fetched into
 * header (eth_getBlockByNumber), whose parentHash is checked.  Returns
 * false, ending the batch, when it does not attach: at the cursor a reorg
 * (for the fork-point walk); between two fetched blocks the chain moved
 * during the fetch (the consistent prefix is kept; the next cycle looks
 * again).
 */
static bool
add_block(LiPipeline *p, LiBatch *batch, int64 number, RangeLogs *range,
		  const uint8 *end_hash, JsonbValue *header)
{
	BlockLogs  *b = block_logs(range, number);
	LiLedger	l;
	LiLedger   *prev = batch->nledgers > 0 ? &batch->ledgers[batch->nledgers - 1] : NULL;
	char	   *reorg_error = NULL;

	if (header == NULL)
		ledger_from_logs(b, &l);
	else
		header_ledger(p, number, header, b, &l);
	if (number == range->end && !range->final && memcmp(l.hash, end_hash, LI_HASH_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("block " INT64_FORMAT " changed while its range was fetched; fetching it again",
						range->end)));
	if (!li_check_continuity(p, prev, &l, &reorg_error))
	{
		if (prev == NULL)
		{
			batch->reorg = true;
			batch->reorg_error = reorg_error;
		}
		return false;
	}
	*li_batch_add(batch) = l;
	batch->nevents += l.nevents;
	return true;
}

/*
 * Does a JSON-RPC error say the method does not exist on the node?  -32601
 * is the specification's code; some nodes answer -32600, -32000 or -32603
 * with "method ... not found / not supported / does not exist".
 */
static bool
method_missing(const LiRpcError *err)
{
	const char *m = err->message ? err->message : "";

	/* not "header not found" (geth, -32000): a block the node lacks */
	return err->code == -32601 ||
		((err->code == -32600 || err->code == -32000 || err->code == -32603) &&
		 strcasestr(m, "method") != NULL &&
		 (strcasestr(m, "not found") || strcasestr(m, "not supported") ||
		  strcasestr(m, "does not exist") || strcasestr(m, "unsupported")));
}

/*
 * The receipts of block l (r: eth_getBlockReceipts' result) onto its kept
 * transactions; ERROR when the block is not available, a receipt is of
 * another block, or a kept transaction has none (a truncated answer).
 */
static void
block_receipts(LiLedger *l, JsonbValue *r)
{
	if (r == NULL || r->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("JSON-RPC eth_getBlockReceipts: block " INT64_FORMAT " is not available", l->number),
				 errhint("The node may be syncing or behind another node.")));
	li_parse_receipts(r, psprintf("eth_getBlockReceipts(" INT64_FORMAT ")", l->number), l, false);
	for (int i = 0; i < l->ntxs; i++)
		if (!(l->txs[i].has & LI_TX_HAS_RECEIPT))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("JSON-RPC eth_getBlockReceipts: the answer for block " INT64_FORMAT " has no receipt for transaction %d",
							l->number, l->txs[i].tx_index)));
}

/*
 * The receipts of the kept transactions of batch->ledgers[from..]:
 * eth_getBlockReceipts per block with some (the first alone, then JSON-RPC
 * batches), or, on a node without that method, eth_getTransactionReceipt
 * per transaction (learned once per process, logged).
 */
static void
fetch_receipts(LiPipeline *p, LiBatch *batch, int from)
{
	LiLedger  **need = palloc(sizeof(LiLedger *) * Max(batch->nledgers - from, 1));
	int			n = 0;

	for (int i = from; i < batch->nledgers; i++)
		if (batch->ledgers[i].ntxs > 0)
			need[n++] = &batch->ledgers[i];
	if (n == 0)
		return;
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("ledger_ingest %s: receipts of blocks " INT64_FORMAT "-" INT64_FORMAT " (%d blocks)",
									p->name, need[0]->number, need[n - 1]->number, n));
	if (!no_block_receipts)
	{
		LiRpcError	err = {0, NULL};
		JsonbValue *r = li_rpc_call_ex("eth_getBlockReceipts",
									   psprintf("[%s]", hexq(need[0]->number)), &err);

		if (r != NULL)
		{
			char	  **params = palloc(sizeof(char *) * n);
			JsonbValue **results = palloc0(sizeof(JsonbValue *) * n);

			block_receipts(need[0], r);
			for (int i = 1; i < n; i++)
				params[i] = psprintf("[%s]", hexq(need[i]->number));
			li_rpc_call_batch("eth_getBlockReceipts", params + 1, n - 1, results + 1);
			for (int i = 1; i < n; i++)
				block_receipts(need[i], results[i]);
			return;
		}
		if (!method_missing(&err))
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("JSON-RPC eth_getBlockReceipts failed%s: %s (code " INT64_FORMAT ")",
							li_rpc_endpoint_label(), err.message ? err.message : "", err.code)));
		no_block_receipts = true;
		ereport(LOG,
				(errmsg("ledger_ingest pipeline \"%s\": the node has no eth_getBlockReceipts (%s); using eth_getTransactionReceipt",
						p->name, err.message ? err.message : "")));
	}
	for (int i = 0; i < n; i++)
	{
		LiLedger   *l = need[i];
		char	  **params = palloc(sizeof(char *) * l->ntxs);
		JsonbValue **results = palloc0(sizeof(JsonbValue *) * l->ntxs);

		CHECK_FOR_INTERRUPTS();
		for (int t = 0; t < l->ntxs; t++)
			params[t] = psprintf("[\"%s\"]", li_bytes_to_hex(l->txs[t].hash, LI_HASH_LEN));
		li_rpc_call_batch("eth_getTransactionReceipt", params, l->ntxs, results);
		for (int t = 0; t < l->ntxs; t++)
		{
			if (results[t] == NULL || results[t]->type == jbvNull)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("JSON-RPC eth_getTransactionReceipt: no receipt for transaction %d of block " INT64_FORMAT,
								l->txs[t].tx_index, l->number)));
			li_parse_receipt(results[t], psprintf("eth_getTransactionReceipt(%s)",
												  li_bytes_to_hex(l->txs[t].hash, LI_HASH_LEN)),
							 l, &l->txs[t]);
		}
	}
}

/*
 * The blocks of ranges[0..nranges) (blocks_to_fetch of each, in order)
 * into the batch, in order, until one does not attach (add_block): the
 * headers they need fetched in JSON-RPC batches of rpc_batch_size blocks,
 * one batch at a time.  end_hash: that of the only range, when it is not
 * final.
 */
static void
add_blocks(LiPipeline *p, LiBatch *batch, RangeLogs *ranges, int nranges, const uint8 *end_hash)
{
	int64	   *numbers = NULL;
	int		   *owner = NULL;
	bool	   *logs_only = NULL;	/* from_logs of each */
	int			n = 0;
	int64	   *need;
	int			before;
	bool		ended = false;

	for (int r = 0; r < nranges; r++)
	{
		int64	   *nums;
		int			m = blocks_to_fetch(p, &ranges[r], &nums);

		numbers = numbers ? repalloc(numbers, sizeof(int64) * (n + m)) : palloc(sizeof(int64) * m);
		owner = owner ? repalloc(owner, sizeof(int) * (n + m)) : palloc(sizeof(int) * m);
		logs_only = logs_only ? repalloc(logs_only, sizeof(bool) * (n + m)) : palloc(sizeof(bool) * m);
		for (int j = 0; j < m; j++)
		{
			numbers[n + j] = nums[j];
			owner[n + j] = r;
			logs_only[n + j] = from_logs(p, &ranges[r], nums[j]);
		}
		n += m;
	}
	need = palloc(sizeof(int64) * Max(n, 1));
	for (int k = 0; k < n;)
	{
		int			chunk = Min(n - k, p->opts.rpc_batch_size);
		int			nneed = 0;
		JsonbValue **headers;

		for (int j = k; j < k + chunk; j++)
			if (!logs_only[j])
				need[nneed++] = numbers[j];
		if (nneed > 0)
			pgstat_report_activity(STATE_RUNNING,
								   psprintf("ledger_ingest %s: eth_getBlockByNumber " INT64_FORMAT "-" INT64_FORMAT " (%d blocks)",
											p->name, need[0], need[nneed - 1], nneed));
		headers = fetch_headers(need, nneed, p->opts.transactions);
		nneed = 0;
		before = batch->nledgers;
		for (int j = k; j < k + chunk && !ended; j++)
		{
			RangeLogs  *range = &ranges[owner[j]];

			CHECK_FOR_INTERRUPTS();
			ended = !add_block(p, batch, numbers[j], range, end_hash,
							   logs_only[j] ? NULL : headers[nneed++]);
		}
		if (p->opts.receipts)
			fetch_receipts(p, batch, before);
		if (ended)
			return;
		k += chunk;
	}
}

/*
 * Final ranges from next on, up to last (at or below the final floor):
 * up to max_concurrent_requests eth_getLogs of logs_range blocks each (the
 * blocks left split evenly between them when they are fewer) in flight at
 * once (li_rpc_call_logs_many), none starting past
 * range_start_limit but the first; the ranges answered in full, in order,
 * into the batch; a range the node found too large shrinks logs_range
 * (logs_failed), and the ranges after it wait for the next fetch (asked
 * again at once when it was the first).
 */
static void
fetch_final_ranges(LiPipeline *p, int64 next, int64 last, LiBatch *batch)
{
	int			max = p->opts.max_concurrent_requests;
	RangeLogs  *ranges = palloc0(sizeof(RangeLogs) * max);
	char	  **params = palloc(sizeof(char *) * max);
	void	  **args = palloc(sizeof(void *) * max);
	LiRpcError *errs = palloc0(sizeof(LiRpcError) * max);
	int			k;
	int			nread;

	do
	{
		/* what is left of the backfill, split evenly when it is short */
		int64		span = Min((int64) logs_range, (last - next + max) / max);

		CHECK_FOR_INTERRUPTS();
		k = 0;
		for (int64 from = next; k < max && from <= last && (k == 0 || from <= range_start_limit); k++)
		{
			memset(&ranges[k], 0, sizeof(RangeLogs));
			ranges[k].next = from;
			ranges[k].end = Min(from + span - 1, last);
			ranges[k].final = true;
			params[k] = logs_filter(p, ranges[k].next, ranges[k].end);
			args[k] = &ranges[k];
			from = ranges[k].end + 1;
		}
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("ledger_ingest %s: eth_getLogs " INT64_FORMAT "-" INT64_FORMAT " (%d requests)",
										p->name, next, ranges[k - 1].end, k));
		nread = li_rpc_call_logs_many("eth_getLogs", params, k, errs, add_log, args);
		for (int i = 0; i < nread; i++)
			logs_succeeded(p, &ranges[i]);
		/* too large: shrinks logs_range (or raises), and the rest waits */
		if (nread < k)
			logs_failed(p, &ranges[nread], &errs[nread]);
	} while (nread == 0);
	add_blocks(p, batch, ranges, nread, NULL);
}

/*
 * li_rpc_fetch -- fetch the next range of blocks into the batch (see the
 * file header).  Leaves the batch empty when the pipeline is at the head.
 */
void
li_rpc_fetch(LiPipeline *p, LiBatch *batch)
{
	int64		head;
	int64		safe;
	int64		next;
	RangeLogs	range;
	uint8		end_hash[LI_HASH_LEN];

	rpc_configure(p);
	next = p->cursor.complete ? p->cursor.ledger + 1 : p->cursor.ledger;
	next = Max(next, p->opts.from_block);
	if (reuse_head && known_safe >= 0 && next + logs_range - 1 <= known_safe &&
		!TimestampDifferenceExceeds(head_read_at, GetCurrentTimestamp(), HEAD_REUSE_MS))
	{
		head = last_head;
		safe = known_safe;
		p->journal_floor = known_floor;
	}
	else
	{
		pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: eth_blockNumber", p->name));
		head = read_head(p);
		safe = safe_ledger(p, head);
		known_safe = safe;
		known_floor = p->journal_floor;
		head_read_at = GetCurrentTimestamp();
	}
	if (next > safe)
	{
		/* at the head: a reorg that keeps the height is seen here */
		check_cursor_canonical(p, head, batch);
		pgstat_report_activity(STATE_IDLE, NULL);
		return;
	}
	if (p->opts.max_concurrent_requests > 1 && next < Min(safe, final_floor(p)) &&
		!p->opts.transactions)
	{
		/* a backfill: several final ranges at once */
		fetch_final_ranges(p, next, Min(safe, final_floor(p)), batch);
		pgstat_report_activity(STATE_IDLE, NULL);
		return;
	}
	fetch_range_logs(p, next, safe, &range, end_hash);
	add_blocks(p, batch, &range, 1, end_hash);
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
	int			n;
	int64	   *numbers;
	uint8	  (*hashes)[LI_HASH_LEN];

	rpc_configure(p);
	caller_cxt = li_txn_begin();
	/* in the caller's context: SPI_finish frees SPI's */
	n = li_catalog_stored_headers(p, p->cursor.ledger - p->opts.reorg_window,
								  p->cursor.complete ? p->cursor.ledger : p->cursor.ledger - 1,
								  caller_cxt, &numbers, &hashes);
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

	for (int k = 0; k < n;)
	{
		int			chunk = Min(n - k, p->opts.rpc_batch_size);
		JsonbValue **headers;

		pgstat_report_activity(STATE_RUNNING,
							   psprintf("ledger_ingest %s: looking for the fork point at blocks " INT64_FORMAT "-" INT64_FORMAT,
										p->name, numbers[k + chunk - 1], numbers[k]));
		headers = fetch_headers(numbers + k, chunk, false);
		for (int i = k; i < k + chunk; i++)
		{
			LiLedger	l;

			CHECK_FOR_INTERRUPTS();
			header_ledger(NULL, numbers[i], headers[i - k], NULL, &l);
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
		k += chunk;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	return LI_FORK_BEYOND_WINDOW;
}
