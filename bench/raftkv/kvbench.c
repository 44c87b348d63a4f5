/*-------------------------------------------------------------------------
 *
 * kvbench.c
 *	  Driver of the replicated key-value benchmark (bench/run-raft-kv.sh):
 *	  N clients, one thread and one connection each, put small JSON values
 *	  to (or read them linearizably from) random keys among K for a fixed
 *	  time; reports operations per second and latency percentiles.  Also
 *	  the election experiment: kill the leader, time the first write that
 *	  succeeds through another member.
 *
 * Usage: kvbench --target distsys|etcd --ports P[,P...] [--op put|get]
 *				  [--clients N] [--keys K] [--warmup-ms MS] [--run-ms MS]
 *				  [--prefix S]
 *		  kvbench --target distsys --ports P[,P...] --kill PID[,PID...]
 *				  [--timeout-ms MS]
 *
 * Client i talks to the i-th port of the list, modulo its length, so one
 * port sends every client to one member and three spread them.  With
 * --kill, one thread per port writes in a loop from the moment the PIDs
 * (a whole node: its postmaster and every child) get SIGKILL; the first
 * success ends the run.  One line of "key=value" pairs
 * goes to stdout; errors go to stderr.  An alarm bounds every run.
 *
 * Shared state between the threads is only atomics: the main thread
 * publishes the recording window (rec_start, rec_end) and the stop flag;
 * with --kill the first thread to succeed sets first_ok_ns by a
 * compare-and-swap.
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

#include "kvbench.h"

#define MAX_CLIENTS 64
#define MAX_PORTS 8
#define MAX_KILL 128
#define MAX_ERRORS_PER_CLIENT 1000

typedef struct Config
{
	const KvTarget *target;
	int			ports[MAX_PORTS];
	int			nports;
	bool		put;			/* else get */
	int			clients;
	int			keys;
	int			warmup_ms;
	int			run_ms;
	const char *prefix;
	int			kill_pids[MAX_KILL];	/* election experiment */
	int			nkill;			/* 0 = off */
	int			timeout_ms;		/* its distsys.raft_request_timeout */
} Config;

typedef struct Client
{
	int			id;
	pthread_t	thread;
	void	   *conn;
	unsigned	seed;
	SampleVec	ops;			/* request sent .. answer received */
	long		total;			/* operations done, warm-up included */
	long		errors;
} Client;

static Config cfg = {
	.put = true,
	.clients = 1,
	.keys = 1000,
	.warmup_ms = 1000,
	.run_ms = 5000,
	.prefix = "kv",
	.timeout_ms = 300,
};
static Client clients[MAX_CLIENTS];
static uint64_t rec_start;
static uint64_t rec_end;
static int	stop;
static uint64_t kill_ns;
static uint64_t first_ok_ns;

static bool
stopping(void)
{
	return __atomic_load_n(&stop, __ATOMIC_ACQUIRE) != 0;
}

/* in_window: whether an operation that ended at end_ns is recorded */
static bool
in_window(uint64_t end_ns)
{
	uint64_t	start = __atomic_load_n(&rec_start, __ATOMIC_ACQUIRE);
	uint64_t	end = __atomic_load_n(&rec_end, __ATOMIC_ACQUIRE);

	return start != 0 && end_ns >= start && (end == 0 || end_ns <= end);
}

/*
 * one_op: one put of {"c": client, "n": count} to a random key, or one get
 * of a random key; true on success.
 */
static bool
one_op(Client *c)
{
	char		key[128];
	char		json[64];

	snprintf(key, sizeof(key), "%s-%d", cfg.prefix, rand_r(&c->seed) % cfg.keys);
	if (!cfg.put)
		return cfg.target->get(c->conn, key);
	snprintf(json, sizeof(json), "{\"c\": %d, \"n\": %ld}", c->id, c->total);
	return cfg.target->put(c->conn, key, json);
}

