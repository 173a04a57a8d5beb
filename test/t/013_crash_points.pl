# The crash matrix: each disruption at each point of the worker's cycle.
#
# Points: while fetching (evm_rpc: the request hangs at a fault-injecting
# proxy in front of anvil), inside a handler (after the cursor CAS), between
# the CAS and the commit (the ledger header insert, after every handler),
# and during a reorg's rollback (inside a revert handler).  The worker is
# held at a point by an advisory lock a test session holds (or by the
# proxy), then disrupted:
#   kill -9 of the worker, pg_ctl stop -m immediate, pg_terminate_backend,
#   pg_cancel_backend, ALTER SYSTEM of the extension's settings + reload.
# After each: the pipeline resumes by itself and a checksum of its effects
# equals the expected one (mainnet replay: balances equal the expected
# deltas and each of the 1,540 events is applied once; anvil: balances
# equal balanceOf and every Transfer applied once; reorg: the tracked table
# equals the winning branch, one reorg counted).
#
# Also: max_worker_processes exhausted -- a clear error in status, no crash
# loop, and the pipeline starts once a slot frees up.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my @actions = qw(kill9 immediate terminate cancel reload);
my $node = li_node('crash_points');
li_load_erc20($node);
my $blocks = li_data() . '/evm/mainnet-blocks.ndjson';
my $transfer = '\xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
my $gate_ledger = 15000000;    # 584 events before it, 719 in it, 237 after
my $lock_key = 4242;

