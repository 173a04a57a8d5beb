/* ledger_ingest--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION ledger_ingest" to load this file. \quit

/*
 * Security model (see README, "Security"):
 *  - Only superusers and members of ledger_ingest_admin may create and control
 *    pipelines.  The API functions are SECURITY INVOKER; the catalog tables are
 *    protected by row-level security so that a role only sees and changes the
 *    pipelines it owns (owner = a role it is a member of).
 *  - The pipeline owner is recorded from current_user and cannot be chosen.
 *    The worker runs every handler as that owner.
 *  - Nothing is granted to PUBLIC.
 */
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'ledger_ingest_admin') THEN
		CREATE ROLE ledger_ingest_admin NOLOGIN;
	END IF;
END
$$;

-- A position in a ledger stream.  (L, NULL, NULL) means "ledger L and all of
-- its events are applied"; (L, t, e) means "ledger L is applied up to and
-- including event (t, e)" (only seen with commit = 'event').  Ledger -1 with
-- NULLs means "nothing applied yet".
CREATE TYPE ledger_ingest.position AS (
	ledger bigint,
	tx_index integer,
	event_index integer
);

-- The value every handler receives, one per event.
CREATE TYPE event AS (
	pipeline text,
	ledger bigint,
	ledger_hash bytea,
	ledger_time timestamptz,
	tx_index integer,
	tx_hash bytea,
	event_index integer,
	address bytea,
	topics bytea[],
	data bytea,
	args jsonb		-- decoded arguments, for handlers registered by event signature
);

CREATE TABLE pipeline (
	name text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.-]{1,63}$'),
	source text NOT NULL CHECK (source OPERATOR(pg_catalog.=) ANY (ARRAY['inbox', 'evm_rpc'])),
	options jsonb NOT NULL DEFAULT '{}',
	owner regrole NOT NULL DEFAULT current_user::regrole,
	-- desired state: 'running' (the launcher keeps a worker), 'stopped',
	-- 'failed' (stopped by the worker after an error; start() clears it),
	-- 'finished' (reached options.to_block)
	state text NOT NULL DEFAULT 'stopped'
		CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'stopped', 'failed', 'finished'])),
	last_error text,
	errors bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- The committed cursor of each pipeline; moved only by compare-and-swap.
CREATE TABLE cursor (
	pipeline text PRIMARY KEY REFERENCES pipeline (name) ON DELETE CASCADE,
	ledger bigint NOT NULL DEFAULT -1,
	ledger_hash bytea,
	tx_index integer,
	event_index integer,
	events_applied bigint NOT NULL DEFAULT 0,
	ledgers_applied bigint NOT NULL DEFAULT 0,
	last_commit_at timestamptz,
	reorgs bigint NOT NULL DEFAULT 0,
	last_reorg_depth integer,
	last_reorg_at timestamptz
);

CREATE TABLE handler (
	id bigserial PRIMARY KEY,		-- registration order
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	handler regprocedure NOT NULL,
	topic0 bytea CHECK (pg_catalog.length(topic0) OPERATOR(pg_catalog.=) 32),
	address bytea CHECK (pg_catalog.length(address) OPERATOR(pg_catalog.=) 20),
	revert regprocedure,		-- called per orphaned event on a reorg
	event text					-- event signature: the worker decodes args
);
CREATE INDEX handler_pipeline_idx ON handler (pipeline, id);

-- Headers of applied ledgers (the reorg issue prunes and rolls these back).
CREATE TABLE ledger (
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	number bigint NOT NULL,
	hash bytea NOT NULL,
	parent_hash bytea,
	time timestamptz,
	events integer NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, number)
);

-- Raw sinks: tables that receive every event as a row (add_raw_sink).
CREATE TABLE sink (
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	tbl regclass NOT NULL,
	PRIMARY KEY (pipeline, tbl)
);

-- Headers of ledgers a reorg orphaned (within the reorg window), so that a
-- producer re-sending one cannot flip the pipeline back to a dead branch.
CREATE TABLE orphan (
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	number bigint NOT NULL,
	hash bytea NOT NULL,
	orphaned_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, number, hash)
);

-- Ledger number of an inbox document, or NULL when it cannot be read (the
-- worker then rejects the document with an error naming the problem).
CREATE FUNCTION doc_ledger(doc jsonb) RETURNS bigint
	AS 'MODULE_PATHNAME', 'ledger_ingest_doc_ledger'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The packed form of an inbox document (src/packed.c): the parsed ledger as
