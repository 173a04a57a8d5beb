/*-------------------------------------------------------------------------
 *
 * packed.c
 *	  The packed form of a ledger document: what li_parse_ledger makes of
 *	  it, as a bytea that the worker reads back without parsing JSON.
 *
 * The inbox computes it when a document is inserted or updated, as the
 * generated column inbox.packed = _pack_ledger(doc), in the producer's
 * backend: the JSON parse and hex decoding then happen there, in parallel
 * with the worker, instead of in the worker's apply loop.  A document that
 * does not parse gets NULL, and the worker parses the jsonb itself and
 * rejects the document with the parser's error, as before.
 *
 * Layout (version 1), integers in the server's byte order, every field at
 * an offset that is a multiple of 4 from the start of the data (so that an
 * event's data, stored with a 4-byte varlena header, can be used in place):
 *
 *	  uint32 magic "LIP1"; uint32 flags (1: has parent hash);
 *	  int64 number; int64 time (timestamptz, DT_NOBEGIN if none);
 *	  uint8 hash[32]; uint8 parent_hash[32]; int32 nevents;
 *	  then per event, in (tx_index, event_index) order:
 *	  int32 tx_index; int32 event_index; uint32 flags (1: has tx hash);
 *	  int32 ntopics; uint8 tx_hash[32]; uint8 address[20];
 *	  uint8 topics[ntopics][32];
 *	  the data as a bytea with a 4-byte header, padded to a multiple of 4;
 *	  then, with flag 2 (has transactions): int32 ntxs and per transaction,
 *	  in tx_index order: int32 tx_index; uint32 has (LI_TX_HAS_*);
 *	  uint8 hash[32], from[20], to[20], value[32]; int64 nonce, gas;
 *	  int32 type, status; uint8 gas_price[32], max_fee_per_gas[32],
 *	  max_priority_fee_per_gas[32]; int64 gas_used; uint8
 *	  effective_gas_price[32], contract_address[20]; the input as a bytea
 *	  with a 4-byte header, padded to a multiple of 4.  A reader that does
 *	  not know flag 2 finds bytes after the events and parses the document.
 *
 * The server's byte order is safe: physical copies never cross
 * architectures, and generated columns are recomputed by pg_dump restores
 * and on logical replication subscribers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "ledger.h"

PG_FUNCTION_INFO_V1(ledger_ingest_pack_ledger);

#define PACK_MAGIC		0x3150494c	/* "LIP1" read as a little-endian uint32 */
#define PACK_HEADER		(4 + 4 + 8 + 8 + LI_HASH_LEN + LI_HASH_LEN + 4)
#define PACK_EVENT		(4 + 4 + 4 + 4 + LI_HASH_LEN + LI_ADDRESS_LEN)
#define PACK_TX			(4 + 4 + LI_HASH_LEN + 2 * LI_ADDRESS_LEN + 32 + 8 + 8 + 4 + 4 + \
						 3 * 32 + 8 + 32 + LI_ADDRESS_LEN)
#define PACK_HAS_PARENT	1
#define PACK_HAS_TXS	2

static inline void
put32(char **p, uint32 v)
{
	memcpy(*p, &v, 4);
	*p += 4;
}

static inline void
put64(char **p, int64 v)
{
	memcpy(*p, &v, 8);
	*p += 8;
}

static inline void
putbytes(char **p, const void *b, int n)
{
	memcpy(*p, b, n);
	*p += n;
}

/*
 * li_pack_ledger -- the packed form of a parsed ledger, palloc'd; NULL when
 * it would exceed a bytea's 1 GB, or for a Stellar ledger (the worker then
 * parses the document).
 */
