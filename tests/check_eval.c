/* check_eval.c - metrics on small hand-checked cases, AUROC, and one end-to-end evaluation on
 * the real Mal-API split with a mode that needs no LSTM (it must beat chance clearly). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "eval.h"
#include "internal.h"
#include "model.h"
#include "score.h"
#include "score_priv.h" /* mf__scorer_new: eval's one-mode scorers */
#include "testutil.h"
#include "vocab.h"

static mf_result_t ranked(int a, int b, int c, int unknown)
{
    mf_result_t r;
    memset(&r, 0, sizeof r);
    r.ntop = 3;
    r.top[0].family = a;
    r.top[1].family = b;
    r.top[2].family = c;
    r.top[0].p = r.top[1].p = r.top[2].p = NAN; /* no probabilities */
    r.unknown = unknown;
    return r;
}

START_TEST(test_metrics_small)
{
    /* 4 classes, 6 samples:
     *   truth 0: guesses (0,1,2) top1 hit; (1,0,2) top3 hit        class 0: 1/2 top1, 2/2 top3
     *   truth 1: (1,0,2) hit; (2,3,0) miss                          class 1: 1/2, 1/2
     *   truth 2: (0,1,2) top3 only, flagged unknown                 class 2: 0/1, 1/1
     *   truth 3: (3,2,1) hit                                         class 3: 1/1, 1/1
     * top1 = 3/6, top3 = 5/6. Confusion rows (truth) x columns (guess):
     *   0: [1 1 0 0]  1: [0 1 1 0]  2: [1 0 0 0]  3: [0 0 0 1]
     * F1: c0 tp1 fp1 fn1 = 0.5; c1 tp1 fp1 fn1 = 0.5; c2 tp0 = 0; c3 tp1 = 1 -> macro 0.5 */
    mf_metrics_t m;
    ck_assert_int_eq(mf_metrics_init(&m, 4), MF_OK);
    mf_result_t r;
    r = ranked(0, 1, 2, 0); mf_metrics_add(&m, 0, &r);
    r = ranked(1, 0, 2, 0); mf_metrics_add(&m, 0, &r);
    r = ranked(1, 0, 2, 0); mf_metrics_add(&m, 1, &r);
    r = ranked(2, 3, 0, 0); mf_metrics_add(&m, 1, &r);
    r = ranked(0, 1, 2, 1); mf_metrics_add(&m, 2, &r);
    r = ranked(3, 2, 1, 0); mf_metrics_add(&m, 3, &r);
    r = ranked(3, 2, 1, 1); mf_metrics_add(&m, -1, &r); /* foreign, flagged */
    r = ranked(3, 2, 1, 0); mf_metrics_add(&m, -1, &r); /* foreign, missed */
    ck_assert_uint_eq(m.n, 6);
    ck_assert_double_eq_tol(mf_metrics_top1(&m), 0.5, 1e-12);
    ck_assert_double_eq_tol(mf_metrics_top3(&m), 5.0 / 6.0, 1e-12);
    size_t want[16] = {1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < 16; i++)
        ck_assert_uint_eq(m.conf[i], want[i]);
    ck_assert_double_eq_tol(mf_metrics_f1(&m, 0), 0.5, 1e-12);
    ck_assert_double_eq_tol(mf_metrics_f1(&m, 2), 0.0, 1e-12);
    ck_assert_double_eq_tol(mf_metrics_f1(&m, 3), 1.0, 1e-12);
    ck_assert_double_eq_tol(mf_metrics_macro_f1(&m), 0.5, 1e-12);
    ck_assert_double_eq_tol(mf_metrics_unknown_rate(&m), 1.0 / 6.0, 1e-12);
    ck_assert_double_eq_tol(mf_metrics_foreign_unknown(&m), 0.5, 1e-12);
    ck_assert_uint_eq(m.cls_top3[2], 1);
    mf_metrics_destroy(&m);
    ck_assert_int_eq(mf_metrics_init(&m, 0), MF_EINVAL);
}
END_TEST

