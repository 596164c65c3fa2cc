/* timefmt: wall-clock formatting, with no time-zone database and no locale.
 *
 * Timestamps are milliseconds since the Unix epoch (UTC). The civil-date
 * arithmetic is pure so it can be unit-tested without touching the clock. */
#ifndef TODO_CORE_TIMEFMT_H
#define TODO_CORE_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* "2026-11-24T10:00:00.123Z": 24 bytes plus NUL. */
#define TIMEFMT_RFC3339_LEN 24
/* "Tue, 24 Nov 2026 10:00:00 GMT" (RFC 9110 IMF-fixdate): 29 plus NUL. */
#define TIMEFMT_HTTP_DATE_LEN 29

int64_t timefmt_now_ms(void);
/* Writes the UTC RFC 3339 form with milliseconds and 'Z'; out needs
 * TIMEFMT_RFC3339_LEN + 1 bytes. */
void timefmt_rfc3339(int64_t epoch_ms, char *out);
/* Writes the HTTP Date form; out needs TIMEFMT_HTTP_DATE_LEN + 1 bytes. */
void timefmt_http_date(int64_t epoch_s, char *out);

/* Days since 1970-01-01 to a proleptic Gregorian civil date, and back. */
void timefmt_civil_from_days(int64_t days, int *year, int *month, int *day);
int64_t timefmt_days_from_civil(int year, int month, int day);

#endif
