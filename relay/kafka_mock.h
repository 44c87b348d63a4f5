/*-------------------------------------------------------------------------
 *
 * kafka_mock.h
 *	  Shared declarations of distsys-kafka-mock: the cluster handle and the
 *	  control commands (the control channel: control_channel.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_KAFKA_MOCK_H
#define RELAY_KAFKA_MOCK_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "control_channel.h"

#define MOCK_PROGNAME		"distsys-kafka-mock"
#define MOCK_MAX_BROKERS	9
#define MOCK_ERRMSG_MAX		256

/* The running mock cluster and the handle that owns it. */
typedef struct MockCluster
{
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	int			broker_cnt;
} MockCluster;

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
