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
 * Locking: every function that takes dlock_shared->lock releases it
 * itself.  What is done under it is a *_step function that only changes
 * shared memory and returns what it decided (a DLockStep, with copies of
 * the grant in a DLockOutcome); the caller releases the lock, then raises
 * the step's error, waits or writes the table, so no lock traffic stalls
 * behind an error report or a table write.  (A few operations of
 * dlock_shmem.c do raise an error under the lock, when lock entries or
 * fence slots run out; they change nothing first, and error recovery
 * releases every LWLock.)
 *
 * Who may act on a grant: an application-owned grant belongs to the role
 * that took it (DLockHolder.role), not to whoever names its owner string,
 * which everyone can read.  Re-entering, releasing, renewing or fencing it
 * (dlock_assert) takes that role, a role with its privileges
 * (has_privs_of_role, so superusers too) or a member of distsys_lock_admin;
 * to any other role the grant is another contender's.  Whether the caller
 * has another role's privileges takes catalog lookups, which are never done
 * under dlock_shared->lock (they may read from disk, take heavyweight locks
 * or fail): a step that meets a grant of a role it has not asked about yet
 * changes nothing and names that role (DLockOutcome.ask_role); its caller
 * asks with the lock released (actor_ask) and takes the step again.
 * Session-owned grants are found by the session, as before; only fencing
 * one asks for its role.
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
#include "distsys_protocol.h"
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

/*
 * DLockStep: what a step taken under dlock_shared->lock decided.  The step
 * only changes shared memory and copies out what the caller needs; the
 * caller releases the lock, then raises the step's error, waits or writes
 * the lease table.
 */
typedef enum DLockStep
{
	STEP_GRANTED,				/* a new grant, copied to after */
	STEP_REENTERED,				/* the grant changed from before to after */
	STEP_QUEUED,				/* this backend waits in the lock's queue */
	STEP_NOT_GRANTED,			/* held by another, or the wait timed out */
	STEP_NO_UPGRADE,			/* shared holder asked for exclusive */
	STEP_TOO_DEEP,				/* already reentered DLOCK_MAX_DEPTH times */
	STEP_NO_SLOT				/* no free holder slot */
} DLockStep;

/* A step's result, copied out of shared memory. */
typedef struct DLockOutcome
{
	DLockStep	step;
	TimestampTz now;			/* when the step was taken */
	Oid			ask_role;		/* valid: ask about it, take the step again */
	DLockHolder before;			/* a changed grant as it was (for undo) */
	DLockHolder after;			/* the grant as the step left it */
} DLockOutcome;

/*
 * DLockActor: the calling role, and the one other role it has been asked
 * about during this call (see "Who may act on a grant" above).
 */
typedef struct DLockActor
{
	Oid			role;			/* GetUserId() */
	Oid			asked;			/* another role, or InvalidOid */
	bool		may;			/* whether role may act for asked */
} DLockActor;

/* What dlock_check and dlock_assert found for a token. */
typedef enum DLockTokenState
{
	TOKEN_STALE,				/* not a current, unexpired grant */
	TOKEN_CURRENT,				/* current (and fenced, if asked) */
	TOKEN_OTHER_ROLE			/* current, but not the caller's to fence */
} DLockTokenState;

static void
invalid(const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * has_privs_of_named_role: whether the current user is a superuser or has
 * the privileges of role rolname (false if no such role exists).
 */
static bool
has_privs_of_named_role(const char *rolname)
{
	Oid			role;

	if (superuser())
		return true;
	role = get_role_oid(rolname, true);
	return OidIsValid(role) && has_privs_of_role(GetUserId(), role);
}

/*
 * check_reserved_name: names starting with "distsys." coordinate distsys's
 * own processes (distsys-relay's lanes and members): only superusers and
 * roles with the privileges of distsys_relay may use them, in any dlock_*
 * function, so that no other role can hold a relay's lane or pose as a
 * relay (distsys_protocol.h).
 */
static void
check_reserved_name(const char *name)
{
	if (strncmp(name, DISTSYS_RESERVED_LOCK_PREFIX, strlen(DISTSYS_RESERVED_LOCK_PREFIX)) != 0 ||
		has_privs_of_named_role(DISTSYS_RELAY_ROLE))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for lock \"%s\"", name),
			 errdetail("Lock names starting with \"%s\" are reserved for distsys-relay.",
					   DISTSYS_RESERVED_LOCK_PREFIX),
			 errhint("Choose another name. A role that runs distsys-relay needs membership in %s.",
					 DISTSYS_RELAY_ROLE)));
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
	check_reserved_name(name);
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
 * dlock_is_admin: whether the current user may act on every grant: a
 * superuser or a role with the privileges of distsys_lock_admin.
 */
