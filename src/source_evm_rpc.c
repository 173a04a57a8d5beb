#include "postgres.h"
#include "ledger_ingest.h"
void li_rpc_init(LiPipeline *p) {}
void li_rpc_fetch(LiPipeline *p, LiBatch *batch) { elog(ERROR, "not yet"); }
void li_rpc_cleanup(void) {}
