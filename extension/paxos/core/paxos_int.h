/*-------------------------------------------------------------------------
 *
 * paxos_int.h
 *	  The Paxos core's internal structures, shared by its .c files only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAXOS_INT_H
#define PAXOS_INT_H

#include "paxos.h"

/* A learner keeps counts for this many ballots per instance (the highest). */
#define PAXOS_LEARN_SLOTS	4

/* Acceptances of ONE ballot, by acceptor (bit = index in opt.nodes). */
typedef struct LearnCount
{
	PaxosBallot ballot;
	PaxosValue	value;			/* owned */
	uint32_t	mask;
	bool		learned;		/* reached a majority (reported once) */
} LearnCount;

struct Proposal;

/*
 * One instance as this node knows it: acceptor state, learner state, the
 * proposal running on it.  Allocated one by one and never freed before the
 * node, so an Instance pointer, and its name (acc.instance), stay valid
 * for the node's life.  Every PaxosValue in it owns its bytes.
 */
typedef struct Instance
{
	PaxosAcceptorState acc;
	uint64_t	hash;			/* of the name (paxos_store.c) */
	bool		dirty;			/* acc changed since the last Ready */
	LearnCount	counts[PAXOS_LEARN_SLOTS];
	bool		learned;
	PaxosBallot learned_ballot;
	PaxosValue	learned_value;
	struct Proposal *prop;		/* this node's operation on it, or NULL */
	/* the one-round-trip path (paxos_proposer.c): volatile */
	bool		fast;			/* a majority promised fast_ballot */
	PaxosBallot fast_base;		/* the ballot they accepted with it */
	PaxosBallot fast_ballot;	/* paxos_next_ballot(fast_base) */
	PaxosValue	fast_value;		/* the value chosen at fast_base */
} Instance;

typedef enum Phase
{
	PH_PREPARE,					/* waiting for a majority of promises */
	PH_ACCEPT,					/* waiting to learn our own ballot */
	PH_BACKOFF					/* refused or timed out: wait, then retry */
} Phase;

/*
 * A proposer's one operation in progress.  req.instance is in's name;
 * req.value, req.expected, best_value and value own their bytes.
 */
typedef struct Proposal
{
	PaxosRequest req;
	Instance   *in;
	size_t		slot;			/* index in PaxosNode.props */
	Phase		phase;
	PaxosBallot ballot;
	uint32_t	promises;		/* acceptors that promised ballot */
	PaxosBallot best;			/* highest accepted ballot among them */
	PaxosValue	best_value;		/* accepted with best (absent: none) */
	PaxosValue	value;			/* what the accept phase proposes */
	bool		swapped;
	int			wait;			/* ticks left in this phase */
	int			budget;			/* ticks this phase was given */
	int			rounds;
} Proposal;

struct PaxosNode
{
	PaxosOptions opt;
	int			self;			/* index of opt.id in opt.nodes */
	uint64_t	rng;
	uint64_t	round;			/* highest round used */
	uint64_t	durable_round;	/* what the caller stored: no round above
								 * it is used before it is raised */
	uint64_t	seen_round;		/* highest round seen in any message */
	bool		round_changed;
	int			timeout_shift;	/* a phase waits opt.timeout << this
								 * (paxos_proposer.c: phase_wait) */

	/* instances: open addressing, linear probing, a power of two slots */
	Instance  **table;
	size_t		n_inst;
	size_t		cap_table;
	Instance  **dirty;			/* instances with dirty set */
	size_t		n_dirty;
	size_t		cap_dirty;
	Proposal  **props;
	size_t		n_props;
	size_t		cap_props;

	/* the pending Ready */
	PaxosMessage *msgs;
	size_t		n_msgs;
	size_t		cap_msgs;
	PaxosResult *results;
	size_t		n_results;
	size_t		cap_results;
	PaxosLearned *learned;
	size_t		n_learned;
	size_t		cap_learned;
	PaxosAcceptorState *persist;
	size_t		cap_persist;
	void	  **scratch;		/* copies the Ready points to, freed by
								 * paxos_advance */
	size_t		n_scratch;
	size_t		cap_scratch;
};

/* A node reserves rounds this many at a time (px_use_round). */
#define PAXOS_ROUND_RESERVE	1024

/* paxos.c */
extern void *px_grow(PaxosNode *p, void *arr, size_t *cap, size_t need,
					 size_t elem);
extern int	px_node_index(const PaxosNode *p, uint64_t id);
extern int	px_majority(const PaxosNode *p);
extern int	px_popcount(uint32_t mask);
extern void px_send(PaxosNode *p, const PaxosMessage *m);
extern void px_broadcast(PaxosNode *p, PaxosMessage *m, int n);
extern bool px_is_acceptor(const PaxosNode *p);
extern uint64_t px_rand(PaxosNode *p);
extern void px_use_round(PaxosNode *p, uint64_t round);

/* paxos_store.c */
extern bool px_name_ok(PaxosBytes name);
extern bool px_value_ok(PaxosValue v);
extern void px_value_set(PaxosNode *p, PaxosValue *dst, PaxosValue src);
extern void px_value_clear(PaxosNode *p, PaxosValue *v);
extern PaxosValue px_value_scratch(PaxosNode *p, PaxosValue v);
extern void px_scratch_reset(PaxosNode *p);
extern Instance *px_instance(PaxosNode *p, PaxosBytes name);
extern Instance *px_instance_find(const PaxosNode *p, PaxosBytes name);
extern void px_mark_dirty(PaxosNode *p, Instance *in);
extern void px_store_free(PaxosNode *p);

/* paxos_acceptor.c */
extern void px_on_prepare(PaxosNode *p, Instance *in, const PaxosMessage *m);
extern void px_on_accept(PaxosNode *p, Instance *in, const PaxosMessage *m);
extern void px_on_accepted(PaxosNode *p, Instance *in, const PaxosMessage *m);

/* paxos_proposer.c */
extern void px_on_promise(PaxosNode *p, Instance *in, const PaxosMessage *m);
extern void px_on_nack(PaxosNode *p, Instance *in, const PaxosMessage *m);
extern void px_on_learned(PaxosNode *p, Instance *in, PaxosBallot b,
						  PaxosValue value);
extern void px_proposer_tick(PaxosNode *p);
extern void px_fast_observe(PaxosNode *p, Instance *in, const PaxosMessage *m);
extern void px_proposal_free(PaxosNode *p, struct Proposal *pr);

#endif							/* PAXOS_INT_H */
