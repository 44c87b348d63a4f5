/*-------------------------------------------------------------------------
 *
 * dlock_shmem.c
 *	  Lock entries, holders, FIFO waiter queues and fencing tokens in shared
 *	  memory.
 *
 * Locking protocol: dlock_shared->lock (exclusive to change, shared to read)
 * protects the hash table of entries, every holder, every DLockProc, the
 * counters and the token counter.  dlock_token_lock serializes writes of the
 * token reservation file; it is never taken while the main lock is held, so
 * a file sync never stalls lock traffic.
 *
 * Hand-off: a lock is never "freed and raced for".  Whoever frees it (a
 * release, an expiry, a waiter leaving the head of the queue) calls
 * dlock_grant_waiters, which grants it to the head of the queue (and the
 * shared waiters directly behind it) and sets the latch of exactly those
 * backends.  Waiters further back are never woken, so there is no herd.
 *
 * Fencing tokens come from one counter for all names and databases.  Blocks
 * of DLOCK_TOKEN_BLOCK tokens are reserved by writing their upper limit to
 * pg_distsys/fencing_token and syncing it before any token of the block is
 * handed out; after a crash the counter restarts above the last reserved
 * limit, so no token is ever issued twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "access/transam.h"
#include "access/twophase.h"
#include "common/file_perm.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "dlock.h"

#define DLOCK_TRANCHE		"distsys_dlock"
#define DLOCK_TOKEN_DIR		"pg_distsys"
#define DLOCK_TOKEN_FILE	"pg_distsys/fencing_token"
#define DLOCK_TOKEN_BLOCK	100000
#define DLOCK_TOKEN_LOW		(DLOCK_TOKEN_BLOCK / 2)

DLockShared *dlock_shared = NULL;
static HTAB *dlock_hash = NULL;
static LWLock *dlock_token_lock = NULL;

static void dlock_proc_exit(int code, Datum arg);
static void note_stale_row(DLockHolder *h);

HTAB *
dlock_hash_table(void)
{
	return dlock_hash;
}

static int
dlock_nprocs(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

Size
dlock_shmem_size(void)
{
	Size		size;

	size = add_size(offsetof(DLockShared, procs),
					mul_size(dlock_nprocs(), sizeof(DLockProc)));
	size = add_size(size, mul_size(distsys_max_lock_holders, sizeof(DLockHolder)));
	size = add_size(size, hash_estimate_size(distsys_max_locks, sizeof(DLockEntry)));
	return size;
}

void
dlock_shmem_request(void)
{
	RequestNamedLWLockTranche(DLOCK_TRANCHE, 2);
}

/*
 * dlock_read_token_limit: the last reserved token limit, 0 if none yet.
 */
static int64
dlock_read_token_limit(void)
{
	FILE	   *f = AllocateFile(DLOCK_TOKEN_FILE, "r");
	int64		limit = 0;

	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not read \"%s\": %m", DLOCK_TOKEN_FILE)));
		return 0;
	}
	if (fscanf(f, INT64_FORMAT, &limit) != 1 || limit < 0)
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" is corrupt", DLOCK_TOKEN_FILE),
				 errhint("Restore it from a backup, or write a number larger than any fencing token ever issued into it.")));
	FreeFile(f);
	return limit;
}

/*
 * dlock_shmem_init: attach the lock manager's shared memory; the first time
 * after a (re)start, reset it and continue tokens above the reserved limit.
 */
