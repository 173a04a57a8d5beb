/*-------------------------------------------------------------------------
 *
 * abi_core.c
 *	  Solidity ABI signatures and decoding, without PostgreSQL.
 *
 * A signature is parsed once into a small tree of types (allocated in an
 * arena owned by the descriptor) that knows each type's static size and
 * dynamism, and each parameter's head position; decoding walks that tree
 * over the data, validating every word before writing it as JSON into a
 * growable buffer.  See abi_core.h for the accepted syntax, the JSON
 * representation and the validation rules; the encoding rules are those
 * of the Solidity "Contract ABI Specification", section "Formal
 * Specification of the Encoding":
 *
 *	- a tuple (and T[k], which is encoded as a k-tuple of T) is its heads
 *	  followed by its tails; the head of a static component is its
 *	  encoding, the head of a dynamic one is the offset of its tail counted
 *	  from the start of the tuple's encoding;
 *	- T[] is its length k (a uint256) followed by the encoding of T[k];
 *	- bytes and string are their length followed by the contents padded
 *	  with zeros to a multiple of 32 bytes;
 *	- value types are one 32-byte word (left-padded numbers and addresses,
 *	  right-padded bytesN, sign-extended intN).
 *
 * Nothing here reads outside [data, data + len): every offset and length is
 * checked against the bytes that remain before it is used, in a way that
 * cannot overflow (all sizes are size_t, words above 2^64 are rejected).
 * Recursion is bounded by LI_ABI_MAX_DEPTH (checked at compile time) and
 * the output by LiAbiBuf.max, which also bounds the time spent on data
 * whose offsets point many times at the same tail.
 *
 *-------------------------------------------------------------------------
 */
#include "abi_core.h"
#include "keccak.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------
 * Descriptors
 * ----------------------------------------------------------------
 */
typedef enum AbiKind
{
	K_UINT,
	K_INT,
	K_ADDRESS,
	K_BOOL,
	K_FIXEDBYTES,
	K_BYTES,
	K_STRING,
	K_FARRAY,
	K_DARRAY,
	K_TUPLE
} AbiKind;

struct AbiParam;

typedef struct AbiType
{
	AbiKind		kind;
	unsigned	size;			/* uintN/intN: N bits; bytesN: N bytes */
	int			dynamic;		/* has a tail (head is then an offset) */
	size_t		head;			/* bytes in the enclosing head */
	size_t		count;			/* T[k]: k; tuple: number of components */
	size_t		heads;			/* tuple: size of its head region */
	int			height;			/* tuple/array levels inside, 0 for a value */
	struct AbiType *elem;		/* arrays: element type */
	struct AbiParam *comps;		/* tuple: components */
	int			as_object;		/* tuple: all components named */
} AbiType;

typedef struct AbiParam
{
	AbiType    *type;
	const char *name;			/* NULL when unnamed (tuple components) */
	const char *key;			/* JSON key text "\"name\":", or NULL */
	size_t		keylen;
	int			indexed;		/* event argument in a topic */
	size_t		headpos;		/* position of its head in the tuple */
} AbiParam;

typedef struct ArenaChunk
{
	struct ArenaChunk *next;
	size_t		used;
	size_t		cap;
	/* data follows, aligned to 16 */
} ArenaChunk;

#define CHUNK_HDR	((sizeof(ArenaChunk) + 15) & ~(size_t) 15)
#define CHUNK_SIZE	4096

struct LiAbiDesc
{
	ArenaChunk *arena;
	int			is_event;
	int			anonymous;
	int			nindexed;
	char	   *signature;
	unsigned char topic0[32];
	size_t		nparams;
	AbiParam   *params;			/* top-level arguments, names filled */
};

