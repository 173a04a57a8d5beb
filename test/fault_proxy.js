#!/usr/bin/env node
/*
 * fault_proxy.js -- a fault-injecting HTTP JSON-RPC proxy for tests.
 *
 * Sits between ledger_ingest (libcurl) and a real node (e.g. anvil) and,
 * on request, makes the "node" misbehave in the ways real RPC providers do.
 * Only Node's built-in modules are used.
 *
 * USAGE
 *
 *   node test/fault_proxy.js --listen PORT --upstream URL [--portfile FILE]
 *                            [--host ADDR] [--verbose]
 *
 *   --listen PORT     port to listen on; 0 picks a free one.  Once listening,
 *                     the line "listening PORT" is printed on stdout.
 *   --upstream URL    the real node, e.g. http://127.0.0.1:8545 (a path in
 *                     the URL is prefixed to the request's path).
 *   --portfile FILE   also write the chosen port (and a newline) to FILE,
 *                     atomically (temp file + rename), once listening.  The
 *                     file is removed again on a clean exit.
 *   --host ADDR       address to listen on (default 127.0.0.1).
 *   --verbose         log every JSON-RPC request and its fault on stderr.
 *
 * The proxy exits cleanly (status 0) on SIGTERM or SIGINT.
 *
 * Without a fault, every request body is forwarded to the upstream (same
 * path, Content-Type application/json, Accept-Encoding dropped so the
 * answer is never compressed) and the upstream's status and body are
 * returned byte for byte.  Client keep-alive is supported.  If the upstream
 * cannot be reached the client gets a 502 with a text body.  Bodies that are
 * not JSON are forwarded without any fault.  JSON-RPC batches (an array of
 * calls) are faulted call by call, or as a batch (see BATCHES).
 *
 * CONTROL API (same port, paths starting with /__; not counted in stats)
 *
 *   POST /__fault   {"mode": M, "count": N, "method": "eth_getLogs", ...}
 *                   Installs a fault; returns {"ok":true,"id":K}.  It
 *                   applies to the next N JSON-RPC requests whose method is
 *                   "method" (any method when absent or null).  count
 *                   defaults to 1; -1 means until cleared.  Faults form an
 *                   ordered list: the first matching one applies, each
 *                   application decrements its count, and exhausted ones
 *                   are removed.  The other keys are the mode's parameters.
 *                   An invalid fault is answered 400 {"ok":false,"error":..}.
 *   POST /__clear   removes all faults.
 *   GET  /__faults  lists the installed faults (with remaining counts).
 *   GET  /__stats   {"requests": n (HTTP), "calls": n (JSON-RPC calls, those
 *                    in batches each), "batches": n, "by_method": {method:
 *                    calls}, "faulted": n, "by_mode": {mode: n}, "times":
 *                    [ms epoch of the last 2000 HTTP requests], "log": [last
 *                    200 calls {t, method, params (JSON, truncated to 300
 *                    chars), mode or null, batch: its size, for a call in
 *                    a batch}], "max_in_flight": the most JSON-RPC HTTP
 *                    requests open at once, "first_at": ms epoch of the
 *                    first HTTP request, or null}
 *   POST /__reset_stats   zeroes the stats.
 *
 * MODES
 *
 *   refuse        close the client socket at once, no response (curl:
 *                 "Empty reply from server").  Param reset: true sends a
 *                 TCP RST instead ("Connection reset by peer").
 *   hang          never respond; the socket stays open until the client
 *                 gives up and closes it (then it is forgotten).
 *   stall         forward; send 200 and headers with the Content-Length of
 *                 the full upstream body, then the first half of the body,
 *                 then nothing more.
 *   http_status   answer HTTP `status` (default 500) with body `body`
 *                 (default the status text, e.g. "Too Many Requests"),
 *                 Content-Type `content_type` (default text/plain), and, if
 *                 `retry_after` is given, a Retry-After header carrying it
 *                 verbatim.
 *   html          status `status` (default 200), Content-Type text/html and
 *                 a gateway error page, as a CDN or reverse proxy would send.
 *   truncated     forward; status 200 with the upstream body cut to half its
 *                 length (Content-Length matching, so the HTTP response is
 *                 complete but the JSON is not).
 *   malformed     status 200, invalid JSON:
 *                 {"jsonrpc":"2.0","id":<id>,"result":[{"address":
 *   rpc_error     status 200, {"jsonrpc":"2.0","id":<id>,"error":{"code":
 *                 <code, default -32000>,"message":<message, default
 *                 "internal error">}} (plus "data" if param `data` given).
 *   wrong_id      forward; the response's id becomes the request id + 1000.
 *   null_result   forward; the response's result becomes null (an error
 *                 member, if any, is dropped).
 *   result_and_error forward; the response keeps its result and gets an
 *                 error member after it ({"code":-32000,"message":
 *                 "internal error"}), which JSON-RPC 2.0 forbids.
 *   logs_mismatch forward; every log in the result array gets a different
 *                 blockHash (last hex digit flipped), or, with param
 *                 field: "blockNumber", a blockNumber one higher.
 *   logs_without  forward; every log in the result array loses its member
 *                 `field` (default "blockTimestamp"), as from a node whose
 *                 eth_getLogs does not return it.
 *   wrong_block   the request's first param, if a 0x quantity, is rewritten
 *                 to number + `offset` (default -1; number + 1 if that would
 *                 be negative) before forwarding, so the node returns another
 *                 block.  Requests with a tag ("latest", ...) do not match:
 *                 they are forwarded unchanged and do not use up the count.
 *   head_back     forward; a 0x result (eth_blockNumber) is lowered by `by`
 *                 (default 5), never below 0x0; so is the "latestLedger" of
 *                 an object result (Stellar RPC's getHealth, getEvents).
 *   stellar_header forward; in a Stellar RPC getLedgers answer, a bit of
 *                 each ledger's previousLedgerHash in headerXdr flipped (the
 *                 header no longer hashes to "hash": a corrupt header), or,
 *                 with forge: true, "hash" and the entry's hash recomputed
 *                 too (a well-formed ledger that does not chain).
 *   result_drop_last forward; a result array loses its last element (an
 *                 eth_getBlockReceipts answer missing a receipt).
 *   oversize      forward; the response object gets a "padding":"xxx..."
 *                 member so the (still valid) JSON exceeds `bytes` bytes
 *                 (default 2000000).
 *   range_limit   for eth_getLogs: if toBlock - fromBlock + 1 > `max_range`
 *                 (default 1000), answer status 200 with a JSON-RPC error of
 *                 code `code` (default -32005) and message `message`, a
 *                 template in which {from} and {to} become the suggested
 *                 range as 0x quantities (fromBlock .. fromBlock+max_range-1)
 *                 and {max} becomes max_range.  Tags in the filter ("latest",
 *                 "earliest", ...) are resolved by asking the upstream.  With
 *                 suggest: false the default message names no range and
 *                 {from}/{to} in a given message are left as they are.  A
 *                 request within the limit does not match: later faults are
 *                 considered and it is otherwise forwarded; only errors
 *                 count as faulted and use up the count.
 *   delay         wait `ms` (default 1000) milliseconds, then forward.
 *
 * BATCHES
 *
 * A batch is first offered to the batch modes below, which match it when
 * their method is absent or that of one of its calls:
 *
 *   batch_reorder forward; the answers come back in reverse order.
 *   batch_refuse  answer as a node that takes no batches: status 200 and
 *                 one error object {"jsonrpc":"2.0","id":null,"error":
 *                 {"code":-32600,"message":`message`}} (default "batch
 *                 requests are not supported"), or, with `status`, that
 *                 HTTP status and a text body.
 *   batch_limit   a batch of more than `max` calls (default 10) is answered
 *                 as geth answers one over its batch-request-limit:
 *                 [{"jsonrpc":"2.0","id":<first id>,"error":{"code":-32600,
 *                 "message":"batch too large"}}]; with style "truncate",
 *                 only its first `max` calls are answered.  A batch within
 *                 the limit does not match and does not use up the count.
 *   batch_drop    forward; the answer at position `index` (default 0) is
 *                 left out.
 *
 * Otherwise each call of the batch is matched as a single request would
 * be (a fault with param in_batch: true matches calls in batches only):
 * the call modes (rpc_error, range_limit, wrong_id, null_result,
 * result_and_error, logs_mismatch, logs_without, wrong_block, head_back,
 * stellar_header, result_drop_last)
 * spoil that call's answer only; the others (refuse, hang, stall,
 * http_status, html, truncated, malformed, oversize, delay) act on the
 * whole HTTP response.
 *
 * Post-processing modes (stall, truncated, wrong_id, null_result, result_and_error,
 * logs_mismatch, logs_without, head_back, stellar_header, result_drop_last, oversize) return the upstream answer unchanged
 * when it is not a JSON object that the mode can rewrite.
 *
 * EXAMPLE
 *
 *   node test/fault_proxy.js --listen 0 --upstream http://127.0.0.1:8545 &
 *   curl -s -X POST --data '{"mode":"http_status","status":429,
 *        "retry_after":"2","count":3,"method":"eth_getLogs"}' \
 *        http://127.0.0.1:PORT/__fault
 */

