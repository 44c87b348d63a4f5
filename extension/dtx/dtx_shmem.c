/*-------------------------------------------------------------------------
 *
 * dtx_shmem.c
 *	  Which distributed transactions are committing right now.
 *
 * Every distributed transaction that prepares participants draws a random
 * 64-bit id (its GID carries it, and so does its decision row).  While its
 * backend is between the first PREPARE and the end of its commit or abort
 * callback, the id is published in that backend's slot here.  Recovery
 * asks "is anyone still committing this id?" instead of asking about the
 * coordinator's xid: after a crash PostgreSQL may hand the same xid to a
 * new transaction (nothing with the old one had been flushed), so an xid
 * says nothing about a transaction that died before its commit.
 *
 * One pg_atomic_uint64 per PGPROC, written only by its own backend
 * (exchange: a full barrier), read by anyone; 0 means none.
 *
 * With distsys.dtx_async_finish a committed transaction's COMMIT PREPARED
 * is still on its way when the backend leaves its commit callback, so the
 * id lingers in a second slot of the backend, with a deadline (the
 * backend's distsys.dtx_commit_timeout): recovery leaves the id alone until
 * then, as it would leave a backend that waits for the answers, instead of
 * racing the statements in flight (a COMMIT PREPARED that finds the GID
 * busy must report an unknown outcome).  Past the deadline, what did not
 * arrive is recovery's.  A later transaction of the backend replaces the
 * lingering id.  The deadline is written before the id and read after it,
 * so a reader that sees an id never pairs it with an older deadline.  A backend
 * that dies abnormally takes shared memory with it (crash restart), one
 * that exits normally clears its slot on the way out.
 *
 * One more pg_atomic_uint64 after them counts the committed changes of the
 * node registry (dtx_registry_version): node.c increments it after such a
 * commit, and backends compare it with the version their cached connection
 * strings were looked up at (dtx.c).  No lock: a backend that reads it just
 * before an increment looks the string up again at its next use.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "dtx.h"

/*
 * committing[nprocs]: the committing ids; then the registry version; then
 * lingering ids [nprocs] and their deadlines [nprocs] (TimestampTz).
 */
static pg_atomic_uint64 *committing = NULL;

#define LINGERING(i)	(&committing[dtx_nprocs() + 1 + (i)])
#define LINGER_UNTIL(i) (&committing[2 * dtx_nprocs() + 1 + (i)])

/*
 * dtx_nprocs: how many committing slots there are (one per PGPROC).
 */
static int
dtx_nprocs(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

/*
 * dtx_shmem_size: the shared memory dtx_shmem_init needs.
 */
Size
dtx_shmem_size(void)
{
	/* three slots per process, and one for the node registry's version */
	return mul_size(3 * dtx_nprocs() + 1, sizeof(pg_atomic_uint64));
}

/*
 * dtx_shmem_init: attach to the slots, zeroing them on first creation.
 */
void
dtx_shmem_init(void)
{
	bool		found;

	committing = ShmemInitStruct("distsys dtx committing", dtx_shmem_size(), &found);
	if (found)
		return;
	for (int i = 0; i <= 3 * dtx_nprocs(); i++)
		pg_atomic_init_u64(&committing[i], 0);
}

static void
clear_at_exit(int code, Datum arg)
{
	dtx_committing_set(0);
	if (committing != NULL)
		(void) pg_atomic_exchange_u64(LINGERING(MyProc->pgprocno), 0);
}

/*
 * dtx_committing_set: publish id as this backend's committing transaction
 * (0: none).
 */
void
dtx_committing_set(uint64 id)
{
	static bool registered = false;

	if (committing == NULL)
		return;
	if (!registered)
	{
		before_shmem_exit(clear_at_exit, (Datum) 0);
		registered = true;
	}
	(void) pg_atomic_exchange_u64(&committing[MyProc->pgprocno], id);
}

/*
 * dtx_committing_linger: the committing id of this backend (if any) stays
 * published until until, in the lingering slot (see the banner); called
 * before dtx_committing_set(0), so that the id is never unpublished in
 * between.
 */
void
dtx_committing_linger(TimestampTz until)
{
	uint64		id;

	if (committing == NULL || (id = pg_atomic_read_u64(&committing[MyProc->pgprocno])) == 0)
		return;
	(void) pg_atomic_exchange_u64(LINGER_UNTIL(MyProc->pgprocno), (uint64) until);
	(void) pg_atomic_exchange_u64(LINGERING(MyProc->pgprocno), id);
}

/*
 * dtx_committing_now: whether some backend is committing transaction id,
 * or lets it linger with its deadline not passed.
 */
bool
dtx_committing_now(uint64 id)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		found = false;

	pg_memory_barrier();
	for (int i = 0; i < dtx_nprocs() && !found; i++)
		found = pg_atomic_read_u64(&committing[i]) == id ||
			(pg_atomic_read_u64(LINGERING(i)) == id &&
			 (TimestampTz) pg_atomic_read_u64(LINGER_UNTIL(i)) > now);
	pg_memory_barrier();
	return found;
}

/*
 * dtx_registry_version: a counter that changes after every committed change
 * of the node registry, so backends can keep connection strings they looked
 * up while it stays the same (dtx.c); 0 without shared memory.
 */
uint64
dtx_registry_version(void)
{
	return committing == NULL ? 0 : pg_atomic_read_u64(&committing[dtx_nprocs()]);
}

/*
 * dtx_registry_changed: node_add or node_remove committed.
 */
void
dtx_registry_changed(void)
{
	if (committing != NULL)
		(void) pg_atomic_fetch_add_u64(&committing[dtx_nprocs()], 1);
}
