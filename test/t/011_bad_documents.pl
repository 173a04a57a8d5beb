# Hostile and malformed inbox documents: each gets a clear error naming the
# problem, the document stays in the inbox with that error, the pipeline
# stops ('failed') rather than skip a ledger, and no valid ledger is lost:
# after the bad document is deleted and the pipeline started again, the
# next valid ledger is applied.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('bad_documents');
$node->safe_psql('postgres', q{
	CREATE TABLE seen (pipeline text, ledger bigint, event_index int);
	CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO seen VALUES (e.pipeline, e.ledger, e.event_index) $$;
	CREATE FUNCTION h(n int) RETURNS text LANGUAGE sql AS $$ SELECT '0x' || repeat(lpad(to_hex(n % 256), 2, '0'), 32) $$;
	CREATE FUNCTION lg(i int, extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object('address', '0x' || repeat('aa', 20), 'topics', jsonb_build_array(h(200)),
			'data', '0x01', 'transactionIndex', '0x0', 'logIndex', '0x' || to_hex(i)) || extra $$;
	CREATE FUNCTION good(n int) RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object('number', n, 'hash', h(n), 'parentHash', h(n - 1), 'logs', jsonb_build_array(lg(0))) $$;
	-- a transaction (eth_getBlockByNumber(n, true)) and a receipt (eth_getBlockReceipts) of ledger 2
	CREATE FUNCTION txo(i int, extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object('hash', h(100 + i), 'from', '0x' || repeat('11', 20), 'to', '0x' || repeat('aa', 20),
			'value', '0xde0b6b3a7640000', 'input', '0x', 'nonce', '0x' || to_hex(i), 'gas', '0x5208',
			'transactionIndex', '0x' || to_hex(i), 'type', '0x2', 'gasPrice', '0x3b9aca00',
			'maxFeePerGas', '0x77359400', 'maxPriorityFeePerGas', '0x1') || extra $$;
	CREATE FUNCTION rc(i int, extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object('transactionHash', h(100 + i), 'transactionIndex', '0x' || to_hex(i),
			'blockHash', h(2), 'blockNumber', '0x2', 'status', '0x1', 'gasUsed', '0x5208',
			'effectiveGasPrice', '0x3b9aca00', 'contractAddress', NULL) || extra $$;
	CREATE FUNCTION txs(t jsonb, r jsonb DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
		SELECT good(2) || jsonb_build_object('transactions', t) || coalesce(jsonb_build_object('receipts', r), '{}') $$;
});

my $h2 = '0x' . ('02' x 32);
my @cases = (
	[ 'a JSON array', q{'[1,2]'}, qr/not a JSON object/ ],
	[ 'a JSON string', q{'"block"'}, qr/not a JSON object/ ],
	[ 'no number', q{good(2) - 'number'}, qr/field "number" is missing/ ],
	[ 'number not hex', q{good(2) || '{"number":"0xzz"}'}, qr/field "number" contains a non-hex character/ ],
	[ 'number without 0x', q{good(2) || '{"number":"2"}'}, qr/field "number" must be a 0x-prefixed hex quantity/ ],
	[ 'number with leading zeros', q{good(2) || '{"number":"0x02"}'}, qr/field "number" has leading zeros/ ],
	[ 'number over 2^63', q{good(2) || '{"number":"0x8000000000000000"}'}, qr/field "number" is out of range/ ],
	[ 'negative number', q{good(2) || '{"number":-2}'}, qr/field "number" (must not be negative|must be an integer)/ ],
	[ 'fractional number', q{good(2) || '{"number":2.5}'}, qr/field "number" must be an integer/ ],
	[ 'number as boolean', q{good(2) || '{"number":true}'}, qr/field "number" must be a 0x-hex string or a JSON integer/ ],
	[ 'no hash', q{good(2) - 'hash'}, qr/field "hash" is missing/ ],
	[ 'hash odd length', q{good(2) || jsonb_build_object('hash', h(2) || '0')}, qr/field "hash" has an odd number of hex digits/ ],
	[ 'hash too short', q{good(2) || '{"hash":"0x1234"}'}, qr/field "hash" must be 32 bytes, got 2/ ],
	[ 'hash not a string', q{good(2) || '{"hash":12}'}, qr/field "hash" must be a 0x-hex string/ ],
	[ 'parentHash bad hex', q{good(2) || jsonb_build_object('parentHash', '0x' || repeat('g', 64))}, qr/field "parentHash" contains a non-hex character/ ],
	[ 'timestamp negative', q{good(2) || '{"timestamp":-5}'}, qr/field "timestamp" must not be negative/ ],
	[ 'logs not an array', q{good(2) || '{"logs":{}}'}, qr/field "logs" must be an array/ ],
	[ 'a log not an object', q{good(2) || '{"logs":[7]}'}, qr/"logs\[0\]" must be an object/ ],
	[ 'log without address', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0) - 'address'))}, qr/field "logs\[0\]\.address" is missing/ ],
	[ 'address 19 bytes', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, jsonb_build_object('address', '0x' || repeat('aa', 19)))))}, qr/field "logs\[0\]\.address" must be 20 bytes, got 19/ ],
	[ 'topic not 32 bytes', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, '{"topics":["0xabcd"]}')))}, qr/field "logs\[0\]\.topics\[0\]" must be 32 bytes, got 2/ ],
	[ 'five topics', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, jsonb_build_object('topics', jsonb_build_array(h(1), h(2), h(3), h(4), h(5))))))}, qr/has 5 topics, at most 4 are allowed/ ],
	[ 'topics not an array', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, '{"topics":"0x00"}')))}, qr/field "logs\[0\]\.topics" must be an array/ ],
	[ 'data odd length', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, '{"data":"0x123"}')))}, qr/field "logs\[0\]\.data" has an odd number of hex digits/ ],
	[ 'data missing', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0) - 'data'))}, qr/field "logs\[0\]\.data" must be a 0x-hex string/ ],
	[ 'logIndex missing', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0) - 'logIndex'))}, qr/field "logs\[0\]\.logIndex" is missing/ ],
	[ 'transactionIndex over int32', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, '{"transactionIndex":"0x80000000"}')))}, qr/field "logs\[0\]\.transactionIndex" is out of range/ ],
	[ 'duplicate logIndex', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(3), lg(3)))}, qr/duplicate logIndex 3/ ],
	[ 'logIndex against tx order', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(5), lg(1, '{"transactionIndex":"0x1"}')))}, qr/logIndex 1 of transactionIndex 1 precedes logIndex 5 of transactionIndex 0/ ],
	[ 'a log from another block number', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, '{"blockNumber":"0x9"}')))}, qr/field "logs\[0\]\.blockNumber" is 9, but the ledger number is 2/ ],
	[ 'a log from another block hash', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, jsonb_build_object('blockHash', h(77)))))}, qr/field "logs\[0\]\.blockHash" does not match the ledger hash/ ],
	[ 'a removed log', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, '{"removed":true}')))}, qr/"logs\[0\]" is marked removed/ ],
	[ 'deeply nested JSON', q{good(2) || jsonb_build_object('logs', (repeat('[', 500) || repeat(']', 500))::jsonb)}, qr/"logs\[0\]" must be an object/ ],
	[ '5.2 million non-log elements in logs (10 MB)', q{good(2) || jsonb_build_object('logs', (SELECT jsonb_agg(1) FROM generate_series(1, 5200000)))}, qr/"logs\[0\]" must be an object/ ],
	[ 'transactions not an array', q{txs('{}')}, qr/field "transactions" must be an array/ ],
	[ 'a transaction not an object', q{txs(jsonb_build_array(txo(0), 5))}, qr/field "transactions\[1\]" must be a transaction \(eth_getBlockByNumber with full transactions\) object/ ],
	[ 'a transaction object after transaction hashes', q{txs(jsonb_build_array(h(1), txo(0)))}, qr/field "transactions\[1\]" must be a transaction hash, as the elements before it/ ],
	[ 'a transaction hash of 31 bytes', q{txs(jsonb_build_array(h(1), '0x' || repeat('ab', 31)))}, qr/field "transactions\[1\]" must be 32 bytes, got 31/ ],
	[ 'a transaction without from', q{txs(jsonb_build_array(txo(0) - 'from'))}, qr/field "transactions\[0\]\.from" is missing/ ],
	[ 'a transaction to 19 bytes', q{txs(jsonb_build_array(txo(0, jsonb_build_object('to', '0x' || repeat('aa', 19)))))}, qr/field "transactions\[0\]\.to" must be 20 bytes, got 19/ ],
	[ 'value in decimal', q{txs(jsonb_build_array(txo(0, '{"value":"1000"}')))}, qr/field "transactions\[0\]\.value" must be a 0x-prefixed hex quantity/ ],
	[ 'value with leading zeros', q{txs(jsonb_build_array(txo(0, '{"value":"0x01"}')))}, qr/field "transactions\[0\]\.value" has leading zeros/ ],
	[ 'value over 256 bits', q{txs(jsonb_build_array(txo(0, jsonb_build_object('value', '0x1' || repeat('0', 64)))))}, qr/field "transactions\[0\]\.value" is out of range for a 256-bit quantity/ ],
	[ 'input odd length', q{txs(jsonb_build_array(txo(0, '{"input":"0xa9059"}')))}, qr/field "transactions\[0\]\.input" has an odd number of hex digits/ ],
	[ 'input missing', q{txs(jsonb_build_array(txo(0) - 'input'))}, qr/field "transactions\[0\]\.input" is missing/ ],
	[ 'type over 255', q{txs(jsonb_build_array(txo(0, '{"type":"0x100"}')))}, qr/field "transactions\[0\]\.type" is not a transaction type/ ],
	[ 'two transactions with one transactionIndex', q{txs(jsonb_build_array(txo(0), txo(1, '{"transactionIndex":"0x0"}')))}, qr/field "transactions" has two transactions with transactionIndex 0/ ],
	[ 'a transaction of another block', q{txs(jsonb_build_array(txo(0, '{"blockNumber":"0x9"}')))}, qr/field "transactions\[0\]\.blockNumber" is 9, not this ledger's number 2/ ],
	[ 'receipts without transactions', q{good(2) || jsonb_build_object('receipts', jsonb_build_array(rc(0)))}, qr/field "receipts" needs the transactions in field "transactions"/ ],
	[ 'a receipt of another block', q{txs(jsonb_build_array(txo(0)), jsonb_build_array(rc(0, jsonb_build_object('blockHash', h(9)))))}, qr/field "receipts\[0\]\.blockHash" is not this ledger's hash/ ],
	[ 'a receipt of no transaction', q{txs(jsonb_build_array(txo(0)), jsonb_build_array(rc(5)))}, qr/field "receipts\[0\]\.transactionIndex" is 5, which no transaction of "transactions" has/ ],
	[ 'a receipt of another transaction hash', q{txs(jsonb_build_array(txo(0)), jsonb_build_array(rc(0, jsonb_build_object('transactionHash', h(7)))))}, qr/field "receipts\[0\]\.transactionHash" is not the hash of transaction 0 of the ledger/ ],
	[ 'two receipts of one transaction', q{txs(jsonb_build_array(txo(0)), jsonb_build_array(rc(0), rc(0)))}, qr/field "receipts\[1\]\.transactionIndex" is 0, whose receipt came before/ ],
	[ 'receipt status 0x2', q{txs(jsonb_build_array(txo(0)), jsonb_build_array(rc(0, '{"status":"0x2"}')))}, qr/field "receipts\[0\]\.status" must be 0x0 or 0x1/ ],
	[ 'receipt without gasUsed', q{txs(jsonb_build_array(txo(0)), jsonb_build_array(rc(0) - 'gasUsed'))}, qr/field "receipts\[0\]\.gasUsed" is missing/ ],
	[ '2 million non-transaction elements in transactions', q{txs((SELECT jsonb_agg(1) FROM generate_series(1, 2000000)))}, qr/field "transactions\[0\]" must be a transaction/ ],
	[ 'huge data (16 MB)', q{good(2) || jsonb_build_object('logs', jsonb_build_array(lg(0, jsonb_build_object('data', '0x' || repeat('ab', 8000000) || 'z'))))}, qr/field "logs\[0\]\.data" has an odd number of hex digits/ ],
);

my $n = 0;
for my $c (@cases)
{
	my ($what, $doc, $re) = @$c;
	my $p = 'bad' . (++$n);
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$p', 'inbox');
		SELECT ledger_ingest.add_handler('$p', 'see(ledger_ingest.event)');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('$p', good(1)), ('$p', $doc), ('$p', good(3));
		SELECT ledger_ingest.start('$p');
	});
	my $state = li_wait_state($node, $p, 'failed', 30);
	my $err = li_scalar($node, "SELECT coalesce(error, '') FROM ledger_ingest.inbox WHERE pipeline = '$p' AND error IS NOT NULL");
	# the insert stored it without a packed form (the worker parsed the JSON to say why)
	my $unpacked = li_scalar($node, "SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = '$p' AND error IS NOT NULL AND packed IS NULL");
	my $rejected = $state eq 'failed' && $err =~ $re && $unpacked eq '1';
	ok($rejected, "$what: rejected, $err");
	# nothing lost: ledger 1 applied before, ledger 3 applied once the bad document is removed
	$node->safe_psql('postgres', qq{
		DELETE FROM ledger_ingest.inbox WHERE pipeline = '$p' AND error IS NOT NULL;
		SELECT ledger_ingest.start('$p');
	});
	my $kept = li_wait($node, $p, 3, 30) && li_scalar($node, "SELECT string_agg(ledger::text, ',' ORDER BY ledger) FROM seen WHERE pipeline = '$p'") eq '1,3';
	ok($kept, "$what: nothing lost");
	li_case('bad inputs', $what, $rejected && $kept);
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$p')");
}

