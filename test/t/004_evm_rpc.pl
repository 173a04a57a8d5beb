# evm_rpc against a real node: anvil with OpenZeppelin's ERC-20, transfers
# sent with cast; every balance must equal the contract's balanceOf, also
# while following the head live.  Also: the worker holds no transaction
# while it waits on the network, and stop() interrupts a hanging request.
use strict;
use warnings;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $rpc = li_anvil();

my $token = chain('deploy', $rpc);
chain('mint', $rpc, $token);
chain('transfers', $rpc, $token, 40, 1);
my $head = chain('head', $rpc);

my $node = li_node('evm');
$node->safe_psql('postgres', slurp_file(li_root() . '/test/fixtures/erc20.sql'));
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('anvil', 'evm_rpc',
		'{"url":"$rpc","addresses":["$token"],
		  "topics":[["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"]],
		  "block_range":7,"poll_ms":200}');
	SELECT ledger_ingest.add_handler('anvil', 'erc20_on_transfer(ledger_ingest.event)');
	SELECT ledger_ingest.start('anvil');
});

# every account's balance in the table equals balanceOf on the contract
sub check_balances
{
	my ($what) = @_;
	my ($db, $chain) = li_balances($node, $rpc, $token);
	is_deeply($db, $chain, "$what: every balance equals balanceOf (" . scalar(keys %$chain) . ' accounts)');
	is(li_scalar($node, q{SELECT sum(balance) FROM erc20_balances}), '0',
		"$what: mints balance the zero address");
}

ok(li_wait($node, 'anvil', $head, 60), "caught up with the head ($head)");
check_balances('backfill');
is(li_scalar($node, q{SELECT head FROM ledger_ingest.status WHERE pipeline = 'anvil'}),
	$head, 'status.head is the node head');
is(li_scalar($node, q{SELECT events_applied FROM ledger_ingest.status WHERE pipeline = 'anvil'}),
	'50', '10 mints and 40 transfers applied');

# live: more transfers while the pipeline follows the head
chain('transfers', $rpc, $token, 25, 2);
my $head2 = chain('head', $rpc);
ok(li_wait($node, 'anvil', $head2, 60), "followed the head live to $head2");
check_balances('live');
is( li_scalar($node,
		q{SELECT count(*) FROM ledger_ingest.ledger l
		  JOIN ledger_ingest.ledger p ON p.pipeline = l.pipeline AND p.number = l.number - 1
		  WHERE l.pipeline = 'anvil' AND l.parent_hash <> p.hash}),
	'0', 'recorded headers are parent-hash linked');

# final blocks from their logs: below head - reorg_window a block with logs
# is built from its logs (blockHash, blockTimestamp) without
# eth_getBlockByNumber; the range's ends and the blocks near the head keep
# their headers.  Every event, ledger hash and ledger time equals what a
# pipeline that fetches every header (reorg_window 0) records; a node whose
# logs lack blockTimestamp gets the headers fetched as before.
my ($purl, $control) = li_proxy($rpc);
$node->safe_psql('postgres', q{
	CREATE TABLE seen (pipeline text, ledger bigint, ledger_hash bytea, ledger_time timestamptz,
		tx_index int, event_index int, address bytea);
	CREATE FUNCTION seen(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO seen VALUES (e.pipeline, e.ledger, e.ledger_hash, e.ledger_time, e.tx_index, e.event_index, e.address) $$;
});
my $head3 = chain('head', $rpc);
my $with_logs = li_scalar($node, q{SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'anvil' AND events > 0});
my %header_calls;
for my $c ([ 'headers', $rpc, 0, undef ], [ 'final', $purl, 5, undef ], [ 'untimed', $purl, 5, 'blockTimestamp' ])
{
	my ($p, $url, $window, $strip) = @$c;
	$control->('__clear');
	$control->('__reset_stats');
	$control->('__fault', { mode => 'logs_without', field => $strip, count => -1, method => 'eth_getLogs' }) if $strip;
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc',
			'{"url":"$url","addresses":["$token"],"block_range":25,"poll_ms":200,"reorg_window":$window}');
		SELECT ledger_ingest.add_handler('$p', 'seen(ledger_ingest.event)');
		SELECT ledger_ingest.start('$p');
	});
	ok(li_wait($node, $p, $head3, 60), "$p: caught up with the head ($head3)");
	$node->safe_psql('postgres', "SELECT ledger_ingest.stop('$p')");
	$header_calls{$p} = $control->('__stats')->{by_method}{eth_getBlockByNumber} // 0;
}
my $digest = sub {
	my ($p) = @_;
	return li_scalar($node, qq{SELECT count(*) || ' ' || md5(string_agg(concat_ws('/', ledger, ledger_hash, ledger_time, tx_index, event_index, address), ',' ORDER BY ledger, tx_index, event_index)) FROM seen WHERE pipeline = '$p'});
};
my ($dh, $df, $du) = map { $digest->($_) } qw(headers final untimed);
ok($dh =~ /^[1-9]/ && $df eq $dh && $du eq $dh,
	"final blocks from their logs: the same events, ledger hashes and times as with every header ($dh; $df; $du)");
