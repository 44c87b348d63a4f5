/*-------------------------------------------------------------------------
 *
 * netem_link.c
 *	  distsys-netem's links: listen, accept, connect to the target, and
 *	  move each flow's bytes once their delay has passed.
 *
 * Every read from one side becomes a chunk due at now + the link's delay
 * (+ jitter), but never before the chunk ahead of it: a TCP stream keeps
 * its order, so jitter delays what follows rather than overtaking it.  A
 * chunk whose delay is zero and finds its flow empty is written at once,
 * from the read buffer, so that an undelayed link costs one read and one
 * write and no allocation.
 *
 * A flow stops reading once it holds max_queue bytes: the sender's own
 * socket buffers then fill, which is the back-pressure a slow path gives.
 * A partitioned direction keeps reading up to that limit and writes
 * nothing; a connection accepted while its link is partitioned (either
 * way: TCP's handshake needs both) is connected to the target only once
 * the link is healed.  An error or reset on either side closes both, with
 * a reset (SO_LINGER 0) so that the other end sees what a real network
 * would have shown it.  An end of file is passed on (shutdown) once
 * everything before it has been delivered.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "netem.h"

#define NETEM_READ_BYTES	65536

/*
 * Closed connections wait here until the end of the epoll batch: a later
 * event of the same batch may still point at them.
 */
static Conn *dead_conns = NULL;

/*
 * netem_now_ns: CLOCK_MONOTONIC in nanoseconds; the chunks' clock.
 */
uint64_t
netem_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* next_random: splitmix64, the link's own seeded sequence */
static uint64_t
next_random(uint64_t *state)
{
	uint64_t	z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* unit_random: uniform in (0, 1) */
static double
unit_random(uint64_t *state)
{
	return ((next_random(state) >> 11) + 0.5) / 9007199254740992.0;
}

/*
 * sample_delay_ns: one draw of the link's one-way delay, never negative.
 */
static uint64_t
sample_delay_ns(Link *l)
{
	double		ms = l->delay_ms;

	if (l->jitter_ms > 0)
	{
		double		u = unit_random(&l->rng);

		if (l->jitter_kind == JITTER_UNIFORM)
			ms += (2 * u - 1) * l->jitter_ms;
		else					/* Box-Muller */
			ms += l->jitter_ms * sqrt(-2 * log(u)) *
				cos(2 * M_PI * unit_random(&l->rng));
	}
	return ms > 0 ? (uint64_t) (ms * 1e6) : 0;
}

/*
 * netem_watch: make epoll watch events on f (registered at creation).
 */
void
netem_watch(Netem *n, NetemFd *f, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = f};

	if (f->fd < 0 || f->events == events)
		return;
	if (epoll_ctl(n->epfd, EPOLL_CTL_MOD, f->fd, &ev) != 0)
		log_error("epoll_ctl: %s", strerror(errno));
	f->events = events;
}

