/*-------------------------------------------------------------------------
 *
 * psim_bytes.c
 *	  The Paxos simulator's instance names and value bytes.
 *
 * The checkers (tests/sim/lincheck.c and psim_check.c) reason about int64
 * values, 0 meaning absent.  The core sees byte strings of varied length:
 * v encodes as its 8 bytes (little-endian) followed by a length and bytes
 * that depend on v, so lengths run from 8 to PS_VALUE_MAX; PS_EMPTY
 * encodes as the empty string and 0 as an absent value.  Decoding checks
 * every byte, so a core that truncates, pads or mixes up values is caught.
 *
 * Names: decree instances "decree-D"; register key 0 has the longest name
 * the core accepts (PAXOS_MAX_NAME bytes), key 1 a name with a zero byte
 * inside (names are not C strings), the others short ones.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "psim.h"

#define PAD_MAX		(PS_VALUE_MAX - 8)

static char names[PS_INSTANCES][PAXOS_MAX_NAME];
static size_t name_len[PS_INSTANCES];

/*
 * init_names: the table, once.
 */
static void
init_names(void)
{
	int			x;

	if (name_len[0] != 0)
		return;
	for (x = 0; x < PS_DECREES; x++)
		name_len[x] = (size_t) snprintf(names[x], PAXOS_MAX_NAME,
										"decree-%d", x + 1);
	for (x = PS_DECREES; x < PS_INSTANCES; x++)
		name_len[x] = (size_t) snprintf(names[x], PAXOS_MAX_NAME,
										"register-%d", x - PS_DECREES);
	memset(names[PS_DECREES] + name_len[PS_DECREES], '.',
		   PAXOS_MAX_NAME - name_len[PS_DECREES]);
	name_len[PS_DECREES] = PAXOS_MAX_NAME;
	name_len[PS_DECREES + 1] += 2;	/* "register-1\0x" */
	names[PS_DECREES + 1][name_len[PS_DECREES + 1] - 1] = 'x';
}

/*
 * ps_inst_name: the name of simulated instance x (0 .. PS_INSTANCES - 1).
 */
PaxosBytes
ps_inst_name(int x)
{
	PaxosBytes	b;

	init_names();
	b.data = names[x];
	b.len = name_len[x];
	return b;
}

/*
 * ps_inst_index: x for a simulated instance's name, -1 for any other.
 */
int
ps_inst_index(PaxosBytes name)
{
	int			x;

	init_names();
	for (x = 0; x < PS_INSTANCES; x++)
		if (name.len == name_len[x] && memcmp(name.data, names[x], name.len) == 0)
			return x;
	return -1;
}

/*
 * pad_len: how many bytes follow v's eight.
 */
static size_t
pad_len(int64_t v)
{
	return (size_t) ((uint64_t) v * 2654435761u % (PAD_MAX + 1));
}

/*
 * ps_encode: v's bytes, written to buf (PS_VALUE_MAX bytes).
 */
PaxosValue
ps_encode(int64_t v, unsigned char *buf)
{
	PaxosValue	r;
	size_t		i;

	memset(&r, 0, sizeof(r));
	if (v == 0)
		return r;
	r.present = true;
	if (v == PS_EMPTY)
		return r;
	for (i = 0; i < 8; i++)
		buf[i] = (unsigned char) ((uint64_t) v >> (8 * i));
	for (i = 0; i < pad_len(v); i++)
		buf[8 + i] = (unsigned char) (v + i);
	r.data = buf;
	r.len = 8 + pad_len(v);
	return r;
}

/*
 * ps_decode: *v for bytes ps_encode made; false if they are not such.
 */
bool
ps_decode(PaxosValue b, int64_t *v)
{
	unsigned char buf[PS_VALUE_MAX];
	const unsigned char *d = b.data;
	uint64_t	u = 0;
	int			i;

	*v = 0;
	if (!b.present)
		return b.len == 0;
	*v = PS_EMPTY;
	if (b.len == 0)
		return true;
	if (b.len < 8)
		return false;
	for (i = 0; i < 8; i++)
		u |= (uint64_t) d[i] << (8 * i);
	*v = (int64_t) u;
	if (*v == 0 || *v == PS_EMPTY)
		return false;
	return paxos_value_equal(b, ps_encode(*v, buf));
}
