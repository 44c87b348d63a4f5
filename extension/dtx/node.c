/*-------------------------------------------------------------------------
 *
 * node.c
 *	  The node registry: distsys.node_registry and its SQL functions.
 *
 * A node is a name and a libpq connection string.  The strings may hold
 * passwords, so the table is readable only by the extension's owner (and
 * superusers); node_add and node_remove are not granted to PUBLIC, and the
 * distsys.nodes view shows the strings only to members of the owner role.
 * A change commits synchronously, whatever synchronous_commit says: it is
 * used as soon as it commits, so it must not be lost in a crash.
 * The coordinator reads them as the owner (spi_util.c), so users allowed to
 * run distributed transactions need no access to the table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq-fe.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "distsys.h"
#include "dtx.h"
#include "spi_util.h"

/* whether this transaction changed the registry (see registry_callback) */
static bool registry_touched = false;

/*
 * registry_callback: once a change of the registry commits, tell every
 * backend to look connection strings up again (dtx.c caches them).  A
 * prepared change would become visible at some later COMMIT PREPARED that
 * nobody here sees, so it is refused.
 */
static void
registry_callback(XactEvent event, void *arg)
{
	if (!registry_touched)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that changed the distsys node registry")));
			break;
		case XACT_EVENT_COMMIT:
			dtx_registry_changed();
			registry_touched = false;
			break;
		case XACT_EVENT_ABORT:
			registry_touched = false;
			break;
		default:
			break;
	}
}

/*
 * node_registry_changed_here: whether this transaction changed the
 * registry (dtx.c then refuses to begin work on a node: its connection
 * string could be this transaction's uncommitted one).
 */
bool
node_registry_changed_here(void)
{
	return registry_touched;
}

/*
 * registry_touched_now: this transaction changes the registry, and its
 * commit is made durable (flushed, and acknowledged by the synchronous
 * standbys), whatever synchronous_commit says.  Backends
 * use a committed change at once: a transaction may make a re-pointed node
 * its deciding node and commit there.  An asynchronous commit lost in a
 * crash would bring the old connection string back, and recovery would
 * then look for the decision on the old server, find no mark and roll the
 * other participants back (issue 15 item 5).
 */
static void
registry_touched_now(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(registry_callback, NULL);
		registered = true;
	}
	registry_touched = true;
	distsys_commit_durably();
}

PG_FUNCTION_INFO_V1(node_registry_trigger);

/*
 * node_registry_trigger: the statement trigger that runs before every
 * change of distsys.node_registry, so that one made with plain SQL by the
 * owner is also locked against transactions that prepare (as node_add and
 * node_remove are) and reaches the backends' cached connection strings.
 */
Datum
node_registry_trigger(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("node_registry_trigger must be called as a trigger")));
	node_registry_lock(ShareRowExclusiveLock);
	registry_touched_now();
	return PointerGetDatum(NULL);
}

/*
 * node_registry_lock: lock distsys.node_registry in mode until the end of
 * the transaction.  A transaction that prepares participants holds
 * RowExclusiveLock from before its first PREPARE; node_add and node_remove
 * take ShareRowExclusiveLock, which waits for those transactions to end and
 * holds new ones off until the change commits.  So a node is never removed
 * or re-pointed between a PREPARE there and its outcome, where the check
 * for work in progress could not see it and recovery would lose it.
 */
void
node_registry_lock(LOCKMODE mode)
{
	Oid			relid = get_relname_relid("node_registry",
										  get_namespace_oid("distsys", false));

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table distsys.node_registry does not exist"),
				 errhint("Reinstall the extension: DROP EXTENSION distsys; CREATE EXTENSION distsys.")));
	LockRelationOid(relid, mode);
}

static SPIPlanPtr add_plan, remove_plan, in_use_plan, conninfo_plan, names_plan;

/*
 * check_node_name: a node name is 1 to 63 letters, digits, '_', '-' or '.',
 * so it fits a GID, a log line and a NAMEDATALEN key unquoted.
 */
static void
check_node_name(const char *name)
{
	const char *c;

	if (*name == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("node name must be 1 to %d bytes long", NAMEDATALEN - 1)));
	for (c = name; *c; c++)
		if (!(isalnum((unsigned char) *c) || *c == '_' || *c == '-' || *c == '.'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid node name \"%s\"", name),
					 errdetail("A node name may contain only ASCII letters, digits, \"_\", \"-\" and \".\".")));
}

/*
 * check_conninfo: raise an error naming the problem unless libpq can parse
 * conninfo.
 */
static void
check_conninfo(const char *conninfo)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);

	if (opts == NULL)
	{
		char	   *msg = pchomp(err ? err : "out of memory");

		PQfreemem(err);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid connection string: %s", msg),
				 errhint("Use a libpq connection string such as 'host=127.0.0.1 port=5432 dbname=app'.")));
	}
	PQconninfoFree(opts);
}

/*
 * refuse_if_needed: refuse (55006) to move node (remove or re-point it)
 * while this transaction uses it, or, unless force, while recovery still
 * needs the server it names now: a decision row names it, or a prepared
 * transaction of this coordinator is on it or is decided by it.  The caller
 * has done SPI_connect.
 */
