/*-------------------------------------------------------------------------
 *
 * producer.c
 *	  The relay's Kafka producer: idempotent, acks=all, never times a
 *	  message out, stops rather than leave a gap.
 *
 * Settings, and why (the guarantees they serve: docs/design/outbox.md,
 * "The relay: delivery and order"):
 *	 enable.idempotence=true  the broker drops retried duplicates and keeps
 *							  each partition in produce order, also across
 *							  retries with several requests in flight;
 *	 acks=all				  persisted means on every in-sync replica;
 *	 message.timeout.ms=0	  a message is retried until it is delivered or
 *							  fails permanently: a timed-out message has an
 *							  unknown outcome, and librdkafka would go on with
 *							  the next ones of its partition (a reorder);
 *	 enable.gapless.guarantee=true  any failure that could leave a gap (a
 *							  later message persisted after an earlier one
 *							  failed) is a fatal error instead.
 * A fatal error stops the producer: every message not reported delivered
 * goes back to its key's queue and the producer is started again.
 *
 * Threads: librdkafka runs its own threads; everything here, and every
 * callback (delivery reports, errors), runs on the main thread inside
 * rd_kafka_poll.  The wake-up pipe is written by librdkafka when a report
 * is queued, so the main loop's poll() returns.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "distsys_protocol.h"
#include "kafka_conf.h"
#include "log.h"
#include "metrics.h"
#include "producer.h"
#include "util.h"

static rd_kafka_t *rk = NULL;
static rd_kafka_queue_t *mainq = NULL;
static int	wake_pipe[2] = {-1, -1};
static DeliveryFn delivery_fn;
static void *delivery_arg;
static bool fatal = false;
static bool brokers_down = false;

static const char *const forced_props[][2] = {
	{"enable.idempotence", "true"},
	{"acks", "all"},
	{"enable.gapless.guarantee", "true"},
};

static const char *const default_props[][2] = {
	{"message.timeout.ms", "0"},
	{"linger.ms", "2"},
	{"log.connection.close", "false"},
};

/*
 * producer_error_is_permanent: whether the broker will refuse the message
 * however often it is sent: it is dead-lettered at once.
 */
bool
producer_error_is_permanent(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_INVALID_RECORD:
		case RD_KAFKA_RESP_ERR_INVALID_MSG:
		case RD_KAFKA_RESP_ERR__INVALID_ARG:
			return true;
		default:
			return false;
	}
}

/*
 * producer_error_is_local: whether the error only says the producer gave
 * the message up (purged at a restart, or fatal): that is not an attempt
 * the message itself failed, so it is not counted against it.
 */
bool
producer_error_is_local(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__FATAL ||
		err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
		err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT ||
		err == RD_KAFKA_RESP_ERR__GAPLESS_GUARANTEE ||
		err == RD_KAFKA_RESP_ERR__DESTROY;
}

static void
on_delivery(rd_kafka_t *k, const rd_kafka_message_t *msg, void *opaque)
{
	OutboxMsg  *m = msg->_private;

	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && brokers_down)
	{
		brokers_down = false;
		log_info("broker up: deliveries succeed again");
	}
	delivery_fn(m, msg->err, delivery_arg);
}

static void
on_error(rd_kafka_t *k, int err, const char *reason, void *opaque)
{
	char		buf[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		rd_kafka_fatal_error(k, buf, sizeof(buf));
		log_error("producer fatal error: %s; restarting the producer", buf);
		fatal = true;
	}
	else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !brokers_down)
	{
		brokers_down = true;
		log_warning("broker down: all brokers are unreachable (%s); retrying", reason);
	}
	else
		log_debug("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/*
 * build_conf: defaults, then the user's -X properties, then what the
 * guarantees rest on (a user setting that would break them is overridden,
 * with a warning).
 */
static rd_kafka_conf_t *
build_conf(const RelayOptions *opts)
{
	rd_kafka_conf_t *conf = kafka_conf_build(opts, default_props, lengthof(default_props),
											forced_props, lengthof(forced_props), "the relay");

	if (conf == NULL)
		return NULL;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	return conf;
}

/*
 * producer_start: create the producer.  False (after a log line) when the
 * configuration is refused.
 */
bool
producer_start(const RelayOptions *opts, DeliveryFn fn, void *arg)
{
	char		err[512];
	rd_kafka_conf_t *conf = build_conf(opts);

	delivery_fn = fn;
	delivery_arg = arg;
	if (conf == NULL)
		return false;
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) == NULL)
	{
		log_error("could not create the Kafka producer: %s", err);
		return false;
	}
	if (wake_pipe[0] < 0 && pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return false;
	mainq = rd_kafka_queue_get_main(rk);
	rd_kafka_queue_io_event_enable(mainq, wake_pipe[1], "1", 1);
	fatal = false;
	return true;
}

