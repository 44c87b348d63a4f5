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
