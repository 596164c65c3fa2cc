/* rrule: parse, validate and canonicalize the RRULE subset of docs/api.md,
 * and expand it to the next occurrence on local wall-clock values.
 *
 * The parser works on (pointer, length), never reads past len, and rejects
 * every deviation from the subset with a reason meant for the API's error
 * list. Values from the input that appear in a reason are cut short and
 * reduced to printable ASCII first. */
#include "domain/rrule.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/timefmt.h"

#define INTERVAL_MAX 1000
#define COUNT_MAX 10000

enum part {
    P_FREQ,
    P_INTERVAL,
    P_BYDAY,
    P_BYMONTHDAY,
    P_COUNT,
    P_UNTIL,
    P_COUNT_OF_PARTS,
};

static const char *const part_names[P_COUNT_OF_PARTS] = {
    "FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "COUNT", "UNTIL",
};

/* RFC 5545 parts outside the subset: named "unsupported", not "unknown". */
static const char *const unsupported_parts[] = {
    "BYSECOND", "BYMINUTE", "BYHOUR", "BYWEEKNO", "BYYEARDAY", "BYMONTH", "BYSETPOS", "WKST",
};

static const char *const freq_names[] = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"};
static const char weekday_names[7][3] = {"MO", "TU", "WE", "TH", "FR", "SA", "SU"};

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* s[0..len) equals the upper-case word w, ignoring ASCII case. */
static bool word_eq(const char *s, size_t len, const char *w)
{
    size_t n = strlen(w);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (upper(s[i]) != w[i])
            return false;
    return true;
}

