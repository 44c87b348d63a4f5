-- distsys--1.0.sql: install script of distsys 1.0 (never edit once released;
-- later versions add distsys--1.0--1.1.sql and so on).

\echo Use "CREATE EXTENSION distsys" to load this file. \quit

-- Any role may use distsys (take locks, send messages); what needs more is
-- restricted function by function below.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

-- pg_dump leaves out the contents of an extension's tables unless the
-- extension marks them (pg_extension_config_dump); CREATE EXTENSION on
-- restore makes them empty.  Every table below that holds state users made
-- is marked, with its sequence, so a dump of the database keeps it; what a
-- restored row may and may not be trusted for is written at each mark.

-- distsys's roles: distsys_lock_admin (locks), distsys_dtx_user (2PC),
-- distsys_relay and distsys_consumer (the two commands of distsys-relay),
-- distsys_raft_peer (the Raft workers of the other members).
-- Roles are cluster-wide: the first CREATE EXTENSION creates them, NOLOGIN,
-- and marks each as distsys's with a comment; CREATE EXTENSION in another
-- database (or again after DROP EXTENSION, which leaves them) adopts them.
-- A role of that name without the mark, or that may log in or has any
-- other attribute, is refused: whoever created it (or can log in as it)
-- would get, with its members, what distsys grants the role.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT * FROM (VALUES
		('distsys_lock_admin', 'distsys role: members may break locks and act on any role''s lock grants'),
		('distsys_dtx_user', 'distsys role: members may run distributed transactions (dtx_exec, dtx_query)'),
		('distsys_relay', 'distsys role: what distsys-relay (publish) needs, and the reserved lock names distsys.*'),
		('distsys_consumer', 'distsys role: what distsys-relay consume needs beyond inbox_apply'),
		('distsys_raft_peer', 'distsys role: the other Raft members'' workers, which deliver batches (raft_deliver)'),
		('distsys_raft_user', 'distsys role: members may write the Raft key-value store (raft_put, raft_cas, raft_delete) and Paxos (paxos_propose, paxos_cas)'))
		AS v(name, note)
	LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r.name);
			EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', r.name, r.note);
		ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_roles a
						  WHERE a.rolname = r.name AND NOT a.rolcanlogin AND NOT a.rolsuper
							AND NOT a.rolcreaterole AND NOT a.rolcreatedb
							AND NOT a.rolreplication AND NOT a.rolbypassrls
							AND pg_catalog.shobj_description(a.oid, 'pg_authid') LIKE 'distsys role: %') THEN
			RAISE EXCEPTION 'role "%" already exists and is not one distsys created', r.name
				USING ERRCODE = 'duplicate_object',
					  DETAIL = 'distsys adopts a role of that name only if a distsys install created it (its comment starts with "distsys role: ") and it is NOLOGIN with no other attribute.',
					  HINT = pg_catalog.format('Drop or rename role %I; or, if it is meant for distsys, make it NOLOGIN and run COMMENT ON ROLE %I IS %L.',
											   r.name, r.name, r.note);
		END IF;
	END LOOP;
END
$$;

CREATE FUNCTION version() RETURNS text
	AS 'MODULE_PATHNAME', 'distsys_version'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION version() IS 'version of the loaded distsys library';

------------------------------------------------------------------------------
-- Distributed locks
------------------------------------------------------------------------------

-- The durable copy of application-owned grants.  Shared memory decides who
-- holds a lock while the server runs; this table brings the grants back
-- after a restart.  One row per holder.  The unique index on the name of
-- exclusive grants is the classic "unique-index lock table"; shared grants
-- are unique per (name, owner).  Each grant inserts into exactly one index.
-- role is the role that took the grant: only it, roles with its privileges
-- and members of distsys_lock_admin may re-enter, release, renew or fence
-- it, so the owner string, which everyone may read, gives no power.
-- No CHECK constraints: only the dlock_* functions write this table, and they
-- validate mode and depth before they do; evaluating two CHECKs measured 7%
-- of the CPU of a durable grant and release pair.
CREATE TABLE dlock_leases (
	name		text NOT NULL,
	owner		text NOT NULL,
	role		regrole NOT NULL,
	mode		text NOT NULL,
	token		bigint NOT NULL,
	depth		integer NOT NULL,
	granted_at	timestamptz NOT NULL,
	expires_at	timestamptz NOT NULL
) WITH (fillfactor = 80);
CREATE UNIQUE INDEX dlock_leases_exclusive ON dlock_leases (name)
	WHERE mode = 'exclusive';
CREATE UNIQUE INDEX dlock_leases_shared ON dlock_leases (name, owner)
	WHERE mode = 'shared';
REVOKE ALL ON dlock_leases FROM PUBLIC;
GRANT SELECT ON dlock_leases TO PUBLIC;
COMMENT ON TABLE dlock_leases IS 'durable application-owned lock grants (written by the dlock_* functions)';
-- Restored leases are held again, with their tokens and expiry times, once
-- the first lock call in the database loads them.  Expired rows are dumped
-- too: the load moves the server's token counter above every token in the
-- table, expired or not (dlock_table.c), so a restored server, whose
-- counter starts afresh, never grants a token a client of the old server
-- may still hold for a lease in the table.  Tokens of grants that left no
-- row (released, cleaned up, session-owned) are not in a dump.
SELECT pg_catalog.pg_extension_config_dump('dlock_leases', '');

-- Members of role distsys_lock_admin (created or adopted at the top of this
-- script) may break locks they do not hold, and re-enter, release, renew
-- and fence grants that other roles took.

