/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  The distsys.* settings (defined in guc.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_GUC_H
#define DISTSYS_GUC_H

extern int	distsys_max_locks;
extern int	distsys_max_lock_holders;
extern int	distsys_lock_max_ttl_s;
extern int	distsys_inbox_retention_s;

#endif							/* DISTSYS_GUC_H */
