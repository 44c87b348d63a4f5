/*-------------------------------------------------------------------------
 *
 * dtx_recover.c
 *	  Resolving the prepared transactions a coordinator left behind:
 *	  dtx_recover(), the distsys.dtx_in_doubt view, and the rules both use.
 *
 * A prepared transaction on a node is this coordinator's when its GID
 * names this server's system identifier and this database (dtx_xact.c).
 * The GID also carries the distributed transaction's random id, and the
 * outcome is decided from that id and durable state only, never from age
 * or from the coordinator's xid (which a crash can hand out again):
 *
 *	0. The GID names a deciding node and its xid (a last agent, see
 *	   dtx_xact.c): that node's transaction committed in one phase, with a
 *	   mark (distsys.dtx_marks) of the id, and its outcome is the
 *	   transaction's.  Unless a backend here publishes the id as
 *	   committing, ask the node: a mark means COMMIT PREPARED (only one
 *	   written by the role recovery logs in as, which is the role the
 *	   agent wrote it as: dtx_marks.c).  No mark,
 *	   and its xid is "in progress" (pg_xact_status): wait.  Otherwise that
 *	   transaction ended; look for the mark once more (it may have committed
 *	   in between), and without one, ROLLBACK PREPARED: it never committed
 *	   and never will.  The xid only says whether to wait: after a crash the
 *	   node may hand it to another transaction, which can delay the
 *	   decision but not change it.  The node alone decides, so this is
 *	   right whatever the coordinator did or will do, also on a promoted
 *	   standby of it.  An unreachable node leaves it in doubt ("unknown").
 *	   The node is found through the registry, by name, and a registry
 *	   can be reverted (a restore, a forced re-point) to name another
 *	   server, where no mark would be found and the xid means nothing.  So
 *	   the GID also names the server that decided (its system identifier
 *	   and database oid): when the node's conninfo reaches another one, a
 *	   mark there still commits (a copy of the node, a dump, keeps the
 *	   marks of what it committed), but without one the transaction is
 *	   left in doubt with a WARNING, never rolled back.  A streaming
 *	   standby of the node, promoted, keeps its system identifier.
 *	1. A backend publishes the id as committing (dtx_shmem.c): it is
 *	   between its first PREPARE and the end of its commit or abort, and
 *	   ends its participants itself; leave it, even once its decision row
 *	   is visible.  A COMMIT PREPARED from here at the same time as the
 *	   backend's own would make the backend's find the GID busy or gone,
 *	   which it must then report to its client as an unknown outcome
 *	   (dtx_xact.c, resolved_elsewhere).
 *	2. Otherwise a decision row with the id is visible: the coordinator
 *	   transaction committed (the row was inserted in it), so COMMIT
 *	   PREPARED.  The backend clears its slot only after its commit is
 *	   visible, so a look after step 1 sees the row of a transaction that
 *	   committed.  Rows are deleted only once no participant of theirs is
 *	   still prepared (step 4), so a committed transaction with a prepared
 *	   participant always has its row.
 *	3. No row: that transaction ended without committing and no row can
 *	   ever appear, so ROLLBACK PREPARED.  This also holds on a promoted
 *	   standby (no backend of the old primary is committing there) and
 *	   after a crash.
 *	4. Rows read at the start of a pass whose participants were all listed
 *	   afterwards without any of their GIDs are deleted: a row visible then
 *	   means every PREPARE had finished before, so a GID not listed later
 *	   was committed.
 *	5. A GID that names another server or database is another
 *	   coordinator's, even when this database was restored from a dump of
 *	   that coordinator's (a new server has a new system identifier, a new
 *	   database a new oid).  Rules 1-4 never apply to it.  But if a decision
 *	   row with its id and coordinator xid was restored here, it is adopted
 *	   and committed: a row in a dump was committed where the dump was
 *	   taken, and only committed rows are ever inserted.  An adopted GID is
 *	   never rolled back, and one without a row is left alone: a dump does
 *	   not show the transactions that were committing while it was taken,
 *	   so here the absence of a row proves nothing.  The coordinator that
 *	   wrote such a GID, or an operator, resolves it.  Adopted GIDs keep
 *	   their row as in step 4 (rows are matched to GIDs by id).
 *
 * Every action is idempotent (a GID that is already gone was resolved by
 * someone else), so dtx_recover() and the worker may run at once.  The
 * statements sent to nodes qualify every name and operator (see dtx.c):
 * they run with whatever search_path the node's role has.  Nothing
 * here runs during recovery (a hot standby): there, the primary's
 * committing transactions are invisible, so step 3 would be wrong.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "distsys.h"
#include "dtx.h"
#include "remote.h"
#include "spi_util.h"

static SPIPlanPtr exists_plan, records_plan, forget_plan;

static bool run_guarded(void (*fn) (void *), void *arg, const char *node, int elevel);
static void refuse_standby(PGconn *conn, const char *node);

/* A decision record read at the start of a pass (step 4). */
typedef struct DecisionRecord
{
	uint64		id;
	FullTransactionId fxid;
	List	   *participants;	/* node names, in GID order */
} DecisionRecord;

