/* plat_systemd — sd_notify wrappers (see plat_systemd.h). */
#include "plat_systemd.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>

int64_t plat_systemd_watchdog_period_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    return (int64_t)(usec / 2000u); /* ping at half the interval */
}

void plat_systemd_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void plat_systemd_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

void plat_systemd_watchdog(void)
{
    sd_notify(0, "WATCHDOG=1");
}

void plat_systemd_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}
