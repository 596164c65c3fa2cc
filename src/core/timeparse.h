/* timeparse: strict parsers for the time formats the API accepts.
 *
 * Pure functions: no clock, no time-zone database. */
#ifndef TODO_CORE_TIMEPARSE_H
#define TODO_CORE_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 3339 date-time: "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)".
 * 'T' and 'Z' may be lower case (RFC 3339 5.6 note); fractional seconds of
 * any length are truncated to milliseconds; seconds = 60 is rejected; the
 * date must exist (no Feb 30). Years 0001-9999. Writes the instant as
 * milliseconds since the Unix epoch. Returns 0, or -1 when s is not valid. */
int timeparse_rfc3339(const char *s, size_t len, int64_t *epoch_ms);

/* ISO 8601 duration without years and months: "PnW", or
 * "P[nD][T[nH][nM][n[.f]S]]" with at least one part. Writes milliseconds,
 * a day counting 24 h; returns 0 or -1. */
int timeparse_iso_duration(const char *s, size_t len, int64_t *ms);
/* The same, with the date part (weeks and days, as a day count) apart from
 * the time part (ms): a calendar day is not always 24 hours, so callers
 * that count in a time zone need to know which is which (RFC 5545 3.3.6:
 * days are nominal, hours exact). */
int timeparse_iso_duration_parts(const char *s, size_t len, int64_t *days, int64_t *time_ms);

#endif
