/*-------------------------------------------------------------------------
 *
 * relay.c
 *	  The publish command of distsys-relay: the main loop that moves
 *	  outbox rows of the owned lanes to Kafka and deletes them once the
 *	  broker acknowledged them.
 *
 * One thread does everything (librdkafka's own threads aside), in the
 * loop of loop.c: its wait watches the database socket (NOTIFY
 * distsys_outbox wakes it on commit) and the producer's wake-up pipe (a
 * delivery report is waiting), with a timeout for the 1 s fallback fetch
 * and the lane tick.  Each turn:
 *	 1. (re)connect the database when it is down, with exponential backoff;
 *	 2. renew and rebalance lanes (lanes.c); a change resets the cursor and
 *		forgets queued rows of lanes no longer owned;
 *	 3. serve delivery reports: persisted rows join the ack batch, failed
 *		ones go to outbox_fail (retry after backoff, or dead-letter);
 *	 4. delete the ack batch with one outbox_ack;
 *	 5. fetch new rows when woken, every second, or while a fetch came back
 *		full; at most a window of rows is held in memory;
 *	 6. produce every queued row whose key has nothing queued before it and
 *		is not waiting for a retry (queue.c keeps id order per key), and,
 *		with --standbys N, whose commit N physical standbys have flushed.
 * A row is deleted only after its delivery report said persisted, by its
 * id and its message id (an id can come back after a failover).
 *
 * --standbys N: outbox_send's commit waits for the local flush and for the
 * synchronous standbys, but an asynchronous standby may lack a commit the
 * relay already published, and a failover to it would then take back a
 * message the consumers saw.  Each fetch reads the WAL insert position
 * after its snapshot (every row it returns was committed below it); a row
 * is produced only once distsys.standby_flush_lsn(N) has passed that
 * position, polled every STANDBY_POLL_MS while rows wait.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "lanes.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "outbox.h"
#include "producer.h"
#include "relay.h"
#include "signals.h"

#define FALLBACK_FETCH_S	1.0
#define BACKLOG_EVERY_S		5.0
#define DRAIN_S				10.0
#define STANDBY_POLL_MS		5
#define STANDBY_WARN_S		10.0

typedef struct Relay
{
	const RelayOptions *opts;
	OutboxDb	db;
	MsgQueue	q;
	Lanes		lanes;
	char	   *lanes_lit;		/* table lanes owned, array literal */
	int64_t    *acks;			/* persisted, not yet deleted */
	char	  **ack_mids;		/* their message ids (copies) */
	int			nacks;
	uint64_t	standby_lsn;	/* --standbys: what they flushed */
	double		standby_wait;	/* since when a row waits for them; 0: none */
	double		standby_warned;
	int			window;			/* most rows held in memory */
	bool		wake;			/* notified, or a fetch came back full */
	unsigned	pass;
	Reconnect	reconnect;
	double		next_lanes;
	double		next_fetch;
	double		next_backlog;
	double		next_ack;		/* after a failed outbox_ack */
} Relay;

static void db_check(Relay *r);


/*
 * retry_later: m goes back to its queue; it and its key wait delay_ms.
 */
static void
retry_later(OutboxMsg *m, int delay_ms)
{
	m->state = MSG_QUEUED;
	m->not_before = now_s() + delay_ms / 1000.0;
	if (m->ks)
		m->ks->blocked_until = m->not_before;
}

/*
 * record_failure: a delivery of m failed with err: dead-letter it
 * (permanent error, or too many attempts) or schedule its retry.
 */
static void
record_failure(Relay *r, OutboxMsg *m, rd_kafka_resp_err_t err)
{
	bool		permanent = producer_error_is_permanent(err);
	int			delay = loop_backoff_ms(r->opts, m->attempts + 1);
	const char *outcome = NULL;
	char		error[256];

	metrics.failed++;
	snprintf(error, sizeof(error), "%s: %s", rd_kafka_err2name(err), rd_kafka_err2str(err));
	if (r->db.conn != NULL)
		outcome = outbox_fail(&r->db, m, error, permanent,
							  r->opts->dead_letter_after, delay);
	if (outcome == NULL)
	{
		retry_later(m, delay);
		db_check(r);			/* may free queued messages, m too */
		return;
	}
	m->attempts++;
	if (strcmp(outcome, "retry") == 0)
	{
		log_warning("delivery of outbox row %lld (key %s) failed: %s; retry %d in %d ms",
					(long long) m->id, msg_key(m) ? msg_key(m) : "(none)", error,
					m->attempts, delay);
		retry_later(m, delay);
		return;
	}
	if (strcmp(outcome, "dead") == 0)
	{
		metrics.dead_lettered++;
		log_error("outbox row %lld (topic %s) dead-lettered after %d attempts: %s",
				  (long long) m->id, m->topic, m->attempts, error);
	}
	if (m->ks)
		m->ks->blocked_until = 0;	/* the key's next message may go now */
	queue_remove(&r->q, m);
}

