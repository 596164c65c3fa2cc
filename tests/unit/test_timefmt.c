/* Unit tests for core/timefmt.
 *
 * Expected values were computed independently with Python 3's datetime
 * (proleptic Gregorian, UTC), e.g.
 *   (date(2026, 11, 24) - date(1970, 1, 1)).days                  -> 20781
 *   (datetime(1970,1,1,tzinfo=utc) + timedelta(milliseconds=ms))
 *       .strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (us // 1000)
 *   (... + timedelta(seconds=s)).strftime('%a, %d %b %Y %H:%M:%S GMT')
 * and hard-coded here. */
#include <string.h>
#include <sys/time.h>

#include "core/timefmt.h"
#include "unit.h"

static void check_days(int y, int m, int d, long long want)
{
    CHECK_INT_EQ(timefmt_days_from_civil(y, m, d), want);
    int yy = 0, mm = 0, dd = 0;
    timefmt_civil_from_days(want, &yy, &mm, &dd);
    CHECK_INT_EQ(yy, y);
    CHECK_INT_EQ(mm, m);
    CHECK_INT_EQ(dd, d);
}

static void test_known_days(void)
{
    check_days(1970, 1, 1, 0);
    check_days(1969, 12, 31, -1);
    check_days(2000, 2, 29, 11016);
    check_days(2000, 3, 1, 11017);
    check_days(2024, 2, 29, 19782);
    check_days(2026, 11, 24, 20781);
    check_days(1900, 3, 1, -25508);
    check_days(1600, 1, 1, -135140);
    check_days(2400, 12, 31, 157419);
    check_days(1, 1, 1, -719162);
    check_days(9999, 12, 31, 2932896);
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

/* Walks every day from 1600-01-01 to 2400-12-31 with a naive calendar and
 * checks both conversions against the running day count. */
static void test_every_day_1600_to_2400(void)
{
    long long n = -135140; /* 1600-01-01, from Python */
    int checked = 0;
    for (int y = 1600; y <= 2400; y++) {
        for (int m = 1; m <= 12; m++) {
            for (int d = 1; d <= days_in_month(y, m); d++, n++) {
                long long got = timefmt_days_from_civil(y, m, d);
                if (got != n) {
                    unit__diag("#   at %04d-%02d-%02d\n", y, m, d);
                    CHECK_INT_EQ(got, n);
                }
                int yy, mm, dd;
                timefmt_civil_from_days(n, &yy, &mm, &dd);
                if (yy != y || mm != m || dd != d) {
                    unit__diag("#   day %lld gave %04d-%02d-%02d, want %04d-%02d-%02d\n", n,
                               yy, mm, dd, y, m, d);
                    FAIL("civil_from_days");
                }
                checked++;
            }
        }
    }
    CHECK_INT_EQ(n, 157419 + 1); /* one past 2400-12-31 */
    CHECK_INT_EQ(checked, 292560);
}

static void test_round_trip_wide_sample(void)
{
    /* Every 997th day across +-3 million days (about year -6200..10200). */
    for (long long n = -3000000; n <= 3000000; n += 997) {
        int y, m, d;
        timefmt_civil_from_days(n, &y, &m, &d);
        CHECK(m >= 1 && m <= 12);
        CHECK(d >= 1 && d <= 31);
        CHECK_INT_EQ(timefmt_days_from_civil(y, m, d), n);
    }
}

static void check_rfc3339(long long ms, const char *want)
{
    char out[TIMEFMT_RFC3339_LEN + 8];
    memset(out, 'X', sizeof out);
    timefmt_rfc3339(ms, out);
    CHECK_STR_EQ(out, want);
    CHECK_INT_EQ(strlen(out), TIMEFMT_RFC3339_LEN);
}

static void test_rfc3339_known(void)
{
    check_rfc3339(0, "1970-01-01T00:00:00.000Z");
    check_rfc3339(1732442400123LL, "2024-11-24T10:00:00.123Z");
    check_rfc3339(1795514400123LL, "2026-11-24T10:00:00.123Z");
    check_rfc3339(951782400000LL, "2000-02-29T00:00:00.000Z");
    check_rfc3339(1709164799999LL, "2024-02-28T23:59:59.999Z");
    check_rfc3339(4102444800000LL, "2100-01-01T00:00:00.000Z");
    check_rfc3339(253402300799999LL, "9999-12-31T23:59:59.999Z");
}

static void test_rfc3339_negative(void)
{
    /* Before the epoch the milliseconds still count forward within the
     * second: -1 ms is 23:59:59.999 of the day before. */
    check_rfc3339(-1, "1969-12-31T23:59:59.999Z");
    check_rfc3339(-1000, "1969-12-31T23:59:59.000Z");
    check_rfc3339(-1001, "1969-12-31T23:59:58.999Z");
    check_rfc3339(-86400000LL, "1969-12-31T00:00:00.000Z");
}

static void test_rfc3339_clamps_years(void)
{
    char out[TIMEFMT_RFC3339_LEN + 1];
    /* 10000-01-01 cannot be written: the year is clamped, the string keeps
     * its shape. */
    timefmt_rfc3339(253402300800000LL, out);
    CHECK_INT_EQ(strlen(out), TIMEFMT_RFC3339_LEN);
    CHECK_MEM_EQ(out, 4, "9999");
    CHECK_INT_EQ(out[23], 'Z');
}

static void check_http_date(long long s, const char *want)
{
    char out[TIMEFMT_HTTP_DATE_LEN + 8];
    memset(out, 'X', sizeof out);
    timefmt_http_date(s, out);
    CHECK_STR_EQ(out, want);
    CHECK_INT_EQ(strlen(out), TIMEFMT_HTTP_DATE_LEN);
}

static void test_http_date_known(void)
{
    check_http_date(0, "Thu, 01 Jan 1970 00:00:00 GMT");
    check_http_date(784111777, "Sun, 06 Nov 1994 08:49:37 GMT"); /* RFC 9110's example */
    check_http_date(1732442400, "Sun, 24 Nov 2024 10:00:00 GMT");
    check_http_date(1795514400, "Tue, 24 Nov 2026 10:00:00 GMT");
    check_http_date(951782400, "Tue, 29 Feb 2000 00:00:00 GMT");
    check_http_date(1709164800, "Thu, 29 Feb 2024 00:00:00 GMT");
    check_http_date(2147483648LL, "Tue, 19 Jan 2038 03:14:08 GMT");
    check_http_date(253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT");
}

static void test_http_date_negative(void)
{
    check_http_date(-1, "Wed, 31 Dec 1969 23:59:59 GMT");
    check_http_date(-31536000, "Wed, 01 Jan 1969 00:00:00 GMT");
}

static void test_http_date_every_weekday(void)
{
    /* 2026-11-23 is a Monday; walk the week. */
    static const char *const want[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    long long monday = 20780LL * 86400;
    for (int i = 0; i < 7; i++) {
        char out[TIMEFMT_HTTP_DATE_LEN + 1];
        timefmt_http_date(monday + i * 86400 + 3600, out);
        CHECK_MEM_EQ(out, 3, want[i]);
        /* the same weekday before the epoch, 100 weeks earlier than 1970 */
        timefmt_http_date(-(100LL * 7 * 86400) + (monday % (7 * 86400)) + i * 86400, out);
        CHECK_MEM_EQ(out, 3, want[i]);
    }
}

static void test_now_is_plausible(void)
{
    /* gettimeofday reads the same precise clock; time() would not do, since
     * glibc serves it from the coarse clock, which trails by up to a tick. */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long before = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    long long now = timefmt_now_ms();
    gettimeofday(&tv, NULL);
    long long after = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    CHECK(now >= before);
    CHECK(now <= after);
    CHECK(now > 1700000000000LL); /* after November 2023 */
}

UNIT_MAIN(
    UNIT_TEST(test_known_days),
    UNIT_TEST(test_every_day_1600_to_2400),
    UNIT_TEST(test_round_trip_wide_sample),
    UNIT_TEST(test_rfc3339_known),
    UNIT_TEST(test_rfc3339_negative),
    UNIT_TEST(test_rfc3339_clamps_years),
    UNIT_TEST(test_http_date_known),
    UNIT_TEST(test_http_date_negative),
    UNIT_TEST(test_http_date_every_weekday),
    UNIT_TEST(test_now_is_plausible),
)
