/*-------------------------------------------------------------------------
 *
 * scenarios.c
 *	  Directed scenarios for the Raft core's liveness features, which the
 *	  random schedules exercise but cannot assert: PreVote, CheckQuorum,
 *	  leadership transfer, learners and promotion, InstallSnapshot, lease
 *	  and ReadIndex reads.  Run by 'sim' before its seeds.
 *
 * Each scenario drives a small cluster by hand (messages arrive the next
 * tick, nothing is lost unless a link is cut, I/O is stubbed) and checks
 * one expected outcome; the PreVote one also checks that, without
 * PreVote, the same schedule does disturb the leader, so the scenario
 * would notice PreVote being broken.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SC_MAX	5
#define EMIN	10
#define EMAX	20

typedef struct Sc
{
	int			n;
	RaftNode   *r[SC_MAX];
	bool		cut[SC_MAX][SC_MAX];
	RaftMessage *q;
	size_t		nq;
	size_t		capq;
	int			snapshots[SC_MAX];	/* InstallSnapshot Readies seen */
	int			reads[SC_MAX];		/* read states seen */
} Sc;

/*
 * sc_start: node id (1-based) with the given options and the bootstrap
 * voters 1..voters.
 */
static void
sc_start(Sc *s, int id, int voters, bool prevote, int lease)
{
	RaftOptions o;
	int			i;

	raft_default_options(&o);
	o.id = id;
	o.seed = 77 + id;
	o.election_min = EMIN;
	o.election_max = EMAX;
	o.heartbeat_ticks = 2;
	o.pre_vote = prevote;
	o.check_quorum = true;
	o.lease_ticks = lease;
	o.alloc = sim_allocator();
	o.bootstrap.n_voters = voters;
	for (i = 0; i < voters; i++)
		o.bootstrap.voters[i] = i + 1;
	s->r[id - 1] = raft_new(&o, NULL);
	if (id > s->n)
		s->n = id;
}

/*
 * sc_init: n fresh voters.
 */
static void
sc_init(Sc *s, int n, bool prevote, int lease)
{
	int			i;

	memset(s, 0, sizeof(*s));
	for (i = 1; i <= n; i++)
		sc_start(s, i, n, prevote, lease);
}

/*
 * sc_free: release the cluster and the messages in flight.
 */
static void
sc_free(Sc *s)
{
	size_t		k;
	size_t		j;
	int			i;

	for (k = 0; k < s->nq; k++)
	{
		for (j = 0; j < s->q[k].n_entries; j++)
			free(s->q[k].entries[j].data);
		free(s->q[k].entries);
		if (s->q[k].snapshot)
			free(s->q[k].snapshot->data);
		free(s->q[k].snapshot);
	}
	free(s->q);
	for (i = 0; i < s->n; i++)
		raft_free(s->r[i]);
}

/*
 * sc_queue: copy m for delivery at the next tick.
 */
static void
sc_queue(Sc *s, const RaftMessage *m)
{
	RaftMessage *c;
	size_t		j;

	if (s->nq == s->capq)
	{
		s->capq = s->capq ? 2 * s->capq : 64;
		s->q = sim_xrealloc(s->q, s->capq * sizeof(RaftMessage));
	}
	c = &s->q[s->nq++];
	*c = *m;
	if (m->n_entries > 0)
	{
		c->entries = sim_xmalloc(m->n_entries * sizeof(RaftEntry));
		for (j = 0; j < m->n_entries; j++)
		{
			c->entries[j] = m->entries[j];
			c->entries[j].data = sim_xmalloc(m->entries[j].len);
			if (m->entries[j].len)
				memcpy(c->entries[j].data, m->entries[j].data, m->entries[j].len);
		}
	}
	if (m->snapshot != NULL)
	{
		c->snapshot = sim_xmalloc(sizeof(RaftSnapshot));
		*c->snapshot = *m->snapshot;
		c->snapshot->data = sim_xmalloc(m->snapshot->len);
		memcpy(c->snapshot->data, m->snapshot->data, m->snapshot->len);
	}
}

/*
 * sc_ready: the Ready loop with I/O stubbed.
 */
static void
sc_ready(Sc *s, int i)
{
	RaftReady	rd;
	size_t		k;

	while (raft_has_ready(s->r[i]))
	{
		raft_ready(s->r[i], &rd);
		for (k = 0; k < rd.n_msgs; k++)
			sc_queue(s, &rd.msgs[k]);
		s->snapshots[i] += rd.snapshot != NULL;
		s->reads[i] += (int) rd.n_reads;
		raft_advance(s->r[i], &rd);
	}
}