'use strict';

const http = require('http');
const https = require('https');
const fs = require('fs');
const crypto = require('crypto');
const { URL } = require('url');

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

function usage(msg) {
	if (msg)
		process.stderr.write(`fault_proxy: ${msg}\n`);
	process.stderr.write('usage: node fault_proxy.js --listen PORT --upstream URL ' +
		'[--portfile FILE] [--host ADDR] [--verbose]\n');
	process.exit(2);
}

function parseArgs(argv) {
	const opts = { listen: null, upstream: null, portfile: null,
		host: '127.0.0.1', verbose: false };
	for (let i = 0; i < argv.length; i++) {
		const arg = argv[i];
		const value = () => {
			if (i + 1 >= argv.length)
				usage(`${arg} needs a value`);
			return argv[++i];
		};
		switch (arg) {
		case '--listen': opts.listen = value(); break;
		case '--upstream': opts.upstream = value(); break;
		case '--portfile': opts.portfile = value(); break;
		case '--host': opts.host = value(); break;
		case '--verbose': opts.verbose = true; break;
		case '-h': case '--help': usage(); break;
		default: usage(`unknown argument ${arg}`);
		}
	}
	if (opts.listen === null || !/^\d+$/.test(opts.listen) || Number(opts.listen) > 65535)
		usage('--listen PORT is required (0 for any free port)');
	if (opts.upstream === null)
		usage('--upstream URL is required');
	try {
		opts.upstreamUrl = new URL(opts.upstream);
	} catch (e) {
		usage(`bad upstream URL: ${opts.upstream}`);
	}
	if (!['http:', 'https:'].includes(opts.upstreamUrl.protocol))
		usage('the upstream URL must be http or https');
	return opts;
}

