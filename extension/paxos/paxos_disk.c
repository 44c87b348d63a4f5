/*-------------------------------------------------------------------------
 *
 * paxos_disk.c
 *	  A Paxos node's durable acceptor state: one append-only file of
 *	  checksummed frames, one frame and one fdatasync per Ready, read back
 *	  on open and rewritten compactly when it has grown (paxos_disk.h has
 *	  the format).
 *
 * Pure C (C library and POSIX, no PostgreSQL header), so a test program
 * outside the server can cut and corrupt the file
 * (tests/paxos-sim/paxos_disk_test.c).  One caller at a time: the store is
 * the worker's alone.
 *
 * Why a whole Ready is one frame: the core's records of one Ready go out
 * together in its messages (a promise for several instances, say), and a
 * frame's one CRC makes the Ready durable all at once or not at all, so
 * reading back never sees half of one.
 *
 * In memory the store keeps the live set, the last record of every
 * instance (a hash table of copies) and the round: that is what a
 * compaction writes, and its encoded size is what decides when to
 * compact.  The live set changes only after the frame that changes it is
 * synced, by decoding that very frame, so the path that reads the file
 * back on open is the one every save goes through as well.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paxos_disk.h"
#include "store_io.h"

#define FRAME_HDR		24
#define FRAME_MAX		((size_t) 0xffffffff)	/* the u32 length field */
#define REC_ROUND		1
#define REC_ACCEPTOR	2
#define REC_FORGET		3
#define ROUND_LEN		9
#define ACCEPTOR_FIXED	40
#define FORGET_FIXED	4
#define FLAG_PRESENT	0x01
#define COMPACT_FLOOR	((uint64_t) 4 * 1024 * 1024)
#define ALIGN8(x)		(((x) + 7) & ~(size_t) 7)

#define FILE_NAME		"acceptors"
#define TMP_NAME		"acceptors.tmp"

/* Live: the last record of one instance; name and value bytes malloc'd */
typedef struct Live
{
	struct Live *next;			/* in its hash bucket */
	uint64_t	hash;
	PaxosAcceptorState st;
} Live;

struct PaxosDisk
{
	char	   *dir;
	char	   *path;			/* dir/acceptors */
	char	   *tmp_path;		/* dir/acceptors.tmp */
	int			dirfd;
	int			fd;
	bool		failed;			/* a write or sync failed: refuse everything */
	uint64_t	round;
	uint64_t	next_save;
	uint64_t	size;			/* bytes of whole frames: where to append */
	uint64_t	compact_floor;
	Live	  **buckets;
	size_t		n_buckets;
	size_t		n_live;
	uint64_t	live_bytes;		/* encoded size of the live records */
	uint8_t    *buf;			/* the frame being built */
	size_t		buf_len;
	size_t		buf_cap;
	uint32_t	buf_recs;
	PaxosDiskStats stats;
};

/* ---- the live set ---- */

