/*-------------------------------------------------------------------------
 *
 * consume_db.c
 *	  The consume command's database side: one connection, the handler
 *	  looked up once, a batch of messages applied with one statement,
 *	  dead letters, inbox cleanup.
 *
 * A batch is one statement in autocommit mode, so one transaction and one
 * round trip: SELECT over a VALUES list with one row per message, calling
 * distsys.inbox_apply for each row in list order (a Values Scan keeps it).
 * inbox_apply claims the message id for the group and, when it is new,
 * runs the handler in the same transaction; the statement either commits
 * every claim and every handler effect of the batch, or none.  What the
 * caller does with a failed batch (apply its messages one by one) is in
 * consume.c.
 *
 * Parameters are sent separately from the statement text: the payload as
 * binary bytea (no quoting, any bytes), everything else as text.  A message
 * for the jsonb handler has its payload converted in the statement
 * (convert_from(payload, 'UTF8')::jsonb); one that is not JSON fails there.
 * Every name in the statements is schema-qualified and the handler is
 * passed by OID, not by a name looked up again (db.c, search_path).
 *
 * Dead letters.  A Kafka key, header or message id is bytes; SQL text is
 * not.  consume.c dead-letters a message whose key, header names or values
 * are not UTF-8 text without trying to apply it, and the dead letter then
 * stores them escaped (strbuf_escaped: printable ASCII, \xNN for other
 * bytes), saying so in its error.  So does a dead letter that the server
 * refused with a data exception (class 22: text it cannot store in the
 * database's encoding), so that no record can stop its partition for
 * good.
 *
 * Durability.  consume.c commits a Kafka offset once the batch's
 * statement has returned, so the batch must be durable by then: otherwise a
 * crash of the database loses the claims and effects while the offset
 * stays past them, and the messages are never delivered again.  The
 * session therefore runs at synchronous_commit = on, whatever the database
 * or role default (a database at off acknowledges a commit before its WAL
 * is flushed): the commit then waits for the local flush and, where
 * synchronous_standby_names asks for it, for a synchronous standby's.  A
 * session default of remote_apply is kept, being stronger still.  The dead
 * letters and cleanups on the same connection are durable alike.  A
 * handler must not lower the setting (SET synchronous_commit in its body
 * would outlast its statement); a SET clause on the function is fine, as
 * it ends with the call.
 *
 * Threads: main thread only.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consume.h"
#include "db.h"
#include "log.h"
#include "util.h"

#define PARAMS_PER_MSG	7
#define FIXED_PARAMS	3

/* the handler's two variants: OIDs (passed on), names (logged), STRICT */
static const char *const handler_sql =
"SELECT h.j::pg_catalog.oid::pg_catalog.text, h.b::pg_catalog.oid::pg_catalog.text,"
"       h.j::pg_catalog.text, h.b::pg_catalog.text,"
"       (SELECT pg_catalog.bool_or(p.proisstrict) FROM pg_catalog.pg_proc p"
"         WHERE p.oid OPERATOR(pg_catalog.=) h.j OR p.oid OPERATOR(pg_catalog.=) h.b)"
"  FROM (SELECT pg_catalog.to_regprocedure($1::pg_catalog.text OPERATOR(pg_catalog.||)"
"                '(pg_catalog.text,pg_catalog.text,pg_catalog.jsonb,pg_catalog.jsonb)') AS j,"
"               pg_catalog.to_regprocedure($1::pg_catalog.text OPERATOR(pg_catalog.||)"
"                '(pg_catalog.text,pg_catalog.text,pg_catalog.bytea,pg_catalog.jsonb)') AS b) h";

