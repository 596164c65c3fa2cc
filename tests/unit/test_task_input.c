/* Unit tests for api/task_input: every field rule of docs/api.md
 * ("Requests", "Field rules"), the three modes, aliases, cross-field rules
 * and malformed bodies.
 *
 * Instants were computed independently with Python 3's datetime:
 *   (datetime.fromisoformat(s) - datetime(1970,1,1,tzinfo=timezone.utc))
 *       // timedelta(milliseconds=1)
 *   '2026-11-24T10:00:00+00:00' -> 1795514400000
 *   '2026-03-29T01:30:00+05:30' -> 1774728000000
 *   '2026-11-24T10:00:00-07:00' -> 1795539600000 */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "api/task_input.h"
#include "unit.h"

#define DUE_MS 1795514400000LL /* 2026-11-24T10:00:00Z */

static task_input_t in;
static task_input_errors_t errs;

static int parse_mode(const char *json, task_input_mode_t mode)
{
    task_input_free(&in);
    return task_input_parse(json, strlen(json), mode, NULL, NULL, &in, &errs);
}

static int create(const char *json)
{
    return parse_mode(json, TASK_INPUT_CREATE);
}

static int patch(const char *json)
{
    return parse_mode(json, TASK_INPUT_PATCH);
}

/* The message of the first error on field, or NULL. */
static const char *err_for(const char *field)
{
    for (int i = 0; i < errs.n; i++)
        if (strcmp(errs.items[i].field, field) == 0)
            return errs.items[i].message;
    return NULL;
}

static void dump_errors(void)
{
    for (int i = 0; i < errs.n && i < 8; i++)
        unit__diag("#   errors[%d]: %s: %s\n", i, errs.items[i].field, errs.items[i].message);
}

/* json in mode must be 422 with exactly one error: field: msg. */
static void only_error(task_input_mode_t mode, const char *json, const char *field,
                       const char *msg)
{
    int rc = parse_mode(json, mode);
    if (rc != 422 || errs.n != 1) {
        unit__diag_bytes("json", json, strlen(json));
        dump_errors();
    }
    CHECK_INT_EQ(rc, 422);
    CHECK_INT_EQ(errs.n, 1);
    CHECK_STR_EQ(errs.items[0].field, field);
    CHECK_STR_EQ(errs.items[0].message, msg);
    CHECK(errs.malformed == NULL);
}

static void ok(task_input_mode_t mode, const char *json)
{
    int rc = parse_mode(json, mode);
    if (rc != 0) {
        unit__diag_bytes("json", json, strlen(json));
        dump_errors();
    }
    CHECK_INT_EQ(rc, 0);
    CHECK_INT_EQ(errs.n, 0);
}

/* Builds {"title": "<prefix><unit * n>"} style bodies. */
static char *repeat_json(const char *before, const char *unit_s, size_t n, const char *after)
{
    size_t ul = strlen(unit_s);
    size_t total = strlen(before) + ul * n + strlen(after) + 1;
    char *s = malloc(total);
    CHECK(s != NULL);
    strcpy(s, before);
    char *p = s + strlen(before);
    for (size_t i = 0; i < n; i++, p += ul)
        memcpy(p, unit_s, ul);
    strcpy(p, after);
    return s;
}

static void check_defaults(void)
{
    CHECK(in.description == NULL);
    CHECK(!in.completed);
    CHECK_INT_EQ(in.priority, TASK_PRIORITY_MEDIUM);
    CHECK_INT_EQ(in.n_tags, 0);
    CHECK(in.due_at_null);
    CHECK_STR_EQ(in.timezone, "UTC");
    CHECK(in.recurrence == NULL);
    CHECK(!in.recurrence_from_completion);
    CHECK_INT_EQ(in.n_reminders, 0);
}

/* ---- modes ---- */

static void test_create_defaults(void)
{
    ok(TASK_INPUT_CREATE, "{\"title\":\"Buy milk\"}");
    CHECK_INT_EQ(in.present, TASK_ALL_FIELDS);
    CHECK_STR_EQ(in.title, "Buy milk");
    check_defaults();
    CHECK(errs.malformed == NULL);
}

static void test_replace_defaults(void)
{
    ok(TASK_INPUT_REPLACE, "{\"title\":\"x\"}");
    CHECK_INT_EQ(in.present, TASK_ALL_FIELDS);
    CHECK_STR_EQ(in.title, "x");
    check_defaults();
    only_error(TASK_INPUT_REPLACE, "{}", "title", "is required");
    only_error(TASK_INPUT_CREATE, "{}", "title", "is required");
    only_error(TASK_INPUT_CREATE, "{\"description\":\"d\"}", "title", "is required");
}

static void test_create_all_fields(void)
{
    ok(TASK_INPUT_CREATE,
       "{\"title\":\" T \",\"description\":\"D\",\"completed\":true,\"priority\":\"urgent\","
       "\"tags\":[\"a\",\" b \"],\"due_at\":\"2026-03-29T01:30:00+05:30\","
       "\"timezone\":\"Asia/Kolkata\",\"recurrence\":\"RRULE:freq=weekly;byday=mo\","
       "\"recurrence_from\":\"completion\","
       "\"reminders\":[{\"before\":\"PT15M\"},{\"at\":\"2026-11-24T10:00:00-07:00\"}]}");
    CHECK_INT_EQ(in.present, TASK_ALL_FIELDS);
    CHECK_STR_EQ(in.title, "T");
    CHECK_STR_EQ(in.description, "D");
    CHECK(in.completed);
    CHECK_INT_EQ(in.priority, TASK_PRIORITY_URGENT);
    CHECK_INT_EQ(in.n_tags, 2);
    CHECK_STR_EQ(in.tags[0], "a");
    CHECK_STR_EQ(in.tags[1], "b");
    CHECK(!in.due_at_null);
    CHECK_INT_EQ(in.due_at_ms, 1774728000000LL);
    CHECK_STR_EQ(in.timezone, "Asia/Kolkata");
    CHECK_STR_EQ(in.recurrence, "FREQ=WEEKLY;BYDAY=MO");
    CHECK(in.recurrence_from_completion);
    CHECK_INT_EQ(in.n_reminders, 2);
    CHECK(in.reminders[0].is_before);
    CHECK_INT_EQ(in.reminders[0].before_ms, 15 * 60000);
    CHECK(!in.reminders[1].is_before);
    CHECK_INT_EQ(in.reminders[1].at_ms, 1795539600000LL);
}

static void test_patch_present_bits(void)
{
    ok(TASK_INPUT_PATCH, "{}");
    CHECK_INT_EQ(in.present, 0);
    ok(TASK_INPUT_PATCH, "{\"title\":\"t\"}");
    CHECK_INT_EQ(in.present, TASK_TITLE);
    CHECK_STR_EQ(in.title, "t");
    ok(TASK_INPUT_PATCH, "{\"completed\":false,\"priority\":\"low\"}");
    CHECK_INT_EQ(in.present, TASK_COMPLETED | TASK_PRIORITY);
    CHECK_INT_EQ(in.priority, TASK_PRIORITY_LOW);
    ok(TASK_INPUT_PATCH, "{\"due_date\":null}");
    CHECK_INT_EQ(in.present, TASK_DUE_AT);
    ok(TASK_INPUT_PATCH, "{\"is_recurring\":false}");
    CHECK_INT_EQ(in.present, TASK_RECURRENCE);
    ok(TASK_INPUT_PATCH, "{\"recurring_interval\":null}");
    CHECK_INT_EQ(in.present, TASK_RECURRENCE);
}

