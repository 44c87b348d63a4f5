/*-------------------------------------------------------------------------
 *
 * db.h
 *	  Connecting to the database, shared by both commands of distsys-relay.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_DB_H
#define RELAY_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

extern PGconn *db_connect(const char *conninfo, const char *app, bool safe_path,
						  char **error);
extern bool db_extension_version(PGconn *conn, char *buf, size_t size);
extern bool db_standby_lsn(PGconn *conn, int standbys, uint64_t *insert_lsn,
						   uint64_t *flushed);

#endif							/* RELAY_DB_H */
