# Reorgs through the inbox: replay a real linked chain (mainnet blocks
# 0..260 from mainnet-headers-0-8191.ndjson) with synthetic events on top,
# then insert competing branches of depth 1, 3 and 10.  After each reorg
# the tracked table must equal what a fresh pipeline gets from applying only
# the winning branch, with exactly one "reorg" notification; a fork deeper
# than the window fails the pipeline and changes nothing.
use strict;
use warnings;
use DBI;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use LiTest;

my $node = li_node('reorg_inbox');
my $headers = li_data() . '/evm/mainnet-headers-0-8191.ndjson';

my $dbh = li_listen($node);
sub drain { return li_drain($dbh); }

$node->safe_psql('postgres', qq{
	CREATE TABLE nd (doc jsonb);
	COPY nd FROM '$headers' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
	CREATE TABLE hdr AS SELECT (doc->>'number')::text AS hexnum, doc FROM nd;
	-- real header of block n (n as bigint)
	CREATE FUNCTION real_doc(n bigint) RETURNS jsonb LANGUAGE sql AS
		\$\$ SELECT doc FROM nd WHERE doc->>'number' = '0x' || to_hex(n) \$\$;
	-- synthetic events: 3 logs per ledger over 5 accounts; amounts depend on the branch seed
	CREATE FUNCTION mk_logs(n bigint, seed int) RETURNS jsonb LANGUAGE sql AS \$\$
		SELECT jsonb_agg(jsonb_build_object(
			'address', '0x' || lpad(to_hex((n * 7 + i * 3 + seed) % 5), 40, '0'),
			'topics', jsonb_build_array('0x' || repeat('ab', 32)),
			'data', '0x' || lpad(to_hex((n * 31 + i * 17 + seed * 101) % 1000), 64, '0'),
			'transactionIndex', '0x' || to_hex(i),
			'logIndex', '0x' || to_hex(i),
			'transactionHash', '0x' || md5(seed || '-' || n || '-' || i) || md5(n || '-' || i)) ORDER BY i)
		FROM generate_series(0, 2) AS i \$\$;
	CREATE FUNCTION main_doc(n bigint) RETURNS jsonb LANGUAGE sql AS
		\$\$ SELECT real_doc(n) || jsonb_build_object('logs', mk_logs(n, 0)) \$\$;
	-- branch "seed" forking after ledger f: synthetic hashes linked to the real hash of f
	CREATE FUNCTION branch_hash(n bigint, seed int) RETURNS text LANGUAGE sql AS
		\$\$ SELECT '0x' || md5('b' || seed || '-' || n) || md5('c' || seed || '-' || n) \$\$;
	CREATE FUNCTION branch_doc(n bigint, f bigint, seed int) RETURNS jsonb LANGUAGE sql AS \$\$
		SELECT jsonb_build_object('number', '0x' || to_hex(n), 'hash', branch_hash(n, seed),
			'parentHash', CASE WHEN n = f + 1 THEN real_doc(f)->>'hash' ELSE branch_hash(n - 1, seed) END,
			'timestamp', '0x' || to_hex(1438269988 + n * 15), 'logs', mk_logs(n, seed)) \$\$;

	-- the tracked table: balances with inserts, updates and deletes
	CREATE TABLE bal (pipeline text, account bytea, amount numeric NOT NULL, touched int NOT NULL DEFAULT 1,
					  PRIMARY KEY (pipeline, account));
	CREATE TABLE untracked_log (pipeline text, ledger bigint, event_index int);
	CREATE FUNCTION on_event(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS \$h\$
	DECLARE v numeric := ('x' || right(encode(e.data, 'hex'), 8))::bit(32)::bigint;
	BEGIN
		IF v % 10 = 0 THEN
			DELETE FROM bal WHERE pipeline = e.pipeline AND account = e.address;
		ELSE
			INSERT INTO bal AS b VALUES (e.pipeline, e.address, v)
				ON CONFLICT (pipeline, account) DO UPDATE SET amount = b.amount + excluded.amount, touched = b.touched + 1;
		END IF;
		INSERT INTO untracked_log VALUES (e.pipeline, e.ledger, e.event_index);
	END \$h\$;
});

sub pipeline
{
	my ($p, $opts) = @_;
	$opts //= '{}';
	$node->safe_psql('postgres', qq{
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '$opts');
		SELECT ledger_ingest.add_handler('$p', 'on_event(ledger_ingest.event)');
		SELECT ledger_ingest.track_table('$p', 'bal');
		SELECT ledger_ingest.start('$p');
	});
}