static void test_patch_nulls_clear(void)
{
    ok(TASK_INPUT_PATCH,
       "{\"description\":null,\"priority\":null,\"tags\":null,\"due_at\":null,"
       "\"timezone\":null,\"recurrence\":null,\"recurrence_from\":null,\"reminders\":null}");
    CHECK_INT_EQ(in.present, TASK_ALL_FIELDS & ~(unsigned)(TASK_TITLE | TASK_COMPLETED));
    CHECK(in.title == NULL);
    check_defaults();
    only_error(TASK_INPUT_PATCH, "{\"title\":null}", "title", "must not be null");
    CHECK(in.present & TASK_TITLE);
    ok(TASK_INPUT_PATCH, "{\"completed\":null}");
    CHECK(in.present & TASK_COMPLETED);
    CHECK(!in.completed);
    /* Nulls take the defaults in CREATE too. */
    ok(TASK_INPUT_CREATE,
       "{\"title\":\"t\",\"description\":null,\"priority\":null,\"tags\":null,\"due_at\":null,"
       "\"timezone\":null,\"recurrence\":null,\"recurrence_from\":null,\"reminders\":null}");
    check_defaults();
    only_error(TASK_INPUT_CREATE, "{\"title\":null}", "title", "must not be null");
}

/* ---- title ---- */

static void test_title(void)
{
    ok(TASK_INPUT_CREATE, "{\"title\":\" \\t\\r\\n Buy milk \\n\"}");
    CHECK_STR_EQ(in.title, "Buy milk");
    ok(TASK_INPUT_CREATE, "{\"title\":\"a  b\"}");
    CHECK_STR_EQ(in.title, "a  b"); /* inner whitespace kept */
    only_error(TASK_INPUT_CREATE, "{\"title\":\"\"}", "title", "must not be empty");
    only_error(TASK_INPUT_CREATE, "{\"title\":\" \\t\\r\\n\"}", "title", "must not be empty");
    only_error(TASK_INPUT_CREATE, "{\"title\":5}", "title", "must be a string");
    only_error(TASK_INPUT_CREATE, "{\"title\":[\"a\"]}", "title", "must be a string");
    only_error(TASK_INPUT_CREATE, "{\"title\":true}", "title", "must be a string");
}

static void test_title_length(void)
{
    char *s = repeat_json("{\"title\":\"", "a", 200, "\"}");
    ok(TASK_INPUT_CREATE, s);
    CHECK_INT_EQ(strlen(in.title), 200);
    free(s);
    s = repeat_json("{\"title\":\"", "a", 201, "\"}");
    only_error(TASK_INPUT_CREATE, s, "title", "must be at most 200 characters");
    free(s);
    /* Whitespace around does not count. */
    s = repeat_json("{\"title\":\"   ", "a", 200, "   \"}");
    ok(TASK_INPUT_CREATE, s);
    CHECK_INT_EQ(strlen(in.title), 200);
    free(s);
    /* Characters, not bytes: 200 two-byte, three-byte and four-byte ones. */
    s = repeat_json("{\"title\":\"", "\xc3\xa9", 200, "\"}");
    ok(TASK_INPUT_CREATE, s);
    CHECK_INT_EQ(strlen(in.title), 400);
    free(s);
    s = repeat_json("{\"title\":\"", "\xc3\xa9", 201, "\"}");
    only_error(TASK_INPUT_CREATE, s, "title", "must be at most 200 characters");
    free(s);
    s = repeat_json("{\"title\":\"", "\xe2\x82\xac", 200, "\"}");
    ok(TASK_INPUT_CREATE, s);
    free(s);
    s = repeat_json("{\"title\":\"", "\xf0\x9f\x98\x80", 200, "\"}");
    ok(TASK_INPUT_CREATE, s);
    CHECK_INT_EQ(strlen(in.title), 800);
    free(s);
    s = repeat_json("{\"title\":\"", "\xf0\x9f\x98\x80", 201, "\"}");
    only_error(TASK_INPUT_CREATE, s, "title", "must be at most 200 characters");
    free(s);
    /* A JSON escape is one character too: 200 x \u00e9. */
    s = repeat_json("{\"title\":\"", "\\u00e9", 200, "\"}");
    ok(TASK_INPUT_CREATE, s);
    free(s);
    /* A surrogate pair is one code point. */
    s = repeat_json("{\"title\":\"", "\\ud83d\\ude00", 200, "\"}");
    ok(TASK_INPUT_CREATE, s);
    free(s);
}

