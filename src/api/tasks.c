/* tasks: task endpoints on the database pool.
 *
 * Each request that reaches the database gets a call record holding what
 * its callback needs. The callback always finishes the request, even when
 * the client has gone (req->orphaned): finishing is what frees it. */
#include "api/tasks.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "api/access.h"
#include "api/task_input.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "core/timeparse.h"
#include "crypto/digest.h"
#include "db/queries.h"
#include "events/outbox.h"
#include "events/reminders.h"
#include "http/problem.h"
#include "http/response.h"

#define MAX_PARAMS 16
#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 100
#define MAX_LIST_TAGS 20
#define IDEMPOTENCY_KEY_MAX 255

struct tasks_api {
    db_pool_t *pool;
    events_outbox_t *outbox;
    events_reminders_t *reminders; /* NULL: no scheduler to tell */
};

/* ---- statement parameters ------------------------------------------------ */

/* Text parameters built in one buffer; offsets survive its growth. */
typedef struct params {
    buf_t store;
    long off[MAX_PARAMS]; /* -1 = SQL NULL */
    int n;
} params_t;

static void params_init(params_t *p)
{
    buf_init(&p->store, 64 * 1024);
    p->n = 0;
}

static void params_free(params_t *p)
{
    buf_free(&p->store);
}

static int params_add(params_t *p, const char *s)
{
    if (p->n == MAX_PARAMS)
        return -1;
    if (!s) {
        p->off[p->n++] = -1;
        return 0;
    }
    long at = (long)p->store.len;
    if (buf_append_str(&p->store, s) != 0 || buf_append_char(&p->store, '\0') != 0)
        return -1;
    p->off[p->n++] = at;
    return 0;
}

static int params_add_int(params_t *p, long long v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%lld", v);
    return params_add(p, tmp);
}

static void params_values(const params_t *p, const char **out)
{
    for (int i = 0; i < p->n; i++)
        out[i] = p->off[i] < 0 ? NULL : p->store.data + p->off[i];
}

/* ---- the call record ---------------------------------------------------- */

typedef enum call_kind {
    CALL_CREATE,
    CALL_CREATE_KEYED,
    CALL_LOOKUP,
    CALL_GET,
    CALL_WRITE, /* update or complete */
    CALL_DELETE,
    CALL_LIST,
} call_kind_t;

typedef struct call {
    tasks_api_t *api;
    http_request_t *req;
    call_kind_t kind;
    params_t params;       /* kept for a second statement (idempotent create) */
    char key[IDEMPOTENCY_KEY_MAX + 1];
    char hash[DIGEST_SHA256_HEX_LEN + 1];
    bool looked_up_after_conflict;
    /* list */
    int limit;
    int stmt;
    char sort[16], order[8];
    char digest[17];
    /* GET with If-None-Match: -1 none, 0 a list (inm_versions), 1 "*". */
    int if_none_match;
    int64_t inm_versions[8];
    int n_inm;
} call_t;

static call_t *call_new(tasks_api_t *api, http_request_t *req, call_kind_t kind)
{
    call_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->api = api;
    c->req = req;
    c->kind = kind;
    c->if_none_match = -1;
    params_init(&c->params);
    return c;
}

static void call_free(call_t *c)
{
    params_free(&c->params);
    free(c);
}

/* ---- answers -------------------------------------------------------------- */

static void answer_unavailable(http_request_t *req, const char *detail)
{
    http_problem_build(req, 503, "unavailable", detail, NULL, 0);
    if (http_response_header(req, "Retry-After", "1") != 0)
        req->res.status = 503;
    http_response_end(req);
}

static void answer_oom(http_request_t *req)
{
    answer_unavailable(req, "the service is short of memory; try again");
}

/* Maps a failed statement to an answer. Check constraints are validation
 * the database does on the merged row (PATCH), so they are 422. */
static void answer_db_error(http_request_t *req, db_status_t status, const db_result_t *res)
{
    if (status == DB_UNAVAILABLE) {
        answer_unavailable(req, "the database is unavailable; try again");
        return;
    }
    const char *state = db_result_sqlstate(res);
    const char *constraint = db_result_constraint(res);
    if (strcmp(state, "23514") == 0) {
        http_field_error_t err = {"task", "violates a rule"};
        if (strcmp(constraint, "tasks_recurrence_needs_due") == 0)
            err = (http_field_error_t){"recurrence", "a recurring task needs due_at"};
        else if (strcmp(constraint, "tasks_reminder_needs_due") == 0)
            err = (http_field_error_t){"reminders", "a 'before' reminder needs due_at"};
        http_problem_fields(req, 422, "validation-failed", "the task is not valid", &err, 1);
        return;
    }
    if (strcmp(state, "57014") == 0 || strncmp(state, "08", 2) == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strncmp(state, "53", 2) == 0 ||
        strcmp(state, "57P01") == 0) {
        answer_unavailable(req, "the database could not finish the request in time; try again");
        return;
    }
    log_error("statement failed", LOG_STR("sqlstate", state), LOG_STR("error", db_result_message(res)),
              LOG_STR("request_id", req->request_id));
    http_problem(req, 500, "internal", "the request failed unexpectedly");
}

static int set_etag(http_request_t *req, const char *version)
{
    char etag[32];
    snprintf(etag, sizeof etag, "\"%s\"", version);
    return http_response_header(req, "ETag", etag);
}

/* Answers with a task JSON body from the database. */
static void answer_task(http_request_t *req, int status, const char *version, const char *body,
                        size_t len, const char *location)
{
    http_response_begin(req, status, HTTP_CONTENT_JSON);
    if (buf_append(&req->res.body, body, len) != 0 || (version && set_etag(req, version) != 0) ||
        (location && http_response_header(req, "Location", location) != 0)) {
        http_problem(req, 500, "internal", "the response exceeded its size bound");
        return;
    }
    http_response_end(req);
}

