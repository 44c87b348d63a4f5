/*-------------------------------------------------------------------------
 *
 * sim.h
 *	  Shared pieces of the Raft simulator: its PRNG, allocator and the
 *	  linearizability checker's interface.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SIM_H
#define SIM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../extension/raft/core/raft.h"

#define LIN_INF		UINT64_MAX

typedef enum LinKind
{
	LIN_PUT,					/* a put of 0 is a delete */
	LIN_GET,
	LIN_CAS						/* compare-and-set: expected -> value */
} LinKind;

/* One client operation on one key: [call, ret] in one global event order. */
typedef struct LinOp
{
	LinKind		kind;
	int64_t		value;			/* put, cas: written; get: returned (0 = absent) */
	uint64_t	call;
	uint64_t	ret;			/* LIN_INF: outcome unknown */
	int64_t		expected;		/* cas: the value it compared with (0 = absent) */
	bool		swapped;		/* cas: what it answered (unless ret is LIN_INF) */
} LinOp;

#define SIM_MAX_SLOTS	8		/* 5 voters + joiners */
#define SIM_KEYS		4
#define SIM_CLIENTS		3
#define SIM_MAX_OPS		4096

typedef enum NodeState
{
	NODE_UNUSED,
	NODE_UP,
	NODE_DOWN,					/* crashed: only its disk is left */
	NODE_RETIRED				/* removed from the cluster and stopped */
} NodeState;

/* An entry on a node's simulated disk, with the hash of its log prefix. */
typedef struct DiskEntry
{
	RaftEntry	e;
	uint64_t	prefix;
} DiskEntry;

/* The key-value state machine; also its snapshot format. */
typedef struct Kv
{
	int64_t		val[SIM_KEYS];
	uint8_t		ops[SIM_MAX_OPS / 8];	/* which puts were applied */
} Kv;

typedef struct Waiter
{
	int			op;
	uint64_t	index;			/* reads: index to reach, UINT64_MAX unknown */
} Waiter;

typedef struct SimNode
{
	uint64_t	id;
	NodeState	state;
	RaftNode   *r;
	/* disk: what survives a crash */
	RaftHardState hs;
	RaftSnapshot snap;
	uint64_t	snap_prefix;
	DiskEntry  *ents;
	size_t		n_ents;
	size_t		cap_ents;
	/* volatile */
	Kv			kv;
	uint64_t	applied;
	Waiter	   *puts;
	int			n_puts;
	Waiter	   *reads;
	int			n_reads;
	uint64_t	restart_at;
	uint64_t	checked_term;	/* leader completeness checked for it */
	double		ready_p;		/* chance its Ready is handled this tick */
} SimNode;

/* A message on the simulated network: its bytes, and m decoded from them. */
typedef struct NetMsg
{
	uint64_t	at;
	RaftMessage m;				/* entry and snapshot data point into wire */
	uint8_t    *wire;			/* raft_wire_encode's bytes */
	void	   *block;			/* one allocation: m's arrays and wire */
} NetMsg;

typedef enum OpStatus
{
	OP_PENDING,
	OP_OK,
	OP_FAILED,					/* certainly not executed */
	OP_UNKNOWN					/* timed out: maybe executed */
} OpStatus;

typedef struct SimOp
{
	int			client;
	int			key;
	LinKind		kind;
	int64_t		value;
	uint64_t	call;
	uint64_t	ret;
	OpStatus	status;
	int			slot;			/* node it was sent to */
	bool		after_heal;
} SimOp;

typedef struct SimClient
{
	int			op;				/* pending op or -1 */
	uint64_t	deadline;
	uint64_t	next_at;
	int			leader_slot;
	int			done_after_heal;
} SimClient;

/* What the checker knows about one log index, cluster-wide. */
typedef struct IndexRec
{
	uint64_t	term;			/* 0: nothing recorded */
	uint64_t	hash;
	uint64_t	commit_term;	/* term in which it was first seen committed */
} IndexRec;

