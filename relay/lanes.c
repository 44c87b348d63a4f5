/*-------------------------------------------------------------------------
 *
 * lanes.c
 *	  Lane ownership: relay lane r (of N) is the set of outbox lanes with
 *	  lane % N = r, and is owned through the session-owned distsys lock
 *	  "distsys.relay.lane.<N>.<r>".
 *
 * Protocol, run every LANES_TICK_MS on the relay's one connection:
 *	 1. hold the member lock "distsys.relay.member.<N>.<backend pid>", so
 *		relays without lanes count as live too;
 *	 2. renew every owned lock (lease LANES_TTL_S); a lock that cannot be
 *		renewed is lost and its lane is no longer produced;
 *	 3. cap = ceil(N / live relays), counting member locks in distsys.dlocks;
 *	 4. above the cap, release lanes that have nothing in flight (their
 *		unacked rows stay in the database for the next owner);
 *	 5. below it, dlock_try free lanes, starting at an offset from the pid so
 *		relays starting together do not collide.
 * The lock names and the outbox's lane count come from distsys_protocol.h,
 * which the extension shares.  Lock names starting with "distsys." are
 * reserved: the dlock_* functions refuse them to roles that are neither
 * superusers nor members of distsys_relay, so no other role can hold a
 * lane or pose as a relay.  The census still reads every name strictly
 * (read_lock_name): whatever dlocks shows is taken as untrusted text.
 * Session-owned locks vanish the moment their connection closes, so a dead
 * relay's lanes are taken over at the next tick of a survivor.  A new
 * owner starts from the database, where every unacked row still is, in id
 * order: per-key order survives a hand-over.  Messages the old owner had
 * in flight may arrive twice (see docs/design/outbox.md).
 *
 * Threads: main thread only.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distsys_protocol.h"
#include "lanes.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

void
lanes_init(Lanes *l, int n)
{
	l->n = n;
	l->owned = calloc(n, sizeof(bool));
	l->owned_count = 0;
	l->member = false;
}

/*
 * lanes_forget: the connection is gone, and with it every session lock.
 */
void
lanes_forget(Lanes *l)
{
	if (l->owned_count > 0)
		log_warning("lost all %d lanes with the database connection", l->owned_count);
	memset(l->owned, 0, l->n * sizeof(bool));
	l->owned_count = 0;
	l->member = false;
	metrics.lanes_owned = 0;
}

bool
lanes_owns_table_lane(int lane, void *arg)
{
	Lanes	   *l = arg;

	return l->owned[lane % l->n];
}

/*
 * lanes_table_literal: the outbox lanes of the owned relay lanes, as a
 * smallint array literal, malloc'd.
 */
char *
lanes_table_literal(const Lanes *l)
{
	char	   *buf = malloc(DISTSYS_OUTBOX_LANES * 6 + 3),
			   *p = buf;

	*p++ = '{';
	for (int lane = 0; lane < DISTSYS_OUTBOX_LANES; lane++)
		if (l->owned[lane % l->n])
			p += sprintf(p, "%s%d", p - buf > 1 ? "," : "", lane);
	strcpy(p, "}");
	return buf;
}

/*
 * query: run sql with up to one text parameter; NULL (logged) on error.
 */
static PGresult *
query(PGconn *conn, const char *sql, const char *param)
{
	PGresult   *res = PQexecParams(conn, sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	log_error("lane lock query failed: %s", one_line(PQerrorMessage(conn)));
	PQclear(res);
	return NULL;
}

static bool
lock_call(PGconn *conn, const char *fn, const char *name)
{
	char		sql[160];
	PGresult   *res;
	bool		ok;

	if (strcmp(fn, "dlock_release") == 0)
		snprintf(sql, sizeof(sql), "SELECT distsys.%s($1::pg_catalog.text)::pg_catalog.text", fn);
	else
		snprintf(sql, sizeof(sql), "SELECT distsys.%s($1::pg_catalog.text,"
				 " '%d seconds'::pg_catalog.interval)::pg_catalog.text", fn, LANES_TTL_S);
	if ((res = query(conn, sql, name)) == NULL)
		return false;
	ok = !PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 0), "false") != 0;
	PQclear(res);
	return ok;
}

static void
lane_name(const Lanes *l, int r, char *buf, size_t size)
{
	snprintf(buf, size, DISTSYS_RELAY_LANE_LOCK, l->n, r);
}

/*
 * renew_all: steps 1 and 2, the lanes in one statement.  Returns
 * LANES_LOST when a lane was lost, -1 on a database error.
 */
static int
renew_all(Lanes *l, PGconn *conn)
{
	char		name[96],
				ttl[32];
	char	   *arr = malloc((size_t) l->n * 12 + 3),
			   *p = arr;
	PGresult   *res;
	int			rc = 0;

	snprintf(name, sizeof(name), DISTSYS_RELAY_MEMBER_LOCK, l->n, PQbackendPID(conn));
	if (!(l->member = l->member ? lock_call(conn, "dlock_renew", name) :
		  lock_call(conn, "dlock_try", name)) && PQstatus(conn) != CONNECTION_OK)
	{
		free(arr);
		return -1;
	}
	*p++ = '{';
	for (int r = 0; r < l->n; r++)
		if (l->owned[r])
			p += sprintf(p, "%s%d", p - arr > 1 ? "," : "", r);
	strcpy(p, "}");
	snprintf(name, sizeof(name), DISTSYS_RELAY_LANE_LOCK_PREFIX, l->n);
	snprintf(ttl, sizeof(ttl), "%d seconds", LANES_TTL_S);
	res = PQexecParams(conn,
					   "SELECT r FROM pg_catalog.unnest($1::pg_catalog.int4[]) r"
					   " WHERE NOT distsys.dlock_renew($2::pg_catalog.text OPERATOR(pg_catalog.||)"
					   " r::pg_catalog.text, $3::pg_catalog.interval)",
					   3, NULL, (const char *[]) {arr, name, ttl}, NULL, NULL, 0);
	free(arr);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not renew the lane locks: %s", one_line(PQerrorMessage(conn)));
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++)
	{
		int			r = atoi(PQgetvalue(res, i, 0));

		log_warning("lane %d lost: its lock could not be renewed", r);
		l->owned[r] = false;
		l->owned_count--;
		rc = LANES_LOST;
	}
	PQclear(res);
	return rc;
}

