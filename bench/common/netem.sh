# shellcheck shell=bash
# bench/common/netem.sh: distsys-netem (the network emulator, relay/netem*.c)
# for benchmarks and tests that put a delay between nodes.
#
# Sourced, not run (after tools/common.sh when ds_setup is used: the
# emulator then stops with ds_cleanup too).  One emulator per shell at a
# time; its state is in NETEM_* variables.
#
#   netem_start DIR ONE_WAY_MS [ARGS...]
#       start distsys-netem with its control FIFO, ports file and log in DIR
#       (made if missing), every link delayed ONE_WAY_MS in each direction
#       (decimals allowed; the round trip through one link is twice that).
#       ARGS go to distsys-netem as they are: at least one --link
#       NAME=LISTEN_PORT:HOST:PORT (it starts with one or more; LISTEN_PORT 0:
#       the kernel picks one), --jitter-ms J, --seed N...  Returns once its
#       listeners are bound.
#   netem_link NAME TARGET_PORT [TARGET_HOST]
#       add a link to TARGET_HOST (127.0.0.1):TARGET_PORT at run time and
#       print the port it listens on.
#   netem_port NAME
#       print the port of link NAME (one given to netem_start or
#       netem_link).
#   netem_cmd LINE
#       send a control command (delay, partition, heal, reset, link,
#       stats) and wait for its "ok LINE" on the emulator's stdout; fails
#       with the emulator's "error: LINE: ..." or after NETEM_WAIT seconds.
#   netem_delay ONE_WAY_MS [LINK]
#       netem_cmd "delay LINK ONE_WAY_MS" (LINK defaults to all).
#   netem_stats
#       print the "stats ..." lines of one stats command.
#   netem_stop
#       stop the emulator (SIGTERM to its PID) and wait for it.
#
# NETEM_PID is its process id (its CPU time can be read from /proc),
# NETEM_LOG its stdout and stderr.  The binary is distsys-netem on PATH
# (the private install of tools/common.sh has it), else relay/distsys-netem
# of this tree (make relay).

NETEM_PID=
NETEM_DIR=
NETEM_LOG=
NETEM_WAIT=${NETEM_WAIT:-30}

# netem_bin: the path of distsys-netem, or a failure naming what to build.
netem_bin() {
	local top
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	if command -v distsys-netem >/dev/null 2>&1; then
		command -v distsys-netem
	elif [ -x "$top/relay/distsys-netem" ]; then
		echo "$top/relay/distsys-netem"
	else
		echo "netem.sh: distsys-netem not found (run make relay)" >&2
		return 1
	fi
}

# netem_wait_for WHAT CMD...: run CMD every 20 ms until it succeeds, for
# at most NETEM_WAIT seconds; fails naming WHAT (and the log) otherwise, or
# at once if the emulator is gone.
netem_wait_for() {
	local what=$1 deadline=$((SECONDS + NETEM_WAIT))
	shift
	until "$@"; do
		if ! kill -0 "$NETEM_PID" 2>/dev/null; then
			echo "netem.sh: distsys-netem exited while waiting for $what; its log:" >&2
			sed 's/^/    /' "$NETEM_LOG" >&2
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "netem.sh: no $what from distsys-netem within $NETEM_WAIT s (log: $NETEM_LOG)" >&2
			return 1
		fi
		sleep 0.02
	done
}

netem_start() {
	local dir=$1 delay=$2 bin
	shift 2
	if [ -n "$NETEM_PID" ]; then
		echo "netem.sh: distsys-netem already runs (PID $NETEM_PID)" >&2
		return 1
	fi
	bin=$(netem_bin) || return 1
	mkdir -p "$dir"
	NETEM_DIR=$(cd "$dir" && pwd)
	NETEM_LOG="$NETEM_DIR/netem.log"
	rm -f "$NETEM_DIR/netem.ports" "$NETEM_DIR/netem.fifo"
	"$bin" --listen-host 127.0.0.1 --delay-ms "$delay" --control "$NETEM_DIR/netem.fifo" \
		--ports-file "$NETEM_DIR/netem.ports" "$@" < /dev/null > "$NETEM_LOG" 2>&1 &
	NETEM_PID=$!
	# ds_cleanup (tools/common.sh) stops it if the caller does not
	DS_PIDS+=("$NETEM_PID")
	netem_wait_for "ports file" test -e "$NETEM_DIR/netem.ports"
}

# netem_count PATTERN: how many lines of the log match the fixed string
# PATTERN as a whole line.
netem_count() {
	grep -cxF -- "$1" "$NETEM_LOG" 2>/dev/null || true
}

# netem_answered LINE OKS ERRS: whether the log has more "ok LINE" lines
# than OKS, or more "error: LINE: ..." lines than ERRS.
netem_answered() {
	[ "$(netem_count "ok $1")" -gt "$2" ] ||
		[ "$(grep -c -F -- "error: $1:" "$NETEM_LOG" 2>/dev/null || true)" -gt "$3" ]
}

netem_cmd() {
	local line=$1 oks errs
	[ -n "$NETEM_PID" ] || { echo "netem.sh: distsys-netem is not running" >&2; return 1; }
	oks=$(netem_count "ok $line")
	errs=$(grep -c -F -- "error: $line:" "$NETEM_LOG" 2>/dev/null || true)
	# the emulator keeps the FIFO open for reading, so this does not block
	# unless it died; the timeout covers that
	# shellcheck disable=SC2016 # expanded by the inner shell
	if ! timeout "$NETEM_WAIT" bash -c 'printf "%s\n" "$1" > "$2"' _ "$line" "$NETEM_DIR/netem.fifo"; then
		echo "netem.sh: could not write to the control FIFO of distsys-netem" >&2
		return 1
	fi
	netem_wait_for "answer to \"$line\"" netem_answered "$line" "$oks" "$errs" || return 1
	if [ "$(netem_count "ok $line")" -le "$oks" ]; then
		grep -F -- "error: $line:" "$NETEM_LOG" | tail -1 >&2
		return 1
	fi
}

netem_port() {
	local port
	port=$(awk -v n="$1" '$1 == n { p = $2 } END { if (p != "") print p }' "$NETEM_DIR/netem.ports")
	[ -n "$port" ] || port=$(awk -v n="$1" '$1 == "listening" && $2 == n { p = $3 } END { if (p != "") print p }' "$NETEM_LOG")
	if [ -z "$port" ]; then
		echo "netem.sh: no link named $1" >&2
		return 1
	fi
	echo "$port"
}

netem_link() {
	local name=$1 port=$2 host=${3:-127.0.0.1}
	netem_cmd "link $name 0 $host:$port" || return 1
	netem_wait_for "listening line of link $name" grep -q "^listening $name " "$NETEM_LOG" || return 1
	netem_port "$name"
}

netem_delay() {
	netem_cmd "delay ${2:-all} $1"
}

netem_stats() {
	local before
	before=$(grep -c '^stats ' "$NETEM_LOG" || true)
	# the stats lines come before the ok line, flushed with it
	netem_cmd stats || return 1
	grep '^stats ' "$NETEM_LOG" | tail -n +"$((before + 1))"
}

netem_stop() {
	local pid=$NETEM_PID
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	NETEM_PID=
}
