/*-------------------------------------------------------------------------
 *
 * consume.c
 *	  The consume command of distsys-relay: the main loop that takes
 *	  messages from Kafka, applies them through distsys.inbox_apply and
 *	  commits each partition's offset only past messages that took effect
 *	  (or were dead-lettered).
 *
 * Exactly-once effect.  Kafka delivers at least once; the inbox claim and
 * the handler's work commit in one database transaction, so a message
 * whose transaction committed is a duplicate ever after.  The offset is
 * committed to Kafka only after that transaction committed.  A crash
 * between the two redelivers the message, and the claim turns it into a
 * no-op (counted as a duplicate).
 *
 * Order.  Each assigned partition has a queue of its messages in offset
 * order.  A batch takes messages from the heads of the partitions that
 * are not waiting, one partition after another, each partition's in
 * offset order, and applies them in that order in one transaction
 * (consume_db.c).  When a batch fails, its messages are applied one by one
 * in the same order to find the failing one; that message stops its
 * partition (the later messages of the partition wait behind it, and
 * fetching it is paused) while other partitions go on:
 *	 1. the message is retried after --retry-backoff, doubling up to
 *		--retry-backoff-max;
 *	 2. after --dead-letter-after failed attempts, or at once for SQLSTATE
 *		YI001 (sent before the inbox retention horizon: it could duplicate
 *		a forgotten entry), it is written to distsys.inbox_dead with the
 *		error, unclaimed;
 *	 3. once it is applied or dead-lettered, the partition goes on.
 * next_offset, the offset committed to Kafka, moves only in steps 3 and
 * after a successful batch, so it never passes a message that did not
 * take effect.  A lost connection counts no attempt: the messages stay
 * queued until the database is back.
 *
 * Shutdown (SIGTERM, SIGINT): the current transaction finishes, the
 * offsets are committed synchronously, the consumer leaves its group, the
 * process exits 0.  Queued messages not yet applied are redelivered to the
 * next consumer of their partition.
 *
 * Threads: one (librdkafka's own aside); counters need no lock.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "consume.h"
#include "log.h"
#include "signals.h"
#include "metrics.h"

#define CLEANUP_EVERY_S		600.0
#define IDLE_WAIT_MS		1000

typedef struct ConsumeMetrics
{
	uint64_t	consumed;		/* messages received from Kafka */
	uint64_t	applied;		/* handler ran, committed */
	uint64_t	duplicates;		/* claimed before: skipped */
	uint64_t	failed;			/* failed attempts */
	uint64_t	dead_lettered;	/* written to inbox_dead */
	uint64_t	batches;		/* committed transactions */
} ConsumeMetrics;

typedef struct Consumer
{
	const RelayOptions *opts;
	ConsumeDb	db;
	PartQueue  *parts;			/* assigned partitions */
	int			queued;			/* messages in all queues */
	int			window;			/* most messages held in memory */
	InMsg	  **batch;
	bool	   *applied;
	int			connect_backoff_ms;
	bool		db_logged;		/* the failure to connect was logged */
	bool		bad_config;		/* the handler cannot be used: exit 2 */
	bool		moved;			/* some next_offset moved: commit */
	double		next_connect;
	double		next_cleanup;
} Consumer;

static Consumer consumer;
static ConsumeMetrics cm;

/*
 * backoff_ms: the delay after failed attempt number attempts.
 */
static int
backoff_ms(int attempts)
{
	const RelayOptions *o = consumer.opts;
	double		ms = o->retry_backoff_ms * pow(2, attempts > 0 ? attempts - 1 : 0);

	return ms > o->retry_backoff_max_ms ? o->retry_backoff_max_ms : (int) ms;
}

/* ---- messages and partition queues -------------------------------- */

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_put(Buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->data = realloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/*
 * json_string: s (n bytes, UTF-8 assumed) as a JSON string.
 */
static void
json_string(Buf *b, const char *s, size_t n)
{
	buf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[8];

		if (c == '"' || c == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) c;
			buf_put(b, esc, 2);
		}
		else if (c < 0x20)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			buf_put(b, esc, 6);
		}
		else
			buf_put(b, (const char *) &c, 1);
	}
	buf_put(b, "\"", 1);
}

