/*-------------------------------------------------------------------------
 *
 * pgload.c
 *	  The database side of the outbox benchmark: outbox_send's insert rate
 *	  (send), the read-and-delete rate of a relay without Kafka (drain), and
 *	  the paced producer with its consumer for the latency runs (latency).
 *
 * Shared state: in send and latency, one thread per connection.  send's
 * threads share nothing but their result slots.  latency's senders draw
 * message numbers from one atomic counter and write commit_ns[i] for their
 * own i only; the consumer thread writes recv_ns[i]; main reads both arrays
 * only after every thread has been joined.
 *
 *-------------------------------------------------------------------------
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outboxbench.h"

/* one message per autocommit transaction, as an application would send it */
static const char *const send_one_sql =
"SELECT distsys.outbox_send($1, $2::text, $3)";

/* --batch messages in one statement and one transaction */
static const char *const send_batch_sql =
"SELECT count(distsys.outbox_send($1,"
"             rpad('seq=' || g || ' tag=' || $2 || ' ', $3, 'x'),"
"             'key-' || (g % $4)))"
"  FROM generate_series($5::bigint, $6::bigint) AS g";

typedef struct SendThread
{
	pthread_t	thread;
	int			n;
	long		rows;
	int64_t		end_ns;
} SendThread;

static int64_t send_deadline_ns;

static void
prepare(PGconn *conn, const char *name, const char *sql)
{
	PGresult   *res = PQprepare(conn, name, sql, 0, NULL);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail("prepare %s: %s", name, PQerrorMessage(conn));
	PQclear(res);
}

