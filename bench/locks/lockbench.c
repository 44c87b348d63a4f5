/*-------------------------------------------------------------------------
 *
 * lockbench.c
 *	  Driver of the distributed-lock benchmark: N clients, one thread and
 *	  one connection each, take and release named locks through a target
 *	  for a fixed time and report pairs per second, latency percentiles and,
 *	  under contention, the hand-off latency between clients.
 *
 * Usage: lockbench --target T --port P [--clients N] [--contend] [--wait]
 *					[--warmup-ms MS] [--run-ms MS] [--retry-us US] [--prefix S]
 *
 * One line of "key=value" pairs goes to stdout (see report()); errors go to
 * stderr.  The run is bounded: an alarm ends the process if the clients have
 * not stopped a minute after the recording window closed.
 *
 * Shared state between the client threads (struct Shared) is only atomics:
 * the main thread publishes the recording window (rec_start, rec_end) and
 * the stop flag; under contention the lock holder publishes, before it
 * sends its release, the time and its client number (release_ns,
 * releaser), and owns "holder" from its grant to just before its release.
 * The lock being measured is what orders those writes against the next
 * holder's reads: a target that lets two clients hold the lock at once is
 * caught by the compare-and-swap on "holder" and counted as a violation.
 *
 *-------------------------------------------------------------------------
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lockbench.h"

#define MAX_CLIENTS 64
#define MAX_ERRORS_PER_CLIENT 100

typedef struct Shared
{
	uint64_t	rec_start;		/* 0 until the warm-up is over */
	uint64_t	rec_end;		/* 0 until the recording window closes */
	int			stop;
	uint64_t	release_ns;		/* contention: last release sent at */
	int			releaser;		/* contention: by this client */
	int			holder;			/* contention: -1 or the holding client */
} Shared;

typedef struct Client
{
	int			id;
	pthread_t	thread;
	void	   *conn;
	const char *lock;
	SampleVec	pairs;			/* acquire sent .. release returned */
	SampleVec	handoffs;		/* other client's release sent .. our grant */
	long		self_regrants;	/* grants straight back to the releaser */
	long		busy;			/* tries that found the lock taken */
	long		errors;
	long		violations;		/* grants while another client held it */
} Client;

static BenchConfig cfg = {
	.clients = 1,
	.warmup_ms = 1000,
	.run_ms = 5000,
	.retry_us = 1000,
	.prefix = "lockbench",
};
static const LockTarget *target;
static Shared shared = {.holder = -1, .releaser = -1};
static Client clients[MAX_CLIENTS];

static const LockTarget *const all_targets[] = {
	&pg_advisory_target, &pg_dlock_target, &pg_dlock_app_target,
	&pg_unique_target, &redis_target, &etcd_txn_target, &etcd_lock_target,
};

/*
 * in_window: whether an interval that ended at end_ns is recorded.  Every
 * interval is assigned to the window by its end, so the count over the
 * window divided by its length is an unbiased rate.
 */
static bool
in_window(uint64_t end_ns)
{
	uint64_t	start = __atomic_load_n(&shared.rec_start, __ATOMIC_ACQUIRE);
	uint64_t	end = __atomic_load_n(&shared.rec_end, __ATOMIC_ACQUIRE);

	return start != 0 && end_ns >= start && (end == 0 || end_ns <= end);
}

static bool
stopping(void)
{
	return __atomic_load_n(&shared.stop, __ATOMIC_ACQUIRE) != 0;
}

/*
 * take_lock: acquire c->lock, retrying a busy try every retry_us.  Returns
 * false if the client should stop instead (stop flag while retrying, or an
 * error).
 */
static bool
take_lock(Client *c)
{
	for (;;)
	{
		LockResult	r = target->acquire(c->conn, c->lock, cfg.wait);

		if (r == LOCK_GRANTED)
			return true;
		if (r == LOCK_FAILED)
		{
			c->errors++;
			bench_sleep_us(10000);
		}
		else
			c->busy++;
		if (stopping() || c->errors >= MAX_ERRORS_PER_CLIENT)
			return false;
		if (r == LOCK_BUSY)
			bench_sleep_us(cfg.retry_us);
	}
}

/*
 * note_grant: under contention, check mutual exclusion and record how long
 * the lock took to pass from the previous holder's release to us.
 */
