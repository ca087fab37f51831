/*
 * plat_align — integer time alignment shared by the speed layer, the
 * serving layer and the batch views: buckets are aligned to multiples of
 * their width since the Unix epoch, also for negative times (floor, not
 * C's truncation toward zero).
 *
 * Threading: pure.
 */
#ifndef PLAT_ALIGN_H
#define PLAT_ALIGN_H

#include <stdint.h>

/* floor(a / b) for b > 0. */
static inline int64_t plat_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The largest multiple of step <= t. */
static inline int64_t plat_align_down(int64_t t, int64_t step)
{
    return plat_floor_div(t, step) * step;
}

/* The smallest multiple of step >= t. */
static inline int64_t plat_align_up(int64_t t, int64_t step)
{
    return -plat_align_down(-t, step);
}

#endif
