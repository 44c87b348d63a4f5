/*-------------------------------------------------------------------------
 *
 * dlock.h
 *	  The distributed lock manager: shared state and its operations.
 *
 * Who does what:
 *	dlock_shmem.c	lock entries, holders, FIFO waiter queues, fencing tokens
 *					(all under dlock_shared->lock)
 *	dlock_table.c	the durable lease table distsys.dlock_leases: loading it
 *					after a restart, renewals, stale rows, cleanup (SPI)
 *	dlock_heap.c	a grant's row insert and a final release's row delete,
 *					the hot writes of that table, without SQL
 *	dlock_xact.c	transactional effects of application-owned grants
 *	dlock_sql.c		the SQL functions and the blocking wait
 *	dlock_views.c	the dlocks, dlock_waiters and dlock_stats views
 *	dlock_worker.c	the expiry worker that hands expired locks to waiters
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_DLOCK_H
#define DISTSYS_DLOCK_H

#include "datatype/timestamp.h"
#include "lib/ilist.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#define DLOCK_NAME_MAX		255 /* bytes in a lock name */
#define DLOCK_OWNER_MAX		127 /* bytes in an application owner */
#define DLOCK_FENCE_SLOTS	4	/* transactions fenced on one grant at once */
#define DLOCK_MAX_DEPTH		1000000 /* reentrancy depth */

/* settings (registered in common/guc.c) */
extern int	distsys_max_locks;
extern int	distsys_max_lock_holders;
extern int	distsys_lock_max_ttl_s;

typedef enum DLockMode
{
	DLOCK_EXCLUSIVE,
	DLOCK_SHARED
} DLockMode;

/*
 * Hash key: the database and the name, zero-padded because the hash table
 * hashes and compares the whole key as bytes (HASH_BLOBS).
 */
typedef struct DLockKey
{
	Oid			dbid;
	char		name[DLOCK_NAME_MAX + 1];
} DLockKey;

/*
 * What an undo record restores of a holder (see dlock_xact.c).
 */
typedef struct DLockHolderState
{
	int32		depth;
	bool		releasing;
	TimestampTz expires_at;
	uint64		version;
} DLockHolderState;

/*
 * One grant of a lock.  A session-owned holder has procno >= 0 and an empty
 * owner; an application-owned one has an owner and is mirrored by a row of
 * distsys.dlock_leases.  role is the role that took the grant (GetUserId()
 * then): only it, a role with its privileges or a lock admin may re-enter,
 * release, renew or fence an application-owned grant (see dlock_sql.c).
 */
typedef struct DLockHolder
{
	dlist_node	node;			/* in DLockEntry.holders, or the free list */
	dlist_node	proc_node;		/* session-owned: in its backend's held list */
	struct DLockEntry *entry;
	char		owner[DLOCK_OWNER_MAX + 1];
	Oid			role;			/* the role that took the grant */
	int			procno;			/* session owner's pgprocno, or -1 */
	int			pid;			/* session owner's pid, or 0 */
	DLockMode	mode;
	int64		token;
	int32		depth;
	bool		releasing;		/* final release waits for its commit */
	TimestampTz granted_at;
	TimestampTz expires_at;
	uint64		version;		/* set anew by each undoable change: see
								 * dlock_holder_changed */
	uint64		lost_version;	/* a version rolled back under a later
								 * change, or 0 (see dlock_xact.c) */
	DLockHolderState lost_before;	/* what stands in for lost_version */
	TransactionId fence_xids[DLOCK_FENCE_SLOTS];	/* see dlock_fence */
} DLockHolder;

typedef struct DLockEntry
{
	DLockKey	key;			/* hash key, must be first */
	dlist_head	holders;
	dlist_head	waiters;		/* FIFO queue of DLockProc.node */
	dlist_node	waited_node;	/* in DLockShared.waited while waiters exist */
	int			nholders;
	int			nwaiters;
} DLockEntry;

/* What a waiter is told by the backend that ends its wait. */
typedef enum DLockWaitResult
{
	DLOCK_WAITING,
	DLOCK_GRANTED,
	DLOCK_NO_SLOT				/* its turn came, but no holder slot was free */
} DLockWaitResult;

/* One per PGPROC, indexed by pgprocno. */
typedef struct DLockProc
{
	dlist_node	node;			/* in DLockEntry.waiters while waiting */
	DLockEntry *entry;			/* lock waited for, or NULL */
	DLockMode	mode;
	char		owner[DLOCK_OWNER_MAX + 1];
	Oid			role;			/* the role to grant to */
	TimestampTz since;			/* when it started waiting */
	int64		ttl_us;			/* lease length to grant with, microseconds */
	DLockWaitResult result;
	DLockHolder *granted;		/* set with result DLOCK_GRANTED */
	Latch	   *latch;
	int			pid;
	dlist_head	held;			/* session-owned holders of this backend */
} DLockProc;

