/* task_input: JSON task input → task_input_t, checking every field rule of
 * docs/api.md and collecting one error per bad field.
 *
 * The body is walked key by key in input order, so errors come out in the
 * order the client wrote the fields; cross-field rules (recurrence and
 * "before" reminders need due_at, title is required) are checked after the
 * walk. Every field name and message stored in the errors either is a string
 * literal or lives in errs->storage: nothing points into the jansson tree,
 * which is freed before returning. */
#include "api/task_input.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeparse.h"
#include "domain/rrule.h"

#define TITLE_MAX 200
#define DESCRIPTION_MAX 10000
#define TAG_MAX 50
#define TIMEZONE_MAX 63
#define BEFORE_MAX_MS (INT64_C(365) * 86400000)
/* Unknown keys are echoed in errors; longer ones are cut (at a character
 * boundary) so that one key cannot take the whole error storage. */
#define FIELD_ECHO_MAX 64

typedef struct ctx {
    task_tz_known_fn tz_known;
    void *tz_ctx;
    json_t *root;
    task_input_t *out;
    task_input_errors_t *errs;
    bool invalid;       /* at least one error, even if it could not be stored */
    bool errs_full;     /* storage or items ran out: add nothing more */
    bool oom;

    /* For the checks after the walk. */
    bool due_present, due_valid, due_conflict;
    bool title_seen;
    const char *rec_field; /* the name the recurrence came in: a literal */
    bool aliases_done;     /* is_recurring / recurring_interval handled */
    int before_index[TASK_MAX_REMINDERS]; /* input indices of valid "before" reminders */
    int n_before;
} ctx_t;

/* ---- errors ---- */

static const char *store(task_input_errors_t *e, const char *s, size_t n)
{
    if (e->used > sizeof e->storage || n + 1 > sizeof e->storage - e->used)
        return NULL;
    char *d = e->storage + e->used;
    memcpy(d, s, n);
    d[n] = '\0';
    e->used += n + 1;
    return d;
}

/* Adds an error. field_copy / msg_copy: the string is not a literal and is
 * copied into storage. */
static void add_error(ctx_t *c, const char *field, bool field_copy, const char *msg,
                      bool msg_copy)
{
    task_input_errors_t *e = c->errs;
    c->invalid = true;
    if (c->errs_full || e->n >= TASK_MAX_ERRORS) {
        c->errs_full = true;
        return;
    }
    size_t saved = e->used;
    if (field_copy)
        field = store(e, field, strlen(field));
    if (field && msg_copy)
        msg = store(e, msg, strlen(msg));
    if (!field || !msg) {
        e->used = saved;
        c->errs_full = true;
        return;
    }
    e->items[e->n].field = field;
    e->items[e->n].message = msg;
    e->n++;
}

static void error_lit(ctx_t *c, const char *field, const char *msg)
{
    add_error(c, field, false, msg, false);
}

/* An error on an element: "tags[3]", "reminders[1].before". */
__attribute__((format(printf, 3, 4))) static void error_at(ctx_t *c, const char *msg,
                                                           const char *fmt, ...)
{
    char field[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(field, sizeof field, fmt, ap);
    va_end(ap);
    add_error(c, field, true, msg, false);
}

/* An error on a key from the input (unknown fields), after prefix
 * ("" or "reminders[2]."). */
static void error_key(ctx_t *c, const char *prefix, const char *key, const char *msg)
{
    size_t n = strlen(key);
    const char *more = "";
    if (n > FIELD_ECHO_MAX) {
        n = FIELD_ECHO_MAX;
        while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
            n--; /* do not split a UTF-8 sequence */
        more = "...";
    }
    error_at(c, msg, "%s%.*s%s", prefix, (int)n, key, more);
}

/* ---- helpers ---- */

size_t task_utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static bool is_trim_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static void trim(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len;
    while (n > 0 && is_trim_space(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && is_trim_space(p[n - 1]))
        n--;
    *s = p;
    *len = n;
}

static char *dup_n(ctx_t *c, const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) {
        c->oom = true;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char ascii_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool ascii_caseeq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

static bool str_is(const json_t *v, const char *word)
{
    return json_is_string(v) && json_string_length(v) == strlen(word) &&
           memcmp(json_string_value(v), word, strlen(word)) == 0;
}

static bool tz_name_chars_ok(const char *s)
{
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '+' || ch == '/' || ch == '-'))
            return false;
    }
    return true;
}

