/*-------------------------------------------------------------------------
 *
 * revert.c
 *	  The reorg revert transaction.
 *
 * When a ledger at or below the cursor starts a new branch (its parent is
 * the stored hash of the ledger before it), li_revert rolls the pipeline
 * back to the fork point in ONE transaction, before the new branch is
 * applied: the cursor moves back by the same compare-and-swap as an apply;
 * the revert handlers are called for each orphaned event, newest first;
 * each tracked table is restored in place, per column, from the reorg
 * journal (journal.c), failing with nothing changed when a column the
 * pipeline changed was also changed outside it since; the orphaned headers
 * are kept in ledger_ingest.orphan and the "reorg" notification is queued.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "rewrite/rewriteHandler.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "apply.h"
#include "event.h"
#include "handlers.h"
#include "publish.h"
#include "xact.h"

static SPIPlanPtr revert_cas_plan = NULL;

/* The cursor compare-and-swap of a revert (prepared once per worker). */
static void
prepare_revert_plan(void)
{
	if (revert_cas_plan == NULL)
	{
		Oid			types[7] = {TEXTOID, INT8OID, BYTEAOID, INT4OID,
		INT8OID, INT4OID, INT4OID};

		revert_cas_plan = li_keep_plan(
									"UPDATE ledger_ingest.cursor SET "
									"ledger = $2, ledger_hash = $3, tx_index = NULL, event_index = NULL, "
									"reorgs = reorgs OPERATOR(pg_catalog.+) 1, last_reorg_depth = $4, "
									"last_reorg_at = pg_catalog.now(), last_commit_at = pg_catalog.now() "
									"WHERE pipeline OPERATOR(pg_catalog.=) $1 "
									"AND ledger OPERATOR(pg_catalog.=) $5 "
									"AND ((tx_index IS NULL AND $6 IS NULL) OR tx_index OPERATOR(pg_catalog.=) $6) "
									"AND ((event_index IS NULL AND $7 IS NULL) OR event_index OPERATOR(pg_catalog.=) $7) "
									"",
									7, types);
	}
}

/*
 * Call the revert handlers for every journaled event above "fork", newest
 * event first and, per event, in reverse registration order.
 */
static void
run_revert_handlers(LiPipeline *p, int64 fork)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		v[2];
	int			ret;
	SPITupleTable *rows;
	uint64		nrows;

	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(fork);
	ret = SPI_execute_with_args("SELECT ev, (ev).address, (ev).topics, (ev).data FROM ledger_ingest.event_journal "
								"WHERE pipeline OPERATOR(pg_catalog.=) $1 AND ledger OPERATOR(pg_catalog.>) $2 "
								"ORDER BY (ev).ledger DESC, (ev).tx_index DESC, (ev).event_index DESC",
								2, types, v, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the event journal failed: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 r = 0; r < nrows; r++)
	{
		bool		isnull;
		Datum		ev = SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull);
		Datum		addr_datum = SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &isnull);
		bytea	   *addr = isnull ? NULL : DatumGetByteaPP(addr_datum);
		ArrayType  *topics = DatumGetArrayTypeP(SPI_getbinval(rows->vals[r], rows->tupdesc, 3, &isnull));
		Datum	   *tv;
		int			nt;
		LiEvent		e;

		CHECK_FOR_INTERRUPTS();
		memset(&e, 0, sizeof(e));
		if (addr != NULL && VARSIZE_ANY_EXHDR(addr) <= LI_MAX_ADDRESS_LEN)
		{
			e.address_len = (uint8) VARSIZE_ANY_EXHDR(addr);
			memcpy(e.address, VARDATA_ANY(addr), e.address_len);
		}
		deconstruct_array(topics, BYTEAOID, -1, false, TYPALIGN_INT, &tv, NULL, &nt);
		for (int t = 0; t < nt && t < LI_MAX_TOPICS; t++)
		{
			bytea	   *b = DatumGetByteaPP(tv[t]);

			if (VARSIZE_ANY_EXHDR(b) == LI_HASH_LEN)
				memcpy(e.topics[e.ntopics], VARDATA_ANY(b), LI_HASH_LEN);
			else
				e.var_topics[e.ntopics] = b;	/* a Stellar topic */
			e.ntopics++;
		}
		e.data = DatumGetByteaPP(SPI_getbinval(rows->vals[r], rows->tupdesc, 4, &isnull));
		for (int i = p->nhandlers - 1; i >= 0; i--)
		{
			LiHandler  *h = &p->handlers[i];
			Datum		hev = ev;

			if (!OidIsValid(h->revert_oid) || !li_handler_matches(h, &e))
				continue;
			if (h->abi != NULL)
			{
				char	   *error;
				Jsonb	   *args = li_decode_args(h, &e, &error);

				/* a log the handler skipped when it was applied */
				if (args == NULL)
					continue;
				hev = li_event_with_args(ev, args);
			}
			li_apply_ctx.handler = h->revert_name;
			li_call_as_owner(p->owner, li_handler_fn(p, h->revert_oid, &h->revert_fn), hev);
			li_apply_ctx.handler = NULL;
		}
	}
}

