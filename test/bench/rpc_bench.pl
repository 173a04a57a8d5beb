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
# Then a profile of one run per delay (block_range RPC_CAPPED_RANGE): the
# CPU seconds of anvil, the proxy, the fetcher, the worker and the rest,
# next to the node alone answering the same requests four at a time.
# Prints a markdown table and writes the raw numbers as JSON to $BENCH_OUT.
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use POSIX ();
use Time::HiRes qw(time usleep);
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
	-- the balances handler the peers are compared with: set-based, on the
	-- arguments decoded by the event signature
	CREATE TABLE li_balance (account text PRIMARY KEY, amount numeric NOT NULL);
	CREATE FUNCTION h_balances(es ledger_ingest.event[]) RETURNS void LANGUAGE sql AS $$
		INSERT INTO li_balance AS b
		SELECT account, sum(delta) FROM (
			SELECT e.args->>'from' AS account, -(e.args->>'value')::numeric AS delta FROM unnest(es) AS e
			UNION ALL
			SELECT e.args->>'to', (e.args->>'value')::numeric FROM unnest(es) AS e) d
		GROUP BY account
		ON CONFLICT (account) DO UPDATE SET amount = b.amount + excluded.amount $$;
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
	my ($source, $opts, $to, $expect, $setup) = @_;
	$to //= $last;
	$expect //= $events;
	my $p = "p" . ++$seq;
	sql('TRUNCATE t_rows');
	sql("SELECT ledger_ingest.create_pipeline('$p', '$source', '$opts')");
	sql("SELECT ledger_ingest.add_handler('$p', 'h_trivial(ledger_ingest.event)')");
	$setup->($p) if $setup;
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

my %r;    # run => [values]

# --- the peers: Ponder and Subsquid over the same proxy ---------------------
# test/bench/peers (its own pinned lockfile, installed by bench.sh): Ponder
# (ponder start, done when its /ready answers 200: the backfill is over)
# and Subsquid's evm-processor over plain JSON-RPC (done when it exits at
# the last block), each timed from its first request through the proxy
# (their start-up, a few seconds for Ponder, is left out), each with a balances
# handler into its own schema of the same PostgreSQL; ledger_ingest with
# the set-based balances handler above.  The three balance tables must be
# equal.  RPC_PEERS=0 leaves them out.
my $peers = $ENV{RPC_PEERS_DIR} // li_root() . '/test/bench/peers';
my $with_peers = ($ENV{RPC_PEERS} // 1) && -x "$peers/node_modules/.bin/ponder";
my $dburl = sprintf('postgresql://%s@localhost:%d/postgres?host=%s',
	scalar(getpwuid($<)), $node->port, $node->host);

# start @cmd in $dir with %env added, output to $log; its pid
sub spawn
{
	my ($dir, $env, $log, @cmd) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		@ENV{ keys %$env } = values %$env;
		chdir $dir or die "$dir: $!";
		open(STDOUT, '>', $log) or die "$log: $!";
		open(STDERR, '>&', \*STDOUT) or die $!;
		exec(@cmd) or die "exec $cmd[0]: $!";
	}
	return $pid;
}

my %peer_env = (DATABASE_URL => $dburl, PEER_ADDRESS => $emitter, PEER_FROM => $first, PEER_TO => $last);

# balances as one string, account=amount, for the comparison
sub balances
{
	my ($table) = @_;
	return sql(qq{SELECT count(*) || ':' || md5(string_agg(lower(account::text) || '=' || amount, ',' ORDER BY lower(account::text)))
		FROM $table WHERE amount <> 0});
}

