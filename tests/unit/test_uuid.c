/* Unit tests for core/uuid: the textual shape of a v4 UUID and uniqueness. */
#include <stdlib.h>
#include <string.h>

#include "core/uuid.h"
#include "unit.h"

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_shape(const char *u)
{
    CHECK_INT_EQ(strlen(u), UUID_STR_LEN);
    for (int i = 0; i < UUID_STR_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            CHECK_INT_EQ(u[i], '-');
        } else if (!is_lower_hex(u[i])) {
            unit__diag("#   %s: byte %d\n", u, i);
            FAIL("not lower-case hex");
        }
    }
    CHECK_INT_EQ(u[14], '4'); /* version */
    CHECK(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b'); /* variant */
}

static void test_format(void)
{
    for (int i = 0; i < 1000; i++) {
        char u[UUID_STR_LEN + 1 + 4];
        memset(u, 'X', sizeof u);
        uuid_v4(u);
        check_shape(u);
        CHECK_INT_EQ(u[UUID_STR_LEN], '\0');
        CHECK_INT_EQ(u[UUID_STR_LEN + 1], 'X'); /* nothing written past the NUL */
    }
}

static void test_variant_and_hex_digits_vary(void)
{
    /* Over many draws every variant nibble and every hex digit in a random
     * position shows up: the bytes are not stuck. */
    bool variant[4] = {false};
    bool digit[16] = {false};
    for (int i = 0; i < 4000; i++) {
        char u[UUID_STR_LEN + 1];
        uuid_v4(u);
        char v = u[19];
        variant[v >= 'a' ? v - 'a' + 2 : v - '8'] = true;
        char d = u[0];
        digit[d >= 'a' ? d - 'a' + 10 : d - '0'] = true;
    }
    for (int i = 0; i < 4; i++)
        CHECK(variant[i]);
    for (int i = 0; i < 16; i++)
        CHECK(digit[i]);
}

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, UUID_STR_LEN);
}

static void test_100k_distinct(void)
{
    enum { N = 100000 };
    char (*ids)[UUID_STR_LEN + 1] = malloc(N * sizeof *ids);
    CHECK(ids != NULL);
    for (int i = 0; i < N; i++)
        uuid_v4(ids[i]);
    qsort(ids, N, sizeof *ids, cmp_uuid);
    int dups = 0;
    for (int i = 1; i < N; i++)
        if (memcmp(ids[i - 1], ids[i], UUID_STR_LEN) == 0)
            dups++;
    check_shape(ids[0]);
    check_shape(ids[N - 1]);
    free(ids);
    CHECK_INT_EQ(dups, 0);
}

UNIT_MAIN(
    UNIT_TEST(test_format),
    UNIT_TEST(test_variant_and_hex_digits_vary),
    UNIT_TEST(test_100k_distinct),
)
