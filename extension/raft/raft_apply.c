/*-------------------------------------------------------------------------
 *
 * raft_apply.c
 *	  The key-value state machine: committed commands applied by the Raft
 *	  worker into distsys.raft_kv, with a NOTIFY per change.
 *
 * The log is the source of truth; the table is its applied form.  Each
 * batch of committed entries is applied in one transaction that also
 * records the index it reached in distsys.raft_applied, so after any
 * crash the table and that index agree and the worker replays from the
 * log exactly what the table lacks.  Those transactions may therefore
 * commit asynchronously (the worker sets synchronous_commit off): a lost
 * apply is replayed, never lost.  The NOTIFY of a change is sent when its
 * transaction commits, so a watcher never hears of a change it cannot
 * see yet; a change replayed after a crash may be notified twice, with
 * the same index.
 *
 * A client's write can be in the log more than once (a follower forwards
 * it again when the leader does not answer: raft_requests.c).  The client
 * table distsys.raft_clients makes the state machine apply it once: per
 * origin node, worker incarnation (nonce) and client slot it keeps the
 * highest request sequence applied, and a command whose sequence is not
 * above it is skipped (Ongaro's thesis, 6.3).  A slot runs one request at
 * a time, so its sequences only grow.  Rows of an origin's earlier
 * incarnations go when a command of a newer one is applied.
 *
 * Every node applies the same commands in the same order, and every
 * decision here (whether a CAS swaps, whether a DELETE finds its key)
 * depends only on the table, so every node reaches the same state and
 * answers its own clients the same result.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "raftnode.h"
#include "raft_kv.h"
#include "spi_util.h"

static SPIPlanPtr plan_put = NULL;
static SPIPlanPtr plan_insert = NULL;
static SPIPlanPtr plan_swap = NULL;
static SPIPlanPtr plan_delete = NULL;
static SPIPlanPtr plan_applied = NULL;
static SPIPlanPtr plan_client = NULL;
static SPIPlanPtr plan_member = NULL;

/*
 * raft_apply_load_applied: the index distsys.raft_applied records.
 */
uint64
raft_apply_load_applied(void)
{
	static SPIPlanPtr plan = NULL;
	uint64		applied = 0;
	bool		isnull;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (distsys_spi_run(&plan, "SELECT index FROM distsys.raft_applied", 0,
						NULL, NULL, NULL, true) == 1)
		applied = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return applied;
}

