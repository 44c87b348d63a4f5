/*-------------------------------------------------------------------------
 *
 * dlock_heap.c
 *	  The hot writes of distsys.dlock_leases without the executor.
 *
 * A durable grant inserts one row and its final release deletes it.  Done
 * through SPI, each of those starts a second executor inside the calling
 * statement, and profiles showed that costing more than the heap and index
 * work itself, which left a durable lock slower than the unique-index
 * INSERT/DELETE pattern it replaces.  So these two writes go straight to
 * the heap and to the one index of the grant's mode, the way PostgreSQL's
 * own catalog code writes its tables (CatalogTupleInsert):
 *
 * - insert: heap_insert, then index_insert into the partial unique index of
 *	 the mode (whose predicate the row satisfies by construction) with
 *	 UNIQUE_CHECK_YES, which waits for a conflicting in-progress insert and
 *	 raises unique_violation as an INSERT would;
 * - delete: an index scan of that index on the name (and owner for shared
 *	 grants) with the latest snapshot, then heap_delete of the row carrying
 *	 the grant's token.  A row updated by a concurrent transaction (a renew
 *	 from another connection) is looked up again once that transaction has
 *	 ended, as READ COMMITTED's DELETE would; a row deleted concurrently is
 *	 already gone, which is what was asked.
 *
 * The table has no triggers, rules, CHECK constraints or row security (the
 * install script creates it so, and only the extension's owner could change
 * that); rarer writes (renewals, stale rows, cleanup) stay in SQL, see
 * dlock_table.c.  Locks taken on the relations are those of an INSERT or
 * DELETE (RowExclusiveLock), held to the end of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "dlock.h"

#define LEASE_NATTS		7

/* the relations written here, looked up by name in schema distsys */
typedef struct LeaseRels
{
	Relation	heap;
	Relation	index;			/* the partial unique index of the mode */
} LeaseRels;

/*
 * relid_of: the OID of relation relname in schema distsys; an error if the
 * extension's objects are missing (dropped from under a running session).
 */
static Oid
relid_of(const char *relname)
{
	Oid			nsp = get_namespace_oid("distsys", false);
	Oid			relid = get_relname_relid(relname, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"distsys.%s\" does not exist", relname),
				 errhint("Reinstall the extension: DROP EXTENSION distsys; CREATE EXTENSION distsys;")));
	return relid;
}

static void
lease_rels_open(LeaseRels *rels, DLockMode mode)
{
	rels->heap = table_open(relid_of("dlock_leases"), RowExclusiveLock);
	rels->index = index_open(relid_of(mode == DLOCK_SHARED ? "dlock_leases_shared"
									  : "dlock_leases_exclusive"),
							 RowExclusiveLock);
}

static void
lease_rels_close(LeaseRels *rels)
{
	index_close(rels->index, NoLock);
	table_close(rels->heap, NoLock);
}

/*
 * dlock_heap_insert: the row of a new durable grant h of lock name, and its
 * entry in the unique index of h's mode.
 */
void
dlock_heap_insert(const char *name, const DLockHolder *h)
{
	LeaseRels	rels;
	Datum		values[LEASE_NATTS];
	bool		nulls[LEASE_NATTS] = {false};
	HeapTuple	tup;
	IndexInfo  *info;

	lease_rels_open(&rels, h->mode);
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(h->owner);
	values[2] = CStringGetTextDatum(h->mode == DLOCK_SHARED ? "shared" : "exclusive");
	values[3] = Int64GetDatum(h->token);
	values[4] = Int32GetDatum(h->depth);
	values[5] = TimestampTzGetDatum(h->granted_at);
	values[6] = TimestampTzGetDatum(h->expires_at);
	tup = heap_form_tuple(RelationGetDescr(rels.heap), values, nulls);
	heap_insert(rels.heap, tup, GetCurrentCommandId(true), 0, NULL);

	/* the index keys are the leading columns: (name) or (name, owner) */
	info = BuildIndexInfo(rels.index);
	index_insert(rels.index, values, nulls, &tup->t_self, rels.heap,
				 UNIQUE_CHECK_YES, false, info);
	heap_freetuple(tup);
	lease_rels_close(&rels);
	CommandCounterIncrement();
}

/*
 * find_lease: the TID of the row of grant h in the index of its mode, with
 * the latest snapshot; false if there is none.
 */
static bool
find_lease(LeaseRels *rels, const char *name, const DLockHolder *h, ItemPointer tid)
{
	ScanKeyData keys[2];
	int			nkeys = h->mode == DLOCK_SHARED ? 2 : 1;
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TupleTableSlot *slot = table_slot_create(rels->heap, NULL);
	IndexScanDesc scan;
	bool		found = false;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(name));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(h->owner));
	scan = index_beginscan(rels->heap, rels->index, snap, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (!found && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		token = slot_getattr(slot, 4, &isnull);

		if (!isnull && DatumGetInt64(token) == h->token)
		{
			*tid = slot->tts_tid;
			found = true;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	return found;
}

/*
 * dlock_heap_delete: delete the row of durable grant h of lock name, if it
 * is still there.
 */
void
dlock_heap_delete(const char *name, const DLockHolder *h)
{
	LeaseRels	rels;
	ItemPointerData tid;
	TM_FailureData tmfd;
	TM_Result	result = TM_Updated;

	lease_rels_open(&rels, h->mode);
	while (result == TM_Updated && find_lease(&rels, name, h, &tid))
	{
		/* waits for a concurrent writer of the row to end, then reports */
		result = heap_delete(rels.heap, &tid, GetCurrentCommandId(true),
							 InvalidSnapshot, true, &tmfd, false);
		CHECK_FOR_INTERRUPTS();
	}
	lease_rels_close(&rels);
	CommandCounterIncrement();
}
