/*-------------------------------------------------------------------------
 *
 * raft_worker.c
 *	  The Raft worker: one per server with distsys.node_id > 0, the glue
 *	  between the pure core (core/raft.h) and PostgreSQL.
 *
 * Life cycle (registered at preload, started once the server accepts
 * writes, restarted 5 seconds after it dies):
 *	1. connect to distsys.raft_database; check the data directory's Raft
 *	   identity against the settings (raft_identity.c) and that this
 *	   node's URI reaches this server (raft_self.c).  A mismatch is logged
 *	   once as an ERROR, raft_status says "refused", and the worker then
 *	   sleeps until shutdown: it neither runs Raft nor exits, since an
 *	   exit would be restarted (code 1) or leave no worker to keep the
 *	   status right after a crash restart (code 0 unregisters it).  The
 *	   settings it disagrees with need a restart anyway.
 *	2. build the core from the stored hard state (term, vote, commit).
 *	3. with one voter, tick the core every RAFT_TICK_MS and handle its
 *	   Ready batches: the node elects itself.  With several voters the
 *	   worker only publishes its stored term and waits: the transport
 *	   between nodes is the next slice of issue 16.
 *
 * What this slice persists: the hard state, synced before raft_advance
 * (persist before send; there is nothing to send with one voter).  Log
 * entries are kept in memory only: the only ones are each new leader's
 * no-op, as nothing proposes entries yet; durable log storage comes with
 * the replicated key-value store.  A restart therefore begins with an
 * empty log and the stored term, which is safe for a single voter.
 *
 * The core's memory comes from a memory context of its own (RaftCore),
 * so the core's allocator never returns NULL: palloc raises an ERROR,
 * which ends the worker.  The only shared state is the published status
 * (raft_status.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "raftnode.h"

PGDLLEXPORT void raft_worker_main(Datum arg);

/*
 * raft_worker_register: from _PG_init, when preloaded and Raft is on.
 */
void
raft_worker_register(void)
{
	if (distsys_node_id > 0)
		distsys_register_worker("raft_worker_main", "distsys raft worker", 5);
}

/*
 * core_alloc, core_realloc, core_free: the core's RaftAllocator over the
 * RaftCore memory context (ctx); palloc raises an ERROR instead of
 * returning NULL, as raft.h requires.
 */
static void *
core_alloc(void *ctx, size_t size)
{
	return MemoryContextAlloc((MemoryContext) ctx, size);
}

static void *
core_realloc(void *ctx, void *ptr, size_t size)
{
	return ptr ? repalloc(ptr, size) : MemoryContextAlloc((MemoryContext) ctx, size);
}

static void
core_free(void *ctx, void *ptr)
{
	if (ptr)
		pfree(ptr);
}

/*
 * ms_to_ticks: a timeout in ticks, rounded up, at least 1.
 */
static int
ms_to_ticks(int ms)
{
	return Max(1, (ms + RAFT_TICK_MS - 1) / RAFT_TICK_MS);
}

/*
 * core_options: the core's options from the settings; every member of
 * distsys.peers is a bootstrap voter.
 */