sub state_of
{
	my ($p) = @_;
	return li_scalar($node,
		qq{SELECT coalesce(string_agg(encode(account, 'hex') || '=' || amount || '/' || touched, ',' ORDER BY account), '')
		   FROM bal WHERE pipeline = '$p'});
}

my $tip = 260;
for my $depth (1, 3, 10)
{
	my $fork = $tip - $depth;
	my $len = $depth + 2;                 # the new branch is longer
	my ($p, $r) = ("reorg$depth", "ref$depth");
	pipeline($p);
	pipeline($r);
	# main branch 0..tip into $p
	$node->safe_psql('postgres',
		"INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$p', main_doc(n) FROM generate_series(0, $tip) n");
	ok(li_wait($node, $p, $tip, 60), "depth $depth: main branch applied up to $tip");
	my $before = li_scalar($node, "SELECT count(*) FROM ledger_ingest.journal WHERE pipeline = '$p'");
	ok($before > 0, "depth $depth: the journal holds the window ($before rows)");
	drain();

	# competing branch forking after $fork
	$node->safe_psql('postgres',
		"INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$p', branch_doc(n, $fork, $depth) FROM generate_series($fork + 1, $fork + $len) n");
	ok(li_wait($node, $p, $fork + $len, 60), "depth $depth: the new branch applied");

	# reference: only the winning branch
	$node->safe_psql('postgres', qq{
		INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$r', main_doc(n) FROM generate_series(0, $fork) n;
		INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT '$r', branch_doc(n, $fork, $depth) FROM generate_series($fork + 1, $fork + $len) n;
	});
	ok(li_wait($node, $r, $fork + $len, 60), "depth $depth: reference applied");
	my $got = state_of($p);
	isnt($got, '', "depth $depth: balances exist");
	is($got, state_of($r), "depth $depth: tracked table equals a fresh pipeline's on the winning branch");
	is( li_scalar($node,
			qq{SELECT count(*) FROM ledger_ingest.ledger a FULL JOIN (SELECT * FROM ledger_ingest.ledger WHERE pipeline = '$r') b
			   ON a.number = b.number WHERE a.pipeline = '$p' AND a.hash IS DISTINCT FROM b.hash}),
		'0', "depth $depth: ledger headers equal the winning branch's");
	my @reorgs = grep { $_->{type} eq 'reorg' && $_->{pipeline} eq $p } drain();
	is(scalar @reorgs, 1, "depth $depth: exactly one reorg notification");
	is_deeply(
		[ @{ $reorgs[0] }{qw(fork_ledger orphaned_from orphaned_to depth)} ],
		[ $fork, $fork + 1, $tip, $depth ],
		"depth $depth: the notification names fork, orphaned range and depth");
	is( li_scalar($node, "SELECT reorgs || '/' || last_reorg_depth FROM ledger_ingest.status WHERE pipeline = '$p'"),
		"1/$depth", "depth $depth: status counts the reorg and its depth");
	is(li_scalar($node, "SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = '$p'"),
		'0', "depth $depth: no document left behind");
}

