/*-------------------------------------------------------------------------
 *
 * dtx.c
 *	  Distributed transactions: dtx_exec, dtx_query and the participants.
 *
 * The first call for a node inside a local transaction opens a remote
 * transaction there, with the local isolation level and read-only mode and
 * with distsys.dtx_lock_timeout as its lock_timeout (so two distributed
 * transactions that wait for each other across nodes end with an error
 * instead of hanging); later calls reuse it.  The local COMMIT commits them
 * all: dtx_xact.c, on the local transaction's callbacks, commits a sole
 * writer in one phase, or prepares the writers and has the decision taken
 * (a decision record in the local commit, or a last agent's commit), then
 * commits the participants.
 *
 * State: one hash table per backend (TopMemoryContext), keyed by node
 * name and local role (GetUserId()), holding the connection (kept across
 * transactions) and its part in the current transaction.  Only this
 * backend touches it.  Each local role has its own connection to a node,
 * so what one role's statements left in a remote session (settings,
 * temporary tables, prepared statements, a SET ROLE) is never another
 * role's; a transaction whose statements run as two roles (SET ROLE, a
 * SECURITY DEFINER function) has two remote transactions on the node,
 * committed together.  Each remote transaction also begins by resetting
 * its session's settings and identity (RESET ALL, RESET ROLE, RESET
 * SESSION AUTHORIZATION), in the message that carries its BEGIN, so a
 * setting one transaction's statements made does not carry over to the
 * next (participant_begin).
 *
 * distsys's own statements on a node (the slot check, BEGIN, the probe,
 * PREPARE, the last agent's mark, and recovery's) qualify every name and
 * operator (pg_catalog., distsys., OPERATOR(pg_catalog.=)): they run in
 * sessions whose search_path the user's statements, or the node role's
 * defaults, chose, where an object the role created could otherwise stand
 * in for pg_catalog's and decide what recovery believes.  The user's own
 * statements run with whatever search_path the session has.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "dtx.h"
#include "remote.h"

HTAB	   *dtx_participants = NULL;

/* statements run on nodes by this backend: orders the participants' use */
static uint64 statements_run = 0;

/*
 * dtx_xact_init: register the transaction callbacks (once per process).
 */
void
dtx_xact_init(void)
{
	static bool done = false;

	if (done)
		return;
	RegisterXactCallback(dtx_xact_callback, NULL);
	RegisterSubXactCallback(dtx_subxact_callback, NULL);
	done = true;
}

/*
 * dtx_forget_participant: drop p's connection (after it failed or was left
 * in an unknown state); the next use connects again.
 */
void
dtx_forget_participant(DtxParticipant *p)
{
	remote_disconnect(p->conn);
	p->conn = NULL;
	p->busy = p->stalled = p->finishing = false;
	/* a new connection may reach another server: ask it afresh */
	p->slots_checked_at = 0;
	p->can_decide = false;
	p->server.sysid = 0;
}

/*
 * participant_entry: the entry of node and the current user in
 * dtx_participants, made idle if new.
 */
static DtxParticipant *
participant_entry(const char *node)
{
	DtxParticipant *p;
	bool		found;
	DtxParticipantKey key;

	StaticAssertStmt(offsetof(DtxParticipant, role) == offsetof(DtxParticipantKey, role),
					 "DtxParticipant must begin with its key");
	if (dtx_participants == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(DtxParticipantKey);
		ctl.entrysize = sizeof(DtxParticipant);
		dtx_participants = hash_create("distsys dtx participants", 16, &ctl,
									   HASH_ELEM | HASH_BLOBS);
	}
	if (strlen(node) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" is not registered", node)));
	memset(&key, 0, sizeof(key));	/* compared as bytes, padding too */
	strlcpy(key.node, node, sizeof(key.node));
	key.role = GetUserId();
	p = hash_search(dtx_participants, &key, HASH_ENTER, &found);
	if (!found)
	{
		memset(((char *) p) + sizeof(key), 0, sizeof(*p) - sizeof(key));
		p->state = DTX_IDLE;
	}
	return p;
}

/*
 * participant_connect: make sure p has a working connection to what node
 * is registered as now.
 */
