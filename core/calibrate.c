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
    mf_linear_opts_t lo = mf__linear_opts(&o);
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
        snprintf(name, sizeof name, "unknown.%s", mf_score_mode_name(mode));
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
