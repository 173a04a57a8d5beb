// cases.mjs - Stellar values, headers and event ids, and what independent
// decoders make of them, for test/t/020_stellar_scval.pl.
//
//   node cases.mjs DATA_DIR OUT_DIR
//
// DATA_DIR is ../shared/data/stellar.  Writes, tab-separated, one row per line:
//
//   OUT_DIR/values.tsv    label, XDR (hex), tagged JSON, native JSON
//     - golden/<n>:  the 576 topics and data of large_range_ledger_txs.golden;
//       the tagged JSON is stellar-etl's decoded JSON from that file
//     - lcm/<ledger>/<n>: every topic and data of every event (transaction,
//       operation) in the five pubnet LedgerCloseMeta files
//     - gen/<arm>/<n>: values of every ScVal arm and its edges, built with
//       @stellar/stellar-base (integer limits, every byte in strings, null
//       and empty vec and map, every address kind, every error, contract
//       instances, 100 levels of nesting)
//     the tagged JSON comes from @stellar/stellar-xdr-json (decode("ScVal"))
//     except for golden rows, where it is stellar-etl's and
//     xdr-json's must agree with it (checked here); the native JSON is
//     stellar-base's scValToNative written as the documented JSON (bigints
//     as exact numbers, bytes as hex, NUL in text as U+FFFD; maps whose keys
//     are not all scalars as [key, value] pairs; the three arms it leaves as
//     XDR objects as in the tagged form, native inside)
//   OUT_DIR/malformed.tsv label, XDR (hex), a fragment the error must contain
//   OUT_DIR/strkeys.tsv   kind letter, payload (hex), strkey (stellar-base's StrKey)
//   OUT_DIR/bad_strkeys.tsv strkey, a fragment the error must contain
//   OUT_DIR/headers.tsv   label, header XDR (hex), sequence, hash, previous
//     hash, close time (Unix seconds), protocol version:
//     - golden/<sequence>: the 406 contiguous LedgerHeaders of
//       2024_ledgers.golden with stellar-etl's fields (its ledger_hash,
//       previous_ledger_hash, closed_at, protocol_version)
//     - lcm/<sequence>: the LedgerHeaderHistoryEntry of each LedgerCloseMeta,
//       its fields as stellar-base reads them and its hash
//   OUT_DIR/toids.tsv     ledger, TOID of stellar-etl's operation_id and
//     transaction_id of every golden event (the ids getEvents builds from)
import fs from "fs";
import path from "path";
import zlib from "zlib";
import { xdr, StrKey, scValToNative, nativeToScVal } from "@stellar/stellar-base";
import init, { decode } from "@stellar/stellar-xdr-json";
import { createRequire } from "module";

const require = createRequire(import.meta.url);
const [dataDir, outDir] = process.argv.slice(2);
await init(fs.readFileSync(path.join(path.dirname(require.resolve("@stellar/stellar-xdr-json")),
	"stellar_xdr_json_bg.wasm")));

const hex = (b) => Buffer.from(b).toString("hex");
const tagged = (b64) => decode("ScVal", b64);

// JSON text of a native value: bigints exact, bytes hex
function nativeJson(v) {
	if (v === null || v === undefined) return "null";
	if (typeof v === "bigint") return v.toString();
	if (typeof v === "number" || typeof v === "boolean") return String(v);
	if (typeof v === "string") return JSON.stringify(v.replace(/\u0000/g, "\ufffd"));
	if (v instanceof Uint8Array) return JSON.stringify(hex(v));
	if (Array.isArray(v)) return "[" + v.map(nativeJson).join(",") + "]";
	return "{" + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ":" + nativeJson(x)).join(",") + "}";
}

const SCALAR_KEYS = new Set(["scvBool", "scvVoid", "scvU32", "scvI32", "scvU64", "scvI64",
	"scvTimepoint", "scvDuration", "scvU128", "scvI128", "scvU256", "scvI256", "scvString",
	"scvSymbol", "scvAddress"]);

