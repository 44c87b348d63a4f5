/*-------------------------------------------------------------------------
 *
 * queue.h
 *	  The relay's in-memory window of outbox rows: fetched, in flight, or
 *	  waiting for their key.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_QUEUE_H
#define RELAY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum MsgState
{
	MSG_QUEUED,					/* fetched, not handed to the producer */
	MSG_INFLIGHT,				/* produced, waiting for its delivery report */
	MSG_ACKED					/* persisted; waiting for outbox_ack to commit */
} MsgState;

/* The per-key state: messages of one key go out in id order. */
typedef struct KeyState
{
	char	   *key;
	int			refs;			/* messages of this key in memory */
	double		blocked_until;	/* after a failure: no produce before this */
	unsigned	stalled_pass;	/* pass number in which a message was held */
	struct KeyState *hnext;
} KeyState;

/*
 * One Kafka header of an outbox row.  name and value are NUL-terminated
 * too, and point into the block that holds the message's header array;
 * value is NULL for a header without value.
 */
typedef struct MsgHeader
{
	const char *name;
	const char *value;
	size_t		name_len;
	size_t		value_len;
} MsgHeader;

typedef struct OutboxMsg
{
	int64_t		id;
	int			lane;			/* outbox lane, 0..DISTSYS_OUTBOX_LANES-1 */
	char	   *topic;
	char	   *payload;		/* NULL: tombstone */
	size_t		payload_len;
	char	   *payload_type;	/* json, text or bytes */
	char	   *message_id;
	MsgHeader  *headers;		/* nheaders of them, one malloc'd block */
	int			nheaders;
	double		created_at;		/* epoch seconds */
	int64_t		created_us;		/* the same, exact: epoch microseconds */
	int			attempts;
	uint64_t	lsn;			/* WAL position its commit is below */
	double		not_before;		/* epoch seconds: no retry before this */
	MsgState	state;
	KeyState   *ks;				/* NULL for a message without key */
	struct OutboxMsg *prev;		/* id order */
	struct OutboxMsg *next;
	struct OutboxMsg *hnext;	/* id hash chain */
} OutboxMsg;

typedef struct MsgQueue
{
	OutboxMsg  *head;			/* lowest id */
	OutboxMsg  *tail;
	int			count;
	int			inflight;
	OutboxMsg **by_id;			/* hash buckets */
	KeyState  **by_key;			/* hash buckets */
} MsgQueue;

extern void queue_init(MsgQueue *q);
extern void queue_free(MsgQueue *q);
extern OutboxMsg *queue_find(MsgQueue *q, int64_t id);
extern void queue_insert(MsgQueue *q, OutboxMsg *m, const char *key);
extern void queue_remove(MsgQueue *q, OutboxMsg *m);
extern void queue_free_msg(OutboxMsg *m);
extern int	queue_drop_queued(MsgQueue *q, bool (*keep) (int lane, void *arg),
							  void *arg);
extern int	queue_inflight_in_lane(MsgQueue *q, int lane, int relay_lanes);
extern char *queue_ids_above(MsgQueue *q, int64_t above);
extern const char *msg_key(const OutboxMsg *m);

#endif							/* RELAY_QUEUE_H */