static void answer_invalid(http_request_t *req, int status, const task_input_errors_t *errs)
{
    if (status == 400)
        http_problem(req, 400, "malformed-request", errs->malformed ? errs->malformed : "malformed JSON");
    else
        http_problem_fields(req, 422, "validation-failed", "the task is not valid", errs->items,
                            errs->n);
}

/* ---- request checks ----------------------------------------------------- */

/* application/json, or application/merge-patch+json when allowed; a
 * charset parameter must say utf-8. */
static bool content_type_ok(const http_request_t *req, bool merge_patch)
{
    size_t len;
    const char *ct = http_request_header(req, "content-type", &len);
    if (!ct)
        return false;
    size_t type_len = 0;
    while (type_len < len && ct[type_len] != ';' && ct[type_len] != ' ' && ct[type_len] != '\t')
        type_len++;
    bool json = type_len == 16 && strncasecmp(ct, "application/json", 16) == 0;
    bool patch = merge_patch && type_len == 28 && strncasecmp(ct, "application/merge-patch+json", 28) == 0;
    if (!json && !patch)
        return false;
    const char *params = ct + type_len;
    const char *charset = strcasestr(params, "charset=");
    if (charset) {
        const char *v = charset + 8;
        if (*v == '"')
            v++;
        if (strncasecmp(v, "utf-8", 5) != 0)
            return false;
    }
    return true;
}

static bool check_body_type(http_request_t *req, bool merge_patch)
{
    if (content_type_ok(req, merge_patch))
        return true;
    http_problem(req, 415, "unsupported-media-type",
                 merge_patch ? "send the body as application/json or application/merge-patch+json"
                             : "send the body as application/json");
    return false;
}

/* Task ids are positive 63-bit integers; anything else cannot exist. */
static const char *task_id_param(http_request_t *req)
{
    const char *id = http_request_param(req, 1);
    size_t len = req->param_lens[1];
    if (!id || len == 0 || len > 19 || id[0] == '0')
        goto not_found;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)id[i]))
            goto not_found;
    if (len == 19 && strcmp(id, "9223372036854775807") > 0)
        goto not_found;
    return id;
not_found:
    http_problem(req, 404, "not-found", "no such task");
    return NULL;
}

/* If-Match: "*" or absent → NULL (any version); otherwise a PostgreSQL
 * integer array of the strong tags listed. Weak or malformed tags never
 * match (RFC 9110 13.1.1), so a list of only those gives "{}" → 412. */
static int if_match_versions(const http_request_t *req, char *out, size_t outlen, bool *present)
{
    size_t len;
    const char *v = http_request_header(req, "if-match", &len);
    *present = v != NULL;
    if (!v)
        return 0;
    const char *p = v, *end = v + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p == 1 && *p == '*') {
        *present = false;
        return 0;
    }
    size_t o = 0;
    out[o++] = '{';
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= end)
            break;
        const char *tag_start = p;
        while (p < end && *p != ',')
            p++;
        const char *tag_end = p;
        while (tag_end > tag_start && (tag_end[-1] == ' ' || tag_end[-1] == '\t'))
            tag_end--;
        size_t tl = (size_t)(tag_end - tag_start);
        if (tl < 3 || tag_start[0] != '"' || tag_end[-1] != '"' || tl > 20)
            continue; /* 18 digits always fit the bigint[] it becomes */
        bool digits = true;
        for (const char *d = tag_start + 1; d < tag_end - 1; d++)
            digits = digits && isdigit((unsigned char)*d);
        if (!digits)
            continue;
        if (o + tl + 2 >= outlen)
            return -1;
        if (out[o - 1] != '{')
            out[o++] = ',';
        memcpy(out + o, tag_start + 1, tl - 2);
        o += tl - 2;
    }
    out[o++] = '}';
    out[o] = '\0';
    return 0;
}

/* If-None-Match (RFC 9110 13.1.2, weak comparison): "*" → 1; otherwise 0
 * with up to 8 versions taken from the listed tags, weak or strong. */
static int if_none_match_versions(const char *v, size_t len, int64_t *out, int *n)
{
    const char *p = v, *end = v + len;
    *n = 0;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p == 1 && *p == '*')
        return 1;
    while (p < end && *n < 8) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if (p >= end || *p != '"')
            break;
        const char *q = ++p;
        while (q < end && *q != '"')
            q++;
        if (q >= end)
            break;
        char digits[20];
        size_t dl = (size_t)(q - p);
        bool ok = dl > 0 && dl < sizeof digits;
        for (size_t i = 0; ok && i < dl; i++)
            ok = isdigit((unsigned char)p[i]);
        if (ok) {
            memcpy(digits, p, dl);
            digits[dl] = '\0';
            out[(*n)++] = strtoll(digits, NULL, 10);
        }
        p = q + 1;
    }
    return 0;
}

static bool if_none_match_hit(const call_t *c, int64_t version)
{
    if (c->if_none_match == 1)
        return true;
    for (int i = 0; c->if_none_match == 0 && i < c->n_inm; i++)
        if (c->inm_versions[i] == version)
            return true;
    return false;
}

static bool timezone_known(const char *name, void *ctx)
{
    return db_pool_timezone_known(name, ctx);
}

/* The database must be reachable before input is checked: time-zone names
 * are checked against its list. */
static bool database_ready(tasks_api_t *api, http_request_t *req)
{
    if (db_pool_readiness(api->pool) == NULL)
        return true;
    answer_unavailable(req, "the database is unavailable; try again");
    return false;
}

/* ---- writes: parameters from input --------------------------------------- */

/* Days stay days and hours stay hours (PT24H is not P1D: across a DST
 * change they differ), each part normalised within itself. */
