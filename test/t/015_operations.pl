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
# - hostile logs: logs under a signature-registered handler's topic0 that
#   do not decode (short data, a NUL or invalid UTF-8 in a string) are
#   skipped by that handler and kept in ledger_ingest.decode_error, counted
#   in status; the pipeline goes on; a reorg forgets the orphaned ones.
# - objects a pipeline depends on: a dropped handler function, raw sink
#   table or owner role fails the pipeline with an error naming it (never
#   an internal error, never a handler run as a role that is gone); a
#   revoked EXECUTE takes effect at the next cycle.
# - pipeline slots: ledger_ingest.max_pipelines counts running pipelines
#   only; a running pipeline that cannot get a slot shows 'waiting' with
#   the reason in last_error, and runs once a slot frees up.
# - concurrent producers: a ledger committed after a later one was applied
#   fails the pipeline (naming it and what to do) instead of being skipped;
#   a document updated or deleted after the worker read it is read again
#   (the worker deletes only the version it applied); the worker's inbox
#   read is served by the pending index in order (no sort of the backlog):
#   the pages it reads for 1,000 documents are the same with a 20,000 and
#   a 200,000-document backlog.
# - a pinned NOTIFY queue (a listener idle in a transaction) above
#   ledger_ingest.notify_queue_limit: notifications are dropped, counted in
#   status and logged; applying, start() and stop() go on.
# - batch_max_bytes: the inbox is read in batches bounded in bytes as well
#   as in ledgers and events (a ledger is never split), so a worker under a
#   per-process memory limit applies large ledgers.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run;
use LiTest;

my $node = li_node('operations');
my $F = 'operations';

# synthetic linked ledgers: doc(n, branch), h(n, branch)
li_chain_sql($node);
$node->safe_psql('postgres', 'CREATE EXTENSION li_probe');

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

# --- hostile logs ---------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE notes (ledger bigint, event_index int, who text, body text);
	CREATE FUNCTION on_note(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO notes VALUES (e.ledger, e.event_index, e.args->>'who', e.args->>'text') $$;
	-- a Note(address indexed who, string text) log whose string is "hex"
	CREATE FUNCTION note_log(i int, hex text, data text DEFAULT NULL, extra_topic boolean DEFAULT false) RETURNS jsonb
	LANGUAGE sql AS $$
		SELECT jsonb_build_object('address', '0x' || repeat('bb', 20),
			'topics', jsonb_build_array('0x' || encode(ledger_ingest.event_topic('Note(address indexed who, string text)'), 'hex'),
				'0x' || lpad('c0ffee', 64, '0')) || CASE WHEN extra_topic THEN jsonb_build_array('0x' || repeat('00', 32)) ELSE '[]' END,
			'data', coalesce(data, '0x' || lpad('20', 64, '0') || lpad(to_hex(length(hex) / 2), 64, '0') || rpad(hex, 64, '0')),
			'transactionIndex', i, 'logIndex', i) $$;
	SELECT ledger_ingest.create_pipeline('hostile', 'inbox', '{"max_retries": 0}');
	SELECT ledger_ingest.add_handler('hostile', 'on_note(ledger_ingest.event)',
		event => 'Note(address indexed who, string text)');
	SELECT ledger_ingest.start('hostile');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
		('hostile', jsonb_build_object('number', 1, 'hash', h(1, 0), 'logs', jsonb_build_array(
			note_log(0, '68656c6c6f')))),             -- "hello"
		('hostile', jsonb_build_object('number', 2, 'hash', h(2, 0), 'parentHash', h(1, 0), 'logs', jsonb_build_array(
			note_log(1, NULL, '0x01'),               -- one byte of data
			note_log(2, '6800006c6f'),               -- NUL in the string
			note_log(3, '68ff6c6c6f'),               -- invalid UTF-8
			note_log(4, '68656c6c6f', NULL, true)))), -- another number of topics: not this event
		('hostile', jsonb_build_object('number', 3, 'hash', h(3, 0), 'parentHash', h(2, 0),
			'logs', jsonb_build_array(note_log(0, '776f726c64'))));   -- "world"
});
my $applied = li_wait($node, 'hostile', 3, 60);
li_case($F, 'hostile logs: undecodable logs do not stop the pipeline; the valid ones reach the handler',
	$applied && li_scalar($node, q{SELECT state FROM ledger_ingest.status WHERE pipeline = 'hostile'}) eq 'running'
	  && li_scalar($node, q{SELECT string_agg(ledger || ':' || event_index || ':' || body, ' ' ORDER BY ledger, event_index) FROM notes})
		eq '1:0:hello 3:0:world');
