# Factory contracts (add_factory) against Uniswap V2 on anvil: the
# compiled UniswapV2Factory, UniswapV2Pair and test ERC20 of the npm
# package @uniswap/v2-core (pinned in test/package-lock.json).
#  a) two evm_rpc pipelines whose only address is the factory (one without
#     a topics filter, one asking for Swap and Sync only) discover every
#     pair: one created, funded and traded in separate blocks, one created,
#     funded and traded in the same block (anvil's automine off); a second
#     factory that is not registered creates a pair of the same tokens and
#     trades: nothing of it is followed;
#  b) table sinks of Swap and Sync: each Sync's reserves, last per pair,
#     equal the pair's getReserves(); the Swap rows equal the node's Swap
#     logs of the pairs, decoded here from their words (not by the project);
#     ledger_ingest.child equals the factory's allPairs, each with the block
#     and log that announced it;
#  c) the children survive a restart of the server (a trade after it is
#     applied);
#  d) anvil_reorg of depth 3 orphaning a PairCreated and the pair's trades:
#     the child and its rows go, the rest stays equal to the node;
#  e) rewind() below a PairCreated forgets the child; applying again
#     announces it again;
#  f) 25,000 children: an inbox pipeline whose factory announces 250 per
#     ledger over 100 ledgers, each ledger also holding 100 logs of
#     children announced up to and in it (some before their announcement),
#     50 of addresses that are not children, and a look-alike announcement
#     by another contract with a log of the address it names: the raw sink
#     holds exactly the factory's and the children's logs, as the
#     generator (SQL here, not the extension) lists them;
#  g) pg_dump/pg_restore: the factories and children come back as they were
#     (config tables), and the restored pipeline goes on following them.
use strict;
use warnings;
use JSON::PP;
use Math::BigInt;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $rpc = li_anvil();
my $V2 = li_root() . '/test/node_modules/@uniswap/v2-core/build';
my $ACC = '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266';
my $KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
my $SWAP = cast('keccak', 'Swap(address,uint256,uint256,uint256,uint256,address)');
my $SYNC = cast('keccak', 'Sync(uint112,uint112)');

sub bytecode
{
	my $b = decode_json(slurp_file("$V2/$_[0].json"))->{bytecode};
	return $b =~ /^0x/ ? $b : "0x$b";
}

# cast send, waiting for the receipt; dies unless it succeeded
sub send_tx
{
	my $r = decode_json(cast('send', '--json', '--rpc-url', $rpc, '--private-key', $KEY, @_));
	die "transaction failed: @_" unless $r->{status} eq '0x1';
	return $r;
}

sub deploy
{
	my ($name, $sig, @args) = @_;
	my $enc = cast('abi-encode', $sig, @args);
	return lc send_tx('--create', bytecode($name) . substr($enc, 2))->{contractAddress};
}

