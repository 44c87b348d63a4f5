/*-------------------------------------------------------------------------
 *
 * raft_inbox.c
 *	  The receiving side of the Raft transport: raft_deliver, run by an
 *	  ordinary backend that a peer's worker connected to, puts a batch into
 *	  a shared-memory inbox; this node's Raft worker drains it.
 *
 * Shared state: one RaftInboxShared, protected by its LWLock (a tranche of
 * one, "distsys raft inbox"):
 *	- whether the inbox is open, the worker's latch, and what a batch is
 *	  checked against (cluster id, this node's id, the members), written
 *	  by the worker (raft_inbox_open, raft_inbox_close);
 *	- a byte ring of RAFT_INBOX_BYTES holding length-prefixed batches,
 *	  appended by any number of raft_deliver callers and consumed by the
 *	  worker alone (raft_inbox_drain); head and tail count bytes since the
 *	  start and only grow, so tail - head is the bytes in use;
 *	- the count of batches dropped because the ring was full.
 * An LWLock rather than a spinlock because a batch of up to
 * RAFT_BATCH_MAX_BYTES is copied while holding it, and a spinlock must not
 * be held across a copy of megabytes.  The copy is a memcpy with no call
 * that can raise an ERROR, so no lock is held across an error, and the
 * worker's callback runs on a private copy with the lock released.
 *
 * raft_deliver never waits for the worker: a full ring drops the batch
 * (Raft tolerates loss, the sender will retry by protocol) and counts it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "raft_transport.h"

PG_FUNCTION_INFO_V1(raft_deliver);

#define RAFT_INBOX_TRANCHE	"distsys raft inbox"
#define RAFT_LEN_BYTES		4	/* the length before each batch in the ring */

typedef struct RaftInboxShared
{
	LWLock	   *lock;
	bool		open;
	Latch	   *latch;			/* the worker's PGPROC latch while open */
	uint8		cluster[RAFT_CLUSTER_ID_BYTES];
	uint64		self;
	int			n_members;
	uint64		members[3 * RAFT_MAX_NODES];	/* Raft's and Paxos's */
	uint64		head;			/* next byte the worker reads */
	uint64		tail;			/* next byte a deliverer writes */
	uint64		dropped;
	uint8		ring[RAFT_INBOX_BYTES];
} RaftInboxShared;

/* Why raft_deliver refuses a batch. */
typedef enum InboxVerdict
{
	INBOX_QUEUED,
	INBOX_FULL,
	INBOX_CLOSED,
	INBOX_OTHER_CLUSTER,
	INBOX_UNKNOWN_SENDER,
	INBOX_OTHER_ADDRESSEE
} InboxVerdict;

static RaftInboxShared *inbox = NULL;

/*
 * raft_inbox_shmem_request: the LWLock tranche (shmem_regions' request column).
 */
void
raft_inbox_shmem_request(void)
{
	RequestNamedLWLockTranche(RAFT_INBOX_TRANCHE, 1);
}

/*
 * raft_inbox_shmem_size: the shared memory raft_inbox_shmem_init needs.
 */
Size
raft_inbox_shmem_size(void)
{
	return sizeof(RaftInboxShared);
}

/*
 * raft_inbox_shmem_init: attach, resetting to a closed, empty inbox on
 * first creation (postmaster start or crash restart).
 */
void
raft_inbox_shmem_init(void)
{
	bool		found;

	inbox = ShmemInitStruct("distsys raft inbox", sizeof(RaftInboxShared), &found);
	if (found)
		return;
	/* the ring itself needs no zeroing: only bytes below tail are read */
	memset(inbox, 0, offsetof(RaftInboxShared, ring));
	inbox->lock = &(GetNamedLWLockTranche(RAFT_INBOX_TRANCHE))->lock;
}

/*
 * raft_inbox_open: accept batches for self from members (see the header),
 * waking this process.  Batches still queued stay: they were checked
 * against the previous membership, which is close enough for Raft, which
 * checks terms itself.
 */
void
raft_inbox_open(const uint8 cluster[RAFT_CLUSTER_ID_BYTES], uint64 self,
				const uint64 *members, int n_members)
{
	Assert(n_members >= 0 && n_members <= 3 * RAFT_MAX_NODES);
	LWLockAcquire(inbox->lock, LW_EXCLUSIVE);
	memcpy(inbox->cluster, cluster, RAFT_CLUSTER_ID_BYTES);
	inbox->self = self;
	inbox->n_members = n_members;
	memcpy(inbox->members, members, sizeof(uint64) * n_members);
	inbox->latch = MyLatch;
	inbox->open = true;
	LWLockRelease(inbox->lock);
}

