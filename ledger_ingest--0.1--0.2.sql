/* ledger_ingest--0.1--0.2.sql: ALTER EXTENSION ledger_ingest UPDATE TO '0.2' */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION ledger_ingest UPDATE TO '0.2'" to load this file. \quit

/*
 * 0.2 makes the extension's state survive pg_dump/pg_restore and
 * pg_upgrade: handler functions are stored as text (regprocedure columns
 * block pg_upgrade), journal rows name their table by regclass (an oid
 * does not survive a restore), and every table and sequence is dumped.
 * Pipelines, cursors and everything else are kept.
 *
 * There is no full 0.2 script: CREATE EXTENSION runs ledger_ingest--0.1.sql
 * and then this file, as PostgreSQL's contrib modules do, so a fresh
 * install and an updated one are built by the same statements
 * (test/t/016_backup_upgrade.pl compares pg_dump --schema-only
 * --binary-upgrade of both, which would catch a full script that drifts).
 */

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

ALTER TABLE handler
	ALTER COLUMN handler TYPE text USING ledger_ingest._proc_text(handler),
	ALTER COLUMN revert TYPE text USING ledger_ingest._proc_text(revert);

ALTER TABLE journal ALTER COLUMN tbl TYPE regclass USING tbl::regclass;

DROP INDEX inbox_pending_idx;
CREATE INDEX inbox_pending_idx ON inbox (pipeline, ledger NULLS FIRST, id) WHERE error IS NULL;

-- the API functions that read or write those columns

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
		VALUES (add_handler.pipeline, ledger_ingest._proc_text(add_handler.handler), add_handler.topic0,
				add_handler.address, ledger_ingest._proc_text(add_handler.revert), add_handler.event)
		RETURNING id INTO hid;
	RETURN hid;
END
$$;

-- remove_handler(pipeline, handler): unregisters every registration of the
-- function; returns how many were removed.
CREATE OR REPLACE FUNCTION remove_handler(pipeline text, handler regprocedure)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n int;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	DELETE FROM ledger_ingest.handler h
		WHERE h.pipeline = remove_handler.pipeline AND h.handler = ledger_ingest._proc_text(remove_handler.handler);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- untrack_table(pipeline, tbl): stop journaling tbl for the pipeline (and
-- forget its journal); the trigger goes when no pipeline tracks tbl.
CREATE OR REPLACE FUNCTION untrack_table(pipeline text, tbl regclass) RETURNS void
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
		WHERE j.pipeline = untrack_table.pipeline AND j.tbl = untrack_table.tbl;
	-- tracked by another owner's pipeline (which row-level security hides)
	IF NOT ledger_ingest._table_tracked(untrack_table.tbl) THEN
		EXECUTE format('DROP TRIGGER IF EXISTS ledger_ingest_journal ON %s', tbl);
	END IF;
END
$$;

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

REVOKE ALL ON FUNCTION _pipeline_inserted(), _proc_text(regprocedure) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _proc_text(regprocedure) TO ledger_ingest_admin;

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

/* ---------------------------------------------------------------------
 * Logs a handler cannot decode
 * --------------------------------------------------------------------- */

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
REVOKE ALL ON decode_error FROM PUBLIC;
GRANT SELECT, DELETE ON decode_error TO ledger_ingest_admin;
ALTER TABLE decode_error ENABLE ROW LEVEL SECURITY;
CREATE POLICY decode_error_owner ON decode_error
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) decode_error.pipeline));
SELECT pg_catalog.pg_extension_config_dump('decode_error', '');

/* ---------------------------------------------------------------------
 * Notifications when the NOTIFY queue is pinned
 * --------------------------------------------------------------------- */

