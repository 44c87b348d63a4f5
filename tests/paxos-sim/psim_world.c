/*-------------------------------------------------------------------------
 *
 * psim_world.c
 *	  The Paxos simulator's world: nodes with disks, an adversarial
 *	  network, faults, register clients and decree proposers.
 *
 * Every node is proposer, acceptor and learner.  A node's Ready is handled
 * at once: its round and acceptor records go to its disk (and the checker
 * looks at the acceptors' disks), then its messages enter the network,
 * where they may be dropped, duplicated, delayed (hence reordered) or cut
 * by a partition.  A crash loses everything but the disk, and may strike
 * between a persist and the sends that follow it.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psim.h"
#include "psim_world.h"

#define TRACE(S, ...) do { if ((S)->verbose) printf(__VA_ARGS__); } while (0)
#define DECREE_TAG	(1ULL << 62)

/*
 * ps_allocator: the shared simulator allocator, as the Paxos core's type.
 */
PaxosAllocator
ps_allocator(void)
{
	RaftAllocator r = sim_allocator();
	PaxosAllocator a;

	a.alloc_fn = r.alloc_fn;
	a.realloc_fn = r.realloc_fn;
	a.free_fn = r.free_fn;
	a.ctx = r.ctx;
	return a;
}

/*
 * ps_msg_pack: m as it travels the simulated network (name and value
 * decoded, as the core's bytes are valid only until its advance); false
 * if its name or value is not one the simulator made.
 */
bool
ps_msg_pack(const PaxosMessage *m, PsMsg *out)
{
	out->m = *m;
	memset(&out->m.instance, 0, sizeof(out->m.instance));
	memset(&out->m.value, 0, sizeof(out->m.value));
	out->x = ps_inst_index(m->instance);
	return out->x >= 0 && ps_decode(m->value, &out->value);
}

/*
 * ps_msg_unpack: the message in carries, its value's bytes in buf
 * (PS_VALUE_MAX bytes).
 */
void
ps_msg_unpack(const PsMsg *in, PaxosMessage *m, unsigned char *buf)
{
	*m = in->m;
	m->instance = ps_inst_name(in->x);
	m->value = ps_encode(in->value, buf);
}

/*
 * restore: node i's disk handed back to its new core.
 */
static void
restore(PSim *S, int i)
{
	PsNode	   *n = &S->nodes[i];
	PaxosAcceptorState recs[PS_INSTANCES];
	static unsigned char bufs[PS_INSTANCES][PS_VALUE_MAX];
	size_t		k = 0;
	int			x;

	for (x = 0; x < PS_INSTANCES; x++)
	{
		if (!n->disk[x].used)
			continue;
		recs[k].instance = ps_inst_name(x);
		recs[k].promised = n->disk[x].promised;
		recs[k].accepted = n->disk[x].accepted;
		recs[k].value = ps_encode(n->disk[x].value, bufs[x]);
		k++;
	}
	paxos_restore(n->px, n->round, recs, k);
}

/*
 * ps_node_start: (re)create node i's core from its disk.
 */
void
ps_node_start(PSim *S, int i)
{
	PsNode	   *n = &S->nodes[i];
	PaxosOptions o;
	int			j;

	memset(&o, 0, sizeof(o));
	o.id = i + 1;
	o.n_nodes = S->n;
	for (j = 0; j < S->n; j++)
		o.nodes[j] = j + 1;
	o.timeout = S->timeout;
	o.backoff = S->backoff;
	o.seed = sim_rand(&S->rng);
	o.alloc = ps_allocator();
	n->px = paxos_new(&o);
	restore(S, i);
	n->up = true;
	n->decree_inst = 0;
	TRACE(S, "%llu: node %d starts (round %llu)\n",
		  (unsigned long long) S->now, i + 1, (unsigned long long) n->round);
}

/*
 * ps_node_crash: node i loses its memory; it restarts after a while.
 */
void
ps_node_crash(PSim *S, int i)
{
	PsNode	   *n = &S->nodes[i];

	paxos_free(n->px);
	n->px = NULL;
	n->up = false;
	n->restart_at = S->now + 1 + sim_rand_below(&S->rng, S->max_down);
	S->crashes++;
	TRACE(S, "%llu: node %d crashes\n", (unsigned long long) S->now, i + 1);
}

/*
 * send: m into the network, unless lost; maybe twice.
 */
static void
send(PSim *S, const PaxosMessage *m)
{
	int			copies = 1;
	PsMsg		pm;

	if (!ps_msg_pack(m, &pm))
	{
		ps_violation(S, "message-bytes", "node %llu sent a message whose "
					 "name or value bytes are not ones the clients gave",
					 (unsigned long long) m->from);
		return;
	}
	if (S->faults_on && sim_rand_unit(&S->rng) < S->drop_p)
		return;
	if (S->faults_on && sim_rand_unit(&S->rng) < S->dup_p)
		copies = 2;
	while (copies-- > 0)
	{
		S->net = sim_xrealloc(S->net, (S->n_net + 1) * sizeof(PsMsg));
		S->net[S->n_net] = pm;
		S->net[S->n_net].at = S->now + 1 + sim_rand_below(&S->rng, S->delay_max);
		S->n_net++;
	}
}

