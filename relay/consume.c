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
 * A message whose key or headers are not UTF-8 text (Kafka carries bytes;
 * inbox_apply takes text) can never be applied: it is dead-lettered as it
 * reaches the head of its partition, without an attempt, with its key and
 * headers escaped (consume_db.c), so no record stops a partition for good.
 * next_offset, the offset committed to Kafka, moves only in steps 3 and
 * after a successful batch, so it never passes a message that did not
 * take effect.
 *
 * --standbys N.  The session commits at synchronous_commit = on, so a
 * synchronous standby has every batch before its offset moves; an
 * asynchronous one may not, and a failover to it would lose the effect of
 * messages whose offsets were committed.  With --standbys, done_offset
 * follows steps 3 and the batches instead, and next_offset catches up in
 * two stages (step_standbys): a partition that moved takes done_offset as
 * its settle_offset, with the WAL insert position read after its commit;
 * once N physical standbys flushed past that position, next_offset takes
 * settle_offset.  So the offset trails the standbys by at most a poll
 * (STANDBY_POLL_S) and two settle points.  A lost connection counts no attempt: the messages stay
 * queued until the database is back.
 *
 * Shutdown (SIGTERM, SIGINT): the current transaction finishes, the
 * offsets are committed synchronously, the consumer leaves its group, the
 * process exits 0.  Queued messages not yet applied are redelivered to the
 * next consumer of their partition.
 *
 * State: one Consumer, on consume_run's stack, passed to every function
 * here and to the hooks of loop.c, consume_kafka.c (rebalances) and
 * metrics.c (the page).  Threads: one (librdkafka's own aside); the
 * counters need no lock.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consume.h"
#include "db.h"
#include "distsys_protocol.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "signals.h"
#include "util.h"

#define CLEANUP_EVERY_S		600.0
#define IDLE_WAIT_S			1.0
#define FULL_WAIT_S			0.05	/* the window is full, Kafka's queue is not */
#define STANDBY_POLL_S		0.005	/* --standbys: while offsets wait for them */

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
	KConsumer	kc;
	ConsumeMetrics cm;
	PartQueue  *parts;			/* assigned partitions */
	int			queued;			/* messages in all queues */
	int			window;			/* most messages held in memory */
	InMsg	  **batch;
	bool	   *applied;
	Reconnect	reconnect;
	bool		bad_config;		/* the handler cannot be used: exit 2 */
	bool		moved;			/* some next_offset moved: commit */
	bool		settling;		/* --standbys: some done_offset waits */
	double		next_cleanup;
} Consumer;

/* ---- messages and partition queues -------------------------------- */

/*
 * header_string: the value of the last header called name, malloc'd, or
 * NULL when there is none (or, unless empty_ok, it is empty).  A value
 * that is not UTF-8 text comes escaped (strbuf_escaped, printable ASCII):
 * so a message id stays whole (a NUL would cut it) and can be logged and
 * stored; the message is dead-lettered anyway (make_msg).
 */
static char *
header_string(rd_kafka_headers_t *hdrs, const char *name, bool empty_ok)
{
	const void *val;
	size_t		size;
	StrBuf		b = {0};

	if (hdrs == NULL || rd_kafka_header_get_last(hdrs, name, &val, &size) != 0 ||
		val == NULL || (size == 0 && !empty_ok))
		return NULL;
	if (utf8_is_text(val, size))
		return strndup(val, size);
	strbuf_escaped(&b, val, size, false);
	return b.data;
}

/*
 * make_msg: the queued form of rkm: headers as JSON, message id from
 * distsys-message-id (else topic-partition-offset), sent_at from
 * distsys-sent-at (else the Kafka timestamp), which handler variant gets
 * the payload, and whether its key and headers can be SQL text at all.
 */
