/*-------------------------------------------------------------------------
 *
 * raft_transport.c
 *	  The sending side of the Raft transport: the worker's one libpq
 *	  connection per peer, over which each batch is one pipelined
 *	  SELECT distsys.raft_deliver($1::bytea).
 *
 * Only the Raft worker runs this file, and it keeps all of its state in
 * this process (no shared memory, no locks).  Nothing here blocks: a
 * connection is started with PQconnectStart and driven by PQconnectPoll
 * when its socket is ready; once up, it is non-blocking and in pipeline
 * mode, and raft_transport_wait waits on the worker's latch and every
 * peer's socket at once, then moves each connection on.
 *
 * Each batch is sent as its own query followed by PQpipelineSync, so each
 * runs in its own implicit transaction: a refused batch aborts only
 * itself (PGRES_PIPELINE_ABORTED covers nothing but the rest of that
 * sync's segment, which is empty).  A batch counts as unanswered from its
 * send until its PGRES_PIPELINE_SYNC arrives.
 *
 * What happens on each failure (Raft tolerates loss and retries by
 * protocol, so nothing is ever resent here):
 *	- peer not connected, or RAFT_MAX_UNANSWERED batches unanswered: the
 *	  new batch is dropped (counted in the peer's dropped, as are the
 *	  batches the drop fault loses);
 *	- connection attempt fails or passes its deadline (the larger of 1 s
 *	  and twice the election timeout): closed, retried after a backoff of
 *	  100 ms doubling to 2 s, reset by a successful connection;
 *	- connection breaks (PQconsumeInput or PQflush fails): closed, and
 *	  retried the same way; its unanswered batches are lost;
 *	- raft_deliver answers with an error (peer's worker not running, not
 *	  a member, another cluster): LOG'ed at most once a minute per peer and
 *	  distinct message; the connection stays.
 *
 * The URI dialed for a peer is its route in distsys.raft_routes if this
 * node has one, else the URI the cluster knows (distsys.peers or
 * raft_nodes, as raft_transport_set_peer is given it): a route is this
 * node's own way to the peer (NAT, a tunnel, a per-link proxy in tests)
 * and never leaves this process.
 *
 * Fault injection for the chaos tests (distsys.raft_fault_drop_to and
 * distsys.raft_fault_delay_to, PGC_SIGHUP): batches to a "drop" peer are
 * discarded at flush as if the network lost them; batches to a "delay"
 * peer are held until their due time, in order, and sent then.
 *
 * Every connection holds one external file descriptor (AcquireExternalFD),
 * as remote.c's do.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "catalog/pg_type_d.h"
#include "lib/stringinfo.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "raftnode.h"
#include "raft_transport.h"

#define RAFT_MAX_UNANSWERED		64	/* batches in flight per peer */
#define RAFT_BACKOFF_MIN_MS		100
#define RAFT_BACKOFF_MAX_MS		2000
#define RAFT_LOG_INTERVAL_MS	60000
#define RAFT_DELIVER_SQL		"SELECT distsys.raft_deliver($1::bytea)"

typedef enum PeerState
{
	PEER_DOWN,					/* no connection; retry at retry_at */
	PEER_CONNECTING,			/* PQconnectPoll in progress */
	PEER_UP						/* pipeline mode, sending */
} PeerState;

/* A batch held back by distsys.raft_fault_delay_to. */
typedef struct HeldBatch
{
	TimestampTz due;
	size_t		len;
	uint8		data[FLEXIBLE_ARRAY_MEMBER];
} HeldBatch;

