#!/usr/bin/env bash
# bench/run-dtx.sh: the 2PC coordinator benchmark (distributed transactions),
# one command.
#
#   bench/run-dtx.sh            full run, about 2 minutes
#   bench/run-dtx.sh --quick    smoke run, about 1 minute
#   options: --seconds N (recording time per cell, default 8), --rounds N
#   (split it into N rounds, default 4), --rows N (accounts per participant,
#   default 10000), --no-fsync (fsync = off on the three clusters: what is
#   left is the cost of processes and messages), --report FILE (also write
#   the report there)
#
# Transfers per second and latency at 1 and 8 clients.  A transfer takes 1
# from a random account on participant P1 and gives 1 to a random account on
# participant P2, three ways, all measured by one C driver (compiled here
# from the heredoc below, libpq, one thread and own connections per client):
#   distsys    BEGIN; dtx_exec('p1', ...); dtx_exec('p2', ...); COMMIT on the
#              coordinator C (real 2PC with the last agent, the default:
#              PREPARE on P1, COMMIT on P2 decides, COMMIT PREPARED on P1)
#   distsys-coord  the same with distsys.dtx_last_agent = off (parallel
#              PREPARE, the decision recorded on C, parallel COMMIT PREPARED)
#   nonatomic  the two UPDATEs as autocommit statements on P1, then on P2
#              (not atomic: the limit)
#   naive      BEGIN/UPDATE on P1 and P2, PREPARE TRANSACTION on P1 then on
#              P2, COMMIT PREPARED on P1 then on P2, each waited for (the
#              hand-written way)
# Three throwaway PostgreSQL clusters on loopback (tools/common.sh: C, P1,
# P2, distsys preloaded, fsync on unless --no-fsync), stopped at exit.  Every cell runs the
# driver for a warm-up and a recording window, in rounds, every other round
# in reverse order, so that a change in the machine's load falls on all rows
# alike; the report adds the rounds up.  At the end it checks that the money
# is all there (P1 lost and P2 gained exactly one per completed transfer)
# and that no prepared transaction is left.  Not a test: it never fails on
# a figure, only on a broken setup.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
RUN_MS=8000
WARMUP_MS=500
ROUNDS=4
ROWS=10000
REPORT_FILE=
FSYNC=on
MODE=full
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) RUN_MS=4000 WARMUP_MS=300 ROUNDS=1 MODE=quick ;;
	--seconds) RUN_MS=$(($2 * 1000)); shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--rows) ROWS=$2; shift ;;
	--no-fsync) FSYNC=off ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "run-dtx.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
CLIENT_COUNTS="1 8"
MODES="distsys distsys-coord nonatomic naive"

