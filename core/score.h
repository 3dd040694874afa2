/* score.h - turning a trace into ranked family guesses.
 *
 * A scorer is built once per loaded model (pattern bitsets, n-gram key sets of the patterns
 * and of the training references, an idf table) and is then read-only, so one scorer serves
 * many threads; per-call scratch is allocated per call or lives in the result.
 *
 * Modes (names as in config and CLI; every mode answers for every family, higher = closer):
 *   paper       set Jaccard of the trace's API set and the family's LSTM-generated pattern
 *               (the method of Kwon & Im; stays as the reference)
 *   likelihood  mean per-call log-likelihood of the trace under the family LSTM
 *   multiset    multiset Jaccard (counts) of trace and pattern
 *   ngram       set Jaccard of the n-grams (order ngram_n) of trace and pattern
 *   nn          1-nearest-neighbour over the training traces, plain API-set Jaccard
 *   knn         k-nearest-neighbour over the training traces: idf-weighted Jaccard of the
 *               n-gram sets of orders 1..knn_hi, family score = mean of its k best matches
 *   combo       mean of two knn views (orders 1..1 and 1..combo_hi, idf-weighted)
 *   fusion      likelihood and combo together: each view's family scores are standardised
 *               over the families (z-scores for this trace), then mixed with weight fuse_w
 *               percent on the likelihood; needs both an LSTM per family and references;
 *               (CV on the train split, README)
 *   linear      a linear classifier (one-vs-rest squared-hinge SVM, core/linear.h) over
 *               tf-idf n-grams of orders 1..lin_hi, trained on the references when the
 *               scorer is built; score = decision value; the default of every model with
 *               references (it leads the other modes in CV on the train split, README)
 * Modes that need something the model lacks (an LSTM, a pattern, references) are
 * "unavailable": mf_score_trace returns MF_EINVAL for them.
 *
 * Unknown: each mode has a threshold stored in the model as parameter "unknown.<mode>"
 * (see mf_score_calibrate); a novelty score below it sets res->unknown. The novelty score is
 * the best family's score, except in fusion: its scores are standardised across families,
 * so the winner always stands out even for a trace unlike every family; fusion therefore
 * flags unknown by combo's absolute similarity and combo's threshold. Linear's novelty is
 * the one its lin_nov option names (mf_score_opts_t).
 */
#ifndef MF_SCORE_H
#define MF_SCORE_H

#include <stddef.h>

#include "model.h"
#include "trace.h"

#define MF_MAX_TOP 16
#define MF_EXPLAIN_LEN 512

enum {
    MF_MODE_PAPER = 0,
    MF_MODE_LIKELIHOOD,
    MF_MODE_MULTISET,
    MF_MODE_NGRAM,
    MF_MODE_NN,
    MF_MODE_KNN,
    MF_MODE_COMBO,
    MF_MODE_FUSION,
    MF_MODE_LINEAR,
    MF_NMODES
};

typedef struct mf_rank {
    int family;   /* index into model->fam */
    double score; /* higher = more similar; scale depends on the mode */
    double p;     /* probability of the family (mode with a fitted temperature), else NAN */
} mf_rank_t;

typedef struct mf_result {
    int mode;
    int ntop;
    mf_rank_t top[MF_MAX_TOP];
    int unknown;                   /* novelty below the calibrated threshold */
    double novelty;                /* what is compared: best score (fusion: best combo
                                      score; linear: per its lin_nov) */
    double floor;                  /* lowest score of all ranked families (for "rel" in JSON) */
    double threshold;              /* -INFINITY when the mode is not calibrated */
    size_t calls;                  /* calls scored (after preprocessing) */
    char explain[MF_EXPLAIN_LEN];  /* e.g. "shared with Trojan: ntclose, regopenkeyexw, ..." */
} mf_result_t;

typedef struct mf_scorer mf_scorer_t;

