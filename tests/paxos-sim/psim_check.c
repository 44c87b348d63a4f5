/*-------------------------------------------------------------------------
 *
 * psim_check.c
 *	  The Paxos simulator's safety checks, judged by the ACCEPTORS' disks.
 *
 * A value is chosen at ballot b when a majority of acceptors have durably
 * accepted b (with its value).  Acceptor state changes only when a Ready
 * is persisted, so recording every persisted acceptance sees every vote,
 * even one that a later acceptance of a higher ballot overwrites on that
 * acceptor's disk.  From that record:
 *
 *	- ballot-unique: acceptors that accepted one ballot hold one value;
 *	- agreement: every value chosen for a decree instance is the first one
 *	  chosen (no second value, and a chosen value is never lost);
 *	- learned-not-chosen: a learner learns only a chosen (ballot, value);
 *	- decree-result: a decree answers its instance's chosen value;
 *	- linearizability (at the end): each register key's history of reads,
 *	  puts and compare-and-sets, with unknown outcomes, through
 *	  tests/sim/lincheck.c.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psim.h"

/*
 * ps_violation: record the first violated property (later ones are
 * consequences).
 */
void
ps_violation(PSim *S, const char *property, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	sim_record_violation(&S->failed, S->property, sizeof(S->property),
						 S->detail, sizeof(S->detail), property, fmt, ap);
	va_end(ap);
}

/*
 * find_votes: the acceptances of (instance, b), or NULL.
 */
static PsVotes *
find_votes(PSim *S, int x, PaxosBallot b)
{
	int			i;

	for (i = S->n_votes[x]; i-- > 0;)
		if (paxos_ballot_cmp(S->votes[x][i].ballot, b) == 0)
			return &S->votes[x][i];
	return NULL;
}

/*
 * record_chosen: b chose v for instance; a decree's every choice must be
 * its first.
 */
static void
record_chosen(PSim *S, int x, PaxosBallot b, int64_t v)
{
	if (!S->has_first[x])
	{
		S->has_first[x] = true;
		S->first_value[x] = v;
		S->first_ballot[x] = b;
	}
	else if (x < PS_DECREES && S->first_value[x] != v)
		ps_violation(S, "agreement",
					 "decree %d: %lld chosen at ballot (%llu,%llu) after "
					 "%lld was chosen at (%llu,%llu)",
					 x + 1, (long long) v,
					 (unsigned long long) b.round, (unsigned long long) b.node,
					 (long long) S->first_value[x],
					 (unsigned long long) S->first_ballot[x].round,
					 (unsigned long long) S->first_ballot[x].node);
}

/*
 * ps_check_persisted: node durably wrote acceptor record a of instance x
 * (its value decoded).  If it
 * accepted a ballot, that is a vote for ever (Lamport's "chosen" is about
 * votes cast, not votes still held: a majority that voted for b, even at
 * different moments, chose b's value); a majority of votes chooses.
 */
void
ps_check_persisted(PSim *S, int node, int x, const PsDisk *a)
{
	PsVotes    *v;

	if (a->accepted.round == 0)
		return;
	v = find_votes(S, x, a->accepted);
	if (v == NULL)
	{
		S->votes[x] = sim_xrealloc(S->votes[x],
								   (S->n_votes[x] + 1) * sizeof(PsVotes));
		v = &S->votes[x][S->n_votes[x]++];
		memset(v, 0, sizeof(*v));
		v->ballot = a->accepted;
		v->value = a->value;
	}
	if (v->value != a->value)
		ps_violation(S, "ballot-unique",
					 "instance %d: ballot (%llu,%llu) accepted with %lld "
					 "and %lld", x,
					 (unsigned long long) v->ballot.round,
					 (unsigned long long) v->ballot.node,
					 (long long) v->value, (long long) a->value);
	v->mask |= 1u << node;
	if (!v->chosen && __builtin_popcount(v->mask) > S->n / 2)
	{
		v->chosen = true;
		record_chosen(S, x, v->ballot, v->value);
	}
}

