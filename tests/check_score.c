/* check_score.c - similarities with hand-checked values, the shared helpers (binary search,
 * idf, fold dealing), ranking, unknown flag, calibration, explanation, JSON escaping,
 * allocation failure. Models are built in memory. */
#include <check.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "internal.h"
#include "linear.h"
#include "model.h"
#include "score.h"
#include "score_priv.h" /* mf__cal_folds */
#include "simil.h"
#include "testutil.h"

/* ---- similarities -------------------------------------------------------------------------- */

START_TEST(test_jaccard_bits)
{
    uint64_t a[4] = {0}, b[4] = {0};
    int32_t sa[] = {1, 2, 3, 3, 200}, sb[] = {2, 3, 4, 200, 64};
    mf_bits_fill(a, 4, sa, 5);
    mf_bits_fill(b, 4, sb, 5);
    /* A = {1,2,3,200}, B = {2,3,4,64,200}: 3 common of 6 */
    ck_assert_double_eq_tol(mf_jaccard_bits(a, b, 4), 3.0 / 6.0, 1e-12);
    ck_assert_double_eq_tol(mf_jaccard_bits(a, a, 4), 1.0, 1e-12);
    uint64_t z[4] = {0};
    ck_assert_double_eq(mf_jaccard_bits(z, z, 4), 0.0);
    ck_assert_double_eq(mf_jaccard_bits(a, z, 4), 0.0);
    /* ids beyond the bitset and negative ids are ignored, not written out of bounds */
    uint64_t c[1] = {0};
    int32_t sc[] = {-1, 64, 5};
    mf_bits_fill(c, 1, sc, 3);
    ck_assert_uint_eq(c[0], 1ull << 5);
}
END_TEST

START_TEST(test_jaccard_counts)
{
    uint32_t a[3] = {2, 1, 0}, b[3] = {1, 1, 3};
    /* sum min = 2, |A| = 3, |B| = 5: 2 / (3 + 5 - 2) */
    ck_assert_double_eq_tol(mf_jaccard_counts(a, b, 3), 2.0 / 6.0, 1e-12);
    ck_assert_double_eq_tol(mf_jaccard_counts(a, a, 3), 1.0, 1e-12);
    uint32_t z[3] = {0};
    ck_assert_double_eq(mf_jaccard_counts(z, z, 3), 0.0);
}
END_TEST

static mf_ncd_t *ncd_new_attempt_out;
static int ncd_new_attempt(void *ctx)
{
    (void)ctx;
    ncd_new_attempt_out = mf_ncd_new();
    if (!ncd_new_attempt_out)
        return MF_ENOMEM;
    long n = mf_ncd_len(ncd_new_attempt_out, (const int32_t[]){1, 2, 3}, 3, NULL, 0, 0);
    mf_ncd_free(ncd_new_attempt_out);
    return n > 0 ? MF_OK : MF_ENOMEM;
}

/* The compression distance: about 0 for a trace and a copy with one call changed, near 1 for
 * two unrelated traces of the same calls, symmetric within a few bytes, the same with two bytes
 * an id, blind past MF_NCD_MAX_CALLS calls; a failed allocation is NULL, not a crash. */
START_TEST(test_ncd)
{
    enum { N = 3000 };
    static int32_t a[N], b[N], c[N], w[N];
    uint32_t x = 1, y = 2;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        y = y * 1103515245u + 54321u;
        a[i] = c[i] = (int32_t)((x >> 16) % 16);
        b[i] = (int32_t)((y >> 16) % 16);
        w[i] = 300 + a[i]; /* ids past one byte */
    }
    c[N / 2] = 99;
    mf_ncd_t *z = mf_ncd_new();
    ck_assert_ptr_nonnull(z);
    long ca = mf_ncd_len(z, a, N, NULL, 0, 0), cb = mf_ncd_len(z, b, N, NULL, 0, 0);
    long cc = mf_ncd_len(z, c, N, NULL, 0, 0);
    ck_assert(ca > 100 && cb > 100 && cc > 100);
    ck_assert_int_eq(mf_ncd_len(z, a, N, NULL, 0, 0), ca); /* the state is reset each time */
    double near = mf_ncd(z, a, N, ca, c, N, cc, 0), far = mf_ncd(z, a, N, ca, b, N, cb, 0);
    ck_assert_msg(near < 0.1 && far > 0.8, "near %g far %g", near, far);
    ck_assert_double_eq_tol(mf_ncd(z, b, N, cb, a, N, ca, 0), far, 0.02);
    long cw = mf_ncd_len(z, w, N, NULL, 0, 1);
    ck_assert_msg(mf_ncd(z, w, N, cw, w, N, cw, 1) < 0.1, "wide self %g",
                  mf_ncd(z, w, N, cw, w, N, cw, 1));
    ck_assert_int_gt(cw, ca); /* the high bytes are there */
    /* past the cap nothing counts: a trace and its extension compress alike */
    static int32_t big[MF_NCD_MAX_CALLS + 500];
    for (size_t i = 0; i < MF_NCD_MAX_CALLS + 500; i++)
        big[i] = a[i % N];
    ck_assert_int_eq(mf_ncd_len(z, big, MF_NCD_MAX_CALLS + 500, NULL, 0, 0),
                     mf_ncd_len(z, big, MF_NCD_MAX_CALLS, NULL, 0, 0));
    ck_assert_int_eq(mf_ncd_len(z, NULL, 0, NULL, 0, 0) > 0, 1); /* an empty stream's frame */
    mf_ncd_free(z);
    mf_ncd_free(NULL);
    tu_oom_loop(ncd_new_attempt, NULL, 1000);
}
END_TEST

START_TEST(test_ngram_sets)
{
    int32_t a[] = {1, 2, 1, 2}, b[] = {2, 1, 2, 3};
    mf_keyset_t ka, kb;
    /* bigrams: A = {12, 21}, B = {21, 12, 23}: 2 of 3 */
    ck_assert_int_eq(mf_keyset_build(&ka, a, 4, 2, 2), MF_OK);
    ck_assert_int_eq(mf_keyset_build(&kb, b, 4, 2, 2), MF_OK);
    ck_assert_uint_eq(ka.n, 2);
    ck_assert_uint_eq(kb.n, 3);
    ck_assert_double_eq_tol(mf_jaccard_keys(&ka, &kb), 2.0 / 3.0, 1e-12);
    ck_assert_int_ge(mf_keyset_find(&kb, mf_ngram_key(b + 2, 2)), 0);
    ck_assert_int_eq(mf_keyset_find(&ka, mf_ngram_key(b + 2, 2)), -1);
    mf_keyset_destroy(&ka);
    mf_keyset_destroy(&kb);
    /* orders 1..2: A = {1,2,12,21}, B = {1,2,3,21,12,23}: 4 of 6 */
    ck_assert_int_eq(mf_keyset_build(&ka, a, 4, 1, 2), MF_OK);
    ck_assert_int_eq(mf_keyset_build(&kb, b, 4, 1, 2), MF_OK);
    ck_assert_double_eq_tol(mf_jaccard_keys(&ka, &kb), 4.0 / 6.0, 1e-12);
    /* order matters, and a unigram is not a bigram */
    int32_t ab[] = {1, 2}, ba[] = {2, 1};
    ck_assert(mf_ngram_key(ab, 2) != mf_ngram_key(ba, 2));
    ck_assert(mf_ngram_key(ab, 1) != mf_ngram_key(ab, 2));
    /* weights: the common keys' weight over the weighted union */
    float wa[4] = {1, 1, 1, 1};
    ka.w = malloc(sizeof wa);
    memcpy(ka.w, wa, sizeof wa);
    ka.w[0] = 3; /* the first key (whichever it is) weighs 3; it is common to both */
    ka.wsum = 6;
    kb.wsum = 8;
    ck_assert_double_eq_tol(mf_jaccard_keys(&ka, &kb), 6.0 / (6 + 8 - 6), 1e-12);
    mf_keyset_destroy(&ka);
    mf_keyset_destroy(&kb);
    /* too short for the order: empty, fine; bad orders rejected */
    ck_assert_int_eq(mf_keyset_build(&ka, a, 1, 2, 2), MF_OK);
    ck_assert_uint_eq(ka.n, 0);
    ck_assert_int_eq(mf_keyset_build(&ka, a, 4, 0, 2), MF_EINVAL);
    ck_assert_int_eq(mf_keyset_build(&ka, a, 4, 3, 2), MF_EINVAL);
    /* a long repetitive trace: 2 * 1000 keys made, 6 distinct kept, and the block holds only
     * those (the views keep one set per reference for the scorer's life) */
    int32_t rep[1000];
    for (int i = 0; i < 1000; i++)
        rep[i] = i % 3;
    ck_assert_int_eq(mf_keyset_build(&ka, rep, 1000, 1, 2), MF_OK);
    ck_assert_uint_eq(ka.n, 6);
    ck_assert_msg(malloc_usable_size(ka.k) < 256, "%zu bytes kept for 6 keys",
                  malloc_usable_size(ka.k));
    mf_keyset_destroy(&ka);
}
END_TEST

/* ---- shared helpers (internal.h) ----------------------------------------------------------- */

START_TEST(test_find_u64)
{
    ck_assert_int_eq(mf__find_u64(NULL, 0, 0), -1); /* empty: no read at all */
    const uint64_t one[] = {7};
    ck_assert_int_eq(mf__find_u64(one, 1, 7), 0);
    ck_assert_int_eq(mf__find_u64(one, 1, 6), -1);
    ck_assert_int_eq(mf__find_u64(one, 1, 8), -1);
    const uint64_t k[] = {0, 2, 3, 10, 1000, UINT64_MAX - 1, UINT64_MAX};
    const long n = (long)(sizeof k / sizeof *k);
    for (long i = 0; i < n; i++) /* every key, the first and last included */
        ck_assert_int_eq(mf__find_u64(k, (size_t)n, k[i]), i);
    const uint64_t gaps[] = {1, 4, 9, 11, 999, 1001, UINT64_MAX - 2};
    for (size_t i = 0; i < sizeof gaps / sizeof *gaps; i++)
        ck_assert_int_eq(mf__find_u64(k, (size_t)n, gaps[i]), -1);
    ck_assert_int_eq(mf__find_u64(k + 1, (size_t)n - 1, 0), -1); /* below the first */
    ck_assert_int_eq(mf__find_u64(k, (size_t)n - 1, UINT64_MAX), -1); /* above the last */
    /* the key-set lookup is the same search */
    mf_keyset_t ks = {(uint64_t *)k, NULL, (size_t)n, (double)n};
    ck_assert_int_eq(mf_keyset_find(&ks, 1000), 4);
    ck_assert_int_eq(mf_keyset_find(&ks, 999), -1);
}
END_TEST

