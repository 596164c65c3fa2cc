/* Unit tests for core/buf: the hard cap, printf growth, numbers, JSON
 * escaping, cstr and steal. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "unit.h"

static void test_init_is_empty(void)
{
    buf_t b;
    buf_init(&b, 100);
    CHECK(b.data == NULL);
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(b.cap, 0);
    CHECK_INT_EQ(b.max, 100);
    buf_free(&b);
}

static void test_append_up_to_max(void)
{
    buf_t b;
    buf_init(&b, 8);
    CHECK_INT_EQ(buf_append(&b, "abc", 3), 0);
    CHECK_INT_EQ(buf_append_str(&b, "defg"), 0);
    CHECK_INT_EQ(buf_append_char(&b, 'h'), 0);
    CHECK_MEM_EQ(b.data, b.len, "abcdefgh");
    /* Exactly full: a NUL still fits for buf_cstr(). */
    CHECK(b.cap > b.len);
    buf_free(&b);
}

static void test_append_past_max_fails_unchanged(void)
{
    buf_t b;
    buf_init(&b, 8);
    CHECK_INT_EQ(buf_append(&b, "abcdef", 6), 0);
    CHECK_INT_EQ(buf_append(&b, "xyz", 3), -1);
    CHECK_MEM_EQ(b.data, b.len, "abcdef");
    CHECK_INT_EQ(buf_append_str(&b, "123"), -1);
    CHECK_MEM_EQ(b.data, b.len, "abcdef");
    CHECK_INT_EQ(buf_append(&b, "gh", 2), 0);
    CHECK_INT_EQ(buf_append_char(&b, 'i'), -1);
    CHECK_MEM_EQ(b.data, b.len, "abcdefgh");
    /* Nothing at all still succeeds when full. */
    CHECK_INT_EQ(buf_append(&b, "", 0), 0);
    CHECK_INT_EQ(b.len, 8);
    buf_free(&b);
}

static void test_append_larger_than_max_on_empty(void)
{
    buf_t b;
    buf_init(&b, 4);
    CHECK_INT_EQ(buf_append(&b, "hello", 5), -1);
    CHECK_INT_EQ(b.len, 0);
    buf_free(&b);

    buf_t z;
    buf_init(&z, 0);
    CHECK_INT_EQ(buf_append_char(&z, 'x'), -1);
    CHECK_INT_EQ(z.len, 0);
    buf_free(&z);
}

static void test_reserve(void)
{
    buf_t b;
    buf_init(&b, 1000);
    CHECK_INT_EQ(buf_reserve(&b, 1000), 0);
    CHECK(b.cap >= 1001);
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(buf_reserve(&b, 1001), -1);
    CHECK_INT_EQ(buf_append(&b, "x", 1), 0);
    CHECK_INT_EQ(buf_reserve(&b, 1000), -1);
    CHECK_INT_EQ(buf_reserve(&b, 999), 0);
    /* A huge request must not wrap around. */
    CHECK_INT_EQ(buf_reserve(&b, SIZE_MAX), -1);
    CHECK_MEM_EQ(b.data, b.len, "x");
    buf_free(&b);
}

static void test_grows_by_many_small_appends(void)
{
    buf_t b;
    buf_init(&b, 100000);
    for (int i = 0; i < 100000; i++)
        CHECK_INT_EQ(buf_append_char(&b, (char)('a' + i % 26)), 0);
    CHECK_INT_EQ(b.len, 100000);
    CHECK_INT_EQ(buf_append_char(&b, 'x'), -1);
    for (int i = 0; i < 100000; i += 997)
        CHECK_INT_EQ(b.data[i], 'a' + i % 26);
    buf_free(&b);
}

static void test_clear_keeps_allocation(void)
{
    buf_t b;
    buf_init(&b, 64);
    CHECK_INT_EQ(buf_append_str(&b, "hello"), 0);
    char *data = b.data;
    size_t cap = b.cap;
    buf_clear(&b);
    CHECK_INT_EQ(b.len, 0);
    CHECK(b.data == data);
    CHECK_INT_EQ(b.cap, cap);
    CHECK_INT_EQ(buf_append_str(&b, "again"), 0);
    CHECK_MEM_EQ(b.data, b.len, "again");
    buf_free(&b);
}

static void test_free_then_reuse(void)
{
    buf_t b;
    buf_init(&b, 16);
    CHECK_INT_EQ(buf_append_str(&b, "one"), 0);
    buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT_EQ(b.len, 0);
    buf_free(&b); /* twice is harmless */
    CHECK_INT_EQ(buf_append_str(&b, "two"), 0);
    CHECK_MEM_EQ(b.data, b.len, "two");
    CHECK_INT_EQ(b.max, 16);
    buf_free(&b);
}

