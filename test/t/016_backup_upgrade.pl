# Backup, restore and upgrade (family "operations"):
#
# - pg_dump/pg_restore of a database in the middle of a replay: the
#   restored pipeline keeps its cursor, handlers, tracked tables, journal
#   and pending inbox documents, stays stopped until start() (the restore
#   could still be loading), then applies the rest: every ERC-20 balance
#   equals the expected deltas, nothing applied twice;
# - pg_upgrade (15 to 15) of a cluster in the middle of a replay: --check
#   passes (no reg* column that pg_upgrade refuses), the upgraded pipeline
#   resumes by itself and ends exact;
# - ALTER EXTENSION ledger_ingest UPDATE from 0.1 to the current version
#   keeps pipelines and cursors and gives the same objects as a fresh install
#   (pg_dump --schema-only --binary-upgrade, which lists every member of
#   the extension, with OIDs taken out): the update scripts and the
#   full install script CREATE EXTENSION uses (ledger_ingest--0.3.sql, then
#   the updates to 0.5) must agree.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $F = 'operations';
my $blocks = li_data() . '/evm/mainnet-blocks.ndjson';
my $transfer = '\xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
my $gate_ledger = 15000000;    # mainnet-blocks.ndjson: ledgers before and after it
my $last_ledger = 17000000;
my $lock_key = 4242;
my $tempdir = PostgreSQL::Test::Utils::tempdir;

sub prepare
{
	my ($node) = @_;
	li_gated_replay($node, $gate_ledger, $lock_key);
	$node->safe_psql('postgres', q{SELECT ledger_ingest.track_table('mainnet', 'erc20_balances')});
}

sub replay_to_gate
{
	my ($node) = @_;
	my ($dbh) = li_run_to_gate($node, $lock_key);
	return $dbh;
}

# What must survive: cursor, counters, headers, journal, pending documents,
# handlers (as their functions resolve), tracked tables and sinks by name.
my $state_sql = q{
	SELECT c.ledger, c.events_applied, c.ledgers_applied,
		(SELECT count(*) FROM ledger_ingest.ledger),
		(SELECT count(*) FROM ledger_ingest.journal j WHERE j.tbl = 'erc20_balances'::regclass),
		(SELECT count(*) FROM ledger_ingest.inbox WHERE error IS NULL),
		(SELECT string_agg(to_regprocedure(h.handler)::text, ',' ORDER BY h.id) FROM ledger_ingest.handler h),
		(SELECT string_agg(t.tbl::text, ',') FROM ledger_ingest.tracked t)
	FROM ledger_ingest.cursor c WHERE c.pipeline = 'mainnet'};

sub exact
{
	my ($node) = @_;
	return li_scalar($node, 'SELECT count(*) FROM erc20_mismatch') eq '0'
	  && li_scalar($node, 'SELECT count(*) FROM erc20_expected') == 810;
}