-- the worker reads it, computed in the producer's backend at insert, or
-- NULL when the document does not parse (the worker then parses it and
-- rejects it with the error).
CREATE FUNCTION _pack_ledger(doc jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME', 'ledger_ingest_pack_ledger'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Producers insert ledger documents (eth_getBlockByNumber header fields plus
-- "logs" as eth_getLogs returns them).  The worker deletes a document in the
-- transaction that applies it; a rejected document stays, with its error.
CREATE TABLE inbox (
	id bigserial PRIMARY KEY,
	pipeline text NOT NULL,
	doc jsonb COMPRESSION lz4 NOT NULL,
	ledger bigint GENERATED ALWAYS AS (doc_ledger(doc)) STORED,
	packed bytea COMPRESSION lz4 GENERATED ALWAYS AS (_pack_ledger(doc)) STORED,
	received_at timestamptz NOT NULL DEFAULT now(),
	error text,
	rejected_at timestamptz
);
CREATE INDEX inbox_pending_idx ON inbox (pipeline, ledger, id) WHERE error IS NULL;

-- Inbox writes wake their pipelines' workers when they commit
-- (src/publish.c), so documents are applied at once, not at the next
-- poll_ms.  AFTER, so that COPY into the inbox keeps its multi-row inserts.
CREATE FUNCTION _inbox_written() RETURNS trigger
	AS 'MODULE_PATHNAME', 'ledger_ingest_inbox_written'
	LANGUAGE C;
CREATE TRIGGER inbox_written AFTER INSERT OR UPDATE ON inbox
	FOR EACH ROW EXECUTE FUNCTION _inbox_written();
REVOKE ALL ON FUNCTION _inbox_written() FROM PUBLIC;

REVOKE ALL ON pipeline, cursor, handler, ledger, inbox, orphan, sink FROM PUBLIC;
REVOKE ALL ON SEQUENCE handler_id_seq, inbox_id_seq FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline, cursor, handler TO ledger_ingest_admin;
GRANT SELECT, INSERT, DELETE ON sink TO ledger_ingest_admin;
GRANT SELECT, DELETE ON ledger TO ledger_ingest_admin;
GRANT SELECT ON orphan TO ledger_ingest_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON inbox TO ledger_ingest_admin;
GRANT USAGE ON SEQUENCE handler_id_seq, inbox_id_seq TO ledger_ingest_admin;
GRANT USAGE ON SCHEMA ledger_ingest TO ledger_ingest_admin;

-- Row-level security: a non-superuser admin sees and changes only pipelines
-- owned by a role it is a member of (never by ledger_ingest_admin itself,
-- which every admin is a member of).
ALTER TABLE pipeline ENABLE ROW LEVEL SECURITY;
CREATE POLICY pipeline_owner ON pipeline
	USING (pg_catalog.pg_has_role(current_user, owner, 'MEMBER'))
	WITH CHECK (pg_catalog.pg_has_role(current_user, owner, 'MEMBER')
				AND owner::pg_catalog.text OPERATOR(pg_catalog.<>) 'ledger_ingest_admin');
ALTER TABLE cursor ENABLE ROW LEVEL SECURITY;
CREATE POLICY cursor_owner ON cursor
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) cursor.pipeline));
ALTER TABLE handler ENABLE ROW LEVEL SECURITY;
CREATE POLICY handler_owner ON handler
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) handler.pipeline));
ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
CREATE POLICY ledger_owner ON ledger
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) ledger.pipeline));
ALTER TABLE sink ENABLE ROW LEVEL SECURITY;
CREATE POLICY sink_owner ON sink
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) sink.pipeline));
ALTER TABLE orphan ENABLE ROW LEVEL SECURITY;
CREATE POLICY orphan_owner ON orphan
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) orphan.pipeline));
ALTER TABLE inbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY inbox_owner ON inbox
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) inbox.pipeline));

/* ---------------------------------------------------------------------
 * Reorg journal
 *
 * For each tracked table, an AFTER ROW trigger records, while the worker
 * applies a ledger inside the reorg window, the pre-image of every row a
 * handler changes (or that it inserted it), tagged with the ledger.  On a
 * reorg the worker restores, per primary key, the oldest pre-image above
 * the fork point, in the same transaction that moves the cursor back.
 * Ledgers that leave the window are pruned in the apply transactions.
 * --------------------------------------------------------------------- */