static InMsg *
make_msg(Consumer *c, rd_kafka_message_t *rkm, PartQueue *p)
{
	InMsg	   *m = calloc(1, sizeof(InMsg));
	rd_kafka_headers_t *hdrs = NULL;
	char	   *ct;
	bool		json_type,
				text;

	m->rkm = rkm;
	m->part = p;
	m->headers = consume_headers_json(rkm, false, &text);
	if (!text)
		m->not_text = "a Kafka header name or value is not UTF-8 text";
	if (rkm->key != NULL && !utf8_is_text(rkm->key, rkm->key_len))
		m->not_text = "the Kafka key is not UTF-8 text";
	(void) rd_kafka_message_headers(rkm, &hdrs);
	m->message_id = header_string(hdrs, DISTSYS_HEADER_MESSAGE_ID, false);
	m->sent_at = header_string(hdrs, DISTSYS_HEADER_SENT_AT, false);
	ct = header_string(hdrs, DISTSYS_HEADER_CONTENT_TYPE, true);
	if (m->message_id == NULL &&
		asprintf(&m->message_id, DISTSYS_FALLBACK_MESSAGE_ID_FORMAT, p->topic,
				 rkm->partition, rkm->offset) < 0)
		abort();
	if (m->sent_at == NULL)
	{
		rd_kafka_timestamp_type_t tstype;
		int64_t		ts = rd_kafka_message_timestamp(rkm, &tstype);
		char		buf[40];

		/*
		 * The sender chooses the record's timestamp: one past the year
		 * 9999 (which neither ISO 8601 nor timestamptz can hold, and whose
		 * microseconds overflow) counts as none, like a negative one.
		 */
		if (ts >= 0 && ts <= INT64_C(253402300799999))
		{
			format_timestamp(ts * 1000, 3, buf, sizeof(buf));
			m->sent_at = strdup(buf);
		}
	}
	json_type = ct == NULL ||
		strncmp(ct, DISTSYS_CONTENT_TYPE_JSON, strlen(DISTSYS_CONTENT_TYPE_JSON)) == 0;
	m->as_json = c->db.bytea_handler.oid == NULL ||
		(c->db.jsonb_handler.oid != NULL && json_type);
	free(ct);
	return m;
}

/*
 * free_msg: release m and the Kafka message it holds.
 */
static void
free_msg(InMsg *m)
{
	rd_kafka_message_destroy(m->rkm);
	free(m->message_id);
	free(m->sent_at);
	free(m->headers);
	free(m);
}

/*
 * find_part: the queue of an assigned partition, or NULL.
 */
static PartQueue *
find_part(Consumer *c, const char *topic, int32_t partition)
{
	for (PartQueue *p = c->parts; p != NULL; p = p->next)
		if (p->partition == partition && strcmp(p->topic, topic) == 0)
			return p;
	return NULL;
}

/*
 * on_assigned: a partition was assigned; committed is its committed
 * offset (-1 unknown).  A hook of consume_kafka.c.
 */
static PartQueue *
on_assigned(void *arg, const char *topic, int32_t partition, int64_t committed)
{
	Consumer   *c = arg;
	PartQueue  *p = find_part(c, topic, partition);

	if (p == NULL)
	{
		p = calloc(1, sizeof(PartQueue));
		p->topic = strdup(topic);
		p->partition = partition;
		p->next = c->parts;
		c->parts = p;
	}
	p->last_seen = -1;
	p->committed = committed;
	p->next_offset = p->done_offset = committed;
	p->settle_offset = -1;
	return p;
}

/*
 * drop_queue: forget p's queued messages (they will be delivered again).
 */
static void
drop_queue(Consumer *c, PartQueue *p)
{
	while (p->head != NULL)
	{
		InMsg	   *m = p->head;

		p->head = m->next;
		free_msg(m);
		c->queued--;
	}
	p->tail = NULL;
	p->count = 0;
}

/*
 * on_revoked: topic NULL: partitions are about to go, commit what was
 * applied; else forget that partition.  A hook of consume_kafka.c.
 */
