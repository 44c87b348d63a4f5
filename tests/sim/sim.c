/*-------------------------------------------------------------------------
 *
 * sim.c
 *	  Deterministic simulator for the Raft core (extension/raft/core): a 3- or
 *	  5-node cluster with a key-value state machine and clients, under an
 *	  adversarial network, crashes, membership changes and leadership
 *	  transfers, checked for safety after every tick and for liveness and
 *	  linearizability at the end.
 *
 *	  sim [--seeds N] [--first F] [--seed S] [--nodes 3|5] [--jobs J]
 *		  [--verbose] [--stop-first] [--no-scenarios]
 *
 * --stop-first ends the run (every job) at the first violation found.
 * Unless --no-scenarios (or a single --seed), the directed scenarios of
 * scenarios.c run first, and the linearizability checker's self-test
 * always does.
 *
 * This file holds the run loop, the end-of-run checks and main; the world
 * (network, clients, faults) is in sim_world.c, the servers in sim_node.c,
 * the safety checks in sim_check.c, the linearizability checker in
 * lincheck.c and the directed scenarios in scenarios.c.
 *
 * Each seed is one schedule: every random choice (fault, delay, client
 * operation, election timeout) comes from it, so a failing seed replays
 * exactly with --seed.  Without --nodes, odd seeds run 3 nodes and even
 * seeds 5.  Exit status 1 if any seed violated a property.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim.h"
#include "sim_world.h"

typedef struct RunTotals
{
	long		seeds[2];		/* with 3 nodes, with 5 */
	long		violations;
	long		ticks;
	long		elections;
	long		ops_ok;
	long		ops_unknown;
	long		snapshots;
	long		conf;
	long		transfers;
	long		lease_reads;
	long		index_reads;
	double		worst_heal;		/* slowest convergence / its bound */
	long		first_bad_seed;
} RunTotals;

static bool stop_first = false;
static bool scenarios = true;
static volatile int *stop_flag;	/* shared by the jobs: a seed failed */

/*
 * step: one tick of the world.
 */
static void
step(Sim *S, bool submit, bool after_heal)
{
	int			i;

	S->now++;
	if (S->faults_on)
		sim_faults(S);
	sim_check_retire(S);
	for (i = 0; i < SIM_MAX_SLOTS; i++)
		if (S->nodes[i].state == NODE_UP)
			raft_tick(S->nodes[i].r);
	sim_net_deliver(S);
	for (i = 0; i < SIM_CLIENTS; i++)
		sim_client_step(S, i, submit, after_heal);
	for (i = 0; i < SIM_MAX_SLOTS; i++)
		if (S->nodes[i].state == NODE_UP &&
			(!S->faults_on || sim_rand_unit(&S->rng) < S->nodes[i].ready_p))
			sim_node_ready(S, i);
	for (i = 0; i < SIM_MAX_SLOTS; i++)
		if (S->nodes[i].state == NODE_UP)
			sim_check_commit(S, &S->nodes[i], raft_commit_index(S->nodes[i].r));
	sim_check_leaders(S);
}

/*
 * setup: draw the schedule's parameters from the seed and boot base_n
 * voters.
 */
