# Throughput benchmark: ledger_ingest next to COPY and next to an external
# indexer client, on the same cluster and the same events, in one run.
#
#   make bench        (test/bench/bench.sh runs this)
#
# Workload: LEDGERS ledgers x PER ERC-20 Transfer logs over ACCOUNTS
# accounts and TOKENS tokens, deterministic for SEED.  Each figure is the
# median of RUNS runs, in events/s, and checked before it is reported (row
# counts, and balances equal to those computed from the source rows).
#  (a) COPY of the same event rows into an equivalent table, binary and text;
#  (b) ledger_ingest's raw sink (add_raw_sink);
#  (c) ledger_ingest with a trivial per-event SQL handler (one INSERT) and a
#      PL/pgSQL balances handler (INSERT ... ON CONFLICT DO UPDATE);
#  (d) an external libpq client (test/bench/ext_client.c) applying the same
#      statements per event plus a cursor compare-and-swap per ledger over
#      a loopback connection, in pipeline mode;
#  (e) a set-based handler (one INSERT ... SELECT per transaction);
#  (g) a table sink (add_table_sink): each Transfer decoded in C into a
#      row (token, from, to, value numeric, ledger, event_index), next to
#      COPY binary of the same decoded rows;
#  commit modes event/ledger/batch with synchronous_commit on and off;
#  latency from an inbox insert's commit to the "applied" notification, at
#  idle and under load; the worker's private memory after 1M and 5M events.
# Prints markdown tables; writes the raw numbers as JSON to $BENCH_OUT.
use strict;
use warnings;
use DBI;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time usleep);

my $runs = $ENV{RUNS} // 5;
my $ledgers = $ENV{LEDGERS} // 2000;
my $per = $ENV{EVENTS_PER_LEDGER} // 100;
my $accounts = $ENV{ACCOUNTS} // 3000;
my $tokens = $ENV{TOKENS} // 20;
my $seed = $ENV{SEED} // 1;
my $rss_first = $ENV{RSS_FIRST} // 1_000_000;
my $rss_events = $ENV{RSS_EVENTS} // 5_000_000;
my $out = $ENV{BENCH_OUT} // "$PostgreSQL::Test::Utils::tmp_check/bench-throughput.json";
my $root = $ENV{LEDGER_INGEST_ROOT} // die "LEDGER_INGEST_ROOT not set";
my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my $events = $ledgers * $per;

my $node = PostgreSQL::Test::Cluster->new('bench_throughput');
$node->init;
$node->append_conf('postgresql.conf', <<'CONF');
shared_preload_libraries = 'ledger_ingest'
ledger_ingest.database = 'postgres'
max_worker_processes = 16
shared_buffers = '512MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
CONF
$node->start;
sub sql { return scalar $node->safe_psql('postgres', $_[0]); }

sql(<<"SQL");
CREATE EXTENSION ledger_ingest;
-- the workload: one row per event, deterministic
CREATE TABLE ev_src AS
SELECT n::bigint AS ledger, i::int AS tx_index, i::int AS event_index,
	   decode(lpad(to_hex(1 + (x % $tokens)), 40, '0'), 'hex') AS address,
	   decode('ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef', 'hex') AS t0,
	   decode(lpad(to_hex(1 + ((x / 7) % $accounts)), 64, '0'), 'hex') AS t1,
	   decode(lpad(to_hex(1 + ((x / 13) % $accounts)), 64, '0'), 'hex') AS t2,
	   decode(lpad(to_hex(1 + (x % 1000000)), 64, '0'), 'hex') AS data
FROM generate_series(0, $ledgers - 1) AS n, generate_series(0, $per - 1) AS i,
	 LATERAL (SELECT ((n::bigint * $per + i) * 2654435761 + $seed) % 4294967296 AS x) AS r;
