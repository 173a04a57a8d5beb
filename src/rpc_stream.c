/*-------------------------------------------------------------------------
 *
 * rpc_stream.c
 *	  A JSON-RPC response whose result is an array of logs (eth_getLogs),
 *	  read element by element straight from the response text.
 *
 * The response of a dense eth_getLogs is tens of megabytes.  Building it
 * as jsonb (jsonb_in) and then walking the tree cost the worker more than
 * the node took to answer; here PostgreSQL's own JSON lexer (json_lex,
 * common/jsonapi.h, without de-escaping) reads the tokens, and each log is
 * handed to the caller as a LiRawLog whose strings point into the text,
 * then checked and converted (ledger.c) before the next is read.  Only
 * what the logs need is kept; the JSON grammar (RFC 8259) is checked here,
 * token by token.
 *
 * What this reader does not take on it leaves to the general path
 * (rpc_client.c: jsonb_in and the response checks), so that every error
 * keeps its message: a response with an "error" object, one whose result
 * is not an array, one that is not valid JSON before the result starts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "rpc_client.h"

typedef struct Stream
{
	JsonLexContext *lex;
	LiLogCallback cb;
	void	   *arg;
	int			nlogs;			/* logs passed to cb so far */
} Stream;

#define TOKEN(st) ((st)->lex->token_type)

/*
 * Is the current number token one numeric_in takes?  Only an exponent or
 * a long run of digits can overflow numeric ("1e999999"); jsonb_in refuses
 * those, so does this reader, read or not.
 */
