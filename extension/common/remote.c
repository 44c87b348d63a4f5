/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  The one module that talks libpq to other PostgreSQL nodes.
 *
 * Used by the 2PC coordinator (dtx*.c) and meant for every later subsystem
 * that calls other nodes.  Nodes talk over libpq so PostgreSQL's own
 * authentication, TLS and pg_hba rules protect every call.
 *
 * Who may connect: a superuser on any conninfo; any other role only with a
 * password written in the conninfo, which the node must have asked for
 * (remote_connect, remote_password_ok).  That is postgres_fdw's rule: the
 * credentials this server holds itself (trust or peer for its OS account,
 * .pgpass, client certificates, PGPASSWORD) are never lent to a role.
 *
 * Connections are non-blocking, and waits are on the backend's latch and
 * the connection's socket, not inside a blocking libpq call, so a cancel or
 * statement_timeout interrupts them (REMOTE_INTERRUPTIBLE) and postmaster
 * death ends them; waits that run after the local commit, where an error is
 * no longer allowed, and the wait for a one-phase COMMIT that decides a
 * distributed transaction, which a cancel would report as failed while the
 * node commits, take only a timeout (REMOTE_UNINTERRUPTIBLE).  Three
 * waits are neither interruptible nor limited: flushing a statement larger
 * than the socket's buffer (remote_send), ending a refused COPY
 * (refuse_copy), and remote_cancel, whose PQcancel is libpq's blocking
 * cancel request.
 *
 * File descriptors: each connection holds one of the backend's external
 * file descriptors (AcquireExternalFD), as postgres_fdw does, so remote
 * connections cannot exhaust the backend's file limit.  The first
 * REMOTE_MAX_WAIT_SETS open connections also keep a WaitEventSet each
 * (RemoteWaitSet), which holds a second one (its epoll descriptor, on
 * Linux); a wait on any other connection, or while connecting, builds a
 * set for that one wait (WaitLatchOrSocket), which holds one meanwhile.  The sets are in TopMemoryContext and a static
 * array that only this backend touches; each is freed with its connection.
 *
 * libpq's results and connections are malloc'd: an ERROR does not free
 * them.  Whatever holds one across a call that can raise an ERROR frees it
 * on the way out (PG_TRY), here and in every caller.
 *
 * Remote errors are re-raised with the remote SQLSTATE, message, detail and
 * hint, and a context line naming the node and the statement.  Every error
 * this module raises for a node (its own error, or its failure to connect,
 * to answer in time or to answer as expected) is raised in the message
 * domain REMOTE_ERROR_DOMAIN: remote_error_from_node recognises it, so a
 * caller that catches errors tells a node's 57014 or 55P03 from this
 * backend's own cancel or lock_timeout without looking at the message.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "remote.h"

/*
 * The message domain of the errors raised for a node (see the banner).  No
 * catalog exists for it, so their text is never translated here: the
 * node's own part of it arrives in the node's language anyway.
 */
#define REMOTE_ERROR_DOMAIN "distsys-remote"

static int	remote_wait_socket(PGconn *conn, int events, TimestampTz deadline,
							   RemoteWait how);

/*
 * An open connection keeps one WaitEventSet (latch, postmaster death, its
 * socket), so a wait is one epoll_wait rather than a set built and torn
 * down per wait, which profiles showed as most of a commit's system calls.
 * Up to REMOTE_MAX_WAIT_SETS connections have one; the others wait the
 * slower way.
 */
typedef struct RemoteWaitSet
{
	PGconn	   *conn;
	WaitEventSet *set;
	int			socket_pos;
	int			socket_events;
} RemoteWaitSet;

#define REMOTE_MAX_WAIT_SETS 64

static RemoteWaitSet wait_sets[REMOTE_MAX_WAIT_SETS];

/*
 * wait_set_add: give conn a WaitEventSet of its own if a slot is free.  An
 * ERROR (no file descriptor left for the set) leaves the slot free and no
 * set behind.
 */
