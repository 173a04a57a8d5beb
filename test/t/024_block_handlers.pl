# Block handlers (add_block_handler): a function taking ledger_ingest.ledger,
# called once per applied ledger whose number is a multiple of "every".
#  a) inbox, ledgers 1 to 15 with 0 to 3 logs each, commit "batch" and
#     "event": every 3 -> ledgers 3, 6, 9, 12, 15 once, every 1 -> all 15
#     once, each with the ledger's hash and event count, each seeing the
#     effects of the event handlers of its ledger and of the ledgers before,
#     none of later ones;
#  b) evm_rpc against anvil: ledgers without logs are fetched for the block
#     handler (every 4 -> every multiple of 4 up to the head, with the
#     block's hash and time as cast gives them), across a kill -9 of the
#     worker (each once), and across anvil_reorg of depth 3 (the handler's
#     tracked table restored, then the new branch's blocks, each once);
#  c) add_block_handler's checks, remove_handler.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $node = li_node('block_handlers');
sub q1 { return scalar $node->safe_psql('postgres', $_[0]) }

q1(q{
	CREATE TABLE ev (pipeline text, ledger bigint);
	CREATE FUNCTION on_event(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO ev VALUES (e.pipeline, e.ledger) $$;
	CREATE TABLE blk (pipeline text, every int, number bigint, hash bytea, events int, time timestamptz, seen bigint);
	CREATE FUNCTION every3(b ledger_ingest.ledger) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO blk SELECT b.pipeline, 3, b.number, b.hash, b.events, b.time, count(*) FROM ev WHERE ev.pipeline = b.pipeline $$;
	CREATE FUNCTION every1(b ledger_ingest.ledger) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO blk SELECT b.pipeline, 1, b.number, b.hash, b.events, b.time, count(*) FROM ev WHERE ev.pipeline = b.pipeline $$;
});

# ---------------------------------------------------------------------
# a) the inbox, in transactions of many ledgers and of one event
# ---------------------------------------------------------------------
for my $commit ('batch', 'event')
{
	my $p = "inbox_$commit";
	q1(qq{
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"commit": "$commit"}');
		SELECT ledger_ingest.add_handler('$p', 'on_event(ledger_ingest.event)');
		SELECT ledger_ingest.add_block_handler('$p', 'every3(ledger_ingest.ledger)', every => 3);
		SELECT ledger_ingest.add_block_handler('$p', 'every1(ledger_ingest.ledger)');
	});
	q1(join(";\n", map { "INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('$p', " . li_doc($_, $_ % 4) . ')' } 1 .. 15));
	q1(qq{SELECT ledger_ingest.start('$p')});
	ok(li_wait($node, $p, 15, 60), "$p: applied ledgers 1 to 15");
	is(q1(qq{SELECT string_agg(number::text, ',' ORDER BY number) FROM blk WHERE pipeline = '$p' AND every = 3}),
		'3,6,9,12,15', "$p: every 3: ledgers 3, 6, 9, 12, 15, each once");
	is(q1(qq{SELECT count(*) || ' ' || count(DISTINCT number) || ' ' || min(number) || ' ' || max(number)
		FROM blk WHERE pipeline = '$p' AND every = 1}), '15 15 1 15', "$p: every 1: each of the 15 ledgers once");
	is(q1(qq{SELECT count(*) FROM blk WHERE pipeline = '$p'
		AND (hash <> decode(repeat(to_hex(number), 64), 'hex') OR events <> number % 4
			 OR seen <> (SELECT sum(k % 4) FROM generate_series(1, number) k))}),
		'0', "$p: each with its ledger's hash and events, after its own and earlier ledgers' event handlers, before later ones'");
}

