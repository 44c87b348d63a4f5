/*-------------------------------------------------------------------------
 *
 * paxos_store.c
 *	  The Paxos core's memory: value bytes it owns, the copies a Ready
 *	  points to, and the table of instances by name.
 *
 * Ownership.  Bytes that come in (requests, messages, restored records)
 * are copied into allocations of the node's own before the call returns,
 * so the caller's buffers are free at once.  A PaxosValue the node owns
 * holds an allocation iff len > 0 (an empty or absent value points to
 * nothing the node must free).  What a Ready hands out (messages, results,
 * learned values) is copied once more into scratch allocations, freed by
 * paxos_advance: the owned originals may change or go before the caller
 * is done (a later acceptance in the same batch replaces the value a
 * promise reported).  Persist records point to the owned state itself:
 * nothing changes it between paxos_ready and paxos_advance.
 *
 * The instance table: open addressing with linear probing over a power
 * of two slots of Instance pointers, kept at most half full, doubled
 * through the allocator.  Instances are never removed (an acceptor must
 * remember every promise it made), so there are no tombstones.  An
 * Instance is allocated by itself and never moves: pointers to it, and to
 * its name, are valid until paxos_free.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "paxos_int.h"

#define TABLE_MIN	16

/*
 * px_name_ok: true if name may name an instance: 1 .. PAXOS_MAX_NAME
 * bytes.  The bound keeps a stored acceptor record and a message of
 * bounded size whatever the caller sends.
 */
bool
px_name_ok(PaxosBytes name)
{
	return name.len >= 1 && name.len <= PAXOS_MAX_NAME && name.data != NULL;
}

/*
 * px_value_ok: true if v is well formed: absent values have no bytes,
 * present ones have data for their length.
 */
bool
px_value_ok(PaxosValue v)
{
	if (!v.present)
		return v.len == 0;
	return v.len == 0 || v.data != NULL;
}

/*
 * paxos_value_equal: true if a and b are both absent, or both present
 * with the same bytes (the caller's canonical form makes this its
 * equality: a compare-and-set compares exactly this).
 */
bool
paxos_value_equal(PaxosValue a, PaxosValue b)
{
#ifdef PAXOS_MUTANT_ABSENT_IS_EMPTY
	/* wrong: a register nobody wrote matches a CAS expecting "" */
	b.present = a.present;
#endif
	if (a.present != b.present || a.len != b.len)
		return false;
	return a.len == 0 || memcmp(a.data, b.data, a.len) == 0;
}

/*
 * copy_value: v in a fresh allocation of the node's (nothing allocated
 * for an empty or absent value).
 */
static PaxosValue
copy_value(PaxosNode *p, PaxosValue v)
{
	PaxosValue	c = v;
	void	   *d;

	c.data = NULL;
	if (v.len == 0)
		return c;
	d = p->opt.alloc.alloc_fn(p->opt.alloc.ctx, v.len);
	memcpy(d, v.data, v.len);
	c.data = d;
	return c;
}

/*
 * px_value_clear: free an owned value; it becomes absent.
 */
void
px_value_clear(PaxosNode *p, PaxosValue *v)
{
	if (v->len > 0)
		p->opt.alloc.free_fn(p->opt.alloc.ctx, (void *) v->data);
	memset(v, 0, sizeof(*v));
}

/*
 * px_value_set: the owned value *dst becomes a copy of src.  The copy is
 * made before the old bytes are freed, so src may point into *dst.
 */
void
px_value_set(PaxosNode *p, PaxosValue *dst, PaxosValue src)
{
	PaxosValue	c = copy_value(p, src);

	px_value_clear(p, dst);
	*dst = c;
}

/*
 * px_value_scratch: a copy of v that stays valid until paxos_advance.
 */
PaxosValue
px_value_scratch(PaxosNode *p, PaxosValue v)
{
	PaxosValue	c = copy_value(p, v);

	if (c.len == 0)
		return c;
	p->scratch = px_grow(p, p->scratch, &p->cap_scratch, p->n_scratch + 1,
						 sizeof(void *));
	p->scratch[p->n_scratch++] = (void *) c.data;
	return c;
}

/*
 * px_scratch_reset: free the last Ready's copies.
 */
void
px_scratch_reset(PaxosNode *p)
{
	size_t		i;

	for (i = 0; i < p->n_scratch; i++)
		p->opt.alloc.free_fn(p->opt.alloc.ctx, p->scratch[i]);
	p->n_scratch = 0;
}

/*
 * hash_name: FNV-1a over the name's bytes.
 */
