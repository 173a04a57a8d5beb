/*-------------------------------------------------------------------------
 *
 * table_sink.c
 *	  Table sinks: each log of one Solidity event lands as a row of a user
 *	  table, its arguments decoded in C into typed columns, in the apply
 *	  transaction, through the raw sink's paths (sink.c).
 *
 * add_table_sink(pipeline, tbl, event, address, columns) registers a table
 * for the logs of one event (topic0 and number of topics as the signature
 * says; of one contract when address is given).  Each column takes an
 * argument of the event, a field of ledger_ingest.event or a field of the
 * event's transaction ("tx_" and an attribute of ledger_ingest.transaction
 * from "from" on: tx_from, tx_value, tx_status; NULL when the ledger
 * carries no transactions): by its own name, or by the name "columns" maps
 * it to ({"column": "argument or field"}).
 * Without "columns", a column that names neither must have a default;
 * with it, the columns it does not map take their defaults (or NULL).
 *
 * Arguments and the column types that hold them (checked when the sink is
 * added, and again at each write):
 *
 *	uintN			numeric; bigint (N <= 63), integer (N <= 31), smallint (N <= 15)
 *	intN			numeric; bigint (N <= 64), integer (N <= 32), smallint (N <= 16)
 *	address			bytea (20 bytes), text ("0x" and 40 lower-case hex digits)
 *	bool			boolean
 *	bytesN, bytes	bytea
 *	string			text
 *	indexed string, bytes, array or tuple: bytea (its keccak256 topic)
 *	any argument	jsonb (as decode_event gives it: arrays and tuples too)
 *
 * Each log is checked as
 * decode_event checks it (abi_core.c, li_abi_core_check_event, without
 * building its JSON); one that does not decode is recorded in
 * ledger_ingest.decode_error and skipped, or fails the transaction with
 * on_decode_error "fail".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"

#include "abi.h"
#include "abi_core.h"
#include "apply.h"
#include "event.h"
#include "handlers.h"
#include "sink.h"
#include "transaction.h"

PG_FUNCTION_INFO_V1(ledger_ingest_table_sink_check);

/* the type of each field of ledger_ingest.event a column can take (LiEventField) */
static const Oid field_types[LI_EVENT_ARGS] = {
	TEXTOID, INT8OID, BYTEAOID, TIMESTAMPTZOID, INT4OID, BYTEAOID, INT4OID, BYTEAOID,
	BYTEAARRAYOID, BYTEAOID
};

/* what each column of a table sink takes */
typedef struct SinkMap
{
	LiAbiDesc  *desc;
	int			natts;
	int		   *filled;			/* per attribute: >= 0 filled, -1 default */
	int		   *arg;			/* argument index, or -1 */
	int		   *field;			/* LiEventField, or -1 */
	Oid		   *type;			/* the column's type */
	LiAbiParamInfo *params;
	int			ntopics;
	uint8		topic0[32];
	bool		anonymous;
	/* while writing */
	LiPipeline *p;
	LiSink	   *sink;
	Datum		pipeline;
} SinkMap;

/* the index of the argument named name, or -1 */
static int
arg_named(const SinkMap *m, const char *name, int len)
{
	for (size_t i = 0; i < li_abi_core_nparams(m->desc); i++)
		if (m->params[i].name != NULL && (int) strlen(m->params[i].name) == len &&
			memcmp(m->params[i].name, name, len) == 0)
			return (int) i;
	return -1;
}

/* the first attribute of ledger_ingest.transaction a column can take ("from") */
#define TX_FIRST_FIELD 5

/*
 * The field named name: a ledger_ingest.event field (LiEventField), or
 * LI_EVENT_ARGS + f for attribute f of the event's transaction, named
 * "tx_" and the attribute's name ("tx_from", "tx_status"); -1 if none.
 */
