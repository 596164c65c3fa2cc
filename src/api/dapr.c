/* dapr: see dapr.h. Response shapes follow Dapr's HTTP contract
 * (../shared/reference/contracts.md §1.1, §1.4, §1.6): single deliveries get
 * {"status":"SUCCESS"|"RETRY"|"DROP"}; bulk ones {"statuses":[{"entryId",
 * "status"}...]} with an entry for every entry received. */
#include "api/dapr.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "http/problem.h"
#include "http/response.h"

/* A bulk delivery larger than this is refused whole (413): Dapr's default
 * batch is 100 (80 for Kafka). */
#define MAX_BULK_ENTRIES 1000

typedef struct route_ctx {
    api_dapr_t *dapr;
    events_stream_t stream;
} route_ctx_t;

struct api_dapr {
    events_handler_t *handler;
    char *subscriptions; /* the GET /dapr/subscribe body */
    route_ctx_t routes[EVENTS_STREAM_COUNT];
};

/* One HTTP delivery: one event, or a bulk of them, handled concurrently;
 * answered when the last verdict is in. */
typedef struct delivery {
    http_request_t *req;
    bool bulk;
    int pending; /* verdicts still to come, plus one while dispatching */
    int n;
    struct entry {
        struct delivery *d;
        char *entry_id;
        events_verdict_t verdict;
    } entries[];
} delivery_t;

static void answer(delivery_t *d)
{
    http_request_t *req = d->req;
    http_response_begin(req, 200, HTTP_CONTENT_JSON);
    buf_t *b = &req->res.body;
    int rc;
    if (!d->bulk) {
        rc = buf_printf(b, "{\"status\":\"%s\"}", events_verdict_name(d->entries[0].verdict));
    } else {
        rc = buf_append_str(b, "{\"statuses\":[");
        for (int i = 0; i < d->n && !rc; i++) {
            rc = buf_append_str(b, i ? ",{\"entryId\":" : "{\"entryId\":");
            rc = rc ? rc : buf_append_json_string(b, d->entries[i].entry_id);
            rc = rc ? rc : buf_printf(b, ",\"status\":\"%s\"}", events_verdict_name(d->entries[i].verdict));
        }
        rc = rc ? rc : buf_append_str(b, "]}");
    }
    if (rc)
        http_problem(req, 500, "internal", "the response exceeded its size bound");
    else
        http_response_end(req);
    for (int i = 0; i < d->n; i++)
        free(d->entries[i].entry_id);
    free(d);
}

static void settle(delivery_t *d)
{
    if (--d->pending == 0)
        answer(d);
}

static void on_handled(void *arg, events_verdict_t verdict, const char *reason)
{
    (void)reason; /* the handler logged it */
    struct entry *e = arg;
    e->verdict = verdict;
    settle(e->d);
}

static delivery_t *delivery_new(http_request_t *req, int n, bool bulk)
{
    delivery_t *d = calloc(1, sizeof *d + (size_t)n * sizeof d->entries[0]);
    if (!d)
        return NULL;
    d->req = req;
    d->bulk = bulk;
    d->n = n;
    d->pending = 1;
    for (int i = 0; i < n; i++) {
        d->entries[i].d = d;
        d->entries[i].verdict = EVENTS_DROP;
    }
    return d;
}

static bool json_content(const http_request_t *req)
{
    size_t len;
    const char *ct = http_request_header(req, "content-type", &len);
    if (!ct)
        return false;
    size_t media = 0;
    while (media < len && ct[media] != ';' && ct[media] != ' ' && ct[media] != '\t')
        media++;
    static const char *const accepted[] = {"application/json", "application/cloudevents+json"};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (media == strlen(accepted[i]) && strncasecmp(ct, accepted[i], media) == 0)
            return true;
    return false;
}

