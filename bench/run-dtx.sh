#!/usr/bin/env bash
# bench/run-dtx.sh: the 2PC coordinator benchmark (distributed transactions),
# one command.
#
#   bench/run-dtx.sh            full run, 2 participants, direct connections,
#                               about 2 minutes
#   bench/run-dtx.sh --quick    smoke run, about 1 minute
#   bench/run-dtx.sh --matrix   issue 18's matrix, about 20 minutes: RTT 0
#                               (through the emulator), 0.2, 1 and 5 ms x
#                               1 and 8 clients x 2, 3 and 5 participants,
#                               with the round-trip accounting
#   bench/run-dtx.sh --matrix --quick   the same, shorter cells (~6 min)
#   options:
#     --participants LIST  participant clusters per transfer, e.g. 3 or
#                          2,3,5 (2 to 8; default 2)
#     --rtt-ms LIST        round-trip times to run at, e.g. 1 or 0.2,1,5
#                          (default 0).  Above 0, every client -> server and
#                          coordinator -> participant connection goes
#                          through distsys-netem (relay/, make relay), one
#                          proxy per server with a one-way delay of RTT/2;
#                          0 connects directly, as before, unless
#                          --netem-at-zero
#     --netem-at-zero      an RTT of 0 goes through distsys-netem too, with
#                          no delay (what the proxy itself costs; the
#                          baseline of the accounting; on with --matrix)
#     --clients LIST       client counts (default 1,8)
#     --seconds N          recording time per cell (default 8)
#     --rounds N           split it into N rounds (default 4; 2 with
#                          --matrix)
#     --rows N             accounts per participant (default 10000)
#     --no-fsync           fsync = off on every cluster: what is left is
#                          the cost of processes and messages
#     --report FILE        also write the report there
#
# Transfers per second and latency.  A transfer touches N participants: it
# takes 1 from a random account on each of P1..P(N-1) and gives N-1 to a
# random account on PN (N = 2: -1 on P1, +1 on P2, as before), four ways,
# all measured by one C driver (compiled here from the heredoc below,
# libpq, one thread and own connections per client):
#   distsys    BEGIN; dtx_exec('p1', ...); ...; dtx_exec('pN', ...);
#              COMMIT on the coordinator C (real 2PC with the last agent,
#              the default: PREPARE on P1..P(N-1) at once, COMMIT on PN
#              decides, COMMIT PREPARED on P1..P(N-1) at once)
#   distsys-coord  the same with distsys.dtx_last_agent = off (PREPARE on
#              all N at once, the decision recorded on C, COMMIT PREPARED
#              on all N at once)
#   nonatomic  the N UPDATEs as autocommit statements on P1, ..., PN (not
#              atomic: the limit)
#   naive      BEGIN/UPDATE on P1, ..., PN, PREPARE TRANSACTION on each in
#              turn, COMMIT PREPARED on each in turn, each waited for (the
#              hand-written way)
# Throwaway PostgreSQL clusters on loopback (tools/common.sh: C and
# P1..P(largest N), distsys preloaded, fsync on unless --no-fsync), stopped
# at exit.  C's node registry names each participant by the address the
# coordinator should use: its proxy when the RTT goes through distsys-netem
# (re-pointed with distsys.node_add for each RTT), else its port.  Every
# cell runs the driver for a warm-up and a recording window, in rounds
# (each round goes through every RTT, N, client count and row; every other
# round in reverse order of RTT and of row), so that a change in the
# machine's load falls on all cells alike; the report adds the rounds up.
# Each RTT also gets a "ping" cell, SELECT 1 on P1 from 1 client: what one
# round trip through the emulator costs there.  At the end
# it checks that the money is all there (each participant lost or gained
# exactly what the completed transfers moved) and that no prepared
# transaction is left.  Not a test: it never fails on a figure, only on a
# broken setup.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$BENCH/../tools/common.sh"
# shellcheck source-path=SCRIPTDIR source=common/netem.sh
. "$BENCH/common/netem.sh"

ARGS=""
[ $# -eq 0 ] || ARGS=$(printf ' %s' "$@" | sed 's/ --report [^ ]*//')
RUN_MS=
WARMUP_MS=
ROUNDS=
ROWS=10000
REPORT_FILE=
FSYNC=on
MODE=full
MATRIX=no
PARTICIPANTS=
RTTS=
CLIENT_COUNTS=
NETEM_AT_ZERO=no
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) MODE=quick ;;
	--matrix) MATRIX=yes ;;
	--seconds) RUN_MS=$(($2 * 1000)); shift ;;
	--rounds) ROUNDS=$2; shift ;;
	--rows) ROWS=$2; shift ;;
	--participants) PARTICIPANTS=$(echo "$2" | tr ',' ' '); shift ;;
	--rtt-ms) RTTS=$(echo "$2" | tr ',' ' '); shift ;;
	--clients) CLIENT_COUNTS=$(echo "$2" | tr ',' ' '); shift ;;
	--netem-at-zero) NETEM_AT_ZERO=yes ;;
	--no-fsync) FSYNC=off ;;
	--report) REPORT_FILE=$(realpath -m "$2"); shift ;;
	-h|--help) sed -n '2,/--report FILE/p' "$0"; exit 0 ;;
	*) echo "run-dtx.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
# what was not given: the defaults of the run's kind
if [ "$MATRIX" = yes ]; then
	: "${RTTS:=0 0.2 1 5}" "${PARTICIPANTS:=2 3 5}"
	NETEM_AT_ZERO=yes
	if [ "$MODE" = quick ]; then : "${RUN_MS:=2000}" "${WARMUP_MS:=300}" "${ROUNDS:=1}"; fi
	: "${RUN_MS:=8000}" "${WARMUP_MS:=400}" "${ROUNDS:=2}"
	MODE="matrix${MODE#full}"
elif [ "$MODE" = quick ]; then
	: "${RUN_MS:=4000}" "${WARMUP_MS:=300}" "${ROUNDS:=1}"
