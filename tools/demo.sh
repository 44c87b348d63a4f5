#!/usr/bin/env bash
# tools/demo.sh: 'make demo' - a walk through distsys on throwaway servers.
#
# Starts a PostgreSQL node with distsys preloaded and the built-in Kafka
# test broker (distsys-kafka-mock), later two participant nodes for
# two-phase commit and three Raft nodes, then shows each capability with the SQL it runs and
# what comes back.  Everything it starts is stopped, and its
# temporary directory removed, when it ends (also on error or Ctrl-C).
set -euo pipefail
. "$(dirname "$0")/common.sh"

ds_setup
PORT=$(ds_start_node node_a)
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres

# show SQL: print a statement, then run it and print its result.
show() {
	printf '\n  \033[36m%s\033[0m\n' "$1"
	psql -X -q -v ON_ERROR_STOP=0 -c "$1" 2>&1 | sed 's/^/    /' || true
}

# restart_after_kill: start node_a again after its postmaster was killed.
# The killed postmaster can linger as a zombie and its children take a
# moment to exit, so stale lock files are removed and the start retried.
restart_after_kill() {
	for _ in $(seq 50); do
		rm -f "$DS_WORK/node_a/postmaster.pid" "$DS_WORK/.s.PGSQL.$PORT.lock"
		ds_runuser pg_ctl -D "$DS_WORK/node_a" -l "$DS_WORK/node_a.log" -w start >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "node_a did not restart; see $DS_WORK/node_a.log" >&2
	return 1
}

ds_say "1. A PostgreSQL node with distsys preloaded (port $PORT)"
show "CREATE EXTENSION distsys"
show "SELECT distsys.version(), current_setting('shared_preload_libraries') AS preloaded"

ds_say "2. Locks are leases: SETNX + EXPIRE in one call, with a fencing token"
show "SELECT distsys.dlock_try('nightly-report', ttl => '30 seconds', owner => 'host-1') AS token"
echo "  Another owner asks for the same lock and is refused at once (NULL);"
echo "  the same owner asking again is reentrant (same token, depth 2):"
show "SELECT distsys.dlock_try('nightly-report', owner => 'host-2') AS token_for_host_2"
show "SELECT distsys.dlock_try('nightly-report', owner => 'host-1') AS token_for_host_1_again"
show "SELECT name, mode, owner, token, depth, expires_at - granted_at AS lease FROM distsys.dlocks"

ds_say "3. Blocking waits in FIFO order; a release hands the lock to the next waiter"
psql -X -q -At <<'SQL' &
SELECT distsys.dlock_try('deploy', '1 minute') AS holder_token \gset
SELECT pg_sleep(1.5) \gset
SELECT distsys.dlock_release('deploy') AS released \gset
SQL
holder=$!
sleep 0.5
show "SELECT clock_timestamp() AS asked_at, distsys.dlock_acquire('deploy', timeout => '10 seconds') AS token, clock_timestamp() AS got_at"
wait $holder
echo "  The waiter was granted the lock the moment the holder released it, about a second later."
show "SELECT grants, releases, waits, wakeups, wakeups_per_wait FROM distsys.dlock_stats"

ds_say "4. Fencing: a write is checked against the token in the same transaction"
show "SELECT distsys.dlock_try('ledger', ttl => '300 milliseconds', owner => 'worker-1') AS token"
TOKEN=$(psql -X -At -c "SELECT token FROM distsys.dlocks WHERE name = 'ledger'")
show "BEGIN; SELECT distsys.dlock_assert('ledger', $TOKEN); COMMIT"
echo "  ... the lease passes (worker-1 was paused too long) and worker-2 takes over:"
sleep 0.5
show "SELECT distsys.dlock_try('ledger', owner => 'worker-2') AS new_token"
echo "  worker-1 wakes up and tries to write with its old token; the database refuses:"
show "BEGIN; SELECT distsys.dlock_assert('ledger', $TOKEN); COMMIT"