/*
 * "OPERATOR(schema.=)" for a key column of relid: its type's default btree
 * equality operator, qualified with the operator's own schema, so that no
 * search_path can substitute another (PostgreSQL's RI triggers qualify
 * their key comparisons the same way).
 */
static char *
pk_equality(Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);
	TypeCacheEntry *tc;
	HeapTuple	optup;
	Form_pg_operator op;
	char	   *result;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of tracked table \"%s\" does not exist",
						column, get_rel_name(relid))));
	tc = lookup_type_cache(get_atttype(relid, attnum), TYPECACHE_EQ_OPR);
	if (!OidIsValid(tc->eq_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("key column \"%s\" of tracked table \"%s\" has no equality operator",
						column, get_rel_name(relid))));
	optup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tc->eq_opr));
	if (!HeapTupleIsValid(optup))
		elog(ERROR, "cache lookup failed for operator %u", tc->eq_opr);
	op = (Form_pg_operator) GETSTRUCT(optup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(optup);
	return result;
}

/* The pieces of the restore statements of one tracked table. */
typedef struct RestoreSql
{
	StringInfoData from;		/* per key: x.e, the entry; j.r, key and pre-image; k, j.r as a row */
	StringInfoData cond;		/* t (the table) matches k on the primary key */
	StringInfoData set;			/* UPDATE: each restorable column from k if the entry has it */
	StringInfoData cols;		/* INSERT: the columns */
	StringInfoData vals;		/* ... and their values (a default for a column added since) */
} RestoreSql;

/*
 * The journal entries of t above fork, one jsonb per key (see
 * restore_table), as a jsonb[] in *entries (kept past SPI calls).  Returns
 * the number of keys.
 */
