/*-------------------------------------------------------------------------
 *
 * dtx_xact.c
 *	  The commit protocol of distributed transactions, driven by the local
 *	  transaction's callbacks.
 *
 * PRE_COMMIT (errors still abort everything):
 *	1. The writers are known without asking: every statement sent to a
 *	   node carries a probe of its xid until it has one (dtx.c).
 *	2. No writer: nothing to do.  One writer, no local write and not
 *	   SERIALIZABLE (see step 4): that writer is committed now, in one
 *	   phase; if that fails the local transaction, which wrote nothing,
 *	   fails with it.  That commit decides as a last agent's does (step
 *	   3, without a mark): its answer is waited for without a cancel, up
 *	   to distsys.dtx_commit_timeout, and a lost one is 08007.
 *	3. Several writers, no local write and not SERIALIZABLE (the
 *	   last-agent case, unless distsys.dtx_last_agent is off or no writer
 *	   can keep a mark in distsys.dtx_marks): every writer but one gets
 *	   PREPARE TRANSACTION, all at once, under distsys.dtx_prepare_timeout;
 *	   then the last one (the writer used last among those that can keep a
 *	   mark) is committed in one phase, with the mark of the transaction's
 *	   id inserted first, and that commit is the decision.
 *	   The other writers' GIDs name that node and its xid, so recovery
 *	   reads the outcome there (pg_xact_status).  No local write, no local
 *	   WAL flush: three flushes per two-node transaction instead of five.
 *	   Once the last agent has committed, the transaction has committed,
 *	   even if something fails the local commit after this callback; when
 *	   its answer is lost, the outcome is unknown here (08007) and recovery
 *	   settles it from that node.
 *	4. Otherwise (local writes, or SERIALIZABLE, whose commit-time check
 *	   could still fail the local commit) every writer is prepared as in
 *	   step 3 and the decision record (distsys.dtx_decisions) is inserted
 *	   in the local transaction.  The local commit that follows makes it
 *	   durable: that commit is the global commit point.
 * COMMIT: COMMIT PREPARED to every prepared participant and COMMIT to the
 *	   read-only ones, all at once, under distsys.dtx_commit_timeout.  A
 *	   failure here is a WARNING: the transaction is committed, and the
 *	   recovery worker (dtx_recover.c) finishes what did not get through.
 *	   With distsys.dtx_async_finish the statements are sent and not waited
 *	   for (send_finish): the client's COMMIT returns a round trip sooner,
 *	   and each answer is read (dtx_finish_read) before the session next
 *	   uses that node, so the session's own later statements there come
 *	   after it; other sessions may see the old rows there, or wait on
 *	   their locks, until it arrives.
 * ABORT: ROLLBACK PREPARED or ROLLBACK everywhere, all at once; what cannot
 *	   be reached is rolled back by recovery, which finds no decision.  (A
 *	   last agent that committed all the same makes it a COMMIT round; one
 *	   whose answer is lost leaves the prepared ones to recovery.)
 *
 * GIDs are distsys:<system id>:<database oid>:<coordinator xid>:<id>:<n>,
 * followed by :<xid>:<server>:<node> of the deciding node in the
 * last-agent case (<server>: its system identifier and database oid in
 * hex, DTX_SERVER_ID_HEX, so that recovery can tell when the registry
 * names another server now), where id is a random 64-bit id of the
 * distributed transaction, also in its decision row and published while
 * it commits (dtx_shmem.c): recovery recognises its own transactions and
 * finds their outcome from the GID.
 * In step 4, before the first PREPARE, the local commit is made
 * synchronous, whatever synchronous_commit says, since it is the decision;
 * in step 3 the last agent's commit is made synchronous there for the same
 * reason.  Each PREPARE and the last agent's mark first put the node's
 * session back to the user its conninfo logs in as (DTX_RESET_IDENTITY):
 * PostgreSQL lets only that owner (or a superuser) finish a prepared
 * transaction, and recovery connects as that user, so a SET ROLE among the
 * user's statements must not make the prepared part someone else's.
 * distsys.dtx_fault kills this backend (SIGKILL, as a crash would) at the
 * points the tests need.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "distsys.h"
#include "dtx.h"
#include "remote.h"
#include "spi_util.h"

static SPIPlanPtr decision_plan;

/* What the last agent's commit (step 3) answered. */
typedef enum AgentOutcome
{
	AGENT_COMMITTED,
	AGENT_ROLLED_BACK,
	AGENT_UNKNOWN				/* no answer: only the node knows */
} AgentOutcome;

/*
 * The node whose one-phase commit decides the transaction now committing
 * (its last agent, or its sole writer when last_agent_sole), or NULL.
 */
static DtxParticipant *last_agent = NULL;
static bool last_agent_sole;
static AgentOutcome last_agent_outcome;

/* What one round of statements sent to several participants is for. */
typedef enum RoundKind
{
	ROUND_PREPARE,
	ROUND_COMMIT,				/* after the local commit: never an ERROR */
	ROUND_ROLLBACK				/* after the local abort: never an ERROR */
} RoundKind;