typedef struct DLockCounters
{
	uint64		grants;
	uint64		releases;
	uint64		expiries;
	uint64		waits;
	uint64		wakeups;
	uint64		timeouts;
	uint64		breaks;
} DLockCounters;

typedef struct DLockShared
{
	LWLock	   *lock;			/* protects everything below and the hash */
	int64		next_token;		/* next fencing token to hand out */
	int64		token_limit;	/* tokens up to this are durably reserved */
	uint64		last_version;	/* last DLockHolder.version handed out */
	dlist_head	free_holders;
	dlist_head	waited;			/* entries that have waiters */
	Latch	   *worker_latch;	/* the expiry worker, when running */
	TimestampTz worker_wake_at; /* when the worker plans to look next */
	DLockCounters counters;
	int			nloaded;		/* databases whose durable grants are loaded */
	Oid			loaded[64];
	bool		stale_rows[64]; /* expired rows may be left in its table */
	DLockProc	procs[FLEXIBLE_ARRAY_MEMBER];
} DLockShared;

extern DLockShared *dlock_shared;

struct HTAB;
extern struct HTAB *dlock_hash_table(void);

/* dlock_shmem.c: shared memory set-up */
extern Size dlock_shmem_size(void);
extern void dlock_shmem_request(void);
extern void dlock_shmem_init(void);

/* dlock_shmem.c: operations; the caller holds dlock_shared->lock */
extern DLockEntry *dlock_entry_lookup(const DLockKey *key, bool create);
extern void dlock_entry_forget_if_unused(DLockEntry *entry);
extern DLockHolder *dlock_find_holder(DLockEntry *entry, const char *owner);
extern bool dlock_compatible(DLockEntry *entry, DLockMode mode);
extern DLockHolder *dlock_grant(DLockEntry *entry, DLockMode mode,
								const char *owner, Oid role, int procno,
								int pid, TimestampTz now, int64 ttl_us);
extern void dlock_remove_holder(DLockHolder *holder);
extern void dlock_holder_changed(DLockHolder *holder);
extern int	dlock_expire(DLockEntry *entry, TimestampTz now, TimestampTz *next);
extern void dlock_grant_waiters(DLockEntry *entry, TimestampTz now);
extern void dlock_enqueue(DLockEntry *entry, DLockProc *me);
extern void dlock_dequeue(DLockProc *me, TimestampTz now);
extern DLockHolder *dlock_holder_by_token(DLockEntry *entry, int64 token);
extern bool dlock_holder_live(DLockHolder *holder, TimestampTz now);
extern void dlock_poke_worker(DLockEntry *entry);
extern TimestampTz dlock_expire_waited(TimestampTz now);
extern void dlock_fence(DLockHolder *holder, TransactionId xid);
extern void dlock_restore_holder(DLockEntry *entry, const DLockHolder *saved);
extern bool dlock_is_loaded(Oid dbid);
extern bool dlock_mark_loaded(Oid dbid, bool stale_rows);

/* dlock_shmem.c: called without dlock_shared->lock */
extern DLockProc *dlock_my_proc(void);
extern void dlock_reserve_tokens(void);
extern bool dlock_stale_rows(Oid dbid);

/* dlock_table.c: the durable lease table, in the caller's transaction */
extern void dlock_table_ensure_loaded(void);
extern void dlock_table_insert(const char *name, const DLockHolder *h, TimestampTz now);
extern void dlock_table_update(const char *name, const DLockHolder *h);
extern int64 dlock_table_cleanup(void);

/* dlock_heap.c: the hot writes of the lease table, in the caller's transaction */
extern void dlock_heap_insert(const char *name, const DLockHolder *h);
extern void dlock_heap_delete(const char *name, const DLockHolder *h);

/* dlock_xact.c: commit and abort effects of application-owned operations */
typedef enum DLockPendingKind
{
	DLOCK_UNDO_GRANT,			/* abort: give back a new grant */
	DLOCK_UNDO_CHANGE,			/* abort: restore depth, releasing, expiry */
	DLOCK_DEFER_RELEASE,		/* commit: depth - 1, free at 0 */
	DLOCK_DEFER_BREAK			/* commit: remove the holder */
} DLockPendingKind;

extern void dlock_xact_init(void);
extern void dlock_xact_remember(DLockPendingKind kind, const DLockKey *key,
								const DLockHolder *holder, uint64 set_version);

/* dlock_worker.c */
extern void dlock_worker_register(void);

#endif							/* DISTSYS_DLOCK_H */
