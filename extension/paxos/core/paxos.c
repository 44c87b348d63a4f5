/*-------------------------------------------------------------------------
 *
 * paxos.c
 *	  The Paxos core's node: creation, restore after a crash, the instance
 *	  table, message dispatch, ticks and the Ready hand-off (paxos.h).
 *
 * The node holds no lock and does no I/O: its only shared state is its own
 * struct, used by one caller thread at a time.  Instances, and the memory
 * behind every value, are paxos_store.c's.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "paxos_int.h"

/*
 * px_grow: arr with room for need elements of elem bytes (realloc'd by
 * doubling through the caller's allocator); *cap is updated.
 */
void *
px_grow(PaxosNode *p, void *arr, size_t *cap, size_t need, size_t elem)
{
	size_t		c = *cap ? *cap : 8;

	if (need <= *cap)
		return arr;
	while (c < need)
		c *= 2;
	*cap = c;
	return p->opt.alloc.realloc_fn(p->opt.alloc.ctx, arr, c * elem);
}

/*
 * px_rand: xorshift64*, the node's only randomness (backoff delays).
 */
uint64_t
px_rand(PaxosNode *p)
{
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 0x2545F4914F6CDD1DULL;
}

/*
 * paxos_ballot_cmp: <0, 0, >0 as a is below, equal to, above b.
 */
int
paxos_ballot_cmp(PaxosBallot a, PaxosBallot b)
{
	if (a.round != b.round)
		return a.round < b.round ? -1 : 1;
	if (a.node != b.node)
		return a.node < b.node ? -1 : 1;
	return 0;
}

/*
 * paxos_next_ballot: the ballot an acceptor promises along with accepting
 * b: the same proposer's next round (the one-round-trip path).
 */
PaxosBallot
paxos_next_ballot(PaxosBallot b)
{
	b.round++;
	return b;
}

int
px_popcount(uint32_t mask)
{
	int			n = 0;

	for (; mask; mask &= mask - 1)
		n++;
	return n;
}

/*
 * px_majority: how many acceptors make a quorum.
 */
int
px_majority(const PaxosNode *p)
{
	return p->opt.n_acceptors / 2 + 1;
}

bool
px_is_acceptor(const PaxosNode *p)
{
	return p->self < p->opt.n_acceptors;
}

/*
 * px_node_index: position of node id in opt.nodes, or -1 for a stranger
 * (whose messages are ignored).
 */
int
px_node_index(const PaxosNode *p, uint64_t id)
{
	int			i;

	for (i = 0; i < p->opt.n_nodes; i++)
		if (p->opt.nodes[i] == id)
			return i;
	return -1;
}

/*
 * px_use_round: round is this node's highest used from now on.  What the
 * caller stores is an upper bound of the rounds used, reserved
 * PAXOS_ROUND_RESERVE ahead: raised (and so synced with the Ready that
 * carries the first message with such a round) only when a round passes
 * it.  Without the reserve every prepare, and every operation that takes
 * the one-round-trip path, cost the proposer one more sync.  A restarted
 * node continues above the stored bound, so it never reuses a round;
 * ballots jump by up to the reserve at a restart.
 */
void
px_use_round(PaxosNode *p, uint64_t round)
{
	p->round = round;
#ifdef PAXOS_MUTANT_FORGET_ROUND
	/* wrong: the rounds used are not made durable, so a restart reuses one */
	return;
#endif
	if (round <= p->durable_round)
		return;
	p->durable_round = round + PAXOS_ROUND_RESERVE;
	p->round_changed = true;
}

/*
 * px_send: queue m for the Ready (sent by the caller after persisting).
 * m->instance must be an instance's own name (valid for the node's life);
 * the value is copied, as the owned one may change before the send.
 */
void
px_send(PaxosNode *p, const PaxosMessage *m)
{
	p->msgs = px_grow(p, p->msgs, &p->cap_msgs, p->n_msgs + 1,
					  sizeof(PaxosMessage));
	p->msgs[p->n_msgs] = *m;
	p->msgs[p->n_msgs].from = p->opt.id;
	p->msgs[p->n_msgs].value = px_value_scratch(p, m->value);
	p->n_msgs++;
}

/*
 * px_broadcast: m to the first n nodes (the acceptors, or everyone), this
 * one included (its own roles are reached through the caller too, after
 * the persist).
 */
void
px_broadcast(PaxosNode *p, PaxosMessage *m, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		m->to = p->opt.nodes[i];
		px_send(p, m);
	}
}

/*
 * paxos_new: a node with empty state; NULL if opt is invalid (id not in
 * nodes, too many nodes, non-positive timeout or backoff).
 */
PaxosNode *
paxos_new(const PaxosOptions *opt)
{
	PaxosNode  *p;
	PaxosNode	probe;

	memset(&probe, 0, sizeof(probe));
	probe.opt = *opt;
	if (opt->n_nodes < 1 || opt->n_nodes > PAXOS_MAX_NODES || opt->id == 0 ||
		opt->n_acceptors < 0 || opt->n_acceptors > opt->n_nodes ||
		opt->timeout < 1 || opt->backoff < 1 || px_node_index(&probe, opt->id) < 0)
		return NULL;
	p = opt->alloc.alloc_fn(opt->alloc.ctx, sizeof(PaxosNode));
	memset(p, 0, sizeof(*p));
	p->opt = *opt;
	if (p->opt.n_acceptors == 0)
		p->opt.n_acceptors = opt->n_nodes;
	p->self = px_node_index(p, opt->id);
	p->rng = opt->seed ? opt->seed : 0x9E3779B97F4A7C15ULL;
	return p;
}

