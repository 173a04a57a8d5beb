/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  The raw sink: every event of an apply transaction lands as a row of a
 *	  user table, through PostgreSQL's COPY FROM machinery.
 *
 * add_raw_sink(pipeline, tbl) registers a table whose columns are named
 * after fields of ledger_ingest.event (any subset, with the same types).
 * In each apply transaction, after the handlers, the events land in the
 * table, in the same transaction as the cursor compare-and-swap, by one of
 * two paths:
 *
 * - direct (a plain table without triggers, identity or generated columns,
 *   whose other columns have no default, with no deferrable unique index,
 *   not a partition): each event's values are put in a slot as
 *   Datums and inserted with table_multi_insert, then each index is
 *   maintained with ExecInsertIndexTuples and CHECK/NOT NULL constraints
 *   are checked with ExecConstraints, as COPY FROM's multi-insert buffers
 *   do (src/backend/commands/copyfrom.c), without formatting the values
 *   and reading them back;
 * - COPY (everything else): the events are written in COPY BINARY format
 *   into a buffer and loaded with BeginCopyFrom/CopyFrom reading from it
 *   (the data_source_cb path that file_fdw uses), so that defaults,
 *   triggers, partitions and deferred constraints behave as with COPY.
 *
 * The rows are written as the pipeline owner, who needs INSERT on the
 * table; tables with row-level security are refused, as COPY FROM refuses
 * them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "port/pg_bswap.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "event.h"
#include "sink.h"

/* the event fields a sink table may have: li_event_field_names */
#define NFIELDS LI_EVENT_ARGS

/* the buffer the COPY reads from */
static StringInfoData copybuf;
static int	copypos;

static int
sink_read_cb(void *outbuf, int minread, int maxread)
{
	int			n = Min(maxread, copybuf.len - copypos);

	memcpy(outbuf, copybuf.data + copypos, n);
	copypos += n;
	return n;
}

/*
 * Writers of COPY BINARY fields (PostgreSQL documentation, "COPY", "Binary
 * Format"): each field is an int32 length (-1: NULL) followed by the type's
 * binary send format, integers in network byte order.
 */
static void
put_int16(StringInfo buf, int16 v)
{
	uint16		n = pg_hton16((uint16) v);

	appendBinaryStringInfoNT(buf, (char *) &n, 2);
}

static void
put_int32(StringInfo buf, int32 v)
{
	uint32		n = pg_hton32((uint32) v);

	appendBinaryStringInfoNT(buf, (char *) &n, 4);
}

static void
put_int64(StringInfo buf, int64 v)
{
	uint64		n = pg_hton64((uint64) v);

	appendBinaryStringInfoNT(buf, (char *) &n, 8);
}

/* a field of len bytes: its length, then the bytes (text, bytea) */
static void
put_bytes(StringInfo buf, const void *b, int len)
{
	put_int32(buf, len);
	appendBinaryStringInfoNT(buf, b, len);
}

static void
put_null(StringInfo buf)
{
	put_int32(buf, -1);
}

/*
 * One event field in its column type's binary format: text, int8 and
 * int4, bytea, timestamptz (int8 microseconds since 2000-01-01, what
 * timestamptz_send writes), bytea[] (array_send: ndim, has-nulls flag,
 * element type, then per dimension its length and lower bound, then each
 * element with its length).
 */
