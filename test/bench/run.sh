#!/usr/bin/env bash
# Decode rate of the ABI core on the real ERC-20 Transfer logs of
# $LEDGER_INGEST_DATA/evm/mainnet-blocks.ndjson (default ../shared/data):
# builds test/bench/abi_bench.c with -O2 in a temporary directory, runs
# DECODES (default 2,000,000) decodes 5 times on one core, prints the
# median.  Also prints the machine (nproc, CPU model).
#
# usage: run.sh [DECODES]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
data=${LEDGER_INGEST_DATA:-$(cd "$root/.." && pwd)/shared/data}
work=$(mktemp -d /tmp/ledger_ingest-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

${CC:-gcc} -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -I"$root/src" \
	"$root/test/bench/abi_bench.c" "$root/src/abi_core.c" "$root/src/keccak.c" \
	-lnettle -o "$work/abi_bench"
perl -MJSON::PP -ne '
	for my $l (@{ decode_json($_)->{logs} }) {
		my $d = substr($l->{data}, 2);
		print join(" ", (map { substr($_, 2) } @{ $l->{topics} }), $d eq "" ? "-" : $d), "\n";
	}' "$data/evm/mainnet-blocks.ndjson" > "$work/logs.txt"
echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
"$work/abi_bench" 'event Transfer(address indexed from, address indexed to, uint256 value)' \
	"$work/logs.txt" "${1:-2000000}" 5
