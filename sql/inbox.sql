--
-- inbox: end-to-end runs of inbox pipelines through the launcher and workers
--
-- Documents are small synthetic ledgers in the eth_getBlockByNumber + logs
-- shape: 32-byte hashes such as 0x0101...01 for ledger 1 linked by
-- parentHash, 20-byte addresses, up to 4 topics, data.  Every scenario has
-- its own pipeline.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger_ingest CASCADE;
RESET client_min_messages;
CREATE EXTENSION ledger_ingest;
\set SHOW_CONTEXT never

-- wait until a pipeline reaches a state (at most 30 s); returns the last state seen
CREATE FUNCTION wait_state(p text, s text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text;
BEGIN
	FOR i IN 1 .. 600 LOOP
		SELECT state INTO st FROM ledger_ingest.status WHERE pipeline = p;
		EXIT WHEN st IS NOT DISTINCT FROM s;
		PERFORM pg_sleep(0.05);
	END LOOP;
	RETURN st;
END
$$;

-- 0x followed by n times the byte b: hx(1) = 0x0101...01 (32 bytes)
CREATE FUNCTION hx(b int, n int DEFAULT 32) RETURNS text
	LANGUAGE sql IMMUTABLE AS $$ SELECT '0x' || repeat(lpad(to_hex(b), 2, '0'), n) $$;
-- a log with hex quantities, in transaction tx at block-wide index idx
CREATE FUNCTION li_log(tx int, idx int, address text, topics text[], data text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('transactionIndex', '0x' || to_hex(tx), 'logIndex', '0x' || to_hex(idx),
							  'transactionHash', hx(160 + tx), 'address', address,
							  'topics', to_jsonb(topics), 'data', data)
$$;
-- a ledger document with hex quantities
CREATE FUNCTION li_doc(n int, hash text, parent text, logs jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('number', '0x' || to_hex(n), 'hash', hash, 'parentHash', parent,
							  'timestamp', '0x' || to_hex(1600000000 + 12 * n), 'logs', logs)
$$;
-- a 32-byte big-endian amount
CREATE FUNCTION amount(v int) RETURNS text
	LANGUAGE sql IMMUTABLE AS $$ SELECT '0x' || lpad(to_hex(v), 64, '0') $$;

\set transfer 0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef
\set approval 0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925
\set token_a 0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
\set token_b 0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb

-- what the handlers saw, one row per (handler, event)
CREATE TABLE li_events (
	seq bigserial PRIMARY KEY,
	handler text NOT NULL,
	pipeline text,
	ledger bigint,
	ledger_hash bytea,
	ledger_time timestamptz,
	tx_index integer,
	tx_hash bytea,
	event_index integer,
	address bytea,
	topics bytea[],
	data bytea
);
CREATE FUNCTION li_record(tag text, e ledger_ingest.event) RETURNS void
	LANGUAGE sql AS $$
	INSERT INTO public.li_events (handler, pipeline, ledger, ledger_hash, ledger_time, tx_index,
								  tx_hash, event_index, address, topics, data)
	VALUES (tag, e.pipeline, e.ledger, e.ledger_hash, e.ledger_time, e.tx_index,
			e.tx_hash, e.event_index, e.address, e.topics, e.data)
$$;
CREATE FUNCTION li_h_all(e ledger_ingest.event) RETURNS void
	LANGUAGE sql AS $$ SELECT public.li_record('all', e) $$;
CREATE FUNCTION li_h_transfer(e ledger_ingest.event) RETURNS void
	LANGUAGE sql AS $$ SELECT public.li_record('transfer', e) $$;
CREATE FUNCTION li_h_token_b(e ledger_ingest.event) RETURNS void
	LANGUAGE sql AS $$ SELECT public.li_record('token_b', e) $$;
CREATE FUNCTION li_h_b_transfer(e ledger_ingest.event) RETURNS void
	LANGUAGE sql AS $$ SELECT public.li_record('b_transfer', e) $$;
-- handler rows of a pipeline in the order they were written
CREATE VIEW li_seen AS
SELECT pipeline, row_number() OVER (PARTITION BY pipeline ORDER BY seq) AS n, handler,
	   ledger, tx_index, event_index,
	   left(encode(address, 'hex'), 4) AS addr,
	   cardinality(topics) AS ntopics,
	   left(encode(topics[1], 'hex'), 8) AS topic0,
	   length(data) AS data_len,
	   right(encode(data, 'hex'), 2) AS data_end,
	   left(encode(tx_hash, 'hex'), 4) AS tx_hash,
	   left(encode(ledger_hash, 'hex'), 4) AS ledger_hash,
	   extract(epoch FROM ledger_time)::bigint AS ledger_time
  FROM li_events;

--
-- 1. A pipeline with four handlers applies three ledgers
--
SELECT ledger_ingest.create_pipeline('li_main', 'inbox', '{"poll_ms": 50}');
-- registration order is the call order: transfer, all, token_b, b_transfer
SELECT ledger_ingest.add_handler('li_main', 'li_h_transfer(ledger_ingest.event)',
	topic0 => decode(substr(:'transfer', 3), 'hex'));
SELECT ledger_ingest.add_handler('li_main', 'li_h_all(ledger_ingest.event)');
SELECT ledger_ingest.add_handler('li_main', 'li_h_token_b(ledger_ingest.event)',
	address => decode(substr(:'token_b', 3), 'hex'));
SELECT ledger_ingest.add_handler('li_main', 'li_h_b_transfer(ledger_ingest.event)',
	decode(substr(:'transfer', 3), 'hex'), decode(substr(:'token_b', 3), 'hex'));

-- Ledger 1: hex quantities, logs out of order (the worker sorts them by
-- transactionIndex, logIndex).  Ledger 2: JSON integer quantities, a log
-- without topics and without transactionHash, blockNumber/blockHash given.
-- Ledger 3: no logs, no timestamp.  Inserted before start(), ledger 3 first.
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
('li_main', jsonb_build_object('number', '0x3', 'hash', hx(3), 'parentHash', hx(2), 'logs', '[]'::jsonb)),
('li_main', li_doc(1, hx(1), hx(0), jsonb_build_array(
	li_log(1, 2, :'token_b', ARRAY[:'approval', hx(1), hx(2)], amount(7)),
	li_log(0, 0, :'token_a', ARRAY[:'transfer', hx(1), hx(2)], amount(100)),
	li_log(1, 1, :'token_b', ARRAY[:'transfer', hx(2), hx(3)], amount(10))))),
('li_main', jsonb_build_object('number', 2, 'hash', hx(2), 'parentHash', hx(1),
	'timestamp', 1600000024,
	'logs', jsonb_build_array(
		jsonb_build_object('blockNumber', 2, 'blockHash', hx(2), 'transactionIndex', 3,
						   'logIndex', 1, 'transactionHash', hx(163), 'address', :'token_a',
						   'topics', jsonb_build_array(:'transfer', hx(3), hx(1)), 'data', amount(200)),
		jsonb_build_object('blockNumber', '0x2', 'transactionIndex', 0, 'logIndex', 0,
						   'address', :'token_a', 'topics', '[]'::jsonb, 'data', '0x'))));
SELECT id, pipeline, ledger, error FROM ledger_ingest.inbox ORDER BY id;

SELECT ledger_ingest.start('li_main');
SELECT ledger_ingest.wait_for('li_main', 3, '30s');

-- every event in (ledger, tx_index, event_index) order, the matching
-- handlers of each event in registration order
SELECT n, handler, ledger, tx_index, event_index, addr, ntopics, topic0, data_len, data_end,
	   tx_hash, ledger_hash, ledger_time
  FROM li_seen WHERE pipeline = 'li_main' ORDER BY n;
-- the event values in full
SELECT bool_and(e.topics[1] = decode(substr(:'transfer', 3), 'hex')) FILTER (WHERE handler = 'transfer') AS transfer_topic0,
	   bool_and(e.address = decode(substr(:'token_b', 3), 'hex')) FILTER (WHERE handler = 'token_b') AS token_b_address,
	   bool_and(e.ledger_hash = decode(repeat(lpad(e.ledger::text, 2, '0'), 32), 'hex')) AS ledger_hash,
	   bool_and(e.tx_hash = decode(repeat(to_hex(160 + e.tx_index), 32), 'hex')) AS tx_hash,
	   bool_and(e.topics[2] IS NULL OR length(e.topics[2]) = 32) AS topic_length
  FROM li_events e WHERE pipeline = 'li_main';
SELECT handler, count(*) FROM li_events WHERE pipeline = 'li_main' GROUP BY handler ORDER BY handler COLLATE "C";

SELECT state, ledger, encode(ledger_hash, 'hex') = repeat('03', 32) AS hash_of_3, tx_index, event_index,
	   events_applied, ledgers_applied, last_commit_at IS NOT NULL AS committed, last_error, errors
  FROM ledger_ingest.status WHERE pipeline = 'li_main';
SELECT number, left(encode(hash, 'hex'), 4) AS hash, left(encode(parent_hash, 'hex'), 4) AS parent_hash,
	   extract(epoch FROM time)::bigint AS time, events
  FROM ledger_ingest.ledger WHERE pipeline = 'li_main' ORDER BY number;
-- applied documents are deleted
SELECT count(*) AS inbox FROM ledger_ingest.inbox WHERE pipeline = 'li_main';

--
-- 2. Stale documents (number not above the cursor) are rejected with an
--    error and the pipeline carries on with the next good one
--
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	-- a re-delivery of ledger 2
	('li_main', jsonb_build_object('number', 2, 'hash', hx(2), 'parentHash', hx(1),
		'timestamp', 1600000024, 'logs', '[]'::jsonb)),
	-- a re-delivery of ledger 3
	('li_main', jsonb_build_object('number', 3, 'hash', hx(3), 'logs', '[]'::jsonb)),
	('li_main', li_doc(4, hx(4), hx(3), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer', hx(4), hx(5)], amount(40)))));
SELECT ledger_ingest.wait_for('li_main', 4, '30s');
SELECT ledger, error, rejected_at IS NOT NULL AS rejected FROM ledger_ingest.inbox
 WHERE pipeline = 'li_main' ORDER BY id;
SELECT state, ledger, events_applied, ledgers_applied, errors,
	   regexp_replace(last_error, 'document [0-9]+', 'document N') AS last_error,
	   last_error = (SELECT 'inbox document ' || id || ' rejected: ' || error FROM ledger_ingest.inbox
					  WHERE pipeline = 'li_main' AND ledger = 3) AS names_the_document
  FROM ledger_ingest.status WHERE pipeline = 'li_main';
SELECT n, handler, ledger, tx_index, event_index FROM li_seen WHERE pipeline = 'li_main' AND ledger > 3 ORDER BY n;

-- 2b. Another ledger 3 that does not attach to the applied ledger 2 is a
--     reorg that cannot be resolved: the pipeline fails, nothing is lost
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('li_main', li_doc(3, hx(131), hx(130), '[]'));
SELECT wait_state('li_main', 'failed');
SELECT ledger, error FROM ledger_ingest.inbox WHERE pipeline = 'li_main' AND error LIKE 'reorg%';
DELETE FROM ledger_ingest.inbox WHERE pipeline = 'li_main' AND error LIKE 'reorg%';
SELECT ledger_ingest.start('li_main');

--
-- 3. A malformed document fails the pipeline; nothing of it is applied;
--    once it is deleted, start() resumes
--
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_main', li_doc(5, hx(5), hx(4), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer', hx(5), hx(6)], amount(50)))) - 'hash');
SELECT wait_state('li_main', 'failed');
SELECT state, ledger, events_applied, errors,
	   regexp_replace(last_error, 'document [0-9]+', 'document N') AS last_error
  FROM ledger_ingest.status WHERE pipeline = 'li_main';
