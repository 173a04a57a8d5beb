/* ledger_ingest--0.3.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION ledger_ingest" to load this file. \quit

/*
 * The full 0.3 install script: the same objects as ledger_ingest--0.1.sql
 * followed by the update scripts up to 0.3, written once (CREATE
 * EXTENSION uses it; ALTER EXTENSION UPDATE uses the update scripts).
 * test/t/016_backup_upgrade.pl compares pg_dump --schema-only
 * --binary-upgrade of both.
 *
 * Security model (see README, "Security"):
 *  - Only superusers and members of ledger_ingest_admin may create and control
 *    pipelines.  The API functions are SECURITY INVOKER; the catalog tables are
 *    protected by row-level security so that a role only sees the pipelines
 *    it owns (owner = a role it is a member of).
 *  - Members of ledger_ingest_admin reach the extension's state only through
 *    its functions and views.  They keep SELECT on the tables, limited to
 *    their own pipelines' rows by row-level security (SELECT allows at most
 *    LOCK ... IN ACCESS SHARE MODE, which no worker waits for), and INSERT
 *    on the inbox for their own pipelines (the producers' fast path, INSERT
 *    and COPY; it allows at most ROW EXCLUSIVE, which workers share).  Every
 *    other change goes through _catalog_write() (src/catalog.c): it checks
 *    that the calling role may make the change and makes it as the owner of
 *    the extension's tables.  No admin can lock, read or change another
 *    owner's rows.
 *  - The pipeline owner is recorded from current_user and cannot be chosen.
 *    The worker runs every handler as that owner.
 *  - Nothing is granted to PUBLIC.
 */

/* ---------------------------------------------------------------------
 * Role
 * --------------------------------------------------------------------- */
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'ledger_ingest_admin') THEN
		CREATE ROLE ledger_ingest_admin NOLOGIN;
	END IF;
END
$$;

/* ---------------------------------------------------------------------
 * Types
 * --------------------------------------------------------------------- */

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

/* ---------------------------------------------------------------------
 * Functions the table definitions use (the inbox's generated columns)
 * --------------------------------------------------------------------- */

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

/* ---------------------------------------------------------------------
 * Tables
 * --------------------------------------------------------------------- */

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
	handler text NOT NULL,			-- the function, as _proc_text() spells it
	topic0 bytea CHECK (pg_catalog.length(topic0) OPERATOR(pg_catalog.=) 32),
	address bytea CHECK (pg_catalog.length(address) OPERATOR(pg_catalog.=) 20),
	revert text,				-- called per orphaned event on a reorg (_proc_text())
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
CREATE INDEX inbox_pending_idx ON inbox (pipeline, ledger NULLS FIRST, id) WHERE error IS NULL;
-- Inbox documents belong to their pipeline: a document can only be written
-- for an existing pipeline (that the producer owns: row-level security), and
-- goes with it however the pipeline is deleted, so a new pipeline of the
-- same name never inherits another's documents.  NOT VALID, as the update
-- from 0.1 adds it (it does not check documents left by a pipeline deleted
-- before 0.2), so that both installs have the same constraint.
ALTER TABLE inbox ADD CONSTRAINT inbox_pipeline_fkey FOREIGN KEY (pipeline)
	REFERENCES pipeline (name) ON DELETE CASCADE ON UPDATE CASCADE NOT VALID;

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
	-- The first ledger from which the worker journals the table (set in the
	-- apply transaction that first journals it; NULL until then): a reorg
	-- forking below it fails with nothing changed instead of reverting only
	-- the journaled part of the orphaned ledgers.
	since_ledger bigint,
	PRIMARY KEY (pipeline, tbl)
);