ds_say "5. Application-owned leases are durable: they survive a crash of the server"
show "SELECT distsys.dlock_try('batch-42', ttl => '10 minutes', owner => 'scheduler') AS token"
show "SELECT name, owner, mode, token, depth FROM distsys.dlock_leases WHERE name = 'batch-42'"
echo "  kill -9 of the postmaster, then a restart:"
kill -9 "$(head -n 1 "$DS_WORK/node_a/postmaster.pid")"
restart_after_kill
show "SELECT distsys.dlock_try('batch-42', owner => 'intruder') AS intruder_token"
show "SELECT name, owner, token, depth FROM distsys.dlocks WHERE name = 'batch-42'"

ds_say "6. The relay daemon and the built-in Kafka test broker"
distsys-kafka-mock --brokers 1 --bootstrap-file "$DS_WORK/bootstrap" > "$DS_WORK/mock.out" 2> "$DS_WORK/mock.log" &
DS_PIDS+=($!)
for _ in $(seq 100); do [ -s "$DS_WORK/bootstrap" ] && break; sleep 0.1; done
BROKERS=$(cat "$DS_WORK/bootstrap")
echo "  distsys-kafka-mock listens on $BROKERS (a real Kafka-protocol broker on loopback)"
printf '  \033[36m%s\033[0m\n' "kcat -P -b $BROKERS -t demo -K: ; kcat -C ... -e"
printf 'order-1:{"sku":"A-100","qty":2}\norder-2:{"sku":"B-200","qty":1}\n' |
	kcat -P -b "$BROKERS" -t demo -K: 2>&1 | sed 's/^/    /'
kcat -C -b "$BROKERS" -t demo -o beginning -e -q -f '    key=%k value=%s\n' 2>/dev/null
printf '\n  \033[36m%s\033[0m\n' "distsys-relay --version"
distsys-relay --version | sed 's/^/    /'
printf '\n  \033[36m%s\033[0m\n' "distsys-relay --db ... --brokers $BROKERS --print-config"
distsys-relay --db "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" \
	--brokers "$BROKERS" --print-config | sed 's/^/    /'

ds_say "7. The transactional outbox, relayed to Kafka"
printf '\n  \033[36m%s\033[0m\n' "distsys-relay --db ... --brokers $BROKERS --lanes 4 &"
distsys-relay --db "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" \
	--brokers "$BROKERS" --lanes 4 > "$DS_WORK/relay.log" 2>&1 &
RELAY_PID=$!
DS_PIDS+=("$RELAY_PID")
show "BEGIN; SELECT distsys.outbox_send('orders', '{\"sku\": \"A-100\", \"qty\": 2}'::jsonb, 'order-1'); SELECT distsys.outbox_send('orders', '{\"status\": \"paid\"}'::jsonb, 'order-1', '{\"trace\": \"t-1\"}'); COMMIT"
show "BEGIN; SELECT distsys.outbox_send('orders', '{\"sku\": \"B-200\"}'::jsonb, 'order-2'); ROLLBACK"
for _ in $(seq 100); do
	[ "$(psql -X -At -c 'SELECT count(*) FROM distsys.outbox')" = 0 ] && break
	sleep 0.1
done
echo "  The committed messages reach Kafka (the rolled-back one never does):"
kcat -C -b "$BROKERS" -t orders -o beginning -e -q -f '    key=%k value=%s headers=%h\n' 2>/dev/null
show "SELECT * FROM distsys.outbox_status"
kill -TERM "$RELAY_PID" && wait "$RELAY_PID" || true
echo "  The relay's log (SIGTERM: it drains, releases its lanes and exits 0):"
sed 's/^/    /' "$DS_WORK/relay.log"