void
dlock_shmem_init(void)
{
	bool		found;
	HASHCTL		info;
	DLockHolder *holders;
	LWLockPadded *locks;
	int			nprocs = dlock_nprocs();

	dlock_shared = ShmemInitStruct("distsys dlock",
								   offsetof(DLockShared, procs) + nprocs * sizeof(DLockProc),
								   &found);
	holders = ShmemInitStruct("distsys dlock holders",
							  distsys_max_lock_holders * sizeof(DLockHolder), &found);
	info.keysize = sizeof(DLockKey);
	info.entrysize = sizeof(DLockEntry);
	dlock_hash = ShmemInitHash("distsys dlock entries", distsys_max_locks,
							   distsys_max_locks, &info,
							   HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	locks = GetNamedLWLockTranche(DLOCK_TRANCHE);
	dlock_token_lock = &locks[1].lock;
	if (found)
		return;

	memset(dlock_shared, 0, offsetof(DLockShared, procs));
	dlock_shared->lock = &locks[0].lock;
	dlock_shared->token_limit = dlock_read_token_limit();
	dlock_shared->next_token = dlock_shared->token_limit + 1;
	dlist_init(&dlock_shared->free_holders);
	dlist_init(&dlock_shared->waited);
	for (int i = 0; i < distsys_max_lock_holders; i++)
		dlist_push_tail(&dlock_shared->free_holders, &holders[i].node);
	for (int i = 0; i < nprocs; i++)
	{
		memset(&dlock_shared->procs[i], 0, sizeof(DLockProc));
		dlist_init(&dlock_shared->procs[i].held);
	}
}

/*
 * dlock_write_token_limit: durably record that tokens up to limit may be
 * issued.  Written to a temporary file, synced, renamed, directory synced.
 */
static void
dlock_write_token_limit(int64 limit)
{
	char		buf[32];
	int			len = snprintf(buf, sizeof(buf), INT64_FORMAT "\n", limit);

	distsys_make_dir_durably(DLOCK_TOKEN_DIR);
	distsys_write_file_durably(DLOCK_TOKEN_FILE, buf, len, ERROR);
}

/*
 * dlock_reserve_tokens: make sure plenty of durably reserved tokens remain.
 * Called without the main lock by dlock_try and dlock_acquire and by every
 * pass of the expiry worker, so that the grants of hand-offs, which do not
 * reserve (a release, a session exit, a commit callback where no error is
 * allowed), find tokens.  Should a hand-off still run out, the waiter
 * stays queued and dlock_grant_waiters wakes the worker, which reserves
 * more and grants it.
 */
void
dlock_reserve_tokens(void)
{
	int64		limit;

	if (dlock_shared->next_token + DLOCK_TOKEN_LOW <= dlock_shared->token_limit)
		return;					/* unlocked peek; rechecked below */

	LWLockAcquire(dlock_token_lock, LW_EXCLUSIVE);
	LWLockAcquire(dlock_shared->lock, LW_SHARED);
	limit = dlock_shared->token_limit;
	if (dlock_shared->next_token + DLOCK_TOKEN_LOW <= limit)
	{
		LWLockRelease(dlock_shared->lock);
		LWLockRelease(dlock_token_lock);
		return;
	}
	LWLockRelease(dlock_shared->lock);

	limit = Max(limit, dlock_shared->next_token) + DLOCK_TOKEN_BLOCK;
	dlock_write_token_limit(limit);

	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	dlock_shared->token_limit = limit;
	LWLockRelease(dlock_shared->lock);
	LWLockRelease(dlock_token_lock);
}

/*
 * dlock_my_proc: this backend's DLockProc; on first use, register the exit
 * callback that releases session-owned locks and leaves any queue.
 */
DLockProc *
dlock_my_proc(void)
{
	static bool registered = false;
	DLockProc  *me = &dlock_shared->procs[MyProc->pgprocno];

	if (!registered)
	{
		before_shmem_exit(dlock_proc_exit, (Datum) 0);
		registered = true;
	}
	return me;
}

DLockEntry *
dlock_entry_lookup(const DLockKey *key, bool create)
{
	DLockEntry *entry;
	bool		found;

	entry = hash_search(dlock_hash, key, create ? HASH_ENTER_NULL : HASH_FIND, &found);
	if (entry == NULL && create)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("too many distributed locks held or waited for at once"),
				 errdetail("All %d lock entries are in use.", distsys_max_locks),
				 errhint("Increase distsys.max_locks and restart the server.")));
	if (entry != NULL && !found)
	{
		dlist_init(&entry->holders);
		dlist_init(&entry->waiters);
		entry->nholders = 0;
		entry->nwaiters = 0;
		entry->waited_node.next = entry->waited_node.prev = NULL;
	}
	return entry;
}