$node->safe_psql('postgres', qq{
	CREATE TABLE event_log (pipeline text, ledger bigint, tx_index int, event_index int);
	CREATE FUNCTION log_event(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO event_log VALUES (e.pipeline, e.ledger, e.tx_index, e.event_index) \$\$;
	-- waits for the test's advisory lock at one ledger: inside a handler
	CREATE FUNCTION gate(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
		IF e.ledger = $gate_ledger AND e.event_index = 0 THEN
			PERFORM pg_advisory_xact_lock_shared($lock_key);
		END IF;
	END \$\$;
	-- the same at the ledger header insert: after the CAS and every handler
	CREATE FUNCTION header_gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM pg_advisory_xact_lock_shared($lock_key);
		RETURN NEW;
	END \$\$;
	CREATE TRIGGER header_gate BEFORE INSERT ON ledger_ingest.ledger FOR EACH ROW
		WHEN (NEW.number = $gate_ledger AND NEW.pipeline LIKE 'commit%')
		EXECUTE FUNCTION header_gate();

	-- reorgs: a synthetic chain, one event per ledger, a tracked table
	CREATE FUNCTION hh(n int, seed int) RETURNS text LANGUAGE sql AS
		\$\$ SELECT '0x' || md5('a' || seed || '-' || n) || md5('b' || seed || '-' || n) \$\$;
	CREATE FUNCTION rdoc(n int, seed int, parent_seed int) RETURNS jsonb LANGUAGE sql AS \$\$
		SELECT jsonb_build_object('number', n, 'hash', hh(n, seed), 'parentHash', hh(n - 1, parent_seed),
			'logs', jsonb_build_array(jsonb_build_object('address', '0x' || repeat('aa', 20),
				'topics', jsonb_build_array('0x' || repeat('cd', 32)),
				'data', '0x' || lpad(to_hex(seed * 1000 + n), 64, '0'),
				'transactionIndex', '0x0', 'logIndex', '0x0'))) \$\$;
	CREATE TABLE racc (pipeline text, ledger bigint, v int, PRIMARY KEY (pipeline, ledger));
	CREATE FUNCTION rec(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO racc VALUES (e.pipeline, e.ledger, ('x' || right(encode(e.data, 'hex'), 8))::bit(32)::int) \$\$;
	CREATE FUNCTION rgate(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		\$\$ SELECT pg_advisory_xact_lock_shared($lock_key) \$\$;
});

# a session holding the lock that gates the worker
sub hold
{
	my $dbh = li_dbh($node);
	$dbh->do("SELECT pg_advisory_lock($lock_key)");
	return $dbh;
}
sub release { my ($dbh) = @_; eval { $dbh->do('SELECT pg_advisory_unlock_all()'); $dbh->disconnect; }; }

# the pid of pipeline $p's worker once it waits for the lock (0: never)
sub gated_pid
{
	my ($p) = @_;
	for (1 .. 300)
	{
		my $pid = li_scalar($node, qq{SELECT coalesce(max(l.pid), 0) FROM pg_locks l
			JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'ledger_ingest $p'});
		return $pid if $pid;
		usleep(100_000);
	}
	return 0;
}

sub act
{
	my ($action, $pid) = @_;
	if ($action eq 'kill9')
	{
		kill 'KILL', $pid;
		usleep(300_000);
		li_wait_up($node) or BAIL_OUT('server did not come back');
	}
	elsif ($action eq 'immediate')
	{
		$node->stop('immediate');
		$node->start;
	}
	elsif ($action eq 'terminate')
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	}
	elsif ($action eq 'cancel')
	{
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	}
	elsif ($action eq 'reload')
	{
		# postmaster-level settings: logged as needing a restart, nothing
		# else happens; the worker carries on
		$node->safe_psql('postgres', q{
			ALTER SYSTEM SET ledger_ingest.max_pipelines = 40;
			ALTER SYSTEM SET ledger_ingest.database = 'elsewhere';
			SELECT pg_reload_conf();
		});
		usleep(500_000);
		$node->safe_psql('postgres', q{
			ALTER SYSTEM RESET ledger_ingest.max_pipelines;
			ALTER SYSTEM RESET ledger_ingest.database;
			SELECT pg_reload_conf();
		});
	}
}

# -- inside a handler, and between the CAS and the commit: the mainnet replay
for my $point ('handler', 'commit')
{
	for my $action (@actions)
	{
		my $p = "${point}_$action";
		$node->safe_psql('postgres', qq{
			TRUNCATE erc20_balances;
			SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"commit":"batch","batch_max_ledgers":3}');
			SELECT ledger_ingest.add_handler('$p', 'erc20_on_transfer(ledger_ingest.event)', '$transfer');
			SELECT ledger_ingest.add_handler('$p', 'log_event(ledger_ingest.event)');
		});
		$node->safe_psql('postgres', "SELECT ledger_ingest.add_handler('$p', 'gate(ledger_ingest.event)')")
		  if $point eq 'handler';
		li_load_ndjson($node, $p, $blocks);
		my $lock = hold();
		$node->safe_psql('postgres', "SELECT ledger_ingest.start('$p')");
		my $pid = gated_pid($p);
		my $before = li_scalar($node, "SELECT events_applied FROM ledger_ingest.status WHERE pipeline = '$p'");
		act($action, $pid) if $pid;
		release($lock);
		my $done = li_wait($node, $p, 17000000, 120);
		my $sum = li_scalar($node, qq{SELECT (SELECT count(*) FROM erc20_mismatch) || ' ' ||
			(SELECT count(*) || '/' || count(DISTINCT (ledger, tx_index, event_index)) FROM event_log WHERE pipeline = '$p') || ' ' ||
			(SELECT events_applied || '/' || ledgers_applied || ' ' || state FROM ledger_ingest.status WHERE pipeline = '$p')});
		li_case('crash points', "$action $point (held at ledger $gate_ledger, $before events committed): resumed, checksum equal ($sum)",
			$pid && $before > 0 && $before < 1540 && $done && $sum eq '0 1540/1540 1540/60 running');
		$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$p')");
	}
}

# -- during a reorg's rollback: held inside a revert handler
for my $action (@actions)
{
	my $p = "reorg_$action";
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"commit":"ledger"}');
		SELECT ledger_ingest.track_table('$p', 'racc');
		SELECT ledger_ingest.add_handler('$p', 'rec(ledger_ingest.event)', revert => 'rgate(ledger_ingest.event)');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$p', rdoc(n, 0, 0) FROM generate_series(1, 6) n;
		SELECT ledger_ingest.start('$p');
	});
	li_wait($node, $p, 6, 30);
	my $lock = hold();
	# a branch forking after ledger 3, one ledger longer
	$node->safe_psql('postgres', qq{
		INSERT INTO ledger_ingest.inbox (pipeline, doc)
			SELECT '$p', rdoc(n, 1, CASE WHEN n = 4 THEN 0 ELSE 1 END) FROM generate_series(4, 7) n;
	});
	my $pid = gated_pid($p);
	act($action, $pid) if $pid;
	release($lock);
	my $done = li_wait($node, $p, 7, 60);
	my $rows = li_scalar($node, "SELECT string_agg(ledger || ':' || v, ',' ORDER BY ledger) FROM racc WHERE pipeline = '$p'");
	my $st = li_scalar($node, "SELECT reorgs || ' ' || last_reorg_depth || ' ' || state FROM ledger_ingest.status WHERE pipeline = '$p'");
	li_case('crash points', "$action during a reorg rollback: resumed, tracked table = winning branch ($st)",
		$pid && $done && $rows eq '1:1,2:2,3:3,4:1004,5:1005,6:1006,7:1007' && $st eq '1 3 running');
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$p')");
}