static const char *const dead_sql =
"INSERT INTO distsys.inbox_dead (consumer, topic, kafka_partition, kafka_offset,"
"                                key, payload, headers, message_id, attempts, error)"
" SELECT $1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.int4, $4::pg_catalog.int8,"
"        $5::pg_catalog.text, $6::pg_catalog.bytea, $7::pg_catalog.jsonb, $8::pg_catalog.text,"
"        $9::pg_catalog.int4, $10::pg_catalog.text"
"  WHERE NOT EXISTS (SELECT FROM distsys.inbox_dead d"
"                     WHERE d.consumer OPERATOR(pg_catalog.=) $1::pg_catalog.text"
"                       AND d.message_id OPERATOR(pg_catalog.=) $8::pg_catalog.text"
"                       AND d.topic OPERATOR(pg_catalog.=) $2::pg_catalog.text"
"                       AND d.kafka_partition OPERATOR(pg_catalog.=) $3::pg_catalog.int4"
"                       AND d.kafka_offset OPERATOR(pg_catalog.=) $4::pg_catalog.int8)";

/*
 * failure: record a failed statement's SQLSTATE and message in db, and
 * whether the connection survived it.
 */
static ApplyResult
failure(ConsumeDb *db, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
	snprintf(db->error, sizeof(db->error), "%s", msg ? msg : PQerrorMessage(db->conn));
	one_line(db->error);
	if (PQstatus(db->conn) != CONNECTION_OK || db->sqlstate[0] == '\0' ||
		strncmp(db->sqlstate, "08", 2) == 0 || strncmp(db->sqlstate, "57P", 3) == 0)
	{
		log_error("database connection lost: %s; reconnecting", db->error);
		consume_db_disconnect(db);
		return APPLY_LOST;
	}
	return APPLY_FAILED;
}

/*
 * set_handler: h from the OID in column col of handler_sql's result and the
 * name in column col + 2 (both NULL: no such variant).
 */
static void
set_handler(Handler *h, PGresult *res, int col)
{
	free(h->oid);
	free(h->name);
	h->oid = PQgetisnull(res, 0, col) ? NULL : strdup(PQgetvalue(res, 0, col));
	h->name = PQgetisnull(res, 0, col + 2) ? NULL : strdup(PQgetvalue(res, 0, col + 2));
}

/*
 * resolve_handler: the jsonb and bytea variants of --handler.  Returns
 * DB_BAD_CONFIG (after one log line) when neither exists or one is STRICT.
 */
static DbConnect
resolve_handler(ConsumeDb *db, const char *handler)
{
	const char *params[1] = {handler};
	PGresult   *res = PQexecParams(db->conn, handler_sql, 1, NULL, params, NULL, NULL, 0);
	DbConnect	rc = DB_BAD_CONFIG;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (PQstatus(db->conn) != CONNECTION_OK)
			rc = DB_UNREACHABLE;
		else
			log_error("invalid --handler \"%s\": %s", handler,
					  one_line(PQresultErrorMessage(res)));
	}
	else if (PQgetisnull(res, 0, 0) && PQgetisnull(res, 0, 1))
		log_error("--handler %s: no function %s(topic text, key text, payload jsonb, headers jsonb)"
				  " or %s(text, text, bytea, jsonb) in database \"%s\"; create it or fix --handler",
				  handler, handler, handler, PQdb(db->conn));
	else if (strcmp(PQgetvalue(res, 0, 4), "t") == 0)
		log_error("--handler %s must not be STRICT: keys and payloads may be NULL", handler);
	else
	{
		set_handler(&db->jsonb_handler, res, 0);
		set_handler(&db->bytea_handler, res, 1);
		rc = DB_CONNECTED;
	}
	PQclear(res);
	return rc;
}

/*
 * on_notice: a notice or warning of the server (also the FATAL sent when
 * it shuts down), as one log line instead of libpq's stderr print.
 */
static void
on_notice(void *arg, const char *message)
{
	char	   *copy = strdup(message);

	log_info("database: %s", one_line(copy));
	free(copy);
}

/*
 * synchronous_commit for the session: on, unless already remote_apply.
 * The comparison names its operator, as every statement here does (db.c:
 * a role's search_path may put its own = first).
 */