static bool
dlock_is_admin(void)
{
	return has_privs_of_named_role(DLOCK_ADMIN_ROLE);
}

static void
actor_init(DLockActor *actor, DLockOutcome *out)
{
	actor->role = GetUserId();
	actor->asked = InvalidOid;
	actor->may = false;
	out->ask_role = InvalidOid;
}

/*
 * may_act: whether actor may act on grant h, under dlock_shared->lock,
 * which the caller holds.  Without the lookups that are not done under the
 * lock, this is known for the actor's own role and the one it was asked
 * about; for any other role it returns false and names the role in
 * out->ask_role, and the caller's step must then change nothing.
 */
static bool
may_act(const DLockActor *actor, const DLockHolder *h, DLockOutcome *out)
{
	if (h->role == actor->role)
		return true;
	if (h->role == actor->asked)
		return actor->may;
	out->ask_role = h->role;
	return false;
}

/*
 * actor_ask: after a step, with the lock released.  If the step named a
 * role to ask about, find out whether the actor may act for it and return
 * true: the caller takes the step again.  Each round learns the role of a
 * grant that was there a moment ago; a new round only follows if that
 * grant changed hands meanwhile.
 */
static bool
actor_ask(DLockActor *actor, DLockOutcome *out)
{
	if (!OidIsValid(out->ask_role))
		return false;
	actor->asked = out->ask_role;
	actor->may = has_privs_of_role(actor->role, actor->asked) || dlock_is_admin();
	out->ask_role = InvalidOid;
	CHECK_FOR_INTERRUPTS();
	return true;
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
						before ? before : after, before ? after->version : 0);
	if (row_exists)
		dlock_table_update(key->name, after);
	else
		dlock_table_insert(key->name, after, now);
}

/*
 * reenter: the owner already holds the lock as h: depth + 1 and a lease of
 * at least ttl from now.  Caller holds the exclusive lock.  Returns
 * STEP_REENTERED, or why h stays as it is.
 */
static DLockStep
reenter(const DLockRequest *req, DLockHolder *h, DLockOutcome *out)
{
	if (h->mode == DLOCK_SHARED && req->mode == DLOCK_EXCLUSIVE && !h->releasing)
		return STEP_NO_UPGRADE;
	if (!h->releasing && h->depth >= DLOCK_MAX_DEPTH)
		return STEP_TOO_DEEP;
	out->before = *h;
	/* taken back before its final release committed: depth 1 again */
	h->depth = h->releasing ? 1 : h->depth + 1;
	h->releasing = false;
	h->expires_at = Max(h->expires_at, out->now + req->ttl_us);
	dlock_holder_changed(h);
	out->after = *h;
	return STEP_REENTERED;
}

/*
 * grant_now: a new grant of the free or compatible entry to the requester.
 * Caller holds the exclusive lock.  Returns STEP_GRANTED, or STEP_NO_SLOT
 * when every holder slot is in use.
 */
static DLockStep
grant_now(const DLockRequest *req, DLockEntry *entry, DLockOutcome *out)
{
	DLockHolder *h;

	h = dlock_grant(entry, req->mode, req->owner, GetUserId(),
					req->owner ? -1 : MyProc->pgprocno,
					req->owner ? 0 : MyProcPid, out->now, req->ttl_us);
	if (h == NULL)
	{
		dlock_entry_forget_if_unused(entry);
		return STEP_NO_SLOT;
	}
	out->after = *h;
	return STEP_GRANTED;
}

/*
 * enqueue_me: put this backend at the tail of entry's queue with its
 * request.  Caller holds the exclusive lock.
 */
static void
enqueue_me(const DLockRequest *req, DLockProc *me, DLockEntry *entry,
		   TimestampTz now)
{
	strlcpy(me->owner, req->owner ? req->owner : "", sizeof(me->owner));
	me->role = GetUserId();
	me->mode = req->mode;
	me->ttl_us = req->ttl_us;
	me->since = now;
	me->pid = MyProcPid;
	me->latch = MyLatch;
	/* whatever set the latch before we queued was not a grant of ours */
	ResetLatch(MyLatch);
	dlock_enqueue(entry, me);
}

