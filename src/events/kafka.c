/* events/kafka: see kafka.h. */
#include "events/kafka.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

#define ERRLOG_INTERVAL_MS 10000

/* librdkafka's syslog levels onto ours. */
static log_level_t map_level(int syslog_level)
{
    if (syslog_level <= 3) /* emerg, alert, crit, err */
        return LOG_ERROR;
    if (syslog_level == 4)
        return LOG_WARN;
    if (syslog_level <= 6) /* notice, info */
        return LOG_INFO;
    return LOG_DEBUG;
}

void events_kafka_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_level_t l = map_level(level);
    if (log_enabled(l))
        log_emit(l, "kafka", LOG_STR("client", rd_kafka_name(rk)), LOG_STR("facility", fac),
                 LOG_STR("detail", buf), LOG_END);
}

void events_kafka_log_error(events_kafka_errlog_t *log, uint64_t now, const char *what, int err,
                            const char *reason)
{
    int slot = 0;
    for (int i = 0; i < EVENTS_KAFKA_ERRLOG_SLOTS; i++) {
        if (log->slot[i].err == err && log->slot[i].last_ms) {
            slot = i;
            break;
        }
        if (log->slot[i].last_ms < log->slot[slot].last_ms)
            slot = i; /* least recently used, if err has no slot */
    }
    if (log->slot[slot].err == err && log->slot[slot].last_ms &&
        now - log->slot[slot].last_ms < ERRLOG_INTERVAL_MS) {
        log->slot[slot].suppressed++;
        return;
    }
    unsigned suppressed = log->slot[slot].err == err ? log->slot[slot].suppressed : 0;
    log_warn(what, LOG_STR("error", rd_kafka_err2name(err)), LOG_STR("reason", reason),
             LOG_INT("suppressed", suppressed));
    log->slot[slot].err = err;
    log->slot[slot].last_ms = now ? now : 1;
    log->slot[slot].suppressed = 0;
}

int events_kafka_conf_set(rd_kafka_conf_t *conf, const char *who, const char *name,
                          const char *value, char *err, size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "%s %s=%s: %s", who, name, value, why);
    return -1;
}

int events_kafka_conf_all(rd_kafka_conf_t *conf, const char *who, const char *const (*settings)[2],
                          size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (events_kafka_conf_set(conf, who, settings[i][0], settings[i][1], err, errlen))
            return -1;
    return 0;
}

int events_kafka_conf_auth(rd_kafka_conf_t *conf, const char *who, const events_kafka_auth_t *auth,
                           char *err, size_t errlen)
{
    const char *const settings[][2] = {
        {"security.protocol", auth->security_protocol},
        {"sasl.mechanisms", auth->sasl_mechanism},
        {"sasl.username", auth->sasl_username},
        {"sasl.password", auth->sasl_password},
    };
    bool sasl = auth->security_protocol && strncmp(auth->security_protocol, "sasl", 4) == 0;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        if (!settings[i][1] || !settings[i][1][0] || (i > 0 && !sasl))
            continue;
        if (events_kafka_conf_set(conf, who, settings[i][0], settings[i][1], err, errlen))
            return -1;
    }
    return 0;
}

int events_kafka_stats_brokers_up(json_t *stats)
{
    json_t *brokers = json_object_get(stats, "brokers");
    if (!json_is_object(brokers))
        return -1;
    const char *name;
    json_t *b;
    json_object_foreach(brokers, name, b) {
        json_t *id = json_object_get(b, "nodeid");
        const char *state = json_string_value(json_object_get(b, "state"));
        if (json_is_integer(id) && json_integer_value(id) >= 0 && state && strcmp(state, "UP") == 0)
            return 1;
    }
    return 0;
}