CREATE FUNCTION dlock_try(name text, ttl interval DEFAULT '30 seconds',
						  owner text DEFAULT NULL, mode text DEFAULT 'exclusive')
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'dlock_try'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dlock_try(text, interval, text, text) IS
	'take a lock without waiting: its fencing token, or NULL if another owner holds it';

CREATE FUNCTION dlock_acquire(name text, ttl interval DEFAULT '30 seconds',
							  timeout interval DEFAULT NULL, owner text DEFAULT NULL,
							  mode text DEFAULT 'exclusive')
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'dlock_acquire'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dlock_acquire(text, interval, interval, text, text) IS
	'take a lock, waiting in FIFO order: its fencing token, or NULL after the timeout';

CREATE FUNCTION dlock_release(name text, owner text DEFAULT NULL) RETURNS boolean
	AS 'MODULE_PATHNAME', 'dlock_release'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dlock_release(text, text) IS
	'release one level of a held lock: false if the caller did not hold it';

CREATE FUNCTION dlock_renew(name text, ttl interval DEFAULT '30 seconds',
							owner text DEFAULT NULL) RETURNS boolean
	AS 'MODULE_PATHNAME', 'dlock_renew'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dlock_renew(text, interval, text) IS
	'set the lease of a held lock to end ttl from now: false if it expired or was taken over';

