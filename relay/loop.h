/*-------------------------------------------------------------------------
 *
 * loop.h
 *	  The main loop of distsys-relay's commands (publish in relay.c,
 *	  consume in consume.c), and the schedules both use.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_LOOP_H
#define RELAY_LOOP_H

#include <poll.h>
#include <stdbool.h>

#include "options.h"

/*
 * A command's part of the loop; arg is its state.  turn does the work of
 * one turn; timeout_ms says how long the wait after it may last; pollfds
 * (optional) adds the command's own sockets to the wait, and ready
 * (optional) gets them back with the events poll() found.
 */
typedef struct LoopHooks
{
	void		(*turn) (void *arg, double now);
	int			(*timeout_ms) (void *arg, double now);
	int			(*pollfds) (void *arg, struct pollfd *fds, int max);
	void		(*ready) (void *arg, const struct pollfd *fds, int n);
} LoopHooks;

/* When to try the database connection again, and whether that is news. */
typedef struct Reconnect
{
	int			backoff_ms;		/* delay after the next failure */
	bool		logged;			/* the failure to connect was logged */
	double		next;			/* no attempt before this (epoch s) */
} Reconnect;

extern bool loop_start(const RelayOptions *opts);
extern void loop_run(const LoopHooks *hooks, void *arg);
extern void loop_wait(const LoopHooks *hooks, void *arg, int timeout_ms);
extern void loop_close(void);
extern int	loop_timeout_ms(double seconds);
extern int	loop_window(const RelayOptions *opts);
extern int	loop_backoff_ms(const RelayOptions *opts, int attempts);

extern void reconnect_init(Reconnect *rc, const RelayOptions *opts);
extern bool reconnect_due(const Reconnect *rc, double now);
extern void reconnect_succeeded(Reconnect *rc, const RelayOptions *opts);
extern void reconnect_failed(Reconnect *rc, const RelayOptions *opts, double now);
extern void reconnect_lost(Reconnect *rc, double now);

#endif							/* RELAY_LOOP_H */
