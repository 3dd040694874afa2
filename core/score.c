/* score.c - the scoring modes' registry and options, the scorer (built once from a model:
 * patterns, reference bitsets and views, the linear classifier, thresholds) and the scoring
 * of a trace: run the mode, rank the families, judge novelty, explain. The mode kernels are
 * in score_modes.c, explanations in explain.c, calibration in calibrate.c; the scorer's
 * layout and shapes in score_priv.h.
 */
#include "score_priv.h"

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
    if (!m || m->nfam <= 0 || (m->nrefs > 0 && (m->refs || m->ref_api) && m->ref_label))
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
    o->lin_bal = 1;
    o->lin_df = 2;
    o->lin_tf = 1;
    o->lin_proto = 0;
    o->lin_fthr = 0;
    o->lin_nov = 3;
    o->nov_protos = -1;
}

#define OPT_FIELDS(X) \
    X(ngram_n) X(knn_k) X(knn_hi) X(knn_idf) X(combo_hi) X(fuse_w) X(lin_hi) X(lin_c) X(lin_bal) \
        X(lin_df) X(lin_proto) X(lin_fthr) X(lin_nov) X(nov_protos) X(lin_tf)

void mf_score_opts_from_model(mf_score_opts_t *o, const mf_model_t *m)
{
    mf_score_opts_default(o);
    /* options added after models began to store theirs: a model that stored options without
     * them was trained and calibrated (threshold, temperature) with their old values */
    if (isfinite(mf_model_param(m, "score.lin_c", NAN))) {
        o->lin_bal = 0;
        o->lin_df = 2;
        o->lin_tf = 0;
        o->lin_proto = 0;
        o->lin_fthr = 0;
        o->lin_nov = 0;
    }
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
    else if (o->lin_bal != 0 && o->lin_bal != 1)
        bad = "lin_bal must be 0 or 1";
    else if (o->lin_df < 1 || o->lin_df > 16)
        bad = "lin_df must be 1..16";
    else if (o->lin_tf != 0 && o->lin_tf != 1)
        bad = "lin_tf must be 0 (sublinear) or 1 (binary)";
    else if (o->lin_proto < 0 || o->lin_proto > 1000)
        bad = "lin_proto must be 0..1000 (hundredths)";
    else if (o->lin_fthr != 0 && o->lin_fthr != 1)
        bad = "lin_fthr must be 0 or 1";
    else if (o->lin_nov < 0 || o->lin_nov > 5)
        bad = "lin_nov must be 0 (combo), 1 (decision value), 2 (probability), 3 (both), 4 "
              "(weakest of three parts) or 5 (weaker of 3 and the compression distance)";
    else if (o->nov_protos < -1 || o->nov_protos > 1000)
        bad = "nov_protos must be -1 (auto), 0 (every reference) or 1..1000";
    if (bad && msg && msglen)
        snprintf(msg, msglen, "%s", bad);
    return bad ? MF_EINVAL : MF_OK;
}

/* ---- the scorer --------------------------------------------------------------------------- */

static int max_id(const mf_trace_t *t)
{
    int mx = -1;
    for (size_t i = 0; i < t->n; i++)
        if (t->ids[i] > mx)
            mx = t->ids[i];
    return mx;
}

void mf_scorer_free(mf_scorer_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < MF__NVIEWS; i++)
        mf__view_destroy(&s->view[i], s->nrefs);
    if (s->pat_ng)
        for (int f = 0; f < s->nfam; f++)
            mf_keyset_destroy(&s->pat_ng[f]);
    mf__free(s->pat_ng);
    mf__free(s->pat_bits);
    mf__free(s->pat_cnt);
    mf__free(s->pat_tot);
    mf__free(s->ref_bits);
    mf__free(s->api_idf);
    mf__free(s->fthr);
    mf__free(s->proto);
    for (int i = 0; i < MF__NVIEWS && !s->post_borrowed; i++) {
        mf__free(s->post[i].off);
        mf__free(s->post[i].pos);
    }
    mf_linear_free(s->own_lin);
    mf__free(s->skip_ref);
    mf__free(s->skip_fam);
    mf__free(s);
}

