/*-------------------------------------------------------------------------
 *
 * paxos_disk.h
 *	  A Paxos node's durable acceptor state in a file of its own: the
 *	  node's highest round and the last record of every instance, synced
 *	  before the messages of a Ready are sent (paxos.h's contract;
 *	  docs/design/paxos.md, "Among PostgreSQL nodes").
 *
 * Pure C like the core and raft_store.c (no PostgreSQL header), so a test
 * program outside the server can cut and corrupt the file.  The store
 * allocates with malloc and reports every failure as -1 with a message in
 * the caller's buffer (naming the file and the system's reason).  It never
 * retries a failed write or sync: after a -1 from paxos_disk_save or
 * paxos_disk_forget the store refuses everything, and the caller must stop
 * the node (a restart reads back what is durable).
 *
 * Files, in the directory given (the worker's is pg_distsys/paxos):
 *	  acceptors		the log of saves
 *	  acceptors.tmp	a compaction being written: removed on open
 *
 * A save (one Ready, one forget, or a compaction's whole live set) is one
 * frame, written with one pwrite and one fdatasync; all fields are
 * little-endian and a frame is padded with zeros to 8 bytes:
 *	  0  u32 length (header + records)	 4  u32 CRC-32C of bytes 8..length
 *	  8  u64 save number (each frame's is one more than the one before)
 *	 16  u32 number of records			20  u32 zero
 *	 24  the records, each starting with a u8 type:
 *		 ROUND (1):		u8 type, u64 round
 *		 ACCEPTOR (2):	u8 type, u8 flags (1: value present), u16 name
 *						length, u32 value length, u64 promised round,
 *						u64 promised node, u64 accepted round, u64 accepted
 *						node, the name, the value
 *		 FORGET (3):	u8 type, u8 zero, u16 name length, the name
 *
 * A frame is a Ready as a whole: a crash in its write leaves it torn, and
 * reading back ignores it whole.  Reading stops at the first frame that is
 * not valid; if a valid frame of a later save (number above the next one)
 * follows it at any 8-byte offset, a synced save became unreadable and the
 * file is refused as corrupt; otherwise the tail is what a crash cut before
 * its sync, and the file is truncated there.  Every length inside a frame
 * is checked against the bytes left, and a name of 0 or more than
 * PAXOS_MAX_NAME bytes is refused, so a corrupt or hostile file is
 * reported, never read past.
 *
 * The store keeps the live records (the last one per instance) in memory;
 * when the file has grown past max(4 MB, 4 x the live set's size) it
 * writes the live set into acceptors.tmp, syncs it, renames it over
 * acceptors and syncs the directory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAXOS_DISK_H
#define PAXOS_DISK_H

#include "core/paxos.h"

typedef struct PaxosDisk PaxosDisk;

/*
 * Open (creating if absent) the store in dir and read back the durable
 * round (0 if none) and the last record of every live instance: *recs, a
 * malloc'd array of *n, each name and value malloc'd too (free them with
 * paxos_disk_records_free), in no particular order.  On failure -1, *out
 * NULL, *recs NULL and *n 0.
 */
extern int	paxos_disk_open(const char *dir, PaxosDisk **out, uint64_t *round,
							PaxosAcceptorState **recs, size_t *n,
							char *err, size_t errlen);

extern void paxos_disk_records_free(PaxosAcceptorState *recs, size_t n);

/*
 * One Ready: round (if round_changed) and recs, each replacing the stored
 * record of its instance, as one write and one fdatasync; then compaction
 * if the file has grown enough.  Nothing to save: no write.  A record the
 * file cannot hold (a name of 0 or more than PAXOS_MAX_NAME bytes, an
 * absent value with bytes) is refused before anything is written.
 */
extern int	paxos_disk_save(PaxosDisk *d, bool round_changed, uint64_t round,
							const PaxosAcceptorState *recs, size_t n,
							char *err, size_t errlen);

/*
 * Drop the records of the instances named, for good (finished instances'
 * garbage collection): one FORGET frame, synced.  Names not stored are
 * skipped; none stored, nothing written.
 */
extern int	paxos_disk_forget(PaxosDisk *d, const PaxosBytes *names, size_t n,
							  char *err, size_t errlen);

/* Counters for the status view and the tests. */
typedef struct PaxosDiskStats
{
	uint64_t	syncs;			/* fdatasync calls that wrote frames */
	uint64_t	compactions;
	uint64_t	file_bytes;		/* size of the acceptors file now */
	uint64_t	live_bytes;		/* what a compaction would write */
	uint64_t	instances;		/* live records */
} PaxosDiskStats;

extern void paxos_disk_stats(const PaxosDisk *d, PaxosDiskStats *out);

/*
 * The file size below which no compaction happens (default 4 MB); the test
 * program lowers it to compact often.
 */
extern void paxos_disk_set_compact_floor(PaxosDisk *d, uint64_t bytes);

extern void paxos_disk_close(PaxosDisk *d);

#endif							/* PAXOS_DISK_H */
