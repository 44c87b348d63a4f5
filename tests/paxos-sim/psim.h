/*-------------------------------------------------------------------------
 *
 * psim.h
 *	  The Paxos core's simulator: the world (nodes, their disks, the
 *	  network, clients) shared by psim.c, psim_check.c and psim_scenario.c.
 *
 * It shares the Raft simulator's PRNG, allocator and linearizability
 * checker (tests/sim/sim_util.c, lincheck.c through sim.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PSIM_H
#define PSIM_H

#include "../sim/sim.h"
#include "../../extension/paxos/core/paxos.h"

#define PS_MAX_NODES	5
#define PS_DECREES		32		/* decree instances x = 0 .. PS_DECREES - 1 */
#define PS_INSTANCES	(PS_DECREES + SIM_KEYS)	/* register key k: x =
												 * PS_DECREES + k */
#define PS_VALUE_MAX	200		/* bytes in an encoded value */
#define PS_EMPTY		(-1)	/* the value encoded as the empty string */

/* What a disk keeps of one acceptor record (values decoded). */
typedef struct PsDisk
{
	bool		used;
	PaxosBallot promised;
	PaxosBallot accepted;
	int64_t		value;
} PsDisk;

typedef struct PsNode
{
	bool		up;
	PaxosNode  *px;
	uint64_t	restart_at;
	/* the disk: only what a Ready persisted survives a crash */
	uint64_t	round;
	PsDisk		disk[PS_INSTANCES];
	int			decree_inst;	/* decree being proposed: x + 1, 0 = none */
	int64_t		decree_value;
} PsNode;

/* A message in flight: its name and value stand for the core's bytes. */
typedef struct PsMsg
{
	uint64_t	at;
	PaxosMessage m;				/* instance and value not set */
	int			x;
	int64_t		value;
} PsMsg;

/* Every durable acceptance of one ballot: who accepted it, with what. */
typedef struct PsVotes
{
	PaxosBallot ballot;
	int64_t		value;
	uint32_t	mask;			/* acceptors (bit = node index) */
	bool		chosen;			/* a majority of bits */
} PsVotes;

typedef struct PsOp
{
	int			key;
	LinKind		kind;
	int64_t		value;			/* put, cas: written; get: read */
	int64_t		expected;
	bool		swapped;
	uint64_t	call;
	uint64_t	ret;
	OpStatus	status;
} PsOp;

typedef struct PsClient
{
	int			op;				/* pending op, -1 none */
	int			node;			/* the node running it */
	uint64_t	deadline;
	int			done_after_heal;
} PsClient;

typedef struct PSim
{
	uint64_t	seed;
	uint64_t	rng;
	int			n;
	bool		verbose;
	uint64_t	now;
	uint64_t	evclock;

	/* schedule, drawn from the seed */
	double		drop_p;
	double		dup_p;
	int			delay_max;
	double		crash_p;
	int			max_down;
	int			partition_every;
	int			fault_ticks;
	int			client_timeout;
	int			timeout;
	int			backoff;
	bool		faults_on;

	PsNode		nodes[PS_MAX_NODES];
	bool		cut[PS_MAX_NODES][PS_MAX_NODES];
	PsMsg	   *net;
	size_t		n_net;
	size_t		cap_net;

	PsOp	   *ops;
	int			n_ops;
	int64_t		next_value;
	bool		wrote_empty[SIM_KEYS];	/* lincheck wants unique writes */
	PsClient	clients[SIM_CLIENTS];

	/* the checker's record of every acceptance, per instance */
	PsVotes    *votes[PS_INSTANCES];
	int			n_votes[PS_INSTANCES];
	bool		has_first[PS_INSTANCES];
	int64_t		first_value[PS_INSTANCES];	/* a decree's first choice */
	PaxosBallot first_ballot[PS_INSTANCES];

	bool		failed;
	char		property[64];
	char		detail[512];

	/* summary counters */
	long		decisions;		/* decree and register results */
	long		unknown;		/* register writes answered "unknown" */
	long		rounds;			/* prepare phases, summed over results */
	long		fast;			/* register operations with no prepare */
	long		max_rounds;		/* most prepare phases one op needed */
	long		crashes;
} PSim;

/* psim_check.c */
extern void ps_violation(PSim *S, const char *property, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
extern void ps_check_persisted(PSim *S, int node, int x, const PsDisk *a);
extern void ps_check_free(PSim *S);
extern void ps_check_learned(PSim *S, int node, const PaxosLearned *l);
extern void ps_check_decree_result(PSim *S, int node, const PaxosResult *r);
extern void ps_check_final(PSim *S);

/* psim_bytes.c */
extern PaxosBytes ps_inst_name(int x);
extern int	ps_inst_index(PaxosBytes name);
extern PaxosValue ps_encode(int64_t v, unsigned char *buf);
extern bool ps_decode(PaxosValue b, int64_t *v);

/* psim_world.c */
extern bool ps_msg_pack(const PaxosMessage *m, PsMsg *out);
extern void ps_msg_unpack(const PsMsg *in, PaxosMessage *m,
						  unsigned char *buf);

/* psim_scenario.c, psim_limits.c */
extern void ps_expect(int *failures, const char *scenario, bool cond,
					  const char *what, int line);
extern int	ps_seed_scenario(void);
extern int	ps_limits_scenario(void);

/* psim.c */
extern PaxosAllocator ps_allocator(void);

#endif							/* PSIM_H */
