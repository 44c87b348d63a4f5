/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  outbox_send: queue a message in the caller's transaction.
 *
 * The message is a row of distsys.outbox, inserted in the caller's
 * transaction, so it exists exactly when the business write it goes with
 * commits.  distsys-relay publishes it to Kafka and deletes it once the
 * broker acknowledged it.
 *
 * Per-key order.  The relay publishes the rows of one key in id order, so
 * ids of one key must be assigned in the order the transactions commit.
 * outbox_send therefore takes a transaction-level lock on the key (an
 * advisory lock tag of its own, on a 64-bit hash of the key) before drawing
 * the id: a second transaction sending the same key waits until the first
 * has committed or aborted, and then draws a larger id.  Transactions
 * sending different keys never wait for each other (barring a 64-bit hash
 * collision, which only serializes them).  Messages without a key have no
 * order and take no lock.
 *
 * Gaps.  Ids are drawn before commit, so a row with a smaller id can become
 * visible after a larger one.  The transaction takes its xid before drawing
 * the id, which lets the relay tell when no such late row can remain: a
 * relay fetch takes an xid X of its own, and once a later snapshot's xmin
 * is above X, every id up to the largest that fetch saw is settled (see
 * relay/outbox.c; a snapshot's xmax is not such a bound, because a running
 * transaction's xid can be at or above it).
 *
 * Each message carries a globally unique id, "<system identifier>-<database
 * oid>-<timeline>-<server start>-<outbox id>", which consumers deduplicate
 * on (see inbox_claim); it is sent as the Kafka header distsys-message-id.
 * The id is made at the insert and kept in the row: the outbox id alone can
 * be drawn again after the server went back in its WAL (a failover to an
 * asynchronous standby, a restore), and each such history begins with a
 * server start (and most with a new timeline), so the prefix differs.
 * A commit notifies channel distsys_outbox once per transaction, which
 * wakes the relay.  The lane count, the channel, the message id's format
 * and the payload type names are shared with the relay through
 * distsys_protocol.h.
 *
 * Durable before visible.  A transaction that sends commits durably,
 * whatever synchronous_commit says (distsys_commit_durably): its commit
 * record is flushed, and acknowledged by the synchronous standbys if the
 * server has any, before other sessions see the row, so the relay never
 * publishes a message that a crash (or a failover to a synchronous
 * standby) then takes back with its business write, and the id sequence,
 * whose WAL precedes the commit, is flushed with it.  Asynchronous
 * standbys are not waited for: distsys-relay --standbys does that.
 *
 * Who may send where.  Once distsys.outbox_topic_grants has a row, the
 * insert also requires a row whose pattern matches the topic, for a role
 * whose privileges the current user has (NULL: any role); superusers pass.
 * The check is part of the insert statement, so a send stays one statement
 * (it costs about 3 us more, measured in a loop of sends); when it inserts
 * nothing, outbox_send raises 42501 naming the topic and the role (the id
 * it drew is left unused, as a rollback leaves one).
 * Header names starting with "distsys-" are refused: the relay sets
 * distsys-message-id and distsys-sent-at itself, and a consumer that reads
 * the first of two such headers must not get one a sender chose.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/jsonb.h"

#include "distsys.h"
#include "distsys_protocol.h"
#include "spi_util.h"

#define OUTBOX_TOPIC_MAX	249 /* Kafka's limit */
#define OUTBOX_RESERVED_HEADER	"distsys-"	/* DISTSYS_HEADER_MESSAGE_ID, ... */
#define OUTBOX_LOCK_CLASS	0x4453	/* advisory tag field4: "DS", unlike
									 * pg_advisory_lock's 1 and 2 */

/* $8: the calling role, $9: whether it is a superuser */
static const char *const insert_sql =
"INSERT INTO distsys.outbox"
"       (id, lane, topic, key, payload, payload_type, headers, message_id)"
" SELECT n, CASE WHEN $3 IS NULL THEN n % " CppAsString2(DISTSYS_OUTBOX_LANES)
" ELSE $1 END, $2, $3, $4, $5,"
"        coalesce($6, '{}'), $7 || n"
"   FROM nextval('distsys.outbox_id_seq') AS n"
"  WHERE $9 OR NOT EXISTS (SELECT FROM distsys.outbox_topic_grants)"
"     OR EXISTS (SELECT FROM distsys.outbox_topic_grants g"
"                 WHERE (g.topic_pattern = $2"
"                        OR (right(g.topic_pattern, 1) = '*'"
"                            AND starts_with($2, left(g.topic_pattern, -1))))"
"                   AND (g.role IS NULL OR pg_has_role($8, g.role, 'USAGE')))"
" RETURNING id";

static SPIPlanPtr insert_plan = NULL;

static void
bad_message(const char *msg, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 detail ? errdetail("%s", detail) : 0));
}

