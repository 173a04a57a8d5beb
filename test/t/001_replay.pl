# Replay real mainnet ledgers through the inbox: ERC-20 balances must equal
# the expected deltas exactly, in "batch", "ledger" and "event" commit
# modes and with a set-based handler (all events of a transaction at once);
# the 8,192-ledger header chain must arrive linked and complete.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('replay');
li_load_erc20($node);
my $blocks = li_data() . '/evm/mainnet-blocks.ndjson';
my $transfer = '\xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';

for my $mode ('batch', 'ledger', 'event', 'set')
{
	my $p = "replay_$mode";
	my ($commit, $handler) = $mode eq 'set'
	  ? ('batch', 'erc20_on_transfers(ledger_ingest.event[])')   # set-based
	  : ($mode, 'erc20_on_transfer(ledger_ingest.event)');
	$node->safe_psql('postgres', qq{
		TRUNCATE erc20_balances;
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"commit":"$commit","batch_max_ledgers":7}');
		SELECT ledger_ingest.add_handler('$p', '$handler', '$transfer');
	});
	if ($mode eq 'batch')
	{
		# raw sinks next to the handler: every event as a row.  raw_events
		# has a column with a default and a trigger: COPY's path.
		# raw_direct has only event fields, an index and a CHECK: the
		# direct path (table_multi_insert + index maintenance).
		$node->safe_psql('postgres', qq{
			CREATE TABLE raw_events (pipeline text, ledger bigint, ledger_hash bytea, ledger_time timestamptz,
				tx_index int, tx_hash bytea, event_index int, address bytea, topics bytea[], data bytea,
				note text DEFAULT 'sink', PRIMARY KEY (ledger, event_index));
			CREATE TABLE raw_trigger_rows (n bigint);
			INSERT INTO raw_trigger_rows VALUES (0);
			CREATE FUNCTION raw_count() RETURNS trigger LANGUAGE plpgsql AS
				'BEGIN UPDATE raw_trigger_rows SET n = n + 1; RETURN NEW; END';
			CREATE TRIGGER raw_count AFTER INSERT ON raw_events FOR EACH ROW EXECUTE FUNCTION raw_count();
			SELECT ledger_ingest.add_raw_sink('$p', 'raw_events');
			CREATE TABLE raw_direct (pipeline text, ledger bigint, ledger_hash bytea, ledger_time timestamptz,
				tx_index int, tx_hash bytea, event_index int, address bytea, topics bytea[], data bytea,
				extra text, PRIMARY KEY (ledger, event_index), CHECK (ledger > 0));
			CREATE INDEX ON raw_direct (address, ledger);
			SELECT ledger_ingest.add_raw_sink('$p', 'raw_direct');
			-- a column of a domain with a default: COPY gives it the
			-- domain's default, and so must the sink (the COPY path)
			CREATE DOMAIN one_int AS int NOT NULL DEFAULT 1;
			CREATE TABLE raw_domain (ledger bigint, event_index int, d one_int);
			SELECT ledger_ingest.add_raw_sink('$p', 'raw_domain');
		});
	}
	li_load_ndjson($node, $p, $blocks);
	# each document was parsed at insert into its packed form, which the
	# worker reads instead of the JSON (the raw sink checks below compare
	# every field it yields with the documents)
	is( li_scalar($node, "SELECT count(packed) || '/' || count(*) FROM ledger_ingest.inbox WHERE pipeline = '$p'"),
		'60/60', "$mode: every document packed at insert");
	$node->safe_psql('postgres', "SELECT ledger_ingest.start('$p')");
	ok(li_wait($node, $p, 17000000, 180), "$mode: reached the last ledger");
	if ($mode eq 'batch')
	{
		is(li_scalar($node, q{SELECT count(*) || '/' || count(DISTINCT note) FROM raw_events}), '1540/1',
			'raw sink: one row per event');
		is( li_scalar($node, qq{
			SELECT count(*) FROM (
				(SELECT ledger_ingest.doc_ledger(d.doc), ('x' || lpad(substr(l->>'logIndex', 3), 8, '0'))::bit(32)::int,
						decode(substr(l->>'address', 3), 'hex'), decode(substr(l->>'data', 3), 'hex'),
						ARRAY(SELECT decode(substr(t, 3), 'hex') FROM jsonb_array_elements_text(l->'topics') t),
						decode(substr(d.doc->>'hash', 3), 'hex'), decode(substr(l->>'transactionHash', 3), 'hex'),
						('x' || lpad(substr(l->>'transactionIndex', 3), 8, '0'))::bit(32)::int,
						to_timestamp(('x' || lpad(substr(d.doc->>'timestamp', 3), 16, '0'))::bit(64)::bigint),
						'$p'
				 FROM nd d, jsonb_array_elements(d.doc->'logs') l)
				EXCEPT
				(SELECT ledger, event_index, address, data, topics, ledger_hash, tx_hash, tx_index, ledger_time, pipeline
				 FROM raw_events)) x}),
			'0', 'raw sink: every field equals the ledger documents');
		is(li_scalar($node, 'SELECT n FROM raw_trigger_rows'), '1540', 'raw sink (COPY path): the row trigger fired once per event');
		is( li_scalar($node, q{
			SELECT count(*) || '/' || count(extra) FROM raw_direct}), '1540/0', 'raw sink (direct path): one row per event');
		is( li_scalar($node, q{
			SELECT count(*) FROM (
				(SELECT pipeline, ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data FROM raw_events
				 EXCEPT SELECT pipeline, ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data FROM raw_direct)
				UNION ALL
				(SELECT pipeline, ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data FROM raw_direct
				 EXCEPT SELECT pipeline, ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data FROM raw_events)) x}),
			'0', 'raw sink: the direct path and the COPY path write the same rows');
		is( li_scalar($node, q{
			SET enable_seqscan = off;
			SELECT count(*) FROM raw_direct WHERE address = '\xdac17f958d2ee523a2206206994597c13d831ec7'}),
			li_scalar($node, q{SELECT count(*) FROM raw_events WHERE address = '\xdac17f958d2ee523a2206206994597c13d831ec7'}),
			'raw sink (direct path): the secondary index has every row');
		is(li_scalar($node, q{SELECT count(*) || '/' || count(*) FILTER (WHERE d = 1) FROM raw_domain}), '1540/1540',
			'raw sink: a column of a domain with a default gets the default, as COPY gives it');
	}
	is(li_scalar($node, 'SELECT count(*) FROM erc20_mismatch'), '0',
		"$mode: balances equal the expected ERC-20 deltas");
	is(li_scalar($node, 'SELECT count(*) FROM erc20_expected'), '810', "$mode: 810 expected rows");
	is( li_scalar($node,
			"SELECT events_applied || '/' || ledgers_applied || '/' || state FROM ledger_ingest.status WHERE pipeline = '$p'"),
		'1540/60/running',
		"$mode: 1540 events in 60 ledgers applied");
	is(li_scalar($node, "SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = '$p'"),
		'0', "$mode: applied inbox documents are deleted");
	is( li_scalar($node,
			"SELECT count(*) || '/' || sum(events) FROM ledger_ingest.ledger WHERE pipeline = '$p'"),
		'60/1540', "$mode: 60 ledger headers recorded");
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$p')");
}

