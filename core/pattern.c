/* pattern.c - representative patterns: the generator with its rules, and regeneration of a
 * model's patterns. The network arithmetic and the draw are lstm.c's (mf_lstm_step,
 * mf_lstm_sample): this file only decides what goes in (restarts) and what may come out
 * (banned n-grams), so that with no rule it is training's sampler exactly. */
#include "pattern.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "train.h"

void mf_gen_opts_from_model(const mf_model_t *m, mf_gen_opts_t *g)
{
    memset(g, 0, sizeof *g);
    g->len = (size_t)m->opts.gen_len;
    g->temp = m->opts.gen_temp;
    g->top_p = 1.0f;
    g->start = -1;
    g->seed = m->opts.seed;
}

/* Ban in lg (V logits, -INFINITY) every call that would repeat an n-gram of order `order`
 * of out[0..i-1] at position i; nothing when that would ban every call. ban: V bytes, zero
 * on entry and on return. */
static void ban_repeats(const int32_t *out, size_t i, int order, int V, unsigned char *ban,
                        float *lg)
{
    size_t m = (size_t)order - 1;
    if (i < m)
        return;
    const int32_t *tail = out + i - m;
    int nb = 0;
    for (size_t p = 0; p + m < i; p++)
        if (!memcmp(out + p, tail, m * sizeof *out) && !ban[out[p + m]]) {
            ban[out[p + m]] = 1;
            nb++;
        }
    for (int j = 0; j < V; j++) {
        if (ban[j] && nb < V)
            lg[j] = -INFINITY;
        ban[j] = 0;
    }
}

int mf_pattern_generate(const mf_lstm_t *net, int start, size_t len, float temp, float top_p,
                        int no_repeat, int restart, int segment, uint64_t *rng, int32_t *out)
{
    const int V = net->d.nvocab, H = net->d.nhidden;
    if (start < 0 || start >= V || len < 1 || !(temp >= 0) || !(top_p > 0))
        return MF_EINVAL;
    size_t sf = mf_lstm_step_floats(&net->d);
    float *buf = mf__calloc(2 * (size_t)H + sf + 2 * (size_t)V, sizeof *buf);
    unsigned char *seen = restart > 0 ? mf__calloc((size_t)V, 1) : NULL;
    unsigned char *ban = no_repeat > 1 ? mf__calloc((size_t)V, 1) : NULL;
    if (!buf || (restart > 0 && !seen) || (no_repeat > 1 && !ban)) {
        mf__free(buf);
        mf__free(seen);
        mf__free(ban);
        return MF_ENOMEM;
    }
    float *state = buf, *scratch = state + 2 * H, *lg = scratch + sf, *ss = lg + V;
    out[0] = start;
    size_t fresh = 0; /* position of the last call that was new to the pattern */
    if (seen)
        seen[start] = 1;
    for (size_t i = 1; i < len; i++) {
        int x = out[i - 1];
        if ((restart > 0 && i - 1 - fresh >= (size_t)restart) ||
            (segment > 0 && (i - 1) % (size_t)segment == 0 && i > 1)) {
            /* stuck, or the segment is full: the next trace begins */
            memset(state, 0, 2 * (size_t)H * sizeof *state);
            x = start;
            fresh = i - 1;
        }
        mf_lstm_step(net, x, state, scratch, lg);
        if (ban)
            ban_repeats(out, i, no_repeat, V, ban, lg);
        out[i] = mf_lstm_sample(lg, V, temp, top_p, rng, ss);
        if (seen && !seen[out[i]]) {
            seen[out[i]] = 1;
            fresh = i;
        }
    }
    mf__free(ban);
    mf__free(seen);
    mf__free(buf);
    return MF_OK;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Median count of distinct APIs in the references of family f (0 when it has none), ids
 * below V; `seen` is scratch of V bytes. */
static int family_median_distinct(const mf_model_t *m, int f, int V, unsigned char *seen)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nrefs; i++)
        n += m->ref_label[i] == f;
    int *c = n ? mf__malloc(n * sizeof *c) : NULL;
    if (!c)
        return 0;
    n = 0;
    for (size_t i = 0; i < m->nrefs; i++) {
        if (m->ref_label[i] != f)
            continue;
        const mf_trace_t *t = &m->refs[i];
        memset(seen, 0, (size_t)V);
        int d = 0;
        for (size_t j = 0; j < t->n; j++)
            if (t->ids[j] >= 0 && t->ids[j] < V && !seen[t->ids[j]]++)
                d++;
        c[n++] = d;
    }
    qsort(c, n, sizeof *c, cmp_int);
    int med = c[n / 2];
    mf__free(c);
    return med;
}

