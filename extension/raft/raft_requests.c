/*-------------------------------------------------------------------------
 *
 * raft_requests.c
 *	  The worker's side of client requests: taking them from the slots,
 *	  proposing them (or forwarding them to the leader), and answering
 *	  each backend once its write is applied or its read index reached.
 *
 * A request is Pending in one phase:
 *	WAIT_LEADER	no leader known, or the leader refused: (re)started by
 *				raft_requests_retry once one is known.
 *	PROPOSED	in some leader's log at index: answered when this node
 *				applies our command.  If another entry is applied at that
 *				index, the proposal was lost (a new leader overwrote it)
 *				and cannot commit any more: it starts again.
 *	FORWARDED	sent to the leader, no answer yet.  The leader answers
 *				with the index it proposed at (-> PROPOSED) or "not leader"
 *				(-> WAIT_LEADER).  Without an answer within an election
 *				timeout, or when another node becomes leader, it is sent
 *				again.
 *	READ_ASKED	a read index asked of this node's core (leader) or of the
 *				leader; asked again after an election timeout without an
 *				answer.
 *	READ_WAIT	the read index is known: answered once applied reaches it.
 *	TRANSFER_WAIT	a leadership transfer asked: answered when this node
 *				sees the target lead.
 *
 * Membership changes (RAFT_REQ_CONF) go like writes, with the core's
 * conf-change call instead of a proposal; a change the core refuses as
 * invalid or not caught up is answered REFUSED, one it calls busy (the
 * previous change not committed yet) is tried again until it goes or the
 * client gives up.
 *
 * Sending a write again can put it in the log twice; the state machine
 * applies it once (raft_apply.c: the client table), so a retry here never
 * applies a write twice, and the first application answers the client.
 *
 * The id of a request in a command and in the items is its slot and the
 * slot's use count (RAFT_REQUEST_ID), with this worker's nonce in the
 * command, so an entry proposed by an earlier incarnation of this worker
 * never answers a request of this one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "paxosnode.h"
#include "raftnode.h"
#include "raft_kv.h"
#include "raft_transport.h"

typedef enum Phase
{
	WAIT_LEADER,
	PROPOSED,
	FORWARDED,
	READ_ASKED,
	READ_WAIT,
	TRANSFER_WAIT,
	REFUSED						/* to be answered REFUSED at once */
} Phase;

typedef struct Pending
{
	uint64		id;				/* RAFT_REQUEST_ID(slot, seq) */
	RaftReqKind kind;
	Phase		phase;
	uint64		index;			/* PROPOSED: entry's; READ_WAIT: read index */
	TimestampTz asked_at;		/* FORWARDED, READ_ASKED */
	uint64		asked_to;		/* the leader then (this node, if leading) */
	int			refusal;		/* the core's RAFT_ERR_*, when refused */
	TimestampTz taken_at;
	char	   *cmd;			/* writes: the command, with our nonce */
	uint32		len;
} Pending;

/* A read the leader runs for a follower: its ctx here -> theirs. */
typedef struct RemoteRead
{
	uint64		ctx;
	uint64		from;
	uint64		their_ctx;
	TimestampTz asked_at;
} RemoteRead;

#define REMOTE_CTX_BIT	(UINT64CONST(1) << 63)

static RaftNode *node;
static uint64 my_nonce;
static MemoryContext req_cxt;
static Pending *pending;
static int	n_pending,
			cap_pending;
static RemoteRead *remote;
static int	n_remote,
			cap_remote;
static uint64 remote_seq;

void
raft_requests_init(RaftNode *n, uint64 nonce)
{
	node = n;
	my_nonce = nonce;
	req_cxt = AllocSetContextCreate(TopMemoryContext, "RaftRequests",
									ALLOCSET_DEFAULT_SIZES);
	cap_pending = 64;
	pending = MemoryContextAlloc(req_cxt, cap_pending * sizeof(Pending));
	cap_remote = 64;
	remote = MemoryContextAlloc(req_cxt, cap_remote * sizeof(RemoteRead));
}

static long
election_ms(void)
{
	return 2L * distsys_raft_election_timeout_ms;
}

/*
 * answer: tell request p's backend, if it still waits for this use of its
 * slot, and forget p (p is replaced by the last pending request).
 */