# 8,192 linked headers (blocks 0-8191), no events
my $headers = li_data() . '/evm/mainnet-headers-0-8191.ndjson';
$node->safe_psql('postgres',
	q{SELECT ledger_ingest.create_pipeline('headers', 'inbox', '{"batch_max_ledgers":1000}')});
li_load_ndjson($node, 'headers', $headers);
$node->safe_psql('postgres', "SELECT ledger_ingest.start('headers')");
ok(li_wait($node, 'headers', 8191, 180), 'headers: reached ledger 8191');
is( li_scalar($node,
		q{SELECT ledger || ' ' || (tx_index IS NULL) || ' ' || ledgers_applied FROM ledger_ingest.status WHERE pipeline = 'headers'}),
	'8191 true 8192', 'headers: cursor at the end of ledger 8191 after 8192 ledgers');
is( li_scalar($node,
		q{SELECT count(*) FROM ledger_ingest.ledger l
		  JOIN ledger_ingest.ledger p ON p.pipeline = l.pipeline AND p.number = l.number - 1
		  WHERE l.pipeline = 'headers' AND l.parent_hash = p.hash}),
	'8191', 'headers: every ledger links to its parent by parentHash');
is( li_scalar($node,
		q{SELECT encode(hash, 'hex') FROM ledger_ingest.ledger WHERE pipeline = 'headers' AND number = 0}),
	'd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3',
	'headers: the genesis hash');
is( li_scalar($node,
		q{SELECT c.ledger_hash = l.hash FROM ledger_ingest.cursor c JOIN ledger_ingest.ledger l
		  ON l.pipeline = c.pipeline AND l.number = c.ledger WHERE c.pipeline = 'headers'}),
	't', 'headers: the cursor carries the hash of its ledger');
is( li_scalar($node,
		q{SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM ledger_ingest.ledger WHERE pipeline = 'headers' AND number = 1}),
	'2015-07-30 15:26:28', 'headers: timestamps converted');

