/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The relay's in-memory window of outbox rows.
 *
 * Every row the relay has fetched and not yet seen deleted is one
 * OutboxMsg, kept in a list in id order, in a hash by id (so a row is
 * never fetched twice) and counted in its key's KeyState (so messages of
 * one key are produced in id order, and a failure blocks only its key).
 * Rows without a key have no KeyState and no order.
 *
 * Threads: only the main thread touches a MsgQueue.  librdkafka hands a
 * message back in its delivery report, which rd_kafka_poll runs on the
 * main thread too.  A message is never freed while it is in flight.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

#define ID_BUCKETS	65536
#define KEY_BUCKETS 16384

static void *
xcalloc(size_t n, size_t size)
{
	void	   *p = calloc(n, size);

	if (p == NULL)
	{
		fprintf(stderr, "distsys-relay: out of memory\n");
		exit(1);
	}
	return p;
}

static unsigned
id_bucket(int64_t id)
{
	return (unsigned) ((uint64_t) id * 0x9E3779B97F4A7C15ULL >> 48) % ID_BUCKETS;
}

static unsigned
key_bucket(const char *key)
{
	uint32_t	h = 2166136261u;

	for (const unsigned char *c = (const unsigned char *) key; *c; c++)
		h = (h ^ *c) * 16777619u;
	return h % KEY_BUCKETS;
}

/*
 * queue_init: an empty queue.
 */
void
queue_init(MsgQueue *q)
{
	memset(q, 0, sizeof(*q));
	q->by_id = xcalloc(ID_BUCKETS, sizeof(OutboxMsg *));
	q->by_key = xcalloc(KEY_BUCKETS, sizeof(KeyState *));
}

/*
 * queue_free: free every message of q and its tables (at exit, once the
 * producer that held messages in flight is gone).
 */
void
queue_free(MsgQueue *q)
{
	while (q->head != NULL)
		queue_remove(q, q->head);
	free(q->by_id);
	free(q->by_key);
	memset(q, 0, sizeof(*q));
}

/*
 * queue_find: the message with this id, or NULL.
 */
OutboxMsg *
queue_find(MsgQueue *q, int64_t id)
{
	OutboxMsg  *m = q->by_id[id_bucket(id)];

	while (m != NULL && m->id != id)
		m = m->hnext;
	return m;
}

/*
 * key_ref: the KeyState of key, created on first use; one more reference.
 */
static KeyState *
key_ref(MsgQueue *q, const char *key)
{
	unsigned	b = key_bucket(key);
	KeyState   *ks = q->by_key[b];

	while (ks != NULL && strcmp(ks->key, key) != 0)
		ks = ks->hnext;
	if (ks == NULL)
	{
		ks = xcalloc(1, sizeof(KeyState));
		ks->key = strdup(key);
		ks->hnext = q->by_key[b];
		q->by_key[b] = ks;
	}
	ks->refs++;
	return ks;
}

/*
 * key_unref: one reference less; the KeyState goes with its last message
 * (a failed message stays in memory while it waits for its retry, so a
 * key's backoff lives exactly as long as it matters).
 */
static void
key_unref(MsgQueue *q, KeyState *ks)
{
	KeyState  **p;

	if (--ks->refs > 0)
		return;
	for (p = &q->by_key[key_bucket(ks->key)]; *p != ks; p = &(*p)->hnext)
		;
	*p = ks->hnext;
	free(ks->key);
	free(ks);
}

/*
 * queue_insert: add m (state MSG_QUEUED) at its place in id order.  Rows
 * usually arrive in increasing id order, so the search starts at the tail.
 */
void
queue_insert(MsgQueue *q, OutboxMsg *m, const char *key)
{
	OutboxMsg  *after = q->tail;
	unsigned	b = id_bucket(m->id);

	while (after != NULL && after->id > m->id)
		after = after->prev;
	m->prev = after;
	m->next = after ? after->next : q->head;
	if (m->next)
		m->next->prev = m;
	else
		q->tail = m;
	if (after)
		after->next = m;
	else
		q->head = m;
	m->hnext = q->by_id[b];
	q->by_id[b] = m;
	m->ks = key ? key_ref(q, key) : NULL;
	m->state = MSG_QUEUED;
	q->count++;
}

/*
 * queue_remove: unlink and free m, which must not be in flight.
 */
void
queue_remove(MsgQueue *q, OutboxMsg *m)
{
	OutboxMsg **p;

	for (p = &q->by_id[id_bucket(m->id)]; *p != m; p = &(*p)->hnext)
		;
	*p = m->hnext;
	if (m->prev)
		m->prev->next = m->next;
	else
		q->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		q->tail = m->prev;
	if (m->ks)
		key_unref(q, m->ks);
	q->count--;
	queue_free_msg(m);
}

/*
 * queue_free_msg: free m, which is in no queue.
 */
void
queue_free_msg(OutboxMsg *m)
{
	free(m->topic);
	free(m->payload);
	free(m->payload_type);
	free(m->message_id);
	free(m->headers);
	free(m);
}

/*
 * queue_drop_queued: forget the queued (not in-flight, not acked) messages
 * whose lane keep() refuses; returns how many.  Used when lanes are lost:
 * their rows stay in the database for the next owner.
 */
int
queue_drop_queued(MsgQueue *q, bool (*keep) (int lane, void *arg), void *arg)
{
	OutboxMsg  *m = q->head;
	int			n = 0;

	while (m != NULL)
	{
		OutboxMsg  *next = m->next;

		if (m->state == MSG_QUEUED && !keep(m->lane, arg))
		{
			queue_remove(q, m);
			n++;
		}
		m = next;
	}
	return n;
}

/*
 * queue_inflight_in_lane: messages of relay lane r (of relay_lanes) that
 * are in flight or acked but not yet deleted.
 */
int
queue_inflight_in_lane(MsgQueue *q, int r, int relay_lanes)
{
	int			n = 0;

	for (OutboxMsg *m = q->head; m != NULL; m = m->next)
		if (m->state != MSG_QUEUED && m->lane % relay_lanes == r)
			n++;
	return n;
}

/*
 * queue_ids_above: the ids above `above` as a PostgreSQL array literal
 * ("{1,2}"), malloc'd: the rows a fetch must not return again.
 */
char *
queue_ids_above(MsgQueue *q, int64_t above)
{
	size_t		size = 64,
				len = 1;
	char	   *buf = xcalloc(1, size);
	OutboxMsg  *m = q->tail;

	buf[0] = '{';
	while (m != NULL && m->prev != NULL && m->prev->id > above)
		m = m->prev;
	for (; m != NULL; m = m->next)
	{
		if (m->id <= above)
			continue;
		if (len + 24 > size)
		{
			size *= 2;
			buf = realloc(buf, size);
			if (buf == NULL)
				exit(1);
		}
		len += sprintf(buf + len, "%s%lld", len > 1 ? "," : "", (long long) m->id);
	}
	strcpy(buf + len, "}");
	return buf;
}

/*
 * msg_key: the message's key, or NULL.
 */
const char *
msg_key(const OutboxMsg *m)
{
	return m->ks ? m->ks->key : NULL;
}