-- new_row: the journal's post-images, what each change left (an UPDATE
-- journals only the columns it changed, in old_row and new_row; JSON null:
-- the change deleted the row).  A reorg restores only the columns the
-- orphaned ledgers changed, and refuses to overwrite rows changed outside
-- the pipeline since.  NULL in entries journaled by 0.1.
CREATE TABLE journal (
	seq bigserial NOT NULL,		-- order of the changes
	pipeline text NOT NULL,
	ledger bigint NOT NULL,
	tbl regclass NOT NULL,
	pk jsonb NOT NULL,
	old_row jsonb,				-- NULL: the row did not exist (inserted)
	new_row jsonb
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

-- A log that matches a signature-registered handler's topic0 but is not a
-- valid encoding of the event (short data, a NUL or invalid UTF-8 in a
-- string, another number of indexed topics): any contract can emit one.
-- By default (option on_decode_error "skip") that handler skips the event
-- and the log is kept here, with the decoder's error, in the apply
-- transaction; a reorg that orphans the ledger deletes its rows.  The
-- owner reads and deletes them; status counts them.
CREATE TABLE decode_error (
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	ledger bigint NOT NULL,
	tx_index integer NOT NULL,
	event_index integer NOT NULL,
	handler text NOT NULL,		-- the function, as the worker names it
	error text NOT NULL,		-- the decoder's message, naming the argument
	event event NOT NULL,		-- the log, args NULL
	recorded_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, ledger, tx_index, event_index, handler)
);

-- A row here: the database is paused (pause_database()); its launcher and
-- workers exit and none start until resume_database().
CREATE TABLE database_pause (
	paused boolean PRIMARY KEY DEFAULT true CHECK (paused),	-- one row at most
	paused_at timestamptz NOT NULL DEFAULT now(),
	paused_by name NOT NULL DEFAULT current_user
);

/* ---------------------------------------------------------------------
 * Backup and restore
 *
 * Every table of the extension's state and its sequences are dumped by
 * pg_dump (pg_extension_config_dump), so a dump carries the pipelines,
 * their cursors, handlers, sinks, tracked tables, ledger headers, reorg
 * journals and pending inbox documents together with the handlers' own
 * tables, all from one snapshot.  pg_dump orders the tables' data by their
 * foreign keys.
 * --------------------------------------------------------------------- */
