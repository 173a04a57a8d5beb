/*-------------------------------------------------------------------------
 *
 * handlers.c
 *	  Matching events to handlers and calling them, inside the apply
 *	  transaction.
 *
 * A handler is a SQL function registered with add_handler: per-event (it
 * takes ledger_ingest.event) or set-based (ledger_ingest.event[]), with an
 * optional filter on the log's address and topic0, or registered by event
 * signature, in which case it also gets the log decoded as args (abi.h)
 * and only logs with that event's number of topics.  Each is called
 * directly through the function manager (no parse, plan or executor
 * start per event), as the pipeline owner in a security-restricted
 * operation (xact.c), in (ledger, tx_index, event_index) order and, per
 * event, in registration order; set-based handlers once per transaction
 * with every event they matched.  An event some handler can revert is
 * journaled (event_journal) for revert.c; a log a signature handler cannot
 * decode is recorded in decode_error, or fails the transaction with
 * on_decode_error "fail".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "abi.h"
#include "apply.h"
#include "event.h"
#include "handlers.h"
#include "transaction.h"
#include "xact.h"

static SPIPlanPtr event_journal_plan = NULL;
static SPIPlanPtr decode_error_plan = NULL;

/*
 * The function-call info of a handler (or revert) function, set up on
 * first use in the pipeline's memory context: handlers are called directly
 * through the function manager, with no per-event parse, plan or executor
 * start.  Checks that the owner may execute it.
 */
FmgrInfo *
li_handler_fn(LiPipeline *p, Oid funcoid, FmgrInfo **cache)
{
	if (*cache == NULL)
	{
		FmgrInfo   *fn;
		MemoryContext cxt = GetMemoryChunkContext(p->handlers);

		if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(funcoid)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("handler function %u no longer exists", funcoid)));
		if (pg_proc_aclcheck(funcoid, p->owner, ACL_EXECUTE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for function %s", format_procedure(funcoid))));
		fn = MemoryContextAllocZero(cxt, sizeof(FmgrInfo));
		fmgr_info_cxt(funcoid, fn, cxt);
		*cache = fn;
	}
	return *cache;
}

/*
 * Decode an event for a handler registered by signature.  A log that is
 * not a valid encoding of the event returns NULL with the decoder's
 * message in *error: any contract can emit one under a known topic0.
 */
Jsonb *
li_decode_args(LiHandler *h, LiEvent *e, char **error)
{
	return li_abi_try_decode_event_jsonb(h->abi, (const uint8 (*)[32]) e->topics, e->ntopics,
										 (const uint8 *) VARDATA_ANY(e->data),
										 (int) VARSIZE_ANY_EXHDR(e->data), error);
}

/*
 * li_decode_failed -- a log that handler (or table sink) "who" cannot
 * decode as signature.  With on_decode_error "fail" it is a handler error
 * (the transaction rolls back, retried up to max_retries); by default the
 * handler skips the event and the log is kept, with the error, in
 * ledger_ingest.decode_error, in the apply transaction (so it is recorded
 * exactly once, and a reorg that orphans the ledger forgets it).  "ev" is
 * the event value without args.
 */
