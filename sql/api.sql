--
-- api: the SQL API of ledger_ingest (no pipeline is ever started here)
--
-- Covers option validation, create_pipeline, add_handler / remove_handler,
-- status, cursor_cas, rewind, wait_for on a stopped pipeline, doc_ledger and
-- drop_pipeline.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger_ingest CASCADE;
RESET client_min_messages;
CREATE EXTENSION ledger_ingest;
-- keep PL/pgSQL line numbers of the API functions out of the expected output
\set SHOW_CONTEXT never

SELECT extname, extnamespace::regnamespace AS schema, extversion
  FROM pg_extension WHERE extname = 'ledger_ingest';
SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'ledger_ingest_admin';
-- every function, table, view and composite type of the API has a comment
-- (internal functions start with an underscore)
SELECT p.oid::regprocedure::text AS uncommented
  FROM pg_proc p
 WHERE p.pronamespace = 'ledger_ingest'::regnamespace AND p.proname NOT LIKE '\_%'
   AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT c.oid::regclass::text
  FROM pg_class c
 WHERE c.relnamespace = 'ledger_ingest'::regnamespace AND c.relkind IN ('r', 'v', 'c')
   AND obj_description(CASE WHEN c.relkind = 'c' THEN c.reltype ELSE c.oid END,
					   CASE WHEN c.relkind = 'c' THEN 'pg_type' ELSE 'pg_class' END) IS NULL;

--
-- Option validation: every error names the offending key
--
-- unknown keys (keys are case-sensitive)
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"bogus": 1}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "http://127.0.0.1:1", "Poll_ms": 100}');
-- options must be a JSON object
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '[]');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '5');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', 'null');
-- commit: a string, one of event / ledger / batch
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"commit": 1}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"commit": null}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"commit": ["event"]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"commit": "transaction"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"commit": "Event"}');
-- integer options: wrong JSON type, not an integer, out of range
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"poll_ms": "100"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"poll_ms": 100.5}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"batch_max_events": true}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"max_retries": null}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"batch_max_ledgers": [1]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"batch_max_ms": 1e30}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"poll_ms": 5}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"max_retries": -1}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "http://127.0.0.1:1", "timeout_ms": 600001}');

-- Every integer option, for the sources that accept it: a string, the bounds
-- and one past each bound.
CREATE FUNCTION api_try_options(src text, opts jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM ledger_ingest.validate_options(src, opts);
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
CREATE TEMP TABLE api_int_opts (key text, rpc_only boolean, lo bigint, hi bigint);
INSERT INTO api_int_opts VALUES
	('batch_max_events', false, 1, 10000000),
	('batch_max_ledgers', false, 1, 1000000),
	('batch_max_ms', false, 0, 3600000),
	('poll_ms', false, 10, 3600000),
	('max_retries', false, 0, 1000000),
	('reorg_window', false, 0, 100000),
	('from_block', true, 0, 9223372036854775807),
	('to_block', true, 0, 9223372036854775807),
	('confirmations', true, 0, 100000),
	('block_range', true, 1, 1000000),
	('timeout_ms', true, 100, 600000);
SELECT o.key, s.src, v.label,
	   api_try_options(s.src,
					   jsonb_build_object(o.key, v.val) ||
					   CASE WHEN s.src = 'evm_rpc' THEN '{"url": "http://127.0.0.1:1"}'::jsonb
							ELSE '{}'::jsonb END) AS result
  FROM api_int_opts o
 CROSS JOIN (VALUES ('inbox'), ('evm_rpc')) s(src)
 CROSS JOIN LATERAL (VALUES
		(1, 'string', to_jsonb(o.lo::text)),
		(2, 'min - 1', to_jsonb(o.lo::numeric - 1)),
		(3, 'min', to_jsonb(o.lo)),
		(4, 'max', to_jsonb(o.hi)),
		(5, 'max + 1', to_jsonb(o.hi::numeric + 1))) v(ord, label, val)
 WHERE s.src = 'evm_rpc' OR NOT o.rpc_only
 ORDER BY o.rpc_only, o.key COLLATE "C", s.src DESC, v.ord;

-- url: a string starting with http:// or https://, required for evm_rpc
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "ftp://127.0.0.1/"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "127.0.0.1:8545"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": 8545}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": null}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"from_block": 1}');
-- urls: 1 to 16 http(s) endpoints of one chain, failed over in order
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"urls": []}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"urls": "http://127.0.0.1:1"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"urls": ["http://127.0.0.1:1", "file:///etc/passwd"]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"urls": ["http://127.0.0.1:1", 5]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "urls": ["http://127.0.0.1:2"]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	jsonb_build_object('urls', (SELECT jsonb_agg('http://127.0.0.1:' || i) FROM generate_series(1, 17) i)));
-- request rate, response size cap, redirect limit, batch size and requests in flight are bounded
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "max_requests_per_second": -1}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "max_response_bytes": 100}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "max_redirects": 21}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "rpc_batch_size": 0}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "max_concurrent_requests": 17}');
SELECT ledger_ingest.create_pipeline('api_urls', 'evm_rpc',
	'{"urls": ["http://127.0.0.1:1", "HTTPS://user:secret@example.invalid/v2/key"],
	  "max_requests_per_second": 20, "max_response_bytes": 1048576, "max_redirects": 0,
	  "rpc_batch_size": 1000, "max_concurrent_requests": 16}');
