/*-------------------------------------------------------------------------
 *
 * lincheck.c
 *	  Linearizability checker for one key of the simulator's key-value
 *	  store: the Wing-Gong search with Lowe's memoization (WGL).
 *
 * The history of a key is its puts, gets and compare-and-sets with their
 * call and return times (a delete is a put of 0, "absent").  The search walks the calls in time order, tries to linearize
 * each pending call against the register model, and backtracks when it
 * meets the return of an operation it has not placed yet.  A set of
 * (operations placed, register value) configurations already explored
 * prunes the search (Lowe, "Testing for linearizability", 2017).
 *
 * Operations with an unknown outcome (the client timed out) have an
 * infinite return time: they may take effect anywhere after their call,
 * or never (placed after everything else, which nothing observes).  A put
 * of unknown outcome that nothing can have observed is dropped up front:
 * not happening at all is then always a valid choice for it, and dropping
 * it keeps the search small.  Observing it means a get that returned its
 * value, a compare-and-set that swapped from its value, or any
 * compare-and-set that answered false: "the register did not hold what I
 * expected" can be explained by any write, whatever its value.  The same
 * goes for a compare-and-set of unknown outcome; one that is kept takes
 * effect where it is placed exactly when the register then holds its
 * expected value, as the real operation would.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define LIN_MAX_STATES	4000000L

typedef struct Ev
{
	uint64_t	time;
	int			op;
	bool		is_call;
	struct Ev  *match;			/* call -> its return */
	struct Ev  *prev;
	struct Ev  *next;
} Ev;

typedef struct Cache
{
	uint64_t   *slots;			/* hash of each stored configuration, 0 = free */
	uint64_t   *keys;			/* words + 1 per slot: bitset then value */
	size_t		cap;
	size_t		n;
	int			words;
} Cache;

/*
 * cfg_hash: FNV-style hash of a configuration (never 0).
 */
static uint64_t
cfg_hash(const uint64_t *bits, int words, int64_t value)
{
	uint64_t	h = 1469598103934665603ULL;
	int			i;

	for (i = 0; i < words; i++)
		h = (h ^ bits[i]) * 1099511628211ULL;
	h = (h ^ (uint64_t) value) * 1099511628211ULL;
	return h ? h : 1;
}

static void cache_grow(Cache *c);

/*
 * cache_add: insert (bits, value); returns false if it was already there.
 */
static bool
cache_add(Cache *c, const uint64_t *bits, int64_t value)
{
	uint64_t	h = cfg_hash(bits, c->words, value);
	size_t		i = h & (c->cap - 1);
	int			w = c->words + 1;

	if (2 * (c->n + 1) > c->cap)
	{
		cache_grow(c);
		i = h & (c->cap - 1);
	}
	while (c->slots[i] != 0)
	{
		uint64_t   *k = &c->keys[i * w];

		if (c->slots[i] == h && memcmp(k, bits, c->words * 8) == 0 &&
			(int64_t) k[c->words] == value)
			return false;
		i = (i + 1) & (c->cap - 1);
	}
	c->slots[i] = h;
	memcpy(&c->keys[i * w], bits, c->words * 8);
	c->keys[i * w + c->words] = (uint64_t) value;
	c->n++;
	return true;
}

/*
 * cache_grow: double the table and rehash.
 */
static void
cache_grow(Cache *c)
{
	Cache		old = *c;
	int			w = c->words + 1;
	size_t		i;

	c->cap = old.cap ? old.cap * 2 : 1024;
	c->slots = calloc(c->cap, sizeof(uint64_t));
	c->keys = sim_xmalloc(c->cap * w * sizeof(uint64_t));
	c->n = 0;
	for (i = 0; i < old.cap; i++)
		if (old.slots[i] != 0)
			cache_add(c, &old.keys[i * w], (int64_t) old.keys[i * w + c->words]);
	free(old.slots);
	free(old.keys);
}

/*
 * ev_cmp: qsort order of events: by time; at equal times returns first.
 */
static int
ev_cmp(const void *a, const void *b)
{
	const Ev   *x = a;
	const Ev   *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->is_call != y->is_call)
		return x->is_call ? 1 : -1;	/* equal times: returns first */
	return x->op - y->op;
}

/*
 * lift, unlift: take a call and its return out of the list, and put them
 * back (in reverse order of lifting, as the search does).
 */
static void
lift(Ev *call)
{
	call->prev->next = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->match->prev->next = call->match->next;
	if (call->match->next)
		call->match->next->prev = call->match->prev;
}

static void
unlift(Ev *call)
{
	call->match->prev->next = call->match;
	if (call->match->next)
		call->match->next->prev = call->match;
	call->prev->next = call;
	if (call->next)
		call->next->prev = call;
}

/*
 * observes: whether completed operation o can have observed a write of
 * value (see the banner).
 */
static bool
observes(const LinOp *o, int64_t value)
{
	if (o->ret == LIN_INF)
		return false;
	if (o->kind == LIN_GET)
		return o->value == value;
	if (o->kind == LIN_CAS)
		return !o->swapped || o->expected == value;
	return false;
}

