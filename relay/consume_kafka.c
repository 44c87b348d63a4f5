/*-------------------------------------------------------------------------
 *
 * consume_kafka.c
 *	  The consume command's Kafka side: a KafkaConsumer in the group
 *	  --group, subscribed to --topic, that never commits an offset by
 *	  itself.
 *
 * Settings, and why:
 *	 enable.auto.commit=false		an offset is committed only by
 *									kconsumer_commit, after the messages
 *									below it were applied or dead-lettered;
 *	 enable.auto.offset.store=false	the same, for the stored offsets;
 *	 auto.offset.reset=earliest		(default) a new group starts at the
 *									beginning: nothing sent before the
 *									consumer first ran is skipped;
 *	 enable.partition.eof=false		no end-of-partition events.
 * A -X that contradicts a forced setting is ignored with a warning.
 *
 * Rebalances: the callback (run inside kconsumer_poll, so never during a
 * database transaction) commits what was applied before it gives
 * partitions up, then lets consume.c drop their queued messages: the next
 * owner starts at the committed offset.  Eager and cooperative protocols
 * are both handled.
 *
 * Threads: librdkafka runs its own threads; every callback here runs on
 * the main thread inside rd_kafka_consumer_poll.  The consumer queue's
 * wake-up pipe makes the main loop's poll() return when messages arrive.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consume.h"
#include "kafka_conf.h"
#include "log.h"

static rd_kafka_t *rk = NULL;
static rd_kafka_queue_t *cq = NULL;
static int	wake_pipe[2] = {-1, -1};
static const ConsumerHooks *hooks;
static bool brokers_down = false;
static bool commit_failed = false;	/* an async commit failed: commit all again */
static bool commit_warned = false;	/* that was logged; cleared by a success */
static rd_kafka_resp_err_t last_msg_err = RD_KAFKA_RESP_ERR_NO_ERROR;

static const char *const forced_props[][2] = {
	{"enable.auto.commit", "false"},
	{"enable.auto.offset.store", "false"},
	{"enable.partition.eof", "false"},
};

static const char *const default_props[][2] = {
	{"auto.offset.reset", "earliest"},
	{"topic.metadata.refresh.interval.ms", "10000"},
	{"log.connection.close", "false"},
};

static void
broker_up(void)
{
	if (brokers_down)
	{
		brokers_down = false;
		log_info("broker up: consuming again");
	}
}

static void
on_error(rd_kafka_t *k, int err, const char *reason, void *opaque)
{
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !brokers_down)
	{
		brokers_down = true;
		log_warning("broker down: all brokers are unreachable (%s); retrying", reason);
	}
	else if (err == RD_KAFKA_RESP_ERR__FATAL)
		log_error("consumer fatal error: %s", reason);
	else
		log_debug("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/*
 * on_commit: the result of an asynchronous offset commit.  A failure is
 * harmless (the messages would be applied again as duplicates) but the
 * offsets are committed again at the next turn.
 */
static void
on_commit(rd_kafka_t *k, rd_kafka_resp_err_t err,
		  rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
	{
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			broker_up();
			commit_warned = false;
		}
		return;
	}
	if (!commit_warned)
		log_warning("offset commit failed: %s; committing again", rd_kafka_err2str(err));
	commit_warned = true;
	commit_failed = true;
}

/*
 * seed_committed: the committed offsets of newly assigned partitions, for
 * the lag; -1 where none is known.
 */
static void
seed_committed(rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);

	if (rd_kafka_committed(rk, copy, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		for (int i = 0; i < copy->cnt; i++)
			copy->elems[i].offset = -1;
	for (int i = 0; i < copy->cnt; i++)
	{
		rd_kafka_topic_partition_t *e = &copy->elems[i];

		hooks->assigned(e->topic, e->partition,
						e->err == RD_KAFKA_RESP_ERR_NO_ERROR && e->offset >= 0 ? e->offset : -1);
	}
	rd_kafka_topic_partition_list_destroy(copy);
}

/*
 * on_rebalance: take assigned partitions; give revoked ones up after
 * committing what was applied of them.
 */
static void
on_rebalance(rd_kafka_t *k, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	bool		cooperative = strcmp(rd_kafka_rebalance_protocol(k), "COOPERATIVE") == 0;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		log_info("partitions assigned: %d", parts->cnt);
		seed_committed(parts);
		if (cooperative)
			rd_kafka_error_destroy(rd_kafka_incremental_assign(k, parts));
		else
			rd_kafka_assign(k, parts);
		return;
	}
	log_info("partitions revoked: %d", parts->cnt);
	hooks->revoked(NULL, -1);	/* commit first */
	for (int i = 0; i < parts->cnt; i++)
		hooks->revoked(parts->elems[i].topic, parts->elems[i].partition);
	if (cooperative)
		rd_kafka_error_destroy(rd_kafka_incremental_unassign(k, parts));
	else
		rd_kafka_assign(k, NULL);
}

/*
 * build_conf: defaults, the user's -X properties, then what the
 * guarantees rest on.
 */
