/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Reads and writes of the extension's tables.
 *
 * One function per statement, in three groups (pg_cron's job_metadata.c is
 * the model):
 * - the worker's and the launcher's: the pipeline a worker runs (row,
 *   cursor, handlers, tracked tables, raw sinks), the states and errors it
 *   records, the pipelines and the pause the launcher scans, a rejected
 *   inbox document, the stored ledger headers a source checks against;
 * - the SQL API's reads, as the caller (row-level security applies);
 * - the SQL API's writes, _catalog_write (below).
 * The apply and revert transactions keep their own statements, prepared
 * once (apply.c, revert.c), and the inbox source its read.
 *
 * _catalog_write: members of ledger_ingest_admin hold no INSERT, UPDATE or DELETE on the
 * extension's tables (producers keep INSERT on the inbox): a write
 * privilege on a shared table would let one owner LOCK it and stall every
 * other owner's pipelines.  They read their own rows through row-level
 * security, and every change goes through the API functions, which check
 * their arguments as the caller and then call _catalog_write() for each
 * change.  _catalog_write() names one of a fixed set of statements, checks
 * that the calling role may make it (a member of the pipeline's owner, the
 * owner of the table it names, the database owner), and runs it as the
 * owner of the extension's tables.  This is pg_cron's model
 * (job_metadata.c): the caller is GetUserId() of a SECURITY INVOKER C
 * function, which no SQL-level SECURITY DEFINER function could learn.
 *
 * Calling _catalog_write() directly gives an admin nothing the API does
 * not: each statement touches only the named pipeline's rows, and the
 * checks it makes are those above.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "abi.h"
#include "catalog.h"
#include "factory.h"
#include "ledger_ingest.h"



/* ----------------------------------------------------------------
 * The worker's and the launcher's reads and writes
 * ----------------------------------------------------------------
 */

/*
 * Run a read-only SELECT with $1 = the pipeline's name; ERROR naming
 * "what" unless it succeeds.  Returns the rows (SPI_tuptable).
 */
uint64
li_select_for_pipeline(const char *sql, const char *pipeline, const char *what)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(pipeline)};
	int			ret;

	ret = SPI_execute_with_args(sql, 1, types, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed: %s", what, SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * The pipeline's row and cursor: options parsed into p->opts (allocations
 * in cxt).  *missing says so when the owner role is gone; *start_failure
 * whether last_error is the launcher's LI_START_FAILURE.  When the
 * pipeline is gone or not 'running', returns that (its state in *state)
 * and reads nothing.
 */
static LiPipelineFound
read_pipeline_row(LiPipeline *p, MemoryContext cxt, char **missing, char **state,
				  bool *start_failure)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	int			ret;
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull;
	char	   *source;
	Jsonb	   *opts;
	MemoryContext old;
	Datum		hashd;

	args[0] = CStringGetTextDatum(p->name);
	args[1] = CStringGetTextDatum(LI_START_FAILURE);
	ret = SPI_execute_with_args("SELECT p.state, p.source, p.options, p.owner::pg_catalog.oid, "
								"c.ledger, c.ledger_hash, c.tx_index, c.event_index, "
								"EXISTS (SELECT 1 FROM pg_catalog.pg_roles r "
								"        WHERE r.oid OPERATOR(pg_catalog.=) p.owner::pg_catalog.oid), "
								"pg_catalog.to_regclass('ledger_ingest.decode_error') IS NOT NULL, "
								"coalesce(pg_catalog.starts_with(p.last_error, $2), false), "
								"pg_catalog.to_regclass('ledger_ingest.factory') IS NOT NULL "
								"FROM ledger_ingest.pipeline p JOIN ledger_ingest.cursor c "
								"ON c.pipeline OPERATOR(pg_catalog.=) p.name "
								"WHERE p.name OPERATOR(pg_catalog.=) $1",
								2, types, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the pipeline failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return LI_PIPELINE_GONE;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*state = SPI_getvalue(tup, desc, 1);
	if (strcmp(*state, "running") != 0)
		return LI_PIPELINE_NOT_RUNNING;

	old = MemoryContextSwitchTo(cxt);
	source = SPI_getvalue(tup, desc, 2);
	opts = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
	li_parse_options(source, opts, &p->opts);
	p->is_rpc = p->opts.is_rpc;
	p->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	p->cursor.ledger = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	hashd = SPI_getbinval(tup, desc, 6, &isnull);
	p->has_cursor_hash = false;
	if (!isnull)
	{
		bytea	   *h = DatumGetByteaPP(hashd);

		if (VARSIZE_ANY_EXHDR(h) == LI_HASH_LEN)
		{
			memcpy(p->cursor_hash, VARDATA_ANY(h), LI_HASH_LEN);
			p->has_cursor_hash = true;
		}
	}
	p->cursor.tx_index = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
	p->cursor.complete = isnull;
	p->cursor.event_index = p->cursor.complete ? 0 :
		DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
	if (p->cursor.complete)
		p->cursor.tx_index = 0;
	MemoryContextSwitchTo(old);
	p->sql_0_2 = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
	*start_failure = DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull));
	p->sql_0_7 = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
	if (!DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull)))
		*missing = psprintf("the owner of pipeline \"%s\" (role OID %u) no longer exists",
						   p->name, p->owner);
	return LI_PIPELINE_RUNNING;
}

