/* events/kafka: what the producer and the consumer share about librdkafka:
 * its log lines on our log, rate-limited error lines, configuration
 * helpers, and reading broker state out of its statistics.
 *
 * Internal to src/events/ (it includes librdkafka). */
#ifndef TODO_EVENTS_KAFKA_H
#define TODO_EVENTS_KAFKA_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* A log_cb for instances with log.queue=true: it then runs from the poll
 * call, on the loop thread (core/log is not thread-safe). */
void events_kafka_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* Broker errors repeat on every reconnect attempt: one line per error code
 * per 10 s, the next one saying how many were left out. */
#define EVENTS_KAFKA_ERRLOG_SLOTS 8
typedef struct events_kafka_errlog {
    struct {
        int err;
        uint64_t last_ms;
        unsigned suppressed;
    } slot[EVENTS_KAFKA_ERRLOG_SLOTS];
} events_kafka_errlog_t;
void events_kafka_log_error(events_kafka_errlog_t *log, uint64_t now_ms, const char *what,
                            int err, const char *reason);

/* rd_kafka_conf_set with a one-line reason in err; 0 or -1. who names the
 * client in the message ("kafka producer"). */
int events_kafka_conf_set(rd_kafka_conf_t *conf, const char *who, const char *name,
                          const char *value, char *err, size_t errlen);
/* Each {name, value} in turn; stops at the first failure. */
int events_kafka_conf_all(rd_kafka_conf_t *conf, const char *who, const char *const (*settings)[2],
                          size_t n, char *err, size_t errlen);

/* security.protocol (NULL or "" = librdkafka's default), and for a sasl_*
 * protocol the mechanism and credentials. */
typedef struct events_kafka_auth {
    const char *security_protocol, *sasl_mechanism, *sasl_username, *sasl_password;
} events_kafka_auth_t;
int events_kafka_conf_auth(rd_kafka_conf_t *conf, const char *who, const events_kafka_auth_t *auth,
                           char *err, size_t errlen);

/* From a statistics document: 1 when a real broker (node id >= 0; the
 * bootstrap entries and the internal pseudo-broker have -1, and the internal
 * one is always "UP") is UP, 0 when none is, -1 when it says nothing. */
int events_kafka_stats_brokers_up(json_t *stats);

#endif