static void test_printf_small(void)
{
    buf_t b;
    buf_init(&b, 1024);
    CHECK_INT_EQ(buf_printf(&b, "%d-%s-%c", 42, "x", 'y'), 0);
    CHECK_MEM_EQ(b.data, b.len, "42-x-y");
    CHECK_INT_EQ(buf_printf(&b, "%s", ""), 0);
    CHECK_MEM_EQ(b.data, b.len, "42-x-y");
    CHECK_INT_EQ(buf_printf(&b, "|%05u", 7u), 0);
    CHECK_MEM_EQ(b.data, b.len, "42-x-y|00007");
    buf_free(&b);
}

static void test_printf_grows(void)
{
    char big[3001];
    memset(big, 'q', 3000);
    big[3000] = '\0';
    buf_t b;
    buf_init(&b, 10000);
    CHECK_INT_EQ(buf_append_str(&b, "<"), 0);
    /* Larger than the first allocation: takes the reserve-and-retry path. */
    CHECK_INT_EQ(buf_printf(&b, "%s>%d", big, 9), 0);
    CHECK_INT_EQ(b.len, 1 + 3000 + 2);
    CHECK_INT_EQ(b.data[0], '<');
    CHECK_INT_EQ(b.data[3000], 'q');
    CHECK_MEM_EQ(b.data + 3001, 2, ">9");
    CHECK_STR_EQ(buf_cstr(&b) + 3001, ">9");
    buf_free(&b);
}

static void test_printf_past_max_fails_unchanged(void)
{
    buf_t b;
    buf_init(&b, 10);
    CHECK_INT_EQ(buf_append_str(&b, "abcde"), 0);
    /* Fits the allocation (256) but not the cap. */
    CHECK_INT_EQ(buf_printf(&b, "%s", "123456"), -1);
    CHECK_MEM_EQ(b.data, b.len, "abcde");
    /* Needs a larger allocation and exceeds the cap. */
    char big[600];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT_EQ(buf_printf(&b, "%s", big), -1);
    CHECK_MEM_EQ(b.data, b.len, "abcde");
    /* Exactly to the cap is fine. */
    CHECK_INT_EQ(buf_printf(&b, "%05d", 12), 0);
    CHECK_MEM_EQ(b.data, b.len, "abcde00012");
    CHECK_INT_EQ(buf_printf(&b, "%s", "!"), -1);
    CHECK_STR_EQ(buf_cstr(&b), "abcde00012");
    buf_free(&b);
}

static void test_printf_on_empty_buffer_over_max(void)
{
    buf_t b;
    buf_init(&b, 3);
    CHECK_INT_EQ(buf_printf(&b, "%s", "abcd"), -1);
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(buf_printf(&b, "%s", "abc"), 0);
    CHECK_MEM_EQ(b.data, b.len, "abc");
    buf_free(&b);
}

static void test_u64(void)
{
    buf_t b;
    buf_init(&b, 256);
    CHECK_INT_EQ(buf_append_u64(&b, 0), 0);
    CHECK_INT_EQ(buf_append_char(&b, ' '), 0);
    CHECK_INT_EQ(buf_append_u64(&b, 7), 0);
    CHECK_INT_EQ(buf_append_char(&b, ' '), 0);
    CHECK_INT_EQ(buf_append_u64(&b, 10), 0);
    CHECK_INT_EQ(buf_append_char(&b, ' '), 0);
    CHECK_INT_EQ(buf_append_u64(&b, 1000000), 0);
    CHECK_INT_EQ(buf_append_char(&b, ' '), 0);
    CHECK_INT_EQ(buf_append_u64(&b, UINT64_MAX), 0);
    CHECK_MEM_EQ(b.data, b.len, "0 7 10 1000000 18446744073709551615");
    buf_free(&b);
}

static void test_u64_past_max(void)
{
    buf_t b;
    buf_init(&b, 4);
    CHECK_INT_EQ(buf_append_u64(&b, 12345), -1);
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(buf_append_u64(&b, 1234), 0);
    CHECK_MEM_EQ(b.data, b.len, "1234");
    buf_free(&b);
}

