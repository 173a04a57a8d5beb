/*-------------------------------------------------------------------------
 *
 * prefetch.c
 *	  Fetching ahead of applying: an evm_rpc pipeline's fetcher process.
 *
 * A worker applies what it fetched in short transactions and never does
 * network I/O inside one; fetching and applying in the same process would
 * leave the node idle while the worker applies and the worker idle while
 * the node answers.  So an evm_rpc worker starts a fetcher: a background
 * worker of its own connected to no database (it reads no table and opens
 * no transaction; pg_stat_activity shows it as "ledger_ingest fetcher
 * <pipeline>", with the call it waits for), which runs the evm_rpc source (source_evm_rpc.c,
 * the same code the worker would run) from the worker's cursor on, and
 * sends each ledger, in its packed form (packed.c), through a shm_mq in a
 * dynamic shared memory segment the worker created.  The worker takes what
 * is there as its next batch.
 *
 * Backpressure: the fetcher starts no range beyond fetch_ahead_ledgers
 * ledgers past the committed cursor (LiSlot.committed, waited for on the
 * slot's condition variable), and blocks when the queue (fetch_ahead_bytes)
 * is full.  Its frontier shows in LiSlot.fetched (status.fetched).
 *
 * Exactly once: the fetcher keeps nothing.  The worker remembers where the
 * stream it receives continues; whenever its cursor is elsewhere (a batch
 * that failed and is fetched again, a lost compare-and-swap, a revert, a
 * rewind) or the pipeline's options changed, it stops the fetcher and
 * starts another from its cursor.  A crash loses only what was fetched and
 * not applied.
 *
 * Errors and reorgs: a fetch error in the fetcher goes to the worker as a
 * message (SQLSTATE, text, the node's Retry-After) and ends the fetcher;
 * the worker raises it as its own fetch error (status, backoff) and starts
 * a new fetcher on its next cycle.  A reorg at the fetcher's frontier is
 * flagged in shared memory before the message that reports it: the worker
 * then discards what it holds and has not applied (ledgers that branch may
 * have orphaned), stops the fetcher and looks for the fork point from its
 * own cursor as without a fetcher.
 *
 * Without a free background worker slot, or with fetch_ahead_ledgers 0,
 * the worker fetches in-line as before (li_rpc_fetch between its
 * transactions).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/wait_event.h"

#include "ledger_ingest.h"
#include "prefetch.h"
#include "rpc_client.h"
#include "source.h"

/* The dynamic shared memory of one fetcher: this header, options, queue. */
typedef struct FetchShared
{
	int			slot_index;		/* the pipeline's LiSlot */
	int			encoding;		/* the database's, for the JSON lexer */
	char		name[LI_NAME_MAX];
	/* where to start: the worker's cursor */
	LiPosition	start;
	bool		has_start_hash;
	uint8		start_hash[LI_HASH_LEN];
	/* set before the reorg message, with its text */
	pg_atomic_uint32 reorg_seen;
	char		reorg_error[512];
	Size		queue_offset;
	Size		opts_len;
	char		opts[FLEXIBLE_ARRAY_MEMBER];	/* li_options_flatten */
} FetchShared;

/* The head of each message; a ledger's packed form or an error text follows. */
typedef struct FetchMsg
{
	char		type;			/* FETCH_LEDGER, FETCH_ERROR, FETCH_REORG */
	int32		sqlerrcode;		/* FETCH_ERROR */
	int64		value;			/* LEDGER: journal_floor; ERROR: Retry-After ms */
} FetchMsg;

#define FETCH_LEDGER	'L'
#define FETCH_ERROR		'E'
#define FETCH_REORG		'R'

/* The worker's side: its one fetcher. */
static struct
{
	dsm_segment *seg;			/* NULL: no fetcher */
	FetchShared *fs;
	shm_mq_handle *mqh;
	BackgroundWorkerHandle *handle;
	LiSlot	   *slot;
	LiPosition	pos;			/* where the stream received continues */
	bool		exit_hook;
	bool		said_no_slot;
} fetcher;

static bool
same_position(const LiPosition *a, const LiPosition *b)
{
	return a->ledger == b->ledger && a->complete == b->complete &&
		(a->complete || (a->tx_index == b->tx_index && a->event_index == b->event_index));
}

