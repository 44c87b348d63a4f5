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
 * State: a KConsumer (consume.h) per consumer, held by the consume command
 * and passed to every function here; librdkafka hands it to the callbacks
 * as their opaque.
 *
 * Threads: librdkafka runs its own threads; every callback here runs on
 * the main thread inside rd_kafka_consumer_poll.  The consumer queue's
 * wake-up pipe makes the main loop's poll() return when messages arrive.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consume.h"
#include "kafka_conf.h"
#include "log.h"

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

/*
 * broker_up: a broker answered; say so once after an outage.
 */
static void
broker_up(KConsumer *kc)
{
	if (kc->brokers_down)
	{
		kc->brokers_down = false;
		log_info("broker up: consuming again");
	}
}

/*
 * on_error: librdkafka's error events: an outage of all brokers once,
 * fatal errors, the rest at debug level.
 */
static void
on_error(rd_kafka_t *k, int err, const char *reason, void *opaque)
{
	KConsumer  *kc = opaque;

	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !kc->brokers_down)
	{
		kc->brokers_down = true;
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
	KConsumer  *kc = opaque;

	if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
	{
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			broker_up(kc);
			kc->commit_warned = false;
		}
		return;
	}
	if (!kc->commit_warned)
		log_warning("offset commit failed: %s; committing again", rd_kafka_err2str(err));
	kc->commit_warned = true;
	kc->commit_failed = true;
}

/*
 * seed_committed: the committed offsets of newly assigned partitions, for
 * the lag; -1 where none is known.
 */
static void
seed_committed(KConsumer *kc, rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);

	if (rd_kafka_committed(kc->rk, copy, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		for (int i = 0; i < copy->cnt; i++)
			copy->elems[i].offset = -1;
	for (int i = 0; i < copy->cnt; i++)
	{
		rd_kafka_topic_partition_t *e = &copy->elems[i];

		kc->hooks->assigned(kc->hooks_arg, e->topic, e->partition,
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
	KConsumer  *kc = opaque;
	bool		cooperative = strcmp(rd_kafka_rebalance_protocol(k), "COOPERATIVE") == 0;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		log_info("partitions assigned: %d", parts->cnt);
		seed_committed(kc, parts);
		if (cooperative)
			rd_kafka_error_destroy(rd_kafka_incremental_assign(k, parts));
		else
			rd_kafka_assign(k, parts);
		return;
	}
	log_info("partitions revoked: %d", parts->cnt);
	kc->hooks->revoked(kc->hooks_arg, NULL, -1);	/* commit first */
	for (int i = 0; i < parts->cnt; i++)
		kc->hooks->revoked(kc->hooks_arg, parts->elems[i].topic, parts->elems[i].partition);
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
build_conf(KConsumer *kc, const RelayOptions *opts)
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
	rd_kafka_conf_set_opaque(conf, kc);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
	return conf;
}

/*
 * subscribe: the comma-separated topics of --topic.
 */
static bool
subscribe(KConsumer *kc, const char *topics)
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
	err = list->cnt == 0 ? RD_KAFKA_RESP_ERR__INVALID_ARG : rd_kafka_subscribe(kc->rk, list);
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
kconsumer_start(KConsumer *kc, const RelayOptions *opts, const ConsumerHooks *hooks,
				void *arg)
{
	char		err[512];
	rd_kafka_conf_t *conf;

	memset(kc, 0, sizeof(*kc));
	kc->wake_pipe[0] = kc->wake_pipe[1] = -1;
	kc->hooks = hooks;
	kc->hooks_arg = arg;
	if ((conf = build_conf(kc, opts)) == NULL)
		return false;
	if ((kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) == NULL)
	{
		log_error("could not create the Kafka consumer: %s", err);
		return false;
	}
	rd_kafka_poll_set_consumer(kc->rk);
	if (pipe2(kc->wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
	{
		log_error("could not create the consumer's wake-up pipe: %s", strerror(errno));
		return false;
	}
	kc->queue = rd_kafka_queue_get_consumer(kc->rk);
	rd_kafka_queue_io_event_enable(kc->queue, kc->wake_pipe[1], "1", 1);
	return subscribe(kc, opts->topics);
}

/*
 * kconsumer_poll: the next message, or NULL when none is waiting.  Serves
 * rebalances and errors on the way; error events are logged (once per
 * kind in a row) and skipped.
 */
rd_kafka_message_t *
kconsumer_poll(KConsumer *kc)
{
	rd_kafka_message_t *m;
	char		buf[64];

	while (read(kc->wake_pipe[0], buf, sizeof(buf)) > 0)
		;
	while ((m = rd_kafka_consumer_poll(kc->rk, 0)) != NULL)
	{
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			broker_up(kc);
			kc->last_msg_err = RD_KAFKA_RESP_ERR_NO_ERROR;
			return m;
		}
		if (m->err != kc->last_msg_err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_warning("consumer: %s%s%s", rd_kafka_message_errstr(m),
						m->rkt ? ": topic " : "", m->rkt ? rd_kafka_topic_name(m->rkt) : "");
		kc->last_msg_err = m->err;
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

/*
 * kconsumer_wakeup_fd: readable when messages or events wait.
 */
int
kconsumer_wakeup_fd(const KConsumer *kc)
{
	return kc->wake_pipe[0];
}

/*
 * kconsumer_pause: stop (or resume) fetching p while its head message
 * waits for a retry, so memory does not fill with messages that cannot go.
 */
void
kconsumer_pause(KConsumer *kc, PartQueue *p, bool pause)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(list, p->topic, p->partition);
	if (pause)
		rd_kafka_pause_partitions(kc->rk, list);
	else
		rd_kafka_resume_partitions(kc->rk, list);
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
kconsumer_commit(KConsumer *kc, PartQueue *parts, bool sync)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
	bool		all = kc->commit_failed;
	rd_kafka_resp_err_t err;

	for (PartQueue *p = parts; p != NULL; p = p->next)
		if (p->next_offset >= 0 && (all || p->next_offset != p->committed))
			rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->next_offset;
	kc->commit_failed = false;
	if (list->cnt > 0)
	{
		err = rd_kafka_commit(kc->rk, list, !sync);
		if (err && sync)
		{
			log_warning("offset commit failed: %s; the messages will be delivered again "
						"and skipped as duplicates", rd_kafka_err2str(err));
			kc->commit_failed = kc->commit_warned = true;
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
kconsumer_commit_pending(const KConsumer *kc)
{
	return kc->commit_failed;
}

/*
 * kconsumer_lag: messages in p after the last one applied, from the high
 * watermark of the last fetch; -1 when not known yet.
 */
int64_t
kconsumer_lag(const KConsumer *kc, const PartQueue *p)
{
	int64_t		lo,
				hi,
				pos;

	if (rd_kafka_get_watermark_offsets(kc->rk, p->topic, p->partition, &lo, &hi) != 0 || hi < 0)
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
kconsumer_close(KConsumer *kc)
{
	rd_kafka_resp_err_t err = rd_kafka_consumer_close(kc->rk);

	if (err)
		log_warning("closing the consumer: %s", rd_kafka_err2str(err));
	rd_kafka_queue_destroy(kc->queue);
	rd_kafka_destroy(kc->rk);
	kc->rk = NULL;
	close(kc->wake_pipe[0]);
	close(kc->wake_pipe[1]);
	kc->wake_pipe[0] = kc->wake_pipe[1] = -1;
}
