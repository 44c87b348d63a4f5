/*-------------------------------------------------------------------------
 *
 * store_test.c
 *	  The Raft node's durable store (extension/raft/raft_store.c, pure C)
 *	  outside the server: what is saved reads back the same, and files cut
 *	  or corrupted the way a crash or a bad disk would read back as the
 *	  last whole save or are refused with the file and offset named.
 *
 * Each case works in its own directory under one mkdtemp directory, which
 * is removed at the end.  Entries' payloads are a function of their index
 * and term, so a model of the log (a term per index) is enough to compare.
 * Exits 0 if every check passed, 1 otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../extension/raft/raft_store.h"

#define MAX_INDEX	4096
#define SEG_SMALL	4096

/* Model: what the store should read back */
typedef struct Model
{
	bool		hs_found;
	RaftHardState hs;
	uint64_t	snap_index;		/* 0: no snapshot */
	uint64_t	snap_term;
	uint64_t	first;
	uint64_t	last;
	uint64_t	term[MAX_INDEX];
} Model;

static int	failures;
static char base[256];

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			failures++; \
			printf("store-test: %s:%d: ", __func__, __LINE__); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

/* payload_len: the payload size of entry index, term (0 included) */
static size_t
payload_len(uint64_t index, uint64_t term)
{
	return (size_t) ((index * 7 + term * 3) % 200);
}

/* fill_entry: entry index, term with its payload (malloc'd) */
static void
fill_entry(RaftEntry *e, uint64_t index, uint64_t term, size_t len)
{
	e->index = index;
	e->term = term;
	e->type = index % 5 == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL;
	e->len = len;
	e->data = malloc(len ? len : 1);
	for (size_t k = 0; k < len; k++)
		e->data[k] = (uint8_t) (index * 31 + term * 17 + k);
}

/* entry_ok: whether e is what fill_entry made for index, term */
static bool
entry_ok(const RaftEntry *e, uint64_t index, uint64_t term, size_t len)
{
	if (e->index != index || e->term != term || e->len != len ||
		e->type != (index % 5 == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL))
		return false;
	for (size_t k = 0; k < len; k++)
		if (e->data[k] != (uint8_t) (index * 31 + term * 17 + k))
			return false;
	return true;
}

/* case_dir: a fresh directory name for one case */
static void
case_dir(char *buf, const char *name)
{
	snprintf(buf, 512, "%s/%s", base, name);
}

/* open_ok: open dir, which must succeed */
static RaftStore *
open_ok(const char *dir, size_t seg, RaftStoreState *st)
{
	RaftStoreOptions opt = {seg};
	RaftStore  *s;
	char		err[512];

	if (raft_store_open(dir, &opt, &s, st, err, sizeof(err)) != 0)
	{
		printf("store-test: open %s failed: %s\n", dir, err);
		exit(1);
	}
	return s;
}

/*
 * save: entries [from, from + n) of term (payloads by payload_len), and hs
 * if hs_term is nonzero; the model follows.  Returns raft_store_save's rc.
 */
static int
save(RaftStore *s, Model *m, uint64_t from, size_t n, uint64_t term, uint64_t hs_term)
{
	RaftEntry  *ents = calloc(n ? n : 1, sizeof(RaftEntry));
	RaftReady	rd = {0};
	char		err[512];
	int			rc;

	for (size_t i = 0; i < n; i++)
		fill_entry(&ents[i], from + i, term, payload_len(from + i, term));
	rd.entries = ents;
	rd.n_entries = n;
	rd.hs_changed = hs_term != 0;
	rd.hs.term = hs_term;
	rd.hs.vote = hs_term % 3 + 1;
	rd.hs.commit = from;
	rc = raft_store_save(s, &rd, err, sizeof(err));
	CHECK(rc == 0, "save of %llu..+%zu: %s", (unsigned long long) from, n, err);
	for (size_t i = 0; i < n; i++)
		free(ents[i].data);
	free(ents);
	if (rc == 0 && n > 0)
	{
		for (size_t i = 0; i < n; i++)
			m->term[from + i] = term;
		m->last = from + n - 1;
	}
	if (rc == 0 && rd.hs_changed)
	{
		m->hs_found = true;
		m->hs = rd.hs;
	}
	return rc;
}