SELECT ledger, error FROM ledger_ingest.inbox WHERE pipeline = 'li_main' AND ledger = 5;
SELECT count(*) AS events_of_5 FROM li_events WHERE pipeline = 'li_main' AND ledger = 5;
SELECT max(number) AS last_header FROM ledger_ingest.ledger WHERE pipeline = 'li_main';
-- a failed pipeline stays failed
SELECT ledger_ingest.wait_for('li_main', 5, '200ms');
-- the producer deletes the bad document and sends ledgers 5 and 6 again
DELETE FROM ledger_ingest.inbox WHERE pipeline = 'li_main' AND ledger = 5;
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_main', li_doc(6, hx(6), hx(5), jsonb_build_array(
		li_log(2, 0, :'token_b', ARRAY[:'transfer', hx(6), hx(7)], amount(60))))),
	('li_main', li_doc(5, hx(5), hx(4), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer', hx(5), hx(6)], amount(50)))));
SELECT ledger_ingest.start('li_main');
SELECT ledger_ingest.wait_for('li_main', 6, '30s');
SELECT state, ledger, events_applied, ledgers_applied, errors
  FROM ledger_ingest.status WHERE pipeline = 'li_main';
SELECT n, handler, ledger, tx_index, event_index, addr FROM li_seen
 WHERE pipeline = 'li_main' AND ledger > 4 ORDER BY n;
SELECT number, left(encode(hash, 'hex'), 4) AS hash, left(encode(parent_hash, 'hex'), 4) AS parent_hash
  FROM ledger_ingest.ledger WHERE pipeline = 'li_main' AND number > 3 ORDER BY number;
-- only the two rejected stale documents are left
SELECT ledger, error IS NOT NULL AS rejected FROM ledger_ingest.inbox WHERE pipeline = 'li_main' ORDER BY id;

--
-- 4. Malformed documents, one pipeline each: good ledger 1, then a ledger 2
--    with a valid log followed by a bad one.  Ledger 1 is applied, nothing
--    of ledger 2; the document keeps its error naming the field.
--
CREATE TEMP TABLE bad_docs (pipeline text, doc jsonb);
INSERT INTO bad_docs VALUES
	-- a topic with a non-hex character
	('li_bad_topic_hex', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer', '0x' || repeat('zz', 32)], amount(1))))),
	-- a topic of 31 bytes
	('li_bad_topic_len', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer', hx(1, 31)], amount(1))))),
	-- a log whose blockNumber is not the ledger's
	('li_bad_block_number', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer'], amount(1)) || '{"blockNumber": "0x3"}'))),
	-- a log whose blockHash is not the ledger's
	('li_bad_block_hash', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer'], amount(1)) || jsonb_build_object('blockHash', hx(9))))),
	-- two logs with logIndex 1
	('li_bad_dup_index', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(1, 1, :'token_a', ARRAY[:'transfer'], amount(1))))),
	-- five topics
	('li_bad_5_topics', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer', hx(1), hx(2), hx(3), hx(4)], amount(1))))),
	-- data with an odd number of hex digits
	('li_bad_data', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer'], '0xabc')))),
	-- a log marked removed (it belongs to an orphaned block)
	('li_bad_removed', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer'], amount(1)) || '{"removed": true}'))),
	-- a hash of 31 bytes
	('li_bad_hash', li_doc(2, hx(2, 31), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1))))),
	-- a number with leading zeros: unreadable, so it is rejected before ledger 1
	('li_bad_number', li_doc(2, hx(2), hx(1), '[]') || '{"number": "0x02"}');
SELECT ledger_ingest.create_pipeline(pipeline, 'inbox', '{"poll_ms": 50}') FROM bad_docs ORDER BY pipeline COLLATE "C";
SELECT ledger_ingest.add_handler(pipeline, 'li_h_all(ledger_ingest.event)') FROM bad_docs ORDER BY pipeline COLLATE "C";
INSERT INTO ledger_ingest.inbox (pipeline, doc)
SELECT pipeline, li_doc(1, hx(1), hx(0), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1))))
  FROM bad_docs ORDER BY pipeline COLLATE "C";
INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT pipeline, doc FROM bad_docs ORDER BY pipeline COLLATE "C";
SELECT ledger_ingest.start(pipeline) FROM bad_docs ORDER BY pipeline COLLATE "C";
SELECT pipeline, wait_state(pipeline, 'failed') FROM bad_docs ORDER BY pipeline COLLATE "C";
SELECT s.pipeline, s.ledger, s.events_applied AS events, i.error
  FROM ledger_ingest.status s
  JOIN ledger_ingest.inbox i ON i.pipeline = s.pipeline AND i.error IS NOT NULL
 WHERE s.pipeline LIKE 'li\_bad\_%'
 ORDER BY s.pipeline COLLATE "C";
-- last_error names the rejected document and repeats its error
SELECT s.pipeline, s.errors, s.last_error = 'inbox document ' || i.id || ' rejected: ' || i.error AS last_error_ok
  FROM ledger_ingest.status s
  JOIN ledger_ingest.inbox i ON i.pipeline = s.pipeline AND i.error IS NOT NULL
 WHERE s.pipeline LIKE 'li\_bad\_%'
 ORDER BY s.pipeline COLLATE "C";
-- what the handlers saw: ledger 1 only (nothing for li_bad_number)
SELECT b.pipeline, count(e.seq) AS events, max(e.ledger) AS last_ledger
  FROM bad_docs b LEFT JOIN li_events e ON e.pipeline = b.pipeline
 GROUP BY b.pipeline ORDER BY b.pipeline COLLATE "C";
-- the pending documents (still there, not rejected)
SELECT pipeline, ledger FROM ledger_ingest.inbox
 WHERE pipeline LIKE 'li\_bad\_%' AND error IS NULL ORDER BY pipeline COLLATE "C";
SELECT ledger_ingest.drop_pipeline(pipeline) FROM bad_docs ORDER BY pipeline COLLATE "C";

--
-- 5. A handler error rolls the whole transaction back; with max_retries 0
--    the pipeline fails at once, naming the event and the handler
--
CREATE FUNCTION li_h_boom(e ledger_ingest.event) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF e.event_index = 1 THEN
		RAISE EXCEPTION 'boom at ledger %', e.ledger USING ERRCODE = 'check_violation';
	END IF;
END
$$;
SELECT ledger_ingest.create_pipeline('li_handler_error', 'inbox', '{"poll_ms": 50, "max_retries": 0}');
SELECT ledger_ingest.add_handler('li_handler_error', 'li_h_all(ledger_ingest.event)');
SELECT ledger_ingest.add_handler('li_handler_error', 'li_h_boom(ledger_ingest.event)');
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_handler_error', li_doc(7, hx(7), hx(6), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)),
		li_log(0, 1, :'token_a', ARRAY[:'transfer'], amount(2)))));