static int
field_named(const char *name, int len)
{
	for (int f = 0; f < LI_EVENT_ARGS; f++)
		if ((int) strlen(li_event_field_names[f]) == len &&
			memcmp(li_event_field_names[f], name, len) == 0)
			return f;
	if (len > 3 && memcmp(name, "tx_", 3) == 0)
		for (int f = TX_FIRST_FIELD; f < LI_TX_NATTS; f++)
			if ((int) strlen(li_tx_field_names[f]) == len - 3 &&
				memcmp(li_tx_field_names[f], name + 3, len - 3) == 0)
				return LI_EVENT_ARGS + f;
	return -1;
}

/* field f's type and name (field_named) */
static Oid
field_type(int f)
{
	return f < LI_EVENT_ARGS ? field_types[f] : li_tx_field_types[f - LI_EVENT_ARGS];
}

static const char *
field_name(int f)
{
	return f < LI_EVENT_ARGS ? psprintf("%s of ledger_ingest.event", li_event_field_names[f]) :
		psprintf("%s of ledger_ingest.transaction (tx_%s)", li_tx_field_names[f - LI_EVENT_ARGS],
				 li_tx_field_names[f - LI_EVENT_ARGS]);
}

/* the Solidity type of an argument, for errors */
static const char *
param_type(const LiAbiParamInfo *pi)
{
	switch (pi->kind)
	{
		case LI_ABI_V_UINT:
			return psprintf("uint%u", pi->bits);
		case LI_ABI_V_INT:
			return psprintf("int%u", pi->bits);
		case LI_ABI_V_ADDRESS:
			return "address";
		case LI_ABI_V_BOOL:
			return "bool";
		case LI_ABI_V_FIXEDBYTES:
			return psprintf("bytes%u", pi->bits);
		case LI_ABI_V_BYTES:
			return "bytes";
		case LI_ABI_V_STRING:
			return "string";
		case LI_ABI_V_HASH:
			return "an indexed dynamic value (its keccak256)";
		case LI_ABI_V_COMPOSITE:
			return "an array or tuple";
	}
	return "?";
}

/* can a column of type t hold argument pi (see the file header)? */
static bool
holds(Oid t, const LiAbiParamInfo *pi)
{
	unsigned	b = pi->bits;

	/* any argument, arrays and tuples too, as decode_event gives it */
	if (t == JSONBOID)
		return true;
	switch (pi->kind)
	{
		case LI_ABI_V_UINT:
		case LI_ABI_V_INT:
			{
				unsigned	sign = pi->kind == LI_ABI_V_INT;

				return t == NUMERICOID || (t == INT8OID && b <= 63 + sign) ||
					(t == INT4OID && b <= 31 + sign) || (t == INT2OID && b <= 15 + sign);
			}
		case LI_ABI_V_ADDRESS:
			return t == BYTEAOID || t == TEXTOID;
		case LI_ABI_V_BOOL:
			return t == BOOLOID;
		case LI_ABI_V_FIXEDBYTES:
		case LI_ABI_V_BYTES:
		case LI_ABI_V_HASH:
			return t == BYTEAOID;
		case LI_ABI_V_STRING:
			return t == TEXTOID;
		case LI_ABI_V_COMPOSITE:
			return false;
	}
	return false;
}

/*
 * map_columns -- what each column of rel takes for event desc (see the
 * file header); an ERROR naming the column, argument or mapping that does
 * not fit.
 */
