# evm_rpc benchmark: backfilling a dense chain from a node, next to the
# inbox path on the same blocks.
#
#   make bench        (test/bench/bench.sh runs this)
#
# A local anvil with an emitter contract: each call emits PER ERC-20
# Transfer logs (from address i to address i + 1, value i; its runtime code
# is assembled below, 68 bytes, so no compiler is needed).  BLOCKS blocks
# of PER logs each, then 200 empty blocks on top, so that every dense block
# is below the final floor (head - reorg_window, 128 by default): the
# backfill of history a new pipeline starts with.  Before those 200, a
# sparse stretch of SPARSE_BLOCKS blocks with one log in every 20th,
# applied by its own pipeline (blocks/s and requests).  An evm_rpc pipeline
# (to_block = the last dense block, a trivial per-event SQL handler, the
# default options otherwise) applies them through test/fault_proxy.js
# adding DELAYS milliseconds to every request (0, 20 and 100 by default: a
# local node, a hosted provider nearby, one far away).  For each delay:
# events/s and blocks/s from start() to the last block applied, the HTTP
# requests the pipeline made, the median of RUNS runs; next to the inbox
# path applying the same blocks as documents (fetched once from the node),
# timed the same way, and the time of one eth_getLogs over the dense blocks
# made by this script, to the last byte of the answer (the node's share).
# Two designs of fetching side by side: the fetcher process (the default)
# and fetching in the worker between its transactions
# (fetch_ahead_ledgers 0); each with the default block_range (1,000: the
# dense blocks in one eth_getLogs, so nothing is left to fetch while
# applying) and with RPC_CAPPED_RANGE blocks (100: 10,000 logs per request,
# the cap of hosted providers; with the fetcher also one request at a
# time, max_concurrent_requests 1).  Each run is checked: BLOCKS * PER rows.
# Prints a markdown table and writes the raw numbers as JSON to $BENCH_OUT.
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use LiTest;

