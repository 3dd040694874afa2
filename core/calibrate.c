/* calibrate.c - what mf_score_calibrate stores in a model: the unknown threshold of every
 * mode (a quantile of the references' leave-one-out best scores) and the temperature of every
 * mode's probabilities ("<mode>.temp"; linear's fitted on out-of-fold decision values, the
 * others' on the same leave-one-out / held-out score vectors that set the thresholds); also
 * linear's own novelty (lin_nov 1-5) and the anchors lin_nov 4 and 5 judge their parts by. */
#include "score_priv.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "linear.h"
#include "mf.h"

/* ---- items over threads ---------------------------------------------------------------------
 * Calibration scores its references one by one against a read-only scorer: the items are
 * independent, each writes its own slots, so they run over cal_threads threads and every
 * result is the one a single thread makes. */
static atomic_int cal_threads = 1;

void mf_score_set_threads(int n)
{
    atomic_store(&cal_threads, n > 1 ? n : 1);
    mf_linear_set_threads(n);
}

typedef struct {
    int (*item)(void *ctx, size_t i); /* MF_OK or an error, which stops the run */
    void *ctx;
    size_t n;
    atomic_size_t next;
    atomic_int rc;
    pthread_mutex_t lock; /* the progress calls and their count */
    size_t done;
    mf_progress_fn fn;
    void *fctx;
    const char *phase;
} par_t;

static void *par_worker(void *arg)
{
    par_t *p = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n || atomic_load(&p->rc) != MF_OK)
            break;
        int rc = p->item(p->ctx, i);
        if (rc != MF_OK) {
            atomic_store(&p->rc, rc);
            break;
        }
        if (p->fn) {
            pthread_mutex_lock(&p->lock);
            size_t d = ++p->done;
            if (d % 64 == 0 || d == p->n)
                p->fn(p->fctx, p->phase, d, p->n);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

/* item(ctx, i) for i in 0..n-1 over the threads; fn (may be NULL) hears of every 64th. */
static int par_for(size_t n, int (*item)(void *ctx, size_t i), void *ctx, mf_progress_fn fn,
                   void *fctx, const char *phase)
{
    enum { MAX_THREADS = 64 };
    par_t p = {.item = item, .ctx = ctx, .n = n, .fn = fn, .fctx = fctx, .phase = phase};
    atomic_init(&p.next, 0);
    atomic_init(&p.rc, MF_OK);
    if (pthread_mutex_init(&p.lock, NULL) != 0)
        return MF_ENOMEM;
    pthread_t th[MAX_THREADS];
    int nt = atomic_load(&cal_threads), started = 0;
    nt = nt < MAX_THREADS ? nt : MAX_THREADS;
    for (int t = 1; t < nt && (size_t)t < n; t++)
        started += pthread_create(&th[started], NULL, par_worker, &p) == 0;
    par_worker(&p); /* this thread too (alone when none could start) */
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&p.lock);
    return atomic_load(&p.rc);
}

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

/* Mean log loss of softmax(t * d) over n rows of nf scores with labels y. */
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

int mf__cal_folds(const int *label, size_t n, int nclass, int *fold, int *keval)
{
    int k = 5;
    *keval = k;
    if (n > MF__CAL_ALL) { /* fold 0 of k holds about MF__CAL_SAMPLE; only it is scored */
        k = (int)((n + MF__CAL_SAMPLE - 1) / MF__CAL_SAMPLE);
        *keval = 1;
    }
    return mf__deal_folds(label, n, nclass, k, 0, NULL, fold);
}

/* Progress of the fold fits as one count over every class of every scored fold. */
typedef struct {
    mf_progress_fn fn;
    void *ctx;
    int fold, nfold;
} oof_progress_t;

static void oof_class_done(void *ctx, int done, int total)
{
    oof_progress_t *p = ctx;
    p->fn(p->ctx, "svm folds", (size_t)p->fold * (size_t)total + (size_t)done,
          (size_t)p->nfold * (size_t)total);
}

/* mf__linear_oof; with held non-NULL and a single scored fold (the held-out sample), that
 * fold's classifier is kept in *held instead of freed (NULL otherwise). */