START_TEST(test_idf)
{
    /* sklearn's smoothed idf: ln((1 + n) / (1 + df)) + 1 */
    ck_assert_double_eq_tol(mf__idf(0, 0), 1.0, 1e-6);
    ck_assert_double_eq_tol(mf__idf(5, 5), 1.0, 1e-6);   /* in every document: still 1 */
    ck_assert_double_eq_tol(mf__idf(0, 9), log(10.0) + 1, 1e-6); /* unseen: finite */
    ck_assert_double_eq_tol(mf__idf(1, 3), log(2.0) + 1, 1e-6);
    ck_assert_double_eq_tol(mf__idf(3, 99), log(25.0) + 1, 1e-6);
    for (size_t df = 0; df < 10; df++) /* rarer weighs more */
        ck_assert(mf__idf(df, 10) > mf__idf(df + 1, 10));
    ck_assert(mf__idf(10, 10) >= 1.0f);
}
END_TEST

/* How many items of class c each fold holds differ by at most one (stratified). */
static void assert_stratified(const int *label, const int *fold, size_t n, int c, int k)
{
    int cnt[16] = {0};
    for (size_t i = 0; i < n; i++)
        if (label[i] == c) {
            ck_assert(fold[i] >= 0 && fold[i] < k);
            cnt[fold[i]]++;
        }
    int lo = cnt[0], hi = cnt[0];
    for (int f = 1; f < k; f++) {
        lo = cnt[f] < lo ? cnt[f] : lo;
        hi = cnt[f] > hi ? cnt[f] : hi;
    }
    ck_assert_int_le(hi - lo, 1);
}

START_TEST(test_deal_folds)
{
    /* 3 classes of 7, 5 and 4 items, interleaved, plus two out-of-range labels */
    const int label[] = {0, 1, 2, 0, 0, 1, 2, 0, -1, 1, 0, 2, 0, 1, 5, 0, 2, 1};
    const size_t n = sizeof label / sizeof *label;
    int fold[18], again[18];

    /* file order, each class from fold 0 (the temperature fit): fold = rank in class % k */
    ck_assert_int_eq(mf__deal_folds(label, n, 3, 3, 0, NULL, fold), MF_OK);
    const int want[] = {0, 0, 0, 1, 2, 1, 1, 0, -1, 2, 1, 2, 2, 0, -1, 0, 0, 1};
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(fold[i], want[i]);

    /* shuffled, counter carried (mf_eval_cv): stratified, every item dealt, folds within one
     * item of each other, and the same seed gives the same folds */
    uint64_t rng = 42, rng2 = 42;
    ck_assert_int_eq(mf__deal_folds(label, n, 3, 4, 1, &rng, fold), MF_OK);
    ck_assert_int_eq(mf__deal_folds(label, n, 3, 4, 1, &rng2, again), MF_OK);
    ck_assert_uint_eq(rng, rng2);
    ck_assert_uint_ne(rng, 42); /* the shuffle drew from the caller's RNG */
    int size[4] = {0};
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(fold[i], again[i]);
        ck_assert(fold[i] >= 0 && fold[i] < 4);
        size[fold[i]]++;
    }
    for (int c = 0; c < 3; c++)
        assert_stratified(label, fold, n, c, 4);
    for (int f = 0; f < 4; f++)
        ck_assert(size[f] == 4 || size[f] == 5); /* 18 items over 4 folds */
    rng2 = 7; /* another seed, another order (fixed inputs: this one differs) */
    ck_assert_int_eq(mf__deal_folds(label, n, 3, 4, 1, &rng2, again), MF_OK);
    int differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += fold[i] != again[i];
    ck_assert_int_gt(differ, 0);

    /* k = 1 puts everything in fold 0; bad k; nothing to deal; the shuffle's allocation */
    ck_assert_int_eq(mf__deal_folds(label, n, 3, 1, 1, NULL, fold), MF_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(fold[i], 0);
    ck_assert_int_eq(mf__deal_folds(label, n, 3, 0, 0, NULL, fold), MF_EINVAL);
    ck_assert_int_eq(mf__deal_folds(label, 0, 3, 2, 1, &rng, fold), MF_OK);
    for (size_t i = 0; i < n; i++)
        fold[i] = 9;
    mf__alloc_fail_after(1);
    int rc = mf__deal_folds(label, n, 3, 2, 1, &rng, fold);
    mf__alloc_fail_after(0);
    ck_assert_int_eq(rc, MF_ENOMEM);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(fold[i], 9); /* untouched */
}
END_TEST

/* ---- a toy model ------------------------------------------------------------------------------
 * Vocabulary a..h (ids 0..7). Families: "alpha" pattern {a b c}, "beta" {d e f}, "gam\"ma"
 * {a g h} (a quote in the name, for JSON). References: two per family. */

static mf_model_t *toy_model(void)
{
    mf_model_t *m = tu_model_letters('h');
    const char *names[3] = {"alpha", "beta", "gam\"ma"};
    const char *pats[3] = {"abcabc", "defdef", "aghagh"};
    m->fam = mf__calloc(3, sizeof *m->fam);
    ck_assert_ptr_nonnull(m->fam);
    m->nfam = 3;
    for (int f = 0; f < 3; f++) {
        m->fam[f].name = mf__strndup(names[f], strlen(names[f]));
        tu_trace_letters(&m->fam[f].pattern, pats[f]);
    }
    const char *refs[6] = {"abc", "abca", "def", "defe", "agh", "ahg"};
    m->refs = mf__calloc(6, sizeof *m->refs);
    m->ref_label = mf__calloc(6, sizeof *m->ref_label);
    ck_assert(m->refs && m->ref_label);
    m->nrefs = 6;
    for (int i = 0; i < 6; i++) {
        tu_trace_letters(&m->refs[i], refs[i]);
        m->ref_label[i] = i / 2;
    }
    return m;
}

/* Calibration's folds: 5, all scored, up to MF__CAL_ALL references; beyond, one held-out fold
 * of about MF__CAL_SAMPLE holding every class (the work is bounded, not R^2). */
START_TEST(test_calibration_sample)
{
    enum { N = 50000, C = 500 };
    int *label = malloc(N * sizeof *label), *fold = malloc(N * sizeof *fold);
    ck_assert(label && fold);
    for (int i = 0; i < N; i++)
        label[i] = (i * 7) % C;
    int keval;
    ck_assert_int_eq(mf__cal_folds(label, MF__CAL_ALL, C, fold, &keval), MF_OK);
    ck_assert_int_eq(keval, 5);
    for (size_t n = MF__CAL_ALL + 1; n <= N; n += N - MF__CAL_ALL - 1) {
        ck_assert_int_eq(mf__cal_folds(label, n, C, fold, &keval), MF_OK);
        ck_assert_int_eq(keval, 1);
        size_t in = 0;
        unsigned char seen[C] = {0};
        for (size_t i = 0; i < n; i++)
            if (fold[i] == 0) {
                in++;
                seen[label[i]] = 1;
            }
        ck_assert_msg(in >= MF__CAL_SAMPLE / 2 && in <= MF__CAL_SAMPLE + C, "%zu held out of %zu",
                      in, n);
        for (int c = 0; c < C; c++)
            ck_assert(seen[c]);
    }
    free(label);
    free(fold);
}
END_TEST

START_TEST(test_modes_names)
{
    ck_assert_int_eq(mf_score_nmodes(), MF_NMODES);
    for (int i = 0; i < MF_NMODES; i++)
        ck_assert_int_eq(mf_score_mode_parse(mf_score_mode_name(i)), i);
    ck_assert_int_eq(mf_score_mode_parse("paper"), MF_MODE_PAPER);
    ck_assert_int_eq(mf_score_mode_parse("Paper"), -1);
    ck_assert_int_eq(mf_score_mode_parse(NULL), -1);
    ck_assert_str_eq(mf_score_mode_name(99), "?");
    ck_assert_str_eq(mf_score_mode_name(mf_score_default_mode()), "linear");
    ck_assert_int_eq(mf_score_mode_parse("fusion"), MF_MODE_FUSION);
    ck_assert_int_eq(mf_score_mode_parse("linear"), MF_MODE_LINEAR);
    mf_score_opts_t o;
    mf_score_opts_default(&o);
    ck_assert_int_eq(o.fuse_w, 50);
    ck_assert_int_eq(o.lin_hi, 2);
    ck_assert_int_eq(o.lin_c, 100);
    o.fuse_w = 101;
    ck_assert_int_eq(mf_score_opts_check(&o, NULL, 0), MF_EINVAL);
    mf_score_opts_default(&o);
    o.lin_c = 0;
    char msg[64];
    ck_assert_int_eq(mf_score_opts_check(&o, msg, sizeof msg), MF_EINVAL);
    ck_assert_msg(strstr(msg, "lin_c"), "%s", msg);
    o.lin_c = 100;
    o.lin_hi = 9;
    ck_assert_int_eq(mf_score_opts_check(&o, NULL, 0), MF_EINVAL);
}
END_TEST

/* The default mode follows what the model holds: linear whenever there are references,
 * else likelihood with an LSTM per family, else paper. Fusion, and linear with lin_nov 0,
 * judge novelty by combo's absolute best score against combo's threshold. */
