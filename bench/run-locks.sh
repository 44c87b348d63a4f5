#!/usr/bin/env bash
# bench/run-locks.sh: the distributed-lock benchmark (issue 3), one command.
#
#   bench/run-locks.sh            full run, about 5 minutes
#   bench/run-locks.sh --quick    smoke run, about 1 minute
#   options: --seconds N (recording time per cell, default 8), --rounds N
#   (split it into N rounds, default 4), --retry-us N (sleep between tries
#   of a busy lock for the polling peers, default 1000), --report FILE
#   (also write the report there), --peers-only (skip building and
#   measuring distsys), --paired N (scenario E's paired rounds, default
#   30; 0 skips it)
#
# Runs distsys and its peers side by side in one run, on loopback only:
# one throwaway PostgreSQL cluster (tools/common.sh; distsys preloaded when
# it builds), redis-server, a single-member etcd and a standalone ZooKeeper,
# each in the temporary directory and stopped by PID at exit.  Every cell
# runs one driver for a warm-up and a recording window; the report prints
# one table per scenario with ratios to pg_advisory_lock measured in the
# same run.  Not a test: it never fails on a figure, only on a broken setup.
#
# Until distsys builds with dlock_try, its rows print as n/a and the peers
# still run; nothing here changes when the extension arrives.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"
DS_PACKAGES="$DS_PACKAGES redis-server etcd-server etcd-client zookeeper
	python3-kazoo libhiredis-dev libcurl4-openssl-dev curl"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
RUN_MS=8000
WARMUP_MS=300
ROUNDS=4
RETRY_US=1000
REPORT_FILE=
MODE=full
PEERS_ONLY=no
PAIRED=30
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) RUN_MS=1000 WARMUP_MS=200 ROUNDS=1 PAIRED=4 MODE=quick ;;
	--paired) PAIRED=$2; shift ;;
	--seconds) RUN_MS=$(($2 * 1000)); shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--retry-us) RETRY_US=$2; shift ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	--peers-only) PEERS_ONLY=yes ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "run-locks.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

# distsys_ready: whether distsys builds and its install script has dlock_try;
# notes in DISTSYS_SOURCE which sources were built.
distsys_ready() {
	local dirty
	DISTSYS_SOURCE="commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	dirty=$(git -C "$DS_TOP" status --porcelain -- extension 'distsys--*.sql' 2>/dev/null | wc -l)
	[ "$dirty" -eq 0 ] || DISTSYS_SOURCE="$DISTSYS_SOURCE with $dirty uncommitted file(s) in extension/ or install scripts"
	make -C "$DS_TOP" -s -j2 >/dev/null 2>&1 || return 1
	[ -f "$DS_TOP/distsys.so" ] && grep -qs 'dlock_try' "$DS_TOP"/distsys--*.sql
}

# setup_without_distsys: ds_setup's temporary directory and settings, for
# the system's PostgreSQL without the extension (which does not build yet).
setup_without_distsys() {
	DS_WORK=$(mktemp -d "${TMPDIR:-/tmp}/distsys.XXXXXX")
	chmod 755 "$DS_WORK"
	trap 'exit 130' INT TERM
	DS_BIN=$(pg_config --bindir)
	export PATH="$DS_BIN:$PATH"
	DS_TEMP_CONFIG="$DS_WORK/distsys-test.conf"
	printf "max_connections = 60\nlisten_addresses = '127.0.0.1'\nfsync = on\n" > "$DS_TEMP_CONFIG"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$DS_WORK"
	return 0
}

# wait_port PORT WHAT: until something listens on 127.0.0.1:PORT (30 s).
wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "run-locks.sh: $2 did not listen on 127.0.0.1:$1 within 30 s (see its log in $DS_WORK)" >&2
	return 1
}

pg_psql() { ds_psql "$PG_PORT" "$@"; }

start_postgres() {
	local note=
	if ! PG_PORT=$(ds_start_node pg); then
		[ "$DISTSYS" = yes ] || return 1
		tail -5 "$DS_WORK/pg.log" >&2
		DISTSYS=no
		DISTSYS_NOTE="PostgreSQL did not start with distsys preloaded (its log is above)"
		sed -i '/shared_preload_libraries/d' "$DS_TEMP_CONFIG"
		PG_PORT=$(ds_start_node pg-plain)
	fi
	if [ "$DISTSYS" = yes ] && ! note=$(pg_psql -c 'CREATE EXTENSION distsys' 2>&1); then
		DISTSYS=no
		DISTSYS_NOTE="CREATE EXTENSION distsys failed: $(echo "$note" | head -1)"
	fi
	PG_SETTINGS=$(pg_psql -At -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name)
		FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method',
		'shared_buffers', 'shared_preload_libraries')")
}