static int append_duration(buf_t *b, int64_t days, int64_t rest)
{
    int64_t h = rest / 3600000, m = rest / 60000 % 60, s = rest / 1000 % 60, frac = rest % 1000;
    int rc = buf_append_char(b, 'P');
    if (days)
        rc = rc ? rc : buf_printf(b, "%" PRId64 "D", days);
    if (rest) {
        rc = rc ? rc : buf_append_char(b, 'T');
        if (h)
            rc = rc ? rc : buf_printf(b, "%" PRId64 "H", h);
        if (m)
            rc = rc ? rc : buf_printf(b, "%" PRId64 "M", m);
        if (frac)
            rc = rc ? rc : buf_printf(b, "%" PRId64 ".%03" PRId64 "S", s, frac);
        else if (s)
            rc = rc ? rc : buf_printf(b, "%" PRId64 "S", s);
    }
    return rc;
}

/* Adds the ten TASK_VALUES parameters; fields outside `mask` are NULL. */
static int add_task_values(params_t *p, const task_input_t *in, unsigned mask)
{
    static const char *const priorities[] = {"low", "medium", "high", "urgent"};
    buf_t tmp;
    buf_init(&tmp, 32 * 1024);
    char ts[TIMEFMT_RFC3339_LEN + 1];
    int rc = params_add(p, mask & TASK_TITLE ? in->title : NULL);
    rc = rc ? rc : params_add(p, mask & TASK_DESCRIPTION ? in->description : NULL);
    rc = rc ? rc : params_add(p, mask & TASK_COMPLETED ? (in->completed ? "true" : "false") : NULL);
    rc = rc ? rc : params_add(p, mask & TASK_PRIORITY ? priorities[in->priority] : NULL);
    if (!rc && (mask & TASK_TAGS)) {
        rc = buf_append_char(&tmp, '[');
        for (int i = 0; i < in->n_tags && !rc; i++) {
            rc = i ? buf_append_char(&tmp, ',') : 0;
            rc = rc ? rc : buf_append_json_string(&tmp, in->tags[i]);
        }
        rc = rc ? rc : buf_append_char(&tmp, ']');
        rc = rc ? rc : params_add(p, buf_cstr(&tmp));
    } else if (!rc) {
        rc = params_add(p, NULL);
    }
    if (!rc && (mask & TASK_DUE_AT) && !in->due_at_null) {
        timefmt_rfc3339(in->due_at_ms, ts);
        rc = params_add(p, ts);
    } else if (!rc) {
        rc = params_add(p, NULL);
    }
    rc = rc ? rc : params_add(p, mask & TASK_TIMEZONE ? in->timezone : NULL);
    rc = rc ? rc : params_add(p, mask & TASK_RECURRENCE ? in->recurrence : NULL);
    rc = rc ? rc : params_add(p, mask & TASK_RECURRENCE_FROM
                                         ? (in->recurrence_from_completion ? "completion" : "due")
                                         : NULL);
    if (!rc && (mask & TASK_REMINDERS)) {
        buf_clear(&tmp);
        rc = buf_append_char(&tmp, '[');
        for (int i = 0; i < in->n_reminders && !rc; i++) {
            const task_reminder_t *r = &in->reminders[i];
            rc = buf_append_str(&tmp, i ? ",{" : "{");
            if (r->is_before) {
                rc = rc ? rc : buf_append_str(&tmp, "\"before\":\"");
                rc = rc ? rc : append_duration(&tmp, r->before_days, r->before_time_ms);
            } else {
                timefmt_rfc3339(r->at_ms, ts);
                rc = rc ? rc : buf_append_str(&tmp, "\"at\":\"");
                rc = rc ? rc : buf_append_str(&tmp, ts);
            }
            rc = rc ? rc : buf_append_str(&tmp, "\"}");
        }
        rc = rc ? rc : buf_append_char(&tmp, ']');
        rc = rc ? rc : params_add(p, buf_cstr(&tmp));
    } else if (!rc) {
        rc = params_add(p, NULL);
    }
    buf_free(&tmp);
    return rc;
}

/* ---- callbacks ------------------------------------------------------------ */

static void send_or_fail(call_t *c, int stmt);

static void replay_or_conflict(call_t *c, const db_result_t *res)
{
    http_request_t *req = c->req;
    if (strcmp(db_result_value(res, 0, 0), c->hash) != 0) {
        http_problem(req, 422, "idempotency-key-reused",
                     "this Idempotency-Key was already used with a different request body");
        return;
    }
    char location[512];
    snprintf(location, sizeof location, "%.*s/%s", (int)req->path_len, req->path,
             db_result_value(res, 0, 1));
    /* The first answer, as it was: its body carries its own version. */
    const char *body = db_result_value(res, 0, 2);
    http_response_begin(req, 201, HTTP_CONTENT_JSON);
    if (buf_append(&req->res.body, body, db_result_length(res, 0, 2)) != 0 ||
        http_response_header(req, "Location", location) != 0 ||
        set_etag(req, "1") != 0 || /* a created task is at version 1 */
        http_response_header(req, "Idempotent-Replayed", "true") != 0) {
        http_problem(req, 500, "internal", "the response exceeded its size bound");
        return;
    }
    http_response_end(req);
}

/* Writes on one task answer (found, applied, ...): a missing task is 404,
 * a version If-Match did not name is 412. True when the write happened. */
/* A committed write's event goes to Kafka at once; the outbox row it came
 * from is the durable copy, which the relay sends if this hand-off fails.
 * seq_col is the column of the row's seq; the event text follows it. */
static void hand_off_event(const call_t *c, const db_result_t *res, int seq_col)
{
    if (db_result_is_null(res, 0, seq_col))
        return;
    const char *event = db_result_value(res, 0, seq_col + 1);
    size_t len = db_result_length(res, 0, seq_col + 1);
    events_outbox_committed(c->api->outbox, EVENTS_STREAM_TASKS, db_result_value(res, 0, seq_col),
                            c->params.store.data + c->params.off[0], event, len);
    /* The task has reminders (each carries remind_at): the scheduler may
     * have to wake sooner. A look is cheap and coalesced; deletes and
     * completions need none but cost no more than a look either. */
    static const char marker[] = "\"remind_at\"";
    if (c->api->reminders && memmem(event, len, marker, sizeof marker - 1))
        events_reminders_changed(c->api->reminders);
}