bytea *
li_pack_ledger(const LiLedger *l)
{
	Size		size = VARHDRSZ + PACK_HEADER;
	bytea	   *r;
	char	   *p;

	/* Stellar ledgers are not packed: the worker parses their documents */
	if (l->stellar)
		return NULL;
	for (int i = 0; i < l->nevents; i++)
	{
		size += PACK_EVENT + LI_HASH_LEN * l->events[i].ntopics +
			INTALIGN(VARHDRSZ + VARSIZE_ANY_EXHDR(l->events[i].data));
		if (size > MaxAllocSize)
			return NULL;
	}
	if (l->ntxs > 0)
		size += 4;
	for (int i = 0; i < l->ntxs; i++)
	{
		size += PACK_TX + INTALIGN(VARHDRSZ + VARSIZE_ANY_EXHDR(l->txs[i].input));
		if (size > MaxAllocSize)
			return NULL;
	}
	r = (bytea *) palloc0(size);
	SET_VARSIZE(r, size);
	p = VARDATA(r);
	put32(&p, PACK_MAGIC);
	put32(&p, (l->has_parent ? PACK_HAS_PARENT : 0) | (l->ntxs > 0 ? PACK_HAS_TXS : 0));
	put64(&p, l->number);
	put64(&p, l->time);
	putbytes(&p, l->hash, LI_HASH_LEN);
	putbytes(&p, l->parent_hash, LI_HASH_LEN);
	put32(&p, (uint32) l->nevents);
	for (int i = 0; i < l->nevents; i++)
	{
		const LiEvent *e = &l->events[i];
		Size		dlen = VARSIZE_ANY_EXHDR(e->data);

		put32(&p, (uint32) e->tx_index);
		put32(&p, (uint32) e->event_index);
		put32(&p, e->has_tx_hash ? 1 : 0);
		put32(&p, (uint32) e->ntopics);
		putbytes(&p, e->tx_hash, LI_HASH_LEN);
		putbytes(&p, e->address, LI_ADDRESS_LEN);
		putbytes(&p, e->topics, LI_HASH_LEN * e->ntopics);
		/* the data as a 4-byte-header varlena (SET_VARSIZE needs alignment) */
		put32(&p, 0);
		SET_VARSIZE(p - 4, VARHDRSZ + dlen);
		putbytes(&p, VARDATA_ANY(e->data), dlen);
		p += INTALIGN(VARHDRSZ + dlen) - (VARHDRSZ + dlen);
	}
	if (l->ntxs > 0)
		put32(&p, (uint32) l->ntxs);
	for (int i = 0; i < l->ntxs; i++)
	{
		const LiTx *t = &l->txs[i];
		Size		ilen = VARSIZE_ANY_EXHDR(t->input);

		put32(&p, (uint32) t->tx_index);
		put32(&p, t->has);
		putbytes(&p, t->hash, LI_HASH_LEN);
		putbytes(&p, t->from, LI_ADDRESS_LEN);
		putbytes(&p, t->to, LI_ADDRESS_LEN);
		putbytes(&p, t->value, 32);
		put64(&p, t->nonce);
		put64(&p, t->gas);
		put32(&p, (uint32) t->type);
		put32(&p, (uint32) t->status);
		putbytes(&p, t->gas_price, 32);
		putbytes(&p, t->max_fee_per_gas, 32);
		putbytes(&p, t->max_priority_fee_per_gas, 32);
		put64(&p, t->gas_used);
		putbytes(&p, t->effective_gas_price, 32);
		putbytes(&p, t->contract_address, LI_ADDRESS_LEN);
		put32(&p, 0);
		SET_VARSIZE(p - 4, VARHDRSZ + ilen);
		putbytes(&p, VARDATA_ANY(t->input), ilen);
		p += INTALIGN(VARHDRSZ + ilen) - (VARHDRSZ + ilen);
	}
	Assert(p == (char *) r + size);
	return r;
}

static inline uint32
get32(const char **p)
{
	uint32		v;

	memcpy(&v, *p, 4);
	*p += 4;
	return v;
}

static inline int64
get64(const char **p)
{
	int64		v;

	memcpy(&v, *p, 8);
	*p += 8;
	return v;
}

/*
 * li_unpack_ledger -- read a packed ledger (detoasted, in memory that lives
 * as long as *out: events' data point into it) into *out.  Returns false,
 * leaving *out unusable, when it is not a version 1 packed ledger or is
 * inconsistent; the caller then parses the document itself.
 */