static void
setup(Sim *S, uint64_t seed, int base_n, bool verbose)
{
	RaftOptions *o = &S->ropt;
	int			i;

	memset(S, 0, sizeof(*S));
	S->seed = seed;
	S->rng = seed * 0xD1B54A32D192ED03ULL + 12345;
	S->base_n = base_n;
	S->verbose = verbose;
	raft_default_options(o);
	o->election_min = 10 + (int) sim_rand_below(&S->rng, 21);
	o->election_max = 2 * o->election_min;
	o->heartbeat_ticks = 1 + o->election_min / 5;
	o->pre_vote = sim_rand_below(&S->rng, 5) != 0;
	o->check_quorum = sim_rand_below(&S->rng, 5) != 0;
	S->lease_reads = o->check_quorum && sim_rand_below(&S->rng, 2);
	o->lease_ticks = S->lease_reads ? o->election_min - 2 : 0;
	o->max_entries_per_msg = (int[]) {1, 2, 4, 64}[sim_rand_below(&S->rng, 4)];
	o->max_inflight = (int[]) {1, 4, 32}[sim_rand_below(&S->rng, 3)];
	o->bootstrap.n_voters = base_n;
	for (i = 0; i < base_n; i++)
		o->bootstrap.voters[i] = i + 1;
	S->drop_p = sim_rand_unit(&S->rng) * 0.15;
	S->dup_p = sim_rand_unit(&S->rng) * 0.05;
	S->delay_max = 1 + (int) sim_rand_below(&S->rng, o->election_min / 2);
	S->crash_p = 1.0 / (200 + sim_rand_below(&S->rng, 2000));
	S->max_down = 4 * o->election_max;

	/*
	 * One schedule in two has leader churn: leaders crash soon after
	 * they are elected, often with entries on a minority only.  That is
	 * the history of the Raft paper's figure 8, which only the rule
	 * "commit by counting replicas only in the leader's own term" survives.
	 */
	if (sim_rand_below(&S->rng, 2) == 0)
	{
		S->leader_crash_p = 1.0 / (2 + sim_rand_below(&S->rng, 4 * o->election_min));
		if (sim_rand_below(&S->rng, 2))
			o->max_entries_per_msg = 1;
		S->max_down = 10 * o->election_max;
	}
	S->partition_every = 50 + (int) sim_rand_below(&S->rng, 400);
	S->fault_ticks = 3000 + (int) sim_rand_below(&S->rng, 3000);
	S->compact_every = 10 + (int) sim_rand_below(&S->rng, 100);
	S->client_timeout = 2 * o->election_max + (int) sim_rand_below(&S->rng, 50);
	S->faults_on = true;
	S->ops = sim_xmalloc(SIM_MAX_OPS * sizeof(SimOp));
	for (i = 0; i < SIM_CLIENTS; i++)
	{
		S->clients[i].op = -1;
		S->clients[i].leader_slot = -1;
	}
	sim_check_reset(S);
	for (i = 0; i < base_n; i++)
	{
		sim_node_start(S, i, true);
		S->nodes[i].ready_p = 0.3 + 0.7 * sim_rand_unit(&S->rng);
	}
	for (; i < SIM_MAX_SLOTS; i++)
		S->nodes[i].ready_p = 0.3 + 0.7 * sim_rand_unit(&S->rng);
}

/*
 * converged: after the faults, whether a leader exists, has committed its
 * whole log, and every running member applied all of it.
 */
static bool
converged(Sim *S)
{
	int			l = sim_find_leader(S);
	const RaftConfState *c;
	uint64_t	commit;
	int			i;

	if (l < 0)
		return false;
	commit = raft_commit_index(S->nodes[l].r);
	if (commit != raft_last_index(S->nodes[l].r))
		return false;
	c = raft_conf(S->nodes[l].r);
	for (i = 0; i < SIM_MAX_SLOTS; i++)
	{
		SimNode    *n = &S->nodes[i];

		if (!raft_conf_is_voter(c, n->id) && !raft_conf_is_learner(c, n->id))
			continue;
		if (n->state != NODE_UP || n->applied != commit)
			return false;
	}
	for (i = 0; i < SIM_CLIENTS; i++)
		if (S->clients[i].op >= 0)
			return false;
	return true;
}

/*
 * check_final: durability (every acknowledged put applied by every
 * member, all members in the same state) and linearizability per key.
 */
static void
check_final(Sim *S)
{
	int			l = sim_find_leader(S);
	const RaftConfState *c = raft_conf(S->nodes[l].r);
	LinOp	   *ops = sim_xmalloc(SIM_MAX_OPS * sizeof(LinOp));
	int			i;
	int			k;

	for (i = 0; i < SIM_MAX_SLOTS && !S->failed; i++)
	{
		SimNode    *n = &S->nodes[i];

		if (!raft_conf_is_voter(c, n->id) && !raft_conf_is_learner(c, n->id))
			continue;
		if (memcmp(&n->kv, &S->nodes[l].kv, sizeof(Kv)) != 0)
			sim_violation(S, "state-machine-safety",
						  "node %llu and leader %d differ in final state",
						  (unsigned long long) n->id, l + 1);
		for (k = 0; k < S->n_ops; k++)
			if (S->ops[k].kind == LIN_PUT && S->ops[k].status == OP_OK &&
				!(n->kv.ops[k / 8] & (1 << (k % 8))))
			{
				sim_violation(S, "durability",
							  "acknowledged put #%d (key %d = %lld) is not in "
							  "node %llu's final state", k, S->ops[k].key,
							  (long long) S->ops[k].value,
							  (unsigned long long) n->id);
				break;
			}
	}
	for (k = 0; k < SIM_KEYS && !S->failed; k++)
	{
		int			m = 0;
		long		explored;

		for (i = 0; i < S->n_ops; i++)
		{
			SimOp	   *o = &S->ops[i];

			if (o->key != k || o->status == OP_FAILED ||
				(o->kind == LIN_GET && o->status != OP_OK))
				continue;
			ops[m].kind = o->kind;
			ops[m].value = o->value;
			ops[m].call = o->call;
			ops[m].ret = o->status == OP_OK ? o->ret : LIN_INF;
			m++;
		}
		if (!lin_check_key(ops, m, &explored))
			sim_violation(S, "linearizability",
						  "the %d operations on key %d have no linearization",
						  m, k);
		else if (explored < 0)
			printf("sim: seed %llu key %d: linearizability search gave up "
				   "(too large), not counted\n", (unsigned long long) S->seed, k);
	}
	free(ops);
}

