/* config: table-driven settings from the environment and flags. */
#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>


typedef enum option_kind {
    OPT_INT,
    OPT_LONG,
    OPT_BOOL,
    OPT_STRING,
    OPT_CHOICE,
    OPT_NAME, /* a Kafka topic or Dapr component name: 1-249 of [A-Za-z0-9._-] */
} option_kind_t;

typedef struct option {
    const char *env;
    option_kind_t kind;
    size_t offset;
    size_t size;          /* OPT_STRING: capacity of the char array */
    const char *fallback; /* default, as text */
    long min, max;        /* OPT_INT, OPT_LONG */
    const char *const *choices; /* OPT_CHOICE: NULL-terminated */
    const char *help;
} option_t;

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"json", "text", NULL};
static const char *const events_consumers[] = {"kafka", "dapr", "none", NULL};
static const char *const kafka_protocols[] = {"plaintext", "sasl_plaintext", "ssl", "sasl_ssl", NULL};
static const char *const kafka_mechanisms[] = {"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", NULL};

#define FIELD(f) offsetof(config_t, f), sizeof(((config_t *)0)->f)
#define KIB 1024L
#define MIB (1024L * 1024L)

static const option_t options[] = {
    {"HOST", OPT_STRING, FIELD(host), "0.0.0.0", 0, 0, NULL,
     "address to listen on (numeric, or a name resolved once at start-up)"},
    {"PORT", OPT_INT, FIELD(port), "8080", 0, 65535, NULL,
     "TCP port; 0 picks a free one and logs it"},
    {"LOG_LEVEL", OPT_CHOICE, FIELD(log_level), "info", 0, 0, log_levels,
     "debug | info | warn | error"},
    {"LOG_FORMAT", OPT_CHOICE, FIELD(log_format), "json", 0, 0, log_formats,
     "json (one object per line) | text"},
    {"ACCESS_LOG", OPT_BOOL, FIELD(access_log), "1", 0, 0, NULL,
     "one log line per request (1 | 0)"},
    {"MAX_BODY_BYTES", OPT_LONG, FIELD(max_body_bytes), "1048576", 0, 64 * MIB, NULL,
     "largest request body; more is answered 413"},
    {"MAX_HEADER_BYTES", OPT_LONG, FIELD(max_header_bytes), "16384", 1 * KIB, 1 * MIB, NULL,
     "largest request line plus headers; more is answered 431"},
    {"MAX_URL_BYTES", OPT_LONG, FIELD(max_url_bytes), "8192", 256, 1 * MIB, NULL,
     "longest request target; longer is answered 414"},
    {"MAX_HEADERS", OPT_INT, FIELD(max_headers), "100", 8, 10000, NULL,
     "most header fields in one request; more is answered 431"},
    {"MAX_CONNECTIONS", OPT_INT, FIELD(max_connections), "20000", 1, 1000000, NULL,
     "open client connections; further ones are closed at once"},
    {"MAX_PIPELINE", OPT_INT, FIELD(max_pipeline), "16", 1, 10000, NULL,
     "requests in flight on one connection before reading pauses"},
    {"MAX_OUTPUT_BYTES", OPT_LONG, FIELD(max_output_bytes), "1048576", 4 * KIB, 1024 * MIB, NULL,
     "unsent response bytes on one connection before reading pauses"},
    {"HEADER_TIMEOUT_MS", OPT_INT, FIELD(header_timeout_ms), "10000", 1, 3600000, NULL,
     "a request head must arrive within this from its first byte"},
    {"BODY_TIMEOUT_MS", OPT_INT, FIELD(body_timeout_ms), "30000", 1, 3600000, NULL,
     "a request body must arrive within this after its head"},
    {"IDLE_TIMEOUT_MS", OPT_INT, FIELD(idle_timeout_ms), "30000", 1, 86400000, NULL,
     "an idle keep-alive connection, or one whose client stops reading, is closed after this"},
    {"SHUTDOWN_TIMEOUT_MS", OPT_INT, FIELD(shutdown_timeout_ms), "10000", 0, 3600000, NULL,
     "on SIGTERM, in-flight requests get this long to finish"},
    {"DATABASE_URL", OPT_STRING, FIELD(database_url), "", 0, 0, NULL,
     "PostgreSQL connection URI (postgresql://user@host:port/db); unset = no tasks API"},
    {"DB_POOL_SIZE", OPT_INT, FIELD(db_pool_size), "12", 1, 64, NULL,
     "database connections; each carries many statements at once (pipeline mode)"},
    {"DB_QUEUE_MAX", OPT_INT, FIELD(db_queue_max), "1024", 1, 1000000, NULL,
     "statements waiting for a connection before requests get 503"},
    {"DB_QUEUE_TIMEOUT_MS", OPT_INT, FIELD(db_queue_timeout_ms), "2000", 1, 600000, NULL,
     "a statement waiting longer than this for a connection fails with 503"},
    {"DB_STATEMENT_TIMEOUT_MS", OPT_INT, FIELD(db_statement_timeout_ms), "5000", 1, 3600000, NULL,
     "PostgreSQL statement_timeout for every statement"},
    {"DB_CONNECT_TIMEOUT_MS", OPT_INT, FIELD(db_connect_timeout_ms), "5000", 100, 600000, NULL,
     "a connection attempt (including migrations) taking longer is retried"},
    {"AUTH_JWT_SECRET", OPT_STRING, FIELD(auth_jwt_secret), "", 0, 0, NULL,
     "HS256 key for user tokens, at least 32 bytes; required with DATABASE_URL"},
    {"AUTH_JWT_ISSUER", OPT_STRING, FIELD(auth_jwt_issuer), "", 0, 0, NULL,
     "when set, tokens must carry this iss"},
    {"AUTH_JWT_AUDIENCE", OPT_STRING, FIELD(auth_jwt_audience), "", 0, 0, NULL,
     "when set, tokens' aud must contain this"},
    {"AUTH_CLOCK_SKEW_S", OPT_INT, FIELD(auth_clock_skew_s), "30", 0, 60, NULL,
     "leeway for exp, nbf and iat, in seconds"},
    {"AUTH_DISABLED", OPT_BOOL, FIELD(auth_disabled), "0", 0, 0, NULL,
     "1 trusts the path's user id without a token: development only"},
    {"APP_API_TOKEN", OPT_STRING, FIELD(app_api_token), "", 0, 0, NULL,
     "when set, /dapr/* and /api/events/* need a matching dapr-api-token header"},
    {"KAFKA_BROKERS", OPT_STRING, FIELD(kafka_brokers), "", 0, 0, NULL,
     "bootstrap servers host:port[,...], or \"embedded\" (in-process mock cluster); "
     "empty: events wait in the outbox unpublished"},
    {"KAFKA_TOPIC_TASKS", OPT_NAME, FIELD(kafka_topic_tasks), "tasks", 0, 0, NULL,
     "topic of task events"},
    {"KAFKA_TOPIC_REMINDERS", OPT_NAME, FIELD(kafka_topic_reminders), "reminders", 0, 0, NULL,
     "topic of reminder.due events"},
    {"KAFKA_TOPIC_DLQ", OPT_NAME, FIELD(kafka_topic_dlq), "tasks-dlq", 0, 0, NULL,
     "dead-letter topic"},
    {"KAFKA_SECURITY_PROTOCOL", OPT_CHOICE, FIELD(kafka_security_protocol), "plaintext", 0, 0,
     kafka_protocols, "how the Kafka client connects"},
    {"KAFKA_SASL_MECHANISM", OPT_CHOICE, FIELD(kafka_sasl_mechanism), "SCRAM-SHA-512", 0, 0,
     kafka_mechanisms, "SASL mechanism, with a sasl_* protocol"},
    {"KAFKA_SASL_USERNAME", OPT_STRING, FIELD(kafka_sasl_username), "", 0, 0, NULL,
     "SASL user, with a sasl_* protocol"},
    {"KAFKA_SASL_PASSWORD", OPT_STRING, FIELD(kafka_sasl_password), "", 0, 0, NULL,
     "SASL password, with a sasl_* protocol"},
    {"EVENTS_CONSUMER", OPT_CHOICE, FIELD(events_consumer), "kafka", 0, 0, events_consumers,
     "who delivers consumed events: the built-in Kafka consumer (group todo-backend), the Dapr "
     "sidecar (GET /dapr/subscribe lists the topics), or none"},
    {"DAPR_PUBSUB_NAME", OPT_NAME, FIELD(dapr_pubsub_name), "kafka-pubsub", 0, 0, NULL,
     "the Dapr pub/sub component named in GET /dapr/subscribe"},
    {"EVENTS_MAX_ATTEMPTS", OPT_INT, FIELD(events_max_attempts), "5", 1, 100, NULL,
     "built-in consumer: handler attempts for a record that keeps failing before it goes to "
     "the dead-letter topic"},
    {"REMINDERS_POLL_MS", OPT_INT, FIELD(reminders_poll_ms), "5000", 100, 3600000, NULL,
     "reminder scheduler: the longest it sleeps without looking at the database (the backstop "
     "for a missed notification)"},
    {"KAFKA_QUEUE_MAX", OPT_INT, FIELD(kafka_queue_max), "10000", 1, 1000000, NULL,
     "events in the producer's local queue; past it rows wait in the outbox"},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

/* "MAX_BODY_BYTES" -> "max-body-bytes" */
static void flag_name(const char *env, char *out, size_t outlen)
{
    size_t i = 0;
    for (; env[i] && i + 1 < outlen; i++)
        out[i] = env[i] == '_' ? '-' : (char)(env[i] | 0x20);
    out[i] = '\0';
}

static int parse_integer(const char *text, long min, long max, long *out)
{
    /* strtol would skip leading white space and take a '+'. */
    if (!((*text >= '0' && *text <= '9') || *text == '-'))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The value as it may appear in the one-line error: control bytes would
 * break the line, so they are shown as '?'. */
static const char *printable(const char *value, char *out, size_t outlen)
{
    size_t i = 0;
    for (; value[i] && i + 1 < outlen; i++)
        out[i] = (unsigned char)value[i] < 0x20 || value[i] == 0x7F ? '?' : value[i];
    out[i] = '\0';
    return out;
}

static int apply(config_t *cfg, const option_t *opt, const char *raw_value,
                 const char *origin, char *err, size_t errlen)
{
    char *field = (char *)cfg + opt->offset;
    char shown[72];
    const char *value = raw_value;
    long n;
    switch (opt->kind) {
    case OPT_INT:
    case OPT_LONG:
        if (parse_integer(value, opt->min, opt->max, &n) != 0) {
            snprintf(err, errlen, "invalid %s%s=\"%.64s\": expected an integer from %ld to %ld",
                     origin, opt->env, printable(value, shown, sizeof shown), opt->min, opt->max);
            return -1;
        }
        if (opt->kind == OPT_INT)
            *(int *)field = (int)n;
        else
            *(long *)field = n;
        return 0;
    case OPT_BOOL:
        if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) {
            *(bool *)field = true;
        } else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) {
            *(bool *)field = false;
        } else {
            snprintf(err, errlen, "invalid %s%s=\"%.64s\": expected 1 or 0", origin,
                     opt->env, printable(value, shown, sizeof shown));
            return -1;
        }
        return 0;
    case OPT_STRING:
        if (strlen(value) >= opt->size) {
            snprintf(err, errlen, "invalid %s%s: longer than %zu bytes", origin, opt->env,
                     opt->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case OPT_NAME: {
        size_t len = strlen(value);
        bool ok = len >= 1 && len <= 249 && len < opt->size && strcmp(value, ".") != 0 &&
                  strcmp(value, "..") != 0;
        for (size_t i = 0; ok && i < len; i++)
            ok = (value[i] >= 'a' && value[i] <= 'z') || (value[i] >= 'A' && value[i] <= 'Z') ||
                 (value[i] >= '0' && value[i] <= '9') || value[i] == '.' || value[i] == '_' ||
                 value[i] == '-';
        if (!ok) {
            snprintf(err, errlen,
                     "invalid %s%s=\"%.64s\": expected a name of 1-249 characters from A-Z a-z 0-9 . _ -",
                     origin, opt->env, printable(value, shown, sizeof shown));
            return -1;
        }
        memcpy(field, value, len + 1);
        return 0;
    }
    case OPT_CHOICE:
        for (int i = 0; opt->choices[i]; i++) {
            if (strcmp(value, opt->choices[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        snprintf(err, errlen, "invalid %s%s=\"%.64s\": expected one of", origin, opt->env,
                 printable(value, shown, sizeof shown));
        for (int i = 0; opt->choices[i]; i++) {
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, "%s %s", i ? "," : "", opt->choices[i]);
        }
        return -1;
    }
    return -1;
}

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

config_result_t config_load(config_t *cfg, char *const *envp, int argc,
                            char *const *argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (apply(cfg, &options[i], options[i].fallback, "default ", err, errlen) != 0)
            return CONFIG_ERROR;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *v = env_lookup(envp, options[i].env);
        if (v && apply(cfg, &options[i], v, "", err, errlen) != 0)
            return CONFIG_ERROR;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CONFIG_HELP;
        if (strcmp(arg, "--version") == 0)
            return CONFIG_VERSION;
        char shown[72];
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.64s\" (see --help)",
                     printable(arg, shown, sizeof shown));
            return CONFIG_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const option_t *opt = NULL;
        for (size_t i = 0; i < N_OPTIONS && !opt; i++) {
            char flag[64];
            flag_name(options[i].env, flag, sizeof flag);
            if (strlen(flag) == name_len && strncmp(flag, name, name_len) == 0)
                opt = &options[i];
        }
        if (!opt) {
            snprintf(err, errlen, "unknown flag \"%.64s\" (see --help)",
                     printable(arg, shown, sizeof shown));
            return CONFIG_ERROR;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "flag --%.*s needs a value", (int)name_len, name);
                return CONFIG_ERROR;
            }
            value = argv[++a];
        }
        if (apply(cfg, opt, value, "flag for ", err, errlen) != 0)
            return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

void config_print_help(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s [--flag=value ...]\n"
            "       %s --help | --version\n\n"
            "Every setting is an environment variable and an equal flag; flags win.\n\n",
            prog, prog);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char flag[64];
        flag_name(options[i].env, flag, sizeof flag);
        fprintf(out, "  %-24s --%-24s default %s\n      %s", options[i].env, flag,
                *options[i].fallback ? options[i].fallback : "(unset)", options[i].help);
        if (options[i].kind == OPT_INT || options[i].kind == OPT_LONG)
            fprintf(out, " [%ld..%ld]", options[i].min, options[i].max);
        fputc('\n', out);
    }
}

const char *config_kafka_protocol_name(int index)
{
    return kafka_protocols[index];
}

const char *config_kafka_mechanism_name(int index)
{
    return kafka_mechanisms[index];
}
