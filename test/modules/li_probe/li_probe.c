/*-------------------------------------------------------------------------
 *
 * li_probe.c
 *	  Test-only probes into the backend that runs a ledger_ingest handler.
 *
 * Installed by test/run-tests.sh for the TAP tests only; never part of the
 * extension.  Each function reports a piece of transaction state that SQL
 * cannot see, so that a test fails when the worker's transactions change
 * shape.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(li_probe_in_transaction_block);

/*
 * li_probe_in_transaction_block() RETURNS boolean -- IsTransactionBlock():
 * true inside a transaction block (a client's BEGIN ... COMMIT, or the
 * worker's apply and revert transactions), false in a single-statement
 * transaction.  This is what Citus's IsMultiStatementTransaction() looks at
 * before it opens remote transaction blocks.
 */
Datum
li_probe_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock());
}