static void *
arena_alloc(LiAbiDesc *d, size_t size)
{
	ArenaChunk *c = d->arena;
	void	   *p;

	size = (size + 15) & ~(size_t) 15;
	if (c == NULL || c->cap - c->used < size)
	{
		size_t		cap = size > CHUNK_SIZE ? size : CHUNK_SIZE;

		c = malloc(CHUNK_HDR + cap);
		if (c == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		/* a big block gets its own chunk behind the current one */
		if (d->arena != NULL && size > CHUNK_SIZE)
		{
			c->next = d->arena->next;
			d->arena->next = c;
		}
		else
		{
			c->next = d->arena;
			d->arena = c;
		}
	}
	p = (char *) c + CHUNK_HDR + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

/* li_abi_core_free: frees a descriptor and its arena (NULL allowed). */
void
li_abi_core_free(LiAbiDesc *desc)
{
	ArenaChunk *c;

	if (desc == NULL)
		return;
	c = desc->arena;
	while (c != NULL)
	{
		ArenaChunk *next = c->next;

		free(c);
		c = next;
	}
	free(desc);
}

/* ----------------------------------------------------------------
 * Output buffer
 * ----------------------------------------------------------------
 */

/* li_abi_buf_free: releases the buffer's memory and zeroes it, keeps max. */
void
li_abi_buf_free(LiAbiBuf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

#if defined(__GNUC__) || defined(__clang__)
#define LI_ABI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LI_ABI_PRINTF(f, a)
#endif

static void set_error(LiAbiError *err, LiAbiStatus status, const char *fmt,...)
			LI_ABI_PRINTF(3, 4);

static void
set_error(LiAbiError *err, LiAbiStatus status, const char *fmt,...)
{
	va_list		ap;

	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* li_abi_buf_grow: see abi_core.h */
LiAbiStatus
li_abi_buf_grow(LiAbiBuf *b, size_t n)
{
	size_t		max = b->max ? b->max : LI_ABI_DEFAULT_MAX_OUTPUT;
	size_t		need;
	size_t		cap;
	char	   *p;

	if (n > max || b->len > max - n)
		return LI_ABI_ELIMIT;
	need = b->len + n + 1;
	if (need <= b->cap)
		return LI_ABI_OK;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return LI_ABI_ENOMEM;
	b->data = p;
	b->cap = cap;
	return LI_ABI_OK;
}

/* ----------------------------------------------------------------
 * Signature parsing
 * ----------------------------------------------------------------
 */
typedef struct Parser
{
	const char *s;
	size_t		len;
	size_t		pos;
	int			nodes;
	LiAbiDesc  *desc;
	LiAbiError *err;
} Parser;

static int
is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static int
is_ident_char(int c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

static void
skip_ws(Parser *p)
{
	while (p->pos < p->len &&
		   (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
			p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

/* length of the identifier at the current position (0 if none) */
static size_t
ident_len(Parser *p)
{
	size_t		n = 0;

	if (p->pos >= p->len || !is_ident_start((unsigned char) p->s[p->pos]))
		return 0;
	while (p->pos + n < p->len && is_ident_char((unsigned char) p->s[p->pos + n]))
		n++;
	return n;
}

static int
word_is(Parser *p, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(p->s + p->pos, w, n) == 0;
}

static int
parse_fail(Parser *p, const char *what)
{
	if (p->pos >= p->len)
		set_error(p->err, LI_ABI_ESIGNATURE, "invalid signature: %s at end of input", what);
	else
	{
		unsigned char c = (unsigned char) p->s[p->pos];

		if (c >= 0x20 && c < 0x7f)
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: %s at position %zu (\"%c\")",
					  what, p->pos + 1, c);
		else
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: %s at position %zu (byte 0x%02x)",
					  what, p->pos + 1, c);
	}
	return -1;
}

static int
oom(Parser *p)
{
	set_error(p->err, LI_ABI_ENOMEM, "out of memory");
	return -1;
}

static AbiType *
new_type(Parser *p, AbiKind kind)
{
	AbiType    *t;

	if (++p->nodes > LI_ABI_MAX_NODES)
	{
		set_error(p->err, LI_ABI_ESIGNATURE,
				  "invalid signature: more than %d types and parameters",
				  LI_ABI_MAX_NODES);
		return NULL;
	}
	t = arena_alloc(p->desc, sizeof(AbiType));
	if (t == NULL)
	{
		oom(p);
		return NULL;
	}
	t->kind = kind;
	t->head = 32;
	return t;
}

/* parses decimal digits n (1 <= n <= 2^31); returns 0 on success */
static int
parse_small_uint(Parser *p, size_t *out)
{
	size_t		v = 0;
	size_t		start = p->pos;

	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
	{
		v = v * 10 + (size_t) (p->s[p->pos] - '0');
		if (v > ((size_t) 1 << 31))
			return parse_fail(p, "array length too large");
		p->pos++;
	}
	if (p->pos == start)
		return -1;
	*out = v;
	return 0;
}

/* elementary type name of n bytes at the current position */
static AbiType *
parse_elementary(Parser *p, size_t n)
{
	const char *w = p->s + p->pos;
	AbiKind		kind;
	unsigned	size = 0;
	size_t		digits = 0;
	AbiType    *t;

	if (word_is(p, n, "address"))
		kind = K_ADDRESS;
	else if (word_is(p, n, "bool"))
		kind = K_BOOL;
	else if (word_is(p, n, "string"))
		kind = K_STRING;
	else if (word_is(p, n, "bytes"))
		kind = K_BYTES;
	else if (word_is(p, n, "byte"))
	{
		kind = K_FIXEDBYTES;
		size = 1;
	}
	else if (word_is(p, n, "uint") || word_is(p, n, "int"))
	{
		kind = w[0] == 'u' ? K_UINT : K_INT;
		size = 256;
	}
	else
	{
		size_t		prefix;

		if (n > 5 && memcmp(w, "bytes", 5) == 0)
		{
			kind = K_FIXEDBYTES;
			prefix = 5;
		}
		else if (n > 4 && memcmp(w, "uint", 4) == 0)
		{
			kind = K_UINT;
			prefix = 4;
		}
		else if (n > 3 && memcmp(w, "int", 3) == 0)
		{
			kind = K_INT;
			prefix = 3;
		}
		else
		{
			char		name[40];
			int			shown = n < 32 ? (int) n : 32;

			memcpy(name, w, shown);
			name[shown] = '\0';
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: unknown type \"%s%s\" at position %zu",
					  name, n > 32 ? "..." : "", p->pos + 1);
			return NULL;
		}
		for (digits = prefix; digits < n; digits++)
		{
			if (w[digits] < '0' || w[digits] > '9' || size > 1000)
				break;
			size = size * 10 + (unsigned) (w[digits] - '0');
		}
		if (digits != n || w[prefix] == '0' ||
			(kind == K_FIXEDBYTES && (size < 1 || size > 32)) ||
			(kind != K_FIXEDBYTES && (size < 8 || size > 256 || size % 8 != 0)))
		{
			char		name[40];
			int			shown = n < 32 ? (int) n : 32;

			memcpy(name, w, shown);
			name[shown] = '\0';
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: invalid type \"%s%s\" at position %zu",
					  name, n > 32 ? "..." : "", p->pos + 1);
			return NULL;
		}
	}
	t = new_type(p, kind);
	if (t == NULL)
		return NULL;
	t->size = size;
	t->dynamic = (kind == K_BYTES || kind == K_STRING);
	p->pos += n;
	return t;
}

static int	parse_params(Parser *p, int depth, int event, int in_tuple,
						 AbiParam **params, size_t *nparams);

/*
 * Parses one type with its array suffixes.  "depth" counts the tuple and
 * array levels around it.
 */
static AbiType *
parse_type(Parser *p, int depth)
{
	AbiType    *t;
	size_t		n;

	skip_ws(p);
	n = ident_len(p);
	if (n == 5 && word_is(p, n, "tuple"))
	{
		size_t		save = p->pos;

		p->pos += n;
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != '(')
			p->pos = save;		/* let parse_elementary complain */
		n = p->pos == save ? n : 0;
	}
	if (n == 0 && p->pos < p->len && p->s[p->pos] == '(')
	{
		size_t		i;
		size_t		head = 0;
		int			all_named = 1;

		if (depth + 1 > LI_ABI_MAX_DEPTH)
		{
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: types nested deeper than %d levels",
					  LI_ABI_MAX_DEPTH);
			return NULL;
		}
		p->pos++;
		t = new_type(p, K_TUPLE);
		if (t == NULL)
			return NULL;
		if (parse_params(p, depth + 1, 0, 1, &t->comps, &t->count) != 0)
			return NULL;
		for (i = 0; i < t->count; i++)
		{
			AbiType    *c = t->comps[i].type;

			t->comps[i].headpos = head;
			head += c->dynamic ? 32 : c->head;
			if (c->dynamic)
				t->dynamic = 1;
			if (t->comps[i].name == NULL)
				all_named = 0;
			if (head > LI_ABI_MAX_STATIC)
			{
				set_error(p->err, LI_ABI_ESIGNATURE,
						  "invalid signature: static type larger than %zu bytes",
						  LI_ABI_MAX_STATIC);
				return NULL;
			}
		}
		for (i = 0; i < t->count; i++)
			if (t->comps[i].type->height + 1 > t->height)
				t->height = t->comps[i].type->height + 1;
		if (t->height > LI_ABI_MAX_DEPTH)
		{
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: types nested deeper than %d levels",
					  LI_ABI_MAX_DEPTH);
			return NULL;
		}
		t->as_object = all_named;
		t->heads = head;
		t->head = t->dynamic ? 32 : head;
	}
	else if (n > 0)
	{
		t = parse_elementary(p, n);
		if (t == NULL)
			return NULL;
	}
	else
	{
		parse_fail(p, "expected a type");
		return NULL;
	}

	/* array suffixes: T[k], T[], in any number */
	for (;;)
	{
		AbiType    *a;
		size_t		k = 0;
		int			fixed;

		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != '[')
			break;
		p->pos++;
		skip_ws(p);
		fixed = parse_small_uint(p, &k) == 0;
		if (p->err->status != LI_ABI_OK)
			return NULL;
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != ']')
		{
			parse_fail(p, "expected \"]\"");
			return NULL;
		}
		if (fixed && k == 0)
		{
			parse_fail(p, "fixed array of length 0");
			return NULL;
		}
		p->pos++;
		if (t->height + 1 > LI_ABI_MAX_DEPTH)
		{
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: types nested deeper than %d levels",
					  LI_ABI_MAX_DEPTH);
			return NULL;
		}
		a = new_type(p, fixed ? K_FARRAY : K_DARRAY);
		if (a == NULL)
			return NULL;
		a->elem = t;
		a->height = t->height + 1;
		if (fixed)
		{
			a->count = k;
			a->dynamic = t->dynamic;
			if (!t->dynamic)
			{
				if (k > LI_ABI_MAX_STATIC / t->head)
				{
					set_error(p->err, LI_ABI_ESIGNATURE,
							  "invalid signature: static type larger than %zu bytes",
							  LI_ABI_MAX_STATIC);
					return NULL;
				}
				a->head = k * t->head;
			}
		}
		else
			a->dynamic = 1;
		t = a;
	}
	return t;
}