/* the greatest common divisor of a and b (gcd(0, b) = b) */
static int64
gcd64(int64 a, int64 b)
{
	while (b != 0)
	{
		int64		t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * A block handler's row of read_handlers' query (columns 1 to 3: id, oid,
 * name) into p->block_handlers, with its "every"; p->opts.block_every is
 * the gcd of them all.
 */
static void
read_block_handler(LiPipeline *p, MemoryContext cxt, char **missing, HeapTuple tup,
				   TupleDesc desc, int every)
{
	LiBlockHandler *h = &p->block_handlers[p->nblock_handlers++];
	bool		isnull;

	h->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	h->funcoid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	h->name = MemoryContextStrdup(cxt, isnull ? SPI_getvalue(tup, desc, 3) :
								  format_procedure(h->funcoid));
	if (isnull && *missing == NULL)
		*missing = psprintf("block handler function %s of pipeline \"%s\" does not exist (dropped or renamed)",
						   h->name, p->name);
	h->every = every;
	/* each handler's ledgers are multiples of the gcd */
	p->opts.block_every = gcd64(p->opts.block_every, every);
}

/*
 * A transaction handler's row of read_handlers' query (columns 1 to 3 as a
 * block handler's; 5 its address, 13 its selector, 14 failed) into
 * p->tx_handlers.
 */
static void
read_tx_handler(LiPipeline *p, MemoryContext cxt, char **missing, HeapTuple tup, TupleDesc desc)
{
	LiTxHandler *h = &p->tx_handlers[p->ntx_handlers++];
	bool		isnull;
	Datum		d;

	h->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	h->funcoid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	h->name = MemoryContextStrdup(cxt, format_procedure(h->funcoid));
	d = SPI_getbinval(tup, desc, 5, &isnull);
	if (!isnull && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d)) == LI_ADDRESS_LEN)
	{
		h->has_address = true;
		memcpy(h->address, VARDATA_ANY(DatumGetByteaPP(d)), LI_ADDRESS_LEN);
	}
	d = SPI_getbinval(tup, desc, 13, &isnull);
	if (!isnull)
	{
		bytea	   *sel = DatumGetByteaPP(d);

		h->has_selector = true;
		h->selector_len = (int) Min(VARSIZE_ANY_EXHDR(sel), 4);
		memcpy(h->selector, VARDATA_ANY(sel), h->selector_len);
	}
	h->failed = DatumGetBool(SPI_getbinval(tup, desc, 14, &isnull));
	(void) missing;				/* a dropped function: proargtypes is NULL, read as a handler */
}

/*
 * The pipeline's handlers, in registration order (allocations in cxt;
 * their number in *nhandlers), and its block handlers (read_block_handler);
 * the first one whose function is gone sets *missing unless it is set.
 */
