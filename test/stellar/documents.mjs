// documents.mjs - Stellar ledger documents for the inbox, read from a
// Stellar RPC server (the replay server in tests) as a producer would: each
// ledger's getLedgers entry (without metadataXdr) plus its getEvents events
// (xdrFormat base64), for test/t/022_stellar_inbox.pl.
//
//   node documents.mjs URL DATA_DIR OUT_DIR
//
// Writes, tab-separated:
//   OUT_DIR/documents.tsv  sequence, document (JSON), for every ledger the
//                          server holds
//   OUT_DIR/events.tsv     id, contractId, txHash, topics (base64, comma-
//                          separated), value (base64): every event getEvents
//                          serves, read over the whole range by cursor
//   OUT_DIR/fees.tsv       txHash, feeCharged: every transaction of every
//                          ledger, from its TransactionResult in the
//                          LedgerCloseMeta (metadataXdr), read with
//                          @stellar/stellar-base
//   OUT_DIR/headers.tsv    sequence, document: the 406 contiguous pubnet
//                          headers of DATA_DIR/2024_ledgers.golden as
//                          documents without events
import fs from "fs";
import path from "path";
import { xdr } from "@stellar/stellar-base";

const [url, dataDir, outDir] = process.argv.slice(2);
let id = 0;
async function call(method, params) {
	const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" },
		body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }) });
	const doc = await r.json();
	if (doc.error) throw new Error(`${method}: ${doc.error.message}`);
	return doc.result;
}

const health = await call("getHealth");
const docs = [], fees = [];
let page = await call("getLedgers", { startLedger: health.oldestLedger, pagination: { limit: 200 } });
for (;;) {
	for (const l of page.ledgers) {
		const events = [];
		let ev = await call("getEvents", { startLedger: l.sequence, endLedger: l.sequence + 1, filters: [],
			pagination: { limit: 10000 } });
		for (;;) {
			events.push(...ev.events.filter((e) => e.ledger === l.sequence));
			if (ev.events.length < 10000) break;
			ev = await call("getEvents", { filters: [], pagination: { cursor: ev.cursor, limit: 10000 } });
		}
		const meta = xdr.LedgerCloseMeta.fromXDR(l.metadataXdr, "base64");
		for (const tp of meta.value().txProcessing())
			fees.push([tp.result().transactionHash().toString("hex"), tp.result().result().feeCharged().toString()]);
		const doc = { sequence: l.sequence, hash: l.hash, ledgerCloseTime: l.ledgerCloseTime, headerXdr: l.headerXdr, events };
		docs.push([l.sequence, JSON.stringify(doc)]);
	}
	if (page.ledgers.length === 0 || Number(page.cursor) >= health.latestLedger) break;
	page = await call("getLedgers", { pagination: { cursor: page.cursor, limit: 200 } });
}

// every event, over the whole range
const all = [];
let ev = await call("getEvents", { startLedger: health.oldestLedger, filters: [], pagination: { limit: 10000 } });
for (;;) {
	all.push(...ev.events.map((e) => [e.id, e.contractId, e.txHash, (e.topic ?? []).join(","), e.value]));
	if (ev.events.length < 10000 && BigInt(ev.cursor.split("-")[0]) >> 32n >= BigInt(health.latestLedger)) break;
	ev = await call("getEvents", { filters: [], pagination: { cursor: ev.cursor, limit: 10000 } });
}

const headers = [];
for (const line of fs.readFileSync(path.join(dataDir, "2024_ledgers.golden"), "utf8").split("\n")) {
	if (!line) continue;
	const r = JSON.parse(line);
	headers.push([r.sequence, JSON.stringify({ sequence: r.sequence, hash: r.ledger_hash,
		ledgerCloseTime: String(Date.parse(r.closed_at) / 1000), headerXdr: r.ledger_header })]);
}

const tsv = (rows) => rows.map((r) => r.join("\t")).join("\n") + "\n";
fs.writeFileSync(path.join(outDir, "documents.tsv"), tsv(docs));
fs.writeFileSync(path.join(outDir, "events.tsv"), tsv(all));
fs.writeFileSync(path.join(outDir, "fees.tsv"), tsv(fees));
fs.writeFileSync(path.join(outDir, "headers.tsv"), tsv(headers));
console.log(`${docs.length} documents, ${all.length} events, ${fees.length} transactions, ${headers.length} headers`);