START_TEST(test_pick_default)
{
    ck_assert_int_eq(mf_score_pick_default(NULL), MF_MODE_LINEAR);
    mf_model_t *m = toy_model();
    ck_assert_int_eq(mf_score_pick_default(m), MF_MODE_LINEAR);
    mf_lstm_dims_t d = {8, 2, 3, 2};
    for (int f = 0; f < 3; f++) {
        m->fam[f].lstm = mf_lstm_new(&d);
        ck_assert_ptr_nonnull(m->fam[f].lstm);
    }
    ck_assert_int_eq(mf_score_pick_default(m), MF_MODE_LINEAR);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    ck_assert(mf_score_mode_available(s, mf_score_pick_default(m)));
    mf_scorer_free(s);
    /* what `malfam train` does after training: every mode gets a threshold */
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    ck_assert(isfinite(mf_model_param(m, "unknown.fusion", NAN)));
    ck_assert(isfinite(mf_model_param(m, "unknown.linear", NAN)));
    /* linear's novelty on combo's scale is lin_nov 0 (the default judges its own p) */
    mf_score_opts_t o0;
    mf_score_opts_from_model(&o0, m);
    ck_assert_int_eq(o0.lin_nov, 3);
    o0.lin_nov = 0;
    s = mf_scorer_new_ex(m, &o0, NULL, NULL);
    ck_assert_ptr_nonnull(s);
    const char *probes[] = {"abc", "hhhh", "dab", "b"};
    for (int i = 0; i < 4; i++) {
        mf_trace_t t;
        tu_trace_letters(&t, probes[i]);
        mf_result_t rc;
        ck_assert_int_eq(mf_score_trace(s, MF_MODE_COMBO, &t, 3, &rc), MF_OK);
        ck_assert_double_eq(rc.novelty, rc.top[0].score);
        for (int k = 0; k < 2; k++) {
            mf_result_t r;
            int mode = k ? MF_MODE_LINEAR : MF_MODE_FUSION;
            ck_assert_int_eq(mf_score_trace(s, mode, &t, 3, &r), MF_OK);
            ck_assert_double_eq(r.novelty, rc.top[0].score);
            ck_assert_double_eq(r.threshold, rc.threshold);
            ck_assert_int_eq(r.unknown, rc.unknown);
            if (k && i == 0) /* "abc": a, b, c, ab, bc are alpha's features */
                ck_assert_msg(strstr(r.explain, "shared with alpha:") &&
                                  strstr(r.explain, "; weighs most: "),
                              "%s", r.explain);
        }
        mf_trace_destroy(&t);
    }
    mf_scorer_free(s);
    size_t nrefs = m->nrefs;
    m->nrefs = 0;
    ck_assert_int_eq(mf_score_pick_default(m), MF_MODE_LIKELIHOOD);
    mf_lstm_free(m->fam[1].lstm);
    m->fam[1].lstm = NULL;
    ck_assert_int_eq(mf_score_pick_default(m), MF_MODE_PAPER);
    m->nrefs = nrefs;
    ck_assert_int_eq(mf_score_pick_default(m), MF_MODE_LINEAR);
    mf_model_free(m);
}
END_TEST

/* Two classes of synthetic traces: class c draws its calls from {3c, 3c+1, 3c+2} mixed with
 * the shared calls 6 and 7; a fixed LCG makes them. */
static void synth(mf_trace_t *t, int c, uint32_t seed, size_t n)
{
    tu_class_trace(t, c, 6, seed, n);
}

/* The OOM attempts of test_linear_classifier: train c->l from the n traces tr (2 classes,
 * options o), or use c->l on the trace fresh (score, vectorise, top n-grams). */
typedef struct {
    const mf_trace_t *tr;
    const int *label;
    size_t n;
    const mf_linear_opts_t *o;
    mf_linear_t *l;
    const mf_trace_t *fresh;
} linear_ctx_t;

static int linear_train_attempt(void *ctx)
{
    linear_ctx_t *c = ctx;
    int rc = mf_linear_train(&c->l, c->tr, c->label, NULL, c->n, 2, c->o);
    if (rc != MF_OK)
        ck_assert_ptr_null(c->l);
    return rc;
}

static int linear_use_attempt(void *ctx)
{
    const linear_ctx_t *c = ctx;
    const mf_trace_t *t = c->fresh;
    double sc[2];
    size_t pos[3];
    int len[3];
    mf_linear_vec_t v;
    memset(&v, 0, sizeof v);
    int rc = mf_linear_score(c->l, t->ids, t->n, sc);
    if (rc == MF_OK)
        rc = mf_linear_vectorise(c->l, t->ids, t->n, &v);
    if (rc == MF_OK)
        rc = mf_linear_top(c->l, &v, t->ids, t->n, 1, 3, pos, len) < 0 ? MF_ENOMEM : MF_OK;
    mf_linear_vec_free(&v);
    return rc;
}

/* The spread hook of test_linear_spread: this process fits the even classes, merge fits the
 * odd ones apart (as another rank would) and sets their columns. */
typedef struct {
    const mf_trace_t *tr;
    const int *label;
    int plans, merges, local;
} split_ctx_t;

static int split_plan(void *ctx, const mf_trace_t *traces, const int *label,
                      const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                      unsigned char *mine, int *local)
{
    split_ctx_t *c = ctx;
    (void)skip, (void)n, (void)o;
    ck_assert_ptr_eq(traces, c->tr);
    ck_assert_ptr_eq(label, c->label);
    c->plans++;
    *local = c->local;
    for (int k = 0; k < nclass; k++)
        mine[k] = k % 2 == 0;
    return MF_OK;
}

/* w (nf + 1 per class) of l; a fit of the classes in mine[] merged into into. */
static void merge_fit(mf_linear_t *into, const mf_trace_t *tr, const int *label,
                      const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                      const unsigned char *mine)
{
    mf_linear_t *part;
    ck_assert_int_eq(mf_linear_train_classes(&part, tr, label, skip, n, nclass, o, mine), MF_OK);
    size_t nw = mf_linear_nfeatures(part) + 1;
    ck_assert_uint_eq(nw, mf_linear_nfeatures(into) + 1);
    float *col = malloc(nw * sizeof *col);
    ck_assert_ptr_nonnull(col);
    for (int k = 0; k < nclass; k++)
        if (mine[k]) {
            ck_assert_int_eq(mf_linear_class_get(part, k, col), MF_OK);
            ck_assert_int_eq(mf_linear_class_set(into, k, col), MF_OK);
        }
    free(col);
    mf_linear_free(part);
}

static int split_merge(void *ctx, mf_linear_t *l, const unsigned char *mine)
{
    split_ctx_t *c = ctx;
    ck_assert_ptr_nonnull(l);
    mf_linear_parts_t p;
    mf_linear_get_parts(l, &p);
    unsigned char other[3];
    for (int k = 0; k < p.nclass; k++)
        other[k] = !mine[k];
    c->merges++;
    merge_fit(l, c->tr, c->label, NULL, 12, p.nclass, &p.o, other);
    return MF_OK;
}

static int same_weights(const mf_linear_t *a, const mf_linear_t *b)
{
    mf_linear_parts_t pa, pb;
    mf_linear_get_parts(a, &pa);
    mf_linear_get_parts(b, &pb);
    return pa.nf == pb.nf && pa.nclass == pb.nclass &&
           !memcmp(pa.w, pb.w, (pa.nf + 1) * (size_t)pa.nclass * sizeof *pa.w) &&
           !memcmp(pa.dk, pb.dk, pa.nf * sizeof *pa.dk);
}

/* One-vs-rest classes fitted apart (a subset per process) and merged are bit for bit the full
 * fit, directly and through the spread hook mf_linear_train_ex calls (the CLI's MPI layer). */
START_TEST(test_linear_spread)
{
    enum { N = 12, K = 3 };
    mf_trace_t tr[N];
    int label[N];
    for (int i = 0; i < N; i++) {
        label[i] = i % K;
        synth(&tr[i], label[i] % 2, 300u + (uint32_t)i, 20 + (size_t)i);
    }
    mf_linear_opts_t o = {2, 1.0, 1, 1, 0.5, 0};
    unsigned char skip[N] = {0, 1}, even[K] = {1, 0, 1}, odd[K] = {0, 1, 0};
    mf_linear_t *full, *l;
    ck_assert_int_eq(mf_linear_train(&full, tr, label, skip, N, K, &o), MF_OK);
    /* the even classes alone leave the odd column 0; the odd fit then fills it */
    ck_assert_int_eq(mf_linear_train_classes(&l, tr, label, skip, N, K, &o, even), MF_OK);
    ck_assert(!same_weights(full, l));
    merge_fit(l, tr, label, skip, N, K, &o, odd);
    ck_assert(same_weights(full, l));
    mf_linear_free(l);
    float col[1];
    ck_assert_int_eq(mf_linear_class_get(full, K, col), MF_EINVAL);
    ck_assert_int_eq(mf_linear_class_set(full, -1, col), MF_EINVAL);
    mf_linear_free(full);
    /* through the hook (every trace kept: split_merge fits without skip) */
    ck_assert_int_eq(mf_linear_train(&full, tr, label, NULL, N, K, &o), MF_OK);
    split_ctx_t c = {tr, label, 0, 0, 0};
    mf_linear_spread_t hook = {split_plan, split_merge, &c};
    mf_linear_set_spread(&hook);
    int rc = mf_linear_train(&l, tr, label, NULL, N, K, &o);
    ck_assert_int_eq(rc, MF_OK);
    ck_assert(c.plans == 1 && c.merges == 1);
    ck_assert(same_weights(full, l));
    mf_linear_free(l);
    c.local = 1; /* plan keeps it all here: no merge */
    ck_assert_int_eq(mf_linear_train(&l, tr, label, NULL, N, K, &o), MF_OK);
    mf_linear_set_spread(NULL);
    ck_assert(c.plans == 2 && c.merges == 1);
    ck_assert(same_weights(full, l));
    mf_linear_free(l);
    /* cleared: no more calls */
    ck_assert_int_eq(mf_linear_train(&l, tr, label, NULL, N, K, &o), MF_OK);
    ck_assert(c.plans == 2);
    mf_linear_free(l);
    mf_linear_free(full);
    for (int i = 0; i < N; i++)
        mf_trace_destroy(&tr[i]);
}
END_TEST

