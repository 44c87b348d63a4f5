#!/usr/bin/env bash
# bench/run-outbox.sh: the outbox relay benchmark (issue 4), one command.
#
#   bench/run-outbox.sh            full run, about 7 minutes
#   bench/run-outbox.sh --quick    smoke run, about 1.5 minutes
#   options: --prefill N (outbox rows for the throughput cells, default
#   1000000), --naive-rows N (rows for the naive relay, default 20000),
#   --rounds N (default 2), --seconds N (per latency cell and round,
#   default 12), --report FILE (also write the report there)
#
# Runs on loopback only: one throwaway PostgreSQL cluster with distsys
# (tools/common.sh), one distsys-kafka-mock broker, and per cell either
# distsys-relay, the naive relay of bench/outbox/naive.c or no relay, each
# in the temporary directory and stopped by PID.  Throughput cells and
# latency cells run in rounds, every other round in reverse order, so that
# a change in the machine's load falls on all rows alike; the report adds
# the rounds up and prints ratios to the peers measured in the same run.
# Not a test: it never fails on a figure, only on a broken setup.
#
# If relay/distsys-relay is missing or does not relay (a 200-row outbox not
# empty within 20 s), its rows print as n/a and the peers still run.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"
DS_PACKAGES="$DS_PACKAGES curl"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
PREFILL=1000000
NAIVE_ROWS=20000
ROUNDS=2
LAT_SECONDS=12
LAT_WARMUP_MS=1000
SINGLE_SECONDS=5
REPORT_FILE=
MODE=full
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) PREFILL=100000 NAIVE_ROWS=3000 ROUNDS=1 LAT_SECONDS=5 SINGLE_SECONDS=3 MODE=quick ;;
	--prefill) PREFILL=$2; shift ;;
	--naive-rows) NAIVE_ROWS=$2; shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--seconds) LAT_SECONDS=$2; shift ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,10p' "$0"; exit 0 ;;
	*) echo "run-outbox.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

MSG_SIZE=200
MSG_KEYS=1000
PARTITIONS=4

pg_psql() { ds_psql "$PG_PORT" "$@"; }

