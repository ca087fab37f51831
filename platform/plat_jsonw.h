/*
 * plat_jsonw — a bounded JSON writer into a caller-owned buffer.
 *
 * No allocation: the writer fills buf up to len and remembers overflow
 * (jw_ok() false) instead of growing, so a reply or status document can
 * never exceed its configured size. Commas are inserted automatically.
 * Non-finite doubles are written as null (JSON has no NaN).
 *
 * Threading: a writer belongs to one thread.
 */
#ifndef PLAT_JSONW_H
#define PLAT_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JW_MAX_DEPTH 16

struct jw {
    char *buf;
    size_t len, pos;
    bool overflow;
    int depth;
    bool need_comma[JW_MAX_DEPTH];
};

void jw_init(struct jw *w, char *buf, size_t len);
void jw_obj_begin(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr_begin(struct jw *w);
void jw_arr_end(struct jw *w);
/* Object member name; the value call follows. */
void jw_key(struct jw *w, const char *key);
void jw_str(struct jw *w, const char *s);
void jw_strn(struct jw *w, const char *s, size_t n);
/* True if s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points beyond U+10FFFF): jw_strn then writes valid JSON text of it. */
bool jw_utf8_valid(const char *s, size_t n);
void jw_int(struct jw *w, int64_t v);
void jw_uint(struct jw *w, uint64_t v);
void jw_double(struct jw *w, double v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* Writes pre-validated JSON text verbatim as one value. */
void jw_raw(struct jw *w, const char *json);
/* True while nothing overflowed (containers may still be open). */
bool jw_ok_so_far(const struct jw *w);
/* True if everything fitted; the text is NUL-terminated at jw_len(). */
bool jw_ok(const struct jw *w);
size_t jw_len(const struct jw *w);

#endif
