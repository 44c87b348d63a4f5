/*-------------------------------------------------------------------------
 *
 * paxos_proposer.c
 *	  The proposer role of the Paxos core: decrees and CASPaxos registers.
 *
 * One operation per instance per node at a time (paxos_propose refuses a
 * second with PAXOS_ERR_BUSY).  An operation runs rounds until its node's
 * learner learns the outcome:
 *
 *	1. prepare: a fresh ballot (round above every round this node used or
 *	   saw, made durable in the same Ready as the prepares) to every
 *	   acceptor;
 *	2. on a majority of promises, the value: for a decree the value of the
 *	   highest-ballot acceptance among the promises, or the request's own
 *	   value if none reported one; for a register, the request's change
 *	   function applied to that value (absent if none); a compare-and-set
 *	   compares bytes (paxos_value_equal);
 *	3. accept with that value; done when the learner sees a majority accept
 *	   this ballot (a decree is also done when any ballot is learned: the
 *	   chosen value is then the answer, whoever proposed it).
 *
 * A NACK or a phase that sees no majority in time sends the operation
 * into backoff: a random wait, growing with the number of rounds, so that
 * duelling proposers stop pre-empting each other.
 *
 * How long a phase waits adapts to the network: opt.timeout ticks at
 * first, doubled (up to 8 times that) by every phase that times out, halved
 * again by a phase that completes within a quarter of its wait.  A fixed
 * wait shorter than a round trip would livelock: every round would time
 * out before its promises arrive and start the next, whose promises
 * arrive too late again (a register write would answer "unknown" every
 * time).  Node-wide, since the network is.
 *
 * The one-round-trip path (CASPaxos's optimisation).  Every acceptor that
 * accepts ballot b also promises b+ = paxos_next_ballot(b), the same
 * proposer's next round (paxos_acceptor.c), durably and in the same
 * Ready.  So when this node's learner sees a majority accept b, the ballot
 * of a register operation of its own, that majority has also promised b+
 * and reported b's value as its highest acceptance: phase 1 of b+ is done.
 * The node keeps (b+, value) for the instance and raises its round
 * to b+.round, so no full round of its own ever reuses b+.  Its next
 * operation on that instance then goes straight to accept(b+, f(value)).
 * It applies when all of these hold, and otherwise the operation runs the
 * full two phases:
 *	- the node's last operation on the instance was a register operation
 *	  it completed itself (its own ballot learned by its own learner);
 *	- since then the node has not restarted, started a round on the
 *	  instance, or seen a message about it with a ballot above b (another
 *	  proposer's, or above b+), which would make the accept likely to fail
 *	  (its safety does not depend on this: b+'s phase 1 happened).
 * A fast accept that is refused is handled as any failed accept phase:
 * a write answers "unknown", a read or a non-matching CAS runs a full
 * round.
 *
 * One exception: a register WRITE (a put, a compare-and-set that matched)
 * whose accept phase fails is not retried but answered "unknown".  Its
 * accept may have been chosen without this learner hearing of it; a new
 * round would then apply the change a second time, later (a put of v
 * seen, overwritten, then seen again; a CAS that swapped, answered "did
 * not match").  Reads and non-matching CASes write what was there, so
 * repeating them is harmless, and a decree is Paxos itself.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "paxos_int.h"

static void send_accepts(PaxosNode *p, Proposal *pr);
static bool try_fast(PaxosNode *p, Proposal *pr);

/*
 * px_proposal_free: drop pr and the bytes it owns; the last proposal
 * takes its slot (which px_proposer_tick's backward walk relies on).
 */
void
px_proposal_free(PaxosNode *p, Proposal *pr)
{
	Proposal   *last = p->props[--p->n_props];

	last->slot = pr->slot;
	p->props[pr->slot] = last;
	pr->in->prop = NULL;
	px_value_clear(p, &pr->req.value);
	px_value_clear(p, &pr->req.expected);
	px_value_clear(p, &pr->best_value);
	px_value_clear(p, &pr->value);
	p->opt.alloc.free_fn(p->opt.alloc.ctx, pr);
}

