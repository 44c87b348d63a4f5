/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  The relay's database side: one connection that LISTENs on
 *	  distsys_outbox, fetches new rows of the owned lanes, deletes the
 *	  acknowledged ones (outbox_ack) and records failures (outbox_fail).
 *
 * The safe cursor.  Ids are drawn before commit, so a row with a smaller id
 * may become visible after a larger one (different keys).  outbox_send
 * takes its xid before it draws the id, so a transaction T that drew an id
 * at or below the largest id M a fetch F saw has an xid below any xid
 * assigned after F's snapshot S was taken.  F therefore assigns itself an
 * xid X_F (pg_current_xact_id(), during the statement, so after S) and
 * leaves a "cut" (M, X_F + 1):
 *	 1. each fetch reads rows with id > safe, minus the ids already in
 *		memory (in flight, acked, waiting for their key), in id order;
 *	 2. it also reads its snapshot's xmin and assigns itself an xid;
 *	 3. a pending cut whose bound <= this xmin is settled: F's transaction
 *		has ended, so this snapshot's xmax is above X_F, hence above T's
 *		xid, and an xmin above X_F means T has ended too: T's row is visible
 *		to this fetch, which returned it, unless the fetch stopped at its
 *		LIMIT below M; then the cut waits;
 *	 4. settling sets safe = M, so dead rows at the head are not scanned
 *		again and the exclusion list stays short.
 * The snapshot's own xmax would not do as the bound: it is the latest
 * completed xid + 1, and a transaction with a larger xid that is still
 * running lowers no snapshot's xmin (it is not in the snapshot at all).
 * The xid costs one commit record per fetch, no WAL flush (nothing else
 * was written) and one xid per fetch: at most one per batch under load.
 * Taking or losing lanes resets the cursor to 0 (the rows of a new lane may
 * lie anywhere below it).
 *
 * Threads: main thread only.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "distsys_protocol.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

/*
 * fetch_sql: the rows after the cursor in the owned lanes, with the
 * snapshot's xmin and an xid of this statement (the banner), the headers as
 * "name[:value],..." in hex (decode_headers), and the WAL insert position
 * read after the snapshot was taken (as a byte count): every row visible
 * to the snapshot was committed below it (see --standbys in relay.c).  Like every
 * statement of the relay, it names each function, operator and type with
 * its schema: a role that can create objects in a schema of the relay
 * role's search_path must not be able to run code as that role.
 */
static const char *const fetch_sql =
"SELECT pg_catalog.pg_snapshot_xmin(s.s)::pg_catalog.text,"
"       (s.x::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.+) 1)::pg_catalog.text,"
"       o.id::pg_catalog.text, o.lane::pg_catalog.text, o.topic, o.key, o.payload,"
"       o.payload_type, o.message_id,"
"       EXTRACT(epoch FROM o.created_at)::pg_catalog.text, o.attempts::pg_catalog.text,"
"       (SELECT pg_catalog.string_agg("
"                 pg_catalog.encode(pg_catalog.convert_to(h.k, 'UTF8'), 'hex')"
"                 OPERATOR(pg_catalog.||)"
"                 COALESCE(':'::pg_catalog.text OPERATOR(pg_catalog.||)"
"                          pg_catalog.encode(pg_catalog.convert_to(h.v, 'UTF8'), 'hex'), ''),"
"                 ',')"
"          FROM pg_catalog.jsonb_each_text(o.headers) AS h(k, v)),"
"       (EXTRACT(epoch FROM o.created_at) OPERATOR(pg_catalog.*) 1000000)"
"         ::pg_catalog.int8::pg_catalog.text,"
"       (s.l OPERATOR(pg_catalog.-) '0/0'::pg_catalog.pg_lsn)::pg_catalog.text"
"  FROM (SELECT pg_catalog.pg_current_snapshot() AS s, pg_catalog.pg_current_xact_id() AS x,"
"               pg_catalog.pg_current_wal_insert_lsn() AS l) s"
"  LEFT JOIN LATERAL (SELECT * FROM distsys.outbox"
"                      WHERE id OPERATOR(pg_catalog.>) $1::pg_catalog.int8"
"                        AND lane OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.int2[])"
"                        AND NOT id OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.int8[])"
"                      ORDER BY id LIMIT $4::pg_catalog.int8) o ON true"
" ORDER BY o.id";

/*
 * outbox_connect: connect, check the extension and LISTEN.  Returns false
 * (logging why, unless quiet) when the database cannot be used yet.
 */