static void
core_options(const RaftPeers *peers, RaftOptions *opt)
{
	raft_default_options(opt);
	opt->id = (uint64) distsys_node_id;
	for (int i = 0; i < peers->n; i++)
		opt->bootstrap.voters[i] = peers->peer[i].id;
	opt->bootstrap.n_voters = peers->n;
	opt->election_min = ms_to_ticks(distsys_raft_election_timeout_ms);
	opt->election_max = 2 * opt->election_min;
	/* rounded down, so heartbeats come at least as often as set */
	opt->heartbeat_ticks = Max(1, distsys_raft_heartbeat_interval_ms / RAFT_TICK_MS);
	if (opt->heartbeat_ticks >= opt->election_min)
		opt->heartbeat_ticks = Max(1, opt->election_min - 1);
	if (!pg_strong_random(&opt->seed, sizeof(opt->seed)))
		opt->seed = (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp();
	opt->alloc.alloc_fn = core_alloc;
	opt->alloc.realloc_fn = core_realloc;
	opt->alloc.free_fn = core_free;
	opt->alloc.ctx = AllocSetContextCreate(TopMemoryContext, "RaftCore",
										   ALLOCSET_DEFAULT_SIZES);
}

/*
 * start_core: the core, restarted from the stored hard state if any.
 */
static RaftNode *
start_core(const RaftPeers *peers)
{
	RaftOptions opt;
	RaftHardStateFile stored;
	RaftRestore restore;

	core_options(peers, &opt);
	raft_hard_state_read(&stored);
	if (!stored.found)
		return raft_new(&opt, NULL);
	memset(&restore, 0, sizeof(restore));
	restore.hs.term = stored.term;
	restore.hs.vote = stored.vote;
	restore.hs.commit = stored.commit;
	return raft_new(&opt, &restore);
}

/*
 * publish: the core's state (or none: node NULL) as raft_status shows it.
 */
static void
publish(RaftNode *node, RaftWorkerState state)
{
	RaftStatusShared st;

	memset(&st, 0, sizeof(st));
	st.state = state;
	st.role = node ? (int) raft_role(node) : -1;
	if (node)
	{
		st.term = raft_term(node);
		st.leader = raft_leader(node);
		st.commit = raft_commit_index(node);
		st.applied = raft_applied_index(node);
		st.last_index = raft_last_index(node);
		st.snapshot_index = raft_snapshot(node)->index;
	}
	raft_status_publish(&st);
}

/*
 * handle_ready: every Ready batch, in raft.h's order.  Only the hard state
 * is persisted (see the banner); with one voter there is no message to
 * send and no snapshot to install, and the committed entries are no-ops.
 */
static void
handle_ready(RaftNode *node)
{
	while (raft_has_ready(node))
	{
		RaftReady	rd;

		raft_ready(node, &rd);
		if (rd.hs_changed)
			raft_hard_state_write(rd.hs.term, rd.hs.vote, rd.hs.commit);
		if (rd.n_msgs > 0 || rd.snapshot != NULL)
			elog(ERROR, "distsys raft: a single voter has %zu messages to send", rd.n_msgs);
		for (size_t i = 0; i < rd.n_committed; i++)
			if (rd.committed[i].type == RAFT_ENTRY_NORMAL)
				elog(ERROR, "distsys raft: entry %llu commits, but nothing proposes entries yet",
					 (unsigned long long) rd.committed[i].index);
		raft_advance(node, &rd);
	}
}

/*
 * wait_a_while: sleep up to timeout_ms or until the latch is set; handle
 * a reload and interrupts (SIGTERM ends the worker through die).
 */
static void
wait_a_while(long timeout_ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * run_single_voter: tick the core at RAFT_TICK_MS, forever.  Ticks are
 * counted from the clock, so a slow iteration does not slow Raft's time;
 * after a long stall (SIGSTOP, an overloaded machine) at most one
 * election timeout of ticks is replayed, not the whole pause.
 */
static void
run_single_voter(RaftNode *node, int max_ticks)
{
	const int64 tick_us = RAFT_TICK_MS * 1000L;
	TimestampTz last = GetCurrentTimestamp();

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		int64		ticks = (now - last) / tick_us;

		last = ticks > max_ticks ? now : last + ticks * tick_us;
		for (int64 i = 0; i < Min(ticks, max_ticks); i++)
			raft_tick(node);
		handle_ready(node);
		publish(node, RAFT_WORKER_RUNNING);
		wait_a_while(Max(1L, (long) ((last + tick_us - GetCurrentTimestamp()) / 1000)));
	}
}

/*
 * idle: publish state and sleep until shutdown.
 */
static void
idle(RaftNode *node, RaftWorkerState state)
{
	publish(node, state);
	pgstat_report_activity(STATE_IDLE, NULL);
	for (;;)
		wait_a_while(3600 * 1000L);
}

/*
 * checks_pass: the identity and self checks; false (the ERROR logged)
 * when they refuse.  Other errors end the worker, which is restarted.
 */
static bool
checks_pass(const RaftPeers *peers)
{
	bool		refused = false;

	PG_TRY();
	{
		/* in a transaction: the SHA-256 of the cluster id needs a resource owner */
		StartTransactionCommand();
		raft_identity_check(peers);
		CommitTransactionCommand();
		raft_self_check(peers);
	}
	PG_CATCH();
	{
		if (!raft_identity_refused)
			PG_RE_THROW();
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		refused = true;
	}
	PG_END_TRY();
	return !refused;
}

/*
 * raft_worker_main: the worker's entry point (see the banner).
 */
void
raft_worker_main(Datum arg)
{
	RaftPeers	peers;
	RaftNode   *node;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(distsys_raft_database, NULL, 0);
	pgstat_report_activity(STATE_RUNNING, "distsys: Raft identity check");

	raft_settings_peers(&peers);
	if (!checks_pass(&peers))
		idle(NULL, RAFT_WORKER_REFUSED);
	node = start_core(&peers);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (peers.n > 1)
	{
		ereport(LOG,
				(errmsg("distsys raft: node %d waits: the transport between %d voters is not built yet",
						distsys_node_id, peers.n)));
		idle(node, RAFT_WORKER_NO_TRANSPORT);
	}
	ereport(LOG,
			(errmsg("distsys raft: node %d is the only voter: running Raft alone", distsys_node_id)));
	run_single_voter(node, 2 * ms_to_ticks(distsys_raft_election_timeout_ms));
}