static int linear_oof(const mf_model_t *m, const mf_score_opts_t *o,
                      const unsigned char *skip_fam, double *d, int *y, size_t *ref,
                      size_t *rows, mf_progress_fn fn, void *ctx, mf_linear_t **held);

int mf__linear_oof(const mf_model_t *m, const mf_score_opts_t *o,
                   const unsigned char *skip_fam, double *d, int *y, size_t *ref,
                   size_t *rows, mf_progress_fn fn, void *ctx)
{
    return linear_oof(m, o, skip_fam, d, y, ref, rows, fn, ctx, NULL);
}

static int linear_oof(const mf_model_t *m, const mf_score_opts_t *o,
                      const unsigned char *skip_fam, double *d, int *y, size_t *ref,
                      size_t *rows, mf_progress_fn fn, void *ctx, mf_linear_t **held)
{
    if (held)
        *held = NULL;
    size_t n = m->nrefs;
    int nf = m->nfam;
    mf_linear_opts_t lo = mf__linear_opts(o);
    int *fold = mf__malloc((n ? n : 1) * sizeof *fold);
    unsigned char *skip = mf__malloc(n ? n : 1);
    int rc = MF_ENOMEM, keval = 0;
    *rows = 0;
    if (!fold || !skip)
        goto out;
    rc = mf__cal_folds(m->ref_label, n, nf, fold, &keval);
    oof_progress_t pg = {fn, ctx, 0, keval};
    for (int k = 0; k < keval && rc == MF_OK; k++) {
        pg.fold = k;
        for (size_t i = 0; i < n; i++) {
            int l = m->ref_label[i];
            skip[i] = fold[i] == k || l < 0 || l >= nf || (skip_fam && skip_fam[l]);
        }
        mf_linear_t *lin;
        rc = mf_linear_train_ex(&lin, m->refs, m->ref_label, skip, n, nf, &lo,
                                fn ? oof_class_done : NULL, &pg);
        for (size_t i = 0; i < n && rc == MF_OK; i++) {
            int l = m->ref_label[i];
            if (fold[i] != k || l < 0 || l >= nf || (skip_fam && skip_fam[l]))
                continue;
            rc = mf_linear_score(lin, m->refs[i].ids, m->refs[i].n, d + *rows * (size_t)nf);
            ref[*rows] = i;
            y[(*rows)++] = l;
        }
        if (held && keval == 1 && rc == MF_OK)
            *held = lin;
        else
            mf_linear_free(lin);
    }
out:
    mf__free(fold);
    mf__free(skip);
    return rc;
}

/* The temperature of a mode's probabilities softmax(t * score): the t in [0, 1000] of least
 * log loss of held-out score vectors d (rows x nf, labels y; the loss is convex in t: a
 * ternary search finds it). Every mode's scores enter as they are, because each is already
 * on a scale where a difference between two families means the same for any trace:
 * similarities (paper, multiset, ngram, nn, knn, combo) lie in [0, 1]; likelihood is the
 * mean log-likelihood per call, so softmax(t * ll) weighs the families by their per-call
 * likelihood ratio to the power t and does not grow with the trace's length; fusion mixes
 * z-scores and linear gives decision values, both unbounded but centred. The bound is wide
 * because similarity gaps between families are small (0.05 needs t ~ 50 to mean odds of 10). */
static double fit_temp(const double *d, const int *y, size_t rows, int nf)
{
    double tlo = 0, thi = 1000;
    for (int it = 0; it < 100; it++) {
        double a = tlo + (thi - tlo) / 3, b = thi - (thi - tlo) / 3;
        if (log_loss(d, y, rows, nf, a) <= log_loss(d, y, rows, nf, b))
            thi = b;
        else
            tlo = a;
    }
    return (tlo + thi) / 2;
}

/* A held-out score row the temperature fit can use: a known label and finite scores (a
 * family the mode cannot score would make the loss undefined). */
static int temp_row(const double *row, int label, int nf)
{
    if (label < 0 || label >= nf)
        return 0;
    for (int f = 0; f < nf; f++)
        if (!isfinite(row[f]))
            return 0;
    return 1;
}

typedef struct {
    mf_progress_fn fn;
    void *ctx;
} fit_progress_t;

static void fit_class_done(void *ctx, int done, int total)
{
    fit_progress_t *p = ctx;
    p->fn(p->ctx, "svm", (size_t)done, (size_t)total);
}

