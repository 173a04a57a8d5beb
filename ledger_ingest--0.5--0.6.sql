/* ledger_ingest--0.5--0.6.sql: the stellar_rpc source, block handlers, table sinks */

\echo Use "ALTER EXTENSION ledger_ingest UPDATE TO '0.6'" to load this file. \quit

ALTER TABLE pipeline
	DROP CONSTRAINT pipeline_source_check,
	ADD CONSTRAINT pipeline_source_check
		CHECK (source OPERATOR(pg_catalog.=) ANY (ARRAY['inbox', 'evm_rpc', 'stellar_rpc']));

-- Block handlers: a handler row with "every" is called once per ledger whose
-- number is a multiple of it, with the ledger's header (add_block_handler)
ALTER TABLE handler ADD COLUMN every integer CHECK (every OPERATOR(pg_catalog.>=) 1);

-- Table sinks: a sink row with "event" is a table sink (add_table_sink)
ALTER TABLE sink
	ADD COLUMN event text,
	ADD COLUMN address bytea CHECK (pg_catalog.length(address) OPERATOR(pg_catalog.=) 20),
	ADD COLUMN columns jsonb;

-- create_pipeline(name, source 'inbox'|'evm_rpc'|'stellar_rpc', options
-- jsonb): creates a stopped pipeline owned by current_user with its cursor
-- at ledger options.from_block (evm_rpc, inbox) or options.from_ledger
-- (stellar_rpc) - 1, or -1.  Call start() to run it.
CREATE OR REPLACE FUNCTION create_pipeline(name text, source text, options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_admin();
	IF source IS NULL OR source NOT IN ('inbox', 'evm_rpc', 'stellar_rpc') THEN
		RAISE EXCEPTION 'invalid source "%"', source
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'source must be ''inbox'', ''evm_rpc'' or ''stellar_rpc''.';
	END IF;
	PERFORM ledger_ingest._catalog_write('create_pipeline', create_pipeline.name,
		ARRAY[source, coalesce(options, '{}')::text]);
	-- a dropped pipeline of the same name may still have shared state
	PERFORM ledger_ingest._publish_cursor(create_pipeline.name);
END
$$;

-- add_handler: as in 0.5; a stellar_rpc pipeline follows Stellar ledgers
-- as an inbox pipeline with "chain": "stellar" does
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
	SELECT p.options->>'chain' = 'stellar' OR p.source = 'stellar_rpc' INTO stellar
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

COMMENT ON FUNCTION create_pipeline(text, text, jsonb) IS
	'Creates a stopped pipeline (source ''inbox'', ''evm_rpc'' or ''stellar_rpc'', validated options) owned by current_user, its cursor at options.from_block (or from_ledger) - 1, or -1.';

-- add_block_handler(pipeline, handler, every): registers a function taking
-- one ledger_ingest.ledger (the ledger's header: pipeline, number, hash,
-- parent_hash, time, events, applied_at), called once per applied ledger
-- whose number is a multiple of every (1: every ledger; evm_rpc and
-- stellar_rpc fetch those ledgers even without events), inside the apply
-- transaction, after that ledger's per-event handlers.  The caller needs
-- EXECUTE on it.  Returns the handler id (registration order, shared with
-- add_handler); remove_handler() removes it.
CREATE FUNCTION add_block_handler(pipeline text, handler regprocedure, every integer DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nargs int;
	argtype oid;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF handler IS NULL OR every IS NULL THEN
		RAISE EXCEPTION 'handler and every must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF every < 1 THEN
		RAISE EXCEPTION 'every must be at least 1, got %', every USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT p.pronargs, p.proargtypes[0] INTO nargs, argtype FROM pg_proc p WHERE p.oid = handler;
	IF nargs IS DISTINCT FROM 1 OR argtype <> 'ledger_ingest.ledger'::regtype THEN
		RAISE EXCEPTION 'block handler % must take exactly one argument of type ledger_ingest.ledger', handler
			USING ERRCODE = 'invalid_function_definition';
	END IF;
	IF NOT has_function_privilege(current_user, handler, 'EXECUTE') THEN
		RAISE EXCEPTION 'permission denied for function %', handler
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN ledger_ingest._catalog_write('add_block_handler', pipeline,
		ARRAY[ledger_ingest._proc_text(handler), every::text]);
END
$$;

REVOKE ALL ON FUNCTION add_block_handler(text, regprocedure, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_block_handler(text, regprocedure, integer) TO ledger_ingest_admin;
COMMENT ON FUNCTION add_block_handler(text, regprocedure, integer) IS
	'Registers a handler taking ledger_ingest.ledger, called once per applied ledger whose number is a multiple of every, after its event handlers. Returns the handler id.';

-- _table_sink_check(tbl, event, columns): add_table_sink's checks (the
-- signature, and each column of tbl against the event's arguments and the
-- fields of ledger_ingest.event, src/table_sink.c); the canonical signature
CREATE FUNCTION _table_sink_check(tbl regclass, event text, columns jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_ingest_table_sink_check'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- add_table_sink(pipeline, tbl, event, address, columns): each log of the
-- Solidity event (of contract address, when given) lands as a row of tbl,
-- in the apply transaction: its arguments decoded in C into the columns
-- named after them (or as columns maps them: {"column": "argument or
-- event field"}), fields of ledger_ingest.event into columns named after
-- them (src/table_sink.c says which types hold which arguments).  Columns
-- that fit nothing are refused unless they have a default.  The pipeline
-- owner needs INSERT on tbl; no row-level security.
CREATE FUNCTION add_table_sink(pipeline text, tbl regclass, event text,
							   address bytea DEFAULT NULL, columns jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF tbl IS NULL OR event IS NULL THEN
		RAISE EXCEPTION 'tbl and event must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name = add_table_sink.pipeline
			   AND (p.options->>'chain' = 'stellar' OR p.source = 'stellar_rpc')) THEN
		RAISE EXCEPTION 'pipeline "%" follows Stellar ledgers: a table sink decodes Solidity ABI events', pipeline
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use add_raw_sink, and decode with ledger_ingest.scval_to_native().';
	END IF;
	IF address IS NOT NULL AND length(address) <> 20 THEN
		RAISE EXCEPTION 'address must be 20 bytes, got %', length(address)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT has_table_privilege(current_user, tbl, 'INSERT') THEN
		RAISE EXCEPTION 'permission denied for table %', tbl USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = tbl) THEN
		RAISE EXCEPTION 'table sink table % has row-level security enabled', tbl
			USING ERRCODE = 'feature_not_supported';
	END IF;
	PERFORM ledger_ingest._table_sink_check(tbl, event, columns);
	PERFORM ledger_ingest._catalog_write('add_table_sink', pipeline,
		ARRAY[tbl::oid::text, event, encode(address, 'hex'), columns::text]);
END
$$;

-- remove_table_sink(pipeline, tbl): stops writing logs into tbl.
CREATE FUNCTION remove_table_sink(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF ledger_ingest._catalog_write('remove_raw_sink', pipeline, ARRAY[tbl::oid::text]) = 0 THEN
		RAISE EXCEPTION 'table % is not a sink of pipeline "%"', tbl, pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;

REVOKE ALL ON FUNCTION _table_sink_check(regclass, text, jsonb),
	add_table_sink(text, regclass, text, bytea, jsonb), remove_table_sink(text, regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _table_sink_check(regclass, text, jsonb),
	add_table_sink(text, regclass, text, bytea, jsonb), remove_table_sink(text, regclass) TO ledger_ingest_admin;
COMMENT ON FUNCTION _table_sink_check(regclass, text, jsonb) IS
	'Internal: add_table_sink''s checks of a table against an event signature';
COMMENT ON FUNCTION add_table_sink(text, regclass, text, bytea, jsonb) IS
	'Writes each log of a Solidity event as a row of a table, its arguments decoded into typed columns, in the apply transaction.';
COMMENT ON FUNCTION remove_table_sink(text, regclass) IS
	'Stops writing a table sink.';
