#!/usr/bin/env bash
# bench/run-raft-kv.sh: distsys' Raft key-value store among three
# PostgreSQL nodes against a three-member etcd cluster (issue 16), one
# command.  (bench/run-raft.sh measures the Raft core in the simulator.)
#
#   bench/run-raft-kv.sh            full run, about 9 minutes
#   bench/run-raft-kv.sh --quick    smoke run, about 1 minute
#   options: --seconds N (recording time per cell and round, default 4),
#   --rounds N (run every cell N times, default 3), --kills N
#   (leader kills of the election experiment, default 100; 0 skips it),
#   --etcd-kills N (etcd's, default the smaller of --kills and 20),
#   --keys N (keys written and read, default 1000), --rtt-ms R (every
#   link through distsys-netem at round-trip time R ms; see below),
#   --report FILE (also write the report there)
#
# On loopback only, in one temporary directory (tools/common.sh): three
# PostgreSQL servers with distsys preloaded (node ids 1-3, fsync on, the
# default Raft timeouts) and three etcd members (own data directories,
# fsync on, etcd's defaults), all stopped by PID at exit.  Each cell runs
# bench/raftkv/kvbench: put (raft_put of a small JSON value / etcd
# PUT /v3/kv/put) or get (linearizable raft_get / etcd range with
# serializable false): 1 client sent to the leader or to a follower, and 16
# clients all sent to the leader or spread over the three members
# round-robin (a follower forwards to the leader, in both systems).  Around
# each cell it reads the servers' CPU time (/proc/PID/stat) and, when
# 'perf' can count tracepoints, their fsync and fdatasync calls.  Then the
# election experiment: SIGKILL the distsys leader's node (its postmaster
# and every child at once, as a crash), time the first raft_put that
# succeeds through another member (their sessions with
# distsys.raft_request_timeout = 300 ms), restart the node, wait until it
# has caught up, repeat; then the same for etcd (SIGKILL of the leading
# member, a client per other member with a 300 ms request timeout, the
# member restarted and healthy again before the next kill).  Not a test:
# it never fails on a figure.
#
# Apart (issue 18): with --rtt-ms R, one distsys-netem process carries
# every link at R/2 ms one way: a link per distsys node (distsys.peers
# and the clients name its port, so node-to-node and client-to-node
# traffic both cross it), and per etcd member one for its clients and one
# for its peers (advertised URLs and --initial-cluster name the links;
# the members listen on their own ports).  The report ends with the
# emulator's byte counts per link.  --rtt-ms 0 still goes through the
# emulator (its own cost, the baseline for R); without the option
# nothing does.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"
# shellcheck source-path=SCRIPTDIR source=common/distsys-nodes.sh
. "$BENCH/common/distsys-nodes.sh"
# shellcheck source-path=SCRIPTDIR source=common/netem.sh
. "$BENCH/common/netem.sh"
DS_PACKAGES="$DS_PACKAGES etcd-server etcd-client libcurl4-openssl-dev curl"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
RUN_MS=4000
ROUNDS=3
WARMUP_MS=1000
KILLS=100
ETCD_KILLS=
KEYS=1000
RTT_MS=
REPORT_FILE=
MODE=full
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) RUN_MS=1500 WARMUP_MS=300 ROUNDS=1 KILLS=5 MODE=quick ;;
	--seconds) RUN_MS=$(($2 * 1000)); shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--kills) KILLS=$2; shift ;;
	--etcd-kills) ETCD_KILLS=$2; shift ;;
	--keys) KEYS=$2; shift ;;
	--rtt-ms) RTT_MS=$2; shift ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "run-raft-kv.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$ETCD_KILLS" ] || ETCD_KILLS=$((KILLS < 20 ? KILLS : 20))

# --- the etcd cluster (the distsys one: bench/common/distsys-nodes.sh) ----

# pick_etcd_ports: the members' client ports (ETCD_PORTS) and peer ports
# (ETCD_PEER), on which they listen.
pick_etcd_ports() {
	local i
	for i in 1 2 3; do
		ETCD_PORTS[i]=$(ds_free_port)
		ETCD_PEER[i]=$(ds_free_port)
	done
}

