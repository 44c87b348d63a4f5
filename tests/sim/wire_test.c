/*-------------------------------------------------------------------------
 *
 * wire_test.c
 *	  Hand-made and mutated inputs for raft_wire_decode, run before the
 *	  simulation: the decoder reads what any peer (or anyone who reaches
 *	  its port) sent, so every malformed form must be refused with its own
 *	  error, and no input may make it read past the end of its buffer.
 *
 * The simulation itself passes every message it delivers through
 * raft_wire_encode and raft_wire_decode (sim_world.c), which covers the
 * well-formed side.  Reads past the end cannot be seen here directly; the
 * decoder is given exactly len bytes of a larger zeroed block each time,
 * and a decoder that reported OK with more bytes used than given, or an
 * entry whose data lies outside the given bytes, is a failure.  (Built
 * with -fsanitize=address, as `make sim SIM_CC=...` allows, any read past
 * the block is caught as well.)
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "../../extension/raft/core/raft_wire.h"

#define MAX_ENTRIES		4
#define MUTATIONS		20000

/*
 * sample: message k of three kinds: an append with entries, a snapshot,
 * a heartbeat response with every flag.
 */
static size_t
sample(int k, uint8_t *out)
{
	static uint8_t d1[] = "put k1 1", d2[] = "", d3[] = "snapshot bytes";
	static RaftEntry e[2] = {{3, 10, RAFT_ENTRY_NORMAL, 8, d1}, {3, 11, RAFT_ENTRY_NOOP, 0, d2}};
	static RaftSnapshot s = {40, 5, {3, 1, {1, 2, 3}, {9}}, 14, d3};
	RaftMessage m;

	memset(&m, 0, sizeof(m));
	m.from = 1;
	m.to = 2;
	m.term = 7;
	if (k == 0)
	{
		m.type = RAFT_MSG_APPEND;
		m.index = 9;
		m.log_term = 3;
		m.n_entries = 2;
		m.entries = e;
	}
	else if (k == 1)
	{
		m.type = RAFT_MSG_SNAPSHOT;
		m.snapshot = &s;
	}
	else
	{
		m.type = RAFT_MSG_APPEND_RESP;
		m.reject = m.force = true;
		m.reject_hint = 4;
	}
	return raft_wire_encode(&m, out);
}

/*
 * decode_in_bounds: decode len bytes; an OK answer must have used at most
 * len bytes and left all data inside them.
 */
static RaftWireError
decode_in_bounds(const uint8_t *buf, size_t len, int *wrong)
{
	RaftMessage m;
	RaftEntry	entries[MAX_ENTRIES];
	RaftSnapshot snap;
	size_t		used = 0;
	RaftWireError e = raft_wire_decode(buf, len, &m, entries, MAX_ENTRIES, &snap, &used);

	if (e != RAFT_WIRE_OK)
		return e;
	if (used > len)
		(*wrong)++;
	for (size_t i = 0; i < m.n_entries; i++)
		if (m.entries[i].data < buf || m.entries[i].data + m.entries[i].len > buf + len)
			(*wrong)++;
	if (m.snapshot && (m.snapshot->data < buf || m.snapshot->data + m.snapshot->len > buf + len))
		(*wrong)++;
	return e;
}

/*
 * expect: decode buf (len bytes) and count a wrong answer unless it is want.
 */
static void
expect(const uint8_t *buf, size_t len, RaftWireError want, const char *what, int *wrong)
{
	RaftWireError got = decode_in_bounds(buf, len, wrong);

	if (got != want)
	{
		fprintf(stderr, "wire self-test: %s: got \"%s\", want \"%s\"\n", what,
				raft_wire_strerror(got), raft_wire_strerror(want));
		(*wrong)++;
	}
}

/*
 * envelope_cases: a batch's envelope comes back whole; a truncated one and
 * one of another format are refused.
 */
static int
envelope_cases(void)
{
	RaftEnvelope e = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 3, 5, 42},
				d;
	uint8_t		buf[RAFT_ENVELOPE_BYTES];
	int			wrong = 0;

	if (raft_envelope_encode(&e, buf) != RAFT_ENVELOPE_BYTES ||
		raft_envelope_decode(buf, sizeof(buf), &d) != RAFT_WIRE_OK ||
		memcmp(d.cluster, e.cluster, sizeof(e.cluster)) != 0 ||
		d.from != e.from || d.to != e.to || d.count != e.count)
		wrong++;
	for (size_t cut = 0; cut < sizeof(buf); cut++)
		if (raft_envelope_decode(buf, cut, &d) != RAFT_WIRE_TRUNCATED)
			wrong++;
	buf[3] = (uint8_t) 'X';
	if (raft_envelope_decode(buf, sizeof(buf), &d) != RAFT_WIRE_BAD_VERSION)
		wrong++;
	if (wrong)
		fprintf(stderr, "wire self-test: %d wrong answers about the envelope\n", wrong);
	return wrong;
}

/*
 * wire_self_test: the cases of the banner; the number of wrong answers.
 */
int
wire_self_test(void)
{
	uint8_t    *buf = calloc(1, 4096);
	uint8_t		copy[1024];
	int			wrong = 0;
	uint64_t	rng = 12345;

	for (int k = 0; k < 3; k++)
	{
		size_t		len = sample(k, buf);

		expect(buf, len, RAFT_WIRE_OK, "a well-formed message", &wrong);
		for (size_t cut = 0; cut < len; cut++)
			expect(buf, cut, RAFT_WIRE_TRUNCATED, "a truncated message", &wrong);
		memcpy(copy, buf, len);
		for (int i = 0; i < MUTATIONS; i++)
		{
			memcpy(buf, copy, len);
			for (int flips = 1 + (int) sim_rand_below(&rng, 4); flips > 0; flips--)
				buf[sim_rand_below(&rng, len)] = (uint8_t) sim_rand_below(&rng, 256);
			(void) decode_in_bounds(buf, len, &wrong);
		}
		memcpy(buf, copy, len);
	}
	sample(0, buf);
	buf[0] = 2;
	expect(buf, 200, RAFT_WIRE_BAD_VERSION, "another version", &wrong);
	sample(0, buf);
	buf[1] = 99;
	expect(buf, 200, RAFT_WIRE_BAD_TYPE, "an unknown message type", &wrong);
	sample(2, buf);
	buf[2] |= 0x80;
	expect(buf, 200, RAFT_WIRE_BAD_FLAGS, "an unknown flag", &wrong);
	sample(2, buf);
	buf[2] |= 0x04;
	expect(buf, 200, RAFT_WIRE_BAD_FLAGS, "a snapshot in a response", &wrong);
	sample(0, buf);
	buf[4 + 9 * 8] = MAX_ENTRIES + 1;
	expect(buf, 4096, RAFT_WIRE_TOO_MANY, "more entries than allowed", &wrong);
	sample(0, buf);
	buf[4 + 9 * 8 + 4 + 16] = 7;
	expect(buf, 200, RAFT_WIRE_BAD_TYPE, "an unknown entry type", &wrong);
	sample(1, buf);
	buf[4 + 9 * 8 + 4 + 16] = RAFT_MAX_NODES;
	expect(buf, 4096, RAFT_WIRE_BAD_CONF, "a configuration past RAFT_MAX_NODES", &wrong);
	free(buf);
	return wrong + envelope_cases();
}
