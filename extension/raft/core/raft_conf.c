/*-------------------------------------------------------------------------
 *
 * raft_conf.c
 *	  Membership: one server at a time, learners that catch up before they
 *	  vote, and leadership transfer.
 *
 * A configuration takes effect as soon as its entry is in a node's log,
 * committed or not (Raft dissertation, 4.1), so it is recomputed when a
 * conflicting suffix is truncated.  Changing one server at a time keeps
 * every majority of the old configuration overlapping every majority of
 * the new one; a leader accepts a change only when the previous one has
 * committed and its own term's no-op has committed (the latter closes the
 * known hole in single-server changes across leader changes).
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

#define CONF_PAYLOAD_LEN 9

/*
 * raft_conf_is_voter, raft_conf_is_learner: membership tests.
 */
bool
raft_conf_is_voter(const RaftConfState *c, uint64_t id)
{
	int			i;

	for (i = 0; i < c->n_voters; i++)
		if (c->voters[i] == id)
			return true;
	return false;
}

bool
raft_conf_is_learner(const RaftConfState *c, uint64_t id)
{
	int			i;

	for (i = 0; i < c->n_learners; i++)
		if (c->learners[i] == id)
			return true;
	return false;
}

/*
 * remove_id: take id out of the list ids[0..*n).
 */
static void
remove_id(uint64_t *ids, int *n, uint64_t id)
{
	int			i;

	for (i = 0; i < *n; i++)
		if (ids[i] == id)
		{
			ids[i] = ids[--(*n)];
			return;
		}
}

/*
 * raft_conf_decode: the change carried by a conf entry.  Returns false if
 * e is not a well-formed conf entry.
 */
bool
raft_conf_decode(const RaftEntry *e, RaftConfChangeType *type, uint64_t *peer)
{
	int			i;

	if (e->type != RAFT_ENTRY_CONF || e->len != CONF_PAYLOAD_LEN)
		return false;
	*type = (RaftConfChangeType) e->data[0];
	*peer = 0;
	for (i = 8; i >= 1; i--)
		*peer = (*peer << 8) | e->data[i];
	return true;
}

/*
 * raft_conf_state_apply: apply the change in conf entry e to c.
 */
void
raft_conf_state_apply(RaftConfState *c, const RaftEntry *e)
{
	RaftConfChangeType type;
	uint64_t	id;

	if (!raft_conf_decode(e, &type, &id) || id == RAFT_NONE)
		return;
	remove_id(c->voters, &c->n_voters, id);
	remove_id(c->learners, &c->n_learners, id);
	if (type == RAFT_CONF_ADD_LEARNER && c->n_learners < RAFT_MAX_NODES)
		c->learners[c->n_learners++] = id;
	else if (type == RAFT_CONF_PROMOTE && c->n_voters < RAFT_MAX_NODES)
		c->voters[c->n_voters++] = id;
}

/*
 * after_conf_change: keep the leader's progress and a candidate's role in
 * line with the configuration now in force.
 */
static void
after_conf_change(RaftNode *r)
{
	if (r->role == RAFT_LEADER)
		raft_pr_sync_conf(r);
	else if (r->role != RAFT_FOLLOWER && !raft_promotable(r))
		raft_become_follower(r, r->term, RAFT_NONE);
}

/*
 * raft_conf_apply_entry: a conf entry was appended to the log: it is in
 * force from now on.
 */
void
raft_conf_apply_entry(RaftNode *r, const RaftEntry *e)
{
	raft_conf_state_apply(&r->conf, e);
	r->conf_index = e->index;
	after_conf_change(r);
}

/*
 * raft_conf_recompute: the configuration from the snapshot's and the conf
 * entries after it (after a truncation or a restore).
 */
void
raft_conf_recompute(RaftNode *r)
{
	size_t		i;

	r->conf = r->log.snap.conf;
	r->conf_index = 0;
	for (i = 0; i < r->log.n; i++)
		if (r->log.ents[i].type == RAFT_ENTRY_CONF)
		{
			raft_conf_state_apply(&r->conf, &r->log.ents[i]);
			r->conf_index = r->log.ents[i].index;
		}
	after_conf_change(r);
}

/*
 * raft_promotable: whether this node may campaign (it is a voter).
 */
bool
raft_promotable(const RaftNode *r)
{
	return raft_conf_is_voter(&r->conf, r->id);
}

/*
 * raft_conf_after_commit: a leader whose removal has committed steps down
 * (it kept leading until then so that the change could commit).
 */