static void
set_fetched(LiSlot *slot, int64 ledger)
{
	SpinLockAcquire(&slot->mutex);
	slot->fetched = ledger;
	SpinLockRelease(&slot->mutex);
}

/*
 * li_prefetch_stop -- stop the worker's fetcher, if it has one, and drop
 * whatever it fetched that was not received.
 */
void
li_prefetch_stop(void)
{
	if (fetcher.seg == NULL)
		return;
	TerminateBackgroundWorker(fetcher.handle);
	shm_mq_detach(fetcher.mqh);
	dsm_detach(fetcher.seg);
	pfree(fetcher.handle);
	fetcher.seg = NULL;
	fetcher.fs = NULL;
	fetcher.mqh = NULL;
	fetcher.handle = NULL;
	set_fetched(fetcher.slot, -1);
}

static void
prefetch_exit(int code, Datum arg)
{
	li_prefetch_stop();
}

/*
 * Start a fetcher for p from its cursor, with options flat[0..len).  false
 * when there is no free background worker slot or dynamic shared memory
 * segment (the caller fetches in-line).
 */
static bool
start_fetcher(LiPipeline *p, const char *flat, Size len)
{
	Size		queue = (Size) p->opts.fetch_ahead_bytes;
	Size		offset = MAXALIGN(offsetof(FetchShared, opts) + len);
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	BackgroundWorker w;
	FetchShared *fs;
	shm_mq	   *mq;
	dsm_segment *seg;

	seg = dsm_create(offset + queue, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		MemoryContextSwitchTo(old);
		return false;
	}
	dsm_pin_mapping(seg);
	fs = dsm_segment_address(seg);
	fs->slot_index = (int) (p->slot - li_shared->slots);
	fs->encoding = GetDatabaseEncoding();
	strlcpy(fs->name, p->name, LI_NAME_MAX);
	fs->start = p->cursor;
	fs->has_start_hash = p->has_cursor_hash;
	memcpy(fs->start_hash, p->cursor_hash, LI_HASH_LEN);
	pg_atomic_init_u32(&fs->reorg_seen, 0);
	fs->reorg_error[0] = '\0';
	fs->queue_offset = offset;
	fs->opts_len = len;
	memcpy(fs->opts, flat, len);
	mq = shm_mq_create((char *) fs + offset, queue);
	shm_mq_set_receiver(mq, MyProc);

	memset(&w, 0, sizeof(w));
	/* a connection to no database: it shows in pg_stat_activity */
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(w.bgw_library_name, "ledger_ingest", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "ledger_ingest_fetcher_main", BGW_MAXLEN);
	snprintf(w.bgw_name, BGW_MAXLEN, "ledger_ingest fetcher %s", p->name);
	strlcpy(w.bgw_type, "ledger_ingest fetcher", BGW_MAXLEN);
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &fetcher.handle))
	{
		dsm_detach(seg);
		MemoryContextSwitchTo(old);
		return false;
	}
	fetcher.seg = seg;
	fetcher.fs = fs;
	fetcher.mqh = shm_mq_attach(mq, seg, fetcher.handle);
	fetcher.slot = p->slot;
	fetcher.pos = p->cursor;
	if (!fetcher.exit_hook)
	{
		before_shmem_exit(prefetch_exit, (Datum) 0);
		fetcher.exit_hook = true;
	}
	MemoryContextSwitchTo(old);
	return true;
}

/* The fetcher saw a reorg: drop the batch, stop it, report the reorg. */
static void
take_reorg(LiBatch *batch)
{
	batch->nledgers = 0;
	batch->nevents = 0;
	batch->reorg = true;
	batch->reorg_error = pstrdup(fetcher.fs->reorg_error);
	li_prefetch_stop();
}

/* a ledger message into the batch */
static void
receive_ledger(LiPipeline *p, LiBatch *batch, const FetchMsg *m, const char *data, Size n)
{
	bytea	   *packed = palloc(n);
	LiLedger   *l;

	memcpy(packed, data, n);
	l = li_batch_add(batch);
	if (!li_unpack_ledger(packed, l))
		elog(ERROR, "ledger_ingest pipeline \"%s\": its fetcher sent an unreadable ledger", p->name);
	batch->nevents += l->nevents;
	p->journal_floor = m->value;
	fetcher.pos.ledger = l->number;
	fetcher.pos.complete = true;
}

/*
 * Receive what the fetcher has sent, up to batch_max_ledgers ledgers and
 * batch_max_bytes bytes, without waiting.
 */