static void
answer(Pending *p, RaftAnswer a, uint64 index, bool result)
{
	RaftRequestSlot *slot = raft_client_slot(RAFT_REQUEST_SLOT(p->id));

	SpinLockAcquire(&slot->mutex);
	if (slot->state == RAFT_SLOT_TAKEN && slot->seq == RAFT_REQUEST_SEQ(p->id))
	{
		slot->answer = a;
		slot->index = index;
		slot->result = result;
		slot->refusal = (int32) p->refusal;
		slot->state = RAFT_SLOT_DONE;
		SetLatch(slot->latch);
	}
	SpinLockRelease(&slot->mutex);
	if (p->cmd)
		pfree(p->cmd);
	*p = pending[--n_pending];
}

/*
 * still_wanted: whether p's backend still waits for it.
 */
static bool
still_wanted(const Pending *p)
{
	RaftRequestSlot *slot = raft_client_slot(RAFT_REQUEST_SLOT(p->id));
	bool		wanted;

	SpinLockAcquire(&slot->mutex);
	wanted = slot->state == RAFT_SLOT_TAKEN && slot->seq == RAFT_REQUEST_SEQ(p->id);
	SpinLockRelease(&slot->mutex);
	return wanted;
}

static void
put_u8(StringInfo s, uint8 v)
{
	appendStringInfoChar(s, (char) v);
}

/*
 * send_item: one item to peer to, built in buf.
 */
static void
send_item(uint64 to, uint8 kind, StringInfo buf)
{
	raft_transport_queue(to, kind, (const uint8 *) buf->data, buf->len);
	pfree(buf->data);
}

/*
 * ask_read: ask for a read index: of the core when leading, else of the
 * leader.  False if nobody can be asked now.
 */
static bool
ask_read(Pending *p)
{
	uint64		leader = raft_leader(node);

	if (raft_role(node) == RAFT_LEADER)
	{
		if (p->kind == RAFT_REQ_READ_LEASE && raft_read_lease(node, p->id) == RAFT_OK)
			return true;
		return raft_read_index(node, p->id) == RAFT_OK;
	}
	if (leader == RAFT_NONE)
		return false;
	{
		StringInfoData buf;

		initStringInfo(&buf);
		raft_put_u64(&buf, p->id);
		put_u8(&buf, p->kind == RAFT_REQ_READ_LEASE);
		send_item(leader, RAFT_ITEM_READ_INDEX, &buf);
	}
	return true;
}

/*
 * propose_conf: a membership change of type for node peer, if leading.
 */
static int
propose_conf(uint8 type, uint64 peer, uint64 *index)
{
	if (type > RAFT_CONF_REMOVE)
		return RAFT_ERR_INVALID;
	return raft_propose_conf_change(node, (RaftConfChangeType) type, peer, index);
}

/*
 * forward: send a write or membership change to the leader.  A change
 * goes with its request id first, as a command carries it inside.
 */
static void
forward(Pending *p, uint64 leader)
{
	StringInfoData buf;

	if (p->kind != RAFT_REQ_CONF)
	{
		raft_transport_queue(leader, RAFT_ITEM_PROPOSE, (const uint8 *) p->cmd, p->len);
		return;
	}
	initStringInfo(&buf);
	raft_put_u64(&buf, p->id);
	appendBinaryStringInfo(&buf, p->cmd, p->len);
	send_item(leader, RAFT_ITEM_CONF, &buf);
}

/*
 * propose: put the write in the log when leading, else forward it to the
 * leader.  False if nobody can take it now.
 */
static bool
propose(Pending *p)
{
	uint64		leader = raft_leader(node);
	uint64		index;
	int			rc;

	if (raft_role(node) == RAFT_LEADER)
	{
		rc = p->kind == RAFT_REQ_CONF ?
			propose_conf(p->cmd[0], raft_get_u64((uint8 *) p->cmd + 1), &index) :
			raft_propose(node, p->cmd, p->len, &index);
		if (rc == RAFT_ERR_INVALID || rc == RAFT_ERR_NOT_CAUGHT_UP)
		{
			p->refusal = rc;
			p->phase = REFUSED;
			return true;
		}
		if (rc != RAFT_OK)
			return false;
		p->phase = PROPOSED;
		p->index = index;
		return true;
	}
	if (leader == RAFT_NONE)
		return false;
	forward(p, leader);
	p->phase = FORWARDED;
	return true;
}

/*
 * ask_transfer: ask the core (leading) or the leader to hand leadership
 * to the request's node; false if nobody can be asked now.
 */
static bool
ask_transfer(Pending *p)
{
	uint64		target = raft_get_u64((uint8 *) p->cmd);
	uint64		leader = raft_leader(node);

	if (leader == target)
		return true;
	if (raft_role(node) == RAFT_LEADER)
		return raft_transfer_leadership(node, target) == RAFT_OK;
	if (leader == RAFT_NONE)
		return false;
	raft_transport_queue(leader, RAFT_ITEM_TRANSFER, (const uint8 *) p->cmd, 8);
	return true;
}