mf_linear_opts_t mf__linear_opts(const mf_score_opts_t *o)
{
    mf_linear_opts_t lo = {.hi = o->lin_hi, .c = o->lin_c / 100.0, .min_df = o->lin_df,
                           .balanced = o->lin_bal, .proto = o->lin_proto / 100.0,
                           .tf = o->lin_tf};
    return lo;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* Linear's novelty prototypes (nov_protos): per family, up to n kept references chosen
 * farthest-first by API-set Jaccard distance (the one with most APIs, then each time the one
 * farthest from those chosen; ties to the lower index; stop early when the rest are copies).
 * n x R set comparisons at build, so a query compares F x n references, not R. */
static int pick_prototypes(mf_scorer_t *s, int n)
{
    size_t *byfam = mf__malloc((s->nrefs ? s->nrefs : 1) * sizeof *byfam);
    size_t *start = mf__calloc((size_t)s->nfam + 1, sizeof *start);
    double *dist = mf__malloc((s->nrefs ? s->nrefs : 1) * sizeof *dist);
    s->proto = mf__malloc(((size_t)s->nfam * (size_t)n + 1) * sizeof *s->proto);
    if (!byfam || !start || !dist || !s->proto) {
        mf__free(byfam);
        mf__free(start);
        mf__free(dist);
        return MF_ENOMEM;
    }
    for (size_t i = 0; i < s->nrefs; i++) /* kept references grouped by family, file order */
        if (!s->skip_ref[i])
            start[s->m->ref_label[i] + 1]++;
    for (int f = 0; f < s->nfam; f++)
        start[f + 1] += start[f];
    size_t *fill = mf__malloc(((size_t)s->nfam + 1) * sizeof *fill);
    if (!fill) {
        mf__free(byfam);
        mf__free(start);
        mf__free(dist);
        return MF_ENOMEM;
    }
    memcpy(fill, start, ((size_t)s->nfam + 1) * sizeof *fill);
    for (size_t i = 0; i < s->nrefs; i++)
        if (!s->skip_ref[i])
            byfam[fill[s->m->ref_label[i]]++] = i;
    mf__free(fill);
    const size_t nw = (size_t)s->nw;
    for (int f = 0; f < s->nfam; f++) {
        size_t a = start[f], b = start[f + 1], first = SIZE_MAX;
        int most = -1;
        for (size_t j = a; j < b; j++) {
            const uint64_t *bits = s->ref_bits + byfam[j] * nw;
            int c = 0;
            for (size_t w = 0; w < nw; w++)
                c += __builtin_popcountll(bits[w]);
            if (c > most) {
                most = c;
                first = j;
            }
            dist[j] = INFINITY;
        }
        for (int k = 0; k < n && first != SIZE_MAX; k++) {
            size_t r = byfam[first];
            s->proto[s->nproto++] = r;
            dist[first] = -1; /* chosen */
            size_t next = SIZE_MAX;
            for (size_t j = a; j < b; j++) {
                if (dist[j] < 0)
                    continue;
                double d = 1 - mf_jaccard_bits(s->ref_bits + byfam[j] * nw,
                                               s->ref_bits + r * nw, s->nw);
                if (d < dist[j])
                    dist[j] = d;
                if (dist[j] > 0 && (next == SIZE_MAX || dist[j] > dist[next]))
                    next = j;
            }
            first = next;
        }
    }
    mf__free(byfam);
    mf__free(start);
    mf__free(dist);
    qsort(s->proto, s->nproto, sizeof *s->proto, cmp_size);
    return MF_OK;
}

/* Prototypes per family linear's novelty compares (0 = every reference): nov_protos, auto
 * meaning 32 beyond MF__CAL_ALL kept references. */
static int protos_per_family(const mf_score_opts_t *o, size_t nkept)
{
    return o->nov_protos < 0 ? (nkept > MF__CAL_ALL ? 32 : 0) : o->nov_protos;
}

/* Whether s (its classifier chosen) may take combo's views and its prototypes from the
 * model's novelty index: linear alone, by prototypes, the model's own classifier (so every
 * reference kept, the model's options) and an index for these references and options. */
static int nov_fits(const mf_scorer_t *s, int np)
{
    const mf_model_nov_t *v = s->m->nov;
    return v && s->use_nov && s->only == MF_MODE_LINEAR && np > 0 && s->o.lin_nov >= 3 &&
           s->lin && s->lin == s->m->lin && v->np == np && v->combo_hi == s->o.combo_hi &&
           v->nkept == s->nkept && v->refs_crc == mf_model_refs_crc(s->m);
}

static int build_postings(const mf_scorer_t *s, const mf__view_t *v, mf__postings_t *p);

/* Whether a scorer of `only` (-1: every mode) with options o reads the reference traces,
 * not only their labels and API sets: the neighbour views, a classifier fitted here or with
 * its nearest-reference view (lin_proto), novelty's key sets unless nov_fits will hold and the
 * file has the inverted index (NOVK). `skips`: a scorer with references or families left out
 * (never the model's own classifier). The same conditions as build() and nov_fits. */
static int needs_traces(const mf_model_t *m, const mf_score_opts_t *o, int only, int use_nov,
                        int skips)
{
    if (m->nrefs == 0 || only == MF_MODE_PAPER || only == MF_MODE_MULTISET ||
        only == MF_MODE_NGRAM || only == MF_MODE_LIKELIHOOD || only == MF_MODE_NN)
        return 0;
    if (only != MF_MODE_LINEAR || skips || !m->ref_label || o->lin_nov == 5)
        return 1; /* lin_nov 5 compresses the traces themselves */
    size_t nkept = 0;
    for (size_t i = 0; i < m->nrefs; i++)
        nkept += m->ref_label[i] >= 0 && m->ref_label[i] < m->nfam;
    const mf_model_nov_t *v = m->nov;
    mf_linear_opts_t lo = mf__linear_opts(o);
    int np = protos_per_family(o, nkept);
    return !(v && use_nov && np > 0 && o->lin_nov >= 3 && !(lo.proto > 0) &&
             nkept == m->nrefs && mf_linear_same(m->lin, &lo, m->nfam) && v->np == np &&
             v->combo_hi == o->combo_hi && v->nkept == nkept &&
             v->refs_crc == mf_model_refs_crc(m) && v->view[0].off && v->view[1].off);
}

int mf_score_needs_refs(const mf_model_t *m, int mode)
{
    if (mf_model_has_refs(m))
        return 0;
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    return needs_traces(m, &o, mode, 1, 0);
}

/* View v (orders 1..hi) from the file's novelty index n (NOVI + NOVK): its table, and the
 * prototypes' key sets read off the inverted index (keys in table order = ascending, weights
 * summed in that order, as mf__keyset_weigh does): no n-gram is made or searched. A linear
 * scorer queries the index and needs each key set's weight sum alone (its explanation names
 * APIs and the classifier's n-grams, not the prototype's keys): then keys and weights are
 * not kept (100 MB at 500 x 50,000). */
static int view_from_index(mf_scorer_t *s, mf__view_t *v, int hi, const mf_model_nov_t *n,
                           int k)
{
    const int keys = s->only != MF_MODE_LINEAR;
    const size_t nd = n->view[k].nd;
    const uint32_t *off = n->view[k].off, *pos = n->view[k].pos;
    v->hi = hi;
    v->idf = 1;
    v->ref = mf__calloc(s->nrefs ? s->nrefs : 1, sizeof *v->ref);
    v->dk = mf__malloc((nd ? nd : 1) * sizeof *v->dk);
    v->dw = mf__malloc((nd ? nd : 1) * sizeof *v->dw);
    size_t *cnt = mf__calloc(n->nproto ? n->nproto : 1, sizeof *cnt);
    if (!v->ref || !v->dk || !v->dw || !cnt) {
        mf__free(cnt);
        return MF_ENOMEM;
    }
    memcpy(v->dk, n->view[k].dk, nd * sizeof *v->dk);
    memcpy(v->dw, n->view[k].dw, nd * sizeof *v->dw);
    v->nd = nd;
    v->unseen = n->view[k].unseen;
    for (uint32_t e = 0; e < off[nd]; e++)
        cnt[pos[e]]++;
    int rc = MF_OK;
    for (size_t j = 0; keys && j < n->nproto && rc == MF_OK; j++) {
        mf_keyset_t *r = &v->ref[n->proto[j]];
        if (cnt[j] == 0)
            continue;
        r->k = mf__malloc(cnt[j] * sizeof *r->k);
        r->w = mf__malloc(cnt[j] * sizeof *r->w);
        if (!r->k || !r->w)
            rc = MF_ENOMEM;
    }
    for (size_t t = 0; t < nd && rc == MF_OK; t++)
        for (uint32_t e = off[t]; e < off[t + 1]; e++) {
            mf_keyset_t *r = &v->ref[n->proto[pos[e]]];
            r->wsum += n->view[k].dw[t]; /* from 0 (calloc), in ascending key order */
            if (keys) {
                r->k[r->n] = n->view[k].dk[t];
                r->w[r->n++] = n->view[k].dw[t];
            }
        }
    mf__free(cnt);
    return rc;
}

static int build(mf_scorer_t *s, const unsigned char *skip_ref, const unsigned char *skip_fam)
{
    const int all = s->only < 0, combo = all || s->only == MF_MODE_COMBO ||
                                         s->only == MF_MODE_FUSION || s->only == MF_MODE_LINEAR;
    const mf_model_t *m = s->m;
    s->nfam = m->nfam;
    s->nrefs = m->refs || m->ref_api ? m->nrefs : 0;
    /* loaded without the traces (MF_LOAD_REFS): only what their API sets give */
    if (!mf_model_has_refs(m) && needs_traces(m, &s->o, s->only, s->use_nov, skip_ref || skip_fam))
        return MF_EINVAL;
    int nv = m->vocab ? mf_vocab_size(m->vocab) : 0;
    const size_t api_nw = m->ref_api ? (size_t)mf_bits_words(nv) : 0; /* ids < nv at load */
    for (int f = 0; f < m->nfam; f++)
        if (max_id(&m->fam[f].pattern) + 1 > nv)
            nv = max_id(&m->fam[f].pattern) + 1;
    for (size_t i = 0; m->refs && i < s->nrefs; i++)
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
        if (!m->fam[f].lstm || !m->fam[f].lstm->w) /* w NULL: loaded without networks */
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
        if (m->refs)
            mf_bits_fill(b, s->nw, m->refs[i].ids, m->refs[i].n);
        else
            memcpy(b, m->ref_api + i * api_nw,
                   (api_nw < (size_t)s->nw ? api_nw : (size_t)s->nw) * sizeof *b);
        for (int id = 0; id < s->nv; id++)
            df[id] += (b[id >> 6] >> (id & 63)) & 1;
    }
    for (int id = 0; id < s->nv; id++)
        s->api_idf[id] = mf__idf(df[id], s->nkept);
    mf__free(df);

    if (s->nkept == 0)
        return MF_OK;
    /* the views and the classifier only for the modes this scorer serves */
    int rc = MF_OK;
    if (all || s->only == MF_MODE_KNN)
        rc = mf__view_build(s, &s->view[MF__VIEW_KNN], s->o.knn_hi, s->o.knn_idf);
    if (rc == MF_OK && m->ref_label && (all || s->only == MF_MODE_LINEAR)) {
        /* the model's fitted classifier when it is this one (every reference kept, same
         * options); else (folds, other options, an old file) fit one */
        mf_linear_opts_t lo = mf__linear_opts(&s->o);
        if (s->nkept == s->nrefs && mf_linear_same(m->lin, &lo, s->nfam)) {
            s->lin = m->lin;
        } else {
            rc = mf_linear_train_ex(&s->own_lin, m->refs, m->ref_label, s->skip_ref,
                                    s->nrefs, s->nfam, &lo, s->fit_progress, s->fit_ctx);
            s->lin = s->own_lin;
        }
    }
    int np = protos_per_family(&s->o, s->nkept);
    if (rc == MF_OK && combo && nov_fits(s, np)) {
        /* linear alone, prototypes in effect, the file's index made for these references and
         * options: key sets for the prototypes only, idf from the stored tables */
        const mf_model_nov_t *v = m->nov;
        s->proto = mf__malloc(v->nproto * sizeof *s->proto);
        rc = s->proto ? MF_OK : MF_ENOMEM;
        if (rc == MF_OK) {
            memcpy(s->proto, v->proto, v->nproto * sizeof *s->proto);
            s->nproto = v->nproto;
        }
        if (rc == MF_OK && v->view[0].off && v->view[1].off) {
            /* the file's inverted index too (NOVK): key sets read off it, the index shared */
            rc = view_from_index(s, &s->view[MF__VIEW_COMBO1], 1, v, 0);
            if (rc == MF_OK)
                rc = view_from_index(s, &s->view[MF__VIEW_COMBO2], s->o.combo_hi, v, 1);
            for (int k = 0; rc == MF_OK && k < 2; k++)
                s->post[MF__VIEW_COMBO1 + k] = (mf__postings_t){v->view[k].off, v->view[k].pos};
            s->post_borrowed = rc == MF_OK;
        } else if (rc == MF_OK) {
            rc = mf__view_from_table(s, &s->view[MF__VIEW_COMBO1], 1, v->view[0].dk,
                                     v->view[0].dw, v->view[0].nd, v->view[0].unseen,
                                     s->proto, s->nproto);
            if (rc == MF_OK)
                rc = mf__view_from_table(s, &s->view[MF__VIEW_COMBO2], s->o.combo_hi,
                                         v->view[1].dk, v->view[1].dw, v->view[1].nd,
                                         v->view[1].unseen, s->proto, s->nproto);
        }
        if (rc == MF_OK)
            s->from_nov = 1;
        else if (rc == MF_EFORMAT) { /* not these references after all: build them */
            mf__view_destroy(&s->view[MF__VIEW_COMBO1], s->nrefs);
            mf__view_destroy(&s->view[MF__VIEW_COMBO2], s->nrefs);
            mf__free(s->proto);
            s->proto = NULL;
            s->nproto = 0;
            rc = MF_OK;
        }
    }
    if (rc == MF_OK && combo && !s->from_nov)
        rc = mf__view_build(s, &s->view[MF__VIEW_COMBO1], 1, 1);
    if (rc == MF_OK && combo && !s->from_nov)
        rc = mf__view_build(s, &s->view[MF__VIEW_COMBO2], s->o.combo_hi, 1);
    if (rc == MF_OK && !s->from_nov && np > 0 && s->lin && s->o.lin_nov >= 3)
        rc = pick_prototypes(s, np);
    if (rc == MF_OK && s->only == MF_MODE_LINEAR && s->proto && !s->from_nov) {
        /* linear alone compares the prototypes only (novelty and explanation): the other
         * references' key sets served the idf tables and go (a third of the references at
         * 500 x 50,000 stay) */
        size_t j = 0;
        for (size_t i = 0; i < s->nrefs; i++) {
            if (j < s->nproto && s->proto[j] == i) {
                j++;
                continue;
            }
            mf_keyset_destroy(&s->view[MF__VIEW_COMBO1].ref[i]);
            mf_keyset_destroy(&s->view[MF__VIEW_COMBO2].ref[i]);
        }
    }
    /* linear's combo over the prototypes through an inverted index of their keys: a query
     * visits its keys' postings instead of merging with every prototype's key set */
    for (int k = MF__VIEW_COMBO1; rc == MF_OK && s->proto && k <= MF__VIEW_COMBO2; k++)
        if (!s->post[k].off)
            rc = build_postings(s, &s->view[k], &s->post[k]);
    return rc;
}

