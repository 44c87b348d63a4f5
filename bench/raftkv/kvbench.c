/*-------------------------------------------------------------------------
 *
 * kvbench.c
 *	  Driver of the replicated key-value benchmarks (bench/run-raft-kv.sh,
 *	  bench/run-paxos.sh): N clients, one thread and one connection each,
 *	  for a fixed time, put small JSON values to (or read them
 *	  linearizably from) random keys among K, or compare-and-set them;
 *	  reports operations per second and latency percentiles.  Also two
 *	  experiments with a SIGKILL: the election (time the first write that
 *	  succeeds after the leader's node dies) and the gap (the longest time
 *	  between successful writes of the surviving clients around a kill).
 *
 * Usage: kvbench --target distsys|paxos|etcd --ports P[,P...]
 *				  [--op put|get|cas|cas-one] [--clients N] [--keys K]
 *				  [--warmup-ms MS] [--run-ms MS] [--prefix S]
 *		  kvbench --target distsys|etcd --ports P[,P...] --kill PID[,PID...]
 *				  [--timeout-ms MS]
 *		  kvbench --target distsys|paxos --ports P,P,P --kill PID --gap
 *				  --victim I [--warmup-ms MS] [--run-ms MS] [--timeout-ms MS]
 *				  [--prefix S] [--killed-file F]
 *
 * Client i talks to the i-th port of the list, modulo its length, so one
 * port sends every client to one member and three spread them.  Ops:
 * "cas": each client compare-and-sets its own key from the value it last
 * wrote (absent at first: the prefix must be new), so every CAS should
 * swap; "cas-one": every client on one key, each from the value it last
 * wrote or read, so they contend.  After a CAS that did not swap or
 * failed, the client reads the key (not measured) before its next CAS.
 * Latency is the CAS's alone, swapped or not.
 *
 * With --kill (election), one thread per port writes in a loop from the
 * moment the PIDs (a whole node: its postmaster and every child) get
 * SIGKILL; the first success ends the run.  With --kill --gap, one client
 * per port runs "cas" for warmup-ms, then the postmaster PID and every
 * child it has at that moment (the clients' own backends included) get
 * SIGKILL, their PIDs listed in F (the node of the I-th port, 1-based,
 * whose client stops at its first failure after the kill), and the others
 * go on for run-ms; the line reports, over
 * the surviving clients, the longest time between two successful CASes
 * (or from the last one to the end) from the last success before the kill
 * on, and the longest before the kill for comparison; CASes that end after
 * the run's end do not count.  The caller may
 * restart the node meanwhile.
 *
 * One line of "key=value" pairs goes to stdout; errors go to stderr.  An
 * alarm bounds every run.
 *
 * Shared state between the threads is only atomics: the main thread
 * publishes the recording window (rec_start, rec_end), kill_ns and the stop
 * flag; with --kill the first thread to succeed sets first_ok_ns by a
 * compare-and-swap.
 *
 *-------------------------------------------------------------------------
 */
#include <dirent.h>
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

typedef enum Op
{
	OP_PUT,
	OP_GET,
	OP_CAS,						/* each client its own key */
	OP_CAS_ONE					/* all clients one key */
} Op;

static const char *const op_names[] = {"put", "get", "cas", "cas-one"};

/* what one operation came to */
typedef enum Outcome
{
	OUT_FAILED,					/* an error; the client waits and goes on */
	OUT_MISSED,					/* a CAS that did not swap */
	OUT_DONE
} Outcome;

typedef struct Config
{
	const KvTarget *target;
	int			ports[MAX_PORTS];
	int			nports;
	Op			op;
	int			clients;
	int			keys;
	int			warmup_ms;
	int			run_ms;
	const char *prefix;
	int			kill_pids[MAX_KILL];	/* election experiment */
	int			nkill;			/* 0 = off */
	int			timeout_ms;		/* its distsys.raft_request_timeout */
	bool		gap;			/* the gap experiment, not the election */
	int			victim;			/* gap: the killed node's client, 0-based */
	const char *killed_file;	/* gap: where to list the PIDs killed */
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
	long		swapped;		/* CASes that swapped, in the window */
	long		missed;			/* CASes that did not, in the window */
	char	   *last;			/* CAS: the value it believes is there */
	bool		resync;			/* CAS: read the key before the next one */
	SampleVec	oks;			/* gap: when each successful CAS ended */
} Client;

