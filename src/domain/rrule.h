/* rrule: the RFC 5545 RRULE subset recurring tasks use (docs/api.md).
 *
 * Parsing and validation only here; expanding occurrences belongs to the
 * recurring-tasks issue. */
#ifndef TODO_DOMAIN_RRULE_H
#define TODO_DOMAIN_RRULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rrule_freq {
    RRULE_DAILY,
    RRULE_WEEKLY,
    RRULE_MONTHLY,
    RRULE_YEARLY,
} rrule_freq_t;

#define RRULE_MAX_BYDAY (7 * 5)
#define RRULE_MAX_BYMONTHDAY 31

typedef struct rrule_byday {
    int8_t ordinal; /* 0 = every such weekday; else +-1..53 */
    int8_t weekday; /* 0 = MO .. 6 = SU */
} rrule_byday_t;

typedef struct rrule {
    rrule_freq_t freq;
    int interval; /* >= 1, default 1 */
    rrule_byday_t byday[RRULE_MAX_BYDAY];
    int n_byday;
    int8_t bymonthday[RRULE_MAX_BYMONTHDAY];
    int n_bymonthday;
    int count;        /* 0 = none */
    bool has_until;
    int64_t until_ms; /* UTC; a date-only UNTIL means the end of that day */
    bool until_is_date;
} rrule_t;

/* Parses s (an optional "RRULE:" prefix is accepted; names and values are
 * case-insensitive). Every violation of the subset is an error: unknown or
 * unsupported parts, a repeated part or list value, empty parts, values out
 * of range. On failure returns -1 and writes a short reason for people into
 * err (NUL-terminated, truncated to errlen; err may be NULL). */
int rrule_parse(const char *s, size_t len, rrule_t *out, char *err, size_t errlen);
/* Canonical text: FREQ, INTERVAL (if not 1), BYDAY, BYMONTHDAY, COUNT or
 * UNTIL, in that order, upper case, without the "RRULE:" prefix; list values
 * keep the order they were given in. Writes a NUL-terminated string and
 * returns its length, or -1 when outlen is short (RRULE_FORMAT_MAX always
 * suffices for a rule rrule_parse accepted). */
#define RRULE_FORMAT_MAX 512
int rrule_format(const rrule_t *r, char *out, size_t outlen);

#endif
