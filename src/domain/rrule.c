/* rrule: parse, validate and canonicalize the RRULE subset of docs/api.md.
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