/* One node's part of a pass. */
typedef struct NodePass
{
	char	   *node;
	bool		listed;			/* its prepared transactions were listed */
	List	   *left;			/* GIDs of ours still prepared there */
	int			resolved;		/* how many this pass committed or rolled back */
	ReturnSetInfo *rsinfo;		/* dtx_in_doubt: where its rows go */
	const char *decider;		/* dtx_node_in_use: the node asked about */
	bool		needed;			/* ... and whether one listed here needs it */
	bool		marks;			/* a recovery pass: handle the node's marks too */
	PGconn	   *conn;			/* open while the node is visited */
	void		(*each) (struct NodePass *pass, PGconn *conn, PGresult *res, int row);
} NodePass;

/*
 * decision_exists: whether the decision row of transaction id is visible
 * now (steps 2 and 3); sets *xid (if not NULL) to the coordinator
 * transaction it names.
 */
static bool
decision_exists(uint64 id, FullTransactionId *xid)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum((int64) id)};
	bool		isnull;
	uint64		n;

	/*
	 * The latest snapshot, whatever the isolation level of the transaction
	 * running recovery: under REPEATABLE READ its own snapshot could miss a
	 * row committed since, and a committed transaction would be rolled back.
	 */
	PushActiveSnapshot(GetLatestSnapshot());
	SPI_connect();
	n = distsys_spi_run(&exists_plan,
						"SELECT xid FROM distsys.dtx_decisions WHERE id = $1",
						1, types, values, NULL, true);
	if (n > 0 && xid != NULL)
		*xid = DatumGetFullTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PopActiveSnapshot();
	return n > 0;
}

/*
 * parse_server: the DtxServerId that s starts with (DTX_SERVER_ID_HEX and
 * a colon), into *server; returns how many bytes it took, 0 if s does not
 * start with one.
 */
static int
parse_server(const char *s, DtxServerId *server)
{
	char		sysid[17],
				dboid[9];

	if (strspn(s, "0123456789abcdef") != DTX_SERVER_ID_HEX_LEN ||
		s[DTX_SERVER_ID_HEX_LEN] != ':')
		return 0;
	strlcpy(sysid, s, sizeof(sysid));
	strlcpy(dboid, s + 16, sizeof(dboid));
	server->sysid = strtou64(sysid, NULL, 16);
	server->dboid = (Oid) strtoul(dboid, NULL, 16);
	return DTX_SERVER_ID_HEX_LEN + 1;
}

/*
 * parse_decider: the ":<xid>:<server>:<node>" that ends the GID of a
 * transaction a last agent decided (dtx_xact.c), into decider; false if s
 * is not that.  A GID of an earlier version has no <server> (a node name
 * has no colon, so the two cannot be mistaken for each other).
 */
static bool
parse_decider(const char *s, DtxDecider *decider)
{
	unsigned long long xid64;
	int			end = 0;
	size_t		len;

	if (sscanf(s, ":%llu:%n", &xid64, &end) != 1 || end == 0)
		return false;
	end += parse_server(s + end, &decider->server);
	len = strlen(s + end);
	if (len == 0 || len >= NAMEDATALEN || strspn(s + end,
												 "abcdefghijklmnopqrstuvwxyz"
												 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
												 "0123456789_-.") != len)
		return false;
	decider->xid = xid64;
	strlcpy(decider->node, s + end, sizeof(decider->node));
	return true;
}

/*
 * parse_any_gid: whether gid is a distsys GID of any coordinator; sets its
 * coordinator xid, distributed transaction id and decider (node "" for the
 * coordinator itself), and *own to whether it names this server and this
 * database.
 */
