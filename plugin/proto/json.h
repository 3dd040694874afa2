/* json.h - the one JSON writer of the CLI and the daemon: a growable buffer and the writers of
 * JSON strings and numbers. Strings always come out as valid UTF-8 JSON, whatever the bytes
 * given (family names from a model file, API names, error details cut at any byte).
 */
#ifndef MF_PROTO_JSON_H
#define MF_PROTO_JSON_H

#include <stddef.h>

/* A growable byte buffer, always NUL-terminated once written to. Caller-embedded;
 * zero-initialised is a valid empty buffer. Once an append fails (ENOMEM), `oom` stays set and
 * further appends are ignored, so a caller can build a whole line and test once. */
typedef struct mfp_buf {
    char *p;
    size_t n, cap;
    int oom;
} mfp_buf_t;

void mfp_buf_free(mfp_buf_t *b);            /* frees p and leaves an empty buffer */
void mfp_buf_reset(mfp_buf_t *b);           /* n = 0, keeps the memory, clears oom */
void mfp_buf_add(mfp_buf_t *b, const void *p, size_t n);
void mfp_buf_adds(mfp_buf_t *b, const char *s);
void mfp_buf_printf(mfp_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s (n bytes) as a JSON string with quotes: '"', '\\' and control bytes escaped, well-formed
 * UTF-8 sequences copied, and every byte that does not start one written as U+FFFD. */
void mfp_buf_json_str(mfp_buf_t *b, const char *s, size_t n);
/* The same for a NUL-terminated string (NULL writes ""). */
void mfp_buf_json_cstr(mfp_buf_t *b, const char *s);
/* A number with 10 significant digits (enough to compare answers to 1e-9), or null when it
 * is not finite (JSON has no NaN or infinity). */
void mfp_buf_json_num(mfp_buf_t *b, double v);

#endif
