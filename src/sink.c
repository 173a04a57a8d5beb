/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  The raw sink: every event of an apply transaction lands as a row of a
 *	  user table, through PostgreSQL's COPY FROM machinery.
 *
 * add_raw_sink(pipeline, tbl) registers a table whose columns are named
 * after fields of ledger_ingest.event (any subset, with the same types).
 * In each apply transaction, after the handlers, the events are written in
 * COPY text format into a buffer and loaded with BeginCopyFrom/CopyFrom
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

/* bytea in COPY text format: \\x followed by hex (the backslash doubled) */
static void
append_bytes(StringInfo buf, const uint8 *b, int len, const char *prefix)
{
	static const char digits[] = "0123456789abcdef";

	appendStringInfoString(buf, prefix);
	enlargeStringInfo(buf, 2 * len);
	for (int i = 0; i < len; i++)
	{
		buf->data[buf->len++] = digits[b[i] >> 4];
		buf->data[buf->len++] = digits[b[i] & 0xf];
	}
	buf->data[buf->len] = '\0';
}

static void
append_field(StringInfo buf, int field, LiPipeline *p, LiLedger *l, LiEvent *e)
{
	switch (field)
	{
		case 0:
			appendStringInfoString(buf, p->name);	/* [A-Za-z0-9_.-] only */
			break;
		case 1:
			appendStringInfo(buf, INT64_FORMAT, l->number);
			break;
		case 2:
			append_bytes(buf, l->hash, LI_HASH_LEN, "\\\\x");
			break;
		case 3:
			if (TIMESTAMP_NOT_FINITE(l->time))
				appendStringInfoString(buf, "\\N");
			else
				appendStringInfoString(buf, timestamptz_to_str(l->time));
			break;
		case 4:
			appendStringInfo(buf, "%d", e->tx_index);
			break;
		case 5:
			if (e->has_tx_hash)
				append_bytes(buf, e->tx_hash, LI_HASH_LEN, "\\\\x");
			else
				appendStringInfoString(buf, "\\N");
			break;
		case 6:
			appendStringInfo(buf, "%d", e->event_index);
			break;
		case 7:
			append_bytes(buf, e->address, LI_ADDRESS_LEN, "\\\\x");
			break;
		case 8:
			appendStringInfoChar(buf, '{');
			for (int t = 0; t < e->ntopics; t++)
			{
				append_bytes(buf, e->topics[t], LI_HASH_LEN, t > 0 ? ",\"\\\\\\\\x" : "\"\\\\\\\\x");
				appendStringInfoChar(buf, '"');
			}
			appendStringInfoChar(buf, '}');
			break;
		case 9:
			append_bytes(buf, (const uint8 *) VARDATA_ANY(e->data),
						 VARSIZE_ANY_EXHDR(e->data), "\\\\x");
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

		if (copybuf.data == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			initStringInfo(&copybuf);
			MemoryContextSwitchTo(old);
		}
		resetStringInfo(&copybuf);
		for (int i = 0; i < nsegs; i++)
		{
			for (int ev = first[i]; ev < last[i]; ev++)
			{
				bool		tab = false;

				for (int f = 0; f < (int) NFIELDS; f++)
				{
					if (!(sink->fields & (1 << f)))
						continue;
					if (tab)
						appendStringInfoChar(&copybuf, '\t');
					append_field(&copybuf, f, p, ledgers[i], &ledgers[i]->events[ev]);
					tab = true;
				}
				appendStringInfoChar(&copybuf, '\n');
			}
		}
		copypos = 0;
		for (int f = 0; f < (int) NFIELDS; f++)
			if (sink->fields & (1 << f))
				attnames = lappend(attnames, makeString(pstrdup(sink_fields[f])));

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
		cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, sink_read_cb, attnames, NIL);
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