my $kept = li_scalar($node, q{SELECT string_agg(ledger || ' ' || event_index || ' ' || handler || ' ' || error || ' ' || length((event).data), E'\n' ORDER BY event_index)
	FROM ledger_ingest.decode_error WHERE pipeline = 'hostile'});
note($kept);
my @kept = split /\n/, $kept;
li_case($F, 'hostile logs: each kept in decode_error with the decoder\'s error naming the argument, counted in status',
	@kept == 3
	  && $kept[0] =~ /^2 1 on_note\(ledger_ingest.event\) argument "text": data too short.* 1$/
	  && $kept[1] =~ /^2 2 on_note\(ledger_ingest.event\) argument "text": NUL byte/
	  && $kept[2] =~ /^2 3 on_note\(ledger_ingest.event\) argument "text": invalid UTF-8/
	  && li_scalar($node, q{SELECT decode_errors FROM ledger_ingest.status WHERE pipeline = 'hostile'}) eq '3');
# a reorg orphaning ledger 2 forgets its decode errors
$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES
	('hostile', jsonb_build_object('number', 2, 'hash', h(2, 5), 'parentHash', h(1, 0), 'logs', '[]'::jsonb)),
	('hostile', jsonb_build_object('number', 3, 'hash', h(3, 5), 'parentHash', h(2, 5), 'logs', '[]'::jsonb)),
	('hostile', jsonb_build_object('number', 4, 'hash', h(4, 5), 'parentHash', h(3, 5), 'logs', '[]'::jsonb))});
li_case($F, 'hostile logs: a reorg that orphans their ledger forgets them',
	li_wait($node, 'hostile', 4, 60)
	  && li_scalar($node, q{SELECT reorgs || ' ' || decode_errors FROM ledger_ingest.status WHERE pipeline = 'hostile'}) eq '1 0');

# --- dropped objects -------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE ROLE gone_owner LOGIN IN ROLE ledger_ingest_admin;
	CREATE TABLE dep_seen (pipeline text, ledger bigint);
	GRANT INSERT ON dep_seen TO gone_owner;
	CREATE FUNCTION dep_h(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO dep_seen VALUES (e.pipeline, e.ledger) $$;
	CREATE FUNCTION dep_h2(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO dep_seen VALUES (e.pipeline, e.ledger) $$;
	CREATE TABLE dep_sink (ledger bigint, event_index int);
	SELECT ledger_ingest.create_pipeline('dep_func', 'inbox');
	SELECT ledger_ingest.add_handler('dep_func', 'dep_h2(ledger_ingest.event)');
	SELECT ledger_ingest.create_pipeline('dep_sink', 'inbox');
	SELECT ledger_ingest.add_raw_sink('dep_sink', 'dep_sink');
	SET ROLE gone_owner;
	SELECT ledger_ingest.create_pipeline('dep_role', 'inbox');
	SELECT ledger_ingest.add_handler('dep_role', 'dep_h(ledger_ingest.event)');
	RESET ROLE;
});
for my $p ('dep_func', 'dep_sink', 'dep_role')
{
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.start('$p');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('$p', doc(1))});
	li_wait($node, $p, 1, 60);
}
$node->safe_psql('postgres', q{
	DROP FUNCTION dep_h2(ledger_ingest.event);
	DROP TABLE dep_sink;
	DROP OWNED BY gone_owner;
	DROP ROLE gone_owner;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT p, doc(2) FROM unnest(ARRAY['dep_func', 'dep_sink', 'dep_role']) p;
});
my %expect = (
	dep_func => qr/^handler function public\.dep_h2\(ledger_ingest\.event\) of pipeline "dep_func" does not exist/,
	dep_sink => qr/^raw sink table \(OID \d+\) of pipeline "dep_sink" no longer exists/,
	dep_role => qr/^the owner of pipeline "dep_role" \(role OID \d+\) no longer exists/);
