/* timeparse: strict RFC 3339 date-times and exact ISO 8601 durations.
 *
 * Both parsers work on (pointer, length) and never read past len, so the
 * input need not be NUL-terminated; an embedded NUL is just an invalid byte.
 * Arithmetic is checked so that no input, however long its digit runs, can
 * overflow. */
#include "core/timeparse.h"

#include <stdbool.h>

#include "core/timefmt.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads exactly n digits at s[*pos]; advances *pos. */
static bool fixed_digits(const char *s, size_t len, size_t *pos, int n, int *out)
{
    if (len - *pos < (size_t)n)
        return false;
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[*pos + (size_t)i];
        if (!is_digit(c))
            return false;
        v = v * 10 + (c - '0');
    }
    *pos += (size_t)n;
    *out = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *pos, char c)
{
    if (*pos >= len || s[*pos] != c)
        return false;
    (*pos)++;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

int timeparse_rfc3339(const char *s, size_t len, int64_t *epoch_ms)
{
    if (!s)
        return -1;
    size_t pos = 0;
    /* Zeroed: GCC -O3 cannot see that every early return guards them. */
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!fixed_digits(s, len, &pos, 4, &year) || !expect(s, len, &pos, '-') ||
        !fixed_digits(s, len, &pos, 2, &month) || !expect(s, len, &pos, '-') ||
        !fixed_digits(s, len, &pos, 2, &day))
        return -1;
    if (pos >= len || (s[pos] != 'T' && s[pos] != 't'))
        return -1;
    pos++;
    if (!fixed_digits(s, len, &pos, 2, &hour) || !expect(s, len, &pos, ':') ||
        !fixed_digits(s, len, &pos, 2, &minute) || !expect(s, len, &pos, ':') ||
        !fixed_digits(s, len, &pos, 2, &second))
        return -1;

    int ms = 0;
    if (pos < len && s[pos] == '.') {
        pos++;
        size_t start = pos;
        while (pos < len && is_digit(s[pos])) {
            if (pos - start < 3)
                ms = ms * 10 + (s[pos] - '0');
            pos++;
        }
        size_t n = pos - start;
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            ms *= 10;
    }

    int offset_s = 0;
    if (pos >= len)
        return -1; /* the offset is required */
    if (s[pos] == 'Z' || s[pos] == 'z') {
        pos++;
    } else if (s[pos] == '+' || s[pos] == '-') {
        int sign = s[pos] == '-' ? -1 : 1;
        int oh, om;
        pos++;
        if (!fixed_digits(s, len, &pos, 2, &oh) || !expect(s, len, &pos, ':') ||
            !fixed_digits(s, len, &pos, 2, &om))
            return -1;
        if (oh > 23 || om > 59)
            return -1;
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (pos != len)
        return -1;

    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        return -1;
    if (hour > 23 || minute > 59 || second > 59)
        return -1;

    int64_t days = timefmt_days_from_civil(year, month, day);
    int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
    /* An offset can move 0001-01-01 local time into year 0 UTC, which
     * neither RFC 3339 nor PostgreSQL's timestamptz input accepts. */
    if (secs < timefmt_days_from_civil(1, 1, 1) * 86400)
        return -1;
    *epoch_ms = secs * 1000 + ms;
    return 0;
}

/* Units by designator rank: W, D, H, M, S. */
enum { R_WEEK = 1, R_DAY, R_HOUR, R_MINUTE, R_SECOND };

int timeparse_iso_duration(const char *s, size_t len, int64_t *ms)
{
    int64_t days, time_ms;
    if (timeparse_iso_duration_parts(s, len, &days, &time_ms) != 0)
        return -1;
    /* The parts add back up to the whole the parser kept within int64. */
    *ms = days * 86400000 + time_ms;
    return 0;
}

int timeparse_iso_duration_parts(const char *s, size_t len, int64_t *days_out, int64_t *time_out)
{
    if (!s || len < 3 || s[0] != 'P')
        return -1;
    size_t pos = 1;
    int64_t total = 0, days = 0;
    int last_rank = 0;
    bool in_time = false, any = false, time_any = false;

    while (pos < len) {
        if (s[pos] == 'T') {
            if (in_time)
                return -1;
            in_time = true;
            pos++;
            continue;
        }
        if (!is_digit(s[pos]))
            return -1;
        int64_t n = 0;
        while (pos < len && is_digit(s[pos])) {
            int d = s[pos] - '0';
            if (n > (INT64_MAX - d) / 10)
                return -1;
            n = n * 10 + d;
            pos++;
        }
        int64_t frac_ms = 0;
        bool has_frac = false;
        if (pos < len && s[pos] == '.') {
            has_frac = true;
            pos++;
            size_t start = pos;
            while (pos < len && is_digit(s[pos])) {
                if (pos - start < 3)
                    frac_ms = frac_ms * 10 + (s[pos] - '0');
                pos++;
            }
            size_t nd = pos - start;
            if (nd == 0)
                return -1;
            for (; nd < 3; nd++)
                frac_ms *= 10;
        }
        if (pos >= len)
            return -1; /* a number without its designator */
        char d = s[pos++];
        int rank;
        int64_t unit;
        if (!in_time && d == 'W') {
            rank = R_WEEK;
            unit = INT64_C(7) * 86400000;
        } else if (!in_time && d == 'D') {
            rank = R_DAY;
            unit = 86400000;
        } else if (in_time && d == 'H') {
            rank = R_HOUR;
            unit = 3600000;
        } else if (in_time && d == 'M') {
            rank = R_MINUTE;
            unit = 60000;
        } else if (in_time && d == 'S') {
            rank = R_SECOND;
            unit = 1000;
        } else {
            return -1; /* Y, M (months), unknown, or a part on the wrong side of T */
        }
        if (rank <= last_rank)
            return -1; /* out of order or repeated */
        if (rank == R_WEEK && pos != len)
            return -1; /* weeks stand alone: "PnW" */
        if (has_frac && rank != R_SECOND)
            return -1;
        if (n > (INT64_MAX - total - frac_ms) / unit)
            return -1;
        total += n * unit + frac_ms;
        if (!in_time)
            days += n * (unit / 86400000);
        last_rank = rank;
        any = true;
        if (in_time)
            time_any = true;
    }
    if (!any || (in_time && !time_any))
        return -1;
    *days_out = days;
    *time_out = total - days * 86400000;
    return 0;
}
