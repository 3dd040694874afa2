/* trace.c - traces and the one preprocessing (mf_prep_t). The extractor that fills them from
 * report.json is extract.c (parser), extract_input.c (bytes in: plain, gzip, zlib, files) and
 * extract_meta.c (label fields). */
#include "trace.h"

#include <string.h>

#include "internal.h"
#include "mf.h"

/* ---- traces ------------------------------------------------------------------------------ */

void mf_trace_init(mf_trace_t *t)
{
    memset(t, 0, sizeof *t);
}

void mf_trace_destroy(mf_trace_t *t)
{
    mf__free(t->ids);
    mf_trace_init(t);
}

int mf_trace_push(mf_trace_t *t, int32_t id)
{
    if (t->n == t->cap && mf__grow((void **)&t->ids, &t->cap, t->n + 1, sizeof *t->ids))
        return MF_ENOMEM;
    t->ids[t->n++] = id;
    return MF_OK;
}

int mf_trace_copy(mf_trace_t *dst, const mf_trace_t *src)
{
    mf_trace_destroy(dst);
    dst->ids = mf__malloc((src->n ? src->n : 1) * sizeof *dst->ids);
    if (!dst->ids)
        return MF_ENOMEM;
    if (src->n)
        memcpy(dst->ids, src->ids, src->n * sizeof *dst->ids);
    dst->n = dst->cap = src->n;
    return MF_OK;
}

/* Does prep keep `id` after the kept calls ids[0..n-1]? (The cap is the caller's check.) */
static int prep_keeps(const mf_prep_t *p, const int32_t *ids, size_t n, int32_t id)
{
    if (id < 0)
        return 0;
    return !(p && p->fold && n && ids[n - 1] == id);
}

static size_t prep_cap(const mf_prep_t *p)
{
    return p && p->max_len && p->max_len < MF_MAX_TRACE ? p->max_len : MF_MAX_TRACE;
}

int mf_prep_push(const mf_prep_t *p, mf_trace_t *t, int32_t id)
{
    size_t cap = prep_cap(p);
    if (t->n >= cap)
        return MF_PREP_FULL;
    if (prep_keeps(p, t->ids, t->n, id) && mf_trace_push(t, id) != MF_OK)
        return MF_ENOMEM;
    return t->n >= cap ? MF_PREP_FULL : MF_OK;
}

void mf_trace_prep(mf_trace_t *t, const mf_prep_t *p)
{
    size_t cap = prep_cap(p), w = 0;
    for (size_t r = 0; r < t->n && w < cap; r++)
        if (prep_keeps(p, t->ids, w, t->ids[r]))
            t->ids[w++] = t->ids[r];
    t->n = w;
}

void mf_prep_extract_opts(const mf_prep_t *p, mf_extract_opts_t *o)
{
    (void)p; /* every prep reads a report the same way; the trace applies the rest */
    mf_extract_opts_default(o);
    o->repeat = MF_REPEAT_EXPAND;
}