for my $p (sort keys %expect)
{
	my $state = li_wait_state($node, $p, 'failed', 30);
	my $error = li_scalar($node, qq{SELECT last_error FROM ledger_ingest.status WHERE pipeline = '$p'});
	note("$p: $state: $error");
	li_case($F, "a dropped object ($p) fails the pipeline with an error naming it, ledger 2 not applied",
		$state eq 'failed' && $error =~ $expect{$p}
		  && li_scalar($node, qq{SELECT ledger FROM ledger_ingest.status WHERE pipeline = '$p'}) eq '1'
		  && li_scalar($node, qq{SELECT count(*) FROM dep_seen WHERE pipeline = '$p' AND ledger = 2}) eq '0');
}

# a revoked EXECUTE on a handler takes effect at the next cycle; granted
# again, the pipeline resumes and applies the ledger once
$node->safe_psql('postgres', q{
	CREATE ROLE grant_owner LOGIN IN ROLE ledger_ingest_admin;
	GRANT INSERT ON dep_seen TO grant_owner;
	CREATE FUNCTION dep_h3(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO dep_seen VALUES (e.pipeline, e.ledger) $$;
	REVOKE EXECUTE ON FUNCTION dep_h3(ledger_ingest.event) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION dep_h3(ledger_ingest.event) TO grant_owner;
	SET ROLE grant_owner;
	SELECT ledger_ingest.create_pipeline('dep_grant', 'inbox', '{"max_retries": 0}');
	SELECT ledger_ingest.add_handler('dep_grant', 'dep_h3(ledger_ingest.event)');
	SELECT ledger_ingest.start('dep_grant');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('dep_grant', doc(1));
	RESET ROLE;
});
li_wait($node, 'dep_grant', 1, 60);
$node->safe_psql('postgres', q{
	REVOKE EXECUTE ON FUNCTION dep_h3(ledger_ingest.event) FROM grant_owner;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('dep_grant', doc(2));
});
{
	my $state = li_wait_state($node, 'dep_grant', 'failed', 30);
	my $error = li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'dep_grant'});
	note("dep_grant: $state: $error");
	$node->safe_psql('postgres', q{
		GRANT EXECUTE ON FUNCTION dep_h3(ledger_ingest.event) TO grant_owner;
		SELECT ledger_ingest.start('dep_grant');
	});
	li_case($F, 'a revoked EXECUTE on a handler stops the pipeline at the next ledger (42501, naming the function); granted again, the ledger is applied once',
		$state eq 'failed' && $error =~ /^42501: permission denied for function dep_h3/
		  && li_wait($node, 'dep_grant', 2, 60)
		  && li_scalar($node, q{SELECT string_agg(ledger::text, ',' ORDER BY ledger) FROM dep_seen WHERE pipeline = 'dep_grant'}) eq '1,2');
}

