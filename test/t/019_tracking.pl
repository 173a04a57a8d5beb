# Tracked tables between owners, and where the journal starts (issue:
# owners isolated, a reorg that restores exactly what the pipeline
# changed).  Families "security cases" and "reorg restores".
#
# - track_table needs the caller to own the table (even when another
#   owner's pipeline tracks it already), refuses partitioned tables and
#   partitions;
# - one owner's untrack_table never drops the journal trigger another
#   owner's pipeline still needs;
# - inbox documents belong to their pipeline: a new pipeline of the same
#   name never inherits another owner's; a producer writes only for
#   existing pipelines it owns;
# - a table tracked while the pipeline runs is journaled from the next
#   ledger; a reorg forking below that fails with nothing changed, one
#   above it is reverted;
# - a reorg restores rows in place: a row the orphaned ledgers updated is
#   updated back (its ON DELETE CASCADE and NO ACTION children stay, a
#   column added since keeps its value), a row they inserted is deleted, a
#   row they deleted comes back.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('tracking');
li_chain_sql($node);
$node->safe_psql('postgres', q{
	GRANT EXECUTE ON FUNCTION h(bigint, int), doc(bigint, int, int) TO PUBLIC;
	CREATE ROLE alice LOGIN IN ROLE ledger_ingest_admin;
	CREATE ROLE bob LOGIN IN ROLE ledger_ingest_admin;
	CREATE ROLE carol LOGIN IN ROLE ledger_ingest_admin;
	CREATE ROLE shared_owner NOLOGIN;
	GRANT shared_owner TO alice, bob;
	GRANT USAGE, CREATE ON SCHEMA public TO shared_owner, carol;
	GRANT INSERT ON ledger_ingest.inbox TO alice, bob, carol;
	-- a table of the shared owner, which each pipeline's handler upserts
	CREATE TABLE totals (pipeline text, k int, v bigint NOT NULL, PRIMARY KEY (pipeline, k));
	ALTER TABLE totals OWNER TO shared_owner;
	CREATE FUNCTION add_total(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$
		INSERT INTO totals AS t VALUES (e.pipeline, 1, ('x' || right(encode(e.data, 'hex'), 8))::bit(32)::bigint)
		ON CONFLICT (pipeline, k) DO UPDATE SET v = t.v + excluded.v $$;
	GRANT INSERT, UPDATE, SELECT ON totals TO alice, bob;
	CREATE TABLE parted (k int PRIMARY KEY) PARTITION BY RANGE (k);
	CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
	ALTER TABLE parted OWNER TO alice;
	ALTER TABLE parted_1 OWNER TO alice;
});

sub as
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET ROLE $role; $sql");
	return ($ret, $err);
}

# --- tracking between owners ------------------------------------------------
for my $who ('alice', 'bob')
{
	my ($ret, $err) = as($who, qq{
		SELECT ledger_ingest.create_pipeline('p_$who', 'inbox');
		SELECT ledger_ingest.add_handler('p_$who', 'add_total(ledger_ingest.event)');
		SELECT ledger_ingest.track_table('p_$who', 'totals');
		SELECT ledger_ingest.start('p_$who');});
	is($ret, 0, "$who tracks totals (a member of its owner)") or diag($err);
}
{
	my ($ret, $err) = as('carol', q{
		SELECT ledger_ingest.create_pipeline('p_carol', 'inbox');
		SELECT ledger_ingest.track_table('p_carol', 'totals');});
	note("carol: $err");
	li_case('security cases', 'track_table by an admin that does not own the table is refused, though others track it',
		$ret != 0 && $err =~ /must be owner of table public.totals to track it/
		  && li_scalar($node, q{SELECT count(*) FROM ledger_ingest.tracked WHERE pipeline = 'p_carol'}) eq '0');
}
{
	my ($ret, $err) = as('alice', q{SELECT ledger_ingest.track_table('p_alice', 'parted')});
	my ($ret2, $err2) = as('alice', q{SELECT ledger_ingest.track_table('p_alice', 'parted_1')});
	note("parted: $err | $err2");
	li_case('reorg restores', 'track_table refuses a partitioned table and a partition with a clear error',
		$ret != 0 && $err =~ /cannot track public.parted: partitioned tables and partitions are not supported/
		  && $ret2 != 0 && $err2 =~ /cannot track public.parted_1: partitioned/);
}
as('alice', q{SELECT ledger_ingest.untrack_table('p_alice', 'totals')});
$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('p_bob', doc(1)), ('p_bob', doc(2))});
li_case('security cases', "one owner's untrack_table keeps the journal trigger another owner's pipeline needs",
	li_wait($node, 'p_bob', 2, 60)
	  && li_scalar($node, q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'totals'::regclass AND tgname = 'ledger_ingest_journal'}) eq '1'
	  && li_scalar($node, q{SELECT count(*) FROM ledger_ingest.journal WHERE pipeline = 'p_bob'}) eq '2');

