# Many databases (family "operations"): with ledger_ingest.database unset,
# pipelines run in every database where the extension is installed, each
# with its own launcher; a server that preloads the library without the
# extension anywhere keeps no connection open (CREATE DATABASE ... TEMPLATE
# and ALTER DATABASE ... RENAME work); pause_database() takes a database
# out of service (no ledger_ingest process connected to it, across a
# restart) until resume_database(); DROP EXTENSION lets its launcher go; a
# database where the worker cannot write (default_transaction_read_only)
# is reported in status and the log, with no restart loop.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $F = 'operations';
my $node = PostgreSQL::Test::Cluster->new('databases');
$node->init;
$node->append_conf('postgresql.conf', <<'CONF');
shared_preload_libraries = 'ledger_ingest'
max_worker_processes = 16
CONF
$node->start;

# ledger_ingest processes connected to database $db (or to any database)
sub connected
{
	my ($db) = @_;
	my $where = defined $db ? "datname = '$db'" : 'datid IS NOT NULL';
	return li_scalar($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'ledger_ingest%' AND $where");
}

# poll until connected($db) is $want (or 30 s pass); returns the last count
sub settle
{
	my ($db, $want) = @_;
	my $n;
	for (1 .. 300)
	{
		$n = connected($db);
		return $n if $n == $want;
		usleep(100_000);
	}
	return $n;
}

$node->safe_psql('postgres', 'CREATE DATABASE a; CREATE DATABASE b');
sleep 3;    # every database probed by then
li_case($F, 'databases: preloaded, the extension nowhere: no connection open to any database',
	settle(undef, 0) == 0
	  && li_scalar($node, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ledger_ingest supervisor'}) eq '1');
li_case($F, 'databases: CREATE DATABASE ... TEMPLATE and ALTER DATABASE ... RENAME of a database without the extension work',
	$node->psql('postgres', 'CREATE DATABASE c TEMPLATE a') == 0
	  && $node->psql('postgres', 'ALTER DATABASE c RENAME TO c2') == 0
	  && $node->psql('postgres', 'DROP DATABASE c2') == 0);

my $doc = q{jsonb_build_object('number', n, 'hash', '0x' || lpad(to_hex(n), 64, '0'), 'logs', jsonb_build_array(
	jsonb_build_object('address', '0x' || repeat('aa', 20), 'topics', '[]'::jsonb, 'data', '0x',
		'transactionIndex', 0, 'logIndex', 0)))};
for my $db ('a', 'b')
{
	$node->safe_psql($db, qq{
		CREATE EXTENSION ledger_ingest;
		CREATE TABLE seen (ledger bigint);
		CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS \$\$ INSERT INTO seen VALUES (e.ledger) \$\$;
		SELECT ledger_ingest.create_pipeline('p', 'inbox');
		SELECT ledger_ingest.add_handler('p', 'see(ledger_ingest.event)');
		SELECT ledger_ingest.start('p');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'p', $doc FROM generate_series(1, 3) n;
	});
}
sub reached
{
	my ($db, $ledger) = @_;
	return $node->safe_psql($db, "SELECT ledger_ingest.wait_for('p', $ledger, '60s')") eq 't'
	  && $node->safe_psql($db, "SELECT count(*) FROM seen") eq $ledger;
}
li_case($F, 'databases: a pipeline of the same name runs in each of two databases, each applied once',
	reached('a', 3) && reached('b', 3)
	  && settle('a', 2) == 2 && settle('b', 2) == 2);    # a launcher and a worker each

# pause database a: nothing stays connected, a rename works, across a restart
$node->safe_psql('a', 'SELECT ledger_ingest.pause_database()');
li_case($F, 'databases: pause_database() stops the launcher and workers of that database only',
	settle('a', 0) == 0 && settle('b', 2) == 2);
li_case($F, 'databases: a paused database can be renamed',
	$node->psql('postgres', 'ALTER DATABASE a RENAME TO a2') == 0);
$node->safe_psql('a2', "INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'p', $doc FROM generate_series(4, 4) n");
$node->restart;
sleep 3;
li_case($F, 'databases: a paused database stays paused across a restart; the other runs',
	connected('a2') == 0 && $node->safe_psql('a2', 'SELECT count(*) FROM seen') eq '3'
	  && settle('b', 2) == 2);
$node->safe_psql('a2', 'SELECT ledger_ingest.resume_database()');
li_case($F, 'databases: resume_database() runs the pipeline again; the pending ledger applied once',
	reached('a2', 4));

# pause needs the database owner
$node->safe_psql('a2', q{CREATE ROLE admin_only LOGIN IN ROLE ledger_ingest_admin});
my ($ret, $out, $err) = $node->psql('a2', 'SET ROLE admin_only; SELECT ledger_ingest.pause_database()');
li_case($F, 'databases: only the database owner may pause it',
	$ret != 0 && $err =~ /permission denied to pause or resume ledger_ingest in database "a2"/);

# DROP EXTENSION: the launcher of b goes away; b can then be renamed
$node->safe_psql('b', 'DROP EXTENSION ledger_ingest CASCADE');
li_case($F, 'databases: after DROP EXTENSION no ledger_ingest process stays connected to the database',
	settle('b', 0) == 0 && $node->psql('postgres', 'ALTER DATABASE b RENAME TO b2') == 0);
# CREATE EXTENSION again: served again
$node->safe_psql('b2', 'CREATE EXTENSION ledger_ingest');
li_case($F, 'databases: CREATE EXTENSION in a database starts its launcher',
	settle('b2', 1) == 1);

# a read-only database: reported, retried, no restart loop
$node->safe_psql('a2', 'ALTER DATABASE a2 SET default_transaction_read_only = on');
$node->safe_psql('a2', q{SELECT pg_terminate_backend(pid) FROM ledger_ingest.status WHERE pipeline = 'p'});
$node->safe_psql('a2', "SET default_transaction_read_only = off;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'p', $doc FROM generate_series(5, 5) n");
my ($state, $error, $pid1);
for (1 .. 200)
{
	($state, $error, $pid1) = split /\|/, $node->safe_psql('a2',
		q{SELECT state, coalesce(last_error, ''), coalesce(pid, 0) FROM ledger_ingest.status WHERE pipeline = 'p'});
	last if $error =~ /25006/;
	usleep(100_000);
}
sleep 4;
my $pid2 = $node->safe_psql('a2', q{SELECT coalesce(pid, 0) FROM ledger_ingest.status WHERE pipeline = 'p'});
note("read-only: $state, $error, worker $pid1 then $pid2");
li_case($F, 'databases: a read-only database is reported in status and the log, and retried without a restart loop',
	$state eq 'retrying' && $error =~ /^25006: cannot execute .* in a read-only transaction/
	  && $pid1 > 0 && $pid1 eq $pid2
	  && slurp_file($node->logfile) =~ /ledger_ingest pipeline "p": could not record its error: cannot execute UPDATE in a read-only transaction/);
$node->safe_psql('a2', 'SET default_transaction_read_only = off; ALTER DATABASE a2 RESET default_transaction_read_only');
$node->safe_psql('a2', q{SELECT pg_terminate_backend(pid) FROM ledger_ingest.status WHERE pipeline = 'p'});
li_case($F, 'databases: once writable again, the pending ledger is applied once', reached('a2', 5));

$node->stop;
done_testing();
