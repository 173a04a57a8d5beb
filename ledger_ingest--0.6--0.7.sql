/* ledger_ingest--0.6--0.7.sql: factory contracts */

\echo Use "ALTER EXTENSION ledger_ingest UPDATE TO '0.7'" to load this file. \quit

-- Factories: a contract whose event announces new contracts (children) whose
-- events the pipeline then follows (add_factory)
CREATE TABLE factory (
	id bigserial PRIMARY KEY,
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	address bytea NOT NULL CHECK (pg_catalog.length(address) OPERATOR(pg_catalog.=) 20),
	event text NOT NULL,			-- Solidity event signature, as given
	param text NOT NULL,			-- the argument (of type address) naming the child
	UNIQUE (pipeline, address, event, param)
);

-- Children: each address a factory announced, with the position of the log
-- that announced it; a reorg or rewind below that position removes it
CREATE TABLE child (
	pipeline text NOT NULL REFERENCES pipeline (name) ON DELETE CASCADE,
	address bytea NOT NULL,
	factory bigint NOT NULL REFERENCES factory (id) ON DELETE CASCADE,
	ledger bigint NOT NULL,
	tx_index integer NOT NULL,
	event_index integer NOT NULL,
	PRIMARY KEY (pipeline, address)
);
CREATE INDEX child_ledger_idx ON child (pipeline, ledger);
CREATE INDEX child_factory_idx ON child (factory);

COMMENT ON TABLE factory IS
	'Factory contracts of pipelines: an event whose address argument announces a contract to follow (add_factory).';
COMMENT ON TABLE child IS
	'Contracts announced by factories, with the position of the announcing log; removed by a reorg or rewind below it.';

SELECT pg_catalog.pg_extension_config_dump('factory', '');
SELECT pg_catalog.pg_extension_config_dump('factory_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('child', '');

ALTER TABLE factory ENABLE ROW LEVEL SECURITY;
CREATE POLICY factory_owner ON factory
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) factory.pipeline));
ALTER TABLE child ENABLE ROW LEVEL SECURITY;
CREATE POLICY child_owner ON child
	USING (EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name OPERATOR(pg_catalog.=) child.pipeline));
REVOKE ALL ON factory, child FROM PUBLIC;
REVOKE ALL ON SEQUENCE factory_id_seq FROM PUBLIC;
GRANT SELECT ON factory, child TO ledger_ingest_admin;

-- _cursor_moved_back(): a cursor that moves back (a reorg's revert, rewind(),
-- cursor_cas()) forgets the children announced after its new position, in
-- the same transaction; the worker announces them again when it re-applies
-- those ledgers.  A trigger function: not granted.
CREATE FUNCTION _cursor_moved_back() RETURNS trigger
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM ledger_ingest.child c
		WHERE c.pipeline = NEW.pipeline
		AND (c.ledger, c.tx_index, c.event_index) >
			(NEW.ledger, coalesce(NEW.tx_index, 2147483647), coalesce(NEW.event_index, 2147483647));
	RETURN NULL;
END
$$;
CREATE TRIGGER cursor_moved_back AFTER UPDATE ON cursor
	FOR EACH ROW
	WHEN ((NEW.ledger, coalesce(NEW.tx_index, 2147483647), coalesce(NEW.event_index, 2147483647)) <
		  (OLD.ledger, coalesce(OLD.tx_index, 2147483647), coalesce(OLD.event_index, 2147483647)))
	EXECUTE FUNCTION _cursor_moved_back();

-- _factory_check(event, param): add_factory's checks (the signature
-- compiles; param names one of its arguments, of type address); the
-- canonical signature
CREATE FUNCTION _factory_check(event text, param text) RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_ingest_factory_check'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- add_factory(pipeline, address, event, param): the pipeline follows the
-- factory at address and every contract (child) it announces in a log of
-- event (a Solidity event signature) through argument param (of type
-- address), from the ledger of that log on, atomically with that ledger;
-- besides them, only the addresses of its "addresses" option.  Children are rows of
-- ledger_ingest.child; a reorg or rewind below the announcing log removes
-- them.  With factories, evm_rpc asks eth_getLogs without an address filter
-- (topic0 stays filtered when the "topics" option names it) and checks the
-- addresses itself.  Only logs after the cursor are scanned: add factories
-- before start(), or rewind().  Not for Stellar pipelines.  Returns the
-- factory's id.
CREATE FUNCTION add_factory(pipeline text, address bytea, event text, param text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF address IS NULL OR event IS NULL OR param IS NULL THEN
		RAISE EXCEPTION 'address, event and param must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name = add_factory.pipeline
			   AND (p.options->>'chain' = 'stellar' OR p.source = 'stellar_rpc')) THEN
		RAISE EXCEPTION 'pipeline "%" follows Stellar ledgers: a factory decodes Solidity ABI events', pipeline
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF length(address) <> 20 THEN
		RAISE EXCEPTION 'address must be 20 bytes, got %', length(address)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM ledger_ingest._factory_check(event, param);
	RETURN ledger_ingest._catalog_write('add_factory', pipeline,
		ARRAY[encode(address, 'hex'), event, param]);
END
$$;

-- remove_factory(pipeline, address): the pipeline stops following the
-- factories at address and the children they announced (their rows go).
-- Returns how many factories were removed.
CREATE FUNCTION remove_factory(pipeline text, address bytea) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	n := ledger_ingest._catalog_write('remove_factory', pipeline, ARRAY[encode(address, 'hex')]);
	IF n = 0 THEN
		RAISE EXCEPTION 'pipeline "%" has no factory at 0x%', pipeline, encode(address, 'hex')
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN n;
END
$$;

REVOKE ALL ON FUNCTION _cursor_moved_back(), _factory_check(text, text),
	add_factory(text, bytea, text, text), remove_factory(text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _factory_check(text, text),
	add_factory(text, bytea, text, text), remove_factory(text, bytea) TO ledger_ingest_admin;
COMMENT ON FUNCTION _factory_check(text, text) IS
	'Internal: add_factory''s checks of an event signature and its address argument';
COMMENT ON FUNCTION add_factory(text, bytea, text, text) IS
	'Follows the contracts a factory announces in an event''s address argument, from the ledger that announces each. Returns the factory id.';
COMMENT ON FUNCTION remove_factory(text, bytea) IS
	'Stops following a factory and its children.';
