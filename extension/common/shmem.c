/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of every distsys subsystem, requested once at preload.
 *
 * Each subsystem that keeps shared state lists one row in shmem_regions:
 * its size function and its initializer.  Under PostgreSQL 15 the request
 * must be made from shmem_request_hook and the memory attached in
 * shmem_startup_hook; both hooks chain to the previous holder.  The
 * initializers run under AddinShmemInitLock, so each sees "found" false
 * exactly once per shared-memory lifetime (postmaster start or crash
 * restart) and must reset its state then.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "distsys.h"
#include "dlock.h"
#include "dtx.h"
#include "raftnode.h"
#include "raft_kv.h"
#include "raft_transport.h"

typedef struct ShmemRegion
{
	Size		(*size) (void);
	void		(*init) (void);
	void		(*request) (void);	/* extra requests, e.g. LWLock tranches */
} ShmemRegion;

static const ShmemRegion shmem_regions[] = {
	{dlock_shmem_size, dlock_shmem_init, dlock_shmem_request},
	{dtx_shmem_size, dtx_shmem_init, NULL},
	{raft_status_shmem_size, raft_status_shmem_init, NULL},
	{raft_inbox_shmem_size, raft_inbox_shmem_init, raft_inbox_shmem_request},
	{raft_client_shmem_size, raft_client_shmem_init, NULL},
	{raft_members_shmem_size, raft_members_shmem_init, raft_members_shmem_request},
};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * distsys_shmem_request: add up the regions and ask the postmaster for them.
 */
static void
distsys_shmem_request(void)
{
	Size		total = 0;

	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	for (int i = 0; i < lengthof(shmem_regions); i++)
	{
		total = add_size(total, shmem_regions[i].size());
		if (shmem_regions[i].request)
			shmem_regions[i].request();
	}
	RequestAddinShmemSpace(total);
}

/*
 * distsys_shmem_startup: attach (or create and initialize) every region.
 */
static void
distsys_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (int i = 0; i < lengthof(shmem_regions); i++)
		shmem_regions[i].init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * distsys_shmem_install_hooks: called from _PG_init in the postmaster.
 */
void
distsys_shmem_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = distsys_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = distsys_shmem_startup;
}
