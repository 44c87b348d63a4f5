/*-------------------------------------------------------------------------
 *
 * dlock_heap.c
 *	  The hot writes of distsys.dlock_leases without SQL.
 *
 * A durable grant inserts one row and its final release deletes it.  Done
 * through SPI, each of those starts a second executor inside the calling
 * statement, and profiles showed that costing more than the heap and index
 * work itself, which left a durable lock slower than the unique-index
 * INSERT/DELETE pattern it replaces.  So these two writes go to the table
 * directly, with only the parts of the executor they need:
 *
 * - insert: table_tuple_insert, then ExecInsertIndexTuples into every index
 *	 of the table, as INSERT does.  So a partial or expression index, and an
 *	 index added by an administrator or an upgrade script, gets the row
 *	 too; the partial unique index of the grant's mode (UNIQUE_CHECK_YES)
 *	 waits for a conflicting in-progress insert and raises unique_violation
 *	 as an INSERT would.  Index expressions and predicates run as the
 *	 extension's owner, as the SQL writes of dlock_table.c do.
 * - delete: an index scan of the unique index of the grant's mode on the
 *	 name (and owner for shared grants) with the latest snapshot, then
 *	 heap_delete of the row carrying the grant's token.  A row updated by a
 *	 concurrent transaction (a renew from another connection) is looked up
 *	 again once that transaction has ended, as READ COMMITTED's DELETE
 *	 would; a row deleted concurrently is already gone, which is what was
 *	 asked.  Index entries of the deleted row are left to VACUUM, as for
 *	 any DELETE.
 *
 * What INSERT and DELETE would do beyond that, triggers, rules and CHECK
 * constraints, cannot happen here: the install script creates the table
 * without them, and lease_check_table refuses to write while it has any,
 * rather than bypass them.  It also checks the columns against the
 * Anum_dlock_leases_* numbers below.  Row security is not applied, as for
 * the table's owner.  Rarer writes (renewals, stale rows, cleanup) stay in
 * SQL, see dlock_table.c.  Locks taken on the relations are those of an
 * INSERT or DELETE (RowExclusiveLock), held to the end of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "dlock.h"
#include "spi_util.h"

/*
 * The columns of distsys.dlock_leases, numbered as in its CREATE TABLE in
 * distsys--1.0.sql; lease_check_table compares them with the table's.
 */
#define Anum_dlock_leases_name			1
#define Anum_dlock_leases_owner			2
#define Anum_dlock_leases_role			3
#define Anum_dlock_leases_mode			4
#define Anum_dlock_leases_token			5
#define Anum_dlock_leases_depth			6
#define Anum_dlock_leases_granted_at	7
#define Anum_dlock_leases_expires_at	8
#define Natts_dlock_leases				8

static const struct
{
	const char *name;
	Oid			type;
}			lease_columns[Natts_dlock_leases] = {
	[Anum_dlock_leases_name - 1] = {"name", TEXTOID},
	[Anum_dlock_leases_owner - 1] = {"owner", TEXTOID},
	[Anum_dlock_leases_role - 1] = {"role", REGROLEOID},
	[Anum_dlock_leases_mode - 1] = {"mode", TEXTOID},
	[Anum_dlock_leases_token - 1] = {"token", INT8OID},
	[Anum_dlock_leases_depth - 1] = {"depth", INT4OID},
	[Anum_dlock_leases_granted_at - 1] = {"granted_at", TIMESTAMPTZOID},
	[Anum_dlock_leases_expires_at - 1] = {"expires_at", TIMESTAMPTZOID},
};

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

/*
 * lease_columns_match: whether rel has the columns of lease_columns, in
 * that order, and no others but dropped ones.
 */
static bool
lease_columns_match(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (desc->natts < Natts_dlock_leases)
		return false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (i >= Natts_dlock_leases ? !att->attisdropped
			: (att->attisdropped || att->atttypid != lease_columns[i].type ||
			   strcmp(NameStr(att->attname), lease_columns[i].name) != 0))
			return false;
	}
	return true;
}

/*
 * lease_check_table: refuse to write rows of the lease table rel unless it
 * is as the install script made it, apart from indexes: the columns this
 * file writes, and no trigger, rule or CHECK constraint, which the direct
 * writes would bypass (a deferrable unique constraint has a trigger too).
 */
static void
lease_check_table(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	if (!lease_columns_match(rel))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table distsys.dlock_leases does not have the columns of this version of distsys"),
				 errdetail("Durable lock grants need the columns name, owner, role, mode, token, depth, granted_at and expires_at, in this order, and no others."),
				 errhint("Undo the change to the table, or update the extension with ALTER EXTENSION distsys UPDATE.")));
	if (rel->trigdesc != NULL || rel->rd_rules != NULL ||
		(constr != NULL && constr->num_check > 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table distsys.dlock_leases has triggers, rules or CHECK constraints"),
				 errdetail("Durable lock grants and releases write its rows directly, where these would not run."),
				 errhint("Drop them from distsys.dlock_leases; indexes are supported.")));
}

/*
 * lease_fill_slot: store the row of durable grant h of lock name in slot.
 * Columns past Natts_dlock_leases are dropped ones, left null.
 */
