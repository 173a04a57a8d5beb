\echo Use "CREATE EXTENSION li_probe" to load this file. \quit

-- IsTransactionBlock() of the calling backend (see li_probe.c).
CREATE FUNCTION li_in_transaction_block() RETURNS boolean
	AS 'MODULE_PATHNAME', 'li_probe_in_transaction_block'
	LANGUAGE C VOLATILE;
