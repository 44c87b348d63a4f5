/*-------------------------------------------------------------------------
 *
 * inbox.c
 *	  The idempotent inbox: inbox_claim, inbox_apply, inbox_cleanup.
 *
 * At-least-once delivery plus an inbox gives exactly-once effect: the
 * consumer claims a message id in the same transaction as the work the
 * message asks for, and a claim succeeds once per consumer.  Two
 * transactions claiming the same id at once are serialized by the primary
 * key: the second waits for the first and then finds its row (a duplicate)
 * or, if the first rolled back, claims it itself.
 *
 * Retention without letting a duplicate through.  Each entry records when
 * its message was sent (sent_at: the outbox row's creation time, which a
 * resend of the same message carries unchanged).  inbox_cleanup deletes
 * entries of messages sent longer ago than distsys.inbox_retention, and
 * inbox_claim refuses (SQLSTATE YI001) any message sent longer ago than
 * that, or before the horizon of the last cleanup (in case the retention
 * was raised since): such a message could be a duplicate of an entry
 * already deleted, so it is never applied silently; the consumer
 * dead-letters it.  A claim
 * that does not pass sent_at counts as sent now, and gets that guarantee
 * only for duplicates that arrive within the retention.
 *
 * A cleanup running beside a claim.  The claim's statement reads the
 * horizon from its snapshot, so a cleanup that commits while the claim
 * waits for it is not seen there; the claim looks at the horizon again,
 * as of now, once its insert is done (recheck_horizon).  Why that closes
 * the race, for a message m whose entry the cleanup deletes:
 *   1. The cleanup moves the horizon past m's sent_at and deletes m's entry
 *      in one transaction, so both become visible at its commit.
 *   2. A claim of m whose insert ran before that delete found the entry
 *      (a duplicate; the cleanup's delete then waits on nothing of ours
 *      and removes only the old entry, which we did not re-insert).
 *   3. A claim whose insert met the deleted, uncommitted entry waited for
 *      the cleanup to end.  If it rolled back, the entry is there again
 *      and the claim finds it.  If it committed, the claim inserts, and
 *      its second look, taken after that wait, sees the moved horizon:
 *      YI001.
 *   4. A claim whose insert ran after the cleanup committed sees the new
 *      horizon already in its statement's snapshot, or (a snapshot taken
 *      just before the commit) in its second look.
 * The second look reads with the latest snapshot, not the transaction's,
 * so it also holds in REPEATABLE READ and SERIALIZABLE.  Locking the
 * horizon row instead (FOR SHARE) would serialise the same way but write
 * a row lock, and with concurrent claims a multixact, on one hot tuple
 * for every claim.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "distsys_protocol.h"
#include "msg.h"
#include "spi_util.h"

#define ERRCODE_INBOX_TOO_OLD	MAKE_SQLSTATE(DISTSYS_SQLSTATE_INBOX_TOO_OLD[0], \
											  DISTSYS_SQLSTATE_INBOX_TOO_OLD[1], \
											  DISTSYS_SQLSTATE_INBOX_TOO_OLD[2], \
											  DISTSYS_SQLSTATE_INBOX_TOO_OLD[3], \
											  DISTSYS_SQLSTATE_INBOX_TOO_OLD[4])

/*
 * the claim, unless the message predates the last cleanup's horizon (the
 * latest row's, since a restore of a dump adds the dumped horizon beside
 * the row CREATE EXTENSION inserted: see distsys--1.0.sql) or the caller
 * ($4) lacks the privileges of the consumer's owner.  Returns whether the
 * message is too old, whether it was claimed now, and the consumer's owner
 * and whether the caller may act for it (NULL, NULL: nobody owns it yet).
 */