CREATE TABLE tracked (
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	tbl regclass NOT NULL,
	pk text[] NOT NULL,
	PRIMARY KEY (pipeline, tbl)
);

CREATE TABLE journal (
	seq bigserial NOT NULL,		-- order of the changes
	pipeline text NOT NULL,
	ledger bigint NOT NULL,
	tbl oid NOT NULL,
	pk jsonb NOT NULL,
	old_row jsonb				-- NULL: the row did not exist (inserted)
);
CREATE INDEX journal_pipeline_ledger_idx ON journal (pipeline, ledger);

-- Events inside the window of pipelines with revert handlers, so that the
-- handlers can be called for them when their ledger is orphaned.
CREATE TABLE event_journal (
	pipeline text NOT NULL,
	ledger bigint NOT NULL,
	ev event NOT NULL
);
CREATE INDEX event_journal_pipeline_ledger_idx ON event_journal (pipeline, ledger);

REVOKE ALL ON tracked, journal, event_journal FROM PUBLIC;
REVOKE ALL ON SEQUENCE journal_seq_seq FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON tracked TO ledger_ingest_admin;
GRANT SELECT, DELETE ON journal, event_journal TO ledger_ingest_admin;
ALTER TABLE tracked ENABLE ROW LEVEL SECURITY;
CREATE POLICY tracked_owner ON tracked
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) tracked.pipeline));
ALTER TABLE event_journal ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_journal_owner ON event_journal
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) event_journal.pipeline));
ALTER TABLE journal ENABLE ROW LEVEL SECURITY;
CREATE POLICY journal_owner ON journal
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) journal.pipeline));

/* ---------------------------------------------------------------------
 * Internal C functions
 * --------------------------------------------------------------------- */

