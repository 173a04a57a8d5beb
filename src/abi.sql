-- Keccak-256 and Solidity ABI decoding (src/abi.c, src/abi_core.c).
-- Fragment of ledger_ingest--0.1.sql: created inside the extension's schema.
--
-- These are pure functions of their arguments: they read no table, no
-- pipeline and no setting, and cannot change anything.  So, unlike the
-- pipeline API, they keep the default EXECUTE privilege of PUBLIC (nothing
-- to REVOKE); whoever may use the ledger_ingest schema may call them.
--
-- Decoded values become jsonb as documented in src/abi_core.h: integers are
-- exact JSON numbers, addresses and bytes lowercase 0x-hex strings, strings
-- JSON strings, arrays JSON arrays, tuples objects when every component is
-- named (arrays otherwise); events give an object of their arguments, with
-- unnamed ones keyed arg0, arg1, ... by position, and indexed string, bytes,
-- arrays and tuples as their 32-byte topic (a keccak256 hash).

-- Ethereum's Keccak-256 (not NIST SHA3-256) of data; 32 bytes.
CREATE FUNCTION keccak256(data bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'ledger_ingest_keccak256'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION keccak256(bytea) IS
	'Ethereum Keccak-256 of data (32 bytes)';

-- topic0 of an event: keccak256 of its canonical signature.  Accepts what
-- users paste: 'event Transfer(address indexed from, address indexed to,
-- uint256 value)', with or without "event", names and "indexed".
CREATE FUNCTION event_topic(signature text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'ledger_ingest_event_topic'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION event_topic(text) IS
	'topic0 (keccak256 of the canonical signature) of an event signature';

-- The canonical signature, e.g. 'Transfer(address,address,uint256)'.
CREATE FUNCTION event_signature(signature text) RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_ingest_event_signature'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION event_signature(text) IS
	'canonical form of an event signature, as hashed into topic0';

-- Decodes abi.encode(...) data of a type list ('uint256,string',
-- '(uint256,string)[]') into a jsonb array, one element per type.
CREATE FUNCTION abi_decode(types text, data bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'ledger_ingest_abi_decode'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION abi_decode(text, bytea) IS
	'Solidity ABI decoding of data as a comma-separated type list, as a jsonb array';

-- Decodes one log (its topics, topics[1] = topic0, and data) of an event
-- into a jsonb object of its arguments.  Topic count and topic0 must match.
CREATE FUNCTION decode_event(signature text, topics bytea[], data bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'ledger_ingest_decode_event'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION decode_event(text, bytea[], bytea) IS
	'Solidity ABI decoding of an event log into a jsonb object of its arguments';