static const char *const claim_sql =
"WITH h AS (SELECT coalesce(max(pruned_before), '-infinity') AS pruned_before"
"           FROM distsys.inbox_horizon),"
" o AS (SELECT owner, pg_catalog.pg_has_role($4, owner, 'USAGE') AS mine"
"       FROM distsys.inbox_consumers WHERE consumer = $1),"
" ins AS (INSERT INTO distsys.inbox (consumer, message_id, sent_at)"
"         SELECT $1, $2, $3 FROM h, o WHERE $3 >= h.pruned_before AND o.mine"
"         ON CONFLICT DO NOTHING RETURNING 1)"
" SELECT (SELECT $3 < pruned_before FROM h), (SELECT count(*) FROM ins),"
"        (SELECT owner::oid FROM o), (SELECT mine FROM o)";

/* a consumer nobody owns yet becomes the caller's */
static const char *const adopt_sql =
"INSERT INTO distsys.inbox_consumers (consumer, owner) VALUES ($1, $2::oid::regrole)"
" ON CONFLICT DO NOTHING";

/* the horizon alone, for the claim's second look (run with a new snapshot) */
static const char *const horizon_sql =
"SELECT coalesce(max(pruned_before), '-infinity') FROM distsys.inbox_horizon";

static const char *const cleanup_sql =
"WITH h AS (UPDATE distsys.inbox_horizon"
"           SET pruned_before = greatest(pruned_before, $1))"
" DELETE FROM distsys.inbox WHERE sent_at < $1";

static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr adopt_plan = NULL;
static SPIPlanPtr horizon_plan = NULL;
static SPIPlanPtr cleanup_plan = NULL;

static char *
required_text(FunctionCallInfo fcinfo, int argno, const char *what)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inbox %s must not be null", what)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inbox %s must not be empty", what)));
	return s;
}

static TimestampTz
retention_horizon(void)
{
	return GetCurrentTimestamp() - (int64) distsys_inbox_retention_s * USECS_PER_SEC;
}

/* What one run of claim_sql found. */
typedef struct ClaimResult
{
	bool		too_old;		/* sent before the last cleanup's horizon */
	bool		claimed;		/* the message was new, and is claimed now */
	bool		owned;			/* someone owns the consumer */
	Oid			owner;
	bool		mine;			/* the caller has the owner's privileges */
} ClaimResult;

/*
 * run_claim: one run of claim_sql for the current user.
 */
static ClaimResult
run_claim(const char *consumer, const char *message_id, TimestampTz sent_at)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, OIDOID};
	Datum		values[4];
	ClaimResult r;
	bool		isnull;
	HeapTuple	row;
	TupleDesc	desc;

	values[0] = CStringGetTextDatum(consumer);
	values[1] = CStringGetTextDatum(message_id);
	values[2] = TimestampTzGetDatum(sent_at);
	values[3] = ObjectIdGetDatum(GetUserId());
	SPI_connect();
	distsys_spi_run(&claim_plan, claim_sql, 4, types, values, NULL, false);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	r.too_old = DatumGetBool(SPI_getbinval(row, desc, 1, &isnull));
	r.claimed = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull)) == 1;
	r.owner = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
	r.owned = !isnull;
	r.mine = r.owned && DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
	SPI_finish();
	return r;
}

/*
 * recheck_horizon: whether sent_at is before the horizon of a cleanup that
 * committed after the claim's statement took its snapshot (see the
 * banner: a claim that waited for that cleanup's delete).  Reads with the
 * latest snapshot, whatever the isolation level.
 */
static bool
recheck_horizon(TimestampTz sent_at)
{
	TimestampTz horizon;
	bool		isnull;

	SPI_connect();
	PushActiveSnapshot(GetLatestSnapshot());
	distsys_spi_run(&horizon_plan, horizon_sql, 0, NULL, NULL, NULL, true);
	horizon = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	PopActiveSnapshot();
	SPI_finish();
	return sent_at < horizon;
}

/*
 * adopt_consumer: make the current user the owner of a consumer nobody
 * owns.  A concurrent first claim of the same consumer by another role
 * makes this wait for it and then insert nothing; the caller's next claim
 * then finds that role as the owner.
 */