/*
 * persist: the Ready's round and acceptor records onto node i's disk;
 * the checker looks at every instance written.
 */
static void
persist(PSim *S, int i, const PaxosReady *rd)
{
	PsNode	   *n = &S->nodes[i];
	size_t		k;

	if (rd->round_changed)
		n->round = rd->round;
	for (k = 0; k < rd->n_persist; k++)
	{
		const PaxosAcceptorState *a = &rd->persist[k];
		int			x = ps_inst_index(a->instance);
		int64_t		v;
		PsDisk	   *d;

		if (x < 0 || !ps_decode(a->value, &v))
		{
			ps_violation(S, "persist-bytes", "node %d persisted a record "
						 "whose name or value bytes are not ones the "
						 "clients gave", i + 1);
			return;
		}
		d = &n->disk[x];
		d->used = true;
		d->promised = a->promised;
		d->accepted = a->accepted;
		d->value = v;
		ps_check_persisted(S, i, x, d);
	}
}

/*
 * client_of: the client whose pending operation is op, or -1.
 */
static int
client_of(PSim *S, int op)
{
	int			c;

	for (c = 0; c < SIM_CLIENTS; c++)
		if (S->clients[c].op == op)
			return c;
	return -1;
}

/*
 * deliver_result: a result to its client (a register op) or to the
 * decree bookkeeping of node i.
 */
static void
deliver_result(PSim *S, int i, const PaxosResult *r)
{
	int			c;
	PsOp	   *o;

	S->decisions++;
	S->rounds += r->rounds;
	if (r->rounds > S->max_rounds)
		S->max_rounds = r->rounds;
	if (r->tag & DECREE_TAG)
	{
		ps_check_decree_result(S, i, r);
		S->nodes[i].decree_inst = 0;
		return;
	}
	S->unknown += r->unknown;
	S->fast += r->rounds == 0;
	c = client_of(S, (int) r->tag);
	if (c < 0)
		return;					/* the client gave up on it already */
	o = &S->ops[r->tag];
	o->status = r->unknown ? OP_UNKNOWN : OP_OK;
	o->ret = S->evclock++;
	if (o->kind == LIN_GET && !ps_decode(r->value, &o->value))
		ps_violation(S, "result-bytes", "node %d answered a read with bytes "
					 "no client wrote", i + 1);
	o->swapped = r->swapped;
	S->clients[c].op = -1;
	S->clients[c].done_after_heal += !S->faults_on;
}

/*
 * ps_handle_ready: node i's Ready batches: persist, then (unless a crash
 * strikes in between) send, then results.
 */
void
ps_handle_ready(PSim *S, int i)
{
	PsNode	   *n = &S->nodes[i];
	PaxosReady	rd;
	size_t		k;

	while (n->up && paxos_has_ready(n->px))
	{
		paxos_ready(n->px, &rd);
		persist(S, i, &rd);
		if (S->faults_on && sim_rand_unit(&S->rng) < S->crash_p)
		{
			ps_node_crash(S, i);	/* synced, never sent */
			return;
		}
		for (k = 0; k < rd.n_msgs; k++)
			send(S, &rd.msgs[k]);
		for (k = 0; k < rd.n_learned; k++)
			ps_check_learned(S, i, &rd.learned[k]);
		for (k = 0; k < rd.n_results; k++)
			deliver_result(S, i, &rd.results[k]);
		paxos_advance(n->px);
	}
}

/*
 * ps_deliver: every message due now, in network order (delays reorder).
 */
void
ps_deliver(PSim *S)
{
	size_t		k = 0;

	while (k < S->n_net && !S->failed)
	{
		PaxosMessage m;
		unsigned char buf[PS_VALUE_MAX];
		int			to;

		if (S->net[k].at > S->now)
		{
			k++;
			continue;
		}
		ps_msg_unpack(&S->net[k], &m, buf);
		S->net[k] = S->net[--S->n_net];
		to = (int) m.to - 1;
		if (!S->nodes[to].up || S->cut[m.from - 1][to])
			continue;
		paxos_step(S->nodes[to].px, &m);
		ps_handle_ready(S, to);
	}
}

/*
 * ps_faults: crashes, restarts and partitions while faults are on.
 */
void
ps_faults(PSim *S)
{
	int			i;
	int			j;

	for (i = 0; i < S->n; i++)
	{
		if (!S->nodes[i].up && S->now >= S->nodes[i].restart_at)
			ps_node_start(S, i);
		else if (S->nodes[i].up && sim_rand_unit(&S->rng) < S->crash_p)
			ps_node_crash(S, i);
	}
	if (S->now % S->partition_every != 0)
		return;
	/* a new partition: each node on a random side, or a heal */
	{
		int			side[PS_MAX_NODES];
		bool		heal = sim_rand_below(&S->rng, 2) == 0;

		for (i = 0; i < S->n; i++)
			side[i] = (int) sim_rand_below(&S->rng, 2);
		for (i = 0; i < S->n; i++)
			for (j = 0; j < S->n; j++)
				S->cut[i][j] = !heal && side[i] != side[j];
	}
}

