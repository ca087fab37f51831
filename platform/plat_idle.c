/* plat_idle — CPU busy percentage from /proc/stat (see plat_idle.h). */
#include "plat_idle.h"

#include <stdio.h>
#include <stdlib.h>

/* Tests: EDGELAMBDA_FAULT_BUSY_PCT_FILE names a file holding the busy
 * percentage to report, so a test drives "the board is busy" without
 * loading (or needing to own) the whole machine. */
static double injected_busy_pct(const char *path)
{
    double pct = -1;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%lf", &pct) != 1)
            pct = -1;
        fclose(f);
    }
    return pct;
}

double plat_idle_busy_pct(struct plat_idle *pi)
{
    unsigned long long v[10] = {0};
    const char *fault = getenv("EDGELAMBDA_FAULT_BUSY_PCT_FILE");
    if (fault && fault[0])
        return injected_busy_pct(fault);
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 4)
        return -1;
    uint64_t total = 0;
    for (int i = 0; i < 8 && i < n; i++) /* guest time is already in user */
        total += v[i];
    uint64_t idle = v[3] + v[4]; /* idle + iowait */
    double pct = -1;
    if (pi->primed && total > pi->last_total) {
        double dt = (double)(total - pi->last_total);
        double di = (double)(idle - pi->last_idle);
        pct = 100.0 * (1.0 - di / dt);
    }
    pi->last_total = total;
    pi->last_idle = idle;
    pi->primed = true;
    return pct;
}
