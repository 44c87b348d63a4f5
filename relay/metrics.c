/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  The relay's counters, and a tiny HTTP responder that serves them in
 *	  Prometheus text format on --metrics-addr.
 *
 * The responder is part of the main poll loop (loop.c): one listening
 * socket and at most METRICS_CLIENTS connections, all non-blocking.  A
 * connection goes through:
 *	 1. reading: waits (POLLIN) for its request; the first bytes that come
 *		are taken as the whole request, and the page is rendered at once
 *		into the connection's own output buffer, however long it is;
 *	 2. writing: as much of the answer as the socket takes now, then the
 *		rest whenever poll() says it is writable (POLLOUT), so a large page
 *		(consumer lag of many partitions) arrives whole and a slow client
 *		never blocks the loop;
 *	 3. closing: once all is written, the write side is shut down and what
 *		else the client sent is read (bounded) before close.
 * A connection still open METRICS_CLIENT_TIMEOUT_S after it was accepted
 * is closed, so a client that never sends or never reads cannot keep a
 * slot.  Its send buffer is capped (METRICS_SNDBUF): a client that reads
 * slowly holds little kernel memory, and a large page takes the POLLOUT
 * path on loopback as it does across a network (where the buffer starts
 * small), so the tests exercise it.
 *
 * A waiting connection is always accepted: a listening socket left
 * readable would make poll() return at once, again and again.  When every
 * slot is taken, the connection that has waited longest for its request
 * gives its slot up (a scraper sends its request at once, so idle ones go
 * first); when none is waiting, all are being answered, and the new one
 * gets a 503 and is closed.  An accept that fails (out of descriptors)
 * leaves the socket readable too: accepting then pauses for a second.
 *
 * There is no thread: the counters and the connections are only touched
 * by the main thread, so they need no lock.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE				/* accept4 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "signals.h"

#define METRICS_CLIENTS				8
#define METRICS_CLIENT_TIMEOUT_S	10.0
#define METRICS_ACCEPTS_PER_TURN	16	/* a flood of connections is taken in turns */
#define METRICS_SNDBUF				32768	/* the kernel doubles it */

/* One connection of a metrics client. */
typedef struct MetricsClient
{
	int			fd;
	StrBuf		out;			/* the answer; empty while reading */
	size_t		sent;			/* bytes of out written */
	double		deadline;		/* closed then, done or not (epoch s) */
	double		accepted;		/* epoch s */
} MetricsClient;

RelayMetrics metrics = {.backlog = -1};

static const double bucket_bounds[METRICS_BUCKETS] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10
};

static MetricsPageFn page_fn = NULL;	/* NULL: the publish page, render() */
static void *page_arg = NULL;
static int	listen_fd = -1;
static double accept_paused_until = 0;	/* after EMFILE and the like (epoch s) */
static MetricsClient clients[METRICS_CLIENTS];
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
 * metrics_pollfds: fill fds with the sockets to watch, the listening one
 * first, then each connection's (for its request, or for room to write
 * the rest of its answer); returns how many.
 */
int
metrics_pollfds(struct pollfd *fds, int max)
{
	int			n = 0;

	if (listen_fd < 0 || max < 1 + nclients)
		return 0;
	fds[n++] = (struct pollfd) {
		.fd = listen_fd, .events = now_s() < accept_paused_until ? 0 : POLLIN
	};
	for (int i = 0; i < nclients; i++)
		fds[n++] = (struct pollfd) {
			.fd = clients[i].fd,
			.events = clients[i].out.len > 0 ? POLLOUT : POLLIN
		};
	return n;
}

/*
 * render: the publish command's page.
 */
static void
render(StrBuf *page)
{
	uint64_t	cum = 0;

#define OUT(...) strbuf_printf(page, __VA_ARGS__)
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
}

/*
 * metrics_set_page: serve the page fn renders (called with arg) instead of
 * the publish command's (the consume command has counters of its own).
 */
void
metrics_set_page(MetricsPageFn fn, void *arg)
{
	page_fn = fn;
	page_arg = arg;
}

/*
 * drop_client: close connection c and free its answer.
 */
static void
drop_client(MetricsClient *c)
{
	close(c->fd);
	strbuf_free(&c->out);
	c->fd = -1;
}

/*
 * finish_client: step 3 of the banner, after the whole answer was written.
 */