/*
 * start: move p on from WAIT_LEADER (or READ_ASKED, to ask again).
 */
static void
start(Pending *p)
{
	p->asked_at = GetCurrentTimestamp();
	p->asked_to = raft_leader(node);
	if (p->kind == RAFT_REQ_WRITE || p->kind == RAFT_REQ_CONF)
	{
		if (!propose(p))
			p->phase = WAIT_LEADER;
		return;
	}
	if (p->kind == RAFT_REQ_TRANSFER)
	{
		p->phase = ask_transfer(p) ? TRANSFER_WAIT : WAIT_LEADER;
		return;
	}
	p->phase = ask_read(p) ? READ_ASKED : WAIT_LEADER;
}

/*
 * take_slot: a NEW slot becomes a Pending request (false if it was not NEW).
 */
static bool
take_slot(int i, Pending *p)
{
	RaftRequestSlot *slot = raft_client_slot(i);
	bool		taken = false;

	SpinLockAcquire(&slot->mutex);
	if (slot->state == RAFT_SLOT_NEW)
	{
		memset(p, 0, sizeof(*p));
		p->id = RAFT_REQUEST_ID(i, slot->seq);
		p->kind = slot->kind;
		p->len = slot->len;
		if (p->len > 0)
		{
			p->cmd = MemoryContextAlloc(req_cxt, p->len);
			memcpy(p->cmd, slot->command, p->len);
		}
		slot->state = RAFT_SLOT_TAKEN;
		taken = true;
	}
	SpinLockRelease(&slot->mutex);
	return taken;
}

/*
 * stamp: our nonce and this request's id into the command (the backend
 * wrote its node id and request id; the nonce is the worker's own).
 */
static bool
stamp(Pending *p)
{
	RaftCommand c;
	StringInfoData buf;

	if (!raft_command_decode((uint8 *) p->cmd, p->len, &c))
		return false;
	c.nonce = my_nonce;
	c.request = p->id;
	initStringInfo(&buf);
	raft_command_encode(&c, &buf);
	pfree(p->cmd);
	p->cmd = MemoryContextAlloc(req_cxt, buf.len);
	memcpy(p->cmd, buf.data, buf.len);
	p->len = buf.len;
	pfree(buf.data);
	return true;
}

/*
 * raft_requests_take: every new request from the slots, started.
 */
void
raft_requests_take(void)
{
	if (!raft_client_take_new_flag())
		return;
	for (int i = 0; i < raft_client_nslots(); i++)
	{
		Pending		p;

		if (!take_slot(i, &p))
			continue;
		if (p.kind == RAFT_REQ_PAXOS)
		{
			paxos_node_request(p.id, (uint8 *) p.cmd, p.len);
			if (p.cmd)
				pfree(p.cmd);
			continue;
		}
		if (n_pending == cap_pending)
		{
			cap_pending *= 2;
			pending = repalloc(pending, cap_pending * sizeof(Pending));
		}
		p.taken_at = GetCurrentTimestamp();
		pending[n_pending++] = p;
		if (p.kind == RAFT_REQ_WRITE && !stamp(&pending[n_pending - 1]))
		{
			elog(LOG, "distsys raft: a malformed command from slot %d was refused", i);
			answer(&pending[n_pending - 1], RAFT_ANSWER_UNKNOWN, 0, false);
			continue;
		}
		start(&pending[n_pending - 1]);
	}
}

/*
 * raft_requests_retry: restart what waits for a leader, ask again for
 * read indexes that got no answer, forget requests whose backend left.
 */
void
raft_requests_retry(void)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < n_pending; i++)
	{
		Pending    *p = &pending[i];

		if (!still_wanted(p))
		{
			if (p->cmd)
				pfree(p->cmd);
			*p = pending[--n_pending];
			i--;
			continue;
		}
		if (p->phase == REFUSED ||
			(p->phase == TRANSFER_WAIT && raft_leader(node) == raft_get_u64((uint8 *) p->cmd)))
		{
			answer(p, p->phase == REFUSED ? RAFT_ANSWER_REFUSED : RAFT_ANSWER_OK, 0, false);
			i--;
			continue;
		}
		if (p->phase == WAIT_LEADER ||
			(p->phase == TRANSFER_WAIT &&
			 TimestampDifferenceExceeds(p->asked_at, now, election_ms())) ||
			((p->phase == READ_ASKED || p->phase == FORWARDED) &&
			 TimestampDifferenceExceeds(p->asked_at, now, election_ms())) ||
			((p->phase == READ_ASKED || p->phase == FORWARDED) &&
			 raft_leader(node) != RAFT_NONE && raft_leader(node) != p->asked_to))
			start(p);
	}
	for (int i = 0; i < n_remote; i++)
		if (TimestampDifferenceExceeds(remote[i].asked_at, now, 4 * election_ms()))
			remote[i--] = remote[--n_remote];
}