/*
 * Parses "param, param, ..." up to ")" (in_tuple: consumes it) or the end
 * of input.  event: top-level event arguments, which may be "indexed".
 */
static int
parse_params(Parser *p, int depth, int event, int in_tuple,
			 AbiParam **params, size_t *nparams)
{
	size_t		n = 0;
	size_t		cap = 0;
	AbiParam   *list = NULL;

	skip_ws(p);
	if (in_tuple && p->pos < p->len && p->s[p->pos] == ')')
	{
		if (!event)
			return parse_fail(p, "empty tuple");
		p->pos++;
		*params = NULL;
		*nparams = 0;
		return 0;
	}
	if (!in_tuple && p->pos >= p->len)
	{
		*params = NULL;
		*nparams = 0;
		return 0;
	}
	for (;;)
	{
		AbiParam	prm;
		size_t		len;

		memset(&prm, 0, sizeof(prm));
		prm.type = parse_type(p, depth);
		if (prm.type == NULL)
			return -1;
		if (++p->nodes > LI_ABI_MAX_NODES)
		{
			set_error(p->err, LI_ABI_ESIGNATURE,
					  "invalid signature: more than %d types and parameters",
					  LI_ABI_MAX_NODES);
			return -1;
		}
		/* modifiers and name: [indexed | memory | calldata | storage]* [name] */
		for (;;)
		{
			skip_ws(p);
			len = ident_len(p);
			if (len == 0)
				break;
			if (event && word_is(p, len, "indexed") && !prm.indexed && prm.name == NULL)
				prm.indexed = 1;
			else if ((word_is(p, len, "memory") || word_is(p, len, "calldata") ||
					  word_is(p, len, "storage")) && prm.name == NULL)
			{
				/* a Solidity data location: not part of the type */
			}
			else if (prm.name == NULL)
			{
				char	   *name = arena_alloc(p->desc, len + 1);
				char	   *key = arena_alloc(p->desc, len + 4);

				if (name == NULL || key == NULL)
					return oom(p);
				memcpy(name, p->s + p->pos, len);
				key[0] = '"';
				memcpy(key + 1, p->s + p->pos, len);
				key[len + 1] = '"';
				key[len + 2] = ':';
				prm.name = name;
				prm.key = key;
				prm.keylen = len + 3;
			}
			else
				return parse_fail(p, "expected \",\" or \")\"");
			p->pos += len;
		}
		/* append */
		if (n == cap)
		{
			AbiParam   *nl;

			cap = cap ? cap * 2 : 4;
			nl = arena_alloc(p->desc, cap * sizeof(AbiParam));
			if (nl == NULL)
				return oom(p);
			if (n > 0)
				memcpy(nl, list, n * sizeof(AbiParam));
			list = nl;
		}
		list[n++] = prm;

		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',')
		{
			p->pos++;
			continue;
		}
		if (in_tuple)
		{
			if (p->pos < p->len && p->s[p->pos] == ')')
			{
				p->pos++;
				break;
			}
			return parse_fail(p, "expected \",\" or \")\"");
		}
		if (p->pos >= p->len)
			break;
		return parse_fail(p, "expected \",\"");
	}
	*params = list;
	*nparams = n;
	return 0;
}

/* names must be unique within one tuple or argument list */
static int
check_unique(Parser *p, const AbiParam *params, size_t n)
{
	size_t		i,
				j;

	/* quadratic, but n is bounded by LI_ABI_MAX_NODES and usually tiny */
	for (i = 0; i < n; i++)
	{
		if (params[i].name == NULL)
			continue;
		for (j = 0; j < i; j++)
			if (params[j].name != NULL && strcmp(params[i].name, params[j].name) == 0)
			{
				set_error(p->err, LI_ABI_ESIGNATURE,
						  "invalid signature: duplicate argument name \"%.100s\"",
						  params[i].name);
				return -1;
			}
	}
	return 0;
}

static int
check_unique_tree(Parser *p, const AbiType *t)
{
	size_t		i;

	while (t->kind == K_FARRAY || t->kind == K_DARRAY)
		t = t->elem;
	if (t->kind != K_TUPLE)
		return 0;
	if (check_unique(p, t->comps, t->count) != 0)
		return -1;
	for (i = 0; i < t->count; i++)
		if (check_unique_tree(p, t->comps[i].type) != 0)
			return -1;
	return 0;
}