static const char *const durable_sql =
"SELECT pg_catalog.set_config('synchronous_commit'::pg_catalog.text,"
"       CASE WHEN pg_catalog.current_setting('synchronous_commit'::pg_catalog.text)"
"                 OPERATOR(pg_catalog.=) 'remote_apply'::pg_catalog.text"
"            THEN 'remote_apply'::pg_catalog.text ELSE 'on'::pg_catalog.text END, false)";

/*
 * durable_commits: make the session's commits durable before they return
 * (see the banner); false, with the error logged unless quiet, when the
 * server refused.
 */
static bool
durable_commits(PGconn *conn, bool quiet)
{
	PGresult   *res = PQexec(conn, durable_sql);
	bool		ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok && !quiet)
		log_error("could not set synchronous_commit for the consumer's session: %s; retrying",
				  one_line(PQerrorMessage(conn)));
	PQclear(res);
	return ok;
}

/*
 * consume_db_connect: connect, check the extension, make the session's
 * commits durable and look the handler up.  quiet: the failure to connect was logged already.
 */
DbConnect
consume_db_connect(ConsumeDb *db, const RelayOptions *opts, bool quiet)
{
	char	   *error;
	char		version[32];
	DbConnect	rc;

	db->conn = db_connect(opts->db, "distsys-relay consume", false, &error);
	if (db->conn == NULL)
	{
		if (!quiet)
			log_error("could not connect to the database: %s; retrying", error);
		free(error);
		return DB_UNREACHABLE;
	}
	if (!db_extension_version(db->conn, version, sizeof(version)))
	{
		if (!quiet)
			log_error("the distsys extension is not installed in database \"%s\" on %s:%s: "
					  "run CREATE EXTENSION distsys there; retrying",
					  PQdb(db->conn), PQhost(db->conn), PQport(db->conn));
		consume_db_disconnect(db);
		return DB_UNREACHABLE;
	}
	if (!durable_commits(db->conn, quiet))
	{
		consume_db_disconnect(db);
		return DB_UNREACHABLE;
	}
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	if ((rc = resolve_handler(db, opts->handler)) != DB_CONNECTED)
	{
		consume_db_disconnect(db);
		return rc;
	}
	log_info("database connected: \"%s\" on %s:%s as %s; handler %s%s%s",
			 PQdb(db->conn), PQhost(db->conn), PQport(db->conn), PQuser(db->conn),
			 db->jsonb_handler.name ? db->jsonb_handler.name : "",
			 db->jsonb_handler.name && db->bytea_handler.name ? " and " : "",
			 db->bytea_handler.name ? db->bytea_handler.name : "");
	return DB_CONNECTED;
}

void
consume_db_disconnect(ConsumeDb *db)
{
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
}

/*
 * batch_sql: the statement for n messages.
 */
static char *
batch_sql(int n)
{
	StrBuf		b = {0};

	strbuf_puts(&b,
				"SELECT CASE WHEN m.j"
				" THEN distsys.inbox_apply($1::pg_catalog.text, m.id,"
				" $2::pg_catalog.oid::pg_catalog.regprocedure, m.t, m.k,"
				" pg_catalog.convert_from(m.p, 'UTF8')::pg_catalog.jsonb, m.h, m.s)"
				" ELSE distsys.inbox_apply($1::pg_catalog.text, m.id,"
				" $3::pg_catalog.oid::pg_catalog.regprocedure, m.t, m.k, m.p, m.h, m.s)"
				" END FROM (VALUES ");
	for (int i = 0; i < n; i++)
	{
		int			p = FIXED_PARAMS + i * PARAMS_PER_MSG;

		strbuf_printf(&b,
					  "%s($%d::pg_catalog.text, $%d::pg_catalog.text, $%d::pg_catalog.text,"
					  " $%d::pg_catalog.bytea, $%d::pg_catalog.bool, $%d::pg_catalog.jsonb,"
					  " $%d::pg_catalog.timestamptz)",
					  i ? ", " : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7);
	}
	strbuf_puts(&b, ") AS m(id, t, k, p, j, h, s)");
	return b.data;
}

