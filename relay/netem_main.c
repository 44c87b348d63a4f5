/*-------------------------------------------------------------------------
 *
 * netem_main.c
 *	  distsys-netem: a network emulator for tests and benchmarks, one TCP
 *	  proxy per link, with a one-way delay (and jitter) in each direction
 *	  and partitions on command.
 *
 *	  distsys-netem --link NAME=LISTEN_PORT:HOST:PORT [--link ...]
 *	      [--delay-ms D] [--jitter-ms J] [--jitter uniform|normal]
 *	      [--seed N] [--listen-host ADDR] [--max-queue-kb N]
 *	      [--control FIFO|-] [--ports-file FILE]
 *
 * This kernel has no netem qdisc and the tests do not run as root, so the
 * delay is added in user space: see netem_link.c for how bytes move.  The
 * main loop waits on epoll for the links, the connections, a timerfd set
 * to the next chunk's due time (nanosecond resolution: a 0.1 ms delay is
 * kept), the stop signals and the control channel (netem_cmd.c).
 *
 * Start-up: every --link is bound, then the control FIFO made, then the
 * ports file written ("NAME PORT" lines), so that a script that waits for
 * the file finds every listener and the FIFO there.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "control_channel.h"
#include "log.h"
#include "netem.h"
#include "signals.h"
#include "util.h"

#define NETEM_EVENTS	64
#define NETEM_MAX_LEAD_NS	200000	/* a wake-up later than this is not the timer's */

typedef struct NetemOptions
{
	const char *links[NETEM_MAX_LINKS];
	int			nlinks;
	const char *control_path;
	const char *ports_file;
	size_t		max_queue;
} NetemOptions;

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: " NETEM_PROGNAME " --link NAME=LISTEN_PORT:HOST:PORT [OPTION]...\n"
			"A TCP proxy per link that delays each direction and partitions on command.\n\n"
			"  --link NAME=LISTEN_PORT:HOST:PORT  forward connections to LISTEN_PORT\n"
			"                              (0: any free port) to HOST:PORT; repeatable\n"
			"  --delay-ms D                one-way delay of each direction (default 0)\n"
			"  --jitter-ms J               jitter around it (default 0)\n"
			"  --jitter uniform|normal     its distribution (default uniform: D +- J)\n"
			"  --seed N                    seed of the jitter (default 1)\n"
			"  --listen-host ADDR          IPv4 address to listen on (default 127.0.0.1)\n"
			"  --max-queue-kb N            bytes one direction holds before it stops\n"
			"                              reading (default 4096)\n"
			"  --control PATH              read commands from the FIFO PATH, or - (stdin)\n"
			"  --ports-file FILE           write \"NAME PORT\" lines once listening\n\n"
			"Commands: delay LINK|all ONE_WAY_MS [JITTER_MS [uniform|normal]];\n"
			"partition LINK|all [up|down|both]; heal LINK|all; reset LINK|all;\n"
			"link NAME LISTEN_PORT HOST:PORT; stats.  Each answers \"ok CMD\" on stdout.\n");
}

static void
startup_failed(const char *msg)
{
	log_error("%s", msg);
	fprintf(stderr, NETEM_PROGNAME ": %s\n", msg);
	exit(1);
}

/* parse_count: a decimal from min to max, or exit with the option's name */
static long
parse_count(const char *opt, const char *s, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
	{
		fprintf(stderr, NETEM_PROGNAME ": --%s must be %ld to %ld, not \"%s\"\n", opt, min, max, s);
		exit(2);
	}
	return v;
}

