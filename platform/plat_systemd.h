/*
 * plat_systemd — Type=notify service integration through libsystemd:
 * READY=1 once the daemon serves, STATUS= lines, WATCHDOG=1 keep-alives at
 * half the WatchdogSec interval, STOPPING=1. All calls are no-ops when not
 * started by systemd (NOTIFY_SOCKET unset).
 *
 * Threading: call from the core thread only.
 */
#ifndef PLAT_SYSTEMD_H
#define PLAT_SYSTEMD_H

#include <stdint.h>

/* Reads WATCHDOG_USEC; returns the keep-alive period in ms, 0 when none. */
int64_t plat_systemd_watchdog_period_ms(void);
void plat_systemd_ready(const char *status);
void plat_systemd_status(const char *status);
void plat_systemd_watchdog(void);
void plat_systemd_stopping(void);

#endif
