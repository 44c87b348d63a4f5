/*-------------------------------------------------------------------------
 *
 * kafka_conf.h
 *	  librdkafka configuration from distsys-relay's options.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_KAFKA_CONF_H
#define RELAY_KAFKA_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>

#include "options.h"
#include "util.h"

extern bool kafka_set_prop(rd_kafka_conf_t *conf, const char *name, const char *value);
extern rd_kafka_conf_t *kafka_conf_build(const RelayOptions *opts,
										 const char *const defaults[][2], size_t ndefaults,
										 const char *const forced[][2], size_t nforced,
										 const char *who);
extern void kafka_on_log(const rd_kafka_t *k, int level, const char *fac, const char *buf);

#endif							/* RELAY_KAFKA_CONF_H */
