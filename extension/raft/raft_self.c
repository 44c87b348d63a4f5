/*-------------------------------------------------------------------------
 *
 * raft_self.c
 *	  Before it runs Raft, a node checks that its own URI in distsys.peers
 *	  reaches this very server.
 *
 * This is what catches a complete copy of a member's data directory (a
 * base backup, a file-system or VM snapshot) started elsewhere under the
 * same settings: the copy's files, node id, cluster id and system
 * identifier all match, but the URI its settings give for its node id
 * leads to the original server.  The worker connects there (remote.c, as
 * the superuser it runs as) and compares the server it reached with
 * itself: the system identifier and the postmaster's start time, which
 * together name one running server (a copy shares the first, never the
 * second).  A mismatch is a refusal (raft_identity_refused); a server
 * that cannot be reached is an ordinary error, after which the worker is
 * restarted and tries again, because peers must reach this node by that
 * URI anyway.
 *
 * Not caught: a URI that leads to the copy itself from the copy's host
 * (a loopback address, or a host name that resolves differently there).
 * Members' URIs must name each server as every member reaches it; the
 * loopback addresses of the tests are only fine on one machine.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "remote.h"
#include "raftnode.h"

/* the server reached: "<system identifier> <start time in µs since 1970>" */
#define SELF_SQL \
	"SELECT s.system_identifier::text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||)" \
	" ((EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time())" \
	" OPERATOR(pg_catalog.*) 1000000)::bigint)::text FROM pg_catalog.pg_control_system() s"

/*
 * this_server: this server's answer to SELF_SQL.
 */
static char *
this_server(void)
{
	int64		unix_us = PgStartTime +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)) * SECS_PER_DAY * USECS_PER_SEC;

	return psprintf(UINT64_FORMAT " " INT64_FORMAT, GetSystemIdentifier(), unix_us);
}

/*
 * server_at: the answer to SELF_SQL of the server uri reaches.
 */
static char *
server_at(const char *node, const char *uri)
{
	PGconn	   *conn = remote_connect(node, uri);
	char	   *answer = NULL;

	PG_TRY();
	{
		answer = remote_run_value(conn, node, SELF_SQL, distsys_raft_request_timeout_ms);
	}
	PG_FINALLY();
	{
		remote_disconnect(conn);
	}
	PG_END_TRY();
	return answer;
}

/* self_check_context: say, in an error of the check, what was being checked */
static void
self_check_context(void *arg)
{
	errcontext("checking that the URI of node %s in distsys.peers reaches this server",
			   (const char *) arg);
}

/*
 * raft_self_check: refuse unless this node's URI reaches this server (see
 * the banner).  Runs in its own transaction (remote_connect checks the
 * role's privileges).
 */
void
raft_self_check(const RaftPeers *peers)
{
	const RaftPeer *self = raft_peers_find(peers, (uint64) distsys_node_id);
	char	   *node = psprintf("%d", distsys_node_id);
	char	   *here = this_server();
	MemoryContext outer = CurrentMemoryContext;
	ErrorContextCallback context;
	char	   *there;

	/* a joining node's URI is not in distsys.peers: raft_add_node gives it */
	if (self == NULL)
		return;
	context.callback = self_check_context;
	context.arg = node;
	context.previous = error_context_stack;
	error_context_stack = &context;
	StartTransactionCommand();
	there = MemoryContextStrdup(outer, server_at(node, self->uri));
	CommitTransactionCommand();
	error_context_stack = context.previous;
	if (strcmp(here, there) == 0)
		return;
	raft_identity_refused = true;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("distsys raft: refusing to run Raft: the URI of node %d in distsys.peers reaches another server",
					distsys_node_id),
			 errdetail("That server is \"%s\" (system identifier and start time), this one is \"%s\": this data directory may be a copy of node %d's, which must never vote as a second node %d.",
					   there, here, distsys_node_id, distsys_node_id),
			 errhint("A copied data directory joins the cluster as a new node with a new id and an empty pg_distsys/raft directory; otherwise correct this node's URI in distsys.peers.")));
}