void
li_decode_failed(LiPipeline *p, const char *who, const char *signature, LiLedger *l,
				 LiEvent *e, Datum ev, const char *error)
{
	Datum		v[7];
	int			ret;

	if (p->opts.decode_error_fails || !p->sql_0_2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("%s", error),
				 errdetail("Decoding as %s.", signature)));
	if (decode_error_plan == NULL)
	{
		Oid			types[7] = {TEXTOID, INT8OID, INT4OID, INT4OID, TEXTOID, TEXTOID,
		li_event_tupdesc()->tdtypeid};

		decode_error_plan = li_keep_plan(
									  "INSERT INTO ledger_ingest.decode_error "
									  "(pipeline, ledger, tx_index, event_index, handler, error, event) "
									  "VALUES ($1, $2, $3, $4, $5, $6, $7) "
									  "ON CONFLICT (pipeline, ledger, tx_index, event_index, handler) "
									  "DO UPDATE SET error = excluded.error, event = excluded.event, "
									  "recorded_at = excluded.recorded_at",
									  7, types);
	}
	v[0] = CStringGetTextDatum(p->name);
	v[1] = Int64GetDatum(l->number);
	v[2] = Int32GetDatum(e->tx_index);
	v[3] = Int32GetDatum(e->event_index);
	v[4] = CStringGetTextDatum(who);
	v[5] = CStringGetTextDatum(psprintf("%s (decoding as %s)", error, signature));
	v[6] = ev;
	ret = SPI_execute_plan(decode_error_plan, v, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "recording a decode error failed: %s", SPI_result_code_string(ret));
}

/*
 * Does the handler want this event?  A handler registered by event
 * signature only takes logs with that event's number of topics: an ERC-721
 * Transfer (tokenId indexed, 4 topics) shares topic0 with ERC-20's (3).
 */
bool
li_handler_matches(const LiHandler *h, const LiEvent *e)
{
	/* a signature decodes EVM logs only */
	if (h->abi != NULL && (e->ntopics != h->abi_ntopics || e->address_len != LI_ADDRESS_LEN))
		return false;
	/* EVM: 20-byte addresses, 32-byte topics; Stellar: 32, an ScVal's XDR */
	if (h->has_address &&
		(e->address_len != h->address_len || memcmp(h->address, e->address, h->address_len) != 0))
		return false;
	if (h->has_topic0)
	{
		int			len = 0;
		const uint8 *t0 = e->ntopics > 0 ? li_event_topic(e, 0, &len) : NULL;

		if (t0 == NULL || len != h->topic0_len || memcmp(h->topic0, t0, len) != 0)
			return false;
	}
	return true;
}

/*
 * Keep an event that has a revert handler, for a possible reorg
 * (ledger_ingest.event_journal, pruned with the reorg window).
 */
static void
journal_event(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ev, LiEvent *e)
{
	Datum		v[3];
	int			ret;
	bool		any = false;

	for (int i = 0; i < p->nhandlers && !any; i++)
		any = OidIsValid(p->handlers[i].revert_oid) && li_handler_matches(&p->handlers[i], e);
	if (!any)
		return;
	if (event_journal_plan == NULL)
	{
		Oid			types[3] = {TEXTOID, INT8OID, li_event_tupdesc()->tdtypeid};

		event_journal_plan = li_keep_plan("INSERT INTO ledger_ingest.event_journal (pipeline, ledger, ev) "
										  "VALUES ($1, $2, $3)",
										  3, types);
	}
	v[0] = pipeline_text;
	v[1] = Int64GetDatum(l->number);
	v[2] = ev;
	ret = SPI_execute_plan(event_journal_plan, v, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "journaling an event failed: %s", SPI_result_code_string(ret));
}

/*
 * The values of one event that its handlers share: without args ("base"),
 * built at most once, and with the args of the last signature decoded.
 */
typedef struct EventValues
{
	Datum		pipeline_text;
	Datum		ledger_hash;
	LiLedger   *l;
	LiEvent    *e;
	Datum		base;			/* (Datum) 0 until built */
	void	   *last_abi;		/* the signature last_ev was decoded with */
	Datum		last_ev;		/* (Datum) 0: it does not decode */
} EventValues;

/* the event value without args, built on first use */
static inline Datum
base_event(EventValues *v)
{
	if (v->base == (Datum) 0)
		v->base = li_event_datum(v->pipeline_text, v->ledger_hash, v->l, v->e, NULL);
	return v->base;
}

/*
 * The value handler h gets: the base event, or for a handler registered by
 * signature the event with its args, decoded once per signature; (Datum) 0
 * when the log does not decode (recorded by decode_failed, or an ERROR).
 */
