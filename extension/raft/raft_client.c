/*-------------------------------------------------------------------------
 *
 * raft_client.c
 *	  The SQL API of the replicated key-value store: raft_put, raft_cas,
 *	  raft_delete and raft_get, and the shared-memory slots through which
 *	  a backend hands its request to the Raft worker and waits for the
 *	  answer.
 *
 * A request runs in the caller's backend but is not part of its
 * transaction: it is a request to the cluster, like a network call.  The
 * backend puts it in its own slot (one per backend, so never a wait for a
 * free one), sets the worker's latch and sleeps on its own latch,
 * interruptibly, until the worker answers or distsys.raft_request_timeout
 * passes.  The worker answers a write once the entry is committed and
 * applied on this node, so a following read anywhere sees it; a read
 * once this node has applied the read index, after which the backend
 * reads distsys.raft_kv itself with a new snapshot.  A timed-out write
 * may still commit: the error (YR001) says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/twophase.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "distsys.h"
#include "raftnode.h"
#include "raft_kv.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(raft_put);
PG_FUNCTION_INFO_V1(raft_cas);
PG_FUNCTION_INFO_V1(raft_delete);
PG_FUNCTION_INFO_V1(raft_get);

typedef struct RaftClientShared
{
	slock_t		mutex;			/* guards worker_latch */
	Latch	   *worker_latch;	/* NULL: no worker running */
	pg_atomic_uint32 new_requests;	/* set by backends, cleared by the worker */
	int			nslots;
	RaftRequestSlot slots[FLEXIBLE_ARRAY_MEMBER];
} RaftClientShared;

static RaftClientShared *client_shared = NULL;

static int
total_slots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

Size
raft_client_shmem_size(void)
{
	if (distsys_node_id <= 0)
		return offsetof(RaftClientShared, slots);
	return add_size(offsetof(RaftClientShared, slots),
					mul_size(total_slots(), sizeof(RaftRequestSlot)));
}

void
raft_client_shmem_init(void)
{
	bool		found;

	client_shared = ShmemInitStruct("distsys raft client", raft_client_shmem_size(), &found);
	if (found)
		return;
	SpinLockInit(&client_shared->mutex);
	client_shared->worker_latch = NULL;
	pg_atomic_init_u32(&client_shared->new_requests, 0);
	client_shared->nslots = distsys_node_id > 0 ? total_slots() : 0;
	for (int i = 0; i < client_shared->nslots; i++)
	{
		SpinLockInit(&client_shared->slots[i].mutex);
		client_shared->slots[i].state = RAFT_SLOT_FREE;
		client_shared->slots[i].seq = 0;
	}
}

void
raft_client_worker_attach(void)
{
	SpinLockAcquire(&client_shared->mutex);
	client_shared->worker_latch = MyLatch;
	SpinLockRelease(&client_shared->mutex);
}

void
raft_client_worker_detach(void)
{
	SpinLockAcquire(&client_shared->mutex);
	client_shared->worker_latch = NULL;
	SpinLockRelease(&client_shared->mutex);
}

int
raft_client_nslots(void)
{
	return client_shared->nslots;
}

RaftRequestSlot *
raft_client_slot(int i)
{
	return &client_shared->slots[i];
}

/*
 * raft_client_take_new_flag: whether a backend made a request since the
 * last call (cleared here; the worker then scans the slots).
 */
bool
raft_client_take_new_flag(void)
{
	return pg_atomic_exchange_u32(&client_shared->new_requests, 0) != 0;
}

/*
 * wake_worker: set the worker's latch; false if no worker is running.
 */
static bool
wake_worker(void)
{
	bool		running;

	pg_atomic_write_u32(&client_shared->new_requests, 1);
	SpinLockAcquire(&client_shared->mutex);
	running = client_shared->worker_latch != NULL;
	if (running)
		SetLatch(client_shared->worker_latch);
	SpinLockRelease(&client_shared->mutex);
	return running;
}

/*
 * raft_client_require: refuse where the store cannot answer: Raft off on this
 * server, not preloaded, or a standby (its worker does not run).
 */
