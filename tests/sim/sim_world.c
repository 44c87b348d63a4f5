/*-------------------------------------------------------------------------
 *
 * sim_world.c
 *	  The simulator's world around the servers: the network (drops,
 *	  duplicates, delays, partitions), the clients and the faults of each
 *	  tick (crashes, restarts, membership changes, leadership transfers).
 *
 * Every random choice comes from the run's seed (S->rng).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "sim_world.h"
#include "../../extension/raft/core/raft_wire.h"

/*
 * sim_slot_of: the slot of node id, or -1.
 */
int
sim_slot_of(uint64_t id)
{
	return (id >= 1 && id <= SIM_MAX_SLOTS) ? (int) id - 1 : -1;
}

/*
 * same_conf: the same members (the arrays' unused slots do not count).
 */
static bool
same_conf(const RaftConfState *a, const RaftConfState *b)
{
	return a->n_voters == b->n_voters && a->n_learners == b->n_learners &&
		memcmp(a->voters, b->voters, b->n_voters * sizeof(uint64_t)) == 0 &&
		memcmp(a->learners, b->learners, b->n_learners * sizeof(uint64_t)) == 0;
}

/*
 * same_message: whether d, decoded, carries every field of m, the original.
 */
static bool
same_message(const RaftMessage *d, const RaftMessage *m)
{
	const RaftSnapshot *ds = d->snapshot,
			   *ms = m->snapshot;

	if (d->type != m->type || d->from != m->from || d->to != m->to ||
		d->term != m->term || d->log_term != m->log_term || d->index != m->index ||
		d->commit != m->commit || d->reject != m->reject || d->force != m->force ||
		d->reject_hint != m->reject_hint || d->ctx != m->ctx ||
		d->lease_tick != m->lease_tick || d->n_entries != m->n_entries ||
		(ds == NULL) != (ms == NULL))
		return false;
	for (size_t i = 0; i < m->n_entries; i++)
		if (d->entries[i].term != m->entries[i].term ||
			d->entries[i].index != m->entries[i].index ||
			d->entries[i].type != m->entries[i].type ||
			d->entries[i].len != m->entries[i].len ||
			(m->entries[i].len > 0 &&
			 memcmp(d->entries[i].data, m->entries[i].data, m->entries[i].len) != 0))
			return false;
	return ms == NULL ||
		(ds->index == ms->index && ds->term == ms->term && ds->len == ms->len &&
		 same_conf(&ds->conf, &ms->conf) &&
		 (ms->len == 0 || memcmp(ds->data, ms->data, ms->len) == 0));
}

/*
 * wire_copy: m as the network carries it: encoded with raft_wire_encode
 * and decoded again into nm, so that every message the simulator delivers
 * went through the byte form the nodes use; a field lost on the way is a
 * violation.
 */
static void
wire_copy(Sim *S, NetMsg *nm, const RaftMessage *m)
{
	size_t		size = raft_wire_size(m),
				used = 0;
	RaftWireError e;
	RaftEntry  *entries;
	RaftSnapshot *snap;

	/* one block: the entry array, the snapshot, then the bytes */
	entries = sim_xmalloc(m->n_entries * sizeof(RaftEntry) + sizeof(RaftSnapshot) + size);
	snap = (RaftSnapshot *) (entries + m->n_entries);
	nm->wire = (uint8_t *) (snap + 1);
	if (raft_wire_encode(m, nm->wire) != size)
		sim_violation(S, "wire", "raft_wire_encode wrote another size than raft_wire_size");
	e = raft_wire_decode(nm->wire, size, &nm->m, entries, m->n_entries, snap, &used);
	nm->block = entries;
	if (e != RAFT_WIRE_OK || used != size || !same_message(&nm->m, m))
		sim_violation(S, "wire", "a %d message did not survive encoding (%s, %zu of %zu bytes)",
					  (int) m->type, raft_wire_strerror(e), used, size);
}

/*
 * sim_msg_free: release a message of the network.
 */
void
sim_msg_free(NetMsg *nm)
{
	free(nm->block);
}

/*
 * net_enqueue: put a copy of m on the wire, arriving after delay ticks.
 */
