/*-------------------------------------------------------------------------
 *
 * scval_core.c
 *	  Stellar ScVal XDR to JSON, and strkeys (see scval_core.h).
 *
 * XDR: RFC 4506 (big-endian 4-byte units; opaque and string data padded
 * with zero bytes to a multiple of 4; optional data as a 0/1 flag).  The
 * ScVal definitions: stellar-xdr, Stellar-contract.x.  Strkeys: SEP-23.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scval_core.h"

#if defined(__GNUC__) || defined(__clang__)
#define LI_SCVAL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LI_SCVAL_PRINTF(f, a)
#endif

/* SCValType */
enum
{
	SCV_BOOL, SCV_VOID, SCV_ERROR, SCV_U32, SCV_I32, SCV_U64, SCV_I64,
	SCV_TIMEPOINT, SCV_DURATION, SCV_U128, SCV_I128, SCV_U256, SCV_I256,
	SCV_BYTES, SCV_STRING, SCV_SYMBOL, SCV_VEC, SCV_MAP, SCV_ADDRESS,
	SCV_CONTRACT_INSTANCE, SCV_LEDGER_KEY_CONTRACT_INSTANCE,
	SCV_LEDGER_KEY_NONCE
};

/* the tagged form's names of the integer arms, by SCValType */
static const char *const int_names[] = {
	[SCV_U32] = "u32",[SCV_I32] = "i32",[SCV_U64] = "u64",[SCV_I64] = "i64",
	[SCV_TIMEPOINT] = "timepoint",[SCV_DURATION] = "duration",
	[SCV_U128] = "u128",[SCV_I128] = "i128",[SCV_U256] = "u256",[SCV_I256] = "i256"
};

/* SCErrorType in the tagged form (SCE_CONTRACT .. SCE_AUTH) */
static const char *const error_types[] = {
	"contract", "wasm_vm", "context", "storage", "object", "crypto",
	"events", "budget", "value", "auth"
};

/* SCErrorCode: the tagged form's names and stellar-base's (native) */
static const char *const error_codes[] = {
	"arith_domain", "index_bounds", "invalid_input", "missing_value",
	"existing_value", "exceeded_limit", "invalid_action", "internal_error",
	"unexpected_type", "unexpected_size"
};
static const char *const error_code_names[] = {
	"scecArithDomain", "scecIndexBounds", "scecInvalidInput",
	"scecMissingValue", "scecExistingValue", "scecExceededLimit",
	"scecInvalidAction", "scecInternalError", "scecUnexpectedType",
	"scecUnexpectedSize"
};

#define LENGTHOF(a) (sizeof(a) / sizeof((a)[0]))
#define SCSYMBOL_LIMIT 32

static const char hexdigits[] = "0123456789abcdef";

typedef struct PathElem
{
	const char *name;
	long		index;			/* -1: none */
} PathElem;

typedef struct Dec
{
	const unsigned char *buf;
	size_t		len;
	size_t		pos;
	int			native;
	LiAbiBuf   *out;
	LiAbiError *err;
	int			depth;			/* vec, map, instance levels entered */
	int			npath;
	PathElem	path[3 * LI_SCVAL_MAX_DEPTH + 8];
} Dec;

static int	fail(Dec *d, LiAbiStatus status, const char *fmt,...) LI_SCVAL_PRINTF(3, 4);

/* Reports an error at the current byte and path; returns -1. */
static int
fail(Dec *d, LiAbiStatus status, const char *fmt,...)
{
	char		path[120];
	char		msg[160];
	size_t		pl = 0;
	int			i;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	path[0] = '\0';
	for (i = 0; i < d->npath && pl < sizeof(path) - 1; i++)
	{
		int			w;

		if (d->path[i].index >= 0)
			w = snprintf(path + pl, sizeof(path) - pl, "%s%s[%ld]", i > 0 ? "." : "",
						 d->path[i].name, d->path[i].index);
		else
			w = snprintf(path + pl, sizeof(path) - pl, "%s%s", i > 0 ? "." : "",
						 d->path[i].name);
		if (w < 0)
			break;
		pl += (size_t) w;
	}
	if (pl >= sizeof(path) - 1)
		strcpy(path + sizeof(path) - 4, "...");
	d->err->status = status;
	if (pl > 0)
		snprintf(d->err->message, sizeof(d->err->message), "at byte %zu (%s): %s",
				 d->pos, path, msg);
	else
		snprintf(d->err->message, sizeof(d->err->message), "at byte %zu: %s", d->pos, msg);
	return -1;
}