# --- concurrent producers -------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE late_seen (ledger bigint, data bytea);
	CREATE FUNCTION late_see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO late_seen VALUES (e.ledger, e.data) $$;
	SELECT ledger_ingest.create_pipeline('late', 'inbox');
	SELECT ledger_ingest.add_handler('late', 'late_see(ledger_ingest.event)');
	SELECT ledger_ingest.start('late');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('late', doc(1)), ('late', doc(3));
});
ok(li_wait($node, 'late', 3, 60), 'late: ledgers 1 and 3 applied');
$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('late', doc(2)), ('late', doc(4))});
{
	my $st = li_wait_state($node, 'late', 'failed', 30);
	my $err = li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'late'});
	note("late: $st: $err");
	li_case($F, 'a ledger committed after a later one was applied fails the pipeline, naming it and what to do',
		$st eq 'failed' && $err =~ /ledger 2 arrived after ledger 3 was applied: .*delete the document .* rewind\(\)/
		  && li_scalar($node, q{SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = 'late' AND ledger = 2 AND error IS NOT NULL}) eq '1'
		  && li_scalar($node, q{SELECT string_agg(ledger::text, ',' ORDER BY ledger) FROM late_seen}) eq '1,3');
	# the user's way out: rewind to ledger 1, insert 2 and 3 again
	$node->safe_psql('postgres', q{
		TRUNCATE late_seen;
		SELECT ledger_ingest.delete_documents('late');
		SELECT ledger_ingest.rewind('late', 1);
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('late', doc(2)), ('late', doc(3));
		SELECT ledger_ingest.start('late');
	});
	li_case($F, 'late ledger: after rewind() and the documents again, nothing is lost',
		li_wait($node, 'late', 4, 60)
		  && li_scalar($node, q{SELECT string_agg(ledger::text, ',' ORDER BY ledger) FROM late_seen}) eq '2,3,4');
}

# a document updated, and another deleted, after the worker read them
# (the worker waits at ledger 2 inside its apply transaction)
$node->safe_psql('postgres', q{
	CREATE TABLE upd_seen (ledger bigint, data bytea);
	CREATE FUNCTION upd_see(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF e.ledger = 2 THEN PERFORM pg_advisory_xact_lock_shared(77); END IF;
		INSERT INTO upd_seen VALUES (e.ledger, e.data);
	END $$;
	SELECT ledger_ingest.create_pipeline('upd', 'inbox', '{"commit": "ledger"}');
	SELECT ledger_ingest.add_handler('upd', 'upd_see(ledger_ingest.event)');
	SELECT ledger_ingest.start('upd');
});
{
	my $dbh = li_dbh($node);
	$dbh->do('SELECT pg_advisory_lock(77)');
	$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'upd', doc(n) FROM generate_series(1, 5) n});
	my $gated = 0;
	for (1 .. 300)
	{
		$gated = li_scalar($node, q{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'ledger_ingest upd'});
		last if $gated;
		usleep(100_000);
	}
	# ledger 3 corrected (other data, same hash), ledger 5 withdrawn
	$node->safe_psql('postgres', q{
		UPDATE ledger_ingest.inbox SET doc = jsonb_set(doc, '{logs,0,data}', to_jsonb('0x' || repeat('ee', 32)))
			WHERE pipeline = 'upd' AND ledger = 3;
		DELETE FROM ledger_ingest.inbox WHERE pipeline = 'upd' AND ledger = 5;
	});
	$dbh->do('SELECT pg_advisory_unlock_all()');
	li_case($F, 'a document updated after the worker read it is applied as updated; a deleted one is not applied',
		$gated && li_wait($node, 'upd', 4, 60) && !li_wait($node, 'upd', 5, 2)
		  && li_scalar($node, q{SELECT string_agg(ledger || ':' || left(encode(data, 'hex'), 4), ',' ORDER BY ledger) FROM upd_seen})
			eq '1:0000,2:0000,3:eeee,4:0000'
		  && li_scalar($node, q{SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = 'upd'}) eq '0');
}

