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
 *	2. wait for CREATE EXTENSION distsys in that database (its tables hold
 *	   the applied state, and peers deliver through its raft_deliver).
 *	3. build the core from the log files (raft_store.c) and run the loop:
 *	   tick the core every RAFT_TICK_MS; take the batches peers delivered
 *	   (raft_inbox.c) and the requests of this server's backends
 *	   (raft_requests.c); handle every Ready in raft.h's order: persist
 *	   and sync, then queue the messages, then apply the committed entries
 *	   (raft_apply.c) and answer; send the queued batches
 *	   (raft_transport.c); wait for the latch or a peer's socket.
 *
 * Nothing here waits for another node: sending only queues, and peers'
 * batches arrive through shared memory.  A failed write or sync of the log
 * stops Raft on this node (state "failed") until the server restarts: the
 * kernel may have dropped the unwritten pages, so a retry could report
 * success for data that is not on disk.
 *
 * The core's memory comes from a memory context of its own (RaftCore),
 * so the core's allocator never returns NULL: palloc raises an ERROR,
 * which ends the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/guc.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "paxosnode.h"
#include "raftnode.h"
#include "raft_kv.h"
#include "raft_store.h"
#include "raft_transport.h"

/* Most entries one incoming append may carry (the core sends up to 64). */
#define RAFT_MAX_DECODE_ENTRIES	1024

static RaftNode *node = NULL;
static RaftStore *store = NULL;
static RaftHardState saved_hs;	/* term and vote last saved */
static uint64 applied = 0;		/* what distsys.raft_kv holds */
static RaftEntry *decode_entries;

static void idle(RaftNode *n, RaftWorkerState state) pg_attribute_noreturn();
static void step_message(uint64 from, const uint8 *buf, size_t len);

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
	/* leases end a fifth of the election timeout early: the clock margin */
	opt->lease_ticks = opt->election_min - Max(1, opt->election_min / 5);
	if (!pg_strong_random(&opt->seed, sizeof(opt->seed)))
		opt->seed = (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp();
	opt->alloc.alloc_fn = distsys_cxt_alloc;
	opt->alloc.realloc_fn = distsys_cxt_realloc;
	opt->alloc.free_fn = distsys_cxt_free;
	opt->alloc.ctx = AllocSetContextCreate(TopMemoryContext, "RaftCore",
										   ALLOCSET_DEFAULT_SIZES);
}

/*
 * start_core: the core, restarted from the log files (empty at the first
 * start).
 */
static RaftNode *
start_core(const RaftPeers *peers, bool *fresh)
{
	RaftOptions opt;
	RaftStoreState st;
	RaftRestore restore;
	RaftNode   *n;
	char		err[1024];

	core_options(peers, &opt);
	distsys_make_dir_durably(RAFT_LOG_DIR);
	if (raft_store_open(RAFT_LOG_DIR, NULL, &store, &st, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("distsys raft: cannot read the log: %s", err),
				 errhint("Restore pg_distsys/raft from a backup of this node, or remove the node from the cluster and add this server as a new one.")));
	raft_store_restore(&st, &restore);
	*fresh = !st.hs_found;
	if (st.hs_found)
		saved_hs = st.hs;
	n = raft_new(&opt, st.hs_found ? &restore : NULL);
	raft_store_state_free(&st);
	return n;
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
 * storage_failed: a failed write or sync of the log: stop Raft here.
 */
static void pg_attribute_noreturn()
storage_failed(const char *err)
{
	ereport(LOG,
			(errcode(ERRCODE_IO_ERROR),
			 errmsg("distsys raft: node %d stops: its log could not be made durable: %s",
					distsys_node_id, err),
			 errdetail("Nothing that depends on the failed write was sent. The node takes no part in Raft until the server restarts."),
			 errhint("Fix the storage, then restart the server; the log is read back and checked then.")));
	raft_client_worker_detach();
	raft_inbox_close();
	idle(NULL, RAFT_WORKER_FAILED);
}

/* Which messages of a Ready send_messages queues. */
typedef enum MsgSet
{
	MSGS_ALL,
	MSGS_APPENDS,				/* a leader's appends only */
	MSGS_BUT_APPENDS
} MsgSet;

/*
 * send_messages: the messages of a Ready in set which, queued for their
 * peers.
 */
static void
send_messages(const RaftReady *rd, MsgSet which)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (size_t i = 0; i < rd->n_msgs; i++)
	{
		const RaftMessage *m = &rd->msgs[i];

		if (which != MSGS_ALL && (m->type == RAFT_MSG_APPEND) != (which == MSGS_APPENDS))
			continue;

		enlargeStringInfo(&buf, raft_wire_size(m));
		buf.len = raft_wire_encode(m, (uint8 *) buf.data);
		raft_transport_queue(m->to, RAFT_ITEM_MESSAGE, (uint8 *) buf.data, buf.len);
		resetStringInfo(&buf);
	}
	pfree(buf.data);
}

