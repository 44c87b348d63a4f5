/*-------------------------------------------------------------------------
 *
 * raft_peers.h
 *	  distsys.peers as a list: the parser (raft_peers.c) is pure C.
 *
 * raft_peers.c includes no PostgreSQL header, like the Raft core, so the
 * simulator build can test it; checking that each URI is one libpq
 * accepts is the caller's part (raft_settings.c, PQconninfoParse).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_RAFT_PEERS_H
#define DISTSYS_RAFT_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "core/raft.h"

#define RAFT_PEER_URI_MAX	1024	/* bytes of one URI, with its NUL */
#define RAFT_PEER_ID_MAX	2147483647	/* ids are distsys.node_id values */

typedef struct RaftPeer
{
	uint64_t	id;
	char		uri[RAFT_PEER_URI_MAX];
} RaftPeer;

/* The members named by distsys.peers, sorted by id. */
typedef struct RaftPeers
{
	int			n;
	RaftPeer	peer[RAFT_MAX_NODES];
} RaftPeers;

extern int	raft_peers_parse(const char *text, RaftPeers *out, char *err, size_t errlen);
extern const RaftPeer *raft_peers_find(const RaftPeers *peers, uint64_t id);

#endif							/* DISTSYS_RAFT_PEERS_H */