bool
outbox_connect(OutboxDb *db, const char *conninfo, bool quiet)
{
	char	   *error;
	PGconn	   *conn = db_connect(conninfo, "distsys-relay", true, &error);
	PGresult   *res = NULL;
	char		version[32];
	bool		ok = false;

	if (conn == NULL)
	{
		if (!quiet)
			log_error("could not connect to the database: %s; retrying", error);
		free(error);
		return false;
	}
	if (!db_extension_version(conn, version, sizeof(version)))
	{
		if (!quiet)
			log_error("the distsys extension is not installed in database \"%s\" on %s:%s: "
					  "run CREATE EXTENSION distsys there; retrying",
					  PQdb(conn), PQhost(conn), PQport(conn));
	}
	else
	{
		res = PQexec(conn, "LISTEN " DISTSYS_OUTBOX_CHANNEL);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (ok)
			log_info("database connected: \"%s\" on %s:%s as %s, distsys extension %s",
					 PQdb(conn), PQhost(conn), PQport(conn), PQuser(conn), version);
		else if (!quiet)
			log_error("could not LISTEN on the database: %s",
					  one_line(PQerrorMessage(conn)));
		PQclear(res);
	}
	if (!ok)
	{
		PQfinish(conn);
		return false;
	}
	db->conn = conn;
	outbox_reset_cursor(db);
	return true;
}

void
outbox_disconnect(OutboxDb *db)
{
	PQfinish(db->conn);
	db->conn = NULL;
}

/*
 * outbox_check_conn: after a failed command: false (and the connection is
 * closed, with one log line) when the connection is gone.
 */
bool
outbox_check_conn(OutboxDb *db)
{
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return true;
	if (db->conn != NULL)
	{
		log_error("database disconnected: %s; reconnecting",
				  one_line(PQerrorMessage(db->conn)));
		outbox_disconnect(db);
	}
	return false;
}