static LiHandler *
read_handlers(LiPipeline *p, MemoryContext cxt, char **missing, int *nhandlers)
{
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull;
	int			nh;
	LiHandler  *handlers;

	/*
	 * Handlers are stored as text since 0.2 (regprocedure in 0.1: "::text"
	 * reads both, so this library also runs a pipeline whose extension is
	 * not yet updated).
	 */
	nh = (int) li_select_for_pipeline("SELECT h.id, f.oid, h.handler::pg_catalog.text, h.topic0, h.address, "
								   "r.oid, h.revert::pg_catalog.text, h.event, "
								   "f.proargtypes[0] OPERATOR(pg_catalog.<>) 'ledger_ingest.event'::pg_catalog.regtype, "
								   /* every is 0.6's: set for a block handler */
								   "(pg_catalog.to_jsonb(h) OPERATOR(pg_catalog.->>) 'every')::pg_catalog.int4, "
								   /* 0.7's: transaction handlers (selector, failed), (event, transaction) */
								   "coalesce(f.proargtypes[0] OPERATOR(pg_catalog.=) "
								   "  pg_catalog.to_regtype('ledger_ingest.transaction'), false), "
								   "f.pronargs OPERATOR(pg_catalog.=) 2, "
								   "pg_catalog.decode(pg_catalog.substr(pg_catalog.to_jsonb(h) OPERATOR(pg_catalog.->>) 'selector', 3), 'hex'), "
								   "coalesce((pg_catalog.to_jsonb(h) OPERATOR(pg_catalog.->>) 'failed')::pg_catalog.bool, false) "
								   "FROM ledger_ingest.handler h "
								   "LEFT JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) "
								   "  pg_catalog.to_regprocedure(h.handler::pg_catalog.text)::pg_catalog.oid "
								   "LEFT JOIN pg_catalog.pg_proc r ON r.oid OPERATOR(pg_catalog.=) "
								   "  pg_catalog.to_regprocedure(h.revert::pg_catalog.text)::pg_catalog.oid "
								   "WHERE h.pipeline OPERATOR(pg_catalog.=) $1 ORDER BY h.id",
								   p->name, "the handlers");
	handlers = MemoryContextAllocZero(cxt, sizeof(LiHandler) * Max(nh, 1));
	p->block_handlers = MemoryContextAllocZero(cxt, sizeof(LiBlockHandler) * Max(nh, 1));
	p->nblock_handlers = 0;
	p->tx_handlers = MemoryContextAllocZero(cxt, sizeof(LiTxHandler) * Max(nh, 1));
	p->ntx_handlers = 0;
	p->opts.block_every = 0;
	for (int row = 0, i = 0; row < nh; row++)
	{
		LiHandler  *h = &handlers[i];
		Datum		d;

		tup = SPI_tuptable->vals[row];
		desc = SPI_tuptable->tupdesc;
		d = SPI_getbinval(tup, desc, 10, &isnull);
		if (!isnull)
		{
			read_block_handler(p, cxt, missing, tup, desc, DatumGetInt32(d));
			continue;
		}
		if (DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull)))
		{
			read_tx_handler(p, cxt, missing, tup, desc);
			continue;
		}
		i++;
		h->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		h->funcoid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		/* named as PostgreSQL names it under the worker's search_path */
		h->name = MemoryContextStrdup(cxt, isnull ? SPI_getvalue(tup, desc, 3) :
									  format_procedure(h->funcoid));
		if (isnull && *missing == NULL)
			*missing = psprintf("handler function %s of pipeline \"%s\" does not exist (dropped or renamed)",
							   h->name, p->name);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull)
		{
			bytea	   *t = DatumGetByteaPP(d);

			h->has_topic0 = true;
			h->topic0_len = (int) VARSIZE_ANY_EXHDR(t);
			h->topic0 = MemoryContextAlloc(cxt, Max(h->topic0_len, 1));
			memcpy(h->topic0, VARDATA_ANY(t), h->topic0_len);
		}
		d = SPI_getbinval(tup, desc, 5, &isnull);
		if (!isnull)
		{
			bytea	   *a = DatumGetByteaPP(d);

			h->has_address = true;
			h->address_len = (int) Min(VARSIZE_ANY_EXHDR(a), LI_MAX_ADDRESS_LEN);
			memcpy(h->address, VARDATA_ANY(a), h->address_len);
		}
		d = SPI_getbinval(tup, desc, 6, &isnull);
		if (!isnull)
		{
			h->revert_oid = DatumGetObjectId(d);
			h->revert_name = MemoryContextStrdup(cxt, format_procedure(h->revert_oid));
		}
		else if (SPI_getvalue(tup, desc, 7) != NULL && *missing == NULL)
			*missing = psprintf("revert function %s of pipeline \"%s\" does not exist (dropped or renamed)",
							   SPI_getvalue(tup, desc, 7), p->name);
		d = SPI_getbinval(tup, desc, 8, &isnull);
		if (!isnull)
		{
			h->abi = li_abi_compile_event(TextDatumGetCString(d), cxt);
			h->abi_ntopics = li_abi_event_ntopics(h->abi);
		}
		h->set_based = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		h->tx_arg = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull)) && !isnull;
	}
	nh -= p->nblock_handlers + p->ntx_handlers;
	p->opts.tx_addresses = NULL;
	{
		StringInfoData buf;

		initStringInfo(&buf);
		for (int i = 0; i < p->ntx_handlers; i++)
			if (p->tx_handlers[i].has_address)
				appendStringInfo(&buf, "%s\"%s\"", buf.len == 0 ? "[" : ",",
								 li_bytes_to_hex(p->tx_handlers[i].address, LI_ADDRESS_LEN));
		if (buf.len > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			appendStringInfoChar(&buf, ']');
			p->opts.tx_addresses = DatumGetJsonbPCopy(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
			MemoryContextSwitchTo(old);
		}
	}

	p->has_revert = false;
	p->has_set_based = false;
	for (int i = 0; i < nh; i++)
	{
		p->has_revert |= OidIsValid(handlers[i].revert_oid);
		p->has_set_based |= handlers[i].set_based;
	}
	*nhandlers = nh;
	return handlers;
}


/* The pipeline's tracked tables into p->tracked (allocations in cxt; *missing as read_handlers). */
static void
read_tracked(LiPipeline *p, MemoryContext cxt, char **missing)
{
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull;

	p->ntracked = (int) li_select_for_pipeline("SELECT t.tbl::pg_catalog.oid, t.tbl::pg_catalog.text, t.pk, "
											"EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
											"        WHERE c.oid OPERATOR(pg_catalog.=) t.tbl::pg_catalog.oid), "
											/* since_ledger is 0.2's: read it so that 0.1 works too */
											"(pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.->>) 'since_ledger')::pg_catalog.int8 "
											"FROM ledger_ingest.tracked t "
											"WHERE t.pipeline OPERATOR(pg_catalog.=) $1 ORDER BY 1",
											p->name, "the tracked tables");
	p->tracked = MemoryContextAllocZero(cxt, sizeof(LiTracked) * Max(p->ntracked, 1));
	for (int i = 0; i < p->ntracked; i++)
	{
		LiTracked  *t = &p->tracked[i];
		ArrayType  *pk;
		Datum	   *elems;
		int			nelems;

		tup = SPI_tuptable->vals[i];
		desc = SPI_tuptable->tupdesc;
		t->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		t->relname = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
		t->since = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		t->has_since = !isnull;
		if (!DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)) && *missing == NULL)
			*missing = psprintf("tracked table (OID %u) of pipeline \"%s\" no longer exists; untrack_table() it",
							   t->relid, p->name);
		pk = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull));
		deconstruct_array(pk, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &nelems);
		t->npk = nelems;
		t->pk = MemoryContextAlloc(cxt, sizeof(char *) * nelems);
		for (int j = 0; j < nelems; j++)
			t->pk[j] = MemoryContextStrdup(cxt, TextDatumGetCString(elems[j]));
	}
}