static bool
number_ok(Stream *st)
{
	const char *s = st->lex->token_start;
	int			len = st->lex->token_terminator - s;
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	if (len < 1000 && memchr(s, 'e', len) == NULL && memchr(s, 'E', len) == NULL)
		return true;
	PG_TRY();
	{
		(void) DirectFunctionCall3(numeric_in, CStringGetDatum(pnstrdup(s, len)),
								   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
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
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * Move to the next token; false on a lexing error.  A string with escapes
 * is de-escaped here, read or not, so that one jsonb_in would refuse
 * ("\u0000", a lone surrogate) is refused here too.
 */
static bool
advance(Stream *st)
{
	const char *s;
	int			tlen;
	JsonLexContext *sub;

	if (json_lex(st->lex) != JSON_SUCCESS)
		return false;
	if (st->lex->token_type == JSON_TOKEN_NUMBER)
		return number_ok(st);
	if (st->lex->token_type != JSON_TOKEN_STRING)
		return true;
	s = st->lex->token_start;
	tlen = st->lex->token_terminator - s;
	if (memchr(s, '\\', tlen) == NULL)
		return true;
	sub = makeJsonLexContextCstringLen((char *) s, tlen, GetDatabaseEncoding(), true);
	return json_lex(sub) == JSON_SUCCESS;
}

/*
 * The current string token's value, without its quotes.  Escapes are
 * resolved (a second lexer with de-escaping, on that token alone) only when
 * the token has a backslash; otherwise the value points into the text.
 */
static const char *
token_string(Stream *st, int *len)
{
	const char *s = st->lex->token_start;
	int			tlen = st->lex->token_terminator - s;
	JsonLexContext *sub;

	if (memchr(s, '\\', tlen) == NULL)
	{
		*len = tlen - 2;
		return s + 1;
	}
	sub = makeJsonLexContextCstringLen((char *) s, tlen, GetDatabaseEncoding(), true);
	if (json_lex(sub) != JSON_SUCCESS || sub->strval == NULL)
		elog(ERROR, "could not de-escape a JSON string the lexer accepted");
	*len = sub->strval->len;
	return sub->strval->data;
}

/* the current scalar token as a jsonb value (as jsonb_in would make it) */
static void
token_value(Stream *st, JsonbValue *out)
{
	switch (TOKEN(st))
	{
		case JSON_TOKEN_STRING:
			out->type = jbvString;
			out->val.string.val = (char *) token_string(st, &out->val.string.len);
			break;
		case JSON_TOKEN_NUMBER:
			out->type = jbvNumeric;
			out->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																   CStringGetDatum(pnstrdup(st->lex->token_start,
																							st->lex->token_terminator - st->lex->token_start)),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			out->type = jbvBool;
			out->val.boolean = TOKEN(st) == JSON_TOKEN_TRUE;
			break;
		default:
			out->type = jbvNull;
			break;
	}
}

typedef bool (*MemberFn) (Stream *st, const char *key, int keylen, void *arg);
typedef bool (*ElementFn) (Stream *st, int i, void *arg);

static bool skip_value(Stream *st);

/*
 * The members of the object whose '{' is the current token: fn is called
 * at each value's first token and must leave its last token current.  On
 * return the '}' is current.  false on a grammar or lexing error.
 */
static bool
each_member(Stream *st, MemberFn fn, void *arg)
{
	if (!advance(st))
		return false;
	if (TOKEN(st) == JSON_TOKEN_OBJECT_END)
		return true;
	for (;;)
	{
		const char *key;
		int			keylen;

		if (TOKEN(st) != JSON_TOKEN_STRING)
			return false;
		key = token_string(st, &keylen);
		if (!advance(st) || TOKEN(st) != JSON_TOKEN_COLON || !advance(st))
			return false;
		if (!fn(st, key, keylen, arg) || !advance(st))
			return false;
		if (TOKEN(st) == JSON_TOKEN_OBJECT_END)
			return true;
		if (TOKEN(st) != JSON_TOKEN_COMMA || !advance(st))
			return false;
	}
}

/* each_member for the array whose '[' is the current token */
static bool
each_element(Stream *st, ElementFn fn, void *arg)
{
	if (!advance(st))
		return false;
	if (TOKEN(st) == JSON_TOKEN_ARRAY_END)
		return true;
	for (int i = 0;; i++)
	{
		if (!fn(st, i, arg) || !advance(st))
			return false;
		if (TOKEN(st) == JSON_TOKEN_ARRAY_END)
			return true;
		if (TOKEN(st) != JSON_TOKEN_COMMA || !advance(st))
			return false;
	}
}

static bool
skip_member(Stream *st, const char *key, int keylen, void *arg)
{
	return skip_value(st);
}

static bool
skip_element(Stream *st, int i, void *arg)
{
	return skip_value(st);
}

/* pass over the value whose first token is current, leaving its last */
static bool
skip_value(Stream *st)
{
	check_stack_depth();
	switch (TOKEN(st))
	{
		case JSON_TOKEN_OBJECT_START:
			return each_member(st, skip_member, NULL);
		case JSON_TOKEN_ARRAY_START:
			return each_element(st, skip_element, NULL);
		case JSON_TOKEN_STRING:
		case JSON_TOKEN_NUMBER:
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
		case JSON_TOKEN_NULL:
			return true;
		default:
			return false;
	}
}

/*
 * A value as a raw log value: a scalar as its jsonb value, a container as
 * its kind only (passed over).
 */
static bool
raw_value(Stream *st, JsonbValue *out)
{
	if (TOKEN(st) == JSON_TOKEN_OBJECT_START || TOKEN(st) == JSON_TOKEN_ARRAY_START)
	{
		out->type = TOKEN(st) == JSON_TOKEN_OBJECT_START ? jbvObject : jbvArray;
		return skip_value(st);
	}
	token_value(st, out);
	return true;
}

static bool
topic_element(Stream *st, int i, void *arg)
{
	LiRawLog   *raw = arg;

	raw->ntopics = i + 1;
	if (i < LI_MAX_TOPICS)
		return raw_value(st, &raw->topics[i]);
	return skip_value(st);
}

static bool
log_member(Stream *st, const char *key, int keylen, void *arg)
{
	LiRawLog   *raw = arg;

	for (int k = 0; k < LI_LOG_NKEYS; k++)
	{
		const char *name = li_log_key_name((LiLogKey) k);

		if (strncmp(name, key, keylen) != 0 || name[keylen] != '\0')
			continue;
		raw->present[k] = true;
		if (k == LI_LOG_TOPICS && TOKEN(st) == JSON_TOKEN_ARRAY_START)
		{
			/* a key given twice keeps its last value, as in jsonb */
			raw->vals[k].type = jbvArray;
			raw->ntopics = 0;
			return each_element(st, topic_element, raw);
		}
		return raw_value(st, &raw->vals[k]);
	}
	return skip_value(st);
}

/* one element of the result array: to the caller as a raw log */
static bool
log_element(Stream *st, int i, void *arg)
{
	LiRawLog	raw;

	CHECK_FOR_INTERRUPTS();
	memset(raw.present, 0, sizeof(raw.present));
	raw.ntopics = 0;
	raw.is_object = TOKEN(st) == JSON_TOKEN_OBJECT_START;
	if (raw.is_object ? !each_member(st, log_member, &raw) : !skip_value(st))
		return false;
	st->cb(st->arg, &raw, i);
	st->nlogs++;
	return true;
}

typedef struct Response
{
	bool		has_id;
	JsonbValue	id;
	bool		streamed;		/* the result array went to the callback */
	bool		other_result;	/* a result that is not an array */
	bool		has_error;		/* a non-null "error" */
	bool		duplicate;		/* "result" or "error" twice */
} Response;

static bool
response_member(Stream *st, const char *key, int keylen, void *arg)
{
	Response   *r = arg;

	if (keylen == 2 && memcmp(key, "id", 2) == 0 &&
		TOKEN(st) != JSON_TOKEN_OBJECT_START && TOKEN(st) != JSON_TOKEN_ARRAY_START)
	{
		r->has_id = true;
		token_value(st, &r->id);
		if (r->id.type == jbvString)	/* the text will be reused */
			r->id.val.string.val = pnstrdup(r->id.val.string.val, r->id.val.string.len);
		return true;
	}
	if (keylen == 6 && memcmp(key, "result", 6) == 0)
	{
		r->duplicate |= r->streamed || r->other_result;
		if (TOKEN(st) != JSON_TOKEN_ARRAY_START || r->has_error || r->duplicate)
		{
			r->other_result = true;
			return skip_value(st);
		}
		r->streamed = true;
		return each_element(st, log_element, NULL);
	}
	if (keylen == 5 && memcmp(key, "error", 5) == 0 && TOKEN(st) != JSON_TOKEN_NULL)
	{
		r->duplicate |= r->has_error;
		r->has_error = true;
	}
	return skip_value(st);
}

/*
 * li_stream_logs_response -- read the JSON-RPC response text[0..len) for
 * request id, passing each element of its "result" array to cb(arg, log,
 * i) as it is read (a non-object element as a raw log with is_object
 * false).  Returns
 *	LI_STREAM_DONE: a valid response with id and an array result, all of
 *	  it passed to cb;
 *	LI_STREAM_ELSEWHERE: nothing was passed to cb; the response is for the
 *	  general path (an "error" object, a result that is not an array, no
 *	  result, not valid JSON);
 *	LI_STREAM_INVALID: elements were passed, then the text turned out not
 *	  to be valid JSON;
 *	LI_STREAM_BAD_ID: the id is missing or another;
 *	LI_STREAM_BAD_SHAPE: "result" twice, or with an "error" too.
 */
LiStreamResult
li_stream_logs_response(const char *text, size_t len, int64 id,
						LiLogCallback cb, void *arg)
{
	Stream		st;
	Response	r = {0};
	int64		got;
	bool		ok;

	if (len > PG_INT32_MAX)
		return LI_STREAM_ELSEWHERE;
	st.lex = makeJsonLexContextCstringLen((char *) text, (int) len, GetDatabaseEncoding(), false);
	st.cb = cb;
	st.arg = arg;
	st.nlogs = 0;
	ok = advance(&st) && TOKEN(&st) == JSON_TOKEN_OBJECT_START;
	/* log_element reaches the callback through st */
	ok = ok && each_member(&st, response_member, &r);
	ok = ok && advance(&st) && TOKEN(&st) == JSON_TOKEN_END;
	if (!r.streamed)
		return LI_STREAM_ELSEWHERE;
	if (!ok)
		return st.nlogs == 0 ? LI_STREAM_ELSEWHERE : LI_STREAM_INVALID;
	if (r.duplicate || r.has_error || r.other_result)
		return LI_STREAM_BAD_SHAPE;
	if (!r.has_id || !li_quantity_from_jsonb(&r.id, &got) || got != id)
		return LI_STREAM_BAD_ID;
	return LI_STREAM_DONE;
}
