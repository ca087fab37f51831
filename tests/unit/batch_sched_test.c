/* Unit tests of the batch scheduler's decision (firmware/batch/batch_sched):
 * the schedule syntax, and which trigger fires when, driven second by second
 * through simulated inputs (monotonic and wall clocks, CPU busy, ingest
 * rate, running, uncovered events) — no threads, no real clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "batch_sched.h"

#define T0 1000000 /* a monotonic start well above 0 */

/* idle_cpu_pct 20, idle rate 5/s, idle_for 30 s, max_lag 600 s */
static struct batch_sched make(const char *schedule)
{
    struct batch_sched s;
    assert_int_equal(batch_sched_init(&s, schedule, 20, 5.0, 30, 600, T0), EL_OK);
    return s;
}

static struct batch_sched_input busy_at(int64_t t_s)
{
    struct batch_sched_input in = {.now_mono_ms = T0 + t_s * 1000,
                                   .wall_ms = 0,
                                   .clock_synced = false,
                                   .busy_pct = 90,
                                   .ingest_rate = 500,
                                   .running = false,
                                   .uncovered = true};
    return in;
}

static struct batch_sched_input idle_at(int64_t t_s)
{
    struct batch_sched_input in = busy_at(t_s);
    in.busy_pct = 3;
    in.ingest_rate = 0.5;
    return in;
}

