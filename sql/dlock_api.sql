-- Every lock function, its results and its errors.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS distsys;
RESET client_min_messages;
SET search_path = distsys, public;
\set VERBOSITY default

-- dlock_try: a token for the first taker, NULL for anyone else,
-- reentrant for the same owner (same token, depth + 1).
SELECT dlock_try('a') AS t1 \gset
SELECT :t1 > 0 AS token_positive;
SELECT dlock_try('a') = :t1 AS reentrant_same_token;
SELECT depth FROM dlocks WHERE name = 'a';
SELECT dlock_try('a', owner => 'someone-else') IS NULL AS other_owner_refused;
SELECT dlock_release('a') AS released_once;
SELECT depth FROM dlocks WHERE name = 'a';
SELECT dlock_release('a') AS released_twice;
SELECT count(*) AS holders_left FROM dlocks WHERE name = 'a';
SELECT dlock_release('a') AS release_when_not_held;

-- Tokens strictly increase across grants of all names.
SELECT dlock_try('b') AS t2 \gset
SELECT dlock_try('c') AS t3 \gset
SELECT :t2 > :t1 AND :t3 > :t2 AS tokens_increase;
SELECT dlock_release('b'), dlock_release('c');

-- Application-owned locks are rows of dlock_leases, written in the
-- caller's transaction.
SELECT dlock_try('app', '1 minute', 'worker-1') AS t4 \gset
SELECT owner, mode, token = :t4 AS same_token, depth,
       expires_at - granted_at AS lease FROM dlock_leases WHERE name = 'app';
SELECT dlock_try('app', '1 minute', 'worker-1') = :t4 AS reentrant;
SELECT depth FROM dlock_leases WHERE name = 'app';
SELECT dlock_release('app', 'worker-2') AS other_owner_cannot_release;
SELECT dlock_release('app') AS session_cannot_release_app_lock;
SELECT dlock_release('app', 'worker-1');
SELECT depth FROM dlock_leases WHERE name = 'app';
SELECT dlock_release('app', 'worker-1');
SELECT count(*) AS rows_left FROM dlock_leases WHERE name = 'app';

-- A rolled-back grant never happened; a savepoint rollback undoes a reentry.
BEGIN;
SELECT dlock_try('tx', owner => 'w') IS NOT NULL AS got;
ROLLBACK;
SELECT count(*) AS held_after_rollback FROM dlocks WHERE name = 'tx';
BEGIN;
SELECT dlock_try('tx', owner => 'w') IS NOT NULL AS got;
SAVEPOINT s;
SELECT dlock_try('tx', owner => 'w') IS NOT NULL AS reentered;
ROLLBACK TO SAVEPOINT s;
SELECT depth FROM dlocks WHERE name = 'tx';
COMMIT;
SELECT depth FROM dlock_leases WHERE name = 'tx';

-- A final release takes effect when its transaction commits: until then the
-- row exists and the lock is still held; a rollback keeps it held.
BEGIN;
SELECT dlock_release('tx', 'w') AS released;
SELECT dlock_release('tx', 'w') AS released_again_in_same_tx;
ROLLBACK;
SELECT dlock_try('tx', owner => 'other') IS NULL AS still_held_after_rollback;
-- taking it back after a release in the same transaction cancels the release
BEGIN;
SELECT dlock_release('tx', 'w') AS released;
SELECT dlock_try('tx', owner => 'w') IS NOT NULL AS taken_back;
COMMIT;
SELECT owner, depth FROM dlock_leases WHERE name = 'tx';
SELECT dlock_try('tx', owner => 'other') IS NULL AS still_held_after_take_back;
BEGIN;
SELECT dlock_release('tx', 'w') AS released;
COMMIT;
SELECT dlock_try('tx', owner => 'other') IS NOT NULL AS free_after_commit;
SELECT dlock_release('tx', 'other');

-- Application-owned locks cannot be part of a prepared transaction.
BEGIN;
SELECT dlock_try('prep', owner => 'w') IS NOT NULL AS got;
PREPARE TRANSACTION 'dlock_prep';
SELECT count(*) AS held_after_failed_prepare FROM dlocks WHERE name = 'prep';

-- Shared mode: many owners, each with its own grant; exclusive excluded.
SELECT dlock_try('s', owner => 'r1', mode => 'shared') IS NOT NULL AS r1,
       dlock_try('s', owner => 'r2', mode => 'shared') IS NOT NULL AS r2,
       dlock_try('s', owner => 'w1') IS NULL AS writer_refused;
SELECT owner, mode, depth FROM dlocks WHERE name = 's' ORDER BY owner;
SELECT dlock_try('s', owner => 'r1') AS upgrade_refused;
SELECT dlock_release('s', 'r1'), dlock_release('s', 'r2');
SELECT dlock_try('s', owner => 'w1') IS NOT NULL AS writer_after_readers,
       dlock_try('s', owner => 'w1', mode => 'shared') IS NOT NULL AS exclusive_covers_shared;
SELECT mode, depth FROM dlocks WHERE name = 's';
SELECT dlock_release('s', 'w1'), dlock_release('s', 'w1');