static void
wait_set_add(PGconn *conn)
{
	int			i;

	for (i = 0; i < REMOTE_MAX_WAIT_SETS; i++)
	{
		RemoteWaitSet *w = &wait_sets[i];
		WaitEventSet *set;

		if (w->conn != NULL)
			continue;
		set = CreateWaitEventSet(TopMemoryContext, 3);
		PG_TRY();
		{
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			w->socket_pos = AddWaitEventToSet(set, WL_SOCKET_READABLE, PQsocket(conn), NULL, NULL);
		}
		PG_CATCH();
		{
			/* the set holds an external file descriptor: give it back */
			FreeWaitEventSet(set);
			PG_RE_THROW();
		}
		PG_END_TRY();
		w->set = set;
		w->socket_events = WL_SOCKET_READABLE;
		w->conn = conn;
		return;
	}
	/* more connections than slots: those wait the slower way */
}

/*
 * wait_set_of: conn's own WaitEventSet, or NULL if it has none.
 */
static RemoteWaitSet *
wait_set_of(PGconn *conn)
{
	int			i;

	for (i = 0; i < REMOTE_MAX_WAIT_SETS; i++)
		if (wait_sets[i].conn == conn)
			return &wait_sets[i];
	return NULL;
}

/*
 * wait_set_drop: free conn's WaitEventSet, if any, and its slot.
 */
static void
wait_set_drop(PGconn *conn)
{
	RemoteWaitSet *w = wait_set_of(conn);

	if (w == NULL)
		return;
	FreeWaitEventSet(w->set);
	memset(w, 0, sizeof(*w));
}

/*
 * remote_notice: a NOTICE or WARNING the node sent, passed on to our client
 * (libpq would print it on the server's stderr), with its SQLSTATE, detail
 * and hint: the detail can be what matters most (a node's "The transaction
 * has already committed locally" after a cancelled wait for its standby).
 * arg is the node name.
 */
static void
remote_notice(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	bool		warning = severity && strcmp(severity, "WARNING") == 0;
	int			code = remote_errcode(res);

	ereport(warning ? WARNING : NOTICE,
			(errcode(code != 0 ? code : (warning ? ERRCODE_WARNING : ERRCODE_SUCCESSFUL_COMPLETION)),
			 errmsg("node \"%s\": %s", (const char *) arg, msg ? msg : ""),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

/*
 * connect_deadline: when a connection attempt started now must give up,
 * from the connect_timeout in its conninfo (seconds, as libpq reads it:
 * below 2 means 2, and per host, so a list of n hosts gets n times it); 0
 * for no limit.  libpq applies connect_timeout only to its own blocking
 * connect, not to PQconnectPoll, so it is applied here.
 */
static TimestampTz
connect_deadline(PGconn *conn)
{
	PQconninfoOption *opts = conn ? PQconninfo(conn) : NULL;
	PQconninfoOption *o;
	int			seconds = 0,
				hosts = 1;

	for (o = opts; o != NULL && o->keyword != NULL; o++)
	{
		if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL)
			seconds = atoi(o->val);
		/* libpq's limit is per host: a list of them gets one each */
		if ((strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0) &&
			o->val != NULL)
		{
			int			n = 1;

			for (const char *c = o->val; *c; c++)
				n += *c == ',';
			hosts = Max(hosts, n);
		}
	}
	PQconninfoFree(opts);
	if (seconds <= 0)
		return 0;
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int64) Max(seconds, 2) * 1000 * hosts);
}

/*
 * connect_poll: drive conn's connection attempt (PQconnectPoll) until it
 * succeeds or fails, waiting on the latch; true if connect_deadline passed
 * first.  A cancel raises its ERROR here.
 */
static bool
connect_poll(PGconn *conn)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	TimestampTz deadline = connect_deadline(conn);

	while (conn != NULL && PQstatus(conn) != CONNECTION_BAD &&
		   st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED)
	{
		int			ev = st == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;

		if (remote_wait_socket(conn, ev, deadline, REMOTE_INTERRUPTIBLE) & WL_TIMEOUT)
			return true;
		st = PQconnectPoll(conn);
	}
	return false;
}

/*
 * conninfo_has_password: whether conninfo sets a non-empty password.  Only
 * the string counts: PQconninfoParse fills in no defaults, so a password
 * from this server's environment or .pgpass does not.
 */
