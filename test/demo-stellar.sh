#!/usr/bin/env bash
# ledger_ingest Stellar demo: real pubnet ledgers, served by the Stellar RPC
# replay server (test/stellar/replay_server.mjs, the five LedgerCloseMeta
# files of ../shared/data/stellar): the three recent ones fetched by a
# stellar_rpc pipeline, the two older ones (as if beyond the server's
# retention) sent to an inbox pipeline by a producer
# (test/stellar/documents.mjs: each ledger's getLedgers entry with its
# getEvents events); both apply through your own SQL handlers into your own
# tables: CAP-67 transfers decoded from their ScVal topics and values, and
# fees summed per transaction, checked against the feeCharged of each
# transaction's result in the LedgerCloseMeta.
#
#   make demo-stellar
#
# Installs what is missing, builds and installs the extension, starts a
# throwaway cluster and the replay server; everything is stopped and
# removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
data=${LEDGER_INGEST_DATA:-$(cd "$root/.." && pwd)/shared/data}

if [ "$(id -u)" = 0 ]; then
	bash "$root/test/install-deps.sh"
	make -C "$root" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
	work=$(mktemp -d /tmp/ledger_ingest-demo.XXXXXX)
	chown postgres: "$work"
	# initdb refuses to run as root: the cluster runs as "postgres"
	exec runuser -u postgres -- env DEMO_WORK="$work" PG_CONFIG="$PG_CONFIG" LEDGER_INGEST_DATA="$data" bash "$0"
fi
if [ -z "${DEMO_WORK:-}" ]; then
	sudo bash "$root/test/install-deps.sh"
	make -C "$root" -s PG_CONFIG="$PG_CONFIG"
	sudo make -C "$root" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
fi

work=${DEMO_WORK:-$(mktemp -d /tmp/ledger_ingest-demo.XXXXXX)}
bindir=$($PG_CONFIG --bindir)
pgport=55498
export PGHOST="$work" PGPORT=$pgport PGDATABASE=postgres
psql() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	[ -n "${replay:-}" ] && kill "$replay" 2>/dev/null || true
	"$bindir/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

step "Starting a throwaway PostgreSQL 15 cluster with ledger_ingest preloaded ($work)"
"$bindir/initdb" -D "$work/data" -A trust -U "$(id -un)" >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
shared_preload_libraries = 'ledger_ingest'
ledger_ingest.database = 'postgres'
port = $pgport
unix_socket_directories = '$work'
listen_addresses = ''
CONF
"$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null

step "Starting the Stellar RPC replay server (real pubnet ledgers from $data/stellar/lcm)"
node "$root/test/stellar/replay_server.mjs" --data "$data/stellar" --portfile "$work/replay.port" > /dev/null &
replay=$!
for _ in $(seq 100); do [ -s "$work/replay.port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/replay.port")"
curl -s -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"getHealth"}' "$url"; echo

step "A producer reads each ledger (getLedgers) with its events (getEvents) as inbox documents (for the backfill)"
node "$root/test/stellar/documents.mjs" "$url" "$data/stellar" "$work"

step "Creating the extension, tables and handlers (by topic: scval_symbol('transfer'), scval_symbol('fee'))"
cat > "$work/setup.sql" <<'SQL'
CREATE EXTENSION ledger_ingest;
-- CAP-67 transfers: topics ("transfer", from, to, asset), the amount an i128
CREATE TABLE transfers (ledger bigint, tx_hash bytea, from_account text, to_account text,
                        asset text, amount numeric);
CREATE FUNCTION on_transfer(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$
  INSERT INTO transfers
  SELECT e.ledger, e.tx_hash,
         ledger_ingest.scval_to_native(e.topics[2]) #>> '{}',
         ledger_ingest.scval_to_native(e.topics[3]) #>> '{}',
         ledger_ingest.scval_to_native(e.topics[4]) #>> '{}',
         CASE jsonb_typeof(v) WHEN 'object' THEN (v->>'amount')::numeric ELSE (v #>> '{}')::numeric END
  FROM (SELECT ledger_ingest.scval_to_native(e.data) AS v) d $$;
-- fees: charged before the transactions, refunded after (negative)
CREATE TABLE fees (tx_hash bytea, amount numeric);
CREATE FUNCTION on_fee(e ledger_ingest.event) RETURNS void LANGUAGE sql AS $$
  INSERT INTO fees VALUES (e.tx_hash, (ledger_ingest.scval_to_native(e.data) #>> '{}')::numeric) $$;
-- the server's ledgers, fetched by the worker: getHealth, getEvents, getLedgers
SELECT ledger_ingest.create_pipeline('pubnet', 'stellar_rpc', jsonb_build_object(
       'url', :'url', 'network_passphrase', 'Public Global Stellar Network ; September 2015',
       'from_ledger', 63092988, 'to_ledger', 63092996));
-- older ledgers, sent by a producer
SELECT ledger_ingest.create_pipeline('backfill', 'inbox', '{"chain": "stellar"}');
SELECT ledger_ingest.add_handler(p, 'on_transfer(ledger_ingest.event)',
       topic0 => ledger_ingest.scval_symbol('transfer')),
       ledger_ingest.add_handler(p, 'on_fee(ledger_ingest.event)',
       topic0 => ledger_ingest.scval_symbol('fee'))
FROM unnest(ARRAY['pubnet', 'backfill']) p;
SQL
sed 's/^/  /' "$work/setup.sql"
psql -v url="$url" -f "$work/setup.sql" >/dev/null

step "The stellar_rpc pipeline fetches 63092988..63092996; the producer inserts the two older ledgers"
psql <<SQL
CREATE TEMP TABLE docs (ledger bigint, doc jsonb);
\copy docs FROM '$work/documents.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
INSERT INTO ledger_ingest.inbox (pipeline, doc) SELECT 'backfill', doc FROM docs WHERE ledger < 63092988 ORDER BY ledger;
SELECT ledger_ingest.start('pubnet'), ledger_ingest.start('backfill');
SELECT ledger_ingest.wait_for('pubnet', 63092996, '60s') AS fetched_and_applied,
       ledger_ingest.wait_for('backfill', (SELECT max(ledger) FROM docs WHERE ledger < 63092988), '60s') AS backfilled;
SQL
psql -c "SELECT pipeline, source, state, ledger, events_applied, last_error FROM ledger_ingest.status"

step "Transfers, decoded from their ScVal topics and values"
psql <<'SQL'
SELECT count(*) AS transfers, count(DISTINCT asset) AS assets FROM transfers;
SELECT asset, count(*) AS transfers, round(sum(amount) / 1e7, 7) AS total
FROM transfers GROUP BY asset ORDER BY count(*) DESC LIMIT 5;
SQL

step "Fees per transaction against the feeCharged of each result in the LedgerCloseMeta"
psql <<SQL
CREATE TEMP TABLE charged (tx_hash text, fee_charged numeric);
\copy charged FROM '$work/fees.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')
SELECT count(*) AS transactions_with_fee_events,
       count(*) FILTER (WHERE s.total = c.fee_charged) AS equal_to_fee_charged
FROM (SELECT tx_hash, sum(amount) AS total FROM fees GROUP BY tx_hash) s
JOIN charged c ON decode(c.tx_hash, 'hex') = s.tx_hash;
SQL