/*
 * forget_if_unowned: a message that came back to the queue after its lane
 * was lost is left to the lane's new owner.
 */
static void
forget_if_unowned(Relay *r, int64_t id, int lane)
{
	OutboxMsg  *m = queue_find(&r->q, id);	/* m may have been freed */

	if (m != NULL && m->state == MSG_QUEUED && !lanes_owns_table_lane(lane, &r->lanes))
		queue_remove(&r->q, m);
}

/*
 * on_delivery: a delivery report (run on the main thread by
 * producer_poll).  Only "no error" proves persistence.
 */
static void
on_delivery(OutboxMsg *m, rd_kafka_resp_err_t err, void *arg)
{
	Relay	   *r = arg;
	int64_t		id = m->id;
	int			lane = m->lane;

	r->q.inflight--;
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		m->state = MSG_ACKED;
		r->acks[r->nacks] = m->id;
		r->ack_mids[r->nacks++] = strdup(m->message_id);
		metrics.relayed++;
		metrics_observe_latency(now_s() - m->created_at);
	}
	else if (producer_error_is_local(err))
		m->state = MSG_QUEUED;	/* the producer gave it up: send again */
	else
		record_failure(r, m, err);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		forget_if_unowned(r, id, lane);
}

/*
 * flush_acks: step 4; the acked rows leave memory once deleted.
 */
static void
flush_acks(Relay *r)
{
	if (r->nacks == 0 || r->db.conn == NULL || now_s() < r->next_ack)
		return;
	if (!outbox_ack(&r->db, r->acks, r->ack_mids, r->nacks))
	{
		r->next_ack = now_s() + FALLBACK_FETCH_S;	/* no busy loop on an SQL error */
		db_check(r);
		return;
	}
	for (int i = 0; i < r->nacks; i++)
	{
		OutboxMsg  *m = queue_find(&r->q, r->acks[i]);

		if (m != NULL)
			queue_remove(&r->q, m);
		free(r->ack_mids[i]);
	}
	r->nacks = 0;
}

/*
 * lanes_changed: forget queued rows of lanes no longer owned and read the
 * owned lanes from the start again.
 */
static void
lanes_changed(Relay *r)
{
	queue_drop_queued(&r->q, lanes_owns_table_lane, &r->lanes);
	free(r->lanes_lit);
	r->lanes_lit = lanes_table_literal(&r->lanes);
	outbox_reset_cursor(&r->db);
	r->wake = true;
}

/*
 * db_lost: the connection is gone, and the lanes with it.
 */
static void
db_lost(Relay *r, double now)
{
	if (r->db.conn != NULL)
		outbox_disconnect(&r->db);
	lanes_forget(&r->lanes);
	lanes_changed(r);
	reconnect_lost(&r->reconnect, now);
}

/*
 * db_check: after a failed command: when the connection is gone, so are
 * the lanes.
 */
static void
db_check(Relay *r)
{
	if (!outbox_check_conn(&r->db))
		db_lost(r, now_s());
}

/*
 * step_connect: step 1.
 */
static void
step_connect(Relay *r, double now)
{
	if (r->db.conn != NULL || !reconnect_due(&r->reconnect, now))
		return;
	if (outbox_connect(&r->db, r->opts->db, r->reconnect.logged))
	{
		reconnect_succeeded(&r->reconnect, r->opts);
		r->next_lanes = now;
		return;
	}
	reconnect_failed(&r->reconnect, r->opts, now);
}

/*
 * step_lanes: step 2, and the backlog gauge.
 */
static void
step_lanes(Relay *r, double now)
{
	int			rc;

	if (r->db.conn == NULL || now < r->next_lanes)
		return;
	r->next_lanes = now + LANES_TICK_MS / 1000.0;
	if ((rc = lanes_tick(&r->lanes, r->db.conn, &r->q)) < 0)
	{
		db_check(r);
		return;
	}
	if (rc != 0)
		lanes_changed(r);
	if (now >= r->next_backlog)
	{
		r->next_backlog = now + BACKLOG_EVERY_S;
		outbox_backlog(&r->db, r->lanes_lit, &metrics.backlog, &metrics.oldest_age);
	}
}

/*
 * step_fetch: step 5.
 */
