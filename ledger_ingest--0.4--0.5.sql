/* ledger_ingest--0.4--0.5.sql: Stellar ScVal decoding, strkeys, ledger headers, event ids */

\echo Use "ALTER EXTENSION ledger_ingest UPDATE TO '0.5'" to load this file. \quit

-- Decodes the XDR of one Stellar ScVal (an event topic or its data) into
-- the lossless tagged JSON of stellar-xdr-json: {"u32": 7},
-- {"symbol": "transfer"}, {"i128": "-5"}, {"address": "G..."}, ...
CREATE FUNCTION scval_to_json(xdr bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'ledger_ingest_scval_to_json'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The same value in the convenient form of stellar-base's scValToNative:
-- 7, "transfer", -5, "G...", objects for maps whose keys allow it.
CREATE FUNCTION scval_to_native(xdr bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'ledger_ingest_scval_to_native'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The XDR of the ScVal symbol (what a topic holds), to compare topics with.
CREATE FUNCTION scval_symbol(symbol text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'ledger_ingest_scval_symbol'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- SEP-23 strkeys: kind 'G', 'M', 'C', 'L', 'B', 'T' or 'X' and its payload.
CREATE FUNCTION strkey_encode(kind text, payload bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_ingest_strkey_encode'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION strkey_decode(strkey text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'ledger_ingest_strkey_decode'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The fields of a Stellar LedgerHeader's XDR, or of a
-- LedgerHeaderHistoryEntry's (getLedgers' headerXdr); hash = SHA-256 of the
-- LedgerHeader XDR.
CREATE FUNCTION stellar_ledger_header(header_xdr bytea, OUT sequence bigint, OUT hash bytea,
		OUT previous_ledger_hash bytea, OUT close_time timestamptz, OUT protocol_version integer)
	AS 'MODULE_PATHNAME', 'ledger_ingest_stellar_ledger_header'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A Stellar event's position as stellar-rpc's getEvents id, and back.
CREATE FUNCTION stellar_event_id(ledger bigint, tx_index integer, event_index integer) RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_ingest_stellar_event_id'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION stellar_event_position(id text) RETURNS ledger_ingest.position
	AS 'MODULE_PATHNAME', 'ledger_ingest_stellar_event_position'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

REVOKE ALL ON FUNCTION scval_to_json(bytea), scval_to_native(bytea), scval_symbol(text),
	strkey_encode(text, bytea), strkey_decode(text), stellar_ledger_header(bytea),
	stellar_event_id(bigint, integer, integer), stellar_event_position(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION scval_to_json(bytea), scval_to_native(bytea), scval_symbol(text),
	strkey_encode(text, bytea), strkey_decode(text), stellar_ledger_header(bytea),
	stellar_event_id(bigint, integer, integer), stellar_event_position(text) TO ledger_ingest_admin;

COMMENT ON FUNCTION scval_to_json(bytea) IS
	'Stellar ScVal XDR as the lossless tagged JSON of stellar-xdr-json';
COMMENT ON FUNCTION scval_to_native(bytea) IS
	'Stellar ScVal XDR as the JSON of stellar-base''s scValToNative (exact numbers, text, strkeys, objects)';
COMMENT ON FUNCTION scval_symbol(text) IS
	'The XDR of a Stellar ScVal symbol, as an event topic holds it';
COMMENT ON FUNCTION strkey_encode(text, bytea) IS
	'The SEP-23 strkey (G, M, C, L, B, T or X) of a payload';
COMMENT ON FUNCTION strkey_decode(text) IS
	'The payload of a SEP-23 strkey (G, M, C, L, B, T or X)';
COMMENT ON FUNCTION stellar_ledger_header(bytea) IS
	'Sequence, hash (SHA-256 of the header XDR), previous hash, close time and protocol of a Stellar ledger header';
COMMENT ON FUNCTION stellar_event_id(bigint, integer, integer) IS
	'The stellar-rpc getEvents id (TOID-index) of a Stellar event position';
COMMENT ON FUNCTION stellar_event_position(text) IS
	'The position (ledger, tx_index, event_index) of a stellar-rpc getEvents id';
