/*-------------------------------------------------------------------------
 *
 * raft_command.c
 *	  The byte form of a key-value command in a Raft log entry.
 *
 *		version (1) | op (1) | origin (8) | nonce (8) | request (8)
 *		| key length (4) | key | has expected (1) | expected length (4)
 *		| expected | value length (4) | value
 *
 * Fixed-width little-endian integers, like raft_wire.  Entries come from
 * the log, which only leaders write, but a leader proposes what a follower
 * forwarded, so decoding trusts nothing: every length is checked against
 * the entry and the limits of raft_kv.h, and the leader decodes a
 * forwarded command before it proposes it (raft_requests.c).  Values are
 * jsonb in its text form: the state machine casts them back, and equal
 * jsonb values compare equal whatever text they came from.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "raft_kv.h"

#define RAFT_COMMAND_VERSION	1

void
raft_put_u32(StringInfo out, uint32 v)
{
	uint8		b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8) (v >> (8 * i));
	appendBinaryStringInfo(out, (char *) b, 4);
}

void
raft_put_u64(StringInfo out, uint64 v)
{
	raft_put_u32(out, (uint32) v);
	raft_put_u32(out, (uint32) (v >> 32));
}

uint32
raft_get_u32(const uint8 *p)
{
	return (uint32) p[0] | ((uint32) p[1] << 8) | ((uint32) p[2] << 16) | ((uint32) p[3] << 24);
}

uint64
raft_get_u64(const uint8 *p)
{
	return (uint64) raft_get_u32(p) | ((uint64) raft_get_u32(p + 4) << 32);
}

/*
 * put_bytes: a length and the bytes.
 */
static void
put_bytes(StringInfo out, const char *s, uint32 len)
{
	raft_put_u32(out, len);
	if (len > 0)
		appendBinaryStringInfo(out, s, len);
}

/*
 * raft_command_encode: c appended to out.
 */
void
raft_command_encode(const RaftCommand *c, StringInfo out)
{
	appendStringInfoChar(out, (char) RAFT_COMMAND_VERSION);
	appendStringInfoChar(out, (char) c->op);
	raft_put_u64(out, c->origin);
	raft_put_u64(out, c->nonce);
	raft_put_u64(out, c->request);
	put_bytes(out, c->key, c->key_len);
	appendStringInfoChar(out, (char) (c->has_expected ? 1 : 0));
	put_bytes(out, c->expected, c->has_expected ? c->expected_len : 0);
	put_bytes(out, c->value, c->op == RAFT_OP_DELETE ? 0 : c->value_len);
}

/*
 * Reader: a cursor over an entry's bytes that fails rather than read
 * past the end.
 */
typedef struct Reader
{
	const uint8 *p;
	size_t		left;
} Reader;

static bool
take(Reader *r, size_t n, const uint8 **out)
{
	if (r->left < n)
		return false;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

static bool
take_u64(Reader *r, uint64 *v)
{
	const uint8 *p;

	if (!take(r, 8, &p))
		return false;
	*v = raft_get_u64(p);
	return true;
}

/*
 * take_bytes: a length (at most max) and that many bytes.
 */
static bool
take_bytes(Reader *r, uint32 max, const char **s, uint32 *len)
{
	const uint8 *p;

	if (!take(r, 4, &p))
		return false;
	*len = raft_get_u32(p);
	if (*len > max || !take(r, *len, &p))
		return false;
	*s = (const char *) p;
	return true;
}

/*
 * member_key_ok: a MEMBER command's key is a node id (1 to 10 digits, no
 * leading zero) and its value a URI of bounded length.
 */
static bool
member_key_ok(const RaftCommand *c)
{
	if (c->key_len < 1 || c->key_len > 10 || c->key[0] == '0' ||
		c->value_len < 1 || c->value_len >= RAFT_PEER_URI_MAX)
		return false;
	for (uint32 i = 0; i < c->key_len; i++)
		if (c->key[i] < '0' || c->key[i] > '9')
			return false;
	return true;
}

/*
 * raft_command_decode: the command in data[0..len), or false if the bytes
 * are not a well-formed command of this version (nothing may be left over).
 */
bool
raft_command_decode(const uint8 *data, size_t len, RaftCommand *c)
{
	Reader		r = {data, len};
	const uint8 *p;

	memset(c, 0, sizeof(*c));
	if (!take(&r, 2, &p) || p[0] != RAFT_COMMAND_VERSION ||
		p[1] < RAFT_OP_PUT || p[1] > RAFT_OP_MEMBER)
		return false;
	c->op = (RaftOp) p[1];
	if (!take_u64(&r, &c->origin) || !take_u64(&r, &c->nonce) ||
		!take_u64(&r, &c->request) ||
		!take_bytes(&r, RAFT_KEY_MAX_BYTES, &c->key, &c->key_len) ||
		!take(&r, 1, &p) || p[0] > 1)
		return false;
	c->has_expected = p[0] == 1;
	if (!take_bytes(&r, RAFT_COMMAND_MAX_BYTES, &c->expected, &c->expected_len) ||
		!take_bytes(&r, RAFT_COMMAND_MAX_BYTES, &c->value, &c->value_len))
		return false;
	if (c->op != RAFT_OP_CAS && (c->has_expected || c->expected_len > 0))
		return false;
	if (c->op == RAFT_OP_MEMBER && !member_key_ok(c))
		return false;
	return r.left == 0 && memchr(c->key, 0, c->key_len) == NULL;
}
