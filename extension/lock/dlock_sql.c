/*-------------------------------------------------------------------------
 *
 * dlock_sql.c
 *	  The SQL functions of the lock manager and the blocking wait.
 *
 * Each function validates its arguments, makes sure this database's
 * durable grants are loaded, then works on shared memory under
 * dlock_shared->lock (see dlock_shmem.c).  Application-owned changes are
 * then written to distsys.dlock_leases in the caller's transaction, after the
 * matching undo record is registered (dlock_xact.c), so an error anywhere
 * leaves shared memory and the table in agreement.
 *
 * A blocked dlock_acquire sleeps on its latch in the FIFO queue.  It is
 * woken by the backend that grants it the lock (release, session exit,
 * expiry worker), by its own timeout, or by an interrupt; on cancel or
 * statement_timeout it leaves the queue (or gives back a grant that arrived
 * meanwhile) before the error propagates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "dlock.h"

#define ERRCODE_DLOCK_STALE_TOKEN	MAKE_SQLSTATE('Y','L','0','0','1')
#define DLOCK_ADMIN_ROLE			"distsys_lock_admin"

/* One parsed lock request. */
typedef struct DLockRequest
{
	DLockKey	key;
	const char *owner;			/* NULL: this session */
	DLockMode	mode;
	int64		ttl_us;
} DLockRequest;

static void
invalid(const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 hint ? errhint("%s", hint) : 0));
}

static void
parse_name(FunctionCallInfo fcinfo, int argno, DLockKey *key)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		invalid("lock name must not be null", NULL);
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (name[0] == '\0')
		invalid("lock name must not be empty", NULL);
	if (strlen(name) > DLOCK_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("lock name is too long"),
				 errdetail("The name has %zu bytes; at most %d are allowed.",
						   strlen(name), DLOCK_NAME_MAX)));
	memset(key, 0, sizeof(DLockKey));
	key->dbid = MyDatabaseId;
	strlcpy(key->name, name, sizeof(key->name));
}

static const char *
parse_owner(FunctionCallInfo fcinfo, int argno)
{
	char	   *owner;

	if (PG_ARGISNULL(argno))
		return NULL;
	owner = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (owner[0] == '\0')
		invalid("lock owner must not be empty",
				"Pass NULL for a lock owned by this session.");
	if (strlen(owner) > DLOCK_OWNER_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("lock owner is too long"),
				 errdetail("The owner has %zu bytes; at most %d are allowed.",
						   strlen(owner), DLOCK_OWNER_MAX)));
	return owner;
}

/*
 * interval_usecs: an interval as microseconds (a month counts 30 days, as
 * in interval comparison); ERROR on overflow.
 */
static int64
interval_usecs(const Interval *iv, const char *what)
{
	int64		days = (int64) iv->month * DAYS_PER_MONTH + iv->day;

	if (days > PG_INT64_MAX / USECS_PER_DAY / 2 || days < -PG_INT64_MAX / USECS_PER_DAY / 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range", what)));
	return days * USECS_PER_DAY + iv->time;
}

static int64
parse_ttl(FunctionCallInfo fcinfo, int argno)
{
	int64		us;

	if (PG_ARGISNULL(argno))
		invalid("lock ttl must not be null", NULL);
	us = interval_usecs(PG_GETARG_INTERVAL_P(argno), "lock ttl");
	if (us <= 0)
		invalid("lock ttl must be positive", NULL);
	if (us > (int64) distsys_lock_max_ttl_s * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lock ttl is longer than distsys.lock_max_ttl (%d s)",
						distsys_lock_max_ttl_s),
				 errhint("Renew the lock with dlock_renew before it expires, or raise distsys.lock_max_ttl.")));
	return us;
}

static DLockMode
parse_mode(FunctionCallInfo fcinfo, int argno)
{
	char	   *mode;

	if (PG_ARGISNULL(argno))
		invalid("lock mode must not be null", NULL);
	mode = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (strcmp(mode, "exclusive") == 0)
		return DLOCK_EXCLUSIVE;
	if (strcmp(mode, "shared") == 0)
		return DLOCK_SHARED;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown lock mode \"%s\"", mode),
			 errhint("The lock mode is 'exclusive' or 'shared'.")));
	return DLOCK_EXCLUSIVE;		/* keep compiler quiet */
}

