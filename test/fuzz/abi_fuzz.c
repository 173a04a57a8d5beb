/*-------------------------------------------------------------------------
 *
 * abi_fuzz.c
 *	  libFuzzer target over the ABI core (src/abi_core.c, src/keccak.c).
 *
 * Input: one mode byte, a signature, a NUL, then the payload.
 *	'T'   type list ("uint256,string"); payload = data for li_abi_core_decode
 *	'E'   event signature; payload = topics[1..] (32 bytes each, as many as
 *		  the event needs) then data; topic0 is the signature's own, so the
 *		  decoder goes past the topic checks
 *	other event signature; payload = all topics then data (topic0 from the
 *		  input: mostly exercises the topic checks)
 * Without a NUL the whole input is the signature.
 *
 * Checks, besides the sanitizers: a successful decode leaves NUL-terminated
 * output without embedded NULs and balanced brackets; the canonical form
 * of a signature compiles again to itself; nothing leaks.
 *
 * Build (see run.sh):
 *	clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -I src \
 *		test/fuzz/abi_fuzz.c src/abi_core.c src/keccak.c -lnettle
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "abi_core.h"
#include "fuzz_json.h"

int			LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

static LiAbiBuf out = {NULL, 0, 0, 1 << 20};

/* compiling the canonical form gives the same canonical form */
static void
check_canonical(const LiAbiDesc *d, int event)
{
	const char *sig = li_abi_core_signature(d);
	LiAbiError	err;
	LiAbiDesc  *again;

	again = event ? li_abi_core_compile_event(sig, strlen(sig), &err)
		: li_abi_core_compile_types(sig, strlen(sig), &err);
	if (again == NULL)
	{
		if (err.status == LI_ABI_ENOMEM)
			return;
		abort();
	}
	if (strcmp(li_abi_core_signature(again), sig) != 0)
		abort();
	li_abi_core_free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	const uint8_t *nul;
	const char *sig;
	size_t		siglen;
	const uint8_t *payload = NULL;
	size_t		plen = 0;
	int			mode;
	LiAbiError	err;
	LiAbiDesc  *d;

	if (size < 1)
		return 0;
	mode = in[0];
	sig = (const char *) in + 1;
	nul = memchr(in + 1, 0, size - 1);
	if (nul != NULL)
	{
		siglen = (size_t) (nul - (in + 1));
		payload = nul + 1;
		plen = size - (size_t) (payload - in);
	}
	else
		siglen = size - 1;

	if (mode == 'T')
	{
		d = li_abi_core_compile_types(sig, siglen, &err);
		if (d == NULL)
			return 0;
		check_canonical(d, 0);
		if (li_abi_core_decode(d, payload, plen, &out, &err) == LI_ABI_OK)
			check_json(&out);
	}
	else
	{
		unsigned char topics[4][32];
		int			nt;
		int			have;
		int			i;
		LiAbiStatus st;
		LiAbiStatus cst;

		d = li_abi_core_compile_event(sig, siglen, &err);
		if (d == NULL)
			return 0;
		check_canonical(d, 1);
		nt = li_abi_core_ntopics(d);
		if (nt > 4)
			abort();
		i = 0;
		if (mode == 'E' && !li_abi_core_anonymous(d) && nt > 0)
			li_abi_core_topic0(d, topics[i++]);
		/* topics from the payload; fewer than needed is a valid test too */
		have = i;
		for (; i < nt && plen >= 32; i++)
		{
			memcpy(topics[i], payload, 32);
			payload += 32;
			plen -= 32;
			have++;
		}
		st = li_abi_core_decode_event(d, (const unsigned char (*)[32]) topics, have,
									  payload, plen, &out, &err);
		if (st == LI_ABI_OK)
			check_json(&out);
		/* checking only (table sinks) accepts exactly what decoding does */
		cst = li_abi_core_check_event(d, (const unsigned char (*)[32]) topics, have,
									  payload, plen, &err);
		if ((cst == LI_ABI_OK) != (st == LI_ABI_OK) && st != LI_ABI_ELIMIT)
			abort();
		/* and the arguments it gives lie inside the log */
		for (size_t k = 0; cst == LI_ABI_OK && k < li_abi_core_nparams(d); k++)
		{
			LiAbiParamInfo info;
			LiAbiValue	v;

			li_abi_core_param(d, k, &info);
			if (info.kind == LI_ABI_V_COMPOSITE)
				continue;
			li_abi_core_value(d, k, (const unsigned char (*)[32]) topics, payload, &v);
			if (info.indexed ? (v.p < topics[0] || v.p + 32 > (const unsigned char *) topics + sizeof(topics)) :
				(v.p < payload || v.len > plen || v.p + v.len > payload + plen))
				abort();
		}
	}
	li_abi_core_free(d);
	/* don't let one huge output keep its buffer */
	if (out.cap > (1 << 16))
		li_abi_buf_free(&out);
	return 0;
}