static void
participant_connect(DtxParticipant *p)
{
	uint64		version = dtx_registry_version() + 1;
	char	   *conninfo;

	/*
	 * The registry is read again only after node_add or node_remove
	 * committed somewhere: a lookup per transaction and node showed as 8% of
	 * a coordinator backend's time.  (0 is "never looked up".)
	 */
	if (p->conninfo != NULL && p->conninfo_version == version)
		conninfo = p->conninfo;
	else
	{
		/* read as registered now (node.c), kept as of that version */
		conninfo = node_conninfo(p->node);
		p->conninfo_version = 0;
	}

	/*
	 * An idle connection has nothing to read unless the node closed it
	 * (restart, terminate): reading now finds that out before it is used.
	 * One left busy (a slot check that was interrupted) is dropped, and so
	 * is one the current user may no longer use (it lost superuser, and
	 * the node never asked for a password): connecting again says why.
	 */
	if (p->conn != NULL && p->finishing)
		dtx_finish_read(p);		/* an earlier transaction's, left unread */
	if (p->conn != NULL && p->busy && PQtransactionStatus(p->conn) != PQTRANS_ACTIVE)
		p->busy = false;		/* a remote error was read: nothing runs */
	if (p->conn != NULL &&
		(p->busy || !PQconsumeInput(p->conn) || PQstatus(p->conn) != CONNECTION_OK ||
		 strcmp(p->conninfo, conninfo) != 0 || !remote_password_ok(p->conn)))
		dtx_forget_participant(p);
	if (p->conn == NULL)
	{
		char	   *copy = MemoryContextStrdup(TopMemoryContext, conninfo);

		if (p->conninfo)
			pfree(p->conninfo);
		p->conninfo = copy;
		p->conn = remote_connect(p->node, copy);
	}
	p->conninfo_version = version;
}

/*
 * dtx_node_in_transaction: whether node takes part in the current
 * transaction, for any role (node_add and node_remove refuse to move it
 * under it).
 */
bool
dtx_node_in_transaction(const char *node)
{
	HASH_SEQ_STATUS seq;
	DtxParticipant *p;
	bool		found = false;

	if (dtx_participants == NULL)
		return false;
	hash_seq_init(&seq, dtx_participants);
	while ((p = hash_seq_search(&seq)) != NULL)
		found = found || (p->state != DTX_IDLE && strcmp(p->node, node) == 0);
	return found;
}

/*
 * dtx_hold_registry: before the first of ps is prepared, lock the registry
 * against node_add and node_remove until this transaction ends (see
 * node_registry_lock), then make sure no writer's node was removed or
 * re-pointed since its connection string was looked up: its prepared work
 * would be where recovery no longer looks.
 */
void
dtx_hold_registry(DtxParticipant **ps, int n)
{
	uint64		version;
	int			i;

	node_registry_lock(RowExclusiveLock);
	version = dtx_registry_version() + 1;
	for (i = 0; i < n; i++)
	{
		DtxParticipant *p = ps[i];
		char	   *now;

		if (p->xid == 0 || p->conninfo_version == version)
			continue;
		now = node_conninfo_if_any(p->node);	/* a change committed since */
		if (now == NULL || strcmp(now, p->conninfo) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("node \"%s\" was %s while this transaction used it",
							p->node, now == NULL ? "removed" : "re-pointed"),
					 errdetail("Its part of the transaction was rolled back on the server the node named before."),
					 errhint("Retry the transaction.")));
		p->conninfo_version = version;
	}
}

/*
 * dtx_server_id: the server node's conn reaches, from the first row of
 * probe (DTX_SERVER_ID_PROBE in columns column and column + 1) and, if the
 * role may call it, pg_control_system() in one more round trip; sysid 0 if
 * it may not.  Frees probe; an ERROR if the node fails to answer.
 */
