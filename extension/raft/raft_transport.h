/*-------------------------------------------------------------------------
 *
 * raft_transport.h
 *	  Batches between Raft workers over libpq: the outgoing connections a
 *	  worker keeps to its peers (raft_transport.c) and the shared-memory
 *	  inbox that raft_deliver fills on the receiving server
 *	  (raft_inbox.c).  docs/design/raft.md, "Among nodes: the plan".
 *
 * A batch is what one SELECT distsys.raft_deliver($1::bytea) carries from
 * one worker to another: a RaftEnvelope (core/raft_wire.h: magic, cluster
 * id, from, to, count) followed by count items, each
 *		kind (1 byte) | length (4 bytes, little-endian) | body (length bytes)
 * The kinds are the worker's: a Raft message in raft_wire form, and the
 * client requests a follower forwards to its leader and their answers
 * (raft_forward.c).  The transport carries items without looking inside
 * them; raft_deliver checks the envelope only (this cluster, a known
 * sender, this node), copies the batch into the inbox and sets the
 * worker's latch.  It never waits for Raft, so no node waits on another
 * inside a request.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_RAFT_TRANSPORT_H
#define DISTSYS_RAFT_TRANSPORT_H

#include "datatype/timestamp.h"

#include "core/raft_wire.h"
#include "raft_peers.h"

/* Item kinds in a batch. */
#define RAFT_ITEM_MESSAGE		1	/* a RaftMessage, raft_wire form */
#define RAFT_ITEM_PROPOSE		2	/* follower -> leader: propose this command */
#define RAFT_ITEM_READ_INDEX	3	/* follower -> leader: a read index, please */
#define RAFT_ITEM_READ_ANSWER	4	/* leader -> follower: the read index */
#define RAFT_ITEM_HEADER_BYTES	5

/* Largest batch raft_deliver accepts, and the inbox's size. */
#define RAFT_BATCH_MAX_BYTES	(8 * 1024 * 1024)
#define RAFT_INBOX_BYTES		(16 * 1024 * 1024)

/* ---- raft_inbox.c: the receiving side ---- */

extern void raft_inbox_shmem_request(void);
extern Size raft_inbox_shmem_size(void);
extern void raft_inbox_shmem_init(void);

/*
 * The worker, once it knows its cluster id and members: from now on
 * raft_deliver accepts batches for this node from these senders, and sets
 * this process's latch.  Called again after a membership change.
 */
extern void raft_inbox_open(const uint8 cluster[RAFT_CLUSTER_ID_BYTES],
							uint64 self, const uint64 *members, int n_members);

/* The worker is gone (exit callback): raft_deliver refuses until reopened. */
extern void raft_inbox_close(void);

/*
 * The worker takes every queued batch, oldest first: fn gets the decoded
 * envelope and the bytes after it (the items).  Returns how many batches.
 */
typedef void (*RaftBatchFn) (const RaftEnvelope *env, const uint8 *items,
							 size_t len, void *arg);
extern int	raft_inbox_drain(RaftBatchFn fn, void *arg);

/* Counters for raft_status/raft_members: batches dropped (inbox full). */
extern uint64 raft_inbox_dropped(void);

/* ---- raft_transport.c: the sending side (the worker only) ---- */

/* Connect to every member of peers but self (non-blocking, in the background). */
extern void raft_transport_start(const RaftPeers *peers, uint64 self,
								 const uint8 cluster[RAFT_CLUSTER_ID_BYTES]);

/*
 * Membership: start or stop talking to one peer; uri is the one the
 * cluster knows, and a route in distsys.raft_routes replaces it.
 */
extern void raft_transport_set_peer(uint64 id, const char *uri);
extern void raft_transport_remove_peer(uint64 id);

/* Append one item to the batch being built for peer to. */
extern void raft_transport_queue(uint64 to, uint8 kind, const uint8 *body, size_t len);

/*
 * Send every batch built since the last flush as one pipelined query per
 * peer.  A peer that is not connected, or has too many batches
 * unanswered, loses its batch (Raft tolerates loss; counted).
 */
extern void raft_transport_flush(void);

/*
 * Wait up to timeout_ms for the worker's latch or any peer socket, and
 * move every connection on (connect, send, read answers, reconnect with
 * backoff).  Returns with the latch reset; the caller handles interrupts.
 */
extern void raft_transport_wait(long timeout_ms);

/* Per peer, for raft_members: connected now, and when it last answered. */
extern bool raft_transport_peer_connected(uint64 id, TimestampTz *last_answer);

/* The fault settings (superuser-only, for tests): reread after a reload. */
extern void raft_transport_reload_faults(void);

/*
 * guc.c: distsys.raft_fault_drop_to (space-separated node ids: every batch
 * to them is lost) and distsys.raft_fault_delay_to (space-separated id:ms:
 * batches to id are held ms milliseconds, in order).  raft_fault_parse
 * reads either (with_ms false / true) for the check hooks and the
 * transport: the number of entries, or -1 with the reason in err.
 */
extern char *distsys_raft_fault_drop_to;
extern char *distsys_raft_fault_delay_to;
extern int	raft_fault_parse(const char *text, bool with_ms, uint64 *ids, int *ms,
							 char *err, size_t errlen);

#endif							/* DISTSYS_RAFT_TRANSPORT_H */