SELECT pg_catalog.pg_extension_config_dump('pipeline', '');
SELECT pg_catalog.pg_extension_config_dump('cursor', '');
SELECT pg_catalog.pg_extension_config_dump('handler', '');
SELECT pg_catalog.pg_extension_config_dump('handler_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ledger', '');
SELECT pg_catalog.pg_extension_config_dump('sink', '');
SELECT pg_catalog.pg_extension_config_dump('orphan', '');
SELECT pg_catalog.pg_extension_config_dump('inbox', '');
SELECT pg_catalog.pg_extension_config_dump('inbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tracked', '');
SELECT pg_catalog.pg_extension_config_dump('journal', '');
SELECT pg_catalog.pg_extension_config_dump('journal_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('event_journal', '');
SELECT pg_catalog.pg_extension_config_dump('decode_error', '');
SELECT pg_catalog.pg_extension_config_dump('database_pause', '');

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

-- Live per-pipeline state from shared memory (pid, head, worker state,
-- notifications dropped since the pipeline's worker took its slot, and an
-- error the worker could not record in the pipeline table, in a read-only
-- database say).
CREATE FUNCTION _shmem_status(OUT pipeline text, OUT pid integer, OUT head bigint,
							  OUT worker_state text, OUT notifications_dropped bigint,
							  OUT worker_error text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'ledger_ingest_shmem_status'
	LANGUAGE C VOLATILE;

-- NOTIFY ledger_ingest, payload, unless the NOTIFY queue is fuller than
-- ledger_ingest.notify_queue_limit; then dropped, counted in status and
-- logged (src/publish.c, li_notify).  Returns whether it was queued.
CREATE FUNCTION _notify(pipeline text, payload text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'ledger_ingest_notify'
	LANGUAGE C VOLATILE;

-- Ask the supervisor, at commit, for a launcher in this database (src/
-- launcher.c: one launcher per database where the extension is
-- installed).  A no-op without shared_preload_libraries.
CREATE FUNCTION _register_database() RETURNS void
	AS 'MODULE_PATHNAME', 'ledger_ingest_register_database'
	LANGUAGE C VOLATILE;

-- _catalog_write(op, pipeline, args): one of a fixed set of changes to
-- the extension's tables (src/catalog.c lists them with their arguments),
-- for the named pipeline, checked against the calling role and made as
-- the tables' owner.  Returns the rows changed (the handler id for
-- add_handler).  SECURITY INVOKER: the check needs the caller.
CREATE FUNCTION _catalog_write(op text, pipeline text, args text[]) RETURNS bigint
	AS 'MODULE_PATHNAME', 'ledger_ingest_catalog_write'
	LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

/* ---------------------------------------------------------------------
 * Triggers
 * --------------------------------------------------------------------- */

-- Inbox writes wake their pipelines' workers when they commit
-- (src/publish.c), so documents are applied at once, not at the next
-- poll_ms.  AFTER, so that COPY into the inbox keeps its multi-row inserts.
CREATE FUNCTION _inbox_written() RETURNS trigger
	AS 'MODULE_PATHNAME', 'ledger_ingest_inbox_written'
	LANGUAGE C;
CREATE TRIGGER inbox_written AFTER INSERT OR UPDATE ON inbox
	FOR EACH ROW EXECUTE FUNCTION _inbox_written();

-- A pipeline row inserted with state 'running' comes from a restore (a
-- dump's data, or a copy of the table): create_pipeline() always inserts
-- 'stopped'.  It is kept stopped, with a last_error that says so, until
-- start() is called: the rest of the restore (its cursor, handlers, the
-- handlers' tables) may still be loading, and a worker started now would
-- apply ledgers against half a database.  The same idea as TimescaleDB's
-- timescaledb_pre_restore()/timescaledb_post_restore(), without the first
-- call.
CREATE FUNCTION _pipeline_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NEW.state = 'running' THEN
		NEW.state := 'stopped';
		NEW.last_error := 'restored while running: stopped until ledger_ingest.start() is called '
			'once the restore is complete';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER pipeline_inserted BEFORE INSERT ON pipeline
	FOR EACH ROW EXECUTE FUNCTION _pipeline_inserted();

-- The journal trigger of tracked tables (src/journal.c): outside a worker's
-- apply transaction it does nothing; inside, it records each row's
-- pre-image for the ledger being applied.
CREATE FUNCTION _journal() RETURNS trigger
	AS 'MODULE_PATHNAME', 'ledger_ingest_journal'
	LANGUAGE C;

/* ---------------------------------------------------------------------
 * Internal helpers
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

-- _proc_text(f): how ledger_ingest.handler stores a function: its
-- regprocedure text with every schema spelled out (search_path is pinned),
-- e.g. 'public.on_transfer(ledger_ingest.event)'.  A regprocedure column
-- would hold an OID, which pg_upgrade refuses to carry ("reg* data types in
-- user tables") and a restore would not match; text survives both.  The
-- worker resolves it with to_regprocedure() each time it loads the
-- pipeline, and fails the pipeline, naming the function, when it is gone.
CREATE FUNCTION _proc_text(f regprocedure) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT f::pg_catalog.text $$;

-- _set_state(pipeline, state): the desired state set by start() and stop(),
-- with a "state" notification and a launcher wake-up at commit.
CREATE FUNCTION _set_state(pipeline text, state text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	PERFORM ledger_ingest._catalog_write('set_state', pipeline, ARRAY[state]);
	PERFORM ledger_ingest._notify(pipeline,
		json_build_object('type', 'state', 'pipeline', pipeline, 'state', state, 'sqlstate', NULL)::text);
	PERFORM ledger_ingest._wake_launcher();
END
$$;

-- true when current_user may pause and resume this database: a member of
-- the database owner (superusers are)
CREATE FUNCTION _is_database_owner() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_has_role(current_user,
						 (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'MEMBER') $$;

CREATE FUNCTION _require_database_owner() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT ledger_ingest._is_database_owner() THEN
		RAISE EXCEPTION 'permission denied to pause or resume ledger_ingest in database "%"', current_database()
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only the database owner (or a superuser) may.';
	END IF;
END
$$;

-- Whether any pipeline, of any owner, tracks tbl: untrack_table must not
-- drop the journal trigger another owner's pipeline still needs, and
-- row-level security hides the other owners' rows from the caller.
-- SECURITY DEFINER (the extension's owner), search_path pinned; it tells
-- only whether the table is tracked, which its trigger shows anyway.
CREATE FUNCTION _table_tracked(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM ledger_ingest.tracked t WHERE t.tbl OPERATOR(pg_catalog.=) _table_tracked.tbl) $$;

/* ---------------------------------------------------------------------
 * The SQL API
 * --------------------------------------------------------------------- */

-- create_pipeline(name, source 'inbox'|'evm_rpc', options jsonb): creates a
-- stopped pipeline owned by current_user with its cursor at ledger
-- options.from_block - 1 (or -1).  Call start() to run it.
CREATE FUNCTION create_pipeline(name text, source text, options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_admin();
	IF source IS NULL OR source NOT IN ('inbox', 'evm_rpc') THEN
		RAISE EXCEPTION 'invalid source "%"', source
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'source must be ''inbox'' or ''evm_rpc''.';
	END IF;
	PERFORM ledger_ingest._catalog_write('create_pipeline', create_pipeline.name,
		ARRAY[source, coalesce(options, '{}')::text]);
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
-- The caller needs EXECUTE on both.  Returns the handler id (registration
-- order).
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
	RETURN ledger_ingest._catalog_write('add_handler', pipeline,
		ARRAY[ledger_ingest._proc_text(handler), encode(topic0, 'hex'), encode(address, 'hex'),
			  ledger_ingest._proc_text(revert), event]);
END
$$;

-- remove_handler(pipeline, handler): unregisters every registration of the
-- function; returns how many were removed.
CREATE FUNCTION remove_handler(pipeline text, handler regprocedure)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	RETURN ledger_ingest._catalog_write('remove_handler', pipeline,
		ARRAY[ledger_ingest._proc_text(handler)]);
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
	PERFORM ledger_ingest._catalog_write('add_raw_sink', pipeline, ARRAY[tbl::oid::text]);
END
$$;

-- remove_raw_sink(pipeline, tbl): stops writing events into tbl.
CREATE FUNCTION remove_raw_sink(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF ledger_ingest._catalog_write('remove_raw_sink', pipeline, ARRAY[tbl::oid::text]) = 0 THEN
		RAISE EXCEPTION 'table % is not a raw sink of pipeline "%"', tbl, pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
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
	PERFORM ledger_ingest._catalog_write('drop_pipeline', pipeline, '{}');
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
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF new IS NULL OR new.ledger IS NULL OR new.ledger < -1
	   OR (new.tx_index IS NULL) <> (new.event_index IS NULL) THEN
		RAISE EXCEPTION 'invalid cursor position %', new
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A position is (ledger >= -1, tx_index, event_index) with both indexes NULL (whole ledger) or both set.';
	END IF;
	IF ledger_ingest._catalog_write('cursor_cas', pipeline,
			ARRAY[expected.ledger, expected.tx_index, expected.event_index,
				  new.ledger, new.tx_index, new.event_index]::text[]) = 1 THEN
		PERFORM ledger_ingest._publish_cursor(pipeline);
		RETURN true;
	END IF;
	RETURN false;
END
$$;

-- rewind(pipeline, ledger): moves the cursor back to the end of "ledger" so
-- that every later ledger is delivered again, and forgets the headers of
-- those ledgers.  Handlers see the re-delivered events again: making that
-- harmless (or undoing effects first) is the handler's business.  For the
-- inbox source the producer must insert the documents again (applied ones are
-- deleted).  Returns the position the cursor was at; serialization_failure
-- when it moved meanwhile.
CREATE FUNCTION rewind(pipeline text, ledger bigint) RETURNS ledger_ingest.position
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cur ledger_ingest.cursor;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	-- waits for a concurrent apply transaction, then reads what it left
	PERFORM ledger_ingest._catalog_write('lock_cursor', pipeline, '{}');
	SELECT * INTO cur FROM ledger_ingest.cursor c WHERE c.pipeline = rewind.pipeline;
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

-- track_table(pipeline, tbl): journal the changes the pipeline's handlers
-- make to tbl, so that a reorg restores it to its state at the fork point.
-- tbl must have a primary key, be owned by the caller (the journal holds
-- whole pre-images of its rows, and a trigger is created on it), and be a
-- plain table: a partitioned table or a partition is refused (rows moving
-- between partitions would escape the journal).  It is journaled from the
-- next ledger the worker applies.
CREATE FUNCTION track_table(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cols text[];
	rel pg_class;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	SELECT * INTO rel FROM pg_class c WHERE c.oid = tbl;
	IF NOT pg_has_role(current_user, rel.relowner, 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of table % to track it', tbl
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'The reorg journal keeps whole rows of the table, and a trigger is created on it.';
	END IF;
	IF rel.relkind = 'p' OR rel.relispartition THEN
		RAISE EXCEPTION 'cannot track %: partitioned tables and partitions are not supported', tbl
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Use a revert handler for effects on partitioned tables.';
	END IF;
	IF rel.relkind <> 'r' THEN
		RAISE EXCEPTION 'cannot track %: not a table', tbl USING ERRCODE = 'wrong_object_type';
	END IF;
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
	PERFORM ledger_ingest._catalog_write('track_table', pipeline, ARRAY[tbl::oid::text, cols::text]);
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
	IF ledger_ingest._catalog_write('untrack_table', pipeline, ARRAY[tbl::oid::text]) = 0 THEN
		RAISE EXCEPTION 'table % is not tracked by pipeline "%"', tbl, pipeline
			USING ERRCODE = 'undefined_object';
	END IF;
	-- tracked by another owner's pipeline (which row-level security hides)
	IF NOT ledger_ingest._table_tracked(untrack_table.tbl) THEN
		EXECUTE format('DROP TRIGGER IF EXISTS ledger_ingest_journal ON %s', tbl);
	END IF;
END
$$;

-- wait_for(pipeline, ledger, timeout): true as soon as the committed cursor
-- has reached the end of "ledger", false after "timeout".  Sleeps on a
-- condition variable that the worker's commit callback broadcasts.
CREATE FUNCTION wait_for(pipeline text, ledger bigint, timeout interval DEFAULT '10s')
RETURNS boolean
	AS 'MODULE_PATHNAME', 'ledger_ingest_wait_for'
	LANGUAGE C VOLATILE;

-- pause_database(): takes this database's pipelines out of service without
-- changing their states: within about a second after commit the
-- launcher stops every worker and exits, and no ledger_ingest process stays
-- connected to the database (so that ALTER DATABASE ... RENAME, CREATE
-- DATABASE ... TEMPLATE or DROP DATABASE can run), across restarts, until
-- resume_database().  For the database owner (or a superuser).
CREATE FUNCTION pause_database() RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_database_owner();
	PERFORM ledger_ingest._catalog_write('pause_database', NULL, '{}');
	PERFORM ledger_ingest._wake_launcher();
END
$$;

-- resume_database(): undoes pause_database(); the launcher starts within
-- about a second after commit and runs the pipelines that are 'running'.
CREATE FUNCTION resume_database() RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_database_owner();
	PERFORM ledger_ingest._catalog_write('resume_database', NULL, '{}');
	PERFORM ledger_ingest._register_database();
END
$$;

-- delete_documents(pipeline, ids): deletes the pipeline's inbox documents
-- with those ids (pending or rejected), or with ids NULL every rejected
-- one (error set).  Returns how many.  To fix a rejected document, delete
-- it and insert the corrected one; then start() the pipeline.
CREATE FUNCTION delete_documents(pipeline text, ids bigint[] DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	RETURN ledger_ingest._catalog_write('delete_documents', pipeline, ARRAY[ids::text]);
END
$$;

-- clear_decode_errors(pipeline, up_to_ledger): forgets the logs kept in
-- ledger_ingest.decode_error for the pipeline, those of ledgers up to
-- up_to_ledger or (NULL) all of them.  Returns how many.
CREATE FUNCTION clear_decode_errors(pipeline text, up_to_ledger bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	RETURN ledger_ingest._catalog_write('clear_decode_errors', pipeline, ARRAY[up_to_ledger::text]);
END
$$;

/* ---------------------------------------------------------------------
 * Keccak-256 and Solidity ABI decoding (src/abi.c, src/abi_core.c)
 * --------------------------------------------------------------------- */

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

-- topic0 of an event: keccak256 of its canonical signature.  Accepts what
-- users paste: 'event Transfer(address indexed from, address indexed to,
-- uint256 value)', with or without "event", names and "indexed".
CREATE FUNCTION event_topic(signature text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'ledger_ingest_event_topic'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The canonical signature, e.g. 'Transfer(address,address,uint256)'.
CREATE FUNCTION event_signature(signature text) RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_ingest_event_signature'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Decodes abi.encode(...) data of a type list ('uint256,string',
-- '(uint256,string)[]') into a jsonb array, one element per type.
CREATE FUNCTION abi_decode(types text, data bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'ledger_ingest_abi_decode'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Decodes one log (its topics, topics[1] = topic0, and data) of an event
-- into a jsonb object of its arguments.  Topic count and topic0 must match.
CREATE FUNCTION decode_event(signature text, topics bytea[], data bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'ledger_ingest_decode_event'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

/* ---------------------------------------------------------------------
 * Views
 * --------------------------------------------------------------------- */

-- status: state 'waiting' for a running pipeline whose worker the launcher
-- could not start (no pipeline or background worker slot free: its
-- last_error says which); on a hot standby, the state the primary
-- recorded (no worker runs there); last_error, the worker's own when it
-- could not write it to the pipeline table; decode_errors, the logs kept in
-- decode_error; notifications_dropped, the notifications not queued
-- because the NOTIFY queue was too full (since the worker took its slot)
CREATE VIEW status WITH (security_invoker = true) AS
SELECT p.name AS pipeline,
	   CASE WHEN p.state = 'running' AND pg_catalog.pg_is_in_recovery() THEN p.state
			WHEN p.state = 'running' AND s.pid IS NULL
				 AND p.last_error LIKE '53000: could not start the pipeline''s worker:%' THEN 'waiting'
			WHEN p.state = 'running' AND s.pid IS NULL THEN 'starting'
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
	   coalesce(s.worker_error, p.last_error) AS last_error,
	   p.errors,
	   p.source,
	   p.owner,
	   c.reorgs,
	   c.last_reorg_depth,
	   c.last_reorg_at,
	   (SELECT pg_catalog.count(*) FROM ledger_ingest.decode_error d
		WHERE d.pipeline OPERATOR(pg_catalog.=) p.name) AS decode_errors,
	   coalesce(s.notifications_dropped, 0) AS notifications_dropped
FROM ledger_ingest.pipeline p
JOIN ledger_ingest.cursor c ON c.pipeline = p.name
LEFT JOIN ledger_ingest._shmem_status() s ON s.pipeline = p.name;

/* ---------------------------------------------------------------------
 * Row-level security
 *
 * A non-superuser admin sees only pipelines owned by a role it is a member
 * of (never by ledger_ingest_admin itself, which every admin is a member
 * of), and only those pipelines' rows in the other tables.
 * --------------------------------------------------------------------- */

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
ALTER TABLE tracked ENABLE ROW LEVEL SECURITY;
CREATE POLICY tracked_owner ON tracked
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) tracked.pipeline));
ALTER TABLE event_journal ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_journal_owner ON event_journal
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) event_journal.pipeline));
ALTER TABLE decode_error ENABLE ROW LEVEL SECURITY;
CREATE POLICY decode_error_owner ON decode_error
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) decode_error.pipeline));
-- journal rows hold whole pre-images: readable only by members of the
-- owner of the table they came from (and of the pipeline's owner)
ALTER TABLE journal ENABLE ROW LEVEL SECURITY;
CREATE POLICY journal_owner ON journal
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) journal.pipeline)
		   AND pg_catalog.pg_has_role(current_user,
				(SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) journal.tbl), 'MEMBER'));

