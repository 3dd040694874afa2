/* calibrate.c - what mf_score_calibrate stores in a model: the unknown threshold of every
 * mode (a quantile of the references' leave-one-out best scores) and the temperature of
 * linear's probabilities (fitted on out-of-fold decision values). */
#include "score_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "linear.h"
#include "mf.h"

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

int mf__linear_oof(const mf_model_t *m, const mf_score_opts_t *o,
                   const unsigned char *skip_fam, double *d, int *y, size_t *ref,
                   size_t *rows)
{
    enum { K = 5 };
    size_t n = m->nrefs;
    int nf = m->nfam;
    mf_linear_opts_t lo = mf__linear_opts(o);
    int *fold = mf__malloc((n ? n : 1) * sizeof *fold);
    unsigned char *skip = mf__malloc(n ? n : 1);
    int rc = MF_ENOMEM;
    *rows = 0;
    if (!fold || !skip)
        goto out;
    rc = mf__deal_folds(m->ref_label, n, nf, K, 0, NULL, fold);
    for (int k = 0; k < K && rc == MF_OK; k++) {
        for (size_t i = 0; i < n; i++) {
            int l = m->ref_label[i];
            skip[i] = fold[i] == k || l < 0 || l >= nf || (skip_fam && skip_fam[l]);
        }
        mf_linear_t *lin;
        rc = mf_linear_train(&lin, m->refs, m->ref_label, skip, n, nf, &lo);
        for (size_t i = 0; i < n && rc == MF_OK; i++) {
            int l = m->ref_label[i];
            if (fold[i] != k || l < 0 || l >= nf || (skip_fam && skip_fam[l]))
                continue;
            rc = mf_linear_score(lin, m->refs[i].ids, m->refs[i].n, d + *rows * (size_t)nf);
            ref[*rows] = i;
            y[(*rows)++] = l;
        }
        mf_linear_free(lin);
    }
out:
    mf__free(fold);
    mf__free(skip);
    return rc;
}

/* The temperature of linear's probabilities: the t in [0, 100] of least log loss of the
 * out-of-fold decision values d (rows x nf, labels y; the loss is convex in t: a ternary
 * search finds it). */
static double fit_linear_temp(const double *d, const int *y, size_t rows, int nf)
{
    double tlo = 0, thi = 100;
    for (int it = 0; it < 100; it++) {
        double a = tlo + (thi - tlo) / 3, b = thi - (thi - tlo) / 3;
        if (log_loss(d, y, rows, nf, a) <= log_loss(d, y, rows, nf, b))
            thi = b;
        else
            tlo = a;
    }
    return (tlo + thi) / 2;
}

