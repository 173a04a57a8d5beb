// replay_check.mjs - reads everything the replay server (replay_server.mjs)
// serves through @stellar/stellar-sdk's rpc.Server, a real Stellar RPC
// client, which parses every response (the XDR of headers, metadata, topics
// and values, contract ids): that the client accepts them proves the shapes.
//
//   node replay_check.mjs URL OUT_DIR
//
// Writes OUT_DIR/report.json: {health, network, latest: {sequence, id,
// ledgerSeq}, ledgerCursors (of the pages read by cursor), ledgers: [{sequence, hash, entryHash (as the client parsed
// it), previousLedgerHash, headerXdr (hex, read raw), ledgerCloseTime}],
// pages (getEvents pages read), events: [{id, ledger, transactionIndex,
// operationIndex, type, contractId, topic0 (base64), ntopics}], filtered: {contract,
// byContract, transferTopic, transferFour: ids}, errors: {limit,
// startLedger, ledgersStart: the client's messages}} and
// OUT_DIR/events.tsv (id, ledger, transactionIndex, operationIndex).
import fs from "fs";
import path from "path";
import { rpc, xdr } from "@stellar/stellar-sdk";

const [url, outDir] = process.argv.slice(2);
const server = new rpc.Server(url, { allowHttp: true });
const report = {};

report.health = await server.getHealth();
report.network = await server.getNetwork();
const latest = await server.getLatestLedger();
report.latest = { sequence: latest.sequence, id: latest.id, ledgerSeq: latest.headerXdr.ledgerSeq };

// the ledgers: each page also read raw, for its headerXdr
const raw = async (method, params) => (await (await fetch(url, { method: "POST",
	headers: { "content-type": "application/json" },
	body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) })).json()).result;
report.ledgers = [];
const readLedgers = async (request) => {
	const page = await server.getLedgers(request);
	const rawPage = await raw("getLedgers", request);
	page.ledgers.forEach((l, i) => {
		// parsed: a LedgerHeaderHistoryEntry and a LedgerCloseMeta
		if (l.headerXdr.header.ledgerSeq !== l.sequence || !l.metadataXdr.type)
			throw new Error(`ledger ${l.sequence}: headerXdr or metadataXdr not parsed`);
		report.ledgers.push({
			sequence: l.sequence,
			hash: l.hash,
			entryHash: Buffer.from(l.headerXdr.hash.value).toString("hex"),
			previousLedgerHash: Buffer.from(l.headerXdr.header.previousLedgerHash.value).toString("hex"),
			headerXdr: Buffer.from(rawPage.ledgers[i].headerXdr, "base64").toString("hex"),
			ledgerCloseTime: l.ledgerCloseTime,
		});
	});
	return page;
};
// the oldest, by startLedger; then from the latest day's first ledger, 2
// at a time, by cursor, to the latest
await readLedgers({ startLedger: report.health.oldestLedger, pagination: { limit: 1 } });
const later = await server.getEvents({ startLedger: report.health.latestLedger - 8, filters: [], limit: 1 });
let lpage = await readLedgers({ startLedger: later.events[0].ledger, pagination: { limit: 2 } });
report.ledgerCursors = [lpage.cursor];
while (Number(lpage.cursor) < report.health.latestLedger) {
	lpage = await readLedgers({ pagination: { cursor: lpage.cursor, limit: 2 } });
	report.ledgerCursors.push(lpage.cursor);
}

// every event, 100 per page, by cursor
report.events = [];
report.pages = 0;
let ev = await server.getEvents({ startLedger: report.health.oldestLedger, filters: [], limit: 100 });
for (;;) {
	report.pages++;
	for (const e of ev.events) {
		if (!(e.value instanceof xdr.ScVal) || !e.topic.every((t) => t instanceof xdr.ScVal)
			|| (e.contractId && !e.contractId.contractId().startsWith("C")))
			throw new Error(`event ${e.id}: topics or value not parsed`);
		report.events.push({ id: e.id, ledger: e.ledger, transactionIndex: e.transactionIndex,
			operationIndex: e.operationIndex, type: e.type, contractId: e.contractId ? e.contractId.contractId() : "",
			topic0: e.topic[0] ? e.topic[0].toXDR("base64") : null, ntopics: e.topic.length });
	}
	const last = BigInt(ev.cursor.split("-")[0]) >> 32n;
	if (ev.events.length < 100 && last >= BigInt(report.health.latestLedger)) break;
	ev = await server.getEvents({ cursor: ev.cursor, filters: [], limit: 100 });
}

// filters: the contract with the most events; "transfer" events by topic
const byContract = {};
for (const e of report.events) if (e.contractId) byContract[e.contractId] = (byContract[e.contractId] ?? 0) + 1;
const top = Object.entries(byContract).sort((a, b) => b[1] - a[1])[0][0];
const transfer = xdr.ScVal.scvSymbol("transfer").toXDR("base64");
const readAll = async (filters) => {
	const out = [];
	let r = await server.getEvents({ startLedger: report.health.oldestLedger, filters, limit: 10000 });
	for (;;) {
		out.push(...r.events.map((e) => e.id));
		// a page ends at the limit or after 10,000 ledgers: on to the latest
		if (r.events.length < 10000 && BigInt(r.cursor.split("-")[0]) >> 32n >= BigInt(report.health.latestLedger))
			break;
		r = await server.getEvents({ cursor: r.cursor, filters, limit: 10000 });
	}
	return out;
};
report.filtered = {
	contract: top,
	byContract: await readAll([{ contractIds: [top] }]),
	transferTopic: await readAll([{ topics: [[transfer, "**"]] }]),
	transferFour: await readAll([{ type: "contract", topics: [[transfer, "*", "*", "*"]] }]),
};

// errors, as the client reports them
const error = async (f) => {
	try { await f(); return null; } catch (e) { return String(e.message ?? e); }
};
report.errors = {
	limit: await error(() => server.getEvents({ startLedger: report.health.oldestLedger, filters: [], limit: 10001 })),
	startLedger: await error(() => server.getEvents({ startLedger: 5, filters: [] })),
	ledgersStart: await error(() => server.getLedgers({ startLedger: 5 })),
};

fs.writeFileSync(path.join(outDir, "report.json"), JSON.stringify(report));
fs.writeFileSync(path.join(outDir, "events.tsv"),
	report.events.map((e) => [e.id, e.ledger, e.transactionIndex, e.operationIndex].join("\t")).join("\n") + "\n");
console.log(`${report.ledgers.length} ledgers, ${report.events.length} events in ${report.pages} pages`);