# the SECURITY DEFINER helper untrack_table calls (_table_tracked) under a
# hostile search_path: an operator that shadows = for regclass never runs
$node->safe_psql('postgres', q{
	CREATE SCHEMA evil;
	GRANT USAGE ON SCHEMA evil TO PUBLIC;
	CREATE TABLE evil.calls (n int);
	GRANT INSERT ON evil.calls TO PUBLIC;
	CREATE FUNCTION evil.eq(regclass, regclass) RETURNS boolean LANGUAGE sql AS
		$$ INSERT INTO evil.calls VALUES (1); SELECT $1::oid = $2::oid $$;
	CREATE OPERATOR evil.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = evil.eq);
	CREATE FUNCTION evil.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql AS
		$$ INSERT INTO evil.calls VALUES (2); SELECT true $$;
	CREATE FUNCTION evil.eqt(text, text) RETURNS boolean LANGUAGE sql AS
		$$ INSERT INTO evil.calls VALUES (3); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
	CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eqt);
	CREATE FUNCTION evil.count(anyelement) RETURNS bigint LANGUAGE sql AS
		$$ INSERT INTO evil.calls VALUES (4); SELECT 0::bigint $$;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC;
});
{
	my ($ret, $err) = as('alice', q{
		SET search_path = evil, pg_catalog, public;
		SELECT ledger_ingest.track_table('p_alice', 'totals');
		SELECT ledger_ingest.untrack_table('p_alice', 'totals');
		SELECT ledger_ingest._table_tracked('totals');
		SELECT ledger_ingest.delete_documents('p_alice');
		SELECT ledger_ingest._catalog_write('clear_decode_errors', 'p_alice', ARRAY[NULL]);});
	li_case('security cases', 'track_table, untrack_table, delete_documents, the SECURITY DEFINER _table_tracked and the catalog writes under a hostile search_path: nothing of it runs',
		$ret == 0 && li_scalar($node, 'SELECT count(*) FROM evil.calls') eq '0') or diag($err);
}

# --- inbox documents belong to their pipeline ------------------------------
{
	my ($ret, $err) = as('alice', q{
		SELECT ledger_ingest.create_pipeline('same_name', 'inbox');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('same_name', doc(1));
		SELECT ledger_ingest.drop_pipeline('same_name');});
	is($ret, 0, 'alice writes a document for her pipeline, then drops the pipeline') or diag($err);
	($ret, $err) = as('bob', q{
		SELECT ledger_ingest.create_pipeline('same_name', 'inbox');
		SELECT ledger_ingest.add_handler('same_name', 'add_total(ledger_ingest.event)');
		SELECT ledger_ingest.start('same_name');});
	is($ret, 0, 'bob creates a pipeline of the same name') or diag($err);
	li_wait_state($node, 'same_name', 'running', 30);
	sleep 1;
	li_case('security cases', 'a new pipeline of the same name does not inherit (or apply) another owner\'s inbox documents',
		li_scalar($node, q{SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = 'same_name'}) eq '0'
		  && li_scalar($node, q{SELECT ledger FROM ledger_ingest.status WHERE pipeline = 'same_name'}) eq '-1');
	# as a superuser (no row-level security): the pipeline must exist
	(undef, undef, $err) = $node->psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('no_such_pipeline', doc(1))});
	$ret = $err ? 1 : 0;
	my ($ret2, $err2) = as('carol', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('same_name', doc(1))});
	note("no pipeline: $err; another's: $err2");
	li_case('security cases', 'a producer writes documents only for existing pipelines it owns',
		$ret != 0 && $err =~ /violates foreign key constraint "inbox_pipeline_fkey"/
		  && $ret2 != 0 && $err2 =~ /row-level security/);
}