/* ---- fields ---- */

static void field_title(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_TITLE;
    c->title_seen = true;
    if (json_is_null(v)) {
        error_lit(c, name, "must not be null");
        return;
    }
    if (!json_is_string(v)) {
        error_lit(c, name, "must be a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    trim(&s, &n);
    size_t chars = task_utf8_length(s, n);
    if (chars == 0) {
        error_lit(c, name, "must not be empty");
        return;
    }
    if (chars > TITLE_MAX) {
        error_lit(c, name, "must be at most 200 characters");
        return;
    }
    c->out->title = dup_n(c, s, n);
}

static void field_description(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_DESCRIPTION;
    if (json_is_null(v))
        return;
    if (!json_is_string(v)) {
        error_lit(c, name, "must be a string or null");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (task_utf8_length(s, n) > DESCRIPTION_MAX) {
        error_lit(c, name, "must be at most 10000 characters");
        return;
    }
    c->out->description = dup_n(c, s, n);
}

static void field_completed(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_COMPLETED;
    if (json_is_null(v)) {
        c->out->completed = false; /* null takes the default */
        return;
    }
    if (!json_is_boolean(v)) {
        error_lit(c, name, "must be true or false");
        return;
    }
    c->out->completed = json_is_true(v);
}

static void field_priority(ctx_t *c, const char *name, json_t *v)
{
    static const char *const names[] = {"low", "medium", "high", "urgent"};
    c->out->present |= TASK_PRIORITY;
    if (json_is_null(v)) {
        c->out->priority = TASK_PRIORITY_MEDIUM;
        return;
    }
    for (int i = 0; i < 4; i++) {
        if (str_is(v, names[i])) {
            c->out->priority = (task_priority_t)i;
            return;
        }
    }
    error_lit(c, name, "must be low, medium, high or urgent");
}

/* The checks every array field starts with. False when the field is null
 * (cleared) or was answered with an error. Over-long arrays report only
 * their length: their elements are not looked at, since checking
 * duplicates among an unbounded list would be quadratic. */
static bool array_field(ctx_t *c, const char *name, json_t *v, size_t max,
                        const char *not_array, const char *too_long)
{
    if (json_is_null(v))
        return false;
    if (!json_is_array(v)) {
        error_lit(c, name, not_array);
        return false;
    }
    if (json_array_size(v) > max) {
        error_lit(c, name, too_long);
        return false;
    }
    return true;
}

static void field_tags(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_TAGS;
    if (!array_field(c, name, v, TASK_MAX_TAGS, "must be an array of strings or null",
                     "must have at most 20 tags"))
        return;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        if (!json_is_string(item)) {
            error_at(c, "must be a string", "%s[%zu]", name, i);
            continue;
        }
        const char *s = json_string_value(item);
        size_t n = json_string_length(item);
        trim(&s, &n);
        size_t chars = task_utf8_length(s, n);
        if (chars == 0) {
            error_at(c, "must not be empty", "%s[%zu]", name, i);
            continue;
        }
        if (chars > TAG_MAX) {
            error_at(c, "must be at most 50 characters", "%s[%zu]", name, i);
            continue;
        }
        bool dup = false;
        for (int k = 0; k < c->out->n_tags && !dup; k++)
            dup = ascii_caseeq(c->out->tags[k], strlen(c->out->tags[k]), s, n);
        if (dup)
            continue; /* the first spelling is kept (docs/api.md) */
        char *tag = dup_n(c, s, n);
        if (!tag)
            return;
        c->out->tags[c->out->n_tags++] = tag;
    }
}

/* due_at and its alias due_date. */
static void field_due(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_DUE_AT;
    c->due_present = true;
    c->due_valid = false;
    if (json_is_null(v)) {
        c->out->due_at_null = true;
        c->due_valid = true;
        return;
    }
    int64_t ms;
    if (!json_is_string(v) ||
        timeparse_rfc3339(json_string_value(v), json_string_length(v), &ms) != 0) {
        error_lit(c, name, "must be an RFC 3339 date-time with Z or an offset, or null");
        return;
    }
    c->out->due_at_null = false;
    c->out->due_at_ms = ms;
    c->due_valid = true;
}

static void field_due_date(ctx_t *c, const char *name, json_t *v)
{
    if (json_object_get(c->root, "due_at")) {
        c->out->present |= TASK_DUE_AT;
        c->due_present = true;
        c->due_conflict = true;
        error_lit(c, name, "cannot be given together with due_at");
        return;
    }
    field_due(c, name, v);
}

static void field_timezone(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_TIMEZONE;
    if (json_is_null(v)) {
        memcpy(c->out->timezone, "UTC", 4);
        return;
    }
    if (!json_is_string(v)) {
        error_lit(c, name, "must be a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    bool ok = n >= 1 && n <= TIMEZONE_MAX && strlen(s) == n;
    if (ok)
        ok = c->tz_known ? c->tz_known(s, c->tz_ctx) : tz_name_chars_ok(s);
    if (!ok) {
        error_lit(c, name, "unknown time zone");
        return;
    }
    memcpy(c->out->timezone, s, n + 1);
}

static void set_recurrence(ctx_t *c, const char *name, const char *rule)
{
    c->rec_field = name;
    if (rule)
        c->out->recurrence = dup_n(c, rule, strlen(rule));
}

static void field_recurrence(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_RECURRENCE;
    if (json_is_null(v)) {
        set_recurrence(c, name, NULL);
        return;
    }
    if (!json_is_string(v)) {
        error_lit(c, name, "must be an RRULE string or null");
        return;
    }
    rrule_t r;
    char why[160], text[RRULE_FORMAT_MAX];
    if (rrule_parse(json_string_value(v), json_string_length(v), &r, why, sizeof why) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "invalid RRULE: %s", why);
        add_error(c, name, false, msg, true);
        return;
    }
    if (rrule_format(&r, text, sizeof text) < 0) {
        error_lit(c, name, "invalid RRULE");
        return;
    }
    set_recurrence(c, name, text);
}

/* is_recurring and recurring_interval, the original clients' aliases, are
 * read together whichever comes first. */
static void field_recurring_alias(ctx_t *c, const char *name, json_t *v)
{
    (void)v;
    c->out->present |= TASK_RECURRENCE;
    if (json_object_get(c->root, "recurrence")) {
        error_lit(c, name, "cannot be given together with recurrence");
        return;
    }
    if (c->aliases_done)
        return;
    c->aliases_done = true;

    json_t *flag = json_object_get(c->root, "is_recurring");
    json_t *interval = json_object_get(c->root, "recurring_interval");
    bool ok = true;
    if (flag && !json_is_boolean(flag) && !json_is_null(flag)) {
        error_lit(c, "is_recurring", "must be true or false");
        ok = false;
    }
    const char *rule = NULL;
    if (interval && !json_is_null(interval)) {
        static const char *const words[] = {"daily", "weekly", "monthly"};
        static const char *const rules[] = {"FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY"};
        for (int i = 0; i < 3 && json_is_string(interval); i++)
            if (ascii_caseeq(json_string_value(interval), json_string_length(interval), words[i],
                             strlen(words[i])))
                rule = rules[i];
        if (!rule) {
            error_lit(c, "recurring_interval", "must be daily, weekly or monthly");
            ok = false;
        }
    }
    if (!ok)
        return;
    if (json_is_true(flag)) {
        if (!rule) {
            error_lit(c, "recurring_interval", "required when is_recurring is true");
            return;
        }
        set_recurrence(c, "recurring_interval", rule);
    } else if (flag) {
        set_recurrence(c, "is_recurring", NULL); /* false or null: no recurrence */
    } else {
        set_recurrence(c, "recurring_interval", rule); /* alone: null or a rule */
    }
}

static void field_recurrence_from(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_RECURRENCE_FROM;
    if (json_is_null(v) || str_is(v, "due"))
        c->out->recurrence_from_completion = false;
    else if (str_is(v, "completion"))
        c->out->recurrence_from_completion = true;
    else
        error_lit(c, name, "must be due or completion");
}

static void reminder(ctx_t *c, const char *name, size_t i, json_t *obj)
{
    if (!json_is_object(obj)) {
        error_at(c, "must be an object with exactly one of before or at", "%s[%zu]", name, i);
        return;
    }
    json_t *before = NULL, *at = NULL;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        if (strcmp(key, "before") == 0) {
            before = val;
        } else if (strcmp(key, "at") == 0) {
            at = val;
        } else {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "%s[%zu].", name, i);
            error_key(c, prefix, key,
                      strcmp(key, "remind_at") == 0 || strcmp(key, "fired_at") == 0
                          ? "read-only field"
                          : "unknown field");
        }
    }
    if ((before != NULL) == (at != NULL)) {
        error_at(c, "must have exactly one of before or at", "%s[%zu]", name, i);
        return;
    }
    task_reminder_t r = {0};
    if (before) {
        int64_t days = 0, time_ms = 0;
        if (!json_is_string(before) ||
            timeparse_iso_duration_parts(json_string_value(before), json_string_length(before),
                                         &days, &time_ms) != 0) {
            error_at(c, "must be an ISO 8601 duration such as PT15M, P1D or P1DT2H",
                     "%s[%zu].before", name, i);
            return;
        }
        /* The parser bounds the whole in ms, so this cannot overflow. */
        int64_t ms = days * 86400000 + time_ms;
        if (ms <= 0) {
            error_at(c, "must be positive", "%s[%zu].before", name, i);
            return;
        }
        if (ms > BEFORE_MAX_MS) {
            error_at(c, "must be at most 365 days", "%s[%zu].before", name, i);
            return;
        }
        r.is_before = true;
        r.before_ms = ms;
        r.before_days = days;
        r.before_time_ms = time_ms;
    } else {
        int64_t ms;
        if (!json_is_string(at) ||
            timeparse_rfc3339(json_string_value(at), json_string_length(at), &ms) != 0) {
            error_at(c, "must be an RFC 3339 date-time with Z or an offset", "%s[%zu].at", name,
                     i);
            return;
        }
        r.at_ms = ms;
    }
    if (r.is_before)
        c->before_index[c->n_before++] = (int)i;
    c->out->reminders[c->out->n_reminders++] = r;
}

static void field_reminders(ctx_t *c, const char *name, json_t *v)
{
    c->out->present |= TASK_REMINDERS;
    if (!array_field(c, name, v, TASK_MAX_REMINDERS, "must be an array or null",
                     "must have at most 10 reminders"))
        return;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) reminder(c, name, i, item);
}

