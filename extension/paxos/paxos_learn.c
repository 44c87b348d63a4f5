/*-------------------------------------------------------------------------
 *
 * paxos_learn.c
 *	  What this node has learned was chosen: decree instances as rows of
 *	  distsys.paxos_learned, written by the worker, and the catch-up by
 *	  which a node that was down or cut off learns what was chosen
 *	  meanwhile.
 *
 * Catch-up: once a second the worker asks each other member for its
 * learned rows after the highest of that member's sequence numbers it has
 * taken (RAFT_ITEM_PAXOS_ASK); the member answers with up to
 * LEARN_TELL_BYTES of them, oldest first (RAFT_ITEM_PAXOS_TELL), and the
 * asker inserts those it lacks and asks again at once while there is
 * more.  A learned value is a chosen value, so learning it from another
 * learner is as safe as counting acceptances; only distsys_raft_peer
 * members can send these items.  The sequence numbers taken are kept in
 * memory: after a restart a node asks from the beginning again, and
 * inserts nothing twice (ON CONFLICT DO NOTHING).
 *
 * Registers (CASPaxos keys) are not recorded: their state is the
 * acceptors', read by a round (paxos_read).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "paxosnode.h"
#include "raft_kv.h"
#include "raft_transport.h"
#include "spi_util.h"

/* Most bytes of rows in one answer, and how often to ask. */
#define LEARN_TELL_BYTES	(1024 * 1024)
#define LEARN_ASK_MS		1000

typedef struct LearnPeer
{
	uint64		id;
	uint64		taken;			/* its highest sequence number we hold */
	bool		more;			/* its last answer was not all it had */
} LearnPeer;

static LearnPeer peers[RAFT_MAX_NODES];
static int	n_peers;
static TimestampTz last_ask;

/*
 * paxos_learn_init: the members to ask (every founder but self).
 */
void
paxos_learn_init(const RaftPeers *founders, uint64 self)
{
	n_peers = 0;
	for (int i = 0; i < founders->n; i++)
		if (founders->peer[i].id != self)
		{
			peers[n_peers].id = founders->peer[i].id;
			peers[n_peers].taken = 0;
			peers[n_peers].more = false;
			n_peers++;
		}
	last_ask = 0;
}

/*
 * text_ok: whether len bytes at s make a text value of this database
 * (valid in its encoding, no NUL).
 */
static bool
text_ok(const char *s, int len)
{
	return memchr(s, '\0', len) == NULL &&
		pg_verify_mbstr(GetDatabaseEncoding(), s, len, true);
}

/*
 * user_name: the user's instance name of a core name "d:I" (false for a
 * register, or a name that is not text).
 */
static bool
user_name(PaxosBytes name, const char **s, int *len)
{
	const char *d = name.data;

	if (name.len < 3 || d[0] != PAXOS_DECREE_PREFIX || d[1] != ':')
		return false;
	*s = d + 2;
	*len = (int) name.len - 2;
	return text_ok(*s, *len);
}

/*
 * insert_row: one learned instance (user name, jsonb text), unless the
 * table has it.  In the caller's transaction.
 */
static void
insert_row(const char *name, int name_len, PaxosValue value, PaxosBallot b)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, INT8OID, INT4OID};
	Datum		args[4];

	args[0] = PointerGetDatum(cstring_to_text_with_len(name, name_len));
	args[1] = PointerGetDatum(cstring_to_text_with_len(value.data, (int) value.len));
	args[2] = Int64GetDatum((int64) b.round);
	args[3] = Int32GetDatum((int32) b.node);
	distsys_spi_run(&plan,
					"INSERT INTO distsys.paxos_learned"
					" (instance, value, proposal_round, proposal_node)"
					" VALUES ($1, $2::jsonb, $3, $4) ON CONFLICT (instance) DO NOTHING",
					4, types, args, NULL, false);
}

typedef struct LearnedRow
{
	PaxosBytes	name;			/* the user's name */
	PaxosValue	value;
	PaxosBallot ballot;
} LearnedRow;

/*
 * insert_rows: rows in one transaction; an error (a value that is not
 * jsonb, which only a broken member could send) is logged and the rows
 * are left to the next catch-up.
 */
static bool
insert_rows(const LearnedRow *rows, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	if (n == 0)
		return true;
	PG_TRY();
	{
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		for (int i = 0; i < n; i++)
			insert_row(rows[i].name.data, (int) rows[i].name.len, rows[i].value,
					   rows[i].ballot);
		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}

/*
 * paxos_learn_record: what the core's learner learned in one Ready (the
 * decrees among it), committed before the Ready's clients are answered.
 */
void
paxos_learn_record(const PaxosLearned *l, int n)
{
	LearnedRow *rows = palloc(sizeof(LearnedRow) * n);
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		const char *s;
		int			len;

		if (!user_name(l[i].instance, &s, &len) || !l[i].value.present)
			continue;
		rows[k].name.data = s;
		rows[k].name.len = len;
		rows[k].value = l[i].value;
		rows[k].ballot = l[i].ballot;
		k++;
		paxos_gc_candidate(l[i].instance);
	}
	(void) insert_rows(rows, k);
	pfree(rows);
}

/*
 * ask: RAFT_ITEM_PAXOS_ASK to peer p: its rows after p->taken.
 */
