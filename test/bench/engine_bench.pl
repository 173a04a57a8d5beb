# Engine benchmark: journaling overhead on the apply path, revert time, and
# ABI decoding inside the worker and from SQL.
#
#   make bench        (test/bench/bench.sh runs this and the ABI core bench)
#
# In one run, on one throwaway cluster, with a deterministic workload:
#  - apply rate (events/s) of an inbox pipeline whose PL/pgSQL handler
#    upserts balances, with the balances table untracked and tracked
#    (journaled for reorgs), alternating, median of RUNS runs each;
#  - the time of one revert of 100 ledgers holding 10,000 journaled row
#    changes, from the worker's own measurement in its reorg log line,
#    median of RUNS runs;
#  - decoded ERC-20 Transfer events per second inside the worker: the same
#    pipeline with a no-op SQL handler registered by event signature (args
#    decoded in C) and by topic0 (no decoding); the decode rate is
#    events / (time with decoding - time without), median of RUNS runs;
#  - decode_event() from SQL over the same logs, events/s.
# Prints a markdown table and writes the raw numbers as JSON to $BENCH_OUT.
use strict;
use warnings;
use DBI;
use JSON::PP;
use List::Util qw(sum);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time usleep);

my $runs = $ENV{RUNS} // 5;
my $ledgers = $ENV{LEDGERS} // 200;
my $per = $ENV{EVENTS_PER_LEDGER} // 100;
my $out = $ENV{BENCH_OUT} // "$PostgreSQL::Test::Utils::tmp_check/bench-reorg.json";

my $node = PostgreSQL::Test::Cluster->new('bench_reorg');
$node->init;
$node->append_conf('postgresql.conf', <<'CONF');
shared_preload_libraries = 'ledger_ingest'
ledger_ingest.database = 'postgres'
max_worker_processes = 16
shared_buffers = '256MB'
CONF
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION ledger_ingest;
	CREATE TABLE bal (pipeline text, account int, amount numeric NOT NULL, PRIMARY KEY (pipeline, account));
	CREATE FUNCTION on_event(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO bal AS b VALUES (e.pipeline, get_byte(e.data, 30) * 256 + get_byte(e.data, 31), 1)
			ON CONFLICT (pipeline, account) DO UPDATE SET amount = b.amount + 1;
	END $$;
	CREATE FUNCTION h(n bigint, seed int) RETURNS text LANGUAGE sql IMMUTABLE AS
		$$ SELECT '0x' || md5(seed || 'a' || n) || md5(seed || 'b' || n) $$;
	-- ledger n of branch seed: per events, account = key(n, i)
	CREATE FUNCTION doc(n bigint, seed int, per int, distinct_keys bool) RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object('number', n, 'hash', h(n, seed),
			'parentHash', CASE WHEN n = 0 THEN h(-1, 0) ELSE h(n - 1, CASE WHEN seed > 0 AND n - 1 <= 200 THEN 0 ELSE seed END) END,
			'logs', (SELECT jsonb_agg(jsonb_build_object(
				'address', '0x' || repeat('11', 20),
				'topics', jsonb_build_array('0x' || repeat('22', 32)),
				'data', '0x' || lpad(to_hex(CASE WHEN distinct_keys THEN (n * per + i) % 60000 ELSE (n * 7919 + i * 104729) % 2000 END), 64, '0'),
				'transactionIndex', i, 'logIndex', i) ORDER BY i)
				FROM generate_series(0, per - 1) AS i))
	$$;
	-- ERC-20 Transfer logs: 3 topics, 32-byte value
	CREATE FUNCTION tdoc(n bigint, per int) RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object('number', n, 'hash', h(n, 9),
			'logs', (SELECT jsonb_agg(jsonb_build_object(
				'address', '0x' || repeat('11', 20),
				'topics', jsonb_build_array('0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef',
					'0x' || repeat('00', 12) || lpad(to_hex(n * per + i), 40, '0'),
					'0x' || repeat('00', 12) || lpad(to_hex(n * per + i + 7), 40, '0')),
				'data', '0x' || lpad(to_hex(n * 1000003 + i), 64, '0'),
				'transactionIndex', i, 'logIndex', i) ORDER BY i)
				FROM generate_series(0, per - 1) AS i))
	$$;
	CREATE FUNCTION noop(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$ SELECT $$;
});