const opts = parseArgs(process.argv.slice(2));

function debug(msg) {
	if (opts.verbose)
		process.stderr.write(`fault_proxy: ${msg}\n`);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

const HEX_QUANTITY = /^0x[0-9a-fA-F]+$/;

/* a 0x-hex quantity as a BigInt, or null */
function parseQuantity(v) {
	return typeof v === 'string' && HEX_QUANTITY.test(v) ? BigInt(v) : null;
}

function toQuantity(n) {
	return '0x' + (n < 0n ? 0n : n).toString(16);
}

function parseJson(buf) {
	try {
		return JSON.parse(buf.toString('utf8'));
	} catch (e) {
		return undefined;
	}
}

function isObject(v) {
	return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/* read a whole request/response body, however many chunks it comes in */
function readBody(stream) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		stream.on('data', (c) => chunks.push(c));
		stream.on('end', () => resolve(Buffer.concat(chunks)));
		stream.on('error', reject);
		/* closed before the end: the peer went away (no-op once resolved) */
		stream.on('close', () => reject(Object.assign(new Error('connection closed'), { aborted: true })));
	});
}

/* write a complete response, unless the client has gone away */
function send(res, status, headers, body) {
	if (res.destroyed || res.headersSent)
		return;
	const buf = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
	res.writeHead(status, { ...headers, 'Content-Length': buf.length });
	res.end(buf);
}

function sendJson(res, status, obj) {
	send(res, status, { 'Content-Type': 'application/json' }, JSON.stringify(obj));
}

function sendText(res, status, text) {
	send(res, status, { 'Content-Type': 'text/plain; charset=utf-8' }, text + '\n');
}

/* ------------------------------------------------------------------ */
/* Upstream                                                            */
/* ------------------------------------------------------------------ */

const upstreamUrl = opts.upstreamUrl;
const upstreamLib = upstreamUrl.protocol === 'https:' ? https : http;
const upstreamAgent = new upstreamLib.Agent({ keepAlive: true });
const upstreamBase = upstreamUrl.pathname.replace(/\/+$/, '');
const UPSTREAM_TIMEOUT_MS = 120000;

/* headers that describe one hop, not the message: never copied across */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding',
	'content-length', 'proxy-connection', 'te', 'trailer', 'upgrade']);

/*
 * forward -- send a body to the upstream; resolves to {status, headers, body}
 * (body a Buffer), rejects if the upstream cannot be reached or answered.
 */
function forward(path, body, method = 'POST') {
	return new Promise((resolve, reject) => {
		const req = upstreamLib.request({
			protocol: upstreamUrl.protocol,
			hostname: upstreamUrl.hostname,
			port: upstreamUrl.port || undefined,
			path: upstreamBase + path,
			method,
			agent: upstreamAgent,
			headers: {
				'Content-Type': 'application/json',
				'Accept': 'application/json',
				'Content-Length': body.length,
			},
			timeout: UPSTREAM_TIMEOUT_MS,
		}, (res) => {
			readBody(res).then(
				(buf) => resolve({ status: res.statusCode, headers: res.headers, body: buf }),
				reject);
		});
		req.on('timeout', () => req.destroy(new Error('upstream timed out')));
		req.on('error', reject);
		req.end(body);
	});
}

/* the upstream's answer, passed on unchanged (hop-by-hop headers aside) */
function sendUpstream(res, up) {
	const headers = {};
	for (const [name, value] of Object.entries(up.headers))
		if (!HOP_HEADERS.has(name))
			headers[name] = value;
	send(res, up.status, headers, up.body);
}

/* the upstream's head block number, for resolving tags (not in the stats) */
async function upstreamHead() {
	const up = await forward('/', Buffer.from(
		'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'));
	const doc = parseJson(up.body);
	const head = isObject(doc) ? parseQuantity(doc.result) : null;
	if (head === null)
		throw new Error('cannot get the upstream head');
	return head;
}

/* ------------------------------------------------------------------ */
/* Faults                                                              */
/* ------------------------------------------------------------------ */

const MODES = new Set(['refuse', 'hang', 'stall', 'http_status', 'html',
	'truncated', 'malformed', 'rpc_error', 'wrong_id', 'null_result', 'result_and_error',
	'logs_mismatch', 'logs_without', 'wrong_block', 'head_back', 'oversize', 'range_limit',
	'stellar_header', 'result_drop_last', 'delay', 'batch_reorder', 'batch_refuse', 'batch_limit',
	'batch_drop']);