/* appends the canonical form of t */
static LiAbiStatus
canon_type(LiAbiBuf *b, const AbiType *t)
{
	char		tmp[24];
	const char *s = tmp;
	LiAbiStatus st;
	size_t		n;
	size_t		i;

	tmp[0] = '\0';
	switch (t->kind)
	{
		case K_UINT:
			snprintf(tmp, sizeof(tmp), "uint%u", t->size);
			break;
		case K_INT:
			snprintf(tmp, sizeof(tmp), "int%u", t->size);
			break;
		case K_ADDRESS:
			s = "address";
			break;
		case K_BOOL:
			s = "bool";
			break;
		case K_FIXEDBYTES:
			snprintf(tmp, sizeof(tmp), "bytes%u", t->size);
			break;
		case K_BYTES:
			s = "bytes";
			break;
		case K_STRING:
			s = "string";
			break;
		case K_FARRAY:
		case K_DARRAY:
			st = canon_type(b, t->elem);
			if (st != LI_ABI_OK)
				return st;
			if (t->kind == K_FARRAY)
				snprintf(tmp, sizeof(tmp), "[%zu]", t->count);
			else
				s = "[]";
			break;
		case K_TUPLE:
			if ((st = li_abi_buf_grow(b, 1)) != LI_ABI_OK)
				return st;
			b->data[b->len++] = '(';
			for (i = 0; i < t->count; i++)
			{
				if (i > 0)
				{
					if ((st = li_abi_buf_grow(b, 1)) != LI_ABI_OK)
						return st;
					b->data[b->len++] = ',';
				}
				if ((st = canon_type(b, t->comps[i].type)) != LI_ABI_OK)
					return st;
			}
			s = ")";
			break;
	}
	n = strlen(s);
	if ((st = li_abi_buf_grow(b, n)) != LI_ABI_OK)
		return st;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return LI_ABI_OK;
}

/* common tail of both compile functions: names, canonical form, topic0 */
static LiAbiDesc *
finish_compile(Parser *p, const char *name, size_t namelen)
{
	LiAbiDesc  *d = p->desc;
	LiAbiBuf	b;
	size_t		i;
	size_t		head = 0;

	memset(&b, 0, sizeof(b));
	b.max = (size_t) 1 << 24;

	/* generated names "arg<i>" and JSON keys of the top-level arguments */
	for (i = 0; i < d->nparams; i++)
	{
		AbiParam   *prm = &d->params[i];

		if (prm->name == NULL)
		{
			char		gen[32];
			char	   *name2;
			char	   *key;
			size_t		len;

			snprintf(gen, sizeof(gen), "arg%zu", i);
			len = strlen(gen);
			name2 = arena_alloc(d, len + 1);
			key = arena_alloc(d, len + 4);
			if (name2 == NULL || key == NULL)
				goto nomem;
			memcpy(name2, gen, len);
			key[0] = '"';
			memcpy(key + 1, gen, len);
			key[len + 1] = '"';
			key[len + 2] = ':';
			prm->name = name2;
			prm->key = key;
			prm->keylen = len + 3;
		}
		if (prm->indexed)
			d->nindexed++;
		else
		{
			/* head position within the data (the non-indexed tuple) */
			prm->headpos = head;
			head += prm->type->head;
			if (head > LI_ABI_MAX_STATIC)
			{
				set_error(p->err, LI_ABI_ESIGNATURE,
						  "invalid signature: static type larger than %zu bytes",
						  LI_ABI_MAX_STATIC);
				goto fail;
			}
		}
		if (check_unique_tree(p, prm->type) != 0)
			goto fail;
	}
	if (check_unique(p, d->params, d->nparams) != 0)
		goto fail;
	if (d->is_event && d->nindexed + (d->anonymous ? 0 : 1) > 4)
	{
		set_error(p->err, LI_ABI_ESIGNATURE,
				  "invalid signature: %d indexed arguments, at most %d allowed",
				  d->nindexed, d->anonymous ? 4 : 3);
		goto fail;
	}

	/* canonical signature */
	if (namelen > 0)
	{
		if (li_abi_buf_grow(&b, namelen + 1) != LI_ABI_OK)
			goto nomem;
		memcpy(b.data, name, namelen);
		b.len = namelen;
		b.data[b.len++] = '(';
	}
	for (i = 0; i < d->nparams; i++)
	{
		if (i > 0)
		{
			if (li_abi_buf_grow(&b, 1) != LI_ABI_OK)
				goto nomem;
			b.data[b.len++] = ',';
		}
		if (canon_type(&b, d->params[i].type) != LI_ABI_OK)
			goto nomem;
	}
	if (li_abi_buf_grow(&b, 1) != LI_ABI_OK)
		goto nomem;
	if (namelen > 0)
		b.data[b.len++] = ')';
	b.data[b.len] = '\0';
	d->signature = arena_alloc(d, b.len + 1);
	if (d->signature == NULL)
		goto nomem;
	memcpy(d->signature, b.data, b.len + 1);
	if (d->is_event)
		li_keccak256((const unsigned char *) b.data, b.len, d->topic0);
	li_abi_buf_free(&b);
	return d;

nomem:
	set_error(p->err, LI_ABI_ENOMEM, "out of memory");
fail:
	li_abi_buf_free(&b);
	li_abi_core_free(d);
	return NULL;
}

static LiAbiDesc *
start_compile(Parser *p, const char *s, size_t len, LiAbiError *err)
{
	memset(p, 0, sizeof(*p));
	memset(err, 0, sizeof(*err));
	p->s = s;
	p->len = len;
	p->err = err;
	if (len > LI_ABI_MAX_SIGNATURE)
	{
		set_error(err, LI_ABI_ESIGNATURE,
				  "invalid signature: longer than %d bytes", LI_ABI_MAX_SIGNATURE);
		return NULL;
	}
	p->desc = calloc(1, sizeof(LiAbiDesc));
	if (p->desc == NULL)
		set_error(err, LI_ABI_ENOMEM, "out of memory");
	return p->desc;
}

