/*-------------------------------------------------------------------------
 *
 * outboxbench.h
 *	  Shared declarations of the outbox benchmark driver (bench/outbox/).
 *
 * One program, one mode per run (see main.c).  The options below are the
 * same for every mode; each mode reads what it needs.  Every mode prints
 * one line of key=value pairs on stdout, errors on stderr.
 *
 *-------------------------------------------------------------------------
 */
#ifndef OUTBOXBENCH_H
#define OUTBOXBENCH_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

typedef struct BenchOptions
{
	const char *mode;
	const char *conninfo;		/* libpq connection string */
	const char *brokers;		/* bootstrap list of the mock broker */
	const char *topic;
	const char *tag;			/* written into each payload of a latency run */
	long		count;			/* messages (send, producer) */
	long		seconds;		/* time limit (send, latency, naive) */
	long		warmup_ms;		/* latency: messages due before this are not counted */
	int			size;			/* payload bytes */
	int			keys;			/* distinct message keys */
	int			clients;		/* database connections */
	int			batch;			/* messages per transaction / per fetch */
	double		rate;			/* latency: offered messages per second */
	long		poll_ms;		/* naive relay: sleep between fetches */
	bool		until_empty;	/* naive relay: stop once the outbox is empty */
	const char *dump;			/* latency: append each latency (ns) to this file */
	int			per_tx;			/* latency: messages per transaction */
} BenchOptions;

extern BenchOptions opt;

/* main.c */
extern int64_t now_ns(void);
extern void sleep_until_ns(int64_t t);
extern void sleep_ms(long ms);
extern char *make_payload(char *buf, const char *tag, long seq);
extern void make_key(char *buf, long seq);
extern PGconn *db_connect(void);
extern void db_exec(PGconn *conn, const char *sql);
extern void fail(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));
extern double percentile_ms(int64_t *sorted, long n, double p);

/* kafka.c */
extern rd_kafka_t *producer_new(void (*dr_cb) (rd_kafka_t *, const rd_kafka_message_t *, void *));
extern void produce_one(rd_kafka_t *rk, const char *topic, const char *key,
						const void *value, size_t len, const char *message_id,
						void *opaque);
extern rd_kafka_t *consumer_at_end(const char *topic);
extern int	run_producer(void);

/* pgload.c */
extern int	run_send(void);
extern int	run_drain(void);
extern int	run_latency(void);
extern int	run_wait_empty(void);

/* naive.c */
extern int	run_naive(void);

#endif							/* OUTBOXBENCH_H */
