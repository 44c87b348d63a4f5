-- outbox_send: rows in the caller's transaction, message ids, lanes, errors.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS distsys;
RESET client_min_messages;
SET search_path = distsys, public;

-- a committed send is a row; a rolled-back one never existed
SELECT outbox_send('orders', '{"order": 1, "sku": "A-100"}'::jsonb, 'order-1') AS id1 \gset
BEGIN;
SELECT outbox_send('orders', '{"order": 2}'::jsonb, 'order-2') IS NOT NULL AS sent;
ROLLBACK;
SELECT topic, key, convert_from(payload, 'UTF8') AS payload, payload_type, headers, attempts
  FROM outbox ORDER BY id;

-- text and bytea payloads, headers, a NULL payload (a Kafka tombstone)
SELECT outbox_send('events', 'plain text'::text, 'k', '{"trace-id": "t-1"}') IS NOT NULL,
       outbox_send('events', '\x00ff10'::bytea) IS NOT NULL,
       outbox_send('events', NULL::jsonb, 'k') IS NOT NULL;
SELECT key, payload, payload_type, headers FROM outbox WHERE topic = 'events' ORDER BY id;

-- message ids: "<system identifier>-<database oid>-<timeline>-<server
-- start, microseconds since 2000>-<id>", unique
SELECT message_id = (SELECT system_identifier FROM pg_control_system())::text || '-'
       || (SELECT oid FROM pg_database WHERE datname = current_database()) || '-'
       || (SELECT timeline_id FROM pg_control_checkpoint()) || '-'
       || (extract(epoch FROM pg_postmaster_start_time() - '2000-01-01 00:00:00+00')
           * 1000000)::bigint || '-' || id
       AS message_id_format
  FROM outbox WHERE id = :id1;
SELECT count(DISTINCT message_id) = count(*) AS unique_ids FROM outbox;

-- a send commits durably whatever synchronous_commit says: the setting is
-- raised to on for the sending transaction only (a stronger one is kept)
SET synchronous_commit = off;
BEGIN;
SELECT outbox_send('orders', '{}'::jsonb, 'sc') IS NOT NULL AS sent,
       current_setting('synchronous_commit') AS in_transaction;
ROLLBACK;
SELECT current_setting('synchronous_commit') AS after;
SET synchronous_commit = remote_apply;
BEGIN;
SELECT outbox_send('orders', '{}'::jsonb, 'sc') IS NOT NULL AS sent,
       current_setting('synchronous_commit') AS kept;
ROLLBACK;
RESET synchronous_commit;

-- lanes: one key always maps to one lane, in 0..1023
SELECT outbox_send('orders', '{}'::jsonb, 'order-1') IS NOT NULL;
SELECT count(DISTINCT lane) AS lanes_of_one_key FROM outbox WHERE key = 'order-1';
SELECT bool_and(lane BETWEEN 0 AND 1023) AS lanes_in_range FROM outbox;

-- a message without a key takes no lock and still gets a lane
SELECT outbox_send('orders', '{}'::jsonb) IS NOT NULL;

-- the lane count of the C side (distsys_protocol.h) and the install script's
-- CHECK on lane agree: a message without a key takes lane id % count, so the
-- ids k * (bound + 1) - 1 and k * (bound + 1) land in lanes bound and 0 only
-- when count = bound + 1 (a larger count breaks the CHECK, a smaller one
-- gives another lane).  Rolled back; the sequence stays moved.
SELECT (regexp_match(pg_get_constraintdef(oid), 'lane <= (\d+)'))[1]::int AS max_lane
  FROM pg_constraint
 WHERE conrelid = 'outbox'::regclass AND contype = 'c'
   AND pg_get_constraintdef(oid) LIKE '%lane <=%' \gset
BEGIN;
SELECT setval('outbox_id_seq', 1000 * (:max_lane + 1) - 2) IS NOT NULL AS moved;
SELECT outbox_send('wrap', '{}'::jsonb) IS NOT NULL, outbox_send('wrap', '{}'::jsonb) IS NOT NULL;
SELECT array_agg(lane ORDER BY id) = ARRAY[:max_lane, 0]::smallint[] AS lanes_agree
  FROM outbox WHERE topic = 'wrap';
ROLLBACK;

