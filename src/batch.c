/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  The batch of fetched ledgers and their continuity check.
 *
 * A source fills a LiBatch with the ledgers of one fetch, in increasing
 * number; li_check_continuity tells whether each ledger attaches to the
 * one before it (or to the cursor): a parentHash that does not match is a
 * reorg, which the source resolves or reports.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pipeline.h"

/*
 * li_check_continuity -- does ledger l follow prev (or, when prev is NULL,
 * the cursor)?  Only a direct successor (number + 1) with a parentHash can
 * be checked.  On a mismatch returns false with *error saying "reorg at
 * ledger N", or, for a Stellar ledger (the network does not reorganize:
 * the caller fails the pipeline, adding where the ledger came from),
 * "Stellar ledger N does not chain to ledger N - 1" or "Stellar ledger N
 * is not the partially applied ledger N".
 */
bool
li_check_continuity(LiPipeline *p, const LiLedger *prev, const LiLedger *l, char **error)
{
	int64		prev_number;
	const uint8 *prev_hash;

	if (prev != NULL)
	{
		prev_number = prev->number;
		prev_hash = prev->hash;
	}
	else
	{
		if (!p->has_cursor_hash)
			return true;
		prev_number = p->cursor.ledger;
		prev_hash = p->cursor_hash;
	}
	if (l->number == prev_number && prev == NULL && !p->cursor.complete)
	{
		/* resuming a partially applied ledger: it must be the same one */
		if (memcmp(l->hash, prev_hash, LI_HASH_LEN) != 0)
		{
			if (l->stellar)
				*error = psprintf("Stellar ledger " INT64_FORMAT " is not the partially applied ledger " INT64_FORMAT ": its hash %s is not %s; the Stellar network does not reorganize",
								  l->number, prev_number, li_bytes_to_hex(l->hash, LI_HASH_LEN) + 2,
								  li_bytes_to_hex(prev_hash, LI_HASH_LEN) + 2);
			else
				*error = psprintf("reorg at ledger " INT64_FORMAT ": its hash %s differs from the partially applied ledger's %s",
								  l->number, li_bytes_to_hex(l->hash, LI_HASH_LEN),
								  li_bytes_to_hex(prev_hash, LI_HASH_LEN));
			return false;
		}
		return true;
	}
	if (l->number != prev_number + 1 || !l->has_parent)
		return true;
	if (memcmp(l->parent_hash, prev_hash, LI_HASH_LEN) != 0)
	{
		if (l->stellar)
			*error = psprintf("Stellar ledger " INT64_FORMAT " does not chain to ledger " INT64_FORMAT ": its previousLedgerHash %s is not that ledger's hash %s; the Stellar network does not reorganize",
							  l->number, prev_number, li_bytes_to_hex(l->parent_hash, LI_HASH_LEN) + 2,
							  li_bytes_to_hex(prev_hash, LI_HASH_LEN) + 2);
		else
			*error = psprintf("reorg at ledger " INT64_FORMAT ": its parentHash %s does not match the hash %s of applied ledger " INT64_FORMAT,
							  l->number, li_bytes_to_hex(l->parent_hash, LI_HASH_LEN),
							  li_bytes_to_hex(prev_hash, LI_HASH_LEN), prev_number);
		return false;
	}
	return true;
}

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * li_sort_unique -- sort v[0..n) (ledger numbers a source will fetch) and
 * drop repeats; returns how many are left.
 */
int
li_sort_unique(int64 *v, int n)
{
	int			k = 0;

	qsort(v, n, sizeof(int64), int64_cmp);
	for (int i = 0; i < n; i++)
		if (k == 0 || v[i] != v[k - 1])
			v[k++] = v[i];
	return k;
}

/* li_batch_init -- an empty batch. */
void
li_batch_init(LiBatch *b, MemoryContext cxt)
{
	memset(b, 0, sizeof(LiBatch));
	b->cxt = cxt;
}

/* li_batch_add -- append an (uninitialized) ledger to the batch. */
LiLedger *
li_batch_add(LiBatch *b)
{
	if (b->nledgers >= b->maxledgers)
	{
		b->maxledgers = Max(16, b->maxledgers * 2);
		if (b->ledgers == NULL)
			b->ledgers = MemoryContextAlloc(b->cxt, sizeof(LiLedger) * b->maxledgers);
		else
			b->ledgers = repalloc(b->ledgers, sizeof(LiLedger) * b->maxledgers);
	}
	return &b->ledgers[b->nledgers++];
}