static void
append_field(StringInfo buf, int field, LiPipeline *p, LiLedger *l, LiEvent *e)
{
	switch (field)
	{
		case 0:
			put_bytes(buf, p->name, strlen(p->name));
			break;
		case 1:
			put_int32(buf, 8);
			put_int64(buf, l->number);
			break;
		case 2:
			put_bytes(buf, l->hash, LI_HASH_LEN);
			break;
		case 3:
			if (TIMESTAMP_NOT_FINITE(l->time))
				put_null(buf);
			else
			{
				put_int32(buf, 8);
				put_int64(buf, l->time);
			}
			break;
		case 4:
			put_int32(buf, 4);
			put_int32(buf, e->tx_index);
			break;
		case 5:
			if (e->has_tx_hash)
				put_bytes(buf, e->tx_hash, LI_HASH_LEN);
			else
				put_null(buf);
			break;
		case 6:
			put_int32(buf, 4);
			put_int32(buf, e->event_index);
			break;
		case 7:
			if (e->address_len == 0)
				put_null(buf);
			else
				put_bytes(buf, e->address, e->address_len);
			break;
		case 8:
			if (e->ntopics == 0)
			{
				put_int32(buf, 12);
				put_int32(buf, 0);	/* ndim */
				put_int32(buf, 0);	/* no nulls */
				put_int32(buf, BYTEAOID);
				break;
			}
			{
				int			size = 20;
				int			len;

				for (int t = 0; t < e->ntopics; t++)
				{
					(void) li_event_topic(e, t, &len);
					size += 4 + len;
				}
				put_int32(buf, size);
			}
			put_int32(buf, 1);
			put_int32(buf, 0);
			put_int32(buf, BYTEAOID);
			put_int32(buf, e->ntopics);
			put_int32(buf, 1);	/* lower bound */
			for (int t = 0; t < e->ntopics; t++)
			{
				int			len;
				const uint8 *topic = li_event_topic(e, t, &len);

				put_bytes(buf, topic, len);
			}
			break;
		case 9:
			put_bytes(buf, VARDATA_ANY(e->data), VARSIZE_ANY_EXHDR(e->data));
			break;
	}
}

/* rows per table_multi_insert call (COPY FROM buffers up to 1000) */
#define SINK_MULTI_ROWS 1000

/*
 * sink_field_of -- for each attribute of desc, the event field it holds
 * (LiEventField) or -1 (a dropped column or another column).  Returns
 * the number of attributes that hold one.
 */
static int
sink_field_of(TupleDesc desc, int *field_of)
{
	int			n = 0;

	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		field_of[a] = -1;
		if (att->attisdropped)
			continue;
		for (int f = 0; f < (int) NFIELDS; f++)
			if (strcmp(NameStr(att->attname), li_event_field_names[f]) == 0)
				field_of[a] = f;
		n += field_of[a] >= 0;
	}
	return n;
}

/*
 * li_sink_direct_ok -- whether rel can take the direct path: a plain table (not a
 * partition) without triggers, identity or generated columns, whose columns
 * other than event fields get NULL (they have no default and are not of a
 * domain type).
 */
bool
li_sink_direct_ok(Relation rel, const int *field_of)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->trigdesc != NULL)
		return false;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
			continue;
		/* generated and identity columns: as COPY treats them */
		if (att->attidentity != '\0' || att->attgenerated != '\0')
			return false;
		/*
		 * Another column gets NULL, unless it has a default; or a domain,
		 * whose default and constraints (NOT NULL, CHECK) COPY applies to
		 * a missing column (build_column_default, CoerceToDomain).
		 */
		if (field_of[a] < 0 &&
			(att->atthasdef || get_typtype(att->atttypid) == TYPTYPE_DOMAIN))
			return false;
	}
	return true;
}

/* what fill_raw_row needs */
typedef struct RawRows
{
	int			natts;
	const int  *field_of;
	Datum		pipeline;
} RawRows;

/* slot := the row of event e: its fields in the columns named after them, NULL elsewhere */
static bool
fill_raw_row(void *arg, TupleTableSlot *slot, Datum ledger_hash, const LiLedger *l,
			 const LiEvent *e)
{
	RawRows    *r = (RawRows *) arg;
	int			natts = r->natts;
	const int  *field_of = r->field_of;
	Datum		pipeline = r->pipeline;

	ExecClearTuple(slot);
	for (int a = 0; a < natts; a++)
	{
		if (field_of[a] < 0)
		{
			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
		}
		else
			slot->tts_values[a] = li_event_field((LiEventField) field_of[a], pipeline,
												 ledger_hash, l, e, &slot->tts_isnull[a]);
	}
	ExecStoreVirtualTuple(slot);
	return true;
}

