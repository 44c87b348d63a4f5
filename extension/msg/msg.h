/*-------------------------------------------------------------------------
 *
 * msg.h
 *	  Messaging: the transactional outbox (outbox.c) and the idempotent
 *	  inbox (inbox.c).  What the relay must agree on is in
 *	  distsys_protocol.h, which includes no PostgreSQL header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_MSG_H
#define DISTSYS_MSG_H

/* settings (registered in common/guc.c) */
extern int	distsys_inbox_retention_s;

#endif							/* DISTSYS_MSG_H */
