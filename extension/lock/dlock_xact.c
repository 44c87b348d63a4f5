/*-------------------------------------------------------------------------
 *
 * dlock_xact.c
 *	  Commit and abort effects of application-owned lock operations.
 *
 * An application-owned grant is durable through its row in
 * distsys.dlock_leases, written in the caller's transaction.  Shared memory
 * must end up agreeing with whatever that transaction does:
 *
 *	- a grant or a change (reentry, renewal, a release that leaves depth > 0)
 *	  takes effect in shared memory at once, and is undone if the
 *	  transaction (or the savepoint it ran under) rolls back;
 *	- a final release or a break frees the lock only when the transaction
 *	  commits, because until then its row still exists.
 *
 * An undo record undoes only its own change.  Other connections may act for
 * the same owner, so another transaction can change the holder after ours
 * did (its row update then waits for our transaction to end) and commit.
 * Restoring our "before" state over its change would leave shared memory
 * saying one thing and dlock_leases another.  So each change gives the
 * holder a new version (dlock_holder_changed), the undo record keeps the
 * version the change set, and the undo restores only a holder that still
 * carries it:
 *
 *	1. X1 renews R: version v1 -> v2, undo record (before, v2).
 *	2. X2, same owner, renews R in shared memory: v2 -> v3; its row update
 *	   waits for X1's row lock.
 *	3. X1 rolls back: R carries v3, not v2, so X1's undo leaves it alone.
 *	4. X2's update goes through and commits: shared memory and the row both
 *	   hold X2's lease.
 *
 * Undone records of one transaction restore the version too, so its older
 * records (newest first on abort) still find theirs.  An undo that makes a
 * lease end earlier, or hands a lock on, pokes the expiry worker, whose
 * planned wake-up may be later than the new expiry.
 *
 * The list of pending operations is backend-local; the shared state it
 * touches is changed under dlock_shared->lock like everywhere else.
 * Session-owned locks are not transactional (like pg_advisory_lock) and
 * never appear here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dlock.h"

typedef struct DLockPending
{
	DLockPendingKind kind;
	int			level;			/* transaction nesting level */
	DLockKey	key;
	int64		token;
	int32		depth;			/* previous values, for DLOCK_UNDO_CHANGE */
	bool		releasing;
	TimestampTz expires_at;
	uint64		version;
	uint64		set_version;	/* the version our change gave the holder */
} DLockPending;

static DLockPending *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;

/*
 * dlock_xact_remember: note an operation whose effect depends on how the
 * current (sub)transaction ends.  For DLOCK_UNDO_CHANGE, holder is the state
 * to restore and set_version the version the change gave the holder (the
 * undo applies only while the holder still has it); else set_version is 0.
 */
void
dlock_xact_remember(DLockPendingKind kind, const DLockKey *key,
					const DLockHolder *holder, uint64 set_version)
{
	DLockPending *p;

	if (npending == maxpending)
	{
		maxpending = Max(16, maxpending * 2);
		pending = pending
			? repalloc(pending, maxpending * sizeof(DLockPending))
			: MemoryContextAlloc(TopMemoryContext, maxpending * sizeof(DLockPending));
	}
	p = &pending[npending++];
	p->kind = kind;
	p->level = GetCurrentTransactionNestLevel();
	p->key = *key;
	p->token = holder->token;
	p->depth = holder->depth;
	p->releasing = holder->releasing;
	p->expires_at = holder->expires_at;
	p->version = holder->version;
	p->set_version = set_version;
}

/*
 * apply_pending: carry out one operation at commit or abort.  Runs under the
 * exclusive lock and never raises an error.  An undo of a change applies
 * only while the holder carries the version that change set (see the
 * banner).
 */
static void
apply_pending(DLockPending *p, bool commit, TimestampTz now)
{
	DLockEntry *entry = dlock_entry_lookup(&p->key, false);
	DLockHolder *h = entry ? dlock_holder_by_token(entry, p->token) : NULL;

	if (h == NULL)
		return;					/* expired or broken meanwhile */
	if (commit && ((p->kind == DLOCK_DEFER_RELEASE && h->releasing) ||
				   p->kind == DLOCK_DEFER_BREAK))
	{
		dlock_remove_holder(h);
		if (p->kind == DLOCK_DEFER_BREAK)
			dlock_shared->counters.breaks++;
		else
			dlock_shared->counters.releases++;
	}
	else if (!commit && p->kind == DLOCK_UNDO_GRANT)
		dlock_remove_holder(h);
	else if (!commit && p->kind == DLOCK_UNDO_CHANGE)
	{
		if (h->version != p->set_version)
			return;				/* changed since by another transaction */
		h->depth = p->depth;
		h->releasing = p->releasing;
		h->expires_at = p->expires_at;
		h->version = p->version;
		if (entry->nwaiters > 0)
			dlock_poke_worker(entry);	/* the lease may end earlier now */
		return;
	}
	else
		return;
	dlock_grant_waiters(entry, now);
	dlock_entry_forget_if_unused(entry);
}

/*
 * applies: whether p is carried out when a (sub)transaction at nesting
 * level ends: a commit carries out the deferred releases and breaks, an
 * abort the undo records of its level and deeper.
 */
static bool
applies(const DLockPending *p, bool commit, int level)
{
	bool		deferred = p->kind == DLOCK_DEFER_RELEASE || p->kind == DLOCK_DEFER_BREAK;

	return commit ? deferred : (!deferred && p->level >= level);
}

/*
 * finish_pending: carry out the operations that apply (see applies), in
 * order on commit and newest first on abort, so that undo records restore
 * the oldest state last; then forget those that ended.
 */
static void
finish_pending(bool commit, int level)
{
	int			keep = 0;
	bool		any = false;

	for (int i = 0; i < npending && !any; i++)
		any = applies(&pending[i], commit, level);
	if (any)					/* else: say, the commit of grants only */
	{
		TimestampTz now = GetCurrentTimestamp();

		LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
		if (commit)
			for (int i = 0; i < npending; i++)
				apply_pending(&pending[i], true, now);
		else
			for (int i = npending - 1; i >= 0; i--)
				if (pending[i].level >= level)
					apply_pending(&pending[i], false, now);
		LWLockRelease(dlock_shared->lock);
	}

	/* a commit ends them all; a (sub)abort ends those at its level */
	for (int i = 0; i < npending && !commit; i++)
		if (pending[i].level < level)
			pending[keep++] = pending[i];
	npending = keep;
}

static void
dlock_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (npending > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that took or released application-owned distributed locks"),
						 errhint("Take and release application-owned locks outside the prepared transaction.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			finish_pending(true, 0);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			finish_pending(false, 0);
			break;
		default:
			break;
	}
}

static void
dlock_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
		finish_pending(false, level);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < npending; i++)
			if (pending[i].level >= level)
				pending[i].level = level - 1;
	}
}

/*
 * dlock_xact_init: register the callbacks (once per backend, from _PG_init).
 */
void
dlock_xact_init(void)
{
	RegisterXactCallback(dlock_xact_callback, NULL);
	RegisterSubXactCallback(dlock_subxact_callback, NULL);
}