-- every admin may see whether the database is paused; only its owner may
-- pause or resume it
ALTER TABLE database_pause ENABLE ROW LEVEL SECURITY;
CREATE POLICY database_pause_read ON database_pause FOR SELECT USING (true);
CREATE POLICY database_pause_owner_insert ON database_pause FOR INSERT
	WITH CHECK (ledger_ingest._is_database_owner());
CREATE POLICY database_pause_owner_delete ON database_pause FOR DELETE
	USING (ledger_ingest._is_database_owner());

/* ---------------------------------------------------------------------
 * Privileges
 *
 * Nothing goes to PUBLIC.  ledger_ingest_admin gets USAGE on the schema,
 * SELECT on the tables and the view (row-level security limits it to its
 * own pipelines' rows), INSERT on the inbox with USAGE on its sequence
 * (the producers' path), and EXECUTE on the functions; every other change
 * goes through _catalog_write(), which makes it as the tables' owner (so
 * handler_id_seq and journal_seq_seq are not granted).  The trigger
 * functions _inbox_written() and _pipeline_inserted() are not granted
 * (triggers fire without EXECUTE); _journal() is, because track_table()
 * creates its trigger as the caller, and CREATE TRIGGER needs EXECUTE.
 * --------------------------------------------------------------------- */

GRANT USAGE ON SCHEMA ledger_ingest TO ledger_ingest_admin;

