/*-------------------------------------------------------------------------
 *
 * store_io.h
 *	  What the consensus stores (raft_store.c, paxos_disk.c) share: CRC-32C,
 *	  little-endian fields, error messages in the caller's buffer, whole
 *	  writes and reads of files, and a store directory created durably.
 *
 * Pure C (C library and POSIX, no PostgreSQL header), like the stores, so
 * the test programs outside the server compile it too.  PostgreSQL's
 * pg_crc32c.h cannot serve: it needs c.h and the server's port library.
 * Every function that can fail returns -1 with a message naming the file
 * and the system's reason in err (if err is not NULL), 0 on success.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STORE_IO_H
#define STORE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* CRC-32C (Castagnoli): sio_crc32c_add from ~0, then xor ~0 at the end */
extern uint32_t sio_crc32c_add(uint32_t crc, const void *data, size_t len);
extern uint32_t sio_crc32c(const void *data, size_t len);

static inline void
sio_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
}

static inline void
sio_put32(uint8_t *p, uint32_t v)
{
	sio_put16(p, (uint16_t) v);
	sio_put16(p + 2, (uint16_t) (v >> 16));
}

static inline void
sio_put64(uint8_t *p, uint64_t v)
{
	sio_put32(p, (uint32_t) v);
	sio_put32(p + 4, (uint32_t) (v >> 32));
}

static inline uint16_t
sio_get16(const uint8_t *p)
{
	return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t
sio_get32(const uint8_t *p)
{
	return (uint32_t) sio_get16(p) | ((uint32_t) sio_get16(p + 2) << 16);
}

static inline uint64_t
sio_get64(const uint8_t *p)
{
	return (uint64_t) sio_get32(p) | ((uint64_t) sio_get32(p + 4) << 32);
}

extern int	sio_fail(char *err, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
extern int	sio_fail_errno(char *err, size_t errlen, const char *what,
						   const char *path);
extern int	sio_write_all(int fd, const void *data, size_t len, off_t off,
						  const char *path, char *err, size_t errlen);
extern int	sio_read_file(const char *path, uint8_t **buf, size_t *size,
						  char *err, size_t errlen);
extern int	sio_open_dir(const char *dir, int *dirfd, char *err, size_t errlen);

#endif							/* STORE_IO_H */
