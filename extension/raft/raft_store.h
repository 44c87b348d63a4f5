/*-------------------------------------------------------------------------
 *
 * raft_store.h
 *	  A Raft node's durable state in files of its own: the hard state, the
 *	  log entries and the snapshot, synced before anything that depends on
 *	  them is sent (docs/design/raft.md, "Storage among nodes").
 *
 * Pure C like the core (no PostgreSQL header), so the same code runs in
 * the worker and in a test program outside the server that tears, cuts
 * and corrupts the files.  The store allocates with malloc and reports
 * every failure as -1 with a message in the caller's buffer (naming the
 * file and the system's reason); it never retries a failed write or sync:
 * the caller must stop using the store (and the node) after any -1 from
 * raft_store_save or raft_store_compact.
 *
 * Layout, in one directory: log segments (pre-allocated, zero-filled and
 * synced before use), each a stream of records (length, CRC-32C, type,
 * term, index, payload): entries, hard state, truncate-from-index,
 * snapshot marker; and the snapshot file, written by write, sync, rename,
 * directory sync under a new name and trusted only once the marker naming
 * it is synced.  A Ready is one write of all its records and one
 * fdatasync.  Reading stops at the first zero length or bad CRC at the
 * tail (what a crash cut before its sync); a bad record followed by good
 * ones is corruption, reported as an error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RAFT_STORE_H
#define RAFT_STORE_H

#include "core/raft.h"

typedef struct RaftStore RaftStore;

typedef struct RaftStoreOptions
{
	size_t		segment_bytes;	/* size of a log segment; 0: 16 MB */
} RaftStoreOptions;

/*
 * RaftStoreState: what raft_store_open read back, in the form
 * raft_new's RaftRestore wants (raft_store_restore fills one).  The
 * entries are those after the snapshot, contiguous, with the truncations
 * applied.  Everything is malloc'd; raft_store_state_free frees it.
 */
typedef struct RaftStoreState
{
	bool		hs_found;
	RaftHardState hs;
	bool		has_snapshot;
	RaftSnapshot snapshot;		/* data malloc'd */
	RaftEntry  *entries;		/* each entry's data malloc'd */
	size_t		n_entries;
} RaftStoreState;

/* Open (creating if absent) the store in dir and read it back into *st. */
extern int	raft_store_open(const char *dir, const RaftStoreOptions *opt,
							RaftStore **out, RaftStoreState *st,
							char *err, size_t errlen);

/* st as the core's RaftRestore (pointers into st). */
extern void raft_store_restore(const RaftStoreState *st, RaftRestore *rs);

extern void raft_store_state_free(RaftStoreState *st);

/*
 * Persist what rd asks to persist, in raft.h's order (snapshot, entries
 * after dropping stored ones at or after rd->entries[0].index, hard
 * state), with one sync.  Nothing to persist: no write, no sync.
 */
extern int	raft_store_save(RaftStore *s, const RaftReady *rd,
							char *err, size_t errlen);

/*
 * Compaction: snap is the node's own snapshot (raft_compact's); it is
 * written durably, then entries up to snap->index may go (whole segments
 * below it are deleted).  A snapshot not after the stored one changes
 * nothing; one after the last stored entry is refused.
 */
extern int	raft_store_compact(RaftStore *s, const RaftSnapshot *snap,
							   char *err, size_t errlen);

/* Counters for raft_status and the benchmark. */
typedef struct RaftStoreStats
{
	uint64_t	syncs;			/* fdatasync calls that wrote records */
	uint64_t	bytes;			/* record bytes written */
	uint64_t	segments;		/* segments created */
} RaftStoreStats;

extern void raft_store_stats(const RaftStore *s, RaftStoreStats *out);

extern void raft_store_close(RaftStore *s);

#endif							/* RAFT_STORE_H */