/*
 * find: the pending request with id, in phase (NULL if none).
 */
static Pending *
find(uint64 id, Phase phase)
{
	for (int i = 0; i < n_pending; i++)
		if (pending[i].id == id && pending[i].phase == phase)
			return &pending[i];
	return NULL;
}

/*
 * answer_read: a read index (or "not leader": index 0) for follower from.
 */
static void
answer_read(uint64 to, uint64 their_ctx, bool ok, uint64 index)
{
	StringInfoData buf;

	initStringInfo(&buf);
	raft_put_u64(&buf, their_ctx);
	put_u8(&buf, ok);
	raft_put_u64(&buf, index);
	send_item(to, RAFT_ITEM_READ_ANSWER, &buf);
}

/*
 * remote_read: a follower asks this node, as leader, for a read index.
 */
static void
remote_read(uint64 from, const uint8 *body, size_t len)
{
	RemoteRead *r;
	uint64		ctx;
	bool		lease;

	if (len != 9)
		return;
	ctx = REMOTE_CTX_BIT | ++remote_seq;
	lease = body[8] != 0;
	if (raft_role(node) != RAFT_LEADER ||
		(!(lease && raft_read_lease(node, ctx) == RAFT_OK) &&
		 raft_read_index(node, ctx) != RAFT_OK))
	{
		answer_read(from, raft_get_u64(body), false, 0);
		return;
	}
	if (n_remote == cap_remote)
	{
		cap_remote *= 2;
		remote = repalloc(remote, cap_remote * sizeof(RemoteRead));
	}
	r = &remote[n_remote++];
	r->ctx = ctx;
	r->from = from;
	r->their_ctx = raft_get_u64(body);
	r->asked_at = GetCurrentTimestamp();
}

/*
 * answer_propose: tell follower where its forwarded write or change went
 * (rc RAFT_OK) or why not.
 */
static void
answer_propose(uint64 to, uint64 request, int rc, uint64 index)
{
	StringInfoData buf;

	initStringInfo(&buf);
	raft_put_u64(&buf, request);
	put_u8(&buf, (uint8) -rc);	/* 0: proposed; else the RAFT_ERR_* negated */
	raft_put_u64(&buf, index);
	send_item(to, RAFT_ITEM_PROPOSE_ANSWER, &buf);
}

/*
 * remote_propose: a follower forwards a write to this node, as leader.
 * The command must be well-formed and come from its origin.
 */
static void
remote_propose(uint64 from, const uint8 *body, size_t len)
{
	RaftCommand c;
	uint64		index;

	if (!raft_command_decode(body, len, &c) || c.origin != from)
	{
		elog(LOG, "distsys raft: node " UINT64_FORMAT " forwarded a malformed command: refused", from);
		return;
	}
	answer_propose(from, c.request,
				   raft_role(node) != RAFT_LEADER ? RAFT_ERR_NOT_LEADER :
				   raft_propose(node, body, len, &index), index);
}

/*
 * remote_conf: a follower forwards a membership change to this node, as
 * leader: request id (8), type (1), node (8).
 */
static void
remote_conf(uint64 from, const uint8 *body, size_t len)
{
	uint64		index = 0;
	int			rc;

	if (len != 17)
		return;
	rc = raft_role(node) != RAFT_LEADER ? RAFT_ERR_NOT_LEADER :
		propose_conf(body[8], raft_get_u64(body + 9), &index);
	answer_propose(from, raft_get_u64(body), rc, index);
}

/*
 * remote_transfer: a follower asks this node, as leader, to hand over.
 */
static void
remote_transfer(const uint8 *body, size_t len)
{
	if (len == 8 && raft_role(node) == RAFT_LEADER)
		(void) raft_transfer_leadership(node, raft_get_u64(body));
}

/*
 * on_answer: the leader's answer to a forwarded write or read.
 */
