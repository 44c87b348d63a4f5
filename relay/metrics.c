/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  The relay's counters, and a tiny HTTP responder that serves them in
 *	  Prometheus text format on --metrics-addr.
 *
 * The responder is part of the main poll loop: one listening socket and at
 * most METRICS_CLIENTS connections, each answered with the whole page as
 * soon as its request line arrived, then closed.  There is no thread: the
 * counters are only touched by the main thread, so they need no lock.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define METRICS_CLIENTS 8

RelayMetrics metrics = {.backlog = -1};

static const double bucket_bounds[METRICS_BUCKETS] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10
};

static MetricsPageFn page_fn = NULL;	/* NULL: the publish page, render() */
static int	listen_fd = -1;
static int	client_fd[METRICS_CLIENTS];
static int	nclients = 0;

/*
 * metrics_observe_latency: count one commit-to-ack latency.
 */
void
metrics_observe_latency(double seconds)
{
	int			i = 0;

	if (seconds < 0)
		seconds = 0;
	while (i < METRICS_BUCKETS && seconds > bucket_bounds[i])
		i++;
	metrics.latency_buckets[i]++;
	metrics.latency_sum += seconds;
	metrics.latency_count++;
}

/*
 * metrics_listen: open the listening socket on HOST:PORT.  Returns false
 * (after one log line) when the address cannot be used.
 */
bool
metrics_listen(const char *addr)
{
	char		host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	.ai_flags = AI_PASSIVE}, *ai;
	int			one = 1,
				rc;

	if (colon == NULL || colon - addr >= (long) sizeof(host))
	{
		log_error("invalid --metrics-addr \"%s\": expected HOST:PORT", addr);
		return false;
	}
	memcpy(host, addr, colon - addr);
	host[colon - addr] = '\0';
	if ((rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai)) != 0)
	{
		log_error("invalid --metrics-addr \"%s\": %s", addr, gai_strerror(rc));
		return false;
	}
	listen_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (listen_fd < 0 || bind(listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
		listen(listen_fd, 16) != 0)
	{
		log_error("could not listen on --metrics-addr %s: %s", addr, strerror(errno));
		freeaddrinfo(ai);
		return false;
	}
	freeaddrinfo(ai);
	log_info("serving metrics on http://%s/metrics", addr);
	return true;
}

/*
 * metrics_pollfds: fill fds with the sockets to watch; returns how many.
 */
int
metrics_pollfds(struct pollfd *fds, int max)
{
	int			n = 0;

	if (listen_fd < 0 || max < 1 + nclients)
		return 0;
	fds[n++] = (struct pollfd) {.fd = listen_fd, .events = POLLIN};
	for (int i = 0; i < nclients; i++)
		fds[n++] = (struct pollfd) {.fd = client_fd[i], .events = POLLIN};
	return n;
}

/*
 * render: the whole page into buf; returns its length.
 */
