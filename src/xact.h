/*-------------------------------------------------------------------------
 *
 * xact.h
 *	  The worker's short transactions, kept plans and calls as the
 *	  pipeline owner (xact.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_XACT_H
#define LI_XACT_H

#include "executor/spi.h"
#include "fmgr.h"

/*
 * begin a transaction block with SPI connected and a snapshot pushed;
 * returns the caller's memory context, for li_txn_commit/li_txn_abort
 */
extern MemoryContext li_txn_begin(void);
/* commit a transaction of li_txn_begin and return to the caller's context */
extern void li_txn_commit(MemoryContext caller);
/* roll back a transaction of li_txn_begin, block and all */
extern void li_txn_abort(MemoryContext caller);
/* SPI_prepare + SPI_keepplan (inside a transaction); ERROR on failure */
extern SPIPlanPtr li_keep_plan(const char *sql, int nargs, Oid *argtypes);
/* call fn(arg) as role owner in a security-restricted operation, then CommandCounterIncrement() */
extern void li_call_as_owner(Oid owner, FmgrInfo *fn, Datum arg);

#endif							/* LI_XACT_H */
