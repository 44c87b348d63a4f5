/*-------------------------------------------------------------------------
 *
 * psim_limits.c
 *	  Directed scenarios for the byte-string interface of the Paxos core:
 *	  the limits it enforces on names and values, absent versus empty
 *	  register values under compare-and-set, many instances (the
 *	  instance table growing through the allocator), and forgetting
 *	  instances (paxos_forget: the table shrinking without losing others).
 *
 * One node that is its own only acceptor: every operation decides in one
 * pass of its Ready loop, so each expectation is about the interface, not
 * about the schedule (the seeds cover that).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psim.h"

#define HELD_MAX	16
#define VAL_MAX		64
#define MANY		5000

/* A message kept past paxos_advance: its own copies of name and value. */
typedef struct Held
{
	PaxosMessage m;
	char		name[PAXOS_MAX_NAME];
	char		val[VAL_MAX];
} Held;

typedef struct Lim
{
	PaxosNode  *node;
	Held		q[HELD_MAX];
	int			nq;
	bool		got;			/* the last result: */
	bool		present;
	size_t		len;
	char		val[VAL_MAX];
	bool		swapped;
	int			failures;
} Lim;

#define EXPECT(l, cond, what) \
	ps_expect(&(l)->failures, "byte-strings", cond, what, __LINE__)

/*
 * hold: m copied into the queue (the Ready's bytes go at advance).
 */
static void
hold(Lim *l, const PaxosMessage *m)
{
	Held	   *h = &l->q[l->nq++];

	h->m = *m;
	memcpy(h->name, m->instance.data, m->instance.len);
	h->m.instance.data = h->name;
	if (m->value.len > 0)
		memcpy(h->val, m->value.data, m->value.len);
	h->m.value.data = h->val;
}

/*
 * pump: Ready batches until none is left, stepping the node's messages
 * to itself; the last result is kept.
 */
static void
pump(Lim *l)
{
	PaxosReady	rd;
	size_t		k;

	while (paxos_has_ready(l->node) || l->nq > 0)
	{
		if (paxos_has_ready(l->node))
		{
			paxos_ready(l->node, &rd);
			for (k = 0; k < rd.n_msgs && l->nq < HELD_MAX; k++)
				hold(l, &rd.msgs[k]);
			for (k = 0; k < rd.n_results; k++)
			{
				l->got = true;
				l->present = rd.results[k].value.present;
				l->len = rd.results[k].value.len;
				memcpy(l->val, rd.results[k].value.data, l->len);
				l->swapped = rd.results[k].swapped;
			}
			paxos_advance(l->node);
			continue;
		}
		paxos_step(l->node, &l->q[--l->nq].m);
	}
}

static PaxosBytes
name(const char *s)
{
	PaxosBytes	b;

	b.data = s;
	b.len = strlen(s);
	return b;
}

static PaxosValue
val(const char *s)
{
	PaxosValue	v;

	memset(&v, 0, sizeof(v));
	if (s == NULL)
		return v;				/* absent */
	v.present = true;
	v.data = s;
	v.len = strlen(s);
	return v;
}

/*
 * op: run one operation to its result; its paxos_propose code.
 */
static int
op(Lim *l, PaxosOpKind kind, PaxosBytes inst, PaxosValue v, PaxosValue exp)
{
	PaxosRequest r;
	int			rc;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.instance = inst;
	r.value = v;
	r.expected = exp;
	l->got = false;
	rc = paxos_propose(l->node, &r);
	pump(l);
	return rc;
}

#define IS(l, s) ((l)->got && (l)->present && (l)->len == strlen(s) && \
				  memcmp((l)->val, s, (l)->len) == 0)
#define ABSENT(l) ((l)->got && !(l)->present)

/*
 * limits: names of 0 and PAXOS_MAX_NAME + 1 bytes, an absent decree
 * value and a malformed value are refused; a PAXOS_MAX_NAME name works.
 */
static void
limits(Lim *l)
{
	static char big[PAXOS_MAX_NAME + 1];
	PaxosBytes	b = {big, PAXOS_MAX_NAME + 1};
	PaxosValue	bad = val(NULL);

	memset(big, 'n', sizeof(big));
	EXPECT(l, op(l, PAXOS_OP_PUT, name(""), val("v"), val(NULL)) ==
		   PAXOS_ERR_INVALID, "an empty name refused");
	EXPECT(l, op(l, PAXOS_OP_PUT, b, val("v"), val(NULL)) ==
		   PAXOS_ERR_INVALID, "a name of PAXOS_MAX_NAME + 1 bytes refused");
	EXPECT(l, op(l, PAXOS_OP_DECREE, name("d"), val(NULL), val(NULL)) ==
		   PAXOS_ERR_INVALID, "a decree of an absent value refused");
	bad.len = 3;
	EXPECT(l, op(l, PAXOS_OP_PUT, name("r"), bad, val(NULL)) ==
		   PAXOS_ERR_INVALID, "an absent value with bytes refused");
	b.len = PAXOS_MAX_NAME;
	EXPECT(l, op(l, PAXOS_OP_PUT, b, val("v"), val(NULL)) == PAXOS_OK &&
		   IS(l, "v"), "a name of PAXOS_MAX_NAME bytes works");
}