-- backlog views
SELECT topic, messages, retrying, oldest_age > '0' AS has_age FROM outbox_backlog ORDER BY topic;
SELECT backlog, dead FROM outbox_status;

-- the relay's side: ack deletes, fail retries and then dead-letters; both
-- name a row by id and message id, so a report about a message relayed
-- before a failover or restore (same id, other message id) touches no row
SELECT message_id AS mid1 FROM outbox WHERE id = :id1 \gset
SELECT outbox_ack(ARRAY[:id1], ARRAY['1-2-3-4-' || :id1]) AS acked_other_message,
       outbox_fail(:id1, '1-2-3-4-' || :id1, 'late report', true, 1, '1 second') AS failed_other;
SELECT count(*) AS untouched FROM outbox WHERE id = :id1 AND attempts = 0;
SELECT outbox_ack(ARRAY[:id1], ARRAY[:'mid1']) AS acked,
       outbox_ack(ARRAY[:id1], ARRAY[:'mid1']) AS acked_again;
SELECT outbox_ack(ARRAY[:id1], ARRAY[]::text[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT min(id) AS victim FROM outbox \gset
SELECT message_id AS victim_mid FROM outbox WHERE id = :victim \gset
SELECT outbox_fail(:victim, :'victim_mid', 'broker timeout', false, 2, '1 second') AS first_failure;
SELECT attempts, last_error, next_attempt_at > now() AS backing_off FROM outbox WHERE id = :victim;
SELECT outbox_fail(:victim, :'victim_mid', 'broker timeout', false, 2, '1 second') AS second_failure;
SELECT count(*) AS still_in_outbox FROM outbox WHERE id = :victim;
SELECT topic, attempts, error FROM outbox_dead;
SELECT outbox_fail(:victim, :'victim_mid', 'again', false, 2, '1 second') AS unknown_now;
SELECT min(id) AS victim2 FROM outbox \gset
SELECT message_id AS victim2_mid FROM outbox WHERE id = :victim2 \gset
SELECT outbox_fail(:victim2, :'victim2_mid', 'MSG_SIZE_TOO_LARGE', true, 10, '1 second') AS permanent;
SELECT count(*) AS dead FROM outbox_dead;
-- a requeued message keeps the time it was sent: the relay stamps it as
-- distsys-sent-at, and the inbox judges retention (YI001) by it
CREATE TEMP TABLE dead_before AS SELECT message_id, created_at FROM outbox_dead;
-- and the requeue commits durably, as a send does (the relay publishes it)
SET synchronous_commit = off;
BEGIN;
SELECT outbox_requeue() AS requeued, current_setting('synchronous_commit') AS commits_at;
COMMIT;
RESET synchronous_commit;
SELECT count(*) AS requeued_rows,
       count(*) FILTER (WHERE o.created_at = d.created_at) AS kept_created_at
  FROM dead_before d JOIN outbox o USING (message_id);
SELECT count(*) AS dead_after_requeue FROM outbox_dead;
SELECT count(*) FILTER (WHERE id > :victim2) AS requeued_at_the_end,
       count(DISTINCT message_id) = count(*) AS ids_still_unique FROM outbox;

-- bad input: clear errors, nothing written
SELECT outbox_send(NULL, '{}'::jsonb);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT outbox_send('', '{}'::jsonb);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT outbox_send('bad topic!', '{}'::jsonb);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT outbox_send(repeat('t', 250), '{}'::jsonb);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT outbox_send('..', '{}'::jsonb);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT outbox_send('t', '{}'::jsonb, 'k', '[1, 2]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT outbox_send('t', '{}'::jsonb, 'k', '"scalar"');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT outbox_send('t', '{}'::jsonb, 'k', '{"n": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_for_t FROM outbox WHERE topic = 't';

-- ordinary roles may send but not read or change the outbox directly
CREATE ROLE regress_outbox_user;
SET ROLE regress_outbox_user;
SELECT outbox_send('orders', '{"from": "user"}'::jsonb, 'u') IS NOT NULL AS user_can_send;
SELECT count(*) FROM outbox;
SELECT outbox_ack(ARRAY[1::bigint], ARRAY['x']);
SELECT standby_flush_lsn(1);
SELECT outbox_requeue();
RESET ROLE;
DROP ROLE regress_outbox_user;
