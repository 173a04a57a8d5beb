# Operations (issue: exactly once in the ordinary life of a database).
# Each case is recorded in the "operations" family (li_case).
#
# - transaction blocks: every handler (per-event, set-based, revert) runs
#   inside a real transaction block (IsTransactionBlock(), reported by the
#   test-only li_probe module), which Citus and other extensions need to
#   coordinate their work with the cursor.
# - transient errors: lock_timeout, deadlock_detected, serialization_failure
#   (and a real lock_timeout on a row another session holds) are retried
#   and shown in status without counting against max_retries; an error a
#   retry does not fix still fails the pipeline after max_retries.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $node = li_node('operations');
my $F = 'operations';

# Synthetic linked ledgers: doc(n, branch) has hash h(n, branch) and parent
# h(n - 1, branch) (branch 0 below the fork), one log per ledger.
$node->safe_psql('postgres', q{
	CREATE EXTENSION li_probe;
	CREATE FUNCTION h(n bigint, branch int) RETURNS text LANGUAGE sql IMMUTABLE AS
		$$ SELECT '0x' || md5(branch || '/' || n) || md5(n || '/' || branch) $$;
	CREATE FUNCTION doc(n bigint, branch int DEFAULT 0, parent_branch int DEFAULT NULL) RETURNS jsonb
	LANGUAGE sql IMMUTABLE AS $$
		SELECT jsonb_build_object('number', n, 'hash', h(n, branch),
			'parentHash', h(n - 1, coalesce(parent_branch, branch)),
			'logs', jsonb_build_array(jsonb_build_object(
				'address', '0x' || repeat('aa', 20), 'topics', jsonb_build_array('0x' || repeat('01', 32)),
				'data', '0x' || lpad(to_hex(n), 64, '0'), 'transactionIndex', 0, 'logIndex', 0))) $$;
});

# --- transaction blocks ------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE probe (kind text, ledger bigint, in_block boolean);
	CREATE FUNCTION probe_event(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO probe VALUES ('event', e.ledger, li_in_transaction_block()) $$;
	CREATE FUNCTION probe_set(es ledger_ingest.event[]) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO probe SELECT 'set', e.ledger, li_in_transaction_block() FROM unnest(es) e $$;
	CREATE FUNCTION probe_revert(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO probe VALUES ('revert', e.ledger, li_in_transaction_block()) $$;
	SELECT ledger_ingest.create_pipeline('blocks', 'inbox');
	SELECT ledger_ingest.add_handler('blocks', 'probe_event(ledger_ingest.event)',
		revert => 'probe_revert(ledger_ingest.event)');
	SELECT ledger_ingest.add_handler('blocks', 'probe_set(ledger_ingest.event[])');
	SELECT ledger_ingest.start('blocks');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'blocks', doc(n) FROM generate_series(1, 3) n;
	-- a client's own statement is not in a block; a BEGIN makes one
	SELECT li_in_transaction_block() AS outside_block;
});
ok(li_wait($node, 'blocks', 3), 'blocks: ledgers 1-3 applied');
# ledger 3 again on another branch: a depth-1 reorg runs the revert handler
$node->safe_psql('postgres',
	q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('blocks', doc(3, 1, 0)), ('blocks', doc(4, 1))});
ok(li_wait($node, 'blocks', 4), 'blocks: the new branch applied');
is(li_scalar($node, q{SELECT string_agg(kind || ':' || n || ':' || in_block, ' ' ORDER BY kind)
	FROM (SELECT kind, count(*) n, bool_and(in_block) in_block FROM probe GROUP BY kind) s}),
	'event:5:true revert:1:true set:5:true', 'counts of handler calls');
is(li_scalar($node, q{SELECT li_in_transaction_block()}), 'f', 'the probe sees a single statement as no block');
li_case($F, 'per-event, set-based and revert handlers run inside a transaction block',
	li_scalar($node, q{SELECT count(*) FILTER (WHERE NOT in_block) || '/' || count(*) FROM probe}) eq '0/11');