static bool
parse_any_gid(const char *gid, FullTransactionId *fxid, uint64 *id, DtxDecider *decider,
			  bool *own)
{
	unsigned long long sysid,
				xid64,
				id64;
	unsigned int dbid;
	int			index,
				end = 0;

	memset(decider, 0, sizeof(*decider));
	if (sscanf(gid, DTX_GID_PREFIX ":%llu:%u:%llu:%llu:%d%n",
			   &sysid, &dbid, &xid64, &id64, &index, &end) != 5)
		return false;
	if (gid[end] != '\0' && !parse_decider(gid + end, decider))
		return false;
	*fxid = FullTransactionIdFromU64(xid64);
	*id = id64;
	*own = sysid == GetSystemIdentifier() && dbid == MyDatabaseId;
	return true;
}

/*
 * adopted: whether recovery here adopts the GID of transaction id, written
 * by another coordinator's transaction fxid (step 5): that coordinator
 * decided it, and this database was restored from its dump with the row.
 */
static bool
adopted(uint64 id, FullTransactionId fxid, const DtxDecider *decider)
{
	FullTransactionId row_xid;

	return decider->node[0] == '\0' && decision_exists(id, &row_xid) &&
		FullTransactionIdEquals(row_xid, fxid);
}

/*
 * dtx_parse_gid: whether gid is one of this coordinator's, its own or
 * adopted (step 5); sets its coordinator xid, distributed transaction id
 * and decider (node "" for the coordinator itself).
 */
bool
dtx_parse_gid(const char *gid, FullTransactionId *fxid, uint64 *id, DtxDecider *decider)
{
	bool		own;

	if (!parse_any_gid(gid, fxid, id, decider, &own))
		return false;
	return own || adopted(*id, *fxid, decider);
}

/* A question to a deciding node, and its answer (decider_ask). */
typedef struct DeciderQuestion
{
	const char *gid;			/* the prepared transaction asked about */
	const DtxDecider *decider;
	uint64		id;				/* the distributed transaction */
	DtxOutcome	outcome;
} DeciderQuestion;

/*
 * decider_query: run sql (one row, one boolean or text column) on conn; its
 * value, "" for NULL.
 */
static char *
decider_query(PGconn *conn, const char *node, const char *sql)
{
	char	   *value = remote_run_value(conn, node, sql, distsys_dtx_commit_timeout_ms);

	return value ? value : "";
}

/*
 * decider_status: pg_xact_status of xid on conn, or "future" for an xid the
 * node has not handed out (again) yet: after a crash it lost it.
 */
static const char *
decider_status(PGconn *conn, const char *node, uint64 xid)
{
	char	   *sql = psprintf("SELECT pg_catalog.pg_xact_status('" UINT64_FORMAT "'::pg_catalog.xid8)", xid);
	PGresult   *res;
	bool		timed_out;
	char	   *status;

	if (!remote_send(conn, sql))
		remote_report(ERROR, conn, NULL, node, sql);
	res = remote_wait_result(conn, distsys_dtx_commit_timeout_ms, REMOTE_INTERRUPTIBLE, &timed_out);
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		status = remote_result_value(res, node, sql);
		return status ? status : "";
	}
	if (remote_errcode(res) == ERRCODE_INVALID_PARAMETER_VALUE)
	{
		/* "transaction ID ... is in the future" */
		PQclear(res);
		return "future";
	}
	if (timed_out)
		remote_timeout_error(node, distsys_dtx_commit_timeout_ms, sql);	/* res is NULL */
	remote_report(ERROR, conn, res, node, sql);
	pg_unreachable();
}

/*
 * Connections to deciding nodes, kept for one recovery pass or one scan of
 * dtx_in_doubt: the prepared parts one node decides are asked about over
 * one connection, and a node that failed is not tried again until the next
 * pass (what it decides stays unknown), instead of costing a connection
 * attempt, and perhaps its timeout, per prepared transaction.
 */
typedef struct DeciderConn
{
	char		node[NAMEDATALEN];	/* hash key */
	PGconn	   *conn;			/* NULL once it failed in this pass */
	DtxServerId server;			/* the server conn reaches */
} DeciderConn;

static HTAB *decider_conns = NULL;

/*
 * deciders_forget: close the deciders' connections; at the start and the
 * end of each pass (the start also cleans up after a pass that failed).
 */
static void
deciders_forget(void)
{
	HASH_SEQ_STATUS seq;
	DeciderConn *dc;

	if (decider_conns == NULL)
		return;
	hash_seq_init(&seq, decider_conns);
	while ((dc = hash_seq_search(&seq)) != NULL)
		remote_disconnect(dc->conn);
	hash_destroy(decider_conns);
	decider_conns = NULL;
}

/*
 * server_of: the server conn reaches (node's); an ERROR if the role
 * recovery logs in as may not ask (pg_control_system()), since without it
 * recovery cannot tell whether this is the server that decided.
 */
