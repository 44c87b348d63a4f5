/*-------------------------------------------------------------------------
 *
 * paxos.h
 *	  The Paxos consensus core: single-decree Paxos instances and CASPaxos
 *	  registers, as a pure state machine with no I/O.
 *
 * Every node plays all three roles of the seed's section five: proposer
 * (paxos_propose), acceptor and learner.  An instance is named by a byte
 * string of 1 .. PAXOS_MAX_NAME bytes (the SQL layer's text), found
 * through a hash table of the node's own.  Values are byte strings of any
 * length, compared byte for byte; a PaxosValue that is not present (a
 * register nobody wrote) differs from an empty one.  The same acceptor
 * state serves both uses of an instance, but the caller uses each
 * instance one way only:
 *
 *	- a decree (PAXOS_OP_DECREE): classic single-decree Paxos; once a value
 *	  is chosen it is the instance's value for ever;
 *	- a register (PAXOS_OP_READ, _PUT, _CAS): CASPaxos (Rystsov 2018), each
 *	  operation is one Paxos round whose value is f(the value accepted
 *	  under the highest ballot among a majority of promises).  A node's
 *	  next operation on a register whose last operation it completed
 *	  itself may skip the prepare (one round trip; paxos_proposer.c).
 *
 * The caller owns every side effect.  It feeds the core ticks (paxos_tick),
 * incoming messages (paxos_step) and requests (paxos_propose); the core
 * answers with a Ready batch:
 *
 *		while (paxos_has_ready(node))
 *		{
 *			paxos_ready(node, &rd);
 *			1. persist rd.round (if rd.round_changed) and every record of
 *			   rd.persist (replacing the stored record of its instance), and
 *			   sync;
 *			2. only then send rd.msgs;
 *			3. hand rd.results to the clients; rd.learned says what this
 *			   node's learner learned;
 *			paxos_advance(node);
 *		}
 *
 * Persisting must precede sending: a promise or an acceptance that leaves
 * the node before it is on disk can be forgotten by a crash, and a second
 * value can then be chosen.  The round must be durable before a prepare
 * carrying it leaves, or a restarted proposer could reuse a ballot with
 * another value; rd.round is an upper bound of the rounds used, reserved
 * ahead, so it changes (and costs a sync) only now and then.  After a restart the caller hands the stored round and
 * records back with paxos_restore before anything else.  Everything rd
 * points to (records, messages, and the names and value bytes they point
 * to) belongs to the core and stays valid until paxos_advance; a caller
 * that keeps a message longer (a network queue) copies its bytes.
 *
 * Bytes handed IN (requests, messages, restored records) are copied into
 * memory the core owns before the call returns; the caller may reuse its
 * buffers at once.
 *
 * Time is ticks only; the core never reads a clock.  The randomized
 * backoff that separates duelling proposers comes from a PRNG seeded by
 * PaxosOptions.seed, so a run is a pure function of its inputs.
 *
 * Memory: only through the PaxosAllocator given (it must not return NULL).
 * Single-threaded: one node, one caller thread at a time.  No PostgreSQL
 * header; the C library only for memcpy/memset/memcmp.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAXOS_H
#define PAXOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAXOS_MAX_NODES		16
#define PAXOS_MAX_NAME		1024	/* bytes in an instance's name */

#define PAXOS_OK			0
#define PAXOS_ERR_BUSY		(-1)	/* this node already runs an op on it */
#define PAXOS_ERR_INVALID	(-2)

/*
 * PaxosBytes: an instance's name, len bytes at data (not NUL-terminated).
 * PaxosValue: a value; present false means absent (data NULL, len 0), an
 * empty value is present with len 0.
 */
typedef struct PaxosBytes
{
	const void *data;
	size_t		len;
} PaxosBytes;

typedef struct PaxosValue
{
	const void *data;
	size_t		len;
	bool		present;
} PaxosValue;

typedef struct PaxosAllocator
{
	void	   *(*alloc_fn) (void *ctx, size_t size);
	void	   *(*realloc_fn) (void *ctx, void *ptr, size_t size);
	void		(*free_fn) (void *ctx, void *ptr);
	void	   *ctx;
} PaxosAllocator;

/*
 * PaxosBallot: a proposal number.  Ordered by round, then node id; a node
 * never uses a round twice (it persists its highest), so two proposers
 * never share a number.  Round 0 is "none" (nothing promised/accepted).
 */
typedef struct PaxosBallot
{
	uint64_t	round;
	uint64_t	node;
} PaxosBallot;

typedef enum PaxosMsgType
{
	PAXOS_MSG_PREPARE,			/* proposer -> acceptors: phase 1a */
	PAXOS_MSG_PROMISE,			/* acceptor -> proposer: 1b, with accepted */
	PAXOS_MSG_ACCEPT,			/* proposer -> acceptors: 2a */
	PAXOS_MSG_ACCEPTED,			/* acceptor -> every learner: 2b */
	PAXOS_MSG_NACK				/* acceptor -> proposer: refused, promised */
} PaxosMsgType;

