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
use Cwd ();
use File::Basename ();

our @EXPORT = qw(li_root li_data li_stellar_replay li_stellar_documents li_node li_cluster li_gated_replay li_run_to_gate li_chain_sql li_doc
  li_load_erc20 li_load_ndjson li_wait
  li_scalar li_worker_pid li_wait_state li_wait_up li_listen li_drain
  li_anvil chain cast li_case li_dbh li_balances li_same_balances li_proxy);

# project root (LEDGER_INGEST_ROOT, else two levels above this file) and
# the real ledger data (LEDGER_INGEST_DATA, else ../shared/data beside the
# project), so that "make installcheck" runs the TAP tests without setup
sub li_root
{
	return $ENV{LEDGER_INGEST_ROOT}
	  // Cwd::abs_path(File::Basename::dirname(Cwd::abs_path(__FILE__)) . '/../..');
}
sub li_data { return $ENV{LEDGER_INGEST_DATA} // Cwd::abs_path(li_root() . '/..') . '/shared/data' }

# A cluster, not started, with ledger_ingest preloaded; %conf adds
# settings; $init passes options to init (allows_streaming => 1, say).
sub li_cluster
{
	my ($name, $init, %conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $init // {} });
	my $extra = join('', map { "$_ = $conf{$_}\n" } sort keys %conf);
	$node->append_conf('postgresql.conf', <<"CONF" . $extra);
shared_preload_libraries = 'ledger_ingest'
ledger_ingest.database = 'postgres'
max_worker_processes = 16
restart_after_crash = on
CONF
	return $node;
}

# A started cluster with ledger_ingest preloaded and created in "postgres".
sub li_node
{
	my ($name, %conf) = @_;
	my $node = li_cluster($name, undef, %conf);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION ledger_ingest');
	return $node;
}

# A synthetic ledger document, as a quoted SQL literal: ledger $n (1 to
# 15), its hash 0x and 64 times the hex digit of $n, no parentHash, and
# $nlogs logs (default 0) of address 0xaa...aa with no topics and empty
# data, in transaction 0.  For the tests whose ledgers need no chain
# (li_chain_sql's doc() builds linked ones).
sub li_doc
{
	my ($n, $nlogs) = @_;
	die "li_doc: ledger $n is not 1 to 15" unless $n >= 1 && $n <= 15;
	my $logs = join(',', map {
		sprintf('{"address":"0x%s","topics":[],"data":"0x","transactionIndex":"0x0","logIndex":"0x%x"}', 'aa' x 20, $_)
	} 0 .. ($nlogs // 0) - 1);
	return sprintf(q{'{"number":%d,"hash":"0x%s","logs":[%s]}'}, $n, sprintf('%x', $n) x 64, $logs);
}

# Synthetic linked ledgers in database $db (default "postgres"):
# doc(n, branch) has hash h(n, branch) and parent h(n - 1, branch) (or
# h(n - 1, parent_branch): the first ledger of a fork), and one log whose
# data is the number n * 10 + branch.
sub li_chain_sql
{
	my ($node, $db) = @_;
	$node->safe_psql($db // 'postgres', q{
		CREATE FUNCTION h(n bigint, branch int) RETURNS text LANGUAGE sql IMMUTABLE AS
			$$ SELECT '0x' || md5(branch || '/' || n) || md5(n || '/' || branch) $$;
		CREATE FUNCTION doc(n bigint, branch int DEFAULT 0, parent_branch int DEFAULT NULL) RETURNS jsonb
		LANGUAGE sql IMMUTABLE AS $$
			SELECT jsonb_build_object('number', n, 'hash', h(n, branch),
				'parentHash', h(n - 1, coalesce(parent_branch, branch)),
				'logs', jsonb_build_array(jsonb_build_object(
					'address', '0x' || repeat('aa', 20), 'topics', jsonb_build_array('0x' || repeat('01', 32)),
					'data', '0x' || lpad(to_hex(n * 10 + branch), 64, '0'), 'transactionIndex', 0, 'logIndex', 0))) $$;
	});
}

# Pipeline "mainnet" (inbox, commit "ledger") replaying the mainnet ledgers
# into the ERC-20 balances, with a handler that waits at ledger $gate for
# the advisory lock $key (li_run_to_gate holds it).  The ERC-20 fixture and
# its expected deltas are loaded.
sub li_gated_replay
{
	my ($node, $gate, $key) = @_;
	li_load_erc20($node);
	$node->safe_psql('postgres', qq{
		CREATE FUNCTION gate(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS \$\$
		BEGIN
			IF e.ledger = $gate THEN
				PERFORM pg_advisory_xact_lock_shared($key);
			END IF;
		END \$\$;
		SELECT ledger_ingest.create_pipeline('mainnet', 'inbox', '{"commit": "ledger"}');
		SELECT ledger_ingest.add_handler('mainnet', 'gate(ledger_ingest.event)');
		SELECT ledger_ingest.add_handler('mainnet', 'erc20_on_transfer(ledger_ingest.event)',
			'\\xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef');
	});
}

# Hold lock $key, load the mainnet ledgers into the inbox ($before_start,
# if given, runs next), start "mainnet" and return once its worker waits
# at the gate inside an apply transaction; returns the DBI connection that
# holds the lock (0 for the second value if the worker never got there).
sub li_run_to_gate
{
	my ($node, $key, $before_start) = @_;
	my $dbh = li_dbh($node);
	$dbh->do("SELECT pg_advisory_lock($key)");
	li_load_ndjson($node, 'mainnet', li_data() . '/evm/mainnet-blocks.ndjson');
	$before_start->() if $before_start;
	$node->safe_psql('postgres', q{SELECT ledger_ingest.start('mainnet')});
	for (1 .. 600)
	{
		return ($dbh, 1) if li_scalar($node, q{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'ledger_ingest mainnet'});
		usleep(100_000);
	}
	return ($dbh, 0);
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

# A DBI connection to "postgres" (autocommit, errors raised).
sub li_dbh
{
	my ($node) = @_;
	require DBI;
	return DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
		'', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
}

# A connection LISTENing on the ledger_ingest channel.
sub li_listen
{
	my ($node) = @_;
	my $dbh = li_dbh($node);
	$dbh->do('LISTEN ledger_ingest');
	return $dbh;
}

# The ERC-20 balances on both sides: (\%db, \%chain), account => balance,
# from the fixture's erc20_balances (without the zero address, which
# balances the mints) and from balanceOf on the node.
sub li_balances
{
	my ($node, $rpc, $token) = @_;
	my %chain = map { split / / } split /\n/, chain('balances', $rpc, $token);
	my %db = map { split /\|/ } split /\n/, li_scalar($node,
		q{SELECT '0x' || encode(account, 'hex'), balance FROM erc20_balances
		  WHERE account <> '\x0000000000000000000000000000000000000000'});
	return (\%db, \%chain);
}

# True when every balance in erc20_balances equals balanceOf (li_balances).
sub li_same_balances
{
	my ($db, $chain) = li_balances(@_);
	my $str = sub { my ($h) = @_; join(',', map { "$_=$h->{$_}" } sort keys %$h) };
	return $str->($db) eq $str->($chain);
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

# test/fault_proxy.js in front of $rpc, stopped when the test ends.
# Returns its URL and a function for its control API:
#   $ctl->('__fault', {mode => ..., ...}), $ctl->('__clear'),
#   $ctl->('__reset_stats'), $ctl->('__stats') and $ctl->('__faults') (GET;
#   decoded JSON).
my @proxies;
sub li_proxy
{
	my ($rpc) = @_;
	require HTTP::Tiny;
	require JSON::PP;
	my $portfile = "$PostgreSQL::Test::Utils::tmp_check/proxy" . scalar(@proxies) . '.port';
	my $h = IPC::Run::start([ 'node', li_root() . '/test/fault_proxy.js', '--listen', '0',
			'--upstream', $rpc, '--portfile', $portfile ],
		'<', \undef, '>', \my $out, '2>', \my $err);
	push @proxies, $h;
	for (1 .. 100) { last if -s $portfile; usleep(100_000); }
	die "the fault proxy did not start: $err" unless -s $portfile;
	chomp(my $port = slurp_file($portfile));
	my $url = "http://127.0.0.1:$port";
	my $http = HTTP::Tiny->new(timeout => 10);
	my $ctl = sub {
		my ($path, $body) = @_;
		my $r = $path eq '__stats' || $path eq '__faults'
		  ? $http->get("$url/$path")
		  : $http->post("$url/$path", { content => JSON::PP::encode_json($body // {}),
				headers => { 'content-type' => 'application/json' } });
		die "proxy $path: $r->{status} $r->{content}" unless $r->{success};
		return JSON::PP::decode_json($r->{content});
	};
	return ($url, $ctl);
}
END { $_->kill_kill for @proxies; }

# test/stellar/replay_server.mjs serving the real pubnet ledgers of
# li_data()/stellar (and the server's options in @extra), stopped when the
# test ends; its URL.
my @replays;
sub li_stellar_replay
{
	my (@extra) = @_;
	my $portfile = "$PostgreSQL::Test::Utils::tmp_check/replay" . scalar(@replays) . '.port';
	unlink $portfile;    # tmp_check is shared by the test files
	my $h = IPC::Run::start([ 'node', li_root() . '/test/stellar/replay_server.mjs', '--data',
			li_data() . '/stellar', '--portfile', $portfile, @extra ],
		'<', \undef, '>', \my $out, '2>', \my $err);
	push @replays, $h;
	for (1 .. 300) { last if -s $portfile; usleep(100_000); }
	die "the replay server did not start: $err" unless -s $portfile;
	chomp(my $port = slurp_file($portfile));
	return "http://127.0.0.1:$port";
}
END { $_->kill_kill for @replays; }

# The replay server's ledgers at $url as a producer sends them
# (test/stellar/documents.mjs), loaded into tables of $node's "postgres":
# docs (ledger, doc: a Stellar ledger document), rpc_events (getEvents'
# events: id, contract_id, tx_hash, topics, value), fees (tx_hash,
# fee_charged from the LedgerCloseMeta) and hdr_docs (the 406 golden headers
# as documents).
sub li_stellar_documents
{
	my ($node, $url) = @_;
	my $out = "$PostgreSQL::Test::Utils::tmp_check/stellar_documents_" . $node->name;
	mkdir $out;
	system('node', li_root() . '/test/stellar/documents.mjs', $url, li_data() . '/stellar', $out) == 0
	  or die 'documents.mjs failed';
	my $copy = q{WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')};
	$node->safe_psql('postgres', qq{
		CREATE TABLE docs (ledger bigint, doc jsonb);
		COPY docs FROM '$out/documents.tsv' $copy;
		CREATE TABLE rpc_events (id text, contract_id text, tx_hash text, topics text, value text);
		COPY rpc_events FROM '$out/events.tsv' $copy;
		CREATE TABLE fees (tx_hash text, fee_charged numeric);
		COPY fees FROM '$out/fees.tsv' $copy;
		CREATE TABLE hdr_docs (ledger bigint, doc jsonb);
		COPY hdr_docs FROM '$out/headers.tsv' $copy;
	});
}

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
