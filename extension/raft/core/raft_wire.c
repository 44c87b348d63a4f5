/*-------------------------------------------------------------------------
 *
 * raft_wire.c
 *	  Encoding and decoding a RaftMessage (raft_wire.h).
 *
 * Layout, integers little-endian and fixed-width (a message is dominated
 * by its entries' data, so varints would save little and cost a branch
 * per field):
 *
 *	 u8 version, u8 type, u8 flags (1 reject, 2 force, 4 snapshot), u8 zero
 *	 u64 from, to, term, log_term, index, commit, reject_hint, ctx,
 *		 lease_tick
 *	 u32 n_entries, then per entry: u64 term, u64 index, u8 type,
 *		 u32 len, len bytes
 *	 with flag 4 (RAFT_MSG_SNAPSHOT only, and always there):
 *		 u64 index, u64 term, u8 n_voters, u8 n_learners,
 *		 u64 each voter, u64 each learner, u64 len, len bytes
 *
 * The version byte comes first so that a later format can be told apart
 * (and refused) before anything else is read.
 *
 * A batch's envelope (raft_wire.h): 4 magic bytes "DSRB", the cluster id
 * (RAFT_CLUSTER_ID_BYTES), u64 from, u64 to, u32 count.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_wire.h"

#define FLAG_REJECT		0x01
#define FLAG_FORCE		0x02
#define FLAG_SNAPSHOT	0x04
#define FLAGS_KNOWN		(FLAG_REJECT | FLAG_FORCE | FLAG_SNAPSHOT)

#define HEADER_BYTES	(4 + 9 * 8 + 4)
#define ENVELOPE_MAGIC	"DSRB"
#define ENTRY_BYTES		(8 + 8 + 1 + 4)

/* ---- writing ------------------------------------------------------- */

static uint8_t *
put_u8(uint8_t *p, unsigned v)
{
	*p = (uint8_t) v;
	return p + 1;
}

static uint8_t *
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t) (v >> (8 * i));
	return p + 4;
}

static uint8_t *
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t) (v >> (8 * i));
	return p + 8;
}

static uint8_t *
put_bytes(uint8_t *p, const uint8_t *data, size_t len)
{
	if (len > 0)
		memcpy(p, data, len);
	return p + len;
}

size_t
raft_wire_size(const RaftMessage *m)
{
	size_t		size = HEADER_BYTES;
	const RaftSnapshot *s = m->snapshot;

	for (size_t i = 0; i < m->n_entries; i++)
		size += ENTRY_BYTES + m->entries[i].len;
	if (s != NULL)
		size += 8 + 8 + 1 + 1 + 8 * (size_t) (s->conf.n_voters + s->conf.n_learners) +
			8 + s->len;
	return size;
}

/*
 * put_snapshot: the snapshot part of the layout.
 */
static uint8_t *
put_snapshot(uint8_t *p, const RaftSnapshot *s)
{
	p = put_u64(p, s->index);
	p = put_u64(p, s->term);
	p = put_u8(p, (unsigned) s->conf.n_voters);
	p = put_u8(p, (unsigned) s->conf.n_learners);
	for (int i = 0; i < s->conf.n_voters; i++)
		p = put_u64(p, s->conf.voters[i]);
	for (int i = 0; i < s->conf.n_learners; i++)
		p = put_u64(p, s->conf.learners[i]);
	p = put_u64(p, s->len);
	return put_bytes(p, s->data, s->len);
}

size_t
raft_wire_encode(const RaftMessage *m, uint8_t *out)
{
	uint8_t    *p = out;
	unsigned	flags = (m->reject ? FLAG_REJECT : 0) | (m->force ? FLAG_FORCE : 0) |
		(m->snapshot ? FLAG_SNAPSHOT : 0);

	p = put_u8(p, RAFT_WIRE_VERSION);
	p = put_u8(p, (unsigned) m->type);
	p = put_u8(p, flags);
	p = put_u8(p, 0);
	p = put_u64(p, m->from);
	p = put_u64(p, m->to);
	p = put_u64(p, m->term);
	p = put_u64(p, m->log_term);
	p = put_u64(p, m->index);
	p = put_u64(p, m->commit);
	p = put_u64(p, m->reject_hint);
	p = put_u64(p, m->ctx);
	p = put_u64(p, m->lease_tick);
	p = put_u32(p, (uint32_t) m->n_entries);
	for (size_t i = 0; i < m->n_entries; i++)
	{
		const RaftEntry *e = &m->entries[i];

		p = put_u64(p, e->term);
		p = put_u64(p, e->index);
		p = put_u8(p, (unsigned) e->type);
		p = put_u32(p, (uint32_t) e->len);
		p = put_bytes(p, e->data, e->len);
	}
	if (m->snapshot != NULL)
		p = put_snapshot(p, m->snapshot);
	return (size_t) (p - out);
}

