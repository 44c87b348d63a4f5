/*-------------------------------------------------------------------------
 *
 * paxosnode.h
 *	  Paxos among PostgreSQL nodes: the glue around the pure core
 *	  (extension/paxos/core), run by each member's Raft worker
 *	  (docs/design/paxos.md, "Among PostgreSQL nodes").
 *
 *	  paxos_wire.c		PaxosMessage and request bytes, and a bounded reader
 *	  paxos_node.c		the worker's side: core, acceptor files, Readies
 *	  paxos_learn.c		learned values into distsys.paxos_learned, catch-up
 *	  paxos_gc.c		finished instances collected, and answered for
 *	  paxos_client.c	the SQL API (a backend's side)
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_PAXOSNODE_H
#define DISTSYS_PAXOSNODE_H

#include "lib/stringinfo.h"

#include "core/paxos.h"
#include "paxos_disk.h"
#include "raft_peers.h"

/* Item kinds in a raft_deliver batch (beside raft_transport.h's and raft_kv.h's). */
#define RAFT_ITEM_PAXOS			8	/* one PaxosMessage */
#define RAFT_ITEM_PAXOS_ASK		9	/* catch-up: your learned rows after seq */
#define RAFT_ITEM_PAXOS_TELL	10	/* the answer: learned rows */
#define RAFT_ITEM_PAXOS_CHOSEN	11	/* a collected instance's value (paxos_gc.c) */

/* The core's names: a decree instance I is "d:I", a register key K "r:K". */
#define PAXOS_DECREE_PREFIX		'd'
#define PAXOS_REGISTER_PREFIX	'r'
/* Bytes of a user's instance name or key (the core's limit, less "d:"). */
#define PAXOS_USER_NAME_MAX		(PAXOS_MAX_NAME - 2)

/* ---- paxos_wire.c ---- */

/* A bounded reader over received bytes: every take checks what is left. */
typedef struct PxReader
{
	const uint8 *p;
	size_t		left;
	bool		ok;				/* false once a take ran past the end */
} PxReader;

extern void px_reader_init(PxReader *r, const uint8 *p, size_t len);
extern uint8 px_take_u8(PxReader *r);
extern uint32 px_take_u32(PxReader *r);
extern uint64 px_take_u64(PxReader *r);
extern const uint8 *px_take_bytes(PxReader *r, size_t n);
extern void px_put_u8(StringInfo out, uint8 v);
extern void px_put_value(StringInfo out, PaxosValue v);
extern bool px_take_value(PxReader *r, PaxosValue *v);
extern void px_put_name(StringInfo out, PaxosBytes name);
extern bool px_take_name(PxReader *r, PaxosBytes *name);

extern void paxos_wire_encode(const PaxosMessage *m, StringInfo out);
extern bool paxos_wire_decode(const uint8 *buf, size_t len, PaxosMessage *m);

/*
 * A backend's request, as its slot carries it to the worker:
 *		op (1: PaxosOpKind) | name (the core's, prefixed) | value | expected
 * and the answer the worker writes back into the slot:
 *		index: 1 if the value is present; result: CAS swapped;
 *		len, command: the value's bytes.
 */
extern void paxos_request_encode(PaxosOpKind op, PaxosBytes name, PaxosValue value,
								 PaxosValue expected, StringInfo out);
extern bool paxos_request_decode(const uint8 *buf, size_t len, PaxosRequest *req);

/* ---- paxos_node.c: the worker ---- */

extern bool paxos_is_member(const RaftPeers *founders, uint64 self);
extern void paxos_node_start(const RaftPeers *founders, int timeout_ticks, bool raft_fresh);
extern bool paxos_node_running(void);
extern void paxos_node_tick(void);
extern void paxos_node_item(uint64 from, uint8 kind, const uint8 *body, size_t len);
extern void paxos_node_request(uint64 id, const uint8 *body, size_t len);
extern void paxos_node_retry(void);
extern void paxos_node_handle_ready(void);
extern void paxos_node_send(uint64 to, uint8 kind, const uint8 *body, size_t len);

/* ---- paxos_learn.c: learned values (the worker) ---- */

extern void paxos_learn_init(const RaftPeers *founders, uint64 self);
extern void paxos_learn_record(const PaxosLearned *l, int n);
extern void paxos_learn_catchup(void);
extern void paxos_learn_ask(uint64 from, const uint8 *body, size_t len);
extern void paxos_learn_tell(uint64 from, const uint8 *body, size_t len);

/* ---- paxos_gc.c: finished instances (the worker) ---- */

extern void paxos_gc_candidate(PaxosBytes name);
extern bool paxos_gc_intercept(const PaxosMessage *m);
extern bool paxos_gc_lookup(PaxosBytes core_name, StringInfo value, PaxosBallot *b);
extern bool paxos_gc_decode_chosen(const uint8 *body, size_t len, PaxosLearned *l);
extern bool paxos_gc_run(PaxosNode *core, PaxosDisk *disk, char *err, size_t errlen);

#endif							/* DISTSYS_PAXOSNODE_H */