/* A printable, bounded copy of input text for error messages. */
static void show(const char *s, size_t len, char *out, size_t outlen)
{
    const size_t max = 24;
    size_t o = 0;
    for (size_t i = 0; i < len && i < max && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = c >= 0x20 && c < 0x7f ? upper((char)c) : '?';
    }
    if (len > max && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
                                                      const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An unsigned decimal of 1..max_digits digits, nothing else. */
static bool parse_uint(const char *s, size_t len, int max_digits, int *out)
{
    if (len == 0 || len > (size_t)max_digits)
        return false;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* [+-]?digits: at most two digits, so the result fits an int8_t. */
static bool parse_small_signed(const char *s, size_t len, size_t *used, int *out)
{
    size_t i = 0;
    int sign = 1;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '-' ? -1 : 1;
        i++;
    }
    size_t start = i;
    int v = 0;
    while (i < len && is_digit(s[i]) && i - start < 3) {
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (i == start || i - start > 2)
        return false;
    *used = i;
    *out = sign * v;
    return true;
}

static int parse_byday(const char *v, size_t len, rrule_t *out, char *err, size_t errlen)
{
    size_t pos = 0;
    for (;;) {
        size_t end = pos;
        while (end < len && v[end] != ',')
            end++;
        const char *item = v + pos;
        size_t n = end - pos;
        char shown[32];
        show(item, n, shown, sizeof shown);

        int ordinal = 0;
        size_t used = 0;
        if (n > 2 && !parse_small_signed(item, n - 2, &used, &ordinal))
            return fail(err, errlen, "invalid BYDAY value '%s'", shown);
        if (n < 2 || used != n - 2 || (used > 0 && ordinal == 0) || ordinal > 53 ||
            ordinal < -53)
            return fail(err, errlen, "invalid BYDAY value '%s'", shown);
        int wd = -1;
        for (int i = 0; i < 7; i++)
            if (upper(item[n - 2]) == weekday_names[i][0] &&
                upper(item[n - 1]) == weekday_names[i][1])
                wd = i;
        if (wd < 0)
            return fail(err, errlen, "invalid BYDAY value '%s'", shown);
        for (int i = 0; i < out->n_byday; i++)
            if (out->byday[i].ordinal == ordinal && out->byday[i].weekday == wd)
                return fail(err, errlen, "duplicate BYDAY value '%s'", shown);
        if (out->n_byday >= RRULE_MAX_BYDAY)
            return fail(err, errlen, "too many BYDAY values (at most %d)", RRULE_MAX_BYDAY);
        out->byday[out->n_byday].ordinal = (int8_t)ordinal;
        out->byday[out->n_byday].weekday = (int8_t)wd;
        out->n_byday++;
        if (end == len)
            return 0;
        pos = end + 1;
    }
}

static int parse_bymonthday(const char *v, size_t len, rrule_t *out, char *err, size_t errlen)
{
    size_t pos = 0;
    for (;;) {
        size_t end = pos;
        while (end < len && v[end] != ',')
            end++;
        const char *item = v + pos;
        size_t n = end - pos;
        char shown[32];
        show(item, n, shown, sizeof shown);

        int day = 0;
        size_t used = 0;
        if (!parse_small_signed(item, n, &used, &day) || used != n || day == 0 || day > 31 ||
            day < -31)
            return fail(err, errlen, "invalid BYMONTHDAY value '%s' (1 to 31 or -31 to -1)",
                        shown);
        for (int i = 0; i < out->n_bymonthday; i++)
            if (out->bymonthday[i] == day)
                return fail(err, errlen, "duplicate BYMONTHDAY value '%s'", shown);
        if (out->n_bymonthday >= RRULE_MAX_BYMONTHDAY)
            return fail(err, errlen, "too many BYMONTHDAY values (at most %d)",
                        RRULE_MAX_BYMONTHDAY);
        out->bymonthday[out->n_bymonthday++] = (int8_t)day;
        if (end == len)
            return 0;
        pos = end + 1;
    }
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

/* YYYYMMDD or YYYYMMDDTHHMMSSZ (UTC). */
static int parse_until(const char *v, size_t len, rrule_t *out, char *err, size_t errlen)
{
    int y, mo, d, h = 23, mi = 59, s = 59, ms = 999;
    bool date_only = len == 8;
    if (len != 8 && len != 16)
        goto bad;
    if (!parse_uint(v, 4, 4, &y) || !parse_uint(v + 4, 2, 2, &mo) ||
        !parse_uint(v + 6, 2, 2, &d))
        goto bad;
    if (!date_only) {
        if (upper(v[8]) != 'T' || upper(v[15]) != 'Z' || !parse_uint(v + 9, 2, 2, &h) ||
            !parse_uint(v + 11, 2, 2, &mi) || !parse_uint(v + 13, 2, 2, &s))
            goto bad;
        ms = 0;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        s > 59)
        goto bad;
    out->has_until = true;
    out->until_is_date = date_only;
    out->until_ms =
        (timefmt_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000 + ms;
    return 0;
bad:
    return fail(err, errlen, "UNTIL must be a date YYYYMMDD or a UTC time YYYYMMDDTHHMMSSZ");
}

static int parse_value(enum part p, const char *v, size_t len, rrule_t *out, char *err,
                       size_t errlen)
{
    switch (p) {
    case P_FREQ:
        for (int i = 0; i < 4; i++) {
            if (word_eq(v, len, freq_names[i])) {
                out->freq = (rrule_freq_t)i;
                return 0;
            }
        }
        return fail(err, errlen, "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY");
    case P_INTERVAL:
        if (!parse_uint(v, len, 4, &out->interval) || out->interval < 1 ||
            out->interval > INTERVAL_MAX)
            return fail(err, errlen, "INTERVAL must be an integer from 1 to %d", INTERVAL_MAX);
        return 0;
    case P_COUNT:
        if (!parse_uint(v, len, 5, &out->count) || out->count < 1 || out->count > COUNT_MAX)
            return fail(err, errlen, "COUNT must be an integer from 1 to %d", COUNT_MAX);
        return 0;
    case P_BYDAY:
        return parse_byday(v, len, out, err, errlen);
    case P_BYMONTHDAY:
        return parse_bymonthday(v, len, out, err, errlen);
    case P_UNTIL:
        return parse_until(v, len, out, err, errlen);
    case P_COUNT_OF_PARTS:
        break;
    }
    return fail(err, errlen, "internal error");
}

int rrule_parse(const char *s, size_t len, rrule_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->interval = 1;
    if (err && errlen > 0)
        err[0] = '\0';
    if (!s)
        len = 0;

    size_t pos = 0;
    if (len >= 6 && word_eq(s, 6, "RRULE:"))
        pos = 6;
    if (pos == len)
        return fail(err, errlen, "empty rule (FREQ is required)");

    unsigned seen = 0;
    for (;;) {
        size_t end = pos;
        while (end < len && s[end] != ';')
            end++;
        const char *part = s + pos;
        size_t n = end - pos;
        if (n == 0)
            return fail(err, errlen, "empty part (parts are NAME=VALUE separated by ';')");
        size_t eq = 0;
        while (eq < n && part[eq] != '=')
            eq++;
        char shown[32];
        show(part, eq, shown, sizeof shown);
        if (eq == n)
            return fail(err, errlen, "part %s has no '=VALUE'", shown);

        int p = -1;
        for (int i = 0; i < P_COUNT_OF_PARTS; i++)
            if (word_eq(part, eq, part_names[i]))
                p = i;
        if (p < 0) {
            for (size_t i = 0; i < sizeof unsupported_parts / sizeof unsupported_parts[0]; i++)
                if (word_eq(part, eq, unsupported_parts[i]))
                    return fail(err, errlen, "unsupported part %s", shown);
            if (eq == 0)
                return fail(err, errlen, "part with no name");
            return fail(err, errlen, "unknown part %s", shown);
        }
        if (seen & (1u << p))
            return fail(err, errlen, "duplicate part %s", part_names[p]);
        seen |= 1u << p;
        if (eq + 1 == n)
            return fail(err, errlen, "%s has no value", part_names[p]);
        if (parse_value((enum part)p, part + eq + 1, n - eq - 1, out, err, errlen) != 0)
            return -1;
        if (end == len)
            break;
        pos = end + 1;
    }

    if (!(seen & (1u << P_FREQ)))
        return fail(err, errlen, "FREQ is required");
    if ((seen & (1u << P_COUNT)) && (seen & (1u << P_UNTIL)))
        return fail(err, errlen, "COUNT and UNTIL cannot both be given");
    for (int i = 0; i < out->n_byday; i++) {
        int ord = out->byday[i].ordinal;
        if (ord == 0)
            continue;
        if (out->freq != RRULE_MONTHLY && out->freq != RRULE_YEARLY)
            return fail(err, errlen, "BYDAY ordinals are only allowed with MONTHLY or YEARLY");
        if (out->freq == RRULE_MONTHLY && (ord > 5 || ord < -5))
            return fail(err, errlen,
                        "BYDAY ordinals must be 1 to 5 or -5 to -1 with MONTHLY");
    }
    if (out->n_bymonthday > 0 && out->freq == RRULE_WEEKLY)
        return fail(err, errlen, "BYMONTHDAY is not allowed with WEEKLY");
    return 0;
}

/* Bounded appending into out; `ok` turns false once anything did not fit. */
typedef struct writer {
    char *out;
    size_t cap, len;
    bool ok;
} writer_t;

__attribute__((format(printf, 2, 3))) static void put(writer_t *w, const char *fmt, ...)
{
    if (!w->ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->out + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len) {
        w->ok = false;
        return;
    }
    w->len += (size_t)n;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int rrule_format(const rrule_t *r, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return -1;
    out[0] = '\0';
    if ((int)r->freq < 0 || (int)r->freq > 3 || r->n_byday < 0 ||
        r->n_byday > RRULE_MAX_BYDAY || r->n_bymonthday < 0 ||
        r->n_bymonthday > RRULE_MAX_BYMONTHDAY)
        return -1;
    writer_t w = {out, outlen, 0, true};
    put(&w, "FREQ=%s", freq_names[r->freq]);
    if (r->interval != 1)
        put(&w, ";INTERVAL=%d", r->interval);
    for (int i = 0; i < r->n_byday; i++) {
        int wd = r->byday[i].weekday;
        if (wd < 0 || wd > 6)
            return -1;
        put(&w, "%s", i == 0 ? ";BYDAY=" : ",");
        if (r->byday[i].ordinal != 0)
            put(&w, "%d", r->byday[i].ordinal);
        put(&w, "%.2s", weekday_names[wd]);
    }
    for (int i = 0; i < r->n_bymonthday; i++)
        put(&w, "%s%d", i == 0 ? ";BYMONTHDAY=" : ",", r->bymonthday[i]);
    if (r->count > 0) {
        put(&w, ";COUNT=%d", r->count);
    } else if (r->has_until) {
        int64_t secs = floor_div(r->until_ms, 1000);
        int64_t days = floor_div(secs, 86400);
        int sod = (int)(secs - days * 86400);
        int y, mo, d;
        timefmt_civil_from_days(days, &y, &mo, &d);
        if (y < 0 || y > 9999)
            return -1;
        if (r->until_is_date)
            put(&w, ";UNTIL=%04d%02d%02d", y, mo, d);
        else
            put(&w, ";UNTIL=%04d%02d%02dT%02d%02d%02dZ", y, mo, d, sod / 3600, sod / 60 % 60,
                sod % 60);
    }
    if (!w.ok) {
        out[0] = '\0';
        return -1;
    }
    return (int)w.len;
}

/* ---- Civil date-times ---------------------------------------------------- */

#define YEAR_MIN 1
#define YEAR_MAX 9999
/* 9999-12-31 in days since 1970-01-01 (timefmt_days_from_civil). */
#define LAST_DAY INT64_C(2932896)

static bool civil_valid(const rrule_civil_t *c)
{
    return c->year >= YEAR_MIN && c->year <= YEAR_MAX && c->month >= 1 && c->month <= 12 &&
           c->day >= 1 && c->day <= days_in_month(c->year, c->month) && c->hour >= 0 &&
           c->hour <= 23 && c->minute >= 0 && c->minute <= 59 && c->second >= 0 &&
           c->second <= 59 && c->millisecond >= 0 && c->millisecond <= 999;
}

/* Exactly n digits at s (s is NUL-terminated, so stopping at a non-digit
 * never reads past the end). */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int rrule_civil_parse(const char *s, rrule_civil_t *out)
{
    if (!s || !out)
        return -1;
    rrule_civil_t c = {0};
    /* YYYY-MM-DD?HH:MM:SS: 19 characters, checked one by one. */
    if (!digits(s, 4, &c.year) || s[4] != '-' || !digits(s + 5, 2, &c.month) || s[7] != '-' ||
        !digits(s + 8, 2, &c.day) || (s[10] != ' ' && s[10] != 'T') ||
        !digits(s + 11, 2, &c.hour) || s[13] != ':' || !digits(s + 14, 2, &c.minute) ||
        s[16] != ':' || !digits(s + 17, 2, &c.second))
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int n = 0;
        while (n < 6 && is_digit(p[n])) {
            if (n < 3)
                c.millisecond = c.millisecond * 10 + (p[n] - '0');
            n++;
        }
        if (n == 0)
            return -1;
        for (int i = n; i < 3; i++)
            c.millisecond *= 10;
        p += n;
    }
    if (*p != '\0' || !civil_valid(&c))
        return -1;
    *out = c;
    return 0;
}

static void put_num(char *out, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

void rrule_civil_format(const rrule_civil_t *c, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    if (!c || outlen < RRULE_CIVIL_FORMAT_LEN + 1 || !civil_valid(c))
        return;
    put_num(out, c->year, 4);
    out[4] = '-';
    put_num(out + 5, c->month, 2);
    out[7] = '-';
    put_num(out + 8, c->day, 2);
    out[10] = 'T';
    put_num(out + 11, c->hour, 2);
    out[13] = ':';
    put_num(out + 14, c->minute, 2);
    out[16] = ':';
    put_num(out + 17, c->second, 2);
    out[19] = '.';
    put_num(out + 20, c->millisecond, 3);
    out[23] = '\0';
}

/* ---- Expansion ------------------------------------------------------------
 *
 * The rule is walked period by period (a day, a week from Monday, a month or
 * a year; period k starts k * INTERVAL periods after the anchor's). Each
 * period's instances are computed as a set of day offsets from the period's
 * first day, then visited in order. Days are counted from 1970-01-01
 * (timefmt_days_from_civil), so all arithmetic is on small int64 values:
 * years are kept within 1..9999 and a period past 9999 ends the search.
 *
 * Termination: a period's day set depends only on where the period falls in
 * the 400-year Gregorian cycle (146097 days = 20871 weeks = 4800 months), so
 * if a whole cycle's worth of consecutive periods is empty, every later one
 * is too: the rule has no further instance. */

/* Up to 366 day offsets within one period. */
typedef struct dayset {
    uint64_t w[6];
} dayset_t;

static void ds_set(dayset_t *s, int i)
{
    s->w[i >> 6] |= UINT64_C(1) << (i & 63);
}

static bool ds_has(const dayset_t *s, int i)
{
    return (s->w[i >> 6] >> (i & 63)) & 1u;
}

static void ds_and(dayset_t *a, const dayset_t *b)
{
    for (int i = 0; i < 6; i++)
        a->w[i] &= b->w[i];
}

/* 0 = Monday .. 6 = Sunday; day 0 (1970-01-01) was a Thursday. */
static int weekday_of(int64_t days)
{
    int64_t w = (days + 3) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

/* BYDAY over the span [start, start + len) of at least 7 days (a week, a
 * month or a year): "2MO" is the span's second Monday, "-1FR" its last
 * Friday, "SU" every Sunday; an ordinal the span lacks adds nothing. */
static void byday_days(const rrule_t *r, int64_t start, int off, int len, dayset_t *out)
{
    int wd0 = weekday_of(start);
    for (int i = 0; i < r->n_byday; i++) {
        int first = (r->byday[i].weekday - wd0 + 7) % 7;
        int ord = r->byday[i].ordinal;
        if (ord == 0) {
            for (int d = first; d < len; d += 7)
                ds_set(out, off + d);
        } else if (ord > 0) {
            int d = first + 7 * (ord - 1);
            if (d < len)
                ds_set(out, off + d);
        } else {
            int last = first + (len - 1 - first) / 7 * 7;
            int d = last + 7 * (ord + 1);
            if (d >= 0)
                ds_set(out, off + d);
        }
    }
}

/* BYMONTHDAY for a month of dim days starting at offset off: -1 is the last
 * day; a day the month lacks (31 in April, -30 in February) adds nothing. */
static void bymonthday_days(const rrule_t *r, int off, int dim, dayset_t *out)
{
    for (int i = 0; i < r->n_bymonthday; i++) {
        int n = r->bymonthday[i];
        int d = n > 0 ? n : dim + n + 1;
        if (d >= 1 && d <= dim)
            ds_set(out, off + d - 1);
    }
}

static bool day_matches(const rrule_t *r, int64_t days)
{
    if (r->n_byday > 0) {
        int wd = weekday_of(days);
        bool hit = false;
        for (int i = 0; i < r->n_byday && !hit; i++)
            hit = r->byday[i].weekday == wd;
        if (!hit)
            return false;
    }
    if (r->n_bymonthday > 0) {
        int y, m, d;
        timefmt_civil_from_days(days, &y, &m, &d);
        int dim = days_in_month(y, m);
        bool hit = false;
        for (int i = 0; i < r->n_bymonthday && !hit; i++) {
            int n = r->bymonthday[i];
            hit = (n > 0 ? n : dim + n + 1) == d;
        }
        if (!hit)
            return false;
    }
    return true;
}

typedef struct expand {
    const rrule_t *r;
    int64_t anchor_day;
    int year, month, day; /* the anchor's date */
} expand_t;

/* Period k's first day, length and instance days. Returns -1 when the
 * period starts after 9999-12-31. */
static int period(const expand_t *x, int64_t k, int64_t *start, int *len, dayset_t *set)
{
    const rrule_t *r = x->r;
    /* k grows by one per period and every period moves on by at least a
     * day, so the year bound below stops it long before this could overflow. */
    int64_t step = k * r->interval;
    memset(set, 0, sizeof *set);
    switch (r->freq) {
    case RRULE_DAILY:
        *start = x->anchor_day + step;
        *len = 1;
        if (*start > LAST_DAY)
            return -1;
        if (day_matches(r, *start))
            ds_set(set, 0);
        return 0;
    case RRULE_WEEKLY:
        *start = x->anchor_day - weekday_of(x->anchor_day) + 7 * step;
        *len = 7;
        if (*start > LAST_DAY)
            return -1;
        if (r->n_byday > 0)
            byday_days(r, *start, 0, 7, set);
        else
            ds_set(set, weekday_of(x->anchor_day));
        return 0;
    case RRULE_MONTHLY: {
        int64_t mi = (int64_t)x->year * 12 + (x->month - 1) + step;
        if (mi / 12 > YEAR_MAX)
            return -1;
        int y = (int)(mi / 12), m = (int)(mi % 12) + 1;
        int dim = days_in_month(y, m);
        *start = timefmt_days_from_civil(y, m, 1);
        *len = dim;
        if (r->n_byday == 0 && r->n_bymonthday == 0) {
            /* Clamped, not skipped: Jan 31 -> Feb 28/29 -> Mar 31. */
            ds_set(set, (x->day < dim ? x->day : dim) - 1);
            return 0;
        }
        if (r->n_bymonthday > 0)
            bymonthday_days(r, 0, dim, set);
        if (r->n_byday > 0) {
            dayset_t by = {{0}};
            byday_days(r, *start, 0, dim, &by);
            if (r->n_bymonthday > 0)
                ds_and(set, &by);
            else
                *set = by;
        }
        return 0;
    }
    case RRULE_YEARLY: {
        int64_t y64 = x->year + step;
        if (y64 > YEAR_MAX)
            return -1;
        int y = (int)y64;
        int dim = days_in_month(y, x->month);
        *start = timefmt_days_from_civil(y, 1, 1);
        *len = is_leap(y) ? 366 : 365;
        int moff = (int)(timefmt_days_from_civil(y, x->month, 1) - *start);
        if (r->n_byday == 0 && r->n_bymonthday == 0) {
            /* Clamped, not skipped: Feb 29 -> Feb 28 in common years. */
            ds_set(set, moff + (x->day < dim ? x->day : dim) - 1);
            return 0;
        }
        /* BYMONTHDAY: days of the anchor's month (there is no BYMONTH). */
        if (r->n_bymonthday > 0)
            bymonthday_days(r, moff, dim, set);
        /* BYDAY: weekdays of the whole year, ordinals counted in the year. */
        if (r->n_byday > 0) {
            dayset_t by = {{0}};
            byday_days(r, *start, 0, *len, &by);
            if (r->n_bymonthday > 0)
                ds_and(set, &by);
            else
                *set = by;
        }
        return 0;
    }
    }
    return -1;
}

/* Periods in one 400-year Gregorian cycle: that many consecutive empty
 * periods mean the rule has no further instance. */
static int64_t cycle_periods(rrule_freq_t f)
{
    switch (f) {
    case RRULE_DAILY:
        return 146097;
    case RRULE_WEEKLY:
        return 20871;
    case RRULE_MONTHLY:
        return 4800;
    case RRULE_YEARLY:
        return 400;
    }
    return 1;
}

/* A struct rrule_parse could have produced (hand-built ones are checked
 * too, so that no value can index out of bounds or overflow). */
static bool rule_valid(const rrule_t *r)
{
    if ((int)r->freq < RRULE_DAILY || (int)r->freq > RRULE_YEARLY || r->interval < 1 ||
        r->interval > INTERVAL_MAX || r->count < 0 || r->n_byday < 0 ||
        r->n_byday > RRULE_MAX_BYDAY || r->n_bymonthday < 0 ||
        r->n_bymonthday > RRULE_MAX_BYMONTHDAY)
        return false;
    int max_ord = r->freq == RRULE_MONTHLY ? 5 : r->freq == RRULE_YEARLY ? 53 : 0;
    for (int i = 0; i < r->n_byday; i++) {
        int o = r->byday[i].ordinal;
        if (r->byday[i].weekday < 0 || r->byday[i].weekday > 6 || o > max_ord || o < -max_ord)
            return false;
    }
    if (r->n_bymonthday > 0 && r->freq == RRULE_WEEKLY)
        return false;
    for (int i = 0; i < r->n_bymonthday; i++) {
        int n = r->bymonthday[i];
        if (n == 0 || n > 31 || n < -31)
            return false;
    }
    return true;
}

static int32_t time_of_day_ms(const rrule_civil_t *c)
{
    return ((c->hour * 60 + c->minute) * 60 + c->second) * 1000 + c->millisecond;
}

int rrule_next(const rrule_t *r, const rrule_civil_t *anchor, const rrule_civil_t *after,
               rrule_civil_t *next, int *index)
{
    if (!r || !anchor || !after || !next || !rule_valid(r) || !civil_valid(anchor) ||
        !civil_valid(after))
        return -1;
    expand_t x = {r, timefmt_days_from_civil(anchor->year, anchor->month, anchor->day),
                  anchor->year, anchor->month, anchor->day};
    int64_t after_day = timefmt_days_from_civil(after->year, after->month, after->day);
    int32_t tod = time_of_day_ms(anchor);

    /* The anchor is always instance 1. */
    if (after_day < x.anchor_day || (after_day == x.anchor_day && time_of_day_ms(after) < tod)) {
        *next = *anchor;
        if (index)
            *index = 1;
        return 0;
    }

    /* Every instance is at the anchor's time of day, so "strictly after
     * `after`" is "on min_day or later". */
    int64_t min_day = after_day + (tod > time_of_day_ms(after) ? 0 : 1);
    bool counting = index != NULL || r->count > 0;
    int64_t n = 1; /* instances up to `after`, the anchor included */
    if (r->count > 0 && n >= r->count)
        return 1;

    /* Without counting, start at the period holding `after`: the earlier
     * ones hold only earlier days. */
    int64_t k = 0;
    if (!counting) {
        int64_t periods = 0;
        switch (r->freq) {
        case RRULE_DAILY:
            periods = after_day - x.anchor_day;
            break;
        case RRULE_WEEKLY:
            periods = ((after_day - weekday_of(after_day)) -
                       (x.anchor_day - weekday_of(x.anchor_day))) / 7;
            break;
        case RRULE_MONTHLY:
            periods = ((int64_t)after->year * 12 + after->month) -
                      ((int64_t)anchor->year * 12 + anchor->month);
            break;
        case RRULE_YEARLY:
            periods = after->year - anchor->year;
            break;
        }
        k = periods / r->interval; /* periods >= 0: after is not before the anchor */
    }

    const int64_t cycle = cycle_periods(r->freq);
    int64_t empty_run = 0;
    for (;; k++) {
        int64_t start;
        int len;
        dayset_t set;
        if (period(&x, k, &start, &len, &set) != 0)
            return -1;
        bool any = false;
        for (int i = 0; i < len; i++) {
            if (!ds_has(&set, i))
                continue;
            any = true;
            int64_t d = start + i;
            if (d <= x.anchor_day)
                continue; /* before the anchor, or the anchor itself */
            if (d > LAST_DAY)
                return -1;
            if (d >= min_day) {
                int y, m, dd;
                timefmt_civil_from_days(d, &y, &m, &dd);
                rrule_civil_t c = *anchor;
                c.year = y;
                c.month = m;
                c.day = dd;
                *next = c;
                if (index)
                    *index = (int)(n + 1);
                return 0;
            }
            n++;
            if (r->count > 0 && n >= r->count)
                return 1;
        }
        empty_run = any ? 0 : empty_run + 1;
        if (empty_run >= cycle)
            return -1;
    }
}