static Config cfg = {
	.op = OP_PUT,
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
 * cas_op: one CAS of key from the value the client last wrote or read to
 * {"c": client, "n": count}; *t0 is when the CAS was sent (after the read
 * a previous miss or failure asks for).  A CAS that failed may have
 * swapped, so it too asks for a read.
 */
static Outcome
cas_op(Client *c, const char *key, uint64_t *t0)
{
	char		json[64];
	int			r;

	if (c->resync)
	{
		char	   *value;

		if (!cfg.target->read(c->conn, key, &value))
			return OUT_FAILED;
		free(c->last);
		c->last = value;
		c->resync = false;
	}
	snprintf(json, sizeof(json), "{\"c\": %d, \"n\": %ld}", c->id, c->total);
	*t0 = bench_now_ns();
	r = cfg.target->cas(c->conn, key, c->last, json);
	if (r != 1)
	{
		c->resync = true;
		return r == 0 ? OUT_MISSED : OUT_FAILED;
	}
	free(c->last);
	c->last = strdup(json);
	return OUT_DONE;
}

/*
 * one_op: one operation of the configured kind: a put of {"c": client,
 * "n": count} to a random key, a get of a random key, or a CAS (cas_op) of
 * the client's own key or of the one shared key.  *t0 is when its measured
 * request was sent.
 */
static Outcome
one_op(Client *c, uint64_t *t0)
{
	char		key[128];
	char		json[64];

	*t0 = bench_now_ns();
	switch (cfg.op)
	{
		case OP_CAS:
			snprintf(key, sizeof(key), "%s-c%d", cfg.prefix, c->id);
			return cas_op(c, key, t0);
		case OP_CAS_ONE:
			snprintf(key, sizeof(key), "%s-one", cfg.prefix);
			return cas_op(c, key, t0);
		case OP_GET:
			snprintf(key, sizeof(key), "%s-%d", cfg.prefix, rand_r(&c->seed) % cfg.keys);
			return cfg.target->get(c->conn, key) ? OUT_DONE : OUT_FAILED;
		case OP_PUT:
			break;
	}
	snprintf(key, sizeof(key), "%s-%d", cfg.prefix, rand_r(&c->seed) % cfg.keys);
	snprintf(json, sizeof(json), "{\"c\": %d, \"n\": %ld}", c->id, c->total);
	return cfg.target->put(c->conn, key, json) ? OUT_DONE : OUT_FAILED;
}

/* killed_victim: whether c is the gap experiment's client of the dead node */
static bool
killed_victim(const Client *c)
{
	return cfg.gap && c->id == cfg.victim &&
		__atomic_load_n(&kill_ns, __ATOMIC_ACQUIRE) != 0;
}

static void *
client_main(void *arg)
{
	Client	   *c = arg;

	while (!stopping() && c->errors < MAX_ERRORS_PER_CLIENT)
	{
		uint64_t	t0;
		uint64_t	t1;
		Outcome		out = one_op(c, &t0);

		if (out == OUT_FAILED)
		{
			c->errors++;
			if (killed_victim(c))
				break;
			/* the gap experiment's timed-out CAS has waited already */
			bench_sleep_us(cfg.gap ? 2000 : 10000);
			continue;
		}
		t1 = bench_now_ns();
		c->total++;
		if (cfg.gap && out == OUT_DONE)
			bench_vec_push(&c->oks, t1, t1 - t0);
		if (!in_window(t1))
			continue;
		bench_vec_push(&c->ops, t1, t1 - t0);
		if (out == OUT_DONE && (cfg.op == OP_CAS || cfg.op == OP_CAS_ONE))
			c->swapped++;
		else if (out == OUT_MISSED)
			c->missed++;
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
		uint64_t	t0;

		if (one_op(c, &t0) != OUT_DONE)
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
	long		swapped = 0;
	long		missed = 0;

	for (int i = 0; i < cfg.clients; i++)
	{
		for (size_t j = 0; j < clients[i].ops.len; j++)
			if (in_window(clients[i].ops.items[j].end_ns))
				bench_vec_push(&all, clients[i].ops.items[j].end_ns,
							   clients[i].ops.items[j].len_ns);
		errors += clients[i].errors;
		total += clients[i].total;
		swapped += clients[i].swapped;
		missed += clients[i].missed;
	}
	bench_vec_sort(&all);
	printf("target=%s op=%s clients=%d members=%d secs=%.3f ops=%zu ops_s=%.1f"
		   " p50_us=%.1f p99_us=%.1f errors=%ld total_ops=%ld",
		   cfg.target->name, op_names[cfg.op], cfg.clients, cfg.nports,
		   secs, all.len, all.len / secs, bench_percentile_us(&all, 50),
		   bench_percentile_us(&all, 99), errors, total);
	if (cfg.op == OP_CAS || cfg.op == OP_CAS_ONE)
		printf(" swapped=%ld missed=%ld swapped_s=%.1f", swapped, missed, swapped / secs);
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
			"usage: kvbench --target distsys|paxos|etcd --ports P[,P...] [--op put|get|cas|cas-one]\n"
			"               [--clients N] [--keys K] [--warmup-ms MS] [--run-ms MS] [--prefix S]\n"
			"       kvbench --target distsys|etcd --ports P[,P...] --kill PID[,PID...] [--timeout-ms MS]\n"
			"       kvbench --target distsys|paxos --ports P,P,P --kill PID --gap --victim I\n"
			"               [--warmup-ms MS] [--run-ms MS] [--timeout-ms MS] [--prefix S]\n"
			"               [--killed-file F]\n");
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
		{"gap", no_argument, NULL, 'g'},
		{"victim", required_argument, NULL, 'v'},
		{"killed-file", required_argument, NULL, 'F'},
		{NULL, 0, NULL, 0}
	};
	int			ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (ch)
		{
			case 't':
				cfg.target = strcmp(optarg, "etcd") == 0 ? &etcd_kv_target :
					strcmp(optarg, "distsys") == 0 ? &distsys_kv_target :
					strcmp(optarg, "paxos") == 0 ? &paxos_kv_target : NULL;
				break;
			case 'p':
				cfg.nports = parse_list(optarg, cfg.ports, MAX_PORTS);
				break;
			case 'o':
				cfg.op = OP_CAS_ONE + 1;
				for (int i = 0; i <= OP_CAS_ONE; i++)
					if (strcmp(optarg, op_names[i]) == 0)
						cfg.op = i;
				if (cfg.op > OP_CAS_ONE)
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
			case 'g':
				cfg.gap = true;
				break;
			case 'v':
				cfg.victim = atoi(optarg) - 1;
				break;
			case 'F':
				cfg.killed_file = optarg;
				break;
			default:
				usage();
		}
	}
	if (cfg.nkill > 0)
		cfg.clients = cfg.nports;
	if (cfg.gap)
		cfg.op = OP_CAS;
	if (cfg.target == NULL || cfg.nports < 1 || cfg.clients < 1 ||
		cfg.clients > MAX_CLIENTS || cfg.keys < 1 || cfg.run_ms < 1 ||
		cfg.warmup_ms < 0 || (cfg.nkill > 0 && cfg.target->set_timeout == NULL) ||
		(cfg.op == OP_PUT && cfg.target->put == NULL) ||
		((cfg.op == OP_CAS || cfg.op == OP_CAS_ONE) &&
		 (cfg.target->cas == NULL || cfg.target->read == NULL)) ||
		(cfg.gap && (cfg.nkill == 0 || cfg.victim < 0 || cfg.victim >= cfg.nports)))
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

