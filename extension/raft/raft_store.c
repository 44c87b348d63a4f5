/*-------------------------------------------------------------------------
 *
 * raft_store.c
 *	  A Raft node's durable state: log segments of checksummed records and
 *	  snapshot files in one directory, written before anything that depends
 *	  on them is sent, and read back on open (raft_store.h).
 *
 * Pure C (C library and POSIX, no PostgreSQL header), so a test program
 * outside the server can cut and corrupt the files (tests/sim/store_test.c).
 * One caller at a time: the store is the Raft worker's alone.
 *
 * Files, named so that they sort in the order they were written:
 *	  %016llx.log	log segment number N (1, 2, ...), zero-filled and synced
 *					before its first record
 *	  %016llx.snap	the snapshot written by save number N
 *	  *.tmp			a segment or snapshot being created: removed on open
 *
 * A record, all fields little-endian, padded with zeros to 8 bytes:
 *	  0  u32 length (header + payload)	 4  u32 CRC-32C of bytes 8..length
 *	  8  u64 save number				16  u64 term
 *	 24  u64 index						32  u8 type, u8 flags, u16 entry type,
 *										    u32 zero
 *	 40  payload: an entry's data; a hard state's vote (term = term,
 *		 index = commit); a snapshot marker's file number
 *
 * A save (one Ready, or one compaction) is one pwrite of records that all
 * carry the same save number, the last one flagged END, then one
 * fdatasync.  Saves are numbered 1, 2, ... without gaps, so reading back
 * can tell a torn tail from corruption:
 *
 *	1. A save counts only once its END record is read with every record
 *	   before it valid; a save cut by a crash is ignored whole.
 *	2. Reading a segment stops at the first zero length, bad CRC or wrong
 *	   save number.  After that point only records of the one save that was
 *	   being written (last + 1) may be valid: a valid record of a later save
 *	   means a synced save became unreadable, which is corruption.
 *	3. Each segment continues the numbering of the one before (a save that
 *	   does not fit goes whole into a new segment).
 *
 * A snapshot is not trusted because its file exists: it is written under a
 * new name (temp file, sync, rename, directory sync) and counts only once
 * the save with its marker record is synced.  So an InstallSnapshot, which
 * drops every stored entry, is atomic with the entries and hard state of
 * its Ready: a crash in between leaves the old snapshot and the old log,
 * never the new snapshot with the old log's entries after it.  Old
 * snapshot files and whole segments that hold nothing still needed (no
 * live entry, not the latest hard state or marker) are deleted after it.
 *
 *-------------------------------------------------------------------------
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raft_store.h"
#include "store_io.h"

#define REC_HDR			40
#define REC_ENTRY		1
#define REC_HARDSTATE	2
#define REC_TRUNCATE	3
#define REC_SNAPSHOT	4
#define REC_END			0x01	/* flag: the last record of its save */
#define REC_DROP_ALL	0x02	/* marker flag: InstallSnapshot, no suffix kept */
#define REC_MAX_PAYLOAD	((size_t) 0x7fffffff)

#define SNAP_MAGIC		0x50414e53	/* "SNAP" read little-endian */
#define SNAP_HDR		(40 + 16 * RAFT_MAX_NODES)

#define SEGMENT_DEFAULT	((size_t) 16 * 1024 * 1024)
#define ZERO_CHUNK		65536
#define ALIGN8(x)		(((x) + 7) & ~(size_t) 7)

/*
 * StoreLog: the live entries after the snapshot: for each, the segment that
 * holds it (what compaction needs), and while opening the entries too.
 */
typedef struct StoreLog
{
	bool		based;			/* first is known (not while reading the
								 * first segments before a marker) */
	uint64_t	first;			/* index of seg[0] */
	size_t		n;
	size_t		cap;
	uint64_t   *seg;
	RaftEntry  *ents;			/* kept only while opening */
} StoreLog;

struct RaftStore
{
	char	   *dir;
	int			dirfd;
	size_t		segment_bytes;
	bool		failed;			/* a write or sync failed: refuse everything */
	int			fd;				/* the current (last) segment */
	uint64_t	first_seg;
	uint64_t	cur_seg;		/* 0 while opening */
	size_t		seg_size;
	size_t		pos;			/* next write offset in the current segment */
	uint64_t	next_save;
	StoreLog	log;
	bool		hs_found;
	RaftHardState hs;
	uint64_t	hs_seg;
	uint64_t	snap_id;		/* 0: no snapshot */
	uint64_t	snap_index;
	uint64_t	snap_term;
	uint64_t	marker_seg;
	uint8_t    *buf;			/* the records of the save being built */
	size_t		buf_len;
	size_t		buf_cap;
	size_t		last_rec;		/* offset of the last record in buf */
	RaftStoreStats stats;
};

/* Rec: one record as parsed (pointers into the buffer read). */
typedef struct Rec
{
	size_t		off;
	size_t		span;			/* length padded to 8 */
	uint64_t	save;
	uint64_t	term;
	uint64_t	index;
	uint8_t		type;
	uint8_t		flags;
	uint16_t	etype;
	const uint8_t *payload;
	size_t		plen;
} Rec;

