-- inbox_claim, inbox_apply, inbox_cleanup: exactly-once effect.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS distsys;
RESET client_min_messages;
SET search_path = distsys, public;

-- a claim succeeds once per consumer; other consumers claim independently
SELECT inbox_claim('billing', 'm-1') AS first, inbox_claim('billing', 'm-1') AS duplicate,
       inbox_claim('shipping', 'm-1') AS other_consumer;
-- a rolled-back claim never happened
BEGIN;
SELECT inbox_claim('billing', 'm-2') AS claimed_in_tx;
ROLLBACK;
SELECT inbox_claim('billing', 'm-2') AS claimed_again_after_rollback;
SELECT consumer, message_id FROM inbox ORDER BY 1, 2;

-- inbox_apply: claim + handler in one call, handler only for new messages
CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL);
INSERT INTO stock VALUES ('A-100', 10);
CREATE FUNCTION reserve(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS $$
	UPDATE stock SET qty = qty - (payload->>'qty')::int WHERE sku = payload->>'sku'
$$;
SELECT inbox_apply('stock', 'order-7', 'reserve(text,text,jsonb,jsonb)',
                   'orders', 'order-7', '{"sku": "A-100", "qty": 3}'::jsonb, '{}') AS applied,
       inbox_apply('stock', 'order-7', 'reserve(text,text,jsonb,jsonb)',
                   'orders', 'order-7', '{"sku": "A-100", "qty": 3}'::jsonb, '{}') AS applied_again;
SELECT qty AS stock_after_one_reservation FROM stock;
-- a handler error rolls back the claim with it
CREATE FUNCTION fails(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'handler refused %', key; END $$;
SELECT inbox_apply('stock', 'order-8', 'fails(text,text,jsonb,jsonb)', 'orders', 'order-8', '{}'::jsonb, '{}');
SELECT count(*) AS claimed_after_failure FROM inbox WHERE message_id = 'order-8';
-- NULL key and payload reach the handler as NULLs
CREATE TABLE seen (key text, payload jsonb);
CREATE FUNCTION record_it(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO seen VALUES (key, payload) $$;
SELECT inbox_apply('rec', 'n-1', 'record_it(text,text,jsonb,jsonb)', 'orders', NULL, NULL::jsonb, '{}');
SELECT key IS NULL AS null_key, payload IS NULL AS null_payload FROM seen;

-- retention: messages sent before the horizon are refused, never applied
SELECT inbox_claim('billing', 'old-1', now() - interval '30 days');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET distsys.inbox_retention = '1h';
SELECT inbox_claim('billing', 'recent', now() - interval '30 minutes') AS within_retention;
INSERT INTO inbox (consumer, message_id, sent_at) VALUES ('billing', 'was-old', now() - interval '2 hours');
SELECT inbox_cleanup() AS removed;
SELECT count(*) AS kept FROM inbox WHERE message_id = 'recent';
-- raising the retention again does not let a pruned message's duplicate in
SET distsys.inbox_retention = '7d';
SELECT inbox_claim('billing', 'was-old', now() - interval '2 hours');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET distsys.inbox_retention;

-- bad input
SELECT inbox_claim(NULL, 'x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT inbox_claim('c', '');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT inbox_apply('c', 'x', 'reserve(text,text,jsonb,jsonb)', 'orders', 'k', '\x00'::bytea, '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE FUNCTION strict_h(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql STRICT AS $$ SELECT 1 $$;
SELECT inbox_apply('c', 'x', 'strict_h(text,text,jsonb,jsonb)', 'orders', 'k', '{}'::jsonb, '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS claims_by_c FROM inbox WHERE consumer = 'c';