static DtxServerId
server_of(PGconn *conn, const char *node)
{
	char	   *sql = "SELECT " DTX_SERVER_ID_PROBE;
	PGresult   *res = remote_run(conn, node, sql, distsys_dtx_commit_timeout_ms);
	DtxServerId server;

	remote_check_shape(res, node, sql, true, 2);
	server = dtx_server_id(conn, node, res, 0);
	if (server.sysid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("node \"%s\" does not let recovery read its system identifier", node),
				 errdetail("Recovery must know which server a deciding node's conninfo reaches."),
				 errhint("GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() to the role the node's conninfo logs in as.")));
	return server;
}

/*
 * decider_conn: this pass's connection to node, opened on first use; NULL
 * if node failed earlier in this pass.  An error propagates, and the node
 * counts as failed.
 */
static DeciderConn *
decider_conn(const char *node)
{
	char		key[NAMEDATALEN] = {0};
	DeciderConn *dc;
	bool		found;

	if (decider_conns == NULL)
		decider_conns = distsys_name_hash("distsys deciding nodes", sizeof(DeciderConn));
	strlcpy(key, node, sizeof(key));
	dc = hash_search(decider_conns, key, HASH_ENTER, &found);
	if (found)
		return dc->conn != NULL ? dc : NULL;
	dc->conn = NULL;
	/* dc->node, not node: the connection keeps it for its notices */
	dc->conn = remote_connect(dc->node, node_conninfo(node));
	PG_TRY();
	{
		refuse_standby(dc->conn, node);
		dc->server = server_of(dc->conn, node);
	}
	PG_CATCH();
	{
		remote_disconnect(dc->conn);
		dc->conn = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();
	return dc;
}

/*
 * moved_decider: whether q's GID names a deciding server that dc, the
 * connection its node's conninfo opens now, does not reach (a WARNING then
 * says so): the registry was restored or re-pointed since.  There, no mark
 * proves nothing, and the xid is another server's: only the operator, or
 * the registry put right, can resolve it.  A GID without a server (an
 * earlier version's) is taken to be where its node points.
 */
static bool
moved_decider(DeciderQuestion *q, DeciderConn *dc)
{
	const DtxServerId *want = &q->decider->server;

	if (want->sysid == 0 ||
		(want->sysid == dc->server.sysid && want->dboid == dc->server.dboid))
		return false;
	ereport(WARNING,
			(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
			 errmsg("node \"%s\" does not reach the server that decided prepared transaction \"%s\"",
					dc->node, q->gid),
			 errdetail("It was decided on system identifier " UINT64_FORMAT ", database oid %u; node \"%s\" now reaches system identifier " UINT64_FORMAT ", database oid %u, which has no mark of it. Recovery leaves it prepared.",
					   want->sysid, want->dboid, dc->node, dc->server.sysid, dc->server.dboid),
			 errhint("Point node \"%s\" back at the server that decided it (distsys.node_add with force => true) and recovery finishes it; "
					 "or, on that server, look for id " INT64_FORMAT " in distsys.dtx_marks: if it is there run COMMIT PREPARED, "
					 "if not and pg_xact_status('" UINT64_FORMAT "') there is not 'in progress' run ROLLBACK PREPARED, "
					 "where distsys.dtx_in_doubt shows it prepared.",
					 dc->node, (int64) q->id, q->decider->xid)));
	return true;
}

/*
 * decider_ask: the outcome of q->decider's transaction (step 0): its mark,
 * else whether that transaction may still commit.  An error propagates;
 * a node that failed earlier in this pass leaves the outcome unknown.
 */
static void
decider_ask(void *arg)
{
	DeciderQuestion *q = arg;
	const char *node = q->decider->node;
	DeciderConn *dc = decider_conn(node);

	if (dc == NULL)
		return;
	PG_TRY();
	{
		PGconn	   *conn = dc->conn;
		char	   *mark = psprintf("SELECT EXISTS (SELECT FROM distsys.dtx_marks"
									" WHERE id OPERATOR(pg_catalog.=) " INT64_FORMAT "::pg_catalog.int8 AND %s)",
									(int64) q->id, dtx_marks_ours());

		/* a mark is the agent's commit, even in a copy of its node (a dump) */
		if (strcmp(decider_query(conn, node, mark), "t") == 0)
			q->outcome = DTX_OUTCOME_COMMIT;
		else if (moved_decider(q, dc))
			q->outcome = DTX_OUTCOME_UNKNOWN;
		else if (strcmp(decider_status(conn, node, q->decider->xid), "in progress") == 0)
			q->outcome = DTX_OUTCOME_RUNNING;
		else
		{
			/* it ended: committed since the first look, or never will */
			q->outcome = strcmp(decider_query(conn, node, mark), "t") == 0 ?
				DTX_OUTCOME_COMMIT : DTX_OUTCOME_ABORT;
		}
	}
	PG_CATCH();
	{
		/* failed, or left in the middle of a statement: not asked again */
		remote_disconnect(dc->conn);
		dc->conn = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * dtx_outcome: what recovery does with the prepared transaction gid
 * (steps 1-3 above, step 0 when a node decided it, step 5 when another
 * coordinator wrote it); sets *fxid to its coordinator xid and *decider to
 * its deciding node.
 */
DtxOutcome
dtx_outcome(const char *gid, FullTransactionId *fxid, DtxDecider *decider)
{
	uint64		id;
	bool		own;
	DeciderQuestion q;

	if (!parse_any_gid(gid, fxid, &id, decider, &own))
		return DTX_OUTCOME_FOREIGN;
	if (!own)
		return adopted(id, *fxid, decider) ? DTX_OUTCOME_COMMIT : DTX_OUTCOME_FOREIGN;
	if (decider->node[0] != '\0')
	{
		if (dtx_committing_now(id))
			return DTX_OUTCOME_RUNNING;
		q.gid = gid;
		q.decider = decider;
		q.id = id;
		q.outcome = DTX_OUTCOME_UNKNOWN;
		(void) run_guarded(decider_ask, &q, decider->node, WARNING);
		return q.outcome;
	}
	/* step 1 before step 2: the backend's own commit round is not raced */
	if (dtx_committing_now(id))
		return DTX_OUTCOME_RUNNING;
	return decision_exists(id, NULL) ? DTX_OUTCOME_COMMIT : DTX_OUTCOME_ABORT;
}

/*
 * refuse_in_recovery: recovery and its view need a server that accepts
 * writes (see the rules above).
 */
static void
refuse_in_recovery(const char *what)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("%s cannot run on a standby", what),
				 errdetail("A standby cannot see which distributed transactions its primary is committing."),
				 errhint("Run it on the primary, or on this server once it is promoted.")));
}