/*
 * keep_op: false for operations that cannot constrain the search (an
 * unknown put or compare-and-set that nothing can have observed).
 */
static bool
keep_op(const LinOp *ops, int n, int i)
{
	int			j;

	if (ops[i].kind == LIN_GET || ops[i].ret != LIN_INF)
		return true;
	for (j = 0; j < n; j++)
		if (observes(&ops[j], ops[i].value))
			return true;
	return false;
}

/*
 * kept_ops: keep[i] for each operation that keep_op keeps, and then, to a
 * fixpoint, each unknown write whose value a kept unknown compare-and-set
 * expects: that one can take effect only from that value, so what it
 * writes being observed observes the write before it too (an unknown put
 * of 40, an unknown CAS 40 -> 44, a get of 44).
 */
static void
kept_ops(const LinOp *ops, int n, bool *keep)
{
	bool		changed = true;
	int			i;
	int			j;

	for (i = 0; i < n; i++)
		keep[i] = keep_op(ops, n, i);
	while (changed)
	{
		changed = false;
		for (i = 0; i < n; i++)
			for (j = 0; j < n && !keep[i]; j++)
				if (keep[j] && ops[j].kind == LIN_CAS && ops[j].ret == LIN_INF &&
					ops[j].expected == ops[i].value)
					keep[i] = changed = true;
	}
}

/*
 * lin_step: whether op may take effect on a register holding state, and
 * the state after it.
 */
static bool
lin_step(const LinOp *op, int64_t state, int64_t *next)
{
	bool		match;

	*next = state;
	switch (op->kind)
	{
		case LIN_PUT:
			*next = op->value;
			return true;
		case LIN_GET:
			return op->value == state;
		case LIN_CAS:
			match = op->expected == state;
			if (match)
				*next = op->value;
			return op->ret == LIN_INF || match == op->swapped;
	}
	return false;
}

/*
 * lin_check_key: whether the history ops[0..n) of one register (initially
 * 0; values written are best unique, which keeps the search small) is
 * linearizable.  *states_explored is
 * set to the search's size, or -1 if the search gave up (then true).
 */
bool
lin_check_key(const LinOp *ops, int n, long *states_explored)
{
	int		   *idx = sim_xmalloc((n + 1) * sizeof(int));
	bool	   *keep;
	int			m = 0;
	Ev		   *ev;
	Ev			head;
	Ev		  **stack;
	int64_t    *stack_state;
	int			sp = 0;
	uint64_t   *bits;
	int			words;
	int64_t		state = 0;
	Cache		cache;
	Ev		   *entry;
	bool		ok = true;
	long		explored = 0;
	int			i;

	keep = sim_xmalloc((n + 1) * sizeof(bool));
	kept_ops(ops, n, keep);
	for (i = 0; i < n; i++)
		if (keep[i])
			idx[m++] = i;
	free(keep);
	words = (m + 63) / 64 + 1;
	ev = sim_xmalloc((2 * m + 1) * sizeof(Ev));
	for (i = 0; i < m; i++)
	{
		ev[2 * i].time = ops[idx[i]].call;
		ev[2 * i].op = i;
		ev[2 * i].is_call = true;
		ev[2 * i + 1].time = ops[idx[i]].ret;
		ev[2 * i + 1].op = i;
		ev[2 * i + 1].is_call = false;
	}
	qsort(ev, 2 * m, sizeof(Ev), ev_cmp);
	{
		Ev		  **ret_of = sim_xmalloc((m + 1) * sizeof(Ev *));

		for (i = 0; i < 2 * m; i++)
			if (!ev[i].is_call)
				ret_of[ev[i].op] = &ev[i];
		for (i = 0; i < 2 * m; i++)
			if (ev[i].is_call)
				ev[i].match = ret_of[ev[i].op];
		free(ret_of);
	}
	memset(&head, 0, sizeof(head));
	head.next = m > 0 ? &ev[0] : NULL;
	for (i = 0; i < 2 * m; i++)
	{
		ev[i].prev = i == 0 ? &head : &ev[i - 1];
		ev[i].next = i + 1 < 2 * m ? &ev[i + 1] : NULL;
	}

	stack = sim_xmalloc((m + 1) * sizeof(Ev *));
	stack_state = sim_xmalloc((m + 1) * sizeof(int64_t));
	bits = calloc(words, sizeof(uint64_t));
	memset(&cache, 0, sizeof(cache));
	cache.words = words;

	entry = head.next;
	while (head.next != NULL)
	{
		if (++explored > LIN_MAX_STATES)
		{
			explored = -1;
			break;
		}
		if (entry->is_call)
		{
			int64_t		next_state;
			bool		legal = lin_step(&ops[idx[entry->op]], state, &next_state);

			if (legal)
			{
				bits[entry->op / 64] |= 1ULL << (entry->op % 64);
				if (cache_add(&cache, bits, next_state))
				{
					stack[sp] = entry;
					stack_state[sp++] = state;
					state = next_state;
					lift(entry);
					entry = head.next;
					continue;
				}
				bits[entry->op / 64] &= ~(1ULL << (entry->op % 64));
			}
			entry = entry->next;
		}
		else
		{
			Ev		   *call;

			if (sp == 0)
			{
				ok = false;
				break;
			}
			call = stack[--sp];
			state = stack_state[sp];
			bits[call->op / 64] &= ~(1ULL << (call->op % 64));
			unlift(call);
			entry = call->next;
		}
	}
	*states_explored = explored;
	free(idx);
	free(ev);
	free(stack);
	free(stack_state);
	free(bits);
	free(cache.slots);
	free(cache.keys);
	return ok;
}