static rd_kafka_conf_t *
build_conf(const RelayOptions *opts)
{
	rd_kafka_conf_t *conf = kafka_conf_build(opts, default_props, lengthof(default_props),
											forced_props, lengthof(forced_props), "the consumer");

	if (conf == NULL)
		return NULL;
	if (!kafka_set_prop(conf, "group.id", opts->group))
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
	return conf;
}

/*
 * subscribe: the comma-separated topics of --topic.
 */
static bool
subscribe(const char *topics)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
	char	   *copy = strdup(topics);
	char	   *save = NULL;
	rd_kafka_resp_err_t err;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
	{
		while (*t == ' ')
			t++;
		if (*t != '\0')
			rd_kafka_topic_partition_list_add(list, t, RD_KAFKA_PARTITION_UA);
	}
	free(copy);
	err = list->cnt == 0 ? RD_KAFKA_RESP_ERR__INVALID_ARG : rd_kafka_subscribe(rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err)
		log_error("could not subscribe to --topic \"%s\": %s", topics, rd_kafka_err2str(err));
	return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/*
 * kconsumer_start: create the consumer and subscribe.  False (after a log
 * line) when the configuration is refused.
 */
bool
kconsumer_start(const RelayOptions *opts, const ConsumerHooks *h)
{
	char		err[512];
	rd_kafka_conf_t *conf = build_conf(opts);

	hooks = h;
	if (conf == NULL)
		return false;
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) == NULL)
	{
		log_error("could not create the Kafka consumer: %s", err);
		return false;
	}
	rd_kafka_poll_set_consumer(rk);
	if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return false;
	cq = rd_kafka_queue_get_consumer(rk);
	rd_kafka_queue_io_event_enable(cq, wake_pipe[1], "1", 1);
	return subscribe(opts->topics);
}

/*
 * kconsumer_poll: the next message, or NULL when none is waiting.  Serves
 * rebalances and errors on the way; error events are logged (once per
 * kind in a row) and skipped.
 */
rd_kafka_message_t *
kconsumer_poll(void)
{
	rd_kafka_message_t *m;
	char		buf[64];

	while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
		;
	while ((m = rd_kafka_consumer_poll(rk, 0)) != NULL)
	{
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			broker_up();
			last_msg_err = RD_KAFKA_RESP_ERR_NO_ERROR;
			return m;
		}
		if (m->err != last_msg_err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_warning("consumer: %s%s%s", rd_kafka_message_errstr(m),
						m->rkt ? ": topic " : "", m->rkt ? rd_kafka_topic_name(m->rkt) : "");
		last_msg_err = m->err;
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

int
kconsumer_wakeup_fd(void)
{
	return wake_pipe[0];
}

/*
 * kconsumer_pause: stop (or resume) fetching p while its head message
 * waits for a retry, so memory does not fill with messages that cannot go.
 */
void
kconsumer_pause(PartQueue *p, bool pause)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(list, p->topic, p->partition);
	if (pause)
		rd_kafka_pause_partitions(rk, list);
	else
		rd_kafka_resume_partitions(rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	p->paused = pause;
}

/*
 * kconsumer_commit: commit next_offset of every partition that moved
 * since its last commit (all of them after a failed commit), waiting for
 * the answer when sync.  Only offsets after applied or dead-lettered
 * messages are ever committed: next_offset moves nowhere else.
 */
void
kconsumer_commit(PartQueue *parts, bool sync)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
	bool		all = commit_failed;
	rd_kafka_resp_err_t err;

	for (PartQueue *p = parts; p != NULL; p = p->next)
		if (p->next_offset >= 0 && (all || p->next_offset != p->committed))
			rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->next_offset;
	commit_failed = false;
	if (list->cnt > 0)
	{
		err = rd_kafka_commit(rk, list, !sync);
		if (err && sync)
		{
			log_warning("offset commit failed: %s; the messages will be delivered again "
						"and skipped as duplicates", rd_kafka_err2str(err));
			commit_failed = commit_warned = true;
		}
		for (PartQueue *p = parts; p != NULL && !(err && sync); p = p->next)
			p->committed = p->next_offset;
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/*
 * kconsumer_commit_pending: whether a failed commit waits to be repeated.
 */
bool
kconsumer_commit_pending(void)
{
	return commit_failed;
}

/*
 * kconsumer_lag: messages in p after the last one applied, from the high
 * watermark of the last fetch; -1 when not known yet.
 */
int64_t
kconsumer_lag(const PartQueue *p)
{
	int64_t		lo,
				hi,
				pos;

	if (rd_kafka_get_watermark_offsets(rk, p->topic, p->partition, &lo, &hi) != 0 || hi < 0)
		return -1;
	pos = p->next_offset >= 0 ? p->next_offset : p->committed >= 0 ? p->committed : lo;
	if (pos < 0)
		return -1;
	return hi > pos ? hi - pos : 0;
}

/*
 * kconsumer_close: leave the group (the rebalance callback commits and
 * gives the partitions up) and destroy the consumer.
 */
void
kconsumer_close(void)
{
	rd_kafka_resp_err_t err = rd_kafka_consumer_close(rk);

	if (err)
		log_warning("closing the consumer: %s", rd_kafka_err2str(err));
	rd_kafka_queue_destroy(cq);
	rd_kafka_destroy(rk);
	rk = NULL;
}
