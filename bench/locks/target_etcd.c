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
 * Each request goes through the gateway, which turns it into a gRPC call to
 * the same server, so these figures include that translation; the Debian
 * package has no C gRPC client for etcd.  Each connection (one curl easy
 * handle) belongs to one client thread.
 *
 *-------------------------------------------------------------------------
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lockbench.h"

/* Session leases of etcd-lock are renewed (regranted) past this age. */
#define SESSION_TTL_SECONDS 60
#define SESSION_RENEW_NS (20ull * 1000000000u)

typedef struct Buffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buffer;

typedef struct EtcdConn
{
	CURL	   *curl;
	struct curl_slist *headers;
	int			client;
	char		base[64];		/* http://host:port */
	Buffer		body;			/* of the last response */
	char		lease[32];		/* held (txn) or session (lock) lease */
	char		pending[32];	/* txn: granted but not yet used */
	uint64_t	lease_at;		/* lock: when the session lease was granted */
	char		key[512];		/* lock: base64 key of the held lock */
} EtcdConn;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	Buffer	   *b = arg;
	size_t		n = size * nmemb;

	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
			return 0;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* base64: standard alphabet with padding, as the gateway expects for bytes */
static void
base64(const char *in, char *out, size_t outlen)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		n = strlen(in);
	size_t		o = 0;

	for (size_t i = 0; i < n && o + 5 < outlen; i += 3)
	{
		unsigned	v = (unsigned char) in[i] << 16;

		if (i + 1 < n)
			v |= (unsigned char) in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char) in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
}

/*
 * json_string: copy the string value of the first "field":"..." in the
 * response into out; false if absent.  The gateway's answers are flat
 * enough (and their first match the wanted one) for this to suffice.
 */
static bool
json_string(const char *json, const char *field, char *out, size_t outlen)
{
	char		pat[64];
	const char *p;
	size_t		n = 0;

	snprintf(pat, sizeof(pat), "\"%s\":\"", field);
	p = strstr(json, pat);
	if (p == NULL)
		return false;
	p += strlen(pat);
	while (p[n] != '"' && p[n] != '\0' && n + 1 < outlen)
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/*
 * etcd_post: POST a JSON body to path; true on HTTP 200, with the answer
 * in ec->body.  Errors are reported here.
 */
static bool
etcd_post(EtcdConn *ec, const char *path, const char *json)
{
	char		url[128];
	long		code = 0;
	CURLcode	rc;

	snprintf(url, sizeof(url), "%s%s", ec->base, path);
	ec->body.len = 0;
	if (ec->body.data)
		ec->body.data[0] = '\0';
	curl_easy_setopt(ec->curl, CURLOPT_URL, url);
	curl_easy_setopt(ec->curl, CURLOPT_POSTFIELDS, json);
	rc = curl_easy_perform(ec->curl);
	if (rc != CURLE_OK)
	{
		bench_error(ec->client, "POST %s: %s", path, curl_easy_strerror(rc));
		return false;
	}
	curl_easy_getinfo(ec->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 || ec->body.data == NULL)
	{
		bench_error(ec->client, "POST %s: HTTP %ld %s", path, code,
					ec->body.data ? ec->body.data : "");
		return false;
	}
	return true;
}

static bool
lease_grant(EtcdConn *ec, int ttl, char *out, size_t outlen)
{
	char		json[64];

	snprintf(json, sizeof(json), "{\"TTL\":%d}", ttl);
	if (!etcd_post(ec, "/v3/lease/grant", json))
		return false;
	if (!json_string(ec->body.data, "ID", out, outlen))
	{
		bench_error(ec->client, "lease grant: no ID in %s", ec->body.data);
		return false;
	}
	return true;
}

static bool
lease_revoke(EtcdConn *ec, const char *lease)
{
	char		json[96];

	snprintf(json, sizeof(json), "{\"ID\":\"%s\"}", lease);
	return etcd_post(ec, "/v3/lease/revoke", json);
}

static void
etcd_close(void *conn)
{
	EtcdConn   *ec = conn;

	curl_slist_free_all(ec->headers);
	curl_easy_cleanup(ec->curl);
	free(ec->body.data);
	free(ec);
}

static EtcdConn *
etcd_connect(const BenchConfig *cfg, int client)
{
	EtcdConn   *ec = calloc(1, sizeof(EtcdConn));

	pthread_once(&curl_once, curl_init_once);
	ec->client = client;
	snprintf(ec->base, sizeof(ec->base), "http://%s:%d", BENCH_HOST, cfg->port);
	ec->curl = curl_easy_init();
	ec->headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(ec->curl, CURLOPT_HTTPHEADER, ec->headers);
	curl_easy_setopt(ec->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(ec->curl, CURLOPT_WRITEDATA, &ec->body);
	curl_easy_setopt(ec->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ec->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(ec->curl, CURLOPT_TIMEOUT, 120L);
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
	base64(lock, key, sizeof(key));
	base64(ec->pending, value, sizeof(value));
	snprintf(json, sizeof(json),
			 "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"create_revision\":\"0\"}],"
			 "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%s\"}}]}",
			 key, key, value, ec->pending);
	if (!etcd_post(ec, "/v3/kv/txn", json))
		return LOCK_FAILED;
	if (strstr(ec->body.data, "\"succeeded\":true") == NULL)
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
	base64(lock, name, sizeof(name));
	snprintf(json, sizeof(json), "{\"name\":\"%s\",\"lease\":\"%s\"}", name, ec->lease);
	if (!etcd_post(ec, "/v3/lock/lock", json))
		return LOCK_FAILED;
	if (!json_string(ec->body.data, "key", ec->key, sizeof(ec->key)))
	{
		bench_error(ec->client, "lock: no key in %s", ec->body.data);
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
	return etcd_post(ec, "/v3/lock/unlock", json);
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
