# shellcheck shell=bash
# bench/common/netem-links.sh: one distsys-netem (relay/netem*.c) between
# the servers of a benchmark and their clients (issue 18).
#
# Sourced after tools/common.sh and ds_setup, not run.  netem_start
# starts one emulator process with a link per server port, each listening
# on a port the kernel picks (NETEM_PORT[NAME]); netem_port says which
# port to give out for a server's port (the link's, or the server's own
# when no emulator runs); netem_cmd sends a control command and waits for
# its answer; netem_stats prints the per-link counters.  The emulator is
# stopped by ds_cleanup with the servers.

declare -gA NETEM_PORT=()
NETEM_PID=

# netem_start ONE_WAY_MS NAME=PORT...: the emulator, a link NAME to
# 127.0.0.1:PORT each, ONE_WAY_MS of delay in each direction of each.
netem_start() {
	local delay=$1 link name port args=()
	shift
	for link in "$@"; do args+=(--link "${link%%=*}=0:127.0.0.1:${link#*=}"); done
	mkfifo "$DS_WORK/netem.ctl"
	"${NETEM_BIN:-$DS_TOP/relay/distsys-netem}" "${args[@]}" --delay-ms "$delay" \
		--control "$DS_WORK/netem.ctl" --ports-file "$DS_WORK/netem.ports" \
		> "$DS_WORK/netem.out" 2> "$DS_WORK/netem.err" &
	NETEM_PID=$!
	DS_PIDS+=("$NETEM_PID")
	wait_until 10 "distsys-netem's ports" test -s "$DS_WORK/netem.ports"
	while read -r name port; do NETEM_PORT[$name]=$port; done < "$DS_WORK/netem.ports"
}

# netem_port NAME PORT: the port that reaches PORT: link NAME's when the
# emulator runs, PORT itself otherwise.
netem_port() {
	if [ -n "$NETEM_PID" ]; then echo "${NETEM_PORT[$1]}"; else echo "$2"; fi
}

# netem_cmd CMD...: send one control command; fails if the emulator
# answers with an error or not within 5 s.
netem_cmd() {
	local before
	before=$(wc -l < "$DS_WORK/netem.out")
	echo "$*" > "$DS_WORK/netem.ctl"
	wait_until 5 "distsys-netem's answer to '$*'" \
		sh -c "tail -n +$((before + 1)) '$DS_WORK/netem.out' | grep -q '^\(ok\|error:\) '" &&
		! tail -n +$((before + 1)) "$DS_WORK/netem.out" | grep '^error: ' >&2
}

# netem_stats: the emulator's "stats NAME conns=... up_bytes=..." lines,
# one per link.
netem_stats() {
	local before
	before=$(wc -l < "$DS_WORK/netem.out")
	netem_cmd stats &&
		wait_until 5 "distsys-netem's stats" sh -c "[ \$(tail -n +$((before + 1)) '$DS_WORK/netem.out' |
			grep -c '^stats ') -ge ${#NETEM_PORT[@]} ]" &&
		tail -n +$((before + 1)) "$DS_WORK/netem.out" | grep '^stats '
}

# netem_report LEGEND: the counters at the end of a run, for its report
# (Markdown; LEGEND says what the link names are).
netem_report() {
	printf '\ndistsys-netem'"'"'s counters at the end (%s):\n\n' "$1"
	netem_stats | sed 's/^stats /    /'
}