my $runs = $ENV{RUNS} // 5;
my $blocks = $ENV{RPC_BLOCKS} // 1000;
my $per = $ENV{RPC_EVENTS_PER_BLOCK} // 100;
my @delays = split /,/, ($ENV{RPC_DELAYS} // '0,20,100');
my $sparse_blocks = $ENV{RPC_SPARSE_BLOCKS} // 10000;
my $capped = $ENV{RPC_CAPPED_RANGE} // 100;
my $out = $ENV{BENCH_OUT} // "$PostgreSQL::Test::Utils::tmp_check/bench-rpc.json";
my $events = $blocks * $per;

# --- the chain ---------------------------------------------------------------
my $rpc = li_anvil();
my $http = HTTP::Tiny->new(timeout => 120);
my $call_id = 0;
sub call
{
	my ($method, @params) = @_;
	my $r = $http->post($rpc, { headers => { 'content-type' => 'application/json' },
		content => encode_json({ jsonrpc => '2.0', id => ++$call_id, method => $method, params => \@params }) });
	die "$method: HTTP $r->{status}" unless $r->{success};
	my $doc = decode_json($r->{content});
	die "$method: " . encode_json($doc->{error}) if $doc->{error};
	return $doc->{result};
}

# runtime: n = calldata[0:32]; for (i = 0; i < n; i++) { mstore(0, i);
# log3(0, 32, Transfer, i, i + 1) }  (offsets: loop 0x05, end 0x42)
my $transfer = 'ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
my $runtime = '6000356000' . '5b' . '8181' . '1015' . '604257' . '80600052' . '8060010181'
  . "7f$transfer" . '60206000a3' . '600101' . '600556' . '5b00';
die 'runtime is ' . length($runtime) / 2 . ' bytes, not 68' unless length($runtime) == 136;
# constructor: copy the runtime (at offset 11) to memory and return it
my $init = sprintf('60%02x80600b6000396000f3', length($runtime) / 2) . $runtime;
my $from = call('eth_accounts')->[0];
my $deploy = call('eth_sendTransaction', { from => $from, data => "0x$init", gas => '0x100000' });
my $emitter = call('eth_getTransactionReceipt', $deploy)->{contractAddress};
my $first = hex(call('eth_blockNumber')) + 1;
for my $b (1 .. $blocks)
{
	call('eth_sendTransaction', { from => $from, to => $emitter, gas => '0x1000000',
		data => sprintf('0x%064x', $per) });
}
my $last = hex(call('eth_blockNumber'));
die "expected $blocks blocks from $first, the head is $last" unless $last == $first + $blocks - 1;
# the sparse stretch: SPARSE_BLOCKS blocks, one log in every 20th
my $sparse_first = $last + 1;
for my $k (1 .. $sparse_blocks / 20)
{
	call('anvil_mine', '0x13');
	call('eth_sendTransaction', { from => $from, to => $emitter, gas => '0x1000000',
		data => sprintf('0x%064x', 1) });
}
my $sparse_last = hex(call('eth_blockNumber'));
my $sparse_events = $sparse_blocks / 20;
call('anvil_mine', '0xc8');    # 200 empty blocks: the dense and sparse ones are final

# the same blocks as inbox documents: header fields plus their logs
my %logs;
for (my $from_b = $first; $from_b <= $last; $from_b += 100)
{
	my $to_b = $from_b + 99 < $last ? $from_b + 99 : $last;
	for my $log (@{ call('eth_getLogs', { address => $emitter,
			fromBlock => sprintf('0x%x', $from_b), toBlock => sprintf('0x%x', $to_b) }) })
	{
		push @{ $logs{ hex($log->{blockNumber}) } }, $log;
	}
}
my $n_logs = 0;
$n_logs += scalar @{ $logs{$_} } for keys %logs;
die "the node holds $n_logs logs, expected $events" unless $n_logs == $events;

my $node = PostgreSQL::Test::Cluster->new('bench_rpc');
$node->init;
$node->append_conf('postgresql.conf', <<'CONF');
shared_preload_libraries = 'ledger_ingest'
max_worker_processes = 16
shared_buffers = '256MB'
CONF
$node->start;
sub sql { return scalar $node->safe_psql('postgres', $_[0]); }
sql(q{
	CREATE EXTENSION ledger_ingest;
	CREATE TABLE t_rows (ledger bigint, tx_index int, event_index int, address bytea, t0 bytea, t1 bytea, t2 bytea, data bytea);
	CREATE FUNCTION h_trivial(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$
		INSERT INTO t_rows VALUES (e.ledger, e.tx_index, e.event_index, e.address, e.topics[1], e.topics[2], e.topics[3], e.data) $$;
	CREATE TABLE doc_src (ledger bigint, doc jsonb);
});
my $tmp = $PostgreSQL::Test::Utils::tmp_check;
open(my $fh, '>', "$tmp/docs.tsv") or die $!;
for my $b ($first .. $last)
{
	my $hdr = call('eth_getBlockByNumber', sprintf('0x%x', $b), JSON::PP::false);
	my %doc = (map({ $_ => $hdr->{$_} } qw(number hash parentHash timestamp)), logs => $logs{$b});
	my $json = JSON::PP->new->canonical->encode(\%doc);
	$json =~ s/\\/\\\\/g;
	print $fh "$b\t$json\n";
}
close $fh;
sql("COPY doc_src FROM '$tmp/docs.tsv'");

my ($purl, $control) = li_proxy($rpc);
sub median { my @s = sort { $a <=> $b } @_; return $s[int($#s / 2)]; }

# one run of a fresh pipeline: seconds from start() to ledger $last applied
my $seq = 0;
sub run
{
	my ($source, $opts, $to, $expect) = @_;
	$to //= $last;
	$expect //= $events;
	my $p = "p" . ++$seq;
	sql('TRUNCATE t_rows');
	sql("SELECT ledger_ingest.create_pipeline('$p', '$source', '$opts')");
	sql("SELECT ledger_ingest.add_handler('$p', 'h_trivial(ledger_ingest.event)')");
	sql("INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$p', doc FROM doc_src ORDER BY ledger")
	  if $source eq 'inbox';
	sql('CHECKPOINT');
	my $t0 = time;
	sql("SELECT ledger_ingest.start('$p')");
	my $done = sql("SELECT ledger_ingest.wait_for('$p', $to, '3600s')");
	my $secs = time - $t0;
	die "$p did not reach ledger $to" unless $done eq 't';
	my $rows = sql('SELECT count(*) FROM t_rows');
	die "$p: $rows rows, expected $expect" unless $rows == $expect;
	sql("SELECT ledger_ingest.drop_pipeline('$p')");
	return $secs;
}

my %r;
for my $run (1 .. $runs)
{
	# the node's own share: one eth_getLogs over the dense blocks (the
	# request the pipeline makes, with no delay), timed to the last byte of
	# the answer, which is not decoded
	my $t0 = time;
	my $ans = $http->post($rpc, { headers => { 'content-type' => 'application/json' },
		content => encode_json({ jsonrpc => '2.0', id => ++$call_id, method => 'eth_getLogs',
			params => [ { address => $emitter, fromBlock => sprintf('0x%x', $first),
				toBlock => sprintf('0x%x', $last) } ] }) });
	die "eth_getLogs: HTTP $ans->{status}" unless $ans->{success};
	push @{ $r{node_getlogs_bytes} }, length($ans->{content});
	push @{ $r{node_getlogs_s} }, time - $t0;
	push @{ $r{inbox} }, $events / run('inbox', '{}');
	for my $d (@delays)
	{
		$control->('__clear');
		$control->('__fault', { mode => 'delay', ms => $d, count => -1 }) if $d > 0;
		$control->('__reset_stats');
		my $secs = run('evm_rpc', qq({"url": "$purl", "addresses": ["$emitter"], "from_block": $first, "to_block": $last}));
		push @{ $r{"rpc_$d"} }, $events / $secs;
		push @{ $r{"requests_$d"} }, $control->('__stats')->{requests};
		push @{ $r{"calls_$d"} }, $control->('__stats')->{calls};
		# the other design: fetching in the worker, between its transactions
		$control->('__reset_stats');
		$secs = run('evm_rpc', qq({"url": "$purl", "addresses": ["$emitter"], "from_block": $first, "to_block": $last, "fetch_ahead_ledgers": 0}));
		push @{ $r{"inline_$d"} }, $events / $secs;
		push @{ $r{"inline_requests_$d"} }, $control->('__stats')->{requests};
		# the dense blocks in ranges of $capped blocks (10,000 logs: the cap
		# of hosted providers' eth_getLogs), so that there is something to
		# fetch while applying: with the fetcher (max_concurrent_requests 4,
		# the default, and 1), and in the worker
		for my $design ([ 'capped', '' ], [ 'capped_serial', ', "max_concurrent_requests": 1' ],
			[ 'capped_inline', ', "fetch_ahead_ledgers": 0' ])
		{
			my ($key, $extra) = @$design;
			$control->('__reset_stats');
			$secs = run('evm_rpc', qq({"url": "$purl", "addresses": ["$emitter"], "from_block": $first, "to_block": $last, "block_range": $capped$extra}));
			push @{ $r{"${key}_$d"} }, $events / $secs;
			push @{ $r{"${key}_requests_$d"} }, $control->('__stats')->{requests};
			push @{ $r{"${key}_calls_$d"} }, $control->('__stats')->{calls};
			push @{ $r{"${key}_in_flight_$d"} }, $control->('__stats')->{max_in_flight};
		}
		$control->('__reset_stats');
		$secs = run('evm_rpc', qq({"url": "$purl", "addresses": ["$emitter"], "from_block": $sparse_first, "to_block": $sparse_last}),
			$sparse_last, $sparse_events);
		push @{ $r{"sparse_$d"} }, ($sparse_last - $sparse_first + 1) / $secs;
		push @{ $r{"sparse_requests_$d"} }, $control->('__stats')->{requests};
		push @{ $r{"sparse_calls_$d"} }, $control->('__stats')->{calls};
	}
}

my %m = map { $_ => median(@{ $r{$_} }) } keys %r;
my $md = "| round trip added | evm_rpc events/s | blocks/s | HTTP requests (JSON-RPC calls) | vs inbox path | fetching in the worker (fetch_ahead_ledgers 0): events/s | HTTP requests |\n|---|---|---|---|---|---|---|\n";
$md .= sprintf "| %d ms | %d | %d | %d (%d) | %.2f | %d | %d |\n", $_, $m{"rpc_$_"}, $m{"rpc_$_"} / $per, $m{"requests_$_"}, $m{"calls_$_"},
  $m{"rpc_$_"} / $m{inbox}, $m{"inline_$_"}, $m{"inline_requests_$_"} for @delays;
$md .= sprintf "\n| the same, block_range %d (%d logs per eth_getLogs) | with the fetcher, 4 requests in flight: events/s | vs inbox path | HTTP requests (calls) | most in flight | one request at a time: events/s | vs inbox path | fetching in the worker: events/s | HTTP requests |\n|---|---|---|---|---|---|---|---|---|\n", $capped, $capped * $per;
$md .= sprintf "| %d ms | %d | %.2f | %d (%d) | %d | %d | %.2f | %d | %d |\n", $_, $m{"capped_$_"}, $m{"capped_$_"} / $m{inbox},
  $m{"capped_requests_$_"}, $m{"capped_calls_$_"}, $m{"capped_in_flight_$_"}, $m{"capped_serial_$_"}, $m{"capped_serial_$_"} / $m{inbox},
  $m{"capped_inline_$_"}, $m{"capped_inline_requests_$_"} for @delays;
$md .= sprintf "\ninbox path, the same %d blocks as documents: %d events/s\n", $blocks, $m{inbox};
$md .= sprintf "\n| sparse: %d blocks, a log in every 20th | blocks/s | HTTP requests (calls) |\n|---|---|---|\n", $sparse_blocks;
$md .= sprintf "| %d ms | %d | %d (%d) |\n", $_, $m{"sparse_$_"}, $m{"sparse_requests_$_"}, $m{"sparse_calls_$_"} for @delays;
$md .= sprintf "the node alone: one eth_getLogs over them, %.1f MB, answered in %.2f s\n",
  $m{node_getlogs_bytes} / 1e6, $m{node_getlogs_s};
open(my $j, '>', $out) or die "$out: $!";
print $j JSON::PP->new->canonical->pretty->encode({ runs => \%r, medians => \%m, blocks => $blocks, per_block => $per });
close $j;
(my $mdfile = $out) =~ s/\.json$/.md/;
open(my $mf, '>', $mdfile) or die "$mdfile: $!";
print $mf $md;
close $mf;
# PostgreSQL::Test::Utils sends STDOUT to its log: bench.sh prints the .md
$node->stop;

