/* eval.c - metrics, cross-validation and open-set checks for the scoring modes. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mf.h"
#include "rng.h"
#include "score_priv.h"

int mf_metrics_init(mf_metrics_t *m, int nclass)
{
    memset(m, 0, sizeof *m);
    if (nclass < 1)
        return MF_EINVAL;
    size_t c = (size_t)nclass;
    m->nclass = nclass;
    m->cls_n = mf__calloc(c, sizeof *m->cls_n);
    m->cls_top1 = mf__calloc(c, sizeof *m->cls_top1);
    m->cls_top3 = mf__calloc(c, sizeof *m->cls_top3);
    m->conf = mf__calloc(c * c, sizeof *m->conf);
    if (!m->cls_n || !m->cls_top1 || !m->cls_top3 || !m->conf) {
        mf_metrics_destroy(m);
        return MF_ENOMEM;
    }
    return MF_OK;
}

void mf_metrics_destroy(mf_metrics_t *m)
{
    mf__free(m->cls_n);
    mf__free(m->cls_top1);
    mf__free(m->cls_top3);
    mf__free(m->conf);
    memset(m, 0, sizeof *m);
}

void mf_metrics_add(mf_metrics_t *m, int truth, const mf_result_t *r)
{
    if (truth < 0 || truth >= m->nclass) {
        m->foreign++;
        m->foreign_unknown += r->unknown != 0;
        return;
    }
    m->n++;
    m->cls_n[truth]++;
    m->unknown += r->unknown != 0;
    for (int i = 0; i < r->ntop && i < 3; i++) {
        if (r->top[i].family != truth)
            continue;
        if (i == 0) {
            m->top1++;
            m->cls_top1[truth]++;
        }
        m->top3++;
        m->cls_top3[truth]++;
        break;
    }
    if (r->ntop > 0 && r->top[0].family >= 0 && r->top[0].family < m->nclass)
        m->conf[(size_t)truth * m->nclass + r->top[0].family]++;
    if (r->ntop > 0 && isfinite(r->top[0].p)) {
        double pt = 0; /* a true class ranked below the answer's top gets p ~ 0 */
        for (int i = 0; i < r->ntop; i++)
            if (r->top[i].family == truth)
                pt = r->top[i].p;
        m->np++;
        m->p_top1 += r->top[0].p;
        m->log_loss += -log(pt > 1e-12 ? pt : 1e-12);
    }
}

double mf_metrics_mean_p(const mf_metrics_t *m)
{
    return m->np ? m->p_top1 / (double)m->np : NAN;
}

double mf_metrics_log_loss(const mf_metrics_t *m)
{
    return m->np ? m->log_loss / (double)m->np : NAN;
}