# the worker's inbox query (src/source_inbox.c), planned as a kept plan is
$node->safe_psql('postgres', q{
	SELECT ledger_ingest.create_pipeline('backlog', 'inbox');
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'backlog', jsonb_build_object('number', n, 'hash', '0x' || lpad(to_hex(n), 64, '0'), 'logs', '[]'::jsonb)
		FROM generate_series(1, 20000) n;
	ANALYZE ledger_ingest.inbox;
});
sub backlog_read
{
	my $plan = li_scalar($node, q{
		SET plan_cache_mode = force_generic_plan;
		PREPARE inbox_read(text, int) AS SELECT id, doc, ledger, packed, xmin FROM ledger_ingest.inbox
			WHERE pipeline OPERATOR(pg_catalog.=) $1 AND error IS NULL
			ORDER BY ledger NULLS FIRST, id LIMIT $2;
		EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, FORMAT JSON) EXECUTE inbox_read('backlog', 1000)});
	my ($hit) = $plan =~ /"Shared Hit Blocks": (\d+)/;
	my ($read) = $plan =~ /"Shared Read Blocks": (\d+)/;
	return ($plan, $hit + $read);
}
my ($plan20, $pages20) = backlog_read();
$node->safe_psql('postgres', q{
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'backlog', jsonb_build_object('number', n, 'hash', '0x' || lpad(to_hex(n), 64, '0'), 'logs', '[]'::jsonb)
		FROM generate_series(20001, 200000) n;
	ANALYZE ledger_ingest.inbox;
});
my ($plan200, $pages200) = backlog_read();
note("pages read for 1,000 documents: $pages20 with 20,000 pending, $pages200 with 200,000");
li_case($F, "the inbox read is served by its index in order, no sort: $pages20 pages (20,000 pending) vs $pages200 (200,000)",
	$plan200 =~ /"Index Name": "inbox_pending_idx"/ && $plan200 !~ /"Node Type": "Sort"/
	  && $plan20 !~ /"Node Type": "Sort"/ && $pages200 <= 1.5 * $pages20 + 10);
$node->safe_psql('postgres', q{SELECT ledger_ingest.drop_pipeline('backlog')});

# --- a pinned NOTIFY queue ----------------------------------------------------
{
	$node->safe_psql('postgres', q{
		ALTER SYSTEM SET ledger_ingest.notify_queue_limit = 0.00001;   -- about 10 of the queue's pages
		SELECT pg_reload_conf();
		SELECT ledger_ingest.create_pipeline('quiet', 'inbox');
		SELECT ledger_ingest.create_pipeline('other', 'inbox');
		SELECT ledger_ingest.start('quiet');
	});
	li_wait_state($node, 'quiet', 'running', 30);
	my $listener = li_dbh($node);
	$listener->do('LISTEN ledger_ingest');
	$listener->begin_work;
	$listener->do('SELECT 1');    # idle in transaction: it holds the queue's tail
	$node->safe_psql('postgres', q{SELECT pg_notify('fill', i || repeat('x', 7900)) FROM generate_series(1, 40) i});
	my $usage = li_scalar($node, 'SELECT pg_notification_queue_usage()');
	my $log_offset = -s $node->logfile;
	$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'quiet', doc(n) FROM generate_series(1, 3) n});
	my $applied = li_wait($node, 'quiet', 3, 60);
	my $ctl = $node->psql('postgres', q{SELECT ledger_ingest.start('other'); SELECT ledger_ingest.stop('other')});
	my $dropped = li_scalar($node, q{SELECT notifications_dropped FROM ledger_ingest.status WHERE pipeline = 'quiet'});
	my $log = substr(slurp_file($node->logfile), $log_offset);
	note("queue usage $usage, dropped $dropped");
	li_case($F, "a pinned NOTIFY queue above notify_queue_limit: applying, start() and stop() go on, $dropped notifications dropped, counted and logged",
		$usage > 0.00001 && $applied && $ctl == 0 && $dropped >= 1
		  && $log =~ /ledger_ingest pipeline "quiet": notification dropped: the NOTIFY queue is/);
	$listener->rollback;
	$listener->disconnect;
	$node->safe_psql('postgres', q{ALTER SYSTEM RESET ledger_ingest.notify_queue_limit; SELECT pg_reload_conf();});
}