/* insert n filled slots, then their index entries; returns n */
static int
direct_flush(Relation rel, ResultRelInfo *rri, EState *estate,
			 TupleTableSlot **slots, int n, CommandId cid, BulkInsertState bistate)
{
	CHECK_FOR_INTERRUPTS();
	table_multi_insert(rel, slots, n, cid, 0, bistate);
	for (int i = 0; i < n && rri->ri_NumIndices > 0; i++)
	{
		List	   *recheck = ExecInsertIndexTuples(rri, slots[i], estate,
													false, false, NULL, NIL);

		list_free(recheck);
		ResetPerTupleExprContext(estate);
	}
	return n;
}

/*
 * li_sink_direct -- the direct path (see the file's comment) for rel, whose
 * range table entry is rtable's only one: fill(arg, slot, ...) makes each
 * event's row (false: the event has none).  Returns the rows written, or
 * -1 (nothing done) when a unique index is deferrable: its checks need the
 * after-trigger queue that COPY sets up.
 */
int64
li_sink_direct(Relation rel, List *rtable, LiSinkFill fill, void *arg,
			   LiLedger **ledgers, int *first, int *last, int nsegs)
{
	TupleDesc	desc = RelationGetDescr(rel);
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slots[SINK_MULTI_ROWS];
	BulkInsertState bistate;
	MemoryContext rows_cxt;
	MemoryContext old;
	CommandId	cid = GetCurrentCommandId(true);
	bool		check = desc->constr != NULL;
	int			n = 0;
	int64		total = 0;

	ExecInitRangeTable(estate, rtable);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	CheckValidResultRel(rri, CMD_INSERT);
	ExecOpenIndices(rri, false);
	for (int i = 0; i < rri->ri_NumIndices; i++)
		if (!rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
		{
			ExecCloseIndices(rri);
			FreeExecutorState(estate);
			return -1;
		}
	estate->es_output_cid = cid;
	bistate = GetBulkInsertState();
	rows_cxt = AllocSetContextCreate(CurrentMemoryContext, "ledger_ingest sink rows",
									 ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < SINK_MULTI_ROWS; i++)
		slots[i] = MakeSingleTupleTableSlot(desc, table_slot_callbacks(rel));

	for (int s = 0; s < nsegs; s++)
	{
		Datum		ledger_hash = PointerGetDatum(li_bytes_to_bytea(ledgers[s]->hash, LI_HASH_LEN));

		old = MemoryContextSwitchTo(rows_cxt);
		for (int ev = first[s]; ev < last[s]; ev++)
		{
			TupleTableSlot *slot = slots[n];

			if (!fill(arg, slot, ledger_hash, ledgers[s], &ledgers[s]->events[ev]))
				continue;
			if (check)
			{
				ExecConstraints(rri, slot, estate);
				ResetPerTupleExprContext(estate);
			}
			if (++n == SINK_MULTI_ROWS)
			{
				total += direct_flush(rel, rri, estate, slots, n, cid, bistate);
				n = 0;
				MemoryContextReset(rows_cxt);
			}
		}
		MemoryContextSwitchTo(old);
	}
	old = MemoryContextSwitchTo(rows_cxt);
	if (n > 0)
		total += direct_flush(rel, rri, estate, slots, n, cid, bistate);
	MemoryContextSwitchTo(old);

	for (int i = 0; i < SINK_MULTI_ROWS; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	MemoryContextDelete(rows_cxt);
	FreeBulkInsertState(bistate);
	table_finish_bulk_insert(rel, 0);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	/* later statements of the transaction see the rows */
	CommandCounterIncrement();
	return total;
}

/*
 * sink_copy -- the COPY path (see the file's comment): the events' fields
 * that rel has columns for, in COPY BINARY format in copybuf, loaded by
 * CopyFrom with pstate's range table.  Returns the rows written.
 */
/*
 * copy_begin -- copybuf := the COPY BINARY header; the names of the
 * attributes with field_of[a] >= 0 into *attnames.  Returns their number.
 */
static int
copy_begin(TupleDesc desc, const int *field_of, List **attnames)
{
	int			nfields = 0;

	if (copybuf.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&copybuf);
		MemoryContextSwitchTo(old);
	}
	resetStringInfo(&copybuf);
	/* signature, flags, header extension length */
	appendBinaryStringInfoNT(&copybuf, "PGCOPY\n\377\r\n\0", 11);
	put_int32(&copybuf, 0);
	put_int32(&copybuf, 0);
	*attnames = NIL;
	for (int a = 0; a < desc->natts; a++)
		if (field_of[a] >= 0)
		{
			*attnames = lappend(*attnames,
								makeString(pstrdup(NameStr(TupleDescAttr(desc, a)->attname))));
			nfields++;
		}
	return nfields;
}

/* copy_load -- COPY copybuf (header, rows, then the trailer) into rel */
static int64
copy_load(Relation rel, ParseState *pstate, List *attnames)
{
	CopyFromState cstate;
	int64		n;

	put_int16(&copybuf, -1);	/* trailer */
	copypos = 0;

	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, sink_read_cb, attnames,
						   list_make1(makeDefElem("format", (Node *) makeString("binary"), -1)));
	n = CopyFrom(cstate);
	EndCopyFrom(cstate);

	/* return the buffer's memory after an unusually large batch */
	if (copybuf.maxlen > 64 * 1024 * 1024)
	{
		pfree(copybuf.data);
		copybuf.data = NULL;
	}
	return n;
}