static void
map_columns(Relation rel, LiAbiDesc *desc, Jsonb *columns, SinkMap *m)
{
	TupleDesc	td = RelationGetDescr(rel);
	const char *relname = RelationGetRelationName(rel);
	int			nfilled = 0;

	memset(m, 0, sizeof(SinkMap));
	m->desc = desc;
	m->natts = td->natts;
	m->filled = palloc(sizeof(int) * Max(td->natts, 1));
	m->arg = palloc(sizeof(int) * Max(td->natts, 1));
	m->field = palloc(sizeof(int) * Max(td->natts, 1));
	m->type = palloc(sizeof(Oid) * Max(td->natts, 1));
	m->params = palloc(sizeof(LiAbiParamInfo) * Max(li_abi_core_nparams(desc), 1));
	for (size_t i = 0; i < li_abi_core_nparams(desc); i++)
		li_abi_core_param(desc, i, &m->params[i]);
	m->ntopics = li_abi_core_ntopics(desc);
	m->anonymous = li_abi_core_anonymous(desc);
	li_abi_core_topic0(desc, m->topic0);

	/* every key of "columns" is a column, every value an argument or field */
	if (columns != NULL)
	{
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;

		if (!JB_ROOT_IS_OBJECT(columns) || JB_ROOT_IS_SCALAR(columns))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("columns must be a JSON object mapping columns to arguments or fields")));
		it = JsonbIteratorInit(&columns->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *col;

			if (tok != WJB_KEY)
				continue;
			col = pnstrdup(v.val.string.val, v.val.string.len);
			tok = JsonbIteratorNext(&it, &v, true);
			if (get_attnum(RelationGetRelid(rel), col) == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("columns maps column \"%s\", which table %s does not have", col, relname)));
			if (v.type != jbvString ||
				(arg_named(m, v.val.string.val, v.val.string.len) < 0 &&
				 field_named(v.val.string.val, v.val.string.len) < 0))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("columns maps column \"%s\" to %s, which is neither an argument of event %s nor a field of ledger_ingest.event",
								col, v.type == jbvString ? psprintf("\"%s\"", pnstrdup(v.val.string.val, v.val.string.len)) : "a non-string",
								li_abi_core_signature(desc))));
		}
	}

	for (int a = 0; a < td->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(td, a);
		const char *name = NameStr(att->attname);
		const char *src = name;
		int			srclen = (int) strlen(name);

		m->filled[a] = m->arg[a] = m->field[a] = -1;
		m->type[a] = att->atttypid;
		if (att->attisdropped || att->attgenerated != '\0')
			continue;
		if (columns != NULL)
		{
			JsonbValue *v = li_jsonb_get(&columns->root, name);

			if (v == NULL)
				continue;		/* not mapped: its default */
			src = v->val.string.val;
			srclen = v->val.string.len;
		}
		m->arg[a] = arg_named(m, src, srclen);
		if (m->arg[a] < 0)
			m->field[a] = field_named(src, srclen);
		if (m->arg[a] < 0 && m->field[a] < 0)
		{
			if (att->atthasdef || att->attidentity != '\0')
				continue;		/* a column of its own, e.g. an id */
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table sink table %s: column \"%s\" is neither an argument of event %s nor a field of ledger_ingest.event",
							relname, name, li_abi_core_signature(desc)),
					 errhint("Give it a default, or map the columns with columns => '{\"column\": \"argument\"}'.")));
		}
		if (m->arg[a] >= 0 && !holds(att->atttypid, &m->params[m->arg[a]]))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("table sink table %s: column \"%s\" (%s) cannot hold argument \"%s\" (%s)",
							relname, name, format_type_be(att->atttypid),
							m->params[m->arg[a]].name, param_type(&m->params[m->arg[a]])),
					 errhint("numeric holds any uintN or intN; bytea any address, bytesN, bytes or indexed dynamic value; text a string or an address.")));
		if (m->field[a] >= 0 && att->atttypid != field_type(m->field[a]))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("table sink table %s: column \"%s\" is %s, not %s as field %s",
							relname, name, format_type_be(att->atttypid),
							format_type_be(field_type(m->field[a])), field_name(m->field[a]))));
		m->filled[a] = 0;
		nfilled++;
	}
	if (nfilled == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table sink table %s has no column for an argument of event %s or a field of ledger_ingest.event",
						relname, li_abi_core_signature(desc))));
}

