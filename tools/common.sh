# tools/common.sh: set-up shared by 'make test' and 'make demo'.
#
# Sourced, not run.  It installs missing Debian packages (when root), builds
# distsys, installs it into a private copy of the PostgreSQL installation
# under a temporary directory (so the system's PostgreSQL is never touched and
# a non-root user can run everything), and runs commands as an unprivileged
# user: PostgreSQL refuses to run as root, so as root that is 'postgres'.
#
# After ds_setup: DS_WORK (temporary directory, removed by ds_cleanup),
# DS_BIN (bin directory of the private install, first on PATH), DS_PGXS_TEST
# (pg_regress and friends), DS_TEMP_CONFIG (settings every test node uses).

DS_PACKAGES="postgresql-15 postgresql-server-dev-15 libpq-dev librdkafka-dev
	libipc-run-perl kcat pkg-config make gcc perl"
DS_PG_MAJOR=15
DS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DS_PIDS=()

ds_say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# ds_install_packages: apt-get install what is missing; only root can.
ds_install_packages() {
	local missing=()
	for p in $DS_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root, or install them: apt-get install ${missing[*]})" >&2
		return 1
	fi
	echo "installing: ${missing[*]}"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ds_runuser: run a command as the unprivileged user that owns the clusters.
ds_runuser() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env "PATH=$PATH" "$@"
	else
		"$@"
	fi
}

# ds_private_install: copy the server into DS_WORK and install distsys there.
# PostgreSQL finds its share and lib directories relative to its binary, as in
# its own 'make check', so this tree is a complete, relocated installation.
ds_private_install() {
	local root="$DS_WORK/install" libdir sharedir
	libdir=$(dirname "$(pg_config --bindir)")
	sharedir=$(pg_config --sharedir)
	mkdir -p "$root$libdir" "$root$sharedir"
	cp -a "$libdir/." "$root$libdir/"
	cp -a "$sharedir/." "$root$sharedir/"
	make -C "$DS_TOP" -s install DESTDIR="$root" >/dev/null
	DS_BIN="$root$(pg_config --bindir)"
	export PATH="$DS_BIN:$PATH"
}

# ds_setup: packages, build, private install, temporary directory.
ds_setup() {
	ds_install_packages
	make -C "$DS_TOP" -s -j2 >/dev/null
	DS_WORK=$(mktemp -d "${TMPDIR:-/tmp}/distsys.XXXXXX")
	chmod 755 "$DS_WORK"
	trap ds_cleanup EXIT
	trap 'exit 130' INT TERM
	ds_private_install
	DS_PGXS_TEST="$(dirname "$(pg_config --pgxs)")/../test"
	DS_TEMP_CONFIG="$DS_WORK/distsys-test.conf"
	cp "$DS_TOP/tools/test.conf" "$DS_TEMP_CONFIG"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$DS_WORK"
	return 0
}

# ds_relay_asan: distsys-relay, distsys-kafka-mock and distsys-netem built with the
# sanitizers (make relay-asan), copied to DS_WORK/asan/bin.  Built with the
# PATH of before ds_setup: the private install's pg_config names an include
# directory it did not copy.
ds_relay_asan() {
	PATH="${PATH#"$DS_BIN:"}" make -C "$DS_TOP" -s -j2 relay-asan >/dev/null || return 1
	mkdir -p "$DS_WORK/asan/bin"
	cp "$DS_TOP"/relay/asan/distsys-relay "$DS_TOP"/relay/asan/distsys-kafka-mock \
		"$DS_TOP"/relay/asan/distsys-netem "$DS_WORK/asan/bin/"
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$DS_WORK/asan"; fi
}

# ds_tap_run TESTDIR [VAR=value...] CMD...: a TAP program, run as the
# unprivileged user from DS_WORK/tests with what PostgreSQL's TAP modules
# need (TESTDIR, PG_REGRESS, TEMP_CONFIG, PERL5LIB).
ds_tap_run() {
	local testdir=$1
	shift
	(cd "$DS_WORK/tests" && ds_runuser env TESTDIR="$testdir" \
		PG_REGRESS="$DS_PGXS_TEST/regress/pg_regress" TEMP_CONFIG="$DS_TEMP_CONFIG" \
		PERL5LIB="$DS_PGXS_TEST/perl:$DS_WORK/tests/t" PG_TEST_TIMEOUT_DEFAULT=120 "$@")
}

# ds_free_port: a free TCP port on loopback.
ds_free_port() {
	perl -MIO::Socket::INET -e \
		'print IO::Socket::INET->new(Listen=>1, LocalAddr=>"127.0.0.1:0")->sockport'
}

# ds_init_node NAME PORT: initdb a throwaway cluster DS_WORK/NAME with the
# test settings, listening on PORT; not started.
ds_init_node() {
	local dir="$DS_WORK/$1"
	ds_runuser initdb -A trust -U postgres -D "$dir" >/dev/null
	cat "$DS_TEMP_CONFIG" >> "$dir/postgresql.conf"
	printf "port = %s\nunix_socket_directories = '%s'\n" "$2" "$DS_WORK" >> "$dir/postgresql.conf"
}

# ds_start_node NAME: a throwaway cluster in DS_WORK; prints its port.
ds_start_node() {
	local port
	port=$(ds_free_port)
	ds_init_node "$1" "$port"
	ds_runuser pg_ctl -D "$DS_WORK/$1" -l "$DS_WORK/$1.log" -w start >/dev/null
	echo "$port"
}

# ds_psql PORT ARGS...: psql, without psqlrc, as postgres to database
# postgres of the node listening on 127.0.0.1:PORT.
ds_psql() {
	local port=$1
	shift
	psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

# ds_cleanup: stop every cluster and process started here, remove DS_WORK.
ds_cleanup() {
	local pid d
	set +e	# an EXIT trap must finish, whatever the killed processes return
	for pid in "${DS_PIDS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	[ -n "${DS_WORK:-}" ] && [ -d "$DS_WORK" ] || return 0
	for d in "$DS_WORK"/*/postmaster.pid "$DS_WORK"/tmp_check/t_*_data/pgdata/postmaster.pid; do
		[ -f "$d" ] && ds_runuser pg_ctl -D "$(dirname "$d")" -m immediate stop >/dev/null 2>&1
	done
	rm -rf "$DS_WORK"
}