static int64
read_journal_entries(LiPipeline *p, LiTracked *t, int64 fork, Datum *entries)
{
	Oid			types[3] = {TEXTOID, REGCLASSOID, INT8OID};
	Datum		v[3];
	int			ret;
	bool		isnull;
	int64		nkeys;
	StringInfoData sql;

	v[0] = CStringGetTextDatum(p->name);
	v[1] = ObjectIdGetDatum(t->relid);
	v[2] = Int64GetDatum(fork);
	initStringInfo(&sql);
	/*
	 * One pass, grouped by key (no join between per-key aggregates: the
	 * planner cannot estimate them and would nest loops): each entry once
	 * per column it holds, "o" for old_row, "n" for new_row.
	 */
	appendStringInfo(&sql,
					 "SELECT pg_catalog.array_agg(pg_catalog.jsonb_build_object('pk', s.pk, 'ins', s.ins, "
					 "       'gone', s.gone, 'legacy', s.legacy, 'pre', s.pre, 'post', s.post)), pg_catalog.count(*) "
					 "FROM (SELECT j.pk, "
					 "  (pg_catalog.array_agg(j.old_row IS NULL ORDER BY j.seq))[1] AS ins, "
					 "  coalesce((pg_catalog.array_agg(pg_catalog.jsonb_typeof(j.new_row) OPERATOR(pg_catalog.=) 'null' "
					 "            ORDER BY j.seq DESC))[1], false) AS gone, "
					 "  pg_catalog.bool_or(j.new_row IS NULL) AS legacy, "
					 "  coalesce(pg_catalog.jsonb_object_agg(e.key, e.value ORDER BY j.seq DESC) "
					 "           FILTER (WHERE e.side OPERATOR(pg_catalog.=) 'o'), '{}') AS pre, "
					 "  coalesce(pg_catalog.jsonb_object_agg(e.key, e.value ORDER BY j.seq) "
					 "           FILTER (WHERE e.side OPERATOR(pg_catalog.=) 'n'), '{}') AS post "
					 "  FROM (SELECT pk, seq, old_row, %s AS new_row FROM ledger_ingest.journal "
					 "        WHERE pipeline OPERATOR(pg_catalog.=) $1 AND tbl OPERATOR(pg_catalog.=) $2 "
					 "        AND ledger OPERATOR(pg_catalog.>) $3) AS j "
					 "  LEFT JOIN LATERAL (SELECT 'o' AS side, o.key, o.value FROM pg_catalog.jsonb_each(j.old_row) AS o "
					 "                     UNION ALL "
					 "                     SELECT 'n', n.key, n.value FROM pg_catalog.jsonb_each(CASE WHEN "
					 "                       pg_catalog.jsonb_typeof(j.new_row) OPERATOR(pg_catalog.=) 'object' "
					 "                       THEN j.new_row END) AS n) AS e ON true "
					 "  GROUP BY j.pk) AS s",
					 p->sql_0_2 ? "new_row" : "NULL::pg_catalog.jsonb");
	ret = SPI_execute_with_args(sql.data, 3, types, v, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the reorg journal failed: %s", SPI_result_code_string(ret));
	nkeys = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (nkeys > 0)
		*entries = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
									 false, -1);
	return nkeys;
}

/*
 * The pieces of t's restore statements: the key match, the entries as
 * rows, and the columns a restore writes (not generated ones; the key and
 * GENERATED ALWAYS identity columns are not updated).
 */