DtxServerId
dtx_server_id(PGconn *conn, const char *node, PGresult *probe, int column)
{
	DtxServerId id = {0, InvalidOid};
	bool		may_ask = strcmp(PQgetvalue(probe, 0, column), "t") == 0;
	char	   *sysid;

	if (!PQgetisnull(probe, 0, column + 1))
		id.dboid = (Oid) strtoul(PQgetvalue(probe, 0, column + 1), NULL, 10);
	PQclear(probe);
	if (!may_ask)
		return id;
	sysid = remote_run_value(conn, node,
							 "SELECT system_identifier FROM pg_catalog.pg_control_system()",
							 distsys_dtx_commit_timeout_ms);
	if (sysid != NULL)
		id.sysid = strtou64(sysid, NULL, 10);
	return id;
}

/*
 * check_slots: refuse a node whose free prepared-transaction slots are
 * below distsys.dtx_prepared_reserve, before any work is done there, and
 * note whether it can keep last-agent marks: distsys.dtx_marks is there,
 * is the table of extension distsys (not one a role made in a schema of
 * that name, whose owner could delete the marks), and we may insert into
 * it; and which server it is (the last agent's GIDs name it).  It costs a
 * round trip, so each connection asks at most once a second.
 */
static void
check_slots(DtxParticipant *p)
{
	static const char *sql =
		"SELECT pg_catalog.current_setting('max_prepared_transactions')::int,"
		" (SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_xacts)::int,"
		" COALESCE((SELECT pg_catalog.has_table_privilege(d.objid, 'INSERT')"
		" FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e"
		" ON e.oid OPERATOR(pg_catalog.=) d.refobjid"
		" WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
		" AND d.objid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('distsys.dtx_marks')"
		" AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass"
		" AND d.deptype OPERATOR(pg_catalog.=) 'e'"
		" AND e.extname OPERATOR(pg_catalog.=) 'distsys'), false), "
		DTX_SERVER_ID_PROBE;
	TimestampTz now = GetCurrentTimestamp();
	PGresult   *res;
	int			free_slots,
				max_slots;

	if (p->slots_checked_at != 0 &&
		!TimestampDifferenceExceeds(p->slots_checked_at, now, 1000))
		return;
	p->busy = true;
	res = remote_run(p->conn, p->node, sql, 0);
	p->busy = false;
	remote_check_shape(res, p->node, sql, true, 5);
	max_slots = atoi(PQgetvalue(res, 0, 0));
	free_slots = max_slots - atoi(PQgetvalue(res, 0, 1));
	/*
	 * whether it can be a last agent (dtx_xact.c), asked with the slots: its
	 * GIDs name the server that decides, so that server must be known (asked
	 * once per connection: it does not change)
	 */
	p->can_decide = PQgetvalue(res, 0, 2)[0] == 't';
	if (p->server.sysid == 0)
	{
		p->busy = true;
		p->server = dtx_server_id(p->conn, p->node, res, 3);
		p->busy = false;
	}
	else
		PQclear(res);
	p->can_decide = p->can_decide && p->server.sysid != 0;
	p->slots_checked_at = now;
	/* with none at all, reads still work; PREPARE says what to set */
	if (max_slots > 0 && free_slots < distsys_dtx_prepared_reserve)
	{
		p->slots_checked_at = 0;	/* ask again next time */
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("node \"%s\" has only %d free prepared-transaction slots", p->node, free_slots),
				 errdetail("distsys keeps %d slots free (distsys.dtx_prepared_reserve) so that commits and recovery can proceed.",
						   distsys_dtx_prepared_reserve),
				 errhint("Raise max_prepared_transactions on node \"%s\", or resolve what distsys.dtx_in_doubt shows there.", p->node)));
	}
}

/*
 * The setting every remote transaction gets right after its BEGIN (SET
 * LOCAL, a placeholder: no module defines it), as its mark: it lasts until
 * the transaction ends, so a transaction without it is not the one distsys
 * began (check_probe).  A cursor would mark it as well, but asking for one
 * (pg_cursors) cost the node about 75 us per statement to plan and run,
 * this about 12 (EXPLAIN ANALYZE, warm).  The price: a RESET ALL among
 * the statements drops the mark too, and is reported as ending the
 * transaction; it would also have dropped the lock_timeout set with it.
 */
#define XACT_MARK "distsys_dtx.xact"

