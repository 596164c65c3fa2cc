/* buf: a growable byte buffer with a hard cap.
 *
 * Every buffer in the service has a maximum size fixed when it is created;
 * an append that would exceed it fails (returns -1) and leaves the buffer
 * unchanged, so overflow turns into an error response instead of unbounded
 * memory. Contents are not NUL-terminated unless buf_cstr() is called. */
#ifndef TODO_CORE_BUF_H
#define TODO_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;      /* bytes allocated */
    size_t max;      /* hard cap on len */
} buf_t;

#define BUF_MUSTCHECK __attribute__((warn_unused_result))

void buf_init(buf_t *b, size_t max);
void buf_free(buf_t *b);
/* Empties the buffer but keeps its allocation for reuse. */
static inline void buf_clear(buf_t *b) { b->len = 0; }

BUF_MUSTCHECK int buf_reserve(buf_t *b, size_t extra);
BUF_MUSTCHECK int buf_append(buf_t *b, const void *data, size_t len);
BUF_MUSTCHECK int buf_append_str(buf_t *b, const char *s);
BUF_MUSTCHECK int buf_append_char(buf_t *b, char c);
BUF_MUSTCHECK int buf_printf(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
BUF_MUSTCHECK int buf_vprintf(buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
BUF_MUSTCHECK int buf_append_u64(buf_t *b, unsigned long long v);
/* Appends s as the inside of a JSON string (quotes not included): escapes
 * quote, backslash and control bytes; invalid UTF-8 bytes become U+FFFD so
 * the output is always valid JSON. */
BUF_MUSTCHECK int buf_append_json_escaped(buf_t *b, const char *s, size_t len);
/* Appends s as a quoted JSON string (escaped as above). */
BUF_MUSTCHECK int buf_append_json_string(buf_t *b, const char *s);
/* NUL-terminates (not counted in len) and returns data, or NULL when full. */
const char *buf_cstr(buf_t *b);
/* Hands the allocation to the caller and leaves the buffer empty. */
char *buf_steal(buf_t *b, size_t *len);

#endif
