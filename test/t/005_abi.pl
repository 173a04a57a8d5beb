# Keccak-256 and Solidity ABI decoding (src/keccak.c, src/abi_core.c,
# src/abi.c), checked against foundry's cast:
#  a) keccak256 known vectors and lengths around the 136-byte rate;
#  b) every mainnet log of the common ERC-20/721, WETH and Uniswap V2/V3
#     events, decoded by decode_event and by cast, argument by argument;
#  c) round trips of generated values of every type through
#     cast abi-encode and abi_decode;
#  d) bad data and bad signatures: clear errors naming the argument.
use strict;
use warnings;
use IPC::Run;
use JSON::PP;
use Math::BigInt;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('abi');
# a UTF-8 database whatever the test locale
$node->safe_psql('postgres',
	q{CREATE DATABASE abi TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'});
$ENV{PGCLIENTENCODING} = 'UTF8';
$node->safe_psql('abi', 'CREATE EXTENSION ledger_ingest');

sub q1 { return scalar $node->safe_psql('abi', $_[0]) }

# Runs $sql expecting an error; returns "SQLSTATE: message" (VERBOSITY verbose).
sub sql_error
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('abi', "\\set VERBOSITY verbose\n$sql");
	return '' if $ret == 0;
	return $1 if $err =~ /ERROR:\s+(\w{5}: [^\n]*)/;
	return $err;
}

my $json = JSON::PP->new;

# JSON with integers kept exact: bare integers become strings before
# decoding (JSON::PP turns 20-digit numbers into floats).  Only for JSON
# whose strings hold no digits after a comma or bracket and a space.
sub decode_exact
{
	my ($text) = @_;
	$text =~ s/(?<=[\[,:\s])(-?\d+)(?=[\],}\s])/"$1"/g;
	return $json->decode($text);
}

# ---------------------------------------------------------------------
# a) Keccak-256
# ---------------------------------------------------------------------
is(q1(q{SELECT encode(ledger_ingest.keccak256(''), 'hex')}),
	'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
	'keccak256 of the empty string');
is(q1(q{SELECT encode(ledger_ingest.keccak256('Transfer(address,address,uint256)'), 'hex')}),
	'ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef',
	'keccak256 of the Transfer signature');
for my $len (1, 31, 32, 135, 136, 137, 271, 272, 273, 1000)
{
	my $hex = join('', map { sprintf('%02x', ($_ * 131 + $len) % 256) } 0 .. $len - 1);
	is(q1("SELECT '0x' || encode(ledger_ingest.keccak256('\\x$hex'), 'hex')"),
		cast('keccak', "0x$hex"), "keccak256 of $len bytes equals cast keccak");
}

# ---------------------------------------------------------------------
# signatures: canonical form and topic0 (against cast sig-event)
# ---------------------------------------------------------------------
my @sigs = (
	[ 'event Transfer(address indexed from, address indexed to, uint256 value);',
		'Transfer(address,address,uint256)' ],
	[ '  Swap ( address indexed sender , uint amount0In, uint amount1In, uint amount0Out, uint amount1Out, address indexed to )',
		'Swap(address,uint256,uint256,uint256,uint256,address)' ],
	[ 'event Deposit(address indexed dst, uint wad)', 'Deposit(address,uint256)' ],
	[ 'E(int, (uint a, string b)[] memory pairs, uint8[2][] m, tuple(bytes32,(bool,byte)[3])[] t) anonymous',
		'E(int256,(uint256,string)[],uint8[2][],(bytes32,(bool,bytes1)[3])[])' ],
	[ 'Paused()', 'Paused()' ],
);
for my $s (@sigs)
{
	my ($in, $canon) = @$s;
	is(q1("SELECT ledger_ingest.event_signature(\$s\$$in\$s\$)"), $canon,
		"event_signature: $canon");
	is(q1("SELECT '0x' || encode(ledger_ingest.event_topic(\$s\$$in\$s\$), 'hex')"),
		cast('keccak', $canon), "event_topic: keccak256('$canon')");
}
is(q1(q{SELECT '0x' || encode(ledger_ingest.event_topic('event Transfer(address indexed from, address indexed to, uint256 value)'), 'hex')}),
	cast('sig-event', 'event Transfer(address indexed from, address indexed to, uint256 value)'),
	'event_topic equals cast sig-event');