static void
net_enqueue(Sim *S, const RaftMessage *m, int delay)
{
	if (S->n_net == S->cap_net)
	{
		S->cap_net = S->cap_net ? S->cap_net * 2 : 256;
		S->net = sim_xrealloc(S->net, S->cap_net * sizeof(NetMsg));
	}
	S->net[S->n_net].at = S->now + delay;
	wire_copy(S, &S->net[S->n_net], m);
	S->n_net++;
}

/*
 * sim_net_send: the network takes m: maybe drops it, maybe duplicates it,
 * delays each copy at random (which reorders).
 */
void
sim_net_send(Sim *S, const RaftMessage *m)
{
	int			a = sim_slot_of(m->from);
	int			b = sim_slot_of(m->to);

	if (a < 0 || b < 0 || S->cut[a][b])
		return;
	if (S->faults_on && sim_rand_unit(&S->rng) < S->drop_p)
		return;
	net_enqueue(S, m, 1 + (int) sim_rand_below(&S->rng, S->delay_max));
	if (S->faults_on && sim_rand_unit(&S->rng) < S->dup_p)
		net_enqueue(S, m, 1 + (int) sim_rand_below(&S->rng, 2 * S->delay_max));
}

/*
 * sim_net_deliver: hand every message due by now to its node, in send order;
 * messages across a cut link or to a stopped node are lost.
 */
void
sim_net_deliver(Sim *S)
{
	size_t		keep = 0;
	size_t		i;

	for (i = 0; i < S->n_net; i++)
	{
		NetMsg	   *nm = &S->net[i];
		int			a = sim_slot_of(nm->m.from);
		int			b = sim_slot_of(nm->m.to);

		if (nm->at > S->now)
		{
			S->net[keep++] = *nm;
			continue;
		}
		if (!S->cut[a][b] && S->nodes[b].state == NODE_UP)
			raft_step(S->nodes[b].r, &nm->m);
		sim_msg_free(nm);
	}
	S->n_net = keep;
}

/*
 * sim_find_leader: the slot of the up leader with the highest term, or -1.
 */
int
sim_find_leader(Sim *S)
{
	int			best = -1;
	int			i;

	for (i = 0; i < SIM_MAX_SLOTS; i++)
		if (S->nodes[i].state == NODE_UP &&
			raft_role(S->nodes[i].r) == RAFT_LEADER &&
			(best < 0 || raft_term(S->nodes[i].r) > raft_term(S->nodes[best].r)))
			best = i;
	return best;
}

/*
 * sim_client_done: the client's operation op completed.
 */
void
sim_client_done(Sim *S, int client, int op)
{
	SimClient  *c = &S->clients[client];

	if (c->op != op)
		return;
	c->op = -1;
	c->next_at = S->now + sim_rand_below(&S->rng, 4);
	if (S->ops[op].after_heal)
		c->done_after_heal++;
}

/*
 * client_pick_node: where client c sends its next request: its last
 * leader, else a random running node, redirected once to the leader that
 * node knows of.
 */
static int
client_pick_node(Sim *S, SimClient *c)
{
	int			slot = c->leader_slot;
	int			tries;
	int			lead;

	for (tries = 0; (slot < 0 || S->nodes[slot].state != NODE_UP) && tries < 16; tries++)
		slot = (int) sim_rand_below(&S->rng, SIM_MAX_SLOTS);
	if (slot < 0 || S->nodes[slot].state != NODE_UP)
		return -1;
	lead = sim_slot_of(raft_leader(S->nodes[slot].r));
	if (lead >= 0 && S->nodes[lead].state == NODE_UP)
		slot = lead;
	return slot;
}

/*
 * client_submit: start a new put or get on a node.
 */