static int
render(char *buf, size_t size)
{
	int			n = 0;
	uint64_t	cum = 0;

#define OUT(...) (n += snprintf(buf + n, size - n, __VA_ARGS__))
	OUT("# HELP distsys_relay_messages_relayed_total Messages the broker acknowledged.\n"
		"# TYPE distsys_relay_messages_relayed_total counter\n"
		"distsys_relay_messages_relayed_total %llu\n",
		(unsigned long long) metrics.relayed);
	OUT("# HELP distsys_relay_messages_failed_total Delivery reports with an error.\n"
		"# TYPE distsys_relay_messages_failed_total counter\n"
		"distsys_relay_messages_failed_total %llu\n",
		(unsigned long long) metrics.failed);
	OUT("# HELP distsys_relay_messages_dead_lettered_total Messages moved to outbox_dead.\n"
		"# TYPE distsys_relay_messages_dead_lettered_total counter\n"
		"distsys_relay_messages_dead_lettered_total %llu\n",
		(unsigned long long) metrics.dead_lettered);
	OUT("# HELP distsys_relay_backlog Outbox rows waiting in the lanes this relay owns.\n"
		"# TYPE distsys_relay_backlog gauge\n"
		"distsys_relay_backlog %lld\n", (long long) metrics.backlog);
	OUT("# HELP distsys_relay_oldest_message_age_seconds Age of the oldest such row.\n"
		"# TYPE distsys_relay_oldest_message_age_seconds gauge\n"
		"distsys_relay_oldest_message_age_seconds %.3f\n", metrics.oldest_age);
	OUT("# HELP distsys_relay_lanes_owned Relay lanes this relay owns.\n"
		"# TYPE distsys_relay_lanes_owned gauge\n"
		"distsys_relay_lanes_owned %d\n", metrics.lanes_owned);
	OUT("# HELP distsys_relay_commit_to_ack_seconds From outbox_send (the row's created_at, before its commit) to its delivery report: an upper bound of commit-to-ack.\n"
		"# TYPE distsys_relay_commit_to_ack_seconds histogram\n");
	for (int i = 0; i < METRICS_BUCKETS; i++)
	{
		cum += metrics.latency_buckets[i];
		OUT("distsys_relay_commit_to_ack_seconds_bucket{le=\"%g\"} %llu\n",
			bucket_bounds[i], (unsigned long long) cum);
	}
	OUT("distsys_relay_commit_to_ack_seconds_bucket{le=\"+Inf\"} %llu\n"
		"distsys_relay_commit_to_ack_seconds_sum %.6f\n"
		"distsys_relay_commit_to_ack_seconds_count %llu\n",
		(unsigned long long) metrics.latency_count, metrics.latency_sum,
		(unsigned long long) metrics.latency_count);
#undef OUT
	return n < (int) size ? n : (int) size - 1;
}

/*
 * metrics_set_page: serve the page fn renders instead of the publish
 * command's (the consume command has counters of its own).
 */
void
metrics_set_page(MetricsPageFn fn)
{
	page_fn = fn;
}

/*
 * answer: read what the client sent and answer with the page; the
 * connection is closed either way.
 */
static void
answer(int fd)
{
	static char body[65536];
	char		req[2048],
				head[256];
	ssize_t		r = read(fd, req, sizeof(req) - 1);
	int			len;

	if (r > 0)
	{
		len = page_fn ? page_fn(body, sizeof(body)) : render(body, sizeof(body));
		snprintf(head, sizeof(head),
				 "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
				 "Content-Length: %d\r\nConnection: close\r\n\r\n", len);
		if (write(fd, head, strlen(head)) < 0 || write(fd, body, len) < 0)
			log_debug("metrics client went away: %s", strerror(errno));
		/*
		 * Read whatever else the client sent (the rest of a request that
		 * came in two pieces): closing a socket with unread data resets
		 * the connection, and the client may lose the answer.
		 */
		shutdown(fd, SHUT_WR);
		for (int i = 0; i < 32 && read(fd, req, sizeof(req)) > 0; i++)
			;					/* at most 64 kB: a client may not hold us */
	}
	close(fd);
}

/*
 * metrics_serve: handle the sockets poll() found ready; fds are those
 * metrics_pollfds returned, n of them.
 */
void
metrics_serve(struct pollfd *fds, int n)
{
	int			kept = 0;

	for (int i = 1; i < n; i++)
	{
		if (fds[i].revents)
			answer(client_fd[i - 1]);
		else
			client_fd[kept++] = client_fd[i - 1];
	}
	nclients = kept;
	if (n > 0 && (fds[0].revents & POLLIN) && nclients < METRICS_CLIENTS)
	{
		int			fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0)
			client_fd[nclients++] = fd;
	}
}

/*
 * metrics_close: close every socket.
 */
void
metrics_close(void)
{
	for (int i = 0; i < nclients; i++)
		close(client_fd[i]);
	nclients = 0;
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
}