void
raft_client_require(const char *what)
{
	distsys_require_preload(what);
	if (distsys_node_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: Raft is not configured on this server", what),
				 errhint("Set distsys.node_id and distsys.peers and restart the server.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("%s cannot run on a standby", what),
				 errdetail("A standby runs no Raft worker; it can read distsys.raft_kv as replicated from its primary."),
				 errhint("Use raft_get(key, 'stale') here, or send the request to a member of the Raft cluster.")));
}

/*
 * my_slot: this backend's slot.
 */
static RaftRequestSlot *
my_slot(void)
{
	Assert(MyProc->pgprocno < client_shared->nslots);
	return &client_shared->slots[MyProc->pgprocno];
}

/*
 * give_up: the backend stops waiting (error or timeout): the slot is free
 * again and the worker, seeing another seq, will not answer into it.
 */
static void
give_up(RaftRequestSlot *slot)
{
	SpinLockAcquire(&slot->mutex);
	slot->state = RAFT_SLOT_FREE;
	slot->seq++;
	SpinLockRelease(&slot->mutex);
}

/*
 * withdraw: take back a request no worker was running to see; false when
 * a worker took it after all.  A worker starting right after wake_worker
 * found none may already have taken the slot (and proposed the write):
 * then 55000 would tell the caller "not done" about a write that may
 * commit, so the caller waits for the answer instead.  take_slot takes
 * only a NEW slot under the slot's mutex, so a withdrawn request is
 * certainly never proposed.
 */
static bool
withdraw(RaftRequestSlot *slot)
{
	bool		withdrawn;

	SpinLockAcquire(&slot->mutex);
	withdrawn = slot->state == RAFT_SLOT_NEW;
	if (withdrawn)
	{
		slot->state = RAFT_SLOT_FREE;
		slot->seq++;
	}
	SpinLockRelease(&slot->mutex);
	return withdrawn;
}

/*
 * wait_answer: sleep until the worker answers the slot or the deadline;
 * true when answered (the answer copied to *out).
 */
static bool
wait_answer(RaftRequestSlot *slot, TimestampTz deadline, RaftRequestSlot *out)
{
	for (;;)
	{
		long		ms;
		bool		done;

		SpinLockAcquire(&slot->mutex);
		done = slot->state == RAFT_SLOT_DONE;
		if (done)
		{
			out->answer = slot->answer;
			out->index = slot->index;
			out->result = slot->result;
			out->refusal = slot->refusal;
			out->len = 0;
			if (slot->kind == RAFT_REQ_PAXOS)
			{
				out->len = Min(slot->len, RAFT_COMMAND_MAX_BYTES);
				memcpy(out->command, slot->command, out->len);
			}
			slot->state = RAFT_SLOT_FREE;
			slot->seq++;
		}
		SpinLockRelease(&slot->mutex);
		if (done)
			return true;
		ms = (long) ((deadline - GetCurrentTimestamp()) / 1000);
		if (ms <= 0)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(ms, 1000L), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * no_quorum_error: the request timed out.
 */
static void pg_attribute_noreturn()
no_quorum_error(const char *what, RaftReqKind kind)
{
	if (kind == RAFT_REQ_PAXOS)
		ereport(ERROR,
				(errcode(ERRCODE_RAFT_NO_QUORUM),
				 errmsg("%s: no majority of the Paxos members answered within %d ms", what,
						distsys_raft_request_timeout_ms),
				 strcmp(what, "paxos_read") != 0 ?
				 errdetail("A write may still take effect: its accepts may have reached a majority before the time ran out.") : 0,
				 errhint("A majority of the founding members of distsys.peers must be running and reachable.")));
	ereport(ERROR,
			(errcode(ERRCODE_RAFT_NO_QUORUM),
			 errmsg("%s: no Raft quorum answered within %d ms", what,
					distsys_raft_request_timeout_ms),
			 kind == RAFT_REQ_WRITE ? errdetail("The write may still commit: it may have reached the leader's log before the time ran out.") : 0,
			 errhint("Check raft_status on the members: a majority must be running and reachable.")));
}

/*
 * unknown_outcome_error: the worker answered that the outcome of the
 * request cannot be known.  For Paxos, a register write whose accept
 * phase a competing proposal interrupted (or that saw no majority in the
 * time a phase waits): not a timeout of the caller's, so not said as one.
 */
static void pg_attribute_noreturn()
unknown_outcome_error(const char *what, RaftReqKind kind)
{
	if (kind != RAFT_REQ_PAXOS)
		no_quorum_error(what, kind);
	ereport(ERROR,
			(errcode(ERRCODE_RAFT_NO_QUORUM),
			 errmsg("%s: the outcome is unknown: the write's accept phase was interrupted", what),
			 errdetail("A competing proposal for the same key, or a majority that did not answer in time, cut it short; it may or may not have taken effect."),
			 errhint("Read the key (paxos_read) to find out, then retry if needed.")));
}

/*
 * raft_client_submit: hand one request to the worker and wait for its answer (*out).
 */
void
raft_client_submit(const char *what, RaftReqKind kind, const StringInfo command, RaftRequestSlot *out)
{
	RaftRequestSlot *slot = my_slot();
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   distsys_raft_request_timeout_ms);
	bool		answered = false;

	SpinLockAcquire(&slot->mutex);
	slot->kind = kind;
	slot->latch = MyLatch;
	slot->len = command ? command->len : 0;
	if (command)
		memcpy(slot->command, command->data, command->len);
	slot->state = RAFT_SLOT_NEW;
	SpinLockRelease(&slot->mutex);
	if (!wake_worker() && withdraw(slot))
	{
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: the Raft worker of this server is not running", what),
				 errhint("raft_status shows its state; the server log says why it stopped.")));
	}
	PG_TRY();
	{
		answered = wait_answer(slot, deadline, out);
	}
	PG_CATCH();
	{
		give_up(slot);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (!answered)
	{
		give_up(slot);
		no_quorum_error(what, kind);
	}
	if (out->answer == RAFT_ANSWER_UNKNOWN)
		unknown_outcome_error(what, kind);
	if (out->answer == RAFT_ANSWER_REFUSED && kind == RAFT_REQ_PAXOS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: Paxos does not run on node %d", what, distsys_node_id),
				 errhint("The server log says why: its acceptor files were lost, or could not be made durable.")));
	if (out->answer == RAFT_ANSWER_REFUSED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: the Raft leader refused the request (%s)", what,
						out->refusal == RAFT_ERR_NOT_CAUGHT_UP ? "the node has not caught up" :
						out->refusal == RAFT_ERR_BUSY ? "another change is under way" :
						"not a valid change of the current membership"),
				 errhint("raft_members shows the current members.")));
}