static double ratio(size_t a, size_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

double mf_metrics_top1(const mf_metrics_t *m)
{
    return ratio(m->top1, m->n);
}

double mf_metrics_top3(const mf_metrics_t *m)
{
    return ratio(m->top3, m->n);
}

double mf_metrics_unknown_rate(const mf_metrics_t *m)
{
    return ratio(m->unknown, m->n);
}

double mf_metrics_foreign_unknown(const mf_metrics_t *m)
{
    return ratio(m->foreign_unknown, m->foreign);
}

/* tp, fp and fn of class c from the confusion matrix */
static void counts(const mf_metrics_t *m, int c, size_t *tp, size_t *fp, size_t *fn)
{
    size_t k = (size_t)m->nclass;
    *tp = m->conf[(size_t)c * k + c];
    *fp = *fn = 0;
    for (size_t j = 0; j < k; j++) {
        if ((int)j == c)
            continue;
        *fp += m->conf[j * k + c];
        *fn += m->conf[(size_t)c * k + j];
    }
}

double mf_metrics_f1(const mf_metrics_t *m, int c)
{
    size_t tp, fp, fn;
    counts(m, c, &tp, &fp, &fn);
    size_t den = 2 * tp + fp + fn;
    return den ? 2.0 * (double)tp / (double)den : 0.0;
}

double mf_metrics_macro_f1(const mf_metrics_t *m)
{
    double sum = 0;
    int n = 0;
    for (int c = 0; c < m->nclass; c++) {
        size_t tp, fp, fn;
        counts(m, c, &tp, &fp, &fn);
        if (tp + fp + fn == 0)
            continue; /* a class nobody has and nobody guessed says nothing */
        sum += mf_metrics_f1(m, c);
        n++;
    }
    return n ? sum / n : 0.0;
}

void mf_wilson_ci(size_t k, size_t n, double ci[2])
{
    if (n == 0 || k > n) {
        ci[0] = 0;
        ci[1] = 1;
        return;
    }
    double nn = (double)n, p = (double)k / nn, z2 = MF_CI_Z * MF_CI_Z;
    double mid = (p + z2 / (2 * nn)) / (1 + z2 / nn);
    double half = MF_CI_Z / (1 + z2 / nn) * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    /* at 0 or n hits one end is exactly 0 or 1; rounding must not push it outside */
    ci[0] = k == 0 ? 0.0 : fmax(0.0, mid - half);
    ci[1] = k == n ? 1.0 : fmin(1.0, mid + half);
}

void mf_metrics_top1_ci(const mf_metrics_t *m, double ci[2])
{
    mf_wilson_ci(m->top1, m->n, ci);
}

void mf_metrics_top3_ci(const mf_metrics_t *m, double ci[2])
{
    mf_wilson_ci(m->top3, m->n, ci);
}

int mf_metrics_macro_f1_ci(const mf_metrics_t *m, uint64_t seed, double ci[2])
{
    if (m->n == 0) {
        ci[0] = 0;
        ci[1] = 1;
        return MF_OK;
    }
    size_t kk = (size_t)m->nclass * (size_t)m->nclass;
    size_t *cell = mf__malloc(m->n * sizeof *cell); /* each sample's cell; kk: no cell */
    size_t *conf = mf__malloc(kk * sizeof *conf);
    double *f1 = mf__malloc(MF_BOOT_DRAWS * sizeof *f1);
    int rc = MF_ENOMEM;
    if (!cell || !conf || !f1)
        goto out;
    size_t j = 0;
    for (size_t i = 0; i < kk; i++)
        for (size_t c = 0; c < m->conf[i] && j < m->n; c++)
            cell[j++] = i;
    while (j < m->n)
        cell[j++] = kk;
    mf_metrics_t draw = *m; /* the counts with the drawn matrix: macro-F1 reads only that */
    draw.conf = conf;
    uint64_t rng = seed;
    for (int d = 0; d < MF_BOOT_DRAWS; d++) {
        memset(conf, 0, kk * sizeof *conf);
        for (size_t i = 0; i < m->n; i++) {
            size_t s = cell[mf_rng_next(&rng) % m->n]; /* % is biased by n / 2^64: nothing */
            if (s < kk)
                conf[s]++;
        }
        f1[d] = mf_metrics_macro_f1(&draw);
    }
    qsort(f1, MF_BOOT_DRAWS, sizeof *f1, mf__cmp_double);
    /* as many draws below the low end as above the high end: 2.5 % each */
    ci[0] = f1[MF_BOOT_DRAWS / 40];
    ci[1] = f1[MF_BOOT_DRAWS - 1 - MF_BOOT_DRAWS / 40];
    rc = MF_OK;
out:
    mf__free(cell);
    mf__free(conf);
    mf__free(f1);
    return rc;
}

double mf_auroc(double *pos, size_t npos, double *neg, size_t nneg)
{
    if (npos == 0 || nneg == 0)
        return 0.5;
    qsort(pos, npos, sizeof *pos, mf__cmp_double);
    qsort(neg, nneg, sizeof *neg, mf__cmp_double);
    /* for each positive: negatives strictly below it, plus half the ties (two pointers) */
    double wins = 0;
    size_t lo = 0, hi = 0;
    for (size_t i = 0; i < npos; i++) {
        while (lo < nneg && neg[lo] < pos[i])
            lo++;
        if (hi < lo)
            hi = lo;
        while (hi < nneg && neg[hi] <= pos[i])
            hi++;
        wins += (double)lo + 0.5 * (double)(hi - lo);
    }
    return wins / ((double)npos * (double)nneg);
}

double mf_detect_at_rate(const double *pos, size_t npos, double *neg, size_t nneg, double rate)
{
    if (npos == 0 || nneg == 0 || !(rate >= 0))
        return 0.0;
    qsort(neg, nneg, sizeof *neg, mf__cmp_double);
    /* negatives allowed above t (the epsilon: 0.29 * 100 is 28.999... in binary) */
    size_t above = (size_t)floor(rate * (double)nneg + 1e-9);
    if (above >= nneg)
        above = nneg - 1;
    double t = neg[nneg - 1 - above];
    size_t det = 0;
    for (size_t i = 0; i < npos; i++)
        det += pos[i] > t;
    return (double)det / (double)npos;
}

int mf_eval_label_map(const mf_model_t *m, const mf_dataset_t *ds, int *map)
{
    int matched = 0;
    for (int l = 0; l < ds->nlabels; l++) {
        map[l] = -1;
        for (int f = 0; f < m->nfam; f++)
            if (m->fam[f].name && strcmp(m->fam[f].name, ds->labels[l]) == 0) {
                map[l] = f;
                matched++;
                break;
            }
    }
    return matched;
}

int mf_eval_run(const mf_scorer_t *s, int mode, const mf_dataset_t *ds, int split,
                const int *map, mf_metrics_t *out, double *best, int *best_truth,
                size_t *nbest)
{
    size_t nb = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const mf_sample_t *x = &ds->samples[i];
        if (split != MF_SPLIT_ANY && x->split != split)
            continue;
        mf_result_t r;
        int rc = mf_score_trace(s, mode, &x->trace, MF_MAX_TOP, &r);
        if (rc != MF_OK)
            return rc;
        int truth = x->label >= 0 && x->label < ds->nlabels ? map[x->label] : -1;
        mf_metrics_add(out, truth, &r);
        if (best) {
            best[nb] = r.ntop ? r.novelty : -INFINITY;
            if (best_truth)
                best_truth[nb] = truth;
            nb++;
        }
    }
    if (nbest)
        *nbest = nb;
    return MF_OK;
}

