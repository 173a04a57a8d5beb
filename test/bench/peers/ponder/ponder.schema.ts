import { onchainTable } from "ponder";

// net balance change per account, as the other indexers compute it
export const balance = onchainTable("balance", (t) => ({
	account: t.hex().primaryKey(),
	amount: t.bigint().notNull(),
}));