/*
 * dtx_outcome_name: outcome as dtx_in_doubt shows it.
 */
const char *
dtx_outcome_name(DtxOutcome outcome)
{
	switch (outcome)
	{
		case DTX_OUTCOME_COMMIT:
			return "committed";
		case DTX_OUTCOME_ABORT:
			return "aborted";
		case DTX_OUTCOME_RUNNING:
			return "in progress";
		case DTX_OUTCOME_UNKNOWN:
			return "unknown";
		case DTX_OUTCOME_FOREIGN:
			break;
	}
	return "not ours";
}

/*
 * prepared_list_sql: the query listing the prepared transactions of distsys
 * coordinators on a node (with when they were prepared): this one's, and
 * others' it may adopt (step 5); the callers skip the rest.
 */
static char *
prepared_list_sql(void)
{
	return psprintf("SELECT gid, prepared FROM pg_catalog.pg_prepared_xacts"
					" WHERE database OPERATOR(pg_catalog.=) pg_catalog.current_database()"
					" AND gid OPERATOR(pg_catalog.~~) '%s:%%'"
					" ORDER BY prepared",
					DTX_GID_PREFIX);
}

/*
 * resolve: COMMIT or ROLLBACK PREPARED gid on conn; true if it is resolved
 * (also when someone else resolved it first), a WARNING otherwise.
 */
static bool
resolve(PGconn *conn, const char *node, const char *gid, bool commit)
{
	char	   *sql = psprintf("%s PREPARED '%s'", commit ? "COMMIT" : "ROLLBACK", gid);
	PGresult   *res;
	bool		timed_out;
	int			code;

	if (!remote_send(conn, sql))
	{
		remote_report(WARNING, conn, NULL, node, sql);
		return false;
	}
	res = remote_wait_result(conn, distsys_dtx_commit_timeout_ms, REMOTE_INTERRUPTIBLE, &timed_out);
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		PQclear(res);
		return true;
	}
	code = remote_errcode(res);
	if (code == ERRCODE_UNDEFINED_OBJECT)
	{
		PQclear(res);
		return true;
	}
	if (code == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
	{
		/* busy: its coordinator is finishing it right now; look again later */
		PQclear(res);
		return false;
	}
	if (timed_out)
		remote_timeout_error(node, distsys_dtx_commit_timeout_ms, sql);
	remote_report(WARNING, conn, res, node, sql);
	return false;
}

