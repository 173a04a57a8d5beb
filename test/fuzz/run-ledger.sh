#!/usr/bin/env bash
# Fuzzes the ledger-document parser (li_parse_ledger in src/ledger.c, fed
# through jsonb_in as the inbox does) with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer for SECONDS (default 60), starting from the real
# mainnet ledgers written by ledger_corpus.sh.  See ledger_fuzz.c for the
# design: the parser needs the backend, so the target is a test-only module
# (ledger_fuzz.c + src/ledger.c + src/ledger_tx.c + src/packed.c + src/rpc_stream.c + the
# Stellar parser src/ledger_stellar.c and its cores +
# libFuzzer without main), which also checks that every accepted ledger
# packs and reads back the same (the inbox's packed column) and that the
# evm_rpc source's eth_getLogs reader (rpc_stream.c) reads every input as
# jsonb_in does, and whose SQL function
# runs libFuzzer inside a single-user backend of a throwaway cluster.
#
# Builds and works in a fresh directory under /tmp, kept (with the log and
# any crash input) on failure.  Exits non-zero on any crash, sanitizer
# report, timeout, finding of the harness's checks, or setup failure.
# As root, builds as root and runs initdb and postgres as "postgres".
#
# usage: run-ledger.sh [SECONDS]
#        run-ledger.sh INPUT...    run the given inputs once (e.g. a crash-*
#                                  file), to reproduce a finding
#
# LEDGER_FUZZ_FLAGS: more libFuzzer flags, e.g. "-seed=1 -jobs=1".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
CLANG=${CLANG:-clang-14}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

