/*-------------------------------------------------------------------------
 *
 * db.c
 *	  Connecting to the database, shared by both commands of distsys-relay,
 *	  and reading what the standbys flushed (their --standbys).
 *
 * Every connection gets client_encoding UTF8, whatever the connection
 * string says (the keyword comes after dbname, so it wins): Kafka keys,
 * headers and text payloads are UTF-8, and text results, binary ones too,
 * arrive in the client encoding.
 *
 * search_path.  A role that can create objects in a schema of the relay
 * role's search_path must not be able to run code as that role, so every
 * statement of both commands names each function, operator and type with
 * its schema (pg_catalog.count, OPERATOR(pg_catalog.=),
 * $1::pg_catalog.int8) and casts every parameter.  The publish command
 * runs no code of anyone else, and its first statement also sets
 * search_path to "pg_catalog, pg_temp" (safe_path).  The consume command
 * does not: its handler runs in its session, written against the role's
 * own search_path like any application code (the handler's author
 * protects it with CREATE FUNCTION ... SET search_path).
 *
 * Threads: main thread only.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "util.h"

/*
 * db_connect: a connection to conninfo, ready for the relay's statements,
 * or NULL (with the reason in *error, to free).  app is the
 * application_name unless conninfo sets one; safe_path: see the banner.
 */
PGconn *
db_connect(const char *conninfo, const char *app, bool safe_path, char **error)
{
	const char *const keywords[] = {"dbname", "client_encoding", "fallback_application_name", NULL};
	const char *const values[] = {conninfo, "UTF8", app, NULL};
	PGconn	   *conn = PQconnectdbParams(keywords, values, 1);
	bool		ok;

	*error = NULL;
	if (conn == NULL)
	{
		*error = strdup("out of memory");
		return NULL;
	}
	ok = PQstatus(conn) == CONNECTION_OK;
	if (ok && safe_path)
	{
		PGresult   *res = PQexec(conn, "SELECT pg_catalog.set_config('search_path',"
								 " 'pg_catalog, pg_temp', false)");

		ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		PQclear(res);
	}
	if (!ok)
	{
		*error = strdup(one_line(PQerrorMessage(conn)));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * db_extension_version: the installed version of distsys, in buf; false
 * when the extension is not installed (or the query failed).
 */
bool
db_extension_version(PGconn *conn, char *buf, size_t size)
{
	PGresult   *res = PQexec(conn, "SELECT extversion FROM pg_catalog.pg_extension"
							 " WHERE extname OPERATOR(pg_catalog.=) 'distsys'");
	bool		ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

/*
 * db_standby_lsn: for --standbys.  *flushed: the WAL position (a byte
 * count) that at least `standbys` physical standbys have flushed, 0 while
 * fewer stream; *insert_lsn: this server's WAL insert position, read in
 * the same statement, so above every commit this session made before it.
 * False on a database error (logged).
 */
bool
db_standby_lsn(PGconn *conn, int standbys, uint64_t *insert_lsn, uint64_t *flushed)
{
	char		n[16];
	const char *params[1] = {n};
	PGresult   *res;
	bool		ok;

	snprintf(n, sizeof(n), "%d", standbys);
	res = PQexecParams(conn, "SELECT (pg_catalog.pg_current_wal_insert_lsn()"
					   "         OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.text,"
					   "       (distsys.standby_flush_lsn($1::pg_catalog.int4)"
					   "         OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.text",
					   1, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (ok)
	{
		*insert_lsn = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		*flushed = PQgetisnull(res, 0, 1) ? 0 : strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	}
	else
		log_error("could not read the standbys' WAL position: %s",
				  one_line(PQerrorMessage(conn)));
	PQclear(res);
	return ok;
}
