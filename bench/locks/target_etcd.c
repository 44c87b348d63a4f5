/*-------------------------------------------------------------------------
 *
 * target_etcd.c
 *	  etcd targets of the lock benchmark, through etcd's v3 JSON gateway
 *	  (HTTP/1.1 keep-alive on the client port) with libcurl on loopback:
 *
 *	  etcd-txn   lock: lease grant (TTL 30 s) + txn "create_revision(name)
 *	             == 0 -> put name with that lease"; unlock: revoke the lease,
 *	             which deletes the key.  One lease per grant, as Redis PX and
 *	             distsys' ttl give one expiry per lock.  Try only.
 *	  etcd-lock  etcd's own lock service (what 'etcdctl lock' uses): one
 *	             session lease per client, then /v3/lock/lock, which blocks
 *	             in the server until the client's key is the oldest under
 *	             the name (a FIFO queue, each waiter watching only its
 *	             predecessor), and /v3/lock/unlock.  Wait only.
 *
 * The HTTP plumbing is bench/common/etcd_http.c.  Each connection belongs
 * to one client thread.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/etcd_http.h"
#include "lockbench.h"

/* Session leases of etcd-lock are renewed (regranted) past this age. */
#define SESSION_TTL_SECONDS 60
#define SESSION_RENEW_NS (20ull * 1000000000u)

typedef struct EtcdConn
{
	EtcdHttp	http;
	char		lease[32];		/* held (txn) or session (lock) lease */
	char		pending[32];	/* txn: granted but not yet used */
	uint64_t	lease_at;		/* lock: when the session lease was granted */
	char		key[512];		/* lock: base64 key of the held lock */
} EtcdConn;

static bool
lease_grant(EtcdConn *ec, int ttl, char *out, size_t outlen)
{
	char		json[64];

	snprintf(json, sizeof(json), "{\"TTL\":%d}", ttl);
	if (!etcd_http_post(&ec->http, "/v3/lease/grant", json))
		return false;
	if (!etcd_json_string(ec->http.body.data, "ID", out, outlen))
	{
		bench_error(ec->http.client, "lease grant: no ID in %s", ec->http.body.data);
		return false;
	}
	return true;
}

static bool
lease_revoke(EtcdConn *ec, const char *lease)
{
	char		json[96];

	snprintf(json, sizeof(json), "{\"ID\":\"%s\"}", lease);
	return etcd_http_post(&ec->http, "/v3/lease/revoke", json);
}

static void
etcd_close(void *conn)
{
	EtcdConn   *ec = conn;

	etcd_http_close(&ec->http);
	free(ec);
}

static EtcdConn *
etcd_connect(const BenchConfig *cfg, int client)
{
	EtcdConn   *ec = calloc(1, sizeof(EtcdConn));

	etcd_http_open(&ec->http, cfg->port, client);
	return ec;
}

/*
 * etcd_txn_open: a client of etcd-txn; checks the server answers with one
 * lease grant, kept as the first pending lease.
 */
static void *
etcd_txn_open(const BenchConfig *cfg, int client)
{
	EtcdConn   *ec = etcd_connect(cfg, client);

	if (!lease_grant(ec, BENCH_TTL_SECONDS, ec->pending, sizeof(ec->pending)))
	{
		etcd_close(ec);
		return NULL;
	}
	return ec;
}

/*
 * etcd_txn_acquire: grant a lease unless one is left from a busy try, then
 * put the key with it only if the key does not exist.
 */
static LockResult
etcd_txn_acquire(void *conn, const char *lock, bool wait)
{
	EtcdConn   *ec = conn;
	char		key[512];
	char		value[64];
	char		json[1400];

	(void) wait;
	if (ec->pending[0] == '\0' &&
		!lease_grant(ec, BENCH_TTL_SECONDS, ec->pending, sizeof(ec->pending)))
		return LOCK_FAILED;
	etcd_base64(lock, key, sizeof(key));
	etcd_base64(ec->pending, value, sizeof(value));
	snprintf(json, sizeof(json),
			 "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"create_revision\":\"0\"}],"
			 "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%s\"}}]}",
			 key, key, value, ec->pending);
	if (!etcd_http_post(&ec->http, "/v3/kv/txn", json))
		return LOCK_FAILED;
	if (strstr(ec->http.body.data, "\"succeeded\":true") == NULL)
		return LOCK_BUSY;
	snprintf(ec->lease, sizeof(ec->lease), "%s", ec->pending);
	ec->pending[0] = '\0';
	return LOCK_GRANTED;
}

static bool
etcd_txn_release(void *conn, const char *lock)
{
	EtcdConn   *ec = conn;

	(void) lock;
	return lease_revoke(ec, ec->lease);
}

static void
etcd_txn_close(void *conn)
{
	EtcdConn   *ec = conn;

	if (ec->pending[0] != '\0')
		lease_revoke(ec, ec->pending);
	etcd_close(ec);
}

static void *
etcd_lock_open(const BenchConfig *cfg, int client)
{
	EtcdConn   *ec = etcd_connect(cfg, client);

	if (!lease_grant(ec, SESSION_TTL_SECONDS, ec->lease, sizeof(ec->lease)))
	{
		etcd_close(ec);
		return NULL;
	}
	ec->lease_at = bench_now_ns();
	return ec;
}

/*
 * etcd_lock_acquire: /v3/lock/lock with the session lease, renewing that
 * lease first if it is old (never while holding the lock, so the key is
 * never lost with it).
 */
static LockResult
etcd_lock_acquire(void *conn, const char *lock, bool wait)
{
	EtcdConn   *ec = conn;
	char		name[512];
	char		json[700];

	(void) wait;
	if (bench_now_ns() - ec->lease_at > SESSION_RENEW_NS)
	{
		lease_revoke(ec, ec->lease);
		if (!lease_grant(ec, SESSION_TTL_SECONDS, ec->lease, sizeof(ec->lease)))
			return LOCK_FAILED;
		ec->lease_at = bench_now_ns();
	}
	etcd_base64(lock, name, sizeof(name));
	snprintf(json, sizeof(json), "{\"name\":\"%s\",\"lease\":\"%s\"}", name, ec->lease);
	if (!etcd_http_post(&ec->http, "/v3/lock/lock", json))
		return LOCK_FAILED;
	if (!etcd_json_string(ec->http.body.data, "key", ec->key, sizeof(ec->key)))
	{
		bench_error(ec->http.client, "lock: no key in %s", ec->http.body.data);
		return LOCK_FAILED;
	}
	return LOCK_GRANTED;
}

static bool
etcd_lock_release(void *conn, const char *lock)
{
	EtcdConn   *ec = conn;
	char		json[600];

	(void) lock;
	snprintf(json, sizeof(json), "{\"key\":\"%s\"}", ec->key);
	return etcd_http_post(&ec->http, "/v3/lock/unlock", json);
}

static void
etcd_lock_close(void *conn)
{
	EtcdConn   *ec = conn;

	lease_revoke(ec, ec->lease);
	etcd_close(ec);
}

const LockTarget etcd_txn_target = {
	"etcd-txn", true, false,
	etcd_txn_open, etcd_txn_acquire, etcd_txn_release, etcd_txn_close, NULL
};

const LockTarget etcd_lock_target = {
	"etcd-lock", false, true,
	etcd_lock_open, etcd_lock_acquire, etcd_lock_release, etcd_lock_close, NULL
};
