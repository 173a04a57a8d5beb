/*-------------------------------------------------------------------------
 *
 * ledger_fuzz.c
 *	  libFuzzer target for the ledger-document parser (src/ledger.c), run
 *	  inside a single-user PostgreSQL backend.
 *
 * li_parse_ledger() needs the backend runtime (jsonb, palloc, ereport), so
 * this file and src/ledger.c are built, instrumented for libFuzzer, ASan and
 * UBSan, into a test-only loadable module (not the extension: see
 * run-ledger.sh) together with libFuzzer's runtime without its main()
 * (libclang_rt.fuzzer_no_main).  The module's SQL function
 *
 *		ledger_fuzz_run(args text[]) RETURNS int
 *
 * hands args (libFuzzer's command line: flags and corpus directories) to
 * LLVMFuzzerRunDriver(&argc, &argv, callback), libFuzzer's entry point for a
 * program that has its own main().  The driver never returns: like a
 * libFuzzer binary it ends the process, with exit(0) after -max_total_time
 * without findings (the backend's atexit hook then runs its on_proc_exit
 * callbacks, which print this file's counters), or with a crash report and
 * a non-zero status.  So it runs only in a single-user backend
 * (postgres --single, started with the ASan runtime in LD_PRELOAD because
 * the postgres binary is not instrumented); in a normal backend the function
 * refuses to run.
 *
 * Each input takes the real path of an inbox document:
 *	1. skipped (callback returns -1: never kept in the corpus) when it holds
 *	   a NUL or is not valid in the database encoding (UTF8): such text never
 *	   reaches jsonb_in in the server either;
 *	2. jsonb_in() under PG_TRY; an ERROR is a normal rejection
 *	   (FlushErrorState());
 *	3. ledger_ingest_doc_ledger(), the SQL function behind the inbox's
 *	   generated column: documented never to raise, so an ERROR is a finding;
 *	4. li_parse_ledger() under PG_TRY; an ERROR must be the documented kind
 *	   (SQLSTATE class 22, "invalid ledger document: ..."), anything else is
 *	   a finding;
 *	5. on success, checks of the result: events sorted by (transactionIndex,
 *	   logIndex) with unique increasing logIndex, at most 4 topics, sane
 *	   data varlenas (every byte read), "hash"/"parentHash" decoding back to
 *	   the document's hex, doc_ledger() agreeing on the number, and the
 *	   packed form (src/packed.c, the inbox's generated column the worker
 *	   reads) reading back as the same ledger, and refused when truncated;
 *	6. the same text read as an eth_getLogs response by the evm_rpc
 *	   source's reader (src/rpc_stream.c), against jsonb_in (check_stream).
 * A finding is reported with abort(), which libFuzzer turns into a crash
 * report with the input saved (crash-<sha1>).
 *
 * Mutations: besides libFuzzer's byte-level ones, a custom mutator
 * (LLVMFuzzerCustomMutator, see below) edits documents structurally with
 * jsonb_in/jsonb_set/jsonb_delete_path/JsonbToCString, so that a field's
 * type or range changes while the rest of the document stays valid.
 *
 * Making palloc visible to ASan: an AllocSet carves chunks out of 8 kB+
 * malloc'd blocks, so ASan would not see an overrun into the next chunk.
 * Every allocation of an input (the input text, jsonb_in's work, the Jsonb,
 * the LiLedger, everything li_parse_ledger allocates) is therefore made in
 * an "exact" memory context defined here (MemoryContextCreate() with our own
 * MemoryContextMethods): each chunk is its own malloc() of header + exactly
 * the requested size, so ASan's redzone starts at the first byte past the
 * chunk, the header is poisoned (an underrun from instrumented code is
 * reported too), and resetting the context after each input frees every
 * chunk (so a stale pointer is a use-after-free for ASan).  PostgreSQL 15
 * finds a chunk's context in the pointer-sized word just before it
 * (GetMemoryChunkContext()), which the header ends with.  The Jsonb from
 * jsonb_in (built in a StringInfo with slack) is copied into an exact chunk
 * of VARSIZE bytes, as a detoasted datum would be.
 *
 * Before the driver starts, the stack base is set (set_stack_base(), which
 * PostgreSQL 15's standalone backend never does, leaving check_stack_depth()
 * inert: deeply nested JSON would crash jsonb_in instead of raising "stack
 * depth limit exceeded" as in a normal backend), and the backend's own
 * handlers for SIGALRM (timeout.c), SIGINT, SIGTERM and SIGFPE are reset:
 * libFuzzer installs its handlers (per-input -timeout, graceful interrupt,
 * crash on SIGFPE) only where none is set.
 *
 * Coverage: only this file and src/ledger.c are instrumented; jsonb_in and
 * the jsonb accessors run uninstrumented in the postgres binary.
 *
 * Build and run: see run-ledger.sh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <stdint.h>

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "ledger.h"
#include "rpc_client.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#endif
#endif
#ifndef ASAN_POISON_MEMORY_REGION
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void) (addr), (void) (size))
#endif

#define NO_SANITIZE_ADDRESS __attribute__((no_sanitize("address")))

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(ledger_fuzz_run);

/* libFuzzer (FuzzerInterface.h) */
extern int	LLVMFuzzerRunDriver(int *argc, char ***argv,
								int (*user_cb) (const uint8_t *data, size_t size));