/*
 * participant_begin: start p's part in this transaction; returns the
 * statements that open its remote transaction like the local one, which
 * are sent in one string with the first statement (one round trip).  They
 * first reset the session: the settings and identity the statements of an
 * earlier transaction set there are gone (its transaction-level defaults,
 * default_transaction_read_only and default_transaction_deferrable, still
 * apply to this BEGIN, which the server began with the string's first
 * statement).  The reset is part of the remote transaction: should it roll
 * back, the next BEGIN resets again.
 */
static char *
participant_begin(DtxParticipant *p)
{
	/*
	 * A registry change of this transaction is not in the backends' cached
	 * connection strings, and would make recovery look for this work where
	 * the change points once it commits.
	 */
	if (node_registry_changed_here())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot begin work on node \"%s\" in a transaction that changed the node registry", p->node),
				 errhint("Commit the change of the registry first.")));
	participant_connect(p);
	/* before the state changes: if it fails, nothing was begun there */
	check_slots(p);
	p->state = DTX_OPEN;		/* from now on, an abort ends it cleanly */
	p->xid = 0;
	p->broken = false;
	p->depth = 1;
	p->release_from = 0;
	return psprintf(DTX_RESET_IDENTITY "RESET ALL; BEGIN ISOLATION LEVEL %s%s; SET LOCAL lock_timeout = %d; "
					"SET LOCAL " XACT_MARK " = on; ",
					XactIsoLevel == XACT_SERIALIZABLE ? "SERIALIZABLE" :
					XactIsoLevel == XACT_REPEATABLE_READ ? "REPEATABLE READ" : "READ COMMITTED",
					XactReadOnly ? " READ ONLY" : "",
					distsys_dtx_lock_timeout_ms);
}

/*
 * savepoint_sql: the statements that bring p's remote transaction to the
 * local nesting level, a savepoint per subtransaction level it lacks
 * (dtx_xact.c rolls a node back to the savepoint of a subtransaction that
 * aborts), after releasing those of subtransactions that committed since;
 * "" if there are none.  savepoints_made records that they ran.
 */
static char *
savepoint_sql(DtxParticipant *p)
{
	int			level = GetCurrentTransactionNestLevel();
	StringInfoData buf;

	if (p->release_from == 0 && p->depth >= level)
		return "";				/* the usual case: nothing to do */
	initStringInfo(&buf);
	if (p->release_from > 0)
		appendStringInfo(&buf, "RELEASE SAVEPOINT " DTX_SAVEPOINT "; ", p->release_from);
	for (int d = p->depth + 1; d <= level; d++)
		appendStringInfo(&buf, "SAVEPOINT " DTX_SAVEPOINT "; ", d);
	return buf.data;
}

static void
savepoints_made(DtxParticipant *p)
{
	p->release_from = 0;
	p->depth = Max(p->depth, GetCurrentTransactionNestLevel());
}

/*
 * make_savepoints: run savepoint_sql on p, an open participant, in a round
 * trip of its own: sent with the statement, a syntax error in the
 * statement would keep them from running (the server parses the whole
 * string first), and the savepoint levels would no longer be known.  A
 * failure here leaves them unknown: the node is broken.
 */
static void
make_savepoints(DtxParticipant *p, const char *sql)
{
	p->busy = true;
	PG_TRY();
	{
		PQclear(remote_run(p->conn, p->node, sql, 0));
	}
	PG_CATCH();
	{
		p->broken = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	p->busy = false;
	savepoints_made(p);
}

/*
 * dtx_check_broken: an ERROR if p could not be rolled back to a savepoint
 * (dtx_xact.c): its part of the transaction is lost, so the whole
 * transaction must roll back.
 */
void
dtx_check_broken(DtxParticipant *p)
{
	if (p->broken)
		ereport(ERROR,
				(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
				 errmsg("the remote transaction on node \"%s\" could not be rolled back to a savepoint", p->node),
				 errdetail("A subtransaction that ran statements there aborted, and the node did not roll them back."),
				 errhint("Roll back the whole transaction and retry it.")));
}

/*
 * participant_for: node's participant in this transaction; *begin is the
 * prefix that opens its remote transaction and its savepoints, if any.
 */
static DtxParticipant *
participant_for(const char *node, char **begin)
{
	DtxParticipant *p = participant_entry(node);
	char	   *open;

	dtx_check_broken(p);
	if (p->state == DTX_IDLE)
	{
		/*
		 * A new remote transaction gets its savepoints with BEGIN and the
		 * statement: should a syntax error keep them all from running, the
		 * node has no transaction, which an abort finds (dtx_xact.c).
		 */
		open = participant_begin(p);
		*begin = psprintf("%s%s", open, savepoint_sql(p));
		savepoints_made(p);
		p->begin_unconfirmed = true;
	}
	else if (p->state != DTX_OPEN)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("the distributed transaction is already committing")));
	else
	{
		char	   *sql = savepoint_sql(p);

		*begin = "";
		if (*sql != '\0')
			make_savepoints(p, sql);
	}
	return p;
}

