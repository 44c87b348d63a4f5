/*-------------------------------------------------------------------------
 *
 * raft_members.c
 *	  Membership among nodes: the worker keeps its transport and inbox in
 *	  step with the configuration in the log, promotes caught-up learners,
 *	  and publishes the members for the raft_members view; the SQL calls
 *	  raft_add_node, raft_remove_node and raft_transfer_leadership.
 *
 * The core knows members by id only.  A node's URI travels through the
 * log too: raft_add_node first writes a MEMBER command (id, URI), which
 * every node applies into distsys.raft_nodes, then proposes the node as a
 * learner.  So every node that applies the change already knows where the
 * new node is; the founding members' URIs come from distsys.peers.  A
 * configuration takes effect when its entry is appended (the core's
 * rule), and raft_members_sync follows raft_conf() after every loop: a
 * new member gets a connection and may deliver batches here, a removed
 * one loses both.
 *
 * A learner is promoted by the leader's worker once its match index has
 * reached the leader's commit index (the core refuses a promotion of a
 * learner that is behind); raft_add_node returns when the learner is in,
 * and raft_members shows the promotion.
 *
 * Who may do what: the three calls are revoked from PUBLIC (superusers,
 * or roles an administrator grants them to); raft_members shows URIs only
 * to roles with the privileges of pg_read_all_settings, like distsys.peers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "paxosnode.h"
#include "raftnode.h"
#include "raft_kv.h"
#include "raft_transport.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(raft_add_node);
PG_FUNCTION_INFO_V1(raft_remove_node);
PG_FUNCTION_INFO_V1(raft_transfer_leadership_sql);
PG_FUNCTION_INFO_V1(raft_members_read);

#define RAFT_MEMBERS_TRANCHE	"distsys raft members"
#define RAFT_KNOWN_MAX			64	/* URIs the worker remembers */

typedef struct RaftMemberShared
{
	uint64		id;
	bool		voter;
	uint64		match;			/* the leader's view; 0: not known here */
	TimestampTz last_contact;	/* last answer to this node's worker; 0: none */
	char		uri[RAFT_PEER_URI_MAX];
} RaftMemberShared;

typedef struct RaftMembersShared
{
	LWLock	   *lock;
	int			n;
	RaftMemberShared m[RAFT_MAX_NODES];
} RaftMembersShared;

static RaftMembersShared *members_shared = NULL;

/* the worker's own state */
static RaftPeer *known;			/* id -> URI */
static int	n_known;
static RaftConfState synced;	/* what transport and inbox follow */
static bool synced_once = false;
static bool learned = false;	/* a URI arrived since the last sync */
static uint8 cluster_id[RAFT_CLUSTER_ID_BYTES];
static TimestampTz published_at = 0;
/* the Paxos members (the founders) if this node is one, else none */
static uint64 paxos_ids[RAFT_MAX_NODES];
static int	n_paxos = 0;

Size
raft_members_shmem_size(void)
{
	return sizeof(RaftMembersShared);
}

void
raft_members_shmem_request(void)
{
	RequestNamedLWLockTranche(RAFT_MEMBERS_TRANCHE, 1);
}

void
raft_members_shmem_init(void)
{
	bool		found;

	members_shared = ShmemInitStruct("distsys raft members", sizeof(RaftMembersShared), &found);
	if (found)
		return;
	members_shared->lock = &(GetNamedLWLockTranche(RAFT_MEMBERS_TRANCHE))->lock;
	members_shared->n = 0;
}

/* ---- the worker's side ---- */

/*
 * raft_members_learn: node id is at uri (a MEMBER command applied, or a
 * founding member).
 */
void
raft_members_learn(uint64 id, const char *uri, uint32 len)
{
	int			i;

	for (i = 0; i < n_known && known[i].id != id; i++)
		;
	if (i == n_known)
	{
		if (n_known == RAFT_KNOWN_MAX)
			memmove(known, known + 1, --n_known * sizeof(RaftPeer));
		i = n_known++;
	}
	known[i].id = id;
	len = Min(len, RAFT_PEER_URI_MAX - 1);
	memcpy(known[i].uri, uri, len);
	known[i].uri[len] = '\0';
	learned = true;
}