/* Replay: the reading position across segments while opening. */
typedef struct Replay
{
	bool		have_save;
	uint64_t	last_save;
	Rec		   *pend;			/* records of the save being read */
	size_t		n_pend;
	size_t		cap_pend;
	size_t		end;			/* end of the last whole save in the segment */
	size_t		size;			/* size of the last segment read */
	bool		dirty;			/* nonzero bytes after end in it */
} Replay;

/* store_path: dir/%016llx + suffix into buf (PATH_LEN bytes) */
#define PATH_LEN 4200
static void
store_path(const RaftStore *s, char *buf, uint64_t num, const char *suffix)
{
	snprintf(buf, PATH_LEN, "%s/%016llx%s", s->dir, (unsigned long long) num, suffix);
}

/* sync_dir: fsync the directory, so names created or removed stay so */
static int
sync_dir(RaftStore *s, char *err, size_t errlen)
{
	if (fsync(s->dirfd) != 0)
	{
		s->failed = true;
		return sio_fail_errno(err, errlen, "fsync directory", s->dir);
	}
	return 0;
}

/* ---- the in-memory log: which entries are live, and where ---- */

static uint64_t
log_last(const StoreLog *l)
{
	return l->first + l->n - 1;
}

/* log_free_from: free the entries' data from position i on, if kept */
static void
log_free_from(StoreLog *l, size_t i)
{
	if (l->ents != NULL)
		for (; i < l->n; i++)
			free(l->ents[i].data);
}

/* log_reset: no live entries; the next one is index next */
static void
log_reset(StoreLog *l, uint64_t next)
{
	log_free_from(l, 0);
	l->n = 0;
	l->first = next;
	l->based = true;
}

/* log_cut: drop the entries at or after index (a truncate record) */
static void
log_cut(StoreLog *l, uint64_t index)
{
	if (index <= l->first)
		log_reset(l, index);
	else if (index <= log_last(l))
	{
		log_free_from(l, (size_t) (index - l->first));
		l->n = (size_t) (index - l->first);
	}
}

/* log_drop_through: drop the entries at or before index (a compaction) */
static void
log_drop_through(StoreLog *l, uint64_t index)
{
	size_t		k;

	if (l->n == 0 || index >= log_last(l))
	{
		log_reset(l, index + 1);
		return;
	}
	if (index < l->first)
		return;
	k = (size_t) (index - l->first + 1);
	if (l->ents != NULL)
	{
		for (size_t i = 0; i < k; i++)
			free(l->ents[i].data);
		memmove(l->ents, l->ents + k, (l->n - k) * sizeof(RaftEntry));
	}
	memmove(l->seg, l->seg + k, (l->n - k) * sizeof(uint64_t));
	l->n -= k;
	l->first = index + 1;
}

/* log_grow: room for one more entry; false when out of memory */
static bool
log_grow(StoreLog *l)
{
	size_t		cap = l->cap ? l->cap * 2 : 64;
	uint64_t   *seg;
	RaftEntry  *ents;

	if (l->n < l->cap)
		return true;
	seg = realloc(l->seg, cap * sizeof(uint64_t));
	if (seg == NULL)
		return false;
	l->seg = seg;
	if (l->ents != NULL)
	{
		ents = realloc(l->ents, cap * sizeof(RaftEntry));
		if (ents == NULL)
			return false;
		l->ents = ents;
	}
	l->cap = cap;
	return true;
}

/* log_push: append the entry of record r, kept in segment segno */
static int
log_push(StoreLog *l, const Rec *r, uint64_t segno, char *err, size_t errlen)
{
	RaftEntry  *e;

	if (!log_grow(l))
		return sio_fail(err, errlen, "out of memory reading the raft log");
	if (l->ents != NULL)
	{
		e = &l->ents[l->n];
		e->term = r->term;
		e->index = r->index;
		e->type = (RaftEntryType) r->etype;
		e->len = r->plen;
		e->data = malloc(r->plen ? r->plen : 1);
		if (e->data == NULL)
			return sio_fail(err, errlen, "out of memory reading the raft log");
		memcpy(e->data, r->payload, r->plen);
	}
	if (!l->based)
		l->first = r->index;
	l->based = true;
	l->seg[l->n++] = segno;
	return 0;
}

/* ---- records ---- */

/*
 * rec_parse: the record at off in buf[0..size) into *r; false if there is
 * none (zero length) or it is not valid (length, CRC, type, shape).
 */
static bool
rec_parse(const uint8_t *buf, size_t size, size_t off, Rec *r)
{
	const uint8_t *p = buf + off;
	uint32_t	len;

	if (off > size || size - off < REC_HDR)
		return false;
	len = sio_get32(p);
	if (len < REC_HDR || len > size - off || sio_get32(p + 36) != 0)
		return false;
	if (sio_crc32c(p + 8, len - 8) != sio_get32(p + 4))
		return false;
	/* the padding too must be intact: then every byte is checked */
	r->span = ALIGN8((size_t) len);
	if (r->span > size - off)
		return false;
	for (size_t i = len; i < r->span; i++)
		if (p[i] != 0)
			return false;
	r->off = off;
	r->save = sio_get64(p + 8);
	r->term = sio_get64(p + 16);
	r->index = sio_get64(p + 24);
	r->type = p[32];
	r->flags = p[33];
	r->etype = sio_get16(p + 34);
	r->payload = p + REC_HDR;
	r->plen = len - REC_HDR;
	if (r->type == REC_ENTRY)
		return true;
	if (r->type == REC_TRUNCATE)
		return r->plen == 0;
	return (r->type == REC_HARDSTATE || r->type == REC_SNAPSHOT) && r->plen == 8;
}