my $events = $ledgers * $per;

# wait until $name has applied ledger $last, with short wait_for() calls on
# one connection: a single long one would hold a snapshot for the whole run
# and keep the handlers' dead row versions from being pruned (README,
# wait_for)
my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
	'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
sub wait_done
{
	my ($name, $last) = @_;
	for (1 .. 6000)
	{
		my ($ok) = $dbh->selectrow_array("SELECT ledger_ingest.wait_for('$name', $last, '100ms')");
		return 1 if $ok;
	}
	return 0;
}

sub pipeline_run
{
	my ($name, $tracked) = @_;
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$name', 'inbox', '{"batch_max_ledgers": 50}');
		SELECT ledger_ingest.add_handler('$name', 'on_event(ledger_ingest.event)');
		} . ($tracked ? "SELECT ledger_ingest.track_table('$name', 'bal');" : '') . qq{
		INSERT INTO ledger_ingest.inbox (pipeline, doc)
			SELECT '$name', doc(n, 0, $per, false) FROM generate_series(0, $ledgers - 1) n;
	});
	my $t0 = time;
	$node->safe_psql('postgres', "SELECT ledger_ingest.start('$name')");
	my $ok = wait_done($name, $ledgers - 1);
	my $secs = time - $t0;
	die "$name did not finish" unless $ok;
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$name')");
	return $events / $secs;
}

sub median { my @s = sort { $a <=> $b } @_; return $s[int($#s / 2)]; }

my (@untracked, @tracked);
for my $r (1 .. $runs)
{
	push @untracked, pipeline_run("u$r", 0);
	push @tracked, pipeline_run("t$r", 1);
}

# revert: 300 ledgers of $per events on distinct keys, fork after 200
my @revert_ms;
my $log = $node->logfile;
for my $r (1 .. $runs)
{
	my $p = "rv$r";
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"batch_max_ledgers": 50}');
		SELECT ledger_ingest.add_handler('$p', 'on_event(ledger_ingest.event)');
		SELECT ledger_ingest.track_table('$p', 'bal');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$p', doc(n, 0, $per, true) FROM generate_series(0, 300) n;
		SELECT ledger_ingest.start('$p');
	});
	$node->safe_psql('postgres', "SELECT ledger_ingest.wait_for('$p', 300, '600s')") eq 't' or die;
	my $journal = $node->safe_psql('postgres',
		"SELECT count(*) FROM ledger_ingest.journal WHERE pipeline = '$p' AND ledger > 200");
	$node->safe_psql('postgres', "INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$p', doc(201, $r, 1, true)");
	my $ms;
	for (1 .. 600)
	{
		my $text = slurp_file($log);
		if ($text =~ /pipeline "$p": reorg of depth 100: reverted ledgers 201 to 300 in ([0-9.]+) ms/) { $ms = $1; last; }
		usleep(100_000);
	}
	die "no revert measured for $p" unless defined $ms;
	push @revert_ms, $ms;
	print STDERR "revert $r: $journal journaled changes in $ms ms\n";
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$p')");
}