fi
: "${RUN_MS:=8000}" "${WARMUP_MS:=500}" "${ROUNDS:=4}" "${RTTS:=0}" "${PARTICIPANTS:=2}" "${CLIENT_COUNTS:=1 8}"
MODES="distsys distsys-coord nonatomic naive"
MAXP=0
for n in $PARTICIPANTS; do
	case "$n" in
	[2-8]) [ "$n" -le "$MAXP" ] || MAXP=$n ;;
	*) echo "run-dtx.sh: --participants takes counts from 2 to 8, not $n" >&2; exit 2 ;;
	esac
done
for r in $RTTS; do
	[[ "$r" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run-dtx.sh: --rtt-ms takes numbers of ms, not $r" >&2; exit 2; }
done

# uses_netem RTT: whether connections at RTT go through the emulator.
uses_netem() {
	[ "$NETEM_AT_ZERO" = yes ] || awk -v r="$1" 'BEGIN { exit !(r > 0) }'
}

# write_driver FILE: the C driver.  One line on stdout per run:
#   transfers=N seconds=S tps=X p50_us=N p99_us=N done_total=N errors=N
#   partial=N notices=N cpu_c_us=N cpu_p_us=N cpu_netem_us=N cpu_driver_us=N
# (transfers, tps and the percentiles over the recording window; done_total
# counts warm-up too; partial: non-atomic transfers of which a later part
# failed after an earlier one committed; notices: WARNINGs and NOTICEs the
# servers sent; cpu_*: CPU time that every process of C and of the
# participants (the children of the postmasters given by --postmasters,
# C first), the emulator (--netem-pid) and the driver itself used in the
# recording window, from /proc).  Latencies of the recording window are
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

	#define MAXP 8					/* participants per transfer, at most */

	enum { NONATOMIC, NAIVE, DISTSYS, PING };
	static int mode = -1, clients = 1, rows = 10000, coord_decides = 0, nparts = 0;
	static long warmup_ms = 500, run_ms = 2000;
	static const char *p_conninfo[MAXP], *c_conninfo, *lat_file, *prefix = "x";
	static int np_conninfo;
	static double t_rec, t_end;
	static pthread_barrier_t ready;
	static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
	static int errors_printed;
	static long notices;
	/* CPU accounting: the postmasters of C and the participants
	 * (--postmasters), the emulator (--netem-pid) and the driver */
	enum { CPU_C, CPU_P, CPU_NETEM, CPU_DRIVER, CPU_ROLES };
	static long postmaster[MAXP + 1], netem_pid;
	static int npostmasters;

	typedef struct {
		int id;
		PGconn *c;				/* the coordinator (distsys rows) */
		PGconn *p[MAXP];		/* the participants (the other rows) */
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
	 * affected (or, for a query, returned as its first value) want rows.
	 * With id > 0, stmt names a prepared statement taking id. */
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

	/* the update of participant k (0-based) in a transfer: -1 on each but
	 * the last, which gets what they gave */
	static int delta_of(int k)
	{
		return k < nparts - 1 ? -1 : nparts - 1;
	}

	static const char *label(char *buf, size_t len, const char *what, int k)
	{
		snprintf(buf, len, "%s on P%d", what, k + 1);
		return buf;
	}

	/* naive: BEGIN + UPDATE on each participant in turn, PREPARE
	 * TRANSACTION on each in turn, then COMMIT PREPARED on each in turn */
	static int transfer_naive(Worker *w, const int *ids)
	{
		char gid[128], sql[192], what[64];
		int k, prepared = 0, ok = 1;
		snprintf(gid, sizeof gid, "naive-%s-%d-%d-%ld", prefix, (int) getpid(), w->id, w->n++);
		for (k = 0; k < nparts; k++)
			if (!run(w->p[k], label(what, sizeof what, "BEGIN", k), "BEGIN", 0, -1) ||
				!run(w->p[k], label(what, sizeof what, "UPDATE", k), "upd", ids[k], 1))
				goto rollback;
		snprintf(sql, sizeof sql, "PREPARE TRANSACTION '%s'", gid);
		for (; prepared < nparts; prepared++)
			if (!run(w->p[prepared], label(what, sizeof what, "PREPARE TRANSACTION", prepared), sql, 0, -1))
				goto rollback;
		snprintf(sql, sizeof sql, "COMMIT PREPARED '%s'", gid);
		for (k = 0; k < nparts; k++)
			if (!run(w->p[k], label(what, sizeof what, "COMMIT PREPARED", k), sql, 0, -1)) {
				quiet(w->p[k], sql);	/* once more; the final check shows what is left */
				ok = 0;
			}
		return ok;
	rollback:
		snprintf(sql, sizeof sql, "ROLLBACK PREPARED '%s'", gid);
		for (k = 0; k < nparts; k++)
			quiet(w->p[k], k < prepared ? sql : "ROLLBACK");
		return 0;
	}

	static int transfer(Worker *w)
	{
		int ids[MAXP], k;
		char stmt[16], what[64];
		for (k = 0; k < nparts; k++)
			ids[k] = next_id(w);
		switch (mode) {
		case PING:
			return run(w->p[0], "SELECT 1 on P1", "SELECT 1", 0, -1);
		case NONATOMIC:
			for (k = 0; k < nparts; k++)
				if (!run(w->p[k], label(what, sizeof what, "UPDATE", k), "upd", ids[k], 1)) {
					w->partial += k > 0;
					return 0;
				}
			return 1;
		case NAIVE:
			return transfer_naive(w, ids);
		case DISTSYS:
			if (!run(w->c, "BEGIN on C", "BEGIN", 0, -1))
				goto rollback;
			for (k = 0; k < nparts; k++) {
				snprintf(stmt, sizeof stmt, "s%d", k);
				if (!run(w->c, label(what, sizeof what, "dtx_exec", k), stmt, ids[k], 1))
					goto rollback;
			}
			return run(w->c, "COMMIT on C", "COMMIT", 0, -1);
		rollback:
			quiet(w->c, "ROLLBACK");
			return 0;
		}
		return 0;
	}

	static int connection_lost(Worker *w)
	{
		int k;
		if (w->c && PQstatus(w->c) != CONNECTION_OK)
			return 1;
		for (k = 0; k < nparts; k++)
			if (w->p[k] && PQstatus(w->p[k]) != CONNECTION_OK)
				return 1;
		return 0;
	}

	static void *worker_main(void *arg)
	{
		Worker *w = arg;
		int fails_in_a_row = 0;
		pthread_barrier_wait(&ready);
		for (;;) {
			double t0 = now(), t1;
			if (t0 >= t_end)
				break;
			if (transfer(w)) {
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
				if (connection_lost(w) || ++fails_in_a_row >= 1000) {
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
	 * by every child of each postmaster, by the emulator and by this
	 * driver, into t. */
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
			int role = -1, i;
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
			else if (netem_pid > 0 && pid == netem_pid)
				role = CPU_NETEM;
			else
				for (i = 0; i < npostmasters; i++)
					if (ppid == postmaster[i])
						role = i == 0 ? CPU_C : CPU_P;
			if (role >= 0)
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

	static void parse_postmasters(const char *v)
	{
		char *copy = strdup(v), *tok, *save = NULL;
		for (tok = strtok_r(copy, ",", &save); tok && npostmasters <= MAXP; tok = strtok_r(NULL, ",", &save))
			postmaster[npostmasters++] = atol(tok);
		free(copy);
	}

	/* open_worker: w's connections and prepared statements */
	static void open_worker(Worker *w)
	{
		char name[16], sql[256];
		int k;
		if (mode == DISTSYS) {
			w->c = connect_to(c_conninfo);
			if (coord_decides)
				quiet(w->c, "SET distsys.dtx_last_agent = off");
			for (k = 0; k < nparts; k++) {
				snprintf(name, sizeof name, "s%d", k);
				snprintf(sql, sizeof sql, "SELECT distsys.dtx_exec('p%d', "
						 "'UPDATE acct SET bal = bal + (%d) WHERE id = ' || $1::int)", k + 1, delta_of(k));
				prepare(w->c, name, sql);
			}
			return;
		}
		for (k = 0; k < nparts; k++) {
			w->p[k] = connect_to(p_conninfo[k]);
			snprintf(sql, sizeof sql, "UPDATE acct SET bal = bal + (%d) WHERE id = $1::int", delta_of(k));
			prepare(w->p[k], "upd", sql);
		}
	}

	int main(int argc, char **argv)
	{
		Worker *ws;
		pthread_t *th;
		double *all, t0;
		size_t n = 0, k;
		long done = 0, errs = 0, partial = 0;
		int i, j, dead = 0;
		long long cpu0[CPU_ROLES], cpu1[CPU_ROLES];
		double tick_us = 1e6 / sysconf(_SC_CLK_TCK);
		FILE *f;

		for (i = 1; i + 1 < argc; i += 2) {
			const char *o = argv[i], *v = argv[i + 1];
			if (!strcmp(o, "--mode"))
				mode = !strcmp(v, "nonatomic") ? NONATOMIC : !strcmp(v, "naive") ? NAIVE
					: !strcmp(v, "distsys") || !strcmp(v, "distsys-coord") ? DISTSYS
					: !strcmp(v, "ping") ? PING : -1,
				coord_decides = !strcmp(v, "distsys-coord");
			else if (!strcmp(o, "--clients")) clients = atoi(v);
			else if (!strcmp(o, "--participants")) nparts = atoi(v);
			else if (!strcmp(o, "--rows")) rows = atoi(v);
			else if (!strcmp(o, "--warmup-ms")) warmup_ms = atol(v);
			else if (!strcmp(o, "--run-ms")) run_ms = atol(v);
			else if (!strcmp(o, "--p") && np_conninfo < MAXP) p_conninfo[np_conninfo++] = v;
			else if (!strcmp(o, "--coordinator")) c_conninfo = v;
			else if (!strcmp(o, "--lat-file")) lat_file = v;
			else if (!strcmp(o, "--prefix")) prefix = v;
			else if (!strcmp(o, "--postmasters")) parse_postmasters(v);
			else if (!strcmp(o, "--netem-pid")) netem_pid = atol(v);
			else { fprintf(stderr, "dtxbench: unknown option %s\n", o); return 2; }
		}
		if (i != argc || mode < 0 || clients < 1 || rows < 1 || nparts < 2 || nparts > MAXP ||
			(mode == DISTSYS ? !c_conninfo : np_conninfo != nparts)) {
			fprintf(stderr, "usage: dtxbench --mode nonatomic|naive|distsys|distsys-coord|ping --clients N "
					"--participants N (2-%d) --rows N --warmup-ms N --run-ms N "
					"(--p CONNINFO, once per participant | --coordinator CONNINFO) "
					"[--lat-file FILE] [--prefix TEXT] [--postmasters PID,...] [--netem-pid PID]\n", MAXP);
			return 2;
		}
		ws = calloc(clients, sizeof *ws);
		th = calloc(clients, sizeof *th);
		for (i = 0; i < clients; i++) {
			Worker *w = &ws[i];
			w->id = i;
			w->rng = 0x9e3779b97f4a7c15ULL * (uint64_t) (i + 1) ^ (uint64_t) getpid() << 20 ^ (uint64_t) time(NULL);
			open_worker(w);
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
			   " cpu_c_us=%.0f cpu_p_us=%.0f cpu_netem_us=%.0f cpu_driver_us=%.0f\n",
			   n, run_ms / 1000.0, n / (run_ms / 1000.0),
			   n ? all[(size_t) (0.50 * (n - 1))] * 1e6 : 0, n ? all[(size_t) (0.99 * (n - 1))] * 1e6 : 0,
			   done, errs, partial, notices,
			   (cpu1[CPU_C] - cpu0[CPU_C]) * tick_us, (cpu1[CPU_P] - cpu0[CPU_P]) * tick_us,
			   (cpu1[CPU_NETEM] - cpu0[CPU_NETEM]) * tick_us, (cpu1[CPU_DRIVER] - cpu0[CPU_DRIVER]) * tick_us);
		for (i = 0; i < clients; i++) {
			if (ws[i].c)
				PQfinish(ws[i].c);
			for (j = 0; j < nparts; j++)
				if (ws[i].p[j])
					PQfinish(ws[i].p[j]);
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

# point_at RTT: the ports clients and the coordinator use at RTT, into
# C_USE and P_USE[1..MAXP] (the proxies' or the servers'), delays set, and
# C's registry pointed at P_USE.
point_at() {
	local rtt=$1 k
	if uses_netem "$rtt"; then
		netem_delay "$(awk -v r="$rtt" 'BEGIN { print r / 2 }')" >/dev/null
		C_USE=$(netem_port c)
		for k in $(seq "$MAXP"); do P_USE[k]=$(netem_port "p$k"); done
	else
		C_USE=$C_PORT
		for k in $(seq "$MAXP"); do P_USE[k]=${P_PORT[k]}; done
	fi
	for k in $(seq "$MAXP"); do
		psql_on "$C_PORT" -c "SELECT distsys.node_add('p$k', 'host=127.0.0.1 port=${P_USE[k]} dbname=postgres user=postgres')" >/dev/null
	done
}

# key MODE CLIENTS N RTT: the name of a cell in the results and files.
key() { echo "$1|$2|$3|$4"; }

# cell MODE CLIENTS N RTT ROUND: one driver run; appends to the results
# and to the latencies of the cell, or an n/a line with its first error.
cell() {
	local mode=$1 clients=$2 n=$3 rtt=$4 round=$5 line err k target=() parts=$3
	if [ "$mode" = ping ]; then
		# one round trip: SELECT 1 on P1 (the driver wants two participants)
		parts=2
		target=(--p "$(conninfo "${P_USE[1]}")" --p "$(conninfo "${P_USE[2]}")")
	elif [ "${mode%-coord}" = distsys ]; then
		target=(--coordinator "$(conninfo "$C_USE")")
	else
		for k in $(seq "$n"); do target+=(--p "$(conninfo "${P_USE[k]}")"); done
	fi
	if line=$(timeout $(((WARMUP_MS + RUN_MS / ROUNDS) / 1000 + 120)) "$DS_WORK/dtxbench" \
		--mode "$mode" --clients "$clients" --participants "$parts" --rows "$ROWS" \
		--warmup-ms "$WARMUP_MS" --run-ms $((RUN_MS / ROUNDS)) "${target[@]}" \
		--lat-file "$DS_WORK/lat-$mode-$clients-$n-$rtt" --prefix "r$round-$n-$rtt" \
		--postmasters "$POSTMASTERS" --netem-pid "${NETEM_PID:-0}" \
		< /dev/null 2> "$DS_WORK/cell.err"); then
		printf '%s\t%s\n' "$(key "$mode" "$clients" "$n" "$rtt")" "$line" >> "$RESULTS"
		printf '  RTT %s ms  N %s  round %s  %-13s %s client(s)  %s\n' "$rtt" "$n" "$round" "$mode" "$clients" "$line" >&2
	else
		err=$({ grep -v '^\s*$' "$DS_WORK/cell.err" || true; } | head -1 | tr '\t' ' ')
		# what it did before failing still moved money: keep its count
		printf '%s\t%s na=%s\n' "$(key "$mode" "$clients" "$n" "$rtt")" "$line" "${err:-driver failed}" >> "$RESULTS"
		printf '  RTT %s ms  N %s  round %s  %-13s %s client(s)  failed: %s\n' "$rtt" "$n" "$round" "$mode" "$clients" "${err:-driver failed}" >&2
	fi
	if [ -s "$DS_WORK/cell.err" ]; then
		sed 's/^/     /' "$DS_WORK/cell.err" | head -8 >&2
		sed "s/^/$mode, $clients client(s), N $n, RTT $rtt: /" "$DS_WORK/cell.err" >> "$DS_WORK/messages"
	fi
	return 0
}

# summary MODE CLIENTS N RTT: "tps p50_ms p99_ms errors partial na notices
# mean_ms" over all rounds.
summary() {
	local k tps p50 p99 mean lat="$DS_WORK/lat-$1-$2-$3-$4"
	k=$(key "$@")
	tps=$(awk -F'\t' -v k="$k" -v ms="$RUN_MS" '
		$1 == k { if (match($2, /transfers=[0-9]+/)) n += substr($2, RSTART + 10, RLENGTH - 10) }
		END { printf "%.0f", n / (ms / 1000) }' "$RESULTS")
	if [ -s "$lat" ]; then
		read -r p50 p99 mean < <(sort -n "$lat" | awk '
			{ a[NR] = $1; s += $1 }
			END { i = int(0.50 * (NR - 1)) + 1; j = int(0.99 * (NR - 1)) + 1
				  printf "%.2f %.2f %.2f\n", a[i] / 1000, a[j] / 1000, s / NR / 1000 }')
	else
		p50=n/a p99=n/a mean=n/a
	fi
	awk -F'\t' -v k="$k" -v tps="$tps" -v p50="$p50" -v p99="$p99" -v mean="$mean" '
		$1 == k {
			if (match($2, /errors=[0-9]+/)) e += substr($2, RSTART + 7, RLENGTH - 7)
			if (match($2, /partial=[0-9]+/)) p += substr($2, RSTART + 8, RLENGTH - 8)
			if (match($2, /notices=[0-9]+/)) w += substr($2, RSTART + 8, RLENGTH - 8)
			if ($2 ~ /na=/) na++
		}
		END { printf "%s %s %s %d %d %d %d %s\n", tps, p50, p99, e, p, na, w, mean }' "$RESULTS"
}

# cpu_row MODE CLIENTS N RTT: "C participants netem driver total", CPU
# microseconds per transfer over all rounds' recording windows.
cpu_row() {
	awk -F'\t' -v k="$(key "$@")" '
		function field(name) { return match($2, name "=[0-9]+") ? substr($2, RSTART + length(name) + 1, RLENGTH - length(name) - 1) : 0 }
		$1 == k {
			n += field("transfers"); cc += field("cpu_c_us"); p += field("cpu_p_us")
			ne += field("cpu_netem_us"); d += field("cpu_driver_us")
		}
		END { if (n == 0) { print "n/a n/a n/a n/a n/a"; exit }
			  printf "%.0f %.0f %.0f %.0f %.0f\n", cc / n, p / n, ne / n, d / n, (cc + p + ne + d) / n }' "$RESULTS"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# The sequential network round trips and WAL flushes on the critical path
# of one transfer of MODE over N participants (parallel ones counted once;
# the derivation is in bench/RESULTS.md, "2PC apart"):
#   distsys        client<->C N+2 (BEGIN, N dtx_exec, COMMIT);
#                  C<->P N+3 (N statements, the PREPARE round, the last
#                  agent's COMMIT, the COMMIT PREPARED round); flushes 3
#   distsys-coord  client<->C N+2; C<->P N+2 (no last agent's COMMIT: the
#                  decision is C's local commit); flushes 3
#   nonatomic      client<->P N; flushes N, one after another
#   naive          client<->P 4N (BEGIN, UPDATE, PREPARE, COMMIT PREPARED
#                  on each in turn); flushes 2N, one after another
round_trips() {
	case "$1" in
	distsys) echo $((2 * $2 + 5)) ;;
	distsys-coord) echo $((2 * $2 + 4)) ;;
	nonatomic) echo "$2" ;;
	naive) echo $((4 * $2)) ;;
	esac
}
round_trips_split() {
	case "$1" in
	distsys) echo "$(($2 + 2)) + $(($2 + 3)) + 0" ;;
	distsys-coord) echo "$(($2 + 2)) + $(($2 + 2)) + 0" ;;
	nonatomic) echo "0 + 0 + $2" ;;
	naive) echo "0 + 0 + $((4 * $2))" ;;
	esac
}
flushes() {
	case "$1" in
	distsys|distsys-coord) echo 3 ;;
	nonatomic) echo "$2" ;;
	naive) echo $((2 * $2)) ;;
	esac
}

# calc EXPR: awk arithmetic, printed with 2 decimals ("n/a" if an operand
# is n/a).
calc() {
	case "$1" in *n/a*) echo n/a; return ;; esac
	awk "BEGIN { printf \"%.2f\", $1 }"
}