/*
 * format_ms: epoch milliseconds as ISO 8601 UTC.
 */
static char *
format_ms(int64_t ms)
{
	time_t		secs = (time_t) (ms / 1000);
	struct tm	tm;
	char		buf[40];
	size_t		n;

	gmtime_r(&secs, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int) (ms % 1000));
	return strdup(buf);
}

/*
 * read_headers: the headers of m as a JSON object (a header without value
 * is null; of repeated names the last wins), and the three the inbox
 * uses: message id, sent-at and content type.
 */
static void
read_headers(InMsg *m, char **content_type)
{
	rd_kafka_headers_t *hdrs = NULL;
	const char *name;
	const void *val;
	size_t		size;
	Buf			b = {0};

	buf_put(&b, "{", 1);
	*content_type = NULL;
	if (rd_kafka_message_headers(m->rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == 0; i++)
		{
			if (i > 0)
				buf_put(&b, ",", 1);
			json_string(&b, name, strlen(name));
			buf_put(&b, ":", 1);
			if (val == NULL)
				buf_put(&b, "null", 4);
			else
				json_string(&b, val, size);
			if (val == NULL)
				continue;
			if (strcmp(name, "distsys-message-id") == 0 && size > 0)
				free(m->message_id), m->message_id = strndup(val, size);
			else if (strcmp(name, "distsys-sent-at") == 0 && size > 0)
				free(m->sent_at), m->sent_at = strndup(val, size);
			else if (strcmp(name, "content-type") == 0)
				free(*content_type), *content_type = strndup(val, size);
		}
	}
	buf_put(&b, "}", 1);
	m->headers = b.data;
}

/*
 * make_msg: the queued form of rkm: message id from distsys-message-id
 * (else topic-partition-offset), sent_at from distsys-sent-at (else the
 * Kafka timestamp), and which handler variant gets the payload.
 */
static InMsg *
make_msg(rd_kafka_message_t *rkm, PartQueue *p)
{
	InMsg	   *m = calloc(1, sizeof(InMsg));
	char	   *ct;
	const ConsumeDb *db = &consumer.db;
	bool		json_type;

	m->rkm = rkm;
	m->part = p;
	read_headers(m, &ct);
	if (m->message_id == NULL && asprintf(&m->message_id, "%s-%d-%lld", p->topic,
										  (int) rkm->partition, (long long) rkm->offset) < 0)
		abort();
	if (m->sent_at == NULL)
	{
		rd_kafka_timestamp_type_t tstype;
		int64_t		ts = rd_kafka_message_timestamp(rkm, &tstype);

		if (ts >= 0)
			m->sent_at = format_ms(ts);
	}
	json_type = ct == NULL || strncmp(ct, "application/json", 16) == 0;
	m->as_json = db->bytea_handler == NULL || (db->jsonb_handler != NULL && json_type);
	free(ct);
	return m;
}

static void
free_msg(InMsg *m)
{
	rd_kafka_message_destroy(m->rkm);
	free(m->message_id);
	free(m->sent_at);
	free(m->headers);
	free(m);
}

static PartQueue *
find_part(const char *topic, int32_t partition)
{
	for (PartQueue *p = consumer.parts; p != NULL; p = p->next)
		if (p->partition == partition && strcmp(p->topic, topic) == 0)
			return p;
	return NULL;
}

/*
 * on_assigned: a partition was assigned; committed is its committed
 * offset (-1 unknown).
 */
static PartQueue *
on_assigned(const char *topic, int32_t partition, int64_t committed)
{
	PartQueue  *p = find_part(topic, partition);

	if (p == NULL)
	{
		p = calloc(1, sizeof(PartQueue));
		p->topic = strdup(topic);
		p->partition = partition;
		p->next = consumer.parts;
		consumer.parts = p;
	}
	p->last_seen = -1;
	p->committed = committed;
	p->next_offset = committed;
	return p;
}

/*
 * drop_queue: forget p's queued messages (they will be delivered again).
 */
