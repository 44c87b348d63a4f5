/*-------------------------------------------------------------------------
 *
 * raft.h
 *	  The Raft consensus core: a pure state machine with no I/O.
 *
 * The caller owns every side effect.  It feeds the core ticks (raft_tick),
 * incoming messages (raft_step) and client requests (raft_propose,
 * raft_propose_conf_change, raft_read_index, raft_read_lease,
 * raft_transfer_leadership); the core answers with a Ready batch:
 *
 *		while (raft_has_ready(node))
 *		{
 *			raft_ready(node, &rd);
 *			1. persist rd.snapshot (if any), then rd.entries (first drop every
 *			   stored entry whose index is >= rd.entries[0].index), then
 *			   rd.hs (if rd.hs_changed), and sync;
 *			2. only then send rd.msgs;
 *			3. restore the state machine from rd.snapshot (if any), apply
 *			   rd.committed in order, serve rd.reads once the state machine
 *			   has applied rd.reads[i].index;
 *			raft_advance(node, &rd);
 *		}
 *
 * Persisting must precede sending: a vote or an append acknowledgement that
 * leaves the node before the state it promises is on disk can be forgotten
 * by a crash, and two leaders per term or a lost committed entry follow.
 * No other raft_* call may come between raft_ready and raft_advance;
 * everything rd points to belongs to the core and stays valid until
 * raft_advance (copy what must outlive it, e.g. messages queued for later
 * sending).
 *
 * Time is ticks only (raft_tick); the core never reads a clock.  Randomness
 * (election timeouts) comes from a PRNG seeded by RaftOptions.seed, so a
 * run is a pure function of its inputs and can be replayed.
 *
 * Memory: the core allocates only through the RaftAllocator it is given
 * (RaftOptions.alloc): the node itself, its in-memory log (entries and
 * their payloads since the last snapshot), the current snapshot's data,
 * per-peer progress and the pending Ready (messages with copied entries,
 * read states).  The functions must not return NULL: they either succeed
 * or do not return (palloc raises an error; a malloc wrapper aborts).  The
 * core is single-threaded: one node, one caller thread at a time.
 *
 * This header includes no PostgreSQL header and the core depends on the C
 * library only for memcpy/memmove/memset.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RAFT_H
#define RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_NONE			0		/* no node: node ids start at 1 */
#define RAFT_MAX_NODES		16		/* voters + learners in one configuration */

/* Results of the raft_* calls that can refuse. */
#define RAFT_OK					0
#define RAFT_ERR_NOT_LEADER		(-1)	/* ask the leader (raft_leader) */
#define RAFT_ERR_BUSY			(-2)	/* transfer or config change pending */
#define RAFT_ERR_NOT_CAUGHT_UP	(-3)	/* learner too far behind to promote */
#define RAFT_ERR_INVALID		(-4)	/* bad argument */
#define RAFT_ERR_NO_LEASE		(-5)	/* lease not held: use ReadIndex */

/*
 * RaftAllocator: how the core gets memory.  ctx is passed back unchanged.
 * None of the functions may return NULL (see the header comment);
 * free_fn(ctx, NULL) must be harmless.
 */
typedef struct RaftAllocator
{
	void	   *(*alloc_fn) (void *ctx, size_t size);
	void	   *(*realloc_fn) (void *ctx, void *ptr, size_t size);
	void		(*free_fn) (void *ctx, void *ptr);
	void	   *ctx;
} RaftAllocator;

typedef enum RaftRole
{
	RAFT_FOLLOWER,
	RAFT_PRE_CANDIDATE,
	RAFT_CANDIDATE,
	RAFT_LEADER
} RaftRole;

typedef enum RaftEntryType
{
	RAFT_ENTRY_NORMAL,			/* a client command: opaque bytes */
	RAFT_ENTRY_NOOP,			/* appended by each new leader */
	RAFT_ENTRY_CONF				/* a membership change (raft_conf_decode) */
} RaftEntryType;

typedef struct RaftEntry
{
	uint64_t	term;
	uint64_t	index;
	RaftEntryType type;
	size_t		len;
	uint8_t    *data;			/* len bytes, owned by whoever owns the entry */
} RaftEntry;

/* A configuration: voters count for elections and commit, learners do not. */
typedef struct RaftConfState
{
	int			n_voters;
	int			n_learners;
	uint64_t	voters[RAFT_MAX_NODES];
	uint64_t	learners[RAFT_MAX_NODES];
} RaftConfState;

typedef enum RaftConfChangeType
{
	RAFT_CONF_ADD_LEARNER,		/* new node, receives the log, no vote */
	RAFT_CONF_PROMOTE,			/* a caught-up learner becomes a voter */
	RAFT_CONF_REMOVE			/* a voter or learner leaves */
} RaftConfChangeType;

/*
 * RaftSnapshot: the state machine as of index/term, with the configuration
 * in force at that index.  data is the caller's own serialisation.
 */
typedef struct RaftSnapshot
{
	uint64_t	index;
	uint64_t	term;
	RaftConfState conf;
	size_t		len;
	uint8_t    *data;
} RaftSnapshot;

/* What must be on stable storage before anything is sent. */
typedef struct RaftHardState
{
	uint64_t	term;
	uint64_t	vote;
	uint64_t	commit;
} RaftHardState;

typedef enum RaftMsgType
{
	RAFT_MSG_PREVOTE,			/* index/log_term = candidate's last entry */
	RAFT_MSG_PREVOTE_RESP,
	RAFT_MSG_VOTE,
	RAFT_MSG_VOTE_RESP,
	RAFT_MSG_APPEND,			/* index/log_term = entry before entries */
	RAFT_MSG_APPEND_RESP,		/* index = last matching (or rejected) */
	RAFT_MSG_HEARTBEAT,
	RAFT_MSG_HEARTBEAT_RESP,
	RAFT_MSG_SNAPSHOT,			/* InstallSnapshot, whole snapshot */
	RAFT_MSG_TIMEOUT_NOW		/* leadership transfer: campaign now */
} RaftMsgType;

