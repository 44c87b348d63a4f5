/*-------------------------------------------------------------------------
 *
 * paxos_node.c
 *	  The worker's side of Paxos among nodes: the core, its acceptor
 *	  files, its messages over the Raft transport, and the backends'
 *	  requests.  Called from the Raft worker's loop (raft_worker.c), which
 *	  already owns the peer connections, the inbox and the request slots.
 *
 * Each Ready is handled in paxos.h's order: the round and the acceptor
 * records are written and synced (paxos_disk.c), only then are the
 * messages queued; learned decrees are committed into
 * distsys.paxos_learned (paxos_learn.c) before any client is answered, so
 * a paxos_learned() after a paxos_propose() on the same node sees the
 * value.  A failed write or sync stops Paxos on this node until the server
 * restarts, as it stops Raft: what the kernel dropped cannot be retried.
 *
 * A request waits here until the core takes it: the core runs one
 * operation per instance per node (PAXOS_ERR_BUSY), so a second client of
 * the same instance on this node waits for the first.  A request whose
 * backend gave up (timeout, cancel) is cancelled in the core.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "distsys.h"
#include "paxosnode.h"
#include "paxos_disk.h"
#include "raftnode.h"
#include "raft_kv.h"
#include "raft_transport.h"

#define PAXOS_DIR	"pg_distsys/paxos"

/* A backend's request, from its slot until answered. */
typedef struct PaxosPending
{
	uint64		id;				/* RAFT_REQUEST_ID(slot, seq): the core's tag */
	uint8	   *body;			/* the request's bytes; req points into them */
	PaxosRequest req;
	bool		started;		/* the core runs it */
} PaxosPending;

static PaxosNode *core = NULL;
static PaxosDisk *disk = NULL;
static MemoryContext paxos_cxt;
static PaxosPending *pending;
static int	n_pending,
			cap_pending;

/*
 * Items for this node itself: the core addresses its own acceptor and
 * learner like any other (paxos.h), and the transport has no connection
 * to self; they are stepped after the Ready that sent them is advanced
 * (stepping may move what that Ready points to).  Each is
 * kind (1) | length (4) | body, as in a batch.
 */
static StringInfoData to_self;

/*
 * paxos_is_member: whether node self is one of the founders of
 * distsys.peers, the Paxos members (docs/design/paxos.md).
 */
bool
paxos_is_member(const RaftPeers *founders, uint64 self)
{
	return raft_peers_find(founders, self) != NULL;
}

bool
paxos_node_running(void)
{
	return core != NULL;
}

/*
 * core_options: every founder is a proposer, acceptor and learner; a
 * phase waits up to timeout_ticks for a majority (at first: the core
 * adapts it) before it backs off by a
 * random 1 .. 2 ticks, doubling with every round up to 16 times that.
 */
static void
core_options(const RaftPeers *founders, int timeout_ticks, PaxosOptions *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->id = (uint64) distsys_node_id;
	opt->n_nodes = founders->n;
	for (int i = 0; i < founders->n; i++)
		opt->nodes[i] = founders->peer[i].id;
	opt->n_acceptors = 0;
	opt->timeout = timeout_ticks;
	opt->backoff = 2;
	if (!pg_strong_random(&opt->seed, sizeof(opt->seed)))
		opt->seed = (uint64) MyProcPid;
	opt->alloc.alloc_fn = distsys_cxt_alloc;
	opt->alloc.realloc_fn = distsys_cxt_realloc;
	opt->alloc.free_fn = distsys_cxt_free;
	opt->alloc.ctx = AllocSetContextCreate(paxos_cxt, "PaxosCore", ALLOCSET_DEFAULT_SIZES);
}

/*
 * acceptor_files_lost: whether this node's acceptor files are missing
 * although it ran before (its Raft log is not new).  An acceptor that
 * forgot its promises and acceptances could let a second value be chosen,
 * so such a node takes no part in Paxos: its calls fail with 55000 and the
 * log says why.  (A node whose Raft log predates Paxos has no directory
 * either; create it empty, mode 0700, to let the node join, but only if no
 * Paxos call can ever have run with it as an acceptor.)
 */
static bool
acceptor_files_lost(bool raft_fresh)
{
	struct stat st;

	if (raft_fresh || stat(PAXOS_DIR, &st) == 0)
		return false;
	ereport(LOG,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("distsys paxos: node %d does not run Paxos: its acceptor files (%s) are missing, but its Raft log is not new",
					distsys_node_id, PAXOS_DIR),
			 errdetail("An acceptor that forgot what it promised and accepted could let two values be chosen for one instance."),
			 errhint("Restore %s from a backup of this node taken after its last Paxos call.", PAXOS_DIR)));
	return true;
}

