/*-------------------------------------------------------------------------
 *
 * psim_scenario.c
 *	  The seed document's worked example (section five) as a directed
 *	  scenario: proposers A [n=2, v=8] and B [n=4, v=5], acceptors X, Y, Z.
 *
 * Nodes X=1, Y=2, Z=3 are the acceptors, A=4 and B=5 proposers and
 * learners only (PaxosOptions.n_acceptors = 3).  A's rounds are made to
 * start at 2 and B's at 4 by restoring a used round of 1 and 3, so the
 * ballots are (2, A) and (4, B): the seed's n=2 and n=4.
 *
 * The seed's text lets an acceptor remember the PREPARE's value ("sets the
 * current proposal to [n=2, v=8]") and report it in later promises.  That
 * is not Paxos: a promise reports only what was ACCEPTED.  Followed
 * literally with a correct acceptor, the seed's order makes B find nothing
 * accepted and choose its own 5 (the second scenario asserts exactly
 * that).  The seed's outcome - A's accept refused, B adopting 8 - happens
 * in real Paxos when A's accept reaches X before B's prepare does, and the
 * first scenario delivers the messages in the seed's order with only that
 * one message moved forward.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psim.h"

enum
{
	X = 1, Y, Z, A, B
};

typedef struct Scn
{
	PaxosNode  *node[B + 1];
	PsMsg		q[128];			/* values decoded: 8 is 8 */
	int			nq;
	int64_t		res[B + 1];		/* each proposer's decree result */
	bool		has_res[B + 1];
	int			failures;
	const char *name;
} Scn;

#define EXPECT(sc, cond, what) \
	ps_expect(&(sc)->failures, (sc)->name, cond, what, __LINE__)

/*
 * ps_expect: a directed scenario's check: if cond is false, say what was
 * expected where, and count a failure.
 */
void
ps_expect(int *failures, const char *scenario, bool cond, const char *what,
		  int line)
{
	if (cond)
		return;
	printf("paxos-sim: scenario %s, line %d: expected %s\n",
		   scenario, line, what);
	(*failures)++;
}

/*
 * pump: node id's Ready: its messages onto the scenario's queue (nothing
 * is lost here: the point is the order), its results recorded.
 */
static void
pump(Scn *sc, int id)
{
	PaxosReady	rd;
	size_t		k;

	while (paxos_has_ready(sc->node[id]))
	{
		paxos_ready(sc->node[id], &rd);
		for (k = 0; k < rd.n_msgs && sc->nq < 128; k++)
			EXPECT(sc, ps_msg_pack(&rd.msgs[k], &sc->q[sc->nq++]),
				   "a message with the name and value bytes given");
		for (k = 0; k < rd.n_results; k++)
			sc->has_res[id] = ps_decode(rd.results[k].value, &sc->res[id]);
		paxos_advance(sc->node[id]);
	}
}

/*
 * queued: the queued message of type from -> to, or NULL.
 */
static PsMsg *
queued(Scn *sc, PaxosMsgType type, int from, int to)
{
	int			i;

	for (i = 0; i < sc->nq; i++)
		if (sc->q[i].m.type == type && sc->q[i].m.from == (uint64_t) from &&
			sc->q[i].m.to == (uint64_t) to)
			return &sc->q[i];
	return NULL;
}

/*
 * deliver: take that message off the queue and step its receiver; false
 * if no such message was queued.
 */
static bool
deliver(Scn *sc, PaxosMsgType type, int from, int to)
{
	PsMsg	   *m = queued(sc, type, from, to);
	PaxosMessage copy;
	unsigned char buf[PS_VALUE_MAX];

	if (m == NULL)
		return false;
	ps_msg_unpack(m, &copy, buf);
	*m = sc->q[--sc->nq];
	paxos_step(sc->node[to], &copy);
	pump(sc, to);
	return true;
}

/*
 * setup: X, Y, Z, A, B; A and B propose 8 and 5 for decree 1.
 */
