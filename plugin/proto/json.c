/* json.c - the growable buffer and the JSON string and number writers. */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mfp_buf_free(mfp_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void mfp_buf_reset(mfp_buf_t *b)
{
    b->n = 0;
    b->oom = 0;
}

static int reserve(mfp_buf_t *b, size_t more)
{
    if (b->oom)
        return -1;
    if (b->n + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void mfp_buf_add(mfp_buf_t *b, const void *p, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void mfp_buf_adds(mfp_buf_t *b, const char *s)
{
    mfp_buf_add(b, s, strlen(s));
}

void mfp_buf_printf(mfp_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        mfp_buf_add(b, tmp, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), 0 if it is not one
 * (stray continuation, truncated, overlong, surrogate, above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (k == 0 || c > 0xf4 || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return k;
}

void mfp_buf_json_str(mfp_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (reserve(b, n + 2) < 0)
        return;
    b->p[b->n++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (reserve(b, 8) < 0)
            return;
        char *o = b->p + b->n;
        if (c == '"' || c == '\\') {
            o[0] = '\\';
            o[1] = (char)c;
            b->n += 2;
        } else if (c == '\n') {
            memcpy(o, "\\n", 2);
            b->n += 2;
        } else if (c == '\t') {
            memcpy(o, "\\t", 2);
            b->n += 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            b->n += 6;
        } else if (c < 0x80) {
            o[0] = (char)c;
            b->n += 1;
        } else {
            /* Messages may hold input cut at any byte: copy whole valid UTF-8 sequences,
             * and write U+FFFD for a broken one, so the answer is always valid JSON. */
            size_t k = utf8_len((const unsigned char *)s + i, n - i);
            if (k == 0) {
                memcpy(o, "\\ufffd", 6);
                b->n += 6;
            } else {
                memcpy(o, s + i, k);
                b->n += k;
                i += k - 1;
            }
        }
    }
    b->p[b->n++] = '"';
    b->p[b->n] = '\0';
}

void mfp_buf_json_cstr(mfp_buf_t *b, const char *s)
{
    mfp_buf_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

void mfp_buf_json_num(mfp_buf_t *b, double v)
{
    if (isfinite(v))
        mfp_buf_printf(b, "%.10g", v);
    else
        mfp_buf_adds(b, "null");
}
