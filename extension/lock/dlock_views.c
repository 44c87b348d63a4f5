/*-------------------------------------------------------------------------
 *
 * dlock_views.c
 *	  The functions behind the views distsys.dlocks, distsys.dlock_waiters
 *	  and distsys.dlock_stats, and dlock_stats_reset.
 *
 * Each takes dlock_shared->lock once (in shared mode; exclusive to reset
 * the counters), copies what it shows out of shared memory (the
 * set-returning ones into a tuplestore) and releases the lock before
 * returning rows, so a slow client never holds up lock traffic.  Expired
 * holders are not shown: an expired lock is free even before anyone
 * removes it.
 *
 * Every role sees every grant and waiter of the database, with its owner
 * string, token and role: since a grant belongs to its role (dlock_sql.c),
 * knowing its owner string or token gives no power over it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "dlock.h"

PG_FUNCTION_INFO_V1(dlock_locks);
PG_FUNCTION_INFO_V1(dlock_waiter_list);
PG_FUNCTION_INFO_V1(dlock_stats);
PG_FUNCTION_INFO_V1(dlock_stats_reset);

static const char *
mode_name(DLockMode mode)
{
	return mode == DLOCK_SHARED ? "shared" : "exclusive";
}

static void
holder_row(ReturnSetInfo *rsinfo, DLockEntry *entry, DLockHolder *h)
{
	Datum		v[10];
	bool		n[10] = {0};

	v[0] = CStringGetTextDatum(entry->key.name);
	v[1] = CStringGetTextDatum(mode_name(h->mode));
	n[2] = h->procno >= 0;
	v[2] = n[2] ? (Datum) 0 : CStringGetTextDatum(h->owner);
	v[3] = ObjectIdGetDatum(h->role);
	n[4] = h->procno < 0;
	v[4] = Int32GetDatum(h->pid);
	v[5] = Int64GetDatum(h->token);
	v[6] = Int32GetDatum(h->depth);
	v[7] = TimestampTzGetDatum(h->granted_at);
	v[8] = TimestampTzGetDatum(h->expires_at);
	v[9] = Int32GetDatum(entry->nwaiters);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

static void
waiter_row(ReturnSetInfo *rsinfo, DLockEntry *entry, DLockProc *w, int position)
{
	Datum		v[7];
	bool		n[7] = {0};

	v[0] = CStringGetTextDatum(entry->key.name);
	v[1] = CStringGetTextDatum(mode_name(w->mode));
	n[2] = w->owner[0] == '\0';
	v[2] = n[2] ? (Datum) 0 : CStringGetTextDatum(w->owner);
	v[3] = ObjectIdGetDatum(w->role);
	v[4] = Int32GetDatum(w->pid);
	v[5] = Int32GetDatum(position);
	v[6] = TimestampTzGetDatum(w->since);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

/*
 * scan_entries: call holder_row or waiter_row for each holder or waiter of
 * this database's locks.
 */
static void
scan_entries(FunctionCallInfo fcinfo, bool waiters)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	DLockEntry *entry;
	TimestampTz now = GetCurrentTimestamp();
	HTAB	   *hash;

	distsys_require_preload("distributed locks");
	dlock_table_ensure_loaded();
	InitMaterializedSRF(fcinfo, 0);
	hash = dlock_hash_table();
	LWLockAcquire(dlock_shared->lock, LW_SHARED);
	hash_seq_init(&seq, hash);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		dlist_iter	it;
		int			position = 0;

		if (entry->key.dbid != MyDatabaseId)
			continue;
		if (waiters)
			dlist_foreach(it, &entry->waiters)
				waiter_row(rsinfo, entry, dlist_container(DLockProc, node, it.cur), ++position);
		else
			dlist_foreach(it, &entry->holders)
			{
				DLockHolder *h = dlist_container(DLockHolder, node, it.cur);

				if (dlock_holder_live(h, now))
					holder_row(rsinfo, entry, h);
			}
	}
	LWLockRelease(dlock_shared->lock);
}

Datum
dlock_locks(PG_FUNCTION_ARGS)
{
	scan_entries(fcinfo, false);
	return (Datum) 0;
}

Datum
dlock_waiter_list(PG_FUNCTION_ARGS)
{
	scan_entries(fcinfo, true);
	return (Datum) 0;
}

/*
 * dlock_stats: the server-wide counters since start or the last reset.
 */
Datum
dlock_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	DLockCounters c;
	Datum		v[7];
	bool		n[7] = {0};

	distsys_require_preload("distributed locks");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	LWLockAcquire(dlock_shared->lock, LW_SHARED);
	c = dlock_shared->counters;
	LWLockRelease(dlock_shared->lock);
	v[0] = Int64GetDatum((int64) c.grants);
	v[1] = Int64GetDatum((int64) c.releases);
	v[2] = Int64GetDatum((int64) c.expiries);
	v[3] = Int64GetDatum((int64) c.waits);
	v[4] = Int64GetDatum((int64) c.wakeups);
	v[5] = Int64GetDatum((int64) c.timeouts);
	v[6] = Int64GetDatum((int64) c.breaks);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, n)));
}

Datum
dlock_stats_reset(PG_FUNCTION_ARGS)
{
	distsys_require_preload("distributed locks");
	LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
	memset(&dlock_shared->counters, 0, sizeof(DLockCounters));
	LWLockRelease(dlock_shared->lock);
	PG_RETURN_VOID();
}
