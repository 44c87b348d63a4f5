/*-------------------------------------------------------------------------
 *
 * consume.h
 *	  The consume command of distsys-relay: apply Kafka messages to the
 *	  database through the idempotent inbox, each exactly once in effect.
 *
 * consume.c is the main loop and the per-partition queues; consume_kafka.c
 * the librdkafka consumer (group, rebalance, offset commits, lag);
 * consume_db.c the database side (handler lookup, the batched
 * inbox_apply, dead letters, cleanup).
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_CONSUME_H
#define RELAY_CONSUME_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "options.h"

struct PartQueue;

/* One message taken from Kafka, waiting to be applied. */
typedef struct InMsg
{
	rd_kafka_message_t *rkm;	/* owns topic, key, payload */
	struct PartQueue *part;
	char	   *message_id;		/* distsys-message-id, or topic-partition-offset */
	char	   *sent_at;		/* ISO 8601, or NULL (counts as now) */
	char	   *headers;		/* JSON object of the headers' string values */
	const char *not_text;		/* why key or headers cannot be SQL text, or NULL */
	bool		as_json;		/* pass the payload to the jsonb handler */
	struct InMsg *next;
} InMsg;

/* The state of one assigned partition: its messages in offset order. */
typedef struct PartQueue
{
	char	   *topic;
	int32_t		partition;
	InMsg	   *head;
	InMsg	   *tail;
	int			count;
	int			taken;			/* messages put in the batch being built */
	int64_t		last_seen;		/* highest offset queued, -1 none */
	int64_t		next_offset;	/* what may be committed: after the last applied or
								 * dead-lettered (with --standbys: and flushed by
								 * the standbys); -1 unknown */
	int64_t		done_offset;	/* after the last applied or dead-lettered */
	int64_t		settle_offset;	/* --standbys: next next_offset, -1 none */
	uint64_t	settle_lsn;		/* ... once the standbys flushed this */
	int64_t		committed;		/* offset last committed to Kafka, -1 none */
	int			attempts;		/* failed attempts of the head message */
	double		blocked_until;	/* no attempt before this (epoch s) */
	bool		paused;			/* fetching paused while the head waits */
	struct PartQueue *next;
} PartQueue;

/* The outcome of one inbox_apply batch. */
typedef enum ApplyResult
{
	APPLY_OK,					/* committed; applied[] says which ran */
	APPLY_FAILED,				/* rolled back; sqlstate and error set */
	APPLY_LOST					/* the connection is gone: outcome unknown */
} ApplyResult;

/* One variant of the handler; both NULL when it does not exist. */
typedef struct Handler
{
	char	   *oid;			/* passed to inbox_apply, as text */
	char	   *name;			/* for the log */
} Handler;

typedef struct ConsumeDb
{
	PGconn	   *conn;			/* NULL while disconnected */
	Handler		jsonb_handler;
	Handler		bytea_handler;
	char		sqlstate[6];	/* of the last failure */
	char		error[1024];	/* of the last failure, one line */
} ConsumeDb;

/* consume_db.c */
typedef enum DbConnect
{
	DB_CONNECTED,
	DB_UNREACHABLE,				/* retry later */
	DB_BAD_CONFIG				/* the handler cannot be used: exit 2 */
} DbConnect;

extern DbConnect consume_db_connect(ConsumeDb *db, const RelayOptions *opts, bool quiet);
extern void consume_db_disconnect(ConsumeDb *db);
extern ApplyResult consume_db_apply(ConsumeDb *db, const char *group,
									InMsg **msgs, int n, bool *applied);
extern ApplyResult consume_db_dead_letter(ConsumeDb *db, const char *group,
										  InMsg *m, int attempts, const char *error);
extern ApplyResult consume_db_cleanup(ConsumeDb *db, long long *deleted);
extern char *consume_headers_json(const rd_kafka_message_t *rkm, bool escape, bool *text);

/* consume_kafka.c */
typedef struct ConsumerHooks
{
	PartQueue  *(*assigned) (void *arg, const char *topic, int32_t partition,
							 int64_t committed);
	void		(*revoked) (void *arg, const char *topic, int32_t partition);
} ConsumerHooks;

/* The Kafka consumer of one consume command; consume_kafka.c's state. */
typedef struct KConsumer
{
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;	/* the consumer queue */
	int			wake_pipe[2];	/* readable when the queue has events */
	const ConsumerHooks *hooks;
	void	   *hooks_arg;
	bool		brokers_down;
	bool		commit_failed;	/* an async commit failed: commit all again */
	bool		commit_warned;	/* that was logged; cleared by a success */
	rd_kafka_resp_err_t last_msg_err;
} KConsumer;

extern bool kconsumer_start(KConsumer *kc, const RelayOptions *opts,
							const ConsumerHooks *hooks, void *arg);
extern rd_kafka_message_t *kconsumer_poll(KConsumer *kc);
extern int	kconsumer_wakeup_fd(const KConsumer *kc);
extern void kconsumer_pause(KConsumer *kc, PartQueue *p, bool pause);
extern void kconsumer_commit(KConsumer *kc, PartQueue *parts, bool sync);
extern bool kconsumer_commit_pending(const KConsumer *kc);
extern int64_t kconsumer_lag(const KConsumer *kc, const PartQueue *p);
extern void kconsumer_close(KConsumer *kc);

extern int	consume_run(const RelayOptions *opts);

#endif							/* RELAY_CONSUME_H */