static void
build_restore_sql(LiTracked *t, RestoreSql *rs)
{
	Relation	rel;
	TupleDesc	desc;

	initStringInfo(&rs->cond);
	for (int i = 0; i < t->npk; i++)
		appendStringInfo(&rs->cond, "%st.%s %s k.%s", i > 0 ? " AND " : "",
						 quote_identifier(t->pk[i]), pk_equality(t->relid, t->pk[i]),
						 quote_identifier(t->pk[i]));
	initStringInfo(&rs->from);
	appendStringInfo(&rs->from, "pg_catalog.unnest($1) AS x(e) "
					 "CROSS JOIN LATERAL (SELECT (x.e OPERATOR(pg_catalog.->) 'pk') OPERATOR(pg_catalog.||) "
					 "(x.e OPERATOR(pg_catalog.->) 'pre') AS r) AS j "
					 "CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%s, j.r) AS k",
					 t->relname);

	initStringInfo(&rs->set);
	initStringInfo(&rs->cols);
	initStringInfo(&rs->vals);
	rel = table_open(t->relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		const char *name = quote_identifier(NameStr(att->attname));
		const char *lit = quote_literal_cstr(NameStr(att->attname));
		bool		is_key = false;

		if (att->attisdropped || att->attgenerated != '\0')
			continue;
		appendStringInfo(&rs->cols, "%s%s", rs->cols.len > 0 ? ", " : "", name);
		if (att->atthasdef)
		{
			/* a row inserted again gets a column added since its default */
			Node	   *def = build_column_default(rel, att->attnum);

			appendStringInfo(&rs->vals, "%sCASE WHEN j.r OPERATOR(pg_catalog.?) %s THEN k.%s ELSE (%s) END",
							 rs->vals.len > 0 ? ", " : "", lit, name,
							 deparse_expression(def, NIL, false, false));
		}
		else
			appendStringInfo(&rs->vals, "%sk.%s", rs->vals.len > 0 ? ", " : "", name);
		for (int i = 0; i < t->npk; i++)
			is_key |= strcmp(t->pk[i], NameStr(att->attname)) == 0;
		if (is_key || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			continue;
		appendStringInfo(&rs->set, "%s%s = CASE WHEN j.r OPERATOR(pg_catalog.?) %s THEN k.%s ELSE t.%s END",
						 rs->set.len > 0 ? ", " : "", name, lit, name, name);
	}
	table_close(rel, AccessShareLock);
}

/* Run a restore statement of t over the entries; raise unless SPI answers "expect". */
static void
restore_statement(LiTracked *t, const char *sql, Datum entries, int expect)
{
	Oid			argtypes[1] = {JSONBARRAYOID};
	int			ret;

	ret = SPI_execute_with_args(sql, 1, argtypes, &entries, NULL, expect == SPI_OK_SELECT,
								expect == SPI_OK_SELECT ? 1 : 0);
	if (ret != expect || (expect == SPI_OK_SELECT && SPI_processed != 1))
	{
		if (expect == SPI_OK_SELECT)
			elog(ERROR, "checking %s for changes outside the pipeline failed: %s", t->relname,
				 SPI_result_code_string(ret));
		elog(ERROR, "reverting %s failed: %s", t->relname, SPI_result_code_string(ret));
	}
}

/*
 * Fail, with nothing changed, when a row the orphaned ledgers wrote was
 * written outside the pipeline since (see restore_table).
 */
static void
check_outside_changes(LiTracked *t, int64 fork, RestoreSql *rs, Datum entries)
{
	StringInfoData sql;
	bool		isnull;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.string_agg((x.e OPERATOR(pg_catalog.->) 'pk')::pg_catalog.text, ', '), "
					 "pg_catalog.count(*) FROM %s LEFT JOIN %s t ON %s "
					 "CROSS JOIN LATERAL (SELECT pg_catalog.to_jsonb(t) AS cur) AS cr "	/* once per row */
					 "WHERE NOT (x.e OPERATOR(pg_catalog.->>) 'legacy')::pg_catalog.bool AND "
					 "((t.ctid IS NULL) OPERATOR(pg_catalog.<>) (x.e OPERATOR(pg_catalog.->>) 'gone')::pg_catalog.bool "
					 " OR (t.ctid IS NOT NULL AND EXISTS (SELECT FROM pg_catalog.jsonb_each(x.e OPERATOR(pg_catalog.->) 'post') AS c "
					 "     WHERE cr.cur OPERATOR(pg_catalog.->) c.key IS DISTINCT FROM c.value)))",
					 rs->from.data, t->relname, rs->cond.data);
	restore_statement(t, sql.data, entries, SPI_OK_SELECT);
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) > 0)
	{
		char	   *keys = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("reorg at ledger " INT64_FORMAT ": rows of %s were changed outside the pipeline since the orphaned ledgers wrote them (keys %s); nothing was changed",
						fork + 1, t->relname, pnstrdup(keys, pg_mbcliplen(keys, strlen(keys), 500))),
				 errhint("Set those rows back to what the pipeline wrote, or untrack the table, then start() the pipeline.")));
	}
}

