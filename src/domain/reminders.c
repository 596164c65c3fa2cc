/* reminders (domain): see reminders.h. */
#include "domain/reminders.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t reminders_sleep_ms(const reminders_pass_t *pass, int64_t poll_ms)
{
    if (pass->after_claim && pass->claimed >= REMINDERS_BATCH)
        return 0;
    if (!pass->pending)
        return poll_ms;
    /* Due now: claim at once unless the claim just made got nothing, which
     * means another process holds these rows. One that fired something
     * made progress, and the next reminder fell due while it ran. */
    if (pass->due_in_ms <= 0 && (!pass->after_claim || pass->claimed > 0))
        return 0;
    if (pass->due_in_ms <= 0)
        return REMINDERS_RETRY_MS < poll_ms ? REMINDERS_RETRY_MS : poll_ms;
    int64_t ms = pass->due_in_ms + REMINDERS_TIMER_SLACK_MS;
    return ms < poll_ms ? ms : poll_ms;
}

int64_t reminders_payload_ms(const char *payload)
{
    if (!payload || !*payload)
        return REMINDERS_NONE;
    char *end;
    errno = 0;
    long long v = strtoll(payload, &end, 10);
    if (errno != 0 || *end != '\0')
        return REMINDERS_NONE;
    return (int64_t)v;
}

bool reminders_wakes(int64_t new_at_ms, int64_t known_at_ms)
{
    return new_at_ms == REMINDERS_NONE || known_at_ms == REMINDERS_NONE || new_at_ms < known_at_ms;
}

void reminders_window_add(reminders_window_t *w, int64_t lateness_ms)
{
    w->ms[w->next] = lateness_ms;
    w->next = (w->next + 1) % REMINDERS_WINDOW;
    if (w->n < REMINDERS_WINDOW)
        w->n++;
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t reminders_window_quantile(const reminders_window_t *w, double q)
{
    if (w->n == 0)
        return 0;
    int64_t sorted[REMINDERS_WINDOW];
    memcpy(sorted, w->ms, w->n * sizeof sorted[0]);
    qsort(sorted, w->n, sizeof sorted[0], compare_i64);
    /* Nearest rank: the smallest value with at least q of them at or below. */
    double rank = ceil(q * (double)w->n);
    size_t i = rank < 1 ? 0 : (size_t)rank - 1;
    return sorted[i < w->n ? i : w->n - 1];
}
