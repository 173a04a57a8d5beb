# Security cases, run as non-superusers: roles outside ledger_ingest_admin
# can do nothing; one pipeline owner cannot see or touch another's
# pipelines (or their RPC URLs); handlers and raw sinks run with their
# owner's privileges; a database-wide malicious search_path cannot hijack anything
# the worker runs as superuser; CREATE EXTENSION needs a superuser; no
# PUBLIC grants and every SECURITY DEFINER function pins search_path.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use LiTest;

my $node = li_node('security');
$node->safe_psql('postgres', q{
	CREATE ROLE carol LOGIN;
	CREATE ROLE alice LOGIN IN ROLE ledger_ingest_admin;
	CREATE ROLE bob LOGIN IN ROLE ledger_ingest_admin;
	GRANT CREATE ON SCHEMA public TO alice, bob;
	CREATE TABLE su_secret (v text);
	INSERT INTO su_secret VALUES ('only the superuser reads this');
	SET SESSION AUTHORIZATION alice;
	CREATE TABLE alice_seen (ledger bigint, note text);
	CREATE FUNCTION alice_ok(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO alice_seen VALUES (e.ledger, 'ok') $$;
	CREATE FUNCTION alice_peek(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO alice_seen SELECT e.ledger, v FROM su_secret $$;
	SELECT ledger_ingest.create_pipeline('alice_rpc', 'evm_rpc', '{"url":"https://mainnet.example/v3/alice-api-key-123"}');
	SELECT ledger_ingest.create_pipeline('alice_inbox', 'inbox');
	SELECT ledger_ingest.add_handler('alice_inbox', 'alice_ok(ledger_ingest.event)');
});

# run $sql as $role; (ok?, stderr)
sub as
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET SESSION AUTHORIZATION $role;\n$sql");
	return ($ret == 0, $err, $out);
}
my $doc = li_doc(1, 1);

# 1. outside ledger_ingest_admin: nothing
my @denied;
for my $sql (
	q{SELECT ledger_ingest.create_pipeline('carol', 'inbox')},
	q{SELECT ledger_ingest.start('alice_inbox')},
	q{SELECT ledger_ingest.stop('alice_inbox')},
	q{SELECT ledger_ingest.add_handler('alice_inbox', 'alice_ok(ledger_ingest.event)')},
	q{SELECT ledger_ingest.drop_pipeline('alice_inbox')},
	q{SELECT ledger_ingest.rewind('alice_inbox', 0)},
	q{SELECT options FROM ledger_ingest.pipeline},
	q{SELECT * FROM ledger_ingest.status},
	qq{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('alice_inbox', $doc)},
	q{UPDATE ledger_ingest.cursor SET ledger = 100},
	q{DELETE FROM ledger_ingest.ledger})
{
	my ($ok, $err) = as('carol', $sql);
	push @denied, $sql if !$ok && $err =~ /permission denied/;
}
li_case('security cases', 'a role outside ledger_ingest_admin cannot create, start, stop, alter or drop pipelines, read or write the tables (' . scalar(@denied) . ' of 11 refused)',
	@denied == 11);

# 2. another owner: bob sees none of alice's pipelines, options or URL, and cannot change them
my (undef, undef, $seen) = as('bob', q{SELECT count(*) FROM ledger_ingest.pipeline WHERE options::text LIKE '%alice-api-key%'});
my (undef, undef, $st) = as('bob', q{SELECT count(*) FROM ledger_ingest.status WHERE pipeline LIKE 'alice%'});
my ($stop_ok, $stop_err) = as('bob', q{SELECT ledger_ingest.stop('alice_inbox')});
my ($h_ok) = as('bob', q{SELECT ledger_ingest.add_handler('alice_inbox', 'alice_ok(ledger_ingest.event)')});
my ($ins_ok, $ins_err) = as('bob', qq{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('alice_inbox', $doc)});
my ($upd_ok, $upd_err) = as('bob', q{UPDATE ledger_ingest.cursor SET ledger = 100 WHERE pipeline = 'alice_inbox'});
my ($cw_ok, $cw_err) = as('bob', q{SELECT ledger_ingest._catalog_write('cursor_cas', 'alice_inbox', '{-1,NULL,NULL,100,NULL,NULL}')});
li_case('security cases', "another pipeline owner cannot read alice's RPC URL or status, nor stop, alter, feed or move her pipelines",
	$seen eq '0' && $st eq '0' && !$stop_ok && !$h_ok && !$ins_ok && $ins_err =~ /row-level security/
	  && !$upd_ok && $upd_err =~ /permission denied for table cursor/
	  && !$cw_ok && $cw_err =~ /pipeline "alice_inbox" does not exist/
	  && li_scalar($node, q{SELECT ledger || ' ' || handlers FROM (SELECT c.ledger, (SELECT count(*) FROM ledger_ingest.handler WHERE pipeline = 'alice_inbox') AS handlers FROM ledger_ingest.cursor c WHERE pipeline = 'alice_inbox') x}) eq '-1 1');

# 2b. no lock another admin may take stalls alice's pipeline: bob holds
# SELECT on the tables and INSERT on the inbox, no more, so the strongest
# locks he can take are ACCESS SHARE and (the inbox) ROW EXCLUSIVE, which
# the worker shares; he is refused anything stronger
{
	my ($lock_ok, $lock_err) = as('bob', q{BEGIN; LOCK TABLE ledger_ingest.cursor IN ACCESS EXCLUSIVE MODE});
	my ($share_ok, $share_err) = as('bob', q{BEGIN; LOCK TABLE ledger_ingest.inbox IN SHARE MODE});
	as('alice', q{SELECT ledger_ingest.start('alice_inbox')});
	my $held = IPC::Run::start([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \qq{SET SESSION AUTHORIZATION bob;
BEGIN;
LOCK TABLE ledger_ingest.pipeline, ledger_ingest.cursor, ledger_ingest.handler, ledger_ingest.ledger,
	ledger_ingest.sink, ledger_ingest.tracked, ledger_ingest.journal, ledger_ingest.decode_error IN ACCESS SHARE MODE;
LOCK TABLE ledger_ingest.inbox IN ROW EXCLUSIVE MODE;
SELECT 'held';
SELECT pg_sleep(20);
COMMIT;
}, '>', \my $held_out, '2>', \my $held_err);
	$held->pump until $held_out =~ /held/ || !$held->pumpable;
	my $t0 = time;
	as('alice', qq{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('alice_inbox', $doc)});
	my $applied = li_wait($node, 'alice_inbox', 1, 15);
	my $secs = time - $t0;
	my (undef, undef, $seen_status) = as('alice', q{SELECT ledger FROM ledger_ingest.status WHERE pipeline = 'alice_inbox'});
	$held->kill_kill;
	note("locks refused: $lock_err | $share_err; applied under bob's locks after ${secs}s");
	li_case('security cases', "another admin can neither take a lock that stalls alice's pipeline nor stall it with the locks he may take",
		!$lock_ok && $lock_err =~ /permission denied for table cursor/
		  && !$share_ok && $share_err =~ /permission denied for table inbox/
		  && $held_out =~ /held/ && $applied && $secs < 10 && $seen_status eq '1');
	as('alice', q{SELECT ledger_ingest.stop('alice_inbox')});
}

# 2b. the fetched frontier of a running evm_rpc pipeline (status.fetched,
# from shared memory) is alice's to see: bob gets NULL from the function
# behind it, as for a pipeline that does not exist
{
	my $rpc = li_anvil();
	my $token = chain('deploy', $rpc);
	chain('mint', $rpc, $token);
	my $head = chain('head', $rpc);
	as('alice', qq{SELECT ledger_ingest.create_pipeline('alice_live', 'evm_rpc',
		'{"url":"$rpc","addresses":["$token"],"poll_ms":200}');
		SELECT ledger_ingest.add_handler('alice_live', 'alice_ok(ledger_ingest.event)');
		SELECT ledger_ingest.start('alice_live')});
	my $alice = '';
	for (1 .. 300)
	{
		(undef, undef, $alice) = as('alice', q{SELECT coalesce(fetched, -1) FROM ledger_ingest.status WHERE pipeline = 'alice_live'});
		last if ($alice // -1) >= $head;
		usleep(100_000);
	}
	my (undef, undef, $bob) = as('bob', q{SELECT coalesce(ledger_ingest._shmem_fetched('alice_live')::text, 'null')
		|| ' ' || (SELECT count(*) FROM ledger_ingest.status WHERE pipeline = 'alice_live')});
	li_case('security cases', "another admin cannot see the fetched frontier of alice's running evm_rpc pipeline (alice: $alice; bob: $bob)",
		$alice >= $head && $bob eq 'null 0');
	as('alice', q{SELECT ledger_ingest.stop('alice_live')});
}

# 3. a handler runs with its owner's privileges: alice's cannot read su_secret
as('alice', qq{
	SELECT ledger_ingest.create_pipeline('alice_peek', 'inbox', '{"max_retries":0}');
	SELECT ledger_ingest.add_handler('alice_peek', 'alice_peek(ledger_ingest.event)');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('alice_peek', $doc);
	SELECT ledger_ingest.start('alice_peek');
});
my $state = li_wait_state($node, 'alice_peek', 'failed', 30);
my $err = li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'alice_peek'});
li_case('security cases', "a handler runs as its owner: reading a superuser-only table fails ($err)",
	$state eq 'failed' && $err =~ /permission denied for table su_secret/
	  && li_scalar($node, q{SELECT count(*) FROM alice_seen WHERE note <> 'ok'}) eq '0');

# 3b. a raw sink writes as the pipeline owner: bob's table accepted alice's
# sink while bob granted INSERT; once he revokes it nothing lands, the error
# says so, and the ledger applies once he grants it again
$node->safe_psql('postgres', q{
	SET SESSION AUTHORIZATION bob;
	CREATE TABLE bob_rows (ledger bigint, event_index int, data bytea);
	GRANT INSERT ON bob_rows TO alice;
});
as('alice', q{
	SELECT ledger_ingest.create_pipeline('alice_sink', 'inbox', '{"max_retries":0}');
	SELECT ledger_ingest.add_raw_sink('alice_sink', 'bob_rows');
});
$node->safe_psql('postgres', q{SET SESSION AUTHORIZATION bob; REVOKE INSERT ON bob_rows FROM alice});
as('alice', qq{
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('alice_sink', $doc);
	SELECT ledger_ingest.start('alice_sink');
});
$state = li_wait_state($node, 'alice_sink', 'failed', 30);
$err = li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'alice_sink'});
my $sink_rows = li_scalar($node, q{SELECT count(*) FROM bob_rows});
$node->safe_psql('postgres', q{SET SESSION AUTHORIZATION bob; GRANT INSERT ON bob_rows TO alice});
as('alice', q{SELECT ledger_ingest.start('alice_sink')});
li_case('security cases', "a raw sink writes as its owner: without INSERT on the table nothing lands ($err), with it the ledger lands once",
	$state eq 'failed' && $err =~ /permission denied for table bob_rows/ && $sink_rows eq '0'
	  && li_wait($node, 'alice_sink', 1, 30) && li_scalar($node, q{SELECT count(*) FROM bob_rows}) eq '1');

