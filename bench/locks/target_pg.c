/*-------------------------------------------------------------------------
 *
 * target_pg.c
 *	  PostgreSQL targets of the lock benchmark, all through libpq over TCP
 *	  on loopback with prepared statements:
 *
 *	  pg-advisory   pg_[try_]advisory_lock(hashtext(name)) / pg_advisory_unlock
 *	  pg-dlock      distsys.dlock_try / dlock_acquire / dlock_release, session-owned
 *	  pg-dlock-app  the same with owner => 'app-N': durable leases
 *	  pg-unique     INSERT INTO locks / DELETE FROM locks (the unique-index pattern)
 *
 * Every statement runs in autocommit with synchronous_commit on, so the
 * durable targets pay one WAL flush per call.  Each connection belongs to
 * one client thread; nothing here is shared.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lockbench.h"

#define TEXT_OID 25
#define UNIQUE_VIOLATION "23505"

/* How a statement's result says "granted" (or, for a release, "released"). */
typedef enum PgOutcome
{
	PG_RETURNS_TRUE,			/* one boolean row: t granted, f busy */
	PG_RETURNS_NOT_NULL,		/* one row: a value granted, NULL busy */
	PG_RETURNS_ANY,				/* success is the grant (void functions) */
	PG_AFFECTS_ONE_ROW			/* one row written; unique violation is busy */
} PgOutcome;

typedef struct PgStatement
{
	const char *sql;			/* NULL: mode not offered */
	PgOutcome	outcome;
} PgStatement;

typedef struct PgSpec
{
	int			nparams;		/* 1: $1 name; 2: also $2 owner */
	PgStatement try_lock;
	PgStatement wait_lock;
	PgStatement release;
	const char *setup;			/* run once by client 0, may be NULL */
} PgSpec;

typedef struct PgConn
{
	PGconn	   *conn;
	int			client;
	char		owner[32];
	const PgSpec *spec;
} PgConn;

static const PgSpec advisory_spec = {
	1,
	{"SELECT pg_try_advisory_lock(hashtext($1))", PG_RETURNS_TRUE},
	{"SELECT pg_advisory_lock(hashtext($1))", PG_RETURNS_ANY},
	{"SELECT pg_advisory_unlock(hashtext($1))", PG_RETURNS_TRUE},
	NULL
};

static const PgSpec dlock_spec = {
	1,
	{"SELECT distsys.dlock_try($1)", PG_RETURNS_NOT_NULL},
	{"SELECT distsys.dlock_acquire($1)", PG_RETURNS_NOT_NULL},
	{"SELECT distsys.dlock_release($1)", PG_RETURNS_TRUE},
	NULL
};

static const PgSpec dlock_app_spec = {
	2,
	{"SELECT distsys.dlock_try($1, owner => $2)", PG_RETURNS_NOT_NULL},
	{"SELECT distsys.dlock_acquire($1, owner => $2)", PG_RETURNS_NOT_NULL},
	{"SELECT distsys.dlock_release($1, $2)", PG_RETURNS_TRUE},
	NULL
};

static const PgSpec unique_spec = {
	2,
	{"INSERT INTO locks(name, owner, expires_at)"
	 " VALUES ($1, $2, now() + interval '30 seconds')", PG_AFFECTS_ONE_ROW},
	{NULL, PG_AFFECTS_ONE_ROW},
	{"DELETE FROM locks WHERE name = $1 AND owner = $2", PG_AFFECTS_ONE_ROW},
	"SET client_min_messages = warning;"
	" CREATE TABLE IF NOT EXISTS locks (name text PRIMARY KEY,"
	" owner text NOT NULL, expires_at timestamptz NOT NULL)"
};

/*
 * pg_prepare: prepare one statement under "name"; false after reporting
 * the server's error (for distsys: usually that the extension is missing).
 */