# revert handlers: called once per orphaned event, newest first, in the
# rollback transaction, for effects outside tracked tables
$node->safe_psql('postgres', q{
	CREATE TABLE revert_calls (seq serial, ledger bigint, event_index int);
	CREATE FUNCTION undo_log(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$
		DELETE FROM untracked_log WHERE pipeline = e.pipeline AND ledger = e.ledger AND event_index = e.event_index;
		INSERT INTO revert_calls (ledger, event_index) VALUES (e.ledger, e.event_index) $$;
	SELECT ledger_ingest.create_pipeline('rv', 'inbox');
	SELECT ledger_ingest.add_handler('rv', 'on_event(ledger_ingest.event)', revert => 'undo_log(ledger_ingest.event)');
	SELECT ledger_ingest.track_table('rv', 'bal');
	SELECT ledger_ingest.start('rv');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'rv', main_doc(n) FROM generate_series(0, 260) n;
});
ok(li_wait($node, 'rv', 260, 60), 'rv: main branch applied');
$node->safe_psql('postgres',
	"INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'rv', branch_doc(n, 257, 3) FROM generate_series(258, 262) n");
ok(li_wait($node, 'rv', 262, 60), 'rv: new branch applied');
is( li_scalar($node, q{SELECT string_agg(ledger || ':' || event_index, ',' ORDER BY seq) FROM revert_calls}),
	'260:2,260:1,260:0,259:2,259:1,259:0,258:2,258:1,258:0',
	'the revert handler ran once per orphaned event, newest first');
is( li_scalar($node,
		q{SELECT count(*) FROM (
			(SELECT ledger, event_index FROM untracked_log WHERE pipeline = 'rv'
			 EXCEPT ALL SELECT ledger, event_index FROM untracked_log WHERE pipeline = 'ref3')
			UNION ALL
			(SELECT ledger, event_index FROM untracked_log WHERE pipeline = 'ref3'
			 EXCEPT ALL SELECT ledger, event_index FROM untracked_log WHERE pipeline = 'rv')) d}),
	'0', 'with the revert handler the untracked table matches the winning branch');
is(state_of('rv') =~ s/^//r, state_of('ref3'), 'rv: tracked table equals the reference');

# the journal stays bounded by the window (128 by default)
is( li_scalar($node, q{SELECT max(l) - min(l) < 128 FROM (SELECT ledger AS l FROM ledger_ingest.journal WHERE pipeline = 'reorg1') j}),
	't', 'the journal is pruned to the window');

# untracked effects are the handler's business: the orphaned events stay logged
ok( li_scalar($node, q{SELECT count(*) FROM untracked_log WHERE pipeline = 'reorg3'})
	  > li_scalar($node, q{SELECT count(*) FROM untracked_log WHERE pipeline = 'ref3'}),
	'an untracked table keeps the orphaned effects (documented)');

# a fork deeper than the window: failed, nothing changed
pipeline('deep', '{"reorg_window": 5}');
$node->safe_psql('postgres',
	"INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'deep', main_doc(n) FROM generate_series(0, 100) n");
ok(li_wait($node, 'deep', 100, 60), 'deep: main branch applied');
my $deep_before = state_of('deep');
is( li_scalar($node, q{SELECT max(ledger) - min(ledger) FROM ledger_ingest.journal WHERE pipeline = 'deep'}),
	'4', 'deep: the journal keeps only the 5-ledger window');
$node->safe_psql('postgres',
	"INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'deep', branch_doc(n, 90, 7) FROM generate_series(91, 103) n");
is(li_wait_state($node, 'deep', 'failed', 30), 'failed', 'deep: the pipeline failed');
like(li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'deep'}),
	qr/reorg at ledger 91: the fork is 10 ledgers deep, beyond reorg_window 5; nothing was changed/,
	'deep: the error names the depth and the window');
is(state_of('deep'), $deep_before, 'deep: the tracked table is unchanged');
is(li_scalar($node, q{SELECT ledger FROM ledger_ingest.status WHERE pipeline = 'deep'}), '100',
	'deep: the cursor is unchanged');

# track_table needs a primary key; untrack_table stops journaling
my ($ret, $out, $err) = $node->psql('postgres',
	q{CREATE TABLE nopk (a int); SELECT ledger_ingest.track_table('reorg1', 'nopk')});
like($err, qr/table public.nopk has no primary key/, 'track_table rejects a table without a primary key');
$node->safe_psql('postgres', q{SELECT ledger_ingest.untrack_table('reorg1', 'bal')});
is(li_scalar($node, q{SELECT count(*) FROM ledger_ingest.journal WHERE pipeline = 'reorg1'}), '0',
	'untrack_table forgets the journal');
$node->safe_psql('postgres',
	"INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'reorg1', branch_doc(n, 259, 1) FROM generate_series(262, 270) n");
ok(li_wait($node, 'reorg1', 270, 60), 'reorg1 goes on after untrack_table');
is(li_scalar($node, q{SELECT count(*) FROM ledger_ingest.journal WHERE pipeline = 'reorg1'}), '0',
	'nothing is journaled for an untracked table');

$dbh->disconnect;
$node->stop;
done_testing();