/* Wilson against figures computed from the closed form outside C (python, z = 1.95996):
 * 112/119 (kairos-mist linear, issue 15) [0.883544, 0.971217], 93/188 [0.424038, 0.565537];
 * at 0 and n hits the interval keeps a width and stays inside [0, 1]. */
START_TEST(test_wilson)
{
    double ci[2];
    mf_wilson_ci(112, 119, ci);
    ck_assert_double_eq_tol(ci[0], 0.883544, 1e-6);
    ck_assert_double_eq_tol(ci[1], 0.971217, 1e-6);
    mf_wilson_ci(93, 188, ci);
    ck_assert_double_eq_tol(ci[0], 0.424038, 1e-6);
    ck_assert_double_eq_tol(ci[1], 0.565537, 1e-6);
    mf_wilson_ci(0, 20, ci);
    ck_assert(ci[0] == 0.0);
    ck_assert_double_eq_tol(ci[1], 0.161125, 1e-6);
    mf_wilson_ci(20, 20, ci);
    ck_assert_double_eq_tol(ci[0], 0.838875, 1e-6);
    ck_assert(ci[1] == 1.0);
    mf_wilson_ci(1, 1, ci);
    ck_assert_double_eq_tol(ci[0], 0.206549, 1e-6);
    ck_assert(ci[1] == 1.0);
    for (size_t n = 1; n <= 300; n += 7) /* every k: inside [0, 1], around k/n */
        for (size_t k = 0; k <= n; k++) {
            mf_wilson_ci(k, n, ci);
            double p = (double)k / (double)n;
            ck_assert_msg(ci[0] >= 0 && ci[0] <= p && p <= ci[1] && ci[1] <= 1 && ci[0] < ci[1],
                          "%zu/%zu: [%g, %g]", k, n, ci[0], ci[1]);
        }
    mf_wilson_ci(0, 0, ci); /* no sample: nothing known */
    ck_assert(ci[0] == 0.0 && ci[1] == 1.0);
}
END_TEST

/* `times` copies of a 4-class run of 20 samples with errors in every class: truth c is right
 * 4 times of 5 (class 3: 3 of 5), the misses go to the next class. */
static void fill_run(mf_metrics_t *m, int times)
{
    ck_assert_int_eq(mf_metrics_init(m, 4), MF_OK);
    for (int t = 0; t < times; t++)
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 5; i++) {
                int ok = i < (c == 3 ? 3 : 4);
                mf_result_t r = ranked(ok ? c : (c + 1) % 4, ok ? (c + 1) % 4 : c, (c + 2) % 4,
                                       0);
                mf_metrics_add(m, c, &r);
            }
}

/* The macro-F1 bootstrap: the interval holds the point estimate, is the same for the same
 * seed, and narrows about as 1/sqrt(n) with the same proportions on 10x the samples. */