# --- batches bounded in bytes ----------------------------------------------
{
	$node->safe_psql('postgres', q{
		CREATE TABLE big_seen (ledger bigint, len int);
		CREATE FUNCTION big_see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
			$$ INSERT INTO big_seen VALUES (e.ledger, length(e.data)) $$;
		SELECT ledger_ingest.create_pipeline('big', 'inbox', '{"batch_max_bytes": 1000000}');
		SELECT ledger_ingest.add_handler('big', 'big_see(ledger_ingest.event)');
	});
	my $listener = li_listen($node);
	li_drain($listener, 0.2);
	# 8 ledgers of 300 kB of log data each (the batch reaches 1 MB at the 4th)
	$node->safe_psql('postgres', q{
		INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'big', jsonb_set(doc(n), '{logs,0,data}', to_jsonb('0x' || repeat(lpad(to_hex(n), 2, '0'), 300000)))
		FROM generate_series(1, 8) n;
		SELECT ledger_ingest.start('big');
	});
	my $ok = li_wait($node, 'big', 8, 60);
	my @tx = map { $_->{ledger} - $_->{from_ledger} + 1 }
	  grep { $_->{type} eq 'applied' && $_->{pipeline} eq 'big' } li_drain($listener, 1.0);
	note('ledgers per apply transaction: ' . join(',', @tx));
	li_case($F, 'batch_max_bytes: 8 ledgers of 300 kB are applied in transactions of at most 4 ledgers (1 MB), each once',
		$ok && @tx >= 2 && !(grep { $_ > 4 } @tx)
		  && li_scalar($node, q{SELECT count(*) || ' ' || min(len) || ' ' || count(DISTINCT ledger) FROM big_seen}) eq '8 300000 8');
	$listener->disconnect;
}

# --- a worker under a memory limit ------------------------------------------
# The same 40 ledgers of 2 MB each for two pipelines whose workers may use
# at most 48 MB more address space than they have when idle (prlimit --as):
# with batch_max_bytes 4 MB every ledger is applied once; with the 64 MB
# default a batch does not fit, and the worker reports out of memory.
{
	my %pid;
	$node->safe_psql('postgres', q{
		CREATE TABLE mem_seen (pipeline text, ledger bigint, len int);
		CREATE FUNCTION mem_see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
			$$ INSERT INTO mem_seen VALUES (e.pipeline, e.ledger, length(e.data)) $$;
		SELECT ledger_ingest.create_pipeline('mem_small', 'inbox', '{"batch_max_bytes": 4194304}');
		SELECT ledger_ingest.create_pipeline('mem_default', 'inbox');
		SELECT ledger_ingest.add_handler(p, 'mem_see(ledger_ingest.event)') FROM unnest(ARRAY['mem_small', 'mem_default']) p;
		SELECT ledger_ingest.start(p) FROM unnest(ARRAY['mem_small', 'mem_default']) p;
	});
	for my $p ('mem_small', 'mem_default')
	{
		li_wait_state($node, $p, 'running', 30);
		$pid{$p} = li_worker_pid($node, $p);
		my ($vm) = slurp_file("/proc/$pid{$p}/status") =~ /^VmSize:\s+(\d+) kB/m;
		system('prlimit', "--pid=$pid{$p}", '--as=' . ($vm * 1024 + 48 * 1024 * 1024)) == 0
		  or diag("prlimit failed for $p");
	}
	$node->safe_psql('postgres', q{
		INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT p, jsonb_set(doc(n), '{logs,0,data}', to_jsonb('0x' || repeat(lpad(to_hex(n), 2, '0'), 2000000)))
		FROM unnest(ARRAY['mem_small', 'mem_default']) p, generate_series(1, 40) n;
	});
	my $small = li_wait($node, 'mem_small', 40, 120);
	li_case($F, 'under a 48 MB memory limit, batch_max_bytes 4 MB applies 40 ledgers of 2 MB each once, in the same worker',
		$small && li_worker_pid($node, 'mem_small') == $pid{mem_small}
		  && li_scalar($node, q{SELECT count(*) || ' ' || count(DISTINCT ledger) || ' ' || min(len) FROM mem_seen WHERE pipeline = 'mem_small'}) eq '40 40 2000000');
	my $err = '';
	for (1 .. 100)
	{
		$err = li_scalar($node, q{SELECT coalesce(last_error, '') FROM ledger_ingest.status WHERE pipeline = 'mem_default'});
		last if $err ne '';
		usleep(100_000);
	}
	note("mem_default: $err");
	ok($err =~ /^53200: out of memory/, 'the control: with the 64 MB default the same limit is exceeded');
	$node->safe_psql('postgres', q{SELECT ledger_ingest.drop_pipeline(p) FROM unnest(ARRAY['mem_small', 'mem_default']) p});
}

