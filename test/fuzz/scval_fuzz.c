/*-------------------------------------------------------------------------
 *
 * scval_fuzz.c
 *	  libFuzzer target over the Stellar decoders: ScVal, strkeys
 *	  (src/scval_core.c, with src/abi_core.c for its output buffer), ledger
 *	  headers and event ids (src/stellar_core.c).
 *
 * Input: one mode byte, then the payload.
 *	'S'   the payload is a strkey: decoded; when it decodes, encoding the
 *		  payload again must give the same text
 *	'H'   the payload is a ledger header's XDR: parsed
 *	'I'   the payload is an event id: read; when it reads, writing the
 *		  position again must give the same text
 *	other the payload is the XDR of one ScVal: decoded in both forms
 *
 * Checks, besides the sanitizers: the two forms accept and refuse the same
 * inputs (the same error); a successful decode is one JSON value (balanced
 * brackets, NUL-terminated, no raw control characters in strings); nothing
 * leaks.
 *
 * Build (see run-scval.sh):
 *	clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -I src \
 *		test/fuzz/scval_fuzz.c src/scval_core.c src/stellar_core.c \
 *		src/abi_core.c src/keccak.c -lnettle
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scval_core.h"
#include "stellar_core.h"
#include "fuzz_json.h"

int			LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

static LiAbiBuf out = {NULL, 0, 0, 1 << 20};

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	LiAbiError	err;
	LiAbiError	err2;
	LiAbiStatus st;
	LiAbiStatus st2;

	if (size < 1)
		return 0;
	if (in[0] == 'S')
	{
		unsigned char payload[LI_STRKEY_MAX_PAYLOAD];
		char		again[LI_STRKEY_MAX_LEN + 1];
		size_t		n;
		char		kind;

		if (li_strkey_decode((const char *) in + 1, size - 1, &kind, payload, &n, &err) != LI_ABI_OK)
			return 0;
		if (li_strkey_encode(kind, payload, n, again, &err) != size - 1 ||
			memcmp(again, in + 1, size - 1) != 0)
			abort();
		return 0;
	}
	if (in[0] == 'H')
	{
		LiStellarHeader h;

		(void) li_stellar_parse_header(in + 1, size - 1, &h, &err);
		return 0;
	}
	if (in[0] == 'I')
	{
		int64_t		ledger;
		int32_t		tx,
					ev;
		char		again[LI_STELLAR_EVENT_ID_LEN + 1];

		if (li_stellar_event_position((const char *) in + 1, size - 1, &ledger, &tx, &ev, &err) < 0)
			return 0;
		/* a TOID over 2^63 - 1 is refused, so the ledger fits 31 bits */
		if (li_stellar_event_id(ledger, tx, ev, again, &err) < 0 ||
			memcmp(again, in + 1, size - 1) != 0)
			abort();
		return 0;
	}
	st = li_scval_core_decode(in + 1, size - 1, LI_SCVAL_JSON, &out, &err);
	if (st == LI_ABI_OK)
		check_json(&out);
	st2 = li_scval_core_decode(in + 1, size - 1, LI_SCVAL_NATIVE, &out, &err2);
	if (st2 == LI_ABI_OK)
		check_json(&out);
	/* the same validation, unless one output hit the size cap */
	if (st != LI_ABI_ELIMIT && st2 != LI_ABI_ELIMIT &&
		(st != st2 || (st != LI_ABI_OK && strcmp(err.message, err2.message) != 0)))
		abort();
	if (out.cap > (1 << 16))
		li_abi_buf_free(&out);
	return 0;
}