/* rec_seal: set the CRC of the record at p (after its fields changed) */
static void
rec_seal(uint8_t *p)
{
	sio_put32(p + 4, sio_crc32c(p + 8, sio_get32(p) - 8));
}

/* buf_reserve: room for len more bytes in the save buffer */
static int
buf_reserve(RaftStore *s, size_t len, char *err, size_t errlen)
{
	size_t		cap = s->buf_cap ? s->buf_cap : 4096;
	uint8_t    *b;

	while (cap < s->buf_len + len)
		cap *= 2;
	if (cap == s->buf_cap)
		return 0;
	b = realloc(s->buf, cap);
	if (b == NULL)
		return sio_fail(err, errlen, "out of memory building a raft log write of %zu bytes",
					s->buf_len + len);
	s->buf = b;
	s->buf_cap = cap;
	return 0;
}

/* add_record: append one record of the save being built to s->buf */
static int
add_record(RaftStore *s, const Rec *r, char *err, size_t errlen)
{
	size_t		span = ALIGN8(REC_HDR + r->plen);
	uint8_t    *p;

	if (r->plen > REC_MAX_PAYLOAD)
		return sio_fail(err, errlen, "raft log entry %llu of %zu bytes is too large",
					(unsigned long long) r->index, r->plen);
	if (buf_reserve(s, span, err, errlen) != 0)
		return -1;
	p = s->buf + s->buf_len;
	memset(p, 0, span);
	sio_put32(p, (uint32_t) (REC_HDR + r->plen));
	sio_put64(p + 8, s->next_save);
	sio_put64(p + 16, r->term);
	sio_put64(p + 24, r->index);
	p[32] = r->type;
	p[33] = r->flags;
	sio_put16(p + 34, r->etype);
	if (r->plen > 0)
		memcpy(p + REC_HDR, r->payload, r->plen);
	rec_seal(p);
	s->last_rec = s->buf_len;
	s->buf_len += span;
	return 0;
}

/* add_u64_record: a record whose payload is one u64 (hard state, marker) */
static int
add_u64_record(RaftStore *s, uint8_t type, uint8_t flags, uint64_t term,
			   uint64_t index, uint64_t value, char *err, size_t errlen)
{
	uint8_t		payload[8];
	Rec			r = {0};

	sio_put64(payload, value);
	r.type = type;
	r.flags = flags;
	r.term = term;
	r.index = index;
	r.payload = payload;
	r.plen = 8;
	return add_record(s, &r, err, errlen);
}

/*
 * apply_record: what record r (of segment segno, read from path) changes in
 * the store's view.  The same code applies a save just written and one
 * read back on open, so the two cannot disagree.  -1 on a gap.
 */
static int
apply_record(RaftStore *s, const Rec *r, uint64_t segno, const char *path,
			 char *err, size_t errlen)
{
	switch (r->type)
	{
		case REC_ENTRY:
			if (s->log.based && r->index != log_last(&s->log) + 1)
				return sio_fail(err, errlen, "corrupt raft log \"%s\": entry %llu at offset %zu does not follow entry %llu",
							path, (unsigned long long) r->index, r->off,
							(unsigned long long) log_last(&s->log));
			return log_push(&s->log, r, segno, err, errlen);
		case REC_TRUNCATE:
			log_cut(&s->log, r->index);
			return 0;
		case REC_HARDSTATE:
			s->hs.term = r->term;
			s->hs.commit = r->index;
			s->hs.vote = sio_get64(r->payload);
			s->hs_found = true;
			s->hs_seg = segno;
			return 0;
		default:
			s->snap_id = sio_get64(r->payload);
			s->snap_index = r->index;
			s->snap_term = r->term;
			s->marker_seg = segno;
			if (r->flags & REC_DROP_ALL)
				log_reset(&s->log, r->index + 1);
			else
				log_drop_through(&s->log, r->index);
			return 0;
	}
}

/* ---- files ---- */

/* write_zeros: zero [from, to) of fd, so later syncs write data only */
static int
write_zeros(int fd, size_t from, size_t to, const char *path, char *err, size_t errlen)
{
	static const uint8_t zeros[ZERO_CHUNK];

	while (from < to)
	{
		size_t		n = to - from < ZERO_CHUNK ? to - from : ZERO_CHUNK;

		if (sio_write_all(fd, zeros, n, (off_t) from, path, err, errlen) != 0)
			return -1;
		from += n;
	}
	return 0;
}

/*
 * install_file: sync fd (a complete temp file), close it, rename tmp to
 * path and sync the directory: the file appears whole or not at all.
 * Keeps fd open when keep is set (a new segment); returns 0 or -1.
 */