# ---------------------------------------------------------------------
# b) mainnet logs, decode_event against cast
# ---------------------------------------------------------------------
my @kinds = (
	[ 'ERC-20 Transfer', 3, 'event Transfer(address indexed from, address indexed to, uint256 value)' ],
	[ 'ERC-721 Transfer', 4, 'event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)' ],
	[ 'ERC-20 Approval', 3, 'event Approval(address indexed owner, address indexed spender, uint256 value)' ],
	[ 'ERC-721 Approval', 4, 'event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId)' ],
	[ 'ApprovalForAll', 3, 'event ApprovalForAll(address indexed owner, address indexed operator, bool approved)' ],
	[ 'WETH Deposit', 2, 'event Deposit(address indexed dst, uint wad)' ],
	[ 'WETH Withdrawal', 2, 'event Withdrawal(address indexed src, uint wad)' ],
	[ 'Uniswap V2 Swap', 3, 'event Swap(address indexed sender, uint amount0In, uint amount1In, uint amount0Out, uint amount1Out, address indexed to)' ],
	[ 'Uniswap V2 Sync', 1, 'event Sync(uint112 reserve0, uint112 reserve1)' ],
	[ 'Uniswap V2 Mint', 2, 'event Mint(address indexed sender, uint amount0, uint amount1)' ],
	[ 'Uniswap V2 Burn', 3, 'event Burn(address indexed sender, uint amount0, uint amount1, address indexed to)' ],
	[ 'Uniswap V3 Swap', 3, 'event Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)' ],
);

