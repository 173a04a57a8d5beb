// Subsquid's evm-processor over plain JSON-RPC (no archive), indexing the
// benchmark's Transfer logs (rpc_bench.pl): contract PEER_ADDRESS from
// PEER_FROM to PEER_TO through PEER_RPC_URL (the fault proxy), balances
// into DATABASE_SCHEMA.balance of DATABASE_URL with pg.  The processor
// exits once it has processed PEER_TO.
//
// The store is the smallest Database the processor accepts (a
// FinalDatabase: one transaction per batch of blocks, its height and hash
// kept in DATABASE_SCHEMA.status), in place of @subsquid/typeorm-store,
// which needs generated entity classes.  The handler sums each batch's
// deltas in memory and upserts them in one statement, as Subsquid's
// documentation recommends for batch processing.
import pg from 'pg';
import { EvmBatchProcessor } from '@subsquid/evm-processor';

const TRANSFER = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
const schema = process.env.DATABASE_SCHEMA;
const to = Number(process.env.PEER_TO);
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });

const processor = new EvmBatchProcessor()
	.setRpcEndpoint({ url: process.env.PEER_RPC_URL })
	.setFinalityConfirmation(Number(process.env.PEER_CONFIRMATIONS ?? 10))
	.setBlockRange({ from: Number(process.env.PEER_FROM), to })
	.addLog({ address: [process.env.PEER_ADDRESS.toLowerCase()], topic0: [TRANSFER] })
	.setFields({ log: { topics: true, data: true } });

const db = {
	supportsHotBlocks: false,
	async connect() {
		await client.connect();
		await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
		await client.query(`CREATE TABLE IF NOT EXISTS ${schema}.balance (account text PRIMARY KEY, amount numeric NOT NULL)`);
		await client.query(`CREATE TABLE IF NOT EXISTS ${schema}.status (height int NOT NULL, hash text NOT NULL)`);
		const r = await client.query(`SELECT height, hash FROM ${schema}.status`);
		return r.rows[0] ?? { height: -1, hash: '0x' };
	},
	async transact(info, cb) {
		await client.query('BEGIN');
		try {
			await cb(client);
			await client.query(`DELETE FROM ${schema}.status`);
			await client.query(`INSERT INTO ${schema}.status VALUES ($1, $2)`,
				[info.nextHead.height, info.nextHead.hash]);
			await client.query('COMMIT');
		} catch (e) {
			await client.query('ROLLBACK');
			throw e;
		}
	},
};

processor.run(db, async (ctx) => {
	const delta = new Map();
	const add = (account, v) => delta.set(account, (delta.get(account) ?? 0n) + v);
	for (const block of ctx.blocks) {
		for (const log of block.logs) {
			if (log.topics[0] !== TRANSFER || log.topics.length !== 3)
				continue;
			const v = BigInt(log.data);
			add('0x' + log.topics[1].slice(26), -v);
			add('0x' + log.topics[2].slice(26), v);
		}
	}
	if (delta.size > 0)
		await ctx.store.query(
			`INSERT INTO ${schema}.balance AS b (account, amount)
			 SELECT * FROM unnest($1::text[], $2::numeric[])
			 ON CONFLICT (account) DO UPDATE SET amount = b.amount + excluded.amount`,
			[[...delta.keys()], [...delta.values()].map(String)]);
});