/* li_abi_core_compile_event: see abi_core.h */
LiAbiDesc *
li_abi_core_compile_event(const char *sig, size_t len, LiAbiError *err)
{
	Parser		p;
	size_t		n;
	size_t		name_pos;
	size_t		name_len;

	if (start_compile(&p, sig, len, err) == NULL)
		return NULL;
	p.desc->is_event = 1;

	skip_ws(&p);
	n = ident_len(&p);
	if (n == 5 && word_is(&p, n, "event"))
	{
		size_t		save = p.pos;

		p.pos += n;
		skip_ws(&p);
		if (ident_len(&p) == 0 || p.pos == save + n)
			p.pos = save;		/* "event" is the event's name */
		n = ident_len(&p);
	}
	if (n == 0)
	{
		parse_fail(&p, "expected an event name");
		goto fail;
	}
	name_pos = p.pos;
	name_len = n;
	p.pos += n;
	skip_ws(&p);
	if (p.pos >= p.len || p.s[p.pos] != '(')
	{
		parse_fail(&p, "expected \"(\"");
		goto fail;
	}
	p.pos++;
	if (parse_params(&p, 0, 1, 1, &p.desc->params, &p.desc->nparams) != 0)
		goto fail;
	skip_ws(&p);
	n = ident_len(&p);
	if (n == 9 && word_is(&p, n, "anonymous"))
	{
		p.desc->anonymous = 1;
		p.pos += n;
		skip_ws(&p);
	}
	if (p.pos < p.len && p.s[p.pos] == ';')
	{
		p.pos++;
		skip_ws(&p);
	}
	if (p.pos < p.len)
	{
		parse_fail(&p, "unexpected text after the argument list");
		goto fail;
	}
	return finish_compile(&p, sig + name_pos, name_len);

fail:
	li_abi_core_free(p.desc);
	return NULL;
}

/* li_abi_core_compile_types: see abi_core.h */
LiAbiDesc *
li_abi_core_compile_types(const char *types, size_t len, LiAbiError *err)
{
	Parser		p;

	if (start_compile(&p, types, len, err) == NULL)
		return NULL;
	skip_ws(&p);
	if (parse_params(&p, 0, 0, 0, &p.desc->params, &p.desc->nparams) != 0)
	{
		li_abi_core_free(p.desc);
		return NULL;
	}
	return finish_compile(&p, NULL, 0);
}

/* li_abi_core_signature: see abi_core.h */
const char *
li_abi_core_signature(const LiAbiDesc *desc)
{
	return desc->signature;
}

/* li_abi_core_topic0: see abi_core.h */
void
li_abi_core_topic0(const LiAbiDesc *desc, unsigned char out[32])
{
	memcpy(out, desc->topic0, 32);
}

/* li_abi_core_anonymous: see abi_core.h */
int
li_abi_core_anonymous(const LiAbiDesc *desc)
{
	return desc->anonymous;
}

/* li_abi_core_ntopics: see abi_core.h */
int
li_abi_core_ntopics(const LiAbiDesc *desc)
{
	return desc->nindexed + (desc->anonymous ? 0 : 1);
}

/* ----------------------------------------------------------------
 * Decoding
 * ----------------------------------------------------------------
 */
typedef struct PathElem
{
	const char *name;			/* argument or component name, or NULL */
	size_t		index;			/* array index or unnamed component */
} PathElem;

typedef struct Decoder
{
	const unsigned char *buf;
	size_t		len;
	LiAbiBuf   *out;
	LiAbiError *err;
	int			topic;			/* decoding topic[topic] (0: data) */
	int			depth;
	PathElem	path[LI_ABI_MAX_DEPTH + 2];
} Decoder;

static const char hexdigits[] = "0123456789abcdef";

/* Reports an error at the current path; returns -1. */
static int	dec_fail(Decoder *d, LiAbiStatus status, const char *fmt,...)
			LI_ABI_PRINTF(3, 4);

static int
dec_fail(Decoder *d, LiAbiStatus status, const char *fmt,...)
{
	char		path[160];
	char		msg[200];
	size_t		pl = 0;
	int			i;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	path[0] = '\0';
	for (i = 0; i < d->depth && pl < sizeof(path) - 1; i++)
	{
		int			w;

		if (d->path[i].name != NULL)
			w = snprintf(path + pl, sizeof(path) - pl, "%s%s",
						 i > 0 ? "." : "", d->path[i].name);
		else
			w = snprintf(path + pl, sizeof(path) - pl, "[%zu]", d->path[i].index);
		if (w < 0)
			break;
		pl += (size_t) w;
	}
	if (pl >= sizeof(path) - 1)
		strcpy(path + sizeof(path) - 4, "...");
	if (d->topic > 0)
		set_error(d->err, status, "argument \"%s\" (topic %d): %s", path, d->topic, msg);
	else
		set_error(d->err, status, "argument \"%s\": %s", path, msg);
	return -1;
}

static int
out_fail(Decoder *d, LiAbiStatus st)
{
	if (st == LI_ABI_ENOMEM)
		return dec_fail(d, st, "out of memory");
	return dec_fail(d, st, "decoded value longer than %zu bytes",
					d->out->max ? d->out->max : LI_ABI_DEFAULT_MAX_OUTPUT);
}

/* reserve n bytes of output; 0 or -1 with the error set */
#define RESERVE(d, n) \
	do { \
		LiAbiStatus st_ = li_abi_buf_grow((d)->out, (n)); \
		if (st_ != LI_ABI_OK) \
			return out_fail((d), st_); \
	} while (0)

static int
out_char(Decoder *d, char c)
{
	if (d->out == NULL)
		return 0;				/* validating only */
	RESERVE(d, 1);
	d->out->data[d->out->len++] = c;
	return 0;
}

static int
out_mem(Decoder *d, const char *s, size_t n)
{
	if (d->out == NULL)
		return 0;
	RESERVE(d, n);
	memcpy(d->out->data + d->out->len, s, n);
	d->out->len += n;
	return 0;
}

/* "0x..." hex string of n bytes */
static int
out_hex(Decoder *d, const unsigned char *p, size_t n)
{
	char	   *o;
	size_t		i;

	if (d->out == NULL)
		return 0;
	if (n > (SIZE_MAX - 4) / 2)
		return out_fail(d, LI_ABI_ELIMIT);
	RESERVE(d, 2 * n + 4);
	o = d->out->data + d->out->len;
	*o++ = '"';
	*o++ = '0';
	*o++ = 'x';
	for (i = 0; i < n; i++)
	{
		*o++ = hexdigits[p[i] >> 4];
		*o++ = hexdigits[p[i] & 15];
	}
	*o++ = '"';
	d->out->len = (size_t) (o - d->out->data);
	return 0;
}

