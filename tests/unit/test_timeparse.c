/* Unit tests for core/timeparse.
 *
 * Expected instants were computed independently with Python 3's datetime:
 *   d = datetime.fromisoformat(s.replace('Z', '+00:00'))
 *   (d - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
 * e.g. '2026-03-29T01:30:00+05:30' -> 1774728000000, and hard-coded here.
 * Durations are plain arithmetic: 1 day = 86 400 000 ms, 1 week = 604 800 000. */
#include <stdint.h>
#include <string.h>

#include "core/timeparse.h"
#include "unit.h"

static int64_t rfc(const char *s)
{
    int64_t ms = INT64_MIN;
    if (timeparse_rfc3339(s, strlen(s), &ms) != 0) {
        unit__diag_bytes("input", s, strlen(s));
        FAIL("timeparse_rfc3339 rejected a valid date-time");
    }
    return ms;
}

static void bad_rfc(const char *s)
{
    int64_t ms = 12345;
    if (timeparse_rfc3339(s, strlen(s), &ms) == 0) {
        unit__diag_bytes("input", s, strlen(s));
        FAIL("timeparse_rfc3339 accepted an invalid date-time");
    }
    CHECK_INT_EQ(ms, 12345); /* untouched on failure */
}

static int64_t dur(const char *s)
{
    int64_t ms = INT64_MIN;
    if (timeparse_iso_duration(s, strlen(s), &ms) != 0) {
        unit__diag_bytes("input", s, strlen(s));
        FAIL("timeparse_iso_duration rejected a valid duration");
    }
    return ms;
}

static void bad_dur(const char *s)
{
    int64_t ms = 12345;
    if (timeparse_iso_duration(s, strlen(s), &ms) == 0) {
        unit__diag_bytes("input", s, strlen(s));
        FAIL("timeparse_iso_duration accepted an invalid duration");
    }
    CHECK_INT_EQ(ms, 12345);
}

/* ---- RFC 3339 ---- */

static void test_rfc3339_utc(void)
{
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00Z"), 0);
    CHECK_INT_EQ(rfc("2026-11-24T10:00:00Z"), 1795514400000LL);
    CHECK_INT_EQ(rfc("1969-12-31T23:59:59.999Z"), -1);
    CHECK_INT_EQ(rfc("2026-12-31T23:59:59.999Z"), 1798761599999LL);
}

static void test_rfc3339_offsets(void)
{
    /* Python: 2026-03-29T01:30:00+05:30 -> 1774728000000 (= 2026-03-28T20:00Z). */
    CHECK_INT_EQ(rfc("2026-03-29T01:30:00+05:30"), 1774728000000LL);
    CHECK_INT_EQ(rfc("2026-11-24T10:00:00-07:00"), 1795539600000LL);
    CHECK_INT_EQ(rfc("2026-11-24T10:00:00+00:00"), 1795514400000LL);
    CHECK_INT_EQ(rfc("2026-11-24T10:00:00-00:00"), 1795514400000LL);
    /* Across a year boundary in both directions. */
    CHECK_INT_EQ(rfc("2026-01-01T00:30:00+01:00"), 1767223800000LL);
    CHECK_INT_EQ(rfc("2025-12-31T23:30:00-23:59"), 1767310140000LL);
    /* The largest offset would push year 1 into year 0 UTC, which neither
     * RFC 3339 nor PostgreSQL accepts: rejected. */
    int64_t ms;
    const char *too_early = "0001-01-01T00:00:00+23:59";
    CHECK_INT_EQ(timeparse_rfc3339(too_early, strlen(too_early), &ms), -1);
    CHECK_INT_EQ(rfc("0001-01-01T23:59:00+23:59"), -62135596800000LL);
}

static void test_rfc3339_lower_case_t_z(void)
{
    CHECK_INT_EQ(rfc("2026-11-24t10:00:00z"), 1795514400000LL);
    CHECK_INT_EQ(rfc("2026-11-24t10:00:00Z"), 1795514400000LL);
    CHECK_INT_EQ(rfc("2026-11-24T10:00:00z"), 1795514400000LL);
}

static void test_rfc3339_fraction(void)
{
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00.1Z"), 100);
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00.12Z"), 120);
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00.123Z"), 123);
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00.1239Z"), 123); /* truncated, not rounded */
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00.999999999999999999999999Z"), 999);
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00.000Z"), 0);
    CHECK_INT_EQ(rfc("1970-01-01T00:00:00.5+01:00"), -3600000 + 500);
    /* Before the epoch the fraction still adds to the instant. */
    CHECK_INT_EQ(rfc("1969-12-31T23:59:59.5Z"), -500);
}

