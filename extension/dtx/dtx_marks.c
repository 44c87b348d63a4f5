/*-------------------------------------------------------------------------
 *
 * dtx_marks.c
 *	  Forgetting the marks last agents keep (distsys.dtx_marks on a node).
 *
 * A last agent's commit inserts a mark of the distributed transaction's id
 * on that node (dtx_xact.c); recovery commits the other nodes' prepared
 * parts when it finds the mark (dtx_recover.c).  A mark is needed until no
 * node has a prepared part of its transaction any more.  All of them were
 * prepared before the mark was committed, so once a mark is visible, a
 * listing of every node made afterwards that shows none of its GIDs proves
 * it is no longer needed.  Recovery passes give that order without extra
 * round trips: the marks a pass reads are judged against the listings of
 * the next pass, and deleted during the pass after that, when recovery
 * visits their node anyway.
 *
 * The lists live in the backend that runs the passes (the recovery worker,
 * or a session calling dtx_recover()); a new backend starts afresh, which
 * only delays deletions.
 *
 * Only the marks of this coordinator that the role recovery logs in as
 * wrote are read and deleted (dtx_marks_ours); the node's row security
 * keeps other roles from deleting them, or writing marks in that role's
 * name.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "dtx.h"
#include "remote.h"

/* One mark on one node. */
typedef struct DtxMark
{
	char		node[NAMEDATALEN];
	uint64		id;
} DtxMark;

static List *seen_before = NIL;	/* marks the previous pass read */
static List *seen_now = NIL;	/* marks this pass has read so far */
static List *to_delete = NIL;	/* marks found unneeded at the end of the last pass */

/*
 * dtx_marks_ours: the condition that selects this coordinator's marks in
 * a node's distsys.dtx_marks: those naming it that the role recovery logs
 * in as wrote.  The last agent's connection logs in with the same conninfo
 * and writes its mark as that role (DTX_RESET_IDENTITY); a mark another
 * role wrote, naming this coordinator, is not believed.  Recovery's
 * statements on a node run with whatever search_path its role has, so
 * every operator is qualified: an "=" of the role's own must not decide
 * which marks exist.
 */
char *
dtx_marks_ours(void)
{
	return psprintf("coordinator OPERATOR(pg_catalog.=) '%s'"
					" AND writer OPERATOR(pg_catalog.=) pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER))",
					dtx_coordinator_name());
}

/*
 * marks_where: the WHERE clause of this coordinator's marks on node, limited
 * to the ids in to_delete when deleting; NULL if there are none of those.
 */
static char *
marks_where(const char *node, bool deleting)
{
	StringInfoData buf;
	ListCell   *lc;
	int			n = 0;

	initStringInfo(&buf);
	appendStringInfo(&buf, " WHERE %s", dtx_marks_ours());
	if (!deleting)
		return buf.data;
	appendStringInfoString(&buf, " AND id OPERATOR(pg_catalog.=) ANY ('{");
	foreach(lc, to_delete)
	{
		DtxMark    *m = lfirst(lc);

		if (strcmp(m->node, node) != 0)
			continue;
		appendStringInfo(&buf, "%s" INT64_FORMAT, n++ > 0 ? "," : "", (int64) m->id);
	}
	appendStringInfoString(&buf, "}'::pg_catalog.int8[])");
	return n > 0 ? buf.data : NULL;
}

/*
 * remember_marks: add the ids listed in res, marks of node, to seen_now.
 */
static void
remember_marks(const char *node, PGresult *res)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	for (int i = 0; i < PQntuples(res); i++)
	{
		DtxMark    *m = palloc0(sizeof(DtxMark));

		strlcpy(m->node, node, sizeof(m->node));
		m->id = (uint64) strtoi64(PQgetvalue(res, i, 0), NULL, 10);
		seen_now = lappend(seen_now, m);
	}
	MemoryContextSwitchTo(old);
}

/*
 * dtx_marks_visit: on node (conn open), delete the marks found unneeded and
 * read the others for the next pass.  A node without distsys has none.
 */
void
dtx_marks_visit(const char *node, PGconn *conn)
{
	static const char *exists_sql =
		"SELECT pg_catalog.to_regclass('distsys.dtx_marks') IS NOT NULL";
	PGresult   *res;
	char	   *where;
	char	   *sql;
	char	   *has_marks;

	has_marks = remote_run_value(conn, node, exists_sql, distsys_dtx_commit_timeout_ms);
	if (has_marks == NULL || strcmp(has_marks, "t") != 0)
		return;
	where = marks_where(node, true);
	if (where != NULL)
		PQclear(remote_run(conn, node, psprintf("DELETE FROM distsys.dtx_marks%s", where),
						   distsys_dtx_commit_timeout_ms));
	sql = psprintf("SELECT id FROM distsys.dtx_marks%s", marks_where(node, false));
	res = remote_run(conn, node, sql, distsys_dtx_commit_timeout_ms);
	remote_check_shape(res, node, sql, false, 1);
	/* libpq's memory: an ERROR (out of memory) must free it too */
	PG_TRY();
	{
		remember_marks(node, res);
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
}

/*
 * dtx_marks_end_pass: after a pass that listed every node (all_listed) and
 * found the GIDs in still_prepared (a List of char *), the marks the
 * previous pass read whose transaction has no GID left are unneeded.
 */
void
dtx_marks_end_pass(List *still_prepared, bool all_listed)
{
	uint64	   *ids = palloc(sizeof(uint64) * (list_length(still_prepared) + 1));
	int			nids = 0;
	MemoryContext old;
	ListCell   *lc;

	/* the transaction ids still prepared, each GID parsed once */
	foreach(lc, still_prepared)
	{
		FullTransactionId fxid;
		DtxDecider	decider;

		if (dtx_parse_gid(lfirst(lc), &fxid, &ids[nids], &decider))
			nids++;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	list_free_deep(to_delete);
	to_delete = NIL;
	foreach(lc, all_listed ? seen_before : NIL)
	{
		DtxMark    *m = lfirst(lc);
		bool		needed = false;

		for (int i = 0; i < nids && !needed; i++)
			needed = ids[i] == m->id;
		if (!needed)
		{
			DtxMark    *copy = palloc(sizeof(DtxMark));

			*copy = *m;
			to_delete = lappend(to_delete, copy);
		}
	}
	list_free_deep(seen_before);
	seen_before = seen_now;
	seen_now = NIL;
	MemoryContextSwitchTo(old);
}