static void test_utf8_length(void)
{
    CHECK_INT_EQ(task_utf8_length("", 0), 0);
    CHECK_INT_EQ(task_utf8_length("abc", 3), 3);
    CHECK_INT_EQ(task_utf8_length("\xc3\xa9", 2), 1);
    CHECK_INT_EQ(task_utf8_length("a\xe2\x82\xac" "b", 5), 3);
    CHECK_INT_EQ(task_utf8_length("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8), 2);
    CHECK_INT_EQ(task_utf8_length("a\0b", 3), 3);
}

/* ---- description ---- */

static void test_description(void)
{
    ok(TASK_INPUT_CREATE, "{\"title\":\"t\",\"description\":\"\"}");
    CHECK_STR_EQ(in.description, "");
    ok(TASK_INPUT_CREATE, "{\"title\":\"t\",\"description\":\"  keep spaces  \"}");
    CHECK_STR_EQ(in.description, "  keep spaces  ");
    only_error(TASK_INPUT_CREATE, "{\"title\":\"t\",\"description\":1}", "description",
               "must be a string or null");
    char *s = repeat_json("{\"title\":\"t\",\"description\":\"", "d", 10000, "\"}");
    ok(TASK_INPUT_CREATE, s);
    CHECK_INT_EQ(strlen(in.description), 10000);
    free(s);
    s = repeat_json("{\"title\":\"t\",\"description\":\"", "d", 10001, "\"}");
    only_error(TASK_INPUT_CREATE, s, "description", "must be at most 10000 characters");
    free(s);
    s = repeat_json("{\"title\":\"t\",\"description\":\"", "\xe2\x82\xac", 10000, "\"}");
    ok(TASK_INPUT_CREATE, s);
    CHECK_INT_EQ(strlen(in.description), 30000);
    free(s);
    s = repeat_json("{\"title\":\"t\",\"description\":\"", "\xe2\x82\xac", 10001, "\"}");
    only_error(TASK_INPUT_CREATE, s, "description", "must be at most 10000 characters");
    free(s);
}

/* ---- completed, priority ---- */

static void test_completed(void)
{
    ok(TASK_INPUT_PATCH, "{\"completed\":true}");
    CHECK(in.completed);
    ok(TASK_INPUT_PATCH, "{\"completed\":false}");
    CHECK(!in.completed);
    only_error(TASK_INPUT_PATCH, "{\"completed\":\"true\"}", "completed", "must be true or false");
    only_error(TASK_INPUT_PATCH, "{\"completed\":1}", "completed", "must be true or false");
    ok(TASK_INPUT_CREATE, "{\"title\":\"t\",\"completed\":null}");
    CHECK(!in.completed);
}

static void test_priority(void)
{
    static const char *const names[] = {"low", "medium", "high", "urgent"};
    for (int i = 0; i < 4; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"priority\":\"%s\"}", names[i]);
        ok(TASK_INPUT_PATCH, json);
        CHECK_INT_EQ(in.priority, i);
    }
    ok(TASK_INPUT_PATCH, "{\"priority\":null}");
    CHECK_INT_EQ(in.priority, TASK_PRIORITY_MEDIUM);
    const char *msg = "must be low, medium, high or urgent";
    only_error(TASK_INPUT_PATCH, "{\"priority\":\"HIGH\"}", "priority", msg);
    only_error(TASK_INPUT_PATCH, "{\"priority\":\"critical\"}", "priority", msg);
    only_error(TASK_INPUT_PATCH, "{\"priority\":\"\"}", "priority", msg);
    only_error(TASK_INPUT_PATCH, "{\"priority\":2}", "priority", msg);
    only_error(TASK_INPUT_PATCH, "{\"priority\":\"low \"}", "priority", msg);
}

/* ---- tags ---- */

/* {"tags":["tag0","tag1",...]} with n tags. */
static char *tags_json(int n)
{
    size_t cap = 64 + (size_t)n * 80;
    char *s = malloc(cap);
    CHECK(s != NULL);
    size_t o = (size_t)snprintf(s, cap, "{\"tags\":[");
    for (int i = 0; i < n; i++) {
        o += (size_t)snprintf(s + o, cap - o, "%s\"", i ? "," : "");
        o += (size_t)snprintf(s + o, cap - o, "tag%d", i);
        o += (size_t)snprintf(s + o, cap - o, "\"");
    }
    snprintf(s + o, cap - o, "]}");
    return s;
}

static void test_tags(void)
{
    ok(TASK_INPUT_PATCH, "{\"tags\":[\" Work \",\"home\\t\",\"\xc3\x89t\xc3\xa9\"]}");
    CHECK_INT_EQ(in.present, TASK_TAGS);
    CHECK_INT_EQ(in.n_tags, 3);
    CHECK_STR_EQ(in.tags[0], "Work");
    CHECK_STR_EQ(in.tags[1], "home");
    CHECK_STR_EQ(in.tags[2], "\xc3\x89t\xc3\xa9");
    ok(TASK_INPUT_PATCH, "{\"tags\":[]}");
    CHECK_INT_EQ(in.n_tags, 0);
    ok(TASK_INPUT_PATCH, "{\"tags\":null}");
    CHECK_INT_EQ(in.n_tags, 0);
    CHECK_INT_EQ(in.present, TASK_TAGS);

    only_error(TASK_INPUT_PATCH, "{\"tags\":\"a\"}", "tags", "must be an array of strings or null");
    only_error(TASK_INPUT_PATCH, "{\"tags\":{}}", "tags", "must be an array of strings or null");
    only_error(TASK_INPUT_PATCH, "{\"tags\":[\"a\",1]}", "tags[1]", "must be a string");
    only_error(TASK_INPUT_PATCH, "{\"tags\":[null]}", "tags[0]", "must be a string");
    only_error(TASK_INPUT_PATCH, "{\"tags\":[\"a\",\"\"]}", "tags[1]", "must not be empty");
    only_error(TASK_INPUT_PATCH, "{\"tags\":[\" \\n \"]}", "tags[0]", "must not be empty");
}

static void test_tags_duplicates(void)
{
    /* Duplicates, compared after trimming and ASCII case folding, are
     * dropped: the first spelling is kept. */
    ok(TASK_INPUT_PATCH, "{\"tags\":[\"Work\",\"work\"]}");
    CHECK_INT_EQ(in.n_tags, 1);
    CHECK_STR_EQ(in.tags[0], "Work");
    ok(TASK_INPUT_PATCH, "{\"tags\":[\"a\",\"b\",\" A \"]}");
    CHECK_INT_EQ(in.n_tags, 2);
    CHECK_STR_EQ(in.tags[1], "b");
    int rc = patch("{\"tags\":[\"a\",\"A\",\"a\",\"b\"]}");
    CHECK_INT_EQ(rc, 0);
    CHECK_INT_EQ(in.n_tags, 2);
    CHECK_STR_EQ(in.tags[0], "a");
    CHECK_STR_EQ(in.tags[1], "b");
    /* Non-ASCII letters are not folded: these differ. */
    ok(TASK_INPUT_PATCH, "{\"tags\":[\"\xc3\x89\",\"\xc3\xa9\"]}");
    CHECK_INT_EQ(in.n_tags, 2);
    /* A prefix is not a duplicate. */
    ok(TASK_INPUT_PATCH, "{\"tags\":[\"ab\",\"a\",\"abc\"]}");
}

static void test_tags_limits(void)
{
    char *s = tags_json(20);
    ok(TASK_INPUT_PATCH, s);
    CHECK_INT_EQ(in.n_tags, 20);
    CHECK_STR_EQ(in.tags[19], "tag19");
    free(s);
    s = tags_json(21);
    only_error(TASK_INPUT_PATCH, s, "tags", "must have at most 20 tags");
    free(s);
    s = tags_json(1000);
    only_error(TASK_INPUT_PATCH, s, "tags", "must have at most 20 tags");
    free(s);

    char *t = repeat_json("{\"tags\":[\"", "x", 50, "\"]}");
    ok(TASK_INPUT_PATCH, t);
    CHECK_INT_EQ(strlen(in.tags[0]), 50);
    free(t);
    t = repeat_json("{\"tags\":[\"", "x", 51, "\"]}");
    only_error(TASK_INPUT_PATCH, t, "tags[0]", "must be at most 50 characters");
    free(t);
    t = repeat_json("{\"tags\":[\"  ", "x", 50, "  \"]}");
    ok(TASK_INPUT_PATCH, t);
    CHECK_INT_EQ(strlen(in.tags[0]), 50);
    free(t);
    t = repeat_json("{\"tags\":[\"ok\",\"", "\xe6\x97\xa5", 50, "\"]}");
    ok(TASK_INPUT_PATCH, t);
    CHECK_INT_EQ(strlen(in.tags[1]), 150);
    free(t);
    t = repeat_json("{\"tags\":[\"ok\",\"", "\xe6\x97\xa5", 51, "\"]}");
    only_error(TASK_INPUT_PATCH, t, "tags[1]", "must be at most 50 characters");
    free(t);
}

/* ---- due_at and due_date ---- */

static void test_due_at(void)
{
    ok(TASK_INPUT_PATCH, "{\"due_at\":\"2026-11-24T10:00:00Z\"}");
    CHECK_INT_EQ(in.present, TASK_DUE_AT);
    CHECK(!in.due_at_null);
    CHECK_INT_EQ(in.due_at_ms, DUE_MS);
    ok(TASK_INPUT_PATCH, "{\"due_at\":\"2026-03-29T01:30:00+05:30\"}");
    CHECK_INT_EQ(in.due_at_ms, 1774728000000LL);
    ok(TASK_INPUT_PATCH, "{\"due_at\":\"2026-11-24T10:00:00.123456Z\"}");
    CHECK_INT_EQ(in.due_at_ms, DUE_MS + 123);
    ok(TASK_INPUT_PATCH, "{\"due_at\":null}");
    CHECK(in.due_at_null);
    const char *msg = "must be an RFC 3339 date-time with Z or an offset, or null";
    only_error(TASK_INPUT_PATCH, "{\"due_at\":\"2026-11-24T10:00:00\"}", "due_at", msg);
    only_error(TASK_INPUT_PATCH, "{\"due_at\":\"2026-11-24\"}", "due_at", msg);
    only_error(TASK_INPUT_PATCH, "{\"due_at\":\"2026-02-29T10:00:00Z\"}", "due_at", msg);
    only_error(TASK_INPUT_PATCH, "{\"due_at\":1795514400000}", "due_at", msg);
    only_error(TASK_INPUT_PATCH, "{\"due_at\":\"\"}", "due_at", msg);
}

static void test_due_date_alias(void)
{
    ok(TASK_INPUT_CREATE, "{\"title\":\"t\",\"due_date\":\"2026-11-24T10:00:00Z\"}");
    CHECK_INT_EQ(in.due_at_ms, DUE_MS);
    CHECK(!in.due_at_null);
    ok(TASK_INPUT_PATCH, "{\"due_date\":\"2026-11-24T10:00:00Z\"}");
    CHECK_INT_EQ(in.present, TASK_DUE_AT);
    CHECK_INT_EQ(in.due_at_ms, DUE_MS);
    only_error(TASK_INPUT_PATCH, "{\"due_date\":\"tomorrow\"}", "due_date",
               "must be an RFC 3339 date-time with Z or an offset, or null");
    only_error(TASK_INPUT_PATCH,
               "{\"due_at\":\"2026-11-24T10:00:00Z\",\"due_date\":\"2026-11-24T10:00:00Z\"}",
               "due_date", "cannot be given together with due_at");
    only_error(TASK_INPUT_PATCH, "{\"due_date\":null,\"due_at\":null}", "due_date",
               "cannot be given together with due_at");
    /* The conflict is the one error: no "needs due_at" on top of it. */
    only_error(TASK_INPUT_PATCH,
               "{\"due_at\":null,\"due_date\":\"2026-11-24T10:00:00Z\","
               "\"recurrence\":\"FREQ=DAILY\",\"reminders\":[{\"before\":\"PT1M\"}]}",
               "due_date", "cannot be given together with due_at");
}

/* ---- timezone ---- */

static bool only_paris(const char *name, void *ctx)
{
    (*(int *)ctx)++;
    return strcmp(name, "Europe/Paris") == 0;
}

static void test_timezone(void)
{
    ok(TASK_INPUT_PATCH, "{\"timezone\":\"America/Argentina/Buenos_Aires\"}");
    CHECK_STR_EQ(in.timezone, "America/Argentina/Buenos_Aires");
    ok(TASK_INPUT_PATCH, "{\"timezone\":\"Etc/GMT+5\"}");
    ok(TASK_INPUT_PATCH, "{\"timezone\":\"America/Port-au-Prince\"}");
    ok(TASK_INPUT_PATCH, "{\"timezone\":null}");
    CHECK_STR_EQ(in.timezone, "UTC");
    CHECK_INT_EQ(in.present, TASK_TIMEZONE);
    const char *msg = "unknown time zone";
    only_error(TASK_INPUT_PATCH, "{\"timezone\":\"\"}", "timezone", msg);
    only_error(TASK_INPUT_PATCH, "{\"timezone\":\"Europe/Par is\"}", "timezone", msg);
    only_error(TASK_INPUT_PATCH, "{\"timezone\":\"../etc/passwd\"}", "timezone", msg);
    only_error(TASK_INPUT_PATCH, "{\"timezone\":\"Europe/Z\xc3\xbcrich\"}", "timezone", msg);
    only_error(TASK_INPUT_PATCH, "{\"timezone\":3}", "timezone", "must be a string");

    char *s = repeat_json("{\"timezone\":\"", "A", 63, "\"}");
    ok(TASK_INPUT_PATCH, s);
    CHECK_INT_EQ(strlen(in.timezone), 63);
    free(s);
    s = repeat_json("{\"timezone\":\"", "A", 64, "\"}");
    only_error(TASK_INPUT_PATCH, s, "timezone", msg);
    free(s);
}

static void test_timezone_callback(void)
{
    int calls = 0;
    const char *j = "{\"timezone\":\"Europe/Paris\"}";
    task_input_free(&in);
    CHECK_INT_EQ(task_input_parse(j, strlen(j), TASK_INPUT_PATCH, only_paris, &calls, &in, &errs),
                 0);
    CHECK_STR_EQ(in.timezone, "Europe/Paris");
    CHECK_INT_EQ(calls, 1);
    j = "{\"timezone\":\"Mars/Olympus_Mons\"}";
    task_input_free(&in);
    CHECK_INT_EQ(task_input_parse(j, strlen(j), TASK_INPUT_PATCH, only_paris, &calls, &in, &errs),
                 422);
    CHECK_INT_EQ(calls, 2);
    CHECK_STR_EQ(err_for("timezone"), "unknown time zone");
    /* A null timezone is UTC without asking. */
    j = "{\"timezone\":null}";
    task_input_free(&in);
    CHECK_INT_EQ(task_input_parse(j, strlen(j), TASK_INPUT_PATCH, only_paris, &calls, &in, &errs),
                 0);
    CHECK_INT_EQ(calls, 2);
}

/* ---- recurrence ---- */

static void test_recurrence(void)
{
    ok(TASK_INPUT_CREATE,
       "{\"title\":\"t\",\"due_at\":\"2026-11-24T10:00:00Z\","
       "\"recurrence\":\"count=3;freq=monthly;byday=-1fr\"}");
    CHECK_STR_EQ(in.recurrence, "FREQ=MONTHLY;BYDAY=-1FR;COUNT=3");
    ok(TASK_INPUT_PATCH, "{\"recurrence\":null}");
    CHECK(in.recurrence == NULL);
    CHECK_INT_EQ(in.present, TASK_RECURRENCE);
    only_error(TASK_INPUT_PATCH, "{\"recurrence\":\"FREQ=HOURLY\"}", "recurrence",
               "invalid RRULE: FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY");
    only_error(TASK_INPUT_PATCH, "{\"recurrence\":\"FREQ=DAILY;COUNT=2;UNTIL=20261231\"}",
               "recurrence", "invalid RRULE: COUNT and UNTIL cannot both be given");
    only_error(TASK_INPUT_PATCH, "{\"recurrence\":\"FREQ=WEEKLY;BYDAY=2MO\"}", "recurrence",
               "invalid RRULE: BYDAY ordinals are only allowed with MONTHLY or YEARLY");
    only_error(TASK_INPUT_PATCH, "{\"recurrence\":\"\"}", "recurrence",
               "invalid RRULE: empty rule (FREQ is required)");
    only_error(TASK_INPUT_PATCH, "{\"recurrence\":{\"freq\":\"daily\"}}", "recurrence",
               "must be an RRULE string or null");
}

static void test_recurrence_needs_due_at(void)
{
    only_error(TASK_INPUT_CREATE, "{\"title\":\"t\",\"recurrence\":\"FREQ=DAILY\"}", "recurrence",
               "needs due_at");
    only_error(TASK_INPUT_REPLACE,
               "{\"title\":\"t\",\"due_at\":null,\"recurrence\":\"FREQ=DAILY\"}", "recurrence",
               "needs due_at");
    /* An invalid due_at is reported once, not again as "needs due_at". */
    only_error(TASK_INPUT_CREATE,
               "{\"title\":\"t\",\"due_at\":\"soon\",\"recurrence\":\"FREQ=DAILY\"}", "due_at",
               "must be an RFC 3339 date-time with Z or an offset, or null");
    /* PATCH: only checked when both come in the patch. */
    ok(TASK_INPUT_PATCH, "{\"recurrence\":\"FREQ=DAILY\"}");
    CHECK_STR_EQ(in.recurrence, "FREQ=DAILY");
    ok(TASK_INPUT_PATCH, "{\"due_at\":null}");
    ok(TASK_INPUT_PATCH, "{\"due_at\":null,\"recurrence\":null}");
    only_error(TASK_INPUT_PATCH, "{\"due_at\":null,\"recurrence\":\"FREQ=DAILY\"}", "recurrence",
               "needs due_at");
    ok(TASK_INPUT_PATCH, "{\"due_at\":\"2026-11-24T10:00:00Z\",\"recurrence\":\"FREQ=DAILY\"}");
    only_error(TASK_INPUT_PATCH, "{\"due_date\":null,\"recurrence\":\"FREQ=DAILY\"}",
               "recurrence", "needs due_at");
}

static void test_recurrence_from(void)
{
    ok(TASK_INPUT_PATCH, "{\"recurrence_from\":\"completion\"}");
    CHECK(in.recurrence_from_completion);
    CHECK_INT_EQ(in.present, TASK_RECURRENCE_FROM);
    ok(TASK_INPUT_PATCH, "{\"recurrence_from\":\"due\"}");
    CHECK(!in.recurrence_from_completion);
    ok(TASK_INPUT_PATCH, "{\"recurrence_from\":null}");
    CHECK(!in.recurrence_from_completion);
    const char *msg = "must be due or completion";
    only_error(TASK_INPUT_PATCH, "{\"recurrence_from\":\"Due\"}", "recurrence_from", msg);
    only_error(TASK_INPUT_PATCH, "{\"recurrence_from\":\"done\"}", "recurrence_from", msg);
    only_error(TASK_INPUT_PATCH, "{\"recurrence_from\":true}", "recurrence_from", msg);
}

/* ---- is_recurring / recurring_interval ---- */

static void test_recurring_aliases(void)
{
    const char *due = "\"due_at\":\"2026-11-24T10:00:00Z\"";
    char j[256];
    snprintf(j, sizeof j, "{\"title\":\"t\",%s,\"is_recurring\":true,"
             "\"recurring_interval\":\"weekly\"}", due);
    ok(TASK_INPUT_CREATE, j);
    CHECK_STR_EQ(in.recurrence, "FREQ=WEEKLY");
    snprintf(j, sizeof j, "{\"recurring_interval\":\"monthly\",\"is_recurring\":true,%s}", due);
    ok(TASK_INPUT_PATCH, j);
    CHECK_STR_EQ(in.recurrence, "FREQ=MONTHLY");
    CHECK_INT_EQ(in.present, TASK_RECURRENCE | TASK_DUE_AT);
    /* recurring_interval alone sets the recurrence too. */
    ok(TASK_INPUT_PATCH, "{\"recurring_interval\":\"daily\"}");
    CHECK_STR_EQ(in.recurrence, "FREQ=DAILY");
    CHECK_INT_EQ(in.present, TASK_RECURRENCE);
    ok(TASK_INPUT_PATCH, "{\"recurring_interval\":\"DAILY\"}");
    CHECK_STR_EQ(in.recurrence, "FREQ=DAILY");
    /* is_recurring false clears, whatever the interval says. */
    ok(TASK_INPUT_PATCH, "{\"is_recurring\":false}");
    CHECK(in.recurrence == NULL);
    CHECK_INT_EQ(in.present, TASK_RECURRENCE);
    ok(TASK_INPUT_PATCH, "{\"is_recurring\":false,\"recurring_interval\":\"daily\"}");
    CHECK(in.recurrence == NULL);
    ok(TASK_INPUT_PATCH, "{\"is_recurring\":null}");
    CHECK(in.recurrence == NULL);

    only_error(TASK_INPUT_PATCH, "{\"is_recurring\":true}", "recurring_interval",
               "required when is_recurring is true");
    only_error(TASK_INPUT_PATCH, "{\"is_recurring\":true,\"recurring_interval\":null}",
               "recurring_interval", "required when is_recurring is true");
    only_error(TASK_INPUT_PATCH, "{\"recurring_interval\":\"yearly\"}", "recurring_interval",
               "must be daily, weekly or monthly");
    only_error(TASK_INPUT_PATCH, "{\"is_recurring\":true,\"recurring_interval\":7}",
               "recurring_interval", "must be daily, weekly or monthly");
    only_error(TASK_INPUT_PATCH, "{\"is_recurring\":\"yes\",\"recurring_interval\":\"daily\"}",
               "is_recurring", "must be true or false");
    /* Together with recurrence: one error per alias. */
    only_error(TASK_INPUT_PATCH, "{\"recurrence\":\"FREQ=DAILY\",\"is_recurring\":false}",
               "is_recurring", "cannot be given together with recurrence");
    only_error(TASK_INPUT_PATCH, "{\"recurring_interval\":\"daily\",\"recurrence\":null}",
               "recurring_interval", "cannot be given together with recurrence");
    CHECK_INT_EQ(patch("{\"is_recurring\":true,\"recurring_interval\":\"daily\","
                       "\"recurrence\":\"FREQ=DAILY\"}"),
                 422);
    CHECK_INT_EQ(errs.n, 2);
    CHECK_STR_EQ(err_for("is_recurring"), "cannot be given together with recurrence");
    CHECK_STR_EQ(err_for("recurring_interval"), "cannot be given together with recurrence");
    /* The alias needs due_at like recurrence does, reported on the alias. */
    only_error(TASK_INPUT_CREATE,
               "{\"title\":\"t\",\"is_recurring\":true,\"recurring_interval\":\"daily\"}",
               "recurring_interval", "needs due_at");
    only_error(TASK_INPUT_CREATE, "{\"title\":\"t\",\"recurring_interval\":\"weekly\"}",
               "recurring_interval", "needs due_at");
    ok(TASK_INPUT_CREATE, "{\"title\":\"t\",\"is_recurring\":false}");
}

/* ---- reminders ---- */

static void test_reminders(void)
{
    const char *due = "\"due_at\":\"2026-11-24T10:00:00Z\"";
    char j[512];
    snprintf(j, sizeof j,
             "{%s,\"reminders\":[{\"before\":\"PT15M\"},{\"before\":\"P1D\"},"
             "{\"before\":\"P1DT2H\"},{\"at\":\"2026-03-29T01:30:00+05:30\"},"
             "{\"before\":\"P365D\"},{\"before\":\"P52W\"},{\"before\":\"PT0.001S\"}]}",
             due);
    ok(TASK_INPUT_PATCH, j);
    CHECK_INT_EQ(in.present, TASK_DUE_AT | TASK_REMINDERS);
    CHECK_INT_EQ(in.n_reminders, 7);
    CHECK_INT_EQ(in.reminders[0].before_ms, 900000);
    CHECK_INT_EQ(in.reminders[1].before_ms, 86400000);
    CHECK_INT_EQ(in.reminders[2].before_ms, 93600000);
    /* Calendar days and exact time apart (they differ across DST). */
    CHECK_INT_EQ(in.reminders[2].before_days, 1);
    CHECK_INT_EQ(in.reminders[2].before_time_ms, 7200000);
    CHECK_INT_EQ(in.reminders[5].before_days, 52 * 7);
    CHECK_INT_EQ(in.reminders[5].before_time_ms, 0);
    CHECK(!in.reminders[3].is_before);
    CHECK_INT_EQ(in.reminders[3].at_ms, 1774728000000LL);
    CHECK_INT_EQ(in.reminders[4].before_ms, 365LL * 86400000);
    CHECK_INT_EQ(in.reminders[6].before_ms, 1);
    ok(TASK_INPUT_PATCH, "{\"reminders\":[]}");
    ok(TASK_INPUT_PATCH, "{\"reminders\":null}");
    CHECK_INT_EQ(in.n_reminders, 0);
    CHECK_INT_EQ(in.present, TASK_REMINDERS);
    /* "at" needs no due_at. */
    ok(TASK_INPUT_CREATE, "{\"title\":\"t\",\"reminders\":[{\"at\":\"2026-11-24T10:00:00Z\"}]}");
    CHECK_INT_EQ(in.reminders[0].at_ms, DUE_MS);
}

static void test_reminders_invalid(void)
{
    const char *one = "must have exactly one of before or at";
    only_error(TASK_INPUT_PATCH, "{\"reminders\":{}}", "reminders", "must be an array or null");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[\"PT15M\"]}", "reminders[0]",
               "must be an object with exactly one of before or at");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"at\":\"2026-11-24T10:00:00Z\"},null]}",
               "reminders[1]", "must be an object with exactly one of before or at");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{}]}", "reminders[0]", one);
    only_error(TASK_INPUT_PATCH,
               "{\"reminders\":[{\"before\":\"PT1M\",\"at\":\"2026-11-24T10:00:00Z\"}]}",
               "reminders[0]", one);
    only_error(TASK_INPUT_PATCH,
               "{\"reminders\":[{\"at\":\"2026-11-24T10:00:00Z\",\"remind_at\":\"x\"}]}",
               "reminders[0].remind_at", "read-only field");
    only_error(TASK_INPUT_PATCH,
               "{\"reminders\":[{\"before\":\"PT5M\",\"fired_at\":null}]}",
               "reminders[0].fired_at", "read-only field");
    only_error(TASK_INPUT_PATCH,
               "{\"reminders\":[{\"at\":\"2026-11-24T10:00:00Z\",\"when\":1}]}",
               "reminders[0].when", "unknown field");
    const char *dmsg = "must be an ISO 8601 duration such as PT15M, P1D or P1DT2H";
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"15 minutes\"}]}",
               "reminders[0].before", dmsg);
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"P1M\"}]}",
               "reminders[0].before", dmsg);
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"-PT15M\"}]}",
               "reminders[0].before", dmsg);
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":900}]}", "reminders[0].before",
               dmsg);
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":null}]}", "reminders[0].before",
               dmsg);
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"PT0S\"}]}",
               "reminders[0].before", "must be positive");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"P0D\"}]}",
               "reminders[0].before", "must be positive");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"P366D\"}]}",
               "reminders[0].before", "must be at most 365 days");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"P365DT0.001S\"}]}",
               "reminders[0].before", "must be at most 365 days");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"P53W\"}]}",
               "reminders[0].before", "must be at most 365 days");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"at\":\"2026-11-24 10:00\"}]}",
               "reminders[0].at", "must be an RFC 3339 date-time with Z or an offset");
    only_error(TASK_INPUT_PATCH, "{\"reminders\":[{\"at\":null}]}", "reminders[0].at",
               "must be an RFC 3339 date-time with Z or an offset");
}

