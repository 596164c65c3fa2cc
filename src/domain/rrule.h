/* rrule: the RFC 5545 RRULE subset recurring tasks use (docs/api.md):
 * parsing, validation, canonical text, and next-occurrence expansion.
 *
 * Expansion is pure civil-time arithmetic on local wall-clock values: no
 * time zones and no libc time functions. The caller converts the task's UTC
 * due time to its zone's wall clock, asks for the next instance, and converts
 * the answer back, so the wall-clock time of day stays the same across DST
 * changes by construction. */
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

/* A local wall-clock date-time (proleptic Gregorian, no zone). Valid values:
 * year 1..9999, month 1..12, day within the month, hour 0..23, minute 0..59,
 * second 0..59, millisecond 0..999. */
typedef struct rrule_civil {
    int year, month, day, hour, minute, second, millisecond;
} rrule_civil_t;

/* Parses "YYYY-MM-DD HH:MM:SS[.f]" (PostgreSQL's timestamp text; 'T' is also
 * accepted as the separator) with 1 to 6 fraction digits, truncated to
 * milliseconds. Nothing may follow. Returns 0, or -1 (out unchanged) for
 * anything malformed or out of range. */
int rrule_civil_parse(const char *s, rrule_civil_t *out);
/* Writes "YYYY-MM-DDTHH:MM:SS.mmm" and a NUL: RRULE_CIVIL_FORMAT_LEN + 1
 * bytes. Writes "" instead when c is not valid or outlen is too small
 * (outlen 0 writes nothing). */
#define RRULE_CIVIL_FORMAT_LEN 23
void rrule_civil_format(const rrule_civil_t *c, char *out, size_t outlen);

/* The first instance of r with DTSTART = anchor strictly after `after`.
 *
 * The instances are the anchor itself (always instance 1, as RFC 5545 says
 * of DTSTART) and then every date the rule generates after the anchor's
 * date, in date order, at the anchor's time of day; dates the rule generates
 * before the anchor never count. See docs/api.md "Recurrence" for the
 * per-FREQ rules, including the deliberate clamping of month ends.
 *
 * On success writes the instance to *next and, when index is not NULL, its
 * 1-based number counted from the anchor, and returns 0. Returns 1 when
 * COUNT is exhausted (the next instance's number would exceed r->count);
 * UNTIL is not checked here, since it is a UTC instant the caller compares
 * after converting. Returns -1 when the rule has no further instance at all
 * (e.g. BYMONTHDAY=31 with BYDAY=1MO) or none before 9999-12-31, or when r,
 * anchor or after is invalid. Always terminates: the search stops after one
 * whole Gregorian cycle (400 years) of empty periods.
 *
 * Cost: when index is NULL and r->count is 0 the search starts at the period
 * containing `after`; otherwise the instances from the anchor on are counted
 * one by one (at most COUNT of them, or every period up to `after`). */
int rrule_next(const rrule_t *r, const rrule_civil_t *anchor, const rrule_civil_t *after,
               rrule_civil_t *next, int *index);

#endif