/*
 * client_gaps: for one client of the gap experiment, the longest time
 * between successive successful CASes before the kill (*before), and from
 * its last success before the kill on (*after; the run's end closes the
 * last interval, and *open says whether that one was the longest).
 */
static void
client_gaps(const Client *c, uint64_t end_ns, uint64_t *before, uint64_t *after,
			bool *open)
{
	uint64_t	prev = 0;

	*before = *after = 0;
	*open = false;
	for (size_t j = 0; j < c->oks.len && c->oks.items[j].end_ns <= end_ns; j++)
	{
		uint64_t	t = c->oks.items[j].end_ns;

		if (prev != 0 && t <= kill_ns && t - prev > *before)
			*before = t - prev;
		else if (prev != 0 && t > kill_ns && t - prev > *after)
			*after = t - prev;
		prev = t;
	}
	if (prev == 0)
		prev = rec_start;		/* no success at all: the whole run */
	if (end_ns - prev > *after)
	{
		*after = end_ns - prev;
		*open = true;
	}
}

/*
 * parent_of: the parent PID of pid from /proc, or -1.
 */
static int
parent_of(int pid)
{
	char		path[64];
	char		buf[512];
	FILE	   *f;
	char	   *close_paren;
	int			ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) != NULL &&
		(close_paren = strrchr(buf, ')')) != NULL)
		(void) sscanf(close_paren + 1, " %*c %d", &ppid);
	fclose(f);
	return ppid;
}