SELECT ledger_ingest.drop_pipeline('api_urls');
-- addresses: 20-byte 0x-hex strings (an array, or a single string)
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "addresses": ["0x1234"]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	jsonb_build_object('url', 'http://127.0.0.1:1',
					   'addresses', jsonb_build_array('0x' || repeat('ab', 20), '0x' || repeat('zz', 20))));
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	jsonb_build_object('url', 'http://127.0.0.1:1', 'addresses', repeat('ab', 21)));
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "addresses": [42]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "addresses": {"a": "b"}}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "addresses": 7}');
-- topics: up to 4 positions, each null, a 32-byte 0x-hex string or an array of those
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "topics": [null, null, null, null, null]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	jsonb_build_object('url', 'http://127.0.0.1:1', 'topics', '0x' || repeat('cd', 32)));
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "topics": ["0x1234"]}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	jsonb_build_object('url', 'http://127.0.0.1:1',
					   'topics', jsonb_build_array(NULL, jsonb_build_array('0x' || repeat('cd', 32), '0x' || repeat('cd', 31)))));
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	jsonb_build_object('url', 'http://127.0.0.1:1', 'topics', jsonb_build_array('0x' || repeat('g0', 32))));
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "topics": [5]}');
-- on_decode_error: "skip" or "fail"; late_ledgers: "fail" or "skip"
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"on_decode_error": "ignore"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"late_ledgers": true}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"late_ledgers": "later"}');
SELECT o, api_try_options('inbox', o) AS result
  FROM (VALUES ('{"on_decode_error": "skip"}'::jsonb), ('{"on_decode_error": "fail"}'),
			   ('{"late_ledgers": "skip"}'), ('{"late_ledgers": "fail"}')) v(o);
-- finality: "latest", "safe" or "finalized"
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "http://127.0.0.1:1", "finality": "pending"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "http://127.0.0.1:1", "finality": 1}');
SELECT f, api_try_options('evm_rpc', jsonb_build_object('url', 'http://127.0.0.1:1', 'finality', f)) AS result
  FROM (VALUES (1, 'latest'), (2, 'safe'), (3, 'finalized'), (4, 'Latest'), (5, '')) v(ord, f)
 ORDER BY ord;
-- unknown source
SELECT ledger_ingest.create_pipeline('api_bad', 'kafka');
SELECT ledger_ingest.create_pipeline('api_bad', NULL);
SELECT ledger_ingest.validate_options('kafka', '{}');
-- to_block below from_block (equal is fine)
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc',
	'{"url": "http://127.0.0.1:1", "from_block": 10, "to_block": 9}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "http://127.0.0.1:1", "to_block": 0, "from_block": 1}');
SELECT ledger_ingest.validate_options('evm_rpc', '{"url": "http://127.0.0.1:1", "from_block": 10, "to_block": 10}');
-- evm_rpc-only options given to an inbox pipeline
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"url": "http://127.0.0.1:1"}');
SELECT key, api_try_options('inbox', jsonb_build_object(key, 1)) AS result
  FROM (VALUES ('url'), ('addresses'), ('topics'), ('from_block'), ('to_block'),
			   ('confirmations'), ('block_range'), ('timeout_ms'), ('finality')) k(key)
 ORDER BY key COLLATE "C";
