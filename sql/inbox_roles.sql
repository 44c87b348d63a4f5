-- Inbox consumers belong to roles: no role can claim (and so make a consumer
-- skip), apply or read messages for a consumer it does not own.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS distsys;
DROP ROLE IF EXISTS regress_inbox_a;
DROP ROLE IF EXISTS regress_inbox_b;
DROP ROLE IF EXISTS regress_inbox_a2;
RESET client_min_messages;
SET search_path = distsys, public;
CREATE ROLE regress_inbox_a;
CREATE ROLE regress_inbox_b;
CREATE ROLE regress_inbox_a2 IN ROLE regress_inbox_a;	-- has a's privileges
CREATE TABLE public.applied (who text, key text);
GRANT ALL ON public.applied TO PUBLIC;
CREATE FUNCTION public.roles_record_it(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO public.applied VALUES (current_user, key) $$;

-- the first claim of a consumer gives it to the claiming role
SET ROLE regress_inbox_a;
SELECT inbox_claim('roles-stock', 'm-1') AS a_first;
SELECT consumer, owner FROM inbox_consumers WHERE consumer = 'roles-stock';

-- another role can neither pre-claim its next message ids (which would make
-- the consumer skip them as duplicates) nor apply messages for it
SET ROLE regress_inbox_b;
SELECT inbox_claim('roles-stock', 'm-2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT inbox_apply('roles-stock', 'm-3', 'public.roles_record_it(text,text,jsonb,jsonb)', 't', 'k3', '{}'::jsonb, '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- nor read which messages it has taken: b sees none of its rows
SELECT count(*) AS b_sees_rows FROM inbox WHERE consumer = 'roles-stock';
SELECT count(*) AS b_sees_status FROM inbox_status WHERE consumer = 'roles-stock';
-- b's own consumer is b's
SELECT inbox_claim('roles-billing', 'm-2') AS b_own_consumer;

-- so the owner still gets m-2 and m-3 as new messages
SET ROLE regress_inbox_a;
SELECT inbox_claim('roles-stock', 'm-2') AS a_m2_new;
SELECT inbox_apply('roles-stock', 'm-3', 'public.roles_record_it(text,text,jsonb,jsonb)', 't', 'k3', '{}'::jsonb, '{}') AS a_m3_applied;
SELECT consumer, message_id FROM inbox ORDER BY 1, 2;
SELECT consumer, claimed FROM inbox_status ORDER BY 1;
-- a role with the owner's privileges may act for it
SET ROLE regress_inbox_a2;
SELECT inbox_claim('roles-stock', 'm-4') AS member_claims;
-- a cannot touch b's consumer either
SET ROLE regress_inbox_a;
SELECT inbox_claim('roles-billing', 'm-9');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT who, key FROM public.applied;

-- only an administrator may give a consumer to another role
SET ROLE regress_inbox_b;
SELECT inbox_consumer_owner('roles-stock', 'regress_inbox_b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE inbox_consumers SET owner = 'regress_inbox_b' WHERE consumer = 'roles-stock';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT inbox_consumer_owner('roles-stock', 'regress_inbox_b');
SET ROLE regress_inbox_b;
SELECT inbox_claim('roles-stock', 'm-5') AS b_after_transfer;
RESET ROLE;

-- a sent_at in the future counts as now: it is kept (and later removed)
-- like any other claim, and cannot escape cleanup with 'infinity'
SET ROLE regress_inbox_a;
SELECT inbox_claim('roles-future', 'f-1', 'infinity') AS future_claimed;
SELECT inbox_claim('roles-future', 'f-1', 'infinity') AS future_duplicate;
SELECT sent_at <= now() + interval '1 minute' AS clamped FROM inbox WHERE consumer = 'roles-future';
RESET ROLE;

-- a dropped owner: nobody but a superuser can act for the consumer until
-- an administrator gives it to another role
SELECT inbox_consumer_owner('roles-orphan', 'regress_inbox_a2');
DROP ROLE regress_inbox_a2;
SET ROLE regress_inbox_a;
DO $$
DECLARE
	detail text;
BEGIN
	PERFORM distsys.inbox_claim('roles-orphan', 'o-1');
EXCEPTION WHEN insufficient_privilege THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'refused: %', regexp_replace(detail, '[0-9]+', 'N');
END $$;
RESET ROLE;

DROP FUNCTION public.roles_record_it(text, text, jsonb, jsonb);
DROP TABLE public.applied;
DELETE FROM inbox WHERE consumer IN ('roles-stock', 'roles-billing', 'roles-future');
DELETE FROM inbox_consumers WHERE consumer IN ('roles-stock', 'roles-billing', 'roles-future', 'roles-orphan');
DROP ROLE regress_inbox_a;
DROP ROLE regress_inbox_b;
-- bad input
SELECT inbox_consumer_owner(NULL, 'postgres');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT inbox_consumer_owner('x', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
