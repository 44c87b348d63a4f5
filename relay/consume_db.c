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
 *
 * Threads: main thread only.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consume.h"
#include "log.h"
#include "util.h"

#define PARAMS_PER_MSG	7
#define FIXED_PARAMS	3

static const char *const handler_sql =
"SELECT to_regprocedure($1 || '(text,text,jsonb,jsonb)')::text,"
"       to_regprocedure($1 || '(text,text,bytea,jsonb)')::text,"
"       (SELECT bool_or(proisstrict) FROM pg_catalog.pg_proc"
"         WHERE oid IN (to_regprocedure($1 || '(text,text,jsonb,jsonb)'),"
"                       to_regprocedure($1 || '(text,text,bytea,jsonb)')))";

static const char *const dead_sql =
"INSERT INTO distsys.inbox_dead (consumer, topic, kafka_partition, kafka_offset,"
"                                key, payload, headers, message_id, attempts, error)"
" SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
"  WHERE NOT EXISTS (SELECT FROM distsys.inbox_dead WHERE consumer = $1"
"                     AND message_id = $8 AND topic = $2 AND kafka_partition = $3"
"                     AND kafka_offset = $4)";

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
	else if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		log_error("--handler %s must not be STRICT: keys and payloads may be NULL", handler);
	else
	{
		free(db->jsonb_handler);
		free(db->bytea_handler);
		db->jsonb_handler = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
		db->bytea_handler = PQgetisnull(res, 0, 1) ? NULL : strdup(PQgetvalue(res, 0, 1));
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
 * consume_db_connect: connect, check the extension and look the handler
 * up.  quiet: the failure to connect was logged already.
 */
DbConnect
consume_db_connect(ConsumeDb *db, const RelayOptions *opts, bool quiet)
{
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[] = {opts->db, "distsys-relay consume", NULL};
	PGresult   *res;
	DbConnect	rc;

	db->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(db->conn) != CONNECTION_OK)
	{
		if (!quiet)
			log_error("could not connect to the database: %s; retrying",
					  one_line(PQerrorMessage(db->conn)));
		consume_db_disconnect(db);
		return DB_UNREACHABLE;
	}
	res = PQexec(db->conn, "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'distsys'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0)
	{
		if (!quiet)
			log_error("the distsys extension is not installed in database \"%s\" on %s:%s: "
					  "run CREATE EXTENSION distsys there; retrying",
					  PQdb(db->conn), PQhost(db->conn), PQport(db->conn));
		PQclear(res);
		consume_db_disconnect(db);
		return DB_UNREACHABLE;
	}
	PQclear(res);
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	if ((rc = resolve_handler(db, opts->handler)) != DB_CONNECTED)
	{
		consume_db_disconnect(db);
		return rc;
	}
	log_info("database connected: \"%s\" on %s:%s; handler %s%s%s",
			 PQdb(db->conn), PQhost(db->conn), PQport(db->conn),
			 db->jsonb_handler ? db->jsonb_handler : "",
			 db->jsonb_handler && db->bytea_handler ? " and " : "",
			 db->bytea_handler ? db->bytea_handler : "");
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
	size_t		size = 512 + (size_t) n * 160;
	char	   *sql = malloc(size);
	size_t		len;

	len = snprintf(sql, size,
				   "SELECT CASE WHEN m.j"
				   " THEN distsys.inbox_apply($1, m.id, $2::regprocedure, m.t, m.k,"
				   " convert_from(m.p, 'UTF8')::jsonb, m.h, m.s)"
				   " ELSE distsys.inbox_apply($1, m.id, $3::regprocedure, m.t, m.k, m.p, m.h, m.s)"
				   " END FROM (VALUES ");
	for (int i = 0; i < n; i++)
	{
		int			b = FIXED_PARAMS + i * PARAMS_PER_MSG;

		len += snprintf(sql + len, size - len,
						"%s($%d::text, $%d::text, $%d::text, $%d::bytea, $%d::bool, $%d::jsonb, $%d::timestamptz)",
						i ? ", " : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7);
	}
	snprintf(sql + len, size - len, ") AS m(id, t, k, p, j, h, s)");
	return sql;
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
	values[1] = db->jsonb_handler;
	values[2] = db->bytea_handler;
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
 * consume_db_dead_letter: record m in distsys.inbox_dead with the error.
 * Its claim is not recorded (the failed transaction rolled it back), so a
 * requeued copy can still be applied.  A second dead letter of the same
 * delivery (after a crash before the offset commit) is not added.
 */
ApplyResult
consume_db_dead_letter(ConsumeDb *db, const char *group, InMsg *m, int attempts,
					   const char *error)
{
	const rd_kafka_message_t *k = m->rkm;
	char		part[16],
				off[24],
				att[16];
	char	   *key = k->key ? strndup(k->key, k->key_len) : NULL;
	const char *values[10] = {group, rd_kafka_topic_name(k->rkt), part, off, key,
	k->payload, m->headers, m->message_id, att, error};
	int			lengths[10] = {0, 0, 0, 0, 0, (int) k->len, 0, 0, 0, 0};
	int			formats[10] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
	PGresult   *res;
	ApplyResult rc = APPLY_OK;

	snprintf(part, sizeof(part), "%d", (int) k->partition);
	snprintf(off, sizeof(off), "%lld", (long long) k->offset);
	snprintf(att, sizeof(att), "%d", attempts);
	res = PQexecParams(db->conn, dead_sql, 10, NULL, values, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = failure(db, res);
	PQclear(res);
	free(key);
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
