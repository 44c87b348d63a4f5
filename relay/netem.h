/*-------------------------------------------------------------------------
 *
 * netem.h
 *	  Shared declarations of distsys-netem, the network emulator that the
 *	  benchmarks and tests put between nodes: links, the connections
 *	  through them, and the control commands.
 *
 * A link is a TCP listener on loopback that forwards every connection it
 * accepts to one target (host:port).  Each connection is two flows, "up"
 * (the client's bytes to the target) and "down" (the answers), and each
 * flow holds its bytes in chunks stamped with the time they may leave:
 * the time they were read plus the link's one-way delay (and jitter).  A
 * partitioned flow holds its bytes until it is healed, as a TCP sender
 * would keep retransmitting them.
 *
 * One thread does everything (netem_loop.c), so nothing here is locked.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_NETEM_H
#define RELAY_NETEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETEM_PROGNAME		"distsys-netem"
#define NETEM_NAME_MAX		64
#define NETEM_MAX_LINKS		256
#define NETEM_ERRMSG_MAX	256
#define NETEM_MAX_DELAY_MS	60000.0

/* the two directions of a connection, and the mask of both */
#define NETEM_UP			1	/* client -> target */
#define NETEM_DOWN			2	/* target -> client */
#define NETEM_BOTH			(NETEM_UP | NETEM_DOWN)

typedef enum NetemJitter
{
	JITTER_UNIFORM,				/* delay +- jitter, evenly */
	JITTER_NORMAL				/* delay + N(0, jitter), cut at 0 */
} NetemJitter;

/* What an epoll event points at: tells its kind and its owner. */
typedef enum NetemFdKind
{
	FD_LISTEN,
	FD_CLIENT,
	FD_TARGET,
	FD_TIMER,
	FD_SIGNAL,
	FD_CONTROL
} NetemFdKind;

typedef struct NetemFd
{
	NetemFdKind kind;
	int			fd;
	uint32_t	events;			/* what epoll watches now */
	void	   *owner;			/* Link or Conn; NULL for the others */
} NetemFd;

/* Bytes read from one side, waiting for their time to leave. */
typedef struct Chunk
{
	struct Chunk *next;
	uint64_t	due_ns;			/* CLOCK_MONOTONIC */
	size_t		len;
	size_t		off;			/* bytes already written */
	char		data[];
} Chunk;

/* One direction of one connection. */
typedef struct Flow
{
	Chunk	   *head;
	Chunk	   *tail;
	size_t		queued;			/* bytes in the chunks */
	uint64_t	last_due_ns;	/* no chunk leaves before the one ahead */
	bool		eof;			/* the source closed its side */
	bool		shut;			/* and we passed that on */
	bool		blocked;		/* the last write would have blocked */
} Flow;

struct Link;

typedef struct Conn
{
	struct Conn *next;			/* in the link's list */
	struct Link *link;
	NetemFd		client;
	NetemFd		target;			/* fd -1 until the connect starts */
	bool		connected;		/* the target accepted */
	bool		dead;			/* closed; freed after this epoll batch */
	Flow		up;
	Flow		down;
} Conn;

typedef struct Link
{
	char		name[NETEM_NAME_MAX];
	NetemFd		listener;
	int			listen_port;
	char		target_desc[NETEM_NAME_MAX + 16];	/* host:port, for stats */
	struct sockaddr_storage target;
	socklen_t	target_len;
	double		delay_ms;		/* one way, each direction */
	double		jitter_ms;
	NetemJitter jitter_kind;
	int			held;			/* NETEM_UP/DOWN bits partitioned */
	uint64_t	rng;			/* the jitter's own seeded sequence */
	Conn	   *conns;
	uint64_t	accepted;
	uint64_t	open;
	uint64_t	bytes[2];		/* forwarded up, down */
} Link;

typedef struct Netem
{
	int			epfd;
	NetemFd		timer;
	NetemFd		signal;
	NetemFd		control;
	const char *listen_host;
	uint64_t	seed;
	uint64_t	armed_ns;		/* when the timer fires, UINT64_MAX: not armed */
	uint64_t	lead_ns;		/* how early to arm it (netem_main.c) */
	size_t		max_queue;		/* bytes a flow holds before it stops reading */
	double		delay_ms;		/* defaults for new links */
	double		jitter_ms;
	NetemJitter jitter_kind;
	int			nlinks;
	Link	   *links[NETEM_MAX_LINKS];
} Netem;

/* netem_link.c */
extern Link *netem_add_link(Netem *n, const char *name, int listen_port,
							const char *target, char *errbuf, size_t errlen);
extern Link *netem_find_link(Netem *n, const char *name);
extern void netem_accept(Netem *n, Link *l);
extern void netem_conn_event(Netem *n, NetemFd *f, uint32_t events);
extern uint64_t netem_pump_all(Netem *n, uint64_t now);
extern void netem_free_dead(void);
extern void netem_close_links(Netem *n);
extern void netem_heal(Netem *n, Link *l);
extern void netem_reset(Netem *n, Link *l);
extern void netem_watch(Netem *n, NetemFd *f, uint32_t events);
extern uint64_t netem_now_ns(void);

/* netem_cmd.c */
extern void netem_command_run(Netem *n, const char *line);
extern bool netem_parse_ms(const char *s, double *out);
extern bool netem_parse_jitter(const char *s, NetemJitter *out);

#endif							/* RELAY_NETEM_H */