static inline Datum
handler_event(LiPipeline *p, LiHandler *h, EventValues *v)
{
	if (h->abi == NULL)
		return base_event(v);
	if (h->abi != v->last_abi)
	{
		char	   *error = NULL;
		Jsonb	   *args = li_decode_args(h, v->e, &error);

		v->last_abi = h->abi;
		v->last_ev = (Datum) 0;
		if (args != NULL)
			v->last_ev = li_event_datum(v->pipeline_text, v->ledger_hash, v->l, v->e, args);
		else
			li_decode_failed(p, h->name, li_abi_event_signature(h->abi), v->l, v->e,
							 base_event(v), error);
	}
	return v->last_ev;
}

/* append ev to a set-based handler's set (its array grows in set_cxt) */
static inline void
add_to_set(LiEventSet *set, Datum ev, MemoryContext set_cxt)
{
	if (set->n == set->cap)
	{
		set->cap = Max(set->cap * 2, 256);
		set->vals = set->vals == NULL ?
			MemoryContextAlloc(set_cxt, sizeof(Datum) * set->cap) :
			repalloc(set->vals, sizeof(Datum) * set->cap);
	}
	set->vals[set->n++] = ev;
}

/*
 * Run every matching handler for one event, as the pipeline owner.  The
 * event value is built once (and once per event signature, with its args
 * decoded, for handlers registered by signature).  Set-based handlers (that
 * take ledger_ingest.event[]) get the event appended to sets[i] and are
 * called once per transaction by li_run_set_handlers; when there are any, the
 * event values are built in set_cxt, so that the sets can point to them
 * instead of copying them.
 */
void
li_run_handlers(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ledger_hash,
				LiEvent *e, bool journal_events, LiEventSet *sets,
				MemoryContext set_cxt)
{
	EventValues v = {pipeline_text, ledger_hash, l, e, (Datum) 0, NULL, (Datum) 0};
	MemoryContext old = CurrentMemoryContext;

	if (p->has_set_based)
		MemoryContextSwitchTo(set_cxt);

	li_apply_ctx.ledger = l->number;
	li_apply_ctx.tx_index = e->tx_index;
	li_apply_ctx.event_index = e->event_index;

	if (journal_events)
		journal_event(p, pipeline_text, l, base_event(&v), e);
	for (int i = 0; i < p->nhandlers; i++)
	{
		LiHandler  *h = &p->handlers[i];
		Datum		ev;

		if (!li_handler_matches(h, e))
			continue;
		li_apply_ctx.handler = h->name;
		ev = handler_event(p, h, &v);
		if (ev == (Datum) 0)
			continue;			/* skipped: it does not decode */
		if (h->set_based)
			add_to_set(&sets[i], ev, set_cxt);
		else if (h->tx_arg)
		{
			/* (event, transaction): the event's transaction, or NULL */
			LiTx	   *t = li_ledger_tx(l, e->tx_index);
			FmgrInfo   *fn = li_handler_fn(p, h->funcoid, &h->fn);

			MemoryContextSwitchTo(old);
			/* a STRICT function is not called with a NULL argument */
			if (t != NULL || !fn->fn_strict)
				li_call_as_owner2(p->owner, fn, ev,
								  t ? li_transaction_datum(pipeline_text, ledger_hash, l, t) : (Datum) 0,
								  t ? 1 : 0);
			if (p->has_set_based)
				MemoryContextSwitchTo(set_cxt);
		}
		else
		{
			MemoryContextSwitchTo(old);
			li_call_as_owner(p->owner, li_handler_fn(p, h->funcoid, &h->fn), ev);
			if (p->has_set_based)
				MemoryContextSwitchTo(set_cxt);
		}
	}
	MemoryContextSwitchTo(old);
	li_apply_ctx.handler = NULL;
}

