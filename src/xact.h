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
/* what li_become_owner saves */
typedef struct LiAsOwner
{
	Oid			userid;
	int			sec_context;
	int			nestlevel;		/* GUC nest level */
} LiAsOwner;

/* run as role owner in a security-restricted operation, with a GUC nest level */
extern void li_become_owner(Oid owner, LiAsOwner *save);
/* fire deferred triggers as the owner, undo its settings, become the saved user */
extern void li_restore_user(LiAsOwner *save);
/* call fn(arg) between li_become_owner and li_restore_user, then CommandCounterIncrement() */
extern void li_call_as_owner(Oid owner, FmgrInfo *fn, Datum arg);
/* the same with a second argument arg2 (nargs2 1), a NULL one (0) or none (-1) */
extern void li_call_as_owner2(Oid owner, FmgrInfo *fn, Datum arg, Datum arg2, int nargs2);

#endif							/* LI_XACT_H */
