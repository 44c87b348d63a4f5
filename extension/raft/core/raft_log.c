/*-------------------------------------------------------------------------
 *
 * raft_log.c
 *	  The in-memory log: a snapshot followed by entries, with truncation,
 *	  compaction and the conflict hint used for fast back-off.
 *
 * The core keeps every entry since the last snapshot in memory, so that it
 * never has to read the caller's storage; the caller bounds that memory by
 * compacting (raft_compact) after it has applied entries.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

/*
 * raft_log_last: index of the last entry (the snapshot's if none follow).
 */
uint64_t
raft_log_last(const RaftLog *l)
{
	return l->snap.index + l->n;
}

/*
 * raft_log_last_term: term of the last entry, for vote comparisons.
 */
uint64_t
raft_log_last_term(const RaftLog *l)
{
	return l->n > 0 ? l->ents[l->n - 1].term : l->snap.term;
}

/*
 * raft_log_get: the entry at index, or NULL if compacted or absent.
 */
RaftEntry *
raft_log_get(const RaftLog *l, uint64_t index)
{
	if (index <= l->snap.index || index > raft_log_last(l))
		return NULL;
	return &l->ents[index - l->snap.index - 1];
}

/*
 * raft_log_term: sets *term to the term of index and returns true, or
 * returns false when the term is unknown (compacted away or past the end).
 * Index 0 has term 0 so that the first append always matches.
 */
bool
raft_log_term(const RaftLog *l, uint64_t index, uint64_t *term)
{
	RaftEntry  *e;

	if (index == l->snap.index)
	{
		*term = l->snap.term;
		return true;
	}
	e = raft_log_get(l, index);
	if (e == NULL)
		return false;
	*term = e->term;
	return true;
}

/*
 * raft_log_put: store a copy of e at e->index, which must be at most one
 * past the end.  An existing entry there is overwritten in place; the
 * caller truncates first when the suffix must go (see raft.c).  Entries
 * from there on are no longer stable: they must be persisted again.
 */
void
raft_log_put(RaftNode *r, const RaftEntry *e)
{
	RaftLog    *l = &r->log;
	RaftEntry  *slot;

	if (e->index == raft_log_last(l) + 1)
	{
		if (l->n == l->cap)
		{
			l->cap = l->cap ? l->cap * 2 : 64;
			l->ents = raft_realloc(r, l->ents, l->cap * sizeof(RaftEntry));
		}
		slot = &l->ents[l->n++];
	}
	else
	{
		slot = raft_log_get(l, e->index);
		if (slot == NULL)
			return;
		raft_dealloc(r, slot->data);
	}
	*slot = *e;
	slot->data = NULL;
	if (e->len > 0)
	{
		slot->data = raft_alloc(r, e->len);
		memcpy(slot->data, e->data, e->len);
	}
	if (l->stable >= e->index)
		l->stable = e->index - 1;
	if (e->type == RAFT_ENTRY_CONF)
		raft_conf_apply_entry(r, slot);
}

/*
 * raft_log_truncate: drop the entries from index from on, because a
 * leader's log disagrees with them.  The configuration may have come from
 * one of them, so it is recomputed.
 */
void
raft_log_truncate(RaftNode *r, uint64_t from)
{
	RaftLog    *l = &r->log;
	bool		had_conf = false;

	if (from <= l->snap.index)
		from = l->snap.index + 1;
	while (raft_log_last(l) >= from && l->n > 0)
	{
		RaftEntry  *e = &l->ents[--l->n];

		had_conf |= (e->type == RAFT_ENTRY_CONF);
		raft_dealloc(r, e->data);
	}
	if (l->stable >= from)
		l->stable = from - 1;
	if (had_conf)
		raft_conf_recompute(r);
}

/*
 * raft_log_free: release every entry and the snapshot data.
 */
void
raft_log_free(RaftNode *r)
{
	size_t		i;

	for (i = 0; i < r->log.n; i++)
		raft_dealloc(r, r->log.ents[i].data);
	raft_dealloc(r, r->log.ents);
	raft_dealloc(r, r->log.snap.data);
	r->log.ents = NULL;
	r->log.n = r->log.cap = 0;
	r->log.snap.data = NULL;
}

/*
 * raft_snapshot_copy: deep copy of src into dst (dst's old data is not
 * freed: the caller does that if needed).
 */
void
raft_snapshot_copy(RaftNode *r, RaftSnapshot *dst, const RaftSnapshot *src)
{
	*dst = *src;
	dst->data = NULL;
	if (src->len > 0)
	{
		dst->data = raft_alloc(r, src->len);
		memcpy(dst->data, src->data, src->len);
	}
}

/*
 * raft_log_restore_snapshot: replace the whole log by snapshot s (from
 * InstallSnapshot or a restart).  Everything up to s->index is committed by
 * definition; the configuration is the snapshot's.
 */
void
raft_log_restore_snapshot(RaftNode *r, const RaftSnapshot *s)
{
	RaftLog    *l = &r->log;
	size_t		i;

	for (i = 0; i < l->n; i++)
		raft_dealloc(r, l->ents[i].data);
	l->n = 0;
	raft_dealloc(r, l->snap.data);
	raft_snapshot_copy(r, &l->snap, s);
	l->stable = s->index;
	if (l->committed < s->index)
		l->committed = s->index;
	raft_conf_recompute(r);
}

/*
 * raft_log_conflict_hint: the largest index <= index whose term is <= term.
 * A follower rejecting an append sends it so that the leader can skip a
 * whole term of mismatching entries per round trip instead of one entry;
 * the leader uses it again on its own log with the follower's term.
 */
uint64_t
raft_log_conflict_hint(const RaftLog *l, uint64_t index, uint64_t term)
{
	uint64_t	t;

	if (index > raft_log_last(l))
		index = raft_log_last(l);
	while (index > l->snap.index)
	{
		if (!raft_log_term(l, index, &t) || t <= term)
			break;
		index--;
	}
	return index;
}

/*
 * raft_compact: the caller has applied up to index and stored a snapshot
 * of its state machine as of index (data, len); the core keeps a copy to
 * send to lagging followers and frees the entries up to index.  The caller
 * persists its snapshot itself before calling this.  Returns RAFT_OK, or
 * RAFT_ERR_INVALID if index is not applied yet or already compacted.
 */
int
raft_compact(RaftNode *node, uint64_t index, const void *data, size_t len)
{
	RaftLog    *l = &node->log;
	RaftSnapshot s;
	size_t		drop;
	size_t		i;

	if (index <= l->snap.index || index > l->applied)
		return RAFT_ERR_INVALID;

	/* the configuration as of index, not the latest one */
	memset(&s, 0, sizeof(s));
	s.index = index;
	s.term = raft_log_get(l, index)->term;
	s.conf = l->snap.conf;
	for (i = 0; i < l->n && l->ents[i].index <= index; i++)
		if (l->ents[i].type == RAFT_ENTRY_CONF)
			raft_conf_state_apply(&s.conf, &l->ents[i]);
	s.len = len;
	s.data = (uint8_t *) data;

	drop = index - l->snap.index;
	for (i = 0; i < drop; i++)
		raft_dealloc(node, l->ents[i].data);
	memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof(RaftEntry));
	l->n -= drop;
	raft_dealloc(node, l->snap.data);
	raft_snapshot_copy(node, &l->snap, &s);
	if (l->stable < index)
		l->stable = index;
	return RAFT_OK;
}
