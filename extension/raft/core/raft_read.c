/*-------------------------------------------------------------------------
 *
 * raft_read.c
 *	  Linearizable reads without writing to the log: ReadIndex and, as an
 *	  opt-in, leader leases.
 *
 * ReadIndex: the leader notes its commit index, then confirms it is still
 * leader by a heartbeat round that a majority acknowledges; a read served
 * once the state machine has applied that index sees every write that
 * completed before the read began.  The index is only trusted once the
 * leader's no-op of its term has committed (before that, the leader may
 * not know the latest commit index).
 *
 * Leases: a majority acknowledged a heartbeat the leader sent at tick s;
 * each of those followers then refuses to vote for anybody else until one
 * election_min after it received it (in_lease in raft.c; a restarting node
 * does the same), so no other leader can exist before s + election_min.
 * The leader serves reads locally until s + lease_ticks, lease_ticks <
 * election_min.  The clock assumption: ticks on different nodes advance at
 * rates that differ by less than the margin election_min - lease_ticks
 * over an election timeout (bounded drift, no pause longer than that
 * margin between a tick's time and the read).  Leases also need
 * CheckQuorum (which enables the vote refusal); they are off by default.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

/*
 * raft_push_read_state: hand a read to the caller in the next Ready.
 */
void
raft_push_read_state(RaftNode *r, uint64_t index, uint64_t ctx)
{
	if (r->n_reads == r->cap_reads)
	{
		r->cap_reads = r->cap_reads ? r->cap_reads * 2 : 16;
		r->reads = raft_realloc(r, r->reads,
								r->cap_reads * sizeof(RaftReadState));
	}
	r->reads[r->n_reads].index = index;
	r->reads[r->n_reads].ctx = ctx;
	r->n_reads++;
}

/*
 * raft_read_index: start a linearizable read tagged ctx.  Returns RAFT_OK
 * (a RaftReadState with ctx comes out in a later Ready, or never if
 * leadership is lost: the caller times out) or RAFT_ERR_NOT_LEADER.
 */
int
raft_read_index(RaftNode *node, uint64_t ctx)
{
	RaftNode   *r = node;
	RaftPendingRead *p;

	if (r->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	if (r->n_reads_pending == r->cap_reads_pending)
	{
		r->cap_reads_pending = r->cap_reads_pending ?
			r->cap_reads_pending * 2 : 16;
		r->reads_pending =
			raft_realloc(r, r->reads_pending,
						 r->cap_reads_pending * sizeof(RaftPendingRead));
	}
	p = &r->reads_pending[r->n_reads_pending++];
	p->index = r->log.committed;
	p->ctx = ctx;
	p->round = ++r->read_round;
	raft_bcast_heartbeat(r);
	raft_reads_advance(r);
	return RAFT_OK;
}

/*
 * raft_reads_advance: release the pending reads whose heartbeat round a
 * majority acknowledged, once this term's no-op has committed.
 */
void
raft_reads_advance(RaftNode *r)
{
	uint64_t	acked;
	int			done = 0;

	if (r->role != RAFT_LEADER || r->n_reads_pending == 0 ||
		r->log.committed < r->term_start)
		return;
	acked = raft_quorum_value(r, 1);
#ifdef RAFT_MUTANT_READ_NO_CONFIRM
	acked = UINT64_MAX;			/* MUTANT: no heartbeat round confirms */
#endif
	while (done < r->n_reads_pending && r->reads_pending[done].round <= acked)
	{
		RaftPendingRead *p = &r->reads_pending[done];
		uint64_t	index = p->index > r->term_start ? p->index : r->term_start;

		raft_push_read_state(r, index, p->ctx);
		done++;
	}
	memmove(r->reads_pending, r->reads_pending + done,
			(r->n_reads_pending - done) * sizeof(RaftPendingRead));
	r->n_reads_pending -= done;
}

/*
 * raft_reads_clear: leadership lost: pending reads will never be answered.
 */
void
raft_reads_clear(RaftNode *r)
{
	r->n_reads_pending = 0;
}

/*
 * raft_read_lease: serve a read tagged ctx at once from the leader's
 * lease (see the header comment for the clock assumption).  Returns
 * RAFT_OK (the read state is in the next Ready), RAFT_ERR_NOT_LEADER, or
 * RAFT_ERR_NO_LEASE (leases off, lease lapsed, no-op not committed, or a
 * transfer started in this term): use raft_read_index then.
 */
int
raft_read_lease(RaftNode *node, uint64_t ctx)
{
	RaftNode   *r = node;
	uint64_t	start;

	if (r->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	if (r->opt.lease_ticks <= 0 || !r->opt.check_quorum ||
		r->lease_forbidden || r->transferee != RAFT_NONE ||
		r->log.committed < r->term_start)
		return RAFT_ERR_NO_LEASE;
	start = raft_quorum_value(r, 2);
	if (start == 0 || r->now >= start + (uint64_t) r->opt.lease_ticks)
		return RAFT_ERR_NO_LEASE;
	raft_push_read_state(r, r->log.committed, ctx);
	return RAFT_OK;
}