/*
 * paxos_node_start: the core, restarted from the acceptor files; nothing
 * (Paxos off here) if this node is not a founder or lost its files.
 * raft_fresh: the Raft log was started afresh now.
 */
void
paxos_node_start(const RaftPeers *founders, int timeout_ticks, bool raft_fresh)
{
	PaxosOptions opt;
	PaxosAcceptorState *recs;
	size_t		n;
	uint64		round;
	char		err[1024];

	initStringInfo(&to_self);
	cap_pending = 16;
	n_pending = 0;
	paxos_cxt = AllocSetContextCreate(TopMemoryContext, "Paxos", ALLOCSET_DEFAULT_SIZES);
	pending = MemoryContextAlloc(paxos_cxt, cap_pending * sizeof(PaxosPending));
	if (!paxos_is_member(founders, (uint64) distsys_node_id))
	{
		ereport(LOG,
				(errmsg("distsys paxos: node %d is not one of the founding members of distsys.peers, so it takes no part in Paxos",
						distsys_node_id)));
		return;
	}
	if (acceptor_files_lost(raft_fresh))
		return;
	distsys_make_dir_durably(PAXOS_DIR);
	if (paxos_disk_open(PAXOS_DIR, &disk, &round, &recs, &n, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("distsys paxos: cannot read the acceptor files: %s", err),
				 errhint("Restore pg_distsys/paxos from a backup of this node; an acceptor that forgets its promises can let two values be chosen.")));
	core_options(founders, timeout_ticks, &opt);
	core = paxos_new(&opt);
	paxos_restore(core, round, recs, n);
	/* decrees learned before a crash, not yet collected */
	for (size_t i = 0; i < n; i++)
		paxos_gc_candidate(recs[i].instance);
	paxos_disk_records_free(recs, n);
	paxos_learn_init(founders, (uint64) distsys_node_id);
	ereport(LOG,
			(errmsg("distsys paxos: node %d runs Paxos with %d members, %zu acceptor records, round " UINT64_FORMAT,
					distsys_node_id, founders->n, n, round)));
}

void
paxos_node_tick(void)
{
	if (core)
		paxos_tick(core);
}

/*
 * drop_pending: forget pending request i, keeping the others in the order
 * they arrived: paxos_node_retry starts the oldest waiting request of an
 * instance first, so a busy key serves its clients in turn (with the last
 * moved into the gap, a request could wait behind newer ones until its
 * client timed out).
 */
static void
drop_pending(int i)
{
	n_pending--;
	memmove(&pending[i], &pending[i + 1], (n_pending - i) * sizeof(PaxosPending));
}

/*
 * answer: tell pending request i's backend, if it still waits for this
 * use of its slot (value: the answer's bytes), and forget the request.
 */
static void
answer(int i, RaftAnswer a, PaxosValue value, bool swapped)
{
	PaxosPending *p = &pending[i];
	RaftRequestSlot *slot = raft_client_slot(RAFT_REQUEST_SLOT(p->id));

	SpinLockAcquire(&slot->mutex);
	if (slot->state == RAFT_SLOT_TAKEN && slot->seq == RAFT_REQUEST_SEQ(p->id))
	{
		slot->answer = a;
		slot->index = value.present ? 1 : 0;
		slot->result = swapped;
		slot->len = value.present ? (uint32) Min(value.len, RAFT_COMMAND_MAX_BYTES) : 0;
		if (slot->len > 0)
			memcpy(slot->command, value.data, slot->len);
		slot->state = RAFT_SLOT_DONE;
		SetLatch(slot->latch);
	}
	SpinLockRelease(&slot->mutex);
	pfree(p->body);
	drop_pending(i);
}

/*
 * still_wanted: whether pending request i's backend still waits for it.
 */
static bool
still_wanted(int i)
{
	RaftRequestSlot *slot = raft_client_slot(RAFT_REQUEST_SLOT(pending[i].id));
	bool		wanted;

	SpinLockAcquire(&slot->mutex);
	wanted = slot->state == RAFT_SLOT_TAKEN &&
		slot->seq == RAFT_REQUEST_SEQ(pending[i].id);
	SpinLockRelease(&slot->mutex);
	return wanted;
}

static const PaxosValue absent = {NULL, 0, false};

/*
 * paxos_node_request: a backend's request (raft_requests.c took it from
 * its slot), started at once if the core is free for its instance.
 */
