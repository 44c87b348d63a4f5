/*-------------------------------------------------------------------------
 *
 * raft_peers.c
 *	  Parse distsys.peers: space-separated "id=URI" pairs (and
 *	  distsys.raft_routes, which has the same syntax).
 *
 * Pure C (no PostgreSQL header), so that the simulator can test it
 * without a server.  It checks the shape only: each pair is a decimal id
 * from 1 to RAFT_PEER_ID_MAX, '=', and a postgresql:// or postgres:// URI
 * (a keyword/value conninfo has spaces, which separate pairs); no id
 * twice; at most RAFT_MAX_NODES pairs.  Whether libpq accepts a URI is
 * checked by the caller (raft_settings.c).  The list comes out sorted by
 * id, so that two nodes that list the same members in another order
 * derive the same cluster id (raft_identity.c).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_peers.h"

/* is_space: whether c separates pairs (C locale, whatever the server's) */
static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * parse_id: the decimal id in s[0..len); 0 if it is not one from 1 to
 * RAFT_PEER_ID_MAX.
 */
static uint64_t
parse_id(const char *s, size_t len)
{
	uint64_t	id = 0;

	if (len == 0 || len > 10)
		return 0;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return 0;
		id = id * 10 + (uint64_t) (s[i] - '0');
	}
	return id <= RAFT_PEER_ID_MAX ? id : 0;
}

/*
 * is_uri: whether s[0..len) is a postgresql:// or postgres:// URI with
 * something after the scheme; libpq's own check comes later.
 */
static int
is_uri(const char *s, size_t len)
{
	static const char *const prefixes[] = {"postgresql://", "postgres://"};

	for (int i = 0; i < 2; i++)
	{
		size_t		plen = strlen(prefixes[i]);

		if (len > plen && strncmp(s, prefixes[i], plen) == 0)
			return 1;
	}
	return 0;
}

/*
 * parse_pair: one "id=URI" token of len bytes into *peer; 0, or -1 with
 * the reason in err.
 */
static int
parse_pair(const char *tok, size_t len, RaftPeer *peer, char *err, size_t errlen)
{
	const char *eq = memchr(tok, '=', len);
	size_t		urilen;

	if (eq == NULL)
	{
		snprintf(err, errlen, "\"%.*s\" is not of the form id=URI", (int) len, tok);
		return -1;
	}
	peer->id = parse_id(tok, (size_t) (eq - tok));
	if (peer->id == 0)
	{
		snprintf(err, errlen, "\"%.*s\" is not a node id (an integer from 1 to %d)",
				 (int) (eq - tok), tok, RAFT_PEER_ID_MAX);
		return -1;
	}
	urilen = len - (size_t) (eq - tok) - 1;
	if (!is_uri(eq + 1, urilen) || urilen >= RAFT_PEER_URI_MAX)
	{
		snprintf(err, errlen, "the URI of node %llu is not a postgresql:// URI of at most %d bytes",
				 (unsigned long long) peer->id, RAFT_PEER_URI_MAX - 1);
		return -1;
	}
	memcpy(peer->uri, eq + 1, urilen);
	peer->uri[urilen] = '\0';
	return 0;
}

/* peer_cmp: qsort order of members, by id */
static int
peer_cmp(const void *a, const void *b)
{
	uint64_t	x = ((const RaftPeer *) a)->id;
	uint64_t	y = ((const RaftPeer *) b)->id;

	return x < y ? -1 : x > y;
}

/*
 * no_duplicates: out is sorted; 0, or -1 with the id named in err.
 */
static int
no_duplicates(const RaftPeers *out, char *err, size_t errlen)
{
	for (int i = 1; i < out->n; i++)
		if (out->peer[i].id == out->peer[i - 1].id)
		{
			snprintf(err, errlen, "node id %llu is listed twice",
					 (unsigned long long) out->peer[i].id);
			return -1;
		}
	return 0;
}

/*
 * raft_peers_parse: text (NULL or blank: no members) into *out, sorted by
 * id.  Returns 0, or -1 with one sentence in err saying what is wrong.
 */
int
raft_peers_parse(const char *text, RaftPeers *out, char *err, size_t errlen)
{
	const char *p = text ? text : "";

	out->n = 0;
	for (;;)
	{
		size_t		len = 0;

		while (is_space(*p))
			p++;
		if (*p == '\0')
			break;
		while (p[len] != '\0' && !is_space(p[len]))
			len++;
		if (out->n == RAFT_MAX_NODES)
		{
			snprintf(err, errlen, "more than %d members are listed", RAFT_MAX_NODES);
			return -1;
		}
		if (parse_pair(p, len, &out->peer[out->n], err, errlen) != 0)
			return -1;
		out->n++;
		p += len;
	}
	qsort(out->peer, (size_t) out->n, sizeof(RaftPeer), peer_cmp);
	return no_duplicates(out, err, errlen);
}

/*
 * raft_peers_find: the member with this id, or NULL.
 */
const RaftPeer *
raft_peers_find(const RaftPeers *peers, uint64_t id)
{
	for (int i = 0; i < peers->n; i++)
		if (peers->peer[i].id == id)
			return &peers->peer[i];
	return NULL;
}
