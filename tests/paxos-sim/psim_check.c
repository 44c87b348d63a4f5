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
 * ps_inst_index: 0 .. PS_INSTANCES - 1 for a simulated instance id.
 */
int
ps_inst_index(uint64_t instance)
{
	if (instance >= 1 && instance <= PS_DECREES)
		return (int) instance - 1;
	return PS_DECREES + (int) (instance - PS_REG_BASE);
}

/*
 * find_votes: the acceptances of (instance, b), or NULL.
 */
static PsVotes *
find_votes(PSim *S, uint64_t instance, PaxosBallot b)
{
	int			x = ps_inst_index(instance);
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
record_chosen(PSim *S, uint64_t instance, PaxosBallot b, int64_t v)
{
	int			x = ps_inst_index(instance);

	if (!S->has_first[x])
	{
		S->has_first[x] = true;
		S->first_value[x] = v;
		S->first_ballot[x] = b;
	}
	else if (instance <= PS_DECREES && S->first_value[x] != v)
		ps_violation(S, "agreement",
					 "decree %llu: %lld chosen at ballot (%llu,%llu) after "
					 "%lld was chosen at (%llu,%llu)",
					 (unsigned long long) instance, (long long) v,
					 (unsigned long long) b.round, (unsigned long long) b.node,
					 (long long) S->first_value[x],
					 (unsigned long long) S->first_ballot[x].round,
					 (unsigned long long) S->first_ballot[x].node);
}

/*
 * ps_check_persisted: node durably wrote acceptor record a.  If it
 * accepted a ballot, that is a vote for ever (Lamport's "chosen" is about
 * votes cast, not votes still held: a majority that voted for b, even at
 * different moments, chose b's value); a majority of votes chooses.
 */
void
ps_check_persisted(PSim *S, int node, const PaxosAcceptorState *a)
{
	int			x = ps_inst_index(a->instance);
	PsVotes    *v;

	if (a->accepted.round == 0)
		return;
	v = find_votes(S, a->instance, a->accepted);
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
					 "instance %llu: ballot (%llu,%llu) accepted with %lld "
					 "and %lld", (unsigned long long) a->instance,
					 (unsigned long long) v->ballot.round,
					 (unsigned long long) v->ballot.node,
					 (long long) v->value, (long long) a->value);
	v->mask |= 1u << node;
	if (!v->chosen && __builtin_popcount(v->mask) > S->n / 2)
	{
		v->chosen = true;
		record_chosen(S, a->instance, v->ballot, v->value);
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
	PsVotes    *c = find_votes(S, l->instance, l->ballot);

	if (c == NULL || !c->chosen || c->value != l->value)
		ps_violation(S, "learned-not-chosen",
					 "node %d learned %lld for instance %llu at ballot "
					 "(%llu,%llu), which no majority of acceptors accepted",
					 node + 1, (long long) l->value,
					 (unsigned long long) l->instance,
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

	if (!S->has_first[x] || S->first_value[x] != r->value)
		ps_violation(S, "decree-result",
					 "node %d answered %lld for decree %llu, chosen: %s%lld",
					 node + 1, (long long) r->value,
					 (unsigned long long) r->instance,
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