static const char *
uri_of(uint64 id)
{
	for (int i = 0; i < n_known; i++)
		if (known[i].id == id)
			return known[i].uri;
	return NULL;
}

/*
 * load_nodes: the URIs distsys.raft_nodes holds (members added by
 * raft_add_node and applied before this start).
 */
static void
load_nodes(void)
{
	static SPIPlanPtr plan = NULL;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	distsys_spi_run(&plan, "SELECT id, uri FROM distsys.raft_nodes", 0, NULL, NULL, NULL, true);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *uri = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);

		raft_members_learn((uint64) id, uri, strlen(uri));
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * raft_members_init: the founding members' URIs and those applied since.
 */
void
raft_members_init(const RaftPeers *peers, const uint8 *cluster)
{
	known = MemoryContextAllocZero(TopMemoryContext, RAFT_KNOWN_MAX * sizeof(RaftPeer));
	for (int i = 0; i < peers->n; i++)
		raft_members_learn(peers->peer[i].id, peers->peer[i].uri, strlen(peers->peer[i].uri));
	load_nodes();
	memcpy(cluster_id, cluster, RAFT_CLUSTER_ID_BYTES);
	n_paxos = 0;
	if (paxos_is_member(peers, (uint64) distsys_node_id))
		for (int i = 0; i < peers->n; i++)
			paxos_ids[n_paxos++] = peers->peer[i].id;
}

/*
 * is_paxos_member: whether id is a Paxos member this node talks to.
 */
static bool
is_paxos_member(uint64 id)
{
	for (int i = 0; i < n_paxos; i++)
		if (paxos_ids[i] == id)
			return true;
	return false;
}

static bool
conf_has(const RaftConfState *c, uint64 id)
{
	return raft_conf_is_voter(c, id) || raft_conf_is_learner(c, id);
}

/*
 * conf_ids: every member of c (voters, then learners).
 */
static int
conf_ids(const RaftConfState *c, uint64 *ids)
{
	int			n = 0;

	for (int i = 0; i < c->n_voters; i++)
		ids[n++] = c->voters[i];
	for (int i = 0; i < c->n_learners; i++)
		ids[n++] = c->learners[i];
	return n;
}

/*
 * follow_conf: transport and inbox for configuration c, and for the Paxos
 * members (the founders, when this node is one of them: Paxos keeps them
 * whatever Raft's configuration does; raft_members_in_conf keeps a
 * removed founder's Raft items out).
 */
static void
follow_conf(const RaftConfState *c)
{
	uint64		ids[3 * RAFT_MAX_NODES];
	int			n = conf_ids(c, ids);
	uint64		self = (uint64) distsys_node_id;

	for (int i = 0; i < n_paxos; i++)
		if (!conf_has(c, paxos_ids[i]))
			ids[n++] = paxos_ids[i];
	for (int i = 0; i < n; i++)
	{
		const char *uri = uri_of(ids[i]);

		if (ids[i] != self && uri != NULL)
			raft_transport_set_peer(ids[i], uri);
	}
	if (synced_once)
	{
		uint64		old[2 * RAFT_MAX_NODES];
		int			n_old = conf_ids(&synced, old);

		for (int i = 0; i < n_old; i++)
			if (!conf_has(c, old[i]) && !is_paxos_member(old[i]))
				raft_transport_remove_peer(old[i]);
	}
	raft_inbox_open(cluster_id, self, ids, n);
	synced = *c;
	synced_once = true;
	learned = false;
}

/*
 * raft_members_in_conf: whether node id is in the configuration the
 * worker follows (a voter or a learner): only such a node's Raft items
 * are handled.
 */
bool
raft_members_in_conf(uint64 id)
{
	return synced_once && conf_has(&synced, id);
}

/*
 * promote_learners: as leader, propose the first caught-up learner as a
 * voter (one change at a time; the core refuses the rest as busy).
 */