// the native form's JSON of an xdr.ScVal (see the header)
function native(scv) {
	const arm = scv.switch().name;
	if (arm === "scvVec" && scv.vec()) return "[" + scv.vec().map(native).join(",") + "]";
	if (arm === "scvMap" && scv.map()) return nativeMap(scv.map());
	if (arm === "scvContractInstance") {
		const ci = scv.instance();
		const ex = ci.executable().switch().name === "contractExecutableWasm"
			? JSON.stringify({ wasm: hex(ci.executable().wasmHash()) }) : '"stellar_asset"';
		return `{"executable":${ex},"storage":${ci.storage() ? nativeMap(ci.storage()) : "{}"}}`;
	}
	if (arm === "scvLedgerKeyContractInstance") return '"ledger_key_contract_instance"';
	if (arm === "scvLedgerKeyNonce") return `{"nonce":${scv.nonceKey().nonce().toBigInt()}}`;
	return nativeJson(scValToNative(scv));
}

function nativeMap(entries) {
	if (entries.every((e) => SCALAR_KEYS.has(e.key().switch().name)))
		return nativeJson(scValToNative(xdr.ScVal.scvMap(entries)));
	return "[" + entries.map((e) => `[${native(e.key())},${native(e.val())}]`).join(",") + "]";
}

const values = [];
function add(label, scv, expectTagged) {
	const b64 = typeof scv === "string" ? scv : scv.toXDR("base64");
	const v = typeof scv === "string" ? xdr.ScVal.fromXDR(scv, "base64") : scv;
	const t = tagged(b64);
	if (expectTagged !== undefined && JSON.stringify(sortKeys(JSON.parse(t))) !==
		JSON.stringify(sortKeys(expectTagged)))
		throw new Error(`${label}: stellar-xdr-json and stellar-etl disagree: ${t}`);
	values.push([label, hex(Buffer.from(b64, "base64")),
		expectTagged !== undefined ? JSON.stringify(expectTagged) : t, native(v)]);
}
function sortKeys(v) {
	if (Array.isArray(v)) return v.map(sortKeys);
	if (v && typeof v === "object")
		return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
	return v;
}

// --- stellar-etl's golden events
let n = 0;
for (const line of fs.readFileSync(path.join(dataDir, "large_range_ledger_txs.golden"), "utf8").split("\n")) {
	if (!line) continue;
	const r = JSON.parse(line);
	r.topics.forEach((t, i) => add(`golden/${n++}`, t, r.topics_decoded[i]));
	add(`golden/${n++}`, r.data, r.data_decoded);
}

// --- every event of the LedgerCloseMeta files
for (const f of fs.readdirSync(path.join(dataDir, "lcm")).sort()) {
	const lcm = xdr.LedgerCloseMeta.fromXDR(zlib.gunzipSync(fs.readFileSync(path.join(dataDir, "lcm", f))));
	const seq = lcm.value().ledgerHeader().header().ledgerSeq();
	let k = 0;
	const event = (e) => {
		const body = e.body().v0();
		body.topics().forEach((t) => add(`lcm/${seq}/${k++}`, t));
		add(`lcm/${seq}/${k++}`, body.data());
	};
	for (const tp of lcm.value().txProcessing()) {
		const meta = tp.txApplyProcessing();
		if (meta.switch() === 3) {
			const sm = meta.v3().sorobanMeta();
			if (sm) sm.events().forEach(event);
		} else if (meta.switch() === 4) {
			meta.v4().events().forEach((te) => event(te.event()));
			meta.v4().operations().forEach((op) => op.events().forEach(event));
		}
	}
}

// --- every arm and its edges
const ERROR_CODES = ["scecArithDomain", "scecIndexBounds", "scecInvalidInput", "scecMissingValue",
	"scecExistingValue", "scecExceededLimit", "scecInvalidAction", "scecInternalError", "scecUnexpectedType",
	"scecUnexpectedSize"];