START_TEST(test_linear_classifier)
{
    enum { N = 12 };
    mf_trace_t tr[N];
    int label[N];
    for (int i = 0; i < N; i++) {
        label[i] = i % 2;
        synth(&tr[i], label[i], 100u + (uint32_t)i, 20 + (size_t)i);
    }
    mf_linear_opts_t o = {2, 1.0, 2, 0, 0, 0};
    mf_linear_t *l, *l2, *lsub;
    ck_assert_int_eq(mf_linear_train(&l, tr, label, NULL, N, 2, &o), MF_OK);
    ck_assert_uint_gt(mf_linear_nfeatures(l), 10);
    /* training traces and a fresh one land on their side of the boundary */
    double sc[2], sc2[2];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(mf_linear_score(l, tr[i].ids, tr[i].n, sc), MF_OK);
        ck_assert_msg(sc[label[i]] > sc[1 - label[i]], "trace %d: %g %g", i, sc[0], sc[1]);
    }
    mf_trace_t fresh;
    synth(&fresh, 1, 999u, 30);
    ck_assert_int_eq(mf_linear_score(l, fresh.ids, fresh.n, sc), MF_OK);
    ck_assert(sc[1] > 0 && sc[0] < 0);
    /* the n-grams that weigh most for class 1 are in the trace and hold class-1 calls */
    size_t pos[3];
    int len[3];
    mf_linear_vec_t v;
    ck_assert_int_eq(mf_linear_vectorise(l, fresh.ids, fresh.n, &v), MF_OK);
    mf_linear_score_vec(l, &v, sc2); /* the vector scores as the trace does */
    ck_assert(sc[0] == sc2[0] && sc[1] == sc2[1]);
    int nt = mf_linear_top(l, &v, fresh.ids, fresh.n, 1, 3, pos, len);
    mf_linear_vec_free(&v);
    ck_assert_int_ge(nt, 1);
    for (int i = 0; i < nt; i++)
        ck_assert(len[i] >= 1 && len[i] <= 2 && pos[i] + (size_t)len[i] <= fresh.n);
    int own = 0;
    for (int j = 0; j < len[0]; j++)
        own |= fresh.ids[pos[0] + (size_t)j] >= 3 && fresh.ids[pos[0] + (size_t)j] <= 5;
    ck_assert(own);
    /* deterministic; a skipped trace is the same as a trace never given */
    ck_assert_int_eq(mf_linear_train(&l2, tr, label, NULL, N, 2, &o), MF_OK);
    unsigned char skip[N] = {1};
    mf_linear_t *lskip;
    ck_assert_int_eq(mf_linear_train(&lskip, tr, label, skip, N, 2, &o), MF_OK);
    ck_assert_int_eq(mf_linear_train(&lsub, tr + 1, label + 1, NULL, N - 1, 2, &o), MF_OK);
    ck_assert_int_eq(mf_linear_score(l2, fresh.ids, fresh.n, sc2), MF_OK);
    ck_assert(sc[0] == sc2[0] && sc[1] == sc2[1]);
    ck_assert_int_eq(mf_linear_score(lskip, fresh.ids, fresh.n, sc), MF_OK);
    ck_assert_int_eq(mf_linear_score(lsub, fresh.ids, fresh.n, sc2), MF_OK);
    ck_assert(sc[0] == sc2[0] && sc[1] == sc2[1]);
    /* an empty trace gets the bias alone */
    ck_assert_int_eq(mf_linear_score(l, NULL, 0, sc), MF_OK);
    ck_assert(isfinite(sc[0]) && isfinite(sc[1]));
    /* bad options */
    mf_linear_t *bad = l;
    mf_linear_opts_t ob = o;
    ob.c = 0;
    ck_assert_int_eq(mf_linear_train(&bad, tr, label, NULL, N, 2, &ob), MF_EINVAL);
    ck_assert_ptr_null(bad);
    ob = o;
    ob.hi = 9;
    ck_assert_int_eq(mf_linear_train(&bad, tr, label, NULL, N, 2, &ob), MF_EINVAL);
    ck_assert_int_eq(mf_linear_train(&bad, tr, label, NULL, N, 0, &o), MF_EINVAL);
    /* OOM loop: each failure is clean; the first success equals the others */
    linear_ctx_t lc = {tr, label, N, &o, NULL, &fresh};
    tu_oom_loop(linear_train_attempt, &lc, 10000);
    mf_linear_t *lo = lc.l;
    ck_assert_int_eq(mf_linear_score(lo, fresh.ids, fresh.n, sc), MF_OK);
    ck_assert_int_eq(mf_linear_score(l, fresh.ids, fresh.n, sc2), MF_OK);
    ck_assert(sc[0] == sc2[0] && sc[1] == sc2[1]);
    lc.l = l;
    tu_oom_loop(linear_use_attempt, &lc, 10000);
    mf_linear_free(lo);
    mf_linear_free(l);
    mf_linear_free(l2);
    mf_linear_free(lskip);
    mf_linear_free(lsub);
    mf_linear_free(NULL);
    mf_trace_destroy(&fresh);
    for (int i = 0; i < N; i++)
        mf_trace_destroy(&tr[i]);
}
END_TEST

/* An imbalanced toy set: 24 traces of class 0, 2 of class 1 whose calls overlap class 0's.
 * Balanced costs (lin_bal) raise class 1's decision value against class 0's, enough to flip
 * a probe that the plain SVM gives to the big class; the nearest-reference view adds proto x
 * the cosine with the closest training vector (1 for a training trace itself). */
START_TEST(test_linear_balanced_and_proto)
{
    enum { N = 26 };
    mf_trace_t tr[N];
    int label[N];
    for (int i = 0; i < N; i++) {
        label[i] = i >= 24;
        synth(&tr[i], 0, 300u + (uint32_t)i, 30);
        if (label[i]) /* class 1: class 0's mix plus a few of its own calls (3) */
            for (int j = 0; j < 6; j++)
                ck_assert_int_eq(mf_trace_push(&tr[i], 3), MF_OK);
    }
    mf_trace_t probe; /* class 0's mix with two of class 1's calls */
    synth(&probe, 0, 4242u, 30);
    ck_assert_int_eq(mf_trace_push(&probe, 3), MF_OK);
    ck_assert_int_eq(mf_trace_push(&probe, 3), MF_OK);
    mf_linear_opts_t o = {2, 1.0, 1, 0, 0, 0}, ob = o;
    ob.balanced = 1;
    mf_linear_t *l, *lb;
    ck_assert_int_eq(mf_linear_train(&l, tr, label, NULL, N, 2, &o), MF_OK);
    ck_assert_int_eq(mf_linear_train(&lb, tr, label, NULL, N, 2, &ob), MF_OK);
    double sc[2], sb[2];
    ck_assert_int_eq(mf_linear_score(l, probe.ids, probe.n, sc), MF_OK);
    ck_assert_int_eq(mf_linear_score(lb, probe.ids, probe.n, sb), MF_OK);
    ck_assert_msg(sc[0] > sc[1], "plain: %g %g", sc[0], sc[1]);
    ck_assert_msg(sb[1] > sb[0], "balanced: %g %g", sb[0], sb[1]);
    ck_assert(sb[1] - sb[0] > sc[1] - sc[0]);
    /* balanced is 0 or 1; proto >= 0 */
    mf_linear_t *bad;
    ob.balanced = 2;
    ck_assert_int_eq(mf_linear_train(&bad, tr, label, NULL, N, 2, &ob), MF_EINVAL);
    ob = o;
    ob.proto = -1;
    ck_assert_int_eq(mf_linear_train(&bad, tr, label, NULL, N, 2, &ob), MF_EINVAL);
    /* proto: the same SVM plus proto x the nearest cosine; a training trace is its own
     * nearest neighbour (cosine 1) */
    ob = o;
    ob.proto = 0.5;
    mf_linear_t *lp;
    ck_assert_int_eq(mf_linear_train(&lp, tr, label, NULL, N, 2, &ob), MF_OK);
    double sp[2];
    ck_assert_int_eq(mf_linear_score(l, tr[25].ids, tr[25].n, sc), MF_OK);
    ck_assert_int_eq(mf_linear_score(lp, tr[25].ids, tr[25].n, sp), MF_OK);
    ck_assert_double_eq_tol(sp[1] - sc[1], 0.5, 1e-5);
    ck_assert(sp[0] - sc[0] > 0 && sp[0] - sc[0] < 0.5);
    mf_linear_free(l);
    mf_linear_free(lb);
    mf_linear_free(lp);
    mf_trace_destroy(&probe);
    for (int i = 0; i < N; i++)
        mf_trace_destroy(&tr[i]);
}
END_TEST

/* Binary tf (the default) values an n-gram by its presence: a loop run once or three times
 * (same 1- and 2-grams, other counts) is the same vector and gets the same decision values;
 * sublinear tf (0, models before lin_tf) tells them apart. tf is 0 or 1. */