static void
adopt_consumer(const char *consumer)
{
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(consumer);
	values[1] = ObjectIdGetDatum(GetUserId());
	SPI_connect();
	distsys_spi_run(&adopt_plan, adopt_sql, 2, types, values, NULL, false);
	SPI_finish();
}

/*
 * refuse_consumer: the error for a claim by a role without the privileges
 * of the consumer's owner (which may have been dropped since).
 */
static void
refuse_consumer(const char *consumer, Oid owner)
{
	char	   *owner_name = GetUserNameFromId(owner, true);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not claim messages of inbox consumer \"%s\"",
					GetUserNameFromId(GetUserId(), false), consumer),
			 owner_name
			 ? errdetail("The consumer belongs to role \"%s\".", owner_name)
			 : errdetail("The consumer belongs to a role that no longer exists (OID %u).", owner),
			 errhint("Claim as a role that has the privileges of its owner, or have an administrator give the consumer to this role with distsys.inbox_consumer_owner().")));
}

/*
 * claim: record (consumer, message id); true if it was not there yet.
 *
 * A sent_at in the future (a producer's clock ahead of ours, or a hostile
 * 'infinity' that cleanup would never remove) counts as now: retention then
 * counts from the claim, which is later than the real send, so a duplicate
 * within the retention is still recognised.
 */
static bool
claim(FunctionCallInfo fcinfo, int consumer_arg, int id_arg, int sent_arg)
{
	char	   *consumer = required_text(fcinfo, consumer_arg, "consumer");
	char	   *message_id = required_text(fcinfo, id_arg, "message id");
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz sent_at = PG_ARGISNULL(sent_arg) ? now : PG_GETARG_TIMESTAMPTZ(sent_arg);
	ClaimResult r = {0};

	if (sent_at > now)
		sent_at = now;
	r.too_old = sent_at < retention_horizon();
	if (!r.too_old)
	{
		r = run_claim(consumer, message_id, sent_at);
		if (!r.owned && !r.too_old)
		{
			adopt_consumer(consumer);
			r = run_claim(consumer, message_id, sent_at);
		}
		/* a duplicate or a refusal needs no second look; only a new claim */
		if (r.claimed && recheck_horizon(sent_at))
			r.too_old = true;
	}
	if (r.too_old)
		ereport(ERROR,
				(errcode(ERRCODE_INBOX_TOO_OLD),
				 errmsg("message \"%s\" was sent before the inbox retention horizon", message_id),
				 errdetail("It may duplicate a message whose inbox entry has already been deleted, so it is not applied."),
				 errhint("Check it by hand; raise distsys.inbox_retention (now %d s) if such delays are expected.",
						 distsys_inbox_retention_s)));
	if (!r.mine)
		refuse_consumer(consumer, r.owner);
	return r.claimed;
}

PG_FUNCTION_INFO_V1(inbox_claim);

/*
 * inbox_claim(consumer, message_id, sent_at): true the first time.
 */
Datum
inbox_claim(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(claim(fcinfo, 0, 1, 2));
}

/*
 * check_handler: the handler must take (text, text, <payload type>, jsonb),
 * be callable by the current user, and not be STRICT (key and payload may
 * be NULL, and a strict handler would silently not run).
 */
static void
check_handler(Oid handler, Oid payload_type)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	Form_pg_proc proc;
	Oid			want[4] = {TEXTOID, TEXTOID, payload_type, JSONBOID};

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", handler);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->pronargs != 4 || memcmp(proc->proargtypes.values, want, sizeof(want)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("inbox handler %s must take (topic text, key text, payload %s, headers jsonb)",
						format_procedure(handler), format_type_be(payload_type))));
	if (proc->proisstrict)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("inbox handler %s must not be STRICT", format_procedure(handler)),
				 errdetail("Keys and payloads may be NULL; a strict handler would be skipped for them.")));
	ReleaseSysCache(tup);
	if (pg_proc_aclcheck(handler, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(handler));
}