extern size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
extern size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
									  size_t max_size, unsigned int seed);

/* src/ledger.c, the SQL function ledger_ingest.doc_ledger(jsonb) */
extern PGDLLEXPORT Datum ledger_ingest_doc_ledger(PG_FUNCTION_ARGS);

/* ----------------------------------------------------------------
 * The exact memory context: one malloc() per chunk
 * ----------------------------------------------------------------
 */
typedef struct ExactChunk
{
	struct ExactChunk *prev;
	struct ExactChunk *next;
	Size		size;
	MemoryContext context;		/* last: see GetMemoryChunkContext() */
} ExactChunk;

#define EXACT_CHUNK_HDRSZ	sizeof(ExactChunk)

StaticAssertDecl(sizeof(ExactChunk) == MAXALIGN(sizeof(ExactChunk)),
				 "ExactChunk must keep chunks MAXALIGNed");
StaticAssertDecl(offsetof(ExactChunk, context) + sizeof(MemoryContext) == sizeof(ExactChunk),
				 "the context pointer must be the word before the chunk");

typedef struct ExactContext
{
	MemoryContextData header;
	ExactChunk *chunks;			/* doubly linked, newest first */
	Size		nchunks;
} ExactContext;

#define ChunkOf(pointer)	((ExactChunk *) ((char *) (pointer) - EXACT_CHUNK_HDRSZ))
#define PointerOf(chunk)	((void *) ((char *) (chunk) + EXACT_CHUNK_HDRSZ))

NO_SANITIZE_ADDRESS
static void *
exact_alloc(MemoryContext context, Size size)
{
	ExactContext *set = (ExactContext *) context;
	ExactChunk *chunk = malloc(EXACT_CHUNK_HDRSZ + size);

	if (chunk == NULL)
		return NULL;
	chunk->size = size;
	chunk->context = context;
	chunk->prev = NULL;
	chunk->next = set->chunks;
	if (set->chunks != NULL)
		set->chunks->prev = chunk;
	set->chunks = chunk;
	set->nchunks++;
	context->mem_allocated += size;
	ASAN_POISON_MEMORY_REGION(chunk, EXACT_CHUNK_HDRSZ);
	return PointerOf(chunk);
}

NO_SANITIZE_ADDRESS
static void
exact_free(MemoryContext context, void *pointer)
{
	ExactContext *set = (ExactContext *) context;
	ExactChunk *chunk = ChunkOf(pointer);

	if (chunk->prev != NULL)
		chunk->prev->next = chunk->next;
	else
		set->chunks = chunk->next;
	if (chunk->next != NULL)
		chunk->next->prev = chunk->prev;
	set->nchunks--;
	context->mem_allocated -= chunk->size;
	free(chunk);
}

NO_SANITIZE_ADDRESS
static void *
exact_realloc(MemoryContext context, void *pointer, Size size)
{
	ExactChunk *old = ChunkOf(pointer);
	void	   *result;

	/* always move: a stale pointer to the old chunk is then caught */
	result = exact_alloc(context, size);
	if (result == NULL)
		return NULL;
	memcpy(result, pointer, Min(size, old->size));
	exact_free(context, pointer);
	return result;
}

NO_SANITIZE_ADDRESS
static void
exact_reset(MemoryContext context)
{
	ExactContext *set = (ExactContext *) context;
	ExactChunk *chunk = set->chunks;

	while (chunk != NULL)
	{
		ExactChunk *next = chunk->next;

		free(chunk);
		chunk = next;
	}
	set->chunks = NULL;
	set->nchunks = 0;
	context->mem_allocated = 0;
}

static void
exact_delete(MemoryContext context)
{
	exact_reset(context);
	free(context);
}

NO_SANITIZE_ADDRESS
static Size
exact_get_chunk_space(MemoryContext context, void *pointer)
{
	return EXACT_CHUNK_HDRSZ + ChunkOf(pointer)->size;
}

static bool
exact_is_empty(MemoryContext context)
{
	return ((ExactContext *) context)->chunks == NULL;
}

static void
exact_stats(MemoryContext context, MemoryStatsPrintFunc printfunc,
			void *passthru, MemoryContextCounters *totals,
			bool print_to_stderr)
{
	ExactContext *set = (ExactContext *) context;
	Size		total = context->mem_allocated + set->nchunks * EXACT_CHUNK_HDRSZ;

	if (printfunc != NULL)
	{
		char		stats_string[200];

		snprintf(stats_string, sizeof(stats_string),
				 "%zu total in %zu chunks (one malloc each); 0 free",
				 total, set->nchunks);
		printfunc(context, passthru, stats_string, print_to_stderr);
	}
	if (totals != NULL)
	{
		totals->nblocks += set->nchunks;
		totals->totalspace += total;
	}
}