/* li_abi_decimal: see abi_core.h */
size_t
li_abi_decimal(const unsigned char *w, int neg, char *out)
{
	char		tmp[LI_ABI_DECIMAL_MAX];
	char	   *end = tmp + sizeof(tmp);
	char	   *p = end;
	int			i;

	for (i = 0; i < 24; i++)
		if (w[i] != 0)
			break;
	if (i == 24)
	{
		/* fits 64 bits: the common case */
		uint64_t	v = 0;

		for (i = 24; i < 32; i++)
			v = (v << 8) | w[i];
		do
		{
			*--p = (char) ('0' + v % 10);
			v /= 10;
		} while (v != 0);
	}
	else
	{
		uint32_t	limb[8];
		int			first = 0;

		for (i = 0; i < 8; i++)
			limb[i] = ((uint32_t) w[4 * i] << 24) | ((uint32_t) w[4 * i + 1] << 16) |
				((uint32_t) w[4 * i + 2] << 8) | (uint32_t) w[4 * i + 3];
		while (first < 8 && limb[first] == 0)
			first++;
		while (first < 8)
		{
			uint64_t	rem = 0;
			int			k;

			for (i = first; i < 8; i++)
			{
				uint64_t	cur = (rem << 32) | limb[i];

				limb[i] = (uint32_t) (cur / 1000000000u);
				rem = cur % 1000000000u;
			}
			while (first < 8 && limb[first] == 0)
				first++;
			if (first < 8)
			{
				for (k = 0; k < 9; k++)
				{
					*--p = (char) ('0' + rem % 10);
					rem /= 10;
				}
			}
			else
			{
				do
				{
					*--p = (char) ('0' + rem % 10);
					rem /= 10;
				} while (rem != 0);
			}
		}
	}
	if (neg)
		*--p = '-';
	memcpy(out, p, (size_t) (end - p));
	out[end - p] = '\0';
	return (size_t) (end - p);
}

/*
 * Writes the 256-bit big-endian unsigned integer w in decimal (negated when
 * neg).
 */
static int
out_u256(Decoder *d, const unsigned char *w, int neg)
{
	char		dec[LI_ABI_DECIMAL_MAX];

	if (d->out == NULL)
		return 0;
	return out_mem(d, dec, li_abi_decimal(w, neg, dec));
}

/* Validates and writes one value-type word (uintN, intN, address, bool, bytesN). */
static int
dec_word(Decoder *d, const AbiType *t, const unsigned char *w)
{
	size_t		i;
	size_t		nb;

	switch (t->kind)
	{
		case K_UINT:
			nb = t->size / 8;
			for (i = 0; i < 32 - nb; i++)
				if (w[i] != 0)
					return dec_fail(d, LI_ABI_EDATA, "value out of range for uint%u", t->size);
			return out_u256(d, w, 0);
		case K_INT:
			{
				unsigned char ext;
				unsigned char mag[32];
				int			carry = 1;

				nb = t->size / 8;
				ext = (w[32 - nb] & 0x80) ? 0xff : 0x00;
				for (i = 0; i < 32 - nb; i++)
					if (w[i] != ext)
						return dec_fail(d, LI_ABI_EDATA,
										"value out of range for int%u (not sign-extended)",
										t->size);
				if (ext == 0)
					return out_u256(d, w, 0);
				/* magnitude of a negative number: ~w + 1 */
				for (i = 32; i-- > 0;)
				{
					unsigned	v = (unsigned) (unsigned char) ~w[i] + (unsigned) carry;

					mag[i] = (unsigned char) v;
					carry = v > 0xff;
				}
				return out_u256(d, mag, 1);
			}
		case K_ADDRESS:
			for (i = 0; i < 12; i++)
				if (w[i] != 0)
					return dec_fail(d, LI_ABI_EDATA, "non-zero high bytes in address");
			return out_hex(d, w + 12, 20);
		case K_BOOL:
			for (i = 0; i < 31; i++)
				if (w[i] != 0)
					break;
			if (i < 31 || w[31] > 1)
				return dec_fail(d, LI_ABI_EDATA, "invalid bool (not 0 or 1)");
			return w[31] ? out_mem(d, "true", 4) : out_mem(d, "false", 5);
		case K_FIXEDBYTES:
			for (i = t->size; i < 32; i++)
				if (w[i] != 0)
					return dec_fail(d, LI_ABI_EDATA, "non-zero padding after bytes%u", t->size);
			return out_hex(d, w, t->size);
		default:
			break;
	}
	return dec_fail(d, LI_ABI_EDATA, "internal error: not a value type");
}

/*
 * Reads a length or offset word at pos (pos + 32 <= len checked by the
 * caller); rejects values of 2^64 and more, and values beyond size_t.
 */
static int
read_size(Decoder *d, size_t pos, const char *what, size_t *out)
{
	const unsigned char *w = d->buf + pos;
	uint64_t	v = 0;
	int			i;

	for (i = 0; i < 24; i++)
		if (w[i] != 0)
			return dec_fail(d, LI_ABI_EDATA, "%s at byte %zu too large", what, pos);
	for (i = 24; i < 32; i++)
		v = (v << 8) | w[i];
#if SIZE_MAX < UINT64_MAX
	if (v > (uint64_t) SIZE_MAX)
		return dec_fail(d, LI_ABI_EDATA, "%s at byte %zu too large", what, pos);
#endif
	*out = (size_t) v;
	return 0;
}

/* checks that n bytes are available at pos */
static int
need(Decoder *d, size_t pos, size_t n)
{
	if (pos > d->len || n > d->len - pos)
		return dec_fail(d, LI_ABI_EDATA,
						"data too short (need %zu bytes at byte %zu, have %zu)",
						n, pos, pos > d->len ? (size_t) 0 : d->len - pos);
	return 0;
}

/*
 * Length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF) starting at s[0] with n bytes left, or 0.
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
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
			lo = 0xa0;			/* overlong */
		else if (c == 0xed)
			hi = 0x9f;			/* surrogates */
	}
	else if (c >= 0xf0 && c <= 0xf4)
	{
		extra = 3;
		if (c == 0xf0)
			lo = 0x90;			/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;			/* beyond U+10FFFF */
	}
	else
		return 0;
	if (extra > n - 1 || s[1] < lo || s[1] > hi)
		return 0;
	for (k = 2; k <= extra; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return extra + 1;
}

/*
 * Validates string contents (UTF-8, no NUL) and writes them as a JSON
 * string: one pass to validate and measure, one to write.
 */