/*
 * refuse_standby: an ERROR if conn reached a server in recovery (a
 * multi-host conninfo may land on a standby): a standby lists no prepared
 * transactions and may lag, so recovery must not judge by what it says.
 */
static void
refuse_standby(PGconn *conn, const char *node)
{
	char	   *standby = remote_run_value(conn, node, "SELECT pg_catalog.pg_is_in_recovery()",
											   distsys_dtx_commit_timeout_ms);

	if (standby != NULL && strcmp(standby, "t") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("node \"%s\" reached a server in recovery", node),
				 errdetail("A standby does not show prepared transactions and may lag behind its primary."),
				 errhint("Point the node's conninfo at its primary (target_session_attrs=read-write).")));
}

/*
 * visit_marks: dtx_marks_visit on pass->node, over pass->conn.
 */
static void
visit_marks(void *arg)
{
	NodePass   *pass = arg;

	dtx_marks_visit(pass->node, pass->conn);
}

/*
 * visit_node: list this coordinator's prepared transactions on pass->node
 * and hand each to pass->each.  Errors (the node is unreachable) propagate;
 * the connection is closed either way.
 */
static void
visit_node(void *arg)
{
	NodePass   *pass = arg;
	PGconn	   *conn = remote_connect(pass->node, node_conninfo(pass->node));
	PGresult   *volatile res = NULL;

	pass->conn = conn;
	PG_TRY();
	{
		char	   *sql = prepared_list_sql();
		PGresult   *listing;

		refuse_standby(conn, pass->node);
		listing = remote_run(conn, pass->node, sql, distsys_dtx_commit_timeout_ms);
		remote_check_shape(listing, pass->node, sql, false, 2);	/* each() reads both */
		res = listing;
		pass->listed = true;
		for (int i = 0; i < PQntuples(res); i++)
			pass->each(pass, conn, res, i);
		PQclear(res);
		res = NULL;
		/* a failure there does not undo this node's listing */
		if (pass->marks)
			(void) run_guarded(visit_marks, pass, pass->node, WARNING);
	}
	PG_FINALLY();
	{
		PQclear(res);			/* libpq's memory: an error in each() leaves it */
		remote_disconnect(conn);
		pass->conn = NULL;
	}
	PG_END_TRY();
}

/*
 * recover_row: resolve one listed prepared transaction, counting it in
 * pass->resolved, or note it in pass->left; another coordinator's is
 * skipped.
 */
static void
recover_row(NodePass *pass, PGconn *conn, PGresult *res, int row)
{
	char	   *gid = PQgetvalue(res, row, 0);
	FullTransactionId fxid;
	DtxDecider	decider;
	DtxOutcome	outcome = dtx_outcome(gid, &fxid, &decider);

	if (outcome == DTX_OUTCOME_FOREIGN)
		return;
	if ((outcome == DTX_OUTCOME_COMMIT || outcome == DTX_OUTCOME_ABORT) &&
		resolve(conn, pass->node, gid, outcome == DTX_OUTCOME_COMMIT))
		pass->resolved++;
	else
		pass->left = lappend(pass->left, pstrdup(gid));
}

/*
 * run_guarded: fn(arg) in a subtransaction, so a failure on one node (it is
 * unreachable, or answers with an error) is reported at elevel and the
 * caller goes on with the other nodes; false if it failed.  This backend's
 * own cancel, statement_timeout or lock_timeout is raised again instead.
 */
static bool
run_guarded(void (*fn) (void *), void *arg, const char *node, int elevel)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *err;

		MemoryContextSwitchTo(cxt);
		err = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		/*
		 * This backend's own cancel, statement_timeout or lock_timeout
		 * stops the pass; a node's (its 57014 or 55P03, or its time limit
		 * here) is that node's failure, like any other.  The codes are the
		 * same: what tells them apart is that remote.c raised the node's.
		 */
		if ((err->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			 err->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE) &&
			!remote_error_from_node(err))
			ReThrowError(err);
		ereport(elevel,
				(errcode(err->sqlerrcode),
				 errmsg("could not reach node \"%s\" for distributed transaction recovery: %s",
						node, err->message),
				 errhint("Recovery retries it; distsys.dtx_in_doubt shows what is left.")));
		FreeErrorData(err);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

/*
 * The worker retries a node that failed after 1 s, then twice as long each
 * time, up to a minute; one success resets it.
 */