ok($header_calls{final} < $with_logs / 2 && $header_calls{untimed} >= $with_logs,
	"final blocks from their logs: $header_calls{final} eth_getBlockByNumber calls for $with_logs blocks with logs (headers only at range ends and near the head); without blockTimestamp $header_calls{untimed}");

# a sparse final stretch: 600 empty blocks, one transfer, 300 more empty
# blocks.  With block_range 25 a fixed range needs one eth_getLogs per 25
# blocks; ranges over final blocks that come back nearly empty double (up
# to 10 x block_range), so a handful of requests cover them, and the one
# transfer is applied once
cast('rpc', 'anvil_mine', '600', '--rpc-url', $rpc);
chain('transfers', $rpc, $token, 1, 3);
cast('rpc', 'anvil_mine', '300', '--rpc-url', $rpc);
my $head4 = chain('head', $rpc);
$control->('__clear');
$control->('__reset_stats');
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('sparse', 'evm_rpc',
		'{"url":"$purl","addresses":["$token"],"block_range":25,"poll_ms":200,"reorg_window":5,"from_block":@{[ $head3 + 1 ]}}');
	SELECT ledger_ingest.add_handler('sparse', 'seen(ledger_ingest.event)');
	SELECT ledger_ingest.start('sparse');
});
ok(li_wait($node, 'sparse', $head4, 60), "sparse: caught up with the head ($head4)");
my $getlogs = $control->('__stats')->{by_method}{eth_getLogs} // 0;
my $sparse_seen = li_scalar($node, q{SELECT count(*) FROM seen WHERE pipeline = 'sparse'});
ok($getlogs < ($head4 - $head3) / 25 / 2 && $sparse_seen == 1,
	"sparse final blocks: " . ($head4 - $head3) . " blocks in $getlogs eth_getLogs requests (block_range 25), the one transfer applied once ($sparse_seen)");

# several final ranges in flight (max_concurrent_requests, libcurl's multi
# interface): every eth_getLogs delayed 100 ms, block_range 5 over the
# whole chain.  One at a time (max_concurrent_requests 1), four at a time,
# and four at a time with the node's range limit of 3 blocks and an HTTP
# 500 for one request in flight (sent again alone): the same events,
# ledger hashes and times, no error, and the proxy saw requests overlap.
my %in_flight;
$node->safe_psql('postgres', "SELECT ledger_ingest.stop('sparse')");
for my $c ([ 'serial', 1, [] ], [ 'concurrent', 4, [] ],
	[ 'concurrent_faults', 4, [ { mode => 'range_limit', max_range => 3, count => -1, method => 'eth_getLogs' },
								{ mode => 'http_status', status => 500, count => 1, method => 'eth_getLogs' } ] ])
{
	my ($p, $k, $faults) = @$c;
	$control->('__clear');
	$control->('__fault', $_) for @$faults;
	$control->('__fault', { mode => 'delay', ms => 100, count => -1, method => 'eth_getLogs' });
	$control->('__reset_stats');
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc',
			'{"url":"$purl","addresses":["$token"],"block_range":5,"poll_ms":200,"reorg_window":5,
			  "max_concurrent_requests":$k}');
		SELECT ledger_ingest.add_handler('$p', 'seen(ledger_ingest.event)');
		SELECT ledger_ingest.start('$p');
	});
	ok(li_wait($node, $p, $head4, 90), "$p: caught up with the head ($head4)");
	$node->safe_psql('postgres', "SELECT ledger_ingest.stop('$p')");
	my $st = $control->('__stats');
	$in_flight{$p} = $st->{max_in_flight};
	my $errors = li_scalar($node, "SELECT errors FROM ledger_ingest.status WHERE pipeline = '$p'");
	my $faulted = join(',', map { "$_=$st->{by_mode}{$_}" } sort keys %{ $st->{by_mode} });
	ok($errors == 0 && (@$faults == 0 || ($st->{by_mode}{range_limit} && $st->{by_mode}{http_status})),
		"$p: no error ($errors), faults applied: $faulted");
}
$control->('__clear');
my ($ds, $dc, $dcf) = map { $digest->($_) } qw(serial concurrent concurrent_faults);
ok($ds =~ /^[1-9]/ && $dc eq $ds && $dcf eq $ds,
	"concurrent final ranges: the same events, hashes and times as one at a time ($ds; $dc; $dcf)");