START_TEST(test_linear_binary_tf)
{
    enum { N = 24 };
    mf_trace_t tr[N];
    int label[N];
    for (int i = 0; i < N; i++) {
        label[i] = i % 2;
        synth(&tr[i], label[i], 500u + (uint32_t)i, 30);
    }
    mf_trace_t once, thrice; /* 0 1 6 0 and 0 1 6 0 1 6 0 1 6 0: bigrams 01 16 60 both */
    mf_trace_init(&once);
    mf_trace_init(&thrice);
    const int32_t loop[3] = {0, 1, 6};
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++) {
            if (r == 0)
                ck_assert_int_eq(mf_trace_push(&once, loop[k]), MF_OK);
            ck_assert_int_eq(mf_trace_push(&thrice, loop[k]), MF_OK);
        }
    ck_assert_int_eq(mf_trace_push(&once, 0), MF_OK);
    ck_assert_int_eq(mf_trace_push(&thrice, 0), MF_OK);
    mf_linear_opts_t ob = {.hi = 2, .c = 1.0, .min_df = 1, .balanced = 1, .tf = 1}, os = ob;
    os.tf = 0;
    mf_linear_t *lb, *ls, *bad;
    ck_assert_int_eq(mf_linear_train(&lb, tr, label, NULL, N, 2, &ob), MF_OK);
    ck_assert_int_eq(mf_linear_train(&ls, tr, label, NULL, N, 2, &os), MF_OK);
    double b1[2], b3[2], s1[2], s3[2];
    ck_assert_int_eq(mf_linear_score(lb, once.ids, once.n, b1), MF_OK);
    ck_assert_int_eq(mf_linear_score(lb, thrice.ids, thrice.n, b3), MF_OK);
    ck_assert_int_eq(mf_linear_score(ls, once.ids, once.n, s1), MF_OK);
    ck_assert_int_eq(mf_linear_score(ls, thrice.ids, thrice.n, s3), MF_OK);
    for (int c = 0; c < 2; c++)
        ck_assert_double_eq_tol(b1[c], b3[c], 1e-9);
    ck_assert_msg(fabs(s1[0] - s3[0]) > 1e-4 || fabs(s1[1] - s3[1]) > 1e-4,
                  "sublinear: %g %g / %g %g", s1[0], s1[1], s3[0], s3[1]);
    ck_assert(!mf_linear_same(lb, &os, 2) && mf_linear_same(lb, &ob, 2));
    ob.tf = 2;
    ck_assert_int_eq(mf_linear_train(&bad, tr, label, NULL, N, 2, &ob), MF_EINVAL);
    mf_linear_parts_t p;
    ck_assert_int_eq(mf_linear_alloc(&bad, &ob, 2, 4, &p), MF_EINVAL);
    mf_linear_free(lb);
    mf_linear_free(ls);
    mf_trace_destroy(&once);
    mf_trace_destroy(&thrice);
    for (int i = 0; i < N; i++)
        mf_trace_destroy(&tr[i]);
}
END_TEST

/* The linear options: checked, stored as "score.*", and a model that stored its options before
 * they existed keeps their old values (it was calibrated with them). lin_nov 3 (the default)
 * makes the answer's novelty its top probability times combo's best similarity, against a
 * threshold calibrated out of fold. */
START_TEST(test_linear_options)
{
    mf_score_opts_t o;
    mf_score_opts_default(&o);
    ck_assert_int_eq(o.lin_bal, 1);
    ck_assert_int_eq(o.lin_df, 2);
    ck_assert_int_eq(o.lin_proto, 0);
    ck_assert_int_eq(o.lin_nov, 3);
    ck_assert_int_eq(o.lin_tf, 1);
    char msg[96];
    const struct { int *f, bad; const char *name; } cases[] = {
        {&o.lin_bal, 2, "lin_bal"}, {&o.lin_df, 0, "lin_df"}, {&o.lin_df, 17, "lin_df"},
        {&o.lin_proto, 1001, "lin_proto"}, {&o.lin_nov, 6, "lin_nov"}, {&o.lin_nov, -1, "lin_nov"},
        {&o.lin_tf, 2, "lin_tf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mf_score_opts_default(&o);
        *cases[i].f = cases[i].bad;
        ck_assert_int_eq(mf_score_opts_check(&o, msg, sizeof msg), MF_EINVAL);
        ck_assert_msg(strstr(msg, cases[i].name), "%s", msg);
    }
    mf_model_t *m = toy_model();
    mf_score_opts_t got;
    mf_score_opts_from_model(&got, m); /* nothing stored: the defaults */
    ck_assert_int_eq(got.lin_bal, 1);
    ck_assert_int_eq(got.lin_nov, 3);
    ck_assert_int_eq(mf_model_set_param(m, "score.lin_c", 100), MF_OK); /* an older model */
    mf_score_opts_from_model(&got, m);
    ck_assert_int_eq(got.lin_bal, 0);
    ck_assert_int_eq(got.lin_nov, 0);
    ck_assert_int_eq(got.lin_tf, 0);
    ck_assert_int_eq(mf_model_set_param(m, "score.lin_tf", 1), MF_OK); /* stored: kept */
    mf_score_opts_from_model(&got, m);
    ck_assert_int_eq(got.lin_tf, 1);
    mf_score_opts_default(&o);
    o.lin_df = 1;
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    mf_score_opts_from_model(&got, m);
    ck_assert(got.lin_bal == 1 && got.lin_nov == 3 && got.lin_df == 1);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    double thr = mf_model_param(m, "unknown.linear", NAN);
    ck_assert_msg(thr > 0 && thr <= 1, "%g", thr);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    mf_trace_t t;
    tu_trace_letters(&t, "abc");
    mf_result_t r;
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, &t, 3, &r), MF_OK);
    /* 6 references are too few to fit a temperature (p is NAN): the novelty is the top
     * family's softmax with T = 1 over the three families times combo's best similarity */
    ck_assert(isnan(r.top[0].p));
    double z = 0;
    for (int i = 0; i < 3; i++)
        z += exp(r.top[i].score - r.top[0].score);
    mf_result_t rc;
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_COMBO, &t, 1, &rc), MF_OK);
    ck_assert_double_eq_tol(r.novelty, rc.top[0].score / z, 1e-12);
    ck_assert_double_eq(r.threshold, thr);
    ck_assert_int_eq(r.unknown, r.novelty < thr);
    mf_trace_destroy(&t);
    mf_scorer_free(s);
    mf_model_free(m);
}
END_TEST

/* Families "zero" and "one" without patterns, and n references for the caller to fill
 * (labels 0, empty traces). */
static mf_model_t *two_families(size_t n)
{
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->fam = mf__calloc(2, sizeof *m->fam);
    m->refs = mf__calloc(n, sizeof *m->refs);
    m->ref_label = mf__calloc(n, sizeof *m->ref_label);
    ck_assert(m->fam && m->refs && m->ref_label);
    m->nfam = 2;
    for (int f = 0; f < 2; f++) {
        m->fam[f].name = mf__strndup(f ? "one" : "zero", f ? 3 : 4);
        mf_trace_init(&m->fam[f].pattern);
    }
    m->nrefs = n;
    return m;
}

static int calibrate_attempt(void *ctx)
{
    return mf_score_calibrate(ctx, 0.05);
}

/* The temperature of linear's probabilities is fitted by calibration (out-of-fold scores of
 * the references) and every allocation failure on the way is a clean MF_ENOMEM. */
START_TEST(test_linear_temperature)
{
    mf_model_t *m = two_families(24);
    for (size_t i = 0; i < m->nrefs; i++) {
        m->ref_label[i] = (int)(i % 2);
        synth(&m->refs[i], (int)(i % 2), 500u + (uint32_t)i, 25);
    }
    tu_oom_loop(calibrate_attempt, m, 100000);
    double t = mf_model_param(m, "linear.temp", NAN);
    ck_assert_msg(t > 0 && t <= 100, "temperature %g", t);
    /* separable classes: the fit sharpens the probabilities (t above 1) */
    ck_assert_msg(t > 1, "temperature %g", t);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    mf_trace_t fresh;
    synth(&fresh, 1, 77u, 30);
    mf_result_t r;
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, &fresh, 2, &r), MF_OK);
    ck_assert_int_eq(r.top[0].family, 1);
    ck_assert(r.top[0].p > 0.5 && fabs(r.top[0].p + r.top[1].p - 1) < 1e-9);
    ck_assert(isnan(mf_model_param(m, "unknown.linear.f1", NAN)));
    mf_scorer_free(s);
    /* lin_fthr: each family guessed >= 10 times out of fold gets its own threshold, and an
     * answer is judged by its top family's */
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    o.lin_fthr = 1;
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    double f0 = mf_model_param(m, "unknown.linear.f0", NAN);
    double f1 = mf_model_param(m, "unknown.linear.f1", NAN);
    ck_assert_msg(f0 > 0 && f0 <= 1 && f1 > 0 && f1 <= 1, "%g %g", f0, f1);
    s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, &fresh, 2, &r), MF_OK);
    ck_assert_double_eq(r.threshold, f1);
    ck_assert_int_eq(r.unknown, r.novelty < f1);
    o.lin_fthr = 2;
    ck_assert_int_eq(mf_score_opts_check(&o, NULL, 0), MF_EINVAL);
    mf_trace_destroy(&fresh);
    mf_scorer_free(s);
    mf_model_free(m);
}
END_TEST

/* Two families with patterns and 24 references: every mode but the LSTM ones. */
static mf_model_t *spread_model(void)
{
    mf_model_t *m = two_families(24);
    for (int f = 0; f < 2; f++)
        synth(&m->fam[f].pattern, f, 900u + (uint32_t)f, 40);
    for (size_t i = 0; i < m->nrefs; i++) {
        m->ref_label[i] = i % 3 == 0;
        synth(&m->refs[i], i % 3 == 0, 700u + (uint32_t)i, 20 + i);
    }
    return m;
}

/* An in-process stand-in for another process: plan keeps the even rows here, merge scores the
 * odd ones on a scorer of the model plan was given (as a rank > 0 does with the posted one). */
typedef struct {
    mf_scorer_t *s;
    int modes, fail;
    const size_t *sample;
} fake_spread_t;

static int fake_plan(void *ctx, mf_model_t *m, int mode, const size_t *sample, size_t n,
                     unsigned char *mine)
{
    fake_spread_t *f = ctx;
    (void)mode;
    if (!f->s)
        f->s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(f->s);
    for (size_t k = 0; k < n; k++)
        mine[k] = k % 2 == 0;
    f->sample = sample;
    f->modes++;
    return f->fail && f->modes == 3 ? MF_EIO : MF_OK;
}

static int fake_merge(void *ctx, int mode, size_t n, const unsigned char *mine, int nfam,
                      double *sv, double *best, unsigned char *got)
{
    fake_spread_t *f = ctx;
    ck_assert_int_eq(nfam, 2);
    if (!sv)
        return MF_EINVAL; /* this process failed its share */
    unsigned char *theirs = malloc(n);
    ck_assert_ptr_nonnull(theirs);
    for (size_t k = 0; k < n; k++)
        theirs[k] = !mine[k];
    int rc = mf_score_cal_rows(f->s, mode, f->sample, n, theirs, sv, best, got);
    free(theirs);
    return rc;
}

/* mf_score_set_spread: calibration with its rows split between "processes" stores the very
 * parameters one process does; a failing plan fails the calibration. */