# write_driver FILE: the C driver.  One line on stdout per run:
#   transfers=N seconds=S tps=X p50_us=N p99_us=N done_total=N errors=N
#   partial=N notices=N cpu_c_us=N cpu_p1_us=N cpu_p2_us=N cpu_driver_us=N
# (transfers, tps and the percentiles over the recording window; done_total
# counts warm-up too; partial: non-atomic transfers whose second half
# failed; notices: WARNINGs and NOTICEs the servers sent; cpu_*: CPU time
# that every process of C, P1 and P2 (the children of the postmasters given
# by --postmasters) and the driver itself used in the recording window,
# from /proc, in clock ticks).  Latencies of the recording window are
# appended to --lat-file, in microseconds, one a line.  The first error of
# each kind goes to stderr.
write_driver() {
	cat > "$1" <<-'C'
	#include <dirent.h>
	#include <errno.h>
	#include <inttypes.h>
	#include <pthread.h>
	#include <stdio.h>
	#include <stdlib.h>
	#include <string.h>
	#include <time.h>
	#include <unistd.h>
	#include <libpq-fe.h>

	enum { NONATOMIC, NAIVE, DISTSYS };
	static int mode = -1, clients = 1, rows = 10000, coord_decides = 0;
	static long warmup_ms = 500, run_ms = 2000;
	static const char *p1_conninfo, *p2_conninfo, *c_conninfo, *lat_file, *prefix = "x";
	static double t_rec, t_end;
	static pthread_barrier_t ready;
	static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
	static int errors_printed;
	static long notices;
	/* CPU accounting: the postmasters of C, P1 and P2 (--postmasters) */
	enum { CPU_C, CPU_P1, CPU_P2, CPU_DRIVER, CPU_ROLES };
	static long postmaster[3];

	typedef struct {
		int id;
		PGconn *a, *b;			/* P1 and P2, or C and nothing */
		long done_total, errors, partial, n;
		double *lat;
		size_t nlat, cap;
		uint64_t rng;
		int dead;
	} Worker;

	static double now(void)
	{
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		return ts.tv_sec + ts.tv_nsec / 1e9;
	}

	static int next_id(Worker *w)
	{
		w->rng ^= w->rng << 13;
		w->rng ^= w->rng >> 7;
		w->rng ^= w->rng << 17;
		return (int) (w->rng % (uint64_t) rows) + 1;
	}

	static void report_error(const char *what, PGconn *c, PGresult *r)
	{
		const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
		pthread_mutex_lock(&err_lock);
		if (errors_printed++ < 3)
			fprintf(stderr, "%s: %s", what, msg && *msg ? msg : "unexpected result\n");
		pthread_mutex_unlock(&err_lock);
	}

	/* run: one statement; ok when it succeeds and, with want >= 0, when it
	 * affected (or, for a query, returned as its first value) want rows. */
	static int run(PGconn *c, const char *what, const char *stmt, int id, int want)
	{
		PGresult *r;
		int ok;
		if (id > 0) {
			char buf[16];
			const char *params[1] = { buf };
			snprintf(buf, sizeof buf, "%d", id);
			r = PQexecPrepared(c, stmt, 1, params, NULL, NULL, 0);
		} else
			r = PQexec(c, stmt);
		ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
		if (ok && want >= 0) {
			const char *got = PQresultStatus(r) == PGRES_TUPLES_OK
				? (PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "") : PQcmdTuples(r);
			ok = atoi(got) == want;
		}
		if (!ok)
			report_error(what, c, r);
		PQclear(r);
		return ok;
	}

	static void quiet(PGconn *c, const char *sql)
	{
		PQclear(PQexec(c, sql));
	}

	/* a WARNING (or NOTICE) from the server: counted, the first 3 printed */
	static void on_notice(void *arg, const PGresult *r)
	{
		if (__atomic_add_fetch(&notices, 1, __ATOMIC_RELAXED) <= 3)
			fprintf(stderr, "%s", PQresultErrorMessage(r));
	}

	static PGconn *connect_to(const char *conninfo)
	{
		PGconn *c = PQconnectdb(conninfo);
		if (PQstatus(c) != CONNECTION_OK) {
			fprintf(stderr, "connect %s: %s", conninfo, PQerrorMessage(c));
			exit(1);
		}
		PQsetNoticeReceiver(c, on_notice, NULL);
		return c;
	}

	static void prepare(PGconn *c, const char *name, const char *sql)
	{
		PGresult *r = PQprepare(c, name, sql, 1, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "prepare %s: %s", name, PQresultErrorMessage(r));
			exit(1);
		}
		PQclear(r);
	}

	static int transfer(Worker *w, int from, int to)
	{
		char gid[128], sql[192];
		switch (mode) {
		case NONATOMIC:
			if (!run(w->a, "UPDATE on P1", "take", from, 1))
				return 0;
			if (!run(w->b, "UPDATE on P2", "give", to, 1)) {
				w->partial++;
				return 0;
			}
			return 1;
		case NAIVE:
			snprintf(gid, sizeof gid, "naive-%s-%d-%d-%ld", prefix, (int) getpid(), w->id, w->n++);
			if (!run(w->a, "BEGIN on P1", "BEGIN", 0, -1) ||
				!run(w->a, "UPDATE on P1", "take", from, 1) ||
				!run(w->b, "BEGIN on P2", "BEGIN", 0, -1) ||
				!run(w->b, "UPDATE on P2", "give", to, 1))
				goto rollback;
			snprintf(sql, sizeof sql, "PREPARE TRANSACTION '%s'", gid);
			if (!run(w->a, "PREPARE TRANSACTION on P1", sql, 0, -1))
				goto rollback;
			if (!run(w->b, "PREPARE TRANSACTION on P2", sql, 0, -1)) {
				snprintf(sql, sizeof sql, "ROLLBACK PREPARED '%s'", gid);
				quiet(w->a, sql);
				goto rollback;
			}
			snprintf(sql, sizeof sql, "COMMIT PREPARED '%s'", gid);
			if (!run(w->a, "COMMIT PREPARED on P1", sql, 0, -1))
				quiet(w->a, sql);		/* once more; the final check shows what is left */
			if (!run(w->b, "COMMIT PREPARED on P2", sql, 0, -1)) {
				quiet(w->b, sql);
				return 0;
			}
			return 1;
		rollback:
			quiet(w->a, "ROLLBACK");
			quiet(w->b, "ROLLBACK");
			return 0;
		case DISTSYS:
			if (!run(w->a, "BEGIN on C", "BEGIN", 0, -1) ||
				!run(w->a, "dtx_exec on p1", "take", from, 1) ||
				!run(w->a, "dtx_exec on p2", "give", to, 1)) {
				quiet(w->a, "ROLLBACK");
				return 0;
			}
			return run(w->a, "COMMIT on C", "COMMIT", 0, -1);
		}
		return 0;
	}

	static void *worker_main(void *arg)
	{
		Worker *w = arg;
		int fails_in_a_row = 0;
		pthread_barrier_wait(&ready);
		for (;;) {
			double t0 = now(), t1;
			int from = next_id(w), to = next_id(w);
			if (t0 >= t_end)
				break;
			if (transfer(w, from, to)) {
				t1 = now();
				w->done_total++;
				fails_in_a_row = 0;
				if (t0 >= t_rec) {
					if (w->nlat == w->cap) {
						w->cap = w->cap ? 2 * w->cap : 4096;
						w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
						if (!w->lat) { perror("realloc"); exit(1); }
					}
					w->lat[w->nlat++] = t1 - t0;
				}
			} else {
				w->errors++;
				if (PQstatus(w->a) != CONNECTION_OK || (w->b && PQstatus(w->b) != CONNECTION_OK) ||
					++fails_in_a_row >= 1000) {
					fprintf(stderr, "client %d gives up (connection lost or 1000 failures in a row)\n", w->id);
					w->dead = 1;
					break;
				}
				usleep(1000);
			}
		}
		return NULL;
	}

	/* cpu_snapshot: CPU time used so far (utime + stime, in clock ticks)
	 * by every child of each postmaster, and by this driver, into t. */
	static void cpu_snapshot(long long t[CPU_ROLES])
	{
		DIR *d = opendir("/proc");
		struct dirent *e;
		char path[64], buf[1024];
		memset(t, 0, sizeof(long long) * CPU_ROLES);
		while (d && (e = readdir(d)) != NULL) {
			long pid = atol(e->d_name), ppid;
			unsigned long long ut, st;
			char *p;
			FILE *f;
			int role;
			if (pid <= 0)
				continue;
			snprintf(path, sizeof path, "/proc/%ld/stat", pid);
			if (!(f = fopen(path, "r")))
				continue;
			p = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
			fclose(f);
			/* after "pid (comm)": state ppid ... field 14 utime, 15 stime */
			if (!p || sscanf(p + 2, "%*c %ld %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu",
							 &ppid, &ut, &st) != 3)
				continue;
			if (pid == (long) getpid())
				role = CPU_DRIVER;
			else if (ppid == postmaster[0]) role = CPU_C;
			else if (ppid == postmaster[1]) role = CPU_P1;
			else if (ppid == postmaster[2]) role = CPU_P2;
			else continue;
			t[role] += (long long) (ut + st);
		}
		if (d)
			closedir(d);
	}

	static void sleep_until(double t)
	{
		double left;
		while ((left = t - now()) > 0)
			usleep((useconds_t) (left * 1e6));
	}

	static int cmp(const void *x, const void *y)
	{
		double a = *(const double *) x, b = *(const double *) y;
		return (a > b) - (a < b);
	}

	int main(int argc, char **argv)
	{
		Worker *ws;
		pthread_t *th;
		double *all, t0;
		size_t n = 0, k;
		long done = 0, errs = 0, partial = 0;
		int i, dead = 0;
		long long cpu0[CPU_ROLES], cpu1[CPU_ROLES];
		double tick_us = 1e6 / sysconf(_SC_CLK_TCK);
		FILE *f;

		for (i = 1; i + 1 < argc; i += 2) {
			const char *o = argv[i], *v = argv[i + 1];
			if (!strcmp(o, "--mode"))
				mode = !strcmp(v, "nonatomic") ? NONATOMIC : !strcmp(v, "naive") ? NAIVE
					: !strcmp(v, "distsys") || !strcmp(v, "distsys-coord") ? DISTSYS : -1,
				coord_decides = !strcmp(v, "distsys-coord");
			else if (!strcmp(o, "--clients")) clients = atoi(v);
			else if (!strcmp(o, "--rows")) rows = atoi(v);
			else if (!strcmp(o, "--warmup-ms")) warmup_ms = atol(v);
			else if (!strcmp(o, "--run-ms")) run_ms = atol(v);
			else if (!strcmp(o, "--p1")) p1_conninfo = v;
			else if (!strcmp(o, "--p2")) p2_conninfo = v;
			else if (!strcmp(o, "--coordinator")) c_conninfo = v;
			else if (!strcmp(o, "--lat-file")) lat_file = v;
			else if (!strcmp(o, "--prefix")) prefix = v;
			else if (!strcmp(o, "--postmasters"))
				sscanf(v, "%ld,%ld,%ld", &postmaster[0], &postmaster[1], &postmaster[2]);
			else { fprintf(stderr, "dtxbench: unknown option %s\n", o); return 2; }
		}
		if (i != argc || mode < 0 || clients < 1 || rows < 1 ||
			(mode == DISTSYS ? !c_conninfo : !p1_conninfo || !p2_conninfo)) {
			fprintf(stderr, "usage: dtxbench --mode nonatomic|naive|distsys|distsys-coord --clients N --rows N "
					"--warmup-ms N --run-ms N (--p1 CONNINFO --p2 CONNINFO | --coordinator CONNINFO) "
					"[--lat-file FILE] [--prefix TEXT]\n");
			return 2;
		}
		ws = calloc(clients, sizeof *ws);
		th = calloc(clients, sizeof *th);
		for (i = 0; i < clients; i++) {
			Worker *w = &ws[i];
			w->id = i;
			w->rng = 0x9e3779b97f4a7c15ULL * (uint64_t) (i + 1) ^ (uint64_t) getpid() << 20 ^ (uint64_t) time(NULL);
			if (mode == DISTSYS) {
				w->a = connect_to(c_conninfo);
				if (coord_decides)
					quiet(w->a, "SET distsys.dtx_last_agent = off");
				prepare(w->a, "take", "SELECT distsys.dtx_exec('p1', "
						"'UPDATE acct SET bal = bal - 1 WHERE id = ' || $1::int)");
				prepare(w->a, "give", "SELECT distsys.dtx_exec('p2', "
						"'UPDATE acct SET bal = bal + 1 WHERE id = ' || $1::int)");
			} else {
				w->a = connect_to(p1_conninfo);
				w->b = connect_to(p2_conninfo);
				prepare(w->a, "take", "UPDATE acct SET bal = bal - 1 WHERE id = $1::int");
				prepare(w->b, "give", "UPDATE acct SET bal = bal + 1 WHERE id = $1::int");
			}
		}
		pthread_barrier_init(&ready, NULL, clients + 1);
		for (i = 0; i < clients; i++)
			if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
				perror("pthread_create");
				return 1;
			}
		t0 = now();
		t_rec = t0 + warmup_ms / 1000.0;
		t_end = t_rec + run_ms / 1000.0;
		pthread_barrier_wait(&ready);
		/* the recording window's CPU, process by process */
		sleep_until(t_rec);
		cpu_snapshot(cpu0);
		sleep_until(t_end);
		cpu_snapshot(cpu1);
		for (i = 0; i < clients; i++)
			pthread_join(th[i], NULL);
		for (i = 0; i < clients; i++) {
			n += ws[i].nlat;
			done += ws[i].done_total;
			errs += ws[i].errors;
			partial += ws[i].partial;
			dead += ws[i].dead;
		}
		all = malloc((n ? n : 1) * sizeof *all);
		for (i = 0, k = 0; i < clients; i++) {
			memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
			k += ws[i].nlat;
		}
		qsort(all, n, sizeof *all, cmp);
		if (lat_file) {
			if (!(f = fopen(lat_file, "a"))) { perror(lat_file); return 1; }
			for (k = 0; k < n; k++)
				fprintf(f, "%.0f\n", all[k] * 1e6);
			fclose(f);
		}
		printf("transfers=%zu seconds=%.3f tps=%.1f p50_us=%.0f p99_us=%.0f done_total=%ld errors=%ld partial=%ld notices=%ld"
			   " cpu_c_us=%.0f cpu_p1_us=%.0f cpu_p2_us=%.0f cpu_driver_us=%.0f\n",
			   n, run_ms / 1000.0, n / (run_ms / 1000.0),
			   n ? all[(size_t) (0.50 * (n - 1))] * 1e6 : 0, n ? all[(size_t) (0.99 * (n - 1))] * 1e6 : 0,
			   done, errs, partial, notices,
			   (cpu1[CPU_C] - cpu0[CPU_C]) * tick_us, (cpu1[CPU_P1] - cpu0[CPU_P1]) * tick_us,
			   (cpu1[CPU_P2] - cpu0[CPU_P2]) * tick_us, (cpu1[CPU_DRIVER] - cpu0[CPU_DRIVER]) * tick_us);
		for (i = 0; i < clients; i++) {
			PQfinish(ws[i].a);
			if (ws[i].b)
				PQfinish(ws[i].b);
		}
		return dead ? 1 : 0;
	}
	C
}

