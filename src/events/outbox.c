/* outbox: see outbox.h for the design; this file is its state machine.
 *
 * `held` maps every row this process has handed to the producer to its
 * hand-off time, until its delete commits; acknowledged rows stay in it
 * (marked ACKED) while their delete is pending, so neither the relay nor a
 * late hand-off sends them again. */
#include "events/outbox.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/i64map.h"
#include "core/log.h"
#include "db/queries.h"
#include "events/producer.h"
#include "ops/metrics.h"

#define RELAY_BATCH 500
#define DELETE_BATCH 1000
/* Statistics, the leader check and the relay's sweep run this often. */
#define TICK_MS 1000
/* A row this old that this process does not hold is stuck: its writer
 * crashed (a live one sends its own rows, even after a broker outage, and
 * does so well within this). The leader's sweep sends it. Shorter would
 * have the leader race live processes over their rows after an outage;
 * longer delays a crashed process's last events. */
#define SWEEP_GRACE_MS 60000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/* held's value for a row Kafka acknowledged, whose delete is pending
 * (hand-off times come from uv_hrtime(), never 0 after boot). */
#define ACKED 0
/* The producer's byte bound; the message bound comes from the config. */
#define QUEUE_MAX_KBYTES (32 * 1024)
#define STATS_COUNT_EVERY_TICK_BELOW 10000
/* A follower's own waiting rows it remembers (8 bytes each, touched only
 * when used); past it, the leader's sweep sends the rest. */
#define OWN_MAX 65536

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,    60};
#define N_LATENCY (sizeof latency_bounds / sizeof latency_bounds[0])

typedef enum relay_mode {
    /* Commits go to the producer as they happen. */
    RELAY_DIRECT,
    /* Some row was not handed over: hand-offs wait, so that nothing newer
     * overtakes it, until the backlog is gone. */
    RELAY_CATCHING_UP,
} relay_mode_t;

struct events_outbox {
    uv_loop_t *loop;
    db_pool_t *db; /* its own connection (db/queries.h, db_outbox_statements) */
    events_producer_t *producer; /* NULL: publishing off */
    char *topics[EVENTS_STREAM_COUNT];

    i64map_t held;
    int64_t *acked; /* acknowledged, delete not yet committed; [0, n_deleting) in flight */
    size_t n_acked, n_deleting;
    char *delete_param; /* "{1,2,...}" */
    bool deleting;

    relay_mode_t mode;
    /* Catching up, the leader reads the whole table (relay passes); the
     * others send their own rows that waited (`own`), in seq order. */
    int64_t skipped_min;  /* lowest seq that waited since the last read was sent */
    bool pass_from_zero;  /* the next relay read starts at seq 0 */
    int64_t *own;         /* this process's rows that are neither held nor sent */
    size_t n_own, own_asked;
    bool own_busy, own_overflow;
    char *own_param;      /* "{1,2,...}" */
    bool leader;
    int leader_pid;
    bool lock_busy;
    bool relay_busy, relay_waiting;
    int64_t cursor;
    int grace_ms;
    int backoff_ms;
    bool stats_busy;

    long long backlog;
    int ticks_since_count;
    double oldest_age_s;
    uint64_t latency_buckets[N_LATENCY + 1];
    double latency_sum;
    uint64_t latency_count;
    uint64_t relayed;

    uv_timer_t tick, relay_timer;
    int open_handles;
    bool closing, producer_closed, db_closing, db_closed;
    void (*closed_cb)(void *);
    void *closed_arg;
};

static void relay_query(events_outbox_t *o);
static void flush_deletes(events_outbox_t *o);
static void maybe_closed(events_outbox_t *o);

/* ---- hand-off ----------------------------------------------------------- */

/* Sends one row; false when the producer cannot take it now. */
static bool send_row(events_outbox_t *o, events_stream_t stream, int64_t seq, const char *key,
                     const char *event, size_t len, uint64_t handed_at)
{
    /* held is bounded at twice the producer's queue; past it, wait. */
    if (o->held.count >= o->held.max_entries)
        return false;
    if (events_producer_send(o->producer, o->topics[stream], key, strlen(key), event, len, seq) !=
        EVENTS_SEND_OK)
        return false;
    (void)i64map_put(&o->held, seq, handed_at ? handed_at : 1);
    return true;
}