/* The inverted index of view v's prototype key sets (mf__postings_t). Left empty (the scan
 * then compares key sets) when a key is missing from the view's table or the counts do not
 * fit 32 bits. MF_OK or MF_ENOMEM. */
static int build_postings(const mf_scorer_t *s, const mf__view_t *v, mf__postings_t *p)
{
    size_t total = 0;
    for (size_t j = 0; j < s->nproto; j++)
        total += v->ref[s->proto[j]].n;
    if (!v->dk || v->nd == 0 || total >= UINT32_MAX || s->nproto >= UINT32_MAX)
        return MF_OK;
    uint32_t *off = mf__calloc(v->nd + 1, sizeof *off);
    uint32_t *pos = mf__malloc((total ? total : 1) * sizeof *pos);
    size_t *at = mf__malloc(((v->nd + 1) * sizeof *at)); /* next free slot of each key */
    if (!off || !pos || !at) {
        mf__free(off);
        mf__free(pos);
        mf__free(at);
        return MF_ENOMEM;
    }
    /* two passes over the prototypes' keys: where each key is in the table (counting its
     * postings), then the postings in prototype order */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < s->nproto; j++) {
            const mf_keyset_t *r = &v->ref[s->proto[j]];
            size_t t = 0;
            for (size_t a = 0; a < r->n; a++) {
                size_t hi = v->nd; /* binary search in dk[t..nd): both are sorted */
                while (t < hi) {
                    size_t mid = t + (hi - t) / 2;
                    if (v->dk[mid] < r->k[a])
                        t = mid + 1;
                    else
                        hi = mid;
                }
                if (t == v->nd || v->dk[t] != r->k[a]) { /* not this table's key set */
                    mf__free(off);
                    mf__free(pos);
                    mf__free(at);
                    return MF_OK;
                }
                if (pass == 0)
                    off[t + 1]++;
                else
                    pos[at[t]++] = (uint32_t)j;
            }
        }
        if (pass == 0) {
            for (size_t t = 0; t < v->nd; t++) {
                off[t + 1] += off[t];
                at[t] = off[t];
            }
        }
    }
    mf__free(at);
    p->off = off;
    p->pos = pos;
    return MF_OK;
}