-- valid options are returned unchanged (defaults are applied by the worker)
SELECT ledger_ingest.validate_options('inbox', '{}');
SELECT ledger_ingest.validate_options('inbox', '{"commit": "ledger", "poll_ms": 10, "batch_max_ms": 0}');
SELECT ledger_ingest.validate_options('evm_rpc',
	jsonb_build_object('url', 'https://rpc.invalid/v1',
					   'addresses', '0x' || repeat('AB', 20),
					   'topics', jsonb_build_array(NULL, '0x' || repeat('cd', 32),
												   jsonb_build_array('0x' || repeat('ef', 32))),
					   'commit', 'event'));
-- nothing was created by the failed calls
SELECT count(*) FROM ledger_ingest.pipeline;
SELECT count(*) FROM ledger_ingest.cursor;

--
-- Pipeline names: 1 to 63 of [A-Za-z0-9_.-] (the failing row includes a
-- timestamp, hence terse errors)
--
\set VERBOSITY terse
SELECT ledger_ingest.create_pipeline('', 'inbox');
SELECT ledger_ingest.create_pipeline('has space', 'inbox');
SELECT ledger_ingest.create_pipeline('semi;colon', 'inbox');
SELECT ledger_ingest.create_pipeline(repeat('n', 64), 'inbox');
SELECT ledger_ingest.create_pipeline(NULL, 'inbox');
\set VERBOSITY default

--
-- create_pipeline
--
SELECT ledger_ingest.create_pipeline('api_inbox', 'inbox');
SELECT ledger_ingest.create_pipeline('api_inbox_opts', 'inbox',
	'{"commit": "event", "poll_ms": 50, "max_retries": 0, "reorg_window": 0}');
SELECT ledger_ingest.create_pipeline('api_inbox_null', 'inbox', NULL);
SELECT ledger_ingest.create_pipeline('api.rpc-' || repeat('x', 55), 'evm_rpc',
	'{"url": "https://rpc.invalid/"}');
SELECT ledger_ingest.create_pipeline('api_rpc', 'evm_rpc',
	jsonb_build_object('url', 'http://127.0.0.1:1/',
					   'from_block', 100, 'to_block', 200,
					   'addresses', jsonb_build_array('0x' || repeat('aa', 20), '0x' || repeat('bb', 20)),
					   'topics', jsonb_build_array('0x' || repeat('dd', 32)),
					   'confirmations', 2, 'block_range', 10, 'timeout_ms', 1000,
					   'commit', 'ledger', 'finality', 'safe', 'reorg_window', 64));
-- duplicate name (whatever the source)
SELECT ledger_ingest.create_pipeline('api_inbox', 'inbox');
SELECT ledger_ingest.create_pipeline('api_rpc', 'evm_rpc', '{"url": "http://127.0.0.1:1/"}');

-- stopped, owned by the creator; the cursor is at from_block - 1 (or -1)
SELECT name, source, options, owner = current_user::regrole AS owner_is_creator,
	   state, last_error, errors, created_at IS NOT NULL AS has_created_at
  FROM ledger_ingest.pipeline ORDER BY name COLLATE "C";
SELECT pipeline, ledger, ledger_hash, tx_index, event_index, events_applied, ledgers_applied,
	   last_commit_at, reorgs, last_reorg_depth, last_reorg_at
  FROM ledger_ingest.cursor ORDER BY pipeline COLLATE "C";

--
-- add_handler / remove_handler
--
CREATE FUNCTION api_h1(e ledger_ingest.event) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION api_h2(e ledger_ingest.event) RETURNS integer
	LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION api_text(t text) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION api_two(e ledger_ingest.event, n integer) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION api_none() RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION api_pos(p ledger_ingest.position) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;

SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)');
SELECT ledger_ingest.add_handler('api_inbox', 'api_h2(ledger_ingest.event)',
	topic0 => decode(repeat('dd', 32), 'hex'));
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)',
	address => decode(repeat('aa', 20), 'hex'));
