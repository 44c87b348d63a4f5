/*-------------------------------------------------------------------------
 *
 * kvbench.h
 *	  Interface between the replicated key-value benchmark driver
 *	  (kvbench.c) and its targets: distsys' Raft store through libpq
 *	  (target_distsys.c) and etcd through its JSON gateway (target_etcd.c).
 *
 * Each client thread opens its own connection through the target and then
 * only calls put or get on it, so a target needs no locking of its own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVBENCH_H
#define KVBENCH_H

#include "../common/benchutil.h"

typedef struct KvTarget
{
	const char *name;
	/* open: a connection for one client to the server on port, or NULL */
	void	   *(*open) (int port, int client);
	/* put: store a JSON value under key; false after printing why */
	bool		(*put) (void *conn, const char *key, const char *json);
	/* get: a linearizable read of key; false after printing why */
	bool		(*get) (void *conn, const char *key);
	void		(*close) (void *conn);
	/* set_timeout: how long a request may wait for the cluster; may be NULL */
	bool		(*set_timeout) (void *conn, int ms);
} KvTarget;

extern const KvTarget distsys_kv_target;
extern const KvTarget etcd_kv_target;

#endif							/* KVBENCH_H */