static void
drop_queue(PartQueue *p)
{
	while (p->head != NULL)
	{
		InMsg	   *m = p->head;

		p->head = m->next;
		free_msg(m);
		consumer.queued--;
	}
	p->tail = NULL;
	p->count = 0;
}

/*
 * on_revoked: topic NULL: partitions are about to go, commit what was
 * applied; else forget that partition.
 */
static void
on_revoked(const char *topic, int32_t partition)
{
	PartQueue **pp;

	if (topic == NULL)
	{
		kconsumer_commit(consumer.parts, true);
		return;
	}
	for (pp = &consumer.parts; *pp != NULL; pp = &(*pp)->next)
	{
		PartQueue  *p = *pp;

		if (p->partition == partition && strcmp(p->topic, topic) == 0)
		{
			drop_queue(p);
			*pp = p->next;
			free(p->topic);
			free(p);
			return;
		}
	}
}

/*
 * enqueue: a message from Kafka joins its partition's queue, unless it is
 * at or below an offset already queued (fetched again after a pause).
 */
static void
enqueue(rd_kafka_message_t *rkm)
{
	const char *topic = rd_kafka_topic_name(rkm->rkt);
	PartQueue  *p = find_part(topic, rkm->partition);
	InMsg	   *m;

	if (p == NULL)
		p = on_assigned(topic, rkm->partition, -1);
	if (rkm->offset <= p->last_seen)
	{
		rd_kafka_message_destroy(rkm);
		return;
	}
	cm.consumed++;
	p->last_seen = rkm->offset;
	m = make_msg(rkm, p);
	if (p->tail)
		p->tail->next = m;
	else
		p->head = m;
	p->tail = m;
	p->count++;
	consumer.queued++;
}

/*
 * finish_head: p's head message took effect (or was dead-lettered): it
 * leaves the queue and the offset may pass it.
 */
static void
finish_head(PartQueue *p)
{
	InMsg	   *m = p->head;

	p->next_offset = m->rkm->offset + 1;
	p->head = m->next;
	if (p->head == NULL)
		p->tail = NULL;
	p->count--;
	consumer.queued--;
	free_msg(m);
	p->attempts = 0;
	p->blocked_until = 0;
	if (p->paused)
		kconsumer_pause(p, false);
	consumer.moved = true;
}

/* ---- applying ------------------------------------------------------ */

static bool
db_ready(void)
{
	return consumer.db.conn != NULL;
}

/*
 * dead_letter: step 2 of the banner.  False when the database could not
 * record it (the message stays, to be tried again).
 */
static bool
dead_letter(PartQueue *p, const char *error)
{
	InMsg	   *m = p->head;

	if (consume_db_dead_letter(&consumer.db, consumer.opts->group, m, p->attempts, error) != APPLY_OK)
	{
		if (db_ready())
			log_error("could not dead-letter message %s: %s; retrying", m->message_id,
					  consumer.db.error);
		return false;
	}
	cm.dead_lettered++;
	log_error("message %s (topic %s, partition %d, offset %lld) dead-lettered after %d attempt%s: %s",
			  m->message_id, p->topic, (int) p->partition, (long long) m->rkm->offset,
			  p->attempts, p->attempts == 1 ? "" : "s", error);
	finish_head(p);
	return true;
}

/*
 * head_failed: p's head message failed alone with the error in db: retry
 * it later, or dead-letter it (steps 1 and 2 of the banner).
 */
static void
head_failed(PartQueue *p)
{
	ConsumeDb  *db = &consumer.db;
	char		error[1100];
	int			delay;

	cm.failed++;
	p->attempts++;
	snprintf(error, sizeof(error), "%s: %s", db->sqlstate, db->error);
	if (strcmp(db->sqlstate, "YI001") == 0 || p->attempts >= consumer.opts->dead_letter_after)
	{
		if (dead_letter(p, error))
			return;
		if (!db_ready())
			return;
	}
	delay = backoff_ms(p->attempts);
	p->blocked_until = now_s() + delay / 1000.0;
	if (!p->paused)
		kconsumer_pause(p, true);
	log_warning("message %s (topic %s, partition %d, offset %lld) failed, attempt %d of %d: %s; "
				"retry in %d ms", p->head->message_id, p->topic, (int) p->partition,
				(long long) p->head->rkm->offset, p->attempts, consumer.opts->dead_letter_after,
				error, delay);
}