static void *
client_main(void *arg)
{
	Client	   *c = arg;

	while (!stopping() && c->errors < MAX_ERRORS_PER_CLIENT)
	{
		uint64_t	t0 = bench_now_ns();
		uint64_t	t1;

		if (!one_op(c))
		{
			c->errors++;
			bench_sleep_us(10000);
			continue;
		}
		t1 = bench_now_ns();
		c->total++;
		if (in_window(t1))
			bench_vec_push(&c->ops, t1, t1 - t0);
	}
	return NULL;
}

/*
 * election_main: write through one surviving member until a write
 * succeeds there or elsewhere; the first success sets first_ok_ns.
 */
static void *
election_main(void *arg)
{
	Client	   *c = arg;

	while (__atomic_load_n(&first_ok_ns, __ATOMIC_ACQUIRE) == 0 && !stopping())
	{
		uint64_t	expected = 0;

		if (!one_op(c))
		{
			/* a timed-out put has waited; a refused one must not spin */
			c->errors++;
			bench_sleep_us(2000);
			continue;
		}
		__atomic_compare_exchange_n(&first_ok_ns, &expected, bench_now_ns(), false,
									__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	}
	return NULL;
}

static void
report(void)
{
	SampleVec	all = {0};
	double		secs = (rec_end - rec_start) / 1e9;
	long		errors = 0;
	long		total = 0;

	for (int i = 0; i < cfg.clients; i++)
	{
		for (size_t j = 0; j < clients[i].ops.len; j++)
			if (in_window(clients[i].ops.items[j].end_ns))
				bench_vec_push(&all, clients[i].ops.items[j].end_ns,
							   clients[i].ops.items[j].len_ns);
		errors += clients[i].errors;
		total += clients[i].total;
	}
	bench_vec_sort(&all);
	printf("target=%s op=%s clients=%d members=%d secs=%.3f ops=%zu ops_s=%.1f"
		   " p50_us=%.1f p99_us=%.1f errors=%ld total_ops=%ld",
		   cfg.target->name, cfg.put ? "put" : "get", cfg.clients, cfg.nports,
		   secs, all.len, all.len / secs, bench_percentile_us(&all, 50),
		   bench_percentile_us(&all, 99), errors, total);
	bench_print_hist("hist", &all);
	putchar('\n');
	free(all.items);
}

static void
on_alarm(int sig)
{
	static const char msg[] = "kvbench: clients did not stop in time, giving up\n";

	(void) sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: kvbench --target distsys|etcd --ports P[,P...] [--op put|get]\n"
			"               [--clients N] [--keys K] [--warmup-ms MS] [--run-ms MS] [--prefix S]\n"
			"       kvbench --target distsys --ports P[,P...] --kill PID[,PID...] [--timeout-ms MS]\n");
	exit(2);
}

/* parse_list: comma-separated integers into out[], at most max; how many */
static int
parse_list(const char *list, int *out, int max)
{
	char	   *copy = strdup(list);
	char	   *save = NULL;
	int			n = 0;

	for (char *p = strtok_r(copy, ",", &save); p != NULL && n < max;
		 p = strtok_r(NULL, ",", &save))
		out[n++] = atoi(p);
	free(copy);
	return n;
}