SELECT ledger_ingest.start('li_handler_error');
SELECT wait_state('li_handler_error', 'failed');
SELECT state, ledger, events_applied, errors, last_error
  FROM ledger_ingest.status WHERE pipeline = 'li_handler_error';
SELECT count(*) AS events FROM li_events WHERE pipeline = 'li_handler_error';
-- the document is still pending, without error
SELECT ledger, error FROM ledger_ingest.inbox WHERE pipeline = 'li_handler_error';
SELECT ledger_ingest.drop_pipeline('li_handler_error');

--
-- 6. Reorgs: a document whose parentHash does not match the applied ledger
--    before it fails the pipeline; the document stays pending
--
SELECT ledger_ingest.create_pipeline('li_reorg', 'inbox', '{"poll_ms": 50}');
SELECT ledger_ingest.add_handler('li_reorg', 'li_h_all(ledger_ingest.event)');
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_reorg', li_doc(10, hx(10), hx(9), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1))))),
	('li_reorg', li_doc(11, hx(11), hx(10), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)))));
SELECT ledger_ingest.start('li_reorg');
SELECT ledger_ingest.wait_for('li_reorg', 11, '30s');
-- ledger 12 of another branch: its parent is not the applied ledger 11
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_reorg', li_doc(12, hx(140), hx(139), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)))));
SELECT wait_state('li_reorg', 'failed');
SELECT state, ledger, events_applied, ledgers_applied, errors,
	   regexp_replace(last_error, '0x([0-9a-f]{4})[0-9a-f]{60}', '0x\1...', 'g') AS last_error,
	   last_error LIKE 'reorg at ledger 12:%' AS reorg_at_12
  FROM ledger_ingest.status WHERE pipeline = 'li_reorg';
