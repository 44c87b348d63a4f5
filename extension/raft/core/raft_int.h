/*-------------------------------------------------------------------------
 *
 * raft_int.h
 *	  The Raft core's internal state, shared by its files only.
 *
 * Known-wrong variants (mutants) of the core are selected at build time
 * with -DRAFT_MUTANT_<NAME>; each is one marked #ifdef block in the .c
 * files.  They exist so that the simulator can prove it catches them
 * (tests/sim, 'make sim-mutants'); a production build defines none:
 *	COMMIT_OLD_TERM		commit an old term's entry by counting replicas
 *	VOTE_NO_LOG_CHECK	grant a vote without the up-to-date log check
 *	APPLY_UNCOMMITTED	hand out entries to apply before they commit
 *	NO_TRUNCATE			a follower keeps a conflicting suffix
 *	READ_NO_CONFIRM		ReadIndex without its heartbeat round
 *	FORGET_VOTE			a restart forgets the vote it persisted
 * (SEND_BEFORE_PERSIST is a mutant of the caller: tests/sim/sim_node.c.)
 *
 *-------------------------------------------------------------------------
 */
#ifndef RAFT_INT_H
#define RAFT_INT_H

#include "raft.h"

#define RAFT_MAX_INFLIGHT	256

typedef enum RaftPrState
{
	PR_PROBE,					/* one append at a time until a match */
	PR_REPLICATE,				/* pipelined appends */
	PR_SNAPSHOT					/* waiting for an InstallSnapshot answer */
} RaftPrState;

/* The leader's view of one peer (and of itself, with id == node id). */
typedef struct RaftProgress
{
	uint64_t	id;
	uint64_t	match;			/* highest index known replicated */
	uint64_t	next;			/* next index to send */
	RaftPrState state;
	bool		paused;			/* probe sent, waiting */
	bool		recent_active;	/* heard from since the last quorum check */
	uint64_t	pending_snapshot;	/* index of the snapshot sent */
	uint64_t	snapshot_tick;	/* when it was sent */
	uint64_t	acked_ctx;		/* highest heartbeat round acknowledged */
	uint64_t	acked_tick;		/* leader tick of that heartbeat */
	int			inflight_n;		/* last index of each append in flight */
	int			inflight_head;
	uint64_t	inflight[RAFT_MAX_INFLIGHT];
} RaftProgress;

/* A ReadIndex request waiting for its heartbeat round and the no-op. */
typedef struct RaftPendingRead
{
	uint64_t	index;
	uint64_t	ctx;
	uint64_t	round;
} RaftPendingRead;

/*
 * The log: a snapshot (index, term, configuration, data) followed by the
 * entries after it.  ents[k].index == snap.index + 1 + k.  Entries up to
 * stable are on the caller's disk; up to applied have been handed out.
 */
typedef struct RaftLog
{
	RaftEntry  *ents;
	size_t		n;
	size_t		cap;
	RaftSnapshot snap;
	bool		snap_unsent;	/* received snapshot not yet in a Ready */
	uint64_t	stable;
	uint64_t	committed;
	uint64_t	applied;
} RaftLog;

struct RaftNode
{
	RaftOptions opt;
	uint64_t	id;
	RaftRole	role;
	uint64_t	term;
	uint64_t	vote;
	uint64_t	lead;
	RaftLog		log;

	/* configuration in force: the latest in the log, committed or not */
	RaftConfState conf;
	uint64_t	conf_index;		/* entry that set it (0: snapshot/bootstrap) */
	uint64_t	pending_conf_index; /* leader: last conf change proposed */

	/* leader state */
	RaftProgress *prs;			/* one per member of conf, incl. self */
	int			n_prs;
	uint64_t	term_start;		/* index of this term's no-op */
	uint64_t	transferee;
	int			transfer_elapsed;
	bool		lease_forbidden;	/* TimeoutNow sent in this term */
	uint64_t	read_round;		/* heartbeat rounds started */
	RaftPendingRead *reads_pending;
	int			n_reads_pending;
	int			cap_reads_pending;
	bool		need_bcast;		/* new entries not yet offered to peers */