# cell_table: one line per cell, as the report's first table.
cell_table() {
	local rtt n clients mode tps p50 p99 errs partial na notices mean na_tps naive_tps
	echo "| RTT ms | N | mode | clients | transfers/s | p50 ms | mean ms | p99 ms | × non-atomic | × naive | failed transfers |"
	echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for rtt in $RTTS; do
		for n in $PARTICIPANTS; do
			for clients in $CLIENT_COUNTS; do
				read -r na_tps _ < <(summary nonatomic "$clients" "$n" "$rtt")
				read -r naive_tps _ < <(summary naive "$clients" "$n" "$rtt")
				for mode in $MODES; do
					read -r tps p50 p99 errs partial na notices mean < <(summary "$mode" "$clients" "$n" "$rtt")
					[ "$na" -eq 0 ] || errs="$errs ($na failed cell(s))"
					[ "$partial" -eq 0 ] || errs="$errs ($partial half-done)"
					[ "$notices" -eq 0 ] || errs="$errs ($notices server warning(s))"
					printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$rtt" "$n" "$mode" "$clients" \
						"$tps" "$p50" "$mean" "$p99" "$(ratio "$tps" "$na_tps")" "$(ratio "$tps" "$naive_tps")" "$errs"
				done
			done
		done
	done
}