int mf__novelty_by_combo(const mf_score_opts_t *o, int mode)
{
    return mode == MF_MODE_FUSION || (mode == MF_MODE_LINEAR && o->lin_nov == 0);
}

double mf__p(const mf_scorer_t *s, const double *d, double di, double temp)
{
    /* softmax over every kept family, not only the ranked ones */
    double mx = -INFINITY, z = 0;
    for (int f = 0; f < s->nfam; f++)
        if (!s->skip_fam[f] && d[f] > mx)
            mx = d[f];
    for (int f = 0; f < s->nfam; f++)
        if (!s->skip_fam[f])
            z += exp(temp * (d[f] - mx));
    return z > 0 ? exp(temp * (di - mx)) / z : NAN;
}

static mf_scorer_t *scorer_new(const mf_model_t *m, const mf_score_opts_t *o,
                               const unsigned char *skip_ref, const unsigned char *skip_fam,
                               void (*fit_progress)(void *, int, int), void *fit_ctx, int only,
                               int use_nov)
{
    if (!m || m->nfam < 0 || only < -1 || only >= MF_NMODES)
        return NULL;
    mf_scorer_t *s = mf__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->m = m;
    s->only = only;
    if (o)
        s->o = *o;
    else
        mf_score_opts_from_model(&s->o, m);
    s->fit_progress = fit_progress;
    s->fit_ctx = fit_ctx;
    s->use_nov = use_nov;
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
        if (mf__novelty_by_combo(&s->o, i))
            s->thr[i] = s->thr[MF_MODE_COMBO];
    for (int i = 0; i < MF_NMODES; i++) {
        char name[48];
        snprintf(name, sizeof name, "%s.temp", mode_names[i]);
        s->temp[i] = mf_model_param(m, name, NAN);
    }
    s->fthr = mf__malloc((m->nfam ? (size_t)m->nfam : 1) * sizeof *s->fthr);
    if (!s->fthr) {
        mf_scorer_free(s);
        return NULL;
    }
    for (int f = 0; f < m->nfam; f++) {
        char name[48];
        snprintf(name, sizeof name, "unknown.linear.f%d", f);
        s->fthr[f] = s->o.lin_fthr && s->o.lin_nov ? mf_model_param(m, name, NAN) : NAN;
    }
    mf__linear_nov_load(s);
    return s;
}

