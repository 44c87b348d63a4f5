/*-------------------------------------------------------------------------
 *
 * kafka_conf.c
 *	  librdkafka configuration from distsys-relay's options, shared by the
 *	  producer (publish) and the consumer (consume).
 *
 * Precedence: the caller's defaults, then the user's -X properties, then
 * the properties the caller's guarantees depend on, which override -X with
 * a warning.  Called from the main thread before the client is created.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "kafka_conf.h"
#include "log.h"

/*
 * kafka_set_prop: one property; false after a log line when librdkafka
 * refuses it.
 */
bool
kafka_set_prop(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		err[256];

	if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) == RD_KAFKA_CONF_OK)
		return true;
	log_error("invalid librdkafka property %s=%s: %s", name, value, err);
	return false;
}

/*
 * warn_overridden: a -X property that a forced one replaces.
 */
static void
warn_overridden(const RelayOptions *opts, const char *name, const char *value,
				const char *who)
{
	for (int j = 0; j < opts->kafka.count; j++)
		if (strcmp(opts->kafka.items[j].name, name) == 0 &&
			strcmp(opts->kafka.items[j].value, value) != 0)
			log_warning("-X %s=%s ignored: %s needs %s=%s for its guarantees",
						name, opts->kafka.items[j].value, who, name, value);
}

/*
 * kafka_conf_build: bootstrap servers, defaults, -X, forced properties (see
 * the banner); NULL after a log line if librdkafka refuses one.
 */
rd_kafka_conf_t *
kafka_conf_build(const RelayOptions *opts,
				 const char *const defaults[][2], size_t ndefaults,
				 const char *const forced[][2], size_t nforced, const char *who)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	bool		ok = kafka_set_prop(conf, "bootstrap.servers", opts->brokers);

	for (size_t i = 0; i < ndefaults; i++)
		ok = ok && kafka_set_prop(conf, defaults[i][0], defaults[i][1]);
	for (int j = 0; j < opts->kafka.count; j++)
		ok = ok && kafka_set_prop(conf, opts->kafka.items[j].name, opts->kafka.items[j].value);
	for (size_t i = 0; i < nforced; i++)
	{
		warn_overridden(opts, forced[i][0], forced[i][1], who);
		ok = ok && kafka_set_prop(conf, forced[i][0], forced[i][1]);
	}
	if (!ok)
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_log_cb(conf, kafka_on_log);
	return conf;
}

/*
 * kafka_on_log: librdkafka's own log, shown at --log-level debug.
 */
void
kafka_on_log(const rd_kafka_t *k, int level, const char *fac, const char *buf)
{
	log_debug("librdkafka %s: %s", fac, buf);
}