/*
 * producer_send: produce m to its topic with its key, payload and headers.
 * The message's timestamp and its distsys-sent-at header are the row's
 * created_at, so every resend of a row carries the same ones (the inbox
 * counts its retention from them); distsys-sent-at has microseconds.
 * Returns the error of the enqueue (QUEUE_FULL means: try again later).
 */
rd_kafka_resp_err_t
producer_send(OutboxMsg *m)
{
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
	const char *key = msg_key(m);
	rd_kafka_resp_err_t err;
	char		sent_at[40];
	const char *ct = strcmp(m->payload_type, DISTSYS_PAYLOAD_JSON) == 0 ? DISTSYS_CONTENT_TYPE_JSON :
		strcmp(m->payload_type, DISTSYS_PAYLOAD_TEXT) == 0 ? DISTSYS_CONTENT_TYPE_TEXT :
		DISTSYS_CONTENT_TYPE_BYTES;

	for (int i = 0; i < m->nheaders; i++)
	{
		const MsgHeader *h = &m->headers[i];

		rd_kafka_header_add(hdrs, h->name, (ssize_t) h->name_len, h->value,
							(ssize_t) h->value_len);
	}
	rd_kafka_header_add(hdrs, DISTSYS_HEADER_MESSAGE_ID, -1, m->message_id, -1);
	rd_kafka_header_add(hdrs, DISTSYS_HEADER_CONTENT_TYPE, -1, ct, -1);
	format_timestamp(m->created_us, 6, sent_at, sizeof(sent_at));
	rd_kafka_header_add(hdrs, DISTSYS_HEADER_SENT_AT, -1, sent_at, -1);
	err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(m->topic),
							RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
							RD_KAFKA_V_VALUE(m->payload, m->payload_len),
							RD_KAFKA_V_HEADERS(hdrs),
							RD_KAFKA_V_TIMESTAMP(m->created_us / 1000),
							RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
	if (err)
		rd_kafka_headers_destroy(hdrs);
	return err;
}

/*
 * producer_poll: serve delivery reports and errors; drains the wake-up pipe.
 */
void
producer_poll(void)
{
	char		buf[64];

	while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
		;
	rd_kafka_poll(rk, 0);
}

int
producer_wakeup_fd(void)
{
	return wake_pipe[0];
}

bool
producer_failed(void)
{
	return fatal;
}

/*
 * producer_stop: wait up to drain_ms for outstanding delivery reports,
 * then purge what is left (each purged message gets its report, an error)
 * and destroy the producer.
 */
void
producer_stop(int drain_ms)
{
	struct timespec t0,
				t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (rd_kafka_outq_len(rk) > 0 && !fatal)
	{
		rd_kafka_poll(rk, 50);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= drain_ms)
			break;
	}
	rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	for (int i = 0; i < 100 && rd_kafka_outq_len(rk) > 0; i++)
		rd_kafka_poll(rk, 10);
	rd_kafka_poll(rk, 0);
	rd_kafka_queue_destroy(mainq);
	rd_kafka_destroy(rk);
	rk = NULL;
}

/*
 * producer_restart: after a fatal error: every message still outstanding
 * is reported (failed, so it is queued again), then a new producer starts.
 */
void
producer_restart(const RelayOptions *opts)
{
	producer_stop(0);
	if (!producer_start(opts, delivery_fn, delivery_arg))
	{
		log_error("could not restart the Kafka producer; exiting");
		exit(1);
	}
	log_info("producer restarted");
}