/* Row i of a relay read (seq, stream, key, event, age in s), sent as if
 * handed over when it was created. */
static bool send_result_row(events_outbox_t *o, const db_result_t *res, int i, int64_t seq,
                            uint64_t now)
{
    events_stream_t stream = strcmp(db_result_value(res, i, 1), "reminders") == 0
                                 ? EVENTS_STREAM_REMINDERS
                                 : EVENTS_STREAM_TASKS;
    double age = strtod(db_result_value(res, i, 4), NULL);
    uint64_t age_ns = age > 0 ? (uint64_t)(age * 1e9) : 0;
    if (!send_row(o, stream, seq, db_result_value(res, i, 2), db_result_value(res, i, 3),
                  db_result_length(res, i, 3), age_ns < now ? now - age_ns : 1))
        return false;
    o->relayed++;
    return true;
}

/* "{1,2,3}": a bigint[] parameter; out holds 21 bytes a seq, plus 3. */
static void format_seqs(char *out, const int64_t *seqs, size_t n)
{
    *out++ = '{';
    for (size_t i = 0; i < n; i++)
        out += sprintf(out, "%s%" PRId64, i ? "," : "", seqs[i]);
    *out++ = '}';
    *out = '\0';
}

static void relay_backoff(events_outbox_t *o)
{
    o->backoff_ms = o->backoff_ms ? o->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (o->backoff_ms > BACKOFF_MAX_MS)
        o->backoff_ms = BACKOFF_MAX_MS;
}

static void own_relay(events_outbox_t *o);

static void on_relay_timer(uv_timer_t *t)
{
    events_outbox_t *o = t->data;
    o->relay_waiting = false;
    if (o->closing || o->relay_busy || o->own_busy)
        return;
    if (o->leader)
        relay_query(o);
    else if (o->mode == RELAY_CATCHING_UP)
        own_relay(o);
}

static void arm_relay(events_outbox_t *o, int delay_ms)
{
    o->relay_waiting = true;
    uv_timer_start(&o->relay_timer, on_relay_timer, (uint64_t)delay_ms, 0);
}

/* This process's row seq is neither held nor sent: it goes out with the
 * catch-up. When the list is full, the leader's sweep sends it later. */
static void own_add(events_outbox_t *o, int64_t seq)
{
    if (seq <= 0 || o->leader) /* the leader's passes read the whole table */
        return;
    if (o->n_own < OWN_MAX) {
        o->own[o->n_own++] = seq;
    } else if (!o->own_overflow) {
        o->own_overflow = true;
        log_warn("outbox: too many rows waiting here; the leader's sweep will send the rest",
                 LOG_INT("from_seq", (long long)seq));
    }
}

/* Row seq (0: none in particular) could not go out at commit, or came back
 * undelivered: nothing newer goes out directly until it has. */
static void enter_catch_up(events_outbox_t *o, int64_t seq, const char *why)
{
    if (seq > 0 && seq < o->skipped_min)
        o->skipped_min = seq;
    own_add(o, seq);
    if (o->mode == RELAY_CATCHING_UP)
        return;
    o->mode = RELAY_CATCHING_UP;
    o->pass_from_zero = true;
    log_info("outbox: catching up", LOG_STR("reason", why), LOG_BOOL("leader", o->leader));
    if (!o->relay_busy && !o->own_busy && !o->relay_waiting)
        arm_relay(o, BACKOFF_MIN_MS);
}

static void leave_catch_up(events_outbox_t *o)
{
    o->mode = RELAY_DIRECT;
    o->n_own = 0;
    o->own_overflow = false;
    o->skipped_min = INT64_MAX;
    log_info("outbox: caught up; hand-offs resume");
}

void events_outbox_committed(events_outbox_t *o, events_stream_t stream, const char *seq_text,
                             const char *key, const char *event, size_t event_len)
{
    if (!o || !o->producer || o->closing)
        return;
    int64_t seq = strtoll(seq_text, NULL, 10);
    if (o->mode != RELAY_DIRECT) {
        enter_catch_up(o, seq, "backlog");
        return;
    }
    if (i64map_get(&o->held, seq, NULL))
        return; /* the relay's sweep got there first */
    if (!send_row(o, stream, seq, key, event, event_len, uv_hrtime()))
        enter_catch_up(o, seq, "producer queue full");
}

