/*-------------------------------------------------------------------------
 *
 * raft_identity.c
 *	  The Raft node's durable identity, under the data directory, and the
 *	  rule that a node whose identity does not match its
 *	  settings never runs Raft.
 *
 * Files (pg_distsys/raft/, replaced durably: common/durable_file.c; the
 * Raft worker is their only writer):
 *
 *	identity	written once, at the first start of Raft in this data
 *				directory: the cluster id, the node id and the server's
 *				system identifier.
 *	log/		the core's hard state, log and snapshot (raft_store.c),
 *				synced before anything that depends on them leaves the node
 *				(raft.h: persist before send).
 *
 * The cluster id is derived, not drawn: the first 128 bits of the SHA-256
 * of the sorted member list of distsys.peers ("id=URI" lines).  Every
 * founding member computes the same id without talking to the others (a
 * random id would need a protocol to agree on it), and a member started
 * with another list (another cluster's, or an edited one) gets another id.
 * So distsys.peers must be the same text on every member (the order of the
 * pairs does not matter) and must not change after the first start:
 * membership then lives in Raft's log.  Later, messages carry the cluster
 * id and a node refuses those of another cluster.
 *
 * At each start the worker compares the stored identity with the settings
 * and refuses to run Raft (raft_identity_refused, one ERROR in the log,
 * raft_status state "refused") when:
 *	- the stored node id is not distsys.node_id: a data directory copied to
 *	  (or restored on) a server configured as another member, or two
 *	  members' settings swapped.  With it, a copy could vote as a second
 *	  node it never was, or forget a vote its id had cast;
 *	- the stored cluster id is not the one distsys.peers implies: another
 *	  cluster's data directory, or distsys.peers edited after bootstrap;
 *	- the stored system identifier is not this server's: the pg_distsys
 *	  directory was copied into another PostgreSQL cluster's data directory;
 *	- a hard state exists without an identity: the identity file was
 *	  removed, so nothing vouches for the term and vote next to it.
 * A complete copy of the data directory (pg_basebackup, a file-system or
 * VM snapshot) started under the same settings matches all of these: it is
 * caught by the check that this node's own URI reaches this very server
 * (raft_self.c).  Not caught: a member whose data directory was lost and
 * re-created (initdb) under the same node id starts as a new node with an
 * empty hard state and may vote again in a term it already voted in; the
 * documented rule is to rejoin such a node under a new id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "storage/fd.h"

#include "distsys.h"
#include "raftnode.h"
#include "core/raft_wire.h"

#define RAFT_IDENTITY_FILE	RAFT_DIR "/identity"
#define RAFT_IDENTITY_MAGIC "distsys raft identity 1"
#define CLUSTER_ID_HEX		33	/* 128 bits in hex, with the NUL */

bool		raft_identity_refused = false;

typedef struct RaftIdentity
{
	char		cluster_id[CLUSTER_ID_HEX];
	uint64		node_id;
	uint64		sysid;
} RaftIdentity;

/*
 * cluster_id_of: the cluster id distsys.peers implies (see the banner),
 * as 32 hex digits into out.
 */
static void
cluster_id_of(const RaftPeers *peers, char *out)
{
	StringInfoData buf;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	initStringInfo(&buf);
	for (int i = 0; i < peers->n; i++)
		appendStringInfo(&buf, "%llu=%s\n",
						 (unsigned long long) peers->peer[i].id, peers->peer[i].uri);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute the SHA-256 of distsys.peers");
	pg_cryptohash_free(ctx);
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", digest[i]);
	pfree(buf.data);
}

/*
 * read_small_file: the contents of path (NUL-terminated, at most 1 kB), or
 * NULL if it does not exist.
 */
static char *
read_small_file(const char *path)
{
	char	   *buf = palloc0(1025);
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	int			n;

	if (fd < 0 && errno == ENOENT)
		return NULL;
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open \"%s\": %m", path)));
	n = read(fd, buf, 1024);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read \"%s\": %m", path)));
	CloseTransientFile(fd);
	return buf;
}

/*
 * refuse: report why this node must not run Raft, as an ERROR that the
 * worker logs and then stays idle (raft_worker.c).
 */
static void
refuse(const char *problem, const char *detail, const char *hint)
{
	raft_identity_refused = true;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("distsys raft: refusing to run Raft: %s", problem),
			 errdetail_internal("%s", detail),
			 errhint("%s", hint)));
}

/*
 * parse_identity: the identity file's text into *id; false if it is not
 * one this version wrote.
 */