/*
 * The probe sent after every statement, in the same round trip.  Its
 * first column tells whether the node's transaction wrote (it has an xid
 * then), so at commit the coordinator knows its writers without asking,
 * and has the xid a deciding node's outcome is read by (dtx_xact.c).  Its
 * second says whether the transaction is still the one distsys began:
 * "COMMIT; BEGIN" or "PREPARE TRANSACTION 'x'; BEGIN" among the statements
 * leave a transaction open there, but a new one.  The newline ends a
 * trailing "--" comment of the user's.  Names are qualified: the user's
 * statements may have set any search_path.
 */
#define PROBE_SQL "SELECT pg_catalog.pg_current_xact_id_if_assigned(), " \
	"pg_catalog.current_setting('" XACT_MARK "', true)"
#define PROBE "\n; " PROBE_SQL

/*
 * check_probe: read the probe's answer into p->xid, and raise an ERROR if
 * the statements sql ran on p ended the remote transaction distsys began
 * there; frees probe.  An answer of another shape is an ERROR too: taking
 * the node for one that did not write would commit it without two-phase
 * commit.
 */
static void
check_probe(DtxParticipant *p, PGresult *probe, const char *sql)
{
	uint64		xid = 0;
	bool		open;
	bool		same;

	remote_check_shape(probe, p->node, PROBE_SQL, true, 2);
	if (!PQgetisnull(probe, 0, 0))
		xid = strtou64(PQgetvalue(probe, 0, 0), NULL, 10);
	/* a transaction that wrote keeps its xid: another xid is another one */
	same = strcmp(PQgetvalue(probe, 0, 1), "on") == 0 && (p->xid == 0 || xid == p->xid);
	PQclear(probe);
	p->xid = xid;
	open = PQtransactionStatus(p->conn) == PQTRANS_INTRANS;
	if (!open || !same)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("the statement ended the remote transaction on node \"%s\"", p->node),
				 open ?
				 errdetail("A transaction is open there, but not the one distsys began: the statement ended that one and began another (or reset the settings distsys gave it, with RESET ALL). What it ended was committed, rolled back or prepared on its own.") :
				 errdetail("distsys commits or rolls back each node with the local transaction; what the statement ended there was committed, rolled back or prepared on its own."),
				 errhint("Do not run COMMIT, ROLLBACK, PREPARE TRANSACTION or RESET ALL through dtx_exec or dtx_query."),
				 remote_errcontext(p->node, sql)));
}

/*
 * participant_run: run sql in node's remote transaction; the caller
 * PQclears the result.
 */
static PGresult *
participant_run(const char *node, const char *sql, DtxParticipant **pp)
{
	DtxParticipant *p;
	PGresult   *res;
	PGresult   *probe = NULL;
	char	   *begin;

	if (*node == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("node name must not be empty")));
	if (sql[strspn(sql, " \t\r\n;")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("statement for node \"%s\" is empty", node)));
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("distributed transactions cannot run in a parallel worker")));
	distsys_require_preload("distributed transactions");
	p = participant_for(node, &begin);
	p->used = ++statements_run;
	p->busy = true;
	res = remote_run_shown(p->conn, node, psprintf("%s%s%s", begin, sql, PROBE),
						   sql, 0, &probe);
	p->busy = false;
	p->begin_unconfirmed = false;
	/* libpq's memory: an ERROR from here on must free res too */
	PG_TRY();
	{
		check_probe(p, probe, sql);
	}
	PG_CATCH();
	{
		PQclear(res);
		PG_RE_THROW();
	}
	PG_END_TRY();
	*pp = p;
	return res;
}