void events_outbox_uncertain(events_outbox_t *o)
{
    if (!o || !o->producer || o->closing || !o->leader)
        return;
    /* A row may have committed unseen: the leader reads the table again
     * before the next hand-off. (Elsewhere the leader's sweep finds it.) */
    o->mode = RELAY_DIRECT;
    enter_catch_up(o, 0, "a write's outcome is unknown");
}

/* ---- relay ---------------------------------------------------------------- */

static void on_relay_rows(void *arg, db_status_t status, const db_result_t *res)
{
    events_outbox_t *o = arg;
    o->relay_busy = false;
    if (o->closing) {
        maybe_closed(o);
        return;
    }
    if (status != DB_OK || !o->leader) {
        relay_backoff(o);
        arm_relay(o, o->backoff_ms);
        return;
    }
    int rows = db_result_rows(res);
    uint64_t now = uv_hrtime();
    for (int i = 0; i < rows; i++) {
        int64_t seq = strtoll(db_result_value(res, i, 0), NULL, 10);
        if (!i64map_get(&o->held, seq, NULL)) {
            if (!send_result_row(o, res, i, seq, now)) {
                /* Local queue full: this row and the rest wait. */
                relay_backoff(o);
                arm_relay(o, o->backoff_ms);
                return;
            }
        }
        o->cursor = seq;
    }
    o->backoff_ms = 0;
    /* Read on: the table has more, or a commit waited while this read ran
     * (maybe below the cursor: a seq is taken before its commit), or the
     * pass must start over. Under steady writes this repeats, and the
     * relay carries every event until a read sees no commit wait. */
    if (rows == RELAY_BATCH || o->skipped_min != INT64_MAX || o->pass_from_zero) {
        relay_query(o);
        return;
    }
    if (o->mode == RELAY_CATCHING_UP) {
        if (o->grace_ms != 0) {
            relay_query(o); /* a sweep's read, which skips young rows, ends no catch-up */
            return;
        }
        leave_catch_up(o);
    }
    o->cursor = 0;
}

static void relay_query(events_outbox_t *o)
{
    char cursor[24], grace[16], limit[16];
    if (o->pass_from_zero) {
        o->cursor = 0;
        o->pass_from_zero = false;
    }
    /* Rows that waited before this read are visible to it: start low
     * enough to see them. */
    if (o->skipped_min != INT64_MAX && o->skipped_min - 1 < o->cursor)
        o->cursor = o->skipped_min - 1;
    o->grace_ms = o->mode == RELAY_CATCHING_UP ? 0 : SWEEP_GRACE_MS;
    snprintf(cursor, sizeof cursor, "%" PRId64, o->cursor);
    snprintf(grace, sizeof grace, "%d", o->grace_ms);
    snprintf(limit, sizeof limit, "%d", RELAY_BATCH);
    const char *values[3] = {cursor, grace, limit};
    o->skipped_min = INT64_MAX;
    o->relay_busy = true;
    if (db_query(o->db, DB_OUTBOX_RELAY, 3, values, on_relay_rows, o) != DB_OK) {
        o->relay_busy = false;
        relay_backoff(o);
        arm_relay(o, o->backoff_ms);
    }
}

/* ---- a follower's catch-up: its own rows, in seq order ------------------- */

