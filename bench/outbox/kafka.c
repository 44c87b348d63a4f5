/*-------------------------------------------------------------------------
 *
 * kafka.c
 *	  The Kafka side of the outbox benchmark: a producer configured like
 *	  distsys-relay's, the broker's limit (librdkafka alone), and the
 *	  consumer that timestamps receipts for the latency runs.
 *
 * The producer settings are distsys-relay's (relay/producer.c): idempotent,
 * acks=all, gapless guarantee, no message timeout, linger.ms=2, so the
 * broker's limit and the naive relay produce exactly as the relay does.
 *
 * Threads: run_producer is single-threaded apart from librdkafka's own
 * threads; its delivery-report callback runs in rd_kafka_poll's caller.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outboxbench.h"

static void
set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		err[512];

	if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
		fail("librdkafka %s=%s: %s", name, value, err);
}

/*
 * producer_new: an idempotent producer with distsys-relay's settings and
 * the given delivery-report callback.
 */
rd_kafka_t *
producer_new(void (*dr_cb) (rd_kafka_t *, const rd_kafka_message_t *, void *))
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char		err[512];

	set_conf(conf, "bootstrap.servers", opt.brokers);
	set_conf(conf, "enable.idempotence", "true");
	set_conf(conf, "acks", "all");
	set_conf(conf, "enable.gapless.guarantee", "true");
	set_conf(conf, "message.timeout.ms", "0");
	set_conf(conf, "linger.ms", "2");
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk)
		fail("rd_kafka_new: %s", err);
	return rk;
}

/*
 * produce_one: queues one message with the relay's two headers, waiting
 * (and serving delivery reports) while librdkafka's queue is full.
 */
void
produce_one(rd_kafka_t *rk, const char *topic, const char *key,
			const void *value, size_t len, const char *message_id, void *opaque)
{
	rd_kafka_resp_err_t e;

	for (;;)
	{
		rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);

		rd_kafka_header_add(hdrs, "distsys-message-id", -1, message_id, -1);
		rd_kafka_header_add(hdrs, "content-type", -1, "text/plain; charset=utf-8", -1);
		e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
							  RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
							  RD_KAFKA_V_VALUE((void *) value, len),
							  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							  RD_KAFKA_V_HEADERS(hdrs),
							  RD_KAFKA_V_OPAQUE(opaque),
							  RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
			return;
		rd_kafka_headers_destroy(hdrs);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			fail("produce: %s", rd_kafka_err2str(e));
		rd_kafka_poll(rk, 1);
	}
}

/* run_producer's counters, written by its delivery-report callback */
static long delivered;
static long failed;
static char first_error[256];
static int64_t last_report_ns;

static void
count_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (m->err)
	{
		if (failed++ == 0)
			snprintf(first_error, sizeof(first_error), "%s", rd_kafka_err2str(m->err));
	}
	else
		delivered++;
	last_report_ns = now_ns();
}

/*
 * run_producer: the broker's limit.  Produces --count messages of the
 * benchmark's shape as fast as librdkafka takes them and counts delivery
 * reports; msgs/s = delivered / (last report - first produce).  A warm-up
 * message (delivered before the clock starts) opens the connection and the
 * producer id, as a long-running relay has them.
 */
int
run_producer(void)
{
	rd_kafka_t *rk = producer_new(count_report);
	char	   *payload = malloc(opt.size + 1);
	char		key[32], msgid[64];
	int64_t		start;

	make_key(key, 0);
	produce_one(rk, opt.topic, key, "warm-up", 7, "warm-up", NULL);
	if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR || delivered != 1)
		fail("warm-up message not delivered within 30 s (%s)", first_error);
	delivered = 0;
	start = now_ns();
	for (long i = 0; i < opt.count; i++)
	{
		make_key(key, i);
		snprintf(msgid, sizeof(msgid), "7312345678901234567-5-%ld", 10000000 + i);
		produce_one(rk, opt.topic, key, make_payload(payload, opt.tag, i), opt.size, msgid, NULL);
		if ((i & 1023) == 0)
			rd_kafka_poll(rk, 0);
	}
	if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		fail("flush: %d messages still outstanding after 120 s", rd_kafka_outq_len(rk));
	printf("msgs_s=%.0f delivered=%ld failed=%ld seconds=%.3f%s%s\n",
		   delivered / ((last_report_ns - start) / 1e9), delivered, failed,
		   (last_report_ns - start) / 1e9, failed ? " first_error=" : "",
		   failed ? first_error : "");
	rd_kafka_destroy(rk);
	free(payload);
	return failed ? 1 : 0;
}

/*
 * consumer_at_end: a consumer assigned to every partition of topic at its
 * current high watermark, so it sees only what is produced from now on.
 * fetch.wait.max.ms=1: the mock broker holds an empty Fetch for the whole
 * wait even when a message arrives meanwhile, so a longer wait would add
 * up to that much to every measured latency.
 */
rd_kafka_t *
consumer_at_end(const char *topic)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	const rd_kafka_metadata_t *md;
	rd_kafka_topic_t *rkt;
	rd_kafka_topic_partition_list_t *parts;
	char		err[512];
	rd_kafka_resp_err_t e;
	int			np;

	set_conf(conf, "bootstrap.servers", opt.brokers);
	set_conf(conf, "group.id", "outboxbench");
	set_conf(conf, "enable.auto.commit", "false");
	set_conf(conf, "fetch.wait.max.ms", "1");
	set_conf(conf, "fetch.error.backoff.ms", "1");
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!rk)
		fail("rd_kafka_new (consumer): %s", err);
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
	if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1)
		fail("no metadata for topic %s: %s", topic,
			 rd_kafka_err2str(e ? e : md->topics[0].err));
	np = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	parts = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++)
	{
		int64_t		lo, hi;

		e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
		if (e)
			fail("watermarks of %s [%d]: %s", topic, p, rd_kafka_err2str(e));
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset = hi;
	}
	e = rd_kafka_assign(rk, parts);
	if (e)
		fail("assign: %s", rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(parts);
	return rk;
}