static int64
parse_token(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		invalid("fencing token must not be null", NULL);
	return PG_GETARG_INT64(argno);
}

/*
 * lock_begin: the common prologue of every lock function.
 */
static void
lock_begin(void)
{
	distsys_require_preload("distributed locks");
	dlock_table_ensure_loaded();
}

/*
 * lookup_live: the entry of key with its expired holders removed and the
 * lock handed on; NULL if nobody holds or waits for it.  Caller holds the
 * exclusive lock.
 */
static DLockEntry *
lookup_live(const DLockKey *key, bool create, TimestampTz now)
{
	DLockEntry *entry = dlock_entry_lookup(key, create);
	TimestampTz next;

	if (entry != NULL && dlock_expire(entry, now, &next) > 0)
		dlock_grant_waiters(entry, now);
	return entry;
}

/*
 * durable_commit: after a change to an application-owned holder, write its
 * row.  "before" is the state to restore on abort, or NULL for a new grant;
 * row_exists says whether the holder's row is there to update (it is not
 * for a new grant, nor after a release earlier in this transaction).
 */
static void
durable_commit(const DLockKey *key, const DLockHolder *after,
			   const DLockHolder *before, bool row_exists, TimestampTz now)
{
	dlock_xact_remember(before ? DLOCK_UNDO_CHANGE : DLOCK_UNDO_GRANT, key,
						before ? before : after);
	if (row_exists)
		dlock_table_update(key->name, after);
	else
		dlock_table_insert(key->name, after, now);
}

/*
 * reenter: the owner already holds the lock: depth + 1 and a lease of at
 * least ttl from now.  Caller holds the exclusive lock; it is released here.
 */
static int64
reenter(DLockRequest *req, DLockHolder *h, TimestampTz now)
{
	DLockHolder before = *h;
	DLockHolder after;

	if (h->mode == DLOCK_SHARED && req->mode == DLOCK_EXCLUSIVE && !h->releasing)
	{
		LWLockRelease(dlock_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("lock \"%s\" is held in shared mode by this owner", req->key.name),
				 errdetail("A shared lock cannot be upgraded to exclusive in place."),
				 errhint("Release the shared lock, then acquire it in exclusive mode.")));
	}
	if (h->releasing)
		h->depth = 1;			/* taken back before the release committed */
	else if (h->depth >= DLOCK_MAX_DEPTH)
	{
		LWLockRelease(dlock_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lock \"%s\" is already held %d times by this owner",
						req->key.name, DLOCK_MAX_DEPTH)));
	}
	else
		h->depth++;
	h->releasing = false;
	h->expires_at = Max(h->expires_at, now + req->ttl_us);
	after = *h;
	LWLockRelease(dlock_shared->lock);
	if (req->owner)
		durable_commit(&req->key, &after, &before, !before.releasing, now);
	return after.token;
}

static void
no_slot_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("too many distributed lock grants held at once"),
			 errdetail("All %d holder slots are in use.", distsys_max_lock_holders),
			 errhint("Increase distsys.max_lock_holders and restart the server.")));
}

/*
 * take_grant: finish a grant this backend now owns (made directly or handed
 * over while it waited): write the durable row if application-owned.
 * Called with the exclusive lock held; releases it.
 */
static int64
take_grant(DLockRequest *req, DLockHolder *h, TimestampTz now)
{
	DLockHolder after = *h;

	LWLockRelease(dlock_shared->lock);
	if (req->owner)
		durable_commit(&req->key, &after, NULL, false, now);
	return after.token;
}

/*
 * give_back: undo a grant that this backend cannot complete (an error or
 * interrupt arrived with it), handing the lock to the next waiter.
 */
static void
give_back(DLockProc *me, TimestampTz now)
{
	DLockEntry *entry = me->entry;

	if (me->result == DLOCK_GRANTED)
	{
		dlock_remove_holder(me->granted);
		dlock_grant_waiters(entry, now);
	}
	dlock_dequeue(me, now);
}

/*
 * wait_latch: sleep until woken or the deadline (0: none) passes.
 * Returns the WaitLatch result.
 */