void
paxos_node_request(uint64 id, const uint8 *body, size_t len)
{
	PaxosPending *p;

	if (n_pending == cap_pending)
	{
		cap_pending *= 2;
		pending = repalloc(pending, cap_pending * sizeof(PaxosPending));
	}
	p = &pending[n_pending++];
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->body = MemoryContextAlloc(paxos_cxt, Max(len, 1));
	memcpy(p->body, body, len);
	if (core == NULL)
	{
		answer(n_pending - 1, RAFT_ANSWER_REFUSED, absent, false);
		return;
	}
	if (!paxos_request_decode(p->body, len, &p->req))
	{
		elog(LOG, "distsys paxos: a malformed request from slot %d was refused",
			 RAFT_REQUEST_SLOT(id));
		answer(n_pending - 1, RAFT_ANSWER_UNKNOWN, absent, false);
		return;
	}
	p->req.tag = id;
	paxos_node_retry();
}

/*
 * answer_collected: answer pending decree i from paxos_learned if it has
 * the instance (false if not).  A decree the core does not hold may be one
 * it collected: proposing it afresh would let this node's acceptor promise
 * without what it accepted (paxos_gc.c).
 */
static bool
answer_collected(int i)
{
	StringInfoData value;
	PaxosBallot b;
	bool		found;

	initStringInfo(&value);
	found = paxos_gc_lookup(pending[i].req.instance, &value, &b);
	if (found)
		answer(i, RAFT_ANSWER_OK, (PaxosValue) {value.data, value.len, true}, false);
	pfree(value.data);
	return found;
}

/*
 * paxos_node_retry: forget (and cancel in the core) the requests whose
 * backend left; start those that wait for their instance to be free.
 */
void
paxos_node_retry(void)
{
	if (core == NULL)
	{
		while (n_pending > 0)
			answer(0, pending[0].started ? RAFT_ANSWER_UNKNOWN : RAFT_ANSWER_REFUSED,
				   absent, false);
		return;
	}
	for (int i = 0; i < n_pending; i++)
	{
		PaxosPending *p = &pending[i];

		if (!still_wanted(i))
		{
			if (p->started)
				(void) paxos_cancel(core, p->id);
			pfree(p->body);
			drop_pending(i--);
			continue;
		}
		if (p->started)
			continue;
		if (p->req.kind == PAXOS_OP_DECREE && !paxos_knows(core, p->req.instance) &&
			answer_collected(i))
		{
			i--;
			continue;
		}
		if (paxos_propose(core, &p->req) == PAXOS_OK)
			p->started = true;
	}
}

/*
 * find: the pending request with tag (-1 if none: its backend left).
 */
static int
find(uint64 tag)
{
	for (int i = 0; i < n_pending; i++)
		if (pending[i].id == tag && pending[i].started)
			return i;
	return -1;
}

/*
 * storage_failed: the acceptor files could not be made durable: Paxos
 * stops on this node (its clients are told the outcome is unknown).
 */
static void
storage_failed(const char *err)
{
	ereport(LOG,
			(errcode(ERRCODE_IO_ERROR),
			 errmsg("distsys paxos: node %d stops Paxos: its acceptor state could not be made durable: %s",
					distsys_node_id, err),
			 errdetail("Nothing that depends on the failed write was sent."),
			 errhint("Fix the storage, then restart the server.")));
	while (n_pending > 0)
		answer(0, RAFT_ANSWER_UNKNOWN, absent, false);
	paxos_disk_close(disk);
	disk = NULL;
	core = NULL;				/* its memory stays; the node stops anyway */
}

/*
 * paxos_node_send: one item for node to: queued for the peer, or for this
 * node itself.
 */
void
paxos_node_send(uint64 to, uint8 kind, const uint8 *body, size_t len)
{
	if (to != (uint64) distsys_node_id)
	{
		raft_transport_queue(to, kind, body, len);
		return;
	}
	px_put_u8(&to_self, kind);
	raft_put_u32(&to_self, (uint32) len);
	appendBinaryStringInfo(&to_self, (const char *) body, len);
}

/*
 * step_self: the items this node sent itself (see to_self).
 */
static void
step_self(void)
{
	StringInfoData items = to_self;
	size_t		off = 0;

	initStringInfo(&to_self);
	while (off + RAFT_ITEM_HEADER_BYTES <= (size_t) items.len)
	{
		uint8		kind = (uint8) items.data[off];
		uint32		len = raft_get_u32((uint8 *) items.data + off + 1);

		paxos_node_item((uint64) distsys_node_id, kind,
						(uint8 *) items.data + off + RAFT_ITEM_HEADER_BYTES, len);
		off += RAFT_ITEM_HEADER_BYTES + len;
	}
	pfree(items.data);
}

