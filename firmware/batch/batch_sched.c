/*
 * batch_sched — the batch scheduler's decision (design in batch_sched.h).
 */
#include "batch_sched.h"

#include <string.h>

#define DAY_MS 86400000LL

el_status batch_schedule_parse(const char *spec, int64_t *every_ms, int *minute_of_day)
{
    *every_ms = 0;
    *minute_of_day = -1;
    if (!spec || !spec[0])
        return EL_OK;
    if (strncmp(spec, "every", 5) == 0 && (spec[5] == ' ' || spec[5] == '\t')) {
        const char *p = spec + 5;
        int64_t n = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p < '0' || *p > '9')
            return EL_INVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
            n = n * 10 + (*p - '0');
            if (n > BATCH_SCHEDULE_MAX_S)
                return EL_INVAL;
        }
        int64_t unit_s = p[0] == 's'   ? 1
                         : p[0] == 'm' ? 60
                         : p[0] == 'h' ? 3600
                         : p[0] == 'd' ? 86400
                                       : 0;
        if (unit_s == 0 || p[1] != '\0' || n < 1 || n > BATCH_SCHEDULE_MAX_S / unit_s)
            return EL_INVAL;
        *every_ms = n * unit_s * 1000;
        return EL_OK;
    }
    if (strlen(spec) == 5 && spec[2] == ':') {
        for (int i = 0; i < 5; i++)
            if (i != 2 && (spec[i] < '0' || spec[i] > '9'))
                return EL_INVAL;
        int h = (spec[0] - '0') * 10 + (spec[1] - '0'), m = (spec[3] - '0') * 10 + (spec[4] - '0');
        if (h < 24 && m < 60) {
            *minute_of_day = h * 60 + m;
            return EL_OK;
        }
    }
    return EL_INVAL;
}

el_status batch_sched_configure(struct batch_sched *s, const char *schedule, int idle_cpu_pct,
                                double idle_ingest_rate, int idle_for_s, int max_lag_s)
{
    int64_t every_ms;
    int minute_of_day;
    if (batch_schedule_parse(schedule, &every_ms, &minute_of_day) != EL_OK)
        return EL_INVAL;
    s->idle_cpu_pct = idle_cpu_pct;
    s->idle_ingest_rate = idle_ingest_rate;
    s->idle_for_ms = idle_for_s * 1000LL;
    s->max_lag_ms = max_lag_s * 1000LL;
    s->schedule_every_ms = every_ms;
    s->schedule_minute_of_day = minute_of_day;
    return EL_OK;
}

el_status batch_sched_init(struct batch_sched *s, const char *schedule, int idle_cpu_pct,
                           double idle_ingest_rate, int idle_for_s, int max_lag_s,
                           int64_t now_mono_ms)
{
    memset(s, 0, sizeof *s);
    s->last_run_end_ms = now_mono_ms;
    s->last_schedule_ms = now_mono_ms;
    s->last_daily_day = -1;
    return batch_sched_configure(s, schedule, idle_cpu_pct, idle_ingest_rate, idle_for_s,
                                 max_lag_s);
}

static bool schedule_due(struct batch_sched *s, const struct batch_sched_input *in)
{
    if (s->schedule_every_ms > 0 && in->now_mono_ms - s->last_schedule_ms >= s->schedule_every_ms) {
        s->last_schedule_ms = in->now_mono_ms;
        return true;
    }
    if (s->schedule_minute_of_day >= 0 && in->clock_synced && in->wall_ms >= 0) {
        int64_t day = in->wall_ms / DAY_MS;
        int minute = (int)((in->wall_ms % DAY_MS) / 60000);
        if (minute == s->schedule_minute_of_day && day != s->last_daily_day) {
            s->last_daily_day = day;
            return true;
        }
    }
    return false;
}

const char *batch_sched_decide(struct batch_sched *s, const struct batch_sched_input *in)
{
    int64_t now = in->now_mono_ms;
    if (in->running)
        s->last_run_end_ms = now;
    bool idle = in->busy_pct >= 0 && in->busy_pct < s->idle_cpu_pct &&
                in->ingest_rate < s->idle_ingest_rate;
    if (!idle)
        s->idle_since_ms = 0;
    else if (s->idle_since_ms == 0)
        s->idle_since_ms = now;
    if (in->running || !in->uncovered)
        return NULL;
    if (schedule_due(s, in))
        return "schedule";
    if (s->idle_since_ms != 0 && now - s->idle_since_ms >= s->idle_for_ms) {
        s->idle_since_ms = now; /* the next idle run needs another idle_for_s */
        return "idle";
    }
    if (now - s->last_run_end_ms >= s->max_lag_ms) {
        s->last_run_end_ms = now; /* at most one lag run per max_lag_s, whatever it finds */
        return "max_lag";
    }
    return NULL;
}
