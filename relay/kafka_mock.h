/*-------------------------------------------------------------------------
 *
 * kafka_mock.h
 *	  Shared declarations of distsys-kafka-mock: the cluster handle, the
 *	  control channel and the control commands.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_KAFKA_MOCK_H
#define RELAY_KAFKA_MOCK_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_PROGNAME		"distsys-kafka-mock"
#define MOCK_MAX_BROKERS	9
#define MOCK_ERRMSG_MAX		256
#define CONTROL_LINE_MAX	1024

/* The running mock cluster and the handle that owns it. */
typedef struct MockCluster
{
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	int			broker_cnt;
} MockCluster;

/*
 * The control channel: a FIFO that is reopened after each writer closes it,
 * or stdin, which is read until end of file.  buf holds the start of a line
 * whose newline has not arrived yet.
 */
typedef struct ControlChannel
{
	const char *path;			/* FIFO path, or NULL for stdin */
	bool		created;		/* we made the FIFO, so we remove it */
	int			fd;				/* -1 once stdin has reached end of file */
	char		buf[CONTROL_LINE_MAX];
	size_t		len;
	bool		overlong;		/* dropping the rest of a too-long line */
} ControlChannel;

typedef void (*ControlLineFn) (const char *line, void *arg);

/* kafka_mock_channel.c */
extern bool control_open(ControlChannel *ch, const char *path,
						 char *errbuf, size_t errlen);
extern bool control_read(ControlChannel *ch, ControlLineFn fn, void *arg);
extern void control_close(ControlChannel *ch);

/* kafka_mock_cmd.c */
extern void mock_command_run(MockCluster *mc, const char *line);
extern bool mock_check_topic(const char *name, long partitions,
							 long replication, int broker_cnt,
							 char *errbuf, size_t errlen);
extern bool mock_create_topic(MockCluster *mc, const char *name,
							  long partitions, long replication,
							  char *errbuf, size_t errlen);
extern bool mock_parse_long(const char *s, long min, long max, long *out);

#endif							/* RELAY_KAFKA_MOCK_H */
