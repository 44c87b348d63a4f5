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
 * records (newest first on abort) still find theirs.
 *
 * A skipped undo is not forgotten: the later change's own undo record still
 * holds our change as its "before".  Should that one roll back too, it must
 * restore the state before ours, not ours:
 *
 *	5. X1's skipped undo leaves on R: lost_version v2, lost_before (the
 *	   state of v1).
 *	6. X2 rolls back instead of committing: R carries v3, X2's own version,
 *	   so its undo applies; its "before" is version v2, which is lost, so it
 *	   restores lost_before, the state of v1, which is what the row says
 *	   once both transactions rolled back.
 *
 * A holder keeps one such slot.  A skipped undo whose change the slot's
 * "before" stands on folds into the slot instead of replacing it, which
 * covers X2 rolling back before X1 while a third transaction X3 changed R
 * after X2.  What one slot cannot cover: two skipped undos that are not
 * next to each other in the chain (X3, then X1, with X2 and X4 changing R
 * too, so four transactions acting for one owner on one grant at once);
 * then the last undo may restore a rolled-back lease, until the next
 * change of the grant.
  An undo that makes a
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
	DLockHolderState before;	/* previous values, for DLOCK_UNDO_CHANGE */
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
	p->before.depth = holder->depth;
	p->before.releasing = holder->releasing;
	p->before.expires_at = holder->expires_at;
	p->before.version = holder->version;
	p->set_version = set_version;
}

/*
 * undo_change: abort of the change p made to h (see the banner).  Restores
 * h if it still carries p's version; else notes p's version as lost on h.
 * Either way, p's "before" is itself replaced by the holder's lost_before
 * when p's change stood on a change rolled back meanwhile.  Returns whether
 * h changed.
 */
static bool
undo_change(DLockHolder *h, const DLockPending *p)
{
	DLockHolderState before = p->before;

	if (h->lost_version != 0 && before.version == h->lost_version)
		before = h->lost_before;
	if (h->version != p->set_version)
	{
		/* changed since by another transaction: leave its change */
		if (h->lost_version != 0 && h->lost_before.version == p->set_version)
			h->lost_before = before;	/* the lost change stood on ours */
		else
		{
			h->lost_version = p->set_version;
			h->lost_before = before;
		}
		return false;
	}
	h->depth = before.depth;
	h->releasing = before.releasing;
	h->expires_at = before.expires_at;
	h->version = before.version;
	return true;
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
		if (undo_change(h, p) && entry->nwaiters > 0)
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