/* modes that only need references (the folds leave some out; linear retrains on the rest) */
static int neighbour_mode(int mode)
{
    return mode == MF_MODE_NN || mode == MF_MODE_KNN || mode == MF_MODE_COMBO ||
           mode == MF_MODE_LINEAR;
}

int mf__deal_folds(const int *label, size_t n, int nclass, int k, int carry, uint64_t *rng,
                   int *fold)
{
    if (k < 1)
        return MF_EINVAL;
    size_t *perm = NULL;
    if (rng && n > 1) {
        perm = mf__malloc(n * sizeof *perm);
        if (!perm)
            return MF_ENOMEM;
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates with the caller's RNG */
            size_t j = (size_t)(mf_rng_next(rng) % (i + 1));
            size_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    }
    /* class -1 gathers the labels outside 0..nclass-1: dealt with carry, else left out */
    int next = 0;
    for (int c = -1; c < nclass; c++) {
        if (!carry)
            next = 0;
        for (size_t a = 0; a < n; a++) {
            size_t i = perm ? perm[a] : a;
            int l = label[i];
            if (c == -1 ? l >= 0 && l < nclass : l != c)
                continue;
            if (c == -1 && !carry) {
                fold[i] = -1;
                continue;
            }
            fold[i] = next;
            next = (next + 1) % k;
        }
    }
    mf__free(perm);
    return MF_OK;
}