SELECT ledger_ingest.add_handler('api_rpc', 'api_h2(ledger_ingest.event)',
	decode(repeat('dd', 32), 'hex'), decode(repeat('bb', 20), 'hex'),
	revert => 'api_h1(ledger_ingest.event)');
-- wrong signatures
SELECT ledger_ingest.add_handler('api_inbox', 'api_text(text)');
SELECT ledger_ingest.add_handler('api_inbox', 'api_two(ledger_ingest.event, integer)');
SELECT ledger_ingest.add_handler('api_inbox', 'api_none()');
SELECT ledger_ingest.add_handler('api_inbox', 'api_pos(ledger_ingest.position)');
-- the revert handler (called for orphaned events on a reorg) is checked the same way
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)', revert => 'api_text(text)');
-- a function that does not exist
SELECT ledger_ingest.add_handler('api_inbox', 'api_nosuch(ledger_ingest.event)');
-- wrong topic0 / address lengths
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)', decode(repeat('dd', 31), 'hex'));
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)', decode(repeat('dd', 33), 'hex'));
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)', ''::bytea);
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)', NULL, decode(repeat('aa', 19), 'hex'));
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)', NULL, decode(repeat('aa', 32), 'hex'));
-- a missing pipeline
SELECT ledger_ingest.add_handler('api_nosuch', 'api_h1(ledger_ingest.event)');
SELECT ledger_ingest.add_handler(NULL, 'api_h1(ledger_ingest.event)');

-- registration order
SELECT id, pipeline, handler, encode(topic0, 'hex') AS topic0, encode(address, 'hex') AS address, revert
  FROM ledger_ingest.handler ORDER BY id;

-- remove_handler removes every registration of the function and counts them
SELECT ledger_ingest.remove_handler('api_inbox', 'api_h1(ledger_ingest.event)');
SELECT ledger_ingest.remove_handler('api_inbox', 'api_h1(ledger_ingest.event)');
SELECT ledger_ingest.remove_handler('api_inbox', 'api_text(text)');
SELECT ledger_ingest.remove_handler('api_nosuch', 'api_h1(ledger_ingest.event)');
-- registering again comes after the remaining registrations
SELECT ledger_ingest.add_handler('api_inbox', 'api_h1(ledger_ingest.event)');
SELECT id, pipeline, handler FROM ledger_ingest.handler ORDER BY id;
-- a NULL handler is refused
DO $$
BEGIN
	PERFORM ledger_ingest.add_handler('api_inbox', NULL);
	RAISE NOTICE 'NULL handler accepted';
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'NULL handler refused';
END
$$;
SELECT count(*) FROM ledger_ingest.handler WHERE handler IS NULL;

--
-- status of stopped pipelines (deterministic columns only)
--
SELECT pipeline, state, pid IS NULL AS no_worker, ledger, ledger_hash, tx_index, event_index,
	   head, events_applied, ledgers_applied, last_commit_at IS NULL AS never_committed,
	   last_error, errors, source, owner = current_user::regrole AS owner_is_creator,
	   reorgs, last_reorg_depth, last_reorg_at
  FROM ledger_ingest.status ORDER BY pipeline COLLATE "C";
-- stop() on a stopped pipeline keeps it stopped
SELECT ledger_ingest.stop('api_inbox_null');
SELECT ledger_ingest.stop('api_nosuch');
SELECT ledger_ingest.start('api_nosuch');
SELECT pipeline, state FROM ledger_ingest.status WHERE pipeline = 'api_inbox_null';

--
-- cursor_cas
--
-- headers of applied ledgers 0..5 (as the worker would have recorded them)
INSERT INTO ledger_ingest.ledger (pipeline, number, hash, parent_hash, time, events)
SELECT 'api_inbox', n, decode(repeat(lpad(to_hex(n + 16), 2, '0'), 32), 'hex'),
	   CASE WHEN n > 0 THEN decode(repeat(lpad(to_hex(n + 15), 2, '0'), 32), 'hex') END,
	   to_timestamp(1600000000 + 12 * n), n
  FROM generate_series(0, 5) n;

-- success: the new hash is that of the recorded header, if any
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(-1, NULL, NULL), ROW(5, NULL, NULL));
SELECT ledger, encode(ledger_hash, 'hex') AS ledger_hash, tx_index, event_index,
	   last_commit_at IS NOT NULL AS committed
  FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