static void
count_outcome(bool applied)
{
	if (applied)
		cm.applied++;
	else
		cm.duplicates++;
}

/*
 * apply_head: apply p's head message alone.  False when the connection
 * was lost.
 */
static bool
apply_head(PartQueue *p)
{
	bool		applied;

	switch (consume_db_apply(&consumer.db, consumer.opts->group, &p->head, 1, &applied))
	{
		case APPLY_OK:
			cm.batches++;
			count_outcome(applied);
			finish_head(p);
			return true;
		case APPLY_FAILED:
			head_failed(p);
			return db_ready();
		case APPLY_LOST:
			break;
	}
	return false;
}

static bool
due(const PartQueue *p, double now)
{
	return p->head != NULL && p->blocked_until <= now;
}

/*
 * fill_batch: messages from the heads of the due partitions, taking one
 * from each in turn, each partition's in offset order.  Partitions whose
 * head failed before are left to apply_retries.
 */
static int
fill_batch(double now)
{
	InMsg	  **b = consumer.batch;
	int			n = 0,
				max = consumer.opts->batch_size;
	bool		more = true;

	for (PartQueue *p = consumer.parts; p != NULL; p = p->next)
		p->taken = 0;
	while (more && n < max)
	{
		more = false;
		for (PartQueue *p = consumer.parts; p != NULL && n < max; p = p->next)
		{
			InMsg	   *m = p->head;

			if (!due(p, now) || p->attempts > 0)
				continue;
			for (int i = 0; m != NULL && i < p->taken; i++)
				m = m->next;
			if (m == NULL)
				continue;
			b[n++] = m;
			p->taken++;
			more = true;
		}
	}
	return n;
}

/*
 * apply_singles: after a failed batch: each message alone, in batch
 * order, skipping partitions stopped by a failure meanwhile.
 */
static void
apply_singles(int n)
{
	for (int i = 0; i < n && db_ready(); i++)
	{
		InMsg	   *m = consumer.batch[i];
		PartQueue  *p = m->part;

		if (p->head != m || p->attempts > 0)
			continue;			/* an earlier message of p failed */
		if (!apply_head(p))
			return;
	}
}

/*
 * apply_batch: one batch; on failure, its messages one by one.
 */
static void
apply_batch(double now)
{
	int			n = fill_batch(now);
	ApplyResult rc;

	if (n == 0)
		return;
	rc = consume_db_apply(&consumer.db, consumer.opts->group, consumer.batch, n, consumer.applied);
	if (rc == APPLY_OK)
	{
		cm.batches++;
		for (int i = 0; i < n; i++)
		{
			count_outcome(consumer.applied[i]);
			finish_head(consumer.batch[i]->part);	/* batch order is queue order */
		}
		return;
	}
	if (rc == APPLY_FAILED)
	{
		log_debug("a batch of %d messages failed (%s: %s); applying them one by one",
				  n, consumer.db.sqlstate, consumer.db.error);
		if (n > 1)
			apply_singles(n);
		else
			head_failed(consumer.batch[0]->part);
	}
}

/*
 * apply_retries: the due partitions whose head failed before go alone.
 */
static void
apply_retries(double now)
{
	for (PartQueue *p = consumer.parts; p != NULL && db_ready(); p = p->next)
		if (due(p, now) && p->attempts > 0)
			apply_head(p);
}

/* ---- the loop ------------------------------------------------------ */

/*
 * step_connect: (re)connect with exponential backoff; a handler that
 * cannot be used stops the command.
 */