static void
on_answer(uint8 kind, const uint8 *body, size_t len)
{
	Pending    *p;
	int			rc;

	if (len != 17)
		return;
	p = find(raft_get_u64(body), kind == RAFT_ITEM_PROPOSE_ANSWER ? FORWARDED : READ_ASKED);
	if (p == NULL)
		return;
	p->index = raft_get_u64(body + 9);
	if (kind == RAFT_ITEM_READ_ANSWER)
	{
		p->phase = body[8] != 0 ? READ_WAIT : WAIT_LEADER;
		return;
	}
	rc = -(int) body[8];
	p->refusal = rc;
	p->phase = rc == RAFT_OK ? PROPOSED :
		(rc == RAFT_ERR_INVALID || rc == RAFT_ERR_NOT_CAUGHT_UP) ? REFUSED : WAIT_LEADER;
}

/*
 * raft_requests_item: an item (not a Raft message) from peer from.
 */
void
raft_requests_item(uint64 from, uint8 kind, const uint8 *body, size_t len)
{
	switch (kind)
	{
		case RAFT_ITEM_PROPOSE:
			remote_propose(from, body, len);
			break;
		case RAFT_ITEM_READ_INDEX:
			remote_read(from, body, len);
			break;
		case RAFT_ITEM_CONF:
			remote_conf(from, body, len);
			break;
		case RAFT_ITEM_TRANSFER:
			remote_transfer(body, len);
			break;
		case RAFT_ITEM_READ_ANSWER:
		case RAFT_ITEM_PROPOSE_ANSWER:
			on_answer(kind, body, len);
			break;
		default:
			break;
	}
}

/*
 * raft_requests_read_state: the core confirmed a read index.
 */
void
raft_requests_read_state(const RaftReadState *rs)
{
	Pending    *p;

	if (rs->ctx & REMOTE_CTX_BIT)
	{
		for (int i = 0; i < n_remote; i++)
			if (remote[i].ctx == rs->ctx)
			{
				answer_read(remote[i].from, remote[i].their_ctx, true, rs->index);
				remote[i] = remote[--n_remote];
				return;
			}
		return;
	}
	p = find(rs->ctx, READ_ASKED);
	if (p)
	{
		p->phase = READ_WAIT;
		p->index = rs->index;
	}
}

/*
 * conf_is: whether entry e is the membership change p asked for.
 */
static bool
conf_is(const RaftEntry *e, const Pending *p)
{
	RaftConfChangeType type;
	uint64_t	peer;

	return e->type == RAFT_ENTRY_CONF && raft_conf_decode(e, &type, &peer) &&
		(uint8) type == (uint8) p->cmd[0] && peer == raft_get_u64((uint8 *) p->cmd + 1);
}

/*
 * raft_requests_applied: the entry at index was applied and its
 * transaction committed (c: its command, NULL for other entries; result:
 * what applying it did).  Answers our request in it; a proposal of ours that
 * another entry displaced at that index starts again.
 */
void
raft_requests_applied(const RaftEntry *e, const RaftCommand *c, bool result)
{
	bool		ours = c && c->origin == (uint64) distsys_node_id && c->nonce == my_nonce;

	for (int i = 0; i < n_pending; i++)
	{
		Pending    *p = &pending[i];

		if ((ours && p->id == c->request && p->kind == RAFT_REQ_WRITE) ||
			(p->kind == RAFT_REQ_CONF && p->phase == PROPOSED &&
			 p->index == e->index && conf_is(e, p)))
		{
			answer(p, RAFT_ANSWER_OK, e->index, result);
			i--;
		}
		else if (p->phase == PROPOSED && p->index == e->index)
			start(p);
	}
}

/*
 * raft_requests_serve_reads: answer the reads whose index is applied (the
 * applying transaction has committed, so the backend's read sees it).
 */
void
raft_requests_serve_reads(uint64 applied)
{
	for (int i = 0; i < n_pending; i++)
	{
		Pending    *p = &pending[i];

		if (p->phase == READ_WAIT && p->index <= applied)
		{
			answer(p, RAFT_ANSWER_OK, p->index, false);
			i--;
		}
	}
}

/*
 * raft_requests_snapshot: a snapshot up to index was installed instead of
 * the entries: a write of ours proposed at or below it may or may not be
 * in it, so its client is told the outcome is unknown.
 */
void
raft_requests_snapshot(uint64 index)
{
	for (int i = 0; i < n_pending; i++)
	{
		Pending    *p = &pending[i];

		if (p->phase == PROPOSED && p->index <= index)
		{
			answer(p, RAFT_ANSWER_UNKNOWN, 0, false);
			i--;
		}
	}
}
