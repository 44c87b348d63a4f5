/*-------------------------------------------------------------------------
 *
 * raft_status.c
 *	  What the Raft worker publishes, and the raft_status view over it.
 *
 * One RaftStatusShared in shared memory.  Only the Raft worker writes it
 * (raft_status_publish, after each Ready batch and each change of its own
 * state); readers copy it.  A spinlock protects it: the copy is a few
 * words, and a reader must never see a term from one moment and a role
 * from another.  Shared memory is reset at each postmaster start and
 * crash restart, so until the worker publishes, the view shows "starting"
 * (or "off" when distsys.node_id is 0).
 *
 * The view shows no URI (those are in distsys.peers, readable by
 * superusers and pg_read_all_settings only), so it is granted to PUBLIC
 * like pg_stat_replication's counters would be if they had no addresses.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/shmem.h"
#include "utils/builtins.h"

#include "distsys.h"
#include "raftnode.h"

PG_FUNCTION_INFO_V1(raft_status_read);

static RaftStatusShared *raft_status_shared = NULL;

static const char *const role_names[] = {"follower", "pre_candidate", "candidate", "leader"};
static const char *const state_names[] = {"off", "starting", "refused", "waiting_for_extension", "running", "failed"};

/*
 * raft_status_shmem_size: the shared memory raft_status_shmem_init needs.
 */
Size
raft_status_shmem_size(void)
{
	return sizeof(RaftStatusShared);
}

/*
 * raft_status_shmem_init: attach, resetting the status on first creation.
 */
void
raft_status_shmem_init(void)
{
	bool		found;

	raft_status_shared = ShmemInitStruct("distsys raft status", sizeof(RaftStatusShared), &found);
	if (found)
		return;
	memset(raft_status_shared, 0, sizeof(RaftStatusShared));
	SpinLockInit(&raft_status_shared->mutex);
	raft_status_shared->state = distsys_node_id > 0 ? RAFT_WORKER_STARTING : RAFT_WORKER_OFF;
	raft_status_shared->role = -1;
}

/*
 * raft_status_publish: replace the published status with *st (its mutex
 * is ignored).
 */
void
raft_status_publish(const RaftStatusShared *st)
{
	SpinLockAcquire(&raft_status_shared->mutex);
	raft_status_shared->state = st->state;
	raft_status_shared->role = st->role;
	raft_status_shared->term = st->term;
	raft_status_shared->leader = st->leader;
	raft_status_shared->commit = st->commit;
	raft_status_shared->applied = st->applied;
	raft_status_shared->last_index = st->last_index;
	raft_status_shared->snapshot_index = st->snapshot_index;
	SpinLockRelease(&raft_status_shared->mutex);
}

/*
 * uint64_datum: a counter as bigint; the core's terms and indexes stay far
 * below 2^63.
 */
static Datum
uint64_datum(uint64 v)
{
	return Int64GetDatum((int64) v);
}

/*
 * raft_status_read: one row: node, role, term, leader, commit_index,
 * applied_index, last_index, snapshot_index, state.  Role, term and the
 * indexes are NULL while no core runs; leader is NULL when unknown.
 */
Datum
raft_status_read(PG_FUNCTION_ARGS)
{
	RaftStatusShared st;
	TupleDesc	desc;
	Datum		v[9];
	bool		nulls[9];

	distsys_require_preload("raft_status");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "raft_status_read: return type must be a row type");
	SpinLockAcquire(&raft_status_shared->mutex);
	st = *raft_status_shared;
	SpinLockRelease(&raft_status_shared->mutex);

	memset(nulls, st.role < 0, sizeof(nulls));
	v[0] = Int32GetDatum(distsys_node_id);
	nulls[0] = false;
	v[1] = st.role < 0 ? (Datum) 0 : CStringGetTextDatum(role_names[st.role]);
	v[2] = uint64_datum(st.term);
	v[3] = uint64_datum(st.leader);
	nulls[3] = nulls[3] || st.leader == 0;
	v[4] = uint64_datum(st.commit);
	v[5] = uint64_datum(st.applied);
	v[6] = uint64_datum(st.last_index);
	v[7] = uint64_datum(st.snapshot_index);
	/* a standby runs no worker (it starts once the server accepts writes) */
	v[8] = CStringGetTextDatum(st.state == RAFT_WORKER_STARTING && RecoveryInProgress() ?
							   "standby" : state_names[st.state]);
	nulls[8] = false;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls)));
}