/* One reference of a mode's calibration: its leave-one-out best score into best[k], its score
 * vector into row k of sv; got[k] bit 0: ranked, bit 1: the row serves the temperature. */
typedef struct {
    const mf_scorer_t *s;
    int mode;
    const size_t *sample;
    double *sv, *best;
    unsigned char *got;
    const size_t *rows; /* the rows to score (item j is row rows[j]), NULL: every row */
} cal_mode_t;

static int cal_mode_item(void *ctx, size_t j)
{
    cal_mode_t *c = ctx;
    const mf_model_t *m = c->s->m;
    size_t k = c->rows ? c->rows[j] : j;
    size_t i = c->sample[k];
    double *row = c->sv + k * (size_t)m->nfam;
    mf_result_t r;
    int rc = mf__score_trace_all(c->s, c->mode, &m->refs[i], (long)i, 1, &r, row);
    c->got[k] = 0;
    if (rc == MF_OK && r.ntop > 0) {
        c->best[k] = r.novelty;
        c->got[k] = 1 | (temp_row(row, m->ref_label[i], m->nfam) ? 2 : 0);
    }
    return rc;
}

/* The rows with mine[k] set (NULL: all) over the threads; fn hears of them as the phase. */
static int cal_rows(const mf_scorer_t *s, int mode, const size_t *sample, size_t n,
                    const unsigned char *mine, double *sv, double *best, unsigned char *got,
                    mf_progress_fn fn, void *ctx, const char *phase)
{
    size_t *rows = NULL, nr = n;
    if (mine) {
        rows = mf__malloc((n ? n : 1) * sizeof *rows);
        if (!rows)
            return MF_ENOMEM;
        nr = 0;
        for (size_t k = 0; k < n; k++)
            if (mine[k])
                rows[nr++] = k;
    }
    cal_mode_t cm = {s, mode, sample, sv, best, got, rows};
    int rc = par_for(nr, cal_mode_item, &cm, fn, ctx, phase);
    mf__free(rows);
    return rc;
}

int mf_score_cal_rows(const mf_scorer_t *s, int mode, const size_t *sample, size_t n,
                      const unsigned char *mine, double *sv, double *best, unsigned char *got)
{
    for (size_t k = 0; k < n; k++)
        if (sample[k] >= s->m->nrefs)
            return MF_EINVAL;
    if (!mf_score_mode_available(s, mode))
        return MF_EINVAL;
    return cal_rows(s, mode, sample, n, mine, sv, best, got, NULL, NULL, NULL);
}

static mf_cal_spread_t cal_spread; /* plan NULL: every row is scored here */

void mf_score_set_spread(const mf_cal_spread_t *s)
{
    if (s)
        cal_spread = *s;
    else
        memset(&cal_spread, 0, sizeof cal_spread);
}

/* Progress of this process's share of a spread mode's rows, told as the whole phase's (so
 * the ETA is the phase's); the end is told once every row is in. */
typedef struct {
    mf_progress_fn fn;
    void *ctx;
    size_t n, share;
} share_progress_t;

static void share_done(void *ctx, const char *phase, size_t done, size_t total)
{
    share_progress_t *p = ctx;
    (void)total;
    size_t d = p->share ? (size_t)((double)done * (double)p->n / (double)p->share) : 0;
    p->fn(p->ctx, phase, d < p->n ? d : p->n - 1, p->n);
}

/* A mode's rows: here, or over the processes of the spread hook (plan, this process's
 * share, merge). */
static int cal_rows_spread(mf_model_t *m, const mf_scorer_t *s, int mode, const size_t *sample,
                           size_t n, double *sv, double *best, unsigned char *got,
                           mf_progress_fn fn, void *ctx, const char *phase)
{
    if (!cal_spread.plan)
        return cal_rows(s, mode, sample, n, NULL, sv, best, got, fn, ctx, phase);
    unsigned char *mine = mf__calloc(n ? n : 1, 1);
    int rc = mine ? cal_spread.plan(cal_spread.ctx, m, mode, sample, n, mine) : MF_ENOMEM;
    share_progress_t sp = {fn, ctx, n, 0};
    for (size_t k = 0; rc == MF_OK && k < n; k++)
        sp.share += mine[k] != 0;
    if (rc == MF_OK)
        rc = cal_rows(s, mode, sample, n, mine, sv, best, got, fn ? share_done : NULL, &sp,
                      phase);
    int ok = rc == MF_OK;
    int mr = cal_spread.merge(cal_spread.ctx, mode, n, mine, m->nfam, ok ? sv : NULL,
                              ok ? best : NULL, ok ? got : NULL);
    rc = rc == MF_OK ? mr : rc;
    if (rc == MF_OK && fn)
        fn(ctx, phase, n, n);
    mf__free(mine);
    return rc;
}