/*
 * Restore one tracked table to its state at the end of ledger "fork",
 * undoing only what the orphaned ledgers did, in place.  Per primary key,
 * the journal entries above the fork give: whether the oldest change
 * inserted the row ("ins"); the pre-image "pre", each column's value before
 * the oldest change that touched it (an UPDATE journals only the columns
 * it changed); the post-image "post", each column's value after the newest
 * change that touched it; and whether the newest change deleted the row
 * ("gone").  Then:
 *  - a row that the current table does not hold as the orphaned ledgers
 *    left it (a column they wrote changed since, a row they left deleted
 *    inserted again, or one they left deleted) was written outside the
 *    pipeline since: nothing is changed and the reorg fails, naming the
 *    keys, rather than lose that committed write;
 *  - a row they inserted is deleted;
 *  - a row that existed before them and exists now is set back with
 *    UPDATE, in the columns they changed only (no DELETE and INSERT: no
 *    cascades, no foreign-key failures, the same row; other columns, and
 *    columns added since, keep their values);
 *  - a row that existed before them and is gone now is inserted again
 *    (columns added since get their defaults).
 * Entries journaled by ledger_ingest 0.1 (whole pre-images, no post-image:
 * new_row NULL) are restored the same way, without the conflict check.
 * The statements run as the pipeline owner, like the handlers that made
 * the changes.  Returns the number of keys restored.
 */
static int64
restore_table(LiPipeline *p, LiTracked *t, int64 fork)
{
	Datum		entries = (Datum) 0;
	int64		nkeys;
	RestoreSql	rs;
	StringInfoData sql;
	LiAsOwner	save;

	nkeys = read_journal_entries(p, t, fork, &entries);
	if (nkeys == 0)
		return 0;
	build_restore_sql(t, &rs);

	li_become_owner(p->owner, &save);
	check_outside_changes(t, fork, &rs, entries);
	initStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM %s t USING %s "
					 "WHERE (x.e OPERATOR(pg_catalog.->>) 'ins')::pg_catalog.bool AND %s",
					 t->relname, rs.from.data, rs.cond.data);
	restore_statement(t, sql.data, entries, SPI_OK_DELETE);
	if (rs.set.len > 0)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql, "UPDATE %s t SET %s FROM %s "
						 "WHERE NOT (x.e OPERATOR(pg_catalog.->>) 'ins')::pg_catalog.bool AND %s",
						 t->relname, rs.set.data, rs.from.data, rs.cond.data);
		restore_statement(t, sql.data, entries, SPI_OK_UPDATE);
	}
	resetStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s "
					 "WHERE NOT (x.e OPERATOR(pg_catalog.->>) 'ins')::pg_catalog.bool "
					 "AND NOT EXISTS (SELECT FROM %s t WHERE %s)",
					 t->relname, rs.cols.data, rs.vals.data, rs.from.data, t->relname, rs.cond.data);
	restore_statement(t, sql.data, entries, SPI_OK_INSERT);
	li_restore_user(&save);
	return nkeys;
}

/*
 * Run an internal statement with $1 = the pipeline name and $2 = a ledger
 * number (inside a transaction of li_txn_begin); raise unless SPI answers
 * "expect".
 */
static void
pipeline_ledger_sql(LiPipeline *p, int64 ledger, int expect, const char *sql)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		v[2];
	int			ret;

	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(ledger);
	ret = SPI_execute_with_args(sql, 2, types, v, NULL, false, 0);
	if (ret != expect)
		elog(ERROR, "ledger_ingest internal statement failed (%s): %s",
			 SPI_result_code_string(ret), sql);
}

/*
 * The cursor compare-and-swap of a revert: back to the end of "fork"
 * (counting the reorg and its depth) if the cursor is still where this
 * worker read it.  Returns false when it moved.
 */
static bool
revert_cas(LiPipeline *p, int64 fork, const uint8 *fork_hash, int32 depth)
{
	Datum		v[7];
	char		n[7];
	int			ret;

	prepare_revert_plan();
	memset(n, ' ', sizeof(n));
	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(fork);
	v[2] = PointerGetDatum(li_bytes_to_bytea(fork_hash, LI_HASH_LEN));
	v[3] = Int32GetDatum(depth);
	v[4] = Int64GetDatum(p->cursor.ledger);
	v[5] = Int32GetDatum(p->cursor.tx_index);
	v[6] = Int32GetDatum(p->cursor.event_index);
	if (p->cursor.complete)
		n[5] = n[6] = 'n';
	ret = SPI_execute_plan(revert_cas_plan, v, n, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "cursor update failed: %s", SPI_result_code_string(ret));
	return SPI_processed == 1;
}