/* Escapes in[0..len) into a fresh buffer and compares with want. */
static void check_escape(const char *in, size_t len, const char *want)
{
    buf_t b;
    buf_init(&b, 4096);
    CHECK_INT_EQ(buf_append_json_escaped(&b, in, len), 0);
    CHECK_MEM_EQ(b.data, b.len, want);
    /* Whatever came in, the result must be a valid JSON string body. */
    buf_t doc;
    buf_init(&doc, 8192);
    CHECK_INT_EQ(buf_append_char(&doc, '"'), 0);
    CHECK_INT_EQ(buf_append(&doc, b.data, b.len), 0);
    CHECK_INT_EQ(buf_append_char(&doc, '"'), 0);
    json_error_t err;
    json_t *j = json_loadb(doc.data, doc.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j)
        unit__diag("#   jansson: %s\n", err.text);
    CHECK(j != NULL);
    CHECK(json_is_string(j));
    json_decref(j);
    buf_free(&doc);
    buf_free(&b);
}

#define ESC(lit, want) check_escape((lit), sizeof(lit) - 1, (want))

static void test_json_escape_plain(void)
{
    ESC("", "");
    ESC("hello world", "hello world");
    ESC("a/b~`{}[]", "a/b~`{}[]");
    /* DEL is not a control character for JSON and may stay raw. */
    ESC("\x7f", "\x7f");
}

static void test_json_escape_quote_backslash(void)
{
    ESC("\"", "\\\"");
    ESC("\\", "\\\\");
    ESC("a\"b\\c\"", "a\\\"b\\\\c\\\"");
}

static void test_json_escape_control_bytes(void)
{
    ESC("\n", "\\u000a");
    ESC("\r\t", "\\u000d\\u0009");
    ESC("\x01\x1f", "\\u0001\\u001f");
    ESC("a\0b", "a\\u0000b"); /* an embedded NUL counts with len */
    ESC(" ", " ");
}

static void test_json_escape_valid_utf8_kept(void)
{
    ESC("caf\xc3\xa9", "caf\xc3\xa9");                     /* U+00E9 */
    ESC("\xc2\x80", "\xc2\x80");                           /* U+0080, lowest 2-byte */
    ESC("\xdf\xbf", "\xdf\xbf");                           /* U+07FF */
    ESC("\xe0\xa0\x80", "\xe0\xa0\x80");                   /* U+0800, lowest 3-byte */
    ESC("\xe2\x82\xac", "\xe2\x82\xac");                   /* U+20AC euro */
    ESC("\xed\x9f\xbf", "\xed\x9f\xbf");                   /* U+D7FF, below surrogates */
    ESC("\xee\x80\x80", "\xee\x80\x80");                   /* U+E000, above surrogates */
    ESC("\xef\xbf\xbf", "\xef\xbf\xbf");                   /* U+FFFF */
    ESC("\xf0\x90\x80\x80", "\xf0\x90\x80\x80");           /* U+10000 */
    ESC("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");           /* U+1F600 */
    ESC("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");           /* U+10FFFF, the last */
    ESC("a\xc3\xa9\"\xe2\x82\xac", "a\xc3\xa9\\\"\xe2\x82\xac");
}

#define FFFD "\xef\xbf\xbd"