static uint64_t
hash_name(PaxosBytes name)
{
	const unsigned char *b = name.data;
	uint64_t	h = 14695981039346656037ULL;
	size_t		i;

	for (i = 0; i < name.len; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

/*
 * slot_of: the slot holding name (hash h) in table, or the empty slot
 * where it would go.
 */
static size_t
slot_of(Instance *const *table, size_t cap, PaxosBytes name, uint64_t h)
{
	size_t		i = (size_t) h & (cap - 1);

	while (table[i] != NULL &&
		   !(table[i]->hash == h && table[i]->acc.instance.len == name.len &&
			 memcmp(table[i]->acc.instance.data, name.data, name.len) == 0))
		i = (i + 1) & (cap - 1);
	return i;
}

/*
 * grow_table: twice the slots (TABLE_MIN at first), every instance
 * re-inserted.
 */
static void
grow_table(PaxosNode *p)
{
	size_t		cap = p->cap_table ? 2 * p->cap_table : TABLE_MIN;
	Instance  **t = p->opt.alloc.alloc_fn(p->opt.alloc.ctx,
										  cap * sizeof(Instance *));
	size_t		i;

	memset(t, 0, cap * sizeof(Instance *));
	for (i = 0; i < p->cap_table; i++)
		if (p->table[i] != NULL)
			t[slot_of(t, cap, p->table[i]->acc.instance,
					  p->table[i]->hash)] = p->table[i];
	if (p->table != NULL)
		p->opt.alloc.free_fn(p->opt.alloc.ctx, p->table);
	p->table = t;
	p->cap_table = cap;
}

/*
 * px_instance_find: the instance named name, or NULL.
 */
Instance *
px_instance_find(const PaxosNode *p, PaxosBytes name)
{
	if (p->cap_table == 0)
		return NULL;
	return p->table[slot_of(p->table, p->cap_table, name, hash_name(name))];
}

/*
 * px_instance: the instance named name (px_name_ok), created empty
 * (nothing promised, nothing accepted) on first use, with its own copy of
 * the name.
 */
Instance *
px_instance(PaxosNode *p, PaxosBytes name)
{
	uint64_t	h = hash_name(name);
	Instance   *in;
	void	   *copy;

	if (2 * (p->n_inst + 1) > p->cap_table)
		grow_table(p);
	in = p->table[slot_of(p->table, p->cap_table, name, h)];
	if (in != NULL)
		return in;
	in = p->opt.alloc.alloc_fn(p->opt.alloc.ctx, sizeof(Instance));
	memset(in, 0, sizeof(*in));
	copy = p->opt.alloc.alloc_fn(p->opt.alloc.ctx, name.len);
	memcpy(copy, name.data, name.len);
	in->acc.instance.data = copy;
	in->acc.instance.len = name.len;
	in->hash = h;
	p->table[slot_of(p->table, p->cap_table, name, h)] = in;
	p->n_inst++;
	return in;
}

/*
 * px_mark_dirty: in's acceptor state changed: persist it in the next
 * Ready (the dirty list spares the Ready a walk over every instance).
 */
void
px_mark_dirty(PaxosNode *p, Instance *in)
{
	if (in->dirty)
		return;
	in->dirty = true;
	p->dirty = px_grow(p, p->dirty, &p->cap_dirty, p->n_dirty + 1,
					   sizeof(Instance *));
	p->dirty[p->n_dirty++] = in;
}

/*
 * free_instance: in and every byte it owns.
 */
static void
free_instance(PaxosNode *p, Instance *in)
{
	int			i;

	for (i = 0; i < PAXOS_LEARN_SLOTS; i++)
		px_value_clear(p, &in->counts[i].value);
	px_value_clear(p, &in->acc.value);
	px_value_clear(p, &in->learned_value);
	px_value_clear(p, &in->fast_value);
	p->opt.alloc.free_fn(p->opt.alloc.ctx, (void *) in->acc.instance.data);
	p->opt.alloc.free_fn(p->opt.alloc.ctx, in);
}

/*
 * px_store_free: every instance, proposal and scratch copy (paxos_free).
 */
void
px_store_free(PaxosNode *p)
{
	size_t		i;

	while (p->n_props > 0)
		px_proposal_free(p, p->props[p->n_props - 1]);
	for (i = 0; i < p->cap_table; i++)
		if (p->table[i] != NULL)
			free_instance(p, p->table[i]);
	px_scratch_reset(p);
}

/*
 * table_remove: empty slot i and move later entries of its probe run back
 * (no tombstones: a lookup stops at the first empty slot, so an entry whose
 * home slot is at or before the hole must not stay behind it).
 */
static void
table_remove(PaxosNode *p, size_t i)
{
	size_t		mask = p->cap_table - 1;
	size_t		j = i;

	p->table[i] = NULL;
	for (;;)
	{
		size_t		home;

		j = (j + 1) & mask;
		if (p->table[j] == NULL)
			break;
		home = (size_t) p->table[j]->hash & mask;
		/* stays if its home lies cyclically in (i, j] */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		p->table[i] = p->table[j];
		p->table[j] = NULL;
		i = j;
	}
	p->n_inst--;
}

/*
 * paxos_forget: drop instance name from the node's memory (the caller
 * drops its acceptor record from disk, and answers for the instance from
 * then on: see paxos.h).  PAXOS_ERR_BUSY while this node runs an
 * operation on it or its record waits in the current Ready;
 * PAXOS_ERR_INVALID if the node does not know it.
 */
int
paxos_forget(PaxosNode *p, PaxosBytes name)
{
	size_t		i;
	Instance   *in;

	if (p->cap_table == 0 || !px_name_ok(name))
		return PAXOS_ERR_INVALID;
	i = slot_of(p->table, p->cap_table, name, hash_name(name));
	in = p->table[i];
	if (in == NULL)
		return PAXOS_ERR_INVALID;
	if (in->prop != NULL || in->dirty)
		return PAXOS_ERR_BUSY;
	table_remove(p, i);
	free_instance(p, in);
	return PAXOS_OK;
}

/*
 * paxos_knows: whether the node holds state for instance name.
 */
bool
paxos_knows(const PaxosNode *p, PaxosBytes name)
{
	return px_name_ok(name) && px_instance_find(p, name) != NULL;
}