# a NUL inside a string, or text that is not JSON: jsonb itself refuses
# them, the producer gets the error at INSERT and nothing reaches the inbox
my ($ret, $out, $err) = $node->psql('postgres',
	q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('x', '{"number":"0x1","hash":"0x00\u0000"}')});
li_case('bad inputs', '\u0000 inside a string: refused at INSERT',
	$ret != 0 && $err =~ /unsupported Unicode escape sequence/);
($ret, $out, $err) = $node->psql('postgres',
	q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('x', 'block 12 of the chain')});
li_case('bad inputs', 'not JSON: refused at INSERT',
	$ret != 0 && $err =~ /invalid input syntax for type json/);
is(li_scalar($node, 'SELECT count(*) FROM ledger_ingest.inbox'), '0', 'nothing reached the inbox');

# ledger numbers not above the cursor: the applied ledger again is set
# aside (the pipeline carries on); another ledger at an applied number that
# does not attach to the chain fails the pipeline (skipping it could lose
# data); valid ledgers after it are applied once it is removed
$node->safe_psql('postgres', q{
	SELECT ledger_ingest.create_pipeline('stale', 'inbox');
	SELECT ledger_ingest.add_handler('stale', 'see(ledger_ingest.event)');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('stale', good(1)), ('stale', good(2));
	SELECT ledger_ingest.start('stale');
});
ok(li_wait($node, 'stale', 2, 30), 'stale: ledgers 1 and 2 applied');
$node->safe_psql('postgres', q{
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('stale', good(1)), ('stale', good(3));
});
ok(li_wait($node, 'stale', 3, 30), 'stale: ledger 3 applied after a repeated ledger 1');
$err = li_scalar($node, q{SELECT coalesce(string_agg(error, '; '), '') FROM ledger_ingest.inbox WHERE pipeline = 'stale'});
li_case('bad inputs', 'a ledger number not above the cursor (the applied ledger again): set aside, pipeline running',
	$err =~ /ledger 1 is not above the cursor \(ledger 2\): already applied/
	  && li_scalar($node, q{SELECT state FROM ledger_ingest.status WHERE pipeline = 'stale'}) eq 'running');