build_driver() {
	# shellcheck disable=SC2046
	gcc -O2 -Wall -pthread $(pkg-config --cflags libpq rdkafka) "$BENCH"/outbox/*.c \
		$(pkg-config --libs libpq rdkafka) -lm -o "$DS_WORK/outboxbench"
}

# ob MODE ARGS...: the driver with the database and broker options.
ob() {
	local mode=$1
	shift
	"$DS_WORK/outboxbench" "$mode" --db "$CONNINFO" --brokers "$BOOTSTRAP" \
		--size "$MSG_SIZE" --keys "$MSG_KEYS" "$@"
}

start_postgres() {
	# Room for the pre-fill's WAL between checkpoints, as a server sized for
	# this load would have; everything else is tools/common.sh's.
	printf 'max_wal_size = 4GB\ncheckpoint_timeout = 30min\n' >> "$DS_TEMP_CONFIG"
	PG_PORT=$(ds_start_node pg)
	CONNINFO="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
	pg_psql -c 'CREATE EXTENSION distsys'
	PG_SETTINGS=$(pg_psql -At -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name)
		FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method',
		'shared_buffers', 'max_wal_size', 'shared_preload_libraries')")
}

start_broker() {
	local bsfile="$DS_WORK/bootstrap"
	"$DS_TOP/relay/distsys-kafka-mock" --brokers 1 --bootstrap-file "$bsfile" \
		--topic "bench:$PARTITIONS" --topic "lat:$PARTITIONS" > "$DS_WORK/mock.log" 2>&1 &
	DS_PIDS+=($!)
	for _ in $(seq 100); do
		[ -s "$bsfile" ] && break
		sleep 0.1
	done
	[ -s "$bsfile" ] || { echo "run-outbox.sh: distsys-kafka-mock did not start (see $DS_WORK/mock.log)" >&2; return 1; }
	BOOTSTRAP=$(head -1 "$bsfile")
}

# start_relay LOG: distsys-relay in the background with its defaults and a
# metrics address; RELAY_PID, METRICS_PORT.
start_relay() {
	METRICS_PORT=$(ds_free_port)
	"$DS_TOP/relay/distsys-relay" --db "$CONNINFO" --brokers "$BOOTSTRAP" \
		--metrics-addr "127.0.0.1:$METRICS_PORT" > "$DS_WORK/$1" 2>&1 &
	RELAY_PID=$!
	DS_PIDS+=("$RELAY_PID")
}

# stop_pid PID: SIGTERM, wait (a relay drains its reports first), and
# forget the PID so that ds_cleanup never signals a reused one.
stop_pid() {
	local keep=() p
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	for p in "${DS_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	DS_PIDS=("${keep[@]}")
}

# relay_works: whether distsys-relay empties a 200-row outbox within 20 s.
relay_works() {
	local ok=no
	[ -x "$DS_TOP/relay/distsys-relay" ] || { RELAY_NOTE="relay/distsys-relay did not build"; return 1; }
	pg_psql -c "TRUNCATE distsys.outbox" \
		-c "SELECT count(distsys.outbox_send('bench', 'probe ' || g, 'key-' || g)) FROM generate_series(1, 200) g" >/dev/null
	start_relay relay-probe.log
	ob empty --seconds 20 >/dev/null && ok=yes
	stop_pid "$RELAY_PID"
	[ "$ok" = yes ] && return 0
	RELAY_NOTE="distsys-relay did not empty a 200-row outbox within 20 s: $(grep -v '^\s*$' "$DS_WORK/relay-probe.log" | tail -1)"
	return 1
}

# refill N: the outbox holds the first N pre-filled rows again, vacuumed and
# checkpointed, so every throughput cell starts from the same state.
refill() {
	pg_psql -c "TRUNCATE distsys.outbox" \
		-c "INSERT INTO distsys.outbox SELECT * FROM bench_prefill ORDER BY id LIMIT $1" \
		-c "VACUUM ANALYZE distsys.outbox" -c "CHECKPOINT"
}

# record CELL ROW ROUND LINE: one result line; echoes a short progress line.
record() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RESULTS"
	printf '  %s%s %-8s %s\n' "$1" "$3" "$2" "$4" >&2
}

# relay_line NS: the result line of a relay that emptied the outbox in NS
# nanoseconds, with what its metrics say it relayed and the CPU it and its
# backend used (the only client backends left are the relay's).
relay_line() {
	local relayed backends
	relayed=$(curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" |
		awk '/^distsys_relay_messages_relayed_total/ {print $2}')
	backends=$(pg_psql -At -c "SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
	# shellcheck disable=SC2086 # a list of PIDs
	awk -v n="$PREFILL" -v ns="$1" -v rel="${relayed:-?}" \
		-v cpu="$(cpu_seconds "$RELAY_PID")" -v bcpu="$(cpu_seconds $backends)" \
		'BEGIN {printf "msgs_s=%.0f rows=%d seconds=%.3f relayed_total=%s relay_cpu_s=%s backend_cpu_s=%s\n",
			n / (ns / 1e9), n, ns / 1e9, rel, cpu, bcpu}'
}

# throughput_cell ROW ROUND: one row of the throughput table.
throughput_cell() {
	local row=$1 round=$2 line t0 t1
	case "$row" in
	relay)
		if [ "$RELAY" != yes ]; then record T relay "$round" "na=$RELAY_NOTE"; return 0; fi
		refill "$PREFILL"
		t0=$(date +%s%N)
		start_relay "relay-T$round.log"
		if line=$(ob empty --seconds 600); then
			t1=$(date +%s%N)
			line=$(relay_line "$((t1 - t0))")
		else
			line="na=outbox not empty after 600 s ($line)"
		fi
		stop_pid "$RELAY_PID"
		record T relay "$round" "$line" ;;
	naive)
		refill "$NAIVE_ROWS"
		line=$(ob naive --until-empty --topic bench --batch 1000 --poll-ms 100) || line="na=naive relay failed"
		record T naive "$round" "$line" ;;
	producer)
		line=$(ob producer --topic bench --count "$PREFILL") || line="na=producer failed"
		record T producer "$round" "$line" ;;
	drain)
		refill "$PREFILL"
		line=$(ob drain --batch 1000) || line="na=drain failed"
		record T drain "$round" "$line" ;;
	esac
}

# cpu_seconds PID...: user + system CPU seconds the processes used so far.
cpu_seconds() {
	local p ticks=0
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		ticks=$((ticks + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
	done
	awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}

# histogram_snapshot: the relay's commit-to-ack bucket counts, "le count" lines.
histogram_snapshot() {
	curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" |
		sed -n 's/^distsys_relay_commit_to_ack_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'
}

# latency_cell ROW RATE ROUND: paced transactions through one relay; the consumer's latencies go to lat-ROW-RATE.ns for the report.
latency_cell() {
	local row=$1 rate=$2 round=$3 opts="--clients 16 --per-tx 1" pid line before
	# One commit with fsync per message tops out near 1,500/s on this
	# machine (the database rows), so 10,000 msgs/s is offered as 1,000
	# transactions/s of 10 messages each.
	[ "$rate" -le 1000 ] || opts="--clients 16 --per-tx 10"
	if [ "$row" = relay ] && [ "$RELAY" != yes ]; then
		record "L$rate" relay "$round" "na=$RELAY_NOTE"
		return 0
	fi
	pg_psql -c "TRUNCATE distsys.outbox"
	if [ "$row" = relay ]; then
		start_relay "relay-L$rate-$round.log"
		pid=$RELAY_PID
	else
		# Not through ob: a backgrounded function is a subshell, and its PID
		# would not be the relay's.
		"$DS_WORK/outboxbench" naive --db "$CONNINFO" --brokers "$BOOTSTRAP" \
			--size "$MSG_SIZE" --keys "$MSG_KEYS" --topic lat --batch 1000 --poll-ms 100 \
			> "$DS_WORK/naive-L$rate-$round.out" &
		pid=$!
		DS_PIDS+=("$pid")
	fi
	sleep 2		# connected, lanes owned
	[ "$row" != relay ] || before=$(histogram_snapshot)
	# shellcheck disable=SC2086 # options
	line=$(ob latency --topic lat --tag "L$rate-$row-$round" --rate "$rate" \
		--seconds "$LAT_SECONDS" --warmup-ms "$LAT_WARMUP_MS" $opts \
		--dump "$DS_WORK/lat-$row-$rate.ns") || true
	[ -n "$line" ] || line="na=latency driver failed"
	if [ "$row" = relay ]; then
		# The relay's own histogram over the same cell, as bucket deltas.
		paste -d' ' <(echo "$before") <(histogram_snapshot) |
			awk '$1 == $3 {print $1, $4 - $2}' >> "$DS_WORK/hist-$rate.txt"
	fi
	stop_pid "$pid"
	record "L$rate" "$row" "$round" "$line"
}

# rounds ROWS FUNCTION ARGS: FUNCTION ROW ARGS ROUND for every row, ROUNDS
# times, every other round in reverse order.
rounds() {
	local rows=$1 fn=$2 round list row
	shift 2
	for round in $(seq "$ROUNDS"); do
		list=$rows
		# shellcheck disable=SC2086 # a list of words
		[ $((round % 2)) -eq 1 ] || list=$(printf '%s\n' $rows | tac)
		for row in $list; do
			"$fn" "$row" "$@" "$round"
		done
	done
}

main() {
	local started=$SECONDS line
	ds_say "set-up" >&2
	ds_setup
	# ds_cleanup stops at the first failing command under set -e (a server
	# killed by SIGTERM makes 'wait' fail), leaving the rest running.
	trap 'set +e; ds_cleanup' EXIT
	grep -qs 'outbox_send' "$DS_TOP"/distsys--*.sql ||
		{ echo "run-outbox.sh: the install script has no outbox_send" >&2; exit 1; }
	RESULTS="$DS_WORK/results.tsv"
	build_driver
	start_postgres
	start_broker
	DISTSYS_SOURCE="commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	line=$({ git -C "$DS_TOP" status --porcelain -- extension relay 'distsys--*.sql' 2>/dev/null || true; } | wc -l)
	[ "$line" -eq 0 ] || DISTSYS_SOURCE="$DISTSYS_SOURCE with $line uncommitted file(s) in extension/, relay/ or install scripts"
	RELAY=no RELAY_NOTE=
	relay_works && RELAY=yes
	[ "$RELAY" = yes ] || echo "note: $RELAY_NOTE; its rows print as n/a" >&2

	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	ds_say "database limit: outbox_send, no relay (also the pre-fill)" >&2
	pg_psql -c "TRUNCATE distsys.outbox"
	line=$(ob send --topic bench --count "$PREFILL" --clients 2 --batch 1000)
	record D batch 1 "$line"
	pg_psql -c "CREATE UNLOGGED TABLE bench_prefill AS SELECT * FROM distsys.outbox" \
		-c "TRUNCATE distsys.outbox" -c "VACUUM ANALYZE distsys.outbox"
	for round in $(seq "$ROUNDS"); do
		line=$(ob send --topic bench --count 0 --seconds "$SINGLE_SECONDS" --clients 8 --batch 1)
		record D single "$round" "$line"
	done

	ds_say "throughput: relay, naive relay, broker alone, read+delete alone" >&2
	rounds "relay naive producer drain" throughput_cell
	ds_say "latency: 1,000 and 10,000 msgs/s" >&2
	rounds "relay naive" latency_cell 1000
	rounds "relay naive" latency_cell 10000

	ds_say "report" >&2
	{
		echo "- Run: \`bench/run-outbox.sh$ARGS\` ($MODE: pre-fill $PREFILL rows, naive relay $NAIVE_ROWS rows, $ROUNDS round(s), latency cells ${LAT_SECONDS} s each with ${LAT_WARMUP_MS} ms not counted), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr); load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "- Versions: $(postgres --version), librdkafka $(pkg-config --modversion rdkafka), distsys-kafka-mock (librdkafka mock cluster, 1 broker, $PARTITIONS partitions per topic)"
		echo "- PostgreSQL: $PG_SETTINGS"
		echo "- Messages: $MSG_SIZE-byte text payload, $MSG_KEYS keys, headers distsys-message-id and content-type"
		if [ "$RELAY" = yes ]; then
			echo "- distsys: built from $DISTSYS_SOURCE"
		else
			echo "- distsys-relay: not measured: $RELAY_NOTE"
		fi
		echo
		awk -F'\t' -v dir="$DS_WORK" -f "$BENCH/outbox/report.awk" "$RESULTS"
	} > "$DS_WORK/report.md"
	cat "$DS_WORK/report.md"
	[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
	echo "(total $((SECONDS - started)) s)" >&2
}

main