# cpu_table: CPU microseconds per transfer, per cell.
cpu_table() {
	local rtt n clients mode cc p ne dr total na_cpu
	echo "| RTT ms | N | mode | clients | C | participants | netem | driver | total | × non-atomic |"
	echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
	for rtt in $RTTS; do
		for n in $PARTICIPANTS; do
			for clients in $CLIENT_COUNTS; do
				read -r _ _ _ _ na_cpu < <(cpu_row nonatomic "$clients" "$n" "$rtt")
				for mode in $MODES; do
					read -r cc p ne dr total < <(cpu_row "$mode" "$clients" "$n" "$rtt")
					printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$rtt" "$n" "$mode" "$clients" \
						"$cc" "$p" "$ne" "$dr" "$total" "$(ratio "$total" "$na_cpu")"
				done
			done
		done
	done
}

# p50_of MODE CLIENTS N RTT: the cell's median latency, ms (or n/a).
p50_of() {
	local p50
	read -r _ p50 _ < <(summary "$@")
	echo "$p50"
}

# base_rtt: the RTT the accounting takes the local cost from: 0 if it was
# run, else none.
base_rtt() {
	local r
	for r in $RTTS; do
		awk -v r="$r" 'BEGIN { exit !(r == 0) }' && { echo "$r"; return; }
	done
	return 0
}

