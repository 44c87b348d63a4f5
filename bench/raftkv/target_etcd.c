/*-------------------------------------------------------------------------
 *
 * target_etcd.c
 *	  etcd target of the key-value benchmark, through etcd's v3 JSON
 *	  gateway (bench/common/etcd_http.c): put is POST /v3/kv/put, get is
 *	  POST /v3/kv/range with serializable false, etcd's linearizable read
 *	  (ReadIndex, as distsys' 'linearizable').  A member that is not the
 *	  leader forwards both to the leader.  The election experiment gives
 *	  each request a timeout (set_timeout), as it does distsys' sessions.
 *
 * Each connection belongs to one client thread; nothing here is shared.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>

#include "../common/etcd_http.h"
#include "kvbench.h"

static void *
etcd_open(int port, int client)
{
	EtcdHttp   *h = calloc(1, sizeof(EtcdHttp));

	etcd_http_open(h, port, client);
	return h;
}

/* etcd_put: the value is stored as the same JSON text distsys stores */
static bool
etcd_put(void *conn, const char *key, const char *json)
{
	char		k[512];
	char		v[512];
	char		body[1200];

	etcd_base64(key, k, sizeof(k));
	etcd_base64(json, v, sizeof(v));
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
	return etcd_http_post(conn, "/v3/kv/put", body);
}

static bool
etcd_get(void *conn, const char *key)
{
	char		k[512];
	char		body[700];

	etcd_base64(key, k, sizeof(k));
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"serializable\":false}", k);
	return etcd_http_post(conn, "/v3/kv/range", body);
}

/*
 * etcd_set_timeout: how long a request may take before the client gives up
 * (a put to a member whose leader died waits for etcd's own request
 * timeout, seconds, otherwise)
 */
static bool
etcd_set_timeout(void *conn, int ms)
{
	EtcdHttp   *h = conn;

	return curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, (long) ms) == CURLE_OK;
}

static void
etcd_close(void *conn)
{
	etcd_http_close(conn);
	free(conn);
}

const KvTarget etcd_kv_target = {
	"etcd", etcd_open, etcd_put, etcd_get, etcd_close, etcd_set_timeout, NULL, NULL
};
