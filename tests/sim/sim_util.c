/*-------------------------------------------------------------------------
 *
 * sim_util.c
 *	  The simulator's deterministic PRNG and the malloc-based allocator it
 *	  hands to the Raft core.
 *
 * Nothing here reads a clock or the C library's rand(): a seed alone
 * decides every schedule.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/*
 * sim_rand: splitmix64 step: the next 64 random bits from state *s.
 */
uint64_t
sim_rand(uint64_t *s)
{
	uint64_t	z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/*
 * sim_rand_below: uniform in [0, n) (n > 0; the bias is negligible).
 */
uint64_t
sim_rand_below(uint64_t *s, uint64_t n)
{
	return sim_rand(s) % n;
}

/*
 * sim_rand_unit: uniform in [0, 1).
 */
double
sim_rand_unit(uint64_t *s)
{
	return (sim_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * sim_xmalloc, sim_xrealloc: malloc that never returns NULL (the core's
 * allocator contract): out of memory ends the process.
 */
void *
sim_xmalloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	return p;
}

void *
sim_xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (p == NULL)
	{
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	return p;
}

/*
 * alloc_cb, realloc_cb, free_cb: the RaftAllocator callbacks (ctx unused).
 */
static void *
alloc_cb(void *ctx, size_t size)
{
	(void) ctx;
	return sim_xmalloc(size);
}

static void *
realloc_cb(void *ctx, void *p, size_t size)
{
	(void) ctx;
	return sim_xrealloc(p, size);
}

static void
free_cb(void *ctx, void *p)
{
	(void) ctx;
	free(p);
}

/*
 * sim_allocator: the RaftAllocator over malloc/realloc/free.
 */
RaftAllocator
sim_allocator(void)
{
	RaftAllocator a;

	a.alloc_fn = alloc_cb;
	a.realloc_fn = realloc_cb;
	a.free_fn = free_cb;
	a.ctx = NULL;
	return a;
}

/*
 * sim_parse_args: the simulators' options into *a (defaults: seeds 1 ..
 * 200, one job, scenarios on); 0, or 2 after printing the usage of prog.
 */
int
sim_parse_args(int argc, char **argv, const char *prog, SimArgs *a)
{
	int			i;

	memset(a, 0, sizeof(*a));
	a->first = 1;
	a->count = 200;
	a->jobs = 1;
	a->scenarios = true;
	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
			a->count = atol(argv[++i]);
		else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc)
			a->first = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
		{
			a->first = strtoull(argv[++i], NULL, 10);
			a->count = 1;
		}
		else if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
			a->nodes = atoi(argv[++i]);
		else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
			a->jobs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--verbose") == 0)
			a->verbose = true;
		else if (strcmp(argv[i], "--stop-first") == 0)
			a->stop_first = true;
		else if (strcmp(argv[i], "--no-scenarios") == 0)
			a->scenarios = false;
		else
		{
			fprintf(stderr, "usage: %s [--seeds N] [--first F] [--seed S] "
					"[--nodes 3|5] [--jobs J] [--verbose] [--stop-first] "
					"[--no-scenarios]\n", prog);
			return 2;
		}
	}
	if (a->jobs < 1 || a->count < a->jobs)
		a->jobs = 1;
	return 0;
}

/*
 * sim_record_violation: note the first violated property of a run (later
 * ones are its consequences): *failed, name and the formatted detail.
 */
void
sim_record_violation(bool *failed, char *property, size_t psize,
					 char *detail, size_t dsize,
					 const char *name, const char *fmt, va_list ap)
{
	if (*failed)
		return;
	*failed = true;
	snprintf(property, psize, "%s", name);
	vsnprintf(detail, dsize, fmt, ap);
}
