/*
 * plat_time — civil dates and RFC 3339 (design in plat_time.h).
 *
 * The day-number arithmetic works on "shifted" years that begin on 1 March:
 * January and February count as months 10 and 11 of the previous year, so
 * February's variable length falls at the end of a year and never shifts the
 * day-of-year of another month. From March on, five months always take 153
 * days (31+30+31+30+31), which gives day-of-year = (153 * month + 2) / 5 +
 * day - 1 for months counted from March = 0. Years group into 400-year eras
 * of 146097 days each; inside an era, year-of-era * 365 plus one leap day
 * every 4 years, minus every 100, gives the day of the era. 719468 is the
 * number of days from 0000-03-01 to 1970-01-01. The inverse divides the same
 * way: the day of the era gives the year of the era once the era's leap days
 * before it are taken out (one per 1460 days, given back per 36524 and per
 * 146096), then the day of the year and the month by the 153/5 rule again.
 *
 * Parsing reads the text through a cursor that never passes len.
 */
#include "plat_time.h"

#include <stdio.h>

#define DAYS_PER_ERA 146097
#define DAYS_0000_03_01_TO_EPOCH 719468

bool plat_time_is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int plat_time_days_in_month(int64_t year, int month)
{
    static const int length[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (month < 1 || month > 12)
        return 0;
    return month == 2 && plat_time_is_leap(year) ? 29 : length[month - 1];
}

/* Floor division for a positive divisor (C's '/' truncates toward zero). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return a % b != 0 && a < 0 ? q - 1 : q;
}

int64_t plat_time_days_from_civil(int64_t year, int month, int day)
{
    int64_t shifted_year = month <= 2 ? year - 1 : year;
    int64_t era = floor_div(shifted_year, 400);
    int64_t year_of_era = shifted_year - era * 400;               /* 0..399 */
    int64_t month_from_march = month > 2 ? month - 3 : month + 9; /* 0..11 */
    int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;

    return era * DAYS_PER_ERA + day_of_era - DAYS_0000_03_01_TO_EPOCH;
}

void plat_time_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t since_0000_03_01 = days + DAYS_0000_03_01_TO_EPOCH;
    int64_t era = floor_div(since_0000_03_01, DAYS_PER_ERA);
    int64_t day_of_era = since_0000_03_01 - era * DAYS_PER_ERA; /* 0..146096 */
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_from_march = (5 * day_of_year + 2) / 153; /* 0..11 */

    *day = (int)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
    *month = (int)(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
    *year = year_of_era + era * 400 + (*month <= 2 ? 1 : 0);
}

/* ---------- parsing ---------- */

struct cursor {
    const char *s;
    size_t len;
    size_t pos;
};

static bool at_end(const struct cursor *c)
{
    return c->pos >= c->len;
}

/* Exactly n decimal digits. */
static bool take_digits(struct cursor *c, int n, int *out)
{
    int v = 0;

    for (int k = 0; k < n; k++) {
        if (at_end(c) || c->s[c->pos] < '0' || c->s[c->pos] > '9')
            return false;
        v = v * 10 + (c->s[c->pos] - '0');
        c->pos++;
    }
    *out = v;
    return true;
}

/* One byte that is one of the bytes of set. */
static bool take_one_of(struct cursor *c, const char *set, char *got)
{
    if (at_end(c))
        return false;
    for (const char *p = set; *p != '\0'; p++) {
        if (c->s[c->pos] == *p) {
            *got = *p;
            c->pos++;
            return true;
        }
    }
    return false;
}

static bool take_char(struct cursor *c, char want)
{
    char got;
    char set[2] = {want, '\0'};

    return take_one_of(c, set, &got);
}

/* "YYYY-MM-DD" as a day number. */
static bool parse_date(struct cursor *c, int64_t *days)
{
    int year, month, day;

    if (!take_digits(c, 4, &year) || !take_char(c, '-') || !take_digits(c, 2, &month) ||
        !take_char(c, '-') || !take_digits(c, 2, &day))
        return false;
    if (day < 1 || day > plat_time_days_in_month(year, month))
        return false;
    *days = plat_time_days_from_civil(year, month, day);
    return true;
}