/* argument pi, found at v, as a Datum of column type t (holds() said it fits) */
static Datum
arg_datum(const LiAbiParamInfo *pi, const LiAbiValue *v, Oid t)
{
	switch (pi->kind)
	{
		case LI_ABI_V_UINT:
		case LI_ABI_V_INT:
			if (t == NUMERICOID)
				return li_abi_word_numeric(v->p, pi->kind == LI_ABI_V_INT);
			if (t == INT8OID)
				return Int64GetDatum(li_abi_word_int64(v->p));
			if (t == INT4OID)
				return Int32GetDatum((int32) li_abi_word_int64(v->p));
			return Int16GetDatum((int16) li_abi_word_int64(v->p));
		case LI_ABI_V_ADDRESS:
			if (t == TEXTOID)
				return CStringGetTextDatum(li_bytes_to_hex(v->p + 12, 20));
			return PointerGetDatum(li_bytes_to_bytea(v->p + 12, 20));
		case LI_ABI_V_BOOL:
			return BoolGetDatum(v->p[31] != 0);
		case LI_ABI_V_FIXEDBYTES:
			return PointerGetDatum(li_bytes_to_bytea(v->p, (int) pi->bits));
		case LI_ABI_V_BYTES:
		case LI_ABI_V_HASH:
			return PointerGetDatum(li_bytes_to_bytea(v->p, (int) v->len));
		case LI_ABI_V_STRING:
			{
				/* valid UTF-8 without NUL (checked); in the database's encoding */
				char	   *s = pg_any_to_server((const char *) v->p, (int) v->len, PG_UTF8);

				return PointerGetDatum(cstring_to_text_with_len(s, s == (const char *) v->p ?
																(int) v->len : (int) strlen(s)));
			}
		case LI_ABI_V_COMPOSITE:
			break;
	}
	elog(ERROR, "table sink: an array or tuple argument needs a jsonb column");
	return (Datum) 0;
}

/* LiSinkFill of a table sink: the row of a log of its event, or none */
static bool
fill_sink_row(void *arg, TupleTableSlot *slot, Datum ledger_hash, const LiLedger *l,
			  const LiEvent *e)
{
	SinkMap    *m = (SinkMap *) arg;
	const uint8 *data = (const uint8 *) VARDATA_ANY(e->data);
	size_t		len = VARSIZE_ANY_EXHDR(e->data);
	LiAbiError	err;
	Jsonb	   *args = NULL;

	if (e->ntopics != m->ntopics || e->address_len != LI_ADDRESS_LEN ||
		(!m->anonymous && memcmp(e->topics[0], m->topic0, 32) != 0) ||
		(m->sink->has_address && memcmp(e->address, m->sink->address, LI_ADDRESS_LEN) != 0))
		return false;
	if (li_abi_core_check_event(m->desc, (const unsigned char (*)[32]) e->topics, e->ntopics,
								data, len, &err) != LI_ABI_OK)
	{
		li_decode_failed(m->p, psprintf("table sink %s", get_rel_name(m->sink->relid)),
						 li_abi_core_signature(m->desc), (LiLedger *) l, (LiEvent *) e,
						 li_event_datum(m->pipeline, ledger_hash, l, e, NULL), err.message);
		return false;
	}
	ExecClearTuple(slot);
	for (int a = 0; a < m->natts; a++)
	{
		slot->tts_isnull[a] = false;
		if (m->arg[a] >= 0 && m->filled[a] >= 0 && m->type[a] == JSONBOID)
		{
			/* the argument as decode_event gives it (the log decodes: checked) */
			JsonbValue *v;

			if (args == NULL)
			{
				char	   *error = NULL;

				/* within the checks, JSON can still exceed the output cap */
				args = li_abi_try_decode_event_jsonb(m->sink->abi, (const uint8 (*)[32]) e->topics,
													 e->ntopics, data, (int) len, &error);
				if (args == NULL)
				{
					li_decode_failed(m->p, psprintf("table sink %s", get_rel_name(m->sink->relid)),
									 li_abi_core_signature(m->desc), (LiLedger *) l, (LiEvent *) e,
									 li_event_datum(m->pipeline, ledger_hash, l, e, NULL), error);
					return false;
				}
			}
			v = m->params[m->arg[a]].name ? li_jsonb_get(&args->root, m->params[m->arg[a]].name) : NULL;
			slot->tts_isnull[a] = v == NULL;
			slot->tts_values[a] = v ? JsonbPGetDatum(JsonbValueToJsonb(v)) : (Datum) 0;
		}
		else if (m->arg[a] >= 0 && m->filled[a] >= 0)
		{
			LiAbiValue	v;

			li_abi_core_value(m->desc, m->arg[a], (const unsigned char (*)[32]) e->topics, data, &v);
			slot->tts_values[a] = arg_datum(&m->params[m->arg[a]], &v, m->type[a]);
		}
		else if (m->field[a] >= LI_EVENT_ARGS && m->filled[a] >= 0)
		{
			/* a field of the event's transaction: NULL without one */
			const LiTx *t = li_ledger_tx(l, e->tx_index);

			slot->tts_isnull[a] = t == NULL;
			if (t != NULL)
				slot->tts_values[a] = li_transaction_field(m->field[a] - LI_EVENT_ARGS, m->pipeline,
														   ledger_hash, l, t, &slot->tts_isnull[a]);
		}
		else if (m->field[a] >= 0 && m->filled[a] >= 0)
			slot->tts_values[a] = li_event_field((LiEventField) m->field[a], m->pipeline,
												 ledger_hash, l, e, &slot->tts_isnull[a]);
		else
		{
			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
		}
	}
	ExecStoreVirtualTuple(slot);
	return true;
}

