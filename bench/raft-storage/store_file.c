/*-------------------------------------------------------------------------
 *
 * store_file.c
 *	  The Raft log as files under the data directory, synced by the writer.
 *
 * Kinds:
 *	  file-pre-fdatasync	pwrite into a pre-allocated segment, fdatasync
 *	  file-pre-fsync		the same with fsync (also flushes the inode's
 *							times)
 *	  file-pre-odsync		the segment opened O_DSYNC: each pwrite returns
 *							once durable, no separate sync call
 *	  file-grow-fdatasync	append to a growing file, fdatasync (the size
 *							changes, so each sync also commits metadata)
 *	  file-floor			the disk's floor: --size raw bytes (4 KB) per
 *							pwrite into the pre-allocated segment, fdatasync
 *
 * A batch is one pwrite of its records, then one sync.  Each record is a
 * 24-byte header (payload length, CRC-32C, term, index) and the payload,
 * as a real log needs: a torn write at a crash must be found on reading,
 * and the checksum is what finds it.  The pre-allocated segment is written
 * with zeros and synced before the clock starts (as PostgreSQL makes its
 * WAL segments), so that a sync writes data only; it is reused from its
 * start when full, as a recycled segment would be.
 *
 * One process, one thread; the file is the writer's alone and is removed
 * at close.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

#include "raftstore.h"

#define SEGMENT_BYTES	(16 * 1024 * 1024)
#define HEADER_BYTES	24

typedef enum SyncHow
{
	SYNC_FDATASYNC,
	SYNC_FSYNC,
	SYNC_ODSYNC
} SyncHow;

struct Store
{
	int			fd;
	SyncHow		how;
	bool		grow;			/* append to a growing file */
	bool		raw;			/* no record headers: the floor */
	int			size;
	int			batch;
	off_t		offset;			/* where the next batch goes */
	size_t		batch_bytes;
	uint8_t    *buf;			/* one batch's records */
	char		path[4096];
};

