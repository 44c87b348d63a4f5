/*-------------------------------------------------------------------------
 *
 * remote.h
 *	  Connections from a backend to other PostgreSQL nodes (remote.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_REMOTE_H
#define DISTSYS_REMOTE_H

#include "libpq-fe.h"

/* How a wait for a remote result may end early. */
typedef enum RemoteWait
{
	REMOTE_INTERRUPTIBLE,		/* cancel and statement_timeout apply */
	REMOTE_UNINTERRUPTIBLE		/* after commit, or a deciding COMMIT: only
								 * the timeout ends it */
} RemoteWait;

extern PGconn *remote_connect(const char *node, const char *conninfo);
extern bool remote_password_ok(PGconn *conn);
extern void remote_disconnect(PGconn *conn);
extern bool remote_send(PGconn *conn, const char *sql);
extern PGresult *remote_wait_result(PGconn *conn, int timeout_ms, RemoteWait how,
									bool *timed_out);
extern void remote_cancel(PGconn *conn);
extern void remote_report(int elevel, PGconn *conn, PGresult *res,
						  const char *node, const char *sql);
extern PGresult *remote_run(PGconn *conn, const char *node, const char *sql,
							int timeout_ms);
extern PGresult *remote_run_shown(PGconn *conn, const char *node, const char *sql,
								  const char *shown, int timeout_ms, PGresult **trailer);
extern void remote_check_shape(PGresult *res, const char *node, const char *sql,
							   bool one_row, int nfields);
extern char *remote_result_value(PGresult *res, const char *node, const char *sql);
extern char *remote_run_value(PGconn *conn, const char *node, const char *sql,
							  int timeout_ms);
extern int	remote_errcode(const PGresult *res);
extern int	remote_errcontext(const char *node, const char *sql);
extern bool remote_error_from_node(const ErrorData *edata);
extern void remote_timeout_error(const char *node, int timeout_ms, const char *sql) pg_attribute_noreturn();

#endif							/* DISTSYS_REMOTE_H */
