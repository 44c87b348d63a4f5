/*-------------------------------------------------------------------------
 *
 * psim.c
 *	  Deterministic simulator for the Paxos core (extension/paxos/core):
 *	  3 or 5 nodes, each proposer, acceptor and learner, running decree
 *	  instances and CASPaxos registers under message loss, duplication,
 *	  reordering, delay, partitions and crashes that keep only synced
 *	  state; checked for safety after every persist (psim_check.c), for
 *	  liveness once the faults stop and for linearizability at the end.
 *
 *	  paxos-sim [--seeds N] [--first F] [--seed S] [--nodes 3|5] [--jobs J]
 *				[--verbose] [--stop-first] [--no-scenarios]
 *
 * Output, options and exit status are the Raft simulator's (tests/sim/
 * sim.c), so tests/sim/run-mutants.sh judges both: a line "VIOLATION
 * seed=S nodes=N property=P: ..." per failing seed, exit 1 if any.  Odd
 * seeds run 3 nodes, even seeds 5.  Unless --no-scenarios, the seed
 * document's worked example (psim_scenario.c) and the byte-string
 * interface's scenarios (psim_limits.c) run first.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "psim.h"
#include "psim_world.h"

/* The run's totals, summed over the jobs as one array. */
enum
{
	T_SEEDS3, T_SEEDS5, T_VIOLATIONS, T_TICKS, T_DECISIONS, T_UNKNOWN,
	T_OPS_OK, T_FAST, T_CRASHES, T_ROUNDS, T_MAX_ROUNDS, T_WORST_HEAL_PERMILLE, T_FIRST_BAD,
	T_N
};

static bool stop_first = false;
static volatile int *stop_flag;

/*
 * setup: a schedule drawn from the seed.
 */
static void
setup(PSim *S, uint64_t seed, int n, bool verbose)
{
	int			i;

	S->seed = seed;
	S->rng = seed * 0x9E3779B97F4A7C15ULL + 17;
	S->n = n;
	S->verbose = verbose;
	S->drop_p = sim_rand_unit(&S->rng) * 0.2;
	S->dup_p = sim_rand_unit(&S->rng) * 0.1;
	S->delay_max = 1 + (int) sim_rand_below(&S->rng, 10);
	/* a third of the schedules crash often and briefly: a restart between
	 * a promise and the accept it must refuse is what a lost promise needs */
	if (sim_rand_below(&S->rng, 3) == 0)
	{
		S->crash_p = sim_rand_unit(&S->rng) * 0.03;
		S->max_down = 2 + (int) sim_rand_below(&S->rng, 20);
	}
	else
	{
		S->crash_p = sim_rand_unit(&S->rng) * 0.004;
		S->max_down = 20 + (int) sim_rand_below(&S->rng, 200);
	}
	S->partition_every = 50 + (int) sim_rand_below(&S->rng, 300);
	S->fault_ticks = 1000;
	S->timeout = 2 * S->delay_max + 2 + (int) sim_rand_below(&S->rng, 10);
	S->backoff = 1 + (int) sim_rand_below(&S->rng, 8);
	S->client_timeout = 8 * S->timeout;
	S->faults_on = true;
	for (i = 0; i < SIM_CLIENTS; i++)
		S->clients[i].op = -1;
	for (i = 0; i < n; i++)
		ps_node_start(S, i);
}

static void
step(PSim *S, bool submit)
{
	S->now++;
	if (S->faults_on)
		ps_faults(S);
	ps_clients(S, submit);
	ps_decrees(S, submit);
	ps_deliver(S);
	ps_tick(S);
}

/*
 * settled: after the heal, every client finished two operations and no
 * node's proposer has anything pending.
 */
static bool
settled(PSim *S)
{
	int			i;

	for (i = 0; i < SIM_CLIENTS; i++)
		if (S->clients[i].done_after_heal < 2)
			return false;
	for (i = 0; i < S->n; i++)
		if (paxos_pending(S->nodes[i].px) > 0)
			return false;
	return true;
}

