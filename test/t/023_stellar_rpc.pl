# The stellar_rpc source (src/source_stellar_rpc.c) against the replay
# server (test/stellar/replay_server.mjs: the five real pubnet ledgers, and
# the 406 contiguous real headers of 2024_ledgers.golden held without
# their transactions), through the fault proxy:
#  a) stellar_rpc pipelines over the five ledgers fill a raw sink identical
#     to that of an inbox pipeline fed the same ledgers as documents
#     (documents.mjs), and to getEvents' events (the oracle of 022); ledger
#     headers as the inbox stores them; to_ledger finishes the pipeline;
#  b) filters: contract_ids, topics (a symbol then "**") and type give
#     exactly the matching part of the unfiltered sink;
#  c) the 406 headers through windows of 1 and of 50 ledgers: every
#     fetched header stored with the golden hash; every link checked with
#     windows of 1; a block handler every 7 ledgers sees each multiple of 7
#     once with its golden hash; windows cut at batch_max_events (pages
#     of 3, events in contiguous ledgers: --header-events) give the same
#     sink as whole windows;
#  d) faults: 429 with Retry-After, HTTP 500, a hanging getLedgers
#     (timeout; no transaction open while it hangs), truncated JSON, a
#     JSON-RPC error, a getEvents page limit ("limit must not exceed N":
#     pages of N, by cursor): identical sinks, nothing lost or twice;
#     a dead first URL (failover);
#  e) what fails the pipeline, with an error that says why and nothing
#     applied from it: another network's passphrase, a cursor older than
#     the server's retention (hint: the inbox), a corrupt header (then,
#     resumed, the pipeline finishes), a forged ledger that does not chain,
#     a head far below the applied cursor (a network reset);
#  f) options refused at create_pipeline, naming the key.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $F = 'faults injected';
my $node = li_node('stellar_rpc');
sub q1 { return scalar $node->safe_psql('postgres', $_[0]) }

my $golden = li_data() . '/stellar/2024_ledgers.golden';
my $replay = li_stellar_replay('--headers', $golden);
my ($url, $ctl) = li_proxy($replay);
my $pubnet = 'Public Global Stellar Network ; September 2015';

