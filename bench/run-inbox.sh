#!/usr/bin/env bash
# bench/run-inbox.sh: the consuming-side benchmark (issue 5), one command.
#
#   bench/run-inbox.sh            full run (50,000 messages), about 3 minutes
#   bench/run-inbox.sh --quick    smoke run (10,000 messages), about 1 minute
#   options: --messages N, --seconds N (pgbench time per direct-SQL cell)
#
# Messages applied per second through 'distsys-relay consume' with a handler
# that updates one row, side by side with the same updates done directly in
# SQL by pgbench in the same run (the database's limit).  The messages are
# made the real way: outbox_send on the node, relayed to the built-in Kafka
# broker by distsys-relay, then consumed into the same node.  The consumer's
# rate is measured from its first claim to its last (inbox.claimed_at), so
# joining the consumer group is not counted.  Not a test: it never fails on
# a figure.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"

ARGS="$*"
MESSAGES=50000
SECONDS_PER_CELL=8
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) MESSAGES=10000 SECONDS_PER_CELL=4 ;;
	--messages) MESSAGES=$2; shift ;;
	--seconds) SECONDS_PER_CELL=$2; shift ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "run-inbox.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

ds_setup
trap 'set +e; ds_cleanup' EXIT
PORT=$(ds_start_node bench)
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
CONNINFO="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

sql "CREATE EXTENSION distsys"
sql "CREATE TABLE stock (sku text PRIMARY KEY, qty bigint NOT NULL)"
sql "INSERT INTO stock SELECT 'sku-' || g, 1000000000 FROM generate_series(1, 100) g"
sql "CREATE FUNCTION reserve(topic text, key text, payload jsonb, headers jsonb) RETURNS void
	LANGUAGE sql AS \$\$ UPDATE stock SET qty = qty - (payload->>'qty')::int WHERE sku = payload->>'sku' \$\$"

distsys-kafka-mock --brokers 1 --bootstrap-file "$DS_WORK/bootstrap" --topic reserve:4 \
	> "$DS_WORK/mock.out" 2> "$DS_WORK/mock.log" &
DS_PIDS+=($!)
for _ in $(seq 100); do [ -s "$DS_WORK/bootstrap" ] && break; sleep 0.1; done
BROKERS=$(cat "$DS_WORK/bootstrap")

# wait_for SQL: poll until the query returns t (at most 10 minutes).
wait_for() {
	for _ in $(seq 6000); do [ "$(sql "$1")" = t ] && return 0; sleep 0.1; done
	echo "run-inbox.sh: timed out waiting for: $1" >&2
	return 1
}

echo "filling the outbox with $MESSAGES messages and relaying them to Kafka..."
for ((i = 0; i < MESSAGES; i += 1000)); do
	sql "SELECT count(distsys.outbox_send('reserve',
			jsonb_build_object('sku', 'sku-' || (1 + g % 100), 'qty', 1), 'order-' || g))
		   FROM generate_series($i, least($i + 999, $MESSAGES - 1)) g" >/dev/null
done
distsys-relay --db "$CONNINFO" --brokers "$BROKERS" > "$DS_WORK/relay.log" 2>&1 &
RELAY=$!
DS_PIDS+=($RELAY)
wait_for "SELECT count(*) = 0 FROM distsys.outbox"
kill -TERM $RELAY; wait $RELAY || true

# consume_run GROUP BATCH: applied messages per second for one consumer run;
# appends the stock it took to $DS_WORK/deltas (must be one per message).
consume_run() {
	local group=$1 batch=$2 pid before
	before=$(sql "SELECT sum(qty) FROM stock")
	distsys-relay consume --db "$CONNINFO" --brokers "$BROKERS" --topic reserve \
		--group "$group" --handler public.reserve --batch-size "$batch" \
		> "$DS_WORK/consume-$group.log" 2>&1 &
	pid=$!
	DS_PIDS+=($pid)
	wait_for "SELECT count(*) >= $MESSAGES FROM distsys.inbox WHERE consumer = '$group'"
	kill -TERM $pid; wait $pid || true
	sql "SELECT $before - sum(qty) FROM stock" >> "$DS_WORK/deltas"
	sql "SELECT round(count(*) / extract(epoch FROM max(claimed_at) - min(claimed_at)))
		   FROM distsys.inbox WHERE consumer = '$group'"
}

