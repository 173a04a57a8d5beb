#!/usr/bin/env bash
# Fuzzes the ABI core (test/fuzz/abi_fuzz.c over src/abi_core.c and
# src/keccak.c) with libFuzzer, AddressSanitizer and UndefinedBehavior-
# Sanitizer for SECONDS (default 60), starting from the seeds of
# make_corpus.sh.  Builds and works in a fresh directory under /tmp, kept
# (with the crash input) on failure.  Exits non-zero on any crash, leak,
# timeout or sanitizer report.
#
# usage: run.sh [SECONDS]
set -uo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
CLANG=${CLANG:-clang-14}
work=$(mktemp -d /tmp/ledger_ingest-fuzz.XXXXXX)

"$CLANG" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Wall -Wextra -I"$root/src" \
	"$root/test/fuzz/abi_fuzz.c" "$root/src/abi_core.c" "$root/src/keccak.c" \
	-lnettle -o "$work/abi_fuzz" || { echo "fuzz: build failed (kept $work)" >&2; exit 1; }
bash "$root/test/fuzz/make_corpus.sh" "$work/seeds" || exit 1
mkdir -p "$work/corpus"

cd "$work" || exit 1
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	./abi_fuzz -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 corpus seeds > fuzz.log 2>&1
rc=$?
tail -n 15 fuzz.log
if [ $rc -ne 0 ] || grep -qE 'runtime error|ERROR: (Address|Leak|libFuzzer)|SUMMARY:' fuzz.log; then
	echo "fuzz: FAILED (exit $rc); log, crash inputs and corpus kept in $work" >&2
	exit 1
fi
echo "fuzz: ${secs}s without findings ($(ls corpus | wc -l) corpus inputs)"
rm -rf "$work"
exit 0
