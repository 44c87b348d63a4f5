/*-------------------------------------------------------------------------
 *
 * kafka_mock_cmd.c
 *	  The control commands of distsys-kafka-mock: parse one command line and
 *	  apply it to the mock cluster.
 *
 * The commands are one declarative table.  Each applied command is confirmed
 * twice: "applied: CMD" in the log on stderr, and "ok CMD" on stdout, so a
 * test can wait for the confirmation before it relies on the change.  A
 * rejected command gets "error: CMD: REASON" on stdout and in the log, and
 * changes nothing.
 *
 * Only the main thread runs commands.  The rd_kafka_mock_*() calls return
 * once the change is in effect: the request-error stack is changed under
 * the cluster's lock, and every other change is an op that the mock
 * cluster's own thread applies while we wait for its reply (see
 * mock_op_done() for a wake-up it can lose).  So an "ok" line is printed
 * only after the broker behaves as asked.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kafka_mock.h"
#include "log.h"

#define MOCK_MAX_ARGS			8
#define MOCK_MAX_PARTITIONS		1000
#define MOCK_MAX_ERROR_COUNT	1000000
#define MOCK_MAX_RTT_MS			3600000
#define MOCK_TOPIC_NAME_MAX		249
#define MOCK_APIKEY_PRODUCE		0	/* RD_KAFKAP_Produce, not in a public header */
#define MOCK_ERR_PREFIX			"RD_KAFKA_RESP_ERR_"
#define MOCK_OP_PAUSE_US		2000
#define MOCK_SPACE				" \t\r\f\v"

typedef bool (*MockCommandFn) (MockCluster *mc, char **argv,
							   char *errbuf, size_t errlen);

typedef struct MockCommand
{
	const char *name;
	int			min_args;		/* not counting the command name */
	int			max_args;
	MockCommandFn fn;
	const char *usage;
} MockCommand;

static bool cmd_produce_errors(MockCluster *mc, char **argv, char *errbuf, size_t errlen);
static bool cmd_request_errors(MockCluster *mc, char **argv, char *errbuf, size_t errlen);
static bool cmd_broker_down(MockCluster *mc, char **argv, char *errbuf, size_t errlen);
static bool cmd_broker_up(MockCluster *mc, char **argv, char *errbuf, size_t errlen);
static bool cmd_broker_rtt(MockCluster *mc, char **argv, char *errbuf, size_t errlen);
static bool cmd_create_topic(MockCluster *mc, char **argv, char *errbuf, size_t errlen);
static bool cmd_partition_leader(MockCluster *mc, char **argv, char *errbuf, size_t errlen);

static const MockCommand mock_commands[] = {
	{"produce-errors", 1, 2, cmd_produce_errors, "produce-errors N ERR"},
	{"request-errors", 2, 3, cmd_request_errors, "request-errors APIKEY N ERR"},
	{"broker-down", 1, 1, cmd_broker_down, "broker-down ID|all"},
	{"broker-up", 1, 1, cmd_broker_up, "broker-up ID|all"},
	{"broker-rtt", 2, 2, cmd_broker_rtt, "broker-rtt ID|all MS"},
	{"create-topic", 2, 3, cmd_create_topic, "create-topic NAME PARTITIONS [RF]"},
	{"partition-leader", 3, 3, cmd_partition_leader,
	"partition-leader TOPIC PARTITION BROKER_ID"},
};

#define MOCK_NCOMMANDS	(sizeof(mock_commands) / sizeof(mock_commands[0]))

/*
 * mock_parse_long: parse all of s as a decimal integer in [min, max].
 * Returns false, leaving *out alone, if it is not one.
 */