# 3c. user code a raw sink or a handler sets off cannot be deferred past
# the owner's restricted context: a deferred constraint trigger on the
# sink's table or the handler's table would fire at commit as the worker's
# superuser.  As PostgreSQL refuses it inside a security-restricted
# operation (REFRESH MATERIALIZED VIEW, index expressions), the pipeline
# fails with that error and the trigger never runs.
as('alice', q{
	CREATE TABLE alice_trig (via text, who name);
	CREATE FUNCTION alice_who() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN INSERT INTO alice_trig VALUES (TG_ARGV[0], current_user); RETURN NULL; END $$;
	CREATE TABLE alice_rows (ledger bigint, data bytea);
	CREATE CONSTRAINT TRIGGER alice_rows_who AFTER INSERT ON alice_rows
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION alice_who('sink');
	CREATE TABLE alice_log (ledger bigint);
	CREATE CONSTRAINT TRIGGER alice_log_who AFTER INSERT ON alice_log
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION alice_who('handler');
	CREATE FUNCTION alice_log(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO alice_log VALUES (e.ledger) $$;
	SELECT ledger_ingest.create_pipeline('alice_dsink', 'inbox', '{"max_retries":0}');
	SELECT ledger_ingest.add_raw_sink('alice_dsink', 'alice_rows');
	SELECT ledger_ingest.create_pipeline('alice_dhandler', 'inbox', '{"max_retries":0}');
	SELECT ledger_ingest.add_handler('alice_dhandler', 'alice_log(ledger_ingest.event)');
});
as('alice', qq{
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('alice_dsink', $doc), ('alice_dhandler', $doc);
	SELECT ledger_ingest.start('alice_dsink');
	SELECT ledger_ingest.start('alice_dhandler');
});
my @deferred;
for my $p ('alice_dsink', 'alice_dhandler')
{
	my $st = li_wait_state($node, $p, 'failed', 30);
	my $e = li_scalar($node, qq{SELECT last_error FROM ledger_ingest.status WHERE pipeline = '$p'});
	push @deferred, "$p: $st: $e";
	push @deferred, 'BAD' unless $st eq 'failed' && $e =~ /cannot fire deferred trigger within security-restricted operation/;
}
my $who = li_scalar($node, q{SELECT count(*) FROM alice_trig});
li_case('security cases', "deferred triggers a raw sink or a handler sets off are refused, never fired as the superuser at commit (" . join('; ', @deferred) . "; fired: $who)",
	!grep({ $_ eq 'BAD' } @deferred) && $who eq '0'
	  && li_scalar($node, q{SELECT count(*) FROM alice_rows}) eq '0' && li_scalar($node, q{SELECT count(*) FROM alice_log}) eq '0');

# 4. a malicious search_path for the whole database: a schema of alice's
# with functions and operators named like built-ins, each recording who
# called it.  The worker (superuser, or a handler's owner) must never call
# one; the test's own sessions do, which shows they are reachable.
$node->safe_psql('postgres', q{
	CREATE SCHEMA evil AUTHORIZATION alice;
	SET SESSION AUTHORIZATION alice;
	CREATE TABLE evil.calls (who name, app text, what text);
	GRANT INSERT, SELECT ON evil.calls TO PUBLIC;
	CREATE FUNCTION evil.note(what text) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO evil.calls VALUES (current_user, pg_catalog.current_setting('application_name'), what) $$;
	CREATE FUNCTION evil.eq(a text, b text) RETURNS boolean LANGUAGE sql AS
		$$ SELECT evil.note('text ='); SELECT a OPERATOR(pg_catalog.=) b $$;
	CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq);
	CREATE FUNCTION evil.eq8(a bigint, b bigint) RETURNS boolean LANGUAGE sql AS
		$$ SELECT evil.note('bigint ='); SELECT a OPERATOR(pg_catalog.=) b $$;
	CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.eq8);
	CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS
		$$ SELECT evil.note('now'); SELECT pg_catalog.now() $$;
	CREATE FUNCTION evil.lower(t text) RETURNS text LANGUAGE sql AS
		$$ SELECT evil.note('lower'); SELECT pg_catalog.lower(t) $$;
	CREATE FUNCTION evil.jsonb_build_object(VARIADIC a text[]) RETURNS jsonb LANGUAGE sql AS
		$$ SELECT evil.note('jsonb_build_object'); SELECT '{}'::jsonb $$;
	CREATE FUNCTION evil.length(t text) RETURNS int LANGUAGE sql AS
		$$ SELECT evil.note('length'); SELECT pg_catalog.length(t) $$;
	RESET SESSION AUTHORIZATION;
	ALTER DATABASE postgres SET search_path = evil, pg_catalog, public;
});
# restart so that every worker starts with the database's setting
$node->restart;
as('alice', qq{
	SET search_path = pg_catalog, public;
	SELECT ledger_ingest.create_pipeline('alice_path', 'inbox', '{"commit":"ledger"}');
	CREATE TABLE public.alice_bal (ledger bigint PRIMARY KEY, v int);
	CREATE FUNCTION public.alice_track(e ledger_ingest.event) RETURNS void LANGUAGE sql
		SET search_path = pg_catalog, public AS
		\$\$ INSERT INTO public.alice_bal VALUES (e.ledger, 1) ON CONFLICT (ledger) DO UPDATE SET v = alice_bal.v + 1 \$\$;
	SELECT ledger_ingest.track_table('alice_path', 'public.alice_bal');
	SELECT ledger_ingest.add_handler('alice_path', 'public.alice_track(ledger_ingest.event)');
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'alice_path', jsonb_build_object('number', n, 'hash', '0x' || repeat(lpad(to_hex(n), 2, '0'), 32),
			'parentHash', '0x' || repeat(lpad(to_hex(n - 1), 2, '0'), 32),
			'logs', jsonb_build_array(jsonb_build_object('address', '0x' || repeat('aa', 20), 'topics', jsonb_build_array(),
				'data', '0x', 'transactionIndex', '0x0', 'logIndex', '0x0')))
		FROM pg_catalog.generate_series(1, 5) n;
	SELECT ledger_ingest.start('alice_path');
});
my $applied = li_wait($node, 'alice_path', 5, 30);
# a reorg at 4: revert and restore run too
as('alice', q{
	SET search_path = pg_catalog, public;
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'alice_path', jsonb_build_object('number', n, 'hash', '0x' || repeat(lpad(to_hex(n + 100), 2, '0'), 32),
			'parentHash', '0x' || repeat(lpad(to_hex(CASE WHEN n = 4 THEN 3 ELSE n + 99 END), 2, '0'), 32),
			'logs', '[]'::jsonb)
		FROM pg_catalog.generate_series(4, 6) n;
});
my $reorged = li_wait($node, 'alice_path', 6, 30);
# a plain session of the superuser does reach them (the trap is armed)
li_scalar($node, q{SELECT 'x'::text = 'x'::text});
my $bal = li_scalar($node, q{SELECT string_agg(ledger || ':' || v, ',' ORDER BY ledger) FROM public.alice_bal});
diag("applied $applied, reorged $reorged, alice_bal $bal") unless $applied && $reorged && $bal eq '1:1,2:1,3:1';
my $calls = li_scalar($node, q{SELECT count(*) FILTER (WHERE app LIKE 'ledger_ingest%') || ' ' || count(*) FROM evil.calls});
li_case('security cases', "a database-wide search_path with shadowing functions and operators hijacks nothing the worker runs (worker calls, all calls: $calls)",
	$applied && $reorged && $calls =~ /^0 [1-9]/ && $bal eq '1:1,2:1,3:1');