int mf_score_calibrate(mf_model_t *m, double fu_rate)
{
    if (!m || !m->refs || m->nrefs == 0 || !(fu_rate >= 0 && fu_rate < 1))
        return MF_EINVAL;
    mf_scorer_t *s = mf_scorer_new(m);
    double *best = mf__malloc(m->nrefs * sizeof *best);
    double *d = mf__malloc(m->nrefs * (size_t)(m->nfam ? m->nfam : 1) * sizeof *d);
    int *y = mf__malloc(m->nrefs * sizeof *y);
    size_t *ref = mf__malloc(m->nrefs * sizeof *ref);
    size_t rows = 0;
    int rc = MF_ENOMEM;
    if (!s || !best || !d || !y || !ref)
        goto out;
    rc = MF_OK;
    /* linear first: out-of-fold decision values give its temperature and, when it judges
     * novelty on its own values (lin_nov), its threshold (in-sample values would be too
     * confident: every reference lies on its own side of the margin) */
    int oof = mf_score_mode_available(s, MF_MODE_LINEAR) && m->nfam > 1 && m->nrefs >= 10;
    if (oof) {
        rc = mf__linear_oof(m, &s->o, NULL, d, y, ref, &rows);
        if (rc == MF_OK) {
            s->lin_temp = fit_linear_temp(d, y, rows, m->nfam);
            rc = mf_model_set_param(m, "linear.temp", s->lin_temp);
        }
    }
    for (int mode = 0; mode < MF_NMODES && rc == MF_OK; mode++) {
        if (!mf_score_mode_available(s, mode))
            continue;
        size_t n = 0;
        if (mode == MF_MODE_LINEAR && s->o.lin_nov != 0 && oof) {
            rc = mf__linear_novelty_oof(s, d, ref, rows, best);
            n = rows;
            if (rc == MF_OK && s->o.lin_fthr)
                rc = mf__linear_fam_thr(s, d, best, rows, fu_rate, s->fthr, NULL);
            for (int f = 0; f < m->nfam && rc == MF_OK; f++) {
                char name[48];
                snprintf(name, sizeof name, "unknown.linear.f%d", f);
                if (s->o.lin_fthr || isfinite(mf_model_param(m, name, NAN)))
                    rc = mf_model_set_param(m, name, s->o.lin_fthr ? s->fthr[f] : NAN);
            }
        } else {
            for (size_t i = 0; i < m->nrefs && rc == MF_OK; i++) {
                mf_result_t r;
                rc = mf_score_trace_ex(s, mode, &m->refs[i], (long)i, 1, &r);
                if (rc == MF_OK && r.ntop > 0)
                    best[n++] = r.novelty;
            }
        }
        if (rc != MF_OK)
            break;
        char name[48];
        snprintf(name, sizeof name, "unknown.%s", mf_score_mode_name(mode));
        rc = mf_model_set_param(m, name, mf_score_quantile(best, n, fu_rate));
    }
    if (rc == MF_OK)
        rc = mf_model_set_param(m, "unknown.rate", fu_rate);
out:
    mf__free(best);
    mf__free(d);
    mf__free(y);
    mf__free(ref);
    mf_scorer_free(s);
    return rc;
}

int mf__linear_fam_thr(const mf_scorer_t *s, const double *d, const double *nov, size_t rows,
                       double fu_rate, double *fthr, int *guess)
{
    enum { MIN_ROWS = 10 };
    int *g = mf__malloc((rows ? rows : 1) * sizeof *g);
    double *v = mf__malloc((rows ? rows : 1) * sizeof *v);
    if (!g || !v) {
        mf__free(g);
        mf__free(v);
        return MF_ENOMEM;
    }
    for (size_t r = 0; r < rows; r++) {
        const double *x = d + r * (size_t)s->nfam;
        g[r] = -1;
        for (int f = 0; f < s->nfam; f++)
            if (!s->skip_fam[f] && (g[r] < 0 || x[f] > x[g[r]]))
                g[r] = f;
        if (guess)
            guess[r] = g[r];
    }
    for (int f = 0; f < s->nfam; f++) {
        size_t n = 0;
        for (size_t r = 0; r < rows; r++)
            if (g[r] == f)
                v[n++] = nov[r];
        fthr[f] = n >= MIN_ROWS ? mf_score_quantile(v, n, fu_rate) : NAN;
    }
    mf__free(g);
    mf__free(v);
    return MF_OK;
}

int mf__linear_novelty_oof(const mf_scorer_t *s, const double *d, const size_t *ref,
                           size_t rows, double *nov)
{
    for (size_t r = 0; r < rows; r++) {
        double combo = 1;
        if (s->o.lin_nov == 3) { /* combo's similarity with the reference itself left out */
            mf_result_t res;
            int rc = mf_score_trace_ex(s, MF_MODE_COMBO, &s->m->refs[ref[r]], (long)ref[r], 1,
                                       &res);
            if (rc != MF_OK)
                return rc;
            combo = res.ntop ? res.novelty : 0;
        }
        nov[r] = mf__linear_novelty(s, d + r * (size_t)s->nfam, combo);
    }
    return MF_OK;
}