START_TEST(test_macro_f1_bootstrap)
{
    mf_metrics_t m, big;
    fill_run(&m, 2);   /* 40 samples */
    fill_run(&big, 20); /* 400 */
    double f1 = mf_metrics_macro_f1(&m), ci[2], again[2], other[2], bci[2];
    ck_assert_double_eq_tol(mf_metrics_macro_f1(&big), f1, 1e-12);
    ck_assert_int_eq(mf_metrics_macro_f1_ci(&m, MF_BOOT_SEED, ci), MF_OK);
    ck_assert_msg(ci[0] < f1 && f1 < ci[1] && ci[0] >= 0 && ci[1] <= 1, "%g in [%g, %g]", f1,
                  ci[0], ci[1]);
    ck_assert_int_eq(mf_metrics_macro_f1_ci(&m, MF_BOOT_SEED, again), MF_OK);
    ck_assert(again[0] == ci[0] && again[1] == ci[1]);
    ck_assert_int_eq(mf_metrics_macro_f1_ci(&m, MF_BOOT_SEED + 1, other), MF_OK);
    ck_assert_msg(fabs(other[0] - ci[0]) < 0.05 && fabs(other[1] - ci[1]) < 0.05,
                  "seeds: [%g, %g] against [%g, %g]", other[0], other[1], ci[0], ci[1]);
    ck_assert_int_eq(mf_metrics_macro_f1_ci(&big, MF_BOOT_SEED, bci), MF_OK);
    ck_assert_msg(bci[0] < f1 && f1 < bci[1], "%g in [%g, %g]", f1, bci[0], bci[1]);
    /* sqrt(10) = 3.16 narrower in theory; at least 2x asked */
    ck_assert_msg(bci[1] - bci[0] < 0.5 * (ci[1] - ci[0]), "40: %g wide, 400: %g wide",
                  ci[1] - ci[0], bci[1] - bci[0]);
    /* Wilson of the same counts narrows too */
    double t[2], bt[2];
    mf_metrics_top1_ci(&m, t);
    mf_metrics_top1_ci(&big, bt);
    ck_assert_double_eq_tol(mf_metrics_top1(&m), 30.0 / 40.0, 1e-12);
    ck_assert(t[0] < bt[0] && bt[1] < t[1]);
    mf_metrics_top3_ci(&m, t);
    ck_assert(t[1] == 1.0 && t[0] < 1.0); /* every sample has the truth in its top 3 */

    /* out of memory: MF_ENOMEM, ci untouched, for each of the allocations */
    for (size_t fail = 1; fail <= 3; fail++) {
        double keep[2] = {-1, -1};
        mf__alloc_fail_after(fail);
        int rc = mf_metrics_macro_f1_ci(&m, MF_BOOT_SEED, keep);
        mf__alloc_fail_after(0);
        ck_assert_int_eq(rc, MF_ENOMEM);
        ck_assert(keep[0] == -1 && keep[1] == -1);
    }
    mf_metrics_destroy(&big);
    mf_metrics_destroy(&m);

    /* all right: every draw is all right, [1, 1]; no sample: [0, 1] */
    ck_assert_int_eq(mf_metrics_init(&m, 3), MF_OK);
    for (int i = 0; i < 9; i++) {
        mf_result_t r = ranked(i % 3, (i + 1) % 3, (i + 2) % 3, 0);
        mf_metrics_add(&m, i % 3, &r);
    }
    ck_assert_int_eq(mf_metrics_macro_f1_ci(&m, MF_BOOT_SEED, ci), MF_OK);
    ck_assert(ci[0] == 1.0 && ci[1] == 1.0);
    mf_metrics_destroy(&m);
    ck_assert_int_eq(mf_metrics_init(&m, 3), MF_OK);
    ck_assert_int_eq(mf_metrics_macro_f1_ci(&m, MF_BOOT_SEED, ci), MF_OK);
    ck_assert(ci[0] == 0.0 && ci[1] == 1.0);
    mf_metrics_destroy(&m);
}
END_TEST

START_TEST(test_auroc)
{
    double p1[] = {3, 4}, n1[] = {1, 2};
    ck_assert_double_eq_tol(mf_auroc(p1, 2, n1, 2), 1.0, 1e-12);
    ck_assert_double_eq_tol(mf_auroc(n1, 2, p1, 2), 0.0, 1e-12);
    double p2[] = {1}, n2[] = {1};
    ck_assert_double_eq_tol(mf_auroc(p2, 1, n2, 1), 0.5, 1e-12);
    /* pos {1, 3} vs neg {2, 3}: pairs (1,2) lose, (1,3) lose, (3,2) win, (3,3) tie -> 1.5/4 */
    double p3[] = {3, 1}, n3[] = {3, 2};
    ck_assert_double_eq_tol(mf_auroc(p3, 2, n3, 2), 1.5 / 4.0, 1e-12);
    ck_assert_double_eq_tol(mf_auroc(p3, 0, n3, 2), 0.5, 1e-12);
}
END_TEST

/* The ROC point: 20 negatives 1..20, so at a rate of 0.05 one may lie above the threshold
 * (t = 19) and at 0.10 two (t = 18); a positive tied with t is not flagged. */