/*
 * heal: the faults stop; run until settled within a bound that the
 * backoff makes reachable (liveness), then the end checks.
 */
static void
heal(PSim *S, long *t)
{
	uint64_t	bound = 40 * (uint64_t) (S->timeout + 16 * S->backoff) +
		4 * S->client_timeout;
	uint64_t	start;
	int			i;

	S->faults_on = false;
	memset(S->cut, 0, sizeof(S->cut));
	for (i = 0; i < S->n; i++)
		if (!S->nodes[i].up)
			ps_node_start(S, i);
	start = S->now;
	while (!S->failed && S->now - start < bound && !settled(S))
	{
		bool		enough = true;

		for (i = 0; i < SIM_CLIENTS; i++)
			enough &= S->clients[i].done_after_heal >= 2;
		step(S, !enough);
	}
	if (!S->failed && !settled(S))
		ps_violation(S, "liveness",
					 "%llu ticks after the faults stopped, operations are "
					 "still pending", (unsigned long long) bound);
	if (!S->failed && 1000 * (S->now - start) / bound > (uint64_t) t[T_WORST_HEAL_PERMILLE])
		t[T_WORST_HEAL_PERMILLE] = 1000 * (S->now - start) / bound;
	if (!S->failed)
		ps_check_final(S);
}

/*
 * run_seed: one schedule; true if no property was violated.
 */
static bool
run_seed(uint64_t seed, int n, bool verbose, long *t)
{
	PSim	   *S = calloc(1, sizeof(PSim));
	bool		ok;
	int			i;

	setup(S, seed, n, verbose);
	while (S->now < (uint64_t) S->fault_ticks && !S->failed)
		step(S, true);
	if (!S->failed)
		heal(S, t);
	ok = !S->failed;
	if (!ok)
	{
		printf("VIOLATION seed=%llu nodes=%d property=%s: %s\n",
			   (unsigned long long) seed, n, S->property, S->detail);
		printf("  replay: make paxos-sim SEED=%llu NODES=%d VERBOSE=1\n",
			   (unsigned long long) seed, n);
		fflush(stdout);
	}
	t[T_TICKS] += S->now;
	t[T_DECISIONS] += S->decisions;
	t[T_UNKNOWN] += S->unknown;
	t[T_CRASHES] += S->crashes;
	t[T_ROUNDS] += S->rounds;
	t[T_FAST] += S->fast;
	if (S->max_rounds > t[T_MAX_ROUNDS])
		t[T_MAX_ROUNDS] = S->max_rounds;
	for (i = 0; i < S->n_ops; i++)
		t[T_OPS_OK] += S->ops[i].status == OP_OK;
	for (i = 0; i < S->n; i++)
		paxos_free(S->nodes[i].px);
	free(S->net);
	free(S->ops);
	ps_check_free(S);
	free(S);
	return ok;
}

/*
 * run_range: the seeds first + i for i = job, job + jobs, ... < count.
 */
static void
run_range(uint64_t first, long count, int nodes, int jobs, int job,
		  bool verbose, long *t)
{
	long		i;

	for (i = job; i < count && !(stop_first && *stop_flag); i += jobs)
	{
		uint64_t	seed = first + i;
		int			n = nodes ? nodes : (seed % 2 ? 3 : 5);

		t[n == 5 ? T_SEEDS5 : T_SEEDS3]++;
		if (run_seed(seed, n, verbose, t))
			continue;
		t[T_VIOLATIONS]++;
		if (t[T_FIRST_BAD] < 0 || (long) seed < t[T_FIRST_BAD])
			t[T_FIRST_BAD] = (long) seed;
		if (stop_first)
			*stop_flag = 1;
	}
}

/*
 * merge: job totals t into total (sums, maxima, the smallest bad seed).
 */
