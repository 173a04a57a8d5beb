/*-------------------------------------------------------------------------
 *
 * stellar_core.h
 *	  Stellar ledger headers and event ids, without PostgreSQL.
 *
 * Pure C99 plus nettle's SHA-256 (shared with scval_core.c's error type),
 * so that the same code runs inside the server (stellar.c) and under
 * libFuzzer.
 *
 * Ledger headers: the XDR of a LedgerHeader (stellar-xdr,
 * Stellar-ledger.x), or of a LedgerHeaderHistoryEntry (its hash, the
 * LedgerHeader, an empty extension: what stellar-rpc's getLedgers gives as
 * headerXdr).  The ledger hash is the SHA-256 of the LedgerHeader's XDR;
 * previousLedgerHash, inside it, is the hash of the ledger before.
 *
 * Event ids (stellar-rpc's getEvents): "<TOID>-<index>", the TOID (SEP-35's
 * total order id: ledger << 32 | transaction << 12 | operation) as 19
 * decimal digits, the event's index as 10.  stellar-rpc numbers them so:
 * an operation's events transaction 1.. (application order), operation
 * 0.. and the index in the operation; a transaction's events after its
 * operations operation 4095; events before all transactions transaction
 * 0, after all 1048575 (2^20 - 1), each with its index in the ledger.  A
 * position in ledger_ingest: the ledger, tx_index = the transaction,
 * event_index = operation << 19 | index (an index under 2^19); positions
 * order as the ids do.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_STELLAR_CORE_H
#define LI_STELLAR_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "abi_core.h"

typedef struct LiStellarHeader
{
	uint32_t	protocol_version;	/* ledgerVersion */
	uint32_t	sequence;		/* ledgerSeq */
	uint64_t	close_time;		/* scpValue.closeTime, Unix seconds */
	unsigned char hash[32];		/* SHA-256 of the LedgerHeader XDR */
	unsigned char previous_hash[32];	/* previousLedgerHash */
} LiStellarHeader;

/*
 * li_stellar_parse_header: the XDR of one LedgerHeader or
 * LedgerHeaderHistoryEntry ("len" bytes, exactly one value) into *out,
 * the hash computed.  Returns LI_ABI_OK, or LI_ABI_EDATA with err naming
 * the field and the byte (a discriminant no header has, lengths outside
 * the data, non-zero padding, trailing bytes, a history entry whose hash
 * is not its header's).
 */
extern LiAbiStatus li_stellar_parse_header(const unsigned char *xdr, size_t len,
										   LiStellarHeader *out, LiAbiError *err);

#define LI_STELLAR_EVENT_ID_LEN 30	/* 19 digits, '-', 10 digits */

/*
 * li_stellar_event_id: the getEvents id of a position into out
 * (LI_STELLAR_EVENT_ID_LEN + 1 bytes).  Returns 0, or -1 with err set when
 * ledger is outside 0..2^31-1, tx_index outside 0..2^20-1, or event_index
 * negative.
 */
extern int	li_stellar_event_id(int64_t ledger, int32_t tx_index, int32_t event_index,
								char *out, LiAbiError *err);

/*
 * li_stellar_event_position: the position of a getEvents id ("n" bytes of
 * text).  Returns 0, or -1 with err set when it is not 19 digits, '-', 10
 * digits, its TOID is over 2^63 - 1, or its index is 2^19 or more.
 */
extern int	li_stellar_event_position(const char *id, size_t n, int64_t *ledger,
									  int32_t *tx_index, int32_t *event_index,
									  LiAbiError *err);

#endif							/* LI_STELLAR_CORE_H */