/*
 * The segments one COPY loads from s0 on: all of them, or, into a table
 * the pipeline tracks, one ledger's, so that the journal trigger records
 * each row under its own ledger (li_apply_enter_ledger).
 */
static int
copy_chunk_end(LiPipeline *p, Relation rel, int s0, int nsegs, LiLedger **ledgers)
{
	for (int i = 0; i < p->ntracked; i++)
		if (p->tracked[i].relid == RelationGetRelid(rel))
		{
			li_apply_enter_ledger(p, ledgers[s0]);
			return s0 + 1;
		}
	return nsegs;
}

static int64
sink_copy(Relation rel, ParseState *pstate, const int *field_of, LiPipeline *p,
		  LiLedger **ledgers, int *first, int *last, int nsegs)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int64		total = 0;

	for (int s0 = 0, s1; s0 < nsegs; s0 = s1)
	{
		List	   *attnames;
		int			nfields = copy_begin(desc, field_of, &attnames);

		s1 = copy_chunk_end(p, rel, s0, nsegs, ledgers);
		for (int s = s0; s < s1; s++)
		{
			for (int ev = first[s]; ev < last[s]; ev++)
			{
				put_int16(&copybuf, nfields);
				for (int a = 0; a < desc->natts; a++)
					if (field_of[a] >= 0)
						append_field(&copybuf, field_of[a], p, ledgers[s], &ledgers[s]->events[ev]);
			}
		}
		total += copy_load(rel, pstate, attnames);
	}
	return total;
}

/*
 * li_sink_copy -- the COPY path for rows that fill(arg, slot, ...) makes
 * (false: the event has none): the attributes with field_of[a] >= 0, each
 * in its type's binary send format.  Returns the rows written.
 */