/* modes that act on a batch as a whole */
const BATCH_MODES = new Set(['batch_reorder', 'batch_refuse', 'batch_limit', 'batch_drop']);

/* modes that, in a batch, spoil one call's answer only */
const CALL_MODES = new Set(['rpc_error', 'range_limit', 'wrong_id', 'null_result',
	'result_and_error', 'logs_mismatch', 'logs_without', 'wrong_block', 'head_back',
	'stellar_header', 'result_drop_last']);

let faults = [];		/* installed faults, in order of installation */
let nextFaultId = 1;

/* validate a /__fault body; returns the fault or throws a message */
function makeFault(spec) {
	if (!isObject(spec))
		throw 'the body must be a JSON object';
	if (!MODES.has(spec.mode))
		throw `unknown mode ${JSON.stringify(spec.mode)}`;
	const count = spec.count === undefined || spec.count === null ? 1 : spec.count;
	if (!Number.isInteger(count) || (count < 1 && count !== -1))
		throw 'count must be a positive integer or -1';
	if (spec.method !== undefined && spec.method !== null && typeof spec.method !== 'string')
		throw 'method must be a string or null';
	return { id: nextFaultId++, mode: spec.mode, count,
		method: spec.method ?? null, params: spec };
}

/* use up one application of a fault; exhausted faults are removed */
function consume(fault) {
	if (fault.count > 0 && --fault.count === 0)
		faults = faults.filter((f) => f !== fault);
}

/*
 * rangeLimitHit -- for a range_limit fault, the error to return for this
 * eth_getLogs request, or null if the request is within the limit (or its
 * range cannot be worked out).
 */
async function rangeLimitHit(fault, rpc) {
	const filter = Array.isArray(rpc.params) ? rpc.params[0] : undefined;
	if (!isObject(filter) || filter.blockHash !== undefined)
		return null;		/* a single block */

	let head = null;
	const resolve = async (v) => {
		const n = parseQuantity(v);
		if (n !== null)
			return n;
		if (v === 'earliest')
			return 0n;
		if (v === undefined || v === null || ['latest', 'safe', 'finalized', 'pending'].includes(v)) {
			if (head === null)
				head = await upstreamHead();
			return head;
		}
		throw new Error(`bad block ${v}`);
	};
	let from, to;
	try {
		from = await resolve(filter.fromBlock);
		to = await resolve(filter.toBlock);
	} catch (e) {
		debug(`range_limit: cannot resolve the range (${e.message}); forwarding`);
		return null;
	}

	const p = fault.params;
	const maxRange = BigInt(Number.isInteger(p.max_range) && p.max_range > 0 ? p.max_range : 1000);
	if (to - from + 1n <= maxRange)
		return null;

	const suggest = p.suggest !== false;
	let message = p.message;
	if (typeof message !== 'string')
		message = 'Log response size exceeded. You can make eth_getLogs requests with up to a ' +
			'{max} block range.' +
			(suggest ? ' Based on your parameters, this block range should work: [{from}, {to}]' : '');
	if (suggest)
		message = message
			.split('{from}').join(toQuantity(from))
			.split('{to}').join(toQuantity(from + maxRange - 1n));
	message = message.split('{max}').join(maxRange.toString());
	return { code: p.code ?? -32005, message };
}

/*
 * selectFault -- the fault that applies to a JSON-RPC request, already
 * consumed, as {fault, extra}, or null.  extra carries what the decision
 * found out (the range_limit error).
 */
async function selectFault(rpc, inBatch = false) {
	for (const fault of faults.slice()) {
		if (fault.method !== null && fault.method !== rpc.method)
			continue;
		if (BATCH_MODES.has(fault.mode) || (fault.params.in_batch === true && !inBatch))
			continue;
		if (!faults.includes(fault) || fault.count === 0)
			continue;		/* removed meanwhile */
		let extra = null;
		if (fault.mode === 'range_limit') {
			extra = await rangeLimitHit(fault, rpc);
			if (extra === null || !faults.includes(fault) || fault.count === 0)
				continue;
		} else if (fault.mode === 'wrong_block') {
			if (!Array.isArray(rpc.params) || parseQuantity(rpc.params[0]) === null)
				continue;
		}
		consume(fault);
		return { fault, extra };
	}
	return null;
}

/* ------------------------------------------------------------------ */
/* Stats                                                               */
/* ------------------------------------------------------------------ */

const MAX_TIMES = 2000;
const MAX_LOG = 200;
const MAX_LOG_PARAMS = 300;

let stats;
let inFlight = 0;		/* JSON-RPC HTTP requests not answered yet */

function resetStats() {
	stats = { requests: 0, calls: 0, batches: 0, by_method: {}, faulted: 0, by_mode: {},
		times: [], log: [], max_in_flight: inFlight, first_at: null };
}
resetStats();

/* record one HTTP request */
function recordHttp() {
	stats.requests++;
	stats.first_at = stats.first_at ?? Date.now();
	stats.times.push(Date.now());
	if (stats.times.length > MAX_TIMES)
		stats.times.splice(0, stats.times.length - MAX_TIMES);
}

