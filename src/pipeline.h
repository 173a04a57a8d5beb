/*-------------------------------------------------------------------------
 *
 * pipeline.h
 *	  A pipeline as its worker sees it (read by catalog.c), and the batch
 *	  of ledgers a source fetches for it (batch.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_PIPELINE_H
#define LI_PIPELINE_H

#include "fmgr.h"

#include "ledger.h"
#include "options.h"
#include "shmem.h"

typedef struct LiHandler
{
	int64		id;
	Oid			funcoid;
	char	   *name;			/* regprocedure text, for errors */
	bool		has_topic0;
	uint8	   *topic0;			/* EVM: 32 bytes; Stellar: an ScVal's XDR */
	int			topic0_len;
	bool		has_address;
	uint8		address[LI_MAX_ADDRESS_LEN];	/* EVM: 20 bytes; Stellar: 32 */
	int			address_len;
	bool		set_based;		/* takes ledger_ingest.event[] */
	FmgrInfo   *fn;				/* set up on first call */
	Oid			revert_oid;		/* InvalidOid: none */
	char	   *revert_name;
	FmgrInfo   *revert_fn;
	void	   *abi;			/* compiled event signature (abi.h), or NULL */
	int			abi_ntopics;	/* topics a log of that event has */
	bool		tx_arg;			/* takes (event, transaction) */
} LiHandler;

/*
 * A transaction handler: called with each transaction to address (or, when
 * not set, to an address the pipeline follows) whose input starts with
 * selector (when set; empty: a plain transfer), failed ones only if failed.
 */
typedef struct LiTxHandler
{
	int64		id;
	Oid			funcoid;
	char	   *name;
	bool		has_address;
	uint8		address[LI_ADDRESS_LEN];
	bool		has_selector;
	int			selector_len;	/* 0 or 4 */
	uint8		selector[4];
	bool		failed;
	FmgrInfo   *fn;
} LiTxHandler;

/* A block handler: called with each applied ledger whose number is a multiple of every. */
typedef struct LiBlockHandler
{
	int64		id;
	Oid			funcoid;
	char	   *name;			/* regprocedure text, for errors */
	int			every;
	FmgrInfo   *fn;				/* set up on first call */
} LiBlockHandler;

/* A table whose changes the pipeline journals for reorgs. */
typedef struct LiTracked
{
	Oid			relid;
	char	   *relname;		/* quoted, qualified as needed */
	int			npk;
	char	  **pk;				/* primary key column names */
	/* journaled from this ledger on (0.2); unknown until the worker starts */
	bool		has_since;
	int64		since;
} LiTracked;

/* A raw sink table: columns named after event fields (sink.c). */
typedef struct LiSink
{
	Oid			relid;
	/* a table sink (table_sink.c): the event it takes, else NULL */
	char	   *event;
	void	   *abi;			/* event compiled (abi.h) */
	bool		has_address;	/* only the logs of this contract */
	uint8		address[LI_ADDRESS_LEN];
	Jsonb	   *columns;		/* column -> argument or field, or NULL */
} LiSink;

/* A factory contract: its event announces children (factory.c). */
typedef struct LiFactory
{
	int64		id;
	uint8		address[LI_ADDRESS_LEN];
	void	   *abi;			/* the event compiled (abi.h) */
	int			param;			/* the argument holding the child's address */
	int			ntopics;		/* topics a log of the event has */
	uint8		topic0[LI_HASH_LEN];
} LiFactory;

typedef struct LiPipeline
{
	char		name[LI_NAME_MAX];
	bool		is_rpc;
	Oid			owner;
	LiOptions	opts;
	LiSlot	   *slot;
	int			nhandlers;
	LiHandler  *handlers;
	int			nblock_handlers;
	LiBlockHandler *block_handlers;
	int			ntx_handlers;
	LiTxHandler *tx_handlers;
	int			ntracked;
	LiTracked  *tracked;
	bool		has_revert;		/* some handler has a revert function */
	bool		has_set_based;	/* some handler takes ledger_ingest.event[] */
	int			nsinks;
	LiSink	   *sinks;
	int64		journal_floor;	/* journal ledgers above this one */
	int			nfactories;
	LiFactory  *factories;
	/* with factories: the options' own "addresses" and "topics" filter */
	Jsonb	   *watch_addresses;
	Jsonb	   *watch_topics;
	/*
	 * The installed extension's SQL is 0.2 or later (it has
	 * ledger_ingest.decode_error and tracked.since_ledger); this library
	 * also runs pipelines of an extension not yet updated (ALTER EXTENSION
	 * ledger_ingest UPDATE).
	 */
	bool		sql_0_2;
	bool		sql_0_7;		/* it has factories (ledger_ingest.factory) */
	/* ledger hash at the cursor, for parentHash continuity */
	bool		has_cursor_hash;
	uint8		cursor_hash[LI_HASH_LEN];
	LiPosition	cursor;
} LiPipeline;

/* A batch fetched from a source, to be applied. */
typedef struct LiBatch
{
	MemoryContext cxt;			/* everything of the batch lives here */
	int			nledgers;
	int			maxledgers;
	LiLedger   *ledgers;
	int64		nevents;
	/* inbox: a document to reject after the batch is applied */
	int64		reject_id;
	char	   *reject_error;
	bool		reject_fatal;	/* rejecting it must stop the pipeline */
	/*
	 * A reorg was seen after the batch: with a known fork point (the inbox
	 * received the first ledger of a new branch) the worker rolls back to
	 * fork_ledger; evm_rpc looks for the fork point itself; otherwise the
	 * pipeline fails with reorg_error.
	 */
	bool		reorg;
	char	   *reorg_error;
	bool		has_fork;
	int64		fork_ledger;
	uint8		fork_hash[LI_HASH_LEN];
	/*
	 * The source found that the pipeline cannot go on (stellar_rpc: another
	 * network, a pruned cursor, a broken chain): the worker applies the
	 * batch, then fails the pipeline with this error.
	 */
	char	   *fail_error;
} LiBatch;

/* batch.c */
/* an empty batch whose ledgers are allocated in cxt */
extern void li_batch_init(LiBatch *b, MemoryContext cxt);
/* append an uninitialized ledger to the batch (grows it by doubling) */
extern LiLedger *li_batch_add(LiBatch *b);
/*
 * does l attach to prev (or to the cursor when prev is NULL)?  false with
 * *error = "reorg at ledger N: ..." when its parentHash (or, resuming a
 * partial ledger, its hash) does not match; true when it cannot be checked
 */
/* sort ledger numbers v[0..n), dropping repeats; how many are left */
extern int	li_sort_unique(int64 *v, int n);
extern bool li_check_continuity(LiPipeline *p, const LiLedger *prev,
								const LiLedger *l, char **error);

#endif							/* LI_PIPELINE_H */
