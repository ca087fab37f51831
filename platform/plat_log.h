/*
 * plat_log — levelled logging to stderr, journald-friendly.
 *
 * Lines are written with a single write(2) each, prefixed by the sd-daemon
 * level marker ("<3>" .. "<7>") when stderr is the journal (JOURNAL_STREAM set)
 * and by a plain level word otherwise, so journald keeps the level.
 * plat_log_limited() is the rate-limited form for per-message problems (bad
 * payloads): at most one line per key per interval, with a count of what was
 * suppressed.
 *
 * Threading: any thread; the level is an atomic, the rate limiter is per
 * caller-owned struct (one owner thread).
 */
#ifndef PLAT_LOG_H
#define PLAT_LOG_H

#include <stdint.h>

enum plat_log_level { PLAT_LOG_ERROR = 0, PLAT_LOG_WARN, PLAT_LOG_INFO, PLAT_LOG_DEBUG };

void plat_log_set_level(enum plat_log_level level);
enum plat_log_level plat_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int plat_log_level_parse(const char *name);

void plat_log(enum plat_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) plat_log(PLAT_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) plat_log(PLAT_LOG_WARN, __VA_ARGS__)
#define log_info(...) plat_log(PLAT_LOG_INFO, __VA_ARGS__)
#define log_debug(...) plat_log(PLAT_LOG_DEBUG, __VA_ARGS__)

/* Rate limiter: caller-owned, zero-initialise. */
struct plat_log_limit {
    int64_t last_mono_ms;
    uint64_t suppressed;
};

/* Logs at most once per interval_ms; reports how many were suppressed. */
void plat_log_limited(struct plat_log_limit *lim, int64_t interval_ms, enum plat_log_level level,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