static int
out_string(Decoder *d, const unsigned char *s, size_t n)
{
	char	   *o;
	size_t		i;
	size_t		outlen = 2;
	size_t		k;

	for (i = 0; i < n;)
	{
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x80)
		{
			outlen += (c == '"' || c == '\\') ? 2 : 1;
			i++;
		}
		else if (c < 0x20)
		{
			if (c == 0)
				return dec_fail(d, LI_ABI_EDATA, "NUL byte in string at byte %zu", i);
			outlen += (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') ? 2 : 6;
			i++;
		}
		else
		{
			k = utf8_seq_len(s + i, n - i);
			if (k == 0)
				return dec_fail(d, LI_ABI_EDATA, "invalid UTF-8 in string at byte %zu", i);
			outlen += k;
			i += k;
		}
	}
	if (d->out == NULL)
		return 0;
	RESERVE(d, outlen);
	o = d->out->data + d->out->len;
	*o++ = '"';
	for (i = 0; i < n; i++)
	{
		unsigned char c = s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
		{
			*o++ = (char) c;	/* ASCII, or part of a validated sequence */
			continue;
		}
		*o++ = '\\';
		switch (c)
		{
			case '"':
				*o++ = '"';
				break;
			case '\\':
				*o++ = '\\';
				break;
			case '\n':
				*o++ = 'n';
				break;
			case '\r':
				*o++ = 'r';
				break;
			case '\t':
				*o++ = 't';
				break;
			case '\b':
				*o++ = 'b';
				break;
			case '\f':
				*o++ = 'f';
				break;
			default:
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hexdigits[c >> 4];
				*o++ = hexdigits[c & 15];
				break;
		}
	}
	*o++ = '"';
	d->out->len = (size_t) (o - d->out->data);
	return 0;
}

static int	dec_value(Decoder *d, const AbiType *t, size_t pos);

/*
 * Decodes the component of type t whose head is at base + headpos, base
 * being the start of the enclosing tuple's encoding (offsets count from
 * there).
 */
static int
dec_component(Decoder *d, const AbiType *t, size_t base, size_t headpos)
{
	size_t		pos;
	size_t		off;

	if (headpos > SIZE_MAX - base)
		return dec_fail(d, LI_ABI_EDATA, "data too short");
	pos = base + headpos;
	if (!t->dynamic)
		return dec_value(d, t, pos);
	if (need(d, pos, 32) != 0 || read_size(d, pos, "offset", &off) != 0)
		return -1;
	if (off > d->len - base)
		return dec_fail(d, LI_ABI_EDATA,
						"offset %zu at byte %zu points outside the data (%zu bytes)",
						off, pos, d->len);
	return dec_value(d, t, base + off);
}

/* Decodes count elements of the tuple-like sequence starting at base. */
static int
dec_elements(Decoder *d, const AbiType *elem, size_t base, size_t count)
{
	size_t		i;
	size_t		step = elem->dynamic ? 32 : elem->head;	/* >= 32 */
	int			slot;

	/* all heads must be there */
	if (base > d->len || count > (d->len - base) / step)
		return dec_fail(d, LI_ABI_EDATA,
						"data too short (%zu elements of %zu bytes at byte %zu, have %zu)",
						count, step, base, base > d->len ? (size_t) 0 : d->len - base);
	slot = d->depth++;
	if (out_char(d, '[') != 0)
		return -1;
	for (i = 0; i < count; i++)
	{
		d->path[slot].name = NULL;
		d->path[slot].index = i;
		if (i > 0 && out_char(d, ',') != 0)
			return -1;
		if (dec_component(d, elem, base, i * step) != 0)
			return -1;
	}
	d->depth--;
	return out_char(d, ']');
}

/* Decodes the value of type t whose encoding (tail, if dynamic) is at pos. */
static int
dec_value(Decoder *d, const AbiType *t, size_t pos)
{
	size_t		n;
	size_t		i;

	switch (t->kind)
	{
		case K_UINT:
		case K_INT:
		case K_ADDRESS:
		case K_BOOL:
		case K_FIXEDBYTES:
			if (need(d, pos, 32) != 0)
				return -1;
			return dec_word(d, t, d->buf + pos);

		case K_BYTES:
		case K_STRING:
			{
				size_t		padded;

				if (need(d, pos, 32) != 0 || read_size(d, pos, "length", &n) != 0)
					return -1;
				pos += 32;
				if (n > d->len - pos)
					return dec_fail(d, LI_ABI_EDATA,
									"length %zu at byte %zu exceeds the data (%zu bytes left)",
									n, pos - 32, d->len - pos);
				padded = n + ((32 - n % 32) % 32);
				if (padded > d->len - pos)
					return dec_fail(d, LI_ABI_EDATA,
									"data too short for the padding of %s (length %zu at byte %zu)",
									t->kind == K_STRING ? "string" : "bytes", n, pos - 32);
				for (i = n; i < padded; i++)
					if (d->buf[pos + i] != 0)
						return dec_fail(d, LI_ABI_EDATA, "non-zero padding after %s contents",
										t->kind == K_STRING ? "string" : "bytes");
				if (t->kind == K_STRING)
					return out_string(d, d->buf + pos, n);
				return out_hex(d, d->buf + pos, n);
			}

		case K_FARRAY:
			/* count * step <= LI_ABI_MAX_STATIC, checked at compile time */
			return dec_elements(d, t->elem, pos, t->count);

		case K_DARRAY:
			{
				size_t		step = t->elem->dynamic ? 32 : t->elem->head;

				if (need(d, pos, 32) != 0 || read_size(d, pos, "length", &n) != 0)
					return -1;
				pos += 32;
				/* step >= 32: there are no empty tuples */
				if (n > (d->len - pos) / step)
					return dec_fail(d, LI_ABI_EDATA,
									"array length %zu at byte %zu exceeds the data (%zu bytes left)",
									n, pos - 32, d->len - pos);
				return dec_elements(d, t->elem, pos, n);
			}

		case K_TUPLE:
			{
				int			slot;

				if (need(d, pos, t->heads) != 0)
					return -1;
				slot = d->depth++;
				if (out_char(d, t->as_object ? '{' : '[') != 0)
					return -1;
				for (i = 0; i < t->count; i++)
				{
					const AbiParam *c = &t->comps[i];

					d->path[slot].name = c->name;
					d->path[slot].index = i;
					if (i > 0 && out_char(d, ',') != 0)
						return -1;
					if (t->as_object && out_mem(d, c->key, c->keylen) != 0)
						return -1;
					if (dec_component(d, c->type, pos, c->headpos) != 0)
						return -1;
				}
				d->depth--;
				return out_char(d, t->as_object ? '}' : ']');
			}
	}
	return dec_fail(d, LI_ABI_EDATA, "internal error: unknown type");
}