/* name_hash: FNV-1a of an instance name */
static uint64_t
name_hash(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* acceptor_size: the bytes of r's ACCEPTOR record */
static uint64_t
acceptor_size(const PaxosAcceptorState *r)
{
	return ACCEPTOR_FIXED + r->instance.len + r->value.len;
}

/* live_link: the link that points (or would point) to the record of name */
static Live **
live_link(PaxosDisk *d, const void *name, size_t len, uint64_t hash)
{
	Live	  **link = &d->buckets[hash % d->n_buckets];

	while (*link != NULL &&
		   ((*link)->hash != hash || (*link)->st.instance.len != len ||
			memcmp((*link)->st.instance.data, name, len) != 0))
		link = &(*link)->next;
	return link;
}

/* live_grow: twice the buckets once there are more records than buckets */
static bool
live_grow(PaxosDisk *d)
{
	size_t		nb = d->n_buckets * 2;
	Live	  **b;

	if (d->n_live < d->n_buckets)
		return true;
	b = calloc(nb, sizeof(Live *));
	if (b == NULL)
		return false;
	for (size_t i = 0; i < d->n_buckets; i++)
		while (d->buckets[i] != NULL)
		{
			Live	   *l = d->buckets[i];

			d->buckets[i] = l->next;
			l->next = b[l->hash % nb];
			b[l->hash % nb] = l;
		}
	free(d->buckets);
	d->buckets = b;
	d->n_buckets = nb;
	return true;
}

/* live_free: one record and its bytes */
static void
live_free(Live *l)
{
	free((void *) l->st.instance.data);
	free((void *) l->st.value.data);
	free(l);
}

/* copy_bytes: a malloc'd copy of len bytes (1 byte for none), or NULL */
static void *
copy_bytes(const void *data, size_t len)
{
	void	   *p = malloc(len ? len : 1);

	if (p != NULL && len > 0)
		memcpy(p, data, len);
	return p;
}

/* live_put: r (bytes copied) replaces the record of its instance; false: OOM */
static bool
live_put(PaxosDisk *d, const PaxosAcceptorState *r)
{
	uint64_t	h = name_hash(r->instance.data, r->instance.len);
	Live	  **link;
	Live	   *l;
	void	   *value = NULL;

	if (!live_grow(d))
		return false;
	if (r->value.present && (value = copy_bytes(r->value.data, r->value.len)) == NULL)
		return false;
	link = live_link(d, r->instance.data, r->instance.len, h);
	if ((l = *link) == NULL)
	{
		if ((l = calloc(1, sizeof(Live))) == NULL ||
			(l->st.instance.data = copy_bytes(r->instance.data, r->instance.len)) == NULL)
		{
			free(l);
			free(value);
			return false;
		}
		l->hash = h;
		l->st.instance.len = r->instance.len;
		*link = l;
		d->n_live++;
	}
	else
	{
		d->live_bytes -= acceptor_size(&l->st);
		free((void *) l->st.value.data);
	}
	l->st.promised = r->promised;
	l->st.accepted = r->accepted;
	l->st.value.present = r->value.present;
	l->st.value.len = r->value.len;
	l->st.value.data = value;
	d->live_bytes += acceptor_size(&l->st);
	return true;
}

/* live_drop: forget the record of name, if there is one */
static void
live_drop(PaxosDisk *d, const void *name, size_t len)
{
	Live	  **link = live_link(d, name, len, name_hash(name, len));
	Live	   *l = *link;

	if (l == NULL)
		return;
	*link = l->next;
	d->live_bytes -= acceptor_size(&l->st);
	d->n_live--;
	live_free(l);
}

/* live_find: the record of name, or NULL */
static Live *
live_find(PaxosDisk *d, const void *name, size_t len)
{
	return *live_link(d, name, len, name_hash(name, len));
}

/* compact_size: the bytes of a frame holding the round and the live set */
static uint64_t
compact_size(const PaxosDisk *d)
{
	return ALIGN8(FRAME_HDR + ROUND_LEN + d->live_bytes);
}

/* ---- decoding: the same for a file read back and a frame just synced ---- */

/*
 * frame_at: whether a valid frame starts at off of buf[0..size): its
 * length, padding and CRC; *len (unpadded) and *save set if so.
 */
static bool
frame_at(const uint8_t *buf, size_t size, size_t off, size_t *len, uint64_t *save)
{
	const uint8_t *p = buf + off;
	size_t		l;

	if (off > size || size - off < FRAME_HDR)
		return false;
	l = sio_get32(p);
	if (l < FRAME_HDR || ALIGN8(l) > size - off || sio_get32(p + 20) != 0)
		return false;
	for (size_t i = l; i < ALIGN8(l); i++)
		if (p[i] != 0)
			return false;
	if (sio_crc32c(p + 8, l - 8) != sio_get32(p + 4))
		return false;
	*len = l;
	*save = sio_get64(p + 8);
	return true;
}

/* name_ok: whether len is a name length the core can have */
static bool
name_ok(size_t len)
{
	return len >= 1 && len <= PAXOS_MAX_NAME;
}

/* apply_acceptor: the ACCEPTOR record p[0..left) into the live set */
static const char *
apply_acceptor(PaxosDisk *d, const uint8_t *p, size_t left, size_t *used)
{
	PaxosAcceptorState r;
	size_t		nlen;
	size_t		vlen;

	if (left < ACCEPTOR_FIXED)
		return "is corrupt: it is cut short";
	nlen = sio_get16(p + 2);
	vlen = sio_get32(p + 4);
	if ((p[1] & ~FLAG_PRESENT) != 0)
		return "is corrupt: it has unknown flags";
	if (!name_ok(nlen))
		return "is corrupt: its name length is 0 or above PAXOS_MAX_NAME";
	if (!(p[1] & FLAG_PRESENT) && vlen != 0)
		return "is corrupt: it has bytes for an absent value";
	if (nlen > left - ACCEPTOR_FIXED || vlen > left - ACCEPTOR_FIXED - nlen)
		return "is corrupt: it runs past the end of its frame";
	r.instance.data = p + ACCEPTOR_FIXED;
	r.instance.len = nlen;
	r.promised.round = sio_get64(p + 8);
	r.promised.node = sio_get64(p + 16);
	r.accepted.round = sio_get64(p + 24);
	r.accepted.node = sio_get64(p + 32);
	r.value.present = (p[1] & FLAG_PRESENT) != 0;
	r.value.data = p + ACCEPTOR_FIXED + nlen;
	r.value.len = vlen;
	if (!live_put(d, &r))
		return "could not be kept: out of memory";
	*used = ACCEPTOR_FIXED + nlen + vlen;
	return NULL;
}

/* apply_record: the record p[0..left) to the store; NULL or what is wrong */
static const char *
apply_record(PaxosDisk *d, const uint8_t *p, size_t left, size_t *used)
{
	size_t		nlen;

	if (left < 1)
		return "is corrupt: it is missing";
	switch (p[0])
	{
		case REC_ROUND:
			if (left < ROUND_LEN)
				return "is corrupt: it is cut short";
			d->round = sio_get64(p + 1);
			*used = ROUND_LEN;
			return NULL;
		case REC_ACCEPTOR:
			return apply_acceptor(d, p, left, used);
		case REC_FORGET:
			if (left < FORGET_FIXED || p[1] != 0)
				return "is corrupt: it is cut short or has unknown flags";
			nlen = sio_get16(p + 2);
			if (!name_ok(nlen))
				return "is corrupt: its name length is 0 or above PAXOS_MAX_NAME";
			if (nlen > left - FORGET_FIXED)
				return "is corrupt: it runs past the end of its frame";
			live_drop(d, p + FORGET_FIXED, nlen);
			*used = FORGET_FIXED + nlen;
			return NULL;
		default:
			return "is corrupt: its type is unknown";
	}
}

/*
 * apply_frame: the records of the valid frame f (len bytes, at offset off
 * of the file) to the store.  A valid CRC with records that do not parse
 * is not a torn write but a bug or a hostile file: an error.
 */
static int
apply_frame(PaxosDisk *d, const uint8_t *f, size_t len, size_t off,
			char *err, size_t errlen)
{
	uint32_t	nrecs = sio_get32(f + 16);
	size_t		pos = FRAME_HDR;
	size_t		used = 0;
	const char *why;

	for (uint32_t i = 0; i < nrecs; i++)
	{
		if ((why = apply_record(d, f + pos, len - pos, &used)) != NULL)
			return sio_fail(err, errlen, "could not read paxos acceptor file \"%s\": record %u of the frame at offset %zu %s",
							d->path, i, off, why);
		pos += used;
	}
	if (pos != len)
		return sio_fail(err, errlen, "could not read paxos acceptor file \"%s\": the frame at offset %zu is corrupt: it has %zu bytes after its last record",
						d->path, off, len - pos);
	return 0;
}

/* ---- reading back ---- */

/*
 * check_tail: reading stopped at stop, before a frame that is not valid.
 * What a crash cut is one frame, the save after the last whole one: a
 * valid frame of a later save after stop means a synced save became
 * unreadable.  (A value holding the image of such a frame could fool this
 * only by guessing a future save number.)
 */
static int
check_tail(PaxosDisk *d, const uint8_t *buf, size_t size, size_t stop,
		   bool have, uint64_t last, char *err, size_t errlen)
{
	size_t		len;
	uint64_t	save;

	for (size_t off = stop + 8; off < size; off += 8)
		if (frame_at(buf, size, off, &len, &save) && (!have || save > last + 1))
			return sio_fail(err, errlen, "corrupt paxos acceptor file \"%s\": the frames end at offset %zu, but a valid frame of save %llu follows at offset %zu",
							d->path, stop, (unsigned long long) save, off);
	return 0;
}

/*
 * replay: apply the whole frames of buf in order; *stop where they end.
 * The save numbers must follow each other: a valid frame out of order is
 * corruption, not a torn tail.
 */
static int
replay(PaxosDisk *d, const uint8_t *buf, size_t size, size_t *stop,
	   char *err, size_t errlen)
{
	size_t		off = 0;
	size_t		len;
	uint64_t	save;
	uint64_t	last = 0;
	bool		have = false;

	while (frame_at(buf, size, off, &len, &save))
	{
		if (have && save != last + 1)
			return sio_fail(err, errlen, "corrupt paxos acceptor file \"%s\": the frame at offset %zu is save %llu, not %llu",
							d->path, off, (unsigned long long) save,
							(unsigned long long) (last + 1));
		if (apply_frame(d, buf + off, len, off, err, errlen) != 0)
			return -1;
		last = save;
		have = true;
		off += ALIGN8(len);
	}
	d->next_save = have ? last + 1 : 1;
	*stop = off;
	return check_tail(d, buf, size, off, have, last, err, errlen);
}

/*
 * open_file: open the acceptors file (created, and the directory synced,
 * if absent) after removing the temp file of a compaction a crash cut.
 */
static int
open_file(PaxosDisk *d, char *err, size_t errlen)
{
	bool		dir_changed = false;

	if (unlink(d->tmp_path) == 0)
		dir_changed = true;
	else if (errno != ENOENT)
		return sio_fail_errno(err, errlen, "remove file", d->tmp_path);
	d->fd = open(d->path, O_RDWR);
	if (d->fd < 0 && errno == ENOENT)
	{
		d->fd = open(d->path, O_RDWR | O_CREAT | O_EXCL, 0600);
		dir_changed = true;
	}
	if (d->fd < 0)
		return sio_fail_errno(err, errlen, "open file", d->path);
	if (dir_changed && fsync(d->dirfd) != 0)
		return sio_fail_errno(err, errlen, "fsync directory", d->dir);
	return 0;
}

/*
 * read_back: the file into the live set and round; a torn tail is cut off
 * (truncated and synced) so the next frame follows the last whole one.
 */
static int
read_back(PaxosDisk *d, char *err, size_t errlen)
{
	uint8_t    *buf;
	size_t		size;
	size_t		stop = 0;
	int			rc;

	if (sio_read_file(d->path, &buf, &size, err, errlen) != 0)
		return -1;
	rc = replay(d, buf, size, &stop, err, errlen);
	free(buf);
	if (rc != 0)
		return -1;
	d->size = stop;
	if (stop == size)
		return 0;
	if (ftruncate(d->fd, (off_t) stop) != 0)
		return sio_fail_errno(err, errlen, "truncate file", d->path);
	if (fdatasync(d->fd) != 0)
		return sio_fail_errno(err, errlen, "fdatasync file", d->path);
	return 0;
}

/* join_path: dir/name, malloc'd, or NULL */
static char *
join_path(const char *dir, const char *name)
{
	size_t		len = strlen(dir) + strlen(name) + 2;
	char	   *p = malloc(len);

	if (p != NULL)
		snprintf(p, len, "%s/%s", dir, name);
	return p;
}

/* disk_new: an empty store for dir, nothing opened; NULL if out of memory */
static PaxosDisk *
disk_new(const char *dir)
{
	PaxosDisk  *d = calloc(1, sizeof(PaxosDisk));

	if (d == NULL)
		return NULL;
	d->fd = -1;
	d->dirfd = -1;
	d->compact_floor = COMPACT_FLOOR;
	d->n_buckets = 64;
	d->buckets = calloc(d->n_buckets, sizeof(Live *));
	d->dir = strdup(dir);
	d->path = join_path(dir, FILE_NAME);
	d->tmp_path = join_path(dir, TMP_NAME);
	if (d->buckets == NULL || d->dir == NULL || d->path == NULL || d->tmp_path == NULL)
	{
		paxos_disk_close(d);
		return NULL;
	}
	return d;
}

/* live_records: copies of the live set (the caller frees them); -1: OOM */
static int
live_records(PaxosDisk *d, PaxosAcceptorState **recs, size_t *n)
{
	PaxosAcceptorState *out = calloc(d->n_live ? d->n_live : 1, sizeof(PaxosAcceptorState));
	size_t		k = 0;

	if (out == NULL)
		return -1;
	for (size_t i = 0; i < d->n_buckets; i++)
		for (Live *l = d->buckets[i]; l != NULL; l = l->next)
		{
			out[k] = l->st;
			out[k].instance.data = copy_bytes(l->st.instance.data, l->st.instance.len);
			out[k].value.data = l->st.value.present ?
				copy_bytes(l->st.value.data, l->st.value.len) : NULL;
			if (out[k].instance.data == NULL ||
				(l->st.value.present && out[k].value.data == NULL))
			{
				paxos_disk_records_free(out, k + 1);
				return -1;
			}
			k++;
		}
	*recs = out;
	*n = k;
	return 0;
}

/*
 * paxos_disk_open: open (creating if absent) the store in dir and read
 * back the round and the live records; on failure -1 and nothing to free.
 */
int
paxos_disk_open(const char *dir, PaxosDisk **out, uint64_t *round,
				PaxosAcceptorState **recs, size_t *n, char *err, size_t errlen)
{
	PaxosDisk  *d = disk_new(dir);
	int			rc;

	*out = NULL;
	*round = 0;
	*recs = NULL;
	*n = 0;
	if (d == NULL)
		return sio_fail(err, errlen, "out of memory");
	rc = sio_open_dir(dir, &d->dirfd, err, errlen);
	if (rc == 0)
		rc = open_file(d, err, errlen);
	if (rc == 0)
		rc = read_back(d, err, errlen);
	if (rc == 0 && live_records(d, recs, n) != 0)
		rc = sio_fail(err, errlen, "out of memory reading \"%s\"", d->path);
	if (rc != 0)
	{
		paxos_disk_close(d);
		return -1;
	}
	d->stats.file_bytes = d->size;
	*round = d->round;
	*out = d;
	return 0;
}

void
paxos_disk_records_free(PaxosAcceptorState *recs, size_t n)
{
	if (recs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
	{
		free((void *) recs[i].instance.data);
		free((void *) recs[i].value.data);
	}
	free(recs);
}

/* ---- building a frame ---- */

/* frame_room: room for extra more bytes in the frame; false if too big */
static bool
frame_room(PaxosDisk *d, size_t extra)
{
	size_t		need;
	size_t		cap;
	uint8_t    *p;

	if (extra > FRAME_MAX - 8 - d->buf_len)
		return false;
	need = ALIGN8(d->buf_len + extra);
	if (need <= d->buf_cap)
		return true;
	cap = d->buf_cap ? d->buf_cap : 4096;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(d->buf, cap)) == NULL)
		return false;
	d->buf = p;
	d->buf_cap = cap;
	return true;
}

