/*-------------------------------------------------------------------------
 *
 * raftnode.h
 *	  Raft among PostgreSQL nodes: the worker glue around the core
 *	  (extension/raft/core), its settings, identity and status.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_RAFTNODE_H
#define DISTSYS_RAFTNODE_H

#include "port/atomics.h"
#include "storage/spin.h"

#include "raft_peers.h"

/* The worker ticks the core every RAFT_TICK_MS; timeouts are rounded up. */
#define RAFT_TICK_MS	10

/* guc.c: the settings (raft_settings.c validates them at preload) */
extern int	distsys_node_id;
extern char *distsys_peers;
extern char *distsys_raft_routes;
extern char *distsys_raft_database;
extern bool distsys_raft_join;
extern int	distsys_raft_election_timeout_ms;
extern int	distsys_raft_heartbeat_interval_ms;
extern int	distsys_raft_request_timeout_ms;
extern int	distsys_raft_snapshot_entries;

/* raft_settings.c */
extern void raft_settings_check(void);
extern void raft_settings_peers(RaftPeers *out);
extern void raft_settings_routes(RaftPeers *out);
extern char *raft_uri_problem(const char *uri);

/*
 * What the worker is doing, as raft_status shows it (its "state" column).
 */
typedef enum RaftWorkerState
{
	RAFT_WORKER_OFF,			/* distsys.node_id = 0 */
	RAFT_WORKER_STARTING,		/* checking its identity */
	RAFT_WORKER_REFUSED,		/* identity does not match: not running */
	RAFT_WORKER_NO_EXTENSION,	/* waits for CREATE EXTENSION distsys */
	RAFT_WORKER_RUNNING,		/* ticking the core */
	RAFT_WORKER_FAILED			/* its storage failed: stopped until restart */
} RaftWorkerState;

/*
 * RaftStatusShared: what the worker publishes for raft_status.  Written by
 * the worker only, read by anyone, under mutex (a copy of a few words).
 */
typedef struct RaftStatusShared
{
	slock_t		mutex;
	RaftWorkerState state;
	int			role;			/* RaftRole; -1: no core running */
	uint64		term;
	uint64		leader;
	uint64		commit;
	uint64		applied;
	uint64		last_index;
	uint64		snapshot_index;
} RaftStatusShared;

/* raft_status.c */
extern Size raft_status_shmem_size(void);
extern void raft_status_shmem_init(void);
extern void raft_status_publish(const RaftStatusShared *st);

/* The node's files: its identity, and the log (raft_store.h). */
#define RAFT_DIR			"pg_distsys/raft"
#define RAFT_LOG_DIR		RAFT_DIR "/log"

/* raft_identity.c */
extern void raft_identity_check(const RaftPeers *peers);
extern void raft_cluster_id(const RaftPeers *peers, uint8 *out);
extern bool raft_identity_refused;

/* raft_self.c */
extern void raft_self_check(const RaftPeers *peers);

/* raft_worker.c */
extern void raft_worker_register(void);

#endif							/* DISTSYS_RAFTNODE_H */