-- lost race: the cursor is not at "expected"; nothing changes
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(-1, NULL, NULL), ROW(6, NULL, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, 0, 0), ROW(6, NULL, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(4, NULL, NULL), ROW(6, NULL, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', NULL, ROW(6, NULL, NULL));
SELECT ledger, tx_index, event_index FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
-- a partial position (no header for ledger 6: no hash)
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, NULL, NULL), ROW(6, 2, 7));
SELECT ledger, ledger_hash, tx_index, event_index FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
-- "expected" must match the indexes too
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(6, NULL, NULL), ROW(7, NULL, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(6, 2, 6), ROW(7, NULL, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(6, 2, 7), ROW(5, NULL, NULL));
SELECT ledger, encode(ledger_hash, 'hex') AS ledger_hash, tx_index, event_index
  FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
-- a missing pipeline
SELECT ledger_ingest.cursor_cas('api_nosuch', ROW(-1, NULL, NULL), ROW(0, NULL, NULL));
-- invalid new positions
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, NULL, NULL), ROW(-2, NULL, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, NULL, NULL), ROW(6, 1, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, NULL, NULL), ROW(6, NULL, 1));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, NULL, NULL), ROW(NULL, NULL, NULL));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, NULL, NULL), ROW(NULL, 1, 1));
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(5, NULL, NULL), NULL);
-- the cursor did not move
SELECT ledger, tx_index, event_index FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
-- ledger -1 ("nothing applied") is a valid position
SELECT ledger_ingest.cursor_cas('api_inbox_null', ROW(-1, NULL, NULL), ROW(-1, NULL, NULL));

--
-- rewind
--
-- back to ledger 3: returns the old position, forgets the headers above 3
SELECT ledger_ingest.rewind('api_inbox', 3);
SELECT ledger, encode(ledger_hash, 'hex') AS ledger_hash, tx_index, event_index
  FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
SELECT number FROM ledger_ingest.ledger WHERE pipeline = 'api_inbox' ORDER BY number;
-- to where it is: a no-op
SELECT ledger_ingest.rewind('api_inbox', 3);
-- forward is refused
SELECT ledger_ingest.rewind('api_inbox', 4);
-- invalid ledgers, a missing pipeline
SELECT ledger_ingest.rewind('api_inbox', -2);
SELECT ledger_ingest.rewind('api_inbox', NULL);
SELECT ledger_ingest.rewind('api_nosuch', 1);
SELECT ledger, tx_index, event_index FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'api_inbox';
-- A partially applied ledger 4 (cursor (4, 0, 1)): rewinding "to the end of
-- ledger 4" would move the cursor forward past the events of ledger 4 that
-- were never applied, so it must be refused like any forward move.
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(3, NULL, NULL), ROW(4, 0, 1));
DO $$
BEGIN
	PERFORM ledger_ingest.rewind('api_inbox', 4);
	RAISE NOTICE 'rewind to ledger 4 accepted';
EXCEPTION WHEN invalid_parameter_value THEN
	RAISE NOTICE 'rewind to ledger 4 refused';
END
$$;
SELECT ledger, tx_index, event_index FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
-- back to the last complete ledger before the partial one is fine
UPDATE ledger_ingest.cursor SET ledger = 4, tx_index = 0, event_index = 1
 WHERE pipeline = 'api_inbox';
SELECT ledger_ingest.rewind('api_inbox', 3);
SELECT ledger, tx_index, event_index FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
-- all the way back: no headers left, no hash
SELECT ledger_ingest.rewind('api_inbox', -1);
SELECT ledger, ledger_hash, tx_index, event_index FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'api_inbox';

--
-- wait_for
--
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(-1, NULL, NULL), ROW(3, NULL, NULL));
-- covered already: true at once, although no worker runs
SELECT ledger_ingest.wait_for('api_inbox', 3, '200ms');
SELECT ledger_ingest.wait_for('api_inbox', -1, '200ms');
-- not covered and nothing runs: false once the timeout has passed
DO $$
DECLARE
	t0 timestamptz := clock_timestamp();
	r boolean;
