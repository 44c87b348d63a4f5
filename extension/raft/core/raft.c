/*-------------------------------------------------------------------------
 *
 * raft.c
 *	  The Raft node: life cycle, roles, elections (with PreVote), ticks,
 *	  message dispatch, the follower's side of replication and proposals.
 *
 * Replication to peers is in raft_progress.c, membership and leadership
 * transfer in raft_conf.c, reads in raft_read.c, the log in raft_log.c,
 * the Ready hand-off to the caller in raft_ready.c.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

static void become_candidate(RaftNode *r, bool pre);
static void become_leader(RaftNode *r);
static void reset_timers(RaftNode *r);
static void step_vote_request(RaftNode *r, const RaftMessage *m);
static void step_vote_resp(RaftNode *r, const RaftMessage *m);
static void handle_append(RaftNode *r, const RaftMessage *m);
static void handle_heartbeat(RaftNode *r, const RaftMessage *m);
static void handle_snapshot(RaftNode *r, const RaftMessage *m);
static void commit_to(RaftNode *r, uint64_t index);
static bool step_term(RaftNode *r, const RaftMessage *m);

/*
 * raft_alloc, raft_realloc, raft_dealloc: the caller's allocator.
 */
void *
raft_alloc(RaftNode *r, size_t size)
{
	return r->opt.alloc.alloc_fn(r->opt.alloc.ctx, size);
}

void *
raft_realloc(RaftNode *r, void *p, size_t size)
{
	return r->opt.alloc.realloc_fn(r->opt.alloc.ctx, p, size);
}

void
raft_dealloc(RaftNode *r, void *p)
{
	if (p != NULL)
		r->opt.alloc.free_fn(r->opt.alloc.ctx, p);
}

/*
 * rng_next: xorshift64*; the node's only source of randomness, seeded by
 * the caller so that a run can be replayed.
 */
static uint64_t
rng_next(RaftNode *r)
{
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 2685821657736338717ULL;
}

/*
 * raft_quorum: how many voters make a majority.
 */
int
raft_quorum(int n_voters)
{
	return n_voters / 2 + 1;
}

/*
 * raft_default_options: the defaults documented in raft.h; the caller
 * still sets id, bootstrap, seed and alloc.
 */
void
raft_default_options(RaftOptions *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->election_min = 150;
	opt->election_max = 300;
	opt->heartbeat_ticks = 15;
	opt->pre_vote = true;
	opt->check_quorum = true;
	opt->lease_ticks = 0;
	opt->max_entries_per_msg = 64;
	opt->max_inflight = 32;
}

/*
 * raft_new: a node, either fresh (restore == NULL: empty log, bootstrap
 * configuration) or restarting from what the caller had persisted.  Every
 * restarting node assumes a leader may be alive and refuses votes for one
 * election timeout, which keeps leases safe across its crash.
 */
RaftNode *
raft_new(const RaftOptions *opt, const RaftRestore *restore)
{
	RaftNode   *r = opt->alloc.alloc_fn(opt->alloc.ctx, sizeof(RaftNode));
	size_t		i;

	memset(r, 0, sizeof(*r));
	r->opt = *opt;
	if (r->opt.max_entries_per_msg < 1)
		r->opt.max_entries_per_msg = 1;
	if (r->opt.max_inflight < 1 || r->opt.max_inflight > RAFT_MAX_INFLIGHT)
		r->opt.max_inflight = RAFT_MAX_INFLIGHT;
	if (r->opt.election_max < r->opt.election_min)
		r->opt.election_max = r->opt.election_min;
	if (r->opt.lease_ticks >= r->opt.election_min)
		r->opt.lease_ticks = r->opt.election_min - 1;
	r->id = opt->id;
	r->rng = opt->seed * 0x9E3779B97F4A7C15ULL + opt->id + 1;
	r->log.snap.conf = opt->bootstrap;
	r->conf = opt->bootstrap;
	if (restore != NULL)
	{
		if (restore->snapshot != NULL)
			raft_log_restore_snapshot(r, restore->snapshot);
		for (i = 0; i < restore->n_entries; i++)
			if (restore->entries[i].index > r->log.snap.index)
				raft_log_put(r, &restore->entries[i]);
		r->log.stable = raft_log_last(&r->log);
		r->term = restore->hs.term;
		r->vote = restore->hs.vote;
#ifdef RAFT_MUTANT_FORGET_VOTE
		r->vote = RAFT_NONE;	/* MUTANT: a restart forgets the vote */
#endif
		r->log.committed = restore->hs.commit;
		if (r->log.committed > raft_log_last(&r->log))
			r->log.committed = raft_log_last(&r->log);
		if (r->log.committed < r->log.snap.index)
			r->log.committed = r->log.snap.index;
		r->log.applied = r->log.snap.index;
		r->prev_hs = restore->hs;
	}
	r->role = RAFT_FOLLOWER;
	reset_timers(r);
	return r;
}