secs=60
inputs=()
if [ $# -eq 1 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	secs=$1
elif [ $# -gt 0 ]; then
	for f in "$@"; do
		[ -f "$f" ] || { echo "usage: run-ledger.sh [SECONDS] | INPUT..." >&2; exit 2; }
		inputs+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
	done
fi

fail() { echo "fuzz-ledger: FAILED: $*" >&2; exit 1; }

bindir=$("$PG_CONFIG" --bindir) || fail "no pg_config at $PG_CONFIG"
incdir=$("$PG_CONFIG" --includedir-server) || fail "pg_config --includedir-server"
asan_rt=$("$CLANG" -print-file-name=libclang_rt.asan-x86_64.so)
fuzzer_rt=$("$CLANG" -print-file-name=libclang_rt.fuzzer_no_main-x86_64.a)
if [ ! -f "$asan_rt" ] || [ ! -f "$fuzzer_rt" ]; then
	fail "$CLANG has no ASan/libFuzzer runtime (libclang-rt-14-dev)"
fi
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)

work=$(mktemp -d /tmp/ledger_ingest-fuzz-ledger.XXXXXX) || fail "mktemp"
fail() { echo "fuzz-ledger: FAILED: $*; kept $work" >&2; exit 1; }
cd "$work" || fail "cd $work"

# -- build -----------------------------------------------------------------
# Not -fwrapv (PostgreSQL's own builds use it): signed overflow in the parser
# is then reported by UBSan.  -Wno-ignored-attributes: the server headers are
# configured for gcc (format(gnu_printf)).
# shellcheck disable=SC2054
cflags=(-g -O1 -fno-omit-frame-pointer -fPIC -fno-strict-aliasing
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
	-Wall -Wextra -Wno-unused-parameter -Wno-ignored-attributes -Werror
	-D_GNU_SOURCE -I"$root/src" -I"$incdir")
# -Bsymbolic: the sanitizer-coverage callbacks bind to this module's
# libFuzzer, not to the ASan runtime's weak no-op versions
if ! { "$CLANG" "${cflags[@]}" -c "$root/test/fuzz/ledger_fuzz.c" -o ledger_fuzz.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/ledger.c" -o ledger.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/packed.c" -o packed.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/ledger_tx.c" -o ledger_tx.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/rpc_stream.c" -o rpc_stream.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/ledger_stellar.c" -o ledger_stellar.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/scval_core.c" -o scval_core.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/stellar_core.c" -o stellar_core.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/abi_core.c" -o abi_core.o &&
	"$CLANG" "${cflags[@]}" -c "$root/src/keccak.c" -o keccak.o &&
	"$CLANG" -shared -Wl,-Bsymbolic -o ledger_fuzz.so ledger_fuzz.o ledger.o ledger_tx.o packed.o rpc_stream.o \
		ledger_stellar.o scval_core.o stellar_core.o abi_core.o keccak.o \
		"$fuzzer_rt" -lnettle -lstdc++ -lm -lpthread; } > build.log 2>&1; then
	cat build.log >&2
	fail "build"
fi

# The postgres binary is not instrumented, so the ASan runtime comes in by
# LD_PRELOAD and, unlike in an instrumented executable, would initialize
# lazily on the first malloc(): that is in a library constructor running
# bindtextdomain() (libgpg-error's), under a glibc lock that ASan's init then
# corrupts through dlerror(), and postgres hangs at startup.  This shim,
# marked -z initfirst, runs __asan_init() before any other constructor.
cat > asan_init_first.c <<'EOF'
extern void __asan_init(void);
__attribute__((constructor)) static void
asan_init_first(void)
{
	__asan_init();
}
EOF
if ! "$CLANG" -shared -fPIC -Wl,-z,initfirst -o asan_init_first.so asan_init_first.c >> build.log 2>&1; then
	cat build.log >&2
	fail "build of the ASan init shim"
fi

# -- seeds and dictionary --------------------------------------------------
mkdir -p corpus
if [ ${#inputs[@]} -eq 0 ]; then
	bash "$root/test/fuzz/ledger_corpus.sh" "$work/seeds" || fail "seed corpus"
else
	# copies, which the server's user can read
	mkdir -p inputs
	for i in "${!inputs[@]}"; do
		cp "${inputs[$i]}" "inputs/$i-$(basename "${inputs[$i]}")" || fail "copy ${inputs[$i]}"
		inputs[i]="$work/inputs/$i-$(basename "${inputs[$i]}")"
	done
fi
cat > ledger.dict <<'EOF'
"\"number\""
"\"hash\""
"\"parentHash\""
"\"timestamp\""
"\"logs\""
"\"address\""
"\"topics\""
"\"data\""
"\"blockNumber\""
"\"blockHash\""
"\"transactionHash\""
"\"transactionIndex\""
"\"logIndex\""
"\"removed\""
"\"0x\""
"\"0x0\""
"\"0X\""
"0x"
"null"
"true"
"false"
"[]"
"{}"
"1e3"
".0"
"-1"
"\\u00e9"
"\\u0000"
"7fffffff"
"80000000"
"7fffffffffffffff"
"8000000000000000"
"10000000000"
EOF

# -- cluster and run -------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
	chown -R postgres: "$work" || fail "chown"
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi
as_pg "$bindir/initdb" -D "$work/pgdata" -E UTF8 --locale=C -A trust \
	--no-sync --no-instructions > initdb.log 2>&1 || { cat initdb.log >&2; fail "initdb"; }

args=("-timeout=10" "-rss_limit_mb=4096" "-detect_leaks=0" "-print_final_stats=1"
	"-artifact_prefix=$work/" "-dict=$work/ledger.dict")
if [ ${#inputs[@]} -eq 0 ]; then
	args+=("-max_total_time=$secs" "$work/corpus" "$work/seeds")
	limit=$((secs + 600))
else
	args+=("${inputs[@]}")
	limit=600
fi
# shellcheck disable=SC2206
args+=(${LEDGER_FUZZ_FLAGS:-})
{
	echo "CREATE FUNCTION ledger_fuzz_run(text[]) RETURNS int AS '$work/ledger_fuzz.so', 'ledger_fuzz_run' LANGUAGE C STRICT;"
	printf "SELECT ledger_fuzz_run(ARRAY["
	sep=
	for a in "${args[@]}"; do
		printf "%s\$a\$%s\$a\$" "$sep" "$a"
		sep=", "
	done
	echo "]);"
} > run.sql

# detect_leaks=0: the backend does not free everything at exit; a leak of the
# parser is memory of the per-input context, freed after every input anyway
start=$(date +%s)
as_pg timeout -k 10 "$limit" env \
	LD_PRELOAD="$asan_rt:$work/asan_init_first.so" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:handle_abort=0:symbolize=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:report_error_type=1 \
	${symbolizer:+ASAN_SYMBOLIZER_PATH="$symbolizer"} \
	"$bindir/postgres" --single -D "$work/pgdata" -c fsync=off \
	-c shared_buffers=16MB -c log_checkpoints=off postgres \
	< run.sql > fuzz.log 2>&1
rc=$?
elapsed=$(($(date +%s) - start))

counts=$(grep -m1 '^ledger_fuzz: [0-9]* inputs' fuzz.log)
# libFuzzer's last words: "Done N runs" after fuzzing, one "Executed" line
# per input otherwise
if [ ${#inputs[@]} -eq 0 ]; then
	finished=$(grep -c '^Done [0-9]* runs' fuzz.log)
else
	finished=$(($(grep -c '^Executed .* in [0-9]* ms' fuzz.log) == ${#inputs[@]}))
fi
if [ $rc -ne 0 ] || [ "$finished" != 1 ] || [ -z "$counts" ] ||
	grep -qE 'runtime error|ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|SUMMARY: |ledger_fuzz: FINDING|(ERROR|FATAL|PANIC):  ' fuzz.log; then
	# the report (sanitizer or libFuzzer, with its stack), without the
	# progress lines
	grep -vE '^#[0-9]+' fuzz.log | tail -n 60 >&2
	crashes=
	for f in "$work"/crash-* "$work"/timeout-* "$work"/oom-* "$work"/leak-*; do
		[ -f "$f" ] && crashes+="$f "
	done
	what=$(grep -m1 -E 'ledger_fuzz: FINDING|^SUMMARY: |(ERROR|FATAL|PANIC):  ' fuzz.log)
	echo "fuzz-ledger: FAILED (exit $rc after ${elapsed}s): ${what:-no libFuzzer summary}${crashes:+; input: ${crashes% }}; log $work/fuzz.log" >&2
	if [ ${#inputs[@]} -eq 0 ] && [ -n "$crashes" ]; then
		echo "fuzz-ledger: reproduce with: bash $root/test/fuzz/run-ledger.sh ${crashes% }" >&2
	fi
	exit 1
fi

if [ ${#inputs[@]} -gt 0 ]; then
	echo "fuzz-ledger: ${#inputs[@]} input(s) ran without findings (${counts#ledger_fuzz: })"
	rm -rf "$work"
	exit 0
fi
done_line=$(grep -m1 -E '^#[0-9]+[[:space:]]+DONE' fuzz.log)
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' fuzz.log)
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' fuzz.log)
cov=$(echo "$done_line" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[A-Za-z]*')
echo "fuzz-ledger: ${secs}s without findings: $runs runs in ${elapsed}s ($eps exec/s), $cov; ${counts#ledger_fuzz: }"
rm -rf "$work"
exit 0
