// Ponder, indexing the benchmark's Transfer logs (rpc_bench.pl): the
// contract PEER_ADDRESS from PEER_FROM to PEER_TO through PEER_RPC_URL
// (the fault proxy), into schema DATABASE_SCHEMA of DATABASE_URL.
import { createConfig } from "ponder";

const abi = [
	{
		type: "event",
		name: "Transfer",
		anonymous: false,
		inputs: [
			{ indexed: true, name: "from", type: "address" },
			{ indexed: true, name: "to", type: "address" },
			{ indexed: false, name: "value", type: "uint256" },
		],
	},
] as const;

export default createConfig({
	database: { kind: "postgres", connectionString: process.env.DATABASE_URL },
	chains: {
		anvil: { id: 31337, rpc: process.env.PEER_RPC_URL, disableCache: true },
	},
	contracts: {
		Emitter: {
			chain: "anvil",
			abi,
			address: process.env.PEER_ADDRESS as `0x${string}`,
			startBlock: Number(process.env.PEER_FROM),
			endBlock: Number(process.env.PEER_TO),
		},
	},
});
