/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Every distsys.* setting, defined in one place.
 *
 * Each subsystem declares the variables of its settings in its own header
 * (lock/dlock.h, msg/msg.h, dtx/dtx.h, raft/raftnode.h) and reads them;
 * this file defines and registers them all, and nothing else registers a
 * setting.
 * The "distsys" prefix is reserved, so a misspelt distsys.* setting in
 * postgresql.conf is reported instead of silently ignored.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"
#include <limits.h>

#include "distsys.h"
#include "dlock.h"
#include "dtx.h"
#include "msg.h"
#include "raftnode.h"
#include "raft_transport.h"

int			distsys_max_locks = 4096;
int			distsys_max_lock_holders = 8192;
int			distsys_lock_max_ttl_s = 7 * 24 * 3600;
int			distsys_inbox_retention_s = 7 * 24 * 3600;
int			distsys_dtx_prepare_timeout_ms = 30000;
int			distsys_dtx_commit_timeout_ms = 30000;
int			distsys_dtx_lock_timeout_ms = 10000;
int			distsys_dtx_prepared_reserve = 2;
int			distsys_dtx_fault = DTX_FAULT_NONE;
bool		distsys_dtx_last_agent = true;
bool		distsys_dtx_async_finish = false;
int			distsys_dtx_recovery_interval_s = 5;
char	   *distsys_dtx_recovery_database = NULL;
int			distsys_node_id = 0;
char	   *distsys_peers = NULL;
char	   *distsys_raft_routes = NULL;
char	   *distsys_raft_database = NULL;
bool		distsys_raft_join = false;
int			distsys_raft_election_timeout_ms = 150;
int			distsys_raft_heartbeat_interval_ms = 50;
int			distsys_raft_request_timeout_ms = 5000;
int			distsys_raft_snapshot_entries = 10000;
char	   *distsys_raft_fault_drop_to = NULL;
char	   *distsys_raft_fault_delay_to = NULL;

static void distsys_define_startup_gucs(void);
static void distsys_define_dtx_gucs(void);
static void distsys_define_raft_gucs(void);

/*
 * distsys_define_gucs: register the settings and reserve the prefix.
 */
