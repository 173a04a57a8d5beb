/*-------------------------------------------------------------------------
 *
 * stellar_core.c
 *	  Stellar ledger headers and event ids (see stellar_core.h).
 *
 * XDR: RFC 4506.  LedgerHeader, StellarValue, LedgerHeaderHistoryEntry:
 * stellar-xdr, Stellar-ledger.x.  SHA-256: nettle.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nettle/sha2.h>

#include "stellar_core.h"

#if defined(__GNUC__) || defined(__clang__)
#define LI_STELLAR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LI_STELLAR_PRINTF(f, a)
#endif

typedef struct Rd
{
	const unsigned char *buf;
	size_t		len;
	size_t		pos;
	LiAbiError *err;
} Rd;

static int	rd_fail(Rd *r, const char *fmt,...) LI_STELLAR_PRINTF(2, 3);

/* Reports an error at the current byte; returns -1. */
static int
rd_fail(Rd *r, const char *fmt,...)
{
	char		msg[200];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->err->status = LI_ABI_EDATA;
	snprintf(r->err->message, sizeof(r->err->message), "at byte %zu: %s", r->pos, msg);
	return -1;
}

static int
rd_bytes(Rd *r, size_t n, const char *what, const unsigned char **p)
{
	if (r->len - r->pos < n)
		return rd_fail(r, "%s: %zu bytes needed, %zu left", what, n, r->len - r->pos);
	if (p != NULL)
		*p = r->buf + r->pos;
	r->pos += n;
	return 0;
}

static int
rd_u32(Rd *r, const char *what, uint32_t *v)
{
	const unsigned char *p = NULL;

	if (rd_bytes(r, 4, what, &p) < 0)
		return -1;
	*v = ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
	return 0;
}

static int
rd_u64(Rd *r, const char *what, uint64_t *v)
{
	uint32_t	hi,
				lo;

	if (rd_u32(r, what, &hi) < 0 || rd_u32(r, what, &lo) < 0)
		return -1;
	*v = ((uint64_t) hi << 32) | lo;
	return 0;
}

/* a union discriminant that must be at most max */
static int
rd_arm(Rd *r, const char *what, uint32_t max, uint32_t *v)
{
	if (rd_u32(r, what, v) < 0)
		return -1;
	if (*v > max)
	{
		r->pos -= 4;
		return rd_fail(r, "%s %u is not one a header has", what, *v);
	}
	return 0;
}

/* opaque<max>: length, contents, zero padding */
static int
rd_opaque(Rd *r, const char *what, uint32_t max)
{
	uint32_t	n;
	const unsigned char *p = NULL;
	size_t		pad;
	size_t		i;

	if (rd_u32(r, what, &n) < 0)
		return -1;
	if (n > max)
	{
		r->pos -= 4;
		return rd_fail(r, "%s of %u bytes, longer than %u", what, n, max);
	}
	if (rd_bytes(r, n, what, NULL) < 0)
		return -1;
	pad = (4 - n % 4) % 4;
	if (rd_bytes(r, pad, what, &p) < 0)
		return -1;
	for (i = 0; i < pad; i++)
		if (p[i] != 0)
			return rd_fail(r, "%s: non-zero padding byte", what);
	return 0;
}

/* one LedgerHeader from r->pos; its hash computed over its bytes */
static int
rd_header(Rd *r, LiStellarHeader *out)
{
	size_t		start = r->pos;
	const unsigned char *p = NULL;
	uint32_t	v;
	uint32_t	n;
	uint32_t	i;
	uint64_t	u;
	struct sha256_ctx ctx;

	if (rd_u32(r, "ledgerVersion", &out->protocol_version) < 0 ||
		rd_bytes(r, 32, "previousLedgerHash", &p) < 0)
		return -1;
	memcpy(out->previous_hash, p, 32);
	/* scpValue: StellarValue */
	if (rd_bytes(r, 32, "scpValue.txSetHash", NULL) < 0 ||
		rd_u64(r, "scpValue.closeTime", &out->close_time) < 0 ||
		rd_u32(r, "scpValue.upgrades", &n) < 0)
		return -1;
	if (n > 6)
	{
		r->pos -= 4;
		return rd_fail(r, "scpValue.upgrades: %u, more than 6", n);
	}
	for (i = 0; i < n; i++)
		if (rd_opaque(r, "scpValue.upgrades[]", 128) < 0)
			return -1;
	if (rd_arm(r, "scpValue.ext", 1, &v) < 0)
		return -1;
	if (v == 1)					/* STELLAR_VALUE_SIGNED: LedgerCloseValueSignature */
	{
		if (rd_arm(r, "scpValue.ext.lcValueSignature.nodeID type", 0, &v) < 0 ||
			rd_bytes(r, 32, "scpValue.ext.lcValueSignature.nodeID", NULL) < 0 ||
			rd_opaque(r, "scpValue.ext.lcValueSignature.signature", 64) < 0)
			return -1;
	}
	if (rd_bytes(r, 32, "txSetResultHash", NULL) < 0 ||
		rd_bytes(r, 32, "bucketListHash", NULL) < 0 ||
		rd_u32(r, "ledgerSeq", &out->sequence) < 0 ||
		rd_u64(r, "totalCoins", &u) < 0 ||
		rd_u64(r, "feePool", &u) < 0 ||
		rd_u32(r, "inflationSeq", &v) < 0 ||
		rd_u64(r, "idPool", &u) < 0 ||
		rd_u32(r, "baseFee", &v) < 0 ||
		rd_u32(r, "baseReserve", &v) < 0 ||
		rd_u32(r, "maxTxSetSize", &v) < 0 ||
		rd_bytes(r, 4 * 32, "skipList", NULL) < 0 ||
		rd_arm(r, "ext", 1, &v) < 0)
		return -1;
	if (v == 1)					/* LedgerHeaderExtensionV1 */
	{
		if (rd_u32(r, "ext.v1.flags", &v) < 0 || rd_arm(r, "ext.v1.ext", 0, &v) < 0)
			return -1;
	}
	sha256_init(&ctx);
	sha256_update(&ctx, r->pos - start, r->buf + start);
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, out->hash);
	return 0;
}