/*
 * raft_free: release the node and everything it owns.
 */
void
raft_free(RaftNode *node)
{
	size_t		i;

	if (node == NULL)
		return;
	for (i = 0; i < node->n_msgs; i++)
		raft_msg_free(node, &node->msgs[i]);
	raft_dealloc(node, node->msgs);
	raft_dealloc(node, node->reads);
	raft_dealloc(node, node->reads_pending);
	raft_dealloc(node, node->prs);
	raft_log_free(node);
	node->opt.alloc.free_fn(node->opt.alloc.ctx, node);
}

/*
 * reset_timers: a new random election timeout in [min, max] and zeroed
 * elapsed counters.  Randomization is what keeps split votes rare.
 */
static void
reset_timers(RaftNode *r)
{
	int			span = r->opt.election_max - r->opt.election_min + 1;

	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	r->random_timeout = r->opt.election_min + (int) (rng_next(r) % span);
}

/*
 * raft_new_msg: a zeroed outgoing message of this term from this node,
 * queued for the next Ready.
 */
RaftMessage *
raft_new_msg(RaftNode *r, RaftMsgType type, uint64_t to)
{
	RaftMessage *m;

	if (r->n_msgs == r->cap_msgs)
	{
		r->cap_msgs = r->cap_msgs ? r->cap_msgs * 2 : 16;
		r->msgs = raft_realloc(r, r->msgs, r->cap_msgs * sizeof(RaftMessage));
	}
	m = &r->msgs[r->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = r->id;
	m->to = to;
	m->term = r->term;
	return m;
}

/*
 * raft_become_follower: step down (or stay down) in term, following lead
 * (RAFT_NONE if unknown).  A new term clears the vote.
 */
void
raft_become_follower(RaftNode *r, uint64_t term, uint64_t lead)
{
	if (term != r->term)
	{
		r->term = term;
		r->vote = RAFT_NONE;
	}
	r->role = RAFT_FOLLOWER;
	r->lead = lead;
	r->transferee = RAFT_NONE;
	r->need_bcast = false;
	raft_reads_clear(r);
	reset_timers(r);
}

/*
 * become_candidate: start an election round.  A pre-candidate asks whether
 * it could win at term + 1 without touching its term, so a node cut off
 * from the cluster does not inflate terms and depose a healthy leader when
 * it comes back.
 */
static void
become_candidate(RaftNode *r, bool pre)
{
	if (pre)
		r->role = RAFT_PRE_CANDIDATE;
	else
	{
		r->role = RAFT_CANDIDATE;
		r->term++;
		r->vote = r->id;
	}
	r->lead = RAFT_NONE;
	memset(r->votes, 0, sizeof(r->votes));
	reset_timers(r);
}

/*
 * voter_slot: position of id among the voters, or -1.
 */
static int
voter_slot(const RaftNode *r, uint64_t id)
{
	int			i;

	for (i = 0; i < r->conf.n_voters; i++)
		if (r->conf.voters[i] == id)
			return i;
	return -1;
}

/*
 * tally: records vote v of voter id and returns 1 if the election is won,
 * -1 if lost, 0 if undecided.
 */
static int
tally(RaftNode *r, uint64_t id, int8_t v)
{
	int			slot = voter_slot(r, id);
	int			yes = 0;
	int			no = 0;
	int			q = raft_quorum(r->conf.n_voters);
	int			i;

	if (slot >= 0 && r->votes[slot] == 0)
		r->votes[slot] = v;
	for (i = 0; i < r->conf.n_voters; i++)
	{
		yes += (r->votes[i] > 0);
		no += (r->votes[i] < 0);
	}
	if (yes >= q)
		return 1;
	if (no >= q)
		return -1;
	return 0;
}

/*
 * raft_start_election: campaign, as pre-candidate or candidate.  force
 * marks a campaign asked for by the leader (TimeoutNow), which voters grant
 * even while they still hear from that leader.
 */
void
raft_start_election(RaftNode *r, bool pre, bool force)
{
	int			i;
	RaftMsgType type = pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE;

	become_candidate(r, pre);
	r->campaign_forced = force;
	if (tally(r, r->id, 1) > 0)
	{
		if (pre)
			raft_start_election(r, false, force);
		else
			become_leader(r);
		return;
	}
	for (i = 0; i < r->conf.n_voters; i++)
	{
		RaftMessage *m;

		if (r->conf.voters[i] == r->id)
			continue;
		m = raft_new_msg(r, type, r->conf.voters[i]);
		m->term = pre ? r->term + 1 : r->term;
		m->index = raft_log_last(&r->log);
		m->log_term = raft_log_last_term(&r->log);
		m->force = force;
	}
}

/*
 * become_leader: take over the term.  The no-op entry gives the leader an
 * entry of its own term to commit, which is what commits (indirectly) the
 * entries left by earlier terms and what ReadIndex waits for.
 */
static void
become_leader(RaftNode *r)
{
	RaftEntry	noop;

	r->role = RAFT_LEADER;
	r->lead = r->id;
	r->transferee = RAFT_NONE;
	r->lease_forbidden = false;
	r->since_leader = 0;
	reset_timers(r);
	raft_pr_reset_all(r);
	r->pending_conf_index = raft_log_last(&r->log);
	memset(&noop, 0, sizeof(noop));
	noop.term = r->term;
	noop.index = raft_log_last(&r->log) + 1;
	noop.type = RAFT_ENTRY_NOOP;
	r->term_start = noop.index;
	raft_log_put(r, &noop);
	raft_bcast_append(r, true);
}

/*
 * raft_campaign: start an election now (tests and bootstrapping; a node
 * that is not a voter refuses).
 */
int
raft_campaign(RaftNode *node)
{
	if (!raft_promotable(node) || node->role == RAFT_LEADER)
		return RAFT_ERR_INVALID;
	raft_start_election(node, node->opt.pre_vote, false);
	return RAFT_OK;
}

/*
 * raft_tick: one unit of time.  Followers and candidates count towards an
 * election; a leader sends heartbeats, checks that it still reaches a
 * quorum (CheckQuorum) and gives up a leadership transfer that takes more
 * than an election timeout.
 */
void
raft_tick(RaftNode *node)
{
	RaftNode   *r = node;

	r->now++;
	if (r->role != RAFT_LEADER)
	{
		if (r->since_leader < r->opt.election_max * 2)
			r->since_leader++;
		if (++r->election_elapsed >= r->random_timeout && raft_promotable(r))
			raft_start_election(r, r->opt.pre_vote, false);
		else if (r->election_elapsed >= r->random_timeout)
			reset_timers(r);
		return;
	}

	r->since_leader = 0;
	if (r->transferee != RAFT_NONE &&
		++r->transfer_elapsed >= r->opt.election_min)
		r->transferee = RAFT_NONE;
	if (++r->election_elapsed >= r->opt.election_min)
	{
		r->election_elapsed = 0;
		if (r->opt.check_quorum && !raft_quorum_active(r))
		{
			raft_become_follower(r, r->term, RAFT_NONE);
			return;
		}
	}
	if (++r->heartbeat_elapsed >= r->opt.heartbeat_ticks)
	{
		r->heartbeat_elapsed = 0;
		raft_bcast_heartbeat(r);
	}
}

/*
 * in_lease: true while this node believes a leader is alive: it then
 * ignores campaigns that the leader did not ask for.  This is what makes
 * PreVote useful against a rejoining node and what leader leases rely on.
 */
static bool
in_lease(const RaftNode *r)
{
	return r->opt.check_quorum && r->since_leader < r->opt.election_min;
}

/*
 * step_term: the term rules every message goes through first.  Returns
 * false if m must be dropped.
 */
static bool
step_term(RaftNode *r, const RaftMessage *m)
{
	if (m->term > r->term)
	{
		if ((m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) &&
			!m->force && in_lease(r))
			return false;
		if (m->type == RAFT_MSG_PREVOTE ||
			(m->type == RAFT_MSG_PREVOTE_RESP && !m->reject))
			return true;		/* pre-votes never change terms */
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
			m->type == RAFT_MSG_SNAPSHOT)
			raft_become_follower(r, m->term, m->from);
		else
			raft_become_follower(r, m->term, RAFT_NONE);
		return true;
	}
	if (m->term < r->term)
	{
		/*
		 * A stale leader learns the new term from our answer and steps
		 * down; a stale (pre-)candidate learns it was refused and catches
		 * up with the term, which it might never do otherwise: when
		 * configurations differ, the nodes ahead may not send to it.
		 */
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)
			raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from)->reject = false;
		else if (m->type == RAFT_MSG_PREVOTE)
			raft_new_msg(r, RAFT_MSG_PREVOTE_RESP, m->from)->reject = true;
		else if (m->type == RAFT_MSG_VOTE)
			raft_new_msg(r, RAFT_MSG_VOTE_RESP, m->from)->reject = true;
		return false;
	}
	return true;
}