/*
 * finish: hand pr's result, with a copy of value, to the Ready and drop
 * pr; the result, returned, stays valid until paxos_advance.
 */
static PaxosResult *
finish(PaxosNode *p, Proposal *pr, PaxosValue value)
{
	PaxosResult *r;

	p->results = px_grow(p, p->results, &p->cap_results, p->n_results + 1,
						 sizeof(PaxosResult));
	r = &p->results[p->n_results++];
	r->tag = pr->req.tag;
	r->instance = pr->in->acc.instance;
	r->kind = pr->req.kind;
	r->value = px_value_scratch(p, value);	/* before value may be freed */
	r->swapped = pr->swapped;
	r->unknown = false;
	r->rounds = pr->rounds;
	px_proposal_free(p, pr);
	return r;
}

#define MAX_TIMEOUT_SHIFT	3

/*
 * phase_begin: pr's new phase waits the node's current phase wait.
 */
static void
phase_begin(PaxosNode *p, Proposal *pr)
{
	pr->budget = p->opt.timeout << p->timeout_shift;
	pr->wait = pr->budget;
}

/*
 * phase_done: pr's phase reached its majority: a quick one shortens the
 * node's phase wait again (see the banner).
 */
static void
phase_done(PaxosNode *p, Proposal *pr)
{
	if (p->timeout_shift > 0 && 4 * (pr->budget - pr->wait) < pr->budget)
		p->timeout_shift--;
}

/*
 * start_round: phase 1a with a ballot no one has used.
 */
static void
start_round(PaxosNode *p, Proposal *pr)
{
	PaxosMessage m;

	pr->in->fast = false;

	/*
	 * A retry skips a round: a node on the one-round-trip path takes the
	 * next round itself (b+), and would win every tie by node id against
	 * a retry that took only the next one.
	 */
	px_use_round(p, (p->round > p->seen_round ? p->round : p->seen_round) +
				 (pr->rounds > 0 ? 2 : 1));
	pr->ballot.round = p->round;
	pr->ballot.node = p->opt.id;
	pr->phase = PH_PREPARE;
	pr->promises = 0;
	memset(&pr->best, 0, sizeof(pr->best));
	px_value_clear(p, &pr->best_value);
	phase_begin(p, pr);
	pr->rounds++;
	memset(&m, 0, sizeof(m));
	m.type = PAXOS_MSG_PREPARE;
	m.instance = pr->in->acc.instance;
	m.ballot = pr->ballot;
	px_broadcast(p, &m, p->opt.n_acceptors);
}

/*
 * backoff: wait a random 1 .. backoff * 2^min(rounds, 4) ticks before the
 * next round.
 */
static void
backoff(PaxosNode *p, Proposal *pr)
{
	int			shift = pr->rounds < 4 ? pr->rounds : 4;

	pr->phase = PH_BACKOFF;
	pr->wait = 1 + (int) (px_rand(p) % ((uint64_t) p->opt.backoff << shift));
}

/*
 * request_ok: req is well formed: a known kind, a valid name, well-formed
 * values, and a decree value present (absent is what a register reads
 * before any write, not a value to choose).
 */
static bool
request_ok(const PaxosRequest *req)
{
	if (req->kind < PAXOS_OP_DECREE || req->kind > PAXOS_OP_CAS)
		return false;
	if (!px_name_ok(req->instance) || !px_value_ok(req->value) ||
		!px_value_ok(req->expected))
		return false;
	return req->kind != PAXOS_OP_DECREE || req->value.present;
}

/*
 * paxos_propose: start req (its bytes copied); PAXOS_ERR_INVALID if it is
 * malformed (request_ok), PAXOS_ERR_BUSY if this node already runs an
 * operation on the instance.  A decree this node has already learned is
 * answered at once (in the next Ready).
 */