static char *reminders_json(int n)
{
    size_t cap = 128 + (size_t)n * 32;
    char *s = malloc(cap);
    CHECK(s != NULL);
    size_t o = (size_t)snprintf(s, cap, "{\"due_at\":\"2026-11-24T10:00:00Z\",\"reminders\":[");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s{\"before\":\"PT%dM\"}", i ? "," : "", i + 1);
    snprintf(s + o, cap - o, "]}");
    return s;
}

static void test_reminders_limit(void)
{
    char *s = reminders_json(10);
    ok(TASK_INPUT_PATCH, s);
    CHECK_INT_EQ(in.n_reminders, 10);
    CHECK_INT_EQ(in.reminders[9].before_ms, 10 * 60000);
    free(s);
    s = reminders_json(11);
    only_error(TASK_INPUT_PATCH, s, "reminders", "must have at most 10 reminders");
    free(s);
}

static void test_before_reminder_needs_due_at(void)
{
    only_error(TASK_INPUT_CREATE, "{\"title\":\"t\",\"reminders\":[{\"before\":\"PT15M\"}]}",
               "reminders[0].before", "needs due_at");
    CHECK_INT_EQ(create("{\"title\":\"t\",\"reminders\":[{\"at\":\"2026-11-24T10:00:00Z\"},"
                        "{\"before\":\"PT5M\"},{\"before\":\"PT1H\"}]}"),
                 422);
    CHECK_INT_EQ(errs.n, 2);
    CHECK_STR_EQ(errs.items[0].field, "reminders[1].before");
    CHECK_STR_EQ(errs.items[1].field, "reminders[2].before");
    CHECK_STR_EQ(errs.items[1].message, "needs due_at");
    /* PATCH: only when due_at comes along. */
    ok(TASK_INPUT_PATCH, "{\"reminders\":[{\"before\":\"PT15M\"}]}");
    CHECK_INT_EQ(in.n_reminders, 1);
    only_error(TASK_INPUT_PATCH, "{\"due_at\":null,\"reminders\":[{\"before\":\"PT15M\"}]}",
               "reminders[0].before", "needs due_at");
    ok(TASK_INPUT_PATCH, "{\"due_at\":null,\"reminders\":[{\"at\":\"2026-11-24T10:00:00Z\"}]}");
    /* An extra key and the missing due_at are separate problems. */
    CHECK_INT_EQ(create("{\"title\":\"t\",\"reminders\":[{\"before\":\"PT1M\",\"remind_at\":\"x\"}]}"),
                 422);
    CHECK_INT_EQ(errs.n, 2);
    CHECK_STR_EQ(err_for("reminders[0].remind_at"), "read-only field");
    CHECK_STR_EQ(err_for("reminders[0].before"), "needs due_at");
}

