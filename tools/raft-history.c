/*-------------------------------------------------------------------------
 *
 * raft-history.c
 *	  A load of concurrent clients on the Raft key-value store or the
 *	  CASPaxos registers of every node, each call written down with its
 *	  call and return time, as the history that tests/sim/histcheck judges
 *	  for linearizability (the chaos tests of issues 16 and 17,
 *	  t/042_raft_chaos.pl, t/047_paxos_chaos.pl).
 *
 *	  raft-history --node CONNINFO [--node CONNINFO...] --out FILE
 *	      [--api raft|paxos] [--counter] [--clients N] [--seconds S]
 *	      [--keys K] [--seed N] [--timeout-ms MS]
 *
 * Each client is a thread with its own connection to one node (N clients
 * per node).  It loops until the time is up or SIGTERM/SIGINT arrives.
 *
 * --api raft (the default): a random key of k0..k{K-1} and a random
 * operation: a put of a value no other call ever writes, a linearizable
 * get (raft_get), a cas from the value this client last read of the key
 * to a new value (raft_cas), now and then a delete.
 *
 * --api paxos: the same with only the calls a CASPaxos register has: a
 * get is paxos_read (linearizable), a cas is paxos_cas; half of each.
 *
 * --counter (either API): every client increments the one key "counter":
 * a get, then a cas from the value read to that value + 1 (absent counts
 * as 0, so the first write is a cas from nil to 1), again and again; a
 * cas that answered false or whose outcome is unknown is followed by a
 * new get.  --keys is ignored.  Every get and cas goes into the history
 * as in the other modes, and at the end one more line is printed:
 *	  raft-history: counter acknowledged N unknown M
 * N the increments answered true, M those of unknown outcome, so the
 * counter's final value must lie in [N, N + M].
 *
 * Values are jsonb integers; an absent key is "nil" in the history.
 *
 * What each outcome means in the history (format: histcheck.c's banner):
 *	- an answer: a definite operation, with its call and return time;
 *	- a write that failed in any way after it was sent (YR001, the
 *	  connection lost because the node died, any error not listed next):
 *	  RET "?", since it may have committed; a cas's answer is "?" too;
 *	- a write refused for a reason that holds before Raft or Paxos sees it
 *	  (no worker running or not a Paxos member, 55000: the backend
 *	  withdrew the request before any worker took it; a standby, bad
 *	  input, no privilege): left out;
 *	- a get that failed: left out (it constrains nothing).
 * A client whose connection is lost reconnects with a short backoff;
 * operations start only on an open connection, so a node that refuses
 * connections adds nothing to the history.
 *
 * The summary on stdout is one line per kind, "raft-history: KIND ok N
 * unknown N failed N", then "raft-history: cas swapped N", then the
 * counter line above with --counter.
 *
 * Threads share only the history file (under history_lock) and the stop
 * flag; each keeps its own counters, summed by main after the joins.
 * Times are CLOCK_MONOTONIC microseconds, one clock for all threads.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define MAX_NODES		16
#define MAX_KEYS		64

typedef enum OpKind
{
	OP_PUT,
	OP_GET,
	OP_CAS,
	OP_DEL,
	OP_KINDS
} OpKind;

typedef enum Outcome
{
	OUT_OK,						/* answered */
	OUT_UNKNOWN,				/* a write that may or may not have happened */
	OUT_FAILED,					/* left out of the history */
	OUT_KINDS
} Outcome;

typedef enum Api
{
	API_RAFT,
	API_PAXOS,
	API_KINDS
} Api;

static const char *const kind_names[OP_KINDS] = {"put", "get", "cas", "del"};
static const char *const api_names[API_KINDS] = {"raft", "paxos"};

/*
 * The SQL of each operation per API, $1 the key, $2 the new value, $3 the
 * expected one; NULL where the API has no such call.
 */
static const char *const op_sql[API_KINDS][OP_KINDS] = {
	[API_RAFT] = {
		[OP_PUT] = "SELECT distsys.raft_put($1, $2::jsonb)",
		[OP_GET] = "SELECT distsys.raft_get($1, 'linearizable')",
		[OP_CAS] = "SELECT distsys.raft_cas($1, $3::jsonb, $2::jsonb)",
		[OP_DEL] = "SELECT distsys.raft_delete($1)",
	},
	[API_PAXOS] = {
		[OP_GET] = "SELECT distsys.paxos_read($1)",
		[OP_CAS] = "SELECT distsys.paxos_cas($1, $3::jsonb, $2::jsonb)",
	},
};

typedef struct Options
{
	const char *nodes[MAX_NODES];
	int			n_nodes;
	int			clients;		/* per node */
	int			seconds;
	int			keys;
	uint64_t	seed;
	int			timeout_ms;		/* distsys.raft_request_timeout */
	Api			api;
	bool		counter;		/* --counter: increment one key */
	const char *out;
} Options;