/* ---- reading ------------------------------------------------------- */

/* A cursor over untrusted bytes: a read past the end sets truncated. */
typedef struct Reader
{
	const uint8_t *p;
	size_t		left;
	bool		truncated;
} Reader;

/*
 * take: the next n bytes, or NULL (and truncated) when fewer are left.
 */
static inline const uint8_t *
take(Reader *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->truncated || n > r->left)
	{
		r->truncated = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

/* get_uint: the next little-endian integer of `bytes` bytes (0 if truncated) */
static inline uint64_t
get_uint(Reader *r, int bytes)
{
	const uint8_t *p = take(r, (size_t) bytes);
	uint64_t	v = 0;

	if (p != NULL)
		for (int i = 0; i < bytes; i++)
			v |= (uint64_t) p[i] << (8 * i);
	return v;
}

#define get_u8(r)	((unsigned) get_uint((r), 1))
#define get_u32(r)	((uint32_t) get_uint((r), 4))
#define get_u64(r)	get_uint((r), 8)

/*
 * get_entries: n entries into entries[]; their data points into the buffer.
 */
static RaftWireError
get_entries(Reader *r, RaftEntry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		RaftEntry  *e = &entries[i];
		unsigned	type;

		e->term = get_u64(r);
		e->index = get_u64(r);
		type = get_u8(r);
		e->len = get_u32(r);
		e->data = (uint8_t *) take(r, e->len);
		if (r->truncated)
			return RAFT_WIRE_TRUNCATED;
		if (type > RAFT_ENTRY_CONF)
			return RAFT_WIRE_BAD_TYPE;
		e->type = (RaftEntryType) type;
	}
	return RAFT_WIRE_OK;
}

/*
 * get_ids: n node ids into ids[].
 */
static void
get_ids(Reader *r, uint64_t *ids, int n)
{
	for (int i = 0; i < n; i++)
		ids[i] = get_u64(r);
}

/*
 * get_snapshot: the snapshot part into *s; its data points into the buffer.
 */
static RaftWireError
get_snapshot(Reader *r, RaftSnapshot *s)
{
	uint64_t	len;

	memset(s, 0, sizeof(*s));
	s->index = get_u64(r);
	s->term = get_u64(r);
	s->conf.n_voters = (int) get_u8(r);
	s->conf.n_learners = (int) get_u8(r);
	if (r->truncated)
		return RAFT_WIRE_TRUNCATED;
	if (s->conf.n_voters + s->conf.n_learners > RAFT_MAX_NODES)
		return RAFT_WIRE_BAD_CONF;
	get_ids(r, s->conf.voters, s->conf.n_voters);
	get_ids(r, s->conf.learners, s->conf.n_learners);
	len = get_u64(r);
	s->data = (uint8_t *) take(r, len > r->left ? r->left + 1 : (size_t) len);
	s->len = (size_t) len;
	return r->truncated ? RAFT_WIRE_TRUNCATED : RAFT_WIRE_OK;
}

/*
 * get_header: the fixed part into m; *flags gets the flag byte.
 */