/* ---- unknown and read-only fields ---- */

static void test_read_only_fields(void)
{
    static const char *const names[] = {"id",         "user_id", "created_at", "updated_at",
                                        "completed_at", "version", "series_id",  "occurrence"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char j[96];
        snprintf(j, sizeof j, "{\"title\":\"t\",\"%s\":1}", names[i]);
        only_error(TASK_INPUT_CREATE, j, names[i], "read-only field");
        snprintf(j, sizeof j, "{\"%s\":null}", names[i]);
        only_error(TASK_INPUT_PATCH, j, names[i], "read-only field");
        CHECK_INT_EQ(in.present, 0);
    }
}

static void test_unknown_fields(void)
{
    only_error(TASK_INPUT_CREATE, "{\"title\":\"t\",\"colour\":\"red\"}", "colour",
               "unknown field");
    only_error(TASK_INPUT_PATCH, "{\"Title\":\"t\"}", "Title", "unknown field");
    only_error(TASK_INPUT_PATCH, "{\"\":1}", "", "unknown field");
    only_error(TASK_INPUT_PATCH, "{\"remind_at\":1}", "remind_at", "unknown field");
    only_error(TASK_INPUT_PATCH, "{\"\xc3\xa9t\xc3\xa9\":1}", "\xc3\xa9t\xc3\xa9",
               "unknown field");
    /* Long names are cut at 64 bytes, on a character boundary. */
    char *s = repeat_json("{\"", "k", 200, "\":1}");
    char want[80];
    memset(want, 'k', 64);
    strcpy(want + 64, "...");
    only_error(TASK_INPUT_PATCH, s, want, "unknown field");
    free(s);
    s = repeat_json("{\"k", "\xc3\xa9", 100, "\":1}");
    memset(want, 0, sizeof want);
    want[0] = 'k';
    for (int i = 0; i < 31; i++)
        memcpy(want + 1 + 2 * i, "\xc3\xa9", 2);
    strcat(want, "...");
    only_error(TASK_INPUT_PATCH, s, want, "unknown field");
    free(s);
}

