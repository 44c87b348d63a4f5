/*-------------------------------------------------------------------------
 *
 * kvbench.h
 *	  Interface between the replicated key-value benchmark driver
 *	  (kvbench.c) and its targets: distsys' Raft store and its Paxos
 *	  registers through libpq (target_distsys.c) and etcd through its JSON
 *	  gateway (target_etcd.c).
 *
 * Each client thread opens its own connection through the target and then
 * only calls put, get, cas or read on it, so a target needs no locking of
 * its own.  A target without cas and read (etcd) runs only put and get.
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
	/*
	 * cas: store a JSON value under key if its value equals expected (NULL:
	 * if the key is absent); 1 if it did, 0 if it did not, -1 after printing
	 * why (the write may or may not have happened); may be NULL
	 */
	int			(*cas) (void *conn, const char *key, const char *expected,
						const char *json);
	/*
	 * read: a linearizable read of key, its value's JSON text (malloc'd; NULL
	 * if absent) in *value; false after printing why; may be NULL
	 */
	bool		(*read) (void *conn, const char *key, char **value);
} KvTarget;

extern const KvTarget distsys_kv_target;
extern const KvTarget paxos_kv_target;
extern const KvTarget etcd_kv_target;

#endif							/* KVBENCH_H */