int
paxos_propose(PaxosNode *p, const PaxosRequest *req)
{
	Proposal   *pr;
	Instance   *in;

	if (!request_ok(req))
		return PAXOS_ERR_INVALID;
	in = px_instance(p, req->instance);
	if (in->prop != NULL)
		return PAXOS_ERR_BUSY;
	pr = p->opt.alloc.alloc_fn(p->opt.alloc.ctx, sizeof(Proposal));
	memset(pr, 0, sizeof(*pr));
	pr->req.kind = req->kind;
	pr->req.instance = in->acc.instance;
	pr->req.tag = req->tag;
	px_value_set(p, &pr->req.value, req->value);
	px_value_set(p, &pr->req.expected, req->expected);
	pr->in = in;
	in->prop = pr;
	p->props = px_grow(p, p->props, &p->cap_props, p->n_props + 1,
					   sizeof(Proposal *));
	pr->slot = p->n_props;
	p->props[p->n_props++] = pr;
	if (req->kind == PAXOS_OP_DECREE && in->learned)
		finish(p, pr, in->learned_value);
	else if (!try_fast(p, pr))
		start_round(p, pr);
	return PAXOS_OK;
}

/*
 * choose_value: phase 2a's value once a majority promised (file banner,
 * step 2).
 */
static void
choose_value(PaxosNode *p, Proposal *pr)
{
	PaxosValue	cur = pr->best_value;
	PaxosValue	next;

#ifdef PAXOS_MUTANT_IGNORE_PROMISED_VALUES
	/* wrong: what the acceptors already accepted is not looked at */
	memset(&cur, 0, sizeof(cur));
#endif
	/* nothing accepted: a decree proposes its own, a register is absent */
	if (!cur.present && pr->req.kind == PAXOS_OP_DECREE)
		cur = pr->req.value;
	pr->swapped = false;
	next = cur;
	if (pr->req.kind == PAXOS_OP_PUT)
		next = pr->req.value;
	else if (pr->req.kind == PAXOS_OP_CAS &&
			 paxos_value_equal(cur, pr->req.expected))
	{
		pr->swapped = true;
		next = pr->req.value;
	}
	px_value_set(p, &pr->value, next);
}

/*
 * send_accepts: phase 2a with the value chosen from pr's promises (or
 * from the one-round-trip cache).
 */
static void
send_accepts(PaxosNode *p, Proposal *pr)
{
	PaxosMessage a;

	choose_value(p, pr);
	pr->phase = PH_ACCEPT;
	phase_begin(p, pr);
	memset(&a, 0, sizeof(a));
	a.type = PAXOS_MSG_ACCEPT;
	a.instance = pr->in->acc.instance;
	a.ballot = pr->ballot;
	a.value = pr->value;
	px_broadcast(p, &a, p->opt.n_acceptors);
}

/*
 * try_fast: the one-round-trip path (file banner) for pr if its instance
 * has a promised next ballot; false if the full round is needed.
 */
static bool
try_fast(PaxosNode *p, Proposal *pr)
{
	Instance   *in = pr->in;

	if (pr->req.kind == PAXOS_OP_DECREE || !in->fast)
		return false;
	in->fast = false;
	pr->ballot = in->fast_ballot;
	pr->best = in->fast_base;
	px_value_set(p, &pr->best_value, in->fast_value);
	send_accepts(p, pr);
	return true;
}

/*
 * remember_fast: a register operation of ours was learned at ballot b
 * with value: a majority promised paxos_next_ballot(b) (file banner).
 */
static void
remember_fast(PaxosNode *p, Instance *in, PaxosBallot b, PaxosValue value)
{
	in->fast = true;
	in->fast_base = b;
	in->fast_ballot = paxos_next_ballot(b);
	px_value_set(p, &in->fast_value, value);
	/* durable before the fast accept leaves: no full round reuses it */
	if (p->round < in->fast_ballot.round)
		px_use_round(p, in->fast_ballot.round);
}