static void
step_fetch(Relay *r, double now)
{
	bool		more = false;
	int			room = r->window - r->q.count;

	if (r->db.conn == NULL || r->lanes.owned_count == 0 || room <= 0 ||
		(!r->wake && now < r->next_fetch))
		return;
	if (outbox_fetch(&r->db, &r->q, r->lanes_lit,
					 room < r->opts->batch_size ? room : r->opts->batch_size, &more) < 0)
	{
		r->wake = false;		/* a failing query is retried by the fallback */
		r->next_fetch = now + FALLBACK_FETCH_S;
		db_check(r);
		return;
	}
	r->wake = more;
	r->next_fetch = now + FALLBACK_FETCH_S;
}

/*
 * may_produce: whether queued m may go now: it is due, its lane is owned,
 * and no earlier message of its key is held back in this pass.
 */
static bool
may_produce(Relay *r, OutboxMsg *m, double now)
{
	KeyState   *ks = m->ks;

	if (!lanes_owns_table_lane(m->lane, &r->lanes))
		return false;
	if (r->opts->standbys > 0 && m->lsn > r->standby_lsn)
	{
		if (ks)
			ks->stalled_pass = r->pass;
		return false;
	}
	if (ks == NULL)
		return m->not_before <= now;
	if (ks->stalled_pass == r->pass || ks->blocked_until > now || m->not_before > now)
	{
		ks->stalled_pass = r->pass;
		return false;
	}
	return true;
}

/*
 * waiting_for_standbys: whether a queued row's commit is above what the
 * standbys flushed (the banner's --standbys).
 */
static bool
waiting_for_standbys(Relay *r)
{
	if (r->opts->standbys == 0)
		return false;
	for (OutboxMsg *m = r->q.head; m != NULL; m = m->next)
		if (m->state == MSG_QUEUED && m->lsn > r->standby_lsn)
			return true;
	return false;
}

/*
 * step_standbys: read what the standbys flushed while rows wait for them;
 * warn, every STANDBY_WARN_S, while they keep waiting.
 */
static void
step_standbys(Relay *r, double now)
{
	uint64_t	insert_lsn;

	if (r->db.conn == NULL || !waiting_for_standbys(r))
	{
		r->standby_wait = 0;
		return;
	}
	if (!db_standby_lsn(r->db.conn, r->opts->standbys, &insert_lsn, &r->standby_lsn))
	{
		db_check(r);
		return;
	}
	if (!waiting_for_standbys(r))
		r->standby_wait = 0;
	else if (r->standby_wait == 0)
		r->standby_wait = r->standby_warned = now;
	else if (now - r->standby_warned >= STANDBY_WARN_S)
	{
		r->standby_warned = now;
		log_warning("outbox rows have waited %.0f s for %d standbys to flush them"
					" (--standbys): are that many standbys streaming?",
					now - r->standby_wait, r->opts->standbys);
	}
}

/*
 * step_produce: step 6.
 */
static void
step_produce(Relay *r, double now)
{
	r->pass++;
	for (OutboxMsg *m = r->q.head, *next; m != NULL; m = next)
	{
		rd_kafka_resp_err_t err;

		next = m->next;
		if (m->state != MSG_QUEUED || !may_produce(r, m, now))
			continue;
		err = producer_send(m);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			if (m->ks)
				m->ks->stalled_pass = r->pass;
			record_failure(r, m, err);
			if (r->db.conn == NULL)
				break;			/* queued messages, next too, were dropped */
			continue;
		}
		m->state = MSG_INFLIGHT;
		r->q.inflight++;
	}
}

/*
 * relay_turn: steps 1 to 6 of the banner (loop.c's turn).
 */
static void
relay_turn(void *arg, double now)
{
	Relay	   *r = arg;

	step_connect(r, now);
	step_lanes(r, now);
	producer_poll();
	if (producer_failed())
		producer_restart(r->opts);
	flush_acks(r);
	step_fetch(r, now);
	step_standbys(r, now);
	step_produce(r, now);
}

/*
 * relay_timeout_ms: how long the wait may last: until the next lane tick,
 * fallback fetch, reconnection or retry; 0 when notified.
 *
 * A NOTIFY that arrived while a query ran (a fetch, an ack, a lane
 * renewal) is already in libpq's queue and will not make the socket
 * readable again: look before sleeping, or that wake-up would wait for the
 * next commit or the fallback fetch.
 */
