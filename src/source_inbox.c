/*-------------------------------------------------------------------------
 *
 * source_inbox.c
 *	  The inbox source: ledger documents that any producer inserts into
 *	  ledger_ingest.inbox.
 *
 * The worker reads the pending documents of its pipeline in increasing
 * ledger number (then insertion order) in a short read-only transaction,
 * parses and validates them into the batch, and the apply transaction
 * deletes each document together with the effects of its ledger.
 *
 * A document is rejected -- marked with its error in the inbox, never
 * silently dropped, never half-applied -- when:
 *	- it is malformed (the error names the field): the pipeline then goes to
 *	  'failed', because skipping the ledger could lose data.  Delete it
 *	  (delete_documents()), insert the corrected document if there is one,
 *	  then start() the pipeline;
 *	- its ledger number is not above the cursor and it is the applied ledger
 *	  again, one a reorg orphaned, or one the cursor passed without applying
 *	  it (inserted after a later ledger, or skipped with cursor_cas): the
 *	  pipeline carries on; the row keeps saying why it was not applied
 *	  (producers insert ledgers in order; rewind() to apply it after all);
 *	- another ledger at an applied number that does not attach to the
 *	  applied chain: a reorg that cannot be resolved, the pipeline goes to
 *	  'failed'.
 * A document whose number is not above the cursor, whose parentHash is the
 * stored hash of ledger number - 1 and whose hash differs from the stored
 * one starts a new branch: the worker rolls the pipeline back to
 * number - 1 in one transaction (li_revert) and then applies it.  A
 * document above the cursor whose parentHash does not match the applied
 * ledger before it cannot be attached: the pipeline goes to 'failed' with
 * "reorg at ledger N" and the document stays pending.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "source.h"
#include "xact.h"

static SPIPlanPtr fetch_plan = NULL;

typedef enum StaleKind
{
	STALE_BRANCH,				/* first ledger of a new branch: roll back */
	STALE_DUPLICATE,			/* the applied ledger again: harmless */
	STALE_ORPHAN,				/* a ledger a reorg orphaned: harmless */
	STALE_SKIPPED,				/* never applied: the cursor passed it */
	STALE_CONFLICT				/* another ledger at an applied number */
} StaleKind;

/*
 * Classify a document whose number is not above the cursor (prev is NULL:
 * it is the first of the batch).  It starts a new branch when a header is
 * stored at its number with another hash, its parentHash is the stored hash
 * of ledger number - 1, and it is not a ledger an earlier reorg orphaned
 * (a producer re-sending an orphan must not flip the pipeline back).  It is
 * a duplicate when the stored header at its number has its hash.  With no
 * header stored at its number it was never applied: the cursor passed it
 * (it arrived after a later ledger, or cursor_cas moved the cursor past
 * it).  With another header stored there and no attachment to the applied
 * chain it is a conflicting ledger that cannot be applied in order.
 */