/*
 * sc_tick: ticks, then the messages queued before, then Readies.
 */
static void
sc_tick(Sc *s, int ticks)
{
	while (ticks-- > 0)
	{
		size_t		nq = s->nq;
		RaftMessage *q = s->q;
		size_t		k;
		size_t		j;
		int			i;

		s->q = NULL;
		s->nq = s->capq = 0;
		for (i = 0; i < s->n; i++)
			raft_tick(s->r[i]);
		for (k = 0; k < nq; k++)
		{
			int			a = (int) q[k].from - 1;
			int			b = (int) q[k].to - 1;

			if (b < s->n && !s->cut[a][b])
				raft_step(s->r[b], &q[k]);
			for (j = 0; j < q[k].n_entries; j++)
				free(q[k].entries[j].data);
			free(q[k].entries);
			if (q[k].snapshot)
				free(q[k].snapshot->data);
			free(q[k].snapshot);
		}
		free(q);
		for (i = 0; i < s->n; i++)
			sc_ready(s, i);
	}
}

/*
 * sc_isolate: cut (or restore) every link to and from node i (0-based).
 */
static void
sc_isolate(Sc *s, int i, bool cut)
{
	int			j;

	for (j = 0; j < SC_MAX; j++)
		if (j != i)
			s->cut[i][j] = s->cut[j][i] = cut;
}

/*
 * sc_leader: index of the leader with the highest term, or -1.
 */
static int
sc_leader(Sc *s)
{
	int			best = -1;
	int			i;

	for (i = 0; i < s->n; i++)
		if (raft_role(s->r[i]) == RAFT_LEADER &&
			(best < 0 || raft_term(s->r[i]) > raft_term(s->r[best])))
			best = i;
	return best;
}

/*
 * sc_elect: tick until there is a leader and its no-op has committed.
 */
static int
sc_elect(Sc *s)
{
	int			l = -1;
	int			t;

	for (t = 0; t < 50 * EMAX; t++)
	{
		sc_tick(s, 1);
		l = sc_leader(s);
		if (l >= 0 && raft_commit_index(s->r[l]) == raft_last_index(s->r[l]))
			break;
	}
	sc_tick(s, 2 * EMAX);
	return sc_leader(s);
}

/*
 * sc_propose: n entries at the leader, then ticks until they commit.
 */
static void
sc_propose(Sc *s, int l, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		raft_propose(s->r[l], "x", 1, NULL);
	sc_tick(s, 10);
}

/*
 * prevote_case: a follower cut off for many election timeouts rejoins.
 * Returns whether the leader kept its term (with PreVote it must; without
 * it, the rejoining node's inflated term must depose the leader).
 */
static bool
prevote_case(bool prevote)
{
	Sc			s;
	int			l;
	int			f;
	uint64_t	term;
	bool		kept;

	sc_init(&s, 3, prevote, 0);
	l = sc_elect(&s);
	term = raft_term(s.r[l]);
	f = (l + 1) % 3;
	sc_isolate(&s, f, true);
	sc_tick(&s, 20 * EMAX);
	sc_isolate(&s, f, false);
	sc_tick(&s, 5 * EMAX);
	kept = sc_leader(&s) == l && raft_term(s.r[l]) == term;
	sc_free(&s);
	return kept;
}

/*
 * sc_prevote: PreVote keeps a rejoining node from disturbing the leader.
 */
static bool
sc_prevote(void)
{
	return prevote_case(true) && !prevote_case(false);
}

/*
 * sc_check_quorum: an isolated leader steps down within two election
 * timeouts, and the others elect a new one.
 */
static bool
sc_check_quorum(void)
{
	Sc			s;
	int			l;
	bool		ok;
	int			other;

	sc_init(&s, 3, true, 0);
	l = sc_elect(&s);
	sc_isolate(&s, l, true);
	sc_tick(&s, 2 * EMIN + 1);
	ok = raft_role(s.r[l]) != RAFT_LEADER;
	sc_tick(&s, 10 * EMAX);
	other = sc_leader(&s);
	ok = ok && other >= 0 && other != l;
	sc_free(&s);
	return ok;
}

/*
 * sc_transfer: leadership moves to the chosen voter within an election
 * timeout, and proposals are refused meanwhile.
 */
static bool
sc_transfer(void)
{
	Sc			s;
	int			l;
	int			target;
	bool		ok;

	sc_init(&s, 5, true, 0);
	l = sc_elect(&s);
	target = (l + 2) % 5;
	ok = raft_transfer_leadership(s.r[l], target + 1) == RAFT_OK;
	ok = ok && raft_propose(s.r[l], "x", 1, NULL) == RAFT_ERR_BUSY;
	sc_tick(&s, EMIN);
	ok = ok && sc_leader(&s) == target;
	sc_free(&s);
	return ok;
}

