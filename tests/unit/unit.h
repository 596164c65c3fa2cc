/* unit: a tiny test framework with TAP output, in the spirit of libuv's
 * test/task.h.
 *
 * A test is a `static void test_x(void)`; a failed check prints its place
 * and values and aborts that test only (longjmp back to the runner), so the
 * other tests still run. Memory a failed test allocated may leak: a failure
 * is already a failure, and the clean paths stay leak-free under valgrind.
 *
 *   static void test_sum(void) { CHECK_INT_EQ(1 + 1, 2); }
 *   UNIT_MAIN(UNIT_TEST(test_sum))
 *
 * Output is TAP 13 ("1..N", "ok 1 - test_sum", "not ok 2 - test_x # file:line:
 * expr") with the compared values on "#" lines after a failure. The exit
 * status is 1 when any test failed. Arguments, when given, run only the tests
 * whose names contain one of them. */
#ifndef TODO_TESTS_UNIT_H
#define TODO_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct unit_test {
    void (*fn)(void);
    const char *name;
} unit_test_t;

#define UNIT_TEST(fn_) {(fn_), #fn_}

static struct {
    jmp_buf jmp;
    bool failed;
    char where[512]; /* "file:line: expr" of the first failed check */
    char diag[2048]; /* the values, one "# " line each */
} unit__state;

__attribute__((unused, format(printf, 1, 2))) static void unit__diag(const char *fmt, ...)
{
    size_t used = strlen(unit__state.diag);
    if (used + 1 >= sizeof unit__state.diag)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(unit__state.diag + used, sizeof unit__state.diag - used, fmt, ap);
    va_end(ap);
}

__attribute__((unused, noreturn)) static void unit__fail(const char *file, int line,
                                                         const char *expr)
{
    /* Keep the TAP line on one line even when the expression spans several. */
    snprintf(unit__state.where, sizeof unit__state.where, "%s:%d: %s", file, line, expr);
    for (char *c = unit__state.where; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    unit__state.failed = true;
    longjmp(unit__state.jmp, 1);
}

/* Writes at most max bytes of s as a C-like literal, so that binary data and
 * line breaks stay on one diagnostic line. */
__attribute__((unused)) static void unit__diag_bytes(const char *label, const void *p,
                                                     size_t len)
{
    if (!p) {
        unit__diag("#   %s: NULL\n", label);
        return;
    }
    const unsigned char *s = p;
    char tmp[600];
    size_t o = 0, max = 120;
    for (size_t i = 0; i < len && i < max && o + 8 < sizeof tmp; i++) {
        unsigned char c = s[i];
        if (c == '\\' || c == '"') {
            tmp[o++] = '\\';
            tmp[o++] = (char)c;
        } else if (c == '\n') {
            tmp[o++] = '\\';
            tmp[o++] = 'n';
        } else if (c == '\r') {
            tmp[o++] = '\\';
            tmp[o++] = 'r';
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(tmp + o, sizeof tmp - o, "\\x%02x", c);
        } else {
            tmp[o++] = (char)c;
        }
    }
    tmp[o] = '\0';
    unit__diag("#   %s: \"%s\"%s (%zu bytes)\n", label, tmp, len > max ? "..." : "", len);
}

#define CHECK(cond)                                         \
    do {                                                    \
        if (!(cond))                                        \
            unit__fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                         \
    do {                                                                           \
        long long unit__a = (long long)(a), unit__b = (long long)(b);              \
        if (unit__a != unit__b) {                                                  \
            unit__diag("#   %s = %lld\n#   %s = %lld\n", #a, unit__a, #b, unit__b); \
            unit__fail(__FILE__, __LINE__, "CHECK_INT_EQ(" #a ", " #b ")");       \
        }                                                                          \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                       \
    do {                                                                         \
        const char *unit__a = (a), *unit__b = (b);                               \
        if (!unit__a || !unit__b || strcmp(unit__a, unit__b) != 0) {             \
            unit__diag_bytes(#a, unit__a, unit__a ? strlen(unit__a) : 0);        \
            unit__diag_bytes(#b, unit__b, unit__b ? strlen(unit__b) : 0);        \
            unit__fail(__FILE__, __LINE__, "CHECK_STR_EQ(" #a ", " #b ")");     \
        }                                                                        \
    } while (0)

/* ptr[0..len) equals the C string str (which has no NUL inside); a NULL ptr
 * with len 0 equals "". */
#define CHECK_MEM_EQ(ptr, len, str)                                                       \
    do {                                                                                  \
        const void *unit__p = (ptr);                                                      \
        size_t unit__n = (size_t)(len);                                                   \
        const char *unit__s = (str);                                                      \
        if (unit__n != strlen(unit__s) ||                                                 \
            (unit__n > 0 && (!unit__p || memcmp(unit__p, unit__s, unit__n) != 0))) {       \
            unit__diag_bytes(#ptr, unit__p, unit__n);                                     \
            unit__diag_bytes(#str, unit__s, strlen(unit__s));                             \
            unit__fail(__FILE__, __LINE__, "CHECK_MEM_EQ(" #ptr ", " #len ", " #str ")"); \
        }                                                                                 \
    } while (0)

/* Fails the test with a message (for "unreachable" branches). */
#define FAIL(msg) unit__fail(__FILE__, __LINE__, (msg))

__attribute__((unused)) static bool unit__selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return true;
    return false;
}

__attribute__((unused)) static void unit__run_one(const unit_test_t *t, int number, int *failures)
{
    unit__state.failed = false;
    unit__state.where[0] = '\0';
    unit__state.diag[0] = '\0';
    if (setjmp(unit__state.jmp) == 0)
        t->fn();
    if (unit__state.failed) {
        printf("not ok %d - %s # %s\n%s", number, t->name, unit__state.where, unit__state.diag);
        (*failures)++;
    } else {
        printf("ok %d - %s\n", number, t->name);
    }
    fflush(stdout);
}

__attribute__((unused)) static int unit_run(const unit_test_t *tests, size_t n, int argc,
                                            char **argv)
{
    int total = 0, failures = 0;
    for (size_t i = 0; i < n; i++)
        total += unit__selected(tests[i].name, argc, argv);
    printf("1..%d\n", total);
    fflush(stdout);
    int number = 0;
    for (size_t i = 0; i < n; i++)
        if (unit__selected(tests[i].name, argc, argv))
            unit__run_one(&tests[i], ++number, &failures);
    if (failures)
        printf("# %d of %d failed\n", failures, total);
    return failures ? 1 : 0;
}

#define UNIT_MAIN(...)                                                            \
    int main(int argc, char **argv)                                               \
    {                                                                             \
        static const unit_test_t unit__tests[] = {__VA_ARGS__};                   \
        return unit_run(unit__tests, sizeof unit__tests / sizeof unit__tests[0], argc, \
                        argv);                                                    \
    }

#endif