/* The request's valid traceparent, which its event carries; NULL if none. */
static const char *traceparent_param(const http_request_t *req)
{
    return req->traceparent[0] ? req->traceparent : NULL;
}

static bool write_applied(http_request_t *req, const db_result_t *res)
{
    if (strcmp(db_result_value(res, 0, 0), "0") == 0) {
        http_problem(req, 404, "not-found", "no such task");
        return false;
    }
    if (strcmp(db_result_value(res, 0, 1), "0") == 0) {
        http_problem(req, 412, "precondition-failed",
                     "the task has changed since the version in If-Match");
        return false;
    }
    return true;
}

static void on_statement_done(void *arg, db_status_t status, const db_result_t *res)
{
    call_t *c = arg;
    http_request_t *req = c->req;

    if (status == DB_QUERY_ERROR && c->kind == CALL_CREATE_KEYED &&
        strcmp(db_result_sqlstate(res), "23505") == 0 && !c->looked_up_after_conflict) {
        /* Another request with this key committed first: replay it. */
        c->looked_up_after_conflict = true;
        c->kind = CALL_LOOKUP;
        const char *values[2] = {c->params.store.data + c->params.off[0], c->key};
        if (db_query(c->api->pool, DB_IDEMPOTENCY_LOOKUP, 2, values, on_statement_done, c) != DB_OK) {
            answer_unavailable(req, "the database is unavailable; try again");
            call_free(c);
        }
        return;
    }
    if (status != DB_OK) {
        if (status == DB_UNAVAILABLE && c->kind != CALL_GET && c->kind != CALL_LIST &&
            c->kind != CALL_LOOKUP)
            events_outbox_uncertain(c->api->outbox);
        answer_db_error(req, status, res);
        call_free(c);
        return;
    }

    switch (c->kind) {
    case CALL_LOOKUP:
        if (db_result_rows(res) == 1) {
            replay_or_conflict(c, res);
            break;
        }
        if (c->looked_up_after_conflict) {
            /* The winner's key row vanished (expired between the two
             * statements): the safe answer is to let the client retry. */
            answer_unavailable(req, "a concurrent request with this Idempotency-Key is settling");
            break;
        }
        c->kind = CALL_CREATE_KEYED;
        send_or_fail(c, DB_TASK_INSERT_IDEMPOTENT);
        return;
    case CALL_CREATE:
    case CALL_CREATE_KEYED: {
        hand_off_event(c, res, 3);
        char location[512];
        snprintf(location, sizeof location, "%.*s/%s", (int)req->path_len, req->path,
                 db_result_value(res, 0, 0));
        answer_task(req, 201, db_result_value(res, 0, 1), db_result_value(res, 0, 2),
                    db_result_length(res, 0, 2), location);
        break;
    }
    case CALL_GET:
        if (db_result_rows(res) == 0) {
            http_problem(req, 404, "not-found", "no such task");
        } else if (if_none_match_hit(c, strtoll(db_result_value(res, 0, 0), NULL, 10))) {
            http_response_begin(req, 304, NULL);
            if (set_etag(req, db_result_value(res, 0, 0)) != 0)
                req->res.status = 500;
            http_response_end(req);
        } else {
            answer_task(req, 200, db_result_value(res, 0, 0), db_result_value(res, 0, 1),
                        db_result_length(res, 0, 1), NULL);
        }
        break;
    case CALL_WRITE:
        hand_off_event(c, res, 4);
        if (write_applied(req, res))
            answer_task(req, 200, db_result_value(res, 0, 2), db_result_value(res, 0, 3),
                        db_result_length(res, 0, 3), NULL);
        break;
    case CALL_DELETE:
        hand_off_event(c, res, 2);
        if (write_applied(req, res))
            http_respond(req, 204, NULL, "", 0);
        break;
    case CALL_LIST: {
        int rows = db_result_rows(res);
        int shown = rows > c->limit ? c->limit : rows;
        http_response_begin(req, 200, HTTP_CONTENT_JSON);
        buf_t *b = &req->res.body;
        int rc = buf_append_char(b, '[');
        for (int i = 0; i < shown && !rc; i++) {
            rc = i ? buf_append_char(b, ',') : 0;
            rc = rc ? rc : buf_append(b, db_result_value(res, i, 2), db_result_length(res, i, 2));
        }
        rc = rc ? rc : buf_append_char(b, ']');
        if (!rc && rows > c->limit) {
            /* Cursor: the last shown row's key and id, bound to this query. */
            buf_t raw, link;
            buf_init(&raw, 4096);
            buf_init(&link, 16384);
            rc = buf_printf(&raw, "v1|%s|%s|%s|%s|%s", c->sort, c->order, c->digest,
                            db_result_value(res, shown - 1, 1), db_result_value(res, shown - 1, 0));
            char *enc = rc ? NULL : malloc(raw.len * 4 / 3 + 8);
            if (enc) {
                digest_base64url_encode(raw.data, raw.len, enc);
                rc = buf_append(&link, "<", 1);
                rc = rc ? rc : buf_append(&link, req->path, req->path_len);
                rc = rc ? rc : buf_append_char(&link, '?');
                /* Keep the query as the client wrote it, minus its cursor. */
                const char *q = req->query, *end = req->query ? req->query + req->query_len : NULL;
                while (q && q < end && !rc) {
                    const char *amp = memchr(q, '&', (size_t)(end - q));
                    const char *pair_end = amp ? amp : end;
                    if (!((size_t)(pair_end - q) >= 7 && strncmp(q, "cursor=", 7) == 0) &&
                        pair_end > q) {
                        rc = buf_append(&link, q, (size_t)(pair_end - q));
                        rc = rc ? rc : buf_append_char(&link, '&');
                    }
                    q = pair_end + 1;
                }
                rc = rc ? rc : buf_printf(&link, "cursor=%s>; rel=\"next\"", enc);
                rc = rc ? rc : http_response_header(req, "Link", buf_cstr(&link));
                free(enc);
            } else {
                rc = -1;
            }
            buf_free(&raw);
            buf_free(&link);
        }
        if (rc) {
            http_problem(req, 500, "internal", "the response exceeded its size bound");
            break;
        }
        http_response_end(req);
        break;
    }
    }
    call_free(c);
}

