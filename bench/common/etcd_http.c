/*-------------------------------------------------------------------------
 *
 * etcd_http.c
 *	  Requests to etcd's v3 JSON gateway on loopback with libcurl.
 *
 * Each request goes through the gateway, which turns it into a gRPC call to
 * the same server, so the figures include that translation; the Debian
 * package has no C gRPC client for etcd.  An EtcdHttp (one curl easy
 * handle, reused so the connection stays open) belongs to one client
 * thread; the only shared state is libcurl's global initialization, done
 * once under pthread_once.
 *
 *-------------------------------------------------------------------------
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "etcd_http.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	EtcdBuffer *b = arg;
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

/* etcd_http_open: a handle for client to the gateway on BENCH_HOST:port */
void
etcd_http_open(EtcdHttp *h, int port, int client)
{
	pthread_once(&curl_once, curl_init_once);
	memset(h, 0, sizeof(*h));
	h->client = client;
	snprintf(h->base, sizeof(h->base), "http://%s:%d", BENCH_HOST, port);
	h->curl = curl_easy_init();
	h->headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &h->body);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 120L);
}

/*
 * etcd_http_post: POST a JSON body to path; true on HTTP 200, with the
 * answer in h->body.  Errors are reported here.
 */
bool
etcd_http_post(EtcdHttp *h, const char *path, const char *json)
{
	char		url[128];
	long		code = 0;
	CURLcode	rc;

	snprintf(url, sizeof(url), "%s%s", h->base, path);
	h->body.len = 0;
	if (h->body.data)
		h->body.data[0] = '\0';
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, json);
	rc = curl_easy_perform(h->curl);
	if (rc != CURLE_OK)
	{
		bench_error(h->client, "POST %s: %s", path, curl_easy_strerror(rc));
		return false;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 || h->body.data == NULL)
	{
		bench_error(h->client, "POST %s: HTTP %ld %s", path, code,
					h->body.data ? h->body.data : "");
		return false;
	}
	return true;
}

void
etcd_http_close(EtcdHttp *h)
{
	curl_slist_free_all(h->headers);
	curl_easy_cleanup(h->curl);
	free(h->body.data);
}

/* etcd_base64: standard alphabet with padding, as the gateway expects for bytes */
void
etcd_base64(const char *in, char *out, size_t outlen)
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
 * etcd_json_string: copy the string value of the first "field":"..." in
 * the response into out; false if absent.  The gateway's answers are flat
 * enough (and their first match the wanted one) for this to suffice.
 */
bool
etcd_json_string(const char *json, const char *field, char *out, size_t outlen)
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
