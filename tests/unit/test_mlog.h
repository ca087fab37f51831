/*
 * test_mlog.h — writing dead letters into a master log from the unit tests
 * that build one through storage/mlog.h (mlog, views, serve, sync worker): a dead
 * letter takes a sequence number between events, as ingest's do.
 *
 * Header-only (static inline); include it after <cmocka.h>, whose assertions
 * it uses. Not for production code.
 */
#ifndef EL_TEST_MLOG_H
#define EL_TEST_MLOG_H

#include <stdint.h>
#include <string.h>

#include "mlog.h"

/* Appends a dead letter with the given seq, topic and reason (both
 * NUL-terminated, borrowed for the call), payload "x", received at recv_ms
 * with flags;
 * the test fails unless mlog_append_dead returns EL_OK. Returns seq. */
static inline int64_t test_add_dead(struct mlog *log, int64_t seq, const char *topic,
                                    const char *reason, int64_t recv_ms, uint32_t flags)
{
    struct mlog_dead d = {.seq = seq,
                          .topic = topic,
                          .topic_len = strlen(topic),
                          .payload = "x",
                          .payload_len = 1,
                          .payload_bytes = 1,
                          .recv_ms = recv_ms,
                          .mono_ms = 1,
                          .flags = flags,
                          .reason = reason};
    assert_int_equal(mlog_append_dead(log, &d), EL_OK);
    return seq;
}

#endif
