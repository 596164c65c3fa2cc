/* Unit tests for domain/reminders: the scheduler's arithmetic, with made-up
 * database times, so nothing here depends on a clock. */
#include <stdint.h>

#include "domain/reminders.h"
#include "unit.h"

#define POLL 5000

/* A look right after a claim that fired `claimed`. */
static int64_t sleep_for(int claimed, bool pending, int64_t due_in)
{
    reminders_pass_t p = {.after_claim = true, .claimed = claimed, .pending = pending,
                          .due_in_ms = due_in};
    return reminders_sleep_ms(&p, POLL);
}

/* A look a notification or a local change asked for. */
static int64_t sleep_after_news(bool pending, int64_t due_in)
{
    reminders_pass_t p = {.after_claim = false, .pending = pending, .due_in_ms = due_in};
    return reminders_sleep_ms(&p, POLL);
}

static void test_full_batch_claims_again_at_once(void)
{
    /* More may be due: even with the next one far away, go now. */
    CHECK_INT_EQ(sleep_for(REMINDERS_BATCH, true, 60000), 0);
    CHECK_INT_EQ(sleep_for(REMINDERS_BATCH, true, -10), 0);
    CHECK_INT_EQ(sleep_for(REMINDERS_BATCH, false, 0), 0);
}

static void test_sleeps_until_the_earliest(void)
{
    /* Plus the slack that keeps a timer from firing before the time. */
    CHECK_INT_EQ(sleep_for(0, true, 1), 1 + REMINDERS_TIMER_SLACK_MS);
    CHECK_INT_EQ(sleep_for(3, true, 1234), 1234 + REMINDERS_TIMER_SLACK_MS);
    CHECK_INT_EQ(sleep_for(0, true, POLL - 2), POLL - 2 + REMINDERS_TIMER_SLACK_MS);
    CHECK_INT_EQ(sleep_for(0, true, POLL - 1), POLL); /* never past the backstop */
}

static void test_backstop_caps_the_sleep(void)
{
    /* A reminder days away, or none: the backstop still looks every POLL
     * ms, which is what catches a change whose NOTIFY was lost. */
    CHECK_INT_EQ(sleep_for(0, true, 3LL * 86400 * 1000), POLL);
    CHECK_INT_EQ(sleep_for(0, true, POLL), POLL);
    CHECK_INT_EQ(sleep_for(0, false, 0), POLL);
    CHECK_INT_EQ(sleep_for(7, false, 0), POLL);
}

static void test_due_but_not_ours_retries_soon(void)
{
    /* Due now yet our claim got nothing: another process holds its lock.
     * Neither a busy loop (0) nor a wait for the backstop. */
    CHECK_INT_EQ(sleep_for(0, true, 0), REMINDERS_RETRY_MS);
    CHECK_INT_EQ(sleep_for(0, true, -86400000), REMINDERS_RETRY_MS);
    reminders_pass_t p = {.after_claim = true, .claimed = 0, .pending = true, .due_in_ms = 0};
    CHECK_INT_EQ(reminders_sleep_ms(&p, 10), 10); /* never past a shorter backstop */
}

static void test_due_after_a_claim_that_fired_claims_again(void)
{
    /* The claim fired some and the next fell due while it ran (a burst
     * spread over milliseconds): no pause, the claim made progress. */
    CHECK_INT_EQ(sleep_for(12, true, -1), 0);
    CHECK_INT_EQ(sleep_for(1, true, 0), 0);
    CHECK_INT_EQ(sleep_for(1, true, 3), 3 + REMINDERS_TIMER_SLACK_MS);
}

static void test_news_of_a_due_reminder_claims_at_once(void)
{
    /* A reminder set in the past (or due by the time we looked): no claim
     * has tried it yet, so try now rather than after the retry pause. */
    CHECK_INT_EQ(sleep_after_news(true, 0), 0);
    CHECK_INT_EQ(sleep_after_news(true, -3600000), 0);
    CHECK_INT_EQ(sleep_after_news(true, 250), 250 + REMINDERS_TIMER_SLACK_MS);
    CHECK_INT_EQ(sleep_after_news(true, 10LL * POLL), POLL);
    CHECK_INT_EQ(sleep_after_news(false, 0), POLL);
}

static void test_payload(void)
{
    CHECK_INT_EQ(reminders_payload_ms("1767225600000"), 1767225600000LL);
    CHECK_INT_EQ(reminders_payload_ms("-5"), -5);
    CHECK(reminders_payload_ms(NULL) == REMINDERS_NONE);
    CHECK(reminders_payload_ms("") == REMINDERS_NONE);
    CHECK(reminders_payload_ms("12x") == REMINDERS_NONE);
    CHECK(reminders_payload_ms("99999999999999999999999") == REMINDERS_NONE);
}

static void test_wakes_only_for_an_earlier_reminder(void)
{
    const int64_t known = 1767225600000LL;
    CHECK(reminders_wakes(known - 1, known));
    CHECK(!reminders_wakes(known, known));    /* the same time fires with it */
    CHECK(!reminders_wakes(known + 1, known)); /* seen when the known one fires */
    CHECK(reminders_wakes(known + 1, REMINDERS_NONE)); /* asleep on the backstop */
    CHECK(reminders_wakes(REMINDERS_NONE, known));     /* unreadable: look */
}

static void test_window_quantiles(void)
{
    static reminders_window_t w;
    CHECK_INT_EQ(reminders_window_quantile(&w, 0.5), 0);
    for (int64_t i = 100; i >= 1; i--)
        reminders_window_add(&w, i);
    CHECK_INT_EQ((long long)w.n, 100);
    CHECK_INT_EQ(reminders_window_quantile(&w, 0.5), 50);
    CHECK_INT_EQ(reminders_window_quantile(&w, 0.9), 90);
    CHECK_INT_EQ(reminders_window_quantile(&w, 0.99), 99);
    CHECK_INT_EQ(reminders_window_quantile(&w, 1.0), 100);
    CHECK_INT_EQ(reminders_window_quantile(&w, 0.001), 1);
}

static void test_window_keeps_the_most_recent(void)
{
    static reminders_window_t w;
    /* A burst of old, late firings followed by a full window of on-time
     * ones: only the recent ones count. */
    for (int i = 0; i < 500; i++)
        reminders_window_add(&w, 60000);
    for (int i = 0; i < REMINDERS_WINDOW; i++)
        reminders_window_add(&w, 3);
    CHECK_INT_EQ((long long)w.n, REMINDERS_WINDOW);
    CHECK_INT_EQ(reminders_window_quantile(&w, 0.99), 3);
    reminders_window_add(&w, 60000);
    CHECK_INT_EQ(reminders_window_quantile(&w, 1.0), 60000);
    CHECK_INT_EQ(reminders_window_quantile(&w, 0.99), 3);
}

UNIT_MAIN(UNIT_TEST(test_full_batch_claims_again_at_once), UNIT_TEST(test_sleeps_until_the_earliest),
          UNIT_TEST(test_backstop_caps_the_sleep), UNIT_TEST(test_due_but_not_ours_retries_soon),
          UNIT_TEST(test_due_after_a_claim_that_fired_claims_again),
          UNIT_TEST(test_news_of_a_due_reminder_claims_at_once),
          UNIT_TEST(test_payload), UNIT_TEST(test_wakes_only_for_an_earlier_reminder),
          UNIT_TEST(test_window_quantiles), UNIT_TEST(test_window_keeps_the_most_recent))