/*
 * lock_step: the part of dlock_try and dlock_acquire done under the
 * exclusive lock, which the caller holds: reenter a lock the requester
 * holds, grant a free one, or (if wait) queue for it.  Returns the step
 * taken, or STEP_NOT_GRANTED when the lock is held and wait is false (or
 * the actor is to be asked about the role of its owner's grant first).
 *
 * A grant of the requested owner string that the actor may not act for is
 * another contender's: the lock is held, whatever the mode.
 */
static DLockStep
lock_step(const DLockRequest *req, const DLockActor *actor, DLockProc *me,
		  bool wait, DLockOutcome *out)
{
	DLockEntry *entry = lookup_live(&req->key, true, out->now);
	DLockHolder *h = dlock_find_holder(entry, req->owner);
	bool		taken = false;

	if (h != NULL && req->owner != NULL && !may_act(actor, h, out))
	{
		if (OidIsValid(out->ask_role))
			return STEP_NOT_GRANTED;
		taken = true;
		h = NULL;
	}
	if (h != NULL)
		return reenter(req, h, out);
	if (!taken && dlist_is_empty(&entry->waiters) &&
		dlock_compatible(entry, req->mode))
		return grant_now(req, entry, out);
	if (!wait)
		return STEP_NOT_GRANTED;
	enqueue_me(req, me, entry, out->now);
	return STEP_QUEUED;
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
 * refuse: raise the error of a lock request that ended with step, if it is
 * one of the refusals.
 */
static void
refuse(const DLockRequest *req, DLockStep step)
{
	if (step == STEP_NO_SLOT)
		no_slot_error();
	if (step == STEP_NO_UPGRADE)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("lock \"%s\" is held in shared mode by this owner", req->key.name),
				 errdetail("A shared lock cannot be upgraded to exclusive in place."),
				 errhint("Release the shared lock, then acquire it in exclusive mode.")));
	if (step == STEP_TOO_DEEP)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lock \"%s\" is already held %d times by this owner",
						req->key.name, DLOCK_MAX_DEPTH)));
}

/*
 * finish_lock: act on how a lock request ended, with the lock released:
 * raise its error, or write the row of an application-owned grant or
 * reentry.  Returns the token, or 0 when the lock was not granted.
 */
