#!/usr/bin/env bash
# make bench: the benchmarks (not part of make test).
#   1. test/bench/run.sh: the ABI core's decode rate on the real Transfer logs;
#   2. test/bench/engine_bench.pl: apply rate with and without reorg
#      journaling, revert time, decoding inside the worker and from SQL;
#   3. test/bench/throughput_bench.pl: ledger_ingest next to COPY and next to
#      an external libpq client (test/bench/ext_client.c), commit modes,
#      notification latency, worker memory;
#   4. test/bench/rpc_bench.pl: an evm_rpc pipeline backfilling a dense
#      chain from anvil through the fault proxy adding 0, 20 and 100 ms
#      per request, next to the inbox path on the same blocks and next to
#      Ponder and Subsquid (test/bench/peers, installed here from its
#      lockfile), and the fetch filter of a pipeline with factories
#      (eth_getLogs by N addresses vs topic0 alone; the inbox with 10,000
#      children).
# BENCH_SECTIONS (default "abi engine throughput rpc") picks some of them,
# e.g. make bench BENCH_SECTIONS=rpc.
# As root: installs what is missing and the extension, then runs as
# "postgres" (initdb refuses root).  Results: markdown on stdout, JSON in
# $BENCH_OUT (default bench-engine.json in a fresh directory under /tmp).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export LEDGER_INGEST_DATA=${LEDGER_INGEST_DATA:-$(cd "$root/.." && pwd)/shared/data}

if [ "$(id -u)" = 0 ]; then
	bash "$root/test/install-deps.sh"
	# the indexers the evm_rpc section compares with (own lockfile)
	if [ ! -x "$root/test/bench/peers/node_modules/.bin/ponder" ]; then
		(cd "$root/test/bench/peers" && npm install --no-audit --no-fund --loglevel=error)
	fi
	make -C "$root" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
	out=$(mktemp -d /tmp/ledger_ingest-bench.XXXXXX)
	chown postgres: "$out"
	exec runuser -u postgres -- env LEDGER_INGEST_DATA="$LEDGER_INGEST_DATA" BENCH_DIR="$out" \
		PG_CONFIG="$PG_CONFIG" RUNS="${RUNS:-5}" BENCH_SECTIONS="${BENCH_SECTIONS:-}" bash "$0" "$@"
fi

out=${BENCH_DIR:-$(mktemp -d /tmp/ledger_ingest-bench.XXXXXX)}
bindir=$($PG_CONFIG --bindir)
pgxs=$(cd "$(dirname "$($PG_CONFIG --pgxs)")/../.." && pwd)
sections=" ${BENCH_SECTIONS:-abi engine throughput rpc} "
want() { [[ "$sections" == *" $1 "* ]]; }
cd "$out"
if want abi; then
echo "### ABI core (src/abi_core.c), median of 5 runs"
bash "$root/test/bench/run.sh"
fi
if want engine; then
env PATH="$bindir:$PATH" TESTDIR="$out" PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
	BENCH_OUT="${BENCH_OUT:-$out/bench-engine.json}" \
	perl -I "$pgxs/src/test/perl" "$root/test/bench/engine_bench.pl"
json=${BENCH_OUT:-$out/bench-engine.json}
cat "${json%.json}.md"
echo "raw numbers: $json"
fi
if want throughput; then
mkdir -p "$out/throughput"
env PATH="$bindir:$PATH" TESTDIR="$out/throughput" PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
	PG_CONFIG="$PG_CONFIG" LEDGER_INGEST_ROOT="$root" BENCH_OUT="$out/bench-throughput.json" \
	perl -I "$pgxs/src/test/perl" "$root/test/bench/throughput_bench.pl"
cat "$out/bench-throughput.md"
echo "raw numbers: $out/bench-throughput.json"
fi
if want rpc; then
mkdir -p "$out/rpc" "$out/peers"
# the peers' projects, writable (Ponder writes its build there)
cp -r "$root/test/bench/peers/package.json" "$root/test/bench/peers/ponder" "$root/test/bench/peers/squid" "$out/peers/"
ln -sfn "$root/test/bench/peers/node_modules" "$out/peers/node_modules"
env PATH="$bindir:$PATH" TESTDIR="$out/rpc" PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
	LEDGER_INGEST_ROOT="$root" BENCH_OUT="$out/bench-rpc.json" RPC_PEERS_DIR="$out/peers" \
	perl -I "$pgxs/src/test/perl" -I "$root/test/t" "$root/test/bench/rpc_bench.pl"
echo "### evm_rpc backfill (median of ${RUNS:-5} runs)"
cat "$out/bench-rpc.md"
echo "raw numbers: $out/bench-rpc.json"
fi