/*
 * sc_learner: a learner is added, is refused promotion while cut off and
 * behind, catches up once reachable, is promoted and then counts as a
 * voter.
 */
static bool
sc_learner(void)
{
	Sc			s;
	int			l;
	bool		ok;
	uint64_t	commit;

	sc_init(&s, 3, true, 0);
	l = sc_elect(&s);
	sc_propose(&s, l, 50);
	sc_start(&s, 4, 3, true, 0);
	sc_isolate(&s, 3, true);
	ok = raft_propose_conf_change(s.r[l], RAFT_CONF_ADD_LEARNER, 4, NULL) == RAFT_OK;
	sc_tick(&s, 10);
	ok = ok && !raft_conf_is_voter(raft_conf(s.r[3]), 4) &&
		raft_propose_conf_change(s.r[l], RAFT_CONF_PROMOTE, 4, NULL) ==
		RAFT_ERR_NOT_CAUGHT_UP;
	sc_isolate(&s, 3, false);
	sc_tick(&s, 5 * EMAX);
	commit = raft_commit_index(s.r[l]);
	ok = ok && raft_applied_index(s.r[3]) == commit;
	ok = ok && raft_propose_conf_change(s.r[l], RAFT_CONF_PROMOTE, 4, NULL) == RAFT_OK;
	sc_tick(&s, 10);
	ok = ok && raft_conf(s.r[l])->n_voters == 4 &&
		raft_conf_is_voter(raft_conf(s.r[3]), 4);
	sc_free(&s);
	return ok;
}

/*
 * sc_snapshot: a follower that missed entries the leader has compacted
 * catches up through InstallSnapshot.
 */
static bool
sc_snapshot(void)
{
	Sc			s;
	int			l;
	int			f;
	bool		ok;

	sc_init(&s, 3, true, 0);
	l = sc_elect(&s);
	f = (l + 1) % 3;
	sc_isolate(&s, f, true);
	sc_propose(&s, l, 200);
	ok = raft_compact(s.r[l], raft_applied_index(s.r[l]), "snap", 4) == RAFT_OK;
	sc_isolate(&s, f, false);
	sc_tick(&s, 5 * EMAX);
	ok = ok && s.snapshots[f] == 1 &&
		raft_applied_index(s.r[f]) == raft_commit_index(s.r[l]) &&
		raft_first_index(s.r[f]) > 200;
	sc_free(&s);
	return ok;
}

/*
 * sc_reads: ReadIndex answers after a heartbeat round and not on a
 * leader cut off from the others; a lease read answers at once while the
 * lease holds and is refused once it has lapsed.
 */
static bool
sc_reads(void)
{
	Sc			s;
	int			l;
	bool		ok;
	int			before;

	sc_init(&s, 3, true, EMIN - 2);
	l = sc_elect(&s);
	before = s.reads[l];
	ok = raft_read_index(s.r[l], 1) == RAFT_OK;
	sc_ready(&s, l);
	ok = ok && s.reads[l] == before;	/* not before the round */
	sc_tick(&s, 3);
	ok = ok && s.reads[l] == before + 1;
	ok = ok && raft_read_lease(s.r[l], 2) == RAFT_OK;
	sc_isolate(&s, l, true);
	before = s.reads[l];
	ok = ok && raft_read_index(s.r[l], 3) == RAFT_OK;
	sc_tick(&s, EMIN - 1);
	ok = ok && s.reads[l] == before + 1;	/* only the lease read */
	ok = ok && raft_read_lease(s.r[l], 4) != RAFT_OK;
	sc_free(&s);
	return ok;
}

/*
 * sim_scenarios: run every scenario; prints one line per failure and a
 * summary.  Returns the number of failures.
 */
int
sim_scenarios(void)
{
	static const struct
	{
		const char *name;
		bool		(*fn) (void);
	}			all[] = {
		{"prevote", sc_prevote},
		{"check-quorum", sc_check_quorum},
		{"transfer", sc_transfer},
		{"learner", sc_learner},
		{"snapshot", sc_snapshot},
		{"reads", sc_reads},
	};
	int			failed = 0;
	size_t		i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!all[i].fn())
		{
			printf("sim: scenario %s FAILED\n", all[i].name);
			failed++;
		}
	printf("sim: scenarios: %d of %d passed\n",
		   (int) (sizeof(all) / sizeof(all[0])) - failed,
		   (int) (sizeof(all) / sizeof(all[0])));
	return failed;
}
