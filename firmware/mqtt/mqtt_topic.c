/* mqtt_topic — topic filters and reply topics (see mqtt_topic.h). */
#include "mqtt_topic.h"

#include <stdint.h>
#include <string.h>

bool mqtt_topic_matches(const char *filter, const char *name, size_t name_len)
{
    size_t i = 0;
    const char *f = filter;
    /* MQTT: wildcards at the first level do not match topics starting with '$'. */
    if (name_len > 0 && name[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        if (f[0] == '#' && f[1] == '\0')
            return true;
        if (f[0] == '+' && (f[1] == '/' || f[1] == '\0')) {
            while (i < name_len && name[i] != '/')
                i++;
            f++;
        } else {
            while (*f && *f != '/') {
                if (i >= name_len || name[i] != *f)
                    return false;
                i++;
                f++;
            }
        }
        if (*f == '\0')
            return i == name_len;
        /* *f == '/' */
        if (i >= name_len) {
            /* "a/#" matches "a" too */
            return f[1] == '#' && f[2] == '\0';
        }
        if (name[i] != '/')
            return false;
        i++;
        f++;
    }
}

/* ---- where a reply may go ---- */

const char *mqtt_topic_problem_str(enum mqtt_topic_problem p)
{
    static const char *const names[MQTT_TOPIC_COUNT] = {
        [MQTT_TOPIC_OK] = "ok",
        [MQTT_TOPIC_NONE] = "no_reply_topic",
        [MQTT_TOPIC_EMPTY] = "empty",
        [MQTT_TOPIC_TOO_LONG] = "too_long",
        [MQTT_TOPIC_WILDCARD] = "wildcard",
        [MQTT_TOPIC_BAD_UTF8] = "bad_utf8",
        [MQTT_TOPIC_RESERVED] = "reserved",
        [MQTT_TOPIC_INGEST] = "ingest_topic",
        [MQTT_TOPIC_OWN] = "own_topic",
    };
    return (unsigned)p < MQTT_TOPIC_COUNT ? names[p] : "unknown";
}

/* One UTF-8 character at s (n bytes left): its length, or 0 if invalid —
 * overlong forms, surrogates, beyond U+10FFFF, and what MQTT and mosquitto
 * refuse in a topic name: U+0000, control characters, non-characters. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;
    if (s[0] < 0x80) {
        cp = s[0];
        len = 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        cp = s[0] & 0x1Fu;
        len = 2;
    } else if ((s[0] & 0xF0) == 0xE0) {
        cp = s[0] & 0x0Fu;
        len = 3;
    } else if ((s[0] & 0xF8) == 0xF0) {
        cp = s[0] & 0x07u;
        len = 4;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F))
        return 0;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
        return 0;
    return len;
}

enum mqtt_topic_problem mqtt_topic_check_reply(const char *topic, size_t len,
                                               const struct mqtt_topic_rules *rules)
{
    if (!topic)
        return MQTT_TOPIC_NONE;
    if (len == 0)
        return MQTT_TOPIC_EMPTY;
    if (len > MQTT_TOPIC_REPLY_MAX)
        return MQTT_TOPIC_TOO_LONG;
    for (size_t i = 0; i < len;) {
        size_t c = utf8_char((const unsigned char *)topic + i, len - i);
        if (c == 0)
            return MQTT_TOPIC_BAD_UTF8;
        i += c;
    }
    if (memchr(topic, '+', len) || memchr(topic, '#', len))
        return MQTT_TOPIC_WILDCARD;
    if (topic[0] == '$')
        return MQTT_TOPIC_RESERVED;
    for (int i = 0; rules && i < rules->n_own; i++)
        if (strlen(rules->own[i]) == len && memcmp(rules->own[i], topic, len) == 0)
            return MQTT_TOPIC_OWN;
    for (int i = 0; rules && i < rules->n_filters; i++)
        if (mqtt_topic_matches(rules->filters[i], topic, len))
            return MQTT_TOPIC_INGEST;
    return MQTT_TOPIC_OK;
}
