/*
 * series_dict — name <-> id dictionary (design in series_dict.h).
 *
 * Ownership: the dictionary owns its entry array, its table and one copy of
 * each name.
 */
#include "series_dict.h"

#include <stdlib.h>
#include <string.h>

#include "plat_hash.h"

struct entry {
    char *name; /* NULL: no such id */
    uint32_t len;
    uint64_t hash;
};

struct series_dict {
    uint32_t max_series, count;
    struct entry *entries; /* index id - 1 */
    uint32_t *table;       /* ids, 0 = empty */
    uint32_t mask;
};

el_status series_dict_new(uint32_t max_series, struct series_dict **out)
{
    struct series_dict *d = calloc(1, sizeof *d);
    *out = NULL;
    if (!d)
        return EL_NOMEM;
    uint32_t cap = 16;
    while (cap < 2u * max_series)
        cap <<= 1;
    d->max_series = max_series;
    d->mask = cap - 1;
    d->table = calloc(cap, sizeof d->table[0]);
    d->entries = calloc(max_series ? max_series : 1, sizeof d->entries[0]);
    if (!d->table || !d->entries) {
        series_dict_free(d);
        return EL_NOMEM;
    }
    *out = d;
    return EL_OK;
}

void series_dict_free(struct series_dict *d)
{
    if (!d)
        return;
    if (d->entries)
        for (uint32_t i = 0; i < d->count; i++)
            free(d->entries[i].name);
    free(d->entries);
    free(d->table);
    free(d);
}

static uint32_t *slot(const struct series_dict *d, const char *name, size_t len, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & d->mask;; i = (i + 1) & d->mask) {
        uint32_t id = d->table[i];
        if (id == 0)
            return &d->table[i];
        const struct entry *e = &d->entries[id - 1];
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return &d->table[i];
    }
}

el_status series_dict_add(struct series_dict *d, const char *name, size_t len, uint32_t id)
{
    if (id == 0 || id > d->max_series)
        return EL_FULL;
    struct entry *e = &d->entries[id - 1];
    if (e->name)
        return EL_INVAL;
    e->name = malloc(len + 1);
    if (!e->name)
        return EL_NOMEM;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    e->len = (uint32_t)len;
    e->hash = plat_hash64(PLAT_HASH64_INIT, name, len);
    *slot(d, name, len, e->hash) = id;
    if (id > d->count)
        d->count = id;
    return EL_OK;
}

bool series_dict_find(const struct series_dict *d, const char *name, size_t len, uint32_t *id)
{
    uint32_t found = *slot(d, name, len, plat_hash64(PLAT_HASH64_INIT, name, len));
    if (found == 0)
        return false;
    *id = found;
    return true;
}

const char *series_dict_name(const struct series_dict *d, uint32_t id)
{
    if (id == 0 || id > d->count)
        return NULL;
    return d->entries[id - 1].name;
}

size_t series_dict_name_len(const struct series_dict *d, uint32_t id)
{
    if (id == 0 || id > d->count || !d->entries[id - 1].name)
        return 0;
    return d->entries[id - 1].len;
}

uint32_t series_dict_count(const struct series_dict *d)
{
    return d->count;
}

uint32_t series_dict_capacity(const struct series_dict *d)
{
    return d->max_series;
}

void series_dict_truncate(struct series_dict *d, uint32_t count)
{
    if (count >= d->count)
        return;
    for (uint32_t id = count + 1; id <= d->count; id++) {
        free(d->entries[id - 1].name);
        memset(&d->entries[id - 1], 0, sizeof d->entries[0]);
    }
    d->count = count;
    memset(d->table, 0, ((size_t)d->mask + 1) * sizeof d->table[0]);
    for (uint32_t id = 1; id <= count; id++) {
        const struct entry *e = &d->entries[id - 1];
        if (e->name)
            *slot(d, e->name, e->len, e->hash) = id;
    }
}
