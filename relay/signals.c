/*-------------------------------------------------------------------------
 *
 * signals.c
 *	  The clock and the stop signals of distsys-relay's main loops.
 *
 * SIGTERM and SIGINT set stop_requested and write a byte into a pipe whose
 * read end the main loop polls, so a signal ends its sleep at once (the
 * self-pipe trick).  SIGPIPE is ignored: a closed socket is an error
 * return, not a death.  The handler touches only stop_requested, the pipe
 * and errno, all async-signal-safe.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include "signals.h"

volatile sig_atomic_t stop_requested = 0;
static int	signal_pipe[2] = {-1, -1};

/*
 * now_s: wall-clock seconds, for deadlines and latencies.
 */
double
now_s(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

static void
on_signal(int sig)
{
	int			save = errno;

	stop_requested = 1;
	if (write(signal_pipe[1], "x", 1) < 0)
		(void) 0;				/* the pipe is full: a wake-up is pending anyway */
	errno = save;
}

/*
 * signals_setup: install the handlers; false if the pipe cannot be made.
 */
bool
signals_setup(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return false;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return true;
}

/*
 * signals_fd: readable once a stop was requested.
 */
int
signals_fd(void)
{
	return signal_pipe[0];
}