typedef struct Peer
{
	bool		used;
	uint64		id;
	char		uri[RAFT_PEER_URI_MAX];
	PeerState	state;
	PGconn	   *conn;
	pgsocket	sock;			/* the socket in the wait set */
	int			pos;			/* its position there; -1: not in it */
	int			events;			/* the events it waits for there */
	PostgresPollingStatusType poll;	/* what the connection attempt waits for */
	bool		flush_pending;	/* PQflush returned 1 */
	int			ready;			/* socket events seen by the last wait */
	TimestampTz deadline;		/* of the connection attempt */
	TimestampTz retry_at;
	int			backoff_ms;
	int			unanswered;
	TimestampTz last_answer;
	uint64		dropped;
	StringInfoData batch;		/* envelope room, then the items */
	uint32		n_items;
	List	   *held;			/* HeldBatch *, oldest first */
	char		last_log[256];	/* rate limit of LOGs about this peer */
	TimestampTz last_log_at;
} Peer;

static Peer peers[RAFT_MAX_NODES];
static uint64 self_id;
static uint8 cluster_id[RAFT_CLUSTER_ID_BYTES];
static MemoryContext transport_cxt = NULL;
static WaitEventSet *wait_set = NULL;
static bool wait_set_stale = true;
static RaftPeers routes;		/* distsys.raft_routes, read at start */

/* the fault settings, parsed (raft_transport_reload_faults) */
static int	n_drop_to;
static uint64 drop_to[RAFT_MAX_NODES];
static int	n_delay_to;
static uint64 delay_to[RAFT_MAX_NODES];
static int	delay_ms[RAFT_MAX_NODES];

/* ---- fault settings ---- */

/*
 * raft_fault_parse: parse text, space-separated node ids (with_ms false)
 * or id:ms pairs (with_ms true), into ids[] and ms[] (may be NULL when
 * !with_ms), at most RAFT_MAX_NODES; the number found, or -1 with the
 * reason in err.  Pure parsing, so guc.c's check hooks use it too.
 */
int
raft_fault_parse(const char *text, bool with_ms, uint64 *ids, int *ms,
				 char *err, size_t errlen)
{
	const char *c = text ? text : "";
	int			n = 0;

	for (;;)
	{
		char	   *end;
		unsigned long long id;
		long		wait = 0;

		while (isspace((unsigned char) *c))
			c++;
		if (*c == '\0')
			return n;
		if (n == RAFT_MAX_NODES)
		{
			snprintf(err, errlen, "more than %d entries", RAFT_MAX_NODES);
			return -1;
		}
		errno = 0;
		id = isdigit((unsigned char) *c) ? strtoull(c, &end, 10) : 0;
		if (id == 0 || id > RAFT_PEER_ID_MAX || errno != 0)
		{
			snprintf(err, errlen, "\"%.20s\" does not start with a node id from 1 to %d",
					 c, RAFT_PEER_ID_MAX);
			return -1;
		}
		c = end;
		if (with_ms)
		{
			if (*c != ':' || !isdigit((unsigned char) c[1]))
			{
				snprintf(err, errlen, "node %llu has no \":milliseconds\"", id);
				return -1;
			}
			wait = strtol(c + 1, &end, 10);
			if (wait > 3600 * 1000 || errno != 0)
			{
				snprintf(err, errlen, "the delay of node %llu is over an hour", id);
				return -1;
			}
			c = end;
			ms[n] = (int) wait;
		}
		if (*c != '\0' && !isspace((unsigned char) *c))
		{
			snprintf(err, errlen, "unexpected \"%.20s\" after node %llu", c, id);
			return -1;
		}
		ids[n++] = id;
	}
}

/*
 * raft_transport_reload_faults: parse the fault settings again.  Their
 * check hooks accepted them, so a failure here is a bug.
 */
void
raft_transport_reload_faults(void)
{
	char		err[128];

	n_drop_to = raft_fault_parse(distsys_raft_fault_drop_to, false, drop_to, NULL,
								 err, sizeof(err));
	n_delay_to = raft_fault_parse(distsys_raft_fault_delay_to, true, delay_to, delay_ms,
								  err, sizeof(err));
	if (n_drop_to < 0 || n_delay_to < 0)
		elog(ERROR, "distsys raft: a fault setting passed its check but does not parse: %s", err);
}