static void
setup(Scn *sc, const char *name)
{
	PaxosOptions o;
	PaxosRequest r;
	unsigned char buf[PS_VALUE_MAX];
	int			id;

	memset(sc, 0, sizeof(*sc));
	sc->name = name;
	memset(&o, 0, sizeof(o));
	o.n_nodes = 5;
	o.n_acceptors = 3;
	for (id = X; id <= B; id++)
		o.nodes[id - 1] = id;
	o.timeout = 1000;			/* no timer fires: the order is ours */
	o.backoff = 1;
	o.alloc = ps_allocator();
	for (id = X; id <= B; id++)
	{
		o.id = id;
		o.seed = id;
		sc->node[id] = paxos_new(&o);
	}
	paxos_restore(sc->node[A], 1, NULL, 0);
	paxos_restore(sc->node[B], 3, NULL, 0);
	memset(&r, 0, sizeof(r));
	r.kind = PAXOS_OP_DECREE;
	r.instance = ps_inst_name(0);
	r.value = ps_encode(8, buf);
	paxos_propose(sc->node[A], &r);
	pump(sc, A);
	r.value = ps_encode(5, buf);
	paxos_propose(sc->node[B], &r);
	pump(sc, B);
}

/*
 * prepare_phase: the seed's prepare order: X and Y get A's [n=2] first
 * (no previous proposal), Z gets B's [n=4] first and then drops A's
 * (answers NACK, promised 4).
 */
static void
prepare_phase(Scn *sc)
{
	PsMsg	   *m;

	EXPECT(sc, deliver(sc, PAXOS_MSG_PREPARE, A, X), "A's prepare to X");
	m = queued(sc, PAXOS_MSG_PROMISE, X, A);
	EXPECT(sc, m && m->m.ballot.round == 2 && m->m.other.round == 0,
		   "X promises n=2 with no previous proposal");
	EXPECT(sc, deliver(sc, PAXOS_MSG_PREPARE, A, Y), "A's prepare to Y");
	EXPECT(sc, queued(sc, PAXOS_MSG_PROMISE, Y, A) != NULL, "Y promises n=2");
	EXPECT(sc, deliver(sc, PAXOS_MSG_PREPARE, B, Z), "B's prepare to Z");
	EXPECT(sc, queued(sc, PAXOS_MSG_PROMISE, Z, B) != NULL, "Z promises n=4");
	EXPECT(sc, deliver(sc, PAXOS_MSG_PREPARE, A, Z), "A's prepare to Z");
	m = queued(sc, PAXOS_MSG_NACK, Z, A);
	EXPECT(sc, m && m->m.other.round == 4, "Z refuses n=2: it promised 4");
	/* A has two promises, a majority of three: it sends [n=2, v=8] */
	EXPECT(sc, deliver(sc, PAXOS_MSG_PROMISE, X, A), "X's promise to A");
	EXPECT(sc, queued(sc, PAXOS_MSG_ACCEPT, A, X) == NULL,
		   "no accept from A after one promise");
	EXPECT(sc, deliver(sc, PAXOS_MSG_PROMISE, Y, A), "Y's promise to A");
	m = queued(sc, PAXOS_MSG_ACCEPT, A, X);
	EXPECT(sc, m && m->m.ballot.round == 2 && m->value == 8,
		   "A sends accept [n=2, v=8]");
}

/*
 * b_accepts: B's majority of promises (Z, X) and its accept phase; the
 * value B proposes and every learner's result must be want.
 */
static void
b_accepts(Scn *sc, int64_t want)
{
	PsMsg	   *m;
	int			to;

	EXPECT(sc, deliver(sc, PAXOS_MSG_PROMISE, Z, B), "Z's promise to B");
	EXPECT(sc, deliver(sc, PAXOS_MSG_PROMISE, X, B), "X's promise to B");
	m = queued(sc, PAXOS_MSG_ACCEPT, B, X);
	EXPECT(sc, m && m->m.ballot.round == 4 && m->value == want,
		   want == 8 ? "B adopts 8: accept [n=4, v=8]" : "B sends accept [n=4, v=5]");
	for (to = X; to <= Z; to++)
		EXPECT(sc, deliver(sc, PAXOS_MSG_ACCEPT, B, to), "B's accept delivered");
	/* every acceptor accepted n=4; the learners hear it from each */
	while (sc->nq > 0)
		deliver(sc, sc->q[0].m.type, (int) sc->q[0].m.from, (int) sc->q[0].m.to);
	EXPECT(sc, sc->has_res[B] && sc->res[B] == want,
		   "B's proposal decides the value chosen");
	EXPECT(sc, sc->has_res[A] && sc->res[A] == want,
		   "A learns the value chosen, not its own (unless the same)");
}