REVOKE ALL ON pipeline, cursor, handler, ledger, sink, orphan, inbox, tracked, journal,
	event_journal, decode_error, database_pause, status FROM PUBLIC;
GRANT SELECT ON pipeline, cursor, handler, ledger, sink, orphan, inbox, tracked, journal,
	event_journal, decode_error, database_pause, status TO ledger_ingest_admin;
GRANT INSERT ON inbox TO ledger_ingest_admin;

REVOKE ALL ON SEQUENCE handler_id_seq, inbox_id_seq, journal_seq_seq FROM PUBLIC;
GRANT USAGE ON SEQUENCE inbox_id_seq TO ledger_ingest_admin;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ledger_ingest FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ledger_ingest TO ledger_ingest_admin;
REVOKE EXECUTE ON FUNCTION _inbox_written(), _pipeline_inserted() FROM ledger_ingest_admin;

/* ---------------------------------------------------------------------
 * What \df+, \dt+ and \dv+ show: a comment on every object of the API
 * --------------------------------------------------------------------- */
COMMENT ON FUNCTION create_pipeline(text, text, jsonb) IS
	'Creates a stopped pipeline (source ''inbox'' or ''evm_rpc'', validated options) owned by current_user, its cursor at options.from_block - 1 or -1.';
COMMENT ON FUNCTION add_handler(text, regprocedure, bytea, bytea, regprocedure, text) IS
	'Registers a handler taking ledger_ingest.event (or event[]) for events matching topic0 (32 bytes), address (20 bytes) or an event signature; optional revert function for reorgs. Returns the handler id.';