# --- pipeline slots --------------------------------------------------------
{
	my $small = li_node('operations_slots', 'ledger_ingest.max_pipelines' => 2);
	$small->safe_psql('postgres', q{
		CREATE TABLE seen (pipeline text, ledger bigint);
		CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
			$$ INSERT INTO seen VALUES (e.pipeline, e.ledger) $$;
		SELECT ledger_ingest.create_pipeline(p, 'inbox'), ledger_ingest.add_handler(p, 'see(ledger_ingest.event)')
			FROM unnest(ARRAY['s1', 's2', 's3', 's4']) p;
		INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT p,
			jsonb_build_object('number', 1, 'hash', '0x' || repeat('11', 32), 'logs', jsonb_build_array(
				jsonb_build_object('address', '0x' || repeat('aa', 20), 'topics', '[]'::jsonb, 'data', '0x',
					'transactionIndex', 0, 'logIndex', 0)))
			FROM unnest(ARRAY['s1', 's2', 's3', 's4']) p;
		SELECT ledger_ingest.start('s1'), ledger_ingest.start('s2');
	});
	my $both = li_wait($small, 's1', 1, 60) && li_wait($small, 's2', 1, 60);
	$small->safe_psql('postgres', q{SELECT ledger_ingest.stop('s1'), ledger_ingest.stop('s2'), ledger_ingest.start('s3')});
	li_case($F, 'slots: with max_pipelines 2 taken by two stopped pipelines, a third runs',
		$both && li_wait($small, 's3', 1, 60));
	$small->safe_psql('postgres', q{SELECT ledger_ingest.start('s1'), ledger_ingest.start('s4')});
	my $st = li_wait_state($small, 's4', 'waiting', 30);
	my $err = li_scalar($small, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 's4'});
	note("s4: $st: $err");
	li_case($F, 'slots: a running pipeline without a free slot shows waiting and why',
		$st eq 'waiting' && $err =~ /^53000: could not start the pipeline's worker: all 2 pipeline slots are taken by running pipelines \(ledger_ingest.max_pipelines\)/
		  && li_scalar($small, q{SELECT count(*) FROM seen WHERE pipeline = 's4'}) eq '0');
	$small->safe_psql('postgres', q{SELECT ledger_ingest.stop('s3')});
	li_case($F, 'slots: the waiting pipeline runs once a slot frees up, its start failure cleared',
		li_wait($small, 's4', 1, 60) && li_wait_state($small, 's4', 'running', 30) eq 'running'
		  && li_scalar($small, q{SELECT coalesce(last_error, 'none') FROM ledger_ingest.status WHERE pipeline = 's4'}) eq 'none');
	# wait_for on a stopped pipeline (no slot) still sees a cursor moved by SQL
	my $t = IPC::Run::start([ 'psql', '-XAtq', '-d', $small->connstr('postgres'), '-c',
		q{SELECT ledger_ingest.wait_for('s3', 5, '30s')} ], '>', \my $out);
	sleep 1;
	$small->safe_psql('postgres', q{SELECT ledger_ingest.cursor_cas('s3', (1, NULL, NULL), (5, NULL, NULL))});
	my $t0 = time;
	$t->finish;
	li_case($F, 'slots: wait_for on a stopped pipeline sees its cursor move', $out =~ /^t/ && time - $t0 < 5);
	$small->stop;
}

done_testing();