static int
install_file(RaftStore *s, int fd, bool keep, const char *tmp, const char *path,
			 char *err, size_t errlen)
{
	if (fsync(fd) != 0)
	{
		sio_fail_errno(err, errlen, "fsync file", tmp);
		close(fd);
		return -1;
	}
	if (!keep && close(fd) != 0)
		return sio_fail_errno(err, errlen, "close file", tmp);
	if (rename(tmp, path) != 0)
	{
		sio_fail_errno(err, errlen, "rename file", tmp);
		if (keep)
			close(fd);
		return -1;
	}
	return sync_dir(s, err, errlen);
}

/* create_segment: segment segno of size bytes, zero-filled and synced; its fd */
static int
create_segment(RaftStore *s, uint64_t segno, size_t size, char *err, size_t errlen)
{
	char		tmp[PATH_LEN];
	char		path[PATH_LEN];
	int			fd;

	store_path(s, tmp, segno, ".log.tmp");
	store_path(s, path, segno, ".log");
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return sio_fail_errno(err, errlen, "create file", tmp);
	if (write_zeros(fd, 0, size, tmp, err, errlen) != 0)
	{
		close(fd);
		return -1;
	}
	if (install_file(s, fd, true, tmp, path, err, errlen) != 0)
		return -1;
	s->stats.segments++;
	return fd;
}

/* next_segment: make a segment that holds need bytes the current one */
static int
next_segment(RaftStore *s, size_t need, char *err, size_t errlen)
{
	size_t		size = need > s->segment_bytes ? ALIGN8(need) : s->segment_bytes;
	int			fd = create_segment(s, s->cur_seg + 1, size, err, errlen);

	if (fd < 0)
		return -1;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	if (s->cur_seg == 0)
		s->first_seg = 1;
	s->cur_seg++;
	s->seg_size = size;
	s->pos = 0;
	return 0;
}

/* ---- snapshots ---- */

/* snap_header: the snapshot file's header for snap into h (SNAP_HDR bytes) */
static void
snap_header(uint8_t *h, const RaftSnapshot *snap)
{
	uint32_t	crc;

	memset(h, 0, SNAP_HDR);
	sio_put32(h, SNAP_MAGIC);
	sio_put64(h + 8, snap->index);
	sio_put64(h + 16, snap->term);
	sio_put64(h + 24, (uint64_t) snap->len);
	sio_put32(h + 32, (uint32_t) snap->conf.n_voters);
	sio_put32(h + 36, (uint32_t) snap->conf.n_learners);
	for (int i = 0; i < RAFT_MAX_NODES; i++)
	{
		sio_put64(h + 40 + 8 * i, snap->conf.voters[i]);
		sio_put64(h + 40 + 8 * (RAFT_MAX_NODES + i), snap->conf.learners[i]);
	}
	/* the CRC covers the header after it, then the data */
	crc = sio_crc32c_add(0xffffffff, h + 8, SNAP_HDR - 8);
	if (snap->len > 0)
		crc = sio_crc32c_add(crc, snap->data, snap->len);
	crc ^= 0xffffffff;
	sio_put32(h + 4, crc);
}

/*
 * write_snapshot: snap into file number id: temp file, sync, rename,
 * directory sync.  It counts only once a marker naming it is synced.
 */
static int
write_snapshot(RaftStore *s, const RaftSnapshot *snap, uint64_t id,
			   char *err, size_t errlen)
{
	uint8_t		h[SNAP_HDR];
	char		tmp[PATH_LEN];
	char		path[PATH_LEN];
	int			fd;

	snap_header(h, snap);
	store_path(s, tmp, id, ".snap.tmp");
	store_path(s, path, id, ".snap");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return sio_fail_errno(err, errlen, "create file", tmp);
	if (sio_write_all(fd, h, SNAP_HDR, 0, tmp, err, errlen) != 0 ||
		(snap->len > 0 &&
		 sio_write_all(fd, snap->data, snap->len, SNAP_HDR, tmp, err, errlen) != 0))
	{
		close(fd);
		return -1;
	}
	return install_file(s, fd, false, tmp, path, err, errlen);
}

/* snap_decode: the snapshot file in buf into *out (data copied), or -1 */
static int
snap_decode(const uint8_t *buf, size_t size, RaftSnapshot *out)
{
	uint64_t	len;

	if (size < SNAP_HDR || sio_get32(buf) != SNAP_MAGIC)
		return -1;
	len = sio_get64(buf + 24);
	if (len != size - SNAP_HDR || sio_crc32c(buf + 8, size - 8) != sio_get32(buf + 4))
		return -1;
	out->index = sio_get64(buf + 8);
	out->term = sio_get64(buf + 16);
	out->conf.n_voters = (int) sio_get32(buf + 32);
	out->conf.n_learners = (int) sio_get32(buf + 36);
	if (out->conf.n_voters < 0 || out->conf.n_voters > RAFT_MAX_NODES ||
		out->conf.n_learners < 0 || out->conf.n_learners > RAFT_MAX_NODES)
		return -1;
	for (int i = 0; i < RAFT_MAX_NODES; i++)
	{
		out->conf.voters[i] = sio_get64(buf + 40 + 8 * i);
		out->conf.learners[i] = sio_get64(buf + 40 + 8 * (RAFT_MAX_NODES + i));
	}
	out->len = (size_t) len;
	out->data = malloc(len ? len : 1);
	if (out->data == NULL)
		return -1;
	memcpy(out->data, buf + SNAP_HDR, len);
	return 0;
}

