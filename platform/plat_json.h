/*
 * plat_json — reading JSON text through jsmn: one tokeniser, strict checks,
 * and typed getters, for every module that reads JSON (the CLI's answers,
 * requests, payloads).
 *
 * Not for: writing JSON (plat_jsonw), streaming, documents over INT_MAX
 * bytes, or texts holding a NUL byte (rejected).
 *
 * Design: plat_json_parse tokenises into a token array the CALLER provides
 * (on the stack for a bounded request, or sized by plat_json_count), so
 * reading allocates nothing. Tokens are in document order: a container is
 * followed by its children, an object's member by its key token then the
 * value's tokens; each token knows its parent (jsmn's parent links: an
 * element's parent is its array, a key's parent its object, a member value's
 * parent its KEY). Then the text is checked strictly, because jsmn alone is
 * lax about separators ("{,}", "[1 2]", a trailing comma, two top-level
 * values): the bytes between tokens must be white space and exactly the one
 * separator the grammar expects, primitives must be true/false/null or a
 * JSON number, strings must hold no raw control byte, keys must be strings,
 * nesting is at most PLAT_JSON_MAX_DEPTH deep, and the text is one value
 * with only white space around it. Bytes >= 0x80 are not checked (UTF-8
 * validity is the caller's business where it matters).
 *
 * Getters take a token index (an int; -1 means "none" and every getter
 * accepts it, so lookups chain without checks in between):
 *   - plat_json_member: the value of an object's member by key. Keys are
 *     compared as raw bytes (escapes not decoded); with duplicate keys the
 *     LAST one wins, as in JavaScript and Python.
 *   - plat_json_first / plat_json_next: an array's elements, or an object's
 *     keys (the value is key + 1).
 *   - plat_json_string DECODES escapes into UTF-8 (\uXXXX too, surrogate
 *     pairs joined; a lone surrogate becomes U+FFFD; \u0000 becomes a NUL
 *     byte that the returned length counts). plat_json_raw gives the bytes as
 *     written, for callers that want to refuse escapes instead.
 *   - plat_json_int64 reads JSON integers only (no fraction or exponent),
 *     refusing what does not fit int64; plat_json_double reads any JSON
 *     number with strtod ("C" locale assumed for LC_NUMERIC) and gives +/-inf
 *     for one beyond a double (check isfinite where that matters); numbers
 *     longer than PLAT_JSON_NUMBER_MAX bytes are refused.
 *
 * Threading: a parsed document is read-only; any number of threads may read
 * it. The text and the token array are borrowed and must outlive it.
 */
#ifndef PLAT_JSON_H
#define PLAT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

#define PLAT_JSON_MAX_DEPTH 64
#define PLAT_JSON_NUMBER_MAX 63

enum plat_json_type {
    PLAT_JSON_NONE = 0, /* no such token (index -1 or out of range) */
    PLAT_JSON_OBJECT = 1,
    PLAT_JSON_ARRAY = 2,
    PLAT_JSON_STRING = 3,
    PLAT_JSON_PRIMITIVE = 4, /* number, true, false, null */
};

/* One token; the same layout as jsmn's jsmntok_t with JSMN_PARENT_LINKS
 * (plat_json.c asserts it), so jsmn fills the caller's array directly.
 * may_alias: jsmn writes these through its own type. */
struct plat_json_tok {
    enum plat_json_type type;
    int start;  /* first byte; for a string, the one after the opening quote */
    int end;    /* one past the last byte; for a string, the closing quote */
    int size;   /* children: an object's members, an array's elements, 1 for a key */
    int parent; /* index of the enclosing token, -1 for the top-level value */
} __attribute__((__may_alias__));

/* A parsed document: a view over borrowed text and tokens. */
struct plat_json {
    const char *text;
    size_t len;
    const struct plat_json_tok *tok;
    int n; /* tokens; tok[0] is the top-level value */
};

/* Tokenises and checks text[0..len) into tok[0..cap). EL_OK: doc describes
 * exactly one JSON value. EL_NOMEM: it needs more than cap tokens. EL_INVAL:
 * not one well-formed JSON value (see above), a NUL byte, or over INT_MAX
 * bytes. On failure doc->n is 0 (and doc still names text and tok). */
EL_MUST_CHECK el_status plat_json_parse(struct plat_json *doc, const char *text, size_t len,
                                        struct plat_json_tok *tok, size_t cap);

/* Tokens plat_json_parse would need for text, without storing any (for a
 * caller that allocates the array). EL_INVAL if jsmn cannot tokenise it;
 * the strict checks happen only in plat_json_parse. */
EL_MUST_CHECK el_status plat_json_count(const char *text, size_t len, size_t *count);

/* Type of token i; PLAT_JSON_NONE for i out of range (e.g. -1). */
enum plat_json_type plat_json_type(const struct plat_json *doc, int i);

/* Index just past token i and everything inside it; doc->n for a bad i. */
int plat_json_skip(const struct plat_json *doc, int i);

/* Token i's bytes as written (a string without its quotes, escapes not
 * decoded), *len set; NULL (and *len 0) for a bad i. Points into doc->text. */
const char *plat_json_raw(const struct plat_json *doc, int i, size_t *len);

/* True if token i's raw bytes are exactly s (NUL-terminated). */
bool plat_json_eq(const struct plat_json *doc, int i, const char *s);

/* The value token of object obj's last member whose raw key is key; -1 if
 * obj is not an object or has no such member. */
int plat_json_member(const struct plat_json *doc, int obj, const char *key);

/* First element of array / first key of object container; -1 if empty or
 * not a container. */
int plat_json_first(const struct plat_json *doc, int container);

/* The element (key) after element (key) i of container; -1 after the last. */
int plat_json_next(const struct plat_json *doc, int container, int i);

/* Children of container (0 for anything else): plat_json_first/next visit
 * this many. */
int plat_json_count_children(const struct plat_json *doc, int container);

/* Copies string token i, escapes decoded, into out (cap bytes, always
 * NUL-terminated when cap > 0); *len (may be NULL) gets the bytes copied.
 * EL_OK: all of it. EL_NOMEM: cut at the last whole character that fits in
 * cap - 1 bytes (out still usable, e.g. for display). EL_INVAL: not a string
 * token (out is ""). */
EL_MUST_CHECK el_status plat_json_string(const struct plat_json *doc, int i, char *out, size_t cap,
                                         size_t *len);

/* A JSON integer that fits int64. EL_INVAL otherwise (*out untouched). */
EL_MUST_CHECK el_status plat_json_int64(const struct plat_json *doc, int i, int64_t *out);

/* Any JSON number (see above for range and length). EL_INVAL otherwise. */
EL_MUST_CHECK el_status plat_json_double(const struct plat_json *doc, int i, double *out);

/* true or false. EL_INVAL otherwise. */
EL_MUST_CHECK el_status plat_json_bool(const struct plat_json *doc, int i, bool *out);

/* True if token i is the literal null. */
bool plat_json_is_null(const struct plat_json *doc, int i);

#endif