li_stellar_documents($node, $replay);
my $copy = q{WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')};
q1(qq{
	CREATE TABLE golden (doc jsonb);
	COPY golden FROM '$golden' $copy;
	CREATE TABLE raw (pipeline text, ledger bigint, ledger_hash bytea, ledger_time timestamptz, tx_index int,
		tx_hash bytea, event_index int, address bytea, topics bytea[], data bytea,
		PRIMARY KEY (pipeline, ledger, tx_index, event_index));
	SELECT ledger_ingest.create_pipeline('inbox', 'inbox', '{"chain": "stellar"}');
	SELECT ledger_ingest.add_raw_sink('inbox', 'raw');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'inbox', doc FROM docs ORDER BY ledger;
	SELECT ledger_ingest.start('inbox');
});
my @ledgers = split /\n/, q1('SELECT ledger FROM docs ORDER BY ledger');
ok(li_wait($node, 'inbox', $ledgers[-1], 120), 'the inbox pipeline applied the five ledgers');

# a stellar_rpc pipeline $name over ledgers $from..$to with extra options
sub rpc_pipeline
{
	my ($name, $from, $to, $extra) = @_;
	$extra //= '';
	q1(qq{
		SELECT ledger_ingest.create_pipeline('$name', 'stellar_rpc',
			'{"url": "$url", "network_passphrase": "$pubnet", "from_ledger": $from, "to_ledger": $to,
			  "poll_ms": 100, "timeout_ms": 2000 $extra}');
		SELECT ledger_ingest.add_raw_sink('$name', 'raw');
		SELECT ledger_ingest.start('$name');
	});
}

# rows of pipeline $p's sink that differ from the inbox's (over the same
# ledgers, restricted by $where), both ways
sub sink_diff
{
	my ($p, $where) = @_;
	$where //= 'true';
	return q1(qq{
		WITH a AS (SELECT ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data
				   FROM raw WHERE pipeline = 'inbox' AND ledger IN (SELECT ledger FROM raw WHERE pipeline = '$p'
						UNION SELECT number FROM ledger_ingest.ledger WHERE pipeline = '$p') AND ($where)),
			 b AS (SELECT ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data
				   FROM raw WHERE pipeline = '$p')
		SELECT (SELECT count(*) FROM (TABLE a EXCEPT ALL TABLE b) x) + (SELECT count(*) FROM (TABLE b EXCEPT ALL TABLE a) y)});
}

sub state_of
{
	my ($p) = @_;
	return li_wait_state($node, $p, 'finished', 120) . ' '
	  . q1(qq{SELECT ledger FROM ledger_ingest.cursor WHERE pipeline = '$p'});
}

# ---------------------------------------------------------------------
# a) the five ledgers: 51000294, 57500008, and 63092988..63092996
# ---------------------------------------------------------------------
rpc_pipeline('r1', 51000294, 51000294);
rpc_pipeline('r2', 57500008, 57500008);
rpc_pipeline('r3', 63092988, 63092996);
is(state_of($_->[0]), "finished $_->[1]", "stellar_rpc pipeline $_->[0] finished at to_ledger $_->[1]")
  for ([ 'r1', 51000294 ], [ 'r2', 57500008 ], [ 'r3', 63092996 ]);
is(q1(q{SELECT count(*) FROM raw WHERE pipeline IN ('r1', 'r2', 'r3')}), '3373',
	'the stellar_rpc pipelines hold the 3,373 events');
is(sink_diff('r1') + sink_diff('r2') + sink_diff('r3'), 0,
	'their raw sinks equal the inbox pipeline\'s row for row');
is(q1(q{
	SELECT count(*) FROM rpc_events r
	FULL JOIN (SELECT raw.*, ledger_ingest.stellar_event_id(ledger, tx_index, event_index) AS id
			   FROM raw WHERE pipeline LIKE 'r_') s USING (id)
	WHERE s.id IS NULL OR r.id IS NULL
	   OR s.address IS DISTINCT FROM CASE WHEN r.contract_id = '' THEN NULL ELSE ledger_ingest.strkey_decode(r.contract_id) END
	   OR s.tx_hash <> decode(r.tx_hash, 'hex') OR s.data <> decode(r.value, 'base64')}),
	'0', 'and getEvents\' events: each at its id\'s position with its contract, transaction and value');
is(q1(q{
	SELECT count(*) FROM ledger_ingest.ledger l
	LEFT JOIN ledger_ingest.ledger i ON i.pipeline = 'inbox' AND i.number = l.number
	WHERE l.pipeline LIKE 'r_' AND (i.number IS NULL OR (i.hash, i.parent_hash, i.time) <> (l.hash, l.parent_hash, l.time))}),
	'0', 'each fetched ledger stored with the header\'s hash, previous hash and close time, as the inbox stores it');
is(q1(q{SELECT string_agg(number::text, ',' ORDER BY number) FROM ledger_ingest.ledger WHERE pipeline = 'r3'}),
	'63092988,63092990,63092996', 'r3 fetched the window\'s ends and its ledgers with events, no others');

# ---------------------------------------------------------------------
# b) filters
# ---------------------------------------------------------------------
my $top = q1(q{SELECT encode(address, 'hex') FROM raw WHERE pipeline = 'inbox' AND ledger >= 63092988
	GROUP BY address ORDER BY count(*) DESC, address LIMIT 1});
my $top_c = q1(qq{SELECT ledger_ingest.strkey_encode('C', '\\x$top')});
my $transfer = q1(q{SELECT encode(ledger_ingest.scval_symbol('transfer'), 'base64')});
rpc_pipeline('by_contract', 63092988, 63092996, qq{, "contract_ids": ["$top_c"], "type": "contract"});
rpc_pipeline('by_topic', 63092988, 63092996, qq{, "topics": [["$transfer", "**"]]});
is(state_of('by_contract'), 'finished 63092996', 'a pipeline filtered by contract_ids finished');
is(state_of('by_topic'), 'finished 63092996', 'a pipeline filtered by topics finished');
ok(q1(q{SELECT count(*) FROM raw WHERE pipeline = 'by_contract'}) > 0, 'the contract filter matched events');
is(sink_diff('by_contract', "address = '\\x$top'"), 0,
	'contract_ids: exactly that contract\'s events of the inbox pipeline');
ok(q1(q{SELECT count(*) FROM raw WHERE pipeline = 'by_topic'}) > 0, 'the topic filter matched events');
is(sink_diff('by_topic', q{topics[1] = ledger_ingest.scval_symbol('transfer')}), 0,
	'topics [transfer, **]: exactly the transfer events of the inbox pipeline');

# ---------------------------------------------------------------------
# c) the 406 headers, in windows of 1 and of 50 ledgers
# ---------------------------------------------------------------------
my ($g0, $g1) = split /\|/, q1(q{SELECT min((doc->>'sequence')::bigint), max((doc->>'sequence')::bigint) FROM golden});
is($g1 - $g0 + 1, 406, '406 golden headers');
rpc_pipeline('g1', $g0, $g1, q{, "ledger_range": 1});
rpc_pipeline('g50', $g0, $g1, q{, "ledger_range": 50});
is(state_of('g1'), "finished $g1", 'windows of one ledger: finished, every link checked');
is(state_of('g50'), "finished $g1", 'windows of 50 ledgers: finished');
my $golden_diff = sub {
	my ($p) = @_;
	return q1(qq{
		SELECT count(*) FROM ledger_ingest.ledger l LEFT JOIN golden g ON (g.doc->>'sequence')::bigint = l.number
		WHERE l.pipeline = '$p' AND (g.doc IS NULL OR encode(l.hash, 'hex') <> g.doc->>'ledger_hash'
			OR encode(l.parent_hash, 'hex') <> g.doc->>'previous_ledger_hash')});
};
is(q1(q{SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'g1'}) . ' ' . $golden_diff->('g1'),
	'406 0', 'g1 stored the 406 headers, each with the golden hash and previous hash');
is(q1(q{SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'g50'}) . ' ' . $golden_diff->('g50'),
	'18 0', 'g50 stored the two ends of each of its 9 windows, each the golden hash');

# a block handler every 7 ledgers: those ledgers are fetched too, each
# handled once with its golden hash
q1(qq{
	CREATE TABLE every7 (number bigint PRIMARY KEY, hash bytea, events int);
	CREATE FUNCTION on_every7(b ledger_ingest.ledger) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO every7 VALUES (b.number, b.hash, b.events) \$\$;
	SELECT ledger_ingest.create_pipeline('g7', 'stellar_rpc',
		'{"url": "$url", "network_passphrase": "$pubnet", "from_ledger": $g0, "to_ledger": $g1, "ledger_range": 50, "poll_ms": 100}');
	SELECT ledger_ingest.add_block_handler('g7', 'on_every7(ledger_ingest.ledger)', every => 7);
	SELECT ledger_ingest.start('g7');
});
is(state_of('g7'), "finished $g1", 'a pipeline with a block handler every 7 ledgers finished');
is(q1(qq{SELECT count(*) FROM generate_series($g0, $g1) n WHERE n % 7 = 0}) . ' 0',
	q1(q{SELECT count(*) FROM every7}) . ' ' . q1(qq{
		SELECT count(*) FROM generate_series($g0, $g1) n
		FULL JOIN every7 e ON e.number = n
		LEFT JOIN golden g ON (g.doc->>'sequence')::bigint = e.number
		WHERE (n % 7 = 0) IS DISTINCT FROM (e.number IS NOT NULL)
		   OR (e.number IS NOT NULL AND (encode(e.hash, 'hex') IS DISTINCT FROM g.doc->>'ledger_hash' OR e.events <> 0))}),
	'the block handler saw each multiple of 7 once, with the golden hash');

# windows cut at batch_max_events: a second replay server gives the golden
# ledgers events (--header-events 7: the first L % 7 events of a real
# ledger, re-numbered as L's, so that runs of contiguous ledgers have
# events); with pages of 3 (the server's limit) and batch_max_events 10 a
# window ends at the last whole ledger once 10 events are held; the sink
# equals that of a pipeline reading each window in one page
my $replay2 = li_stellar_replay('--headers', $golden, '--header-events', '7');
my ($url2, $ctl2) = li_proxy($replay2);
for my $case ([ 'ge_ref', $replay2, '' ], [ 'ge_cut', $url2, ', "batch_max_events": 10' ])
{
	my ($p, $u, $extra) = @$case;
	$ctl2->('__fault', { mode => 'rpc_error', code => -32602, message => 'limit must not exceed 3', count => 1, method => 'getEvents' })
	  if $p eq 'ge_cut';
	q1(qq{
		SELECT ledger_ingest.create_pipeline('$p', 'stellar_rpc',
			'{"url": "$u", "network_passphrase": "$pubnet", "from_ledger": $g0, "to_ledger": $g1, "ledger_range": 50, "poll_ms": 100 $extra}');
		SELECT ledger_ingest.add_raw_sink('$p', 'raw');
		SELECT ledger_ingest.start('$p');
	});
	is(state_of($p), "finished $g1", "$p finished");
}
my $windows = grep { $_->{method} eq 'getEvents' && ($_->{params} // '') =~ /startLedger/ } @{ $ctl2->('__stats')->{log} };
my $ge = q1(q{SELECT count(*) FROM raw WHERE pipeline = 'ge_ref'});
ok($ge > 1000 && $windows >= 10, "windows cut at batch_max_events: $windows windows among the last 200 calls, $ge events");
is(q1(q{
	WITH a AS (SELECT ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data FROM raw WHERE pipeline = 'ge_ref'),
		 b AS (SELECT ledger, ledger_hash, ledger_time, tx_index, tx_hash, event_index, address, topics, data FROM raw WHERE pipeline = 'ge_cut')
	SELECT (SELECT count(*) FROM (TABLE a EXCEPT ALL TABLE b) x) + (SELECT count(*) FROM (TABLE b EXCEPT ALL TABLE a) y)}),
	'0', 'the sink of the cut windows equals the sink of whole windows: every event once');

# ---------------------------------------------------------------------
# d) faults: the same sink as without them
# ---------------------------------------------------------------------
my @faults = (
	[ '429 with Retry-After on getEvents', { mode => 'http_status', status => 429, retry_after => '1', count => 2, method => 'getEvents' } ],
	[ 'HTTP 500 on getHealth', { mode => 'http_status', status => 500, count => 2, method => 'getHealth' } ],
	[ 'truncated JSON from getLedgers', { mode => 'truncated', count => 2, method => 'getLedgers' } ],
	[ 'a JSON-RPC error from getEvents', { mode => 'rpc_error', code => -32603, message => 'internal error', count => 2, method => 'getEvents' } ],
	[ 'a null getNetwork result', { mode => 'null_result', count => 1, method => 'getNetwork' } ],
);
my $n = 0;
for my $f (@faults)
{
	my ($what, $spec) = @$f;
	my $p = 'f' . $n++;
	$ctl->('__clear');
	$ctl->('__fault', $spec);
	rpc_pipeline($p, 63092988, 63092996);
	my $st = state_of($p);
	my $left = $ctl->('__faults');
	li_case($F, "stellar_rpc, $what: retried, then every event applied once",
		$st eq 'finished 63092996' && sink_diff($p) == 0
		  && q1(qq{SELECT count(*) FROM raw WHERE pipeline = '$p'}) == q1(q{SELECT count(*) FROM raw WHERE pipeline = 'r3'})
		  && scalar(@$left) == 0);
}

# a getEvents page limit: the server says "limit must not exceed 100"
$ctl->('__clear');
$ctl->('__reset_stats');
$ctl->('__fault', { mode => 'rpc_error', code => -32602, message => 'limit must not exceed 100', count => 1, method => 'getEvents' });
rpc_pipeline('pages', 63092988, 63092996);
my $st = state_of('pages');
my $calls = $ctl->('__stats')->{by_method}{getEvents} // 0;
my $r3 = q1(q{SELECT count(*) FROM raw WHERE pipeline = 'r3'});
li_case($F, "stellar_rpc, a getEvents page limit of 100: pages of 100 by cursor ($calls calls for $r3 events), every event once",
	$st eq 'finished 63092996' && sink_diff('pages') == 0 && $calls >= int($r3 / 100) + 1
	  && q1(q{SELECT count(*) FROM raw WHERE pipeline = 'pages'}) == $r3)
  or diag("state $st, diff " . sink_diff('pages') . ', rows ' . q1(q{SELECT count(*) FROM raw WHERE pipeline = 'pages'})
	  . ', log ' . join(' ', map { "$_->{method}:" . substr($_->{params} // '', 0, 160) } @{ $ctl->('__stats')->{log} }));

# a getLedgers that hangs: timeout_ms, retried; no transaction open meanwhile
$ctl->('__clear');
$ctl->('__fault', { mode => 'hang', count => 1, method => 'getLedgers' });
rpc_pipeline('hang', 63092988, 63092996);
# the worker while it waits: its activity says getLedgers, no transaction open
my $in_xact = '';
for (1 .. 50)
{
	$in_xact = q1(q{SELECT CASE WHEN xact_start IS NULL AND backend_xid IS NULL THEN 'none' ELSE 'open' END
		FROM pg_stat_activity WHERE application_name = 'ledger_ingest hang' AND query LIKE '%: getLedgers'});
	last if $in_xact ne '';
	usleep(100_000);
}
$st = state_of('hang');
li_case($F, 'stellar_rpc, a getLedgers that never answers: no transaction open while waiting, timed out, then every event applied once',
	$in_xact eq 'none' && $st eq 'finished 63092996' && sink_diff('hang') == 0
	  && q1(q{SELECT count(*) FROM raw WHERE pipeline = 'hang'}) == $r3);
$ctl->('__clear');

# failover: the first of two URLs refuses connections
q1(qq{SELECT ledger_ingest.create_pipeline('failover', 'stellar_rpc',
	'{"urls": ["http://127.0.0.1:1", "$url"], "network_passphrase": "$pubnet", "from_ledger": 63092988,
	  "to_ledger": 63092996, "poll_ms": 100}');
	SELECT ledger_ingest.add_raw_sink('failover', 'raw');
	SELECT ledger_ingest.start('failover')});
li_case($F, 'stellar_rpc, urls whose first endpoint refuses connections: failed over, every event applied once',
	state_of('failover') eq 'finished 63092996' && sink_diff('failover') == 0
	  && q1(q{SELECT count(*) FROM raw WHERE pipeline = 'failover'}) == $r3);

# ---------------------------------------------------------------------
# e) what fails the pipeline
# ---------------------------------------------------------------------
sub failed_with
{
	my ($p, $re) = @_;
	my $st = li_wait_state($node, $p, 'failed', 60);
	my $err = q1(qq{SELECT last_error FROM ledger_ingest.status WHERE pipeline = '$p'});
	note("$p: $st: $err");
	return $st eq 'failed' && $err =~ $re;
}

q1(qq{SELECT ledger_ingest.create_pipeline('testnet', 'stellar_rpc',
	'{"url": "$url", "network_passphrase": "Test SDF Network ; September 2015", "from_ledger": 63092988}');
	SELECT ledger_ingest.add_raw_sink('testnet', 'raw');
	SELECT ledger_ingest.start('testnet')});
li_case($F, 'stellar_rpc, a server of another network: failed, naming both passphrases, nothing applied',
	failed_with('testnet', qr/is on network "Public Global Stellar Network ; September 2015", not the pipeline's network_passphrase "Test SDF Network ; September 2015"/)
	  && q1(q{SELECT count(*) FROM raw WHERE pipeline = 'testnet'}) eq '0');

rpc_pipeline('pruned', 50000000, 63092996);
li_case($F, 'stellar_rpc, a from_ledger older than the server\'s retention: failed, with a hint to backfill through the inbox',
	failed_with('pruned', qr/Stellar ledger 50000000 is older than the oldest ledger the server holds \(51000294\); ingest ledgers 50000000 to 51000293 through an inbox pipeline/)
	  && q1(q{SELECT count(*) FROM raw WHERE pipeline = 'pruned'}) eq '0');

$ctl->('__fault', { mode => 'stellar_header', count => 1, method => 'getLedgers' });
rpc_pipeline('corrupt', $g0, $g0 + 20, q{, "ledger_range": 5});
my $ok = failed_with('corrupt', qr/Stellar ledger $g0 from the server is forged or corrupt: /)
  && q1(q{SELECT ledger FROM ledger_ingest.cursor WHERE pipeline = 'corrupt'}) == $g0 - 1;
q1(q{SELECT ledger_ingest.start('corrupt')});
$ok &&= state_of('corrupt') eq 'finished ' . ($g0 + 20) && $golden_diff->('corrupt') == 0;
li_case($F, 'stellar_rpc, a header that does not hash to its ledger\'s hash: failed with nothing applied; resumed, it finishes with the real headers', $ok);

$ctl->('__fault', { mode => 'stellar_header', forge => JSON::PP::true(), count => 1, method => 'getLedgers' });
rpc_pipeline('forged', $g0, $g0 + 20, q{, "ledger_range": 1});
my $next = $g0 + 1;
li_case($F, 'stellar_rpc, a forged ledger (consistent in itself) does not chain: the next ledger fails the pipeline, naming both',
	failed_with('forged', qr/Stellar ledger $next does not chain to ledger $g0: its previousLedgerHash \w{64} is not that ledger's hash \w{64}; the Stellar network does not reorganize/)
	  && q1(q{SELECT ledger FROM ledger_ingest.cursor WHERE pipeline = 'forged'}) == $g0);
$ctl->('__clear');

# a network reset: the server's head far below an applied cursor
rpc_pipeline('reset', 63092988, 63092996 + 1000000);
ok(li_wait($node, 'reset', 63092996, 60), 'a pipeline following the head reached 63092996');
$ctl->('__fault', { mode => 'head_back', by => 63000000, count => -1, method => 'getHealth' });
li_case($F, 'stellar_rpc, a server whose latest ledger is far below the applied cursor (a network reset): failed, saying so',
	failed_with('reset', qr/the Stellar RPC server's latest ledger 92996 is more than 1000 ledgers below the cursor \(ledger 63092996\): the network was reset/)
	  && q1(q{SELECT ledger FROM ledger_ingest.cursor WHERE pipeline = 'reset'}) == 63092996);
$ctl->('__clear');

# ---------------------------------------------------------------------
# f) options refused at create_pipeline
# ---------------------------------------------------------------------
my $B = 'bad inputs';
for my $case (
	[ q{{"url": "http://x", "from_ledger": 5}}, qr/option "network_passphrase" is required for source "stellar_rpc"/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet"}}, qr/option "from_ledger" is required for source "stellar_rpc"/ ],
	[ qq{{"network_passphrase": "$pubnet", "from_ledger": 5}}, qr/option "url" or "urls" is required for source "stellar_rpc"/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "contract_ids": ["GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"]}}, qr/option "contract_ids" element 1 is a 'G' strkey, not a contract id \('C'\)/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "contract_ids": ["CAAAA"]}}, qr/option "contract_ids" element 1 is not a strkey: / ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "topics": [["**", "*"]]}}, qr/option "topics" topic filter 1: "\*\*" is allowed only as the last segment/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "topics": [["AAAADw=="]]}}, qr/option "topics" topic filter 1, segment 1: is not one ScVal: / ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "type": "ledger"}}, qr/option "type" must be "contract", "system" or "diagnostic", got "ledger"/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "chain": "evm"}}, qr/option "chain" is "evm": source "stellar_rpc" reads only Stellar ledgers/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "from_block": 5}}, qr/unknown option "from_block" for source "stellar_rpc"/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 9, "to_ledger": 5}}, qr/option "to_ledger" \(5\) is below "from_ledger" \(9\)/ ],
	[ qq{{"url": "http://x", "network_passphrase": "$pubnet", "from_ledger": 5, "ledger_range": 10001}}, qr/option "ledger_range" must be between 1 and 10000, got 10001/ ])
{
	my ($opts, $re) = @$case;
	my ($ret, $o, $e) = $node->psql('postgres', "SELECT ledger_ingest.create_pipeline('bad', 'stellar_rpc', '$opts')");
	li_case($B, "create_pipeline stellar_rpc refuses $opts", $ret != 0 && $e =~ $re) or diag($e);
}

done_testing();