static int64
finish_lock(const DLockRequest *req, const DLockOutcome *out)
{
	refuse(req, out->step);
	if (out->step == STEP_GRANTED && req->owner)
		durable_commit(&req->key, &out->after, NULL, false, out->now);
	else if (out->step == STEP_REENTERED && req->owner)
		durable_commit(&req->key, &out->after, &out->before,
					   !out->before.releasing, out->now);
	if (out->step == STEP_GRANTED || out->step == STEP_REENTERED)
		return out->after.token;
	return 0;
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
 * wait_step: after a wake-up, under the exclusive lock, which the caller
 * holds: STEP_GRANTED if a grant was handed over, STEP_NO_SLOT if it came
 * without a holder slot, STEP_NOT_GRANTED at the deadline (0: none), else
 * STEP_QUEUED.  This backend has left the queue unless still STEP_QUEUED.
 */
static DLockStep
wait_step(DLockProc *me, bool woken, TimestampTz deadline, DLockOutcome *out)
{
	if (woken)
		dlock_shared->counters.wakeups++;
	if (me->result == DLOCK_GRANTED)
	{
		me->entry = NULL;
		out->after = *me->granted;
		return STEP_GRANTED;
	}
	if (me->result == DLOCK_NO_SLOT)
	{
		dlock_dequeue(me, out->now);
		return STEP_NO_SLOT;
	}
	if (deadline != 0 && out->now >= deadline)
	{
		dlock_dequeue(me, out->now);
		dlock_shared->counters.timeouts++;
		return STEP_NOT_GRANTED;
	}
	return STEP_QUEUED;
}

/*
 * wait_for_grant: the blocking part of dlock_acquire.  The caller queued
 * this backend; sets out to how the wait ended (see wait_step).  On an
 * error or interrupt, leaves the queue or gives back a grant that arrived
 * meanwhile before the error propagates.
 */
static void
wait_for_grant(DLockProc *me, TimestampTz deadline, DLockOutcome *out)
{
	PG_TRY();
	{
		do
		{
			int			rc;

			/*
			 * enqueue_me reset the latch, which may have been set by a
			 * cancel that arrived before: without this check the interrupt
			 * stays pending while an unbounded wait sleeps on.
			 */
			CHECK_FOR_INTERRUPTS();
			rc = wait_latch(deadline);

			out->now = GetCurrentTimestamp();
			LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
			out->step = wait_step(me, (rc & WL_LATCH_SET) != 0, deadline, out);
			LWLockRelease(dlock_shared->lock);
		} while (out->step == STEP_QUEUED);
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
}

/*
 * lock_common: dlock_try (timeout_us 0) and dlock_acquire (timeout_us < 0:
 * forever).  Returns the token, or 0 when the lock was not granted.
 */
static int64
lock_common(DLockRequest *req, int64 timeout_us)
{
	DLockProc  *me;
	DLockActor	actor;
	DLockOutcome out;

	lock_begin();
	dlock_reserve_tokens();
	me = dlock_my_proc();
	actor_init(&actor, &out);
	do
	{
		out.now = GetCurrentTimestamp();
		LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
		out.step = lock_step(req, &actor, me, timeout_us != 0, &out);
		LWLockRelease(dlock_shared->lock);
	} while (actor_ask(&actor, &out));
	if (out.step == STEP_QUEUED)
		wait_for_grant(me, timeout_us < 0 ? 0 : out.now + timeout_us, &out);
	return finish_lock(req, &out);
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
 * dlock_try(name, ttl, owner, mode): the token, or NULL if held by another
 * (for an application owner: also when another role's grant holds that
 * owner string, see "Who may act on a grant").
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
 * held_live: the caller's grant of key, after expiring holders; NULL if it
 * holds none, its final release is pending, or the owner's grant is one
 * the actor may not act for (or must be asked about first: see may_act).
 * Caller holds the exclusive lock.
 */
static DLockHolder *
held_live(const DLockKey *key, const char *owner, const DLockActor *actor,
		  DLockOutcome *out)
{
	DLockEntry *entry = lookup_live(key, false, out->now);
	DLockHolder *h = entry ? dlock_find_holder(entry, owner) : NULL;

	if (h != NULL && owner != NULL && !may_act(actor, h, out))
		h = NULL;
	if (h != NULL && !h->releasing)
		return h;
	if (entry)
		dlock_entry_forget_if_unused(entry);
	return NULL;
}

/*
 * release_step: one level of a release of the caller's grant of key, under
 * the exclusive lock, which the caller holds.  Returns false if there is
 * no grant to release.
 *
 * A session-owned lock is freed (and handed on) at once.  For an
 * application-owned one, a depth decrement happens at once but the final
 * release only when this transaction commits, because its row still
 * exists until then (release_row); both are undone if the transaction
 * rolls back.
 */
static bool
release_step(const DLockKey *key, const char *owner, const DLockActor *actor,
			 DLockOutcome *out)
{
	DLockHolder *h = held_live(key, owner, actor, out);
	DLockEntry *entry;

	if (h == NULL)
		return false;
	out->before = *h;
	entry = h->entry;
	if (owner == NULL && h->depth == 1)
	{
		dlock_remove_holder(h);
		dlock_shared->counters.releases++;
		dlock_grant_waiters(entry, out->now);
		dlock_entry_forget_if_unused(entry);
		return true;
	}
	if (h->depth > 1)
		h->depth--;
	else
		h->releasing = true;
	dlock_holder_changed(h);
	out->after = *h;
	return true;
}

/*
 * release_row: the durable side of an application-owned release_step: its
 * undo record, then the row's new depth, or its deletion with the final
 * release deferred to commit.
 */
static void
release_row(const DLockKey *key, const DLockOutcome *out)
{
	dlock_xact_remember(DLOCK_UNDO_CHANGE, key, &out->before, out->after.version);
	if (out->after.releasing)
	{
		dlock_xact_remember(DLOCK_DEFER_RELEASE, key, &out->after, 0);
		dlock_heap_delete(key->name, &out->after);
	}
	else
		dlock_table_update(key->name, &out->after);
}

/*
 * dlock_release(name, owner): true if the caller held the lock (an
 * application-owned grant only counts if the caller may act for its role:
 * to any other role this is false, as for a lock it does not hold, since
 * the owner string proves nothing).  At depth 0
 * the lock goes to the next waiter at once (for an application-owned lock,
 * when the releasing transaction commits).
 */
Datum
dlock_release(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	const char *owner;
	DLockActor	actor;
	DLockOutcome out;
	bool		held;

	parse_name(fcinfo, 0, &key);
	owner = parse_owner(fcinfo, 1);
	lock_begin();
	actor_init(&actor, &out);
	do
	{
		out.now = GetCurrentTimestamp();
		LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
		held = release_step(&key, owner, &actor, &out);
		LWLockRelease(dlock_shared->lock);
	} while (actor_ask(&actor, &out));
	if (held && owner != NULL)
		release_row(&key, &out);
	PG_RETURN_BOOL(held);
}

/*
 * renew_step: set the lease of the requester's live grant to end ttl from
 * now, under the exclusive lock, which the caller holds.  Returns false if
 * it holds none (it expired or was taken over).
 */
static bool
renew_step(const DLockRequest *req, const DLockActor *actor, DLockOutcome *out)
{
	DLockHolder *h = held_live(&req->key, req->owner, actor, out);

	if (h == NULL || !dlock_holder_live(h, out->now))
		return false;
	out->before = *h;
	h->expires_at = out->now + req->ttl_us;
	dlock_holder_changed(h);
	out->after = *h;
	if (!dlist_is_empty(&h->entry->waiters))
		dlock_poke_worker(NULL);	/* its planned expiry pass is early now */
	return true;
}

/*
 * dlock_renew(name, ttl, owner): set the lease of a lock the owner still
 * holds to end ttl from now; false if it expired or was taken over, or is
 * a grant of a role the caller may not act for (as dlock_release).
 */
Datum
dlock_renew(PG_FUNCTION_ARGS)
{
	DLockRequest req;
	DLockActor	actor;
	DLockOutcome out;
	bool		renewed;

	parse_request(fcinfo, &req, 0, 1, 2, -1);
	lock_begin();
	actor_init(&actor, &out);
	do
	{
		out.now = GetCurrentTimestamp();
		LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
		renewed = renew_step(&req, &actor, &out);
		LWLockRelease(dlock_shared->lock);
	} while (actor_ask(&actor, &out));
	if (renewed && req.owner)
		durable_commit(&req.key, &out.after, &out.before, true, out.now);
	PG_RETURN_BOOL(renewed);
}

/*
 * token_step: under dlock_shared->lock, which the caller holds: whether
 * token is a current, unexpired grant of key, copied to out->after; with a
 * valid xid, also fence that transaction on the grant if the actor may act
 * for it.  A role that may not gets TOKEN_OTHER_ROLE and no fence slot, so
 * that it cannot fill the DLOCK_FENCE_SLOTS of a grant that is not its own.
 */
static DLockTokenState
token_step(const DLockKey *key, int64 token, TransactionId xid,
		   const DLockActor *actor, DLockOutcome *out)
{
	DLockEntry *entry = dlock_entry_lookup(key, false);
	DLockHolder *h = entry ? dlock_holder_by_token(entry, token) : NULL;

	/* the time under the lock: no expiry can pass unseen before the fence */
	out->now = GetCurrentTimestamp();
	if (h == NULL || !dlock_holder_live(h, out->now))
		return TOKEN_STALE;
	out->after = *h;
	if (!TransactionIdIsValid(xid))
		return TOKEN_CURRENT;
	if (!may_act(actor, h, out))
		return TOKEN_OTHER_ROLE;
	dlock_fence(h, xid);
	return TOKEN_CURRENT;
}

/*
 * check_token: what token is to the lock named by the first argument (see
 * token_step); with fence, the calling transaction is fenced on the grant
 * when it is current and the caller's.  *role is the role of a current
 * grant.
 */
static DLockTokenState
check_token(FunctionCallInfo fcinfo, DLockKey *key, int64 *token, bool fence,
			Oid *role)
{
	TransactionId xid = InvalidTransactionId;
	DLockActor	actor;
	DLockOutcome out;
	DLockTokenState state;

	parse_name(fcinfo, 0, key);
	*token = parse_token(fcinfo, 1);
	lock_begin();
	if (fence)
		xid = GetTopTransactionId();	/* before the lock: it may do I/O */
	actor_init(&actor, &out);
	do
	{
		LWLockAcquire(dlock_shared->lock, fence ? LW_EXCLUSIVE : LW_SHARED);
		state = token_step(key, *token, xid, &actor, &out);
		LWLockRelease(dlock_shared->lock);
	} while (actor_ask(&actor, &out));
	*role = state == TOKEN_STALE ? InvalidOid : out.after.role;
	return state;
}

/*
 * dlock_check(name, token): whether token is the current grant.  Open to
 * every role: it changes nothing, and dlocks shows the tokens anyway.
 */
Datum
dlock_check(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	int64		token;
	Oid			role;

	PG_RETURN_BOOL(check_token(fcinfo, &key, &token, false, &role) != TOKEN_STALE);
}

/*
 * role_name: the name of role, or its OID if it was dropped.
 */
static char *
role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("%u", role);
}

/*
 * dlock_assert(name, token): raise YL001 unless token is the current grant,
 * and 42501 if it is but the grant is not the caller's to fence (see
 * token_step).  On success the grant cannot be taken over by expiry until
 * the calling transaction ends, so a write that follows in it is fenced.
 */
Datum
dlock_assert(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	int64		token;
	Oid			role;
	DLockTokenState state = check_token(fcinfo, &key, &token, true, &role);

	if (state == TOKEN_STALE)
		ereport(ERROR,
				(errcode(ERRCODE_DLOCK_STALE_TOKEN),
				 errmsg("fencing token " INT64_FORMAT " is not the current grant of lock \"%s\"",
						token, key.name),
				 errdetail("The lock was released, expired or granted to someone else since this token was issued."),
				 errhint("Acquire the lock again and retry the work with the new token.")));
	if (state == TOKEN_OTHER_ROLE)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to assert lock \"%s\"", key.name),
				 errdetail("Its current grant was taken by role \"%s\".", role_name(role)),
				 errhint("Assert it as that role, a role with its privileges or a member of role %s.",
						 DLOCK_ADMIN_ROLE)));
	PG_RETURN_VOID();
}

