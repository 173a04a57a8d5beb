/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  The worker's short transactions, kept plans, and calls as the
 *	  pipeline owner.
 *
 * Every transaction a worker or launcher opens is one of li_txn_begin's:
 * a real transaction block with SPI connected and a snapshot; nothing in
 * it does network I/O or sleeps (the callers fetch first).  Internal
 * statements are prepared once per process with li_keep_plan; user code
 * (handlers, revert functions, the statements a reorg restore runs) runs
 * as the pipeline owner between li_become_owner and li_restore_user.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "xact.h"

/*
 * li_txn_begin -- start one of the worker's short transactions: a
 * transaction block, SPI and an active snapshot.  Returns the caller's
 * memory context, which li_txn_commit/li_txn_abort restore (ending a
 * transaction leaves CurrentMemoryContext at TopMemoryContext, where
 * anything the caller allocates next would leak).
 *
 * The transaction is a real transaction block, opened as
 * exec_simple_query opens one for a client's BEGIN (BeginTransactionBlock,
 * then the end of that "statement" moves the block to
 * TBLOCK_INPROGRESS).  Extensions that coordinate several statements'
 * work decide so by IsTransactionBlock(): Citus, for one, opens remote
 * transaction blocks and commits them with two-phase commit only then;
 * outside a block every handler statement would commit on its shard at
 * once, apart from the cursor.
 */
MemoryContext
li_txn_begin(void)
{
	MemoryContext caller = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	BeginTransactionBlock();
	CommitTransactionCommand();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	return caller;
}

/*
 * li_txn_commit -- commit a transaction of li_txn_begin (as a client's
 * COMMIT ends its block: EndTransactionBlock, then CommitTransactionCommand
 * commits).
 */
void
li_txn_commit(MemoryContext caller)
{
	SPI_finish();
	PopActiveSnapshot();
	if (!EndTransactionBlock(false))
		elog(ERROR, "ledger_ingest transaction block was not in progress at commit");
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
}

/*
 * li_txn_abort -- roll back a transaction of li_txn_begin, block and all
 * (AbortCurrentTransaction would leave an aborted block behind).
 */
void
li_txn_abort(MemoryContext caller)
{
	SPI_finish();
	PopActiveSnapshot();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(caller);
}

/*
 * li_keep_plan -- prepare sql with SPI and keep the plan for the life of the
 * process (the worker's internal statements are prepared once).
 */
SPIPlanPtr
li_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * li_become_owner -- run what follows as role owner, in a security-
 * restricted operation, as PostgreSQL runs index expressions and REFRESH
 * MATERIALIZED VIEW for a table owner: user code (a handler, a trigger on
 * a table the pipeline writes) cannot SET ROLE or create temporary
 * objects, and every setting it changes is undone by li_restore_user.
 */
void
li_become_owner(Oid owner, LiAsOwner *save)
{
	GetUserIdAndSecContext(&save->userid, &save->sec_context);
	SetUserIdAndSecContext(owner, save->sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save->nestlevel = NewGUCNestLevel();
}

/*
 * li_restore_user -- end li_become_owner: fire the deferred triggers the
 * user code queued while still the owner (left for commit, they would run
 * as the worker's superuser), undo its settings, become the saved user.
 */
void
li_restore_user(LiAsOwner *save)
{
	AfterTriggerFireDeferred();
	AtEOXact_GUC(false, save->nestlevel);
	SetUserIdAndSecContext(save->userid, save->sec_context);
}

/*
 * li_call_as_owner -- call fn(arg) as role owner (li_become_owner), then
 * make what it did visible to the next statement.
 */
void
li_call_as_owner(Oid owner, FmgrInfo *fn, Datum arg)
{
	li_call_as_owner2(owner, fn, arg, (Datum) 0, -1);
}

/*
 * li_call_as_owner2 -- li_call_as_owner with a second argument arg2 when
 * nargs2 is 1 (0: a NULL second argument; -1: none).
 */
void
li_call_as_owner2(Oid owner, FmgrInfo *fn, Datum arg, Datum arg2, int nargs2)
{
	LiAsOwner	save;
	LOCAL_FCINFO(fcinfo, 2);

	InitFunctionCallInfoData(*fcinfo, fn, nargs2 < 0 ? 1 : 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = arg;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = arg2;
	fcinfo->args[1].isnull = nargs2 == 0;

	li_become_owner(owner, &save);
	(void) FunctionCallInvoke(fcinfo);
	li_restore_user(&save);
	/* what the handler did is visible to the next one */
	CommandCounterIncrement();
}
