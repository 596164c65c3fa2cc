/* Unit tests for domain/rrule: the RRULE subset of docs/api.md.
 *
 * UNTIL instants were computed independently with Python 3's datetime:
 *   (datetime(2026,12,31,23,59,59,999000,tzinfo=timezone.utc)
 *    - datetime(1970,1,1,tzinfo=timezone.utc)) // timedelta(milliseconds=1)
 *   -> 1798761599999 (a date-only UNTIL is the end of that day, UTC)
 *   2026-11-24T10:00:00Z -> 1795514400000, 2024-02-29T23:59:59.999Z ->
 *   1709251199999, 0001-01-01T00:00:00Z -> -62135596800000.
 *
 * Expected occurrences for rules where this subset agrees with RFC 5545
 * were cross-checked with python-dateutil 2.9 (rrulestr(...).after(t));
 * the clamped month ends (MONTHLY/YEARLY without BYxxx) and YEARLY
 * BYMONTHDAY in the anchor's month are this project's deviations
 * (docs/api.md "Recurrence") and were worked out by hand from a calendar.
 *
 * All values are local wall-clock times: expansion never sees a time zone,
 * so a DST change cannot move the time of day. Turning 2026-03-29 02:30
 * (which does not exist in Europe/Berlin) or 2026-11-01 01:30 (which exists
 * twice in America/New_York) into UTC is the caller's job. */
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

/* ---- Expansion ----------------------------------------------------------- */

static rrule_civil_t civil(const char *s)
{
    rrule_civil_t c;
    if (rrule_civil_parse(s, &c) != 0) {
        unit__diag_bytes("input", s, strlen(s));
        FAIL("rrule_civil_parse rejected a test value");
    }
    return c;
}

static rrule_t rule(const char *s)
{
    rrule_t r;
    char err[128];
    if (rrule_parse(s, strlen(s), &r, err, sizeof err) != 0) {
        unit__diag_bytes("rule", s, strlen(s));
        unit__diag_bytes("err", err, strlen(err));
        FAIL("rrule_parse rejected a test rule");
    }
    return r;
}

/* rrule_next with and without an index (the two take different paths: one
 * counts from the anchor, the other starts at the period holding `after`),
 * which must agree. Writes the result as text into out ("" unless 0). */
static int next_of(const rrule_t *r, const rrule_civil_t *anchor, const rrule_civil_t *after,
                   char *out, int *index)
{
    rrule_civil_t a = {0}, b = {0};
    int idx = -7;
    int rc = rrule_next(r, anchor, after, &a, &idx);
    int rc2 = rrule_next(r, anchor, after, &b, NULL);
    char sa[32], sb[32];
    rrule_civil_format(&a, sa, sizeof sa);
    rrule_civil_format(&b, sb, sizeof sb);
    if (r->count == 0)
        CHECK_INT_EQ(rc2, rc);
    if (rc == 0 && rc2 == 0)
        CHECK_STR_EQ(sb, sa);
    strcpy(out, rc == 0 ? sa : "");
    if (index)
        *index = rc == 0 ? idx : 0;
    return rc;
}

typedef struct seq_case {
    const char *rule, *anchor, *after;
    const char *want[14]; /* NULL-terminated; each result is fed back as `after` */
    int first_index;      /* want[i] is instance first_index + i; 0 = unchecked */
    int end;              /* 0, or what the call after the last want returns (1 or -1) */
} seq_case_t;

static void run_seq(const seq_case_t *c)
{
    rrule_t r = rule(c->rule);
    rrule_civil_t anchor = civil(c->anchor), after = civil(c->after);
    for (int i = 0; c->want[i]; i++) {
        char got[32];
        int idx = 0;
        int rc = next_of(&r, &anchor, &after, got, &idx);
        if (rc != 0 || strcmp(got, c->want[i]) != 0 ||
            (c->first_index && idx != c->first_index + i)) {
            unit__diag("#   rule %s, anchor %s, step %d\n", c->rule, c->anchor, i);
            CHECK_INT_EQ(rc, 0);
            CHECK_STR_EQ(got, c->want[i]);
            CHECK_INT_EQ(idx, c->first_index + i);
        }
        after = civil(got);
    }
    if (c->end) {
        char got[32];
        int rc = next_of(&r, &anchor, &after, got, NULL);
        if (rc != c->end)
            unit__diag("#   rule %s, anchor %s, after the last\n", c->rule, c->anchor);
        CHECK_INT_EQ(rc, c->end);
    }
}

