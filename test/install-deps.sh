#!/usr/bin/env bash
# Installs what building and testing ledger_ingest needs on Debian bookworm:
# PostgreSQL 15 with its PGXS headers, libcurl headers, the Perl modules of
# the TAP tests, and the pinned npm test tools (test/package-lock.json).
# Idempotent; needs root for apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

pkgs=(postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libipc-run-perl
      libdbd-pg-perl make gcc nettle-dev clang-14 libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing Debian packages: ${missing[*]} (run as root)" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian starts a "main" cluster on port 5432 when postgresql-15 is
# installed; the tests and the demo use their own throwaway clusters.

if ! command -v npm >/dev/null; then
	echo "install-deps: node and npm are required for the test tools" >&2
	exit 1
fi
if [ ! -x "$here/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" ] ||
   [ ! -x "$here/node_modules/@foundry-rs/cast-linux-amd64/bin/cast" ] ||
   [ ! -f "$here/node_modules/@openzeppelin/contracts/build/contracts/ERC20PresetMinterPauser.json" ] ||
   [ ! -f "$here/node_modules/@uniswap/v2-core/build/UniswapV2Factory.json" ]; then
	# "npm install" with the committed lockfile installs exactly the locked
	# versions; "npm ci" refuses this lockfile because npm 11 leaves the
	# other platforms' optional anvil/cast binaries out of it.
	echo "install-deps: npm install (from test/package-lock.json) in test/" >&2
	(cd "$here" && npm install --no-audit --no-fund --loglevel=error)
fi
