/*-------------------------------------------------------------------------
 *
 * store_io.c
 *	  Helpers of the consensus stores (raft_store.c, paxos_disk.c): CRC-32C,
 *	  error messages, whole writes and reads, the store directory
 *	  (store_io.h).
 *
 * Pure C, no shared state: the CRC table is built once, and only the
 * worker's single thread (or a test program) calls these.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_io.h"

static uint32_t crc_table[256];
static bool crc_ready;

/*
 * sio_crc32c_add: crc (as sio_crc32c_add returned, ~0 to start) extended by
 * data; CRC-32C, Castagnoli's polynomial reflected (0x82F63B78),
 * table-driven.  Incremental so a header and its data need not be copied
 * together.
 */
uint32_t
sio_crc32c_add(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!crc_ready)
	{
		for (uint32_t i = 0; i < 256; i++)
		{
			uint32_t	c = i;

			for (int k = 0; k < 8; k++)
				c = (c & 1) ? (c >> 1) ^ 0x82F63B78 : c >> 1;
			crc_table[i] = c;
		}
		crc_ready = true;
	}
	while (len-- > 0)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* sio_crc32c: the CRC-32C of data */
uint32_t
sio_crc32c(const void *data, size_t len)
{
	return sio_crc32c_add(0xffffffff, data, len) ^ 0xffffffff;
}

/* sio_fail: the message into err (if any); returns -1 for the caller's return */
int
sio_fail(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err != NULL && errlen > 0)
	{
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* sio_fail_errno: "could not WHAT "PATH": strerror(errno)", -1 */
int
sio_fail_errno(char *err, size_t errlen, const char *what, const char *path)
{
	return sio_fail(err, errlen, "could not %s \"%s\": %s", what, path, strerror(errno));
}

/* sio_write_all: one pwrite of len bytes at off; a short write is an error */
int
sio_write_all(int fd, const void *data, size_t len, off_t off, const char *path,
			  char *err, size_t errlen)
{
	ssize_t		n = pwrite(fd, data, len, off);

	if (n < 0)
		return sio_fail_errno(err, errlen, "write to file", path);
	if ((size_t) n != len)
		return sio_fail(err, errlen, "could not write to file \"%s\": wrote only %zd of %zu bytes",
						path, n, len);
	return 0;
}

/*
 * sio_read_file: the whole of path into a malloc'd *buf (*size bytes);
 * -1 if it cannot be read.  The stores read their files whole.
 */
int
sio_read_file(const char *path, uint8_t **buf, size_t *size, char *err, size_t errlen)
{
	struct stat st;
	int			fd = open(path, O_RDONLY);
	ssize_t		n;

	*buf = NULL;
	*size = 0;
	if (fd < 0)
		return sio_fail_errno(err, errlen, "open file", path);
	if (fstat(fd, &st) != 0)
		goto failed;
	*buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
	if (*buf == NULL)
	{
		errno = ENOMEM;
		goto failed;
	}
	while (*size < (size_t) st.st_size)
	{
		n = pread(fd, *buf + *size, (size_t) st.st_size - *size, (off_t) *size);
		if (n <= 0)
		{
			if (n == 0)
				errno = EIO;	/* the file shrank under us */
			goto failed;
		}
		*size += (size_t) n;
	}
	close(fd);
	return 0;

failed:
	sio_fail_errno(err, errlen, "read file", path);
	close(fd);
	free(*buf);
	*buf = NULL;
	return -1;
}

/*
 * sync_parent: fsync the directory that holds dir, so a directory just
 * created survives a crash with the files that will be synced in it.
 */
static int
sync_parent(const char *dir, char *err, size_t errlen)
{
	char	   *parent = strdup(dir);
	char	   *slash = parent ? strrchr(parent, '/') : NULL;
	int			fd;
	int			rc = 0;

	if (parent == NULL)
		return sio_fail(err, errlen, "out of memory");
	if (slash == NULL)
		strcpy(parent, ".");
	else
		slash[slash == parent ? 1 : 0] = '\0';
	fd = open(parent, O_RDONLY);
	if (fd < 0 || fsync(fd) != 0)
		rc = sio_fail_errno(err, errlen, "fsync directory", parent);
	if (fd >= 0)
		close(fd);
	free(parent);
	return rc;
}

/*
 * sio_open_dir: create dir if absent (durably: its parent is synced), and
 * open it into *dirfd for the syncs that make names created or removed in
 * it stay so.
 */
int
sio_open_dir(const char *dir, int *dirfd, char *err, size_t errlen)
{
	*dirfd = -1;
	if (mkdir(dir, 0700) == 0)
	{
		if (sync_parent(dir, err, errlen) != 0)
			return -1;
	}
	else if (errno != EEXIST)
		return sio_fail_errno(err, errlen, "create directory", dir);
	*dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (*dirfd < 0)
		return sio_fail_errno(err, errlen, "open directory", dir);
	return 0;
}
