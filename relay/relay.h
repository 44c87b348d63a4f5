/*-------------------------------------------------------------------------
 *
 * relay.h
 *	  The publish command of distsys-relay: relay the outbox to Kafka.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include "options.h"

extern int	relay_run(const RelayOptions *opts);

#endif							/* RELAY_RELAY_H */
