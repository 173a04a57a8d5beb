# Table sinks (add_table_sink, src/table_sink.c): the real mainnet ledgers
# through the inbox, ERC-20 Transfers decoded in C into typed columns.
#  a) a sink by column names ("from", "to", "value", event fields; an id
#     column with a default: COPY's path) and one mapped with columns (the
#     direct path): each holds one row per log of the event (3 topics, as
#     the signature says) that decodes, the others in decode_error; the
#     balances they sum to equal the ERC-20 deltas computed outside the
#     project, and every row equals the raw sink's log it came from;
#  b) a sink of one contract (address) holds exactly that contract's rows;
#     garbage under Transfer's topic0 (a short value, an address topic with
#     high bytes set) goes to decode_error, or fails the pipeline with
#     on_decode_error "fail", nothing applied;
#     a tracked table sink (an anonymous event) follows a reorg: the rows
#     of the orphaned ledgers go, the new branch's come;
#  c) what add_table_sink refuses, naming it: a column that cannot hold an
#     argument (uint256 into integer), a column that is neither an argument
#     nor a field, a mapping to an argument the event does not have, a
#     mapping of a column the table does not have, a field of another type,
#     a Stellar pipeline;
#  d) jsonb columns: an array and a tuple argument, encoded by cast
#     (abi-encode), land as the JSON arrays and objects of the values cast
#     was given, next to a numeric column of the same event.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('table_sink');
sub q1 { return scalar $node->safe_psql('postgres', $_[0]) }
li_load_erc20($node);
my $transfer = 'event Transfer(address indexed from, address indexed to, uint256 value)';

q1(qq{
	CREATE TABLE raw (ledger bigint, event_index int, address bytea, topics bytea[], data bytea, tx_hash bytea,
		PRIMARY KEY (ledger, event_index));
	-- by name: the arguments, event fields, and an id of its own
	CREATE TABLE "Transfer" (id bigserial PRIMARY KEY, address bytea, "from" bytea, "to" bytea, value numeric,
		ledger bigint, event_index int, tx_hash bytea);
	-- mapped: other names, text for an address
	CREATE TABLE transfers (token bytea, sender text, recipient bytea, amount numeric, block bigint, log_index int,
		PRIMARY KEY (block, log_index));
	SELECT ledger_ingest.create_pipeline('mainnet', 'inbox', '{"batch_max_ledgers": 50}');
	SELECT ledger_ingest.add_raw_sink('mainnet', 'raw');
	SELECT ledger_ingest.add_table_sink('mainnet', '"Transfer"', '$transfer');
	SELECT ledger_ingest.add_table_sink('mainnet', 'transfers', '$transfer', columns =>
		'{"token": "address", "sender": "from", "recipient": "to", "amount": "value", "block": "ledger", "log_index": "event_index"}');
});
li_load_ndjson($node, 'mainnet', li_data() . '/evm/mainnet-blocks.ndjson');
my $last = q1(q{SELECT max(('x' || lpad(substr(doc->>'number', 3), 16, '0'))::bit(64)::bigint) FROM nd});
# the USDT contract's logs, for b)
my $usdt = '\xdac17f958d2ee523a2206206994597c13d831ec7';
q1(qq{
	CREATE TABLE usdt (value numeric, ledger bigint, event_index int);
	SELECT ledger_ingest.add_table_sink('mainnet', 'usdt', '$transfer', address => '$usdt');
	SELECT ledger_ingest.start('mainnet');
});
ok(li_wait($node, 'mainnet', $last, 180), 'the mainnet ledgers were applied');

my $topic0 = q1(q{SELECT encode(ledger_ingest.event_topic('Transfer(address,address,uint256)'), 'hex')});
my $logs = q1(qq{SELECT count(*) FROM raw WHERE cardinality(topics) = 3 AND topics[1] = '\\x$topic0'});
my $ok = q1(qq{SELECT count(*) FROM raw WHERE cardinality(topics) = 3 AND topics[1] = '\\x$topic0' AND length(data) = 32});
ok($ok > 500, "$ok Transfer logs with 3 topics and a 32-byte value ($logs with 3 topics)");
is(q1(q{SELECT count(*) FROM "Transfer"}) . ' ' . q1(q{SELECT count(*) FROM transfers}), "$ok $ok",
	'each sink holds one row per decodable Transfer log');