static StaleKind
classify_stale(LiPipeline *p, LiLedger *l, LiBatch *batch)
{
	Oid			types[3] = {TEXTOID, INT8OID, BYTEAOID};
	Datum		args[3];
	int			ret;
	bool		have_parent = false;
	bool		parent_ok = false;
	bool		have_same = false;
	bool		have_other = false;
	bytea	   *hash = palloc(VARHDRSZ + LI_HASH_LEN);

	SET_VARSIZE(hash, VARHDRSZ + LI_HASH_LEN);
	memcpy(VARDATA(hash), l->hash, LI_HASH_LEN);
	args[0] = CStringGetTextDatum(p->name);
	args[1] = Int64GetDatum(l->number - 1);
	args[2] = PointerGetDatum(hash);
	ret = SPI_execute_with_args("SELECT number, hash, false FROM ledger_ingest.ledger "
								"WHERE pipeline OPERATOR(pg_catalog.=) $1 "
								"AND number OPERATOR(pg_catalog.>=) $2 "
								"AND number OPERATOR(pg_catalog.<=) ($2 OPERATOR(pg_catalog.+) 1) "
								"UNION ALL "
								"SELECT number, hash, true FROM ledger_ingest.orphan "
								"WHERE pipeline OPERATOR(pg_catalog.=) $1 "
								"AND number OPERATOR(pg_catalog.=) ($2 OPERATOR(pg_catalog.+) 1) "
								"AND hash OPERATOR(pg_catalog.=) $3",
								3, types, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading ledger headers failed: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		bytea	   *h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		bool		orphan = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
		bool		same = VARSIZE_ANY_EXHDR(h) == LI_HASH_LEN &&
			memcmp(VARDATA_ANY(h), n == l->number ? l->hash : l->parent_hash, LI_HASH_LEN) == 0;

		if (orphan)
			return STALE_ORPHAN;
		if (n == l->number - 1)
		{
			have_parent = true;
			parent_ok = l->has_parent && same;
		}
		else if (same)
			have_same = true;
		else
			have_other = true;
	}
	if (have_same)
		return STALE_DUPLICATE;
	if (!have_other)
		return STALE_SKIPPED;
	/* a new branch, unless the network does not reorganize (Stellar) */
	if (have_parent && parent_ok && !p->opts.stellar)
	{
		batch->reorg = true;
		batch->has_fork = true;
		batch->fork_ledger = l->number - 1;
		memcpy(batch->fork_hash, l->parent_hash, LI_HASH_LEN);
		batch->reorg_error = MemoryContextStrdup(batch->cxt,
												 psprintf("reorg at ledger " INT64_FORMAT ": a new branch forks after ledger " INT64_FORMAT,
														  l->number, l->number - 1));
		return STALE_BRANCH;
	}
	return STALE_CONFLICT;
}

/*
 * One fetched inbox row as a ledger, in batch->cxt: its packed form when
 * it has a valid one (parsed by the producer's backend at insert,
 * src/packed.c; the events' data point into the copy), else the document
 * parsed here.  A document the parser rejects (a class-22 error; anything
 * else is re-thrown) is noted as the batch's fatal rejection and false
 * returned.  Parsing touches no shared state: its errors can be caught.
 */
static bool
read_document(HeapTuple tup, TupleDesc desc, LiBatch *batch, LiLedger *parsed)
{
	bool		isnull;
	Datum		packed = SPI_getbinval(tup, desc, 4, &isnull);
	bool		ok = true;
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);

	if (isnull || !li_unpack_ledger(DatumGetByteaPCopy(packed), parsed))
	{
		PG_TRY();
		{
			Jsonb	   *doc = DatumGetJsonbP(SPI_getbinval(tup, desc, 2, &isnull));

			li_parse_ledger(&doc->root, parsed);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(batch->cxt);
			edata = CopyErrorData();
			/* only the parser's own data errors reject the document */
			if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
				PG_RE_THROW();
			FlushErrorState();
			batch->reject_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			batch->reject_error = edata->message;
			batch->reject_fatal = true;
			ok = false;
		}
		PG_END_TRY();
	}
	MemoryContextSwitchTo(old);
	return ok;
}

/* The uncompressed size of a row's packed form, or of its document. */
static int64
document_size(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		packed = SPI_getbinval(tup, desc, 4, &isnull);

	if (isnull)
		packed = SPI_getbinval(tup, desc, 2, &isnull);
	return (int64) toast_raw_datum_size(packed);
}

/*
 * Why a document at or below the cursor (floor_ledger) is rejected, by
 * its kind (see classify_stale).
 */