/*
 * dump_state: what every node and client is doing (verbose liveness
 * failures).
 */
static void
dump_state(Sim *S)
{
	int			i;

	for (i = 0; i < SIM_MAX_SLOTS; i++)
	{
		SimNode    *n = &S->nodes[i];

		if (n->state != NODE_UP)
		{
			printf("  node %d state %d\n", i + 1, n->state);
			continue;
		}
		printf("  node %d role %d term %llu lead %llu commit %llu last %llu "
			   "applied %llu voters %d learners %d voter? %d\n", i + 1,
			   raft_role(n->r), (unsigned long long) raft_term(n->r),
			   (unsigned long long) raft_leader(n->r),
			   (unsigned long long) raft_commit_index(n->r),
			   (unsigned long long) raft_last_index(n->r),
			   (unsigned long long) n->applied, raft_conf(n->r)->n_voters,
			   raft_conf(n->r)->n_learners,
			   raft_conf_is_voter(raft_conf(n->r), n->id));
	}
	for (i = 0; i < SIM_CLIENTS; i++)
		printf("  client %d op %d done after heal %d\n", i,
			   S->clients[i].op, S->clients[i].done_after_heal);
}

/*
 * run_seed: one schedule; returns true if no property was violated.
 */
static bool
run_seed(uint64_t seed, int base_n, bool verbose, RunTotals *t)
{
	Sim		   *S = calloc(1, sizeof(Sim));
	uint64_t	heal_bound;
	uint64_t	end;
	int			i;
	bool		ok;

	setup(S, seed, base_n, verbose);
	while (S->now < (uint64_t) S->fault_ticks && !S->failed)
		step(S, true, false);

	/* faults stop: heal the network, restart every crashed node */
	S->faults_on = false;
	memset(S->cut, 0, sizeof(S->cut));
	for (i = 0; i < SIM_MAX_SLOTS; i++)
		if (S->nodes[i].state == NODE_DOWN)
			sim_node_start(S, i, false);
	heal_bound = 30 * S->ropt.election_max + 4 * S->client_timeout;
	end = S->now + heal_bound;
	while (!S->failed && S->now < end)
	{
		bool		enough = true;

		for (i = 0; i < SIM_CLIENTS; i++)
			enough &= S->clients[i].done_after_heal >= 2;
		step(S, !enough, true);
		if (enough && converged(S))
			break;
	}
	if (!S->failed && S->now < end &&
		(double) (S->now + heal_bound - end) / heal_bound > t->worst_heal)
		t->worst_heal = (double) (S->now + heal_bound - end) / heal_bound;
	if (!S->failed && S->now >= end && verbose)
		dump_state(S);
	if (!S->failed && S->now >= end)
		sim_violation(S, "liveness",
					  "%llu ticks after the faults stopped: %s",
					  (unsigned long long) heal_bound,
					  sim_find_leader(S) < 0 ? "no leader" :
					  "client operations or members still behind");
	if (!S->failed)
		check_final(S);

	ok = !S->failed;
	if (!ok)
	{
		printf("VIOLATION seed=%llu nodes=%d property=%s: %s\n",
			   (unsigned long long) seed, base_n, S->property, S->detail);
		printf("  replay: make sim SEED=%llu%s VERBOSE=1\n",
			   (unsigned long long) seed,
			   base_n == (seed % 2 ? 3 : 5) ? "" : base_n == 3 ? " NODES=3" : " NODES=5");
		fflush(stdout);
	}
	t->ticks += S->now;
	t->elections += S->n_elections;
	t->snapshots += S->n_snapshots;
	t->conf += S->n_conf;
	t->transfers += S->n_transfers;
	t->lease_reads += S->n_lease_reads;
	t->index_reads += S->n_index_reads;
	for (i = 0; i < S->n_ops; i++)
	{
		t->ops_ok += S->ops[i].status == OP_OK;
		t->ops_unknown += S->ops[i].status == OP_UNKNOWN;
	}
	for (i = 0; i < SIM_MAX_SLOTS; i++)
		sim_node_destroy(&S->nodes[i]);
	for (i = 0; i < (int) S->n_net; i++)
		sim_msg_free(&S->net[i]);
	free(S->net);
	free(S->ops);
	sim_check_free(S);
	free(S);
	return ok;
}

/*
 * run_range: seeds first .. first + count - 1 whose position modulo jobs
 * is job.
 */