START_TEST(test_calibration_spread)
{
    mf_model_t *a = spread_model(), *b = spread_model();
    ck_assert_int_eq(mf_score_calibrate(a, 0.05), MF_OK);
    fake_spread_t f = {0};
    mf_cal_spread_t hook = {fake_plan, fake_merge, &f};
    mf_score_set_spread(&hook);
    int rc = mf_score_calibrate(b, 0.05);
    mf_score_set_spread(NULL);
    ck_assert_int_eq(rc, MF_OK);
    ck_assert_msg(f.modes >= 6, "rows of %d modes spread", f.modes); /* paper .. combo */
    ck_assert_int_eq(a->nparams, b->nparams);
    for (int i = 0; i < a->nparams; i++) {
        double x = a->params[i].value, y = mf_model_param(b, a->params[i].name, -1);
        ck_assert_msg(x == y || (isnan(x) && isnan(y)), "%s: %.17g vs %.17g",
                      a->params[i].name, x, y);
    }
    ck_assert(isfinite(mf_model_param(b, "unknown.knn", NAN)));
    mf_scorer_free(f.s);
    /* a share that fails fails the calibration, and leaves no classifier behind */
    fake_spread_t g = {.fail = 1};
    hook.ctx = &g;
    mf_score_set_spread(&hook);
    rc = mf_score_calibrate(b, 0.05);
    mf_score_set_spread(NULL);
    ck_assert_int_eq(rc, MF_EIO);
    ck_assert_ptr_null(b->lin);
    mf_scorer_free(g.s);
    mf_model_free(a);
    mf_model_free(b);
}
END_TEST

/* Mean log loss of softmax(t * score) over rows of nf scores with labels y. */
static double rows_log_loss(const double *d, const int *y, size_t n, int nf, double t)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const double *r = d + i * (size_t)nf;
        double z = 0;
        for (int f = 0; f < nf; f++)
            z += exp(t * (r[f] - r[y[i]]));
        sum += log(z);
    }
    return sum / (double)n;
}

/* Every mode that ranks families gets a temperature at calibration ("<mode>.temp"), so every
 * answer carries p: in [0, 1], summing to at most 1 over the reported families, ordered like
 * the scores; and the fitted temperature beats T = 1 on the calibration data (the
 * references' leave-one-out scores; linear's out-of-fold decision values). */
START_TEST(test_every_mode_p)
{
    enum { NF = 3, N = 30, NV = 9 };
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->fam = mf__calloc(NF, sizeof *m->fam);
    m->refs = mf__calloc(N, sizeof *m->refs);
    m->ref_label = mf__calloc(N, sizeof *m->ref_label);
    ck_assert(m->fam && m->refs && m->ref_label);
    m->nfam = NF;
    mf_lstm_dims_t dims = {NV, 2, 3, 2};
    for (int f = 0; f < NF; f++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", f);
        m->fam[f].name = mf__strndup(name, strlen(name));
        synth(&m->fam[f].pattern, f, 900u + (uint32_t)f, 40);
        m->fam[f].lstm = mf_lstm_new(&dims);
        ck_assert_ptr_nonnull(m->fam[f].lstm);
    }
    for (int i = 0; i < N; i++) {
        m->ref_label[i] = i % NF;
        synth(&m->refs[i], i % NF, 300u + (uint32_t)i, 12 + (size_t)(i % 7));
    }
    m->nrefs = N;
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    double d[N * NF];
    int y[N];
    size_t ref[N], rows = 0;
    int nmodes = 0;
    for (int mode = 0; mode < MF_NMODES; mode++) {
        if (!mf_score_mode_available(s, mode))
            continue;
        nmodes++;
        const char *mn = mf_score_mode_name(mode);
        char name[48];
        snprintf(name, sizeof name, "%s.temp", mn);
        double t = mf_model_param(m, name, NAN);
        ck_assert_msg(t >= 0 && t <= 1000, "%s: temperature %g", mn, t);
        for (int c = 0; c < NF; c++) {
            mf_trace_t fresh;
            synth(&fresh, c, 4242u + (uint32_t)c, 20);
            mf_result_t r;
            ck_assert_int_eq(mf_score_trace(s, mode, &fresh, NF - 1, &r), MF_OK);
            ck_assert_int_eq(r.ntop, NF - 1);
            double sum = 0;
            for (int i = 0; i < r.ntop; i++) {
                double p = r.top[i].p;
                ck_assert_msg(p >= 0 && p <= 1, "%s: p %g", mn, p);
                if (i > 0)
                    ck_assert_msg(p <= r.top[i - 1].p, "%s: p not ordered like scores", mn);
                sum += p;
            }
            ck_assert_msg(sum <= 1 + 1e-12, "%s: p sums to %g", mn, sum);
            mf_trace_destroy(&fresh);
        }
        /* the calibration data: linear's out-of-fold values, else leave-one-out scores */
        rows = 0;
        if (mode == MF_MODE_LINEAR) {
            ck_assert_int_eq(mf__linear_oof(m, &s->o, NULL, d, y, ref, &rows, NULL, NULL), MF_OK);
        } else {
            for (size_t i = 0; i < N; i++) {
                mf_result_t r;
                ck_assert_int_eq(mf__score_trace_all(s, mode, &m->refs[i], (long)i, 1, &r,
                                                     d + rows * NF), MF_OK);
                y[rows++] = m->ref_label[i];
            }
        }
        double lt = rows_log_loss(d, y, rows, NF, t), l1 = rows_log_loss(d, y, rows, NF, 1);
        /* the untrained networks of likelihood tell the families apart by chance only: there
         * the fit may merely match T = 1 */
        if (mode == MF_MODE_LIKELIHOOD)
            ck_assert_msg(lt <= l1 + 1e-9, "%s: log loss %g at T=%g, %g at T=1", mn, lt, t, l1);
        else
            ck_assert_msg(lt < l1 - 1e-3, "%s: log loss %g at T=%g, %g at T=1", mn, lt, t, l1);
    }
    ck_assert_int_eq(nmodes, MF_NMODES); /* every mode was checked */
    mf_scorer_free(s);
    mf_model_free(m);
}
END_TEST

START_TEST(test_ranking)
{
    mf_model_t *m = toy_model();
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    mf_trace_t t;
    tu_trace_letters(&t, "abcd"); /* {a b c d} */
    mf_result_t r;
    /* paper: alpha {a b c} 3/4, beta {d e f} 1/6, gamma {a g h} 1/6 (tie: lower index first) */
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_PAPER, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.ntop, 3);
    ck_assert_int_eq(r.top[0].family, 0);
    ck_assert_double_eq_tol(r.top[0].score, 0.75, 1e-12);
    ck_assert_int_eq(r.top[1].family, 1);
    ck_assert_double_eq_tol(r.top[1].score, 1.0 / 6.0, 1e-12);
    ck_assert_int_eq(r.top[2].family, 2);
    ck_assert_uint_eq(r.calls, 4);
    ck_assert_int_eq(r.unknown, 0); /* not calibrated: never unknown */
    ck_assert(isinf(r.threshold) && r.threshold < 0);
    ck_assert_ptr_nonnull(strstr(r.explain, "shared with alpha: "));
    /* multiset: trace counts a1 b1 c1 d1, alpha pattern a2 b2 c2: min 3 / (4 + 6 - 3) */
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_MULTISET, &t, 1, &r), MF_OK);
    ck_assert_int_eq(r.ntop, 1);
    ck_assert_int_eq(r.top[0].family, 0);
    ck_assert_double_eq_tol(r.top[0].score, 3.0 / 7.0, 1e-12);
    /* ngram (bigrams): trace {ab bc cd}, alpha {ab bc ca}: 2 / 4 */
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_NGRAM, &t, 1, &r), MF_OK);
    ck_assert_double_eq_tol(r.top[0].score, 0.5, 1e-12);
    ck_assert_ptr_nonnull(strstr(r.explain, "n-grams: "));
    /* nn: best reference of alpha is "abc" (3/4) */
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_NN, &t, 2, &r), MF_OK);
    ck_assert_int_eq(r.top[0].family, 0);
    ck_assert_double_eq_tol(r.top[0].score, 0.75, 1e-12);
    /* leaving the reference "abc" out leaves "abca" (same set): still 3/4 */
    ck_assert_int_eq(mf_score_trace_ex(s, MF_MODE_NN, &t, 0, 2, &r), MF_OK);
    ck_assert_double_eq_tol(r.top[0].score, 0.75, 1e-12);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_KNN, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.top[0].family, 0);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_COMBO, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.top[0].family, 0);
    /* no LSTM in this model: likelihood is unavailable */
    ck_assert_int_eq(mf_score_mode_available(s, MF_MODE_LIKELIHOOD), 0);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_LIKELIHOOD, &t, 3, &r), MF_EINVAL);
    ck_assert_int_eq(mf_score_trace(s, 99, &t, 3, &r), MF_EINVAL);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_PAPER, &t, 0, &r), MF_EINVAL);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_PAPER, &t, MF_MAX_TOP + 1, &r), MF_EINVAL);
    mf_scorer_free(s);
    /* a removed family is never ranked, and its references do not vote */
    unsigned char skip[3] = {1, 0, 0};
    s = mf_scorer_new_ex(m, NULL, NULL, skip);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_NN, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.ntop, 2);
    ck_assert_int_ne(r.top[0].family, 0);
    ck_assert_int_ne(r.top[1].family, 0);
    mf_scorer_free(s);
    mf_trace_destroy(&t);
    mf_model_free(m);
}
END_TEST