# ---------------------------------------------------------------------
# b) evm_rpc against anvil: blocks without logs, kill -9, a reorg
# ---------------------------------------------------------------------
my $rpc = li_anvil();
my $token = chain('deploy', $rpc);
chain('mint', $rpc, $token);
cast('rpc', '--rpc-url', $rpc, 'anvil_mine', '0x10');    # 16 blocks without transfers
chain('transfers', $rpc, $token, 10, 1);
q1(qq{
	CREATE TABLE snap (number bigint PRIMARY KEY, hash bytea, time timestamptz, events int);
	CREATE FUNCTION on_block(b ledger_ingest.ledger) RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
		INSERT INTO snap VALUES (b.number, b.hash, b.time, b.events);
		-- slow enough for the kill below to land mid-way
		PERFORM pg_sleep(0.05);
	END \$\$;
	SELECT ledger_ingest.create_pipeline('anvil', 'evm_rpc',
		'{"url": "$rpc", "addresses": ["$token"], "block_range": 7, "poll_ms": 100, "commit": "ledger"}');
	SELECT ledger_ingest.add_block_handler('anvil', 'on_block(ledger_ingest.ledger)', every => 4);
	SELECT ledger_ingest.track_table('anvil', 'snap');
	SELECT ledger_ingest.start('anvil');
});

# kill -9 the worker once it has applied some of them
my $killed = 0;
for (1 .. 300)
{
	if (q1(q{SELECT count(*) FROM snap}) >= 2)
	{
		my $pid = li_worker_pid($node, 'anvil');
		$killed = kill('KILL', $pid) if $pid;
		last;
	}
	usleep(20_000);
}
ok($killed, 'the worker was killed -9 while applying');
ok(li_wait_up($node), 'the server is up again after the crash');

# every multiple of 4 up to the head, once, with cast's hash and time
sub expect_blocks
{
	my ($what) = @_;
	my $head = chain('head', $rpc);
	my $upto = $head - $head % 4;
	ok(li_wait($node, 'anvil', $head, 120), "$what: caught up to the head $head");
	my @want = map { my $n = $_ * 4; "$n " . cast('block', $n, '-f', 'hash', '--rpc-url', $rpc) . ' '
		  . cast('block', $n, '-f', 'timestamp', '--rpc-url', $rpc) } 0 .. $upto / 4;
	my @got = split /\n/, q1(q{SELECT number || ' 0x' || encode(hash, 'hex') || ' ' || extract(epoch FROM time)::bigint
		FROM snap ORDER BY number, hash});
	is_deeply(\@got, \@want, "$what: the block handler saw each multiple of 4 up to $upto once, with cast's hash and time");
}
expect_blocks('after kill -9');

# a reorg of depth 3 with a replacement transfer: the orphaned blocks' rows
# go (the table is tracked), the new branch's multiples of 4 come once
chain('transfers', $rpc, $token, 8, 2);
expect_blocks('before the reorg');
my @accounts = map { (split / /)[0] } split /\n/, chain('balances', $rpc, $token);
my $data = cast('calldata', 'transfer(address,uint256)', $accounts[1], 4242);
cast('rpc', '--rpc-url', $rpc, 'anvil_reorg', 3, qq{[[{"from":"$accounts[0]","to":"$token","data":"$data"},0]]});
cast('rpc', '--rpc-url', $rpc, 'anvil_mine', '0x4');
expect_blocks('after anvil_reorg of depth 3 and 4 more blocks');
is(q1(q{SELECT reorgs FROM ledger_ingest.status WHERE pipeline = 'anvil'}), '1', 'one reorg was applied');

# ---------------------------------------------------------------------
# c) the checks of add_block_handler, remove_handler
# ---------------------------------------------------------------------
for my $case ([ q{'on_event(ledger_ingest.event)', every => 2}, qr/block handler public.on_event\(ledger_ingest.event\) must take exactly one argument of type ledger_ingest.ledger/ ],
	[ q{'every1(ledger_ingest.ledger)', every => 0}, qr/every must be at least 1, got 0/ ])
{
	my ($args, $re) = @$case;
	my ($ret, $o, $e) = $node->psql('postgres', "SELECT ledger_ingest.add_block_handler('inbox_batch', $args)");
	like($e, $re, "add_block_handler refuses $args");
}
is(q1(q{SELECT ledger_ingest.remove_handler('inbox_batch', 'every3(ledger_ingest.ledger)')}), '1',
	'remove_handler removes a block handler');

done_testing();