/*
 * HandlerCache: the handler's FmgrInfo, kept per call site of inbox_apply
 * (in fn_extra of the caller's FmgrInfo) so that a PL handler's own cache,
 * which lives in the FmgrInfo, survives from one row to the next.
 *
 * A handler may call inbox_apply itself, from the same call site (a
 * recursive handler: SQL functions reuse their plans' expression state) or
 * another one.  An FmgrInfo in use by a call further up the stack must not
 * be re-initialised under it, so a call that finds its site's cache busy
 * uses an FmgrInfo of its own for that one call.
 */
typedef struct HandlerCache
{
	Oid			handler;
	bool		busy;
	FmgrInfo	flinfo;
} HandlerCache;

/*
 * handler_flinfo: the FmgrInfo to call the handler with, and the site cache
 * marked busy when it is the one returned (*cache set, else NULL).
 */
static FmgrInfo *
handler_flinfo(FunctionCallInfo fcinfo, Oid handler, HandlerCache **cache)
{
	HandlerCache *hc = (HandlerCache *) fcinfo->flinfo->fn_extra;
	FmgrInfo   *own;

	if (hc == NULL)
	{
		hc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(HandlerCache));
		fcinfo->flinfo->fn_extra = hc;
	}
	if (!hc->busy)
	{
		if (hc->handler != handler)
		{
			hc->handler = InvalidOid;	/* until fmgr_info succeeds */
			fmgr_info_cxt(handler, &hc->flinfo, fcinfo->flinfo->fn_mcxt);
			hc->handler = handler;
		}
		hc->busy = true;
		*cache = hc;
		return &hc->flinfo;
	}
	own = palloc0(sizeof(FmgrInfo));
	fmgr_info(handler, own);
	*cache = NULL;
	return own;
}

/*
 * call_handler: handler(topic, key, payload, headers), NULLs passed as such.
 */
static void
call_handler(FunctionCallInfo fcinfo, Oid handler)
{
	HandlerCache *cache;
	FmgrInfo   *flinfo = handler_flinfo(fcinfo, handler, &cache);
	LOCAL_FCINFO(call, 4);

	InitFunctionCallInfoData(*call, flinfo, 4, InvalidOid, NULL, NULL);
	for (int i = 0; i < 4; i++)
	{
		int			arg = i + 3;	/* topic, key, payload, headers */

		call->args[i].value = PG_GETARG_DATUM(arg);
		call->args[i].isnull = PG_ARGISNULL(arg);
	}
	PG_TRY();
	{
		(void) FunctionCallInvoke(call);
	}
	PG_FINALLY();
	{
		if (cache != NULL)
			cache->busy = false;
	}
	PG_END_TRY();
}

/*
 * apply_common: claim, then call the handler if the message is new.
 */
static bool
apply_common(FunctionCallInfo fcinfo, Oid payload_type)
{
	Oid			handler;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inbox handler must not be null")));
	handler = PG_GETARG_OID(2);
	check_handler(handler, payload_type);
	if (!claim(fcinfo, 0, 1, 7))
		return false;
	call_handler(fcinfo, handler);
	return true;
}

PG_FUNCTION_INFO_V1(inbox_apply_jsonb);
PG_FUNCTION_INFO_V1(inbox_apply_bytea);

/*
 * inbox_apply(consumer, message_id, handler, topic, key, payload, headers,
 * sent_at): whether the message was new and the handler ran.
 */
Datum
inbox_apply_jsonb(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(apply_common(fcinfo, JSONBOID));
}

Datum
inbox_apply_bytea(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(apply_common(fcinfo, BYTEAOID));
}

PG_FUNCTION_INFO_V1(inbox_cleanup);

/*
 * inbox_cleanup(): forget messages sent before the retention horizon.
 * Safe at any time: inbox_claim refuses such messages anyway.
 */
Datum
inbox_cleanup(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	uint64		n;

	values[0] = TimestampTzGetDatum(retention_horizon());
	SPI_connect();
	n = distsys_spi_run(&cleanup_plan, cleanup_sql, 1, types, values, NULL, false);
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}
