/*-------------------------------------------------------------------------
 *
 * abi.h
 *	  Solidity ABI event decoding for the worker (abi.c over abi_core.c).
 *
 * The descriptor is opaque; see abi_core.h for the accepted signatures and
 * the JSON representation of decoded values.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_ABI_H
#define LI_ABI_H

#include "utils/jsonb.h"
#include "utils/palloc.h"

/*
 * li_abi_compile_event: compiles an event signature such as "event
 * Transfer(address indexed from, address indexed to, uint256 value)".
 * The descriptor lives (and is freed) with memory context "cxt".  Raises
 * invalid_parameter_value for a bad signature.
 */
extern void *li_abi_compile_event(const char *signature, MemoryContext cxt);

/*
 * li_abi_event_ntopics: the number of topics a log of this event has
 * (indexed arguments, plus topic0 unless anonymous).
 */
extern int	li_abi_event_ntopics(void *desc);

/* li_abi_event_topic0: keccak256 of the canonical signature into out. */
extern void li_abi_event_topic0(void *desc, uint8 out[32]);

/*
 * li_abi_decode_event_jsonb: decodes one log (ntopics 32-byte topics,
 * topics[0] being topic0 unless the event is anonymous, and len bytes of
 * data) into a jsonb object allocated in CurrentMemoryContext.  Raises
 * invalid_binary_representation, naming the argument, when the topics or
 * data are not a valid encoding of the event.
 */
extern Jsonb *li_abi_decode_event_jsonb(void *desc, const uint8 (*topics)[32],
										int ntopics, const uint8 *data, int len);

/*
 * li_abi_try_decode_event_jsonb: the same, but a log that is not a valid
 * encoding of the event (what any contract can emit) returns NULL with the
 * decoder's message, naming the argument, in *error (palloc'd) instead of
 * raising it.  Out of memory still raises.
 */
extern Jsonb *li_abi_try_decode_event_jsonb(void *desc, const uint8 (*topics)[32],
											int ntopics, const uint8 *data, int len,
											char **error);

/* li_abi_event_signature: the canonical signature, e.g. "Transfer(address,address,uint256)". */
extern const char *li_abi_event_signature(void *desc);
/* the core descriptor (abi_core.h) of a compiled event */
extern struct LiAbiDesc *li_abi_event_core(void *desc);

/* the low 8 bytes of a 32-byte big-endian word, as two's complement */
extern int64 li_abi_word_int64(const unsigned char *w);
/* a 32-byte big-endian word as a numeric Datum: unsigned, or two's complement */
extern Datum li_abi_word_numeric(const unsigned char *w, bool is_signed);

#endif							/* LI_ABI_H */