static RaftWireError
get_header(Reader *r, RaftMessage *m, unsigned *flags)
{
	unsigned	version = get_u8(r),
				type = get_u8(r);

	*flags = get_u8(r);
	if (r->truncated)
		return RAFT_WIRE_TRUNCATED;
	if (version != RAFT_WIRE_VERSION)
		return RAFT_WIRE_BAD_VERSION;
	if (type > RAFT_MSG_TIMEOUT_NOW)
		return RAFT_WIRE_BAD_TYPE;
	if (get_u8(r) != 0 || (*flags & ~FLAGS_KNOWN) != 0 ||
		((*flags & FLAG_SNAPSHOT) != 0) != (type == RAFT_MSG_SNAPSHOT))
		return r->truncated ? RAFT_WIRE_TRUNCATED : RAFT_WIRE_BAD_FLAGS;
	m->type = (RaftMsgType) type;
	m->reject = (*flags & FLAG_REJECT) != 0;
	m->force = (*flags & FLAG_FORCE) != 0;
	m->from = get_u64(r);
	m->to = get_u64(r);
	m->term = get_u64(r);
	m->log_term = get_u64(r);
	m->index = get_u64(r);
	m->commit = get_u64(r);
	m->reject_hint = get_u64(r);
	m->ctx = get_u64(r);
	m->lease_tick = get_u64(r);
	m->n_entries = get_u32(r);
	return r->truncated ? RAFT_WIRE_TRUNCATED : RAFT_WIRE_OK;
}

RaftWireError
raft_wire_decode(const uint8_t *buf, size_t len, RaftMessage *m,
				 RaftEntry *entries, size_t max_entries,
				 RaftSnapshot *snap, size_t *used)
{
	Reader		r = {buf, len, false};
	unsigned	flags;
	RaftWireError e;

	memset(m, 0, sizeof(*m));
	if ((e = get_header(&r, m, &flags)) != RAFT_WIRE_OK)
		return e;
	if (m->n_entries > max_entries)
		return RAFT_WIRE_TOO_MANY;
	m->entries = m->n_entries > 0 ? entries : NULL;
	if ((e = get_entries(&r, entries, m->n_entries)) != RAFT_WIRE_OK)
		return e;
	if ((flags & FLAG_SNAPSHOT) != 0)
	{
		if ((e = get_snapshot(&r, snap)) != RAFT_WIRE_OK)
			return e;
		m->snapshot = snap;
	}
	*used = len - r.left;
	return RAFT_WIRE_OK;
}

size_t
raft_envelope_encode(const RaftEnvelope *e, uint8_t *out)
{
	uint8_t    *p = put_bytes(out, (const uint8_t *) ENVELOPE_MAGIC, 4);

	p = put_bytes(p, e->cluster, RAFT_CLUSTER_ID_BYTES);
	p = put_u64(p, e->from);
	p = put_u64(p, e->to);
	p = put_u32(p, e->count);
	return (size_t) (p - out);
}

RaftWireError
raft_envelope_decode(const uint8_t *buf, size_t len, RaftEnvelope *e)
{
	Reader		r = {buf, len, false};
	const uint8_t *magic = take(&r, 4);
	const uint8_t *cluster = take(&r, RAFT_CLUSTER_ID_BYTES);

	memset(e, 0, sizeof(*e));
	if (magic != NULL && memcmp(magic, ENVELOPE_MAGIC, 4) != 0)
		return RAFT_WIRE_BAD_VERSION;
	e->from = get_u64(&r);
	e->to = get_u64(&r);
	e->count = get_u32(&r);
	if (r.truncated)
		return RAFT_WIRE_TRUNCATED;
	memcpy(e->cluster, cluster, RAFT_CLUSTER_ID_BYTES);
	return RAFT_WIRE_OK;
}

const char *
raft_wire_strerror(RaftWireError e)
{
	switch (e)
	{
		case RAFT_WIRE_OK:
			return "no error";
		case RAFT_WIRE_TRUNCATED:
			return "the message is truncated";
		case RAFT_WIRE_BAD_VERSION:
			return "the message is of another wire format version";
		case RAFT_WIRE_BAD_TYPE:
			return "the message or one of its entries has an unknown type";
		case RAFT_WIRE_TOO_MANY:
			return "the message has more entries than allowed";
		case RAFT_WIRE_BAD_CONF:
			return "the snapshot's configuration has more members than allowed";
		case RAFT_WIRE_BAD_FLAGS:
			return "the message has unknown flags, or a snapshot where none belongs";
	}
	return "unknown error";
}