static void
run_range(uint64_t first, long count, int nodes, int jobs, int job,
		  bool verbose, RunTotals *t)
{
	long		i;

	for (i = job; i < count; i += jobs)
	{
		uint64_t	seed = first + i;
		int			n = nodes ? nodes : (seed % 2 ? 3 : 5);

		if (stop_first && *stop_flag)
			break;

		t->seeds[n == 5]++;
		if (!run_seed(seed, n, verbose, t))
		{
			t->violations++;
			if (t->first_bad_seed < 0 || (long) seed < t->first_bad_seed)
				t->first_bad_seed = (long) seed;
			if (stop_first)
			{
				*stop_flag = 1;
				break;
			}
		}
	}
}

/*
 * main: parse the options, run the seeds (forking one process per job,
 * each reporting its totals through a pipe) and print the summary; exit
 * status 1 if any seed violated a property, 2 on a usage or setup error.
 */
int
main(int argc, char **argv)
{
	SimArgs		a;
	uint64_t	first;
	long		count;
	int			nodes;
	int			jobs;
	bool		verbose;
	RunTotals	total;
	int			fds[2];
	int			j;

	if (sim_parse_args(argc, argv, "sim", &a) != 0)
		return 2;
	first = a.first;
	count = a.count;
	nodes = a.nodes;
	jobs = a.jobs;
	verbose = a.verbose;
	stop_first = a.stop_first;
	scenarios = a.scenarios;
	if (lin_self_test() != 0)
	{
		printf("sim: the linearizability checker fails its self-test\n");
		return 2;
	}
	if (wire_self_test() != 0)
	{
		printf("sim: raft_wire_decode fails its self-test\n");
		return 2;
	}
	if (peers_self_test() != 0)
	{
		printf("sim: the distsys.peers parser fails its self-test\n");
		return 2;
	}
	if (scenarios && count > 1 && sim_scenarios() != 0)
		return 1;
	memset(&total, 0, sizeof(total));
	total.first_bad_seed = -1;
	fflush(stdout);
	stop_flag = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pipe(fds) != 0 || stop_flag == MAP_FAILED)
		return 2;
	*stop_flag = 0;
	for (j = 0; j < jobs; j++)
	{
		pid_t		pid = jobs == 1 ? 0 : fork();

		if (pid == 0)
		{
			RunTotals	t;

			memset(&t, 0, sizeof(t));
			t.first_bad_seed = -1;
			run_range(first, count, nodes, jobs, j, verbose, &t);
			if (jobs == 1)
			{
				total = t;
				break;
			}
			if (write(fds[1], &t, sizeof(t)) != sizeof(t))
				_exit(2);
			_exit(0);
		}
	}
	for (j = 0; jobs > 1 && j < jobs; j++)
	{
		RunTotals	t;

		if (read(fds[0], &t, sizeof(t)) != sizeof(t))
			return 2;
		total.seeds[0] += t.seeds[0];
		total.seeds[1] += t.seeds[1];
		total.violations += t.violations;
		total.ticks += t.ticks;
		total.elections += t.elections;
		total.ops_ok += t.ops_ok;
		total.ops_unknown += t.ops_unknown;
		total.snapshots += t.snapshots;
		total.conf += t.conf;
		total.transfers += t.transfers;
		total.lease_reads += t.lease_reads;
		total.index_reads += t.index_reads;
		if (t.worst_heal > total.worst_heal)
			total.worst_heal = t.worst_heal;
		if (t.first_bad_seed >= 0 &&
			(total.first_bad_seed < 0 || t.first_bad_seed < total.first_bad_seed))
			total.first_bad_seed = t.first_bad_seed;
	}
	while (jobs > 1 && wait(NULL) > 0)
		;
	printf("sim: %ld ticks, %ld leaders elected, %ld client operations "
		   "acknowledged, %ld of unknown outcome\n",
		   total.ticks, total.elections, total.ops_ok, total.ops_unknown);
	printf("sim: %ld snapshots installed, %ld membership changes committed, "
		   "%ld leadership transfers, %ld ReadIndex and %ld lease reads\n",
		   total.snapshots, total.conf, total.transfers, total.index_reads,
		   total.lease_reads);
	printf("sim: slowest recovery after the faults stopped took %.0f%% of "
		   "the liveness bound\n", 100 * total.worst_heal);
	if (total.first_bad_seed >= 0)
		printf("sim: first failing seed %ld\n", total.first_bad_seed);
	printf("sim: %ld seeds (%ld with 3 nodes, %ld with 5), %ld violations\n",
		   total.seeds[0] + total.seeds[1], total.seeds[0], total.seeds[1],
		   total.violations);
	return total.violations > 0 ? 1 : 0;
}