/*
 * dlock_entry_forget_if_unused: drop an entry nobody holds or waits for.
 */
void
dlock_entry_forget_if_unused(DLockEntry *entry)
{
	if (entry->nholders == 0 && entry->nwaiters == 0)
		hash_search(dlock_hash, &entry->key, HASH_REMOVE, NULL);
}

/*
 * dlock_find_holder: the current grant of this owner (application owner, or
 * this session when owner is NULL), or NULL.  An application owner's grant
 * is found by its owner string alone, whichever role took it: an owner
 * string is held by at most one grant of a lock, and the caller decides
 * whether it may act for that grant's role.
 */
DLockHolder *
dlock_find_holder(DLockEntry *entry, const char *owner)
{
	dlist_iter	it;

	dlist_foreach(it, &entry->holders)
	{
		DLockHolder *h = dlist_container(DLockHolder, node, it.cur);

		if (owner == NULL ? h->procno == MyProc->pgprocno
			: (h->procno < 0 && strcmp(h->owner, owner) == 0))
			return h;
	}
	return NULL;
}

DLockHolder *
dlock_holder_by_token(DLockEntry *entry, int64 token)
{
	dlist_iter	it;

	dlist_foreach(it, &entry->holders)
	{
		DLockHolder *h = dlist_container(DLockHolder, node, it.cur);

		if (h->token == token)
			return h;
	}
	return NULL;
}

bool
dlock_holder_live(DLockHolder *holder, TimestampTz now)
{
	return holder->expires_at > now;
}

/*
 * dlock_compatible: whether a new grant of this mode fits the holders.
 */
bool
dlock_compatible(DLockEntry *entry, DLockMode mode)
{
	DLockHolder *first;

	if (entry->nholders == 0)
		return true;
	if (mode == DLOCK_EXCLUSIVE)
		return false;
	first = dlist_head_element(DLockHolder, node, &entry->holders);
	return first->mode == DLOCK_SHARED;
}

/*
 * dlock_grant: add a holder with a new token; NULL when no holder slot or
 * no reserved token is left (the caller decides whether that is an error).
 */
DLockHolder *
dlock_grant(DLockEntry *entry, DLockMode mode, const char *owner, Oid role,
			int procno, int pid, TimestampTz now, int64 ttl_us)
{
	DLockHolder *h;

	if (dlist_is_empty(&dlock_shared->free_holders) ||
		dlock_shared->next_token > dlock_shared->token_limit)
		return NULL;

	h = dlist_container(DLockHolder, node,
						dlist_pop_head_node(&dlock_shared->free_holders));
	memset(h, 0, sizeof(DLockHolder));
	h->entry = entry;
	strlcpy(h->owner, owner ? owner : "", sizeof(h->owner));
	h->role = role;
	h->procno = procno;
	h->pid = pid;
	h->mode = mode;
	h->token = dlock_shared->next_token++;
	h->depth = 1;
	h->granted_at = now;
	h->expires_at = now + ttl_us;
	dlist_push_tail(&entry->holders, &h->node);
	entry->nholders++;
	if (procno >= 0)
		dlist_push_tail(&dlock_shared->procs[procno].held, &h->proc_node);
	dlock_shared->counters.grants++;
	return h;
}

/*
 * dlock_restore_holder: put back a durable grant read from the lease table
 * after a restart, with its own token; later tokens are issued above it.
 */