int mf_eval_cv(const mf_model_t *m, const mf_score_opts_t *o, int mode, int k, uint64_t seed,
               mf_metrics_t *out)
{
    if (!m || !neighbour_mode(mode) || k < 2 || m->nrefs < (size_t)k || !m->ref_label)
        return MF_EINVAL;
    size_t n = m->nrefs;
    int *fold = mf__malloc(n * sizeof *fold);
    unsigned char *skip = mf__malloc(n);
    int rc = MF_ENOMEM;
    if (!fold || !skip)
        goto out;
    /* shuffled with the seed, then dealt class by class, so folds are stratified */
    rc = mf__deal_folds(m->ref_label, n, m->nfam, k, 1, &seed, fold);
    for (int f = 0; f < k && rc == MF_OK; f++) {
        for (size_t i = 0; i < n; i++)
            skip[i] = fold[i] == f;
        /* built for this mode alone: no SVM fit for knn, no knn view for linear */
        mf_scorer_t *s = mf__scorer_new(m, o, skip, NULL, NULL, NULL, mode);
        if (!s) {
            rc = MF_ENOMEM;
            break;
        }
        for (size_t i = 0; i < n && rc == MF_OK; i++) {
            if (!skip[i])
                continue;
            mf_result_t r;
            rc = mf_score_trace(s, mode, &m->refs[i], MF_MAX_TOP, &r);
            if (rc == MF_OK)
                mf_metrics_add(out, m->ref_label[i], &r);
        }
        mf_scorer_free(s);
    }
out:
    mf__free(fold);
    mf__free(skip);
    return rc;
}

int mf_eval_leave_out(const mf_model_t *m, const mf_score_opts_t *o, int mode, int fam,
                      double fu_rate, const mf_dataset_t *ds, int split, const int *map,
                      mf_openset_t *res)
{
    memset(res, 0, sizeof *res);
    if (!m || fam < 0 || fam >= m->nfam || m->nfam < 2 || !(fu_rate >= 0 && fu_rate < 1) ||
        mode < 0 || mode >= MF_NMODES)
        return MF_EINVAL;
    size_t nr = m->nrefs ? m->nrefs : 1, nd = ds && ds->n ? ds->n : 1;
    unsigned char *skip_fam = mf__calloc((size_t)m->nfam, 1);
    double *cal = mf__malloc(nr * sizeof *cal);
    double *pos = mf__malloc((nd > nr ? nd : nr) * sizeof *pos);
    double *neg = mf__malloc((nd > nr ? nd : nr) * sizeof *neg);
    double *d = NULL;
    int *y = NULL;
    size_t *ref = NULL;
    int *guess = NULL; /* lin_fthr: each calibration row's top family */
    mf_scorer_t *s = NULL;
    int rc = MF_ENOMEM;
    if (!skip_fam || !cal || !pos || !neg)
        goto out;
    skip_fam[fam] = 1;
    s = mf__scorer_new(m, o, NULL, skip_fam, NULL, NULL, mode); /* what this mode needs */
    if (!s)
        goto out;
    rc = MF_EINVAL;
    if (!mf_score_mode_available(s, mode))
        goto out;
    /* threshold from the kept references, as mf_score_calibrate does for a whole model:
     * leave-one-out, or out-of-fold decision values when linear judges novelty itself */
    size_t nc = 0;
    if (mode == MF_MODE_LINEAR && s->o.lin_nov != 0 && m->nrefs >= 10) {
        d = mf__malloc(nr * (size_t)m->nfam * sizeof *d);
        y = mf__malloc(nr * sizeof *y);
        ref = mf__malloc(nr * sizeof *ref);
        rc = d && y && ref ? mf__linear_oof(m, &s->o, skip_fam, d, y, ref, &nc, NULL, NULL)
                             : MF_ENOMEM;
        if (rc == MF_OK)
            rc = mf__linear_novelty_oof(s, d, ref, nc, cal);
        if (rc == MF_OK && s->o.lin_fthr) {
            guess = mf__malloc(nr * sizeof *guess);
            rc = guess ? mf__linear_fam_thr(s, d, cal, nc, fu_rate, s->fthr, guess)
                       : MF_ENOMEM;
        }
        if (rc != MF_OK)
            goto out;
    } else {
        for (size_t i = 0; i < m->nrefs; i++) {
            if (m->ref_label[i] == fam)
                continue;
            mf_result_t r;
            rc = mf_score_trace_ex(s, mode, &m->refs[i], (long)i, 1, &r);
            if (rc != MF_OK)
                goto out;
            cal[nc++] = r.ntop ? r.novelty : -INFINITY;
        }
    }
    size_t np = 0, nn = 0, fu = 0, det = 0;
    if (split == MF_SPLIT_TRAIN) {
        /* on the references themselves: the kept ones as calibrated (never scored by what
         * saw them), the left-out family's by the scorer without it */
        for (size_t i = 0; i < nc; i++)
            neg[nn++] = -cal[i];
    }
    res->thr = mf_score_quantile(cal, nc, fu_rate); /* sorts cal; neg keeps the order */
    mf_scorer_set_threshold(s, mode, res->thr);
    if (split == MF_SPLIT_TRAIN) {
        for (size_t i = 0; i < nn; i++) { /* each row against its top family's threshold */
            double t = guess && isfinite(s->fthr[guess[i]]) ? s->fthr[guess[i]] : res->thr;
            fu += -neg[i] < t;
        }
        for (size_t i = 0; i < m->nrefs; i++) {
            if (m->ref_label[i] != fam)
                continue;
            mf_result_t r;
            rc = mf_score_trace(s, mode, &m->refs[i], 1, &r);
            if (rc != MF_OK)
                goto out;
            pos[np++] = r.ntop ? -r.novelty : INFINITY;
            det += r.unknown != 0;
        }
    }
    for (size_t i = 0; split != MF_SPLIT_TRAIN && i < ds->n; i++) {
        const mf_sample_t *x = &ds->samples[i];
        if (split != MF_SPLIT_ANY && x->split != split)
            continue;
        int truth = x->label >= 0 && x->label < ds->nlabels ? map[x->label] : -1;
        if (truth < 0)
            continue; /* foreign to the whole model: not part of this experiment */
        mf_result_t r;
        rc = mf_score_trace(s, mode, &x->trace, 1, &r);
        if (rc != MF_OK)
            goto out;
        double u = r.ntop ? -r.novelty : INFINITY; /* unknown score: higher = stranger */
        if (truth == fam) {
            pos[np++] = u;
            det += r.unknown != 0;
        } else {
            neg[nn++] = u;
            fu += r.unknown != 0;
        }
    }
    res->nknown = nn;
    res->nout = np;
    res->fu_rate = ratio(fu, nn);
    res->detect = ratio(det, np);
    res->auroc = mf_auroc(pos, np, neg, nn);
    res->detect_at = mf_detect_at_rate(pos, np, neg, nn, fu_rate);
    rc = MF_OK;
out:
    mf_scorer_free(s);
    mf__free(skip_fam);
    mf__free(cal);
    mf__free(pos);
    mf__free(neg);
    mf__free(d);
    mf__free(y);
    mf__free(ref);
    mf__free(guess);
    return rc;
}