static bool
parse_identity(const char *text, RaftIdentity *id)
{
	unsigned long long node;
	unsigned long long sysid;
	char		magic[64];

	if (sscanf(text, "%63[^\n]\ncluster_id=%32[0-9a-f]\nnode_id=%llu\nsystem_identifier=%llu\n",
			   magic, id->cluster_id, &node, &sysid) != 4 ||
		strcmp(magic, RAFT_IDENTITY_MAGIC) != 0 || strlen(id->cluster_id) != 32)
		return false;
	id->node_id = node;
	id->sysid = sysid;
	return true;
}

/*
 * create_identity: write *id as this data directory's identity.
 */
static void
create_identity(const RaftIdentity *id)
{
	char	   *text = psprintf("%s\ncluster_id=%s\nnode_id=%llu\nsystem_identifier=%llu\n",
								RAFT_IDENTITY_MAGIC, id->cluster_id,
								(unsigned long long) id->node_id,
								(unsigned long long) id->sysid);

	distsys_make_dir_durably("pg_distsys");
	distsys_make_dir_durably(RAFT_DIR);
	distsys_write_file_durably(RAFT_IDENTITY_FILE, text, strlen(text),
							   data_sync_elevel(ERROR));
	ereport(LOG,
			(errmsg("distsys raft: node %llu of cluster %s: identity created in \"%s\"",
					(unsigned long long) id->node_id, id->cluster_id, RAFT_IDENTITY_FILE)));
}

/*
 * compare_identity: refuse unless the stored identity is the one expected.
 */
static void
compare_identity(const RaftIdentity *stored, const RaftIdentity *expected)
{
	if (stored->node_id != expected->node_id)
		refuse(psprintf("this data directory belongs to node %llu, but distsys.node_id is %llu",
						(unsigned long long) stored->node_id,
						(unsigned long long) expected->node_id),
			   "A data directory copied from another member, or a changed node id, could vote twice in one term.",
			   "Set distsys.node_id back to the stored id; a copy must join the cluster as a new node with a new id and an empty pg_distsys/raft directory.");
	if (strcmp(stored->cluster_id, expected->cluster_id) != 0)
		refuse(psprintf("this data directory belongs to Raft cluster %s, but distsys.peers implies cluster %s",
						stored->cluster_id, expected->cluster_id),
			   "The cluster id is derived from distsys.peers at the first start; another list means another cluster.",
			   "Restore the distsys.peers this node was started with first (the same on every member); membership changes go through Raft, not this setting.");
	if (stored->sysid != expected->sysid)
		refuse(psprintf("pg_distsys/raft was written by the PostgreSQL server with system identifier %llu, not this one (%llu)",
						(unsigned long long) stored->sysid,
						(unsigned long long) expected->sysid),
			   "Raft's state was copied into another server's data directory.",
			   "Remove the copied pg_distsys/raft directory and add this server to the cluster as a new node.");
}

/*
 * raft_identity_check: create this data directory's identity at the first
 * start, or compare it with the settings (see the banner); refuses with an
 * ERROR and raft_identity_refused set.
 */
void
raft_identity_check(const RaftPeers *peers)
{
	RaftIdentity expected;
	RaftIdentity stored;
	char	   *text;

	cluster_id_of(peers, expected.cluster_id);
	expected.node_id = (uint64) distsys_node_id;
	expected.sysid = GetSystemIdentifier();
	text = read_small_file(RAFT_IDENTITY_FILE);
	if (text == NULL)
	{
		if (access(RAFT_LOG_DIR, F_OK) == 0)
			refuse("\"" RAFT_LOG_DIR "\" exists but the identity file does not",
				   "Nothing says which node and cluster the stored term and vote belong to.",
				   "Restore the identity file, or remove pg_distsys/raft and add this server to the cluster as a new node.");
		create_identity(&expected);
		return;
	}
	if (!parse_identity(text, &stored))
		refuse("\"" RAFT_IDENTITY_FILE "\" is not an identity file of this version",
			   "It was damaged, or written by another program.",
			   "Restore it from a backup of this node.");
	compare_identity(&stored, &expected);
}

/*
 * raft_cluster_id: the cluster id distsys.peers implies, as the 16 bytes
 * every batch's envelope carries (in a transaction, like the check).
 */
void
raft_cluster_id(const RaftPeers *peers, uint8 *out)
{
	char		hex[CLUSTER_ID_HEX];

	cluster_id_of(peers, hex);
	for (int i = 0; i < RAFT_CLUSTER_ID_BYTES; i++)
	{
		unsigned int b;

		sscanf(hex + 2 * i, "%2x", &b);
		out[i] = (uint8) b;
	}
}