typedef struct Sim
{
	uint64_t	seed;
	uint64_t	rng;
	int			base_n;
	bool		verbose;
	uint64_t	now;
	uint64_t	evclock;

	/* schedule parameters, drawn from the seed */
	RaftOptions ropt;
	bool		lease_reads;
	double		drop_p;
	double		dup_p;
	int			delay_max;
	double		crash_p;
	double		leader_crash_p;	/* extra hazard for leaders ("churn") */
	int			max_down;		/* ticks a crashed node stays down, at most */
	int			partition_every;
	int			fault_ticks;
	int			compact_every;
	int			client_timeout;
	bool		faults_on;

	SimNode		nodes[SIM_MAX_SLOTS];
	bool		cut[SIM_MAX_SLOTS][SIM_MAX_SLOTS];	/* a -> b dropped */
	NetMsg	   *net;
	size_t		n_net;
	size_t		cap_net;
	uint64_t	next_partition;

	SimOp	   *ops;
	int			n_ops;
	int64_t		next_value;
	SimClient	clients[SIM_CLIENTS];
	uint64_t	pending_remove_id;
	uint64_t	pending_remove_index;
	uint64_t	pending_remove_term;

	/* checker records */
	IndexRec   *committed;
	IndexRec   *applied;
	size_t		cap_rec;
	uint64_t	max_committed;
	uint64_t   *leader_of;
	size_t		cap_leader_of;
	uint64_t   *px_keys;		/* (index, term) -> prefix hash */
	uint64_t   *px_vals;
	size_t		px_cap;
	size_t		px_n;

	bool		failed;
	char		property[64];
	char		detail[512];

	/* counters for the summary */
	uint64_t	n_elections;
	uint64_t	n_snapshots;	/* InstallSnapshot received */
	uint64_t	n_conf;			/* membership changes committed */
	uint64_t	n_transfers;	/* leadership transfers started */
	uint64_t	n_lease_reads;
	uint64_t	n_index_reads;
} Sim;

/* sim_check.c */
extern void sim_violation(Sim *S, const char *property, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
extern uint64_t sim_entry_hash(const RaftEntry *e);
extern void sim_check_reset(Sim *S);
extern void sim_check_free(Sim *S);
extern uint64_t sim_prefix_lookup(Sim *S, uint64_t index, uint64_t term,
								  bool *found);
extern void sim_check_persist(Sim *S, SimNode *n, DiskEntry *d, uint64_t prev);
extern void sim_check_apply(Sim *S, SimNode *n, const RaftEntry *e);
extern void sim_check_commit(Sim *S, SimNode *n, uint64_t commit);
extern void sim_check_leaders(Sim *S);

/* lincheck.c */
extern bool lin_check_key(const LinOp *ops, int n, long *states_explored);
extern int	lin_self_test(void);

/* wire_test.c, peers_test.c */
extern int	wire_self_test(void);
extern int	peers_self_test(void);

/* scenarios.c */
extern int	sim_scenarios(void);

/* The command line shared by tests/sim/sim and tests/paxos-sim/paxos-sim. */
typedef struct SimArgs
{
	uint64_t	first;			/* first seed */
	long		count;			/* how many seeds */
	int			nodes;			/* 0: odd seeds 3 nodes, even seeds 5 */
	int			jobs;
	bool		verbose;
	bool		stop_first;
	bool		scenarios;
} SimArgs;

/* sim_util.c */
extern int	sim_parse_args(int argc, char **argv, const char *prog, SimArgs *a);
extern void sim_record_violation(bool *failed, char *property, size_t psize,
								 char *detail, size_t dsize,
								 const char *name, const char *fmt, va_list ap);
extern uint64_t sim_rand(uint64_t *s);
extern uint64_t sim_rand_below(uint64_t *s, uint64_t n);
extern double sim_rand_unit(uint64_t *s);
extern RaftAllocator sim_allocator(void);
extern void *sim_xmalloc(size_t size);
extern void *sim_xrealloc(void *p, size_t size);

#endif							/* SIM_H */