/* Mode names for config/CLI ("paper", "likelihood", ...). -1 when unknown. */
int mf_score_mode_parse(const char *name);
const char *mf_score_mode_name(int mode); /* never NULL ("?" for a bad mode) */
int mf_score_nmodes(void);
int mf_score_default_mode(void); /* the default without a model at hand: linear */

/* The default mode for model `m`: linear when the model holds training references (it leads
 * every other mode in cross-validation on the train split, README "Scoring and evaluation"),
 * else likelihood when every family has an LSTM, else paper (patterns only). */
int mf_score_pick_default(const mf_model_t *m);

/* Hyperparameters of the modes. Stored in the model as parameters "score.<field>" so that a
 * model carries the values it was calibrated with. */
typedef struct mf_score_opts {
    int ngram_n;   /* ngram: n-gram order against the pattern (2) */
    int knn_k;     /* knn/combo: a family's score is the mean of its k best matches (5) */
    int knn_hi;    /* knn: n-gram orders 1..knn_hi (1) */
    int knn_idf;   /* knn: weight keys by idf over the training traces (1) */
    int combo_hi;  /* combo: the second view uses orders 1..combo_hi (2) */
    int fuse_w;    /* fusion: weight of the likelihood view in percent, 0..100 (50) */
    int lin_hi;    /* linear: n-gram orders 1..lin_hi (2) */
    int lin_c;     /* linear: the SVM's cost C in hundredths, 1..100000 (100 = C 1) */
    int lin_bal;   /* linear: 1 = class-balanced costs (mf_linear_opts_t.balanced), 0 = not */
    int lin_df;    /* linear: traces an n-gram must occur in to be a feature, 1..16 (2) */
    int lin_tf;    /* linear: 1 = binary term frequency (default), 0 = sublinear (1 + ln count;
                      models that stored their options before lin_tf; mf_linear_opts_t.tf) */
    int lin_proto; /* linear: weight of the nearest-reference view in hundredths, 0..1000
                      (mf_linear_opts_t.proto; 0 = the SVM alone) */
    int lin_fthr;  /* linear with lin_nov 1-5: 1 = a threshold per family (the fu_rate quantile
                      of the out-of-fold novelty of the references guessed as that family, for
                      families guessed >= 10 times; the others keep the global one), applied
                      by the top family; 0 = one threshold */
    int lin_nov;   /* linear: its novelty (what "unknown" is judged on): 0 = combo's best
                      similarity, 1 = the best decision value, 2 = the best family's
                      probability (p with the fitted temperature, else T = 1), 3 = that
                      probability times combo's best similarity, 4 = the weakest of three
                      parts (3's value, the decision-value margin over the second family,
                      combo's similarity to the top family), each measured against its 5 %
                      quantile and median over the references (out of fold), in (0, 1);
                      5 = the same with two parts: 3's value and one minus the compression
                      distance (mf_ncd: sees order and counts, which n-gram sets do not) to
                      the nearest reference of the top family, 2 compressions per reference
                      of that family (or its prototypes) per query;
                      1-5 are calibrated on out-of-fold decision values (calibrate.c) */
    int nov_protos; /* linear with lin_nov 3-5: combo's similarity for its novelty (and the
                       nearest reference of its explanation) over at most this many prototypes
                       per family (chosen farthest-first on the API sets when the scorer is
                       built, the Malheur way), so a query costs F x N, not R; 0 = every
                       reference (the exact scan); -1 = auto (default): exact up to
                       MF__CAL_ALL (2000) kept references, else 32 */
} mf_score_opts_t;

void mf_score_opts_default(mf_score_opts_t *o);
/* Defaults overridden by the model's "score.*" parameters. */
void mf_score_opts_from_model(mf_score_opts_t *o, const mf_model_t *m);
/* MF_OK or MF_EINVAL with a message naming the bad field. */
int mf_score_opts_check(const mf_score_opts_t *o, char *msg, size_t msglen);
/* Store o as the model's "score.*" parameters. MF_OK or MF_ENOMEM. */
int mf_score_opts_save(const mf_score_opts_t *o, mf_model_t *m);

