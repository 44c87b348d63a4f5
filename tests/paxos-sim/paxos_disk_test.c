/*-------------------------------------------------------------------------
 *
 * paxos_disk_test.c
 *	  The Paxos acceptor store (extension/paxos/paxos_disk.c, pure C)
 *	  outside the server: what is saved reads back the same, a file cut
 *	  the way a crash cuts it reads back as the last whole Ready, and a
 *	  corrupt or hostile file is refused with a message, never read past.
 *
 * A model (the round and, per instance, its last record) follows every
 * save and forget; each reopen must hand back exactly the model.  Each
 * case works in its own directory under one mkdtemp directory, removed at
 * the end.  Exits 0 if every check passed, 1 otherwise.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../extension/paxos/paxos_disk.h"

#define MAX_INST	256
#define BIG_VALUE	65536

/* MRec: the model's last record of one instance */
typedef struct MRec
{
	bool		live;
	uint8_t		name[PAXOS_MAX_NAME];
	size_t		name_len;
	PaxosBallot promised;
	PaxosBallot accepted;
	bool		present;
	uint8_t    *value;
	size_t		value_len;
} MRec;

typedef struct Model
{
	uint64_t	round;
	int			n;				/* instances named so far */
	MRec		rec[MAX_INST];
} Model;

static int	failures;
static char base[256];
static uint64_t rng_state;

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			failures++; \
			printf("paxos-store-test: %s:%d: ", __func__, __LINE__); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

/* rnd: splitmix64, seeded per case, so a failure replays */
static uint64_t
rnd(void)
{
	uint64_t	z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t
rnd_below(size_t n)
{
	return (size_t) (rnd() % n);
}

/* case_dir: the directory of one case under base */
static void
case_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", base, name);
}

/* model_init: empty; instance i is named "inst-<i>" unless named later */
static void
model_init(Model *m)
{
	memset(m, 0, sizeof(Model));
	for (int i = 0; i < MAX_INST; i++)
		m->rec[i].name_len = (size_t) snprintf((char *) m->rec[i].name,
											   PAXOS_MAX_NAME, "inst-%d", i);
}

static void
model_free(Model *m)
{
	for (int i = 0; i < MAX_INST; i++)
		free(m->rec[i].value);
}

/* model_copy: dst a deep copy of src (values duplicated) */
static void
model_copy(Model *dst, const Model *src)
{
	memcpy(dst, src, sizeof(Model));
	for (int i = 0; i < MAX_INST; i++)
		if (src->rec[i].value != NULL)
		{
			dst->rec[i].value = malloc(src->rec[i].value_len + 1);
			memcpy(dst->rec[i].value, src->rec[i].value, src->rec[i].value_len);
		}
}

/* as_state: model record i as the store's input (pointers into m) */
static PaxosAcceptorState
as_state(const Model *m, int i)
{
	PaxosAcceptorState s;

	s.instance.data = m->rec[i].name;
	s.instance.len = m->rec[i].name_len;
	s.promised = m->rec[i].promised;
	s.accepted = m->rec[i].accepted;
	s.value.present = m->rec[i].present;
	s.value.data = m->rec[i].present ? m->rec[i].value : NULL;
	s.value.len = m->rec[i].value_len;
	return s;
}

/* set_rec: instance i's record in the model: ballots from r, value of len */
static void
set_rec(Model *m, int i, uint64_t r, bool present, size_t len)
{
	MRec	   *x = &m->rec[i];

	x->live = true;
	x->promised.round = r + 1;
	x->promised.node = (uint64_t) (i % 5) + 1;
	x->accepted.round = r;
	x->accepted.node = (uint64_t) (i % 3) + 1;
	x->present = present;
	free(x->value);
	x->value = malloc(len + 1);
	x->value_len = present ? len : 0;
	for (size_t k = 0; k < x->value_len; k++)
		x->value[k] = (uint8_t) rnd();
}

