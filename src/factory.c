/*-------------------------------------------------------------------------
 *
 * factory.c
 *	  Factory contracts: a pipeline follows, besides its own addresses, the
 *	  contracts its factories announce in an event (add_factory).
 *
 * A factory is a contract address, a Solidity event signature and the
 * argument of type address that names the new contract (a child), as
 * Uniswap V2's PairCreated(token0, token1, pair, n) names the pair.  The
 * worker keeps the set of addresses it follows in memory: the options'
 * "addresses", the factories' and their children's (ledger_ingest.child);
 * a pipeline with factories follows no other address.  Children can number in the tens of
 * thousands, more than nodes take in one eth_getLogs "address" filter
 * (providers cap it at hundreds to a few thousand, or the request size),
 * and each new child would mean fetching again what was fetched without
 * it.  So a pipeline with factories asks eth_getLogs for the options'
 * topic0s (plus the factories') without an address filter and checks the
 * addresses itself (li_factories_filter): the node's work per request
 * does not grow with the children, a child is followed from the ledger
 * that announces it with nothing fetched twice, and the cost is the logs
 * of other contracts under the same topic0s, which the worker drops before
 * any transaction.  Ponder and Envio made the same trade for large
 * factories (see README: Factory contracts).
 *
 * Each ledger's announcements are learned before its events are filtered,
 * so a child's events count from the ledger that announces it (a pair
 * created and traded in one block).  The announcing log's child is
 * inserted in the transaction that applies that log (li_factory_announce),
 * so the set on disk is exactly what the committed cursor covers; a cursor
 * that moves back (a reorg's revert, rewind()) deletes the children after
 * it (the trigger cursor_moved_back), and the worker reloads its set after
 * any failed or reverted apply (li_factories_forget).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "abi.h"
#include "abi_core.h"
#include "catalog.h"
#include "event.h"
#include "factory.h"
#include "handlers.h"
#include "xact.h"

PG_FUNCTION_INFO_V1(ledger_ingest_factory_check);

/* the addresses the worker follows (keys of LI_ADDRESS_LEN bytes) */
static MemoryContext watch_cxt = NULL;
static HTAB *watched = NULL;
static char *watch_key = NULL;	/* what the set was loaded for */

/* the options' "topics", compiled: per position, the values it allows */
typedef struct TopicPosition
{
	int			n;				/* 0: any */
	uint8		(*v)[LI_HASH_LEN];
} TopicPosition;
static TopicPosition watch_topics[LI_MAX_TOPICS];
static int	watch_ntopics;

static SPIPlanPtr child_plan = NULL;

/* the index of the argument of desc named param, of type address; ERROR otherwise */
static int
factory_param(void *abi, const char *param)
{
	LiAbiDesc  *desc = li_abi_event_core(abi);
	size_t		n = li_abi_core_nparams(desc);
	StringInfoData names;

	if (li_abi_core_anonymous(desc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("factory event %s is anonymous", li_abi_event_signature(abi)),
				 errhint("A factory's announcements are found by their topic0.")));
	initStringInfo(&names);
	for (size_t i = 0; i < n; i++)
	{
		LiAbiParamInfo info;

		li_abi_core_param(desc, i, &info);
		if (info.name != NULL && strcmp(info.name, param) == 0)
		{
			if (info.kind != LI_ABI_V_ADDRESS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("argument \"%s\" of factory event %s is not of type address",
								param, li_abi_event_signature(abi))));
			return (int) i;
		}
		if (info.name != NULL)
			appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "", info.name);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("factory event %s has no argument named \"%s\"", li_abi_event_signature(abi), param),
			 errdetail("Its arguments: %s.", names.len > 0 ? names.data : "none")));
	return -1;
}

/*
 * _factory_check(event text, param text) -> text: add_factory's checks.
 * The signature must compile (ERROR 22023 naming the problem, abi.c), not
 * be anonymous, and name an argument param of type address.  Returns the
 * canonical signature.
 */