/*
 * raft_step: feed one incoming message.  Returns RAFT_OK (messages that do
 * not apply are dropped silently, as the network might have) or
 * RAFT_ERR_INVALID for a message not addressed to this node.
 */
int
raft_step(RaftNode *node, const RaftMessage *m)
{
	RaftNode   *r = node;

	if (m->to != r->id || m->from == RAFT_NONE)
		return RAFT_ERR_INVALID;
	if (!step_term(r, m))
		return RAFT_OK;

	switch (m->type)
	{
		case RAFT_MSG_PREVOTE:
		case RAFT_MSG_VOTE:
			step_vote_request(r, m);
			break;
		case RAFT_MSG_PREVOTE_RESP:
		case RAFT_MSG_VOTE_RESP:
			step_vote_resp(r, m);
			break;
		case RAFT_MSG_APPEND:
		case RAFT_MSG_HEARTBEAT:
		case RAFT_MSG_SNAPSHOT:
			if (r->role == RAFT_LEADER)
				break;			/* same term, two leaders: cannot happen */
			if (r->role != RAFT_FOLLOWER)
				raft_become_follower(r, r->term, m->from);
			r->lead = m->from;
			r->election_elapsed = 0;
			r->since_leader = 0;
			if (m->type == RAFT_MSG_APPEND)
				handle_append(r, m);
			else if (m->type == RAFT_MSG_HEARTBEAT)
				handle_heartbeat(r, m);
			else
				handle_snapshot(r, m);
			break;
		case RAFT_MSG_APPEND_RESP:
			if (r->role == RAFT_LEADER)
				raft_leader_append_resp(r, m);
			break;
		case RAFT_MSG_HEARTBEAT_RESP:
			if (r->role == RAFT_LEADER)
				raft_leader_heartbeat_resp(r, m);
			break;
		case RAFT_MSG_TIMEOUT_NOW:
			if (r->role == RAFT_FOLLOWER && m->from == r->lead &&
				raft_promotable(r))
				raft_start_election(r, false, true);
			break;
	}
	return RAFT_OK;
}

