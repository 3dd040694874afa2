/* score.c - scoring modes, ranking, unknown thresholds, explanations, the JSON answer.
 *
 * Shapes: nv = vocabulary size (ids 0..nv-1), nw = bitset words, nfam families, nrefs
 * training references. Everything a mode compares against is precomputed in mf_scorer_new:
 *   pat_bits (nfam, nw)   pat_cnt (nfam, nv)   pat_ng[nfam]   ref_bits (nrefs, nw)
 *   view[V].ref[nrefs]    n-gram key sets of the references with idf weights per key
 * so scoring a trace costs one pass over it plus the comparisons.
 */
#include "score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "linear.h"
#include "mf.h"
#include "simil.h"

static const char *const mode_names[MF_NMODES] = {
    "paper", "likelihood", "multiset", "ngram", "nn", "knn", "combo", "fusion", "linear",
};

int mf_score_mode_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < MF_NMODES; i++)
        if (strcmp(name, mode_names[i]) == 0)
            return i;
    return -1;
}

const char *mf_score_mode_name(int mode)
{
    return mode >= 0 && mode < MF_NMODES ? mode_names[mode] : "?";
}

int mf_score_nmodes(void)
{
    return MF_NMODES;
}

int mf_score_default_mode(void)
{
    return MF_MODE_LINEAR;
}

int mf_score_pick_default(const mf_model_t *m)
{
    if (!m || m->nfam <= 0 || (m->nrefs > 0 && m->refs && m->ref_label))
        return MF_MODE_LINEAR;
    for (int f = 0; f < m->nfam; f++)
        if (!m->fam[f].lstm)
            return MF_MODE_PAPER;
    return MF_MODE_LIKELIHOOD;
}

/* ---- options ------------------------------------------------------------------------------ */

void mf_score_opts_default(mf_score_opts_t *o)
{
    o->ngram_n = 2;
    o->knn_k = 5;
    o->knn_hi = 1;
    o->knn_idf = 1;
    o->combo_hi = 2;
    o->fuse_w = 50;
    o->lin_hi = 2;
    o->lin_c = 100;
}

#define OPT_FIELDS(X) \
    X(ngram_n) X(knn_k) X(knn_hi) X(knn_idf) X(combo_hi) X(fuse_w) X(lin_hi) X(lin_c)

void mf_score_opts_from_model(mf_score_opts_t *o, const mf_model_t *m)
{
    mf_score_opts_default(o);
#define GET(f) o->f = (int)mf_model_param(m, "score." #f, o->f);
    OPT_FIELDS(GET)
#undef GET
}

int mf_score_opts_save(const mf_score_opts_t *o, mf_model_t *m)
{
    int rc = MF_OK;
#define SET(f) if (rc == MF_OK) rc = mf_model_set_param(m, "score." #f, o->f);
    OPT_FIELDS(SET)
#undef SET
    return rc;
}

int mf_score_opts_check(const mf_score_opts_t *o, char *msg, size_t msglen)
{
    const char *bad = NULL;
    if (o->ngram_n < 1 || o->ngram_n > 8)
        bad = "ngram_n must be 1..8";
    else if (o->knn_k < 1 || o->knn_k > 64)
        bad = "knn_k must be 1..64";
    else if (o->knn_hi < 1 || o->knn_hi > 8)
        bad = "knn_hi must be 1..8";
    else if (o->knn_idf != 0 && o->knn_idf != 1)
        bad = "knn_idf must be 0 or 1";
    else if (o->combo_hi < 1 || o->combo_hi > 8)
        bad = "combo_hi must be 1..8";
    else if (o->fuse_w < 0 || o->fuse_w > 100)
        bad = "fuse_w must be 0..100";
    else if (o->lin_hi < 1 || o->lin_hi > 8)
        bad = "lin_hi must be 1..8";
    else if (o->lin_c < 1 || o->lin_c > 100000)
        bad = "lin_c must be 1..100000 (hundredths of C)";
    if (bad && msg && msglen)
        snprintf(msg, msglen, "%s", bad);
    return bad ? MF_EINVAL : MF_OK;
}

/* ---- the scorer --------------------------------------------------------------------------- */

/* A neighbour view: every kept reference as a key set of n-gram orders 1..hi, weighted by
 * idf over the kept references when `idf` (then an unseen key weighs `unseen`). */