# direct_run CLIENTS [PER_TX]: the same single-row update straight from
# pgbench, PER_TX updates per transaction (default 1); updates per second.
direct_run() {
	local per_tx=${2:-1}
	{
		[ "$per_tx" -eq 1 ] || echo 'BEGIN;'
		for ((k = 0; k < per_tx; k++)); do
			printf '\\set s%d random(1, 100)\nUPDATE stock SET qty = qty - 1 WHERE sku = '"'"'sku-'"'"' || :s%d;\n' "$k" "$k"
		done
		[ "$per_tx" -eq 1 ] || echo 'COMMIT;'
	} > "$DS_WORK/direct.sql"
	chmod 644 "$DS_WORK/direct.sql"
	pgbench -n -M prepared -c "$1" -j "$1" -T "$SECONDS_PER_CELL" -f "$DS_WORK/direct.sql" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | awk -v n="$per_tx" '{ printf "%d", $1 * n }'
}

echo "measuring..."
D1=$(direct_run 1)
D4=$(direct_run 4)
C1000=$(consume_run bench_b1000 1000)
C100=$(consume_run bench_b100 100)
C1=$(consume_run bench_b1 1)
D8=$(direct_run 8)
DB=$(direct_run 1 100)	# one client: random rows in one transaction would deadlock
LIMIT=$(printf '%s\n' "$D1" "$D4" "$D8" | sort -n | tail -n 1)
EXPECT=$((3 * MESSAGES))
APPLIED=$(awk '{ s += $1 } END { print s }' "$DS_WORK/deltas")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<REPORT

### Inbox consumer: messages applied per second ($MESSAGES messages, handler updates one row)

- Run: \`bench/run-inbox.sh $ARGS\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)
- distsys: commit $(git -C "$DS_TOP" rev-parse --short HEAD); PostgreSQL fsync=on, synchronous_commit=on; 1 broker, 4 partitions

| what | messages (or updates) per second | × database limit |
|---|---:|---:|
| direct SQL: pgbench, 1 client, one UPDATE per transaction | $D1 | $(ratio "$D1" "$LIMIT") |
| direct SQL: pgbench, 4 clients | $D4 | $(ratio "$D4" "$LIMIT") |
| direct SQL: pgbench, 8 clients | $D8 | $(ratio "$D8" "$LIMIT") |
| distsys-relay consume, --batch-size 1000 (inbox_apply, one transaction per batch) | $C1000 | $(ratio "$C1000" "$LIMIT") |
| distsys-relay consume, --batch-size 100 | $C100 | $(ratio "$C100" "$LIMIT") |
| distsys-relay consume, --batch-size 1 (one transaction per message) | $C1 | $(ratio "$C1" "$LIMIT") |
| (direct SQL: pgbench, 1 client, 100 UPDATEs per transaction) | $DB | $(ratio "$DB" "$LIMIT") |

Database limit = the best direct-SQL row with one update per transaction ($LIMIT updates/s).
Target (issue 5): consumer with batching ≥ 0.5× that limit:
$( [ "$(ratio "$C1000" "$LIMIT" | tr -d .)" -ge 50 ] && echo met || echo "not met").
For comparison with direct SQL that batches too (100 updates per transaction, $DB updates/s),
the consumer at --batch-size 1000 reaches $(ratio "$C1000" "$DB")× of it; the difference is the
inbox claim, the handler call and the Kafka fetch per message.
Exactly-once check: the three consumer runs applied $APPLIED reservations for $EXPECT deliveries
($( [ "$APPLIED" -eq "$EXPECT" ] && echo "each message once per consumer group" || echo "MISMATCH")).
REPORT
