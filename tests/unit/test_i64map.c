/* Unit tests for core/i64map, including a randomised comparison with a
 * plain array model (deletions are where open addressing goes wrong). */
#include <stdint.h>
#include <stdlib.h>

#include "core/i64map.h"
#include "unit.h"

static void test_put_get_remove(void)
{
    i64map_t m;
    CHECK_INT_EQ(i64map_init(&m, 100), 0);
    uint64_t v = 0;
    CHECK(!i64map_get(&m, 7, &v));
    CHECK_INT_EQ(i64map_put(&m, 7, 70), 0);
    CHECK(i64map_get(&m, 7, &v));
    CHECK_INT_EQ((long long)v, 70);
    CHECK_INT_EQ(i64map_put(&m, 7, 71), 0); /* replace keeps the count */
    CHECK_INT_EQ((long long)m.count, 1);
    CHECK(i64map_get(&m, 7, &v));
    CHECK_INT_EQ((long long)v, 71);
    CHECK(i64map_remove(&m, 7));
    CHECK(!i64map_remove(&m, 7));
    CHECK(!i64map_get(&m, 7, NULL));
    CHECK_INT_EQ((long long)m.count, 0);
    i64map_free(&m);
}

static void test_bounded(void)
{
    i64map_t m;
    CHECK_INT_EQ(i64map_init(&m, 10), 0);
    for (int64_t k = 1; k <= 10; k++)
        CHECK_INT_EQ(i64map_put(&m, k, (uint64_t)k), 0);
    CHECK_INT_EQ(i64map_put(&m, 11, 11), -1); /* full: a new key is refused */
    CHECK_INT_EQ(i64map_put(&m, 5, 50), 0);   /* but an existing one may change */
    CHECK(i64map_remove(&m, 1));
    CHECK_INT_EQ(i64map_put(&m, 11, 11), 0);
    i64map_free(&m);
}

static bool drop_odd(int64_t key, uint64_t value, void *arg)
{
    CHECK_INT_EQ((long long)key, (long long)value * 3); /* the key comes with its value */
    (*(int *)arg)++;
    return value % 2 == 1;
}

static void test_remove_if(void)
{
    i64map_t m;
    CHECK_INT_EQ(i64map_init(&m, 5000), 0);
    for (int64_t k = 0; k < 5000; k++)
        CHECK_INT_EQ(i64map_put(&m, k * 3, (uint64_t)k), 0);
    int seen = 0;
    CHECK_INT_EQ((long long)i64map_remove_if(&m, drop_odd, &seen), 2500);
    CHECK(seen >= 5000); /* every entry looked at (moved ones again) */
    CHECK_INT_EQ((long long)m.count, 2500);
    for (int64_t k = 0; k < 5000; k++)
        CHECK(i64map_get(&m, k * 3, NULL) == (k % 2 == 0));
    i64map_clear(&m);
    CHECK_INT_EQ((long long)m.count, 0);
    CHECK(!i64map_get(&m, 0, NULL));
    i64map_free(&m);
}

/* Random puts and removes over a small key range, checked against an
 * array after every step: exercises long probe runs and wrap-around. */
static void test_random_against_model(void)
{
    enum { KEYS = 300, STEPS = 200000 };
    static uint64_t model[KEYS];
    static bool present[KEYS];
    i64map_t m;
    CHECK_INT_EQ(i64map_init(&m, KEYS), 0);
    uint64_t rng = 88172645463325252ull;
    for (int step = 0; step < STEPS; step++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int k = (int)(rng % KEYS);
        int64_t key = (int64_t)k * 1024 - 5000; /* negative keys too */
        if ((rng >> 32) % 3 == 0) {
            CHECK(i64map_remove(&m, key) == present[k]);
            present[k] = false;
        } else {
            CHECK_INT_EQ(i64map_put(&m, key, rng), 0);
            model[k] = rng;
            present[k] = true;
        }
        if (step % 1000 == 0 || step == STEPS - 1) {
            size_t n = 0;
            for (int i = 0; i < KEYS; i++) {
                uint64_t v;
                bool got = i64map_get(&m, (int64_t)i * 1024 - 5000, &v);
                CHECK(got == present[i]);
                if (got)
                    CHECK(v == model[i]);
                n += present[i];
            }
            CHECK_INT_EQ((long long)m.count, (long long)n);
        }
    }
    i64map_free(&m);
}

UNIT_MAIN(UNIT_TEST(test_put_get_remove), UNIT_TEST(test_bounded), UNIT_TEST(test_remove_if),
          UNIT_TEST(test_random_against_model))
