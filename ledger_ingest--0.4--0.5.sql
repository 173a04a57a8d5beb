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

-- Handler filters of Stellar pipelines: a topic0 is the XDR of an ScVal
-- (scval_symbol('transfer')), an address a 32-byte contract id
ALTER TABLE handler
	DROP CONSTRAINT handler_topic0_check,
	DROP CONSTRAINT handler_address_check,
	ADD CONSTRAINT handler_topic0_check
		CHECK (pg_catalog.length(topic0) OPERATOR(pg_catalog.>=) 4
			   AND pg_catalog.length(topic0) OPERATOR(pg_catalog.<=) 65536),
	ADD CONSTRAINT handler_address_check
		CHECK (pg_catalog.length(address) OPERATOR(pg_catalog.=) ANY (ARRAY[20, 32]));

-- add_handler: as in 0.3, and for a pipeline of Stellar ledgers ("chain":
-- "stellar") topic0 is the XDR of one ScVal, address a 32-byte contract id
-- (strkey_decode('C...')), and there is no ABI event signature
CREATE OR REPLACE FUNCTION add_handler(pipeline text, handler regprocedure,
							topic0 bytea DEFAULT NULL, address bytea DEFAULT NULL,
							revert regprocedure DEFAULT NULL, event text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	f regprocedure;
	nargs int;
	argtype oid;
	stellar bool;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF handler IS NULL THEN
		RAISE EXCEPTION 'handler must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOREACH f IN ARRAY ARRAY[handler, revert] LOOP
		CONTINUE WHEN f IS NULL;
		SELECT p.pronargs, p.proargtypes[0] INTO nargs, argtype
			FROM pg_proc p WHERE p.oid = f;
		IF nargs IS DISTINCT FROM 1 OR NOT (argtype = 'ledger_ingest.event'::regtype
				OR (argtype = 'ledger_ingest.event[]'::regtype AND f = handler)) THEN
			RAISE EXCEPTION 'handler % must take exactly one argument of type ledger_ingest.event', f
				USING ERRCODE = 'invalid_function_definition',
					  HINT = 'A set-based handler takes ledger_ingest.event[] instead; a revert function takes ledger_ingest.event.';
		END IF;
		IF NOT has_function_privilege(current_user, f, 'EXECUTE') THEN
			RAISE EXCEPTION 'permission denied for function %', f
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	END LOOP;
	SELECT p.options->>'chain' = 'stellar' INTO stellar
		FROM ledger_ingest.pipeline p WHERE p.name = add_handler.pipeline;
	IF stellar THEN
		IF event IS NOT NULL THEN
			RAISE EXCEPTION 'pipeline "%" follows Stellar ledgers: an event signature (Solidity ABI) does not apply', pipeline
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Register by topic0 => ledger_ingest.scval_symbol(''transfer''), and decode with ledger_ingest.scval_to_native().';
		END IF;
		IF topic0 IS NOT NULL THEN
			PERFORM ledger_ingest.scval_to_json(topic0);	-- raises unless one ScVal
		END IF;
		IF address IS NOT NULL AND length(address) <> 32 THEN
			RAISE EXCEPTION 'address of a Stellar pipeline must be a 32-byte contract id, got % bytes', length(address)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'ledger_ingest.strkey_decode(''C...'') gives it.';
		END IF;
	ELSE
		IF event IS NOT NULL THEN
			-- by signature: topic0 is computed, and the worker decodes args
			IF topic0 IS NOT NULL AND topic0 <> ledger_ingest.event_topic(event) THEN
				RAISE EXCEPTION 'topic0 does not match event %', ledger_ingest.event_signature(event)
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			topic0 := ledger_ingest.event_topic(event);
		END IF;
		IF topic0 IS NOT NULL AND length(topic0) <> 32 THEN
			RAISE EXCEPTION 'topic0 must be 32 bytes, got %', length(topic0)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF address IS NOT NULL AND length(address) <> 20 THEN
			RAISE EXCEPTION 'address must be 20 bytes, got %', length(address)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
	RETURN ledger_ingest._catalog_write('add_handler', pipeline,
		ARRAY[ledger_ingest._proc_text(handler), encode(topic0, 'hex'), encode(address, 'hex'),
			  ledger_ingest._proc_text(revert), event]);
END
$$;

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
COMMENT ON FUNCTION add_handler(text, regprocedure, bytea, bytea, regprocedure, text) IS
	'Registers a handler taking ledger_ingest.event (or event[]) for events matching topic0 (EVM: 32 bytes; Stellar: an ScVal''s XDR), address (EVM: 20 bytes; Stellar: a 32-byte contract id) or an event signature (EVM); optional revert function for reorgs. Returns the handler id.';