is(q1(qq{SELECT count(*) FROM ledger_ingest.decode_error WHERE handler LIKE 'table sink %'}), 2 * ($logs - $ok),
	'the Transfer logs that do not decode are in decode_error, once per sink');

# balances from each sink against the deltas computed outside the project
for my $case ([ '"Transfer"', q{address, "from", "to", value} ], [ 'transfers', q{token, decode(substr(sender, 3), 'hex'), recipient, amount} ])
{
	my ($tbl, $cols) = @$case;
	q1(qq{
		TRUNCATE erc20_balances;
		INSERT INTO erc20_balances (token, account, balance)
		SELECT token, account, sum(d) FROM (
			SELECT t, f, -v FROM (SELECT $cols FROM $tbl) s(t, f, r, v)
			UNION ALL SELECT t, r, v FROM (SELECT $cols FROM $tbl) s(t, f, r, v)) x(token, account, d)
		GROUP BY token, account;
	});
	is(q1('SELECT count(*) FROM erc20_mismatch'), '0', "$tbl: the balances it sums to equal the expected deltas");
}
is(q1(qq{
	SELECT count(*) FROM "Transfer" t FULL JOIN
		(SELECT * FROM raw WHERE cardinality(topics) = 3 AND topics[1] = '\\x$topic0' AND length(data) = 32) r
		USING (ledger, event_index)
	WHERE r.ledger IS NULL OR t.ledger IS NULL OR t.address <> r.address OR t."from" <> substr(r.topics[2], 13)
	   OR t."to" <> substr(r.topics[3], 13) OR t.value <> uint256_to_numeric(r.data) OR t.tx_hash <> r.tx_hash}),
	'0', 'each row equals its log in the raw sink (uint256_to_numeric of the data, the topics\' addresses)');
is(q1(q{SELECT count(*) FROM transfers WHERE sender !~ '^0x[0-9a-f]{40}$'}), '0', 'addresses into text: 0x and 40 lower-case hex digits');
is(q1(q{SELECT count(*) FROM usdt}) . ' ' . q1(qq{SELECT count(*) FROM usdt u JOIN "Transfer" t USING (ledger, event_index) WHERE t.address = '$usdt' AND t.value = u.value}),
	join(' ', (q1(qq{SELECT count(*) FROM "Transfer" WHERE address = '$usdt'})) x 2),
	'a sink with an address holds exactly that contract\'s rows');

# ---------------------------------------------------------------------
# a contract sending garbage under Transfer's topic0: a log whose value is
# 31 bytes, one whose "from" topic has non-zero high bytes, next to a valid
# one: the valid one lands, the others go to decode_error naming the
# problem; with on_decode_error "fail" nothing of the ledger is applied
# and the error says why
# ---------------------------------------------------------------------
my $t0 = "0x$topic0";
my $word = sub { '"0x' . ('00' x 12) . ($_[0] x 20) . '"' };
my $log = sub {
	my ($from, $data, $i) = @_;
	return '{"address": "0x' . ('ab' x 20) . qq|", "topics": ["$t0", $from, | . $word->('02')
	  . qq|], "data": "0x$data", "transactionIndex": "0x0", "logIndex": "0x$i"}|;
};
my $garbage = '{"number": 1, "hash": "0x' . ('11' x 32) . '", "logs": ['
  . join(', ', $log->($word->('01'), ('00' x 31) . '07', 0), $log->($word->('01'), '00' x 30, 1),
	$log->('"0x' . ('ff' x 32) . '"', ('00' x 31) . '09', 2)) . ']}';