static void test_schedule_syntax(void **state)
{
    static const struct {
        const char *spec;
        el_status st;
        int64_t every_ms;
        int minute;
    } rows[] = {
        {"", EL_OK, 0, -1},
        {"every 15m", EL_OK, 900000, -1},
        {"every\t 2h", EL_OK, 7200000, -1},
        {"every 30s", EL_OK, 30000, -1},
        {"every 7d", EL_OK, 7 * 86400000LL, -1},
        {"every 604800s", EL_OK, 604800000LL, -1},
        {"every 604801s", EL_INVAL, 0, -1},
        {"every 8d", EL_INVAL, 0, -1},
        {"every 0m", EL_INVAL, 0, -1},
        {"every 5", EL_INVAL, 0, -1},
        {"every 5x", EL_INVAL, 0, -1},
        {"every 5mm", EL_INVAL, 0, -1},
        {"every -5m", EL_INVAL, 0, -1},
        {"every 99999999999999999999m", EL_INVAL, 0, -1},
        {"every15m", EL_INVAL, 0, -1},
        {"03:30", EL_OK, 0, 210},
        {"00:00", EL_OK, 0, 0},
        {"23:59", EL_OK, 0, 1439},
        {"24:00", EL_INVAL, 0, -1},
        {"12:60", EL_INVAL, 0, -1},
        {"3:30", EL_INVAL, 0, -1},
        {"03:30 ", EL_INVAL, 0, -1},
        {"a3:30", EL_INVAL, 0, -1},
        {"hourly", EL_INVAL, 0, -1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t every = 123;
        int minute = 456;
        el_status st = batch_schedule_parse(rows[i].spec, &every, &minute);
        if (st != rows[i].st)
            fail_msg("'%s': status %d, expected %d", rows[i].spec, st, rows[i].st);
        if (st == EL_OK) {
            assert_int_equal(every, rows[i].every_ms);
            assert_int_equal(minute, rows[i].minute);
        }
    }
    struct batch_sched s;
    assert_int_equal(batch_sched_init(&s, "every 5x", 20, 5, 30, 600, T0), EL_INVAL);
}

/* Idle must hold for idle_for_s without a break; then one run, and the next
 * idle run only after another idle_for_s. */
static void test_idle_window(void **state)
{
    (void)state;
    struct batch_sched s = make("");
    struct batch_sched_input in;
    int64_t t = 1;
    for (; t <= 20; t++) { /* 20 idle seconds, then a busy one: the window restarts */
        in = idle_at(t);
        assert_null(batch_sched_decide(&s, &in));
    }
    in = busy_at(t++);
    assert_null(batch_sched_decide(&s, &in));
    int64_t start = t;
    const char *trig = NULL;
    for (; t < start + 60 && !trig; t++) {
        in = idle_at(t);
        trig = batch_sched_decide(&s, &in);
    }
    assert_non_null(trig);
    assert_string_equal(trig, "idle");
    assert_int_equal(t - 1 - start, 30); /* exactly idle_for_s after idleness began */
    /* The next idle second does not start another run at once. */
    int64_t fired = t - 1;
    trig = NULL;
    for (; t < fired + 60 && !trig; t++) {
        in = idle_at(t);
        trig = batch_sched_decide(&s, &in);
    }
    assert_non_null(trig);
    assert_int_equal(t - 1 - fired, 30);
}

/* Busy CPU, or ingest at or above the idle rate, or an unknown CPU figure,
 * is not idle. */
static void test_not_idle(void **state)
{
    (void)state;
    struct batch_sched s = make("");
    for (int64_t t = 1; t <= 300; t++) {
        struct batch_sched_input in = idle_at(t);
        if (t % 3 == 0)
            in.busy_pct = 20; /* not < idle_cpu_pct */
        else if (t % 3 == 1)
            in.ingest_rate = 5.0; /* not < idle_ingest_rate */
        else
            in.busy_pct = -1; /* not measured yet */
        assert_null(batch_sched_decide(&s, &in));
    }
}

/* Nothing starts while a run goes on or when the views cover everything,
 * however idle the board is (no empty runs). */
static void test_no_run_when_running_or_covered(void **state)
{
    (void)state;
    struct batch_sched s = make("every 10s");
    for (int64_t t = 1; t <= 2000; t++) {
        struct batch_sched_input in = idle_at(t);
        in.running = t > 1000;
        in.uncovered = t > 1000;
        assert_null(batch_sched_decide(&s, &in));
    }
}

/* A busy board still gets a run once no run ended for max_lag_s, and then
 * at most one per max_lag_s; a run in progress restarts the lag clock. */
static void test_max_lag(void **state)
{
    (void)state;
    struct batch_sched s = make("");
    struct batch_sched_input in;
    int64_t fired[3];
    int n = 0;
    for (int64_t t = 1; t <= 2500 && n < 3; t++) {
        in = busy_at(t);
        in.running = t >= 100 && t < 200; /* a run (e.g. requested) from 100 to 199 s */
        const char *trig = batch_sched_decide(&s, &in);
        if (trig) {
            assert_string_equal(trig, "max_lag");
            fired[n++] = t;
        }
    }
    assert_int_equal(n, 3);
    assert_int_equal(fired[0], 199 + 600); /* the running run ended at 199 s */
    assert_int_equal(fired[1], fired[0] + 600);
    assert_int_equal(fired[2], fired[1] + 600);
}

/* A reload (batch_sched_configure): "every 1h" shortened to "every 2m" at
 * 300 s fires at the next decision (2 m since the last scheduled run have
 * passed), once, then every 2 m; a bad schedule changes nothing; the lag
 * clock (state) survives the change. */
static void test_reconfigure(void **state)
{
    (void)state;
    struct batch_sched s = make("every 1h");
    int64_t fired[3];
    int n = 0;
    for (int64_t t = 1; t <= 600 && n < 3; t++) {
        if (t == 300) {
            assert_int_equal(batch_sched_configure(&s, "every 5x", 20, 5.0, 30, 600), EL_INVAL);
            assert_int_equal(s.schedule_every_ms, 3600000);
            assert_int_equal(batch_sched_configure(&s, "every 2m", 20, 5.0, 30, 600), EL_OK);
        }
        struct batch_sched_input in = busy_at(t);
        const char *trig = batch_sched_decide(&s, &in);
        if (trig) {
            assert_string_equal(trig, "schedule");
            fired[n++] = t;
        }
    }
    assert_int_equal(n, 3);
    assert_int_equal(fired[0], 300);
    assert_int_equal(fired[1], 420);
    assert_int_equal(fired[2], 540);
    assert_int_equal(s.last_run_end_ms, T0); /* no run ended: the lag clock is untouched */
}

/* "every N": on the monotonic clock, whatever the wall clock does. */
static void test_every(void **state)
{
    (void)state;
    struct batch_sched s = make("every 2m");
    int fires = 0;
    for (int64_t t = 1; t <= 600; t++) {
        struct batch_sched_input in = busy_at(t);
        in.wall_ms = t % 7 == 0 ? -86400000 : 1700000000000; /* steps back and forth */
        const char *trig = batch_sched_decide(&s, &in);
        if (trig) {
            assert_string_equal(trig, "schedule");
            assert_int_equal(t % 120, 0);
            fires++;
        }
    }
    assert_int_equal(fires, 5);
}

/* "HH:MM": once per UTC day at that minute, only with a synchronised clock;
 * a wall clock stepped back into the same minute does not run it twice. */
static void test_daily(void **state)
{
    (void)state;
    struct batch_sched s = make("03:30");
    const int64_t day0 = 20000LL * 86400000; /* a UTC midnight */
    int fires = 0;
    int64_t mono_s = 1;
    for (int day = 0; day < 3; day++) {
        for (int minute = 0; minute < 24 * 60; minute += 1) {
            struct batch_sched_input in = busy_at(mono_s);
            in.wall_ms = day0 + day * 86400000LL + minute * 60000LL + 30000;
            in.clock_synced = day != 1; /* day 1: never synchronised */
            in.running = false;
            const char *trig = batch_sched_decide(&s, &in);
            mono_s += 60;
            /* max_lag (600 s) fires on a busy board every 10 minutes; only
             * count the schedule */
            if (trig && strcmp(trig, "schedule") == 0) {
                assert_int_equal(minute, 210);
                assert_true(day != 1);
                fires++;
                /* stepped back into the same minute: not again */
                in.now_mono_ms = T0 + mono_s * 1000;
                const char *again = batch_sched_decide(&s, &in);
                assert_true(again == NULL || strcmp(again, "schedule") != 0);
            }
        }
    }
    assert_int_equal(fires, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_syntax),
        cmocka_unit_test(test_idle_window),
        cmocka_unit_test(test_not_idle),
        cmocka_unit_test(test_no_run_when_running_or_covered),
        cmocka_unit_test(test_max_lag),
        cmocka_unit_test(test_every),
        cmocka_unit_test(test_reconfigure),
        cmocka_unit_test(test_daily),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