# rt_cost RTT: what one round trip through the emulator adds at RTT over
# the base RTT, ms: the ping cells' medians (SELECT 1 on P1) apart.
rt_cost() {
	calc "$(p50_of ping 1 1 "$1") - $(p50_of ping 1 1 "$(base_rtt)")"
}

# naive_rt_cost RTT N CLIENTS: what one round trip of a real transaction
# costs at RTT over the base RTT, ms: the naive row's medians apart,
# divided by its 4N round trips (which the driver itself sends, so none
# is hidden).
naive_rt_cost() {
	calc "($(p50_of naive "$3" "$2" "$1") - $(p50_of naive "$3" "$2" "$(base_rtt)")) / (4 * $2)"
}

# ping_line: the ping cells, one round trip each.
ping_line() {
	local r
	for r in $RTTS; do
		printf 'RTT %s: %s ms (%s over RTT %s); ' "$r" "$(p50_of ping 1 1 "$r")" "$(rt_cost "$r")" "$(base_rtt)"
	done | sed 's/; $//'
}

# accounting_table CLIENTS: per row and N, the protocol's round trips and
# flushes, the median at the base RTT, and at each other RTT the median
# against base + round trips x RTT, with the difference in round trips,
# nominal and at the cost of one round trip measured by the ping cells.
accounting_table() {
	local clients=$1 base n mode rt p0 p r e line hdr="" sep=""
	base=$(base_rtt)
	[ -n "$base" ] || { echo "(no RTT 0 cell: no accounting)"; return 0; }
	for r in $RTTS; do
		[ "$r" = "$base" ] && continue
		hdr="$hdr RTT $r: p50 / predicted (extra RTs; at naive's RT) |"
		sep="$sep---:|"
	done
	echo "| row | N | round trips (client↔C + C↔P + client↔P) | WAL flushes | p50 at RTT $base, ms |$hdr"
	echo "|---|---:|---|---:|---:|$sep"
	for n in $PARTICIPANTS; do
		for mode in $MODES; do
			rt=$(round_trips "$mode" "$n")
			p0=$(p50_of "$mode" "$clients" "$n" "$base")
			line="| $mode | $n | $rt = $(round_trips_split "$mode" "$n") | $(flushes "$mode" "$n") | $p0 |"
			for r in $RTTS; do
				[ "$r" = "$base" ] && continue
				p=$(p50_of "$mode" "$clients" "$n" "$r")
				e=$(naive_rt_cost "$r" "$n" "$clients")
				line="$line $p / $(calc "$p0 + $rt * $r") ($(calc "($p - $p0 - $rt * $r) / $r"); $(in_rts "$p - $p0 - $rt * $e" "$e" "$r")) |"
			done
			echo "$line"
		done
	done
}