/*
 * fault_delay: the milliseconds batches to id are held (0: none), or -1
 * when they are dropped.
 */
static int
fault_delay(uint64 id)
{
	for (int i = 0; i < n_drop_to; i++)
		if (drop_to[i] == id)
			return -1;
	for (int i = 0; i < n_delay_to; i++)
		if (delay_to[i] == id)
			return delay_ms[i];
	return 0;
}

/* ---- peers and connections ---- */

/*
 * peer_log: LOG msg about p, unless the same message was logged for p
 * within the last minute: a peer that is down would otherwise fill the
 * log at every retry.
 */
static void
peer_log(Peer *p, const char *msg)
{
	TimestampTz now = GetCurrentTimestamp();

	if (strcmp(p->last_log, msg) == 0 &&
		!TimestampDifferenceExceeds(p->last_log_at, now, RAFT_LOG_INTERVAL_MS))
		return;
	strlcpy(p->last_log, msg, sizeof(p->last_log));
	p->last_log_at = now;
	ereport(LOG,
			(errmsg("distsys raft: node %llu: %s", (unsigned long long) p->id, msg),
			 errdetail("The same message about this node is logged at most once a minute.")));
}

/*
 * find_peer: the slot of id, or NULL.
 */
static Peer *
find_peer(uint64 id)
{
	for (int i = 0; i < RAFT_MAX_NODES; i++)
		if (peers[i].used && peers[i].id == id)
			return &peers[i];
	return NULL;
}

/*
 * peer_close: drop p's connection, if any, and schedule the next attempt
 * after the backoff, which doubles each time up to its maximum.  Batches
 * in flight are lost; held ones stay for the next connection.
 */
static void
peer_close(Peer *p)
{
	if (p->conn != NULL)
	{
		PQfinish(p->conn);
		ReleaseExternalFD();
		p->conn = NULL;
		wait_set_stale = true;
	}
	p->state = PEER_DOWN;
	p->unanswered = 0;
	p->flush_pending = false;
	p->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), p->backoff_ms);
	p->backoff_ms = Min(p->backoff_ms * 2, RAFT_BACKOFF_MAX_MS);
}

/*
 * peer_fail: log why p's connection failed (libpq's message, or reason
 * when given) and close it.
 */
static void
peer_fail(Peer *p, const char *reason)
{
	char		msg[256];

	snprintf(msg, sizeof(msg), "%s", reason ? reason :
			 p->conn ? PQerrorMessage(p->conn) : "out of memory");
	peer_log(p, pchomp(msg));
	peer_close(p);
}

/*
 * connect_timeout_ms: how long one connection attempt may take: twice the
 * election timeout, so a slow handshake is not retried in a loop, and at
 * least a second.
 */
static int
connect_timeout_ms(void)
{
	return Max(1000, 2 * distsys_raft_election_timeout_ms);
}

/*
 * peer_connect_start: start a connection attempt to p.  Out of file
 * descriptors is a failure like any other, retried after the backoff.
 */
static void
peer_connect_start(Peer *p)
{
	if (!AcquireExternalFD())
	{
		peer_fail(p, "could not connect: too many open files");
		return;
	}
	p->conn = PQconnectStart(p->uri);
	wait_set_stale = true;
	if (p->conn == NULL)
		ReleaseExternalFD();	/* peer_close releases it only with a conn */
	if (p->conn == NULL || PQstatus(p->conn) == CONNECTION_BAD)
	{
		peer_fail(p, NULL);
		return;
	}
	p->state = PEER_CONNECTING;
	p->poll = PGRES_POLLING_WRITING;	/* libpq: first wait for writable */
	p->ready = 0;
	p->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), connect_timeout_ms());
}

/*
 * peer_connected: the attempt succeeded: non-blocking pipeline mode.
 */
