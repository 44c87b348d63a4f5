/*-------------------------------------------------------------------------
 *
 * psim_world.h
 *	  The Paxos simulator's world (psim_world.c), as psim.c drives it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PSIM_WORLD_H
#define PSIM_WORLD_H

#include "psim.h"

extern void ps_node_start(PSim *S, int i);
extern void ps_node_crash(PSim *S, int i);
extern void ps_handle_ready(PSim *S, int i);
extern void ps_deliver(PSim *S);
extern void ps_faults(PSim *S);
extern void ps_clients(PSim *S, bool submit);
extern void ps_decrees(PSim *S, bool submit);
extern void ps_tick(PSim *S);

#endif							/* PSIM_WORLD_H */