START_TEST(test_detect_at_rate)
{
    double neg[20], pos[] = {25, 19.5, 19, 18.5, 3};
    for (int i = 0; i < 20; i++)
        neg[i] = 20 - i; /* unsorted on purpose: the function sorts */
    ck_assert_double_eq_tol(mf_detect_at_rate(pos, 5, neg, 20, 0.05), 2.0 / 5.0, 1e-12);
    ck_assert_double_eq_tol(mf_detect_at_rate(pos, 5, neg, 20, 0.10), 4.0 / 5.0, 1e-12);
    ck_assert_double_eq_tol(mf_detect_at_rate(pos, 5, neg, 20, 0.0), 1.0 / 5.0, 1e-12);
    /* 0.049 of 20 is no negative at all: the same as 0 */
    ck_assert_double_eq_tol(mf_detect_at_rate(pos, 5, neg, 20, 0.049), 1.0 / 5.0, 1e-12);
    /* a rate of 1 still keeps the lowest negative as the threshold */
    ck_assert_double_eq_tol(mf_detect_at_rate(pos, 5, neg, 20, 1.0), 5.0 / 5.0, 1e-12);
    /* 0.29 of 100 is 29 negatives, though 0.29 * 100 is 28.999... in binary: t = 71 */
    double neg100[100], pos3[] = {99.5, 72.5, 71.5};
    for (int i = 0; i < 100; i++)
        neg100[i] = i + 1;
    ck_assert_double_eq_tol(mf_detect_at_rate(pos3, 3, neg100, 100, 0.29), 1.0, 1e-12);
    ck_assert_double_eq_tol(mf_detect_at_rate(pos, 0, neg, 20, 0.05), 0.0, 1e-12);
    ck_assert_double_eq_tol(mf_detect_at_rate(pos, 5, neg, 0, 0.05), 0.0, 1e-12);
}
END_TEST