/* load_snapshot: the snapshot the last marker names, into st */
static int
load_snapshot(RaftStore *s, RaftStoreState *st, char *err, size_t errlen)
{
	char		path[PATH_LEN];
	uint8_t    *buf;
	size_t		size;
	int			rc;

	if (s->snap_id == 0)
		return 0;
	store_path(s, path, s->snap_id, ".snap");
	if (sio_read_file(path, &buf, &size, err, errlen) != 0)
		return -1;
	rc = snap_decode(buf, size, &st->snapshot);
	free(buf);
	if (rc != 0 || st->snapshot.index != s->snap_index || st->snapshot.term != s->snap_term)
		return sio_fail(err, errlen, "corrupt raft snapshot \"%s\": bad checksum, header or index (the log names index %llu term %llu)",
					path, (unsigned long long) s->snap_index,
					(unsigned long long) s->snap_term);
	st->has_snapshot = true;
	return 0;
}

/* ---- reading back ---- */

/*
 * read_one_save: collect in rp->pend the records of the save at off;
 * 1 if its END record was reached (*next after it), 0 if not, -1 if out of
 * memory.  Every record must carry the save's number, last_save + 1.
 */
static int
read_one_save(Replay *rp, const uint8_t *buf, size_t size, size_t off, size_t *next)
{
	Rec			r;

	rp->n_pend = 0;
	while (rec_parse(buf, size, off, &r))
	{
		if (rp->n_pend > 0 ? r.save != rp->pend[0].save
			: (rp->have_save && r.save != rp->last_save + 1))
			return 0;
		if (rp->n_pend == rp->cap_pend)
		{
			size_t		cap = rp->cap_pend ? rp->cap_pend * 2 : 64;
			Rec		   *p = realloc(rp->pend, cap * sizeof(Rec));

			if (p == NULL)
				return -1;
			rp->pend = p;
			rp->cap_pend = cap;
		}
		rp->pend[rp->n_pend++] = r;
		off += r.span;
		if (r.flags & REC_END)
		{
			*next = off;
			return 1;
		}
	}
	return 0;
}

/*
 * check_tail: reading path stopped at offset stop.  Only the save that a
 * crash cut (last_save + 1) may have valid records after it; one of a
 * later save means a synced save became unreadable.
 */
static int
check_tail(const Replay *rp, const uint8_t *buf, size_t size, size_t stop,
		   const char *path, char *err, size_t errlen)
{
	uint64_t	limit = (rp->have_save ? rp->last_save : 0) + 2;
	Rec			r;

	for (size_t off = stop; off < size; off += 8)
		if (rec_parse(buf, size, off, &r) && r.save >= limit)
			return sio_fail(err, errlen, "corrupt raft log \"%s\": the records end at offset %zu (after save %llu), but a valid record of save %llu follows at offset %zu",
						path, stop, (unsigned long long) (limit - 2),
						(unsigned long long) r.save, off);
	return 0;
}

/* any_nonzero: whether buf[from..size) holds a nonzero byte */
static bool
any_nonzero(const uint8_t *buf, size_t from, size_t size)
{
	for (; from < size; from++)
		if (buf[from] != 0)
			return true;
	return false;
}

/* replay_segment: apply the whole saves of segment segno, check its tail */
static int
replay_segment(RaftStore *s, Replay *rp, uint64_t segno, char *err, size_t errlen)
{
	char		path[PATH_LEN];
	uint8_t    *buf;
	size_t		size;
	size_t		off = 0;
	size_t		next;
	int			rc;

	store_path(s, path, segno, ".log");
	if (sio_read_file(path, &buf, &size, err, errlen) != 0)
		return -1;
	while ((rc = read_one_save(rp, buf, size, off, &next)) == 1)
	{
		for (size_t i = 0; i < rp->n_pend; i++)
			if (apply_record(s, &rp->pend[i], segno, path, err, errlen) != 0)
				rc = -2;
		if (rc == -2)
			break;
		rp->have_save = true;
		rp->last_save = rp->pend[0].save;
		off = next;
	}
	if (rc == -1)
		sio_fail(err, errlen, "out of memory reading \"%s\"", path);
	if (rc == 0)
		rc = check_tail(rp, buf, size, off, path, err, errlen);
	rp->end = off;
	rp->size = size;
	rp->dirty = any_nonzero(buf, off, size);
	free(buf);
	return rc < 0 ? -1 : 0;
}