/* Call each set-based handler once with the events it matched. */
void
li_run_set_handlers(LiPipeline *p, LiEventSet *sets)
{
	for (int i = 0; i < p->nhandlers; i++)
	{
		LiHandler  *h = &p->handlers[i];

		if (sets[i].n == 0)
			continue;
		li_apply_ctx.handler = h->name;
		li_apply_ctx.event_index = -1;
		/* a composite type's alignment is double (heap tuples) */
		li_call_as_owner(p->owner, li_handler_fn(p, h->funcoid, &h->fn),
					  PointerGetDatum(construct_array(sets[i].vals, sets[i].n,
													  li_event_tupdesc()->tdtypeid, -1,
													  false, TYPALIGN_DOUBLE)));
	}
	li_apply_ctx.handler = NULL;
}

/* ledger_ingest.ledger's row type, looked up once per process */
static TupleDesc ledger_tupdesc = NULL;

/*
 * The ledger_ingest.ledger value of ledger l (the header row apply.c stores
 * for it), its attributes set by name: pipeline, number, hash, parent_hash,
 * time, events, applied_at (now()); any other NULL.
 */
static Datum
ledger_datum(Datum pipeline_text, LiLedger *l, Datum ledger_hash)
{
	Datum	   *values;
	bool	   *nulls;

	if (ledger_tupdesc == NULL)
	{
		Oid			relid = get_relname_relid("ledger", get_namespace_oid(LI_SCHEMA, false));
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (!OidIsValid(relid))
			elog(ERROR, "table ledger_ingest.ledger does not exist");
		ledger_tupdesc = lookup_rowtype_tupdesc_copy(get_rel_type_id(relid), -1);
		BlessTupleDesc(ledger_tupdesc);
		MemoryContextSwitchTo(old);
	}
	values = palloc0(sizeof(Datum) * ledger_tupdesc->natts);
	nulls = palloc(sizeof(bool) * ledger_tupdesc->natts);
	for (int a = 0; a < ledger_tupdesc->natts; a++)
	{
		const char *name = NameStr(TupleDescAttr(ledger_tupdesc, a)->attname);

		nulls[a] = false;
		if (strcmp(name, "pipeline") == 0)
			values[a] = pipeline_text;
		else if (strcmp(name, "number") == 0)
			values[a] = Int64GetDatum(l->number);
		else if (strcmp(name, "hash") == 0)
			values[a] = ledger_hash;
		else if (strcmp(name, "parent_hash") == 0 && l->has_parent)
			values[a] = PointerGetDatum(li_bytes_to_bytea(l->parent_hash, LI_HASH_LEN));
		else if (strcmp(name, "time") == 0 && !TIMESTAMP_NOT_FINITE(l->time))
			values[a] = TimestampTzGetDatum(l->time);
		else if (strcmp(name, "events") == 0)
			values[a] = Int32GetDatum(l->nevents);
		else if (strcmp(name, "applied_at") == 0)
			values[a] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		else
			nulls[a] = true;
	}
	return HeapTupleGetDatum(heap_form_tuple(ledger_tupdesc, values, nulls));
}

/*
 * li_run_block_handlers -- call each block handler whose every divides
 * ledger l's number with l's header, as the pipeline's owner (after l's
 * event handlers, in the transaction that applies its last event).
 */
void
li_run_block_handlers(LiPipeline *p, Datum pipeline_text, LiLedger *l, Datum ledger_hash)
{
	Datum		v = (Datum) 0;

	for (int i = 0; i < p->nblock_handlers; i++)
	{
		LiBlockHandler *h = &p->block_handlers[i];

		if (l->number % h->every != 0)
			continue;
		if (v == (Datum) 0)
			v = ledger_datum(pipeline_text, l, ledger_hash);
		li_apply_ctx.handler = h->name;
		li_apply_ctx.tx_index = -1;
		li_apply_ctx.event_index = LI_CTX_BLOCK;
		li_call_as_owner(p->owner, li_handler_fn(p, h->funcoid, &h->fn), v);
	}
	li_apply_ctx.handler = NULL;
}
