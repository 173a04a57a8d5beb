#!/usr/bin/env bash
# chain.sh - drive a local anvil chain with an OpenZeppelin ERC-20 for ledger_ingest tests.
#
#   chain.sh start PORT STATEDIR          start anvil on 127.0.0.1:PORT; prints the RPC URL
#   chain.sh stop STATEDIR                stop that anvil (no-op if already gone)
#   chain.sh deploy RPC                   deploy ERC20PresetMinterPauser("Test Token","TST"); prints its address
#   chain.sh mint RPC TOKEN               mint 10^24 to each of the 10 default accounts; prints 10
#   chain.sh transfers RPC TOKEN N SEED   N deterministic transfer()s between the accounts; prints N
#   chain.sh balances RPC TOKEN           prints "<address> <balance>" per account (lowercase, decimal)
#   chain.sh head RPC                     prints the latest block number (decimal)
#
# stdout carries only the machine-readable result; diagnostics go to stderr.
# Any failure exits non-zero. No TTY/stdin needed; state is only written into STATEDIR.
set -euo pipefail

die() { echo "chain.sh: $*" >&2; exit 1; }
usage() { grep '^#   chain.sh ' "$0" | sed 's/^#   /usage: /' >&2; exit 2; }

# --- tools, relative to this script ---------------------------------------------------
HERE=$(cd "$(dirname "$0")" && pwd)
NM=$HERE/node_modules
# node_modules/.bin/{anvil,cast} are node wrappers that spawn the native binary; calling
# the native binary directly saves ~100 ms per cast call and makes anvil.pid the real pid.
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) PLAT=linux-amd64 ;;   Linux-aarch64|Linux-arm64) PLAT=linux-arm64 ;;
  Darwin-x86_64) PLAT=darwin-amd64 ;; Darwin-arm64) PLAT=darwin-arm64 ;; *) PLAT=none ;;
esac
tool() { local b=$NM/@foundry-rs/$1-$PLAT/bin/$1
         if [[ -x $b ]]; then echo "$b"; else echo "$NM/.bin/$1"; fi; }
ANVIL=$(tool anvil); CAST=$(tool cast)
ARTIFACT=$NM/@openzeppelin/contracts/build/contracts/ERC20PresetMinterPauser.json
# Explicit flags are always passed; keep stray environment from interfering.
unset ETH_RPC_URL ETH_FROM ETH_PRIVATE_KEY ETH_KEYSTORE FOUNDRY_PROFILE || true

# --- anvil's 10 default accounts (mnemonic "test test ... junk", indices 0..9) --------
ADDRS=(
  0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266 0x70997970c51812dc3a010c7d01b50e0d17dc79c8
  0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc 0x90f79bf6eb2c4f870365e785982e1f101e93b906
  0x15d34aaf54267db7d7c367839aaf71a00a2c6a65 0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc
  0x976ea74026e726554db657fa54763abd0c3a0aa9 0x14dc79964da2c08b23698b3d3cc7ca32193d9955
  0x23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f 0xa0ee7a142d267c1f36714e4a8f75612f20a79720 )
KEYS=(
  0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
  0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
  0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
  0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
  0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a
  0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba
  0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e
  0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356
  0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97
  0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6 )

GENESIS_TS=1700000000   # fixed genesis timestamp ...
BLOCK_INTERVAL=12       # ... + fixed per-block step => identical block hashes on every run

# send RPC KEY ARGS...: `cast send` (waits for the receipt). Fail unless the tx succeeded
# and emitted a log: every tx here does (Transfer/RoleGranted), so a wrong TOKEN address
# (an EOA or precompile "succeeds" silently) is caught too.
send() {
  local rpc=$1 key=$2 out a; shift 2; a="$*"
  out=$("$CAST" send --json --rpc-url "$rpc" --private-key "$key" "$@") || die "cast send failed: ${a:0:160}"
  [[ $out == *'"status":"0x1"'* && $out == *'"logs":[{'* ]] || die "tx failed or emitted no log: ${out:0:400}"
  printf '%s\n' "$out"
}

# Bash LCG (glibc constants); sets global R to 15 pseudo-random bits.
rand() { S=$(( (S * 1103515245 + 12345) & 0x7fffffff )); R=$(( S >> 16 )); }

# Deterministic amount as a decimal string: ~1/16 are 0, else 1..21 digits (< 10^21).
# Built digit by digit because bash integers overflow above ~9.2e18.
amount() {
  rand; if (( R % 16 == 0 )); then AMT=0; return; fi
  local d j; rand; d=$(( 1 + R % 21 )); rand; AMT=$(( 1 + R % 9 ))
  for (( j = 1; j < d; j++ )); do rand; AMT+=$(( R % 10 )); done
}

