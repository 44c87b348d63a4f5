/*-------------------------------------------------------------------------
 *
 * sim_world.h
 *	  Calls between the simulator's run loop (sim.c), its world
 *	  (sim_world.c: network, clients, faults) and its servers (sim_node.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SIM_WORLD_H
#define SIM_WORLD_H

#include "sim.h"

/* sim_world.c */
extern int	sim_slot_of(uint64_t id);
extern void sim_msg_free(NetMsg *nm);
extern void sim_net_send(Sim *S, const RaftMessage *m);
extern void sim_net_deliver(Sim *S);
extern int	sim_find_leader(Sim *S);
extern void sim_client_done(Sim *S, int client, int op);
extern void sim_client_step(Sim *S, int ci, bool submit, bool after_heal);
extern void sim_check_retire(Sim *S);
extern void sim_faults(Sim *S);

/* sim_node.c */
extern void sim_node_start(Sim *S, int slot, bool fresh);
extern void sim_node_crash(Sim *S, int slot, bool retire);
extern void sim_node_destroy(SimNode *n);
extern void sim_node_ready(Sim *S, int slot);
extern void sim_node_add_waiter(SimNode *n, int op, bool is_read);
extern void sim_node_drop_waiter(SimNode *n, int op);

#endif							/* SIM_WORLD_H */