# an idle worker sleeps with no transaction open and shows itself
is( li_scalar($node,
		q{SELECT backend_type || '|' || (xact_start IS NULL) || '|' || (backend_xid IS NULL)
		  FROM pg_stat_activity WHERE application_name = 'ledger_ingest headers'}),
	'ledger_ingest worker|true|true', 'the idle worker holds no transaction');

# the raw sink's NULLs and empty arrays: no timestamp, no transactionHash,
# a log without topics
$node->safe_psql('postgres', q{
	CREATE TABLE raw_edge (ledger bigint, ledger_time timestamptz, tx_hash bytea, topics bytea[], data bytea);
	SELECT ledger_ingest.create_pipeline('edge', 'inbox');
	SELECT ledger_ingest.add_raw_sink('edge', 'raw_edge');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('edge', jsonb_build_object('number', 7,
		'hash', '0x' || repeat('77', 32), 'logs', jsonb_build_array(jsonb_build_object(
			'address', '0x' || repeat('aa', 20), 'topics', '[]'::jsonb, 'data', '0x',
			'transactionIndex', '0x0', 'logIndex', '0x0'))));
	SELECT ledger_ingest.start('edge');
});
ok(li_wait($node, 'edge', 7, 30), 'edge: applied');
is( li_scalar($node, q{SELECT ledger || ' ' || coalesce(ledger_time::text, 'null') || ' ' || coalesce(tx_hash::text, 'null')
		|| ' ' || topics::text || ' ' || cardinality(topics) || ' ' || length(data) FROM raw_edge}),
	'7 null null {} 0 0', 'raw sink: NULL time and transaction hash, an empty topics array, empty data');

# a direct-path sink that refuses a row (CHECK, then a duplicate key):
# the error names the constraint, nothing of that transaction lands, the
# cursor stays; once the table accepts the rows, each lands exactly once
$node->safe_psql('postgres', q{
	CREATE TABLE raw_strict (ledger bigint, event_index int, data bytea,
		CONSTRAINT small_ledgers CHECK (ledger < 9), UNIQUE (ledger, event_index));
	SELECT ledger_ingest.create_pipeline('strict', 'inbox', '{"commit": "ledger", "max_retries": 1000000}');
	SELECT ledger_ingest.add_raw_sink('strict', 'raw_strict');
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
	SELECT 'strict', jsonb_build_object('number', n, 'hash', '0x' || repeat(lpad(to_hex(n), 2, '0'), 32),
		'logs', (SELECT jsonb_agg(jsonb_build_object('address', '0x' || repeat('aa', 20), 'topics', '[]'::jsonb,
			'data', '0x0' || i, 'transactionIndex', 0, 'logIndex', i)) FROM generate_series(0, 2) i))
	FROM generate_series(8, 9) n;
	SELECT ledger_ingest.start('strict');
});
ok(li_wait($node, 'strict', 8, 30), 'strict sink: ledger 8 applied');
ok( $node->poll_query_until('postgres', q{SELECT last_error LIKE '%violates check constraint "small_ledgers"%' FROM ledger_ingest.status WHERE pipeline = 'strict'}),
	'strict sink: the CHECK violation is the pipeline error');
is( li_scalar($node, q{SELECT ledger || ' ' || (tx_index IS NULL) || ' ' || (SELECT count(*) FROM raw_strict) FROM ledger_ingest.status WHERE pipeline = 'strict'}),
	'8 true 3', 'strict sink: the cursor stays at ledger 8, none of ledger 9 landed');
$node->safe_psql('postgres', q{
	ALTER TABLE raw_strict DROP CONSTRAINT small_ledgers;
	INSERT INTO raw_strict VALUES (9, 1, '\x00');
});
ok( $node->poll_query_until('postgres', q{SELECT last_error LIKE '%duplicate key value violates unique constraint%' FROM ledger_ingest.status WHERE pipeline = 'strict'}),
	'strict sink: then the duplicate key is the pipeline error');
$node->safe_psql('postgres', q{DELETE FROM raw_strict WHERE ledger = 9});
ok(li_wait($node, 'strict', 9, 30), 'strict sink: ledger 9 applied once the table accepts it');
is( li_scalar($node, q{SELECT string_agg(ledger || ':' || event_index || ':' || encode(data, 'hex'), ' ' ORDER BY 1) FROM raw_strict}),
	'8:0:00 8:1:01 8:2:02 9:0:00 9:1:01 9:2:02', 'strict sink: every event exactly once');

$node->stop;
done_testing();
