/*-------------------------------------------------------------------------
 *
 * sim_node.c
 *	  One simulated server: its disk (hard state, snapshot, log), its
 *	  key-value state machine, crash and restart, and the Ready loop that
 *	  persists, sends and applies in the order raft.h prescribes.
 *
 * A crash frees the Raft node and everything volatile; a restart rebuilds
 * it from the disk alone.  A node's Ready is not always handled in the
 * tick it appears (ready_p), so a crash can fall between a state change
 * and its persistence, as on a real machine.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "sim_world.h"

/*
 * disk_truncate: drop disk entries from index from on.
 */
static void
disk_truncate(SimNode *n, uint64_t from)
{
	while (n->n_ents > 0 && n->ents[n->n_ents - 1].e.index >= from)
		free(n->ents[--n->n_ents].e.data);
}

/*
 * disk_prefix_before: prefix hash of the disk log up to index - 1.
 */
static uint64_t
disk_prefix_before(SimNode *n, uint64_t index)
{
	if (n->n_ents > 0 && n->ents[n->n_ents - 1].e.index == index - 1)
		return n->ents[n->n_ents - 1].prefix;
	return n->snap_prefix;
}

/*
 * disk_append: persist e (after truncating whatever is at or after it).
 */
static void
disk_append(Sim *S, SimNode *n, const RaftEntry *e)
{
	DiskEntry  *d;
	uint64_t	prev;

	disk_truncate(n, e->index);
	if (e->index != (n->n_ents ? n->ents[n->n_ents - 1].e.index : n->snap.index) + 1)
	{
		sim_violation(S, "log-matching", "node %llu persisted index %llu "
					  "leaving a gap in its log",
					  (unsigned long long) n->id, (unsigned long long) e->index);
		return;
	}
	prev = disk_prefix_before(n, e->index);
	if (n->n_ents == n->cap_ents)
	{
		n->cap_ents = n->cap_ents ? n->cap_ents * 2 : 64;
		n->ents = sim_xrealloc(n->ents, n->cap_ents * sizeof(DiskEntry));
	}
	d = &n->ents[n->n_ents++];
	d->e = *e;
	d->e.data = sim_xmalloc(e->len);
	if (e->len > 0)
		memcpy(d->e.data, e->data, e->len);
	sim_check_persist(S, n, d, prev);
}

/*
 * disk_set_snapshot: persist snapshot s; entries it covers go.  With
 * drop_all (InstallSnapshot) the whole old log goes, as the core did.
 */
static void
disk_set_snapshot(Sim *S, SimNode *n, const RaftSnapshot *s, bool drop_all)
{
	size_t		keep = 0;
	size_t		i;
	bool		found;
	uint64_t	px = 0;

	for (i = 0; i < n->n_ents; i++)
		if (n->ents[i].e.index == s->index && n->ents[i].e.term == s->term)
			px = n->ents[i].prefix;
	if (px == 0)
		px = sim_prefix_lookup(S, s->index, s->term, &found);
	for (i = 0; i < n->n_ents; i++)
	{
		if (drop_all || n->ents[i].e.index <= s->index)
			free(n->ents[i].e.data);
		else
			n->ents[keep++] = n->ents[i];
	}
	n->n_ents = keep;
	free(n->snap.data);
	n->snap = *s;
	n->snap.data = sim_xmalloc(s->len);
	memcpy(n->snap.data, s->data, s->len);
	n->snap_prefix = px;
}

/*
 * node_free_volatile: forget everything a crash loses.
 */
static void
node_free_volatile(SimNode *n)
{
	raft_free(n->r);
	n->r = NULL;
	free(n->puts);
	free(n->reads);
	n->puts = NULL;
	n->reads = NULL;
	n->n_puts = n->n_reads = 0;
}

/*
 * sim_node_start: boot slot i, fresh or from its disk.
 */