static void
note_grant(Client *c, uint64_t granted_ns)
{
	int			expected = -1;
	uint64_t	released_ns = __atomic_load_n(&shared.release_ns, __ATOMIC_ACQUIRE);
	int			releaser = __atomic_load_n(&shared.releaser, __ATOMIC_ACQUIRE);

	if (!__atomic_compare_exchange_n(&shared.holder, &expected, c->id, false,
									 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
	{
		c->violations++;
		__atomic_store_n(&shared.holder, c->id, __ATOMIC_RELEASE);
	}
	if (released_ns == 0 || !in_window(granted_ns))
		return;
	if (releaser == c->id)
		c->self_regrants++;
	else
		bench_vec_push(&c->handoffs, granted_ns, granted_ns - released_ns);
}

/*
 * client_main: the loop of one client: acquire, release at once, repeat
 * until the main thread says stop.  Zero hold time makes the lock service
 * itself the only thing measured.
 */
static void *
client_main(void *arg)
{
	Client	   *c = arg;

	while (!stopping() && c->errors < MAX_ERRORS_PER_CLIENT)
	{
		uint64_t	t0 = bench_now_ns();
		uint64_t	t1;
		uint64_t	t2;

		if (!take_lock(c))
			break;
		if (cfg.contend)
			note_grant(c, bench_now_ns());
		t1 = bench_now_ns();
		if (cfg.contend)
		{
			__atomic_store_n(&shared.holder, -1, __ATOMIC_RELEASE);
			__atomic_store_n(&shared.releaser, c->id, __ATOMIC_RELEASE);
			__atomic_store_n(&shared.release_ns, t1, __ATOMIC_RELEASE);
		}
		if (!target->release(c->conn, c->lock))
		{
			c->errors++;
			continue;
		}
		t2 = bench_now_ns();
		if (in_window(t2))
			bench_vec_push(&c->pairs, t2, t2 - t0);
	}
	return NULL;
}

/*
 * merge: all clients' samples of one kind in one sorted vector, keeping
 * only those inside the final recording window.
 */
static SampleVec
merge(bool handoffs)
{
	SampleVec	all = {0};

	for (int i = 0; i < cfg.clients; i++)
	{
		SampleVec  *v = handoffs ? &clients[i].handoffs : &clients[i].pairs;

		for (size_t j = 0; j < v->len; j++)
			if (in_window(v->items[j].end_ns))
				bench_vec_push(&all, v->items[j].end_ns, v->items[j].len_ns);
	}
	bench_vec_sort(&all);
	return all;
}

static int
read_stats(void *conn, StatPair *out)
{
	if (target->stats == NULL || conn == NULL)
		return -1;
	return target->stats(conn, out, BENCH_MAX_STATS);
}

/*
 * report: the one output line.  Stat deltas are taken over the same window
 * by the main thread, so they are approximate at the edges.
 */
static void
report(StatPair *before, int nbefore, StatPair *after, int nafter)
{
	SampleVec	pairs = merge(false);
	SampleVec	handoffs = merge(true);
	double		secs = (shared.rec_end - shared.rec_start) / 1e9;
	long		self = 0,
				busy = 0,
				errors = 0,
				violations = 0,
				minops = -1,
				maxops = 0;

	for (int i = 0; i < cfg.clients; i++)
	{
		long		n = 0;

		for (size_t j = 0; j < clients[i].pairs.len; j++)
			n += in_window(clients[i].pairs.items[j].end_ns);
		minops = (minops < 0 || n < minops) ? n : minops;
		maxops = n > maxops ? n : maxops;
		self += clients[i].self_regrants;
		busy += clients[i].busy;
		errors += clients[i].errors;
		violations += clients[i].violations;
	}
	printf("target=%s mode=%s clients=%d names=%s secs=%.3f ops=%zu ops_s=%.1f"
		   " p50_us=%.1f p99_us=%.1f client_min_ops=%ld client_max_ops=%ld"
		   " busy=%ld errors=%ld",
		   cfg.target, cfg.wait ? "wait" : "try", cfg.clients,
		   cfg.contend ? "one" : "distinct", secs, pairs.len, pairs.len / secs,
		   bench_percentile_us(&pairs, 50), bench_percentile_us(&pairs, 99),
		   minops, maxops, busy, errors);
	if (cfg.contend)
		printf(" handoffs=%zu self_regrants=%ld ho_p50_us=%.1f ho_p99_us=%.1f"
			   " violations=%ld",
			   handoffs.len, self, bench_percentile_us(&handoffs, 50),
			   bench_percentile_us(&handoffs, 99), violations);
	bench_print_hist("pair_hist", &pairs);
	if (cfg.contend)
		bench_print_hist("ho_hist", &handoffs);
	for (int i = 0; i < nafter; i++)
		for (int j = 0; j < nbefore; j++)
			if (strcmp(after[i].name, before[j].name) == 0)
				printf(" stat_%s=%.0f", after[i].name, after[i].value - before[j].value);
	putchar('\n');
	free(pairs.items);
	free(handoffs.items);
}

static void
on_alarm(int sig)
{
	static const char msg[] = "lockbench: clients did not stop in time, giving up\n";

	(void) sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: lockbench --target T --port P [--clients N] [--contend] [--wait]\n"
			"                 [--warmup-ms MS] [--run-ms MS] [--retry-us US] [--prefix S]\n"
			"targets:");
	for (size_t i = 0; i < sizeof(all_targets) / sizeof(all_targets[0]); i++)
		fprintf(stderr, " %s", all_targets[i]->name);
	fputc('\n', stderr);
	exit(2);
}

static void
parse_options(int argc, char **argv)
{
	static const struct option opts[] = {
		{"target", required_argument, NULL, 't'},
		{"port", required_argument, NULL, 'p'},
		{"clients", required_argument, NULL, 'c'},
		{"contend", no_argument, NULL, 'o'},
		{"wait", no_argument, NULL, 'w'},
		{"warmup-ms", required_argument, NULL, 'W'},
		{"run-ms", required_argument, NULL, 'r'},
		{"retry-us", required_argument, NULL, 'R'},
		{"prefix", required_argument, NULL, 'P'},
		{NULL, 0, NULL, 0}
	};
	int			ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (ch)
		{
			case 't':
				cfg.target = optarg;
				break;
			case 'p':
				cfg.port = atoi(optarg);
				break;
			case 'c':
				cfg.clients = atoi(optarg);
				break;
			case 'o':
				cfg.contend = true;
				break;
			case 'w':
				cfg.wait = true;
				break;
			case 'W':
				cfg.warmup_ms = atoi(optarg);
				break;
			case 'r':
				cfg.run_ms = atoi(optarg);
				break;
			case 'R':
				cfg.retry_us = atoi(optarg);
				break;
			case 'P':
				cfg.prefix = optarg;
				break;
			default:
				usage();
		}
	}
	for (size_t i = 0; cfg.target && i < sizeof(all_targets) / sizeof(all_targets[0]); i++)
		if (strcmp(all_targets[i]->name, cfg.target) == 0)
			target = all_targets[i];
	if (target == NULL || cfg.port <= 0 || cfg.clients < 1 ||
		cfg.clients > MAX_CLIENTS || cfg.run_ms < 1 || cfg.warmup_ms < 0)
		usage();
	if ((cfg.wait && !target->can_wait) || (!cfg.wait && !target->can_try))
	{
		fprintf(stderr, "lockbench: target %s has no %s mode\n",
				target->name, cfg.wait ? "wait" : "try");
		exit(2);
	}
}