start_redis() {
	REDIS_PORT=$(ds_free_port)
	redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
		--dir "$DS_WORK" --logfile "$DS_WORK/redis.log" &
	DS_PIDS+=($!)
	wait_port "$REDIS_PORT" redis-server
}

start_etcd() {
	local peer
	ETCD_PORT=$(ds_free_port)
	peer=$(ds_free_port)
	etcd --name bench --data-dir "$DS_WORK/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "bench=http://127.0.0.1:$peer" \
		> "$DS_WORK/etcd.log" 2>&1 &
	DS_PIDS+=($!)
	wait_port "$ETCD_PORT" etcd
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$ETCD_PORT/health" | grep -q true && return 0
		sleep 0.1
	done
	echo "run-locks.sh: etcd did not become healthy (see $DS_WORK/etcd.log)" >&2
	return 1
}

# start_zookeeper: standalone, data and transaction log in DS_WORK (fsync on
# every write, ZooKeeper's default), admin HTTP server off.  The jar is where
# Debian's Java policy puts it; its manifest names the dependencies.
start_zookeeper() {
	ZK_PORT=$(ds_free_port)
	mkdir -p "$DS_WORK/zk"
	cat > "$DS_WORK/zoo.cfg" <<-CFG
	dataDir=$DS_WORK/zk
	clientPort=$ZK_PORT
	clientPortAddress=127.0.0.1
	tickTime=2000
	maxClientCnxns=200
	admin.enableServer=false
	CFG
	java -Xmx512m -cp /usr/share/java/zookeeper.jar \
		org.apache.zookeeper.server.ZooKeeperServerMain "$DS_WORK/zoo.cfg" \
		> "$DS_WORK/zookeeper.log" 2>&1 &
	DS_PIDS+=($!)
	wait_port "$ZK_PORT" ZooKeeper
}

# zk_python: a Python 3 that has kazoo (Debian's, if the first python3 on
# PATH is another installation).
zk_python() {
	local py
	for py in python3 /usr/bin/python3; do
		"$py" -c 'import kazoo' 2>/dev/null && { echo "$py"; return 0; }
	done
	echo "run-locks.sh: no python3 with kazoo (apt-get install python3-kazoo)" >&2
	return 1
}