# apart_table: issue 18's comparison per RTT, N and clients: distsys and
# distsys-coord against naive, and the latency distsys adds over
# nonatomic against what its protocol's extra round trips explain.
apart_table() {
	local rtt n clients d dc nv pd pn base added0 extra
	base=$(base_rtt)
	echo "| RTT ms | N | clients | distsys ÷ naive | distsys-coord ÷ naive | p50 distsys − nonatomic, ms | protocol's extra RTs × RTT, ms | unexplained, RTs (at naive's RT) |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
	for rtt in $RTTS; do
		for n in $PARTICIPANTS; do
			for clients in $CLIENT_COUNTS; do
				read -r d _ < <(summary distsys "$clients" "$n" "$rtt")
				read -r dc _ < <(summary distsys-coord "$clients" "$n" "$rtt")
				read -r nv _ < <(summary naive "$clients" "$n" "$rtt")
				pd=$(p50_of distsys "$clients" "$n" "$rtt")
				pn=$(p50_of nonatomic "$clients" "$n" "$rtt")
				extra=$(( $(round_trips distsys "$n") - $(round_trips nonatomic "$n") ))
				added0=n/a
				[ -z "$base" ] || added0=$(calc "$(p50_of distsys "$clients" "$n" "$base") - $(p50_of nonatomic "$clients" "$n" "$base")")
				printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$rtt" "$n" "$clients" \
					"$(ratio "$d" "$nv")" "$(ratio "$dc" "$nv")" "$(calc "$pd - $pn")" \
					"$(calc "$extra * $rtt")" \
					"$(awk -v r="$rtt" 'BEGIN { exit !(r > 0) }' && unexplained "$pd - $pn - $added0" "$extra" "$rtt" "$(naive_rt_cost "$rtt" "$n" "$clients")" || echo -)"
			done
		done
	done
}

# in_rts EXPR E RTT: EXPR (ms) in round trips of E ms, or n/a when E is
# under half of RTT: there the local work of each step overlaps the wait
# (at 0.2 ms the naive row's round trips add almost nothing), and a round
# trip's cost cannot be told from the noise.
in_rts() {
	if awk -v e="$2" -v r="$3" 'BEGIN { exit !(e != "n/a" && e >= r / 2) }'; then
		calc "($1) / $2"
	else
		echo n/a
	fi
}

# unexplained ADDED EXTRA RTT E: "X (Y)": ADDED (ms, an expression) less
# EXTRA round trips, in round trips of RTT and (Y) of E ms.
unexplained() {
	echo "$(calc "($1 - $2 * $3) / $3") ($(in_rts "$1 - $2 * $4" "$4" "$3"))"
}

# targets: issue 18's targets, each cell that misses named.
targets() {
	local rtt n clients d nv miss=0 cells=0 pd pn base added0 extra over e worst=""
	base=$(base_rtt)
	for rtt in $RTTS; do
		awk -v r="$rtt" 'BEGIN { exit !(r >= 0.5) }' || continue
		for n in $PARTICIPANTS; do
			for clients in $CLIENT_COUNTS; do
				read -r d _ < <(summary distsys "$clients" "$n" "$rtt")
				read -r nv _ < <(summary naive "$clients" "$n" "$rtt")
				cells=$((cells + 1))
				awk -v a="$d" -v b="$nv" 'BEGIN { exit !(a > b) }' ||
					{ miss=$((miss + 1)); worst="$worst RTT $rtt N $n ${clients}c: $(ratio "$d" "$nv");"; }
			done
		done
	done
	if [ "$cells" -eq 0 ]; then
		echo "- distsys faster than naive at every RTT >= 0.5 ms: no such RTT in this run"
	else
		echo "- distsys faster than naive at every RTT >= 0.5 ms, every N, 1 and 8 clients: $([ "$miss" -eq 0 ] && echo "met ($cells cells)" || echo "not met in $miss of $cells cells:${worst%;}")"
	fi
	[ -n "$base" ] && echo " $CLIENT_COUNTS " | grep -q ' 1 ' || return 0
	miss=0 cells=0 worst=""
	for rtt in $RTTS; do
		awk -v r="$rtt" 'BEGIN { exit !(r >= 0.5) }' || continue
		for n in $PARTICIPANTS; do
			pd=$(p50_of distsys 1 "$n" "$rtt")
			pn=$(p50_of nonatomic 1 "$n" "$rtt")
			added0=$(calc "$(p50_of distsys 1 "$n" "$base") - $(p50_of nonatomic 1 "$n" "$base")")
			extra=$(( $(round_trips distsys "$n") - $(round_trips nonatomic "$n") ))
			# in round trips of what one cost the naive row (the emulator's
			# and the wake-ups' share of a round trip falls on every row)
			e=$(naive_rt_cost "$rtt" "$n" 1)
			over=$(in_rts "$pd - $pn - $added0 - $extra * $e" "$e" "$rtt")
			cells=$((cells + 1))
			awk -v o="$over" 'BEGIN { exit !(o != "n/a" && o <= 0.5) }' ||
				{ miss=$((miss + 1)); worst="$worst RTT $rtt N $n: $over RTs;"; }
		done
	done
	[ "$cells" -gt 0 ] || return 0
	echo "- latency distsys adds over nonatomic at every RTT >= 0.5 ms (1 client, p50, less what it adds at RTT $base) within its protocol's N+5 extra round trips (+ 0.5), in round trips as the naive row paid them: $([ "$miss" -eq 0 ] && echo "met ($cells cells)" || echo "not met in $miss of $cells cells:${worst%;}")"
}