typedef struct view {
    int hi, idf;
    mf_keyset_t *ref; /* nrefs; skipped references stay empty */
    uint64_t *dk;     /* sorted keys of the idf table */
    float *dw;        /* their idf */
    size_t nd;
    float unseen;
} view_t;

enum { V_KNN, V_COMBO1, V_COMBO2, V_NN, NVIEWS };

struct mf_scorer {
    const mf_model_t *m;
    mf_score_opts_t o;
    int nv, nw, nfam;
    size_t nrefs, nkept;
    unsigned char *skip_ref, *skip_fam;
    double thr[MF_NMODES];
    int has_pat, has_lstm;
    uint64_t *pat_bits;
    uint32_t *pat_cnt;
    uint64_t *pat_tot;  /* nfam: calls in each pattern (multiset denominators) */
    mf_keyset_t *pat_ng;
    uint64_t *ref_bits;
    float *api_idf;     /* nv: idf of each API over the kept references (explanations) */
    view_t view[NVIEWS];
    mf_linear_t *lin;   /* trained on the kept references; NULL without references */
    double lin_temp;    /* temperature of linear's probabilities; NAN = not fitted */
};

static int max_id(const mf_trace_t *t)
{
    int mx = -1;
    for (size_t i = 0; i < t->n; i++)
        if (t->ids[i] > mx)
            mx = t->ids[i];
    return mx;
}

static float view_weight(const view_t *v, uint64_t key)
{
    long j = mf__find_u64(v->dk, v->nd, key);
    return j >= 0 ? v->dw[j] : v->unseen;
}

/* Give ks weights from the view's idf table (no-op for unweighted views). */
static int view_weigh(const view_t *v, mf_keyset_t *ks)
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

static void view_destroy(view_t *v, size_t nrefs)
{
    if (v->ref)
        for (size_t i = 0; i < nrefs; i++)
            mf_keyset_destroy(&v->ref[i]);
    mf__free(v->ref);
    mf__free(v->dk);
    mf__free(v->dw);
    memset(v, 0, sizeof *v);
}

static int view_build(mf_scorer_t *s, view_t *v, int hi, int idf)
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

void mf_scorer_free(mf_scorer_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < NVIEWS; i++)
        view_destroy(&s->view[i], s->nrefs);
    if (s->pat_ng)
        for (int f = 0; f < s->nfam; f++)
            mf_keyset_destroy(&s->pat_ng[f]);
    mf__free(s->pat_ng);
    mf__free(s->pat_bits);
    mf__free(s->pat_cnt);
    mf__free(s->pat_tot);
    mf__free(s->ref_bits);
    mf__free(s->api_idf);
    mf_linear_free(s->lin);
    mf__free(s->skip_ref);
    mf__free(s->skip_fam);
    mf__free(s);
}

static mf_linear_opts_t linear_opts(const mf_score_opts_t *o)
{
    /* min_df 2: a key of a single trace names that trace, not its family */
    mf_linear_opts_t lo = {o->lin_hi, o->lin_c / 100.0, 2};
    return lo;
}