static char *
stale_message(LiPipeline *p, StaleKind kind, LiLedger *l, int64 floor_ledger)
{
	if (kind == STALE_DUPLICATE)
		return psprintf("ledger " INT64_FORMAT " is not above the cursor (ledger " INT64_FORMAT "): already applied",
						l->number, floor_ledger);
	if (kind == STALE_ORPHAN)
		return psprintf("ledger " INT64_FORMAT " is not above the cursor (ledger " INT64_FORMAT "): a reorg orphaned it",
						l->number, floor_ledger);
	if (kind == STALE_SKIPPED && p->opts.skip_late_ledgers)
		return psprintf("ledger " INT64_FORMAT " is not above the cursor (ledger " INT64_FORMAT "): it was never applied (it arrived after a later ledger, or the cursor was moved past it); skipped (late_ledgers \"skip\")",
						l->number, floor_ledger);
	if (kind == STALE_SKIPPED)
		return psprintf("ledger " INT64_FORMAT " arrived after ledger " INT64_FORMAT " was applied: it was never applied and cannot be applied in order; delete the document (delete_documents()) to go on without it, or rewind() the pipeline to ledger " INT64_FORMAT " and insert the later ledgers again (option late_ledgers \"skip\" skips such ledgers)",
						l->number, floor_ledger, l->number - 1);
	if (p->opts.stellar)
		return psprintf("Stellar ledger " INT64_FORMAT " differs from the applied ledger " INT64_FORMAT " (another hash); the Stellar network does not reorganize, so this document or the applied one is not from the network the pipeline follows (cursor at ledger " INT64_FORMAT ")",
						l->number, l->number, floor_ledger);
	return psprintf("reorg at ledger " INT64_FORMAT ": it differs from the applied ledger " INT64_FORMAT " and does not attach to the applied chain (cursor at ledger " INT64_FORMAT ")",
					l->number, l->number, floor_ledger);
}

/*
 * The pending documents of p in apply order (ledger, then insertion), at
 * most limit, in SPI_tuptable (inside the fetch's transaction).
 */
static uint64
select_pending(LiPipeline *p, int limit)
{
	Datum		args[2];
	int			ret;

	if (fetch_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT4OID};

		fetch_plan = li_keep_plan("SELECT id, doc, ledger, packed, xmin FROM ledger_ingest.inbox "
								  "WHERE pipeline OPERATOR(pg_catalog.=) $1 AND error IS NULL "
								  "ORDER BY ledger NULLS FIRST, id LIMIT $2",
								  2, types);
	}
	args[0] = CStringGetTextDatum(p->name);
	args[1] = Int32GetDatum(limit);
	ret = SPI_execute_plan(fetch_plan, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the inbox failed: %s", SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * Is document l (inbox row id) at or below what the batch or the cursor
 * already holds?  Then it is not added: a new branch (a reorg) ends the
 * batch; anything else is rejected after the batch, fatally for a
 * conflicting or late ledger (see classify_stale).  Returns true when l is
 * stale.
 */
static bool
stale_document(LiPipeline *p, LiBatch *batch, const LiLedger *prev, LiLedger *l, int64 id)
{
	int64		floor_ledger;
	bool		floor_inclusive;
	StaleKind	kind;

	/* must be above the cursor (or resume a partially applied ledger) */
	if (prev != NULL)
	{
		floor_ledger = prev->number;
		floor_inclusive = false;
	}
	else
	{
		floor_ledger = p->cursor.ledger;
		floor_inclusive = !p->cursor.complete;
	}
	if (l->number > floor_ledger || (l->number == floor_ledger && floor_inclusive))
		return false;

	/* in the batch: a second document of the ledger before it */
	if (prev != NULL)
		kind = memcmp(prev->hash, l->hash, LI_HASH_LEN) == 0 ?
			STALE_DUPLICATE : STALE_CONFLICT;
	else
		kind = classify_stale(p, l, batch);
	if (kind == STALE_BRANCH)
		return true;			/* a reorg: roll back, then apply it */
	batch->reject_id = id;

	/*
	 * A ledger that arrived after a later one was applied (two producers, a
	 * retried insert) cannot be applied in order: skipping it would lose
	 * its events, so the pipeline stops, unless the user said such ledgers
	 * may be skipped.
	 */
	batch->reject_fatal = kind == STALE_CONFLICT ||
		(kind == STALE_SKIPPED && !p->opts.skip_late_ledgers);
	batch->reject_error = MemoryContextStrdup(batch->cxt,
											  stale_message(p, kind, l, floor_ledger));
	return true;
}

/*
 * Read the document of row tup into the batch, after the checks: it
 * parses, it is above what the batch holds, it attaches to it.  Returns
 * false, with the batch left to end here, when it does not.
 */
static bool
add_document(LiPipeline *p, LiBatch *batch, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	LiLedger	parsed;
	LiLedger   *prev;
	char	   *reorg_error = NULL;
	MemoryContext old;
	bool		ok;

	old = MemoryContextSwitchTo(batch->cxt);
	ok = read_document(tup, desc, batch, &parsed);
	MemoryContextSwitchTo(old);
	if (!ok)
		return false;
	parsed.inbox_id = id;
	parsed.inbox_xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 5, &isnull));
	if (parsed.stellar != p->opts.stellar)
	{
		/* a document of the other chain: rejected, naming both */
		batch->reject_id = id;
		batch->reject_fatal = true;
		batch->reject_error = MemoryContextStrdup(batch->cxt, parsed.stellar ?
												  "invalid ledger document: a Stellar ledger document (it has \"headerXdr\") in a pipeline of EVM ledgers (option \"chain\" is \"evm\")" :
												  "invalid ledger document: an EVM ledger document (it has no \"headerXdr\") in a pipeline of Stellar ledgers (option \"chain\" is \"stellar\")");
		return false;
	}
	prev = batch->nledgers > 0 ? &batch->ledgers[batch->nledgers - 1] : NULL;
	if (stale_document(p, batch, prev, &parsed, id))
		return false;
	if (!li_check_continuity(p, prev, &parsed, &reorg_error))
	{
		if (p->opts.stellar)
		{
			/* the Stellar network does not reorganize: a broken chain is an error */
			batch->reject_id = id;
			batch->reject_fatal = true;
			batch->reject_error = MemoryContextStrdup(batch->cxt,
													  psprintf("%s, so this document or an applied one is not from the network the pipeline follows",
															   reorg_error));
			return false;
		}
		batch->reorg = true;
		batch->reorg_error = MemoryContextStrdup(batch->cxt, reorg_error);
		return false;
	}
	*li_batch_add(batch) = parsed;
	batch->nevents += parsed.nevents;
	return true;
}

