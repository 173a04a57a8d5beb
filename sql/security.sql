--
-- security: privileges, PUBLIC grants and row-level security
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger_ingest CASCADE;
RESET client_min_messages;
CREATE EXTENSION ledger_ingest;
\set SHOW_CONTEXT never

CREATE ROLE regress_li_outsider NOLOGIN;
CREATE ROLE regress_li_alice NOLOGIN IN ROLE ledger_ingest_admin;
CREATE ROLE regress_li_bob NOLOGIN IN ROLE ledger_ingest_admin;

-- a handler function anyone may execute, and one nobody but its owner may
CREATE FUNCTION sec_handler(e ledger_ingest.event) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION sec_private(e ledger_ingest.event) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
REVOKE EXECUTE ON FUNCTION sec_private(ledger_ingest.event) FROM PUBLIC;
CREATE FUNCTION sec_tx_handler(t ledger_ingest.transaction) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
-- a table of bob's, for track_table
CREATE TABLE sec_bob_balances (holder text PRIMARY KEY, amount numeric);
ALTER TABLE sec_bob_balances OWNER TO regress_li_bob;
CREATE VIEW sec_bob_view AS SELECT 1 AS k;
ALTER VIEW sec_bob_view OWNER TO regress_li_bob;

--
-- Nothing in the schema is granted to PUBLIC (a NULL ACL is the default
-- ACL, which for functions includes EXECUTE to PUBLIC)
--
SELECT c.relname, c.relkind, a.privilege_type
  FROM pg_class c
 CROSS JOIN LATERAL aclexplode(coalesce(c.relacl,
		acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
 WHERE c.relnamespace = 'ledger_ingest'::regnamespace AND a.grantee = 0;
SELECT p.oid::regprocedure AS function, a.privilege_type
  FROM pg_proc p
 CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE p.pronamespace = 'ledger_ingest'::regnamespace AND a.grantee = 0;
SELECT n.nspname, a.privilege_type
  FROM pg_namespace n
 CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
 WHERE n.nspname = 'ledger_ingest' AND a.grantee = 0;
-- every table ledger_ingest_admin may use has row-level security
SELECT c.relname
  FROM pg_class c
 WHERE c.relnamespace = 'ledger_ingest'::regnamespace AND c.relkind = 'r'
   AND has_table_privilege('ledger_ingest_admin', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
   AND NOT c.relrowsecurity;
-- what ledger_ingest_admin may do with the API's tables, view and sequences
SELECT c.relname, c.relkind, c.relrowsecurity AS rls,
	   (SELECT string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
		  FROM aclexplode(c.relacl) a
		 WHERE a.grantee = 'ledger_ingest_admin'::regrole) AS admin_privileges
  FROM pg_class c
 WHERE c.relnamespace = 'ledger_ingest'::regnamespace
   AND c.relname IN ('pipeline', 'cursor', 'handler', 'ledger', 'inbox', 'tracked', 'journal',
					 'status', 'handler_id_seq', 'inbox_id_seq')
 ORDER BY c.relname COLLATE "C";

--
-- A role outside ledger_ingest_admin
--
SET ROLE regress_li_outsider;
-- without USAGE on the schema
SELECT ledger_ingest.create_pipeline('sec_outsider', 'inbox');
SELECT * FROM ledger_ingest.pipeline;
SELECT * FROM ledger_ingest.status;
RESET ROLE;
-- even with USAGE on the schema, every function and table is refused
GRANT USAGE ON SCHEMA ledger_ingest TO regress_li_outsider;
SELECT ledger_ingest.create_pipeline('sec_root', 'inbox');
SET ROLE regress_li_outsider;
SELECT ledger_ingest.create_pipeline('sec_outsider', 'inbox');
SELECT ledger_ingest.start('sec_root');
SELECT ledger_ingest.stop('sec_root');
SELECT ledger_ingest.add_handler('sec_root', 'sec_handler(ledger_ingest.event)');
SELECT ledger_ingest.remove_handler('sec_root', 'sec_handler(ledger_ingest.event)');
SELECT ledger_ingest.cursor_cas('sec_root', ROW(-1, NULL, NULL), ROW(5, NULL, NULL));
SELECT ledger_ingest.rewind('sec_root', -1);
SELECT ledger_ingest.wait_for('sec_root', 1, '0');
SELECT ledger_ingest.drop_pipeline('sec_root');
SELECT ledger_ingest.track_table('sec_root', 'pg_class');
SELECT ledger_ingest.validate_options('inbox', '{}');
SELECT ledger_ingest._require_admin();
SELECT ledger_ingest._publish_cursor('sec_root');
SELECT * FROM ledger_ingest._shmem_status();
SELECT * FROM ledger_ingest.pipeline;
SELECT * FROM ledger_ingest.cursor;
SELECT * FROM ledger_ingest.handler;
SELECT * FROM ledger_ingest.inbox;
SELECT * FROM ledger_ingest.ledger;
SELECT * FROM ledger_ingest.tracked;
SELECT * FROM ledger_ingest.journal;
SELECT * FROM ledger_ingest.status;
INSERT INTO ledger_ingest.pipeline (name, source) VALUES ('sec_outsider', 'inbox');
INSERT INTO ledger_ingest.cursor (pipeline) VALUES ('sec_root');
INSERT INTO ledger_ingest.handler (pipeline, handler) VALUES ('sec_root', 'sec_handler(ledger_ingest.event)');
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('sec_root', '{"number": 1}');
UPDATE ledger_ingest.pipeline SET state = 'running';
UPDATE ledger_ingest.cursor SET ledger = 5;
DELETE FROM ledger_ingest.inbox;
SELECT nextval('ledger_ingest.inbox_id_seq');
RESET ROLE;
-- granted EXECUTE on the guard itself, the role still gets a clear refusal
GRANT EXECUTE ON FUNCTION ledger_ingest._require_admin() TO regress_li_outsider;
SET ROLE regress_li_outsider;
SELECT ledger_ingest._require_admin();
RESET ROLE;
-- nothing changed
SELECT name, state FROM ledger_ingest.pipeline;
SELECT pipeline, ledger FROM ledger_ingest.cursor;
SELECT count(*) FROM ledger_ingest.inbox;

--
-- Two admins: each sees and changes only its own pipelines
--
SET ROLE regress_li_alice;
SELECT ledger_ingest.create_pipeline('sec_alice', 'inbox');
SELECT ledger_ingest.add_handler('sec_alice', 'sec_handler(ledger_ingest.event)');
SELECT ledger_ingest.add_factory('sec_alice', decode(repeat('11', 20), 'hex'), 'event Created(address child)', 'child') > 0 AS factory;
INSERT INTO ledger_ingest.inbox (pipeline, doc)
	VALUES ('sec_alice', '{"number": "0x1", "hash": "0x1111111111111111111111111111111111111111111111111111111111111111"}');
-- the shared cursor of sec_alice now exists (nothing is applied yet)
SELECT ledger_ingest.wait_for('sec_alice', 0, '0');
RESET ROLE;
-- a header, as the worker would have recorded it
INSERT INTO ledger_ingest.ledger (pipeline, number, hash, events)
	VALUES ('sec_alice', 0, decode(repeat('10', 32), 'hex'), 0);
-- and a child, as the worker would have recorded it
INSERT INTO ledger_ingest.child (pipeline, address, factory, ledger, tx_index, event_index)
	SELECT 'sec_alice', decode(repeat('22', 20), 'hex'), id, 0, 0, 0 FROM ledger_ingest.factory;

SET ROLE regress_li_bob;
SELECT ledger_ingest.create_pipeline('sec_bob', 'inbox');
SELECT ledger_ingest.add_handler('sec_bob', 'sec_handler(ledger_ingest.event)');
-- bob sees his pipeline only, in every table and in status
SELECT name, source, state, owner FROM ledger_ingest.pipeline;
SELECT pipeline, ledger FROM ledger_ingest.cursor;
SELECT pipeline, handler FROM ledger_ingest.handler;
SELECT pipeline, ledger FROM ledger_ingest.inbox;
SELECT pipeline, number FROM ledger_ingest.ledger;
SELECT pipeline, address FROM ledger_ingest.factory;
SELECT pipeline, address FROM ledger_ingest.child;
SELECT pipeline, state, owner FROM ledger_ingest.status;
-- nor in the shared-memory state behind status
SELECT pipeline FROM ledger_ingest._shmem_status() WHERE pipeline <> 'sec_bob';
-- alice's pipeline does not exist for bob's API calls
SELECT ledger_ingest.start('sec_alice');
SELECT ledger_ingest.stop('sec_alice');
SELECT ledger_ingest.add_handler('sec_alice', 'sec_handler(ledger_ingest.event)');
SELECT ledger_ingest.remove_handler('sec_alice', 'sec_handler(ledger_ingest.event)');
SELECT ledger_ingest.cursor_cas('sec_alice', ROW(-1, NULL, NULL), ROW(5, NULL, NULL));
SELECT ledger_ingest.rewind('sec_alice', -1);
SELECT ledger_ingest.wait_for('sec_alice', 0, '0');
SELECT ledger_ingest.drop_pipeline('sec_alice');
SELECT ledger_ingest.track_table('sec_alice', 'pg_class');
SELECT ledger_ingest.add_factory('sec_alice', decode(repeat('33', 20), 'hex'), 'event Created(address child)', 'child');
SELECT ledger_ingest.remove_factory('sec_alice', decode(repeat('11', 20), 'hex'));
SELECT ledger_ingest.add_transaction_handler('sec_alice', 'sec_tx_handler(ledger_ingest.transaction)');
-- bob holds SELECT on the tables and INSERT on the inbox only: direct
-- changes, even to his own rows, are refused, and so is every lock that
-- could stall another owner's worker
UPDATE ledger_ingest.pipeline SET state = 'running' WHERE name = 'sec_alice';
DELETE FROM ledger_ingest.pipeline WHERE name = 'sec_alice';
UPDATE ledger_ingest.cursor SET ledger = 100 WHERE pipeline = 'sec_alice';
DELETE FROM ledger_ingest.handler WHERE pipeline = 'sec_alice';
UPDATE ledger_ingest.inbox SET doc = '{}' WHERE pipeline = 'sec_alice';
DELETE FROM ledger_ingest.inbox WHERE pipeline = 'sec_alice';
DELETE FROM ledger_ingest.child WHERE pipeline = 'sec_alice';
DELETE FROM ledger_ingest.factory WHERE pipeline = 'sec_alice';
-- and rows for alice's pipeline cannot be added or moved there
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('sec_alice', '{"number": 2}');
INSERT INTO ledger_ingest.handler (pipeline, handler) VALUES ('sec_alice', 'sec_handler(ledger_ingest.event)');
UPDATE ledger_ingest.handler SET pipeline = 'sec_alice' WHERE pipeline = 'sec_bob';
-- bob cannot move alice's shared cursor either (wait_for below must not be
-- fooled)
DO $$
BEGIN
	PERFORM ledger_ingest._publish_cursor('sec_alice');
EXCEPTION WHEN OTHERS THEN
	NULL;
END
$$;

-- a pipeline cannot be created for (or given to) another owner
INSERT INTO ledger_ingest.pipeline (name, source, owner) VALUES ('sec_forged', 'inbox', 'regress_li_alice');
INSERT INTO ledger_ingest.pipeline (name, source, owner) VALUES ('sec_forged', 'inbox', 'ledger_ingest_admin');
UPDATE ledger_ingest.pipeline SET owner = 'regress_li_alice' WHERE name = 'sec_bob';
-- even with himself as the owner: only the API changes the tables
INSERT INTO ledger_ingest.pipeline (name, source) VALUES ('sec_bob_direct', 'inbox');
SELECT name, owner FROM ledger_ingest.pipeline ORDER BY name COLLATE "C";
BEGIN;
LOCK TABLE ledger_ingest.cursor IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
BEGIN;
LOCK TABLE ledger_ingest.inbox IN SHARE MODE;
ROLLBACK;
BEGIN;
SELECT pipeline FROM ledger_ingest.cursor FOR UPDATE;
ROLLBACK;
TRUNCATE ledger_ingest.inbox;
-- the API's own write function checks the caller itself
SELECT ledger_ingest._catalog_write('set_state', 'sec_alice', ARRAY['stopped']);
SELECT ledger_ingest._catalog_write('drop_pipeline', 'sec_alice', '{}');
SELECT ledger_ingest._catalog_write('delete_documents', 'sec_alice', ARRAY[NULL]);
SELECT ledger_ingest._catalog_write('track_table', 'sec_bob', ARRAY['pg_class'::regclass::oid::text, '{oid}']);
-- nor, called directly, track what track_table() refuses (bob owns the view)
SELECT ledger_ingest._catalog_write('track_table', 'sec_bob', ARRAY['sec_bob_view'::regclass::oid::text, '{k}']);
DO $$
BEGIN
	PERFORM ledger_ingest._catalog_write('pause_database', NULL, '{}');
EXCEPTION WHEN insufficient_privilege THEN
	RAISE NOTICE '%', replace(SQLERRM, current_database(), '(this database)');
END
$$;
SELECT ledger_ingest._catalog_write('set_state', 'sec_bob', ARRAY['running', 'x']);
SELECT ledger_ingest._catalog_write('update pipeline', 'sec_bob', '{}');
SELECT ledger_ingest.delete_documents('sec_alice');
SELECT ledger_ingest.clear_decode_errors('sec_alice');

-- a handler must be executable by the registering role
SELECT ledger_ingest.add_handler('sec_bob', 'sec_private(ledger_ingest.event)');
SELECT ledger_ingest.add_handler('sec_bob', 'sec_handler(ledger_ingest.event)',
	revert => 'sec_private(ledger_ingest.event)');

-- bob's own pipeline: the whole API works for a non-superuser admin
SELECT ledger_ingest.track_table('sec_bob', 'sec_bob_balances');
SELECT pipeline, tbl, pk FROM ledger_ingest.tracked;
SELECT ledger_ingest.untrack_table('sec_bob', 'sec_bob_balances');
SELECT ledger_ingest.cursor_cas('sec_bob', ROW(-1, NULL, NULL), ROW(5, NULL, NULL));
SELECT ledger_ingest.rewind('sec_bob', 2);
SELECT pipeline, ledger FROM ledger_ingest.cursor;
SELECT ledger_ingest.wait_for('sec_bob', 2, '0');
SELECT ledger_ingest.remove_handler('sec_bob', 'sec_handler(ledger_ingest.event)');
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('sec_bob', '{"number": 3}');
SELECT pipeline, ledger FROM ledger_ingest.inbox;
SELECT ledger_ingest.delete_documents('sec_bob', ARRAY[(SELECT max(id) FROM ledger_ingest.inbox)]);
SELECT ledger_ingest.clear_decode_errors('sec_bob');
SELECT pipeline, ledger FROM ledger_ingest.inbox;
SELECT ledger_ingest.start('sec_bob');
SELECT ledger_ingest.stop('sec_bob');
SELECT pipeline, state FROM ledger_ingest.status;
SELECT ledger_ingest.drop_pipeline('sec_bob');
SELECT count(*) FROM ledger_ingest.pipeline;
RESET ROLE;

-- alice's pipeline is untouched
SET ROLE regress_li_alice;
SELECT name, state, owner FROM ledger_ingest.pipeline;
SELECT pipeline, ledger, tx_index, event_index FROM ledger_ingest.cursor;
SELECT pipeline, handler FROM ledger_ingest.handler;
SELECT pipeline, ledger FROM ledger_ingest.inbox;
SELECT pipeline, number FROM ledger_ingest.ledger;
SELECT ledger_ingest.wait_for('sec_alice', 50, '200ms');
-- and alice does not see bob's (dropped) nor root's pipeline
SELECT pipeline FROM ledger_ingest.status;
SELECT ledger_ingest.drop_pipeline('sec_alice');
RESET ROLE;

-- clean up
SELECT ledger_ingest.drop_pipeline(name) FROM ledger_ingest.pipeline ORDER BY name COLLATE "C";
DROP TABLE sec_bob_balances;
DROP VIEW sec_bob_view;
DROP FUNCTION sec_handler(ledger_ingest.event), sec_private(ledger_ingest.event),
	sec_tx_handler(ledger_ingest.transaction);
DROP OWNED BY regress_li_outsider, regress_li_alice, regress_li_bob;
DROP ROLE regress_li_outsider, regress_li_alice, regress_li_bob;