#define ROUND_IS_FINISH(kind) ((kind) == ROUND_COMMIT || (kind) == ROUND_ROLLBACK)

/*
 * dtx_make_gid: the GID of participant number index of the distributed
 * transaction id, run by the coordinator transaction fxid (invalid: none)
 * and decided by decider (NULL: by the coordinator).
 *
 * The length budget (PostgreSQL takes at most DTX_GID_MAX - 1 = 199
 * bytes), at its longest: "distsys" and five fields of at most 20, 10, 1
 * (a last agent's GID has no coordinator xid: "0"), 19 and 10 digits are
 * 72 bytes; the decider's xid (20 digits), its server in fixed-width hex
 * (DTX_SERVER_ID_HEX, 24) and its name (63, node.c) with their colons add
 * 110: 182.  The server is hex because decimal would take 30 bytes.
 */
void
dtx_make_gid(char *gid, FullTransactionId fxid, uint64 id, int index,
			 const DtxDecider *decider)
{
	int			len;

	len = snprintf(gid, DTX_GID_MAX, "%s:" UINT64_FORMAT ":%u:" UINT64_FORMAT ":" UINT64_FORMAT ":%d",
				   DTX_GID_PREFIX, GetSystemIdentifier(), MyDatabaseId,
				   U64FromFullTransactionId(fxid), id, index);
	if (decider != NULL && decider->node[0] != '\0')
		len += snprintf(gid + len, DTX_GID_MAX - len, ":" UINT64_FORMAT ":" DTX_SERVER_ID_HEX ":%s",
						decider->xid, decider->server.sysid, decider->server.dboid,
						decider->node);
	/* a cut GID would name another transaction: cannot happen (above) */
	if (len >= DTX_GID_MAX)
		elog(ERROR, "distributed transaction GID too long: %s", gid);
}

/*
 * fault_point: die here, as a crash would, if distsys.dtx_fault says so.
 */
static void
fault_point(DtxFault fault)
{
	if (distsys_dtx_fault != fault)
		return;
	/* a crash, not an error: no abort processing, no callbacks */
	kill(MyProcPid, SIGKILL);
	for (;;)
		pg_usleep(1000000L);
}

/*
 * active_participants: the participants of the current transaction, in a
 * palloc'd array; sets *n.
 */
static DtxParticipant **
active_participants(int *n)
{
	HASH_SEQ_STATUS seq;
	DtxParticipant *p;
	DtxParticipant **all;

	*n = 0;
	if (dtx_participants == NULL)
		return NULL;
	all = palloc(sizeof(DtxParticipant *) * (hash_get_num_entries(dtx_participants) + 1));
	hash_seq_init(&seq, dtx_participants);
	while ((p = hash_seq_search(&seq)) != NULL)
		if (p->state != DTX_IDLE)
			all[(*n)++] = p;
	return all;
}

/*
 * prepared_status: pg_xact_status on p of its prepared transaction's xid
 * ("committed", "aborted", "in progress"), or NULL if p cannot tell now.
 * The xid cannot have been handed out again: PREPARE flushed it.  After
 * the local commit: never an ERROR, never interrupted, and bounded by
 * distsys.dtx_commit_timeout; a node that does not answer is dropped.
 */
static char *
prepared_status(DtxParticipant *p)
{
	char	   *sql = psprintf("SELECT pg_catalog.pg_xact_status('" UINT64_FORMAT "'::pg_catalog.xid8)",
							   p->xid);
	PGresult   *res;
	bool		timed_out;
	char	   *status = NULL;

	if (p->conn == NULL || PQstatus(p->conn) != CONNECTION_OK || !remote_send(p->conn, sql))
		return NULL;
	res = remote_wait_result(p->conn, distsys_dtx_commit_timeout_ms, REMOTE_UNINTERRUPTIBLE, &timed_out);
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		PQnfields(res) == 1 && !PQgetisnull(res, 0, 0))
		status = pstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (timed_out)
		dtx_forget_participant(p);
	return status;
}

/*
 * resolved_elsewhere: COMMIT PREPARED of p's GID (sql) found it gone
 * (42704) or busy (55000): someone else resolved it, or is resolving it.
 * This coordinator's recovery leaves it alone while this backend commits,
 * and another coordinator only commits what it adopts; but a promoted
 * standby of this server (the old primary still running) rolls back what
 * its copy of the decisions lacks.  So only p's word that the transaction
 * committed there lets the client's COMMIT stand silently; otherwise the
 * client is told the outcome is not what it seems (08007, as for a
 * deciding COMMIT whose answer was lost), with what p said.
 */
