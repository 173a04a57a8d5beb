#!/usr/bin/env bash
# Writes the seed corpus of test/fuzz/abi_fuzz.c into DIR (created):
# inputs built from the real mainnet logs in $LEDGER_INGEST_DATA (default
# ../shared/data) for the common ERC-20/721, WETH and Uniswap events, as
# event inputs and as type-list inputs, plus a few dynamic encodings made
# by cast abi-encode when cast is installed.  The data never goes into the
# repository: DIR should be a temporary directory.
#
# usage: make_corpus.sh DIR
set -euo pipefail
dir=${1:?usage: make_corpus.sh DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
data=${LEDGER_INGEST_DATA:-$(cd "$root/.." && pwd)/shared/data}
blocks="$data/evm/mainnet-blocks.ndjson"
[ -f "$blocks" ] || { echo "make_corpus: missing $blocks" >&2; exit 1; }
mkdir -p "$dir"

perl -MJSON::PP -e '
use strict;
use warnings;
my ($blocks, $dir) = @ARGV;
# topic0 => [event signature, non-indexed types]
my %ev = (
	"ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef" =>
	  [ "event Transfer(address indexed from, address indexed to, uint256 value)", "uint256" ],
	"8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925" =>
	  [ "event Approval(address indexed owner, address indexed spender, uint256 value)", "uint256" ],
	"17307eab39ab6107e8899845ad3d59bd9653f200f220920489ca2b5937696c31" =>
	  [ "event ApprovalForAll(address indexed owner, address indexed operator, bool approved)", "bool" ],
	"e1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c" =>
	  [ "Deposit(address indexed dst, uint wad)", "uint" ],
	"7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65" =>
	  [ "Withdrawal(address indexed src, uint wad)", "uint" ],
	"d78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822" =>
	  [ "Swap(address indexed sender, uint amount0In, uint amount1In, uint amount0Out, uint amount1Out, address indexed to)", "uint,uint,uint,uint" ],
	"1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1" =>
	  [ "Sync(uint112 reserve0, uint112 reserve1)", "uint112,uint112" ],
	"c42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67" =>
	  [ "event Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)",
		"int256,int256,uint160,uint128,int24" ],
);
my (%per, $n);
open(my $fh, "<", $blocks) or die "$blocks: $!";
while (my $line = <$fh>)
{
	for my $log (@{ decode_json($line)->{logs} })
	{
		my @t = map { substr($_, 2) } @{ $log->{topics} };
		next unless @t && $ev{ $t[0] };
		my ($sig, $types) = @{ $ev{ $t[0] } };
		next if ($per{ $t[0] }++ // 0) >= 8;		# a few of each kind
		my $data = pack("H*", substr($log->{data}, 2));
		my $topics = pack("H*", join("", @t[1 .. $#t]));
		my $all = pack("H*", join("", @t));
		for my $seed ("E$sig\0$topics$data", "e$sig\0$all$data", "T$types\0$data")
		{
			$n++;
			open(my $o, ">", sprintf("%s/seed-%04d", $dir, $n)) or die $!;
			binmode $o;
			print $o $seed;
			close $o;
		}
	}
}
print STDERR "make_corpus: $n seeds from $blocks\n";
' "$blocks" "$dir"

# dynamic types, encoded by cast
cast="$root/test/node_modules/@foundry-rs/cast-linux-amd64/bin/cast"
if [ -x "$cast" ]; then
	i=0
	while IFS='|' read -r types args; do
		i=$((i + 1))
		eval "set -- $args"
		hex=$(cd "$(dirname "$cast")" && "$cast" abi-encode "f($types)" "$@")
		{ printf 'T%s\0' "$types"; perl -e 'print pack("H*", $ARGV[0])' "${hex#0x}"; } > "$dir/cast-$i"
	done <<'SEEDS'
(uint256,string)[]|'[(1,"a"),(2,"héllo")]'
string,bytes,bytes32|'text' '0x0102' '0x0000000000000000000000000000000000000000000000000000000000000001'
uint8[2][],int16[3]|'[[1,2],[3,4]]' '[-1,0,1]'
(string,(bytes,int16)[],bool)[2]|'[("x",[(0x01,-2)],true),("",[],false)]'
string[][],address[]|'[["a","b"],[]]' '[0x000000000000000000000000000000000000dEaD]'
SEEDS
fi
