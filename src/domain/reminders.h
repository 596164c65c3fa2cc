/* reminders (domain): the reminder scheduler's arithmetic, free of clocks
 * and I/O so that tests can feed it any times.
 *
 * Every time here is by the database's clock: the scheduler asks
 * PostgreSQL how far away the next reminder is and sleeps that long on the
 * loop's monotonic clock, so neither host's wall clock ever enters. */
#ifndef TODO_DOMAIN_REMINDERS_H
#define TODO_DOMAIN_REMINDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reminders fired by one claim statement. */
#define REMINDERS_BATCH 200
/* From this lateness (fired_at - remind_at) on, a reminder is "late": it
 * fell due while no scheduler ran (or could reach the database). A running
 * scheduler fires within milliseconds. */
#define REMINDERS_LATE_MS 5000
/* A due reminder another process is claiming right now (its row is locked,
 * so our claim got nothing) is looked at again this soon: that claim either
 * commits (fired) or rolls back (ours to take). */
#define REMINDERS_RETRY_MS 25
/* Added to a sleep until a reminder: libuv's clock counts whole
 * milliseconds (truncated), so a timer can fire up to 1 ms before the
 * requested delay has passed; a claim that early finds nothing due, and
 * the look after it would mistake the reminder for one another process is
 * claiming. */
#define REMINDERS_TIMER_SLACK_MS 1
/* No reminder at all: "none". */
#define REMINDERS_NONE INT64_MAX

/* What the last pass found. */
typedef struct reminders_pass {
    bool after_claim;  /* the look followed a claim (not a notification) */
    int claimed;       /* fired by that claim */
    bool pending;      /* an unfired reminder exists (after the claim) */
    int64_t due_in_ms; /* until the earliest is due; <= 0: due now */
} reminders_pass_t;

/* How long to sleep before the next claim: at once after a full batch
 * (more may be due), or when one is due and either no claim preceded the
 * look or that claim fired something; until the earliest reminder, never
 * longer than the polling backstop; and briefly when one is due right
 * after a claim that got nothing (another process is claiming it). */
int64_t reminders_sleep_ms(const reminders_pass_t *pass, int64_t poll_ms);

/* A NOTIFY payload (the earliest new reminder, ms since the epoch, by the
 * database's clock); REMINDERS_NONE when unreadable, so the caller looks. */
int64_t reminders_payload_ms(const char *payload);

/* Whether a new reminder at `new_at_ms` needs a fresh look, given the
 * earliest one the sleeping scheduler knows of (REMINDERS_NONE: none). A
 * later one will be seen when the known one fires. */
bool reminders_wakes(int64_t new_at_ms, int64_t known_at_ms);

/* The lateness of the most recent firings, for /metrics percentiles. */
#define REMINDERS_WINDOW 1024
typedef struct reminders_window {
    int64_t ms[REMINDERS_WINDOW];
    size_t n;    /* filled, up to REMINDERS_WINDOW */
    size_t next; /* where the next one goes */
} reminders_window_t;

void reminders_window_add(reminders_window_t *w, int64_t lateness_ms);
/* The q-quantile (0 < q <= 1, nearest rank) of the window; 0 when empty. */
int64_t reminders_window_quantile(const reminders_window_t *w, double q);

#endif