Datum
ledger_ingest_factory_check(PG_FUNCTION_ARGS)
{
	void	   *abi;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event and param must not be NULL")));
	abi = li_abi_compile_event(text_to_cstring(PG_GETARG_TEXT_PP(0)), CurrentMemoryContext);
	(void) factory_param(abi, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_TEXT_P(cstring_to_text(li_abi_event_signature(abi)));
}

/* the 32-byte values of one "topics" position: "0x.." or an array of them */
static int
topic_values(JsonbValue *pos, uint8 (**out)[LI_HASH_LEN])
{
	JsonbValue *v;
	int			n;

	if (pos == NULL || pos->type == jbvNull)
		return 0;
	if (pos->type == jbvString)
	{
		*out = palloc(LI_HASH_LEN);
		hex_decode(pos->val.string.val + 2, pos->val.string.len - 2, (char *) (*out)[0]);
		return 1;
	}
	n = (int) JsonContainerSize(pos->val.binary.data);
	*out = palloc(LI_HASH_LEN * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		v = getIthJsonbValueFromContainer(pos->val.binary.data, i);
		hex_decode(v->val.string.val + 2, v->val.string.len - 2, (char *) (*out)[i]);
	}
	return n;
}

/* topics position i of the options (validated by options.c), or NULL */
static JsonbValue *
topics_position(Jsonb *topics, int i)
{
	if (topics == NULL || i >= (int) JsonContainerSize(&topics->root))
		return NULL;
	return getIthJsonbValueFromContainer(&topics->root, i);
}

/*
 * The fetcher's filter: topic0 only (the options' values plus the
 * factories'), or none when the options do not name topic0.
 */
static Jsonb *
fetch_topics(LiPipeline *p)
{
	uint8		(*v)[LI_HASH_LEN] = NULL;
	int			n = topic_values(topics_position(p->watch_topics, 0), &v);
	StringInfoData buf;

	if (n == 0)
		return NULL;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "[[");
	for (int i = 0; i < n + p->nfactories; i++)
	{
		const uint8 *t = i < n ? v[i] : p->factories[i - n].topic0;
		char		hex[LI_HASH_LEN * 2 + 1];

		hex[hex_encode((const char *) t, LI_HASH_LEN, hex)] = '\0';
		appendStringInfo(&buf, "%s\"0x%s\"", i > 0 ? "," : "", hex);
	}
	appendStringInfoString(&buf, "]]");
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

static void
watch_add(const uint8 *address)
{
	bool		found;

	(void) hash_search(watched, address, HASH_ENTER, &found);
}

/*
 * Load the set of followed addresses and the compiled "topics" (in
 * watch_cxt) unless they were loaded for the same factories and options
 * and not forgotten since.
 */
static void
load_watched(LiPipeline *p)
{
	StringInfoData key;
	HASHCTL		ctl;
	MemoryContext old;
	uint64		n;

	initStringInfo(&key);
	for (int i = 0; i < p->nfactories; i++)
		appendStringInfo(&key, INT64_FORMAT ",", p->factories[i].id);
	appendStringInfo(&key, "|%s|%s",
					 p->watch_addresses ? JsonbToCString(NULL, &p->watch_addresses->root, 0) : "",
					 p->watch_topics ? JsonbToCString(NULL, &p->watch_topics->root, 0) : "");
	if (watched != NULL && watch_key != NULL && strcmp(watch_key, key.data) == 0)
		return;

	li_factories_forget();
	watch_cxt = AllocSetContextCreate(TopMemoryContext, "ledger_ingest followed addresses",
									  ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = LI_ADDRESS_LEN;
	ctl.entrysize = LI_ADDRESS_LEN;
	ctl.hcxt = watch_cxt;
	watched = hash_create("ledger_ingest followed addresses", 1024, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	old = MemoryContextSwitchTo(watch_cxt);
	watch_key = pstrdup(key.data);

	if (p->watch_addresses != NULL)
	{
		/* a string is a raw scalar: an array of one */
		JsonbContainer *c = &p->watch_addresses->root;

		for (int i = 0; i < (int) JsonContainerSize(c); i++)
		{
			JsonbValue *v = getIthJsonbValueFromContainer(c, i);
			uint8		a[LI_ADDRESS_LEN];

			hex_decode(v->val.string.val + 2, LI_ADDRESS_LEN * 2, (char *) a);
			watch_add(a);
		}
	}
	for (int i = 0; i < p->nfactories; i++)
		watch_add(p->factories[i].address);
	watch_ntopics = 0;
	for (int i = 0; i < LI_MAX_TOPICS; i++)
	{
		watch_topics[i].n = topic_values(topics_position(p->watch_topics, i), &watch_topics[i].v);
		if (watch_topics[i].n > 0)
			watch_ntopics = i + 1;
	}
	MemoryContextSwitchTo(old);

	if (p->nfactories == 0)
		return;
	n = li_select_for_pipeline("SELECT address FROM ledger_ingest.child "
							   "WHERE pipeline OPERATOR(pg_catalog.=) $1",
							   p->name, "the children of the factories");
	for (uint64 r = 0; r < n; r++)
	{
		bool		isnull;
		bytea	   *a = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));

		CHECK_FOR_INTERRUPTS();
		if (VARSIZE_ANY_EXHDR(a) == LI_ADDRESS_LEN)
			watch_add((const uint8 *) VARDATA_ANY(a));
	}
}

/*
 * li_factories_read -- the pipeline's factories (see factory.h).  Their
 * signatures were checked by add_factory; one that no longer compiles
 * (none should) raises the compiler's error.
 */
void
li_factories_read(LiPipeline *p, MemoryContext cxt)
{
	MemoryContext old;

	p->nfactories = 0;
	p->factories = NULL;
	p->watch_addresses = p->opts.addresses;
	p->watch_topics = p->opts.topics;
	if (!p->sql_0_7 ||
		li_select_for_pipeline("SELECT id, address, event, param FROM ledger_ingest.factory "
							   "WHERE pipeline OPERATOR(pg_catalog.=) $1 ORDER BY id",
							   p->name, "the factories") == 0)
	{
		/* transaction handlers follow the "addresses" */
		if (p->ntx_handlers > 0 && p->watch_addresses != NULL)
			load_watched(p);
		return;
	}

	old = MemoryContextSwitchTo(cxt);
	p->nfactories = (int) SPI_processed;
	p->factories = palloc0(sizeof(LiFactory) * p->nfactories);
	for (int i = 0; i < p->nfactories; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		LiFactory  *f = &p->factories[i];
		bool		isnull;
		bytea	   *a;

		f->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		a = DatumGetByteaPP(SPI_getbinval(tup, desc, 2, &isnull));
		memcpy(f->address, VARDATA_ANY(a), LI_ADDRESS_LEN);
		f->abi = li_abi_compile_event(SPI_getvalue(tup, desc, 3), cxt);
		f->param = factory_param(f->abi, SPI_getvalue(tup, desc, 4));
		f->ntopics = li_abi_event_ntopics(f->abi);
		li_abi_event_topic0(f->abi, f->topic0);
	}

	/* the fetcher's filter; the options' own one is applied locally */
	p->opts.addresses = NULL;
	p->opts.topics = fetch_topics(p);
	MemoryContextSwitchTo(old);

	load_watched(p);
}

/* the factory whose announcement e is, or NULL */
static LiFactory *
announcing(LiPipeline *p, const LiEvent *e)
{
	if (e->address_len != LI_ADDRESS_LEN || e->ntopics < 1)
		return NULL;
	for (int i = 0; i < p->nfactories; i++)
	{
		LiFactory  *f = &p->factories[i];

		if (e->ntopics == f->ntopics &&
			memcmp(e->address, f->address, LI_ADDRESS_LEN) == 0 &&
			memcmp(e->topics[0], f->topic0, LI_HASH_LEN) == 0)
			return f;
	}
	return NULL;
}

/*
 * The child that f's announcement e names, into child; false (with
 * err) when the log does not decode as f's event.
 */
static bool
announced_child(LiFactory *f, const LiEvent *e, uint8 *child, LiAbiError *err)
{
	LiAbiDesc  *desc = li_abi_event_core(f->abi);
	const uint8 *data = (const uint8 *) VARDATA_ANY(e->data);
	LiAbiValue	v;

	if (li_abi_core_check_event(desc, (const unsigned char (*)[32]) e->topics, e->ntopics,
								data, VARSIZE_ANY_EXHDR(e->data), err) != LI_ABI_OK)
		return false;
	li_abi_core_value(desc, f->param, (const unsigned char (*)[32]) e->topics, data, &v);
	memcpy(child, v.p + 32 - LI_ADDRESS_LEN, LI_ADDRESS_LEN);
	return true;
}

/* does e match the options' "topics" (eth_getLogs' rule per position)? */
static bool
topics_match(const LiEvent *e)
{
	for (int i = 0; i < watch_ntopics; i++)
	{
		bool		any = false;

		if (watch_topics[i].n == 0)
			continue;
		if (i >= e->ntopics || e->var_topics[i] != NULL)
			return false;
		for (int j = 0; j < watch_topics[i].n && !any; j++)
			any = memcmp(e->topics[i], watch_topics[i].v[j], LI_HASH_LEN) == 0;
		if (!any)
			return false;
	}
	return true;
}

/* li_follows_all -- see factory.h */
bool
li_follows_all(LiPipeline *p)
{
	return p->nfactories == 0 && p->watch_addresses == NULL;
}

/* li_follows -- see factory.h */
bool
li_follows(LiPipeline *p, const uint8 *address)
{
	bool		found;

	if (li_follows_all(p))
		return true;
	if (watched == NULL)
		elog(ERROR, "the followed addresses of pipeline \"%s\" are not loaded", p->name);
	(void) hash_search(watched, address, HASH_FIND, &found);
	return found;
}

/*
 * Keep the transactions of l that emitted one of its (kept) events or
 * whose "to" the pipeline follows or a transaction handler names.
 */
static void
filter_transactions(LiPipeline *p, LiLedger *l)
{
	int			kept = 0;
	int			ev = 0;

	for (int i = 0; i < l->ntxs; i++)
	{
		LiTx	   *t = &l->txs[i];
		bool		keep;

		while (ev < l->nevents && l->events[ev].tx_index < t->tx_index)
			ev++;
		keep = (ev < l->nevents && l->events[ev].tx_index == t->tx_index) ||
			((t->has & LI_TX_HAS_TO) && li_follows(p, t->to));
		for (int k = 0; !keep && (t->has & LI_TX_HAS_TO) && k < p->ntx_handlers; k++)
			keep = p->tx_handlers[k].has_address &&
				memcmp(p->tx_handlers[k].address, t->to, LI_ADDRESS_LEN) == 0;
		if (!keep)
			continue;
		if (kept != i)
			l->txs[kept] = *t;
		kept++;
	}
	l->ntxs = kept;
}

/* li_factories_filter -- see factory.h */
void
li_factories_filter(LiPipeline *p, LiBatch *b)
{
	Assert(watched != NULL);
	b->nevents = 0;
	for (int li = 0; li < b->nledgers; li++)
	{
		LiLedger   *l = &b->ledgers[li];
		int			kept = 0;

		/* the ledger's announcements first: a child counts from its ledger */
		for (int i = 0; i < l->nevents; i++)
		{
			LiFactory  *f = announcing(p, &l->events[i]);
			uint8		child[LI_ADDRESS_LEN];
			LiAbiError	err;

			CHECK_FOR_INTERRUPTS();
			if (f != NULL && announced_child(f, &l->events[i], child, &err))
				watch_add(child);
		}
		for (int i = 0; i < l->nevents; i++)
		{
			LiEvent    *e = &l->events[i];
			bool		found;

			CHECK_FOR_INTERRUPTS();
			if (announcing(p, e) == NULL)
			{
				if (e->address_len != LI_ADDRESS_LEN || !topics_match(e))
					continue;
				(void) hash_search(watched, e->address, HASH_FIND, &found);
				if (!found)
					continue;
			}
			if (kept != i)
				l->events[kept] = *e;
			kept++;
		}
		l->nevents = kept;
		b->nevents += kept;
		filter_transactions(p, l);
	}
}

/* li_factory_announce -- see factory.h */
void
li_factory_announce(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ledger_hash,
					LiEvent *e)
{
	LiFactory  *f = announcing(p, e);
	uint8		child[LI_ADDRESS_LEN];
	LiAbiError	err;
	Datum		v[6];
	int			ret;

	if (f == NULL)
		return;
	if (!announced_child(f, e, child, &err))
	{
		li_decode_failed(p, psprintf("factory " INT64_FORMAT, f->id), li_abi_event_signature(f->abi),
						 l, e, li_event_datum(pipeline_text, ledger_hash, l, e, NULL),
						 err.message);
		return;
	}
	if (child_plan == NULL)
	{
		Oid			types[6] = {TEXTOID, BYTEAOID, INT8OID, INT8OID, INT4OID, INT4OID};

		child_plan = li_keep_plan("INSERT INTO ledger_ingest.child "
								  "(pipeline, address, factory, ledger, tx_index, event_index) "
								  "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
								  6, types);
	}
	v[0] = pipeline_text;
	v[1] = PointerGetDatum(li_bytes_to_bytea(child, LI_ADDRESS_LEN));
	v[2] = Int64GetDatum(f->id);
	v[3] = Int64GetDatum(l->number);
	v[4] = Int32GetDatum(e->tx_index);
	v[5] = Int32GetDatum(e->event_index);
	ret = SPI_execute_plan(child_plan, v, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "recording a factory's child failed: %s", SPI_result_code_string(ret));
}

/* li_factories_forget -- see factory.h */
void
li_factories_forget(void)
{
	if (watch_cxt != NULL)
		MemoryContextDelete(watch_cxt);
	watch_cxt = NULL;
	watched = NULL;
	watch_key = NULL;
}