static void test_rfc3339_leap_days(void)
{
    CHECK_INT_EQ(rfc("2024-02-29T12:00:00Z"), 1709208000000LL);
    CHECK_INT_EQ(rfc("2024-02-29T23:59:59.999Z"), 1709251199999LL);
    CHECK_INT_EQ(rfc("2000-02-29T00:00:00Z"), 951782400000LL); /* divisible by 400 */
    bad_rfc("2023-02-29T00:00:00Z");
    bad_rfc("1900-02-29T00:00:00Z"); /* divisible by 100, not 400 */
    bad_rfc("2100-02-29T00:00:00Z");
    bad_rfc("2024-02-30T00:00:00Z");
    /* The last day of every month exists, the day after does not. */
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int m = 1; m <= 12; m++) {
        char s[32];
        snprintf(s, sizeof s, "2025-%02d-%02dT00:00:00Z", m, dim[m - 1]);
        (void)rfc(s);
        snprintf(s, sizeof s, "2025-%02d-%02dT00:00:00Z", m, dim[m - 1] + 1);
        bad_rfc(s);
    }
}

static void test_rfc3339_year_range(void)
{
    CHECK_INT_EQ(rfc("0001-01-01T00:00:00Z"), -62135596800000LL);
    CHECK_INT_EQ(rfc("9999-12-31T23:59:59Z"), 253402300799000LL);
    CHECK_INT_EQ(rfc("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    bad_rfc("0000-01-01T00:00:00Z");
    bad_rfc("0000-12-31T23:59:59Z");
    bad_rfc("10000-01-01T00:00:00Z");
    bad_rfc("-001-01-01T00:00:00Z");
    bad_rfc("+2026-01-01T00:00:00Z");
}

static void test_rfc3339_field_ranges(void)
{
    (void)rfc("2026-01-01T23:59:59Z");
    bad_rfc("2026-00-01T00:00:00Z");
    bad_rfc("2026-13-01T00:00:00Z");
    bad_rfc("2026-01-00T00:00:00Z");
    bad_rfc("2026-01-32T00:00:00Z");
    bad_rfc("2026-04-31T00:00:00Z");
    bad_rfc("2026-01-01T24:00:00Z");
    bad_rfc("2026-01-01T00:60:00Z");
    bad_rfc("2026-01-01T00:00:60Z"); /* no leap seconds */
    bad_rfc("2026-12-31T23:59:60Z");
    bad_rfc("2026-01-01T00:00:99Z");
}

static void test_rfc3339_offset_ranges(void)
{
    (void)rfc("2026-01-01T00:00:00+23:59");
    (void)rfc("2026-01-01T00:00:00-23:59");
    bad_rfc("2026-01-01T00:00:00+24:00");
    bad_rfc("2026-01-01T00:00:00-24:00");
    bad_rfc("2026-01-01T00:00:00+05:60");
    bad_rfc("2026-01-01T00:00:00+99:99");
    bad_rfc("2026-01-01T00:00:00+0530");
    bad_rfc("2026-01-01T00:00:00+05");
    bad_rfc("2026-01-01T00:00:00+5:30");
    bad_rfc("2026-01-01T00:00:00+05:3");
    bad_rfc("2026-01-01T00:00:00+");
    bad_rfc("2026-01-01T00:00:00 +05:30");
    bad_rfc("2026-01-01T00:00:00UTC");
    bad_rfc("2026-01-01T00:00:00GMT");
}

static void test_rfc3339_shape(void)
{
    bad_rfc("");
    bad_rfc("2026-01-01");
    bad_rfc("2026-01-01T10:00Z");          /* missing seconds */
    bad_rfc("2026-01-01T10:00:00");        /* missing offset */
    bad_rfc("2026-01-01T10:00:00.123");    /* missing offset after a fraction */
    bad_rfc("2026-01-01 10:00:00Z");       /* space instead of T */
    bad_rfc(" 2026-01-01T10:00:00Z");      /* leading space */
    bad_rfc("2026-01-01T10:00:00Z ");      /* trailing space */
    bad_rfc("2026-01-01T10:00:00Zjunk");   /* trailing garbage */
    bad_rfc("2026-01-01T10:00:00ZZ");
    bad_rfc("2026-01-01T10:00:00.Z");      /* empty fraction */
    bad_rfc("2026-01-01T10:00:00,5Z");     /* comma decimal sign */
    bad_rfc("2026-1-01T10:00:00Z");
    bad_rfc("2026-01-1T10:00:00Z");
    bad_rfc("2026-01-01T1:00:00Z");
    bad_rfc("2026/01/01T10:00:00Z");
    bad_rfc("2026-01-01X10:00:00Z");
    bad_rfc("2026-01-01T10-00-00Z");
    bad_rfc("２０２６-01-01T10:00:00Z"); /* full-width digits */
    bad_rfc("2026-01-01T10:00:00+05:30:00");
}

static void test_rfc3339_every_prefix_rejected(void)
{
    const char *full = "2026-03-29T01:30:00.250+05:30";
    size_t n = strlen(full);
    for (size_t i = 0; i < n; i++) {
        int64_t ms = 7;
        if (timeparse_rfc3339(full, i, &ms) == 0) {
            unit__diag("#   prefix length %zu\n", i);
            FAIL("a prefix was accepted");
        }
    }
    int64_t ms = 0;
    CHECK_INT_EQ(timeparse_rfc3339(full, n, &ms), 0);
    CHECK_INT_EQ(ms, 1774728000000LL + 250);
}

static void test_rfc3339_uses_len_not_nul(void)
{
    /* Only len bytes are read: no NUL needed, and what follows is ignored. */
    const char buf[] = "2026-11-24T10:00:00Zjunk";
    int64_t ms = 0;
    CHECK_INT_EQ(timeparse_rfc3339(buf, 20, &ms), 0);
    CHECK_INT_EQ(ms, 1795514400000LL);
    CHECK_INT_EQ(timeparse_rfc3339(buf, 21, &ms), -1);
    /* An embedded NUL is an invalid byte. */
    const char nul[] = "2026-11-24T10:00:00\0Z";
    CHECK_INT_EQ(timeparse_rfc3339(nul, sizeof nul - 1, &ms), -1);
    CHECK_INT_EQ(timeparse_rfc3339(NULL, 0, &ms), -1);
}

/* ---- ISO 8601 durations ---- */

/* Days (weeks as 7) apart from the exact time part. */
static void test_duration_parts(void)
{
    static const struct {
        const char *s;
        int64_t days, time_ms;
    } cases[] = {
        {"P1D", 1, 0},           {"PT24H", 0, 86400000},       {"P1DT2H", 1, 7200000},
        {"P2W", 14, 0},          {"PT36H", 0, 36 * 3600000LL}, {"P3DT0.5S", 3, 500},
        {"PT90M", 0, 5400000},   {"P0D", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t days = -1, time_ms = -1;
        CHECK_INT_EQ(timeparse_iso_duration_parts(cases[i].s, strlen(cases[i].s), &days, &time_ms),
                     0);
        CHECK_INT_EQ(days, cases[i].days);
        CHECK_INT_EQ(time_ms, cases[i].time_ms);
        CHECK_INT_EQ(dur(cases[i].s), days * 86400000 + time_ms);
    }
    int64_t days = 7, time_ms = 7;
    CHECK_INT_EQ(timeparse_iso_duration_parts("P1M", 3, &days, &time_ms), -1);
    CHECK_INT_EQ(days, 7);
    CHECK_INT_EQ(time_ms, 7);
}

static void test_duration_valid(void)
{
    CHECK_INT_EQ(dur("PT15M"), 15 * 60000);
    CHECK_INT_EQ(dur("P1D"), 86400000);
    CHECK_INT_EQ(dur("P1DT2H"), 86400000 + 2 * 3600000);
    CHECK_INT_EQ(dur("P1W"), 604800000);
    CHECK_INT_EQ(dur("P52W"), 52LL * 604800000);
    CHECK_INT_EQ(dur("PT1H30M15S"), 3600000 + 30 * 60000 + 15000);
    CHECK_INT_EQ(dur("P2DT3H4M5S"), 2 * 86400000LL + 3 * 3600000 + 4 * 60000 + 5000);
    CHECK_INT_EQ(dur("P1DT1M"), 86400000 + 60000);
    CHECK_INT_EQ(dur("P1DT1S"), 86400000 + 1000);
    CHECK_INT_EQ(dur("PT36H"), 36 * 3600000);
    CHECK_INT_EQ(dur("PT90M"), 90 * 60000);
    CHECK_INT_EQ(dur("P365D"), 365LL * 86400000);
    CHECK_INT_EQ(dur("PT0S"), 0);
    CHECK_INT_EQ(dur("P0D"), 0);
    CHECK_INT_EQ(dur("PT015M"), 15 * 60000);
}

static void test_duration_fraction(void)
{
    CHECK_INT_EQ(dur("PT1.5S"), 1500);
    CHECK_INT_EQ(dur("PT0.001S"), 1);
    CHECK_INT_EQ(dur("PT0.0009S"), 0); /* truncated */
    CHECK_INT_EQ(dur("PT1.123456S"), 1123);
    CHECK_INT_EQ(dur("PT1M0.25S"), 60250);
    bad_dur("PT1.5H");
    bad_dur("PT1.5M");
    bad_dur("P1.5D");
    bad_dur("P1.5W");
    bad_dur("PT.5S");
    bad_dur("PT1.S");
    bad_dur("PT1,5S");
}

static void test_duration_invalid(void)
{
    bad_dur("");
    bad_dur("P");
    bad_dur("PT");
    bad_dur("T1H");
    bad_dur("P1DT");
    bad_dur("-PT15M");
    bad_dur("P-1D");
    bad_dur("PT-15M");
    bad_dur("+PT15M");
    bad_dur("P1M"); /* months */
    bad_dur("P1Y");
    bad_dur("P1Y2M3D");
    bad_dur("P1W2D"); /* weeks stand alone */
    bad_dur("P2D1W");
    bad_dur("P1WT1H");
    bad_dur("PT1M1H"); /* out of order */
    bad_dur("PT1S1M");
    bad_dur("PT1H1H"); /* repeated */
    bad_dur("P1D1D");
    bad_dur("P1H"); /* time unit before T */
    bad_dur("PT1D"); /* date unit after T */
    bad_dur("PT1W");
    bad_dur("PTT1H");
    bad_dur("P1DTT1H");
    bad_dur("pt15m"); /* designators are upper case */
    bad_dur("PT15m");
    bad_dur("PT15");
    bad_dur("P15");
    bad_dur("PTM");
    bad_dur("PT15M ");
    bad_dur(" PT15M");
    bad_dur("PT15MX");
    bad_dur("PT1H 30M");
    bad_dur("15M");
    bad_dur("1D");
}

static void test_duration_overflow(void)
{
    /* INT64_MAX = 9223372036854775807 ms. */
    CHECK_INT_EQ(dur("PT9223372036854775S"), 9223372036854775000LL);
    CHECK_INT_EQ(dur("PT9223372036854775.807S"), INT64_MAX);
    bad_dur("PT9223372036854776S");
    bad_dur("PT9223372036854775.808S");
    bad_dur("P99999999999999999999D");
    bad_dur("P9223372036854775807D");
    bad_dur("P9223372036854775807W");
    bad_dur("PT99999999999999999999999999999999999999H");
    /* INT64_MAX // 86400000 = 106751991167 (Python). */
    CHECK_INT_EQ(dur("P106751991167D"), 106751991167LL * 86400000);
    bad_dur("P106751991168D");
    CHECK_INT_EQ(dur("P15250284452W"), 15250284452LL * 604800000);
    bad_dur("P15250284453W");
    /* The sum of parts overflows although each part fits. */
    bad_dur("P106751991167DT23H");
}

static void test_duration_uses_len_not_nul(void)
{
    const char buf[] = "PT15Mjunk";
    int64_t ms = 0;
    CHECK_INT_EQ(timeparse_iso_duration(buf, 5, &ms), 0);
    CHECK_INT_EQ(ms, 900000);
    CHECK_INT_EQ(timeparse_iso_duration(buf, 4, &ms), -1);
    const char nul[] = "PT1\0M";
    CHECK_INT_EQ(timeparse_iso_duration(nul, sizeof nul - 1, &ms), -1);
    CHECK_INT_EQ(timeparse_iso_duration(NULL, 0, &ms), -1);
}

UNIT_MAIN(UNIT_TEST(test_rfc3339_utc), UNIT_TEST(test_rfc3339_offsets),
          UNIT_TEST(test_rfc3339_lower_case_t_z), UNIT_TEST(test_rfc3339_fraction),
          UNIT_TEST(test_rfc3339_leap_days), UNIT_TEST(test_rfc3339_year_range),
          UNIT_TEST(test_rfc3339_field_ranges), UNIT_TEST(test_rfc3339_offset_ranges),
          UNIT_TEST(test_rfc3339_shape), UNIT_TEST(test_rfc3339_every_prefix_rejected),
          UNIT_TEST(test_rfc3339_uses_len_not_nul), UNIT_TEST(test_duration_valid), UNIT_TEST(test_duration_parts),
          UNIT_TEST(test_duration_fraction), UNIT_TEST(test_duration_invalid),
          UNIT_TEST(test_duration_overflow), UNIT_TEST(test_duration_uses_len_not_nul))
