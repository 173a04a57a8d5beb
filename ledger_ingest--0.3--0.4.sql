/* ledger_ingest--0.3--0.4.sql: the fetched frontier in status */

\echo Use "ALTER EXTENSION ledger_ingest UPDATE TO '0.4'" to load this file. \quit

-- The newest ledger an evm_rpc pipeline's fetcher process has fetched
-- ahead of the cursor (from shared memory); NULL when it has no fetcher or
-- the caller may not see the pipeline.
CREATE FUNCTION _shmem_fetched(pipeline text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'ledger_ingest_shmem_fetched'
	LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION _shmem_fetched(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _shmem_fetched(text) TO ledger_ingest_admin;
COMMENT ON FUNCTION _shmem_fetched(text) IS
	'The newest ledger the pipeline''s fetcher has fetched ahead of its cursor; NULL without a fetcher.';

-- status: as in 0.3, and fetched, the fetched frontier (a column added at
-- the end, so that the view is replaced, not dropped)
CREATE OR REPLACE VIEW status WITH (security_invoker = true) AS
SELECT p.name AS pipeline,
	   CASE WHEN p.state = 'running' AND pg_catalog.pg_is_in_recovery() THEN p.state
			WHEN p.state = 'running' AND s.pid IS NULL
				 AND p.last_error LIKE '53000: could not start the pipeline''s worker:%' THEN 'waiting'
			WHEN p.state = 'running' AND s.pid IS NULL THEN 'starting'
			WHEN p.state = 'running' AND s.worker_state = 'retrying' THEN 'retrying'
			ELSE p.state END AS state,
	   s.pid,
	   c.ledger,
	   c.ledger_hash,
	   c.tx_index,
	   c.event_index,
	   s.head,
	   c.events_applied,
	   c.ledgers_applied,
	   c.last_commit_at,
	   coalesce(s.worker_error, p.last_error) AS last_error,
	   p.errors,
	   p.source,
	   p.owner,
	   c.reorgs,
	   c.last_reorg_depth,
	   c.last_reorg_at,
	   (SELECT pg_catalog.count(*) FROM ledger_ingest.decode_error d
		WHERE d.pipeline OPERATOR(pg_catalog.=) p.name) AS decode_errors,
	   coalesce(s.notifications_dropped, 0) AS notifications_dropped,
	   ledger_ingest._shmem_fetched(p.name) AS fetched
FROM ledger_ingest.pipeline p
JOIN ledger_ingest.cursor c ON c.pipeline = p.name
LEFT JOIN ledger_ingest._shmem_status() s ON s.pipeline = p.name;

COMMENT ON VIEW status IS
	'One row per pipeline the caller may see: state, worker pid, cursor, source head, counters, the last error and the fetched frontier.';