# Ponder indexing the dense blocks: when it was done (epoch seconds)
sub run_ponder
{
	my $log = "$tmp/ponder.log";
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	sql('DROP SCHEMA IF EXISTS bench_ponder CASCADE');
	my $t0 = time;
	my $pid = spawn("$peers/ponder", { %peer_env, PEER_RPC_URL => $purl, PONDER_TELEMETRY_DISABLED => 'true' },
		$log, "$peers/node_modules/.bin/ponder", 'start', '--schema', 'bench_ponder', '--port', $port);
	my $h = HTTP::Tiny->new(timeout => 5);
	while (($h->get("http://127.0.0.1:$port/ready")->{status} // 0) != 200)
	{
		die "ponder exited; see $log" if waitpid($pid, POSIX::WNOHANG()) == $pid;
		die "ponder did not finish in an hour; see $log" if time - $t0 > 3600;
		usleep(50_000);
	}
	my $end = time;
	kill 'TERM', $pid;
	waitpid($pid, 0);
	return $end;
}

# Subsquid's evm-processor indexing the dense blocks: when it was done
sub run_squid
{
	my $log = "$tmp/squid.log";
	sql('DROP SCHEMA IF EXISTS bench_squid CASCADE');
	my $pid = spawn("$peers/squid", { %peer_env, PEER_RPC_URL => $purl, DATABASE_SCHEMA => 'bench_squid' },
		$log, 'node', 'main.js');
	waitpid($pid, 0);
	my $end = time;
	die "the squid failed ($?); see $log" if $?;
	return $end;
}

# an evm_rpc pipeline with the set-based balances handler: when it was done
sub run_balances
{
	my $p = "b" . ++$seq;
	sql('TRUNCATE li_balance');
	sql(qq{SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc',
		'{"url": "$purl", "addresses": ["$emitter"], "from_block": $first, "to_block": $last}')});
	sql("SELECT ledger_ingest.add_handler('$p', 'h_balances(ledger_ingest.event[])',
		event => 'event Transfer(address indexed from, address indexed to, uint256 value)')");
	sql('CHECKPOINT');
	sql("SELECT ledger_ingest.start('$p')");
	die "$p did not reach ledger $last" unless sql("SELECT ledger_ingest.wait_for('$p', $last, '3600s')") eq 't';
	my $end = time;
	sql("SELECT ledger_ingest.drop_pipeline('$p')");
	return $end;
}

# each indexer in turn, in the order of the run (alternating), through the
# proxy: events/s, HTTP requests and JSON-RPC calls; balances compared
sub run_peers
{
	my ($d, $run) = @_;
	my @order = ([ 'li', \&run_balances, 'li_balance' ], [ 'ponder', \&run_ponder, 'bench_ponder.balance' ],
		[ 'squid', \&run_squid, 'bench_squid.balance' ]);
	@order = reverse @order if $run % 2 == 0;
	my %bal;
	for my $o (@order)
	{
		my ($key, $f, $table) = @$o;
		$control->('__reset_stats');
		my $end = $f->();
		my $st = $control->('__stats');
		# from the indexer's first request (not its start-up) to its end
		my $secs = $end - $st->{first_at} / 1000;
		push @{ $r{"peer_${key}_$d"} }, $events / $secs;
		push @{ $r{"peer_${key}_requests_$d"} }, $st->{requests};
		push @{ $r{"peer_${key}_calls_$d"} }, $st->{calls};
		push @{ $r{"peer_${key}_in_flight_$d"} }, $st->{max_in_flight};
		$bal{$key} = balances($table);
	}
	die "balances differ: ledger_ingest $bal{li}, Ponder $bal{ponder}, Subsquid $bal{squid}"
	  unless $bal{li} =~ /^[1-9]/ && $bal{ponder} eq $bal{li} && $bal{squid} eq $bal{li};
}

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
		run_peers($d, $run) if $with_peers;
	}
}

