/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  The raw sink: every event of an apply transaction lands as a row of a
 *	  user table, through PostgreSQL's COPY FROM machinery.
 *
 * add_raw_sink(pipeline, tbl) registers a table whose columns are named
 * after fields of ledger_ingest.event (any subset, with the same types).
 * In each apply transaction, after the handlers, the events are written in
 * COPY BINARY format into a buffer (no text to format and parse back: hex
 * for bytea, array literals for topics) and loaded with BeginCopyFrom/CopyFrom
 * reading from that buffer (the data_source_cb path that file_fdw uses):
 * multi-row inserts with index maintenance and triggers, as COPY does, in
 * the same transaction as the cursor compare-and-swap.  The rows are
 * written as the pipeline owner, who needs INSERT on the table; tables with
 * row-level security are refused, as COPY FROM refuses them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "port/pg_bswap.h"
#include "commands/copy.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "ledger_ingest.h"

/* the event fields a sink table may have, in ledger_ingest.event order */
static const char *const sink_fields[] = {
	"pipeline", "ledger", "ledger_hash", "ledger_time", "tx_index",
	"tx_hash", "event_index", "address", "topics", "data"
};

#define NFIELDS lengthof(sink_fields)

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
			put_bytes(buf, e->address, LI_ADDRESS_LEN);
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
			put_int32(buf, 20 + e->ntopics * (4 + LI_HASH_LEN));
			put_int32(buf, 1);
			put_int32(buf, 0);
			put_int32(buf, BYTEAOID);
			put_int32(buf, e->ntopics);
			put_int32(buf, 1);	/* lower bound */
			for (int t = 0; t < e->ntopics; t++)
				put_bytes(buf, e->topics[t], LI_HASH_LEN);
			break;
		case 9:
			put_bytes(buf, VARDATA_ANY(e->data), VARSIZE_ANY_EXHDR(e->data));
			break;
	}
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
		Relation	rel;
		ParseState *pstate;
		CopyFromState cstate;
		List	   *attnames = NIL;
		Oid			save_userid;
		int			save_sec_context;
		int			nfields;

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
		nfields = 0;
		for (int f = 0; f < (int) NFIELDS; f++)
			if (sink->fields & (1 << f))
			{
				attnames = lappend(attnames, makeString(pstrdup(sink_fields[f])));
				nfields++;
			}
		for (int i = 0; i < nsegs; i++)
		{
			for (int ev = first[i]; ev < last[i]; ev++)
			{
				put_int16(&copybuf, nfields);
				for (int f = 0; f < (int) NFIELDS; f++)
					if (sink->fields & (1 << f))
						append_field(&copybuf, f, p, ledgers[i], &ledgers[i]->events[ev]);
			}
		}
		put_int16(&copybuf, -1);	/* trailer */
		copypos = 0;

		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(p->owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		rel = table_open(sink->relid, RowExclusiveLock);
		if (pg_class_aclcheck(sink->relid, p->owner, ACL_INSERT) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", RelationGetRelationName(rel))));
		if (check_enable_rls(sink->relid, InvalidOid, false) == RLS_ENABLED)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("raw sink table %s has row-level security enabled",
							RelationGetRelationName(rel))));
		/* as DoCopy does: CopyFrom's result relation is range table entry 1 */
		pstate = make_parsestate(NULL);
		(void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
		cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, sink_read_cb, attnames,
							   list_make1(makeDefElem("format", (Node *) makeString("binary"), -1)));
		total += CopyFrom(cstate);
		EndCopyFrom(cstate);
		free_parsestate(pstate);
		table_close(rel, NoLock);
		SetUserIdAndSecContext(save_userid, save_sec_context);

		/* return the buffer's memory after an unusually large batch */
		if (copybuf.maxlen > 64 * 1024 * 1024)
		{
			pfree(copybuf.data);
			copybuf.data = NULL;
		}
	}
	return total;
}

/*
 * li_sink_fields -- the bitmask of event fields (sink_fields order) that a
 * column list names; unknown names are ignored.
 */
int
li_sink_fields(char **names, int n)
{
	int			mask = 0;

	for (int i = 0; i < n; i++)
		for (int f = 0; f < (int) NFIELDS; f++)
			if (strcmp(names[i], sink_fields[f]) == 0)
				mask |= 1 << f;
	return mask;
}