void
dlock_restore_holder(DLockEntry *entry, const DLockHolder *saved)
{
	DLockHolder *h;

	if (dlist_is_empty(&dlock_shared->free_holders))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("too many distributed lock grants to restore"),
				 errhint("Increase distsys.max_lock_holders and restart the server.")));
	h = dlist_container(DLockHolder, node,
						dlist_pop_head_node(&dlock_shared->free_holders));
	*h = *saved;
	h->entry = entry;
	h->procno = -1;
	h->pid = 0;
	dlist_push_tail(&entry->holders, &h->node);
	entry->nholders++;
	dlock_shared->next_token = Max(dlock_shared->next_token, saved->token + 1);
}

/*
 * dlock_holder_changed: give holder a new version after a change that an
 * undo record may restore.  The version is unique server-wide, so an undo
 * record can tell whether the holder still carries the change it undoes
 * (see apply_pending in dlock_xact.c).  Caller holds the exclusive lock.
 */
void
dlock_holder_changed(DLockHolder *holder)
{
	holder->version = ++dlock_shared->last_version;
}

/*
 * dlock_remove_holder: end a grant and give its slot back.  The caller hands
 * the lock on with dlock_grant_waiters and forgets an unused entry.
 */
void
dlock_remove_holder(DLockHolder *holder)
{
	dlist_delete(&holder->node);
	holder->entry->nholders--;
	if (holder->procno >= 0)
		dlist_delete(&holder->proc_node);
	holder->token = 0;
	dlist_push_head(&dlock_shared->free_holders, &holder->node);
}

/*
 * dlock_fenced: whether a transaction that asserted this grant still runs.
 */
static bool
dlock_fenced(DLockHolder *holder)
{
	for (int i = 0; i < DLOCK_FENCE_SLOTS; i++)
	{
		if (TransactionIdIsValid(holder->fence_xids[i]) &&
			TransactionIdIsInProgress(holder->fence_xids[i]))
			return true;
	}
	return false;
}

/*
 * dlock_fence: remember a transaction that wrote under this grant's token.
 * An expired grant is not taken over while such a transaction still runs,
 * so "assert, then write" is atomic with respect to a new grant.
 */
void
dlock_fence(DLockHolder *holder, TransactionId xid)
{
	int			free_slot = -1;

	for (int i = 0; i < DLOCK_FENCE_SLOTS; i++)
	{
		TransactionId x = holder->fence_xids[i];

		if (TransactionIdEquals(x, xid))
			return;
		if (!TransactionIdIsValid(x) || !TransactionIdIsInProgress(x))
			free_slot = i;
	}
	if (free_slot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many transactions are fenced on lock \"%s\" at once",
						holder->entry->key.name),
				 errdetail("At most %d concurrent transactions can assert one grant.",
						   DLOCK_FENCE_SLOTS),
				 errhint("Commit or roll back the other transactions that asserted this lock.")));
	holder->fence_xids[free_slot] = xid;
}

/*
 * dlock_expire: remove the holders whose lease has passed, except those a
 * running fenced transaction still relies on.  Returns how many were
 * removed; *next is set to the earliest expiry of the remaining holders (a
 * fenced holder asks to be looked at again soon).
 */
int
dlock_expire(DLockEntry *entry, TimestampTz now, TimestampTz *next)
{
	dlist_mutable_iter it;
	int			n = 0;

	*next = DT_NOEND;
	dlist_foreach_modify(it, &entry->holders)
	{
		DLockHolder *h = dlist_container(DLockHolder, node, it.cur);

		if (h->expires_at > now)
			*next = Min(*next, h->expires_at);
		else if (dlock_fenced(h))
			*next = Min(*next, now + 10 * 1000);
		else
		{
			note_stale_row(h);
			dlock_remove_holder(h);
			dlock_shared->counters.expiries++;
			n++;
		}
	}
	return n;
}

