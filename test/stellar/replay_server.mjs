#!/usr/bin/env node
// replay_server.mjs - a Stellar RPC server (JSON-RPC 2.0 over HTTP) that
// replays real pubnet ledgers, for tests: no Stellar node or RPC server can
// be installed here.
//
//   node test/stellar/replay_server.mjs --data DIR [--listen PORT]
//        [--portfile FILE] [--host ADDR] [--passphrase TEXT]
//
//   --data DIR       ../shared/data/stellar: every lcm/ledger-*.xdr.gz
//                    (LedgerCloseMeta) is a ledger the server holds
//   --listen PORT    0 (the default) picks a free port; "listening PORT" is
//                    printed once listening
//   --portfile FILE  the port is also written there (temp file + rename),
//                    and removed on SIGTERM or SIGINT
//   --passphrase     the network passphrase getNetwork answers (default
//                    pubnet's)
//   --headers FILE   also hold the ledgers of FILE (2024_ledgers.golden:
//                    real headers, contiguous) without their transactions
//   --header-events N  and give each of those, L, the first L % N events of
//                    the first LedgerCloseMeta ledger, re-numbered as L's
//                    (test-only: events in contiguous ledgers)
//
// Methods, in the shapes of stellar-rpc (cmd/stellar-rpc/internal/methods)
// and go-stellar-sdk's protocols/rpc, which @stellar/stellar-sdk's
// rpc.Server parses:
//   getHealth        {status: "healthy", latestLedger, oldestLedger,
//                     ledgerRetentionWindow}
//   getNetwork       {passphrase, protocolVersion}
//   getLatestLedger  {id, sequence, protocolVersion, closeTime, headerXdr
//                     (a LedgerHeader), metadataXdr}
//   getLedgers       {startLedger | pagination.cursor, pagination.limit
//                     (default 50, at most 200)}: {ledgers: [{hash,
//                     sequence, ledgerCloseTime, headerXdr (a
//                     LedgerHeaderHistoryEntry), metadataXdr}], latestLedger,
//                     latestLedgerCloseTime, oldestLedger,
//                     oldestLedgerCloseTime, cursor (the last sequence)}
//   getEvents        {startLedger, endLedger | pagination.cursor,
//                     pagination.limit (default 100, at most 10000),
//                     filters: [{type, contractIds, topics}]}: scans at
//                     most 10,000 ledgers from the start (LedgerScanLimit),
//                     returns {events, cursor, latestLedger, oldestLedger,
//                     latestLedgerCloseTime, oldestLedgerCloseTime}; the
//                     cursor is the last event's id when the page is full,
//                     else the largest id of the last ledger scanned
// The events are those stellar-rpc stores (db/event.go InsertEvents): each
// transaction's events (before all transactions: transaction 0; after its
// operations: operation 4095; after all transactions: transaction
// 1048575) and each operation's (transaction 1.., operation 0..), with
// their ids "<TOID>-<index>".  Only the ledgers in --data exist (a real
// server holds every ledger of its window): getLedgers' pages hold "limit"
// of those, skipping the others.
// Errors: stellar-rpc's texts (startLedger outside the range: -32600
// "startLedger must be within the ledger range: A - B"; getLedgers' "start
// ledger must be between the oldest ledger: A and the latest ledger: B for
// this rpc instance"; "limit must not exceed N" as go-stellar-sdk checks
// it), other bad parameters -32602.  Only Node's modules and
// @stellar/stellar-base are used.
import crypto from "crypto";
import fs from "fs";
import http from "http";
import path from "path";
import zlib from "zlib";
import { xdr, StrKey } from "@stellar/stellar-base";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
	const i = args.indexOf(name);
	return i >= 0 ? args[i + 1] : dflt;
};
const dataDir = opt("--data");
if (!dataDir) {
	console.error("usage: replay_server.mjs --data DIR [--listen PORT] [--portfile FILE]");
	process.exit(2);
}
const passphrase = opt("--passphrase", "Public Global Stellar Network ; September 2015");