# --- pg_dump / pg_restore in the middle of a replay --------------------
{
	my $src = li_node('dump_src');
	prepare($src);
	my $dbh = replay_to_gate($src);
	my $before = li_scalar($src, $state_sql);
	my ($cursor, $pending) = (split /\|/, $before)[0, 5];
	ok($cursor > 0 && $cursor < $gate_ledger && $pending > 0,
		"dump: taken in the middle of the replay (cursor $cursor, $pending documents pending)");
	my $dump = "$tempdir/mainnet.dump";
	command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $src->connstr('postgres') ], 'pg_dump while the worker applies');
	$dbh->do('SELECT pg_advisory_unlock_all()');
	ok(li_wait($src, 'mainnet', $last_ledger, 120) && exact($src), 'dump: the source finishes exact');
	my $src_events = li_scalar($src, q{SELECT events_applied FROM ledger_ingest.status});
	$src->stop;

	my $dst = li_cluster('dump_dst');
	$dst->start;
	command_ok([ 'pg_restore', '--exit-on-error', '-d', $dst->connstr('postgres'), $dump ],
		'pg_restore into a fresh cluster');
	li_case($F, 'dump/restore: cursor, counters, headers, journal, pending documents, handlers and tracked tables restored',
		li_scalar($dst, $state_sql) eq $before);
	my ($state, $error) = split /\|/, li_scalar($dst,
		q{SELECT state, last_error FROM ledger_ingest.status WHERE pipeline = 'mainnet'});
	li_case($F, 'dump/restore: a pipeline restored while running stays stopped until start()',
		$state eq 'stopped' && $error =~ /restored while running/
		  && li_scalar($dst, q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ledger_ingest mainnet'}) eq '0');
	$dst->safe_psql('postgres', q{SELECT ledger_ingest.start('mainnet')});
	li_case($F, 'dump/restore: the rest applied, every balance exact, nothing applied twice',
		li_wait($dst, 'mainnet', $last_ledger, 120) && exact($dst)
		  && li_scalar($dst, q{SELECT events_applied FROM ledger_ingest.status}) eq $src_events);
	$dst->stop;
}

# --- pg_upgrade in the middle of a replay ------------------------------
{
	my $old = li_node('upgrade_old');
	prepare($old);
	my $dbh = replay_to_gate($old);
	# what is committed while the worker waits inside an apply transaction
	my $before = li_scalar($old, $state_sql);
	$old->stop('fast');    # the worker's open apply transaction is lost, not its cursor
	eval { $dbh->disconnect };

	my $new = li_cluster('upgrade_new');
	my $bindir = $new->config_data('--bindir');
	my @cmd = ('pg_upgrade', '--no-sync', '-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir, '-s', $new->host, '-p', $old->port, '-P', $new->port);
	{
		# pg_upgrade writes its reports into the current directory
		chdir $tempdir;
		li_case($F, 'pg_upgrade --check accepts a cluster with pipelines', run_log([ @cmd, '--check' ]));
		li_case($F, 'pg_upgrade of a cluster with pipelines', run_log(\@cmd));
	}
	# first without pipelines (ledger_ingest serves no existing database):
	# what the upgrade kept, before the pipeline moves on
	$new->append_conf('postgresql.conf', "ledger_ingest.database = 'none'");
	$new->start;
	li_case($F, 'pg_upgrade: cursor, counters, headers, journal, pending documents, handlers and tracked tables kept',
		li_scalar($new, $state_sql) eq $before);
	$new->append_conf('postgresql.conf', "ledger_ingest.database = ''");
	$new->restart;
	li_case($F, 'pg_upgrade: the pipeline resumes by itself, every balance exact',
		li_wait($new, 'mainnet', $last_ledger, 120) && exact($new));
	$new->stop;
}

# --- ALTER EXTENSION UPDATE from 0.1 ----------------------------------
{
	my $node = li_cluster('update');
	$node->start;
	$node->safe_psql('postgres', q{
		CREATE DATABASE fresh;
		CREATE DATABASE updated;
		CREATE EXTENSION ledger_ingest VERSION '0.1';
	});
	$node->safe_psql('fresh', q{CREATE EXTENSION ledger_ingest});
	$node->safe_psql('updated', q{CREATE EXTENSION ledger_ingest VERSION '0.1'; ALTER EXTENSION ledger_ingest UPDATE});
	is(li_scalar($node, q{SELECT extversion FROM pg_extension WHERE extname = 'ledger_ingest'}), '0.1', 'installed at 0.1');
	li_load_erc20($node);
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('mainnet', 'inbox', '{"commit": "ledger"}');
		SELECT ledger_ingest.add_handler('mainnet', 'erc20_on_transfer(ledger_ingest.event)', '$transfer');
		SELECT ledger_ingest.track_table('mainnet', 'erc20_balances');
		CREATE TABLE nd (doc jsonb);
		COPY nd FROM '$blocks' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
		INSERT INTO ledger_ingest.inbox (pipeline, doc)
			SELECT 'mainnet', doc FROM nd WHERE ledger_ingest.doc_ledger(doc) < $gate_ledger;
		SELECT ledger_ingest.start('mainnet');
	});
	my $half = li_scalar($node, qq{SELECT max(ledger_ingest.doc_ledger(doc)) FROM nd WHERE ledger_ingest.doc_ledger(doc) < $gate_ledger});
	ok(li_wait($node, 'mainnet', $half, 120), 'the 0.1 pipeline applied the first half');
	my $before = li_scalar($node, q{SELECT ledger, events_applied FROM ledger_ingest.cursor});
	$node->safe_psql('postgres', q{ALTER EXTENSION ledger_ingest UPDATE});
	li_case($F, 'ALTER EXTENSION UPDATE 0.1 to 0.7 keeps the pipeline, its cursor and its handler',
		li_scalar($node, q{SELECT extversion FROM pg_extension WHERE extname = 'ledger_ingest'}) eq '0.7'
		  && li_scalar($node, q{SELECT ledger, events_applied FROM ledger_ingest.cursor}) eq $before
		  && li_scalar($node, q{SELECT handler FROM ledger_ingest.handler}) eq 'public.erc20_on_transfer(ledger_ingest.event)');
	$node->safe_psql('postgres', qq{
		INSERT INTO ledger_ingest.inbox (pipeline, doc)
			SELECT 'mainnet', doc FROM nd WHERE ledger_ingest.doc_ledger(doc) >= $gate_ledger});
	li_case($F, 'after the update the pipeline applies the rest, every balance exact',
		li_wait($node, 'mainnet', $last_ledger, 120) && exact($node));

	# the same objects as a fresh install
	my %dump;
	for my $db ('updated', 'fresh')
	{
		my ($out, $err);
		IPC::Run::run([ 'pg_dump', '--schema-only', '--binary-upgrade',
			'-d', $node->connstr($db) ], '>', \$out, '2>', \$err) or die "pg_dump: $err";
		# keep the extension's members only; OIDs differ between databases
		$out =~ s/^SELECT pg_catalog\.binary_upgrade_set_next_[^\n]*\n//mg;
		$out =~ s/\b\d{4,}\b/N/g;
		$out =~ s/^\\(un)?restrict .*$//mg;    # a random key per dump
		$out =~ s/^SET relfrozenxid = .*$//mg;
		$dump{$db} = $out;
	}
	ok(length($dump{fresh}) > 10000 && $dump{fresh} =~ /CREATE TABLE ledger_ingest\.handler/,
		'the binary-upgrade dump lists the members');
	li_case($F, 'ALTER EXTENSION UPDATE gives the same objects as a fresh install (pg_dump --schema-only)',
		$dump{updated} eq $dump{fresh});
	if ($dump{updated} ne $dump{fresh})
	{
		open(my $a, '>', "$tempdir/updated.sql"); print $a $dump{updated}; close $a;
		open(my $b, '>', "$tempdir/fresh.sql"); print $b $dump{fresh}; close $b;
		diag(scalar `diff $tempdir/fresh.sql $tempdir/updated.sql | head -80`);
	}
	$node->stop;
}

done_testing();
