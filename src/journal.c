/*-------------------------------------------------------------------------
 *
 * journal.c
 *	  The reorg journal trigger of tracked tables.
 *
 * An AFTER ROW trigger on every tracked table (created by track_table).
 * Outside a worker's apply transaction it returns at once.  Inside one, for
 * a ledger within the reorg window of a pipeline that tracks the table, it
 * records in ledger_ingest.journal the row's pre-image (or that the row did
 * not exist), keyed by its primary key and tagged with the ledger.  The
 * revert (revert.c, li_revert) restores, per key, the oldest pre-image above
 * the fork point.  This is Ponder's shadow-table journal, kept in one
 * table and written in the same transaction as the handler's change.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "apply.h"
#include "xact.h"

PG_FUNCTION_INFO_V1(ledger_ingest_journal);

static SPIPlanPtr journal_insert_plan = NULL;
static bool journal_plan_new_row = false;	/* that plan writes new_row */

/* The tracked table entry of relid in the applying pipeline, or NULL. */
static LiTracked *
journaling(Oid relid)
{
	LiPipeline *p = li_apply_ctx.pipeline;

	if (!li_apply_ctx.active || !li_apply_ctx.journal || p == NULL)
		return NULL;
	for (int i = 0; i < p->ntracked; i++)
		if (p->tracked[i].relid == relid)
			return &p->tracked[i];
	return NULL;
}

/* A row as jsonb (row_to_json, then jsonb input: exact for every type). */
static Jsonb *
row_jsonb(HeapTuple tuple, TupleDesc desc)
{
	Datum		row = heap_copy_tuple_as_datum(tuple, desc);
	Datum		json = DirectFunctionCall1(row_to_json, row);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(text_to_cstring(DatumGetTextPP(json)))));
}

/* JSON null: "the change deleted the row" in journal.new_row. */
static Jsonb *
json_null(void)
{
	JsonbValue	v;

	v.type = jbvNull;
	return JsonbValueToJsonb(&v);
}

/*
 * Are two jsonb values (scalars or containers) equal?  Scalars are
 * compared in place: this runs for every column of every row a handler
 * updates in a tracked table.
 */
static bool
jsonb_values_equal(JsonbValue *a, JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(a->val.numeric),
													NumericGetDatum(b->val.numeric)));
		case jbvBinary:
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		default:
			{
				Jsonb	   *ja = JsonbValueToJsonb(a);
				Jsonb	   *jb = JsonbValueToJsonb(b);

				return compareJsonbContainers(&ja->root, &jb->root) == 0;
			}
	}
}

/*
 * The columns whose values differ between old and new (rows as jsonb
 * objects keyed by column name), as two jsonb objects of those columns'
 * old and new values.  Returns false when nothing changed.
 */
static bool
changed_columns(Jsonb *old, Jsonb *new, TupleDesc desc, Jsonb **old_out, Jsonb **new_out)
{
	JsonbParseState *os = NULL;
	JsonbParseState *ns = NULL;
	JsonbValue *ores;
	JsonbValue *nres;
	int			n = 0;

	pushJsonbValue(&os, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&ns, WJB_BEGIN_OBJECT, NULL);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		char	   *name = NameStr(att->attname);
		JsonbValue	k;
		JsonbValue *ov;
		JsonbValue *nv;
		JsonbValue	null;

		if (att->attisdropped)
			continue;
		ov = li_jsonb_get(&old->root, name);
		nv = li_jsonb_get(&new->root, name);
		null.type = jbvNull;
		if (ov == NULL)
			ov = &null;
		if (nv == NULL)
			nv = &null;
		if (jsonb_values_equal(ov, nv))
			continue;
		k.type = jbvString;
		k.val.string.val = name;
		k.val.string.len = strlen(name);
		pushJsonbValue(&os, WJB_KEY, &k);
		pushJsonbValue(&os, WJB_VALUE, ov);
		pushJsonbValue(&ns, WJB_KEY, &k);
		pushJsonbValue(&ns, WJB_VALUE, nv);
		n++;
	}
	ores = pushJsonbValue(&os, WJB_END_OBJECT, NULL);
	nres = pushJsonbValue(&ns, WJB_END_OBJECT, NULL);
	*old_out = JsonbValueToJsonb(ores);
	*new_out = JsonbValueToJsonb(nres);
	return n > 0;
}