static int cmp_seq(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void on_own_rows(void *arg, db_status_t status, const db_result_t *res)
{
    events_outbox_t *o = arg;
    o->own_busy = false;
    if (o->closing) {
        maybe_closed(o);
        return;
    }
    if (o->leader) {
        arm_relay(o, 0); /* became leader meanwhile: the table pass covers all */
        return;
    }
    if (status != DB_OK) {
        relay_backoff(o);
        arm_relay(o, o->backoff_ms);
        return;
    }
    /* The rows asked for were own[0..own_asked), in order; an absent one
     * was sent (and deleted) by the leader's sweep meanwhile. */
    int rows = db_result_rows(res);
    int64_t stopped_at = INT64_MAX; /* the first row the producer had no room for */
    uint64_t now = uv_hrtime();
    for (int i = 0; i < rows; i++) {
        int64_t seq = strtoll(db_result_value(res, i, 0), NULL, 10);
        if (i64map_get(&o->held, seq, NULL))
            continue;
        if (!send_result_row(o, res, i, seq, now)) {
            stopped_at = seq;
            break;
        }
    }
    /* Keep what was not asked for (it waited during the read) and what
     * did not fit. */
    size_t keep = 0;
    for (size_t i = 0; i < o->n_own; i++)
        if (i >= o->own_asked || o->own[i] >= stopped_at)
            o->own[keep++] = o->own[i];
    o->n_own = keep;
    if (stopped_at != INT64_MAX) {
        relay_backoff(o);
        arm_relay(o, o->backoff_ms);
        return;
    }
    o->backoff_ms = 0;
    if (o->n_own > 0)
        own_relay(o);
    else
        leave_catch_up(o);
}

static void own_relay(events_outbox_t *o)
{
    if (o->n_own == 0) {
        leave_catch_up(o);
        return;
    }
    qsort(o->own, o->n_own, sizeof *o->own, cmp_seq);
    size_t n = o->n_own < DELETE_BATCH ? o->n_own : DELETE_BATCH;
    format_seqs(o->own_param, o->own, n);
    const char *values[1] = {o->own_param};
    o->own_asked = n;
    o->own_busy = true;
    if (db_query(o->db, DB_OUTBOX_READ_SEQS, 1, values, on_own_rows, o) != DB_OK) {
        o->own_busy = false;
        relay_backoff(o);
        arm_relay(o, o->backoff_ms);
    }
}

/* ---- delivery reports and deletes ----------------------------------------- */

static void observe_latency(events_outbox_t *o, uint64_t ns)
{
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < N_LATENCY && s > latency_bounds[b])
        b++;
    o->latency_buckets[b]++;
    o->latency_sum += s;
    o->latency_count++;
}

static void on_delivery(void *ctx, int64_t seq, bool delivered, const char *error)
{
    events_outbox_t *o = ctx;
    uint64_t handed_at;
    if (!i64map_get(&o->held, seq, &handed_at) || handed_at == ACKED)
        return;
    if (!delivered) {
        i64map_remove(&o->held, seq);
        if (!o->closing)
            enter_catch_up(o, seq, error ? error : "delivery failed");
        return;
    }
    uint64_t now = uv_hrtime();
    observe_latency(o, now > handed_at ? now - handed_at : 0);
    (void)i64map_put(&o->held, seq, ACKED);
    o->acked[o->n_acked++] = seq; /* never full: acked rows are held rows */
    flush_deletes(o);
}

/* A purged row is this process's to send again. */
static bool drop_unacked(int64_t seq, uint64_t value, void *arg)
{
    if (value == ACKED)
        return false;
    own_add(arg, seq);
    return true;
}

static void on_reset(void *ctx)
{
    events_outbox_t *o = ctx;
    /* Reports for purged rows normally came first (as failures); any left
     * in held are gone without one. */
    size_t lost = i64map_remove_if(&o->held, drop_unacked, o);
    log_warn("outbox: producer recreated; unacknowledged rows will be sent again",
             LOG_INT("rows", (long long)lost));
    enter_catch_up(o, 0, "producer recreated");
    o->pass_from_zero = true;
}

static void on_deleted(void *arg, db_status_t status, const db_result_t *res)
{
    events_outbox_t *o = arg;
    o->deleting = false;
    if (status == DB_OK) {
        for (size_t i = 0; i < o->n_deleting; i++)
            i64map_remove(&o->held, o->acked[i]);
        memmove(o->acked, o->acked + o->n_deleting, (o->n_acked - o->n_deleting) * sizeof *o->acked);
        o->n_acked -= o->n_deleting;
    } else {
        /* They stay acknowledged and are deleted on a later try (the tick);
         * a crash before that only repeats them. */
        log_warn("outbox: cannot delete acknowledged rows yet",
                 LOG_STR("error", status == DB_UNAVAILABLE ? "database unavailable"
                                                          : db_result_message(res)));
        if (o->closing)
            o->n_acked = 0; /* give up: after a restart they are sent again */
    }
    o->n_deleting = 0;
    if (status == DB_OK)
        flush_deletes(o);
    maybe_closed(o);
}