static void
resolved_elsewhere(DtxParticipant *p, const char *sql)
{
	char	   *status = prepared_status(p);

	if (status != NULL && strcmp(status, "committed") == 0)
		ereport(LOG,
				(errmsg("node \"%s\": %s: already committed there, by recovery", p->node, sql)));
	else if (status != NULL && strcmp(status, "aborted") == 0)
		ereport(WARNING,
				(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
				 errmsg("node \"%s\" rolled back its part of the distributed transaction this server committed", p->node),
				 errdetail("%s found nothing to commit, and transaction " UINT64_FORMAT " there is aborted: another server resolved it, such as a standby of this server promoted without this decision.",
						   sql, p->xid),
				 errhint("If another server was promoted, this one is no longer the primary: treat the transaction as not committed and retry it there.")));
	else
		ereport(WARNING,
				(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
				 errmsg("the outcome of the distributed transaction on node \"%s\" is unknown", p->node),
				 errdetail("%s found it resolved by another server, such as a promoted standby of this one, and transaction " UINT64_FORMAT " there is %s.",
						   sql, p->xid, status != NULL ? status : "of unknown status"),
				 errhint("Check on node \"%s\" whether the work was done before relying on it or retrying it.", p->node)));
}

/*
 * round_failed: after the local commit (committed) or abort, a failure is
 * a WARNING (recovery finishes the work) and an unusable connection is
 * dropped.  Frees res.
 */
static void
round_failed(DtxParticipant *p, PGresult *res, const char *sql, bool timed_out,
			 bool committed)
{
	int			code = remote_errcode(res);

	/*
	 * Gone (42704) or busy (55000): someone resolved it or is resolving it.
	 * A ROLLBACK PREPARED needs no more (nothing commits a transaction whose
	 * decision did not commit); a COMMIT PREPARED asks p what became of it.
	 */
	if (code == ERRCODE_UNDEFINED_OBJECT || code == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
	{
		PQclear(res);
		if (committed && p->state == DTX_PREPARED)
			resolved_elsewhere(p, sql);
		else
			ereport(LOG,
					(errmsg("node \"%s\": %s: already resolved or being resolved by recovery",
							p->node, sql)));
	}
	else if (timed_out)
		ereport(WARNING,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("node \"%s\" did not answer within %d ms", p->node, distsys_dtx_commit_timeout_ms),
				 errdetail("The recovery worker will finish the transaction there."),
				 remote_errcontext(p->node, sql)));
	else
		remote_report(WARNING, p->conn, res, p->node, sql);
	if (timed_out || PQstatus(p->conn) != CONNECTION_OK)
		dtx_forget_participant(p);
}

/*
 * remaining_ms: milliseconds left until deadline (0: no deadline), at
 * least 1 so that an expired deadline still reads what has arrived.
 */
static int
remaining_ms(TimestampTz deadline)
{
	if (deadline == 0)
		return 0;
	return (int) Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline));
}

/*
 * The first failure of a round before commit, raised once every answer is
 * in (so no connection is left busy).
 */
typedef struct RoundFailure
{
	int			index;			/* the participant; -1: none */
	PGresult   *res;			/* its answer, or NULL (none, or not_prepared) */
	bool		not_prepared;	/* PREPARE found its transaction ended */
} RoundFailure;

/*
 * round_answer: read the answer of p to sql, its statement number i in a
 * round of kind ending at deadline; whether it succeeded.  A failure after
 * commit is round_failed's; before it, the first one is kept in *failure.
 */
static bool
round_answer(DtxParticipant *p, const char *sql, int i, RoundKind kind,
			 TimestampTz deadline, RoundFailure *failure)
{
	RemoteWait	how = ROUND_IS_FINISH(kind) ? REMOTE_UNINTERRUPTIBLE : REMOTE_INTERRUPTIBLE;
	PGresult   *res = NULL;
	bool		timed_out = false;
	bool		ok;

	if (p->conn != NULL && p->busy)
		res = remote_wait_result(p->conn, remaining_ms(deadline), how, &timed_out);
	p->busy = timed_out;
	p->stalled = timed_out;
	ok = res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
						 PQresultStatus(res) == PGRES_TUPLES_OK);
	/* a transaction the statements ended answers PREPARE with ROLLBACK */
	if (ok && kind == ROUND_PREPARE &&
		strcmp(PQcmdStatus(res), "PREPARE TRANSACTION") != 0)
	{
		PQclear(res);
		p->state = DTX_OPEN;
		if (failure->index < 0)
		{
			failure->index = i;
			failure->not_prepared = true;
		}
		return false;
	}
	if (ok)
		PQclear(res);
	else if (ROUND_IS_FINISH(kind))
		round_failed(p, res, sql, timed_out, kind == ROUND_COMMIT);
	else if (failure->index < 0)
		failure->index = i, failure->res = res;
	else
		PQclear(res);
	if (ok && kind == ROUND_PREPARE)
		fault_point(DTX_FAULT_AFTER_SOME_PREPARES);
	if (ok && kind == ROUND_COMMIT && p->state == DTX_PREPARED)
		fault_point(DTX_FAULT_AFTER_SOME_COMMITS);
	return ok;
}

/*
 * round_raise: the ERROR for failure, a round's first failure (frees its
 * result).
 */