/*
 * lin_self_test: the checker on small hand-made histories whose answer is
 * known, so that a checker that accepts everything (or nothing) is caught
 * before any schedule relies on it.  Returns the number of wrong answers.
 */
#define P(v, c, r) {LIN_PUT, v, c, r, 0, false}
#define G(v, c, r) {LIN_GET, v, c, r, 0, false}
#define C(v, c, r, e, sw) {LIN_CAS, v, c, r, e, sw}

int
lin_self_test(void)
{
	static const struct
	{
		bool		expect;
		int			n;
		LinOp		ops[4];
	}			cases[] = {
		/* a put, then a get that sees it */
		{true, 2, {P(1, 1, 2), G(1, 3, 4)}},
		/* a get after a completed put that does not see it */
		{false, 2, {P(1, 1, 2), G(0, 3, 4)}},
		/* a get concurrent with the put may see either */
		{true, 3, {P(1, 1, 6), G(0, 2, 3), G(1, 4, 5)}},
		/* ... but not the new value, then the old one */
		{false, 3, {P(1, 1, 6), G(1, 2, 3), G(0, 4, 5)}},
		/* an older value after a newer completed put */
		{false, 3, {P(1, 1, 2), P(2, 3, 4), G(1, 5, 6)}},
		/* a put of unknown outcome may have happened ... */
		{true, 2, {P(1, 1, LIN_INF), G(1, 5, 6)}},
		/* ... or not */
		{true, 3, {P(1, 1, LIN_INF), G(0, 2, 3), G(0, 5, 6)}},
		/* but once seen, it cannot be undone */
		{false, 3, {P(1, 1, LIN_INF), G(1, 2, 3), G(0, 5, 6)}},
		/* nor seen before it was called */
		{false, 2, {G(1, 1, 2), P(1, 3, LIN_INF)}},
		/* an unknown put cannot come back after a later completed put */
		{false, 4, {P(1, 1, 2), P(2, 3, LIN_INF),
		G(2, 4, 5), G(1, 6, 7)}},
		/* a delete (a put of 0), then absent */
		{true, 3, {P(1, 1, 2), P(0, 3, 4), G(0, 5, 6)}},
		/* a compare-and-set that matched, seen */
		{true, 3, {P(1, 1, 2), C(2, 3, 4, 1, true), G(2, 5, 6)}},
		/* one that answered true although the value differed */
		{false, 2, {P(1, 1, 2), C(2, 3, 4, 7, true)}},
		/* one that answered false although the value matched */
		{false, 2, {P(1, 1, 2), C(2, 3, 4, 1, false)}},
		/* of two concurrent compare-and-sets from one value, only one wins */
		{false, 3, {P(1, 1, 2), C(2, 3, 6, 1, true),
		C(3, 4, 5, 1, true)}},
		/* an unknown one may have taken effect ... */
		{true, 3, {P(1, 1, 2), C(2, 3, LIN_INF, 1, false),
		G(2, 5, 6)}},
		/* ... but only from its expected value */
		{false, 3, {P(1, 1, 2), C(2, 3, LIN_INF, 9, false),
		G(2, 5, 6)}},
		/* a failed compare-and-set explained by a put of unknown outcome */
		{true, 3, {P(5, 1, 2), P(2, 10, LIN_INF), C(7, 20, 30, 5, false)}},
		/* ... which a put that certainly failed to happen cannot do */
		{false, 2, {P(5, 1, 2), C(7, 20, 30, 5, false)}},
		/* a compare-and-set that swapped from an unknown put's value */
		{true, 3, {P(5, 1, 2), P(2, 10, LIN_INF), C(7, 20, 30, 2, true)}},
		/* an unknown put seen only through an unknown CAS from its value */
		{true, 4, {P(5, 1, 2), P(40, 3, LIN_INF), C(44, 4, LIN_INF, 40, false),
		G(44, 6, 7)}},
	};
	int			wrong = 0;
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		long		explored;

		if (lin_check_key(cases[i].ops, cases[i].n, &explored) != cases[i].expect)
		{
			fprintf(stderr, "lincheck self-test case %zu: wrong answer\n", i);
			wrong++;
		}
	}
	return wrong;
}
