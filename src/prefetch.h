/*-------------------------------------------------------------------------
 *
 * prefetch.h
 *	  Fetching ahead of applying: an evm_rpc pipeline's fetcher process
 *	  (prefetch.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LI_PREFETCH_H
#define LI_PREFETCH_H

#include "pipeline.h"

/*
 * the evm_rpc pipeline p's next batch from its fetcher (started or
 * restarted from the cursor as needed), or fetched in-line without one;
 * empty when nothing arrived yet; ERROR for the fetcher's fetch error
 */
extern void li_prefetch_fetch(LiPipeline *p, LiBatch *batch);
/* stop the worker's fetcher, if any, dropping what was not received */
extern void li_prefetch_stop(void);

#endif							/* LI_PREFETCH_H */
