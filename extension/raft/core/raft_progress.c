/*-------------------------------------------------------------------------
 *
 * raft_progress.c
 *	  The leader's replication to each peer: probing for the match point,
 *	  pipelined appends with a bound on messages in flight, snapshots for
 *	  peers behind the compacted log, heartbeats, and the commit rule.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

/*
 * raft_pr: the progress entry for id, or NULL if id is not a member.
 */
RaftProgress *
raft_pr(RaftNode *r, uint64_t id)
{
	int			i;

	for (i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

/*
 * pr_init: a peer we know nothing about: probe from the end of our log.
 */
static void
pr_init(RaftNode *r, RaftProgress *pr, uint64_t id)
{
	memset(pr, 0, sizeof(*pr));
	pr->id = id;
	pr->next = raft_log_last(&r->log) + 1;
	pr->state = PR_PROBE;
}

/*
 * raft_pr_reset_all: fresh progress for every member (new leader).
 */
void
raft_pr_reset_all(RaftNode *r)
{
	r->n_prs = 0;
	raft_pr_sync_conf(r);
	r->read_round = 0;
}

/*
 * raft_pr_sync_conf: add progress for new members and drop it for removed
 * ones, keeping what we know about the others.
 */
void
raft_pr_sync_conf(RaftNode *r)
{
	const RaftConfState *c = &r->conf;
	int			i;
	int			keep = 0;

	r->prs = raft_realloc(r, r->prs, 2 * RAFT_MAX_NODES * sizeof(RaftProgress));
	for (i = 0; i < r->n_prs; i++)
		if (raft_conf_is_voter(c, r->prs[i].id) ||
			raft_conf_is_learner(c, r->prs[i].id))
			r->prs[keep++] = r->prs[i];
	r->n_prs = keep;
	for (i = 0; i < c->n_voters; i++)
		if (raft_pr(r, c->voters[i]) == NULL)
			pr_init(r, &r->prs[r->n_prs++], c->voters[i]);
	for (i = 0; i < c->n_learners; i++)
		if (raft_pr(r, c->learners[i]) == NULL)
			pr_init(r, &r->prs[r->n_prs++], c->learners[i]);
}

/*
 * send_snapshot: the entries pr needs are compacted away: send our
 * snapshot and wait for its answer (or a timeout, see heartbeat_resp).
 */
static void
send_snapshot(RaftNode *r, RaftProgress *pr)
{
	RaftMessage *m = raft_new_msg(r, RAFT_MSG_SNAPSHOT, pr->id);

	m->snapshot = raft_alloc(r, sizeof(RaftSnapshot));
	raft_snapshot_copy(r, m->snapshot, &r->log.snap);
	m->index = r->log.snap.index;
	m->log_term = r->log.snap.term;
	pr->state = PR_SNAPSHOT;
	pr->pending_snapshot = r->log.snap.index;
	pr->snapshot_tick = r->now;
}

/*
 * raft_send_append: send pr the entries from pr->next on, if its state
 * allows (one probe at a time, a bounded pipeline when replicating).
 * empty_ok sends an entry-less append to probe.  Returns whether a message
 * was queued.
 */
bool
raft_send_append(RaftNode *r, RaftProgress *pr, bool empty_ok)
{
	RaftLog    *l = &r->log;
	uint64_t	last = raft_log_last(l);
	uint64_t	prev;
	uint64_t	prev_term;
	uint64_t	n;
	uint64_t	i;
	RaftMessage *m;

	if (pr->id == r->id || pr->state == PR_SNAPSHOT ||
		(pr->state == PR_PROBE && pr->paused) ||
		(pr->state == PR_REPLICATE && pr->inflight_n >= r->opt.max_inflight))
		return false;
	if (pr->next > last + 1)
		pr->next = last + 1;
	if (pr->next < 1)
		pr->next = 1;
	prev = pr->next - 1;
	if (!raft_log_term(l, prev, &prev_term))
	{
		send_snapshot(r, pr);
		return true;
	}
	n = last - prev;
	if (n > (uint64_t) r->opt.max_entries_per_msg)
		n = r->opt.max_entries_per_msg;
	if (n == 0 && !empty_ok)
		return false;

	m = raft_new_msg(r, RAFT_MSG_APPEND, pr->id);
	m->index = prev;
	m->log_term = prev_term;
	m->commit = l->committed;
	m->n_entries = n;
	if (n > 0)
		m->entries = raft_alloc(r, n * sizeof(RaftEntry));
	for (i = 0; i < n; i++)
	{
		const RaftEntry *e = raft_log_get(l, prev + 1 + i);

		m->entries[i] = *e;
		m->entries[i].data = NULL;
		if (e->len > 0)
		{
			m->entries[i].data = raft_alloc(r, e->len);
			memcpy(m->entries[i].data, e->data, e->len);
		}
	}
	if (pr->state == PR_REPLICATE && n > 0)
	{
		pr->next = prev + n + 1;
		pr->inflight[(pr->inflight_head + pr->inflight_n) % RAFT_MAX_INFLIGHT] =
			prev + n;
		pr->inflight_n++;
	}
	else if (pr->state == PR_PROBE)
		pr->paused = true;
	return true;
}

/*
 * send_all: as many appends to pr as its state allows.
 */
static void
send_all(RaftNode *r, RaftProgress *pr, bool empty_ok)
{
	while (raft_send_append(r, pr, empty_ok))
	{
		empty_ok = false;
		if (pr->state != PR_REPLICATE ||
			pr->next > raft_log_last(&r->log))
			break;
	}
}

/*
 * raft_bcast_append: offer new entries to every peer.
 */
void
raft_bcast_append(RaftNode *r, bool empty_ok)
{
	int			i;

	for (i = 0; i < r->n_prs; i++)
		send_all(r, &r->prs[i], empty_ok);
}

/*
 * raft_bcast_heartbeat: keep followers from campaigning, carry the commit
 * index (only as far as each follower is known to match) and start a
 * confirmation round for ReadIndex and the lease.
 */
void
raft_bcast_heartbeat(RaftNode *r)
{
	int			i;

	for (i = 0; i < r->n_prs; i++)
	{
		RaftProgress *pr = &r->prs[i];
		RaftMessage *m;

		if (pr->id == r->id)
			continue;
		m = raft_new_msg(r, RAFT_MSG_HEARTBEAT, pr->id);
		m->commit = pr->match < r->log.committed ? pr->match : r->log.committed;
		m->ctx = r->read_round;
		m->lease_tick = r->now;
	}
}

/*
 * maybe_decrease: a rejected append.  Returns true and moves pr->next back
 * (by a whole term thanks to the follower's hint) unless the rejection is
 * stale.
 */
static bool
maybe_decrease(RaftNode *r, RaftProgress *pr, const RaftMessage *m)
{
	uint64_t	h;
	uint64_t	next;

	if (pr->state == PR_SNAPSHOT)
		return false;
	if (pr->state == PR_REPLICATE && m->index <= pr->match)
		return false;
	if (pr->state == PR_PROBE && m->index != pr->next - 1)
		return false;
	h = raft_log_conflict_hint(&r->log, m->reject_hint, m->log_term);
	next = (m->index < h + 1) ? m->index : h + 1;
	if (next < pr->match + 1)
		next = pr->match + 1;
	pr->next = next;
	return true;
}

/*
 * pr_replicate: switch pr to pipelined replication from its match.
 */
static void
pr_replicate(RaftProgress *pr)
{
	pr->state = PR_REPLICATE;
	pr->next = pr->match + 1;
	pr->paused = false;
	pr->inflight_n = 0;
	pr->inflight_head = 0;
}

/*
 * raft_leader_append_resp: a follower's answer to an append or snapshot.
 */
void
raft_leader_append_resp(RaftNode *r, const RaftMessage *m)
{
	RaftProgress *pr = raft_pr(r, m->from);

	if (pr == NULL || m->index > raft_log_last(&r->log))
		return;
	pr->recent_active = true;
	if (m->reject)
	{
		if (maybe_decrease(r, pr, m))
		{
			pr->state = PR_PROBE;
			pr->paused = false;
			pr->inflight_n = 0;
			send_all(r, pr, true);
		}
		return;
	}
	if (m->index > pr->match)
		pr->match = m->index;
	if (pr->next < m->index + 1)
		pr->next = m->index + 1;
	while (pr->inflight_n > 0 && pr->inflight[pr->inflight_head] <= m->index)
	{
		pr->inflight_head = (pr->inflight_head + 1) % RAFT_MAX_INFLIGHT;
		pr->inflight_n--;
	}
	if (pr->state == PR_PROBE ||
		(pr->state == PR_SNAPSHOT && pr->match >= pr->pending_snapshot))
		pr_replicate(pr);
	/*
	 * A new commit index goes to every follower at once, not with the next
	 * heartbeat: a follower answers a write forwarded to it only once it
	 * has applied it, so waiting for the heartbeat cost a client writing
	 * through a follower up to a heartbeat interval per write.
	 */
	if (raft_maybe_commit(r) && r->role == RAFT_LEADER)
		raft_bcast_append(r, true);
	if (r->role != RAFT_LEADER)
		return;
	send_all(r, pr, false);
	raft_transfer_check(r, pr);
}

/*
 * raft_leader_heartbeat_resp: the peer is alive; record its
 * acknowledgement of the read round and lease tick, resume a paused probe
 * retry a snapshot that got no answer for an election timeout, and
 * resend what the peer lacks.
 */
void
raft_leader_heartbeat_resp(RaftNode *r, const RaftMessage *m)
{
	RaftProgress *pr = raft_pr(r, m->from);

	if (pr == NULL)
		return;
	pr->recent_active = true;
	if (m->ctx > pr->acked_ctx)
		pr->acked_ctx = m->ctx;
	if (m->lease_tick > pr->acked_tick)
		pr->acked_tick = m->lease_tick;
	pr->paused = false;
	if (pr->state == PR_SNAPSHOT &&
		r->now - pr->snapshot_tick >= (uint64_t) r->opt.election_min)
		pr->state = PR_PROBE;
	if (pr->match < raft_log_last(&r->log))
	{
		/*
		 * Appends may have been lost: free a pipeline slot and send even an
		 * empty append, which the follower rejects if it has a gap; the
		 * rejection moves pr back to where the follower really is.
		 */
		if (pr->state == PR_REPLICATE && pr->inflight_n > 0)
		{
			pr->inflight_head = (pr->inflight_head + 1) % RAFT_MAX_INFLIGHT;
			pr->inflight_n--;
		}
		send_all(r, pr, true);
	}
	raft_reads_advance(r);
}

/*
 * raft_quorum_value: the largest value that a majority of voters has
 * reached, for which = 0 (match index), 1 (acknowledged read round) or 2
 * (acknowledged lease tick).  The leader's own values: its synced log,
 * the current round, now.
 */
uint64_t
raft_quorum_value(RaftNode *r, int which)
{
	uint64_t	v[RAFT_MAX_NODES];
	int			n = r->conf.n_voters;
	int			i;
	int			j;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
	{
		RaftProgress *pr = raft_pr(r, r->conf.voters[i]);
		uint64_t	x = 0;

		if (r->conf.voters[i] == r->id)
			x = which == 0 ? r->log.stable :
				which == 1 ? r->read_round : r->now;
		else if (pr != NULL)
			x = which == 0 ? pr->match :
				which == 1 ? pr->acked_ctx : pr->acked_tick;
		/* insertion sort, descending */
		for (j = i; j > 0 && v[j - 1] < x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
	return v[raft_quorum(n) - 1];
}

/*
 * raft_maybe_commit: advance the commit index to what a majority has
 * replicated, but only through an entry of the current term: counting
 * replicas of an older term's entry is not enough (Raft paper, figure 8).
 * Returns whether the commit index moved.
 */
bool
raft_maybe_commit(RaftNode *r)
{
	uint64_t	mci;
	uint64_t	t = 0;

	if (r->role != RAFT_LEADER)
		return false;
	mci = raft_quorum_value(r, 0);
	if (mci <= r->log.committed)
		return false;
	raft_log_term(&r->log, mci, &t);
#ifndef RAFT_MUTANT_COMMIT_OLD_TERM	/* MUTANT: count old-term replicas */
	if (t != r->term)
		return false;
#endif
	r->log.committed = mci;
	raft_reads_advance(r);
	raft_conf_after_commit(r);
	return true;
}

/*
 * raft_quorum_active: CheckQuorum.  Whether a majority of voters was heard
 * from since the last check; clears the marks for the next period.
 */
bool
raft_quorum_active(RaftNode *r)
{
	int			active = 0;
	int			i;

	for (i = 0; i < r->conf.n_voters; i++)
	{
		RaftProgress *pr = raft_pr(r, r->conf.voters[i]);

		if (r->conf.voters[i] == r->id || (pr != NULL && pr->recent_active))
			active++;
	}
	for (i = 0; i < r->n_prs; i++)
		r->prs[i].recent_active = false;
	return active >= raft_quorum(r->conf.n_voters);
}

/*
 * raft_match_index: on a leader, the highest index known replicated on
 * peer (its own synced log for itself); 0 elsewhere or for a non-member.
 */
uint64_t
raft_match_index(const RaftNode *node, uint64_t peer)
{
	int			i;

	if (node->role != RAFT_LEADER)
		return 0;
	if (peer == node->id)
		return node->log.stable;
	for (i = 0; i < node->n_prs; i++)
		if (node->prs[i].id == peer)
			return node->prs[i].match;
	return 0;
}