void
distsys_define_gucs(void)
{
	distsys_define_startup_gucs();

	DefineCustomIntVariable("distsys.lock_max_ttl",
							"Longest lease a lock may be granted or renewed for.",
							NULL,
							&distsys_lock_max_ttl_s,
							7 * 24 * 3600, 1, 365 * 24 * 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("distsys.inbox_retention",
							"How long the inbox remembers a message, counted from when it was sent.",
							"Older messages are refused by inbox_claim, since a duplicate of them could no longer be recognised.",
							&distsys_inbox_retention_s,
							7 * 24 * 3600, 60, 10 * 365 * 24 * 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	distsys_define_dtx_gucs();
	MarkGUCPrefixReserved("distsys");
}

static const struct config_enum_entry dtx_fault_options[] = {
	{"none", DTX_FAULT_NONE, false},
	{"crash_after_some_prepares", DTX_FAULT_AFTER_SOME_PREPARES, false},
	{"crash_after_decision", DTX_FAULT_AFTER_DECISION, false},
	{"crash_after_some_commits", DTX_FAULT_AFTER_SOME_COMMITS, false},
	{"crash_while_deciding", DTX_FAULT_WHILE_DECIDING, false},
	{NULL, 0, false}
};

/*
 * distsys_define_dtx_gucs: the settings of distributed transactions.
 */
static void
distsys_define_dtx_gucs(void)
{
	DefineCustomIntVariable("distsys.dtx_prepare_timeout",
							"How long the commit of a distributed transaction waits for PREPARE TRANSACTION on its nodes.",
							"When it passes, the transaction fails and is rolled back everywhere.",
							&distsys_dtx_prepare_timeout_ms,
							30000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("distsys.dtx_commit_timeout",
							"How long a distributed transaction waits for COMMIT PREPARED or ROLLBACK on its nodes after the local commit or abort.",
							"What does not answer in time is finished by the recovery worker.",
							&distsys_dtx_commit_timeout_ms,
							30000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("distsys.dtx_lock_timeout",
							"lock_timeout of the remote transactions of distributed transactions (0: none).",
							"Two distributed transactions waiting for each other on different nodes end with a lock-timeout error instead of hanging.",
							&distsys_dtx_lock_timeout_ms,
							10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("distsys.dtx_last_agent",
							 "Let one writing node's commit decide a distributed transaction that wrote nothing locally.",
							 "Saves the coordinator's decision record and its WAL flush; off: the coordinator always records the decision.",
							 &distsys_dtx_last_agent,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("distsys.dtx_async_finish",
							 "Answer COMMIT once the distributed transaction's decision is durable, without waiting for the nodes' COMMIT PREPARED.",
							 "The nodes' COMMIT PREPARED is sent and its answer read before the session next uses the node; until it arrives, other sessions may still see the old rows there.",
							 &distsys_dtx_async_finish,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("distsys.dtx_prepared_reserve",
							"Free prepared-transaction slots a node must have for a distributed transaction to start there.",
							NULL,
							&distsys_dtx_prepared_reserve,
							2, 0, 10000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("distsys.dtx_fault",
							 "Kill the coordinating backend at a point of the commit protocol (for tests).",
							 NULL,
							 &distsys_dtx_fault,
							 DTX_FAULT_NONE, dtx_fault_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("distsys.dtx_recovery_interval",
							"Time between passes of the 2PC recovery worker (0: the worker idles).",
							NULL,
							&distsys_dtx_recovery_interval_s,
							5, 0, 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * distsys_define_startup_gucs: the settings that size shared memory.  They
 * can only be defined while preloading (defining a PGC_POSTMASTER setting
 * later is FATAL); without preloading their defaults are shown nowhere and
 * used by nothing, because nothing that needs shared memory runs.
 */
static void
distsys_define_startup_gucs(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("distsys.max_locks",
							"Maximum number of lock names held or waited for at once.",
							"Sizes shared memory at server start.",
							&distsys_max_locks,
							4096, 16, 1000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("distsys.max_lock_holders",
							"Maximum number of lock grants held at once, counting every shared holder.",
							"Sizes shared memory at server start.",
							&distsys_max_lock_holders,
							8192, 16, 4000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("distsys.dtx_recovery_database",
							   "Database in which the 2PC recovery worker resolves distributed transactions.",
							   "It must be the database where distsys coordinates them.",
							   &distsys_dtx_recovery_database,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);

	distsys_define_raft_gucs();
}

/*
 * define_raft_int: DefineCustomIntVariable, refusing to start when the
 * configuration's value is rejected.  PostgreSQL applies the value a
 * preloaded library's setting had in postgresql.conf with a WARNING only
 * and keeps the default when it is invalid, so "distsys.node_id = -1"
 * would start the server with Raft off; Raft's settings must rather stop
 * the start, so the raw value is taken before the definition and compared
 * with the outcome.
 */
static void
define_raft_int(const char *name, const char *desc, int *var, int dflt,
				int min, int max, GucContext context, int flags)
{
	const char *raw = GetConfigOption(name, true, false);
	char	   *given = raw ? pstrdup(raw) : NULL;
	int			parsed;

	DefineCustomIntVariable(name, desc, NULL, var, dflt, min, max, context, flags,
							NULL, NULL, NULL);
	if (given == NULL)
		return;
	if (!parse_int(given, &parsed, flags, NULL) || parsed != *var)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"%s\": \"%s\"", name, given),
				 errdetail("It must be an integer from %d to %d%s.", min, max,
						   (flags & GUC_UNIT_MS) ? " (milliseconds)" : ""),
				 errhint("Correct it in postgresql.conf and start the server again.")));
	pfree(given);
}

/*
 * check_fault_list: a fault setting's check hook (with_ms: id:ms pairs);
 * a malformed value is refused with the reason, and a reload keeps the
 * previous value.
 */
static bool
check_fault_list(char **newval, bool with_ms)
{
	uint64		ids[RAFT_MAX_NODES];
	int			ms[RAFT_MAX_NODES];
	char		err[128];

	if (raft_fault_parse(*newval, with_ms, ids, ms, err, sizeof(err)) >= 0)
		return true;
	GUC_check_errdetail("%s; write %s.", err,
						with_ms ? "space-separated id:milliseconds pairs, such as '2:200 3:50'"
						: "space-separated node ids, such as '2 3'");
	return false;
}

static bool
check_fault_drop_to(char **newval, void **extra, GucSource source)
{
	return check_fault_list(newval, false);
}

static bool
check_fault_delay_to(char **newval, void **extra, GucSource source)
{
	return check_fault_list(newval, true);
}

/*
 * distsys_define_raft_fault_gucs: the network faults the chaos tests
 * inject into the Raft transport.  PGC_SIGHUP, so only postgresql.conf
 * (or ALTER SYSTEM) and a reload set them: a role that could set them
 * could cut a node off.
 */
static void
distsys_define_raft_fault_gucs(void)
{
	DefineCustomStringVariable("distsys.raft_fault_drop_to",
							   "Raft transport fault (for tests): node ids whose batches from this node are lost.",
							   "Space-separated node ids; set on both sides for a symmetric partition.",
							   &distsys_raft_fault_drop_to, "",
							   PGC_SIGHUP, 0,
							   check_fault_drop_to, NULL, NULL);
	DefineCustomStringVariable("distsys.raft_fault_delay_to",
							   "Raft transport fault (for tests): hold batches to a node this long before sending them.",
							   "Space-separated id:milliseconds pairs; the order of batches is kept.",
							   &distsys_raft_fault_delay_to, "",
							   PGC_SIGHUP, 0,
							   check_fault_delay_to, NULL, NULL);
}

/*
 * distsys_define_raft_gucs: the settings of Raft among nodes (issue 16).
 * They are read once by the postmaster and the Raft worker: the core's
 * timing is fixed when it starts, and membership after the first start
 * lives in Raft's log.  raft_settings_check (called from _PG_init)
 * validates them together.
 */
static void
distsys_define_raft_gucs(void)
{
	define_raft_int("distsys.node_id",
					"This server's Raft node id (0: Raft is off).",
					&distsys_node_id, 0, 0, RAFT_PEER_ID_MAX, PGC_POSTMASTER, 0);
	DefineCustomStringVariable("distsys.peers",
							   "The Raft cluster's initial members as space-separated id=URI pairs, this node included.",
							   "Bootstraps a new cluster; the same list on every member.",
							   &distsys_peers, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("distsys.raft_routes",
							   "This node's own URIs for other Raft members, as space-separated id=URI pairs.",
							   "Dialed instead of the member's URI in distsys.peers or raft_nodes; per node, not part of the cluster id.",
							   &distsys_raft_routes, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("distsys.raft_join",
							 "Join the running Raft cluster that distsys.peers founded, as a new node.",
							 "distsys.node_id must then be an id no founding member has; a member adds the node with raft_add_node.",
							 &distsys_raft_join, false,
							 PGC_POSTMASTER, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("distsys.raft_database",
							   "Database the Raft worker connects to, which holds Raft's tables.",
							   NULL,
							   &distsys_raft_database, "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	define_raft_int("distsys.raft_election_timeout",
					"Raft election timeout; each election waits a random time from it to twice it.",
					&distsys_raft_election_timeout_ms, 150, 2 * RAFT_TICK_MS, 60000,
					PGC_POSTMASTER, GUC_UNIT_MS);
	define_raft_int("distsys.raft_heartbeat_interval",
					"Time between a Raft leader's heartbeats; below distsys.raft_election_timeout.",
					&distsys_raft_heartbeat_interval_ms, 50, RAFT_TICK_MS, 30000,
					PGC_POSTMASTER, GUC_UNIT_MS);
	define_raft_int("distsys.raft_request_timeout",
					"How long a Raft client call waits for its answer.",
					&distsys_raft_request_timeout_ms, 5000, 1, INT_MAX,
					PGC_USERSET, GUC_UNIT_MS);
	define_raft_int("distsys.raft_snapshot_entries",
					"Log entries a Raft node applies between two snapshots (the log is compacted up to each).",
					&distsys_raft_snapshot_entries, 10000, 1, INT_MAX,
					PGC_SIGHUP, 0);
	distsys_define_raft_fault_gucs();
}