/*
 * empty_value: now and then, the empty byte string (PS_EMPTY) as the
 * value written, at most once per key (lincheck's search stays small with
 * unique writes), or as the value a CAS expects.
 */
static void
empty_value(PSim *S, PsOp *o)
{
	if (o->kind != LIN_GET && !S->wrote_empty[o->key] &&
		sim_rand_below(&S->rng, 8) == 0)
	{
		o->value = PS_EMPTY;
		S->wrote_empty[o->key] = true;
	}
	if (o->kind == LIN_CAS && sim_rand_below(&S->rng, 8) == 0)
		o->expected = PS_EMPTY;
}

/*
 * submit_op: client c starts a random register operation on a random
 * node that is up (nothing if none is, or it is busy with that key).
 */
static void
submit_op(PSim *S, int c)
{
	int			node = (int) sim_rand_below(&S->rng, S->n);
	PaxosRequest req;
	PsOp		o;
	unsigned char vbuf[PS_VALUE_MAX];
	unsigned char ebuf[PS_VALUE_MAX];

	if (!S->nodes[node].up)
		return;
	memset(&o, 0, sizeof(o));
	o.key = (int) sim_rand_below(&S->rng, SIM_KEYS);
	o.kind = (LinKind) sim_rand_below(&S->rng, 3);
	o.value = o.kind == LIN_GET ? 0 : ++S->next_value;
	/* expect a recent value, or absence, so that some CASes match */
	o.expected = sim_rand_below(&S->rng, 4) == 0 ? 0 :
		S->next_value - (int64_t) sim_rand_below(&S->rng, 6);
	empty_value(S, &o);
	memset(&req, 0, sizeof(req));
	req.kind = o.kind == LIN_GET ? PAXOS_OP_READ :
		o.kind == LIN_PUT ? PAXOS_OP_PUT : PAXOS_OP_CAS;
	req.instance = ps_inst_name(PS_DECREES + o.key);
	req.value = ps_encode(o.value, vbuf);
	req.expected = ps_encode(o.expected, ebuf);
	req.tag = S->n_ops;
	if (paxos_propose(S->nodes[node].px, &req) != PAXOS_OK)
		return;
	o.call = S->evclock++;
	o.status = OP_PENDING;
	S->ops = sim_xrealloc(S->ops, (S->n_ops + 1) * sizeof(PsOp));
	S->ops[S->n_ops] = o;
	S->clients[c].op = S->n_ops++;
	S->clients[c].node = node;
	S->clients[c].deadline = S->now + S->client_timeout;
	ps_handle_ready(S, node);
}

/*
 * ps_clients: time out pending operations (outcome unknown; the node
 * cancels the operation, as the worker does when a backend gives up, every
 * other time, so that both a cancelled and a still-running abandoned
 * operation are tried), start new ones (if submit).
 */
void
ps_clients(PSim *S, bool submit)
{
	int			c;

	for (c = 0; c < SIM_CLIENTS; c++)
	{
		PsClient   *cl = &S->clients[c];

		if (cl->op >= 0 && S->now >= cl->deadline)
		{
			if (S->nodes[cl->node].up && cl->op % 2 == 0)
				(void) paxos_cancel(S->nodes[cl->node].px, (uint64_t) cl->op);
			S->ops[cl->op].status = OP_UNKNOWN;
			cl->op = -1;
		}
		if (cl->op < 0 && submit && sim_rand_below(&S->rng, 4) == 0)
			submit_op(S, c);
	}
}

/*
 * ps_decrees: now and then an idle node proposes a fresh value for one of
 * the two decree instances of the current 40-tick window, so that nodes
 * duel for undecided instances all through the run, not only at its start.
 */
void
ps_decrees(PSim *S, bool submit)
{
	int			i;

	for (i = 0; i < S->n && submit; i++)
	{
		PsNode	   *n = &S->nodes[i];
		PaxosRequest req;
		unsigned char buf[PS_VALUE_MAX];
		int			x;

		if (!n->up || n->decree_inst != 0 || sim_rand_below(&S->rng, 10) != 0)
			continue;
		x = (int) ((S->now / 40 + sim_rand_below(&S->rng, 2)) % PS_DECREES);
		memset(&req, 0, sizeof(req));
		req.kind = PAXOS_OP_DECREE;
		req.instance = ps_inst_name(x);
		req.value = ps_encode(1000000 * (i + 1) + (++S->next_value), buf);
		req.tag = DECREE_TAG | (uint64_t) x;
		if (paxos_propose(n->px, &req) != PAXOS_OK)
			continue;
		n->decree_inst = x + 1;
		ps_handle_ready(S, i);
	}
}

/*
 * ps_tick: one tick of every running node.
 */
void
ps_tick(PSim *S)
{
	int			i;

	for (i = 0; i < S->n; i++)
		if (S->nodes[i].up)
		{
			paxos_tick(S->nodes[i].px);
			ps_handle_ready(S, i);
		}
}
