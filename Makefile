# ledger_ingest — PGXS build.
#
#   make            build the extension
#   make install    install it into the PostgreSQL found by $(PG_CONFIG)
#   make test       the whole test suite (pg_regress, isolation, TAP), see test/run-tests.sh
#   make demo       the end-to-end demo against a local anvil node, see test/demo.sh
#   make demo-stellar  real Stellar pubnet ledgers from the replay server, see test/demo-stellar.sh
#   make bench      the benchmarks (not part of make test), see test/bench/bench.sh

MODULE_big = ledger_ingest
OBJS = \
	src/module.o \
	src/launcher.o \
	src/worker.o \
	src/xact.o \
	src/options.o \
	src/ledger.o \
	src/ledger_stellar.o \
	src/packed.o \
	src/source_inbox.o \
	src/rpc_client.o \
	src/rpc_stream.o \
	src/source_evm_rpc.o \
	src/source_stellar_rpc.o \
	src/prefetch.o \
	src/batch.o \
	src/apply.o \
	src/handlers.o \
	src/event.o \
	src/revert.o \
	src/publish.o \
	src/functions.o \
	src/catalog.o \
	src/journal.o \
	src/sink.o \
	src/table_sink.o \
	src/factory.o \
	src/transaction.o \
	src/ledger_tx.o \
	src/keccak.o \
	src/abi_core.o \
	src/abi.o \
	src/scval_core.o \
	src/scval.o \
	src/stellar_core.o \
	src/stellar.o

EXTENSION = ledger_ingest
DATA = ledger_ingest--0.3.sql ledger_ingest--0.1.sql ledger_ingest--0.1--0.2.sql ledger_ingest--0.2--0.3.sql ledger_ingest--0.3--0.4.sql ledger_ingest--0.4--0.5.sql ledger_ingest--0.5--0.6.sql ledger_ingest--0.6--0.7.sql
PGFILEDESC = "ledger_ingest - blockchain ledger ingestion inside PostgreSQL"

# The suites, on PGXS's conventions: "make installcheck" runs pg_regress
# (sql/, expected/), the isolation specs (test/isolation/) and the TAP
# tests (test/t/) against the installed server, which must preload the
# library (shared_preload_libraries = 'ledger_ingest').  make test runs
# the same targets on throwaway instances (test/run-tests.sh).
REGRESS = api inbox security
ISOLATION = cursor_cas worker_race
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK = -lcurl -lnettle
# -Wextra's unused-parameter fires in PostgreSQL's own inline headers and on
# every fmgr/callback signature; everything else of -Wall -Wextra is on.
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# the TAP tests' helpers (LiTest.pm); prove runs in $(srcdir)
PG_PROVE_FLAGS += -I test/t

# PGXS tracks no header dependencies
$(OBJS): $(wildcard src/*.h)

.PHONY: test demo demo-stellar deps bench
deps:
	bash test/install-deps.sh

test:
	bash test/run-tests.sh

demo:
	bash test/demo.sh

demo-stellar:
	bash test/demo-stellar.sh

bench:
	bash test/bench/bench.sh
