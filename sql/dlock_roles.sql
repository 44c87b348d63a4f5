-- Application-owned grants belong to the role that took them.  The owner
-- string is readable by everyone (dlock_leases, dlocks), so it must give no
-- power: another role naming the same owner is a different contender.  Only
-- the grant's role, a role with its privileges (has_privs_of_role) or a
-- lock admin may re-enter, release, renew or fence (dlock_assert) it.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS distsys;
RESET client_min_messages;
SET search_path = distsys, public;
\set VERBOSITY default

CREATE ROLE regress_dlock_alice;
CREATE ROLE regress_dlock_bob;
-- carol has alice's privileges; dave is a member without them (NOINHERIT)
CREATE ROLE regress_dlock_carol IN ROLE regress_dlock_alice;
CREATE ROLE regress_dlock_dave NOINHERIT IN ROLE regress_dlock_alice;
CREATE ROLE regress_dlock_keeper IN ROLE distsys_lock_admin;

-- alice takes a durable lock; its row and its grant name her role.
SET ROLE regress_dlock_alice;
SELECT dlock_try('job', '1 hour', 'svc') AS t_alice \gset
SELECT owner, role, depth FROM dlock_leases WHERE name = 'job';
SELECT owner, role, depth, token = :t_alice AS alice_token FROM dlocks WHERE name = 'job';

-- bob sees the owner string, and it gets him nothing.
SET ROLE regress_dlock_bob;
SELECT owner, role FROM dlock_leases WHERE name = 'job';
SELECT dlock_try('job', '1 hour', 'svc') AS bob_reenter;
SELECT dlock_acquire('job', '1 hour', '0', 'svc') AS bob_acquire_nowait;
SELECT dlock_acquire('job', '1 hour', '50ms', 'svc') AS bob_acquire_waited;
SELECT dlock_release('job', 'svc') AS bob_release_1,
       dlock_release('job', 'svc') AS bob_release_2,
       dlock_release('job', 'svc') AS bob_release_3;
SELECT dlock_renew('job', '2 hours', 'svc') AS bob_renew;
-- reading whether a token is current stays open to everyone
SELECT dlock_check('job', :t_alice) AS bob_may_check;
-- but fencing a write on alice's grant is refused, and takes no fence slot
SELECT dlock_assert('job', :t_alice);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- four transactions of bob that try to stay fenced (BEGIN, assert, then
-- PREPARE TRANSACTION :gid N, so they stay open): each assert is refused,
-- so none survives to hold a slot
\set gid regress_dlock_bob_
SELECT s FROM generate_series(1, 4) g, LATERAL (VALUES (1, 'BEGIN'),
	(2, 'SELECT distsys.dlock_assert(''job'', (SELECT token FROM distsys.dlock_leases WHERE name = ''job''))'),
	(3, format('PREPARE TRANSACTION %L', :'gid' || g))) v(o, s) ORDER BY g, o \gexec
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'regress_dlock_bob%';

-- alice's grant is untouched: same token, depth 1, lease not renewed, and
-- all four of her own fence slots are free (prepared transactions hold
-- them; a fifth is refused with 54000).
SET ROLE regress_dlock_alice;
SELECT token = :t_alice AS same_token, depth,
       expires_at - granted_at AS lease FROM dlocks WHERE name = 'job';
\set gid regress_dlock_alice_
SELECT s FROM generate_series(1, 4) g, LATERAL (VALUES (1, 'BEGIN'),
	(2, 'SELECT distsys.dlock_assert(''job'', (SELECT token FROM distsys.dlock_leases WHERE name = ''job''))'),
	(3, format('PREPARE TRANSACTION %L', :'gid' || g))) v(o, s) ORDER BY g, o \gexec
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'regress_dlock_alice%' ORDER BY gid;
SELECT dlock_assert('job', :t_alice);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT format('ROLLBACK PREPARED %L', gid) FROM pg_prepared_xacts
 WHERE gid LIKE 'regress_dlock_alice%' ORDER BY gid \gexec
SET ROLE regress_dlock_alice;
SELECT dlock_try('job', '1 hour', 'svc') = :t_alice AS alice_reenters;
SELECT depth FROM dlock_leases WHERE name = 'job';