/*
 * send: the Ready's messages, queued for their nodes.
 */
static void
send(const PaxosReady *rd)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (size_t i = 0; i < rd->n_msgs; i++)
	{
		resetStringInfo(&buf);
		paxos_wire_encode(&rd->msgs[i], &buf);
		paxos_node_send(rd->msgs[i].to, RAFT_ITEM_PAXOS, (uint8 *) buf.data, buf.len);
	}
	pfree(buf.data);
}

/*
 * handle_readies: every Ready, in paxos.h's order; false if the acceptor
 * files failed (Paxos stopped here).
 */
static bool
handle_readies(void)
{
	char		err[1024];

	while (core && (paxos_has_ready(core) || to_self.len > 0))
	{
		PaxosReady	rd;

		if (!paxos_has_ready(core))
		{
			step_self();
			continue;
		}
		paxos_ready(core, &rd);
		if ((rd.round_changed || rd.n_persist > 0) &&
			paxos_disk_save(disk, rd.round_changed, rd.round, rd.persist, rd.n_persist,
							err, sizeof(err)) != 0)
		{
			storage_failed(err);
			return false;
		}
		send(&rd);
		if (rd.n_learned > 0)
			paxos_learn_record(rd.learned, (int) rd.n_learned);
		for (size_t i = 0; i < rd.n_results; i++)
		{
			const PaxosResult *r = &rd.results[i];
			int			k = find(r->tag);

			if (k >= 0)
				answer(k, r->unknown ? RAFT_ANSWER_UNKNOWN : RAFT_ANSWER_OK, r->value, r->swapped);
		}
		paxos_advance(core);
		step_self();
	}
	return true;
}

/*
 * paxos_node_handle_ready: the Readies, a collection pass if one is due,
 * then the waiting requests; again while starting those made Readies, so
 * a request that waited for its instance leaves in this loop of the
 * worker, not a tick later.
 */
void
paxos_node_handle_ready(void)
{
	char		err[1024];

	do
	{
		if (!handle_readies())
			return;
		if (core && !paxos_gc_run(core, disk, err, sizeof(err)))
		{
			storage_failed(err);
			return;
		}
		/* an instance an answered request held may be free for a waiting one */
		paxos_node_retry();
	} while (core && paxos_has_ready(core));
}

/*
 * on_chosen: a peer answered our prepare or accept with the value chosen
 * for an instance it has collected: learned here too, and the request of
 * ours that runs on it is answered with that value.
 */
static void
on_chosen(uint64 from, const uint8 *body, size_t len)
{
	PaxosLearned l;

	if (!paxos_gc_decode_chosen(body, len, &l))
	{
		elog(LOG, "distsys paxos: a malformed chosen value from node " UINT64_FORMAT " was dropped", from);
		return;
	}
	paxos_learn_record(&l, 1);
	for (int i = 0; i < n_pending; i++)
	{
		PaxosPending *p = &pending[i];

		if (p->started && p->req.kind == PAXOS_OP_DECREE &&
			p->req.instance.len == l.instance.len &&
			memcmp(p->req.instance.data, l.instance.data, l.instance.len) == 0)
		{
			(void) paxos_cancel(core, p->id);
			answer(i, RAFT_ANSWER_OK, l.value, false);
			break;
		}
	}
}

/*
 * paxos_node_item: an item of a peer's batch of one of Paxos's kinds.  A
 * message that does not decode, or whose sender or addressee is not the
 * batch's, is dropped and logged.
 */
void
paxos_node_item(uint64 from, uint8 kind, const uint8 *body, size_t len)
{
	PaxosMessage m;

	if (core == NULL)
		return;
	switch (kind)
	{
		case RAFT_ITEM_PAXOS:
			if (!paxos_wire_decode(body, len, &m) || m.from != from ||
				m.to != (uint64) distsys_node_id)
			{
				elog(LOG, "distsys paxos: a malformed message from node " UINT64_FORMAT " was dropped", from);
				return;
			}
			if (!paxos_knows(core, m.instance) && paxos_gc_intercept(&m))
				return;
			paxos_step(core, &m);
			break;
		case RAFT_ITEM_PAXOS_CHOSEN:
			on_chosen(from, body, len);
			break;
		case RAFT_ITEM_PAXOS_ASK:
			paxos_learn_ask(from, body, len);
			break;
		case RAFT_ITEM_PAXOS_TELL:
			paxos_learn_tell(from, body, len);
			break;
	}
}
