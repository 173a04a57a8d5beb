/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The SQL API's writes to the extension's tables.
 *
 * Members of ledger_ingest_admin hold no INSERT, UPDATE or DELETE on the
 * extension's tables (producers keep INSERT on the inbox): a write
 * privilege on a shared table would let one owner LOCK it and stall every
 * other owner's pipelines.  They read their own rows through row-level
 * security, and every change goes through the API functions, which check
 * their arguments as the caller and then call _catalog_write() for each
 * change.  _catalog_write() names one of a fixed set of statements, checks
 * that the calling role may make it (a member of the pipeline's owner, the
 * owner of the table it names, the database owner), and runs it as the
 * owner of the extension's tables.  This is pg_cron's model
 * (job_metadata.c): the caller is GetUserId() of a SECURITY INVOKER C
 * function, which no SQL-level SECURITY DEFINER function could learn.
 *
 * Calling _catalog_write() directly gives an admin nothing the API does
 * not: each statement touches only the named pipeline's rows, and the
 * checks it makes are those above.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "ledger_ingest.h"

PG_FUNCTION_INFO_V1(ledger_ingest_catalog_write);

/* who may run a statement */
typedef enum LiWriteCheck
{
	LI_CHECK_NEW_PIPELINE,		/* any admin: the caller becomes the owner */
	LI_CHECK_PIPELINE_OWNER,	/* a member of the pipeline's owner */
	LI_CHECK_TABLE_OWNER,		/* ... who also owns the table args[1] */
	LI_CHECK_DATABASE_OWNER		/* the owner of the current database */
} LiWriteCheck;

/*
 * The statements.  $1 is the pipeline name, $2 the text[] of arguments,
 * $3 the calling role (regrole).  Each returns one row of one bigint: the
 * rows it changed, or the new row's id.  search_path is pinned to
 * pg_catalog by the SQL function's SET clause.
 */
typedef struct LiWriteOp
{
	const char *name;
	int			nargs;
	LiWriteCheck check;
	const char *sql;
} LiWriteOp;

