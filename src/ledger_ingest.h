/*-------------------------------------------------------------------------
 *
 * ledger_ingest.h
 *	  Shared declarations of the ledger_ingest extension.
 *
 * One static launcher background worker starts one dynamic background
 * worker per running pipeline.  A worker fetches ledgers from its source
 * (the inbox table, or an Ethereum JSON-RPC node) outside any transaction,
 * then applies them in short transactions that run the user's handlers,
 * record the ledger headers, advance the cursor with a compare-and-swap and
 * queue one NOTIFY.  Shared state is published only from the commit
 * callback (publish.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_INGEST_H
#define LEDGER_INGEST_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define LI_SCHEMA			"ledger_ingest"
#define LI_CHANNEL			"ledger_ingest"
#define LI_NAME_MAX			64		/* pipeline names are at most 63 bytes */
#define LI_HASH_LEN			32
#define LI_ADDRESS_LEN		20
#define LI_MAX_TOPICS		4

/* GUCs (module.c) */
extern char *li_database;
extern int	li_max_pipelines;
extern double li_notify_queue_limit;

/* ----------------------------------------------------------------
 * Positions and ledgers
 * ----------------------------------------------------------------
 */

/*
 * A cursor position.  complete = true means ledger "ledger" and all its
 * events are applied (SQL: tx_index and event_index NULL); otherwise the
 * ledger is applied up to and including event (tx_index, event_index).
 */
typedef struct LiPosition
{
	int64		ledger;
	bool		complete;
	int32		tx_index;
	int32		event_index;
} LiPosition;

/* One event (an EVM log), parsed and validated. */
typedef struct LiEvent
{
	int32		tx_index;
	int32		event_index;	/* EVM: logIndex */
	uint8		tx_hash[LI_HASH_LEN];
	bool		has_tx_hash;
	uint8		address[LI_ADDRESS_LEN];
	int			ntopics;
	uint8		topics[LI_MAX_TOPICS][LI_HASH_LEN];
	bytea	   *data;
} LiEvent;

/* One ledger (an EVM block with its logs), parsed and validated. */
typedef struct LiLedger
{
	int64		number;
	uint8		hash[LI_HASH_LEN];
	uint8		parent_hash[LI_HASH_LEN];
	bool		has_parent;
	TimestampTz time;
	int			nevents;
	LiEvent    *events;			/* sorted by (tx_index, event_index) */
	int64		inbox_id;		/* inbox row it came from, or 0 */
	TransactionId inbox_xmin;	/* the version of that row that was read */
} LiLedger;

/* ledger.c */
extern void li_parse_ledger(JsonbContainer *doc, LiLedger *out);
extern bool li_quantity_from_jsonb(JsonbValue *v, int64 *out);
extern bool li_numeric_to_int64(Numeric n, int64 *out);
extern void li_hex_to_bytes(const char *field, const char *s, int len,
							uint8 *out, int outlen);
extern bytea *li_hex_to_bytea(const char *field, const char *s, int len);
extern char *li_bytes_to_hex(const uint8 *b, int len);
extern bytea *li_bytes_to_bytea(const uint8 *b, int len);
extern struct ArrayType *li_topics_array(const LiEvent *e);
extern JsonbValue *li_jsonb_get(JsonbContainer *c, const char *key);

/* packed.c */
extern bytea *li_pack_ledger(const LiLedger *l);
extern bool li_unpack_ledger(bytea *packed, LiLedger *out);

/* ----------------------------------------------------------------
 * Options (options.c)
 * ----------------------------------------------------------------
 */
typedef enum LiCommitMode
{
	LI_COMMIT_EVENT,
	LI_COMMIT_LEDGER,
	LI_COMMIT_BATCH
} LiCommitMode;

/* the search_path of the launcher and the workers (see worker.c) */
#define LI_WORKER_SEARCH_PATH "pg_catalog, public, pg_temp"

/* bytes of freed memory a worker keeps in its heap between batches */
#define LI_MALLOC_KEEP (32 * 1024 * 1024)