/* model_init: an empty store's model */
static void
model_init(Model *m)
{
	memset(m, 0, sizeof(Model));
	m->first = 1;
}

/* expect: st must be what m says */
static void
expect(const RaftStoreState *st, const Model *m, const char *what)
{
	size_t		n = (size_t) (m->last + 1 - m->first);
	RaftRestore rs;

	CHECK(st->hs_found == m->hs_found, "%s: hard state found %d", what, st->hs_found);
	CHECK(!m->hs_found || (st->hs.term == m->hs.term && st->hs.vote == m->hs.vote &&
						   st->hs.commit == m->hs.commit),
		  "%s: hard state term %llu commit %llu", what,
		  (unsigned long long) st->hs.term, (unsigned long long) st->hs.commit);
	CHECK(st->has_snapshot == (m->snap_index != 0), "%s: has snapshot %d", what, st->has_snapshot);
	CHECK(!st->has_snapshot || (st->snapshot.index == m->snap_index &&
								st->snapshot.term == m->snap_term),
		  "%s: snapshot at %llu", what, (unsigned long long) st->snapshot.index);
	CHECK(st->n_entries == n, "%s: %zu entries, want %zu", what, st->n_entries, n);
	for (size_t i = 0; i < n && i < st->n_entries; i++)
	{
		uint64_t	idx = m->first + i;

		CHECK(entry_ok(&st->entries[i], idx, m->term[idx], payload_len(idx, m->term[idx])),
			  "%s: entry %llu differs", what, (unsigned long long) idx);
	}
	raft_store_restore(st, &rs);
	CHECK(rs.n_entries == st->n_entries && rs.entries == st->entries &&
		  (rs.snapshot != NULL) == st->has_snapshot, "%s: restore", what);
}

/* reopen: close s, open dir again, compare with m; the new store */
static RaftStore *
reopen(RaftStore *s, const char *dir, size_t seg, const Model *m, const char *what)
{
	RaftStoreState st;

	raft_store_close(s);
	s = open_ok(dir, seg, &st);
	expect(&st, m, what);
	raft_store_state_free(&st);
	return s;
}

/* count_files: files in dir whose name ends with suffix */
static int
count_files(const char *dir, const char *suffix)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;
	int			n = 0;
	size_t		sl = strlen(suffix);

	while (d != NULL && (de = readdir(d)) != NULL)
	{
		size_t		l = strlen(de->d_name);

		n += l > sl && strcmp(de->d_name + l - sl, suffix) == 0;
	}
	if (d)
		closedir(d);
	return n;
}

/* seg_path: the path of segment number n in dir */
static void
seg_path(char *buf, const char *dir, int n)
{
	snprintf(buf, 600, "%s/%016x.log", dir, n);
}