const I64 = (s) => xdr.Int64.fromString(s);
const U64 = (s) => xdr.Uint64.fromString(s);
const key32 = (b) => Buffer.alloc(32, b);
const gen = {
	bool: [xdr.ScVal.scvBool(true), xdr.ScVal.scvBool(false)],
	void: [xdr.ScVal.scvVoid()],
	u32: ["0", "1", "4294967295"].map((s) => xdr.ScVal.scvU32(Number(s))),
	i32: [0, -1, 2147483647, -2147483648].map((v) => xdr.ScVal.scvI32(v)),
	u64: ["0", "18446744073709551615", "9007199254740993"].map((s) => xdr.ScVal.scvU64(U64(s))),
	i64: ["0", "-1", "9223372036854775807", "-9223372036854775808"].map((s) => xdr.ScVal.scvI64(I64(s))),
	timepoint: [xdr.ScVal.scvTimepoint(U64("18446744073709551615")), xdr.ScVal.scvTimepoint(U64("1719250080"))],
	duration: [xdr.ScVal.scvDuration(U64("0")), xdr.ScVal.scvDuration(U64("86400"))],
	u128: ["0", "1", "340282366920938463463374607431768211455", "18446744073709551616"]
		.map((s) => nativeToScVal(BigInt(s), { type: "u128" })),
	i128: ["0", "-1", "170141183460469231731687303715884105727", "-170141183460469231731687303715884105728",
		"-18446744073709551616", "10000000000000000000000"].map((s) => nativeToScVal(BigInt(s), { type: "i128" })),
	u256: ["0", (2n ** 256n - 1n).toString(), (2n ** 192n + 5n).toString()]
		.map((s) => nativeToScVal(BigInt(s), { type: "u256" })),
	i256: [(-(2n ** 255n)).toString(), (2n ** 255n - 1n).toString(), "-1", "-340282366920938463463374607431768211456"]
		.map((s) => nativeToScVal(BigInt(s), { type: "i256" })),
	bytes: [Buffer.alloc(0), Buffer.from([0]), Buffer.from([1, 2, 3]), Buffer.from([1, 2, 3, 4, 5]),
		Buffer.from(Array.from({ length: 256 }, (_, i) => i))].map((b) => xdr.ScVal.scvBytes(b)),
	// every byte value in a string (escapes, invalid UTF-8), valid UTF-8, NUL
	string: [Buffer.alloc(0), Buffer.from("transfer"), Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
		Buffer.from("é€😀 \"quoted\" \\back\\ \t\n\r"), Buffer.from([0x41, 0, 0x42]),
		Buffer.from([0xe2, 0x82, 0x41, 0xf0, 0x9f, 0x98, 0xc3, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf])]
		.map((b) => xdr.ScVal.scvString(b)),
	symbol: ["", "transfer", "a", "abcdefghijklmnopqrstuvwxyz_01234", "set_records"].map((s) => xdr.ScVal.scvSymbol(s)),
	vec: [xdr.ScVal.scvVec(null), xdr.ScVal.scvVec([]),
		xdr.ScVal.scvVec([xdr.ScVal.scvU32(1), xdr.ScVal.scvSymbol("x"), xdr.ScVal.scvVec([xdr.ScVal.scvVoid()])])],
	map: [xdr.ScVal.scvMap(null), xdr.ScVal.scvMap([]),
		nativeToScVal({ amount: 5n, to: "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ" },
			{ type: { amount: ["symbol", "i128"], to: ["symbol", "address"] } }),
		xdr.ScVal.scvMap([new xdr.ScMapEntry({ key: xdr.ScVal.scvU32(7), val: xdr.ScVal.scvBool(true) }),
			new xdr.ScMapEntry({ key: xdr.ScVal.scvI64(I64("-3")), val: xdr.ScVal.scvVoid() }),
			new xdr.ScMapEntry({ key: xdr.ScVal.scvBool(false), val: xdr.ScVal.scvString("f") }),
			new xdr.ScMapEntry({ key: xdr.ScVal.scvVoid(), val: xdr.ScVal.scvU32(0) })]),
		// keys that are not scalars: pairs
		xdr.ScVal.scvMap([new xdr.ScMapEntry({ key: xdr.ScVal.scvVec([xdr.ScVal.scvU32(1)]), val: xdr.ScVal.scvU32(2) }),
			new xdr.ScMapEntry({ key: xdr.ScVal.scvSymbol("s"), val: xdr.ScVal.scvU32(3) })]),
		xdr.ScVal.scvMap([new xdr.ScMapEntry({ key: xdr.ScVal.scvBytes(Buffer.from([1])), val:
			xdr.ScVal.scvMap([new xdr.ScMapEntry({ key: xdr.ScVal.scvSymbol("in"), val: xdr.ScVal.scvU32(1) })]) })])],
	address: [
		xdr.ScVal.scvAddress(xdr.ScAddress.scAddressTypeAccount(xdr.PublicKey.publicKeyTypeEd25519(key32(0x3f)))),
		xdr.ScVal.scvAddress(xdr.ScAddress.scAddressTypeContract(key32(0xc1))),
		xdr.ScVal.scvAddress(xdr.ScAddress.scAddressTypeMuxedAccount(new xdr.MuxedEd25519Account({
			id: U64("18446744073709551615"), ed25519: key32(0x11) }))),
		xdr.ScVal.scvAddress(xdr.ScAddress.scAddressTypeClaimableBalance(
			xdr.ClaimableBalanceId.claimableBalanceIdTypeV0(key32(0x22)))),
		xdr.ScVal.scvAddress(xdr.ScAddress.scAddressTypeLiquidityPool(key32(0x33)))],
	error: [xdr.ScVal.scvError(xdr.ScError.sceContract(0)), xdr.ScVal.scvError(xdr.ScError.sceContract(4294967295)),
		// every system error type, every error code
		...["sceWasmVm", "sceContext", "sceStorage", "sceObject", "sceCrypto", "sceEvents", "sceBudget", "sceValue", "sceAuth"]
			.map((t, i) => xdr.ScVal.scvError(xdr.ScError[t](xdr.ScErrorCode[ERROR_CODES[i]]()))),
		xdr.ScVal.scvError(xdr.ScError.sceAuth(xdr.ScErrorCode[ERROR_CODES[9]]()))],
	contract_instance: [
		xdr.ScVal.scvContractInstance(new xdr.ScContractInstance({
			executable: xdr.ContractExecutable.contractExecutableWasm(key32(0xab)), storage: null })),
		xdr.ScVal.scvContractInstance(new xdr.ScContractInstance({
			executable: xdr.ContractExecutable.contractExecutableStellarAsset(),
			storage: [new xdr.ScMapEntry({ key: xdr.ScVal.scvSymbol("admin"), val: xdr.ScVal.scvU32(1) })] }))],
	ledger_key: [xdr.ScVal.scvLedgerKeyContractInstance(),
		xdr.ScVal.scvLedgerKeyNonce(new xdr.ScNonceKey({ nonce: I64("-9223372036854775808") })),
		xdr.ScVal.scvLedgerKeyNonce(new xdr.ScNonceKey({ nonce: I64("42") }))],
};
for (const [arm, list] of Object.entries(gen))
	list.forEach((v, i) => add(`gen/${arm}/${i}`, v));