-- the ledger documents of the same events, compressed as the inbox
-- compresses what producers insert (INSERT ... SELECT keeps a compressed
-- value as it is)
SET default_toast_compression = lz4;
CREATE TABLE doc_src AS
SELECT ledger, jsonb_build_object('number', ledger,
	'hash', '0x' || md5('h' || ledger) || md5('i' || ledger),
	'parentHash', '0x' || md5('h' || (ledger - 1)) || md5('i' || (ledger - 1)),
	'timestamp', 1700000000 + ledger * 12,
	'logs', jsonb_agg(jsonb_build_object(
		'address', '0x' || encode(address, 'hex'),
		'topics', jsonb_build_array('0x' || encode(t0, 'hex'), '0x' || encode(t1, 'hex'), '0x' || encode(t2, 'hex')),
		'data', '0x' || encode(data, 'hex'),
		'transactionIndex', tx_index, 'logIndex', event_index) ORDER BY event_index)) AS doc
FROM ev_src GROUP BY ledger;
-- the documents each run applies: run k gets the same events as ledgers
-- k * LEDGERS .. (k + 1) * LEDGERS - 1, a chain linked by parentHash, so
-- that a pipeline keeps its worker from one run to the next
CREATE TABLE doc_run AS
SELECT l AS ledger, jsonb_set(jsonb_set(jsonb_set(doc, '{number}', to_jsonb(l)),
	'{hash}', to_jsonb('0x' || md5('h' || l) || md5('i' || l))),
	'{parentHash}', to_jsonb('0x' || md5('h' || (l - 1)) || md5('i' || (l - 1)))) AS doc
FROM doc_src, generate_series(0, $runs - 1) AS k, LATERAL (SELECT doc_src.ledger + k * $ledgers AS l) AS x;
-- the expected balances
CREATE TABLE expected AS
SELECT token, account, sum(delta) AS balance FROM (
	SELECT address AS token, substr(t1, 13) AS account, -('x' || encode(substr(data, 25, 8), 'hex'))::bit(64)::bigint AS delta FROM ev_src
	UNION ALL
	SELECT address, substr(t2, 13), ('x' || encode(substr(data, 25, 8), 'hex'))::bit(64)::bigint FROM ev_src) d
GROUP BY 1, 2;

CREATE TABLE t_rows (ledger bigint, tx_index int, event_index int, address bytea, t0 bytea, t1 bytea, t2 bytea, data bytea);
CREATE TABLE raw_rows (ledger bigint, tx_index int, event_index int, address bytea, topics bytea[], data bytea);
-- the decoded rows: a table sink's, and COPY's of the same rows
CREATE TABLE dec_rows (ledger bigint, event_index int, token bytea, "from" bytea, "to" bytea, value numeric);
CREATE TABLE balances (token bytea, account bytea, balance numeric NOT NULL, PRIMARY KEY (token, account));
CREATE TABLE ext_cursor (id int PRIMARY KEY, ledger bigint);

-- the per-event work, as statements an external client runs too
CREATE FUNCTION bench_insert(l bigint, tx int, ev int, a bytea, t0 bytea, t1 bytea, t2 bytea, d bytea)
	RETURNS void LANGUAGE sql AS \$\$ INSERT INTO t_rows VALUES (l, tx, ev, a, t0, t1, t2, d) \$\$;
CREATE FUNCTION bench_balances(l bigint, tx int, ev int, a bytea, t0 bytea, t1 bytea, t2 bytea, d bytea)
	RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE v bigint := ('x' || encode(substr(d, 25, 8), 'hex'))::bit(64)::bigint;
BEGIN
	INSERT INTO balances AS b VALUES (a, substr(t1, 13), -v)
		ON CONFLICT (token, account) DO UPDATE SET balance = b.balance + excluded.balance;
	INSERT INTO balances AS b VALUES (a, substr(t2, 13), v)
		ON CONFLICT (token, account) DO UPDATE SET balance = b.balance + excluded.balance;
END \$\$;
-- the same as ledger_ingest handlers
CREATE FUNCTION h_trivial(e ledger_ingest.event) RETURNS void LANGUAGE sql AS \$\$
	INSERT INTO t_rows VALUES (e.ledger, e.tx_index, e.event_index, e.address, e.topics[1], e.topics[2], e.topics[3], e.data) \$\$;