bool
li_unpack_ledger(bytea *packed, LiLedger *out)
{
	const char *p = VARDATA_ANY(packed);
	const char *end = p + VARSIZE_ANY_EXHDR(packed);
	uint32		n;
	uint32		flags;

	memset(out, 0, sizeof(LiLedger));
	/* the data of a short-header value is not 4-byte aligned: not ours */
	if (VARATT_IS_SHORT(packed) || VARATT_IS_EXTENDED(packed) ||
		end - p < PACK_HEADER || get32(&p) != PACK_MAGIC)
		return false;
	flags = get32(&p);
	out->has_parent = (flags & PACK_HAS_PARENT) != 0;
	out->number = get64(&p);
	out->time = get64(&p);
	memcpy(out->hash, p, LI_HASH_LEN);
	p += LI_HASH_LEN;
	memcpy(out->parent_hash, p, LI_HASH_LEN);
	p += LI_HASH_LEN;
	n = get32(&p);
	if (n > (uint32) ((end - p) / PACK_EVENT))
		return false;
	out->nevents = (int) n;
	out->events = n > 0 ? palloc(sizeof(LiEvent) * n) : NULL;
	for (uint32 i = 0; i < n; i++)
	{
		LiEvent    *e = &out->events[i];
		uint32		nt;
		Size		dsize;

		if (end - p < PACK_EVENT)
			return false;
		e->tx_index = (int32) get32(&p);
		e->event_index = (int32) get32(&p);
		e->has_tx_hash = (get32(&p) & 1) != 0;
		nt = get32(&p);
		if (nt > LI_MAX_TOPICS || e->tx_index < 0 || e->event_index < 0)
			return false;
		e->ntopics = (int) nt;
		memcpy(e->tx_hash, p, LI_HASH_LEN);
		p += LI_HASH_LEN;
		memcpy(e->address, p, LI_ADDRESS_LEN);
		e->address_len = LI_ADDRESS_LEN;
		memset(e->var_topics, 0, sizeof(e->var_topics));
		p += LI_ADDRESS_LEN;
		if (end - p < (ptrdiff_t) (LI_HASH_LEN * nt + VARHDRSZ))
			return false;
		memcpy(e->topics, p, LI_HASH_LEN * nt);
		p += LI_HASH_LEN * nt;
		if (VARATT_IS_SHORT(p) || VARATT_IS_EXTENDED(p))
			return false;
		dsize = VARSIZE(p);
		if (dsize < VARHDRSZ || INTALIGN(dsize) > (Size) (end - p))
			return false;
		e->data = (bytea *) p;
		p += INTALIGN(dsize);
		if (i > 0 &&
			(e->tx_index < e[-1].tx_index || e->event_index <= e[-1].event_index))
			return false;
	}
	if ((flags & PACK_HAS_TXS) == 0)
		return p == end;
	if (end - p < 4)
		return false;
	n = get32(&p);
	if (n == 0 || n > (uint32) ((end - p) / PACK_TX))
		return false;
	out->ntxs = (int) n;
	out->txs = palloc0(sizeof(LiTx) * n);
	for (uint32 i = 0; i < n; i++)
	{
		LiTx	   *t = &out->txs[i];
		Size		isize;

		if (end - p < PACK_TX + VARHDRSZ)
			return false;
		t->tx_index = (int32) get32(&p);
		t->has = get32(&p);
		memcpy(t->hash, p, LI_HASH_LEN);
		p += LI_HASH_LEN;
		memcpy(t->from, p, LI_ADDRESS_LEN);
		p += LI_ADDRESS_LEN;
		memcpy(t->to, p, LI_ADDRESS_LEN);
		p += LI_ADDRESS_LEN;
		memcpy(t->value, p, 32);
		p += 32;
		t->nonce = get64(&p);
		t->gas = get64(&p);
		t->type = (int32) get32(&p);
		t->status = (int32) get32(&p);
		memcpy(t->gas_price, p, 32);
		p += 32;
		memcpy(t->max_fee_per_gas, p, 32);
		p += 32;
		memcpy(t->max_priority_fee_per_gas, p, 32);
		p += 32;
		t->gas_used = get64(&p);
		memcpy(t->effective_gas_price, p, 32);
		p += 32;
		memcpy(t->contract_address, p, LI_ADDRESS_LEN);
		p += LI_ADDRESS_LEN;
		if (VARATT_IS_SHORT(p) || VARATT_IS_EXTENDED(p))
			return false;
		isize = VARSIZE(p);
		if (isize < VARHDRSZ || INTALIGN(isize) > (Size) (end - p))
			return false;
		t->input = (bytea *) p;
		p += INTALIGN(isize);
		if (t->tx_index < 0 || (i > 0 && t->tx_index <= t[-1].tx_index))
			return false;
	}
	return p == end;
}

/*
 * ledger_ingest._pack_ledger(doc jsonb) RETURNS bytea
 *
 * The packed form of a ledger document (see the file's comment), or NULL
 * when the document does not parse.  Never raises for a bad document: it
 * backs the inbox's generated column, so that a producer's malformed
 * document is stored and rejected by the worker with the parser's error.
 * Other errors (out of memory, a cancel) are raised.
 */
Datum
ledger_ingest_pack_ledger(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc = PG_GETARG_JSONB_P(0);
	MemoryContext cxt = CurrentMemoryContext;
	LiLedger	l;
	bytea	   *volatile r = NULL;

	/*
	 * The parser touches no shared state (no buffers, locks or files): its
	 * data errors can be caught without a subtransaction, as the worker
	 * catches them (source_inbox.c).
	 */
	PG_TRY();
	{
		li_parse_ledger(&doc->root, &l);
		r = li_pack_ledger(&l);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();
		FlushErrorState();
		FreeErrorData(edata);
		r = NULL;
	}
	PG_END_TRY();
	if (r == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(r);
}