int mf_eval_model_from_dataset(mf_model_t *m, const mf_dataset_t *ds, int split)
{
    if (!m || m->nfam != 0 || m->nrefs != 0 || m->fam || m->refs || ds->nlabels < 1)
        return MF_EINVAL;
    size_t n = 0;
    for (size_t i = 0; i < ds->n; i++)
        n += split == MF_SPLIT_ANY || ds->samples[i].split == split;
    m->fam = mf__calloc((size_t)ds->nlabels, sizeof *m->fam);
    if (!m->fam)
        return MF_ENOMEM;
    for (int l = 0; l < ds->nlabels; l++) {
        m->fam[l].name = mf__strndup(ds->labels[l], strlen(ds->labels[l]));
        if (!m->fam[l].name)
            return MF_ENOMEM;
        mf_trace_init(&m->fam[l].pattern);
        m->nfam = l + 1;
    }
    m->refs = mf__calloc(n ? n : 1, sizeof *m->refs);
    m->ref_label = mf__calloc(n ? n : 1, sizeof *m->ref_label);
    if (!m->refs || !m->ref_label)
        return MF_ENOMEM;
    for (size_t i = 0; i < ds->n; i++) {
        const mf_sample_t *x = &ds->samples[i];
        if (split != MF_SPLIT_ANY && x->split != split)
            continue;
        int rc = mf_trace_copy(&m->refs[m->nrefs], &x->trace);
        if (rc != MF_OK)
            return rc;
        m->ref_label[m->nrefs++] = x->label;
    }
    return MF_OK;
}