static void
round_raise(DtxParticipant **ps, char **sqls, RoundFailure *failure, int timeout)
{
	DtxParticipant *p = ps[failure->index];

	if (failure->not_prepared)
		ereport(ERROR,
				(errcode(ERRCODE_TRANSACTION_ROLLBACK),
				 errmsg("the remote transaction on node \"%s\" was rolled back before PREPARE", p->node),
				 errhint("Do not end the remote transaction (COMMIT, ROLLBACK) inside dtx_exec.")));
	if (failure->res == NULL && p->busy)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("node \"%s\" did not answer within %d ms", p->node, timeout),
				 errhint("The limit is distsys.dtx_prepare_timeout."),
				 remote_errcontext(p->node, sqls[failure->index])));
	remote_report(ERROR, p->conn, failure->res, p->node, sqls[failure->index]);
}

/*
 * run_round: send each participant's statement (sqls[i]; NULL: skip it),
 * then collect every answer.  Before commit the first failure is raised
 * once all answers are in; after it, see round_failed.  ok[i] says which
 * succeeded.
 */
static void
run_round(DtxParticipant **ps, char **sqls, int n, RoundKind kind, bool *ok)
{
	int			timeout = ROUND_IS_FINISH(kind) ? distsys_dtx_commit_timeout_ms :
		kind == ROUND_PREPARE ? distsys_dtx_prepare_timeout_ms : 0;
	RoundFailure failure = {-1, NULL, false};
	RoundFailure *volatile f = &failure;
	TimestampTz deadline = 0;
	int			i;

	/* the timeout bounds the whole round, not each node's answer */
	if (timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout);
	/*
	 * A PREPARE runs as the identity the node's conninfo logged in as (see
	 * DTX_RESET_IDENTITY); errors show the PREPARE alone.
	 */
	for (i = 0; i < n; i++)
		if (sqls[i] != NULL && ps[i]->conn != NULL)
			ps[i]->busy = remote_send(ps[i]->conn, kind == ROUND_PREPARE ?
									  psprintf(DTX_RESET_IDENTITY "%s", sqls[i]) : sqls[i]);
	PG_TRY();
	{
		for (i = 0; i < n; i++)
			ok[i] = sqls[i] != NULL &&
				round_answer(ps[i], sqls[i], i, kind, deadline, f);
	}
	PG_CATCH();
	{
		/* a cancel while waiting for the others: the failure held is libpq's */
		PQclear(f->res);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (f->index >= 0)
		round_raise(ps, sqls, f, timeout);
}

/*
 * write_decision: insert the decision record of transaction fxid.
 */
static void
write_decision(FullTransactionId fxid, uint64 id, DtxParticipant **ps, int n)
{
	Datum	   *names = palloc(sizeof(Datum) * n);
	Oid			types[3] = {INT8OID, XID8OID, TEXTARRAYOID};
	Datum		values[3];
	int			i,
				k = 0;

	for (i = 0; i < n; i++)
		if (ps[i]->state == DTX_PREPARED)
			names[k++] = CStringGetTextDatum(ps[i]->node);
	values[0] = Int64GetDatum((int64) id);
	values[1] = FullTransactionIdGetDatum(fxid);
	values[2] = PointerGetDatum(construct_array(names, k, TEXTOID, -1, false, TYPALIGN_INT));
	/* at pre-commit the statement's snapshot is gone: SPI needs one */
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	distsys_spi_run(&decision_plan,
					"INSERT INTO distsys.dtx_decisions (id, xid, participants) VALUES ($1, $2, $3)",
					3, types, values, NULL, false);
	SPI_finish();
	PopActiveSnapshot();
}

/*
 * new_transaction_id: a random, non-zero id for a distributed transaction.
 */
static uint64
new_transaction_id(void)
{
	uint64		id = 0;

	while (id == 0 || (int64) id < 0)
		if (!pg_strong_random(&id, sizeof(id)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random distributed transaction id")));
	return id;
}

/*
 * prepare_round: PREPARE TRANSACTION on every writer but skip, with GIDs of
 * transaction id, coordinator xid fxid and decider (NULL: the coordinator).
 */
static void
prepare_round(DtxParticipant **ps, int n, FullTransactionId fxid, uint64 id,
			  const DtxDecider *decider, DtxParticipant *skip)
{
	char	  **sqls = palloc0(sizeof(char *) * n);
	bool	   *ok = palloc(sizeof(bool) * n);
	int			i,
				k = 0;

	for (i = 0; i < n; i++)
	{
		if (ps[i]->xid == 0 || ps[i] == skip)
			continue;
		dtx_make_gid(ps[i]->gid, fxid, id, ++k, decider);
		ps[i]->state = DTX_PREPARED;	/* an abort now rolls back by GID */
		sqls[i] = psprintf("PREPARE TRANSACTION '%s'", ps[i]->gid);
	}
	/* recovery leaves it alone from now until our commit or abort ends */
	dtx_committing_set(id);
	run_round(ps, sqls, n, ROUND_PREPARE, ok);
}

/*
 * prepare_writers: step 4.
 */
static void
prepare_writers(DtxParticipant **ps, int n)
{
	FullTransactionId fxid = GetTopFullTransactionId();
	uint64		id = new_transaction_id();

	distsys_commit_durably();	/* the local commit is the decision */
	prepare_round(ps, n, fxid, id, NULL, NULL);
	write_decision(fxid, id, ps, n);
}

/*
 * dtx_coordinator_name: this coordinator as its last agents' marks name it.
 */
char *
dtx_coordinator_name(void)
{
	return psprintf(UINT64_FORMAT ":%u", GetSystemIdentifier(), MyDatabaseId);
}

/*
 * clean_error: whether res is an error p reported at ERROR severity on a
 * connection still up, so its transaction rolled back and it lives on.  A
 * lost connection (libpq then makes up an error of its own), FATAL or
 * PANIC say nothing of the outcome: the commit may have happened.
 */
static bool
clean_error(DtxParticipant *p, PGresult *res)
{
	const char *severity;

	if (res == NULL || PQresultStatus(res) != PGRES_FATAL_ERROR)
		return false;
	severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	return severity != NULL && strcmp(severity, "ERROR") == 0 &&
		p->conn != NULL && PQstatus(p->conn) == CONNECTION_OK;
}

/*
 * agent_outcome: what the answer res (NULL: none) of p to its deciding
 * message says: only a "ROLLBACK" tag or a clean error is a rollback, and
 * anything unclear is left to the node's mark.  Frees res.
 */
static AgentOutcome
agent_outcome(DtxParticipant *p, PGresult *res)
{
	AgentOutcome outcome = AGENT_UNKNOWN;

	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
		outcome = strcmp(PQcmdStatus(res), "COMMIT") == 0 ? AGENT_COMMITTED : AGENT_ROLLED_BACK;
	else if (clean_error(p, res))
		outcome = AGENT_ROLLED_BACK;
	PQclear(res);
	return outcome;
}

/*
 * agent_answer: wait for the answer to the deciding message sent to p;
 * sets *timed_out.  Not interruptible: once COMMIT is on its way, a cancel
 * here could only turn a commit into an error the client would take for a
 * rollback; the wait is bounded by distsys.dtx_commit_timeout instead.
 */
static PGresult *
agent_answer(DtxParticipant *p, bool *timed_out)
{
	PGresult   *res;

	*timed_out = false;
	if (!p->busy || p->conn == NULL)
		return NULL;
	res = remote_wait_result(p->conn, distsys_dtx_commit_timeout_ms,
							 REMOTE_UNINTERRUPTIBLE, timed_out);
	p->busy = false;
	return res;
}

/*
 * decider_fate: the sentence that says what the outcome of the transaction
 * hangs on when the deciding node p did not answer.
 */
static char *
decider_fate(DtxParticipant *p)
{
	if (last_agent_sole)
		return psprintf("The transaction committed if and only if it committed on node \"%s\", its only writer.", p->node);
	return psprintf("The transaction commits if and only if it commits on node \"%s\"; its other nodes stay prepared until recovery reads that outcome there.", p->node);
}

/*
 * await_decision: wait for the answer of p to sql, the one-phase COMMIT
 * (last agent or sole writer) already sent to it, which decides the
 * transaction; an ERROR unless it committed.  The wait cannot be
 * cancelled (agent_answer), so a client is never told of a failure while
 * the node went on to commit: no answer in time, or a lost connection, is
 * 08007, whose outcome only that node knows.
 */
static void
await_decision(DtxParticipant *p, const char *sql)
{
	PGresult   *res;
	bool		timed_out;

	res = agent_answer(p, &timed_out);
	/* on an ERROR below, settle_last_agent() ends p's part in the abort */
	if (clean_error(p, res))
	{
		/* it rolled back: report why, as for any remote statement */
		last_agent_outcome = AGENT_ROLLED_BACK;
		remote_report(ERROR, p->conn, res, p->node, sql);
	}
	last_agent_outcome = agent_outcome(p, res);
	if (last_agent_outcome == AGENT_COMMITTED)
	{
		p->state = DTX_DONE;
		return;
	}
	if (last_agent_outcome == AGENT_ROLLED_BACK)
		ereport(ERROR,
				(errcode(ERRCODE_TRANSACTION_ROLLBACK),
				 errmsg("the remote transaction on node \"%s\" rolled back at COMMIT", p->node)));
	ereport(ERROR,
			(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
			 errmsg("node \"%s\" did not answer the COMMIT that decides the distributed transaction", p->node),
			 timed_out ? errdetail("No answer within %d ms (distsys.dtx_commit_timeout). %s",
								   distsys_dtx_commit_timeout_ms, decider_fate(p)) :
			 errdetail("The connection was lost. %s", decider_fate(p)),
			 last_agent_sole ?
			 errhint("Check on node \"%s\" whether the work was done before retrying it.", p->node) :
			 errhint("See distsys.dtx_in_doubt; the recovery worker or SELECT distsys.dtx_recover() finishes it.")));
}

/*
 * DTX_DECIDE_DURABLY: what a deciding writer runs before its COMMIT.  That
 * commit is the decision, so it must be flushed before the answer, as the
 * coordinator's own decision is (distsys_commit_durably): with the node's
 * synchronous_commit below remote flush, a crash or a failover there could
 * forget a commit the client was told of.  Raised for this transaction
 * only; remote_apply is kept.
 */
#define DTX_DECIDE_DURABLY \
	"SELECT pg_catalog.set_config('synchronous_commit', 'on', true)" \
	" WHERE pg_catalog.current_setting('synchronous_commit')" \
	" OPERATOR(pg_catalog.<>) ALL ('{on,remote_apply}'::pg_catalog.text[]); "

/*
 * commit_last_agent: step 3's one-phase commit of the deciding writer p,
 * with the mark of transaction id inserted first, in the same message; an
 * ERROR unless it committed.
 */
static void
commit_last_agent(DtxParticipant *p, uint64 id)
{
	char	   *sql = psprintf(DTX_DECIDE_DURABLY DTX_RESET_IDENTITY
							   "INSERT INTO distsys.dtx_marks (id, coordinator) VALUES ("
							   INT64_FORMAT ", '%s'); COMMIT",
							   (int64) id, dtx_coordinator_name());

	last_agent = p;
	last_agent_sole = false;
	last_agent_outcome = AGENT_UNKNOWN;
	p->state = DTX_DECIDING;
	p->busy = remote_send(p->conn, sql);
	fault_point(DTX_FAULT_WHILE_DECIDING);
	await_decision(p, sql);
}

/*
 * commit_with_last_agent: step 3 with agent deciding.
 */
static void
commit_with_last_agent(DtxParticipant **ps, int n, DtxParticipant *agent)
{
	DtxDecider	decider;
	uint64		id = new_transaction_id();

	strlcpy(decider.node, agent->node, sizeof(decider.node));
	decider.xid = agent->xid;
	/* the server agent's connection reaches: the one whose commit decides */
	decider.server = agent->server;
	prepare_round(ps, n, InvalidFullTransactionId, id, &decider, agent);
	commit_last_agent(agent, id);
}

/*
 * last_agent_of: the writer used last among those that can keep a mark
 * (distsys installed there, and we may insert into dtx_marks), or NULL.
 */
static DtxParticipant *
last_agent_of(DtxParticipant **ps, int n)
{
	DtxParticipant *agent = NULL;
	int			i;

	/* the writer used last: a caller can choose it, and it is often the busiest */
	for (i = 0; i < n; i++)
		if (ps[i]->xid != 0 && ps[i]->can_decide &&
			(agent == NULL || ps[i]->used > agent->used))
			agent = ps[i];
	return agent;
}

/*
 * commit_sole_writer: step 2's one-phase commit of the only writer, which
 * decides the transaction as a last agent's commit does (without a mark:
 * nothing else waits for its outcome), so is made durable and waited for
 * the same way.
 */
static void
commit_sole_writer(DtxParticipant **ps, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		DtxParticipant *p = ps[i];

		if (p->xid == 0)
			continue;
		last_agent = p;
		last_agent_sole = true;
		last_agent_outcome = AGENT_UNKNOWN;
		p->state = DTX_DECIDING;
		p->busy = remote_send(p->conn, DTX_DECIDE_DURABLY "COMMIT");
		await_decision(p, DTX_DECIDE_DURABLY "COMMIT");
		return;
	}
}

/*
 * dtx_pre_commit: PRE_COMMIT, steps 2 to 4 above, for the participants ps.
 */
static void
dtx_pre_commit(DtxParticipant **ps, int n)
{
	int			i,
				writers = 0;
	bool		one_phase;
	DtxParticipant *agent;

	for (i = 0; i < n; i++)
	{
		dtx_check_broken(ps[i]);
		writers += ps[i]->xid != 0 ? 1 : 0;
	}
	if (writers == 0)
		return;

	/*
	 * A remote one-phase commit decides only when nothing after this step can
	 * fail the local commit: SERIALIZABLE's commit-time conflict check could,
	 * so it gets the local decision.
	 */
	one_phase = !FullTransactionIdIsValid(GetTopFullTransactionIdIfAny()) &&
		!IsolationIsSerializable();
	agent = one_phase && writers > 1 && distsys_dtx_last_agent ? last_agent_of(ps, n) : NULL;
	if (one_phase && writers == 1)
	{
		/* nothing is prepared: no need to hold node_add and node_remove off */
		commit_sole_writer(ps, n);
		return;
	}
	dtx_hold_registry(ps, n);
	if (agent != NULL)
		commit_with_last_agent(ps, n, agent);
	else
		prepare_writers(ps, n);
}

/*
 * settle_last_agent: in an abort, a last agent whose COMMIT was left
 * unanswered may still answer it; read that answer.  Returns whether the
 * transaction committed all the same.
 */
static bool
settle_last_agent(void)
{
	DtxParticipant *p = last_agent;
	bool		timed_out;

	if (p->state == DTX_DECIDING && p->busy)
		last_agent_outcome = agent_outcome(p, agent_answer(p, &timed_out));
	if (p->state == DTX_DECIDING)
	{
		if (last_agent_outcome == AGENT_UNKNOWN && p->conn != NULL)
			dtx_forget_participant(p);
		/* a failed INSERT leaves its transaction open: finish() ends it */
		p->state = p->conn != NULL && PQtransactionStatus(p->conn) != PQTRANS_IDLE ?
			DTX_OPEN : DTX_DONE;
	}
	return last_agent_outcome == AGENT_COMMITTED;
}

/*
 * settle_busy: make p's connection idle in an abort: a statement that was
 * interrupted is cancelled and its results read; a node that does not
 * answer in time is disconnected (a cancel request could hang just as
 * long; the node rolls back what is not prepared, and recovery resolves
 * what is).
 */
static void
settle_busy(DtxParticipant *p)
{
	bool		timed_out;

	if (p->conn != NULL && p->busy && p->stalled)
		dtx_forget_participant(p);
	if (p->conn == NULL || !p->busy)
		return;
	/*
	 * A remote error is raised here after its results were read: nothing
	 * runs there, and a cancel request now could hit the next statement.
	 */
	if (PQtransactionStatus(p->conn) != PQTRANS_ACTIVE)
	{
		p->busy = false;
		return;
	}
	remote_cancel(p->conn);
	PQclear(remote_wait_result(p->conn, distsys_dtx_commit_timeout_ms,
							   REMOTE_UNINTERRUPTIBLE, &timed_out));
	p->busy = false;
	if (timed_out)
		dtx_forget_participant(p);
}

/*
 * send_finish: distsys.dtx_async_finish: send each participant's sqls[i]
 * (the COMMIT PREPARED or COMMIT of a committed transaction) and return
 * without its answer, which dtx_finish_read reads before the session next
 * uses the node.  The decision is durable already; a node that does not
 * get the statement is finished by recovery, as after a failed round.
 */
static void
send_finish(DtxParticipant **ps, char **sqls, int n)
{
	for (int i = 0; i < n; i++)
	{
		DtxParticipant *p = ps[i];

		if (sqls[i] == NULL || p->conn == NULL)
			continue;
		p->finishing_prepared = p->state == DTX_PREPARED;
		if (remote_send(p->conn, sqls[i]))
			p->busy = p->finishing = true;
		else
			round_failed(p, NULL, sqls[i], false, true);
	}
}

/*
 * dtx_finish_read: read the answer to what send_finish sent p; a failure
 * is reported as in a round after commit (a WARNING; recovery finishes the
 * work), in the session's next transaction that uses p.
 */
void
dtx_finish_read(DtxParticipant *p)
{
	bool		timed_out;
	PGresult   *res = remote_wait_result(p->conn, distsys_dtx_commit_timeout_ms,
										 REMOTE_UNINTERRUPTIBLE, &timed_out);
	DtxState	state = p->state;

	p->busy = timed_out;
	p->finishing = false;
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		PQclear(res);
		return;
	}
	/* round_failed asks a prepared participant what became of its GID */
	p->state = p->finishing_prepared ? DTX_PREPARED : DTX_OPEN;
	round_failed(p, res, p->finishing_prepared ? psprintf("COMMIT PREPARED '%s'", p->gid) : "COMMIT",
				 timed_out, true);
	p->state = state;
}

/*
 * finish: after the local commit or abort, end every participant's remote
 * transaction the way the transaction ended, and forget it.  With a last
 * agent, its outcome is the transaction's; while it is unknown, prepared
 * participants are left to recovery.
 */
static void
finish(DtxParticipant **ps, int n, bool committed)
{
	char	  **sqls = palloc0(sizeof(char *) * n);
	bool	   *ok = palloc(sizeof(bool) * n);
	bool		unknown = false;
	int			i;

	if (last_agent != NULL)
	{
		if (settle_last_agent() && !committed)
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("the distributed transaction committed although the local transaction failed after its decision"),
					 last_agent_sole ?
					 errdetail("Node \"%s\", its only writer, committed it in one phase.", last_agent->node) :
					 errdetail("Node \"%s\" committed it in one phase, and that commit decides; the other nodes are committed too.",
							   last_agent->node)));
		committed = last_agent_outcome == AGENT_COMMITTED;
		unknown = last_agent_outcome == AGENT_UNKNOWN;
		if (unknown)
			ereport(WARNING,
					(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
					 errmsg("the outcome of the distributed transaction is known only to node \"%s\"", last_agent->node),
					 last_agent_sole ?
					 errdetail("It was the only node that wrote; nothing is left prepared, and a retry could apply the work twice.") :
					 errdetail("Its other nodes stay prepared until recovery reads the outcome there.")));
	}
	for (i = 0; i < n; i++)
	{
		DtxParticipant *p = ps[i];

		settle_busy(p);
		if (p->conn == NULL || p->state == DTX_DONE)
			continue;
		if (p->state == DTX_PREPARED && !unknown)
			sqls[i] = psprintf("%s PREPARED '%s'", committed ? "COMMIT" : "ROLLBACK", p->gid);
		else if (p->state != DTX_PREPARED && PQtransactionStatus(p->conn) != PQTRANS_IDLE)
			sqls[i] = committed ? "COMMIT" : "ROLLBACK";
	}
	if (committed)
		fault_point(DTX_FAULT_AFTER_DECISION);
	if (committed && distsys_dtx_async_finish)
		send_finish(ps, sqls, n);
	else
		run_round(ps, sqls, n, committed ? ROUND_COMMIT : ROUND_ROLLBACK, ok);
	for (i = 0; i < n; i++)
	{
		ps[i]->state = DTX_IDLE;
		/* dtx_finish_read may still ask the node about this xid */
		if (!ps[i]->finishing)
			ps[i]->xid = 0;
		ps[i]->depth = ps[i]->release_from = 0;
		ps[i]->broken = ps[i]->stalled = ps[i]->begin_unconfirmed = false;
	}
	last_agent = NULL;
}