/*
 * read_lock_name: whether name is exactly what fmt (DISTSYS_RELAY_LANE_LOCK
 * or DISTSYS_RELAY_MEMBER_LOCK: a prefix, then "%d.%d") formats for some
 * *n and *r.  The numbers are read as digits only, at most 9 each, and the
 * name is formatted again from them, so trailing bytes, signs, leading
 * zeros or numbers out of range make it none of the relay's.
 */
static bool
read_lock_name(const char *name, const char *fmt, int *n, int *r)
{
	size_t		prefix = strcspn(fmt, "%");
	const char *p = name + prefix;
	long		v[2];
	char		again[96];

	if (strncmp(name, fmt, prefix) != 0)
		return false;
	for (int i = 0; i < 2; i++)
	{
		char	   *end;

		if (!isdigit((unsigned char) *p))
			return false;
		v[i] = strtol(p, &end, 10);
		if (end - p > 9 || *end != (i == 0 ? '.' : '\0'))
			return false;
		p = end + 1;
	}
	*n = (int) v[0];
	*r = (int) v[1];
	snprintf(again, sizeof(again), fmt, *n, *r);
	return strcmp(again, name) == 0;
}

/*
 * census: step 3; fills held[] with the lanes some relay holds.  Returns
 * the cap, or -1 on error.
 */
static int
census(Lanes *l, PGconn *conn, bool *held)
{
	char		pattern[64];
	PGresult   *res;
	int			members = 0;

	snprintf(pattern, sizeof(pattern), DISTSYS_RELAY_LOCK_PATTERN, l->n);
	if ((res = query(conn, "SELECT name FROM distsys.dlocks"
					 " WHERE name OPERATOR(pg_catalog.~~) $1::pg_catalog.text", pattern)) == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *name = PQgetvalue(res, i, 0);
		int			n,
					r;

		if (read_lock_name(name, DISTSYS_RELAY_MEMBER_LOCK, &n, &r) && n == l->n)
			members++;
		else if (read_lock_name(name, DISTSYS_RELAY_LANE_LOCK, &n, &r) && n == l->n &&
				 r < l->n)
			held[r] = true;
	}
	PQclear(res);
	if (members < 1)
		members = 1;
	return (l->n + members - 1) / members;
}

/*
 * take_free: step 5; one log line names the lanes taken.  Returns
 * LANES_GAINED when it took any.
 */
static int
take_free(Lanes *l, PGconn *conn, const bool *held, int cap, int start)
{
	char		name[96],
				taken[256] = "";
	size_t		len = 0;
	int			n = 0;

	for (int i = 0; i < l->n && l->owned_count < cap; i++)
	{
		int			r = (start + i) % l->n;

		if (l->owned[r] || held[r])
			continue;
		lane_name(l, r, name, sizeof(name));
		if (!lock_call(conn, "dlock_try", name))
			continue;
		l->owned[r] = true;
		l->owned_count++;
		n++;
		if (len < sizeof(taken) - 16)
			len += snprintf(taken + len, sizeof(taken) - len, "%s%d", len ? "," : "", r);
	}
	if (n == 0)
		return 0;
	log_info("lanes taken: %s%s (%d of %d owned, share %d)", taken,
			 len >= sizeof(taken) - 16 ? ",..." : "", l->owned_count, l->n, cap);
	return LANES_GAINED;
}

/*
 * lanes_tick: the protocol of the banner.  Returns LANES_GAINED and/or
 * LANES_LOST, or -1 when the connection failed.
 */
int
lanes_tick(Lanes *l, PGconn *conn, MsgQueue *q)
{
	bool	   *held = calloc(l->n, sizeof(bool));
	int			rc = renew_all(l, conn),
				cap;
	int			start = PQbackendPID(conn) % l->n;
	char		name[96];

	if (rc < 0 || (cap = census(l, conn, held)) < 0)
	{
		free(held);
		return -1;
	}
	for (int i = 0; i < l->n && l->owned_count > cap; i++)
	{
		int			r = (start + l->n - 1 - i) % l->n;

		if (!l->owned[r] || queue_inflight_in_lane(q, r, l->n) > 0)
			continue;
		lane_name(l, r, name, sizeof(name));
		lock_call(conn, "dlock_release", name);
		l->owned[r] = false;
		l->owned_count--;
		rc |= LANES_LOST;
		log_info("lane %d released to rebalance (cap %d)", r, cap);
	}
	rc |= take_free(l, conn, held, cap, start);
	free(held);
	metrics.lanes_owned = l->owned_count;
	return PQstatus(conn) == CONNECTION_OK ? rc : -1;
}