static void
ask(LearnPeer *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	raft_put_u64(&buf, p->taken);
	raft_transport_queue(p->id, RAFT_ITEM_PAXOS_ASK, (uint8 *) buf.data, buf.len);
	pfree(buf.data);
	p->more = false;
}

/*
 * paxos_learn_catchup: ask every peer once a second, and at once those
 * whose last answer said there was more.
 */
void
paxos_learn_catchup(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		due = TimestampDifferenceExceeds(last_ask, now, LEARN_ASK_MS);

	for (int i = 0; i < n_peers; i++)
		if (due || peers[i].more)
			ask(&peers[i]);
	if (due)
		last_ask = now;
}

/*
 * paxos_learn_ask: a peer's question: our rows after its sequence number,
 * answered with as many as fit in LEARN_TELL_BYTES:
 *		more (1) | count (4) | count x (seq (8) | name | value | round (8) | node (8))
 */
void
paxos_learn_ask(uint64 from, const uint8 *body, size_t len)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1];
	StringInfoData buf;
	uint32		count = 0;
	bool		more = false;
	uint64		n;

	if (len != 8)
	{
		elog(LOG, "distsys paxos: a malformed catch-up question from node " UINT64_FORMAT " was dropped", from);
		return;
	}
	args[0] = Int64GetDatum((int64) raft_get_u64(body));
	initStringInfo(&buf);
	px_put_u8(&buf, 0);
	raft_put_u32(&buf, 0);
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	n = distsys_spi_run(&plan,
						"SELECT seq, instance, value::text, proposal_round, proposal_node"
						" FROM distsys.paxos_learned WHERE seq > $1 ORDER BY seq LIMIT 1000",
						1, types, args, NULL, true);
	for (uint64 i = 0; i < n && !more; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = TextDatumGetCString(SPI_getbinval(t, d, 2, &isnull));
		char	   *value = TextDatumGetCString(SPI_getbinval(t, d, 3, &isnull));
		PaxosBytes	nb = {name, strlen(name)};
		PaxosValue	vb = {value, strlen(value), true};

		raft_put_u64(&buf, (uint64) DatumGetInt64(SPI_getbinval(t, d, 1, &isnull)));
		px_put_name(&buf, nb);
		px_put_value(&buf, vb);
		raft_put_u64(&buf, (uint64) DatumGetInt64(SPI_getbinval(t, d, 4, &isnull)));
		raft_put_u64(&buf, (uint64) DatumGetInt32(SPI_getbinval(t, d, 5, &isnull)));
		count++;
		more = buf.len >= LEARN_TELL_BYTES;
	}
	more = more || n == 1000;
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	buf.data[0] = more ? 1 : 0;
	for (int i = 0; i < 4; i++)
		buf.data[1 + i] = (char) (count >> (8 * i));
	raft_transport_queue(from, RAFT_ITEM_PAXOS_TELL, (uint8 *) buf.data, buf.len);
	pfree(buf.data);
}

/*
 * candidate_of: the decree instance of user name for paxos_gc.c (if this
 * node's core holds it, it may now be collected).
 */
static void
candidate_of(PaxosBytes name)
{
	char	   *buf = palloc(name.len + 2);

	buf[0] = PAXOS_DECREE_PREFIX;
	buf[1] = ':';
	memcpy(buf + 2, name.data, name.len);
	paxos_gc_candidate((PaxosBytes) {buf, name.len + 2});
	pfree(buf);
}

/*
 * paxos_learn_tell: a peer's answer: the rows we lack go into the table.
 */
void
paxos_learn_tell(uint64 from, const uint8 *body, size_t len)
{
	LearnPeer  *p = NULL;
	PxReader	r;
	bool		more;
	uint32		count;
	LearnedRow *rows;
	uint64		top = 0;
	int			k = 0;

	for (int i = 0; i < n_peers; i++)
		if (peers[i].id == from)
			p = &peers[i];
	if (p == NULL)
		return;
	px_reader_init(&r, body, len);
	more = px_take_u8(&r) == 1;
	count = px_take_u32(&r);
	if (!r.ok || count > len)
	{
		elog(LOG, "distsys paxos: a malformed catch-up answer from node " UINT64_FORMAT " was dropped", from);
		return;
	}
	rows = palloc(sizeof(LearnedRow) * (count + 1));
	for (uint32 i = 0; i < count; i++)
	{
		uint64		seq = px_take_u64(&r);

		if (!px_take_name(&r, &rows[k].name) || !px_take_value(&r, &rows[k].value))
			break;
		rows[k].ballot.round = px_take_u64(&r);
		rows[k].ballot.node = px_take_u64(&r);
		if (!r.ok || !rows[k].value.present ||
			!text_ok(rows[k].name.data, (int) rows[k].name.len))
			break;
		top = Max(top, seq);
		k++;
	}
	if (!r.ok || k != (int) count || r.left != 0)
		elog(LOG, "distsys paxos: a malformed catch-up answer from node " UINT64_FORMAT " was dropped", from);
	else if (insert_rows(rows, k))
	{
		p->taken = Max(p->taken, top);
		p->more = more;
		for (int i = 0; i < k; i++)
			candidate_of(rows[i].name);
	}
	pfree(rows);
}
