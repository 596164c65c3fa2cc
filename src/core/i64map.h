/* i64map: a bounded hash map from int64 keys to uint64 values.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so lookups stay short however many keys come and go). The
 * capacity is fixed at creation: a put past max_entries fails instead of
 * growing, which is how callers keep their queues bounded. */
#ifndef TODO_CORE_I64MAP_H
#define TODO_CORE_I64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct i64map {
    int64_t *keys;
    uint64_t *values;
    bool *used;
    size_t mask;        /* slots - 1; slots is a power of two */
    size_t count;
    size_t max_entries; /* at most half the slots */
} i64map_t;

/* 0, or -1 when out of memory. */
int i64map_init(i64map_t *m, size_t max_entries);
void i64map_free(i64map_t *m);
/* Inserts or replaces. 0, or -1 when full (a new key past max_entries). */
int i64map_put(i64map_t *m, int64_t key, uint64_t value);
/* True when present; *value (if not NULL) gets its value. */
bool i64map_get(const i64map_t *m, int64_t key, uint64_t *value);
/* True when it was present. */
bool i64map_remove(i64map_t *m, int64_t key);
/* Removes every entry for which drop(key, value, arg) is true; returns how
 * many. */
size_t i64map_remove_if(i64map_t *m, bool (*drop)(int64_t key, uint64_t value, void *arg),
                        void *arg);
void i64map_clear(i64map_t *m);

#endif
