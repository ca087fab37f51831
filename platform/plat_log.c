/* plat_log — levelled, rate-limited logging to stderr (see plat_log.h). */
#include "plat_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plat_clock.h"
#include "plat_time.h"

static _Atomic int log_level = PLAT_LOG_INFO;

void plat_log_set_level(enum plat_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum plat_log_level plat_log_get_level(void)
{
    return (enum plat_log_level)atomic_load(&log_level);
}

int plat_log_level_parse(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

__attribute__((format(printf, 2, 0))) static void log_vwrite(enum plat_log_level level,
                                                             const char *fmt, va_list ap)
{
    static const char *const words[] = {"error", "warn", "info", "debug"};
    static const char *const sd_prefix[] = {"<3>", "<4>", "<6>", "<7>"};
    char line[1024];
    size_t n;
    int k;

    if (getenv("JOURNAL_STREAM")) { /* journald stamps the time itself */
        k = snprintf(line, sizeof line, "%s", sd_prefix[level]);
    } else {
        char when[PLAT_TIME_RFC3339_MAX];
        if (plat_time_format_rfc3339(plat_clock_wall_ms(), PLAT_TIME_MS_ALWAYS, when,
                                     sizeof when) == 0)
            when[0] = '\0';
        k = snprintf(line, sizeof line, "%s%sedgelambda %s: ", when, when[0] ? " " : "",
                     words[level]);
    }
    n = k > 0 ? (size_t)k : 0;
    k = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (k > 0)
        n += (size_t)k < sizeof line - n ? (size_t)k : sizeof line - n - 1;
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so concurrent threads never interleave within a line. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void plat_log(enum plat_log_level level, const char *fmt, ...)
{
    va_list ap;
    if ((int)level > atomic_load(&log_level))
        return;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}

void plat_log_limited(struct plat_log_limit *lim, int64_t interval_ms, enum plat_log_level level,
                      const char *fmt, ...)
{
    va_list ap;
    int64_t now = plat_clock_mono_ms();
    if ((int)level > atomic_load(&log_level))
        return;
    if (lim->last_mono_ms != 0 && now - lim->last_mono_ms < interval_ms) {
        lim->suppressed++;
        return;
    }
    if (lim->suppressed > 0)
        plat_log(level, "(%llu similar messages suppressed)", (unsigned long long)lim->suppressed);
    lim->suppressed = 0;
    lim->last_mono_ms = now;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
