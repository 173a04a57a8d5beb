# Crash safety: kill -9 the worker and immediate-stop the server repeatedly
# while the mainnet replay runs; after restart every event is applied
# exactly once (balances equal the expected deltas, the event log has each
# event once), in "event" and in "batch" commit mode.  pg_terminate_backend
# of the worker is survived the same way (the launcher restarts it).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $node = li_node('crash');
li_load_erc20($node);
my $blocks = li_data() . '/evm/mainnet-blocks.ndjson';
my $transfer = '\xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';

# a second handler logs every event (to catch duplicates) and is slow
# enough for the kills to land mid-stream
$node->safe_psql('postgres', q{
	CREATE TABLE event_log (ledger bigint, tx_index int, event_index int);
	CREATE FUNCTION log_event(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO event_log VALUES (e.ledger, e.tx_index, e.event_index);
		PERFORM pg_sleep(0.002);
	END $$;
});

for my $mode ('event', 'batch')
{
	my $p = "crash_$mode";
	$node->safe_psql('postgres', qq{
		TRUNCATE erc20_balances, event_log;
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"commit":"$mode","batch_max_ledgers":3}');
		SELECT ledger_ingest.add_handler('$p', 'erc20_on_transfer(ledger_ingest.event)', '$transfer');
		SELECT ledger_ingest.add_handler('$p', 'log_event(ledger_ingest.event)');
	});
	li_load_ndjson($node, $p, $blocks);
	$node->safe_psql('postgres', "SELECT ledger_ingest.start('$p')");

	my $midstream = 0;
	my $crashes = 0;
	for my $round (1 .. 6)
	{
		usleep(400_000 + int(rand(400_000)));
		my $pid = li_worker_pid($node, $p);
		my $applied = li_scalar($node,
			"SELECT events_applied FROM ledger_ingest.status WHERE pipeline = '$p'");
		last if $applied == 1540;
		$midstream++ if $applied > 0;
		if ($round % 3 == 0)
		{
			$node->stop('immediate');
			$node->start;
		}
		elsif ($round % 3 == 2 && $pid)
		{
			# a clean termination: the launcher restarts the worker
			$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		}
		elsif ($pid)
		{
			kill 'KILL', $pid;
			# the postmaster restarts every process after a crash
			usleep(200_000);
			li_wait_up($node) or BAIL_OUT('server did not come back');
		}
		$crashes++;
	}
	note "$mode: $crashes crashes, $midstream mid-stream";
	ok($midstream >= 2, "$mode: crashed the server at least twice mid-stream");

	ok(li_wait($node, $p, 17000000, 240), "$mode: reached the last ledger after the crashes");
	is(li_scalar($node, 'SELECT count(*) FROM erc20_mismatch'), '0',
		"$mode: balances equal the expected deltas");
	is( li_scalar($node,
			q{SELECT count(*) || ' / ' || count(DISTINCT (ledger, tx_index, event_index)) FROM event_log}),
		'1540 / 1540', "$mode: each of the 1540 events applied exactly once");
	is( li_scalar($node,
			"SELECT events_applied || '/' || ledgers_applied FROM ledger_ingest.status WHERE pipeline = '$p'"),
		'1540/60', "$mode: counters survived the crashes");
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$p')");
}

# the launcher itself is terminated: the running worker goes on, and the
# restarted launcher adopts it instead of starting a second one
$node->safe_psql('postgres', q{
	TRUNCATE event_log;
	SELECT ledger_ingest.create_pipeline('adopt', 'inbox', '{}');
	SELECT ledger_ingest.add_handler('adopt', 'log_event(ledger_ingest.event)');
	SELECT ledger_ingest.start('adopt');
});
is(li_wait_state($node, 'adopt', 'running', 30), 'running', 'adopt: its worker runs');
my $wpid = li_worker_pid($node, 'adopt');
$node->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'ledger_ingest launcher'});
my $back = 0;
for (1 .. 150)
{
	usleep(100_000);
	$back = li_scalar($node,
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ledger_ingest launcher'});
	last if $back eq '1';
}
is($back, '1', 'the launcher was restarted');
usleep(1_500_000);
is( li_scalar($node,
		q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ledger_ingest adopt'}),
	'1', 'still exactly one worker for the pipeline');
is(li_worker_pid($node, 'adopt'), $wpid, 'the same worker kept running');
li_load_ndjson($node, 'adopt', $blocks);
ok(li_wait($node, 'adopt', 17000000, 120), 'adopt: applied the replay');
is(li_scalar($node, 'SELECT count(*) FROM event_log'), '1540', 'adopt: every event once');

$node->stop;
done_testing();