need() { (( $1 == $2 )) || usage; }
# isnum VALUE NAME: validate; also prints it in base 10 (so "08" is not read as octal).
isnum() { [[ $1 =~ ^[0-9]{1,18}$ ]] || die "$2 must be a non-negative integer, got '$1'"; echo $((10#$1)); }

cmd=${1:-}; shift || true
# Make STATEDIR absolute, then run everything from a fixed directory: foundry tools load
# ./.env and foundry.toml/remappings from the cwd and its project root; run from `/` cast
# walks all of /lib (~90 ms per call instead of ~15 ms).
case "$cmd" in start) (( $# == 2 )) && { mkdir -p "$2"; set -- "$1" "$(cd "$2" && pwd)"; } ;;
               stop) (( $# == 1 )) && [[ -d $1 ]] && set -- "$(cd "$1" && pwd)" ;; esac
cd "$(dirname "$CAST")"
case "$cmd" in
start)
  need $# 2; port=$(isnum "$1" PORT); state=$2; rpc=http://127.0.0.1:$port
  if [[ -f $state/anvil.pid ]] && kill -0 "$(cat "$state/anvil.pid")" 2>/dev/null; then
    die "anvil already running (pid $(cat "$state/anvil.pid")); stop it first"; fi
  "$CAST" block-number --rpc-url "$rpc" >/dev/null 2>&1 && die "port $port is already serving RPC"
  # HOME=state: anything anvil may write under ~/.foundry stays inside STATEDIR.
  # setsid detaches it from the caller's process group/session; stdin is /dev/null.
  HOME=$state setsid "$ANVIL" --host 127.0.0.1 --port "$port" --chain-id 31337 --accounts 10 \
    --timestamp "$GENESIS_TS" </dev/null >"$state/anvil.log" 2>&1 &
  pid=$!; echo "$pid" >"$state/anvil.pid"
  for (( i = 0; i < 300; i++ )); do            # up to ~30 s
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$state/anvil.log" >&2; die "anvil exited early"; }
    timeout 2 "$CAST" block-number --rpc-url "$rpc" >/dev/null 2>&1 && break
    sleep 0.1
  done
  (( i < 300 )) || { kill "$pid" 2>/dev/null || true; die "anvil did not answer on $rpc within 30 s"; }
  [[ $("$CAST" chain-id --rpc-url "$rpc") == 31337 ]] || die "unexpected chain id on $rpc"
  "$CAST" rpc --rpc-url "$rpc" anvil_setBlockTimestampInterval "$BLOCK_INTERVAL" >/dev/null
  echo "$rpc" ;;
stop)
  need $# 1; pidf=$1/anvil.pid
  [[ -f $pidf ]] || { echo "chain.sh: no $pidf, nothing to stop" >&2; exit 0; }
  pid=$(cat "$pidf")
  # Only signal the pid if it still is an anvil (guards against pid reuse).
  if [[ $pid =~ ^[0-9]+$ ]] && grep -q anvil "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for (( i = 0; i < 50; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf" ;;
deploy)
  need $# 1; rpc=$1
  [[ -r $ARTIFACT ]] || die "missing artifact $ARTIFACT"
  code=$(grep -o '"bytecode": *"0x[0-9a-fA-F]*"' "$ARTIFACT" | grep -o '0x[0-9a-fA-F]*')
  [[ -n $code ]] || die "no bytecode in $ARTIFACT"
  args=$("$CAST" abi-encode "constructor(string,string)" "Test Token" "TST")
  out=$(send "$rpc" "${KEYS[0]}" --create "${code}${args#0x}")
  addr=$(grep -o '"contractAddress":"0x[0-9a-fA-F]\{40\}"' <<<"$out" | grep -o '0x[0-9a-fA-F]*')
  [[ -n $addr ]] || die "no contractAddress in receipt: $out"
  echo "${addr,,}" ;;
mint)
  need $# 2; rpc=$1; token=$2
  for a in "${ADDRS[@]}"; do
    send "$rpc" "${KEYS[0]}" "$token" "mint(address,uint256)" "$a" 1000000000000000000000000 >/dev/null
  done
  echo "${#ADDRS[@]}" ;;
transfers)
  need $# 4; rpc=$1; token=$2; n=$(isnum "$3" N); S=$(isnum "$4" SEED)
  S=$(( S & 0x7fffffff ))
  # Sequential, one tx per block with instant mining: `cast send` returns only after the
  # receipt, so everything is mined on return and block contents are reproducible.
  for (( k = 0; k < n; k++ )); do
    rand; from=$(( R % 10 )); rand; to=$(( (from + 1 + R % 9) % 10 )); amount
    send "$rpc" "${KEYS[from]}" "$token" "transfer(address,uint256)" "${ADDRS[to]}" "$AMT" >/dev/null
  done
  echo "$n" ;;
balances)
  need $# 2; rpc=$1; token=$2
  for a in "${ADDRS[@]}"; do
    # cast prints e.g. "1000000000000000000000000 [1e24]"; keep the first field only.
    b=$("$CAST" call --rpc-url "$rpc" "$token" "balanceOf(address)(uint256)" "$a")
    b=${b%% *}; [[ $b =~ ^[0-9]+$ ]] || die "bad balance for $a: '$b'"
    echo "$a $b"
  done ;;
head)
  need $# 1; "$CAST" block-number --rpc-url "$1" ;;
*)
  usage ;;
esac
