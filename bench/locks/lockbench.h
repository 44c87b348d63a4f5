/*-------------------------------------------------------------------------
 *
 * lockbench.h
 *	  Interface between the lock benchmark driver and its targets.
 *
 * A target is one way of taking a named lock: PostgreSQL advisory locks,
 * distsys leases, the unique-index table, Redis, etcd.  The driver
 * (lockbench.c) runs one client per thread; each thread opens its own
 * connection through the target and then only calls acquire and release on
 * it, so a target needs no locking of its own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKBENCH_H
#define LOCKBENCH_H

#include "../common/benchutil.h"

/* Lease time-to-live every target asks for, in seconds. */
#define BENCH_TTL_SECONDS 30

typedef struct BenchConfig
{
	const char *target;			/* name of a LockTarget */
	int			port;			/* the target's server port */
	int			clients;		/* threads, one connection each */
	bool		contend;		/* all clients on one name */
	bool		wait;			/* blocking acquire rather than try */
	int			warmup_ms;		/* run, but do not record, this long */
	int			run_ms;			/* recording window */
	int			retry_us;		/* sleep between tries of a busy lock */
	const char *prefix;			/* lock names start with this */
} BenchConfig;

typedef enum LockResult
{
	LOCK_GRANTED,
	LOCK_BUSY,					/* held by someone else (try only) */
	LOCK_FAILED					/* error; the target printed why */
} LockResult;

/* One server counter, read before and after the recording window. */
typedef struct StatPair
{
	char		name[64];
	double		value;
} StatPair;

#define BENCH_MAX_STATS 32

typedef struct LockTarget
{
	const char *name;
	bool		can_try;
	bool		can_wait;
	/* open: a connection for one client, or NULL after printing why */
	void	   *(*open) (const BenchConfig *cfg, int client);
	LockResult	(*acquire) (void *conn, const char *lock, bool wait);
	bool		(*release) (void *conn, const char *lock);
	void		(*close) (void *conn);
	/* stats: fill out[] with server counters, return how many or -1; may be NULL */
	int			(*stats) (void *conn, StatPair *out, int max);
} LockTarget;

extern const LockTarget pg_advisory_target;
extern const LockTarget pg_dlock_target;
extern const LockTarget pg_dlock_app_target;
extern const LockTarget pg_unique_target;
extern const LockTarget redis_target;
extern const LockTarget etcd_txn_target;
extern const LockTarget etcd_lock_target;

#endif							/* LOCKBENCH_H */
