# Reorgs on a real node: anvil_reorg of depth 1, 3 and 10, with and without
# replacement transactions (transfers touching the same accounts as the
# orphaned ones), while an evm_rpc pipeline with a balances handler on a
# tracked table runs.  After each reorg every balance equals the contract's
# balanceOf, and exactly one "reorg" notification arrived.
use strict;
use warnings;
use DBI;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use LiTest;

my $root = li_root();
my $rpc = li_anvil();

my $token = chain('deploy', $rpc);
chain('mint', $rpc, $token);
chain('transfers', $rpc, $token, 15, 1);

my $node = li_node('reorg_rpc');
$node->safe_psql('postgres', slurp_file("$root/test/fixtures/erc20.sql"));
my $dbh = li_listen($node);
sub drain { return grep { $_->{type} eq 'reorg' } li_drain($dbh); }

$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('anvil', 'evm_rpc',
		'{"url":"$rpc","addresses":["$token"],"block_range":5,"poll_ms":100}');
	SELECT ledger_ingest.add_handler('anvil', 'erc20_on_transfer(ledger_ingest.event)');
	SELECT ledger_ingest.track_table('anvil', 'erc20_balances');
	SELECT ledger_ingest.start('anvil');
});

# wait until the committed cursor is the node's current head block
sub caught_up
{
	my ($p) = @_;
	$p //= 'anvil';
	my $head = chain('head', $rpc);
	my $hash = cast('block', $head, '-f', 'hash', '--rpc-url', $rpc);
	for (1 .. 300)
	{
		my $got = li_scalar($node,
			qq{SELECT ledger || ' 0x' || encode(ledger_hash, 'hex') FROM ledger_ingest.status WHERE pipeline = '$p'});
		return 1 if $got eq "$head $hash";
		usleep(100_000);
	}
	return 0;
}

sub check_balances
{
	my ($what) = @_;
	my ($db, $chain) = li_balances($node, $rpc, $token);
	is_deeply($db, $chain, "$what: every balance equals balanceOf");
}

ok(caught_up(), 'caught up before the reorgs');
check_balances('before the reorgs');
drain();

