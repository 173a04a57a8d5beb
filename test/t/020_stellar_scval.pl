# Stellar ScVal decoding and strkeys (src/scval_core.c, src/scval.c),
# checked against independent decoders (test/stellar/cases.mjs):
#  a) scval_to_json equals stellar-etl's decoded JSON on the 576 topics and
#     data of large_range_ledger_txs.golden, and @stellar/stellar-xdr-json on
#     every topic and data of the 3,373 events of the five pubnet
#     LedgerCloseMeta files and on values of every arm and its edges built
#     with @stellar/stellar-base;
#  b) scval_to_native equals stellar-base's scValToNative on the same values;
#  c) malformed values are refused with 22P03 and a message naming the
#     problem, the byte and the path;
#  d) strkey_encode and strkey_decode agree with stellar-base's StrKey on
#     every kind; bad strkeys are refused, naming the problem;
#  e) scval_symbol gives the XDR that stellar-base writes and that the pubnet
#     events' topics hold;
#  f) stellar_ledger_header reads the 406 contiguous golden headers as
#     stellar-etl did (hash = SHA-256, previous hashes chain) and the five
#     LedgerCloseMeta history entries as stellar-base does; a flipped byte
#     changes the hash, a tampered history entry and malformed headers are
#     refused;
#  g) stellar_event_id and stellar_event_position agree with stellar-etl's
#     TOIDs and invert each other.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('scval');
$node->safe_psql('postgres',
	q{CREATE DATABASE scval TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'});
$ENV{PGCLIENTENCODING} = 'UTF8';
$node->safe_psql('scval', 'CREATE EXTENSION ledger_ingest');
sub q1 { return scalar $node->safe_psql('scval', $_[0]) }

my $cases = "$PostgreSQL::Test::Utils::tmp_check/stellar_cases";
mkdir $cases;
system('node', li_root() . '/test/stellar/cases.mjs', li_data() . '/stellar', $cases) == 0
  or die 'cases.mjs failed';

# tab-separated, no quoting (JSON text keeps its backslashes)
my $copy = q{WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')};
q1(qq{
	CREATE TABLE v (label text, xdr text, tagged text, native text);
	COPY v FROM '$cases/values.tsv' $copy;
	CREATE TABLE bad (label text, xdr text, fragment text);
	COPY bad FROM '$cases/malformed.tsv' $copy;
	CREATE TABLE sk (kind text, payload text, strkey text);
	COPY sk FROM '$cases/strkeys.tsv' $copy;
	CREATE TABLE bad_sk (strkey text, fragment text);
	COPY bad_sk FROM '$cases/bad_strkeys.tsv' $copy;
	CREATE TABLE hdr (label text, xdr text, sequence bigint, hash text, previous text, close_time bigint, protocol int);
	COPY hdr FROM '$cases/headers.tsv' $copy;
	CREATE TABLE toid (ledger bigint, operation_id numeric, transaction_id numeric);
	COPY toid FROM '$cases/toids.tsv' WITH (FORMAT csv, DELIMITER E'\t');
});

# ---------------------------------------------------------------------
# a), b) every value, both forms
# ---------------------------------------------------------------------
my %n = map { split /\|/ } split /\n/, q1(q{SELECT split_part(label, '/', 1), count(*) FROM v GROUP BY 1});
is($n{golden}, 576, 'the 576 golden topics and data');
my $lcm_values = q1(q{SELECT count(*) FROM v WHERE label LIKE 'lcm/%'});
ok($lcm_values > 3373 * 2, "every topic and data of the LedgerCloseMeta events ($lcm_values values)");
ok($n{gen} >= 80, "values of every arm and its edges ($n{gen})");
is(q1(q{SELECT string_agg(t, ',' ORDER BY t) FROM (SELECT DISTINCT
	('x' || substr(xdr, 1, 8))::bit(32)::int::text AS t FROM v WHERE label LIKE 'gen/%') s}),
	join(',', sort { $a cmp $b } 0 .. 21), 'the generated values hold every SCValType (0 to 21)');

for my $form ([ 'scval_to_json', 'tagged', 'stellar-etl (golden) and stellar-xdr-json' ],
	[ 'scval_to_native', 'native', "stellar-base's scValToNative" ])
{
	my ($fn, $col, $oracle) = @$form;
	for my $set (qw(golden lcm gen))
	{
		my $diff = q1(qq{
			SELECT count(*) || coalesce(' ' || min(label || ': ' || left(got::text, 200) || ' <> ' || left(want, 200)), '')
			FROM (SELECT label, $col AS want, ledger_ingest.$fn(decode(xdr, 'hex')) AS got
				  FROM v WHERE label LIKE '$set/%') s
			WHERE got IS DISTINCT FROM want::jsonb});
		is($diff, '0', "$fn equals $oracle on every $set value");
	}
}

# the tagged form is lossless: the hex of bytes and every byte of a string
is(q1(q{SELECT ledger_ingest.scval_to_json(decode(xdr, 'hex')) ->> 'string' FROM v WHERE label = 'gen/string/4'}),
	'A\0B', 'a NUL inside a string is kept in the tagged form (escaped)');
is(q1(q{SELECT ledger_ingest.scval_to_native(decode(xdr, 'hex')) #>> '{}' FROM v WHERE label = 'gen/string/4'}),
	"A\xef\xbf\xbdB", 'and is U+FFFD in the native form');
is(q1(q{SELECT jsonb_typeof(ledger_ingest.scval_to_native(decode(xdr, 'hex'))) FROM v WHERE label = 'gen/u256/1'}),
	'number', 'u256 is a JSON number in the native form');
is(q1(q{SELECT ledger_ingest.scval_to_native(decode(xdr, 'hex'))::numeric = 2::numeric ^ 256 - 1 FROM v WHERE label = 'gen/u256/1'}),
	't', 'exactly 2^256 - 1');

# ---------------------------------------------------------------------
# c) malformed values
# ---------------------------------------------------------------------
my @bad = map { [ split /\t/ ] } split /\n/, q1(q{SELECT label, xdr, fragment FROM bad ORDER BY label});
ok(@bad >= 20, scalar(@bad) . ' malformed values');
for my $b (@bad)
{
	my ($label, $xdr, $fragment) = @$b;
	for my $fn (qw(scval_to_json scval_to_native))
	{
		my ($ret, $out, $err) = $node->psql('scval',
			"\\set VERBOSITY verbose\nSELECT ledger_ingest.$fn(decode('$xdr', 'hex'))");
		my ($got) = $err =~ /ERROR:\s+(\w{5}: [^\n]*)/;
		li_case('bad inputs', "$fn refuses a malformed ScVal ($label): $fragment",
			$ret != 0 && defined $got && $got =~ /^22P03: invalid ScVal: / && index($got, $fragment) >= 0)
		  or diag("got: " . ($got // $err));
	}
}

# ---------------------------------------------------------------------
# d) strkeys
# ---------------------------------------------------------------------
is(q1(q{SELECT count(*) FROM sk WHERE ledger_ingest.strkey_encode(kind, decode(payload, 'hex')) <> strkey}),
	'0', 'strkey_encode equals StrKey on ' . q1(q{SELECT count(*) FROM sk}) . ' keys of kinds '
	  . q1(q{SELECT string_agg(DISTINCT kind, '' ORDER BY kind) FROM sk}));
is(q1(q{SELECT count(*) FROM sk WHERE encode(ledger_ingest.strkey_decode(strkey), 'hex') <> payload}),
	'0', 'strkey_decode gives back every payload');
for my $b (map { [ split /\t/ ] } split /\n/, q1(q{SELECT strkey, fragment FROM bad_sk}))
{
	my ($key, $fragment) = @$b;
	my ($ret, $out, $err) = $node->psql('scval',
		"\\set VERBOSITY verbose\nSELECT ledger_ingest.strkey_decode('$key')");
	my ($got) = $err =~ /ERROR:\s+(\w{5}: [^\n]*)/;
	li_case('bad inputs', "strkey_decode refuses $key: $fragment",
		$ret != 0 && defined $got && $got =~ /^22P02: invalid strkey: / && index($got, $fragment) >= 0)
	  or diag("got: " . ($got // $err));
}
my ($ret, $out, $err) = $node->psql('scval', q{SELECT ledger_ingest.strkey_encode('G', '\x00')});
like($err, qr/a G strkey holds 32 bytes, not 1/, 'strkey_encode refuses a payload of the wrong length');
($ret, $out, $err) = $node->psql('scval', q{SELECT ledger_ingest.strkey_encode('S', '\x00')});
like($err, qr/unknown strkey kind "S"/, 'strkey_encode refuses secret seeds');

# ---------------------------------------------------------------------
# e) scval_symbol: the topics of the pubnet events
# ---------------------------------------------------------------------
is(q1(q{SELECT encode(ledger_ingest.scval_symbol('transfer'), 'hex')}),
	q1(q{SELECT xdr FROM v WHERE label = 'gen/symbol/1'}), "scval_symbol('transfer') is stellar-base's XDR");
is(q1(q{SELECT encode(ledger_ingest.scval_symbol(''), 'hex')}),
	q1(q{SELECT xdr FROM v WHERE label = 'gen/symbol/0'}), 'the empty symbol');
my $topics = q1(q{SELECT count(*) FROM v WHERE label LIKE 'lcm/%'
	AND decode(xdr, 'hex') = ledger_ingest.scval_symbol('transfer')});
my $decoded = q1(q{SELECT count(*) FROM v WHERE label LIKE 'lcm/%' AND tagged::jsonb = '{"symbol": "transfer"}'});
ok($topics > 100 && $topics == $decoded, "scval_symbol('transfer') matches the $decoded transfer topics of the pubnet events");
($ret, $out, $err) = $node->psql('scval', q{SELECT ledger_ingest.scval_symbol('no-dash')});
like($err, qr/character 3 of the symbol is not one of a-z, A-Z, 0-9 and _/, 'scval_symbol refuses a character outside the symbol alphabet');
($ret, $out, $err) = $node->psql('scval', q{SELECT ledger_ingest.scval_symbol(repeat('a', 33))});
like($err, qr/a symbol has at most 32 characters, not 33/, 'and a symbol longer than 32');

# ---------------------------------------------------------------------
# f) ledger headers
# ---------------------------------------------------------------------
is(q1(q{SELECT count(*) FILTER (WHERE label LIKE 'golden/%') || ' ' || count(*) FILTER (WHERE label LIKE 'lcm/%') FROM hdr}),
	'406 5', 'the 406 golden headers and the 5 LedgerCloseMeta history entries');
for my $set ([ 'golden', "stellar-etl's fields" ], [ 'lcm', "stellar-base's fields" ])
{
	my ($prefix, $oracle) = @$set;
	is(q1(qq{
		SELECT count(*) || coalesce(' ' || min(label), '')
		FROM hdr, ledger_ingest.stellar_ledger_header(decode(xdr, 'hex')) h
		WHERE label LIKE '$prefix/%'
		  AND (h.sequence, encode(h.hash, 'hex'), encode(h.previous_ledger_hash, 'hex'),
			   extract(epoch FROM h.close_time)::bigint, h.protocol_version)
			IS DISTINCT FROM (hdr.sequence, hdr.hash, hdr.previous, hdr.close_time, hdr.protocol)}),
		'0', "stellar_ledger_header equals $oracle on every $prefix header");
}
is(q1(q{
	SELECT count(*) FROM (
		SELECT h.sequence, h.previous_ledger_hash,
			   lag(h.hash) OVER (ORDER BY h.sequence) AS before, lag(h.sequence) OVER (ORDER BY h.sequence) AS seq_before
		FROM hdr, ledger_ingest.stellar_ledger_header(decode(xdr, 'hex')) h WHERE label LIKE 'golden/%') c
	WHERE seq_before IS NOT NULL AND (seq_before <> sequence - 1 OR before <> previous_ledger_hash)}),
	'0', 'the 406 golden headers chain: each previousLedgerHash is the hash computed for the ledger before');
# a bit flipped in the close time: a different hash
is(q1(q{
	SELECT count(*) FROM hdr, LATERAL (SELECT decode(xdr, 'hex') AS x) d,
		LATERAL (SELECT set_byte(d.x, 75, get_byte(d.x, 75) # 1) AS y) f
	WHERE label LIKE 'golden/%'
	  AND (ledger_ingest.stellar_ledger_header(f.y)).hash = (ledger_ingest.stellar_ledger_header(d.x)).hash}),
	'0', 'a bit flipped in the close time of any golden header changes its hash');
sub header_error
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('scval', "\\set VERBOSITY verbose\n$sql");
	my ($got) = $err =~ /ERROR:\s+(\w{5}: [^\n]*)/;
	return $got // $err;
}
my $entry = q1(q{SELECT xdr FROM hdr WHERE label LIKE 'lcm/%' ORDER BY label LIMIT 1});
my $flipped = substr($entry, 0, 200) . (substr($entry, 200, 1) eq '0' ? '1' : '0') . substr($entry, 201);
for my $case (
	[ 'a history entry whose hash is not its header\'s', $flipped, "the history entry's hash is not the SHA-256 of its header" ],
	[ 'a truncated header', substr($entry, 0, 400), 'bytes needed' ],
	[ 'a header with a byte after it', q1(q{SELECT xdr FROM hdr WHERE label LIKE 'golden/%' LIMIT 1}) . '00', 'bytes after the header' ],
	[ 'an unknown scpValue.ext', q1(q{SELECT overlay(xdr placing '00000007' from 1 + 2 * (4 + 32 + 32 + 8 + 4) for 8) FROM hdr WHERE label = 'golden/52929555'}),
		'scpValue.ext 7 is not one a header has' ])
{
	my ($name, $hex, $fragment) = @$case;
	my $got = header_error("SELECT ledger_ingest.stellar_ledger_header(decode('$hex', 'hex'))");
	li_case('bad inputs', "stellar_ledger_header refuses $name",
		$got =~ /^22P03: invalid Stellar ledger header: / && index($got, $fragment) >= 0) or diag("got: $got");
}

# ---------------------------------------------------------------------
# g) event ids
# ---------------------------------------------------------------------
is(q1(q{
	SELECT count(*) FROM toid, LATERAL ledger_ingest.stellar_event_position(lpad(transaction_id::text, 19, '0') || '-0000000003') p
	WHERE (p.ledger, p.tx_index, p.event_index) IS DISTINCT FROM
		  (toid.ledger, ((transaction_id - toid.ledger * 4294967296) / 4096)::int, 3)}),
	'0', 'stellar_event_position reads stellar-etl\'s TOIDs of ' . q1(q{SELECT count(*) FROM toid}) . ' events: their ledger and transaction');
is(q1(q{
	SELECT count(*) FROM toid
	WHERE ledger_ingest.stellar_event_id(ledger, ((transaction_id - ledger * 4294967296) / 4096)::int, 7)
		<> lpad(transaction_id::text, 19, '0') || '-0000000007'}),
	'0', 'stellar_event_id writes them back');
is(q1(q{SELECT ledger_ingest.stellar_event_id(63092996, 3, (1 << 19) | 0)}), '0270982354426671105-0000000000',
	'the id of ledger 63,092,996, transaction 3, operation 1, event 0');
is(q1(q{SELECT (p).tx_index || ' ' || (p).event_index FROM (SELECT ledger_ingest.stellar_event_position(
		ledger_ingest.stellar_event_id(5, 1048575, (4095 << 19) | 524287)) AS p) s}), '1048575 2147483647',
	'the largest transaction, operation and index round-trip');
for my $case ([ '0270982354426671105-000000000', 'an event id is 19 digits' ],
	[ '9999999999999999999-0000000000', "TOID is over 2^63 - 1" ],
	[ '0270982354426671105-0000524288', 'index is over 2^19 - 1' ],
	[ '027098235442667110x-0000000000', 'an event id is 19 digits' ])
{
	my ($id, $fragment) = @$case;
	my $got = header_error("SELECT ledger_ingest.stellar_event_position('$id')");
	li_case('bad inputs', "stellar_event_position refuses $id",
		$got =~ /^22P02: invalid Stellar event id / && index($got, $fragment) >= 0) or diag("got: $got");
}

done_testing();