/*
 * RaftMessage: one message between nodes.  The caller serialises it as it
 * likes; every field must arrive unchanged.  entries and snapshot are
 * owned by the core until raft_advance (for outgoing messages) or by the
 * caller (for raft_step, which copies what it keeps).
 */
typedef struct RaftMessage
{
	RaftMsgType type;
	uint64_t	from;
	uint64_t	to;
	uint64_t	term;
	uint64_t	log_term;
	uint64_t	index;
	uint64_t	commit;
	bool		reject;
	bool		force;			/* vote for a leadership transfer */
	uint64_t	reject_hint;	/* append reject: follower's best guess */
	uint64_t	ctx;			/* heartbeat round (ReadIndex), echoed */
	uint64_t	lease_tick;		/* leader tick of the heartbeat, echoed */
	size_t		n_entries;
	RaftEntry  *entries;
	RaftSnapshot *snapshot;		/* RAFT_MSG_SNAPSHOT only */
} RaftMessage;

/* A read that is linearizable once the state machine applied index. */
typedef struct RaftReadState
{
	uint64_t	index;
	uint64_t	ctx;
} RaftReadState;

/* See the header comment for the order in which the caller handles these. */
typedef struct RaftReady
{
	bool		hs_changed;
	RaftHardState hs;
	const RaftSnapshot *snapshot;	/* received by InstallSnapshot, or NULL */
	const RaftEntry *entries;		/* to persist */
	size_t		n_entries;
	const RaftMessage *msgs;		/* to send after persisting */
	size_t		n_msgs;
	const RaftEntry *committed;		/* to apply, in order */
	size_t		n_committed;
	const RaftReadState *reads;
	size_t		n_reads;
} RaftReady;

typedef struct RaftOptions
{
	uint64_t	id;				/* this node, >= 1 */
	RaftConfState bootstrap;	/* configuration before any log entry */
	int			election_min;	/* election timeout range, in ticks: */
	int			election_max;	/* uniform in [min, max]; default 150-300 */
	int			heartbeat_ticks;	/* default 15 */
	bool		pre_vote;		/* default on */
	bool		check_quorum;	/* default on; lease reads need it */
	int			lease_ticks;	/* 0: lease reads off; < election_min */
	int			max_entries_per_msg;	/* default 64 */
	int			max_inflight;	/* appends in flight per peer, default 32 */
	uint64_t	seed;			/* election timeout PRNG */
	RaftAllocator alloc;
} RaftOptions;

/*
 * RaftRestore: what a restarting node read back from stable storage: the
 * last synced hard state, snapshot (or NULL) and the entries after it.
 * The caller restores its state machine from the snapshot itself; the
 * entries up to hs.commit come out again as committed.
 */
typedef struct RaftRestore
{
	RaftHardState hs;
	const RaftSnapshot *snapshot;
	const RaftEntry *entries;
	size_t		n_entries;
} RaftRestore;

typedef struct RaftNode RaftNode;

/* raft.c: life cycle, ticks, messages, proposals. */
extern void raft_default_options(RaftOptions *opt);
extern RaftNode *raft_new(const RaftOptions *opt, const RaftRestore *restore);
extern void raft_free(RaftNode *node);
extern void raft_tick(RaftNode *node);
extern int	raft_step(RaftNode *node, const RaftMessage *m);
extern int	raft_propose(RaftNode *node, const void *data, size_t len,
						 uint64_t *index);
extern int	raft_campaign(RaftNode *node);

/* raft_ready.c: the hand-off to the caller, and read-only views. */
extern bool raft_has_ready(RaftNode *node);
extern void raft_ready(RaftNode *node, RaftReady *rd);
extern void raft_advance(RaftNode *node, const RaftReady *rd);
extern RaftRole raft_role(const RaftNode *node);
extern uint64_t raft_id(const RaftNode *node);
extern uint64_t raft_term(const RaftNode *node);
extern uint64_t raft_leader(const RaftNode *node);
extern uint64_t raft_commit_index(const RaftNode *node);
extern uint64_t raft_applied_index(const RaftNode *node);
extern uint64_t raft_first_index(const RaftNode *node);
extern uint64_t raft_last_index(const RaftNode *node);
extern const RaftEntry *raft_entry_at(const RaftNode *node, uint64_t index);
extern const RaftSnapshot *raft_snapshot(const RaftNode *node);
extern const RaftConfState *raft_conf(const RaftNode *node);
extern uint64_t raft_match_index(const RaftNode *node, uint64_t peer);

/* raft_log.c: compaction. */
extern int	raft_compact(RaftNode *node, uint64_t index, const void *data,
						 size_t len);

/* raft_conf.c: membership. */
extern int	raft_propose_conf_change(RaftNode *node, RaftConfChangeType type,
									 uint64_t peer, uint64_t *index);
extern bool raft_conf_decode(const RaftEntry *e, RaftConfChangeType *type,
							 uint64_t *peer);
extern bool raft_conf_is_voter(const RaftConfState *c, uint64_t id);
extern bool raft_conf_is_learner(const RaftConfState *c, uint64_t id);
extern int	raft_transfer_leadership(RaftNode *node, uint64_t target);

/* raft_read.c: linearizable reads. */
extern int	raft_read_index(RaftNode *node, uint64_t ctx);
extern int	raft_read_lease(RaftNode *node, uint64_t ctx);

#endif							/* RAFT_H */