/*
 * raft_inbox_close: refuse batches from now on, forget the latch (the
 * PGPROC may go to another process) and drop what is queued (it was for a
 * worker that is gone).  Safe to call when never opened, twice, or in a
 * process that has not attached the inbox.
 */
void
raft_inbox_close(void)
{
	if (inbox == NULL)
		return;
	LWLockAcquire(inbox->lock, LW_EXCLUSIVE);
	inbox->open = false;
	inbox->latch = NULL;
	inbox->head = inbox->tail;
	LWLockRelease(inbox->lock);
}

/*
 * raft_inbox_dropped: batches dropped because the inbox was full, since
 * the server started.
 */
uint64
raft_inbox_dropped(void)
{
	uint64		n;

	if (inbox == NULL)
		return 0;
	LWLockAcquire(inbox->lock, LW_SHARED);
	n = inbox->dropped;
	LWLockRelease(inbox->lock);
	return n;
}

/*
 * ring_copy: copy n bytes between the ring at position pos (wrapping at
 * its end) and buf; to_ring says which way.
 */
static void
ring_copy(uint64 pos, uint8 *buf, size_t n, bool to_ring)
{
	size_t		off = (size_t) (pos % RAFT_INBOX_BYTES);
	size_t		first = Min(n, RAFT_INBOX_BYTES - off);

	if (to_ring)
	{
		memcpy(inbox->ring + off, buf, first);
		memcpy(inbox->ring, buf + first, n - first);
	}
	else
	{
		memcpy(buf, inbox->ring + off, first);
		memcpy(buf + first, inbox->ring, n - first);
	}
}

/*
 * is_member: whether id is one of the members the inbox was opened with.
 */
static bool
is_member(uint64 id)
{
	for (int i = 0; i < inbox->n_members; i++)
		if (inbox->members[i] == id)
			return true;
	return false;
}

/*
 * inbox_put: check env against the open inbox and append the batch;
 * caller holds the lock exclusively.  *latch is the worker's latch to set
 * once the lock is released.
 */
static InboxVerdict
inbox_put(const RaftEnvelope *env, const uint8 *batch, uint32 len, Latch **latch)
{
	if (!inbox->open)
		return INBOX_CLOSED;
	if (memcmp(env->cluster, inbox->cluster, RAFT_CLUSTER_ID_BYTES) != 0)
		return INBOX_OTHER_CLUSTER;
	if (!is_member(env->from))
		return INBOX_UNKNOWN_SENDER;
	if (env->to != inbox->self)
		return INBOX_OTHER_ADDRESSEE;
	if (RAFT_INBOX_BYTES - (inbox->tail - inbox->head) < (uint64) len + RAFT_LEN_BYTES)
	{
		inbox->dropped++;
		return INBOX_FULL;
	}
	/* native byte order: only this server reads it */
	ring_copy(inbox->tail, (uint8 *) &len, RAFT_LEN_BYTES, true);
	ring_copy(inbox->tail + RAFT_LEN_BYTES, (uint8 *) batch, len, true);
	inbox->tail += RAFT_LEN_BYTES + len;
	*latch = inbox->latch;
	return INBOX_QUEUED;
}

/*
 * log_refusal_due: whether a refusal from sender should be LOG'ed now: at
 * most once a minute per sender in this backend.  A peer's worker keeps
 * one connection, so one backend sees all of its batches; a handful of
 * slots is enough, and the oldest is reused when they run out.
 */
#define REFUSAL_SLOTS		8
#define REFUSAL_INTERVAL_MS	60000

static bool
log_refusal_due(uint64 sender)
{
	static struct
	{
		uint64		sender;
		TimestampTz at;
	}			slots[REFUSAL_SLOTS];
	TimestampTz now = GetCurrentTimestamp();
	int			oldest = 0;

	for (int i = 0; i < REFUSAL_SLOTS; i++)
	{
		if (slots[i].at != 0 && slots[i].sender == sender)
		{
			if (!TimestampDifferenceExceeds(slots[i].at, now, REFUSAL_INTERVAL_MS))
				return false;
			oldest = i;
			break;
		}
		if (slots[i].at < slots[oldest].at)
			oldest = i;
	}
	slots[oldest].sender = sender;
	slots[oldest].at = now;
	return true;
}

/*
 * refusal_reason: what is wrong with env, as a phrase for messages.
 */
static const char *
refusal_reason(InboxVerdict v)
{
	switch (v)
	{
		case INBOX_OTHER_CLUSTER:
			return "it belongs to another Raft cluster";
		case INBOX_UNKNOWN_SENDER:
			return "its sender is not a member of this node's Raft cluster";
		case INBOX_OTHER_ADDRESSEE:
			return "it is addressed to another node";
		default:
			return "it was refused";
	}
}

