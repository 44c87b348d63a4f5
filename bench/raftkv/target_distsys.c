/*-------------------------------------------------------------------------
 *
 * target_distsys.c
 *	  distsys target of the key-value benchmark: distsys.raft_put and
 *	  linearizable distsys.raft_get, prepared statements over libpq on
 *	  loopback, autocommit.  A node that is not the leader forwards both
 *	  to the leader through its Raft worker.
 *
 * Each connection belongs to one client thread; nothing here is shared.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "kvbench.h"

typedef struct DistsysConn
{
	PGconn	   *conn;
	int			client;
} DistsysConn;

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

static void *
distsys_open(int port, int client)
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
	else if (prepare(dc, "put", "SELECT distsys.raft_put($1, $2::jsonb)") &&
			 prepare(dc, "get", "SELECT distsys.raft_get($1, 'linearizable')"))
		return dc;
	PQfinish(dc->conn);
	free(dc);
	return NULL;
}

/* run: execute a prepared statement; true if it returned its one row */
static bool
run(DistsysConn *dc, const char *stmt, int nparams, const char *const *params)
{
	PGresult   *res = PQexecPrepared(dc->conn, stmt, nparams, params, NULL, NULL, 0);
	bool		ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (!ok)
		bench_error(dc->client, "%s: %s", stmt, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
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
	distsys_set_timeout
};