mf_scorer_t *mf__scorer_new(const mf_model_t *m, const mf_score_opts_t *o,
                            const unsigned char *skip_ref, const unsigned char *skip_fam,
                            void (*fit_progress)(void *, int, int), void *fit_ctx, int only)
{
    return scorer_new(m, o, skip_ref, skip_fam, fit_progress, fit_ctx, only, 1);
}

int mf__nov_build(const mf_model_t *m, mf_model_nov_t **out)
{
    *out = NULL;
    if (!m->lin || !m->refs || !m->ref_label || m->nrefs == 0)
        return MF_OK;
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    if (mf_score_opts_check(&o, NULL, 0) != MF_OK || o.lin_nov < 3)
        return MF_OK;
    mf_linear_opts_t lo = mf__linear_opts(&o);
    size_t nkept = 0;
    for (size_t i = 0; i < m->nrefs; i++)
        nkept += m->ref_label[i] >= 0 && m->ref_label[i] < m->nfam;
    /* nothing to store for the exact scan, nor for a classifier the scorer would refit */
    if (protos_per_family(&o, nkept) == 0 || nkept != m->nrefs ||
        !mf_linear_same(m->lin, &lo, m->nfam))
        return MF_OK;
    mf_scorer_t *s = scorer_new(m, &o, NULL, NULL, NULL, NULL, MF_MODE_LINEAR, 0);
    if (!s)
        return MF_ENOMEM;
    if (!s->proto || s->nproto == 0 || s->lin != m->lin) {
        mf_scorer_free(s);
        return MF_OK;
    }
    mf_model_nov_t *v = mf__calloc(1, sizeof *v);
    if (!v) {
        mf_scorer_free(s);
        return MF_ENOMEM;
    }
    v->refs_crc = mf_model_refs_crc(m);
    v->combo_hi = o.combo_hi;
    v->np = protos_per_family(&o, s->nkept);
    v->nkept = s->nkept;
    v->proto = s->proto; /* taken from the scorer, which frees what it still holds */
    v->nproto = s->nproto;
    s->proto = NULL;
    for (int k = 0; k < 2; k++) {
        mf__view_t *sv = &s->view[MF__VIEW_COMBO1 + k];
        v->view[k].dk = sv->dk;
        v->view[k].dw = sv->dw;
        v->view[k].nd = sv->nd;
        v->view[k].unseen = sv->unseen;
        sv->dk = NULL;
        sv->dw = NULL;
        if (!s->post_borrowed) { /* the inverted index as well (NOVK) */
            v->view[k].off = s->post[MF__VIEW_COMBO1 + k].off;
            v->view[k].pos = s->post[MF__VIEW_COMBO1 + k].pos;
            s->post[MF__VIEW_COMBO1 + k] = (mf__postings_t){NULL, NULL};
        }
    }
    mf_scorer_free(s);
    *out = v;
    return MF_OK;
}

