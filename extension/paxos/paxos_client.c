/*-------------------------------------------------------------------------
 *
 * paxos_client.c
 *	  The SQL API of Paxos among nodes: paxos_propose (a single-decree
 *	  instance) and paxos_cas, paxos_read (CASPaxos registers), each handed
 *	  to this server's Raft worker through the backend's request slot
 *	  (raft_client.c) and answered once this node's learner learned the
 *	  outcome.  paxos_learned and the paxos_instances view are plain SQL
 *	  over distsys.paxos_learned.
 *
 * Like the Raft calls, these are requests to the cluster, not part of the
 * caller's transaction; a call that sees no majority within
 * distsys.raft_request_timeout fails with YR001, and a write may still
 * take effect then.  Values travel as jsonb's canonical text, and a
 * compare-and-set compares those bytes: jsonb values that are equal but
 * print differently (1.0 and 1) do not match.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "distsys.h"
#include "paxosnode.h"
#include "raftnode.h"
#include "raft_kv.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(paxos_propose_sql);
PG_FUNCTION_INFO_V1(paxos_cas_sql);
PG_FUNCTION_INFO_V1(paxos_read_sql);

/*
 * require_member: refuse where Paxos cannot answer: Raft off, a standby
 * (raft_client_require), or a node that is not a founder.
 */
static void
require_member(const char *what)
{
	RaftPeers	founders;

	raft_client_require(what);
	raft_settings_peers(&founders);
	if (!paxos_is_member(&founders, (uint64) distsys_node_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s: node %d is not a Paxos member", what, distsys_node_id),
				 errdetail("The Paxos members are the founding members named in distsys.peers; nodes added with raft_add_node take part in Raft only."),
				 errhint("Send the call to one of the founding members.")));
}

/*
 * name_arg: argument n (an instance name or a key) as the core's name,
 * prefix ':' name.
 */
static PaxosBytes
name_arg(FunctionCallInfo fcinfo, int n, const char *what, const char *arg, char prefix)
{
	text	   *t;
	size_t		len;
	char	   *buf;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: %s must not be NULL", what, arg)));
	t = PG_GETARG_TEXT_PP(n);
	len = VARSIZE_ANY_EXHDR(t);
	if (len == 0 || len > PAXOS_USER_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s must be 1 to %d bytes long, not %zu", what, arg,
						PAXOS_USER_NAME_MAX, len)));
	buf = palloc(len + 2);
	buf[0] = prefix;
	buf[1] = ':';
	memcpy(buf + 2, VARDATA_ANY(t), len);
	return (PaxosBytes) {buf, len + 2};
}

/*
 * value_arg: argument n as jsonb text (absent when NULL and null_ok).
 */
static PaxosValue
value_arg(FunctionCallInfo fcinfo, int n, const char *what, const char *arg, bool null_ok)
{
	Jsonb	   *j;
	char	   *s;

	if (PG_ARGISNULL(n))
	{
		if (null_ok)
			return (PaxosValue) {NULL, 0, false};
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: %s must not be NULL", what, arg),
				 errhint("The JSON value 'null'::jsonb can be used.")));
	}
	j = PG_GETARG_JSONB_P(n);
	s = JsonbToCString(NULL, &j->root, VARSIZE(j));
	return (PaxosValue) {s, strlen(s), true};
}

/*
 * run: one operation through the worker; the answer in *ans (its value's
 * bytes in ans->command, present if ans->index is 1).
 */
static void
run(const char *what, PaxosOpKind op, PaxosBytes name, PaxosValue value,
	PaxosValue expected, RaftRequestSlot *ans)
{
	StringInfoData buf;

	initStringInfo(&buf);
	paxos_request_encode(op, name, value, expected, &buf);
	if (buf.len > RAFT_COMMAND_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: the request is %d bytes, over the limit of %d", what,
						buf.len, RAFT_COMMAND_MAX_BYTES),
				 errhint("Store large values elsewhere and keep a reference in Paxos.")));
	raft_client_submit(what, RAFT_REQ_PAXOS, &buf, ans);
}

/*
 * answer_jsonb: the answer's value as jsonb (NULL datum when absent).
 */
static Datum
answer_jsonb(const RaftRequestSlot *ans, bool *isnull)
{
	*isnull = ans->index == 0;
	if (*isnull)
		return (Datum) 0;
	return DirectFunctionCall1(jsonb_in,
							   CStringGetDatum(pnstrdup((const char *) ans->command, ans->len)));
}

/*
 * learned: the value this node learned for a decree instance, if any.
 */
static Datum
learned(text *instance, bool *isnull)
{
	static SPIPlanPtr plan = NULL;

	return distsys_spi_lookup(&plan, "SELECT value FROM distsys.paxos_learned WHERE instance = $1",
							  PointerGetDatum(instance), isnull);
}

/*
 * paxos_propose(instance text, value jsonb) RETURNS jsonb: the value
 * chosen for instance, which may be another proposer's.  A value this
 * node has learned already is answered without a round: once chosen, it
 * is the instance's value for ever.
 */
Datum
paxos_propose_sql(PG_FUNCTION_ARGS)
{
	const char *what = "paxos_propose";
	PaxosBytes	name = name_arg(fcinfo, 0, what, "instance", PAXOS_DECREE_PREFIX);
	PaxosValue	value = value_arg(fcinfo, 1, what, "value", false);
	PaxosValue	none = {NULL, 0, false};
	RaftRequestSlot *ans;
	bool		isnull;
	Datum		d;

	require_member(what);
	d = learned(PG_GETARG_TEXT_PP(0), &isnull);
	if (!isnull)
		PG_RETURN_DATUM(d);
	ans = palloc(sizeof(RaftRequestSlot));
	run(what, PAXOS_OP_DECREE, name, value, none, ans);
	d = answer_jsonb(ans, &isnull);
	if (isnull)
		elog(ERROR, "paxos_propose: the worker answered no value");
	PG_RETURN_DATUM(d);
}

/*
 * paxos_cas(key text, expected jsonb, value jsonb) RETURNS boolean:
 * expected NULL means "the key is absent".
 */
Datum
paxos_cas_sql(PG_FUNCTION_ARGS)
{
	const char *what = "paxos_cas";
	PaxosBytes	name = name_arg(fcinfo, 0, what, "key", PAXOS_REGISTER_PREFIX);
	PaxosValue	expected = value_arg(fcinfo, 1, what, "expected", true);
	PaxosValue	value = value_arg(fcinfo, 2, what, "value", false);
	RaftRequestSlot *ans = palloc(sizeof(RaftRequestSlot));

	require_member(what);
	run(what, PAXOS_OP_CAS, name, value, expected, ans);
	PG_RETURN_BOOL(ans->result);
}

/*
 * paxos_read(key text) RETURNS jsonb: the register's value, linearizable
 * (a Paxos round: no leader, no lease), NULL when absent.
 */
Datum
paxos_read_sql(PG_FUNCTION_ARGS)
{
	const char *what = "paxos_read";
	PaxosBytes	name = name_arg(fcinfo, 0, what, "key", PAXOS_REGISTER_PREFIX);
	PaxosValue	none = {NULL, 0, false};
	RaftRequestSlot *ans = palloc(sizeof(RaftRequestSlot));
	bool		isnull;
	Datum		d;

	require_member(what);
	run(what, PAXOS_OP_READ, name, none, none, ans);
	d = answer_jsonb(ans, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}