/*
 * apply_guarded: one command in a subtransaction of its own; an error
 * rolls back that command only, is logged, and the command counts as not
 * applied (its client, if here, is not answered and times out).  Every
 * node applies the same commands to the same state, so one that fails
 * here fails on every node, and every node skips it.
 */
static bool
apply_guarded(const RaftEntry *e, const RaftCommand *c, RaftApplyResult *res)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		first = false;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		first = raft_apply_entry(e, c, res);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(LOG,
				(errmsg("distsys raft: entry " UINT64_FORMAT " could not be applied, and is skipped on every node: %s",
						e->index, ed->message)));
		FreeErrorData(ed);
		first = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return first;
}

/*
 * apply_batch: the commands of rd not applied yet, in one transaction
 * (guarded: each in a subtransaction of its own); false if an error
 * aborted the transaction (not when guarded: then it is raised).
 * copies[i]: entry i was not applied (a copy of a request applied
 * before, or it failed); results[i]: what applying it did.
 */
static bool
apply_batch(const RaftReady *rd, bool guarded, bool *results, bool *copies)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool any = false;
	volatile bool ok = true;

	PG_TRY();
	{
		for (size_t i = 0; i < rd->n_committed; i++)
		{
			const RaftEntry *e = &rd->committed[i];
			RaftCommand c;
			RaftApplyResult res = {false};

			if (e->index <= applied || e->type != RAFT_ENTRY_NORMAL)
				continue;
			if (!raft_command_decode(e->data, e->len, &c))
			{
				elog(LOG, "distsys raft: entry " UINT64_FORMAT " is not a command: skipped", e->index);
				continue;
			}
			if (!any)
				raft_apply_begin();
			any = true;
			copies[i] = !(guarded ? apply_guarded(e, &c, &res) : raft_apply_entry(e, &c, &res));
			results[i] = res.result;
		}
		if (any)
			raft_apply_commit(rd->committed[rd->n_committed - 1].index);
	}
	PG_CATCH();
	{
		if (guarded)
			PG_RE_THROW();
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * apply_committed: the committed entries this node has not applied yet,
 * in one transaction (again command by command if that one fails: see
 * apply_guarded); then each client of this node that waits for one of
 * them is answered (after the commit, so what it reads next sees it).
 */
static void
apply_committed(const RaftReady *rd)
{
	bool	   *results = palloc0(sizeof(bool) * (rd->n_committed + 1));
	bool	   *copies = palloc0(sizeof(bool) * (rd->n_committed + 1));

	if (!apply_batch(rd, false, results, copies))
	{
		memset(results, 0, sizeof(bool) * (rd->n_committed + 1));
		memset(copies, 0, sizeof(bool) * (rd->n_committed + 1));
		(void) apply_batch(rd, true, results, copies);
	}
	if (rd->n_committed > 0)
		applied = Max(applied, rd->committed[rd->n_committed - 1].index);
	for (size_t i = 0; i < rd->n_committed; i++)
	{
		const RaftEntry *e = &rd->committed[i];
		RaftCommand c;
		bool		is_cmd = e->type == RAFT_ENTRY_NORMAL && !copies[i] &&
			raft_command_decode(e->data, e->len, &c);

		raft_requests_applied(e, is_cmd ? &c : NULL, results[i]);
	}
	pfree(results);
	pfree(copies);
}

/*
 * install_snapshot: the state machine from snapshot s (sent by the
 * leader, or read back at start); requests of ours that it covers can no
 * longer be told apart from others, so their outcome is unknown.
 */
static void
install_snapshot(const RaftSnapshot *s)
{
	raft_snapshot_install(s);
	applied = s->index;
	raft_requests_snapshot(s->index);
}

/*
 * maybe_compact: once distsys.raft_snapshot_entries entries are applied
 * since the last snapshot, take one and let the log go up to it (the
 * core's memory and the store's whole segments).
 */
static void
maybe_compact(void)
{
	StringInfoData data;
	char		err[1024];

	if (applied < raft_snapshot(node)->index + (uint64) distsys_raft_snapshot_entries ||
		applied > raft_applied_index(node))
		return;
	raft_snapshot_take(&data);
	if (raft_compact(node, applied, data.data, data.len) != RAFT_OK)
		elog(ERROR, "distsys raft: could not compact the log at index " UINT64_FORMAT, applied);
	pfree(data.data);
	if (raft_store_compact(store, raft_snapshot(node), err, sizeof(err)) != 0)
		storage_failed(err);
}

/*
 * must_save: whether a Ready holds what must be durable before its messages
 * go: entries, a snapshot, a new term or vote.  A Ready that only moves the
 * commit index is not saved (nor synced): the commit index is volatile in
 * Raft, a restarted node learns it again from the leader, and apply_committed
 * skips what distsys.raft_applied says is applied even if that is above the
 * commit index the log recorded.  Syncing it put one more fsync on every
 * write's path (the leader's, between commit and answer) and on every node.
 */
static bool
must_save(const RaftReady *rd)
{
	return rd->snapshot != NULL || rd->n_entries > 0 ||
		(rd->hs_changed && (rd->hs.term != saved_hs.term || rd->hs.vote != saved_hs.vote));
}

/*
 * appends_first: whether a Ready's appends may leave before its entries
 * are synced here, in parallel with the sync (the Raft dissertation,
 * 10.2.1): the node leads, and the Ready changes neither term nor vote nor
 * snapshot, so the appends promise nothing about this node's disk.  Safe
 * because the leader counts its own copy towards a majority only when it
 * handles a follower's answer, which this single-threaded loop does after
 * this Ready's sync has returned; a follower persists what it receives
 * before it answers, as always.  Every other message still waits for the
 * sync (raft.h's rule).
 */
static bool
appends_first(const RaftReady *rd)
{
	return raft_role(node) == RAFT_LEADER && rd->snapshot == NULL && rd->n_entries > 0 &&
		!(rd->hs_changed && (rd->hs.term != saved_hs.term || rd->hs.vote != saved_hs.vote));
}

/*
 * handle_ready: every Ready batch, in raft.h's order (but see
 * appends_first).
 */
static void
handle_ready(void)
{
	char		err[1024];
	bool		early;

	while (raft_has_ready(node))
	{
		RaftReady	rd;

		raft_ready(node, &rd);
		early = appends_first(&rd);
		if (early)
		{
			send_messages(&rd, MSGS_APPENDS);
			raft_transport_flush();
		}
		if (must_save(&rd) && raft_store_save(store, &rd, err, sizeof(err)) != 0)
			storage_failed(err);
		if (rd.hs_changed)
			saved_hs = rd.hs;
		send_messages(&rd, early ? MSGS_BUT_APPENDS : MSGS_ALL);
		if (rd.snapshot != NULL)
			install_snapshot(rd.snapshot);
		apply_committed(&rd);
		for (size_t i = 0; i < rd.n_reads; i++)
			raft_requests_read_state(&rd.reads[i]);
		raft_advance(node, &rd);
	}
	raft_requests_serve_reads(applied);
}

/*
 * on_batch: the items of one batch a peer delivered: Raft messages go to
 * the core, requests to raft_requests.c, Paxos's items to paxos_node.c.  A malformed item ends the batch
 * (what came before it stands: each item is whole in itself).
 */
static void
on_batch(const RaftEnvelope *env, const uint8 *items, size_t len, void *arg)
{
	for (uint32 k = 0; k < env->count; k++)
	{
		uint8		kind;
		uint32		n;

		if (len < RAFT_ITEM_HEADER_BYTES)
			break;
		kind = items[0];
		n = raft_get_u32(items + 1);
		if (n > len - RAFT_ITEM_HEADER_BYTES)
			break;
		if (kind >= RAFT_ITEM_PAXOS && kind <= RAFT_ITEM_PAXOS_CHOSEN)
			paxos_node_item(env->from, kind, items + RAFT_ITEM_HEADER_BYTES, n);
		else if (!raft_members_in_conf(env->from))
			;					/* a Paxos member Raft removed */
		else if (kind == RAFT_ITEM_MESSAGE)
			step_message(env->from, items + RAFT_ITEM_HEADER_BYTES, n);
		else
			raft_requests_item(env->from, kind, items + RAFT_ITEM_HEADER_BYTES, n);
		items += RAFT_ITEM_HEADER_BYTES + n;
		len -= RAFT_ITEM_HEADER_BYTES + n;
	}
}

/*
 * step_message: one Raft message from peer from, decoded and stepped.
 */
static void
step_message(uint64 from, const uint8 *buf, size_t len)
{
	RaftMessage m;
	RaftSnapshot snap;
	size_t		used;
	RaftWireError e;

	e = raft_wire_decode(buf, len, &m, decode_entries, RAFT_MAX_DECODE_ENTRIES, &snap, &used);
	if (e != RAFT_WIRE_OK || used != len || m.from != from ||
		m.to != (uint64) distsys_node_id)
	{
		elog(LOG, "distsys raft: a malformed message from node " UINT64_FORMAT " was dropped: %s",
			 from, e != RAFT_WIRE_OK ? raft_wire_strerror(e) : "its sender or addressee is not the batch's");
		return;
	}
	(void) raft_step(node, &m);
}

/*
 * paxos_run: Paxos's turn in the loop (a no-op where it does not run):
 * its requests, its Readies, the learners' catch-up.
 */
static void
paxos_run(void)
{
	if (!paxos_node_running())
		return;
	paxos_node_handle_ready();	/* ends with paxos_node_retry */
	paxos_learn_catchup();
}

/*
 * after_wait: interrupts (SIGTERM ends the worker through die) and a
 * reload (the fault settings are reread).
 */
static void
after_wait(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		raft_transport_reload_faults();
	}
}

