/*-------------------------------------------------------------------------
 *
 * producer.h
 *	  The relay's idempotent Kafka producer.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RELAY_PRODUCER_H
#define RELAY_PRODUCER_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "options.h"
#include "queue.h"

/* Called (on the main thread, from producer_poll) once per delivery report. */
typedef void (*DeliveryFn) (OutboxMsg *m, rd_kafka_resp_err_t err, void *arg);

extern bool producer_start(const RelayOptions *opts, DeliveryFn fn, void *arg);
extern rd_kafka_resp_err_t producer_send(OutboxMsg *m);
extern void producer_poll(void);
extern int	producer_wakeup_fd(void);
extern bool producer_failed(void);
extern void producer_restart(const RelayOptions *opts);
extern void producer_stop(int drain_ms);
extern bool producer_error_is_permanent(rd_kafka_resp_err_t err);
extern bool producer_error_is_local(rd_kafka_resp_err_t err);

#endif							/* RELAY_PRODUCER_H */