START_TEST(test_knn_mean_of_k)
{
    mf_model_t *m = toy_model();
    mf_score_opts_t o;
    mf_score_opts_default(&o);
    o.knn_k = 2;
    o.knn_idf = 0;
    o.knn_hi = 1;
    mf_scorer_t *s = mf_scorer_new_ex(m, &o, NULL, NULL);
    ck_assert_ptr_nonnull(s);
    mf_trace_t t;
    tu_trace_letters(&t, "ag"); /* {a g}: agh 2/3, ahg 2/3 -> gamma 2/3; alpha abc 1/4, abca 1/4 */
    mf_result_t r;
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_KNN, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.top[0].family, 2);
    ck_assert_double_eq_tol(r.top[0].score, 2.0 / 3.0, 1e-12);
    ck_assert_int_eq(r.top[1].family, 0);
    ck_assert_double_eq_tol(r.top[1].score, 0.25, 1e-12);
    ck_assert_double_eq_tol(r.top[2].score, 0.0, 1e-12);
    mf_trace_destroy(&t);
    mf_scorer_free(s);
    o.knn_k = 0;
    char msg[64];
    ck_assert_int_eq(mf_score_opts_check(&o, msg, sizeof msg), MF_EINVAL);
    ck_assert_ptr_nonnull(strstr(msg, "knn_k"));
    ck_assert_ptr_null(mf_scorer_new_ex(m, &o, NULL, NULL));
    mf_model_free(m);
}
END_TEST

START_TEST(test_unknown_and_calibration)
{
    mf_model_t *m = toy_model();
    mf_trace_t t;
    tu_trace_letters(&t, "abcd");
    mf_result_t r;
    /* threshold from the model's parameter */
    ck_assert_int_eq(mf_model_set_param(m, "unknown.paper", 0.8), MF_OK);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_PAPER, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.unknown, 1); /* 0.75 < 0.8 */
    ck_assert_double_eq(r.threshold, 0.8);
    mf_scorer_set_threshold(s, MF_MODE_PAPER, 0.75);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_PAPER, &t, 3, &r), MF_OK);
    ck_assert_int_eq(r.unknown, 0); /* equal is known */
    mf_scorer_free(s);

    /* quantile: 10 values, rate 0.2 -> the third smallest (two lie below it) */
    double v[10] = {9, 1, 8, 2, 7, 3, 6, 4, 5, 0};
    ck_assert_double_eq(mf_score_quantile(v, 10, 0.2), 2);
    ck_assert_double_eq(mf_score_quantile(v, 10, 0.0), 0);
    ck_assert(isinf(mf_score_quantile(v, 0, 0.1)));

    /* calibration on the references, leave-one-out: with rate 0 the threshold is the lowest
     * best score of a reference against the others, so every reference is known */
    ck_assert_int_eq(mf_score_calibrate(m, 0.0), MF_OK);
    ck_assert_double_eq(mf_model_param(m, "unknown.rate", -1), 0.0);
    double thr = mf_model_param(m, "unknown.nn", NAN);
    ck_assert(isfinite(thr));
    ck_assert(isfinite(mf_model_param(m, "unknown.paper", NAN)));
    ck_assert(isnan(mf_model_param(m, "unknown.likelihood", NAN))); /* unavailable: skipped */
    s = mf_scorer_new(m);
    for (size_t i = 0; i < m->nrefs; i++) {
        ck_assert_int_eq(mf_score_trace_ex(s, MF_MODE_NN, &m->refs[i], (long)i, 1, &r), MF_OK);
        ck_assert_int_eq(r.unknown, 0);
    }
    /* a trace sharing nothing with anything is unknown in every calibrated mode */
    mf_trace_destroy(&t);
    mf_trace_init(&t);
    ck_assert_int_eq(mf_trace_push(&t, 7), MF_OK); /* h alone: low everywhere */
    for (int mode = 0; mode < MF_NMODES; mode++) {
        if (!mf_score_mode_available(s, mode))
            continue;
        ck_assert_int_eq(mf_score_trace(s, mode, &t, 3, &r), MF_OK);
        if (mode == MF_MODE_NGRAM) { /* "ahg" shares no bigram with gamma's pattern: thr 0 */
            ck_assert_double_eq(r.threshold, 0.0);
            continue;
        }
        ck_assert_msg(r.unknown == 1, "mode %s: best %g thr %g", mf_score_mode_name(mode),
                      r.top[0].score, r.threshold);
    }
    ck_assert_int_eq(mf_score_calibrate(m, 1.0), MF_EINVAL);
    mf_scorer_free(s);
    mf_trace_destroy(&t);
    mf_model_free(m);
}
END_TEST

/* The OOM attempts of test_oom: a scorer for c->m into c->s; c->t scored in c->mode. */
typedef struct {
    const mf_model_t *m;
    mf_scorer_t *s;
    int mode;
    const mf_trace_t *t;
} oom_ctx_t;

static int scorer_attempt(void *ctx)
{
    oom_ctx_t *c = ctx;
    c->s = mf_scorer_new(c->m);
    return c->s ? MF_OK : MF_ENOMEM;
}

static int score_attempt(void *ctx)
{
    const oom_ctx_t *c = ctx;
    mf_result_t r;
    return mf_score_trace(c->s, c->mode, c->t, 3, &r);
}

/* libuv-style OOM loop: fail the Nth allocation for N = 1, 2, ... until the call succeeds;
 * every failure must be a clean NULL / MF_ENOMEM (and leak nothing under valgrind). */
START_TEST(test_oom)
{
    mf_model_t *m = toy_model();
    mf_trace_t t;
    tu_trace_letters(&t, "abcdgh");
    oom_ctx_t c = {m, NULL, 0, &t};
    tu_oom_loop(scorer_attempt, &c, 10000);
    /* every mode, linear's explanation included, fails with MF_ENOMEM rather than answer
     * with less (the run that succeeds reached no failing allocation) */
    for (c.mode = 0; c.mode < MF_NMODES; c.mode++)
        if (mf_score_mode_available(c.s, c.mode))
            tu_oom_loop(score_attempt, &c, 10000);
    mf_scorer_free(c.s);
    mf_trace_destroy(&t);
    mf_model_free(m);
}
END_TEST

/* A model of `nc` synthetic classes (calls 3c..3c+2, shared 9 and 10), `per` references each. */
static mf_model_t *class_model(int nc, int per)
{
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->fam = mf__calloc((size_t)nc, sizeof *m->fam);
    m->refs = mf__calloc((size_t)(nc * per), sizeof *m->refs);
    m->ref_label = mf__calloc((size_t)(nc * per), sizeof *m->ref_label);
    ck_assert(m->fam && m->refs && m->ref_label);
    m->nfam = nc;
    for (int f = 0; f < nc; f++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", f);
        m->fam[f].name = mf__strndup(name, strlen(name));
        mf_trace_init(&m->fam[f].pattern);
    }
    for (int i = 0; i < nc * per; i++) {
        m->ref_label[i] = i % nc;
        tu_class_trace(&m->refs[i], i % nc, 9, 900u + (uint32_t)i, 25);
    }
    m->nrefs = (size_t)(nc * per);
    return m;
}

/* lin_nov 4's novelty of answer r (linear, every family ranked) by hand: the three parts (p x
 * combo's best, the margin over the second family, combo's score of the top family), each
 * against the model's anchors, the smallest through the logistic function. */
static double novelty_parts(const mf_model_t *m, const mf_result_t *r, const mf_result_t *rc)
{
    double t = mf_model_param(m, "linear.temp", NAN), z = 0, top = 0;
    for (int i = 0; i < r->ntop; i++)
        z += exp(t * (r->top[i].score - r->top[0].score));
    for (int i = 0; i < rc->ntop; i++)
        if (rc->top[i].family == r->top[0].family)
            top = rc->top[i].score;
    double x[3] = {rc->top[0].score / z, r->top[0].score - r->top[1].score, top}, u = INFINITY;
    for (int c = 0; c < 3; c++) {
        char lo[48], w[48];
        snprintf(lo, sizeof lo, "unknown.linear.a%d.lo", c);
        snprintf(w, sizeof w, "unknown.linear.a%d.w", c);
        double a = mf_model_param(m, lo, NAN), b = mf_model_param(m, w, NAN);
        ck_assert_msg(isfinite(a) && b > 0, "anchors of part %d: %g %g", c, a, b);
        u = fmin(u, (x[c] - a) / b);
    }
    return 1 / (1 + exp(-u));
}

static int score_linear_attempt(void *ctx)
{
    const oom_ctx_t *c = ctx;
    mf_result_t r;
    return mf_score_trace(c->s, MF_MODE_LINEAR, c->t, 3, &r);
}

/* lin_nov 4: calibration stores the anchors of its three parts (out of fold), an answer's
 * novelty is the formula of score.h with them, a trace between two families (a decision-value
 * margin no reference shows) is unknown though each of its calls is known, a leave-out run
 * refits them without the family, and every allocation failure is a clean MF_ENOMEM. */
START_TEST(test_linear_novelty_parts)
{
    mf_model_t *m = class_model(3, 12);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    o.lin_nov = 4;
    ck_assert_int_eq(mf_score_opts_check(&o, NULL, 0), MF_OK);
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    double thr = mf_model_param(m, "unknown.linear", NAN);
    ck_assert_msg(thr > 0 && thr < 1, "%g", thr);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    mf_trace_t t, mix;
    tu_class_trace(&t, 1, 9, 4242u, 30);
    tu_class_trace(&mix, 0, 9, 77u, 15);
    for (int i = 0; i < 15; i++) /* then class 2's calls: half one family, half the other */
        ck_assert_int_eq(mf_trace_push(&mix, 6 + i % 3), MF_OK);
    const mf_trace_t *q[2] = {&t, &mix};
    mf_result_t r, rc;
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, q[k], 3, &r), MF_OK);
        ck_assert_int_eq(mf_score_trace(s, MF_MODE_COMBO, q[k], 3, &rc), MF_OK);
        ck_assert_double_eq_tol(r.novelty, novelty_parts(m, &r, &rc), 1e-12);
        ck_assert_double_eq(r.threshold, thr);
        ck_assert_int_eq(r.unknown, r.novelty < thr);
        ck_assert_int_eq(r.unknown, k == 1); /* the class-1 trace is known, the mix is not */
    }
    oom_ctx_t c = {m, s, MF_MODE_LINEAR, &mix};
    tu_oom_loop(score_linear_attempt, &c, 10000);
    mf_scorer_free(s);
    /* leave-out: the scorer without class 2 gets anchors and a threshold of the kept classes'
     * out-of-fold rows, as calibration would give them */
    mf_openset_t res;
    ck_assert_int_eq(mf_eval_leave_out(m, &o, MF_MODE_LINEAR, 2, 0.05, NULL, MF_SPLIT_TRAIN,
                                       NULL, &res), MF_OK);
    ck_assert_msg(res.fu_rate <= 0.05 && res.detect == 1.0, "fu %g detect %g", res.fu_rate,
                  res.detect);
    /* another lin_nov ignores the stored anchors: lin_nov 3 answers p x combo */
    o.lin_nov = 3;
    s = mf_scorer_new_ex(m, &o, NULL, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, &t, 3, &r), MF_OK);
    ck_assert_int_eq(mf_score_trace(s, MF_MODE_COMBO, &t, 3, &rc), MF_OK);
    double z = 0, temp = mf_model_param(m, "linear.temp", NAN);
    for (int i = 0; i < 3; i++)
        z += exp(temp * (r.top[i].score - r.top[0].score));
    ck_assert_double_eq_tol(r.novelty, rc.top[0].score / z, 1e-12);
    mf_scorer_free(s);
    mf_trace_destroy(&t);
    mf_trace_destroy(&mix);
    mf_model_free(m);
    /* allocation failures in calibration (the anchors' fit included: 10 rows suffice) */
    m = class_model(2, 5);
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK); /* lin_nov 3 is stored, then 4 */
    ck_assert_int_eq(mf_model_set_param(m, "score.lin_nov", 4), MF_OK);
    tu_oom_loop(calibrate_attempt, m, 100000);
    ck_assert(isfinite(mf_model_param(m, "unknown.linear.a1.lo", NAN)));
    mf_model_free(m);
}
END_TEST