# memory: one more run of the dense blocks (block_range 100, no delay) for
# each fetch_ahead_bytes, not timed: the most anonymous memory (RssAnon,
# shared buffers left out) of the worker and of its fetcher, sampled every
# 20 ms until the last block is applied
sub rss_anon
{
	my ($pid) = @_;
	return 0 unless $pid && open(my $f, '<', "/proc/$pid/status");
	while (<$f>) { return $1 if /^RssAnon:\s+(\d+) kB/; }
	return 0;
}
my @memory;
for my $bytes (1 << 20, 16 << 20, 128 << 20)
{
	my $p = "m" . ++$seq;
	sql('TRUNCATE t_rows');
	sql(qq{SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc',
		'{"url": "$rpc", "addresses": ["$emitter"], "from_block": $first, "to_block": $last,
		  "block_range": $capped, "fetch_ahead_bytes": $bytes}')});
	sql("SELECT ledger_ingest.add_handler('$p', 'h_trivial(ledger_ingest.event)')");
	sql("SELECT ledger_ingest.start('$p')");
	my ($worker, $fetcher) = (0, 0);
	my $t0 = time;
	my $psql = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres') ], '<', \my $in, '>', \my $outp);
	for (;;)
	{
		$outp = '';
		$in .= qq{SELECT coalesce(s.ledger, -1) || ' ' || coalesce(s.pid, 0) || ' ' || coalesce((SELECT pid FROM pg_stat_activity
			WHERE application_name = 'ledger_ingest fetcher $p'), 0) FROM ledger_ingest.status s WHERE pipeline = '$p';\n};
		$psql->pump until $outp =~ /\n/;
		my ($ledger, $wpid, $fpid) = split ' ', $outp;
		my ($w, $f) = (rss_anon($wpid), rss_anon($fpid));
		$worker = $w if $w > $worker;
		$fetcher = $f if $f > $fetcher;
		last if $ledger >= $last;
		die "$p did not reach ledger $last" if time - $t0 > 600;
		usleep(20_000);
	}
	$in .= "\\q\n";
	$psql->finish;
	die "$p: rows" unless sql('SELECT count(*) FROM t_rows') == $events;
	sql("SELECT ledger_ingest.drop_pipeline('$p')");
	push @memory, [ $bytes, $worker, $fetcher ];
}
$r{memory} = [ map { { fetch_ahead_bytes => $_->[0], worker_kb => $_->[1], fetcher_kb => $_->[2] } } @memory ];

# profile: where the time of the dense backfill goes (block_range
# $capped, 4 requests in flight, one run per delay, not timed with the
# runs above): the CPU seconds of anvil, of the fault proxy, of the worker
# and of its fetcher, and of everything else (the machine's busy time
# less those; the processes that used it listed), from /proc, sampled
# every 10 ms from start() until the worker exits at the last block
# (wall time: start() to that exit), next to the machine's cores.  And the node alone: the same $capped-block
# eth_getLogs requests through the proxy, four at a time (one process
# each, the answers read and discarded, not decoded): what any client
# fetching these ranges four at a time can reach here.
sub cpu_ticks
{
	my ($pid) = @_;
	return 0 unless $pid && open(my $f, '<', "/proc/$pid/stat");
	my $line = <$f>;
	$line =~ s/^.*\)\s+//;    # the fields after the command name
	my @f = split ' ', $line;
	return $f[11] + $f[12];    # utime, stime (fields 14 and 15)
}
my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
# utime + stime of every process, by pid, with its command line
sub all_ticks
{
	my %t;
	for my $dir (glob '/proc/[0-9]*')
	{
		my ($pid) = $dir =~ m{(\d+)$};
		my $ticks = cpu_ticks($pid) or next;
		open(my $c, '<', "$dir/cmdline") or next;
		my $cmd = join(' ', split /\0/, scalar(<$c>) // '');
		$t{$pid} = [ $cmd, $ticks ];
	}
	return \%t;
}
# the CPU seconds of the processes other than anvil, the proxy, the worker
# and the fetcher between two snapshots (processes that exited in between
# are not seen), grouped by command (a PostgreSQL process by its title),
# the largest first
sub other_cpu
{
	my ($t0, $t1, @skip) = @_;
	my %skip = map { $_ => 1 } @skip;
	my %by;
	for my $pid (keys %$t1)
	{
		next if $skip{$pid};
		my ($cmd, $ticks) = @{ $t1->{$pid} };
		$ticks -= $t0->{$pid}[1] if $t0->{$pid} && $t0->{$pid}[0] eq $cmd;
		next unless $ticks > 0;
		$cmd =~ s/^(postgres: )\S+: (\S+( \S+)?).*/$1$2/;    # postgres: walwriter, postgres: ledger_ingest fetcher
		$cmd = substr($cmd, 0, 40);
		$by{$cmd} += $ticks / $hz;
	}
	return join(', ', map { sprintf('%s %.2f', $_, $by{$_}) } grep { $by{$_} >= 0.03 }
		sort { $by{$b} <=> $by{$a} } keys %by);
}
# the machine's busy ticks, and those of them in interrupts (the kernel's
# work on the loopback network among them)
sub busy_ticks
{
	open(my $f, '<', '/proc/stat') or die $!;
	my @f = split ' ', scalar <$f>;    # cpu user nice system idle iowait irq softirq steal
	return ($f[1] + $f[2] + $f[3] + $f[6] + $f[7] + $f[8], $f[6] + $f[7]);
}
my $cores = () = grep { /^processor\s/ } split /\n/, slurp_file('/proc/cpuinfo');
chomp(my $anvil_pid = slurp_file("$PostgreSQL::Test::Utils::tmp_check/anvil/anvil.pid"));
chomp(my $proxy_pid = `pgrep -n -f fault_proxy.js`);
my @ranges;
for (my $b = $first; $b <= $last; $b += $capped)
{
	push @ranges, [ $b, $b + $capped - 1 < $last ? $b + $capped - 1 : $last ];
}
my @profile;
for my $d (@delays)
{
	$control->('__clear');
	$control->('__fault', { mode => 'delay', ms => $d, count => -1 }) if $d > 0;
	# the node alone, four requests at a time
	my $t0 = time;
	my @kids;
	for my $k (0 .. 3)
	{
		my $pid = fork // die "fork: $!";
		if ($pid == 0)
		{
			my $h = HTTP::Tiny->new(timeout => 120);
			for (my $i = $k; $i < @ranges; $i += 4)
			{
				my $a = $h->post($purl, { headers => { 'content-type' => 'application/json' },
					content => encode_json({ jsonrpc => '2.0', id => $i + 1, method => 'eth_getLogs',
						params => [ { address => $emitter, fromBlock => sprintf('0x%x', $ranges[$i][0]),
							toBlock => sprintf('0x%x', $ranges[$i][1]) } ] }),
					data_callback => sub { } });
				POSIX::_exit(1) unless $a->{success};
			}
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	for (@kids) { waitpid($_, 0); die "eth_getLogs four at a time failed" if $?; }
	my $alone = time - $t0;
	# the pipeline, sampled
	my $p = "c" . ++$seq;
	sql('TRUNCATE t_rows');
	sql(qq{SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc',
		'{"url": "$purl", "addresses": ["$emitter"], "from_block": $first, "to_block": $last, "block_range": $capped}')});
	sql("SELECT ledger_ingest.add_handler('$p', 'h_trivial(ledger_ingest.event)')");
	sql('CHECKPOINT');
	my ($a0, $x0, $all0) = (cpu_ticks($anvil_pid), cpu_ticks($proxy_pid), all_ticks());
	my ($s0, $irq0) = busy_ticks();
	my ($w, $f) = (0, 0);
	my $psql = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres') ], '<', \my $in, '>', \my $outp);
	$t0 = time;
	$in .= "SELECT ledger_ingest.start('$p');\n";
	# the worker's and the fetcher's pids, asked for until both run; then
	# only /proc, every 10 ms, until the worker exits (it finishes the
	# pipeline at to_block), so that sampling costs next to nothing
	my ($wpid, $fpid) = (0, 0);
	until ($wpid && $fpid)
	{
		$outp = '';
		$in .= qq{SELECT coalesce(s.pid, 0) || ' ' || coalesce((SELECT pid FROM pg_stat_activity
			WHERE application_name = 'ledger_ingest fetcher $p'), 0) FROM ledger_ingest.status s WHERE pipeline = '$p';\n};
		$psql->pump until $outp =~ /^\d+ \d+\n/m;
		($wpid, $fpid) = $outp =~ /^(\d+) (\d+)$/m;
		die "$p: no worker and fetcher" if time - $t0 > 60;
		usleep(5_000) unless $wpid && $fpid;
	}
	$in .= "\\q\n";
	$psql->finish;
	for (;;)
	{
		my ($wt, $ft) = (cpu_ticks($wpid), cpu_ticks($fpid));
		last unless $wt;    # the worker has exited
		$w = $wt;
		$f = $ft if $ft > $f;
		die "$p did not finish" if time - $t0 > 600;
		usleep(10_000);
	}
	my $wall = time - $t0;
	my ($a1, $x1, $all1) = (cpu_ticks($anvil_pid), cpu_ticks($proxy_pid), all_ticks());
	my ($s1, $irq1) = busy_ticks();
	die "$p: rows" unless sql('SELECT count(*) FROM t_rows') == $events
	  && sql("SELECT ledger FROM ledger_ingest.status WHERE pipeline = '$p'") == $last;
	sql("SELECT ledger_ingest.drop_pipeline('$p')");
	my %c = (anvil => ($a1 - $a0) / $hz, proxy => ($x1 - $x0) / $hz, worker => $w / $hz, fetcher => $f / $hz,
		busy => ($s1 - $s0) / $hz);
	$c{other} = $c{busy} - $c{anvil} - $c{proxy} - $c{worker} - $c{fetcher};
	$c{other_by} = join(', ', grep { $_ } sprintf('interrupts %.2f', ($irq1 - $irq0) / $hz),
		other_cpu($all0, $all1, $anvil_pid, $proxy_pid, $wpid, $fpid));
	push @profile, { delay => $d, wall => $wall, alone => $alone, %c };
}
$r{profile} = \@profile;

# --- factories: the filter a pipeline with factories fetches with ------------
# (README: Factory contracts.)  The node's time for one eth_getLogs over the
# dense blocks with an address filter of N addresses (the emitter and N - 1
# that emit nothing: a factory's children) next to the filter a pipeline
# with factories sends, topic0 alone; and the inbox path over the same
# blocks with a factory whose 10,000 children (announced in one ledger
# before them) include the emitter, next to the plain inbox run: the cost
# of checking each log's address in the worker.  Median of RUNS.
my @naddr = (1, 100, 1000, 10000);
my $created = sql(q{SELECT encode(ledger_ingest.event_topic('event Created(address child)'), 'hex')});
# the block before the dense ones, its header real (the next one chains to
# it), its logs the announcements
my $before = call('eth_getBlockByNumber', sprintf('0x%x', $first - 1), JSON::PP::false);
my $announce = JSON::PP->new->canonical->encode({ (map { $_ => $before->{$_} } qw(number hash parentHash timestamp)),
	logs => [ map { { address => '0x' . ('fa' x 20), topics => ["0x$created"],
		data => '0x' . ('0' x 24) . ($_ == 0 ? substr($emitter, 2) : sprintf('%040x', $_)),
		transactionIndex => '0x0', logIndex => sprintf('0x%x', $_) } } 0 .. 9999 ] });
for my $run (1 .. $runs)
{
	for my $n (@naddr, 'topic0')
	{
		my $filter = { fromBlock => sprintf('0x%x', $first), toBlock => sprintf('0x%x', $last) };
		if ($n eq 'topic0') { $filter->{topics} = ["0x$transfer"]; }
		else { $filter->{address} = [ $emitter, map { sprintf('0x%040x', $_) } 1 .. $n - 1 ]; }
		my $body = encode_json({ jsonrpc => '2.0', id => ++$call_id, method => 'eth_getLogs', params => [$filter] });
		my $t0 = time;
		my $ans = $http->post($rpc, { headers => { 'content-type' => 'application/json' }, content => $body });
		push @{ $r{"factory_getlogs_$n"} }, time - $t0;    # to the last byte, not decoded
		die "eth_getLogs: HTTP $ans->{status}" unless $ans->{success};
		# the answer is the same whatever the filter: count the logs' blockHash members
		my $nlogs = () = $ans->{content} =~ /"blockHash"/g;
		die "eth_getLogs with $n: $nlogs logs, not the $events" unless $nlogs == $events;
		$r{"factory_request_bytes_$n"} = [ length($body) ];
	}
	push @{ $r{factory_inbox_plain} }, $events / run('inbox', '{}');
	push @{ $r{factory_inbox_children} }, ($events + 10000) / run('inbox', '{}', $last, $events + 10000, sub {
		my ($p) = @_;
		(my $doc = $announce) =~ s/'/''/g;
		sql(qq{SELECT ledger_ingest.add_factory('$p', '\\x@{['fa' x 20]}', 'event Created(address child)', 'child');
			INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('$p', '$doc')});
	});
}

my %m = map { $_ => median(@{ $r{$_} }) } grep { $_ ne 'memory' && $_ ne 'profile' } keys %r;
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
if ($with_peers)
{
	$md .= "\n| round trip added | ledger_ingest, set-based balances handler on decoded args: events/s | HTTP requests (calls), most in flight | Ponder 0.16.10: events/s | HTTP requests (calls), most in flight | Subsquid evm-processor 1.27.3: events/s | HTTP requests (calls), most in flight | ledger_ingest / the faster peer |\n|---|---|---|---|---|---|---|---|\n";
	for my $d (@delays)
	{
		my @c = map { ($m{"peer_${_}_$d"}, $m{"peer_${_}_requests_$d"}, $m{"peer_${_}_calls_$d"}, $m{"peer_${_}_in_flight_$d"}) } qw(li ponder squid);
		my $faster = $m{"peer_ponder_$d"} > $m{"peer_squid_$d"} ? $m{"peer_ponder_$d"} : $m{"peer_squid_$d"};
		$md .= sprintf "| %d ms | %d | %d (%d), %d | %d | %d (%d), %d | %d | %d (%d), %d | %.1f |\n", $d, @c, $m{"peer_li_$d"} / $faster;
	}
	$md .= "balances equal in every run (ledger_ingest, Ponder, Subsquid)\n";
}
$md .= sprintf "\n| profile, block_range %d, 4 in flight (one run) | wall s | events/s | CPU s: anvil | proxy | fetcher | worker | the rest | busy of %d cores | the node alone, 4 at a time: s | events/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n", $capped, $cores;
$md .= sprintf "| %d ms | %.2f | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% | %.2f | %d |\n", $_->{delay}, $_->{wall}, $events / $_->{wall},
  @$_{qw(anvil proxy fetcher worker other)}, 100 * $_->{busy} / ($cores * $_->{wall}), $_->{alone}, $events / $_->{alone} for @profile;
$md .= sprintf "the rest at %d ms: %s; the others exited during the run\n", $_->{delay}, $_->{other_by} for @profile;
$md .= "\n| fetch_ahead_bytes (block_range $capped, no delay, one run) | worker: most RssAnon | fetcher: most RssAnon |\n|---|---|---|\n";
$md .= sprintf "| %d MB | %.0f MB | %.0f MB |\n", $_->[0] >> 20, $_->[1] / 1024, $_->[2] / 1024 for @memory;
open(my $j, '>', $out) or die "$out: $!";
print $j JSON::PP->new->canonical->pretty->encode({ runs => \%r, medians => \%m, blocks => $blocks, per_block => $per });
close $j;
$md .= sprintf "\n| factories: one eth_getLogs over the %d dense blocks (%d logs), the node alone | request bytes | s |\n|---|---|---|\n", $blocks, $events;
$md .= sprintf "| address filter of %d address%s | %d | %.3f |\n", $_, $_ == 1 ? '' : 'es', $m{"factory_request_bytes_$_"}, $m{"factory_getlogs_$_"} for @naddr;
$md .= sprintf "| topic0 only (a pipeline with factories) | %d | %.3f |\n", $m{factory_request_bytes_topic0}, $m{factory_getlogs_topic0};
$md .= sprintf "inbox path over the same blocks: %d events/s; with a factory of 10,000 children (the emitter one of them, each log's address checked): %d events/s (%.2f)\n",
	$m{factory_inbox_plain}, $m{factory_inbox_children}, $m{factory_inbox_children} / $m{factory_inbox_plain};
(my $mdfile = $out) =~ s/\.json$/.md/;
open(my $mf, '>', $mdfile) or die "$mdfile: $!";
print $mf $md;
close $mf;
# PostgreSQL::Test::Utils sends STDOUT to its log: bench.sh prints the .md
$node->stop;