/*
 * li_table_sinks_write -- the logs of the transaction's segments into each
 * table sink of the pipeline (inside the apply transaction).  Returns the
 * rows written.
 */
uint64
li_table_sinks_write(LiPipeline *p, LiLedger **ledgers, int *first, int *last, int nsegs)
{
	uint64		total = 0;
	int64		nevents = 0;

	for (int i = 0; i < nsegs; i++)
		nevents += last[i] - first[i];
	if (nevents == 0)
		return 0;
	for (int s = 0; s < p->nsinks; s++)
	{
		LiSink	   *sink = &p->sinks[s];
		LiSinkTable t;
		SinkMap		m;
		int64		n = -1;

		if (sink->event == NULL)
			continue;			/* a raw sink: sink.c */
		li_sink_open(p, sink->relid, "table sink", &t);
		map_columns(t.rel, li_abi_event_core(sink->abi), sink->columns, &m);
		m.p = p;
		m.sink = sink;
		m.pipeline = CStringGetTextDatum(p->name);
		li_apply_ctx.handler = psprintf("table sink %s", RelationGetRelationName(t.rel));
		if (li_sink_direct_ok(t.rel, m.filled))
			n = li_sink_direct(t.rel, t.pstate->p_rtable, fill_sink_row, &m, ledgers, first, last, nsegs);
		if (n < 0)
			n = li_sink_copy(p, t.rel, t.pstate, m.filled, fill_sink_row, &m, ledgers, first, last, nsegs);
		total += n;
		li_sink_close(&t);
	}
	li_apply_ctx.handler = NULL;
	return total;
}

/*
 * ledger_ingest._table_sink_check(tbl regclass, event text, columns jsonb)
 * RETURNS text
 *
 * add_table_sink's checks: the event signature compiles, and each column
 * of tbl fits an argument or a field (map_columns); ERROR naming what does
 * not.  Returns the canonical signature.
 */
Datum
ledger_ingest_table_sink_check(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Jsonb	   *columns = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	void	   *abi;
	Relation	rel;
	SinkMap		m;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tbl and event must not be NULL")));
	relid = PG_GETARG_OID(0);
	abi = li_abi_compile_event(text_to_cstring(PG_GETARG_TEXT_PP(1)), CurrentMemoryContext);
	rel = table_open(relid, AccessShareLock);

	map_columns(rel, li_abi_event_core(abi), columns, &m);
	table_close(rel, AccessShareLock);
	PG_RETURN_TEXT_P(cstring_to_text(li_abi_core_signature(li_abi_event_core(abi))));
}