/* Sends c's statement with its parameters; answers 503 when it cannot. */
static void send_or_fail(call_t *c, int stmt)
{
    const char *values[MAX_PARAMS];
    params_values(&c->params, values);
    if (db_query(c->api->pool, stmt, c->params.n, values, on_statement_done, c) != DB_OK) {
        answer_unavailable(c->req, "the database is busy or unavailable; try again");
        call_free(c);
    }
}

/* ---- handlers ------------------------------------------------------------- */

static bool idempotency_key(http_request_t *req, char *out)
{
    size_t len;
    const char *key = http_request_header(req, "idempotency-key", &len);
    if (!key)
        return true;
    bool ok = len >= 1 && len <= IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = key[i] > ' ' && key[i] < 0x7F;
    if (!ok) {
        static const http_field_error_t err = {"Idempotency-Key", "1-255 visible ASCII characters"};
        http_problem_fields(req, 400, "malformed-request", "the Idempotency-Key header is not valid",
                            &err, 1);
        return false;
    }
    memcpy(out, key, len);
    out[len] = '\0';
    return true;
}

static void handle_create(http_request_t *req, void *ctx)
{
    tasks_api_t *api = ctx;
    const char *user = api_access_check(req);
    if (!user || !check_body_type(req, false) || !database_ready(api, req))
        return;
    call_t *c = call_new(api, req, CALL_CREATE);
    if (!c) {
        answer_oom(req);
        return;
    }
    if (!idempotency_key(req, c->key)) {
        call_free(c);
        return;
    }
    task_input_t in;
    task_input_errors_t errs;
    int st = task_input_parse(req->body.data ? req->body.data : "", req->body.len, TASK_INPUT_CREATE,
                              timezone_known, api->pool, &in, &errs);
    if (st != 0) {
        answer_invalid(req, st, &errs);
        task_input_free(&in);
        call_free(c);
        return;
    }
    int rc = params_add(&c->params, user);
    rc = rc ? rc : add_task_values(&c->params, &in, TASK_ALL_FIELDS);
    rc = rc ? rc : params_add(&c->params, traceparent_param(req));
    task_input_free(&in);
    if (c->key[0]) {
        digest_sha256_hex(req->body.data ? req->body.data : "", req->body.len, c->hash);
        rc = rc ? rc : params_add(&c->params, c->key);
        rc = rc ? rc : params_add(&c->params, c->hash);
    }
    if (rc) {
        answer_oom(req);
        call_free(c);
        return;
    }
    if (c->key[0]) {
        /* Look first: a replay must not even try to insert. */
        c->kind = CALL_LOOKUP;
        const char *values[2] = {user, c->key};
        if (db_query(api->pool, DB_IDEMPOTENCY_LOOKUP, 2, values, on_statement_done, c) != DB_OK) {
            answer_unavailable(req, "the database is busy or unavailable; try again");
            call_free(c);
        }
        return;
    }
    send_or_fail(c, DB_TASK_INSERT);
}

static void handle_get(http_request_t *req, void *ctx)
{
    tasks_api_t *api = ctx;
    const char *user = api_access_check(req);
    const char *id = user ? task_id_param(req) : NULL;
    if (!id || !database_ready(api, req))
        return;
    call_t *c = call_new(api, req, CALL_GET);
    if (!c) {
        answer_oom(req);
        return;
    }
    size_t len;
    const char *inm = http_request_header(req, "if-none-match", &len);
    if (inm)
        c->if_none_match = if_none_match_versions(inm, len, c->inm_versions, &c->n_inm);
    if (params_add(&c->params, user) != 0 || params_add(&c->params, id) != 0) {
        answer_oom(req);
        call_free(c);
        return;
    }
    send_or_fail(c, DB_TASK_GET);
}

/* The start every write on one task shares: a call with $1 user, $2 id and
 * $3 the If-Match versions. NULL when it has answered instead. */
static call_t *begin_task_write(tasks_api_t *api, http_request_t *req, call_kind_t kind,
                                const char *user, const char *id)
{
    char versions[256];
    bool has_versions;
    if (if_match_versions(req, versions, sizeof versions, &has_versions) != 0) {
        http_problem(req, 400, "malformed-request", "the If-Match header is too long");
        return NULL;
    }
    call_t *c = call_new(api, req, kind);
    if (!c) {
        answer_oom(req);
        return NULL;
    }
    int rc = params_add(&c->params, user);
    rc = rc ? rc : params_add(&c->params, id);
    rc = rc ? rc : params_add(&c->params, has_versions ? versions : NULL);
    if (rc) {
        answer_oom(req);
        call_free(c);
        return NULL;
    }
    return c;
}

/* Sends a write begun above, once its own parameters are added (rc). */
static void finish_task_write(call_t *c, int rc, int stmt)
{
    if (rc) {
        answer_oom(c->req);
        call_free(c);
        return;
    }
    send_or_fail(c, stmt);
}

/* PUT and PATCH: one statement, the mask says which fields to set. */
static void handle_write(http_request_t *req, tasks_api_t *api, task_input_mode_t mode)
{
    const char *user = api_access_check(req);
    const char *id = user ? task_id_param(req) : NULL;
    if (!id || !check_body_type(req, mode == TASK_INPUT_PATCH) || !database_ready(api, req))
        return;
    task_input_t in;
    task_input_errors_t errs;
    int st = task_input_parse(req->body.data ? req->body.data : "", req->body.len, mode,
                              timezone_known, api->pool, &in, &errs);
    if (st != 0) {
        answer_invalid(req, st, &errs);
        task_input_free(&in);
        return;
    }
    call_t *c = begin_task_write(api, req, CALL_WRITE, user, id);
    if (!c) {
        task_input_free(&in);
        return;
    }
    int rc = params_add_int(&c->params, (long long)in.present);
    rc = rc ? rc : add_task_values(&c->params, &in, in.present);
    rc = rc ? rc : params_add(&c->params, traceparent_param(req));
    task_input_free(&in);
    finish_task_write(c, rc, DB_TASK_UPDATE);
}

