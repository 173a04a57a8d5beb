# Transactions and receipts against anvil (evm_rpc "transactions" and
# "receipts"; inbox documents with "transactions" and "receipts"):
#  a) the transactions of the run: ERC-20 transfer() calls (EIP-1559), plain
#     ETH transfers to a watched EOA (one legacy), a transfer() that
#     reverts, a contract creation, an ETH transfer to an unwatched EOA;
#  b) pipeline "all" (no addresses: every transaction; its node has no
#     eth_getBlockReceipts, so receipts come from eth_getTransactionReceipt):
#     one row per transaction of every block, each equal, field by field,
#     to `cast tx` and `cast receipt`;
#  c) pipeline "watch" (addresses: the token and one EOA): a transaction
#     handler with failed => true sees exactly the transactions to them,
#     the reverted one with status 0; one by transfer()'s selector sees the
#     successful calls only; one by the empty selector sees the plain ETH
#     transfers only; an event handler taking (event, transaction) gets
#     each event's own transaction; a table sink's tx_ columns hold the
#     log's transaction's fields;
#  d) "transactions" without "receipts": the receipt's fields are NULL;
#  e) the fault matrix for receipts ("faults" family), each through the
#     fault proxy against a pipeline like "watch": eth_getBlockReceipts
#     missing (fallback), a receipts answer missing its last receipt, a
#     receipt of another block (blockHash changed; the node asked for the
#     block before), a truncated answer, a receipts batch with an answer
#     left out: each retried, the rows equal to "watch"'s, none twice;
#  f) the blocks as inbox documents (eth_getBlockByNumber(n, true) plus
#     eth_getBlockReceipts): the same rows as "all";
#  g) anvil_reorg orphaning a plain transfer that a transaction handler
#     recorded in a tracked table: the row goes with the block, and the
#     transfer sent again on the new branch is recorded once.
use strict;
use warnings;
use JSON::PP;
use Math::BigInt;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use LiTest;

my $rpc = li_anvil();
my $token = chain('deploy', $rpc);
chain('mint', $rpc, $token);
my @acc = (
	'0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266', '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
	'0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc', '0x90f79bf6eb2c4f870365e785982e1f101e93b906',
	'0x15d34aaf54267db7d7c367839aaf71a00a2c6a65', '0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc',
	'0x976ea74026e726554db657fa54763abd0c3a0aa9', '0x14dc79964da2c08b23698b3d3cc7ca32193d9955');
my $KEY0 = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
my $KEY2 = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a';
my $from = chain('head', $rpc) + 1;
my $watched = $acc[5];
my $F = 'faults injected';

my $node = li_node('transactions');
sub q1 { return scalar $node->safe_psql('postgres', $_[0]) }

my ($proxy_missing, $ctl_missing) = li_proxy($rpc);
my ($proxy_faults, $ctl_faults) = li_proxy($rpc);
$ctl_missing->('__fault', { mode => 'rpc_error', method => 'eth_getBlockReceipts', count => -1,
	code => -32601, message => 'the method eth_getBlockReceipts does not exist/is not available' });
for my $f ({ mode => 'result_drop_last' }, { mode => 'logs_mismatch' }, { mode => 'wrong_block' },
	{ mode => 'truncated' }, { mode => 'batch_drop', index => 0 })
{
	$ctl_faults->('__fault', { %$f, method => 'eth_getBlockReceipts', count => 1 });
}

