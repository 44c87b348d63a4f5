/*-------------------------------------------------------------------------
 *
 * loop.c
 *	  The one main loop of distsys-relay's commands, and the schedules they
 *	  share: retry backoff, database reconnection, the in-memory window.
 *
 * Each command (publish in relay.c, consume in consume.c) keeps its state
 * in a struct of its own and hands loop_run its hooks.  One turn:
 *	 1. the command's turn: connect, fetch or take messages, send or apply,
 *		commit, whatever is due;
 *	 2. one poll() on the stop signal's pipe, the command's own sockets
 *		(a wake-up pipe, the database) and the metrics sockets, for at most
 *		the command's timeout;
 *	 3. the command hears which of its sockets are ready; metrics requests
 *		are served.
 * until SIGTERM or SIGINT sets stop_requested (its pipe ends the wait at
 * once).  The command then shuts down in its own way.
 *
 * Threads: main thread only.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "signals.h"

#define LOOP_MAX_FDS		16
#define LOOP_WINDOW_MIN		10000	/* messages held in memory, at least */
#define LOOP_WINDOW_BATCHES	10		/* ... or this many batches */

/*
 * loop_start: the stop signals and, with --metrics-addr, the metrics
 * listener.  False (after one log line) when either cannot be set up.
 */
bool
loop_start(const RelayOptions *opts)
{
	if (!signals_setup())
	{
		log_error("could not set up the signal handlers: %s", strerror(errno));
		return false;
	}
	if (opts->metrics_addr != NULL && opts->metrics_addr[0] != '\0' &&
		!metrics_listen(opts->metrics_addr))
		return false;
	return true;
}

/*
 * loop_run: turn and wait until a stop is requested (see the banner).
 */
void
loop_run(const LoopHooks *hooks, void *arg)
{
	while (!stop_requested)
	{
		hooks->turn(arg, now_s());
		loop_wait(hooks, arg, hooks->timeout_ms(arg, now_s()));
	}
}

/*
 * loop_wait: steps 2 and 3 of the banner; also used by a command draining
 * at shutdown.
 */
void
loop_wait(const LoopHooks *hooks, void *arg, int timeout_ms)
{
	struct pollfd fds[LOOP_MAX_FDS];
	int			own = 0,
				nm;

	fds[0] = (struct pollfd) {.fd = signals_fd(), .events = POLLIN};
	if (hooks->pollfds != NULL)
		own = hooks->pollfds(arg, fds + 1, LOOP_MAX_FDS - 1);
	nm = metrics_pollfds(fds + 1 + own, LOOP_MAX_FDS - 1 - own);
	if (poll(fds, 1 + own + nm, timeout_ms) < 0)
		return;					/* EINTR: a signal, seen by the caller */
	if (hooks->ready != NULL)
		hooks->ready(arg, fds + 1, own);
	metrics_serve(fds + 1 + own, nm);
}

/*
 * loop_close: close the metrics sockets.
 */
void
loop_close(void)
{
	metrics_close();
}

/*
 * loop_timeout_ms: a wait of the given seconds as poll()'s timeout: 0 when
 * it is due, rounded up (a wait that ends early only turns again), at most
 * one second so that periodic work never waits long.
 */
int
loop_timeout_ms(double seconds)
{
	if (seconds <= 0)
		return 0;
	if (seconds >= 1.0)
		return 1000;
	return (int) (seconds * 1000) + 1;
}

/*
 * loop_window: the most messages a command holds in memory, so that a
 * full window is many batches deep and the next batch is always ready.
 */
int
loop_window(const RelayOptions *opts)
{
	int			w = opts->batch_size * LOOP_WINDOW_BATCHES;

	return w < LOOP_WINDOW_MIN ? LOOP_WINDOW_MIN : w;
}

/*
 * loop_backoff_ms: the delay after failed attempt number attempts (1, 2,
 * ...): --retry-backoff, doubled for each attempt after the first, at
 * most --retry-backoff-max.
 */
int
loop_backoff_ms(const RelayOptions *opts, int attempts)
{
	double		ms = opts->retry_backoff_ms * pow(2, attempts > 0 ? attempts - 1 : 0);

	return ms > opts->retry_backoff_max_ms ? opts->retry_backoff_max_ms : (int) ms;
}

/*
 * reconnect_init: the first attempt is due at once.
 */
void
reconnect_init(Reconnect *rc, const RelayOptions *opts)
{
	rc->backoff_ms = opts->retry_backoff_ms;
	rc->logged = false;
	rc->next = 0;
}

/*
 * reconnect_due: whether an attempt may be made now.
 */
bool
reconnect_due(const Reconnect *rc, double now)
{
	return now >= rc->next;
}

/*
 * reconnect_succeeded: connected; the next outage logs again and starts
 * from the first delay.
 */
void
reconnect_succeeded(Reconnect *rc, const RelayOptions *opts)
{
	rc->logged = false;
	rc->backoff_ms = opts->retry_backoff_ms;
}

/*
 * reconnect_failed: an attempt failed (the connecting code logged it
 * unless logged was set): wait, doubling the delay each time up to
 * --retry-backoff-max.  Only the first failure of an outage is an error
 * line; later ones are debug lines, or an unreachable database would
 * fill the log.
 */
void
reconnect_failed(Reconnect *rc, const RelayOptions *opts, double now)
{
	if (rc->logged)
		log_debug("database still unreachable; next attempt in %d ms", rc->backoff_ms);
	rc->logged = true;
	rc->next = now + rc->backoff_ms / 1000.0;
	rc->backoff_ms = rc->backoff_ms * 2 > opts->retry_backoff_max_ms ?
		opts->retry_backoff_max_ms : rc->backoff_ms * 2;
}

/*
 * reconnect_lost: a working connection was lost and that was logged: try
 * again at once, without a second line if that fails.
 */
void
reconnect_lost(Reconnect *rc, double now)
{
	rc->next = now;
	rc->logged = true;
}