ds_say "8. The consuming side: each message takes effect once, through the inbox"
echo "  A stock table and a handler that reserves stock for a 'reserve-stock' message:"
show "CREATE TABLE stock (sku text PRIMARY KEY, qty int); INSERT INTO stock VALUES ('A-100', 10), ('B-200', 5)"
show "CREATE FUNCTION reserve_stock(topic text, key text, payload jsonb, headers jsonb) RETURNS void LANGUAGE sql AS \$\$ UPDATE stock SET qty = qty - (payload->>'qty')::int WHERE sku = payload->>'sku' \$\$"
DB="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
printf '\n  \033[36m%s\033[0m\n' "distsys-relay consume --db ... --brokers $BROKERS --topic reserve-stock --group stock --handler public.reserve_stock &"
distsys-relay --db "$DB" --brokers "$BROKERS" --lanes 4 > "$DS_WORK/relay2.log" 2>&1 &
RELAY_PID=$!
DS_PIDS+=("$RELAY_PID")
MPORT=$(ds_free_port)
distsys-relay consume --db "$DB" --brokers "$BROKERS" --topic reserve-stock --group stock \
	--handler public.reserve_stock --metrics-addr "127.0.0.1:$MPORT" > "$DS_WORK/consume.log" 2>&1 &
CONSUMER_PID=$!
DS_PIDS+=("$CONSUMER_PID")
show "BEGIN; SELECT distsys.outbox_send('reserve-stock', '{\"sku\": \"A-100\", \"qty\": 2}'::jsonb, 'order-1'); SELECT distsys.outbox_send('reserve-stock', '{\"sku\": \"B-200\", \"qty\": 1}'::jsonb, 'order-2'); COMMIT"
for _ in $(seq 150); do
	[ "$(psql -X -At -c "SELECT count(*) FROM distsys.inbox WHERE consumer = 'stock'")" = 2 ] && break
	sleep 0.1
