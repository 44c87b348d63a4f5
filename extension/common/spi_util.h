/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  Running the extension's own statements on its own tables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_SPI_UTIL_H
#define DISTSYS_SPI_UTIL_H

#include "executor/spi.h"

/* the caller's user, security context and GUC nest level, to go back to */
typedef struct DistsysAsOwner
{
	Oid			user;
	int			sec;
	int			nestlevel;
} DistsysAsOwner;

extern Oid	distsys_owner(void);
extern void distsys_as_owner_begin(DistsysAsOwner *save);
extern void distsys_as_owner_end(const DistsysAsOwner *save);
extern uint64 distsys_spi_run(SPIPlanPtr *plan, const char *sql, int nargs,
							  Oid *types, Datum *values, const char *nulls,
							  bool read_only);
extern Datum distsys_spi_lookup(SPIPlanPtr *plan, const char *sql, Datum text_arg,
								bool *isnull);

#endif							/* DISTSYS_SPI_UTIL_H */