static int build(mf_scorer_t *s, const unsigned char *skip_ref, const unsigned char *skip_fam)
{
    const mf_model_t *m = s->m;
    s->nfam = m->nfam;
    s->nrefs = m->refs ? m->nrefs : 0;
    int nv = m->vocab ? mf_vocab_size(m->vocab) : 0;
    for (int f = 0; f < m->nfam; f++)
        if (max_id(&m->fam[f].pattern) + 1 > nv)
            nv = max_id(&m->fam[f].pattern) + 1;
    for (size_t i = 0; i < s->nrefs; i++)
        if (max_id(&m->refs[i]) + 1 > nv)
            nv = max_id(&m->refs[i]) + 1;
    s->nv = nv > 0 ? nv : 1;
    s->nw = mf_bits_words(s->nv);

    s->skip_ref = mf__calloc(s->nrefs ? s->nrefs : 1, 1);
    s->skip_fam = mf__calloc(s->nfam ? (size_t)s->nfam : 1, 1);
    if (!s->skip_ref || !s->skip_fam)
        return MF_ENOMEM;
    if (skip_ref)
        memcpy(s->skip_ref, skip_ref, s->nrefs);
    if (skip_fam)
        memcpy(s->skip_fam, skip_fam, (size_t)s->nfam);
    for (size_t i = 0; i < s->nrefs; i++) {
        int l = m->ref_label ? m->ref_label[i] : -1;
        if (l < 0 || l >= s->nfam || s->skip_fam[l])
            s->skip_ref[i] = 1; /* a reference of a removed family must not vote */
        s->nkept += !s->skip_ref[i];
    }

    /* patterns */
    size_t nf = s->nfam ? (size_t)s->nfam : 1;
    s->pat_bits = mf__calloc(nf * (size_t)s->nw, sizeof *s->pat_bits);
    s->pat_cnt = mf__calloc(nf * (size_t)s->nv, sizeof *s->pat_cnt);
    s->pat_tot = mf__calloc(nf, sizeof *s->pat_tot);
    s->pat_ng = mf__calloc(nf, sizeof *s->pat_ng);
    if (!s->pat_bits || !s->pat_cnt || !s->pat_tot || !s->pat_ng)
        return MF_ENOMEM;
    s->has_pat = s->nfam > 0;
    s->has_lstm = s->nfam > 0;
    for (int f = 0; f < s->nfam; f++) {
        const mf_trace_t *p = &m->fam[f].pattern;
        if (!m->fam[f].lstm)
            s->has_lstm = 0;
        if (p->n == 0)
            s->has_pat = 0;
        mf_bits_fill(s->pat_bits + (size_t)f * s->nw, s->nw, p->ids, p->n);
        uint32_t *c = s->pat_cnt + (size_t)f * s->nv;
        for (size_t i = 0; i < p->n; i++)
            if (p->ids[i] >= 0 && p->ids[i] < s->nv) {
                c[p->ids[i]]++;
                s->pat_tot[f]++;
            }
        int rc = mf_keyset_build(&s->pat_ng[f], p->ids, p->n, s->o.ngram_n, s->o.ngram_n);
        if (rc != MF_OK)
            return rc;
    }

    /* references: API bitsets and per-API idf (for nn and the explanations) */
    s->ref_bits = mf__calloc((s->nrefs ? s->nrefs : 1) * (size_t)s->nw, sizeof *s->ref_bits);
    s->api_idf = mf__calloc((size_t)s->nv, sizeof *s->api_idf);
    size_t *df = mf__calloc((size_t)s->nv, sizeof *df);
    if (!s->ref_bits || !s->api_idf || !df) {
        mf__free(df);
        return MF_ENOMEM;
    }
    for (size_t i = 0; i < s->nrefs; i++) {
        if (s->skip_ref[i])
            continue;
        uint64_t *b = s->ref_bits + i * (size_t)s->nw;
        mf_bits_fill(b, s->nw, m->refs[i].ids, m->refs[i].n);
        for (int id = 0; id < s->nv; id++)
            df[id] += (b[id >> 6] >> (id & 63)) & 1;
    }
    for (int id = 0; id < s->nv; id++)
        s->api_idf[id] = mf__idf(df[id], s->nkept);
    mf__free(df);

    if (s->nkept == 0)
        return MF_OK;
    int rc = view_build(s, &s->view[V_KNN], s->o.knn_hi, s->o.knn_idf);
    if (rc == MF_OK)
        rc = view_build(s, &s->view[V_COMBO1], 1, 1);
    if (rc == MF_OK)
        rc = view_build(s, &s->view[V_COMBO2], s->o.combo_hi, 1);
    if (rc == MF_OK && m->ref_label) {
        mf_linear_opts_t lo = linear_opts(&s->o);
        rc = mf_linear_train(&s->lin, m->refs, m->ref_label, s->skip_ref, s->nrefs, s->nfam,
                             &lo);
    }
    return rc;
}

/* Modes whose own scores say nothing about closeness to the training data (score.h): they
 * run combo too and take its best absolute score as novelty. */
static int novelty_by_combo(int mode)
{
    return mode == MF_MODE_FUSION || mode == MF_MODE_LINEAR;
}

