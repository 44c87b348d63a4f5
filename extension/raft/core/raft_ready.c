/*-------------------------------------------------------------------------
 *
 * raft_ready.c
 *	  The hand-off to the caller: the Ready batch (what to persist, send and
 *	  apply), raft_advance, and the read-only views of a node.
 *
 * See raft.h for the order in which the caller handles a Ready and why
 * persisting comes before sending.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

/*
 * raft_has_ready: whether raft_ready would hand out anything.  On a leader
 * it first turns the proposals made since the last Ready into appends (one
 * message per peer for all of them) and recomputes the commit index.
 */
bool
raft_has_ready(RaftNode *node)
{
	RaftNode   *r = node;

	if (r->need_bcast && r->role == RAFT_LEADER)
	{
		r->need_bcast = false;
		raft_bcast_append(r, false);
	}
	if (r->role == RAFT_LEADER)
		raft_maybe_commit(r);
	return r->n_msgs > 0 || r->n_reads > 0 || r->log.snap_unsent ||
		r->log.stable < raft_log_last(&r->log) ||
		r->log.applied < r->log.committed ||
		r->term != r->prev_hs.term || r->vote != r->prev_hs.vote ||
		r->log.committed != r->prev_hs.commit;
}

/*
 * raft_ready: fill rd with everything to persist, send and apply (see
 * raft.h for what the caller does with it).  Committed entries may include
 * entries not yet persisted here: they are on a majority already.
 */
void
raft_ready(RaftNode *node, RaftReady *rd)
{
	RaftNode   *r = node;
	RaftLog    *l = &r->log;
	uint64_t	first;
	uint64_t	apply_from;
	uint64_t	apply_to = l->committed;

	(void) raft_has_ready(r);
	memset(rd, 0, sizeof(*rd));
	rd->hs.term = r->term;
	rd->hs.vote = r->vote;
	rd->hs.commit = l->committed;
	rd->hs_changed = memcmp(&rd->hs, &r->prev_hs, sizeof(rd->hs)) != 0;
	rd->snapshot = l->snap_unsent ? &l->snap : NULL;

	first = (l->stable > l->snap.index ? l->stable : l->snap.index) + 1;
	if (first <= raft_log_last(l))
	{
		rd->entries = raft_log_get(l, first);
		rd->n_entries = raft_log_last(l) - first + 1;
	}

#ifdef RAFT_MUTANT_APPLY_UNCOMMITTED
	apply_to = raft_log_last(l);	/* MUTANT: apply before commit */
#endif
	apply_from = (l->applied > l->snap.index ? l->applied : l->snap.index) + 1;
	if (apply_from <= apply_to)
	{
		rd->committed = raft_log_get(l, apply_from);
		rd->n_committed = apply_to - apply_from + 1;
	}
	rd->msgs = r->msgs;
	rd->n_msgs = r->n_msgs;
	rd->reads = r->reads;
	rd->n_reads = r->n_reads;

	r->ready_stable = raft_log_last(l);
	r->ready_applied = rd->n_committed ? apply_to : l->applied;
	r->ready_snap = l->snap_unsent;
}

/*
 * raft_msg_free: release what an outgoing message owns.
 */
void
raft_msg_free(RaftNode *r, RaftMessage *m)
{
	size_t		j;

	for (j = 0; j < m->n_entries; j++)
		raft_dealloc(r, m->entries[j].data);
	raft_dealloc(r, m->entries);
	if (m->snapshot != NULL)
		raft_dealloc(r, m->snapshot->data);
	raft_dealloc(r, m->snapshot);
}

/*
 * raft_advance: the caller has persisted, sent and applied what rd held.
 * The leader's own entries now count towards commit.
 */
void
raft_advance(RaftNode *node, const RaftReady *rd)
{
	RaftNode   *r = node;
	size_t		i;

	for (i = 0; i < r->n_msgs; i++)
		raft_msg_free(r, &r->msgs[i]);
	r->n_msgs = 0;
	r->n_reads = 0;
	r->prev_hs = rd->hs;
	r->log.stable = r->ready_stable;
	if (r->ready_snap)
	{
		r->log.snap_unsent = false;
		if (r->log.applied < r->log.snap.index)
			r->log.applied = r->log.snap.index;
	}
	if (r->ready_applied > r->log.applied)
		r->log.applied = r->ready_applied;
	if (r->role == RAFT_LEADER)
		raft_maybe_commit(r);
}

/*
 * raft_role, raft_id, raft_term, raft_leader, raft_commit_index,
 * raft_applied_index, raft_first_index, raft_last_index, raft_entry_at,
 * raft_snapshot, raft_conf: read-only views of the node (see raft.h);
 * pointers stay valid until the next call that changes the node.
 */
RaftRole
raft_role(const RaftNode *node)
{
	return node->role;
}

uint64_t
raft_id(const RaftNode *node)
{
	return node->id;
}

uint64_t
raft_term(const RaftNode *node)
{
	return node->term;
}

uint64_t
raft_leader(const RaftNode *node)
{
	return node->lead;
}

uint64_t
raft_commit_index(const RaftNode *node)
{
	return node->log.committed;
}

uint64_t
raft_applied_index(const RaftNode *node)
{
	return node->log.applied;
}

uint64_t
raft_first_index(const RaftNode *node)
{
	return node->log.snap.index + 1;
}

uint64_t
raft_last_index(const RaftNode *node)
{
	return raft_log_last(&node->log);
}

const RaftEntry *
raft_entry_at(const RaftNode *node, uint64_t index)
{
	return raft_log_get(&node->log, index);
}

const RaftSnapshot *
raft_snapshot(const RaftNode *node)
{
	return &node->log.snap;
}

const RaftConfState *
raft_conf(const RaftNode *node)
{
	return &node->conf;
}