$node->safe_psql('abi', "CREATE TABLE nd (doc jsonb);
COPY nd FROM '" . li_data() . "/evm/mainnet-blocks.ndjson' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
CREATE TABLE logs AS
  SELECT row_number() OVER () AS id,
         (SELECT array_agg(decode(substr(t, 3), 'hex') ORDER BY o)
            FROM jsonb_array_elements_text(l->'topics') WITH ORDINALITY x(t, o)) AS topics,
         decode(substr(l->>'data', 3), 'hex') AS data
  FROM nd, jsonb_array_elements(doc->'logs') l;
CREATE TABLE kinds (kind int, name text, ntopics int, sig text);");
for my $i (0 .. $#kinds)
{
	my ($name, $nt, $sig) = @{ $kinds[$i] };
	$node->safe_psql('abi', "INSERT INTO kinds VALUES ($i, '$name', $nt, '$sig')");
}

# the parameters of a signature: [name, type, indexed]
sub params_of
{
	my ($sig) = @_;
	my ($name, $list) = $sig =~ /^event (\w+)\((.*)\)$/ or die $sig;
	my @p;
	for my $a (split /,\s*/, $list)
	{
		my @w = split ' ', $a;
		my $indexed = @w == 3 && $w[1] eq 'indexed';
		push @p, [ $w[-1], $w[0], $indexed ];
	}
	return ($name, @p);
}

# a decoded value as a comparable string
sub norm
{
	my ($v) = @_;
	return $v ? 'true' : 'false' if JSON::PP::is_bool($v);
	return lc("$v");
}

my $rows = $node->safe_psql('abi', q{
	SELECT k.kind, encode(l.data, 'hex'),
	       coalesce(array_to_string(ARRAY(SELECT encode(t, 'hex') FROM unnest(l.topics[2:]) t), ''), ''),
	       ledger_ingest.decode_event(k.sig, l.topics, l.data)::text
	FROM logs l JOIN kinds k
	  ON l.topics[1] = ledger_ingest.event_topic(k.sig) AND cardinality(l.topics) = k.ntopics
	ORDER BY l.id});
my (%compared, %mismatch);
for my $row (split /\n/, $rows)
{
	my ($kind, $data, $topics, $ours) = split /\|/, $row, 4;
	my ($evname, @params) = params_of($kinds[$kind][2]);
	my $got = decode_exact($ours);
	my @idx = grep { $_->[2] } @params;
	my @non = grep { !$_->[2] } @params;
	my %theirs;
	if (@non)
	{
		my $sig = "$evname(" . join(',', map { $_->[1] } @non) . ')';
		my $vals = decode_exact(cast('decode-event', '--json', '--sig', $sig, "0x$data"));
		@theirs{ map { $_->[0] } @non } = @$vals;
	}
	if (@idx)
	{
		my $sig = 'f()(' . join(',', map { $_->[1] } @idx) . ')';
		my $vals = decode_exact(cast('decode-abi', '--json', $sig, "0x$topics"));
		@theirs{ map { $_->[0] } @idx } = @$vals;
	}
	my $name = $kinds[$kind][0];
	$compared{$name}++;
	my $bad = 0;
	$bad++ if scalar(keys %$got) != scalar(@params);
	for my $p (@params)
	{
		next if defined $got->{ $p->[0] } && defined $theirs{ $p->[0] }
		  && norm($got->{ $p->[0] }) eq norm($theirs{ $p->[0] });
		$bad++;
		diag("$name $p->[0]: ours " . ($got->{ $p->[0] } // 'missing')
			  . ', cast ' . ($theirs{ $p->[0] } // 'missing'));
	}
	$mismatch{$name}++ if $bad;
}
my $total = 0;
for my $k (@kinds)
{
	my $name = $k->[0];
	ok(($compared{$name} // 0) > 0, "$name: logs present in the data");
	is($mismatch{$name} // 0, 0,
		"$name: " . ($compared{$name} // 0) . ' logs decoded identically by decode_event and cast');
	$total += $compared{$name} // 0;
}
note(join(', ', map { "$_->[0] $compared{$_->[0]}" } grep { $compared{ $_->[0] } } @kinds));
is($total, 1122, 'all 1122 mainnet logs of these events compared');
# ERC-20 Transfer's signature does not fit an ERC-721 Transfer log (4 topics)
like(sql_error(q{SELECT ledger_ingest.decode_event('Transfer(address indexed, address indexed, uint256)', topics, data)
	FROM logs WHERE cardinality(topics) = 4 AND topics[1] = ledger_ingest.event_topic('Transfer(address,address,uint256)')}),
	qr/^22P03: wrong number of topics for event Transfer\(address,address,uint256\): expected 3, got 4$/,
	'an ERC-721 Transfer does not decode as an ERC-20 Transfer');

# ---------------------------------------------------------------------
# c) round trips: cast abi-encode, then abi_decode
# ---------------------------------------------------------------------
srand(20240501);

my @strings = ('', 'a', "h\xc3\xa9llo w\xc3\xb6rld", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	"emoji \xf0\x9f\x98\x80", 'x' x 31, 'y' x 32, 'z' x 33, ('long ' x 30) . 'end', 'a,b c;d');

sub type_str
{
	my ($t) = @_;
	my $k = $t->[0];
	return "$k$t->[1]" if $k eq 'uint' || $k eq 'int';
	return "bytes$t->[1]" if $k eq 'bytesN';
	return type_str($t->[1]) . '[' . ($t->[2] // '') . ']' if $k eq 'array';
	return '(' . join(',', map { type_str($_) } @{ $t->[1] }) . ')' if $k eq 'tuple';
	return $k;
}

sub rand_hex { my ($n) = @_; return join('', map { sprintf('%02x', int(rand(256))) } 1 .. $n) }

sub rand_int
{
	my ($signed, $bits) = @_;
	my $max = Math::BigInt->new(2)->bpow($signed ? $bits - 1 : $bits)->bsub(1);
	my $min = $signed ? $max->copy->binc->bneg : Math::BigInt->new(0);
	my $r = int(rand(6));
	return $max->copy if $r == 0;
	return $min->copy if $r == 1;
	return Math::BigInt->new($signed ? -1 : 1) if $r == 2;
	return Math::BigInt->new(0) if $r == 3;
	my $v = Math::BigInt->from_hex('0x' . rand_hex($bits / 8));
	$v->bmod($max->copy->binc);
	$v->bneg if $signed && rand() < 0.5;
	return $v;
}

sub json_str
{
	my ($s) = @_;
	$s =~ s/([\\"])/\\$1/g;
	$s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord($1))/ge;
	return "\"$s\"";
}

# a random value of type $t: (cast argument, expected JSON)
sub gen
{
	my ($t, $top) = @_;
	my $k = $t->[0];
	if ($k eq 'uint' || $k eq 'int')
	{
		my $v = rand_int($k eq 'int', $t->[1]);
		return ("$v", "$v");
	}
	if ($k eq 'address')
	{
		my $h = rand_hex(20);
		return ("0x$h", "\"0x$h\"");
	}
	if ($k eq 'bool')
	{
		my $b = rand() < 0.5 ? 'true' : 'false';
		return ($b, $b);
	}
	if ($k eq 'bytesN')
	{
		my $h = rand_hex($t->[1]);
		return ("0x$h", "\"0x$h\"");
	}
	if ($k eq 'bytes')
	{
		my @lens = (0, 1, 31, 32, 33, 64, 100);
		my $h = rand_hex($lens[ int(rand(@lens)) ]);
		return ("0x$h", "\"0x$h\"");
	}
	if ($k eq 'string')
	{
		my $s = $strings[ int(rand(@strings)) ];
		# cast's parser takes quoted strings inside arrays and tuples
		return ($top ? $s : "\"$s\"", json_str($s));
	}
	if ($k eq 'array')
	{
		my $n = $t->[2] // int(rand(4));
		my (@c, @j);
		for (1 .. $n)
		{
			my ($c, $j) = gen($t->[1], 0);
			push @c, $c;
			push @j, $j;
		}
		return ('[' . join(',', @c) . ']', '[' . join(',', @j) . ']');
	}
	if ($k eq 'tuple')
	{
		my (@c, @j);
		for my $ct (@{ $t->[1] })
		{
			my ($c, $j) = gen($ct, 0);
			push @c, $c;
			push @j, $j;
		}
		return ('(' . join(',', @c) . ')', '[' . join(',', @j) . ']');
	}
	die "unknown type $k";
}

my $U = sub { [ 'uint', $_[0] ] };
my $I = sub { [ 'int', $_[0] ] };
my $A = sub { [ 'array', $_[0], $_[1] ] };
my $T = sub { [ 'tuple', [@_] ] };
my ($addr, $bool, $bytes, $str) = ([ 'address' ], [ 'bool' ], [ 'bytes' ], [ 'string' ]);
my @lists = (
	[ $U->(8), $I->(8), $U->(256), $I->(256), $I->(24), $U->(160), $U->(112), $I->(128) ],
	[ $addr, $bool, [ 'bytesN', 1 ], [ 'bytesN', 32 ], [ 'bytesN', 4 ], [ 'bytesN', 20 ] ],
	[ $bytes, $str, $bytes, $str ],
	[ $A->($U->(256)), $A->($str), $A->($bytes), $A->($addr) ],
	[ $A->($A->($U->(8), 2)), $A->($I->(16), 3), $A->($A->($A->($I->(64))), 2) ],
	[ $A->($T->($U->(256), $str)) ],
	[ $A->($T->($str, $A->($T->($bytes, $I->(16))), $bool), 2) ],
	[ $A->($T->($A->($T->($str, $str)), $U->(8))), $str ],
	[ $T->($U->(256), $T->($addr, $A->($str, 2))), [ 'bytesN', 32 ], $A->([ 'bytesN', 32 ]) ],
	[ $str, $A->($A->($A->($U->(256), 2), 2)), $A->($A->($str)) ],
);
my $rt = 0;
for my $list (@lists)
{
	my $types = join(',', map { type_str($_) } @$list);
	for my $sample (1 .. 5)
	{
		my (@args, @exp);
		for my $t (@$list)
		{
			my ($c, $j) = gen($t, 1);
			push @args, $c;
			push @exp, $j;
		}
		my $data = cast('abi-encode', "f($types)", @args);
		$data =~ s/^0x//;
		my $expected = '[' . join(',', @exp) . ']';
		my $res = q1("SELECT ledger_ingest.abi_decode('$types', '\\x$data') = \$e\$$expected\$e\$::jsonb");
		$rt++;
		is($res, 't', "round trip $types #$sample")
		  or diag("expected $expected\ngot "
			  . q1("SELECT ledger_ingest.abi_decode('$types', '\\x$data')"));
	}
}
note("$rt round trips");

# control characters and quotes in a top-level string; JSON types
{
	my $s = "quote \" backslash \\ tab \t newline \n bell \x07 \xc3\xa9";
	my $data = substr(cast('abi-encode', 'f(string,int8,uint256)', $s, '-128', '0'), 2);
	is(q1("SELECT ledger_ingest.abi_decode('string,int8,uint256', '\\x$data'::bytea)->>0"),
		$s, 'a string with quotes and control characters');
	is(q1("SELECT jsonb_typeof(x->1) || jsonb_typeof(x->2) FROM ledger_ingest.abi_decode('string,int8,uint256', '\\x$data'::bytea) x"),
		'numbernumber', 'integers are JSON numbers');
	$data = substr(cast('abi-encode', 'f((uint256,string)[])',
			'[(115792089237316195423570985008687907853269984665640564039457584007913129639935,"x")]'), 2);
	is(q1("SELECT ledger_ingest.abi_decode('(uint256 a, string b)[] pairs', '\\x$data'::bytea)::text"),
		'[[{"a": 115792089237316195423570985008687907853269984665640564039457584007913129639935, "b": "x"}]]',
		'tuples with named components are objects, numbers exact');
}

# events: indexed dynamic arguments are their topic hash; anonymous events
{
	my $hash = substr(cast('keccak', 'hello'), 2);
	my $topic0 = q1(q{SELECT encode(ledger_ingest.event_topic('E(string,uint8,bytes32)'), 'hex')});
	my $data = substr(cast('abi-encode', 'f(bytes32)', '0x' . ('ab' x 32)), 2);
	is(q1("SELECT ledger_ingest.decode_event('event E(string indexed s, uint8 indexed, bytes32 b)',
		ARRAY['\\x$topic0', '\\x$hash', '\\x" . ('00' x 31) . "ff']::bytea[], '\\x$data')::text"),
		qq({"b": "0x${\ ('ab' x 32)}", "s": "0x$hash", "arg1": 255}),
		'indexed string as its topic, unnamed argument as arg1');
	is(q1("SELECT ledger_ingest.decode_event('A(address indexed who, bool ok) anonymous',
		ARRAY['\\x" . ('00' x 12) . ('11' x 20) . "']::bytea[], '\\x" . ('00' x 31) . "01')::text"),
		'{"ok": true, "who": "0x' . ('11' x 20) . '"}', 'anonymous event: no topic0');
}

# ---------------------------------------------------------------------
# d) bad data and bad signatures
# ---------------------------------------------------------------------
sub w { my ($hex) = @_; return ('0' x (64 - length($hex))) . $hex }
my $z = w('');
my @bad = (
	[ 'uint256 value', '00' x 31, qr/^22P03: argument "value": data too short/ ],
	[ 'address a, uint256 value', w('1') . '00' x 16, qr/^22P03: argument "value": data too short/ ],
	[ 'string name', w('1000'), qr/^22P03: argument "name": offset 4096 at byte 0 points outside the data/ ],
	[ 'uint8 x, string name', w('1') . w('ffffffffffffffff'), qr/^22P03: argument "name": offset 18446744073709551615 at byte 32 points outside/ ],
	[ 'string name', w('1' . '0' x 40), qr/^22P03: argument "name": offset at byte 0 too large/ ],
	[ 'bytes blob', w('20') . w('1' . '0' x 16), qr/^22P03: argument "blob": length at byte 32 too large/ ],
	[ 'bytes blob', w('20') . w('8' . '0' x 15), qr/^22P03: argument "blob": length 9223372036854775808 at byte 32 exceeds the data/ ],
	[ 'uint256[] xs', w('20') . w('f' x 64), qr/^22P03: argument "xs": length at byte 32 too large/ ],
	[ 'uint256[] xs', w('20') . w('1' . '0' x 15) . $z, qr/^22P03: argument "xs": array length 1152921504606846976 at byte 32 exceeds the data/ ],
	[ 'bytes blob', w('20') . w('2') . 'abcd' . '00' x 29 . '01', qr/^22P03: argument "blob": non-zero padding after bytes contents/ ],
	[ 'string s', w('20') . w('2') . '6162', qr/^22P03: argument "s": data too short for the padding of string/ ],
	[ 'address owner', '01' . '00' x 31, qr/^22P03: argument "owner": non-zero high bytes in address/ ],
	[ 'bool flag', w('2'), qr/^22P03: argument "flag": invalid bool/ ],
	[ 'bool flag', '01' . '00' x 30 . '01', qr/^22P03: argument "flag": invalid bool/ ],
	[ 'uint8 small', w('100'), qr/^22P03: argument "small": value out of range for uint8/ ],
	[ 'int8 s', w('80'), qr/^22P03: argument "s": value out of range for int8 \(not sign-extended\)/ ],
	[ 'int8 s', 'ff' x 30 . '007f', qr/^22P03: argument "s": value out of range for int8/ ],
	[ 'bytes4 sel', 'a9059cbb01' . '00' x 27, qr/^22P03: argument "sel": non-zero padding after bytes4/ ],
	[ 'string name', w('20') . w('3') . '61ff62' . '00' x 29, qr/^22P03: argument "name": invalid UTF-8 in string at byte 1/ ],
	[ 'string name', w('20') . w('3') . 'eda080' . '00' x 29, qr/^22P03: argument "name": invalid UTF-8 in string at byte 0/ ],
	[ 'string name', w('20') . w('2') . 'c0af' . '00' x 30, qr/^22P03: argument "name": invalid UTF-8/ ],
	[ 'string name', w('20') . w('3') . '610062' . '00' x 29, qr/^22P03: argument "name": NUL byte in string at byte 1/ ],
	[ '(uint8 a, string b)[] pairs', w('20') . w('2') . w('40') . w('c0')
		  . w('1') . w('40') . w('1') . '61' . '00' x 31
		  . w('2') . w('40') . w('1') . 'ff' . '00' x 31,
		qr/^22P03: argument "pairs\[1\]\.b": invalid UTF-8 in string at byte 0/ ],
	[ 'uint8[2][] m', w('20') . w('1') . w('1') . w('1ff'), qr/^22P03: argument "m\[0\]\[1\]": value out of range for uint8/ ],
	[ 'uint256, (bool, bytes)', w('1') . w('40') . w('2') . w('40') . $z, qr/^22P03: argument "arg1\[0\]": invalid bool/ ],
);
for my $b (@bad)
{
	my ($types, $hex, $re) = @$b;
	like(sql_error("SELECT ledger_ingest.abi_decode('$types', '\\x$hex')"), $re,
		"bad data for '$types' rejected");
}

my $t0 = q1(q{SELECT encode(ledger_ingest.event_topic('Transfer(address,address,uint256)'), 'hex')});
my $addr_t = ('00' x 12) . ('22' x 20);
like(sql_error("SELECT ledger_ingest.decode_event('Transfer(address indexed from, address indexed to, uint256 value)',
	ARRAY['\\x$t0', '\\x" . ('01' x 32) . "', '\\x$addr_t']::bytea[], '\\x" . w('1') . "')"),
	qr/^22P03: argument "from" \(topic 1\): non-zero high bytes in address$/, 'bad topic names the argument and the topic');
like(sql_error("SELECT ledger_ingest.decode_event('Transfer(address indexed from, address indexed to, uint256 value)',
	ARRAY['\\x$t0', '\\x$addr_t', '\\x$addr_t']::bytea[], '\\x')"),
	qr/^22P03: argument "value": data too short/, 'Transfer without data');
like(sql_error("SELECT ledger_ingest.decode_event('Approval(address indexed, address indexed, uint256)',
	ARRAY['\\x$t0', '\\x$addr_t', '\\x$addr_t']::bytea[], '\\x" . w('1') . "')"),
	qr/^22P03: topic0 does not match event Approval\(address,address,uint256\)$/, 'topic0 must match');
like(sql_error("SELECT ledger_ingest.decode_event('Transfer(address indexed, address indexed, uint256)',
	ARRAY['\\x$t0', '\\x$addr_t', '\\x01']::bytea[], '\\x')"),
	qr/^22023: topic 3 is 1 bytes long, not 32$/, 'topics must be 32 bytes');
like(sql_error("SELECT ledger_ingest.decode_event('Transfer(address indexed, address indexed, uint256)',
	ARRAY['\\x$t0', NULL]::bytea[], '\\x')"),
	qr/^22004: topic 2 is NULL$/, 'topics must not be NULL');

my @badsig = (
	[ 'Transfer(uint7)', qr/invalid type "uint7"/ ],
	[ 'Transfer(address,address,uint256', qr/expected "," or "\)" at end of input/ ],
	[ '(uint256)', qr/expected an event name at position 1/ ],
	[ 'E(uint indexed a, uint indexed b, uint indexed c, uint indexed d)', qr/4 indexed arguments, at most 3 allowed/ ],
	[ 'E(fixed128x18)', qr/unknown type "fixed128x18"/ ],
	[ 'E(() x)', qr/empty tuple/ ],
	[ 'E(uint[0])', qr/fixed array of length 0/ ],
	[ 'E(uint a, bool a)', qr/duplicate argument name "a"/ ],
	[ 'E(uint' . ('[]' x 40) . ')', qr/types nested deeper than 32 levels/ ],
	[ 'E(' . ('(' x 40) . 'uint' . (')' x 40) . ')', qr/types nested deeper than 32 levels/ ],
	[ 'E(uint256[1073741824][2])', qr/static type larger than/ ],
);
for my $b (@badsig)
{
	my ($sig, $re) = @$b;
	like(sql_error("SELECT ledger_ingest.event_topic('$sig')"), qr/^22023: invalid signature: .*$re/,
		'bad signature rejected: ' . substr($sig, 0, 40));
}
like(sql_error(q{SELECT ledger_ingest.abi_decode('uint256,', '\x')}),
	qr/^22023: invalid signature: expected a type at end of input/, 'bad type list rejected');

# hostile nesting: offsets all pointing at the same tail stop at the output limit
{
	# uint256[][][][] with 200 elements per level sharing one tail: 200^4 numbers
	my $inner = w('c8') . ($z x 200);
	my $hex = w('20');
	for (1 .. 3) { $hex .= w('c8') . (w(sprintf('%x', 200 * 32)) x 200) }
	$hex .= $inner;
	like(sql_error("SELECT ledger_ingest.abi_decode('uint256[][][][] deep', '\\x$hex')"),
		qr/^54000: argument "deep\[\d+\]\[\d+\]\[\d+\]\[\d+\]": decoded value longer than 67108864 bytes/,
		'a decoding bomb stops at the output limit');
}

$node->stop;
done_testing();