/* read_whole / write_whole: a file's bytes, for cutting and corrupting */
static uint8_t *
read_whole(const char *path, size_t *size)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;

	if (f == NULL)
	{
		printf("store-test: cannot read %s\n", path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	*size = (size_t) ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(*size + 1);
	if (fread(buf, 1, *size, f) != *size)
		exit(1);
	fclose(f);
	return buf;
}

static void
write_whole(const char *path, const uint8_t *buf, size_t size)
{
	FILE	   *f = fopen(path, "wb");

	if (f == NULL || fwrite(buf, 1, size, f) != size || fclose(f) != 0)
	{
		printf("store-test: cannot write %s\n", path);
		exit(1);
	}
}

/* open_fails: opening dir must fail with a message naming both needles */
static void
open_fails(const char *dir, const char *needle, const char *needle2, const char *what)
{
	RaftStoreOptions opt = {SEG_SMALL};
	RaftStoreState st;
	RaftStore  *s;
	char		err[512] = "";
	int			rc = raft_store_open(dir, &opt, &s, &st, err, sizeof(err));

	CHECK(rc == -1 && s == NULL, "%s: open succeeded", what);
	CHECK(strstr(err, needle) != NULL && strstr(err, needle2) != NULL,
		  "%s: message \"%s\" does not name %s and %s", what, err, needle, needle2);
	if (rc == 0)
	{
		raft_store_state_free(&st);
		raft_store_close(s);
	}
}

static void
test_empty(void)
{
	char		dir[512];
	RaftStoreState st;
	RaftStore  *s;
	Model		m;
	RaftReady	rd = {0};
	RaftStoreStats stats;

	model_init(&m);
	case_dir(dir, "empty");
	s = open_ok(dir, 0, &st);
	expect(&st, &m, "new store");
	raft_store_state_free(&st);
	CHECK(raft_store_save(s, &rd, NULL, 0) == 0, "empty save");
	raft_store_stats(s, &stats);
	CHECK(stats.syncs == 0 && stats.segments == 1, "an empty save synced (%llu)",
		  (unsigned long long) stats.syncs);
	s = reopen(s, dir, 0, &m, "empty reopened");
	raft_store_close(s);
}

static void
test_roundtrip_and_truncate(void)
{
	char		dir[512];
	RaftStoreState st;
	RaftStore  *s;
	Model		m;

	model_init(&m);
	case_dir(dir, "roundtrip");
	s = open_ok(dir, 0, &st);
	raft_store_state_free(&st);
	save(s, &m, 1, 5, 1, 1);
	save(s, &m, 6, 0, 0, 2);	/* a hard state alone */
	s = reopen(s, dir, 0, &m, "entries and hard state");
	save(s, &m, 6, 4, 2, 0);
	save(s, &m, 3, 2, 3, 3);	/* a new leader's conflicting suffix */
	CHECK(m.last == 4, "model");
	s = reopen(s, dir, 0, &m, "conflicting suffix cut");
	save(s, &m, 5, 3, 3, 0);
	s = reopen(s, dir, 0, &m, "appended after the cut");
	raft_store_close(s);
}

static void
test_bad_saves(void)
{
	char		dir[512];
	RaftStoreState st;
	RaftStore  *s;
	Model		m;
	RaftEntry	e[2];
	RaftReady	rd = {0};
	char		err[512];

	model_init(&m);
	case_dir(dir, "badsave");
	s = open_ok(dir, 0, &st);
	raft_store_state_free(&st);
	save(s, &m, 1, 3, 1, 1);
	fill_entry(&e[0], 6, 1, 4);
	fill_entry(&e[1], 8, 1, 4);
	rd.entries = e;
	rd.n_entries = 1;
	CHECK(raft_store_save(s, &rd, err, sizeof(err)) == -1, "a gap after 3 was stored");
	e[0].index = 4;
	rd.n_entries = 2;
	CHECK(raft_store_save(s, &rd, err, sizeof(err)) == -1, "entries 4, 8 were stored");
	free(e[0].data);
	free(e[1].data);
	s = reopen(s, dir, 0, &m, "refused saves wrote nothing");
	raft_store_close(s);
}

static void
test_segments(void)
{
	char		dir[512];
	RaftStoreState st;
	RaftStore  *s;
	RaftStoreStats stats;
	Model		m;
	uint64_t	i;

	model_init(&m);
	case_dir(dir, "segments");
	s = open_ok(dir, SEG_SMALL, &st);
	raft_store_state_free(&st);
	for (i = 1; i <= 200; i++)
		save(s, &m, i, 1, 1 + i / 50, i % 7 == 0 ? 1 + i / 50 : 0);
	raft_store_stats(s, &stats);
	CHECK(stats.segments >= 5 && stats.syncs == 200, "%llu segments, %llu syncs",
		  (unsigned long long) stats.segments, (unsigned long long) stats.syncs);
	CHECK(count_files(dir, ".log") == (int) stats.segments, "segment files");
	s = reopen(s, dir, SEG_SMALL, &m, "200 saves in small segments");
	save(s, &m, 150, 20, 9, 9);
	s = reopen(s, dir, SEG_SMALL, &m, "cut back across segments");
	raft_store_close(s);
}

/* compact: the node's snapshot at index, term; the model follows */
static void
compact(RaftStore *s, Model *m, uint64_t index, uint64_t term)
{
	RaftSnapshot snap = {0};
	char		err[512];
	char		data[] = "state machine";

	snap.index = index;
	snap.term = term;
	snap.conf.n_voters = 3;
	snap.conf.voters[0] = 1;
	snap.conf.voters[1] = 2;
	snap.conf.voters[2] = 3;
	snap.len = sizeof(data);
	snap.data = (uint8_t *) data;
	CHECK(raft_store_compact(s, &snap, err, sizeof(err)) == 0, "compact to %llu: %s",
		  (unsigned long long) index, err);
	m->snap_index = index;
	m->snap_term = term;
	m->first = index + 1;
}

static void
test_compaction(void)
{
	char		dir[512];
	RaftStoreState st;
	RaftStore  *s;
	Model		m;
	int			before;

	model_init(&m);
	case_dir(dir, "compact");
	s = open_ok(dir, SEG_SMALL, &st);
	raft_store_state_free(&st);
	for (uint64_t i = 1; i <= 200; i += 2)
		save(s, &m, i, 2, 1, i == 1 ? 1 : 0);
	before = count_files(dir, ".log");
	compact(s, &m, 180, 1);
	CHECK(count_files(dir, ".log") < before - 3, "segments %d before, %d after",
		  before, count_files(dir, ".log"));
	CHECK(count_files(dir, ".snap") == 1, "snapshot files");
	s = reopen(s, dir, SEG_SMALL, &m, "compacted");
	save(s, &m, 201, 30, 2, 2);
	compact(s, &m, 220, 2);
	CHECK(count_files(dir, ".snap") == 1, "old snapshot removed");
	s = reopen(s, dir, SEG_SMALL, &m, "compacted twice");
	raft_store_close(s);
}

static void
test_install_snapshot(void)
{
	char		dir[512];
	RaftStoreState st;
	RaftStore  *s;
	Model		m;
	RaftSnapshot snap = {0};
	RaftEntry	e;
	RaftReady	rd = {0};
	char		err[512];

	model_init(&m);
	case_dir(dir, "install");
	s = open_ok(dir, SEG_SMALL, &st);
	raft_store_state_free(&st);
	for (uint64_t i = 1; i <= 60; i += 4)
		save(s, &m, i, 4, 1, 1);
	compact(s, &m, 20, 1);
	snap.index = 500;
	snap.term = 7;
	snap.conf.n_voters = 1;
	snap.conf.voters[0] = 4;
	snap.conf.n_learners = 1;
	snap.conf.learners[0] = 5;
	fill_entry(&e, 501, 7, payload_len(501, 7));
	rd.snapshot = &snap;
	rd.entries = &e;
	rd.n_entries = 1;
	CHECK(raft_store_save(s, &rd, err, sizeof(err)) == 0, "install: %s", err);
	free(e.data);
	m.snap_index = 500;
	m.snap_term = 7;
	m.first = 501;
	m.last = 501;
	m.term[501] = 7;
	CHECK(count_files(dir, ".log") == 1 && count_files(dir, ".snap") == 1,
		  "after install: %d segments, %d snapshots", count_files(dir, ".log"),
		  count_files(dir, ".snap"));
	raft_store_close(s);
	s = open_ok(dir, SEG_SMALL, &st);
	expect(&st, &m, "installed snapshot");
	CHECK(st.snapshot.len == 0 && st.snapshot.conf.n_voters == 1 &&
		  st.snapshot.conf.voters[0] == 4 && st.snapshot.conf.learners[0] == 5,
		  "snapshot configuration");
	raft_store_state_free(&st);
	save(s, &m, 502, 3, 7, 7);
	s = reopen(s, dir, SEG_SMALL, &m, "after install");
	raft_store_close(s);
}

/*
 * test_torn_tail: the last save cut at every byte, zeroed from every byte,
 * or with any one byte flipped, reads back as the save before; and the store goes
 * on from there.
 */
static void
test_torn_tail(void)
{
	char		dir[512];
	char		path[600];
	RaftStoreState st;
	RaftStore  *s;
	RaftStoreStats a, b;
	Model		m,
				m_after;
	uint8_t    *orig,
			   *copy;
	size_t		size;

	model_init(&m);
	case_dir(dir, "torn");
	s = open_ok(dir, SEG_SMALL, &st);
	raft_store_state_free(&st);
	save(s, &m, 1, 3, 1, 1);
	save(s, &m, 4, 1, 1, 0);
	raft_store_stats(s, &a);
	m_after = m;
	save(s, &m_after, 5, 3, 2, 2);
	raft_store_stats(s, &b);
	raft_store_close(s);
	seg_path(path, dir, 1);
	orig = read_whole(path, &size);
	copy = malloc(size);
	for (size_t c = a.bytes; c < b.bytes; c++)
	{
		write_whole(path, orig, c);
		raft_store_close(reopen(NULL, dir, SEG_SMALL, &m, "cut"));
		memcpy(copy, orig, size);
		memset(copy + c, 0, b.bytes - c);
		write_whole(path, copy, size);
		/* zeroing bytes that were zero (a vote's high bytes) changes nothing */
		raft_store_close(reopen(NULL, dir, SEG_SMALL,
								memcmp(copy, orig, size) != 0 ? &m : &m_after, "zeroed"));
		memcpy(copy, orig, size);
		copy[c] ^= 0xff;
		write_whole(path, copy, size);
		raft_store_close(reopen(NULL, dir, SEG_SMALL, &m, "byte flipped"));
	}
	write_whole(path, orig, size);
	raft_store_close(reopen(NULL, dir, SEG_SMALL, &m_after, "whole"));
	/* a torn tail is zeroed on open and a cut file made whole again */
	write_whole(path, orig, a.bytes + 20);
	raft_store_close(reopen(NULL, dir, SEG_SMALL, &m, "cut again"));
	free(copy);
	copy = read_whole(path, &size);
	CHECK(size == SEG_SMALL &&
		  memcmp(copy, orig, a.bytes) == 0, "torn segment not repaired");
	for (size_t c = a.bytes; c < size; c++)
		CHECK(copy[c] == 0, "byte %zu of the torn segment not zeroed", c);
	s = open_ok(dir, SEG_SMALL, &st);
	raft_store_state_free(&st);
	save(s, &m, 5, 2, 3, 3);
	s = reopen(s, dir, SEG_SMALL, &m, "written after a torn tail");
	raft_store_close(s);
	free(orig);
	free(copy);
}

/* record_ends: offsets where the records of a segment's bytes end, in ends[] */
static size_t
record_ends(const uint8_t *buf, size_t size, size_t *ends, size_t max)
{
	size_t		off = 0;
	size_t		n = 0;

	while (off + 4 <= size && n < max)
	{
		uint32_t	len = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16 |
			(uint32_t) buf[off + 3] << 24;

		if (len == 0)
			break;
		off += (len + 7) & ~7u;
		ends[n++] = off;
	}
	return n;
}

/*
 * test_corruption: a byte flipped inside a synced save that later saves
 * follow is corruption, named with file and offset: in the middle of a
 * segment, in the last save of a segment the next one continues, and a
 * segment gone from the middle.
 */
static void
test_corruption(void)
{
	char		dir[512];
	char		path[600];
	char		moved[600];
	RaftStoreState st;
	RaftStore  *s;
	Model		m;
	uint8_t    *orig;
	size_t		size;
	size_t		ends[256];
	size_t		n;

	model_init(&m);
	case_dir(dir, "corrupt");
	s = open_ok(dir, SEG_SMALL, &st);
	raft_store_state_free(&st);
	for (uint64_t i = 1; i <= 60; i++)
		save(s, &m, i, 1, 1, 1);
	raft_store_close(s);
	seg_path(path, dir, 1);
	orig = read_whole(path, &size);
	n = record_ends(orig, size, ends, 256);
	CHECK(n > 6, "records in segment 1: %zu", n);
	orig[ends[2] + 45] ^= 0x10;	/* an entry's payload, mid-segment */
	write_whole(path, orig, size);
	open_fails(dir, "0000000000000001.log", "offset", "bit flip mid-segment");
	orig[ends[2] + 45] ^= 0x10;
	orig[ends[n - 1] - 20] ^= 0x01; /* the last save of segment 1 */
	write_whole(path, orig, size);
	open_fails(dir, "0000000000000002.log", "offset 0", "bit flip at a segment's end");
	orig[ends[n - 1] - 20] ^= 0x01;
	write_whole(path, orig, size);
	raft_store_close(reopen(NULL, dir, SEG_SMALL, &m, "repaired by hand"));
	seg_path(path, dir, 2);
	memcpy(moved, path, sizeof(moved));
	moved[strlen(moved) - 4] = '_';		/* a name the store ignores */
	CHECK(rename(path, moved) == 0, "move segment 2");
	open_fails(dir, "0000000000000002", "missing", "segment gone");
	CHECK(rename(moved, path) == 0, "move segment 2 back");
	free(orig);
}

static void
test_big_record(void)
{
	char		dir[512];
	char		path[600];
	RaftStoreState st;
	RaftStore  *s;
	Model		m;
	RaftEntry	e;
	RaftReady	rd = {0};
	char		err[512];
	struct stat sb;

	model_init(&m);
	case_dir(dir, "big");
	s = open_ok(dir, SEG_SMALL, &st);
	raft_store_state_free(&st);
	save(s, &m, 1, 2, 1, 1);
	fill_entry(&e, 3, 1, 3 * SEG_SMALL);
	rd.entries = &e;
	rd.n_entries = 1;
	CHECK(raft_store_save(s, &rd, err, sizeof(err)) == 0, "big entry: %s", err);
	save(s, &m, 4, 2, 1, 1);
	raft_store_close(s);
	seg_path(path, dir, 2);
	CHECK(stat(path, &sb) == 0 && sb.st_size > 3 * SEG_SMALL, "segment 2 sized to fit");
	s = open_ok(dir, SEG_SMALL, &st);
	CHECK(st.n_entries == 5 && entry_ok(&st.entries[2], 3, 1, 3 * SEG_SMALL) &&
		  entry_ok(&st.entries[4], 5, 1, payload_len(5, 1)), "big entry read back");
	raft_store_state_free(&st);
	raft_store_close(s);
	free(e.data);
}

/* rm_tree: remove dir and the files and directories in it */
static void
rm_tree(const char *dir)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;
	char		path[1024];

	while (d != NULL && (de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0)
			rm_tree(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/store_test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(base) == NULL)
	{
		perror("store-test: mkdtemp");
		return 1;
	}
	test_empty();
	test_roundtrip_and_truncate();
	test_bad_saves();
	test_segments();
	test_compaction();
	test_install_snapshot();
	test_torn_tail();
	test_corruption();
	test_big_record();
	rm_tree(base);
	if (failures > 0)
	{
		printf("store-test: %d checks failed\n", failures);
		return 1;
	}
	printf("store-test: ok\n");
	return 0;
}
