/* i64map: see i64map.h. */
#include "core/i64map.h"

#include <stdlib.h>
#include <string.h>

/* Sequence numbers are dense, so mix the bits before masking (splitmix64's
 * finaliser). */
static size_t slot_of(const i64map_t *m, int64_t key)
{
    uint64_t x = (uint64_t)key;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x & m->mask;
}

int i64map_init(i64map_t *m, size_t max_entries)
{
    memset(m, 0, sizeof *m);
    size_t slots = 16;
    while (slots < max_entries * 2)
        slots *= 2;
    m->keys = calloc(slots, sizeof *m->keys);
    m->values = calloc(slots, sizeof *m->values);
    m->used = calloc(slots, sizeof *m->used);
    if (!m->keys || !m->values || !m->used) {
        i64map_free(m);
        return -1;
    }
    m->mask = slots - 1;
    m->max_entries = max_entries;
    return 0;
}

void i64map_free(i64map_t *m)
{
    free(m->keys);
    free(m->values);
    free(m->used);
    memset(m, 0, sizeof *m);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const i64map_t *m, int64_t key)
{
    size_t i = slot_of(m, key);
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

int i64map_put(i64map_t *m, int64_t key, uint64_t value)
{
    if (!m->used)
        return -1;
    size_t i = find(m, key);
    if (!m->used[i]) {
        if (m->count >= m->max_entries)
            return -1;
        m->used[i] = true;
        m->keys[i] = key;
        m->count++;
    }
    m->values[i] = value;
    return 0;
}

bool i64map_get(const i64map_t *m, int64_t key, uint64_t *value)
{
    if (!m->used)
        return false;
    size_t i = find(m, key);
    if (!m->used[i])
        return false;
    if (value)
        *value = m->values[i];
    return true;
}

/* Empties slot i and moves later entries of its probe run back, so that no
 * lookup ever stops early at the hole. */
static void erase_slot(i64map_t *m, size_t i)
{
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->used[j])
            break;
        size_t home = slot_of(m, m->keys[j]);
        /* Entry j may move to the hole unless its home lies cyclically in
         * (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        m->keys[hole] = m->keys[j];
        m->values[hole] = m->values[j];
        hole = j;
    }
    m->used[hole] = false;
    m->count--;
}

bool i64map_remove(i64map_t *m, int64_t key)
{
    if (!m->used)
        return false;
    size_t i = find(m, key);
    if (!m->used[i])
        return false;
    erase_slot(m, i);
    return true;
}

size_t i64map_remove_if(i64map_t *m, bool (*drop)(int64_t key, uint64_t value, void *arg),
                        void *arg)
{
    size_t removed = 0;
    /* A backward shift can move an unvisited entry into the slot just
     * emptied, so that slot is looked at again. Entries only move to
     * earlier slots of their run; those that cross the wrap come from the
     * first slots, which were visited already. */
    for (size_t i = 0; m->used && i <= m->mask; i++) {
        while (m->used[i] && drop(m->keys[i], m->values[i], arg)) {
            erase_slot(m, i);
            removed++;
        }
    }
    return removed;
}

void i64map_clear(i64map_t *m)
{
    if (m->used)
        memset(m->used, 0, (m->mask + 1) * sizeof *m->used);
    m->count = 0;
}