# start_etcd: the three members; the URLs they advertise, and the ports
# the clients use (ETCD_CLIENT_PORTS), are the emulator's links when it runs.
start_etcd() {
	local i
	ETCD_CLUSTER=
	for i in 1 2 3; do
		ETCD_CLIENT_PORTS[i]=$(via_netem "ec$i" "${ETCD_PORTS[i]}")
		ETCD_CLUSTER="$ETCD_CLUSTER,e$i=http://127.0.0.1:$(via_netem "ep$i" "${ETCD_PEER[i]}")"
	done
	ETCD_CLUSTER=${ETCD_CLUSTER#,}
	for i in 1 2 3; do start_etcd_member "$i"; done
	for i in 1 2 3; do
		wait_until 60 "etcd member $i healthy" etcd_healthy "${ETCD_PORTS[i]}"
	done
}

# start_etcd_member I: member I, first or again (a restart keeps its data
# directory, and etcd then ignores the --initial-* flags).
start_etcd_member() {
	local i=$1
	etcd --name "e$i" --data-dir "$DS_WORK/etcd$i" \
		--listen-client-urls "http://127.0.0.1:${ETCD_PORTS[i]}" \
		--advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORTS[i]}" \
		--listen-peer-urls "http://127.0.0.1:${ETCD_PEER[i]}" \
		--initial-advertise-peer-urls "http://127.0.0.1:$(via_netem "ep$i" "${ETCD_PEER[i]}")" \
		--initial-cluster "$ETCD_CLUSTER" --initial-cluster-token kvbench \
		--initial-cluster-state new >> "$DS_WORK/etcd$i.log" 2>&1 &
	ETCD_PIDS[i]=$!
	DS_PIDS+=($!)
}

etcd_healthy() { curl -fs "http://127.0.0.1:$1/health" | grep -q '"health":"true"'; }

# etcd_leader: prints the number (1-3) of the member that leads.
etcd_leader() {
	local i status
	for i in 1 2 3; do
		status=$(curl -fs -X POST -d '{}' "http://127.0.0.1:${ETCD_PORTS[i]}/v3/maintenance/status")
		if [ "$(echo "$status" | grep -o '"member_id":"[0-9]*"' | cut -d'"' -f4)" = \
			"$(echo "$status" | grep -o '"leader":"[0-9]*"' | cut -d'"' -f4)" ]; then
			echo "$i"
			return 0
		fi
	done
	return 1
}

# --- measuring -------------------------------------------------------------