/* Apply the stop rule and the noise floor of g to ids (n calls, < V) in place; returns the
 * calls kept, or MF_ENOMEM. seen: V bytes of scratch. */
static long cut_pattern(const mf_model_t *m, int f, const mf_gen_opts_t *g, int V,
                        int32_t *ids, size_t n, unsigned char *seen)
{
    int cap = g->max_distinct < 0 ? family_median_distinct(m, f, V, seen) : g->max_distinct;
    memset(seen, 0, (size_t)V);
    if (cap > 0) {
        int nd = 0;
        size_t k;
        for (k = 0; k < n; k++) {
            if (!seen[ids[k]] && nd == cap)
                break;
            nd += !seen[ids[k]];
            seen[ids[k]] = 1;
        }
        n = k;
    }
    if (g->min_count > 1) {
        /* noise floor: drop the calls the network emitted fewer than min_count times */
        size_t *cnt = mf__calloc((size_t)V, sizeof *cnt);
        if (!cnt)
            return MF_ENOMEM;
        for (size_t i = 0; i < n; i++)
            cnt[ids[i]]++;
        size_t o = 0;
        for (size_t i = 0; i < n; i++)
            if (cnt[ids[i]] >= (size_t)g->min_count)
                ids[o++] = ids[i];
        n = o;
        mf__free(cnt);
    }
    return (long)n;
}

int mf_pattern_regen(mf_model_t *m, const mf_gen_opts_t *g)
{
    if (!m || !g || g->len < 1 || !(g->temp >= 0) || !(g->top_p > 0))
        return MF_EINVAL;
    size_t len = g->len;
    mf_train_opts_t o = m->opts;
    o.seed = g->seed;
    for (int f = 0; f < m->nfam; f++) {
        mf_family_t *fa = &m->fam[f];
        if (!fa->lstm)
            continue;
        /* the network the stored pattern came from: regenerating measures that pattern */
        const mf_lstm_t *net = fa->gen_lstm ? fa->gen_lstm : fa->lstm;
        int V = net->d.nvocab;
        int st = g->start >= 0 ? g->start : fa->pattern.n ? fa->pattern.ids[0] : 0;
        if (st >= V)
            return MF_EINVAL;
        uint64_t rng;
        int rc = mf_train_pattern_rng(&o, fa->name, V, &rng);
        if (rc != MF_OK)
            return rc;
        int32_t *ids = mf__malloc(len * sizeof *ids);
        unsigned char *seen = mf__calloc((size_t)V, 1);
        if (!ids || !seen) {
            mf__free(ids);
            mf__free(seen);
            return MF_ENOMEM;
        }
        rc = mf_pattern_generate(net, st, len, g->temp, g->top_p, g->no_repeat, g->restart,
                                 g->segment, &rng, ids);
        long n = rc == MF_OK ? cut_pattern(m, f, g, V, ids, len, seen) : rc;
        mf__free(seen);
        if (n < 0) {
            mf__free(ids);
            return (int)n;
        }
        mf_trace_destroy(&fa->pattern);
        fa->pattern.ids = ids;
        fa->pattern.n = (size_t)n;
        fa->pattern.cap = len;
    }
    return MF_OK;
}