/*
 * consume_db_apply: apply msgs[0..n-1] in one transaction.  On APPLY_OK,
 * applied[i] says whether message i was new (its handler ran) or a
 * duplicate.
 */
ApplyResult
consume_db_apply(ConsumeDb *db, const char *group, InMsg **msgs, int n, bool *applied)
{
	int			np = FIXED_PARAMS + n * PARAMS_PER_MSG;
	const char **values = calloc(np, sizeof(char *));
	int		   *lengths = calloc(np, sizeof(int));
	int		   *formats = calloc(np, sizeof(int));
	char	   *sql = batch_sql(n);
	PGresult   *res;
	ApplyResult rc = APPLY_OK;

	values[0] = group;
	values[1] = db->jsonb_handler.oid;
	values[2] = db->bytea_handler.oid;
	for (int i = 0; i < n; i++)
	{
		const rd_kafka_message_t *k = msgs[i]->rkm;
		int			b = FIXED_PARAMS + i * PARAMS_PER_MSG;
		char	   *key = NULL;

		if (k->key != NULL)
			key = strndup(k->key, k->key_len);
		values[b] = msgs[i]->message_id;
		values[b + 1] = rd_kafka_topic_name(k->rkt);
		values[b + 2] = key;	/* freed below */
		values[b + 3] = k->payload;
		lengths[b + 3] = (int) k->len;
		formats[b + 3] = 1;
		values[b + 4] = msgs[i]->as_json ? "t" : "f";
		values[b + 5] = msgs[i]->headers;
		values[b + 6] = msgs[i]->sent_at;
	}
	res = PQexecParams(db->conn, sql, np, NULL, values, lengths, formats, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == n)
	{
		for (int i = 0; i < n; i++)
			applied[i] = strcmp(PQgetvalue(res, i, 0), "t") == 0;
	}
	else
		rc = failure(db, res);
	PQclear(res);
	for (int i = 0; i < n; i++)
		free((char *) values[FIXED_PARAMS + i * PARAMS_PER_MSG + 2]);
	free(values);
	free(lengths);
	free(formats);
	free(sql);
	return rc;
}

/*
 * put_text: append the n bytes at s to b: as they are, or escaped.
 */
static void
put_text(StrBuf *b, const char *s, size_t n, bool escape)
{
	if (escape)
		strbuf_escaped(b, s, n, false);
	else
		strbuf_put(b, s, n);
}

/*
 * consume_headers_json: the headers of rkm as a JSON object of strings (a
 * header without value is null; of repeated names jsonb keeps the last),
 * malloc'd.  With escape, every name and value is escaped (the banner).
 * *text tells whether every name and value is UTF-8 text as it is.
 */
char *
consume_headers_json(const rd_kafka_message_t *rkm, bool escape, bool *text)
{
	rd_kafka_headers_t *hdrs = NULL;
	const char *name;
	const void *val;
	size_t		size;
	StrBuf		b = {0},
				tmp = {0};

	*text = true;
	strbuf_puts(&b, "{");
	if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == 0; i++)
		{
			*text = *text && utf8_is_text(name, strlen(name)) &&
				(val == NULL || utf8_is_text(val, size));
			if (i > 0)
				strbuf_puts(&b, ",");
			tmp.len = 0;
			put_text(&tmp, name, strlen(name), escape);
			strbuf_json_string(&b, tmp.data ? tmp.data : "", tmp.len);
			strbuf_puts(&b, ":");
			if (val == NULL)
			{
				strbuf_puts(&b, "null");
				continue;
			}
			tmp.len = 0;
			put_text(&tmp, val, size, escape);
			strbuf_json_string(&b, tmp.data ? tmp.data : "", tmp.len);
		}
	}
	strbuf_puts(&b, "}");
	strbuf_free(&tmp);
	return b.data;
}

