#!/usr/bin/env bash
# Writes the seed corpus of test/fuzz/ledger_fuzz.c into DIR (created): one
# file per ledger document (one per line, without the newline) of the real
# mainnet data in $LEDGER_INGEST_DATA (default ../shared/data):
# evm/mainnet-blocks.ndjson (60 blocks with their complete logs) and
# evm/mainnet-headers-0-8191.ndjson (8,192 header-only ledgers).  The data
# never goes into the repository: DIR should be a temporary directory.
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
	n=$(perl -e '
use strict;
use warnings;
my ($file, $dir, $name) = @ARGV;
my $n = 0;
open(my $fh, "<", $file) or die "$file: $!";
while (my $line = <$fh>)
{
	chomp $line;
	next if $line eq "";
	$n++;
	open(my $o, ">", sprintf("%s/%s-%05d", $dir, $name, $n)) or die "$dir: $!";
	binmode $o;
	print $o $line;
	close $o or die "$dir: $!";
}
print "$n\n";
' "$file" "$dir" "$name")
	total=$((total + n))
done
echo "ledger_corpus: $total ledger documents from $data/evm" >&2
