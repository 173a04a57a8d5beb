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
 *	   the document's hex, doc_ledger() agreeing on the number.
 * A finding is reported with abort(), which libFuzzer turns into a crash
 * report with the input saved (crash-<sha1>).
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
 * The backend's own handlers for SIGALRM (timeout.c), SIGINT, SIGTERM and
 * SIGFPE are reset first: libFuzzer installs its handlers (per-input
 * -timeout, graceful interrupt, crash on SIGFPE) only where none is set.
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
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "ledger_ingest.h"

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
static uint64 n_events = 0;

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
			strncmp(edata->message, "invalid ledger document: ",
					strlen("invalid ledger document: ")) != 0)
			finding("li_parse_ledger() raised an undocumented error", edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* the "key" string of the document decodes to bytes b[0..LI_HASH_LEN) */
static void
check_hash(Jsonb *jb, const char *key, const uint8 *b)
{
	JsonbValue *v = li_jsonb_get(&jb->root, key);
	char	   *hex = li_bytes_to_hex(b, LI_HASH_LEN);

	if (v == NULL || v->type != jbvString)
		finding("an accepted hash is not a string in the document", NULL);
	if (v->val.string.len != 2 + 2 * LI_HASH_LEN ||
		pg_strncasecmp(v->val.string.val + 2, hex + 2, 2 * LI_HASH_LEN) != 0)
		finding("an accepted hash does not decode to the document's hex", NULL);
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
	check_hash(jb, "hash", l->hash);
	if (l->has_parent)
		check_hash(jb, "parentHash", l->parent_hash);
	if (l->nevents < 0 || (l->nevents > 0) != (l->events != NULL))
		finding("inconsistent nevents/events", NULL);
	for (int i = 0; i < l->nevents; i++)
	{
		const LiEvent *e = &l->events[i];

		if (e->tx_index < 0 || e->event_index < 0)
			finding("negative transactionIndex or logIndex accepted", NULL);
		if (e->ntopics < 0 || e->ntopics > LI_MAX_TOPICS)
			finding("topic count out of range", NULL);
		if (e->data == NULL || VARSIZE(e->data) < VARHDRSZ)
			finding("bad data varlena", NULL);
		/* read every byte: ASan checks the varlena's extent */
		for (Size k = 0; k < VARSIZE(e->data) - VARHDRSZ; k++)
			sink ^= ((const uint8 *) VARDATA(e->data))[k];
		if (i > 0)
		{
			const LiEvent *p = &l->events[i - 1];

			if (e->tx_index < p->tx_index ||
				e->event_index <= p->event_index)
				finding("events not sorted by (transactionIndex, logIndex) with unique increasing logIndex", NULL);
		}
	}
	n_events += l->nevents;
	(void) sink;
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

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(input_cxt);
	return 0;
}

static void
report_counts(int code, Datum arg)
{
	fprintf(stderr,
			"ledger_fuzz: " UINT64_FORMAT " inputs: " UINT64_FORMAT " skipped (NUL or invalid UTF-8), "
			UINT64_FORMAT " rejected by jsonb_in, " UINT64_FORMAT " rejected by li_parse_ledger, "
			UINT64_FORMAT " accepted (" UINT64_FORMAT " events)\n",
			n_inputs, n_skipped, n_bad_json, n_rejected, n_accepted, n_events);
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
	argv[argc++] = "ledger_fuzz";
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
	on_proc_exit(report_counts, (Datum) 0);

	/* let libFuzzer install its own handlers (see the header comment) */
	disable_all_timeouts(false);
	pqsignal(SIGALRM, SIG_DFL);
	pqsignal(SIGINT, SIG_DFL);
	pqsignal(SIGTERM, SIG_DFL);
	pqsignal(SIGFPE, SIG_DFL);

	rc = LLVMFuzzerRunDriver(&argc, &argv, ledger_fuzz_one);
	PG_RETURN_INT32(rc);
}