/* seg_cmp: qsort order of segment numbers */
static int
seg_cmp(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

/* name_number: whether name is 16 hex digits + suffix; the number in *num */
static bool
name_number(const char *name, const char *suffix, uint64_t *num)
{
	*num = 0;
	for (int i = 0; i < 16; i++)
	{
		char		c = name[i];
		int			d = (c >= '0' && c <= '9') ? c - '0' :
			(c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;

		if (d < 0)
			return false;
		*num = (*num << 4) | (uint64_t) d;
	}
	return strcmp(name + 16, suffix) == 0;
}

/* list_segments: the segment numbers in the directory, sorted, no gap */
static int
list_segments(RaftStore *s, uint64_t **segs, size_t *n, char *err, size_t errlen)
{
	DIR		   *d = opendir(s->dir);
	struct dirent *de;
	size_t		cap = 0;
	uint64_t	num;

	*segs = NULL;
	*n = 0;
	if (d == NULL)
		return sio_fail_errno(err, errlen, "open directory", s->dir);
	while ((de = readdir(d)) != NULL)
	{
		if (!name_number(de->d_name, ".log", &num))
			continue;
		if (*n == cap)
		{
			uint64_t   *p = realloc(*segs, (cap = cap ? cap * 2 : 16) * sizeof(uint64_t));

			if (p == NULL)
			{
				closedir(d);
				return sio_fail(err, errlen, "out of memory listing \"%s\"", s->dir);
			}
			*segs = p;
		}
		(*segs)[(*n)++] = num;
	}
	closedir(d);
	if (*n > 1)
		qsort(*segs, *n, sizeof(uint64_t), seg_cmp);
	for (size_t i = 1; i < *n; i++)
		if ((*segs)[i] != (*segs)[i - 1] + 1)
			return sio_fail(err, errlen, "corrupt raft log in \"%s\": segment %016llx is missing",
						s->dir, (unsigned long long) ((*segs)[i - 1] + 1));
	return 0;
}

/*
 * finish_log: the entries read must follow the snapshot (or index 1)
 * without a gap; they move into st.
 */
static int
finish_log(RaftStore *s, RaftStoreState *st, char *err, size_t errlen)
{
	uint64_t	want = s->snap_index + 1;

	if (s->log.n > 0 && s->log.first != want)
		return sio_fail(err, errlen, "corrupt raft log in \"%s\": the entries start at index %llu, not %llu after the snapshot",
					s->dir, (unsigned long long) s->log.first,
					(unsigned long long) want);
	if (s->log.n == 0)
		s->log.first = want;
	s->log.based = true;
	st->hs_found = s->hs_found;
	st->hs = s->hs;
	st->entries = s->log.ents;
	st->n_entries = s->log.n;
	s->log.ents = NULL;
	return 0;
}

/*
 * open_tail: the last segment becomes the one written to, from the end of
 * its last whole save.  What a crash left after that point (a torn save)
 * is zeroed and synced first, and a short file extended, so that the next
 * saves are not followed by stale records.  No segment: create the first.
 */
static int
open_tail(RaftStore *s, const Replay *rp, char *err, size_t errlen)
{
	char		path[PATH_LEN];
	size_t		size = rp->size > s->segment_bytes ? rp->size : s->segment_bytes;

	if (s->cur_seg == 0)
		return next_segment(s, 0, err, errlen);
	store_path(s, path, s->cur_seg, ".log");
	s->fd = open(path, O_RDWR);
	if (s->fd < 0)
		return sio_fail_errno(err, errlen, "open file", path);
	s->pos = rp->end;
	s->seg_size = size;
	if (!rp->dirty && rp->size == size)
		return 0;
	if (write_zeros(s->fd, rp->end, size, path, err, errlen) != 0)
		return -1;
	if (fdatasync(s->fd) != 0)
		return sio_fail_errno(err, errlen, "fdatasync file", path);
	return 0;
}

/* remove_file: unlink path and sync the directory */
static int
remove_file(RaftStore *s, const char *path, char *err, size_t errlen)
{
	if (unlink(path) != 0)
		return sio_fail_errno(err, errlen, "remove file", path);
	return sync_dir(s, err, errlen);
}

/* remove_leftovers: temp files of crashed creations, unused snapshots */
static int
remove_leftovers(RaftStore *s, char *err, size_t errlen)
{
	DIR		   *d = opendir(s->dir);
	struct dirent *de;
	char		path[PATH_LEN];
	uint64_t	num;
	int			rc = 0;

	if (d == NULL)
		return sio_fail_errno(err, errlen, "open directory", s->dir);
	while (rc == 0 && (de = readdir(d)) != NULL)
	{
		if (name_number(de->d_name, ".log.tmp", &num) ||
			name_number(de->d_name, ".snap.tmp", &num) ||
			(name_number(de->d_name, ".snap", &num) && num != s->snap_id))
		{
			snprintf(path, PATH_LEN, "%s/%s", s->dir, de->d_name);
			rc = remove_file(s, path, err, errlen);
		}
	}
	closedir(d);
	return rc;
}

/* replay_all: every segment in order; the last one is then written to */
static int
replay_all(RaftStore *s, Replay *rp, char *err, size_t errlen)
{
	uint64_t   *segs;
	size_t		n;
	int			rc;

	rc = list_segments(s, &segs, &n, err, errlen);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = replay_segment(s, rp, segs[i], err, errlen);
	if (rc == 0 && n > 0)
	{
		s->first_seg = segs[0];
		s->cur_seg = segs[n - 1];
	}
	s->next_save = rp->have_save ? rp->last_save + 1 : 1;
	free(segs);
	return rc;
}

/* open_dir: create the directory if absent, open it for syncs */
static int
open_dir(RaftStore *s, const char *dir, char *err, size_t errlen)
{
	if (strlen(dir) > PATH_LEN - 64)
		return sio_fail(err, errlen, "raft store directory name too long: \"%s\"", dir);
	if ((s->dir = strdup(dir)) == NULL)
		return sio_fail(err, errlen, "out of memory");
	return sio_open_dir(dir, &s->dirfd, err, errlen);
}

/*
 * raft_store_open: open (creating if absent) the store in dir and read it
 * back into *st; on failure -1, *out NULL and *st empty.
 */
int
raft_store_open(const char *dir, const RaftStoreOptions *opt,
				RaftStore **out, RaftStoreState *st, char *err, size_t errlen)
{
	RaftStore  *s = calloc(1, sizeof(RaftStore));
	Replay		rp = {0};
	int			rc;

	*out = NULL;
	memset(st, 0, sizeof(RaftStoreState));
	if (s == NULL)
		return sio_fail(err, errlen, "out of memory");
	s->fd = -1;
	s->dirfd = -1;
	s->segment_bytes = ALIGN8(opt && opt->segment_bytes ? opt->segment_bytes : SEGMENT_DEFAULT);
	s->log.first = 1;
	s->log.ents = malloc(sizeof(RaftEntry));
	rc = s->log.ents == NULL ? sio_fail(err, errlen, "out of memory") : 0;
	if (rc == 0)
		rc = open_dir(s, dir, err, errlen);
	if (rc == 0)
		rc = replay_all(s, &rp, err, errlen);
	if (rc == 0)
		rc = load_snapshot(s, st, err, errlen);
	if (rc == 0)
		rc = finish_log(s, st, err, errlen);
	if (rc == 0)
		rc = open_tail(s, &rp, err, errlen);
	if (rc == 0)
		rc = remove_leftovers(s, err, errlen);
	free(rp.pend);
	if (rc != 0)
	{
		raft_store_close(s);
		raft_store_state_free(st);
		return -1;
	}
	*out = s;
	return 0;
}

/* raft_store_restore: st as the core's RaftRestore (pointers into st) */
void
raft_store_restore(const RaftStoreState *st, RaftRestore *rs)
{
	memset(rs, 0, sizeof(RaftRestore));
	if (st->hs_found)
		rs->hs = st->hs;
	rs->snapshot = st->has_snapshot ? &st->snapshot : NULL;
	rs->entries = st->entries;
	rs->n_entries = st->n_entries;
}

void
raft_store_state_free(RaftStoreState *st)
{
	for (size_t i = 0; i < st->n_entries; i++)
		free(st->entries[i].data);
	free(st->entries);
	free(st->snapshot.data);
	memset(st, 0, sizeof(RaftStoreState));
}

/* ---- writing ---- */

/*
 * check_write: refuse what would write a log that cannot be read back
 * (entries not contiguous, or not following what is kept); the core never
 * asks for it, so this is a caller's bug, caught before any write.
 */
static int
check_write(const RaftStore *s, const RaftSnapshot *snap, bool drop_all,
			const RaftEntry *ents, size_t n, char *err, size_t errlen)
{
	uint64_t	lo = drop_all ? snap->index + 1 : s->snap_index + 1;
	uint64_t	hi = drop_all ? snap->index + 1 : log_last(&s->log) + 1;

	if (s->failed)
		return sio_fail(err, errlen, "the raft store in \"%s\" failed earlier and cannot be written", s->dir);
	if (snap != NULL && (snap->conf.n_voters < 0 || snap->conf.n_voters > RAFT_MAX_NODES ||
						 snap->conf.n_learners < 0 || snap->conf.n_learners > RAFT_MAX_NODES))
		return sio_fail(err, errlen, "raft snapshot at index %llu has a bad configuration",
					(unsigned long long) snap->index);
	if (snap != NULL && !drop_all && snap->index > log_last(&s->log))
		return sio_fail(err, errlen, "cannot compact the raft log to index %llu: the last stored entry is %llu",
					(unsigned long long) snap->index,
					(unsigned long long) log_last(&s->log));
	if (n > 0 && (ents[0].index < lo || ents[0].index > hi))
		return sio_fail(err, errlen, "raft entry %llu cannot be stored: the next must be from %llu to %llu",
					(unsigned long long) ents[0].index, (unsigned long long) lo,
					(unsigned long long) hi);
	for (size_t i = 1; i < n; i++)
		if (ents[i].index != ents[0].index + i)
			return sio_fail(err, errlen, "raft entries to store are not contiguous at index %llu",
						(unsigned long long) ents[i].index);
	return 0;
}

/* build_save: the records of one save into s->buf, the last flagged END */
static int
build_save(RaftStore *s, const RaftSnapshot *snap, bool drop_all,
		   const RaftEntry *ents, size_t n, const RaftHardState *hs,
		   char *err, size_t errlen)
{
	Rec			r = {0};

	s->buf_len = 0;
	if (snap != NULL &&
		add_u64_record(s, REC_SNAPSHOT, drop_all ? REC_DROP_ALL : 0, snap->term,
					   snap->index, s->next_save, err, errlen) != 0)
		return -1;
	r.type = REC_TRUNCATE;
	r.index = n > 0 ? ents[0].index : 0;
	if (n > 0 && snap == NULL && r.index <= log_last(&s->log) &&
		add_record(s, &r, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
	{
		r.type = REC_ENTRY;
		r.term = ents[i].term;
		r.index = ents[i].index;
		r.etype = (uint16_t) ents[i].type;
		r.payload = ents[i].data;
		r.plen = ents[i].len;
		if (add_record(s, &r, err, errlen) != 0)
			return -1;
	}
	if (hs != NULL &&
		add_u64_record(s, REC_HARDSTATE, 0, hs->term, hs->commit, hs->vote, err, errlen) != 0)
		return -1;
	s->buf[s->last_rec + 33] |= REC_END;
	rec_seal(s->buf + s->last_rec);
	return 0;
}

/*
 * append_save: s->buf as one pwrite and one fdatasync, in a new segment if
 * it does not fit; then its records applied to the store's view.  Any
 * failure marks the store failed: a failed sync is never retried.
 */
static int
append_save(RaftStore *s, char *err, size_t errlen)
{
	char		path[PATH_LEN];
	Rec			r;

	s->failed = true;
	if (s->pos + s->buf_len > s->seg_size &&
		next_segment(s, s->buf_len, err, errlen) != 0)
		return -1;
	store_path(s, path, s->cur_seg, ".log");
	if (sio_write_all(s->fd, s->buf, s->buf_len, (off_t) s->pos, path, err, errlen) != 0)
		return -1;
	if (fdatasync(s->fd) != 0)
		return sio_fail_errno(err, errlen, "fdatasync file", path);
	s->stats.syncs++;
	s->stats.bytes += s->buf_len;
	for (size_t off = 0; off < s->buf_len; off += r.span)
		if (!rec_parse(s->buf, s->buf_len, off, &r) ||
			apply_record(s, &r, s->cur_seg, path, err, errlen) != 0)
			return -1;
	s->pos += s->buf_len;
	s->next_save++;
	s->failed = false;
	return 0;
}

/*
 * forget_old: after a snapshot's marker is synced, the previous snapshot
 * file and the segments before the oldest one still needed (a live entry,
 * the latest hard state or marker, the current one) go, oldest first with
 * a directory sync each, so a crash leaves a contiguous run of segments.
 */
static int
forget_old(RaftStore *s, uint64_t old_snap, char *err, size_t errlen)
{
	char		path[PATH_LEN];
	uint64_t	keep = s->cur_seg;

	if (s->log.n > 0 && s->log.seg[0] < keep)
		keep = s->log.seg[0];
	if (s->hs_found && s->hs_seg < keep)
		keep = s->hs_seg;
	if (s->marker_seg < keep)
		keep = s->marker_seg;
	if (old_snap != 0)
	{
		store_path(s, path, old_snap, ".snap");
		if (remove_file(s, path, err, errlen) != 0)
			return -1;
	}
	for (; s->first_seg < keep; s->first_seg++)
	{
		store_path(s, path, s->first_seg, ".log");
		if (remove_file(s, path, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/*
 * store_write: one save.  With a snapshot, its file first, then a marker
 * (drop_all: InstallSnapshot, else compaction) and the hard state always,
 * since the segments that held the previous one may now go.
 */
static int
store_write(RaftStore *s, const RaftSnapshot *snap, bool drop_all,
			const RaftEntry *ents, size_t n, const RaftHardState *hs,
			char *err, size_t errlen)
{
	uint64_t	old_snap = s->snap_id;

	if (check_write(s, snap, drop_all, ents, n, err, errlen) != 0)
		return -1;
	if (hs == NULL && snap != NULL && s->hs_found)
		hs = &s->hs;
	if (snap != NULL && write_snapshot(s, snap, s->next_save, err, errlen) != 0)
	{
		s->failed = true;
		return -1;
	}
	if (build_save(s, snap, drop_all, ents, n, hs, err, errlen) != 0 ||
		append_save(s, err, errlen) != 0)
		return -1;
	if (snap != NULL && forget_old(s, old_snap, err, errlen) != 0)
	{
		s->failed = true;
		return -1;
	}
	return 0;
}

/*
 * raft_store_save: what rd asks to persist, with one write and one sync;
 * nothing to persist, nothing written.
 */
int
raft_store_save(RaftStore *s, const RaftReady *rd, char *err, size_t errlen)
{
	if (rd->snapshot == NULL && rd->n_entries == 0 && !rd->hs_changed)
		return 0;
	return store_write(s, rd->snapshot, rd->snapshot != NULL, rd->entries, rd->n_entries,
					   rd->hs_changed ? &rd->hs : NULL, err, errlen);
}

/*
 * raft_store_compact: store snap (the node's own, raft_compact's) and drop
 * the entries up to its index.  A snapshot not after the stored one
 * changes nothing.
 */
int
raft_store_compact(RaftStore *s, const RaftSnapshot *snap, char *err, size_t errlen)
{
	if (s->snap_id != 0 && snap->index <= s->snap_index && !s->failed)
		return 0;
	return store_write(s, snap, false, NULL, 0, NULL, err, errlen);
}

void
raft_store_stats(const RaftStore *s, RaftStoreStats *out)
{
	*out = s->stats;
}

void
raft_store_close(RaftStore *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	log_free_from(&s->log, 0);
	free(s->log.ents);
	free(s->log.seg);
	free(s->buf);
	free(s->dir);
	free(s);
}
