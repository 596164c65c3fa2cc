/* Unit tests for domain/rrule: the RRULE subset of docs/api.md.
 *
 * UNTIL instants were computed independently with Python 3's datetime:
 *   (datetime(2026,12,31,23,59,59,999000,tzinfo=timezone.utc)
 *    - datetime(1970,1,1,tzinfo=timezone.utc)) // timedelta(milliseconds=1)
 *   -> 1798761599999 (a date-only UNTIL is the end of that day, UTC)
 *   2026-11-24T10:00:00Z -> 1795514400000, 2024-02-29T23:59:59.999Z ->
 *   1709251199999, 0001-01-01T00:00:00Z -> -62135596800000. */
#include <string.h>

#include "domain/rrule.h"
#include "unit.h"

/* Parses s, which must be valid, and checks its canonical text. */
static void canon(const char *s, const char *want)
{
    rrule_t r;
    char err[128] = "unset";
    if (rrule_parse(s, strlen(s), &r, err, sizeof err) != 0) {
        unit__diag_bytes("input", s, strlen(s));
        unit__diag_bytes("err", err, strlen(err));
        FAIL("rrule_parse rejected a valid rule");
    }
    CHECK_STR_EQ(err, "");
    char out[RRULE_FORMAT_MAX];
    int n = rrule_format(&r, out, sizeof out);
    CHECK_INT_EQ(n, strlen(want));
    CHECK_STR_EQ(out, want);
    /* The canonical text is a fixed point. */
    rrule_t again;
    CHECK_INT_EQ(rrule_parse(out, (size_t)n, &again, err, sizeof err), 0);
    char out2[RRULE_FORMAT_MAX];
    CHECK_INT_EQ(rrule_format(&again, out2, sizeof out2), n);
    CHECK_STR_EQ(out2, want);
}

/* s must be rejected with exactly the reason want. */
static void bad(const char *s, const char *want)
{
    rrule_t r;
    char err[128] = "";
    if (rrule_parse(s, strlen(s), &r, err, sizeof err) == 0) {
        unit__diag_bytes("input", s, strlen(s));
        FAIL("rrule_parse accepted an invalid rule");
    }
    if (strcmp(err, want) != 0)
        unit__diag_bytes("input", s, strlen(s));
    CHECK_STR_EQ(err, want);
}

static void test_minimal(void)
{
    rrule_t r;
    char err[64];
    CHECK_INT_EQ(rrule_parse("FREQ=DAILY", 10, &r, err, sizeof err), 0);
    CHECK_INT_EQ(r.freq, RRULE_DAILY);
    CHECK_INT_EQ(r.interval, 1);
    CHECK_INT_EQ(r.n_byday, 0);
    CHECK_INT_EQ(r.n_bymonthday, 0);
    CHECK_INT_EQ(r.count, 0);
    CHECK(!r.has_until);
    canon("FREQ=DAILY", "FREQ=DAILY");
    canon("FREQ=WEEKLY", "FREQ=WEEKLY");
    canon("FREQ=MONTHLY", "FREQ=MONTHLY");
    canon("FREQ=YEARLY", "FREQ=YEARLY");
}