/* The real split: a model built in memory from the train split, scored on the test split. */
START_TEST(test_end_to_end_malapi)
{
    mf_vocab_t *v;
    mf_dataset_t ds;
    mf_prep_t prep = {1, 1000};
    tu_load_malapi(&v, &ds, MF_SPLIT_ANY, &prep);
    ck_assert_uint_eq(ds.n, 629);
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->vocab = v;
    m->prep = prep;
    ck_assert_int_eq(mf_eval_model_from_dataset(m, &ds, MF_SPLIT_TRAIN), MF_OK);
    ck_assert_int_eq(m->nfam, 8);
    ck_assert_uint_eq(m->nrefs, 441);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    int map[8];
    ck_assert_int_eq(mf_eval_label_map(m, &ds, map), 8);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    mf_metrics_t mt;
    ck_assert_int_eq(mf_metrics_init(&mt, m->nfam), MF_OK);
    ck_assert_int_eq(mf_eval_run(s, MF_MODE_KNN, &ds, MF_SPLIT_TEST, map, &mt, NULL, NULL,
                                 NULL), MF_OK);
    ck_assert_uint_eq(mt.n, 188);
    /* chance is 0.125 / 0.375; measured 0.495 / 0.739 / 0.504 (knn_k 5) */
    ck_assert_msg(mf_metrics_top1(&mt) > 0.40, "top1 %.3f", mf_metrics_top1(&mt));
    ck_assert_msg(mf_metrics_top3(&mt) > 0.65, "top3 %.3f", mf_metrics_top3(&mt));
    ck_assert_msg(mf_metrics_macro_f1(&mt) > 0.40, "F1 %.3f", mf_metrics_macro_f1(&mt));
    /* calibrated at 5 % false unknowns on train: on test it stays well under a third */
    ck_assert_msg(mf_metrics_unknown_rate(&mt) < 0.3, "unknown %.3f",
                  mf_metrics_unknown_rate(&mt));
    mf_metrics_destroy(&mt);
    /* linear, the default mode: measured 0.479 / 0.729 / 0.474 */
    ck_assert_int_eq(mf_metrics_init(&mt, m->nfam), MF_OK);
    ck_assert_int_eq(mf_eval_run(s, MF_MODE_LINEAR, &ds, MF_SPLIT_TEST, map, &mt, NULL, NULL,
                                 NULL), MF_OK);
    ck_assert_msg(mf_metrics_top1(&mt) > 0.40, "linear top1 %.3f", mf_metrics_top1(&mt));
    ck_assert_msg(mf_metrics_top3(&mt) > 0.65, "linear top3 %.3f", mf_metrics_top3(&mt));
    ck_assert_msg(mf_metrics_macro_f1(&mt) > 0.40, "linear F1 %.3f", mf_metrics_macro_f1(&mt));
    /* probabilities with the temperature fitted on out-of-fold train scores: calibrated on
     * test (measured: mean p(top-1) 0.482 against top-1 0.479, log loss 1.51 < ln 8) */
    double temp = mf_model_param(m, "linear.temp", NAN);
    ck_assert_msg(temp > 0.1 && temp < 100, "temperature %g", temp);
    ck_assert_uint_eq(mt.np, 188);
    ck_assert_msg(fabs(mf_metrics_mean_p(&mt) - mf_metrics_top1(&mt)) < 0.1, "p %.3f top1 %.3f",
                  mf_metrics_mean_p(&mt), mf_metrics_top1(&mt));
    ck_assert_msg(mf_metrics_log_loss(&mt) < log(8.0) - 0.3, "log loss %.3f",
                  mf_metrics_log_loss(&mt));
    mf_metrics_destroy(&mt);
    /* an answer ranking every family carries probabilities summing to 1 */
    mf_result_t all;
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, &ds.samples[0].trace, 8, &all), MF_OK);
    double psum = 0;
    for (int i = 0; i < all.ntop; i++) {
        ck_assert(all.top[i].p > 0 && all.top[i].p < 1);
        ck_assert(i == 0 || all.top[i].p <= all.top[i - 1].p);
        psum += all.top[i].p;
    }
    ck_assert_msg(fabs(psum - 1) < 1e-9, "sum %g", psum);
    /* combo has its own temperature since every mode got one: p there too */
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_COMBO, &ds.samples[0].trace, 8, &all), MF_OK);
    ck_assert(isfinite(mf_model_param(m, "combo.temp", NAN)));
    ck_assert(all.top[0].p > 0 && all.top[0].p < 1);

    /* 5-fold CV over the train references runs and beats chance as well; linear retrains in
     * every fold (measured 0.490 / 0.714 with seed 11) */
    ck_assert_int_eq(mf_metrics_init(&mt, m->nfam), MF_OK);
    ck_assert_int_eq(mf_eval_cv(m, NULL, MF_MODE_KNN, 5, 11, &mt), MF_OK);
    ck_assert_uint_eq(mt.n, 441);
    ck_assert_msg(mf_metrics_top1(&mt) > 0.3, "cv top1 %.3f", mf_metrics_top1(&mt));
    mf_metrics_destroy(&mt);
    ck_assert_int_eq(mf_metrics_init(&mt, m->nfam), MF_OK);
    ck_assert_int_eq(mf_eval_cv(m, NULL, MF_MODE_LINEAR, 5, 11, &mt), MF_OK);
    ck_assert_msg(mf_metrics_top1(&mt) > 0.40, "cv linear top1 %.3f", mf_metrics_top1(&mt));
    mf_metrics_destroy(&mt);
    ck_assert_int_eq(mf_eval_cv(m, NULL, MF_MODE_PAPER, 5, 11, &mt), MF_EINVAL);

    /* open set: Adware (the most distinct class) left out is told apart better than chance */
    mf_openset_t os;
    int adware = -1;
    for (int f = 0; f < m->nfam; f++)
        if (!strcmp(m->fam[f].name, "Adware"))
            adware = f;
    ck_assert_int_ge(adware, 0);
    ck_assert_int_eq(mf_eval_leave_out(m, NULL, MF_MODE_KNN, adware, 0.05, &ds, MF_SPLIT_TEST,
                                       map, &os), MF_OK);
    ck_assert_uint_eq(os.nout, 22);
    ck_assert_uint_eq(os.nknown, 166);
    ck_assert_msg(os.auroc > 0.5, "auroc %.3f", os.auroc);
    /* the ROC point's detection is a share of the 22 left-out samples */
    ck_assert(os.detect_at >= 0 && os.detect_at <= 1);
    ck_assert_double_eq_tol(os.detect_at * 22, round(os.detect_at * 22), 1e-9);
    mf_scorer_free(s);
    mf_model_free(m); /* frees the vocabulary too */
    mf_dataset_destroy(&ds);
}
END_TEST