/*
 * check_topic: Kafka's rules for topic names.
 */
static void
check_topic(const char *topic)
{
	size_t		len = strlen(topic);

	if (len == 0)
		bad_message("outbox topic must not be empty", NULL);
	if (len > OUTBOX_TOPIC_MAX)
		bad_message("outbox topic is too long",
					"Kafka topic names have at most 249 characters.");
	if (strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0)
		bad_message("outbox topic must not be \".\" or \"..\"", NULL);
	for (const char *c = topic; *c; c++)
		if (!isalnum((unsigned char) *c) && *c != '.' && *c != '_' && *c != '-')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("outbox topic \"%s\" contains an invalid character", topic),
					 errdetail("Kafka topic names use only ASCII letters, digits, '.', '_' and '-'.")));
}

/*
 * check_headers: a JSON object whose values are strings (or null): Kafka
 * headers are named byte strings.
 */
static void
check_headers(Jsonb *headers)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		bad_message("outbox headers must be a JSON object",
					"Pass headers such as '{\"trace-id\": \"abc\"}'.");
	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY && v.val.string.len >= (int) strlen(OUTBOX_RESERVED_HEADER) &&
			strncmp(v.val.string.val, OUTBOX_RESERVED_HEADER, strlen(OUTBOX_RESERVED_HEADER)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("outbox header name \"%.*s\" is reserved",
							v.val.string.len, v.val.string.val),
					 errdetail("Header names starting with \"%s\" are set by distsys-relay.",
							   OUTBOX_RESERVED_HEADER)));
		if (tok == WJB_VALUE && v.type != jbvString && v.type != jbvNull)
			bad_message("outbox header values must be strings",
						"Kafka headers are byte strings; convert numbers and objects to text.");
	}
}

/*
 * message_id_prefix: "<system identifier>-<database oid>-<timeline>-<server
 * start>-", unique to this database of this history of this cluster.  The
 * caller has an xid, so the server is not in recovery and its insertion
 * timeline is set; it changes only at the end of recovery, before any
 * backend can write.
 */
static const char *
message_id_prefix(void)
{
	static char prefix[96];
	static Oid	prefix_db = InvalidOid;

	if (prefix_db != MyDatabaseId)
	{
		snprintf(prefix, sizeof(prefix), DISTSYS_MESSAGE_ID_PREFIX_FORMAT,
				 (uint64_t) GetSystemIdentifier(), MyDatabaseId,
				 (unsigned int) GetWALInsertionTimeLine(), (int64_t) PgStartTime);
		prefix_db = MyDatabaseId;
	}
	return prefix;
}

/*
 * lock_key: serialize the transactions that send this key (see banner);
 * returns the key's lane.
 */
static int
lock_key(const char *key)
{
	uint64		h = hash_bytes_extended((const unsigned char *) key, strlen(key), 0);
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 OUTBOX_LOCK_CLASS);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	return (int) (h % DISTSYS_OUTBOX_LANES);
}

/*
 * topic_denied: the error of a send that outbox_topic_grants does not allow.
 */
static void
topic_denied(const char *topic)
{
	const char *role = GetUserNameFromId(GetUserId(), false);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to send to outbox topic \"%s\" as role \"%s\"",
					topic, role),
			 errdetail("distsys.outbox_topic_grants has rows, and none allows this topic to this role or a role whose privileges it has."),
			 errhint("An administrator can allow it: INSERT INTO distsys.outbox_topic_grants VALUES (%s, %s).",
					 quote_literal_cstr(topic), quote_literal_cstr(role))));
}

/*
 * outbox_send_common: validate, lock the key, insert, notify.
 */
