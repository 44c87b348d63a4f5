/*-------------------------------------------------------------------------
 *
 * target_distsys.c
 *	  distsys targets of the key-value benchmark, prepared statements over
 *	  libpq on loopback, autocommit.  "distsys": the Raft store,
 *	  distsys.raft_put, raft_cas and linearizable raft_get; a node that is
 *	  not the leader forwards them to the leader through its Raft worker.
 *	  "paxos": the leaderless CASPaxos registers, distsys.paxos_cas and
 *	  paxos_read, served by whichever member the client talks to (no put).
 *
 * Each connection belongs to one client thread; nothing here is shared.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "kvbench.h"

typedef struct DistsysConn
{
	PGconn	   *conn;
	int			client;
} DistsysConn;

/* The statements a target prepares on each connection, NULL: none. */
typedef struct DistsysSql
{
	const char *put;
	const char *get;
	const char *cas;
} DistsysSql;

static const DistsysSql raft_sql = {
	"SELECT distsys.raft_put($1, $2::jsonb)",
	"SELECT distsys.raft_get($1, 'linearizable')",
	"SELECT distsys.raft_cas($1, $2::jsonb, $3::jsonb)",
};

static const DistsysSql paxos_sql = {
	NULL,
	"SELECT distsys.paxos_read($1)",
	"SELECT distsys.paxos_cas($1, $2::jsonb, $3::jsonb)",
};

static bool
prepare(DistsysConn *dc, const char *name, const char *sql)
{
	PGresult   *res = PQprepare(dc->conn, name, sql, 0, NULL);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		bench_error(dc->client, "prepare %s: %s", name, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/*
 * open_with: a connection for client to the server on port with the
 * statements of sql prepared, or NULL after printing why.
 */
static void *
open_with(const DistsysSql *sql, int port, int client)
{
	DistsysConn *dc = calloc(1, sizeof(DistsysConn));
	char		conninfo[256];

	snprintf(conninfo, sizeof(conninfo),
			 "host=%s port=%d dbname=postgres user=postgres application_name=kvbench",
			 BENCH_HOST, port);
	dc->client = client;
	dc->conn = PQconnectdb(conninfo);
	if (PQstatus(dc->conn) != CONNECTION_OK)
		bench_error(client, "connect: %s", PQerrorMessage(dc->conn));
	else if ((sql->put == NULL || prepare(dc, "put", sql->put)) &&
			 prepare(dc, "get", sql->get) && prepare(dc, "cas", sql->cas))
		return dc;
	PQfinish(dc->conn);
	free(dc);
	return NULL;
}

static void *
distsys_open(int port, int client)
{
	return open_with(&raft_sql, port, client);
}

static void *
paxos_open(int port, int client)
{
	return open_with(&paxos_sql, port, client);
}

/*
 * exec: execute a prepared statement; its result if it returned its one
 * row, else NULL after printing why.  The caller clears the result.
 */
static PGresult *
exec(DistsysConn *dc, const char *stmt, int nparams, const char *const *params)
{
	PGresult   *res = PQexecPrepared(dc->conn, stmt, nparams, params, NULL, NULL, 0);
	const char *sqlstate;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		return res;
	sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	bench_error(dc->client, "%s: %s %s", stmt, sqlstate ? sqlstate : "-",
				PQresultErrorMessage(res));
	PQclear(res);
	return NULL;
}

/* run: execute a prepared statement; true if it returned its one row */
static bool
run(DistsysConn *dc, const char *stmt, int nparams, const char *const *params)
{
	PGresult   *res = exec(dc, stmt, nparams, params);

	PQclear(res);
	return res != NULL;
}

static bool
distsys_put(void *conn, const char *key, const char *json)
{
	const char *params[2] = {key, json};

	return run(conn, "put", 2, params);
}

static bool
distsys_get(void *conn, const char *key)
{
	return run(conn, "get", 1, &key);
}

/* distsys_cas: both targets' CAS; expected NULL is SQL NULL (absent) */
static int
distsys_cas(void *conn, const char *key, const char *expected, const char *json)
{
	const char *params[3] = {key, expected, json};
	PGresult   *res = exec(conn, "cas", 3, params);
	int			swapped;

	if (res == NULL)
		return -1;
	swapped = !PQgetisnull(res, 0, 0) && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return swapped;
}

/* distsys_read: both targets' linearizable read, the value's JSON text */
static bool
distsys_read(void *conn, const char *key, char **value)
{
	PGresult   *res = exec(conn, "get", 1, &key);

	if (res == NULL)
		return false;
	*value = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return true;
}

static void
distsys_close(void *conn)
{
	DistsysConn *dc = conn;

	PQfinish(dc->conn);
	free(dc);
}

/*
 * distsys_set_timeout: the session's distsys.raft_request_timeout, so that
 * a request stuck on a dead leader gives up after ms and can be sent again.
 */
static bool
distsys_set_timeout(void *conn, int ms)
{
	DistsysConn *dc = conn;
	char		sql[96];
	PGresult   *res;
	bool		ok;

	snprintf(sql, sizeof(sql), "SET distsys.raft_request_timeout = %d", ms);
	res = PQexec(dc->conn, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		bench_error(dc->client, "%s", PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

const KvTarget distsys_kv_target = {
	"distsys", distsys_open, distsys_put, distsys_get, distsys_close,
	distsys_set_timeout, distsys_cas, distsys_read
};

const KvTarget paxos_kv_target = {
	"paxos", paxos_open, NULL, distsys_get, distsys_close,
	distsys_set_timeout, distsys_cas, distsys_read
};