/*
 * refuse: the ERROR for a batch the inbox would not take, LOG'ed first
 * (rate-limited) so that the receiving server's operator sees a
 * misconfigured peer even though the ERROR goes to the peer.
 */
static void
refuse(InboxVerdict v, const RaftEnvelope *env)
{
	if (v == INBOX_CLOSED)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("the Raft worker of this node is not running"),
				 errdetail("Its inbox is closed, so the batch from node %llu was not taken.",
						   (unsigned long long) env->from),
				 errhint("See raft_status on this node.")));
	if (log_refusal_due(env->from))
		ereport(LOG,
				(errmsg("distsys raft: refused a batch from node %llu to node %llu: %s",
						(unsigned long long) env->from, (unsigned long long) env->to,
						refusal_reason(v)),
				 errdetail("Refusals from this node are logged at most once a minute per connection.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("Raft batch from node %llu to node %llu refused: %s",
					(unsigned long long) env->from, (unsigned long long) env->to,
					refusal_reason(v)),
			 errhint("Every member must have the same distsys.peers, and each its own distsys.node_id.")));
}

/*
 * raft_deliver(batch bytea): queue one batch for this node's Raft worker
 * and wake it.  Refuses an oversized or malformed batch, one of another
 * cluster, from a non-member or for another node, and any batch while no
 * worker runs; a full inbox drops the batch silently (counted).
 */
Datum
raft_deliver(PG_FUNCTION_ARGS)
{
	bytea	   *arg = PG_GETARG_BYTEA_PP(0);
	const uint8 *batch = (const uint8 *) VARDATA_ANY(arg);
	size_t		len = VARSIZE_ANY_EXHDR(arg);
	RaftEnvelope env;
	RaftWireError werr;
	InboxVerdict v;
	Latch	   *latch = NULL;

	distsys_require_preload("raft_deliver");
	if (len > RAFT_BATCH_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Raft batch of %zu bytes is larger than the limit of %d bytes",
						len, RAFT_BATCH_MAX_BYTES)));
	werr = raft_envelope_decode(batch, len, &env);
	if (werr != RAFT_WIRE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("malformed Raft batch: %s", raft_wire_strerror(werr))));

	LWLockAcquire(inbox->lock, LW_EXCLUSIVE);
	v = inbox_put(&env, batch, (uint32) len, &latch);
	LWLockRelease(inbox->lock);

	if (latch != NULL)
		SetLatch(latch);
	else if (v != INBOX_QUEUED && v != INBOX_FULL)
		refuse(v, &env);
	PG_RETURN_VOID();
}

/*
 * inbox_take: the oldest batch, copied into palloc'd memory (*len bytes),
 * or NULL when nothing is queued below limit (the tail when the drain
 * began, so a drain ends even while peers keep delivering).
 */
static uint8 *
inbox_take(uint64 limit, uint32 *len)
{
	uint8	   *copy = NULL;

	LWLockAcquire(inbox->lock, LW_EXCLUSIVE);
	/* a close in between may have moved head past limit */
	if (inbox->head < limit && inbox->head < inbox->tail)
	{
		ring_copy(inbox->head, (uint8 *) len, RAFT_LEN_BYTES, false);
		/* palloc may fail: the lock is released by the ERROR's cleanup */
		copy = palloc(*len);
		ring_copy(inbox->head + RAFT_LEN_BYTES, copy, *len, false);
		inbox->head += RAFT_LEN_BYTES + *len;
	}
	LWLockRelease(inbox->lock);
	return copy;
}

/*
 * raft_inbox_drain: give every batch queued now to fn, oldest first; see
 * the header.  Returns how many.
 */
int
raft_inbox_drain(RaftBatchFn fn, void *arg)
{
	uint64		limit;
	uint8	   *batch;
	uint32		len;
	int			n = 0;

	LWLockAcquire(inbox->lock, LW_SHARED);
	limit = inbox->tail;
	LWLockRelease(inbox->lock);

	while ((batch = inbox_take(limit, &len)) != NULL)
	{
		RaftEnvelope env;

		/* raft_deliver decoded it already; this cannot fail */
		if (raft_envelope_decode(batch, len, &env) != RAFT_WIRE_OK)
			elog(ERROR, "distsys raft: a queued batch has a malformed envelope");
		fn(&env, batch + RAFT_ENVELOPE_BYTES, len - RAFT_ENVELOPE_BYTES, arg);
		pfree(batch);
		n++;
	}
	return n;
}