build_driver() {
	# shellcheck disable=SC2046
	gcc -O2 -Wall -pthread $(pkg-config --cflags libpq hiredis libcurl) \
		"$BENCH"/locks/*.c "$BENCH"/common/*.c $(pkg-config --libs libpq hiredis libcurl) -lm -o "$DS_WORK/lockbench"
}

# cell SCENARIO ROUND ROW LABEL CLIENT KEPT TARGET ARGS...: run one driver
# and append its line to the results, or an n/a line with its first error.
cell() {
	local scen=$1 round=$2 row=$3 label=$4 client=$5 kept=$6 target=$7 port cmd line err
	shift 7
	case "$target" in
	pg-dlock*)
		if [ "$DISTSYS" != yes ]; then
			printf '%s\t%s\t%s\t%s\t%s\tna=distsys\n' "$scen" "$row" "$label" "$client" "$kept" >> "$RESULTS"
			return 0
		fi
		port=$PG_PORT ;;
	pg-*) port=$PG_PORT ;;
	redis) port=$REDIS_PORT ;;
	etcd-*) port=$ETCD_PORT ;;
	zk) port=$ZK_PORT ;;
	esac
	if [ "$target" = zk ]; then
		cmd=("$PY" "$BENCH/locks/zk_lock.py")
	else
		cmd=("$DS_WORK/lockbench" --target "$target")
	fi
	if line=$(timeout $(((WARMUP_MS + RUN_MS / ROUNDS) / 1000 + 90)) "${cmd[@]}" \
		--port "$port" --warmup-ms "$WARMUP_MS" --run-ms $((RUN_MS / ROUNDS)) \
		--retry-us "$RETRY_US" --prefix "$scen$round-$row" "$@" \
		< /dev/null 2> "$DS_WORK/cell.err"); then
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$row" "$label" "$client" "$kept" "$line" >> "$RESULTS"
		printf '  %s%s %-10s %s\n' "$scen" "$round" "$row" "$(echo "$line" |
			grep -o '\bops_s=[^ ]*\|\bp50_us=[^ ]*\|ho_p50_us=[^ ]*\|errors=[^ ]*' | tr '\n' ' ')" >&2
	else
		err=$(grep -v '^\s*$' "$DS_WORK/cell.err" | head -1 | tr '\t' ' ')
		printf '%s\t%s\t%s\t%s\t%s\tna=%s\n' "$scen" "$row" "$label" "$client" "$kept" "${err:-driver failed}" >> "$RESULTS"
		printf '  %s%s %-10s failed: %s\n' "$scen" "$round" "$row" "${err:-driver failed}" >&2
	fi
	if [ -s "$DS_WORK/cell.err" ]; then sed 's/^/     /' "$DS_WORK/cell.err" | head -5 >&2; fi
	return 0
}

# The rows of scenarios A (1 client) and B (8 clients, a name each):
# key | label | client library | where a grant is kept | driver target |
# driver options.
ROWS_UNCONTENDED="
dlock_try|distsys dlock_try + dlock_release (session)|C, libpq|memory (session)|pg-dlock|
dlock_acq|distsys dlock_acquire + dlock_release (session)|C, libpq|memory (session)|pg-dlock|--wait
adv_try|pg_try_advisory_lock + pg_advisory_unlock|C, libpq|memory (session)|pg-advisory|
adv|pg_advisory_lock + pg_advisory_unlock|C, libpq|memory (session)|pg-advisory|--wait
app|distsys dlock_try + dlock_release, owner 'app-N'|C, libpq|WAL, fsync per call|pg-dlock-app|
uniq|unique index: INSERT + DELETE|C, libpq|WAL, fsync per call|pg-unique|
redis|Redis SET NX PX + EVALSHA compare-and-delete|C, hiredis|memory, no persistence|redis|
etcd_txn|etcd lease grant + txn put-if-absent; lease revoke|C, libcurl, JSON gateway|raft WAL, fsync per write|etcd-txn|
etcd_lock|etcd lock API (v3lock, session lease)|C, libcurl, JSON gateway|raft WAL, fsync per write|etcd-lock|--wait
zk|ZooKeeper lock recipe (kazoo Lock)|Python, kazoo, 1 process each|txn log, fsync per write|zk|--wait"

# Scenario C: 8 clients on one name, blocking where the peer has a blocking
# acquire, else a try every --retry-us; hand-off latency (D) in the same cells.
ROWS_CONTENDED="
dlock_acq|distsys dlock_acquire + dlock_release (session)|C, libpq|memory (session)|pg-dlock|--wait
adv|pg_advisory_lock + pg_advisory_unlock|C, libpq|memory (session)|pg-advisory|--wait
app_acq|distsys dlock_acquire + dlock_release, owner 'app-N'|C, libpq|WAL, fsync per call|pg-dlock-app|--wait
uniq|unique index: INSERT (retry on 23505) + DELETE|C, libpq|WAL, fsync per call|pg-unique|
redis|Redis SET NX PX (retry) + EVALSHA|C, hiredis|memory, no persistence|redis|
etcd_lock|etcd lock API (v3lock, session lease)|C, libcurl, JSON gateway|raft WAL, fsync per write|etcd-lock|--wait
zk|ZooKeeper lock recipe (kazoo Lock)|Python, kazoo, 1 process each|txn log, fsync per write|zk|--wait"

# scenario NAME "DRIVER OPTIONS" ROWS: every row, in ROUNDS rounds that
# split the recording time, every other round in reverse order, so that a
# change in the machine's load falls on all rows alike.  The report adds
# the rounds up.
scenario() {
	local s=$1 opts=$2 rows=$3 round list row label client kept target extra
	for round in $(seq "$ROUNDS"); do
		list=$rows
		[ $((round % 2)) -eq 1 ] || list=$(printf '%s\n' "$rows" | tac)
		while IFS='|' read -r row label client kept target extra; do
			[ -n "$row" ] || continue
			# shellcheck disable=SC2086
			cell "$s" "$round" "$row" "$label" "$client" "$kept" "$target" $opts $extra
		done <<< "$list"
	done
}

# paired: scenario E.  The 1-client durable rows (app-owned distsys and the
# unique index) in PAIRED short rounds of one cell each, in alternating
# order, so that each round compares the two under the same machine
# conditions; the report gives the median of the per-round ratios with its
# quartiles.  On a machine whose disk latency swings by 2x between
# seconds, a few long cells cannot resolve a few percent; many pairs can.
paired() {
	local round row desc target saved=$RUN_MS saved_rounds=$ROUNDS
	RUN_MS=2000 ROUNDS=1
	for round in $(seq "$PAIRED"); do
		for row in app uniq; do
			[ $((round % 2)) -eq 1 ] || row=$([ "$row" = app ] && echo uniq || echo app)
			desc=$(printf '%s\n' "$ROWS_UNCONTENDED" | awk -F'|' -v r="$row" '$1 == r { print $2 }')
			target=$(printf '%s\n' "$ROWS_UNCONTENDED" | awk -F'|' -v r="$row" '$1 == r { print $5 }')
			# the label column carries the round number for report.awk
			cell E "$round" "$row" "$round" "C, libpq" "$desc" "$target" --clients 1
		done
	done
	RUN_MS=$saved ROUNDS=$saved_rounds
}

main() {
	local started=$SECONDS
	ds_say "set-up" >&2
	ds_install_packages
	DISTSYS=no
	DISTSYS_NOTE="distsys does not build yet with dlock_try (run 'make' to see why)"
	[ "$PEERS_ONLY" = no ] || DISTSYS_NOTE="--peers-only"
	if [ "$PEERS_ONLY" = no ] && distsys_ready; then
		DISTSYS=yes DISTSYS_NOTE=
		ds_setup
	else
		setup_without_distsys
	fi
	# ds_cleanup stops at the first failing command under set -e (a server
	# killed by SIGTERM makes 'wait' fail), leaving the rest running.
	trap 'set +e; ds_cleanup' EXIT
	RESULTS="$DS_WORK/results.tsv"
	PY=$(zk_python)
	build_driver
	start_postgres
	start_redis
	start_etcd
	start_zookeeper
	[ "$DISTSYS" = yes ] || echo "note: $DISTSYS_NOTE; its rows print as n/a" >&2

	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	ds_say "A: 1 client" >&2
	scenario A "--clients 1" "$ROWS_UNCONTENDED"
	ds_say "B: 8 clients, distinct names" >&2
	scenario B "--clients 8" "$ROWS_UNCONTENDED"
	ds_say "C: 8 clients, one name (and D: hand-off)" >&2
	scenario C "--clients 8 --contend" "$ROWS_CONTENDED"
	if [ "$PAIRED" -gt 0 ]; then
		ds_say "E: durable rows, 1 client, $PAIRED paired rounds" >&2
		paired
	fi

	ds_say "report" >&2
	{
		echo "- Run: \`bench/run-locks.sh$ARGS\` ($MODE: per cell $ROUNDS round(s) of ${WARMUP_MS} ms warm-up + $((RUN_MS / ROUNDS)) ms recorded; polling peers retry every ${RETRY_US} us), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr); load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "- Versions: $(postgres --version), redis $(redis-server --version | grep -o 'v=[^ ]*' | cut -c3-), etcd $(etcd --version | head -1 | awk '{print $3}'), ZooKeeper $(dpkg-query -W -f='${Version}' zookeeper), kazoo $(dpkg-query -W -f='${Version}' python3-kazoo), libcurl $(curl-config --version 2>/dev/null | awk '{print $2}')"
		echo "- PostgreSQL: $PG_SETTINGS"
		if [ "$DISTSYS" = yes ]; then
			echo "- distsys: built from $DISTSYS_SOURCE"
		else
			echo "- distsys: not measured: $DISTSYS_NOTE"
		fi
		echo
		awk -F'\t' -f "$BENCH/common/hist.awk" -f "$BENCH/locks/report.awk" "$RESULTS"
	} > "$DS_WORK/report.md"
	cat "$DS_WORK/report.md"
	[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
	echo "(total $((SECONDS - started)) s)" >&2
}

main