# decoding inside the worker: by signature vs by topic0, same no-op handler
sub decode_run
{
	my ($name, $by_sig) = @_;
	my $reg = $by_sig
	  ? "event => 'Transfer(address indexed from, address indexed to, uint256 value)'"
	  : "topic0 => '\\xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef'";
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$name', 'inbox', '{"batch_max_ledgers": 50}');
		SELECT ledger_ingest.add_handler('$name', 'noop(ledger_ingest.event)', $reg);
		INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$name', tdoc(n, $per) FROM generate_series(0, $ledgers - 1) n;
	});
	my $t0 = time;
	$node->safe_psql('postgres', "SELECT ledger_ingest.start('$name')");
	wait_done($name, $ledgers - 1) or die "$name did not finish";
	my $secs = time - $t0;
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$name')");
	return $secs;
}
my (@raw_s, @sig_s, @worker_decode, @sql_decode);
for my $r (1 .. $runs)
{
	my $raw = decode_run("raw$r", 0);
	my $sig = decode_run("sig$r", 1);
	push @raw_s, $raw;
	push @sig_s, $sig;
	push @worker_decode, $sig > $raw ? $events / ($sig - $raw) : 0;
}
$node->safe_psql('postgres', qq{
	CREATE TABLE logs AS SELECT (SELECT array_agg(decode(substr(t, 3), 'hex')) FROM jsonb_array_elements_text(l->'topics') t) AS topics,
		decode(substr(l->>'data', 3), 'hex') AS data
	FROM generate_series(0, $ledgers - 1) n, jsonb_array_elements(tdoc(n, $per)->'logs') l;
});
for my $r (1 .. $runs)
{
	my $t0 = time;
	$node->safe_psql('postgres',
		q{SELECT count(ledger_ingest.decode_event('Transfer(address indexed from, address indexed to, uint256 value)', topics, data)) FROM logs});
	push @sql_decode, $events / (time - $t0);
}

my $cpu = `lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p'`;
chomp $cpu;
my $nproc = `nproc`;
chomp $nproc;
my %result = (
	machine => "$cpu, $nproc cores",
	workload => "$ledgers ledgers x $per events, PL/pgSQL upsert handler, 2000 accounts",
	runs => $runs,
	untracked_events_per_s => [ map { int } @untracked ],
	tracked_events_per_s => [ map { int } @tracked ],
	revert_100_ledgers_10k_changes_ms => \@revert_ms,
	noop_handler_by_topic0_s => \@raw_s,
	noop_handler_by_signature_s => \@sig_s,
	worker_decoded_events_per_s => [ map { int } @worker_decode ],
	sql_decode_event_per_s => [ map { int } @sql_decode ],
);
my ($mu, $mt, $mr) = (median(@untracked), median(@tracked), median(@revert_ms));
my ($mwd, $msd) = (median(@worker_decode), median(@sql_decode));
$result{median} = { untracked => int($mu), tracked => int($mt), ratio => sprintf('%.2f', $mt / $mu) + 0,
	revert_ms => $mr + 0, worker_decode => int($mwd), sql_decode => int($msd) };
open my $fh, '>', $out or die "$out: $!";
print $fh JSON::PP->new->pretty->canonical->encode(\%result);
close $fh;

my $md = '';
$md .= "\n### Engine: reorg journal and ABI decoding (median of $runs runs; $result{machine})\n\n";
$md .= "| measure | value |\n|---|---|\n";
$md .= sprintf "| apply, balances table untracked | %d events/s |\n", $mu;
$md .= sprintf "| apply, balances table tracked (journaled) | %d events/s |\n", $mt;
$md .= sprintf "| tracked / untracked | %.2f (target >= 0.70) |\n", $mt / $mu;
$md .= sprintf "| revert of 100 ledgers, 10,000 journaled row changes | %.1f ms (target < 1000 ms) |\n", $mr;
$md .= sprintf "| Transfer events decoded per second inside the worker (by signature vs by topic0) | %d events/s (target >= 500,000) |\n", $mwd;
$md .= sprintf "| decode_event() from SQL | %d events/s |\n", $msd;
(my $mdfile = $out) =~ s/\.json$//;
open my $mh, '>', "$mdfile.md" or die "$mdfile.md: $!";
print $mh $md;
close $mh;
# PostgreSQL::Test::Utils sends STDOUT to its log: bench.sh prints the .md
$dbh->disconnect;
$node->stop;
