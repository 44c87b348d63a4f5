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
 * the claim, unless the message predates the last cleanup's horizon: the
 * latest row's, since a restore of a dump adds the dumped horizon beside
 * the row CREATE EXTENSION inserted (see distsys--1.0.sql)
 */
static const char *const claim_sql =
"WITH h AS (SELECT coalesce(max(pruned_before), '-infinity') AS pruned_before"
"           FROM distsys.inbox_horizon),"
" ins AS (INSERT INTO distsys.inbox (consumer, message_id, sent_at)"
"         SELECT $1, $2, $3 FROM h WHERE $3 >= h.pruned_before"
"         ON CONFLICT DO NOTHING RETURNING 1)"
" SELECT (SELECT $3 < pruned_before FROM h), (SELECT count(*) FROM ins)";

static const char *const cleanup_sql =
"WITH h AS (UPDATE distsys.inbox_horizon"
"           SET pruned_before = greatest(pruned_before, $1))"
" DELETE FROM distsys.inbox WHERE sent_at < $1";

static SPIPlanPtr claim_plan = NULL;
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

/*
 * claim: record (consumer, message id); true if it was not there yet.
 */
static bool
claim(FunctionCallInfo fcinfo, int consumer_arg, int id_arg, int sent_arg)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	char	   *consumer = required_text(fcinfo, consumer_arg, "consumer");
	char	   *message_id = required_text(fcinfo, id_arg, "message id");
	TimestampTz sent_at = PG_ARGISNULL(sent_arg)
		? GetCurrentTimestamp() : PG_GETARG_TIMESTAMPTZ(sent_arg);
	bool		too_old;
	bool		isnull;
	int64		n;

	too_old = sent_at < retention_horizon();
	if (!too_old)
	{
		values[0] = CStringGetTextDatum(consumer);
		values[1] = CStringGetTextDatum(message_id);
		values[2] = TimestampTzGetDatum(sent_at);
		SPI_connect();
		distsys_spi_run(&claim_plan, claim_sql, 3, types, values, NULL, false);
		too_old = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		SPI_finish();
	}
	if (too_old)
		ereport(ERROR,
				(errcode(ERRCODE_INBOX_TOO_OLD),
				 errmsg("message \"%s\" was sent before the inbox retention horizon", message_id),
				 errdetail("It may duplicate a message whose inbox entry has already been deleted, so it is not applied."),
				 errhint("Check it by hand; raise distsys.inbox_retention (now %d s) if such delays are expected.",
						 distsys_inbox_retention_s)));
	return n == 1;
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