/* The pipeline's raw sinks into p->sinks (allocations in cxt; *missing as read_handlers). */
static void
read_sinks(LiPipeline *p, MemoryContext cxt, char **missing)
{
	bool		isnull;

	/* event, address and columns are 0.6's (table sinks) */
	p->nsinks = (int) li_select_for_pipeline("SELECT s.tbl::pg_catalog.oid, "
										  "EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
										  "        WHERE c.oid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid), "
										  "pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.->>) 'event', "
										  "pg_catalog.decode(pg_catalog.substr(pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.->>) 'address', 3), 'hex'), "
										  "pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.->) 'columns' "
										  "FROM ledger_ingest.sink s "
										  "WHERE s.pipeline OPERATOR(pg_catalog.=) $1 ORDER BY 1",
										  p->name, "the sinks");
	p->sinks = MemoryContextAllocZero(cxt, sizeof(LiSink) * Max(p->nsinks, 1));
	for (int i = 0; i < p->nsinks; i++)
	{
		LiSink	   *sink = &p->sinks[i];
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		d;

		p->sinks[i].relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		if (!isnull)
		{
			sink->event = MemoryContextStrdup(cxt, TextDatumGetCString(d));
			sink->abi = li_abi_compile_event(sink->event, cxt);
		}
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d)) == LI_ADDRESS_LEN)
		{
			sink->has_address = true;
			memcpy(sink->address, VARDATA_ANY(DatumGetByteaPP(d)), LI_ADDRESS_LEN);
		}
		d = SPI_getbinval(tup, desc, 5, &isnull);
		if (!isnull && JB_ROOT_IS_OBJECT(DatumGetJsonbP(d)))
		{
			Jsonb	   *j = DatumGetJsonbP(d);

			sink->columns = MemoryContextAlloc(cxt, VARSIZE(j));
			memcpy(sink->columns, j, VARSIZE(j));
		}
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)) &&
			*missing == NULL)
			*missing = psprintf("raw sink table (OID %u) of pipeline \"%s\" no longer exists; remove_raw_sink() it",
							   p->sinks[i].relid, p->name);
	}
}

/*
 * li_catalog_read_pipeline -- read the pipeline a worker runs (see
 * catalog.h).  Handlers are resolved by name with to_regprocedure, so that
 * a restored or upgraded database finds its functions again.
 */
LiPipelineFound
li_catalog_read_pipeline(LiPipeline *p, MemoryContext cxt, char **missing, char **state,
						 bool *start_failure)
{
	LiPipelineFound found;
	LiHandler  *handlers;
	int			nhandlers;
	LiPosition	held = p->cursor;

	found = read_pipeline_row(p, cxt, missing, state, start_failure);
	if (found != LI_PIPELINE_RUNNING)
		return found;
	/* moved by someone else (rewind, cursor_cas): children may be gone */
	if (held.ledger != p->cursor.ledger || held.complete != p->cursor.complete ||
		held.tx_index != p->cursor.tx_index || held.event_index != p->cursor.event_index)
		li_factories_forget();
	handlers = read_handlers(p, cxt, missing, &nhandlers);
	read_tracked(p, cxt, missing);
	read_sinks(p, cxt, missing);
	li_factories_read(p, cxt);
	p->handlers = handlers;
	p->nhandlers = nhandlers;
	return LI_PIPELINE_RUNNING;
}

/*
 * li_catalog_set_state -- a worker records its pipeline's state, and error
 * (kept when NULL), counting it in errors with count_error.  Only while
 * the pipeline is still 'running' (a concurrent stop() wins): returns
 * whether it was.
 */
bool
li_catalog_set_state(const char *pipeline, const char *state, const char *error,
					 bool count_error)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, BOOLOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			ret;

	args[0] = CStringGetTextDatum(pipeline);
	args[1] = CStringGetTextDatum(state);
	if (error)
		args[2] = CStringGetTextDatum(error);
	else
		nulls[2] = 'n';
	args[3] = BoolGetDatum(count_error);
	ret = SPI_execute_with_args("UPDATE ledger_ingest.pipeline SET state = $2, "
								"last_error = COALESCE($3, last_error), "
								"errors = errors OPERATOR(pg_catalog.+) (CASE WHEN $4 THEN 1 ELSE 0 END) "
								"WHERE name OPERATOR(pg_catalog.=) $1 "
								"AND state OPERATOR(pg_catalog.=) 'running'",
								4, types, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "updating the pipeline state failed: %s", SPI_result_code_string(ret));
	return SPI_processed == 1;
}

/*
 * li_catalog_clear_start_failure -- the worker is up: forget the
 * launcher's "could not start the pipeline's worker" (status shows a
 * running pipeline with that last_error and no worker as 'waiting').
 */
void
li_catalog_clear_start_failure(const char *pipeline)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(pipeline);
	args[1] = CStringGetTextDatum(LI_START_FAILURE);
	if (SPI_execute_with_args("UPDATE ledger_ingest.pipeline SET last_error = NULL "
							  "WHERE name OPERATOR(pg_catalog.=) $1 "
							  "AND pg_catalog.starts_with(last_error, $2)",
							  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "clearing the pipeline's start failure failed");
}

/*
 * li_catalog_record_start_failure -- the launcher records why a running
 * pipeline's worker could not start, and counts it, unless it is already
 * the pipeline's last_error (a long wait records it once).  Returns
 * whether it recorded it.
 */
bool
li_catalog_record_start_failure(const char *pipeline, const char *error)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(pipeline);
	args[1] = CStringGetTextDatum(error);
	if (SPI_execute_with_args("UPDATE ledger_ingest.pipeline SET last_error = $2, "
							  "errors = errors OPERATOR(pg_catalog.+) 1 "
							  "WHERE name OPERATOR(pg_catalog.=) $1 "
							  "AND state OPERATOR(pg_catalog.=) 'running' "
							  "AND last_error IS DISTINCT FROM $2",
							  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "recording the worker start failure failed");
	return SPI_processed > 0;
}

