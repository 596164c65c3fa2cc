/* Unit tests for core/log: every JSON line parses (jansson) and carries its
 * fields, whatever the strings hold; text format; level filtering; when
 * lines are flushed. The logger writes to a temporary file's fd. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "unit.h"

static FILE *capture_file;
static char captured[256 * 1024];
static size_t captured_len;

static void capture_begin(log_level_t level, log_format_t format)
{
    capture_file = tmpfile();
    CHECK(capture_file != NULL);
    log_setup(level, format, fileno(capture_file));
}

/* Reads what reached the fd so far, without flushing. */
static const char *capture_peek(void)
{
    ssize_t n = pread(fileno(capture_file), captured, sizeof captured - 1, 0);
    CHECK(n >= 0);
    captured_len = (size_t)n;
    captured[captured_len] = '\0';
    return captured;
}

/* Flushes, reads everything and puts the logger back on stderr. */
static const char *capture_end(void)
{
    log_flush();
    capture_peek();
    log_setup(LOG_INFO, LOG_FORMAT_JSON, 2);
    fclose(capture_file);
    capture_file = NULL;
    return captured;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Parses line i (0-based) of s as a JSON object; the caller decrefs. */
static json_t *json_line(const char *s, int i)
{
    for (; i > 0 && s; i--) {
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    CHECK(s != NULL && *s != '\0');
    const char *end = strchr(s, '\n');
    CHECK(end != NULL); /* every line is terminated */
    json_error_t err;
    json_t *j = json_loadb(s, (size_t)(end - s), JSON_ALLOW_NUL, &err);
    if (!j) {
        unit__diag("#   jansson: %s at column %d\n", err.text, err.column);
        unit__diag_bytes("line", s, (size_t)(end - s));
        FAIL("log line is not valid JSON");
    }
    CHECK(json_is_object(j));
    return j;
}

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        unit__diag("#   key: %s\n", key);
        FAIL("field missing or not a string");
    }
    return json_string_value(v);
}

/* ts, level and msg are always there; ts is RFC 3339 UTC with ms. */
static void check_envelope(json_t *j, const char *level, const char *msg)
{
    const char *ts = jstr(j, "ts");
    CHECK_INT_EQ(strlen(ts), 24);
    CHECK_INT_EQ(ts[4], '-');
    CHECK_INT_EQ(ts[10], 'T');
    CHECK_INT_EQ(ts[19], '.');
    CHECK_INT_EQ(ts[23], 'Z');
    CHECK_MEM_EQ(ts, 2, "20");
    CHECK_STR_EQ(jstr(j, "level"), level);
    CHECK_STR_EQ(jstr(j, "msg"), msg);
}

static void test_json_field_types(void)
{
    capture_begin(LOG_DEBUG, LOG_FORMAT_JSON);
    log_info("hello", LOG_STR("s", "plain"), LOG_STRN("n", "abcdef", 3), LOG_INT("i", -42),
             LOG_DOUBLE("d", 1.5), LOG_BOOL("t", 7), LOG_BOOL("f", 0), LOG_STR("absent", NULL),
             LOG_STRN("empty", "", 0), LOG_INT("max", LLONG_MAX), LOG_INT("min", LLONG_MIN));
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 1);
    json_t *j = json_line(out, 0);
    check_envelope(j, "info", "hello");
    CHECK_STR_EQ(jstr(j, "s"), "plain");
    CHECK_STR_EQ(jstr(j, "n"), "abc");
    CHECK(json_is_integer(json_object_get(j, "i")));
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "i")), -42);
    CHECK(json_is_real(json_object_get(j, "d")));
    CHECK(json_real_value(json_object_get(j, "d")) == 1.5);
    CHECK(json_is_true(json_object_get(j, "t")));
    CHECK(json_is_false(json_object_get(j, "f")));
    CHECK(json_is_null(json_object_get(j, "absent")));
    CHECK_STR_EQ(jstr(j, "empty"), "");
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "max")), LLONG_MAX);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "min")), LLONG_MIN);
    CHECK_INT_EQ(json_object_size(j), 3 + 10);
    json_decref(j);
}

