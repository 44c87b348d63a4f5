/*-------------------------------------------------------------------------
 *
 * raftbench.c
 *	  Figures for the Raft core (bench/run-raft.sh): election time after a
 *	  leader is lost, and how many entries the core commits per CPU second
 *	  with all I/O stubbed out.
 *
 *	  raftbench election MIN MAX TRIALS [prevote]
 *	  raftbench throughput ENTRIES BATCH SIZE
 *
 * election: the Raft paper's experiment (section 9.3, figure 16): five
 * servers, one-way network delay uniform in 5..10 ticks (a broadcast time
 * of about 15 ticks), heartbeats every MIN/2 ticks, the leader stopped at a
 * random moment within its heartbeat interval; the time is from the stop
 * to the first node becoming leader of a newer term.  1 tick = 1 ms.
 * Without "prevote", PreVote and CheckQuorum are off, as in the paper.
 *
 * throughput: three nodes in one process, messages handed over in memory
 * at once, nothing persisted; the leader proposes BATCH entries of SIZE
 * bytes per round.  Counts entries committed (and applied on the leader)
 * per second of process CPU time, all three nodes included.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define BN_MAX		5
#define CAP_TICKS	200000		/* give up on a trial after this long */

typedef struct BenchMsg
{
	uint64_t	at;
	RaftMessage m;
} BenchMsg;

typedef struct Bench
{
	int			n;
	RaftNode   *nodes[BN_MAX];
	bool		stopped[BN_MAX];
	BenchMsg   *q;
	size_t		nq;
	size_t		capq;
	uint64_t	now;
	uint64_t	rng;
	int			dmin;
	int			dmax;
	int			count_node;		/* whose applied entries are counted */
	uint64_t	applied;
} Bench;

/*
 * bench_send: queue a copy of m (entries copied; no snapshots happen).
 */
static void
bench_send(Bench *b, const RaftMessage *m)
{
	BenchMsg   *bm;
	size_t		i;

	if (b->nq == b->capq)
	{
		b->capq = b->capq ? 2 * b->capq : 1024;
		b->q = sim_xrealloc(b->q, b->capq * sizeof(BenchMsg));
	}
	bm = &b->q[b->nq++];
	bm->at = b->now + b->dmin +
		(b->dmax > b->dmin ? sim_rand_below(&b->rng, b->dmax - b->dmin + 1) : 0);
	bm->m = *m;
	bm->m.snapshot = NULL;
	if (m->n_entries > 0)
	{
		bm->m.entries = sim_xmalloc(m->n_entries * sizeof(RaftEntry));
		for (i = 0; i < m->n_entries; i++)
		{
			bm->m.entries[i] = m->entries[i];
			bm->m.entries[i].data = sim_xmalloc(m->entries[i].len);
			if (m->entries[i].len > 0)
				memcpy(bm->m.entries[i].data, m->entries[i].data, m->entries[i].len);
		}
	}
}

/*
 * bench_ready: the Ready loop with the I/O stubbed: nothing is written,
 * messages are queued, committed entries are counted.
 */
static void
bench_ready(Bench *b, int i)
{
	RaftReady	rd;
	size_t		k;

	while (raft_has_ready(b->nodes[i]))
	{
		raft_ready(b->nodes[i], &rd);
		for (k = 0; k < rd.n_msgs; k++)
			bench_send(b, &rd.msgs[k]);
		if (i == b->count_node)
			b->applied += rd.n_committed;
		raft_advance(b->nodes[i], &rd);
	}
}

/*
 * bench_deliver: deliver the due messages; those to stopped nodes are lost.
 */
static void
bench_deliver(Bench *b)
{
	size_t		keep = 0;
	size_t		k;
	size_t		j;

	for (k = 0; k < b->nq; k++)
	{
		BenchMsg   *bm = &b->q[k];
		int			to = (int) bm->m.to - 1;

		if (bm->at > b->now)
		{
			b->q[keep++] = *bm;
			continue;
		}
		if (!b->stopped[to])
			raft_step(b->nodes[to], &bm->m);
		for (j = 0; j < bm->m.n_entries; j++)
			free(bm->m.entries[j].data);
		free(bm->m.entries);
	}
	b->nq = keep;
}

/*
 * bench_init: n voters with the given timeouts.
 */
static void
bench_init(Bench *b, int n, int emin, int emax, int hb, bool prevote)
{
	RaftOptions opt;
	int			i;

	memset(b, 0, sizeof(*b));
	b->n = n;
	b->rng = 42;
	raft_default_options(&opt);
	opt.election_min = emin;
	opt.election_max = emax;
	opt.heartbeat_ticks = hb;
	opt.pre_vote = prevote;
	opt.check_quorum = prevote;
	opt.max_entries_per_msg = 4096;
	opt.max_inflight = 64;
	opt.alloc = sim_allocator();
	opt.bootstrap.n_voters = n;
	for (i = 0; i < n; i++)
		opt.bootstrap.voters[i] = i + 1;
	for (i = 0; i < n; i++)
	{
		opt.id = i + 1;
		opt.seed = 1000 + i;
		b->nodes[i] = raft_new(&opt, NULL);
	}
}

/*
 * bench_free: release the nodes and the messages still queued.
 */
static void
bench_free(Bench *b)
{
	size_t		k;
	size_t		j;
	int			i;

	for (k = 0; k < b->nq; k++)
	{
		for (j = 0; j < b->q[k].m.n_entries; j++)
			free(b->q[k].m.entries[j].data);
		free(b->q[k].m.entries);
	}
	free(b->q);
	for (i = 0; i < b->n; i++)
		raft_free(b->nodes[i]);
}