static void
finish_client(MetricsClient *c)
{
	char		buf[2048];

	/*
	 * Read whatever else the client sent (the rest of a request that came
	 * in two pieces): closing a socket with unread data resets the
	 * connection, and the client may lose the answer.
	 */
	shutdown(c->fd, SHUT_WR);
	for (int i = 0; i < 32 && read(c->fd, buf, sizeof(buf)) > 0; i++)
		;						/* at most 64 kB: a client may not hold us */
	drop_client(c);
}

/*
 * write_answer: step 2 of the banner: write what the socket takes now;
 * finish once all is written, drop the client when it went away.
 */
static void
write_answer(MetricsClient *c)
{
	while (c->sent < c->out.len)
	{
		ssize_t		w = send(c->fd, c->out.data + c->sent, c->out.len - c->sent,
							 MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;				/* the rest when poll() says POLLOUT */
		if (w <= 0)
		{
			log_debug("metrics client went away: %s", strerror(errno));
			drop_client(c);
			return;
		}
		c->sent += w;
	}
	finish_client(c);
}

/*
 * read_request: step 1 of the banner: on the request's first bytes,
 * render the answer and start writing it; a client that closed or failed
 * before asking is dropped.
 */
static void
read_request(MetricsClient *c)
{
	char		req[2048];
	ssize_t		r = read(c->fd, req, sizeof(req));
	StrBuf		body = {0};

	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0)
	{
		drop_client(c);
		return;
	}
	if (page_fn != NULL)
		page_fn(&body, page_arg);
	else
		render(&body);
	strbuf_printf(&c->out,
				  "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
				  "Content-Length: %zu\r\nConnection: close\r\n\r\n", body.len);
	strbuf_put(&c->out, body.data ? body.data : "", body.len);
	strbuf_free(&body);
	write_answer(c);
}

/*
 * make_room: a free slot, taken from the connection that has waited longest
 * for its request when all are in use (see the banner); -1 when every
 * connection is being answered.
 */
static int
make_room(void)
{
	int			oldest = -1;

	if (nclients < METRICS_CLIENTS)
		return nclients++;
	for (int i = 0; i < nclients; i++)
		if (clients[i].out.len == 0 &&
			(oldest < 0 || clients[i].accepted < clients[oldest].accepted))
			oldest = i;
	if (oldest >= 0)
	{
		log_debug("metrics: every connection slot is taken; closing one that sent no request");
		drop_client(&clients[oldest]);
	}
	return oldest;
}

/*
 * accept_clients: accept the connections waiting on the listening socket
 * (up to METRICS_ACCEPTS_PER_TURN); each takes a slot, or gets a 503.
 */
static void
accept_clients(double now)
{
	static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
		"Connection: close\r\n\r\n";

	for (int i = 0; i < METRICS_ACCEPTS_PER_TURN; i++)
	{
		int			fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int			sndbuf = METRICS_SNDBUF;
		int			slot;

		if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			/* out of descriptors, say: waiting stays readable, so pause */
			log_warning("metrics: could not accept a connection: %s; pausing 1 s",
						strerror(errno));
			accept_paused_until = now + 1.0;
		}
		if (fd < 0)
			return;
		if ((slot = make_room()) < 0)
		{
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				log_debug("metrics client went away before its 503: %s", strerror(errno));
			close(fd);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		clients[slot] = (MetricsClient) {
			.fd = fd, .deadline = now + METRICS_CLIENT_TIMEOUT_S, .accepted = now
		};
	}
}

/*
 * metrics_serve: handle the sockets poll() found ready, and close the
 * connections past their deadline; fds are those metrics_pollfds
 * returned, n of them.
 */
void
metrics_serve(struct pollfd *fds, int n)
{
	double		now = now_s();
	int			kept = 0;

	for (int i = 1; i < n; i++)
	{
		MetricsClient *c = &clients[i - 1];

		if (fds[i].revents && c->out.len == 0)
			read_request(c);
		else if (fds[i].revents)
			write_answer(c);
		if (c->fd >= 0 && now > c->deadline)
		{
			log_debug("metrics client closed after %.0f s without %s", METRICS_CLIENT_TIMEOUT_S,
					  c->out.len == 0 ? "a request" : "reading its answer");
			drop_client(c);
		}
		if (c->fd >= 0)
			clients[kept++] = *c;
	}
	nclients = kept;
	if (n > 0 && (fds[0].revents & POLLIN))
		accept_clients(now);
}

/*
 * metrics_close: close every socket.
 */
void
metrics_close(void)
{
	for (int i = 0; i < nclients; i++)
		drop_client(&clients[i]);
	nclients = 0;
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
}
