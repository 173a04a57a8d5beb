/*-------------------------------------------------------------------------
 *
 * rpc_client.h
 *	  The worker's JSON-RPC 2.0 client over HTTP(S) (rpc_client.c, libcurl):
 *	  endpoints with failover, rate limit, response checks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_RPC_CLIENT_H
#define LI_RPC_CLIENT_H

#include "utils/jsonb.h"

#include "ledger.h"
#include "options.h"

typedef struct LiRpcError
{
	int64		code;			/* JSON-RPC error code (0: the response was too large) */
	char	   *message;
} LiRpcError;
/* create the libcurl handle once per worker; ERROR if libcurl fails */
extern void li_rpc_client_init(void);
/* use the pipeline's endpoints, timeouts and caps (opts must outlive the calls) */
extern void li_rpc_client_configure(const LiOptions *opts);
/*
 * one call, never inside a transaction: its "result" (a jbvNull for JSON
 * null); fails over between endpoints; ERROR on transport, HTTP or
 * response-format failures (08006, 22P02, 54000) and, when err is NULL,
 * on a JSON-RPC error object (38000); with err, NULL and *err instead
 */
extern JsonbValue *li_rpc_call_ex(const char *method, const char *params, LiRpcError *err);
/* a log of a result array, in order (i from 0); it lives only during the call */
typedef void (*LiLogCallback) (void *arg, const LiRawLog *log, int i);
/*
 * li_rpc_call_ex for a call whose result is an array of logs (eth_getLogs):
 * each element goes to cb as it is read from the response text, never
 * built as jsonb; true when the whole result was read, false with *err as
 * li_rpc_call_ex; ERROR (22P02) when the result is not an array
 */
extern bool li_rpc_call_logs(const char *method, const char *params, LiRpcError *err,
							 LiLogCallback cb, void *arg);
/*
 * n (1 to LI_RPC_MAX_CONCURRENT) li_rpc_call_logs calls in flight at once,
 * read in order, call i's logs to cb(args[i], ...): how many were read in
 * full from the first; the next failed with errs[] set as *err of
 * li_rpc_call_logs; the rest are not read
 */
extern int	li_rpc_call_logs_many(const char *method, char *const *params, int n,
								  LiRpcError *errs, LiLogCallback cb, void *const *args);
/*
 * n calls of one method as JSON-RPC batches of at most rpc_batch_size
 * (fewer, down to single calls, once the node shows a limit): results[i]
 * is the result of the call with params[i], as li_rpc_call's; errors as
 * li_rpc_call's, and 22P02 for a batch answer with an id not asked for
 */
extern void li_rpc_call_batch(const char *method, char *const *params, int n,
							  JsonbValue **results);
/* li_rpc_call_ex with err NULL */
extern JsonbValue *li_rpc_call(const char *method, const char *params);
/* " (endpoint i of n)" with several endpoints, else "": never the URL */
extern char *li_rpc_endpoint_label(void);
/* the node's Retry-After in ms (0 if none), forgotten once taken */
extern int64 li_rpc_take_retry_after_ms(void);
/* a Retry-After another process's client was given (prefetch.c) */
extern void li_rpc_set_retry_after_ms(int64 ms);
/* release the libcurl handle (at process exit) */
extern void li_rpc_cleanup(void);

/* rpc_stream.c: reading an eth_getLogs response without jsonb */
typedef enum LiStreamResult
{
	LI_STREAM_DONE,				/* every element went to the callback */
	LI_STREAM_ELSEWHERE,		/* none did: for the general path */
	LI_STREAM_INVALID,			/* some did, then the JSON proved invalid */
	LI_STREAM_BAD_ID,			/* the id is missing or another */
	LI_STREAM_BAD_SHAPE			/* "result" twice, or with "error" */
} LiStreamResult;
/* read response text[0..len) for request id, each result element to cb */
extern LiStreamResult li_stream_logs_response(const char *text, size_t len, int64 id,
											  LiLogCallback cb, void *arg);

#endif							/* LI_RPC_CLIENT_H */