mf_scorer_t *mf_scorer_new_ex(const mf_model_t *m, const mf_score_opts_t *o,
                              const unsigned char *skip_ref, const unsigned char *skip_fam)
{
    return mf__scorer_new(m, o, skip_ref, skip_fam, NULL, NULL, -1);
}

mf_scorer_t *mf_scorer_new_mode(const mf_model_t *m, const mf_score_opts_t *o, int mode)
{
    return mf__scorer_new(m, o, NULL, NULL, NULL, NULL, mode);
}

mf_scorer_t *mf_scorer_new(const mf_model_t *m)
{
    return mf_scorer_new_ex(m, NULL, NULL, NULL);
}

const char *mf_score_model_lacks(const mf_model_t *m, int mode)
{
    int pat = m->nfam > 0, lstm = m->nfam > 0;
    size_t refs = 0;
    for (int f = 0; f < m->nfam; f++) {
        pat = pat && m->fam[f].pattern.n > 0;
        lstm = lstm && m->fam[f].lstm;
    }
    for (size_t i = 0; (m->refs || m->ref_api) && m->ref_label && i < m->nrefs; i++)
        refs += m->ref_label[i] >= 0 && m->ref_label[i] < m->nfam;
    switch (mode) {
    case MF_MODE_PAPER:
    case MF_MODE_MULTISET:
    case MF_MODE_NGRAM:
        return pat ? NULL : "a pattern per family";
    case MF_MODE_LIKELIHOOD:
        return lstm ? NULL : "an LSTM per family";
    case MF_MODE_NN:
    case MF_MODE_KNN:
    case MF_MODE_COMBO:
    case MF_MODE_LINEAR:
        return refs ? NULL : "training references";
    case MF_MODE_FUSION:
        return !lstm ? "an LSTM per family" : refs ? NULL : "training references";
    }
    return "a known mode";
}