#define LI_MAX_URLS 16
#define LI_RPC_MAX_RESPONSE ((int64) 256 * 1024 * 1024)

typedef struct LiOptions
{
	bool		is_rpc;
	LiCommitMode commit;
	int			batch_max_events;
	int64		batch_max_bytes;	/* inbox: documents read per fetch, in bytes */
	int			batch_max_ledgers;
	int			batch_max_ms;
	int			poll_ms;
	int			max_retries;	/* handler failures before 'failed' */
	/* evm_rpc */
	char	  **urls;			/* endpoints, failed over in order */
	int			nurls;
	Jsonb	   *addresses;		/* eth_getLogs "address" filter or NULL */
	Jsonb	   *topics;			/* eth_getLogs "topics" filter or NULL */
	int64		from_block;
	int64		to_block;		/* -1: follow the head forever */
	int			confirmations;
	int			block_range;
	int			timeout_ms;
	int			max_requests_per_second;	/* 0: no limit */
	int64		max_response_bytes;
	int			max_redirects;
	/* reorgs */
	int			reorg_window;	/* ledgers kept revertible; 0: none */
	char	   *finality;		/* evm_rpc: "latest", "safe" or "finalized" */
	/* a log a signature-registered handler cannot decode: fail, or skip it */
	bool		decode_error_fails;
	/* inbox: a ledger that arrives after a later one: skip it, or fail */
	bool		skip_late_ledgers;
} LiOptions;

extern void li_parse_options(const char *source, Jsonb *options, LiOptions *out);

/* ----------------------------------------------------------------
 * Shared memory (module.c)
 * ----------------------------------------------------------------
 */
typedef enum LiWorkerState
{
	LI_WS_NONE = 0,
	LI_WS_STARTING,
	LI_WS_IDLE,
	LI_WS_FETCHING,
	LI_WS_APPLYING,
	LI_WS_RETRYING
} LiWorkerState;

typedef struct LiSlot
{
	/* protected by LiShared->lock */
	bool		in_use;
	Oid			dboid;
	char		name[LI_NAME_MAX];

	/* protected by mutex */
	slock_t		mutex;
	pid_t		pid;			/* worker pid, 0 if none */
	Latch	   *latch;			/* worker latch, NULL if none */
	LiWorkerState wstate;
	int64		head;			/* newest ledger the source reported, -1 */
	bool		cursor_known;	/* committed cursor published? */
	LiPosition	committed;		/* committed cursor */
	int64		notifies_dropped;	/* NOTIFYs not queued: queue too full */
	char		error[256];		/* an error the worker could not record ("") */

	ConditionVariable cv;		/* broadcast when committed advances */
} LiSlot;

/*
 * The databases the supervisor knows of, and their launchers.  A database
 * is probed (a launcher connects, looks for the extension, and exits when
 * it is not installed or the database is paused); CREATE EXTENSION and
 * resume_database() mark it to be probed again.
 */
#define LI_MAX_DATABASES 256

typedef enum LiDbState
{
	LI_DB_FREE = 0,				/* entry unused */
	LI_DB_PROBE,				/* start a launcher to find out */
	LI_DB_ACTIVE,				/* the extension is installed: keep a launcher */
	LI_DB_ABSENT,				/* no extension: no launcher until registered */
	LI_DB_PAUSED				/* pause_database(): no launcher until resumed */
} LiDbState;

typedef struct LiDatabase
{
	Oid			dboid;
	LiDbState	state;
	uint32		generation;		/* registrations so far */
	pid_t		launcher_pid;	/* 0 if none */
	Latch	   *launcher_latch; /* NULL if none */
} LiDatabase;

typedef struct LiShared
{
	LWLock	   *lock;			/* slot allocation */
	slock_t		mutex;			/* supervisor_latch and dbs[] */
	Latch	   *supervisor_latch;
	LiDatabase	dbs[LI_MAX_DATABASES];
	LiSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} LiShared;

/* launcher.c: the entry of dboid (created as LI_DB_PROBE), NULL if full; hold li_shared->mutex */
extern LiDatabase *li_db_entry(Oid dboid, bool create);