static void
on_revoked(void *arg, const char *topic, int32_t partition)
{
	Consumer   *c = arg;
	PartQueue **pp;

	if (topic == NULL)
	{
		kconsumer_commit(&c->kc, c->parts, true);
		return;
	}
	for (pp = &c->parts; *pp != NULL; pp = &(*pp)->next)
	{
		PartQueue  *p = *pp;

		if (p->partition == partition && strcmp(p->topic, topic) == 0)
		{
			drop_queue(c, p);
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
enqueue(Consumer *c, rd_kafka_message_t *rkm)
{
	const char *topic = rd_kafka_topic_name(rkm->rkt);
	PartQueue  *p = find_part(c, topic, rkm->partition);
	InMsg	   *m;

	if (p == NULL)
		p = on_assigned(c, topic, rkm->partition, -1);
	if (rkm->offset <= p->last_seen)
	{
		rd_kafka_message_destroy(rkm);
		return;
	}
	c->cm.consumed++;
	p->last_seen = rkm->offset;
	m = make_msg(c, rkm, p);
	if (p->tail)
		p->tail->next = m;
	else
		p->head = m;
	p->tail = m;
	p->count++;
	c->queued++;
}

/*
 * finish_head: p's head message took effect (or was dead-lettered): it
 * leaves the queue and the offset may pass it.
 */
static void
finish_head(Consumer *c, PartQueue *p)
{
	InMsg	   *m = p->head;

	p->done_offset = m->rkm->offset + 1;
	if (c->opts->standbys == 0)
		p->next_offset = p->done_offset;
	p->head = m->next;
	if (p->head == NULL)
		p->tail = NULL;
	p->count--;
	c->queued--;
	free_msg(m);
	p->attempts = 0;
	p->blocked_until = 0;
	if (p->paused)
		kconsumer_pause(&c->kc, p, false);
	if (c->opts->standbys == 0)
		c->moved = true;
	else
		c->settling = true;		/* step_standbys moves next_offset */
}

/* ---- applying ------------------------------------------------------ */

/*
 * db_ready: whether the database connection is up (a failure may have
 * closed it in the middle of a turn).
 */
static bool
db_ready(const Consumer *c)
{
	return c->db.conn != NULL;
}

/*
 * dead_letter: step 2 of the banner.  False when the database could not
 * record it (the message stays, to be tried again).
 */
static bool
dead_letter(Consumer *c, PartQueue *p, const char *error)
{
	InMsg	   *m = p->head;

	if (consume_db_dead_letter(&c->db, c->opts->group, m, p->attempts, error) != APPLY_OK)
	{
		if (db_ready(c))
			log_error("could not dead-letter message %s: %s; retrying", m->message_id,
					  c->db.error);
		return false;
	}
	c->cm.dead_lettered++;
	if (p->attempts == 0)
		log_error("message %s (topic %s, partition %d, offset %lld) dead-lettered without an attempt: %s",
				  m->message_id, p->topic, (int) p->partition, (long long) m->rkm->offset, error);
	else
		log_error("message %s (topic %s, partition %d, offset %lld) dead-lettered after %d attempt%s: %s",
				  m->message_id, p->topic, (int) p->partition, (long long) m->rkm->offset,
				  p->attempts, p->attempts == 1 ? "" : "s", error);
	finish_head(c, p);
	return true;
}

/*
 * head_failed: p's head message failed alone with the error in c->db:
 * retry it later, or dead-letter it (steps 1 and 2 of the banner).
 */
static void
head_failed(Consumer *c, PartQueue *p)
{
	ConsumeDb  *db = &c->db;
	char		error[1100];
	int			delay;

	c->cm.failed++;
	p->attempts++;
	snprintf(error, sizeof(error), "%s: %s", db->sqlstate, db->error);
	if (strcmp(db->sqlstate, DISTSYS_SQLSTATE_INBOX_TOO_OLD) == 0 || p->attempts >= c->opts->dead_letter_after)
	{
		if (dead_letter(c, p, error))
			return;
		if (!db_ready(c))
			return;
	}
	delay = loop_backoff_ms(c->opts, p->attempts);
	p->blocked_until = now_s() + delay / 1000.0;
	if (!p->paused)
		kconsumer_pause(&c->kc, p, true);
	log_warning("message %s (topic %s, partition %d, offset %lld) failed, attempt %d of %d: %s; "
				"retry in %d ms", p->head->message_id, p->topic, (int) p->partition,
				(long long) p->head->rkm->offset, p->attempts, c->opts->dead_letter_after,
				error, delay);
}

/*
 * count_outcome: one message that took effect, or was a duplicate.
 */
static void
count_outcome(Consumer *c, bool applied)
{
	if (applied)
		c->cm.applied++;
	else
		c->cm.duplicates++;
}

/*
 * apply_head: apply p's head message alone.  False when the connection
 * was lost.
 */
static bool
apply_head(Consumer *c, PartQueue *p)
{
	bool		applied;

	switch (consume_db_apply(&c->db, c->opts->group, &p->head, 1, &applied))
	{
		case APPLY_OK:
			c->cm.batches++;
			count_outcome(c, applied);
			finish_head(c, p);
			return true;
		case APPLY_FAILED:
			head_failed(c, p);
			return db_ready(c);
		case APPLY_LOST:
			break;
	}
	return false;
}

/*
 * due: whether p has a message that may be applied now.
 */
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
fill_batch(Consumer *c, double now)
{
	InMsg	  **b = c->batch;
	int			n = 0,
				max = c->opts->batch_size;
	bool		more = true;

	for (PartQueue *p = c->parts; p != NULL; p = p->next)
		p->taken = 0;
	while (more && n < max)
	{
		more = false;
		for (PartQueue *p = c->parts; p != NULL && n < max; p = p->next)
		{
			InMsg	   *m = p->head;

			if (!due(p, now) || p->attempts > 0)
				continue;
			for (int i = 0; m != NULL && i < p->taken; i++)
				m = m->next;
			if (m == NULL || m->not_text)
				continue;		/* refuse_not_text takes it once it is the head */
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
apply_singles(Consumer *c, int n)
{
	for (int i = 0; i < n && db_ready(c); i++)
	{
		InMsg	   *m = c->batch[i];
		PartQueue  *p = m->part;

		if (p->head != m || p->attempts > 0)
			continue;			/* an earlier message of p failed */
		if (!apply_head(c, p))
			return;
	}
}

/*
 * apply_batch: one batch; on failure, its messages one by one.
 */
static void
apply_batch(Consumer *c, double now)
{
	int			n = fill_batch(c, now);
	ApplyResult rc;

	if (n == 0)
		return;
	rc = consume_db_apply(&c->db, c->opts->group, c->batch, n, c->applied);
	if (rc == APPLY_OK)
	{
		c->cm.batches++;
		for (int i = 0; i < n; i++)
		{
			count_outcome(c, c->applied[i]);
			finish_head(c, c->batch[i]->part);	/* batch order is queue order */
		}
		return;
	}
	if (rc == APPLY_FAILED)
	{
		log_debug("a batch of %d messages failed (%s: %s); applying them one by one",
				  n, c->db.sqlstate, c->db.error);
		if (n > 1)
			apply_singles(c, n);
		else
			head_failed(c, c->batch[0]->part);
	}
}

/*
 * refuse_not_text: dead-letter the due heads whose key or headers are not
 * text, without an attempt (see the banner).  A dead letter the database
 * did not take is tried again after the retry backoff.
 */
static void
refuse_not_text(Consumer *c, double now)
{
	char		error[128];

	for (PartQueue *p = c->parts; p != NULL; p = p->next)
		while (db_ready(c) && due(p, now) && p->head->not_text != NULL)
		{
			snprintf(error, sizeof(error), "22021: %s", p->head->not_text);
			if (dead_letter(c, p, error))
				continue;
			if (db_ready(c))
				p->blocked_until = now + loop_backoff_ms(c->opts, ++p->attempts) / 1000.0;
			break;
		}
}

/*
 * apply_retries: the due partitions whose head failed before go alone.
 */
static void
apply_retries(Consumer *c, double now)
{
	for (PartQueue *p = c->parts; p != NULL && db_ready(c); p = p->next)
		if (due(p, now) && p->attempts > 0 && p->head->not_text == NULL)
			apply_head(c, p);
}

/* ---- the loop ------------------------------------------------------ */

/*
 * step_connect: (re)connect with exponential backoff; a handler that
 * cannot be used stops the command.
 */
static void
step_connect(Consumer *c, double now)
{
	DbConnect	rc;

	if (c->db.conn != NULL || !reconnect_due(&c->reconnect, now))
		return;
	rc = consume_db_connect(&c->db, c->opts, c->reconnect.logged);
	if (rc == DB_CONNECTED)
	{
		reconnect_succeeded(&c->reconnect, c->opts);
		return;
	}
	if (rc == DB_BAD_CONFIG)
	{
		c->bad_config = true;
		stop_requested = 1;
		return;
	}
	reconnect_failed(&c->reconnect, c->opts, now);
}

/*
 * step_cleanup: distsys.inbox_cleanup() at start and every 10 minutes.
 */
static void
step_cleanup(Consumer *c, double now)
{
	long long	deleted = 0;

	if (!db_ready(c) || now < c->next_cleanup)
		return;
	c->next_cleanup = now + CLEANUP_EVERY_S;
	if (consume_db_cleanup(&c->db, &deleted) == APPLY_OK)
		log_info("inbox cleanup: %lld entries past the retention forgotten", deleted);
	else if (db_ready(c))
		log_warning("inbox cleanup failed: %s; next in %.0f s", c->db.error,
					CLEANUP_EVERY_S);
}

/*
 * step_intake: take what Kafka has, up to the window.
 */
static void
step_intake(Consumer *c)
{
	rd_kafka_message_t *rkm;

	while (c->queued < c->window && (rkm = kconsumer_poll(&c->kc)) != NULL)
		enqueue(c, rkm);
}

/*
 * step_standbys: --standbys: move next_offset up to what the standbys
 * flushed (the banner).
 */
static void
step_standbys(Consumer *c)
{
	uint64_t	insert_lsn,
				flushed;
	bool		waiting = false;

	if (!c->settling || !db_ready(c))
		return;
	if (!db_standby_lsn(c->db.conn, c->opts->standbys, &insert_lsn, &flushed))
	{
		if (PQstatus(c->db.conn) != CONNECTION_OK)
			consume_db_disconnect(&c->db);	/* step_connect reconnects */
		return;
	}
	for (PartQueue *p = c->parts; p != NULL; p = p->next)
	{
		if (p->settle_offset >= 0 && flushed >= p->settle_lsn)
		{
			p->next_offset = p->settle_offset;
			p->settle_offset = -1;
			c->moved = true;
		}
		if (p->settle_offset < 0 && p->done_offset != p->next_offset)
		{
			p->settle_offset = p->done_offset;
			p->settle_lsn = insert_lsn;
		}
		waiting |= p->settle_offset >= 0;
	}
	c->settling = waiting;
}

/*
 * consume_turn: one turn of the loop (loop.c's turn): connect, clean up,
 * take messages, apply retries and a batch, commit what moved.
 */
static void
consume_turn(void *arg, double now)
{
	Consumer   *c = arg;

	step_connect(c, now);
	step_cleanup(c, now);
	step_intake(c);
	refuse_not_text(c, now);
	if (db_ready(c))
		apply_retries(c, now);
	if (db_ready(c))
		apply_batch(c, now);
	step_standbys(c);
	if (c->moved || kconsumer_commit_pending(&c->kc))
	{
		c->moved = false;
		kconsumer_commit(&c->kc, c->parts, false);
	}
}

/*
 * consume_timeout_ms: 0 when work is due now, else until the next retry or
 * reconnection, at most IDLE_WAIT_S.
 */
static int
consume_timeout_ms(void *arg, double now)
{
	Consumer   *c = arg;
	double		t = now + IDLE_WAIT_S;

	if (!db_ready(c))
		t = c->reconnect.next < t ? c->reconnect.next : t;
	else
		for (PartQueue *p = c->parts; p != NULL; p = p->next)
			if (p->head != NULL)
				t = p->blocked_until < t ? p->blocked_until : t;
	if (c->queued >= c->window)
		t = t < now + FULL_WAIT_S ? t : now + FULL_WAIT_S;
	if (c->settling && db_ready(c))
		t = t < now + STANDBY_POLL_S ? t : now + STANDBY_POLL_S;
	return loop_timeout_ms(t - now);
}

/*
 * consume_pollfds: the wait watches the consumer queue's wake-up pipe.
 */
static int
consume_pollfds(void *arg, struct pollfd *fds, int max)
{
	Consumer   *c = arg;

	fds[0] = (struct pollfd) {.fd = kconsumer_wakeup_fd(&c->kc), .events = POLLIN};
	return 1;
}

static const LoopHooks consume_hooks = {
	.turn = consume_turn,
	.timeout_ms = consume_timeout_ms,
	.pollfds = consume_pollfds,
};

/*
 * render_page: the consume command's metrics (metrics.c's page hook).
 */
static void
render_page(StrBuf *page, void *arg)
{
	const Consumer *c = arg;

#define COUNTER(name, help, value) \
	strbuf_printf(page, "# HELP distsys_relay_consumer_" name " " help "\n" \
				  "# TYPE distsys_relay_consumer_" name " counter\n" \
				  "distsys_relay_consumer_" name " %llu\n", (unsigned long long) (value))
	COUNTER("messages_consumed_total", "Messages received from Kafka (redeliveries included).", c->cm.consumed);
	COUNTER("messages_applied_total", "Messages whose handler ran and committed.", c->cm.applied);
	COUNTER("duplicates_skipped_total", "Messages the inbox had seen already: not applied again.", c->cm.duplicates);
	COUNTER("messages_failed_total", "Failed attempts to apply a message.", c->cm.failed);
	COUNTER("messages_dead_lettered_total", "Messages written to distsys.inbox_dead.", c->cm.dead_lettered);
	COUNTER("transactions_total", "Committed apply transactions (batches).", c->cm.batches);
#undef COUNTER
	strbuf_puts(page, "# HELP distsys_relay_consumer_lag Messages of the partition after the last one applied.\n"
				"# TYPE distsys_relay_consumer_lag gauge\n");
	for (const PartQueue *p = c->parts; p != NULL; p = p->next)
	{
		int64_t		lag = kconsumer_lag(&c->kc, p);

		if (lag >= 0)
			strbuf_printf(page, "distsys_relay_consumer_lag{topic=\"%s\",partition=\"%d\"} %lld\n",
						  p->topic, (int) p->partition, (long long) lag);
	}
}

/*
 * consume_init: the initial state, after the first connection attempt;
 * false when the configuration is refused.
 */
static bool
consume_init(Consumer *c)
{
	static const ConsumerHooks hooks = {on_assigned, on_revoked};
	const RelayOptions *opts = c->opts;

	c->window = loop_window(opts);
	c->batch = calloc(opts->batch_size, sizeof(InMsg *));
	c->applied = calloc(opts->batch_size, sizeof(bool));
	metrics_set_page(render_page, c);
	return loop_start(opts) && kconsumer_start(&c->kc, opts, &hooks, c);
}

/*
 * consume_shutdown: commit what took effect, leave the group, close.
 */
static void
consume_shutdown(Consumer *c)
{
	log_info("stopping: committing offsets (%d messages received but not applied "
			 "will be delivered again)", c->queued);
	kconsumer_commit(&c->kc, c->parts, true);
	kconsumer_close(&c->kc);
	while (c->parts != NULL)
		on_revoked(c, c->parts->topic, c->parts->partition);
	consume_db_disconnect(&c->db);
	free(c->db.jsonb_handler.oid);
	free(c->db.jsonb_handler.name);
	free(c->db.bytea_handler.oid);
	free(c->db.bytea_handler.name);
	log_info("stopped: %llu applied, %llu duplicates skipped, %llu dead-lettered",
			 (unsigned long long) c->cm.applied, (unsigned long long) c->cm.duplicates,
			 (unsigned long long) c->cm.dead_lettered);
	free(c->batch);
	free(c->applied);
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
	static const char *const required[] = {"db", "brokers", "topic", "group", "handler", NULL};
	Consumer	c;

	if (!options_require(opts, required))
		return RELAY_EXIT_USAGE;
	/* the handler is checked before joining the group, when the db is up */
	memset(&c, 0, sizeof(c));
	c.opts = opts;
	reconnect_init(&c.reconnect, opts);
	step_connect(&c, now_s());
	if (c.bad_config)
		return RELAY_EXIT_USAGE;
	if (!consume_init(&c))
	{
		consume_db_disconnect(&c.db);
		return RELAY_EXIT_FAILURE;
	}
	log_info("consuming %s as group %s with handler %s", opts->topics, opts->group, opts->handler);
	loop_run(&consume_hooks, &c);
	consume_shutdown(&c);
	loop_close();
	return c.bad_config ? RELAY_EXIT_USAGE : RELAY_EXIT_OK;
}
