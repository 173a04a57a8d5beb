# Operations: DROP DATABASE ... WITH (FORCE) of the pipelines' database
# while a pipeline runs (must not hang, must not crash-loop, recovers when
# the database is back), DROP EXTENSION while running, and a server started
# without shared_preload_libraries (a clear error from every function that
# needs the worker).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use LiTest;

my $node = PostgreSQL::Test::Cluster->new('operations');
$node->init;
$node->append_conf('postgresql.conf', <<'CONF');
shared_preload_libraries = 'ledger_ingest'
ledger_ingest.database = 'ops'
max_worker_processes = 16
CONF
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE ops');

sub setup
{
	$node->safe_psql('ops', q{
		CREATE EXTENSION ledger_ingest;
		CREATE TABLE seen (ledger bigint);
		CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$ INSERT INTO seen VALUES (e.ledger) $$;
		SELECT ledger_ingest.create_pipeline('p', 'inbox');
		SELECT ledger_ingest.add_handler('p', 'see(ledger_ingest.event)');
		SELECT ledger_ingest.start('p');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('p', jsonb_build_object(
			'number', 1, 'hash', '0x' || repeat('11', 32),
			'logs', jsonb_build_array(jsonb_build_object('address', '0x' || repeat('aa', 20),
				'topics', '[]'::jsonb, 'data', '0x', 'transactionIndex', 0, 'logIndex', 0))));
	});
	return $node->safe_psql('ops', q{SELECT ledger_ingest.wait_for('p', 1, '60s')}) eq 't';
}

ok(setup(), 'a pipeline runs in database ops');
ok($node->safe_psql('ops', q{SELECT pid FROM ledger_ingest.status WHERE pipeline = 'p'}) > 0, 'its worker runs');

my $t0 = time;
$node->safe_psql('postgres', 'DROP DATABASE ops WITH (FORCE)');
ok(time - $t0 < 10, sprintf('DROP DATABASE WITH (FORCE) returned in %.1f s', time - $t0));
sleep 12;
my $log = slurp_file($node->logfile);
my $fatals = () = $log =~ /FATAL:  database "ops" does not exist/g;
is($fatals, 0, 'no launcher restart loop against the dropped database');
like($log, qr/ledger_ingest: database "ops" does not exist; waiting for it/, 'the supervisor says it waits');
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ledger_ingest supervisor'}),
	'1', 'the supervisor is still up');

$node->safe_psql('postgres', 'CREATE DATABASE ops');
ok(setup(), 'with the database back, pipelines run again');

# DROP EXTENSION while the worker runs: no hang, the worker goes away
$t0 = time;
$node->safe_psql('ops', 'DROP EXTENSION ledger_ingest CASCADE');
ok(time - $t0 < 10, 'DROP EXTENSION while running returns promptly');
my $workers = '';
for (1 .. 100)
{
	$workers = $node->safe_psql('ops',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ledger_ingest worker'});
	last if $workers eq '0';
	usleep(100_000);
}
is($workers, '0', 'the worker exits after DROP EXTENSION');
$node->safe_psql('ops', 'DROP TABLE seen');
ok(setup(), 'CREATE EXTENSION again: pipelines run again');

# without shared_preload_libraries
$node->stop;
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->start;
for my $sql (
	q{SELECT ledger_ingest.create_pipeline('q', 'inbox')},
	q{SELECT ledger_ingest.start('p')},
	q{SELECT ledger_ingest.stop('p')},
	q{SELECT ledger_ingest.wait_for('p', 1, '1s')},
	q{SELECT ledger_ingest.cursor_cas('p', ROW(1, NULL, NULL), ROW(0, NULL, NULL))},
	q{SELECT ledger_ingest.rewind('p', 0)},
	q{SELECT * FROM ledger_ingest.status},
	q{SELECT ledger_ingest.drop_pipeline('p')})
{
	my ($ret, $out, $err) = $node->psql('ops', $sql);
	like($err, qr/ledger_ingest must be loaded via shared_preload_libraries/, "without preload: $sql");
}

$node->stop;
done_testing();