/*
 * li_catalog_database_paused -- has the database owner paused the
 * database's pipelines (pause_database(); its table is 0.2's, so an
 * extension not yet updated is never paused)?
 */
bool
li_catalog_database_paused(void)
{
	int			ret;
	bool		isnull;

	ret = SPI_execute("SELECT pg_catalog.to_regclass('ledger_ingest.database_pause') IS NOT NULL",
					  true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not look for ledger_ingest.database_pause: %d", ret);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return false;
	ret = SPI_execute("SELECT 1 FROM ledger_ingest.database_pause", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read ledger_ingest.database_pause: %d", ret);
	return SPI_processed > 0;
}

/*
 * li_catalog_list_pipelines -- every pipeline of the database and whether
 * it is 'running', running ones first (they claim the free slots), then by
 * name; arrays palloc'd in the current memory context.  Returns the count.
 */
int
li_catalog_list_pipelines(char ***names, bool **running)
{
	int			ret;
	int			n;
	bool		isnull;

	ret = SPI_execute("SELECT name, state OPERATOR(pg_catalog.=) 'running' "
					  "FROM ledger_ingest.pipeline ORDER BY 2 DESC, name", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read ledger_ingest.pipeline: %d", ret);
	n = (int) SPI_processed;
	*names = palloc(sizeof(char *) * Max(n, 1));
	*running = palloc(sizeof(bool) * Max(n, 1));
	for (int r = 0; r < n; r++)
	{
		(*names)[r] = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		(*running)[r] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r],
												   SPI_tuptable->tupdesc, 2, &isnull));
	}
	return n;
}

/*
 * li_catalog_reject_document -- mark inbox document id rejected, with its
 * error: it stays in the inbox, out of the pending set.
 */
void
li_catalog_reject_document(int64 id, const char *error)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	int			ret;

	args[0] = Int64GetDatum(id);
	args[1] = CStringGetTextDatum(error);
	ret = SPI_execute_with_args("UPDATE ledger_ingest.inbox SET error = $2, rejected_at = pg_catalog.now() "
								"WHERE id OPERATOR(pg_catalog.=) $1",
								2, types, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "marking inbox document " INT64_FORMAT " failed: %s", id,
			 SPI_result_code_string(ret));
}

/*
 * li_catalog_stored_headers -- the stored headers (ledger_ingest.ledger)
 * of p numbered from..to, newest first: their numbers and hashes, palloc'd
 * in cxt (which outlives SPI_finish).  Returns how many.
 */
