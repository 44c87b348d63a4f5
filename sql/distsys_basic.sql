-- The extension installs into schema distsys and its library answers.
CREATE EXTENSION distsys;
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'distsys';
SELECT distsys.version() = extversion || '.0' AS library_matches_sql
  FROM pg_extension WHERE extname = 'distsys';
-- the distsys.* prefix is reserved: a misspelt setting is refused
SET distsys.no_such_setting = 1;
-- settings exist with their documented defaults
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'distsys.%' ORDER BY name;
-- the library is preloaded here, so shared-memory functions work
SELECT grants >= 0 AS stats_readable FROM distsys.dlock_stats;
-- Raft is off (distsys.node_id = 0): no worker, and raft_status says so
SELECT node, role, term, leader, state FROM distsys.raft_status;