-- Validate pipeline options for a source; returns them unchanged (the
-- worker applies the defaults).  Errors name the offending key.
CREATE FUNCTION validate_options(source text, options jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'ledger_ingest_validate_options'
	LANGUAGE C STABLE STRICT;

-- Ask the launcher (after this transaction commits) to reconcile workers.
CREATE FUNCTION _wake_launcher() RETURNS void
	AS 'MODULE_PATHNAME', 'ledger_ingest_wake_launcher'
	LANGUAGE C VOLATILE;

-- Publish a cursor moved by SQL to shared memory, at commit only.
CREATE FUNCTION _publish_cursor(pipeline text) RETURNS void
	AS 'MODULE_PATHNAME', 'ledger_ingest_publish_cursor'
	LANGUAGE C VOLATILE;

-- Live per-pipeline state from shared memory (pid, head, worker state).
CREATE FUNCTION _shmem_status(OUT pipeline text, OUT pid integer, OUT head bigint,
							  OUT worker_state text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'ledger_ingest_shmem_status'
	LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION validate_options(text, jsonb), _wake_launcher(),
	_publish_cursor(text), _shmem_status(), doc_ledger(jsonb), _pack_ledger(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION validate_options(text, jsonb), _wake_launcher(),
	_publish_cursor(text), _shmem_status(), doc_ledger(jsonb), _pack_ledger(jsonb) TO ledger_ingest_admin;

/* ---------------------------------------------------------------------
 * Keccak-256 and Solidity ABI decoding
 * --------------------------------------------------------------------- */
-- Keccak-256 and Solidity ABI decoding (src/abi.c, src/abi_core.c).
-- Fragment of ledger_ingest--0.1.sql: created inside the extension's schema.
--
-- These are pure functions of their arguments: they read no table, no
-- pipeline and no setting.  Like everything in the schema they are granted
-- to ledger_ingest_admin only (nothing goes to PUBLIC); GRANT EXECUTE them
-- (and USAGE on the schema) to other roles that should decode.
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

REVOKE ALL ON FUNCTION keccak256(bytea), event_topic(text), event_signature(text),
	abi_decode(text, bytea), decode_event(text, bytea[], bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keccak256(bytea), event_topic(text), event_signature(text),
	abi_decode(text, bytea), decode_event(text, bytea[], bytea) TO ledger_ingest_admin;

/* ---------------------------------------------------------------------
 * The SQL API
 * --------------------------------------------------------------------- */

CREATE FUNCTION _require_admin() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT pg_has_role(current_user, 'ledger_ingest_admin', 'MEMBER') THEN
		RAISE EXCEPTION 'permission denied to manage ledger_ingest pipelines'
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only superusers and members of ledger_ingest_admin may manage pipelines.';
	END IF;
END
$$;

CREATE FUNCTION _require_pipeline(p_name text) RETURNS ledger_ingest.pipeline
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r ledger_ingest.pipeline;
BEGIN
	PERFORM ledger_ingest._require_admin();
	SELECT * INTO r FROM ledger_ingest.pipeline WHERE name = p_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline "%" does not exist', p_name
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN r;
END
$$;

-- create_pipeline(name, source 'inbox'|'evm_rpc', options jsonb): creates a
-- stopped pipeline owned by current_user with its cursor at ledger
-- options.from_block - 1 (or -1).  Call start() to run it.
CREATE FUNCTION create_pipeline(name text, source text, options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	opts jsonb;
BEGIN
	PERFORM ledger_ingest._require_admin();
	IF source IS NULL OR source NOT IN ('inbox', 'evm_rpc') THEN
		RAISE EXCEPTION 'invalid source "%"', source
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'source must be ''inbox'' or ''evm_rpc''.';
	END IF;
	opts := ledger_ingest.validate_options(source, coalesce(options, '{}'));
	INSERT INTO ledger_ingest.pipeline (name, source, options)
		VALUES (create_pipeline.name, create_pipeline.source, opts);
	INSERT INTO ledger_ingest.cursor (pipeline, ledger)
		VALUES (create_pipeline.name,
				coalesce((opts ->> 'from_block')::bigint, 0) - 1);
	-- a dropped pipeline of the same name may still have shared state
	PERFORM ledger_ingest._publish_cursor(create_pipeline.name);
END
$$;

-- add_handler(pipeline, handler, topic0, address, revert, event): registers
-- a function taking one ledger_ingest.event (or, set-based, one
-- ledger_ingest.event[]: called once per apply transaction with all its
-- matching events, in order); called for each event whose
-- topics[1] equals topic0 (32 bytes) and whose address equals address (20
-- bytes), NULL matching all.  event, a Solidity event signature such as
-- 'Transfer(address indexed from, address indexed to, uint256 value)', sets
-- topic0 and makes the worker decode each matching log into the event's
-- args (jsonb, see decode_event).  revert, optional, takes the same argument
-- and is called once per orphaned event, newest first, inside the
-- transaction that rolls back a reorg (for effects outside tracked tables).
-- Returns the handler id (registration order).
CREATE FUNCTION add_handler(pipeline text, handler regprocedure,
							topic0 bytea DEFAULT NULL, address bytea DEFAULT NULL,
							revert regprocedure DEFAULT NULL, event text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	f regprocedure;
	nargs int;
	argtype oid;
	hid bigint;
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
	INSERT INTO ledger_ingest.handler (pipeline, handler, topic0, address, revert, event)
		VALUES (add_handler.pipeline, add_handler.handler, add_handler.topic0, add_handler.address,
				add_handler.revert, add_handler.event)
		RETURNING id INTO hid;
	RETURN hid;
END
$$;

-- add_raw_sink(pipeline, tbl): every event the pipeline applies lands as a
-- row of tbl, in the apply transaction, through COPY's multi-row insert
-- path (src/sink.c).  tbl has columns named after fields of
-- ledger_ingest.event (any subset, same types); other columns take their
-- defaults.  The pipeline owner needs INSERT on it; no row-level security.
CREATE FUNCTION add_raw_sink(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad text;
	n int;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF NOT has_table_privilege(current_user, tbl, 'INSERT') THEN
		RAISE EXCEPTION 'permission denied for table %', tbl USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = tbl) THEN
		RAISE EXCEPTION 'raw sink table % has row-level security enabled', tbl
			USING ERRCODE = 'feature_not_supported';
	END IF;
	SELECT count(*), string_agg(format('%I is %s, not %s', a.attname, format_type(a.atttypid, NULL),
										format_type(e.atttypid, NULL)), '; ')
			FILTER (WHERE a.atttypid <> e.atttypid)
		INTO n, bad
		FROM pg_attribute a
		JOIN pg_attribute e ON e.attrelid = 'ledger_ingest.event'::regclass AND e.attname = a.attname
			AND e.attname <> 'args'
		WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'raw sink table %: column %', tbl, bad
			USING ERRCODE = 'datatype_mismatch';
	END IF;
	IF n = 0 THEN
		RAISE EXCEPTION 'raw sink table % has no column named after a field of ledger_ingest.event', tbl
			USING ERRCODE = 'invalid_table_definition',
				  HINT = 'Name columns pipeline, ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics or data.';
	END IF;
	INSERT INTO ledger_ingest.sink (pipeline, tbl) VALUES (add_raw_sink.pipeline, add_raw_sink.tbl)
		ON CONFLICT DO NOTHING;
END
$$;

-- remove_raw_sink(pipeline, tbl): stops writing events into tbl.
CREATE FUNCTION remove_raw_sink(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	DELETE FROM ledger_ingest.sink s WHERE s.pipeline = remove_raw_sink.pipeline AND s.tbl = remove_raw_sink.tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % is not a raw sink of pipeline "%"', tbl, pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;

REVOKE ALL ON FUNCTION add_raw_sink(text, regclass), remove_raw_sink(text, regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_raw_sink(text, regclass), remove_raw_sink(text, regclass) TO ledger_ingest_admin;

-- remove_handler(pipeline, handler): unregisters every registration of the
-- function; returns how many were removed.
CREATE FUNCTION remove_handler(pipeline text, handler regprocedure)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n int;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	DELETE FROM ledger_ingest.handler h
		WHERE h.pipeline = remove_handler.pipeline AND h.handler = remove_handler.handler;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- _set_state(pipeline, state): the desired state set by start() and stop(),
-- with a "state" notification and a launcher wake-up at commit.
CREATE FUNCTION _set_state(pipeline text, state text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	UPDATE ledger_ingest.pipeline p
		SET state = _set_state.state,
			errors = CASE WHEN _set_state.state = 'running' THEN 0 ELSE p.errors END,
			last_error = CASE WHEN _set_state.state = 'running' THEN NULL ELSE p.last_error END
		WHERE p.name = _set_state.pipeline;
	PERFORM pg_notify('ledger_ingest',
		json_build_object('type', 'state', 'pipeline', pipeline, 'state', state, 'error', NULL)::text);
	PERFORM ledger_ingest._wake_launcher();
END
$$;

-- start(pipeline): marks the pipeline running (clearing a failed state); the
-- launcher starts its worker within about a second after commit.
CREATE FUNCTION start(pipeline text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ledger_ingest._set_state(pipeline, 'running') $$;

-- stop(pipeline): marks the pipeline stopped; its worker exits within about a
-- second after commit.  The cursor is kept.
CREATE FUNCTION stop(pipeline text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ledger_ingest._set_state(pipeline, 'stopped') $$;

-- drop_pipeline(pipeline): stops the worker and deletes the pipeline, its
-- cursor, handlers, ledger headers, reorg journals, tracked tables (and
-- their journal triggers when no other pipeline tracks them) and pending
-- inbox documents.
CREATE FUNCTION drop_pipeline(pipeline text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	PERFORM ledger_ingest.untrack_table(drop_pipeline.pipeline, t.tbl)
		FROM ledger_ingest.tracked t WHERE t.pipeline = drop_pipeline.pipeline;
	DELETE FROM ledger_ingest.journal j WHERE j.pipeline = drop_pipeline.pipeline;
	DELETE FROM ledger_ingest.event_journal j WHERE j.pipeline = drop_pipeline.pipeline;
	DELETE FROM ledger_ingest.inbox i WHERE i.pipeline = drop_pipeline.pipeline;
	DELETE FROM ledger_ingest.pipeline p WHERE p.name = drop_pipeline.pipeline;
	PERFORM ledger_ingest._wake_launcher();
END
$$;

-- cursor_cas(pipeline, expected, new): moves the cursor to "new" only if it
-- is exactly at "expected" (NULL tx_index/event_index compare equal).  Returns
-- false when the cursor was elsewhere (a lost race); raises undefined_object
-- when the pipeline does not exist.  A concurrent apply transaction holds the
-- cursor row until it commits; this call then sees the moved cursor and
-- returns false, and a worker that loses the race rolls back and re-reads.
CREATE FUNCTION cursor_cas(pipeline text, expected ledger_ingest.position, new ledger_ingest.position)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n int;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF new IS NULL OR new.ledger IS NULL OR new.ledger < -1
	   OR (new.tx_index IS NULL) <> (new.event_index IS NULL) THEN
		RAISE EXCEPTION 'invalid cursor position %', new
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A position is (ledger >= -1, tx_index, event_index) with both indexes NULL (whole ledger) or both set.';
	END IF;
	UPDATE ledger_ingest.cursor c
		SET ledger = new.ledger,
			ledger_hash = (SELECT l.hash FROM ledger_ingest.ledger l
						   WHERE l.pipeline = cursor_cas.pipeline AND l.number = new.ledger),
			tx_index = new.tx_index,
			event_index = new.event_index,
			last_commit_at = now()
		WHERE c.pipeline = cursor_cas.pipeline
		  AND c.ledger IS NOT DISTINCT FROM expected.ledger
		  AND c.tx_index IS NOT DISTINCT FROM expected.tx_index
		  AND c.event_index IS NOT DISTINCT FROM expected.event_index;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n = 1 THEN
		-- what lies above the new cursor will be applied again
		DELETE FROM ledger_ingest.ledger l WHERE l.pipeline = cursor_cas.pipeline AND l.number > new.ledger;
		DELETE FROM ledger_ingest.journal j WHERE j.pipeline = cursor_cas.pipeline AND j.ledger > new.ledger;
		DELETE FROM ledger_ingest.event_journal j WHERE j.pipeline = cursor_cas.pipeline AND j.ledger > new.ledger;
		PERFORM ledger_ingest._publish_cursor(pipeline);
	END IF;
	RETURN n = 1;
END
$$;

-- rewind(pipeline, ledger): moves the cursor back to the end of "ledger" so
-- that every later ledger is delivered again, and forgets the headers of
-- those ledgers.  Handlers see the re-delivered events again: making that
-- harmless (or undoing effects first) is the handler's business.  For the
-- inbox source the producer must insert the documents again (applied ones are
-- deleted).  Returns the position the cursor was at.
CREATE FUNCTION rewind(pipeline text, ledger bigint) RETURNS ledger_ingest.position
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cur ledger_ingest.cursor;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	SELECT * INTO cur FROM ledger_ingest.cursor c WHERE c.pipeline = rewind.pipeline FOR UPDATE;
	IF rewind.ledger IS NULL OR rewind.ledger < -1 THEN
		RAISE EXCEPTION 'invalid ledger %', rewind.ledger USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF rewind.ledger > cur.ledger OR (rewind.ledger = cur.ledger AND cur.tx_index IS NOT NULL) THEN
		RAISE EXCEPTION 'cannot rewind pipeline "%" to ledger %: its cursor is at ledger %',
			pipeline, rewind.ledger, cur.ledger
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use cursor_cas() to move a cursor forward.';
	END IF;
	IF NOT ledger_ingest.cursor_cas(pipeline,
			ROW(cur.ledger, cur.tx_index, cur.event_index)::ledger_ingest.position,
			ROW(rewind.ledger, NULL, NULL)::ledger_ingest.position) THEN
		RAISE EXCEPTION 'cursor of pipeline "%" moved concurrently', pipeline
			USING ERRCODE = 'serialization_failure';
	END IF;
	RETURN ROW(cur.ledger, cur.tx_index, cur.event_index)::ledger_ingest.position;
END
$$;

-- The journal trigger of tracked tables (src/journal.c): outside a worker's
-- apply transaction it does nothing; inside, it records each row's
-- pre-image for the ledger being applied.
CREATE FUNCTION _journal() RETURNS trigger
	AS 'MODULE_PATHNAME', 'ledger_ingest_journal'
	LANGUAGE C;
REVOKE ALL ON FUNCTION _journal() FROM PUBLIC;
-- CREATE TRIGGER (track_table) needs EXECUTE on the trigger function; it
-- records nothing outside a worker's apply transaction.
GRANT EXECUTE ON FUNCTION _journal() TO ledger_ingest_admin;

-- track_table(pipeline, tbl): journal the changes the pipeline's handlers
-- make to tbl, so that a reorg restores it to its state at the fork point.
-- tbl must have a primary key; the caller must own it (a trigger is
-- created on it).
CREATE FUNCTION track_table(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cols text[];
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	SELECT array_agg(a.attname::text ORDER BY k.n) INTO cols
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = tbl AND i.indisprimary;
	IF cols IS NULL THEN
		RAISE EXCEPTION 'table % has no primary key', tbl
			USING ERRCODE = 'invalid_table_definition',
				  HINT = 'A tracked table needs a primary key to restore rows after a reorg.';
	END IF;
	INSERT INTO ledger_ingest.tracked (pipeline, tbl, pk)
		VALUES (track_table.pipeline, track_table.tbl, cols)
		ON CONFLICT DO NOTHING;
	IF NOT EXISTS (SELECT 1 FROM pg_trigger t
				   WHERE t.tgrelid = tbl AND t.tgname = 'ledger_ingest_journal') THEN
		EXECUTE format('CREATE TRIGGER ledger_ingest_journal AFTER INSERT OR UPDATE OR DELETE ON %s '
					   'FOR EACH ROW EXECUTE FUNCTION ledger_ingest._journal()', tbl);
	END IF;
END
$$;

-- untrack_table(pipeline, tbl): stop journaling tbl for the pipeline (and
-- forget its journal); the trigger goes when no pipeline tracks tbl.
CREATE FUNCTION untrack_table(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	DELETE FROM ledger_ingest.tracked t
		WHERE t.pipeline = untrack_table.pipeline AND t.tbl = untrack_table.tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table % is not tracked by pipeline "%"', tbl, pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
	DELETE FROM ledger_ingest.journal j
		WHERE j.pipeline = untrack_table.pipeline AND j.tbl = untrack_table.tbl::oid;
	IF NOT EXISTS (SELECT 1 FROM ledger_ingest.tracked t WHERE t.tbl = untrack_table.tbl) THEN
		EXECUTE format('DROP TRIGGER IF EXISTS ledger_ingest_journal ON %s', tbl);
	END IF;
END
$$;

REVOKE ALL ON FUNCTION track_table(text, regclass), untrack_table(text, regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION track_table(text, regclass), untrack_table(text, regclass) TO ledger_ingest_admin;

-- wait_for(pipeline, ledger, timeout): true as soon as the committed cursor
-- has reached the end of "ledger", false after "timeout".  Sleeps on a
-- condition variable that the worker's commit callback broadcasts.
CREATE FUNCTION wait_for(pipeline text, ledger bigint, timeout interval DEFAULT '10s')
RETURNS boolean
	AS 'MODULE_PATHNAME', 'ledger_ingest_wait_for'
	LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION _require_admin(), _require_pipeline(text), _set_state(text, text),
	create_pipeline(text, text, jsonb), add_handler(text, regprocedure, bytea, bytea, regprocedure, text),
	remove_handler(text, regprocedure), start(text), stop(text), drop_pipeline(text),
	cursor_cas(text, ledger_ingest.position, ledger_ingest.position), rewind(text, bigint),
	wait_for(text, bigint, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _require_admin(), _require_pipeline(text), _set_state(text, text),
	create_pipeline(text, text, jsonb), add_handler(text, regprocedure, bytea, bytea, regprocedure, text),
	remove_handler(text, regprocedure), start(text), stop(text), drop_pipeline(text),
	cursor_cas(text, ledger_ingest.position, ledger_ingest.position), rewind(text, bigint),
	wait_for(text, bigint, interval) TO ledger_ingest_admin;

-- One row per pipeline visible to the caller: persisted state and cursor,
-- plus the live worker pid, source head and state from shared memory.
CREATE VIEW status WITH (security_invoker = true) AS
SELECT p.name AS pipeline,
	   CASE WHEN p.state = 'running' AND s.pid IS NULL THEN 'starting'
			WHEN p.state = 'running' AND s.worker_state = 'retrying' THEN 'retrying'
			ELSE p.state END AS state,
	   s.pid,
	   c.ledger,
	   c.ledger_hash,
	   c.tx_index,
	   c.event_index,
	   s.head,
	   c.events_applied,
	   c.ledgers_applied,
	   c.last_commit_at,
	   p.last_error,
	   p.errors,
	   p.source,
	   p.owner,
	   c.reorgs,
	   c.last_reorg_depth,
	   c.last_reorg_at
FROM ledger_ingest.pipeline p
JOIN ledger_ingest.cursor c ON c.pipeline = p.name
LEFT JOIN ledger_ingest._shmem_status() s ON s.pipeline = p.name;

REVOKE ALL ON status FROM PUBLIC;
GRANT SELECT ON status TO ledger_ingest_admin;