static const LiWriteOp write_ops[] = {
	/* args: source, options (validated and completed here) */
	{"create_pipeline", 2, LI_CHECK_NEW_PIPELINE,
		"WITH o AS (SELECT ledger_ingest.validate_options($2[1], $2[2]::jsonb) AS opts), "
		"p AS (INSERT INTO ledger_ingest.pipeline (name, source, options, owner) "
		"      SELECT $1, $2[1], o.opts, $3 FROM o RETURNING name, options), "
		"c AS (INSERT INTO ledger_ingest.cursor (pipeline, ledger) "
		"      SELECT p.name, coalesce((p.options ->> 'from_block')::int8, 0) - 1 FROM p RETURNING 1) "
		"SELECT count(*) FROM c"},
	/* args: state ('running' clears a failed pipeline's error count) */
	{"set_state", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH u AS (UPDATE ledger_ingest.pipeline p SET state = $2[1], "
		"      errors = CASE WHEN $2[1] = 'running' THEN 0 ELSE p.errors END, "
		"      last_error = CASE WHEN $2[1] = 'running' THEN NULL ELSE p.last_error END "
		"      WHERE p.name = $1 AND $2[1] IN ('running', 'stopped') RETURNING 1) "
		"SELECT count(*) FROM u"},
	/* everything else goes by ON DELETE CASCADE */
	{"drop_pipeline", 0, LI_CHECK_PIPELINE_OWNER,
		"WITH j AS (DELETE FROM ledger_ingest.journal j WHERE j.pipeline = $1), "
		"e AS (DELETE FROM ledger_ingest.event_journal e WHERE e.pipeline = $1), "
		"i AS (DELETE FROM ledger_ingest.inbox i WHERE i.pipeline = $1), "
		"p AS (DELETE FROM ledger_ingest.pipeline p WHERE p.name = $1 RETURNING 1) "
		"SELECT count(*) FROM p"},
	/* args: handler, topic0 (hex), address (hex), revert, event signature */
	{"add_handler", 5, LI_CHECK_PIPELINE_OWNER,
		"INSERT INTO ledger_ingest.handler (pipeline, handler, topic0, address, revert, event) "
		"VALUES ($1, $2[1], decode($2[2], 'hex'), decode($2[3], 'hex'), $2[4], $2[5]) RETURNING id"},
	/* args: handler */
	{"remove_handler", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.handler h WHERE h.pipeline = $1 AND h.handler = $2[1] "
		"      RETURNING 1) SELECT count(*) FROM d"},
	/* args: table oid */
	{"add_raw_sink", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH i AS (INSERT INTO ledger_ingest.sink (pipeline, tbl) VALUES ($1, $2[1]::oid) "
		"      ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i"},
	/* args: table oid */
	{"remove_raw_sink", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.sink s WHERE s.pipeline = $1 AND s.tbl = $2[1]::oid "
		"      RETURNING 1) SELECT count(*) FROM d"},
	/* args: table oid, primary key columns (a text[] literal) */
	{"track_table", 2, LI_CHECK_TABLE_OWNER,
		"WITH i AS (INSERT INTO ledger_ingest.tracked (pipeline, tbl, pk) VALUES ($1, $2[1]::oid, $2[2]::text[]) "
		"      ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i"},
	/* args: table oid; its journal for the pipeline goes too */
	{"untrack_table", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH t AS (DELETE FROM ledger_ingest.tracked t WHERE t.pipeline = $1 AND t.tbl = $2[1]::oid "
		"      RETURNING 1), "
		"j AS (DELETE FROM ledger_ingest.journal j WHERE j.pipeline = $1 AND j.tbl = $2[1]::oid "
		"      AND EXISTS (SELECT FROM t)) "
		"SELECT count(*) FROM t"},
	/*
	 * args: expected ledger, tx_index, event_index, new ledger, tx_index,
	 * event_index.  Headers and journals above the new cursor go (those
	 * ledgers are applied again).
	 */
	{"cursor_cas", 6, LI_CHECK_PIPELINE_OWNER,
		"WITH c AS (UPDATE ledger_ingest.cursor c SET ledger = $2[4]::int8, "
		"      ledger_hash = (SELECT l.hash FROM ledger_ingest.ledger l "
		"                     WHERE l.pipeline = $1 AND l.number = $2[4]::int8), "
		"      tx_index = $2[5]::int4, event_index = $2[6]::int4, last_commit_at = now() "
		"      WHERE c.pipeline = $1 AND c.ledger IS NOT DISTINCT FROM $2[1]::int8 "
		"      AND c.tx_index IS NOT DISTINCT FROM $2[2]::int4 "
		"      AND c.event_index IS NOT DISTINCT FROM $2[3]::int4 RETURNING 1), "
		"l AS (DELETE FROM ledger_ingest.ledger l WHERE l.pipeline = $1 AND l.number > $2[4]::int8 "
		"      AND EXISTS (SELECT FROM c)), "
		"j AS (DELETE FROM ledger_ingest.journal j WHERE j.pipeline = $1 AND j.ledger > $2[4]::int8 "
		"      AND EXISTS (SELECT FROM c)), "
		"e AS (DELETE FROM ledger_ingest.event_journal e WHERE e.pipeline = $1 AND e.ledger > $2[4]::int8 "
		"      AND EXISTS (SELECT FROM c)) "
		"SELECT count(*) FROM c"},
	/* the cursor row, locked until the end of the transaction (rewind) */
	{"lock_cursor", 0, LI_CHECK_PIPELINE_OWNER,
		"SELECT count(*) FROM (SELECT FROM ledger_ingest.cursor c WHERE c.pipeline = $1 FOR UPDATE) l"},
	/* args: document ids (a bigint[] literal), or NULL: every rejected one */
	{"delete_documents", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.inbox i WHERE i.pipeline = $1 "
		"      AND CASE WHEN $2[1] IS NULL THEN i.error IS NOT NULL ELSE i.id = ANY ($2[1]::int8[]) END "
		"      RETURNING 1) SELECT count(*) FROM d"},
	/* args: up to ledger, or NULL: all */
	{"clear_decode_errors", 1, LI_CHECK_PIPELINE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.decode_error d WHERE d.pipeline = $1 "
		"      AND ($2[1] IS NULL OR d.ledger <= $2[1]::int8) RETURNING 1) SELECT count(*) FROM d"},
	/* no pipeline */
	{"pause_database", 0, LI_CHECK_DATABASE_OWNER,
		"WITH i AS (INSERT INTO ledger_ingest.database_pause (paused_by) "
		"      SELECT r.rolname FROM pg_roles r WHERE r.oid = $3 ON CONFLICT DO NOTHING RETURNING 1) "
		"SELECT count(*) FROM i"},
	{"resume_database", 0, LI_CHECK_DATABASE_OWNER,
		"WITH d AS (DELETE FROM ledger_ingest.database_pause RETURNING 1) SELECT count(*) FROM d"},
};

/* The owner of the extension's tables (whoever ran CREATE EXTENSION). */
static Oid
catalog_owner(void)
{
	Oid			relid = RangeVarGetRelid(makeRangeVar("ledger_ingest", "pipeline", -1), NoLock, false);
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The owner of pipeline "name", read as the tables' owner; raises
 * undefined_object when there is none, or when the caller is not a member
 * of its owner: another owner's pipeline looks as row-level security shows
 * it, absent.  Pipelines owned by ledger_ingest_admin itself (every admin
 * is a member) are for superusers only.
 */
static void
check_pipeline_owner(const char *name, Oid caller, Oid admin)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			owner = InvalidOid;
	int			ret;

	ret = SPI_execute_with_args("SELECT p.owner::oid FROM ledger_ingest.pipeline p WHERE p.name = $1",
								1, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!OidIsValid(owner) ||
		!(superuser_arg(caller) || (owner != admin && is_member_of_role(caller, owner))))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name)));
}

/*
 * Does the calling role pass op's check (see LiWriteCheck)?  ERROR if not.
 * Runs as the tables' owner, inside SPI.
 */