int
li_catalog_stored_headers(LiPipeline *p, int64 from, int64 to, MemoryContext cxt,
						  int64 **numbers, uint8 (**hashes)[LI_HASH_LEN])
{
	Oid			types[3] = {TEXTOID, INT8OID, INT8OID};
	Datum		args[3];
	int			ret;
	int			n;

	args[0] = CStringGetTextDatum(p->name);
	args[1] = Int64GetDatum(to);
	args[2] = Int64GetDatum(from);
	ret = SPI_execute_with_args("SELECT number, hash FROM ledger_ingest.ledger "
								"WHERE pipeline OPERATOR(pg_catalog.=) $1 "
								"AND number OPERATOR(pg_catalog.<=) $2 AND number OPERATOR(pg_catalog.>=) $3 "
								"ORDER BY number DESC",
								3, types, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading ledger headers failed: %s", SPI_result_code_string(ret));
	n = (int) SPI_processed;
	*numbers = MemoryContextAlloc(cxt, sizeof(int64) * Max(n, 1));
	*hashes = MemoryContextAlloc(cxt, LI_HASH_LEN * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		bytea	   *h;

		(*numbers)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		memcpy((*hashes)[i], VARDATA_ANY(h), LI_HASH_LEN);
	}
	return n;
}

/* ----------------------------------------------------------------
 * The SQL API's reads (as the caller: row-level security applies)
 * ----------------------------------------------------------------
 */

/*
 * li_catalog_read_cursor -- the committed cursor of pipeline from the
 * cursor table, read with a fresh snapshot when fresh (what committed
 * since the calling statement began).  false when the pipeline does not
 * exist or the caller does not see it.
 */
bool
li_catalog_read_cursor(const char *pipeline, bool fresh, LiPosition *out)
{
	LiPosition	pos;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int			ret;

	values[0] = CStringGetTextDatum(pipeline);
	SPI_connect();
	/* not read-only: a fresh snapshot sees what committed since the call */
	ret = SPI_execute_with_args("SELECT c.ledger, c.tx_index IS NULL, c.tx_index, c.event_index "
								"FROM ledger_ingest.cursor c "
								"WHERE c.pipeline OPERATOR(pg_catalog.=) $1",
								1, argtypes, values, NULL, !fresh, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %d", ret);
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;
	}
	memset(&pos, 0, sizeof(pos));
	pos.ledger = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pos.complete = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (!pos.complete)
	{
		pos.tx_index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		pos.event_index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	}
	SPI_finish();
	*out = pos;
	return true;
}

/* li_catalog_pipeline_visible -- does the caller see pipeline (row-level security)? */
bool
li_catalog_pipeline_visible(const char *pipeline)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(pipeline)};
	bool		found;

	SPI_connect();
	if (SPI_execute_with_args("SELECT FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading ledger_ingest.pipeline failed");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/*
 * li_catalog_visible_pipelines -- the names of the pipelines the caller
 * sees, palloc'd in the current memory context.  Returns how many.
 */
int
li_catalog_visible_pipelines(char ***names)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			n;

	SPI_connect();
	if (SPI_execute("SELECT name FROM ledger_ingest.pipeline", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading ledger_ingest.pipeline failed");
	n = (int) SPI_processed;
	*names = MemoryContextAlloc(cxt, sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		(*names)[i] = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return n;
}

/* ----------------------------------------------------------------
 * The SQL API's writes: _catalog_write
 * ----------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(ledger_ingest_catalog_write);

/* who may run a statement */
typedef enum LiWriteCheck
{
	LI_CHECK_NEW_PIPELINE,		/* any admin: the caller becomes the owner */
	LI_CHECK_PIPELINE_OWNER,	/* a member of the pipeline's owner */
	LI_CHECK_TABLE_OWNER,		/* ... who also owns the table args[1] */
	LI_CHECK_DATABASE_OWNER		/* the owner of the current database */
} LiWriteCheck;

/*
 * The statements.  $1 is the pipeline name, $2 the text[] of arguments,
 * $3 the calling role (regrole).  Each returns one row of one bigint: the
 * rows it changed, or the new row's id.  search_path is pinned to
 * pg_catalog by the SQL function's SET clause.
 */
typedef struct LiWriteOp
{
	const char *name;
	int			nargs;
	LiWriteCheck check;
	const char *sql;
} LiWriteOp;

static const LiWriteOp write_ops[] = {
	/* args: source, options (validated and completed here) */
	{"create_pipeline", 2, LI_CHECK_NEW_PIPELINE,
		"WITH o AS (SELECT ledger_ingest.validate_options($2[1], $2[2]::jsonb) AS opts), "
		"p AS (INSERT INTO ledger_ingest.pipeline (name, source, options, owner) "
		"      SELECT $1, $2[1], o.opts, $3 FROM o RETURNING name, options), "
		"c AS (INSERT INTO ledger_ingest.cursor (pipeline, ledger) "
		"      SELECT p.name, coalesce((p.options ->> 'from_block')::int8, (p.options ->> 'from_ledger')::int8, 0) - 1 FROM p RETURNING 1) "
		"SELECT count(*) FROM c"},
	/* args: state ('running' clears a failed pipeline's error count) */
	{"set_state", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH u AS (UPDATE ledger_ingest.pipeline p SET state = $2[1], "
		"      errors = CASE WHEN $2[1] = 'running' THEN 0 ELSE p.errors END, "
		"      last_error = CASE WHEN $2[1] = 'running' THEN NULL ELSE p.last_error END "
		"      WHERE p.name = $1 AND $2[1] IN ('running', 'stopped') RETURNING 1) "
		"SELECT count(*) FROM u"},
	/* everything else goes by ON DELETE CASCADE */
	{"drop_pipeline", 0, LI_CHECK_PIPELINE_OWNER,
		"WITH j AS (DELETE FROM ledger_ingest.journal j WHERE j.pipeline = $1), "
		"e AS (DELETE FROM ledger_ingest.event_journal e WHERE e.pipeline = $1), "
		"i AS (DELETE FROM ledger_ingest.inbox i WHERE i.pipeline = $1), "
		"p AS (DELETE FROM ledger_ingest.pipeline p WHERE p.name = $1 RETURNING 1) "
		"SELECT count(*) FROM p"},
	/* args: handler, topic0 (hex), address (hex), revert, event signature */
	{"add_handler", 5, LI_CHECK_PIPELINE_OWNER,
		"INSERT INTO ledger_ingest.handler (pipeline, handler, topic0, address, revert, event) "
		"VALUES ($1, $2[1], decode($2[2], 'hex'), decode($2[3], 'hex'), $2[4], $2[5]) RETURNING id"},
	/* args: handler */
	{"add_block_handler", 2, LI_CHECK_PIPELINE_OWNER,
		"INSERT INTO ledger_ingest.handler (pipeline, handler, every) "
		"VALUES ($1, $2[1], $2[2]::pg_catalog.int4) RETURNING id"},
	/* args: handler, address (hex), selector (hex), has selector, failed */
	{"add_transaction_handler", 5, LI_CHECK_PIPELINE_OWNER,
		"INSERT INTO ledger_ingest.handler (pipeline, handler, address, selector, failed) "
		"VALUES ($1, $2[1], decode($2[2], 'hex'), CASE WHEN $2[4] = 't' THEN decode(coalesce($2[3], ''), 'hex') END, "
		"$2[5]::boolean) RETURNING id"},
	{"remove_handler", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.handler h WHERE h.pipeline = $1 AND h.handler = $2[1] "
		"      RETURNING 1) SELECT count(*) FROM d"},
	/* args: factory address (hex), event signature, argument */
	{"add_factory", 3, LI_CHECK_PIPELINE_OWNER,
		"WITH i AS (INSERT INTO ledger_ingest.factory (pipeline, address, event, param) "
		"      VALUES ($1, decode($2[1], 'hex'), $2[2], $2[3]) ON CONFLICT DO NOTHING RETURNING id) "
		"SELECT coalesce((SELECT id FROM i), (SELECT f.id FROM ledger_ingest.factory f WHERE f.pipeline = $1 "
		"      AND f.address = decode($2[1], 'hex') AND f.event = $2[2] AND f.param = $2[3]))"},
	/* args: factory address (hex); its children go by ON DELETE CASCADE */
	{"remove_factory", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.factory f WHERE f.pipeline = $1 "
		"      AND f.address = decode($2[1], 'hex') RETURNING 1) SELECT count(*) FROM d"},
	/* args: table oid */
	{"add_table_sink", 4, LI_CHECK_PIPELINE_OWNER,
		"INSERT INTO ledger_ingest.sink (pipeline, tbl, event, address, columns) "
		"VALUES ($1, $2[1]::oid, $2[2], decode($2[3], 'hex'), $2[4]::jsonb) "
		"ON CONFLICT (pipeline, tbl) DO UPDATE SET event = excluded.event, "
		"address = excluded.address, columns = excluded.columns RETURNING 1"},
	{"add_raw_sink", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH i AS (INSERT INTO ledger_ingest.sink (pipeline, tbl) VALUES ($1, $2[1]::oid) "
		"      ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i"},
	/* args: table oid */
	{"remove_raw_sink", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.sink s WHERE s.pipeline = $1 AND s.tbl = $2[1]::oid "
		"      RETURNING 1) SELECT count(*) FROM d"},
	/* args: table oid, primary key columns (a text[] literal) */
	{"track_table", 2, LI_CHECK_TABLE_OWNER,
		"WITH i AS (INSERT INTO ledger_ingest.tracked (pipeline, tbl, pk) VALUES ($1, $2[1]::oid, $2[2]::text[]) "
		"      ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i"},
	/* args: table oid; its journal for the pipeline goes too */
	{"untrack_table", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH t AS (DELETE FROM ledger_ingest.tracked t WHERE t.pipeline = $1 AND t.tbl = $2[1]::oid "
		"      RETURNING 1), "
		"j AS (DELETE FROM ledger_ingest.journal j WHERE j.pipeline = $1 AND j.tbl = $2[1]::oid "
		"      AND EXISTS (SELECT FROM t)) "
		"SELECT count(*) FROM t"},
	/*
	 * args: expected ledger, tx_index, event_index, new ledger, tx_index,
	 * event_index.  Headers and journals above the new cursor go (those
	 * ledgers are applied again).
	 */
	{"cursor_cas", 6, LI_CHECK_PIPELINE_OWNER,
		"WITH c AS (UPDATE ledger_ingest.cursor c SET ledger = $2[4]::int8, "
		"      ledger_hash = (SELECT l.hash FROM ledger_ingest.ledger l "
		"                     WHERE l.pipeline = $1 AND l.number = $2[4]::int8), "
		"      tx_index = $2[5]::int4, event_index = $2[6]::int4, last_commit_at = now() "
		"      WHERE c.pipeline = $1 AND c.ledger IS NOT DISTINCT FROM $2[1]::int8 "
		"      AND c.tx_index IS NOT DISTINCT FROM $2[2]::int4 "
		"      AND c.event_index IS NOT DISTINCT FROM $2[3]::int4 RETURNING 1), "
		"l AS (DELETE FROM ledger_ingest.ledger l WHERE l.pipeline = $1 AND l.number > $2[4]::int8 "
		"      AND EXISTS (SELECT FROM c)), "
		"j AS (DELETE FROM ledger_ingest.journal j WHERE j.pipeline = $1 AND j.ledger > $2[4]::int8 "
		"      AND EXISTS (SELECT FROM c)), "
		"e AS (DELETE FROM ledger_ingest.event_journal e WHERE e.pipeline = $1 AND e.ledger > $2[4]::int8 "
		"      AND EXISTS (SELECT FROM c)) "
		"SELECT count(*) FROM c"},
	/* the cursor row, locked until the end of the transaction (rewind) */
	{"lock_cursor", 0, LI_CHECK_PIPELINE_OWNER,
		"SELECT count(*) FROM (SELECT FROM ledger_ingest.cursor c WHERE c.pipeline = $1 FOR UPDATE) l"},
	/* args: document ids (a bigint[] literal), or NULL: every rejected one */
	{"delete_documents", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.inbox i WHERE i.pipeline = $1 "
		"      AND CASE WHEN $2[1] IS NULL THEN i.error IS NOT NULL ELSE i.id = ANY ($2[1]::int8[]) END "
		"      RETURNING 1) SELECT count(*) FROM d"},
	/* args: up to ledger, or NULL: all */
	{"clear_decode_errors", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.decode_error d WHERE d.pipeline = $1 "
		"      AND ($2[1] IS NULL OR d.ledger <= $2[1]::int8) RETURNING 1) SELECT count(*) FROM d"},
	/* no pipeline */
	{"pause_database", 0, LI_CHECK_DATABASE_OWNER,
		"WITH i AS (INSERT INTO ledger_ingest.database_pause (paused_by) "
		"      SELECT r.rolname FROM pg_roles r WHERE r.oid = $3 ON CONFLICT DO NOTHING RETURNING 1) "
		"SELECT count(*) FROM i"},
	{"resume_database", 0, LI_CHECK_DATABASE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.database_pause RETURNING 1) SELECT count(*) FROM d"},
};

/* The owner of the extension's tables (whoever ran CREATE EXTENSION). */
static Oid
catalog_owner(void)
{
	Oid			relid = RangeVarGetRelid(makeRangeVar("ledger_ingest", "pipeline", -1), NoLock, false);
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The owner of pipeline "name", read as the tables' owner; raises
 * undefined_object when there is none, or when the caller is not a member
 * of its owner: another owner's pipeline looks as row-level security shows
 * it, absent.  Pipelines owned by ledger_ingest_admin itself (every admin
 * is a member) are for superusers only.
 */
static void
check_pipeline_owner(const char *name, Oid caller, Oid admin)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			owner = InvalidOid;
	int			ret;

	ret = SPI_execute_with_args("SELECT p.owner::oid FROM ledger_ingest.pipeline p WHERE p.name = $1",
								1, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!OidIsValid(owner) ||
		!(superuser_arg(caller) || (owner != admin && is_member_of_role(caller, owner))))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name)));
}

/*
 * Does the calling role pass op's check (see LiWriteCheck)?  ERROR if not.
 * Runs as the tables' owner, inside SPI.
 */
static void
check_caller(const LiWriteOp *op, const char *pipeline, ArrayType *args, Oid caller, Oid admin)
{
	switch (op->check)
	{
		case LI_CHECK_NEW_PIPELINE:
			if (caller == admin)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("a pipeline cannot be owned by ledger_ingest_admin"),
						 errhint("Create it as a member of ledger_ingest_admin, not as the role itself.")));
			break;
		case LI_CHECK_PIPELINE_OWNER:
			check_pipeline_owner(pipeline, caller, admin);
			break;
		case LI_CHECK_TABLE_OWNER:
			{
				Datum		relid;
				bool		relnull;
				int			idx = 1;
				char	   *name;

				check_pipeline_owner(pipeline, caller, admin);
				relid = array_get_element(PointerGetDatum(args), 1, &idx, -1, -1, false,
										  TYPALIGN_INT, &relnull);
				if (relnull)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("catalog write \"%s\" needs a table", op->name)));
				relid = DirectFunctionCall1(oidin, CStringGetDatum(TextDatumGetCString(relid)));
				/* named as regclass prints it, as track_table() does */
				name = DatumGetCString(DirectFunctionCall1(regclassout, relid));
				if (!pg_class_ownercheck(DatumGetObjectId(relid), caller))
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("must be owner of table %s to track it", name),
							 errhint("The reorg journal keeps whole rows of the table, and a trigger is created on it.")));
				/* what track_table() refuses is refused here too */
				if (get_rel_relkind(DatumGetObjectId(relid)) == RELKIND_PARTITIONED_TABLE ||
					get_rel_relispartition(DatumGetObjectId(relid)))
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot track %s: partitioned tables and partitions are not supported", name),
							 errhint("Use a revert handler for effects on partitioned tables.")));
				if (get_rel_relkind(DatumGetObjectId(relid)) != RELKIND_RELATION)
					ereport(ERROR,
							(errcode(ERRCODE_WRONG_OBJECT_TYPE),
							 errmsg("cannot track %s: not a table", name)));
				break;
			}
		case LI_CHECK_DATABASE_OWNER:
			if (!pg_database_ownercheck(MyDatabaseId, caller))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to pause or resume ledger_ingest in database \"%s\"",
								get_database_name(MyDatabaseId)),
						 errhint("Only the database owner (or a superuser) may.")));
			break;
	}
}

