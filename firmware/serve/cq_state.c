/*
 * cq_state — continuous queries' bookkeeping (design in cq_state.h).
 *
 * Ownership: struct cq_cells owns its slot array (cq_cells_init/free).
 */
#include "cq_state.h"

#include <stdlib.h>
#include <string.h>

#include "plat_align.h"

int64_t cq_bucket_start(int64_t ts_ms, int64_t step_ms)
{
    return plat_align_down(ts_ms, step_ms);
}

int64_t cq_close_at(int64_t t, const struct cq_timing *tm)
{
    return t + tm->step_ms + tm->grace_ms;
}

bool cq_too_late(int64_t t, const struct cq_timing *tm, int64_t now_ms)
{
    return now_ms >= cq_close_at(t, tm) + tm->lateness_ms;
}

el_status cq_cells_init(struct cq_cells *c, uint32_t limit)
{
    uint32_t slots = 4;
    while (slots < 2 * limit && slots < (1u << 30))
        slots <<= 1;
    memset(c, 0, sizeof *c);
    c->slot = calloc(slots, sizeof c->slot[0]);
    if (!c->slot)
        return EL_NOMEM;
    c->mask = slots - 1;
    c->limit = limit < slots / 2 ? limit : slots / 2;
    return EL_OK;
}

void cq_cells_free(struct cq_cells *c)
{
    free(c->slot);
    memset(c, 0, sizeof *c);
}

void cq_cells_clear(struct cq_cells *c)
{
    memset(c->slot, 0, ((size_t)c->mask + 1) * sizeof c->slot[0]);
    c->n = 0;
}

static uint32_t home(const struct cq_cells *c, uint32_t series, int64_t t)
{
    uint64_t h = (uint64_t)t * 0x9E3779B97F4A7C15u ^ (uint64_t)series * 0xC2B2AE3D27D4EB4Fu;
    return (uint32_t)(h >> 32) & c->mask;
}

struct cq_cell *cq_cells_find(struct cq_cells *c, uint32_t series, int64_t t)
{
    for (uint32_t i = home(c, series, t);; i = (i + 1) & c->mask) {
        struct cq_cell *s = &c->slot[i];
        if (s->state == CQ_FREE)
            return NULL;
        if (s->series == series && s->t == t)
            return s;
    }
}

bool cq_cells_note(struct cq_cells *c, uint32_t series, int64_t t, int64_t seq)
{
    uint32_t i = home(c, series, t);
    for (;; i = (i + 1) & c->mask) {
        struct cq_cell *s = &c->slot[i];
        if (s->state == CQ_FREE)
            break;
        if (s->series == series && s->t == t) {
            if (s->state == CQ_PUBLISHED)
                s->state = CQ_DIRTY;
            s->since++;
            s->changed = 1;
            s->noted = seq > s->noted ? seq : s->noted;
            return true;
        }
    }
    if (c->n == c->limit)
        return false;
    c->slot[i] = (struct cq_cell){
        .series = series, .state = CQ_PENDING, .changed = 1, .since = 1, .t = t, .noted = seq};
    c->n++;
    return true;
}

enum cq_action cq_cell_due(const struct cq_cell *cell, const struct cq_timing *tm, int64_t now_ms,
                           bool open)
{
    bool closed = now_ms >= cq_close_at(cell->t, tm);
    switch ((enum cq_cell_state)cell->state) {
    case CQ_FREE: return CQ_NONE;
    case CQ_PENDING:
        if (closed)
            return CQ_FINAL;
        return open && cell->changed ? CQ_OPEN : CQ_NONE;
    case CQ_DIRTY: return CQ_CORRECTION;
    case CQ_PUBLISHED: return cq_too_late(cell->t, tm, now_ms) ? CQ_EXPIRE : CQ_NONE;
    }
    return CQ_NONE;
}

bool cq_cell_answer_ok(struct cq_cell *cell, int64_t answer_seq)
{
    if (answer_seq >= cell->noted || cell->tries >= CQ_MAX_TRIES)
        return true;
    cell->tries++;
    return false;
}

void cq_cell_done(struct cq_cell *cell, enum cq_action a, int64_t seq)
{
    cell->tries = 0;
    switch (a) {
    case CQ_OPEN: cell->changed = 0; break;
    case CQ_CORRECTION: cell->revision++; /* fall through */
    case CQ_FINAL:
        cell->state = CQ_PUBLISHED;
        cell->since = 0;
        cell->changed = 0;
        cell->seq = seq;
        break;
    case CQ_NONE:
    case CQ_EXPIRE: break;
    }
}

void cq_cells_remove_at(struct cq_cells *c, uint32_t i)
{
    uint32_t hole = i;
    c->slot[hole].state = CQ_FREE;
    c->n--;
    for (uint32_t j = (hole + 1) & c->mask; c->slot[j].state != CQ_FREE; j = (j + 1) & c->mask) {
        uint32_t h = home(c, c->slot[j].series, c->slot[j].t);
        /* j may move into the hole if its home is not in (hole, j] cyclically */
        bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (stays)
            continue;
        c->slot[hole] = c->slot[j];
        c->slot[j].state = CQ_FREE;
        hole = j;
    }
}

void cq_tokens_init(struct cq_tokens *t, int rate_per_s, int64_t now_ms)
{
    t->rate = rate_per_s > 0 ? rate_per_s : 1;
    t->tokens = t->rate;
    t->last_ms = now_ms;
}

void cq_tokens_give_back(struct cq_tokens *t)
{
    t->tokens = t->tokens + 1.0 < t->rate ? t->tokens + 1.0 : t->rate;
}

bool cq_tokens_take(struct cq_tokens *t, int64_t now_ms)
{
    if (now_ms > t->last_ms) {
        t->tokens += (double)(now_ms - t->last_ms) * t->rate / 1000.0;
        if (t->tokens > t->rate)
            t->tokens = t->rate;
        t->last_ms = now_ms;
    }
    if (t->tokens < 1.0)
        return false;
    t->tokens -= 1.0;
    return true;
}