/*
 * Forget the orphaned ledgers above "fork": their headers (kept in
 * ledger_ingest.orphan, pruned to the reorg window), journals and decode
 * errors.
 */
static void
forget_orphaned(LiPipeline *p, int64 fork)
{
	pipeline_ledger_sql(p, fork, SPI_OK_INSERT,
						"INSERT INTO ledger_ingest.orphan (pipeline, number, hash) "
						"SELECT pipeline, number, hash FROM ledger_ingest.ledger "
						"WHERE pipeline OPERATOR(pg_catalog.=) $1 AND number OPERATOR(pg_catalog.>) $2 "
						"ON CONFLICT DO NOTHING");
	pipeline_ledger_sql(p, fork - p->opts.reorg_window, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.orphan WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND number OPERATOR(pg_catalog.<=) $2");
	pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.journal WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND ledger OPERATOR(pg_catalog.>) $2");
	pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.event_journal WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND ledger OPERATOR(pg_catalog.>) $2");
	pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
						"DELETE FROM ledger_ingest.ledger WHERE pipeline OPERATOR(pg_catalog.=) $1 "
						"AND number OPERATOR(pg_catalog.>) $2");
	if (p->sql_0_2)
		pipeline_ledger_sql(p, fork, SPI_OK_DELETE,
							"DELETE FROM ledger_ingest.decode_error WHERE pipeline OPERATOR(pg_catalog.=) $1 "
							"AND ledger OPERATOR(pg_catalog.>) $2");
}

/*
 * li_revert -- roll back every ledger after "fork" in ONE transaction:
 * move the cursor back to the end of "fork" with the same compare-and-swap
 * as an apply, call the revert handlers, restore the tracked tables from
 * the reorg journal, forget the orphaned ledgers and queue the "reorg"
 * notification.  Returns LI_APPLY_LOST_CAS when the cursor moved under the
 * worker (nothing is changed then).
 */
LiApplyResult
li_revert(LiPipeline *p, int64 fork, const uint8 *fork_hash)
{
	MemoryContext caller_cxt;
	int64		orphaned_to = p->cursor.ledger;
	int32		depth = (int32) (orphaned_to - fork);
	int64		restored = 0;
	LiPosition	newpos;
	TimestampTz started;

	started = GetCurrentTimestamp();
	caller_cxt = li_txn_begin();
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("ledger_ingest %s: reverting ledgers " INT64_FORMAT " to " INT64_FORMAT,
									p->name, fork + 1, orphaned_to));
	if (!revert_cas(p, fork, fork_hash, depth))
	{
		li_txn_abort(caller_cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		return LI_APPLY_LOST_CAS;
	}

	if (p->has_revert)
		run_revert_handlers(p, fork);
	for (int i = 0; i < p->ntracked; i++)
		restored += restore_table(p, &p->tracked[i], fork);
	forget_orphaned(p, fork);

	li_notify_reorg(p->slot, p->name, fork, orphaned_to, depth);
	memset(&newpos, 0, sizeof(newpos));
	newpos.ledger = fork;
	newpos.complete = true;
	li_publish_at_commit(p->slot, &newpos);

	li_txn_commit(caller_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);

	ereport(LOG,
			(errmsg("ledger_ingest pipeline \"%s\": reorg of depth %d: reverted ledgers " INT64_FORMAT " to " INT64_FORMAT
					" in %.1f ms, restored " INT64_FORMAT " rows of tracked tables; following the new branch from ledger " INT64_FORMAT,
					p->name, depth, fork + 1, orphaned_to,
					(double) (GetCurrentTimestamp() - started) / 1000.0, restored, fork + 1)));
	p->cursor = newpos;
	memcpy(p->cursor_hash, fork_hash, LI_HASH_LEN);
	p->has_cursor_hash = true;
	return LI_APPLY_OK;
}
