-- inbox_apply called from inside a handler: nested, recursive and failing
-- handlers in SQL and PL/pgSQL.  Each call must run its own handler with
-- its own state, whatever the handlers below it do.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS distsys;
RESET client_min_messages;
SET search_path = distsys, public;
CREATE TABLE nested_log (depth int, who text, key text);

-- PL/pgSQL inner handler
CREATE FUNCTION inner_pl(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO nested_log VALUES ((payload->>'depth')::int, 'inner_pl', key);
END $$;
-- SQL outer handler that applies a second message with the PL/pgSQL one
CREATE FUNCTION outer_sql(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO nested_log VALUES (0, 'outer_sql before', key);
	SELECT inbox_apply('nest', key || '/inner', 'inner_pl(text,text,jsonb,jsonb)',
					   topic, key || '/inner', '{"depth": 1}'::jsonb, '{}');
	INSERT INTO nested_log VALUES (0, 'outer_sql after', key);
$$;
SELECT inbox_apply('nest', 'm1', 'outer_sql(text,text,jsonb,jsonb)', 't', 'm1', '{}'::jsonb, '{}');
SELECT * FROM nested_log ORDER BY depth, who;
TRUNCATE nested_log;

-- and the other way round: PL/pgSQL outer, SQL inner
CREATE FUNCTION inner_sql(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO nested_log VALUES (1, 'inner_sql', key) $$;
CREATE FUNCTION outer_pl(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO nested_log VALUES (0, 'outer_pl before', key);
	PERFORM inbox_apply('nest', key || '/inner', 'inner_sql(text,text,jsonb,jsonb)',
						topic, key || '/inner', '{}'::jsonb, '{}');
	INSERT INTO nested_log VALUES (0, 'outer_pl after', key);
END $$;
SELECT inbox_apply('nest', 'm2', 'outer_pl(text,text,jsonb,jsonb)', 't', 'm2', '{}'::jsonb, '{}');
SELECT * FROM nested_log ORDER BY depth, who;
TRUNCATE nested_log;

-- recursion: a handler that applies the next message with itself
CREATE FUNCTION recurse_pl(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	d int := (payload->>'depth')::int;
BEGIN
	IF d < 5 THEN
		PERFORM inbox_apply('nest', 'r' || (d + 1), 'recurse_pl(text,text,jsonb,jsonb)',
							topic, key, jsonb_build_object('depth', d + 1), '{}');
	END IF;
	INSERT INTO nested_log VALUES (d, 'recurse_pl', key);
END $$;
SELECT inbox_apply('nest', 'r0', 'recurse_pl(text,text,jsonb,jsonb)', 't', 'k', '{"depth": 0}'::jsonb, '{}');
SELECT * FROM nested_log ORDER BY depth;
TRUNCATE nested_log;
CREATE FUNCTION recurse_sql(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS $$
	SELECT inbox_apply('nest', 's' || ((payload->>'depth')::int + 1), 'recurse_sql(text,text,jsonb,jsonb)',
					   topic, key, jsonb_build_object('depth', (payload->>'depth')::int + 1), '{}')
	WHERE (payload->>'depth')::int < 4;
	INSERT INTO nested_log VALUES ((payload->>'depth')::int, 'recurse_sql', key);
$$;
SELECT inbox_apply('nest', 's0', 'recurse_sql(text,text,jsonb,jsonb)', 't', 'k', '{"depth": 0}'::jsonb, '{}');
SELECT * FROM nested_log ORDER BY depth;
TRUNCATE nested_log;

-- an inner handler that raises: the outer one catches it and goes on, the
-- inner claim is rolled back with it, and the outer call completes
CREATE FUNCTION inner_fails(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'inner handler failed for %', key USING ERRCODE = 'P0001';
END $$;
CREATE FUNCTION outer_catches(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		PERFORM inbox_apply('nest', key || '/inner', 'inner_fails(text,text,jsonb,jsonb)',
							topic, key, '{}'::jsonb, '{}');
	EXCEPTION WHEN raise_exception THEN
		INSERT INTO nested_log VALUES (1, 'caught: ' || SQLERRM, key);
	END;
	PERFORM inbox_apply('nest', key || '/second', 'inner_pl(text,text,jsonb,jsonb)',
						topic, key, '{"depth": 1}'::jsonb, '{}');
	INSERT INTO nested_log VALUES (0, 'outer_catches', key);
END $$;
SELECT inbox_apply('nest', 'm3', 'outer_catches(text,text,jsonb,jsonb)', 't', 'm3', '{}'::jsonb, '{}');
SELECT * FROM nested_log ORDER BY depth, who;
SELECT message_id FROM inbox WHERE consumer = 'nest' AND message_id LIKE 'm3%' ORDER BY 1;
TRUNCATE nested_log;
-- the same failure not caught: the whole outer call fails with the inner error
CREATE FUNCTION outer_uncaught(topic text, key text, payload jsonb, headers jsonb) RETURNS void
LANGUAGE sql AS $$
	SELECT inbox_apply('nest', key || '/inner', 'inner_fails(text,text,jsonb,jsonb)',
					   topic, key, '{}'::jsonb, '{}');
$$;
SELECT inbox_apply('nest', 'm5', 'outer_uncaught(text,text,jsonb,jsonb)', 't', 'm5', '{}'::jsonb, '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS m5_claims FROM inbox WHERE consumer = 'nest' AND message_id LIKE 'm5%';

-- one call site, alternating handlers: each row runs its own handler
SELECT inbox_apply('alt', 'a' || i,
				   CASE WHEN i % 2 = 0 THEN 'inner_pl(text,text,jsonb,jsonb)'
						ELSE 'inner_sql(text,text,jsonb,jsonb)' END::regprocedure,
				   't', 'a' || i, jsonb_build_object('depth', i), '{}')
FROM generate_series(1, 4) i;
SELECT * FROM nested_log ORDER BY key;
