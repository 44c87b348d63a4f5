/*-------------------------------------------------------------------------
 *
 * main.c
 *	  outboxbench: the driver of bench/run-outbox.sh.
 *
 *	outboxbench send      rows/s of distsys.outbox_send (--clients N, each
 *						  inserting --batch messages per transaction)
 *	outboxbench drain     rows/s of reading and deleting the outbox by id
 *						  batches (the database side of a relay, no Kafka)
 *	outboxbench producer  librdkafka alone against the broker: msgs/s
 *	outboxbench naive     a naive relay (poll, produce, flush, delete each)
 *	outboxbench latency   paced single-message transactions + a consumer:
 *						  commit -> consumer receipt p50/p99
 *	outboxbench empty     waits until the outbox is empty (polls every 20 ms)
 *
 * Every message has the same shape in every mode: a text payload of --size
 * bytes starting "seq=<n> tag=<tag> ", key "key-<n % keys>", and the
 * headers distsys-message-id and content-type as distsys-relay sends them.
 *
 * Threads: the modes with --clients start one thread per connection; the
 * options are read-only once parsed.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outboxbench.h"

BenchOptions opt = {
	.topic = "bench",
	.tag = "-",
	.count = 100000,
	.seconds = 10,
	.size = 200,
	.keys = 1000,
	.clients = 1,
	.batch = 1000,
	.rate = 1000,
	.poll_ms = 100,
	.per_tx = 1,
};

void
fail(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fprintf(stderr, "outboxbench %s: ", opt.mode ? opt.mode : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
sleep_until_ns(int64_t t)
{
	struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

void
sleep_ms(long ms)
{
	sleep_until_ns(now_ns() + ms * 1000000);
}

/*
 * make_payload: fills buf (opt.size + 1 bytes) with message seq's payload
 * and returns it.
 */
char *
make_payload(char *buf, const char *tag, long seq)
{
	int			n = snprintf(buf, opt.size + 1, "seq=%ld tag=%s ", seq, tag);

	if (n < opt.size)
		memset(buf + n, 'x', opt.size - n);
	buf[opt.size] = '\0';
	return buf;
}

void
make_key(char *buf, long seq)
{
	sprintf(buf, "key-%ld", seq % opt.keys);
}

PGconn *
db_connect(void)
{
	PGconn	   *conn = PQconnectdb(opt.conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
		fail("cannot connect to %s: %s", opt.conninfo, PQerrorMessage(conn));
	return conn;
}

void
db_exec(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail("%s: %s", sql, PQerrorMessage(conn));
	PQclear(res);
}

/*
 * percentile_ms: the p-quantile (0..1) of n sorted nanosecond figures, in ms.
 */
double
percentile_ms(int64_t *sorted, long n, double p)
{
	long		i;

	if (n == 0)
		return -1;
	i = (long) (p * (n - 1) + 0.5);
	return sorted[i] / 1e6;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: outboxbench send|drain|producer|naive|latency|empty [options]\n"
			"  --db CONNINFO --brokers LIST --topic NAME --tag TAG\n"
			"  --count N --seconds N --warmup-ms N --size BYTES --keys N\n"
			"  --clients N --batch N --rate MSGS_S --poll-ms N --until-empty --dump FILE\n"
			"  --per-tx N\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		{"brokers", required_argument, NULL, 'b'},
		{"topic", required_argument, NULL, 't'},
		{"tag", required_argument, NULL, 'T'},
		{"count", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 's'},
		{"warmup-ms", required_argument, NULL, 'w'},
		{"size", required_argument, NULL, 'S'},
		{"keys", required_argument, NULL, 'k'},
		{"clients", required_argument, NULL, 'c'},
		{"batch", required_argument, NULL, 'B'},
		{"rate", required_argument, NULL, 'r'},
		{"poll-ms", required_argument, NULL, 'p'},
		{"until-empty", no_argument, NULL, 'e'},
		{"dump", required_argument, NULL, 'D'},
		{"per-tx", required_argument, NULL, 'P'},
		{NULL, 0, NULL, 0}
	};

	static const char *const modes[] = {"send", "drain", "producer", "naive", "latency", "empty"};
	int			c;
	bool		known = false;

	for (int i = 0; argc >= 2 && i < (int) (sizeof(modes) / sizeof(modes[0])); i++)
		known |= strcmp(argv[1], modes[i]) == 0;
	if (!known)
		usage();
	opt.mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opt.conninfo = optarg;
				break;
			case 'b':
				opt.brokers = optarg;
				break;
			case 't':
				opt.topic = optarg;
				break;
			case 'T':
				opt.tag = optarg;
				break;
			case 'n':
				opt.count = atol(optarg);
				break;
			case 's':
				opt.seconds = atol(optarg);
				break;
			case 'w':
				opt.warmup_ms = atol(optarg);
				break;
			case 'S':
				opt.size = atoi(optarg);
				break;
			case 'k':
				opt.keys = atoi(optarg);
				break;
			case 'c':
				opt.clients = atoi(optarg);
				break;
			case 'B':
				opt.batch = atoi(optarg);
				break;
			case 'r':
				opt.rate = atof(optarg);
				break;
			case 'p':
				opt.poll_ms = atol(optarg);
				break;
			case 'e':
				opt.until_empty = true;
				break;
			case 'D':
				opt.dump = optarg;
				break;
			case 'P':
				opt.per_tx = atoi(optarg);
				break;
			default:
				usage();
		}
	}
	if (opt.size < 40 || opt.keys < 1 || opt.clients < 1 || opt.batch < 1 || opt.rate <= 0 ||
		opt.per_tx < 1)
		fail("bad option value (size >= 40, keys, clients, batch >= 1, rate > 0)");
	if (strcmp(opt.mode, "producer") != 0 && !opt.conninfo)
		fail("--db is required");
	if (strcmp(opt.mode, "send") != 0 && strcmp(opt.mode, "drain") != 0 &&
		strcmp(opt.mode, "empty") != 0 && !opt.brokers)
		fail("--brokers is required");

	if (strcmp(opt.mode, "send") == 0)
		return run_send();
	if (strcmp(opt.mode, "drain") == 0)
		return run_drain();
	if (strcmp(opt.mode, "producer") == 0)
		return run_producer();
	if (strcmp(opt.mode, "naive") == 0)
		return run_naive();
	if (strcmp(opt.mode, "latency") == 0)
		return run_latency();
	if (strcmp(opt.mode, "empty") == 0)
		return run_wait_empty();
	usage();
}