static void handle_put(http_request_t *req, void *ctx)
{
    handle_write(req, ctx, TASK_INPUT_REPLACE);
}

static void handle_patch(http_request_t *req, void *ctx)
{
    handle_write(req, ctx, TASK_INPUT_PATCH);
}

/* No body (or {}) toggles; {"completed": bool} sets. */
static void handle_complete(http_request_t *req, void *ctx)
{
    tasks_api_t *api = ctx;
    const char *user = api_access_check(req);
    const char *id = user ? task_id_param(req) : NULL;
    if (!id)
        return;
    const char *set = NULL;
    if (req->body.len > 0) {
        if (!check_body_type(req, req->method == HTTP_METHOD_PATCH))
            return;
        /* Here null is not a default but a question: only true or false. */
        json_error_t jerr;
        json_t *doc = json_loadb(req->body.data, req->body.len,
                                 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!doc) {
            http_problem(req, 400, "malformed-request", "the body is not valid JSON");
            return;
        }
        http_field_error_t err = {NULL, NULL};
        json_t *completed = json_is_object(doc) ? json_object_get(doc, "completed") : NULL;
        if (!json_is_object(doc))
            err = (http_field_error_t){"", "the body must be a JSON object"};
        else if (json_object_size(doc) > (completed ? 1u : 0u))
            err = (http_field_error_t){"body", "only \"completed\" may be sent here"};
        else if (completed && !json_is_boolean(completed))
            err = (http_field_error_t){"completed", "must be true or false"};
        else if (completed)
            set = json_is_true(completed) ? "true" : "false";
        json_decref(doc);
        if (err.field) {
            http_problem_fields(req, 422, "validation-failed", "the request is not valid", &err, 1);
            return;
        }
    }
    if (!database_ready(api, req))
        return;
    call_t *c = begin_task_write(api, req, CALL_WRITE, user, id);
    if (!c)
        return;
    int rc = params_add(&c->params, set);
    rc = rc ? rc : params_add(&c->params, traceparent_param(req));
    finish_task_write(c, rc, DB_TASK_COMPLETE);
}

static void handle_delete(http_request_t *req, void *ctx)
{
    tasks_api_t *api = ctx;
    const char *user = api_access_check(req);
    const char *id = user ? task_id_param(req) : NULL;
    if (!id || !database_ready(api, req))
        return;
    call_t *c = begin_task_write(api, req, CALL_DELETE, user, id);
    if (c)
        finish_task_write(c, params_add(&c->params, traceparent_param(req)), DB_TASK_DELETE);
}

/* ---- listing ----------------------------------------------------------- */

typedef struct list_query {
    const char *status;   /* NULL, "true", "false" */
    buf_t priorities;     /* JSON array or empty */
    buf_t tags;           /* JSON array or empty */
    int n_tags;
    char q[1024];
    bool has_q;
    char due_before[TIMEFMT_RFC3339_LEN + 1], due_after[TIMEFMT_RFC3339_LEN + 1];
    char sort[16], order[8];
    int limit;
    char cursor[4096];
    bool has_cursor;
    char unknown[64]; /* the first unknown parameter's name, for errors */
    http_field_error_t errors[8];
    int n_errors;
} list_query_t;

static void list_error(list_query_t *lq, const char *field, const char *message)
{
    if (lq->n_errors < 8)
        lq->errors[lq->n_errors++] = (http_field_error_t){field, message};
}

static const char *const list_params[] = {"status", "priority", "tag", "q", "due_before",
                                          "due_after", "sort", "order", "limit", "cursor", NULL};

static int list_param_index(const char *key, size_t len)
{
    for (int i = 0; list_params[i]; i++)
        if (strlen(list_params[i]) == len && strncmp(list_params[i], key, len) == 0)
            return i;
    return -1;
}

static void parse_instant(list_query_t *lq, const char *field, const char *v, size_t len, char *out)
{
    int64_t ms;
    if (timeparse_rfc3339(v, len, &ms) != 0) {
        list_error(lq, field, "must be an RFC 3339 date-time");
        return;
    }
    timefmt_rfc3339(ms, out);
}

