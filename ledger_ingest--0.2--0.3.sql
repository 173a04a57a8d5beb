/* ledger_ingest--0.2--0.3.sql: ALTER EXTENSION ledger_ingest UPDATE TO '0.3' */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION ledger_ingest UPDATE TO '0.3'" to load this file. \quit

/*
 * 0.3: members of ledger_ingest_admin reach the extension's state only
 * through its functions and views.  They keep SELECT on the tables,
 * limited to their own pipelines' rows by row-level security (SELECT
 * allows at most LOCK ... IN ACCESS SHARE MODE, which no worker waits
 * for), and INSERT on the inbox for their own pipelines (the producers'
 * fast path, INSERT and COPY; it allows at most ROW EXCLUSIVE, which
 * workers share).  Every other change goes through _catalog_write()
 * (src/catalog.c): it checks that the calling role may make the change
 * and makes it as the owner of the extension's tables.  No admin can
 * lock, read or change another owner's rows.
 */

-- _catalog_write(op, pipeline, args): one of a fixed set of changes to
-- the extension's tables (src/catalog.c lists them with their arguments),
-- for the named pipeline, checked against the calling role and made as
-- the tables' owner.  Returns the rows changed (the handler id for
-- add_handler).  SECURITY INVOKER: the check needs the caller.
CREATE FUNCTION _catalog_write(op text, pipeline text, args text[]) RETURNS bigint
	AS 'MODULE_PATHNAME', 'ledger_ingest_catalog_write'
	LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION _catalog_write(text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _catalog_write(text, text, text[]) TO ledger_ingest_admin;

REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON pipeline, cursor, handler, sink, ledger, orphan, tracked,
	journal, event_journal, decode_error, database_pause FROM ledger_ingest_admin;
REVOKE UPDATE, DELETE, TRUNCATE ON inbox FROM ledger_ingest_admin;
REVOKE ALL ON SEQUENCE handler_id_seq FROM ledger_ingest_admin;

-- create_pipeline(name, source 'inbox'|'evm_rpc', options jsonb): creates a
-- stopped pipeline owned by current_user with its cursor at ledger
-- options.from_block - 1 (or -1).  Call start() to run it.
CREATE OR REPLACE FUNCTION create_pipeline(name text, source text, options jsonb DEFAULT '{}')
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
CREATE OR REPLACE FUNCTION remove_handler(pipeline text, handler regprocedure)
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
CREATE OR REPLACE FUNCTION add_raw_sink(pipeline text, tbl regclass) RETURNS void
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
CREATE OR REPLACE FUNCTION remove_raw_sink(pipeline text, tbl regclass) RETURNS void
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

-- _set_state(pipeline, state): the desired state set by start() and stop(),
-- with a "state" notification and a launcher wake-up at commit.
CREATE OR REPLACE FUNCTION _set_state(pipeline text, state text) RETURNS void
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

-- drop_pipeline(pipeline): stops the worker and deletes the pipeline, its
-- cursor, handlers, ledger headers, reorg journals, tracked tables (and
-- their journal triggers when no other pipeline tracks them) and pending
-- inbox documents.
CREATE OR REPLACE FUNCTION drop_pipeline(pipeline text) RETURNS void
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
CREATE OR REPLACE FUNCTION cursor_cas(pipeline text, expected ledger_ingest.position, new ledger_ingest.position)
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
CREATE OR REPLACE FUNCTION rewind(pipeline text, ledger bigint) RETURNS ledger_ingest.position
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
CREATE OR REPLACE FUNCTION track_table(pipeline text, tbl regclass) RETURNS void
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
CREATE OR REPLACE FUNCTION untrack_table(pipeline text, tbl regclass) RETURNS void
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

-- pause_database(): takes this database's pipelines out of service without
-- changing their states: within about a second after commit the
-- launcher stops every worker and exits, and no ledger_ingest process stays
-- connected to the database (so that ALTER DATABASE ... RENAME, CREATE
-- DATABASE ... TEMPLATE or DROP DATABASE can run), across restarts, until
-- resume_database().  For the database owner (or a superuser).
CREATE OR REPLACE FUNCTION pause_database() RETURNS void
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
CREATE OR REPLACE FUNCTION resume_database() RETURNS void
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

REVOKE ALL ON FUNCTION delete_documents(text, bigint[]), clear_decode_errors(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delete_documents(text, bigint[]), clear_decode_errors(text, bigint) TO ledger_ingest_admin;

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
