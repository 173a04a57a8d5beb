# Stellar ledger documents in the inbox (src/ledger_stellar.c): the real
# pubnet ledgers as a producer would send them, read from the replay server
# (test/stellar/documents.mjs: getLedgers entries plus their getEvents
# events), into a pipeline with "chain": "stellar":
#  a) a raw sink holds exactly the 3,373 events getEvents serves: each at the
#     position of its id, its contract id, transaction hash, topics and
#     value as getEvents gives them;
#  b) ledger headers, hashes, close times and previous hashes as the header
#     XDR says;
#  c) a fee handler's sum per transaction equals the feeCharged of the
#     transaction's result in the LedgerCloseMeta (read by stellar-base);
#  d) the 406 contiguous pubnet headers chain; a ledger whose
#     previousLedgerHash is not the hash of the ledger before fails the
#     pipeline (the network does not reorganize), nothing lost once the
#     real one is sent; a second, different document of an applied ledger
#     fails it too;
#  e) malformed documents, each rejected with an error naming the field,
#     and nothing lost: documents of the other chain, in both directions.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('stellar_inbox');
sub q1 { return scalar $node->safe_psql('postgres', $_[0]) }

my $url = li_stellar_replay();
li_stellar_documents($node, $url);
q1(qq{
	CREATE TABLE raw (pipeline text, ledger bigint, ledger_hash bytea, ledger_time timestamptz, tx_index int,
		tx_hash bytea, event_index int, address bytea, topics bytea[], data bytea,
		PRIMARY KEY (pipeline, ledger, tx_index, event_index));
	CREATE TABLE fee_seen (tx_hash bytea, amount numeric);
	-- CAP-67 fee events: topics ("fee", the account), the amount an i128
	CREATE FUNCTION on_fee(e ledger_ingest.event) RETURNS void LANGUAGE sql AS \$\$
		INSERT INTO fee_seen SELECT e.tx_hash, (ledger_ingest.scval_to_native(e.data) #>> '{}')::numeric
		WHERE e.topics[1] = ledger_ingest.scval_symbol('fee') \$\$;
	CREATE TABLE seen (pipeline text, ledger bigint);
	CREATE FUNCTION see(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO seen VALUES (e.pipeline, e.ledger) \$\$;
});
my @ledgers = split /\n/, q1('SELECT ledger FROM docs ORDER BY ledger');
is(scalar(@ledgers), 5, 'five documents, one per ledger the server holds');

# ---------------------------------------------------------------------
# a) - c) the five ledgers
# ---------------------------------------------------------------------
q1(q{
	SELECT ledger_ingest.create_pipeline('xlm', 'inbox', '{"chain": "stellar"}');
	SELECT ledger_ingest.add_raw_sink('xlm', 'raw');
	SELECT ledger_ingest.add_handler('xlm', 'on_fee(ledger_ingest.event)');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'xlm', doc FROM docs ORDER BY ledger;
	SELECT ledger_ingest.start('xlm');
});
ok(li_wait($node, 'xlm', $ledgers[-1], 120), 'the Stellar pipeline applied the five ledgers');
is(q1(q{SELECT count(*) FROM raw}), '3373', 'the raw sink holds 3,373 events');
is(q1(q{
	SELECT count(*) FROM rpc_events r
	FULL JOIN (SELECT raw.*, ledger_ingest.stellar_event_id(ledger, tx_index, event_index) AS id FROM raw) s USING (id)
	WHERE s.id IS NULL OR r.id IS NULL
	   OR s.address IS DISTINCT FROM CASE WHEN r.contract_id = '' THEN NULL ELSE ledger_ingest.strkey_decode(r.contract_id) END
	   OR s.tx_hash <> decode(r.tx_hash, 'hex')
	   OR s.topics <> coalesce((SELECT array_agg(decode(t, 'base64') ORDER BY o)
							   FROM unnest(string_to_array(nullif(r.topics, ''), ',')) WITH ORDINALITY AS u(t, o)), '{}')
	   OR s.data <> decode(r.value, 'base64')}),
	'0', 'each event at the position of its getEvents id, with its contract id, transaction hash, topics and value');
is(q1(q{SELECT count(*) FROM raw WHERE length(address) <> 32}), '0', 'every contract id 32 bytes');
is(q1(q{
	SELECT count(*) FROM docs d, ledger_ingest.stellar_ledger_header(decode(d.doc->>'headerXdr', 'base64')) h
	LEFT JOIN ledger_ingest.ledger l ON l.pipeline = 'xlm' AND l.number = h.sequence
	WHERE l.number IS NULL OR l.hash <> h.hash OR l.parent_hash <> h.previous_ledger_hash OR l.time <> h.close_time
	   OR encode(l.hash, 'hex') <> d.doc->>'hash'}),
	'0', 'each ledger stored with the hash, previous hash and close time of its header');
is(q1(q{SELECT count(*) FROM raw r JOIN docs d ON d.ledger = r.ledger
	WHERE r.ledger_hash <> decode(d.doc->>'hash', 'hex') OR r.ledger_time <> to_timestamp((d.doc->>'ledgerCloseTime')::bigint)}),
	'0', 'each event with its ledger\'s hash and close time');
my $fee_txs = q1(q{SELECT count(DISTINCT tx_hash) FROM fee_seen});
ok($fee_txs > 500, "fee events of $fee_txs transactions");
is(q1(q{
	SELECT count(*) FROM (SELECT tx_hash, sum(amount) AS total FROM fee_seen GROUP BY tx_hash) s
	LEFT JOIN fees f ON decode(f.tx_hash, 'hex') = s.tx_hash
	WHERE f.fee_charged IS DISTINCT FROM s.total}),
	'0', 'each transaction\'s fee events sum to the feeCharged of its result in the LedgerCloseMeta');

# handlers registered by topic0 (an ScVal: scval_symbol) and by contract
my $top = q1(q{SELECT encode(address, 'hex') FROM raw GROUP BY address ORDER BY count(*) DESC, address LIMIT 1});
q1(qq{
	CREATE TABLE by_topic (ledger bigint, tx_index int, event_index int);
	CREATE FUNCTION on_topic(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO by_topic VALUES (e.ledger, e.tx_index, e.event_index) \$\$;
	CREATE TABLE by_contract (ledger bigint, tx_index int, event_index int);
	CREATE FUNCTION on_contract(e ledger_ingest.event) RETURNS void LANGUAGE sql AS
		\$\$ INSERT INTO by_contract VALUES (e.ledger, e.tx_index, e.event_index) \$\$;
	SELECT ledger_ingest.create_pipeline('filtered', 'inbox', '{"chain": "stellar"}');
	SELECT ledger_ingest.add_handler('filtered', 'on_topic(ledger_ingest.event)', topic0 => ledger_ingest.scval_symbol('transfer'));
	SELECT ledger_ingest.add_handler('filtered', 'on_contract(ledger_ingest.event)',
		address => ledger_ingest.strkey_decode(ledger_ingest.strkey_encode('C', '\\x$top')));
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'filtered', doc FROM docs ORDER BY ledger;
	SELECT ledger_ingest.start('filtered');
});
ok(li_wait($node, 'filtered', $ledgers[-1], 120), 'a pipeline with filtered handlers applied the five ledgers');
is(q1(q{SELECT count(*) FROM by_topic}) . ' ' . q1(q{SELECT count(*) FROM (
		SELECT ledger, tx_index, event_index FROM raw WHERE topics[1] = ledger_ingest.scval_symbol('transfer')
		EXCEPT SELECT * FROM by_topic) s}),
	q1(q{SELECT count(*) FROM raw WHERE topics[1] = ledger_ingest.scval_symbol('transfer')}) . ' 0',
	"topic0 => scval_symbol('transfer'): exactly the transfer events");
is(q1(q{SELECT count(*) FROM by_contract}),
	q1(qq{SELECT count(*) FROM raw WHERE address = '\\x$top'}), 'address => a contract id: exactly that contract\'s events');
for my $case ([ q{event => 'event Transfer(address indexed from, address indexed to, uint256 value)'}, qr/follows Stellar ledgers: an event signature \(Solidity ABI\) does not apply/ ],
	[ q{address => '\x00112233445566778899aabbccddeeff00112233'}, qr/address of a Stellar pipeline must be a 32-byte contract id, got 20 bytes/ ],
	[ q{topic0 => '\x0000000f00000008'}, qr/invalid ScVal: at byte 4: symbol of 8 bytes, only 0 left/ ])
{
	my ($arg, $re) = @$case;
	my ($ret, $o, $e) = $node->psql('postgres', "SELECT ledger_ingest.add_handler('filtered', 'on_topic(ledger_ingest.event)', $arg)");
	like($e, $re, "add_handler on a Stellar pipeline refuses $arg");
}

# ---------------------------------------------------------------------
# d) the chain: 406 contiguous headers; a broken link; a conflicting ledger
# ---------------------------------------------------------------------
my ($first, $last) = split /\|/, q1('SELECT min(ledger), max(ledger) FROM hdr_docs');
is($last - $first + 1, 406, '406 contiguous headers');
my $break = $first + 25;
q1(qq{
	-- ledger $break with its previousLedgerHash changed (and its hash
	-- recomputed, so that the document is consistent in itself)
	CREATE TABLE forged AS
	SELECT doc || jsonb_build_object('headerXdr', replace(encode(h, 'base64'), E'\\n', ''), 'hash', encode(sha256(h), 'hex')) AS doc
	FROM (SELECT doc, set_byte(decode(doc->>'headerXdr', 'base64'), 10, get_byte(decode(doc->>'headerXdr', 'base64'), 10) # 1) AS h
		  FROM hdr_docs WHERE ledger = $break) s;
	SELECT ledger_ingest.create_pipeline('chain', 'inbox', '{"chain": "stellar"}');
	SELECT ledger_ingest.add_handler('chain', 'see(ledger_ingest.event)');
	INSERT INTO ledger_ingest.inbox (pipeline, doc)
		SELECT 'chain', doc FROM hdr_docs WHERE ledger < $break UNION ALL
		SELECT 'chain', doc FROM forged UNION ALL
		SELECT 'chain', doc FROM hdr_docs WHERE ledger > $break;
	SELECT ledger_ingest.start('chain');
});
my $state = li_wait_state($node, 'chain', 'failed', 60);
my $err = q1(q{SELECT coalesce(string_agg(error, '; '), '') FROM ledger_ingest.inbox WHERE pipeline = 'chain' AND error IS NOT NULL});
li_case('bad inputs', 'a Stellar ledger that does not chain to the one before: the pipeline fails, naming it',
	$state eq 'failed' && $err =~ /Stellar ledger $break does not chain to ledger @{[$break - 1]}: its previousLedgerHash [0-9a-f]{64} is not that ledger's hash [0-9a-f]{64}; the Stellar network does not reorganize/
	  && q1(q{SELECT ledger FROM ledger_ingest.cursor WHERE pipeline = 'chain'}) == $break - 1) or diag("state $state: $err");
q1(qq{
	DELETE FROM ledger_ingest.inbox WHERE pipeline = 'chain' AND error IS NOT NULL;
	INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'chain', doc FROM hdr_docs WHERE ledger = $break;
	SELECT ledger_ingest.start('chain');
});
ok(li_wait($node, 'chain', $last, 120), 'the real ledger sent: the pipeline follows the chain to its end');
is(q1(q{
	SELECT count(*) FROM (SELECT number, parent_hash, lag(hash) OVER (ORDER BY number) AS before
		FROM ledger_ingest.ledger WHERE pipeline = 'chain') s WHERE before IS NOT NULL AND before <> parent_hash}),
	'0', 'all 406 stored, each previous hash the hash of the ledger before');
q1(qq{INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'chain', doc FROM forged});
$state = li_wait_state($node, 'chain', 'failed', 60);
$err = q1(q{SELECT coalesce(string_agg(error, '; '), '') FROM ledger_ingest.inbox WHERE pipeline = 'chain' AND error IS NOT NULL});
li_case('bad inputs', 'another Stellar ledger at an applied sequence: the pipeline fails, no reorg',
	$state eq 'failed' && $err =~ /Stellar ledger $break differs from the applied ledger $break \(another hash\); the Stellar network does not reorganize/
	  && q1(q{SELECT count(*) FROM ledger_ingest.ledger WHERE pipeline = 'chain'}) == 406) or diag("state $state: $err");

# ---------------------------------------------------------------------
# e) malformed documents
# ---------------------------------------------------------------------
my ($la, $lb, $lc) = @ledgers[0, 2, 3];
q1(qq{CREATE FUNCTION sdoc(n bigint) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT doc FROM docs WHERE ledger = n \$\$;
	CREATE FUNCTION ev0(n bigint, patch jsonb) RETURNS jsonb LANGUAGE sql AS
		\$\$ SELECT jsonb_set(sdoc(n), '{events,0}', (sdoc(n)->'events'->0) || patch) \$\$;});
my $g = 'GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ';
my @cases = (
	[ 'a hash that is not the header\'s', qq{sdoc($lb) || jsonb_build_object('hash', repeat('ab', 32))}, qr/field "hash" is not the SHA-256 of the header/ ],
	[ 'a hash of 31 bytes', qq{sdoc($lb) || jsonb_build_object('hash', repeat('ab', 31))}, qr/field "hash" must be 64 hex digits/ ],
	[ 'a truncated header', qq{sdoc($lb) || jsonb_build_object('headerXdr', left(sdoc($lb)->>'headerXdr', 200))}, qr/field "headerXdr" is not a ledger header: at byte \d+: .* bytes needed/ ],
	[ 'a header that is not base64', qq{sdoc($lb) || '{"headerXdr": "not*base64"}'}, qr/field "headerXdr" is not base64/ ],
	[ 'a sequence that is not the header\'s', qq{sdoc($lb) || jsonb_build_object('sequence', $lb + 1)}, qr/field "sequence" is not the header's ledgerSeq $lb/ ],
	[ 'a close time that is not the header\'s', qq{sdoc($lb) || '{"ledgerCloseTime": "1"}'}, qr/field "ledgerCloseTime" is not the header's closeTime/ ],
	[ 'an event of another ledger', qq{ev0($lb, jsonb_build_object('id', ledger_ingest.stellar_event_id($lb + 1, 1, 0)))}, qr/field "events\[0\]\.id" is an event of ledger @{[$lb + 1]}, not of this ledger $lb/ ],
	[ 'events out of order', qq{jsonb_set(sdoc($lb), '{events}', jsonb_build_array(sdoc($lb)->'events'->1, sdoc($lb)->'events'->0))}, qr/field "events\[1\]\.id" does not follow the event before it/ ],
	[ 'not an event id', qq{ev0($lb, '{"id": "12-3"}')}, qr/field "events\[0\]\.id" is not an event id: an event id is 19 digits/ ],
	[ 'a transactionIndex that is not the id\'s', qq{ev0($lb, '{"transactionIndex": 9999}')}, qr/field "events\[0\]\.transactionIndex" is not the transaction of its id/ ],
	[ 'an operationIndex that is not the id\'s', qq{ev0($lb, '{"operationIndex": 7}')}, qr/field "events\[0\]\.operationIndex" is not the operation of its id/ ],
	[ 'an account as contractId', qq{ev0($lb, '{"contractId": "$g"}')}, qr/field "events\[0\]\.contractId" is a G strkey, not a contract \(C\)/ ],
	[ 'a contractId with a bad checksum', qq{ev0($lb, jsonb_build_object('contractId', left(sdoc($lb)->'events'->0->>'contractId', 55)
		|| CASE WHEN right(sdoc($lb)->'events'->0->>'contractId', 1) = 'A' THEN 'B' ELSE 'A' END))}, qr/field "events\[0\]\.contractId" is not a strkey: the strkey's checksum does not match/ ],
	[ 'a topic that is not one ScVal', qq{ev0($lb, '{"topic": ["AAAAAw=="]}')}, qr/field "events\[0\]\.topic\[0\]" is not one ScVal: at byte 4: u32: 4 bytes needed, 0 left/ ],
	[ 'five topics', qq{ev0($lb, '{"topic": ["AAAAAQ==", "AAAAAQ==", "AAAAAQ==", "AAAAAQ==", "AAAAAQ=="]}')}, qr/field "events\[0\]\.topic" has 5 topics, at most 4 are allowed/ ],
	[ 'a value with a trailing byte', qq{ev0($lb, '{"value": "AAAAAQA="}')}, qr/field "events\[0\]\.value" is not one ScVal: at byte 4: 1 bytes after the value/ ],
	[ 'a value that is not base64', qq{ev0($lb, '{"value": "%%%"}')}, qr/field "events\[0\]\.value" is not base64/ ],
	[ 'JSON-form XDR', qq{ev0($lb, '{"topicJson": [{"symbol": "transfer"}]}')}, qr/field "events\[0\]\.topicJson" is JSON-form XDR: ask getEvents for xdrFormat "base64"/ ],
	[ 'a transaction hash of 31 bytes', qq{ev0($lb, jsonb_build_object('txHash', repeat('ab', 31)))}, qr/field "events\[0\]\.txHash" must be 64 hex digits/ ],
	[ 'an event type that does not exist', qq{ev0($lb, '{"type": "log"}')}, qr/field "events\[0\]\.type" must be "contract", "system" or "diagnostic"/ ],
	[ 'an EVM document in a Stellar pipeline', qq{jsonb_build_object('number', $lb, 'hash', '0x' || repeat('ab', 32))},
		qr/an EVM ledger document \(it has no "headerXdr"\) in a pipeline of Stellar ledgers/ ],
);
my $n = 0;
for my $case (@cases)
{
	my ($what, $doc, $re) = @$case;
	my $p = 'bad' . (++$n);
	q1(qq{
		SELECT ledger_ingest.create_pipeline('$p', 'inbox', '{"chain": "stellar"}');
		SELECT ledger_ingest.add_handler('$p', 'see(ledger_ingest.event)');
		INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('$p', sdoc($la)), ('$p', $doc), ('$p', sdoc($lc));
		SELECT ledger_ingest.start('$p');
	});
	my $state = li_wait_state($node, $p, 'failed', 60);
	my $err = q1(qq{SELECT coalesce(string_agg(error, '; '), '') FROM ledger_ingest.inbox WHERE pipeline = '$p' AND error IS NOT NULL});
	my $rejected = $state eq 'failed' && $err =~ $re;
	q1(qq{
		DELETE FROM ledger_ingest.inbox WHERE pipeline = '$p' AND error IS NOT NULL;
		SELECT ledger_ingest.start('$p');
	});
	my $kept = li_wait($node, $p, $lc, 60)
	  && q1(qq{SELECT count(DISTINCT ledger) || ' ' || count(*) FROM seen WHERE pipeline = '$p'})
		eq '2 ' . q1(qq{SELECT count(*) FROM raw WHERE ledger IN ($la, $lc)});
	li_case('bad inputs', "a Stellar document with $what: rejected naming the field, nothing lost", $rejected && $kept)
	  or diag("state $state: $err");
	q1("SELECT ledger_ingest.drop_pipeline('$p')");
}
# an event without a contract (contractId ""): a NULL address
q1(qq{
	CREATE TABLE raw2 (LIKE raw);
	SELECT ledger_ingest.create_pipeline('nocontract', 'inbox', '{"chain": "stellar"}');
	SELECT ledger_ingest.add_raw_sink('nocontract', 'raw2');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('nocontract', ev0($lc, '{"contractId": ""}'));
	SELECT ledger_ingest.start('nocontract');
});
ok(li_wait($node, 'nocontract', $lc, 60), 'a document with an event without a contract id: applied');
is(q1(qq{SELECT count(*) FILTER (WHERE address IS NULL) || ' ' || count(*) FROM raw2 WHERE ledger = $lc}),
	'1 ' . q1(qq{SELECT count(*) FROM raw WHERE ledger = $lc}), 'that event has a NULL address, the others their contract');

# a Stellar document in an EVM pipeline
q1(qq{
	SELECT ledger_ingest.create_pipeline('evm', 'inbox');
	INSERT INTO ledger_ingest.inbox (pipeline, doc) VALUES ('evm', sdoc($la));
	SELECT ledger_ingest.start('evm');
});
$state = li_wait_state($node, 'evm', 'failed', 60);
$err = q1(q{SELECT coalesce(string_agg(error, '; '), '') FROM ledger_ingest.inbox WHERE pipeline = 'evm' AND error IS NOT NULL});
li_case('bad inputs', 'a Stellar document in an EVM pipeline: rejected',
	$state eq 'failed' && $err =~ /a Stellar ledger document \(it has "headerXdr"\) in a pipeline of EVM ledgers/) or diag("state $state: $err");
my ($ret, $o, $e) = $node->psql('postgres', q{SELECT ledger_ingest.create_pipeline('x', 'evm_rpc', '{"url": "http://127.0.0.1:1", "chain": "stellar"}')});
like($e, qr/option "chain" is "stellar": source "evm_rpc" reads only EVM ledgers/, 'an evm_rpc pipeline cannot be a Stellar one');

done_testing();