static bool
conninfo_has_password(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	PQconninfoOption *o;
	bool		found = false;

	for (o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
			found = true;
	PQconninfoFree(opts);
	return found;
}

/*
 * remote_password_ok: whether the current user may use conn: a superuser
 * may use any connection, anyone else only one that authenticated with a
 * password the node asked for.
 *
 * postgres_fdw's rule, for the same reason: a connection the node accepted
 * without a password was accepted on this server's own credentials (trust
 * or peer for its OS account, a client certificate it holds), which the
 * role whose statements it runs was never given.  Callers that keep
 * connections ask again at each use (dtx.c), so a role that lost superuser
 * does not keep a connection it could not open now.
 */
bool
remote_password_ok(PGconn *conn)
{
	return superuser() || PQconnectionUsedPassword(conn);
}

/*
 * remote_connect: a new connection to node, or an error naming the node.
 * node must outlive the connection (its notices name it).
 * The connection attempt waits on the latch, so a cancel interrupts it;
 * conninfo's connect_timeout (libpq's) bounds it otherwise.  A non-superuser
 * needs a password in conninfo, checked before connecting (as postgres_fdw
 * does, so a conninfo without one is never tried on this server's
 * credentials), and the node must have asked for it (remote_password_ok).
 */
PGconn *
remote_connect(const char *node, const char *conninfo)
{
	PGconn	   *conn;

	if (!superuser() && !conninfo_has_password(conninfo))
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required to connect to node \"%s\"", node),
				 errdetail("Only superusers may connect to a node whose conninfo has no password: the connection would use this server's own credentials (trust, peer, .pgpass or a client certificate)."),
				 errhint("Put the password of the node's user in its conninfo (distsys.node_add).")));
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to node \"%s\": too many open files", node),
				 errhint("Raise max_files_per_process or use fewer nodes per session.")));
	conn = PQconnectStart(conninfo);
	PG_TRY();
	{
		bool		timed_out = connect_poll(conn);

		if (conn == NULL || timed_out || PQstatus(conn) != CONNECTION_OK)
			ereport_domain(ERROR, REMOTE_ERROR_DOMAIN,
						   (errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
							errmsg("could not connect to node \"%s\"", node),
							errdetail_internal("%s", pchomp(timed_out ? "no answer within connect_timeout" :
															conn ? PQerrorMessage(conn) : "out of memory")),
							errhint("Check the node's conninfo in distsys.nodes and that the node is up.")));
		if (!remote_password_ok(conn))
			ereport(ERROR,
					(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
					 errmsg("password is required to connect to node \"%s\"", node),
					 errdetail("The node did not ask for the password, so the connection used this server's own credentials (trust, peer or a client certificate), which only superusers may use."),
					 errhint("Make the node's pg_hba.conf require password authentication (scram-sha-256 or md5) for this connection.")));
		PQsetnonblocking(conn, 1);
		PQsetNoticeReceiver(conn, remote_notice, (void *) node);
		wait_set_add(conn);
	}
	PG_CATCH();
	{
		/* cancelled, failed, or no wait set: give back the socket and the fd */
		PQfinish(conn);
		ReleaseExternalFD();
		PG_RE_THROW();
	}
	PG_END_TRY();
	return conn;
}

/*
 * remote_disconnect: close conn (NULL is allowed) and give back its file
 * descriptor.
 */
void
remote_disconnect(PGconn *conn)
{
	if (conn == NULL)
		return;
	wait_set_drop(conn);
	PQfinish(conn);
	ReleaseExternalFD();
}

/*
 * remote_wait_socket: wait until conn's socket has one of events, the latch
 * is set or deadline (0: none) passes; returns the events that ended the
 * wait (WL_TIMEOUT: none).  A cancel raises its ERROR here if how allows it.
 */
