/* Unit tests of continuous queries' bookkeeping (firmware/serve/cq_state). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "cq_state.h"

static const struct cq_timing TM = {.step_ms = 1000, .grace_ms = 500, .lateness_ms = 10000};

static void test_bucket_close(void **state)
{
    (void)state;
    assert_true(cq_bucket_start(12345, 1000) == 12000);
    assert_true(cq_bucket_start(12000, 1000) == 12000);
    assert_true(cq_bucket_start(-1, 1000) == -1000); /* floor before 1970 too */
    assert_true(cq_close_at(12000, &TM) == 13500);
    assert_false(cq_too_late(12000, &TM, 23499));
    assert_true(cq_too_late(12000, &TM, 23500));
    struct cq_cells c;
    assert_int_equal(cq_cells_init(&c, 8), EL_OK);
    assert_true(cq_cells_note(&c, 1, 12000, 1));
    struct cq_cell *cell = cq_cells_find(&c, 1, 12000);
    assert_non_null(cell);
    assert_int_equal(cq_cell_due(cell, &TM, 13499, false), CQ_NONE); /* open */
    assert_int_equal(cq_cell_due(cell, &TM, 13499, true), CQ_OPEN);  /* open, partial wanted */
    cq_cell_done(cell, CQ_OPEN, 3);
    assert_int_equal(cq_cell_due(cell, &TM, 13499, true), CQ_NONE); /* nothing new */
    assert_int_equal(cq_cell_due(cell, &TM, 13500, false), CQ_FINAL);
    /* an answer that does not cover the noted event yet is asked again, boundedly */
    assert_true(cq_cells_note(&c, 1, 12000, 9));
    int retries = 0;
    while (!cq_cell_answer_ok(cell, 8))
        retries++;
    assert_int_equal(retries, CQ_MAX_TRIES);
    cq_cell_done(cell, CQ_FINAL, 8);
    assert_true(cq_cells_note(&c, 1, 12000, 10));
    assert_false(cq_cell_answer_ok(cell, 9));
    assert_true(cq_cell_answer_ok(cell, 10));
    cq_cells_free(&c);
}

static void test_revisions(void **state)
{
    (void)state;
    struct cq_cells c;
    assert_int_equal(cq_cells_init(&c, 8), EL_OK);
    assert_true(cq_cells_note(&c, 7, 5000, 1));
    assert_true(cq_cells_note(&c, 7, 5000, 1));
    struct cq_cell *cell = cq_cells_find(&c, 7, 5000);
    assert_true(cell->state == CQ_PENDING && cell->since == 2);
    cq_cell_done(cell, CQ_FINAL, 10);
    assert_true(cell->state == CQ_PUBLISHED && cell->revision == 0 && cell->seq == 10);
    assert_int_equal(cq_cell_due(cell, &TM, 7000, false), CQ_NONE);
    assert_true(cq_cells_note(&c, 7, 5000, 1)); /* late data */
    assert_true(cell->state == CQ_DIRTY && cell->since == 1);
    assert_int_equal(cq_cell_due(cell, &TM, 7000, false), CQ_CORRECTION);
    cq_cell_done(cell, CQ_CORRECTION, 12);
    assert_true(cell->state == CQ_PUBLISHED && cell->revision == 1 && cell->seq == 12 &&
                cell->since == 0);
    assert_true(cq_cells_note(&c, 7, 5000, 1));
    cq_cell_done(cell, CQ_CORRECTION, 13);
    assert_int_equal(cell->revision, 2);
    assert_int_equal(cq_cell_due(cell, &TM, 16499, false), CQ_NONE);
    assert_int_equal(cq_cell_due(cell, &TM, 16500, false), CQ_EXPIRE); /* 5000+1500+10000 */
    cq_cells_free(&c);
}

/* The table holds at most its limit; removal keeps every other cell findable. */
static void test_bounded_table(void **state)
{
    (void)state;
    struct cq_cells c;
    assert_int_equal(cq_cells_init(&c, 64), EL_OK);
    for (uint32_t i = 0; i < 64; i++)
        assert_true(cq_cells_note(&c, i % 5 + 1, (int64_t)i * 1000, 1));
    assert_false(cq_cells_note(&c, 99, 0, 1)); /* full: a new cell is refused */
    assert_true(cq_cells_note(&c, 1, 0, 1));   /* an existing one is still noted */
    for (uint32_t i = 0; i < cq_cells_slots(&c);) {
        struct cq_cell *cell = &c.slot[i];
        if (cell->state != CQ_FREE && (cell->t / 1000) % 2 == 0) {
            cq_cells_remove_at(&c, i);
            continue;
        }
        i++;
    }
    assert_int_equal(c.n, 32);
    for (uint32_t i = 0; i < 64; i++) {
        struct cq_cell *cell = cq_cells_find(&c, i % 5 + 1, (int64_t)i * 1000);
        if (i % 2 == 0)
            assert_null(cell);
        else
            assert_non_null(cell);
    }
    cq_cells_clear(&c);
    assert_int_equal(c.n, 0);
    assert_null(cq_cells_find(&c, 2, 1000));
    cq_cells_free(&c);
}

static void test_token_bucket(void **state)
{
    (void)state;
    struct cq_tokens t;
    cq_tokens_init(&t, 3, 1000);
    int n = 0;
    for (int i = 0; i < 10; i++)
        n += cq_tokens_take(&t, 1000);
    assert_int_equal(n, 3); /* a second's worth at once */
    assert_false(cq_tokens_take(&t, 1300));
    assert_true(cq_tokens_take(&t, 1340)); /* 1 token after 1/3 s */
    assert_false(cq_tokens_take(&t, 1340));
    n = 0;
    for (int i = 0; i < 10; i++)
        n += cq_tokens_take(&t, 60000); /* a long pause refills to the cap, not more */
    assert_int_equal(n, 3);
    assert_false(cq_tokens_take(&t, 50000)); /* time going back adds nothing */
    cq_tokens_give_back(&t);
    assert_true(cq_tokens_take(&t, 50000));
    for (int i = 0; i < 10; i++)
        cq_tokens_give_back(&t); /* never above the cap */
    n = 0;
    for (int i = 0; i < 10; i++)
        n += cq_tokens_take(&t, 50000);
    assert_int_equal(n, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_close),
        cmocka_unit_test(test_revisions),
        cmocka_unit_test(test_bounded_table),
        cmocka_unit_test(test_token_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