/*
 * ledger_ingest._catalog_write(op text, pipeline text, args text[])
 *	 RETURNS bigint
 *
 * Runs write_ops[op] for pipeline with args (a text[] of exactly the
 * op's length; NULL elements allowed) as the owner of the extension's
 * tables, after checking that the calling role may: it is a member of
 * ledger_ingest_admin (or a superuser) and passes the op's check.  Returns
 * what the statement returns (rows changed, or the new handler's id).
 * Errors: invalid_parameter_value for an unknown op or a wrong number of
 * args; insufficient_privilege; undefined_object for a pipeline the
 * caller may not see; whatever the statement raises (unique_violation for
 * an existing pipeline name, the option validator's errors).
 */
Datum
ledger_ingest_catalog_write(PG_FUNCTION_ARGS)
{
	const char *opname;
	const char *pipeline;
	ArrayType  *args;
	const LiWriteOp *op = NULL;
	Oid			caller = GetUserId();
	Oid			admin = get_role_oid("ledger_ingest_admin", false);
	Oid			save_userid;
	int			save_sec_context;
	Oid			argtypes[3] = {TEXTOID, TEXTARRAYOID, REGROLEOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	int64		result = 0;
	int			ret;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("op and args must not be null")));
	opname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pipeline = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	args = PG_GETARG_ARRAYTYPE_P(2);

	for (size_t i = 0; i < lengthof(write_ops); i++)
		if (strcmp(write_ops[i].name, opname) == 0)
			op = &write_ops[i];
	if (op == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown catalog write \"%s\"", opname)));
	if (ARR_NDIM(args) > 1 ||
		ArrayGetNItems(ARR_NDIM(args), ARR_DIMS(args)) != op->nargs ||
		(op->nargs > 0 && ARR_LBOUND(args)[0] != 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("catalog write \"%s\" takes %d argument",
							   "catalog write \"%s\" takes %d arguments",
							   op->nargs, opname, op->nargs)));
	if (op->check == LI_CHECK_DATABASE_OWNER && pipeline != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("catalog write \"%s\" takes no pipeline", opname)));
	if (op->check != LI_CHECK_DATABASE_OWNER && pipeline == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));

	if (!superuser_arg(caller) && !is_member_of_role(caller, admin))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to manage ledger_ingest pipelines"),
				 errhint("Only superusers and members of ledger_ingest_admin may manage pipelines.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(catalog_owner(), save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	check_caller(op, pipeline, args, caller, admin);

	values[0] = pipeline ? CStringGetTextDatum(pipeline) : (Datum) 0;
	nulls[0] = pipeline ? ' ' : 'n';
	values[1] = PointerGetDatum(args);
	values[2] = ObjectIdGetDatum(caller);
	ret = SPI_execute_with_args(op->sql, 3, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_SELECT && ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "catalog write \"%s\" failed: %s", opname, SPI_result_code_string(ret));
	if (SPI_processed == 1)
		result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
	PG_RETURN_INT64(result);
}
