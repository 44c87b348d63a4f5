/*-------------------------------------------------------------------------
 *
 * store_pg.c
 *	  The Raft log in PostgreSQL: table rows or WAL records, written over
 *	  libpq by one connection with synchronous_commit = on.
 *
 * Kinds (each batch is one statement in autocommit, so one round trip and
 * one transaction; the batch's payload travels as one binary bytea and is
 * cut into entries on the server):
 *	  pg-table		INSERT of the batch's rows into raft_log (index, term,
 *					bytes), committed durably
 *	  pg-wal-tx		pg_logical_emit_message(true, 'raft', entry) per entry:
 *					the messages make the transaction take an xid, so its
 *					commit writes a commit record and flushes the WAL up to
 *					it: durable
 *	  pg-wal-notx	pg_logical_emit_message(false, ...) per entry: WAL
 *					records, but no xid and so no commit record and no
 *					flush (PostgreSQL 15's SQL function cannot ask for
 *					one): NOT durable when it returns; the WAL writer
 *					flushes within wal_writer_delay
 *	  pg-select1	SELECT 1: the client round trip, which a background
 *					worker writing through SPI or XLogInsert does not pay
 *
 * raft_log must exist (run-raft-storage.sh creates it).  One connection,
 * one thread.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "raftstore.h"

struct Store
{
	PGconn	   *conn;
	int			size;
	int			batch;
	int			nparams;		/* 4, or 0 for SELECT 1 */
	uint64_t	base;			/* raft_log's largest index before the run */
};

/* $1 first index, $2 the batch's payload, $3 entry size, $4 entries */
#define CUT_ENTRY "substring($2::bytea FROM i * $3::int + 1 FOR $3::int)"
#define EACH_ENTRY "FROM generate_series(0, $4::int - 1) AS i"

static const struct
{
	const char *kind;
	const char *sql;
}			statements[] = {
	{"pg-table", "INSERT INTO raft_log (idx, term, data) SELECT $1::bigint + i, 1, "
	 CUT_ENTRY " " EACH_ENTRY},
	{"pg-wal-tx", "SELECT count(pg_logical_emit_message(true, 'raft', " CUT_ENTRY ")) "
	 EACH_ENTRY},
	{"pg-wal-notx", "SELECT count(pg_logical_emit_message(false, 'raft', " CUT_ENTRY ")) "
	 EACH_ENTRY},
	{"pg-select1", "SELECT 1"},
};

/* query_ok: runs sql; false after printing the server's error */
static bool
query_ok(PGconn *conn, const char *sql, PGresult **keep)
{
	PGresult   *res = PQexec(conn, sql);
	bool		ok = PQresultStatus(res) == PGRES_TUPLES_OK ||
		PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(stderr, "raftstore: %s: %s", sql, PQerrorMessage(conn));
	if (ok && keep)
		*keep = res;
	else
		PQclear(res);
	return ok;
}

/*
 * pg_open: connects with synchronous_commit = on, prepares the kind's
 * statement, and reads raft_log's largest index so that indexes go on
 * from there.
 */
static Store *
pg_open(const StoreConfig *cfg)
{
	static const Oid types[4] = {20, 17, 23, 23};	/* int8, bytea, int4, int4 */
	Store	   *st = calloc(1, sizeof(Store));
	const char *sql = NULL;
	char		conninfo[256];
	PGresult   *res;

	for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
		if (strcmp(statements[i].kind, cfg->kind) == 0)
			sql = statements[i].sql;
	if (sql == NULL)
	{
		fprintf(stderr, "raftstore: unknown PostgreSQL kind %s\n", cfg->kind);
		return NULL;
	}
	snprintf(conninfo, sizeof(conninfo), "host=%s port=%d dbname=postgres user=postgres "
			 "options='-c synchronous_commit=on'", BENCH_HOST, cfg->port);
	st->conn = PQconnectdb(conninfo);
	st->size = cfg->size;
	st->batch = cfg->batch;
	if (PQstatus(st->conn) != CONNECTION_OK ||
		!query_ok(st->conn, "SELECT coalesce(max(idx), 0) FROM raft_log", &res))
	{
		fprintf(stderr, "raftstore: %s", PQerrorMessage(st->conn));
		return NULL;
	}
	st->base = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	st->nparams = strcmp(cfg->kind, "pg-select1") == 0 ? 0 : 4;
	res = PQprepare(st->conn, "append", sql, st->nparams, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "raftstore: prepare: %s", PQerrorMessage(st->conn));
		return NULL;
	}
	PQclear(res);
	return st;
}

/* pg_append_sync: one execution of the prepared statement (autocommit) */
static bool
pg_append_sync(Store *st, uint64_t first_index, const uint8_t *payload)
{
	char		idx[24],
				size[12],
				batch[12];
	const char *values[4] = {idx, (const char *) payload, size, batch};
	int			lengths[4] = {0, st->size * st->batch, 0, 0};
	int			formats[4] = {0, 1, 0, 0};
	PGresult   *res;
	bool		ok;

	snprintf(idx, sizeof(idx), "%llu", (unsigned long long) (st->base + first_index));
	snprintf(size, sizeof(size), "%d", st->size);
	snprintf(batch, sizeof(batch), "%d", st->batch);
	res = PQexecPrepared(st->conn, "append", st->nparams,
						 values, lengths, formats, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "raftstore: append: %s", PQerrorMessage(st->conn));
	PQclear(res);
	return ok;
}

/* pg_close: ends the connection */
static void
pg_close(Store *st)
{
	PQfinish(st->conn);
	free(st);
}

const StoreOps pg_store_ops = {
	.prefix = "pg-",
	.open = pg_open,
	.append_sync = pg_append_sync,
	.close = pg_close
};
