/* log: levelled, structured log lines on stderr, as JSON or as text.
 *
 * Lines are gathered in a buffer and written with one write() per loop
 * iteration (log_flush() from a uv_prepare_t) instead of one per line, so an
 * access log costs a memcpy on the request path. Warnings and errors are
 * flushed at once: they matter most when the process is about to die.
 *
 *   log_info("listening", LOG_STR("host", host), LOG_INT("port", port));
 */
#ifndef TODO_CORE_LOG_H
#define TODO_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
} log_level_t;

typedef enum log_format {
    LOG_FORMAT_JSON,
    LOG_FORMAT_TEXT,
} log_format_t;

typedef enum log_field_type {
    LOG_FIELD_END,
    LOG_FIELD_STR,
    LOG_FIELD_STRN,
    LOG_FIELD_INT,
    LOG_FIELD_DOUBLE,
    LOG_FIELD_BOOL,
} log_field_type_t;

typedef struct log_field {
    const char *key;
    log_field_type_t type;
    size_t len;
    union {
        const char *s;
        long long i;
        double d;
    } v;
} log_field_t;

#define LOG_STR(key_, val_) \
    ((log_field_t){.key = (key_), .type = LOG_FIELD_STR, .v.s = (val_)})
#define LOG_STRN(key_, val_, len_) \
    ((log_field_t){.key = (key_), .type = LOG_FIELD_STRN, .len = (len_), .v.s = (val_)})
#define LOG_INT(key_, val_) \
    ((log_field_t){.key = (key_), .type = LOG_FIELD_INT, .v.i = (long long)(val_)})
#define LOG_DOUBLE(key_, val_) \
    ((log_field_t){.key = (key_), .type = LOG_FIELD_DOUBLE, .v.d = (val_)})
#define LOG_BOOL(key_, val_) \
    ((log_field_t){.key = (key_), .type = LOG_FIELD_BOOL, .v.i = !!(val_)})
#define LOG_END ((log_field_t){.key = NULL, .type = LOG_FIELD_END})

void log_setup(log_level_t level, log_format_t format, int fd);
bool log_enabled(log_level_t level);
/* Takes log_field_t values after msg, ended by LOG_END (the macros add it). */
void log_emit(log_level_t level, const char *msg, ...);
/* Writes out what is buffered. */
void log_flush(void);
/* Parses "debug", "info", "warn" or "error"; -1 when unknown. */
int log_level_parse(const char *s);

#define log_debug(...) \
    do { if (log_enabled(LOG_DEBUG)) log_emit(LOG_DEBUG, __VA_ARGS__, LOG_END); } while (0)
#define log_info(...) \
    do { if (log_enabled(LOG_INFO)) log_emit(LOG_INFO, __VA_ARGS__, LOG_END); } while (0)
#define log_warn(...) log_emit(LOG_WARN, __VA_ARGS__, LOG_END)
#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__, LOG_END)

#endif