SELECT ledger, error FROM ledger_ingest.inbox WHERE pipeline = 'li_reorg';
SELECT count(*) AS events, max(ledger) AS last_ledger FROM li_events WHERE pipeline = 'li_reorg';

-- the same inside one batch: ledgers 1 and 2 are applied, 3 is not
SELECT ledger_ingest.create_pipeline('li_reorg_batch', 'inbox', '{"poll_ms": 50}');
SELECT ledger_ingest.add_handler('li_reorg_batch', 'li_h_all(ledger_ingest.event)');
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_reorg_batch', li_doc(1, hx(1), hx(0), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1))))),
	('li_reorg_batch', li_doc(2, hx(2), hx(1), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1))))),
	('li_reorg_batch', li_doc(3, hx(3), hx(130), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)))));
SELECT ledger_ingest.start('li_reorg_batch');
SELECT wait_state('li_reorg_batch', 'failed');
SELECT state, ledger, events_applied, ledgers_applied,
	   regexp_replace(last_error, '0x([0-9a-f]{4})[0-9a-f]{60}', '0x\1...', 'g') AS last_error
  FROM ledger_ingest.status WHERE pipeline = 'li_reorg_batch';
SELECT ledger, error FROM ledger_ingest.inbox WHERE pipeline = 'li_reorg_batch';
SELECT count(*) AS events, max(ledger) AS last_ledger FROM li_events WHERE pipeline = 'li_reorg_batch';

