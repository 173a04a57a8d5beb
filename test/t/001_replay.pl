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
		# a raw sink next to the handler: every event as a row, via COPY
		$node->safe_psql('postgres', qq{
			CREATE TABLE raw_events (pipeline text, ledger bigint, ledger_hash bytea, ledger_time timestamptz,
				tx_index int, tx_hash bytea, event_index int, address bytea, topics bytea[], data bytea,
				note text DEFAULT 'sink', PRIMARY KEY (ledger, event_index));
			SELECT ledger_ingest.add_raw_sink('$p', 'raw_events');
		});
	}
	li_load_ndjson($node, $p, $blocks);
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

$node->stop;
done_testing();