/* shared by both decode entry points */
static LiAbiStatus
decode_params(const LiAbiDesc *desc, const unsigned char (*topics)[32],
			  const unsigned char *data, size_t len, LiAbiBuf *out, LiAbiError *err)
{
	Decoder		d;
	size_t		i;
	int			ti = desc->anonymous ? 0 : 1;
	static const unsigned char empty[1] = {0};

	d.buf = data != NULL ? data : empty;
	d.len = data != NULL ? len : 0;
	d.out = out;
	d.err = err;
	d.topic = 0;
	d.depth = 1;
	if (out != NULL)
		out->len = 0;
	if (out_char(&d, desc->is_event ? '{' : '[') != 0)
		return err->status;
	for (i = 0; i < desc->nparams; i++)
	{
		const AbiParam *prm = &desc->params[i];
		int			rc;

		d.path[0].name = prm->name;
		d.path[0].index = i;
		if (i > 0 && out_char(&d, ',') != 0)
			return err->status;
		if (desc->is_event && out_mem(&d, prm->key, prm->keylen) != 0)
			return err->status;
		if (prm->indexed)
		{
			AbiKind		k = prm->type->kind;

			d.topic = ti;
			if (k == K_UINT || k == K_INT || k == K_ADDRESS || k == K_BOOL ||
				k == K_FIXEDBYTES)
				rc = dec_word(&d, prm->type, topics[ti]);
			else
				rc = out_hex(&d, topics[ti], 32);	/* keccak of the value */
			d.topic = 0;
			ti++;
		}
		else
			rc = dec_component(&d, prm->type, 0, prm->headpos);
		if (rc != 0)
			return err->status;
	}
	if (out_char(&d, desc->is_event ? '}' : ']') != 0)
		return err->status;
	if (out != NULL)
		out->data[out->len] = '\0';
	return LI_ABI_OK;
}

/* li_abi_core_decode_event: see abi_core.h */
LiAbiStatus
li_abi_core_decode_event(const LiAbiDesc *desc,
						 const unsigned char (*topics)[32], int ntopics,
						 const unsigned char *data, size_t len,
						 LiAbiBuf *out, LiAbiError *err)
{
	int			expect = li_abi_core_ntopics(desc);

	memset(err, 0, sizeof(*err));
	if (!desc->is_event)
	{
		set_error(err, LI_ABI_ESIGNATURE, "not an event signature: %s", desc->signature);
		return err->status;
	}
	if (ntopics != expect || (ntopics > 0 && topics == NULL))
	{
		set_error(err, LI_ABI_EDATA,
				  "wrong number of topics for event %.150s: expected %d, got %d",
				  desc->signature, expect, ntopics);
		return err->status;
	}
	if (!desc->anonymous && memcmp(topics[0], desc->topic0, 32) != 0)
	{
		set_error(err, LI_ABI_EDATA,
				  "topic0 does not match event %.150s", desc->signature);
		return err->status;
	}
	return decode_params(desc, topics, data, len, out, err);
}

/* li_abi_core_decode: see abi_core.h */
LiAbiStatus
li_abi_core_decode(const LiAbiDesc *desc, const unsigned char *data, size_t len,
				   LiAbiBuf *out, LiAbiError *err)
{
	memset(err, 0, sizeof(*err));
	if (desc->is_event)
	{
		set_error(err, LI_ABI_ESIGNATURE, "not a type list: %s", desc->signature);
		return err->status;
	}
	return decode_params(desc, NULL, data, len, out, err);
}

/* li_abi_core_nparams: see abi_core.h */
size_t
li_abi_core_nparams(const LiAbiDesc *desc)
{
	return desc->nparams;
}

/* li_abi_core_param: see abi_core.h */
void
li_abi_core_param(const LiAbiDesc *desc, size_t i, LiAbiParamInfo *info)
{
	const AbiParam *prm = &desc->params[i];
	const AbiType *t = prm->type;

	info->name = prm->name;
	info->indexed = prm->indexed;
	info->bits = t->size;
	switch (t->kind)
	{
		case K_UINT:
			info->kind = LI_ABI_V_UINT;
			break;
		case K_INT:
			info->kind = LI_ABI_V_INT;
			break;
		case K_ADDRESS:
			info->kind = LI_ABI_V_ADDRESS;
			break;
		case K_BOOL:
			info->kind = LI_ABI_V_BOOL;
			break;
		case K_FIXEDBYTES:
			info->kind = LI_ABI_V_FIXEDBYTES;
			break;
		case K_BYTES:
			info->kind = prm->indexed ? LI_ABI_V_HASH : LI_ABI_V_BYTES;
			break;
		case K_STRING:
			info->kind = prm->indexed ? LI_ABI_V_HASH : LI_ABI_V_STRING;
			break;
		default:
			info->kind = prm->indexed ? LI_ABI_V_HASH : LI_ABI_V_COMPOSITE;
			break;
	}
}

/* li_abi_core_check_event: see abi_core.h */
LiAbiStatus
li_abi_core_check_event(const LiAbiDesc *desc, const unsigned char (*topics)[32], int ntopics,
						const unsigned char *data, size_t len, LiAbiError *err)
{
	return li_abi_core_decode_event(desc, topics, ntopics, data, len, NULL, err);
}

/* li_abi_core_value: see abi_core.h */
void
li_abi_core_value(const LiAbiDesc *desc, size_t i, const unsigned char (*topics)[32],
				  const unsigned char *data, LiAbiValue *v)
{
	const AbiParam *prm = &desc->params[i];

	if (prm->indexed)
	{
		int			ti = desc->anonymous ? 0 : 1;

		/* the topic of the i-th argument: count the indexed ones before it */
		for (size_t j = 0; j < i; j++)
			ti += desc->params[j].indexed;
		v->p = topics[ti];
		v->len = 32;
	}
	else if (prm->type->kind == K_BYTES || prm->type->kind == K_STRING)
	{
		/* head: offset; at the offset: length, then the contents (checked) */
		const unsigned char *w = data + prm->headpos;
		size_t		off = 0;
		size_t		n = 0;

		for (int k = 24; k < 32; k++)
			off = (off << 8) | w[k];
		for (int k = 24; k < 32; k++)
			n = (n << 8) | data[off + k];
		v->p = data + off + 32;
		v->len = n;
	}
	else
	{
		v->p = data + prm->headpos;
		v->len = 32;
	}
}