static void test_json_escape_invalid_utf8_replaced(void)
{
    ESC("\x80", FFFD);                           /* lone continuation */
    ESC("\xbf\xbf", FFFD FFFD);
    ESC("\xc0\xaf", FFFD FFFD);                  /* overlong '/' */
    ESC("\xc1\xbf", FFFD FFFD);                  /* overlong */
    ESC("\xe0\x80\xaf", FFFD FFFD FFFD);         /* overlong 3-byte '/' */
    ESC("\xe0\x9f\xbf", FFFD FFFD FFFD);         /* overlong U+07FF */
    ESC("\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD); /* overlong 4-byte */
    ESC("\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD); /* overlong U+FFFF */
    ESC("\xed\xa0\x80", FFFD FFFD FFFD);         /* U+D800, a surrogate */
    ESC("\xed\xbf\xbf", FFFD FFFD FFFD);         /* U+DFFF */
    ESC("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD); /* U+110000, past the end */
    ESC("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD);
    ESC("\xf8\x88\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD);
    ESC("\xfe\xff", FFFD FFFD);
    ESC("\xc3", FFFD);                           /* truncated at the end */
    ESC("\xe2\x82", FFFD FFFD);
    ESC("\xf0\x9f\x98", FFFD FFFD FFFD);
    ESC("\xc3" "A", FFFD "A");                   /* lead byte, then ASCII */
    ESC("\xe2\x82" "\"", FFFD FFFD "\\\"");
    ESC("ok\xff" "ok", "ok" FFFD "ok");
}

static void test_json_escape_past_max_fails(void)
{
    buf_t b;
    buf_init(&b, 5);
    CHECK_INT_EQ(buf_append_json_escaped(&b, "abcdef", 6), -1);
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(buf_append_json_escaped(&b, "\n", 1), -1); /* 6 bytes escaped */
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(buf_append_json_escaped(&b, "abcde", 5), 0);
    CHECK_MEM_EQ(b.data, b.len, "abcde");
    buf_free(&b);
}

/* buf.h: "an append that would exceed [the cap] fails (returns -1) and leaves
 * the buffer unchanged". buf_append_json_escaped() appends the runs before
 * the escape that overflows, and does not roll them back. */
static void test_json_escape_overflow_leaves_buffer_unchanged(void)
{
    buf_t b;
    buf_init(&b, 6);
    CHECK_INT_EQ(buf_append_str(&b, "x"), 0);
    int rc = buf_append_json_escaped(&b, "ab\"cdefgh", 9);
    char after[8] = "";
    size_t len = b.len < sizeof after ? b.len : sizeof after - 1;
    memcpy(after, b.data, len);
    buf_free(&b);
    CHECK_INT_EQ(rc, -1);
    CHECK_MEM_EQ(after, len, "x");
}

static void test_cstr(void)
{
    buf_t b;
    buf_init(&b, 5);
    const char *s = buf_cstr(&b); /* empty and unallocated */
    CHECK(s != NULL);
    CHECK_STR_EQ(s, "");
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(buf_append_str(&b, "abcde"), 0); /* full */
    s = buf_cstr(&b);
    CHECK_STR_EQ(s, "abcde");
    CHECK_INT_EQ(b.len, 5); /* the NUL is not counted */
    /* and appending continues from before the NUL */
    buf_clear(&b);
    CHECK_INT_EQ(buf_append_str(&b, "ab"), 0);
    CHECK_STR_EQ(buf_cstr(&b), "ab");
    CHECK_INT_EQ(buf_append_str(&b, "c"), 0);
    CHECK_STR_EQ(buf_cstr(&b), "abc");
    buf_free(&b);

    buf_t z;
    buf_init(&z, 0);
    CHECK_STR_EQ(buf_cstr(&z), "");
    buf_free(&z);
}

static void test_steal(void)
{
    buf_t b;
    buf_init(&b, 64);
    CHECK_INT_EQ(buf_append_str(&b, "payload"), 0);
    size_t len = 0;
    char *p = buf_steal(&b, &len);
    CHECK(p != NULL);
    CHECK_INT_EQ(len, 7);
    CHECK_MEM_EQ(p, len, "payload");
    CHECK(b.data == NULL);
    CHECK_INT_EQ(b.len, 0);
    CHECK_INT_EQ(b.cap, 0);
    CHECK_INT_EQ(b.max, 64);
    /* The buffer is usable again and independent of the stolen bytes. */
    CHECK_INT_EQ(buf_append_str(&b, "next"), 0);
    CHECK_MEM_EQ(b.data, b.len, "next");
    CHECK_MEM_EQ(p, len, "payload");
    free(p);
    /* A NULL len is allowed. */
    char *q = buf_steal(&b, NULL);
    CHECK_MEM_EQ(q, 4, "next");
    free(q);
    /* Stealing an empty buffer gives NULL and 0. */
    len = 99;
    CHECK(buf_steal(&b, &len) == NULL);
    CHECK_INT_EQ(len, 0);
    buf_free(&b);
}

UNIT_MAIN(
    UNIT_TEST(test_init_is_empty),
    UNIT_TEST(test_append_up_to_max),
    UNIT_TEST(test_append_past_max_fails_unchanged),
    UNIT_TEST(test_append_larger_than_max_on_empty),
    UNIT_TEST(test_reserve),
    UNIT_TEST(test_grows_by_many_small_appends),
    UNIT_TEST(test_clear_keeps_allocation),
    UNIT_TEST(test_free_then_reuse),
    UNIT_TEST(test_printf_small),
    UNIT_TEST(test_printf_grows),
    UNIT_TEST(test_printf_past_max_fails_unchanged),
    UNIT_TEST(test_printf_on_empty_buffer_over_max),
    UNIT_TEST(test_u64),
    UNIT_TEST(test_u64_past_max),
    UNIT_TEST(test_json_escape_plain),
    UNIT_TEST(test_json_escape_quote_backslash),
    UNIT_TEST(test_json_escape_control_bytes),
    UNIT_TEST(test_json_escape_valid_utf8_kept),
    UNIT_TEST(test_json_escape_invalid_utf8_replaced),
    UNIT_TEST(test_json_escape_past_max_fails),
    UNIT_TEST(test_json_escape_overflow_leaves_buffer_unchanged),
    UNIT_TEST(test_cstr),
    UNIT_TEST(test_steal),
)