static void
parse_options(int argc, char **argv, Netem *n, NetemOptions *o)
{
	static const struct option longopts[] = {
		{"link", required_argument, NULL, 'l'},
		{"delay-ms", required_argument, NULL, 'd'},
		{"jitter-ms", required_argument, NULL, 'j'},
		{"jitter", required_argument, NULL, 'J'},
		{"seed", required_argument, NULL, 's'},
		{"listen-host", required_argument, NULL, 'H'},
		{"max-queue-kb", required_argument, NULL, 'q'},
		{"control", required_argument, NULL, 'c'},
		{"ports-file", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'l':
				if (o->nlinks == NETEM_MAX_LINKS)
					startup_failed("too many --link options");
				o->links[o->nlinks++] = optarg;
				break;
			case 'd':
			case 'j':
				if (!netem_parse_ms(optarg, c == 'd' ? &n->delay_ms : &n->jitter_ms))
				{
					fprintf(stderr, NETEM_PROGNAME ": --%s must be milliseconds from 0 to %.0f, not \"%s\"\n",
							c == 'd' ? "delay-ms" : "jitter-ms", NETEM_MAX_DELAY_MS, optarg);
					exit(2);
				}
				break;
			case 'J':
				if (!netem_parse_jitter(optarg, &n->jitter_kind))
				{
					fprintf(stderr, NETEM_PROGNAME ": --jitter is uniform or normal, not \"%s\"\n", optarg);
					exit(2);
				}
				break;
			case 's':
				n->seed = (uint64_t) parse_count("seed", optarg, 0, __LONG_MAX__);
				break;
			case 'H':
				n->listen_host = optarg;
				break;
			case 'q':
				n->max_queue = (size_t) parse_count("max-queue-kb", optarg, 64, 1048576) * 1024;
				break;
			case 'c':
				o->control_path = optarg;
				break;
			case 'p':
				o->ports_file = optarg;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			default:
				usage(stderr);
				exit(2);
		}
	}
	if (optind < argc || o->nlinks == 0)
	{
		fprintf(stderr, NETEM_PROGNAME ": %s\n", optind < argc ?
				"unexpected argument" : "at least one --link is needed");
		usage(stderr);
		exit(2);
	}
}

/*
 * add_option_link: one --link NAME=LISTEN_PORT:HOST:PORT; exits on error.
 */
static void
add_option_link(Netem *n, const char *spec)
{
	char		copy[CONTROL_LINE_MAX];
	char		errbuf[NETEM_ERRMSG_MAX];
	char	   *eq,
			   *colon,
			   *end;
	long		port;

	snprintf(copy, sizeof(copy), "%s", spec);
	eq = strchr(copy, '=');
	colon = eq ? strchr(eq + 1, ':') : NULL;
	if (colon == NULL)
	{
		snprintf(errbuf, sizeof(errbuf), "--link \"%s\" is not NAME=LISTEN_PORT:HOST:PORT", spec);
		startup_failed(errbuf);
	}
	*eq = *colon = '\0';
	port = strtol(eq + 1, &end, 10);
	if (end == eq + 1 || *end != '\0' || port < 0 || port > 65535)
	{
		snprintf(errbuf, sizeof(errbuf), "--link \"%s\": listen port is not 0 to 65535", spec);
		startup_failed(errbuf);
	}
	if (netem_add_link(n, copy, (int) port, colon + 1, errbuf, sizeof(errbuf)) == NULL)
		startup_failed(errbuf);
}

/* write_ports_file: "NAME PORT" per link, replaced whole */
static void
write_ports_file(Netem *n, const char *path)
{
	StrBuf		text = {0};
	char		errbuf[NETEM_ERRMSG_MAX];

	for (int i = 0; i < n->nlinks; i++)
		strbuf_printf(&text, "%s %d\n", n->links[i]->name, n->links[i]->listen_port);
	if (!write_file_atomically(path, text.data, errbuf, sizeof(errbuf)))
		startup_failed(errbuf);
	strbuf_free(&text);
}

/*
 * arm_timer: wake at due (CLOCK_MONOTONIC ns; UINT64_MAX disarms), less
 * the lead: how late the timer's wake-ups have come (timer_fired), so that
 * on average a chunk leaves at its time rather than a wake-up later.
 */