typedef struct Backoff
{
	char		node[NAMEDATALEN];
	TimestampTz next_try;
	int			delay_ms;
} Backoff;

static HTAB *backoffs = NULL;

/*
 * backoff_of: node's backoff entry, made if new (try at once).
 */
static Backoff *
backoff_of(const char *node)
{
	char		key[NAMEDATALEN] = {0};
	bool		found;
	Backoff    *b;

	if (backoffs == NULL)
		backoffs = distsys_name_hash("distsys dtx recovery backoff", sizeof(Backoff));
	strlcpy(key, node, sizeof(key));
	b = hash_search(backoffs, key, HASH_ENTER, &found);
	if (!found)
		b->next_try = b->delay_ms = 0;
	return b;
}

/*
 * backoff_note: after a visit of node: double its delay if it failed,
 * reset it otherwise.
 */
static void
backoff_note(const char *node, bool failed)
{
	Backoff    *b = backoff_of(node);

	b->delay_ms = failed ? Min(Max(b->delay_ms * 2, 1000), 60000) : 0;
	b->next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), b->delay_ms);
}

/*
 * read_records: every decision record, as DecisionRecords (step 4).
 */
static List *
read_records(void)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *records = NIL;
	uint64		i,
				n;

	SPI_connect();
	n = distsys_spi_run(&records_plan,
						"SELECT id, xid, participants FROM distsys.dtx_decisions",
						0, NULL, NULL, NULL, false);
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		arr = SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull);
		Datum	   *names;
		int			nnames,
					k;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		DecisionRecord *r = palloc0(sizeof(DecisionRecord));

		r->id = (uint64) DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		r->fxid = DatumGetFullTransactionId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
						  &names, NULL, &nnames);
		for (k = 0; k < nnames; k++)
			r->participants = lappend(r->participants, TextDatumGetCString(names[k]));
		records = lappend(records, r);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return records;
}

/*
 * record_finished: whether no participant of r can still be prepared:
 * each was listed this pass without a GID of r's id, this coordinator's or
 * adopted (an unregistered node counts as finished: it was removed with
 * force).
 */
static bool
record_finished(DecisionRecord *r, NodePass *passes, int npasses)
{
	ListCell   *lc;

	foreach(lc, r->participants)
	{
		int			i;

		for (i = 0; i < npasses; i++)
		{
			ListCell   *g;

			if (strcmp(passes[i].node, lfirst(lc)) != 0)
				continue;
			if (!passes[i].listed)
				return false;
			foreach(g, passes[i].left)
			{
				FullTransactionId fxid;
				uint64		id;
				DtxDecider	decider;
				bool		own;

				/* only this coordinator's and adopted GIDs are left */
				if (parse_any_gid(lfirst(g), &fxid, &id, &decider, &own) && id == r->id)
					return false;
			}
		}
	}
	return true;
}

/*
 * forget_record: delete the decision row of transaction id (step 4).
 */
static void
forget_record(uint64 id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum((int64) id)};

	SPI_connect();
	distsys_spi_run(&forget_plan, "DELETE FROM distsys.dtx_decisions WHERE id = $1",
					1, types, values, NULL, false);
	SPI_finish();
}

/*
 * forget_marks: tell dtx_marks.c what this pass found still prepared.
 */
static void
forget_marks(NodePass *passes, int npasses)
{
	List	   *still_prepared = NIL;
	bool		all_listed = true;
	int			i;

	for (i = 0; i < npasses; i++)
	{
		all_listed = all_listed && passes[i].listed;
		still_prepared = list_concat(still_prepared, passes[i].left);
	}
	dtx_marks_end_pass(still_prepared, all_listed);
}

/*
 * recover_pass: the body of dtx_recover_all.
 */
static int
recover_pass(int elevel, bool backoff)
{
	List	   *records;
	List	   *names;
	NodePass   *passes;
	int			npasses = 0;
	int			resolved = 0;
	ListCell   *lc;

	refuse_in_recovery("distributed transaction recovery");
	records = read_records();
	/*
	 * every node registered now, not as of this transaction's snapshot,
	 * which under REPEATABLE READ could miss a node added since
	 */
	PushActiveSnapshot(GetLatestSnapshot());
	names = node_names();
	PopActiveSnapshot();
	passes = palloc0(sizeof(NodePass) * (list_length(names) + 1));

	foreach(lc, names)
	{
		NodePass   *pass = &passes[npasses++];
		bool		ok;

		pass->node = lfirst(lc);
		pass->each = recover_row;
		pass->marks = true;
		if (backoff && backoff_of(pass->node)->next_try > GetCurrentTimestamp())
			continue;
		ok = run_guarded(visit_node, pass, pass->node, elevel);
		if (!ok)
			pass->listed = false;
		if (backoff)
			backoff_note(pass->node, !ok);
		resolved += pass->resolved;
	}
	foreach(lc, records)
	{
		DecisionRecord *r = lfirst(lc);

		if (record_finished(r, passes, npasses))
			forget_record(r->id);
	}
	forget_marks(passes, npasses);
	return resolved;
}