/* ---- many errors at once ---- */

static void test_all_errors_reported(void)
{
    int rc = create("{\"title\":\"  \",\"priority\":\"p0\",\"tags\":[1,\"a\",\"A\"],"
                    "\"foo\":1,\"id\":3,\"due_at\":\"bad\",\"completed\":\"no\","
                    "\"reminders\":[{\"before\":\"P1M\"},{\"at\":\"x\"}],"
                    "\"recurrence\":\"FREQ=DAILY;BYDAY=1MO\",\"timezone\":\"a b\","
                    "\"recurrence_from\":\"x\",\"description\":false,\"due_date\":null}");
    CHECK_INT_EQ(rc, 422);
    if (errs.n != 14)
        dump_errors();
    CHECK_INT_EQ(errs.n, 14);
    /* In input order; the duplicate "A" is dropped, not an error. */
    static const char *const fields[] = {
        "title", "priority", "tags[0]", "foo", "id", "due_at", "completed",
        "reminders[0].before", "reminders[1].at", "recurrence", "timezone", "recurrence_from",
        "description", "due_date"};
    for (int i = 0; i < 14; i++)
        CHECK_STR_EQ(errs.items[i].field, fields[i]);
    CHECK(err_for("tags[2]") == NULL);
    CHECK_STR_EQ(err_for("recurrence"),
                 "invalid RRULE: BYDAY ordinals are only allowed with MONTHLY or YEARLY");
    CHECK(errs.malformed == NULL);

    /* Missing title and a cross-field error come after the walk. */
    rc = create("{\"bogus\":true,\"recurrence\":\"FREQ=DAILY\"}");
    CHECK_INT_EQ(rc, 422);
    CHECK_INT_EQ(errs.n, 3);
    CHECK_STR_EQ(errs.items[0].field, "bogus");
    CHECK_STR_EQ(errs.items[1].field, "title");
    CHECK_STR_EQ(errs.items[2].field, "recurrence");
    CHECK_STR_EQ(errs.items[2].message, "needs due_at");
}