/*
 * run: the worker's loop (see the banner).  Ticks are counted from the
 * clock, so a slow iteration does not slow Raft's time; after a long stall
 * (SIGSTOP, an overloaded machine) at most max_ticks are replayed, more
 * than a lease lasts, so a paused leader's lease has run out when it
 * resumes.
 */
static void pg_attribute_noreturn()
run(int max_ticks)
{
	const int64 tick_us = RAFT_TICK_MS * 1000L;
	TimestampTz last = GetCurrentTimestamp();

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		int64		ticks = (now - last) / tick_us;

		last = ticks > max_ticks ? now : last + ticks * tick_us;
		for (int64 i = 0; i < Min(ticks, max_ticks); i++)
		{
			raft_tick(node);
			paxos_node_tick();
		}
		(void) raft_inbox_drain(on_batch, NULL);
		raft_requests_take();
		raft_requests_retry();
		handle_ready();
		raft_members_sync(node);
		handle_ready();
		paxos_run();
		maybe_compact();
		raft_transport_flush();
		publish(node, RAFT_WORKER_RUNNING);
		raft_transport_wait(Max(1L, (long) ((last + tick_us - GetCurrentTimestamp()) / 1000)));
		after_wait();
	}
}

/*
 * idle: publish state and sleep until shutdown.
 */