/*
 * dlock_grant_waiters: grant the lock to the head of the queue, and to the
 * shared waiters right behind a shared head, while they fit.  Only those
 * backends are woken.  Never raises an error: it runs in commit callbacks.
 * If waiters remain, the new grants' leases may end before the expiry
 * worker planned to look, so it is poked (see dlock_worker.c).
 *
 * A waiter whose owner string already holds the lock does not fit either:
 * an owner string is held by at most one grant of a lock (the unique index
 * of shared grants says so too).  That grant is another role's, which the
 * waiter may not act for (else it would have re-entered it instead of
 * queueing), or one its own role took after it queued; either way it waits
 * for that grant to end.
 */
void
dlock_grant_waiters(DLockEntry *entry, TimestampTz now)
{
	bool		granted = false;

	while (!dlist_is_empty(&entry->waiters))
	{
		DLockProc  *w = dlist_head_element(DLockProc, node, &entry->waiters);
		DLockHolder *h;

		if (!dlock_compatible(entry, w->mode) ||
			(w->owner[0] && dlock_find_holder(entry, w->owner) != NULL))
			break;
		h = dlock_grant(entry, w->mode, w->owner[0] ? w->owner : NULL, w->role,
						w->owner[0] ? -1 : (int) (w - dlock_shared->procs),
						w->owner[0] ? 0 : w->pid, now, w->ttl_us);
		if (h == NULL && dlock_shared->next_token > dlock_shared->token_limit)
		{
			dlock_poke_worker(NULL);	/* it reserves tokens and retries */
			break;
		}
		dlist_delete(&w->node);
		entry->nwaiters--;
		w->granted = h;
		w->result = h ? DLOCK_GRANTED : DLOCK_NO_SLOT;
		SetLatch(w->latch);
		granted |= (h != NULL);
	}
	/* the new grant's lease may end before the worker planned to look */
	if (granted && entry->nwaiters > 0)
		dlock_poke_worker(entry);
	if (entry->nwaiters == 0 && entry->waited_node.next != NULL)
	{
		dlist_delete(&entry->waited_node);
		entry->waited_node.next = entry->waited_node.prev = NULL;
	}
}

/*
 * dlock_enqueue: put this backend at the tail of the entry's queue and make
 * sure the expiry worker will look at the entry when its holders expire.
 */
void
dlock_enqueue(DLockEntry *entry, DLockProc *me)
{
	me->entry = entry;
	me->result = DLOCK_WAITING;
	me->granted = NULL;
	dlist_push_tail(&entry->waiters, &me->node);
	if (entry->nwaiters++ == 0)
		dlist_push_tail(&dlock_shared->waited, &entry->waited_node);
	dlock_shared->counters.waits++;
	dlock_poke_worker(entry);
}

/*
 * dlock_dequeue: leave the queue without a grant (timeout, cancel, exit).
 * If this backend was at the head, the waiters behind it may fit now.
 */
void
dlock_dequeue(DLockProc *me, TimestampTz now)
{
	DLockEntry *entry = me->entry;

	if (entry == NULL)
		return;
	if (me->result == DLOCK_WAITING)
	{
		dlist_delete(&me->node);
		entry->nwaiters--;
		dlock_grant_waiters(entry, now);
	}
	me->entry = NULL;
	dlock_entry_forget_if_unused(entry);
}

/*
 * earliest_expiry: when the first holder of entry's lease ends.
 */
static TimestampTz
earliest_expiry(DLockEntry *entry)
{
	TimestampTz next = DT_NOEND;
	dlist_iter	it;

	dlist_foreach(it, &entry->holders)
		next = Min(next, dlist_container(DLockHolder, node, it.cur)->expires_at);
	return next;
}

/*
 * dlock_poke_worker: wake the expiry worker if this entry's holders expire
 * before it planned to look (entry NULL: wake it now).
 */
void
dlock_poke_worker(DLockEntry *entry)
{
	if (dlock_shared->worker_latch == NULL)
		return;
	if (entry != NULL && earliest_expiry(entry) >= dlock_shared->worker_wake_at)
		return;
	dlock_shared->worker_wake_at = 0;
	SetLatch(dlock_shared->worker_latch);
}