int64
li_sink_copy(LiPipeline *p, Relation rel, ParseState *pstate, const int *field_of, LiSinkFill fill,
			 void *arg, LiLedger **ledgers, int *first, int *last, int nsegs)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int64		total = 0;
	FmgrInfo   *send = palloc0(sizeof(FmgrInfo) * Max(desc->natts, 1));
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "ledger_ingest sink row",
												  ALLOCSET_DEFAULT_SIZES);

	for (int a = 0; a < desc->natts; a++)
		if (field_of[a] >= 0)
		{
			Oid			func;
			bool		isvarlena;

			getTypeBinaryOutputInfo(TupleDescAttr(desc, a)->atttypid, &func, &isvarlena);
			fmgr_info(func, &send[a]);
		}
	for (int s0 = 0, s1; s0 < nsegs; s0 = s1)
	{
		List	   *attnames;
		int			nfields = copy_begin(desc, field_of, &attnames);

		s1 = copy_chunk_end(p, rel, s0, nsegs, ledgers);
		for (int s = s0; s < s1; s++)
		{
			Datum		ledger_hash = PointerGetDatum(li_bytes_to_bytea(ledgers[s]->hash, LI_HASH_LEN));

			for (int ev = first[s]; ev < last[s]; ev++)
			{
				MemoryContext old = MemoryContextSwitchTo(row_cxt);

				CHECK_FOR_INTERRUPTS();
				if (!fill(arg, slot, ledger_hash, ledgers[s], &ledgers[s]->events[ev]))
				{
					MemoryContextSwitchTo(old);
					MemoryContextReset(row_cxt);
					continue;
				}
				put_int16(&copybuf, nfields);
				for (int a = 0; a < desc->natts; a++)
				{
					bytea	   *b;

					if (field_of[a] < 0)
						continue;
					if (slot->tts_isnull[a])
					{
						put_null(&copybuf);
						continue;
					}
					b = SendFunctionCall(&send[a], slot->tts_values[a]);
					put_bytes(&copybuf, VARDATA(b), VARSIZE(b) - VARHDRSZ);
				}
				MemoryContextSwitchTo(old);
				MemoryContextReset(row_cxt);
			}
		}
		total += copy_load(rel, pstate, attnames);
	}
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(row_cxt);
	return total;
}

/*
 * li_sink_open -- open table relid for writing as p's owner (see sink.h).
 */
void
li_sink_open(LiPipeline *p, Oid relid, const char *what, LiSinkTable *t)
{
	GetUserIdAndSecContext(&t->save_userid, &t->save_sec_context);
	SetUserIdAndSecContext(p->owner, t->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	t->rel = table_open(relid, RowExclusiveLock);
	if (pg_class_aclcheck(relid, p->owner, ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", RelationGetRelationName(t->rel))));
	if (check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s table %s has row-level security enabled",
						what, RelationGetRelationName(t->rel))));
	/* as DoCopy does: the target is range table entry 1 */
	t->pstate = make_parsestate(NULL);
	(void) addRangeTableEntryForRelation(t->pstate, t->rel, RowExclusiveLock, NULL, false, false);
}

/* li_sink_close -- close a table of li_sink_open, become the caller again */
void
li_sink_close(LiSinkTable *t)
{
	free_parsestate(t->pstate);
	table_close(t->rel, NoLock);
	SetUserIdAndSecContext(t->save_userid, t->save_sec_context);
}

/*
 * li_sink_write -- load the events of the transaction's segments into each
 * raw sink of the pipeline (inside the apply transaction).  Returns the
 * number of rows written.
 */
uint64
li_sink_write(LiPipeline *p, LiLedger **ledgers, int *first, int *last, int nsegs)
{
	uint64		total = 0;
	uint64		nevents = 0;

	for (int i = 0; i < nsegs; i++)
		nevents += last[i] - first[i];
	if (nevents == 0)
		return 0;

	for (int s = 0; s < p->nsinks; s++)
	{
		LiSink	   *sink = &p->sinks[s];
		LiSinkTable t;
		Relation	rel;
		ParseState *pstate;
		int		   *field_of;
		int64		n = -1;

		if (sink->event != NULL)
			continue;			/* a table sink: table_sink.c */
		li_sink_open(p, sink->relid, "raw sink", &t);
		rel = t.rel;
		pstate = t.pstate;

		field_of = palloc(sizeof(int) * Max(RelationGetDescr(rel)->natts, 1));
		if (sink_field_of(RelationGetDescr(rel), field_of) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("raw sink table %s has no column named after a field of ledger_ingest.event",
							RelationGetRelationName(rel))));
		if (li_sink_direct_ok(rel, field_of))
		{
			RawRows		rows = {RelationGetDescr(rel)->natts, field_of, CStringGetTextDatum(p->name)};

			n = li_sink_direct(rel, pstate->p_rtable, fill_raw_row, &rows, ledgers, first, last, nsegs);
		}
		if (n < 0)
			n = sink_copy(rel, pstate, field_of, p, ledgers, first, last, nsegs);
		total += n;
		li_sink_close(&t);
	}
	return total;
}