static void
client_submit(Sim *S, int ci, bool after_heal)
{
	SimClient  *c = &S->clients[ci];
	int			slot = client_pick_node(S, c);
	SimOp	   *o;
	RaftNode   *r;
	int			rc;

	if (slot < 0 || S->n_ops >= SIM_MAX_OPS)
		return;
	r = S->nodes[slot].r;
	o = &S->ops[S->n_ops];
	memset(o, 0, sizeof(*o));
	o->client = ci;
	o->key = (int) sim_rand_below(&S->rng, SIM_KEYS);
	o->kind = sim_rand_below(&S->rng, 2) ? LIN_PUT : LIN_GET;
	o->slot = slot;
	o->after_heal = after_heal;
	o->call = ++S->evclock;
	if (o->kind == LIN_PUT)
	{
		uint8_t		buf[13];
		uint32_t	op = (uint32_t) S->n_ops;

		o->value = ++S->next_value;
		memcpy(buf, &op, 4);
		buf[4] = (uint8_t) o->key;
		memcpy(buf + 5, &o->value, 8);
		rc = raft_propose(r, buf, sizeof(buf), NULL);
	}
	else
	{
		rc = RAFT_ERR_NO_LEASE;
		if (S->lease_reads && sim_rand_below(&S->rng, 2))
			rc = raft_read_lease(r, (uint64_t) S->n_ops);
		S->n_lease_reads += rc == RAFT_OK;
		if (rc == RAFT_ERR_NO_LEASE)
		{
			rc = raft_read_index(r, (uint64_t) S->n_ops);
			S->n_index_reads += rc == RAFT_OK;
		}
	}
	if (rc != RAFT_OK)
	{
		/* refused: certainly not executed, so not part of the history */
		c->leader_slot = -1;
		c->next_at = S->now + 1 + sim_rand_below(&S->rng, 4);
		return;
	}
	o->status = OP_PENDING;
	c->leader_slot = slot;
	c->op = S->n_ops;
	c->deadline = S->now + S->client_timeout;
	sim_node_add_waiter(&S->nodes[slot], S->n_ops, o->kind == LIN_GET);
	S->n_ops++;
}

/*
 * sim_client_step: time out or start an operation.
 */
void
sim_client_step(Sim *S, int ci, bool submit, bool after_heal)
{
	SimClient  *c = &S->clients[ci];

	if (c->op >= 0)
	{
		SimOp	   *o = &S->ops[c->op];

		if (S->now < c->deadline)
			return;
		o->status = OP_UNKNOWN;
		o->ret = LIN_INF;
		if (S->nodes[o->slot].state == NODE_UP)
			sim_node_drop_waiter(&S->nodes[o->slot], c->op);
		c->op = -1;
		c->leader_slot = -1;
		return;
	}
	if (submit && S->now >= c->next_at)
		client_submit(S, ci, after_heal);
}

/*
 * fault_partition: heal, or cut the network in a new way: a symmetric
 * split, a few one-way links, or the leader isolated.
 */
static void
fault_partition(Sim *S)
{
	int			kind = (int) sim_rand_below(&S->rng, 5);
	int			a;
	int			b;
	int			k;

	memset(S->cut, 0, sizeof(S->cut));
	if (kind <= 1)
	{
		if (S->verbose)
			printf("[%llu] network healed\n", (unsigned long long) S->now);
		return;
	}
	if (kind == 2)
	{
		bool		side[SIM_MAX_SLOTS];

		for (a = 0; a < SIM_MAX_SLOTS; a++)
			side[a] = sim_rand_below(&S->rng, 2);
		for (a = 0; a < SIM_MAX_SLOTS; a++)
			for (b = 0; b < SIM_MAX_SLOTS; b++)
				S->cut[a][b] = side[a] != side[b];
	}
	else if (kind == 3)
	{
		for (k = 1 + (int) sim_rand_below(&S->rng, 4); k > 0; k--)
		{
			a = (int) sim_rand_below(&S->rng, SIM_MAX_SLOTS);
			b = (int) sim_rand_below(&S->rng, SIM_MAX_SLOTS);
			S->cut[a][b] = true;
		}
	}
	else if ((a = sim_find_leader(S)) >= 0)
	{
		bool		outbound_only = sim_rand_below(&S->rng, 2);

		for (b = 0; b < SIM_MAX_SLOTS; b++)
		{
			S->cut[a][b] = b != a;
			S->cut[b][a] = b != a && !outbound_only;
		}
	}
	if (S->verbose)
		printf("[%llu] network partitioned (kind %d)\n",
			   (unsigned long long) S->now, kind);
}

/*
 * fault_membership: at the leader, add a learner, promote one, or remove
 * a member (never below base_n - 1 voters).
 */
