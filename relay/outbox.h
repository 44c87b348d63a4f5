/*-------------------------------------------------------------------------
 *
 * outbox.h
 *	  The relay's database side: fetch outbox rows, ack and fail them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_OUTBOX_H
#define RELAY_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "queue.h"

#define OUTBOX_MAX_CUTS 64

/* "Every row with id <= max_id is fetched or will never exist, once a
 * snapshot's xmin reaches xmax." */
typedef struct OutboxCut
{
	int64_t		max_id;
	int64_t		xmax;
} OutboxCut;

typedef struct OutboxDb
{
	PGconn	   *conn;			/* NULL while disconnected */
	int64_t		safe;			/* every row <= safe is fetched or gone */
	OutboxCut	cuts[OUTBOX_MAX_CUTS];	/* pending, in xmax order */
	int			ncuts;
} OutboxDb;

extern bool outbox_connect(OutboxDb *db, const char *conninfo, bool quiet);
extern void outbox_disconnect(OutboxDb *db);
extern bool outbox_check_conn(OutboxDb *db);
extern void outbox_reset_cursor(OutboxDb *db);
extern int	outbox_fetch(OutboxDb *db, MsgQueue *q, const char *lanes, int limit,
						 bool *more);
extern bool outbox_ack(OutboxDb *db, const int64_t *ids, char *const *mids, int n);
extern const char *outbox_fail(OutboxDb *db, OutboxMsg *m, const char *error,
							   bool permanent, int max_attempts, int backoff_ms);
extern bool outbox_backlog(OutboxDb *db, const char *lanes, int64_t *count,
						   double *oldest);
extern bool outbox_notified(OutboxDb *db);

#endif							/* RELAY_OUTBOX_H */
