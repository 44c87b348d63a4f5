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

static void parse_pairs(const char *name, const char *text, RaftPeers *out,
						const char *detail, const char *hint);
static void check_uris(const RaftPeers *peers, const char *name);
static void check_membership(const RaftPeers *peers);
static void check_routes(void);

/*
 * raft_settings_check: FATAL unless distsys.node_id, distsys.peers,
 * distsys.raft_routes and the timing settings make a valid configuration.  Nothing is checked while
 * Raft is off (node_id 0).
 */
void
raft_settings_check(void)
{
	RaftPeers	peers;

	if (distsys_node_id == 0)
		return;
	raft_settings_peers(&peers);
	check_uris(&peers, "distsys.peers");
	check_membership(&peers);
	check_routes();
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
	parse_pairs("distsys.peers", distsys_peers, out,
				"distsys.peers lists the Raft cluster's members as space-separated id=URI pairs.",
				"Write it as '1=postgresql://host1:5432/postgres 2=postgresql://host2:5432/postgres ...', this node included.");
}

/*
 * raft_settings_routes: distsys.raft_routes as a sorted list, parsed as
 * distsys.peers is; FATAL if it is malformed.  The transport dials a
 * listed member at its route instead of at the URI the cluster knows.
 */
void
raft_settings_routes(RaftPeers *out)
{
	parse_pairs("distsys.raft_routes", distsys_raft_routes, out,
				"distsys.raft_routes lists, as space-separated id=URI pairs, the URIs this node dials for other members instead of those in distsys.peers or raft_nodes.",
				"Write it as '2=postgresql://host2-as-reached-from-here:5432/postgres ...', or leave it empty.");
}

/*
 * parse_pairs: setting name's value text into *out; FATAL with detail and
 * hint if it is malformed.
 */
static void
parse_pairs(const char *name, const char *text, RaftPeers *out,
			const char *detail, const char *hint)
{
	char		err[256];

	if (raft_peers_parse(text, out, err, sizeof(err)) != 0)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"%s\": %s", name, err),
				 errdetail("%s", detail),
				 errhint("%s", hint)));
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
 * check_uris: every URI of setting name is one libpq accepts.
 */
static void
check_uris(const RaftPeers *peers, const char *name)
{
	for (int i = 0; i < peers->n; i++)
	{
		char	   *problem = raft_uri_problem(peers->peer[i].uri);

		if (problem == NULL)
			continue;
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid URI for node %llu in %s: %s",
						(unsigned long long) peers->peer[i].id, name, problem),
				 errhint("Each entry is id=postgresql://host:port/database, as libpq accepts it.")));
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

/*
 * check_routes: distsys.raft_routes parses, libpq accepts its URIs, and it
 * has no route for this node: a node never dials itself, and its own URI
 * is the one in distsys.peers (raft_self.c checks that one), so such a
 * route could only be a mistake, most likely a copy of another node's
 * settings.  Routes for ids that are not members are kept: they are used
 * if raft_add_node adds that id.
 */
static void
check_routes(void)
{
	RaftPeers	routes;

	raft_settings_routes(&routes);
	check_uris(&routes, "distsys.raft_routes");
	if (raft_peers_find(&routes, (uint64) distsys_node_id) != NULL)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("distsys.raft_routes has a route for this node's own id %d", distsys_node_id),
				 errdetail("A node never dials itself; the other members reach it at its URI in distsys.peers or raft_nodes."),
				 errhint("Remove the entry for %d from distsys.raft_routes; it belongs in the settings of the nodes that dial this one.",
						 distsys_node_id)));
}
