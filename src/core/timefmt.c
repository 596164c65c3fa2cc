/* timefmt: RFC 3339 and HTTP dates computed without gmtime() or locales. */
#include "core/timefmt.h"

#include <string.h>
#include <time.h>

int64_t timefmt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Howard Hinnant's days_from_civil / civil_from_days algorithms: exact for
 * the whole int64 range we can meet, and branch-light. */
int64_t timefmt_days_from_civil(int year, int month, int day)
{
    int64_t y = (int64_t)year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void timefmt_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void put_digits(char *out, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

void timefmt_rfc3339(int64_t epoch_ms, char *out)
{
    int64_t secs = floor_div(epoch_ms, 1000);
    int ms = (int)(epoch_ms - secs * 1000);
    int64_t days = floor_div(secs, 86400);
    int sod = (int)(secs - days * 86400);
    int y, mo, d;
    timefmt_civil_from_days(days, &y, &mo, &d);
    /* Years outside 0..9999 cannot be written in RFC 3339; clamp. */
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999;
    put_digits(out, y, 4);
    out[4] = '-';
    put_digits(out + 5, mo, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, sod / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, sod / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, sod % 60, 2);
    out[19] = '.';
    put_digits(out + 20, ms, 3);
    out[23] = 'Z';
    out[24] = '\0';
}

void timefmt_http_date(int64_t epoch_s, char *out)
{
    static const char wdays[7][4] = {"Thu", "Fri", "Sat", "Sun",
                                     "Mon", "Tue", "Wed"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    int64_t days = floor_div(epoch_s, 86400);
    int sod = (int)(epoch_s - days * 86400);
    int y, mo, d;
    timefmt_civil_from_days(days, &y, &mo, &d);
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999;
    /* 1970-01-01 was a Thursday. */
    int wd = (int)(((days % 7) + 7) % 7);
    const char *w = wdays[wd];
    const char *m = months[mo - 1];
    out[0] = w[0]; out[1] = w[1]; out[2] = w[2];
    out[3] = ','; out[4] = ' ';
    put_digits(out + 5, d, 2);
    out[7] = ' ';
    out[8] = m[0]; out[9] = m[1]; out[10] = m[2];
    out[11] = ' ';
    put_digits(out + 12, y, 4);
    out[16] = ' ';
    put_digits(out + 17, sod / 3600, 2);
    out[19] = ':';
    put_digits(out + 20, sod / 60 % 60, 2);
    out[22] = ':';
    put_digits(out + 23, sod % 60, 2);
    memcpy(out + 25, " GMT", 5);
}