ok($in_flight{serial} == 1 && $in_flight{concurrent} >= 3,
	"eth_getLogs in flight at once: $in_flight{serial} with max_concurrent_requests 1, $in_flight{concurrent} with 4");

# the final floor moving while fetching: a pipeline with reorg_window 2
# (blocks become final two blocks behind the head) follows the chain
# while 15 transfers arrive one block each, so ranges are fetched while
# blocks cross the floor (some with headers, some from their logs, several
# ranges in flight once it falls behind); then a pipeline that fetches
# every header (reorg_window 0) over the same blocks: the same events,
# hashes and times.
$control->('__clear');
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('moving', 'evm_rpc',
		'{"url":"$purl","addresses":["$token"],"block_range":3,"poll_ms":50,"reorg_window":2,
		  "from_block":@{[ $head4 + 1 ]}}');
	SELECT ledger_ingest.add_handler('moving', 'seen(ledger_ingest.event)');
	SELECT ledger_ingest.start('moving');
});
chain('transfers', $rpc, $token, 15, 5);
my $head5 = chain('head', $rpc);
ok(li_wait($node, 'moving', $head5, 60), "moving floor: caught up with the head ($head5)");
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.stop('moving');
	SELECT ledger_ingest.create_pipeline('moving_headers', 'evm_rpc',
		'{"url":"$rpc","addresses":["$token"],"block_range":3,"poll_ms":50,"reorg_window":0,
		  "from_block":@{[ $head4 + 1 ]},"to_block":$head5}');
	SELECT ledger_ingest.add_handler('moving_headers', 'seen(ledger_ingest.event)');
	SELECT ledger_ingest.start('moving_headers');
});
ok(li_wait($node, 'moving_headers', $head5, 60), "moving floor: the every-header pipeline caught up ($head5)");
my ($dm, $dmh) = map { $digest->($_) } qw(moving moving_headers);
ok($dm =~ /^15 / && $dm eq $dmh,
	"moving floor: the same 15 events, hashes and times as with every header ($dm; $dmh)");

# a node that accepts the connection but never answers
my $hang = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
  or die "listen: $!";