static void
idle(RaftNode *n, RaftWorkerState state)
{
	publish(n, state);
	pgstat_report_activity(STATE_IDLE, NULL);
	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 3600 * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
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
 * extension_ready: whether distsys is installed in this database.
 */
static bool
extension_ready(void)
{
	bool		found;

	StartTransactionCommand();
	found = OidIsValid(get_extension_oid("distsys", true));
	CommitTransactionCommand();
	return found;
}

/*
 * wait_for_extension: until CREATE EXTENSION distsys, checked each second.
 */
static void
wait_for_extension(void)
{
	bool		said = false;

	while (!extension_ready())
	{
		if (!said)
			ereport(LOG,
					(errmsg("distsys raft: node %d waits for CREATE EXTENSION distsys in database \"%s\"",
							distsys_node_id, distsys_raft_database)));
		said = true;
		publish(NULL, RAFT_WORKER_NO_EXTENSION);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * worker_exit: the worker is going: backends and peers stop handing it work.
 */
static void
worker_exit(int code, Datum arg)
{
	raft_client_worker_detach();
	raft_inbox_close();
}

/*
 * open_doors: let peers and this server's backends hand work to the
 * worker.  The inbox opens to the members of the configuration the log
 * holds (raft_members_sync), which may differ from the founders.
 */
static void
open_doors(const RaftPeers *peers, uint64 nonce)
{
	uint8		cluster[RAFT_CLUSTER_ID_BYTES];

	StartTransactionCommand();
	raft_cluster_id(peers, cluster);
	CommitTransactionCommand();
	before_shmem_exit(worker_exit, (Datum) 0);
	raft_requests_init(node, nonce);
	raft_client_worker_attach();
	raft_transport_start(peers, (uint64) distsys_node_id, cluster);
	raft_members_init(peers, cluster);
	raft_members_sync(node);
}

/*
 * raft_worker_main: the worker's entry point (see the banner).
 */
void
raft_worker_main(Datum arg)
{
	RaftPeers	peers;
	uint64		nonce;
	bool		fresh;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(distsys_raft_database, NULL, 0);
	pgstat_report_activity(STATE_RUNNING, "distsys: Raft identity check");

	raft_settings_peers(&peers);
	if (!checks_pass(&peers))
		idle(NULL, RAFT_WORKER_REFUSED);
	wait_for_extension();
	if (!enableFsync)
		ereport(WARNING,
				(errmsg("distsys raft: fsync is off, but node %d syncs its Raft log all the same",
						distsys_node_id),
				 errdetail("A vote or an acknowledged entry that an OS crash took back would break the other members' guarantees; the rest of this server's data is unprotected.")));
	/* the applied state is derived from the log: its commits need not wait */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	node = start_core(&peers, &fresh);
	applied = raft_apply_load_applied();
	if (fresh && applied > 0)
	{
		ereport(LOG,
				(errmsg("distsys raft: node %d starts a new log: the applied state of an earlier one (index " UINT64_FORMAT ") is cleared",
						distsys_node_id, applied)));
		raft_apply_reset();
		applied = 0;
	}
	/* a crash between a snapshot's sync and its install: install it now */
	if (raft_snapshot(node)->index > applied)
	{
		raft_snapshot_install(raft_snapshot(node));
		applied = raft_snapshot(node)->index;
	}
	decode_entries = MemoryContextAlloc(TopMemoryContext,
										RAFT_MAX_DECODE_ENTRIES * sizeof(RaftEntry));
	if (!pg_strong_random(&nonce, sizeof(nonce)))
		nonce = (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp();
	open_doors(&peers, nonce);
	paxos_node_start(&peers, ms_to_ticks(distsys_raft_election_timeout_ms), fresh);
	pgstat_report_activity(STATE_IDLE, NULL);
	ereport(LOG,
			(errmsg("distsys raft: node %d runs Raft with %d voters, term " UINT64_FORMAT ", applied index " UINT64_FORMAT,
					distsys_node_id, peers.n, raft_term(node), applied)));
	run(2 * ms_to_ticks(distsys_raft_election_timeout_ms));
}