COMMENT ON FUNCTION remove_handler(text, regprocedure) IS
	'Unregisters every registration of the function; returns how many.';
COMMENT ON FUNCTION add_raw_sink(text, regclass) IS
	'Writes every applied event as a row of the table (columns named after ledger_ingest.event fields) in the apply transaction.';
COMMENT ON FUNCTION remove_raw_sink(text, regclass) IS
	'Stops writing events into the table.';
COMMENT ON FUNCTION start(text) IS
	'Marks the pipeline running (clearing a failure); its worker starts within about a second after commit.';
COMMENT ON FUNCTION stop(text) IS
	'Marks the pipeline stopped; its worker exits within about a second after commit. The cursor is kept.';
COMMENT ON FUNCTION drop_pipeline(text) IS
	'Stops and deletes the pipeline with its cursor, handlers, sinks, tracked tables, headers, journals and inbox documents.';
COMMENT ON FUNCTION cursor_cas(text, ledger_ingest.position, ledger_ingest.position) IS
	'Moves the cursor to new only if it is exactly at expected; false on a lost race. Headers and journals above new are forgotten.';
COMMENT ON FUNCTION rewind(text, bigint) IS
	'Moves the cursor back to the end of the ledger so that later ledgers are delivered again; returns the old position.';
COMMENT ON FUNCTION track_table(text, regclass) IS
	'Journals the changes the pipeline''s handlers make to the table (owned by the caller, with a primary key) so that a reorg restores it.';
