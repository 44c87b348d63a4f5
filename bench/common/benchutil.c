/*-------------------------------------------------------------------------
 *
 * benchutil.c
 *	  Clock, latency samples and error lines shared by the benchmark
 *	  drivers (see benchutil.h).
 *
 * Shared state: only the count of error lines printed so far (an atomic)
 * and the program and target names, set once by the main thread before
 * any client thread starts.  A SampleVec belongs to one thread.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "benchutil.h"

#define MAX_ERRORS_SHOWN 5

static const char *error_program = "bench";
static const char *error_target = "";
static int	errors_shown;

/*
 * bench_now_ns: CLOCK_MONOTONIC in nanoseconds; the one clock every client
 * thread (and the Python driver, for ZooKeeper) reads.
 */
uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + ts.tv_nsec;
}

void
bench_sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* bench_vec_push: append one sample; out of memory ends the program. */
void
bench_vec_push(SampleVec *v, uint64_t end_ns, uint64_t len_ns)
{
	if (v->len == v->cap)
	{
		v->cap = v->cap ? v->cap * 2 : 4096;
		v->items = realloc(v->items, v->cap * sizeof(Sample));
		if (v->items == NULL)
		{
			fprintf(stderr, "%s: out of memory\n", error_program);
			exit(2);
		}
	}
	v->items[v->len].end_ns = end_ns;
	v->items[v->len].len_ns = len_ns;
	v->len++;
}

static int
cmp_len(const void *a, const void *b)
{
	uint64_t	x = ((const Sample *) a)->len_ns;
	uint64_t	y = ((const Sample *) b)->len_ns;

	return x < y ? -1 : x > y;
}

/* bench_vec_sort: by length, as bench_percentile_us expects */
void
bench_vec_sort(SampleVec *v)
{
	if (v->len > 0)
		qsort(v->items, v->len, sizeof(Sample), cmp_len);
}

/* bench_percentile_us: nearest-rank percentile of a sorted vector, in us */
double
bench_percentile_us(const SampleVec *v, double p)
{
	size_t		rank;

	if (v->len == 0)
		return -1;
	rank = (size_t) (p / 100.0 * v->len + 0.999999);
	if (rank < 1)
		rank = 1;
	return v->items[rank - 1].len_ns / 1000.0;
}

/*
 * bench_print_hist: " key=i:n,i:n,..." where n samples of a sorted vector
 * fell in bucket i, that is between HIST_BASE^i and HIST_BASE^(i+1)
 * nanoseconds.  The run scripts run a cell in rounds; their report.awk adds
 * the rounds' buckets and takes the percentiles of the sum (within 2%), so
 * no round's samples are lost.
 */
void
bench_print_hist(const char *key, const SampleVec *v)
{
	int			bucket = -1;
	long		count = 0;
	const char *sep = "";

	printf(" %s=", key);
	for (size_t i = 0; i <= v->len; i++)
	{
		int			b = -1;

		if (i < v->len)
			b = (int) floor(log((double) (v->items[i].len_ns + 1)) / log(HIST_BASE));
		if (b != bucket && count > 0)
		{
			printf("%s%d:%ld", sep, bucket, count);
			sep = ",";
			count = 0;
		}
		bucket = b;
		count++;
	}
	if (v->len == 0)
		printf("-");
}

/* bench_error_setup: the names bench_error's lines start with */
void
bench_error_setup(const char *program, const char *target)
{
	error_program = program;
	error_target = target;
}

/*
 * bench_error: print one error line for a client; after MAX_ERRORS_SHOWN in
 * the whole run the rest are only counted by the caller, so a failing
 * server cannot flood the output.
 */
void
bench_error(int client, const char *fmt,...)
{
	va_list		ap;

	if (__atomic_fetch_add(&errors_shown, 1, __ATOMIC_RELAXED) >= MAX_ERRORS_SHOWN)
		return;
	fprintf(stderr, "%s: %s: client %d: ", error_program, error_target, client);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
