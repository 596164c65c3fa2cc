/* log: structured log lines, buffered per loop iteration. */
#include "core/log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timefmt.h"

/* Flushed when it passes this size even within one iteration. */
#define LOG_FLUSH_AT (32 * 1024)
/* One line longer than this is cut; the buffer itself never grows past it
 * plus LOG_FLUSH_AT. */
#define LOG_MAX_LINE (16 * 1024)

static struct {
    log_level_t level;
    log_format_t format;
    int fd;
    buf_t out;
    bool ready;
} logger = {.level = LOG_INFO, .format = LOG_FORMAT_JSON, .fd = 2};

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_text[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

void log_setup(log_level_t level, log_format_t format, int fd)
{
    logger.level = level;
    logger.format = format;
    logger.fd = fd;
}

bool log_enabled(log_level_t level)
{
    return level >= logger.level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_flush(void)
{
    size_t off = 0;
    while (off < logger.out.len) {
        ssize_t n = write(logger.fd, logger.out.data + off, logger.out.len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* Nowhere left to report it; drop the lines. */
        }
        off += (size_t)n;
    }
    buf_clear(&logger.out);
}

/* Text values are quoted only when they would otherwise be ambiguous. */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7F)
            return true;
    }
    return false;
}

static int append_string_value(buf_t *b, const char *s, size_t n)
{
    if (logger.format == LOG_FORMAT_TEXT && !needs_quotes(s, n))
        return buf_append(b, s, n);
    if (buf_append_char(b, '"') != 0 || buf_append_json_escaped(b, s, n) != 0)
        return -1;
    return buf_append_char(b, '"');
}

static int append_field(buf_t *b, const log_field_t *f)
{
    int rc;
    if (logger.format == LOG_FORMAT_JSON) {
        rc = buf_append_str(b, ",\"");
        rc = rc ? rc : buf_append_json_escaped(b, f->key, strlen(f->key));
        rc = rc ? rc : buf_append_str(b, "\":");
    } else {
        rc = buf_append_char(b, ' ');
        rc = rc ? rc : buf_append_str(b, f->key);
        rc = rc ? rc : buf_append_char(b, '=');
    }
    if (rc)
        return rc;
    switch (f->type) {
    case LOG_FIELD_STR:
        if (!f->v.s)
            return buf_append_str(b, "null");
        return append_string_value(b, f->v.s, strlen(f->v.s));
    case LOG_FIELD_STRN:
        return append_string_value(b, f->v.s, f->len);
    case LOG_FIELD_INT:
        return buf_printf(b, "%lld", f->v.i);
    case LOG_FIELD_DOUBLE:
        if (!isfinite(f->v.d)) /* JSON has no NaN or infinity */
            return buf_append_str(b, "null");
        return buf_printf(b, "%.3f", f->v.d);
    case LOG_FIELD_BOOL:
        return buf_append_str(b, f->v.i ? "true" : "false");
    case LOG_FIELD_END:
        break;
    }
    return 0;
}

void log_emit(log_level_t level, const char *msg, ...)
{
    if (!log_enabled(level))
        return;
    if (!logger.ready) {
        buf_init(&logger.out, LOG_FLUSH_AT + LOG_MAX_LINE);
        logger.ready = true;
    }
    buf_t *b = &logger.out;
    size_t start = b->len;
    char ts[TIMEFMT_RFC3339_LEN + 1];
    timefmt_rfc3339(timefmt_now_ms(), ts);

    int rc;
    if (logger.format == LOG_FORMAT_JSON) {
        rc = buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                        level_names[level]);
        rc = rc ? rc : buf_append_json_escaped(b, msg, strlen(msg));
        rc = rc ? rc : buf_append_char(b, '"');
    } else {
        rc = buf_printf(b, "%s %s %s", ts, level_text[level], msg);
    }

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        log_field_t f = va_arg(ap, log_field_t);
        if (f.type == LOG_FIELD_END || rc != 0)
            break;
        rc = append_field(b, &f);
    }
    va_end(ap);

    if (rc == 0 && logger.format == LOG_FORMAT_JSON)
        rc = buf_append_char(b, '}');
    if (rc == 0)
        rc = buf_append_char(b, '\n');
    if (rc != 0 || b->len - start > LOG_MAX_LINE) {
        /* Too long for the buffer: keep a marker instead of a torn line. */
        b->len = start;
        if (buf_printf(b, logger.format == LOG_FORMAT_JSON
                              ? "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"log line too long\"}\n"
                              : "%s %s log line too long\n",
                       ts, logger.format == LOG_FORMAT_JSON ? level_names[level]
                                                            : level_text[level]) != 0)
            b->len = start;
    }
    if (level >= LOG_WARN || b->len >= LOG_FLUSH_AT)
        log_flush();
}
