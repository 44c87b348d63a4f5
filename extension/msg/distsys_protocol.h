/*-------------------------------------------------------------------------
 *
 * distsys_protocol.h
 *	  What the extension (extension/msg) and distsys-relay (relay/) must
 *	  agree on: the outbox's lanes, its NOTIFY channel, the relay's lock
 *	  names, the message id, and the Kafka headers a message carries.
 *
 * Both sides include this one header, so a change here changes both.  It
 * includes no PostgreSQL header: the relay is an ordinary client program
 * and never includes postgres.h.  Values must stay plain literals (the
 * extension pastes DISTSYS_OUTBOX_LANES into SQL text with CppAsString2).
 *
 * The install script (distsys--1.0.sql) cannot include a C header and
 * keeps two copies: the outbox's CHECK on lane (0 .. DISTSYS_OUTBOX_LANES
 * - 1) and its CHECK on payload_type (the DISTSYS_PAYLOAD_* names).  The
 * regression test outbox_api fails when either copy disagrees with this
 * header: it compares the lane a keyless message gets with the CHECK's
 * bound, and sends a payload of each type through the CHECK.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DISTSYS_PROTOCOL_H
#define DISTSYS_PROTOCOL_H

#include <inttypes.h>

/*
 * The outbox is split into this many lanes: a keyed message's lane is a
 * hash of its key modulo the count (one key, one lane, so one relay keeps
 * its order); a keyless message's lane is its id modulo the count.  A
 * relay started with --lanes N owns relay lanes, and relay lane r holds
 * the outbox lanes with lane % N = r; N is at most this count.
 */
#define DISTSYS_OUTBOX_LANES		1024

/* outbox_send notifies this channel at commit; the relay LISTENs on it. */
#define DISTSYS_OUTBOX_CHANNEL		"distsys_outbox"

/* The payload_type of an outbox row: which outbox_send variant wrote it. */
#define DISTSYS_PAYLOAD_JSON		"json"
#define DISTSYS_PAYLOAD_TEXT		"text"
#define DISTSYS_PAYLOAD_BYTES		"bytes"

/*
 * The relay's session-owned distsys locks, N being its --lanes: one per
 * relay lane r it owns, and one per live relay (its backend's pid) so that
 * relays without a lane count too.  The LIKE pattern finds both kinds of
 * one N in distsys.dlocks.
 */
#define DISTSYS_RELAY_LANE_LOCK_PREFIX	"distsys.relay.lane.%d."	/* N */
#define DISTSYS_RELAY_LANE_LOCK			DISTSYS_RELAY_LANE_LOCK_PREFIX "%d"	/* N, r */
#define DISTSYS_RELAY_MEMBER_LOCK		"distsys.relay.member.%d.%d"	/* N, pid */
#define DISTSYS_RELAY_LOCK_PATTERN		"distsys.relay.%%.%d.%%"	/* N */

/*
 * Lock names starting with this prefix are reserved: the dlock_* functions
 * refuse them to roles that are neither superusers nor have the privileges
 * of DISTSYS_RELAY_ROLE (created by the install script), so no other role
 * can hold a relay's lane or pose as a relay.
 */
#define DISTSYS_RESERVED_LOCK_PREFIX	"distsys."
#define DISTSYS_RELAY_ROLE				"distsys_relay"

/*
 * The message id of an outbox message, unique across clusters, databases
 * and the server's lifetimes: "<system identifier>-<database oid>-<timeline>-
 * <server start>-<outbox id>", the server start being the postmaster's start
 * time in microseconds since 2000-01-01.  The outbox id alone can be handed
 * out again whenever the server goes back in its WAL (a failover to a
 * standby that lacks the last commits, a point-in-time or file-level
 * restore); each of those starts a server, and a promotion or an archive
 * recovery also moves to a new timeline, so the prefix then differs.
 * outbox_send formats the prefix (uint64_t, unsigned int, unsigned int,
 * int64_t) and appends the id in SQL; the row keeps the whole id, so a
 * message relayed again after a restart carries the same one.  The
 * consume command deduplicates on the id; a Kafka message that carries
 * none gets "<topic>-<partition>-<offset>" (string, int32_t, int64_t).
 */
#define DISTSYS_MESSAGE_ID_PREFIX_FORMAT	"%" PRIu64 "-%u-%u-%" PRId64 "-"
#define DISTSYS_FALLBACK_MESSAGE_ID_FORMAT	"%s-%" PRId32 "-%" PRId64

/*
 * The Kafka headers the relay adds to every message it publishes, and the
 * consume command reads: the message id, the row's created_at as ISO 8601
 * UTC (the inbox's retention counts from it), and the payload's content
 * type (a JSON payload goes to the handler's jsonb variant).
 */
#define DISTSYS_HEADER_MESSAGE_ID	"distsys-message-id"
#define DISTSYS_HEADER_SENT_AT		"distsys-sent-at"
#define DISTSYS_HEADER_CONTENT_TYPE	"content-type"

#define DISTSYS_CONTENT_TYPE_JSON	"application/json"
#define DISTSYS_CONTENT_TYPE_TEXT	"text/plain; charset=utf-8"
#define DISTSYS_CONTENT_TYPE_BYTES	"application/octet-stream"

/*
 * inbox_claim's SQLSTATE for a message sent before the retention horizon
 * (class Y is distsys's own: docs/reference.md): the consume command
 * dead-letters such a message at once instead of retrying it.
 */
#define DISTSYS_SQLSTATE_INBOX_TOO_OLD	"YI001"

#endif							/* DISTSYS_PROTOCOL_H */