/* NULL on allocation failure. The model must outlive the scorer. Options come from the
 * model (mf_score_opts_from_model), thresholds from its "unknown.<mode>" parameters. */
mf_scorer_t *mf_scorer_new(const mf_model_t *m);

/* The same with explicit options (NULL = from the model) and masks (each may be NULL):
 * skip_ref[i] != 0 leaves training reference i out (cross-validation folds; the idf table
 * is built from the kept references only), skip_fam[f] != 0 removes family f from every
 * ranking (open-set checks without retraining). Masks are copied. NULL on ENOMEM or bad
 * options. */
mf_scorer_t *mf_scorer_new_ex(const mf_model_t *m, const mf_score_opts_t *o,
                              const unsigned char *skip_ref, const unsigned char *skip_fam);
void mf_scorer_free(mf_scorer_t *s); /* NULL is a no-op */

/* A scorer for `mode` alone (options o, NULL = from the model): builds only what that mode
 * needs (no neighbour views for paper or likelihood, no classifier but for linear), for a
 * one-shot `malfam score --mode`. Every other mode is unavailable on it. NULL on ENOMEM, bad
 * options or a bad mode. */
mf_scorer_t *mf_scorer_new_mode(const mf_model_t *m, const mf_score_opts_t *o, int mode);

/* 1 when `mode` can be scored with this model (LSTMs for likelihood, patterns for paper,
 * multiset and ngram, references for nn/knn/combo), else 0. */
int mf_score_mode_available(const mf_scorer_t *s, int mode);

/* What model m lacks for `mode` ("an LSTM per family", "a pattern per family", "training
 * references"), or NULL when a scorer of m can serve it (networks counted even when loaded
 * without their weights). Builds nothing: for reports on a model (`malfam info`). */
const char *mf_score_model_lacks(const mf_model_t *m, int mode);

/* 1 when m was loaded without its reference traces (MF_LOAD_REFS) and a scorer of `mode`
 * (-1: every mode) with the model's options needs them: call mf_model_read_refs first, else
 * building it fails. Linear needs only labels and API sets when it compares the prototypes
 * through the file's index (NOVI + NOVK, the model's own classifier, lin_proto 0). */
int mf_score_needs_refs(const mf_model_t *m, int mode);

/* Threshold of `mode` (-INFINITY = never unknown); set overrides the model's value for this
 * scorer only (eval calibrates leave-out scorers itself). */
double mf_scorer_threshold(const mf_scorer_t *s, int mode);
void mf_scorer_set_threshold(mf_scorer_t *s, int mode, double thr);

/* Rank all families for trace `t` (already preprocessed with model->prep), keep `top`
 * (1..MF_MAX_TOP). MF_OK, MF_EINVAL (bad mode, top, unavailable mode), MF_ENOMEM. */
int mf_score_trace(const mf_scorer_t *s, int mode, const mf_trace_t *t, int top,
                   mf_result_t *res);

/* The same, leaving training reference `skip_ref` out of the neighbour modes (-1: none):
 * scoring a training trace against all the others (leave-one-out calibration). */
int mf_score_trace_ex(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip_ref,
                      int top, mf_result_t *res);

/* Calibrate the "unknown" thresholds on the training references and store them in the model
 * as "unknown.<mode>" (plus "unknown.rate" = fu_rate). For every reference, its best score
 * is taken with the reference itself left out (leave-one-out; for pattern and likelihood
 * modes the pattern/LSTM did see it, which makes those thresholds slightly optimistic);
 * the threshold is the fu_rate quantile of these best scores, so that a fraction fu_rate of
 * training samples would be called unknown (the false-unknown rate we accept, e.g. 0.05).
 * Unavailable modes are skipped. Each mode also gets the temperature T of its probabilities
 * p = softmax(T * scores) (minimum log loss; parameter "<mode>.temp"): linear's on 5-fold
 * out-of-fold decision values of the references, the others' on the same leave-one-out
 * score vectors as the thresholds (at least 10 references, 2 families); answers in a mode
 * with a temperature then carry p.
 * MF_OK, MF_EINVAL (no references, fu_rate outside [0,1)),
 * MF_ENOMEM. */