psql_on() {
	local port=$1
	shift
	psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

conninfo() {
	echo "host=127.0.0.1 port=$1 dbname=postgres user=postgres application_name=dtxbench"
}

# cell MODE CLIENTS ROUND: one driver run; appends to the results and to
# the latencies of (MODE, CLIENTS), or an n/a line with its first error.
cell() {
	local mode=$1 clients=$2 round=$3 line err target
	if [ "${mode%-coord}" = distsys ]; then
		target=(--coordinator "$(conninfo "$C_PORT")")
	else
		target=(--p1 "$(conninfo "$P1_PORT")" --p2 "$(conninfo "$P2_PORT")")
	fi
	if line=$(timeout $(((WARMUP_MS + RUN_MS / ROUNDS) / 1000 + 120)) "$DS_WORK/dtxbench" \
		--mode "$mode" --clients "$clients" --rows "$ROWS" \
		--warmup-ms "$WARMUP_MS" --run-ms $((RUN_MS / ROUNDS)) "${target[@]}" \
		--lat-file "$DS_WORK/lat-$mode-$clients" --prefix "r$round" --postmasters "$POSTMASTERS" \
		< /dev/null 2> "$DS_WORK/cell.err"); then
		printf '%s\t%s\t%s\n' "$mode" "$clients" "$line" >> "$RESULTS"
		printf '  round %s  %-9s %s client(s)  %s\n' "$round" "$mode" "$clients" "$line" >&2
	else
		err=$({ grep -v '^\s*$' "$DS_WORK/cell.err" || true; } | head -1 | tr '\t' ' ')
		# what it did before failing still moved money: keep its count
		printf '%s\t%s\t%s na=%s\n' "$mode" "$clients" "$line" "${err:-driver failed}" >> "$RESULTS"
		printf '  round %s  %-9s %s client(s)  failed: %s\n' "$round" "$mode" "$clients" "${err:-driver failed}" >&2
	fi
	if [ -s "$DS_WORK/cell.err" ]; then
		sed 's/^/     /' "$DS_WORK/cell.err" | head -8 >&2
		sed "s/^/$mode, $clients client(s): /" "$DS_WORK/cell.err" >> "$DS_WORK/messages"
	fi
	return 0
}

# summary MODE CLIENTS: "tps p50_ms p99_ms errors partial na notices" over
# all rounds.
summary() {
	local mode=$1 clients=$2 tps p50 p99
	tps=$(awk -F'\t' -v m="$mode" -v c="$clients" -v ms="$RUN_MS" '
		$1 == m && $2 == c { if (match($3, /transfers=[0-9]+/)) n += substr($3, RSTART + 10, RLENGTH - 10) }
		END { printf "%.0f", n / (ms / 1000) }' "$RESULTS")
	if [ -s "$DS_WORK/lat-$mode-$clients" ]; then
		read -r p50 p99 < <(sort -n "$DS_WORK/lat-$mode-$clients" | awk '
			{ a[NR] = $1 }
			END { i = int(0.50 * (NR - 1)) + 1; j = int(0.99 * (NR - 1)) + 1
				  printf "%.2f %.2f\n", a[i] / 1000, a[j] / 1000 }')
	else
		p50=n/a p99=n/a
	fi
	awk -F'\t' -v m="$mode" -v c="$clients" -v tps="$tps" -v p50="$p50" -v p99="$p99" '
		$1 == m && $2 == c {
			if (match($3, /errors=[0-9]+/)) e += substr($3, RSTART + 7, RLENGTH - 7)
			if (match($3, /partial=[0-9]+/)) p += substr($3, RSTART + 8, RLENGTH - 8)
			if (match($3, /notices=[0-9]+/)) w += substr($3, RSTART + 8, RLENGTH - 8)
			if ($3 ~ /na=/) na++
		}
		END { printf "%s %s %s %d %d %d %d\n", tps, p50, p99, e, p, na, w }' "$RESULTS"
}

# cpu_row MODE CLIENTS: "C P1 P2 driver total", CPU microseconds per
# transfer over all rounds' recording windows.
cpu_row() {
	awk -F'\t' -v m="$1" -v c="$2" '
		function field(name) { return match($3, name "=[0-9]+") ? substr($3, RSTART + length(name) + 1, RLENGTH - length(name) - 1) : 0 }
		$1 == m && $2 == c {
			n += field("transfers"); cc += field("cpu_c_us"); p1 += field("cpu_p1_us")
			p2 += field("cpu_p2_us"); d += field("cpu_driver_us")
		}
		END { if (n == 0) { print "n/a n/a n/a n/a n/a"; exit }
			  printf "%.0f %.0f %.0f %.0f %.0f\n", cc / n, p1 / n, p2 / n, d / n, (cc + p1 + p2 + d) / n }' "$RESULTS"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

main() {
	local started=$SECONDS round clients mode list sum1 sum2 done_total prep1 prep2 doubt
	local tps p50 p99 errs partial na notices check_ok=yes
	local -A TPS
	ds_say "set-up" >&2
	ds_install_packages
	PQ_CFLAGS="-I$(pg_config --includedir)"
	PQ_LIBS="-L$(pg_config --libdir) -lpq"
	ds_setup
	# ds_cleanup stops at the first failing command under set -e; make it not.
	trap 'set +e; ds_cleanup' EXIT
	RESULTS="$DS_WORK/results.tsv"
	: > "$RESULTS"
	write_driver "$DS_WORK/dtxbench.c"
	# shellcheck disable=SC2086
	gcc -O2 -Wall -pthread $PQ_CFLAGS "$DS_WORK/dtxbench.c" $PQ_LIBS -o "$DS_WORK/dtxbench"

	# 8 clients of the naive way or of distsys keep up to 8 transactions
	# prepared per participant; distsys also keeps dtx_prepared_reserve free.
	printf 'max_prepared_transactions = 100\nfsync = %s\n' "$FSYNC" >> "$DS_TEMP_CONFIG"
	C_PORT=$(ds_start_node coordinator)
	P1_PORT=$(ds_start_node p1)
	P2_PORT=$(ds_start_node p2)
	POSTMASTERS=$(for n in coordinator p1 p2; do head -1 "$DS_WORK/$n/postmaster.pid"; done | paste -sd,)
	# distsys on the participants too: a last agent keeps its marks there
	for port in "$P1_PORT" "$P2_PORT"; do
		psql_on "$port" -c "CREATE EXTENSION distsys" \
			-c "CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL)" \
			-c "INSERT INTO acct SELECT g, 1000 FROM generate_series(1, $ROWS) g" \
			-c "VACUUM ANALYZE acct"
	done
	psql_on "$C_PORT" -c "CREATE EXTENSION distsys" \
		-c "SELECT distsys.node_add('p1', 'host=127.0.0.1 port=$P1_PORT dbname=postgres user=postgres')" \
		-c "SELECT distsys.node_add('p2', 'host=127.0.0.1 port=$P2_PORT dbname=postgres user=postgres')" >/dev/null
	SUM1_BEFORE=$(psql_on "$P1_PORT" -c "SELECT sum(bal) FROM acct")
	SUM2_BEFORE=$(psql_on "$P2_PORT" -c "SELECT sum(bal) FROM acct")
	PG_SETTINGS=$(psql_on "$P1_PORT" -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name)
		FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method',
		'shared_buffers', 'max_prepared_transactions')")

	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	for clients in $CLIENT_COUNTS; do
		ds_say "$clients client(s)" >&2
		for round in $(seq "$ROUNDS"); do
			list=$MODES
			# shellcheck disable=SC2086
			[ $((round % 2)) -eq 1 ] || list=$(printf '%s\n' $MODES | tac | tr '\n' ' ')
			for mode in $list; do
				cell "$mode" "$clients" "$round"
			done
		done
	done
	LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

	ds_say "check" >&2
	# let a commit that timed out be finished by the recovery worker first
	for _ in $(seq 50); do
		[ "$(psql_on "$P1_PORT" -c "SELECT count(*) FROM pg_prepared_xacts")" = 0 ] &&
			[ "$(psql_on "$P2_PORT" -c "SELECT count(*) FROM pg_prepared_xacts")" = 0 ] && break
		sleep 0.2
	done
	sum1=$(psql_on "$P1_PORT" -c "SELECT sum(bal) FROM acct")
	sum2=$(psql_on "$P2_PORT" -c "SELECT sum(bal) FROM acct")
	prep1=$(psql_on "$P1_PORT" -c "SELECT count(*) FROM pg_prepared_xacts")
	prep2=$(psql_on "$P2_PORT" -c "SELECT count(*) FROM pg_prepared_xacts")
	doubt=$(psql_on "$C_PORT" -c "SELECT count(*) FROM distsys.dtx_in_doubt" 2>&1) || doubt="error: $doubt"
	done_total=$(awk -F'\t' '{ if (match($3, /done_total=[0-9]+/)) n += substr($3, RSTART + 11, RLENGTH - 11) }
		END { print n + 0 }' "$RESULTS")

	ds_say "report" >&2
	{
		echo "### 2PC coordinator: transfers per second across two participants"
		echo
		echo "- Run: \`bench/run-dtx.sh$ARGS\` ($MODE: per cell $ROUNDS round(s) of ${WARMUP_MS} ms warm-up + $((RUN_MS / ROUNDS)) ms recorded; $ROWS accounts per participant), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr); load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
		echo "- distsys: commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
			n=$(git -C "$DS_TOP" status --porcelain -- extension 'distsys--*.sql' 2>/dev/null | wc -l)
			[ "$n" -eq 0 ] || echo " with $n uncommitted file(s) in extension/ or install scripts"); $(postgres --version)"
		echo "- Three clusters on loopback (coordinator C, participants P1 and P2), each: $PG_SETTINGS"
		echo "- One C driver (libpq, a thread and own connections per client, prepared statements); a transfer is -1 on a random account of P1, +1 on a random account of P2:"
		echo "  distsys = BEGIN; dtx_exec('p1', UPDATE); dtx_exec('p2', UPDATE); COMMIT on C (2PC, two writers; the last agent: PREPARE on P1, one-phase COMMIT on P2 decides, COMMIT PREPARED on P1);"
		echo "  distsys-coord = the same with distsys.dtx_last_agent = off (PREPARE on both, decision row committed on C, COMMIT PREPARED on both);"
		echo "  non-atomic = autocommit UPDATE on P1, then on P2 (the limit);"
		echo "  naive = BEGIN + UPDATE on P1 and P2, PREPARE TRANSACTION on P1 then P2, COMMIT PREPARED on P1 then P2"
		echo
		echo "| mode | clients | transfers/s | p50 ms | p99 ms | × non-atomic | failed transfers |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for clients in $CLIENT_COUNTS; do
			read -r NA_TPS _ < <(summary nonatomic "$clients")
			for mode in $MODES; do
				read -r tps p50 p99 errs partial na notices < <(summary "$mode" "$clients")
				[ "$na" -eq 0 ] || errs="$errs ($na failed cell(s))"
				[ "$partial" -eq 0 ] || errs="$errs ($partial half-done)"
				[ "$notices" -eq 0 ] || errs="$errs ($notices server warning(s))"
				printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$clients" "$tps" "$p50" "$p99" \
					"$(ratio "$tps" "$NA_TPS")" "$errs"
				TPS[$mode-$clients]=$tps
			done
		done
		echo
		echo "CPU time per transfer, µs (every process of each server and the driver, from /proc, recording windows only):"
		echo
		echo "| mode | clients | C | P1 | P2 | driver | total | × non-atomic |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|"
		for clients in $CLIENT_COUNTS; do
			read -r _ _ _ _ NA_CPU < <(cpu_row nonatomic "$clients")
			for mode in $MODES; do
				read -r cc p1 p2 dr total < <(cpu_row "$mode" "$clients")
				printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$clients" "$cc" "$p1" "$p2" "$dr" \
					"$total" "$(ratio "$total" "$NA_CPU")"
			done
		done
		echo
		echo "Targets:"
		echo "- distsys / non-atomic at 8 clients = $(ratio "${TPS[distsys-8]}" "${TPS[nonatomic-8]}") (target >= 0.5)"
		echo "- distsys / naive at 1 and 8 clients = $(ratio "${TPS[distsys-1]}" "${TPS[naive-1]}") and $(ratio "${TPS[distsys-8]}" "${TPS[naive-8]}") (target > 1)"
		echo
		echo "Check after the run:"
		if [ "$((SUM1_BEFORE + SUM2_BEFORE))" -eq "$((sum1 + sum2))" ]; then
			echo "- sum of bal over P1 + P2: $((sum1 + sum2)), unchanged: ok"
		else
			echo "- sum of bal over P1 + P2: $((sum1 + sum2)), was $((SUM1_BEFORE + SUM2_BEFORE)): MISMATCH"
			check_ok=no
		fi
		if [ "$((SUM1_BEFORE - sum1))" -eq "$done_total" ] && [ "$((sum2 - SUM2_BEFORE))" -eq "$done_total" ]; then
			echo "- P1 lost and P2 gained $done_total, one per completed transfer (warm-up included): ok"
		else
			echo "- P1 lost $((SUM1_BEFORE - sum1)), P2 gained $((sum2 - SUM2_BEFORE)), for $done_total completed transfers: MISMATCH (failed transfers may have been half-done or committed after all)"
			check_ok=no
		fi
		if [ "$prep1" = 0 ] && [ "$prep2" = 0 ]; then
			echo "- pg_prepared_xacts on P1 / P2: empty: ok"
		else
			echo "- pg_prepared_xacts on P1 / P2: $prep1 / $prep2 left: NOT EMPTY"
			check_ok=no
		fi
		echo "- distsys.dtx_in_doubt on C: $doubt"
		[ "$doubt" = 0 ] || check_ok=no
		echo "- overall: $([ "$check_ok" = yes ] && echo ok || echo "PROBLEMS (see above)")"
		if [ -s "$DS_WORK/messages" ]; then
			echo
			echo "Errors and server warnings the driver saw (first 3 per cell; numbers as N, times seen):"
			echo
			{ grep -E 'ERROR|WARNING|FATAL|NOTICE|gives up|connect' "$DS_WORK/messages" || true; } |
				sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -12 | sed 's/^ */    /'
		fi
	} > "$DS_WORK/report.md"
	cat "$DS_WORK/report.md"
	[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
	echo "(total $((SECONDS - started)) s)" >&2
}

main