static void test_json_levels_and_no_fields(void)
{
    capture_begin(LOG_DEBUG, LOG_FORMAT_JSON);
    log_debug("d");
    log_info("i");
    log_warn("w");
    log_error("e");
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 4);
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const char *const msgs[] = {"d", "i", "w", "e"};
    for (int i = 0; i < 4; i++) {
        json_t *j = json_line(out, i);
        check_envelope(j, names[i], msgs[i]);
        CHECK_INT_EQ(json_object_size(j), 3);
        json_decref(j);
    }
}

static void test_json_hostile_strings(void)
{
    static const char hostile[] = "q\"uote\\ back\nnew\rline\ttab\x01\x7f"
                                  "bad\xff\xfe utf8 \xc3\xa9 \xed\xa0\x80 }{\",\"level\":\"x";
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    log_info("msg \"with\" quotes\nand a newline", LOG_STR("v", hostile),
             LOG_STRN("bin", "a\0b", 3), LOG_STR("k\"ey\n", "x"));
    log_info("second");
    const char *out = capture_end();
    /* The embedded newlines are escaped: still exactly two lines. */
    CHECK_INT_EQ(count_lines(out), 2);
    json_t *j = json_line(out, 0);
    check_envelope(j, "info", "msg \"with\" quotes\nand a newline");
    CHECK_STR_EQ(jstr(j, "v"), "q\"uote\\ back\nnew\rline\ttab\x01\x7f"
                               "bad\xef\xbf\xbd\xef\xbf\xbd utf8 \xc3\xa9 "
                               "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd }{\",\"level\":\"x");
    json_t *bin = json_object_get(j, "bin");
    CHECK(json_is_string(bin));
    CHECK_INT_EQ(json_string_length(bin), 3);
    CHECK(memcmp(json_string_value(bin), "a\0b", 3) == 0);
    CHECK_STR_EQ(jstr(j, "k\"ey\n"), "x");
    json_decref(j);
    j = json_line(out, 1);
    check_envelope(j, "info", "second");
    json_decref(j);
}

/* LOG_DOUBLE is written with "%.3f", which gives "nan" and "inf": not JSON
 * numbers, so the whole line stops being JSON. */
static void test_json_double_not_finite(void)
{
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    log_info("ratio", LOG_DOUBLE("nan", NAN), LOG_DOUBLE("inf", INFINITY));
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 1);
    json_t *j = json_line(out, 0);
    check_envelope(j, "info", "ratio");
    json_decref(j);
}

static void test_level_filtering(void)
{
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    CHECK(!log_enabled(LOG_DEBUG));
    CHECK(log_enabled(LOG_INFO));
    CHECK(log_enabled(LOG_ERROR));
    log_debug("dropped");
    log_emit(LOG_DEBUG, "dropped too", LOG_END); /* the filter is in log_emit as well */
    log_info("kept");
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 1);
    json_t *j = json_line(out, 0);
    check_envelope(j, "info", "kept");
    json_decref(j);

    capture_begin(LOG_ERROR, LOG_FORMAT_JSON);
    log_info("no");
    log_warn("no");
    log_error("yes");
    out = capture_end();
    CHECK_INT_EQ(count_lines(out), 1);
    CHECK(strstr(out, "\"yes\"") != NULL);
}

static void test_info_buffered_until_flush(void)
{
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    log_info("buffered");
    CHECK_STR_EQ(capture_peek(), "");
    log_flush();
    CHECK(strstr(capture_peek(), "buffered") != NULL);
    log_flush(); /* nothing left: writes nothing more */
    size_t len = captured_len;
    CHECK_INT_EQ(strlen(capture_peek()), len);
    capture_end();
}

static void test_warn_flushes_at_once(void)
{
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    log_info("first");
    log_warn("careful");
    /* The warning takes the buffered info line with it, in order. */
    const char *out = capture_peek();
    CHECK_INT_EQ(count_lines(out), 2);
    const char *a = strstr(out, "first"), *b = strstr(out, "careful");
    CHECK(a != NULL && b != NULL && a < b);
    capture_end();
}

