/*-------------------------------------------------------------------------
 *
 * paxos_acceptor.c
 *	  The acceptor and learner roles of the Paxos core.
 *
 * Acceptor (the seed's rules, corrected): a prepare at or above the
 * promise raises the promise and is answered with what the acceptor has
 * ACCEPTED (a promise carries no value of its own: the seed's text has the
 * acceptor remember the prepare's value, which is not Paxos); an accept
 * at or above the promise is accepted, anything below is refused with a
 * NACK naming the promise, so the proposer can outbid it.  Every change is
 * marked dirty and reaches the caller's disk in the same Ready that
 * carries the answer, before the answer is sent.
 *
 * Learner: counts ACCEPTED messages per (instance, ballot), one bit per
 * acceptor, and learns when a majority accepted the SAME ballot.  Counting
 * acceptances of different ballots together would "learn" a value no
 * majority ever held.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "paxos_int.h"

/*
 * reply: an answer of type t about m's ballot and in to m's sender.
 */
static void
reply(PaxosNode *p, Instance *in, const PaxosMessage *m, PaxosMsgType t,
	  PaxosBallot other, PaxosValue value)
{
	PaxosMessage r;

	memset(&r, 0, sizeof(r));
	r.type = t;
	r.to = m->from;
	r.instance = in->acc.instance;
	r.ballot = m->ballot;
	r.other = other;
	r.value = value;
	px_send(p, &r);
}

/*
 * nack: refuse m, naming in's promise so that its proposer can outbid it.
 */
static void
nack(PaxosNode *p, Instance *in, const PaxosMessage *m)
{
	PaxosValue	none;

	memset(&none, 0, sizeof(none));
	reply(p, in, m, PAXOS_MSG_NACK, in->acc.promised, none);
}

/*
 * px_on_prepare: phase 1b.  Promise (and report the accepted proposal) if
 * the ballot is not below the promise, else NACK.
 */
void
px_on_prepare(PaxosNode *p, Instance *in, const PaxosMessage *m)
{
	if (!px_is_acceptor(p))
		return;
	if (paxos_ballot_cmp(m->ballot, in->acc.promised) < 0)
	{
		nack(p, in, m);
		return;
	}
	if (paxos_ballot_cmp(m->ballot, in->acc.promised) > 0)
	{
		in->acc.promised = m->ballot;
		px_mark_dirty(p, in);
	}
	reply(p, in, m, PAXOS_MSG_PROMISE, in->acc.accepted, in->acc.value);
}

/*
 * px_on_accept: phase 2b.  Accept unless below the promise; an acceptance
 * goes to every learner (all nodes), the proposer's included.
 */
void
px_on_accept(PaxosNode *p, Instance *in, const PaxosMessage *m)
{
	PaxosMessage a;

	if (!px_is_acceptor(p))
		return;
#ifndef PAXOS_MUTANT_ACCEPT_BELOW_PROMISE
	if (paxos_ballot_cmp(m->ballot, in->acc.promised) < 0)
	{
		nack(p, in, m);
		return;
	}
#endif
	/*
	 * Accepting b also promises paxos_next_ballot(b) = (b.round + 1,
	 * b.node): the acceptance doubles as that ballot's phase 1b, reporting
	 * b as accepted, which lets that proposer skip the prepare of its next
	 * operation on the instance (paxos_proposer.c).  The cost: ballots
	 * between the two (round b.round with a higher node id, round b.round
	 * + 1 with a lower one) are refused from now on and retry higher.
	 */
#ifdef PAXOS_MUTANT_FAST_WITHOUT_PROMISE
	/* wrong: the proposer takes the next round as promised, it is not */
	if (paxos_ballot_cmp(m->ballot, in->acc.promised) > 0)
		in->acc.promised = m->ballot;
#else
	if (paxos_ballot_cmp(paxos_next_ballot(m->ballot), in->acc.promised) > 0)
		in->acc.promised = paxos_next_ballot(m->ballot);
#endif
	in->acc.accepted = m->ballot;
	px_value_set(p, &in->acc.value, m->value);
	px_mark_dirty(p, in);
	memset(&a, 0, sizeof(a));
	a.type = PAXOS_MSG_ACCEPTED;
	a.instance = in->acc.instance;
	a.ballot = m->ballot;
	a.value = in->acc.value;
	px_broadcast(p, &a, p->opt.n_nodes);
}

/*
 * learn_slot: the counter of ballot b in in, taking the slot of the lowest
 * ballot if b has none (old ballots can no longer matter once higher
 * ones are being accepted); NULL if b is below every slot in use.
 */
static LearnCount *
learn_slot(PaxosNode *p, Instance *in, PaxosBallot b)
{
	LearnCount *low = &in->counts[0];
	int			i;

#ifdef PAXOS_MUTANT_LEARN_MIXED_BALLOTS
	/* wrong: one set of acceptors per instance, whatever the ballot */
	if (paxos_ballot_cmp(b, low->ballot) > 0)
	{
		low->ballot = b;
		low->learned = false;
	}
	return low;
#endif
	for (i = 0; i < PAXOS_LEARN_SLOTS; i++)
	{
		if (paxos_ballot_cmp(in->counts[i].ballot, b) == 0)
			return &in->counts[i];
		if (paxos_ballot_cmp(in->counts[i].ballot, low->ballot) < 0)
			low = &in->counts[i];
	}
	if (low->ballot.round != 0 && paxos_ballot_cmp(b, low->ballot) < 0)
		return NULL;
	px_value_clear(p, &low->value);
	memset(low, 0, sizeof(*low));
	low->ballot = b;
	return low;
}

/*
 * px_on_accepted: a learner's count; learns (instance, ballot, value) the
 * first time a majority of acceptors accepted that one ballot.
 */
void
px_on_accepted(PaxosNode *p, Instance *in, const PaxosMessage *m)
{
	LearnCount *c = learn_slot(p, in, m->ballot);
	PaxosLearned *l;

	if (c == NULL)
		return;
	px_value_set(p, &c->value, m->value);
	if (c->mask & (1u << px_node_index(p, m->from)))
		return;					/* a duplicate */
	c->mask |= 1u << px_node_index(p, m->from);
	if (c->learned || px_popcount(c->mask) < px_majority(p))
		return;
	c->learned = true;
	if (!in->learned || paxos_ballot_cmp(c->ballot, in->learned_ballot) > 0)
	{
		in->learned = true;
		in->learned_ballot = c->ballot;
		px_value_set(p, &in->learned_value, c->value);
	}
	p->learned = px_grow(p, p->learned, &p->cap_learned, p->n_learned + 1,
						 sizeof(PaxosLearned));
	l = &p->learned[p->n_learned++];
	l->instance = in->acc.instance;
	l->ballot = c->ballot;
	l->value = px_value_scratch(p, c->value);
	px_on_learned(p, in, c->ballot, c->value);
}