$node->safe_psql('postgres', q{
	DELETE FROM ledger_ingest.inbox WHERE pipeline = 'stale';
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
		VALUES ('stale', good(2) || jsonb_build_object('hash', h(99), 'parentHash', h(42))), ('stale', good(4));
});
my $state = li_wait_state($node, 'stale', 'failed', 30);
$err = li_scalar($node, q{SELECT coalesce(string_agg(error, '; '), '') FROM ledger_ingest.inbox WHERE pipeline = 'stale'});
$node->safe_psql('postgres', q{
	DELETE FROM ledger_ingest.inbox WHERE pipeline = 'stale' AND error IS NOT NULL;
	SELECT ledger_ingest.start('stale');
});
li_case('bad inputs', 'another ledger at an applied number: failed, then nothing lost',
	$state eq 'failed' && $err =~ /reorg at ledger 2: it differs from the applied ledger 2 and does not attach/
	  && li_wait($node, 'stale', 4, 30)
	  && li_scalar($node, q{SELECT string_agg(ledger::text, ',' ORDER BY ledger) FROM seen WHERE pipeline = 'stale'}) eq '1,2,3,4');

# a 100 MB document (one log with 50 MB of data): applied in full, once
$node->safe_psql('postgres', q{
	CREATE TABLE big (ledger bigint, len int, md5 text);
	CREATE FUNCTION keep_big(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO big VALUES (e.ledger, length(e.data), md5(e.data)) $$;
	SELECT ledger_ingest.create_pipeline('big', 'inbox');
	SELECT ledger_ingest.add_handler('big', 'keep_big(ledger_ingest.event)');
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'big', good(1) || jsonb_build_object('logs', jsonb_build_array(lg(0, jsonb_build_object('data', '0x' || repeat('c0ffee', 16666667)))));
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('big', good(2));
	SELECT ledger_ingest.start('big');
});
li_case('bad inputs', 'a 100 MB document: applied in full, once',
	li_wait($node, 'big', 2, 120)
	  && li_scalar($node, q{SELECT string_agg(ledger || ':' || len || ':' || (md5 = md5(decode(repeat('c0ffee', 16666667), 'hex'))), ',' ORDER BY ledger) FROM big})
	  eq '1:50000001:true,2:1:false');

note scalar(@cases) . ' malformed documents tried';
$node->stop;
done_testing();