/* record one call; returns the log entry, whose mode is set later */
function recordRequest(method, params) {
	const t = Date.now();
	stats.calls++;
	stats.by_method[method] = (stats.by_method[method] || 0) + 1;
	let p = params === undefined ? null : JSON.stringify(params);
	if (p !== null && p.length > MAX_LOG_PARAMS)
		p = p.slice(0, MAX_LOG_PARAMS);
	const entry = { t, method, params: p, mode: null };
	stats.log.push(entry);
	if (stats.log.length > MAX_LOG)
		stats.log.splice(0, stats.log.length - MAX_LOG);
	return entry;
}

function recordFault(entry, mode) {
	entry.mode = mode;
	stats.faulted++;
	stats.by_mode[mode] = (stats.by_mode[mode] || 0) + 1;
}

/* ------------------------------------------------------------------ */
/* Fault behaviours                                                    */
/* ------------------------------------------------------------------ */

/* responses deliberately left open (hang, stall), until the client closes */
const held = new Set();

function hold(res) {
	held.add(res);
	res.on('close', () => held.delete(res));
}

const HTML_PAGE = `<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<p>The web server reported a bad gateway error.</p>
<p>Ray ID: 8c0ffee0deadbeef &bull; Please try again in a few minutes.</p>
<hr><center>cloudflare</center>
</body>
</html>
`;

/* a different JSON-RPC id: the request id + 1000 */
function otherId(id) {
	if (typeof id === 'number')
		return id + 1000;
	if (typeof id === 'string' && /^-?\d+$/.test(id))
		return String(BigInt(id) + 1000n);
	if (typeof id === 'string')
		return id + '-1000';
	return 1000;
}

/* a different 32-byte hash: the last hex digit flipped */
function otherHash(hash) {
	if (typeof hash !== 'string' || !/[0-9a-fA-F]$/.test(hash))
		return '0x' + '0'.repeat(63) + '1';
	const last = (parseInt(hash.slice(-1), 16) ^ 1).toString(16);
	return hash.slice(0, -1) + last;
}

/*
 * rewrite -- for the post-processing modes, the JSON document to return in
 * place of the upstream's (doc, already parsed), or null to return the
 * upstream answer unchanged.
 */
function rewrite(mode, p, rpc, doc) {
	if (!isObject(doc))
		return null;
	switch (mode) {
	case 'wrong_id':
		return { ...doc, id: otherId(rpc.id) };
	case 'null_result': {
		const out = { ...doc, result: null };
		delete out.error;
		return out;
	}
	case 'result_and_error':
		return { ...doc, error: { code: -32000, message: 'internal error' } };
	case 'logs_without':
		if (!Array.isArray(doc.result))
			return null;
		return { ...doc, result: doc.result.map((log) => {
			if (!isObject(log))
				return log;
			const out = { ...log };
			delete out[typeof p.field === 'string' ? p.field : 'blockTimestamp'];
			return out;
		}) };
	case 'logs_mismatch':
		if (!Array.isArray(doc.result))
			return null;
		return { ...doc, result: doc.result.map((log) => {
			if (!isObject(log))
				return log;
			if (p.field === 'blockNumber') {
				const n = parseQuantity(log.blockNumber);
				return n === null ? log : { ...log, blockNumber: toQuantity(n + 1n) };
			}
			return { ...log, blockHash: otherHash(log.blockHash) };
		}) };
	case 'head_back': {
		const back = Number.isInteger(p.by) ? p.by : 5;
		if (isObject(doc.result) && Number.isInteger(doc.result.latestLedger))	/* Stellar RPC */
			return { ...doc, result: { ...doc.result, latestLedger: Math.max(doc.result.latestLedger - back, 0) } };
		const head = parseQuantity(doc.result);
		if (head === null)
			return null;
		const by = BigInt(Number.isInteger(p.by) ? p.by : 5);
		return { ...doc, result: toQuantity(head - by) };
	}
	case 'stellar_header': {
		/* Stellar RPC getLedgers: each entry's header changed */
		if (!isObject(doc.result) || !Array.isArray(doc.result.ledgers))
			return null;
		const ledgers = doc.result.ledgers.map((l) => {
			if (!isObject(l) || typeof l.headerXdr !== 'string')
				return l;
			/* a LedgerHeaderHistoryEntry: hash (32), then the LedgerHeader,
			 * whose previousLedgerHash follows its ledgerVersion (4) */
			const x = Buffer.from(l.headerXdr, 'base64');
			const ext = 4;
			x[32 + 4 + 31] ^= 1;
			if (!p.forge)
				return { ...l, headerXdr: x.toString('base64') };
			const hash = crypto.createHash('sha256').update(x.subarray(32, x.length - ext)).digest();
			hash.copy(x, 0);
			return { ...l, hash: hash.toString('hex'), headerXdr: x.toString('base64') };
		});
		return { ...doc, result: { ...doc.result, ledgers } };
	}
	case 'result_drop_last':
		if (!Array.isArray(doc.result) || doc.result.length === 0)
			return null;
		return { ...doc, result: doc.result.slice(0, -1) };
	case 'oversize': {
		const bytes = Number.isInteger(p.bytes) && p.bytes >= 0 ? p.bytes : 2000000;
		const out = { ...doc, padding: '' };
		const need = bytes + 1 - Buffer.byteLength(JSON.stringify(out));
		out.padding = 'x'.repeat(Math.max(need, 0));
		return out;
	}
	default:
		return null;
	}
}