/* A bulk delivery: each entry's event handled on its own. */
static void handle_bulk(route_ctx_t *rc, http_request_t *req, json_t *entries)
{
    int n = (int)json_array_size(entries);
    if (n > MAX_BULK_ENTRIES) {
        http_problem(req, 413, "payload-too-large", "a bulk delivery may hold at most 1000 entries");
        return;
    }
    delivery_t *d = delivery_new(req, n, true);
    if (!d) {
        http_problem(req, 503, "unavailable", "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        json_t *entry = json_array_get(entries, (size_t)i);
        json_t *id = json_object_get(entry, "entryId");
        d->entries[i].entry_id = strdup(json_is_string(id) ? json_string_value(id) : "");
        if (!d->entries[i].entry_id) {
            for (int j = 0; j < i; j++)
                free(d->entries[j].entry_id);
            free(d);
            http_problem(req, 503, "unavailable", "out of memory");
            return;
        }
    }
    for (int i = 0; i < n; i++) {
        struct entry *e = &d->entries[i];
        json_t *event = json_object_get(json_array_get(entries, (size_t)i), "event");
        /* A string event is a rawPayload subscription's base64 bytes: not
         * a CloudEvent this service publishes, so it cannot be handled. */
        char *text = json_is_object(event) ? json_dumps(event, JSON_COMPACT) : NULL;
        if (!text) {
            /* Not an object, or out of memory while re-encoding it. */
            e->verdict = json_is_object(event) ? EVENTS_RETRY : EVENTS_DROP;
            continue;
        }
        d->pending++;
        events_handle(rc->dapr->handler, rc->stream, text, strlen(text), on_handled, e);
        free(text);
    }
    settle(d);
}

static void handle_event(http_request_t *req, void *ctx)
{
    route_ctx_t *rc = ctx;
    if (!json_content(req)) {
        http_problem(req, 415, "unsupported-media-type",
                     "send application/cloudevents+json or application/json");
        return;
    }
    const char *body = req->body.data ? req->body.data : "";
    json_t *doc = json_loadb(body, req->body.len, 0, NULL);
    json_t *entries = json_object_get(doc, "entries");
    if (json_is_array(entries)) {
        handle_bulk(rc, req, entries);
        json_decref(doc);
        return;
    }
    json_decref(doc);
    /* One event; the handler parses it again with its own rules (and
     * answers DROP for what is not JSON at all). */
    delivery_t *d = delivery_new(req, 1, false);
    if (!d) {
        http_problem(req, 503, "unavailable", "out of memory");
        return;
    }
    d->pending++;
    events_handle(rc->dapr->handler, rc->stream, body, req->body.len, on_handled, &d->entries[0]);
    settle(d);
}

static void handle_subscribe(http_request_t *req, void *ctx)
{
    api_dapr_t *d = ctx;
    http_respond(req, 200, HTTP_CONTENT_JSON, d->subscriptions, strlen(d->subscriptions));
}

api_dapr_t *api_dapr_new(events_handler_t *handler, const api_dapr_config_t *cfg)
{
    api_dapr_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->handler = handler;
    for (int i = 0; i < EVENTS_STREAM_COUNT; i++)
        d->routes[i] = (route_ctx_t){d, (events_stream_t)i};
    json_t *subs = json_array();
    if (cfg->subscribe) {
        json_array_append_new(subs, json_pack("{s:s, s:s, s:s, s:s}", "pubsubname", cfg->pubsub_name,
                                              "topic", cfg->topic_tasks, "route", "/api/events/tasks",
                                              "deadLetterTopic", cfg->topic_dlq));
        json_array_append_new(subs, json_pack("{s:s, s:s, s:s}", "pubsubname", cfg->pubsub_name,
                                              "topic", cfg->topic_reminders, "route",
                                              "/api/events/reminders"));
    }
    d->subscriptions = json_dumps(subs, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(subs);
    if (!d->subscriptions) {
        free(d);
        return NULL;
    }
    return d;
}

void api_dapr_free(api_dapr_t *d)
{
    if (!d)
        return;
    free(d->subscriptions);
    free(d);
}

int api_dapr_routes(api_dapr_t *d, http_router_t *r)
{
    const unsigned get = HTTP_METHOD_BIT(HTTP_METHOD_GET);
    const unsigned post = HTTP_METHOD_BIT(HTTP_METHOD_POST);
    if (http_router_add(r, get, "/dapr/subscribe", handle_subscribe, d) < 0 ||
        http_router_add(r, post, "/api/events/tasks", handle_event,
                        &d->routes[EVENTS_STREAM_TASKS]) < 0 ||
        http_router_add(r, post, "/api/events/reminders", handle_event,
                        &d->routes[EVENTS_STREAM_REMINDERS]) < 0)
        return -1;
    return 0;
}
