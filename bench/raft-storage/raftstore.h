/*-------------------------------------------------------------------------
 *
 * raftstore.h
 *	  Interface between the Raft log storage benchmark's driver (main.c)
 *	  and its stores (store_file.c, store_pg.c).
 *
 * A store is one way of keeping the Raft log durably: files under the data
 * directory synced by the writer itself, rows of a table committed
 * durably, or WAL records (the last two also by a loop inside the server,
 * as a background worker would write them, without the client's round
 * trips).  The driver calls append_sync once per batch
 * and counts the batch durable when it returns, exactly as the Raft
 * worker may send the messages that depend on the batch only then.  One
 * process, one thread: no store needs locking.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RAFTSTORE_H
#define RAFTSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every server the benchmark talks to listens on loopback only. */
#define BENCH_HOST "127.0.0.1"

typedef struct StoreConfig
{
	const char *kind;			/* name of a store, see store_open */
	int			size;			/* payload bytes per entry */
	int			batch;			/* entries per sync */
	const char *dir;			/* file stores: a directory on the data disk */
	int			port;			/* PostgreSQL stores: the server's port */
} StoreConfig;

typedef struct Store Store;

/*
 * The stores.  open returns NULL after printing why; append_sync writes
 * entries first_index .. first_index + batch - 1 (payload: cfg->size bytes
 * each from payload) and returns only once they are durable, false after
 * printing why (a failed sync ends the run: it is never retried, as a
 * Raft node must stop rather than believe a sync that failed).
 */
typedef struct StoreOps
{
	const char *prefix;			/* kinds starting with this belong here */
	Store	   *(*open) (const StoreConfig *cfg);
	bool		(*append_sync) (Store *st, uint64_t first_index,
								const uint8_t *payload);
	void		(*close) (Store *st);

	/*
	 * run_window, where set, replaces the driver's loop: the store runs its
	 * own loop of batches for warmup_ms unrecorded and then run_ms, and
	 * hands back each recorded sync's latency in microseconds (*us, malloc'd,
	 * *n of them); false after printing why.
	 */
	bool		(*run_window) (Store *st, int warmup_ms, int run_ms,
							   double **us, size_t *n);
} StoreOps;

extern const StoreOps file_store_ops;
extern const StoreOps pg_store_ops;
extern const StoreOps srv_store_ops;

#endif							/* RAFTSTORE_H */
