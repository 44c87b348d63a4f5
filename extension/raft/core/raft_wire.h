/*-------------------------------------------------------------------------
 *
 * raft_wire.h
 *	  The byte form of a RaftMessage, as nodes send it to each other.
 *
 * Pure C like the rest of the core: no I/O, no allocation (the caller
 * provides the buffers), so the simulator passes every message it delivers
 * through it and the worker uses the same code.  Decoding reads bytes a
 * peer sent, so it trusts nothing: every length is checked against what is
 * left of the buffer and against the caller's limits, every enum against
 * its range, and a malformed message is an error code, never a read past
 * the end.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RAFT_WIRE_H
#define RAFT_WIRE_H

#include "raft.h"

#define RAFT_WIRE_VERSION	1

typedef enum RaftWireError
{
	RAFT_WIRE_OK = 0,
	RAFT_WIRE_TRUNCATED,		/* the buffer ends inside the message */
	RAFT_WIRE_BAD_VERSION,		/* another version of this format */
	RAFT_WIRE_BAD_TYPE,			/* unknown message or entry type */
	RAFT_WIRE_TOO_MANY,			/* more entries than the caller allows */
	RAFT_WIRE_BAD_CONF,			/* a snapshot configuration past RAFT_MAX_NODES */
	RAFT_WIRE_BAD_FLAGS			/* unknown flag bits, or a snapshot where none belongs */
} RaftWireError;

/* The exact number of bytes raft_wire_encode writes for m. */
extern size_t raft_wire_size(const RaftMessage *m);

/* Write m to out (raft_wire_size(m) bytes); returns that size. */
extern size_t raft_wire_encode(const RaftMessage *m, uint8_t *out);

/*
 * Read one message from buf[0..len) into m.  Its entries go to the
 * caller's array entries[0..max_entries), a snapshot to *snap; entry and
 * snapshot data point into buf, so buf must outlive m.  *used is the
 * number of bytes the message took (messages can follow each other).
 */
extern RaftWireError raft_wire_decode(const uint8_t *buf, size_t len, RaftMessage *m,
									  RaftEntry *entries, size_t max_entries,
									  RaftSnapshot *snap, size_t *used);

extern const char *raft_wire_strerror(RaftWireError e);

/*
 * RaftEnvelope: what comes before a batch of messages from one node to
 * another: the cluster (the 128-bit id every member derives from the
 * member list), sender, addressee, and how many messages in raft_wire form
 * follow.  The receiver refuses a batch of another cluster, from a node it
 * does not know, or for another node, before it decodes any message.  The
 * magic is the format's version too: a later one gets another.
 */
#define RAFT_CLUSTER_ID_BYTES	16
#define RAFT_ENVELOPE_BYTES		(4 + RAFT_CLUSTER_ID_BYTES + 8 + 8 + 4)

typedef struct RaftEnvelope
{
	uint8_t		cluster[RAFT_CLUSTER_ID_BYTES];
	uint64_t	from;
	uint64_t	to;
	uint32_t	count;
} RaftEnvelope;

/* Write e to out (RAFT_ENVELOPE_BYTES bytes); returns that size. */
extern size_t raft_envelope_encode(const RaftEnvelope *e, uint8_t *out);

/* Read an envelope from buf[0..len); the messages start RAFT_ENVELOPE_BYTES in. */
extern RaftWireError raft_envelope_decode(const uint8_t *buf, size_t len, RaftEnvelope *e);

#endif							/* RAFT_WIRE_H */
