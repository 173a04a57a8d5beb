# Stellar ScVal decoding and strkeys (src/scval_core.c, src/scval.c),
# checked against independent decoders (test/stellar/scval_cases.mjs):
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
#     events' topics hold.
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

my $cases = "$PostgreSQL::Test::Utils::tmp_check/scval_cases";
mkdir $cases;
system('node', li_root() . '/test/stellar/scval_cases.mjs', li_data() . '/stellar', $cases) == 0
  or die 'scval_cases.mjs failed';

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

done_testing();