static void parse_list_query(const http_request_t *req, list_query_t *lq)
{
    bool seen[16] = {false};
    buf_init(&lq->priorities, 256);
    buf_init(&lq->tags, 16 * 1024);
    lq->limit = LIST_DEFAULT_LIMIT;
    lq->sort[0] = lq->order[0] = '\0';
    const char *p = req->query, *end = req->query ? req->query + req->query_len : NULL;
    char value[4096];
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq ? eq : pair_end;
        if (pair_end == p) {
            p = pair_end + 1;
            continue;
        }
        const char *key = p;
        int idx = list_param_index(key, (size_t)(key_end - key));
        const char *raw = eq ? eq + 1 : pair_end;
        p = pair_end + 1;
        if (idx < 0) {
            /* Named in the error as sent (decoded when it decodes). */
            if (!lq->unknown[0] &&
                http_query_decode(key, (size_t)(key_end - key), lq->unknown, sizeof lq->unknown) <= 0)
                snprintf(lq->unknown, sizeof lq->unknown, "query");
            list_error(lq, lq->unknown[0] ? lq->unknown : "query", "unknown parameter");
            continue;
        }
        const char *name = list_params[idx];
        if (seen[idx] && strcmp(name, "tag") != 0) {
            list_error(lq, name, "given more than once");
            continue;
        }
        seen[idx] = true;
        long len = http_query_decode(raw, (size_t)(pair_end - raw), value, sizeof value);
        if (len < 0) {
            list_error(lq, name, "malformed or too long");
            continue;
        }
        if (strcmp(name, "status") == 0) {
            if (strcmp(value, "all") == 0)
                lq->status = NULL;
            else if (strcmp(value, "pending") == 0)
                lq->status = "false";
            else if (strcmp(value, "completed") == 0)
                lq->status = "true";
            else
                list_error(lq, name, "must be all, pending or completed");
        } else if (strcmp(name, "priority") == 0) {
            int rc = buf_append_char(&lq->priorities, '[');
            char *save = NULL;
            int n = 0;
            for (char *tok = strtok_r(value, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
                if (strcmp(tok, "low") && strcmp(tok, "medium") && strcmp(tok, "high") &&
                    strcmp(tok, "urgent")) {
                    list_error(lq, name, "each must be low, medium, high or urgent");
                    break;
                }
                rc = buf_printf(&lq->priorities, "%s\"%s\"", n++ ? "," : "", tok);
            }
            if (n == 0)
                list_error(lq, name, "must list at least one priority");
            rc = rc ? rc : buf_append_char(&lq->priorities, ']');
            if (rc)
                list_error(lq, name, "too long");
        } else if (strcmp(name, "tag") == 0) {
            if (len == 0 || lq->n_tags == MAX_LIST_TAGS) {
                list_error(lq, name, len == 0 ? "must not be empty" : "at most 20 tags");
                continue;
            }
            int rc = buf_append_str(&lq->tags, lq->n_tags++ ? "," : "[");
            rc = rc ? rc : buf_append_json_string(&lq->tags, value);
            if (rc)
                list_error(lq, name, "too long");
        } else if (strcmp(name, "q") == 0) {
            if (len == 0) {
                list_error(lq, name, "must not be empty");
                continue;
            }
            memcpy(lq->q, value, (size_t)len + 1);
            lq->has_q = true;
        } else if (strcmp(name, "due_before") == 0) {
            parse_instant(lq, name, value, (size_t)len, lq->due_before);
        } else if (strcmp(name, "due_after") == 0) {
            parse_instant(lq, name, value, (size_t)len, lq->due_after);
        } else if (strcmp(name, "sort") == 0) {
            if (strcmp(value, "created_at") && strcmp(value, "updated_at") && strcmp(value, "due_at") &&
                strcmp(value, "priority") && strcmp(value, "title"))
                list_error(lq, name, "must be created_at, updated_at, due_at, priority or title");
            else
                snprintf(lq->sort, sizeof lq->sort, "%.15s", value);
        } else if (strcmp(name, "order") == 0) {
            if (strcmp(value, "asc") && strcmp(value, "desc"))
                list_error(lq, name, "must be asc or desc");
            else
                snprintf(lq->order, sizeof lq->order, "%.7s", value);
        } else if (strcmp(name, "limit") == 0) {
            char *e;
            errno = 0;
            long v = strtol(value, &e, 10);
            if (len == 0 || *e || errno || v < 1 || v > LIST_MAX_LIMIT || !isdigit((unsigned char)value[0]))
                list_error(lq, name, "must be an integer from 1 to 100");
            else
                lq->limit = (int)v;
        } else if (strcmp(name, "cursor") == 0) {
            memcpy(lq->cursor, value, (size_t)len + 1);
            lq->has_cursor = true;
        }
    }
    if (lq->n_tags && buf_append_char(&lq->tags, ']') != 0)
        list_error(lq, "tag", "too long");
    if (!lq->sort[0])
        snprintf(lq->sort, sizeof lq->sort, "created_at");
    if (!lq->order[0])
        snprintf(lq->order, sizeof lq->order, "%s",
                 strcmp(lq->sort, "due_at") == 0 || strcmp(lq->sort, "title") == 0 ? "asc" : "desc");
}

/* A cursor key as the list statements write it for each sort. */
static bool cursor_key_valid(const char *sort, const char *key)
{
    if (strcmp(sort, "title") == 0)
        return true; /* any text: it is compared, never cast */
    if (strcmp(sort, "priority") == 0)
        return strcmp(key, "low") == 0 || strcmp(key, "medium") == 0 ||
               strcmp(key, "high") == 0 || strcmp(key, "urgent") == 0;
    if (strcmp(sort, "due_at") == 0 && strcmp(key, "none") == 0)
        return true;
    /* Microseconds since the epoch: an optional '-', at most 18 digits. */
    const char *d = key[0] == '-' ? key + 1 : key;
    size_t n = strlen(d);
    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)d[i]))
            return false;
    return true;
}

static int list_statement(const char *sort, const char *order)
{
    static const struct {
        const char *sort;
        int asc;
    } table[] = {{"created_at", DB_TASK_LIST_CREATED_ASC}, {"updated_at", DB_TASK_LIST_UPDATED_ASC},
                 {"due_at", DB_TASK_LIST_DUE_ASC},         {"priority", DB_TASK_LIST_PRIORITY_ASC},
                 {"title", DB_TASK_LIST_TITLE_ASC}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].sort, sort) == 0)
            return table[i].asc + (strcmp(order, "desc") == 0 ? 1 : 0);
    return DB_TASK_LIST_CREATED_DESC;
}

