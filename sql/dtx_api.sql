-- The node registry and the argument checks of the 2PC functions.  The
-- commit protocol itself runs across several servers: see t/020_dtx.pl and
-- t/021_dtx_bank.pl.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS distsys;
RESET client_min_messages;
SET search_path = distsys, public;

-- registering, re-pointing and removing a node: re-pointing or removing
-- asks every node whether recovery still needs this one, so a node that
-- cannot be reached makes it an error, unless forced
SELECT node_add('orders-1', 'host=127.0.0.1 port=1 dbname=orders');
SELECT node_add('orders-1', 'host=127.0.0.1 port=2 dbname=orders');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT node_add('orders-1', 'host=127.0.0.1 port=2 dbname=orders', force => true);
SELECT name, conninfo FROM nodes ORDER BY name;
SELECT node_remove('orders-1', force => true) AS removed;
SELECT node_remove('orders-1') AS removed_again;

-- bad input: each a clear error with its SQLSTATE
SELECT node_add('bad name', 'host=x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT node_add('', 'host=x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT node_add(repeat('n', 64), 'host=x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT node_add('n', 'host=x nonsense');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT node_add('n', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dtx_exec('nowhere', 'SELECT 1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dtx_exec(NULL, 'SELECT 1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM dtx_query('nowhere', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dtx_exec('nowhere', ' ; ');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT dtx_exec('', 'SELECT 1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET distsys.dtx_fault = 'sometimes';
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- a node a committed decision still names cannot be removed without force,
SELECT node_add('keep', 'host=127.0.0.1 port=1');
INSERT INTO dtx_decisions (id, xid, participants) VALUES (1, '1', '{keep}');
SELECT node_remove('keep');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- nor pointed at another server
SELECT node_add('keep', 'host=127.0.0.1 port=2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT node_remove('keep', force => true) AS forced;
DELETE FROM dtx_decisions;

-- nothing registered: recovery has nothing to do
SELECT dtx_recover() AS resolved;
SELECT count(*) AS in_doubt FROM dtx_in_doubt;

-- a role that is not a superuser needs a password in the node's conninfo,
-- checked before anything is tried (nothing listens on port 1: the error is
-- 2F003, not 08001); with one, the connection is attempted
CREATE ROLE regress_dtx_user;
GRANT distsys_dtx_user TO regress_dtx_user;
SELECT node_add('nopw', 'host=127.0.0.1 port=1 connect_timeout=2', force => true);
SELECT node_add('withpw', 'host=127.0.0.1 port=1 connect_timeout=2 password=secret', force => true);
SET ROLE regress_dtx_user;
SELECT dtx_exec('nopw', 'SELECT 1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT dtx_exec('withpw', 'SELECT 1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
SELECT node_remove('nopw', force => true) AND node_remove('withpw', force => true) AS removed;
DROP ROLE regress_dtx_user;
