# Handlers cannot escalate or leak state, and published state follows only
# what commits:
#  - a handler's deferred trigger cannot fire later as the worker's
#    superuser (security-restricted operation), and settings a handler
#    changes are undone after the call;
#  - an inbox ledger inserted after a later one was applied is rejected
#    with an error saying so, and never taken for a reorg (no applied ledger
#    is reverted);
#  - a cursor_cas rolled back to a savepoint publishes nothing to wait_for.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('handlers');
$node->safe_psql('postgres', q{
	CREATE ROLE regress_alice NOLOGIN IN ROLE ledger_ingest_admin;
	CREATE TABLE alice_t (n bigint);
	ALTER TABLE alice_t OWNER TO regress_alice;
	CREATE FUNCTION alice_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		ALTER ROLE regress_alice SUPERUSER;
		RETURN NULL;
	END $$;
	ALTER FUNCTION alice_trigger() OWNER TO regress_alice;
	CREATE FUNCTION alice_handler(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM set_config('application_name', 'handler_set_this', false);
		INSERT INTO alice_t VALUES (e.ledger);
	END $$;
	ALTER FUNCTION alice_handler(ledger_ingest.event) OWNER TO regress_alice;
	SET ROLE regress_alice;
	CREATE CONSTRAINT TRIGGER evil AFTER INSERT ON alice_t DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION alice_trigger();
	SELECT ledger_ingest.create_pipeline('alice', 'inbox', '{"max_retries": 0}');
	SELECT ledger_ingest.add_handler('alice', 'alice_handler(ledger_ingest.event)');
	SELECT ledger_ingest.start('alice');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('alice', jsonb_build_object(
		'number', 1, 'hash', '0x' || repeat('11', 32),
		'logs', jsonb_build_array(jsonb_build_object('address', '0x' || repeat('aa', 20),
			'topics', '[]'::jsonb, 'data', '0x', 'transactionIndex', 0, 'logIndex', 0))));
	RESET ROLE;
});
is(li_wait_state($node, 'alice', 'failed', 60), 'failed', 'the handler with a deferred trigger fails');
like(li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'alice'}),
	qr/cannot fire deferred trigger within security-restricted operation/, 'refused: security-restricted operation');
is(li_scalar($node, q{SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_alice'}), 'f',
	'the owner did not become superuser');
is(li_scalar($node, q{SELECT count(*) FROM alice_t}), '0', 'nothing of the ledger committed');

# without the trigger the same handler runs; its SET does not outlive the call
$node->safe_psql('postgres', q{
	DROP TRIGGER evil ON alice_t;
	SELECT ledger_ingest.start('alice');
});
ok(li_wait($node, 'alice', 1, 60), 'the handler ran');
is( li_scalar($node,
		q{SELECT application_name FROM pg_stat_activity
		  WHERE pid = (SELECT pid FROM ledger_ingest.status WHERE pipeline = 'alice')}),
	'ledger_ingest alice', 'a setting changed by the handler was undone');

# a ledger that arrives after a later one was applied, with late_ledgers
# "skip" (the default, "fail", is in 015_operations.pl)
$node->safe_psql('postgres', q{
	CREATE TABLE seen (n bigint);
	CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$ INSERT INTO seen VALUES (e.ledger) $$;
	CREATE FUNCTION doc(n int) RETURNS jsonb LANGUAGE sql AS $$
		SELECT jsonb_build_object('number', n, 'hash', '0x' || repeat(lpad(n::text, 2, '0'), 32),
			'parentHash', '0x' || repeat(lpad((n - 1)::text, 2, '0'), 32),
			'logs', jsonb_build_array(jsonb_build_object('address', '0x' || repeat('aa', 20),
				'topics', '[]'::jsonb, 'data', '0x', 'transactionIndex', 0, 'logIndex', 0))) $$;
	SELECT ledger_ingest.create_pipeline('late', 'inbox', '{"late_ledgers": "skip"}');
	SELECT ledger_ingest.add_handler('late', 'see(ledger_ingest.event)');
	SELECT ledger_ingest.start('late');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('late', doc(1)), ('late', doc(3));
});
ok(li_wait($node, 'late', 3, 60), 'ledgers 1 and 3 applied');
$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('late', doc(2)), ('late', doc(4))});
ok(li_wait($node, 'late', 4, 60), 'ledger 4 applied');
is(li_scalar($node, q{SELECT string_agg(n::text, ',' ORDER BY n) FROM seen}), '1,3,4',
	'ledger 3 was not reverted by the late ledger 2');
is(li_scalar($node, q{SELECT reorgs FROM ledger_ingest.status WHERE pipeline = 'late'}), '0', 'no reorg');
like(li_scalar($node, q{SELECT error FROM ledger_ingest.inbox WHERE pipeline = 'late' AND ledger = 2}),
	qr/ledger 2 is not above the cursor \(ledger 3\): it was never applied/, 'the late ledger says why it was not applied');

# a cursor_cas rolled back to a savepoint publishes nothing
$node->safe_psql('postgres', q{
	SELECT ledger_ingest.create_pipeline('sp', 'inbox');
	SELECT ledger_ingest.start('sp');
});
li_wait_state($node, 'sp', 'running', 30);
$node->safe_psql('postgres', q{
	BEGIN;
	SAVEPOINT s;
	SELECT ledger_ingest.cursor_cas('sp', ROW(-1, NULL, NULL), ROW(1000, NULL, NULL));
	ROLLBACK TO s;
	COMMIT;
});
is(li_scalar($node, q{SELECT ledger_ingest.wait_for('sp', 999, '1s')}), 'f',
	'wait_for does not see a cursor move that was rolled back');

$node->stop;
done_testing();
