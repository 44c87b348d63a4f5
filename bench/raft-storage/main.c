/*-------------------------------------------------------------------------
 *
 * main.c
 *	  raftstore: what it costs one writer to append Raft log entries
 *	  durably, one store per run (bench/run-raft-storage.sh runs it).
 *
 *	  raftstore --kind KIND --size BYTES --batch N [--dir DIR] [--port P]
 *		  --warmup-ms MS --run-ms MS --lat-file FILE
 *
 * The writer is alone, as the Raft worker is one process: it appends a
 * batch of --batch entries of --size payload bytes, waits until the store
 * says the batch is durable (one "sync"), and starts the next.  It runs
 * --warmup-ms unrecorded, then --run-ms recorded; it appends each recorded
 * sync's latency in microseconds to --lat-file, one a line, so that the
 * script can add rounds up and take percentiles, and prints one line:
 * "syncs=N entries=N seconds=S".  It exits 1 on a broken set-up or a
 * failed sync, never because of a figure.
 *
 * No shared state: one process, one thread.
 *
 *-------------------------------------------------------------------------
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raftstore.h"

typedef struct Samples
{
	double	   *us;
	size_t		len;
	size_t		cap;
} Samples;

/* now_ns: CLOCK_MONOTONIC in nanoseconds */
static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* samples_push: appends one latency; exits when memory runs out */
static void
samples_push(Samples *s, double us)
{
	if (s->len == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->us = realloc(s->us, s->cap * sizeof(double));
		if (s->us == NULL)
		{
			fprintf(stderr, "raftstore: out of memory\n");
			exit(1);
		}
	}
	s->us[s->len++] = us;
}

/* find_store: the store whose prefix starts kind, or NULL */
static const StoreOps *
find_store(const char *kind)
{
	static const StoreOps *const all[] = {&file_store_ops, &pg_store_ops, &srv_store_ops};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strncmp(kind, all[i]->prefix, strlen(all[i]->prefix)) == 0)
			return all[i];
	return NULL;
}

/*
 * run: appends batches until the warm-up and the recording window are
 * over; records the syncs that start inside the window.  Returns false on
 * a failed append (the store printed why).
 */
static bool
run(const StoreOps *ops, Store *st, const StoreConfig *cfg,
	int warmup_ms, int run_ms, const uint8_t *payload, Samples *out)
{
	int64_t		start = now_ns();
	int64_t		rec_from = start + (int64_t) warmup_ms * 1000000;
	int64_t		rec_to = rec_from + (int64_t) run_ms * 1000000;
	uint64_t	index = 1;

	for (;;)
	{
		int64_t		t0 = now_ns();

		if (t0 >= rec_to)
			return true;
		if (!ops->append_sync(st, index, payload))
			return false;
		index += cfg->batch;
		if (t0 >= rec_from)
			samples_push(out, (now_ns() - t0) / 1000.0);
	}
}

/* write_samples: appends the latencies to path, one a line */
static bool
write_samples(const char *path, const Samples *s)
{
	FILE	   *f = fopen(path, "a");

	if (f == NULL)
	{
		perror(path);
		return false;
	}
	for (size_t i = 0; i < s->len; i++)
		fprintf(f, "%.1f\n", s->us[i]);
	return fclose(f) == 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: raftstore --kind KIND --size BYTES --batch N [--dir DIR] "
			"[--port PORT] --warmup-ms MS --run-ms MS --lat-file FILE\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"kind", required_argument, NULL, 'k'},
		{"size", required_argument, NULL, 's'},
		{"batch", required_argument, NULL, 'b'},
		{"dir", required_argument, NULL, 'd'},
		{"port", required_argument, NULL, 'p'},
		{"warmup-ms", required_argument, NULL, 'w'},
		{"run-ms", required_argument, NULL, 'r'},
		{"lat-file", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0}
	};
	StoreConfig cfg = {.size = 64, .batch = 1, .dir = "."};
	int			warmup_ms = 300,
				run_ms = 1000,
				c;
	const char *lat_file = NULL;
	const StoreOps *ops;
	Store	   *st;
	uint8_t    *payload;
	Samples		samples = {0};
	bool		ok;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'k': cfg.kind = optarg; break;
			case 's': cfg.size = atoi(optarg); break;
			case 'b': cfg.batch = atoi(optarg); break;
			case 'd': cfg.dir = optarg; break;
			case 'p': cfg.port = atoi(optarg); break;
			case 'w': warmup_ms = atoi(optarg); break;
			case 'r': run_ms = atoi(optarg); break;
			case 'l': lat_file = optarg; break;
			default: usage();
		}
	}
	if (cfg.kind == NULL || lat_file == NULL || cfg.size < 0 || cfg.batch < 1 || run_ms < 1)
		usage();
	if ((ops = find_store(cfg.kind)) == NULL)
	{
		fprintf(stderr, "raftstore: unknown kind %s\n", cfg.kind);
		return 2;
	}
	/* the payload bytes of one batch: not compressible, not all zero */
	payload = malloc((size_t) cfg.size * cfg.batch + 1);
	for (size_t i = 0; i < (size_t) cfg.size * cfg.batch; i++)
		payload[i] = (uint8_t) (i * 2654435761u >> 13);
	if ((st = ops->open(&cfg)) == NULL)
		return 1;
	if (ops->run_window)
		ok = ops->run_window(st, warmup_ms, run_ms, &samples.us, &samples.len);
	else
		ok = run(ops, st, &cfg, warmup_ms, run_ms, payload, &samples);
	ops->close(st);
	if (!ok || !write_samples(lat_file, &samples))
		return 1;
	printf("syncs=%zu entries=%zu seconds=%.3f\n", samples.len,
		   samples.len * cfg.batch, run_ms / 1000.0);
	return 0;
}