static bool
pg_prepare(PgConn *pc, const char *name, const PgStatement *st)
{
	static const unsigned int types[2] = {TEXT_OID, TEXT_OID};
	PGresult   *res;
	bool		ok;

	if (st->sql == NULL)
		return true;
	res = PQprepare(pc->conn, name, st->sql, pc->spec->nparams, types);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		bench_error(pc->client, "prepare \"%s\": %s", st->sql,
					PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

static bool
pg_setup(PgConn *pc)
{
	PGresult   *res;
	bool		ok;

	if (pc->spec->setup == NULL || pc->client != 0)
		return true;
	res = PQexec(pc->conn, pc->spec->setup);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		bench_error(pc->client, "%s", PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/*
 * pg_open_spec: connect on loopback, create what the target needs and
 * prepare its statements.  NULL (after printing why) on any failure.
 */
static void *
pg_open_spec(const BenchConfig *cfg, int client, const PgSpec *spec)
{
	PgConn	   *pc = calloc(1, sizeof(PgConn));
	char		conninfo[256];

	snprintf(conninfo, sizeof(conninfo),
			 "host=%s port=%d dbname=postgres user=postgres"
			 " application_name=lockbench options='-c synchronous_commit=on'",
			 BENCH_HOST, cfg->port);
	pc->client = client;
	pc->spec = spec;
	snprintf(pc->owner, sizeof(pc->owner), "app-%d", client);
	pc->conn = PQconnectdb(conninfo);
	if (PQstatus(pc->conn) != CONNECTION_OK)
	{
		bench_error(client, "connect: %s", PQerrorMessage(pc->conn));
		PQfinish(pc->conn);
		free(pc);
		return NULL;
	}
	if (!pg_setup(pc) ||
		!pg_prepare(pc, "try_lock", &spec->try_lock) ||
		!pg_prepare(pc, "wait_lock", &spec->wait_lock) ||
		!pg_prepare(pc, "release", &spec->release))
	{
		PQfinish(pc->conn);
		free(pc);
		return NULL;
	}
	return pc;
}

/*
 * pg_run: execute a prepared statement and classify its result as
 * LOCK_GRANTED (for a release: released), LOCK_BUSY or LOCK_FAILED.
 */
static LockResult
pg_run(PgConn *pc, const char *stmt, PgOutcome outcome, const char *lock)
{
	const char *params[2] = {lock, pc->owner};
	PGresult   *res = PQexecPrepared(pc->conn, stmt, pc->spec->nparams,
									 params, NULL, NULL, 0);
	ExecStatusType status = PQresultStatus(res);
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	LockResult	r = LOCK_FAILED;

	if (status == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		if (outcome == PG_RETURNS_ANY)
			r = LOCK_GRANTED;
		else if (outcome == PG_RETURNS_NOT_NULL)
			r = PQgetisnull(res, 0, 0) ? LOCK_BUSY : LOCK_GRANTED;
		else if (outcome == PG_RETURNS_TRUE)
			r = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? LOCK_GRANTED : LOCK_BUSY;
	}
	else if (status == PGRES_COMMAND_OK && outcome == PG_AFFECTS_ONE_ROW)
		r = strcmp(PQcmdTuples(res), "1") == 0 ? LOCK_GRANTED : LOCK_BUSY;
	else if (status == PGRES_FATAL_ERROR && outcome == PG_AFFECTS_ONE_ROW &&
			 sqlstate != NULL && strcmp(sqlstate, UNIQUE_VIOLATION) == 0)
		r = LOCK_BUSY;
	else
		bench_error(pc->client, "%s: %s", stmt,
					status == PGRES_FATAL_ERROR ? PQresultErrorMessage(res) :
					"unexpected result");
	PQclear(res);
	return r;
}

static LockResult
pg_acquire(void *conn, const char *lock, bool wait)
{
	PgConn	   *pc = conn;

	if (wait)
		return pg_run(pc, "wait_lock", pc->spec->wait_lock.outcome, lock);
	return pg_run(pc, "try_lock", pc->spec->try_lock.outcome, lock);
}

/*
 * pg_release: true if the server says the lock was released; a release
 * that finds nothing to release is an error here, since every release
 * follows a grant.
 */
static bool
pg_release(void *conn, const char *lock)
{
	PgConn	   *pc = conn;
	LockResult	r = pg_run(pc, "release", pc->spec->release.outcome, lock);

	if (r == LOCK_BUSY)
		bench_error(pc->client, "release of \"%s\" found it not held", lock);
	return r == LOCK_GRANTED;
}

static void
pg_close(void *conn)
{
	PgConn	   *pc = conn;

	PQfinish(pc->conn);
	free(pc);
}

/*
 * pg_stats_query: run the distsys counters query in one of its two forms
 * (view, or function without arguments); NULL if neither works.
 */
static PGresult *
pg_stats_query(PgConn *pc)
{
	static const char *const forms[] = {
		"SELECT * FROM distsys.dlock_stats",
		"SELECT * FROM distsys.dlock_stats()",
	};

	for (int i = 0; i < 2; i++)
	{
		PGresult   *res = PQexec(pc->conn, forms[i]);

		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			return res;
		PQclear(res);
	}
	return NULL;
}

/* is_integer_type: int2, int4 or int8, the types of counters */
static bool
is_integer_type(Oid type)
{
	return type == 20 || type == 21 || type == 23;
}

static bool
parse_number(const char *s, double *out)
{
	char	   *end;

	*out = strtod(s, &end);
	return end != s && *end == '\0';
}

/*
 * pg_dlock_stats: distsys.dlock_stats as name/value pairs.  One row: each
 * integer column is a counter (derived ratios are left out).  Several rows: each row is (name, ...,
 * value), counters as rows.
 */
static int
pg_dlock_stats(void *conn, StatPair *out, int max)
{
	PGresult   *res = pg_stats_query(conn);
	int			n = 0;
	int			nrows;
	int			ncols;
	double		v;

	if (res == NULL)
		return -1;
	nrows = PQntuples(res);
	ncols = PQnfields(res);
	if (nrows == 1)
	{
		for (int c = 0; c < ncols && n < max; c++)
			if (is_integer_type(PQftype(res, c)) && !PQgetisnull(res, 0, c) &&
				parse_number(PQgetvalue(res, 0, c), &v))
			{
				snprintf(out[n].name, sizeof(out[n].name), "%s", PQfname(res, c));
				out[n++].value = v;
			}
	}
	else if (ncols >= 2)
	{
		for (int r = 0; r < nrows && n < max; r++)
			if (parse_number(PQgetvalue(res, r, ncols - 1), &v))
			{
				snprintf(out[n].name, sizeof(out[n].name), "%s", PQgetvalue(res, r, 0));
				out[n++].value = v;
			}
	}
	PQclear(res);
	return n;
}

static void *
pg_advisory_open(const BenchConfig *cfg, int client)
{
	return pg_open_spec(cfg, client, &advisory_spec);
}

static void *
pg_dlock_open(const BenchConfig *cfg, int client)
{
	return pg_open_spec(cfg, client, &dlock_spec);
}

static void *
pg_dlock_app_open(const BenchConfig *cfg, int client)
{
	return pg_open_spec(cfg, client, &dlock_app_spec);
}

static void *
pg_unique_open(const BenchConfig *cfg, int client)
{
	return pg_open_spec(cfg, client, &unique_spec);
}

const LockTarget pg_advisory_target = {
	"pg-advisory", true, true,
	pg_advisory_open, pg_acquire, pg_release, pg_close, NULL
};

const LockTarget pg_dlock_target = {
	"pg-dlock", true, true,
	pg_dlock_open, pg_acquire, pg_release, pg_close, pg_dlock_stats
};

const LockTarget pg_dlock_app_target = {
	"pg-dlock-app", true, true,
	pg_dlock_app_open, pg_acquire, pg_release, pg_close, pg_dlock_stats
};

const LockTarget pg_unique_target = {
	"pg-unique", true, false,
	pg_unique_open, pg_acquire, pg_release, pg_close, NULL
};