void
sim_node_start(Sim *S, int i, bool fresh)
{
	SimNode    *n = &S->nodes[i];
	RaftOptions opt = S->ropt;
	RaftRestore rs;
	RaftEntry  *ents;
	size_t		k;

	n->id = i + 1;
	opt.id = n->id;
	opt.seed = sim_rand(&S->rng);
	opt.alloc = sim_allocator();
	memset(&n->kv, 0, sizeof(n->kv));
	n->applied = 0;
	n->checked_term = 0;
	n->puts = sim_xmalloc(SIM_CLIENTS * 4 * sizeof(Waiter));
	n->reads = sim_xmalloc(SIM_CLIENTS * 4 * sizeof(Waiter));
	n->n_puts = n->n_reads = 0;
	if (fresh)
	{
		n->r = raft_new(&opt, NULL);
		n->state = NODE_UP;
		return;
	}
	memset(&rs, 0, sizeof(rs));
	rs.hs = n->hs;
	rs.snapshot = n->snap.index > 0 ? &n->snap : NULL;
	ents = sim_xmalloc((n->n_ents + 1) * sizeof(RaftEntry));
	for (k = 0; k < n->n_ents; k++)
		ents[k] = n->ents[k].e;
	rs.entries = ents;
	rs.n_entries = n->n_ents;
	n->r = raft_new(&opt, &rs);
	free(ents);
	if (n->snap.index > 0)
	{
		memcpy(&n->kv, n->snap.data, sizeof(Kv));
		n->applied = n->snap.index;
	}
	n->state = NODE_UP;
}

/*
 * sim_node_crash: stop slot i; with retire it never comes back.
 */
void
sim_node_crash(Sim *S, int i, bool retire)
{
	SimNode    *n = &S->nodes[i];

	if (n->state == NODE_UP)
		node_free_volatile(n);
	n->state = retire ? NODE_RETIRED : NODE_DOWN;
	n->restart_at = S->now + 1 + sim_rand_below(&S->rng, S->max_down);
	if (S->verbose)
		printf("[%llu] node %llu %s\n", (unsigned long long) S->now,
			   (unsigned long long) n->id, retire ? "retired" : "crashed");
}

/*
 * sim_node_destroy: release a slot's disk at the end of a run.
 */
void
sim_node_destroy(SimNode *n)
{
	if (n->state == NODE_UP)
		node_free_volatile(n);
	disk_truncate(n, 0);
	free(n->ents);
	free(n->snap.data);
	memset(n, 0, sizeof(*n));
}

/*
 * complete_op: client operation op finished now with value (gets).
 */
static void
complete_op(Sim *S, int op, int64_t value)
{
	SimOp	   *o = &S->ops[op];

	if (o->status != OP_PENDING)
		return;
	o->status = OP_OK;
	o->ret = ++S->evclock;
	if (o->kind == LIN_GET)
		o->value = value;
	sim_client_done(S, o->client, op);
}

/*
 * kv_apply: apply a committed entry to the state machine; a put of ours
 * answers its client.
 */
static void
kv_apply(Sim *S, SimNode *n, const RaftEntry *e)
{
	uint32_t	op;
	int			key;
	int64_t		value;
	int			k;

	sim_check_apply(S, n, e);
	n->applied = e->index;
	if (e->type != RAFT_ENTRY_NORMAL || e->len != 13)
		return;
	memcpy(&op, e->data, 4);
	key = e->data[4];
	memcpy(&value, e->data + 5, 8);
	n->kv.val[key] = value;
	n->kv.ops[op / 8] |= 1 << (op % 8);
	for (k = 0; k < n->n_puts; k++)
		if (n->puts[k].op == (int) op)
		{
			complete_op(S, op, 0);
			n->puts[k] = n->puts[--n->n_puts];
			break;
		}
}

/*
 * serve_reads: answer the reads whose index the state machine reached.
 */