BEGIN
	r := ledger_ingest.wait_for('api_inbox', 4, '200ms');
	RAISE NOTICE 'reached: %, waited at least 200ms: %, returned within 10s: %',
		r, clock_timestamp() - t0 >= interval '200ms', clock_timestamp() - t0 < interval '10s';
END
$$;
-- a partially applied ledger is not covered
SELECT ledger_ingest.cursor_cas('api_inbox', ROW(3, NULL, NULL), ROW(4, 1, 1));
SELECT ledger_ingest.wait_for('api_inbox', 4, '200ms');
SELECT ledger_ingest.wait_for('api_inbox', 3, '200ms');
-- a zero or negative timeout checks once
SELECT ledger_ingest.wait_for('api_inbox', 5, '0');
SELECT ledger_ingest.wait_for('api_inbox', 5, '-1s');
-- errors
SELECT ledger_ingest.wait_for('api_nosuch', 1, '200ms');
SELECT ledger_ingest.wait_for(NULL, 1, '200ms');
SELECT ledger_ingest.wait_for('api_inbox', NULL, '200ms');
SELECT ledger_ingest.wait_for('api_inbox', 1, NULL);

--
-- doc_ledger and the inbox's generated "ledger" column
--
SELECT d AS doc, ledger_ingest.doc_ledger(d::jsonb)
  FROM (VALUES ('{"number": "0x0"}'), ('{"number": "0x10"}'), ('{"number": "0X1F"}'),
			   ('{"number": 16}'), ('{"number": "0x7fffffffffffffff"}'),
			   ('{"number": "0x8000000000000000"}'), ('{"number": "0x010"}'),
			   ('{"number": "16"}'), ('{"number": "0x"}'), ('{"number": "0xg"}'),
			   ('{"number": -1}'), ('{"number": 1.5}'), ('{"number": null}'),
			   ('{}'), ('[]'), ('"0x1"')) v(d);
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('api_inbox', '{"number": "0x2a", "hash": "0x00"}'),
	('api_inbox', '{"number": "bad"}'),
	('api_inbox', '[1, 2]');
SELECT id, pipeline, doc, ledger, error, rejected_at FROM ledger_ingest.inbox ORDER BY id;

--
-- track_table / untrack_table
--
CREATE TABLE api_balances (holder text PRIMARY KEY, amount numeric NOT NULL);
CREATE TABLE api_pairs (a int, b int, v text, PRIMARY KEY (b, a));
CREATE TABLE api_nopk (v int);
SELECT ledger_ingest.track_table('api_inbox', 'api_balances');
SELECT ledger_ingest.track_table('api_inbox', 'api_pairs');
SELECT ledger_ingest.track_table('api_rpc', 'api_balances');
-- tracking twice is a no-op
SELECT ledger_ingest.track_table('api_inbox', 'api_balances');
SELECT pipeline, tbl, pk FROM ledger_ingest.tracked ORDER BY pipeline COLLATE "C", tbl::text COLLATE "C";
SELECT tgrelid::regclass AS tbl, tgname FROM pg_trigger
 WHERE tgrelid IN ('api_balances'::regclass, 'api_pairs'::regclass) ORDER BY 1::text COLLATE "C";
-- the journal trigger records nothing outside a worker's apply transaction
INSERT INTO api_balances VALUES ('alice', 1);
UPDATE api_balances SET amount = 2;
DELETE FROM api_balances;
SELECT count(*) FROM ledger_ingest.journal;
-- errors
SELECT ledger_ingest.track_table('api_inbox', 'api_nopk');
SELECT ledger_ingest.track_table('api_nosuch', 'api_balances');
SELECT ledger_ingest.track_table('api_inbox', 'api_nosuch');
SELECT ledger_ingest.untrack_table('api_inbox', 'api_nopk');
SELECT ledger_ingest.untrack_table('api_nosuch', 'api_balances');
-- the trigger stays while another pipeline tracks the table
SELECT ledger_ingest.untrack_table('api_inbox', 'api_pairs');
SELECT ledger_ingest.untrack_table('api_rpc', 'api_balances');
SELECT pipeline, tbl FROM ledger_ingest.tracked ORDER BY pipeline COLLATE "C", tbl::text COLLATE "C";
SELECT tgrelid::regclass AS tbl, tgname FROM pg_trigger
 WHERE tgrelid IN ('api_balances'::regclass, 'api_pairs'::regclass) ORDER BY 1::text COLLATE "C";