done
echo "  The relay published both, the consumer applied both (one transaction: claim + handler):"
show "SELECT * FROM stock ORDER BY sku"
show "SELECT consumer, message_id, sent_at FROM distsys.inbox ORDER BY claimed_at"
echo "  Kafka delivers at least once. The same message delivered again (same distsys-message-id):"
DUP=$(kcat -C -b "$BROKERS" -t reserve-stock -o beginning -e -q -f '%k|%s|%h\n' 2>/dev/null | grep '^order-1|' | head -n 1)
DUP_KEY=${DUP%%|*}; DUP_REST=${DUP#*|}; DUP_VALUE=${DUP_REST%%|*}; DUP_HEADERS=${DUP_REST#*|}
DUP_ID=$(echo "$DUP_HEADERS" | tr ',' '\n' | sed -n 's/^distsys-message-id=//p')
DUP_SENT=$(echo "$DUP_HEADERS" | tr ',' '\n' | sed -n 's/^distsys-sent-at=//p')
printf '  \033[36m%s\033[0m\n' "kcat -P -t reserve-stock -k $DUP_KEY -H distsys-message-id=$DUP_ID ...  <<< '$DUP_VALUE'"
echo "$DUP_VALUE" | kcat -P -b "$BROKERS" -t reserve-stock -k "$DUP_KEY" -H "distsys-message-id=$DUP_ID" \
	-H "distsys-sent-at=$DUP_SENT" -H "content-type=application/json"
# consumer_metric NAME: a counter of the consumer's metrics page.
consumer_metric() {
	exec 3<>"/dev/tcp/127.0.0.1/$MPORT" || return 0
	printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
	sed -n "s/^distsys_relay_consumer_$1 //p" <&3
	exec 3<&-
}
for _ in $(seq 100); do
	[ "$(consumer_metric duplicates_skipped_total)" = 1 ] && break
	sleep 0.1
done
echo "  ... changes nothing: the inbox had claimed it already."
show "SELECT * FROM stock ORDER BY sku"
printf '  \033[36m%s\033[0m\n' "curl http://127.0.0.1:$MPORT/metrics"
exec 3<>"/dev/tcp/127.0.0.1/$MPORT"
printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
grep '^distsys_relay_consumer' <&3 | sed 's/^/    /'
exec 3<&-
kill -TERM "$CONSUMER_PID" && wait "$CONSUMER_PID" || true
kill -TERM "$RELAY_PID" && wait "$RELAY_PID" || true
echo "  The consumer's log (SIGTERM: it commits its offsets, leaves the group and exits 0):"
sed 's/^/    /' "$DS_WORK/consume.log"

ds_say "9. Two-phase commit: one transaction across two more PostgreSQL nodes"
BANK1=$(ds_start_node bank_1)
BANK2=$(ds_start_node bank_2)
for port in "$BANK1" "$BANK2"; do
	psql -X -q -p "$port" -c "CREATE EXTENSION distsys; CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL); INSERT INTO acct VALUES (1, 100)"
done
echo "  Two participant nodes (ports $BANK1 and $BANK2), each with an account of 100, registered here:"
show "SELECT distsys.node_add('bank_1', 'host=127.0.0.1 port=$BANK1 dbname=postgres user=postgres'), distsys.node_add('bank_2', 'host=127.0.0.1 port=$BANK2 dbname=postgres user=postgres')"
show "CREATE TABLE transfers (id int PRIMARY KEY, amount int)"
TRANSFER="SELECT distsys.dtx_exec('bank_1', 'UPDATE acct SET bal = bal - 30 WHERE id = 1'); SELECT distsys.dtx_exec('bank_2', 'UPDATE acct SET bal = bal + 30 WHERE id = 1')"
echo "  A transfer: the local COMMIT prepares both nodes, records the decision, then commits them:"
show "BEGIN; INSERT INTO transfers VALUES (1, 30); $TRANSFER; COMMIT"
# balances: both participants' account 1.
balances() {
	printf '    bank_1: %s   bank_2: %s   transfers here: %s\n' \
		"$(psql -X -At -p "$BANK1" -c 'SELECT bal FROM acct')" "$(psql -X -At -p "$BANK2" -c 'SELECT bal FROM acct')" \
		"$(psql -X -At -c 'SELECT count(*) FROM transfers')"
}
balances
echo "  A participant that cannot PREPARE (a temporary table there) fails the whole transaction:"
show "BEGIN; INSERT INTO transfers VALUES (2, 30); SELECT distsys.dtx_exec('bank_1', 'UPDATE acct SET bal = bal - 30'); SELECT distsys.dtx_exec('bank_2', 'CREATE TEMP TABLE t (x int); UPDATE acct SET bal = bal + 30'); COMMIT"
balances
echo "  The coordinator crashes after its decision is durable, before any COMMIT PREPARED"
echo "  (distsys.dtx_fault kills the backend; the server restarts as after any crash)."
echo "  The recovery worker is paused first, so that the transaction stays in doubt for a moment:"
show "ALTER SYSTEM SET distsys.dtx_recovery_interval = 0"
psql -X -q -c "SELECT pg_reload_conf()" >/dev/null
show "SET distsys.dtx_fault = crash_after_decision; BEGIN; INSERT INTO transfers VALUES (3, 30); $TRANSFER; COMMIT"
for _ in $(seq 100); do psql -X -At -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
show "SELECT participant, coordinator_xid, outcome FROM distsys.dtx_in_doubt"
echo "  Both participants are prepared, in doubt; recovery reads the decision and commits them"
echo "  (the worker does this every distsys.dtx_recovery_interval; here it is run by hand):"
show "SELECT distsys.dtx_recover() AS resolved"
balances
echo "  Without a local write, the node written last decides (the last agent): bank_1 is prepared,"
echo "  bank_2 commits in one phase with a mark of the transaction in distsys.dtx_marks there, and"
echo "  that commit is the decision (no decision row here, and one WAL flush less)."
echo "  The coordinator crashes after that commit, before bank_1 is committed:"
show "SET distsys.dtx_fault = crash_after_decision; BEGIN; $TRANSFER; COMMIT"
for _ in $(seq 100); do psql -X -At -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
show "SELECT participant, outcome, decider FROM distsys.dtx_in_doubt"
echo "  Recovery finds the mark on bank_2, so the transaction committed, and commits bank_1:"
show "SELECT distsys.dtx_recover() AS resolved"
psql -X -q -c "ALTER SYSTEM RESET distsys.dtx_recovery_interval" -c "SELECT pg_reload_conf()" >/dev/null
balances

ds_say "10. Raft among three PostgreSQL nodes: a replicated key-value store"
# raft_port I: the port of Raft node I; show_on PORT SQL: show on that node.
RAFT_PORTS=()
for i in 1 2 3; do
	RAFT_PORTS+=("$(ds_free_port)")
	ds_init_node "raft_$i" "${RAFT_PORTS[$((i - 1))]}"
done
raft_port() { echo "${RAFT_PORTS[$(($1 - 1))]}"; }
show_on() { PGPORT=$1 show "$2"; }
# restart_raft_node I PID: start node I again once its killed postmaster PID is gone.
restart_raft_node() {
	for _ in $(seq 50); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
	for _ in $(seq 50); do
		rm -f "$DS_WORK/raft_$1/postmaster.pid" "$DS_WORK/.s.PGSQL.$(raft_port "$1").lock"
		ds_runuser pg_ctl -D "$DS_WORK/raft_$1" -l "$DS_WORK/raft_$1.log" -w start >/dev/null 2>&1 && break
		sleep 0.2
	done
}
PEERS="1=postgresql://127.0.0.1:$(raft_port 1)/postgres 2=postgresql://127.0.0.1:$(raft_port 2)/postgres 3=postgresql://127.0.0.1:$(raft_port 3)/postgres"
for i in 1 2 3; do
	printf "distsys.node_id = %s\ndistsys.peers = '%s'\n" "$i" "$PEERS" >> "$DS_WORK/raft_$i/postgresql.conf"
	ds_runuser pg_ctl -D "$DS_WORK/raft_$i" -l "$DS_WORK/raft_$i.log" -w start >/dev/null
	psql -X -q -p "$(raft_port "$i")" -c "CREATE EXTENSION distsys"
done
echo "  Three servers, each with distsys.node_id 1, 2 or 3 and the same distsys.peers:"
echo "    $PEERS"
# leader_on PORT...: wait until the first node names a leader that leads; its id.
raft_leader() {
	local l
	for _ in $(seq 200); do
		l=$(psql -X -At -p "$1" -c "SELECT leader FROM distsys.raft_status" 2>/dev/null || true)
		if [ -n "$l" ] && [ "$(psql -X -At -p "$(raft_port "$l")" -c "SELECT role FROM distsys.raft_status" 2>/dev/null)" = leader ]; then
			echo "$l"
			return 0
		fi
		sleep 0.05
	done
	return 1
}
LEADER=$(raft_leader "$(raft_port 1)")
echo "  Each runs a Raft worker; they elect a leader (randomized 150-300 ms election timeouts):"
for i in 1 2 3; do
	psql -X -At -p "$(raft_port "$i")" -c "SELECT format('    node %s: %s in term %s, leader %s, commit index %s', node, role, term, leader, commit_index) FROM distsys.raft_status"
done
FOLLOWER=$(( LEADER % 3 + 1 ))
OTHER=$(( FOLLOWER % 3 + 1 ))
echo "  A write sent to a follower (node $FOLLOWER) is forwarded to the leader; it returns once a"
echo "  majority has it on disk and node $FOLLOWER has applied it:"
show_on "$(raft_port "$FOLLOWER")" "SELECT distsys.raft_put('config/feature-x', '{\"enabled\": true}') AS log_index"
echo "  A linearizable read on node $OTHER (ReadIndex: the leader confirms it still leads) sees it:"
show_on "$(raft_port "$OTHER")" "SELECT distsys.raft_get('config/feature-x')"
echo "  Compare-and-swap, and the applied state as a table on every node:"
show_on "$(raft_port "$OTHER")" "SELECT distsys.raft_cas('config/feature-x', '{\"enabled\": true}', '{\"enabled\": false}') AS swapped"
show_on "$(raft_port "$LEADER")" "SELECT key, value, index FROM distsys.raft_kv"
echo "  The leader (node $LEADER) is killed (SIGKILL of its postmaster):"
LEADER_PID=$(head -1 "$DS_WORK/raft_$LEADER/postmaster.pid")
kill -KILL "$LEADER_PID"
NEW=$(raft_leader "$(raft_port "$FOLLOWER")")
echo "  The two others elect a new leader, node $NEW, and serve writes:"
for i in 1 2 3; do
	[ "$i" = "$LEADER" ] && continue
	psql -X -At -p "$(raft_port "$i")" -c "SELECT format('    node %s: %s in term %s, leader %s', node, role, term, leader) FROM distsys.raft_status"
done
show_on "$(raft_port "$FOLLOWER")" "SELECT distsys.raft_put('after-the-kill', '\"written by a majority of two\"') AS log_index"
echo "  Node $LEADER restarts, rejoins as a follower and catches up from the log:"
restart_raft_node "$LEADER" "$LEADER_PID"
for _ in $(seq 100); do
	[ "$(psql -X -At -p "$(raft_port "$LEADER")" -c "SELECT count(*) FROM distsys.raft_kv" 2>/dev/null)" = 2 ] && break
	sleep 0.1
done
show_on "$(raft_port "$LEADER")" "SELECT node, role, term, leader FROM distsys.raft_status"
show_on "$(raft_port "$LEADER")" "SELECT key, value, index FROM distsys.raft_kv ORDER BY index"

ds_say "11. Paxos among the same three nodes: no leader"
echo "  Every member proposes, accepts and learns. Two nodes propose different values for one"
echo "  instance; Paxos chooses one, and both get the same answer:"
show_on "$(raft_port 1)" "SELECT distsys.paxos_propose('leader-of-shard-7', '\"node-1\"') AS chosen"
show_on "$(raft_port 2)" "SELECT distsys.paxos_propose('leader-of-shard-7', '\"node-2\"') AS chosen"
for _ in $(seq 50); do
	[ -n "$(psql -X -At -p "$(raft_port 3)" -c "SELECT distsys.paxos_learned('leader-of-shard-7')" 2>/dev/null)" ] && break
	sleep 0.1
done
show_on "$(raft_port 3)" "SELECT instance, value, proposal_round, proposal_node FROM distsys.paxos_instances"
echo "  A CASPaxos register: a compare-and-set per key, linearizable, on any member:"
show_on "$(raft_port 1)" "SELECT distsys.paxos_cas('quota/acme', NULL, '100') AS created"
show_on "$(raft_port 2)" "SELECT distsys.paxos_cas('quota/acme', '100', '90') AS swapped"
show_on "$(raft_port 3)" "SELECT distsys.paxos_cas('quota/acme', '100', '80') AS swapped_stale"
echo "  Node 3 is killed (SIGKILL). With no leader to elect, the two others go on at once:"
NODE3_PID=$(head -1 "$DS_WORK/raft_3/postmaster.pid")
kill -KILL "$NODE3_PID"
show_on "$(raft_port 1)" "SELECT distsys.paxos_cas('quota/acme', '90', '85') AS swapped"
show_on "$(raft_port 2)" "SELECT distsys.paxos_propose('while-node-3-was-down', '42') AS chosen"
echo "  Node 3 restarts; its acceptor state was synced to its files, and it learns from its"
echo "  peers what was chosen while it was down:"
restart_raft_node 3 "$NODE3_PID"
for _ in $(seq 100); do
	[ -n "$(psql -X -At -p "$(raft_port 3)" -c "SELECT distsys.paxos_learned('while-node-3-was-down')" 2>/dev/null)" ] && break
	sleep 0.1
done
show_on "$(raft_port 3)" "SELECT distsys.paxos_learned('while-node-3-was-down')"
show_on "$(raft_port 3)" "SELECT distsys.paxos_read('quota/acme')"

ds_say "Done. Everything started here is stopped and removed now."
