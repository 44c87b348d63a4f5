/*-------------------------------------------------------------------------
 *
 * paxos_gc.c
 *	  Garbage collection of finished decree instances, and the answer an
 *	  acceptor gives for an instance it collected.
 *
 * The rule (docs/design/paxos.md, "Finished instances"): a decree instance
 * is finished on a node once that node's paxos_learned holds its value and
 * that row is durable.  Every GC_INTERVAL_MS the worker flushes the WAL
 * (the worker commits learned rows asynchronously), then drops each
 * finished instance's acceptor state from the core's memory
 * (paxos_forget) and from the acceptor files (paxos_disk_forget, synced).
 * The learned rows stay: they are the instances' values, and what lets the
 * node answer for them.
 *
 * An acceptor that forgot what it accepted must never promise again, or a
 * later round could choose another value.  So a PREPARE or ACCEPT for a
 * decree instance the core does not hold is first looked up in
 * paxos_learned, and if the instance is there it is answered with
 * RAFT_ITEM_PAXOS_CHOSEN (the value) instead of being stepped.  The
 * proposer's node records the value as learned and answers its client
 * with it.  A majority that promises still holds its accepted state (a
 * node that collected never promises), so Paxos's argument is unchanged.
 *
 * Register keys are never collected: their state is their value.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "paxosnode.h"
#include "raft_kv.h"
#include "raft_transport.h"
#include "spi_util.h"

#define GC_INTERVAL_MS	2000

/* Decree instances that may have finished: core names, owned here. */
static char **cand;
static uint32 *cand_len;
static int	n_cand,
			cap_cand;
static TimestampTz last_gc;

/*
 * paxos_gc_candidate: core name (a decree's) may be finished: looked at
 * in the next pass.
 */
void
paxos_gc_candidate(PaxosBytes name)
{
	if (name.len < 3 || ((const char *) name.data)[0] != PAXOS_DECREE_PREFIX)
		return;
	if (n_cand == cap_cand)
	{
		cap_cand = cap_cand ? 2 * cap_cand : 64;
		cand = cand ? repalloc(cand, cap_cand * sizeof(char *)) :
			MemoryContextAlloc(TopMemoryContext, cap_cand * sizeof(char *));
		cand_len = cand_len ? repalloc(cand_len, cap_cand * sizeof(uint32)) :
			MemoryContextAlloc(TopMemoryContext, cap_cand * sizeof(uint32));
	}
	cand[n_cand] = MemoryContextAlloc(TopMemoryContext, name.len);
	memcpy(cand[n_cand], name.data, name.len);
	cand_len[n_cand++] = (uint32) name.len;
}

/*
 * learned_value: the learned row of user instance name (len bytes), as
 * jsonb text and its ballot; false if none.  In the caller's transaction.
 */
static bool
learned_value(const char *name, int len, StringInfo value, PaxosBallot *b)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;

	args[0] = PointerGetDatum(cstring_to_text_with_len(name, len));
	if (distsys_spi_run(&plan,
						"SELECT value::text, proposal_round, proposal_node"
						" FROM distsys.paxos_learned WHERE instance = $1",
						1, types, args, NULL, true) != 1)
		return false;
	appendStringInfoString(value, TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																	 SPI_tuptable->tupdesc, 1, &isnull)));
	b->round = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	b->node = (uint64) DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	return true;
}

/*
 * paxos_gc_lookup: the learned value of decree instance core_name (its
 * core name), in a transaction of its own; false if none.
 */
bool
paxos_gc_lookup(PaxosBytes core_name, StringInfo value, PaxosBallot *b)
{
	bool		found;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	found = learned_value((const char *) core_name.data + 2, (int) core_name.len - 2, value, b);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return found;
}

/*
 * paxos_gc_intercept: whether message m (for an instance the core does
 * not hold) concerns a collected decree instance, and was handled here: a
 * PREPARE or ACCEPT answered with the chosen value, anything else dropped.
 * The caller steps m into the core when this returns false.
 */