static void
receive(LiPipeline *p, LiBatch *batch)
{
	int64		bytes = 0;

	while (batch->nledgers < p->opts.batch_max_ledgers && bytes < p->opts.batch_max_bytes)
	{
		Size		n;
		void	   *data;
		FetchMsg	m;
		shm_mq_result res;

		CHECK_FOR_INTERRUPTS();
		if (pg_atomic_read_u32(&fetcher.fs->reorg_seen) != 0)
		{
			take_reorg(batch);
			return;
		}
		res = shm_mq_receive(fetcher.mqh, &n, &data, true);
		if (res == SHM_MQ_WOULD_BLOCK)
			break;
		if (res == SHM_MQ_DETACHED || n < sizeof(FetchMsg))
		{
			li_prefetch_stop();
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("ledger_ingest pipeline \"%s\": its fetcher process exited", p->name),
					 errdetail("The server log has its reason; a new fetcher starts from the cursor.")));
		}
		memcpy(&m, data, sizeof(FetchMsg));
		switch (m.type)
		{
			case FETCH_LEDGER:
				receive_ledger(p, batch, &m, (char *) data + sizeof(FetchMsg), n - sizeof(FetchMsg));
				bytes += n;
				break;
			case FETCH_ERROR:
				{
					char	   *msg = pnstrdup((char *) data + sizeof(FetchMsg), n - sizeof(FetchMsg));

					li_prefetch_stop();
					li_rpc_set_retry_after_ms(m.value);
					ereport(ERROR, (errcode(m.sqlerrcode), errmsg_internal("%s", msg)));
				}
				break;
			default:
				take_reorg(batch);
				return;
		}
	}
	/* a reorg seen since: what the batch holds may be orphaned */
	if (batch->nledgers > 0 && pg_atomic_read_u32(&fetcher.fs->reorg_seen) != 0)
		take_reorg(batch);
}

/*
 * li_prefetch_fetch -- the evm_rpc pipeline p's next batch: from its
 * fetcher (started, or restarted from the cursor, as needed), or fetched
 * in-line (li_rpc_fetch) with fetch_ahead_ledgers 0 or no background worker
 * slot free.  An empty batch when nothing has arrived yet; a batch with
 * reorg set when the fetcher saw one; ERROR for the fetcher's fetch error.
 */
void
li_prefetch_fetch(LiPipeline *p, LiBatch *batch)
{
	Size		len;
	char	   *flat;

	if (p->opts.fetch_ahead_ledgers == 0)
	{
		li_prefetch_stop();
		li_rpc_fetch(p, batch);
		return;
	}
	flat = li_options_flatten(&p->opts, &len);
	if (fetcher.seg != NULL &&
		(!same_position(&fetcher.pos, &p->cursor) ||
		 len != fetcher.fs->opts_len || memcmp(flat, fetcher.fs->opts, len) != 0))
		li_prefetch_stop();
	if (fetcher.seg == NULL && !start_fetcher(p, flat, len))
	{
		if (!fetcher.said_no_slot)
			ereport(LOG,
					(errmsg("ledger_ingest pipeline \"%s\": no background worker slot or shared memory segment is free for a fetcher; fetching in the worker",
							p->name),
					 errhint("Raise max_worker_processes.")));
		fetcher.said_no_slot = true;
		li_rpc_fetch(p, batch);
		return;
	}
	fetcher.said_no_slot = false;
	receive(p, batch);
}

/* ----------------------------------------------------------------
 * The fetcher process
 * ----------------------------------------------------------------
 */

