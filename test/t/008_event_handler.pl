# Handlers registered by event signature: the worker decodes each matching
# log once, in C, into the event's args.  Replaying the real mainnet blocks
# into a balances handler that only reads args (no hand decoding in SQL)
# must give exactly the expected ERC-20 deltas; ERC-721 Transfers (same
# topic0, 4 topics) go only to the handler registered with their signature.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('event_handler');
li_load_erc20($node);
$node->safe_psql('postgres', q{
	CREATE FUNCTION on_erc20(e ledger_ingest.event) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		v numeric := (e.args->>'value')::numeric;
	BEGIN
		INSERT INTO erc20_balances AS b VALUES (e.address, decode(substr(e.args->>'from', 3), 'hex'), -v)
			ON CONFLICT (token, account) DO UPDATE SET balance = b.balance + excluded.balance;
		INSERT INTO erc20_balances AS b VALUES (e.address, decode(substr(e.args->>'to', 3), 'hex'), v)
			ON CONFLICT (token, account) DO UPDATE SET balance = b.balance + excluded.balance;
	END $$;
	CREATE TABLE nft (token bytea, token_id numeric, owner text, PRIMARY KEY (token, token_id));
	CREATE FUNCTION on_erc721(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$
		INSERT INTO nft VALUES (e.address, (e.args->>'tokenId')::numeric, e.args->>'to')
		ON CONFLICT (token, token_id) DO UPDATE SET owner = excluded.owner $$;
	CREATE TABLE calls (kind text, n int);
	SELECT ledger_ingest.create_pipeline('sig', 'inbox');
	SELECT ledger_ingest.add_handler('sig', 'on_erc20(ledger_ingest.event)',
		event => 'event Transfer(address indexed from, address indexed to, uint256 value)');
	SELECT ledger_ingest.add_handler('sig', 'on_erc721(ledger_ingest.event)',
		event => 'Transfer(address indexed from, address indexed to, uint256 indexed tokenId)');
});
is( li_scalar($node, q{SELECT encode(topic0, 'hex') FROM ledger_ingest.handler ORDER BY id LIMIT 1}),
	'ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef',
	'add_handler(event => ...) computes topic0');
li_load_ndjson($node, 'sig', li_data() . '/evm/mainnet-blocks.ndjson');
$node->safe_psql('postgres', q{SELECT ledger_ingest.start('sig')});
ok(li_wait($node, 'sig', 17000000, 120), 'replayed the mainnet blocks');
is(li_scalar($node, 'SELECT count(*) FROM erc20_mismatch'), '0',
	'balances from decoded args equal the expected ERC-20 deltas');
is(li_scalar($node, q{SELECT state FROM ledger_ingest.status WHERE pipeline = 'sig'}), 'running',
	'no decode error stopped the pipeline');
ok(li_scalar($node, 'SELECT count(*) FROM nft') > 0, 'ERC-721 Transfers reached the 4-topic handler');
like(li_scalar($node, 'SELECT owner FROM nft LIMIT 1'), qr/^0x[0-9a-f]{40}$/, 'addresses decode as 0x-hex');

# a log whose data does not decode, with on_decode_error "fail": the
# handler-error policy applies (the default, "skip", is in 015_operations.pl)
$node->safe_psql('postgres', q{
	CREATE FUNCTION noop(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$ SELECT $$;
	SELECT ledger_ingest.create_pipeline('badsig', 'inbox', '{"max_retries": 0, "on_decode_error": "fail"}');
	SELECT ledger_ingest.add_handler('badsig', 'noop(ledger_ingest.event)',
		event => 'Transfer(address indexed from, address indexed to, uint256 value)');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('badsig', jsonb_build_object(
		'number', 7, 'hash', '0x' || repeat('77', 32),
		'logs', jsonb_build_array(jsonb_build_object(
			'address', '0x' || repeat('aa', 20),
			'topics', jsonb_build_array('0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef',
										'0x' || repeat('00', 31) || '01', '0x' || repeat('00', 31) || '02'),
			'data', '0x0102030405', 'transactionIndex', 3, 'logIndex', 9))));
	SELECT ledger_ingest.start('badsig');
});
is(li_wait_state($node, 'badsig', 'failed', 60), 'failed', 'undecodable data fails the pipeline');
like(li_scalar($node, q{SELECT last_error FROM ledger_ingest.status WHERE pipeline = 'badsig'}),
	qr/^22P03: .*"value".*\(ledger 7, tx_index 3, event_index 9, handler noop\(ledger_ingest.event\)\)$/,
	'the error names the argument, the event and the handler');
is(li_scalar($node, q{SELECT count(*) FROM ledger_ingest.inbox WHERE pipeline = 'badsig'}), '1',
	'the ledger is not lost');

$node->stop;
done_testing();