// nesting: 100 levels of vec, the limit (the Soroban host's), built by hand
// (stellar-base reads fewer); native: the same arrays
const nested = (levels) => Buffer.concat([...Array(levels)].map(() => Buffer.from("000000100000000100000001", "hex"))
	.concat([Buffer.from("0000000300000001", "hex")]));
values.push(["gen/nesting/0", hex(nested(100)), tagged(nested(100).toString("base64")),
	"[".repeat(100) + "1" + "]".repeat(100)]);

// --- malformed values
const b = (s) => Buffer.from(s.replace(/ /g, ""), "hex");
const u32 = (v) => { const x = Buffer.alloc(4); x.writeUInt32BE(v); return x; };
const malformed = [
	["empty", Buffer.alloc(0), "ScVal type: 4 bytes needed, 0 left"],
	["unknown type", u32(22), "unknown ScVal type 22"],
	["truncated u64", b("00000005 00000000"), "u64: 8 bytes needed, 4 left"],
	["trailing byte", b("00000003 00000001 00"), "1 bytes after the value"],
	["bool 2", b("00000000 00000002"), "bool is 2, not 0 or 1"],
	["vec flag 2", b("00000010 00000002"), "vec present flag is 2, not 0 or 1"],
	["symbol over 32", Buffer.concat([u32(15), u32(33), Buffer.alloc(36, 0x61)]), "symbol of 33 bytes, longer than 32"],
	["string past the end", Buffer.concat([u32(14), u32(9), Buffer.from("abcd")]), "string of 9 bytes, only 4 left"],
	["non-zero padding", b("0000000e 00000001 41 000100"), "string: non-zero padding byte"],
	["missing padding", b("0000000d 00000001 41"), "bytes: 3 bytes needed, 0 left"],
	["vec count too large", b("00000010 00000001 7fffffff"), "vec of 2147483647 elements, only 0 bytes left"],
	["map entries past the end", b("00000011 00000001 00000001 00000003"), "map of 1 entries, only 4 bytes left"],
	["map key truncated", b("00000011 00000001 00000001 00000005 00000000"), "at byte 16 (map[0].key): u64: 8 bytes needed, 4 left"],
	["bad element in vec", b("00000010 00000001 00000002 00000001 00000063"), "(vec[1]): unknown ScVal type 99"],
	["unknown address type", b("00000012 00000005"), "unknown address type 5"],
	["unknown public key type", Buffer.concat([u32(18), u32(0), u32(1), key32(0)]), "unknown public key type 1"],
	["unknown claimable balance type", Buffer.concat([u32(18), u32(3), u32(1), key32(0)]), "unknown claimable balance id type 1"],
	["unknown error type", b("00000002 0000000a 00000000"), "unknown error type 10"],
	["unknown error code", b("00000002 00000001 0000000a"), "unknown error code 10"],
	["unknown executable", b("00000013 00000002"), "unknown executable type 2"],
	["too deep", nested(101), "nested deeper than 100 levels"],
];

