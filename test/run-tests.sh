#!/usr/bin/env bash
# The whole ledger_ingest test suite: pg_regress (sql/, expected/),
# isolation (test/isolation/) and TAP (test/t/).  Each suite runs its own
# throwaway cluster.
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
pgxs=$(cd "$(dirname "$($PG_CONFIG --pgxs)")/../.." && pwd)
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

regress_tests=$(cd "$root/sql" && ls *.sql | sed 's/\.sql$//' | sort)
suite pg_regress "$pgxs/src/test/regress/pg_regress" \
	--inputdir="$root" --outputdir="$out/regress" --bindir="$bindir" \
	--temp-instance="$out/regress/tmp" --temp-config="$root/test/regress.conf" \
	--port=58432 --use-existing --dbname=postgres $regress_tests

iso_tests=$(cd "$root/test/isolation/specs" && ls *.spec | sed 's/\.spec$//' | sort)
suite isolation "$pgxs/src/test/isolation/pg_isolation_regress" \
	--inputdir="$root/test/isolation" --outputdir="$out/isolation" --bindir="$bindir" \
	--temp-instance="$out/isolation/tmp" --temp-config="$root/test/regress.conf" \
	--port=58433 --use-existing --dbname=postgres $iso_tests

mkdir -p "$out/tap"
report="$out/tap/families.tsv"
: >"$report"
suite tap env TESTDIR="$out/tap" LEDGER_INGEST_ROOT="$root" LEDGER_INGEST_REPORT="$report" \
	PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
	prove -v -I "$pgxs/src/test/perl" -I "$root/test/t" $root/test/t/*.pl

# libFuzzer + ASan/UBSan over the ABI decoder, seeded with the real logs
suite fuzz bash "$root/test/fuzz/run.sh" "${LEDGER_INGEST_FUZZ_SECONDS:-60}"
# the same over the ledger-document parser, inside a single-user backend,
# seeded with the real mainnet ledgers
suite fuzz-ledger bash "$root/test/fuzz/run-ledger.sh" "${LEDGER_INGEST_FUZZ_SECONDS:-60}"

for f in "$out"/regress/regression.diffs "$out"/isolation/regression.diffs; do
	[ -s "$f" ] && { echo "--- $f"; head -200 "$f"; }
done
# the hardening matrix, one line per family (cases recorded by li_case)
for family in "faults injected" "crash points" "bad inputs" "security cases" "operations" "reorg restores"; do
	awk -F'\t' -v f="$family" '$1 == f { n++; if ($2 == "passed") p++ }
		END { printf "ledger_ingest %s: %d tried, %d passed\n", f, n, p }' "$report"
done
echo "ledger_ingest: $passed passed, $failed failed"
[ "$failed" = 0 ]