void
outbox_reset_cursor(OutboxDb *db)
{
	db->safe = 0;
	db->ncuts = 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/*
 * hex_run: the number of hex digits at h, or -1 when the run has an odd
 * length (a run ends at ':', ',' or the end; anything else is an error).
 */
static long
hex_run(const char *h)
{
	const char *p = h;

	while (hexval(*p) >= 0)
		p++;
	if ((p - h) % 2 != 0 || (*p != ':' && *p != ',' && *p != '\0'))
		return -1;
	return p - h;
}

/*
 * unhex: decode the run of len hex digits at h into out, NUL-terminated;
 * returns the byte after the NUL.
 */
static char *
unhex(const char *h, long len, char *out)
{
	for (long i = 0; i < len; i += 2)
		*out++ = (char) (hexval(h[i]) << 4 | hexval(h[i + 1]));
	*out++ = '\0';
	return out;
}

/*
 * decode_headers: the headers of a row as fetch_sql sends them: entries
 * "name[:value]" separated by ',', name and value in hex, no ':' for a
 * header without value.  Returns one malloc'd block: the MsgHeader array,
 * then each name and value, decoded and NUL-terminated.  NULL when the
 * text is not of that form (it comes from our own statement, so only a
 * bug does that).
 *
 * Two passes over the same grammar: the first checks it and counts the
 * entries and the decoded bytes, the second writes exactly that many.
 */
static MsgHeader *
decode_headers(const char *hex, int *n)
{
	size_t		bytes = 0;
	long		len;
	int			count = 0;
	const char *h;
	MsgHeader  *out;
	char	   *o;

	for (h = hex;; h++)
	{
		if ((len = hex_run(h)) < 0)
			return NULL;
		bytes += len / 2 + 1;
		h += len;
		if (*h == ':')
		{
			if ((len = hex_run(++h)) < 0)
				return NULL;
			bytes += len / 2 + 1;
			h += len;
		}
		count++;
		if (*h != ',')
			break;
	}
	if (*h != '\0')
		return NULL;				/* a second ':' in one entry */

	out = malloc(count * sizeof(MsgHeader) + bytes);
	o = (char *) (out + count);
	h = hex;
	for (int i = 0; i < count; i++, h++)
	{
		MsgHeader  *mh = &out[i];

		len = hex_run(h);
		mh->name = o;
		mh->name_len = len / 2;
		o = unhex(h, len, o);
		h += len;
		mh->value = NULL;
		mh->value_len = 0;
		if (*h == ':')
		{
			len = hex_run(++h);
			mh->value = o;
			mh->value_len = len / 2;
			o = unhex(h, len, o);
			h += len;
		}
	}
	*n = count;
	return out;
}

static char *
get_str(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

/*
 * row_to_msg: the message of result row i (binary format); NULL when the
 * row cannot be read, which only a bug does (logged).
 */
static OutboxMsg *
row_to_msg(PGresult *res, int i, char **key)
{
	OutboxMsg  *m = calloc(1, sizeof(OutboxMsg));

	m->id = strtoll(PQgetvalue(res, i, 2), NULL, 10);
	m->lane = atoi(PQgetvalue(res, i, 3));
	m->topic = get_str(res, i, 4);
	*key = PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5);
	if (!PQgetisnull(res, i, 6))
	{
		m->payload_len = PQgetlength(res, i, 6);
		m->payload = malloc(m->payload_len + 1);
		memcpy(m->payload, PQgetvalue(res, i, 6), m->payload_len);
	}
	m->payload_type = get_str(res, i, 7);
	m->message_id = get_str(res, i, 8);
	m->created_at = strtod(PQgetvalue(res, i, 9), NULL);
	m->created_us = strtoll(PQgetvalue(res, i, 12), NULL, 10);
	m->attempts = atoi(PQgetvalue(res, i, 10));
	m->lsn = strtoull(PQgetvalue(res, i, 13), NULL, 10);
	if (!PQgetisnull(res, i, 11) &&
		(m->headers = decode_headers(PQgetvalue(res, i, 11), &m->nheaders)) == NULL)
	{
		log_error("outbox row %lld: malformed headers from the database", (long long) m->id);
		queue_free_msg(m);
		return NULL;
	}
	return m;
}

/*
 * settle_cuts: steps 3 and 4 of the banner.  xmin is this fetch's; a full
 * fetch stopped at max_seen.
 */
static void
settle_cuts(OutboxDb *db, int64_t xmin, bool full, int64_t max_seen)
{
	while (db->ncuts > 0 && db->cuts[0].xmax <= xmin &&
		   (!full || db->cuts[0].max_id <= max_seen))
	{
		if (db->cuts[0].max_id > db->safe)
			db->safe = db->cuts[0].max_id;
		db->ncuts--;
		memmove(db->cuts, db->cuts + 1, db->ncuts * sizeof(OutboxCut));
	}
}

static void
add_cut(OutboxDb *db, int64_t max_id, int64_t xmax)
{
	OutboxCut  *last = db->ncuts ? &db->cuts[db->ncuts - 1] : NULL;

	if (db->ncuts == OUTBOX_MAX_CUTS)
	{
		/* merging two cuts keeps a true statement: both bounds at once */
		if (max_id > last->max_id)
			last->max_id = max_id;
		if (xmax > last->xmax)
			last->xmax = xmax;
		return;
	}
	db->cuts[db->ncuts++] = (OutboxCut) {max_id, xmax};
}

/*
 * outbox_fetch: add up to limit new rows of the given table lanes (an
 * array literal) to q.  Returns how many, or -1 on a database error.
 * *more tells whether the fetch stopped at its limit.
 */
int
outbox_fetch(OutboxDb *db, MsgQueue *q, const char *lanes, int limit, bool *more)
{
	char		safe[24],
				lim[16];
	char	   *excl = queue_ids_above(q, db->safe);
	const char *params[4] = {safe, lanes, excl, lim};
	int			formats[4] = {0, 0, 0, 0};
	PGresult   *res;
	int			n,
				added = 0;
	int64_t		max_id = 0;

	snprintf(safe, sizeof(safe), "%lld", (long long) db->safe);
	snprintf(lim, sizeof(lim), "%d", limit);
	res = PQexecParams(db->conn, fetch_sql, 4, NULL, params, NULL, formats, 1);
	free(excl);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not fetch outbox rows: %s", one_line(PQerrorMessage(db->conn)));
		PQclear(res);
		return -1;
	}
	n = PQgetisnull(res, 0, 2) ? 0 : PQntuples(res);
	for (int i = 0; i < n; i++)
	{
		char	   *key;
		OutboxMsg  *m = row_to_msg(res, i, &key);

		if (m == NULL)
		{
			/* no cut: the cursor must not pass the row (rows before it stay) */
			PQclear(res);
			return -1;
		}
		max_id = m->id > max_id ? m->id : max_id;
		queue_insert(q, m, key);
		added++;
	}
	*more = n >= limit;
	log_debug("fetch: safe %lld, %d rows up to %lld, snapshot %s:%s, %d cuts",
			  (long long) db->safe, n, (long long) max_id, PQgetvalue(res, 0, 0),
			  PQgetvalue(res, 0, 1), db->ncuts);
	settle_cuts(db, strtoll(PQgetvalue(res, 0, 0), NULL, 10), *more, max_id);
	if (n > 0)
		add_cut(db, max_id, strtoll(PQgetvalue(res, 0, 1), NULL, 10));
	PQclear(res);
	return added;
}

