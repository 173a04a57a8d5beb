# The Stellar RPC replay server (test/stellar/replay_server.mjs), which
# later Stellar tests fetch from, read through @stellar/stellar-sdk's
# rpc.Server (test/stellar/replay_check.mjs): the client parses every
# response, so the shapes are the real ones; and what it serves checked
# against the data and against ledger_ingest's own Stellar functions:
#  a) getHealth, getNetwork, getLatestLedger: the range of the five
#     LedgerCloseMeta files, pubnet's passphrase;
#  b) getLedgers by startLedger and by cursor: each ledger's hash is the
#     SHA-256 of its header (stellar_ledger_header), equal to the client's
#     parsed history entry, with its sequence, previous hash and close time;
#  c) getEvents, 100 per page by cursor over the whole range: the 3,373
#     events the data holds, ids strictly increasing, each id the position
#     stellar_event_position reads (ledger, transactionIndex,
#     operationIndex) and stellar_event_id writes back;
#  d) filters by contract id and by topic ("*", "**") give exactly the
#     matching events of the unfiltered stream;
#  e) stellar-rpc's error texts for a limit over 10,000 and a start outside
#     the range, as the client reports them.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use LiTest;

my $node = li_node('replay');
sub q1 { return scalar $node->safe_psql('postgres', $_[0]) }

my $url = li_stellar_replay();
my $out = "$PostgreSQL::Test::Utils::tmp_check/replay_check";
mkdir $out;
system('node', li_root() . '/test/stellar/replay_check.mjs', $url, $out) == 0
  or die 'replay_check.mjs failed';
my $r = decode_json(slurp_file("$out/report.json"));

# ---------------------------------------------------------------------
# a) health, network, latest ledger
# ---------------------------------------------------------------------
my @files = sort map { /ledger-(\d+)\.xdr\.gz$/ ? $1 : () } glob(li_data() . '/stellar/lcm/*.xdr.gz');
is(scalar(@files), 5, 'five LedgerCloseMeta files');
is("$r->{health}{status} $r->{health}{oldestLedger} $r->{health}{latestLedger}", "healthy $files[0] $files[-1]",
	'getHealth: healthy, from the oldest to the newest ledger of the data');
is($r->{network}{passphrase}, 'Public Global Stellar Network ; September 2015', "getNetwork: pubnet's passphrase");
is("$r->{latest}{sequence} $r->{latest}{ledgerSeq}", "$files[-1] $files[-1]",
	'getLatestLedger: the newest ledger, its headerXdr a LedgerHeader the client parses');

# ---------------------------------------------------------------------
# b) ledgers
# ---------------------------------------------------------------------
my @ledgers = @{ $r->{ledgers} };
is(join(',', map { $_->{sequence} } @ledgers), join(',', $files[0], @files[2 .. 4]),
	'getLedgers: the oldest by startLedger, the newest three by cursor, 2 per page');
is(join(',', @{ $r->{ledgerCursors} }), "$files[3],$files[4]", 'each page\'s cursor is its last ledger');
for my $l (@ledgers)
{
	my $h = q1(qq{SELECT sequence || ' ' || encode(hash, 'hex') || ' ' || encode(previous_ledger_hash, 'hex') || ' '
		|| extract(epoch FROM close_time)::bigint FROM ledger_ingest.stellar_ledger_header(decode('$l->{headerXdr}', 'hex'))});
	is($h, "$l->{sequence} $l->{hash} $l->{previousLedgerHash} $l->{ledgerCloseTime}",
		"ledger $l->{sequence}: its hash is the SHA-256 of its header, with its sequence, previous hash and close time");
	is($l->{entryHash}, $l->{hash}, "ledger $l->{sequence}: the client's parsed history entry has that hash");
}
is($r->{latest}{id}, $ledgers[-1]{hash}, 'getLatestLedger: its id is the newest ledger\'s hash');

# ---------------------------------------------------------------------
# c) events
# ---------------------------------------------------------------------
my @events = @{ $r->{events} };
is(scalar(@events), 3373, 'getEvents: the 3,373 events of the five ledgers (the data\'s count)');
ok($r->{pages} > 3373 / 100, "read by cursor in $r->{pages} pages of at most 100");
my $ordered = 1;
$ordered &&= $events[$_ - 1]{id} lt $events[$_]{id} for 1 .. $#events;
ok($ordered, 'ids strictly increasing: no event twice, none out of order');
my %per;
$per{ $_->{ledger} }++ for @events;
is(join(',', sort keys %per), join(',', @files), 'every ledger has events');
q1(qq{CREATE TABLE ev (id text, ledger bigint, tx int, op int);
	COPY ev FROM '$out/events.tsv'});
is(q1(q{SELECT count(*) FROM ev, ledger_ingest.stellar_event_position(id) p
	WHERE (p.ledger, p.tx_index, p.event_index >> 19) IS DISTINCT FROM (ev.ledger, ev.tx, ev.op)}),
	'0', 'each id is the position of its ledger, transactionIndex and operationIndex');
is(q1(q{SELECT count(*) FROM ev, ledger_ingest.stellar_event_position(id) p
	WHERE ledger_ingest.stellar_event_id(p.ledger, p.tx_index, p.event_index) <> id}),
	'0', 'and stellar_event_id writes each back');
is(q1(q{SELECT count(*) FROM (SELECT id, lag(p) OVER (ORDER BY id) AS before, p
	FROM ev, ledger_ingest.stellar_event_position(id) p) s WHERE before >= p}),
	'0', 'positions order as the ids do');

# ---------------------------------------------------------------------
# d) filters
# ---------------------------------------------------------------------
my $f = $r->{filtered};
my $transfer = q1(q{SELECT encode(ledger_ingest.scval_symbol('transfer'), 'base64')});
my %want = (
	byContract => [ map { $_->{id} } grep { $_->{contractId} eq $f->{contract} } @events ],
	transferTopic => [ map { $_->{id} } grep { ($_->{topic0} // '') eq $transfer } @events ],
	transferFour => [ map { $_->{id} } grep { ($_->{topic0} // '') eq $transfer && $_->{ntopics} == 4 && $_->{type} eq 'contract' } @events ]);
for my $k (sort keys %want)
{
	ok(@{ $want{$k} } > 100 && join(',', @{ $f->{$k} }) eq join(',', @{ $want{$k} }),
		"filter $k: the " . scalar(@{ $want{$k} }) . ' matching events of the unfiltered stream, in order');
}

# ---------------------------------------------------------------------
# e) errors
# ---------------------------------------------------------------------
is($r->{errors}{limit}, 'limit must not exceed 10000', 'a limit over 10,000: stellar-rpc\'s error');
is($r->{errors}{startLedger}, "startLedger must be within the ledger range: $files[0] - $files[-1]",
	'getEvents before the oldest ledger: stellar-rpc\'s error');
is($r->{errors}{ledgersStart},
	"start ledger must be between the oldest ledger: $files[0] and the latest ledger: $files[-1] for this rpc instance",
	'getLedgers before the oldest ledger: stellar-rpc\'s error');

done_testing();