# --- where the journal starts -------------------------------------------------
# pipeline "mid" applies ledgers 1-3 untracked, then tracks totals: the
# journal starts at ledger 4
$node->safe_psql('postgres', q{
	SELECT ledger_ingest.create_pipeline('mid', 'inbox');
	SELECT ledger_ingest.add_handler('mid', 'add_total(ledger_ingest.event)');
	SELECT ledger_ingest.start('mid');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'mid', doc(n) FROM generate_series(1, 3) n;
});
li_wait($node, 'mid', 3, 60);
$node->safe_psql('postgres', q{
	SELECT ledger_ingest.track_table('mid', 'totals');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'mid', doc(n) FROM generate_series(4, 5) n;
});
li_wait($node, 'mid', 5, 60);
is(li_scalar($node, q{SELECT since_ledger FROM ledger_ingest.tracked WHERE pipeline = 'mid'}), '4',
	'the journal of totals starts at ledger 4');
my $before = li_scalar($node, q{SELECT v FROM totals WHERE pipeline = 'mid'});
# a fork after ledger 4 (ledger 5 replaced): journaled, reverted
$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('mid', doc(5, 1, 0)), ('mid', doc(6, 1))});
li_case('reorg restores', 'a reorg forking above the start of the journal is reverted (the winning branch\'s total)',
	li_wait($node, 'mid', 6, 60)
	  && li_scalar($node, q{SELECT v FROM totals WHERE pipeline = 'mid'}) eq (10 + 20 + 30 + 40 + 51 + 61)
	  && li_scalar($node, q{SELECT reorgs FROM ledger_ingest.status WHERE pipeline = 'mid'}) eq '1');
# a fork after ledger 2 (ledger 3, applied before tracking, replaced): refused
$before = li_scalar($node, q{SELECT v FROM totals WHERE pipeline = 'mid'});
$node->safe_psql('postgres', q{INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('mid', doc(3, 2, 0))});
my $state = li_wait_state($node, 'mid', 'failed', 30);
my $error = li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'mid'});
note("mid: $state: $error");
li_case('reorg restores', 'a reorg forking below the start of the journal fails with nothing changed',
	$state eq 'failed' && $error =~ /reorg at ledger 3: table totals is journaled only from ledger 4; nothing was changed/
	  && li_scalar($node, q{SELECT v FROM totals WHERE pipeline = 'mid'}) eq $before
	  && li_scalar($node, q{SELECT ledger || ' ' || reorgs FROM ledger_ingest.status WHERE pipeline = 'mid'}) eq '6 1');