/*
 * step_vote_request: answer a (pre-)vote.  Granted only to a candidate
 * whose log is at least as up to date as ours (the election restriction
 * that makes every leader hold every committed entry), and for a real vote
 * only once per term.
 */
static void
step_vote_request(RaftNode *r, const RaftMessage *m)
{
	bool		pre = (m->type == RAFT_MSG_PREVOTE);
	uint64_t	last_term = raft_log_last_term(&r->log);
	bool		can_vote;
	bool		up_to_date;
	RaftMessage *resp;

	can_vote = (r->vote == m->from) ||
		(r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
		(pre && m->term > r->term);
	up_to_date = m->log_term > last_term ||
		(m->log_term == last_term && m->index >= raft_log_last(&r->log));
#ifdef RAFT_MUTANT_VOTE_NO_LOG_CHECK
	up_to_date = true;			/* MUTANT: grant without the log check */
#endif

	resp = raft_new_msg(r, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP,
						m->from);
	if (can_vote && up_to_date)
	{
		resp->term = m->term;
		if (!pre)
		{
			r->vote = m->from;
			r->election_elapsed = 0;
		}
	}
	else
		resp->reject = true;
}

/*
 * step_vote_resp: count a (pre-)vote answer for the current round.
 */
static void
step_vote_resp(RaftNode *r, const RaftMessage *m)
{
	bool		pre = (m->type == RAFT_MSG_PREVOTE_RESP);
	int			result;

	if ((pre && r->role != RAFT_PRE_CANDIDATE) ||
		(!pre && r->role != RAFT_CANDIDATE))
		return;
	result = tally(r, m->from, m->reject ? -1 : 1);
	if (result > 0 && pre)
		raft_start_election(r, false, r->campaign_forced);
	else if (result > 0)
		become_leader(r);
	else if (result < 0)
		raft_become_follower(r, r->term, RAFT_NONE);
}

/*
 * commit_to: advance the commit index (never backwards).
 */
static void
commit_to(RaftNode *r, uint64_t index)
{
	if (index > r->log.committed)
		r->log.committed = index;
}

/*
 * handle_append: the follower's side of AppendEntries.  Accept if our log
 * has the leader's previous entry (log matching), drop any conflicting
 * suffix, and answer with the last index known to match.  On mismatch,
 * answer with a hint so the leader can skip a term at a time.
 */
static void
handle_append(RaftNode *r, const RaftMessage *m)
{
	RaftMessage *resp;
	uint64_t	t;
	uint64_t	last_new = m->index + m->n_entries;
	size_t		i;

	if (m->index < r->log.committed)
	{
		resp = raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from);
		resp->index = r->log.committed;
		return;
	}
	if (!raft_log_term(&r->log, m->index, &t) || t != m->log_term)
	{
		resp = raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from);
		resp->reject = true;
		resp->index = m->index;
		resp->reject_hint = raft_log_conflict_hint(&r->log, m->index,
												   m->log_term);
		raft_log_term(&r->log, resp->reject_hint, &resp->log_term);
		return;
	}
	for (i = 0; i < m->n_entries; i++)
	{
		const RaftEntry *e = &m->entries[i];

		if (e->index <= r->log.snap.index)
			continue;
		if (raft_log_term(&r->log, e->index, &t))
		{
			if (t == e->term)
				continue;
#ifndef RAFT_MUTANT_NO_TRUNCATE	/* MUTANT: overwrite, keep the suffix */
			raft_log_truncate(r, e->index);
#endif
		}
		raft_log_put(r, e);
	}
	commit_to(r, last_new < m->commit ? last_new : m->commit);
	resp = raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from);
	resp->index = last_new;
}