static void
step_connect(double now)
{
	Consumer   *c = &consumer;
	DbConnect	rc;

	if (c->db.conn != NULL || now < c->next_connect)
		return;
	rc = consume_db_connect(&c->db, c->opts, c->db_logged);
	if (rc == DB_CONNECTED)
	{
		c->db_logged = false;
		c->connect_backoff_ms = c->opts->retry_backoff_ms;
		return;
	}
	if (rc == DB_BAD_CONFIG)
	{
		c->bad_config = true;
		stop_requested = 1;
		return;
	}
	c->db_logged = true;
	c->next_connect = now + c->connect_backoff_ms / 1000.0;
	c->connect_backoff_ms = c->connect_backoff_ms * 2 > c->opts->retry_backoff_max_ms ?
		c->opts->retry_backoff_max_ms : c->connect_backoff_ms * 2;
}

/*
 * step_cleanup: distsys.inbox_cleanup() at start and every 10 minutes.
 */
static void
step_cleanup(double now)
{
	long long	deleted = 0;

	if (!db_ready() || now < consumer.next_cleanup)
		return;
	consumer.next_cleanup = now + CLEANUP_EVERY_S;
	if (consume_db_cleanup(&consumer.db, &deleted) == APPLY_OK)
		log_info("inbox cleanup: %lld entries past the retention forgotten", deleted);
	else if (db_ready())
		log_warning("inbox cleanup failed: %s; next in %.0f s", consumer.db.error,
					CLEANUP_EVERY_S);
}

/*
 * step_intake: take what Kafka has, up to the window.
 */
static void
step_intake(void)
{
	rd_kafka_message_t *rkm;

	while (consumer.queued < consumer.window && (rkm = kconsumer_poll()) != NULL)
		enqueue(rkm);
}

/*
 * next_timeout_ms: 0 when work is due now, else until the next retry or
 * reconnection, at most IDLE_WAIT_MS.
 */
static int
next_timeout_ms(double now)
{
	double		t = now + IDLE_WAIT_MS / 1000.0;

	if (!db_ready())
		t = consumer.next_connect < t ? consumer.next_connect : t;
	else
		for (PartQueue *p = consumer.parts; p != NULL; p = p->next)
			if (p->head != NULL)
				t = p->blocked_until < t ? p->blocked_until : t;
	if (consumer.queued >= consumer.window)
		t = t < now + 0.05 ? t : now + 0.05;	/* the Kafka queue is not drained */
	t -= now;
	return t <= 0 ? 0 : (int) (t * 1000) + 1;
}

static void
wait_events(int timeout_ms)
{
	struct pollfd fds[16];
	int			n = 0,
				nm;

	fds[n++] = (struct pollfd) {.fd = signals_fd(), .events = POLLIN};
	fds[n++] = (struct pollfd) {.fd = kconsumer_wakeup_fd(), .events = POLLIN};
	nm = metrics_pollfds(fds + n, 16 - n);
	if (poll(fds, n + nm, timeout_ms) < 0)
		return;
	metrics_serve(fds + n, nm);
}

/*
 * render_page: the consume command's metrics.
 */
static int
render_page(char *buf, size_t size)
{
	int			n = 0;

#define OUT(...) (n += snprintf(buf + n, n < (int) size ? size - n : 0, __VA_ARGS__))
#define COUNTER(name, help, value) \
	OUT("# HELP distsys_relay_consumer_" name " " help "\n" \
		"# TYPE distsys_relay_consumer_" name " counter\n" \
		"distsys_relay_consumer_" name " %llu\n", (unsigned long long) (value))
	COUNTER("messages_consumed_total", "Messages received from Kafka (redeliveries included).", cm.consumed);
	COUNTER("messages_applied_total", "Messages whose handler ran and committed.", cm.applied);
	COUNTER("duplicates_skipped_total", "Messages the inbox had seen already: not applied again.", cm.duplicates);
	COUNTER("messages_failed_total", "Failed attempts to apply a message.", cm.failed);
	COUNTER("messages_dead_lettered_total", "Messages written to distsys.inbox_dead.", cm.dead_lettered);
	COUNTER("transactions_total", "Committed apply transactions (batches).", cm.batches);
	OUT("# HELP distsys_relay_consumer_lag Messages of the partition after the last one applied.\n"
		"# TYPE distsys_relay_consumer_lag gauge\n");
	for (PartQueue *p = consumer.parts; p != NULL && n < (int) size - 256; p = p->next)
	{
		int64_t		lag = kconsumer_lag(p);

		if (lag >= 0)
			OUT("distsys_relay_consumer_lag{topic=\"%s\",partition=\"%d\"} %lld\n",
				p->topic, (int) p->partition, (long long) lag);
	}
#undef COUNTER
#undef OUT
	return n < (int) size ? n : (int) size - 1;
}