typedef struct PaxosMessage
{
	PaxosMsgType type;
	uint64_t	from;
	uint64_t	to;
	PaxosBytes	instance;
	PaxosBallot ballot;			/* the ballot this message is about */
	PaxosBallot other;			/* PROMISE: accepted ballot; NACK: promise */
	PaxosValue	value;			/* ACCEPT, ACCEPTED, PROMISE (if accepted) */
} PaxosMessage;

/* An acceptor's durable state for one instance. */
typedef struct PaxosAcceptorState
{
	PaxosBytes	instance;
	PaxosBallot promised;		/* never accept below it */
	PaxosBallot accepted;		/* round 0: nothing accepted */
	PaxosValue	value;			/* what was accepted (a register's write
								 * may be absent) */
} PaxosAcceptorState;

typedef enum PaxosOpKind
{
	PAXOS_OP_DECREE,			/* choose value (or learn the chosen one) */
	PAXOS_OP_READ,				/* register: f = identity */
	PAXOS_OP_PUT,				/* register: f = const value */
	PAXOS_OP_CAS				/* register: f = x == expected ? value : x */
} PaxosOpKind;

/*
 * PaxosRequest: one operation.  A register nobody wrote reads as absent; a
 * put or a CAS may write absent (a delete), and a CAS may expect it (an
 * insert).  A decree's value must be present.  tag is the caller's,
 * returned in the result.
 */
typedef struct PaxosRequest
{
	PaxosOpKind kind;
	PaxosBytes	instance;
	PaxosValue	value;
	PaxosValue	expected;		/* CAS only: equal = both absent, or both
								 * present with the same bytes */
	uint64_t	tag;
} PaxosRequest;

typedef struct PaxosResult
{
	uint64_t	tag;
	PaxosBytes	instance;
	PaxosOpKind kind;
	PaxosValue	value;			/* decree: the chosen value; register: the
								 * value the round wrote (read: current) */
	bool		swapped;		/* CAS: expected matched and value written */
	bool		unknown;		/* a register write whose accept phase failed:
								 * it may or may not have taken effect */
	int			rounds;			/* prepare phases it took */
} PaxosResult;

/* What this node's learner learned: a majority accepted value at ballot. */
typedef struct PaxosLearned
{
	PaxosBytes	instance;
	PaxosBallot ballot;
	PaxosValue	value;
} PaxosLearned;

typedef struct PaxosOptions
{
	uint64_t	id;				/* this node, one of nodes[], never 0 */
	int			n_nodes;		/* every node is a proposer and a learner */
	uint64_t	nodes[PAXOS_MAX_NODES];
	int			n_acceptors;	/* nodes[0 .. n_acceptors - 1] are the
								 * acceptors; 0: all of them */
	int			timeout;		/* ticks a phase may wait for a majority */
	int			backoff;		/* base of the randomized retry delay */
	uint64_t	seed;
	PaxosAllocator alloc;
} PaxosOptions;

typedef struct PaxosReady
{
	bool		round_changed;
	uint64_t	round;
	PaxosAcceptorState *persist;
	size_t		n_persist;
	PaxosMessage *msgs;
	size_t		n_msgs;
	PaxosResult *results;
	size_t		n_results;
	PaxosLearned *learned;
	size_t		n_learned;
} PaxosReady;

typedef struct PaxosNode PaxosNode;

extern PaxosNode *paxos_new(const PaxosOptions *opt);
extern void paxos_free(PaxosNode *p);
extern void paxos_restore(PaxosNode *p, uint64_t round,
						  const PaxosAcceptorState *recs, size_t n);
extern int	paxos_propose(PaxosNode *p, const PaxosRequest *req);
extern void paxos_step(PaxosNode *p, const PaxosMessage *m);
extern void paxos_tick(PaxosNode *p);
extern bool paxos_has_ready(const PaxosNode *p);
extern void paxos_ready(PaxosNode *p, PaxosReady *rd);
extern void paxos_advance(PaxosNode *p);
extern int	paxos_ballot_cmp(PaxosBallot a, PaxosBallot b);
extern PaxosBallot paxos_next_ballot(PaxosBallot b);
extern bool paxos_value_equal(PaxosValue a, PaxosValue b);
extern bool paxos_learned_value(const PaxosNode *p, PaxosBytes instance,
								PaxosValue *value);
extern int	paxos_pending(const PaxosNode *p);
extern bool paxos_cancel(PaxosNode *p, uint64_t tag);

/*
 * Garbage collection of finished decree instances (docs/design/paxos.md):
 * once the caller has durably recorded the value chosen for an instance,
 * it may forget the instance here and in its records, and must from then
 * on answer every PREPARE and ACCEPT for it with the chosen value instead
 * of stepping them: an acceptor that forgot what it accepted must never
 * promise again.  paxos_knows tells the caller which instances it must
 * look up first.
 */
extern int	paxos_forget(PaxosNode *p, PaxosBytes name);
extern bool paxos_knows(const PaxosNode *p, PaxosBytes name);

#endif							/* PAXOS_H */