static void
frame_begin(PaxosDisk *d)
{
	d->buf_len = FRAME_HDR;
	d->buf_recs = 0;
}

/* add_round: a ROUND record; false if out of memory or the frame full */
static bool
add_round(PaxosDisk *d, uint64_t round)
{
	if (!frame_room(d, ROUND_LEN))
		return false;
	d->buf[d->buf_len] = REC_ROUND;
	sio_put64(d->buf + d->buf_len + 1, round);
	d->buf_len += ROUND_LEN;
	d->buf_recs++;
	return true;
}

/* add_acceptor: r's ACCEPTOR record (r checked by check_record) */
static bool
add_acceptor(PaxosDisk *d, const PaxosAcceptorState *r)
{
	uint8_t    *p;

	if (!frame_room(d, acceptor_size(r)))
		return false;
	p = d->buf + d->buf_len;
	p[0] = REC_ACCEPTOR;
	p[1] = r->value.present ? FLAG_PRESENT : 0;
	sio_put16(p + 2, (uint16_t) r->instance.len);
	sio_put32(p + 4, (uint32_t) r->value.len);
	sio_put64(p + 8, r->promised.round);
	sio_put64(p + 16, r->promised.node);
	sio_put64(p + 24, r->accepted.round);
	sio_put64(p + 32, r->accepted.node);
	memcpy(p + ACCEPTOR_FIXED, r->instance.data, r->instance.len);
	if (r->value.len > 0)
		memcpy(p + ACCEPTOR_FIXED + r->instance.len, r->value.data, r->value.len);
	d->buf_len += acceptor_size(r);
	d->buf_recs++;
	return true;
}

