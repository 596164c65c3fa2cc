/* task_input: a task's JSON input, validated against every field rule of
 * docs/api.md, with one error entry per bad field.
 *
 * Pure: jansson for JSON, no I/O. Whether a time-zone name is known is
 * asked through a callback (the service checks PostgreSQL's list). */
#ifndef TODO_API_TASK_INPUT_H
#define TODO_API_TASK_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/problem.h"

typedef enum task_input_mode {
    TASK_INPUT_CREATE,  /* POST: absent fields take defaults; title required */
    TASK_INPUT_REPLACE, /* PUT: same rules as CREATE */
    TASK_INPUT_PATCH,   /* merge patch: absent = unchanged, null = cleared */
} task_input_mode_t;

typedef enum task_field {
    TASK_TITLE = 1u << 0,
    TASK_DESCRIPTION = 1u << 1,
    TASK_COMPLETED = 1u << 2,
    TASK_PRIORITY = 1u << 3,
    TASK_TAGS = 1u << 4,
    TASK_DUE_AT = 1u << 5,
    TASK_TIMEZONE = 1u << 6,
    TASK_RECURRENCE = 1u << 7,
    TASK_RECURRENCE_FROM = 1u << 8,
    TASK_REMINDERS = 1u << 9,
} task_field_t;

#define TASK_ALL_FIELDS 0x3FFu
#define TASK_MAX_TAGS 20
#define TASK_MAX_REMINDERS 10
#define TASK_MAX_ERRORS 32

typedef enum task_priority {
    TASK_PRIORITY_LOW,
    TASK_PRIORITY_MEDIUM,
    TASK_PRIORITY_HIGH,
    TASK_PRIORITY_URGENT,
} task_priority_t;

typedef struct task_reminder {
    bool is_before;       /* {"before": duration} rather than {"at": time} */
    int64_t before_ms;    /* is_before: positive, at most 365 days (a day = 24 h) */
    int64_t before_days;  /* is_before: its calendar days (weeks as 7) ... */
    int64_t before_time_ms; /* ... and its exact hours, minutes and seconds */
    int64_t at_ms;        /* !is_before: the instant */
} task_reminder_t;

typedef struct task_input {
    /* Fields the input sets. CREATE and REPLACE set every bit (absent fields
     * get defaults); PATCH sets the bits of the fields present, null or not. */
    unsigned present;
    char *title;         /* trimmed; never NULL when TASK_TITLE is present */
    char *description;   /* NULL = null */
    bool completed;
    task_priority_t priority;
    char *tags[TASK_MAX_TAGS]; /* trimmed; unique ignoring ASCII case (a
                                * later duplicate is dropped) */
    int n_tags;
    bool due_at_null;
    int64_t due_at_ms;
    char timezone[64];   /* PATCH null = "UTC" */
    char *recurrence;    /* canonical RRULE text; NULL = null */
    bool recurrence_from_completion;
    task_reminder_t reminders[TASK_MAX_REMINDERS];
    int n_reminders;
} task_input_t;

typedef struct task_input_errors {
    http_field_error_t items[TASK_MAX_ERRORS];
    int n;
    /* Messages and field names that are not string literals live here. */
    char storage[4096];
    size_t used;
    const char *malformed; /* set when the JSON itself is bad (400), with
                            * the line and column */
} task_input_errors_t;

/* name is NUL-terminated, 1-63 bytes. When the callback is NULL any name of
 * [A-Za-z0-9_+/-] characters is accepted. */
typedef bool (*task_tz_known_fn)(const char *name, void *ctx);

/* Parses and validates. Returns 0 when valid, 400 when the body is not JSON
 * (errs->malformed says why), 422 when it is JSON but invalid (errs lists
 * every bad field, in input order, then "title" when it is required and
 * missing, then the cross-field "needs due_at" ones), or 500 when memory runs
 * out. out and errs are overwritten (free a previous out first); out must be
 * freed with task_input_free() in every case. Field names are the input's
 * ("due_date", "tags[2]", "reminders[0].before"; "" for a body that is not an
 * object); they and the messages point into errs->storage or at literals, so
 * they live as long as errs. At most TASK_MAX_ERRORS are kept; errs->n is
 * always valid. */
int task_input_parse(const char *json, size_t len, task_input_mode_t mode,
                     task_tz_known_fn tz_known, void *tz_ctx, task_input_t *out,
                     task_input_errors_t *errs);
/* Frees the strings; safe on a zeroed or partly filled struct, on NULL, and
 * twice. */
void task_input_free(task_input_t *in);

/* Number of Unicode code points in valid UTF-8 text. */
size_t task_utf8_length(const char *s, size_t len);

#endif
