/*-------------------------------------------------------------------------
 *
 * sim_check.c
 *	  The simulator's safety checks, run as the schedule goes: election
 *	  safety, log matching, leader completeness and state-machine safety.
 *
 * The checks compare every node against cluster-wide records kept here,
 * not against what the nodes believe, so a wrong node cannot vouch for
 * itself:
 *	- leader_of[term]: the first node seen leading each term;
 *	- a table (index, term) -> hash of the whole log prefix ending there,
 *	  filled as entries reach disks: two disks holding the same (index,
 *	  term) with different prefixes break log matching;
 *	- committed[index]: the entry first seen committed at index and the
 *	  term in which that happened: no other entry may ever be committed
 *	  there, and every leader of a later term must hold it;
 *	- applied[index]: the entry first applied at index by any node: every
 *	  node must apply the same one.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/*
 * sim_violation: record the first violated property of the run.
 */
void
sim_violation(Sim *S, const char *property, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	sim_record_violation(&S->failed, S->property, sizeof(S->property),
						 S->detail, sizeof(S->detail), property, fmt, ap);
	va_end(ap);
}

/*
 * sim_entry_hash: hash of an entry's type and payload (not its position).
 */
uint64_t
sim_entry_hash(const RaftEntry *e)
{
	uint64_t	h = 1469598103934665603ULL ^ (uint64_t) e->type;
	size_t		i;

	for (i = 0; i < e->len; i++)
		h = (h ^ e->data[i]) * 1099511628211ULL;
	return h;
}

/*
 * sim_check_reset, sim_check_free: empty records for a new seed.
 */
void
sim_check_reset(Sim *S)
{
	S->cap_rec = 1024;
	S->committed = calloc(S->cap_rec, sizeof(IndexRec));
	S->applied = calloc(S->cap_rec, sizeof(IndexRec));
	S->max_committed = 0;
	S->cap_leader_of = 256;
	S->leader_of = calloc(S->cap_leader_of, sizeof(uint64_t));
	S->px_cap = 4096;
	S->px_n = 0;
	S->px_keys = calloc(S->px_cap * 2, sizeof(uint64_t));
	S->px_vals = calloc(S->px_cap, sizeof(uint64_t));
}

void
sim_check_free(Sim *S)
{
	free(S->committed);
	free(S->applied);
	free(S->leader_of);
	free(S->px_keys);
	free(S->px_vals);
}

/*
 * rec_reserve: make committed[] and applied[] cover index.
 */
static void
rec_reserve(Sim *S, uint64_t index)
{
	size_t		old = S->cap_rec;

	if (index < old)
		return;
	while (S->cap_rec <= index)
		S->cap_rec *= 2;
	S->committed = sim_xrealloc(S->committed, S->cap_rec * sizeof(IndexRec));
	S->applied = sim_xrealloc(S->applied, S->cap_rec * sizeof(IndexRec));
	memset(S->committed + old, 0, (S->cap_rec - old) * sizeof(IndexRec));
	memset(S->applied + old, 0, (S->cap_rec - old) * sizeof(IndexRec));
}

/*
 * px_slot: open-addressing slot of (index, term) in the prefix table.
 */
static size_t
px_slot(Sim *S, uint64_t index, uint64_t term)
{
	size_t		i = (size_t) ((index * 0x9E3779B97F4A7C15ULL) ^ (term * 0xC2B2AE3D27D4EB4FULL));

	i &= S->px_cap - 1;
	while (S->px_keys[2 * i] != 0 &&
		   (S->px_keys[2 * i] != index || S->px_keys[2 * i + 1] != term))
		i = (i + 1) & (S->px_cap - 1);
	return i;
}

/*
 * sim_prefix_lookup: the prefix hash recorded for (index, term).
 */
uint64_t
sim_prefix_lookup(Sim *S, uint64_t index, uint64_t term, bool *found)
{
	size_t		i = px_slot(S, index, term);

	*found = S->px_keys[2 * i] != 0;
	return *found ? S->px_vals[i] : 0;
}

/*
 * px_insert: record (index, term) -> prefix, growing the table if needed.
 */
static void
px_insert(Sim *S, uint64_t index, uint64_t term, uint64_t prefix)
{
	size_t		i;

	if (2 * (S->px_n + 1) > S->px_cap)
	{
		uint64_t   *ok = S->px_keys;
		uint64_t   *ov = S->px_vals;
		size_t		oc = S->px_cap;
		size_t		j;

		S->px_cap *= 2;
		S->px_keys = calloc(S->px_cap * 2, sizeof(uint64_t));
		S->px_vals = calloc(S->px_cap, sizeof(uint64_t));
		for (j = 0; j < oc; j++)
			if (ok[2 * j] != 0)
			{
				i = px_slot(S, ok[2 * j], ok[2 * j + 1]);
				S->px_keys[2 * i] = ok[2 * j];
				S->px_keys[2 * i + 1] = ok[2 * j + 1];
				S->px_vals[i] = ov[j];
			}
		free(ok);
		free(ov);
	}
	i = px_slot(S, index, term);
	S->px_keys[2 * i] = index;
	S->px_keys[2 * i + 1] = term;
	S->px_vals[i] = prefix;
	S->px_n++;
}

/*
 * sim_check_persist: entry d reaches node n's disk after a prefix whose
 * hash is prev.  Log matching: any disk holding the same index and term
 * must hold the same prefix.
 */