mf_scorer_t *mf_scorer_new_ex(const mf_model_t *m, const mf_score_opts_t *o,
                              const unsigned char *skip_ref, const unsigned char *skip_fam)
{
    if (!m || m->nfam < 0)
        return NULL;
    mf_scorer_t *s = mf__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->m = m;
    if (o)
        s->o = *o;
    else
        mf_score_opts_from_model(&s->o, m);
    if (mf_score_opts_check(&s->o, NULL, 0) != MF_OK || build(s, skip_ref, skip_fam) != MF_OK) {
        mf_scorer_free(s);
        return NULL;
    }
    for (int i = 0; i < MF_NMODES; i++) {
        char name[48];
        snprintf(name, sizeof name, "unknown.%s", mode_names[i]);
        s->thr[i] = mf_model_param(m, name, -INFINITY);
    }
    /* fusion and linear judge novelty on combo's absolute scores (score.h), so they take
     * combo's threshold; models calibrated before that rule stored one on the fused scale */
    for (int i = 0; i < MF_NMODES; i++)
        if (novelty_by_combo(i))
            s->thr[i] = s->thr[MF_MODE_COMBO];
    s->lin_temp = mf_model_param(m, "linear.temp", NAN);
    return s;
}

mf_scorer_t *mf_scorer_new(const mf_model_t *m)
{
    return mf_scorer_new_ex(m, NULL, NULL, NULL);
}

int mf_score_mode_available(const mf_scorer_t *s, int mode)
{
    switch (mode) {
    case MF_MODE_PAPER:
    case MF_MODE_MULTISET:
    case MF_MODE_NGRAM:
        return s->has_pat;
    case MF_MODE_LIKELIHOOD:
        return s->has_lstm;
    case MF_MODE_NN:
    case MF_MODE_KNN:
    case MF_MODE_COMBO:
        return s->nkept > 0;
    case MF_MODE_FUSION:
        return s->nkept > 0 && s->has_lstm;
    case MF_MODE_LINEAR:
        return s->nkept > 0 && s->lin;
    }
    return 0;
}

double mf_scorer_threshold(const mf_scorer_t *s, int mode)
{
    return mode >= 0 && mode < MF_NMODES ? s->thr[mode] : -INFINITY;
}

void mf_scorer_set_threshold(mf_scorer_t *s, int mode, double thr)
{
    if (mode >= 0 && mode < MF_NMODES)
        s->thr[mode] = thr;
}

/* ---- scoring ------------------------------------------------------------------------------ */

/* Per-call scratch: the family scores and, for neighbour modes, the k best similarities of
 * each family (nfam, k) with the reference that gave the best one. */
typedef struct scratch {
    double *score;    /* nfam */
    double *best;     /* (nfam, k) descending, -1 = empty slot */
    long *best_ref;   /* nfam: the closest reference of each family, -1 = none */
    uint64_t *bits;   /* nw: the trace's API set */
    double novelty;   /* the best kept combo score, once combo has run */
    mf_linear_vec_t lvec; /* linear: the trace's feature vector (scoring, explanation) */
} scratch_t;

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
 * `scale` times the mean of the k best similarities of each family into sc->score. */