static void flush_deletes(events_outbox_t *o)
{
    if (o->deleting || o->n_acked == 0)
        return;
    size_t n = o->n_acked < DELETE_BATCH ? o->n_acked : DELETE_BATCH;
    format_seqs(o->delete_param, o->acked, n);
    const char *values[1] = {o->delete_param};
    o->n_deleting = n;
    o->deleting = true;
    if (db_query(o->db, DB_OUTBOX_DELETE, 1, values, on_deleted, o) != DB_OK) {
        o->deleting = false;
        o->n_deleting = 0;
        if (o->closing)
            o->n_acked = 0;
    }
}

/* ---- the tick: statistics, leadership, sweep -------------------------------- */

static void on_stats(void *arg, db_status_t status, const db_result_t *res)
{
    events_outbox_t *o = arg;
    o->stats_busy = false;
    if (o->closing) {
        maybe_closed(o);
        return;
    }
    if (status != DB_OK)
        return;
    if (!db_result_is_null(res, 0, 0))
        o->backlog = strtoll(db_result_value(res, 0, 0), NULL, 10);
    else if (db_result_is_null(res, 0, 2))
        o->backlog = 0; /* not counted, but empty */
    o->oldest_age_s = strtod(db_result_value(res, 0, 1), NULL);
}

static void on_lock(void *arg, db_status_t status, const db_result_t *res)
{
    events_outbox_t *o = arg;
    o->lock_busy = false;
    if (o->closing) {
        maybe_closed(o);
        return;
    }
    if (status == DB_QUERY_ERROR)
        log_warn("outbox: leader lock query failed", LOG_STR("error", db_result_message(res)));
    bool held = status == DB_OK && strcmp(db_result_value(res, 0, 0), "t") == 0;
    int pid = held ? atoi(db_result_value(res, 0, 1)) : 0;
    if (held && (!o->leader || pid != o->leader_pid)) {
        /* A new leader reads the whole table once before anything else. */
        o->leader = true;
        o->leader_pid = pid;
        log_info("outbox: relay leader", LOG_INT("backend_pid", pid));
        enter_catch_up(o, 0, "became leader");
        o->pass_from_zero = true;
        if (!o->relay_busy && !o->own_busy)
            arm_relay(o, 0);
    } else if (!held && o->leader) {
        o->leader = false;
        o->leader_pid = 0;
        log_warn("outbox: no longer the relay leader",
                 LOG_STR("reason", status == DB_OK ? "lock taken" : "connection lost"));
    }
}

static void on_tick(uv_timer_t *t)
{
    events_outbox_t *o = t->data;
    if (o->closing)
        return;
    if (!o->stats_busy) {
        /* A large backlog is counted every 10 s only: counting it scans
         * the table, and PostgreSQL's CPU is the requests'. */
        bool count = o->backlog < STATS_COUNT_EVERY_TICK_BELOW || ++o->ticks_since_count >= 10;
        const char *values[1] = {count ? "true" : "false"};
        if (count)
            o->ticks_since_count = 0;
        o->stats_busy = true;
        if (db_query(o->db, DB_OUTBOX_STATS, 1, values, on_stats, o) != DB_OK)
            o->stats_busy = false;
    }
    if (!o->producer)
        return;
    if (!o->lock_busy) {
        char pid[16];
        snprintf(pid, sizeof pid, "%d", o->leader_pid);
        const char *values[1] = {pid};
        o->lock_busy = true;
        if (db_query(o->db, DB_OUTBOX_TRY_LOCK, 1, values, on_lock, o) != DB_OK)
            o->lock_busy = false;
    }
    flush_deletes(o);
    /* Direct: the sweep, for rows older than the grace that nobody here
     * holds. Catching up: a pass, in case none is under way. */
    if (o->relay_busy || o->own_busy || o->relay_waiting)
        return;
    if (o->leader) {
        if (o->mode == RELAY_DIRECT)
            o->cursor = 0;
        relay_query(o);
    } else if (o->mode == RELAY_CATCHING_UP) {
        own_relay(o);
    }
}