int mf_score_mode_available(const mf_scorer_t *s, int mode)
{
    if (s->only >= 0 && mode != s->only)
        return 0;
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

/* ---- ranking ------------------------------------------------------------------------------ */

int mf_score_trace_ex(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip_ref,
                      int top, mf_result_t *res)
{
    return mf__score_trace_all(s, mode, t, skip_ref, top, res, NULL);
}

int mf__score_trace_all(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip_ref,
                        int top, mf_result_t *res, double *all)
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
    mf__scratch_t sc;
    memset(&sc, 0, sizeof sc);
    sc.score = mf__calloc(nf, sizeof *sc.score);
    sc.best = mf__malloc(nf * (size_t)k * sizeof *sc.best);
    sc.best_ref = mf__malloc(nf * sizeof *sc.best_ref);
    sc.bits = mf__calloc((size_t)s->nw, sizeof *sc.bits);
    int rc = MF_ENOMEM;
    if (!sc.score || !sc.best || !sc.best_ref || !sc.bits)
        goto out;
    mf_bits_fill(sc.bits, s->nw, t->ids, t->n);
    rc = mf__score_modes(s, mode, t, skip_ref, &sc);
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
    if (isfinite(s->temp[mode]))
        for (int i = 0; i < res->ntop; i++)
            res->top[i].p = mf__p(s, sc.score, res->top[i].score, s->temp[mode]);
    if (all)
        memcpy(all, sc.score, (size_t)s->nfam * sizeof *all);
    if (res->ntop > 0) {
        res->novelty = mf__novelty_by_combo(&s->o, mode) ? sc.novelty
                       : mode == MF_MODE_LINEAR
                           ? mf__linear_novelty(s, sc.score, sc.novelty, sc.combo_top, sc.ncd_top)
                           : res->top[0].score;
        if (mode == MF_MODE_LINEAR && isfinite(s->fthr[res->top[0].family]))
            res->threshold = s->fthr[res->top[0].family];
        res->unknown = res->novelty < res->threshold;
        rc = mf__explain(s, mode, t, res->top[0].family, &sc, res->explain);
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