static void
exec_prepared(PGconn *conn, const char *name, int n, const char *const *values)
{
	PGresult   *res = PQexecPrepared(conn, name, n, values, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		fail("%s: %s", name, PQerrorMessage(conn));
	PQclear(res);
}

/*
 * send_thread: inserts its share of --count messages (or, with --count 0,
 * as many as it can until the deadline) in transactions of --batch.
 */
static void *
send_thread(void *arg)
{
	SendThread *t = arg;
	PGconn	   *conn = db_connect();
	char	   *payload = malloc(opt.size + 1);
	char		key[32], size[16], keys[16], lo[24], hi[24];
	long		first, last;

	first = opt.count > 0 ? opt.count * t->n / opt.clients : (long) t->n * 1000000000L;
	last = opt.count > 0 ? opt.count * (t->n + 1) / opt.clients : first + 1000000000L;
	prepare(conn, "one", send_one_sql);
	prepare(conn, "batch", send_batch_sql);
	snprintf(size, sizeof(size), "%d", opt.size);
	snprintf(keys, sizeof(keys), "%d", opt.keys);
	for (long seq = first; seq < last; seq += opt.batch)
	{
		if (opt.count == 0 && now_ns() >= send_deadline_ns)
			break;
		if (opt.batch == 1)
		{
			const char *v[3] = {opt.topic, make_payload(payload, opt.tag, seq), key};

			make_key(key, seq);
			exec_prepared(conn, "one", 3, v);
			t->rows++;
		}
		else
		{
			long		end = seq + opt.batch < last ? seq + opt.batch : last;
			const char *v[6] = {opt.topic, opt.tag, size, keys, lo, hi};

			snprintf(lo, sizeof(lo), "%ld", seq);
			snprintf(hi, sizeof(hi), "%ld", end - 1);
			exec_prepared(conn, "batch", 6, v);
			t->rows += end - seq;
		}
	}
	t->end_ns = now_ns();
	PQfinish(conn);
	free(payload);
	return NULL;
}

/*
 * run_send: outbox_send's rate with --clients connections, rows/s over the
 * time from the start to the last thread's end.
 */
int
run_send(void)
{
	SendThread *t = calloc(opt.clients, sizeof(SendThread));
	int64_t		start = now_ns(), end = start;
	long		rows = 0;

	send_deadline_ns = start + opt.seconds * 1000000000L;
	for (int i = 0; i < opt.clients; i++)
	{
		t[i].n = i;
		pthread_create(&t[i].thread, NULL, send_thread, &t[i]);
	}
	for (int i = 0; i < opt.clients; i++)
	{
		pthread_join(t[i].thread, NULL);
		rows += t[i].rows;
		if (t[i].end_ns > end)
			end = t[i].end_ns;
	}
	printf("rows_s=%.0f rows=%ld seconds=%.3f\n", rows / ((end - start) / 1e9), rows,
		   (end - start) / 1e9);
	return 0;
}

/*
 * run_drain: what a relay's database work costs without Kafka: fetch the
 * next --batch rows by id (whole rows, as a relay reads them), delete them
 * with one DELETE ... = ANY, one transaction per batch, until the outbox
 * is empty.
 */
int
run_drain(void)
{
	PGconn	   *conn = db_connect();
	char		last[24] = "0";
	char		batch[16];
	long		rows = 0;
	int64_t		start = now_ns();

	snprintf(batch, sizeof(batch), "%d", opt.batch);
	prepare(conn, "fetch",
			"SELECT id, topic, key, payload, headers, message_id, created_at"
			"  FROM distsys.outbox WHERE id > $1 ORDER BY id LIMIT $2");
	prepare(conn, "ack", "DELETE FROM distsys.outbox WHERE id = ANY ($1::bigint[])");
	for (;;)
	{
		const char *fv[2] = {last, batch};
		PGresult   *res = PQexecPrepared(conn, "fetch", 2, fv, NULL, NULL, 0);
		int			n = PQntuples(res);
		size_t		cap = (size_t) n * 21 + 3;
		char	   *ids = malloc(cap), *p = ids;
		const char *av[1] = {ids};

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail("fetch: %s", PQerrorMessage(conn));
		if (n == 0)
		{
			PQclear(res);
			free(ids);
			break;
		}
		*p++ = '{';
		for (int i = 0; i < n; i++)
			p += sprintf(p, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
		strcpy(p, "}");
		snprintf(last, sizeof(last), "%s", PQgetvalue(res, n - 1, 0));
		PQclear(res);
		exec_prepared(conn, "ack", 1, av);
		free(ids);
		rows += n;
	}
	printf("rows_s=%.0f rows=%ld seconds=%.3f\n", rows / ((now_ns() - start) / 1e9), rows,
		   (now_ns() - start) / 1e9);
	PQfinish(conn);
	return 0;
}

/* latency run state (see the banner) */
static int64_t *commit_ns;
static int64_t *recv_ns;
static long n_msgs;
static atomic_long next_msg;
static int64_t t0_ns;
static atomic_bool consumer_stop;
static atomic_long received;
static long duplicates;			/* the same message again at the same offset */
static long broker_copies;		/* the same message again at another offset */
static int64_t *first_offset;
static long late_starts;		/* sends that began > 5 ms after their due time */
static pthread_mutex_t late_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t
due_ns(long i)
{
	return t0_ns + (int64_t) (i * 1e9 / opt.rate);
}

/*
 * paced_sender: sends messages i .. i + per_tx - 1 in one transaction
 * (autocommit when per_tx is 1) at message i's due time, for the next free
 * i, until all are sent; their commit time is when COMMIT returned.
 */
static void *
paced_sender(void *arg)
{
	PGconn	   *conn = db_connect();
	char	   *payload = malloc(opt.size + 1);
	char		key[32];
	long		i, late = 0;

	prepare(conn, "one", send_one_sql);
	while ((i = atomic_fetch_add(&next_msg, opt.per_tx)) < n_msgs)
	{
		long		end = i + opt.per_tx < n_msgs ? i + opt.per_tx : n_msgs;
		int64_t		t;

		sleep_until_ns(due_ns(i));
		if (now_ns() - due_ns(i) > 5000000)
			late++;
		if (opt.per_tx > 1)
			db_exec(conn, "BEGIN");
		for (long j = i; j < end; j++)
		{
			const char *v[3] = {opt.topic, make_payload(payload, opt.tag, j), key};

			make_key(key, j);
			exec_prepared(conn, "one", 3, v);
		}
		if (opt.per_tx > 1)
			db_exec(conn, "COMMIT");
		t = now_ns();
		for (long j = i; j < end; j++)
			commit_ns[j] = t;
	}
	pthread_mutex_lock(&late_lock);
	late_starts += late;
	pthread_mutex_unlock(&late_lock);
	PQfinish(conn);
	free(payload);
	return NULL;
}

/*
 * consume: timestamps the first receipt of each message of this run (its
 * payload carries seq and the run's tag).
 */
static void *
consume(void *arg)
{
	rd_kafka_t *rk = arg;
	size_t		taglen = strlen(opt.tag);

	while (!atomic_load(&consumer_stop))
	{
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
		long		seq;
		int			off;

		if (!m)
			continue;
		if (!m->err && m->len > 0 &&
			sscanf((const char *) m->payload, "seq=%ld tag=%n", &seq, &off) == 1 &&
			(size_t) off + taglen < m->len &&
			memcmp((const char *) m->payload + off, opt.tag, taglen) == 0 &&
			((const char *) m->payload)[off + taglen] == ' ' &&
			seq >= 0 && seq < n_msgs)
		{
			if (recv_ns[seq] && first_offset[seq] == m->offset)
				duplicates++;
			else if (recv_ns[seq])
				broker_copies++;
			else
			{
				recv_ns[seq] = now_ns();
				first_offset[seq] = m->offset;
				atomic_fetch_add(&received, 1);
			}
		}
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a, y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/*
 * run_latency: --rate messages per second for --seconds from --clients
 * connections, --per-tx messages per transaction; latency = consumer
 * receipt - the committing client's COMMIT returning, for the messages due
 * after --warmup-ms.  late_starts counts transactions.
 */
int
run_latency(void)
{
	rd_kafka_t *rk = consumer_at_end(opt.topic);
	pthread_t	consumer;
	pthread_t  *senders = calloc(opt.clients, sizeof(pthread_t));
	int64_t    *lat, last_commit = 0, wait_end;
	long		n = 0, missing = 0, counted_from, worst = -1, over100 = 0;

	n_msgs = (long) (opt.rate * opt.seconds);
	commit_ns = calloc(n_msgs, sizeof(int64_t));
	recv_ns = calloc(n_msgs, sizeof(int64_t));
	lat = calloc(n_msgs, sizeof(int64_t));
	first_offset = calloc(n_msgs, sizeof(int64_t));
	pthread_create(&consumer, NULL, consume, rk);
	sleep_ms(1000);				/* the consumer's first fetches */
	t0_ns = now_ns() + 200000000;
	for (int i = 0; i < opt.clients; i++)
		pthread_create(&senders[i], NULL, paced_sender, NULL);
	for (int i = 0; i < opt.clients; i++)
		pthread_join(senders[i], NULL);
	wait_end = now_ns() + 15000000000L;
	while (atomic_load(&received) < n_msgs && now_ns() < wait_end)
		sleep_ms(10);
	atomic_store(&consumer_stop, true);
	pthread_join(consumer, NULL);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);

	counted_from = (long) (opt.warmup_ms / 1000.0 * opt.rate);
	for (long i = 0; i < n_msgs; i++)
	{
		if (commit_ns[i] > last_commit)
			last_commit = commit_ns[i];
		if (i < counted_from)
			continue;
		if (!recv_ns[i])
			missing++;
		else
		{
			lat[n++] = recv_ns[i] - commit_ns[i];
			if (worst < 0 || recv_ns[i] - commit_ns[i] > recv_ns[worst] - commit_ns[worst])
				worst = i;
			if (recv_ns[i] - commit_ns[i] > 100000000)
				over100++;
		}
	}
	qsort(lat, n, sizeof(int64_t), cmp_i64);
	if (opt.dump)
	{
		FILE	   *f = fopen(opt.dump, "a");

		if (!f)
			fail("cannot open %s", opt.dump);
		for (long i = 0; i < n; i++)
			fprintf(f, "%lld\n", (long long) lat[i]);
		fclose(f);
	}
	printf("offered_s=%.0f achieved_s=%.0f late_starts=%ld counted=%ld missing=%ld "
		   "duplicates=%ld copies=%ld over_100ms=%ld worst_at_s=%.3f "
		   "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
		   opt.rate, n_msgs / ((last_commit - t0_ns) / 1e9), late_starts, n, missing,
		   duplicates, broker_copies, over100,
		   worst >= 0 ? (commit_ns[worst] - t0_ns) / 1e9 : -1.0,
		   percentile_ms(lat, n, 0.50), percentile_ms(lat, n, 0.99),
		   percentile_ms(lat, n, 1.0));
	return missing ? 1 : 0;
}

/*
 * run_wait_empty: returns 0 once distsys.outbox has no row (polled every
 * 20 ms on one connection), 1 after --seconds; prints the seconds waited.
 */
int
run_wait_empty(void)
{
	PGconn	   *conn = db_connect();
	int64_t		start = now_ns(), deadline = start + opt.seconds * 1000000000L;

	for (;;)
	{
		PGresult   *res = PQexec(conn, "SELECT EXISTS (SELECT 1 FROM distsys.outbox)");
		bool		empty;

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail("poll: %s", PQerrorMessage(conn));
		empty = strcmp(PQgetvalue(res, 0, 0), "f") == 0;
		PQclear(res);
		if (empty || now_ns() >= deadline)
		{
			printf("seconds=%.3f empty=%s\n", (now_ns() - start) / 1e9, empty ? "yes" : "no");
			PQfinish(conn);
			return empty ? 0 : 1;
		}
		sleep_ms(20);
	}
}