/*
 * put_array_text: s as an element of an array literal, double-quoted.
 */
static void
put_array_text(StrBuf *b, const char *s)
{
	strbuf_puts(b, "\"");
	for (; *s; s++)
	{
		if (*s == '"' || *s == '\\')
			strbuf_put(b, "\\", 1);
		strbuf_put(b, s, 1);
	}
	strbuf_puts(b, "\"");
}

/*
 * outbox_ack: delete the acknowledged rows in one statement, each named by
 * its id and message id (ids[i], mids[i]).
 */
bool
outbox_ack(OutboxDb *db, const int64_t *ids, char *const *mids, int n)
{
	StrBuf		idlit = {0},
				midlit = {0};
	const char *params[2];
	PGresult   *res;
	bool		ok;

	strbuf_puts(&idlit, "{");
	strbuf_puts(&midlit, "{");
	for (int i = 0; i < n; i++)
	{
		strbuf_printf(&idlit, "%s%lld", i ? "," : "", (long long) ids[i]);
		if (i)
			strbuf_puts(&midlit, ",");
		put_array_text(&midlit, mids[i]);
	}
	strbuf_puts(&idlit, "}");
	strbuf_puts(&midlit, "}");
	params[0] = idlit.data;
	params[1] = midlit.data;
	res = PQexecParams(db->conn, "SELECT distsys.outbox_ack($1::pg_catalog.int8[],"
					   " $2::pg_catalog.text[])", 2, NULL, params, NULL, NULL, 0);
	strbuf_free(&idlit);
	strbuf_free(&midlit);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		log_error("could not delete acknowledged outbox rows: %s",
				  one_line(PQerrorMessage(db->conn)));
	PQclear(res);
	return ok;
}

/*
 * outbox_fail: record a failed delivery of m.  Returns "retry", "dead" or
 * "gone", or NULL on a database error.
 */
const char *
outbox_fail(OutboxDb *db, OutboxMsg *m, const char *error, bool permanent,
			int max_attempts, int backoff_ms)
{
	char		id[24],
				max[16],
				backoff[32];
	const char *params[6] = {id, m->message_id, error, permanent ? "true" : "false", max, backoff};
	PGresult   *res;
	static char answer[8];

	snprintf(id, sizeof(id), "%lld", (long long) m->id);
	snprintf(max, sizeof(max), "%d", max_attempts);
	snprintf(backoff, sizeof(backoff), "%d milliseconds", backoff_ms);
	res = PQexecParams(db->conn, "SELECT distsys.outbox_fail($1::pg_catalog.int8, $2::pg_catalog.text,"
					   " $3::pg_catalog.text, $4::pg_catalog.bool, $5::pg_catalog.int4,"
					   " $6::pg_catalog.interval)",
					   6, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not record the failure of outbox row %lld: %s",
				  (long long) m->id, one_line(PQerrorMessage(db->conn)));
		PQclear(res);
		return NULL;
	}
	snprintf(answer, sizeof(answer), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return answer;
}

/*
 * outbox_backlog: rows waiting in the given table lanes, and the age of
 * the oldest, in seconds.
 */
bool
outbox_backlog(OutboxDb *db, const char *lanes, int64_t *count, double *oldest)
{
	const char *params[1] = {lanes};
	PGresult   *res = PQexecParams(db->conn,
								   "SELECT pg_catalog.count(*), COALESCE(EXTRACT(epoch FROM"
								   " pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)"
								   " pg_catalog.min(created_at)), 0)"
								   " FROM distsys.outbox"
								   " WHERE lane OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int2[])",
								   1, NULL, params, NULL, NULL, 0);
	bool		ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (ok)
	{
		*count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*oldest = strtod(PQgetvalue(res, 0, 1), NULL);
	}
	PQclear(res);
	return ok;
}

/*
 * outbox_notified: read what the server sent; true when a commit notified
 * the channel since the last call.
 */
bool
outbox_notified(OutboxDb *db)
{
	PGnotify   *n;
	bool		any = false;

	if (!PQconsumeInput(db->conn))
		return false;
	while ((n = PQnotifies(db->conn)) != NULL)
	{
		any = true;
		PQfreemem(n);
	}
	return any;
}