static int
wait_latch(TimestampTz deadline)
{
	int			flags = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
	long		ms = -1;
	int			rc;

	if (deadline != 0)
	{
		ms = (long) ((deadline - GetCurrentTimestamp() + 999) / 1000);
		flags |= WL_TIMEOUT;
		ms = Max(ms, 0);
	}
	rc = WaitLatch(MyLatch, flags, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	return rc;
}

/*
 * wait_for_grant: the blocking part of dlock_acquire.  The caller queued
 * this backend and released the lock.  Returns the token, or 0 on timeout.
 */
static int64
wait_for_grant(DLockRequest *req, DLockProc *me, TimestampTz deadline)
{
	int64		token = 0;

	PG_TRY();
	{
		for (;;)
		{
			int			rc = wait_latch(deadline);
			TimestampTz now = GetCurrentTimestamp();

			LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
			if (rc & WL_LATCH_SET)
				dlock_shared->counters.wakeups++;
			if (me->result == DLOCK_GRANTED)
			{
				DLockHolder *h = me->granted;

				me->entry = NULL;
				token = take_grant(req, h, now);
				break;
			}
			if (me->result == DLOCK_NO_SLOT)
			{
				dlock_dequeue(me, now);
				LWLockRelease(dlock_shared->lock);
				no_slot_error();
			}
			if (deadline != 0 && now >= deadline)
			{
				dlock_dequeue(me, now);
				dlock_shared->counters.timeouts++;
				LWLockRelease(dlock_shared->lock);
				break;
			}
			LWLockRelease(dlock_shared->lock);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		LWLockReleaseAll();
		LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
		if (me->entry != NULL)
			give_back(me, GetCurrentTimestamp());
		LWLockRelease(dlock_shared->lock);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return token;
}

/*
 * lock_common: dlock_try (timeout_us 0) and dlock_acquire (timeout_us < 0:
 * forever).  Returns the token, or 0 when the lock was not granted.
 */
static int64
lock_common(DLockRequest *req, int64 timeout_us)
{
	TimestampTz now;
	DLockEntry *entry;
	DLockHolder *h;
	DLockProc  *me;

	lock_begin();
	dlock_reserve_tokens();
	me = dlock_my_proc();
	now = GetCurrentTimestamp();
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	entry = lookup_live(&req->key, true, now);
	h = dlock_find_holder(entry, req->owner);
	if (h != NULL)
		return reenter(req, h, now);

	if (dlist_is_empty(&entry->waiters) && dlock_compatible(entry, req->mode))
	{
		h = dlock_grant(entry, req->mode, req->owner,
						req->owner ? -1 : MyProc->pgprocno,
						req->owner ? 0 : MyProcPid, now, req->ttl_us);
		if (h == NULL)
		{
			dlock_entry_forget_if_unused(entry);
			LWLockRelease(dlock_shared->lock);
			no_slot_error();
		}
		return take_grant(req, h, now);
	}
	if (timeout_us == 0)
	{
		LWLockRelease(dlock_shared->lock);
		return 0;
	}

	strlcpy(me->owner, req->owner ? req->owner : "", sizeof(me->owner));
	me->mode = req->mode;
	me->ttl_us = req->ttl_us;
	me->since = now;
	me->pid = MyProcPid;
	me->latch = MyLatch;
	/* whatever set the latch before we queued was not a grant of ours */
	ResetLatch(MyLatch);
	dlock_enqueue(entry, me);
	LWLockRelease(dlock_shared->lock);
	return wait_for_grant(req, me, timeout_us < 0 ? 0 : now + timeout_us);
}

static void
parse_request(FunctionCallInfo fcinfo, DLockRequest *req, int name_arg,
			  int ttl_arg, int owner_arg, int mode_arg)
{
	parse_name(fcinfo, name_arg, &req->key);
	req->ttl_us = parse_ttl(fcinfo, ttl_arg);
	req->owner = parse_owner(fcinfo, owner_arg);
	req->mode = mode_arg >= 0 ? parse_mode(fcinfo, mode_arg) : DLOCK_EXCLUSIVE;
}

PG_FUNCTION_INFO_V1(dlock_try);
PG_FUNCTION_INFO_V1(dlock_acquire);
PG_FUNCTION_INFO_V1(dlock_release);
PG_FUNCTION_INFO_V1(dlock_renew);
PG_FUNCTION_INFO_V1(dlock_check);
PG_FUNCTION_INFO_V1(dlock_assert);
PG_FUNCTION_INFO_V1(dlock_break);
PG_FUNCTION_INFO_V1(dlock_cleanup);

/*
 * dlock_try(name, ttl, owner, mode): the token, or NULL if held by another.
 */
Datum
dlock_try(PG_FUNCTION_ARGS)
{
	DLockRequest req;
	int64		token;

	parse_request(fcinfo, &req, 0, 1, 2, 3);
	token = lock_common(&req, 0);
	if (token == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(token);
}

/*
 * dlock_acquire(name, ttl, timeout, owner, mode): the token, or NULL when
 * the timeout (NULL: none) passed first.
 */
Datum
dlock_acquire(PG_FUNCTION_ARGS)
{
	DLockRequest req;
	int64		timeout_us = -1;
	int64		token;

	parse_request(fcinfo, &req, 0, 1, 3, 4);
	if (!PG_ARGISNULL(2))
	{
		timeout_us = interval_usecs(PG_GETARG_INTERVAL_P(2), "lock timeout");
		if (timeout_us < 0)
			invalid("lock timeout must not be negative",
					"Pass NULL to wait without a timeout, or '0' not to wait.");
	}
	token = lock_common(&req, timeout_us);
	if (token == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(token);
}

/*
 * release_held: one level of a release of holder h, which this caller
 * holds.  Caller holds the exclusive lock; it is released here.
 *
 * A session-owned lock is freed (and handed on) at once.  For an
 * application-owned one, a depth decrement happens at once but the final
 * release only when this transaction commits, because its row still
 * exists until then; both are undone if the transaction rolls back.
 */
static void
release_held(const DLockKey *key, DLockEntry *entry, DLockHolder *h,
			 const char *owner, TimestampTz now)
{
	DLockHolder before = *h;
	DLockHolder after;

	if (owner == NULL && h->depth == 1)
	{
		dlock_remove_holder(h);
		dlock_shared->counters.releases++;
		dlock_grant_waiters(entry, now);
		dlock_entry_forget_if_unused(entry);
	}
	else if (h->depth > 1)
		h->depth--;
	else
		h->releasing = true;
	after = *h;
	LWLockRelease(dlock_shared->lock);
	if (owner == NULL)
		return;

	dlock_xact_remember(DLOCK_UNDO_CHANGE, key, &before);
	if (after.releasing)
	{
		dlock_xact_remember(DLOCK_DEFER_RELEASE, key, &after);
		dlock_heap_delete(key->name, &after);
	}
	else
		dlock_table_update(key->name, &after);
}

/*
 * dlock_release(name, owner): true if the caller held the lock.  At depth 0
 * the lock goes to the next waiter at once (for an application-owned lock,
 * when the releasing transaction commits).
 */
Datum
dlock_release(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	const char *owner;
	TimestampTz now;
	DLockEntry *entry;
	DLockHolder *h;

	parse_name(fcinfo, 0, &key);
	owner = parse_owner(fcinfo, 1);
	lock_begin();
	now = GetCurrentTimestamp();
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	entry = lookup_live(&key, false, now);
	h = entry ? dlock_find_holder(entry, owner) : NULL;
	if (h == NULL || h->releasing)
	{
		if (entry)
			dlock_entry_forget_if_unused(entry);
		LWLockRelease(dlock_shared->lock);
		PG_RETURN_BOOL(false);
	}
	release_held(&key, entry, h, owner, now);
	PG_RETURN_BOOL(true);
}

/*
 * dlock_renew(name, ttl, owner): set the lease of a lock the owner still
 * holds to end ttl from now; false if it expired or was taken over.
 */
Datum
dlock_renew(PG_FUNCTION_ARGS)
{
	DLockRequest req;
	TimestampTz now;
	DLockEntry *entry;
	DLockHolder *h;
	DLockHolder before;
	DLockHolder after;

	parse_request(fcinfo, &req, 0, 1, 2, -1);
	lock_begin();
	now = GetCurrentTimestamp();
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	entry = lookup_live(&req.key, false, now);
	h = entry ? dlock_find_holder(entry, req.owner) : NULL;
	if (h == NULL || h->releasing || !dlock_holder_live(h, now))
	{
		if (entry)
			dlock_entry_forget_if_unused(entry);
		LWLockRelease(dlock_shared->lock);
		PG_RETURN_BOOL(false);
	}
	before = *h;
	h->expires_at = now + req.ttl_us;
	after = *h;
	if (dlist_is_empty(&entry->waiters) == false)
		dlock_poke_worker(NULL);	/* its planned expiry pass is early now */
	LWLockRelease(dlock_shared->lock);
	if (req.owner)
		durable_commit(&req.key, &after, &before, true, now);
	PG_RETURN_BOOL(true);
}

/*
 * check_token: whether token is a current, unexpired grant of the lock; with
 * fence, also fence the calling transaction on the grant.
 */
static bool
check_token(FunctionCallInfo fcinfo, DLockKey *key, int64 *token, bool fence)
{
	TransactionId xid = InvalidTransactionId;
	DLockEntry *entry;
	DLockHolder *h;
	bool		ok;

	parse_name(fcinfo, 0, key);
	*token = parse_token(fcinfo, 1);
	lock_begin();
	if (fence)
		xid = GetTopTransactionId();	/* before the lock: it may do I/O */
	LWLockAcquire(dlock_shared->lock, fence ? LW_EXCLUSIVE : LW_SHARED);
	entry = dlock_entry_lookup(key, false);
	h = entry ? dlock_holder_by_token(entry, *token) : NULL;
	ok = h != NULL && dlock_holder_live(h, GetCurrentTimestamp());
	if (ok && fence)
		dlock_fence(h, xid);
	LWLockRelease(dlock_shared->lock);
	return ok;
}

Datum
dlock_check(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	int64		token;

	PG_RETURN_BOOL(check_token(fcinfo, &key, &token, false));
}

/*
 * dlock_assert(name, token): raise DL001 unless token is the current grant.
 * On success the grant cannot be taken over by expiry until the calling
 * transaction ends, so a write that follows in it is fenced.
 */
Datum
dlock_assert(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	int64		token;

	if (!check_token(fcinfo, &key, &token, true))
		ereport(ERROR,
				(errcode(ERRCODE_DLOCK_STALE_TOKEN),
				 errmsg("fencing token " INT64_FORMAT " is not the current grant of lock \"%s\"",
						token, key.name),
				 errdetail("The lock was released, expired or granted to someone else since this token was issued."),
				 errhint("Acquire the lock again and retry the work with the new token.")));
	PG_RETURN_VOID();
}

static void
check_break_privilege(void)
{
	Oid			admin = get_role_oid(DLOCK_ADMIN_ROLE, true);

	if (superuser() || (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to break distributed locks"),
			 errhint("Only superusers and members of role %s may break locks.",
					 DLOCK_ADMIN_ROLE)));
}

/*
 * dlock_break(name): forcibly end every grant of the lock.  Session-owned
 * grants end at once; application-owned ones when this transaction commits.
 */
Datum
dlock_break(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	DLockEntry *entry;
	dlist_mutable_iter it;
	TimestampTz now;
	DLockHolder *durable = NULL;
	int			ndurable = 0;
	bool		any = false;

	parse_name(fcinfo, 0, &key);
	check_break_privilege();
	lock_begin();
	now = GetCurrentTimestamp();
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	entry = lookup_live(&key, false, now);
	if (entry != NULL)
	{
		/* palloc under an LWLock is fine: an error releases it on abort */
		durable = palloc(Max(1, entry->nholders) * sizeof(DLockHolder));
		dlist_foreach_modify(it, &entry->holders)
		{
			DLockHolder *h = dlist_container(DLockHolder, node, it.cur);

			any = true;
			if (h->procno >= 0)
			{
				dlock_remove_holder(h);
				dlock_shared->counters.breaks++;
			}
			else
				durable[ndurable++] = *h;
		}
		dlock_grant_waiters(entry, now);
		dlock_entry_forget_if_unused(entry);
	}
	LWLockRelease(dlock_shared->lock);
	for (int i = 0; i < ndurable; i++)
	{
		dlock_xact_remember(DLOCK_DEFER_BREAK, &key, &durable[i]);
		dlock_heap_delete(key.name, &durable[i]);
	}
	PG_RETURN_BOOL(any);
}

/*
 * dlock_cleanup(): delete expired rows from distsys.dlock_leases.
 */
Datum
dlock_cleanup(PG_FUNCTION_ARGS)
{
	lock_begin();
	PG_RETURN_INT64(dlock_table_cleanup());
}