static void handle_list(http_request_t *req, void *ctx)
{
    tasks_api_t *api = ctx;
    const char *user = api_access_check(req);
    if (!user)
        return;
    list_query_t lq;
    memset(&lq, 0, sizeof lq);
    parse_list_query(req, &lq);
    call_t *c = NULL;
    char key[4096] = "", cursor_id[24] = "";
    if (lq.n_errors) {
        http_problem_fields(req, 400, "invalid-query", "the query parameters are not valid", lq.errors,
                            lq.n_errors);
        goto done;
    }

    /* The digest binds a cursor to its user and filters. */
    buf_t basis;
    buf_init(&basis, 64 * 1024);
    int rc = buf_printf(&basis, "%s|%s|%s|%s|%s|%s|%s|%s|%s", user, lq.status ? lq.status : "",
                        buf_cstr(&lq.priorities) ? buf_cstr(&lq.priorities) : "",
                        buf_cstr(&lq.tags) ? buf_cstr(&lq.tags) : "", lq.has_q ? lq.q : "",
                        lq.due_before, lq.due_after, lq.sort, lq.order);
    char hex[DIGEST_SHA256_HEX_LEN + 1];
    digest_sha256_hex(basis.data, rc ? 0 : basis.len, hex);
    buf_free(&basis);
    hex[16] = '\0';

    if (lq.has_cursor) {
        char raw[4096];
        long n = digest_base64url_decode(lq.cursor, strlen(lq.cursor), raw, sizeof raw - 1);
        bool ok = n > 0;
        if (ok) {
            raw[n] = '\0';
            /* v1|sort|order|digest|key|id, the key possibly holding '|'. */
            char *parts[4];
            char *s = raw;
            for (int i = 0; i < 4 && ok; i++) {
                char *bar = strchr(s, '|');
                ok = bar != NULL;
                if (ok) {
                    *bar = '\0';
                    parts[i] = s;
                    s = bar + 1;
                }
            }
            char *last_bar = ok ? strrchr(s, '|') : NULL;
            ok = ok && last_bar && strcmp(parts[0], "v1") == 0 && strcmp(parts[1], lq.sort) == 0 &&
                 strcmp(parts[2], lq.order) == 0 && strcmp(parts[3], hex) == 0;
            if (ok) {
                *last_bar = '\0';
                /* The digest is not a secret: the key's own syntax is checked
                 * too, so a forged cursor is a 400, never a failed cast. */
                ok = cursor_key_valid(lq.sort, s);
                snprintf(key, sizeof key, "%s", s);
                ok = ok && strlen(last_bar + 1) < sizeof cursor_id && last_bar[1] != '\0';
                for (const char *d = last_bar + 1; ok && *d; d++)
                    ok = isdigit((unsigned char)*d);
                if (ok)
                    snprintf(cursor_id, sizeof cursor_id, "%s", last_bar + 1);
            }
        }
        if (!ok) {
            static const http_field_error_t err = {"cursor", "not a cursor for this query"};
            http_problem_fields(req, 400, "invalid-query", "the cursor does not belong to this query",
                                &err, 1);
            goto done;
        }
    }
    if (!database_ready(api, req))
        goto done;
    c = call_new(api, req, CALL_LIST);
    if (!c) {
        answer_oom(req);
        goto done;
    }
    c->limit = lq.limit;
    snprintf(c->sort, sizeof c->sort, "%s", lq.sort);
    snprintf(c->order, sizeof c->order, "%s", lq.order);
    memcpy(c->digest, hex, 17);
    rc = params_add(&c->params, user);
    rc = rc ? rc : params_add(&c->params, lq.status);
    rc = rc ? rc : params_add(&c->params, lq.priorities.len ? buf_cstr(&lq.priorities) : NULL);
    rc = rc ? rc : params_add(&c->params, lq.n_tags ? buf_cstr(&lq.tags) : NULL);
    rc = rc ? rc : params_add(&c->params, lq.has_q ? lq.q : NULL);
    rc = rc ? rc : params_add(&c->params, lq.due_before[0] ? lq.due_before : NULL);
    rc = rc ? rc : params_add(&c->params, lq.due_after[0] ? lq.due_after : NULL);
    rc = rc ? rc : params_add(&c->params, lq.has_cursor ? key : NULL);
    rc = rc ? rc : params_add(&c->params, lq.has_cursor ? cursor_id : NULL);
    rc = rc ? rc : params_add_int(&c->params, lq.limit + 1);
    if (rc) {
        answer_oom(req);
        call_free(c);
        goto done;
    }
    send_or_fail(c, list_statement(lq.sort, lq.order));
done:
    buf_free(&lq.priorities);
    buf_free(&lq.tags);
}

/* ---- wiring ---------------------------------------------------------------- */

tasks_api_t *tasks_api_new(db_pool_t *pool, events_outbox_t *outbox,
                           events_reminders_t *reminders)
{
    tasks_api_t *api = calloc(1, sizeof *api);
    if (api) {
        api->pool = pool;
        api->outbox = outbox;
        api->reminders = reminders;
    }
    return api;
}

void tasks_api_free(tasks_api_t *api)
{
    free(api);
}

static void on_purged(void *arg, db_status_t status, const db_result_t *res)
{
    (void)arg;
    if (status != DB_OK)
        log_warn("idempotency key purge failed", LOG_STR("sqlstate", db_result_sqlstate(res)));
}

void tasks_api_purge(tasks_api_t *api)
{
    /* Best effort: a busy or absent database just means a later purge. */
    (void)db_query(api->pool, DB_IDEMPOTENCY_PURGE, 0, NULL, on_purged, NULL);
}

int tasks_api_routes(tasks_api_t *api, http_router_t *r)
{
    const unsigned get = HTTP_METHOD_BIT(HTTP_METHOD_GET);
    const unsigned post = HTTP_METHOD_BIT(HTTP_METHOD_POST);
    const unsigned put = HTTP_METHOD_BIT(HTTP_METHOD_PUT);
    const unsigned patch = HTTP_METHOD_BIT(HTTP_METHOD_PATCH);
    const unsigned del = HTTP_METHOD_BIT(HTTP_METHOD_DELETE);
    if (http_router_add(r, get, "/api/{user_id}/tasks", handle_list, api) < 0 ||
        http_router_add(r, post, "/api/{user_id}/tasks", handle_create, api) < 0 ||
        http_router_add(r, get, "/api/{user_id}/tasks/{id}", handle_get, api) < 0 ||
        http_router_add(r, put, "/api/{user_id}/tasks/{id}", handle_put, api) < 0 ||
        http_router_add(r, patch, "/api/{user_id}/tasks/{id}", handle_patch, api) < 0 ||
        http_router_add(r, del, "/api/{user_id}/tasks/{id}", handle_delete, api) < 0 ||
        http_router_add(r, patch | post, "/api/{user_id}/tasks/{id}/complete", handle_complete, api) < 0)
        return -1;
    return 0;
}