void
sim_check_persist(Sim *S, SimNode *n, DiskEntry *d, uint64_t prev)
{
	uint64_t	h = sim_entry_hash(&d->e);
	uint64_t	old;
	bool		found;

	d->prefix = (prev ^ (h + 0x9E3779B97F4A7C15ULL + (prev << 6) + (prev >> 2)))
		* 1099511628211ULL + d->e.term * 31 + d->e.index;
	old = sim_prefix_lookup(S, d->e.index, d->e.term, &found);
	if (!found)
		px_insert(S, d->e.index, d->e.term, d->prefix);
	else if (old != d->prefix)
		sim_violation(S, "log-matching",
					  "node %llu persisted index %llu term %llu with a log "
					  "prefix that differs from another node's with the same "
					  "index and term",
					  (unsigned long long) n->id,
					  (unsigned long long) d->e.index,
					  (unsigned long long) d->e.term);
}

/*
 * sim_check_apply: node n applies e.  State-machine safety: in index
 * order, and the same entry at each index on every node, which must be
 * the committed one.
 */
void
sim_check_apply(Sim *S, SimNode *n, const RaftEntry *e)
{
	uint64_t	h = sim_entry_hash(e);
	IndexRec   *a;
	IndexRec   *c;

	if (e->index != n->applied + 1)
	{
		sim_violation(S, "state-machine-safety",
					  "node %llu applied index %llu after %llu",
					  (unsigned long long) n->id,
					  (unsigned long long) e->index,
					  (unsigned long long) n->applied);
		return;
	}
	rec_reserve(S, e->index);
	a = &S->applied[e->index];
	c = &S->committed[e->index];
	if (a->term == 0)
	{
		a->term = e->term;
		a->hash = h;
	}
	else if (a->term != e->term || a->hash != h)
		sim_violation(S, "state-machine-safety",
					  "node %llu applied (index %llu, term %llu) where another "
					  "node applied term %llu",
					  (unsigned long long) n->id,
					  (unsigned long long) e->index,
					  (unsigned long long) e->term,
					  (unsigned long long) a->term);
	if (c->term != 0 && (c->term != e->term || c->hash != h))
		sim_violation(S, "state-machine-safety",
					  "node %llu applied (index %llu, term %llu) but term %llu "
					  "was committed there",
					  (unsigned long long) n->id,
					  (unsigned long long) e->index,
					  (unsigned long long) e->term,
					  (unsigned long long) c->term);
}

/*
 * sim_check_commit: node n reports commit index commit.  The entries up
 * to it are recorded as committed (first time) or compared (after).
 */
void
sim_check_commit(Sim *S, SimNode *n, uint64_t commit)
{
	uint64_t	i;
	uint64_t	from = raft_first_index(n->r);

	rec_reserve(S, commit);
	for (i = commit; i >= from && i > 0; i--)
	{
		const RaftEntry *e = raft_entry_at(n->r, i);
		IndexRec   *c = &S->committed[i];

		if (e == NULL)
			break;
		if (c->term == 0)
		{
			c->term = e->term;
			c->hash = sim_entry_hash(e);
			c->commit_term = raft_term(n->r);
			S->n_conf += e->type == RAFT_ENTRY_CONF;
			if (i > S->max_committed)
				S->max_committed = i;
		}
		else if (c->term != e->term || c->hash != sim_entry_hash(e))
		{
			sim_violation(S, "state-machine-safety",
						  "node %llu committed (index %llu, term %llu) where "
						  "term %llu was committed before",
						  (unsigned long long) n->id,
						  (unsigned long long) i,
						  (unsigned long long) e->term,
						  (unsigned long long) c->term);
			return;
		}
		else
			break;				/* the rest was compared before */
	}
}

/*
 * check_completeness: leader n of term t must hold every entry committed
 * in an earlier term.
 */
static void
check_completeness(Sim *S, SimNode *n, uint64_t t)
{
	uint64_t	i;
	uint64_t	first = raft_first_index(n->r);

	for (i = 1; i <= S->max_committed; i++)
	{
		IndexRec   *c = &S->committed[i];
		const RaftEntry *e;

		if (c->term == 0 || c->commit_term >= t || i < first)
			continue;
		e = raft_entry_at(n->r, i);
		if (e == NULL || e->term != c->term)
		{
			sim_violation(S, "leader-completeness",
						  "node %llu leads term %llu without the entry "
						  "(index %llu, term %llu) committed in term %llu",
						  (unsigned long long) n->id,
						  (unsigned long long) t,
						  (unsigned long long) i,
						  (unsigned long long) c->term,
						  (unsigned long long) c->commit_term);
			return;
		}
	}
}

/*
 * sim_check_leaders: election safety (one leader per term, over the whole
 * run) and leader completeness for leaders not checked yet.
 */
void
sim_check_leaders(Sim *S)
{
	int			i;

	for (i = 0; i < SIM_MAX_SLOTS; i++)
	{
		SimNode    *n = &S->nodes[i];
		uint64_t	t;

		if (n->state != NODE_UP || raft_role(n->r) != RAFT_LEADER)
			continue;
		t = raft_term(n->r);
		while (t >= S->cap_leader_of)
		{
			S->leader_of = sim_xrealloc(S->leader_of,
										2 * S->cap_leader_of * sizeof(uint64_t));
			memset(S->leader_of + S->cap_leader_of, 0,
				   S->cap_leader_of * sizeof(uint64_t));
			S->cap_leader_of *= 2;
		}
		if (S->leader_of[t] == 0)
		{
			S->leader_of[t] = n->id;
			S->n_elections++;
			if (S->verbose)
				printf("[%llu] node %llu leads term %llu\n",
					   (unsigned long long) S->now,
					   (unsigned long long) n->id, (unsigned long long) t);
		}
		else if (S->leader_of[t] != n->id)
			sim_violation(S, "election-safety",
						  "nodes %llu and %llu both led term %llu",
						  (unsigned long long) S->leader_of[t],
						  (unsigned long long) n->id, (unsigned long long) t);
		if (n->checked_term != t)
		{
			n->checked_term = t;
			check_completeness(S, n, t);
		}
	}
}