static void
merge(long *total, const long *t)
{
	int			k;

	for (k = 0; k < T_N; k++)
	{
		if (k == T_FIRST_BAD)
		{
			if (t[k] >= 0 && (total[k] < 0 || t[k] < total[k]))
				total[k] = t[k];
		}
		else if (k == T_MAX_ROUNDS || k == T_WORST_HEAL_PERMILLE)
			total[k] = t[k] > total[k] ? t[k] : total[k];
		else
			total[k] += t[k];
	}
}

/*
 * run_jobs: fork jobs processes over the seeds; each reports its totals
 * through a pipe.  Returns false on a setup error.
 */
static bool
run_jobs(uint64_t first, long count, int nodes, int jobs, bool verbose,
		 long *total)
{
	int			fds[2];
	int			j;
	long		t[T_N];

	stop_flag = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (stop_flag == MAP_FAILED || pipe(fds) != 0)
		return false;
	*stop_flag = 0;
	fflush(stdout);
	for (j = 0; j < jobs; j++)
		if (fork() == 0)
		{
			memset(t, 0, sizeof(t));
			t[T_FIRST_BAD] = -1;
			run_range(first, count, nodes, jobs, j, verbose, t);
			_exit(write(fds[1], t, sizeof(t)) == sizeof(t) ? 0 : 2);
		}
	for (j = 0; j < jobs; j++)
	{
		if (read(fds[0], t, sizeof(t)) != sizeof(t))
			return false;
		merge(total, t);
	}
	while (wait(NULL) > 0)
		;
	return true;
}

static void
summary(const long *t)
{
	printf("paxos-sim: %ld ticks, %ld decisions (decrees and register "
		   "operations), %ld register operations acknowledged, %ld register "
		   "writes answered unknown, %ld crashes\n",
		   t[T_TICKS], t[T_DECISIONS], t[T_OPS_OK], t[T_UNKNOWN], t[T_CRASHES]);
	printf("paxos-sim: %ld register operations took the one-round-trip path "
		   "(no prepare)\n", t[T_FAST]);
	printf("paxos-sim: prepare rounds per decision %.2f on average, %ld at "
		   "most; slowest recovery after the faults stopped took %.0f%% of "
		   "the liveness bound\n",
		   t[T_DECISIONS] ? (double) t[T_ROUNDS] / t[T_DECISIONS] : 0.0,
		   t[T_MAX_ROUNDS], t[T_WORST_HEAL_PERMILLE] / 10.0);
	if (t[T_FIRST_BAD] >= 0)
		printf("paxos-sim: first failing seed %ld\n", t[T_FIRST_BAD]);
	printf("paxos-sim: %ld seeds (%ld with 3 nodes, %ld with 5), %ld "
		   "violations\n", t[T_SEEDS3] + t[T_SEEDS5], t[T_SEEDS3],
		   t[T_SEEDS5], t[T_VIOLATIONS]);
}

/*
 * main: parse the options, run the scenario and the seeds; exit 1 if a
 * property was violated, 2 on a usage or setup error.
 */
int
main(int argc, char **argv)
{
	SimArgs		a;
	long		total[T_N];

	if (sim_parse_args(argc, argv, "paxos-sim", &a) != 0 ||
		(a.nodes != 0 && a.nodes != 3 && a.nodes != 5))
		return 2;
	stop_first = a.stop_first;
	if (lin_self_test() != 0)
	{
		printf("paxos-sim: the linearizability checker fails its self-test\n");
		return 2;
	}
	if (a.scenarios && a.count > 1 &&
		(ps_seed_scenario() != 0 || ps_limits_scenario() != 0))
		return 1;
	memset(total, 0, sizeof(total));
	total[T_FIRST_BAD] = -1;
	if (!run_jobs(a.first, a.count, a.nodes, a.jobs, a.verbose, total))
		return 2;
	summary(total);
	return total[T_VIOLATIONS] > 0 ? 1 : 0;
}