void
raft_apply_begin(void)
{
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * text_n: a text datum of the first len bytes at s.
 */
static Datum
text_n(const char *s, uint32 len)
{
	return PointerGetDatum(cstring_to_text_with_len(s, (int) len));
}

/*
 * run: one statement with key, value text, index (and expected), the
 * number of rows it changed.
 */
static uint64
run(SPIPlanPtr *plan, const char *sql, const RaftCommand *c, uint64 index, int nargs)
{
	Oid			types[4] = {TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		args[4];

	args[0] = text_n(c->key, c->key_len);
	args[1] = text_n(c->value, c->value_len);
	args[2] = Int64GetDatum((int64) index);
	args[3] = text_n(c->expected, c->expected_len);
	CommandCounterIncrement();
	return distsys_spi_run(plan, sql, nargs, types, args, NULL, false);
}

/*
 * notify: "<index> <key>" on the watch channel, sent at commit.
 */
static void
notify(const RaftCommand *c, uint64 index)
{
	char	   *payload = psprintf(UINT64_FORMAT " %.*s", index, (int) c->key_len, c->key);

	Async_Notify(RAFT_WATCH_CHANNEL, payload);
	pfree(payload);
}

/*
 * first_application: whether c's request is applied for the first time
 * (recording it in the client table).
 */
static bool
first_application(const RaftCommand *c)
{
	Oid			types[4] = {INT8OID, INT8OID, INT4OID, INT8OID};
	Datum		args[4];

	args[0] = Int64GetDatum((int64) c->origin);
	args[1] = Int64GetDatum((int64) c->nonce);
	args[2] = Int32GetDatum(RAFT_REQUEST_SLOT(c->request));
	args[3] = Int64GetDatum((int64) RAFT_REQUEST_SEQ(c->request));
	CommandCounterIncrement();
	return distsys_spi_run(&plan_client,
						   "WITH gone AS (DELETE FROM distsys.raft_clients WHERE origin = $1 AND nonce <> $2) "
						   "INSERT INTO distsys.raft_clients AS c (origin, nonce, slot, seq) VALUES ($1, $2, $3, $4) "
						   "ON CONFLICT (origin, nonce, slot) DO UPDATE SET seq = EXCLUDED.seq WHERE c.seq < EXCLUDED.seq",
						   4, types, args, NULL, false) == 1;
}

/*
 * raft_apply_entry: apply committed entry e (a command c) into the table;
 * false if c is a copy of a request already applied (nothing done).
 */
bool
raft_apply_entry(const RaftEntry *e, const RaftCommand *c, RaftApplyResult *res)
{
	uint64		changed = 0;

	res->result = false;
	if (!first_application(c))
		return false;

	switch (c->op)
	{
		case RAFT_OP_PUT:
			changed = run(&plan_put,
						  "INSERT INTO distsys.raft_kv AS k (key, value, index) VALUES ($1, $2::jsonb, $3) "
						  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, index = EXCLUDED.index",
						  c, e->index, 3);
			break;
		case RAFT_OP_CAS:
			if (!c->has_expected)
				changed = run(&plan_insert,
							  "INSERT INTO distsys.raft_kv (key, value, index) VALUES ($1, $2::jsonb, $3) "
							  "ON CONFLICT (key) DO NOTHING",
							  c, e->index, 3);
			else
				changed = run(&plan_swap,
							  "UPDATE distsys.raft_kv SET value = $2::jsonb, index = $3 "
							  "WHERE key = $1 AND value = $4::jsonb",
							  c, e->index, 4);
			break;
		case RAFT_OP_MEMBER:
			changed = run(&plan_member,
						  "INSERT INTO distsys.raft_nodes (id, uri) VALUES ($1::bigint, $2) "
						  "ON CONFLICT (id) DO UPDATE SET uri = EXCLUDED.uri",
						  c, e->index, 2);
			raft_members_learn(pg_strtoint64(pnstrdup(c->key, c->key_len)), c->value, c->value_len);
			break;
		case RAFT_OP_DELETE:
			changed = run(&plan_delete,
						  "DELETE FROM distsys.raft_kv WHERE key = $1",
						  c, e->index, 1);
			break;
	}
	res->result = changed > 0;
	if (changed > 0 && c->op != RAFT_OP_MEMBER)
		notify(c, e->index);
	return true;
}

/*
 * raft_apply_commit: record the applied index and commit.
 */
void
raft_apply_commit(uint64 applied)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum((int64) applied)};

	CommandCounterIncrement();
	distsys_spi_run(&plan_applied, "UPDATE distsys.raft_applied SET index = $1",
					1, types, args, NULL, false);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * raft_apply_reset: empty the applied state (the log is new: the table
 * holds what an earlier log of this server applied, which the new one
 * will replay or replace).
 */
void
raft_apply_reset(void)
{
	static SPIPlanPtr plan_kv = NULL;
	static SPIPlanPtr plan_index = NULL;
	static SPIPlanPtr plan_clients = NULL;

	raft_apply_begin();
	distsys_spi_run(&plan_kv, "DELETE FROM distsys.raft_kv", 0, NULL, NULL, NULL, false);
	distsys_spi_run(&plan_clients, "DELETE FROM distsys.raft_clients", 0, NULL, NULL, NULL, false);
	distsys_spi_run(&plan_index, "UPDATE distsys.raft_applied SET index = 0", 0,
					NULL, NULL, NULL, false);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}