/*
 * li_inbox_fetch -- read, parse and check up to batch_max_ledgers pending
 * documents into the batch, in one short read-only transaction.  Stops at
 * the first document to reject (its id and error are left in the batch),
 * at a reorg, or once the batch holds four times batch_max_events events
 * or batch_max_bytes bytes of documents.
 */
void
li_inbox_fetch(LiPipeline *p, LiBatch *batch)
{
	MemoryContext caller_cxt;
	SPITupleTable *rows;
	uint64		nrows;
	int64		nbytes = 0;		/* the documents read, uncompressed */

	caller_cxt = li_txn_begin();
	pgstat_report_activity(STATE_RUNNING, psprintf("ledger_ingest %s: reading inbox", p->name));
	nrows = select_pending(p, p->opts.batch_max_ledgers);
	rows = SPI_tuptable;
	for (uint64 r = 0; r < nrows; r++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!add_document(p, batch, rows->vals[r], rows->tupdesc))
			break;
		if (batch->nevents >= (int64) p->opts.batch_max_events * 4)
			break;
		/* bounded in bytes too: large ledgers must not exhaust memory */
		nbytes += document_size(rows->vals[r], rows->tupdesc);
		if (nbytes >= p->opts.batch_max_bytes)
			break;
	}
	li_txn_commit(caller_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * li_inbox_reject -- mark an inbox document as rejected with its error, in
 * its own transaction.  It stays in the inbox, out of the pending set.
 */
void
li_inbox_reject(LiPipeline *p, int64 id, const char *error)
{
	MemoryContext caller_cxt;

	caller_cxt = li_txn_begin();
	li_catalog_reject_document(id, error);
	li_txn_commit(caller_cxt);
	ereport(WARNING,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("ledger_ingest pipeline \"%s\" rejected inbox document " INT64_FORMAT ": %s",
					p->name, id, error)));
}