/* ".d+" as milliseconds, digits after the third dropped; absent: 0. */
static bool parse_fraction(struct cursor *c, int *ms)
{
    int digits = 0;

    *ms = 0;
    if (!take_char(c, '.'))
        return true;
    while (!at_end(c) && c->s[c->pos] >= '0' && c->s[c->pos] <= '9') {
        if (digits < 3)
            *ms = *ms * 10 + (c->s[c->pos] - '0');
        digits++;
        c->pos++;
    }
    for (int k = digits; k < 3; k++)
        *ms *= 10;
    return digits > 0;
}

/* "hh:mm:ss[.frac]" as milliseconds of the day. */
static bool parse_clock(struct cursor *c, int64_t *ms_of_day)
{
    int hour, minute, second, ms;

    if (!take_digits(c, 2, &hour) || !take_char(c, ':') || !take_digits(c, 2, &minute) ||
        !take_char(c, ':') || !take_digits(c, 2, &second) || !parse_fraction(c, &ms))
        return false;
    if (hour > 23 || minute > 59 || second > 60)
        return false;
    if (second == 60) { /* a leap second: the last instant of its minute */
        second = 59;
        ms = 999;
    }
    *ms_of_day = ((int64_t)hour * 3600 + minute * 60 + second) * 1000 + ms;
    return true;
}

/* "Z" or "+hh:mm" / "-hh:mm" as the milliseconds local time is ahead of UTC. */
static bool parse_offset(struct cursor *c, int64_t *offset_ms)
{
    char sign;
    int hours, minutes;

    if (take_one_of(c, "Zz", &sign)) {
        *offset_ms = 0;
        return true;
    }
    if (!take_one_of(c, "+-", &sign) || !take_digits(c, 2, &hours) || !take_char(c, ':') ||
        !take_digits(c, 2, &minutes) || hours > 23 || minutes > 59)
        return false;
    *offset_ms = ((int64_t)hours * 60 + minutes) * 60000 * (sign == '-' ? -1 : 1);
    return true;
}

bool plat_time_parse_rfc3339(const char *s, size_t len, int64_t *epoch_ms)
{
    struct cursor c = {s, s != NULL ? len : 0, 0};
    int64_t days, ms_of_day, offset_ms;
    char separator;

    if (!parse_date(&c, &days) || !take_one_of(&c, "Tt ", &separator) ||
        !parse_clock(&c, &ms_of_day) || !parse_offset(&c, &offset_ms) || !at_end(&c))
        return false;
    *epoch_ms = days * PLAT_TIME_MS_PER_DAY + ms_of_day - offset_ms;
    return true;
}

/* ---------- formatting ---------- */

size_t plat_time_format_rfc3339(int64_t epoch_ms, enum plat_time_ms_style style, char *buf,
                                size_t cap)
{
    int64_t days = floor_div(epoch_ms, PLAT_TIME_MS_PER_DAY);
    int64_t ms_of_day = epoch_ms - days * PLAT_TIME_MS_PER_DAY;
    int64_t year;
    int month, day, ms = (int)(ms_of_day % 1000), n;
    int64_t secs = ms_of_day / 1000;

    if (cap > 0)
        buf[0] = '\0';
    plat_time_civil_from_days(days, &year, &month, &day);
    if (cap == 0 || year < 0 || year > 9999)
        return 0;
    n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d", (int)year, month, day,
                 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
    if (n > 0 && (size_t)n < cap) {
        if (style == PLAT_TIME_MS_ALWAYS || ms != 0)
            n += snprintf(buf + n, cap - (size_t)n, ".%03dZ", ms);
        else
            n += snprintf(buf + n, cap - (size_t)n, "Z");
    }
    if (n <= 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
