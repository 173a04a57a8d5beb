# Operations (issue: exactly once in the ordinary life of a database).
# Each case is recorded in the "operations" family (li_case).
#
# - transaction blocks: every handler (per-event, set-based, revert) runs
#   inside a real transaction block (IsTransactionBlock(), reported by the
#   test-only li_probe module), which Citus and other extensions need to
#   coordinate their work with the cursor.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
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

done_testing();
