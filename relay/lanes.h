/*-------------------------------------------------------------------------
 *
 * lanes.h
 *	  Which relay lanes this relay owns, through session-owned distsys locks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_LANES_H
#define RELAY_LANES_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "queue.h"

#define LANES_TTL_S		15		/* lease of a lane lock */
#define LANES_TICK_MS	1000	/* renew, rebalance, take free lanes */

typedef struct Lanes
{
	int			n;				/* relay lanes (--lanes) */
	bool	   *owned;			/* [n] */
	int			owned_count;
	bool		member;			/* holds its member lock */
} Lanes;

#define LANES_GAINED	1
#define LANES_LOST		2

extern void lanes_init(Lanes *l, int n);
extern int	lanes_tick(Lanes *l, PGconn *conn, MsgQueue *q);
extern void lanes_forget(Lanes *l);
extern bool lanes_owns_table_lane(int lane, void *l);
extern char *lanes_table_literal(const Lanes *l);

#endif							/* RELAY_LANES_H */
