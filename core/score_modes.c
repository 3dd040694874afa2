/* score_modes.c - what each scoring mode computes (see score.h for the modes): set and
 * multiset Jaccard against the patterns, LSTM likelihood, k nearest references in a view of
 * n-gram key sets, and the modes built from those (combo, fusion, linear). Also builds the
 * views. Scorer layout and shapes: score_priv.h. */
#include "score_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm.h"
#include "mf.h"

/* ---- neighbour views ---------------------------------------------------------------------- */

static float view_weight(const mf__view_t *v, uint64_t key)
{
    long j = mf__find_u64(v->dk, v->nd, key);
    return j >= 0 ? v->dw[j] : v->unseen;
}

/* Give ks weights from the view's idf table (no-op for unweighted views). */
static int view_weigh(const mf__view_t *v, mf_keyset_t *ks)
{
    if (!v->idf || ks->n == 0)
        return MF_OK;
    ks->w = mf__malloc(ks->n * sizeof *ks->w);
    if (!ks->w)
        return MF_ENOMEM;
    ks->wsum = 0;
    for (size_t i = 0; i < ks->n; i++) {
        ks->w[i] = view_weight(v, ks->k[i]);
        ks->wsum += ks->w[i];
    }
    return MF_OK;
}

void mf__view_destroy(mf__view_t *v, size_t nrefs)
{
    if (v->ref)
        for (size_t i = 0; i < nrefs; i++)
            mf_keyset_destroy(&v->ref[i]);
    mf__free(v->ref);
    mf__free(v->dk);
    mf__free(v->dw);
    memset(v, 0, sizeof *v);
}

/* Document frequencies: an open-addressing table key -> references holding it (0 = empty
 * slot). Keys are mixed hashes (mf_ngram_key), so their low bits pick the slot. Counting this
 * way costs one probe per reference key, instead of sorting every key of every reference. */
typedef struct dftab {
    uint64_t *k;
    uint32_t *c;
    size_t cap, n;
} dftab_t;