static int
relay_timeout_ms(void *arg, double now)
{
	Relay	   *r = arg;
	double		t = r->next_lanes;

	if (r->db.conn != NULL && outbox_notified(&r->db))
		r->wake = true;
	if (r->wake && r->db.conn != NULL)
		return 0;
	if (r->next_fetch < t)
		t = r->next_fetch;
	if (r->db.conn == NULL && r->reconnect.next < t)
		t = r->reconnect.next;
	for (OutboxMsg *m = r->q.head; m != NULL; m = m->next)
		if (m->state == MSG_QUEUED && m->not_before > now && m->not_before < t)
			t = m->not_before;
	if (r->standby_wait > 0 && now + STANDBY_POLL_MS / 1000.0 < t)
		t = now + STANDBY_POLL_MS / 1000.0;
	return loop_timeout_ms(t - now);
}

/*
 * relay_pollfds: the wait watches the producer's wake-up pipe and the
 * database socket (-1, ignored by poll(), while disconnected).
 */
static int
relay_pollfds(void *arg, struct pollfd *fds, int max)
{
	Relay	   *r = arg;

	fds[0] = (struct pollfd) {.fd = producer_wakeup_fd(), .events = POLLIN};
	fds[1] = (struct pollfd) {.fd = r->db.conn ? PQsocket(r->db.conn) : -1, .events = POLLIN};
	return 2;
}

/*
 * relay_ready: a readable database socket is a NOTIFY (wake) or a lost
 * connection.
 */
static void
relay_ready(void *arg, const struct pollfd *fds, int n)
{
	Relay	   *r = arg;

	if (r->db.conn != NULL && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)))
	{
		if (outbox_notified(&r->db))
			r->wake = true;
		else
			db_check(r);
	}
}

static const LoopHooks relay_hooks = {
	.turn = relay_turn,
	.timeout_ms = relay_timeout_ms,
	.pollfds = relay_pollfds,
	.ready = relay_ready,
};

/*
 * shutdown_relay: SIGTERM: stop fetching, wait (bounded) for outstanding
 * delivery reports, delete what was acked, release the lanes.
 */
static void
shutdown_relay(Relay *r)
{
	double		deadline = now_s() + DRAIN_S;

	log_info("stopping: waiting up to %.0f s for %d delivery reports (%d rows in memory)",
			 DRAIN_S, r->q.inflight, r->q.count);
	while (r->q.inflight > 0 && now_s() < deadline && !producer_failed())
	{
		producer_poll();
		flush_acks(r);
		if (r->q.inflight > 0)
			loop_wait(&relay_hooks, r, 50);
	}
	producer_stop(0);
	flush_acks(r);
	if (r->nacks > 0)
		log_warning("%d delivered rows could not be deleted; they will be sent again", r->nacks);
	if (r->db.conn != NULL)
		outbox_disconnect(&r->db);
	log_info("stopped: released %d lanes", r->lanes.owned_count);
}

/*
 * relay_init: the initial state; false when the configuration is refused.
 */
static bool
relay_init(Relay *r, const RelayOptions *opts)
{
	memset(r, 0, sizeof(*r));
	r->opts = opts;
	r->window = loop_window(opts);
	r->acks = malloc(sizeof(int64_t) * r->window);
	r->ack_mids = malloc(sizeof(char *) * r->window);
	reconnect_init(&r->reconnect, opts);
	queue_init(&r->q);
	lanes_init(&r->lanes, opts->lanes);
	r->lanes_lit = lanes_table_literal(&r->lanes);
	return loop_start(opts) && producer_start(opts, on_delivery, r);
}

/*
 * relay_free: free r's memory, so that a leak check at exit (the sanitized
 * test run) reports only what was lost on the way.
 */
static void
relay_free(Relay *r)
{
	queue_free(&r->q);
	free(r->lanes.owned);
	free(r->lanes_lit);
	for (int i = 0; i < r->nacks; i++)
		free(r->ack_mids[i]);
	free(r->acks);
	free(r->ack_mids);
}

/*
 * relay_run: the publish command.  Returns the process exit code:
 * RELAY_EXIT_USAGE when --db or --brokers is missing, RELAY_EXIT_FAILURE
 * when the producer cannot be configured, RELAY_EXIT_OK after SIGTERM.
 */
int
relay_run(const RelayOptions *opts)
{
	static const char *const required[] = {"db", "brokers", NULL};
	Relay		r;

	if (!options_require(opts, required))
		return RELAY_EXIT_USAGE;
	if (!relay_init(&r, opts))
	{
		loop_close();
		relay_free(&r);
		return RELAY_EXIT_FAILURE;
	}
	log_info("relaying the outbox to %s with %d lanes", opts->brokers, opts->lanes);
	loop_run(&relay_hooks, &r);
	shutdown_relay(&r);
	loop_close();
	relay_free(&r);
	return RELAY_EXIT_OK;
}
