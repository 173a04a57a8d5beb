/* ledger_ingest--0.6--0.7.sql: factory contracts, transactions and receipts */

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

-- Transactions (evm_rpc options "transactions" and "receipts", or a ledger
-- document's "transactions" and "receipts"): what a transaction handler,
-- or an event handler's second argument, gets.  value and the fees in wei;
-- selector: input's first 4 bytes (NULL when shorter); status, gas_used,
-- effective_gas_price, contract_address: from the receipt (NULL without).
CREATE TYPE transaction AS (
	pipeline text,
	ledger bigint,
	ledger_hash bytea,
	tx_index integer,
	tx_hash bytea,
	"from" bytea,
	"to" bytea,
	value numeric,
	input bytea,
	selector bytea,
	nonce bigint,
	gas bigint,
	gas_price numeric,
	max_fee_per_gas numeric,
	max_priority_fee_per_gas numeric,
	type integer,
	status integer,
	gas_used bigint,
	effective_gas_price numeric,
	contract_address bytea
);
COMMENT ON TYPE transaction IS
	'A transaction of an applied ledger, with its receipt''s fields when the pipeline fetches receipts.';

-- Pending inbox documents with transactions were packed without them
-- (0.6 did not read them): pack them again (the generated column is
-- recomputed by the update)
UPDATE inbox SET doc = doc WHERE error IS NULL AND doc ? 'transactions';

-- Transaction handlers: a handler row whose function takes
-- ledger_ingest.transaction; selector and failed filter it
ALTER TABLE handler
	ADD COLUMN selector bytea CHECK (pg_catalog.length(selector) OPERATOR(pg_catalog.=) ANY (ARRAY[0, 4])),
	ADD COLUMN failed boolean;

-- add_handler: as in 0.6; the handler may also take
-- (ledger_ingest.event, ledger_ingest.transaction): the second argument is
-- the event's transaction (NULL when the ledger carries no transactions)
CREATE OR REPLACE FUNCTION add_handler(pipeline text, handler regprocedure,
							topic0 bytea DEFAULT NULL, address bytea DEFAULT NULL,
							revert regprocedure DEFAULT NULL, event text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	f regprocedure;
	nargs int;
	argtype oid;
	argtype2 oid;
	stellar bool;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF handler IS NULL THEN
		RAISE EXCEPTION 'handler must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOREACH f IN ARRAY ARRAY[handler, revert] LOOP
		CONTINUE WHEN f IS NULL;
		SELECT p.pronargs, p.proargtypes[0], p.proargtypes[1] INTO nargs, argtype, argtype2
			FROM pg_proc p WHERE p.oid = f;
		IF NOT ((nargs = 1 AND (argtype = 'ledger_ingest.event'::regtype
					OR (argtype = 'ledger_ingest.event[]'::regtype AND f = handler)))
				OR (nargs = 2 AND f = handler AND argtype = 'ledger_ingest.event'::regtype
					AND argtype2 = 'ledger_ingest.transaction'::regtype)) THEN
			RAISE EXCEPTION 'handler % must take exactly one argument of type ledger_ingest.event', f
				USING ERRCODE = 'invalid_function_definition',
					  HINT = 'A handler may take (ledger_ingest.event, ledger_ingest.transaction); a set-based handler takes ledger_ingest.event[]; a revert function takes ledger_ingest.event.';
		END IF;
		IF NOT has_function_privilege(current_user, f, 'EXECUTE') THEN
			RAISE EXCEPTION 'permission denied for function %', f
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	END LOOP;
	SELECT p.options->>'chain' = 'stellar' OR p.source = 'stellar_rpc' INTO stellar
		FROM ledger_ingest.pipeline p WHERE p.name = add_handler.pipeline;
	IF stellar THEN
		IF event IS NOT NULL THEN
			RAISE EXCEPTION 'pipeline "%" follows Stellar ledgers: an event signature (Solidity ABI) does not apply', pipeline
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Register by topic0 => ledger_ingest.scval_symbol(''transfer''), and decode with ledger_ingest.scval_to_native().';
		END IF;
		IF topic0 IS NOT NULL THEN
			PERFORM ledger_ingest.scval_to_json(topic0);	-- raises unless one ScVal
		END IF;
		IF address IS NOT NULL AND length(address) <> 32 THEN
			RAISE EXCEPTION 'address of a Stellar pipeline must be a 32-byte contract id, got % bytes', length(address)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'ledger_ingest.strkey_decode(''C...'') gives it.';
		END IF;
	ELSE
		IF event IS NOT NULL THEN
			-- by signature: topic0 is computed, and the worker decodes args
			IF topic0 IS NOT NULL AND topic0 <> ledger_ingest.event_topic(event) THEN
				RAISE EXCEPTION 'topic0 does not match event %', ledger_ingest.event_signature(event)
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			topic0 := ledger_ingest.event_topic(event);
		END IF;
		IF topic0 IS NOT NULL AND length(topic0) <> 32 THEN
			RAISE EXCEPTION 'topic0 must be 32 bytes, got %', length(topic0)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF address IS NOT NULL AND length(address) <> 20 THEN
			RAISE EXCEPTION 'address must be 20 bytes, got %', length(address)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
	RETURN ledger_ingest._catalog_write('add_handler', pipeline,
		ARRAY[ledger_ingest._proc_text(handler), encode(topic0, 'hex'), encode(address, 'hex'),
			  ledger_ingest._proc_text(revert), event]);
END
$$;

-- add_transaction_handler(pipeline, handler, address, selector, failed):
-- registers a function taking one ledger_ingest.transaction, called once
-- per transaction of an applied ledger whose "to" is address (or, when
-- NULL, an address the pipeline follows: its "addresses", factories and
-- their children; any when it has none), whose input starts with selector
-- (4 bytes; '\x': empty input, a plain transfer of value; NULL: any), and,
-- unless failed, whose receipt does not say it failed (status 0).  Called
-- in tx_index order with the event handlers, before the handlers of the
-- transaction's own events, in the apply transaction.  evm_rpc needs
-- "transactions": true (every block is then fetched with its
-- transactions); the inbox needs documents with "transactions".  Returns
-- the handler id; remove_handler() removes it.
CREATE FUNCTION add_transaction_handler(pipeline text, handler regprocedure, address bytea DEFAULT NULL,
										selector bytea DEFAULT NULL, failed boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nargs int;
	argtype oid;
BEGIN
	PERFORM ledger_ingest._require_pipeline(pipeline);
	IF handler IS NULL OR failed IS NULL THEN
		RAISE EXCEPTION 'handler and failed must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF EXISTS (SELECT 1 FROM ledger_ingest.pipeline p WHERE p.name = add_transaction_handler.pipeline
			   AND (p.options->>'chain' = 'stellar' OR p.source = 'stellar_rpc')) THEN
		RAISE EXCEPTION 'pipeline "%" follows Stellar ledgers: transaction handlers take EVM transactions', pipeline
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT p.pronargs, p.proargtypes[0] INTO nargs, argtype FROM pg_proc p WHERE p.oid = handler;
	IF nargs IS DISTINCT FROM 1 OR argtype <> 'ledger_ingest.transaction'::regtype THEN
		RAISE EXCEPTION 'transaction handler % must take exactly one argument of type ledger_ingest.transaction', handler
			USING ERRCODE = 'invalid_function_definition';
	END IF;
	IF address IS NOT NULL AND length(address) <> 20 THEN
		RAISE EXCEPTION 'address must be 20 bytes, got %', length(address)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF selector IS NOT NULL AND length(selector) NOT IN (0, 4) THEN
		RAISE EXCEPTION 'selector must be 4 bytes (or empty: plain transfers), got %', length(selector)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'substr(ledger_ingest.keccak256(convert_to(''transfer(address,uint256)'', ''UTF8'')), 1, 4) is a function''s selector.';
	END IF;
	IF NOT has_function_privilege(current_user, handler, 'EXECUTE') THEN
		RAISE EXCEPTION 'permission denied for function %', handler
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN ledger_ingest._catalog_write('add_transaction_handler', pipeline,
		ARRAY[ledger_ingest._proc_text(handler), encode(address, 'hex'), encode(selector, 'hex'),
			  CASE WHEN selector IS NULL THEN 'f' ELSE 't' END, failed::text]);
END
$$;

REVOKE ALL ON FUNCTION add_transaction_handler(text, regprocedure, bytea, bytea, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_transaction_handler(text, regprocedure, bytea, bytea, boolean) TO ledger_ingest_admin;
COMMENT ON FUNCTION add_transaction_handler(text, regprocedure, bytea, bytea, boolean) IS
	'Registers a handler taking ledger_ingest.transaction, called for each applied transaction to an address (a followed one by default), filtered by selector and status. Returns the handler id.';