COMMENT ON FUNCTION untrack_table(text, regclass) IS
	'Stops journaling the table for the pipeline; the trigger goes when no pipeline tracks it.';
COMMENT ON FUNCTION wait_for(text, bigint, interval) IS
	'True as soon as the committed cursor has reached the end of the ledger, false after the timeout.';
COMMENT ON FUNCTION pause_database() IS
	'Takes this database''s pipelines out of service (no ledger_ingest process stays connected) until resume_database(). Database owner only.';
COMMENT ON FUNCTION resume_database() IS
	'Undoes pause_database(). Database owner only.';
COMMENT ON FUNCTION delete_documents(text, bigint[]) IS
	'Deletes the pipeline''s inbox documents with those ids, or (NULL) every rejected one; returns how many.';
COMMENT ON FUNCTION clear_decode_errors(text, bigint) IS
	'Forgets the undecodable logs kept for the pipeline, up to the ledger or (NULL) all; returns how many.';
COMMENT ON FUNCTION keccak256(bytea) IS
	'Ethereum Keccak-256 of data (32 bytes)';
COMMENT ON FUNCTION event_topic(text) IS
	'topic0 (keccak256 of the canonical signature) of an event signature';
COMMENT ON FUNCTION event_signature(text) IS
	'canonical form of an event signature, as hashed into topic0';