/* add_forget: a FORGET record for name (checked by the caller) */
static bool
add_forget(PaxosDisk *d, const PaxosBytes *name)
{
	uint8_t    *p;

	if (!frame_room(d, FORGET_FIXED + name->len))
		return false;
	p = d->buf + d->buf_len;
	p[0] = REC_FORGET;
	p[1] = 0;
	sio_put16(p + 2, (uint16_t) name->len);
	memcpy(p + FORGET_FIXED, name->data, name->len);
	d->buf_len += FORGET_FIXED + name->len;
	d->buf_recs++;
	return true;
}

/* frame_seal: header, zero padding and CRC of the frame built */
static void
frame_seal(PaxosDisk *d)
{
	size_t		padded = ALIGN8(d->buf_len);

	memset(d->buf + d->buf_len, 0, padded - d->buf_len);
	sio_put32(d->buf, (uint32_t) d->buf_len);
	sio_put64(d->buf + 8, d->next_save);
	sio_put32(d->buf + 16, d->buf_recs);
	sio_put32(d->buf + 20, 0);
	sio_put32(d->buf + 4, sio_crc32c(d->buf + 8, d->buf_len - 8));
}

/* ---- writing ---- */

/* usable: -1 with a message if an earlier failure closed the store */
static int
usable(const PaxosDisk *d, char *err, size_t errlen)
{
	if (d->failed)
		return sio_fail(err, errlen, "the paxos acceptor store in \"%s\" failed earlier and cannot be written", d->dir);
	return 0;
}

