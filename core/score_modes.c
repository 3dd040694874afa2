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

int mf__view_build(mf_scorer_t *s, mf__view_t *v, int hi, int idf)
{
    const mf_model_t *m = s->m;
    v->hi = hi;
    v->idf = idf;
    v->ref = mf__calloc(s->nrefs ? s->nrefs : 1, sizeof *v->ref);
    if (!v->ref)
        return MF_ENOMEM;
    size_t tot = 0;
    for (size_t i = 0; i < s->nrefs; i++) {
        if (s->skip_ref[i])
            continue;
        int rc = mf_keyset_build(&v->ref[i], m->refs[i].ids, m->refs[i].n, 1, hi);
        if (rc != MF_OK)
            return rc;
        tot += v->ref[i].n;
    }
    if (!idf)
        return MF_OK;
    /* document frequency: all kept references' keys, sorted, counted by runs */
    uint64_t *all = mf__malloc((tot ? tot : 1) * sizeof *all);
    if (!all)
        return MF_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < s->nrefs; i++) {
        if (v->ref[i].n) /* skipped references have no keys (and a NULL array) */
            memcpy(all + k, v->ref[i].k, v->ref[i].n * sizeof *all);
        k += v->ref[i].n;
    }
    qsort(all, tot, sizeof *all, mf__cmp_u64);
    size_t nd = 0;
    for (size_t i = 0; i < tot; i++)
        if (nd == 0 || all[nd - 1] != all[i])
            all[nd++] = all[i];
    v->dk = mf__malloc((nd ? nd : 1) * sizeof *v->dk);
    v->dw = mf__malloc((nd ? nd : 1) * sizeof *v->dw);
    if (!v->dk || !v->dw) {
        mf__free(all);
        return MF_ENOMEM;
    }
    memcpy(v->dk, all, nd * sizeof *all);
    v->nd = nd;
    mf__free(all);
    size_t *df = mf__calloc(nd ? nd : 1, sizeof *df);
    if (!df)
        return MF_ENOMEM;
    for (size_t i = 0; i < s->nrefs; i++) {
        const mf_keyset_t *r = &v->ref[i];
        size_t j = 0; /* both sorted: one merge per reference */
        for (size_t a = 0; a < r->n; a++) {
            while (v->dk[j] < r->k[a])
                j++;
            df[j]++;
        }
    }
    for (size_t j = 0; j < nd; j++)
        v->dw[j] = mf__idf(df[j], s->nkept);
    mf__free(df);
    v->unseen = mf__idf(0, s->nkept);
    for (size_t i = 0; i < s->nrefs; i++)
        if (view_weigh(v, &v->ref[i]) != MF_OK)
            return MF_ENOMEM;
    return MF_OK;
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
    for (size_t j = 0; j < nscan; j++) {
        size_t i = list ? list[j] : j;
        if (s->skip_ref[i] || (long)i == skip)
            continue;
        int f = s->m->ref_label[i];
        double sim = v ? mf_jaccard_keys(&q, &v->ref[i])
                       : mf_jaccard_bits(sc->bits, s->ref_bits + i * (size_t)s->nw, s->nw);
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

int mf__linear_combo(const mf_scorer_t *s, const mf_trace_t *t, long skip, double *nov)
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
    mf__free(sc.score);
    mf__free(sc.best);
    mf__free(sc.best_ref);
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
    case MF_MODE_LINEAR:
        /* combo first, for novelty and the nearest reference of the explanation: over the
         * prototypes when the scorer picked some (nov_protos) */
        rc = combo(s, t, skip, sc, s->proto, s->nproto);
        if (rc == MF_OK)
            rc = mf_linear_vectorise(s->lin, t->ids, t->n, &sc->lvec);
        if (rc == MF_OK)
            mf_linear_score_vec(s->lin, &sc->lvec, sc->score);
        break;
    default:
        return MF_EINVAL;
    }
    return rc;
}