/* find_rec: the model's instance named like s, or -1 */
static int
find_rec(const Model *m, const PaxosAcceptorState *s)
{
	for (int i = 0; i < MAX_INST; i++)
		if (m->rec[i].name_len == s->instance.len &&
			memcmp(m->rec[i].name, s->instance.data, s->instance.len) == 0)
			return i;
	return -1;
}

/* rec_equal: whether the read-back s is model record i */
static bool
rec_equal(const Model *m, int i, const PaxosAcceptorState *s)
{
	const MRec *x = &m->rec[i];

	return x->live && s->promised.round == x->promised.round &&
		s->promised.node == x->promised.node &&
		s->accepted.round == x->accepted.round &&
		s->accepted.node == x->accepted.node &&
		s->value.present == x->present && s->value.len == x->value_len &&
		(x->value_len == 0 || memcmp(s->value.data, x->value, x->value_len) == 0) &&
		(x->present || s->value.data == NULL);
}

/* expect: what open read back must be the model */
static void
expect(const Model *m, uint64_t round, const PaxosAcceptorState *recs, size_t n,
	   const char *what)
{
	size_t		live = 0;

	for (int i = 0; i < MAX_INST; i++)
		live += m->rec[i].live;
	CHECK(round == m->round, "%s: round %llu, want %llu", what,
		  (unsigned long long) round, (unsigned long long) m->round);
	CHECK(n == live, "%s: %zu records, want %zu", what, n, live);
	for (size_t k = 0; k < n; k++)
	{
		int			i = find_rec(m, &recs[k]);

		CHECK(i >= 0 && rec_equal(m, i, &recs[k]), "%s: record %zu (instance %d) differs",
			  what, k, i);
	}
}

/* open_expect: open dir, which must succeed and read back m */
static PaxosDisk *
open_expect(const char *dir, const Model *m, const char *what)
{
	PaxosDisk  *d;
	PaxosAcceptorState *recs;
	size_t		n;
	uint64_t	round;
	char		err[512];

	if (paxos_disk_open(dir, &d, &round, &recs, &n, err, sizeof(err)) != 0)
	{
		printf("paxos-store-test: %s: open %s failed: %s\n", what, dir, err);
		exit(1);
	}
	expect(m, round, recs, n, what);
	paxos_disk_records_free(recs, n);
	return d;
}

/* reopen: close d, open dir again, which must read back m */
static PaxosDisk *
reopen(PaxosDisk *d, const char *dir, const Model *m, const char *what)
{
	paxos_disk_close(d);
	return open_expect(dir, m, what);
}

/* open_fails: opening dir must fail with a message containing needle */
static void
open_fails(const char *dir, const char *needle, const char *what)
{
	PaxosDisk  *d = (PaxosDisk *) 1;
	PaxosAcceptorState *recs = (PaxosAcceptorState *) 1;
	size_t		n = 1;
	uint64_t	round;
	char		err[512] = "";

	CHECK(paxos_disk_open(dir, &d, &round, &recs, &n, err, sizeof(err)) == -1 &&
		  d == NULL && recs == NULL && n == 0 && strstr(err, needle) != NULL,
		  "%s: open should fail naming \"%s\", said \"%s\"", what, needle, err);
	if (d != NULL && d != (PaxosDisk *) 1)
		paxos_disk_close(d);
}

/* save: instances idx[0..k) of m (and the round if set) as one Ready */
static void
save(PaxosDisk *d, const Model *m, bool round_changed, const int *idx, size_t k)
{
	PaxosAcceptorState recs[16];
	char		err[512];

	for (size_t j = 0; j < k; j++)
		recs[j] = as_state(m, idx[j]);
	CHECK(paxos_disk_save(d, round_changed, m->round, recs, k, err, sizeof(err)) == 0,
		  "save of %zu records: %s", k, err);
}