# --- transient errors ----------------------------------------------------
# Each pipeline's handler raises its error for its first 3 calls (a
# sequence counts them: it is not rolled back with the transaction), with
# max_retries = 1: only an error that is not transient may fail it.
$node->safe_psql('postgres', q{
	CREATE TABLE seen (pipeline text, ledger bigint);
	CREATE FUNCTION flaky(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE code text := split_part(e.pipeline, '_', 2);
	BEGIN
		IF nextval('calls_' || code) <= 3 THEN
			RAISE EXCEPTION 'flaky % (call %)', code, currval('calls_' || code) USING ERRCODE = code;
		END IF;
		INSERT INTO seen VALUES (e.pipeline, e.ledger);
	END $$;
});
for my $code ('55P03', '40P01', '40001', '23514')
{
	my $p = "flaky_$code";
	$node->safe_psql('postgres', qq{
		CREATE SEQUENCE calls_$code;
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"max_retries": 1}');
		SELECT ledger_ingest.add_handler('$p', 'flaky(ledger_ingest.event)');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('$p', doc(1));
		SELECT ledger_ingest.start('$p');
	});
}
for my $code ('55P03', '40P01', '40001')
{
	my $p = "flaky_$code";
	my $ok = li_wait($node, $p, 1, 60);
	my ($state, $errors, $error) = split /\|/, li_scalar($node,
		qq{SELECT state, errors, last_error FROM ledger_ingest.status WHERE pipeline = '$p'});
	li_case($F, "transient error $code: retried past max_retries, shown in status, applied once",
		$ok && $state eq 'running' && $errors == 3 && $error =~ /^$code: flaky/
		  && li_scalar($node, qq{SELECT count(*) FROM seen WHERE pipeline = '$p'}) eq '1');
}
li_case($F, 'an error a retry does not fix (23514) still fails the pipeline after max_retries',
	li_wait_state($node, 'flaky_23514', 'failed', 30) eq 'failed'
	  && li_scalar($node, q{SELECT errors FROM ledger_ingest.status WHERE pipeline = 'flaky_23514'}) eq '2');

# a real lock_timeout: another session holds the row the handler updates
$node->safe_psql('postgres', q{
	CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL);
	INSERT INTO counter VALUES (1, 0);
	CREATE FUNCTION bump(e ledger_ingest.event) RETURNS void LANGUAGE sql
		SET lock_timeout = '200ms' AS $$ UPDATE counter SET n = n + 1 WHERE id = 1 $$;
	SELECT ledger_ingest.create_pipeline('locked', 'inbox', '{"max_retries": 0}');
	SELECT ledger_ingest.add_handler('locked', 'bump(ledger_ingest.event)');
	SELECT ledger_ingest.start('locked');
});
{
	my $dbh = li_dbh($node);
	$dbh->begin_work;
	$dbh->do('UPDATE counter SET n = n WHERE id = 1');
	$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('locked', doc(1))});
	my $seen = '';
	for (1 .. 100)
	{
		$seen = li_scalar($node, q{SELECT state || ' ' || coalesce(last_error, '') FROM ledger_ingest.status WHERE pipeline = 'locked'});
		last if $seen =~ /55P03/;
		usleep(100_000);
	}
	sleep 3;    # several retries while the row stays locked
	my $state = li_scalar($node, q{SELECT state FROM ledger_ingest.status WHERE pipeline = 'locked'});
	$dbh->rollback;
	li_case($F, 'a real lock_timeout (55P03) is retried with max_retries 0, shown as retrying, then applied once',
		$seen =~ /^retrying 55P03: canceling statement due to lock timeout/ && $state ne 'failed'
		  && li_wait($node, 'locked', 1, 60)
		  && li_scalar($node, q{SELECT n FROM counter}) eq '1');
}

done_testing();