bool
paxos_gc_intercept(const PaxosMessage *m)
{
	StringInfoData value;
	StringInfoData buf;
	PaxosBallot b;
	const char *d = m->instance.data;

	if (m->instance.len < 3 || d[0] != PAXOS_DECREE_PREFIX || d[1] != ':')
		return false;
	initStringInfo(&value);
	if (!paxos_gc_lookup(m->instance, &value, &b))
	{
		pfree(value.data);
		return false;
	}
	if (m->type == PAXOS_MSG_PREPARE || m->type == PAXOS_MSG_ACCEPT)
	{
		initStringInfo(&buf);
		px_put_name(&buf, m->instance);
		px_put_value(&buf, (PaxosValue) {value.data, value.len, true});
		raft_put_u64(&buf, b.round);
		raft_put_u64(&buf, b.node);
		paxos_node_send(m->from, RAFT_ITEM_PAXOS_CHOSEN, (uint8 *) buf.data, buf.len);
		pfree(buf.data);
	}
	pfree(value.data);
	return true;
}

/*
 * paxos_gc_decode_chosen: a peer's answer that an instance we asked about is
 * chosen (and collected there): decode it into *l (pointing into body).
 */
bool
paxos_gc_decode_chosen(const uint8 *body, size_t len, PaxosLearned *l)
{
	PxReader	r;

	px_reader_init(&r, body, len);
	if (!px_take_name(&r, &l->instance) || !px_take_value(&r, &l->value))
		return false;
	l->ballot.round = px_take_u64(&r);
	l->ballot.node = px_take_u64(&r);
	return r.ok && r.left == 0 && l->value.present;
}

/*
 * finished: which candidates have a learned row (in a transaction).
 */
static void
finished(bool *done)
{
	StringInfoData v;
	PaxosBallot b;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	initStringInfo(&v);
	for (int i = 0; i < n_cand; i++)
	{
		resetStringInfo(&v);
		done[i] = learned_value(cand[i] + 2, (int) cand_len[i] - 2, &v, &b);
	}
	pfree(v.data);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * paxos_gc_run: a pass, if one is due: the finished candidates forgotten
 * by the core and then on disk; those the core is busy with wait for the
 * next pass.  false if the disk failed (err says why).
 */
bool
paxos_gc_run(PaxosNode *core, PaxosDisk *disk, char *err, size_t errlen)
{
	TimestampTz now = GetCurrentTimestamp();
	bool	   *done;
	PaxosBytes *gone;
	int			n_gone = 0,
				k = 0;
	bool		ok = true;

	if (n_cand == 0 || !TimestampDifferenceExceeds(last_gc, now, GC_INTERVAL_MS))
		return true;
	last_gc = now;
	done = palloc(sizeof(bool) * n_cand);
	gone = palloc(sizeof(PaxosBytes) * n_cand);
	finished(done);
	/* the learned rows must be durable before the acceptor forgets */
	XLogFlush(GetXLogInsertRecPtr());
	for (int i = 0; i < n_cand; i++)
	{
		PaxosBytes	name = {cand[i], cand_len[i]};
		int			rc = done[i] ? paxos_forget(core, name) : PAXOS_ERR_INVALID;

		if (rc == PAXOS_OK)
			gone[n_gone++] = name;
		if (rc == PAXOS_ERR_BUSY)
		{
			cand[k] = cand[i];
			cand_len[k++] = cand_len[i];
		}
		else if (rc != PAXOS_OK)
			pfree(cand[i]);
	}
	if (n_gone > 0)
		ok = paxos_disk_forget(disk, gone, n_gone, err, errlen) == 0;
	for (int i = 0; i < n_gone; i++)
		pfree((void *) gone[i].data);
	n_cand = k;
	pfree(done);
	pfree(gone);
	return ok;
}