static void
lease_fill_slot(TupleTableSlot *slot, const char *name, const DLockHolder *h)
{
	Datum	   *values = slot->tts_values;

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, slot->tts_tupleDescriptor->natts * sizeof(bool));
	memset(slot->tts_isnull, false, Natts_dlock_leases * sizeof(bool));
	values[Anum_dlock_leases_name - 1] = CStringGetTextDatum(name);
	values[Anum_dlock_leases_owner - 1] = CStringGetTextDatum(h->owner);
	values[Anum_dlock_leases_role - 1] = ObjectIdGetDatum(h->role);
	values[Anum_dlock_leases_mode - 1] =
		CStringGetTextDatum(h->mode == DLOCK_SHARED ? "shared" : "exclusive");
	values[Anum_dlock_leases_token - 1] = Int64GetDatum(h->token);
	values[Anum_dlock_leases_depth - 1] = Int32GetDatum(h->depth);
	values[Anum_dlock_leases_granted_at - 1] = TimestampTzGetDatum(h->granted_at);
	values[Anum_dlock_leases_expires_at - 1] = TimestampTzGetDatum(h->expires_at);
	ExecStoreVirtualTuple(slot);
}

/*
 * insert_index_entries: the entries of the row just inserted from slot in
 * every index of rri's table.  Index expressions and predicates run as the
 * statements of spi_util.c do (distsys_as_owner_begin: the owner, a
 * security-restricted operation, search_path pg_catalog, pg_temp): an index
 * is the owner's, not the caller's, code.
 */
static void
insert_index_entries(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate)
{
	DistsysAsOwner save;
	List	   *recheck;

	distsys_as_owner_begin(&save);
	recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
	distsys_as_owner_end(&save);

	/* only a deferred unique constraint asks for a recheck, and it has a trigger */
	if (recheck != NIL)
		elog(ERROR, "unexpected deferred unique check on distsys.dlock_leases");
}

/*
 * dlock_heap_insert: the row of a new durable grant h of lock name, and its
 * entries in every index of the table.
 */
void
dlock_heap_insert(const char *name, const DLockHolder *h)
{
	Relation	rel = table_open(relid_of("dlock_leases"), RowExclusiveLock);
	EState	   *estate = CreateExecutorState();
	MemoryContext oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot = table_slot_create(rel, NULL);

	lease_check_table(rel);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	lease_fill_slot(slot, name, h);
	table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, NULL);
	insert_index_entries(rri, slot, estate);
	ExecCloseIndices(rri);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextSwitchTo(oldcxt);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	CommandCounterIncrement();
}

/*
 * mode_index_open: the unique index of mode's grants, checked to have the
 * keys find_lease scans with: (name), or (name, owner) for shared grants.
 */
static Relation
mode_index_open(DLockMode mode)
{
	const char *relname = mode == DLOCK_SHARED ? "dlock_leases_shared"
		: "dlock_leases_exclusive";
	Relation	index = index_open(relid_of(relname), RowExclusiveLock);
	Form_pg_index form = index->rd_index;
	int			nkeys = mode == DLOCK_SHARED ? 2 : 1;

	if (form->indnkeyatts != nkeys ||
		form->indkey.values[0] != Anum_dlock_leases_name ||
		(nkeys == 2 && form->indkey.values[1] != Anum_dlock_leases_owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index distsys.%s does not have the keys of this version of distsys",
						relname),
				 errdetail("Releasing a durable lock grant looks its row up by name%s in this index.",
						   nkeys == 2 ? " and owner" : ""),
				 errhint("Undo the change to the index, or update the extension with ALTER EXTENSION distsys UPDATE.")));
	return index;
}

/*
 * find_lease: the TID of the row of grant h in the index of its mode, with
 * the latest snapshot; false if there is none.
 */
static bool
find_lease(Relation heap, Relation index, const char *name,
		   const DLockHolder *h, ItemPointer tid)
{
	ScanKeyData keys[2];
	int			nkeys = h->mode == DLOCK_SHARED ? 2 : 1;
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	IndexScanDesc scan;
	bool		found = false;

	/* attribute numbers of index columns: see mode_index_open */
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(name));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(h->owner));
	scan = index_beginscan(heap, index, snap, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (!found && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		token = slot_getattr(slot, Anum_dlock_leases_token, &isnull);

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
	Relation	heap = table_open(relid_of("dlock_leases"), RowExclusiveLock);
	Relation	index;
	ItemPointerData tid;
	TM_FailureData tmfd;
	TM_Result	result = TM_Updated;

	lease_check_table(heap);
	index = mode_index_open(h->mode);
	while (result == TM_Updated && find_lease(heap, index, name, h, &tid))
	{
		/* waits for a concurrent writer of the row to end, then reports */
		result = heap_delete(heap, &tid, GetCurrentCommandId(true),
							 InvalidSnapshot, true, &tmfd, false);
		CHECK_FOR_INTERRUPTS();
	}
	index_close(index, NoLock);
	table_close(heap, NoLock);
	CommandCounterIncrement();
}
