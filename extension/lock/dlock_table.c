/*-------------------------------------------------------------------------
 *
 * dlock_table.c
 *	  The durable side of application-owned locks: distsys.dlock_leases.
 *
 * Shared memory is the authority on who holds a lock while the server runs;
 * this table is the durable copy of the application-owned grants, written in
 * the caller's transaction so a grant is durable exactly when that
 * transaction commits.  It is read back into shared memory by the first lock
 * call in each database after a start or crash restart.
 *
 * The table can also come from pg_dump, into a server whose token counter
 * never reached the tokens in it.  So the load also moves the counter above
 * every token in the table, expired rows included: a client of the old
 * server may still present the token of a lease that expired there, and a
 * new grant of that lock must never be handed the same token.
 *
 * Each row mirrors one holder, with the role that took it, so that after a
 * restart the grant is still that role's alone (see dlock_sql.c).  A new
 * grant inserts a row, preceded by a DELETE of expired rows that would
 * collide with it on the unique index of its mode (only in a database where
 * a lease expired unreleased); a reentry, renewal or depth change is an
 * UPDATE of columns the install script does not index (a HOT update); a
 * final release deletes the row.
 * The insert and the delete are the hot path and are written without SQL
 * (dlock_heap.c); the rest are SQL statements.  The remaining expired rows
 * go with dlock_cleanup().
 * Statements run as the extension's owner (see spi_util.c), so any role
 * allowed to call the lock functions can take application-owned locks
 * without privileges on the table itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "dlock.h"
#include "spi_util.h"

/* newest grant first: see restore_row */
static const char *const load_sql =
"SELECT name, owner, role, mode, token, depth, granted_at, expires_at"
"  FROM distsys.dlock_leases WHERE expires_at > $1 ORDER BY token DESC";

/* whether any row has expired; the largest token of all rows */
static const char *const scan_sql =
"SELECT coalesce(bool_or(expires_at <= $1), false), coalesce(max(token), 0)"
"  FROM distsys.dlock_leases";

/*
 * The write statements come in one variant per mode, with the mode written
 * out, so that their generic plans can use the partial unique index of that
 * mode.  %s is the mode; the shared variants also match on the owner.
 */
static const char *const stale_sql =
"DELETE FROM distsys.dlock_leases WHERE name = $1 AND mode = '%s'%s"
"   AND token < $3 AND expires_at <= $4";

static const char *const update_sql =
"UPDATE distsys.dlock_leases SET depth = $3, expires_at = $4"
" WHERE name = $1 AND mode = '%s'%s AND token = $5";

static const char *const cleanup_sql =
"DELETE FROM distsys.dlock_leases WHERE expires_at <= $1";

#define OWNER_MATCH " AND owner = $2"

static SPIPlanPtr load_plan, scan_plan, cleanup_plan;
static SPIPlanPtr stale_plan[2], update_plan[2];
static Oid	loaded_dbid = InvalidOid;

static const char *
mode_text(DLockMode mode)
{
	return mode == DLOCK_SHARED ? "shared" : "exclusive";
}

/*
 * run_for_mode: run the variant of sql_fmt for this mode (see above).
 */
static uint64
run_for_mode(SPIPlanPtr *plans, const char *sql_fmt, DLockMode mode,
			 int nargs, Oid *types, Datum *values)
{
	char		sql[512];

	if (plans[mode] == NULL)
		snprintf(sql, sizeof(sql), sql_fmt, mode_text(mode),
				 mode == DLOCK_SHARED ? OWNER_MATCH : " AND $2::text IS NOT NULL");
	return distsys_spi_run(&plans[mode], sql, nargs, types, values, NULL, false);
}

/*
 * restore_row: put one unexpired row back into shared memory, unless it
 * does not fit beside the grants restored before it.
 *
 * Rows that do not fit can exist: a shared grant's lease ended and a later
 * exclusive grant was taken beside its row (the row stays until a grant of
 * its owner or dlock_cleanup deletes it); after the clock jumps back and the
 * server restarts, that row looks unexpired again.  The rows come newest
 * token first (load_sql), so the later grant, the one that was valid when
 * it was taken, is kept and the older one is skipped with a LOG line.
 */