static int score_view(const mf_scorer_t *s, const view_t *v, const mf_trace_t *t, int k,
                      long skip, double scale, scratch_t *sc)
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
    for (size_t i = 0; i < s->nrefs; i++) {
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

static int score_modes(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip,
                       scratch_t *sc)
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
        rc = score_view(s, NULL, t, 1, skip, 1.0, sc);
        break;
    case MF_MODE_KNN:
        memset(sc->score, 0, (size_t)s->nfam * sizeof *sc->score);
        rc = score_view(s, &s->view[V_KNN], t, s->o.knn_k, skip, 1.0, sc);
        break;
    case MF_MODE_COMBO:
        /* the second view runs last, so best_ref (for the explanation) comes from it */
        memset(sc->score, 0, (size_t)s->nfam * sizeof *sc->score);
        rc = score_view(s, &s->view[V_COMBO1], t, s->o.knn_k, skip, 0.5, sc);
        if (rc == MF_OK)
            rc = score_view(s, &s->view[V_COMBO2], t, s->o.knn_k, skip, 0.5, sc);
        sc->novelty = -INFINITY;
        for (int f = 0; f < s->nfam; f++)
            if (!s->skip_fam[f] && sc->score[f] > sc->novelty)
                sc->novelty = sc->score[f];
        break;
    case MF_MODE_FUSION: {
        /* likelihood first, kept aside; combo last, so best_ref is set for the explanation */
        double *ll = mf__malloc((size_t)s->nfam * sizeof *ll);
        if (!ll)
            return MF_ENOMEM;
        rc = score_modes(s, MF_MODE_LIKELIHOOD, t, skip, sc);
        if (rc == MF_OK) {
            memcpy(ll, sc->score, (size_t)s->nfam * sizeof *ll);
            standardise(s, ll);
            rc = score_modes(s, MF_MODE_COMBO, t, skip, sc);
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
        /* combo first, for novelty and the nearest reference of the explanation */
        rc = score_modes(s, MF_MODE_COMBO, t, skip, sc);
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

/* ---- explanation -------------------------------------------------------------------------- */

typedef struct item {
    double w;
    size_t pos; /* position in the trace (n-grams) or API id */
} item_t;

static int cmp_item(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->w != y->w)
        return x->w < y->w ? 1 : -1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static void append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > cap)
        return; /* whole words or nothing: no cut names */
    memcpy(buf + *len, s, n + 1);
    *len += n;
}

/* "shared with FAM: api, api, ...; n-grams: a>b, ..." - the APIs (and bigrams) of the trace
 * that the winning family also has, rarest over the training traces first: a rare API in
 * common says more than ntclose does. */
static void explain(const mf_scorer_t *s, int mode, const mf_trace_t *t, int f,
                    const scratch_t *sc, char *out)
{
    const mf_model_t *m = s->m;
    size_t len = 0;
    char tmp[2 * MF_MAX_API_LEN + 64];
    out[0] = '\0';
    const uint64_t *other = NULL;
    const mf_keyset_t *ong = NULL;
    const view_t *v = NULL;
    int viaref = mode == MF_MODE_NN || mode == MF_MODE_KNN || mode == MF_MODE_COMBO ||
                 mode == MF_MODE_FUSION || mode == MF_MODE_LINEAR; /* the last two ran combo */
    if (viaref) {
        long r = sc->best_ref[f];
        if (r < 0)
            return;
        other = s->ref_bits + (size_t)r * s->nw;
        v = mode == MF_MODE_KNN ? &s->view[V_KNN] : mode == MF_MODE_NN ? NULL
                                                                       : &s->view[V_COMBO2];
        if (v && v->hi >= 2)
            ong = &v->ref[r];
    } else {
        other = s->pat_bits + (size_t)f * s->nw;
        if (mode == MF_MODE_NGRAM && s->o.ngram_n == 2)
            ong = &s->pat_ng[f];
    }
    snprintf(tmp, sizeof tmp, "shared with %s:", m->fam[f].name ? m->fam[f].name : "?");
    append(out, MF_EXPLAIN_LEN, &len, tmp);

    item_t it[12];
    int nit = 0;
    for (int id = 0; id < s->nv; id++) {
        if (!((sc->bits[id >> 6] & other[id >> 6]) >> (id & 63) & 1))
            continue;
        item_t x = {s->api_idf[id], (size_t)id};
        if (nit < 8) {
            it[nit++] = x;
        } else if (cmp_item(&x, &it[7]) < 0) {
            it[7] = x;
        } else {
            continue;
        }
        qsort(it, (size_t)nit, sizeof *it, cmp_item);
    }
    for (int i = 0; i < nit; i++) {
        const char *nm = m->vocab ? mf_vocab_name(m->vocab, (int)it[i].pos) : NULL;
        if (nm)
            snprintf(tmp, sizeof tmp, "%s %s", i ? "," : "", nm);
        else
            snprintf(tmp, sizeof tmp, "%s #%d", i ? "," : "", (int)it[i].pos);
        append(out, MF_EXPLAIN_LEN, &len, tmp);
    }
    if (mode == MF_MODE_LINEAR) {
        /* the n-grams of the trace that push it most towards the family */
        size_t pos[4];
        int glen[4];
        int nt = mf_linear_top(s->lin, &sc->lvec, t->ids, t->n, f, 4, pos, glen);
        for (int i = 0; i < nt; i++) {
            append(out, MF_EXPLAIN_LEN, &len, i ? ", " : "; weighs most: ");
            for (int j = 0; j < glen[i]; j++) {
                const char *nm = m->vocab ? mf_vocab_name(m->vocab, t->ids[pos[i] + (size_t)j])
                                          : NULL;
                snprintf(tmp, sizeof tmp, "%s%s", j ? ">" : "", nm ? nm : "?");
                append(out, MF_EXPLAIN_LEN, &len, tmp);
            }
        }
        return;
    }
    if (!ong || t->n < 2)
        return;
    /* bigrams of the trace found in the family's set, highest weight first, distinct */
    nit = 0;
    for (size_t i = 0; i + 1 < t->n; i++) {
        uint64_t key = mf_ngram_key(t->ids + i, 2);
        long j = mf_keyset_find(ong, key);
        if (j < 0)
            continue;
        item_t x = {ong->w ? ong->w[j] : 1.0, i};
        int dup = 0;
        for (int a = 0; a < nit && !dup; a++)
            dup = t->ids[it[a].pos] == t->ids[i] && t->ids[it[a].pos + 1] == t->ids[i + 1];
        if (dup)
            continue;
        if (nit < 4) {
            it[nit++] = x;
        } else if (cmp_item(&x, &it[3]) < 0) {
            it[3] = x;
        } else {
            continue;
        }
        qsort(it, (size_t)nit, sizeof *it, cmp_item);
    }
    for (int i = 0; i < nit; i++) {
        const char *a = m->vocab ? mf_vocab_name(m->vocab, t->ids[it[i].pos]) : NULL;
        const char *b = m->vocab ? mf_vocab_name(m->vocab, t->ids[it[i].pos + 1]) : NULL;
        snprintf(tmp, sizeof tmp, "%s%s>%s", i ? ", " : "; n-grams: ", a ? a : "?", b ? b : "?");
        append(out, MF_EXPLAIN_LEN, &len, tmp);
    }
}

/* ---- ranking ------------------------------------------------------------------------------ */

int mf_score_trace_ex(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip_ref,
                      int top, mf_result_t *res)
{
    if (!s || !t || !res || mode < 0 || mode >= MF_NMODES || top < 1 || top > MF_MAX_TOP)
        return MF_EINVAL;
    if (!mf_score_mode_available(s, mode))
        return MF_EINVAL;
    memset(res, 0, sizeof *res);
    res->mode = mode;
    res->calls = t->n;
    res->threshold = s->thr[mode];
    size_t nf = s->nfam ? (size_t)s->nfam : 1;
    int k = s->o.knn_k;
    scratch_t sc;
    memset(&sc, 0, sizeof sc);
    sc.score = mf__calloc(nf, sizeof *sc.score);
    sc.best = mf__malloc(nf * (size_t)k * sizeof *sc.best);
    sc.best_ref = mf__malloc(nf * sizeof *sc.best_ref);
    sc.bits = mf__calloc((size_t)s->nw, sizeof *sc.bits);
    int rc = MF_ENOMEM;
    if (!sc.score || !sc.best || !sc.best_ref || !sc.bits)
        goto out;
    mf_bits_fill(sc.bits, s->nw, t->ids, t->n);
    rc = score_modes(s, mode, t, skip_ref, &sc);
    if (rc != MF_OK)
        goto out;
    /* selection of the `top` best kept families; ties go to the lower index */
    for (int f = 0; f < s->nfam; f++) {
        if (s->skip_fam[f])
            continue;
        mf_rank_t r = {f, sc.score[f], NAN};
        if (res->ntop == 0 || r.score < res->floor)
            res->floor = r.score;
        int i = res->ntop < top ? res->ntop++ : top;
        if (i == top) {
            if (!(r.score > res->top[top - 1].score))
                continue;
            i = top - 1;
        }
        while (i > 0 && res->top[i - 1].score < r.score) {
            res->top[i] = res->top[i - 1];
            i--;
        }
        res->top[i] = r;
    }
    if (mode == MF_MODE_LINEAR && isfinite(s->lin_temp) && res->ntop > 0) {
        /* softmax over every kept family, not only the ranked ones */
        double z = 0, mx = res->top[0].score;
        for (int f = 0; f < s->nfam; f++)
            if (!s->skip_fam[f])
                z += exp(s->lin_temp * (sc.score[f] - mx));
        for (int i = 0; i < res->ntop; i++)
            res->top[i].p = exp(s->lin_temp * (res->top[i].score - mx)) / z;
    }
    if (res->ntop > 0) {
        res->novelty = novelty_by_combo(mode) ? sc.novelty : res->top[0].score;
        res->unknown = res->novelty < res->threshold;
        explain(s, mode, t, res->top[0].family, &sc, res->explain);
    }
out:
    mf__free(sc.score);
    mf__free(sc.best);
    mf__free(sc.best_ref);
    mf__free(sc.bits);
    mf_linear_vec_free(&sc.lvec);
    return rc;
}

int mf_score_trace(const mf_scorer_t *s, int mode, const mf_trace_t *t, int top,
                   mf_result_t *res)
{
    return mf_score_trace_ex(s, mode, t, -1, top, res);
}

/* ---- calibration -------------------------------------------------------------------------- */

double mf_score_quantile(double *v, size_t n, double fu_rate)
{
    if (n == 0)
        return -INFINITY;
    qsort(v, n, sizeof *v, mf__cmp_double);
    size_t i = (size_t)floor(fu_rate * (double)n);
    if (i >= n)
        i = n - 1;
    return v[i]; /* at most i values (a fraction <= fu_rate) lie strictly below it */
}

/* Mean log loss of softmax(t * d) over n rows of nf decision values with labels y. */
static double log_loss(const double *d, const int *y, size_t n, int nf, double t)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const double *r = d + i * (size_t)nf;
        double mx = r[0], z = 0;
        for (int f = 1; f < nf; f++)
            mx = r[f] > mx ? r[f] : mx;
        for (int f = 0; f < nf; f++)
            z += exp(t * (r[f] - mx));
        sum += log(z) - t * (r[y[i]] - mx);
    }
    return n ? sum / (double)n : 0;
}