--
-- 7. Handlers run as the pipeline owner, not as the worker's superuser
--
CREATE ROLE regress_li_owner NOLOGIN;
GRANT ledger_ingest_admin TO regress_li_owner;
CREATE TABLE li_owner_log (pipeline text, ledger bigint, who name, is_superuser boolean);
GRANT INSERT ON li_owner_log TO regress_li_owner;
GRANT CREATE ON SCHEMA public TO regress_li_owner;
SET ROLE regress_li_owner;
SELECT ledger_ingest.create_pipeline('li_owner', 'inbox', '{"poll_ms": 50}');
CREATE FUNCTION li_h_owner(e ledger_ingest.event) RETURNS void
	LANGUAGE sql AS $$
	INSERT INTO public.li_owner_log
	SELECT e.pipeline, e.ledger, current_user, r.rolsuper FROM pg_catalog.pg_roles r
	 WHERE r.rolname = current_user
$$;
SELECT ledger_ingest.add_handler('li_owner', 'li_h_owner(ledger_ingest.event)');
RESET ROLE;
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_owner', li_doc(1, hx(1), hx(0), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)))));
SET ROLE regress_li_owner;
SELECT ledger_ingest.start('li_owner');
SELECT ledger_ingest.wait_for('li_owner', 1, '30s');
-- the role sees its own pipeline only
SELECT pipeline, state, ledger, events_applied, owner FROM ledger_ingest.status;
RESET ROLE;
SELECT pipeline, ledger, who, is_superuser FROM li_owner_log;

