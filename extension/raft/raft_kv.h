/*-------------------------------------------------------------------------
 *
 * raft_kv.h
 *	  The replicated key-value store: the commands in the log
 *	  (raft_command.c), the client requests that backends hand to the
 *	  worker through shared memory (raft_client.c), the worker's side of
 *	  them (raft_requests.c) and the state machine applied into
 *	  distsys.raft_kv (raft_apply.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_RAFT_KV_H
#define DISTSYS_RAFT_KV_H

#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "core/raft.h"
#include "raft_peers.h"

/* Limits of one command (documented in docs/reference.md). */
#define RAFT_KEY_MAX_BYTES		1024
#define RAFT_COMMAND_MAX_BYTES	(64 * 1024)

/* SQLSTATE YR001: no quorum answered in time; a write may still commit. */
#define ERRCODE_RAFT_NO_QUORUM	MAKE_SQLSTATE('Y','R','0','0','1')

/* The NOTIFY channel of applied changes (payload: "<index> <key>"). */
#define RAFT_WATCH_CHANNEL		"distsys_raft"

typedef enum RaftOp
{
	RAFT_OP_PUT = 1,
	RAFT_OP_CAS = 2,
	RAFT_OP_DELETE = 3,
	RAFT_OP_MEMBER = 4			/* key: a node id in decimal, value: its URI */
} RaftOp;

/*
 * RaftCommand: one write, as a NORMAL entry carries it.  origin, nonce and
 * request name the request that proposed it (origin = the node whose
 * client asked, nonce = that node's worker incarnation, request = the
 * client slot and its use count), so the origin node answers its client
 * when it applies the entry; they take no part in the state machine.
 * Strings point into the entry (not NUL-terminated).
 */
typedef struct RaftCommand
{
	RaftOp		op;
	uint64		origin;
	uint64		nonce;
	uint64		request;
	const char *key;
	uint32		key_len;
	bool		has_expected;	/* CAS: false = "the key is absent" */
	const char *expected;		/* CAS: jsonb text */
	uint32		expected_len;
	const char *value;			/* PUT, CAS: jsonb text */
	uint32		value_len;
} RaftCommand;

/* raft_command.c */
extern void raft_command_encode(const RaftCommand *c, StringInfo out);
extern bool raft_command_decode(const uint8 *data, size_t len, RaftCommand *c);
extern void raft_put_u32(StringInfo out, uint32 v);
extern void raft_put_u64(StringInfo out, uint64 v);
extern uint32 raft_get_u32(const uint8 *p);
extern uint64 raft_get_u64(const uint8 *p);

/* ---- raft_client.c: the backend's side of a request ---- */

typedef enum RaftReqKind
{
	RAFT_REQ_WRITE = 1,			/* a command (PUT, CAS, DELETE) */
	RAFT_REQ_READ,				/* ReadIndex: linearizable */
	RAFT_REQ_READ_LEASE,		/* leader lease, ReadIndex if none */
	RAFT_REQ_CONF,				/* a membership change: type (1), node (8) */
	RAFT_REQ_TRANSFER,			/* leadership to node (8) */
	RAFT_REQ_PAXOS				/* a Paxos operation (paxosnode.h): the worker
								 * answers the value's bytes in command */
} RaftReqKind;

typedef enum RaftSlotState
{
	RAFT_SLOT_FREE = 0,
	RAFT_SLOT_NEW,				/* filled by its backend, for the worker */
	RAFT_SLOT_TAKEN,			/* the worker has it */
	RAFT_SLOT_DONE				/* answered; the backend reads the answer */
} RaftSlotState;

typedef enum RaftAnswer
{
	RAFT_ANSWER_OK = 0,
	RAFT_ANSWER_UNKNOWN,		/* the outcome cannot be known (see raft_requests.c) */
	RAFT_ANSWER_REFUSED			/* the leader refused it (refusal: RAFT_ERR_*) */
} RaftAnswer;