build_driver() {
	# shellcheck disable=SC2046
	gcc -O2 -Wall -pthread $(pkg-config --cflags libpq libcurl) \
		"$BENCH"/raftkv/*.c "$BENCH"/common/*.c $(pkg-config --libs libpq libcurl) -lm -o "$DS_WORK/kvbench"
}

# server_pids SYSTEM: the system's server processes, comma-separated: for
# PostgreSQL the three postmasters and their children (the clients'
# backends come and go with each cell), for etcd the three members.
server_pids() {
	if [ "$1" = distsys ]; then
		distsys_pids
	else
		(IFS=,; echo "${ETCD_PIDS[*]:1}")
	fi
}

# cpu_ticks SYSTEM: CPU time (clock ticks) the system's servers have used,
# their reaped children included: the clients' backends end with the cell.
cpu_ticks() { pids_cpu_ticks "$(server_pids "$1")"; }

# idle_cpu SYSTEM: milliseconds of CPU per second the system's servers use
# with no client (ticks, heartbeats), over 4 s.
idle_cpu() {
	local before after
	before=$(cpu_ticks "$1")
	sleep 4
	after=$(cpu_ticks "$1")
	echo $(((after - before) * 1000 / $(getconf CLK_TCK) / 4))
}

# cell_ports SYSTEM DEST: the ports kvbench's clients use, comma-separated
# (client i takes the i-th, modulo their number); DEST is leader, follower
# (the member after the leader) or spread (all three).
cell_ports() {
	local l
	if [ "$1" = distsys ]; then
		local -n ports_of=CLIENT_PORTS
		l=$(distsys_leader)
	else
		local -n ports_of=ETCD_CLIENT_PORTS
		l=$(etcd_leader)
	fi
	case "$2" in
	leader) echo "${ports_of[l]}" ;;
	follower) echo "${ports_of[l % 3 + 1]}" ;;
	spread) echo "${ports_of[1]},${ports_of[2]},${ports_of[3]}" ;;
	esac
}

# cell SYSTEM OP CLIENTS DEST: one kvbench run; appends its line to RESULTS.
cell() {
	local sys=$1 op=$2 n=$3 dest=$4 ports before after line syncs=na
	ports=$(cell_ports "$sys" "$dest")
	before=$(cpu_ticks "$sys")
	local cmd=("$DS_WORK/kvbench" --target "$sys" --ports "$ports" --op "$op" --clients "$n"
		--keys "$KEYS" --warmup-ms "$WARMUP_MS" --run-ms "$RUN_MS" --prefix kv)
	# perf -p counts the processes that exist now (all their threads), not
	# the clients' backends, which commit nothing of their own
	[ "$PERF" = no ] || cmd=(perf stat -p "$(server_pids "$sys")" -x ',' -o "$DS_WORK/perf.out"
		-e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync' -- "${cmd[@]}")
	if ! line=$("${cmd[@]}" 2> "$DS_WORK/cell.err"); then
		line="na=$(head -1 "$DS_WORK/cell.err")"
	fi
	sleep 0.3	# let the postmasters reap the clients' backends
	after=$(cpu_ticks "$sys")
	[ "$PERF" = no ] || syncs=$(awk -F, '$3 ~ /sys_enter_f(data)?sync/ { s += $1 } END { print s + 0 }' "$DS_WORK/perf.out")
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$op" "$n" "$dest" \
		"cpu_ticks=$((after - before)) hz=$(getconf CLK_TCK) syncs=$syncs ports=$ports" "$line" >> "$RESULTS"
	printf '  %-7s %s %2s clients to %-8s %s\n' "$sys" "$op" "$n" "$dest" \
		"$(echo "$line" | grep -o 'ops_s=[^ ]*\|p50_us=[^ ]*\|p99_us=[^ ]*\|errors=[^ ]*\|^na=.*' | tr '\n' ' ')" >&2
}

# throughput: every cell in ROUNDS rounds, distsys and etcd back to back
# per configuration (etcd first in every other round), so that a change in
# the machine's load falls on both alike.  The report adds the rounds up.
throughput() {
	local round op cfg sys order
	for round in $(seq "$ROUNDS"); do
		order="distsys etcd"
		[ $((round % 2)) -eq 1 ] || order="etcd distsys"
		for op in put get; do
			for cfg in 1:leader 1:follower 16:leader 16:spread; do
				for sys in $order; do
					cell "$sys" "$op" "${cfg%:*}" "${cfg#*:}"
				done
			done
		done
	done
}

# kill_leader: one election trial; appends its line to ELECTIONS.
kill_leader() {
	local l pm kids others=() i line index pid
	l=$(distsys_leader)
	pm=$(postmaster_pid "$l")
	mapfile -t kids < <(pgrep -P "$pm")
	for i in 1 2 3; do [ "$i" = "$l" ] || others+=("${CLIENT_PORTS[i]}"); done
	# the whole node at once, as a crash: a postmaster killed alone leaves
	# its Raft worker leading until it notices, and a write sent meanwhile
	# commits through it
	line=$("$DS_WORK/kvbench" --target distsys --ports "$(IFS=,; echo "${others[*]}")" \
		--kill "$pm$(printf ',%s' "${kids[@]}")" --timeout-ms 300 --prefix el \
		2>> "$DS_WORK/election.err") ||
		line="na=kvbench failed"
	echo "$line" >> "$ELECTIONS"
	# a straggler would keep the old shared memory and block the restart
	for pid in "${kids[@]}"; do
		wait_until 10 "exit of PID $pid" sh -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid"
	done
	start_node "$l"
	wait_until 60 "a distsys leader" distsys_leader >/dev/null
	index=$(ds_psql "${PG_PORTS[$(distsys_leader)]}" -At -c 'SELECT commit_index FROM distsys.raft_status')
	wait_until 60 "node $l catching up" caught_up "$l" "$index"
}

# kill_etcd_leader: the same trial for etcd: SIGKILL of the leading
# member, the first put through another; the member is restarted and
# healthy (it has a leader and answers a linearizable read) before the next.
kill_etcd_leader() {
	local l others=() i line
	l=$(etcd_leader)
	for i in 1 2 3; do [ "$i" = "$l" ] || others+=("${ETCD_CLIENT_PORTS[i]}"); done
	line=$("$DS_WORK/kvbench" --target etcd --ports "$(IFS=,; echo "${others[*]}")" \
		--kill "${ETCD_PIDS[l]}" --timeout-ms 300 --prefix el \
		2>> "$DS_WORK/election.err") ||
		line="na=kvbench failed"
	echo "$line" >> "$ELECTIONS"
	# reaped here, quietly (bash would report the killed job)
	wait "${ETCD_PIDS[l]}" 2>/dev/null || true
	forget_pid "${ETCD_PIDS[l]}"
	start_etcd_member "$l"
	wait_until 60 "etcd member $l healthy" etcd_healthy "${ETCD_PORTS[l]}"
	wait_until 60 "an etcd leader" etcd_leader >/dev/null
}

elections() {
	local k
	for k in $(seq "$KILLS"); do
		kill_leader
		[ $((k % 10)) -ne 0 ] || echo "  $k kills: $(tail -1 "$ELECTIONS")" >&2
	done
	for k in $(seq "$ETCD_KILLS"); do
		kill_etcd_leader
		[ $((k % 10)) -ne 0 ] || echo "  etcd, $k kills: $(tail -1 "$ELECTIONS")" >&2
	done
}

report() {
	echo "- Run: \`bench/run-raft-kv.sh$ARGS\` ($MODE: per cell $ROUNDS round(s) of ${WARMUP_MS} ms warm-up + ${RUN_MS} ms recorded, $KEYS keys; $KILLS distsys and $ETCD_KILLS etcd leader kills), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(uname -sr); load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Versions: $(postgres --version), etcd $(etcd --version | head -1 | awk '{print $3}'), libcurl $(curl-config --version 2>/dev/null | awk '{print $2}')"
	echo "- PostgreSQL (each node): $PG_SETTINGS"
	echo "- CPU the three servers use per second with no client, before the cells: $IDLE"
	echo "- Disk: a 4 kB write with O_DSYNC takes $SYNC_BEFORE ms on average before the cells, $(sync_write_ms) ms after (dd, 200 writes)"
	echo "- Links: $(links_line)"
	echo "- fsync counts: $([ "$PERF" = no ] && echo "not measured (perf cannot count syscall tracepoints here)" || echo "perf stat -p, syscalls:sys_enter_fsync + sys_enter_fdatasync of the servers' processes (PostgreSQL: postmaster and the children it had when the cell started, so not the clients' backends; etcd: every thread) during the cell")"
	echo
	awk -F'\t' -f "$BENCH/common/hist.awk" -f "$BENCH/raftkv/report.awk" "$RESULTS" "$ELECTIONS"
	[ -z "$NETEM_PID" ] || netem_report "pgI: distsys node I, node-to-node and clients; ecI / epI: etcd member I's clients / peers"
}

# links_line: how the clients and servers reach each other.
links_line() {
	if [ -z "$NETEM_PID" ]; then
		echo "loopback, direct"
	else
		echo "every distsys node-to-node and client-to-node link, and every etcd peer and client link, through one distsys-netem, $NETEM_DELAY ms one way in each direction (RTT $RTT_MS ms)"
	fi
}

main() {
	local started=$SECONDS
	ds_say "set-up" >&2
	ds_setup
	# ds_cleanup stops at the first failing command under set -e
	trap 'set +e; ds_cleanup' EXIT
	RESULTS="$DS_WORK/results.tsv"
	ELECTIONS="$DS_WORK/elections.txt"
	: > "$RESULTS"
	: > "$ELECTIONS"
	build_driver
	PERF=yes
	perf_works || PERF=no
	pick_distsys_ports
	pick_etcd_ports
	if [ -n "$RTT_MS" ]; then
		start_netem "$RTT_MS" pg1="${PG_PORTS[1]}" pg2="${PG_PORTS[2]}" pg3="${PG_PORTS[3]}" \
			ec1="${ETCD_PORTS[1]}" ec2="${ETCD_PORTS[2]}" ec3="${ETCD_PORTS[3]}" \
			ep1="${ETCD_PEER[1]}" ep2="${ETCD_PEER[2]}" ep3="${ETCD_PEER[3]}"
	fi
	start_distsys
	start_etcd
	PG_SETTINGS=$(ds_psql "${PG_PORTS[1]}" -At -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name)
		FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method',
		'shared_buffers', 'distsys.raft_election_timeout', 'distsys.raft_heartbeat_interval')")
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	SYNC_BEFORE=$(sync_write_ms)
	IDLE="distsys $(idle_cpu distsys) ms, etcd $(idle_cpu etcd) ms"
	ds_say "throughput and latency" >&2
	throughput
	if [ "$KILLS" -gt 0 ] || [ "$ETCD_KILLS" -gt 0 ]; then
		ds_say "election after leader loss, $KILLS + $ETCD_KILLS kills" >&2
		elections
	fi
	ds_say "report" >&2
	report > "$DS_WORK/report.md"
	cat "$DS_WORK/report.md"
	[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
	echo "(total $((SECONDS - started)) s)" >&2
}

main