int mf_score_calibrate(mf_model_t *m, double fu_rate);

/* Progress of a long step: `phase` ("svm", "svm folds", "calibration <mode>"), done of total
 * units of that phase (done == total when it ends). */
typedef void (*mf_progress_fn)(void *ctx, const char *phase, size_t done, size_t total);

/* Threads mf_score_calibrate scores its references over, and its SVM fits their classes
 * (mf_linear_set_threads); process-wide, 1 by default (n < 1 means 1). The results do not
 * depend on it. */
void mf_score_set_threads(int n);

/* mf_score_calibrate telling fn (may be NULL) how far it is. */
int mf_score_calibrate_ex(mf_model_t *m, double fu_rate, mf_progress_fn fn, void *ctx);

/* mf_score_calibrate for `mode` alone (-1: every mode): its threshold and temperature, and for
 * linear its classifier and novelty parameters; the other modes keep what m holds, so only a
 * caller that then scores in `mode` alone may use it (eval or score with options changed for
 * one run: no LSTM calibration for a linear run). A mode judged on combo's threshold (fusion,
 * linear with lin_nov 0) calibrates every mode. MF_EINVAL also for a mode out of range. */
int mf_score_calibrate_mode(mf_model_t *m, double fu_rate, int mode);

/* A way for a program to spread calibration's per-reference scoring over processes (the CLI's
 * MPI layer; libmalfam knows nothing of it), like mf_linear_set_spread for the SVM's classes.
 * Process-wide; set it before mf_score_calibrate_ex and clear it (NULL) after, from one
 * thread. For each mode whose rows are scored one reference at a time, plan(ctx, m, mode,
 * sample, n, mine) is called first (m as it stands then: networks, references, classifier,
 * options; sample[k] = the reference of row k) and sets mine[k] for the rows this process
 * scores; then merge(ctx, mode, n, mine, nfam, sv, best, got) fills in every other row k
 * (sv row k, best[k], got[k], as mf_score_cal_rows makes them). Each returns MF_OK or an
 * error, which fails the calibration; merge runs after a failure here too (sv etc. NULL),
 * so that the others still hear of it. The results do not depend on the split. */
typedef struct mf_cal_spread {
    int (*plan)(void *ctx, mf_model_t *m, int mode, const size_t *sample, size_t n,
                unsigned char *mine);
    int (*merge)(void *ctx, int mode, size_t n, const unsigned char *mine, int nfam,
                 double *sv, double *best, unsigned char *got);
    void *ctx;
} mf_cal_spread_t;
void mf_score_set_spread(const mf_cal_spread_t *s);

/* Calibration's scoring of rows k with mine[k] set (mine NULL: all) of `mode` on scorer s
 * (of the model calibration hands to plan): reference sample[k] scored with itself left out,
 * its score vector into row k of sv (n x nfam), its novelty into best[k], got[k] bit 0:
 * ranked, bit 1: the row serves the temperature. Over mf_score_set_threads threads. MF_OK or
 * the first error. What another process runs for mf_cal_spread_t. */
int mf_score_cal_rows(const mf_scorer_t *s, int mode, const size_t *sample, size_t n,
                      const unsigned char *mine, double *sv, double *best, unsigned char *got);

/* The fu_rate quantile of n values: sorts v[0..n-1] in place (ascending) and returns
 * v[min(floor(fu_rate * n), n - 1)], the threshold below which at most a fraction fu_rate of
 * them lie. n == 0 gives -INFINITY. A plain quantile of any values: the unknown thresholds
 * use it, and malfamd its latency percentiles. */
double mf_score_quantile(double *v, size_t n, double fu_rate);

#endif