const LEDGER_SCAN_LIMIT = 10000;
const EVENTS_LIMIT = { dflt: 100, max: 10000 };
const LEDGERS_LIMIT = { dflt: 50, max: 200 };
const TX_MASK = 1048575;
const OP_MASK = 4095;
const RETENTION = 120960;

const toid = (ledger, tx, op) => (BigInt(ledger) << 32n) | (BigInt(tx) << 12n) | BigInt(op);
const eventId = (ledger, tx, op, index) =>
	`${toid(ledger, tx, op).toString().padStart(19, "0")}-${String(index).padStart(10, "0")}`;
const rfc3339 = (secs) => new Date(Number(secs) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
const EVENT_TYPES = { 0: "system", 1: "contract", 2: "diagnostic" };

// --- the ledgers and their events
const ledgers = [];
for (const f of fs.readdirSync(path.join(dataDir, "lcm")).filter((f) => f.endsWith(".xdr.gz")).sort()) {
	const raw = zlib.gunzipSync(fs.readFileSync(path.join(dataDir, "lcm", f)));
	const lcm = xdr.LedgerCloseMeta.fromXDR(raw);
	const entry = lcm.value().ledgerHeader();
	const header = entry.header();
	const seq = header.ledgerSeq();
	const closeTime = header.scpValue().closeTime().toString();
	const events = [];
	let before = 0, after = 0;
	const add = (event, tx, op, index, txHash, ok) => {
		const body = event.body().v0();
		const e = {
			type: EVENT_TYPES[event.type().value],
			ledger: seq,
			ledgerClosedAt: rfc3339(closeTime),
			contractId: event.contractId() ? StrKey.encodeContract(event.contractId()) : "",
			id: eventId(seq, tx, op, index),
			operationIndex: op,
			transactionIndex: tx,
			txHash,
			inSuccessfulContractCall: ok,
			topic: body.topics().map((t) => t.toXDR("base64")),
			value: body.data().toXDR("base64"),
		};
		if (e.topic.length === 0) delete e.topic;
		// for filtering: the raw values
		Object.defineProperty(e, "_topics", { value: body.topics().map((t) => t.toXDR("base64")) });
		events.push(e);
	};
	lcm.value().txProcessing().forEach((tp, i) => {
		const tx = i + 1;
		const txHash = tp.result().transactionHash().toString("hex");
		const code = tp.result().result().result().switch().name;
		const ok = code === "txSuccess" || code === "txFeeBumpInnerSuccess";
		const meta = tp.txApplyProcessing();
		if (meta.switch() === 4) {
			let afterTx = 0;
			for (const te of meta.v4().events()) {
				const stage = te.stage().name;
				if (stage === "transactionEventStageBeforeAllTxs") add(te.event(), 0, 0, before++, txHash, ok);
				else if (stage === "transactionEventStageAfterAllTxs") add(te.event(), TX_MASK, 0, after++, txHash, ok);
				else add(te.event(), tx, OP_MASK, afterTx++, txHash, ok);
			}
			meta.v4().operations().forEach((op, j) => op.events().forEach((ev, k) => add(ev, tx, j, k, txHash, ok)));
		} else if (meta.switch() === 3 && meta.v3().sorobanMeta()) {
			meta.v3().sorobanMeta().events().forEach((ev, k) => add(ev, tx, 0, k, txHash, ok));
		}
	});
	events.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
	ledgers.push({
		sequence: seq,
		hash: entry.hash().toString("hex"),
		closeTime,
		protocolVersion: header.ledgerVersion(),
		headerXdr: entry.toXDR("base64"),
		header: header.toXDR("base64"),
		metadataXdr: raw.toString("base64"),
		events,
	});
}
// --headers FILE: ledgers known by their headers alone (2024_ledgers.golden:
// one JSON object per line with ledger_header, a base64 LedgerHeader), held
// without transactions or events; metadataXdr is an empty LedgerCloseMeta
// v0 of that header
const headersFile = opt("--headers");
if (headersFile) {
	for (const line of fs.readFileSync(headersFile, "utf8").split("\n")) {
		if (!line.trim()) continue;
		const g = JSON.parse(line);
		const raw = Buffer.from(g.ledger_header, "base64");
		const header = xdr.LedgerHeader.fromXDR(raw);
		const hash = crypto.createHash("sha256").update(raw).digest();
		const zero = Buffer.alloc(4);
		const entry = Buffer.concat([hash, raw, zero]);	// LedgerHeaderHistoryEntry, ext v0
		const meta = Buffer.concat([zero, entry, header.previousLedgerHash(), zero, zero, zero, zero]);
		if (ledgers.some((l) => l.sequence === header.ledgerSeq())) continue;
		ledgers.push({
			sequence: header.ledgerSeq(),
			hash: hash.toString("hex"),
			closeTime: header.scpValue().closeTime().toString(),
			protocolVersion: header.ledgerVersion(),
			headerXdr: entry.toString("base64"),
			header: raw.toString("base64"),
			metadataXdr: meta.toString("base64"),
			events: [],
		});
	}
}
// --header-events N: each header-only ledger L gets the first L % N events
// of the first LedgerCloseMeta ledger, as if emitted in L (ids, ledger and
// close time rewritten): events in contiguous ledgers, for windows and
// pages that end inside a run of ledgers with events (test-only data)
const headerEvents = Number(opt("--header-events", "0"));
if (headersFile && headerEvents > 0) {
	const src = ledgers.filter((l) => l.events.length > 0).sort((a, b) => a.sequence - b.sequence)[0];
	for (const l of ledgers) {
		if (l.events.length > 0 || l === src) continue;
		const n = l.sequence % headerEvents;
		l.events = src.events.slice(0, n).map((e, k) => {
			const c = { ...e, ledger: l.sequence, ledgerClosedAt: rfc3339(l.closeTime),
				id: eventId(l.sequence, e.transactionIndex, e.operationIndex, Number(e.id.split("-")[1])) };
			Object.defineProperty(c, "_topics", { value: e._topics });
			return c;
		});
	}
}
ledgers.sort((a, b) => a.sequence - b.sequence);
if (ledgers.length === 0) {
	console.error(`replay_server: no ledgers in ${dataDir}/lcm`);
	process.exit(1);
}
const oldest = ledgers[0];
const latest = ledgers[ledgers.length - 1];

class RpcError extends Error {
	constructor(code, message) {
		super(message);
		this.code = code;
	}
}
const INVALID_REQUEST = -32600, INVALID_PARAMS = -32602, METHOD_NOT_FOUND = -32601;

const retention = () => ({
	latestLedger: latest.sequence,
	oldestLedger: oldest.sequence,
	latestLedgerCloseTime: latest.closeTime,
	oldestLedgerCloseTime: oldest.closeTime,
});

function limitOf(p, limits) {
	const limit = p.pagination?.limit ?? 0;
	if (!Number.isInteger(limit) || limit < 0) throw new RpcError(INVALID_PARAMS, "invalid pagination limit");
	if (limit > limits.max) throw new RpcError(INVALID_PARAMS, `limit must not exceed ${limits.max}`);
	return limit || limits.dflt;
}

function getLedgers(p) {
	const limit = limitOf(p, LEDGERS_LIMIT);
	let start;
	if (p.pagination?.cursor) {
		if (p.startLedger) throw new RpcError(INVALID_REQUEST, "startLedger and cursor cannot both be set");
		if (!/^\d+$/.test(p.pagination.cursor))
			throw new RpcError(INVALID_PARAMS, `strconv.ParseUint: parsing "${p.pagination.cursor}": invalid syntax`);
		start = Number(p.pagination.cursor) + 1;
		if (start < oldest.sequence || start > latest.sequence)
			throw new RpcError(INVALID_PARAMS, `cursor ('${p.pagination.cursor}') must be between the oldest ledger: ` +
				`${oldest.sequence} and the latest ledger: ${latest.sequence} for this rpc instance`);
	} else {
		start = p.startLedger;
		if (!Number.isInteger(start) || start < oldest.sequence || start > latest.sequence)
			throw new RpcError(INVALID_REQUEST, `start ledger must be between the oldest ledger: ${oldest.sequence} ` +
				`and the latest ledger: ${latest.sequence} for this rpc instance`);
	}
	// limit ledgers of those it holds (the others do not exist here)
	const page = ledgers.filter((l) => l.sequence >= start).slice(0, limit).map((l) => ({
		hash: l.hash, sequence: l.sequence, ledgerCloseTime: l.closeTime, headerXdr: l.headerXdr, metadataXdr: l.metadataXdr,
	}));
	const cursor = page.length > 0 ? String(page[page.length - 1].sequence)
		: p.pagination?.cursor ? p.pagination.cursor : String(start - 1);
	const r = retention();
	return { ledgers: page, latestLedger: r.latestLedger, latestLedgerCloseTime: Number(r.latestLedgerCloseTime),
		oldestLedger: r.oldestLedger, oldestLedgerCloseTime: Number(r.oldestLedgerCloseTime), cursor };
}

// one topic filter (segments: base64 ScVal, "*" any one, "**" any rest)
function topicMatches(filter, topics) {
	for (let i = 0; i < filter.length; i++) {
		if (filter[i] === "**") return i === filter.length - 1;
		if (i >= topics.length) return false;
		if (filter[i] !== "*" && filter[i] !== topics[i]) return false;
	}
	return topics.length === filter.length;
}

function checkFilters(filters) {
	if (!Array.isArray(filters)) throw new RpcError(INVALID_PARAMS, "filters must be an array");
	if (filters.length > 5) throw new RpcError(INVALID_PARAMS, "maximum 5 filters per request");
	filters.forEach((f, i) => {
		if (f.type !== undefined && !["contract", "system", "diagnostic"].includes(f.type))
			throw new RpcError(INVALID_PARAMS, `filter ${i + 1} invalid: if set, type must be either 'system', 'contract' or 'diagnostic'`);
		if ((f.contractIds ?? []).length > 5)
			throw new RpcError(INVALID_PARAMS, `filter ${i + 1} invalid: maximum 5 contract IDs per filter`);
		for (const c of f.contractIds ?? [])
			if (!StrKey.isValidContract(c)) throw new RpcError(INVALID_PARAMS, `invalid contract ID: ${c}`);
		if ((f.topics ?? []).length > 5)
			throw new RpcError(INVALID_PARAMS, `filter ${i + 1} invalid: maximum 5 topics per filter`);
		for (const t of f.topics ?? []) {
			if (!Array.isArray(t) || t.length < 1 || t.length > 4)
				throw new RpcError(INVALID_PARAMS, `filter ${i + 1} invalid: topic must have between 1 and 4 segments`);
			t.forEach((s, k) => {
				if (s === "**" && k !== t.length - 1)
					throw new RpcError(INVALID_PARAMS, `filter ${i + 1} invalid: topic: '**' is only allowed as the last segment`);
				if (s !== "*" && s !== "**") {
					try { xdr.ScVal.fromXDR(s, "base64"); } catch (e) {
						throw new RpcError(INVALID_PARAMS, `filter ${i + 1} invalid: topic: invalid segment ${s}`);
					}
				}
			});
		}
	});
}

function eventMatches(filters, e) {
	if (filters.length === 0) return true;
	return filters.some((f) =>
		(!f.type || f.type === e.type)
		&& (!(f.contractIds?.length) || f.contractIds.includes(e.contractId))
		&& (!(f.topics?.length) || f.topics.some((t) => topicMatches(t, e._topics))));
}

function getEvents(p) {
	const limit = limitOf(p, EVENTS_LIMIT);
	const filters = p.filters ?? [];
	checkFilters(filters);
	let startLedger, startId = null;
	if (p.pagination?.cursor) {
		if (p.startLedger || p.endLedger)
			throw new RpcError(INVALID_PARAMS, "ledger ranges and cursor cannot both be set");
		const m = /^(\d{19})-(\d{10})$/.exec(p.pagination.cursor);
		if (!m) throw new RpcError(INVALID_PARAMS, `invalid cursor ${p.pagination.cursor}`);
		startLedger = Number(BigInt(m[1]) >> 32n);
		startId = p.pagination.cursor;
	} else {
		startLedger = p.startLedger;
		if (!Number.isInteger(startLedger) || startLedger <= 0)
			throw new RpcError(INVALID_PARAMS, "startLedger must be positive");
		if (p.endLedger !== undefined && p.endLedger <= startLedger)
			throw new RpcError(INVALID_PARAMS, "endLedger must be after startLedger");
	}
	let endLedger = Math.min(startLedger + LEDGER_SCAN_LIMIT, latest.sequence + 1);
	if (p.endLedger) endLedger = Math.min(p.endLedger, endLedger);
	if (startLedger < oldest.sequence || startLedger > latest.sequence)
		throw new RpcError(INVALID_REQUEST, `startLedger must be within the ledger range: ${oldest.sequence} - ${latest.sequence}`);
	const found = [];
	scan: for (const l of ledgers) {
		if (l.sequence < startLedger || l.sequence >= endLedger) continue;
		for (const e of l.events) {
			if (startId !== null && e.id <= startId) continue;
			if (!eventMatches(filters, e)) continue;
			found.push(e);
			if (found.length >= limit) break scan;
		}
	}
	const cursor = found.length === limit ? found[found.length - 1].id
		: `${toid(endLedger - 1, TX_MASK, OP_MASK).toString().padStart(19, "0")}-4294967295`;
	return { events: found, cursor, ...retention() };
}

function call(method, params) {
	const p = params ?? {};
	switch (method) {
		case "getHealth":
			return { status: "healthy", latestLedger: latest.sequence, oldestLedger: oldest.sequence,
				ledgerRetentionWindow: RETENTION };
		case "getNetwork":
			return { passphrase, protocolVersion: latest.protocolVersion };
		case "getLatestLedger":
			return { id: latest.hash, sequence: latest.sequence, protocolVersion: latest.protocolVersion,
				closeTime: latest.closeTime, headerXdr: latest.header, metadataXdr: latest.metadataXdr };
		case "getLedgers":
			return getLedgers(p);
		case "getEvents":
			return getEvents(p);
	}
	throw new RpcError(METHOD_NOT_FOUND, `method "${method}" not found`);
}

function answer(req) {
	if (req === null || typeof req !== "object" || req.jsonrpc !== "2.0" || typeof req.method !== "string")
		return { jsonrpc: "2.0", id: req?.id ?? null, error: { code: INVALID_REQUEST, message: "invalid request" } };
	try {
		return { jsonrpc: "2.0", id: req.id ?? null, result: call(req.method, req.params) };
	} catch (e) {
		if (!(e instanceof RpcError)) throw e;
		return { jsonrpc: "2.0", id: req.id ?? null, error: { code: e.code, message: e.message } };
	}
}

const server = http.createServer((req, res) => {
	const chunks = [];
	req.on("data", (c) => chunks.push(c));
	req.on("end", () => {
		let body;
		try {
			const doc = JSON.parse(Buffer.concat(chunks).toString("utf8"));
			body = Array.isArray(doc) ? doc.map(answer) : answer(doc);
		} catch (e) {
			body = { jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } };
		}
		const text = JSON.stringify(body);
		res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
		res.end(text);
	});
});
server.listen(Number(opt("--listen", "0")), opt("--host", "127.0.0.1"), () => {
	const port = server.address().port;
	const pf = opt("--portfile");
	if (pf) {
		fs.writeFileSync(pf + ".tmp", `${port}\n`);
		fs.renameSync(pf + ".tmp", pf);
	}
	console.log(`listening ${port}`);
});
const stop = () => {
	const pf = opt("--portfile");
	if (pf) fs.rmSync(pf, { force: true });
	server.close(() => process.exit(0));
	setTimeout(() => process.exit(0), 500).unref();	// keep-alive clients
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