static bool
require_setting(const char *value, const char *name, const char *env)
{
	if (value != NULL && value[0] != '\0')
		return true;
	log_error("--%s is required for the consume command: give --%s, set %s or put %s "
			  "in the config file", name, name, env, name);
	return false;
}

/*
 * consume_init: the initial state; false when the configuration is refused.
 */
static bool
consume_init(const RelayOptions *opts)
{
	static const ConsumerHooks hooks = {on_assigned, on_revoked};
	Consumer   *c = &consumer;

	c->window = opts->batch_size * 10 < 10000 ? 10000 : opts->batch_size * 10;
	c->batch = calloc(opts->batch_size, sizeof(InMsg *));
	c->applied = calloc(opts->batch_size, sizeof(bool));
	if (!signals_setup())
		return false;
	metrics_set_page(render_page);
	if (opts->metrics_addr != NULL && opts->metrics_addr[0] != '\0' &&
		!metrics_listen(opts->metrics_addr))
		return false;
	return kconsumer_start(opts, &hooks);
}

/*
 * consume_shutdown: commit what took effect, leave the group, close.
 */
static void
consume_shutdown(void)
{
	log_info("stopping: committing offsets (%d messages received but not applied "
			 "will be delivered again)", consumer.queued);
	kconsumer_commit(consumer.parts, true);
	kconsumer_close();
	while (consumer.parts != NULL)
		on_revoked(consumer.parts->topic, consumer.parts->partition);
	consume_db_disconnect(&consumer.db);
	log_info("stopped: %llu applied, %llu duplicates skipped, %llu dead-lettered",
			 (unsigned long long) cm.applied, (unsigned long long) cm.duplicates,
			 (unsigned long long) cm.dead_lettered);
}

/*
 * consume_run: the consume command.  Returns the exit code:
 * RELAY_EXIT_USAGE for a missing setting or a handler that cannot be
 * used, RELAY_EXIT_FAILURE when the consumer cannot be configured,
 * RELAY_EXIT_OK after SIGTERM.
 */
int
consume_run(const RelayOptions *opts)
{
	Consumer   *c = &consumer;

	if (!require_setting(opts->db, "db", "DISTSYS_DB") ||
		!require_setting(opts->brokers, "brokers", "DISTSYS_BROKERS") ||
		!require_setting(opts->topics, "topic", "DISTSYS_TOPIC") ||
		!require_setting(opts->group, "group", "DISTSYS_GROUP") ||
		!require_setting(opts->handler, "handler", "DISTSYS_HANDLER"))
		return RELAY_EXIT_USAGE;
	/* the handler is checked before joining the group, when the db is up */
	memset(c, 0, sizeof(*c));
	c->opts = opts;
	c->connect_backoff_ms = opts->retry_backoff_ms;
	step_connect(now_s());
	if (c->bad_config)
		return RELAY_EXIT_USAGE;
	if (!consume_init(opts))
	{
		consume_db_disconnect(&c->db);
		return RELAY_EXIT_FAILURE;
	}
	log_info("consuming %s as group %s with handler %s", opts->topics, opts->group, opts->handler);
	while (!stop_requested)
	{
		double		now = now_s();

		step_connect(now);
		step_cleanup(now);
		step_intake();
		if (db_ready())
			apply_retries(now);
		if (db_ready())
			apply_batch(now);
		if (c->moved || kconsumer_commit_pending())
		{
			c->moved = false;
			kconsumer_commit(c->parts, false);
		}
		wait_events(next_timeout_ms(now_s()));
	}
	consume_shutdown();
	metrics_close();
	return c->bad_config ? RELAY_EXIT_USAGE : RELAY_EXIT_OK;
}