static int
remote_wait_socket(PGconn *conn, int events, TimestampTz deadline, RemoteWait how)
{
	long		timeout_ms = -1;
	int			flags = events | WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
	RemoteWaitSet *w = wait_set_of(conn);
	int			rc;

	if (deadline != 0)
	{
		timeout_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		flags |= WL_TIMEOUT;
	}
	if (w == NULL)
		rc = WaitLatchOrSocket(MyLatch, flags, PQsocket(conn), timeout_ms, PG_WAIT_EXTENSION);
	else
	{
		WaitEvent	ev;

		if (w->socket_events != events)
		{
			ModifyWaitEvent(w->set, w->socket_pos, events, NULL);
			w->socket_events = events;
		}
		rc = WaitEventSetWait(w->set, timeout_ms, &ev, 1, PG_WAIT_EXTENSION) == 0 ?
			WL_TIMEOUT : ev.events;
	}
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		if (how == REMOTE_INTERRUPTIBLE)
			CHECK_FOR_INTERRUPTS();
	}
	return rc;
}

/*
 * refuse_copy: if res starts a COPY, end it (COPY is not supported through
 * these connections: its data would have nowhere to go) and return true.
 * COPY FROM gets an error from us, COPY TO's rows are read and dropped;
 * remote_copy_refused tells remote_run_shown to fail the statement.
 */
static bool remote_copy_refused = false;

static bool
refuse_copy(PGconn *conn, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	char	   *buf;
	int			n;

	if (st != PGRES_COPY_IN && st != PGRES_COPY_OUT && st != PGRES_COPY_BOTH)
		return false;
	PQclear(res);
	remote_copy_refused = true;
	if (st != PGRES_COPY_OUT)
	{
		(void) PQputCopyEnd(conn, "COPY is not supported through distsys");
		while (PQflush(conn) == 1)
			remote_wait_socket(conn, WL_SOCKET_WRITEABLE, 0, REMOTE_UNINTERRUPTIBLE);
		return true;
	}
	while ((n = PQgetCopyData(conn, &buf, 1)) != -1 && n != -2)
	{
		if (n > 0)
			PQfreemem(buf);
		else
		{
			remote_wait_socket(conn, WL_SOCKET_READABLE, 0, REMOTE_UNINTERRUPTIBLE);
			if (!PQconsumeInput(conn))
				break;
		}
	}
	return true;
}

/*
 * remote_send: queue sql on conn and flush it; false if the connection
 * failed (PQerrorMessage says why).  The flush is not interruptible (it
 * also runs after commit) and has no limit; a statement larger than the
 * socket's buffer waits for the node to read it.
 */
bool
remote_send(PGconn *conn, const char *sql)
{
	int			rc;

	if (!PQsendQuery(conn, sql))
		return false;
	while ((rc = PQflush(conn)) == 1)
		remote_wait_socket(conn, WL_SOCKET_WRITEABLE, 0, REMOTE_UNINTERRUPTIBLE);
	return rc == 0;
}

/*
 * collect_results: wait_results' loop; what it holds is in *keep and
 * *before as it goes.
 */
static PGresult *
collect_results(PGconn *conn, TimestampTz deadline, RemoteWait how, bool *timed_out,
				PGresult **keep, PGresult **before)
{
	PGresult   *res;

	for (;;)
	{
		while (PQisBusy(conn))
		{
			int			rc = remote_wait_socket(conn, WL_SOCKET_READABLE, deadline, how);

			if ((rc & WL_TIMEOUT) && GetCurrentTimestamp() >= deadline)
			{
				*timed_out = true;
				return NULL;
			}
			if (!PQconsumeInput(conn))
				break;
		}
		res = PQgetResult(conn);
		if (res == NULL)
			return *keep;
		if (refuse_copy(conn, res))
			continue;
		if (*keep != NULL && PQresultStatus(*keep) == PGRES_FATAL_ERROR)
			PQclear(res);		/* the first error is the one to report */
		else if (before != NULL && PQresultStatus(res) != PGRES_FATAL_ERROR)
		{
			PQclear(*before);
			*before = *keep;
			*keep = res;
		}
		else
		{
			PQclear(*keep);
			*keep = res;
		}
		if (PQstatus(conn) == CONNECTION_BAD)
			return *keep;
	}
}

/*
 * The results collect_results holds while it waits: libpq mallocs them, so
 * an error thrown by the wait (a cancel) must free them.
 */
typedef struct HeldResults
{
	PGresult   *keep;
	PGresult   *before;
} HeldResults;