/* lin_nov 5's part 3 by hand: one minus the smallest compression distance between t and the
 * references of family f (every reference kept: the model has no prototypes below 2000). */
static double ncd_part(const mf_model_t *m, const mf_trace_t *t, int f)
{
    mf_ncd_t *z = mf_ncd_new();
    ck_assert_ptr_nonnull(z);
    int wide = mf_vocab_size(m->vocab) > 256;
    long ct = mf_ncd_len(z, t->ids, t->n, NULL, 0, wide);
    double best = INFINITY;
    for (size_t i = 0; i < m->nrefs; i++) {
        if (m->ref_label[i] != f)
            continue;
        const mf_trace_t *r = &m->refs[i];
        long cr = mf_ncd_len(z, r->ids, r->n, NULL, 0, wide);
        best = fmin(best, mf_ncd(z, r->ids, r->n, cr, t->ids, t->n, ct, wide));
    }
    mf_ncd_free(z);
    return 1 - best;
}

/* lin_nov 5: calibration stores the anchors of parts 0 (p x combo) and 3 (the compression
 * distance) and no others; an answer's novelty is the formula of score.h with them; a trace of
 * a class's own calls in a loop no reference shows (n-gram sets close to the class's, the
 * order not) scores lower on part 3 than a trace like the references; every allocation
 * failure in scoring and calibration is a clean MF_ENOMEM. */
START_TEST(test_linear_novelty_ncd)
{
    mf_model_t *m = class_model(3, 12);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    o.lin_nov = 5;
    ck_assert_int_eq(mf_score_opts_check(&o, NULL, 0), MF_OK);
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    ck_assert_int_eq(mf_score_calibrate(m, 0.05), MF_OK);
    const char *have[] = {"unknown.linear.a0.lo", "unknown.linear.a0.w", "unknown.linear.a3.lo",
                          "unknown.linear.a3.w"};
    const char *lack[] = {"unknown.linear.a1.lo", "unknown.linear.a2.lo"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(isfinite(mf_model_param(m, have[i], NAN)), "%s", have[i]);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(isnan(mf_model_param(m, lack[i], NAN)), "%s", lack[i]);
    double thr = mf_model_param(m, "unknown.linear", NAN);
    ck_assert_msg(thr > 0 && thr < 1, "%g", thr);
    mf_scorer_t *s = mf_scorer_new(m);
    ck_assert_ptr_nonnull(s);
    mf_trace_t t, loop;
    tu_class_trace(&t, 1, 9, 4242u, 30);
    mf_trace_init(&loop);
    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(mf_trace_push(&loop, 3 + i % 3), MF_OK);
    const mf_trace_t *q[2] = {&t, &loop};
    double part3[2];
    for (int k = 0; k < 2; k++) {
        mf_result_t r, rc;
        ck_assert_int_eq(mf_score_trace(s, MF_MODE_LINEAR, q[k], 3, &r), MF_OK);
        ck_assert_int_eq(mf_score_trace(s, MF_MODE_COMBO, q[k], 3, &rc), MF_OK);
        ck_assert_int_eq(r.top[0].family, 1);
        double temp = mf_model_param(m, "linear.temp", NAN), z = 0;
        for (int i = 0; i < r.ntop; i++)
            z += exp(temp * (r.top[i].score - r.top[0].score));
        double x[2] = {rc.top[0].score / z, ncd_part(m, q[k], 1)}, u = INFINITY;
        part3[k] = x[1];
        for (int c = 0; c < 2; c++) {
            double a = mf_model_param(m, have[2 * c], NAN), b = mf_model_param(m, have[2 * c + 1], NAN);
            u = fmin(u, (x[c] - a) / b);
        }
        ck_assert_double_eq_tol(r.novelty, 1 / (1 + exp(-u)), 1e-12);
        ck_assert_int_eq(r.unknown, r.novelty < thr);
    }
    ck_assert_msg(part3[1] < part3[0], "loop %g, like the references %g", part3[1], part3[0]);
    oom_ctx_t c = {m, s, MF_MODE_LINEAR, &t};
    tu_oom_loop(score_linear_attempt, &c, 10000);
    mf_scorer_free(s);
    mf_trace_destroy(&t);
    mf_trace_destroy(&loop);
    mf_model_free(m);
    m = class_model(2, 5);
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    tu_oom_loop(calibrate_attempt, m, 100000);
    ck_assert(isfinite(mf_model_param(m, "unknown.linear.a3.lo", NAN)));
    mf_model_free(m);
}
END_TEST

/* mf_score_calibrate_mode: one mode's threshold and temperature equal a full calibration's,
 * the other modes are left alone (no threshold set, no classifier fitted for knn), a mode
 * judged on combo's threshold (linear with lin_nov 0) calibrates every mode, a bad mode is
 * MF_EINVAL. */
START_TEST(test_calibrate_one_mode)
{
    mf_model_t *full = class_model(3, 12), *lin = class_model(3, 12), *knn = class_model(3, 12);
    ck_assert_int_eq(mf_score_calibrate(full, 0.05), MF_OK);
    ck_assert_int_eq(mf_score_calibrate_mode(lin, 0.05, MF_MODE_LINEAR), MF_OK);
    ck_assert_int_eq(mf_score_calibrate_mode(knn, 0.05, MF_MODE_KNN), MF_OK);
    const char *lp[] = {"unknown.linear", "linear.temp"}, *kp[] = {"unknown.knn", "knn.temp"};
    for (int i = 0; i < 2; i++) {
        double f = mf_model_param(full, lp[i], NAN), g = mf_model_param(full, kp[i], NAN);
        ck_assert_msg(isfinite(f) && isfinite(g), "%s %g, %s %g", lp[i], f, kp[i], g);
        ck_assert_double_eq(mf_model_param(lin, lp[i], NAN), f);
        ck_assert_double_eq(mf_model_param(knn, kp[i], NAN), g);
        ck_assert(isnan(mf_model_param(lin, kp[i], NAN)));
        ck_assert(isnan(mf_model_param(knn, lp[i], NAN)));
    }
    ck_assert_ptr_nonnull(lin->lin);
    ck_assert_ptr_null(knn->lin);
    mf_model_free(lin);
    mf_model_free(knn);
    /* lin_nov 0: linear's unknown is combo's threshold, so combo is calibrated too */
    mf_model_t *m0 = class_model(3, 12);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m0);
    o.lin_nov = 0;
    ck_assert_int_eq(mf_score_opts_save(&o, m0), MF_OK);
    ck_assert_int_eq(mf_score_calibrate_mode(m0, 0.05, MF_MODE_LINEAR), MF_OK);
    ck_assert_double_eq(mf_model_param(m0, "unknown.combo", NAN),
                        mf_model_param(full, "unknown.combo", NAN));
    ck_assert_int_eq(mf_score_calibrate_mode(m0, 0.05, MF_NMODES), MF_EINVAL);
    ck_assert_int_eq(mf_score_calibrate_mode(m0, 0.05, -2), MF_EINVAL);
    mf_model_free(m0);
    mf_model_free(full);
}
END_TEST

Suite *suite_score(void)
{
    Suite *s = suite_create("score");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120); /* the temperature fit trains SVMs: ~4 s under ASan, Check's
                                 * default limit (as the other model-training suites set) */
    tcase_add_test(tc, test_jaccard_bits);
    tcase_add_test(tc, test_jaccard_counts);
    tcase_add_test(tc, test_ngram_sets);
    tcase_add_test(tc, test_ncd);
    tcase_add_test(tc, test_find_u64);
    tcase_add_test(tc, test_idf);
    tcase_add_test(tc, test_deal_folds);
    tcase_add_test(tc, test_modes_names);
    tcase_add_test(tc, test_calibration_sample);
    tcase_add_test(tc, test_pick_default);
    tcase_add_test(tc, test_linear_classifier);
    tcase_add_test(tc, test_linear_spread);
    tcase_add_test(tc, test_linear_temperature);
    tcase_add_test(tc, test_calibration_spread);
    tcase_add_test(tc, test_linear_novelty_parts);
    tcase_add_test(tc, test_linear_novelty_ncd);
    tcase_add_test(tc, test_calibrate_one_mode);
    tcase_add_test(tc, test_every_mode_p);
    tcase_add_test(tc, test_linear_balanced_and_proto);
    tcase_add_test(tc, test_linear_binary_tf);
    tcase_add_test(tc, test_linear_options);
    tcase_add_test(tc, test_ranking);
    tcase_add_test(tc, test_knn_mean_of_k);
    tcase_add_test(tc, test_unknown_and_calibration);
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);
    return s;
}
