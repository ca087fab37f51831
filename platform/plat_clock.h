/*
 * plat_clock — the board's clocks.
 *
 * Monotonic time (CLOCK_MONOTONIC) drives every timeout, backoff and rate.
 * Wall time (CLOCK_REALTIME) is only recorded, together with whether the
 * system clock is synchronised: boards without a real-time clock boot in
 * 1970 (or at the last fake-hwclock save) and step forward when NTP answers,
 * so a receive time taken before synchronisation must not be trusted.
 *
 * "Synchronised" is decided by the mode set with plat_clock_set_sync_mode():
 *   AUTO  - the kernel's NTP status (adjtimex: not TIME_ERROR / STA_UNSYNC),
 *           or systemd-timesyncd's /run/systemd/timesync/synchronized flag;
 *           inside a container (/.dockerenv, /run/.containerenv,
 *           /run/systemd/container), where the kernel's flags are the host's
 *           and the clock is not ours to set, a wall clock not earlier than
 *           this release (2026-01-01) counts as synchronised;
 *   YES   - always trust the wall clock (boards with a battery-backed RTC);
 *   NO    - never trust it (tests).
 * The answer is cached for one second (cheap enough for the hot path).
 *
 * Threading: all functions are safe from any thread.
 */
#ifndef PLAT_CLOCK_H
#define PLAT_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum plat_clock_sync_mode { PLAT_CLOCK_SYNC_AUTO = 0, PLAT_CLOCK_SYNC_YES, PLAT_CLOCK_SYNC_NO };

int64_t plat_clock_mono_ns(void);
int64_t plat_clock_mono_ms(void);
int64_t plat_clock_wall_ms(void);
/* Sleeps ms milliseconds (less if a signal interrupts it). */
void plat_sleep_ms(int64_t ms);
/* A retry's next backoff: twice ms, at most max_ms. */
static inline int64_t plat_backoff_next(int64_t ms, int64_t max_ms)
{
    return ms * 2 < max_ms ? ms * 2 : max_ms;
}

enum plat_clock_source {
    PLAT_CLOCK_SOURCE_NONE = 0,
    PLAT_CLOCK_SOURCE_KERNEL,
    PLAT_CLOCK_SOURCE_TIMESYNCD,
    PLAT_CLOCK_SOURCE_CONTAINER,
    PLAT_CLOCK_SOURCE_CONFIG
};

void plat_clock_set_sync_mode(enum plat_clock_sync_mode mode);
bool plat_clock_synced(void);
/* What decided plat_clock_synced(): "kernel", "timesyncd", "container",
 * "config" (clock.synced = yes) or "none". */
const char *plat_clock_sync_source(void);

/* Formats epoch ms as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z").
 * buf must hold at least 32 bytes. Returns buf. */
char *plat_clock_format_rfc3339(int64_t epoch_ms, char *buf, size_t len);

/* Reads the kernel boot id (36 chars + NUL) into buf; "unknown" if unavailable. */
void plat_clock_boot_id(char *buf, size_t len);

#endif