sub call1 { my $v = cast('call', '--rpc-url', $rpc, @_); $v =~ s/ .*//s; return $v; }

my $supply = '1000000000000000000000000000';
my ($ta, $tb, $tc) = map { deploy('ERC20', 'constructor(uint256)', $supply) } 1 .. 3;
my $factory = deploy('UniswapV2Factory', 'constructor(address)', $ACC);
my $other = deploy('UniswapV2Factory', 'constructor(address)', $ACC);
my $from = chain('head', $rpc) + 1;

my $node = li_node('factory');
sub q1 { return scalar $node->safe_psql('postgres', $_[0]) }

my $pair_created = 'event PairCreated(address indexed token0, address indexed token1, address pair, uint256)';
for my $p ('dex', 'dex_topics')
{
	my $topics = $p eq 'dex' ? '' : qq{, "topics": [["$SWAP", "$SYNC"]]};
	q1(qq{
		CREATE TABLE ${p}_swap (address bytea, ledger bigint, event_index int, tx_hash bytea, sender bytea, "to" bytea,
			amount0_in numeric, amount1_in numeric, amount0_out numeric, amount1_out numeric,
			PRIMARY KEY (ledger, event_index));
		CREATE TABLE ${p}_sync (address bytea, ledger bigint, tx_index int, event_index int,
			reserve0 numeric, reserve1 numeric, PRIMARY KEY (ledger, event_index));
		SELECT ledger_ingest.create_pipeline('$p', 'evm_rpc',
			'{"url": "$rpc", "addresses": ["$factory"], "from_block": $from, "poll_ms": 100, "block_range": 4$topics}');
		SELECT ledger_ingest.add_factory('$p', '\\x@{[substr($factory, 2)]}', '$pair_created', 'pair');
		SELECT ledger_ingest.add_table_sink('$p', '${p}_swap',
			'event Swap(address indexed sender, uint amount0In, uint amount1In, uint amount0Out, uint amount1Out, address indexed to)',
			columns => '{"address": "address", "ledger": "ledger", "event_index": "event_index", "tx_hash": "tx_hash",
				"sender": "sender", "to": "to", "amount0_in": "amount0In", "amount1_in": "amount1In",
				"amount0_out": "amount0Out", "amount1_out": "amount1Out"}');
		SELECT ledger_ingest.add_table_sink('$p', '${p}_sync', 'event Sync(uint112 reserve0, uint112 reserve1)');
		SELECT ledger_ingest.track_table('$p', '${p}_swap');
		SELECT ledger_ingest.track_table('$p', '${p}_sync');
		SELECT ledger_ingest.start('$p');
	});
}

# ---------------------------------------------------------------------
# trades, with the amounts UniswapV2Library.getAmountOut gives
# ---------------------------------------------------------------------
sub sorted { return lc($_[0]) lt lc($_[1]) ? ($_[0], $_[1]) : ($_[1], $_[0]) }

sub amount_out
{
	my ($in, $rin, $rout) = map { Math::BigInt->new($_) } @_;
	my $fee = $in->copy->bmul(997);
	return $fee->copy->bmul($rout)->bdiv($rin->copy->bmul(1000)->badd($fee))->bstr;
}

sub reserves
{
	my $r = cast('call', '--rpc-url', $rpc, $_[0], 'getReserves()(uint112,uint112,uint32)');
	my @v = map { (split / /)[0] } split /\n/, $r;
	return @v[0, 1];
}

# swap "in" of token tin through pair (token0 t0, reserves r0 and r1)
sub swap_calls
{
	my ($pair, $t0, $tin, $in, $r0, $r1) = @_;
	my $zero_for_one = lc($t0) eq lc($tin);
	my $out = $zero_for_one ? amount_out($in, $r0, $r1) : amount_out($in, $r1, $r0);
	return ([ $tin, 'transfer(address,uint256)', $pair, $in ],
		[ $pair, 'swap(uint256,uint256,address,bytes)', $zero_for_one ? (0, $out) : ($out, 0), $ACC, '0x' ]);
}

sub create_and_fund
{
	my ($f, $x, $y) = @_;
	send_tx($f, 'createPair(address,address)', $x, $y);
	my $pair = lc call1($f, 'getPair(address,address)(address)', $x, $y);
	send_tx($x, 'transfer(address,uint256)', $pair, '1000000000000000000000');
	send_tx($y, 'transfer(address,uint256)', $pair, '3000000000000000000000');
	send_tx($pair, 'mint(address)', $ACC);
	return $pair;
}

sub trade
{
	my ($pair, $tin, $in) = @_;
	send_tx(@$_) for swap_calls($pair, call1($pair, 'token0()(address)'), $tin, $in, reserves($pair));
}

# a) a pair in separate blocks, and the other factory's pair
my $pab = create_and_fund($factory, $ta, $tb);
trade($pab, $ta, '5000000000000000000');
trade($pab, $tb, '7000000000000000000');
my $other_pair = create_and_fund($other, $ta, $tb);
trade($other_pair, $ta, '1000000000000000000');

# a) a pair created, funded and traded in one block: its address is
# CREATE2(factory, keccak256(token0 . token1), keccak256(pair init code))
my ($t0, $t1) = sorted($ta, $tc);
my $salt = cast('keccak', $t0 . substr($t1, 2));
my $init_hash = cast('keccak', bytecode('UniswapV2Pair'));
my $pac = lc((cast('compute-address', $factory, '--salt', $salt, '--init-code-hash', $init_hash) =~ /(0x[0-9a-fA-F]{40})/)[0]);
my $nonce = cast('nonce', '--rpc-url', $rpc, $ACC);
my @same_block = (
	[ $factory, 'createPair(address,address)', $ta, $tc ],
	[ $ta, 'transfer(address,uint256)', $pac, '2000000000000000000000' ],
	[ $tc, 'transfer(address,uint256)', $pac, '1000000000000000000000' ],
	[ $pac, 'mint(address)', $ACC ]);
push @same_block, swap_calls($pac, $t0, $tc, '3000000000000000000',
	$t0 eq $ta ? ('2000000000000000000000', '1000000000000000000000') : ('1000000000000000000000', '2000000000000000000000'));
cast('rpc', '--rpc-url', $rpc, 'evm_setAutomine', 'false');
my @hashes;
for my $call (@same_block)
{
	my $out = cast('send', '--async', '--rpc-url', $rpc, '--private-key', $KEY, '--nonce', $nonce++,
		'--gas-limit', $call->[1] =~ /^createPair/ ? '4000000' : '300000', @$call);
	push @hashes, ($out =~ /(0x[0-9a-f]{64})/)[0];
}
cast('rpc', '--rpc-url', $rpc, 'evm_mine');
cast('rpc', '--rpc-url', $rpc, 'evm_setAutomine', 'true');
my @blocks = map { decode_json(cast('receipt', '--json', '--rpc-url', $rpc, $_)) } @hashes;
is(join(',', map { "$_->{status} $_->{blockNumber}" } @blocks),
	join(',', ("0x1 $blocks[0]{blockNumber}") x @blocks), 'a: the same-block pair: six transactions, one block, all succeeded');
is(lc call1($factory, 'getPair(address,address)(address)', $ta, $tc), $pac, 'a: the same-block pair is at its CREATE2 address');

# ---------------------------------------------------------------------
# checks against the node
# ---------------------------------------------------------------------
sub caught_up
{
	my ($p) = @_;
	my $head = chain('head', $rpc);
	my $hash = cast('block', $head, '-f', 'hash', '--rpc-url', $rpc);
	for (1 .. 600)
	{
		my $got = q1(qq{SELECT ledger || ' 0x' || encode(ledger_hash, 'hex') || ' ' || state
			FROM ledger_ingest.status WHERE pipeline = '$p'});
		return 1 if $got eq "$head $hash running";
		usleep(100_000);
	}
	diag(q1(qq{SELECT state || ' ' || ledger || ' ' || coalesce(last_error, '') FROM ledger_ingest.status WHERE pipeline = '$p'}));
	return 0;
}

sub pairs_of
{
	my ($f) = @_;
	my $n = call1($f, 'allPairsLength()(uint256)');
	return map { lc call1($f, 'allPairs(uint256)(address)', $_) } 0 .. $n - 1;
}

# the node's logs of topic0 from addresses, decoded here: one line each
sub node_swaps
{
	my (@pairs) = @_;
	my $logs = decode_json(cast('rpc', '--rpc-url', $rpc, 'eth_getLogs',
		encode_json({ fromBlock => sprintf("0x%x", $from), toBlock => "latest", address => \@pairs, topics => [$SWAP] })));
	# each log decoded by cast: the indexed sender and to from their
	# topics, the four amounts from the data
	return join "\n", sort map {
		my $log = $_;
		join ' ', lc $log->{address}, hex($log->{blockNumber}), hex($log->{logIndex}), $log->{transactionHash},
		  (map { lc cast('parse-bytes32-address', $log->{topics}[$_]) } 1, 2),
		  map { (split / /)[0] } split /\n/, cast('abi-decode', 'f()(uint256,uint256,uint256,uint256)', $log->{data})
	} @$logs;
}

sub check
{
	my ($p, $what) = @_;
	ok(caught_up($p), "$what: $p caught up with the node's head");
	my @pairs = pairs_of($factory);
	is(q1(qq{SELECT string_agg('0x' || encode(address, 'hex'), ' ' ORDER BY ledger, tx_index, event_index)
		FROM ledger_ingest.child WHERE pipeline = '$p'}), join(' ', @pairs),
		"$what: $p: its children are the factory's allPairs (" . scalar(@pairs) . '), in order');
	my @res;
	for my $pair (@pairs)
	{
		my ($r0, $r1) = reserves($pair);
		push @res, "0x" . substr($pair, 2) . " $r0 $r1";
	}
	is(q1(qq{SELECT string_agg(a, ' ' ORDER BY a COLLATE "C") FROM (
			SELECT DISTINCT ON (address) '0x' || encode(address, 'hex') || ' ' || reserve0 || ' ' || reserve1 AS a
			FROM ${p}_sync ORDER BY address, ledger DESC, event_index DESC) s}),
		join(' ', sort @res), "$what: $p: each pair's last Sync equals its getReserves()");
	is(q1(qq{SELECT string_agg(l, E'\\n' ORDER BY l COLLATE "C") FROM (
			SELECT '0x' || encode(address, 'hex') || ' ' || ledger || ' ' || event_index || ' 0x' || encode(tx_hash, 'hex')
				|| ' 0x' || encode(sender, 'hex') || ' 0x' || encode("to", 'hex') || ' ' || amount0_in || ' ' || amount1_in
				|| ' ' || amount0_out || ' ' || amount1_out AS l FROM ${p}_swap) s}),
		node_swaps(@pairs), "$what: $p: the Swap rows equal the node's Swap logs of the pairs");
}

for my $p ('dex', 'dex_topics')
{
	check($p, 'a');
	is(q1(qq{SELECT count(*) FROM ${p}_swap WHERE address = '\\x@{[substr($other_pair, 2)]}'})
		 + q1(qq{SELECT count(*) FROM ${p}_sync WHERE address = '\\x@{[substr($other_pair, 2)]}'}), 0,
		"a: $p: nothing of the unregistered factory's pair");
	my $created = decode_json(cast('rpc', '--rpc-url', $rpc, 'eth_getLogs',
		encode_json({ fromBlock => sprintf('0x%x', $from), toBlock => 'latest', address => $factory,
			topics => [ cast('keccak', 'PairCreated(address,address,address,uint256)') ] })));
	is(q1(qq{SELECT string_agg(ledger || ':' || event_index, ' ' ORDER BY ledger) FROM ledger_ingest.child WHERE pipeline = '$p'}),
		join(' ', map { hex($_->{blockNumber}) . ':' . hex($_->{logIndex}) } @$created),
		"b: $p: each child with the block and log index of its PairCreated");
}
is(q1(q{SELECT count(*) FROM dex_sync WHERE address = (SELECT address FROM ledger_ingest.child WHERE pipeline = 'dex' ORDER BY ledger DESC LIMIT 1)
	AND ledger = (SELECT max(ledger) FROM ledger_ingest.child WHERE pipeline = 'dex')}), 2,
	'a: the same-block pair: its Syncs of that block (mint, swap) were applied');

# c) a restart: the children are read back
$node->restart;
trade($pac, $ta, '11000000000000000000');
trade($pab, $tb, '13000000000000000000');
check($_, 'c: after a restart') for 'dex', 'dex_topics';

# d) a reorg orphaning a PairCreated and the pair's trades
my $before = chain('head', $rpc);
my $pbc = create_and_fund($factory, $tb, $tc);
trade($pbc, $tc, '17000000000000000000');
my $depth = chain('head', $rpc) - $before;
for my $p ('dex', 'dex_topics')
{
	ok(caught_up($p), "d: $p applied the new pair");
	is(q1(qq{SELECT count(*) FROM ledger_ingest.child WHERE pipeline = '$p' AND address = '\\x@{[substr($pbc, 2)]}'}), 1,
		"d: $p: the new pair is a child");
}
cast('rpc', '--rpc-url', $rpc, 'anvil_reorg', $depth, '[]');
cast('rpc', '--rpc-url', $rpc, 'anvil_mine', '0x1');
is(lc call1($factory, 'getPair(address,address)(address)', $tb, $tc), '0x' . '0' x 40, "d: the reorg of depth $depth orphaned the pair");
for my $p ('dex', 'dex_topics')
{
	check($p, "d: after the reorg");
	is(q1(qq{SELECT count(*) FROM ${p}_swap WHERE address = '\\x@{[substr($pbc, 2)]}'})
		 + q1(qq{SELECT count(*) FROM ${p}_sync WHERE address = '\\x@{[substr($pbc, 2)]}'}), 0,
		"d: $p: the orphaned pair's rows are gone");
}

# e) rewind below the same-block pair's creation: it is forgotten, then
# announced again by applying the ledger again
my $pac_ledger = q1(qq{SELECT ledger FROM ledger_ingest.child WHERE pipeline = 'dex' AND address = '\\x@{[substr($pac, 2)]}'});
q1(q{SELECT ledger_ingest.stop('dex')});
li_wait_state($node, 'dex', 'stopped');
q1(qq{DELETE FROM dex_swap; DELETE FROM dex_sync; SELECT ledger_ingest.rewind('dex', $from - 1)});
is(q1(q{SELECT count(*) FROM ledger_ingest.child WHERE pipeline = 'dex'}), 0, 'e: rewind() to the start forgot every child');
q1(q{SELECT ledger_ingest.start('dex')});
check('dex', 'e: applied again after rewind()');
is(q1(qq{SELECT ledger FROM ledger_ingest.child WHERE pipeline = 'dex' AND address = '\\x@{[substr($pac, 2)]}'}), $pac_ledger,
	'e: the same-block pair announced again at its ledger');

# f) tens of thousands of children, through the inbox
q1(q{
	CREATE FUNCTION addr(kind text, j bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
		$$ SELECT substr(md5(kind || j) || md5(j || kind), 1, 40) $$;
	CREATE TABLE gen AS
	SELECT l, i,
		CASE WHEN i < 100 THEN addr('child', (l * 7919 + i * 104729) % (l * 250))
			 WHEN i < 350 THEN repeat('fa', 20)
			 WHEN i < 399 THEN addr('stranger', l * 1000 + i)
			 ELSE repeat('ee', 20) END AS address,
		CASE WHEN i BETWEEN 100 AND 349 OR i = 399 THEN encode(ledger_ingest.event_topic('event Created(address child)'), 'hex')
			 ELSE repeat('01', 32) END AS topic0,
		CASE WHEN i BETWEEN 100 AND 349 THEN lpad(addr('child', (l - 1) * 250 + i - 100), 64, '0')
			 WHEN i = 399 THEN lpad(addr('evil', l), 64, '0')
			 ELSE '' END AS data,
		i < 350 AS expected
	FROM generate_series(1, 100) l, generate_series(0, 399) i;
	-- the look-alike's named address logs too (as log 400)
	INSERT INTO gen SELECT l, 400, addr('evil', l), repeat('01', 32), '', false FROM generate_series(1, 100) l;
	CREATE TABLE many_sink (ledger bigint, event_index int, address bytea);
	SELECT ledger_ingest.create_pipeline('many', 'inbox');
	SELECT ledger_ingest.add_factory('many', '\xfafafafafafafafafafafafafafafafafafafafa', 'event Created(address child)', 'child');
	SELECT ledger_ingest.add_raw_sink('many', 'many_sink');
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
	SELECT 'many', jsonb_build_object('number', l, 'hash', '0x' || md5(l::text) || md5(l || 'h'),
		'logs', jsonb_agg(jsonb_build_object('address', '0x' || address, 'topics', jsonb_build_array('0x' || topic0),
			'data', '0x' || data, 'transactionIndex', i / 10, 'logIndex', i) ORDER BY i))
	FROM gen GROUP BY l;
	SELECT ledger_ingest.start('many');
});
ok(li_wait($node, 'many', 100, 180), 'f: applied the 100 ledgers');
is(q1(q{SELECT count(*) || ' ' || count(DISTINCT address) FROM ledger_ingest.child WHERE pipeline = 'many'}), '25000 25000',
	'f: 25,000 children');
is(q1(q{SELECT count(*) FROM ledger_ingest.child c FULL JOIN gen g ON g.l = c.ledger AND g.i = c.event_index
	AND c.address = decode(substr(g.data, 25), 'hex') AND c.pipeline = 'many'
	WHERE (c.pipeline = 'many' OR (g.address = repeat('fa', 20) AND g.i BETWEEN 100 AND 349)) AND (c.address IS NULL OR g.l IS NULL)}), 0,
	'f: each child with the ledger and log of its announcement');
is(q1(q{SELECT count(*) FROM many_sink s FULL JOIN (SELECT * FROM gen WHERE expected) g
	ON g.l = s.ledger AND g.i = s.event_index AND decode(g.address, 'hex') = s.address
	WHERE s.ledger IS NULL OR g.l IS NULL}), 0,
	'f: the sink holds exactly the factory\'s 25,000 and the children\'s 10,000 logs (of 40,100)');

# g) dump and restore
my $children_sql = q{SELECT count(*) || ' ' || md5(string_agg(c.pipeline || encode(c.address, 'hex') || f.event || f.param
	|| c.ledger || ':' || c.tx_index || ':' || c.event_index, ',' ORDER BY c.pipeline, c.address))
	FROM ledger_ingest.child c JOIN ledger_ingest.factory f ON f.id = c.factory};
my $children = q1($children_sql);
my $dump = PostgreSQL::Test::Utils::tempdir . '/factory.dump';
command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'g: pg_dump');
$node->stop;
my $dst = li_cluster('factory_restored');
$dst->start;
command_ok([ 'pg_restore', '--exit-on-error', '-d', $dst->connstr('postgres'), $dump ], 'g: pg_restore into a fresh cluster');
is($dst->safe_psql('postgres', $children_sql), $children, 'g: every factory and child restored as it was (' . (split / /, $children)[0] . ')');
$dst->safe_psql('postgres', q{
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'many', jsonb_build_object('number', 101,
		'hash', '0x' || repeat('ab', 32), 'logs', jsonb_build_array(
			jsonb_build_object('address', '0x' || addr('child', 24999), 'topics', jsonb_build_array('0x' || repeat('01', 32)),
				'data', '0x', 'transactionIndex', 0, 'logIndex', 0),
			jsonb_build_object('address', '0x' || addr('stranger', 1), 'topics', jsonb_build_array('0x' || repeat('01', 32)),
				'data', '0x', 'transactionIndex', 0, 'logIndex', 1)));
	SELECT ledger_ingest.start('many');
});
ok(li_wait($dst, 'many', 101, 60), 'g: the restored pipeline applied the next ledger');
is($dst->safe_psql('postgres', q{SELECT string_agg(event_index::text, ',') FROM many_sink WHERE ledger = 101}), '0',
	'g: ... following the restored children (the last one\'s log applied, a stranger\'s not)');

done_testing();