my $selector = substr(cast('keccak', 'transfer(address,uint256)'), 2, 8);
q1(qq{
	CREATE TABLE seen (LIKE ledger_ingest.transaction, kind text);
	CREATE FUNCTION on_tx(t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO seen SELECT t.*, 'any' \$\$;
	CREATE FUNCTION on_transfer_call(t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO seen SELECT t.*, 'transfer()' \$\$;
	CREATE FUNCTION on_plain(t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO seen SELECT t.*, 'plain' \$\$;
	CREATE TABLE ev_tx (pipeline text, ledger bigint, event_index int, ev_tx_hash bytea, tx_hash bytea,
		"from" bytea, status int);
	CREATE FUNCTION on_event(e ledger_ingest.event, t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO ev_tx VALUES (e.pipeline, e.ledger, e.event_index, e.tx_hash, t.tx_hash, t."from", t.status) \$\$;
	CREATE FUNCTION on_event_strict(e ledger_ingest.event, t ledger_ingest.transaction) RETURNS void
		LANGUAGE sql STRICT AS
		\$\$ INSERT INTO ev_tx VALUES ('strict', e.ledger, e.event_index, e.tx_hash, t.tx_hash, t."from", t.status) \$\$;
	CREATE FUNCTION on_to7(t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO seen SELECT t.*, 'to7' \$\$;
});
for my $p ([ 'all', $proxy_missing, '' ], [ 'watch', $rpc, qq{, "addresses": ["$token", "$watched"]} ],
	[ 'faults', $proxy_faults, qq{, "addresses": ["$token", "$watched"]} ],
	[ 'noreceipts', $rpc, qq{, "addresses": ["$token", "$watched"]} ])
{
	my ($name, $url, $extra) = @$p;
	my $what = $name eq 'noreceipts' ? '"transactions": true' : '"receipts": true';
	q1(qq{
		SELECT ledger_ingest.create_pipeline('$name', 'evm_rpc',
			'{"url": "$url", "from_block": $from, "poll_ms": 100, "block_range": 5, $what$extra}');
		SELECT ledger_ingest.add_transaction_handler('$name', 'on_tx(ledger_ingest.transaction)', failed => true);
		SELECT ledger_ingest.add_handler('$name', 'on_event(ledger_ingest.event, ledger_ingest.transaction)');
	});
}
q1(qq{
	SELECT ledger_ingest.add_transaction_handler('watch', 'on_transfer_call(ledger_ingest.transaction)',
		selector => '\\x$selector');
	SELECT ledger_ingest.add_transaction_handler('watch', 'on_plain(ledger_ingest.transaction)', selector => '\\x');
	-- an address outside "addresses": its transactions are fetched for it
	SELECT ledger_ingest.add_transaction_handler('watch', 'on_to7(ledger_ingest.transaction)', address => '\\x@{[substr($acc[7], 2)]}');
	-- without "transactions": the second argument is NULL; a STRICT handler is not called
	SELECT ledger_ingest.create_pipeline('notx', 'evm_rpc',
		'{"url": "$rpc", "from_block": $from, "poll_ms": 100, "block_range": 5, "addresses": ["$token"]}');
	SELECT ledger_ingest.add_handler('notx', 'on_event(ledger_ingest.event, ledger_ingest.transaction)');
	SELECT ledger_ingest.add_handler('notx', 'on_event_strict(ledger_ingest.event, ledger_ingest.transaction)');
	-- a table sink with fields of the log's transaction
	CREATE TABLE transfer_tx (ledger bigint, event_index int, tx_hash bytea, value numeric, tx_from bytea,
		tx_status int, tx_gas_used bigint, tx_selector bytea);
	SELECT ledger_ingest.add_table_sink('watch', 'transfer_tx',
		'event Transfer(address indexed from, address indexed to, uint256 value)');
	SELECT ledger_ingest.start(name) FROM ledger_ingest.pipeline;
});

# a) the run
sub send_tx { return decode_json(cast('send', '--json', '--rpc-url', $rpc, @_)) }
chain('transfers', $rpc, $token, 6, 7);
send_tx('--private-key', $KEY0, $watched, '--value', '1000000000000000000');
send_tx('--private-key', $KEY2, '--legacy', $watched, '--value', '123456789');
my $reverted = cast('send', '--async', '--rpc-url', $rpc, '--private-key', $KEY2, '--gas-limit', '100000',
	$token, 'transfer(address,uint256)', $acc[1], '1' . '0' x 30);
cast('rpc', '--rpc-url', $rpc, 'evm_mine');
my $artifact = decode_json(slurp_file(li_root() . '/test/node_modules/@uniswap/v2-core/build/ERC20.json'));
my $created = send_tx('--private-key', $KEY0, '--create',
	'0x' . $artifact->{bytecode} . substr(cast('abi-encode', 'constructor(uint256)', '1000'), 2));
send_tx('--private-key', $KEY0, $acc[7], '--value', '5');
chain('transfers', $rpc, $token, 3, 8);
my $head = chain('head', $rpc);
is(decode_json(cast('receipt', '--json', '--rpc-url', $rpc, $reverted))->{status}, '0x0', 'a: the reverting transfer() was mined, status 0');

sub caught_up
{
	my ($p) = @_;
	my $hash = cast('block', $head, '-f', 'hash', '--rpc-url', $rpc);
	for (1 .. 600)
	{
		return 1 if q1(qq{SELECT ledger || ' 0x' || encode(ledger_hash, 'hex') FROM ledger_ingest.status WHERE pipeline = '$p'})
		  eq "$head $hash";
		usleep(100_000);
	}
	diag(q1(qq{SELECT state || ' ' || ledger || ' ' || coalesce(last_error, '') FROM ledger_ingest.status WHERE pipeline = '$p'}));
	return 0;
}
ok(caught_up($_), "$_ caught up with the node") for 'all', 'watch', 'noreceipts', 'faults';

# the node's view of every transaction of the run, one line each
sub dec { my ($v) = @_; return defined $v ? Math::BigInt->from_hex($v)->bstr : '' }
my (%line, @all_hashes, %to);
for my $n ($from .. $head)
{
	my $b = decode_json(cast('rpc', '--rpc-url', $rpc, 'eth_getBlockByNumber', sprintf('0x%x', $n), 'false'));
	for my $h (@{ $b->{transactions} })
	{
		my $t = decode_json(cast('tx', '--json', '--rpc-url', $rpc, $h));
		my $r = decode_json(cast('receipt', '--json', '--rpc-url', $rpc, $h));
		push @all_hashes, $h;
		$to{$h} = lc($t->{to} // '');
		$line{$h} = join '|', $n, dec($t->{transactionIndex}), $h, lc $t->{from}, lc($t->{to} // ''), dec($t->{value}),
		  lc $t->{input}, dec($t->{nonce}), dec($t->{gas}), dec($t->{gasPrice}), dec($t->{maxFeePerGas}),
		  dec($t->{maxPriorityFeePerGas}), dec($t->{type}), dec($r->{status}), dec($r->{gasUsed}),
		  dec($r->{effectiveGasPrice}), lc($r->{contractAddress} // '');
	}
}
my $ncreated = grep { $_ eq '' } values %to;
ok(@all_hashes >= 14 && $ncreated >= 1, 'a: ' . scalar(@all_hashes) . " transactions in blocks $from to $head, $ncreated contract creation(s)");

sub rows
{
	my ($p, $kind, $cols) = @_;
	$cols //= q{ledger || '|' || tx_index || '|0x' || encode(tx_hash, 'hex') || '|0x' || encode("from", 'hex') || '|'
		|| coalesce('0x' || encode("to", 'hex'), '') || '|' || value || '|0x' || encode(input, 'hex') || '|' || nonce
		|| '|' || gas || '|' || coalesce(gas_price::text, '') || '|' || coalesce(max_fee_per_gas::text, '')
		|| '|' || coalesce(max_priority_fee_per_gas::text, '') || '|' || type || '|' || coalesce(status::text, '')
		|| '|' || coalesce(gas_used::text, '') || '|' || coalesce(effective_gas_price::text, '')
		|| '|' || coalesce('0x' || encode(contract_address, 'hex'), '')};
	return q1(qq{SELECT coalesce(string_agg($cols, E'\\n' ORDER BY ledger, tx_index), '') FROM seen
		WHERE pipeline = '$p' AND kind = '$kind'});
}
sub expected { return join "\n", map { $line{$_} } @_ }

# b) every transaction, equal to cast
is(rows('all', 'any'), expected(@all_hashes), 'b: all: every transaction of every block once, each equal to cast tx and cast receipt');
ok($ctl_missing->('__stats')->{by_method}{eth_getTransactionReceipt} > 0,
	'b: all: its node lacks eth_getBlockReceipts: the receipts came from eth_getTransactionReceipt');
li_case($F, 'evm_rpc: eth_getBlockReceipts missing: eth_getTransactionReceipt instead, every receipt equal to cast receipt',
	rows('all', 'any') eq expected(@all_hashes));

# c) watched addresses, selectors, status, the event's transaction
my @to_watched = grep { $to{$_} eq $token || $to{$_} eq $watched } @all_hashes;
is(rows('watch', 'any'), expected(@to_watched), 'c: watch: exactly the ' . scalar(@to_watched) . ' transactions to the token and the EOA, equal to cast');
is(q1(q{SELECT status FROM seen WHERE pipeline = 'watch' AND kind = 'any' AND tx_hash = '\x} . substr($reverted, 2) . q{'}), '0',
	'c: watch: the reverted transfer() with status 0');
my @calls = grep { $to{$_} eq $token && $_ ne $reverted } @all_hashes;
is(rows('watch', 'transfer()'), expected(@calls), 'c: watch: the transfer() selector: the ' . scalar(@calls) . ' successful calls only');
my @plain = grep { $to{$_} eq $watched } @all_hashes;
is(scalar @plain, 2, 'c: two plain ETH transfers to the watched EOA');
is(rows('watch', 'plain'), expected(@plain), 'c: watch: the empty selector: the plain ETH transfers only (one legacy)');
my $nev = q1(q{SELECT count(*) FROM ev_tx WHERE pipeline = 'watch'});
is(q1(q{SELECT count(*) FILTER (WHERE ev_tx_hash = tx_hash AND status = 1) FROM ev_tx WHERE pipeline = 'watch'}),
	$nev, "c: watch: each of the $nev events got its own transaction");
ok($nev >= 9, 'c: watch: the transfers\' events were applied');
is(q1(q{SELECT string_agg(DISTINCT '0x' || encode(tx_hash, 'hex') || '|0x' || encode("from", 'hex'), ',')
		FROM ev_tx WHERE pipeline = 'watch'}),
	join(',', sort map { my @f = split /\|/, $line{$_}; "$f[2]|$f[3]" } grep { $to{$_} eq $token && $_ ne $reverted } @all_hashes),
	"c: watch: the events' transactions' senders equal cast's");

is(q1(q{SELECT string_agg(DISTINCT '0x' || encode(tx_hash, 'hex') || '|0x' || encode(tx_from, 'hex') || '|' || tx_gas_used
		|| '|' || tx_status || '|0x' || encode(tx_selector, 'hex'), ',') FROM transfer_tx}),
	join(',', sort map { my @f = split /\|/, $line{$_}; "$f[2]|$f[3]|$f[14]|$f[13]|0x$selector" }
		grep { $to{$_} eq $token && $_ ne $reverted } @all_hashes),
	"c: watch: a table sink's tx_from, tx_gas_used, tx_status and tx_selector columns equal cast's");

my @to7 = grep { $to{$_} eq $acc[7] } @all_hashes;
is(rows('watch', 'to7'), expected(@to7), 'c: watch: a handler by an address outside "addresses" sees the transfer to it');
ok(caught_up('notx'), 'c: notx caught up');
is(q1(q{SELECT count(*) || ' ' || count(*) FILTER (WHERE tx_hash IS NULL AND ev_tx_hash IS NOT NULL)
		|| ' ' || (SELECT count(*) FROM ev_tx WHERE pipeline = 'strict') FROM ev_tx WHERE pipeline = 'notx'}),
	"$nev $nev 0", 'c: without "transactions" the second argument is NULL, and a STRICT handler is not called');

# d) no receipts
is(rows('noreceipts', 'any', q{coalesce(status::text, 'null') || coalesce(gas_used::text, 'null')}),
	join("\n", ('nullnull') x @to_watched), 'd: transactions without receipts: status and gas_used NULL');

# e) the fault matrix
my $stats = $ctl_faults->('__stats');
my $same = rows('faults', 'any') eq rows('watch', 'any');
for my $m ('result_drop_last', 'logs_mismatch', 'wrong_block', 'truncated', 'batch_drop')
{
	my $what = {
		result_drop_last => 'an eth_getBlockReceipts answer missing its last receipt',
		logs_mismatch => 'a receipt of another block (blockHash changed)',
		wrong_block => 'eth_getBlockReceipts answered with the block before',
		truncated => 'a truncated eth_getBlockReceipts answer',
		batch_drop => 'a receipts batch with an answer left out' }->{$m};
	li_case($F, "evm_rpc: $what: retried, every transaction once, equal to the unfaulted pipeline",
		($stats->{by_mode}{$m} // 0) == 1 && $same);
}
is(q1(q{SELECT count(*) FROM ledger_ingest.decode_error}), '0', 'e: nothing set aside');

# f) the same blocks as inbox documents
my @docs;
for my $n ($from .. $head)
{
	my $b = decode_json(cast('rpc', '--rpc-url', $rpc, 'eth_getBlockByNumber', sprintf('0x%x', $n), 'true'));
	my $logs = decode_json(cast('rpc', '--rpc-url', $rpc, 'eth_getLogs',
		encode_json({ fromBlock => sprintf('0x%x', $n), toBlock => sprintf('0x%x', $n) })));
	$b->{logs} = $logs;
	$b->{receipts} = decode_json(cast('rpc', '--rpc-url', $rpc, 'eth_getBlockReceipts', sprintf('0x%x', $n)));
	push @docs, encode_json($b);
}
my $dir = PostgreSQL::Test::Utils::tempdir;
open(my $fh, '>', "$dir/docs.ndjson") or die;
print $fh "$_\n" for @docs;
close $fh;
q1(qq{
	CREATE TABLE docs (doc jsonb);
	COPY docs FROM '$dir/docs.ndjson' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
	SELECT ledger_ingest.create_pipeline('inbox', 'inbox');
	SELECT ledger_ingest.add_transaction_handler('inbox', 'on_tx(ledger_ingest.transaction)', failed => true);
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'inbox', doc FROM docs;
	SELECT ledger_ingest.start('inbox');
});
ok(li_wait($node, 'inbox', $head, 60), 'f: inbox: applied the documents');
is(q1(q{SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = 'inbox'}), '0', 'f: inbox: no document rejected');
is(rows('inbox', 'any'), expected(@all_hashes), 'f: inbox: every transaction with its receipt, equal to cast');

# g) a reorg under a transaction handler's tracked table
q1(q{
	CREATE TABLE plain_tracked (tx_hash bytea PRIMARY KEY, value numeric);
	CREATE FUNCTION on_plain_tracked(t ledger_ingest.transaction) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO plain_tracked VALUES (t.tx_hash, t.value) $$;
	SELECT ledger_ingest.track_table('watch', 'plain_tracked');
	SELECT ledger_ingest.add_transaction_handler('watch', 'on_plain_tracked(ledger_ingest.transaction)', selector => '\x');
});
my $orphan = send_tx('--private-key', $KEY0, $watched, '--value', '777')->{transactionHash};
chain('transfers', $rpc, $token, 1, 9);
$head = chain('head', $rpc);
ok(caught_up('watch'), 'g: watch applied the plain transfer');
is(q1(q{SELECT string_agg('0x' || encode(tx_hash, 'hex') || ' ' || value, ',') FROM plain_tracked}), "$orphan 777",
	'g: the tracked table holds it');
cast('rpc', '--rpc-url', $rpc, 'anvil_reorg', '2', '[]');
my $again = send_tx('--private-key', $KEY0, $watched, '--value', '778')->{transactionHash};
$head = chain('head', $rpc);
ok(caught_up('watch'), 'g: watch followed the new branch');
is(q1(q{SELECT string_agg('0x' || encode(tx_hash, 'hex') || ' ' || value, ',') FROM plain_tracked}), "$again 778",
	'g: the orphaned transfer\'s row is gone, the new branch\'s transfer recorded once');
is(q1(q{SELECT reorgs FROM ledger_ingest.status WHERE pipeline = 'watch'}), '1', 'g: one reorg');

done_testing();