/*
 * handle_heartbeat: the leader sends min(match, commit), so the commit is
 * known to be in our log.  The answer echoes the read round and the
 * leader's tick for ReadIndex and leases.
 */
static void
handle_heartbeat(RaftNode *r, const RaftMessage *m)
{
	RaftMessage *resp;

	if (m->commit <= raft_log_last(&r->log))
		commit_to(r, m->commit);
	resp = raft_new_msg(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
	resp->ctx = m->ctx;
	resp->lease_tick = m->lease_tick;
}

/*
 * handle_snapshot: InstallSnapshot.  A snapshot we already cover is just
 * acknowledged; one that matches an entry we hold only moves the commit;
 * otherwise the log is replaced and the snapshot goes to the caller in the
 * next Ready (persist, then restore the state machine from it).
 */
static void
handle_snapshot(RaftNode *r, const RaftMessage *m)
{
	const RaftSnapshot *s = m->snapshot;
	RaftMessage *resp;
	uint64_t	t;

	resp = raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from);
	if (s == NULL || s->index <= r->log.committed)
	{
		resp->index = r->log.committed;
		return;
	}
	resp->index = s->index;
	if (raft_log_term(&r->log, s->index, &t) && t == s->term)
	{
		commit_to(r, s->index);
		return;
	}
	raft_log_restore_snapshot(r, s);
	r->log.snap_unsent = true;
}

/*
 * raft_propose: append a client command.  Returns RAFT_OK and its index,
 * or RAFT_ERR_NOT_LEADER / RAFT_ERR_BUSY (leadership transfer under way);
 * a refused proposal is certain not to be in the log.  The appends to
 * peers go out with the next Ready, so proposals made together travel in
 * one message.
 */
int
raft_propose(RaftNode *node, const void *data, size_t len, uint64_t *index)
{
	RaftEntry	e;

	if (node->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	if (node->transferee != RAFT_NONE)
		return RAFT_ERR_BUSY;
	memset(&e, 0, sizeof(e));
	e.term = node->term;
	e.index = raft_log_last(&node->log) + 1;
	e.type = RAFT_ENTRY_NORMAL;
	e.len = len;
	e.data = (uint8_t *) data;
	raft_log_put(node, &e);
	node->need_bcast = true;
	if (index != NULL)
		*index = e.index;
	return RAFT_OK;
}