my @accounts = map { (split / /)[0] } split /\n/, chain('balances', $rpc, $token);
my $n = 0;
for my $case ([1, 0], [3, 0], [10, 0], [1, 2], [3, 3], [10, 4])
{
	my ($depth, $ntx) = @$case;
	$n++;
	chain('transfers', $rpc, $token, 12, 100 + $n);
	ok(caught_up(), "case $n: caught up before the reorg");

	# replacement transfers between the same accounts the orphaned ones used
	my @txs;
	for my $i (0 .. $ntx - 1)
	{
		my $to = $accounts[1 + ($i % 3)];
		my $data = cast('calldata', 'transfer(address,uint256)', $to, 1000 + $n * 10 + $i);
		push @txs, qq{[{"from":"$accounts[0]","to":"$token","data":"$data"},} . ($i % $depth) . ']';
	}
	my $txs = '[' . join(',', @txs) . ']';
	cast('rpc', '--rpc-url', $rpc, 'anvil_reorg', $depth, $txs);
	ok(caught_up(), "case $n: depth $depth with $ntx replacement transfers: followed the new branch");
	check_balances("case $n (depth $depth, $ntx replacements)");
	my @reorgs = grep { $_->{pipeline} eq 'anvil' } drain();
	is(scalar @reorgs, 1, "case $n: exactly one reorg notification");
	# every block here has a transfer, so every block's header is stored and
	# the fork point found is exact
	is($reorgs[0]{depth}, $depth, "case $n: the reorg notification has depth $depth");
}
is(li_scalar($node, q{SELECT reorgs FROM ledger_ingest.status WHERE pipeline = 'anvil'}), '6',
	'status counts six reorgs');

# a node whose head goes back below the cursor (evm_revert to a snapshot):
# not a reorg while the node has no block at the cursor's height; when the
# node's new blocks pass the cursor with other hashes, it is one
my $snap = cast('rpc', '--rpc-url', $rpc, 'evm_snapshot');
chain('transfers', $rpc, $token, 6, 300);
ok(caught_up(), 'caught up before the head goes back');
my $cursor = li_scalar($node, q{SELECT ledger FROM ledger_ingest.status WHERE pipeline = 'anvil'});
cast('rpc', '--rpc-url', $rpc, 'evm_revert', $snap);
ok(chain('head', $rpc) < $cursor, 'the node now reports a head below the cursor');
sleep 2;
is(li_scalar($node, q{SELECT state || ' ' || reorgs FROM ledger_ingest.status WHERE pipeline = 'anvil'}),
	'running 6', 'a lower head is neither a failure nor a reorg');
is(scalar(grep { $_->{pipeline} eq 'anvil' } drain()), 0, 'no reorg notification for a lower head');
chain('transfers', $rpc, $token, 10, 400);
ok(caught_up(), 'followed the node once its new branch passed the cursor');
check_balances('after the head went back and moved on');
is(scalar(grep { $_->{pipeline} eq 'anvil' } drain()), 1, 'exactly one reorg notification for the replaced blocks');

# reorgs of ledgers fetched ahead and not yet applied: a pipeline whose
# handler is slowed down (200 ms per event, commit "ledger"), stopped while
# 8 + depth transfers arrive, then started: its fetcher fetches them all
# while the worker applies one by one.  While the worker is still below the
# blocks to be orphaned, anvil_reorg of depth 1, 3 and 10 with two
# replacement transfers.  The orphaned ledgers the worker holds are
# dropped, not applied (the fork point is looked for from the committed
# cursor); every balance equals balanceOf, and no reorg notification was
# needed (nothing orphaned was committed).
$node->safe_psql('postgres', q{
	SELECT ledger_ingest.drop_pipeline('anvil');
	TRUNCATE erc20_balances;
	CREATE TABLE slow (on_ boolean NOT NULL);
	INSERT INTO slow VALUES (false);
	CREATE FUNCTION erc20_on_transfer_slowly(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM erc20_on_transfer(e);
		IF (SELECT on_ FROM slow) THEN PERFORM pg_sleep(0.2); END IF;
	END $$;
});
$node->safe_psql('postgres', qq{
	SELECT ledger_ingest.create_pipeline('ahead', 'evm_rpc',
		'{"url":"$rpc","addresses":["$token"],"block_range":5,"poll_ms":100,"commit":"ledger",
		  "batch_max_ledgers":1}');
	SELECT ledger_ingest.add_handler('ahead', 'erc20_on_transfer_slowly(ledger_ingest.event)');
	SELECT ledger_ingest.track_table('ahead', 'erc20_balances');
	SELECT ledger_ingest.start('ahead');
});
ok(caught_up('ahead'), 'fetching ahead: caught up before the reorgs');
check_balances('fetching ahead, before the reorgs');
drain();
for my $depth (1, 3, 10)
{
	$n++;
	$node->safe_psql('postgres', q{UPDATE slow SET on_ = true; SELECT ledger_ingest.stop('ahead')});
	li_wait_state($node, 'ahead', 'stopped', 30);
	chain('transfers', $rpc, $token, 8 + $depth, 500 + $n);
	my $head = chain('head', $rpc);
	$node->safe_psql('postgres', q{SELECT ledger_ingest.start('ahead')});
	my ($fetched, $ledger) = (-1, -1);
	for (1 .. 500)
	{
		($fetched, $ledger) = split /\|/, li_scalar($node,
			q{SELECT coalesce(fetched, -1) || '|' || ledger FROM ledger_ingest.status WHERE pipeline = 'ahead'});
		last if $fetched >= $head;
		usleep(10_000);
	}
	my @txs;
	for my $i (0 .. 1)
	{
		my $data = cast('calldata', 'transfer(address,uint256)', $accounts[ 2 + $i ], 2000 + $n * 10 + $i);
		push @txs, qq{[{"from":"$accounts[0]","to":"$token","data":"$data"},} . ($i % $depth) . ']';
	}
	cast('rpc', '--rpc-url', $rpc, 'anvil_reorg', $depth, '[' . join(',', @txs) . ']');
	# the handler stays slow while the fetcher (polling every 100 ms) sees
	# the reorg: 0.5 s is at most 3 of the 8 ledgers between the worker and
	# the orphaned ones; at full speed it could reach them first
	usleep(500_000);
	$node->safe_psql('postgres', 'UPDATE slow SET on_ = false');
	ok($fetched == $head && $ledger < $head - $depth,
		"fetching ahead, depth $depth: before the reorg the fetcher had fetched ledger $fetched (the head), the worker had applied $ledger");
	ok(caught_up('ahead'), "fetching ahead, depth $depth: followed the new branch");
	check_balances("fetching ahead, depth $depth");
	my @reorgs = grep { $_->{pipeline} eq 'ahead' } drain();
	is(scalar(@reorgs), 0, "fetching ahead, depth $depth: no reorg notification: the orphaned ledgers were dropped, never applied");
}

$dbh->disconnect;
$node->stop;
done_testing();
