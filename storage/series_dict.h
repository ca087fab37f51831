/*
 * series_dict — the series dictionary: series name <-> dense id (1..N), the
 * in-memory mirror of the master log's `series` table.
 *
 * DESIGN. An array of entries indexed by id - 1 (capacity max_series, fixed
 * at creation) and an open-addressing hash table of ids (a power of two >=
 * 2 * max_series slots, linear probing) keyed by the name's 64-bit FNV-1a
 * hash. Each name is one malloc'ed copy, made when the series is first
 * added: bounded by max_series, never per message. Lookups allocate nothing.
 * Ids are dense and never reused; series_dict_truncate forgets the newest
 * ids (a rolled-back transaction) and rebuilds the table.
 *
 * Threading: one owner thread per dictionary. The master log writer (core)
 * and every serving thread each keep their own (the latter filled from the
 * `series` table through their own read connection).
 */
#ifndef EL_SERIES_DICT_H
#define EL_SERIES_DICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

struct series_dict;

EL_MUST_CHECK el_status series_dict_new(uint32_t max_series, struct series_dict **out);
void series_dict_free(struct series_dict *d);

/* Adds name (len bytes, no NUL needed) with id; id must be count + 1 or
 * above (dense ids are the caller's contract; gaps are allowed for a
 * reader). EL_FULL beyond max_series, EL_NOMEM if the copy fails. */
EL_MUST_CHECK el_status series_dict_add(struct series_dict *d, const char *name, size_t len,
                                        uint32_t id);
/* Finds a name; false if absent. */
bool series_dict_find(const struct series_dict *d, const char *name, size_t len, uint32_t *id);
/* Name of id (NUL-terminated, valid until truncated or freed), NULL if unknown. */
const char *series_dict_name(const struct series_dict *d, uint32_t id);
size_t series_dict_name_len(const struct series_dict *d, uint32_t id);
/* Highest id added (ids 1..count). */
uint32_t series_dict_count(const struct series_dict *d);
uint32_t series_dict_capacity(const struct series_dict *d);
/* Forgets every id above count. */
void series_dict_truncate(struct series_dict *d, uint32_t count);

#endif