/*
 * wait_results: the outcome of the statements last sent on conn: the first
 * failed result if any, else the last result (NULL if the connection
 * broke); with before, the result before a successful last one goes there
 * (the caller PQclears it).  Reads every result, so conn is idle again
 * afterwards, except on a timeout (timeout_ms > 0), which sets *timed_out
 * and leaves it busy.
 */
static PGresult *
wait_results(PGconn *conn, int timeout_ms, RemoteWait how, bool *timed_out,
			 PGresult **before)
{
	TimestampTz deadline = 0;
	HeldResults held = {NULL, NULL};
	HeldResults *volatile h = &held;
	PGresult   *res = NULL;

	*timed_out = false;
	if (timeout_ms > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	PG_TRY();
	{
		res = collect_results(conn, deadline, how, timed_out, &h->keep,
							  before != NULL ? &h->before : NULL);
	}
	PG_CATCH();
	{
		PQclear(h->keep);
		PQclear(h->before);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (*timed_out)
	{
		PQclear(h->keep);
		PQclear(h->before);
		h->before = NULL;
	}
	if (before != NULL)
		*before = h->before;
	return res;
}

/*
 * remote_wait_result: wait_results without the result before the last.
 */
PGresult *
remote_wait_result(PGconn *conn, int timeout_ms, RemoteWait how, bool *timed_out)
{
	return wait_results(conn, timeout_ms, how, timed_out, NULL);
}

/*
 * remote_cancel: ask the node to cancel what conn is running (best effort).
 */
void
remote_cancel(PGconn *conn)
{
	PGcancel   *cancel = PQgetCancel(conn);
	char		errbuf[256];

	if (cancel == NULL)
		return;
	(void) PQcancel(cancel, errbuf, sizeof(errbuf));
	PQfreeCancel(cancel);
}

/*
 * remote_errcode: the SQLSTATE of a failed result as an error code, to
 * compare with the ERRCODE_* constants; 0 if res (NULL allowed) has none.
 */
int
remote_errcode(const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (state == NULL || strlen(state) != 5)
		return 0;
	return MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
}

/*
 * remote_error_from_node: whether edata was raised for a node by this module
 * (see the banner), rather than by this backend for itself.
 */
bool
remote_error_from_node(const ErrorData *edata)
{
	return edata->domain != NULL && strcmp(edata->domain, REMOTE_ERROR_DOMAIN) == 0;
}

/*
 * remote_errcontext: the context line of an error about sql on node.
 */
int
remote_errcontext(const char *node, const char *sql)
{
	return errcontext("remote statement on node \"%s\": %s", node, sql);
}

/*
 * remote_report: report a failed statement at elevel, with the remote
 * SQLSTATE (08006 when the connection broke) and a context line naming the
 * node and statement.  Frees res, also if copying its fields fails.
 */
void
remote_report(int elevel, PGconn *conn, PGresult *res, const char *node, const char *sql)
{
	int			code = remote_errcode(res);
	char	   *text = NULL;
	char	   *detail = NULL;
	char	   *hint = NULL;

	PG_TRY();
	{
		const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		const char *d = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
		const char *h = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;

		text = pchomp(msg ? msg : (conn ? PQerrorMessage(conn) : "connection lost"));
		if (msg == NULL && strlen(text) == 0)
			text = "no result from the node";
		detail = d ? pstrdup(d) : NULL;
		hint = h ? pstrdup(h) : NULL;
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	ereport_domain(elevel, REMOTE_ERROR_DOMAIN,
				   (errcode(code != 0 ? code : ERRCODE_CONNECTION_FAILURE),
					errmsg("node \"%s\": %s", node, text),
					detail ? errdetail_internal("%s", detail) : 0,
					hint ? errhint("%s", hint) : 0,
					remote_errcontext(node, sql)));
}

/*
 * remote_timeout_error: the ERROR for a node that did not answer sql
 * within timeout_ms.
 */
void
remote_timeout_error(const char *node, int timeout_ms, const char *sql)
{
	ereport_domain(ERROR, REMOTE_ERROR_DOMAIN,
				   (errcode(ERRCODE_QUERY_CANCELED),
					errmsg("node \"%s\" did not answer within %d ms", node, timeout_ms),
					remote_errcontext(node, sql)));
}

/*
 * remote_run_shown: send sql on conn and wait for its result
 * (interruptible); a failure or a timeout raises an ERROR naming the node
 * and, as the statement, shown.  With trailer, sql ends with one more
 * statement whose result goes there; the result returned is the one before
 * it.  The caller PQclears what it gets.
 */
PGresult *
remote_run_shown(PGconn *conn, const char *node, const char *sql, const char *shown,
				 int timeout_ms, PGresult **trailer)
{
	PGresult   *res;
	PGresult   *before = NULL;
	bool		timed_out = false;
	bool		failed;

	if (!remote_send(conn, sql))
		remote_report(ERROR, conn, NULL, node, shown);
	remote_copy_refused = false;
	res = wait_results(conn, timeout_ms, REMOTE_INTERRUPTIBLE, &timed_out,
					   trailer ? &before : NULL);
	/* no cancel: it could hang as long; the caller drops the connection */
	if (timed_out)
		remote_timeout_error(node, timeout_ms, shown);	/* nothing is held */
	failed = res == NULL || PQresultStatus(res) == PGRES_FATAL_ERROR;
	if (remote_copy_refused && !failed)
	{
		PQclear(res);
		PQclear(before);
		ereport_domain(ERROR, REMOTE_ERROR_DOMAIN,
					   (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("COPY is not supported on node \"%s\" through distsys", node),
						errhint("Use INSERT or SELECT in dtx_exec and dtx_query."),
						remote_errcontext(node, shown)));
	}
	if (failed || (PQresultStatus(res) != PGRES_COMMAND_OK &&
				   PQresultStatus(res) != PGRES_TUPLES_OK) ||
		(trailer != NULL && before == NULL))
	{
		/* only the error (or nothing) is reported */
		PQclear(before);
		remote_report(ERROR, conn, res, node, shown);
	}
	if (trailer == NULL)
		return res;
	*trailer = res;
	return before;
}

/*
 * remote_run: remote_run_shown, showing the statement itself.
 */
PGresult *
remote_run(PGconn *conn, const char *node, const char *sql, int timeout_ms)
{
	return remote_run_shown(conn, node, sql, sql, timeout_ms, NULL);
}

/*
 * remote_check_shape: an ERROR (08P01) naming node unless res, the result
 * of sql, has nfields columns and, with one_row, exactly one row; frees
 * res then.  A node that answers otherwise (not PostgreSQL, or something
 * between us rewrote the statement) must not make us read past the end.
 */
void
remote_check_shape(PGresult *res, const char *node, const char *sql, bool one_row,
				   int nfields)
{
	int			rows = PQntuples(res);
	int			fields = PQnfields(res);

	if (fields == nfields && (!one_row || rows == 1))
		return;
	PQclear(res);
	ereport_domain(ERROR, REMOTE_ERROR_DOMAIN,
				   (errcode(ERRCODE_PROTOCOL_VIOLATION),
					errmsg("unexpected result from node \"%s\"", node),
					one_row ?
					errdetail("Expected one row of %d columns, got %d rows of %d columns.",
							  nfields, rows, fields) :
					errdetail("Expected rows of %d columns, got %d columns.", nfields, fields),
					remote_errcontext(node, sql)));
}

/*
 * remote_result_value: the one value of res, the result of sql on node
 * (palloc'd; NULL for SQL NULL), or an ERROR if res is not one row of one
 * column.  Frees res either way.
 */
char *
remote_result_value(PGresult *res, const char *node, const char *sql)
{
	char	   *value = NULL;

	remote_check_shape(res, node, sql, true, 1);
	PG_TRY();
	{
		if (!PQgetisnull(res, 0, 0))
			value = pstrdup(PQgetvalue(res, 0, 0));
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	return value;
}

/*
 * remote_run_value: remote_run of sql, which returns one value; that value
 * as remote_result_value gives it.
 */
char *
remote_run_value(PGconn *conn, const char *node, const char *sql, int timeout_ms)
{
	return remote_result_value(remote_run(conn, node, sql, timeout_ms), node, sql);
}
