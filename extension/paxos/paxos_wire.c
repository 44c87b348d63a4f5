/*-------------------------------------------------------------------------
 *
 * paxos_wire.c
 *	  Bytes of Paxos among nodes: a PaxosMessage as an item of a
 *	  raft_deliver batch, a backend's request as its slot carries it, and
 *	  the bounded reader both decoders (and the catch-up items) use.
 *
 * A message:
 *		type (1) | from (8) | to (8) | ballot round, node (8, 8) |
 *		other round, node (8, 8) | name | value
 * a name:	length (4) | bytes, 1 .. PAXOS_MAX_NAME of them
 * a value:	present (1) | length (4) | bytes (length 0 when absent)
 * Integers are little-endian.  Only a distsys_raft_peer member can put
 * bytes here (raft_deliver), but a decoder still trusts no length: every
 * take checks what is left, so a malformed item is refused, never read
 * past.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "paxosnode.h"
#include "raft_kv.h"

void
px_reader_init(PxReader *r, const uint8 *p, size_t len)
{
	r->p = p;
	r->left = len;
	r->ok = true;
}

/*
 * px_take_bytes: the next n bytes (NULL, and the reader failed, if fewer
 * are left).
 */
const uint8 *
px_take_bytes(PxReader *r, size_t n)
{
	const uint8 *p = r->p;

	if (!r->ok || n > r->left)
	{
		r->ok = false;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

uint8
px_take_u8(PxReader *r)
{
	const uint8 *p = px_take_bytes(r, 1);

	return p ? p[0] : 0;
}

uint32
px_take_u32(PxReader *r)
{
	const uint8 *p = px_take_bytes(r, 4);

	return p ? raft_get_u32(p) : 0;
}

uint64
px_take_u64(PxReader *r)
{
	const uint8 *p = px_take_bytes(r, 8);

	return p ? raft_get_u64(p) : 0;
}

void
px_put_u8(StringInfo out, uint8 v)
{
	appendStringInfoChar(out, (char) v);
}

void
px_put_value(StringInfo out, PaxosValue v)
{
	px_put_u8(out, v.present ? 1 : 0);
	raft_put_u32(out, v.present ? (uint32) v.len : 0);
	if (v.present && v.len > 0)
		appendBinaryStringInfo(out, v.data, v.len);
}

bool
px_take_value(PxReader *r, PaxosValue *v)
{
	uint8		present = px_take_u8(r);
	uint32		len = px_take_u32(r);

	v->present = present == 1;
	v->len = len;
	v->data = px_take_bytes(r, len);
	return r->ok && present <= 1 && (v->present || len == 0);
}

void
px_put_name(StringInfo out, PaxosBytes name)
{
	raft_put_u32(out, (uint32) name.len);
	appendBinaryStringInfo(out, name.data, name.len);
}

bool
px_take_name(PxReader *r, PaxosBytes *name)
{
	uint32		len = px_take_u32(r);

	name->len = len;
	name->data = len >= 1 && len <= PAXOS_MAX_NAME ? px_take_bytes(r, len) : NULL;
	return r->ok && name->data != NULL;
}

/*
 * paxos_wire_encode: m appended to out.
 */
void
paxos_wire_encode(const PaxosMessage *m, StringInfo out)
{
	px_put_u8(out, (uint8) m->type);
	raft_put_u64(out, m->from);
	raft_put_u64(out, m->to);
	raft_put_u64(out, m->ballot.round);
	raft_put_u64(out, m->ballot.node);
	raft_put_u64(out, m->other.round);
	raft_put_u64(out, m->other.node);
	px_put_name(out, m->instance);
	px_put_value(out, m->value);
}

/*
 * paxos_wire_decode: the message in exactly len bytes at buf; false if
 * they are not one.  m points into buf.
 */
bool
paxos_wire_decode(const uint8 *buf, size_t len, PaxosMessage *m)
{
	PxReader	r;
	uint8		type;

	px_reader_init(&r, buf, len);
	memset(m, 0, sizeof(*m));
	type = px_take_u8(&r);
	m->type = (PaxosMsgType) type;
	m->from = px_take_u64(&r);
	m->to = px_take_u64(&r);
	m->ballot.round = px_take_u64(&r);
	m->ballot.node = px_take_u64(&r);
	m->other.round = px_take_u64(&r);
	m->other.node = px_take_u64(&r);
	return px_take_name(&r, &m->instance) && px_take_value(&r, &m->value) &&
		r.left == 0 && type <= PAXOS_MSG_NACK;
}

/*
 * paxos_request_encode: a backend's request for its slot.
 */
void
paxos_request_encode(PaxosOpKind op, PaxosBytes name, PaxosValue value,
					 PaxosValue expected, StringInfo out)
{
	px_put_u8(out, (uint8) op);
	px_put_name(out, name);
	px_put_value(out, value);
	px_put_value(out, expected);
}

/*
 * paxos_request_decode: the request in len bytes at buf (req points into
 * buf; its tag is the caller's to set).
 */
bool
paxos_request_decode(const uint8 *buf, size_t len, PaxosRequest *req)
{
	PxReader	r;
	uint8		op;

	px_reader_init(&r, buf, len);
	memset(req, 0, sizeof(*req));
	op = px_take_u8(&r);
	req->kind = (PaxosOpKind) op;
	return px_take_name(&r, &req->instance) && px_take_value(&r, &req->value) &&
		px_take_value(&r, &req->expected) && r.left == 0 && op <= PAXOS_OP_CAS;
}