/* ---- life ------------------------------------------------------------------ */

static void free_fields(events_outbox_t *o)
{
    for (int i = 0; i < EVENTS_STREAM_COUNT; i++)
        free(o->topics[i]);
    i64map_free(&o->held);
    free(o->acked);
    free(o->own);
    free(o->delete_param);
    free(o->own_param);
}

events_outbox_t *events_outbox_new(uv_loop_t *loop, const events_outbox_config_t *cfg, char *err,
                                   size_t errlen)
{
    events_outbox_t *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    o->loop = loop;
    /* Direct from the start: a leader first reads the table (and waits
     * for nothing else), a follower has nothing of its own waiting yet. */
    o->mode = RELAY_DIRECT;
    o->skipped_min = INT64_MAX;
    for (int i = 0; i < EVENTS_STREAM_COUNT; i++)
        o->topics[i] = strdup(cfg->topics[i]);
    size_t held_max = (size_t)cfg->queue_max * 2;
    o->acked = calloc(held_max, sizeof *o->acked);
    o->own = calloc(OWN_MAX, sizeof *o->own);
    o->delete_param = malloc(DELETE_BATCH * 21 + 3);
    o->own_param = malloc(DELETE_BATCH * 21 + 3);
    if (!o->topics[0] || !o->topics[1] || !o->acked || !o->own || !o->delete_param ||
        !o->own_param ||
        i64map_init(&o->held, held_max) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->brokers[0]) {
        char embedded_topics[800];
        snprintf(embedded_topics, sizeof embedded_topics, "%s:6,%s:3,%s:1", cfg->topics[0],
                 cfg->topics[1], cfg->dlq_topic);
        events_producer_config_t pc = {
            .brokers = cfg->brokers,
            .queue_max_messages = cfg->queue_max,
            .queue_max_kbytes = QUEUE_MAX_KBYTES,
            .security_protocol = cfg->security_protocol,
            .sasl_mechanism = cfg->sasl_mechanism,
            .sasl_username = cfg->sasl_username,
            .sasl_password = cfg->sasl_password,
            .on_delivery = on_delivery,
            .on_reset = on_reset,
            .ctx = o,
        };
        /* First, so that a bad setting fails before any handle exists. */
        o->producer = events_producer_new(loop, &pc, embedded_topics, err, errlen);
        if (!o->producer)
            goto fail;
    }
    /* The connection comes last: nothing can fail after it. */
    o->db = db_pool_new(loop, &cfg->db, db_outbox_statements, DB_OUTBOX_STMT_COUNT, NULL, 0);
    if (!o->db) {
        snprintf(err, errlen, "outbox connection: out of memory, or a listen channel that is "
                              "not a plain identifier");
        goto fail; /* exits at once: the producer's handles die with the process */
    }
    uv_timer_init(loop, &o->tick);
    uv_timer_init(loop, &o->relay_timer);
    o->tick.data = o->relay_timer.data = o;
    o->open_handles = 2;
    return o;
fail:
    free_fields(o);
    free(o);
    return NULL;
}

void events_outbox_start(events_outbox_t *o)
{
    db_pool_start(o->db);
    uv_timer_start(&o->tick, on_tick, 0, TICK_MS);
}

const char *events_outbox_kafka_state(void *arg)
{
    events_outbox_t *o = arg;
    if (!o->producer)
        return "disabled";
    const char *state = events_producer_state(o->producer);
    return strcmp(state, "up") == 0 ? NULL : state;
}

bool events_outbox_listening(const events_outbox_t *o)
{
    return db_pool_listening(o->db);
}

const char *events_outbox_bootstraps(const events_outbox_t *o)
{
    return o->producer ? events_producer_bootstraps(o->producer) : "";
}

