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
 * Each row mirrors one holder.  Rows whose lease has passed are deleted by
 * the next durable grant of the same name (in the same statement, so the
 * unique index on the name of exclusive grants never sees two of them) and
 * by dlock_cleanup().  Statements run as the extension's owner (see
 * spi_util.c), so any role allowed to call the lock functions can take
 * application-owned locks without privileges on the table itself.
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

static const char *const load_sql =
"SELECT name, owner, mode, token, depth, granted_at, expires_at"
"  FROM distsys.dlock_leases WHERE expires_at > $1";

static const char *const write_sql =
"WITH stale AS (DELETE FROM distsys.dlock_leases"
"               WHERE name = $1 AND token < $4 AND expires_at <= $8 RETURNING 1)"
" INSERT INTO distsys.dlock_leases AS l"
"        (name, owner, mode, token, depth, granted_at, expires_at)"
" SELECT $1, $2, $3, $4, $5, $6, $7 FROM (SELECT count(*) FROM stale) s"
" ON CONFLICT (name, owner) DO UPDATE SET mode = EXCLUDED.mode,"
"        token = EXCLUDED.token, depth = EXCLUDED.depth,"
"        granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at";

static const char *const delete_sql =
"DELETE FROM distsys.dlock_leases WHERE name = $1 AND owner = $2 AND token = $3";

static const char *const cleanup_sql =
"DELETE FROM distsys.dlock_leases WHERE expires_at <= $1";

static SPIPlanPtr load_plan, write_plan, delete_plan, cleanup_plan;
static Oid	loaded_dbid = InvalidOid;

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
	h.mode = strcmp(TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull)),
					"shared") == 0 ? DLOCK_SHARED : DLOCK_EXCLUSIVE;
	h.token = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	h.depth = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	h.granted_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 6, &isnull));
	h.expires_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &isnull));

	entry = dlock_entry_lookup(&key, true);
	if (dlock_find_holder(entry, h.owner) == NULL)
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
		values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
		SPI_connect();
		distsys_spi_run(&load_plan, load_sql, 1, types, values, NULL, true);
		LWLockAcquire(dlock_shared->lock, LW_EXCLUSIVE);
		if (dlock_mark_loaded(MyDatabaseId))
			for (uint64 i = 0; i < SPI_processed; i++)
				restore_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		LWLockRelease(dlock_shared->lock);
		SPI_finish();
	}
	loaded_dbid = MyDatabaseId;
}

/*
 * dlock_table_write: make the row of holder h say what h says now.
 */
void
dlock_table_write(const char *name, const DLockHolder *h, TimestampTz now)
{
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT4OID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[8];

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(h->owner);
	values[2] = CStringGetTextDatum(h->mode == DLOCK_SHARED ? "shared" : "exclusive");
	values[3] = Int64GetDatum(h->token);
	values[4] = Int32GetDatum(h->depth);
	values[5] = TimestampTzGetDatum(h->granted_at);
	values[6] = TimestampTzGetDatum(h->expires_at);
	values[7] = TimestampTzGetDatum(now);
	SPI_connect();
	distsys_spi_run(&write_plan, write_sql, 8, types, values, NULL, false);
	SPI_finish();
}

/*
 * dlock_table_delete: remove the row of one grant.
 */
void
dlock_table_delete(const char *name, const char *owner, int64 token)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(owner);
	values[2] = Int64GetDatum(token);
	SPI_connect();
	distsys_spi_run(&delete_plan, delete_sql, 3, types, values, NULL, false);
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
