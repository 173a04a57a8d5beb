# LiTest -- shared helpers for ledger_ingest's TAP tests.
package LiTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

our @EXPORT = qw(li_root li_data li_node li_load_erc20 li_load_ndjson li_wait
  li_scalar li_worker_pid li_wait_state li_wait_up li_listen li_drain
  li_anvil chain cast li_case);

# project root and the real ledger data (../shared/data)
sub li_root { return $ENV{LEDGER_INGEST_ROOT} // die "LEDGER_INGEST_ROOT not set" }
sub li_data { return $ENV{LEDGER_INGEST_DATA} // die "LEDGER_INGEST_DATA not set" }

# A started cluster with ledger_ingest preloaded and created in "postgres".
sub li_node
{
	my ($name, %conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $extra = join('', map { "$_ = $conf{$_}\n" } sort keys %conf);
	$node->append_conf('postgresql.conf', <<"CONF" . $extra);
shared_preload_libraries = 'ledger_ingest'
ledger_ingest.database = 'postgres'
max_worker_processes = 16
restart_after_crash = on
CONF
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION ledger_ingest');
	return $node;
}

# The ERC-20 balances fixture plus the expected deltas of the mainnet data.
sub li_load_erc20
{
	my ($node) = @_;
	$node->safe_psql('postgres', slurp_file(li_root() . '/test/fixtures/erc20.sql'));
	$node->safe_psql('postgres',
		"COPY erc20_expected FROM '" . li_data()
		  . "/evm/mainnet-blocks.erc20-deltas.csv' WITH (FORMAT csv, HEADER)");
}

# Insert every line of an ndjson file as an inbox document of $pipeline.
sub li_load_ndjson
{
	my ($node, $pipeline, $file) = @_;
	$node->safe_psql('postgres', <<"SQL");
CREATE TABLE IF NOT EXISTS nd (doc jsonb);
TRUNCATE nd;
COPY nd FROM '$file' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$pipeline', doc FROM nd;
SQL
}

# One case of a reported family ("faults injected", "crash points", "bad
# inputs", "security cases"): a test, ok($ok, "$family: $name"), also
# appended to $LEDGER_INGEST_REPORT for the per-family summary that
# test/run-tests.sh prints.  Returns the test's result.
sub li_case
{
	my ($family, $name, $ok) = @_;
	my $r = ok($ok, "$family: $name");
	if (my $f = $ENV{LEDGER_INGEST_REPORT})
	{
		open(my $fh, '>>', $f) or die "$f: $!";
		print $fh "$family\t" . ($r ? 'passed' : 'failed') . "\t$name\n";
		close $fh;
	}
	return $r;
}

sub li_scalar
{
	my ($node, $sql) = @_;
	return scalar $node->safe_psql('postgres', $sql);
}

# wait_for() on the server; true when the cursor reached $ledger in time.
sub li_wait
{
	my ($node, $pipeline, $ledger, $secs) = @_;
	$secs //= 60;
	return li_scalar($node,
		"SELECT ledger_ingest.wait_for('$pipeline', $ledger, '${secs}s')") eq 't';
}

sub li_worker_pid
{
	my ($node, $pipeline) = @_;
	return li_scalar($node,
		"SELECT coalesce(pid, 0) FROM ledger_ingest.status WHERE pipeline = '$pipeline'");
}

# Poll status until the pipeline is in $state (or $secs pass); returns it.
sub li_wait_state
{
	my ($node, $pipeline, $state, $secs) = @_;
	$secs //= 60;
	my $got = '';
	for (my $i = 0; $i < $secs * 10; $i++)
	{
		$got = li_scalar($node,
			"SELECT state FROM ledger_ingest.status WHERE pipeline = '$pipeline'");
		return $got if $got eq $state;
		usleep(100_000);
	}
	return $got;
}

# After a crash restart: wait until the server accepts queries again.
sub li_wait_up
{
	my ($node) = @_;
	for (my $i = 0; $i < 600; $i++)
	{
		my $ret = $node->psql('postgres', 'SELECT 1');
		return 1 if $ret == 0;
		usleep(100_000);
	}
	return 0;
}

# A connection LISTENing on the ledger_ingest channel.
sub li_listen
{
	my ($node) = @_;
	require DBI;
	my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
		'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
	$dbh->do('LISTEN ledger_ingest');
	return $dbh;
}

# The notifications received until none arrived for $quiet seconds (1),
# decoded from JSON.
sub li_drain
{
	my ($dbh, $quiet) = @_;
	$quiet //= 1.0;
	require JSON::PP;
	my @got;
	my $last = Time::HiRes::time();
	while (Time::HiRes::time() - $last < $quiet)
	{
		while (my $n = $dbh->pg_notifies)
		{
			push @got, JSON::PP::decode_json($n->[2]);
			$last = Time::HiRes::time();
		}
		usleep(20_000);
	}
	return @got;
}

# A local anvil node (test/chain.sh), stopped when the test ends; its URL.
my $anvil_state;
sub li_anvil
{
	$anvil_state = "$PostgreSQL::Test::Utils::tmp_check/anvil";
	mkdir $anvil_state;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $rpc = chain('start', $port, $anvil_state);
	die "anvil did not start" unless $rpc =~ m{^http://};
	return $rpc;
}
END { system('bash', li_root() . '/test/chain.sh', 'stop', $anvil_state) if defined $anvil_state; }

# test/chain.sh with arguments; its output.
sub chain
{
	my $out = `bash @{[ li_root() ]}/test/chain.sh @_`;
	die "chain.sh @_ failed" if $?;
	chomp $out;
	return $out;
}

# cast (Foundry) with a list of arguments, run from its own directory (it
# scans the current directory for a foundry project); its output.
sub cast
{
	my @args = @_;
	my $dir = li_root() . '/test/node_modules/@foundry-rs/cast-linux-amd64/bin';
	my ($out, $err) = ('', '');
	IPC::Run::run([ "$dir/cast", @args ],
		'<', \undef, '>', \$out, '2>', \$err,
		init => sub { chdir $dir or die "chdir $dir: $!" })
	  or die "cast @args failed: $err";
	chomp $out;
	return $out;
}

1;