/*
 * key_arg: argument n as a key: not NULL, not empty, within the limit.
 */
static char *
key_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	char	   *key;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: key must not be NULL", what)));
	key = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (key[0] == '\0' || strlen(key) > RAFT_KEY_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: a key must be 1 to %d bytes long, not %zu", what,
						RAFT_KEY_MAX_BYTES, strlen(key))));
	return key;
}

/*
 * jsonb_arg: argument n as jsonb text, or NULL when the argument is NULL
 * and null_ok.
 */
static char *
jsonb_arg(FunctionCallInfo fcinfo, int n, const char *what, const char *name, bool null_ok)
{
	Jsonb	   *j;

	if (PG_ARGISNULL(n))
	{
		if (null_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: %s must not be NULL", what, name),
				 errhint("raft_delete removes a key; the JSON value 'null'::jsonb can be stored.")));
	}
	j = PG_GETARG_JSONB_P(n);
	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

/*
 * write_command: encode a command of this backend's slot, checking its size.
 */
static void
write_command(const char *what, RaftCommand *c, StringInfo buf)
{
	RaftRequestSlot *slot = my_slot();

	c->origin = (uint64) distsys_node_id;
	c->nonce = 0;				/* the worker fills in its own */
	SpinLockAcquire(&slot->mutex);
	c->request = RAFT_REQUEST_ID(MyProc->pgprocno, slot->seq);
	SpinLockRelease(&slot->mutex);
	c->key_len = strlen(c->key);
	c->expected_len = c->expected ? strlen(c->expected) : 0;
	c->value_len = c->value ? strlen(c->value) : 0;
	initStringInfo(buf);
	raft_command_encode(c, buf);
	if (buf->len > RAFT_COMMAND_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: the command is %d bytes, over the limit of %d", what,
						buf->len, RAFT_COMMAND_MAX_BYTES),
				 errhint("Store large values elsewhere and keep a reference in the Raft store.")));
}