static void
check_break_privilege(void)
{
	if (dlock_is_admin())
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to break distributed locks"),
			 errhint("Only superusers and members of role %s may break locks.",
					 DLOCK_ADMIN_ROLE)));
}

/*
 * break_step: end every grant of key, under the exclusive lock, which the
 * caller holds.  Session-owned grants end at once; the application-owned
 * ones are copied to *durable (*ndurable of them) and end when this
 * transaction commits.  Returns false if nobody held the lock.
 */
static bool
break_step(const DLockKey *key, TimestampTz now, DLockHolder **durable,
		   int *ndurable)
{
	DLockEntry *entry = lookup_live(key, false, now);
	dlist_mutable_iter it;
	bool		any;

	*ndurable = 0;
	if (entry == NULL)
		return false;
	any = entry->nholders > 0;
	/* palloc under an LWLock is fine: an error releases it on abort */
	*durable = palloc(Max(1, entry->nholders) * sizeof(DLockHolder));
	dlist_foreach_modify(it, &entry->holders)
	{
		DLockHolder *h = dlist_container(DLockHolder, node, it.cur);

		if (h->procno >= 0)
		{
			dlock_remove_holder(h);
			dlock_shared->counters.breaks++;
		}
		else
			(*durable)[(*ndurable)++] = *h;
	}
	dlock_grant_waiters(entry, now);
	dlock_entry_forget_if_unused(entry);
	return any;
}

/*
 * dlock_break(name): forcibly end every grant of the lock.  Session-owned
 * grants end at once; application-owned ones when this transaction commits.
 */
Datum
dlock_break(PG_FUNCTION_ARGS)
{
	DLockKey	key;
	TimestampTz now;
	DLockHolder *durable = NULL;
	int			ndurable;
	bool		any;

	parse_name(fcinfo, 0, &key);
	check_break_privilege();
	lock_begin();
	now = GetCurrentTimestamp();
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	any = break_step(&key, now, &durable, &ndurable);
	LWLockRelease(dlock_shared->lock);
	for (int i = 0; i < ndurable; i++)
	{
		dlock_xact_remember(DLOCK_DEFER_BREAK, &key, &durable[i], 0);
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