static size_t dftab_slot(const dftab_t *t, uint64_t key)
{
    size_t i = (size_t)key & (t->cap - 1);
    while (t->c[i] && t->k[i] != key)
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int dftab_add(dftab_t *t, uint64_t key)
{
    if (2 * (t->n + 1) > t->cap) { /* at most half full */
        dftab_t g = {NULL, NULL, t->cap ? 2 * t->cap : 4096, t->n};
        g.k = mf__malloc(g.cap * sizeof *g.k);
        g.c = mf__calloc(g.cap, sizeof *g.c);
        if (!g.k || !g.c) {
            mf__free(g.k);
            mf__free(g.c);
            return MF_ENOMEM;
        }
        for (size_t i = 0; i < t->cap; i++)
            if (t->c[i]) {
                size_t j = dftab_slot(&g, t->k[i]);
                g.k[j] = t->k[i];
                g.c[j] = t->c[i];
            }
        mf__free(t->k);
        mf__free(t->c);
        *t = g;
    }
    size_t i = dftab_slot(t, key);
    if (!t->c[i]) {
        t->k[i] = key;
        t->n++;
    }
    t->c[i]++;
    return MF_OK;
}

int mf__view_build(mf_scorer_t *s, mf__view_t *v, int hi, int idf)
{
    const mf_model_t *m = s->m;
    v->hi = hi;
    v->idf = idf;
    v->ref = mf__calloc(s->nrefs ? s->nrefs : 1, sizeof *v->ref);
    if (!v->ref)
        return MF_ENOMEM;
    dftab_t t = {0};
    int rc = MF_OK;
    for (size_t i = 0; i < s->nrefs && rc == MF_OK; i++) {
        if (s->skip_ref[i])
            continue;
        rc = mf_keyset_build(&v->ref[i], m->refs[i].ids, m->refs[i].n, 1, hi);
        for (size_t a = 0; idf && rc == MF_OK && a < v->ref[i].n; a++)
            rc = dftab_add(&t, v->ref[i].k[a]); /* a set: each key once per reference */
    }
    if (rc != MF_OK || !idf)
        goto out;
    /* the idf table: the distinct keys sorted, each with its weight */
    size_t nd = t.n;
    v->dk = mf__malloc((nd ? nd : 1) * sizeof *v->dk);
    v->dw = mf__malloc((nd ? nd : 1) * sizeof *v->dw);
    if (!v->dk || !v->dw) {
        rc = MF_ENOMEM;
        goto out;
    }
    for (size_t i = 0, k = 0; i < t.cap; i++)
        if (t.c[i])
            v->dk[k++] = t.k[i];
    qsort(v->dk, nd, sizeof *v->dk, mf__cmp_u64);
    for (size_t j = 0; j < nd; j++)
        v->dw[j] = mf__idf(t.c[dftab_slot(&t, v->dk[j])], s->nkept);
    v->nd = nd;
    v->unseen = mf__idf(0, s->nkept);
    /* each reference's weights: its keys are all in the table, both sorted, one merge */
    for (size_t i = 0; i < s->nrefs && rc == MF_OK; i++)
        rc = mf__keyset_weigh(&v->ref[i], v->dk, v->dw, v->nd);
out:
    mf__free(t.k);
    mf__free(t.c);
    return rc;
}

int mf__keyset_weigh(mf_keyset_t *r, const uint64_t *dk, const float *dw, size_t nd)
{
    if (r->n == 0)
        return MF_OK;
    r->w = mf__malloc(r->n * sizeof *r->w);
    if (!r->w)
        return MF_ENOMEM;
    r->wsum = 0;
    for (size_t a = 0, j = 0; a < r->n; a++) {
        /* binary search in dk[j..nd): a reference holds a few hundred of the table's keys
         * (tens of thousands at 5,000 references), so a merge would walk the whole table */
        size_t hi = nd;
        while (j < hi) {
            size_t mid = j + (hi - j) / 2;
            if (dk[mid] < r->k[a])
                j = mid + 1;
            else
                hi = mid;
        }
        if (j == nd || dk[j] != r->k[a]) { /* a table from other references */
            mf__free(r->w);
            r->w = NULL;
            return MF_EFORMAT;
        }
        r->w[a] = dw[j];
        r->wsum += r->w[a];
    }
    return MF_OK;
}

int mf__view_from_table(mf_scorer_t *s, mf__view_t *v, int hi, const uint64_t *dk,
                        const float *dw, size_t nd, float unseen, const size_t *list,
                        size_t nlist)
{
    v->hi = hi;
    v->idf = 1;
    v->ref = mf__calloc(s->nrefs ? s->nrefs : 1, sizeof *v->ref);
    v->dk = mf__malloc((nd ? nd : 1) * sizeof *v->dk);
    v->dw = mf__malloc((nd ? nd : 1) * sizeof *v->dw);
    if (!v->ref || !v->dk || !v->dw)
        return MF_ENOMEM;
    memcpy(v->dk, dk, nd * sizeof *dk);
    memcpy(v->dw, dw, nd * sizeof *dw);
    v->nd = nd;
    v->unseen = unseen;
    int rc = MF_OK;
    for (size_t j = 0; j < nlist && rc == MF_OK; j++) {
        const mf_trace_t *t = &s->m->refs[list[j]];
        rc = mf_keyset_build(&v->ref[list[j]], t->ids, t->n, 1, hi);
        if (rc == MF_OK)
            rc = mf__keyset_weigh(&v->ref[list[j]], v->dk, v->dw, v->nd);
    }
    return rc;
}

/* ---- the modes ---------------------------------------------------------------------------- */

static void knn_insert(double *best, int k, double v)
{
    if (v <= best[k - 1])
        return;
    int i = k - 1;
    while (i > 0 && best[i - 1] < v) {
        best[i] = best[i - 1];
        i--;
    }
    best[i] = v;
}

/* Family scores of a neighbour view (v NULL = plain API-set Jaccard on bitsets). Adds
 * `scale` times the mean of the k best similarities of each family into sc->score. Compares
 * the references list[0..nlist-1] (ascending), or every one when list is NULL. */
static int score_view(const mf_scorer_t *s, const mf__view_t *v, const mf_trace_t *t, int k,
                      long skip, double scale, mf__scratch_t *sc, const size_t *list,
                      size_t nlist)
{
    mf_keyset_t q = {0};
    if (v) {
        int rc = mf_keyset_build(&q, t->ids, t->n, 1, v->hi);
        if (rc == MF_OK)
            rc = view_weigh(v, &q);
        if (rc != MF_OK) {
            mf_keyset_destroy(&q);
            return rc;
        }
    }
    for (size_t i = 0; i < (size_t)s->nfam * k; i++)
        sc->best[i] = -1;
    for (int f = 0; f < s->nfam; f++)
        sc->best_ref[f] = -1;
    size_t nscan = list ? nlist : s->nrefs;
    /* the prototypes through their inverted index (score.c): inter[j] sums the weights of
     * the query's keys prototype j holds, in ascending key order as mf_jaccard_keys does */
    const mf__postings_t *post = v && list && list == s->proto ? &s->post[v - s->view] : NULL;
    double *inter = NULL;
    if (post && post->off) {
        inter = mf__calloc(nlist ? nlist : 1, sizeof *inter);
        if (!inter) {
            mf_keyset_destroy(&q);
            return MF_ENOMEM;
        }
        for (size_t a = 0, t = 0; a < q.n; a++) {
            size_t hi = v->nd;
            while (t < hi) {
                size_t mid = t + (hi - t) / 2;
                if (v->dk[mid] < q.k[a])
                    t = mid + 1;
                else
                    hi = mid;
            }
            if (t == v->nd)
                break;
            if (v->dk[t] != q.k[a])
                continue; /* no prototype holds it */
            double w = q.w ? q.w[a] : 1.0;
            for (uint32_t e = post->off[t]; e < post->off[t + 1]; e++)
                inter[post->pos[e]] += w;
        }
    }
    for (size_t j = 0; j < nscan; j++) {
        size_t i = list ? list[j] : j;
        if (s->skip_ref[i] || (long)i == skip)
            continue;
        int f = s->m->ref_label[i];
        double sim;
        if (inter) {
            double den = q.wsum + v->ref[i].wsum - inter[j];
            sim = den > 0 ? inter[j] / den : 0.0;
        } else {
            sim = v ? mf_jaccard_keys(&q, &v->ref[i])
                    : mf_jaccard_bits(sc->bits, s->ref_bits + i * (size_t)s->nw, s->nw);
        }
        double *b = sc->best + (size_t)f * k;
        if (sim > b[0] || sc->best_ref[f] < 0)
            sc->best_ref[f] = (long)i;
        knn_insert(b, k, sim);
    }
    for (int f = 0; f < s->nfam; f++) {
        const double *b = sc->best + (size_t)f * k;
        double sum = 0;
        int n = 0;
        for (int j = 0; j < k && b[j] >= 0; j++, n++)
            sum += b[j];
        sc->score[f] += scale * (n ? sum / n : 0.0);
    }
    mf__free(inter);
    mf_keyset_destroy(&q);
    return MF_OK;
}

/* Scores of the kept families as z-scores over those families (all 0 when they are equal or
 * not finite). */
static void standardise(const mf_scorer_t *s, double *v)
{
    double sum = 0, sq = 0;
    int n = 0;
    for (int f = 0; f < s->nfam; f++)
        if (!s->skip_fam[f] && isfinite(v[f])) {
            sum += v[f];
            n++;
        }
    double mu = n ? sum / n : 0;
    for (int f = 0; f < s->nfam; f++)
        if (!s->skip_fam[f] && isfinite(v[f]))
            sq += (v[f] - mu) * (v[f] - mu);
    double sd = n > 1 ? sqrt(sq / n) : 0;
    for (int f = 0; f < s->nfam; f++)
        v[f] = sd > 0 && isfinite(v[f]) ? (v[f] - mu) / sd : isfinite(v[f]) ? 0 : -1e9;
}

/* combo over the references list[0..nlist-1] (NULL: all): sc->score, sc->best_ref, and
 * sc->novelty = the best kept family's score. */
static int combo(const mf_scorer_t *s, const mf_trace_t *t, long skip, mf__scratch_t *sc,
                 const size_t *list, size_t nlist)
{
    /* the second view runs last, so best_ref (for the explanation) comes from it */
    memset(sc->score, 0, (size_t)s->nfam * sizeof *sc->score);
    int rc = score_view(s, &s->view[MF__VIEW_COMBO1], t, s->o.knn_k, skip, 0.5, sc, list, nlist);
    if (rc == MF_OK)
        rc = score_view(s, &s->view[MF__VIEW_COMBO2], t, s->o.knn_k, skip, 0.5, sc, list, nlist);
    sc->novelty = -INFINITY;
    for (int f = 0; f < s->nfam; f++)
        if (!s->skip_fam[f] && sc->score[f] > sc->novelty)
            sc->novelty = sc->score[f];
    return rc;
}

int mf__linear_combo(const mf_scorer_t *s, const mf_trace_t *t, long skip, int fam, double *nov,
                     double *of_fam)
{
    size_t nf = s->nfam ? (size_t)s->nfam : 1;
    mf__scratch_t sc;
    memset(&sc, 0, sizeof sc);
    sc.score = mf__calloc(nf, sizeof *sc.score);
    sc.best = mf__malloc(nf * (size_t)s->o.knn_k * sizeof *sc.best);
    sc.best_ref = mf__malloc(nf * sizeof *sc.best_ref);
    int rc = sc.score && sc.best && sc.best_ref ? combo(s, t, skip, &sc, s->proto, s->nproto)
                                                : MF_ENOMEM;
    *nov = rc == MF_OK && isfinite(sc.novelty) ? sc.novelty : 0;
    if (of_fam)
        *of_fam = rc == MF_OK && fam >= 0 && fam < s->nfam ? sc.score[fam] : 0;
    mf__free(sc.score);
    mf__free(sc.best);
    mf__free(sc.best_ref);
    return rc;
}

int mf__linear_ncd(const mf_scorer_t *s, const mf_trace_t *t, long skip, int fam, double *sim)
{
    *sim = 0;
    if (fam < 0 || fam >= s->nfam)
        return MF_OK;
    mf_ncd_t *c = mf_ncd_new();
    if (!c)
        return MF_ENOMEM;
    int wide = s->nv > 256;
    long ct = mf_ncd_len(c, t->ids, t->n, NULL, 0, wide);
    int rc = ct < 0 ? MF_ENOMEM : MF_OK;
    double best = INFINITY;
    size_t nscan = s->proto ? s->nproto : s->nrefs;
    for (size_t j = 0; j < nscan && rc == MF_OK; j++) {
        size_t i = s->proto ? s->proto[j] : j;
        if (s->skip_ref[i] || (long)i == skip || s->m->ref_label[i] != fam)
            continue;
        const mf_trace_t *r = &s->m->refs[i];
        long cr = mf_ncd_len(c, r->ids, r->n, NULL, 0, wide);
        double d = cr < 0 ? NAN : mf_ncd(c, r->ids, r->n, cr, t->ids, t->n, ct, wide);
        if (isnan(d))
            rc = MF_ENOMEM;
        else if (d < best)
            best = d;
    }
    if (rc == MF_OK && isfinite(best))
        *sim = 1 - best;
    mf_ncd_free(c);
    return rc;
}

int mf__score_modes(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip,
                    mf__scratch_t *sc)
{
    const mf_model_t *m = s->m;
    int rc = MF_OK;
    switch (mode) {
    case MF_MODE_PAPER:
        for (int f = 0; f < s->nfam; f++)
            sc->score[f] = mf_jaccard_bits(sc->bits, s->pat_bits + (size_t)f * s->nw, s->nw);
        break;
    case MF_MODE_LIKELIHOOD:
        for (int f = 0; f < s->nfam; f++)
            sc->score[f] = s->skip_fam[f] ? 0 : mf_lstm_loglik(m->fam[f].lstm, t->ids, t->n);
        break;
    case MF_MODE_MULTISET: {
        uint32_t *cnt = mf__calloc((size_t)s->nv, sizeof *cnt);
        if (!cnt)
            return MF_ENOMEM;
        uint64_t tot = 0;
        for (size_t i = 0; i < t->n; i++)
            if (t->ids[i] >= 0 && t->ids[i] < s->nv) {
                cnt[t->ids[i]]++;
                tot++;
            }
        for (int f = 0; f < s->nfam; f++) {
            const uint32_t *p = s->pat_cnt + (size_t)f * s->nv;
            uint64_t mn = 0;
            for (int w = 0; w < s->nw; w++) /* distinct ids of the trace, from its bitset */
                for (uint64_t b = sc->bits[w]; b; b &= b - 1) {
                    int id = w * 64 + __builtin_ctzll(b);
                    if (id >= s->nv)
                        break;
                    mn += cnt[id] < p[id] ? cnt[id] : p[id];
                }
            uint64_t den = tot + s->pat_tot[f] - mn;
            sc->score[f] = den ? (double)mn / (double)den : 0.0;
        }
        mf__free(cnt);
        break;
    }
    case MF_MODE_NGRAM: {
        mf_keyset_t q;
        rc = mf_keyset_build(&q, t->ids, t->n, s->o.ngram_n, s->o.ngram_n);
        if (rc != MF_OK)
            return rc;
        for (int f = 0; f < s->nfam; f++)
            sc->score[f] = mf_jaccard_keys(&q, &s->pat_ng[f]);
        mf_keyset_destroy(&q);
        break;
    }
    case MF_MODE_NN:
        memset(sc->score, 0, (size_t)s->nfam * sizeof *sc->score);
        rc = score_view(s, NULL, t, 1, skip, 1.0, sc, NULL, 0);
        break;
    case MF_MODE_KNN:
        memset(sc->score, 0, (size_t)s->nfam * sizeof *sc->score);
        rc = score_view(s, &s->view[MF__VIEW_KNN], t, s->o.knn_k, skip, 1.0, sc, NULL, 0);
        break;
    case MF_MODE_COMBO:
        rc = combo(s, t, skip, sc, NULL, 0);
        break;
    case MF_MODE_FUSION: {
        /* likelihood first, kept aside; combo last, so best_ref is set for the explanation */
        double *ll = mf__malloc((size_t)s->nfam * sizeof *ll);
        if (!ll)
            return MF_ENOMEM;
        rc = mf__score_modes(s, MF_MODE_LIKELIHOOD, t, skip, sc);
        if (rc == MF_OK) {
            memcpy(ll, sc->score, (size_t)s->nfam * sizeof *ll);
            standardise(s, ll);
            rc = mf__score_modes(s, MF_MODE_COMBO, t, skip, sc);
        }
        if (rc == MF_OK) {
            standardise(s, sc->score);
            double w = s->o.fuse_w / 100.0;
            for (int f = 0; f < s->nfam; f++)
                sc->score[f] = w * ll[f] + (1 - w) * sc->score[f];
        }
        mf__free(ll);
        break;
    }
    case MF_MODE_LINEAR: {
        /* combo first, for novelty and the nearest reference of the explanation: over the
         * prototypes when the scorer picked some (nov_protos); lin_nov 4 keeps its family
         * scores for combo's score of linear's top family, lin_nov 5 compresses the trace
         * with that family's references */
        double *cs = NULL;
        rc = combo(s, t, skip, sc, s->proto, s->nproto);
        if (rc == MF_OK && s->o.lin_nov == 4) {
            cs = mf__malloc((size_t)s->nfam * sizeof *cs);
            if (cs)
                memcpy(cs, sc->score, (size_t)s->nfam * sizeof *cs);
            else
                rc = MF_ENOMEM;
        }
        if (rc == MF_OK)
            rc = mf_linear_vectorise(s->lin, t->ids, t->n, &sc->lvec);
        if (rc == MF_OK)
            mf_linear_score_vec(s->lin, &sc->lvec, sc->score);
        int top = rc == MF_OK ? mf__top_kept(s, sc->score) : -1;
        if (rc == MF_OK && cs)
            sc->combo_top = top >= 0 ? cs[top] : 0;
        if (rc == MF_OK && s->o.lin_nov == 5)
            rc = mf__linear_ncd(s, t, skip, top, &sc->ncd_top);
        mf__free(cs);
        break;
    }
    default:
        return MF_EINVAL;
    }
    return rc;
}