/*
 * applyFault -- answer a JSON-RPC request (rpc, its raw body) as fault
 * says.  Upstream failures are answered 502.
 */
async function applyFault(req, res, fault, extra, rpc, body) {
	const p = fault.params;
	const id = rpc.id === undefined ? null : rpc.id;

	switch (fault.mode) {
	case 'refuse':
		if (p.reset === true && typeof req.socket.resetAndDestroy === 'function')
			req.socket.resetAndDestroy();
		else
			req.socket.destroy();
		return;

	case 'hang':
		hold(res);
		return;

	case 'http_status': {
		const status = Number.isInteger(p.status) && p.status >= 100 && p.status <= 999 ? p.status : 500;
		const headers = { 'Content-Type': p.content_type || 'text/plain; charset=utf-8' };
		if (p.retry_after !== undefined && p.retry_after !== null)
			headers['Retry-After'] = String(p.retry_after);
		const text = typeof p.body === 'string' ? p.body : (http.STATUS_CODES[status] || 'Error');
		send(res, status, headers, text);
		return;
	}

	case 'html':
		send(res, Number.isInteger(p.status) ? p.status : 200,
			{ 'Content-Type': 'text/html; charset=UTF-8' }, HTML_PAGE);
		return;

	case 'malformed':
		send(res, 200, { 'Content-Type': 'application/json' },
			`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":[{"address":`);
		return;

	case 'rpc_error':
		sendJson(res, 200, { jsonrpc: '2.0', id, error: faultError(p) });
		return;

	case 'range_limit':
		sendJson(res, 200, { jsonrpc: '2.0', id, error: extra });
		return;

	case 'delay': {
		const ms = Number.isFinite(p.ms) && p.ms >= 0 ? p.ms : 1000;
		await new Promise((resolve) => setTimeout(resolve, ms));
		if (res.destroyed)
			return;		/* the client gave up meanwhile */
		return passThrough(req, res, body);
	}

	case 'wrong_block': {
		const moved = wrongBlockCall(rpc, p);
		debug(`wrong_block: ${rpc.params[0]} -> ${moved.params[0]}`);
		return passThrough(req, res, Buffer.from(JSON.stringify(moved)));
	}
	}

	/* the rest forward first, then spoil the answer */
	const up = await forwardOr502(req, res, body);
	if (up === null || res.destroyed)
		return;

	switch (fault.mode) {
	case 'stall': {
		const half = Math.floor(up.body.length / 2);
		hold(res);
		res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': up.body.length });
		res.write(up.body.subarray(0, half));
		return;
	}

	case 'truncated':
		send(res, 200, { 'Content-Type': 'application/json' },
			up.body.subarray(0, Math.floor(up.body.length / 2)));
		return;

	default: {
		const out = rewrite(fault.mode, p, rpc, parseJson(up.body));
		if (out === null)
			sendUpstream(res, up);
		else
			sendJson(res, up.status, out);
	}
	}
}

/* forward a body; the upstream's answer, or null once a 502 is sent */
async function forwardOr502(req, res, body) {
	try {
		return await forward(req.url, body, req.method);
	} catch (e) {
		sendText(res, 502, `Bad Gateway: upstream error: ${e.message}`);
		return null;
	}
}

/* forward a body and return the upstream's answer unchanged */
async function passThrough(req, res, body) {
	const up = await forwardOr502(req, res, body);
	if (up !== null)
		sendUpstream(res, up);
}

/* ------------------------------------------------------------------ */
/* Request handling                                                    */
/* ------------------------------------------------------------------ */

async function handleControl(req, res, path, body) {
	if (req.method === 'POST' && path === '/__fault') {
		let fault;
		try {
			fault = makeFault(parseJson(body));
		} catch (msg) {
			sendJson(res, 400, { ok: false, error: String(msg) });
			return;
		}
		faults.push(fault);
		debug(`fault ${fault.id} installed: ${body.toString('utf8')}`);
		sendJson(res, 200, { ok: true, id: fault.id });
	} else if (req.method === 'POST' && path === '/__clear') {
		faults = [];
		sendJson(res, 200, { ok: true });
	} else if (req.method === 'GET' && path === '/__faults') {
		sendJson(res, 200, faults.map((f) => ({ ...f.params, id: f.id, count: f.count })));
	} else if (req.method === 'GET' && path === '/__stats') {
		sendJson(res, 200, stats);
	} else if (req.method === 'POST' && path === '/__reset_stats') {
		resetStats();
		sendJson(res, 200, { ok: true });
	} else {
		sendJson(res, 404, { ok: false, error: `no control endpoint ${req.method} ${path}` });
	}
}