static void
promote_learners(RaftNode *node, const RaftConfState *c)
{
	uint64		index;

	if (raft_role(node) != RAFT_LEADER)
		return;
	for (int i = 0; i < c->n_learners; i++)
		if (raft_match_index(node, c->learners[i]) >= raft_commit_index(node) &&
			raft_propose_conf_change(node, RAFT_CONF_PROMOTE, c->learners[i], &index) == RAFT_OK)
		{
			elog(LOG, "distsys raft: node " UINT64_FORMAT " has caught up: promoted to voter (entry " UINT64_FORMAT ")",
				 c->learners[i], index);
			return;
		}
}

/*
 * publish_members: the members as raft_members shows them.
 */
static void
publish_members(RaftNode *node, const RaftConfState *c)
{
	uint64		ids[2 * RAFT_MAX_NODES];
	int			n = Min(conf_ids(c, ids), RAFT_MAX_NODES);
	bool		leading = raft_role(node) == RAFT_LEADER;

	LWLockAcquire(members_shared->lock, LW_EXCLUSIVE);
	members_shared->n = n;
	for (int i = 0; i < n; i++)
	{
		RaftMemberShared *m = &members_shared->m[i];
		const char *uri = uri_of(ids[i]);

		m->id = ids[i];
		m->voter = raft_conf_is_voter(c, ids[i]);
		m->match = leading ? raft_match_index(node, ids[i]) : 0;
		(void) raft_transport_peer_connected(ids[i], &m->last_contact);
		strlcpy(m->uri, uri ? uri : "", sizeof(m->uri));
	}
	LWLockRelease(members_shared->lock);
}

/*
 * raft_members_sync: after each loop of the worker (see the banner).
 */
void
raft_members_sync(RaftNode *node)
{
	const RaftConfState *c = raft_conf(node);
	TimestampTz now = GetCurrentTimestamp();

	if (!synced_once || learned || memcmp(c, &synced, sizeof(synced)) != 0)
		follow_conf(c);
	promote_learners(node, c);
	if (TimestampDifferenceExceeds(published_at, now, 100))
	{
		publish_members(node, c);
		published_at = now;
	}
}

/* ---- SQL ---- */

/*
 * member_role: 'voter', 'learner' or NULL (not a member), as this node's
 * worker last published it.
 */
static const char *
member_role(uint64 id)
{
	const char *role = NULL;

	LWLockAcquire(members_shared->lock, LW_SHARED);
	for (int i = 0; i < members_shared->n; i++)
		if (members_shared->m[i].id == id)
			role = members_shared->m[i].voter ? "voter" : "learner";
	LWLockRelease(members_shared->lock);
	return role;
}

/*
 * id_arg: argument 0 as a node id.
 */
static uint64
id_arg(FunctionCallInfo fcinfo, const char *what)
{
	int32		id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: the node id must not be NULL", what)));
	id = PG_GETARG_INT32(0);
	if (id < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %d is not a node id", what, id),
				 errhint("Node ids are integers from 1 to %d.", RAFT_PEER_ID_MAX)));
	return (uint64) id;
}

/*
 * conf_request: one membership change through the leader; its entry's index.
 */
static uint64
conf_request(const char *what, RaftConfChangeType type, uint64 id)
{
	StringInfoData cmd;
	RaftRequestSlot ans;

	initStringInfo(&cmd);
	appendStringInfoChar(&cmd, (char) type);
	raft_put_u64(&cmd, id);
	raft_client_submit(what, RAFT_REQ_CONF, &cmd, &ans);
	return ans.index;
}

/*
 * check_uri: uri must be a postgresql:// URI libpq accepts (the checks of
 * distsys.peers).
 */
static void
check_uri(uint64 id, const char *uri)
{
	RaftPeers	one;
	char		err[256];
	char	   *problem;

	if (raft_peers_parse(psprintf(UINT64_FORMAT "=%s", id, uri), &one, err, sizeof(err)) != 0 ||
		one.n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("raft_add_node: invalid URI for node " UINT64_FORMAT ": %s", id, err),
				 errhint("Give it as postgresql://host:port/database, as in distsys.peers.")));
	problem = raft_uri_problem(uri);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("raft_add_node: invalid URI for node " UINT64_FORMAT ": %s", id, problem)));
}

