/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Every distsys.* setting, defined in one place.
 *
 * Each subsystem declares the variables of its settings in its own header
 * (lock/dlock.h, msg/msg.h, dtx/dtx.h) and reads them; this file defines
 * and registers them all, and nothing else registers a setting.
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
int			distsys_dtx_recovery_interval_s = 5;
char	   *distsys_dtx_recovery_database = NULL;

static void distsys_define_startup_gucs(void);
static void distsys_define_dtx_gucs(void);

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
}