/*
 * raft_client_write: one command through the log; the answer in *out.
 */
void
raft_client_write(const char *what, RaftCommand *c, RaftRequestSlot *out)
{
	StringInfoData buf;

	raft_client_require(what);
	write_command(what, c, &buf);
	raft_client_submit(what, RAFT_REQ_WRITE, &buf, out);
}

/*
 * raft_put(key text, value jsonb) RETURNS bigint: the log index of the
 * write, once committed and applied on this node.
 */
Datum
raft_put(PG_FUNCTION_ARGS)
{
	RaftCommand c = {0};
	RaftRequestSlot ans;

	c.op = RAFT_OP_PUT;
	c.key = key_arg(fcinfo, 0, "raft_put");
	c.value = jsonb_arg(fcinfo, 1, "raft_put", "value", false);
	raft_client_write("raft_put", &c, &ans);
	PG_RETURN_INT64((int64) ans.index);
}

/*
 * raft_cas(key text, expected jsonb, value jsonb) RETURNS boolean:
 * expected NULL means "the key is absent".
 */
Datum
raft_cas(PG_FUNCTION_ARGS)
{
	RaftCommand c = {0};
	RaftRequestSlot ans;

	c.op = RAFT_OP_CAS;
	c.key = key_arg(fcinfo, 0, "raft_cas");
	c.expected = jsonb_arg(fcinfo, 1, "raft_cas", "expected", true);
	c.has_expected = c.expected != NULL;
	c.value = jsonb_arg(fcinfo, 2, "raft_cas", "value", false);
	raft_client_write("raft_cas", &c, &ans);
	PG_RETURN_BOOL(ans.result);
}

/*
 * raft_delete(key text) RETURNS boolean: whether the key was there.
 */
Datum
raft_delete(PG_FUNCTION_ARGS)
{
	RaftCommand c = {0};
	RaftRequestSlot ans;

	c.op = RAFT_OP_DELETE;
	c.key = key_arg(fcinfo, 0, "raft_delete");
	raft_client_write("raft_delete", &c, &ans);
	PG_RETURN_BOOL(ans.result);
}

/*
 * read_kv: the key's value in this node's distsys.raft_kv, with a new
 * snapshot (NULL datum and *isnull when absent).
 */
static Datum
read_kv(const char *key, bool *isnull)
{
	static SPIPlanPtr plan = NULL;

	return distsys_spi_lookup(&plan, "SELECT value FROM distsys.raft_kv WHERE key = $1",
							  CStringGetTextDatum(key), isnull);
}

/*
 * read_kind: the consistency argument as a request kind; 0 for 'stale'.
 */
static int
read_kind(const char *consistency)
{
	if (strcmp(consistency, "linearizable") == 0)
		return RAFT_REQ_READ;
	if (strcmp(consistency, "lease") == 0)
		return RAFT_REQ_READ_LEASE;
	if (strcmp(consistency, "stale") == 0)
		return 0;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("raft_get: unknown consistency \"%s\"", consistency),
			 errhint("Use 'linearizable', 'lease' or 'stale'.")));
}

/*
 * raft_get(key text, consistency text DEFAULT 'linearizable') RETURNS
 * jsonb: NULL when the key is absent.
 */
Datum
raft_get(PG_FUNCTION_ARGS)
{
	char	   *key = key_arg(fcinfo, 0, "raft_get");
	int			kind;
	bool		isnull;
	Datum		value;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("raft_get: consistency must not be NULL")));
	kind = read_kind(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (kind == 0)
	{
		distsys_require_preload("raft_get");
		if (distsys_node_id <= 0 && !RecoveryInProgress())
			raft_client_require("raft_get");
	}
	else
	{
		RaftRequestSlot ans;

		raft_client_require("raft_get");
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("raft_get: a %s read cannot run in a REPEATABLE READ or SERIALIZABLE transaction",
							kind == RAFT_REQ_READ ? "linearizable" : "lease"),
					 errdetail("The transaction's snapshot may be older than the read index, so the read would not be linearizable."),
					 errhint("Run it in a READ COMMITTED transaction, or use consistency 'stale'.")));
		raft_client_submit("raft_get", (RaftReqKind) kind, NULL, &ans);
	}
	value = read_kv(key, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(value);
}