static void
check_caller(const LiWriteOp *op, const char *pipeline, ArrayType *args, Oid caller, Oid admin)
{
	switch (op->check)
	{
		case LI_CHECK_NEW_PIPELINE:
			if (caller == admin)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("a pipeline cannot be owned by ledger_ingest_admin"),
						 errhint("Create it as a member of ledger_ingest_admin, not as the role itself.")));
			break;
		case LI_CHECK_PIPELINE_OWNER:
			check_pipeline_owner(pipeline, caller, admin);
			break;
		case LI_CHECK_TABLE_OWNER:
			{
				Datum		relid;
				bool		relnull;
				int			idx = 1;
				char	   *name;

				check_pipeline_owner(pipeline, caller, admin);
				relid = array_get_element(PointerGetDatum(args), 1, &idx, -1, -1, false,
										  TYPALIGN_INT, &relnull);
				if (relnull)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("catalog write \"%s\" needs a table", op->name)));
				relid = DirectFunctionCall1(oidin, CStringGetDatum(TextDatumGetCString(relid)));
				/* named as regclass prints it, as track_table() does */
				name = DatumGetCString(DirectFunctionCall1(regclassout, relid));
				if (!pg_class_ownercheck(DatumGetObjectId(relid), caller))
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("must be owner of table %s to track it", name),
							 errhint("The reorg journal keeps whole rows of the table, and a trigger is created on it.")));
				/* what track_table() refuses is refused here too */
				if (get_rel_relkind(DatumGetObjectId(relid)) == RELKIND_PARTITIONED_TABLE ||
					get_rel_relispartition(DatumGetObjectId(relid)))
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot track %s: partitioned tables and partitions are not supported", name),
							 errhint("Use a revert handler for effects on partitioned tables.")));
				if (get_rel_relkind(DatumGetObjectId(relid)) != RELKIND_RELATION)
					ereport(ERROR,
							(errcode(ERRCODE_WRONG_OBJECT_TYPE),
							 errmsg("cannot track %s: not a table", name)));
				break;
			}
		case LI_CHECK_DATABASE_OWNER:
			if (!pg_database_ownercheck(MyDatabaseId, caller))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to pause or resume ledger_ingest in database \"%s\"",
								get_database_name(MyDatabaseId)),
						 errhint("Only the database owner (or a superuser) may.")));
			break;
	}
}

/*
 * ledger_ingest._catalog_write(op text, pipeline text, args text[])
 *	 RETURNS bigint
 *
 * Runs write_ops[op] for pipeline with args (a text[] of exactly the
 * op's length; NULL elements allowed) as the owner of the extension's
 * tables, after checking that the calling role may: it is a member of
 * ledger_ingest_admin (or a superuser) and passes the op's check.  Returns
 * what the statement returns (rows changed, or the new handler's id).
 * Errors: invalid_parameter_value for an unknown op or a wrong number of
 * args; insufficient_privilege; undefined_object for a pipeline the
 * caller may not see; whatever the statement raises (unique_violation for
 * an existing pipeline name, the option validator's errors).
 */
Datum
ledger_ingest_catalog_write(PG_FUNCTION_ARGS)
{
	const char *opname;
	const char *pipeline;
	ArrayType  *args;
	const LiWriteOp *op = NULL;
	Oid			caller = GetUserId();
	Oid			admin = get_role_oid("ledger_ingest_admin", false);
	Oid			save_userid;
	int			save_sec_context;
	Oid			argtypes[3] = {TEXTOID, TEXTARRAYOID, REGROLEOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	int64		result = 0;
	int			ret;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("op and args must not be null")));
	opname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pipeline = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	args = PG_GETARG_ARRAYTYPE_P(2);

	for (size_t i = 0; i < lengthof(write_ops); i++)
		if (strcmp(write_ops[i].name, opname) == 0)
			op = &write_ops[i];
	if (op == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown catalog write \"%s\"", opname)));
	if (ARR_NDIM(args) > 1 ||
		ArrayGetNItems(ARR_NDIM(args), ARR_DIMS(args)) != op->nargs ||
		(op->nargs > 0 && ARR_LBOUND(args)[0] != 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("catalog write \"%s\" takes %d argument",
							   "catalog write \"%s\" takes %d arguments",
							   op->nargs, opname, op->nargs)));
	if (op->check == LI_CHECK_DATABASE_OWNER && pipeline != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("catalog write \"%s\" takes no pipeline", opname)));
	if (op->check != LI_CHECK_DATABASE_OWNER && pipeline == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));

	if (!superuser_arg(caller) && !is_member_of_role(caller, admin))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to manage ledger_ingest pipelines"),
				 errhint("Only superusers and members of ledger_ingest_admin may manage pipelines.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(catalog_owner(), save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	check_caller(op, pipeline, args, caller, admin);

	values[0] = pipeline ? CStringGetTextDatum(pipeline) : (Datum) 0;
	nulls[0] = pipeline ? ' ' : 'n';
	values[1] = PointerGetDatum(args);
	values[2] = ObjectIdGetDatum(caller);
	ret = SPI_execute_with_args(op->sql, 3, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_SELECT && ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "catalog write \"%s\" failed: %s", opname, SPI_result_code_string(ret));
	if (SPI_processed == 1)
		result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
	PG_RETURN_INT64(result);
}
