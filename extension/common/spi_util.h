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

extern Oid	distsys_owner(void);
extern uint64 distsys_spi_run(SPIPlanPtr *plan, const char *sql, int nargs,
							  Oid *types, Datum *values, const char *nulls,
							  bool read_only);

#endif							/* DISTSYS_SPI_UTIL_H */