extern LiShared *li_shared;

/*
 * How the launcher's last_error begins when it cannot start a running
 * pipeline's worker (no pipeline or worker slot): the status view shows
 * such a pipeline as 'waiting', and its worker clears it once up.
 */
#define LI_START_FAILURE "53000: could not start the pipeline's worker: "

extern void li_attach_shmem(void);
extern MemoryContext li_txn_begin(void);
extern void li_txn_commit(MemoryContext caller);
extern void li_txn_abort(MemoryContext caller);
extern LiSlot *li_find_slot(Oid dboid, const char *name, bool create);
extern void li_set_wstate(LiSlot *slot, LiWorkerState st);
extern bool li_position_reached(const LiPosition *committed, int64 ledger);

/* ----------------------------------------------------------------
 * Launcher and worker
 * ----------------------------------------------------------------
 */
PGDLLEXPORT void ledger_ingest_supervisor_main(Datum arg);
PGDLLEXPORT void ledger_ingest_launcher_main(Datum arg);
PGDLLEXPORT void ledger_ingest_worker_main(Datum arg);

/* ----------------------------------------------------------------
 * Publishing at commit (publish.c)
 * ----------------------------------------------------------------
 */
extern void li_register_xact_callback(void);
extern void li_publish_at_commit(LiSlot *slot, const LiPosition *pos);
extern void li_wake_launcher_at_commit(void);
extern void li_register_database_at_commit(void);
extern bool li_notify(LiSlot *slot, const char *pipeline, const char *payload);
extern void li_wake_worker_at_commit(const char *pipeline);

/* ----------------------------------------------------------------
 * Pipelines as the worker sees them (worker.c, apply.c)
 * ----------------------------------------------------------------
 */
typedef struct LiHandler
{
	int64		id;
	Oid			funcoid;
	char	   *name;			/* regprocedure text, for errors */
	bool		has_topic0;
	uint8		topic0[LI_HASH_LEN];
	bool		has_address;
	uint8		address[LI_ADDRESS_LEN];
	bool		set_based;		/* takes ledger_ingest.event[] */
	FmgrInfo   *fn;				/* set up on first call */
	Oid			revert_oid;		/* InvalidOid: none */
	char	   *revert_name;
	FmgrInfo   *revert_fn;
	void	   *abi;			/* compiled event signature (abi.h), or NULL */
	int			abi_ntopics;	/* topics a log of that event has */
} LiHandler;

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
} LiSink;

