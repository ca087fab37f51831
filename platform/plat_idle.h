/*
 * plat_idle — how busy the board's CPUs are, from /proc/stat deltas, for
 * the batch layer's idle windows (docs/DESIGN.md §6).
 *
 * Threading: a struct plat_idle belongs to its caller's thread.
 */
#ifndef PLAT_IDLE_H
#define PLAT_IDLE_H

#include <stdbool.h>
#include <stdint.h>

struct plat_idle {
    uint64_t last_total, last_idle;
    bool primed;
};

/* CPU busy percentage since the previous call (0..100); -1 on the first call
 * or when /proc/stat cannot be read. With EDGELAMBDA_FAULT_BUSY_PCT_FILE set
 * (tests), the number in that file instead. */
double plat_idle_busy_pct(struct plat_idle *pi);

#endif