/* watch_new: register a new descriptor with epoll */
static bool
watch_new(Netem *n, NetemFd *f, NetemFdKind kind, int fd, void *owner,
		  uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = f};

	f->kind = kind;
	f->fd = fd;
	f->owner = owner;
	f->events = events;
	if (epoll_ctl(n->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return true;
	log_error("epoll_ctl: %s", strerror(errno));
	return false;
}

/* set_nodelay: Nagle would add up to a round trip to small writes */
static void
set_nodelay(int fd)
{
	int			one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * resolve_target: "host:port" into l->target.  False with errbuf filled.
 */
static bool
resolve_target(Link *l, const char *target, char *errbuf, size_t errlen)
{
	const char *colon = strrchr(target, ':');
	char		host[NETEM_NAME_MAX];
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	int			rc;

	if (colon == NULL || colon == target || colon[1] == '\0' ||
		(size_t) (colon - target) >= sizeof(host))
	{
		snprintf(errbuf, errlen, "target \"%s\" is not HOST:PORT", target);
		return false;
	}
	memcpy(host, target, colon - target);
	host[colon - target] = '\0';
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc != 0)
	{
		snprintf(errbuf, errlen, "target \"%s\": %s", target, gai_strerror(rc));
		return false;
	}
	memcpy(&l->target, res->ai_addr, res->ai_addrlen);
	l->target_len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(l->target_desc, sizeof(l->target_desc), "%s", target);
	return true;
}

/*
 * open_listener: bind host:port (0: the kernel picks) and listen; returns
 * the descriptor and sets *port, or -1 with errbuf filled.
 */
static int
open_listener(const char *host, int port, int *bound, char *errbuf, size_t errlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	socklen_t	len = sizeof(sa);
	int			one = 1;
	int			fd;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
	{
		snprintf(errbuf, errlen, "listen host \"%s\" is not an IPv4 address", host);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 ||
		listen(fd, 512) != 0 ||
		getsockname(fd, (struct sockaddr *) &sa, &len) != 0)
	{
		snprintf(errbuf, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*bound = ntohs(sa.sin_port);
	return fd;
}

/*
 * netem_add_link: a new link from listen_port to target, with the default
 * delay.  Returns it, or NULL with errbuf filled.
 */
Link *
netem_add_link(Netem *n, const char *name, int listen_port, const char *target,
			   char *errbuf, size_t errlen)
{
	Link	   *l;
	int			fd;

	if (name[0] == '\0' || strlen(name) >= NETEM_NAME_MAX || strcmp(name, "all") == 0 ||
		strpbrk(name, " \t=:") != NULL)
	{
		snprintf(errbuf, errlen, "link name \"%s\" must be 1 to %d characters without spaces, '=' or ':', and not \"all\"",
				 name, NETEM_NAME_MAX - 1);
		return NULL;
	}
	if (netem_find_link(n, name) != NULL)
	{
		snprintf(errbuf, errlen, "link \"%s\" exists already", name);
		return NULL;
	}
	if (n->nlinks == NETEM_MAX_LINKS)
	{
		snprintf(errbuf, errlen, "at most %d links", NETEM_MAX_LINKS);
		return NULL;
	}
	l = calloc(1, sizeof(Link));
	if (l == NULL)
		abort();
	snprintf(l->name, sizeof(l->name), "%s", name);
	if (!resolve_target(l, target, errbuf, errlen) ||
		(fd = open_listener(n->listen_host, listen_port, &l->listen_port, errbuf, errlen)) < 0)
	{
		free(l);
		return NULL;
	}
	l->delay_ms = n->delay_ms;
	l->jitter_ms = n->jitter_ms;
	l->jitter_kind = n->jitter_kind;
	l->rng = n->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t) (n->nlinks + 1));
	watch_new(n, &l->listener, FD_LISTEN, fd, l, EPOLLIN);
	n->links[n->nlinks++] = l;
	log_info("link %s: %s:%d -> %s", l->name, n->listen_host, l->listen_port, target);
	return l;
}

/*
 * netem_find_link: the link called name, or NULL.
 */
Link *
netem_find_link(Netem *n, const char *name)
{
	for (int i = 0; i < n->nlinks; i++)
		if (strcmp(n->links[i]->name, name) == 0)
			return n->links[i];
	return NULL;
}

/* ---- connections ---- */

/* flow_free: drop what a flow still holds */
static void
flow_free(Flow *fl)
{
	while (fl->head != NULL)
	{
		Chunk	   *next = fl->head->next;

		free(fl->head);
		fl->head = next;
	}
	fl->tail = NULL;
	fl->queued = 0;
}

/* close_reset: close fd so that its peer sees a reset, not an end of file */
static void
close_reset(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/*
 * conn_close: forget c; reset says whether its sockets end with a reset
 * (an error, a reset command) or an orderly close (both sides done).
 */
static void
conn_close(Conn *c, bool reset)
{
	Link	   *l = c->link;
	Conn	  **pp;

	for (pp = &l->conns; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	if (reset)
	{
		close_reset(c->client.fd);
		close_reset(c->target.fd);
	}
	else
	{
		close(c->client.fd);
		if (c->target.fd >= 0)
			close(c->target.fd);
	}
	flow_free(&c->up);
	flow_free(&c->down);
	l->open--;
	c->dead = true;
	c->next = dead_conns;
	dead_conns = c;
}

/*
 * netem_free_dead: free the connections closed since the last call; the
 * loop calls it between epoll batches.
 */
void
netem_free_dead(void)
{
	while (dead_conns != NULL)
	{
		Conn	   *next = dead_conns->next;

		free(dead_conns);
		dead_conns = next;
	}
}

/*
 * conn_connect: start connecting c to its link's target.  False if the
 * connect failed at once (c is then to be closed).
 */
static bool
conn_connect(Netem *n, Conn *c)
{
	Link	   *l = c->link;
	int			fd = socket(l->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
	{
		log_warning("link %s: socket: %s", l->name, strerror(errno));
		return false;
	}
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *) &l->target, l->target_len) == 0)
		c->connected = true;
	else if (errno != EINPROGRESS)
	{
		log_warning("link %s: connect to %s: %s", l->name, l->target_desc, strerror(errno));
		close(fd);
		return false;
	}
	return watch_new(n, &c->target, FD_TARGET, fd, c, EPOLLOUT);
}

/*
 * netem_accept: take every pending connection of l.
 */
void
netem_accept(Netem *n, Link *l)
{
	for (;;)
	{
		int			fd = accept4(l->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		Conn	   *c;

		if (fd < 0)
		{
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warning("link %s: accept: %s", l->name, strerror(errno));
			return;
		}
		set_nodelay(fd);
		c = calloc(1, sizeof(Conn));
		if (c == NULL)
			abort();
		c->link = l;
		c->target.fd = -1;
		watch_new(n, &c->client, FD_CLIENT, fd, c, EPOLLIN);
		c->next = l->conns;
		l->conns = c;
		l->accepted++;
		l->open++;
		if (l->held == 0 && !conn_connect(n, c))
			conn_close(c, true);
	}
}

/*
 * flow_write: write f's due chunks to fd (now: the clock).  False on a
 * write error (the connection is to be reset).
 */
static bool
flow_write(Link *l, Flow *f, int dir, int fd, uint64_t now)
{
	while (f->head != NULL && f->head->due_ns <= now)
	{
		Chunk	   *ch = f->head;
		ssize_t		w = write(fd, ch->data + ch->off, ch->len - ch->off);

		if (w < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
			{
				f->blocked = true;
				return true;
			}
			if (errno == EINTR)
				continue;
			return false;
		}
		ch->off += w;
		f->queued -= w;
		l->bytes[dir - 1] += w;
		if (ch->off < ch->len)
		{
			f->blocked = true;
			return true;
		}
		f->head = ch->next;
		if (f->head == NULL)
			f->tail = NULL;
		free(ch);
	}
	f->blocked = false;
	if (f->eof && f->head == NULL && !f->shut)
	{
		shutdown(fd, SHUT_WR);
		f->shut = true;
	}
	return true;
}

/* flow_append: queue n bytes of buf, due at due */
static void
flow_append(Flow *f, const char *buf, size_t n, uint64_t due)
{
	Chunk	   *ch = malloc(sizeof(Chunk) + n);

	if (ch == NULL)
		abort();
	ch->next = NULL;
	ch->due_ns = due;
	ch->len = n;
	ch->off = 0;
	memcpy(ch->data, buf, n);
	if (f->tail != NULL)
		f->tail->next = ch;
	else
		f->head = ch;
	f->tail = ch;
	f->queued += n;
	f->last_due_ns = due;
}

/*
 * flow_forward_now: a zero-delay read that found its flow empty goes out
 * straight from the read buffer; returns the bytes written (what is left
 * is queued by the caller), or -1 on a write error.
 */
static ssize_t
flow_forward_now(Link *l, int dir, int to_fd, const char *buf, size_t n)
{
	ssize_t		w = write(to_fd, buf, n);

	if (w < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
	l->bytes[dir - 1] += w;
	return w;
}

/*
 * flow_read: read what from_fd has into f (dir says which flow it is;
 * to_fd is where it goes, -1 if not connected yet).  False on a read or
 * write error.
 */
static bool
flow_read(Netem *n, Link *l, Flow *f, int dir, int from_fd, int to_fd)
{
	char		buf[NETEM_READ_BYTES];

	while (!f->eof && f->queued < n->max_queue)
	{
		ssize_t		r = read(from_fd, buf, sizeof(buf));
		uint64_t	now,
					due;
		ssize_t		sent = 0;

		if (r == 0)
			f->eof = true;
		if (r <= 0)
			return r == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		now = netem_now_ns();
		due = now + sample_delay_ns(l);
		if (due < f->last_due_ns)
			due = f->last_due_ns;
		if (due <= now && f->head == NULL && to_fd >= 0 && (l->held & dir) == 0)
			sent = flow_forward_now(l, dir, to_fd, buf, r);
		if (sent < 0)
			return false;
		if (sent < r)
		{
			flow_append(f, buf + sent, r - sent, due);
			if (sent > 0 || due <= now)
				f->blocked = true;
		}
	}
	return true;
}

/*
 * conn_watch: what epoll should watch on c's two sockets, from the state
 * of its flows.
 */
static void
conn_watch(Netem *n, Conn *c)
{
	int			held = c->link->held;
	uint32_t	ce = 0,
				te = 0;

	/* a held direction writes nothing: watching its writability would spin */
	if (!c->up.eof && c->up.queued < n->max_queue)
		ce |= EPOLLIN;
	if (c->down.blocked && !(held & NETEM_DOWN))
		ce |= EPOLLOUT;
	if (!c->connected)
		te = EPOLLOUT;
	else
	{
		if (!c->down.eof && c->down.queued < n->max_queue)
			te |= EPOLLIN;
		if (c->up.blocked && !(held & NETEM_UP))
			te |= EPOLLOUT;
	}
	netem_watch(n, &c->client, ce);
	netem_watch(n, &c->target, te);
}

/*
 * conn_pump: write c's due bytes and decide what to watch.  Returns false
 * if c was closed.
 */
static bool
conn_pump(Netem *n, Conn *c, uint64_t now)
{
	Link	   *l = c->link;

	if (c->connected)
	{
		if (((l->held & NETEM_UP) == 0 && !flow_write(l, &c->up, NETEM_UP, c->target.fd, now)) ||
			((l->held & NETEM_DOWN) == 0 && !flow_write(l, &c->down, NETEM_DOWN, c->client.fd, now)))
		{
			conn_close(c, true);
			return false;
		}
		if (c->up.shut && c->down.shut)
		{
			conn_close(c, false);
			return false;
		}
	}
	conn_watch(n, c);
	return true;
}

/*
 * target_connected: the non-blocking connect of c finished; false if it
 * failed.
 */
static bool
target_connected(Conn *c)
{
	int			err = 0;
	socklen_t	len = sizeof(err);

	if (getsockopt(c->target.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0)
	{
		log_warning("link %s: connect to %s: %s", c->link->name,
					c->link->target_desc, strerror(err));
		return false;
	}
	c->connected = true;
	return true;
}

/*
 * netem_conn_event: epoll reported events on one of a connection's
 * sockets.
 */
void
netem_conn_event(Netem *n, NetemFd *f, uint32_t events)
{
	Conn	   *c = f->owner;
	Link	   *l = c->link;
	bool		ok = true;

	if (c->dead)
		return;
	if (events & EPOLLERR)
	{
		/* a reset or a failed connect: the other side sees a reset too */
		if (f->kind == FD_TARGET && !c->connected)
			target_connected(c);	/* logs why */
		conn_close(c, true);
		return;
	}

	if (f->kind == FD_TARGET && !c->connected)
	{
		if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
			return;
		ok = target_connected(c);
	}
	if (ok && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
	{
		if (f->kind == FD_CLIENT)
			ok = flow_read(n, l, &c->up, NETEM_UP, c->client.fd,
						   c->connected ? c->target.fd : -1);
		else
			ok = flow_read(n, l, &c->down, NETEM_DOWN, c->target.fd, c->client.fd);
	}
	if (!ok)
	{
		conn_close(c, true);
		return;
	}
	conn_pump(n, c, netem_now_ns());
}

/*
 * netem_pump_all: write every due chunk; returns the time the next
 * waiting chunk falls due (UINT64_MAX: none waits).
 */
uint64_t
netem_pump_all(Netem *n, uint64_t now)
{
	uint64_t	next = UINT64_MAX;

	for (int i = 0; i < n->nlinks; i++)
	{
		Link	   *l = n->links[i];
		Conn	   *c = l->conns;

		while (c != NULL)
		{
			Conn	   *after = c->next;

			if (conn_pump(n, c, now))
			{
				if (c->connected && !(l->held & NETEM_UP) && c->up.head &&
					!c->up.blocked && c->up.head->due_ns < next)
					next = c->up.head->due_ns;
				if (c->connected && !(l->held & NETEM_DOWN) && c->down.head &&
					!c->down.blocked && c->down.head->due_ns < next)
					next = c->down.head->due_ns;
			}
			c = after;
		}
	}
	return next;
}

/*
 * netem_heal: end l's partition; what waited is connected, what was held
 * leaves at the next pump.
 */
void
netem_heal(Netem *n, Link *l)
{
	Conn	   *c = l->conns;

	l->held = 0;
	while (c != NULL)
	{
		Conn	   *after = c->next;

		if (c->target.fd < 0 && !conn_connect(n, c))
			conn_close(c, true);
		c = after;
	}
}

/*
 * netem_reset: reset every connection of l.
 */
void
netem_reset(Netem *n, Link *l)
{
	while (l->conns != NULL)
		conn_close(l->conns, true);
}

/*
 * netem_close_links: reset every connection, close every listener, free
 * it all; at exit.
 */
void
netem_close_links(Netem *n)
{
	for (int i = 0; i < n->nlinks; i++)
	{
		netem_reset(n, n->links[i]);
		close(n->links[i]->listener.fd);
		free(n->links[i]);
	}
	n->nlinks = 0;
	netem_free_dead();
}