# check_money: whether every participant lost or gained what the completed
# transfers moved (warm-up included); prints one line per participant and
# sets CHECK_OK=no otherwise.
check_money() {
	local k before after want total_before=0 total_after=0
	for k in $(seq "$MAXP"); do
		before=${SUM_BEFORE[k]}
		after=$(psql_on "${P_PORT[k]}" -c "SELECT sum(bal) FROM acct")
		total_before=$((total_before + before))
		total_after=$((total_after + after))
		# each cell of N participants: -1 per transfer on P1..P(N-1), +(N-1) on PN
		want=$(awk -F'\t' -v k="$k" '{
				split($1, f, "|"); n = f[3]
				if (!match($2, /done_total=[0-9]+/)) next
				d = substr($2, RSTART + 11, RLENGTH - 11)
				if (k < n) s -= d; else if (k == n) s += (n - 1) * d
			} END { printf "%d", s }' "$RESULTS")
		if [ "$((after - before))" -eq "$want" ]; then
			echo "- P$k: $((after - before)) as the completed transfers say (warm-up included): ok"
		else
			echo "- P$k: changed by $((after - before)), the completed transfers say $want: MISMATCH (failed transfers may have been half-done or committed after all)"
			CHECK_OK=no
		fi
	done
	if [ "$total_before" -eq "$total_after" ]; then
		echo "- sum of bal over every participant: $total_after, unchanged: ok"
	else
		echo "- sum of bal over every participant: $total_after, was $total_before: MISMATCH"
		CHECK_OK=no
	fi
}

# settle_and_check: wait for recovery to finish what a timed-out commit
# left, then the checks of the report.
settle_and_check() {
	local k prep doubt all
	for _ in $(seq 50); do
		all=0
		for k in $(seq "$MAXP"); do
			all=$((all + $(psql_on "${P_PORT[k]}" -c "SELECT count(*) FROM pg_prepared_xacts")))
		done
		[ "$all" -eq 0 ] && break
		sleep 0.2
	done
	CHECK_OK=yes
	check_money
	prep=$(for k in $(seq "$MAXP"); do psql_on "${P_PORT[k]}" -c "SELECT count(*) FROM pg_prepared_xacts"; done | paste -sd/)
	if [ -z "$(echo "$prep" | tr -d '0/')" ]; then
		echo "- pg_prepared_xacts on P1..P$MAXP: empty: ok"
	else
		echo "- pg_prepared_xacts on P1..P$MAXP: $prep left: NOT EMPTY"
		CHECK_OK=no
	fi
	doubt=$(psql_on "$C_PORT" -c "SELECT count(*) FROM distsys.dtx_in_doubt" 2>&1) || doubt="error: $doubt"
	echo "- distsys.dtx_in_doubt on C: $doubt"
	[ "$doubt" = 0 ] || CHECK_OK=no
	echo "- overall: $([ "$CHECK_OK" = yes ] && echo ok || echo "PROBLEMS (see above)")"
}

# start_netem: distsys-netem with a link per server, when some RTT needs it.
start_netem() {
	local rtt need=no links=() k
	for rtt in $RTTS; do uses_netem "$rtt" && need=yes; done
	[ "$need" = yes ] || return 0
	links=(--link "c=0:127.0.0.1:$C_PORT")
	for k in $(seq "$MAXP"); do links+=(--link "p$k=0:127.0.0.1:${P_PORT[k]}"); done
	netem_start "$DS_WORK/netem" 0 "${links[@]}"
}

