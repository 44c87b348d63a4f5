/*-------------------------------------------------------------------------
 *
 * relay.c
 *	  The publish command of distsys-relay.
 *
 * For now this checks what the relay needs before it can start: a database
 * and a broker list, a reachable database, and the distsys extension in it.
 * The loop that moves outbox rows to Kafka comes in a later version.
 * Logging must be set up (log_setup) before relay_run is called.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "log.h"
#include "relay.h"

/*
 * one_line: turn a multi-line libpq message into one line, in place, so
 * that it fits one log line.
 */
static char *
one_line(char *msg)
{
	char	   *out = msg;
	bool		space = false;

	for (const char *c = msg; *c; c++)
	{
		if (*c == '\n' || *c == '\t' || *c == ' ')
			space = out != msg;
		else
		{
			if (space)
				*out++ = ' ';
			*out++ = *c;
			space = false;
		}
	}
	*out = '\0';
	return msg;
}

/*
 * require_setting: log an error and return false when value is empty.
 */
static bool
require_setting(const char *value, const char *name, const char *env)
{
	if (value != NULL && value[0] != '\0')
		return true;
	log_error("--%s is required: give --%s, set %s or put %s in the config file",
			  name, name, env, name);
	return false;
}

/*
 * connect_database: open a connection with the conninfo of --db, or log
 * libpq's reason and return NULL.
 */
static PGconn *
connect_database(const char *conninfo)
{
	const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
	const char *const values[] = {conninfo, "distsys-relay", NULL};
	PGconn	   *conn = PQconnectdbParams(keywords, values, 1);

	if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
		return conn;
	log_error("could not connect to the database: %s",
			  conn ? one_line(PQerrorMessage(conn)) : "out of memory");
	PQfinish(conn);
	return NULL;
}

/*
 * check_extension: log the version of the distsys extension installed in
 * the database.  Returns RELAY_EXIT_FAILURE when it is missing or the
 * query fails.
 */
static int
check_extension(PGconn *conn)
{
	PGresult   *res;
	int			rc = RELAY_EXIT_FAILURE;

	res = PQexec(conn, "SELECT extversion FROM pg_catalog.pg_extension "
				 "WHERE extname = 'distsys'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_error("could not look up the distsys extension: %s",
				  one_line(PQerrorMessage(conn)));
	else if (PQntuples(res) == 0)
		log_error("the distsys extension is not installed in database \"%s\" "
				  "on %s:%s: run CREATE EXTENSION distsys there",
				  PQdb(conn), PQhost(conn), PQport(conn));
	else
	{
		log_info("connected to database \"%s\" on %s:%s, distsys extension %s",
				 PQdb(conn), PQhost(conn), PQport(conn),
				 PQgetvalue(res, 0, 0));
		rc = RELAY_EXIT_OK;
	}
	PQclear(res);
	return rc;
}

/*
 * relay_run: the publish command.  Returns the process exit code:
 * RELAY_EXIT_USAGE when --db or --brokers is missing, RELAY_EXIT_FAILURE
 * when the database cannot be used.
 */
int
relay_run(const RelayOptions *opts)
{
	PGconn	   *conn;
	int			rc;

	if (!require_setting(opts->db, "db", "DISTSYS_DB") ||
		!require_setting(opts->brokers, "brokers", "DISTSYS_BROKERS"))
		return RELAY_EXIT_USAGE;
	if ((conn = connect_database(opts->db)) == NULL)
		return RELAY_EXIT_FAILURE;
	rc = check_extension(conn);
	PQfinish(conn);
	if (rc == RELAY_EXIT_OK)
		log_info("the outbox relay loop is added by a later version; exiting");
	return rc;
}