/*
 * dlock_expire_waited: the expiry worker's pass.  Expire the holders of
 * every entry that has waiters, hand those locks on, and return when the
 * next such expiry is due.
 */
TimestampTz
dlock_expire_waited(TimestampTz now)
{
	dlist_mutable_iter it;
	TimestampTz wake = DT_NOEND;

	dlist_foreach_modify(it, &dlock_shared->waited)
	{
		DLockEntry *entry = dlist_container(DLockEntry, waited_node, it.cur);
		TimestampTz next;

		dlock_expire(entry, now, &next);
		dlock_grant_waiters(entry, now);
		/* a fenced holder asks for a quick look; new holders count too */
		if (entry->nwaiters > 0)
			wake = Min(wake, Min(next, earliest_expiry(entry)));
	}
	dlock_shared->worker_wake_at = wake;
	return wake;
}

static int
loaded_index(Oid dbid)
{
	for (int i = 0; i < dlock_shared->nloaded; i++)
		if (dlock_shared->loaded[i] == dbid)
			return i;
	return -1;
}

bool
dlock_is_loaded(Oid dbid)
{
	return loaded_index(dbid) >= 0;
}

/*
 * dlock_stale_rows: whether dbid's lease table may hold rows of leases that
 * expired unreleased.  Until one does, a durable grant skips the delete of
 * colliding expired rows.  The flag is set under the exclusive lock before
 * any grant that could collide with such a row, so reading it without the
 * lock after that grant is safe.
 */
bool
dlock_stale_rows(Oid dbid)
{
	int			i = loaded_index(dbid);

	return i < 0 || dlock_shared->stale_rows[i];
}

static void
note_stale_row(DLockHolder *h)
{
	int			i;

	if (h->procno >= 0)
		return;					/* session-owned: no row */
	i = loaded_index(h->entry->key.dbid);
	if (i >= 0)
		dlock_shared->stale_rows[i] = true;
}

/*
 * dlock_mark_loaded: record that dbid's durable grants are in memory.
 * Returns false if another backend did it first.
 */
bool
dlock_mark_loaded(Oid dbid, bool stale_rows)
{
	if (dlock_is_loaded(dbid))
		return false;
	if (dlock_shared->nloaded >= lengthof(dlock_shared->loaded))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("distributed locks are in use in too many databases"),
				 errdetail("At most %d databases of one server can use distsys locks.",
						   (int) lengthof(dlock_shared->loaded))));
	dlock_shared->stale_rows[dlock_shared->nloaded] = stale_rows;
	dlock_shared->loaded[dlock_shared->nloaded++] = dbid;
	return true;
}

/*
 * dlock_proc_exit: the session is ending, by any means short of a crash (a
 * crash resets all of shared memory).  Leave the queue, give back a grant
 * that arrived too late, and release every session-owned lock, handing each
 * to its next waiter at once.
 */
static void
dlock_proc_exit(int code, Datum arg)
{
	DLockProc  *me = &dlock_shared->procs[MyProc->pgprocno];
	TimestampTz now = GetCurrentTimestamp();
	dlist_mutable_iter it;

	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	if (me->entry && me->result == DLOCK_GRANTED && me->granted->procno < 0)
	{
		/* an application-owned grant nobody confirmed: undo it */
		DLockEntry *entry = me->entry;

		dlock_remove_holder(me->granted);
		dlock_grant_waiters(entry, now);
	}
	dlock_dequeue(me, now);
	dlist_foreach_modify(it, &me->held)
	{
		DLockHolder *h = dlist_container(DLockHolder, proc_node, it.cur);
		DLockEntry *entry = h->entry;

		dlock_remove_holder(h);
		dlock_shared->counters.releases++;
		dlock_grant_waiters(entry, now);
		dlock_entry_forget_if_unused(entry);
	}
	LWLockRelease(dlock_shared->lock);
}