$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET search_path');

# 5. CREATE EXTENSION needs a superuser (the extension is not trusted)
$node->safe_psql('postgres', q{CREATE DATABASE other OWNER alice});
my ($ret, $out, $cerr) = $node->psql('other', q{SET SESSION AUTHORIZATION alice; CREATE EXTENSION ledger_ingest});
li_case('security cases', 'CREATE EXTENSION by a non-superuser (even the database owner) is refused',
	$ret != 0 && $cerr =~ /permission denied to create extension "ledger_ingest"/);

# 6. no PUBLIC grants; SECURITY DEFINER functions pin search_path
my $public = li_scalar($node, q{
	SELECT count(*) FROM (
		SELECT 1 FROM pg_class c CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
		 WHERE c.relnamespace = 'ledger_ingest'::regnamespace AND a.grantee = 0
		UNION ALL
		SELECT 1 FROM pg_proc p CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
		 WHERE p.pronamespace = 'ledger_ingest'::regnamespace AND a.grantee = 0) x});
my $unpinned = li_scalar($node, q{
	SELECT count(*) FROM pg_proc p
	 WHERE p.pronamespace = 'ledger_ingest'::regnamespace AND p.prosecdef
	   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')});
li_case('security cases', "nothing in the extension's schema is granted to PUBLIC; every SECURITY DEFINER function pins search_path",
	$public eq '0' && $unpinned eq '0');

$node->stop;
done_testing();