typedef struct field_def {
    const char *name;
    void (*fn)(ctx_t *c, const char *name, json_t *v);
} field_def_t;

static const field_def_t fields[] = {
    {"title", field_title},
    {"description", field_description},
    {"completed", field_completed},
    {"priority", field_priority},
    {"tags", field_tags},
    {"due_at", field_due},
    {"timezone", field_timezone},
    {"recurrence", field_recurrence},
    {"recurrence_from", field_recurrence_from},
    {"reminders", field_reminders},
    {"due_date", field_due_date},
    {"is_recurring", field_recurring_alias},
    {"recurring_interval", field_recurring_alias},
};

static const char *const read_only[] = {
    "id", "user_id", "created_at", "updated_at", "completed_at", "version", "series_id",
    "occurrence",
};

/* ---- entry points ---- */

static const char *malformed_reason(const json_error_t *je)
{
    switch (json_error_code(je)) {
    case json_error_out_of_memory:
        return "out of memory";
    case json_error_stack_overflow:
        return "nesting too deep";
    case json_error_invalid_utf8:
        return "invalid UTF-8";
    case json_error_premature_end_of_input:
        return "unexpected end of JSON";
    case json_error_end_of_input_expected:
        return "trailing data after the JSON value";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "\\u0000 is not allowed";
    case json_error_duplicate_key:
        return "duplicate object key";
    case json_error_numeric_overflow:
        return "number out of range";
    default:
        return "invalid JSON";
    }
}

