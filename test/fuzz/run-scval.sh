#!/usr/bin/env bash
# Fuzzes the Stellar decoders (test/fuzz/scval_fuzz.c over
# src/scval_core.c and src/stellar_core.c: ScVal, strkeys, ledger headers,
# event ids) with libFuzzer, AddressSanitizer and UndefinedBehavior-
# Sanitizer for SECONDS (default 60), starting from every value of
# test/stellar/cases.mjs (the real pubnet events of
# $LEDGER_INGEST_DATA/stellar, the generated arms, the malformed values),
# its strkeys, its ledger headers and TOIDs as event ids.  Builds and works in a fresh directory under /tmp, kept
# (with the crash input) on failure.  Exits non-zero on any crash, leak,
# timeout or sanitizer report.
#
# usage: run-scval.sh [SECONDS]
set -uo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
data=${LEDGER_INGEST_DATA:-$(cd "$root/.." && pwd)/shared/data}
CLANG=${CLANG:-clang-14}
work=$(mktemp -d /tmp/ledger_ingest-fuzz-scval.XXXXXX)

"$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Wall -Wextra -I"$root/src" \
	"$root/test/fuzz/scval_fuzz.c" "$root/src/scval_core.c" "$root/src/stellar_core.c" \
	"$root/src/abi_core.c" "$root/src/keccak.c" \
	-lnettle -o "$work/scval_fuzz" || { echo "fuzz-scval: build failed (kept $work)" >&2; exit 1; }
mkdir -p "$work/cases" "$work/seeds" "$work/corpus"
node "$root/test/stellar/cases.mjs" "$data/stellar" "$work/cases" >/dev/null ||
	{ echo "fuzz-scval: cases.mjs failed (kept $work)" >&2; exit 1; }
# one seed per distinct value ('J' + XDR) and strkey ('S' + text)
perl -e '
	my ($dir, @files) = @ARGV;
	my (%seen, $n);
	for my $f (@files) {
		open(my $fh, "<", $f) or die "$f: $!";
		while (<$fh>) {
			chomp;
			my @c = split /\t/;
			my $seed = $f =~ /strkeys/ ? "S" . ($f =~ /bad_/ ? $c[0] : $c[2])
			  : $f =~ /headers/ ? "H" . pack("H*", $c[1])
			  : $f =~ /toids/ ? sprintf("I%019s-%010d", $c[2], $n % 7)
			  : "J" . pack("H*", $c[1]);
			next if $seen{$seed}++;
			open(my $o, ">", sprintf("%s/%05d", $dir, ++$n)) or die $!;
			print $o $seed;
		}
	}' "$work/seeds" "$work/cases/values.tsv" "$work/cases/malformed.tsv" \
	"$work/cases/strkeys.tsv" "$work/cases/bad_strkeys.tsv" "$work/cases/headers.tsv" \
	"$work/cases/toids.tsv" || exit 1

cd "$work" || exit 1
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	./scval_fuzz -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 corpus seeds > fuzz.log 2>&1
rc=$?
tail -n 15 fuzz.log
if [ $rc -ne 0 ] || grep -qE 'runtime error|ERROR: (Address|Leak|libFuzzer)|SUMMARY:' fuzz.log; then
	echo "fuzz-scval: FAILED (exit $rc); log, crash inputs and corpus kept in $work" >&2
	exit 1
fi
echo "fuzz-scval: ${secs}s without findings ($(ls corpus | wc -l) corpus inputs, $(ls seeds | wc -l) seeds)"
rm -rf "$work"
exit 0
