/*-------------------------------------------------------------------------
 *
 * metrics.h
 *	  The relay's counters and their Prometheus endpoint.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_METRICS_H
#define RELAY_METRICS_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define METRICS_BUCKETS 13

typedef struct RelayMetrics
{
	uint64_t	relayed;		/* delivery reports that said persisted */
	uint64_t	failed;			/* delivery reports with an error */
	uint64_t	dead_lettered;	/* rows moved to outbox_dead */
	int64_t		backlog;		/* rows in owned lanes, -1 unknown */
	double		oldest_age;		/* seconds, of the oldest such row */
	int			lanes_owned;
	uint64_t	latency_buckets[METRICS_BUCKETS + 1];	/* last is +Inf */
	double		latency_sum;
	uint64_t	latency_count;
} RelayMetrics;

extern RelayMetrics metrics;

/* Renders a whole metrics page into page; arg is the command's state. */
typedef void (*MetricsPageFn) (StrBuf *page, void *arg);

extern void metrics_observe_latency(double seconds);
extern bool metrics_listen(const char *addr);
extern int	metrics_pollfds(struct pollfd *fds, int max);
extern void metrics_serve(struct pollfd *fds, int n);
extern void metrics_set_page(MetricsPageFn fn, void *arg);
extern void metrics_close(void);

#endif							/* RELAY_METRICS_H */