static void
restore_row(HeapTuple tup, TupleDesc desc)
{
	DLockHolder h;
	DLockKey	key;
	DLockEntry *entry;
	bool		isnull;

	memset(&h, 0, sizeof(h));
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	strlcpy(key.name, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
			sizeof(key.name));
	strlcpy(h.owner, TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)),
			sizeof(h.owner));
	h.role = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	h.mode = strcmp(TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull)),
					"shared") == 0 ? DLOCK_SHARED : DLOCK_EXCLUSIVE;
	h.token = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	h.depth = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
	h.granted_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &isnull));
	h.expires_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 8, &isnull));

	entry = dlock_entry_lookup(&key, true);
	if (dlock_find_holder(entry, h.owner) != NULL)
		return;
	if (!dlock_compatible(entry, h.mode))
	{
		ereport(LOG,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("distributed lock \"%s\": not restoring the %s grant of token " INT64_FORMAT " of owner \"%s\"",
						key.name, mode_text(h.mode), h.token, h.owner),
				 errdetail("A later grant of this lock that conflicts with it was restored; the older grant's lease must have ended before, and the clock has gone back since.")));
		return;
	}
	dlock_restore_holder(entry, &h);
}

/*
 * dlock_table_ensure_loaded: after a start or crash restart, bring this
 * database's unexpired durable grants back into shared memory before any
 * lock operation runs in it.
 *
 * 1. Every lock operation calls this first, so no new grant of this
 *	  database exists in shared memory until the flag is set.
 * 2. Several backends may read the table at once; only the one that sets
 *	  the flag (under the exclusive lock) installs what it read.
 * 3. That backend also moves the token counter above the largest token in
 *	  the table (see the banner), and then reserves tokens above it
 *	  durably, before any row can be deleted: after a crash the counter
 *	  starts above them even if their rows are gone by then.
 */
void
dlock_table_ensure_loaded(void)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	bool		loaded;

	if (loaded_dbid == MyDatabaseId)
		return;
	LWLockAcquire(dlock_shared->lock, LW_SHARED);
	loaded = dlock_is_loaded(MyDatabaseId);
	LWLockRelease(dlock_shared->lock);
	if (!loaded)
	{
		bool		stale,
					isnull;
		int64		max_token;

		values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
		SPI_connect();
		distsys_spi_run(&scan_plan, scan_sql, 1, types, values, NULL, true);
		stale = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										   1, &isnull));
		max_token = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												2, &isnull));
		distsys_spi_run(&load_plan, load_sql, 1, types, values, NULL, true);
		LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
		if (dlock_mark_loaded(MyDatabaseId, stale))
		{
			for (uint64 i = 0; i < SPI_processed; i++)
				restore_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
			dlock_shared->next_token = Max(dlock_shared->next_token, max_token + 1);
		}
		LWLockRelease(dlock_shared->lock);
		SPI_finish();
		dlock_reserve_tokens();
	}
	loaded_dbid = MyDatabaseId;
}

/*
 * dlock_table_insert: the row of a new grant h.  Expired rows that would
 * collide with it on the unique index of its mode go first, but only in a
 * database where a lease has expired unreleased since the start (see
 * dlock_stale_rows); elsewhere there can be none.
 */
void
dlock_table_insert(const char *name, const DLockHolder *h, TimestampTz now)
{
	Oid			types[4] = {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID};
	Datum		values[4];

	if (dlock_stale_rows(MyDatabaseId))
	{
		values[0] = CStringGetTextDatum(name);
		values[1] = CStringGetTextDatum(h->owner);
		values[2] = Int64GetDatum(h->token);
		values[3] = TimestampTzGetDatum(now);
		SPI_connect();
		run_for_mode(stale_plan, stale_sql, h->mode, 4, types, values);
		SPI_finish();
	}
	dlock_heap_insert(name, h);
}

/*
 * dlock_table_update: the depth and lease of an existing grant h.
 */
void
dlock_table_update(const char *name, const DLockHolder *h)
{
	Oid			types[5] = {TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[5];

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(h->owner);
	values[2] = Int32GetDatum(h->depth);
	values[3] = TimestampTzGetDatum(h->expires_at);
	values[4] = Int64GetDatum(h->token);
	SPI_connect();
	run_for_mode(update_plan, update_sql, h->mode, 5, types, values);
	SPI_finish();
}

/*
 * dlock_table_cleanup: delete every expired row; returns how many.
 */
int64
dlock_table_cleanup(void)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	uint64		n;

	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	SPI_connect();
	n = distsys_spi_run(&cleanup_plan, cleanup_sql, 1, types, values, NULL, false);
	SPI_finish();
	return (int64) n;
}
