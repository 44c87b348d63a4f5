/*-------------------------------------------------------------------------
 *
 * dtx.h
 *	  The two-phase commit coordinator: shared declarations.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_DTX_H
#define DISTSYS_DTX_H

#include "access/transam.h"
#include "access/xact.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/hsearch.h"
#include "libpq-fe.h"

#define DTX_GID_PREFIX		"distsys"
#define DTX_GID_MAX			200 /* PostgreSQL's limit on a GID */

/*
 * Which server and database a node's connection reaches: its
 * system_identifier (pg_control_system(); a streaming standby shares its
 * primary's, a restored dump or a new cluster does not) and the oid of the
 * database.  sysid 0: unknown.
 */
typedef struct DtxServerId
{
	uint64		sysid;
	Oid			dboid;
} DtxServerId;

/*
 * A DtxServerId in a GID: 16 and 8 hex digits, fixed width (its sysid and
 * dboid, in that order).
 */
#define DTX_SERVER_ID_HEX	"%016" INT64_MODIFIER "x%08x"
#define DTX_SERVER_ID_HEX_LEN 24

/*
 * Two columns that say whether the role may call pg_control_system() and
 * which database this is; see dtx_server_id.  The call itself cannot be in
 * the same statement: a query that names a function the role may not
 * execute fails as a whole (the executor checks it at start-up), even
 * where a CASE would never call it.
 */
#define DTX_SERVER_ID_PROBE \
	"pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')," \
	" (SELECT d.oid FROM pg_catalog.pg_database d" \
	" WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"

/* Where a participant's remote transaction stands in this local one. */
typedef enum DtxState
{
	DTX_IDLE,					/* no remote transaction open */
	DTX_OPEN,					/* BEGIN sent and answered */
	DTX_PREPARED,				/* PREPARE TRANSACTION answered */
	DTX_DECIDING,				/* COMMIT sent to the deciding writer */
	DTX_DONE					/* committed in one phase */
} DtxState;

/*
 * Where the decision of a distributed transaction is kept: in the
 * coordinator's dtx_decisions (its local commit decides), or in the commit
 * of one writing node (the last agent: that node's transaction, identified
 * by its xid, commits in one phase, and its outcome is the decision).  The
 * node is named by the registry, which a restore or a forced re-point can
 * move to another server; its identity tells recovery whether the server
 * the name reaches now is the one that decided (dtx_recover.c).
 */
typedef struct DtxDecider
{
	char		node[NAMEDATALEN];	/* "" for the coordinator */
	uint64		xid;			/* the node's transaction (xid8) */
	DtxServerId server;			/* the server that decided; sysid 0: not
								 * recorded (a GID of an earlier version) */
} DtxDecider;

/*
 * The hash key of a participant (the first members of DtxParticipant): a
 * node, and the local role whose statements run there.  Two roles never
 * share a remote session, so none sees the session state another's
 * statements left there (dtx.c).
 */
typedef struct DtxParticipantKey
{
	char		node[NAMEDATALEN];
	Oid			role;			/* GetUserId() of the statements it runs */
} DtxParticipantKey;

/* One node's connection and its part in the current local transaction. */
typedef struct DtxParticipant
{
	char		node[NAMEDATALEN];	/* hash key (DtxParticipantKey) */
	Oid			role;			/* hash key (DtxParticipantKey) */
	char	   *conninfo;		/* what conn was opened with (TopMemoryContext) */
	uint64		conninfo_version;	/* registry version it was looked up at, + 1 */
	PGconn	   *conn;
	DtxState	state;
	uint64		xid;			/* its remote xid8 once it wrote, else 0 */
	uint64		used;			/* when it last ran a statement (a counter) */
	bool		can_decide;		/* it has distsys.dtx_marks we may insert into,
								 * and its server is known */
	DtxServerId server;			/* the server conn reaches (check_slots) */
	bool		busy;			/* a statement was sent and not fully read */
	bool		finishing;		/* that statement is the COMMIT (PREPARED) of
								 * a committed transaction, sent by
								 * distsys.dtx_async_finish: read before reuse */
	bool		finishing_prepared; /* and it is a COMMIT PREPARED of gid */
	bool		stalled;		/* it did not answer within the timeout */
	bool		broken;			/* a savepoint rollback failed: must abort */
	bool		begin_unconfirmed;	/* BEGIN sent with a statement not yet
									 * answered */
	int			depth;			/* remote nesting: 1 + the savepoints made */
	int			release_from;	/* savepoint level to release, or 0 */
	TimestampTz slots_checked_at;	/* last free-slot check (check_slots) */
	char		gid[DTX_GID_MAX];
} DtxParticipant;

