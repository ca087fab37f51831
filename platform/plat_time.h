/*
 * plat_time — civil dates (proleptic Gregorian, UTC) and RFC 3339 text,
 * without libc's time zone machinery: no timegm, no TZ, no locale, no
 * 2038 limit on 32-bit boards.
 *
 * Not for: clocks (plat_clock reads them), local time, leap-second tables
 * (a ":60" second is read as the last millisecond of its minute).
 *
 * Design:
 *   - Day numbers are days since 1970-01-01, negative before it. The two
 *     conversions are Howard Hinnant's "days_from_civil" and
 *     "civil_from_days": count years from March, so that the leap day is the
 *     last day of a (shifted) year and the month lengths from March on follow
 *     a fixed 153-days-per-5-months pattern; a 400-year era has exactly
 *     146097 days, so the era is a division and the year of the era a short
 *     formula. Both are exact integer arithmetic for any year within
 *     +/-10^12 (no loops, no tables).
 *   - RFC 3339 parsing accepts "YYYY-MM-DD" 'T' "hh:mm:ss" [".frac"]
 *     ("Z" | "+hh:mm" | "-hh:mm"), with 't' or ' ' instead of 'T' and 'z'
 *     for 'Z' (RFC 3339 §5.6 allows both). The date is checked against the
 *     month's length (leap years included); hours 00-23, minutes 00-59,
 *     seconds 00-60 (60: a leap second, read as :59.999); fraction digits
 *     beyond milliseconds are cut off (floored); offsets up to 23:59. The
 *     whole text must be the time: nothing before or after it.
 *   - Formatting writes "YYYY-MM-DDThh:mm:ss[.mmm]Z" in UTC, for years 0000
 *     to 9999 (the years RFC 3339 can write); milliseconds always, or only
 *     when not zero.
 *
 * Threading: pure functions; any thread.
 */
#ifndef PLAT_TIME_H
#define PLAT_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for the longest formatted time, "YYYY-MM-DDThh:mm:ss.mmmZ", and its NUL. */
#define PLAT_TIME_RFC3339_MAX 25

#define PLAT_TIME_MS_PER_DAY INT64_C(86400000)

/* How plat_time_format_rfc3339 writes milliseconds. */
enum plat_time_ms_style {
    PLAT_TIME_MS_ALWAYS,  /* "2026-01-01T00:00:00.000Z" */
    PLAT_TIME_MS_NONZERO, /* "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.250Z" */
};

/* True for Gregorian leap years (divisible by 4, not by 100 unless by 400). */
bool plat_time_is_leap(int64_t year);

/* Days in month (1..12) of year; 0 for a month outside 1..12. */
int plat_time_days_in_month(int64_t year, int month);

/* Days since 1970-01-01 of year-month-day. month 1..12 and day 1..31 are
 * assumed (check with plat_time_days_in_month first); |year| <= 10^12. */
int64_t plat_time_days_from_civil(int64_t year, int month, int day);

/* The date of day number days (days since 1970-01-01, |days| <= 10^14);
 * all outputs set. */
void plat_time_civil_from_days(int64_t days, int64_t *year, int *month, int *day);

/* Parses RFC 3339 text s[0..len) (not NUL-terminated; never read past len)
 * into milliseconds since the epoch, UTC. Returns false (and leaves *epoch_ms
 * unchanged) for anything else: a missing part, a bad field, trailing bytes. */
bool plat_time_parse_rfc3339(const char *s, size_t len, int64_t *epoch_ms);

/* Writes epoch_ms as RFC 3339 UTC into buf (cap bytes, NUL-terminated).
 * Returns the length written, or 0 (buf holds "" when cap > 0) when the year
 * is outside 0000..9999 or the text does not fit in cap. */
size_t plat_time_format_rfc3339(int64_t epoch_ms, enum plat_time_ms_style style, char *buf,
                                size_t cap);

#endif