static int64
outbox_send_common(FunctionCallInfo fcinfo, Datum payload, const char *type)
{
	Oid			types[9] = {INT4OID, TEXTOID, TEXTOID, BYTEAOID, TEXTOID, JSONBOID, TEXTOID,
	OIDOID, BOOLOID};
	Datum		values[9];
	char		nulls[9] = "         ";
	char	   *topic;
	char	   *key = NULL;
	int64		id;
	bool		isnull;

	if (PG_ARGISNULL(0))
		bad_message("outbox topic must not be null", NULL);
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_topic(topic);
	if (!PG_ARGISNULL(2))
		key = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		check_headers(PG_GETARG_JSONB_P(3));

	/*
	 * Take an xid before drawing the id: then a transaction holding an id a
	 * relay's fetch did not see has an xid below the xid that fetch took,
	 * and the relay's safe cursor can wait for it (see relay/outbox.c).
	 */
	(void) GetTopTransactionId();
	values[0] = Int32GetDatum(key ? lock_key(key) : 0);
	values[1] = CStringGetTextDatum(topic);
	values[2] = key ? CStringGetTextDatum(key) : (Datum) 0;
	nulls[2] = key ? ' ' : 'n';
	values[3] = payload;
	nulls[3] = PG_ARGISNULL(1) ? 'n' : ' ';
	values[4] = CStringGetTextDatum(type);
	values[5] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[5] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[6] = CStringGetTextDatum(message_id_prefix());
	values[7] = ObjectIdGetDatum(GetUserId());
	values[8] = BoolGetDatum(superuser());

	SPI_connect();
	if (distsys_spi_run(&insert_plan, insert_sql, 9, types, values, nulls, false) == 0)
		topic_denied(topic);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	distsys_commit_durably();
	Async_Notify(DISTSYS_OUTBOX_CHANNEL, "");
	return id;
}

/*
 * requeue_sql: dead letters (all, for a NULL $1) back to the end of the
 * outbox.  created_at is the time the message was sent, not requeued: the
 * relay stamps it as distsys-sent-at, and an inbox judges by it whether
 * the message is older than its retention (YI001), so a fresh time would
 * let an already-delivered message, whose inbox row was cleaned up,
 * through as new.  The message id is kept too: it is the same message.
 */
static const char *const requeue_sql =
"WITH d AS (DELETE FROM distsys.outbox_dead"
"            WHERE $1 IS NULL OR id = ANY ($1) RETURNING *)"
"INSERT INTO distsys.outbox"
"       (lane, topic, key, payload, payload_type, headers, message_id, created_at)"
" SELECT lane, topic, key, payload, payload_type, headers, message_id, created_at"
"   FROM d ORDER BY id";

static SPIPlanPtr requeue_plan = NULL;

PG_FUNCTION_INFO_V1(outbox_requeue);

/*
 * outbox_requeue(ids bigint[] DEFAULT NULL): how many dead letters went
 * back.  The transaction then commits durably and wakes the relay, as a
 * send's does: the relay publishes what it puts back, and a crash must not
 * return to outbox_dead a message that was published meanwhile.
 */
Datum
outbox_requeue(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum		values[1] = {PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0)};
	char		nulls[1] = {PG_ARGISNULL(0) ? 'n' : ' '};
	uint64		n;

	SPI_connect();
	n = distsys_spi_run(&requeue_plan, requeue_sql, 1, types, values, nulls, false);
	SPI_finish();
	if (n > 0)
	{
		distsys_commit_durably();
		Async_Notify(DISTSYS_OUTBOX_CHANNEL, "");
	}
	PG_RETURN_INT64((int64) n);
}

PG_FUNCTION_INFO_V1(outbox_send_jsonb);
PG_FUNCTION_INFO_V1(outbox_send_text);
PG_FUNCTION_INFO_V1(outbox_send_bytea);

/* outbox_send(topic, payload jsonb, key, headers): the JSON text is sent */
Datum
outbox_send_jsonb(PG_FUNCTION_ARGS)
{
	Datum		payload = (Datum) 0;

	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *j = PG_GETARG_JSONB_P(1);
		char	   *s = JsonbToCString(NULL, &j->root, VARSIZE(j));

		payload = PointerGetDatum(cstring_to_text(s));	/* text and bytea share a layout */
	}
	PG_RETURN_INT64(outbox_send_common(fcinfo, payload, DISTSYS_PAYLOAD_JSON));
}

/* outbox_send(topic, payload text, key, headers): the text's bytes */
Datum
outbox_send_text(PG_FUNCTION_ARGS)
{
	Datum		payload = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);

	PG_RETURN_INT64(outbox_send_common(fcinfo, payload, DISTSYS_PAYLOAD_TEXT));
}

/* outbox_send(topic, payload bytea, key, headers): the bytes as they are */
Datum
outbox_send_bytea(PG_FUNCTION_ARGS)
{
	Datum		payload = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);

	PG_RETURN_INT64(outbox_send_common(fcinfo, payload, DISTSYS_PAYLOAD_BYTES));
}