--
-- drop_pipeline: removes the pipeline, its cursor, handlers, headers, inbox,
-- tracked tables and reorg journals (a pipeline created later under the same
-- name must not inherit them)
--
INSERT INTO ledger_ingest.ledger (pipeline, number, hash, events)
	VALUES ('api_inbox', 3, decode(repeat('13', 32), 'hex'), 0);
-- journal entries, as the worker records them while applying ledger 3
INSERT INTO ledger_ingest.journal (pipeline, ledger, tbl, pk, old_row)
	VALUES ('api_inbox', 3, 'api_balances'::regclass, '{"holder": "alice"}', NULL);
INSERT INTO ledger_ingest.event_journal (pipeline, ledger, ev)
	VALUES ('api_inbox', 3, ROW('api_inbox', 3, decode(repeat('13', 32), 'hex'), NULL, 0, NULL, 0,
								decode(repeat('aa', 20), 'hex'), '{}', '\x', NULL)::ledger_ingest.event);
SELECT ledger_ingest.drop_pipeline('api_inbox');
SELECT (SELECT count(*) FROM ledger_ingest.pipeline WHERE name = 'api_inbox') AS pipelines,
	   (SELECT count(*) FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox') AS cursors,
	   (SELECT count(*) FROM ledger_ingest.handler WHERE pipeline = 'api_inbox') AS handlers,
	   (SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'api_inbox') AS headers,
	   (SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = 'api_inbox') AS inbox,
	   (SELECT count(*) FROM ledger_ingest.tracked WHERE pipeline = 'api_inbox') AS tracked,
	   (SELECT count(*) FROM ledger_ingest.journal WHERE pipeline = 'api_inbox') AS journal,
	   (SELECT count(*) FROM ledger_ingest.event_journal WHERE pipeline = 'api_inbox') AS event_journal,
	   (SELECT count(*) FROM ledger_ingest.status WHERE pipeline = 'api_inbox') AS status;
SELECT ledger_ingest.drop_pipeline('api_inbox');
SELECT ledger_ingest.wait_for('api_inbox', 1, '200ms');
-- the other pipelines are untouched
SELECT pipeline, state, ledger FROM ledger_ingest.status ORDER BY pipeline COLLATE "C";
SELECT pipeline, handler FROM ledger_ingest.handler ORDER BY id;
-- a dropped name can be used again, with a fresh cursor
SELECT ledger_ingest.create_pipeline('api_inbox', 'inbox');
SELECT pipeline, ledger, events_applied FROM ledger_ingest.cursor WHERE pipeline = 'api_inbox';
SELECT ledger_ingest.wait_for('api_inbox', 3, '0');

-- Transactions: "transactions" and "receipts" (evm_rpc), transaction
-- handlers, and event handlers taking (event, transaction)
SELECT ledger_ingest.create_pipeline('api_tx', 'evm_rpc', '{"url": "http://127.0.0.1:1", "receipts": true}');
SELECT ledger_ingest.create_pipeline('api_bad', 'evm_rpc', '{"url": "http://127.0.0.1:1", "transactions": "yes"}');
SELECT ledger_ingest.create_pipeline('api_bad', 'inbox', '{"receipts": true}');
CREATE FUNCTION api_on_tx(t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION api_on_ev_tx(e ledger_ingest.event, t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION api_on_tx_ev(t ledger_ingest.transaction, e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT ledger_ingest.add_transaction_handler('api_tx', 'api_on_tx(ledger_ingest.transaction)') > 0 AS any;
SELECT ledger_ingest.add_transaction_handler('api_tx', 'api_on_tx(ledger_ingest.transaction)',
	address => '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f', selector => substr(ledger_ingest.keccak256(convert_to('transfer(address,uint256)', 'UTF8')), 1, 4),
	failed => true) > 0 AS filtered;
SELECT ledger_ingest.add_transaction_handler('api_tx', 'api_on_tx(ledger_ingest.transaction)', selector => '\x') > 0 AS plain;
SELECT encode(address, 'hex') AS address, coalesce(encode(selector, 'hex'), 'any') AS selector, failed
	FROM ledger_ingest.handler WHERE pipeline = 'api_tx' ORDER BY id;
SELECT ledger_ingest.add_transaction_handler('api_tx', 'api_on_tx(ledger_ingest.transaction)', selector => '\xa9059c');
SELECT ledger_ingest.add_transaction_handler('api_tx', 'api_on_tx(ledger_ingest.transaction)', address => '\x5c69');
SELECT ledger_ingest.add_transaction_handler('api_tx', 'api_h1(ledger_ingest.event)');
SELECT ledger_ingest.add_transaction_handler('api_tx', 'api_on_tx(ledger_ingest.transaction)', failed => NULL);
SELECT ledger_ingest.add_handler('api_tx', 'api_on_ev_tx(ledger_ingest.event, ledger_ingest.transaction)') > 0 AS event_and_transaction;
SELECT ledger_ingest.add_handler('api_tx', 'api_on_tx_ev(ledger_ingest.transaction, ledger_ingest.event)');
SELECT ledger_ingest.add_handler('api_tx', 'api_h1(ledger_ingest.event)',
	revert => 'api_on_ev_tx(ledger_ingest.event, ledger_ingest.transaction)');
SELECT ledger_ingest.create_pipeline('api_xlm_tx', 'inbox', '{"chain": "stellar"}');
SELECT ledger_ingest.add_transaction_handler('api_xlm_tx', 'api_on_tx(ledger_ingest.transaction)');

-- Factories (add_factory): the event's argument of type address names the
-- child; the same factory twice is one row; each check names what is wrong
SELECT ledger_ingest.create_pipeline('api_dex', 'evm_rpc', '{"url": "http://127.0.0.1:1", "from_block": 10}');
SELECT ledger_ingest.add_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PairCreated(address indexed token0, address indexed token1, address pair, uint256)', 'pair') AS id \gset
SELECT ledger_ingest.add_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PairCreated(address indexed token0, address indexed token1, address pair, uint256)', 'pair') = :id AS same_id;
SELECT pipeline, encode(address, 'hex') AS address, event, param FROM ledger_ingest.factory ORDER BY id;
SELECT ledger_ingest.add_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PairCreated(address indexed token0, address indexed token1, address pair, uint256)', 'pool');
SELECT ledger_ingest.add_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PoolCreated(uint256 fee, address)', 'fee');
SELECT ledger_ingest.add_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PoolCreated(address, address)', 'pool');
SELECT ledger_ingest.add_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PoolCreated(address pool) anonymous', 'pool');
SELECT ledger_ingest.add_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PoolCreated(address pool', 'pool');
SELECT ledger_ingest.add_factory('api_dex', '\x5c69', 'event PoolCreated(address pool)', 'pool');
SELECT ledger_ingest.add_factory('api_dex', NULL, 'event PoolCreated(address pool)', 'pool');
SELECT ledger_ingest.add_factory('api_nope', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PoolCreated(address pool)', 'pool');
SELECT ledger_ingest.create_pipeline('api_xlm', 'inbox', '{"chain": "stellar"}');
SELECT ledger_ingest.add_factory('api_xlm', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f',
	'event PoolCreated(address pool)', 'pool');
SELECT ledger_ingest.remove_factory('api_dex', '\x0000000000000000000000000000000000000001');
SELECT ledger_ingest.remove_factory('api_dex', '\x5c69bee701ef814a2b6a3edd4b1652cb9cc5aa6f');
SELECT count(*) FROM ledger_ingest.factory;

-- clean up
SELECT ledger_ingest.drop_pipeline(name) FROM ledger_ingest.pipeline ORDER BY name COLLATE "C";
SELECT count(*) FROM ledger_ingest.pipeline;
SELECT count(*) FROM ledger_ingest.handler;
DROP TABLE api_balances, api_pairs, api_nopk;
DROP FUNCTION api_h1(ledger_ingest.event), api_h2(ledger_ingest.event), api_text(text),
	api_two(ledger_ingest.event, integer), api_none(), api_pos(ledger_ingest.position),
	api_try_options(text, jsonb), api_on_tx(ledger_ingest.transaction),
	api_on_ev_tx(ledger_ingest.event, ledger_ingest.transaction),
	api_on_tx_ev(ledger_ingest.transaction, ledger_ingest.event);