PG_FUNCTION_INFO_V1(dtx_exec);

/*
 * dtx_exec(node, sql): run sql in this transaction on node; the number of
 * rows it affected (0 for utility statements).
 */
Datum
dtx_exec(PG_FUNCTION_ARGS)
{
	char	   *node = distsys_text_arg(fcinfo, 0, "node name");
	char	   *sql = distsys_text_arg(fcinfo, 1, "statement");
	DtxParticipant *p;
	PGresult   *res = participant_run(node, sql, &p);
	int64		rows = atoll(PQcmdTuples(res));

	PQclear(res);
	PG_RETURN_INT64(rows);
}

/*
 * append_json_value: one column value of a remote row, as JSON: numbers,
 * booleans and json stay what they are, everything else is a string.
 */
static void
append_json_value(StringInfo buf, PGresult *res, int row, int col)
{
	const char *v = PQgetvalue(res, row, col);

	if (PQgetisnull(res, row, col))
	{
		appendStringInfoString(buf, "null");
		return;
	}
	switch (PQftype(res, col))
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			/* NaN and the infinities have no JSON number */
			if (strspn(v, "0123456789+-.eE") == strlen(v))
			{
				appendStringInfoString(buf, v);
				return;
			}
			break;
		case BOOLOID:
			appendStringInfoString(buf, v[0] == 't' ? "true" : "false");
			return;
		case JSONOID:
		case JSONBOID:
			appendStringInfoString(buf, v);
			return;
	}
	escape_json(buf, v);
}

/*
 * row_to_jsonb: row of res as a jsonb object keyed by column name.
 */
static Datum
row_to_jsonb(PGresult *res, int row)
{
	StringInfoData buf;
	int			col;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (col = 0; col < PQnfields(res); col++)
	{
		if (col > 0)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, PQfname(res, col));
		appendStringInfoChar(&buf, ':');
		append_json_value(&buf, res, row, col);
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Where dtx_query is in a result, for the context line of an error. */
typedef struct RowPosition
{
	const char *node;
	int			row;			/* counting from 0 */
} RowPosition;

/*
 * row_position_context: the context line of an error while dtx_query
 * converts a row (arg is its RowPosition).
 */
static void
row_position_context(void *arg)
{
	RowPosition *pos = arg;

	errcontext("row %d of the result of node \"%s\"", pos->row + 1, pos->node);
}

/*
 * rows_to_tuplestore: every row of res as a jsonb object into rsinfo's
 * tuplestore.  A value jsonb refuses (a json "\u0000") raises its ERROR
 * here, with a context line naming node and the row.
 */
static void
rows_to_tuplestore(ReturnSetInfo *rsinfo, PGresult *res, const char *node)
{
	RowPosition pos = {node, 0};
	ErrorContextCallback callback;

	callback.callback = row_position_context;
	callback.arg = &pos;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	for (pos.row = 0; pos.row < PQntuples(res); pos.row++)
	{
		Datum		value = row_to_jsonb(res, pos.row);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	error_context_stack = callback.previous;
}

PG_FUNCTION_INFO_V1(dtx_query);

/*
 * dtx_query(node, sql): run sql in this transaction on node; one jsonb
 * object per row it returned.
 */
Datum
dtx_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *node = distsys_text_arg(fcinfo, 0, "node name");
	char	   *sql = distsys_text_arg(fcinfo, 1, "statement");
	DtxParticipant *p;
	PGresult   *res;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC | MAT_SRF_BLESS);
	res = participant_run(node, sql, &p);
	/* libpq's memory: an ERROR converting a row must free it too */
	PG_TRY();
	{
		rows_to_tuplestore(rsinfo, res, node);
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	return (Datum) 0;
}