/* The temperature of linear's probabilities: out-of-fold decision values of the references
 * (5 folds dealt class by class in file order, mf__deal_folds without carry; an SVM trained
 * on the other folds, as a scorer built without them would train it), then the t in [0, 100]
 * of least log loss (the loss is convex in t: a ternary search finds it). */
static int fit_linear_temp(const mf_model_t *m, double *temp)
{
    enum { K = 5 };
    size_t n = m->nrefs;
    int nf = m->nfam;
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    mf_linear_opts_t lo = linear_opts(&o);
    int *fold = mf__malloc(n * sizeof *fold), *y = mf__malloc(n * sizeof *y);
    unsigned char *skip = mf__malloc(n);
    double *d = mf__malloc(n * (size_t)nf * sizeof *d);
    int rc = MF_ENOMEM;
    size_t rows = 0;
    if (!fold || !y || !skip || !d)
        goto out;
    rc = mf__deal_folds(m->ref_label, n, nf, K, 0, NULL, fold);
    for (int k = 0; k < K && rc == MF_OK; k++) {
        for (size_t i = 0; i < n; i++)
            skip[i] = fold[i] == k;
        mf_linear_t *lin;
        rc = mf_linear_train(&lin, m->refs, m->ref_label, skip, n, nf, &lo);
        for (size_t i = 0; i < n && rc == MF_OK; i++) {
            if (fold[i] != k)
                continue;
            rc = mf_linear_score(lin, m->refs[i].ids, m->refs[i].n, d + rows * (size_t)nf);
            y[rows++] = m->ref_label[i];
        }
        mf_linear_free(lin);
    }
    if (rc == MF_OK) {
        double tlo = 0, thi = 100;
        for (int it = 0; it < 100; it++) {
            double a = tlo + (thi - tlo) / 3, b = thi - (thi - tlo) / 3;
            if (log_loss(d, y, rows, nf, a) <= log_loss(d, y, rows, nf, b))
                thi = b;
            else
                tlo = a;
        }
        *temp = (tlo + thi) / 2;
    }
out:
    mf__free(fold);
    mf__free(y);
    mf__free(skip);
    mf__free(d);
    return rc;
}

