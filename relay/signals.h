/*-------------------------------------------------------------------------
 *
 * signals.h
 *	  The clock and the stop signals of distsys-relay's main loops.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_SIGNALS_H
#define RELAY_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

extern volatile sig_atomic_t stop_requested;

extern double now_s(void);
extern bool signals_setup(void);
extern int	signals_fd(void);

#endif							/* RELAY_SIGNALS_H */
