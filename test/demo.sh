#!/usr/bin/env bash
# ledger_ingest demo: real ledgers from a real Ethereum node (anvil) flow
# through your own SQL handler into your own table, exactly once, with
# notifications only for what committed.
#
#   make demo
#
# Installs what is missing (PostgreSQL 15 + PGXS headers, libcurl headers,
# the pinned npm tools in test/), builds and installs the extension, starts
# a throwaway cluster and an anvil node, deploys OpenZeppelin's ERC-20,
# sends transfers, creates an evm_rpc pipeline with a balances handler,
# shows progress and notifications live, and prints the top balances next
# to the contract's balanceOf.  Everything is stopped and removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
TRANSFERS=${TRANSFERS:-60}
LIVE_TRANSFERS=${LIVE_TRANSFERS:-30}

if [ "$(id -u)" = 0 ]; then
	bash "$root/test/install-deps.sh"
	make -C "$root" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
	work=$(mktemp -d /tmp/ledger_ingest-demo.XXXXXX)
	chown postgres: "$work"
	# initdb refuses to run as root: the cluster runs as "postgres"
	exec runuser -u postgres -- env DEMO_WORK="$work" PG_CONFIG="$PG_CONFIG" \
		TRANSFERS="$TRANSFERS" LIVE_TRANSFERS="$LIVE_TRANSFERS" bash "$0"
fi
if [ -z "${DEMO_WORK:-}" ]; then
	sudo bash "$root/test/install-deps.sh"
	make -C "$root" -s PG_CONFIG="$PG_CONFIG"
	sudo make -C "$root" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
fi

work=${DEMO_WORK:-$(mktemp -d /tmp/ledger_ingest-demo.XXXXXX)}
bindir=$($PG_CONFIG --bindir)
chain="$root/test/chain.sh"
pgport=55499
rpcport=18599
export PGHOST="$work" PGPORT=$pgport PGDATABASE=postgres
psql() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	[ -n "${listener:-}" ] && kill "$listener" 2>/dev/null || true
	"$bindir/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
	bash "$chain" stop "$work/anvil" >/dev/null 2>&1 || true
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

step "Starting anvil, deploying OpenZeppelin's ERC20PresetMinterPauser, minting and sending $TRANSFERS transfers"
mkdir -p "$work/anvil"
rpc=$(bash "$chain" start $rpcport "$work/anvil")
token=$(bash "$chain" deploy "$rpc")
bash "$chain" mint "$rpc" "$token" >/dev/null
bash "$chain" transfers "$rpc" "$token" "$TRANSFERS" 1 >/dev/null
echo "node $rpc, token $token, head $(bash "$chain" head "$rpc")"

step "Creating the extension, a balances table and a handler"
psql <<SQL
CREATE EXTENSION ledger_ingest;
\i $root/test/fixtures/erc20.sql
SQL
cat <<'SHOW'
  CREATE TABLE erc20_balances (token bytea, account bytea, balance numeric, PRIMARY KEY (token, account));
  CREATE FUNCTION erc20_on_transfer(e ledger_ingest.event) RETURNS void ...   -- test/fixtures/erc20.sql
SHOW

step "Listening on channel ledger_ingest"
perl -MDBI -e '
	$| = 1;
	my $dbh = DBI->connect("dbi:Pg:dbname=postgres;host=$ARGV[0];port=$ARGV[1]", "", "", {RaiseError => 1});
	$dbh->do("LISTEN ledger_ingest");
	while (1) {
		while (my $n = $dbh->pg_notifies) { print "  NOTIFY $n->[2]\n"; }
		select(undef, undef, undef, 0.05);
	}' "$work" $pgport &
listener=$!
sleep 0.5

step "Creating and starting the evm_rpc pipeline"
setup_sql="SELECT ledger_ingest.create_pipeline('erc20', 'evm_rpc',
    '{\"url\": \"$rpc\", \"addresses\": [\"$token\"], \"block_range\": 20, \"poll_ms\": 250}');
SELECT ledger_ingest.add_handler('erc20', 'erc20_on_transfer(ledger_ingest.event)',
    topic0 => '\\xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef');
SELECT ledger_ingest.start('erc20');"
echo "$setup_sql" | sed 's/^/  /'
echo "$setup_sql" | psql >/dev/null
head=$(bash "$chain" head "$rpc")
psql -c "SELECT ledger_ingest.wait_for('erc20', $head, '60s') AS caught_up" >/dev/null

step "Sending $LIVE_TRANSFERS more transfers while the pipeline follows the head"
bash "$chain" transfers "$rpc" "$token" "$LIVE_TRANSFERS" 2 >/dev/null &
sender=$!
while kill -0 $sender 2>/dev/null; do
	psql -At -F ' ' -c "SELECT 'progress: ledger ' || ledger || ' of head ' || coalesce(head::text, '?') || ', ' || events_applied || ' events in ' || ledgers_applied || ' ledgers, state ' || state FROM ledger_ingest.status"
	sleep 0.5
done
wait $sender
head=$(bash "$chain" head "$rpc")
psql -c "SELECT ledger_ingest.wait_for('erc20', $head, '60s') AS caught_up" >/dev/null
sleep 0.5
kill "$listener" 2>/dev/null || true
listener=

step "Status"
psql -c "SELECT pipeline, state, ledger, head, events_applied, ledgers_applied, last_error FROM ledger_ingest.status"

step "Top balances: the table next to the contract's balanceOf"
bash "$chain" balances "$rpc" "$token" > "$work/balanceof.txt"
psql -c "CREATE TEMP TABLE chain (account text, balance numeric)" \
	-c "\\copy chain FROM '$work/balanceof.txt' WITH (FORMAT text, DELIMITER ' ')" \
	-c "SELECT '0x' || encode(b.account, 'hex') AS account, b.balance AS ledger_ingest,
	           c.balance AS \"balanceOf\", CASE WHEN b.balance = c.balance THEN 'ok' ELSE 'MISMATCH' END AS check
	    FROM erc20_balances b JOIN chain c ON c.account = '0x' || encode(b.account, 'hex')
	    ORDER BY b.balance DESC LIMIT 10"
bad=$(psql -At -c "CREATE TEMP TABLE chain (account text, balance numeric)" \
	-c "\\copy chain FROM '$work/balanceof.txt' WITH (FORMAT text, DELIMITER ' ')" \
	-c "SELECT count(*) FROM chain c LEFT JOIN erc20_balances b ON '0x' || encode(b.account, 'hex') = c.account
	    WHERE b.balance IS DISTINCT FROM c.balance")
if [ "$bad" = 0 ]; then
	echo "All balances equal balanceOf."
else
	echo "$bad balances differ from balanceOf" >&2
	exit 1
fi