static int
finish(Scn *sc)
{
	int			id;

	for (id = X; id <= B; id++)
		paxos_free(sc->node[id]);
	if (sc->failures == 0)
		printf("paxos-sim: scenario %s: ok\n", sc->name);
	return sc->failures;
}

/*
 * seed_example: A's accept reaches X before B's prepare does; Y and Z
 * refuse it; B adopts 8 from X's promise and 8 is chosen.
 */
static int
seed_example(void)
{
	Scn			sc;
	PsMsg	   *m;

	setup(&sc, "seed-example");
	prepare_phase(&sc);
	EXPECT(&sc, deliver(&sc, PAXOS_MSG_ACCEPT, A, X), "A's accept to X");
	EXPECT(&sc, queued(&sc, PAXOS_MSG_ACCEPTED, X, A) != NULL,
		   "X accepts [n=2, v=8]: it promised only 2");
	EXPECT(&sc, deliver(&sc, PAXOS_MSG_PREPARE, B, X), "B's prepare to X");
	m = queued(&sc, PAXOS_MSG_PROMISE, X, B);
	EXPECT(&sc, m && m->m.other.round == 2 && m->value == 8,
		   "X promises n=4 and reports its accepted [n=2, v=8]");
	EXPECT(&sc, deliver(&sc, PAXOS_MSG_PREPARE, B, Y), "B's prepare to Y");
	EXPECT(&sc, deliver(&sc, PAXOS_MSG_ACCEPT, A, Y), "A's accept to Y");
	EXPECT(&sc, queued(&sc, PAXOS_MSG_NACK, Y, A) != NULL,
		   "Y refuses [n=2, v=8]: it promised 4");
	EXPECT(&sc, deliver(&sc, PAXOS_MSG_ACCEPT, A, Z), "A's accept to Z");
	EXPECT(&sc, queued(&sc, PAXOS_MSG_NACK, Z, A) != NULL,
		   "Z refuses [n=2, v=8]: it promised 4");
	b_accepts(&sc, 8);
	return finish(&sc);
}

/*
 * seed_literal: the seed's order exactly (B's prepares before any accept
 * of A's): every acceptor refuses A's accept and, nothing having been
 * accepted, B proposes and gets its own 5.
 */
static int
seed_literal(void)
{
	Scn			sc;
	PsMsg	   *m;
	int			to;

	setup(&sc, "seed-literal-order");
	prepare_phase(&sc);
	EXPECT(&sc, deliver(&sc, PAXOS_MSG_PREPARE, B, X), "B's prepare to X");
	m = queued(&sc, PAXOS_MSG_PROMISE, X, B);
	EXPECT(&sc, m && m->m.other.round == 0,
		   "X promises n=4 with nothing accepted (a promise has no value)");
	EXPECT(&sc, deliver(&sc, PAXOS_MSG_PREPARE, B, Y), "B's prepare to Y");
	for (to = X; to <= Z; to++)
	{
		EXPECT(&sc, deliver(&sc, PAXOS_MSG_ACCEPT, A, to), "A's accept");
		EXPECT(&sc, queued(&sc, PAXOS_MSG_NACK, to, A) != NULL,
			   "every acceptor refuses [n=2, v=8]");
	}
	b_accepts(&sc, 5);
	return finish(&sc);
}

/*
 * ps_seed_scenario: both scenarios; the number of failed expectations.
 */
int
ps_seed_scenario(void)
{
	return seed_example() + seed_literal();
}