/* crc32c: CRC-32C (Castagnoli) of len bytes, continuing from crc */
static uint32_t
crc32c(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
#if defined(__SSE4_2__)
	for (; len >= 8; len -= 8, p += 8)
	{
		uint64_t	w;

		memcpy(&w, p, 8);
		crc = (uint32_t) _mm_crc32_u64(crc, w);
	}
	for (; len > 0; len--)
		crc = _mm_crc32_u8(crc, *p++);
#else
	for (; len > 0; len--)
	{
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
#endif
	return ~crc;
}

/* fsync_path: opens path (a file or a directory) and fsyncs it */
static bool
fsync_path(const char *path)
{
	int			fd = open(path, O_RDONLY);
	bool		ok = fd >= 0 && fsync(fd) == 0;

	if (!ok)
		fprintf(stderr, "raftstore: could not sync %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return ok;
}

/* zero_fill: writes SEGMENT_BYTES of zeros to fd and syncs it */
static bool
zero_fill(int fd)
{
	static uint8_t zeros[1024 * 1024];

	for (off_t off = 0; off < SEGMENT_BYTES; off += sizeof(zeros))
		if (pwrite(fd, zeros, sizeof(zeros), off) != (ssize_t) sizeof(zeros))
			return false;
	return fsync(fd) == 0;
}

/* parse_kind: fills how/grow/raw from the kind's name; false if unknown */
static bool
parse_kind(Store *st, const char *kind)
{
	st->how = SYNC_FDATASYNC;
	if (strcmp(kind, "file-pre-fdatasync") == 0 || strcmp(kind, "file-floor") == 0)
		st->raw = strcmp(kind, "file-floor") == 0;
	else if (strcmp(kind, "file-pre-fsync") == 0)
		st->how = SYNC_FSYNC;
	else if (strcmp(kind, "file-pre-odsync") == 0)
		st->how = SYNC_ODSYNC;
	else if (strcmp(kind, "file-grow-fdatasync") == 0)
		st->grow = true;
	else
		return false;
	return true;
}

/*
 * file_open: creates the log file in cfg->dir (zero-filled and synced
 * unless growing), syncs the directory, and returns the store.
 */
static Store *
file_open(const StoreConfig *cfg)
{
	Store	   *st = calloc(1, sizeof(Store));
	int			flags = O_RDWR | O_CREAT | O_TRUNC;

	if (!parse_kind(st, cfg->kind))
	{
		fprintf(stderr, "raftstore: unknown file kind %s\n", cfg->kind);
		return NULL;
	}
	st->size = cfg->size;
	st->batch = cfg->batch;
	st->batch_bytes = (size_t) (st->raw ? 0 : HEADER_BYTES) * cfg->batch +
		(size_t) cfg->size * cfg->batch;
	st->buf = calloc(1, st->batch_bytes);
	snprintf(st->path, sizeof(st->path), "%s/raftstore.%s.log", cfg->dir, cfg->kind);
	if ((st->fd = open(st->path, flags, 0600)) < 0 ||
		(!st->grow && !zero_fill(st->fd)) || !fsync_path(cfg->dir))
	{
		fprintf(stderr, "raftstore: could not prepare %s: %s\n", st->path, strerror(errno));
		return NULL;
	}
	if (st->how == SYNC_ODSYNC)
	{
		close(st->fd);
		if ((st->fd = open(st->path, O_RDWR | O_DSYNC)) < 0)
		{
			fprintf(stderr, "raftstore: could not open %s O_DSYNC: %s\n", st->path, strerror(errno));
			return NULL;
		}
	}
	return st;
}

/* fill_batch: the batch's records (header + payload each) into st->buf */
static void
fill_batch(Store *st, uint64_t first_index, const uint8_t *payload)
{
	uint8_t    *p = st->buf;

	if (st->raw)
	{
		memcpy(p, payload, st->batch_bytes);
		return;
	}
	for (int i = 0; i < st->batch; i++)
	{
		uint32_t	len = (uint32_t) st->size,
					crc;
		uint64_t	term = 1,
					index = first_index + i;

		memcpy(p, &len, 4);
		memcpy(p + 8, &term, 8);
		memcpy(p + 16, &index, 8);
		memcpy(p + HEADER_BYTES, payload + (size_t) i * st->size, st->size);
		crc = crc32c(crc32c(0, p + 8, 16), p + HEADER_BYTES, st->size);
		memcpy(p + 4, &crc, 4);
		p += HEADER_BYTES + st->size;
	}
}

/*
 * file_append_sync: one pwrite of the batch at the next offset (from the
 * segment's start again when it would not fit), then the kind's sync.
 */
static bool
file_append_sync(Store *st, uint64_t first_index, const uint8_t *payload)
{
	int			rc = 0;

	fill_batch(st, first_index, payload);
	if (!st->grow && st->offset + (off_t) st->batch_bytes > SEGMENT_BYTES)
		st->offset = 0;
	if (pwrite(st->fd, st->buf, st->batch_bytes, st->offset) != (ssize_t) st->batch_bytes)
	{
		fprintf(stderr, "raftstore: write to %s failed: %s\n", st->path, strerror(errno));
		return false;
	}
	st->offset += st->batch_bytes;
	if (st->how == SYNC_FDATASYNC)
		rc = fdatasync(st->fd);
	else if (st->how == SYNC_FSYNC)
		rc = fsync(st->fd);
	if (rc != 0)
		fprintf(stderr, "raftstore: sync of %s failed: %s\n", st->path, strerror(errno));
	return rc == 0;
}

/* file_close: closes and removes the log file */
static void
file_close(Store *st)
{
	close(st->fd);
	unlink(st->path);
	free(st->buf);
	free(st);
}

const StoreOps file_store_ops = {
	.prefix = "file-",
	.open = file_open,
	.append_sync = file_append_sync,
	.close = file_close
};