/*
 * bench_tick: one tick for every running node, then the network and the
 * Ready loops.
 */
static void
bench_tick(Bench *b)
{
	int			i;

	b->now++;
	for (i = 0; i < b->n; i++)
		if (!b->stopped[i])
			raft_tick(b->nodes[i]);
	bench_deliver(b);
	for (i = 0; i < b->n; i++)
		if (!b->stopped[i])
			bench_ready(b, i);
}

/*
 * bench_leader: the running leader with the highest term, if that term is
 * above above_term; else -1.
 */
static int
bench_leader(Bench *b, uint64_t above_term)
{
	int			best = -1;
	int			i;

	for (i = 0; i < b->n; i++)
		if (!b->stopped[i] && raft_role(b->nodes[i]) == RAFT_LEADER &&
			raft_term(b->nodes[i]) > above_term &&
			(best < 0 || raft_term(b->nodes[i]) > raft_term(b->nodes[best])))
			best = i;
	return best;
}

/*
 * cmp_u64: qsort order of tick counts.
 */
static int
cmp_u64(const void *x, const void *y)
{
	uint64_t	a = *(const uint64_t *) x;
	uint64_t	c = *(const uint64_t *) y;

	return a < c ? -1 : a > c;
}

/*
 * run_election: TRIALS leader losses; prints median, p99 and max of the
 * time to the next leader.
 */
static int
run_election(int emin, int emax, int trials, bool prevote)
{
	Bench		b;
	uint64_t   *t = sim_xmalloc(trials * sizeof(uint64_t));
	int			gave_up = 0;
	int			k;
	int			i;

	bench_init(&b, 5, emin, emax, emin / 2, prevote);
	b.dmin = 5;
	b.dmax = 10;
	for (k = 0; k < trials; k++)
	{
		int			l;
		uint64_t	term;
		uint64_t	stop_at;
		uint64_t	start;

		/* a stable leader, followed by everyone, then a random moment */
		while ((l = bench_leader(&b, 0)) < 0)
			bench_tick(&b);
		for (i = 0; i < 2 * emax; i++)
			bench_tick(&b);
		l = bench_leader(&b, 0);
		if (l < 0)
		{
			k--;
			continue;
		}
		term = raft_term(b.nodes[l]);
		stop_at = b.now + sim_rand_below(&b.rng, emin / 2);
		while (b.now < stop_at)
			bench_tick(&b);
		l = bench_leader(&b, 0);
		if (l < 0 || raft_term(b.nodes[l]) != term)
		{
			k--;
			continue;
		}
		b.stopped[l] = true;
		start = b.now;
		while (bench_leader(&b, term) < 0 && b.now - start < CAP_TICKS)
			bench_tick(&b);
		t[k] = b.now - start;
		gave_up += t[k] >= CAP_TICKS;
		b.stopped[l] = false;	/* it comes back and follows */
	}
	qsort(t, trials, sizeof(uint64_t), cmp_u64);
	printf("election %d-%d ticks%s: %d trials, median %llu, p99 %llu, "
		   "max %llu%s\n", emin, emax, prevote ? " (PreVote, CheckQuorum)" : "",
		   trials, (unsigned long long) t[trials / 2],
		   (unsigned long long) t[(trials * 99) / 100],
		   (unsigned long long) t[trials - 1],
		   gave_up ? " (some trials hit the cap)" : "");
	bench_free(&b);
	free(t);
	return 0;
}

/*
 * run_throughput: commit ENTRIES entries of SIZE bytes in rounds of BATCH
 * proposals on three nodes; prints entries per CPU second.
 */
static int
run_throughput(long entries, int batch, int size)
{
	Bench		b;
	uint8_t    *payload = calloc(1, size);
	struct timespec t0;
	struct timespec t1;
	double		cpu;
	int			l;
	int			i;
	long		proposed = 0;

	bench_init(&b, 3, 10, 20, 2, true);
	b.dmin = b.dmax = 0;
	while ((l = bench_leader(&b, 0)) < 0)
		bench_tick(&b);
	for (i = 0; i < 50; i++)
		bench_tick(&b);
	l = bench_leader(&b, 0);
	b.count_node = l;
	{
		int			j;

		for (j = 0; j < 3; j++)
			bench_ready(&b, j);
	}
	b.applied = 0;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	while ((long) b.applied < entries)
	{
		int			j;

		for (i = 0; i < batch && proposed < entries; i++, proposed++)
			raft_propose(b.nodes[l], payload, size, NULL);
		/* run to quiescence: the round's entries commit and apply */
		do
		{
			for (j = 0; j < 3; j++)
				bench_ready(&b, j);
			bench_deliver(&b);
		} while (b.nq > 0);
		if (raft_applied_index(b.nodes[l]) > raft_first_index(b.nodes[l]) + 100000)
			for (j = 0; j < 3; j++)
				raft_compact(b.nodes[j], raft_applied_index(b.nodes[j]), "s", 1);
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	cpu = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("throughput: 3 nodes, %ld entries of %d bytes, %d per round: "
		   "%.2f CPU seconds, %.0f entries committed per CPU second\n",
		   entries, size, batch, cpu, entries / cpu);
	bench_free(&b);
	free(payload);
	return 0;
}

/*
 * main: dispatch to one of the two experiments (see the file header).
 */
int
main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[1], "election") == 0)
		return run_election(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
							argc >= 6 && strcmp(argv[5], "prevote") == 0);
	if (argc == 5 && strcmp(argv[1], "throughput") == 0)
		return run_throughput(atol(argv[2]), atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: raftbench election MIN MAX TRIALS [prevote]\n"
			"       raftbench throughput ENTRIES BATCH SIZE\n");
	return 2;
}
