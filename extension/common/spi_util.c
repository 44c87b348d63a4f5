/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Running the extension's own statements on its own tables.
 *
 * The tables of distsys (lock leases, outbox, ...) are not writable by
 * PUBLIC; the SQL functions that write them run their statements as the
 * owner of schema distsys (the role that created the extension), the way a
 * SECURITY DEFINER function with its own search_path would, but only for
 * these fixed statements.
 * Plans are prepared once per backend and kept; PostgreSQL's plan cache
 * replans them if the tables change.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "spi_util.h"

/*
 * distsys_owner: the owner of schema distsys in this database (looked up
 * once per backend and database).
 */
Oid
distsys_owner(void)
{
	static Oid	owner = InvalidOid;
	static Oid	owner_db = InvalidOid;
	Oid			nsp;
	HeapTuple	tup;

	if (owner_db == MyDatabaseId)
		return owner;
	nsp = get_namespace_oid("distsys", true);
	if (!OidIsValid(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema distsys does not exist"),
				 errhint("Run CREATE EXTENSION distsys in this database.")));
	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	owner_db = MyDatabaseId;
	return owner;
}

/*
 * distsys_as_owner_begin: from here until distsys_as_owner_end, run as the
 * owner of schema distsys, in a security-restricted operation, with
 * search_path = pg_catalog, pg_temp, like a SECURITY DEFINER function with
 * its own search_path: otherwise a caller could put an operator or function
 * of its own (say "=") ahead of pg_catalog's and have the owner run it.
 * An error in between needs no end: the transaction's abort restores both.
 */
void
distsys_as_owner_begin(DistsysAsOwner *save)
{
	GetUserIdAndSecContext(&save->user, &save->sec);
	SetUserIdAndSecContext(distsys_owner(),
						   save->sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	save->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * distsys_as_owner_end: back to the caller's user and search_path.
 */
void
distsys_as_owner_end(const DistsysAsOwner *save)
{
	AtEOXact_GUC(true, save->nestlevel);
	SetUserIdAndSecContext(save->user, save->sec);
}

/*
 * distsys_spi_run: run one of the extension's statements as the owner of
 * schema distsys (distsys_as_owner_begin), preparing and keeping its plan
 * on first use.  The caller has done SPI_connect.  Returns the number of
 * rows processed.
 */
uint64
distsys_spi_run(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
				Datum *values, const char *nulls, bool read_only)
{
	DistsysAsOwner save;
	int			rc;

	distsys_as_owner_begin(&save);
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, values, nulls, read_only, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	distsys_as_owner_end(&save);
	return SPI_processed;
}

/*
 * distsys_spi_lookup: the first column of the row a statement with one
 * text parameter returns (NULL datum and *isnull when none, or when that
 * is NULL), copied out of SPI into the caller's context.  It connects to
 * SPI itself.  Run as read-write on purpose: SPI then takes a new snapshot
 * for the statement (in READ COMMITTED), where read-only would reuse the
 * snapshot the caller's statement began with; raft_get waits for its read
 * index and must then see what was applied meanwhile, or it is not
 * linearizable (t/042 catches it).
 */
Datum
distsys_spi_lookup(SPIPlanPtr *plan, const char *sql, Datum text_arg, bool *isnull)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {text_arg};
	Datum		value = (Datum) 0;

	*isnull = true;
	SPI_connect();
	if (distsys_spi_run(plan, sql, 1, types, args, NULL, false) == 1)
	{
		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
		if (!*isnull)
			value = SPI_datumTransfer(value, false, -1);
	}
	SPI_finish();
	return value;
}