static void test_large_volume_flushes_itself(void)
{
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    char value[1000];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    /* About 100 KiB of info lines with no explicit flush. */
    for (int i = 0; i < 100; i++)
        log_info("bulk", LOG_INT("i", i), LOG_STR("v", value));
    CHECK(strlen(capture_peek()) >= 32 * 1024);
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 100);
    for (int i = 0; i < 100; i += 33) {
        json_t *j = json_line(out, i);
        CHECK_INT_EQ(json_integer_value(json_object_get(j, "i")), i);
        json_decref(j);
    }
}

static void test_overlong_line_replaced_by_marker(void)
{
    static char big[40000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    log_info("before");
    log_info("huge", LOG_STR("v", big));
    log_info("after");
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 3);
    json_t *j = json_line(out, 1);
    check_envelope(j, "info", "log line too long");
    json_decref(j);
    j = json_line(out, 2);
    check_envelope(j, "info", "after");
    json_decref(j);
}

static void test_text_format(void)
{
    capture_begin(LOG_INFO, LOG_FORMAT_TEXT);
    log_info("listening", LOG_STR("host", "0.0.0.0"), LOG_INT("port", 8080),
             LOG_STR("sp", "two words"), LOG_STR("eq", "a=b"), LOG_STR("empty", ""),
             LOG_BOOL("ok", 1), LOG_DOUBLE("ms", 2.5), LOG_STR("nl", "x\ny"),
             LOG_STR("q", "say \"hi\""), LOG_STR("nul", NULL));
    log_warn("w");
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 2);
    /* "<ts> INFO  listening key=value ..." */
    CHECK_INT_EQ(out[23], 'Z');
    CHECK_MEM_EQ(out + 24, strlen(" INFO  listening "), " INFO  listening ");
    const char *line = out + 24;
    static const char *const want[] = {
        " host=0.0.0.0", " port=8080", " sp=\"two words\"", " eq=\"a=b\"", " empty=\"\"",
        " ok=true", " ms=2.500", " nl=\"x\\u000ay\"", " q=\"say \\\"hi\\\"\"", " nul=null",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(line, want[i])) {
            unit__diag_bytes("line", line, strcspn(line, "\n"));
            unit__diag_bytes("want", want[i], strlen(want[i]));
            FAIL("text field missing");
        }
    }
    const char *second = strchr(out, '\n') + 1;
    CHECK_MEM_EQ(second + 24, strlen(" WARN  w\n"), " WARN  w\n");
}

static void test_flush_to_bad_fd_drops_lines(void)
{
    int fds[2];
    CHECK_INT_EQ(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    log_setup(LOG_INFO, LOG_FORMAT_JSON, fds[1]); /* closed: write() fails with EBADF */
    log_info("lost");
    log_flush(); /* must return, not spin */
    capture_begin(LOG_INFO, LOG_FORMAT_JSON);
    log_info("found");
    const char *out = capture_end();
    CHECK_INT_EQ(count_lines(out), 1);
    CHECK(strstr(out, "lost") == NULL);
    CHECK(strstr(out, "found") != NULL);
}

static void test_level_parse(void)
{
    CHECK_INT_EQ(log_level_parse("debug"), LOG_DEBUG);
    CHECK_INT_EQ(log_level_parse("info"), LOG_INFO);
    CHECK_INT_EQ(log_level_parse("warn"), LOG_WARN);
    CHECK_INT_EQ(log_level_parse("error"), LOG_ERROR);
    CHECK_INT_EQ(log_level_parse("INFO"), -1);
    CHECK_INT_EQ(log_level_parse(""), -1);
    CHECK_INT_EQ(log_level_parse("warning"), -1);
}

UNIT_MAIN(
    UNIT_TEST(test_json_field_types),
    UNIT_TEST(test_json_levels_and_no_fields),
    UNIT_TEST(test_json_hostile_strings),
    UNIT_TEST(test_json_double_not_finite),
    UNIT_TEST(test_level_filtering),
    UNIT_TEST(test_info_buffered_until_flush),
    UNIT_TEST(test_warn_flushes_at_once),
    UNIT_TEST(test_large_volume_flushes_itself),
    UNIT_TEST(test_overlong_line_replaced_by_marker),
    UNIT_TEST(test_text_format),
    UNIT_TEST(test_flush_to_bad_fd_drops_lines),
    UNIT_TEST(test_level_parse),
)