static void
fault_membership(Sim *S)
{
	int			l = sim_find_leader(S);
	RaftNode   *r;
	const RaftConfState *c;
	int			choice = (int) sim_rand_below(&S->rng, 3);
	int			i;
	int			rc;
	uint64_t	index;

	if (l < 0)
		return;
	r = S->nodes[l].r;
	c = raft_conf(r);
	if (choice == 0 && c->n_learners == 0)
	{
		for (i = 0; i < SIM_MAX_SLOTS && S->nodes[i].state != NODE_UNUSED; i++)
			;
		if (i == SIM_MAX_SLOTS)
			return;
		sim_node_start(S, i, true);
		rc = raft_propose_conf_change(r, RAFT_CONF_ADD_LEARNER, i + 1, NULL);
		if (rc != RAFT_OK)
			sim_node_destroy(&S->nodes[i]);
		else if (S->verbose)
			printf("[%llu] propose: add learner %d\n", (unsigned long long) S->now, i + 1);
	}
	else if (choice == 1 && c->n_learners > 0)
	{
		rc = raft_propose_conf_change(r, RAFT_CONF_PROMOTE, c->learners[0], NULL);
		if (rc == RAFT_OK && S->verbose)
			printf("[%llu] propose: promote %llu\n", (unsigned long long) S->now,
				   (unsigned long long) c->learners[0]);
	}
	else if (choice == 2 && S->pending_remove_id == 0)
	{
		int			n = c->n_voters + c->n_learners;
		int			k = (int) sim_rand_below(&S->rng, n);
		uint64_t	id = k < c->n_voters ? c->voters[k] : c->learners[k - c->n_voters];

		if (k < c->n_voters && c->n_voters <= S->base_n - 1)
			return;
		rc = raft_propose_conf_change(r, RAFT_CONF_REMOVE, id, &index);
		if (rc != RAFT_OK)
			return;
		S->pending_remove_id = id;
		S->pending_remove_index = index;
		S->pending_remove_term = raft_term(r);
		if (S->verbose)
			printf("[%llu] propose: remove %llu at %llu\n", (unsigned long long) S->now,
				   (unsigned long long) id, (unsigned long long) index);
	}
}

/*
 * sim_check_retire: once a removal has committed, stop the removed node for
 * good; forget a removal whose entry lost its place.
 */
void
sim_check_retire(Sim *S)
{
	IndexRec   *c;

	if (S->pending_remove_id == 0 || S->pending_remove_index >= S->cap_rec)
		return;
	c = &S->committed[S->pending_remove_index];
	if (c->term == 0)
		return;
	if (c->term == S->pending_remove_term)
		sim_node_crash(S, sim_slot_of(S->pending_remove_id), true);
	S->pending_remove_id = 0;
}

/*
 * sim_faults: this tick's adversity.
 */
void
sim_faults(Sim *S)
{
	int			i;
	int			l;

	if (S->now >= S->next_partition)
	{
		fault_partition(S);
		S->next_partition = S->now + S->partition_every / 2 +
			sim_rand_below(&S->rng, S->partition_every);
	}
	for (i = 0; i < SIM_MAX_SLOTS; i++)
	{
		SimNode    *n = &S->nodes[i];
		double		p = S->crash_p;

		if (n->state == NODE_UP && raft_role(n->r) == RAFT_LEADER)
			p += S->leader_crash_p;
		if (n->state == NODE_UP && sim_rand_unit(&S->rng) < p)
			sim_node_crash(S, i, false);
		else if (n->state == NODE_DOWN && S->now >= n->restart_at)
		{
			sim_node_start(S, i, false);
			if (S->verbose)
				printf("[%llu] node %d restarted\n", (unsigned long long) S->now, i + 1);
		}
	}
	if (sim_rand_below(&S->rng, 300) == 0)
		fault_membership(S);
	if (sim_rand_below(&S->rng, 400) == 0 && (l = sim_find_leader(S)) >= 0)
	{
		const RaftConfState *c = raft_conf(S->nodes[l].r);
		uint64_t	target = c->voters[sim_rand_below(&S->rng, c->n_voters)];

		bool		ok = raft_transfer_leadership(S->nodes[l].r, target) == RAFT_OK;

		S->n_transfers += ok;
		if (ok && S->verbose)
			printf("[%llu] transfer leadership %d -> %llu\n",
				   (unsigned long long) S->now, l + 1, (unsigned long long) target);
	}
}