/* Same answers from a scorer built for one mode as from one built for every mode, with the
 * masks cross-validation (a fold of references left out) and leave-out (a family left out)
 * use: mf_eval_cv and mf_eval_leave_out build only the mode they measure. Linear twice: its
 * combo over every reference (lin_nov 0), and over prototypes whose other references' key
 * sets the one-mode scorer drops (lin_nov 3, nov_protos 3). */
START_TEST(test_one_mode_scorer_same)
{
    mf_vocab_t *v;
    mf_dataset_t ds;
    mf_prep_t prep = {1, 300};
    tu_load_malapi(&v, &ds, MF_SPLIT_ANY, &prep);
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->vocab = v;
    m->prep = prep;
    ck_assert_int_eq(mf_eval_model_from_dataset(m, &ds, MF_SPLIT_TRAIN), MF_OK);
    unsigned char *fold = calloc(m->nrefs, 1), fam[8] = {0, 0, 0, 1, 0, 0, 0, 0};
    ck_assert_ptr_nonnull(fold);
    for (size_t i = 0; i < m->nrefs; i += 5)
        fold[i] = 1;
    /* linear three times: novelty on combo's scale, lin_nov 3 over prototypes, lin_nov 5
     * (the compression distance: the traces themselves, over prototypes) */
    static const int modes[] = {MF_MODE_NN, MF_MODE_KNN, MF_MODE_COMBO, MF_MODE_LINEAR,
                                MF_MODE_LINEAR, MF_MODE_LINEAR};
    for (int k = 0; k < 6; k++) {
        mf_score_opts_t o;
        mf_score_opts_from_model(&o, m);
        o.lin_nov = k == 4 ? 3 : k == 5 ? 5 : 0;
        o.nov_protos = k >= 4 ? 3 : 0;
        for (int mask = 0; mask < 2; mask++) {
            const unsigned char *sr = mask ? NULL : fold, *sf = mask ? fam : NULL;
            mf_scorer_t *all = mf__scorer_new(m, &o, sr, sf, NULL, NULL, -1);
            mf_scorer_t *one = mf__scorer_new(m, &o, sr, sf, NULL, NULL, modes[k]);
            ck_assert(all && one);
            ck_assert(mf_score_mode_available(one, modes[k]));
            for (size_t i = 0; i < ds.n; i += 7) {
                mf_result_t a, b;
                const mf_trace_t *t = &ds.samples[i].trace;
                ck_assert_int_eq(mf_score_trace(all, modes[k], t, MF_MAX_TOP, &a), MF_OK);
                ck_assert_int_eq(mf_score_trace(one, modes[k], t, MF_MAX_TOP, &b), MF_OK);
                ck_assert_int_eq(a.ntop, b.ntop);
                for (int j = 0; j < a.ntop; j++) {
                    ck_assert_int_eq(a.top[j].family, b.top[j].family);
                    ck_assert(a.top[j].score == b.top[j].score);
                }
                ck_assert_msg(a.novelty == b.novelty, "%s sample %zu: novelty %.17g / %.17g",
                              mf_score_mode_name(modes[k]), i, a.novelty, b.novelty);
                ck_assert_str_eq(a.explain, b.explain);
            }
            mf_scorer_free(all);
            mf_scorer_free(one);
        }
    }
    free(fold);
    mf_model_free(m);
    mf_dataset_destroy(&ds);
}
END_TEST

Suite *suite_eval(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_metrics_small);
    tcase_add_test(tc, test_wilson);
    tcase_add_test(tc, test_macro_f1_bootstrap);
    tcase_add_test(tc, test_auroc);
    tcase_add_test(tc, test_detect_at_rate);
    tcase_add_test(tc, test_end_to_end_malapi);
    tcase_add_test(tc, test_one_mode_scorer_same);
    suite_add_tcase(s, tc);
    return s;
}