for my $mode ('skip', 'fail')
{
	q1(qq{
		CREATE TABLE garbage_$mode (ledger bigint, event_index int, "from" bytea, "to" bytea, value numeric);
		SELECT ledger_ingest.create_pipeline('garbage_$mode', 'inbox', '{"on_decode_error": "$mode", "max_retries": 1}');
		SELECT ledger_ingest.add_table_sink('garbage_$mode', 'garbage_$mode', '$transfer');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('garbage_$mode', '$garbage');
		SELECT ledger_ingest.start('garbage_$mode');
	});
}
ok(li_wait($node, 'garbage_skip', 1, 60), 'on_decode_error skip: the ledger was applied');
is(q1(q{SELECT string_agg(event_index || ':' || value, ',') FROM garbage_skip}), '0:7', 'only the valid log became a row');
is(q1(q{SELECT string_agg(event_index || ' ' || handler || ' ' || CASE WHEN error LIKE '%data too short%' THEN 'short'
		WHEN error LIKE '%non-zero high bytes in address%' THEN 'address' ELSE error END, ',' ORDER BY event_index)
	FROM ledger_ingest.decode_error WHERE pipeline = 'garbage_skip'}),
	'1 table sink garbage_skip short,2 table sink garbage_skip address', 'the two others are in decode_error, each with the decoder\'s reason');
is(li_wait_state($node, 'garbage_fail', 'failed', 60), 'failed', 'on_decode_error fail: the pipeline fails after its retries');
like(q1(q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'garbage_fail'}), qr/data too short|non-zero high bytes in address/,
	'its error is the decoder\'s');
is(q1(q{SELECT count(*) FROM garbage_fail}) . ' ' . q1(q{SELECT ledger FROM ledger_ingest.cursor WHERE pipeline = 'garbage_fail'}),
	'0 -1', 'nothing of the ledger was applied');

# ---------------------------------------------------------------------
# reorgs: a tracked table sink follows the winning branch (li_chain_sql's
# ledgers: one log each, topic 0x0101..01, data n * 10 + branch: an
# anonymous event with one indexed bytes32)
# ---------------------------------------------------------------------
li_chain_sql($node);
q1(q{
	CREATE TABLE vals (ledger bigint PRIMARY KEY, tag bytea, v numeric);
	SELECT ledger_ingest.create_pipeline('chain', 'inbox');
	SELECT ledger_ingest.add_table_sink('chain', 'vals', 'event V(bytes32 indexed tag, uint256 v) anonymous');
	SELECT ledger_ingest.track_table('chain', 'vals');
	-- a tracked raw sink next to it: each row journaled under its own ledger too
	CREATE TABLE raw_chain (ledger bigint, event_index int, data bytea, PRIMARY KEY (ledger, event_index));
	SELECT ledger_ingest.add_raw_sink('chain', 'raw_chain');
	SELECT ledger_ingest.track_table('chain', 'raw_chain');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'chain', doc(n) FROM generate_series(1, 10) n;
	SELECT ledger_ingest.start('chain');
});
ok(li_wait($node, 'chain', 10, 60), 'the chain pipeline applied ledgers 1 to 10');
q1(q{INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'chain', doc(n, 1, CASE WHEN n = 8 THEN 0 END) FROM generate_series(8, 11) n});
ok(li_wait($node, 'chain', 11, 60), 'the new branch from ledger 8 was applied');
is(q1(q{SELECT string_agg(ledger || ':' || v, ',' ORDER BY ledger) FROM vals WHERE tag = decode(repeat('01', 32), 'hex')}),
	join(',', map { "$_:" . ($_ * 10 + ($_ >= 8 ? 1 : 0)) } 1 .. 11),
	'after the reorg the tracked table sink holds the winning branch: ledgers 1-7 of branch 0, 8-11 of branch 1');
is(q1(q{SELECT string_agg(ledger || ':' || ('x' || encode(substr(data, 25, 8), 'hex'))::bit(64)::bigint, ',' ORDER BY ledger) FROM raw_chain}),
	join(',', map { "$_:" . ($_ * 10 + ($_ >= 8 ? 1 : 0)) } 1 .. 11),
	'and so does a tracked raw sink (ten ledgers were applied in one transaction: each row journaled under its own)');
