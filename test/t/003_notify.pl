# Notifications: exactly one "applied" notification per committed apply
# transaction, none for a transaction whose handler raised; a handler that
# keeps failing puts the pipeline in 'failed' after max_retries with the
# SQLSTATE, message, ledger, event and handler in last_error, and one
# "state" notification.
use strict;
use warnings;
use DBI;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use LiTest;

my $node = li_node('notify');
my $blocks = li_data() . '/evm/mainnet-blocks.ndjson';

my $dbh = li_listen($node);
sub drain { return li_drain($dbh, @_); }

# 1. "ledger" commit mode: one transaction, hence one notification, per ledger
$node->safe_psql('postgres', q{
	CREATE TABLE seen (pipeline text, ledger bigint, event_index int);
	CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO seen VALUES (e.pipeline, e.ledger, e.event_index) $$;
	SELECT ledger_ingest.create_pipeline('n1', 'inbox', '{"commit":"ledger"}');
	SELECT ledger_ingest.add_handler('n1', 'see(ledger_ingest.event)');
});
li_load_ndjson($node, 'n1', $blocks);
$node->safe_psql('postgres', "SELECT ledger_ingest.start('n1')");
ok(li_wait($node, 'n1', 17000000, 120), 'n1 reached the last ledger');
my @n = grep { $_->{type} eq 'applied' && $_->{pipeline} eq 'n1' } drain(1.5);
is(scalar @n, 60, 'one applied notification per committed ledger transaction');
my %ledgers = map { $_->{ledger} => 1 } @n;
is(scalar keys %ledgers, 60, 'each ledger notified once');
my $events = 0;
$events += $_->{events} for @n;
is($events, 1540, 'the notified event counts add up to 1540');
is_deeply([ map { $_->{ledger} } @n ], [ sort { $a <=> $b } map { $_->{ledger} } @n ],
	'notifications arrive in ledger order');
like($n[-1]{hash}, qr/^0x[0-9a-f]{64}$/, 'the payload carries the ledger hash');
is( $n[-1]{hash},
	'0x' . li_scalar($node, q{SELECT encode(ledger_hash, 'hex') FROM ledger_ingest.cursor WHERE pipeline = 'n1'}),
	'the last notification names the committed cursor');

# 2. a handler that raises on one ledger: no notification for it or after
my $bad = li_scalar($node,
	q{SELECT min(ledger) FROM seen WHERE pipeline = 'n1' AND ledger > 1000000 AND ledger IN
	  (SELECT ledger FROM seen GROUP BY 1 HAVING count(*) > 3)});