static void test_prefix_and_case(void)
{
    canon("RRULE:FREQ=DAILY", "FREQ=DAILY");
    canon("rrule:freq=daily", "FREQ=DAILY");
    canon("Freq=Weekly;ByDay=mo,We;interval=2", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE");
    canon("freq=yearly;until=20261124t100000z", "FREQ=YEARLY;UNTIL=20261124T100000Z");
    canon("FREQ=MONTHLY;BYDAY=-1fr", "FREQ=MONTHLY;BYDAY=-1FR");
    bad("RRULE:", "empty rule (FREQ is required)");
    bad("RRULE:RRULE:FREQ=DAILY", "unknown part RRULE:FREQ");
    bad("EXRULE:FREQ=DAILY", "unknown part EXRULE:FREQ");
}

static void test_canonical_order(void)
{
    canon("COUNT=5;BYDAY=1MO;FREQ=MONTHLY;INTERVAL=3", "FREQ=MONTHLY;INTERVAL=3;BYDAY=1MO;COUNT=5");
    canon("UNTIL=20261231;BYMONTHDAY=1,-1;BYDAY=MO;FREQ=MONTHLY",
          "FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=1,-1;UNTIL=20261231");
    canon("FREQ=DAILY;INTERVAL=1", "FREQ=DAILY"); /* the default is omitted */
    canon("FREQ=DAILY;INTERVAL=01", "FREQ=DAILY");
    canon("FREQ=WEEKLY;BYDAY=FR,MO,WE", "FREQ=WEEKLY;BYDAY=FR,MO,WE"); /* values keep order */
}

static void test_interval(void)
{
    canon("FREQ=DAILY;INTERVAL=2", "FREQ=DAILY;INTERVAL=2");
    canon("FREQ=DAILY;INTERVAL=1000", "FREQ=DAILY;INTERVAL=1000");
    const char *msg = "INTERVAL must be an integer from 1 to 1000";
    bad("FREQ=DAILY;INTERVAL=0", msg);
    bad("FREQ=DAILY;INTERVAL=1001", msg);
    bad("FREQ=DAILY;INTERVAL=-1", msg);
    bad("FREQ=DAILY;INTERVAL=+2", msg);
    bad("FREQ=DAILY;INTERVAL=2x", msg);
    bad("FREQ=DAILY;INTERVAL= 2", msg);
    bad("FREQ=DAILY;INTERVAL=99999999999999999999", msg);
    bad("FREQ=DAILY;INTERVAL=", "INTERVAL has no value");
}

static void test_count(void)
{
    rrule_t r;
    CHECK_INT_EQ(rrule_parse("FREQ=DAILY;COUNT=10000", 22, &r, NULL, 0), 0);
    CHECK_INT_EQ(r.count, 10000);
    canon("FREQ=DAILY;COUNT=1", "FREQ=DAILY;COUNT=1");
    canon("FREQ=DAILY;COUNT=10000", "FREQ=DAILY;COUNT=10000");
    const char *msg = "COUNT must be an integer from 1 to 10000";
    bad("FREQ=DAILY;COUNT=0", msg);
    bad("FREQ=DAILY;COUNT=10001", msg);
    bad("FREQ=DAILY;COUNT=-5", msg);
    bad("FREQ=DAILY;COUNT=1e3", msg);
    bad("FREQ=DAILY;COUNT=4294967297", msg);
}

static void test_until(void)
{
    rrule_t r;
    const char *s = "FREQ=DAILY;UNTIL=20261231";
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    CHECK(r.has_until);
    CHECK(r.until_is_date);
    CHECK_INT_EQ(r.until_ms, 1798761599999LL);
    s = "FREQ=DAILY;UNTIL=20261124T100000Z";
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    CHECK(r.has_until);
    CHECK(!r.until_is_date);
    CHECK_INT_EQ(r.until_ms, 1795514400000LL);
    s = "FREQ=YEARLY;UNTIL=20240229";
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    CHECK_INT_EQ(r.until_ms, 1709251199999LL);
    s = "FREQ=YEARLY;UNTIL=00010101T000000Z";
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    CHECK_INT_EQ(r.until_ms, -62135596800000LL);

    canon("FREQ=DAILY;UNTIL=20261231", "FREQ=DAILY;UNTIL=20261231");
    canon("FREQ=DAILY;UNTIL=20261124T100000Z", "FREQ=DAILY;UNTIL=20261124T100000Z");
    canon("FREQ=DAILY;UNTIL=99991231T235959Z", "FREQ=DAILY;UNTIL=99991231T235959Z");
    canon("FREQ=DAILY;UNTIL=00010101", "FREQ=DAILY;UNTIL=00010101");

    const char *msg = "UNTIL must be a date YYYYMMDD or a UTC time YYYYMMDDTHHMMSSZ";
    bad("FREQ=DAILY;UNTIL=20230229", msg); /* not a leap year */
    bad("FREQ=DAILY;UNTIL=21000229", msg);
    bad("FREQ=DAILY;UNTIL=20261301", msg);
    bad("FREQ=DAILY;UNTIL=20261200", msg);
    bad("FREQ=DAILY;UNTIL=20260431", msg);
    bad("FREQ=DAILY;UNTIL=00000101", msg);
    bad("FREQ=DAILY;UNTIL=2026123", msg);
    bad("FREQ=DAILY;UNTIL=202612310", msg);
    bad("FREQ=DAILY;UNTIL=20261231T100000", msg); /* floating time: no Z */
    bad("FREQ=DAILY;UNTIL=20261231T240000Z", msg);
    bad("FREQ=DAILY;UNTIL=20261231T236000Z", msg);
    bad("FREQ=DAILY;UNTIL=20261231T235960Z", msg);
    bad("FREQ=DAILY;UNTIL=20261231X100000Z", msg);
    bad("FREQ=DAILY;UNTIL=2026-12-31", msg);
    bad("FREQ=DAILY;UNTIL=2026-12-31T10:00:00Z", msg);
}

static void test_count_and_until(void)
{
    bad("FREQ=DAILY;COUNT=2;UNTIL=20261231", "COUNT and UNTIL cannot both be given");
    bad("UNTIL=20261231T000000Z;FREQ=DAILY;COUNT=2", "COUNT and UNTIL cannot both be given");
}

static void test_freq(void)
{
    const char *msg = "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY";
    bad("FREQ=HOURLY", msg);
    bad("FREQ=MINUTELY", msg);
    bad("FREQ=SECONDLY", msg);
    bad("FREQ=DAILYX", msg);
    bad("FREQ=DAIL", msg);
    bad("FREQ=DAILY ", msg);
    bad("FREQ=", "FREQ has no value");
    bad("INTERVAL=2", "FREQ is required");
    bad("COUNT=3;BYDAY=MO", "FREQ is required");
    bad("", "empty rule (FREQ is required)");
}

static void test_byday(void)
{
    canon("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU");
    canon("FREQ=MONTHLY;BYDAY=1MO,-1FR,+2TU,5SU,-5SA", "FREQ=MONTHLY;BYDAY=1MO,-1FR,2TU,5SU,-5SA");
    canon("FREQ=YEARLY;BYDAY=53MO,-53SU,20WE", "FREQ=YEARLY;BYDAY=53MO,-53SU,20WE");
    canon("FREQ=MONTHLY;BYDAY=MO,1MO", "FREQ=MONTHLY;BYDAY=MO,1MO"); /* distinct values */

    rrule_t r;
    const char *s = "FREQ=MONTHLY;BYDAY=-1FR,2MO,SU";
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    CHECK_INT_EQ(r.n_byday, 3);
    CHECK_INT_EQ(r.byday[0].ordinal, -1);
    CHECK_INT_EQ(r.byday[0].weekday, 4);
    CHECK_INT_EQ(r.byday[1].ordinal, 2);
    CHECK_INT_EQ(r.byday[1].weekday, 0);
    CHECK_INT_EQ(r.byday[2].ordinal, 0);
    CHECK_INT_EQ(r.byday[2].weekday, 6);

    const char *ordmsg = "BYDAY ordinals are only allowed with MONTHLY or YEARLY";
    bad("FREQ=WEEKLY;BYDAY=1MO", ordmsg);
    bad("FREQ=DAILY;BYDAY=-1FR", ordmsg);
    bad("BYDAY=MO,2TU;FREQ=WEEKLY", ordmsg);
    const char *monthly = "BYDAY ordinals must be 1 to 5 or -5 to -1 with MONTHLY";
    bad("FREQ=MONTHLY;BYDAY=6MO", monthly);
    bad("FREQ=MONTHLY;BYDAY=-6MO", monthly);
    bad("FREQ=MONTHLY;BYDAY=53MO", monthly);
    canon("FREQ=YEARLY;BYDAY=6MO", "FREQ=YEARLY;BYDAY=6MO");

    bad("FREQ=YEARLY;BYDAY=54MO", "invalid BYDAY value '54MO'");
    bad("FREQ=YEARLY;BYDAY=-54MO", "invalid BYDAY value '-54MO'");
    bad("FREQ=YEARLY;BYDAY=0MO", "invalid BYDAY value '0MO'");
    bad("FREQ=YEARLY;BYDAY=+0MO", "invalid BYDAY value '+0MO'");
    bad("FREQ=YEARLY;BYDAY=100MO", "invalid BYDAY value '100MO'");
    bad("FREQ=YEARLY;BYDAY=001MO", "invalid BYDAY value '001MO'");
    bad("FREQ=YEARLY;BYDAY=+MO", "invalid BYDAY value '+MO'");
    bad("FREQ=YEARLY;BYDAY=--1MO", "invalid BYDAY value '--1MO'");
    bad("FREQ=WEEKLY;BYDAY=M", "invalid BYDAY value 'M'");
    bad("FREQ=WEEKLY;BYDAY=MON", "invalid BYDAY value 'MON'");
    bad("FREQ=WEEKLY;BYDAY=XX", "invalid BYDAY value 'XX'");
    bad("FREQ=WEEKLY;BYDAY=MO,", "invalid BYDAY value ''");
    bad("FREQ=WEEKLY;BYDAY=,MO", "invalid BYDAY value ''");
    bad("FREQ=WEEKLY;BYDAY=MO,,TU", "invalid BYDAY value ''");
    bad("FREQ=WEEKLY;BYDAY=MO TU", "invalid BYDAY value 'MO TU'");
    bad("FREQ=WEEKLY;BYDAY=MO,mo", "duplicate BYDAY value 'MO'");
    bad("FREQ=MONTHLY;BYDAY=1MO,+1MO", "duplicate BYDAY value '+1MO'");
    bad("FREQ=WEEKLY;BYDAY=", "BYDAY has no value");
}

static void test_byday_limit(void)
{
    /* 35 distinct values fit (every weekday with ordinals 1..5), a 36th does not. */
    char s[512] = "FREQ=YEARLY;BYDAY=";
    static const char wd[7][3] = {"MO", "TU", "WE", "TH", "FR", "SA", "SU"};
    for (int o = 1; o <= 5; o++)
        for (int d = 0; d < 7; d++) {
            size_t l = strlen(s);
            snprintf(s + l, sizeof s - l, "%s%d%s", (o == 1 && d == 0) ? "" : ",", o, wd[d]);
        }
    rrule_t r;
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    CHECK_INT_EQ(r.n_byday, 35);
    strcat(s, ",6MO");
    bad(s, "too many BYDAY values (at most 35)");
}

static void test_bymonthday(void)
{
    canon("FREQ=MONTHLY;BYMONTHDAY=1,15,-1,+31,-31", "FREQ=MONTHLY;BYMONTHDAY=1,15,-1,31,-31");
    canon("FREQ=YEARLY;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTHDAY=29");
    canon("FREQ=DAILY;BYMONTHDAY=1", "FREQ=DAILY;BYMONTHDAY=1");
    const char *msg0 = "invalid BYMONTHDAY value '0' (1 to 31 or -31 to -1)";
    bad("FREQ=MONTHLY;BYMONTHDAY=0", msg0);
    bad("FREQ=MONTHLY;BYMONTHDAY=32", "invalid BYMONTHDAY value '32' (1 to 31 or -31 to -1)");
    bad("FREQ=MONTHLY;BYMONTHDAY=-32", "invalid BYMONTHDAY value '-32' (1 to 31 or -31 to -1)");
    bad("FREQ=MONTHLY;BYMONTHDAY=001", "invalid BYMONTHDAY value '001' (1 to 31 or -31 to -1)");
    bad("FREQ=MONTHLY;BYMONTHDAY=1.5", "invalid BYMONTHDAY value '1.5' (1 to 31 or -31 to -1)");
    bad("FREQ=MONTHLY;BYMONTHDAY=+", "invalid BYMONTHDAY value '+' (1 to 31 or -31 to -1)");
    bad("FREQ=MONTHLY;BYMONTHDAY=1,", "invalid BYMONTHDAY value '' (1 to 31 or -31 to -1)");
    bad("FREQ=MONTHLY;BYMONTHDAY=1,+1", "duplicate BYMONTHDAY value '+1'");
    bad("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY is not allowed with WEEKLY");

    /* 31 values fit; the longest canonical rule stays under RRULE_FORMAT_MAX. */
    char s[1024] = "FREQ=YEARLY;INTERVAL=1000;BYDAY=";
    static const char wd[7][3] = {"MO", "TU", "WE", "TH", "FR", "SA", "SU"};
    for (int o = -53; o <= -49; o++)
        for (int d = 0; d < 7; d++) {
            size_t l = strlen(s);
            snprintf(s + l, sizeof s - l, "%s%d%s", (o == -53 && d == 0) ? "" : ",", o, wd[d]);
        }
    strcat(s, ";BYMONTHDAY=");
    for (int d = -31; d <= -1; d++) {
        size_t l = strlen(s);
        snprintf(s + l, sizeof s - l, "%s%d", d == -31 ? "" : ",", d);
    }
    strcat(s, ";UNTIL=20261124T100000Z");
    rrule_t r;
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    CHECK_INT_EQ(r.n_bymonthday, 31);
    char out[RRULE_FORMAT_MAX];
    int n = rrule_format(&r, out, sizeof out);
    CHECK(n > 0 && n < RRULE_FORMAT_MAX);
    CHECK_STR_EQ(out, s);
    strcpy(strstr(s, ";UNTIL="), ",1;COUNT=1"); /* a 32nd value */
    bad(s, "too many BYMONTHDAY values (at most 31)");
}

static void test_parts(void)
{
    bad("FREQ=DAILY;FREQ=WEEKLY", "duplicate part FREQ");
    bad("FREQ=DAILY;INTERVAL=2;interval=3", "duplicate part INTERVAL");
    bad("FREQ=DAILY;COUNT=2;COUNT=2", "duplicate part COUNT");
    bad("FREQ=WEEKLY;BYDAY=MO;BYDAY=TU", "duplicate part BYDAY");
    bad("FREQ=MONTHLY;BYMONTHDAY=1;BYMONTHDAY=2", "duplicate part BYMONTHDAY");
    bad("FREQ=DAILY;UNTIL=20261231;UNTIL=20261231", "duplicate part UNTIL");
    bad("FREQ=DAILY;X-FOO=1", "unknown part X-FOO");
    bad("FREQ=DAILY;foo=1", "unknown part FOO");
    bad(" FREQ=DAILY", "unknown part  FREQ");
    bad("FREQ=DAILY;BYSETPOS=1", "unsupported part BYSETPOS");
    bad("FREQ=DAILY;BYMONTH=1", "unsupported part BYMONTH");
    bad("FREQ=DAILY;BYHOUR=1", "unsupported part BYHOUR");
    bad("FREQ=DAILY;BYMINUTE=1", "unsupported part BYMINUTE");
    bad("FREQ=DAILY;BYSECOND=1", "unsupported part BYSECOND");
    bad("FREQ=DAILY;BYWEEKNO=1", "unsupported part BYWEEKNO");
    bad("FREQ=DAILY;BYYEARDAY=1", "unsupported part BYYEARDAY");
    bad("FREQ=DAILY;WKST=MO", "unsupported part WKST");
    bad("FREQ=DAILY;", "empty part (parts are NAME=VALUE separated by ';')");
    bad(";FREQ=DAILY", "empty part (parts are NAME=VALUE separated by ';')");
    bad("FREQ=DAILY;;COUNT=1", "empty part (parts are NAME=VALUE separated by ';')");
    bad("FREQ", "part FREQ has no '=VALUE'");
    bad("FREQ=DAILY;COUNT", "part COUNT has no '=VALUE'");
    bad("=DAILY", "part with no name");
    bad("FREQ=DAILY,COUNT=2", "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY");
    bad("FREQ==DAILY", "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY");
}

static void test_error_text_is_bounded_and_printable(void)
{
    /* Input echoed in a reason is cut and made printable ASCII. */
    bad("FREQ=DAILY;ABCDEFGHIJKLMNOPQRSTUVWXYZ=1", "unknown part ABCDEFGHIJKLMNOPQRSTUVWX...");
    bad("FREQ=DAILY;\xc3\xa9\x01=1", "unknown part ???");
    /* A short err buffer is truncated, not overrun; NULL is allowed. */
    rrule_t r;
    char err[8];
    memset(err, 'x', sizeof err);
    CHECK_INT_EQ(rrule_parse("FREQ=HOURLY", 11, &r, err, sizeof err), -1);
    CHECK_STR_EQ(err, "FREQ mu");
    CHECK_INT_EQ(rrule_parse("FREQ=HOURLY", 11, &r, NULL, 0), -1);
    CHECK_INT_EQ(rrule_parse("FREQ=HOURLY", 11, &r, err, 0), -1);
    CHECK_INT_EQ(rrule_parse(NULL, 0, &r, err, sizeof err), -1);
}

static void test_uses_len_not_nul(void)
{
    const char buf[] = "FREQ=DAILY;COUNT=5;junk";
    rrule_t r;
    CHECK_INT_EQ(rrule_parse(buf, 18, &r, NULL, 0), 0);
    CHECK_INT_EQ(r.count, 5);
    const char nul[] = "FREQ=DAILY\0;COUNT=5";
    char err[64];
    CHECK_INT_EQ(rrule_parse(nul, sizeof nul - 1, &r, err, sizeof err), -1);
    CHECK_STR_EQ(err, "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY");
}

static void test_format_buffer(void)
{
    rrule_t r;
    const char *s = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;COUNT=3";
    CHECK_INT_EQ(rrule_parse(s, strlen(s), &r, NULL, 0), 0);
    size_t n = strlen(s);
    char out[64];
    CHECK_INT_EQ(rrule_format(&r, out, n + 1), (int)n); /* exactly enough */
    CHECK_STR_EQ(out, s);
    for (size_t cap = 0; cap <= n; cap++) {
        memset(out, 'x', sizeof out);
        CHECK_INT_EQ(rrule_format(&r, out, cap), -1);
        if (cap > 0)
            CHECK_INT_EQ(out[0], '\0');
    }
    /* A struct rrule_parse would never produce. */
    r.freq = (rrule_freq_t)9;
    CHECK_INT_EQ(rrule_format(&r, out, sizeof out), -1);
    r.freq = RRULE_WEEKLY;
    r.byday[0].weekday = 7;
    CHECK_INT_EQ(rrule_format(&r, out, sizeof out), -1);
}

static void test_format_built_by_hand(void)
{
    rrule_t r;
    memset(&r, 0, sizeof r);
    r.freq = RRULE_MONTHLY;
    r.interval = 1;
    r.n_bymonthday = 1;
    r.bymonthday[0] = -1;
    r.has_until = true;
    r.until_is_date = true;
    r.until_ms = 1798761599999LL; /* 2026-12-31T23:59:59.999Z */
    char out[RRULE_FORMAT_MAX];
    CHECK_INT_EQ(rrule_format(&r, out, sizeof out), strlen("FREQ=MONTHLY;BYMONTHDAY=-1;UNTIL=20261231"));
    CHECK_STR_EQ(out, "FREQ=MONTHLY;BYMONTHDAY=-1;UNTIL=20261231");
    r.until_is_date = false;
    r.until_ms = -1; /* 1969-12-31T23:59:59.999Z: floors, not rounds toward zero */
    CHECK_INT_EQ(rrule_format(&r, out, sizeof out), strlen(out));
    CHECK_STR_EQ(out, "FREQ=MONTHLY;BYMONTHDAY=-1;UNTIL=19691231T235959Z");
}

UNIT_MAIN(UNIT_TEST(test_minimal), UNIT_TEST(test_prefix_and_case), UNIT_TEST(test_canonical_order),
          UNIT_TEST(test_interval), UNIT_TEST(test_count), UNIT_TEST(test_until),
          UNIT_TEST(test_count_and_until), UNIT_TEST(test_freq), UNIT_TEST(test_byday),
          UNIT_TEST(test_byday_limit), UNIT_TEST(test_bymonthday), UNIT_TEST(test_parts),
          UNIT_TEST(test_error_text_is_bounded_and_printable), UNIT_TEST(test_uses_len_not_nul),
          UNIT_TEST(test_format_buffer), UNIT_TEST(test_format_built_by_hand))
