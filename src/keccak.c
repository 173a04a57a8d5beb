/*-------------------------------------------------------------------------
 *
 * keccak.c
 *	  Ethereum's Keccak-256: the sponge around nettle's Keccak-f[1600].
 *
 * Ethereum hashes with the Keccak submission as it stood before NIST
 * standardised it: rate 136 bytes (capacity 512 bits), output 32 bytes,
 * padding "pad10*1" with the domain byte 0x01 (first padding byte) and 0x80
 * (last byte of the block; both in one byte, 0x81, when only one byte is
 * left).  FIPS 202 SHA3-256 differs only in that domain byte (0x06), so
 * no SHA3-256 implementation can be used as is.
 *
 * Why nettle: OpenSSL 3.0 (Debian bookworm) offers SHA3-256 but not the
 * legacy Keccak-256 through a public API, and writing our own permutation
 * would add the part of the hash that is hardest to get right and fast.
 * nettle (nettle-dev) exports its maintained, optimised Keccak-f[1600]
 * permutation as sha3_permute() on a public struct sha3_state of 25
 * little-endian 64-bit lanes; the absorb, pad and squeeze steps below are
 * the whole of the Keccak sponge on top of it.
 *
 * Reference: "The Keccak reference", version 3.0 (Bertoni, Daemen,
 * Peeters, Van Assche), sections on the sponge construction and multi-rate
 * padding; Ethereum Yellow Paper, appendix "KEC".
 *
 *-------------------------------------------------------------------------
 */
#include "keccak.h"

#include <stdint.h>
#include <string.h>

#include <nettle/sha3.h>

#define KECCAK256_RATE	136		/* bytes: 1600 bits - 2 * 256 bits */

/* XOR "n" bytes (n <= rate) into the state's lanes, little-endian. */
static void
absorb_bytes(struct sha3_state *st, const unsigned char *p, size_t n)
{
	size_t		i;

	for (i = 0; i + 8 <= n; i += 8)
	{
		uint64_t	lane = (uint64_t) p[i] |
			((uint64_t) p[i + 1] << 8) |
			((uint64_t) p[i + 2] << 16) |
			((uint64_t) p[i + 3] << 24) |
			((uint64_t) p[i + 4] << 32) |
			((uint64_t) p[i + 5] << 40) |
			((uint64_t) p[i + 6] << 48) |
			((uint64_t) p[i + 7] << 56);

		st->a[i / 8] ^= lane;
	}
	for (; i < n; i++)
		st->a[i / 8] ^= (uint64_t) p[i] << (8 * (i % 8));
}

/*
 * li_keccak256: Keccak-256 of "len" bytes at "data" into out[32] (see
 * keccak.h).  Absorbs whole 136-byte blocks, then the remainder padded with
 * 0x01 ... 0x80, and squeezes the first 32 bytes of the state (one block,
 * since 32 < rate).
 */
void
li_keccak256(const unsigned char *data, size_t len,
			 unsigned char out[LI_KECCAK256_LEN])
{
	struct sha3_state st;
	size_t		i;

	memset(&st, 0, sizeof(st));
	while (len >= KECCAK256_RATE)
	{
		absorb_bytes(&st, data, KECCAK256_RATE);
		sha3_permute(&st);
		data += KECCAK256_RATE;
		len -= KECCAK256_RATE;
	}
	if (len > 0)
		absorb_bytes(&st, data, len);
	/* len < rate here: the padding fits the current block */
	st.a[len / 8] ^= (uint64_t) 0x01 << (8 * (len % 8));
	st.a[(KECCAK256_RATE - 1) / 8] ^= (uint64_t) 0x80 << (8 * ((KECCAK256_RATE - 1) % 8));
	sha3_permute(&st);

	for (i = 0; i < LI_KECCAK256_LEN; i++)
		out[i] = (unsigned char) (st.a[i / 8] >> (8 * (i % 8)));
}