-- NOTIFY ledger_ingest, payload, unless the NOTIFY queue is fuller than
-- ledger_ingest.notify_queue_limit; then dropped, counted in status and
-- logged (src/publish.c, li_notify).  Returns whether it was queued.
CREATE FUNCTION _notify(pipeline text, payload text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'ledger_ingest_notify'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION _notify(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _notify(text, text) TO ledger_ingest_admin;

-- _set_state(pipeline, state): the desired state set by start() and stop(),
-- with a "state" notification and a launcher wake-up at commit.
CREATE OR REPLACE FUNCTION _set_state(pipeline text, state text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	UPDATE ledger_ingest.pipeline p
		SET state = _set_state.state,
			errors = CASE WHEN _set_state.state = 'running' THEN 0 ELSE p.errors END,
			last_error = CASE WHEN _set_state.state = 'running' THEN NULL ELSE p.last_error END
		WHERE p.name = _set_state.pipeline;
	PERFORM ledger_ingest._notify(pipeline,
		json_build_object('type', 'state', 'pipeline', pipeline, 'state', state, 'sqlstate', NULL)::text);
	PERFORM ledger_ingest._wake_launcher();
END
$$;

-- Live per-pipeline state from shared memory (pid, head, worker state,
-- notifications dropped since the pipeline's worker took its slot, and an
-- error the worker could not record in the pipeline table, in a read-only
-- database say).
DROP VIEW status;
DROP FUNCTION _shmem_status();
CREATE FUNCTION _shmem_status(OUT pipeline text, OUT pid integer, OUT head bigint,
							  OUT worker_state text, OUT notifications_dropped bigint,
							  OUT worker_error text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'ledger_ingest_shmem_status'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION _shmem_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _shmem_status() TO ledger_ingest_admin;

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
REVOKE ALL ON status FROM PUBLIC;
GRANT SELECT ON status TO ledger_ingest_admin;

/* ---------------------------------------------------------------------
 * Every database, and taking one out of service
 * --------------------------------------------------------------------- */

-- Ask the supervisor, at commit, for a launcher in this database (src/
-- launcher.c: one launcher per database where the extension is
-- installed).  A no-op without shared_preload_libraries.
CREATE FUNCTION _register_database() RETURNS void
	AS 'MODULE_PATHNAME', 'ledger_ingest_register_database'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION _register_database() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _register_database() TO ledger_ingest_admin;

-- A row here: the database is paused (pause_database()); its launcher and
-- workers exit and none start until resume_database().
CREATE TABLE database_pause (
	paused boolean PRIMARY KEY DEFAULT true CHECK (paused),	-- one row at most
	paused_at timestamptz NOT NULL DEFAULT now(),
	paused_by name NOT NULL DEFAULT current_user
);
SELECT pg_catalog.pg_extension_config_dump('database_pause', '');

-- true when current_user may pause and resume this database: a member of
-- the database owner (superusers are)
CREATE FUNCTION _is_database_owner() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_has_role(current_user,
						 (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'MEMBER') $$;

-- every admin may see whether the database is paused; only its owner may
-- pause or resume it
REVOKE ALL ON database_pause FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON database_pause TO ledger_ingest_admin;
ALTER TABLE database_pause ENABLE ROW LEVEL SECURITY;
CREATE POLICY database_pause_read ON database_pause FOR SELECT USING (true);
CREATE POLICY database_pause_owner_insert ON database_pause FOR INSERT
	WITH CHECK (ledger_ingest._is_database_owner());
CREATE POLICY database_pause_owner_delete ON database_pause FOR DELETE
	USING (ledger_ingest._is_database_owner());

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
	INSERT INTO ledger_ingest.database_pause DEFAULT VALUES ON CONFLICT DO NOTHING;
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
	DELETE FROM ledger_ingest.database_pause;
	PERFORM ledger_ingest._register_database();
END
$$;

REVOKE ALL ON FUNCTION _is_database_owner(), _require_database_owner(), pause_database(), resume_database() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _is_database_owner(), _require_database_owner(), pause_database(), resume_database() TO ledger_ingest_admin;

-- this database wants a launcher (CREATE EXTENSION runs this script too)
SELECT ledger_ingest._register_database();

/* ---------------------------------------------------------------------
 * Tracked tables: owned by the caller, not partitioned, journaled from a
 * known ledger, and kept journaled while any pipeline tracks them
 * --------------------------------------------------------------------- */

-- The first ledger from which the worker journals the table (set in the
-- apply transaction that first journals it; NULL until then): a reorg
-- forking below it fails with nothing changed instead of reverting only
-- the journaled part of the orphaned ledgers.
ALTER TABLE tracked ADD COLUMN since_ledger bigint;

-- Whether any pipeline, of any owner, tracks tbl: untrack_table must not
-- drop the journal trigger another owner's pipeline still needs, and
-- row-level security hides the other owners' rows from the caller.
-- SECURITY DEFINER (the extension's owner), search_path pinned; it tells
-- only whether the table is tracked, which its trigger shows anyway.
CREATE FUNCTION _table_tracked(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM ledger_ingest.tracked t WHERE t.tbl OPERATOR(pg_catalog.=) _table_tracked.tbl) $$;
REVOKE ALL ON FUNCTION _table_tracked(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _table_tracked(regclass) TO ledger_ingest_admin;

-- track_table(pipeline, tbl): journal the changes the pipeline's handlers
-- make to tbl, so that a reorg restores it to its state at the fork point.
-- tbl must have a primary key, be owned by the caller (a member of its
-- owner: the journal holds whole pre-images of its rows, and a trigger is
-- created on it), and be a plain table: a partitioned table or a partition
-- is refused (rows moving between partitions would escape the journal).
-- It is journaled from the next ledger the worker applies.
CREATE OR REPLACE FUNCTION track_table(pipeline text, tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cols text[];
	rel pg_class;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	SELECT * INTO rel FROM pg_class c WHERE c.oid = tbl;
	IF NOT pg_has_role(current_user, rel.relowner, 'MEMBER') THEN
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

-- journal rows hold whole pre-images: readable only by members of the
-- owner of the table they came from (and of the pipeline's owner)
DROP POLICY journal_owner ON journal;
CREATE POLICY journal_owner ON journal
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) journal.pipeline)
		   AND pg_catalog.pg_has_role(current_user,
				(SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) journal.tbl), 'MEMBER'));

-- The journal's post-images: what each change left (an UPDATE journals
-- only the columns it changed, in old_row and new_row; JSON null: the
-- change deleted the row).  A reorg restores only the columns the orphaned
-- ledgers changed, and refuses to overwrite rows changed outside the
-- pipeline since.  NULL in entries journaled before 0.2.
ALTER TABLE journal ADD COLUMN new_row jsonb;

-- Inbox documents belong to their pipeline: a document can only be written
-- for an existing pipeline (that the producer owns: row-level security), and
-- goes with it however the pipeline is deleted, so a new pipeline of the
-- same name never inherits another's documents.  NOT VALID: documents left
-- by a pipeline deleted before 0.2 are not checked (drop them by hand).
ALTER TABLE inbox ADD CONSTRAINT inbox_pipeline_fkey FOREIGN KEY (pipeline)
	REFERENCES pipeline (name) ON DELETE CASCADE ON UPDATE CASCADE NOT VALID;
