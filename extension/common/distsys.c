/*-------------------------------------------------------------------------
 *
 * distsys.c
 *	  Entry point of distsys.so: module magic, _PG_init and version().
 *
 * _PG_init runs in the postmaster when distsys is in
 * shared_preload_libraries, and in a backend when a distsys function is
 * first called otherwise.  In the second case there is no shared memory and
 * no background worker; functions that need them raise a clear error (see
 * distsys_require_preload) while the rest keeps working.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "distsys.h"
#include "dlock.h"
#include "dtx.h"
#include "raftnode.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

bool		distsys_preloaded = false;

/*
 * _PG_init: define the settings; when preloaded, also claim shared memory.
 */
void
_PG_init(void)
{
	distsys_define_gucs();
	dtx_xact_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

	distsys_preloaded = true;
	raft_settings_check();
	distsys_shmem_install_hooks();
	dlock_worker_register();
	dtx_worker_register();
	raft_worker_register();
	dlock_xact_init();
}

/*
 * distsys_require_preload: raise an error unless distsys was loaded through
 * shared_preload_libraries.  "what" names the feature for the message.
 */
void
distsys_require_preload(const char *what)
{
	if (distsys_preloaded)
		return;

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s requires distsys to be loaded via shared_preload_libraries", what),
			 errdetail("distsys keeps this state in shared memory, which is set up only when the server starts."),
			 errhint("Add distsys to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * distsys_register_worker: register one of distsys's background workers,
 * connected to shared memory and to a database, started once the server
 * accepts writes, and restarted restart_s seconds after it dies.
 */
void
distsys_register_worker(const char *function, const char *name, int restart_s)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = restart_s;
	strlcpy(worker.bgw_library_name, "distsys", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, name, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * distsys_name_hash: a backend-local hash table keyed by a name of up to
 * NAMEDATALEN - 1 bytes (the key is the entry's first member).
 */
HTAB *
distsys_name_hash(const char *what, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = entrysize;
	return hash_create(what, 16, &ctl, HASH_ELEM | HASH_STRINGS);
}

/*
 * distsys_text_arg: text argument n of a non-strict function as a C string;
 * NULL is an error naming what the argument is.
 */
char *
distsys_text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * distsys_commit_durably: make the current transaction's commit wait for
 * the local WAL flush, and for the synchronous standbys the server is
 * configured with, whatever synchronous_commit the session chose: for a
 * commit that others act on as soon as they see it (a 2PC decision, an
 * outbox message the relay publishes), so that a crash or a failover to a
 * synchronous standby cannot undo what was already acted on.  The raised
 * setting is transaction-local (SET LOCAL); remote_apply is kept.
 */
void
distsys_commit_durably(void)
{
	ForceSyncCommit();
	if (synchronous_commit < SYNCHRONOUS_COMMIT_REMOTE_FLUSH)
		(void) set_config_option("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

PG_FUNCTION_INFO_V1(distsys_version);

/*
 * distsys_version: the version of the loaded library, which may differ from
 * the installed SQL version after an upgrade that has not been applied.
 */
Datum
distsys_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(DISTSYS_VERSION));
}

/*
 * distsys_cxt_alloc, distsys_cxt_realloc, distsys_cxt_free: a consensus
 * core's allocator over memory context ctx (distsys.h).
 */
void *
distsys_cxt_alloc(void *ctx, size_t size)
{
	return MemoryContextAlloc((MemoryContext) ctx, size);
}

void *
distsys_cxt_realloc(void *ctx, void *ptr, size_t size)
{
	return ptr ? repalloc(ptr, size) : MemoryContextAlloc((MemoryContext) ctx, size);
}

void
distsys_cxt_free(void *ctx, void *ptr)
{
	if (ptr)
		pfree(ptr);
}