	/* candidate state: votes[i] for voter i: 0 none, 1 granted, -1 refused */
	int8_t		votes[RAFT_MAX_NODES];
	bool		campaign_forced;

	/* timers, in ticks */
	uint64_t	now;
	int			election_elapsed;
	int			heartbeat_elapsed;
	int			random_timeout;
	int			since_leader;	/* since we last heard from a leader */
	uint64_t	rng;

	/* the Ready being built */
	RaftMessage *msgs;
	size_t		n_msgs;
	size_t		cap_msgs;
	RaftReadState *reads;
	size_t		n_reads;
	size_t		cap_reads;
	RaftHardState prev_hs;
	uint64_t	ready_stable;	/* what the last raft_ready handed out */
	uint64_t	ready_applied;
	bool		ready_snap;
};

/* raft.c */
extern void *raft_alloc(RaftNode *r, size_t size);
extern void *raft_realloc(RaftNode *r, void *p, size_t size);
extern void raft_dealloc(RaftNode *r, void *p);
extern RaftMessage *raft_new_msg(RaftNode *r, RaftMsgType type, uint64_t to);
extern void raft_become_follower(RaftNode *r, uint64_t term, uint64_t lead);
extern void raft_start_election(RaftNode *r, bool pre, bool force);
extern int	raft_quorum(int n_voters);

/* raft_ready.c */
extern void raft_msg_free(RaftNode *r, RaftMessage *m);

/* raft_log.c */
extern uint64_t raft_log_last(const RaftLog *l);
extern uint64_t raft_log_last_term(const RaftLog *l);
extern bool raft_log_term(const RaftLog *l, uint64_t index, uint64_t *term);
extern RaftEntry *raft_log_get(const RaftLog *l, uint64_t index);
extern void raft_log_put(RaftNode *r, const RaftEntry *e);
extern void raft_log_truncate(RaftNode *r, uint64_t from);
extern void raft_log_free(RaftNode *r);
extern void raft_log_restore_snapshot(RaftNode *r, const RaftSnapshot *s);
extern void raft_snapshot_copy(RaftNode *r, RaftSnapshot *dst,
							   const RaftSnapshot *src);
extern uint64_t raft_log_conflict_hint(const RaftLog *l, uint64_t index,
									   uint64_t term);

/* raft_progress.c */
extern RaftProgress *raft_pr(RaftNode *r, uint64_t id);
extern void raft_pr_reset_all(RaftNode *r);
extern void raft_pr_sync_conf(RaftNode *r);
extern bool raft_send_append(RaftNode *r, RaftProgress *pr, bool empty_ok);
extern void raft_bcast_append(RaftNode *r, bool empty_ok);
extern void raft_bcast_heartbeat(RaftNode *r);
extern void raft_leader_append_resp(RaftNode *r, const RaftMessage *m);
extern void raft_leader_heartbeat_resp(RaftNode *r, const RaftMessage *m);
extern bool raft_maybe_commit(RaftNode *r);
extern uint64_t raft_quorum_value(RaftNode *r, int which);
extern bool raft_quorum_active(RaftNode *r);

/* raft_conf.c */
extern void raft_conf_recompute(RaftNode *r);
extern void raft_conf_apply_entry(RaftNode *r, const RaftEntry *e);
extern void raft_conf_state_apply(RaftConfState *c, const RaftEntry *e);
extern bool raft_promotable(const RaftNode *r);
extern void raft_conf_after_commit(RaftNode *r);
extern void raft_transfer_check(RaftNode *r, RaftProgress *pr);

/* raft_read.c */
extern void raft_reads_advance(RaftNode *r);
extern void raft_reads_clear(RaftNode *r);
extern void raft_push_read_state(RaftNode *r, uint64_t index, uint64_t ctx);

#endif							/* RAFT_INT_H */