/* li_stellar_parse_header: see stellar_core.h */
LiAbiStatus
li_stellar_parse_header(const unsigned char *xdr, size_t len, LiStellarHeader *out,
						LiAbiError *err)
{
	Rd			r = {xdr, len, 0, err};
	LiAbiError	first;
	const unsigned char *hash = NULL;
	uint32_t	v;

	/* a LedgerHeader */
	if (rd_header(&r, out) == 0)
	{
		if (r.pos == len)
			return LI_ABI_OK;
		rd_fail(&r, "%zu bytes after the header", len - r.pos);
	}
	first = *err;
	/* a LedgerHeaderHistoryEntry */
	r.pos = 0;
	if (rd_bytes(&r, 32, "hash", &hash) == 0 && rd_header(&r, out) == 0 &&
		rd_arm(&r, "ext", 0, &v) == 0)
	{
		if (r.pos != len)
			rd_fail(&r, "%zu bytes after the header history entry", len - r.pos);
		else if (memcmp(hash, out->hash, 32) != 0)
		{
			r.pos = 0;
			rd_fail(&r, "the history entry's hash is not the SHA-256 of its header");
		}
		else
			return LI_ABI_OK;
		return LI_ABI_EDATA;
	}
	/* neither: report as a LedgerHeader unless it cannot start one */
	if (len >= 4 && xdr[0] == 0 && xdr[1] == 0)
		*err = first;
	return LI_ABI_EDATA;
}

static int
id_fail(LiAbiError *err, const char *msg)
{
	err->status = LI_ABI_EDATA;
	snprintf(err->message, sizeof(err->message), "%s", msg);
	return -1;
}

#define TX_BITS		20
#define OP_BITS		12
#define INDEX_BITS	19			/* of event_index; the operation above */

/* li_stellar_event_id: see stellar_core.h */
int
li_stellar_event_id(int64_t ledger, int32_t tx_index, int32_t event_index, char *out,
					LiAbiError *err)
{
	uint64_t	toid;

	if (ledger < 0 || ledger > INT32_MAX)
		return id_fail(err, "a Stellar ledger is between 0 and 2^31 - 1");
	if (tx_index < 0 || tx_index >= (1 << TX_BITS))
		return id_fail(err, "the tx_index of a Stellar event is between 0 and 2^20 - 1");
	if (event_index < 0)
		return id_fail(err, "the event_index of a Stellar event is not negative");
	toid = ((uint64_t) ledger << 32) | ((uint64_t) tx_index << OP_BITS) |
		(uint64_t) (event_index >> INDEX_BITS);
	snprintf(out, LI_STELLAR_EVENT_ID_LEN + 1, "%019llu-%010u", (unsigned long long) toid,
			 (unsigned) (event_index & ((1 << INDEX_BITS) - 1)));
	return 0;
}

/* li_stellar_event_position: see stellar_core.h */
int
li_stellar_event_position(const char *id, size_t n, int64_t *ledger, int32_t *tx_index,
						  int32_t *event_index, LiAbiError *err)
{
	uint64_t	toid = 0;
	uint64_t	index = 0;
	size_t		i;

	if (n != LI_STELLAR_EVENT_ID_LEN || id[19] != '-')
		return id_fail(err, "an event id is 19 digits, '-', 10 digits");
	for (i = 0; i < n; i++)
	{
		if (i == 19)
			continue;
		if (id[i] < '0' || id[i] > '9')
			return id_fail(err, "an event id is 19 digits, '-', 10 digits");
		if (i < 19)
		{
			if (toid > (uint64_t) INT64_MAX / 10 ||
				toid * 10 + (uint64_t) (id[i] - '0') > (uint64_t) INT64_MAX)
				return id_fail(err, "the event id's TOID is over 2^63 - 1");
			toid = toid * 10 + (uint64_t) (id[i] - '0');
		}
		else
			index = index * 10 + (uint64_t) (id[i] - '0');
	}
	if (index >= (1u << INDEX_BITS))
		return id_fail(err, "the event id's index is over 2^19 - 1 (events of one operation)");
	*ledger = (int64_t) (toid >> 32);
	*tx_index = (int32_t) ((toid >> OP_BITS) & ((1u << TX_BITS) - 1));
	*event_index = (int32_t) (((toid & ((1u << OP_BITS) - 1)) << INDEX_BITS) | index);
	return 0;
}