void
raft_conf_after_commit(RaftNode *r)
{
	if (r->role == RAFT_LEADER && !raft_promotable(r) &&
		r->log.committed >= r->conf_index)
		raft_become_follower(r, r->term, RAFT_NONE);
}

/*
 * raft_propose_conf_change: propose adding a learner, promoting a learner
 * that has caught up (its match index reached our commit index), or
 * removing a member.  Returns RAFT_OK and the entry's index, or
 * RAFT_ERR_NOT_LEADER, RAFT_ERR_BUSY (a change or this term's no-op not
 * committed yet, or a transfer under way), RAFT_ERR_NOT_CAUGHT_UP,
 * RAFT_ERR_INVALID.
 */
int
raft_propose_conf_change(RaftNode *node, RaftConfChangeType type,
						 uint64_t peer, uint64_t *index)
{
	RaftNode   *r = node;
	RaftProgress *pr;
	uint8_t		buf[CONF_PAYLOAD_LEN];
	RaftEntry	e;
	int			i;

	if (r->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	if (r->transferee != RAFT_NONE ||
		r->pending_conf_index > r->log.committed ||
		r->log.committed < r->term_start)
		return RAFT_ERR_BUSY;
	if (peer == RAFT_NONE)
		return RAFT_ERR_INVALID;
	switch (type)
	{
		case RAFT_CONF_ADD_LEARNER:
			if (raft_conf_is_voter(&r->conf, peer) ||
				raft_conf_is_learner(&r->conf, peer) ||
				r->conf.n_voters + r->conf.n_learners >= RAFT_MAX_NODES)
				return RAFT_ERR_INVALID;
			break;
		case RAFT_CONF_PROMOTE:
			if (!raft_conf_is_learner(&r->conf, peer))
				return RAFT_ERR_INVALID;
			pr = raft_pr(r, peer);
			if (pr == NULL || pr->match < r->log.committed)
				return RAFT_ERR_NOT_CAUGHT_UP;
			break;
		case RAFT_CONF_REMOVE:
			if (raft_conf_is_learner(&r->conf, peer))
				break;
			if (!raft_conf_is_voter(&r->conf, peer) || r->conf.n_voters <= 1)
				return RAFT_ERR_INVALID;
			break;
		default:
			return RAFT_ERR_INVALID;
	}
	buf[0] = (uint8_t) type;
	for (i = 1; i <= 8; i++)
		buf[i] = (uint8_t) (peer >> (8 * (i - 1)));
	memset(&e, 0, sizeof(e));
	e.term = r->term;
	e.index = raft_log_last(&r->log) + 1;
	e.type = RAFT_ENTRY_CONF;
	e.len = CONF_PAYLOAD_LEN;
	e.data = buf;
	r->pending_conf_index = e.index;
	raft_log_put(r, &e);
	r->need_bcast = true;
	if (index != NULL)
		*index = e.index;
	return RAFT_OK;
}

/*
 * send_timeout_now: tell the transferee to campaign at once.  A lease read
 * is never served again in this term: the transferee's election does not
 * wait for followers' leases, even if this message is delivered late.
 */
static void
send_timeout_now(RaftNode *r, uint64_t to)
{
	raft_new_msg(r, RAFT_MSG_TIMEOUT_NOW, to);
	r->lease_forbidden = true;
}

/*
 * raft_transfer_leadership: hand leadership to voter target: stop taking
 * proposals, bring target up to date, then send it TimeoutNow.  Gives up
 * after an election timeout.  Returns RAFT_OK, RAFT_ERR_NOT_LEADER or
 * RAFT_ERR_INVALID.
 */
int
raft_transfer_leadership(RaftNode *node, uint64_t target)
{
	RaftNode   *r = node;
	RaftProgress *pr;

	if (r->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	if (target == r->id || !raft_conf_is_voter(&r->conf, target))
		return RAFT_ERR_INVALID;
	pr = raft_pr(r, target);
	if (pr == NULL)
		return RAFT_ERR_INVALID;
	r->transferee = target;
	r->transfer_elapsed = 0;
	if (pr->match == raft_log_last(&r->log))
		send_timeout_now(r, target);
	else
		raft_send_append(r, pr, false);
	return RAFT_OK;
}

/*
 * raft_transfer_check: the transferee just acknowledged entries; if it now
 * has our whole log, it can take over.
 */
void
raft_transfer_check(RaftNode *r, RaftProgress *pr)
{
	if (r->transferee == pr->id && pr->match == raft_log_last(&r->log))
		send_timeout_now(r, pr->id);
}