/*
 * open_clients: one connection per client, opened one after another before
 * any thread starts, so connecting is never measured.
 */
static void
open_clients(void)
{
	for (int i = 0; i < cfg.clients; i++)
	{
		char		name[256];

		if (cfg.contend)
			snprintf(name, sizeof(name), "%s-lock", cfg.prefix);
		else
			snprintf(name, sizeof(name), "%s-lock-%d", cfg.prefix, i);
		clients[i].id = i;
		clients[i].lock = strdup(name);
		clients[i].conn = target->open(&cfg, i);
		if (clients[i].conn == NULL)
			exit(1);
	}
}

static void
sleep_ms(int ms)
{
	bench_sleep_us((long) ms * 1000);
}

int
main(int argc, char **argv)
{
	void	   *stats_conn = NULL;
	StatPair	before[BENCH_MAX_STATS];
	StatPair	after[BENCH_MAX_STATS];
	int			nbefore = -1;
	int			nafter = -1;

	parse_options(argc, argv);
	bench_error_setup("lockbench", cfg.target);
	signal(SIGALRM, on_alarm);
	alarm((cfg.warmup_ms + cfg.run_ms) / 1000 + 60);
	open_clients();
	if (target->stats != NULL)
		stats_conn = target->open(&cfg, cfg.clients);

	for (int i = 0; i < cfg.clients; i++)
		pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);

	sleep_ms(cfg.warmup_ms);
	nbefore = read_stats(stats_conn, before);
	__atomic_store_n(&shared.rec_start, bench_now_ns(), __ATOMIC_RELEASE);
	sleep_ms(cfg.run_ms);
	__atomic_store_n(&shared.rec_end, bench_now_ns(), __ATOMIC_RELEASE);
	nafter = read_stats(stats_conn, after);
	__atomic_store_n(&shared.stop, 1, __ATOMIC_RELEASE);

	for (int i = 0; i < cfg.clients; i++)
		pthread_join(clients[i].thread, NULL);
	report(before, nbefore, after, nafter);

	for (int i = 0; i < cfg.clients; i++)
		target->close(clients[i].conn);
	if (stats_conn != NULL)
		target->close(stats_conn);
	return 0;
}
