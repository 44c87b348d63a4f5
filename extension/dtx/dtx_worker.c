/*-------------------------------------------------------------------------
 *
 * dtx_worker.c
 *	  The 2PC recovery worker: resolves what crashed coordinators left
 *	  prepared on the nodes, without a human.
 *
 * One worker per server, connected to distsys.dtx_recovery_database.  Every
 * distsys.dtx_recovery_interval it runs one recovery pass (dtx_recover.c)
 * in its own transaction, if the extension is installed there; an
 * unreachable node is logged and retried with backoff.  It starts once the
 * server accepts writes, so on a streaming standby it starts at promotion
 * and finishes the failed primary's work from the replicated decision
 * records.  If it dies it is restarted after 5 seconds.  It holds no shared
 * state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "distsys.h"
#include "dtx.h"

PGDLLEXPORT void dtx_worker_main(Datum arg);

/*
 * dtx_worker_register: from _PG_init, when preloaded.
 */
void
dtx_worker_register(void)
{
	distsys_register_worker("dtx_worker_main", "distsys 2PC recovery worker", 5);
}

/*
 * one_pass: a recovery pass in its own transaction, if distsys is
 * installed in this database.
 */
static void
one_pass(void)
{
	int			resolved = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "distsys: 2PC recovery pass");
	if (OidIsValid(get_extension_oid("distsys", true)))
		resolved = dtx_recover_all(LOG, true);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	if (resolved > 0)
		ereport(LOG,
				(errmsg("distsys recovery resolved %d prepared transactions", resolved)));
}

/*
 * dtx_worker_main: the worker's entry point: a pass every
 * distsys.dtx_recovery_interval (none while it is 0), until SIGTERM.
 */
void
dtx_worker_main(Datum arg)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(distsys_dtx_recovery_database, NULL, 0);

	for (;;)
	{
		long		sleep_ms = 1000L * Max(distsys_dtx_recovery_interval_s, 1);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (distsys_dtx_recovery_interval_s > 0)
			one_pass();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
