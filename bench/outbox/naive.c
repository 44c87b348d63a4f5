/*-------------------------------------------------------------------------
 *
 * naive.c
 *	  A naive outbox relay, written the way most projects write one: every
 *	  --poll-ms (100 ms) select the oldest --batch rows by id, produce each,
 *	  rd_kafka_flush, then delete each acknowledged row by id, one
 *	  autocommit DELETE per row.
 *
 * It uses the same producer settings as distsys-relay (kafka.c) and sends
 * the same headers, so what differs is the loop: a fixed poll interval
 * instead of a wake-up on commit, a flush that waits for the whole batch
 * before the next fetch, and one transaction (one WAL flush) per deleted
 * row.  No lanes, no per-key blocking on failure, one instance only.
 *
 * Threads: one, plus librdkafka's; the delivery-report callback runs
 * inside rd_kafka_flush on this thread.  SIGTERM/SIGINT set a flag that
 * the loop checks; it then prints its line and exits.
 *
 *-------------------------------------------------------------------------
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outboxbench.h"

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	stop_requested = 1;
}

static void
mark_acked(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (!m->err && m->_private)
		*(bool *) m->_private = true;
}

/*
 * relay_batch: produces the fetched rows, flushes, deletes the acked ones;
 * returns how many it deleted and adds each phase's time to ns[1..2].
 */
static long
relay_batch(PGconn *conn, rd_kafka_t *rk, PGresult *rows, int64_t *ns)
{
	int			n = PQntuples(rows);
	bool	   *acked = calloc(n, sizeof(bool));
	long		deleted = 0;
	int64_t		t = now_ns();

	for (int i = 0; i < n; i++)
	{
		size_t		len;
		unsigned char *value = PQunescapeBytea((unsigned char *) PQgetvalue(rows, i, 3), &len);

		produce_one(rk, PQgetvalue(rows, i, 1),
					PQgetisnull(rows, i, 2) ? NULL : PQgetvalue(rows, i, 2),
					value, len, PQgetvalue(rows, i, 4), &acked[i]);
		PQfreemem(value);
	}
	rd_kafka_flush(rk, 60000);
	ns[1] += now_ns() - t;
	t = now_ns();
	for (int i = 0; i < n; i++)
	{
		const char *id = PQgetvalue(rows, i, 0);
		PGresult   *res;

		if (!acked[i])
			continue;
		res = PQexecParams(conn, "DELETE FROM distsys.outbox WHERE id = $1",
						   1, NULL, &id, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			fail("delete: %s", PQerrorMessage(conn));
		PQclear(res);
		deleted++;
	}
	ns[2] += now_ns() - t;
	free(acked);
	return deleted;
}

/*
 * run_naive: the loop; with --until-empty it stops at the first empty
 * fetch, otherwise at SIGTERM.  msgs/s = rows deleted / time from start to
 * the last delete.
 */
int
run_naive(void)
{
	PGconn	   *conn = db_connect();
	rd_kafka_t *rk = producer_new(mark_acked);
	char		limit[16];
	int64_t		start = now_ns(), last_delete = start;
	int64_t		ns[4] = {0};	/* select, produce+flush, delete, sleep */
	long		rows = 0;

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	snprintf(limit, sizeof(limit), "%d", opt.batch);
	while (!stop_requested)
	{
		const char *v[1] = {limit};
		int64_t		t = now_ns();
		PGresult   *res = PQexecParams(conn,
									   "SELECT id, topic, key, payload, message_id"
									   "  FROM distsys.outbox ORDER BY id LIMIT $1",
									   1, NULL, v, NULL, NULL, 0);

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail("select: %s", PQerrorMessage(conn));
		ns[0] += now_ns() - t;
		if (PQntuples(res) == 0 && opt.until_empty)
		{
			PQclear(res);
			break;
		}
		if (PQntuples(res) > 0)
		{
			rows += relay_batch(conn, rk, res, ns);
			last_delete = now_ns();
		}
		PQclear(res);
		t = now_ns();
		sleep_ms(opt.poll_ms);
		ns[3] += now_ns() - t;
	}
	printf("msgs_s=%.0f rows=%ld seconds=%.3f select_s=%.3f produce_flush_s=%.3f "
		   "delete_s=%.3f sleep_s=%.3f\n",
		   rows / ((last_delete - start) / 1e9), rows, (last_delete - start) / 1e9,
		   ns[0] / 1e9, ns[1] / 1e9, ns[2] / 1e9, ns[3] / 1e9);
	fflush(stdout);
	rd_kafka_destroy(rk);
	PQfinish(conn);
	return 0;
}