static void
serve_reads(Sim *S, SimNode *n)
{
	int			k = 0;

	while (k < n->n_reads)
	{
		Waiter	   *w = &n->reads[k];

		if (w->index != UINT64_MAX && w->index <= n->applied)
		{
			complete_op(S, w->op, n->kv.val[S->ops[w->op].key]);
			*w = n->reads[--n->n_reads];
		}
		else
			k++;
	}
}

/*
 * sim_node_ready: handle node n's Ready batches: persist, then send, then
 * apply, then advance.
 */
void
sim_node_ready(Sim *S, int slot)
{
	SimNode    *n = &S->nodes[slot];
	RaftReady	rd;
	size_t		i;
	int			k;
	int			rounds = 0;

	while (n->state == NODE_UP && raft_has_ready(n->r) && !S->failed)
	{
		if (++rounds > 1000)
		{
			sim_violation(S, "ready-loop", "node %llu has a Ready after "
						  "1000 rounds in one tick", (unsigned long long) n->id);
			return;
		}
		raft_ready(n->r, &rd);
#ifdef RAFT_MUTANT_SEND_BEFORE_PERSIST
		/* MUTANT (of the caller): send, then crash before the disk write */
		for (i = 0; i < rd.n_msgs; i++)
			sim_net_send(S, &rd.msgs[i]);
		if (S->faults_on && rd.n_msgs > 0 && sim_rand_below(&S->rng, 50) == 0)
		{
			sim_node_crash(S, slot, false);
			return;
		}
#endif
		if (rd.snapshot != NULL)
		{
			disk_set_snapshot(S, n, rd.snapshot, true);
			S->n_snapshots++;
		}
		for (i = 0; i < rd.n_entries; i++)
			disk_append(S, n, &rd.entries[i]);
		if (rd.hs_changed)
		{
			if (rd.hs.term < n->hs.term)
				sim_violation(S, "election-safety", "node %llu term went back",
							  (unsigned long long) n->id);
			n->hs = rd.hs;
		}
#ifndef RAFT_MUTANT_SEND_BEFORE_PERSIST
		for (i = 0; i < rd.n_msgs; i++)
			sim_net_send(S, &rd.msgs[i]);
#endif
		if (rd.snapshot != NULL)
		{
			memcpy(&n->kv, rd.snapshot->data, sizeof(Kv));
			n->applied = rd.snapshot->index;
		}
		for (i = 0; i < rd.n_committed; i++)
			kv_apply(S, n, &rd.committed[i]);
		for (i = 0; i < rd.n_reads; i++)
			for (k = 0; k < n->n_reads; k++)
				if (n->reads[k].op == (int) rd.reads[i].ctx)
					n->reads[k].index = rd.reads[i].index;
		serve_reads(S, n);
		raft_advance(n->r, &rd);
		sim_check_commit(S, n, raft_commit_index(n->r));
	}
	if (n->state == NODE_UP && !S->failed &&
		n->applied >= raft_first_index(n->r) + S->compact_every)
	{
		raft_compact(n->r, n->applied, &n->kv, sizeof(Kv));
		disk_set_snapshot(S, n, raft_snapshot(n->r), false);
	}
}

/*
 * sim_node_add_waiter: remember that op waits on node n (put or read).
 */
void
sim_node_add_waiter(SimNode *n, int op, bool is_read)
{
	Waiter	   *w = is_read ? &n->reads[n->n_reads++] : &n->puts[n->n_puts++];

	w->op = op;
	w->index = UINT64_MAX;
}

/*
 * sim_node_drop_waiter: the client gave up on op: stop tracking it here.
 */
void
sim_node_drop_waiter(SimNode *n, int op)
{
	int			k;

	for (k = 0; k < n->n_puts; k++)
		if (n->puts[k].op == op)
			n->puts[k--] = n->puts[--n->n_puts];
	for (k = 0; k < n->n_reads; k++)
		if (n->reads[k].op == op)
			n->reads[k--] = n->reads[--n->n_reads];
}