static void
refuse_if_needed(const char *name, bool force)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	if (dtx_node_in_transaction(name))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("node \"%s\" is used by this transaction", name),
				 errhint("Change the node in a transaction that does not run statements on it.")));
	if (force)
		return;
	if (distsys_spi_run(&in_use_plan,
						"SELECT 1 FROM distsys.dtx_decisions WHERE $1 = ANY (participants) LIMIT 1",
						1, types, values, NULL, true) > 0 ||
		dtx_node_in_use(name))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("node \"%s\" still has distributed transactions to finish", name),
				 errdetail("Recovery must finish them on the server the node names now."),
				 errhint("Run SELECT distsys.dtx_recover() until distsys.dtx_in_doubt shows nothing for it, or pass force => true.")));
}

/*
 * moving: whether setting name to conninfo (NULL: removing it) moves it
 * away from the server it names now.
 */
static bool
moving(const char *name, const char *conninfo)
{
	char	   *now;

	if (conninfo == NULL)
		return true;
	now = node_conninfo_if_any(name);
	return now != NULL && strcmp(now, conninfo) != 0;
}

/*
 * lock_and_check: check that name may be set to conninfo (NULL: removed),
 * lock the registry against transactions that prepare
 * (node_registry_lock), note the change (registry_touched_now), and check
 * again as of now: the node may have been
 * re-pointed, and a transaction may have prepared there, meanwhile.  The
 * first check, without the lock, keeps a node that cannot be reached from
 * holding every distributed commit up while its connection attempt times
 * out.
 */
static void
lock_and_check(const char *name, const char *conninfo, bool force)
{
	if (moving(name, conninfo))
		refuse_if_needed(name, force);
	node_registry_lock(ShareRowExclusiveLock);
	PushActiveSnapshot(GetLatestSnapshot());
	if (moving(name, conninfo))
		refuse_if_needed(name, force);
	PopActiveSnapshot();
	/*
	 * The trigger does this too, but not under session_replication_role =
	 * replica (no ordinary trigger fires then): the change must still reach
	 * the backends' cached strings and be made durable before it is used.
	 */
	registry_touched_now();
}

PG_FUNCTION_INFO_V1(node_add);

/*
 * node_add(name, conninfo, force): register the node, or point an existing
 * name at a new connection string (refused while recovery still needs the
 * server it names now, unless forced).
 */
Datum
node_add(PG_FUNCTION_ARGS)
{
	char	   *name = distsys_text_arg(fcinfo, 0, "node name");
	char	   *conninfo = distsys_text_arg(fcinfo, 1, "conninfo");
	bool		force = PG_NARGS() > 2 && !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	check_node_name(name);
	check_conninfo(conninfo);
	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(conninfo);
	SPI_connect();
	/* re-pointed, recovery would look for its work on another server */
	lock_and_check(name, conninfo, force);
	distsys_spi_run(&add_plan,
					"INSERT INTO distsys.node_registry (name, conninfo) VALUES ($1, $2)"
					" ON CONFLICT (name) DO UPDATE SET conninfo = EXCLUDED.conninfo",
					2, types, values, NULL, false);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(node_remove);

/*
 * node_remove(name, force): forget the node; false if it was not
 * registered.  Refused while recovery still needs it, unless forced.
 */
Datum
node_remove(PG_FUNCTION_ARGS)
{
	char	   *name = distsys_text_arg(fcinfo, 0, "node name");
	bool		force = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	uint64		n;

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	lock_and_check(name, NULL, force);
	n = distsys_spi_run(&remove_plan,
						"DELETE FROM distsys.node_registry WHERE name = $1",
						1, types, values, NULL, false);
	SPI_finish();
	PG_RETURN_BOOL(n > 0);
}

/*
 * node_conninfo_if_any: the connection string of node (palloc'd in the
 * caller's context), or NULL if it is not registered.  Read as registered
 * now, whatever the isolation level: an older REPEATABLE READ snapshot
 * could miss a change that moved the registry version (dtx.c caches by it).
 */
char *
node_conninfo_if_any(const char *node)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *result = NULL;
	MemoryContext caller = CurrentMemoryContext;

	values[0] = CStringGetTextDatum(node);
	PushActiveSnapshot(GetLatestSnapshot());
	SPI_connect();
	if (distsys_spi_run(&conninfo_plan,
						"SELECT conninfo FROM distsys.node_registry WHERE name = $1",
						1, types, values, NULL, true) > 0)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		result = MemoryContextStrdup(caller, s);
	}
	SPI_finish();
	PopActiveSnapshot();
	return result;
}

/*
 * node_conninfo: the same, or an error if node is not registered.
 */
char *
node_conninfo(const char *node)
{
	char	   *result = node_conninfo_if_any(node);

	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" is not registered", node),
				 errhint("Register it with SELECT distsys.node_add(name, conninfo); distsys.nodes lists the registered nodes.")));
	return result;
}

/*
 * node_names: the registered node names, a List of palloc'd strings in the
 * caller's context.
 */
List *
node_names(void)
{
	List	   *names = NIL;
	MemoryContext caller = CurrentMemoryContext;
	uint64		i,
				n;

	SPI_connect();
	n = distsys_spi_run(&names_plan,
						"SELECT name FROM distsys.node_registry ORDER BY name",
						0, NULL, NULL, NULL, true);
	for (i = 0; i < n; i++)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext spi = MemoryContextSwitchTo(caller);

		names = lappend(names, pstrdup(s));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return names;
}