CREATE FUNCTION dlock_check(name text, token bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'dlock_check'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dlock_check(text, bigint) IS
	'whether token is the current, unexpired grant of the lock';

CREATE FUNCTION dlock_assert(name text, token bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'dlock_assert'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dlock_assert(text, bigint) IS
	'raise SQLSTATE YL001 unless token is the current grant; fences the rest of the transaction';

CREATE FUNCTION dlock_break(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'dlock_break'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dlock_break(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dlock_break(text) TO distsys_lock_admin;
COMMENT ON FUNCTION dlock_break(text) IS
	'forcibly end every grant of a lock (superusers and distsys_lock_admin)';

CREATE FUNCTION dlock_cleanup() RETURNS bigint
	AS 'MODULE_PATHNAME', 'dlock_cleanup'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dlock_cleanup() IS
	'delete expired rows from dlock_leases: how many';

CREATE FUNCTION dlock_locks(OUT name text, OUT mode text, OUT owner text, OUT role regrole,
							OUT pid integer, OUT token bigint, OUT depth integer,
							OUT granted_at timestamptz, OUT expires_at timestamptz,
							OUT waiters integer)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'dlock_locks'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The lock views are readable by everyone, as their functions are: owner
-- strings and tokens give no power over another role's grant.
CREATE VIEW dlocks AS SELECT * FROM dlock_locks();
GRANT SELECT ON dlocks TO PUBLIC;
COMMENT ON VIEW dlocks IS 'current unexpired lock grants of this database, one row per holder';

CREATE FUNCTION dlock_waiter_list(OUT name text, OUT mode text, OUT owner text,
								  OUT role regrole, OUT pid integer,
								  OUT "position" integer, OUT waiting_since timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'dlock_waiter_list'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE VIEW dlock_waiters AS SELECT * FROM dlock_waiter_list();
GRANT SELECT ON dlock_waiters TO PUBLIC;
COMMENT ON VIEW dlock_waiters IS 'sessions waiting in dlock_acquire, in queue order per lock';

CREATE FUNCTION dlock_stats(OUT grants bigint, OUT releases bigint, OUT expiries bigint,
							OUT waits bigint, OUT wakeups bigint, OUT timeouts bigint,
							OUT breaks bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'dlock_stats'
	LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW dlock_stats AS
	SELECT s.*, CASE WHEN s.waits > 0 THEN round(s.wakeups::numeric / s.waits, 3) END
		AS wakeups_per_wait
	FROM dlock_stats() s;
GRANT SELECT ON dlock_stats TO PUBLIC;
COMMENT ON VIEW dlock_stats IS 'lock manager counters of the whole server since start or reset';

CREATE FUNCTION dlock_stats_reset() RETURNS void
	AS 'MODULE_PATHNAME', 'dlock_stats_reset'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dlock_stats_reset() FROM PUBLIC;

------------------------------------------------------------------------------
-- Transactional outbox
------------------------------------------------------------------------------

-- Messages written with the business data in one transaction, relayed to
-- Kafka by distsys-relay and deleted once the broker acknowledged them.
-- Insert-heavy and delete-on-ack: autovacuum is told to visit the table
-- after a fixed number of dead rows rather than a fraction of its size, so
-- it keeps up however small the table stays; the relay reads by keyset
-- (id > last id seen), never scanning over the dead rows at the head.
CREATE SEQUENCE outbox_id_seq AS bigint;
CREATE TABLE outbox (
	id			bigint PRIMARY KEY DEFAULT nextval('outbox_id_seq'),
	lane		smallint NOT NULL CHECK (lane BETWEEN 0 AND 1023),
	topic		text NOT NULL,
	key			text,
	payload		bytea,
	payload_type text NOT NULL CHECK (payload_type IN ('json', 'text', 'bytes')),
	headers		jsonb NOT NULL DEFAULT '{}',
	message_id	text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	last_error	text
) WITH (fillfactor = 90,
		autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
		autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 100000,
		autovacuum_vacuum_cost_delay = 0);
ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id;
CREATE INDEX outbox_lane_id ON outbox (lane, id);
REVOKE ALL ON outbox FROM PUBLIC;
COMMENT ON TABLE outbox IS 'messages waiting for distsys-relay (write them with outbox_send)';
-- The sequence too: a restored outbox must not hand out the ids of the
-- rows it restored (or of messages relayed before the dump) again.
SELECT pg_catalog.pg_extension_config_dump('outbox', '');
SELECT pg_catalog.pg_extension_config_dump('outbox_id_seq', '');

-- Messages the broker refused permanently or that failed too often.
CREATE TABLE outbox_dead (
	id			bigint PRIMARY KEY,
	lane		smallint NOT NULL,
	topic		text NOT NULL,
	key			text,
	payload		bytea,
	payload_type text NOT NULL,
	headers		jsonb NOT NULL,
	message_id	text NOT NULL,
	created_at	timestamptz NOT NULL,
	attempts	integer NOT NULL,
	error		text NOT NULL,
	failed_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);
REVOKE ALL ON outbox_dead FROM PUBLIC;
COMMENT ON TABLE outbox_dead IS 'dead-lettered outbox messages, with the error (requeue with outbox_requeue)';
SELECT pg_catalog.pg_extension_config_dump('outbox_dead', '');

-- Which roles may send to which topics.  Empty (as installed): any role may
-- send to any topic.  Once it has a row, outbox_send requires a row whose
-- pattern matches the topic and whose role is one the caller has the
-- privileges of (NULL: every role), and refuses the rest with 42501;
-- superusers are not checked.  A pattern is a topic name, or a prefix and
-- '*' ('orders.*'; '*' alone: every topic).  Only the extension's owner
-- (and superusers) may change it; everyone may read it.  A role is kept by
-- OID: drop a role's rows before the role.
CREATE TABLE outbox_topic_grants (
	topic_pattern text NOT NULL
		CHECK (topic_pattern ~ '^[A-Za-z0-9._-]*\*?$' AND topic_pattern <> ''),
	role		regrole,
	UNIQUE NULLS NOT DISTINCT (topic_pattern, role)
);
REVOKE ALL ON outbox_topic_grants FROM PUBLIC;
GRANT SELECT ON outbox_topic_grants TO PUBLIC;
COMMENT ON TABLE outbox_topic_grants IS
	'which roles may outbox_send to which topics (no rows: every role to every topic)';
SELECT pg_catalog.pg_extension_config_dump('outbox_topic_grants', '');

CREATE FUNCTION outbox_send(topic text, payload jsonb, key text DEFAULT NULL,
							headers jsonb DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'outbox_send_jsonb'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION outbox_send(topic text, payload text, key text DEFAULT NULL,
							headers jsonb DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'outbox_send_text'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION outbox_send(topic text, payload bytea, key text DEFAULT NULL,
							headers jsonb DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'outbox_send_bytea'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION outbox_send(text, jsonb, text, jsonb) IS
	'queue a message in the caller''s transaction: its outbox id';

-- What the relay calls.  Only the relay's role (and the owner) needs them.
-- Both name a row by its id and its message id: an id can be drawn again
-- after the server went back in its WAL (a failover, a restore), and a late
-- delivery report of a message relayed before must not delete or fail the
-- new row that has the same id.
CREATE FUNCTION outbox_ack(ids bigint[], message_ids text[]) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog
	AS $$
DECLARE
	n bigint;
BEGIN
	IF cardinality(ids) IS DISTINCT FROM cardinality(message_ids) THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
			MESSAGE = 'outbox_ack needs one message id for each outbox id',
			DETAIL = format('%s ids, %s message ids', cardinality(ids), cardinality(message_ids));
	END IF;
	WITH d AS (DELETE FROM distsys.outbox o USING unnest(ids, message_ids) AS a(id, message_id)
				WHERE o.id = a.id AND o.message_id = a.message_id RETURNING 1)
	SELECT count(*) INTO n FROM d;
	RETURN n;
END
$$;
COMMENT ON FUNCTION outbox_ack(bigint[], text[]) IS
	'delete messages the broker acknowledged (by id and message id): how many';

CREATE FUNCTION outbox_fail(msg_id bigint, message_id text, error text, permanent boolean,
							max_attempts integer, backoff interval) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog
	AS $$
DECLARE
	m distsys.outbox;
BEGIN
	UPDATE distsys.outbox o SET attempts = attempts + 1, last_error = error,
		   next_attempt_at = clock_timestamp() + backoff
	 WHERE o.id = msg_id AND o.message_id = outbox_fail.message_id RETURNING * INTO m;
	IF NOT FOUND THEN
		RETURN 'gone';
	END IF;
	IF permanent OR m.attempts >= max_attempts THEN
		DELETE FROM distsys.outbox WHERE id = msg_id;
		INSERT INTO distsys.outbox_dead (id, lane, topic, key, payload, payload_type,
										 headers, message_id, created_at, attempts, error)
		VALUES (m.id, m.lane, m.topic, m.key, m.payload, m.payload_type,
				m.headers, m.message_id, m.created_at, m.attempts, error);
		RETURN 'dead';
	END IF;
	RETURN 'retry';
END
$$;
COMMENT ON FUNCTION outbox_fail(bigint, text, text, boolean, integer, interval) IS
	'record a failed delivery (by id and message id): retry (after backoff) or dead-letter it';

-- The WAL position that at least the given number of physical standbys
-- have flushed (NULL while fewer are streaming): distsys-relay --standbys
-- publishes a row only once its commit is below it, and the consume
-- command commits offsets only then.  Reading another backend's
-- replication progress needs pg_read_all_stats; this function lends the
-- caller that one figure and nothing else.  A physical walsender is the
-- one connected to no database (a logical one reports its subscriber's
-- progress, not a copy of this server).
CREATE FUNCTION standby_flush_lsn(standbys integer) RETURNS pg_lsn
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog
	AS $$
	SELECT r.flush_lsn
	  FROM pg_stat_replication r JOIN pg_stat_activity a USING (pid)
	 WHERE a.datid IS NULL AND r.flush_lsn IS NOT NULL
	 ORDER BY r.flush_lsn DESC
	 OFFSET greatest(standbys, 1) - 1 LIMIT 1
$$;
COMMENT ON FUNCTION standby_flush_lsn(integer) IS
	'the WAL position at least this many physical standbys have flushed (NULL: fewer stream)';
REVOKE ALL ON FUNCTION standby_flush_lsn(integer) FROM PUBLIC;

-- outbox_requeue is C (extension/msg/outbox.c) so that, like a send, it
-- commits durably whatever synchronous_commit says: the relay publishes
-- what it puts back.
CREATE FUNCTION outbox_requeue(ids bigint[] DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'outbox_requeue'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION outbox_requeue(bigint[]) IS
	'move dead-lettered messages (NULL: all) back to the end of the outbox, same message ids and sent-at times';
REVOKE ALL ON FUNCTION outbox_ack(bigint[], text[]), outbox_fail(bigint, text, text, boolean, integer, interval),
	outbox_requeue(bigint[]) FROM PUBLIC;

CREATE VIEW outbox_backlog AS
	SELECT topic, count(*) AS messages,
		   clock_timestamp() - min(created_at) AS oldest_age,
		   count(*) FILTER (WHERE attempts > 0) AS retrying
	  FROM outbox GROUP BY topic;
COMMENT ON VIEW outbox_backlog IS 'messages waiting per topic, the age of the oldest, how many are being retried';

CREATE VIEW outbox_status AS
	SELECT (SELECT count(*) FROM outbox) AS backlog,
		   (SELECT clock_timestamp() - min(created_at) FROM outbox) AS oldest_age,
		   (SELECT count(*) FROM outbox_dead) AS dead;
COMMENT ON VIEW outbox_status IS 'outbox backlog, age of its oldest message, dead-lettered messages';

------------------------------------------------------------------------------
-- Idempotent inbox (the consuming side)
------------------------------------------------------------------------------

-- One row per message a consumer has taken effect of.  A message id can be
-- claimed once per consumer; the claim is part of the consumer's
-- transaction, so a rollback un-claims it.  Rows are kept while their
-- message is younger than distsys.inbox_retention (sent_at); older
-- messages are refused by inbox_claim (SQLSTATE YI001) rather than applied,
-- because a duplicate of them could no longer be recognised.
CREATE TABLE inbox (
	consumer	text NOT NULL,
	message_id	text NOT NULL,
	sent_at		timestamptz NOT NULL,
	claimed_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (consumer, message_id)
) WITH (fillfactor = 90);
CREATE INDEX inbox_sent_at ON inbox (sent_at);
REVOKE ALL ON inbox FROM PUBLIC;
GRANT SELECT ON inbox TO PUBLIC;
COMMENT ON TABLE inbox IS 'messages each consumer has applied (written by inbox_claim)';
SELECT pg_catalog.pg_extension_config_dump('inbox', '');

-- Who owns each consumer name: the role of its first claim, or the role an
-- administrator gave it with inbox_consumer_owner().  Only roles with the
-- owner's privileges may claim, apply, read or dead-letter messages for it,
-- so no role can pre-claim (and so skip) another consumer's messages.  A
-- regrole, so a dump restores it by the role's name.
CREATE TABLE inbox_consumers (
	consumer	text PRIMARY KEY,
	owner		regrole NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);
REVOKE ALL ON inbox_consumers FROM PUBLIC;
GRANT SELECT ON inbox_consumers TO PUBLIC;
COMMENT ON TABLE inbox_consumers IS 'the role each inbox consumer belongs to (set by its first claim or inbox_consumer_owner)';
SELECT pg_catalog.pg_extension_config_dump('inbox_consumers', '');

-- inbox_owns(consumer): whether the current role has the privileges of the
-- consumer's owner (false for a consumer nobody owns yet).  The row
-- security policies below use it.
CREATE FUNCTION inbox_owns(consumer text) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog
	AS $$
	SELECT EXISTS (SELECT FROM distsys.inbox_consumers c
				   WHERE c.consumer = $1 AND pg_catalog.pg_has_role(c.owner, 'USAGE'))
$$;
ALTER TABLE inbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY inbox_own_consumers ON inbox FOR SELECT USING (distsys.inbox_owns(consumer));

-- The horizon of the last inbox_cleanup: entries of messages sent before it
-- are gone, so such messages are refused even if the retention is raised.
-- The latest row counts (inbox.c): a restore adds the dumped horizon next
-- to the row inserted here, and inbox_cleanup moves every row forward.
-- The row inserted here is dumped only once a cleanup has moved it.
CREATE TABLE inbox_horizon (
	pruned_before timestamptz NOT NULL
);
INSERT INTO inbox_horizon VALUES ('-infinity');
REVOKE ALL ON inbox_horizon FROM PUBLIC;
GRANT SELECT ON inbox_horizon TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('inbox_horizon',
										   'WHERE pruned_before > ''-infinity''');

-- Messages a consumer could not apply, with the error.
CREATE TABLE inbox_dead (
	id			bigserial PRIMARY KEY,
	consumer	text NOT NULL,
	topic		text NOT NULL,
	kafka_partition integer,
	kafka_offset bigint,
	key			text,
	payload		bytea,
	headers		jsonb NOT NULL DEFAULT '{}',
	message_id	text,
	attempts	integer NOT NULL,
	error		text NOT NULL,
	failed_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);
REVOKE ALL ON inbox_dead FROM PUBLIC;
COMMENT ON TABLE inbox_dead IS 'messages a consumer gave up on, with the error';
-- Whoever is granted access (the consume command's role) sees and writes
-- the dead letters of its own consumers only; a consumer nobody owns yet
-- may be dead-lettered before its first claim.
ALTER TABLE inbox_dead ENABLE ROW LEVEL SECURITY;
CREATE POLICY inbox_dead_own_consumers ON inbox_dead
	USING (distsys.inbox_owns(consumer))
	WITH CHECK (distsys.inbox_owns(consumer)
				OR NOT EXISTS (SELECT FROM distsys.inbox_consumers c
							   WHERE c.consumer = inbox_dead.consumer));
SELECT pg_catalog.pg_extension_config_dump('inbox_dead', '');
SELECT pg_catalog.pg_extension_config_dump('inbox_dead_id_seq', '');

CREATE FUNCTION inbox_claim(consumer text, message_id text, sent_at timestamptz DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'inbox_claim'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION inbox_claim(text, text, timestamptz) IS
	'true the first time this consumer claims this message id (in the caller''s transaction), false for a duplicate';

CREATE FUNCTION inbox_apply(consumer text, message_id text, handler regprocedure,
							topic text, key text, payload jsonb, headers jsonb,
							sent_at timestamptz DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'inbox_apply_jsonb'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION inbox_apply(consumer text, message_id text, handler regprocedure,
							topic text, key text, payload bytea, headers jsonb,
							sent_at timestamptz DEFAULT NULL)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'inbox_apply_bytea'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION inbox_apply(text, text, regprocedure, text, text, jsonb, jsonb, timestamptz) IS
	'claim the message and, if new, call handler(topic, key, payload, headers): whether it was applied';

CREATE FUNCTION inbox_cleanup() RETURNS bigint
	AS 'MODULE_PATHNAME', 'inbox_cleanup'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION inbox_cleanup() FROM PUBLIC;
COMMENT ON FUNCTION inbox_cleanup() IS
	'delete inbox entries of messages older than distsys.inbox_retention: how many';

CREATE FUNCTION inbox_consumer_owner(consumer text, owner regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog
	AS $$
BEGIN
	IF $1 IS NULL OR $1 = '' OR $2 IS NULL THEN
		RAISE EXCEPTION 'inbox consumer and owner must not be null or empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO distsys.inbox_consumers AS c (consumer, owner) VALUES ($1, $2)
	ON CONFLICT ON CONSTRAINT inbox_consumers_pkey DO UPDATE SET owner = EXCLUDED.owner;
END
$$;
REVOKE ALL ON FUNCTION inbox_consumer_owner(text, regrole) FROM PUBLIC;
COMMENT ON FUNCTION inbox_consumer_owner(text, regrole) IS
	'give an inbox consumer (new or existing) to a role (owner and superusers)';

-- security_invoker: the row security of inbox applies to whoever reads it
CREATE VIEW inbox_status WITH (security_invoker = true) AS
	SELECT consumer, count(*) AS claimed, min(sent_at) AS oldest_sent_at,
		   max(claimed_at) AS last_claimed_at
	  FROM inbox GROUP BY consumer;
COMMENT ON VIEW inbox_status IS 'per consumer: messages remembered, the oldest, the last claim (consumers of your roles only)';
GRANT SELECT ON inbox_status TO PUBLIC;

------------------------------------------------------------------------------
-- Nodes and two-phase commit
------------------------------------------------------------------------------

-- The nodes this server may run distributed transactions on.  Connection
-- strings may hold passwords: only the extension's owner and superusers can
-- read them (through distsys.nodes); everyone else sees the names.
CREATE TABLE node_registry (
	name		text PRIMARY KEY,
	conninfo	text NOT NULL,
	added_at	timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON node_registry FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('node_registry', '');

-- Backends cache the connection strings they looked up; any change to the
-- table (node_add, node_remove, or plain SQL by its owner) tells them to
-- look again once it commits, and first waits for the transactions that are
-- preparing on nodes (and holds new ones off until it ends).
CREATE FUNCTION node_registry_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'node_registry_trigger'
	LANGUAGE C;
REVOKE ALL ON FUNCTION node_registry_trigger() FROM PUBLIC;
CREATE TRIGGER node_registry_changed
	BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON node_registry
	FOR EACH STATEMENT EXECUTE FUNCTION node_registry_trigger();
-- also under session_replication_role = replica, where ordinary triggers
-- do not fire: a change the backends did not hear of, or that a crash can
-- undo, could send recovery to the wrong server
ALTER TABLE node_registry ENABLE ALWAYS TRIGGER node_registry_changed;

CREATE FUNCTION node_add(name text, conninfo text, force boolean DEFAULT false) RETURNS void
	AS 'MODULE_PATHNAME', 'node_add'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION node_add(text, text, boolean) IS
	'register (or re-point) a node for distributed transactions';

CREATE FUNCTION node_remove(name text, force boolean DEFAULT false) RETURNS boolean
	AS 'MODULE_PATHNAME', 'node_remove'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION node_remove(text, boolean) IS
	'forget a node; refused while a committed distributed transaction still needs it, unless forced';
REVOKE ALL ON FUNCTION node_add(text, text, boolean), node_remove(text, boolean) FROM PUBLIC;

CREATE VIEW nodes AS
	SELECT name,
		   CASE WHEN pg_has_role(current_user,
								 (SELECT nspowner FROM pg_namespace WHERE nspname = 'distsys'),
								 'MEMBER')
				THEN conninfo END AS conninfo,
		   added_at
	  FROM node_registry;
COMMENT ON VIEW nodes IS
	'registered nodes; conninfo is shown only to the extension owner and superusers';
GRANT SELECT ON nodes TO PUBLIC;

-- The durable decision of a distributed transaction: one row per
-- coordinator transaction that prepared participants, inserted in that
-- transaction, so it exists exactly when the transaction committed.  It is
-- found by the transaction's random id, not its xid: after a crash an xid
-- can be handed out again.  The
-- recovery worker commits the participants of transactions that have a
-- row, rolls back those of transactions that ended without one, and
-- deletes a row once none of its participants is still prepared.
--
-- Dumped: participants may still hold prepared parts that need a row.  The
-- GIDs name the server and database that wrote them, so a restored copy,
-- a different server or database, never takes them for its own.  It
-- commits those whose row it restored (a row in a dump was committed) and
-- never rolls any of them back: a dump cannot show the transactions that
-- were committing when it was taken (dtx_recover.c).
CREATE TABLE dtx_decisions (
	id				bigint NOT NULL,	-- the transaction's random id, in its GIDs
	xid				xid8 NOT NULL,		-- the coordinator transaction, also in its GIDs
	participants	text[] NOT NULL,
	decided_at		timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dtx_decisions_id ON dtx_decisions (id);
REVOKE ALL ON dtx_decisions FROM PUBLIC;
GRANT SELECT ON dtx_decisions TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('dtx_decisions', '');

-- Members of role distsys_dtx_user (created or adopted at the top of this
-- script) may run distributed transactions on the registered nodes, with
-- the credentials of the nodes' connection strings; those that are not
-- superusers only with a password there (remote.c).

CREATE FUNCTION dtx_exec(node text, sql text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'dtx_exec'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dtx_exec(text, text) IS
	'run a statement on a node inside this transaction: rows affected';

CREATE FUNCTION dtx_query(node text, sql text) RETURNS SETOF jsonb
	AS 'MODULE_PATHNAME', 'dtx_query'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dtx_query(text, text) IS
	'run a query on a node inside this transaction: one jsonb object per row';

CREATE FUNCTION dtx_recover() RETURNS integer
	AS 'MODULE_PATHNAME', 'dtx_recover'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dtx_recover() IS
	'resolve the prepared transactions this coordinator left on its nodes: how many';

REVOKE ALL ON FUNCTION dtx_exec(text, text), dtx_query(text, text), dtx_recover() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dtx_exec(text, text), dtx_query(text, text) TO distsys_dtx_user;

-- On a participant: the marks of the distributed transactions this node
-- decided as their last agent.  A coordinator inserts the mark in the
-- node's own transaction, in the message that commits it, so a mark exists
-- exactly when that transaction committed; recovery reads it to finish the
-- other nodes, and deletes it once none of them is still prepared.  (An xid
-- alone would not do: after a crash a node can hand out an xid again.)
--
-- A mark commits or rolls back work on other nodes, so only its writer may
-- make or forget it.  The coordinator column is only what a coordinator
-- says it is; what this node knows of a coordinator is the role it logs in
-- as, so each mark records its writer (the role the coordinator's conninfo
-- logs in as: distsys resets SET ROLE before writing it), row security lets
-- a role insert and delete only marks of roles whose privileges it has, and
-- recovery believes only the marks its own role wrote.  Coordinators that
-- log in as one role share its marks.  (id, writer) is the key, so no role
-- can take a transaction's id, read from a GID, before its writer does.
CREATE TABLE dtx_marks (
	id				bigint NOT NULL,		-- the transaction's random id, in its GIDs
	coordinator		text NOT NULL,			-- '<system id>:<database oid>' of its coordinator
	writer			regrole NOT NULL		-- the role that wrote it (by name in a dump)
		DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER)),
	marked_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (id, writer)
);
REVOKE ALL ON dtx_marks FROM PUBLIC;
GRANT SELECT ON dtx_marks TO PUBLIC;
GRANT INSERT, DELETE ON dtx_marks TO distsys_dtx_user;
ALTER TABLE dtx_marks ENABLE ROW LEVEL SECURITY;
CREATE POLICY dtx_marks_read ON dtx_marks FOR SELECT USING (true);
CREATE POLICY dtx_marks_insert ON dtx_marks FOR INSERT
	WITH CHECK (pg_catalog.pg_has_role(writer, 'USAGE'));
CREATE POLICY dtx_marks_delete ON dtx_marks FOR DELETE
	USING (pg_catalog.pg_has_role(writer, 'USAGE'));
-- Dumped: a mark is the commit of the transaction it names, which
-- coordinators ask this node about until their prepared parts are gone;
-- without it a restored node would make them roll back committed work.
SELECT pg_catalog.pg_extension_config_dump('dtx_marks', '');

CREATE FUNCTION dtx_in_doubt_list(OUT participant text, OUT gid text,
								  OUT prepared_since timestamptz, OUT coordinator_xid xid8,
								  OUT outcome text, OUT decider text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'dtx_in_doubt_list'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dtx_in_doubt_list() FROM PUBLIC;

CREATE VIEW dtx_in_doubt AS SELECT * FROM dtx_in_doubt_list();
COMMENT ON VIEW dtx_in_doubt IS
	'prepared transactions of this coordinator on its nodes, with the coordinator''s outcome';
REVOKE ALL ON dtx_in_doubt FROM PUBLIC;

------------------------------------------------------------------------------
-- Raft among nodes (issue 16; the worker is raft_worker.c)
------------------------------------------------------------------------------

-- This node's Raft state as its worker last published it: one row, also
-- when Raft is off (state 'off').  role, term and the indexes are NULL
-- while no core runs (state 'starting' or 'refused'); leader is NULL when
-- unknown.  No URI appears here (those are in distsys.peers, which only
-- superusers and pg_read_all_settings may read), so every role may see it.
CREATE FUNCTION raft_status_read(OUT node integer, OUT role text, OUT term bigint,
								 OUT leader bigint, OUT commit_index bigint,
								 OUT applied_index bigint, OUT last_index bigint,
								 OUT snapshot_index bigint, OUT state text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'raft_status_read'
	LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW raft_status AS SELECT * FROM raft_status_read();
COMMENT ON VIEW raft_status IS
	'this node''s Raft role, term, leader and log indexes, as its worker published them';
GRANT SELECT ON raft_status TO PUBLIC;

-- The transport between Raft workers (raft_transport.h): a peer's worker
-- calls this with one batch; it is checked (this cluster, a known sender,
-- addressed to this node), queued in this node's worker's inbox and the
-- worker woken, without waiting for Raft.  Only distsys_raft_peer may call
-- it, so no ordinary role can forge a Raft message; the peers' URIs in
-- distsys.peers name a LOGIN role that is a member of it.
CREATE FUNCTION raft_deliver(batch bytea) RETURNS void
	AS 'MODULE_PATHNAME', 'raft_deliver'
	LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION raft_deliver(bytea) IS
	'queue one batch from another Raft member for this node''s Raft worker (the Raft transport; members of distsys_raft_peer only)';
REVOKE ALL ON FUNCTION raft_deliver(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION raft_deliver(bytea) TO distsys_raft_peer;

-- The replicated key-value store (raft_kv.h).  distsys.raft_kv is the
-- state this node applied from the Raft log: readable by everyone (a read
-- of it is a 'stale' read), written only by the Raft worker.  raft_applied
-- holds the index the table reached, so the worker replays from the log
-- exactly what a crash took from the table.
CREATE TABLE raft_kv (
	key text PRIMARY KEY,
	value jsonb NOT NULL,
	index bigint NOT NULL
);
COMMENT ON TABLE raft_kv IS
	'the Raft key-value store as this node applied it: each key, its value and the log index of its last change';
REVOKE ALL ON raft_kv FROM PUBLIC;
GRANT SELECT ON raft_kv TO PUBLIC;

CREATE TABLE raft_applied (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	index bigint NOT NULL
);
INSERT INTO raft_applied (index) VALUES (0);
COMMENT ON TABLE raft_applied IS
	'the last Raft log index applied into raft_kv on this node';
REVOKE ALL ON raft_applied FROM PUBLIC;
GRANT SELECT ON raft_applied TO PUBLIC;

-- The client table: per origin node, its worker's incarnation (nonce) and
-- a client slot, the highest request sequence applied, so a write that
-- a follower sent twice is applied once (raft_apply.c).
CREATE TABLE raft_clients (
	origin bigint NOT NULL,
	nonce bigint NOT NULL,
	slot integer NOT NULL,
	seq bigint NOT NULL,
	PRIMARY KEY (origin, nonce, slot)
);
COMMENT ON TABLE raft_clients IS
	'the Raft key-value store''s client table: the last request applied per origin node, worker incarnation and client slot';
REVOKE ALL ON raft_clients FROM PUBLIC;

-- Requests to the cluster, not part of the caller's transaction: a write
-- returns once committed by a majority and applied on this node, and is
-- not undone by a rollback of the caller's transaction.
CREATE FUNCTION raft_put(key text, value jsonb) RETURNS bigint
	AS 'MODULE_PATHNAME', 'raft_put'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION raft_put(text, jsonb) IS
	'store value under key in the Raft key-value store; returns the log index of the write once it is committed and applied here';

CREATE FUNCTION raft_cas(key text, expected jsonb, value jsonb) RETURNS boolean
	AS 'MODULE_PATHNAME', 'raft_cas'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION raft_cas(text, jsonb, jsonb) IS
	'store value under key if its value equals expected (NULL: if the key is absent); true if it did';

CREATE FUNCTION raft_delete(key text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'raft_delete'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION raft_delete(text) IS
	'remove key from the Raft key-value store; true if it was there';

REVOKE ALL ON FUNCTION raft_put(text, jsonb), raft_cas(text, jsonb, jsonb), raft_delete(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION raft_put(text, jsonb), raft_cas(text, jsonb, jsonb), raft_delete(text)
	TO distsys_raft_user;

CREATE FUNCTION raft_get(key text, consistency text DEFAULT 'linearizable') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'raft_get'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION raft_get(text, text) IS
	'the value of key in the Raft key-value store (NULL if absent), read at consistency linearizable, lease or stale';

-- Membership (raft_members.c).  raft_nodes: the URIs of the nodes
-- raft_add_node added, as applied from the log (the founding members'
-- are in distsys.peers); superusers only, like distsys.peers.
CREATE TABLE raft_nodes (
	id bigint PRIMARY KEY,
	uri text NOT NULL
);
COMMENT ON TABLE raft_nodes IS
	'the URIs of the Raft nodes added with raft_add_node, as applied from the log';
REVOKE ALL ON raft_nodes FROM PUBLIC;

CREATE FUNCTION raft_add_node(id integer, uri text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'raft_add_node'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION raft_add_node(integer, text) IS
	'add node id at uri to the Raft cluster as a learner (promoted to voter once caught up); the log index of the change';

CREATE FUNCTION raft_remove_node(id integer) RETURNS bigint
	AS 'MODULE_PATHNAME', 'raft_remove_node'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION raft_remove_node(integer) IS
	'remove node id from the Raft cluster; the log index of the change';

CREATE FUNCTION raft_transfer_leadership(id integer) RETURNS void
	AS 'MODULE_PATHNAME', 'raft_transfer_leadership_sql'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION raft_transfer_leadership(integer) IS
	'hand Raft leadership to voter id; returns once this node sees it lead';

REVOKE ALL ON FUNCTION raft_add_node(integer, text), raft_remove_node(integer),
	raft_transfer_leadership(integer) FROM PUBLIC;

-- The members as this node's worker last published them; match_index is
-- known on the leader only; uri only for roles that may read distsys.peers.
CREATE FUNCTION raft_members_read(OUT id bigint, OUT role text, OUT match_index bigint,
								  OUT last_contact timestamptz, OUT uri text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'raft_members_read'
	LANGUAGE C VOLATILE;
CREATE VIEW raft_members AS SELECT * FROM raft_members_read();
COMMENT ON VIEW raft_members IS
	'the Raft members: id, voter or learner, match index (on the leader), last contact, URI (for admins)';
GRANT SELECT ON raft_members TO PUBLIC;

------------------------------------------------------------------------------
-- Paxos among nodes (issue 17; extension/paxos, run by the Raft worker)
------------------------------------------------------------------------------

-- What this node's learner learned was chosen, one row per decree instance,
-- written only by the Raft worker (paxos_learn.c); seq orders the rows for
-- the catch-up between members.  Everyone may read it, as raft_kv.
CREATE TABLE paxos_learned (
	instance text PRIMARY KEY,
	value jsonb NOT NULL,
	proposal_round bigint NOT NULL,
	proposal_node integer NOT NULL,
	seq bigserial NOT NULL UNIQUE,
	learned_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE paxos_learned IS
	'the Paxos decree instances this node has learned as chosen (written by the Raft worker)';
REVOKE ALL ON paxos_learned FROM PUBLIC;
GRANT SELECT ON paxos_learned TO PUBLIC;

CREATE VIEW paxos_instances AS
	SELECT instance, value, proposal_round, proposal_node, learned_at FROM paxos_learned;
COMMENT ON VIEW paxos_instances IS
	'the Paxos instances this node has learned: the chosen value, the proposal number (round, node) it was chosen with, when it was learned';
GRANT SELECT ON paxos_instances TO PUBLIC;

CREATE FUNCTION paxos_propose(instance text, value jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'paxos_propose_sql'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION paxos_propose(text, jsonb) IS
	'propose value for a single-decree Paxos instance; returns the value chosen, which may be another proposer''s';

CREATE FUNCTION paxos_learned(instance text) RETURNS jsonb
	AS $$ SELECT value FROM distsys.paxos_learned WHERE instance = $1 $$
	LANGUAGE sql STABLE;
COMMENT ON FUNCTION paxos_learned(text) IS
	'the value this node has learned as chosen for a Paxos instance, NULL if none yet';

CREATE FUNCTION paxos_cas(key text, expected jsonb, value jsonb) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paxos_cas_sql'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION paxos_cas(text, jsonb, jsonb) IS
	'CASPaxos register: set key to value if it holds expected (NULL: absent); linearizable, served by any member';

CREATE FUNCTION paxos_read(key text) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'paxos_read_sql'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION paxos_read(text) IS
	'CASPaxos register: the value of key (NULL if absent), linearizable, by a Paxos round on any member';

REVOKE ALL ON FUNCTION paxos_propose(text, jsonb), paxos_cas(text, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paxos_propose(text, jsonb), paxos_cas(text, jsonb, jsonb)
	TO distsys_raft_user;

------------------------------------------------------------------------------
-- The roles of distsys-relay
------------------------------------------------------------------------------

-- distsys_relay and distsys_consumer are created (or adopted) with the
-- other roles at the top of this script.  Grant them to the LOGIN roles the
-- commands connect as; what each may do is exactly what its command needs
-- (docs/operations.md#roles-and-privileges).

-- distsys-relay publish: read and delete the outbox rows it relays, record
-- failures (outbox_fail updates the row, or moves it to outbox_dead), and
-- take the reserved lock names "distsys.*" of its lanes (dlock_sql.c checks
-- membership of distsys_relay; the lock functions themselves are public)
-- and count the other relays' locks in dlocks.
GRANT SELECT, UPDATE, DELETE ON outbox TO distsys_relay;
GRANT SELECT ON dlocks TO distsys_relay;
GRANT INSERT ON outbox_dead TO distsys_relay;
GRANT EXECUTE ON FUNCTION outbox_ack(bigint[], text[]),
	outbox_fail(bigint, text, text, boolean, integer, interval),
	standby_flush_lsn(integer) TO distsys_relay;

-- distsys-relay consume: inbox_apply is public (the handler needs EXECUTE
-- and whatever it writes, granted by its owner); dead letters (the insert
-- first looks for the same one) and the periodic cleanup.
GRANT SELECT, INSERT ON inbox_dead TO distsys_consumer;
GRANT USAGE ON SEQUENCE inbox_dead_id_seq TO distsys_consumer;
GRANT EXECUTE ON FUNCTION inbox_cleanup(), standby_flush_lsn(integer) TO distsys_consumer;