bool
mock_parse_long(const char *s, long min, long max, long *out)
{
	char	   *end;
	long		v;

	if (s == NULL || *s == '\0' || isspace((unsigned char) *s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/*
 * mock_parse_error: map a librdkafka error name, with or without the
 * RD_KAFKA_RESP_ERR_ prefix and in any case, or its number, to the code.
 * Internal errors keep their leading underscore (_TRANSPORT).
 */
static bool
mock_parse_error(const char *s, rd_kafka_resp_err_t *err)
{
	const struct rd_kafka_err_desc *descs;
	size_t		cnt;
	long		code;
	bool		numeric;

	if (strncasecmp(s, MOCK_ERR_PREFIX, strlen(MOCK_ERR_PREFIX)) == 0)
		s += strlen(MOCK_ERR_PREFIX);
	numeric = mock_parse_long(s, INT16_MIN, INT16_MAX, &code);

	rd_kafka_get_err_descs(&descs, &cnt);
	for (size_t i = 0; i < cnt; i++)
	{
		if (descs[i].name == NULL)
			continue;
		if ((numeric && descs[i].code == code) ||
			(!numeric && strcasecmp(descs[i].name, s) == 0))
		{
			*err = descs[i].code;
			return true;
		}
	}
	return false;
}

/*
 * mock_parse_broker: parse a broker id of this cluster (1..broker_cnt), or
 * "all", which the mock API spells -1.
 */
static bool
mock_parse_broker(MockCluster *mc, const char *s, int32_t *id,
				  char *errbuf, size_t errlen)
{
	long		v;

	if (strcmp(s, "all") == 0)
	{
		*id = -1;
		return true;
	}
	if (!mock_parse_long(s, 1, mc->broker_cnt, &v))
	{
		snprintf(errbuf, errlen, "broker id \"%s\" is not \"all\" or 1..%d",
				 s, mc->broker_cnt);
		return false;
	}
	*id = (int32_t) v;
	return true;
}

/*
 * mock_op_done: turn the result of an rd_kafka_mock_*() call that went
 * through the mock thread's op queue into the command's verdict.
 *
 * It also pauses briefly, to dodge a lost wake-up in the mock cluster
 * (librdkafka 2.0.2, unchanged upstream):
 * 1. The mock thread wakes on its wake-up pipe and serves the op queue,
 *    which re-arms the "send a wake-up" flag and replies to our op.
 * 2. Only then does it drain the wake-up pipe.
 * 3. An op we queue between 1 and 2 writes its wake-up byte, which step 2
 *    throws away; the thread then sleeps up to its 1 s timer tick before it
 *    sees the op.
 * Back-to-back ops (two --topic options, a script of commands) hit this
 * every time; a short pause lets step 2 finish first.  Correctness never
 * depends on it: a lost wake-up only costs up to a second.
 */
static bool
mock_op_done(rd_kafka_resp_err_t err, char *errbuf, size_t errlen)
{
	usleep(MOCK_OP_PAUSE_US);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		return true;
	snprintf(errbuf, errlen, "mock cluster refused: %s (%s)",
			 rd_kafka_err2name(err), rd_kafka_err2str(err));
	return false;
}

/*
 * mock_parse_error_spec: parse the "N ERR" of an error command into *count
 * and *err.  ERR may be missing (NULL) when N is 0.
 */
static bool
mock_parse_error_spec(const char *count_s, const char *errname, long *count,
					  rd_kafka_resp_err_t *err, char *errbuf, size_t errlen)
{
	*err = RD_KAFKA_RESP_ERR_NO_ERROR;
	if (!mock_parse_long(count_s, 0, MOCK_MAX_ERROR_COUNT, count))
	{
		snprintf(errbuf, errlen, "count \"%s\" is not 0..%d",
				 count_s, MOCK_MAX_ERROR_COUNT);
		return false;
	}
	if (*count > 0 && errname == NULL)
	{
		snprintf(errbuf, errlen, "an error name is required when the count is not 0");
		return false;
	}
	if (*count > 0 && !mock_parse_error(errname, err))
	{
		snprintf(errbuf, errlen,
				 "unknown error \"%s\"; use a librdkafka name such as NOT_ENOUGH_REPLICAS",
				 errname);
		return false;
	}
	return true;
}

/*
 * mock_set_request_errors: make the next N requests of type apikey fail
 * with ERR ("N ERR" in count_s and errname).  Errors still pending from an
 * earlier command are dropped first, so N always means "the next N", and
 * N = 0 clears them.
 */
static bool
mock_set_request_errors(MockCluster *mc, long apikey, const char *count_s,
						const char *errname, char *errbuf, size_t errlen)
{
	rd_kafka_resp_err_t err;
	rd_kafka_resp_err_t *errs;
	long		count;

	if (!mock_parse_error_spec(count_s, errname, &count, &err, errbuf, errlen))
		return false;

	rd_kafka_mock_clear_request_errors(mc->mcluster, (int16_t) apikey);
	if (count == 0)
		return true;

	errs = malloc(count * sizeof(*errs));
	if (errs == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	for (long i = 0; i < count; i++)
		errs[i] = err;
	rd_kafka_mock_push_request_errors_array(mc->mcluster, (int16_t) apikey,
											(size_t) count, errs);
	free(errs);
	return true;
}

/* cmd_produce_errors: produce-errors N ERR */
static bool
cmd_produce_errors(MockCluster *mc, char **argv, char *errbuf, size_t errlen)
{
	return mock_set_request_errors(mc, MOCK_APIKEY_PRODUCE, argv[0], argv[1],
								   errbuf, errlen);
}

/* cmd_request_errors: request-errors APIKEY N ERR */
static bool
cmd_request_errors(MockCluster *mc, char **argv, char *errbuf, size_t errlen)
{
	long		apikey;

	if (!mock_parse_long(argv[0], 0, INT16_MAX, &apikey))
	{
		snprintf(errbuf, errlen,
				 "API key \"%s\" is not a number 0..%d (Produce=0, Fetch=1, OffsetCommit=8)",
				 argv[0], INT16_MAX);
		return false;
	}
	return mock_set_request_errors(mc, apikey, argv[1], argv[2],
								   errbuf, errlen);
}

/* cmd_broker_down: broker-down ID; drops its connections, refuses new ones */
static bool
cmd_broker_down(MockCluster *mc, char **argv, char *errbuf, size_t errlen)
{
	int32_t		id;

	if (!mock_parse_broker(mc, argv[0], &id, errbuf, errlen))
		return false;
	return mock_op_done(rd_kafka_mock_broker_set_down(mc->mcluster, id),
							 errbuf, errlen);
}

/* cmd_broker_up: broker-up ID; accepts connections again, on the same port */
static bool
cmd_broker_up(MockCluster *mc, char **argv, char *errbuf, size_t errlen)
{
	int32_t		id;

	if (!mock_parse_broker(mc, argv[0], &id, errbuf, errlen))
		return false;
	return mock_op_done(rd_kafka_mock_broker_set_up(mc->mcluster, id),
							 errbuf, errlen);
}

/* cmd_broker_rtt: broker-rtt ID MS; delays every response by MS */
static bool
cmd_broker_rtt(MockCluster *mc, char **argv, char *errbuf, size_t errlen)
{
	int32_t		id;
	long		ms;

	if (!mock_parse_broker(mc, argv[0], &id, errbuf, errlen))
		return false;
	if (!mock_parse_long(argv[1], 0, MOCK_MAX_RTT_MS, &ms))
	{
		snprintf(errbuf, errlen, "round-trip time \"%s\" is not 0..%d ms",
				 argv[1], MOCK_MAX_RTT_MS);
		return false;
	}
	return mock_op_done(rd_kafka_mock_broker_set_rtt(mc->mcluster, id,
														  (int) ms),
							 errbuf, errlen);
}

/* cmd_create_topic: create-topic NAME PARTITIONS [RF] */
static bool
cmd_create_topic(MockCluster *mc, char **argv, char *errbuf, size_t errlen)
{
	long		partitions;
	long		replication = mc->broker_cnt < 3 ? mc->broker_cnt : 3;

	if (!mock_parse_long(argv[1], 1, MOCK_MAX_PARTITIONS, &partitions))
	{
		snprintf(errbuf, errlen, "partition count \"%s\" is not 1..%d",
				 argv[1], MOCK_MAX_PARTITIONS);
		return false;
	}
	if (argv[2] != NULL &&
		!mock_parse_long(argv[2], 1, mc->broker_cnt, &replication))
	{
		snprintf(errbuf, errlen, "replication factor \"%s\" is not 1..%d",
				 argv[2], mc->broker_cnt);
		return false;
	}
	return mock_create_topic(mc, argv[0], partitions, replication,
							 errbuf, errlen);
}

/* cmd_partition_leader: partition-leader TOPIC PARTITION BROKER_ID */
static bool
cmd_partition_leader(MockCluster *mc, char **argv, char *errbuf, size_t errlen)
{
	long		partition;
	long		broker;

	if (!mock_parse_long(argv[1], 0, MOCK_MAX_PARTITIONS - 1, &partition))
	{
		snprintf(errbuf, errlen, "partition \"%s\" is not 0..%d",
				 argv[1], MOCK_MAX_PARTITIONS - 1);
		return false;
	}
	if (!mock_parse_long(argv[2], -1, mc->broker_cnt, &broker) || broker == 0)
	{
		snprintf(errbuf, errlen,
				 "broker id \"%s\" is not 1..%d (or -1 for no leader)",
				 argv[2], mc->broker_cnt);
		return false;
	}
	return mock_op_done(
		rd_kafka_mock_partition_set_leader(mc->mcluster, argv[0],
										   (int32_t) partition,
										   (int32_t) broker),
		errbuf, errlen);
}

/*
 * mock_topic_name_ok: whether name is a legal Kafka topic name (1..249 of
 * [A-Za-z0-9._-], and not "." or "..").
 */
static bool
mock_topic_name_ok(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > MOCK_TOPIC_NAME_MAX ||
		strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (const char *p = name; *p; p++)
	{
		if (!isalnum((unsigned char) *p) && *p != '.' && *p != '_' && *p != '-')
			return false;
	}
	return true;
}

/*
 * mock_check_topic: whether a topic of this name and shape can be created
 * on a cluster of broker_cnt brokers; if not, errbuf says why.  The mock
 * itself checks none of it.
 */
bool
mock_check_topic(const char *name, long partitions, long replication,
				 int broker_cnt, char *errbuf, size_t errlen)
{
	if (!mock_topic_name_ok(name))
	{
		snprintf(errbuf, errlen,
				 "topic name \"%s\" is not 1..%d characters of [A-Za-z0-9._-]",
				 name, MOCK_TOPIC_NAME_MAX);
		return false;
	}
	if (partitions < 1 || partitions > MOCK_MAX_PARTITIONS)
	{
		snprintf(errbuf, errlen, "partition count %ld is not 1..%d",
				 partitions, MOCK_MAX_PARTITIONS);
		return false;
	}
	if (replication < 1 || replication > broker_cnt)
	{
		snprintf(errbuf, errlen, "replication factor %ld is not 1..%d",
				 replication, broker_cnt);
		return false;
	}
	return true;
}

/*
 * mock_create_topic: create a topic on the cluster.  Used by --topic and by
 * create-topic.  Returns false with errbuf filled if the name or the counts
 * are bad or the topic exists.
 */
bool
mock_create_topic(MockCluster *mc, const char *name, long partitions,
				  long replication, char *errbuf, size_t errlen)
{
	rd_kafka_resp_err_t err;

	if (!mock_check_topic(name, partitions, replication, mc->broker_cnt,
						  errbuf, errlen))
		return false;
	err = rd_kafka_mock_topic_create(mc->mcluster, name, (int) partitions,
									 (int) replication);
	if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
	{
		(void) mock_op_done(err, errbuf, errlen);
		snprintf(errbuf, errlen, "topic \"%s\" already exists", name);
		return false;
	}
	return mock_op_done(err, errbuf, errlen);
}

/*
 * mock_split: split line in place into at most MOCK_MAX_ARGS words, and
 * write the words joined by single spaces into norm.  Returns the number of
 * words, or -1 if there are too many.
 */
static int
mock_split(char *line, char **argv, char *norm, size_t normlen)
{
	int			argc = 0;
	size_t		used = 0;
	char	   *save;

	norm[0] = '\0';
	for (char *tok = strtok_r(line, MOCK_SPACE, &save); tok != NULL;
		 tok = strtok_r(NULL, MOCK_SPACE, &save))
	{
		if (argc == MOCK_MAX_ARGS)
			return -1;
		argv[argc++] = tok;
		used += snprintf(norm + used, normlen - used, "%s%s",
						 used > 0 ? " " : "", tok);
		if (used >= normlen)
			used = normlen - 1;
	}
	return argc;
}

/*
 * mock_find_command: the table entry named name, or NULL.
 */
static const MockCommand *
mock_find_command(const char *name)
{
	for (size_t i = 0; i < MOCK_NCOMMANDS; i++)
	{
		if (strcmp(mock_commands[i].name, name) == 0)
			return &mock_commands[i];
	}
	return NULL;
}

/*
 * mock_dispatch: check the argument count of the command in argv[0] and
 * run it.  Returns the command's verdict, with errbuf filled on failure.
 */
static bool
mock_dispatch(MockCluster *mc, int argc, char **argv,
			  char *errbuf, size_t errlen)
{
	const MockCommand *cmd = mock_find_command(argv[0]);

	if (cmd == NULL)
	{
		snprintf(errbuf, errlen,
				 "unknown command \"%s\"; known: produce-errors, request-errors, broker-down, broker-up, broker-rtt, create-topic, partition-leader",
				 argv[0]);
		return false;
	}
	if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
	{
		snprintf(errbuf, errlen, "usage: %s", cmd->usage);
		return false;
	}
	return cmd->fn(mc, argv + 1, errbuf, errlen);
}

/*
 * mock_command_run: apply one control line and confirm or reject it on
 * stdout and in the log.  Blank lines and lines starting with '#' are
 * ignored silently.
 */
void
mock_command_run(MockCluster *mc, const char *line)
{
	char		copy[CONTROL_LINE_MAX];
	char		norm[CONTROL_LINE_MAX];
	char		errbuf[MOCK_ERRMSG_MAX];
	char	   *argv[MOCK_MAX_ARGS + 1] = {NULL};
	int			argc;

	snprintf(copy, sizeof(copy), "%s", line);
	argc = mock_split(copy, argv, norm, sizeof(norm));
	if (argc == 0 || (argc > 0 && argv[0][0] == '#'))
		return;

	if (argc < 0)
		snprintf(errbuf, sizeof(errbuf), "more than %d words", MOCK_MAX_ARGS);
	if (argc > 0 && mock_dispatch(mc, argc, argv, errbuf, sizeof(errbuf)))
	{
		log_info("applied: %s", norm);
		printf("ok %s\n", norm);
	}
	else
	{
		log_error("rejected: %s: %s", norm, errbuf);
		printf("error: %s: %s\n", norm, errbuf);
	}
	fflush(stdout);
}
