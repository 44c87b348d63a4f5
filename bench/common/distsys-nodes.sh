# shellcheck shell=bash
# bench/common/distsys-nodes.sh: the three-node distsys cluster the
# benchmarks among nodes share (bench/run-raft-kv.sh, bench/run-paxos.sh).
#
# Sourced after tools/common.sh and ds_setup, not run.  pick_distsys_ports
# chooses the nodes' ports (PG_PORTS[1..3]); start_distsys starts nodes
# raft1..raft3 in DS_WORK on loopback (node ids 1-3, one distsys.peers for
# all) as the unprivileged user, creates the extension and waits for a
# leader; ds_cleanup stops them.  The other functions look at that
# cluster: who leads, whether a node caught up, which processes are its
# servers and how much CPU they used.
#
# Apart (issue 18): when the script started distsys-netem (netem.sh's
# netem_start) with a link pgI to each node's port before start_distsys,
# distsys.peers lists those links' ports, so every node reaches node I
# through link pgI, and CLIENT_PORTS[I] is that port too, for the clients.
# Otherwise CLIENT_PORTS is PG_PORTS.  The scripts' own status queries go
# to PG_PORTS directly: they are not measured.

# wait_until SECONDS WHAT CMD...: run CMD every 50 ms until it succeeds.
wait_until() {
	local limit=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + limit))
	until "$@"; do
		if [ $SECONDS -ge $deadline ]; then
			echo "${0##*/}: $what not within $limit s (logs in $DS_WORK)" >&2
			return 1
		fi
		sleep 0.05
	done
}

# pick_distsys_ports: PG_PORTS[1..3], free ports for the three nodes.
pick_distsys_ports() {
	local i
	for i in 1 2 3; do PG_PORTS[i]=$(ds_free_port); done
}

# start_distsys: nodes raft1..raft3, one peers setting for all of them (a
# node's own URI, through the emulator or not, reaches itself: raft_self.c
# checks that once at start).
start_distsys() {
	local i peers=
	[ -n "${PG_PORTS[1]:-}" ] || pick_distsys_ports
	for i in 1 2 3; do
		CLIENT_PORTS[i]=$(via_netem "pg$i" "${PG_PORTS[i]}")
		peers="$peers $i=postgresql://127.0.0.1:${CLIENT_PORTS[i]}/postgres"
	done
	for i in 1 2 3; do
		ds_init_node "raft$i" "${PG_PORTS[i]}"
		printf "distsys.node_id = %d\ndistsys.peers = '%s'\n" "$i" "${peers# }" \
			>> "$DS_WORK/raft$i/postgresql.conf"
		start_node "$i"
	done
	for i in 1 2 3; do
		ds_psql "${PG_PORTS[i]}" -c 'CREATE EXTENSION distsys' >/dev/null
	done
	wait_until 60 "a distsys leader" distsys_leader >/dev/null
}

# start_netem RTT_MS NAME=PORT...: distsys-netem in DS_WORK/netem with a
# link NAME to 127.0.0.1:PORT each, RTT_MS / 2 of delay each way
# (NETEM_DELAY).
start_netem() {
	local link args=()
	NETEM_DELAY=$(awk -v r="$1" 'BEGIN { print r / 2 }')
	shift
	for link in "$@"; do args+=(--link "${link%%=*}=0:127.0.0.1:${link#*=}"); done
	netem_start "$DS_WORK/netem" "$NETEM_DELAY" "${args[@]}"
}

# via_netem NAME PORT: the port that reaches server port PORT: link NAME's
# when distsys-netem runs, PORT itself otherwise.
via_netem() {
	if [ -n "${NETEM_PID:-}" ]; then netem_port "$1"; else echo "$2"; fi
}

# netem_report LEGEND: distsys-netem's counters at the end of a run, for
# the report (LEGEND says what the links are).
netem_report() {
	printf '\ndistsys-netem'"'"'s counters at the end (%s):\n\n' "$1"
	netem_stats | sed 's/^stats /    /'
}

# start_node ID: start node ID; pg_ctl's note about the stale postmaster.pid
# a killed node leaves is expected here, and filtered out.
start_node() {
	ds_runuser pg_ctl -D "$DS_WORK/raft$1" -l "$DS_WORK/raft$1.log" -w start 2>&1 >/dev/null |
		grep -v 'another server might be running' >&2 || true
}

# forget_pid PID: take PID, which has ended, off the list ds_cleanup stops.
forget_pid() {
	local pid keep=()
	for pid in "${DS_PIDS[@]}"; do
		[ "$pid" = "$1" ] || keep+=("$pid")
	done
	DS_PIDS=("${keep[@]}")
}

postmaster_pid() { head -1 "$DS_WORK/raft$1/postmaster.pid"; }

# distsys_leader: prints the id all three nodes name as leader when they
# agree and it says it leads; fails otherwise.
distsys_leader() {
	local i out ids='' leads=''
	for i in 1 2 3; do
		out=$(ds_psql "${PG_PORTS[i]}" -At -F' ' -c \
			'SELECT coalesce(leader, 0), role FROM distsys.raft_status' 2>/dev/null) || return 1
		ids="$ids ${out%% *}"
		[ "${out#* }" != leader ] || leads=$i
	done
	[ -n "$leads" ] && [ "$(echo "$ids" | tr ' ' '\n' | sort -u | grep -c .)" -eq 1 ] &&
		[ "${ids# }" = "$leads $leads $leads" ] && echo "$leads"
}

# caught_up ID INDEX: node ID follows a leader and has applied INDEX.
caught_up() {
	local out
	out=$(ds_psql "${PG_PORTS[$1]}" -At -c "SELECT role = 'follower' AND leader IS NOT NULL
		AND applied_index >= $2 FROM distsys.raft_status" 2>/dev/null) && [ "$out" = t ]
}

# distsys_pids: the three postmasters and their children, comma-separated
# (the clients' backends come and go with each run).
distsys_pids() {
	local i pids=
	for i in 1 2 3; do
		pids="$pids,$(postmaster_pid "$i"),$(pgrep -d, -P "$(postmaster_pid "$i")")"
	done
	echo "$pids" | sed 's/^,*//; s/,,*/,/g; s/,$//'
}

# pids_cpu_ticks PIDS: CPU time (clock ticks) the comma-separated processes
# have used, their reaped children included.
pids_cpu_ticks() {
	local pid
	for pid in $(echo "$1" | tr , ' '); do cat "/proc/$pid/stat" 2>/dev/null; done |
		sed 's/^.*) //' | awk '{ t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}

# perf_works: whether perf can count the sync system calls of a process.
perf_works() {
	command -v perf >/dev/null &&
		perf stat -x, -p $$ -e syscalls:sys_enter_fdatasync -o /dev/null -- true 2>/dev/null
}

# sync_write_ms: mean time of a 4 kB write with O_DSYNC in DS_WORK (the
# disk all the servers share), over 200 writes.
sync_write_ms() {
	dd if=/dev/zero of="$DS_WORK/dsync.test" bs=4k count=200 oflag=dsync 2>&1 |
		awk '/copied/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^s,?$/) { printf "%.2f", $i * 1000 / 200; exit } }'
	rm -f "$DS_WORK/dsync.test"
}