-- The owner may not write li_events: a handler that does fails with the
-- owner's "permission denied", and the whole ledger is rolled back.
SET ROLE regress_li_owner;
SELECT ledger_ingest.create_pipeline('li_owner_denied', 'inbox', '{"poll_ms": 50, "max_retries": 0}');
SELECT ledger_ingest.add_handler('li_owner_denied', 'li_h_owner(ledger_ingest.event)');
SELECT ledger_ingest.add_handler('li_owner_denied', 'li_h_all(ledger_ingest.event)');
INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('li_owner_denied', li_doc(1, hx(1), hx(0), jsonb_build_array(
		li_log(0, 0, :'token_a', ARRAY[:'transfer'], amount(1)))));
SELECT ledger_ingest.start('li_owner_denied');
SELECT wait_state('li_owner_denied', 'failed');
SELECT state, ledger, errors, last_error FROM ledger_ingest.status WHERE pipeline = 'li_owner_denied';
RESET ROLE;
SELECT pipeline, ledger, who FROM li_owner_log ORDER BY pipeline COLLATE "C", ledger;
SELECT count(*) FROM li_events WHERE pipeline LIKE 'li\_owner%';

--
-- clean up
--
SELECT ledger_ingest.drop_pipeline(name) FROM ledger_ingest.pipeline ORDER BY name COLLATE "C";
SELECT count(*) FROM ledger_ingest.pipeline;
DROP OWNED BY regress_li_owner;
DROP ROLE regress_li_owner;
DROP TABLE li_owner_log;
DROP VIEW li_seen;
DROP TABLE li_events;
DROP FUNCTION li_h_all(ledger_ingest.event), li_h_transfer(ledger_ingest.event),
	li_h_token_b(ledger_ingest.event), li_h_b_transfer(ledger_ingest.event),
	li_h_boom(ledger_ingest.event), li_record(text, ledger_ingest.event),
	li_doc(int, text, text, jsonb), li_log(int, int, text, text[], text), hx(int, int),
	amount(int), wait_state(text, text);