/*
 * dtx_xact_callback: the protocol above, on the local transaction's events.
 */
void
dtx_xact_callback(XactEvent event, void *arg)
{
	int			n;
	DtxParticipant **ps = active_participants(&n);

	if (n == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			dtx_pre_commit(ps, n);
			break;
		case XACT_EVENT_COMMIT:
			finish(ps, n, true);
			dtx_committing_set(0);
			break;
		case XACT_EVENT_ABORT:
			finish(ps, n, false);
			dtx_committing_set(0);
			break;
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that has run statements on other nodes"),
					 errdetail("distsys commits distributed transactions itself, with two-phase commit on every node.")));
			break;
		default:
			break;
	}
}

/*
 * rollback_to_savepoint: after the local subtransaction of nesting level
 * level aborted, roll each of ps that ran statements in it back to that
 * level's savepoint, all in one round; a node that cannot be is broken, and
 * the whole transaction must roll back.
 */
static void
rollback_to_savepoint(DtxParticipant **ps, int n, int level)
{
	char	  **sqls = palloc0(sizeof(char *) * n);
	bool	   *ok = palloc(sizeof(bool) * n);
	int			i;

	for (i = 0; i < n; i++)
	{
		DtxParticipant *p = ps[i];

		if (p->depth < level)
			continue;
		settle_busy(p);
		p->depth = level - 1;
		if (p->release_from >= level)
			p->release_from = 0;	/* the rollback removes those too */
		if (p->begin_unconfirmed && p->conn != NULL &&
			PQtransactionStatus(p->conn) == PQTRANS_IDLE)
		{
			/*
			 * Its first statement, sent with BEGIN, did not even start (a
			 * syntax error): there is no transaction there; it begins afresh
			 * when next used.
			 */
			p->state = DTX_IDLE;
			p->depth = 0;
			p->begin_unconfirmed = false;
		}
		else if (p->conn == NULL || PQtransactionStatus(p->conn) == PQTRANS_IDLE)
			p->broken = true;
		else
		{
			p->begin_unconfirmed = false;	/* it has a transaction */
			sqls[i] = psprintf("ROLLBACK TO SAVEPOINT " DTX_SAVEPOINT "; RELEASE SAVEPOINT " DTX_SAVEPOINT,
							   level, level);
		}
	}
	run_round(ps, sqls, n, ROUND_ROLLBACK, ok);
	for (i = 0; i < n; i++)
		if (sqls[i] != NULL && !ok[i])
			ps[i]->broken = true;
}

/*
 * dtx_subxact_callback: a subtransaction that rolls back rolls back what it
 * did on the nodes too (to the savepoint each node got when the
 * subtransaction first used it); one that commits leaves its work to the
 * parent, and its savepoints are released with the next statement sent.
 */
void
dtx_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			n;
	DtxParticipant **ps;
	DtxParticipant *p;
	HASH_SEQ_STATUS seq;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		ps = active_participants(&n);
		if (n > 0)
			rollback_to_savepoint(ps, n, level);
		return;
	}
	/*
	 * Nothing is allocated here: memory allocated in a committing
	 * subtransaction stays until the top transaction ends, and a loop of
	 * them (PL/pgSQL exception blocks) would pile it up.
	 */
	if (dtx_participants == NULL)
		return;
	hash_seq_init(&seq, dtx_participants);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		if (p->state == DTX_IDLE || p->depth < level)
			continue;
		p->depth = level - 1;
		p->release_from = p->release_from == 0 ? level : Min(p->release_from, level);
	}
}