report() {
	local clients
	echo "### 2PC coordinator: transfers per second across N participants"
	echo
	echo "- Run: \`bench/run-dtx.sh$ARGS\` ($MODE: per cell $ROUNDS round(s) of ${WARMUP_MS} ms warm-up + $((RUN_MS / ROUNDS)) ms recorded; $ROWS accounts per participant), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr); load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
	echo "- distsys: commit $(git -C "$DS_TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
		n=$(git -C "$DS_TOP" status --porcelain -- extension 'distsys--*.sql' relay 2>/dev/null | wc -l)
		[ "$n" -eq 0 ] || echo " with $n uncommitted file(s) in extension/, relay/ or install scripts"); $(postgres --version)"
	echo "- $((MAXP + 1)) clusters on loopback (coordinator C, participants P1..P$MAXP), each: $PG_SETTINGS"
	echo "- RTT: $(for r in $RTTS; do if uses_netem "$r"; then printf '%s ms through distsys-netem (%s ms each way), ' "$r" "$(awk -v r="$r" 'BEGIN { print r / 2 }')"; else printf '%s (direct connections), ' "$r"; fi; done | sed 's/, $//')$(
		[ -z "$NETEM_PID" ] || echo "; one proxy per server, which the clients and C's registry both use")"
	echo "- One C driver (libpq, a thread and own connections per client, prepared statements); a transfer over N participants is -1 on a random account of each of P1..P(N-1) and +(N-1) on one of PN:"
	echo "  distsys = BEGIN; dtx_exec('p1', UPDATE); ...; dtx_exec('pN', UPDATE); COMMIT on C (the last agent: PREPARE on P1..P(N-1) at once, one-phase COMMIT on PN decides, COMMIT PREPARED on P1..P(N-1) at once);"
	echo "  distsys-coord = the same with distsys.dtx_last_agent = off (PREPARE on all at once, decision row committed on C, COMMIT PREPARED on all at once);"
	echo "  non-atomic = autocommit UPDATE on P1, ..., then on PN (the limit);"
	echo "  naive = BEGIN + UPDATE on P1..PN in turn, PREPARE TRANSACTION on each in turn, COMMIT PREPARED on each in turn"
	echo
	cell_table
	echo
	echo "CPU time per transfer, µs (every process of each server, the emulator and the driver, from /proc, recording windows only):"
	echo
	cpu_table
	if [ "$(echo "$RTTS" | wc -w)" -gt 1 ] || [ "$(echo "$PARTICIPANTS" | wc -w)" -gt 1 ] || [ "$RTTS" != 0 ]; then
		echo
		echo "Issue 18: distsys against naive, and the latency distsys adds over non-atomic against its protocol's N+5 extra round trips (unexplained: what is left after the protocol's round trips and what distsys adds at RTT $(base_rtt), in RTTs):"
		echo
		apart_table
		echo
		echo "One round trip through the emulator (SELECT 1 on P1, 1 client, p50): $(ping_line)"
		for clients in $CLIENT_COUNTS; do
			echo
			echo "Round trips and WAL flushes on the critical path against the median, $clients client(s) (predicted = p50 at RTT $(base_rtt) + round trips × RTT; extra RTs = (p50 - predicted) / RTT; at naive's RT: the same with what one round trip of the naive row cost at that RTT and N (its p50 over RTT $(base_rtt)'s, ÷ 4N) in place of RTT):"
			echo
			accounting_table "$clients"
		done
		echo
		echo "Targets (issue 18):"
		targets
	else
		echo
		echo "Targets (issue 6):"
		echo "- distsys / non-atomic at 8 clients = $(ratio "$(summary distsys 8 2 0 | cut -d' ' -f1)" "$(summary nonatomic 8 2 0 | cut -d' ' -f1)") (target >= 0.5)"
		echo "- distsys / naive at 1 and 8 clients = $(ratio "$(summary distsys 1 2 0 | cut -d' ' -f1)" "$(summary naive 1 2 0 | cut -d' ' -f1)") and $(ratio "$(summary distsys 8 2 0 | cut -d' ' -f1)" "$(summary naive 8 2 0 | cut -d' ' -f1)") (target > 1)"
	fi
	echo
	echo "Check after the run:"
	echo "$CHECKS"
	if [ -s "$DS_WORK/messages" ]; then
		echo
		echo "Errors and server warnings the driver saw (first 3 per cell; numbers as N, times seen):"
		echo
		{ grep -E 'ERROR|WARNING|FATAL|NOTICE|gives up|connect' "$DS_WORK/messages" || true; } |
			sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -12 | sed 's/^ */    /'
	fi
	if [ -n "$NETEM_PID" ]; then
		echo
		echo "distsys-netem's links at the end:"
		echo
		netem_stats | sed 's/^/    /'
	fi
}

main() {
	local started=$SECONDS round clients mode list rtt rtts n k
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
	P_PORT=()
	for k in $(seq "$MAXP"); do P_PORT[k]=$(ds_start_node "p$k"); done
	POSTMASTERS=$(for n in coordinator $(seq -f 'p%g' "$MAXP"); do head -1 "$DS_WORK/$n/postmaster.pid"; done | paste -sd,)
	# distsys on the participants too: a last agent keeps its marks there
	SUM_BEFORE=()
	for k in $(seq "$MAXP"); do
		psql_on "${P_PORT[k]}" -c "CREATE EXTENSION distsys" \
			-c "CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL)" \
			-c "INSERT INTO acct SELECT g, 1000 FROM generate_series(1, $ROWS) g" \
			-c "VACUUM ANALYZE acct"
		SUM_BEFORE[k]=$(psql_on "${P_PORT[k]}" -c "SELECT sum(bal) FROM acct")
	done
	psql_on "$C_PORT" -c "CREATE EXTENSION distsys"
	PG_SETTINGS=$(psql_on "${P_PORT[1]}" -c "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name)
		FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method',
		'shared_buffers', 'max_prepared_transactions')")
	start_netem

	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	# rounds outermost, every other one in reverse order of RTT and of row,
	# so that a change in the machine's load falls on every cell alike
	for round in $(seq "$ROUNDS"); do
		rtts=$RTTS list=$MODES
		if [ $((round % 2)) -eq 0 ]; then
			# shellcheck disable=SC2086
			rtts=$(printf '%s\n' $RTTS | tac | tr '\n' ' ')
			# shellcheck disable=SC2086
			list=$(printf '%s\n' $MODES | tac | tr '\n' ' ')
		fi
		for rtt in $rtts; do
			point_at "$rtt"
			[ "$round" -gt 1 ] || cell ping 1 1 "$rtt" 1
			for n in $PARTICIPANTS; do
				for clients in $CLIENT_COUNTS; do
					ds_say "round $round of $ROUNDS: RTT $rtt ms, $n participants, $clients client(s)" >&2
					for mode in $list; do
						cell "$mode" "$clients" "$n" "$rtt" "$round"
					done
				done
			done
		done
	done
	LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

	ds_say "check" >&2
	CHECKS=$(settle_and_check)
	ds_say "report" >&2
	report > "$DS_WORK/report.md"
	cat "$DS_WORK/report.md"
	[ -z "$REPORT_FILE" ] || cp "$DS_WORK/report.md" "$REPORT_FILE"
	netem_stop
	echo "(total $((SECONDS - started)) s)" >&2
}

main