/* build_compacted: the round and the live set as one frame in d->buf */
static int
build_compacted(PaxosDisk *d, char *err, size_t errlen)
{
	frame_begin(d);
	if (!add_round(d, d->round))
		return sio_fail(err, errlen, "out of memory compacting \"%s\"", d->path);
	for (size_t i = 0; i < d->n_buckets; i++)
		for (Live *l = d->buckets[i]; l != NULL; l = l->next)
			if (!add_acceptor(d, &l->st))
				return sio_fail(err, errlen, "could not compact \"%s\": the live set of %zu instances does not fit in memory or in one frame of 4 GB",
								d->path, d->n_live);
	frame_seal(d);
	return 0;
}

/* write_tmp: d->buf as the whole of the temp file, synced; its fd or -1 */
static int
write_tmp(PaxosDisk *d, char *err, size_t errlen)
{
	int			fd = open(d->tmp_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		return sio_fail_errno(err, errlen, "create file", d->tmp_path);
	if (sio_write_all(fd, d->buf, ALIGN8(d->buf_len), 0, d->tmp_path, err, errlen) != 0)
	{
		close(fd);
		return -1;
	}
	if (fsync(fd) != 0)
	{
		sio_fail_errno(err, errlen, "fsync file", d->tmp_path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * compact: the round and the live set as the first frame of a new file:
 * written and synced under the temp name, renamed over the old file, the
 * directory synced.  A crash before the rename leaves the old file (open
 * removes the temp one); after it, the new one, whole.  Appends go on in
 * the new file, through the temp file's descriptor.
 */
static int
compact(PaxosDisk *d, char *err, size_t errlen)
{
	int			fd;

	if (build_compacted(d, err, errlen) != 0 ||
		(fd = write_tmp(d, err, errlen)) < 0)
		return -1;
	if (rename(d->tmp_path, d->path) != 0)
	{
		sio_fail_errno(err, errlen, "rename file", d->tmp_path);
		close(fd);
		return -1;
	}
	close(d->fd);
	d->fd = fd;
	if (fsync(d->dirfd) != 0)
		return sio_fail_errno(err, errlen, "fsync directory", d->dir);
	d->size = ALIGN8(d->buf_len);
	d->next_save++;
	d->stats.compactions++;
	return 0;
}

/*
 * write_frame: the sealed frame appended with one pwrite and one
 * fdatasync, then applied to the live set; then compaction if the file is
 * over max(floor, 4 x live).  Any failure leaves the store failed: a
 * failed sync is never retried, as the pages it lost may read back clean.
 */
static int
write_frame(PaxosDisk *d, char *err, size_t errlen)
{
	size_t		padded = ALIGN8(d->buf_len);
	uint64_t	limit;

	d->failed = true;
	if (sio_write_all(d->fd, d->buf, padded, (off_t) d->size, d->path, err, errlen) != 0)
		return -1;
	if (fdatasync(d->fd) != 0)
		return sio_fail_errno(err, errlen, "fdatasync file", d->path);
	d->stats.syncs++;
	if (apply_frame(d, d->buf, d->buf_len, (size_t) d->size, err, errlen) != 0)
		return -1;
	d->size += padded;
	d->next_save++;
	limit = 4 * compact_size(d);
	if (limit < d->compact_floor)
		limit = d->compact_floor;
	if (d->size > limit && compact(d, err, errlen) != 0)
		return -1;
	d->failed = false;
	return 0;
}

/* check_record: -1 if r cannot be stored (a caller's bug, nothing written) */
static int
check_record(const PaxosDisk *d, const PaxosAcceptorState *r, char *err, size_t errlen)
{
	if (!name_ok(r->instance.len) || r->instance.data == NULL)
		return sio_fail(err, errlen, "paxos acceptor record for \"%s\" not stored: its instance name has %zu bytes, not 1 to %d",
						d->path, r->instance.len, PAXOS_MAX_NAME);
	if (!r->value.present && r->value.len != 0)
		return sio_fail(err, errlen, "paxos acceptor record for \"%s\" not stored: its absent value has %zu bytes",
						d->path, r->value.len);
	if (r->value.len > FRAME_MAX - FRAME_HDR - ACCEPTOR_FIXED - PAXOS_MAX_NAME ||
		(r->value.len > 0 && r->value.data == NULL))
		return sio_fail(err, errlen, "paxos acceptor record for \"%s\" not stored: its value of %zu bytes is too long or missing",
						d->path, r->value.len);
	return 0;
}

/*
 * paxos_disk_save: one Ready's round and records as one frame, synced;
 * nothing to save, nothing written.
 */
int
paxos_disk_save(PaxosDisk *d, bool round_changed, uint64_t round,
				const PaxosAcceptorState *recs, size_t n, char *err, size_t errlen)
{
	if (usable(d, err, errlen) != 0)
		return -1;
	if (!round_changed && n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (check_record(d, &recs[i], err, errlen) != 0)
			return -1;
	frame_begin(d);
	if (round_changed && !add_round(d, round))
		return sio_fail(err, errlen, "could not save to \"%s\": out of memory or a frame over 4 GB", d->path);
	for (size_t i = 0; i < n; i++)
		if (!add_acceptor(d, &recs[i]))
			return sio_fail(err, errlen, "could not save to \"%s\": out of memory or a frame over 4 GB", d->path);
	frame_seal(d);
	return write_frame(d, err, errlen);
}

/*
 * paxos_disk_forget: the stored instances among names dropped by one
 * FORGET frame, synced; none stored, nothing written.
 */
int
paxos_disk_forget(PaxosDisk *d, const PaxosBytes *names, size_t n,
				  char *err, size_t errlen)
{
	if (usable(d, err, errlen) != 0)
		return -1;
	frame_begin(d);
	for (size_t i = 0; i < n; i++)
	{
		if (!name_ok(names[i].len) || names[i].data == NULL ||
			live_find(d, names[i].data, names[i].len) == NULL)
			continue;
		if (!add_forget(d, &names[i]))
			return sio_fail(err, errlen, "could not save to \"%s\": out of memory or a frame over 4 GB", d->path);
	}
	if (d->buf_recs == 0)
		return 0;
	frame_seal(d);
	return write_frame(d, err, errlen);
}

void
paxos_disk_stats(const PaxosDisk *d, PaxosDiskStats *out)
{
	*out = d->stats;
	out->file_bytes = d->size;
	out->live_bytes = compact_size(d);
	out->instances = d->n_live;
}

void
paxos_disk_set_compact_floor(PaxosDisk *d, uint64_t bytes)
{
	d->compact_floor = bytes;
}

void
paxos_disk_close(PaxosDisk *d)
{
	if (d == NULL)
		return;
	if (d->fd >= 0)
		close(d->fd);
	if (d->dirfd >= 0)
		close(d->dirfd);
	for (size_t i = 0; d->buckets != NULL && i < d->n_buckets; i++)
		while (d->buckets[i] != NULL)
		{
			Live	   *l = d->buckets[i];

			d->buckets[i] = l->next;
			live_free(l);
		}
	free(d->buckets);
	free(d->buf);
	free(d->dir);
	free(d->path);
	free(d->tmp_path);
	free(d);
}