-- A role with alice's privileges acts for her; a member without them
-- (NOINHERIT) does not.
SET ROLE regress_dlock_dave;
SELECT dlock_try('job', '1 hour', 'svc') AS dave_reenter,
       dlock_release('job', 'svc') AS dave_release,
       dlock_renew('job', '1 hour', 'svc') AS dave_renew;
SELECT dlock_assert('job', :t_alice);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET ROLE regress_dlock_carol;
SELECT dlock_try('job', '1 hour', 'svc') = :t_alice AS carol_reenters;
SELECT dlock_assert('job', :t_alice);
SELECT dlock_release('job', 'svc') AS carol_releases;
SELECT dlock_renew('job', '1 hour', 'svc') AS carol_renews;
-- the grant stays alice's
SELECT role, depth FROM dlock_leases WHERE name = 'job';

-- A lock admin may re-enter, renew, release and fence any grant; the
-- grant stays alice's.
SET ROLE regress_dlock_keeper;
SELECT dlock_try('job', '1 hour', 'svc') = :t_alice AS admin_reenters;
SELECT dlock_renew('job', '3 hours', 'svc') AS admin_renews;
SELECT dlock_assert('job', :t_alice);
SELECT role, depth, expires_at - now() > '2 hours' AS renewed
  FROM dlock_leases WHERE name = 'job';
SELECT dlock_release('job', 'svc') AS admin_release_1,
       dlock_release('job', 'svc') AS admin_release_2,
       dlock_release('job', 'svc') AS admin_release_3;
SELECT count(*) AS rows_left FROM dlock_leases WHERE name = 'job';

-- Now free, the owner string is bob's for the taking, and his grant is
-- closed to alice in turn.
SET ROLE regress_dlock_bob;
SELECT dlock_try('job', '1 hour', 'svc') AS t_bob \gset
SELECT :t_bob > :t_alice AS new_token;
SET ROLE regress_dlock_alice;
SELECT dlock_try('job', '1 hour', 'svc') AS alice_reenter,
       dlock_release('job', 'svc') AS alice_release;
SELECT role FROM dlocks WHERE name = 'job';
-- a superuser has every role's privileges
RESET ROLE;
SELECT dlock_release('job', 'svc') AS superuser_releases;
SELECT count(*) AS held FROM dlocks WHERE name = 'job';

-- Shared mode: an owner string is held by one role per lock at a time, so
-- bob cannot join alice's shared grant under her owner; under his own he
-- holds a shared grant of his own.
SET ROLE regress_dlock_alice;
SELECT dlock_try('cfg', '1 hour', 'reader', 'shared') IS NOT NULL AS alice_shared;
SET ROLE regress_dlock_bob;
SELECT dlock_try('cfg', '1 hour', 'reader', 'shared') AS bob_same_owner,
       dlock_acquire('cfg', '1 hour', '50ms', 'reader', 'shared') AS bob_same_owner_waited,
       dlock_try('cfg', '1 hour', 'bob-reader', 'shared') IS NOT NULL AS bob_own_owner;
SELECT owner, role, depth FROM dlocks WHERE name = 'cfg' ORDER BY owner;
SELECT dlock_release('cfg', 'reader') AS bob_release_alices,
       dlock_release('cfg', 'bob-reader') AS bob_release_his;
SET ROLE regress_dlock_alice;
SELECT dlock_release('cfg', 'reader') AS alice_releases;

-- Session-owned grants are the session's, as before; only the fence
-- follows the role that took it.
SET ROLE regress_dlock_alice;
SELECT dlock_try('sess') AS t_sess \gset
SELECT role, owner IS NULL AS session_owned FROM dlocks WHERE name = 'sess';
SET ROLE regress_dlock_bob;
SELECT dlock_assert('sess', :t_sess);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dlock_release('sess') AS same_session_releases;

-- The role is a column of dlock_leases (and of the views dlocks and
-- dlock_waiters: see dlock_api).
RESET ROLE;
SELECT attname, atttypid::regtype FROM pg_attribute
 WHERE attrelid = 'distsys.dlock_leases'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

DROP ROLE regress_dlock_alice, regress_dlock_bob, regress_dlock_carol,
	regress_dlock_dave, regress_dlock_keeper;