my $hport = $hang->sockport;
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('hang', 'evm_rpc', '{"url":"http://127.0.0.1:$hport","timeout_ms":600000}');
	SELECT ledger_ingest.start('hang');
});
# fetching ahead (prefetch.c): a fetcher process runs ahead of the worker
# by at most fetch_ahead_ledgers ledgers past the committed cursor, plus
# the range it is in (block_range 2, and reorg_window 0 so that ranges do
# not grow); status.fetched shows its frontier.  A slow handler holds the
# worker back while the fetcher fills the queue; the worker is killed
# (kill -9) with fetched ledgers waiting, and the pipeline resumes from its
# cursor: every event is applied exactly once, the same as with every
# header fetched in the worker ('headers' above).
$node->safe_psql('postgres', q{
	CREATE FUNCTION seen_slowly(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS
		$$ BEGIN PERFORM pg_sleep(0.03); PERFORM seen(e); END $$;
});
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('ahead', 'evm_rpc',
		'{"url":"$rpc","addresses":["$token"],"block_range":2,"reorg_window":0,"poll_ms":200,
		  "fetch_ahead_ledgers":4,"batch_max_ledgers":1,"commit":"ledger","to_block":$head3}');
	SELECT ledger_ingest.add_handler('ahead', 'seen_slowly(ledger_ingest.event)');
	SELECT ledger_ingest.start('ahead');
});
my ($ahead_seen, $ahead_max, $killed) = (0, 0, 0);
for (1 .. 600)
{
	# the server restarts after the kill: a failed query is tried again
	my ($rc, $row) = $node->psql('postgres',
		q{SELECT coalesce(fetched, -1) || '|' || ledger FROM ledger_ingest.status WHERE pipeline = 'ahead'});
	my ($fetched, $ledger) = $rc == 0 ? split(/\|/, $row) : ();
	last if defined $ledger && $ledger >= $head3;
	if (defined $fetched && $fetched > $ledger && $ledger >= 0)
	{
		$ahead_seen++;
		$ahead_max = $fetched - $ledger if $fetched - $ledger > $ahead_max;
		if (!$killed && $ahead_seen >= 5)
		{
			my $wpid = li_worker_pid($node, 'ahead');
			kill 'KILL', $wpid if $wpid > 0;
			$killed = $wpid;
		}
	}
	usleep(50_000);
}
ok($ahead_seen > 0 && $ahead_max <= 4 + 2 + 2,
	"fetch ahead: status.fetched ran ahead of the cursor ($ahead_seen samples), at most $ahead_max ledgers (fetch_ahead_ledgers 4, block_range 2)");
$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
ok($killed && li_wait($node, 'ahead', $head3, 90), "fetch ahead: the worker killed with fetched ledgers waiting (pid $killed), then caught up to $head3");
is($digest->('ahead'), $dh, 'fetch ahead: every event applied exactly once, as with every header fetched in the worker');

# the fetcher process waits on the network; neither it nor the worker
# holds a transaction
my $row = '';
for (1 .. 100)
{
	$row = li_scalar($node, q{SELECT backend_type || '|' || query || '|' || coalesce(xact_start::text, 'none') || '|' || coalesce(backend_xid::text, 'none')
		FROM pg_stat_activity WHERE application_name = 'ledger_ingest fetcher hang'});
	last if $row =~ /eth_blockNumber/;
	usleep(100_000);
}
like($row, qr/^ledger_ingest fetcher\|.*eth_blockNumber\|none\|none$/, 'waiting on the network with no transaction open (the fetcher)');
is( li_scalar($node, q{SELECT coalesce(xact_start::text, 'none') || '|' || coalesce(backend_xid::text, 'none')
		FROM pg_stat_activity WHERE application_name = 'ledger_ingest hang'}),
	'none|none', 'the worker, waiting for its fetcher, holds no transaction');
my $hpid = li_worker_pid($node, 'hang');
my $fpid = li_scalar($node, q{SELECT pid FROM pg_stat_activity WHERE application_name = 'ledger_ingest fetcher hang'});
ok($hpid > 0 && $fpid > 0, 'the hanging pipeline has a worker and a fetcher');
$node->safe_psql('postgres', q{SELECT ledger_ingest.stop('hang')});
my $gone = 0;
for (1 .. 50)
{
	if (li_scalar($node, "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($hpid, $fpid)") eq '0') { $gone = 1; last; }
	usleep(100_000);
}
ok($gone, 'stop() ends a worker and its fetcher blocked in an HTTP request within 5 s');
is(li_scalar($node, q{SELECT state FROM ledger_ingest.status WHERE pipeline = 'hang'}),
	'stopped', 'the hanging pipeline is stopped');

# a node that is down: retried with backoff, shown in last_error
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('down', 'evm_rpc', '{"url":"http://alice:s3cret\@127.0.0.1:1"}');
	SELECT ledger_ingest.start('down');
});
my $err = '';
for (1 .. 100)
{
	$err = li_scalar($node, q{SELECT coalesce(last_error, '') FROM ledger_ingest.status WHERE pipeline = 'down'});
	last if $err ne '';
	usleep(100_000);
}
like($err, qr/^08006: JSON-RPC eth_blockNumber failed: .*(refused|connect)/i, 'a refused connection shows in last_error');
unlike($err, qr/s3cret|alice/, "credentials in the URL are not shown");
isnt(li_scalar($node, q{SELECT state FROM ledger_ingest.status WHERE pipeline = 'down'}), 'failed',
	'a source error does not fail the pipeline');

$node->stop;
done_testing();