/* ----------------------------------------------------------------
 * Output
 * ----------------------------------------------------------------
 */
static int
reserve(Dec *d, size_t n)
{
	LiAbiStatus st = li_abi_buf_grow(d->out, n);

	if (st == LI_ABI_ENOMEM)
		return fail(d, st, "out of memory");
	if (st != LI_ABI_OK)
		return fail(d, st, "decoded value longer than %zu bytes",
					d->out->max ? d->out->max : LI_ABI_DEFAULT_MAX_OUTPUT);
	return 0;
}

static int
out_mem(Dec *d, const char *s, size_t n)
{
	if (reserve(d, n) < 0)
		return -1;
	memcpy(d->out->data + d->out->len, s, n);
	d->out->len += n;
	return 0;
}

static int
out_str(Dec *d, const char *s)
{
	return out_mem(d, s, strlen(s));
}

/* {"name": in the tagged form; nothing in the native one */
static int
open_tag(Dec *d, const char *name)
{
	if (d->native)
		return 0;
	if (out_str(d, "{\"") < 0 || out_str(d, name) < 0)
		return -1;
	return out_str(d, "\":");
}

static int
close_tag(Dec *d)
{
	return d->native ? 0 : out_mem(d, "}", 1);
}

/* a quoted hex string of n bytes, no prefix */
static int
out_hex(Dec *d, const unsigned char *p, size_t n)
{
	char	   *o;
	size_t		i;

	if (n > (SIZE_MAX - 2) / 2)
		return fail(d, LI_ABI_ELIMIT, "bytes too long");
	if (reserve(d, 2 * n + 2) < 0)
		return -1;
	o = d->out->data + d->out->len;
	*o++ = '"';
	for (i = 0; i < n; i++)
	{
		*o++ = hexdigits[p[i] >> 4];
		*o++ = hexdigits[p[i] & 15];
	}
	*o++ = '"';
	d->out->len = (size_t) (o - d->out->data);
	return 0;
}

/*
 * An integer of "nbytes" big-endian bytes (4, 8, 16 or 32), two's
 * complement when is_signed: a decimal string in the tagged form, a number
 * in the native one (u32 and i32 are numbers in both).
 */
static int
out_int(Dec *d, const unsigned char *p, size_t nbytes, int is_signed)
{
	unsigned char w[32];
	char		dec[LI_ABI_DECIMAL_MAX + 2];
	int			neg = is_signed && (p[0] & 0x80);
	int			quote = !d->native && nbytes > 4;
	size_t		i;
	size_t		n;

	memset(w, neg ? 0xff : 0, 32 - nbytes);
	memcpy(w + 32 - nbytes, p, nbytes);
	if (neg)
	{
		/* magnitude: two's complement negation */
		int			carry = 1;

		for (i = 32; i-- > 0;)
		{
			int			v = (unsigned char) ~w[i] + carry;

			w[i] = (unsigned char) v;
			carry = v >> 8;
		}
	}
	n = li_abi_decimal(w, neg, dec + 1);
	if (quote)
	{
		dec[0] = '"';
		dec[n + 1] = '"';
		return out_mem(d, dec, n + 2);
	}
	return out_mem(d, dec + 1, n);
}

/*
 * String and symbol contents in the tagged form: Rust's escape_bytes
 * (printable ASCII as is, \\ \0 \t \n \r, \xNN for every other byte),
 * then escaped for JSON (\ and ").
 */
static int
out_escaped(Dec *d, const unsigned char *s, size_t n)
{
	char	   *o;
	size_t		i;

	if (n > (SIZE_MAX - 2) / 8)
		return fail(d, LI_ABI_ELIMIT, "string too long");
	if (reserve(d, 8 * n + 2) < 0)
		return -1;
	o = d->out->data + d->out->len;
	*o++ = '"';
	for (i = 0; i < n; i++)
	{
		unsigned char c = s[i];

		if (c == '\\')
		{
			memcpy(o, "\\\\\\\\", 4);
			o += 4;
		}
		else if (c == '"')
		{
			*o++ = '\\';
			*o++ = '"';
		}
		else if (c >= 0x20 && c < 0x7f)
			*o++ = (char) c;
		else
		{
			*o++ = '\\';
			*o++ = '\\';
			if (c == 0)
				*o++ = '0';
			else if (c == '\t')
				*o++ = 't';
			else if (c == '\n')
				*o++ = 'n';
			else if (c == '\r')
				*o++ = 'r';
			else
			{
				*o++ = 'x';
				*o++ = hexdigits[c >> 4];
				*o++ = hexdigits[c & 15];
			}
		}
	}
	*o++ = '"';
	d->out->len = (size_t) (o - d->out->data);
	return 0;
}