static void
parse_options(int argc, char **argv)
{
	static const struct option opts[] = {
		{"target", required_argument, NULL, 't'},
		{"ports", required_argument, NULL, 'p'},
		{"op", required_argument, NULL, 'o'},
		{"clients", required_argument, NULL, 'c'},
		{"keys", required_argument, NULL, 'k'},
		{"warmup-ms", required_argument, NULL, 'W'},
		{"run-ms", required_argument, NULL, 'r'},
		{"prefix", required_argument, NULL, 'P'},
		{"kill", required_argument, NULL, 'K'},
		{"timeout-ms", required_argument, NULL, 'T'},
		{NULL, 0, NULL, 0}
	};
	int			ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (ch)
		{
			case 't':
				cfg.target = strcmp(optarg, "etcd") == 0 ? &etcd_kv_target :
					strcmp(optarg, "distsys") == 0 ? &distsys_kv_target : NULL;
				break;
			case 'p':
				cfg.nports = parse_list(optarg, cfg.ports, MAX_PORTS);
				break;
			case 'o':
				cfg.put = strcmp(optarg, "put") == 0;
				if (!cfg.put && strcmp(optarg, "get") != 0)
					usage();
				break;
			case 'c':
				cfg.clients = atoi(optarg);
				break;
			case 'k':
				cfg.keys = atoi(optarg);
				break;
			case 'W':
				cfg.warmup_ms = atoi(optarg);
				break;
			case 'r':
				cfg.run_ms = atoi(optarg);
				break;
			case 'P':
				cfg.prefix = optarg;
				break;
			case 'K':
				cfg.nkill = parse_list(optarg, cfg.kill_pids, MAX_KILL);
				break;
			case 'T':
				cfg.timeout_ms = atoi(optarg);
				break;
			default:
				usage();
		}
	}
	if (cfg.nkill > 0)
		cfg.clients = cfg.nports;
	if (cfg.target == NULL || cfg.nports < 1 || cfg.clients < 1 ||
		cfg.clients > MAX_CLIENTS || cfg.keys < 1 || cfg.run_ms < 1 ||
		cfg.warmup_ms < 0 || (cfg.nkill > 0 && cfg.target->set_timeout == NULL))
		usage();
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
		clients[i].id = i;
		clients[i].seed = (unsigned) (bench_now_ns() ^ (i * 2654435761u));
		clients[i].conn = cfg.target->open(cfg.ports[i % cfg.nports], i);
		if (clients[i].conn == NULL)
			exit(1);
		if (cfg.nkill > 0 && !cfg.target->set_timeout(clients[i].conn, cfg.timeout_ms))
			exit(1);
	}
}

/*
 * election: SIGKILL the leader's processes, then write through the other
 * members until one write succeeds.  Prints the time from the kill to that
 * success (the client's view: election, forwarding and one commit).
 */
static void
election(void)
{
	long		errors = 0;

	kill_ns = bench_now_ns();
	for (int i = 0; i < cfg.nkill; i++)
		if (kill(cfg.kill_pids[i], SIGKILL) != 0 && i == 0)
		{
			perror("kvbench: kill");	/* a child may be gone already */
			exit(1);
		}
	for (int i = 0; i < cfg.clients; i++)
		pthread_create(&clients[i].thread, NULL, election_main, &clients[i]);
	for (int i = 0; i < cfg.clients; i++)
	{
		pthread_join(clients[i].thread, NULL);
		errors += clients[i].errors;
	}
	printf("target=%s kill_to_first_write_ms=%.1f failed_tries=%ld\n",
		   cfg.target->name, (first_ok_ns - kill_ns) / 1e6, errors);
}

static void
measure(void)
{
	for (int i = 0; i < cfg.clients; i++)
		pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
	bench_sleep_us((long) cfg.warmup_ms * 1000);
	__atomic_store_n(&rec_start, bench_now_ns(), __ATOMIC_RELEASE);
	bench_sleep_us((long) cfg.run_ms * 1000);
	__atomic_store_n(&rec_end, bench_now_ns(), __ATOMIC_RELEASE);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < cfg.clients; i++)
		pthread_join(clients[i].thread, NULL);
	report();
}

int
main(int argc, char **argv)
{
	parse_options(argc, argv);
	bench_error_setup("kvbench", cfg.target->name);
	signal(SIGALRM, on_alarm);
	alarm((cfg.warmup_ms + cfg.run_ms) / 1000 + 60);
	open_clients();
	if (cfg.nkill > 0)
		election();
	else
		measure();
	for (int i = 0; i < cfg.clients; i++)
		cfg.target->close(clients[i].conn);
	return 0;
}
