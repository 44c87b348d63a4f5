/*-------------------------------------------------------------------------
 *
 * peers_test.c
 *	  The distsys.peers parser (extension/raft/raft_peers.c, pure C) on
 *	  hand-made settings, run before the simulation like the other
 *	  self-tests: what is accepted comes back sorted by id with its URIs
 *	  whole, and each malformed setting is refused with a sentence that
 *	  names the problem (the server prints it in its one FATAL line).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"
#include "../../extension/raft/raft_peers.h"

typedef struct PeersCase
{
	const char *text;
	int			n;				/* members expected, -1: refused */
	const char *first;			/* the first member's "id=URI", or the error's key words */
} PeersCase;

static const PeersCase cases[] = {
	{"", 0, ""},
	{"  \t\n", 0, ""},
	{"2=postgresql://b:5432/postgres 1=postgres://a/db", 2, "1=postgres://a/db"},
	{"\t3=postgresql://c?sslmode=require\n1=postgresql://a  2=postgresql://b ", 3, "1=postgresql://a"},
	{"1=postgresql://a 1=postgresql://b", -1, "listed twice"},
	{"0=postgresql://a", -1, "not a node id"},
	{"-1=postgresql://a", -1, "not a node id"},
	{"2147483648=postgresql://a", -1, "not a node id"},
	{"x=postgresql://a", -1, "not a node id"},
	{"=postgresql://a", -1, "not a node id"},
	{"1postgresql://a", -1, "not of the form id=URI"},
	{"1=host=a port=5432", -1, "not a postgresql:// URI"},
	{"1=postgresql://", -1, "not a postgresql:// URI"},
	{"1=http://a", -1, "not a postgresql:// URI"},
};

/*
 * check_case: c against the parser; 0 when it answers as expected.
 */
static int
check_case(const PeersCase *c, RaftPeers *peers)
{
	char		err[256] = "";
	char		first[RAFT_PEER_URI_MAX + 16] = "";
	int			rc = raft_peers_parse(c->text, peers, err, sizeof(err));

	if (c->n < 0)
		return rc == -1 && strstr(err, c->first) != NULL ? 0 : 1;
	if (rc != 0 || peers->n != c->n)
		return 1;
	for (int i = 1; i < peers->n; i++)
		if (peers->peer[i - 1].id >= peers->peer[i].id)
			return 1;
	if (peers->n > 0)
		snprintf(first, sizeof(first), "%llu=%s",
				 (unsigned long long) peers->peer[0].id, peers->peer[0].uri);
	return strcmp(first, c->first) == 0 ? 0 : 1;
}

/*
 * peers_self_test: the cases above, a list of RAFT_MAX_NODES members
 * (accepted) and one more (refused), the longest URI (accepted) and one a
 * byte longer (refused); the number of wrong answers.
 */
int
peers_self_test(void)
{
	static RaftPeers peers;
	static char text[(RAFT_MAX_NODES + 1) * 32 + RAFT_PEER_URI_MAX + 16];
	int			wrong = 0;
	size_t		len = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (check_case(&cases[i], &peers) != 0)
		{
			fprintf(stderr, "peers self-test: \"%s\": wrong answer\n", cases[i].text);
			wrong++;
		}
	for (int i = 1; i <= RAFT_MAX_NODES + 1; i++)
	{
		len += (size_t) snprintf(text + len, sizeof(text) - len, "%d=postgresql://n%d ", i, i);
		if (i == RAFT_MAX_NODES &&
			(raft_peers_parse(text, &peers, NULL, 0) != 0 || peers.n != RAFT_MAX_NODES))
			wrong++;
	}
	if (raft_peers_parse(text, &peers, NULL, 0) != -1)
		wrong++;
	/* "1=" and a URI of RAFT_PEER_URI_MAX - 1 bytes fits; one byte more does not */
	len = (size_t) snprintf(text, sizeof(text), "1=postgresql://");
	memset(text + len, 'a', RAFT_PEER_URI_MAX + 1 - len);
	text[RAFT_PEER_URI_MAX + 1] = '\0';
	if (raft_peers_parse(text, &peers, NULL, 0) != 0)
		wrong++;
	strcat(text, "a");
	if (raft_peers_parse(text, &peers, NULL, 0) != -1)
		wrong++;
	return wrong;
}