/*
 * Length of the valid UTF-8 sequence at s (n bytes left), or, for an
 * invalid one, 0 with *bad set to the bytes TextDecoder replaces by one
 * U+FFFD (the WHATWG Encoding standard's UTF-8 decoder: the lead byte and
 * the continuation bytes that were valid so far, at least one byte).
 */
static size_t
utf8_next(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80,
				hi = 0xbf;
	size_t		extra;
	size_t		k;

	if (c >= 0xc2 && c <= 0xdf)
		extra = 1;
	else if (c >= 0xe0 && c <= 0xef)
	{
		extra = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	}
	else if (c >= 0xf0 && c <= 0xf4)
	{
		extra = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	}
	else
	{
		*bad = 1;
		return 0;
	}
	for (k = 1; k <= extra; k++)
	{
		if (k >= n || s[k] < lo || s[k] > hi)
		{
			*bad = k;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return extra + 1;
}

/*
 * String and symbol contents in the native form: the text, decoded as
 * TextDecoder does (see utf8_next), NUL as U+FFFD, as a JSON string.
 */
static int
out_text(Dec *d, const unsigned char *s, size_t n)
{
	char	   *o;
	size_t		i = 0;

	if (n > (SIZE_MAX - 2) / 6)
		return fail(d, LI_ABI_ELIMIT, "string too long");
	if (reserve(d, 6 * n + 2) < 0)
		return -1;
	o = d->out->data + d->out->len;
	*o++ = '"';
	while (i < n)
	{
		unsigned char c = s[i];
		size_t		bad = 0;
		size_t		k = 0;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
		{
			*o++ = (char) c;
			i++;
		}
		else if (c == '"' || c == '\\')
		{
			*o++ = '\\';
			*o++ = (char) c;
			i++;
		}
		else if (c == 0 || (c >= 0x80 && (k = utf8_next(s + i, n - i, &bad)) == 0))
		{
			memcpy(o, "\xef\xbf\xbd", 3);	/* U+FFFD */
			o += 3;
			i += c == 0 ? 1 : bad;
		}
		else if (c < 0x20)
		{
			memcpy(o, "\\u00", 4);
			o[4] = hexdigits[c >> 4];
			o[5] = hexdigits[c & 15];
			o += 6;
			i++;
		}
		else
		{
			memcpy(o, s + i, k);
			o += k;
			i += k;
		}
	}
	*o++ = '"';
	d->out->len = (size_t) (o - d->out->data);
	return 0;
}

/* ----------------------------------------------------------------
 * XDR reading
 * ----------------------------------------------------------------
 */
static int
need(Dec *d, size_t n, const char *what)
{
	if (d->len - d->pos < n)
		return fail(d, LI_ABI_EDATA, "%s: %zu bytes needed, %zu left", what, n,
					d->len - d->pos);
	return 0;
}

static int
rd_u32(Dec *d, const char *what, uint32_t *v)
{
	const unsigned char *p = d->buf + d->pos;

	if (need(d, 4, what) < 0)
		return -1;
	*v = ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
	d->pos += 4;
	return 0;
}

/* "n" bytes as they are (fixed-length opaque, n a multiple of 4) */
static int
rd_fixed(Dec *d, size_t n, const char *what, const unsigned char **p)
{
	if (need(d, n, what) < 0)
		return -1;
	*p = d->buf + d->pos;
	d->pos += n;
	return 0;
}

/* an XDR bool or optional-data flag: 0 or 1 */
static int
rd_flag(Dec *d, const char *what, uint32_t *v)
{
	if (rd_u32(d, what, v) < 0)
		return -1;
	if (*v > 1)
	{
		d->pos -= 4;
		return fail(d, LI_ABI_EDATA, "%s is %u, not 0 or 1", what, *v);
	}
	return 0;
}

/* variable-length opaque or string: length, contents, zero padding */
static int
rd_var(Dec *d, const char *what, size_t max, const unsigned char **p, size_t *n)
{
	uint32_t	len;
	size_t		pad;
	size_t		i;

	if (rd_u32(d, what, &len) < 0)
		return -1;
	if (len > max)
	{
		d->pos -= 4;
		return fail(d, LI_ABI_EDATA, "%s of %u bytes, longer than %zu", what, len, max);
	}
	if (d->len - d->pos < len)
	{
		d->pos -= 4;
		return fail(d, LI_ABI_EDATA, "%s of %u bytes, only %zu left", what, len,
					d->len - d->pos - 4);
	}
	*p = d->buf + d->pos;
	*n = len;
	d->pos += len;
	pad = (4 - len % 4) % 4;
	if (need(d, pad, what) < 0)
		return -1;
	for (i = 0; i < pad; i++)
		if (d->buf[d->pos + i] != 0)
			return fail(d, LI_ABI_EDATA, "%s: non-zero padding byte", what);
	d->pos += pad;
	return 0;
}

/* ----------------------------------------------------------------
 * Values
 * ----------------------------------------------------------------
 */
static int	val(Dec *d);

static void
push(Dec *d, const char *name, long index)
{
	d->path[d->npath].name = name;
	d->path[d->npath].index = index;
	d->npath++;
}

static int
enter(Dec *d)
{
	if (d->depth >= LI_SCVAL_MAX_DEPTH)
		return fail(d, LI_ABI_EDATA, "nested deeper than %d levels", LI_SCVAL_MAX_DEPTH);
	d->depth++;
	return 0;
}

static int
out_strkey(Dec *d, char kind, const unsigned char *payload, size_t n)
{
	char		key[LI_STRKEY_MAX_LEN + 3];
	size_t		k;

	k = li_strkey_encode(kind, payload, n, key + 1, d->err);
	if (k == 0)
		return fail(d, LI_ABI_EDATA, "%s", d->err->message);
	key[0] = '"';
	key[k + 1] = '"';
	return out_mem(d, key, k + 2);
}

/* SCAddress: written as its strkey */
static int
address(Dec *d)
{
	uint32_t	type;
	uint32_t	sub;
	const unsigned char *p;
	const unsigned char *id;
	unsigned char payload[LI_STRKEY_MAX_PAYLOAD];

	if (rd_u32(d, "address type", &type) < 0)
		return -1;
	switch (type)
	{
		case 0:					/* SC_ADDRESS_TYPE_ACCOUNT: PublicKey */
			if (rd_u32(d, "account public key type", &sub) < 0)
				return -1;
			if (sub != 0)
			{
				d->pos -= 4;
				return fail(d, LI_ABI_EDATA, "unknown public key type %u", sub);
			}
			if (rd_fixed(d, 32, "account ed25519 key", &p) < 0)
				return -1;
			return out_strkey(d, 'G', p, 32);
		case 1:					/* SC_ADDRESS_TYPE_CONTRACT: ContractID */
			if (rd_fixed(d, 32, "contract id", &p) < 0)
				return -1;
			return out_strkey(d, 'C', p, 32);
		case 2:					/* SC_ADDRESS_TYPE_MUXED_ACCOUNT */
			if (rd_fixed(d, 8, "muxed account id", &id) < 0 ||
				rd_fixed(d, 32, "muxed account ed25519 key", &p) < 0)
				return -1;
			memcpy(payload, p, 32);
			memcpy(payload + 32, id, 8);
			return out_strkey(d, 'M', payload, 40);
		case 3:					/* SC_ADDRESS_TYPE_CLAIMABLE_BALANCE */
			if (rd_u32(d, "claimable balance id type", &sub) < 0)
				return -1;
			if (sub != 0)
			{
				d->pos -= 4;
				return fail(d, LI_ABI_EDATA, "unknown claimable balance id type %u", sub);
			}
			if (rd_fixed(d, 32, "claimable balance id", &p) < 0)
				return -1;
			payload[0] = 0;
			memcpy(payload + 1, p, 32);
			return out_strkey(d, 'B', payload, 33);
		case 4:					/* SC_ADDRESS_TYPE_LIQUIDITY_POOL */
			if (rd_fixed(d, 32, "liquidity pool id", &p) < 0)
				return -1;
			return out_strkey(d, 'L', p, 32);
	}
	d->pos -= 4;
	return fail(d, LI_ABI_EDATA, "unknown address type %u", type);
}

/* SCError */
static int
error(Dec *d)
{
	uint32_t	type;
	uint32_t	code;
	char		num[16];

	if (rd_u32(d, "error type", &type) < 0)
		return -1;
	if (type >= LENGTHOF(error_types))
	{
		d->pos -= 4;
		return fail(d, LI_ABI_EDATA, "unknown error type %u", type);
	}
	if (rd_u32(d, type == 0 ? "contract error code" : "error code", &code) < 0)
		return -1;
	if (type != 0 && code >= LENGTHOF(error_codes))
	{
		d->pos -= 4;
		return fail(d, LI_ABI_EDATA, "unknown error code %u", code);
	}
	snprintf(num, sizeof(num), "%u", code);
	if (!d->native)
	{
		if (out_str(d, "{\"") < 0 || out_str(d, error_types[type]) < 0 || out_str(d, "\":") < 0)
			return -1;
		if (type == 0)
			return out_str(d, num) < 0 ? -1 : out_str(d, "}");
		return out_str(d, "\"") < 0 || out_str(d, error_codes[code]) < 0 ? -1 : out_str(d, "\"}");
	}
	if (type == 0)
		return out_str(d, "{\"type\":\"contract\",\"code\":") < 0 ||
			out_str(d, num) < 0 ? -1 : out_str(d, "}");
	return out_str(d, "{\"type\":\"system\",\"code\":") < 0 || out_str(d, num) < 0 ||
		out_str(d, ",\"value\":\"") < 0 || out_str(d, error_code_names[code]) < 0
		? -1 : out_str(d, "\"}");
}

/* span of a map entry's key and value in the output (native form) */
typedef struct Span
{
	size_t		kstart,
				kend,
				vstart,
				vend;
	int			kquote;			/* key is a number, bool or null: quote it */
} Span;

/*
 * The entries of a map (after its optional flag and count).  Tagged form:
 * [{"key":..,"val":..},...].  Native form: written as [[key,value],...];
 * if every key is a scalar, that text is then rewritten as
 * {"key":value,...}, which is never longer.
 */
static int
map_entries(Dec *d, uint32_t count)
{
	size_t		start = d->out->len;
	Span	   *spans = NULL;
	size_t		nspans = 0;
	size_t		cap = 0;
	int			scalar_keys = 1;
	int			rc = -1;
	uint32_t	i;

	if (out_mem(d, "[", 1) < 0)
		return -1;
	for (i = 0; i < count; i++)
	{
		Span		s;
		uint32_t	ktag = UINT32_MAX;

		if (i > 0 && out_mem(d, ",", 1) < 0)
			goto done;
		if (d->len - d->pos >= 4)
		{
			const unsigned char *p = d->buf + d->pos;

			ktag = ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
		}
		s.kquote = ktag == SCV_BOOL || ktag == SCV_VOID || (ktag >= SCV_U32 && ktag <= SCV_I256);
		if (!(s.kquote || ktag == SCV_STRING || ktag == SCV_SYMBOL || ktag == SCV_ADDRESS))
			scalar_keys = 0;
		if (out_str(d, d->native ? "[" : "{\"key\":") < 0)
			goto done;
		push(d, "key", -1);
		s.kstart = d->out->len;
		if (val(d) < 0)
			goto done;
		s.kend = d->out->len;
		d->npath--;
		if (out_str(d, d->native ? "," : ",\"val\":") < 0)
			goto done;
		push(d, "val", -1);
		s.vstart = d->out->len;
		if (val(d) < 0)
			goto done;
		s.vend = d->out->len;
		d->npath--;
		if (out_str(d, d->native ? "]" : "}") < 0)
			goto done;
		d->path[d->npath - 1].index++;
		if (d->native && scalar_keys)
		{
			if (nspans == cap)
			{
				Span	   *n;

				cap = cap ? 2 * cap : 16;
				n = realloc(spans, cap * sizeof(Span));
				if (n == NULL)
				{
					fail(d, LI_ABI_ENOMEM, "out of memory");
					goto done;
				}
				spans = n;
			}
			spans[nspans++] = s;
		}
	}
	if (out_mem(d, "]", 1) < 0)
		goto done;
	if (d->native && scalar_keys)
	{
		/* the object is never longer, but its prefix can be: a copy */
		size_t		total = d->out->len - start;
		char	   *b = malloc(total);
		size_t		w = 0;

		if (b == NULL)
		{
			fail(d, LI_ABI_ENOMEM, "out of memory");
			goto done;
		}
		b[w++] = '{';
		for (i = 0; i < nspans; i++)
		{
			Span	   *s = &spans[i];

			if (i > 0)
				b[w++] = ',';
			if (s->kquote)
				b[w++] = '"';
			memcpy(b + w, d->out->data + s->kstart, s->kend - s->kstart);
			w += s->kend - s->kstart;
			if (s->kquote)
				b[w++] = '"';
			b[w++] = ':';
			memcpy(b + w, d->out->data + s->vstart, s->vend - s->vstart);
			w += s->vend - s->vstart;
		}
		b[w++] = '}';
		memcpy(d->out->data + start, b, w);
		d->out->len = start + w;
		free(b);
	}
	rc = 0;
done:
	free(spans);
	return rc;
}

/* an optional SCVec or SCMap (after its type), in path element "name" */
static int
collection(Dec *d, int is_map, const char *name)
{
	uint32_t	present;
	uint32_t	count;
	uint32_t	i;

	if (rd_flag(d, is_map ? "map present flag" : "vec present flag", &present) < 0)
		return -1;
	if (!present)
		return out_str(d, d->native ? (is_map ? "{}" : "[]") : "null");
	if (rd_u32(d, is_map ? "map length" : "vec length", &count) < 0)
		return -1;
	/* each element takes at least 4 bytes, each entry 8 */
	if ((uint64_t) count * (is_map ? 8 : 4) > d->len - d->pos)
	{
		d->pos -= 4;
		return fail(d, LI_ABI_EDATA, "%s of %u %s, only %zu bytes left", is_map ? "map" : "vec",
					count, is_map ? "entries" : "elements", d->len - d->pos - 4);
	}
	if (enter(d) < 0)
		return -1;
	push(d, name, 0);
	if (is_map)
	{
		if (map_entries(d, count) < 0)
			return -1;
	}
	else
	{
		if (out_mem(d, "[", 1) < 0)
			return -1;
		for (i = 0; i < count; i++)
		{
			if (i > 0 && out_mem(d, ",", 1) < 0)
				return -1;
			d->path[d->npath - 1].index = i;
			if (val(d) < 0)
				return -1;
		}
		if (out_mem(d, "]", 1) < 0)
			return -1;
	}
	d->npath--;
	d->depth--;
	return 0;
}

/* SCContractInstance */
static int
contract_instance(Dec *d)
{
	uint32_t	type;
	const unsigned char *p;

	if (enter(d) < 0)
		return -1;
	push(d, "contract_instance", -1);
	if (rd_u32(d, "executable type", &type) < 0)
		return -1;
	if (out_str(d, "{\"executable\":") < 0)
		return -1;
	if (type == 0)				/* CONTRACT_EXECUTABLE_WASM */
	{
		if (rd_fixed(d, 32, "wasm hash", &p) < 0 ||
			out_str(d, "{\"wasm\":") < 0 || out_hex(d, p, 32) < 0 || out_str(d, "}") < 0)
			return -1;
	}
	else if (type == 1)			/* CONTRACT_EXECUTABLE_STELLAR_ASSET */
	{
		if (out_str(d, "\"stellar_asset\"") < 0)
			return -1;
	}
	else
	{
		d->pos -= 4;
		return fail(d, LI_ABI_EDATA, "unknown executable type %u", type);
	}
	if (out_str(d, ",\"storage\":") < 0 || collection(d, 1, "storage") < 0 ||
		out_str(d, "}") < 0)
		return -1;
	d->npath--;
	d->depth--;
	return 0;
}

/* one ScVal */
static int
val(Dec *d)
{
	uint32_t	type;
	uint32_t	v;
	const unsigned char *p;
	size_t		n;

	if (rd_u32(d, "ScVal type", &type) < 0)
		return -1;
	switch (type)
	{
		case SCV_BOOL:
			if (rd_flag(d, "bool", &v) < 0 || open_tag(d, "bool") < 0 ||
				out_str(d, v ? "true" : "false") < 0)
				return -1;
			return close_tag(d);
		case SCV_VOID:
			return out_str(d, d->native ? "null" : "\"void\"");
		case SCV_ERROR:
			if (open_tag(d, "error") < 0 || error(d) < 0)
				return -1;
			return close_tag(d);
		case SCV_U32:
		case SCV_I32:
		case SCV_U64:
		case SCV_I64:
		case SCV_TIMEPOINT:
		case SCV_DURATION:
		case SCV_U128:
		case SCV_I128:
		case SCV_U256:
		case SCV_I256:
			n = type <= SCV_I32 ? 4 : type <= SCV_DURATION ? 8 : type <= SCV_I128 ? 16 : 32;
			if (rd_fixed(d, n, int_names[type], &p) < 0 || open_tag(d, int_names[type]) < 0 ||
				out_int(d, p, n, type == SCV_I32 || type == SCV_I64 ||
						type == SCV_I128 || type == SCV_I256) < 0)
				return -1;
			return close_tag(d);
		case SCV_BYTES:
			if (rd_var(d, "bytes", SIZE_MAX, &p, &n) < 0 || open_tag(d, "bytes") < 0 ||
				out_hex(d, p, n) < 0)
				return -1;
			return close_tag(d);
		case SCV_STRING:
		case SCV_SYMBOL:
			if (rd_var(d, type == SCV_STRING ? "string" : "symbol",
					   type == SCV_STRING ? SIZE_MAX : SCSYMBOL_LIMIT, &p, &n) < 0 ||
				open_tag(d, type == SCV_STRING ? "string" : "symbol") < 0 ||
				(d->native ? out_text(d, p, n) : out_escaped(d, p, n)) < 0)
				return -1;
			return close_tag(d);
		case SCV_VEC:
		case SCV_MAP:
			if (open_tag(d, type == SCV_MAP ? "map" : "vec") < 0 ||
				collection(d, type == SCV_MAP, type == SCV_MAP ? "map" : "vec") < 0)
				return -1;
			return close_tag(d);
		case SCV_ADDRESS:
			if (open_tag(d, "address") < 0 || address(d) < 0)
				return -1;
			return close_tag(d);
		case SCV_CONTRACT_INSTANCE:
			if (open_tag(d, "contract_instance") < 0 || contract_instance(d) < 0)
				return -1;
			return close_tag(d);
		case SCV_LEDGER_KEY_CONTRACT_INSTANCE:
			return out_str(d, "\"ledger_key_contract_instance\"");
		case SCV_LEDGER_KEY_NONCE:
			if (rd_fixed(d, 8, "nonce", &p) < 0 ||
				out_str(d, d->native ? "{\"nonce\":" : "{\"ledger_key_nonce\":{\"nonce\":") < 0)
				return -1;
			if (out_int(d, p, 8, 1) < 0)
				return -1;
			return out_str(d, d->native ? "}" : "}}");
	}
	d->pos -= 4;
	return fail(d, LI_ABI_EDATA, "unknown ScVal type %u", type);
}

/* li_scval_core_decode: see scval_core.h */
LiAbiStatus
li_scval_core_decode(const unsigned char *xdr, size_t len, LiScvalForm form,
					 LiAbiBuf *out, LiAbiError *err)
{
	Dec		   *d;
	LiAbiStatus st = LI_ABI_OK;

	d = malloc(sizeof(Dec));
	if (d == NULL)
	{
		err->status = LI_ABI_ENOMEM;
		snprintf(err->message, sizeof(err->message), "out of memory");
		return LI_ABI_ENOMEM;
	}
	memset(d, 0, offsetof(Dec, path));
	d->buf = xdr;
	d->len = len;
	d->native = form == LI_SCVAL_NATIVE;
	d->out = out;
	d->err = err;
	out->len = 0;
	if (val(d) < 0)
		st = err->status;
	else if (d->pos != len)
		st = (fail(d, LI_ABI_EDATA, "%zu bytes after the value", len - d->pos), LI_ABI_EDATA);
	else if (reserve(d, 0) < 0)
		st = err->status;
	else
		out->data[out->len] = '\0';
	free(d);
	return st;
}

/* ----------------------------------------------------------------
 * Strkeys (SEP-23)
 * ----------------------------------------------------------------
 */
static const char base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* kinds: first letter, version byte (SEP-23), payload length */
static const struct
{
	char		kind;
	unsigned char version;
	size_t		len;
}			strkey_kinds[] = {
	{'G', 6 << 3, 32}, {'M', 12 << 3, 40}, {'C', 2 << 3, 32}, {'L', 11 << 3, 32},
	{'B', 1 << 3, 33}, {'T', 19 << 3, 32}, {'X', 23 << 3, 32}
};

/* CRC16-XModem (polynomial 0x1021, initial 0), as SEP-23 specifies */
static unsigned int
crc16_xmodem(const unsigned char *p, size_t n)
{
	unsigned int crc = 0;
	size_t		i;
	int			b;

	for (i = 0; i < n; i++)
	{
		crc ^= (unsigned int) p[i] << 8;
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
	}
	return crc;
}

static void
strkey_error(LiAbiError *err, const char *fmt,...) LI_SCVAL_PRINTF(2, 3);

static void
strkey_error(LiAbiError *err, const char *fmt,...)
{
	va_list		ap;

	err->status = LI_ABI_EDATA;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* li_strkey_payload_len: see scval_core.h */
size_t
li_strkey_payload_len(char kind)
{
	size_t		i;

	for (i = 0; i < LENGTHOF(strkey_kinds); i++)
		if (strkey_kinds[i].kind == kind)
			return strkey_kinds[i].len;
	return 0;
}

/* li_strkey_encode: see scval_core.h */
size_t
li_strkey_encode(char kind, const unsigned char *payload, size_t n, char *out,
				 LiAbiError *err)
{
	unsigned char raw[LI_STRKEY_MAX_PAYLOAD + 3];
	size_t		i;
	size_t		nraw;
	size_t		o = 0;
	unsigned int crc;
	unsigned int acc = 0;
	int			bits = 0;

	for (i = 0; i < LENGTHOF(strkey_kinds); i++)
		if (strkey_kinds[i].kind == kind)
			break;
	if (i == LENGTHOF(strkey_kinds))
	{
		strkey_error(err, "unknown strkey kind \"%c\" (expected G, M, C, L, B, T or X)", kind);
		return 0;
	}
	if (n != strkey_kinds[i].len)
	{
		strkey_error(err, "a %c strkey holds %zu bytes, not %zu", kind, strkey_kinds[i].len, n);
		return 0;
	}
	if (kind == 'B' && payload[0] != 0)
	{
		strkey_error(err, "unknown claimable balance id type %u", payload[0]);
		return 0;
	}
	raw[0] = strkey_kinds[i].version;
	memcpy(raw + 1, payload, n);
	crc = crc16_xmodem(raw, n + 1);
	raw[n + 1] = (unsigned char) (crc & 0xff);
	raw[n + 2] = (unsigned char) (crc >> 8);
	nraw = n + 3;
	for (i = 0; i < nraw; i++)
	{
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 5)
		{
			bits -= 5;
			out[o++] = base32[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		out[o++] = base32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return o;
}

/* li_strkey_decode: see scval_core.h */
LiAbiStatus
li_strkey_decode(const char *s, size_t n, char *kind, unsigned char *payload,
				 size_t *plen, LiAbiError *err)
{
	unsigned char raw[LI_STRKEY_MAX_PAYLOAD + 3];
	size_t		nraw = n * 5 / 8;
	size_t		o = 0;
	size_t		i;
	size_t		k;
	unsigned int acc = 0;
	int			bits = 0;
	unsigned int crc;

	if (nraw < 3 || nraw > sizeof(raw) || (nraw * 8 + 4) / 5 != n)
	{
		strkey_error(err, "a strkey of %zu characters: no kind has that length", n);
		return LI_ABI_EDATA;
	}
	for (i = 0; i < n; i++)
	{
		const char *c = s[i] ? strchr(base32, s[i]) : NULL;

		if (c == NULL)
		{
			strkey_error(err, "character %zu of the strkey is not in the base32 alphabet (A-Z, 2-7)", i + 1);
			return LI_ABI_EDATA;
		}
		acc = (acc << 5) | (unsigned int) (c - base32);
		bits += 5;
		if (bits >= 8)
		{
			bits -= 8;
			raw[o++] = (unsigned char) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
	{
		strkey_error(err, "the strkey's unused trailing bits are not zero");
		return LI_ABI_EDATA;
	}
	for (k = 0; k < LENGTHOF(strkey_kinds); k++)
		if (strkey_kinds[k].version == raw[0])
			break;
	if (k == LENGTHOF(strkey_kinds))
	{
		strkey_error(err, "unknown strkey version byte %u (\"%c\")", raw[0], s[0]);
		return LI_ABI_EDATA;
	}
	if (nraw - 3 != strkey_kinds[k].len)
	{
		strkey_error(err, "a %c strkey holds %zu bytes, not %zu", strkey_kinds[k].kind,
					 strkey_kinds[k].len, nraw - 3);
		return LI_ABI_EDATA;
	}
	crc = crc16_xmodem(raw, nraw - 2);
	if (raw[nraw - 2] != (crc & 0xff) || raw[nraw - 1] != (crc >> 8))
	{
		strkey_error(err, "the strkey's checksum does not match");
		return LI_ABI_EDATA;
	}
	if (strkey_kinds[k].kind == 'B' && raw[1] != 0)
	{
		strkey_error(err, "unknown claimable balance id type %u", raw[1]);
		return LI_ABI_EDATA;
	}
	*kind = strkey_kinds[k].kind;
	*plen = nraw - 3;
	memcpy(payload, raw + 1, nraw - 3);
	return LI_ABI_OK;
}