typedef struct Client
{
	int			id;
	const char *conninfo;
	PGconn	   *conn;
	uint64_t	rng;
	int64_t		seq;			/* values written so far */
	int64_t		last_read[MAX_KEYS];	/* 0 = nil or never read */
	long		counts[OP_KINDS][OUT_KINDS];
	long		swapped;		/* cas answered true */
	pthread_t	thread;
} Client;

static Options opt = {.clients = 2, .seconds = 30, .keys = 8, .seed = 1, .timeout_ms = 2000,
.api = API_RAFT};
static FILE *history;
static pthread_mutex_t history_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop_requested;
static uint64_t deadline_us;

/*
 * now_us: CLOCK_MONOTONIC in microseconds.
 */
static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * next_random: splitmix64, so that a seed replays the same choices (the
 * interleaving with the faults, of course, does not replay).
 */
static uint64_t
next_random(uint64_t *state)
{
	uint64_t	z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool
running(void)
{
	return !stop_requested && now_us() < deadline_us;
}

static void
on_stop_signal(int signo)
{
	stop_requested = 1;
}

/*
 * pause_ms: sleep, for the reconnect backoff.
 */
static void
pause_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested)
		;
}

/*
 * client_connect: open c->conn and set the request timeout; false (and no
 * connection) when the node cannot be reached now.
 */
static bool
client_connect(Client *c)
{
	char		set[128];
	PGresult   *res;

	c->conn = PQconnectdb(c->conninfo);
	if (PQstatus(c->conn) == CONNECTION_OK)
	{
		/* short, so that an operation during a fault ends fast as YR001 */
		snprintf(set, sizeof(set), "SET distsys.raft_request_timeout = %d", opt.timeout_ms);
		res = PQexec(c->conn, set);
		if (PQresultStatus(res) == PGRES_COMMAND_OK)
		{
			PQclear(res);
			return true;
		}
		PQclear(res);
	}
	PQfinish(c->conn);
	c->conn = NULL;
	return false;
}

/*
 * value_text: a value as jsonb text, or NULL for nil (0).
 */
static const char *
value_text(int64_t v, char *buf, size_t size)
{
	if (v == 0)
		return NULL;
	snprintf(buf, size, "%" PRId64, v);
	return buf;
}

/*
 * value_field: a value for the history line, "nil" for 0.
 */
static const char *
value_field(int64_t v, char *buf, size_t size)
{
	return value_text(v, buf, size) ? buf : "nil";
}

/*
 * refused_before_raft: whether an error's SQLSTATE proves the call never
 * reached Raft or Paxos: no worker took it or this node is not a Paxos
 * member (55000), a standby (25006), bad input (class 22), no privilege
 * (42501), too many connections or a node starting (53300, 57P03).
 * Everything else about a write, YR001 included, may have committed.
 */
static bool
refused_before_raft(const char *sqlstate)
{
	static const char *const codes[] = {"55000", "25006", "42501", "53300", "57P03"};

	if (sqlstate == NULL)
		return false;
	if (strncmp(sqlstate, "22", 2) == 0)
		return true;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(sqlstate, codes[i]) == 0)
			return true;
	return false;
}

/*
 * classify: the outcome of one call whose result is res.  A lost
 * connection closes c->conn, so the loop reconnects.
 */
static Outcome
classify(Client *c, OpKind kind, PGresult *res)
{
	const char *state;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		return OUT_OK;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (PQstatus(c->conn) != CONNECTION_OK)
	{
		PQfinish(c->conn);
		c->conn = NULL;
	}
	if (kind == OP_GET || refused_before_raft(state))
		return OUT_FAILED;
	return OUT_UNKNOWN;
}

/*
 * record: one line of the history, for an operation that is in it.
 */
static void
record(const char *line)
{
	pthread_mutex_lock(&history_lock);
	fputs(line, history);
	pthread_mutex_unlock(&history_lock);
}

/*
 * call: run sql with the parameters; the outcome, *res the result (to
 * PQclear), *call and *ret the times around it.
 */
static Outcome
call(Client *c, OpKind kind, const char *sql, int n, const char *const *params,
	 PGresult **res, uint64_t *t_call, uint64_t *t_ret)
{
	*t_call = now_us();
	*res = PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0);
	*t_ret = now_us();
	return classify(c, kind, *res);
}

/*
 * ret_field: the return time, or "?" for an unknown outcome.
 */
static const char *
ret_field(Outcome out, uint64_t t_ret, char *buf, size_t size)
{
	if (out == OUT_UNKNOWN)
		return "?";
	snprintf(buf, size, "%" PRIu64, t_ret);
	return buf;
}

/*
 * parse_read: the integer a get answered (0 for NULL); a value this tool
 * never writes is reported and kept as text in the line, so histcheck
 * refuses the history rather than miss it.
 */