static void set_defaults(task_input_t *out, task_input_mode_t mode)
{
    memset(out, 0, sizeof *out);
    out->present = mode == TASK_INPUT_PATCH ? 0 : TASK_ALL_FIELDS;
    out->priority = TASK_PRIORITY_MEDIUM;
    out->due_at_null = true;
    memcpy(out->timezone, "UTC", 4);
}

int task_input_parse(const char *json, size_t len, task_input_mode_t mode,
                     task_tz_known_fn tz_known, void *tz_ctx, task_input_t *out,
                     task_input_errors_t *errs)
{
    set_defaults(out, mode);
    memset(errs, 0, sizeof *errs);

    json_error_t je;
    memset(&je, 0, sizeof je);
    json_t *root = json_loadb(json ? json : "", json ? len : 0,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        /* jansson leaves the error empty when its very first allocation
         * fails; every real parse error has a text. */
        if (json_error_code(&je) == json_error_out_of_memory || je.text[0] == '\0')
            return 500;
        const char *why = malformed_reason(&je);
        char msg[160];
        snprintf(msg, sizeof msg, "%s at line %d, column %d", why, je.line, je.column);
        const char *kept = store(errs, msg, strlen(msg));
        errs->malformed = kept ? kept : why;
        return 400;
    }

    ctx_t c = {
        .tz_known = tz_known,
        .tz_ctx = tz_ctx,
        .root = root,
        .out = out,
        .errs = errs,
        .due_valid = true, /* an absent due_at is the valid default null */
        .rec_field = "recurrence",
    };
    if (!json_is_object(root)) {
        error_lit(&c, "", "the body must be a JSON object");
        json_decref(root);
        return 422;
    }

    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        const field_def_t *def = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (strcmp(key, fields[i].name) == 0)
                def = &fields[i];
        if (def) {
            def->fn(&c, def->name, val);
        } else {
            bool ro = false;
            for (size_t i = 0; i < sizeof read_only / sizeof read_only[0]; i++)
                if (strcmp(key, read_only[i]) == 0) {
                    error_lit(&c, read_only[i], "read-only field");
                    ro = true;
                }
            if (!ro)
                error_key(&c, "", key, "unknown field");
        }
        if (c.oom)
            break;
    }
    json_decref(root);
    if (c.oom)
        return 500;

    /* CREATE and REPLACE check the whole task; PATCH only what it brings
     * together (the stored row is the caller's to check against). */
    bool full = mode != TASK_INPUT_PATCH;
    if (full && !c.title_seen)
        error_lit(&c, "title", "is required");
    if ((full || c.due_present) && c.due_valid && !c.due_conflict && out->due_at_null) {
        if (out->recurrence)
            error_lit(&c, c.rec_field, "needs due_at");
        for (int i = 0; i < c.n_before; i++)
            error_at(&c, "needs due_at", "reminders[%d].before", c.before_index[i]);
    }
    return c.invalid ? 422 : 0;
}

void task_input_free(task_input_t *in)
{
    if (!in)
        return;
    free(in->title);
    in->title = NULL;
    free(in->description);
    in->description = NULL;
    for (int i = 0; i < TASK_MAX_TAGS; i++) {
        free(in->tags[i]);
        in->tags[i] = NULL;
    }
    in->n_tags = 0;
    free(in->recurrence);
    in->recurrence = NULL;
}