// --- strkeys
const strkeys = [];
const kinds = { G: ["encodeEd25519PublicKey", 32], M: ["encodeMed25519PublicKey", 40], C: ["encodeContract", 32],
	L: ["encodeLiquidityPool", 32], B: ["encodeClaimableBalance", 33], T: ["encodePreAuthTx", 32], X: ["encodeSha256Hash", 32] };
for (const [kind, [fn, len]] of Object.entries(kinds))
	for (let i = 0; i < 20; i++) {
		const p = Buffer.from(Array.from({ length: len }, (_, j) => (i * 37 + j * 11 + (i === 1 ? 255 : 0)) & 255));
		if (i === 0) p.fill(0);
		if (kind === "B") p[0] = 0;
		strkeys.push([kind, hex(p), StrKey[fn](p)]);
	}
const g = strkeys[0][2];
const flip = (s, i, c) => s.slice(0, i) + c + s.slice(i + 1);
const badStrkeys = [
	[flip(g, 55, g[55] === "A" ? "B" : "A"), "checksum does not match"],
	[g.toLowerCase(), "not in the base32 alphabet"],
	[g.slice(0, 54), "no kind has that length"],
	[g.slice(0, 55), "unused trailing bits are not zero"],
	[g + "A", "no kind has that length"],
	[StrKey.encodeEd25519SecretSeed(key32(7)), "unknown strkey version byte 144"],
];

// --- ledger headers
const headers = [];
for (const line of fs.readFileSync(path.join(dataDir, "2024_ledgers.golden"), "utf8").split("\n")) {
	if (!line) continue;
	const r = JSON.parse(line);
	headers.push([`golden/${r.sequence}`, hex(Buffer.from(r.ledger_header, "base64")), r.sequence, r.ledger_hash,
		r.previous_ledger_hash, Date.parse(r.closed_at) / 1000, r.protocol_version]);
}
for (const f of fs.readdirSync(path.join(dataDir, "lcm")).sort()) {
	const lcm = xdr.LedgerCloseMeta.fromXDR(zlib.gunzipSync(fs.readFileSync(path.join(dataDir, "lcm", f))));
	const entry = lcm.value().ledgerHeader();
	const h = entry.header();
	headers.push([`lcm/${h.ledgerSeq()}`, hex(entry.toXDR()), h.ledgerSeq(), hex(entry.hash()),
		hex(h.previousLedgerHash()), h.scpValue().closeTime().toString(), h.ledgerVersion()]);
}
// --- TOIDs
const toids = [];
for (const line of fs.readFileSync(path.join(dataDir, "large_range_ledger_txs.golden"), "utf8").split("\n")) {
	if (!line) continue;
	// the TOIDs are over 2^53: read from the text, not as JavaScript numbers
	const num = (k) => (line.match(new RegExp(`"${k}":(\\d+)`)) || [])[1] ?? "";
	toids.push([JSON.parse(line).ledger_sequence, num("operation_id"), num("transaction_id")]);
}

const tsv = (rows) => rows.map((r) => r.join("\t")).join("\n") + "\n";
fs.writeFileSync(path.join(outDir, "values.tsv"), tsv(values));
fs.writeFileSync(path.join(outDir, "malformed.tsv"), tsv(malformed.map(([l, x, m]) => [l, hex(x), m])));
fs.writeFileSync(path.join(outDir, "strkeys.tsv"), tsv(strkeys));
fs.writeFileSync(path.join(outDir, "bad_strkeys.tsv"), tsv(badStrkeys));
fs.writeFileSync(path.join(outDir, "headers.tsv"), tsv(headers));
fs.writeFileSync(path.join(outDir, "toids.tsv"), tsv(toids));
console.log(`${headers.length} headers, ${toids.length} TOIDs, ${values.length} values, ${malformed.length} malformed, ${strkeys.length} strkeys, ${badStrkeys.length} bad strkeys`);