int mf_score_calibrate(mf_model_t *m, double fu_rate)
{
    if (!m || !m->refs || m->nrefs == 0 || !(fu_rate >= 0 && fu_rate < 1))
        return MF_EINVAL;
    mf_scorer_t *s = mf_scorer_new(m);
    double *best = mf__malloc(m->nrefs * sizeof *best);
    int rc = MF_ENOMEM;
    if (!s || !best)
        goto out;
    rc = MF_OK;
    for (int mode = 0; mode < MF_NMODES && rc == MF_OK; mode++) {
        if (!mf_score_mode_available(s, mode))
            continue;
        size_t n = 0;
        for (size_t i = 0; i < m->nrefs && rc == MF_OK; i++) {
            mf_result_t r;
            rc = mf_score_trace_ex(s, mode, &m->refs[i], (long)i, 1, &r);
            if (rc == MF_OK && r.ntop > 0)
                best[n++] = r.novelty;
        }
        if (rc != MF_OK)
            break;
        char name[48];
        snprintf(name, sizeof name, "unknown.%s", mode_names[mode]);
        rc = mf_model_set_param(m, name, mf_score_quantile(best, n, fu_rate));
    }
    if (rc == MF_OK)
        rc = mf_model_set_param(m, "unknown.rate", fu_rate);
    if (rc == MF_OK && mf_score_mode_available(s, MF_MODE_LINEAR) && m->nfam > 1 &&
        m->nrefs >= 10) {
        double t;
        rc = fit_linear_temp(m, &t);
        if (rc == MF_OK)
            rc = mf_model_set_param(m, "linear.temp", t);
    }
out:
    mf__free(best);
    mf_scorer_free(s);
    return rc;
}

