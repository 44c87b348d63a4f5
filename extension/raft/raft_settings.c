/*-------------------------------------------------------------------------
 *
 * raft_settings.c
 *	  Validate Raft's settings together when the postmaster starts.
 *
 * The settings are defined in common/guc.c.  They are checked here, from
 * _PG_init in the postmaster, and not in GUC check hooks: a check hook
 * that rejects a preloaded library's value from postgresql.conf only makes
 * PostgreSQL log a WARNING and keep the default (an empty member list,
 * hiding the cause behind a second error), and the rules that matter span
 * settings (this node among the members, heartbeat below the election
 * timeout), which a hook of one setting cannot see in a defined order.
 * Each problem is one FATAL at start that names it and says what to fix,
 * so a misconfigured member never joins a cluster at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq-fe.h"

#include "raftnode.h"

static void check_uris(const RaftPeers *peers);
static void check_membership(const RaftPeers *peers);

/*
 * raft_settings_check: FATAL unless distsys.node_id, distsys.peers and the
 * timing settings make a valid configuration.  Nothing is checked while
 * Raft is off (node_id 0).
 */
void
raft_settings_check(void)
{
	RaftPeers	peers;

	if (distsys_node_id == 0)
		return;
	raft_settings_peers(&peers);
	check_uris(&peers);
	check_membership(&peers);
	if (distsys_raft_heartbeat_interval_ms >= distsys_raft_election_timeout_ms)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("distsys.raft_heartbeat_interval (%d ms) must be smaller than distsys.raft_election_timeout (%d ms)",
						distsys_raft_heartbeat_interval_ms, distsys_raft_election_timeout_ms),
				 errdetail("Followers would start elections between a healthy leader's heartbeats."),
				 errhint("Make the heartbeat interval a fraction of the election timeout, such as a third.")));
}

/*
 * raft_settings_peers: distsys.peers as a sorted list; FATAL if it is
 * malformed (once the postmaster started, it has passed already).
 */
void
raft_settings_peers(RaftPeers *out)
{
	char		err[256];

	if (raft_peers_parse(distsys_peers, out, err, sizeof(err)) != 0)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"distsys.peers\": %s", err),
				 errdetail("distsys.peers lists the Raft cluster's members as space-separated id=URI pairs."),
				 errhint("Write it as '1=postgresql://host1:5432/postgres 2=postgresql://host2:5432/postgres ...', this node included.")));
}

/*
 * raft_uri_problem: NULL if libpq accepts uri, else why not (palloc'd).
 * distsys.peers and raft_add_node check members' URIs with it, so that a
 * typo is refused where it is written, not at a connection much later.
 */
char *
raft_uri_problem(const char *uri)
{
	char	   *msg = NULL;
	char	   *problem;
	PQconninfoOption *opts = PQconninfoParse(uri, &msg);

	if (opts != NULL)
	{
		PQconninfoFree(opts);
		return NULL;
	}
	problem = pstrdup(msg ? pchomp(msg) : "out of memory");
	PQfreemem(msg);
	return problem;
}

/*
 * check_uris: every member's URI is one libpq accepts.
 */
static void
check_uris(const RaftPeers *peers)
{
	for (int i = 0; i < peers->n; i++)
	{
		char	   *problem = raft_uri_problem(peers->peer[i].uri);

		if (problem == NULL)
			continue;
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid URI for node %llu in distsys.peers: %s",
						(unsigned long long) peers->peer[i].id, problem),
				 errhint("Each member is id=postgresql://host:port/database, as libpq accepts it.")));
	}
}

/*
 * check_membership: this node must be one of a non-empty member list.
 */
static void
check_membership(const RaftPeers *peers)
{
	if (peers->n == 0)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("distsys.node_id is %d but distsys.peers is empty", distsys_node_id),
				 errdetail("A Raft node needs the list of the cluster's initial members, itself included."),
				 errhint("Set distsys.peers, or set distsys.node_id to 0 to turn Raft off.")));
	if (distsys_raft_join)
	{
		if (raft_peers_find(peers, (uint64) distsys_node_id) != NULL)
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("distsys.raft_join is on but distsys.node_id %d is among the founding members in distsys.peers",
							distsys_node_id),
					 errhint("A joining node needs an id no member has; distsys.peers stays the founding list, the same text as on the members.")));
		return;
	}
	if (raft_peers_find(peers, (uint64) distsys_node_id) == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("distsys.node_id %d is not among the members in distsys.peers", distsys_node_id),
				 errdetail("distsys.peers lists every initial member, this node included."),
				 errhint("Add %d=URI of this server to distsys.peers, correct distsys.node_id, or set distsys.raft_join to join a running cluster.",
						 distsys_node_id)));
}
