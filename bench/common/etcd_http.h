/*-------------------------------------------------------------------------
 *
 * etcd_http.h
 *	  One client connection to etcd's v3 JSON gateway (HTTP/1.1 keep-alive
 *	  with libcurl), shared by the lock and key-value benchmarks' etcd
 *	  targets.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ETCD_HTTP_H
#define ETCD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

typedef struct EtcdBuffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
} EtcdBuffer;

typedef struct EtcdHttp
{
	CURL	   *curl;
	struct curl_slist *headers;
	int			client;			/* for error lines */
	char		base[64];		/* http://host:port */
	EtcdBuffer	body;			/* of the last response */
} EtcdHttp;

extern void etcd_http_open(EtcdHttp *h, int port, int client);
extern bool etcd_http_post(EtcdHttp *h, const char *path, const char *json);
extern void etcd_http_close(EtcdHttp *h);
extern void etcd_base64(const char *in, char *out, size_t outlen);
extern bool etcd_json_string(const char *json, const char *field,
							 char *out, size_t outlen);

#endif							/* ETCD_HTTP_H */