static void
arm_timer(Netem *n, uint64_t due)
{
	struct itimerspec its = {{0, 0}, {0, 0}};
	uint64_t	at = due == UINT64_MAX ? due : due - (due > n->lead_ns ? n->lead_ns : 0);

	if (at == n->armed_ns)
		return;
	n->armed_ns = at;
	if (at != UINT64_MAX)
	{
		its.it_value.tv_sec = at / 1000000000u;
		its.it_value.tv_nsec = at % 1000000000u;
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(n->timer.fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*
 * timer_fired: learn how late the wake-up came (a moving average, capped)
 * and let the timer be armed again.
 */
static void
timer_fired(Netem *n)
{
	uint64_t	now = netem_now_ns();
	uint64_t	late;

	if (n->armed_ns != UINT64_MAX && now > n->armed_ns)
	{
		late = now - n->armed_ns;
		if (late > NETEM_MAX_LEAD_NS)
			late = NETEM_MAX_LEAD_NS;
		n->lead_ns = (7 * n->lead_ns + late) / 8;
	}
	n->armed_ns = UINT64_MAX;
}

static void
on_control_line(const char *line, void *arg)
{
	netem_command_run((Netem *) arg, line);
}

/*
 * control_event: read control lines; the FIFO is reopened after each
 * writer, so epoll is told about a new descriptor (the closed one left
 * epoll with its close).  Returns false if the channel broke.
 */
static bool
control_event(Netem *n, ControlChannel *ch)
{
	int			old = ch->fd;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &n->control};

	if (!control_read(ch, on_control_line, n))
		return false;
	if (ch->fd == old)
		return true;
	if (old == STDIN_FILENO)
		epoll_ctl(n->epfd, EPOLL_CTL_DEL, old, NULL);
	n->control.fd = ch->fd;
	return ch->fd < 0 || epoll_ctl(n->epfd, EPOLL_CTL_ADD, ch->fd, &ev) == 0;
}

/*
 * handle: one epoll event.  Returns false to stop (a signal, or a broken
 * control channel: a test driving it could otherwise wait forever).
 */
static bool
handle(Netem *n, ControlChannel *ch, NetemFd *f, uint32_t events, int *status)
{
	uint64_t	ticks;

	switch (f->kind)
	{
		case FD_LISTEN:
			netem_accept(n, f->owner);
			break;
		case FD_CLIENT:
		case FD_TARGET:
			netem_conn_event(n, f, events);
			break;
		case FD_TIMER:
			if (read(f->fd, &ticks, sizeof(ticks)) == sizeof(ticks))
				timer_fired(n);
			break;
		case FD_SIGNAL:
			log_info("stop requested; shutting down");
			*status = 0;
			return false;
		case FD_CONTROL:
			if (!control_event(n, ch))
			{
				*status = 1;
				return false;
			}
			break;
	}
	return true;
}

/*
 * run: the loop.  After each batch of events every due chunk is written
 * and the timer set to the next one.
 */
static int
run(Netem *n, ControlChannel *ch)
{
	struct epoll_event ev[NETEM_EVENTS];
	int			status = 0;

	for (;;)
	{
		int			k = epoll_wait(n->epfd, ev, NETEM_EVENTS, -1);

		if (k < 0 && errno != EINTR)
		{
			log_error("epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < k; i++)
			if (!handle(n, ch, ev[i].data.ptr, ev[i].events, &status))
				return status;
		netem_free_dead();
		arm_timer(n, netem_pump_all(n, netem_now_ns() + n->lead_ns));
		netem_free_dead();
	}
}

/* add_fd: register one of the loop's own descriptors */
static void
add_fd(Netem *n, NetemFd *f, NetemFdKind kind, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = f};

	f->kind = kind;
	f->fd = fd;
	f->events = EPOLLIN;
	if (fd < 0 || epoll_ctl(n->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		startup_failed("cannot set up the event loop");
}

int
main(int argc, char **argv)
{
	Netem		n = {.listen_host = "127.0.0.1", .seed = 1,
		.max_queue = 4096 * 1024, .jitter_kind = JITTER_UNIFORM,
	.armed_ns = UINT64_MAX};
	NetemOptions o = {0};
	ControlChannel ch;
	char		errbuf[NETEM_ERRMSG_MAX];
	int			status;

	parse_options(argc, argv, &n, &o);
	log_setup(NETEM_PROGNAME, LOG_FORMAT_TEXT, LOG_LEVEL_INFO);
	if (!signals_setup())
		startup_failed("cannot set up signal handling");
	/* the kernel may otherwise wake the timer 50 us late: a quarter of 0.2 ms */
	prctl(PR_SET_TIMERSLACK, 1UL);
	n.epfd = epoll_create1(EPOLL_CLOEXEC);
	add_fd(&n, &n.signal, FD_SIGNAL, signals_fd());
	add_fd(&n, &n.timer, FD_TIMER,
		   timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
	for (int i = 0; i < o.nlinks; i++)
		add_option_link(&n, o.links[i]);
	if (o.control_path != NULL)
	{
		if (!control_open(&ch, o.control_path, errbuf, sizeof(errbuf)))
			startup_failed(errbuf);
		add_fd(&n, &n.control, FD_CONTROL, ch.fd);
	}
	if (o.ports_file != NULL)
		write_ports_file(&n, o.ports_file);
	for (int i = 0; i < n.nlinks; i++)
		printf("listening %s %d\n", n.links[i]->name, n.links[i]->listen_port);
	fflush(stdout);

	status = run(&n, o.control_path != NULL ? &ch : NULL);

	if (o.control_path != NULL)
		control_close(&ch);
	if (o.ports_file != NULL)
		unlink(o.ports_file);
	netem_close_links(&n);
	log_info("stopped");
	return status;
}