static void
peer_connected(Peer *p)
{
	if (PQsetnonblocking(p->conn, 1) != 0 || PQenterPipelineMode(p->conn) != 1)
	{
		peer_fail(p, NULL);
		return;
	}
	p->state = PEER_UP;
	p->unanswered = 0;
	p->flush_pending = false;
	p->backoff_ms = RAFT_BACKOFF_MIN_MS;
	p->last_log[0] = '\0';		/* the next failure is news */
	ereport(LOG,
			(errmsg("distsys raft: connected to node %llu", (unsigned long long) p->id)));
}

/*
 * peer_connect_poll: move p's connection attempt on.  PQconnectPoll is
 * called only when the socket is ready for what it asked for, as libpq
 * requires; the socket may change meanwhile (another host, an SSL
 * fallback), which the next wait notices.
 */
static void
peer_connect_poll(Peer *p, TimestampTz now)
{
	int			need = p->poll == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;

	if (!(p->ready & need))
	{
		if (now >= p->deadline)
			peer_fail(p, "could not connect: no answer in time");
		return;
	}
	p->poll = PQconnectPoll(p->conn);
	if (PQsocket(p->conn) != p->sock)
		wait_set_stale = true;
	if (p->poll == PGRES_POLLING_OK)
		peer_connected(p);
	else if (p->poll == PGRES_POLLING_FAILED)
		peer_fail(p, NULL);
}

/*
 * peer_reset_batch: an empty batch with room for its envelope.
 */
static void
peer_reset_batch(Peer *p)
{
	resetStringInfo(&p->batch);
	appendStringInfoSpaces(&p->batch, RAFT_ENVELOPE_BYTES);
	p->n_items = 0;
}

/*
 * raft_transport_set_peer: talk to id at uri, or at its route if
 * distsys.raft_routes has one, from now on (a changed URI reconnects).
 */