/*
 * dtx_recover_all: one recovery pass over every registered node; returns
 * how many prepared transactions it resolved.  Failed nodes are reported
 * at elevel; with backoff (the worker), they are retried with backoff.
 */
int
dtx_recover_all(int elevel, bool backoff)
{
	int			resolved;

	deciders_forget();
	PG_TRY();
	{
		resolved = recover_pass(elevel, backoff);
	}
	PG_FINALLY();
	{
		deciders_forget();
	}
	PG_END_TRY();
	return resolved;
}

PG_FUNCTION_INFO_V1(dtx_recover);

/*
 * dtx_recover(): one recovery pass now; how many prepared transactions it
 * committed or rolled back.  Unreachable nodes are WARNINGs.
 */
Datum
dtx_recover(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(dtx_recover_all(WARNING, false));
}

/*
 * in_doubt_row: one row of dtx_in_doubt, for a listed prepared transaction.
 */
static void
in_doubt_row(NodePass *pass, PGconn *conn, PGresult *res, int row)
{
	ReturnSetInfo *rsinfo = pass->rsinfo;
	Datum		values[6];
	bool		nulls[6] = {false};
	FullTransactionId fxid = InvalidFullTransactionId;
	DtxDecider	decider;
	DtxOutcome	outcome = dtx_outcome(PQgetvalue(res, row, 0), &fxid, &decider);

	if (outcome == DTX_OUTCOME_FOREIGN)
		return;					/* another coordinator's */
	values[0] = CStringGetTextDatum(pass->node);
	values[1] = CStringGetTextDatum(PQgetvalue(res, row, 0));
	values[2] = DirectFunctionCall3(timestamptz_in, CStringGetDatum(PQgetvalue(res, row, 1)),
									ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	values[3] = FullTransactionIdGetDatum(fxid);
	nulls[3] = !FullTransactionIdIsValid(fxid);
	values[4] = CStringGetTextDatum(dtx_outcome_name(outcome));
	values[5] = CStringGetTextDatum(decider.node);
	nulls[5] = decider.node[0] == '\0';
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(dtx_in_doubt_list);

/*
 * dtx_in_doubt_list(): this coordinator's prepared transactions on every
 * registered node, with the outcome recovery will give each.  An
 * unreachable node is a WARNING.
 */
Datum
dtx_in_doubt_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	refuse_in_recovery("distsys.dtx_in_doubt");
	InitMaterializedSRF(fcinfo, 0);
	deciders_forget();
	PG_TRY();
	{
		foreach(lc, node_names())
		{
			NodePass	pass = {0};

			pass.node = lfirst(lc);
			pass.rsinfo = rsinfo;
			pass.each = in_doubt_row;
			(void) run_guarded(visit_node, &pass, pass.node, WARNING);
		}
	}
	PG_FINALLY();
	{
		deciders_forget();
	}
	PG_END_TRY();
	return (Datum) 0;
}

/*
 * in_use_row: note whether a listed prepared transaction still needs
 * pass->decider: it is prepared there, or that node decides it.
 */
static void
in_use_row(NodePass *pass, PGconn *conn, PGresult *res, int row)
{
	FullTransactionId fxid;
	uint64		id;
	DtxDecider	decider;

	if (dtx_parse_gid(PQgetvalue(res, row, 0), &fxid, &id, &decider) &&
		(strcmp(pass->node, pass->decider) == 0 || strcmp(decider.node, pass->decider) == 0))
		pass->needed = true;
}

/*
 * dtx_node_in_use: whether recovery still needs node: a prepared
 * transaction of this coordinator is on it, or is decided by it on another
 * node.  Every registered node is asked; an unreachable one is an ERROR,
 * since then nobody can tell.
 */
bool
dtx_node_in_use(const char *node)
{
	ListCell   *lc;

	foreach(lc, node_names())
	{
		NodePass	pass = {0};

		pass.node = lfirst(lc);
		pass.decider = node;
		pass.each = in_use_row;
		visit_node(&pass);
		if (pass.needed)
			return true;
	}
	return false;
}
