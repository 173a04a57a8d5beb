/*-------------------------------------------------------------------------
 *
 * keccak.h
 *	  Ethereum's Keccak-256 (original Keccak padding, not NIST SHA3-256).
 *
 * Pure C, no PostgreSQL dependency: the ABI fuzz target links it directly.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_KECCAK_H
#define LI_KECCAK_H

#include <stddef.h>

#define LI_KECCAK256_LEN	32

/*
 * li_keccak256: Keccak-256 of "len" bytes at "data" (data may be NULL when
 * len is 0) into out[32].  Never fails.
 */
extern void li_keccak256(const unsigned char *data, size_t len,
						 unsigned char out[LI_KECCAK256_LEN]);

#endif							/* LI_KECCAK_H */
