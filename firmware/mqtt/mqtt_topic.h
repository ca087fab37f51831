/*
 * mqtt_topic — MQTT topic names and filters, pure: matching a name against a
 * subscription filter, and deciding whether a reply may be published to a
 * topic a request named. Used by ingest (its subscriptions, "busy"
 * replies), the serving layer (match filters, replies) and the config
 * checks. No I/O, no heap; names are never read past their length.
 *
 * Threading: pure; any thread.
 */
#ifndef EL_MQTT_TOPIC_H
#define EL_MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define MQTT_TOPIC_REPLY_MAX 256 /* bytes of a response topic or reply_to */

/* MQTT topic-filter match ('+' one level, '#' the rest) of a name. */
bool mqtt_topic_matches(const char *filter, const char *name, size_t name_len);

/* ---- where a reply may go ----
 * A reply is published to the request's MQTT v5 Response Topic or its
 * "reply_to". Publishing to a name the broker refuses (a wildcard, bad
 * UTF-8: mosquitto disconnects the publisher for that) or to one of the
 * daemon's own topics (its ingest filters: the reply would come back as a
 * reading; its query/command/status topics: a loop) must never happen. */
enum mqtt_topic_problem {
    MQTT_TOPIC_OK = 0,
    MQTT_TOPIC_NONE,     /* no response topic and no reply_to */
    MQTT_TOPIC_EMPTY,    /* "" */
    MQTT_TOPIC_TOO_LONG, /* over MQTT_TOPIC_REPLY_MAX bytes */
    MQTT_TOPIC_WILDCARD, /* '+' or '#' */
    MQTT_TOPIC_BAD_UTF8, /* invalid UTF-8, NUL, control characters, non-characters */
    MQTT_TOPIC_RESERVED, /* starts with '$' (the broker's) */
    MQTT_TOPIC_INGEST,   /* matches one of the daemon's ingest filters */
    MQTT_TOPIC_OWN,      /* one of the daemon's own topics */
    MQTT_TOPIC_COUNT
};
const char *mqtt_topic_problem_str(enum mqtt_topic_problem p);

struct mqtt_topic_rules {
    const char *const *filters; /* ingest subscriptions */
    int n_filters;
    const char *const *own; /* exact topic names of the daemon */
    int n_own;
};
/* Checks a topic (len bytes, no NUL needed) a reply would be published to. */
enum mqtt_topic_problem mqtt_topic_check_reply(const char *topic, size_t len,
                                               const struct mqtt_topic_rules *rules);

#endif