/* forget: instances idx[0..k) dropped, in the store and the model */
static void
forget(PaxosDisk *d, Model *m, const int *idx, size_t k)
{
	PaxosBytes	names[16];
	char		err[512];

	for (size_t j = 0; j < k; j++)
	{
		names[j].data = m->rec[idx[j]].name;
		names[j].len = m->rec[idx[j]].name_len;
		m->rec[idx[j]].live = false;
	}
	CHECK(paxos_disk_forget(d, names, k, err, sizeof(err)) == 0, "forget: %s", err);
}

/* file_path: dir's acceptors file */
static void
file_path(char *buf, size_t len, const char *dir)
{
	snprintf(buf, len, "%s/acceptors", dir);
}

static size_t
file_size(const char *dir)
{
	char		path[600];
	struct stat st;

	file_path(path, sizeof(path), dir);
	return stat(path, &st) == 0 ? (size_t) st.st_size : 0;
}

/* read_all: dir's acceptors file, malloc'd; its size in *len */
static uint8_t *
read_all(const char *dir, size_t *len)
{
	char		path[600];
	FILE	   *f;
	uint8_t    *buf;

	file_path(path, sizeof(path), dir);
	*len = file_size(dir);
	buf = malloc(*len + 1);
	f = fopen(path, "rb");
	if (f == NULL || fread(buf, 1, *len, f) != *len)
	{
		printf("paxos-store-test: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	return buf;
}

/* write_all: dir's acceptors file replaced by buf[0..len) */
static void
write_all(const char *dir, const uint8_t *buf, size_t len)
{
	char		path[600];
	FILE	   *f;

	file_path(path, sizeof(path), dir);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
	{
		printf("paxos-store-test: cannot write %s\n", path);
		exit(1);
	}
}

/*
 * test_round_trip: the round, an absent and an empty value, a name of
 * PAXOS_MAX_NAME bytes (zeros and 0xff in it), a 64 KB value; nothing to
 * save writes nothing; records the file cannot hold are refused without
 * harm.
 */
static void
test_round_trip(void)
{
	char		dir[512];
	Model		m;
	PaxosDisk  *d;
	PaxosDiskStats st;
	PaxosAcceptorState bad;
	char		err[512];
	int			idx[4] = {0, 1, 2, 3};

	rng_state = 1;
	case_dir(dir, sizeof(dir), "round-trip");
	model_init(&m);
	d = open_expect(dir, &m, "empty store");
	m.round = 7;
	set_rec(&m, 0, 3, false, 0);
	set_rec(&m, 1, 4, true, 0);
	m.rec[2].name_len = PAXOS_MAX_NAME;
	for (int k = 0; k < PAXOS_MAX_NAME; k++)
		m.rec[2].name[k] = (uint8_t) (k % 7 == 0 ? 0 : k % 5 == 0 ? 0xff : k);
	set_rec(&m, 2, 5, true, 10);
	set_rec(&m, 3, 6, true, BIG_VALUE);
	save(d, &m, true, idx, 4);
	paxos_disk_stats(d, &st);
	CHECK(paxos_disk_save(d, false, 99, NULL, 0, err, sizeof(err)) == 0, "empty save: %s", err);
	paxos_disk_stats(d, &st);
	CHECK(st.syncs == 1 && st.instances == 4, "empty save synced: %llu syncs",
		  (unsigned long long) st.syncs);

	bad = as_state(&m, 0);
	bad.instance.len = 0;
	CHECK(paxos_disk_save(d, false, 0, &bad, 1, err, sizeof(err)) == -1 &&
		  strstr(err, "name") != NULL, "empty name refused: %s", err);
	bad.instance.len = PAXOS_MAX_NAME + 1;
	bad.instance.data = calloc(1, PAXOS_MAX_NAME + 1);
	CHECK(paxos_disk_save(d, false, 0, &bad, 1, err, sizeof(err)) == -1,
		  "name of %d bytes refused", PAXOS_MAX_NAME + 1);
	free((void *) bad.instance.data);
	bad = as_state(&m, 0);
	bad.value.len = 3;
	CHECK(paxos_disk_save(d, false, 0, &bad, 1, err, sizeof(err)) == -1 &&
		  strstr(err, "absent") != NULL, "absent value with bytes refused: %s", err);
	paxos_disk_close(d);

	d = open_expect(dir, &m, "round trip");
	m.round = 8;
	save(d, &m, true, NULL, 0);
	d = reopen(d, dir, &m, "round alone");
	paxos_disk_close(d);
	model_free(&m);
}

/*
 * random_ready: a Ready of 1..4 random instances among the first ninst
 * (values up to maxval bytes, sometimes absent), a round change one time
 * in four; the model follows.  Returns the number of records in idx.
 */
static size_t
random_ready(Model *m, int ninst, size_t maxval, int *idx, bool *round_changed)
{
	size_t		k = 1 + rnd_below(4);

	*round_changed = rnd_below(4) == 0;
	if (*round_changed)
		m->round += 1 + rnd_below(3);
	for (size_t j = 0; j < k; j++)
	{
		idx[j] = (int) rnd_below((size_t) ninst);
		set_rec(m, idx[j], rnd() % 1000, rnd_below(6) != 0, rnd_below(maxval + 1));
	}
	return k;
}

/* test_last_wins: many Readies over few instances, reopened now and then */
static void
test_last_wins(void)
{
	char		dir[512];
	Model		m;
	PaxosDisk  *d;
	int			idx[4];
	bool		rc;

	rng_state = 2;
	case_dir(dir, sizeof(dir), "last-wins");
	model_init(&m);
	d = open_expect(dir, &m, "empty");
	for (int i = 1; i <= 400; i++)
	{
		size_t		k = random_ready(&m, 20, 300, idx, &rc);

		save(d, &m, rc, idx, k);
		if (i % 37 == 0)
		{
			d = reopen(d, dir, &m, "reopen during last-wins");
		}
	}
	d = reopen(d, dir, &m, "last wins");
	paxos_disk_close(d);
	model_free(&m);
}

/*
 * cut_case: the file holds whole[0..len), whose last Ready began at
 * start; m is the state before it.  The file cut at the given length (or
 * zeroed from it on) must read back as m and take a further save.
 */
static void
cut_case(const char *dir, const uint8_t *whole, size_t len, size_t cut,
		 bool zeroed, const Model *before)
{
	uint8_t    *buf = calloc(1, len + 1);
	Model		m;
	PaxosDisk  *d;
	int			idx[1] = {5};
	char		what[64];

	memcpy(buf, whole, cut);
	write_all(dir, buf, zeroed ? len : cut);
	free(buf);
	snprintf(what, sizeof(what), "%s at %zu", zeroed ? "zeroed" : "cut", cut);
	d = open_expect(dir, before, what);
	CHECK(file_size(dir) <= cut, "%s: the tail was not truncated", what);
	model_copy(&m, before);
	set_rec(&m, 5, 77, true, 33);
	save(d, &m, false, idx, 1);
	d = reopen(d, dir, &m, what);
	paxos_disk_close(d);
	model_free(&m);
}

/*
 * test_torn_tail: the last Ready (a 1024-byte name, a round and three
 * records) cut at every byte of its write reads back as the state before
 * it; zeroed from every 7th byte on (a size extended but data not
 * written), likewise.
 */
static void
test_torn_tail(void)
{
	char		dir[512];
	Model		m;
	Model		before;
	PaxosDisk  *d;
	int			idx[4];
	bool		rc;
	size_t		k;
	size_t		start;
	size_t		len;
	uint8_t    *whole;

	rng_state = 3;
	case_dir(dir, sizeof(dir), "torn-tail");
	model_init(&m);
	m.rec[9].name_len = PAXOS_MAX_NAME;
	memset(m.rec[9].name, 'n', PAXOS_MAX_NAME);
	d = open_expect(dir, &m, "empty");
	for (int i = 0; i < 30; i++)
	{
		k = random_ready(&m, 12, 200, idx, &rc);
		save(d, &m, rc, idx, k);
	}
	paxos_disk_close(d);
	model_copy(&before, &m);
	start = file_size(dir);
	d = open_expect(dir, &m, "before the last Ready");
	m.round++;
	idx[0] = 9;
	idx[1] = 1;
	idx[2] = 2;
	set_rec(&m, 9, 500, true, 40);
	set_rec(&m, 1, 501, false, 0);
	set_rec(&m, 2, 502, true, 0);
	save(d, &m, true, idx, 3);
	paxos_disk_close(d);
	whole = read_all(dir, &len);
	CHECK(len > start + PAXOS_MAX_NAME, "last Ready of %zu bytes", len - start);
	for (size_t cut = start; cut < len; cut++)
		cut_case(dir, whole, len, cut, false, &before);
	for (size_t cut = start; cut < len; cut += 7)
		cut_case(dir, whole, len, cut, true, &before);
	write_all(dir, whole, len);
	d = open_expect(dir, &m, "whole again");
	paxos_disk_close(d);
	free(whole);
	model_free(&m);
	model_free(&before);
}

/*
 * test_corruption: a byte flipped anywhere in a synced Ready that later
 * Readies follow is refused as corruption; flipped in the last Ready, it
 * reads as a torn tail (what a crash leaves looks the same).
 */
static void
test_corruption(void)
{
	char		dir[512];
	Model		m;
	PaxosDisk  *d;
	int			idx[4];
	bool		rc;
	size_t		k;
	size_t		lo = 0;
	size_t		hi = 0;
	size_t		len;
	uint8_t    *whole;

	rng_state = 4;
	case_dir(dir, sizeof(dir), "corruption");
	model_init(&m);
	d = open_expect(dir, &m, "empty");
	for (int i = 0; i < 9; i++)
	{
		if (i == 4)
			lo = file_size(dir);
		if (i == 5)
			hi = file_size(dir);
		k = random_ready(&m, 10, 100, idx, &rc);
		save(d, &m, rc, idx, k);
	}
	paxos_disk_close(d);
	whole = read_all(dir, &len);
	for (size_t off = lo; off < hi; off++)
	{
		whole[off] ^= 0x5a;
		write_all(dir, whole, len);
		open_fails(dir, "corrupt", "a flipped byte in the middle");
		whole[off] ^= 0x5a;
	}
	write_all(dir, whole, len);
	d = open_expect(dir, &m, "unflipped");
	paxos_disk_close(d);
	free(whole);
	model_free(&m);
}

/* frame: a hand-made frame of records rec[0..len) (n of them), save 1 */
static size_t
frame(uint8_t *out, const uint8_t *rec, size_t len, uint32_t n)
{
	size_t		total = 24 + len;
	size_t		padded = (total + 7) & ~(size_t) 7;
	uint8_t		hdr[24] = {0};
	uint32_t	crc = 0xffffffff;
	uint32_t	table_crc;

	memset(out, 0, padded);
	for (int b = 0; b < 4; b++)
	{
		hdr[b] = (uint8_t) (total >> (8 * b));
		hdr[16 + b] = (uint8_t) (n >> (8 * b));
	}
	hdr[8] = 1;
	memcpy(out, hdr, 24);
	memcpy(out + 24, rec, len);
	/* CRC-32C bit by bit: independent of the store's table */
	for (size_t i = 8; i < total; i++)
	{
		crc ^= out[i];
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
	}
	table_crc = crc ^ 0xffffffff;
	for (int b = 0; b < 4; b++)
		out[4 + b] = (uint8_t) (table_crc >> (8 * b));
	return padded;
}

/* hostile_case: a file of one valid-CRC frame holding rec must be refused */
static void
hostile_case(const char *dir, const uint8_t *rec, size_t len, uint32_t n,
			 const char *needle, const char *what)
{
	uint8_t		buf[4096];

	write_all(dir, buf, frame(buf, rec, len, n));
	open_fails(dir, needle, what);
}

/*
 * test_hostile: frames with a valid CRC whose records lie about lengths
 * are refused, with the reason; a well-formed hand-made frame is read
 * (the format is the one the header documents).
 */
static void
test_hostile(void)
{
	char		dir[512];
	uint8_t		r[64] = {0};
	Model		m;
	PaxosDisk  *d;

	case_dir(dir, sizeof(dir), "hostile");
	model_init(&m);
	d = open_expect(dir, &m, "empty");
	paxos_disk_close(d);
	r[0] = 2;					/* ACCEPTOR, name length 0 */
	hostile_case(dir, r, 44, 1, "name length", "empty name");
	r[2] = 0x01;
	r[3] = 0x04;				/* name length 1025 */
	hostile_case(dir, r, 44, 1, "name length", "long name");
	r[2] = 4;
	r[3] = 0;					/* name of 4, value of 100 in 4 bytes */
	r[1] = 1;
	r[4] = 100;
	hostile_case(dir, r, 44, 1, "past the end", "value past the end");
	r[1] = 0;					/* absent, yet 100 value bytes */
	hostile_case(dir, r, 44, 1, "absent", "absent value with bytes");
	r[0] = 3;
	r[1] = 0;
	r[2] = 200;					/* FORGET of a name past the end */
	hostile_case(dir, r, 8, 1, "past the end", "forget past the end");
	r[2] = 0;					/* FORGET of an empty name */
	hostile_case(dir, r, 8, 1, "name length", "forget an empty name");
	r[0] = 9;
	hostile_case(dir, r, 8, 1, "unknown", "unknown type");
	r[0] = 1;					/* ROUND cut short, then a count too high */
	hostile_case(dir, r, 5, 1, "cut short", "round cut short");
	hostile_case(dir, r, 9, 1000000, "missing", "count too high");
	hostile_case(dir, r, 16, 1, "after its last record", "bytes after the records");
	memset(r, 0, sizeof(r));
	r[0] = 1;
	r[1] = 42;					/* ROUND 42, well formed */
	{
		uint8_t		buf[80];

		CHECK(frame(buf, r, 9, 1) == 40, "hand-made frame size");
		write_all(dir, buf, 40);
		m.round = 42;
		d = open_expect(dir, &m, "hand-made round");
		paxos_disk_close(d);
		/* the same save twice: valid frames out of order */
		memcpy(buf + 40, buf, 40);
		write_all(dir, buf, 80);
		open_fails(dir, "is save 1, not 2", "a save repeated");
	}
	model_free(&m);
}

/*
 * test_compaction: a random workload of 3000 Readies (and forgets) over
 * 200 instances, the compaction floor lowered to 64 KB: the file is
 * rewritten now and then, stays within 4 x the live set plus a Ready, and
 * every reopen (also right after compactions) reads back the model.
 */
static void
test_compaction(void)
{
	char		dir[512];
	Model		m;
	PaxosDisk  *d;
	PaxosDiskStats st;
	uint64_t	compactions = 0;
	uint64_t	seen = 0;
	int			idx[4];
	bool		rc;
	bool		just;

	rng_state = 5;
	case_dir(dir, sizeof(dir), "compaction");
	model_init(&m);
	d = open_expect(dir, &m, "empty");
	paxos_disk_set_compact_floor(d, 65536);
	for (int i = 1; i <= 3000; i++)
	{
		if (rnd_below(20) == 0)
		{
			idx[0] = (int) rnd_below(200);
			idx[1] = (int) rnd_below(200);
			forget(d, &m, idx, 2);
		}
		else
		{
			size_t		k = random_ready(&m, 200, i % 500 == 0 ? BIG_VALUE : 400, idx, &rc);

			save(d, &m, rc, idx, k);
		}
		paxos_disk_stats(d, &st);
		just = st.compactions != seen;
		if (just)
		{
			CHECK(st.file_bytes == st.live_bytes, "after compaction: file %llu, live %llu",
				  (unsigned long long) st.file_bytes, (unsigned long long) st.live_bytes);
			compactions += st.compactions - seen;
			seen = st.compactions;
		}
		CHECK(st.file_bytes <= 65536 || st.file_bytes <= 4 * st.live_bytes,
			  "file of %llu bytes for a live set of %llu", (unsigned long long) st.file_bytes,
			  (unsigned long long) st.live_bytes);
		if (i % 250 == 0 || (just && compactions % 3 == 0))
		{
			d = reopen(d, dir, &m, "reopen during compaction workload");
			paxos_disk_set_compact_floor(d, 65536);
			seen = 0;
		}
	}
	CHECK(compactions >= 5, "only %llu compactions", (unsigned long long) compactions);
	d = reopen(d, dir, &m, "after the workload");
	paxos_disk_close(d);
	model_free(&m);
}

/*
 * test_forget: a forgotten instance stays forgotten across a reopen and a
 * compaction; forgetting a name never stored writes nothing; the
 * instance may be saved again.
 */
static void
test_forget(void)
{
	char		dir[512];
	Model		m;
	PaxosDisk  *d;
	PaxosDiskStats st;
	PaxosBytes	none = {"no such instance", 16};
	char		err[512];
	int			idx[3] = {0, 1, 2};
	int			gone[1] = {1};
	uint64_t	syncs;

	rng_state = 6;
	case_dir(dir, sizeof(dir), "forget");
	model_init(&m);
	d = open_expect(dir, &m, "empty");
	for (int i = 0; i < 3; i++)
		set_rec(&m, i, 10, true, 50);
	save(d, &m, false, idx, 3);
	forget(d, &m, gone, 1);
	paxos_disk_stats(d, &st);
	syncs = st.syncs;
	CHECK(paxos_disk_forget(d, &none, 1, err, sizeof(err)) == 0, "forget unknown: %s", err);
	paxos_disk_stats(d, &st);
	CHECK(st.syncs == syncs && st.instances == 2, "forgetting nothing synced");
	d = reopen(d, dir, &m, "forgotten, reopened");
	paxos_disk_set_compact_floor(d, 1);
	for (int i = 0; i < 20; i++)
	{
		set_rec(&m, 0, 20 + (uint64_t) i, true, 50);
		save(d, &m, false, idx, 1);
	}
	paxos_disk_stats(d, &st);
	CHECK(st.compactions > 0, "no compaction");
	d = reopen(d, dir, &m, "forgotten, compacted");
	forget(d, &m, idx, 1);
	d = reopen(d, dir, &m, "forgotten after compaction");
	set_rec(&m, 1, 99, true, 5);
	save(d, &m, false, gone, 1);
	d = reopen(d, dir, &m, "saved again");
	paxos_disk_close(d);
	model_free(&m);
}

/* test_bad_dir: a directory that cannot be opened gives -1 and a message */
static void
test_bad_dir(void)
{
	char		dir[512];
	char		sub[600];

	write_all(base, (const uint8_t *) "x", 1);	/* base/acceptors */
	snprintf(dir, sizeof(dir), "%s/acceptors", base);
	open_fails(dir, dir, "a regular file as the directory");
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	open_fails(sub, "could not create directory", "a directory under a file");
	if (geteuid() != 0)
	{
		case_dir(dir, sizeof(dir), "unreadable");
		mkdir(dir, 0700);
		snprintf(sub, sizeof(sub), "%s/inner", dir);
		mkdir(sub, 0700);
		chmod(dir, 0);
		open_fails(sub, "could not", "an unreadable directory");
		chmod(dir, 0700);
	}
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void) sb;
	(void) flag;
	(void) ftw;
	return remove(path);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/paxos_disk_test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(base) == NULL)
	{
		perror("paxos-store-test: mkdtemp");
		return 1;
	}
	test_round_trip();
	test_last_wins();
	test_torn_tail();
	test_corruption();
	test_hostile();
	test_forget();
	test_compaction();
	test_bad_dir();
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (failures > 0)
	{
		printf("paxos-store-test: %d checks failed\n", failures);
		return 1;
	}
	printf("paxos-store-test: ok\n");
	return 0;
}