/*
 * ascii_only: whether s has no byte above 0x7f.
 */
static bool
ascii_only(const char *s)
{
	for (; *s; s++)
		if ((unsigned char) *s > 0x7f)
			return false;
	return true;
}

/*
 * insert_dead: one try of consume_db_dead_letter, with the key and the
 * headers as they are or escaped.
 */
static ApplyResult
insert_dead(ConsumeDb *db, const char *group, InMsg *m, int attempts,
			const char *error, bool escape)
{
	const rd_kafka_message_t *k = m->rkm;
	char		part[16],
				off[24],
				att[16];
	StrBuf		key = {0},
				id = {0},
				err = {0};
	bool		text;
	char	   *headers = escape ? consume_headers_json(k, true, &text) : m->headers;
	const char *values[10] = {group, rd_kafka_topic_name(k->rkt), part, off, NULL,
	k->payload, headers, NULL, att, NULL};
	int			lengths[10] = {0, 0, 0, 0, 0, (int) k->len, 0, 0, 0, 0};
	int			formats[10] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
	PGresult   *res;
	ApplyResult rc = APPLY_OK;

	snprintf(part, sizeof(part), "%d", (int) k->partition);
	snprintf(off, sizeof(off), "%lld", (long long) k->offset);
	snprintf(att, sizeof(att), "%d", attempts);
	if (k->key != NULL)
	{
		strbuf_put(&key, "", 0);
		put_text(&key, k->key, k->key_len, escape);
		values[4] = key.data;
	}
	/* text already (header_string), but maybe not in the database's encoding */
	strbuf_puts(&id, m->message_id);
	if (escape && !ascii_only(m->message_id))
	{
		id.len = 0;
		strbuf_escaped(&id, m->message_id, strlen(m->message_id), false);
	}
	values[7] = id.data;
	strbuf_puts(&err, error);
	if (escape)
		strbuf_puts(&err, " (key, header names and values stored escaped:"
					" \\xNN for each byte that is not printable ASCII, \\\\ for a backslash)");
	values[9] = err.data;
	res = PQexecParams(db->conn, dead_sql, 10, NULL, values, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = failure(db, res);
	PQclear(res);
	strbuf_free(&key);
	strbuf_free(&id);
	strbuf_free(&err);
	if (escape)
		free(headers);
	return rc;
}

/*
 * consume_db_dead_letter: record m in distsys.inbox_dead with the error.
 * Its claim is not recorded (the failed transaction rolled it back), so a
 * requeued copy can still be applied.  A second dead letter of the same
 * delivery (after a crash before the offset commit) is not added.  A
 * message that is not text, or whose dead letter the server refused with a
 * data exception, is stored escaped (the banner).
 */
ApplyResult
consume_db_dead_letter(ConsumeDb *db, const char *group, InMsg *m, int attempts,
					   const char *error)
{
	ApplyResult rc;

	if (m->not_text != NULL)
		return insert_dead(db, group, m, attempts, error, true);
	rc = insert_dead(db, group, m, attempts, error, false);
	if (rc == APPLY_FAILED && strncmp(db->sqlstate, "22", 2) == 0)
	{
		log_warning("dead letter of message %s refused (%s: %s); storing it escaped",
					m->message_id, db->sqlstate, db->error);
		rc = insert_dead(db, group, m, attempts, error, true);
	}
	return rc;
}

/*
 * consume_db_cleanup: distsys.inbox_cleanup(); *deleted is how many
 * entries it forgot.
 */
ApplyResult
consume_db_cleanup(ConsumeDb *db, long long *deleted)
{
	PGresult   *res = PQexec(db->conn, "SELECT distsys.inbox_cleanup()");
	ApplyResult rc = APPLY_OK;

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		*deleted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else
		rc = failure(db, res);
	PQclear(res);
	return rc;
}
