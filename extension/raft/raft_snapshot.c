/*-------------------------------------------------------------------------
 *
 * raft_snapshot.c
 *	  Snapshots of the key-value state machine: taken by the worker to
 *	  compact its log, sent by a leader to a node too far behind, and
 *	  installed into the tables.
 *
 * A snapshot is the applied state as of its index: every row of
 * distsys.raft_kv, of the client table distsys.raft_clients (so a write
 * sent twice is still applied once after a snapshot) and of
 * distsys.raft_nodes (so a node that catches up by snapshot knows the
 * added members' URIs).  The worker is the only writer of those tables
 * and takes a snapshot right after an applying transaction committed, so
 * the tables hold exactly the state at the applied index.
 *
 * Format (little-endian, like the rest of Raft's bytes): magic "DSKV",
 * version 1, then three sections, each a row count and its rows:
 *	kv:      key length, key, value length, value (jsonb text), index
 *	clients: origin, nonce, slot, seq
 *	nodes:   id, URI length, URI
 * Installing checks every length against the data: a snapshot comes from
 * another node.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "raftnode.h"
#include "raft_kv.h"
#include "spi_util.h"

#define SNAP_MAGIC		"DSKV"
#define SNAP_VERSION	1

/* ---- taking ---- */

static void
put_text(StringInfo out, const char *s)
{
	uint32		len = strlen(s);

	raft_put_u32(out, len);
	appendBinaryStringInfo(out, s, len);
}

/*
 * section: the rows of one query, each column written by its kind
 * ('t' text, 'i' integer as u64), after the row count.
 */
static void
section(StringInfo out, SPIPlanPtr *plan, const char *sql, const char *kinds)
{
	distsys_spi_run(plan, sql, 0, NULL, NULL, NULL, true);
	raft_put_u32(out, (uint32) SPI_processed);
	for (uint64 r = 0; r < SPI_processed; r++)
		for (int c = 0; kinds[c]; c++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1);

			if (kinds[c] == 't')
				put_text(out, v);
			else
				raft_put_u64(out, (uint64) pg_strtoint64(v));
		}
}

/*
 * raft_snapshot_take: the tables' state as snapshot data (palloc'd in the
 * caller's context).
 */
void
raft_snapshot_take(StringInfo out)
{
	static SPIPlanPtr plan_kv = NULL;
	static SPIPlanPtr plan_clients = NULL;
	static SPIPlanPtr plan_nodes = NULL;
	MemoryContext outer = CurrentMemoryContext;
	StringInfoData buf;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, SNAP_MAGIC, 4);
	appendStringInfoChar(&buf, SNAP_VERSION);
	section(&buf, &plan_kv, "SELECT key, value::text, index FROM distsys.raft_kv ORDER BY key", "tti");
	section(&buf, &plan_clients, "SELECT origin, nonce, slot, seq FROM distsys.raft_clients ORDER BY 1, 2, 3", "iiii");
	section(&buf, &plan_nodes, "SELECT id, uri FROM distsys.raft_nodes ORDER BY id", "it");
	{
		MemoryContext old = MemoryContextSwitchTo(outer);

		initStringInfo(out);
		appendBinaryStringInfo(out, buf.data, buf.len);
		MemoryContextSwitchTo(old);
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/* ---- installing ---- */

typedef struct Cursor
{
	const uint8 *p;
	size_t		left;
} Cursor;

static void pg_attribute_noreturn()
malformed(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("distsys raft: a snapshot to install is malformed")));
}

static const uint8 *
take(Cursor *c, size_t n)
{
	const uint8 *p = c->p;

	if (c->left < n)
		malformed();
	c->p += n;
	c->left -= n;
	return p;
}

static uint64
take_u64(Cursor *c)
{
	return raft_get_u64(take(c, 8));
}

static Datum
take_text(Cursor *c)
{
	uint32		len = raft_get_u32(take(c, 4));

	return PointerGetDatum(cstring_to_text_with_len((const char *) take(c, len), (int) len));
}

/*
 * insert_rows: a section's rows through an INSERT with columns of types
 * (TEXTOID read as text, INT8OID/INT4OID read as u64).
 */
static void
insert_rows(Cursor *c, SPIPlanPtr *plan, const char *sql, int n, Oid *types)
{
	uint32		rows = raft_get_u32(take(c, 4));
	Datum		args[4];

	for (uint32 r = 0; r < rows; r++)
	{
		for (int k = 0; k < n; k++)
			args[k] = types[k] == TEXTOID ? take_text(c) :
				types[k] == INT4OID ? Int32GetDatum((int32) take_u64(c)) :
				Int64GetDatum((int64) take_u64(c));
		distsys_spi_run(plan, sql, n, types, args, NULL, false);
	}
}

/*
 * learn_nodes: the URIs of the installed nodes, for the transport.
 */
static void
learn_nodes(void)
{
	static SPIPlanPtr plan = NULL;

	distsys_spi_run(&plan, "SELECT id, uri FROM distsys.raft_nodes", 0, NULL, NULL, NULL, false);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *id = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		char	   *uri = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);

		raft_members_learn((uint64) pg_strtoint64(id), uri, strlen(uri));
	}
}

/*
 * raft_snapshot_install: replace the tables with snapshot s and record its
 * index as applied, in one transaction.
 */
void
raft_snapshot_install(const RaftSnapshot *s)
{
	static SPIPlanPtr plan_clear[3] = {NULL, NULL, NULL};
	static const char *const tables[3] = {"raft_kv", "raft_clients", "raft_nodes"};
	static SPIPlanPtr plan_kv = NULL;
	static SPIPlanPtr plan_clients = NULL;
	static SPIPlanPtr plan_nodes = NULL;
	Oid			kv_types[3] = {TEXTOID, TEXTOID, INT8OID};
	Oid			client_types[4] = {INT8OID, INT8OID, INT4OID, INT8OID};
	Oid			node_types[2] = {INT8OID, TEXTOID};
	Cursor		c = {s->data, s->len};

	if (memcmp(take(&c, 4), SNAP_MAGIC, 4) != 0 || *take(&c, 1) != SNAP_VERSION)
		malformed();
	raft_apply_begin();
	for (int t = 0; t < 3; t++)
		distsys_spi_run(&plan_clear[t], psprintf("DELETE FROM distsys.%s", tables[t]),
						0, NULL, NULL, NULL, false);
	insert_rows(&c, &plan_kv, "INSERT INTO distsys.raft_kv (key, value, index) VALUES ($1, $2::jsonb, $3)",
				3, kv_types);
	insert_rows(&c, &plan_clients, "INSERT INTO distsys.raft_clients (origin, nonce, slot, seq) VALUES ($1, $2, $3, $4)",
				4, client_types);
	insert_rows(&c, &plan_nodes, "INSERT INTO distsys.raft_nodes (id, uri) VALUES ($1, $2)",
				2, node_types);
	if (c.left != 0)
		malformed();
	learn_nodes();
	raft_apply_commit(s->index);
	ereport(LOG,
			(errmsg("distsys raft: node %d installed a snapshot at index " UINT64_FORMAT " (%zu bytes)",
					distsys_node_id, s->index, s->len)));
}