/*
 * RaftRequestSlot: one per backend (indexed by pgprocno), so a backend
 * never waits for a free one.  The backend fills it and sets it NEW; the
 * worker copies the command out and sets it TAKEN; the worker answers
 * only if seq is still the one it took (a backend that gave up bumps seq
 * and may reuse the slot at once).  mutex guards every field.
 */
typedef struct RaftRequestSlot
{
	slock_t		mutex;
	RaftSlotState state;
	RaftReqKind kind;
	uint32		seq;
	Latch	   *latch;			/* the backend's */
	RaftAnswer	answer;
	uint64		index;			/* write: its log index; read: the read index */
	bool		result;			/* CAS, DELETE */
	int32		refusal;		/* RAFT_ANSWER_REFUSED: the core's RAFT_ERR_* */
	uint32		len;
	uint8		command[RAFT_COMMAND_MAX_BYTES];
} RaftRequestSlot;

extern Size raft_client_shmem_size(void);
extern void raft_client_shmem_init(void);

/* The worker: announce itself (its latch), or leave. */
extern void raft_client_worker_attach(void);
extern void raft_client_worker_detach(void);

/* The worker: the slots (count and address) and whether any became NEW. */
extern int	raft_client_nslots(void);
extern RaftRequestSlot *raft_client_slot(int i);
extern bool raft_client_take_new_flag(void);

/* A request of this backend, answered in *out (YR001 on a timeout). */
extern void raft_client_submit(const char *what, RaftReqKind kind, const StringInfo command,
							   RaftRequestSlot *out);
extern void raft_client_write(const char *what, RaftCommand *c, RaftRequestSlot *out);
extern void raft_client_require(const char *what);

/* The request id in a command: the slot and its use count. */
#define RAFT_REQUEST_ID(slot, seq)	(((uint64) (slot) << 32) | (uint64) (seq))
#define RAFT_REQUEST_SLOT(id)		((int) ((id) >> 32))
#define RAFT_REQUEST_SEQ(id)		((uint32) (id))

/* ---- raft_apply.c: the state machine (the worker) ---- */

/* What applying one command did, for its client. */
typedef struct RaftApplyResult
{
	bool		result;			/* CAS swapped, DELETE found the key */
} RaftApplyResult;

extern uint64 raft_apply_load_applied(void);
extern void raft_apply_reset(void);
extern void raft_apply_begin(void);
extern bool raft_apply_entry(const RaftEntry *e, const RaftCommand *c,
							 RaftApplyResult *res);
extern void raft_apply_commit(uint64 applied);

/* ---- raft_requests.c: the worker's side of client requests ---- */

/* Item kinds of the worker's beside raft_transport.h's. */
#define RAFT_ITEM_PROPOSE_ANSWER	5	/* leader -> follower: where it went */
#define RAFT_ITEM_CONF				6	/* follower -> leader: id, type, node */
#define RAFT_ITEM_TRANSFER			7	/* follower -> leader: to node */

extern void raft_requests_init(RaftNode *node, uint64 nonce);
extern void raft_requests_take(void);
extern void raft_requests_retry(void);
extern void raft_requests_item(uint64 from, uint8 kind, const uint8 *body, size_t len);
extern void raft_requests_read_state(const RaftReadState *rs);
extern void raft_requests_applied(const RaftEntry *e, const RaftCommand *c, bool result);
extern void raft_requests_serve_reads(uint64 applied);
extern void raft_requests_snapshot(uint64 index);

/* ---- raft_snapshot.c ---- */

extern void raft_snapshot_take(StringInfo out);
extern void raft_snapshot_install(const RaftSnapshot *s);

/* ---- raft_members.c: membership (the worker's side) ---- */

extern Size raft_members_shmem_size(void);
extern void raft_members_shmem_request(void);
extern void raft_members_shmem_init(void);
extern void raft_members_init(const RaftPeers *peers, const uint8 *cluster);
extern void raft_members_learn(uint64 id, const char *uri, uint32 len);
extern void raft_members_sync(RaftNode *node);
extern bool raft_members_in_conf(uint64 id);

#endif							/* DISTSYS_RAFT_KV_H */