void
ps_check_free(PSim *S)
{
	int			x;

	for (x = 0; x < PS_INSTANCES; x++)
		free(S->votes[x]);
}

/*
 * ps_check_learned: node's learner learned l; was it chosen?
 */
void
ps_check_learned(PSim *S, int node, const PaxosLearned *l)
{
	int			x = ps_inst_index(l->instance);
	int64_t		value;
	PsVotes    *c;

	if (x < 0 || !ps_decode(l->value, &value))
	{
		ps_violation(S, "learned-bytes", "node %d learned a name or value "
					 "no client gave", node + 1);
		return;
	}
	c = find_votes(S, x, l->ballot);
	if (c == NULL || !c->chosen || c->value != value)
		ps_violation(S, "learned-not-chosen",
					 "node %d learned %lld for instance %d at ballot "
					 "(%llu,%llu), which no majority of acceptors accepted",
					 node + 1, (long long) value, x,
					 (unsigned long long) l->ballot.round,
					 (unsigned long long) l->ballot.node);
}

/*
 * ps_check_decree_result: a decree's answer must be the chosen value.
 */
void
ps_check_decree_result(PSim *S, int node, const PaxosResult *r)
{
	int			x = ps_inst_index(r->instance);
	int64_t		value;

	if (x < 0 || x >= PS_DECREES || !ps_decode(r->value, &value))
	{
		ps_violation(S, "result-bytes", "node %d answered a decree with a "
					 "name or value no client gave", node + 1);
		return;
	}
	if (!S->has_first[x] || S->first_value[x] != value)
		ps_violation(S, "decree-result",
					 "node %d answered %lld for decree %d, chosen: %s%lld",
					 node + 1, (long long) value, x + 1,
					 S->has_first[x] ? "" : "nothing ",
					 S->has_first[x] ? (long long) S->first_value[x] : 0LL);
}

/*
 * dump_ops: a key's history, for a verbose replay of a failure.
 */
static void
dump_ops(const LinOp *ops, int m)
{
	static const char *kinds[] = {"put", "get", "cas"};
	int			i;

	for (i = 0; i < m; i++)
		printf("  op %s value %lld expected %lld swapped %d [%llu, %lld]\n",
			   kinds[ops[i].kind], (long long) ops[i].value,
			   (long long) ops[i].expected, ops[i].swapped,
			   (unsigned long long) ops[i].call,
			   ops[i].ret == LIN_INF ? -1LL : (long long) ops[i].ret);
}

/*
 * ps_check_final: linearizability of each register key.
 */
void
ps_check_final(PSim *S)
{
	LinOp	   *ops = sim_xmalloc((S->n_ops + 1) * sizeof(LinOp));
	int			k;

	for (k = 0; k < SIM_KEYS && !S->failed; k++)
	{
		int			m = 0;
		int			i;
		long		explored;

		for (i = 0; i < S->n_ops; i++)
		{
			PsOp	   *o = &S->ops[i];

			if (o->key != k || (o->kind == LIN_GET && o->status != OP_OK))
				continue;
			ops[m].kind = o->kind;
			ops[m].value = o->value;
			ops[m].expected = o->expected;
			ops[m].swapped = o->swapped;
			ops[m].call = o->call;
			ops[m].ret = o->status == OP_OK ? o->ret : LIN_INF;
			m++;
		}
		if (!lin_check_key(ops, m, &explored) && S->verbose)
			dump_ops(ops, m);
		if (!lin_check_key(ops, m, &explored))
			ps_violation(S, "linearizability",
						 "the %d operations on register %d have no "
						 "linearization", m, k);
		else if (explored < 0)
			printf("paxos-sim: seed %llu key %d: linearizability search gave "
				   "up (too large), not counted\n",
				   (unsigned long long) S->seed, k);
	}
	free(ops);
}