static void test_error_capacity(void)
{
    /* More bad fields than TASK_MAX_ERRORS: the first 32 are kept, the
     * answer is still 422, and every kept entry is intact. */
    char json[4096];
    size_t o = (size_t)snprintf(json, sizeof json, "{");
    for (int i = 0; i < 50; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s\"unknown_field_number_%02d\":%d",
                              i ? "," : "", i, i);
    snprintf(json + o, sizeof json - o, "}");
    CHECK_INT_EQ(patch(json), 422);
    CHECK_INT_EQ(errs.n, TASK_MAX_ERRORS);
    for (int i = 0; i < TASK_MAX_ERRORS; i++) {
        char want[64];
        snprintf(want, sizeof want, "unknown_field_number_%02d", i);
        CHECK_STR_EQ(errs.items[i].field, want);
        CHECK_STR_EQ(errs.items[i].message, "unknown field");
    }
    CHECK(errs.used <= sizeof errs.storage);

    /* Long names are cut, so 32 of them still fit in storage whole. */
    size_t cap = 200000;
    char *big = malloc(cap);
    CHECK(big != NULL);
    o = (size_t)snprintf(big, cap, "{");
    for (int i = 0; i < 40; i++) {
        o += (size_t)snprintf(big + o, cap - o, "%s\"%02d", i ? "," : "", i);
        for (int k = 0; k < 100; k++)
            big[o++] = 'x';
        o += (size_t)snprintf(big + o, cap - o, "\":0");
    }
    snprintf(big + o, cap - o, "}");
    CHECK_INT_EQ(patch(big), 422);
    free(big);
    CHECK_INT_EQ(errs.n, TASK_MAX_ERRORS);
    CHECK(errs.used <= sizeof errs.storage);
    for (int i = 0; i < errs.n; i++) {
        CHECK_INT_EQ(strlen(errs.items[i].field), 67);
        CHECK_STR_EQ(errs.items[i].message, "unknown field");
    }
}

/* ---- not an object, malformed ---- */

static void test_not_an_object(void)
{
    static const char *const bodies[] = {"[]", "[1,2]", "42", "\"title\"", "null", "true",
                                         " 3.5 "};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        only_error(TASK_INPUT_CREATE, bodies[i], "", "the body must be a JSON object");
        only_error(TASK_INPUT_PATCH, bodies[i], "", "the body must be a JSON object");
    }
}

static void malformed(const char *body, size_t len, const char *reason)
{
    task_input_free(&in);
    int rc = task_input_parse(body, len, TASK_INPUT_CREATE, NULL, NULL, &in, &errs);
    if (rc != 400)
        unit__diag_bytes("body", body, len);
    CHECK_INT_EQ(rc, 400);
    CHECK(errs.malformed != NULL);
    CHECK_INT_EQ(errs.n, 0);
    if (strncmp(errs.malformed, reason, strlen(reason)) != 0) {
        unit__diag_bytes("body", body, len);
        unit__diag_bytes("malformed", errs.malformed, strlen(errs.malformed));
        FAIL("unexpected reason");
    }
}

static void malformed_s(const char *body, const char *reason)
{
    malformed(body, strlen(body), reason);
}

static void test_malformed(void)
{
    malformed_s("", "unexpected end of JSON");
    malformed_s("   ", "unexpected end of JSON");
    malformed_s("{", "unexpected end of JSON");
    malformed_s("{\"title\":", "unexpected end of JSON");
    malformed_s("{\"title\":\"abc", "unexpected end of JSON");
    malformed_s("[1,2", "unexpected end of JSON");
    malformed_s("{\"a\":1,\"a\":2}", "duplicate object key");
    malformed_s("{\"title\":\"t\",\"title\":\"u\"}", "duplicate object key");
    malformed_s("{\"title\":\"\xff\"}", "invalid UTF-8");
    malformed_s("{\"title\":\"\xc3\"}", "invalid UTF-8");
    malformed_s("{\"title\":\"\xed\xa0\x80\"}", "invalid UTF-8"); /* encoded surrogate */
    malformed_s("{\"title\":\"\xc0\xaf\"}", "invalid UTF-8");     /* overlong */
    malformed_s("{\"\xff\":1}", "invalid UTF-8");
    malformed_s("{\"title\":\"\\u0000\"}", "\\u0000 is not allowed");
    malformed_s("{\"ti\\u0000tle\":\"t\"}", "\\u0000 is not allowed");
    malformed_s("{} x", "trailing data");
    malformed_s("{}{}", "trailing data");
    malformed_s("{'title':'t'}", "invalid JSON");
    malformed_s("{\"title\":\"t\",}", "invalid JSON");
    malformed_s("{\"title\":\"a\nb\"}", "invalid JSON"); /* raw control character */
    malformed_s("{\"title\":\"\\ud800\"}", "invalid JSON"); /* lone surrogate escape */
    malformed_s("{\"title\":\"\\x41\"}", "invalid JSON");
    malformed_s("{\"n\":1e999}", "number out of range");
    malformed_s("{\"n\":99999999999999999999}", "number out of range");
    malformed("{\"a\":1}\0", 8, "trailing data");
    malformed("\0{}", 3, ""); /* jansson reads a NUL byte as the end; any reason will do */
    CHECK(strstr(errs.malformed, "line 1") != NULL);
}