/* ---- JSON --------------------------------------------------------------------------------- */

typedef struct jbuf {
    char *buf;
    size_t cap, len; /* len counts every byte wanted, written or not */
} jbuf_t;

static void jput(jbuf_t *j, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, j->len++)
        if (j->len + 1 < j->cap)
            j->buf[j->len] = s[i];
}

static void jputs(jbuf_t *j, const char *s)
{
    jput(j, s, strlen(s));
}

/* A JSON string: quotes, backslash and control characters escaped; other bytes as they are
 * (names come from the vocabulary and the model file, UTF-8 or ASCII). */
static void jstr(jbuf_t *j, const char *s)
{
    jputs(j, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char e[8];
        if (*p == '"' || *p == '\\') {
            e[0] = '\\';
            e[1] = (char)*p;
            jput(j, e, 2);
        } else if (*p == '\n') {
            jputs(j, "\\n");
        } else if (*p == '\t') {
            jputs(j, "\\t");
        } else if (*p == '\r') {
            jputs(j, "\\r");
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(e, sizeof e, "\\u%04x", *p);
            jputs(j, e);
        } else {
            jput(j, (const char *)p, 1);
        }
    }
    jputs(j, "\"");
}

static void jnum(jbuf_t *j, double v)
{
    char n[40];
    if (isfinite(v))
        snprintf(n, sizeof n, "%.6g", v);
    else
        snprintf(n, sizeof n, "null");
    jputs(j, n);
}

int mf_result_json(const mf_result_t *r, const mf_model_t *m, char *buf, size_t cap)
{
    jbuf_t j = {buf, cap, 0};
    char n[40];
    jputs(&j, "{\"families\":[");
    for (int i = 0; i < r->ntop; i++) {
        int f = r->top[i].family;
        jputs(&j, i ? ",{\"family\":" : "{\"family\":");
        jstr(&j, m && f >= 0 && f < m->nfam ? m->fam[f].name : "?");
        jputs(&j, ",\"score\":");
        jnum(&j, r->top[i].score);
        /* rel: the score placed between the worst family (0) and the best (1), whatever the
         * mode's scale (likelihoods and fused scores are not in [0,1]): for bars in a UI */
        double span = r->top[0].score - r->floor;
        jputs(&j, ",\"rel\":");
        jnum(&j, span > 0 ? (r->top[i].score - r->floor) / span : 1.0);
        if (isfinite(r->top[i].p)) {
            jputs(&j, ",\"p\":");
            jnum(&j, r->top[i].p);
        }
        jputs(&j, "}");
    }
    jputs(&j, r->unknown ? "],\"unknown\":true,\"novelty\":" : "],\"unknown\":false,\"novelty\":");
    jnum(&j, r->novelty);
    jputs(&j, ",\"threshold\":");
    jnum(&j, r->threshold);
    jputs(&j, ",\"mode\":");
    jstr(&j, mf_score_mode_name(r->mode));
    jputs(&j, ",\"model\":");
    jstr(&j, m ? m->version : "");
    snprintf(n, sizeof n, ",\"calls\":%zu,\"explain\":", r->calls);
    jputs(&j, n);
    jstr(&j, r->explain);
    jputs(&j, "}");
    if (cap > 0)
        buf[j.len < cap ? j.len : cap - 1] = '\0';
    return (int)j.len;
}