# -- while fetching: the eth_getLogs request hangs at the proxy
my $rpc = li_anvil();
my $token = chain('deploy', $rpc);
chain('mint', $rpc, $token);
chain('transfers', $rpc, $token, 5, 1);
my ($purl, $control) = li_proxy($rpc);
sub control { return $control->(@_); }
sub hanging { return control('__stats')->{by_mode}{hang} // 0; }

for my $action (@actions)
{
	my $p = "fetch_$action";
	control('__reset_stats');
	control('__fault', { mode => 'hang', count => 1, method => 'eth_getLogs' });
	$node->safe_psql('postgres', qq{
		TRUNCATE erc20_balances;
		SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc',
			'{"url":"$purl","addresses":["$token"],"topics":[["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"]],
			  "poll_ms":200,"timeout_ms":8000}');
		SELECT ledger_ingest.add_handler('$p', 'erc20_on_transfer(ledger_ingest.event)');
		SELECT ledger_ingest.start('$p');
	});
	my $held = 0;
	for (1 .. 100) { if (hanging()) { $held = 1; last; } usleep(100_000); }
	usleep(200_000);
	my $pid = li_worker_pid($node, $p);
	act($action, $pid) if $held && $pid;
	control('__clear');
	my $head = chain('head', $rpc);
	my $done = li_wait($node, $p, $head, 60);
	my $same = li_same_balances($node, $rpc, $token);
	my $st = li_scalar($node, "SELECT events_applied || ' ' || state FROM ledger_ingest.status WHERE pipeline = '$p'");
	li_case('crash points', "$action while fetching (eth_getLogs hanging): resumed, balances = balanceOf ($st)",
		$held && $pid && $done && $same && $st eq '15 running');
	$node->safe_psql('postgres', "SELECT ledger_ingest.drop_pipeline('$p')");
}
$node->stop;

# -- max_worker_processes exhausted: the logical replication launcher, the
# supervisor and the launcher take 3 of 4 slots; the second pipeline's
# worker cannot start
my $small = li_node('small', max_worker_processes => 4);
$small->safe_psql('postgres', q{
	CREATE TABLE seen (pipeline text, ledger bigint);
	CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO seen VALUES (e.pipeline, e.ledger) $$;
	SELECT ledger_ingest.create_pipeline(p, 'inbox') FROM (VALUES ('one'), ('two')) v(p);
	SELECT ledger_ingest.add_handler(p, 'see(ledger_ingest.event)') FROM (VALUES ('one'), ('two')) v(p);
	SELECT ledger_ingest.start('one');
});
is(li_wait_state($small, 'one', 'running', 30), 'running', 'one pipeline runs with max_worker_processes = 4');
$small->safe_psql('postgres', q{SELECT ledger_ingest.start('two')});
my $err = '';
for (1 .. 100)
{
	$err = li_scalar($small, q{SELECT coalesce(last_error, '') FROM ledger_ingest.status WHERE pipeline = 'two'});
	last if $err ne '';
	usleep(100_000);
}
usleep(3_000_000);
my $st = li_scalar($small, q{SELECT state || ' ' || (pid IS NULL)::text FROM ledger_ingest.status WHERE pipeline = 'two'});
my $alive = li_scalar($small, q{SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('ledger_ingest supervisor', 'ledger_ingest launcher')});
my $starts = () = slurp_file($small->logfile) =~ /could not start the worker of ledger_ingest pipeline "two"/g;
li_case('crash points', "max_worker_processes exhausted: clear error in status ($err), no crash loop ($st; $alive supervisor/launcher; $starts attempts)",
	$err =~ /^53000: could not start the pipeline's worker: no background worker slot is free \(max_worker_processes = 4\)/
	  && $st eq 'waiting true' && $alive eq '2' && $starts >= 1 && $starts <= 6);
$small->safe_psql('postgres', q{
	SELECT ledger_ingest.stop('one');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('two', } . li_doc(1, 1) . q{);
});
li_case('crash points', 'max_worker_processes exhausted: the pipeline starts once a slot frees up',
	li_wait($small, 'two', 1, 90) && li_scalar($small, q{SELECT count(*) FROM seen WHERE pipeline = 'two'}) eq '1');
$small->stop;
done_testing();
