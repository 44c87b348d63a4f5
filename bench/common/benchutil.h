/*-------------------------------------------------------------------------
 *
 * benchutil.h
 *	  What the C benchmark drivers (bench/locks/lockbench.c,
 *	  bench/raftkv/kvbench.c) share: the clock, latency samples and their
 *	  percentiles and histograms, and rate-limited error lines.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every server the benchmarks talk to listens on loopback only. */
#define BENCH_HOST "127.0.0.1"

/* Latency histograms have buckets HIST_BASE^i .. HIST_BASE^(i+1) ns. */
#define HIST_BASE 1.02

typedef struct Sample
{
	uint64_t	end_ns;			/* when the measured interval ended */
	uint64_t	len_ns;			/* how long it was */
} Sample;

typedef struct SampleVec
{
	Sample	   *items;
	size_t		len;
	size_t		cap;
} SampleVec;

extern uint64_t bench_now_ns(void);
extern void bench_sleep_us(long us);
extern void bench_vec_push(SampleVec *v, uint64_t end_ns, uint64_t len_ns);
extern void bench_vec_sort(SampleVec *v);
extern double bench_percentile_us(const SampleVec *v, double p);
extern void bench_print_hist(const char *key, const SampleVec *v);
extern void bench_error_setup(const char *program, const char *target);
extern void bench_error(int client, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

#endif							/* BENCHUTIL_H */