static int64_t
parse_read(PGresult *res, char *field, size_t size)
{
	char	   *end;
	int64_t		v;

	if (PQgetisnull(res, 0, 0))
	{
		snprintf(field, size, "nil");
		return 0;
	}
	v = strtoll(PQgetvalue(res, 0, 0), &end, 10);
	snprintf(field, size, "%s", PQgetvalue(res, 0, 0));
	if (*end != '\0' || v == 0)
		fprintf(stderr, "raft-history: a get answered %s, which no client wrote\n", field);
	return v;
}

/*
 * do_get: a linearizable get of key number k.
 */
static Outcome
do_get(Client *c, int k, const char *key)
{
	const char *params[1] = {key};
	char		line[256], val[64];
	uint64_t	t0, t1;
	PGresult   *res;
	Outcome		out;

	out = call(c, OP_GET, op_sql[opt.api][OP_GET], 1, params, &res, &t0, &t1);
	if (out == OUT_OK)
	{
		c->last_read[k] = parse_read(res, val, sizeof(val));
		snprintf(line, sizeof(line), "%s get %s %" PRIu64 " %" PRIu64 "\n", key, val, t0, t1);
		record(line);
	}
	PQclear(res);
	return out;
}

/*
 * do_write: a put, cas or delete of key number k; a put and a cas write
 * value, a cas expecting the value this client last read.
 */
static Outcome
do_write(Client *c, OpKind kind, int k, const char *key, int64_t value)
{
	int64_t		expected = c->last_read[k];
	char		vbuf[32], ebuf[32], vf[32], ef[32], rbuf[32], line[256];
	const char *params[3] = {key, value_text(value, vbuf, sizeof(vbuf)),
	value_text(expected, ebuf, sizeof(ebuf))};
	const char *answer = "?";
	uint64_t	t0, t1;
	PGresult   *res;
	Outcome		out;

	out = call(c, kind, op_sql[opt.api][kind], kind == OP_DEL ? 1 : kind == OP_PUT ? 2 : 3,
			   params, &res, &t0, &t1);
	if (out == OUT_OK && kind == OP_CAS)
	{
		answer = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "true" : "false";
		c->swapped += answer[0] == 't';
	}
	PQclear(res);
	if (out == OUT_FAILED)
		return out;
	if (kind == OP_PUT)
		snprintf(line, sizeof(line), "%s put %" PRId64 " %" PRIu64 " %s\n", key, value, t0,
				 ret_field(out, t1, rbuf, sizeof(rbuf)));
	else if (kind == OP_DEL)
		snprintf(line, sizeof(line), "%s del %" PRIu64 " %s\n", key, t0,
				 ret_field(out, t1, rbuf, sizeof(rbuf)));
	else
		snprintf(line, sizeof(line), "%s cas %s %s %s %" PRIu64 " %s\n", key,
				 value_field(expected, ef, sizeof(ef)), value_field(value, vf, sizeof(vf)),
				 answer, t0, ret_field(out, t1, rbuf, sizeof(rbuf)));
	record(line);
	return out;
}

/*
 * unique_value: a value no other call of this run writes.
 */
static int64_t
unique_value(Client *c)
{
	return (int64_t) (c->id + 1) * 1000000000 + ++c->seq;
}

/*
 * pick_kind: for Raft 40% get, 30% put, 25% cas, 5% delete (deletes now
 * and then only: each one hides what the register held); for Paxos, whose
 * registers have no put or delete, half get, half cas.
 */
static OpKind
pick_kind(Client *c)
{
	int			r = (int) (next_random(&c->rng) % 100);

	if (opt.api == API_PAXOS)
		return r < 50 ? OP_GET : OP_CAS;
	return r < 40 ? OP_GET : r < 70 ? OP_PUT : r < 95 ? OP_CAS : OP_DEL;
}

/*
 * random_step: one operation of the random load; its kind in *kind.
 */
static Outcome
random_step(Client *c, OpKind *kind)
{
	int			k = (int) (next_random(&c->rng) % (uint64_t) opt.keys);
	char		key[16];

	snprintf(key, sizeof(key), "k%d", k);
	*kind = pick_kind(c);
	if (*kind == OP_GET)
		return do_get(c, k, key);
	return do_write(c, *kind, k, key, unique_value(c));
}

/*
 * counter_step: one increment attempt of key "counter": a get, and if it
 * answered, a cas from the value read to that value + 1.  Both are
 * counted; the outcome is the last call's, its kind in *kind.
 */
static Outcome
counter_step(Client *c, OpKind *kind)
{
	Outcome		out;

	*kind = OP_GET;
	out = do_get(c, 0, "counter");
	if (out != OUT_OK || !running())
		return out;
	c->counts[OP_GET][out]++;
	*kind = OP_CAS;
	return do_write(c, OP_CAS, 0, "counter", c->last_read[0] + 1);
}