-- dlock_renew: extends a held lease; false when not held or expired.
SELECT dlock_try('r', '1 second') IS NOT NULL AS got;
SELECT dlock_renew('r', '1 hour') AS renewed;
SELECT expires_at - now() > '50 minutes' AS lease_extended FROM dlocks WHERE name = 'r';
SELECT dlock_renew('r', '1 hour', 'not-the-owner') AS renew_by_other;
SELECT dlock_renew('nothing') AS renew_unheld;
SELECT dlock_release('r');
SELECT dlock_try('short', '10 milliseconds') AS t5 \gset
SELECT pg_sleep(0.05);
SELECT dlock_renew('short') AS renew_after_expiry;
SELECT dlock_check('short', :t5) AS expired_token_valid;
SELECT dlock_try('short', owner => 'next') > :t5 AS taken_over_with_newer_token;
SELECT dlock_release('short', 'next');

-- dlock_check and dlock_assert: only the current grant's token passes.
SELECT dlock_try('fence') AS t6 \gset
SELECT dlock_check('fence', :t6) AS current_valid,
       dlock_check('fence', :t6 - 1) AS other_invalid,
       dlock_check('no-such-lock', :t6) AS unknown_lock;
SELECT dlock_assert('fence', :t6);
-- a stale token raises SQLSTATE YL001 (token numbers masked for stable output)
CREATE TEMP TABLE fence_token AS SELECT :t6::bigint AS t;
CREATE FUNCTION pg_temp.try_assert(tok bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM distsys.dlock_assert('fence', tok);
	RETURN 'passed';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]+', 'N');
END $$;
SELECT pg_temp.try_assert(t - 1) AS older_token FROM fence_token;
SELECT dlock_release('fence');
SELECT pg_temp.try_assert(t) AS after_release FROM fence_token;

-- dlock_break: superusers and members of distsys_lock_admin only.
SELECT dlock_try('brk', owner => 'stuck') IS NOT NULL AS got,
       dlock_try('brk2') IS NOT NULL AS got2;
CREATE ROLE regress_dlock_user;
CREATE ROLE regress_dlock_admin IN ROLE distsys_lock_admin;
SET ROLE regress_dlock_user;
SELECT dlock_break('brk');
SELECT dlock_try('user-lock', owner => 'u') IS NOT NULL AS plain_user_can_lock;
SELECT dlock_release('user-lock', 'u');
RESET ROLE;
SET ROLE regress_dlock_admin;
SELECT dlock_break('brk') AS broken;
RESET ROLE;
SELECT dlock_break('brk2') AS broken_by_superuser, dlock_break('brk2') AS nothing_to_break;
SELECT count(*) AS left_after_break FROM dlocks WHERE name IN ('brk', 'brk2');
SELECT count(*) AS rows_after_break FROM dlock_leases WHERE name = 'brk';
SELECT dlock_release('brk2') AS release_after_break;
-- a break ends every grant, however many shared owners hold it
SELECT count(*) AS shared_holders FROM generate_series(1, 70) g
 WHERE dlock_try('many', owner => 'reader-' || g, mode => 'shared') IS NOT NULL;
SELECT dlock_break('many') AS broken_many;
SELECT count(*) AS grants_left FROM dlocks WHERE name = 'many';
SELECT count(*) AS rows_left FROM dlock_leases WHERE name = 'many';
DROP ROLE regress_dlock_user;
DROP ROLE regress_dlock_admin;

-- dlock_acquire: timeout '0' does not wait; a free lock is granted at once.
SELECT dlock_acquire('acq', timeout => '0') IS NOT NULL AS got;
SELECT dlock_acquire('acq', timeout => '0', owner => 'x') IS NULL AS not_waited;
SELECT dlock_acquire('acq', timeout => '50ms', owner => 'x') IS NULL AS timed_out;
SELECT dlock_release('acq');

-- dlock_cleanup removes expired rows only.
SELECT dlock_try('old', '10 milliseconds', 'gone') IS NOT NULL,
       dlock_try('live', '1 hour', 'here') IS NOT NULL;
SELECT pg_sleep(0.05);
SELECT dlock_cleanup() >= 1 AS cleaned;
SELECT name FROM dlock_leases ORDER BY name;
SELECT dlock_release('live', 'here');

-- An index added to dlock_leases (by an administrator or an upgrade script)
-- gets every row the lock functions write, whatever its expression or
-- predicate: an index scan finds the same rows as a scan of the heap after
-- grants, reentries, renewals and releases.
CREATE INDEX regress_leases_owner ON dlock_leases (owner);
CREATE INDEX regress_leases_upper ON dlock_leases (upper(owner)) WHERE mode = 'shared';
CREATE INDEX regress_leases_expiry ON dlock_leases (expires_at);
SELECT dlock_try('ix', '1 hour', 'ix-w') IS NOT NULL AS exclusive,
       dlock_try('ix-s', '1 hour', 'ix-r1', 'shared') IS NOT NULL AS shared1,
       dlock_try('ix-s', '1 hour', 'ix-r2', 'shared') IS NOT NULL AS shared2,
       dlock_try('ix-s', '1 hour', 'ix-r3', 'shared') IS NOT NULL AS shared3,
       dlock_try('ix-gone', '1 hour', 'ix-g') IS NOT NULL AS to_release;