static void test_malformed_deep_nesting(void)
{
    size_t depth = 10000;
    char *s = malloc(depth * 2 + 1);
    CHECK(s != NULL);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    malformed(s, depth * 2, "nesting too deep");
    /* Inside an object as a field's value as well. */
    char *t = repeat_json("{\"tags\":", "[", depth, "");
    malformed(t, strlen(t), "nesting too deep");
    free(t);
    free(s);
    /* Nesting jansson allows is fine JSON, just a bad field. */
    only_error(TASK_INPUT_PATCH, "{\"tags\":[[[[\"a\"]]]]}", "tags[0]", "must be a string");
}

/* ---- ownership ---- */

static void test_free_is_idempotent(void)
{
    task_input_t z;
    memset(&z, 0, sizeof z);
    task_input_free(&z);
    task_input_free(&z);
    task_input_free(NULL);
    ok(TASK_INPUT_CREATE, "{\"title\":\"t\",\"description\":\"d\",\"tags\":[\"a\",\"b\"],"
                          "\"due_at\":\"2026-11-24T10:00:00Z\",\"recurrence\":\"FREQ=DAILY\"}");
    task_input_free(&in);
    CHECK(in.title == NULL);
    CHECK(in.description == NULL);
    CHECK(in.recurrence == NULL);
    CHECK(in.tags[0] == NULL);
    CHECK_INT_EQ(in.n_tags, 0);
    task_input_free(&in);
    /* A 422 leaves a partially filled struct that frees cleanly. */
    CHECK_INT_EQ(create("{\"title\":\"t\",\"description\":\"d\",\"tags\":[\"a\",\"A\"],\"x\":1}"), 422);
    CHECK_STR_EQ(in.title, "t");
    CHECK_INT_EQ(in.n_tags, 1);
    task_input_free(&in);
    task_input_free(&in);
}

static void test_strings_are_copies(void)
{
    /* The body buffer is not referenced after parsing. */
    char body[] = "{\"title\":\"abc\",\"tags\":[\"x\"],\"junk\":1}";
    task_input_free(&in);
    CHECK_INT_EQ(task_input_parse(body, strlen(body), TASK_INPUT_CREATE, NULL, NULL, &in, &errs),
                 422);
    memset(body, 'Z', sizeof body - 1);
    CHECK_STR_EQ(in.title, "abc");
    CHECK_STR_EQ(in.tags[0], "x");
    CHECK_STR_EQ(errs.items[0].field, "junk");
    task_input_free(&in);
}

static void test_parse_overwrites_previous_errors(void)
{
    CHECK_INT_EQ(create("{\"x\":1}"), 422);
    CHECK(errs.n > 0);
    CHECK_INT_EQ(create("{\"title\":\"t\"}"), 0);
    CHECK_INT_EQ(errs.n, 0);
    CHECK_INT_EQ(errs.used, 0);
    CHECK(errs.malformed == NULL);
    malformed_s("{", "unexpected end of JSON");
    CHECK_INT_EQ(create("{\"title\":\"t\"}"), 0);
    CHECK(errs.malformed == NULL);
    task_input_free(&in);
}

/* jansson's allocations fail after `oom_budget` more of them. (The parser's
 * own few mallocs are not covered: they would need a malloc wrapper.) */
static int oom_budget;

static void *budget_malloc(size_t n)
{
    if (oom_budget <= 0)
        return NULL;
    oom_budget--;
    return malloc(n);
}

static void test_out_of_memory(void)
{
    const char *j = "{\"title\":\"t\",\"tags\":[\"a\",\"b\"],\"x\":{\"y\":[1,2,3]}}";
    json_set_alloc_funcs(budget_malloc, free);
    int saw_500 = 0;
    for (int budget = 0; budget < 64; budget++) {
        oom_budget = budget;
        task_input_free(&in);
        int rc = task_input_parse(j, strlen(j), TASK_INPUT_CREATE, NULL, NULL, &in, &errs);
        /* jansson reports some failed allocations (inside its string
         * lexer) as syntax errors, so 400 is possible too; what matters is
         * no crash, no leak, and a 500 where jansson says "no memory". */
        if (rc != 500 && rc != 422 && rc != 400) {
            json_set_alloc_funcs(malloc, free);
            unit__diag("#   budget %d\n", budget);
            CHECK_INT_EQ(rc, 422);
        }
        saw_500 += rc == 500;
    }
    json_set_alloc_funcs(malloc, free);
    CHECK(saw_500 > 0);
    CHECK_INT_EQ(create(j), 422); /* "x" is unknown */
    task_input_free(&in);
}

UNIT_MAIN(UNIT_TEST(test_create_defaults), UNIT_TEST(test_replace_defaults),
          UNIT_TEST(test_create_all_fields), UNIT_TEST(test_patch_present_bits),
          UNIT_TEST(test_patch_nulls_clear), UNIT_TEST(test_title), UNIT_TEST(test_title_length),
          UNIT_TEST(test_utf8_length), UNIT_TEST(test_description), UNIT_TEST(test_completed),
          UNIT_TEST(test_priority), UNIT_TEST(test_tags), UNIT_TEST(test_tags_duplicates),
          UNIT_TEST(test_tags_limits), UNIT_TEST(test_due_at), UNIT_TEST(test_due_date_alias),
          UNIT_TEST(test_timezone), UNIT_TEST(test_timezone_callback),
          UNIT_TEST(test_recurrence), UNIT_TEST(test_recurrence_needs_due_at),
          UNIT_TEST(test_recurrence_from), UNIT_TEST(test_recurring_aliases),
          UNIT_TEST(test_reminders), UNIT_TEST(test_reminders_invalid),
          UNIT_TEST(test_reminders_limit), UNIT_TEST(test_before_reminder_needs_due_at),
          UNIT_TEST(test_read_only_fields), UNIT_TEST(test_unknown_fields),
          UNIT_TEST(test_all_errors_reported), UNIT_TEST(test_error_capacity),
          UNIT_TEST(test_not_an_object), UNIT_TEST(test_malformed),
          UNIT_TEST(test_malformed_deep_nesting), UNIT_TEST(test_free_is_idempotent),
          UNIT_TEST(test_strings_are_copies), UNIT_TEST(test_parse_overwrites_previous_errors),
          UNIT_TEST(test_out_of_memory))
