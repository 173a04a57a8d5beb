import { ponder } from "ponder:registry";
import { balance } from "ponder:schema";

// the balances handler: from loses value, to gains it
ponder.on("Emitter:Transfer", async ({ event, context }) => {
	const { from, to, value } = event.args;
	await context.db
		.insert(balance)
		.values({ account: from, amount: -value })
		.onConflictDoUpdate((row) => ({ amount: row.amount - value }));
	await context.db
		.insert(balance)
		.values({ account: to, amount: value })
		.onConflictDoUpdate((row) => ({ amount: row.amount + value }));
});