SELECT dlock_try('ix', '1 hour', 'ix-w') IS NOT NULL AS reentered,
       dlock_renew('ix-s', '2 hours', 'ix-r1') AS renewed,
       dlock_release('ix-s', 'ix-r2') AS released_shared,
       dlock_release('ix-gone', 'ix-g') AS released;
BEGIN;
SELECT dlock_try('ix-undone', '1 hour', 'ix-u') IS NOT NULL AS rolled_back;
ROLLBACK;
SELECT dlock_release('ix', 'ix-w') AS released_one_level;
-- through the heap
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SELECT name, owner, mode, depth FROM dlock_leases ORDER BY name, owner;
-- through each index
RESET enable_indexscan;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT name, owner, depth FROM dlock_leases
 WHERE owner = ANY ('{ix-w,ix-r1,ix-r2,ix-r3,ix-g,ix-u}');
SELECT name, owner, depth FROM dlock_leases
 WHERE owner = ANY ('{ix-w,ix-r1,ix-r2,ix-r3,ix-g,ix-u}') ORDER BY name, owner;
EXPLAIN (COSTS OFF) SELECT name, owner, depth FROM dlock_leases
 WHERE upper(owner) = ANY ('{IX-R1,IX-R2,IX-R3}') AND mode = 'shared';
SELECT name, owner, depth FROM dlock_leases
 WHERE upper(owner) = ANY ('{IX-R1,IX-R2,IX-R3}') AND mode = 'shared' ORDER BY owner;
EXPLAIN (COSTS OFF) SELECT name, owner, depth FROM dlock_leases
 WHERE expires_at > '-infinity';
SELECT name, owner, depth FROM dlock_leases
 WHERE expires_at > '-infinity' ORDER BY name, owner;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT dlock_release('ix', 'ix-w'), dlock_release('ix-s', 'ix-r1'),
       dlock_release('ix-s', 'ix-r3');
DROP INDEX regress_leases_owner, regress_leases_upper, regress_leases_expiry;

-- A trigger, rule or CHECK constraint on dlock_leases would not see the rows
-- a grant or a final release writes: the lock functions refuse to write
-- rows while the table has one, and change nothing.
SELECT dlock_try('trg-held', owner => 'w') IS NOT NULL AS held_before;
CREATE FUNCTION regress_leases_trigger() RETURNS trigger LANGUAGE plpgsql
	AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER regress_leases_trigger BEFORE INSERT OR DELETE ON dlock_leases
	FOR EACH ROW EXECUTE FUNCTION regress_leases_trigger();
SELECT dlock_try('trg', owner => 'w');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_release('trg-held', 'w');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT name, depth FROM dlocks WHERE name LIKE 'trg%';
SELECT dlock_try('trg') IS NOT NULL AS session_owned_writes_no_row;
SELECT dlock_release('trg');
DROP TRIGGER regress_leases_trigger ON dlock_leases;
DROP FUNCTION regress_leases_trigger();
ALTER TABLE dlock_leases ADD CONSTRAINT regress_leases_check CHECK (depth > 0);
SELECT dlock_try('trg', owner => 'w');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE dlock_leases DROP CONSTRAINT regress_leases_check;
SELECT dlock_try('trg', owner => 'w') IS NOT NULL AS got_without_check;
SELECT dlock_release('trg', 'w'), dlock_release('trg-held', 'w');
-- So is a column they do not know of; a dropped column is no obstacle.
ALTER TABLE dlock_leases ADD COLUMN regress_note text;
SELECT dlock_try('col', owner => 'w');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE dlock_leases DROP COLUMN regress_note;
SELECT dlock_try('col', owner => 'w') IS NOT NULL AS got_after_drop;
SELECT name, owner, depth FROM dlock_leases WHERE name = 'col';
SELECT dlock_release('col', 'w');
SELECT count(*) AS rows_left FROM dlock_leases WHERE name = 'col';

-- Bad input: a clear error with SQLSTATE, and nothing changes.
SELECT dlock_try(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try(repeat('x', 256));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', '0');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', '-1 second');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', '1 year');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', mode => 'exclusiv');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', mode => NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', owner => '');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_try('x', owner => repeat('o', 128));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_acquire('x', timeout => '-1 second');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_check('x', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_assert(NULL, 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_release(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_renew('x', '0');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS nothing_held FROM dlocks;
SELECT dlock_try(repeat('x', 255)) IS NOT NULL AS longest_name_ok;
SELECT dlock_release(repeat('x', 255));

-- The views have the documented columns.
SELECT attname FROM pg_attribute WHERE attrelid = 'distsys.dlocks'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'distsys.dlock_waiters'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname FROM pg_attribute WHERE attrelid = 'distsys.dlock_stats'::regclass AND attnum > 0 ORDER BY attnum;