/*
 * absent_empty: a register's absent value and its empty value are two
 * values to compare-and-set.
 */
static void
absent_empty(Lim *l)
{
	PaxosBytes	r = name("reg");
	PaxosValue	none = val(NULL);

	op(l, PAXOS_OP_READ, r, none, none);
	EXPECT(l, ABSENT(l), "a register nobody wrote reads absent");
	op(l, PAXOS_OP_CAS, r, val("x"), val(""));
	EXPECT(l, ABSENT(l) && !l->swapped, "absent does not match empty");
	op(l, PAXOS_OP_CAS, r, val(""), none);
	EXPECT(l, IS(l, "") && l->swapped, "absent matches absent: now empty");
	op(l, PAXOS_OP_CAS, r, val("x"), none);
	EXPECT(l, IS(l, "") && !l->swapped, "empty does not match absent");
	op(l, PAXOS_OP_CAS, r, val("{\"a\": 1}"), val(""));
	EXPECT(l, IS(l, "{\"a\": 1}") && l->swapped, "empty matches empty");
	op(l, PAXOS_OP_CAS, r, val("y"), val("{\"a\": 1} "));
	EXPECT(l, !l->swapped, "bytes compare exactly (a trailing space)");
	op(l, PAXOS_OP_PUT, r, none, none);
	op(l, PAXOS_OP_READ, r, none, none);
	EXPECT(l, ABSENT(l), "a put of absent deletes");
}

/*
 * many: MANY decrees, each learned and found again by name.
 */
static void
many(Lim *l)
{
	char		n[32];
	char		v[32];
	PaxosValue	got;
	int			i;
	int			wrong = 0;

	for (i = 0; i < MANY; i++)
	{
		snprintf(n, sizeof(n), "decree %d", i);
		snprintf(v, sizeof(v), "value %d", i * 7);
		op(l, PAXOS_OP_DECREE, name(n), val(v), val(NULL));
		wrong += !IS(l, v);
	}
	for (i = 0; i < MANY; i++)
	{
		snprintf(n, sizeof(n), "decree %d", i);
		snprintf(v, sizeof(v), "value %d", i * 7);
		wrong += !paxos_learned_value(l->node, name(n), &got) ||
			!paxos_value_equal(got, val(v));
	}
	EXPECT(l, wrong == 0, "every one of many decrees chosen and found");
	EXPECT(l, !paxos_learned_value(l->node, name("decree -1"), &got),
		   "no value for an instance never proposed");
}

/*
 * forget: after many(), every third decree forgotten (in an order that
 * leaves holes all over the table's probe runs): those are gone, every
 * other one is still found with its value, and a forgotten name proposed
 * again starts afresh (the caller's answer for it is its own, paxos.h).
 */
static void
forget(Lim *l)
{
	char		n[32];
	char		v[32];
	PaxosValue	got;
	int			i;
	int			wrong = 0;

	for (i = MANY - 1; i >= 0; i -= 3)
	{
		snprintf(n, sizeof(n), "decree %d", i);
		wrong += paxos_forget(l->node, name(n)) != PAXOS_OK;
	}
	EXPECT(l, wrong == 0, "forgetting learned decrees succeeds");
	EXPECT(l, paxos_forget(l->node, name("decree -1")) == PAXOS_ERR_INVALID,
		   "forgetting an unknown instance is refused");
	for (i = 0; i < MANY; i++)
	{
		bool		gone = (MANY - 1 - i) % 3 == 0;

		snprintf(n, sizeof(n), "decree %d", i);
		snprintf(v, sizeof(v), "value %d", i * 7);
		wrong += paxos_knows(l->node, name(n)) == gone;
		if (!gone)
			wrong += !paxos_learned_value(l->node, name(n), &got) ||
				!paxos_value_equal(got, val(v));
	}
	EXPECT(l, wrong == 0, "forgotten decrees gone, the others found with their values");
	op(l, PAXOS_OP_DECREE, name("decree 4999"), val("again"), val(NULL));
	EXPECT(l, IS(l, "again"), "a forgotten instance starts afresh in the core");
}

/*
 * ps_limits_scenario: the scenarios above; the number of failed
 * expectations.
 */
int
ps_limits_scenario(void)
{
	PaxosOptions o;
	Lim		   *l = calloc(1, sizeof(Lim));
	int			failures;

	memset(&o, 0, sizeof(o));
	o.id = 1;
	o.n_nodes = 1;
	o.nodes[0] = 1;
	o.timeout = 1000;
	o.backoff = 1;
	o.alloc = ps_allocator();
	l->node = paxos_new(&o);
	limits(l);
	absent_empty(l);
	many(l);
	forget(l);
	paxos_free(l->node);
	failures = l->failures;
	if (failures == 0)
		printf("paxos-sim: scenario byte-strings: ok\n");
	free(l);
	return failures;
}