async function handleRpc(req, res, body) {
	const rpc = parseJson(body);
	if (Array.isArray(rpc) && rpc.length > 0)
		return handleBatch(req, res, rpc, body);
	recordHttp();
	if (!isObject(rpc) || typeof rpc.method !== 'string') {
		/* not a JSON-RPC request: garbage, empty or an empty batch; just forward */
		recordRequest('(unparsed)', undefined);
		return passThrough(req, res, body);
	}

	const entry = recordRequest(rpc.method, rpc.params);
	const chosen = await selectFault(rpc);
	if (chosen === null) {
		debug(`${rpc.method} ${entry.params}`);
		return passThrough(req, res, body);
	}
	recordFault(entry, chosen.fault.mode);
	debug(`${rpc.method} ${entry.params} -> ${chosen.fault.mode} (fault ${chosen.fault.id})`);
	return applyFault(req, res, chosen.fault, chosen.extra, rpc, body);
}

/* a call of a batch: a JSON-RPC request object */
function isCall(c) {
	return isObject(c) && typeof c.method === 'string';
}

function batchMax(p) {
	return Number.isInteger(p.max) && p.max > 0 ? p.max : 10;
}

/* the batch mode fault that takes this batch, already consumed, or null */
function selectBatchFault(calls) {
	for (const fault of faults.slice()) {
		if (!BATCH_MODES.has(fault.mode))
			continue;
		if (fault.method !== null && !calls.some((c) => isCall(c) && c.method === fault.method))
			continue;
		if (fault.mode === 'batch_limit' && calls.length <= batchMax(fault.params))
			continue;
		consume(fault);
		return fault;
	}
	return null;
}

/* answer a batch as a batch mode fault says (see BATCHES) */
async function applyBatchFault(req, res, fault, calls, body) {
	const p = fault.params;
	if (fault.mode === 'batch_refuse') {
		if (Number.isInteger(p.status) && p.status >= 100 && p.status <= 999)
			sendText(res, p.status, http.STATUS_CODES[p.status] || 'Error');
		else
			sendJson(res, 200, { jsonrpc: '2.0', id: null, error: { code: -32600,
				message: typeof p.message === 'string' ? p.message : 'batch requests are not supported' } });
		return;
	}
	if (fault.mode === 'batch_limit' && p.style !== 'truncate') {
		const first = calls.find(isObject);
		sendJson(res, 200, [{ jsonrpc: '2.0', id: first && first.id !== undefined ? first.id : null,
			error: { code: -32600, message: 'batch too large' } }]);
		return;
	}
	const sent = fault.mode === 'batch_limit' ? Buffer.from(JSON.stringify(calls.slice(0, batchMax(p)))) : body;
	const up = await forwardOr502(req, res, sent);
	if (up === null || res.destroyed)
		return;
	const doc = parseJson(up.body);
	if (!Array.isArray(doc) || fault.mode === 'batch_limit')
		return sendUpstream(res, up);
	if (fault.mode === 'batch_reorder')
		return sendJson(res, up.status, doc.slice().reverse());
	const index = Number.isInteger(p.index) ? p.index : 0;
	return sendJson(res, up.status, doc.filter((_, j) => j !== index));
}

/* the error object of an rpc_error fault */
function faultError(p) {
	const error = { code: p.code ?? -32000, message: p.message ?? 'internal error' };
	if (p.data !== undefined)
		error.data = p.data;
	return error;
}

/* a call with its block number moved, for a wrong_block fault */
function wrongBlockCall(rpc, p) {
	const params = rpc.params.slice();
	const n = parseQuantity(params[0]);
	let target = n + BigInt(Number.isInteger(p.offset) ? p.offset : -1);
	if (target < 0n)
		target = n + 1n;
	params[0] = toQuantity(target);
	return { ...rpc, params };
}

/*
 * handleBatch -- a JSON-RPC batch: a batch mode fault, or each call's own
 * (see BATCHES).
 */