/*
 * add_children: append every child of pid that is not listed yet to the
 * PIDs to kill: the node's processes as they are now, the backends of
 * this run's own clients included.  A backend left alive with its
 * postmaster gone can wait for ever on a lock the dead processes held,
 * and keeps the shared memory the restarted node needs.
 */
static void
add_children(int pid)
{
	DIR		   *proc = opendir("/proc");
	struct dirent *e;

	if (proc == NULL)
		return;
	while ((e = readdir(proc)) != NULL && cfg.nkill < MAX_KILL)
	{
		int			child = atoi(e->d_name);
		bool		listed = false;

		if (child <= 0 || parent_of(child) != pid)
			continue;
		for (int i = 0; i < cfg.nkill && !listed; i++)
			listed = cfg.kill_pids[i] == child;
		if (!listed)
			cfg.kill_pids[cfg.nkill++] = child;
	}
	closedir(proc);
}

/*
 * kill_node: SIGKILL the node whose postmaster is kill_pids[0] and every
 * process it has now; the postmaster is stopped first so that it forks no
 * new one meanwhile.  Writes the PIDs to killed_file, if any.
 */
static void
kill_node(void)
{
	FILE	   *f;

	if (kill(cfg.kill_pids[0], SIGSTOP) != 0)
	{
		perror("kvbench: kill");
		exit(1);
	}
	add_children(cfg.kill_pids[0]);
	__atomic_store_n(&kill_ns, bench_now_ns(), __ATOMIC_RELEASE);
	for (int i = 0; i < cfg.nkill; i++)
		(void) kill(cfg.kill_pids[i], SIGKILL); /* a child may be gone already */
	if (cfg.killed_file == NULL)
		return;
	if ((f = fopen(cfg.killed_file, "w")) == NULL)
	{
		perror("kvbench: killed file");
		exit(1);
	}
	for (int i = 0; i < cfg.nkill; i++)
		fprintf(f, "%d\n", cfg.kill_pids[i]);
	fclose(f);
}

/*
 * gap: write for warmup-ms, SIGKILL the node, write for run-ms; print the
 * longest gaps of the surviving clients (see the file's banner).
 */
static void
gap(void)
{
	uint64_t	before_max = 0;
	uint64_t	after_max = 0;
	bool		open_max = false;
	long		errors = 0;
	long		after_oks = 0;
	char		per_client[256] = "";

	__atomic_store_n(&rec_start, bench_now_ns(), __ATOMIC_RELEASE);
	for (int i = 0; i < cfg.clients; i++)
		pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
	bench_sleep_us((long) cfg.warmup_ms * 1000);
	kill_node();
	bench_sleep_us((long) cfg.run_ms * 1000);
	__atomic_store_n(&rec_end, bench_now_ns(), __ATOMIC_RELEASE);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < cfg.clients; i++)
		pthread_join(clients[i].thread, NULL);
	for (int i = 0; i < cfg.clients; i++)
	{
		uint64_t	before;
		uint64_t	after;
		bool		open;

		if (i == cfg.victim)
			continue;
		client_gaps(&clients[i], rec_end, &before, &after, &open);
		if (before > before_max)
			before_max = before;
		if (after > after_max)
		{
			after_max = after;
			open_max = open;
		}
		errors += clients[i].errors;
		for (size_t j = 0; j < clients[i].oks.len; j++)
			after_oks += clients[i].oks.items[j].end_ns > kill_ns &&
				clients[i].oks.items[j].end_ns <= rec_end;
		snprintf(per_client + strlen(per_client), sizeof(per_client) - strlen(per_client),
				 "%s%.1f", per_client[0] ? "," : "", after / 1e6);
	}
	printf("target=%s victim=%d gap_ms=%.1f open=%d pre_kill_gap_ms=%.1f client_gaps_ms=%s"
		   " writes_after_kill=%ld errors=%ld after_ms=%d\n",
		   cfg.target->name, cfg.victim + 1, after_max / 1e6, open_max ? 1 : 0,
		   before_max / 1e6, per_client, after_oks, errors, cfg.run_ms);
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
	if (cfg.gap)
		gap();
	else if (cfg.nkill > 0)
		election();
	else
		measure();
	for (int i = 0; i < cfg.clients; i++)
		cfg.target->close(clients[i].conn);
	return 0;
}