/*
 * The savepoint a node's transaction gets for a local subtransaction of
 * nesting level %d (dtx.c, dtx_xact.c).
 */
#define DTX_SAVEPOINT "distsys_%d"

/*
 * Puts a node's session back to the identity its conninfo logged in as,
 * undoing a SET ROLE or SET SESSION AUTHORIZATION of the user's
 * statements: sent with every BEGIN (dtx.c), PREPARE TRANSACTION and last
 * agent's mark (dtx_xact.c), so a prepared transaction belongs to that
 * identity, which recovery connects as and so may finish it, and a mark
 * is written by it.
 */
#define DTX_RESET_IDENTITY "RESET SESSION AUTHORIZATION; RESET ROLE; "

/* Fault points for tests (distsys.dtx_fault). */
typedef enum DtxFault
{
	DTX_FAULT_NONE,
	DTX_FAULT_AFTER_SOME_PREPARES,
	DTX_FAULT_AFTER_DECISION,
	DTX_FAULT_AFTER_SOME_COMMITS,
	DTX_FAULT_WHILE_DECIDING	/* COMMIT sent to the deciding node, no answer read */
} DtxFault;

/* The coordinator's outcome of a prepared participant, from its GID. */
typedef enum DtxOutcome
{
	DTX_OUTCOME_COMMIT,			/* decision row present: commit it */
	DTX_OUTCOME_ABORT,			/* ended without one: roll it back */
	DTX_OUTCOME_RUNNING,		/* its coordinator is committing it right now */
	DTX_OUTCOME_UNKNOWN,		/* its deciding node cannot tell now */
	DTX_OUTCOME_FOREIGN			/* not a GID of this coordinator */
} DtxOutcome;

/* dtx.c */
extern HTAB *dtx_participants;
extern void dtx_xact_init(void);
extern void dtx_forget_participant(DtxParticipant *p);
extern void dtx_finish_read(DtxParticipant *p);
extern void dtx_hold_registry(DtxParticipant **ps, int n);
extern bool dtx_node_in_transaction(const char *node);
extern void dtx_check_broken(DtxParticipant *p);
extern DtxServerId dtx_server_id(PGconn *conn, const char *node, PGresult *probe, int column);

/* dtx_xact.c */
extern void dtx_xact_callback(XactEvent event, void *arg);
extern void dtx_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								 SubTransactionId parentSubid, void *arg);
extern void dtx_make_gid(char *gid, FullTransactionId fxid, uint64 id, int index,
						 const DtxDecider *decider);
extern char *dtx_coordinator_name(void);

/* dtx_recover.c */
extern DtxOutcome dtx_outcome(const char *gid, FullTransactionId *fxid, DtxDecider *decider);
extern bool dtx_parse_gid(const char *gid, FullTransactionId *fxid, uint64 *id,
						  DtxDecider *decider);
extern bool dtx_node_in_use(const char *node);
extern const char *dtx_outcome_name(DtxOutcome outcome);
extern int	dtx_recover_all(int elevel, bool backoff);
extern void dtx_worker_register(void);

/* dtx_marks.c */
extern char *dtx_marks_ours(void);
extern void dtx_marks_visit(const char *node, PGconn *conn);
extern void dtx_marks_end_pass(List *still_prepared, bool all_listed);

/* dtx_shmem.c */
extern Size dtx_shmem_size(void);
extern void dtx_shmem_init(void);
extern void dtx_committing_set(uint64 id);
extern bool dtx_committing_now(uint64 id);
extern uint64 dtx_registry_version(void);
extern void dtx_registry_changed(void);

/* node.c */
extern char *node_conninfo(const char *node);
extern char *node_conninfo_if_any(const char *node);
extern List *node_names(void);
extern void node_registry_lock(LOCKMODE mode);
extern bool node_registry_changed_here(void);

/* settings (registered in common/guc.c) */
extern int	distsys_dtx_prepare_timeout_ms;
extern int	distsys_dtx_commit_timeout_ms;
extern int	distsys_dtx_lock_timeout_ms;
extern int	distsys_dtx_prepared_reserve;
extern int	distsys_dtx_fault;
extern bool distsys_dtx_last_agent;
extern bool distsys_dtx_async_finish;
extern int	distsys_dtx_recovery_interval_s;
extern char *distsys_dtx_recovery_database;

#endif							/* DISTSYS_DTX_H */