async function handleBatch(req, res, calls, body) {
	recordHttp();
	stats.batches++;
	const entries = calls.map((c) => {
		const e = recordRequest(isCall(c) ? c.method : '(unparsed)', isObject(c) ? c.params : undefined);
		e.batch = calls.length;
		return e;
	});
	const bf = selectBatchFault(calls);
	if (bf !== null) {
		recordFault(entries[0], bf.mode);
		for (const e of entries)
			e.mode = bf.mode;
		debug(`batch of ${calls.length} -> ${bf.mode} (fault ${bf.id})`);
		return applyBatchFault(req, res, bf, calls, body);
	}
	const chosen = [];
	for (const c of calls)
		chosen.push(isCall(c) ? await selectFault(c, true) : null);
	chosen.forEach((ch, i) => { if (ch !== null) recordFault(entries[i], ch.fault.mode); });
	debug(`batch of ${calls.length}: ${chosen.filter((ch) => ch !== null).map((ch) => ch.fault.mode).join(', ') || 'no fault'}`);
	const whole = chosen.find((ch) => ch !== null && !CALL_MODES.has(ch.fault.mode));
	if (whole !== undefined) {
		if (whole.fault.mode === 'oversize') {
			const up = await forwardOr502(req, res, body);
			if (up === null)
				return;
			const bytes = Number.isInteger(whole.fault.params.bytes) ? whole.fault.params.bytes : 2000000;
			const doc = parseJson(up.body);
			return sendJson(res, up.status, Array.isArray(doc) ? doc.concat([{ padding: 'x'.repeat(bytes) }]) : doc);
		}
		return applyFault(req, res, whole.fault, whole.extra, { id: null }, body);
	}
	/* call faults: answered here, or forwarded and spoilt one by one */
	const answeredHere = (ch) => ch !== null && ['rpc_error', 'range_limit'].includes(ch.fault.mode);
	const fwd = [];
	calls.forEach((c, i) => {
		if (!answeredHere(chosen[i]))
			fwd.push(chosen[i] !== null && chosen[i].fault.mode === 'wrong_block' ? wrongBlockCall(c, chosen[i].fault.params) : c);
	});
	let answers = [];
	if (fwd.length > 0) {
		const up = await forwardOr502(req, res, Buffer.from(JSON.stringify(fwd)));
		if (up === null || res.destroyed)
			return;
		const doc = parseJson(up.body);
		if (!Array.isArray(doc))
			return sendUpstream(res, up);
		answers = doc;
	}
	const byId = new Map();
	for (const a of answers)
		if (isObject(a) && a.id !== undefined && a.id !== null)
			byId.set(JSON.stringify(a.id), a);
	const out = [];
	calls.forEach((c, i) => {
		const ch = chosen[i];
		const id = isObject(c) && c.id !== undefined ? c.id : null;
		if (ch !== null && ch.fault.mode === 'rpc_error')
			out.push({ jsonrpc: '2.0', id, error: faultError(ch.fault.params) });
		else if (ch !== null && ch.fault.mode === 'range_limit')
			out.push({ jsonrpc: '2.0', id, error: ch.extra });
		else {
			const a = byId.get(JSON.stringify(id));
			byId.delete(JSON.stringify(id));
			if (a === undefined)
				return;
			const r = ch !== null ? rewrite(ch.fault.mode, ch.fault.params, c, a) : null;
			out.push(r === null ? a : r);
		}
	});
	/* answers to no call of ours (an error with a null id, say) stay */
	for (const a of answers)
		if (!isObject(a) || a.id === undefined || a.id === null)
			out.push(a);
	sendJson(res, 200, out);
}

async function handle(req, res) {
	req.on('error', () => {});
	res.on('error', () => {});
	const body = await readBody(req);
	let path;
	try {
		path = new URL(req.url, 'http://proxy').pathname;
	} catch (e) {
		path = req.url;
	}
	if (path.startsWith('/__'))
		return handleControl(req, res, path, body);
	inFlight++;
	stats.max_in_flight = Math.max(stats.max_in_flight, inFlight);
	res.on('close', () => inFlight--);
	return handleRpc(req, res, body);
}

const server = http.createServer({ noDelay: true, requestTimeout: 0 }, (req, res) => {
	handle(req, res).catch((e) => {
		/* a client that went away mid-request is nobody's fault */
		if (req.destroyed && (e.aborted || e.code === 'ECONNRESET' || e.message === 'aborted'))
			return;
		/* a bug: answer if still possible, never die */
		process.stderr.write(`fault_proxy: ${e && e.stack || e}\n`);
		if (!res.destroyed && !res.headersSent)
			sendText(res, 500, `fault_proxy internal error: ${e && e.message}`);
	});
});

/* keep idle client connections long enough for libcurl to reuse them */
server.keepAliveTimeout = 65000;
server.on('clientError', (err, socket) => {
	if (socket.writable && !socket.destroyed)
		socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
	else
		socket.destroy();
});

/* the last resort: a test tool that dies silently is worse than a bug */
process.on('uncaughtException', (e) => {
	process.stderr.write(`fault_proxy: uncaught: ${e && e.stack || e}\n`);
});
process.on('unhandledRejection', (e) => {
	process.stderr.write(`fault_proxy: unhandled: ${e && e.stack || e}\n`);
});

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */
/* ------------------------------------------------------------------ */

let listenPort = null;

server.on('error', (e) => {
	process.stderr.write(`fault_proxy: cannot listen: ${e.message}\n`);
	process.exit(1);
});

server.listen(Number(opts.listen), opts.host, () => {
	listenPort = server.address().port;
	if (opts.portfile) {
		const tmp = `${opts.portfile}.tmp.${process.pid}`;
		fs.writeFileSync(tmp, `${listenPort}\n`);
		fs.renameSync(tmp, opts.portfile);
	}
	process.stdout.write(`listening ${listenPort}\n`);
	debug(`forwarding to ${opts.upstream}`);
});

function shutdown(signal) {
	debug(`${signal}: exiting`);
	server.close();
	server.closeAllConnections();
	for (const res of held)
		res.destroy();
	upstreamAgent.destroy();
	/* remove the port file, unless another proxy has replaced it meanwhile */
	if (opts.portfile && listenPort !== null) {
		try {
			if (fs.readFileSync(opts.portfile, 'utf8').trim() === String(listenPort))
				fs.unlinkSync(opts.portfile);
		} catch (e) {
			/* already gone */
		}
	}
	process.exit(0);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
