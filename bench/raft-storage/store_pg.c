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
 *	  srv-table, srv-wal-tx
 *					the same as pg-table and pg-wal-tx, but looped inside
 *					the server by one CALL of a PL/pgSQL procedure that
 *					COMMITs after each batch and times it with
 *					clock_timestamp(): what a background worker's SPI
 *					statement and commit cost, with no round trip
 *
 * raft_log must exist (run-raft-storage.sh creates it); the srv kinds
 * create their procedure, raftstore_loop.  One connection, one thread.
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
	const char *how;		/* srv kinds: 'table' or 'wal' */
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
 * connect_store: connects with synchronous_commit = on and reads raft_log's
 * largest index, so that indexes go on from there.
 */
static Store *
connect_store(const StoreConfig *cfg)
{
	Store	   *st = calloc(1, sizeof(Store));
	char		conninfo[256];
	PGresult   *res;

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
	return st;
}

/* pg_open: connects and prepares the kind's statement */
static Store *
pg_open(const StoreConfig *cfg)
{
	static const Oid types[4] = {20, 17, 23, 23};	/* int8, bytea, int4, int4 */
	const char *sql = NULL;
	Store	   *st;
	PGresult   *res;

	for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
		if (strcmp(statements[i].kind, cfg->kind) == 0)
			sql = statements[i].sql;
	if (sql == NULL)
	{
		fprintf(stderr, "raftstore: unknown PostgreSQL kind %s\n", cfg->kind);
		return NULL;
	}
	if ((st = connect_store(cfg)) == NULL)
		return NULL;
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

/*
 * The server-side loop: batches of n entries of sz bytes (random-looking
 * bytes made once), each committed, for ms milliseconds; lat gets each
 * batch's latency in microseconds, INSERT (or messages) and COMMIT.
 */
static const char *const loop_procedure =
"CREATE OR REPLACE PROCEDURE raftstore_loop(how text, first bigint, sz int, n int, ms int,\n"
"	INOUT lat float8[] DEFAULT NULL) LANGUAGE plpgsql AS $$\n"
"DECLARE\n"
"	stop timestamptz := clock_timestamp() + ms * interval '1 millisecond';\n"
"	payload bytea;\n"
"	t0 timestamptz;\n"
"	next_idx bigint := first;\n"
"BEGIN\n"
"	SELECT decode(string_agg(md5(g::text), ''), 'hex') INTO payload\n"
"		FROM generate_series(0, (sz * n) / 16) AS g;\n"
"	lat := '{}';\n"
"	LOOP\n"
"		t0 := clock_timestamp();\n"
"		EXIT WHEN t0 >= stop;\n"
"		IF how = 'table' THEN\n"
"			INSERT INTO raft_log (idx, term, data)\n"
"				SELECT next_idx + i, 1, substring(payload FROM i * sz + 1 FOR sz)\n"
"				FROM generate_series(0, n - 1) AS i;\n"
"		ELSE\n"
"			PERFORM pg_logical_emit_message(true, 'raft', substring(payload FROM i * sz + 1 FOR sz))\n"
"				FROM generate_series(0, n - 1) AS i;\n"
"		END IF;\n"
"		COMMIT;\n"
"		lat := lat || (extract(epoch FROM clock_timestamp() - t0) * 1e6)::float8;\n"
"		next_idx := next_idx + n;\n"
"	END LOOP;\n"
"END $$";

/* srv_open: connects and creates the procedure */
static Store *
srv_open(const StoreConfig *cfg)
{
	Store	   *st;

	if (strcmp(cfg->kind, "srv-table") != 0 && strcmp(cfg->kind, "srv-wal-tx") != 0)
	{
		fprintf(stderr, "raftstore: unknown server-loop kind %s\n", cfg->kind);
		return NULL;
	}
	if ((st = connect_store(cfg)) == NULL || !query_ok(st->conn, loop_procedure, NULL))
		return NULL;
	st->how = strcmp(cfg->kind, "srv-table") == 0 ? "table" : "wal";
	return st;
}

/* call_loop: one CALL of the procedure for ms; its latencies into *us, *n */
static bool
call_loop(Store *st, int ms, double **us, size_t *n)
{
	char		sql[256];
	PGresult   *res;
	char	   *p;

	snprintf(sql, sizeof(sql), "CALL raftstore_loop('%s', %llu, %d, %d, %d)", st->how,
			 (unsigned long long) st->base + 1, st->size, st->batch, ms);
	if (!query_ok(st->conn, sql, &res))
		return false;
	p = PQgetvalue(res, 0, 0);
	*n = 0;
	*us = malloc((strlen(p) / 2 + 1) * sizeof(double));
	while (*p != '\0' && *p != '}')
	{
		p++;					/* '{' or ',' */
		if (*p != '}' && *p != '\0')
			(*us)[(*n)++] = strtod(p, &p);
	}
	PQclear(res);
	st->base += *n * st->batch;
	return true;
}

/* srv_run_window: a warm-up CALL, then the recorded one */
static bool
srv_run_window(Store *st, int warmup_ms, int run_ms, double **us, size_t *n)
{
	if (warmup_ms > 0)
	{
		if (!call_loop(st, warmup_ms, us, n))
			return false;
		free(*us);
	}
	return call_loop(st, run_ms, us, n);
}

const StoreOps srv_store_ops = {
	.prefix = "srv-",
	.open = srv_open,
	.close = pg_close,
	.run_window = srv_run_window
};