/*
 * client_main: the loop of one client thread.
 */
static void *
client_main(void *arg)
{
	Client	   *c = arg;
	int			backoff = 20;

	while (running())
	{
		OpKind		kind;
		Outcome		out;

		if (c->conn == NULL && !client_connect(c))
		{
			pause_ms(backoff);
			backoff = backoff < 200 ? backoff * 2 : 200;
			continue;
		}
		backoff = 20;
		out = opt.counter ? counter_step(c, &kind) : random_step(c, &kind);
		c->counts[kind][out]++;
		/* a node without a worker refuses at once: do not spin on it */
		if (out != OUT_OK)
			pause_ms(20);
	}
	if (c->conn)
		PQfinish(c->conn);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: raft-history --node CONNINFO [--node CONNINFO...] --out FILE "
			"[--api raft|paxos] [--counter] [--clients N] [--seconds S] [--keys K] [--seed N] "
			"[--timeout-ms MS]\n");
	exit(2);
}

/*
 * int_arg: a positive integer option value, or the usage.
 */
static long
int_arg(const char *s)
{
	char	   *end;
	long		v = strtol(s, &end, 10);

	if (*end != '\0' || v <= 0)
		usage();
	return v;
}

/*
 * api_arg: the API an --api value names, or the usage.
 */
static Api
api_arg(const char *s)
{
	for (int a = 0; a < API_KINDS; a++)
		if (strcmp(s, api_names[a]) == 0)
			return (Api) a;
	usage();
	return API_RAFT;
}

static void
parse_options(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--counter") == 0)
		{
			opt.counter = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--node") == 0 && opt.n_nodes < MAX_NODES)
			opt.nodes[opt.n_nodes++] = v;
		else if (strcmp(a, "--out") == 0)
			opt.out = v;
		else if (strcmp(a, "--clients") == 0)
			opt.clients = (int) int_arg(v);
		else if (strcmp(a, "--seconds") == 0)
			opt.seconds = (int) int_arg(v);
		else if (strcmp(a, "--keys") == 0 && int_arg(v) <= MAX_KEYS)
			opt.keys = (int) int_arg(v);
		else if (strcmp(a, "--seed") == 0)
			opt.seed = (uint64_t) int_arg(v);
		else if (strcmp(a, "--timeout-ms") == 0)
			opt.timeout_ms = (int) int_arg(v);
		else if (strcmp(a, "--api") == 0)
			opt.api = api_arg(v);
		else
			usage();
	}
	if (opt.n_nodes == 0 || opt.out == NULL)
		usage();
}

/*
 * print_summary: per kind, how many calls answered, ended unknown or were
 * left out; one line each, which the test reads.
 */
static void
print_summary(Client *clients, int n)
{
	long		total[OP_KINDS][OUT_KINDS] = {{0}};
	long		swapped = 0;

	for (int i = 0; i < n; i++)
	{
		for (int k = 0; k < OP_KINDS; k++)
			for (int o = 0; o < OUT_KINDS; o++)
				total[k][o] += clients[i].counts[k][o];
		swapped += clients[i].swapped;
	}
	for (int k = 0; k < OP_KINDS; k++)
		printf("raft-history: %s ok %ld unknown %ld failed %ld\n", kind_names[k],
			   total[k][OUT_OK], total[k][OUT_UNKNOWN], total[k][OUT_FAILED]);
	printf("raft-history: cas swapped %ld\n", swapped);
	if (opt.counter)
		printf("raft-history: counter acknowledged %ld unknown %ld\n", swapped,
			   total[OP_CAS][OUT_UNKNOWN]);
}

int
main(int argc, char **argv)
{
	int			n;
	Client	   *clients;

	parse_options(argc, argv);
	history = fopen(opt.out, "w");
	if (history == NULL)
	{
		fprintf(stderr, "raft-history: cannot write %s: %s\n", opt.out, strerror(errno));
		return 2;
	}
	/* a line at a time: the test counts the lines to see the load go on */
	setvbuf(history, NULL, _IOLBF, 0);
	signal(SIGTERM, on_stop_signal);
	signal(SIGINT, on_stop_signal);
	deadline_us = now_us() + (uint64_t) opt.seconds * 1000000;
	n = opt.n_nodes * opt.clients;
	clients = calloc(n, sizeof(Client));
	for (int i = 0; i < n; i++)
	{
		clients[i].id = i;
		clients[i].conninfo = opt.nodes[i % opt.n_nodes];
		clients[i].rng = opt.seed * 1000003 + (uint64_t) i;
		pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(clients[i].thread, NULL);
	fclose(history);
	print_summary(clients, n);
	free(clients);
	return 0;
}
