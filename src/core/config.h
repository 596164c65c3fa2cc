/* config: the service's settings, from the environment and equal flags.
 *
 * Each setting has one row in the table in config.c: its environment name,
 * its flag (the name in lower case with '-' for '_'), a default, bounds and a
 * help line. Flags override the environment. A bad value stops start-up with
 * exit code 2 and one line naming the variable. */
#ifndef TODO_CORE_CONFIG_H
#define TODO_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct config {
    /* Listener */
    char host[256];
    int port;
    /* Logging */
    int log_level;  /* log_level_t */
    int log_format; /* log_format_t */
    bool access_log;
    /* HTTP limits */
    long max_body_bytes;
    long max_header_bytes;
    long max_url_bytes;
    int max_headers;
    int max_connections;
    int max_pipeline;
    long max_output_bytes;
    /* Timeouts, milliseconds */
    int header_timeout_ms;
    int body_timeout_ms;
    int idle_timeout_ms;
    int shutdown_timeout_ms;
    /* Database */
    char database_url[1024];
    int db_pool_size;
    int db_queue_max;
    int db_queue_timeout_ms;
    int db_statement_timeout_ms;
    int db_connect_timeout_ms;
    /* Authentication */
    char auth_jwt_secret[1024];
    char auth_jwt_issuer[256];
    char auth_jwt_audience[256];
    bool auth_disabled;
    int auth_clock_skew_s;
    char app_api_token[256];
    /* Events */
    char kafka_brokers[1024];
    char kafka_topic_tasks[250];
    char kafka_topic_reminders[250];
    char kafka_topic_dlq[250];
    int kafka_queue_max;
    int kafka_security_protocol; /* index into plaintext, sasl_plaintext, ssl, sasl_ssl */
    int kafka_sasl_mechanism;    /* index into SCRAM-SHA-512, SCRAM-SHA-256, PLAIN */
    char kafka_sasl_username[256];
    char kafka_sasl_password[256];
    int events_consumer; /* config_events_consumer_t */
    char dapr_pubsub_name[256];
    int events_max_attempts;
    int reminders_poll_ms;
} config_t;

typedef enum config_events_consumer {
    CONFIG_CONSUMER_KAFKA,
    CONFIG_CONSUMER_DAPR,
    CONFIG_CONSUMER_NONE,
} config_events_consumer_t;

/* The names of the choices above, as librdkafka spells them. */
const char *config_kafka_protocol_name(int index);
const char *config_kafka_mechanism_name(int index);

typedef enum config_result {
    CONFIG_OK,
    CONFIG_HELP,    /* --help was given: print help, exit 0 */
    CONFIG_VERSION, /* --version was given */
    CONFIG_ERROR,   /* the message says what; exit 2 */
} config_result_t;

/* Fills cfg from defaults, then envp (NULL-terminated "NAME=value" list;
 * pass environ), then argv[1..]. On CONFIG_ERROR, err holds one line. */
config_result_t config_load(config_t *cfg, char *const *envp, int argc,
                            char *const *argv, char *err, size_t errlen);
void config_print_help(FILE *out, const char *prog);

#endif