# --- restores in place ------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE TABLE acct (k int PRIMARY KEY, v bigint NOT NULL,
		v2 bigint GENERATED ALWAYS AS (v * 2) STORED, id bigint GENERATED ALWAYS AS IDENTITY, note text);
	CREATE TABLE child_cascade (id int PRIMARY KEY, k int REFERENCES acct ON DELETE CASCADE);
	CREATE TABLE child_noaction (id int PRIMARY KEY, k int REFERENCES acct);
	INSERT INTO acct (k, v) VALUES (1, 0), (2, 5);
	INSERT INTO child_cascade VALUES (1, 1);
	INSERT INTO child_noaction VALUES (1, 1);
	-- each ledger adds its data to row 1; ledger 3 of branch 0 also
	-- inserts row 3 and deletes row 2
	CREATE FUNCTION acct_h(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE d bigint := ('x' || right(encode(e.data, 'hex'), 8))::bit(32)::bigint;
	BEGIN
		UPDATE acct SET v = v + d WHERE k = 1;
		IF d = 30 THEN
			INSERT INTO acct (k, v) VALUES (3, d);
			DELETE FROM acct WHERE k = 2;
		END IF;
	END $$;
	SELECT ledger_ingest.create_pipeline('inplace', 'inbox');
	SELECT ledger_ingest.add_handler('inplace', 'acct_h(ledger_ingest.event)');
	SELECT ledger_ingest.track_table('inplace', 'acct');
	SELECT ledger_ingest.start('inplace');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'inplace', doc(n) FROM generate_series(1, 3) n;
});
li_wait($node, 'inplace', 3, 60);
is(li_scalar($node, q{SELECT string_agg(k || '=' || v, ' ' ORDER BY k) FROM acct}), '1=60 3=30', 'ledgers 1-3 applied');
# a column added after the ledgers were journaled
$node->safe_psql('postgres', q{
	ALTER TABLE acct ADD COLUMN added int DEFAULT 7;
	-- a user's edit of a column the pipeline never writes
	UPDATE acct SET note = 'user' WHERE k = 1;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('inplace', doc(3, 1, 0)), ('inplace', doc(4, 1));
});
my $ok = li_wait($node, 'inplace', 4, 60);
my $got = li_scalar($node, q{SELECT string_agg(k || '=' || v || '/' || coalesce(added::text, 'null'), ' ' ORDER BY k) FROM acct});
my $gen = li_scalar($node, q{SELECT string_agg(k || ':' || v2 || ':' || id, ' ' ORDER BY k) FROM acct});
my $st = li_scalar($node, q{SELECT state || ' ' || reorgs || ' ' || coalesce(last_error, '') FROM ledger_ingest.status WHERE pipeline = 'inplace'});
note("after the reorg: $got; $st");
# winning branch: row 1 = 10 + 20 + 31 + 41, row 2 back (5), row 3 gone
li_case('reorg restores', 'a reorg restores in place: updated row updated back, inserted row deleted, deleted row inserted again',
	$ok && $got eq '1=102/7 2=5/7' && $st =~ /^running 1/);
li_case('reorg restores', 'a reorg recomputes generated columns and restores identity columns as they were',
	$ok && $gen eq '1:204:1 2:10:2');
li_case('reorg restores', 'a reorg keeps the ON DELETE CASCADE and NO ACTION children of a restored row',
	$ok && li_scalar($node, q{SELECT (SELECT count(*) FROM child_cascade) || ' ' || (SELECT count(*) FROM child_noaction)}) eq '1 1');
li_case('reorg restores', 'a column added since the ledgers were journaled keeps its value through a reorg (its default for a row inserted again)',
	$ok && li_scalar($node, q{SELECT added FROM acct WHERE k = 1}) eq '7');

li_case('reorg restores', 'a user\'s edit of a column the pipeline never writes survives a reorg',
	$ok && li_scalar($node, q{SELECT note FROM acct WHERE k = 1}) eq 'user');

# a user's edit of a column the pipeline wrote in the orphaned ledgers:
# the reorg fails with nothing changed, naming the row
$node->safe_psql('postgres', q{
	UPDATE acct SET v = v + 1000 WHERE k = 1;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('inplace', doc(4, 2, 1)), ('inplace', doc(5, 2));
});
$st = li_wait_state($node, 'inplace', 'failed', 60);
my $err = li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'inplace'});
note("conflict: $st: $err");
li_case('reorg restores', 'a reorg that would overwrite a column changed outside the pipeline fails with nothing changed, naming the row',
	$st eq 'failed' && $err =~ /reorg at ledger 4: rows of acct were changed outside the pipeline since the orphaned ledgers wrote them \(keys \{"k": 1\}\); nothing was changed/
	  && li_scalar($node, q{SELECT v || ' ' || (SELECT ledger || ' ' || reorgs FROM ledger_ingest.status WHERE pipeline = 'inplace') FROM acct WHERE k = 1})
		eq '1102 4 1');

$node->stop;
done_testing();