COMMENT ON FUNCTION abi_decode(text, bytea) IS
	'Solidity ABI decoding of data as a comma-separated type list, as a jsonb array';
COMMENT ON FUNCTION decode_event(text, bytea[], bytea) IS
	'Solidity ABI decoding of an event log into a jsonb object of its arguments';
COMMENT ON FUNCTION doc_ledger(jsonb) IS
	'The ledger number of a ledger document (its "number"), NULL when it has none that parses.';
COMMENT ON FUNCTION validate_options(text, jsonb) IS
	'Checks pipeline options for a source; errors name the offending key.';
COMMENT ON VIEW status IS
	'One row per pipeline the caller may see: state, worker pid, cursor, source head, counters and the last error.';
COMMENT ON TABLE pipeline IS 'Pipelines: source, options, owner and desired state.';
COMMENT ON TABLE cursor IS 'Each pipeline''s committed position and counters, moved by compare-and-swap.';
COMMENT ON TABLE handler IS 'Registered handler functions, by pipeline, in registration order.';
COMMENT ON TABLE sink IS 'Raw sink tables, by pipeline.';
COMMENT ON TABLE ledger IS 'Headers of applied ledgers inside the reorg window.';
COMMENT ON TABLE orphan IS 'Headers of ledgers a reorg orphaned.';
COMMENT ON TABLE inbox IS 'Ledger documents written by producers (INSERT or COPY), deleted in the transaction that applies them; rejected ones keep their error.';
COMMENT ON TABLE tracked IS 'Tables whose changes are journaled for reorgs, by pipeline.';
COMMENT ON TABLE journal IS 'Reorg journal: pre- and post-images of tracked rows changed by each ledger in the window.';
COMMENT ON TABLE event_journal IS 'Events in the window of pipelines with revert handlers.';
COMMENT ON TABLE decode_error IS 'Logs a signature-registered handler could not decode, with the decoder''s error.';
COMMENT ON TABLE database_pause IS 'A row: this database is paused (pause_database()).';
COMMENT ON TYPE ledger_ingest.position IS '(ledger, tx_index, event_index): (L, NULL, NULL) is ledger L applied whole; (-1, NULL, NULL) nothing applied.';
COMMENT ON TYPE event IS 'The value a handler receives, one per event (args: decoded arguments for handlers registered by signature).';

-- this database wants a launcher
SELECT ledger_ingest._register_database();