void
raft_transport_set_peer(uint64 id, const char *uri)
{
	Peer	   *p = find_peer(id);
	const RaftPeer *route = raft_peers_find(&routes, id);
	MemoryContext old;

	if (route != NULL)
		uri = route->uri;
	if (p != NULL && strcmp(p->uri, uri) == 0)
		return;
	if (route != NULL)
		ereport(LOG,
				(errmsg("distsys raft: node %llu is dialed at its route in distsys.raft_routes",
						(unsigned long long) id)));
	if (p != NULL)
		raft_transport_remove_peer(id);
	for (p = peers; p < peers + RAFT_MAX_NODES && p->used; p++)
		;
	if (p == peers + RAFT_MAX_NODES)
		elog(ERROR, "distsys raft: more than %d peers", RAFT_MAX_NODES);
	memset(p, 0, sizeof(*p));
	p->used = true;
	p->id = id;
	strlcpy(p->uri, uri, sizeof(p->uri));
	p->backoff_ms = RAFT_BACKOFF_MIN_MS;
	p->sock = PGINVALID_SOCKET;
	p->pos = -1;
	if (transport_cxt == NULL)
		transport_cxt = AllocSetContextCreate(TopMemoryContext, "distsys raft transport",
											  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(transport_cxt);
	initStringInfo(&p->batch);
	MemoryContextSwitchTo(old);
	peer_reset_batch(p);
	/* retry_at 0: the next raft_transport_wait connects */
}

/*
 * raft_transport_remove_peer: stop talking to id; what was queued for it
 * is dropped.
 */
void
raft_transport_remove_peer(uint64 id)
{
	Peer	   *p = find_peer(id);

	if (p == NULL)
		return;
	peer_close(p);
	list_free_deep(p->held);
	pfree(p->batch.data);
	p->used = false;
}

/*
 * raft_transport_start: see the header.  Called once by the worker.
 */
void
raft_transport_start(const RaftPeers *members, uint64 self,
					 const uint8 cluster[RAFT_CLUSTER_ID_BYTES])
{
	self_id = self;
	memcpy(cluster_id, cluster, RAFT_CLUSTER_ID_BYTES);
	raft_transport_reload_faults();
	raft_settings_routes(&routes);
	for (int i = 0; i < members->n; i++)
		if (members->peer[i].id != self)
			raft_transport_set_peer(members->peer[i].id, members->peer[i].uri);
}

/*
 * raft_transport_peer_connected: see the header.
 */
bool
raft_transport_peer_connected(uint64 id, TimestampTz *last_answer)
{
	Peer	   *p = find_peer(id);

	*last_answer = p ? p->last_answer : 0;
	return p != NULL && p->state == PEER_UP;
}

/* ---- sending ---- */

/*
 * peer_send: send one batch to p now, or drop it (not connected, too many
 * unanswered).  A failed send means a broken connection.
 */
static void
peer_send(Peer *p, const uint8 *data, size_t len)
{
	Oid			types[1] = {BYTEAOID};
	const char *values[1] = {(const char *) data};
	int			lengths[1] = {(int) len};
	int			formats[1] = {1};	/* binary: the bytea's bytes as they are */
	int			rc;

	if (p->state != PEER_UP || p->unanswered >= RAFT_MAX_UNANSWERED)
	{
		p->dropped++;
		return;
	}
	if (!PQsendQueryParams(p->conn, RAFT_DELIVER_SQL, 1, types, values, lengths, formats, 0) ||
		!PQpipelineSync(p->conn))
	{
		peer_fail(p, NULL);
		return;
	}
	p->unanswered++;
	rc = PQflush(p->conn);
	if (rc < 0)
		peer_fail(p, NULL);
	else
		p->flush_pending = rc == 1;
}

/*
 * peer_hold: keep a copy of a batch until delay ms from now, behind the
 * batches already held (a shorter delay set meanwhile does not reorder).
 */
static void
peer_hold(Peer *p, const uint8 *data, size_t len, int delay)
{
	HeldBatch  *h = MemoryContextAlloc(transport_cxt, offsetof(HeldBatch, data) + len);
	MemoryContext old;

	h->due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	if (p->held != NIL)
		h->due = Max(h->due, ((HeldBatch *) llast(p->held))->due);
	h->len = len;
	memcpy(h->data, data, len);
	old = MemoryContextSwitchTo(transport_cxt);
	p->held = lappend(p->held, h);
	MemoryContextSwitchTo(old);
}

/*
 * peer_send_due: send the held batches whose time has come, in order.
 */
static void
peer_send_due(Peer *p, TimestampTz now)
{
	while (p->held != NIL)
	{
		HeldBatch  *h = linitial(p->held);

		if (h->due > now)
			return;
		p->held = list_delete_first(p->held);
		peer_send(p, h->data, h->len);
		pfree(h);
	}
}

/*
 * peer_flush: close p's batch with its envelope and send, hold or drop it
 * as the fault settings say.
 */
static void
peer_flush(Peer *p)
{
	RaftEnvelope env;
	int			delay = fault_delay(p->id);

	if (p->n_items == 0)
		return;
	memcpy(env.cluster, cluster_id, RAFT_CLUSTER_ID_BYTES);
	env.from = self_id;
	env.to = p->id;
	env.count = p->n_items;
	raft_envelope_encode(&env, (uint8 *) p->batch.data);
	if (delay < 0)
		p->dropped++;			/* the fault: lost on the way */
	else if (delay > 0 || p->held != NIL)
		peer_hold(p, (uint8 *) p->batch.data, p->batch.len, delay);
	else
		peer_send(p, (uint8 *) p->batch.data, p->batch.len);
	peer_reset_batch(p);
}

/*
 * raft_transport_queue: see the header.  A batch that would pass
 * RAFT_BATCH_MAX_BYTES is flushed first; an item too large for any batch
 * is dropped (counted), as the receiver would refuse it.
 */
void
raft_transport_queue(uint64 to, uint8 kind, const uint8 *body, size_t len)
{
	Peer	   *p = find_peer(to);
	uint8		len_le[4];

	if (p == NULL)
		return;
	if (len > RAFT_BATCH_MAX_BYTES - RAFT_ENVELOPE_BYTES - RAFT_ITEM_HEADER_BYTES)
	{
		p->dropped++;
		return;
	}
	if (p->batch.len + RAFT_ITEM_HEADER_BYTES + len > RAFT_BATCH_MAX_BYTES)
		peer_flush(p);
	len_le[0] = (uint8) len;
	len_le[1] = (uint8) (len >> 8);
	len_le[2] = (uint8) (len >> 16);
	len_le[3] = (uint8) (len >> 24);
	appendBinaryStringInfo(&p->batch, (const char *) &kind, 1);
	appendBinaryStringInfo(&p->batch, (const char *) len_le, 4);
	appendBinaryStringInfo(&p->batch, (const char *) body, (int) len);
	p->n_items++;
}

/*
 * raft_transport_flush: see the header.
 */
void
raft_transport_flush(void)
{
	for (int i = 0; i < RAFT_MAX_NODES; i++)
		if (peers[i].used)
			peer_flush(&peers[i]);
}

/* ---- answers ---- */

/*
 * peer_result: one result from p's pipeline.
 */
static void
peer_result(Peer *p, PGresult *res)
{
	switch (PQresultStatus(res))
	{
		case PGRES_PIPELINE_SYNC:
			p->unanswered--;
			break;
		case PGRES_TUPLES_OK:
			p->last_answer = GetCurrentTimestamp();
			break;
		case PGRES_PIPELINE_ABORTED:
			break;				/* after an error, already logged */
		default:
			{
				const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

				/* the node answered, though not as hoped */
				p->last_answer = GetCurrentTimestamp();
				peer_log(p, msg ? msg : PQresStatus(PQresultStatus(res)));
			}
			break;
	}
}

/*
 * peer_read: read what p sent and take every complete result.  In
 * pipeline mode PQgetResult returns NULL at the end of each query's
 * results and goes on to the next query's at the following call; two
 * NULLs in a row, or PQisBusy, mean nothing more is there yet.
 */
static void
peer_read(Peer *p)
{
	int			nulls = 0;

	if (!PQconsumeInput(p->conn))
	{
		peer_fail(p, NULL);
		return;
	}
	while (p->unanswered > 0 && nulls < 2 && !PQisBusy(p->conn))
	{
		PGresult   *res = PQgetResult(p->conn);

		if (res == NULL)
		{
			nulls++;
			continue;
		}
		nulls = 0;
		peer_result(p, res);
		PQclear(res);
	}
	if (PQstatus(p->conn) == CONNECTION_BAD)
		peer_fail(p, NULL);
}

/*
 * peer_advance: move p on after a wait: connect, read, flush, send what
 * the delay fault held until now.
 */
static void
peer_advance(Peer *p, TimestampTz now)
{
	if (p->state == PEER_DOWN && now >= p->retry_at)
		peer_connect_start(p);
	if (p->state == PEER_CONNECTING)
		peer_connect_poll(p, now);
	if (p->state == PEER_UP && (p->ready & WL_SOCKET_READABLE))
		peer_read(p);
	if (p->state == PEER_UP && p->flush_pending)
	{
		int			rc = PQflush(p->conn);

		if (rc < 0)
			peer_fail(p, NULL);
		else
			p->flush_pending = rc == 1;
	}
	if (p->state != PEER_CONNECTING)
		peer_send_due(p, now);	/* while down, they are dropped in order */
	p->ready = 0;
}

/* ---- waiting ---- */

/*
 * peer_events: the socket events p waits for (0: no socket).
 */
static int
peer_events(Peer *p)
{
	if (p->state == PEER_CONNECTING)
		return p->poll == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
	if (p->state == PEER_UP)
		return WL_SOCKET_READABLE | (p->flush_pending ? WL_SOCKET_WRITEABLE : 0);
	return 0;
}

/*
 * wait_set_add_peer: put p's socket into the wait set, or update the
 * events it waits for there.
 */
static void
wait_set_add_peer(Peer *p)
{
	int			events = p->used ? peer_events(p) : 0;

	if (events == 0 || p->events == events)
		return;
	if (p->pos < 0)
	{
		p->sock = PQsocket(p->conn);
		p->pos = AddWaitEventToSet(wait_set, events, p->sock, NULL, p);
	}
	else
		ModifyWaitEvent(wait_set, p->pos, events, NULL);
	p->events = events;
}

/*
 * wait_set_prepare: the WaitEventSet for this wait: rebuilt when a socket
 * came or went (a connection closed, or libpq moved to another socket
 * while connecting), otherwise only each socket's events updated.  The
 * user_data of a socket's event is its Peer.
 */
static void
wait_set_prepare(void)
{
	for (Peer *p = peers; p < peers + RAFT_MAX_NODES && !wait_set_stale; p++)
		if (p->used && p->pos >= 0 && (peer_events(p) == 0 || PQsocket(p->conn) != p->sock))
			wait_set_stale = true;
	if (wait_set_stale)
	{
		if (wait_set != NULL)
			FreeWaitEventSet(wait_set);
		wait_set = NULL;
		for (Peer *p = peers; p < peers + RAFT_MAX_NODES; p++)
			p->pos = -1, p->events = 0;
		wait_set = CreateWaitEventSet(TopMemoryContext, 2 + RAFT_MAX_NODES);
		AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		wait_set_stale = false;
	}
	for (Peer *p = peers; p < peers + RAFT_MAX_NODES; p++)
		wait_set_add_peer(p);
}

/*
 * earlier: the sooner of *deadline and t (0: no time).
 */
static void
earlier(TimestampTz *deadline, TimestampTz t)
{
	if (t != 0 && (*deadline == 0 || t < *deadline))
		*deadline = t;
}

/*
 * wait_timeout_ms: timeout_ms (-1: none), shortened so that the wait ends
 * in time for the next held batch, reconnect or connect deadline.
 */
static long
wait_timeout_ms(long timeout_ms)
{
	TimestampTz next = 0;
	long		ms;

	for (Peer *p = peers; p < peers + RAFT_MAX_NODES; p++)
	{
		if (!p->used)
			continue;
		if (p->state == PEER_DOWN)
			earlier(&next, Max(p->retry_at, 1));
		if (p->state == PEER_CONNECTING)
			earlier(&next, p->deadline);
		else if (p->held != NIL)
			earlier(&next, ((HeldBatch *) linitial(p->held))->due);
	}
	if (next == 0)
		return timeout_ms;
	/* rounded up, so the wait does not end just before next */
	ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next);
	return timeout_ms < 0 ? ms : Min(ms, timeout_ms);
}

/*
 * raft_transport_wait: see the header.  No CHECK_FOR_INTERRUPTS here: the
 * caller handles interrupts after the latch is reset.
 */
void
raft_transport_wait(long timeout_ms)
{
	WaitEvent	events[2 + RAFT_MAX_NODES];
	int			n;
	TimestampTz now;

	wait_set_prepare();
	n = WaitEventSetWait(wait_set, wait_timeout_ms(timeout_ms), events, lengthof(events),
						 PG_WAIT_EXTENSION);
	for (int i = 0; i < n; i++)
	{
		if (events[i].events & WL_LATCH_SET)
			ResetLatch(MyLatch);
		else if (events[i].user_data != NULL)
			((Peer *) events[i].user_data)->ready |= events[i].events;
	}
	now = GetCurrentTimestamp();
	for (Peer *p = peers; p < peers + RAFT_MAX_NODES; p++)
		if (p->used)
			peer_advance(p, now);
}
