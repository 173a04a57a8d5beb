#!/usr/bin/env bash
# Writes the seed corpus of test/fuzz/ledger_fuzz.c into DIR (created): one
# file per ledger document (one per line, without the newline) of the real
# mainnet data in $LEDGER_INGEST_DATA (default ../shared/data):
# evm/mainnet-blocks.ndjson (60 blocks with their complete logs) and
# evm/mainnet-headers-0-8191.ndjson (8,192 header-only ledgers); and each of
# the 60 blocks once more with its quantities (number, timestamp, and the
# logs' blockNumber, transactionIndex, logIndex) as JSON integers, the other
# encoding the parser accepts, which mutations of the hex seeds rarely reach;
# and each block's logs as the eth_getLogs response to request 1 that
# carries them (for the evm_rpc source's response reader, rpc_stream.c);
# and Stellar documents (see the end).
# The data never goes into the repository: DIR should be a temporary
# directory.
#
# usage: ledger_corpus.sh DIR
set -euo pipefail
dir=${1:?usage: ledger_corpus.sh DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
data=${LEDGER_INGEST_DATA:-$(cd "$root/.." && pwd)/shared/data}
mkdir -p "$dir"

total=0
for name in mainnet-blocks mainnet-headers-0-8191; do
	file="$data/evm/$name.ndjson"
	[ -f "$file" ] || { echo "ledger_corpus: missing $file" >&2; exit 1; }
	n=$(perl -MJSON::PP -e '
use strict;
use warnings;
my ($file, $dir, $name) = @ARGV;
my $n = 0;

sub out
{
	my ($path, $text) = @_;
	open(my $o, ">", $path) or die "$path: $!";
	binmode $o;
	print $o $text;
	close $o or die "$path: $!";
	$n++;
}

# "0x1b4" -> 436, a JSON number
sub int_q
{
	my ($h, $k) = @_;
	$h->{$k} = 0 + hex($h->{$k}) if defined $h->{$k} && $h->{$k} =~ /^0x[0-9a-f]{1,15}$/i;
}

my $i = 0;
open(my $fh, "<", $file) or die "$file: $!";
while (my $line = <$fh>)
{
	chomp $line;
	next if $line eq "";
	$i++;
	out(sprintf("%s/%s-%05d", $dir, $name, $i), $line);
	next unless $name eq "mainnet-blocks";
	my $doc = decode_json($line);
	int_q($doc, $_) for qw(number timestamp);
	for my $log (@{ $doc->{logs} || [] })
	{
		int_q($log, $_) for qw(blockNumber transactionIndex logIndex);
	}
	out(sprintf("%s/%s-response-%05d", $dir, $name, $i),
		JSON::PP->new->canonical->encode({ jsonrpc => "2.0", id => 1, result => $doc->{logs} || [] }));
	out(sprintf("%s/%s-intq-%05d", $dir, $name, $i), JSON::PP->new->canonical->encode($doc));
	# the first ten with "transactions" and "receipts" in their RPC shapes,
	# one per transaction that has logs (synthetic fields, real hashes)
	next if $i > 10;
	my $d = decode_json($line);
	my %seen;
	for my $log (@{ $d->{logs} || [] })
	{
		next if $seen{ $log->{transactionIndex} }++;
		push @{ $d->{transactions} }, { hash => $log->{transactionHash}, from => "0x" . ("11" x 20),
			to => $log->{address}, value => "0xde0b6b3a7640000", input => "0xa9059cbb" . ("00" x 64),
			nonce => "0x7", gas => "0x5208", transactionIndex => $log->{transactionIndex}, type => "0x2",
			gasPrice => "0x3b9aca00", maxFeePerGas => "0x77359400", maxPriorityFeePerGas => "0x1",
			blockNumber => $d->{number}, blockHash => $d->{hash} };
		push @{ $d->{receipts} }, { transactionHash => $log->{transactionHash},
			transactionIndex => $log->{transactionIndex}, blockHash => $d->{hash}, blockNumber => $d->{number},
			status => "0x1", gasUsed => "0x5208", effectiveGasPrice => "0x3b9aca00", contractAddress => undef };
	}
	out(sprintf("%s/%s-tx-%05d", $dir, $name, $i), JSON::PP->new->canonical->encode($d)) if $d->{transactions};
}
print "$n\n";
' "$file" "$dir" "$name")
	total=$((total + n))
done
echo "ledger_corpus: $total ledger documents from $data/evm" >&2

# Stellar documents: the five pubnet ledgers with their events and the first
# 20 of the 406 contiguous headers, as test/stellar/documents.mjs reads them
# from the replay server
work=$(mktemp -d)
node "$root/test/stellar/replay_server.mjs" --data "$data/stellar" --portfile "$work/port" > /dev/null &
replay=$!
trap 'kill $replay 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "ledger_corpus: the replay server did not start" >&2; exit 1; }
node "$root/test/stellar/documents.mjs" "http://127.0.0.1:$(cat "$work/port")" "$data/stellar" "$work" > /dev/null
n=$(perl -e '
	my ($dir, $docs, $headers) = @ARGV;
	my $n = 0;
	for my $f ($docs, $headers) {
		open(my $fh, "<", $f) or die "$f: $!";
		my $k = 0;
		while (my $line = <$fh>) {
			chomp $line;
			my (undef, $doc) = split /\t/, $line, 2;
			last if $f eq $headers && ++$k > 20;
			open(my $o, ">", sprintf("%s/stellar-%05d", $dir, ++$n)) or die $!;
			print $o $doc;
		}
	}
	print "$n\n";' "$dir" "$work/documents.tsv" "$work/headers.tsv")
echo "ledger_corpus: $n Stellar ledger documents from $data/stellar" >&2