/*
 * px_fast_observe: a message about an instance with a ballot above its
 * cached base (someone else's) or above the promised next ballot: the fast
 * accept would likely be refused, so forget it.
 */
void
px_fast_observe(PaxosNode *p, Instance *in, const PaxosMessage *m)
{
	PaxosBallot x[2] = {m->ballot, m->other};
	int			i;

	for (i = 0; i < 2 && in->fast; i++)
		if (paxos_ballot_cmp(x[i], in->fast_ballot) > 0 ||
			(x[i].node != p->opt.id &&
			 paxos_ballot_cmp(x[i], in->fast_base) > 0))
			in->fast = false;
}

/*
 * px_on_promise: count a promise for the current prepare; on a majority,
 * send the accepts.
 */
void
px_on_promise(PaxosNode *p, Instance *in, const PaxosMessage *m)
{
	Proposal   *pr = in->prop;

	if (pr == NULL || pr->phase != PH_PREPARE ||
		paxos_ballot_cmp(pr->ballot, m->ballot) != 0)
		return;
	pr->promises |= 1u << px_node_index(p, m->from);
	if (m->other.round != 0 && paxos_ballot_cmp(m->other, pr->best) > 0)
	{
		pr->best = m->other;
		px_value_set(p, &pr->best_value, m->value);
	}
	if (px_popcount(pr->promises) < px_majority(p))
		return;
	phase_done(p, pr);
	send_accepts(p, pr);
}

/*
 * fail_phase: the current phase was refused or timed out: back off, or,
 * for a register write whose accept phase this was, answer "unknown"
 * (file banner).
 */
static void
fail_phase(PaxosNode *p, Proposal *pr)
{
	bool		writes = pr->req.kind == PAXOS_OP_PUT ||
		(pr->req.kind == PAXOS_OP_CAS && pr->swapped);

	if (pr->phase == PH_ACCEPT && writes)
		finish(p, pr, pr->value)->unknown = true;
	else
		backoff(p, pr);
}

/*
 * px_on_nack: our current ballot was refused: outbid later, after backoff.
 */
void
px_on_nack(PaxosNode *p, Instance *in, const PaxosMessage *m)
{
	Proposal   *pr = in->prop;

	if (pr == NULL || pr->phase == PH_BACKOFF ||
		paxos_ballot_cmp(pr->ballot, m->ballot) != 0)
		return;
	fail_phase(p, pr);
}

/*
 * px_on_learned: the learner learned value at ballot b: a decree is
 * decided whoever proposed it; a register operation only if b is its own
 * accept phase's ballot (another ballot did not apply its change).
 */
void
px_on_learned(PaxosNode *p, Instance *in, PaxosBallot b, PaxosValue value)
{
	Proposal   *pr = in->prop;

	if (pr == NULL)
		return;
	if (pr->phase == PH_ACCEPT && paxos_ballot_cmp(pr->ballot, b) == 0)
		phase_done(p, pr);
	if (pr->req.kind == PAXOS_OP_DECREE)
		finish(p, pr, value);
	else if (pr->phase == PH_ACCEPT && paxos_ballot_cmp(pr->ballot, b) == 0)
	{
		finish(p, pr, value);
		remember_fast(p, in, b, value);
	}
}

/*
 * px_proposer_tick: a phase without a majority in time backs off; a
 * finished backoff starts the next round.
 */
void
px_proposer_tick(PaxosNode *p)
{
	size_t		i;

	/* backwards: finishing one moves the last proposal into its slot */
	for (i = p->n_props; i-- > 0;)
	{
		Proposal   *pr = p->props[i];

		if (--pr->wait > 0)
			continue;
		if (pr->phase == PH_BACKOFF)
			start_round(p, pr);
		else
		{
			if (p->timeout_shift < MAX_TIMEOUT_SHIFT)
				p->timeout_shift++;
			fail_phase(p, pr);
		}
	}
}
