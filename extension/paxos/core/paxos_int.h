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
	int64_t		value;
	uint32_t	mask;
	bool		learned;		/* reached a majority (reported once) */
} LearnCount;

/* One instance as this node knows it: acceptor state, learner state. */
typedef struct Instance
{
	PaxosAcceptorState acc;
	bool		dirty;			/* acc changed since the last Ready */
	LearnCount	counts[PAXOS_LEARN_SLOTS];
	bool		learned;
	PaxosBallot learned_ballot;
	int64_t		learned_value;
	/* the one-round-trip path (paxos_proposer.c): volatile */
	bool		fast;			/* a majority promised fast_ballot */
	PaxosBallot fast_base;		/* the ballot they accepted with it */
	PaxosBallot fast_ballot;	/* paxos_next_ballot(fast_base) */
	int64_t		fast_value;		/* the value chosen at fast_base */
} Instance;

typedef enum Phase
{
	PH_PREPARE,					/* waiting for a majority of promises */
	PH_ACCEPT,					/* waiting to learn our own ballot */
	PH_BACKOFF					/* refused or timed out: wait, then retry */
} Phase;

/* A proposer's one operation in progress. */
typedef struct Proposal
{
	PaxosRequest req;
	Phase		phase;
	PaxosBallot ballot;
	uint32_t	promises;		/* acceptors that promised ballot */
	PaxosBallot best;			/* highest accepted ballot among them */
	bool		best_has;
	int64_t		best_value;
	int64_t		value;			/* what the accept phase proposes */
	bool		swapped;
	int			wait;			/* ticks left in this phase */
	int			rounds;
} Proposal;

struct PaxosNode
{
	PaxosOptions opt;
	int			self;			/* index of opt.id in opt.nodes */
	uint64_t	rng;
	uint64_t	round;			/* highest round used (durable) */
	uint64_t	seen_round;		/* highest round seen in any message */
	bool		round_changed;

	Instance   *inst;
	size_t		n_inst;
	size_t		cap_inst;
	Proposal   *props;
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
};

/* paxos.c */
extern void *px_grow(PaxosNode *p, void *arr, size_t *cap, size_t need,
					 size_t elem);
extern Instance *px_instance(PaxosNode *p, uint64_t id);
extern int	px_node_index(const PaxosNode *p, uint64_t id);
extern int	px_majority(const PaxosNode *p);
extern int	px_popcount(uint32_t mask);
extern void px_send(PaxosNode *p, const PaxosMessage *m);
extern void px_broadcast(PaxosNode *p, PaxosMessage *m, int n);
extern bool px_is_acceptor(const PaxosNode *p);
extern uint64_t px_rand(PaxosNode *p);

/* paxos_acceptor.c */
extern void px_on_prepare(PaxosNode *p, const PaxosMessage *m);
extern void px_on_accept(PaxosNode *p, const PaxosMessage *m);
extern void px_on_accepted(PaxosNode *p, const PaxosMessage *m);

/* paxos_proposer.c */
extern void px_on_promise(PaxosNode *p, const PaxosMessage *m);
extern void px_on_nack(PaxosNode *p, const PaxosMessage *m);
extern void px_on_learned(PaxosNode *p, uint64_t instance, PaxosBallot b,
						  int64_t value);
extern void px_proposer_tick(PaxosNode *p);
extern void px_fast_observe(PaxosNode *p, const PaxosMessage *m);

#endif							/* PAXOS_INT_H */