typedef struct LiPipeline
{
	char		name[LI_NAME_MAX];
	bool		is_rpc;
	Oid			owner;
	LiOptions	opts;
	LiSlot	   *slot;
	int			nhandlers;
	LiHandler  *handlers;
	int			ntracked;
	LiTracked  *tracked;
	bool		has_revert;		/* some handler has a revert function */
	bool		has_set_based;	/* some handler takes ledger_ingest.event[] */
	int			nsinks;
	LiSink	   *sinks;
	int64		journal_floor;	/* journal ledgers above this one */
	/*
	 * The installed extension's SQL is 0.2 or later (it has
	 * ledger_ingest.decode_error and tracked.since_ledger); this library
	 * also runs pipelines of an extension not yet updated (ALTER EXTENSION
	 * ledger_ingest UPDATE).
	 */
	bool		sql_0_2;
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
extern bool li_check_continuity(LiPipeline *p, const LiLedger *prev,
								const LiLedger *l, char **error);

/* source_inbox.c */
extern void li_inbox_fetch(LiPipeline *p, LiBatch *batch);
extern void li_inbox_reject(LiPipeline *p, int64 id, const char *error);

/* rpc_client.c: the worker's JSON-RPC 2.0 client (libcurl) */
typedef struct LiRpcError
{
	int64		code;			/* JSON-RPC error code (0: the response was too large) */
	char	   *message;
} LiRpcError;
/* create the libcurl handle once per worker; ERROR if libcurl fails */
extern void li_rpc_client_init(void);
/* use the pipeline's endpoints, timeouts and caps (opts must outlive the calls) */
extern void li_rpc_client_configure(const LiOptions *opts);
/*
 * one call, never inside a transaction: its "result" (a jbvNull for JSON
 * null); fails over between endpoints; ERROR on transport, HTTP or
 * response-format failures (08006, 22P02, 54000) and, when err is NULL,
 * on a JSON-RPC error object (38000); with err, NULL and *err instead
 */
extern JsonbValue *li_rpc_call_ex(const char *method, const char *params, LiRpcError *err);
/* li_rpc_call_ex with err NULL */
extern JsonbValue *li_rpc_call(const char *method, const char *params);
/* " (endpoint i of n)" with several endpoints, else "": never the URL */
extern char *li_rpc_endpoint_label(void);
/* the node's Retry-After in ms (0 if none), forgotten once taken */
extern int64 li_rpc_take_retry_after_ms(void);
/* release the libcurl handle (at process exit) */
extern void li_rpc_cleanup(void);

/* source_evm_rpc.c */
/* the worker's client, configured for pipeline p */
extern void li_rpc_init(LiPipeline *p);
/* fetch the next ledgers with logs matching the pipeline's filters into batch */
extern void li_rpc_fetch(LiPipeline *p, LiBatch *batch);

typedef enum LiForkResult
{
	LI_FORK_FOUND,				/* *fork is the newest ledger both branches share */
	LI_FORK_BEYOND_WINDOW,		/* no stored ledger in the window matches */
	LI_FORK_NONE				/* the stored chain is canonical after all */
} LiForkResult;
extern LiForkResult li_rpc_find_fork(LiPipeline *p, int64 *fork, uint8 *fork_hash);

/* apply.c */
typedef enum LiApplyResult
{
	LI_APPLY_OK,
	LI_APPLY_LOST_CAS
} LiApplyResult;

/* apply the batch in transactions cut by options.commit; LOST_CAS: the cursor moved */
extern LiApplyResult li_apply_batch(LiPipeline *p, LiBatch *batch);
/* SPI_prepare + SPI_keepplan, ERROR on failure */
extern SPIPlanPtr li_keep_plan(const char *sql, int nargs, Oid *argtypes);
/* the apply transaction's kept plans and the event row type (inside a transaction) */
extern void li_prepare_apply_plans(void);
/* the FmgrInfo of a handler, cached in *cache; ERROR unless the owner may execute it */
extern FmgrInfo *li_handler_fn(LiPipeline *p, Oid funcoid, FmgrInfo **cache);
/* call fn(arg) as the pipeline owner in a security-restricted operation */
extern void li_call_as_owner(LiPipeline *p, FmgrInfo *fn, Datum arg);
/* does handler h take event e (address, topic0, the signature's topic count)? */
extern bool li_handler_matches(const LiHandler *h, const LiEvent *e);
/* e decoded by h's signature; NULL with *error when the log does not decode */
extern Jsonb *li_decode_args(LiHandler *h, LiEvent *e, char **error);
/* a copy of the event value ev with its args replaced */
extern Datum li_event_with_args(Datum ev, Jsonb *args);

/* revert.c */
/* roll back every ledger after fork in one transaction; LOST_CAS: the cursor moved */
extern LiApplyResult li_revert(LiPipeline *p, int64 fork, const uint8 *fork_hash);

/* sink.c */
extern uint64 li_sink_write(LiPipeline *p, LiLedger **ledgers, int *first, int *last, int nsegs);

/* journal.c */
extern void li_journal_begin(void);
extern void li_journal_flush(LiPipeline *p);

/* the apply position, for error reports (apply.c) */
typedef struct LiApplyContext
{
	bool		active;
	bool		journal;		/* journal tracked tables for this ledger */
	LiPipeline *pipeline;
	int64		ledger;
	int32		tx_index;
	int32		event_index;
	const char *handler;
} LiApplyContext;
extern LiApplyContext li_apply_ctx;

#endif							/* LEDGER_INGEST_H */
