/*-------------------------------------------------------------------------
 *
 * options.h
 *	  Pipeline options (options.c): one parser for create_pipeline's
 *	  validation and the worker's settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_OPTIONS_H
#define LI_OPTIONS_H

#include "utils/jsonb.h"

typedef enum LiCommitMode
{
	LI_COMMIT_EVENT,
	LI_COMMIT_LEDGER,
	LI_COMMIT_BATCH
} LiCommitMode;

#define LI_MAX_URLS 16
#define LI_RPC_MAX_RESPONSE ((int64) 256 * 1024 * 1024)
#define LI_RPC_MAX_CONCURRENT 16	/* bound of max_concurrent_requests */
/* stellar-rpc's getEvents: ledgers scanned per request (LedgerScanLimit) */
#define LI_STELLAR_SCAN_LIMIT 10000
/* contract ids in one getEvents filter, and filters per request */
#define LI_STELLAR_IDS_PER_FILTER 5
#define LI_STELLAR_MAX_FILTERS 5
#define LI_STELLAR_MAX_CONTRACT_IDS (LI_STELLAR_IDS_PER_FILTER * LI_STELLAR_MAX_FILTERS)
#define LI_STELLAR_MAX_TOPIC_FILTERS 5	/* topic filters in one filter */

typedef struct LiOptions
{
	bool		is_rpc;			/* source evm_rpc */
	bool		is_stellar_rpc; /* source stellar_rpc */
	LiCommitMode commit;
	int			batch_max_events;
	int64		batch_max_bytes;	/* inbox: documents read per fetch, in bytes */
	int			batch_max_ledgers;
	int			batch_max_ms;
	int			poll_ms;
	int			max_retries;	/* handler failures before 'failed' */
	/* evm_rpc */
	char	  **urls;			/* endpoints, failed over in order */
	int			nurls;
	Jsonb	   *addresses;		/* eth_getLogs "address" filter or NULL */
	Jsonb	   *topics;			/* eth_getLogs "topics" filter (stellar_rpc:
								 * getEvents topic filters) or NULL */
	int64		from_block;		/* stellar_rpc: from_ledger */
	int64		to_block;		/* -1: follow the head forever (to_ledger) */
	int			confirmations;
	int			block_range;	/* stellar_rpc: ledger_range */
	int			timeout_ms;
	int			max_requests_per_second;	/* 0: no limit */
	int64		max_response_bytes;
	int			max_redirects;
	int			rpc_batch_size; /* JSON-RPC calls per HTTP request, at most */
	int			max_concurrent_requests;	/* eth_getLogs in flight, at most */
	/* ledgers a fetcher process may fetch beyond the cursor; 0: no fetcher */
	int			fetch_ahead_ledgers;
	int64		fetch_ahead_bytes;	/* its queue to the worker */
	/* reorgs */
	int			reorg_window;	/* ledgers kept revertible; 0: none */
	char	   *finality;		/* evm_rpc: "latest", "safe" or "finalized" */
	/* a log a signature-registered handler cannot decode: fail, or skip it */
	bool		decode_error_fails;
	/* inbox: a ledger that arrives after a later one: skip it, or fail */
	bool		skip_late_ledgers;
	bool		stellar;		/* "chain": "stellar": Stellar ledger documents */
	/* evm_rpc: full transactions of every block, and their receipts */
	bool		transactions;
	bool		receipts;		/* implies transactions */
	/* stellar_rpc */
	char	   *network_passphrase; /* getNetwork's passphrase must be this */
	Jsonb	   *contract_ids;	/* getEvents contractIds (C strkeys) or NULL */
	char	   *event_type;		/* getEvents type filter or NULL */
	/*
	 * Not an option: the gcd of the pipeline's block handlers' "every" (0:
	 * none), set by catalog.c; the RPC sources fetch the ledgers whose
	 * numbers are its multiples even without events.
	 */
	int64		block_every;
	/*
	 * Not an option: the addresses transaction handlers name (a jsonb array
	 * of "0x" strings, or NULL), set by catalog.c; evm_rpc keeps the
	 * transactions to them besides those to "addresses".
	 */
	Jsonb	   *tx_addresses;
} LiOptions;

/*
 * validate options (a JSON object, or NULL) for source "inbox", "evm_rpc"
 * or "stellar_rpc" and fill *out, defaults first; ERROR 22023 naming the key
 */
extern void li_parse_options(const char *source, Jsonb *options, LiOptions *out);
/*
 * the evm_rpc options as one flat buffer (a fetcher process reads them from
 * dynamic shared memory), palloc'd, its length in *len; the same options
 * give the same bytes
 */
extern char *li_options_flatten(const LiOptions *o, Size *len);
/* the options of a flat buffer, palloc'd in the current context */
extern void li_options_unflatten(const char *buf, LiOptions *out);

#endif							/* LI_OPTIONS_H */