$node->safe_psql('postgres', qq{
	CREATE FUNCTION picky(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
		IF e.ledger = $bad AND e.event_index > 0 THEN
			RAISE EXCEPTION 'picky refuses ledger %', e.ledger USING ERRCODE = 'check_violation';
		END IF;
		INSERT INTO seen VALUES (e.pipeline, e.ledger, e.event_index);
	END \$\$;
	SELECT ledger_ingest.create_pipeline('n2', 'inbox', '{"commit":"ledger","max_retries":2}');
	SELECT ledger_ingest.add_handler('n2', 'picky(ledger_ingest.event)');
});
li_load_ndjson($node, 'n2', $blocks);
$node->safe_psql('postgres', "SELECT ledger_ingest.start('n2')");
is(li_wait_state($node, 'n2', 'failed', 60), 'failed', 'the pipeline failed after max_retries');
my @all = grep { $_->{pipeline} eq 'n2' } drain(1.5);
my @applied = grep { $_->{type} eq 'applied' } @all;
my @state = grep { $_->{type} eq 'state' } @all;
my $before = li_scalar($node,
	"SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'n2'");
is(scalar @applied, $before, 'one notification per committed ledger before the failure');
ok(!(grep { $_->{ledger} >= $bad } @applied), 'no notification for the failing ledger or later');
is(scalar @state, 2, 'two state notifications: start() and the failure');
is($state[0]{state}, 'running', 'start() announced running');
is($state[1]{state}, 'failed', 'the worker announced failed');
is($state[1]{sqlstate}, '23514', 'the failed notification carries the SQLSTATE');
ok(!exists $state[1]{error} && !grep({ /picky refuses/ } values %{ $state[1] }),
	'and not the error text: any role may LISTEN; the text is in status');
my $err = li_scalar($node, "SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'n2'");
like($err, qr/^23514: picky refuses ledger $bad \(ledger $bad, tx_index \d+, event_index 1, handler picky\(ledger_ingest.event\)\)$/,
	'last_error has SQLSTATE, message, ledger, event and handler');
is(li_scalar($node, "SELECT errors FROM ledger_ingest.status WHERE pipeline = 'n2'"),
	'3', 'three failed attempts were counted (max_retries = 2)');
is(li_scalar($node, "SELECT count(*) FROM seen WHERE pipeline = 'n2' AND ledger >= $bad"),
	'0', 'nothing of the failing ledger was applied');
is( li_scalar($node, "SELECT ledger FROM ledger_ingest.status WHERE pipeline = 'n2'"),
	li_scalar($node, "SELECT max(number) FROM ledger_ingest.ledger WHERE pipeline = 'n2' AND number < $bad"),
	'the cursor stays on the last good ledger');
is(li_scalar($node, "SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = 'n2' AND ledger >= $bad"),
	li_scalar($node, "SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'n1' AND number >= $bad"),
	'the failing ledger and the rest stay in the inbox');

# the worker is gone and is not restarted for a failed pipeline
usleep(1_500_000);
is(li_worker_pid($node, 'n2'), '0', 'no worker runs for a failed pipeline');

# after fixing the handler, start() resumes from the cursor
$node->safe_psql('postgres', q{
	CREATE OR REPLACE FUNCTION picky(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO seen VALUES (e.pipeline, e.ledger, e.event_index);
	END $$;
	SELECT ledger_ingest.start('n2');
});
ok(li_wait($node, 'n2', 17000000, 120), 'n2 resumed and completed');
is( li_scalar($node,
		q{SELECT count(*) FROM (SELECT ledger, event_index FROM seen WHERE pipeline = 'n2'
		  EXCEPT ALL SELECT ledger, event_index FROM seen WHERE pipeline = 'n1') d}),
	'0', 'n2 saw exactly the events n1 saw, once each');
is(li_scalar($node, "SELECT count(*) FROM seen WHERE pipeline = 'n2'"), '1540', 'all 1540 events');

# an inbox write wakes its pipeline's worker when it commits: with poll_ms
# at an hour, the document is still applied at once; a rolled-back write
# wakes nobody and leaves nothing behind; another pipeline's worker sleeps on
# (each cycle of a worker shows in its pg_stat_activity.state_change)
$node->safe_psql('postgres', q{
	SELECT ledger_ingest.create_pipeline('wake', 'inbox', '{"poll_ms": 3600000}');
	SELECT ledger_ingest.start('wake');
	SELECT ledger_ingest.create_pipeline('sleeper', 'inbox', '{"poll_ms": 3600000}');
	SELECT ledger_ingest.start('sleeper');
});
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 2 FROM ledger_ingest._shmem_status() WHERE pipeline IN ('wake', 'sleeper') AND worker_state = 'idle'}),
	'wake: the workers are up and asleep');
my $sleeper_cycle = li_scalar($node,
	q{SELECT state_change FROM pg_stat_activity WHERE application_name = 'ledger_ingest sleeper'});
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('wake', } . li_doc(5) . q{);
	ROLLBACK;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('wake', } . li_doc(7) . q{);
});
ok(li_wait($node, 'wake', 7, 10), 'wake: the committed document is applied within seconds, not at the next poll');
is( li_scalar($node, q{SELECT string_agg(number::text, ',') FROM ledger_ingest.ledger WHERE pipeline = 'wake'}),
	'7', 'wake: only the committed document was applied');
sleep 1;
is( li_scalar($node, q{SELECT state_change FROM pg_stat_activity WHERE application_name = 'ledger_ingest sleeper'}),
	$sleeper_cycle, "wake: another pipeline's worker was not woken");
$node->safe_psql('postgres', q{
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('sleeper', } . li_doc(3) . q{);
});
ok(li_wait($node, 'sleeper', 3, 10), 'wake: its own document wakes it');

$dbh->disconnect;
$node->stop;
done_testing();