/* The primary key columns of a row, as a jsonb object. */
static Jsonb *
key_jsonb(Jsonb *row, LiTracked *t)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < t->npk; i++)
	{
		JsonbValue	k;
		JsonbValue *v = li_jsonb_get(&row->root, t->pk[i]);
		JsonbValue	null;

		k.type = jbvString;
		k.val.string.val = t->pk[i];
		k.val.string.len = strlen(t->pk[i]);
		pushJsonbValue(&state, WJB_KEY, &k);
		if (v == NULL)
		{
			null.type = jbvNull;
			v = &null;
		}
		if (v->type == jbvBinary)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("primary key column \"%s\" of a tracked table must be a scalar", t->pk[i])));
		pushJsonbValue(&state, WJB_VALUE, v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/*
 * Journal entries of the current apply transaction, kept in memory and
 * written with one INSERT by li_journal_flush() before the transaction
 * commits (one statement instead of one per changed row).
 */
static int	nbuf = 0;
static int	maxbuf = 0;
static Datum *buf_ledger;
static Datum *buf_tbl;
static Datum *buf_pk;
static Datum *buf_old;
static bool *buf_old_null;
static Datum *buf_new;
static bool *buf_new_null;
static MemoryContext buf_cxt = NULL;

/*
 * li_journal_begin -- start an empty journal buffer for an apply
 * transaction (its memory goes with the transaction).
 */
void
li_journal_begin(void)
{
	nbuf = 0;
	maxbuf = 0;
	buf_cxt = CurTransactionContext;
}

/*
 * Buffer one journal entry: the key, the row's values before the change
 * (NULL: the change inserted it) and after it (JSON null: the change
 * deleted it).  An UPDATE records only the columns it changed.
 */
static void
journal_insert(LiTracked *t, Jsonb *pk, Jsonb *old_row, Jsonb *new_row)
{
	MemoryContext old = MemoryContextSwitchTo(buf_cxt);

	if (nbuf >= maxbuf)
	{
		int			newmax = Max(256, maxbuf * 2);

		if (maxbuf == 0)
		{
			buf_ledger = palloc(sizeof(Datum) * newmax);
			buf_tbl = palloc(sizeof(Datum) * newmax);
			buf_pk = palloc(sizeof(Datum) * newmax);
			buf_old = palloc(sizeof(Datum) * newmax);
			buf_old_null = palloc(sizeof(bool) * newmax);
			buf_new = palloc(sizeof(Datum) * newmax);
			buf_new_null = palloc(sizeof(bool) * newmax);
		}
		else
		{
			buf_ledger = repalloc(buf_ledger, sizeof(Datum) * newmax);
			buf_tbl = repalloc(buf_tbl, sizeof(Datum) * newmax);
			buf_pk = repalloc(buf_pk, sizeof(Datum) * newmax);
			buf_old = repalloc(buf_old, sizeof(Datum) * newmax);
			buf_old_null = repalloc(buf_old_null, sizeof(bool) * newmax);
			buf_new = repalloc(buf_new, sizeof(Datum) * newmax);
			buf_new_null = repalloc(buf_new_null, sizeof(bool) * newmax);
		}
		maxbuf = newmax;
	}
	buf_ledger[nbuf] = Int64GetDatum(li_apply_ctx.ledger);
	buf_tbl[nbuf] = ObjectIdGetDatum(t->relid);
	buf_pk[nbuf] = PointerGetDatum(DatumGetJsonbPCopy(JsonbPGetDatum(pk)));
	buf_old_null[nbuf] = (old_row == NULL);
	buf_old[nbuf] = old_row ? PointerGetDatum(DatumGetJsonbPCopy(JsonbPGetDatum(old_row))) : (Datum) 0;
	buf_new_null[nbuf] = (new_row == NULL);
	buf_new[nbuf] = new_row ? PointerGetDatum(DatumGetJsonbPCopy(JsonbPGetDatum(new_row))) : (Datum) 0;
	nbuf++;
	MemoryContextSwitchTo(old);
}

/*
 * li_journal_flush -- write the buffered entries of pipeline p, in order,
 * with one INSERT (inside the apply transaction, SPI connected).
 */
void
li_journal_flush(LiPipeline *p)
{
	Datum		v[6];
	int			dims[1];
	int			lbs[1] = {1};
	int			ret;

	if (nbuf == 0)
		return;
	if (journal_insert_plan == NULL || journal_plan_new_row != p->sql_0_2)
	{
		Oid			types[6] = {TEXTOID, INT8ARRAYOID, REGCLASSARRAYOID, JSONBARRAYOID, JSONBARRAYOID,
		JSONBARRAYOID};
		SPIPlanPtr	plan;

		/* new_row is 0.2's */
		if (p->sql_0_2)
			plan = li_keep_plan("INSERT INTO ledger_ingest.journal (pipeline, ledger, tbl, pk, old_row, new_row) "
								"SELECT $1, u.l, u.t, u.k, u.o, u.w FROM ROWS FROM "
								"(pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), "
								"pg_catalog.unnest($5), pg_catalog.unnest($6)) WITH ORDINALITY AS u(l, t, k, o, w, n) "
								"ORDER BY u.n",
								6, types);
		else
			plan = li_keep_plan("INSERT INTO ledger_ingest.journal (pipeline, ledger, tbl, pk, old_row) "
								"SELECT $1, u.l, u.t, u.k, u.o FROM ROWS FROM "
								"(pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), "
								"pg_catalog.unnest($5)) WITH ORDINALITY AS u(l, t, k, o, n) ORDER BY u.n",
								5, types);
		if (journal_insert_plan != NULL)
			SPI_freeplan(journal_insert_plan);
		journal_insert_plan = plan;
		journal_plan_new_row = p->sql_0_2;
	}
	dims[0] = nbuf;
	v[0] = CStringGetTextDatum(p->name);
	v[1] = PointerGetDatum(construct_array(buf_ledger, nbuf, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[2] = PointerGetDatum(construct_array(buf_tbl, nbuf, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT));
	v[3] = PointerGetDatum(construct_array(buf_pk, nbuf, JSONBOID, -1, false, TYPALIGN_INT));
	v[4] = PointerGetDatum(construct_md_array(buf_old, buf_old_null, 1, dims, lbs, JSONBOID, -1, false, TYPALIGN_INT));
	v[5] = PointerGetDatum(construct_md_array(buf_new, buf_new_null, 1, dims, lbs, JSONBOID, -1, false, TYPALIGN_INT));
	ret = SPI_execute_plan(journal_insert_plan, v, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "writing the reorg journal failed: %s", SPI_result_code_string(ret));
	nbuf = 0;
}

/*
 * ledger_ingest._journal() RETURNS trigger
 *
 * AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW on tracked tables.  INSERT
 * records (key, NULL); DELETE and UPDATE record (key, pre-image); an UPDATE
 * that changes the key records both (new key, NULL) and (old key,
 * pre-image).  The entries are buffered and written by li_journal_flush()
 * as the worker's own (superuser) identity, never as the handler's owner,
 * who has no access to the journal.
 */
Datum
ledger_ingest_journal(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	LiTracked  *t;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger_ingest._journal() must be an AFTER ROW trigger")));

	t = journaling(RelationGetRelid(trigdata->tg_relation));
	if (t == NULL)
		return PointerGetDatum(NULL);
	desc = RelationGetDescr(trigdata->tg_relation);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		Jsonb	   *new = row_jsonb(trigdata->tg_trigtuple, desc);

		journal_insert(t, key_jsonb(new, t), NULL, new);
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		Jsonb	   *old = row_jsonb(trigdata->tg_trigtuple, desc);

		journal_insert(t, key_jsonb(old, t), old, json_null());
	}
	else
	{
		Jsonb	   *old = row_jsonb(trigdata->tg_trigtuple, desc);
		Jsonb	   *new = row_jsonb(trigdata->tg_newtuple, desc);
		Jsonb	   *oldpk = key_jsonb(old, t);
		Jsonb	   *newpk = key_jsonb(new, t);

		if (compareJsonbContainers(&oldpk->root, &newpk->root) != 0)
		{
			/* a new key: the old row deleted, the new one inserted */
			journal_insert(t, newpk, NULL, new);
			journal_insert(t, oldpk, old, json_null());
		}
		else if (!li_apply_ctx.pipeline->sql_0_2)
			journal_insert(t, oldpk, old, NULL);	/* 0.1: whole pre-images */
		else
		{
			Jsonb	   *old_changed;
			Jsonb	   *new_changed;

			/* only the columns it changed: a reorg restores only those */
			if (changed_columns(old, new, desc, &old_changed, &new_changed))
				journal_insert(t, oldpk, old_changed, new_changed);
		}
	}
	return PointerGetDatum(NULL);
}