static const seq_case_t seq_cases[] = {
    /* Month ends are clamped, always from the anchor: no drift. */
    {"FREQ=MONTHLY", "2026-01-31 09:00:00", "2026-01-31 09:00:00",
     {"2026-02-28T09:00:00.000", "2026-03-31T09:00:00.000", "2026-04-30T09:00:00.000",
      "2026-05-31T09:00:00.000", "2026-06-30T09:00:00.000", "2026-07-31T09:00:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY", "2028-01-31 09:00:00", "2028-01-31 09:00:00",
     {"2028-02-29T09:00:00.000", "2028-03-31T09:00:00.000", NULL}, 2, 0},
    {"FREQ=MONTHLY;INTERVAL=2", "2026-01-31 09:00:00", "2026-01-31 09:00:00",
     {"2026-03-31T09:00:00.000", "2026-05-31T09:00:00.000", "2026-07-31T09:00:00.000",
      "2026-09-30T09:00:00.000", "2026-11-30T09:00:00.000", "2027-01-31T09:00:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY", "2026-01-30 23:59:59.999", "2026-01-30 23:59:59.999",
     {"2026-02-28T23:59:59.999", "2026-03-30T23:59:59.999", NULL}, 2, 0},
    {"FREQ=YEARLY", "2024-02-29 08:30:00", "2024-02-29 08:30:00",
     {"2025-02-28T08:30:00.000", "2026-02-28T08:30:00.000", "2027-02-28T08:30:00.000",
      "2028-02-29T08:30:00.000", "2029-02-28T08:30:00.000", NULL},
     2, 0},
    {"FREQ=YEARLY;INTERVAL=100", "2000-02-29 00:00:00", "2000-02-29 00:00:00",
     {"2100-02-28T00:00:00.000", "2200-02-28T00:00:00.000", "2300-02-28T00:00:00.000",
      "2400-02-29T00:00:00.000", NULL},
     2, 0},
    /* MONTHLY BYDAY with ordinals: the nth weekday, skipped when missing. */
    {"FREQ=MONTHLY;BYDAY=-1FR", "2026-01-01 08:00:00", "2026-01-01 08:00:00",
     {"2026-01-30T08:00:00.000", "2026-02-27T08:00:00.000", "2026-03-27T08:00:00.000",
      "2026-04-24T08:00:00.000", "2026-05-29T08:00:00.000", "2026-06-26T08:00:00.000",
      "2026-07-31T08:00:00.000", "2026-08-28T08:00:00.000", "2026-09-25T08:00:00.000",
      "2026-10-30T08:00:00.000", "2026-11-27T08:00:00.000", "2026-12-25T08:00:00.000",
      "2027-01-29T08:00:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY;BYDAY=2MO", "2026-01-01 08:00:00", "2026-01-01 08:00:00",
     {"2026-01-12T08:00:00.000", "2026-02-09T08:00:00.000", "2026-03-09T08:00:00.000",
      "2026-04-13T08:00:00.000", "2026-05-11T08:00:00.000", "2026-06-08T08:00:00.000",
      "2026-07-13T08:00:00.000", "2026-08-10T08:00:00.000", "2026-09-14T08:00:00.000",
      "2026-10-12T08:00:00.000", "2026-11-09T08:00:00.000", "2026-12-14T08:00:00.000",
      "2027-01-11T08:00:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY;BYDAY=5TU", "2026-01-01 08:00:00", "2026-01-01 08:00:00",
     {"2026-03-31T08:00:00.000", "2026-06-30T08:00:00.000", "2026-09-29T08:00:00.000",
      "2026-12-29T08:00:00.000", "2027-03-30T08:00:00.000", "2027-06-29T08:00:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY;INTERVAL=3;BYDAY=1MO,-1MO", "2026-01-15 10:00:00", "2026-01-15 10:00:00",
     {"2026-01-26T10:00:00.000", "2026-04-06T10:00:00.000", "2026-04-27T10:00:00.000",
      "2026-07-06T10:00:00.000", "2026-07-27T10:00:00.000", "2026-10-05T10:00:00.000", NULL},
     2, 0},
    /* BYDAY without ordinal: every such weekday of the month; mixed with
     * ordinals, the union (python-dateutil returns nothing for such a mix). */
    {"FREQ=MONTHLY;INTERVAL=2;BYDAY=SU,-1WE", "2024-02-11 09:59:00", "2024-02-11 09:59:00",
     {"2024-02-18T09:59:00.000", "2024-02-25T09:59:00.000", "2024-02-28T09:59:00.000",
      "2024-04-07T09:59:00.000", "2024-04-14T09:59:00.000", "2024-04-21T09:59:00.000",
      "2024-04-24T09:59:00.000", "2024-04-28T09:59:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY;BYDAY=TU,TH", "2026-02-25 10:00:00", "2026-02-25 10:00:00",
     {"2026-02-26T10:00:00.000", "2026-03-03T10:00:00.000", "2026-03-05T10:00:00.000",
      "2026-03-10T10:00:00.000", "2026-03-12T10:00:00.000", "2026-03-17T10:00:00.000", NULL},
     2, 0},
    /* BYMONTHDAY: a day the month lacks is skipped; -1 is the last day. */
    {"FREQ=MONTHLY;BYMONTHDAY=31", "2026-01-31 07:15:00", "2026-01-31 07:15:00",
     {"2026-03-31T07:15:00.000", "2026-05-31T07:15:00.000", "2026-07-31T07:15:00.000",
      "2026-08-31T07:15:00.000", "2026-10-31T07:15:00.000", "2026-12-31T07:15:00.000",
      "2027-01-31T07:15:00.000", "2027-03-31T07:15:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY;BYMONTHDAY=-1", "2027-11-30 18:00:00", "2027-11-30 18:00:00",
     {"2027-12-31T18:00:00.000", "2028-01-31T18:00:00.000", "2028-02-29T18:00:00.000",
      "2028-03-31T18:00:00.000", "2028-04-30T18:00:00.000", "2028-05-31T18:00:00.000", NULL},
     2, 0},
    {"FREQ=MONTHLY;BYMONTHDAY=-1", "2026-01-31 18:00:00", "2026-01-31 18:00:00",
     {"2026-02-28T18:00:00.000", "2026-03-31T18:00:00.000", NULL}, 2, 0},
    {"FREQ=MONTHLY;BYMONTHDAY=-30,15", "2026-01-01 18:00:00", "2026-01-01 18:00:00",
     {"2026-01-02T18:00:00.000", "2026-01-15T18:00:00.000", "2026-02-15T18:00:00.000",
      "2026-03-02T18:00:00.000", "2026-03-15T18:00:00.000", "2026-04-01T18:00:00.000", NULL},
     2, 0},
    /* BYDAY and BYMONTHDAY together: days matching both. */
    {"FREQ=MONTHLY;BYDAY=MO,FR;BYMONTHDAY=13", "2026-01-01 10:00:00", "2026-01-01 10:00:00",
     {"2026-02-13T10:00:00.000", "2026-03-13T10:00:00.000", "2026-04-13T10:00:00.000",
      "2026-07-13T10:00:00.000", "2026-11-13T10:00:00.000", "2027-08-13T10:00:00.000", NULL},
     2, 0},
    /* WEEKLY: Monday weeks, every INTERVAL-th week from the anchor's. */
    {"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR", "2026-01-07 09:00:00", "2026-01-07 09:00:00",
     {"2026-01-09T09:00:00.000", "2026-01-19T09:00:00.000", "2026-01-21T09:00:00.000",
      "2026-01-23T09:00:00.000", "2026-02-02T09:00:00.000", "2026-02-04T09:00:00.000",
      "2026-02-06T09:00:00.000", "2026-02-16T09:00:00.000", NULL},
     2, 0},
    {"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR", "2026-01-07 09:00:00", "2026-01-20 12:00:00",
     {"2026-01-21T09:00:00.000", "2026-01-23T09:00:00.000", "2026-02-02T09:00:00.000", NULL},
     4, 0},
    {"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR", "2026-01-07 09:00:00", "2026-01-14 09:00:00",
     {"2026-01-19T09:00:00.000", NULL}, 3, 0}, /* `after` in a skipped week */
    {"FREQ=WEEKLY;BYDAY=SU,SA", "2026-01-07 09:00:00", "2026-01-07 09:00:00",
     {"2026-01-10T09:00:00.000", "2026-01-11T09:00:00.000", "2026-01-17T09:00:00.000",
      "2026-01-18T09:00:00.000", NULL},
     2, 0},
    {"FREQ=WEEKLY", "2026-01-07 09:00:00", "2026-02-01 23:00:00",
     {"2026-02-04T09:00:00.000", "2026-02-11T09:00:00.000", NULL}, 5, 0},
    /* DAILY. */
    {"FREQ=DAILY;INTERVAL=3", "2026-01-27 06:00:00", "2026-01-27 06:00:00",
     {"2026-01-30T06:00:00.000", "2026-02-02T06:00:00.000", "2026-02-05T06:00:00.000",
      "2026-02-08T06:00:00.000", NULL},
     2, 0},
    {"FREQ=DAILY;INTERVAL=3", "2028-02-23 06:00:00", "2028-02-23 06:00:00",
     {"2028-02-26T06:00:00.000", "2028-02-29T06:00:00.000", "2028-03-03T06:00:00.000",
      "2028-03-06T06:00:00.000", NULL},
     2, 0},
    {"FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "2026-01-08 09:00:00", "2026-01-08 09:00:00",
     {"2026-01-09T09:00:00.000", "2026-01-12T09:00:00.000", "2026-01-13T09:00:00.000",
      "2026-01-14T09:00:00.000", "2026-01-15T09:00:00.000", "2026-01-16T09:00:00.000",
      "2026-01-19T09:00:00.000", NULL},
     2, 0},
    {"FREQ=DAILY;BYMONTHDAY=1,-1", "2026-01-15 09:00:00", "2026-01-15 09:00:00",
     {"2026-01-31T09:00:00.000", "2026-02-01T09:00:00.000", "2026-02-28T09:00:00.000",
      "2026-03-01T09:00:00.000", "2026-03-31T09:00:00.000", NULL},
     2, 0},
    /* DST dates are plain civil values here: the wall clock never moves.
     * Europe's 2026 spring gap is on 03-29, New York's fall overlap on 11-01. */
    {"FREQ=DAILY", "2026-03-28 02:30:00", "2026-03-28 02:30:00",
     {"2026-03-29T02:30:00.000", "2026-03-30T02:30:00.000", NULL}, 2, 0},
    {"FREQ=WEEKLY", "2026-10-25 01:30:00", "2026-10-25 01:30:00",
     {"2026-11-01T01:30:00.000", "2026-11-08T01:30:00.000", NULL}, 2, 0},
    {"FREQ=MONTHLY;BYDAY=1SU", "2026-03-01 02:30:00", "2026-03-01 02:30:00",
     {"2026-04-05T02:30:00.000", "2026-05-03T02:30:00.000", NULL}, 2, 0},
    /* YEARLY with BYDAY: weekdays of the whole year. */
    {"FREQ=YEARLY;BYDAY=20MO", "2026-01-01 10:00:00", "2026-01-01 10:00:00",
     {"2026-05-18T10:00:00.000", "2027-05-17T10:00:00.000", "2028-05-15T10:00:00.000", NULL},
     2, 0},
    {"FREQ=YEARLY;BYDAY=-1SU", "2026-01-01 10:00:00", "2026-01-01 10:00:00",
     {"2026-12-27T10:00:00.000", "2027-12-26T10:00:00.000", "2028-12-31T10:00:00.000", NULL},
     2, 0},
    {"FREQ=YEARLY;BYDAY=53MO", "2026-01-01 10:00:00", "2026-01-01 10:00:00",
     {"2029-12-31T10:00:00.000", "2035-12-31T10:00:00.000", "2040-12-31T10:00:00.000", NULL},
     2, 0},
    {"FREQ=YEARLY;BYDAY=53TH", "2026-01-01 10:00:00", "2026-01-01 10:00:00",
     {"2026-12-31T10:00:00.000", "2032-12-30T10:00:00.000", "2037-12-31T10:00:00.000", NULL},
     2, 0},
    {"FREQ=YEARLY;BYDAY=1MO,-1FR", "2026-01-01 10:00:00", "2026-01-01 10:00:00",
     {"2026-01-05T10:00:00.000", "2026-12-25T10:00:00.000", "2027-01-04T10:00:00.000",
      "2027-12-31T10:00:00.000", "2028-01-03T10:00:00.000", NULL},
     2, 0},
    {"FREQ=YEARLY;BYDAY=MO", "2026-12-20 10:00:00", "2026-12-20 10:00:00",
     {"2026-12-21T10:00:00.000", "2026-12-28T10:00:00.000", "2027-01-04T10:00:00.000",
      "2027-01-11T10:00:00.000", NULL},
     2, 0},
    /* YEARLY BYMONTHDAY: in the anchor's month; with BYDAY, both must match. */
    {"FREQ=YEARLY;BYMONTHDAY=-1", "2027-02-01 10:00:00", "2027-02-01 10:00:00",
     {"2027-02-28T10:00:00.000", "2028-02-29T10:00:00.000", "2029-02-28T10:00:00.000", NULL},
     2, 0},
    {"FREQ=YEARLY;BYMONTHDAY=29", "2027-02-01 10:00:00", "2027-02-01 10:00:00",
     {"2028-02-29T10:00:00.000", "2032-02-29T10:00:00.000", NULL}, 2, 0},
    {"FREQ=YEARLY;BYDAY=FR;BYMONTHDAY=13", "2026-03-01 10:00:00", "2026-03-01 10:00:00",
     {"2026-03-13T10:00:00.000", "2037-03-13T10:00:00.000", "2043-03-13T10:00:00.000",
      "2048-03-13T10:00:00.000", NULL},
     2, 0},
    /* COUNT: the anchor is instance 1. */
    {"FREQ=DAILY;COUNT=3", "2026-01-01 09:00:00", "2026-01-01 09:00:00",
     {"2026-01-02T09:00:00.000", "2026-01-03T09:00:00.000", NULL}, 2, 1},
    {"FREQ=WEEKLY;BYDAY=MO,TH;COUNT=4", "2026-01-07 09:00:00", "2025-12-31 00:00:00",
     {"2026-01-07T09:00:00.000", "2026-01-08T09:00:00.000", "2026-01-12T09:00:00.000",
      "2026-01-15T09:00:00.000", NULL},
     1, 1}, /* the anchor (a Wednesday) counts although BYDAY does not match it */
    /* The range ends at 9999-12-31. */
    {"FREQ=YEARLY", "9997-06-01 00:00:00", "9997-06-01 00:00:00",
     {"9998-06-01T00:00:00.000", "9999-06-01T00:00:00.000", NULL}, 2, -1},
    {"FREQ=DAILY", "9999-12-30 00:00:00", "9999-12-30 00:00:00",
     {"9999-12-31T00:00:00.000", NULL}, 2, -1},
    {"FREQ=WEEKLY;BYDAY=FR,SA", "9999-12-20 00:00:00", "9999-12-25 00:00:00",
     {"9999-12-31T00:00:00.000", NULL}, 4, -1}, /* the 9999-01-01 week is cut short */
};

static void test_next_table(void)
{
    for (size_t i = 0; i < sizeof seq_cases / sizeof seq_cases[0]; i++)
        run_seq(&seq_cases[i]);
}

static void test_next_count(void)
{
    rrule_t r = rule("FREQ=MONTHLY;COUNT=3");
    rrule_civil_t anchor = civil("2026-01-31 09:00:00"), next;
    int idx = 0;
    CHECK_INT_EQ(rrule_next(&r, &anchor, &anchor, &next, &idx), 0);
    CHECK_INT_EQ(idx, 2);
    rrule_civil_t after = next;
    CHECK_INT_EQ(rrule_next(&r, &anchor, &after, &next, &idx), 0);
    CHECK_INT_EQ(idx, 3);
    char s[32];
    rrule_civil_format(&next, s, sizeof s);
    CHECK_STR_EQ(s, "2026-03-31T09:00:00.000");
    after = next;
    idx = 99;
    CHECK_INT_EQ(rrule_next(&r, &anchor, &after, &next, &idx), 1);
    CHECK_INT_EQ(idx, 99); /* untouched */
    CHECK_INT_EQ(rrule_next(&r, &anchor, &after, &next, NULL), 1);
    /* Far past the end: still exhausted, not "none found". */
    after = civil("2100-01-01 00:00:00");
    CHECK_INT_EQ(rrule_next(&r, &anchor, &after, &next, NULL), 1);

    r = rule("FREQ=DAILY;COUNT=1");
    CHECK_INT_EQ(rrule_next(&r, &anchor, &anchor, &next, &idx), 1);
    /* Before the anchor the anchor itself is still to come. */
    after = civil("2026-01-31 08:59:59.999");
    CHECK_INT_EQ(rrule_next(&r, &anchor, &after, &next, &idx), 0);
    CHECK_INT_EQ(idx, 1);
    rrule_civil_format(&next, s, sizeof s);
    CHECK_STR_EQ(s, "2026-01-31T09:00:00.000");

    /* The count from the anchor does not depend on where `after` is. */
    r = rule("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=10000");
    anchor = civil("2026-01-01 09:00:00"); /* a Thursday */
    after = civil("2026-12-31 12:00:00");
    CHECK_INT_EQ(rrule_next(&r, &anchor, &after, &next, &idx), 0);
    rrule_civil_format(&next, s, sizeof s);
    CHECK_STR_EQ(s, "2027-01-01T09:00:00.000");
    CHECK_INT_EQ(idx, 262); /* 261 weekdays in 2026, then 2027-01-01 */
}

static void test_next_before_and_at_anchor(void)
{
    char got[32];
    int idx = 0;
    /* `after` before the anchor: the anchor, even one the rule would not
     * generate (a Wednesday for BYDAY=MO). */
    rrule_t r = rule("FREQ=WEEKLY;BYDAY=MO");
    rrule_civil_t anchor = civil("2026-01-07 09:00:00");
    rrule_civil_t after = civil("1999-01-01 00:00:00");
    CHECK_INT_EQ(next_of(&r, &anchor, &after, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-07T09:00:00.000");
    CHECK_INT_EQ(idx, 1);
    after = civil("2026-01-07 08:59:59.999");
    CHECK_INT_EQ(next_of(&r, &anchor, &after, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-07T09:00:00.000");
    CHECK_INT_EQ(idx, 1);
    /* Strictly after: `after` equal to the anchor moves on. */
    CHECK_INT_EQ(next_of(&r, &anchor, &anchor, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-12T09:00:00.000");
    CHECK_INT_EQ(idx, 2);
    /* Later the same day, or a millisecond before an instance. */
    after = civil("2026-01-07 23:00:00");
    CHECK_INT_EQ(next_of(&r, &anchor, &after, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-12T09:00:00.000");
    after = civil("2026-01-12 08:59:59.999");
    CHECK_INT_EQ(next_of(&r, &anchor, &after, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-12T09:00:00.000");
    after = civil("2026-01-12 09:00:00");
    CHECK_INT_EQ(next_of(&r, &anchor, &after, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-19T09:00:00.000");
    CHECK_INT_EQ(idx, 3);
    /* Monday instances earlier in the anchor's week (01-05) never count. */
    r = rule("FREQ=WEEKLY;BYDAY=MO,FR");
    CHECK_INT_EQ(next_of(&r, &anchor, &anchor, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-09T09:00:00.000");
    CHECK_INT_EQ(idx, 2);
    /* Nor do monthly ones earlier in the anchor's month. */
    r = rule("FREQ=MONTHLY;BYMONTHDAY=1,20");
    anchor = civil("2026-01-10 00:00:00");
    CHECK_INT_EQ(next_of(&r, &anchor, &anchor, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-01-20T00:00:00.000");
    CHECK_INT_EQ(idx, 2);
}

/* recurrence_from=completion: the caller passes anchor = after = the
 * completion day at the anchor's time of day. */
static void test_next_from_completion(void)
{
    char got[32];
    int idx = 0;
    rrule_t r = rule("FREQ=WEEKLY;BYDAY=TU");
    rrule_civil_t c = civil("2026-06-18 17:00:00"); /* completed on a Thursday */
    CHECK_INT_EQ(next_of(&r, &c, &c, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-06-23T17:00:00.000");
    CHECK_INT_EQ(idx, 2);
    r = rule("FREQ=MONTHLY");
    c = civil("2026-01-31 17:00:00");
    CHECK_INT_EQ(next_of(&r, &c, &c, got, &idx), 0);
    CHECK_STR_EQ(got, "2026-02-28T17:00:00.000");
}

/* Rules with no further instance end quickly with -1 instead of looping. */
static void test_next_none(void)
{
    static const struct {
        const char *rule, *anchor;
    } cases[] = {
        {"FREQ=MONTHLY;BYMONTHDAY=31;BYDAY=1MO", "2026-01-01 00:00:00"},
        {"FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=-1MO", "2026-01-01 00:00:00"},
        {"FREQ=MONTHLY;BYMONTHDAY=-31;BYDAY=5MO,5TU,5WE,5TH,5FR,5SA,5SU", "2026-01-01 00:00:00"},
        {"FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", "2026-02-01 00:00:00"},
        {"FREQ=YEARLY;BYMONTHDAY=30", "2026-02-01 00:00:00"},
        {"FREQ=YEARLY;BYMONTHDAY=31", "2026-04-01 00:00:00"},
        {"FREQ=YEARLY;BYMONTHDAY=1;BYDAY=-1SU", "2026-02-01 00:00:00"},
        {"FREQ=YEARLY;INTERVAL=4;BYMONTHDAY=29", "2025-02-01 00:00:00"}, /* only common years */
        {"FREQ=YEARLY;INTERVAL=400;BYDAY=53MO", "2026-01-01 00:00:00"},
        {"FREQ=DAILY;INTERVAL=7;BYDAY=TU", "2026-01-05 00:00:00"}, /* only Mondays */
        {"FREQ=DAILY;INTERVAL=14;BYDAY=SU", "0001-01-01 00:00:00"}, /* a Monday */
        {"FREQ=DAILY;INTERVAL=7;BYMONTHDAY=-1;BYDAY=SA", "9999-01-01 00:00:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rrule_t r = rule(cases[i].rule);
        rrule_civil_t anchor = civil(cases[i].anchor), next;
        int idx = 0;
        int rc = rrule_next(&r, &anchor, &anchor, &next, &idx);
        int rc2 = rrule_next(&r, &anchor, &anchor, &next, NULL);
        if (rc != -1 || rc2 != -1)
            unit__diag("#   rule %s\n", cases[i].rule);
        CHECK_INT_EQ(rc, -1);
        CHECK_INT_EQ(rc2, -1);
    }
}

static void test_next_invalid(void)
{
    rrule_t r = rule("FREQ=DAILY");
    rrule_civil_t ok = civil("2026-01-01 00:00:00"), next;
    rrule_civil_t bad_day = ok;
    bad_day.day = 32;
    rrule_civil_t bad_year = ok;
    bad_year.year = 10000;
    rrule_civil_t bad_ms = ok;
    bad_ms.millisecond = 1000;
    CHECK_INT_EQ(rrule_next(&r, &bad_day, &ok, &next, NULL), -1);
    CHECK_INT_EQ(rrule_next(&r, &ok, &bad_year, &next, NULL), -1);
    CHECK_INT_EQ(rrule_next(&r, &bad_ms, &ok, &next, NULL), -1);
    CHECK_INT_EQ(rrule_next(NULL, &ok, &ok, &next, NULL), -1);
    CHECK_INT_EQ(rrule_next(&r, &ok, &ok, NULL, NULL), -1);
    /* Structs rrule_parse would never produce. */
    rrule_t h = r;
    h.interval = 0;
    CHECK_INT_EQ(rrule_next(&h, &ok, &ok, &next, NULL), -1);
    h = r;
    h.freq = (rrule_freq_t)7;
    CHECK_INT_EQ(rrule_next(&h, &ok, &ok, &next, NULL), -1);
    h = r;
    h.n_byday = 1;
    h.byday[0].weekday = 0;
    h.byday[0].ordinal = 1; /* ordinals are MONTHLY/YEARLY only */
    CHECK_INT_EQ(rrule_next(&h, &ok, &ok, &next, NULL), -1);
    h = rule("FREQ=WEEKLY");
    h.n_bymonthday = 1;
    h.bymonthday[0] = 1;
    CHECK_INT_EQ(rrule_next(&h, &ok, &ok, &next, NULL), -1);
    h = rule("FREQ=MONTHLY");
    h.n_bymonthday = 1;
    h.bymonthday[0] = 0;
    CHECK_INT_EQ(rrule_next(&h, &ok, &ok, &next, NULL), -1);
    h.n_bymonthday = 40;
    CHECK_INT_EQ(rrule_next(&h, &ok, &ok, &next, NULL), -1);
}

static void test_civil_parse_format(void)
{
    static const struct {
        const char *in, *out;
    } good[] = {
        {"2026-01-31 09:00:00", "2026-01-31T09:00:00.000"},
        {"2026-01-31T09:00:00", "2026-01-31T09:00:00.000"},
        {"2026-01-31 09:00:00.5", "2026-01-31T09:00:00.500"},
        {"2026-01-31 09:00:00.12", "2026-01-31T09:00:00.120"},
        {"2026-01-31 09:00:00.123", "2026-01-31T09:00:00.123"},
        {"2026-01-31 09:00:00.123999", "2026-01-31T09:00:00.123"}, /* truncated */
        {"2028-02-29 23:59:59.999", "2028-02-29T23:59:59.999"},
        {"0001-01-01 00:00:00", "0001-01-01T00:00:00.000"},
        {"9999-12-31 23:59:59", "9999-12-31T23:59:59.000"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        rrule_civil_t c = civil(good[i].in);
        char s[RRULE_CIVIL_FORMAT_LEN + 1];
        memset(s, 'x', sizeof s);
        rrule_civil_format(&c, s, sizeof s);
        CHECK_STR_EQ(s, good[i].out);
        rrule_civil_t back = civil(s); /* round trip */
        CHECK(memcmp(&back, &c, sizeof c) == 0);
    }
    rrule_civil_t c = civil("2026-03-04 05:06:07.089");
    CHECK_INT_EQ(c.year, 2026);
    CHECK_INT_EQ(c.month, 3);
    CHECK_INT_EQ(c.day, 4);
    CHECK_INT_EQ(c.hour, 5);
    CHECK_INT_EQ(c.minute, 6);
    CHECK_INT_EQ(c.second, 7);
    CHECK_INT_EQ(c.millisecond, 89);

    static const char *const bad_in[] = {
        "",
        "2026-01-31",
        "2026-01-31 09:00",
        "2026-01-31 09:00:00.",
        "2026-01-31 09:00:00.1234567",
        "2026-01-31 09:00:00Z",
        "2026-01-31 09:00:00+00",
        "2026-01-31 09:00:00 ",
        " 2026-01-31 09:00:00",
        "2026-01-31  09:00:00",
        "2026-01-31t09:00:00",
        "2026-01-31_09:00:00",
        "2026-1-31 09:00:00",
        "2026/01/31 09:00:00",
        "2026-01-31 9:00:00",
        "2026-02-29 00:00:00",
        "2100-02-29 00:00:00",
        "2026-04-31 00:00:00",
        "2026-00-10 00:00:00",
        "2026-13-10 00:00:00",
        "2026-01-00 00:00:00",
        "2026-01-31 24:00:00",
        "2026-01-31 23:60:00",
        "2026-01-31 23:59:60",
        "0000-01-01 00:00:00",
        "10000-01-01 00:00:00",
        "-001-01-01 00:00:00",
        "2026-01-31 09:00:00 BC",
        "+026-01-31 09:00:00",
    };
    for (size_t i = 0; i < sizeof bad_in / sizeof bad_in[0]; i++) {
        rrule_civil_t out = {1, 2, 3, 4, 5, 6, 7};
        if (rrule_civil_parse(bad_in[i], &out) != -1) {
            unit__diag_bytes("input", bad_in[i], strlen(bad_in[i]));
            FAIL("rrule_civil_parse accepted a malformed value");
        }
        CHECK_INT_EQ(out.year, 1); /* unchanged */
        CHECK_INT_EQ(out.millisecond, 7);
    }
    CHECK_INT_EQ(rrule_civil_parse(NULL, &c), -1);
    CHECK_INT_EQ(rrule_civil_parse("2026-01-31 09:00:00", NULL), -1);

    /* Format: a short buffer or an invalid value writes "". */
    char s[RRULE_CIVIL_FORMAT_LEN + 1];
    memset(s, 'x', sizeof s);
    rrule_civil_format(&c, s, sizeof s - 1);
    CHECK_STR_EQ(s, "");
    rrule_civil_t inv = c;
    inv.month = 2;
    inv.day = 30;
    memset(s, 'x', sizeof s);
    rrule_civil_format(&inv, s, sizeof s);
    CHECK_STR_EQ(s, "");
    s[0] = 'x';
    rrule_civil_format(&c, s, 0); /* writes nothing */
    CHECK_INT_EQ(s[0], 'x');
}

UNIT_MAIN(UNIT_TEST(test_minimal), UNIT_TEST(test_prefix_and_case), UNIT_TEST(test_canonical_order),
          UNIT_TEST(test_interval), UNIT_TEST(test_count), UNIT_TEST(test_until),
          UNIT_TEST(test_count_and_until), UNIT_TEST(test_freq), UNIT_TEST(test_byday),
          UNIT_TEST(test_byday_limit), UNIT_TEST(test_bymonthday), UNIT_TEST(test_parts),
          UNIT_TEST(test_error_text_is_bounded_and_printable), UNIT_TEST(test_uses_len_not_nul),
          UNIT_TEST(test_format_buffer), UNIT_TEST(test_format_built_by_hand),
          UNIT_TEST(test_civil_parse_format), UNIT_TEST(test_next_table),
          UNIT_TEST(test_next_count), UNIT_TEST(test_next_before_and_at_anchor),
          UNIT_TEST(test_next_from_completion), UNIT_TEST(test_next_none),
          UNIT_TEST(test_next_invalid))