is(q1(q{SELECT reorgs FROM ledger_ingest.status WHERE pipeline = 'chain'}), '1', 'one reorg');

# ---------------------------------------------------------------------
# c) what add_table_sink refuses
# ---------------------------------------------------------------------
q1(q{
	CREATE TABLE narrow (value integer);
	CREATE TABLE stray (value numeric, note text);
	CREATE TABLE ok_cols (amount numeric, ledger bigint);
	CREATE TABLE wrong_field (value numeric, ledger integer);
	SELECT ledger_ingest.create_pipeline('xlm', 'inbox', '{"chain": "stellar"}');
});
for my $case (
	[ q{'mainnet', 'narrow', E} , qr/table sink table narrow: column "value" \(integer\) cannot hold argument "value" \(uint256\)/ ],
	[ q{'mainnet', 'stray', E}, qr/table sink table stray: column "note" is neither an argument of event Transfer\(address,address,uint256\) nor a field of ledger_ingest.event/ ],
	[ q{'mainnet', 'ok_cols', E, columns => '{"amount": "amount"}'}, qr/columns maps column "amount" to "amount", which is neither an argument of event Transfer\(address,address,uint256\) nor a field of ledger_ingest.event/ ],
	[ q{'mainnet', 'ok_cols', E, columns => '{"wei": "value"}'}, qr/columns maps column "wei", which table ok_cols does not have/ ],
	[ q{'mainnet', 'wrong_field', E}, qr/table sink table wrong_field: column "ledger" is integer, not bigint as field ledger of ledger_ingest.event/ ],
	[ q{'xlm', 'ok_cols', E}, qr/pipeline "xlm" follows Stellar ledgers: a table sink decodes Solidity ABI events/ ])
{
	my ($args, $re) = @$case;
	(my $sql = "SELECT ledger_ingest.add_table_sink($args)") =~ s/\bE\b/'$transfer'/;
	my ($ret, $o, $e) = $node->psql('postgres', $sql);
	li_case('bad inputs', "add_table_sink refuses $args", $ret != 0 && $e =~ $re) or diag($e);
}

# ---------------------------------------------------------------------
# d) arrays and tuples into jsonb columns
# ---------------------------------------------------------------------
my $max = '115792089237316195423570985008687907853269984665640564039457584007913129639935';
my $data = cast('abi-encode', 'f(uint256,uint256[],(uint8,string))', '42', "[1,2,$max]", '(7,hi)');
my $batch = 'event Batch(address indexed who, uint256 n, uint256[] ids, (uint8 kind, string note) meta)';
my $bt0 = q1(qq{SELECT encode(ledger_ingest.event_topic('$batch'), 'hex')});
q1(qq{
	CREATE TABLE batches (ledger bigint, who bytea, n numeric, ids jsonb, meta jsonb, n_json jsonb);
	SELECT ledger_ingest.create_pipeline('batches', 'inbox');
	SELECT ledger_ingest.add_table_sink('batches', 'batches', '$batch', columns =>
		'{"ledger": "ledger", "who": "who", "n": "n", "ids": "ids", "meta": "meta", "n_json": "n"}');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('batches', jsonb_build_object('number', 1,
		'hash', '0x' || repeat('01', 32), 'logs', jsonb_build_array(jsonb_build_object('address', '0x' || repeat('bb', 20),
			'topics', jsonb_build_array('0x$bt0', '0x' || repeat('00', 12) || repeat('cc', 20)),
			'data', '$data', 'transactionIndex', 0, 'logIndex', 0))));
	SELECT ledger_ingest.start('batches');
});
ok(li_wait($node, 'batches', 1, 60), 'd: the Batch log was applied');
is(q1(qq{SELECT ids = '[1, 2, $max]'::jsonb AND meta = '{"kind": 7, "note": "hi"}'::jsonb
	AND n = 42 AND n_json = '42'::jsonb AND who = decode(repeat('cc', 20), 'hex') FROM batches}), 't',
	'd: the uint256[] and the (uint8, string) tuple as the JSON of the values cast encoded, next to numeric and bytea columns');

done_testing();