CREATE FUNCTION h_balances(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE v bigint := ('x' || encode(substr(e.data, 25, 8), 'hex'))::bit(64)::bigint;
BEGIN
	INSERT INTO balances AS b VALUES (e.address, substr(e.topics[2], 13), -v)
		ON CONFLICT (token, account) DO UPDATE SET balance = b.balance + excluded.balance;
	INSERT INTO balances AS b VALUES (e.address, substr(e.topics[3], 13), v)
		ON CONFLICT (token, account) DO UPDATE SET balance = b.balance + excluded.balance;
END \$\$;
CREATE FUNCTION h_set(es ledger_ingest.event[]) RETURNS void LANGUAGE sql AS \$\$
	INSERT INTO t_rows SELECT e.ledger, e.tx_index, e.event_index, e.address, e.topics[1], e.topics[2], e.topics[3], e.data
	FROM unnest(es) AS e \$\$;
SQL

# files for COPY and for the external client
sql("COPY (SELECT ledger, tx_index, event_index, address, t0, t1, t2, data FROM ev_src ORDER BY 1, 2, 3) TO '$tmp/ev.bin' (FORMAT binary)");
sql("COPY (SELECT ledger, tx_index, event_index, address, t0, t1, t2, data FROM ev_src ORDER BY 1, 2, 3) TO '$tmp/ev.txt'");
sql("COPY (SELECT ledger, event_index, address, substr(t1, 13), substr(t2, 13), ('x' || encode(substr(data, 25, 8), 'hex'))::bit(64)::bigint::numeric FROM ev_src ORDER BY ledger, event_index) TO '$tmp/dec.bin' (FORMAT binary)");
sql("COPY (SELECT ledger, tx_index, event_index, encode(address, 'hex'), encode(t0, 'hex'), encode(t1, 'hex'), encode(t2, 'hex'), encode(data, 'hex') FROM ev_src ORDER BY 1, 2, 3) TO '$tmp/ev.ext'");

my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $inc = `$pg_config --includedir`; chomp $inc;
my $lib = `$pg_config --libdir`; chomp $lib;
system("gcc -O2 -Wall -Wextra -I$inc $root/test/bench/ext_client.c -L$lib -lpq -o $tmp/ext_client") == 0
  or die "could not build ext_client";

sub median { my @s = sort { $a <=> $b } @_; return $s[int($#s / 2)]; }
sub reset_targets { sql('TRUNCATE t_rows, raw_rows, dec_rows, balances; UPDATE ext_cursor SET ledger = -1'); }
# the decoded rows equal the source's: as many, the same values
sub check_decoded
{
	my ($what) = @_;
	check_rows('dec_rows', $what);
	my $bad = sql(q{SELECT count(*) FROM dec_rows d JOIN ev_src e USING (ledger, event_index)
					WHERE d.token <> e.address OR d."from" <> substr(e.t1, 13) OR d."to" <> substr(e.t2, 13)
					   OR d.value <> ('x' || encode(substr(e.data, 25, 8), 'hex'))::bit(64)::bigint});
	die "$what: $bad rows differ from the source" if $bad;
}
sub check_rows
{
	my ($table, $what) = @_;
	my $n = sql("SELECT count(*) FROM $table");
	die "$what: $n rows in $table, expected $events" unless $n == $events;
}
sub check_balances
{
	my ($what) = @_;
	my $bad = sql(q{SELECT count(*) FROM expected x FULL JOIN balances b USING (token, account)
					WHERE x.balance IS DISTINCT FROM b.balance AND coalesce(x.balance, 0) <> coalesce(b.balance, 0)});
	die "$what: $bad balances differ from the expected" unless $bad == 0;
}

# All three kinds of run are timed the same way, on processes that are
# already running, from the moment the work is committed and visible to
# the moment its last row is committed: COPY on an open connection, the
# external client from its first BEGIN to its last COMMIT, ledger_ingest
# from the commit of the inbox documents to an idle worker (woken by the
# inbox's commit) until the "applied" notification of the last ledger
# arrives.  Each pipeline keeps its worker from one run to the next, as a
# deployed one does: process start-up (psql, a backend, the worker) and
# first touches of shared memory are in none of the medians.  The wait is a
# LISTEN, not a wait_for() call: a statement open for the whole run would
# hold back the pruning horizon and slow down the handlers that update rows
# (see wait_for in the README).
my %r;
my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
	'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });

# wait for the notification that ledger $last of $p is applied in full
sub wait_applied
{
	my ($p, $last) = @_;
	my $t0 = time;
	while (time - $t0 < 3600)
	{
		while (my $note = $dbh->pg_notifies)
		{
			my $j = decode_json($note->[2]);
			return 1 if $j->{pipeline} eq $p && $j->{type} eq 'applied'
			  && $j->{ledger} >= $last && !defined $j->{tx_index};
		}
		usleep(200);
	}
	return 0;
}

# one run of pipeline $o{name} (created and started on its first run) over
# its next $o{ledgers} documents; returns events/s
my %next_ledger;
sub pipeline_run
{
	my (%o) = @_;
	my $p = $o{name};
	if (!exists $next_ledger{$p})
	{
		my $opts = $o{opts} // '{}';
		sql("SELECT ledger_ingest.create_pipeline('$p', 'inbox', '$opts')");
		sql("SELECT ledger_ingest.add_handler('$p', '$o{handler}')") if $o{handler};
		sql("SELECT ledger_ingest.add_raw_sink('$p', '$o{sink}')") if $o{sink};
		sql("SELECT ledger_ingest.add_table_sink('$p', '$o{table_sink}', 'event Transfer(address indexed from, address indexed to, uint256 value)', columns => '{\"ledger\": \"ledger\", \"event_index\": \"event_index\", \"token\": \"address\", \"from\": \"from\", \"to\": \"to\", \"value\": \"value\"}')")
		  if $o{table_sink};
		sql("SELECT ledger_ingest.start('$p')");
		$node->poll_query_until('postgres',
			"SELECT worker_state = 'idle' FROM ledger_ingest._shmem_status() WHERE pipeline = '$p'")
		  or die "$p: the worker did not come up";
		$next_ledger{$p} = 0;
	}
	my $from = $next_ledger{$p};
	my $to = $from + $o{ledgers};
	die "$p: only " . ($runs * $ledgers) . " documents" if $to > $runs * $ledgers;
	# the documents, invisible to the worker until the commit; written
	# after the checkpoint, as documents arriving to be applied are (the
	# worker's deletes then write no full-page images of the inbox)
	sql('CHECKPOINT');
	$dbh->do('LISTEN ledger_ingest');
	$dbh->begin_work;
	my $i0 = time;
	$dbh->do("INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$p', doc FROM doc_run WHERE ledger >= $from AND ledger < $to ORDER BY ledger");
	push @{ $r{inbox_insert} }, $o{ledgers} * $per / (time - $i0) if $o{ledgers} == $ledgers;
	$dbh->commit;
	my $t0 = time;
	my $done = wait_applied($p, $to - 1);
	my $secs = time - $t0;
	$dbh->do('UNLISTEN ledger_ingest');
	1 while $dbh->pg_notifies;
	die "$p did not finish" unless $done;
	$next_ledger{$p} = $to;
	return $o{ledgers} * $per / $secs;
}

# COPY binary of the decoded rows
sub copy_decoded_run
{
	reset_targets();
	sql('CHECKPOINT');
	my $t0 = time;
	$dbh->do("COPY dec_rows FROM '$tmp/dec.bin' (FORMAT binary)");
	my $secs = time - $t0;
	check_decoded('COPY binary of the decoded rows');
	return $events / $secs;
}

sub copy_run
{
	my ($fmt) = @_;
	reset_targets();
	sql('CHECKPOINT');
	my $t0 = time;
	$dbh->do("COPY t_rows FROM '$tmp/ev." . ($fmt eq 'binary' ? "bin' (FORMAT binary)" : "txt'"));
	my $secs = time - $t0;
	check_rows('t_rows', "COPY $fmt");
	return $events / $secs;
}

# the statement a set-based handler runs, at best: INSERT ... SELECT of
# the same rows from a table
sub insert_select_run
{
	reset_targets();
	sql('CHECKPOINT');
	my $t0 = time;
	$dbh->do('INSERT INTO t_rows SELECT ledger, tx_index, event_index, address, t0, t1, t2, data FROM ev_src');
	my $secs = time - $t0;
	check_rows('t_rows', 'INSERT ... SELECT');
	return $events / $secs;
}

sub ext_run
{
	my ($stmt, $check) = @_;
	reset_targets();
	sql('CHECKPOINT');
	my $conn = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
	open(my $ph, '-|', "$tmp/ext_client", $conn, "$tmp/ev.ext", $stmt, '--pipeline-mode')
	  or die "ext_client: $!";
	my $line = join('', <$ph>);
	close $ph or die "ext_client failed";
	my ($rate) = $line =~ /events_per_s=([0-9.]+)/ or die "ext_client: $line";
	$check->();
	return $rate;
}

sql('INSERT INTO ext_cursor VALUES (1, -1)');
for my $run (1 .. $runs)
{
	push @{ $r{copy_binary} }, copy_run('binary');
	push @{ $r{copy_text} }, copy_run('text');
	push @{ $r{insert_select} }, insert_select_run();

	reset_targets();
	push @{ $r{raw_sink} }, pipeline_run(name => 'raw', sink => 'raw_rows', ledgers => $ledgers,
		opts => '{"batch_max_events": 50000}');
	check_rows('raw_rows', 'raw sink');

	push @{ $r{copy_decoded} }, copy_decoded_run();
	reset_targets();
	push @{ $r{table_sink} }, pipeline_run(name => 'decoded', table_sink => 'dec_rows', ledgers => $ledgers,
		opts => '{"batch_max_events": 50000}');
	check_decoded('table sink');

	reset_targets();
	push @{ $r{trivial_handler} }, pipeline_run(name => 'trivial', handler => 'h_trivial(ledger_ingest.event)', ledgers => $ledgers);
	check_rows('t_rows', 'trivial handler');

	reset_targets();
	push @{ $r{balances_handler} }, pipeline_run(name => 'balances', handler => 'h_balances(ledger_ingest.event)', ledgers => $ledgers);
	check_balances('balances handler');

	reset_targets();
	# batches of 5,000 events: the handler's unnest() keeps them within
	# work_mem (4 MB) instead of spilling them to a temporary file, as it
	# does with the default 10,000
	push @{ $r{set_handler} }, pipeline_run(name => 'set', handler => 'h_set(ledger_ingest.event[])', ledgers => $ledgers,
		opts => '{"batch_max_events": 5000}');
	check_rows('t_rows', 'set-based handler');

	push @{ $r{ext_trivial} }, ext_run('SELECT bench_insert($1::bigint, $2::int, $3::int, decode($4, \'hex\'), decode($5, \'hex\'), decode($6, \'hex\'), decode($7, \'hex\'), decode($8, \'hex\'))',
		sub { check_rows('t_rows', 'external client, trivial') });
	push @{ $r{ext_balances} }, ext_run('SELECT bench_balances($1::bigint, $2::int, $3::int, decode($4, \'hex\'), decode($5, \'hex\'), decode($6, \'hex\'), decode($7, \'hex\'), decode($8, \'hex\'))',
		sub { check_balances('external client, balances') });
}

# commit modes (trivial handler, a tenth of the workload)
my $small = int($ledgers / 10) || 1;
for my $sync ('on', 'off')
{
	sql("ALTER SYSTEM SET synchronous_commit = $sync");
	sql('SELECT pg_reload_conf()');
	for my $mode ('event', 'ledger', 'batch')
	{
		my @v;
		for my $run (1 .. $runs)
		{
			reset_targets();
			push @v, pipeline_run(name => "commit_${mode}_$sync", handler => 'h_trivial(ledger_ingest.event)',
				ledgers => $small, opts => qq({"commit": "$mode"}));
		}
		$r{"commit_${mode}_sync_$sync"} = \@v;
	}
}
sql('ALTER SYSTEM RESET synchronous_commit');
sql('SELECT pg_reload_conf()');
sql("SELECT ledger_ingest.drop_pipeline('$_')") for sort keys %next_ledger;

# latency: inbox insert commit -> "applied" notification at a listener
sub latency
{
	my ($p, $n, $base) = @_;
	my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
		'', '', { AutoCommit => 1, RaiseError => 1 });
	$dbh->do('LISTEN ledger_ingest');
	my @lat;
	for my $k (0 .. $n - 1)
	{
		my $ledger = $base + $k;
		$dbh->do("INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('$p', jsonb_build_object('number', $ledger, 'hash', '0x' || md5('l$ledger') || md5('m$ledger'), 'logs', '[]'::jsonb))");
		my $t0 = time;
		my $got = 0;
		while (!$got && time - $t0 < 10)
		{
			while (my $note = $dbh->pg_notifies)
			{
				my $j = decode_json($note->[2]);
				$got = 1 if $j->{pipeline} eq $p && $j->{type} eq 'applied' && $j->{ledger} == $ledger;
			}
			usleep(200) unless $got;
		}
		die "no notification for $p ledger $ledger" unless $got;
		push @lat, (time - $t0) * 1000;
		usleep(20_000);
	}
	$dbh->disconnect;
	my @s = sort { $a <=> $b } @lat;
	return { p50 => $s[int(0.5 * $#s)], p99 => $s[int(0.99 * $#s)], samples => scalar @s };
}
# (default poll_ms, 200 ms: the inbox's commit wakes the worker)
sql(q{SELECT ledger_ingest.create_pipeline('lat', 'inbox'); SELECT ledger_ingest.start('lat')});
sleep 1;
$r{latency_idle} = latency('lat', 200, 1_000_000);
# under load: another pipeline applies the workload meanwhile
reset_targets();
sql(q{SELECT ledger_ingest.create_pipeline('load', 'inbox'); SELECT ledger_ingest.add_handler('load', 'h_balances(ledger_ingest.event)')});
sql("INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'load', doc FROM doc_src ORDER BY ledger");
sql(q{SELECT ledger_ingest.start('load')});
$r{latency_load} = latency('lat', 200, 2_000_000);
sql("SELECT ledger_ingest.wait_for('load', $ledgers - 1, '3600s')");
sql(q{SELECT ledger_ingest.drop_pipeline('load'); SELECT ledger_ingest.drop_pipeline('lat')});

# the worker's private memory after 1M and after RSS_EVENTS events (raw
# sink): RssAnon, its resident anonymous memory.  (VmRSS/VmHWM also count
# the shared buffers the process has touched, which grow towards
# shared_buffers whatever the stream length.)
sub hwm
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/status" or return -1;
	while (<$fh>) { return $1 if /^RssAnon:\s+(\d+) kB/; }
	return -1;
}
reset_targets();
sql(q{SELECT ledger_ingest.create_pipeline('rss', 'inbox', '{"batch_max_events": 50000}');
	  SELECT ledger_ingest.add_raw_sink('rss', 'raw_rows'); SELECT ledger_ingest.start('rss')});
my $done = 0;
my $next_ledger = 0;
my %rss;
# sampled at every multiple of RSS_FIRST, so that growth shows as a trend
my @rss_targets;
for (my $t = $rss_first; $t < $rss_events; $t += $rss_first) { push @rss_targets, $t; }
push @rss_targets, $rss_events;
for my $target (@rss_targets)
{
	while ($done < $target)
	{
		my $chunk = $ledgers;
		sql("INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'rss', jsonb_set(doc, '{number}', to_jsonb(ledger + $next_ledger)) - 'parentHash' FROM doc_src ORDER BY ledger");
		$next_ledger += $chunk;
		$done += $chunk * $per;
		sql("SELECT ledger_ingest.wait_for('rss', $next_ledger - 1, '3600s')") eq 't' or die 'rss run stuck';
		sql('TRUNCATE raw_rows');
	}
	my $pid = sql(q{SELECT pid FROM ledger_ingest.status WHERE pipeline = 'rss'});
	$rss{$target} = hwm($pid);
}
$r{worker_rss_anon_kb} = \%rss;

my $cpu = `lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p'`; chomp $cpu;
my $nproc = `nproc`; chomp $nproc;
$r{machine} = "$cpu, $nproc cores";
$r{workload} = "$ledgers ledgers x $per ERC-20 Transfer events, $accounts accounts, $tokens tokens, seed $seed";
$r{runs} = $runs;

my %m = map { $_ => median(@{ $r{$_} }) } grep { ref $r{$_} eq 'ARRAY' } keys %r;
$r{median} = \%m;
open my $fh, '>', $out or die "$out: $!";
print $fh JSON::PP->new->pretty->canonical->encode(\%r);
close $fh;

my $copy = $m{copy_binary};
my $md = "\n### Throughput (median of $runs runs; $r{machine}; $r{workload})\n\n";
$md .= "| path | events/s | ratio | target |\n|---|---|---|---|\n";
my @rows = (
	[ '(a) COPY binary (physical limit)', 'copy_binary', 1, '' ],
	[ '(a) COPY text', 'copy_text', 1, '' ],
	[ '(a) INSERT ... SELECT of the rows from a table (what a set-based handler\'s statement does, at best)', 'insert_select', 1, '' ],
	[ '(b) ledger_ingest raw sink', 'raw_sink', 1, '>= 0.7 of COPY binary' ],
	[ '(c) ledger_ingest, trivial SQL handler (one INSERT)', 'trivial_handler', 1, '>= 100,000/s' ],
	[ '(c) ledger_ingest, PL/pgSQL balances handler', 'balances_handler', 1, '>= 50,000/s' ],
	[ '(d) external libpq client (pipeline mode), trivial', 'ext_trivial', 1, '' ],
	[ '(d) external libpq client (pipeline mode), balances', 'ext_balances', 1, '' ],
	[ '(e) ledger_ingest, set-based handler', 'set_handler', 1, '>= 0.5 of COPY binary' ],
	[ "(f) the producer's side: INSERT of the documents into the inbox (packed at insert)", 'inbox_insert', 1, '' ],
	[ '(g) COPY binary of the decoded rows (token, from, to, value numeric, ledger, event_index)', 'copy_decoded', 1, '' ]);
for my $row (@rows)
{
	$md .= sprintf "| %s | %d | %.2f of COPY binary | %s |\n", $row->[0], $m{ $row->[1] }, $m{ $row->[1] } / $copy, $row->[3];
}
$md .= sprintf "| (g) ledger_ingest table sink, Transfer decoded in C into those columns | %d | %.2f of COPY binary of the decoded rows | >= 0.6 |\n",
  $m{table_sink}, $m{table_sink} / $m{copy_decoded};
$md .= sprintf "\nledger_ingest vs the external client: trivial handler %.1fx, balances handler %.1fx (target >= 3x)\n",
  $m{trivial_handler} / $m{ext_trivial}, $m{balances_handler} / $m{ext_balances};
$md .= "\n| commit mode (trivial handler, " . ($small * $per) . " events) | synchronous_commit on | off |\n|---|---|---|\n";
$md .= sprintf "| %s | %d | %d |\n", $_, $m{"commit_${_}_sync_on"}, $m{"commit_${_}_sync_off"} for qw(event ledger batch);
$md .= sprintf "\nlatency inbox commit -> applied notification: idle p50 %.1f ms, p99 %.1f ms; under load p50 %.1f ms, p99 %.1f ms\n",
  $r{latency_idle}{p50}, $r{latency_idle}{p99}, $r{latency_load}{p50}, $r{latency_load}{p99};
$md .= "\nworker private memory (RssAnon): "
  . join(', ', map { sprintf '%d kB after %d events', $rss{$_}, $_ } @rss_targets) . "\n";
(my $mdfile = $out) =~ s/\.json$//;
open my $mh, '>', "$mdfile.md" or die;
print $mh $md;
close $mh;
$node->stop;