static int calibrate(mf_model_t *m, double fu_rate, mf_progress_fn fn, void *ctx, int only);

int mf_score_calibrate(mf_model_t *m, double fu_rate)
{
    return mf_score_calibrate_ex(m, fu_rate, NULL, NULL);
}

int mf_score_calibrate_ex(mf_model_t *m, double fu_rate, mf_progress_fn fn, void *ctx)
{
    return calibrate(m, fu_rate, fn, ctx, -1);
}

int mf_score_calibrate_mode(mf_model_t *m, double fu_rate, int mode)
{
    if (!m || mode < -1 || mode >= MF_NMODES)
        return MF_EINVAL;
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    /* a mode judged on combo's threshold needs combo's calibration too: every mode then */
    return calibrate(m, fu_rate, NULL, NULL, mode >= 0 && mf__novelty_by_combo(&o, mode) ? -1 : mode);
}

/* Calibrate every mode (only -1) or mode `only` alone (the others keep the model's values). */
static int calibrate(mf_model_t *m, double fu_rate, mf_progress_fn fn, void *ctx, int only)
{
    if (!m || !m->refs || m->nrefs == 0 || !(fu_rate >= 0 && fu_rate < 1))
        return MF_EINVAL;
    const int lin = only < 0 || only == MF_MODE_LINEAR;
    /* the classifier is fitted afresh (the references may have changed) and kept in the model,
     * so that loading the saved file fits nothing */
    if (lin) {
        mf_linear_free(m->lin);
        m->lin = NULL;
    }
    fit_progress_t fp = {fn, ctx};
    mf_scorer_t *s = NULL;
    double *best = mf__malloc(m->nrefs * sizeof *best);
    double *d = mf__malloc(m->nrefs * (size_t)(m->nfam ? m->nfam : 1) * sizeof *d);
    int *y = mf__malloc(m->nrefs * sizeof *y);
    size_t *ref = mf__malloc(m->nrefs * sizeof *ref);
    int *fold = mf__malloc(m->nrefs * sizeof *fold);
    double *sv = NULL; /* the scored references' score vectors (nsample, nfam) and labels */
    int *sy = NULL;
    size_t *sample = NULL; /* the scored references, in order */
    unsigned char *got = NULL;
    size_t rows = 0;
    int rc = MF_ENOMEM, keval = 0, oof = 0;
    if (!best || !d || !y || !ref || !fold)
        goto out;
    /* the references whose leave-one-out scores set the thresholds: all of them, or past
     * MF__CAL_ALL the held-out sample the linear fit leaves out too */
    rc = mf__cal_folds(m->ref_label, m->nrefs, m->nfam, fold, &keval);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    if (rc == MF_OK && lin && keval == 1 && m->ref_label && m->nfam > 1 && o.lin_proto == 0) {
        /* past MF__CAL_ALL the held-out fold's classifier (every reference but the sample) is
         * the one the model keeps: one fit instead of two, and the sample's decision values
         * that calibrate it are out of sample for the very classifier that answers (not with
         * lin_proto: a loaded classifier's nearest-reference view takes every reference) */
        rc = linear_oof(m, &o, NULL, d, y, ref, &rows, fn, ctx, &m->lin);
        oof = rc == MF_OK;
    }
    if (rc == MF_OK) {
        s = mf__scorer_new(m, NULL, NULL, NULL, fn ? fit_class_done : NULL, &fp, only);
        rc = s ? MF_OK : MF_ENOMEM;
    }
    if (rc == MF_OK && oof && s->lin != m->lin)
        rc = MF_EINVAL; /* the scorer must answer with the classifier it was calibrated for */
    if (rc != MF_OK)
        goto out;
    size_t nsample = 0;
    for (size_t i = 0; i < m->nrefs; i++)
        nsample += keval > 1 || fold[i] == 0;
    sv = mf__malloc((nsample ? nsample : 1) * (size_t)(m->nfam ? m->nfam : 1) * sizeof *sv);
    sy = mf__malloc((nsample ? nsample : 1) * sizeof *sy);
    sample = mf__malloc((nsample ? nsample : 1) * sizeof *sample);
    got = mf__malloc(nsample ? nsample : 1);
    if (rc == MF_OK && (!sv || !sy || !sample || !got))
        rc = MF_ENOMEM;
    for (size_t i = 0, k = 0; rc == MF_OK && i < m->nrefs; i++)
        if (keval > 1 || fold[i] == 0)
            sample[k++] = i;
    /* linear first: out-of-fold decision values give its temperature and, when it judges
     * novelty on its own values (lin_nov), its threshold (in-sample values would be too
     * confident: every reference lies on its own side of the margin) */
    if (!oof && rc == MF_OK) {
        oof = mf_score_mode_available(s, MF_MODE_LINEAR) && m->nfam > 1 && m->nrefs >= 10;
        if (oof)
            rc = mf__linear_oof(m, &s->o, NULL, d, y, ref, &rows, fn, ctx);
    }
    if (oof && rc == MF_OK) {
        {
            s->temp[MF_MODE_LINEAR] = fit_temp(d, y, rows, m->nfam);
            rc = mf_model_set_param(m, "linear.temp", s->temp[MF_MODE_LINEAR]);
        }
    }
    if (rc == MF_OK && lin && !m->lin) { /* else the held-out fold's, which s uses; in the model
                                   * now, so that the spread hook's plan sees it */
        m->lin = s->own_lin;
        s->own_lin = NULL;
    }
    for (int mode = 0; mode < MF_NMODES && rc == MF_OK; mode++) {
        if (!mf_score_mode_available(s, mode))
            continue;
        size_t n = 0, nsv = 0;
        char phase[48];
        snprintf(phase, sizeof phase, "calibration %s", mf_score_mode_name(mode));
        if (mode == MF_MODE_LINEAR && s->o.lin_nov != 0 && oof) {
            rc = mf__linear_novelty_oof(s, d, ref, rows, best);
            n = rows;
            if (rc == MF_OK && mf__nov_parts_of(s->o.lin_nov))
                rc = mf__linear_nov_save(s, m);
            if (rc == MF_OK && s->o.lin_fthr)
                rc = mf__linear_fam_thr(s, d, best, rows, fu_rate, s->fthr, NULL);
            for (int f = 0; f < m->nfam && rc == MF_OK; f++) {
                char name[48];
                snprintf(name, sizeof name, "unknown.linear.f%d", f);
                if (s->o.lin_fthr || isfinite(mf_model_param(m, name, NAN)))
                    rc = mf_model_set_param(m, name, s->o.lin_fthr ? s->fthr[f] : NAN);
            }
            if (fn)
                fn(ctx, phase, rows, rows);
        } else {
            /* each sample's row at its own place in sv, then packed in order */
            rc = cal_rows_spread(m, s, mode, sample, nsample, sv, best, got, fn, ctx, phase);
            for (size_t k = 0; k < nsample && rc == MF_OK; k++) {
                size_t i = sample[k];
                if (!(got[k] & 1))
                    continue;
                best[n++] = best[k];
                if (got[k] & 2) {
                    if (nsv != k)
                        memmove(sv + nsv * (size_t)m->nfam, sv + k * (size_t)m->nfam,
                                (size_t)m->nfam * sizeof *sv);
                    sy[nsv++] = m->ref_label[i];
                }
            }
        }
        if (rc != MF_OK)
            break;
        char name[48];
        /* linear's temperature came from its out-of-fold values above (its in-sample ones
         * would be too confident) */
        snprintf(name, sizeof name, "%s.temp", mf_score_mode_name(mode));
        if (mode != MF_MODE_LINEAR && m->nfam > 1 && nsv >= 10)
            rc = mf_model_set_param(m, name, fit_temp(sv, sy, nsv, m->nfam));
        else if (mode != MF_MODE_LINEAR && isfinite(mf_model_param(m, name, NAN)))
            rc = mf_model_set_param(m, name, NAN); /* too few rows now: no p, not a stale one */
        if (rc != MF_OK)
            break;
        snprintf(name, sizeof name, "unknown.%s", mf_score_mode_name(mode));
        rc = mf_model_set_param(m, name, mf_score_quantile(best, n, fu_rate));
    }
    if (rc == MF_OK)
        rc = mf_model_set_param(m, "unknown.rate", fu_rate);
out:
    if (rc != MF_OK) { /* no half-calibrated classifier left in the model */
        if (m->lin != (s ? s->own_lin : NULL))
            mf_linear_free(m->lin);
        m->lin = NULL;
    }
    mf__free(sv);
    mf__free(sy);
    mf__free(sample);
    mf__free(got);
    mf__free(best);
    mf__free(d);
    mf__free(y);
    mf__free(ref);
    mf__free(fold);
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
        g[r] = mf__top_kept(s, d + r * (size_t)s->nfam);
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

/* The anchored parts of an answer into x[MF__NOV_PARTS] (score_priv.h): p x combo, the margin
 * of the top family's decision value over the second's (+inf with one kept family: no margin
 * to judge), combo's score of the top family, ncd_top. */
static void nov_parts(const mf_scorer_t *s, const double *d, int g, double combo,
                      double combo_top, double ncd_top, double *x)
{
    double t = s->temp[MF_MODE_LINEAR], second = -INFINITY;
    for (int f = 0; f < s->nfam; f++)
        if (!s->skip_fam[f] && f != g && d[f] > second)
            second = d[f];
    x[0] = mf__p(s, d, d[g], isfinite(t) ? t : 1.0) * combo;
    x[1] = isfinite(second) ? d[g] - second : INFINITY;
    x[2] = combo_top;
    x[3] = ncd_top;
}

/* An anchored novelty of parts x: each of lin_nov's parts relative to its anchors (raw without
 * them), the smallest through the logistic function. */
static double nov_scaled(const mf_scorer_t *s, const double *x)
{
    double u = INFINITY;
    unsigned parts = mf__nov_parts_of(s->o.lin_nov);
    for (int c = 0; c < MF__NOV_PARTS; c++) {
        if (!(parts >> c & 1))
            continue;
        int a = isfinite(s->nov_lo[c]) && s->nov_w[c] > 0;
        double v = a ? (x[c] - s->nov_lo[c]) / s->nov_w[c] : x[c];
        if (isfinite(v) && v < u)
            u = v;
    }
    return 1 / (1 + exp(-u));
}

double mf__linear_novelty(const mf_scorer_t *s, const double *d, double combo, double combo_top,
                          double ncd_top)
{
    int g = mf__top_kept(s, d);
    if (g < 0)
        return -INFINITY;
    if (s->o.lin_nov == 1)
        return d[g];
    if (mf__nov_parts_of(s->o.lin_nov)) {
        double x[MF__NOV_PARTS];
        nov_parts(s, d, g, combo, combo_top, ncd_top, x);
        return nov_scaled(s, x);
    }
    double t = s->temp[MF_MODE_LINEAR];
    double p = mf__p(s, d, d[g], isfinite(t) ? t : 1.0);
    return s->o.lin_nov == 3 ? p * combo : p;
}

/* Fit the anchors of lin_nov's parts on x, `rows` calibration rows (rows x MF__NOV_PARTS,
 * non-finite entries skipped): each part's 5 % quantile and its median's distance above it,
 * NAN with fewer than MF__NOV_MIN_ROWS values. MF_OK or MF_ENOMEM. */
static int nov_fit(mf_scorer_t *s, const double *x, size_t rows)
{
    double *v = mf__malloc((rows ? rows : 1) * sizeof *v);
    if (!v)
        return MF_ENOMEM;
    for (int c = 0; c < MF__NOV_PARTS; c++) {
        s->nov_lo[c] = s->nov_w[c] = NAN;
        if (!(mf__nov_parts_of(s->o.lin_nov) >> c & 1))
            continue;
        size_t n = 0;
        for (size_t r = 0; r < rows; r++)
            if (isfinite(x[r * MF__NOV_PARTS + c]))
                v[n++] = x[r * MF__NOV_PARTS + c];
        if (n < MF__NOV_MIN_ROWS)
            continue;
        double lo = mf_score_quantile(v, n, 0.05), mid = v[n / 2]; /* v sorted by the call */
        s->nov_lo[c] = lo;
        s->nov_w[c] = mid - lo > 1e-6 ? mid - lo : 1e-6;
    }
    mf__free(v);
    return MF_OK;
}

typedef struct {
    const mf_scorer_t *s;
    const double *d;
    const size_t *ref;
    double *nov;
    double *x; /* lin_nov 4, 5: the rows' parts (rows x MF__NOV_PARTS), else NULL */
} nov_oof_t;

static int nov_oof_item(void *ctx, size_t r)
{
    nov_oof_t *c = ctx;
    const mf_scorer_t *s = c->s;
    const double *dr = c->d + r * (size_t)s->nfam;
    double combo = 1, ctop = 0, ncd = 0;
    int g = mf__top_kept(s, dr);
    if (s->o.lin_nov >= 3) { /* combo's similarity with the reference itself left out, as
                              * linear's answers compute it (prototypes or all) */
        int rc = mf__linear_combo(s, &s->m->refs[c->ref[r]], (long)c->ref[r], g, &combo, &ctop);
        if (rc == MF_OK && s->o.lin_nov == 5)
            rc = mf__linear_ncd(s, &s->m->refs[c->ref[r]], (long)c->ref[r], g, &ncd);
        if (rc != MF_OK)
            return rc;
    }
    if (!c->x)
        c->nov[r] = mf__linear_novelty(s, dr, combo, ctop, ncd);
    else if (g >= 0)
        nov_parts(s, dr, g, combo, ctop, ncd, c->x + r * MF__NOV_PARTS);
    else
        for (int k = 0; k < MF__NOV_PARTS; k++)
            c->x[r * MF__NOV_PARTS + k] = NAN;
    return MF_OK;
}

int mf__linear_novelty_oof(mf_scorer_t *s, const double *d, const size_t *ref, size_t rows,
                           double *nov)
{
    int anchored = mf__nov_parts_of(s->o.lin_nov) != 0; /* parts first, then anchors */
    double *x = anchored ? mf__malloc((rows ? rows : 1) * MF__NOV_PARTS * sizeof *x) : NULL;
    if (anchored && !x)
        return MF_ENOMEM;
    nov_oof_t c = {s, d, ref, nov, x};
    int rc = par_for(rows, nov_oof_item, &c, NULL, NULL, NULL);
    /* lin_nov 4, 5: the anchors first (from every row), then each row's novelty by them */
    if (rc == MF_OK && anchored)
        rc = nov_fit(s, x, rows);
    for (size_t r = 0; r < rows && rc == MF_OK && anchored; r++)
        nov[r] = isfinite(x[r * MF__NOV_PARTS]) ? nov_scaled(s, x + r * MF__NOV_PARTS)
                                                : -INFINITY;
    mf__free(x);
    return rc;
}

void mf__linear_nov_load(mf_scorer_t *s)
{
    for (int c = 0; c < MF__NOV_PARTS; c++) {
        char lo[48], w[48];
        snprintf(lo, sizeof lo, "unknown.linear.a%d.lo", c);
        snprintf(w, sizeof w, "unknown.linear.a%d.w", c);
        int mine = mf__nov_parts_of(s->o.lin_nov) >> c & 1;
        s->nov_lo[c] = mine ? mf_model_param(s->m, lo, NAN) : NAN;
        s->nov_w[c] = mine ? mf_model_param(s->m, w, NAN) : NAN;
    }
}

int mf__linear_nov_save(const mf_scorer_t *s, mf_model_t *m)
{
    int rc = MF_OK;
    for (int c = 0; c < MF__NOV_PARTS && rc == MF_OK; c++) {
        if (!(mf__nov_parts_of(s->o.lin_nov) >> c & 1))
            continue;
        char lo[48], w[48];
        snprintf(lo, sizeof lo, "unknown.linear.a%d.lo", c);
        snprintf(w, sizeof w, "unknown.linear.a%d.w", c);
        rc = mf_model_set_param(m, lo, s->nov_lo[c]);
        if (rc == MF_OK)
            rc = mf_model_set_param(m, w, s->nov_w[c]);
    }
    return rc;
}