#ifdef MEMORY_CONTEXT_CHECKING
static void
exact_check(MemoryContext context)
{
	/* ASan does the checking */
}
#endif

static const MemoryContextMethods exact_methods = {
	exact_alloc,
	exact_free,
	exact_realloc,
	exact_reset,
	exact_delete,
	exact_get_chunk_space,
	exact_is_empty,
	exact_stats
#ifdef MEMORY_CONTEXT_CHECKING
	,exact_check
#endif
};

static MemoryContext
exact_context_create(MemoryContext parent, const char *name)
{
	ExactContext *set = malloc(sizeof(ExactContext));

	if (set == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	set->chunks = NULL;
	set->nchunks = 0;

	/*
	 * The tag is only looked at by MemoryContextIsValid() in assertions;
	 * the methods table is what matters.
	 */
	MemoryContextCreate((MemoryContext) set, T_AllocSetContext,
						&exact_methods, parent, name);
	return (MemoryContext) set;
}

/* ----------------------------------------------------------------
 * The fuzz target
 * ----------------------------------------------------------------
 */
static MemoryContext input_cxt = NULL;

static uint64 n_inputs = 0;
static uint64 n_skipped = 0;
static uint64 n_bad_json = 0;
static uint64 n_rejected = 0;
static uint64 n_accepted = 0;
static uint64 n_packed = 0;
static uint64 n_events = 0;
static uint64 n_streamed = 0;
static uint64 n_stream_logs = 0;

static void finding(const char *what, ErrorData *edata) pg_attribute_noreturn();

/* a finding: report it and let libFuzzer save the input */
static void
finding(const char *what, ErrorData *edata)
{
	if (edata != NULL)
		fprintf(stderr, "ledger_fuzz: FINDING: %s: ERROR %s: %s\n",
				what, unpack_sql_state(edata->sqlerrcode),
				edata->message ? edata->message : "(no message)");
	else
		fprintf(stderr, "ledger_fuzz: FINDING: %s\n", what);
	fflush(stderr);
	abort();
}

/* the document as jsonb, in an exact chunk; NULL when jsonb_in rejects it */
static Jsonb *
input_to_jsonb(const char *text)
{
	Jsonb	   *volatile result = NULL;

	PG_TRY();
	{
		Jsonb	   *jb;
		Jsonb	   *copy;

		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
		copy = palloc(VARSIZE(jb));
		memcpy(copy, jb, VARSIZE(jb));
		pfree(jb);
		result = copy;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(input_cxt);
		FlushErrorState();
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

/* ledger_ingest.doc_ledger(jb): false for SQL NULL; must never raise */
static bool
call_doc_ledger(Jsonb *jb, int64 *number)
{
	volatile bool isnull = true;
	volatile int64 result = 0;

	PG_TRY();
	{
		LOCAL_FCINFO(fcinfo, 1);
		Datum		d;

		InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = JsonbPGetDatum(jb);
		fcinfo->args[0].isnull = false;
		d = ledger_ingest_doc_ledger(fcinfo);
		isnull = fcinfo->isnull;
		if (!isnull)
			result = DatumGetInt64(d);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(input_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		finding("ledger_ingest.doc_ledger() raised (it must never raise)", edata);
	}
	PG_END_TRY();
	*number = result;
	return !isnull;
}

/* li_parse_ledger(); false when it rejects the document as documented */
static bool
parse_ledger(Jsonb *jb, LiLedger *out)
{
	volatile bool ok = true;

	PG_TRY();
	{
		li_parse_ledger(&jb->root, out);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(input_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION ||
			edata->message == NULL ||
			(strncmp(edata->message, "invalid ledger document: ",
					 strlen("invalid ledger document: ")) != 0 &&
			 strncmp(edata->message, "invalid Stellar ledger document: ",
					 strlen("invalid Stellar ledger document: ")) != 0))
			finding("li_parse_ledger() raised an undocumented error", edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * the "key" string of the document decodes to bytes b[0..LI_HASH_LEN):
 * "0x"-prefixed hex, or plain hex in a Stellar document
 */
static void
check_hash(Jsonb *jb, const char *key, const uint8 *b, bool stellar)
{
	JsonbValue *v = li_jsonb_get(&jb->root, key);
	char	   *hex = li_bytes_to_hex(b, LI_HASH_LEN);
	int			prefix = stellar ? 0 : 2;

	if (v == NULL || v->type != jbvString)
		finding("an accepted hash is not a string in the document", NULL);
	if (v->val.string.len != prefix + 2 * LI_HASH_LEN ||
		pg_strncasecmp(v->val.string.val + prefix, hex + 2, 2 * LI_HASH_LEN) != 0)
		finding("an accepted hash does not decode to the document's hex", NULL);
}

/*
 * The packed form (src/packed.c) of an accepted ledger must read back as
 * the same ledger, and a truncated one must be refused, not misread.
 */
static void
check_packed(const LiLedger *l)
{
	bytea	   *packed = li_pack_ledger(l);
	LiLedger	u;

	if (packed == NULL)
		return;					/* over 1 GB, or Stellar: the worker parses the document */
	if (!li_unpack_ledger(packed, &u))
		finding("li_unpack_ledger() refused what li_pack_ledger() wrote", NULL);
	if (u.number != l->number || u.time != l->time || u.has_parent != l->has_parent ||
		memcmp(u.hash, l->hash, LI_HASH_LEN) != 0 ||
		(l->has_parent && memcmp(u.parent_hash, l->parent_hash, LI_HASH_LEN) != 0) ||
		u.nevents != l->nevents)
		finding("the packed ledger's header differs from the parsed one", NULL);
	for (int i = 0; i < l->nevents; i++)
	{
		const LiEvent *a = &l->events[i];
		const LiEvent *b = &u.events[i];

		if (a->tx_index != b->tx_index || a->event_index != b->event_index ||
			a->has_tx_hash != b->has_tx_hash || a->ntopics != b->ntopics ||
			(a->has_tx_hash && memcmp(a->tx_hash, b->tx_hash, LI_HASH_LEN) != 0) ||
			memcmp(a->address, b->address, LI_ADDRESS_LEN) != 0 ||
			memcmp(a->topics, b->topics, LI_HASH_LEN * a->ntopics) != 0 ||
			VARSIZE(a->data) != VARSIZE(b->data) ||
			memcmp(VARDATA(a->data), VARDATA(b->data), VARSIZE(a->data) - VARHDRSZ) != 0)
			finding("a packed event differs from the parsed one", NULL);
	}
	if (u.ntxs != l->ntxs)
		finding("the packed ledger's transactions differ from the parsed ones", NULL);
	for (int i = 0; i < l->ntxs; i++)
	{
		LiTx		a = l->txs[i];
		LiTx		b = u.txs[i];

		if (VARSIZE_ANY_EXHDR(a.input) != VARSIZE_ANY_EXHDR(b.input) ||
			memcmp(VARDATA_ANY(a.input), VARDATA_ANY(b.input), VARSIZE_ANY_EXHDR(a.input)) != 0)
			finding("a packed transaction's input differs from the parsed one", NULL);
		a.input = b.input = NULL;
		if (memcmp(&a, &b, sizeof(LiTx)) != 0)
			finding("a packed transaction differs from the parsed one", NULL);
	}
	/* cut short by 4 bytes (the layout's unit): refused */
	SET_VARSIZE(packed, VARSIZE(packed) - 4);
	if (li_unpack_ledger(packed, &u))
		finding("li_unpack_ledger() accepted a truncated packed ledger", NULL);
	n_packed++;
}

static void
check_ledger(Jsonb *jb, const LiLedger *l)
{
	int64		number;
	volatile uint8 sink = 0;

	if (l->number < 0)
		finding("negative ledger number accepted", NULL);
	if (!call_doc_ledger(jb, &number) || number != l->number)
		finding("doc_ledger() disagrees with li_parse_ledger() on the number", NULL);
	check_hash(jb, "hash", l->hash, l->stellar);
	/* a Stellar ledger's parent hash comes from its header */
	if (l->has_parent && !l->stellar)
		check_hash(jb, "parentHash", l->parent_hash, false);
	if (l->stellar != li_is_stellar_document(&jb->root))
		finding("a ledger parsed as the other chain's", NULL);
	if (l->nevents < 0 || (l->nevents > 0) != (l->events != NULL))
		finding("inconsistent nevents/events", NULL);
	for (int i = 0; i < l->nevents; i++)
	{
		const LiEvent *e = &l->events[i];

		if (e->tx_index < 0 || e->event_index < 0)
			finding("negative transactionIndex or logIndex accepted", NULL);
		if (e->ntopics < 0 || e->ntopics > LI_MAX_TOPICS)
			finding("topic count out of range", NULL);
		if (l->stellar ? (e->address_len != 0 && e->address_len != 32) : e->address_len != LI_ADDRESS_LEN)
			finding("an address of the wrong length", NULL);
		for (int t = 0; t < e->ntopics; t++)
		{
			int			len;
			const uint8 *topic = li_event_topic(e, t, &len);

			if (len < 4 || (!l->stellar && len != LI_HASH_LEN))
				finding("a topic of the wrong length", NULL);
			for (int k = 0; k < len; k++)
				sink ^= topic[k];
		}
		if (e->data == NULL || VARSIZE(e->data) < VARHDRSZ)
			finding("bad data varlena", NULL);
		/* read every byte: ASan checks the varlena's extent */
		for (Size k = 0; k < VARSIZE(e->data) - VARHDRSZ; k++)
			sink ^= ((const uint8 *) VARDATA(e->data))[k];
		if (i > 0)
		{
			const LiEvent *p = &l->events[i - 1];

			if (l->stellar ? (e->tx_index < p->tx_index ||
							  (e->tx_index == p->tx_index && e->event_index <= p->event_index))
				: (e->tx_index < p->tx_index || e->event_index <= p->event_index))
				finding("events not sorted by (transactionIndex, logIndex) with unique increasing logIndex", NULL);
		}
	}
	n_events += l->nevents;
	(void) sink;
	check_packed(l);
}

/* ----------------------------------------------------------------
 * The eth_getLogs response reader (src/rpc_stream.c), against jsonb_in
 *
 * Every input is also read as a JSON-RPC response to request id 1 by
 * li_stream_logs_response(), and what it says is checked against jsonb_in
 * and li_raw_log_from_jsonb() on the same text (the general path it
 * stands in for): DONE only for valid JSON with id 1, no "error" and an
 * array "result", each element read as li_raw_log_from_jsonb() reads it;
 * a response that jsonb finds so must be DONE (or BAD_SHAPE: "result"
 * given twice, which jsonb cannot show); ELSEWHERE without an element
 * passed on; INVALID only for text jsonb_in rejects.
 * ----------------------------------------------------------------
 */
typedef struct Collected
{
	LiRawLog   *logs;
	int			n;
	int			cap;
} Collected;

static void
collect_log(void *arg, const LiRawLog *log, int i)
{
	Collected  *c = arg;

	if (i != c->n)
		finding("the reader numbered the logs out of order", NULL);
	if (c->n == c->cap)
	{
		c->cap = Max(16, c->cap * 2);
		c->logs = c->logs ? repalloc(c->logs, sizeof(LiRawLog) * c->cap) :
			palloc(sizeof(LiRawLog) * c->cap);
	}
	c->logs[c->n++] = *log;
}

static bool
same_value(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
													 NumericGetDatum(a->val.numeric),
													 NumericGetDatum(b->val.numeric))) == 0;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		default:
			return true;		/* null, or a container's kind */
	}
}

static bool
same_raw_log(const LiRawLog *a, const LiRawLog *b)
{
	if (a->is_object != b->is_object)
		return false;
	if (!a->is_object)
		return true;
	for (int k = 0; k < LI_LOG_NKEYS; k++)
		if (a->present[k] != b->present[k] ||
			(a->present[k] && !same_value(&a->vals[k], &b->vals[k])))
			return false;
	if (a->present[LI_LOG_TOPICS] && a->vals[LI_LOG_TOPICS].type == jbvArray)
	{
		if (a->ntopics != b->ntopics)
			return false;
		for (int t = 0; t < Min(a->ntopics, LI_MAX_TOPICS); t++)
			if (!same_value(&a->topics[t], &b->topics[t]))
				return false;
	}
	return true;
}

/* does jsonb see a response to id 1 with an array result and no error? */
static JsonbContainer *
clean_result(Jsonb *jb)
{
	JsonbValue *v;
	int64		id;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		return NULL;
	v = li_jsonb_get(&jb->root, "id");
	if (v == NULL || !li_quantity_from_jsonb(v, &id) || id != 1)
		return NULL;
	v = li_jsonb_get(&jb->root, "error");
	if (v != NULL && v->type != jbvNull)
		return NULL;
	v = li_jsonb_get(&jb->root, "result");
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

static void
check_stream(const char *text, size_t size, Jsonb *jb)
{
	Collected	c = {0};
	volatile LiStreamResult r = LI_STREAM_ELSEWHERE;
	volatile bool raised = false;
	volatile int raised_code = 0;
	JsonbContainer *result = clean_result(jb);

	PG_TRY();
	{
		r = li_stream_logs_response(text, size, 1, collect_log, &c);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(input_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		raised = true;
		raised_code = edata->sqlerrcode;
	}
	PG_END_TRY();
	if (raised)
	{
		/*
		 * Nesting deeper than the stack allows: each parser has its own
		 * frames, so the depth at which they give up differs; an error
		 * either way.  Anything else the reader raises, jsonb_in must too.
		 */
		if (jb != NULL && raised_code != ERRCODE_STATEMENT_TOO_COMPLEX)
			finding("the logs reader raised on text jsonb_in accepts", NULL);
		return;
	}
	switch (r)
	{
		case LI_STREAM_DONE:
			if (result == NULL)
				finding("the logs reader took a response jsonb does not see as an array result to id 1", NULL);
			if ((int) JsonContainerSize(result) != c.n)
				finding("the logs reader passed on another number of elements than jsonb has", NULL);
			for (int i = 0; i < c.n; i++)
			{
				LiRawLog	expected;

				li_raw_log_from_jsonb(getIthJsonbValueFromContainer(result, i), &expected);
				if (!same_raw_log(&c.logs[i], &expected))
					finding("the logs reader read a log differently from li_raw_log_from_jsonb", NULL);
			}
			n_streamed++;
			n_stream_logs += c.n;
			return;
		case LI_STREAM_ELSEWHERE:
			if (c.n != 0)
				finding("the logs reader passed logs on, then left the response to the general path", NULL);
			break;
		case LI_STREAM_INVALID:
			if (jb != NULL)
				finding("the logs reader found invalid JSON that jsonb_in accepts", NULL);
			break;
		case LI_STREAM_BAD_ID:
			if (jb == NULL)
				finding("the logs reader checked the id of invalid JSON", NULL);
			break;
		case LI_STREAM_BAD_SHAPE:
			if (jb == NULL)
				finding("the logs reader checked the members of invalid JSON", NULL);
			return;				/* jsonb cannot show a duplicate "result" */
	}
	if (result != NULL)
		finding("the logs reader did not take a response jsonb sees as an array result to id 1", NULL);
}

static int
ledger_fuzz_one(const uint8_t *data, size_t size)
{
	MemoryContext oldcxt;
	char	   *text;
	Jsonb	   *jb;
	LiLedger   *ledger;
	int64		number;

	n_inputs++;
	/* text with a NUL or invalid encoding never reaches jsonb_in */
	if (size >= MaxAllocSize || memchr(data, '\0', size) != NULL ||
		!pg_verify_mbstr(GetDatabaseEncoding(), (const char *) data, (int) size, true))
	{
		n_skipped++;
		return -1;
	}

	oldcxt = MemoryContextSwitchTo(input_cxt);
	text = palloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';

	jb = input_to_jsonb(text);
	if (jb == NULL)
		n_bad_json++;
	else
	{
		/* any jsonb: doc_ledger() must not raise */
		(void) call_doc_ledger(jb, &number);
		ledger = palloc(sizeof(LiLedger));
		if (parse_ledger(jb, ledger))
		{
			n_accepted++;
			check_ledger(jb, ledger);
		}
		else
			n_rejected++;
	}
	check_stream(text, size, jb);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(input_cxt);
	return 0;
}

/* ----------------------------------------------------------------
 * Structure-aware mutations
 *
 * Byte-level mutations of a block document rarely yield another valid
 * document with one field changed in type or range (a JSON integer for a
 * quantity, a 17-digit quantity, "removed": "x", five topics).  Half of the
 * time the custom mutator (found by libFuzzer as LLVMFuzzerCustomMutator)
 * parses the input with jsonb_in and edits it with jsonb_set() /
 * jsonb_delete_path(): one field of the ledger or of one log set to an
 * interesting value, or removed, or a log's topics replaced, or a log
 * appended again; the result is the edited document printed by
 * JsonbToCString().  The other half, and whenever the input is no JSON
 * object, libFuzzer's own byte-level mutations (LLVMFuzzerMutate).
 * ----------------------------------------------------------------
 */
static MemoryContext mutate_cxt = NULL;

static const char *const ledger_keys[] = {
	"number", "hash", "parentHash", "timestamp", "logs"
};
static const char *const log_keys[] = {
	"address", "topics", "data", "blockNumber", "blockHash",
	"transactionHash", "transactionIndex", "logIndex", "removed"
};

/* any field: values of the wrong type or at the edges */
static const char *const odd_values[] = {
	"null", "true", "false", "0", "-1", "1.5", "1e3", "1e20", "-0",
	"2147483647", "2147483648", "1099511627776", "1099511627777",
	"9223372036854775807", "9223372036854775808", "-9223372036854775808",
	"\"\"", "\"x\"", "\"0x\"", "\"0X0\"", "\"0x00\"", "\"0x0g\"", "\"\\u00e9\"",
	"[]", "{}", "[\"0x\"]", "[null]", "[{}]", "[[]]"
};

static bool
is_quantity_key(const char *key)
{
	return strcmp(key, "number") == 0 || strcmp(key, "timestamp") == 0 ||
		strcmp(key, "blockNumber") == 0 || strcmp(key, "transactionIndex") == 0 ||
		strcmp(key, "logIndex") == 0;
}

static void
append_hex_digits(StringInfo buf, pg_prng_state *rng, int n)
{
	static const char digits[] = "0123456789abcdefABCDEF";

	for (int i = 0; i < n; i++)
		appendStringInfoChar(buf, digits[pg_prng_uint32(rng) % (sizeof(digits) - 1)]);
}

/* a JSON value for "key", as text */
static char *
random_value(pg_prng_state *rng, const char *key)
{
	StringInfoData buf;
	uint32		r = pg_prng_uint32(rng) % 10;

	initStringInfo(&buf);
	if (r < 3)
		return pstrdup(odd_values[pg_prng_uint32(rng) % lengthof(odd_values)]);
	if (is_quantity_key(key) && r < 6)
	{
		/* a JSON integer: near an edge, or of 0..64 random bits */
		static const char *const edges[] = {
			"0", "1", "-1", "2147483647", "2147483648", "1099511627776",
			"1099511627777", "9223372036854775807", "9223372036854775808",
			"18446744073709551616", "1.0", "1e2", "12345678901234567890e-10"
		};
		int			bits = pg_prng_uint32(rng) % 65;

		if (pg_prng_uint32(rng) % 2 == 0)
			return pstrdup(edges[pg_prng_uint32(rng) % lengthof(edges)]);
		appendStringInfo(&buf, UINT64_FORMAT,
						 bits == 64 ? pg_prng_uint64(rng) :
						 pg_prng_uint64(rng) & (((uint64) 1 << bits) - 1));
		return buf.data;
	}
	if (is_quantity_key(key))
	{
		/* a hex quantity: 0..18 digits, sometimes "0X" or a leading zero */
		int			n = pg_prng_uint32(rng) % 19;

		appendStringInfoString(&buf, pg_prng_uint32(rng) % 8 == 0 ? "\"0X" : "\"0x");
		if (pg_prng_uint32(rng) % 8 == 0)
			appendStringInfoChar(&buf, '0');
		append_hex_digits(&buf, rng, n);
		appendStringInfoChar(&buf, '"');
		return buf.data;
	}
	/* DATA: around 20 or 32 bytes, any length, or an odd digit count */
	{
		static const int lens[] = {0, 1, 19, 20, 21, 31, 32, 33, 64};
		int			n = 2 * lens[pg_prng_uint32(rng) % lengthof(lens)];

		if (pg_prng_uint32(rng) % 4 == 0)
			n = pg_prng_uint32(rng) % 200;
		appendStringInfoString(&buf, "\"0x");
		append_hex_digits(&buf, rng, n);
		appendStringInfoChar(&buf, '"');
	}
	return buf.data;
}

static Jsonb *
text_jsonb(const char *text)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* {logs, i, key} or {key} as text[] */
static ArrayType *
make_path(int log, const char *key, int elem)
{
	Datum		elems[4];
	int			n = 0;

	if (log >= 0)
	{
		elems[n++] = CStringGetTextDatum("logs");
		elems[n++] = CStringGetTextDatum(psprintf("%d", log));
	}
	elems[n++] = CStringGetTextDatum(key);
	if (elem >= 0)
		elems[n++] = CStringGetTextDatum(psprintf("%d", elem));
	return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}

static Jsonb *
set_path(Jsonb *jb, ArrayType *path, Jsonb *value)
{
	return DatumGetJsonbP(DirectFunctionCall4(jsonb_set, JsonbPGetDatum(jb),
											  PointerGetDatum(path),
											  JsonbPGetDatum(value),
											  BoolGetDatum(true)));
}

/* one structural edit of the document jb; may raise */
static Jsonb *
edit_document(Jsonb *jb, pg_prng_state *rng)
{
	JsonbValue *logs = li_jsonb_get(&jb->root, "logs");
	int			nlogs = 0;
	int			log = -1;
	const char *key;
	uint32		op = pg_prng_uint32(rng) % 10;

	if (logs != NULL && logs->type == jbvBinary &&
		JsonContainerIsArray(logs->val.binary.data))
		nlogs = JsonContainerSize(logs->val.binary.data);
	if (nlogs > 0 && pg_prng_uint32(rng) % 3 != 0)
		log = pg_prng_uint32(rng) % nlogs;
	key = log >= 0 ? log_keys[pg_prng_uint32(rng) % lengthof(log_keys)]
		: ledger_keys[pg_prng_uint32(rng) % lengthof(ledger_keys)];

	if (op < 6)
	{
		/* one field of the ledger or of a log set to another value */
		return set_path(jb, make_path(log, key, -1),
						text_jsonb(random_value(rng, key)));
	}
	if (op < 7)
	{
		/* one field removed */
		return DatumGetJsonbP(DirectFunctionCall2(jsonb_delete_path,
												  JsonbPGetDatum(jb),
												  PointerGetDatum(make_path(log, key, -1))));
	}
	if (op < 9 && log >= 0)
	{
		/* a log's topics: 0..6 of them, mostly 32 bytes */
		StringInfoData buf;
		int			n = pg_prng_uint32(rng) % 7;

		initStringInfo(&buf);
		appendStringInfoChar(&buf, '[');
		for (int i = 0; i < n; i++)
		{
			if (i > 0)
				appendStringInfoString(&buf, ", ");
			if (pg_prng_uint32(rng) % 8 == 0)
				appendStringInfoString(&buf, random_value(rng, "topics"));
			else
			{
				appendStringInfoString(&buf, "\"0x");
				append_hex_digits(&buf, rng, 2 * LI_HASH_LEN);
				appendStringInfoChar(&buf, '"');
			}
		}
		appendStringInfoChar(&buf, ']');
		return set_path(jb, make_path(log, "topics", -1), text_jsonb(buf.data));
	}
	if (log >= 0)
	{
		/* a log appended once more (same logIndex), or copied over another */
		JsonbValue *v = getIthJsonbValueFromContainer(logs->val.binary.data, log);
		int			to = pg_prng_uint32(rng) % 2 ? nlogs : (int) (pg_prng_uint32(rng) % nlogs);

		return set_path(jb, make_path(-1, "logs", to), JsonbValueToJsonb(v));
	}
	return set_path(jb, make_path(-1, key, -1),
					text_jsonb(random_value(rng, key)));
}

/* the edited document in data, or 0 when the input is not a JSON object */
static size_t
mutate_json(uint8_t *data, size_t size, size_t max_size, pg_prng_state *rng)
{
	MemoryContext oldcxt;
	volatile size_t result = 0;

	if (size == 0 || size >= MaxAllocSize || data[0] != '{' ||
		memchr(data, '\0', size) != NULL ||
		!pg_verify_mbstr(GetDatabaseEncoding(), (const char *) data, (int) size, true))
		return 0;
	oldcxt = MemoryContextSwitchTo(mutate_cxt);
	PG_TRY();
	{
		Jsonb	   *jb;
		char	   *out;
		size_t		len;

		jb = text_jsonb(pnstrdup((const char *) data, size));
		if (JB_ROOT_IS_OBJECT(jb))
		{
			jb = edit_document(jb, rng);
			out = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
			len = strlen(out);
			/* grow no document past 64 kB: big ones cost time, not coverage */
			if (len <= max_size && (len <= size || len <= 65536))
			{
				memcpy(data, out, len);
				result = len;
			}
		}
	}
	PG_CATCH();
	{
		/* not a document jsonb_set can edit: leave it to LLVMFuzzerMutate */
		MemoryContextSwitchTo(mutate_cxt);
		FlushErrorState();
		result = 0;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(mutate_cxt);
	return result;
}

size_t
LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
						unsigned int seed)
{
	pg_prng_state rng;
	size_t		len = 0;

	pg_prng_seed(&rng, seed);
	if (pg_prng_uint32(&rng) % 2 == 0)
		len = mutate_json(data, size, max_size, &rng);
	if (len == 0)
		len = LLVMFuzzerMutate(data, size, max_size);
	return len;
}

static void
report_counts(int code, Datum arg)
{
	fprintf(stderr,
			"ledger_fuzz: " UINT64_FORMAT " inputs: " UINT64_FORMAT " skipped (NUL or invalid UTF-8), "
			UINT64_FORMAT " rejected by jsonb_in, " UINT64_FORMAT " rejected by li_parse_ledger, "
			UINT64_FORMAT " accepted (" UINT64_FORMAT " events), " UINT64_FORMAT " packed and read back; "
			UINT64_FORMAT " read as eth_getLogs responses (" UINT64_FORMAT " logs) as jsonb reads them\n",
			n_inputs, n_skipped, n_bad_json, n_rejected, n_accepted, n_events, n_packed,
			n_streamed, n_stream_logs);
}

/*
 * ledger_fuzz_run(args text[]) RETURNS int
 *
 * Runs libFuzzer with args as its command line.  Does not return (see the
 * header comment).
 */
Datum
ledger_fuzz_run(PG_FUNCTION_ARGS)
{
	ArrayType  *args = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			argc;
	char	  **argv;
	int			rc;

	if (IsUnderPostmaster)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger_fuzz_run() must run in a single-user backend"),
				 errdetail("libFuzzer ends the process when it is done.")));
	if (GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger_fuzz_run() needs a UTF8 database")));

	deconstruct_array(args, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	argv = MemoryContextAlloc(TopMemoryContext, sizeof(char *) * (nelems + 2));
	argc = 0;
	argv[argc++] = MemoryContextStrdup(TopMemoryContext, "ledger_fuzz");
	for (int i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("libFuzzer arguments must not be null")));
		argv[argc++] = MemoryContextStrdup(TopMemoryContext,
										   TextDatumGetCString(elems[i]));
	}
	argv[argc] = NULL;

	input_cxt = exact_context_create(TopMemoryContext, "ledger_fuzz input");
	mutate_cxt = AllocSetContextCreate(TopMemoryContext, "ledger_fuzz mutator",
									   ALLOCSET_DEFAULT_SIZES);
	on_proc_exit(report_counts, (Datum) 0);

	/*
	 * A standalone backend never sets the stack base, so check_stack_depth()
	 * would let jsonb_in recurse into a SIGSEGV on "[[[[...", where a normal
	 * backend raises "stack depth limit exceeded".
	 */
	(void) set_stack_base();

	/* let libFuzzer install its own handlers (see the header comment) */
	disable_all_timeouts(false);
	pqsignal(SIGALRM, SIG_DFL);
	pqsignal(SIGINT, SIG_DFL);
	pqsignal(SIGTERM, SIG_DFL);
	pqsignal(SIGFPE, SIG_DFL);

	rc = LLVMFuzzerRunDriver(&argc, &argv, ledger_fuzz_one);
	PG_RETURN_INT32(rc);
}
