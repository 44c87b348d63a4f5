/*-------------------------------------------------------------------------
 *
 * dlock_worker.c
 *	  The expiry worker: hands an expired lock to its next waiter at expiry
 *	  time, without anyone calling a function.
 *
 * Waiters never set timers for their holders' leases (that would wake every
 * waiter at each expiry).  Instead this one worker sleeps until the earliest
 * lease of any lock that has waiters ends, then expires those holders and
 * grants the lock through dlock_grant_waiters, which wakes only the waiters
 * granted.  Its planned wake-up (worker_wake_at) is recomputed only in its
 * pass, so every change that can make a lease of a lock with waiters end
 * before it pokes its latch: dlock_enqueue, when a new waiter's lock
 * expires before the worker planned to look; dlock_renew, when a lock with
 * waiters is renewed; dlock_grant_waiters, when a hand-off grants a lease
 * while others still wait (a new holder with a short lease); and the abort
 * of an application-owned change that restores an earlier expiry
 * (dlock_xact.c).  Without those pokes the next waiter would sleep while
 * the lock is free, up to the old planned wake-up.  It also keeps the
 * reserve of fencing tokens filled, and grants the waiters that a hand-off
 * left queued for want of tokens.
 *
 * It opens no database (everything it touches is in shared memory); it
 * attaches to the server only so that pg_stat_activity shows it.  If it
 * dies it is restarted after a second; meanwhile expired locks are still
 * taken over by the next dlock_try or dlock_acquire.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "dlock.h"

PGDLLEXPORT void dlock_worker_main(Datum arg);

/*
 * dlock_worker_register: from _PG_init, when preloaded.
 */
void
dlock_worker_register(void)
{
	distsys_register_worker("dlock_worker_main", "distsys lock expiry worker", 1);
}

static void
dlock_worker_detach(int code, Datum arg)
{
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	dlock_shared->worker_latch = NULL;
	LWLockRelease(dlock_shared->lock);
}

/*
 * one_pass: expire and hand on; returns how long to sleep, in ms.
 */
static long
one_pass(void)
{
	TimestampTz now;
	TimestampTz wake;

	dlock_reserve_tokens();
	now = GetCurrentTimestamp();
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	wake = dlock_expire_waited(now);
	LWLockRelease(dlock_shared->lock);
	if (wake == DT_NOEND)
		return 60 * 1000L;
	return Max(1L, (long) ((wake - now + 999) / 1000));
}

void
dlock_worker_main(Datum arg)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	/* no database: only so that pg_stat_activity shows the worker */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	before_shmem_exit(dlock_worker_detach, (Datum) 0);
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	dlock_shared->worker_latch = MyLatch;
	LWLockRelease(dlock_shared->lock);

	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		sleep_ms = one_pass();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
