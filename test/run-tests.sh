#!/usr/bin/env bash
# The whole ledger_ingest test suite: PGXS's installcheck targets --
# pg_regress (sql/, expected/), isolation (test/isolation/) and TAP
# (test/t/) -- each on its own throwaway cluster, then the fuzzers.
#
# Run as root (CI): installs what is missing (test/install-deps.sh), builds
# and installs the extension, then runs the suites as the unprivileged
# "postgres" user (initdb refuses root).  Run as another user: the extension
# must already be installed (make install).
#
# The real ledger data is read from ../shared/data (LEDGER_INGEST_DATA).
# Output goes to a fresh directory under /tmp (kept on failure).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export LEDGER_INGEST_DATA=${LEDGER_INGEST_DATA:-$(cd "$root/.." && pwd)/shared/data}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

if [ "$(id -u)" = 0 ]; then
	bash "$root/test/install-deps.sh" || exit 1
	make -C "$root" -s PG_CONFIG="$PG_CONFIG" install >/dev/null || exit 1
	# test-only probes of the backend (TAP tests only, never packaged)
	make -C "$root/test/modules/li_probe" -s PG_CONFIG="$PG_CONFIG" install >/dev/null || exit 1
	out=$(mktemp -d /tmp/ledger_ingest-test.XXXXXX)
	chown postgres: "$out"
	# the suites run as "postgres": it must reach the project and the data
	# (a checkout under a private directory, e.g. mktemp -d, is not)
	for path in "$root/test/chain.sh" "$LEDGER_INGEST_DATA/evm/mainnet-blocks.ndjson"; do
		dir=$(dirname "$path")
		while ! runuser -u postgres -- test -r "$path" && [ "$dir" != / ]; do
			echo "run-tests: letting postgres traverse $dir" >&2
			chmod o+rx "$dir"
			dir=$(dirname "$dir")
		done
	done
	exec runuser -u postgres -- env LEDGER_INGEST_DATA="$LEDGER_INGEST_DATA" \
		LEDGER_INGEST_OUT="$out" PG_CONFIG="$PG_CONFIG" bash "$0" "$@"
fi

out=${LEDGER_INGEST_OUT:-$(mktemp -d /tmp/ledger_ingest-test.XXXXXX)}
bindir=$($PG_CONFIG --bindir)
export PATH="$bindir:$PATH"
cd "$out" || exit 1
echo "ledger_ingest tests: output in $out, data in $LEDGER_INGEST_DATA"
[ -f "$LEDGER_INGEST_DATA/evm/mainnet-blocks.ndjson" ] || {
	echo "missing test data: $LEDGER_INGEST_DATA/evm/mainnet-blocks.ndjson" >&2; exit 1; }

passed=0
failed=0
suite() {
	local name=$1; shift
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "=== $name FAILED"
	fi
}

# PGXS's installcheck targets (Makefile: REGRESS, ISOLATION, TAP_TESTS),
# run from $out (make -f: a VPATH run, so every output lands there), each
# suite on its own: pg_regress and the isolation specs on a throwaway
# instance with the library preloaded, the TAP tests on their own clusters
pgxs() { make -s -f "$root/Makefile" -C "$out" PG_CONFIG="$PG_CONFIG" installcheck "$@"; }
temp="--temp-instance=$out/tmp_instance --temp-config=$root/test/regress.conf"
suite pg_regress pgxs ISOLATION= TAP_TESTS= EXTRA_REGRESS_OPTS="$temp --port=58432"
suite isolation pgxs REGRESS= TAP_TESTS= EXTRA_REGRESS_OPTS="$temp --port=58433"
report="$out/families.tsv"
: >"$report"
export LEDGER_INGEST_ROOT="$root" LEDGER_INGEST_REPORT="$report"
suite tap pgxs REGRESS= ISOLATION= PROVE_FLAGS=-v

# libFuzzer + ASan/UBSan over the ABI decoder, seeded with the real logs
suite fuzz bash "$root/test/fuzz/run.sh" "${LEDGER_INGEST_FUZZ_SECONDS:-60}"
# the same over the ledger-document parser, inside a single-user backend,
# seeded with the real mainnet ledgers
suite fuzz-ledger bash "$root/test/fuzz/run-ledger.sh" "${LEDGER_INGEST_FUZZ_SECONDS:-60}"
# the same over the Stellar ScVal decoder and strkeys, seeded with the real
# pubnet events
suite fuzz-scval bash "$root/test/fuzz/run-scval.sh" "${LEDGER_INGEST_FUZZ_SECONDS:-60}"

for f in "$out"/regression.diffs "$out"/output_iso/regression.diffs; do
	[ -s "$f" ] && { echo "--- $f"; head -200 "$f"; }
done
# the hardening matrix, one line per family (cases recorded by li_case)
for family in "faults injected" "crash points" "bad inputs" "security cases" "operations" "reorg restores"; do
	awk -F'\t' -v f="$family" '$1 == f { n++; if ($2 == "passed") p++ }
		END { printf "ledger_ingest %s: %d tried, %d passed\n", f, n, p }' "$report"
done
echo "ledger_ingest: $passed passed, $failed failed"
[ "$failed" = 0 ]
