/* plat_clock — monotonic/wall clocks and clock-synchronisation state (see plat_clock.h). */
#include "plat_clock.h"
#include "plat_time.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

static _Atomic int sync_mode = PLAT_CLOCK_SYNC_AUTO;
static _Atomic int64_t sync_checked_ms = -1000000;
static _Atomic bool sync_cached = false;

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t plat_clock_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int64_t plat_clock_mono_ms(void)
{
    return clock_ns(CLOCK_MONOTONIC) / 1000000LL;
}

int64_t plat_clock_wall_ms(void)
{
    return clock_ns(CLOCK_REALTIME) / 1000000LL;
}

void plat_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void plat_clock_set_sync_mode(enum plat_clock_sync_mode mode)
{
    atomic_store(&sync_mode, (int)mode);
    atomic_store(&sync_checked_ms, -1000000);
}

/* 2026-01-01: no reading of this build can be older. A wall clock before it
 * was never set (a board without RTC boots in 1970 or at its last
 * fake-hwclock save). */
#define NOT_BEFORE_MS INT64_C(1767225600000)

static _Atomic int sync_source = PLAT_CLOCK_SOURCE_NONE;

static bool in_container(void)
{
    return access("/.dockerenv", F_OK) == 0 || access("/run/.containerenv", F_OK) == 0 ||
           access("/run/systemd/container", F_OK) == 0;
}

static enum plat_clock_source kernel_says_synced(void)
{
    /* Tests (libfaketime cannot fake adjtimex): the file's existence is the
     * synchronisation state. */
    const char *fault = getenv("EDGELAMBDA_FAULT_CLOCK_SYNCED_FILE");
    if (fault && fault[0])
        return access(fault, F_OK) == 0 ? PLAT_CLOCK_SOURCE_KERNEL : PLAT_CLOCK_SOURCE_NONE;
    struct timex tx;
    memset(&tx, 0, sizeof tx);
    int state = adjtimex(&tx);
    if (state >= 0 && state != TIME_ERROR && !(tx.status & STA_UNSYNC))
        return PLAT_CLOCK_SOURCE_KERNEL;
    /* systemd-timesyncd touches this file once it has synchronised. */
    if (access("/run/systemd/timesync/synchronized", F_OK) == 0)
        return PLAT_CLOCK_SOURCE_TIMESYNCD;
    /* A container shares the host's kernel: its NTP flags describe the
     * host's discipline loop (often unset on hosts that take time from a
     * hypervisor), and the container could not set the clock anyway. So
     * there the clock is trusted once it is plausible: not before this
     * build. A host that booted without a clock still reads as unset. */
    if (in_container() && plat_clock_wall_ms() >= NOT_BEFORE_MS)
        return PLAT_CLOCK_SOURCE_CONTAINER;
    return PLAT_CLOCK_SOURCE_NONE;
}

bool plat_clock_synced(void)
{
    int mode = atomic_load(&sync_mode);
    if (mode == PLAT_CLOCK_SYNC_YES)
        return true;
    if (mode == PLAT_CLOCK_SYNC_NO)
        return false;
    int64_t now = plat_clock_mono_ms();
    if (now - atomic_load(&sync_checked_ms) >= 1000) {
        enum plat_clock_source src = kernel_says_synced();
        atomic_store(&sync_source, (int)src);
        atomic_store(&sync_cached, src != PLAT_CLOCK_SOURCE_NONE);
        atomic_store(&sync_checked_ms, now);
    }
    return atomic_load(&sync_cached);
}

const char *plat_clock_sync_source(void)
{
    static const char *const names[] = {"none", "kernel", "timesyncd", "container", "config"};
    int mode = atomic_load(&sync_mode);
    if (mode != PLAT_CLOCK_SYNC_AUTO)
        return mode == PLAT_CLOCK_SYNC_YES ? "config" : "none";
    (void)plat_clock_synced();
    int src = atomic_load(&sync_source);
    return src >= 0 && src <= PLAT_CLOCK_SOURCE_CONFIG ? names[src] : "none";
}

char *plat_clock_format_rfc3339(int64_t epoch_ms, char *buf, size_t len)
{
    if (plat_time_format_rfc3339(epoch_ms, PLAT_TIME_MS_ALWAYS, buf, len) == 0 && len > 0)
        buf[0] = '\0';
    return buf;
}

void plat_clock_boot_id(char *buf, size_t len)
{
    const char *fault = getenv("EDGELAMBDA_FAULT_BOOT_ID"); /* tests: "another boot" */
    if (fault && fault[0]) {
        snprintf(buf, len, "%s", fault);
        return;
    }
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f || !fgets(buf, (int)len, f)) {
        snprintf(buf, len, "unknown");
    } else {
        buf[strcspn(buf, "\n")] = '\0';
    }
    if (f)
        fclose(f);
}