/* wait while the next range would start fetch_ahead_ledgers past the cursor */
static void
wait_for_room(LiPipeline *p)
{
	int64		next = p->cursor.complete ? p->cursor.ledger + 1 : p->cursor.ledger;

	for (;;)
	{
		int64		committed;

		SpinLockAcquire(&p->slot->mutex);
		committed = p->slot->cursor_known ? p->slot->committed.ledger : p->cursor.ledger;
		SpinLockRelease(&p->slot->mutex);
		if (next - committed <= p->opts.fetch_ahead_ledgers)
		{
			li_rpc_limit_ranges(committed + p->opts.fetch_ahead_ledgers);
			break;
		}
		(void) ConditionVariableTimedSleep(&p->slot->cv, 1000, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

static void
send_msg(shm_mq_handle *mqh, const FetchMsg *m, const void *data, Size n)
{
	shm_mq_iovec iov[2];

	iov[0].data = (const char *) m;
	iov[0].len = sizeof(FetchMsg);
	iov[1].data = data;
	iov[1].len = n;
	/* blocks while the queue is full; the worker gone: so are we */
	if (shm_mq_sendv(mqh, iov, n > 0 ? 2 : 1, false, true) != SHM_MQ_SUCCESS)
		proc_exit(0);
}

/* li_rpc_fetch into batch; a fetch error goes to the worker, and we exit */
static void
fetch_or_report(LiPipeline *p, LiBatch *batch, shm_mq_handle *mqh)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		li_rpc_fetch(p, batch);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		FetchMsg	m = {FETCH_ERROR, 0, 0};

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		m.sqlerrcode = edata->sqlerrcode;
		m.value = li_rpc_take_retry_after_ms();
		send_msg(mqh, &m, edata->message, strlen(edata->message));
		proc_exit(0);
	}
	PG_END_TRY();
}

/* send the batch's ledgers; the fetcher's cursor moves past them */
static void
send_batch(LiPipeline *p, LiBatch *batch, shm_mq_handle *mqh)
{
	for (int i = 0; i < batch->nledgers; i++)
	{
		LiLedger   *l = &batch->ledgers[i];
		bytea	   *packed = li_pack_ledger(l);
		FetchMsg	m = {FETCH_LEDGER, 0, p->journal_floor};

		CHECK_FOR_INTERRUPTS();
		if (packed == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("ledger " INT64_FORMAT " is too large to pass to the worker", l->number)));
		send_msg(mqh, &m, packed, VARSIZE(packed));
		pfree(packed);
		p->cursor.ledger = l->number;
		p->cursor.complete = true;
		p->has_cursor_hash = true;
		memcpy(p->cursor_hash, l->hash, LI_HASH_LEN);
	}
	if (batch->nledgers > 0)
		set_fetched(p->slot, p->cursor.ledger);
}

/*
 * ledger_ingest_fetcher_main -- a fetcher's main (see the file header):
 * bgw_main_arg is the handle of the segment its worker created.
 */
void
ledger_ingest_fetcher_main(Datum arg)
{
	dsm_segment *seg;
	FetchShared *fs;
	shm_mq	   *mq;
	shm_mq_handle *mqh;
	LiPipeline	p;
	MemoryContext cxt;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "ledger_ingest fetcher");
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		proc_exit(0);			/* the worker already stopped us */
	fs = dsm_segment_address(seg);
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	SetDatabaseEncoding(fs->encoding);
	SetConfigOption("application_name", psprintf("ledger_ingest fetcher %s", fs->name),
					PGC_USERSET, PGC_S_SESSION);
	mq = (shm_mq *) ((char *) fs + fs->queue_offset);
	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);

	memset(&p, 0, sizeof(p));
	strlcpy(p.name, fs->name, LI_NAME_MAX);
	p.is_rpc = true;
	p.slot = &li_shared->slots[fs->slot_index];
	li_options_unflatten(fs->opts, &p.opts);
	p.cursor = fs->start;
	p.has_cursor_hash = fs->has_start_hash;
	memcpy(p.cursor_hash, fs->start_hash, LI_HASH_LEN);
	li_rpc_init(&p);
	li_rpc_reuse_head();

	cxt = AllocSetContextCreate(TopMemoryContext, "ledger_ingest fetch",
								ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		LiBatch		batch;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(cxt);
		wait_for_room(&p);
		old = MemoryContextSwitchTo(cxt);
		li_batch_init(&batch, cxt);
		fetch_or_report(&p, &batch, mqh);
		send_batch(&p, &batch, mqh);
		MemoryContextSwitchTo(old);
		if (batch.reorg)
		{
			FetchMsg	m = {FETCH_REORG, 0, 0};

			strlcpy(fs->reorg_error, batch.reorg_error ? batch.reorg_error : "reorg", sizeof(fs->reorg_error));
			pg_write_barrier();
			pg_atomic_write_u32(&fs->reorg_seen, 1);
			send_msg(mqh, &m, NULL, 0);
			proc_exit(0);
		}
		if (batch.nledgers == 0)
		{
			/* at the head (or at to_block): look again after poll_ms */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 p.opts.poll_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