/*
 * raft_add_node(id integer, uri text) RETURNS bigint: node id joins as a
 * learner (its URI written to the log first); the index of the change.
 */
Datum
raft_add_node(PG_FUNCTION_ARGS)
{
	uint64		id = id_arg(fcinfo, "raft_add_node");
	RaftCommand c = {0};
	RaftRequestSlot ans;
	char	   *uri;

	raft_client_require("raft_add_node");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("raft_add_node: the URI must not be NULL")));
	uri = text_to_cstring(PG_GETARG_TEXT_PP(1));
	check_uri(id, uri);
	if (member_role(id) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("raft_add_node: node " UINT64_FORMAT " is already a %s", id, member_role(id)),
				 errhint("raft_members lists the members; remove a node before adding it again under the same id.")));
	c.op = RAFT_OP_MEMBER;
	c.key = psprintf(UINT64_FORMAT, id);
	c.value = uri;
	raft_client_write("raft_add_node", &c, &ans);
	PG_RETURN_INT64((int64) conf_request("raft_add_node", RAFT_CONF_ADD_LEARNER, id));
}

/*
 * raft_remove_node(id integer) RETURNS bigint: id leaves the configuration.
 */
Datum
raft_remove_node(PG_FUNCTION_ARGS)
{
	uint64		id = id_arg(fcinfo, "raft_remove_node");

	raft_client_require("raft_remove_node");
	if (member_role(id) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("raft_remove_node: node " UINT64_FORMAT " is not a member", id),
				 errhint("raft_members lists the members.")));
	PG_RETURN_INT64((int64) conf_request("raft_remove_node", RAFT_CONF_REMOVE, id));
}

/*
 * raft_transfer_leadership_sql: raft_transfer_leadership(id integer) RETURNS void: returns once this
 * node sees voter id lead.
 */
Datum
raft_transfer_leadership_sql(PG_FUNCTION_ARGS)
{
	uint64		id = id_arg(fcinfo, "raft_transfer_leadership");
	const char *role;
	StringInfoData cmd;
	RaftRequestSlot ans;

	raft_client_require("raft_transfer_leadership");
	role = member_role(id);
	if (role == NULL || strcmp(role, "voter") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("raft_transfer_leadership: node " UINT64_FORMAT " is not a voter", id),
				 errhint("Only a voter can lead; raft_members lists the members.")));
	initStringInfo(&cmd);
	raft_put_u64(&cmd, id);
	raft_client_submit("raft_transfer_leadership", RAFT_REQ_TRANSFER, &cmd, &ans);
	PG_RETURN_VOID();
}

/*
 * raft_members_read: the rows of raft_members: id, role, match_index,
 * last_contact, uri (NULL unless the caller may read distsys.peers).
 */
Datum
raft_members_read(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		see_uris = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS);
	RaftMembersShared *copy = palloc(sizeof(RaftMembersShared));

	distsys_require_preload("raft_members");
	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(members_shared->lock, LW_SHARED);
	memcpy(copy, members_shared, sizeof(RaftMembersShared));
	LWLockRelease(members_shared->lock);
	for (int i = 0; i < copy->n; i++)
	{
		RaftMemberShared *m = &copy->m[i];
		Datum		v[5];
		bool		nulls[5] = {false, false, m->match == 0, m->last_contact == 0,
		!see_uris || m->uri[0] == '\0'};

		v[0] = Int64GetDatum((int64) m->id);
		v[1] = CStringGetTextDatum(m->voter ? "voter" : "learner");
		v[2] = Int64GetDatum((int64) m->match);
		v[3] = TimestampTzGetDatum(m->last_contact);
		v[4] = nulls[4] ? (Datum) 0 : CStringGetTextDatum(m->uri);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	return (Datum) 0;
}