void
paxos_free(PaxosNode *p)
{
	PaxosAllocator a;

	if (p == NULL)
		return;
	a = p->opt.alloc;
	px_store_free(p);
	a.free_fn(a.ctx, p->table);
	a.free_fn(a.ctx, p->dirty);
	a.free_fn(a.ctx, p->scratch);
	a.free_fn(a.ctx, p->props);
	a.free_fn(a.ctx, p->msgs);
	a.free_fn(a.ctx, p->results);
	a.free_fn(a.ctx, p->learned);
	a.free_fn(a.ctx, p->persist);
	a.free_fn(a.ctx, p);
}

/*
 * paxos_restore: load what the caller persisted before a crash: the
 * highest round this node used and its acceptor records.  Learner and
 * proposer state are volatile: a restarted node learns again from the
 * next round on the instance.  Records with a malformed name or value
 * (not something a Ready produced) are skipped.
 */
void
paxos_restore(PaxosNode *p, uint64_t round, const PaxosAcceptorState *recs,
			  size_t n)
{
	size_t		i;

	p->round = round;
	p->durable_round = round;
	p->seen_round = round;
	for (i = 0; i < n; i++)
	{
		Instance   *in;

		if (!px_name_ok(recs[i].instance) || !px_value_ok(recs[i].value))
			continue;
		in = px_instance(p, recs[i].instance);
		in->acc.promised = recs[i].promised;
		in->acc.accepted = recs[i].accepted;
		px_value_set(p, &in->acc.value, recs[i].value);
#ifdef PAXOS_MUTANT_FORGET_PROMISE
		/* wrong: the promise was not stored, only the acceptance */
		in->acc.promised = recs[i].accepted;
#endif
	}
}

/*
 * paxos_step: one incoming message; one from a stranger, for another node
 * or with a malformed name or value is dropped.  Ballots seen raise
 * seen_round, so the next round this node starts outbids them.
 */
void
paxos_step(PaxosNode *p, const PaxosMessage *m)
{
	Instance   *in;

	if (px_node_index(p, m->from) < 0 || m->to != p->opt.id ||
		!px_name_ok(m->instance) || !px_value_ok(m->value))
		return;
	if (m->ballot.round > p->seen_round)
		p->seen_round = m->ballot.round;
	if (m->other.round > p->seen_round)
		p->seen_round = m->other.round;
	in = px_instance(p, m->instance);
	px_fast_observe(p, in, m);
	switch (m->type)
	{
		case PAXOS_MSG_PREPARE:
			px_on_prepare(p, in, m);
			break;
		case PAXOS_MSG_PROMISE:
			px_on_promise(p, in, m);
			break;
		case PAXOS_MSG_ACCEPT:
			px_on_accept(p, in, m);
			break;
		case PAXOS_MSG_ACCEPTED:
			px_on_accepted(p, in, m);
			break;
		case PAXOS_MSG_NACK:
			px_on_nack(p, in, m);
			break;
	}
}

void
paxos_tick(PaxosNode *p)
{
	px_proposer_tick(p);
}

bool
paxos_has_ready(const PaxosNode *p)
{
	return p->round_changed || p->n_msgs || p->n_results || p->n_learned ||
		p->n_dirty;
}

/*
 * paxos_ready: the pending batch (see paxos.h for what to do with it).
 */
void
paxos_ready(PaxosNode *p, PaxosReady *rd)
{
	size_t		i;

	memset(rd, 0, sizeof(*rd));
	rd->round_changed = p->round_changed;
	rd->round = p->durable_round;
	p->persist = px_grow(p, p->persist, &p->cap_persist, p->n_dirty,
						 sizeof(PaxosAcceptorState));
	for (i = 0; i < p->n_dirty; i++)
		p->persist[i] = p->dirty[i]->acc;
	rd->persist = p->persist;
	rd->n_persist = p->n_dirty;
	rd->msgs = p->msgs;
	rd->n_msgs = p->n_msgs;
	rd->results = p->results;
	rd->n_results = p->n_results;
	rd->learned = p->learned;
	rd->n_learned = p->n_learned;
}

/*
 * paxos_advance: the caller handled the last Ready; forget it.
 */
void
paxos_advance(PaxosNode *p)
{
	size_t		i;

	for (i = 0; i < p->n_dirty; i++)
		p->dirty[i]->dirty = false;
	p->n_dirty = 0;
	px_scratch_reset(p);
	p->round_changed = false;
	p->n_msgs = 0;
	p->n_results = 0;
	p->n_learned = 0;
}

/*
 * paxos_learned_value: true and *value if this node's learner knows the
 * value chosen for decree instance.  *value points to the node's own
 * bytes: valid until the next paxos_step, paxos_tick or paxos_propose.
 */
bool
paxos_learned_value(const PaxosNode *p, PaxosBytes instance,
					PaxosValue *value)
{
	Instance   *in = px_instance_find(p, instance);

	if (in == NULL || !in->learned)
		return false;
	*value = in->learned_value;
	return true;
}

/*
 * paxos_pending: operations this node's proposer is still running.
 */
int
paxos_pending(const PaxosNode *p)
{
	return (int) p->n_props;
}

/*
 * paxos_cancel: stop this node's operation with tag (its client gave up);
 * false if none runs.  Always safe: a proposer may abandon its ballot at
 * any point, since acceptors hold everything a later round needs.  A
 * register write cancelled after its accepts left may still take effect,
 * which the client was told when it gave up (an unknown outcome).
 */
bool
paxos_cancel(PaxosNode *p, uint64_t tag)
{
	for (size_t i = 0; i < p->n_props; i++)
		if (p->props[i]->req.tag == tag)
		{
			px_proposal_free(p, p->props[i]);
			return true;
		}
	return false;
}
