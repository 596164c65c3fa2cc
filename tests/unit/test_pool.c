/* db/pool without a database: what db_pool_new accepts. Nothing here
 * connects (db_pool_start is never called). */
#include <stdbool.h>
#include <string.h>
#include <uv.h>

#include "db/db.h"
#include "unit.h"

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

/* A pool made with this listen channel, or NULL; a made one is closed
 * through the loop and freed, and the loop must then close cleanly. */
static bool pool_made_with(const char *channel)
{
    uv_loop_t loop;
    CHECK_INT_EQ(uv_loop_init(&loop), 0);
    db_config_t cfg = {
        .url = "postgresql://127.0.0.1:1/none",
        .pool_size = 1,
        .queue_max = 1,
        .queue_timeout_ms = 1000,
        .statement_timeout_ms = 1000,
        .connect_timeout_ms = 1000,
        .unlisted = true,
        .listen_channel = channel,
    };
    db_pool_t *pool = db_pool_new(&loop, &cfg, NULL, 0, NULL, 0);
    if (pool) {
        bool closed = false;
        db_pool_close(pool, on_closed, &closed);
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(closed);
        db_pool_free(pool);
    }
    CHECK_INT_EQ(uv_loop_close(&loop), 0);
    return pool != NULL;
}

static void test_plain_listen_channels_are_accepted(void)
{
    CHECK(pool_made_with(NULL));
    CHECK(pool_made_with("todo_reminders"));
    CHECK(pool_made_with("_x9"));
    char longest[64];
    memset(longest, 'a', 63);
    longest[63] = '\0';
    CHECK(pool_made_with(longest));
}

/* LISTEN cannot take a parameter, so the channel goes into the SQL text:
 * anything that could leave its quotes, or that PostgreSQL would fold or
 * truncate, is refused before any connection exists. */
static void test_other_listen_channels_are_refused(void)
{
    static const char *const refused[] = {
        "", "todo\"; DROP TABLE tasks; --", "a\"b", "Todo", "1abc", "a b", "a;b", "a-b", "é",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (pool_made_with(refused[i])) {
            unit__diag("#   channel: %s\n", refused[i]);
            FAIL("a pool was made with a listen channel that is not a plain identifier");
        }
    }
    char too_long[65];
    memset(too_long, 'a', 64);
    too_long[64] = '\0';
    CHECK(!pool_made_with(too_long));
}

UNIT_MAIN(
    UNIT_TEST(test_plain_listen_channels_are_accepted),
    UNIT_TEST(test_other_listen_channels_are_refused),
)