int events_outbox_collect_metrics(buf_t *out, void *arg)
{
    events_outbox_t *o = arg;
    int rc = metrics_write_gauge(out, "todo_outbox_backlog",
                                 "Outbox rows not yet acknowledged by Kafka (counted every second, "
                                 "every 10 s above 10000)",
                                 (double)o->backlog);
    rc = rc ? rc
            : metrics_write_gauge(out, "todo_outbox_oldest_age_seconds",
                                  "Age of the oldest unacknowledged outbox row", o->oldest_age_s);
    rc = rc ? rc
            : metrics_write_gauge(out, "todo_outbox_relay_leader",
                                  "1 when this process holds the outbox relay lock", o->leader);
    rc = rc ? rc
            : metrics_write_counter(out, "todo_outbox_relayed_total",
                                    "Rows sent by the relay rather than at commit", (double)o->relayed);
    rc = rc ? rc
            : buf_append_str(out, "# HELP todo_events_commit_to_ack_seconds From commit (or, for "
                                  "relayed rows, the row's creation) to Kafka's acknowledgement\n"
                                  "# TYPE todo_events_commit_to_ack_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < N_LATENCY && !rc; b++) {
        cumulative += o->latency_buckets[b];
        rc = buf_printf(out, "todo_events_commit_to_ack_seconds_bucket{le=\"%g\"} %llu\n",
                        latency_bounds[b], (unsigned long long)cumulative);
    }
    cumulative += o->latency_buckets[N_LATENCY];
    rc = rc ? rc
            : buf_printf(out,
                         "todo_events_commit_to_ack_seconds_bucket{le=\"+Inf\"} %llu\n"
                         "todo_events_commit_to_ack_seconds_sum %.6f\n"
                         "todo_events_commit_to_ack_seconds_count %llu\n",
                         (unsigned long long)cumulative, o->latency_sum,
                         (unsigned long long)o->latency_count);
    if (!rc && o->producer)
        rc = events_producer_collect_metrics(out, o->producer);
    return rc;
}

/* ---- shutdown ---------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    events_outbox_t *o = h->data;
    o->open_handles--;
    maybe_closed(o);
}

static void on_db_closed(void *arg)
{
    events_outbox_t *o = arg;
    o->db_closed = true;
    maybe_closed(o);
}

/* Each step of closing waits for what is in flight: the producer's last
 * reports, their delete, the pool queries, then the handles. */
static void maybe_closed(events_outbox_t *o)
{
    if (!o->closing || !o->producer_closed)
        return;
    if (o->n_acked > 0 && !o->deleting)
        flush_deletes(o);
    if (o->deleting || o->relay_busy || o->own_busy || o->stats_busy)
        return;
    if (!o->db_closed) {
        if (!o->db_closing) {
            /* A lock query in flight fails as the pool closes. */
            o->db_closing = true;
            db_pool_close(o->db, on_db_closed, o);
        }
        return;
    }
    if (o->open_handles == 2) {
        uv_close((uv_handle_t *)&o->tick, on_handle_closed);
        uv_close((uv_handle_t *)&o->relay_timer, on_handle_closed);
        return;
    }
    if (o->open_handles == 0 && o->closed_cb) {
        void (*cb)(void *) = o->closed_cb;
        o->closed_cb = NULL;
        cb(o->closed_arg);
    }
}

static void on_producer_closed(void *arg)
{
    events_outbox_t *o = arg;
    o->producer_closed = true;
    maybe_closed(o);
}

void events_outbox_close(events_outbox_t *o, int deadline_ms, void (*cb)(void *arg), void *arg)
{
    o->closing = true;
    o->closed_cb = cb;
    o->closed_arg = arg;
    uv_timer_stop(&o->tick);
    uv_timer_stop(&o->relay_timer);
    o->relay_waiting = false;
    if (o->producer && !o->producer_closed) {
        /* With no broker connected, waiting cannot deliver anything: the
         * rows stay in the table for the next start. */
        if (strcmp(events_producer_state(o->producer), "up") != 0)
            deadline_ms = 0;
        events_producer_close(o->producer, deadline_ms, on_producer_closed, o);
        return;
    }
    o->producer_closed = true;
    maybe_closed(o);
}

void events_outbox_free(events_outbox_t *o)
{
    if (!o)
        return;
    events_producer_free(o->producer);
    db_pool_free(o->db);
    free_fields(o);
    free(o);
}
