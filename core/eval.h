/* eval.h - measuring scoring modes: top-k accuracy, macro-F1, confusion, unknown rates,
 * AUROC of the unknown score, k-fold cross-validation over the training references.
 *
 * Classes are the model's families (index into model->fam). A sample whose label is not a
 * family of the model is "foreign": it counts only in the open-set figures.
 */
#ifndef MF_EVAL_H
#define MF_EVAL_H

#include <stddef.h>

#include "dataset.h"
#include "model.h"
#include "score.h"

/* Counts over a run of one mode. Caller-embedded; mf_metrics_init allocates the tables. */
typedef struct mf_metrics {
    int nclass;
    size_t n;         /* samples of known classes */
    size_t top1, top3;
    size_t unknown;   /* known-class samples flagged unknown (false unknowns) */
    size_t *cls_n;    /* nclass */
    size_t *cls_top1; /* nclass */
    size_t *cls_top3; /* nclass */
    size_t *conf;     /* (nclass, nclass): row = true class, column = top-1 guess */
    size_t foreign, foreign_unknown; /* samples of classes the model does not know */
    size_t np;        /* known-class answers carrying probabilities (linear, fitted) */
    double p_top1;    /* their summed probability of the top-1 guess */
    double log_loss;  /* their summed -ln p(true class) (p floored at 1e-12) */
} mf_metrics_t;

/* MF_OK, MF_EINVAL (nclass < 1), MF_ENOMEM (m left empty). */
int mf_metrics_init(mf_metrics_t *m, int nclass);
void mf_metrics_destroy(mf_metrics_t *m); /* frees the tables, leaves m empty */

/* Count one answer. `truth` is the true class or -1 for a foreign sample. */
void mf_metrics_add(mf_metrics_t *m, int truth, const mf_result_t *r);

/* Mean p of the top-1 guess and mean log loss over the answers with probabilities; NAN when
 * there were none. A calibrated model's mean p(top-1) is close to its top-1 accuracy. */
double mf_metrics_mean_p(const mf_metrics_t *m);
double mf_metrics_log_loss(const mf_metrics_t *m);
double mf_metrics_top1(const mf_metrics_t *m);
double mf_metrics_top3(const mf_metrics_t *m);
double mf_metrics_unknown_rate(const mf_metrics_t *m);     /* false unknowns / known samples */
double mf_metrics_foreign_unknown(const mf_metrics_t *m);  /* unknowns / foreign samples */
/* Macro-F1 of the top-1 guess over the classes that occur (in truth or in guesses). */
double mf_metrics_macro_f1(const mf_metrics_t *m);
/* F1 of one class (0 when it has no sample and no guess). */
double mf_metrics_f1(const mf_metrics_t *m, int c);

/* 95 % intervals. z of a two-sided 95 % normal interval. */
#define MF_CI_Z 1.959963984540054
/* Draws of the macro-F1 bootstrap: 50 fall beyond each end of a 95 % interval, enough for
 * the ends to move by about a point of F1 between seeds on 119 samples. */
#define MF_BOOT_DRAWS 2000
/* The seed `malfam eval` bootstraps with, so a report is the same on every run. */
#define MF_BOOT_SEED 2019

/* The 95 % Wilson score interval of a proportion of k hits in n trials (k <= n) into ci[0],
 * ci[1], inside [0, 1]. Unlike p +- z sqrt(p (1 - p) / n) it keeps a width at 0 and n hits
 * and never leaves [0, 1]. n = 0 gives [0, 1]. */
void mf_wilson_ci(size_t k, size_t n, double ci[2]);
/* mf_wilson_ci of top1 and of top3 out of n. */
void mf_metrics_top1_ci(const mf_metrics_t *m, double ci[2]);
void mf_metrics_top3_ci(const mf_metrics_t *m, double ci[2]);
/* 95 % percentile-bootstrap interval of mf_metrics_macro_f1: MF_BOOT_DRAWS times, m->n
 * samples are drawn with replacement from the known-class samples and macro-F1 is taken of
 * the drawn confusion matrix; ci gets the 2.5th and 97.5th percentiles. Macro-F1 reads only
 * the matrix, so a sample is its cell (truth, top-1 guess; a sample without a guess in range
 * fills no cell) and nothing per sample needs to be kept. A class missing from a draw is left
 * out of that draw's mean, as mf_metrics_macro_f1 does. The draws come from `seed` (rng.h):
 * the same counts and seed give the same interval. n = 0 gives [0, 1].
 * MF_OK, MF_ENOMEM (ci untouched). */
int mf_metrics_macro_f1_ci(const mf_metrics_t *m, uint64_t seed, double ci[2]);

/* Area under the ROC curve of a detector that calls larger values positive: the chance
 * that a random positive scores above a random negative (ties count half). 0.5 when either
 * list is empty. Sorts both arrays in place. */
double mf_auroc(double *pos, size_t npos, double *neg, size_t nneg);

/* The ROC curve's point at a false-positive rate of at most `rate`: the share of positives
 * strictly above the smallest negative value t that has at most floor(rate * nneg) negatives
 * above it (a tie with t is not flagged, so the rate is never exceeded; a rate of 1 or more
 * takes the lowest negative). It measures the score, with a threshold set on these negatives
 * themselves, not one a deployment could know in advance. 0 when either list is empty. Sorts
 * neg in place. */
double mf_detect_at_rate(const double *pos, size_t npos, double *neg, size_t nneg, double rate);

/* For each dataset label, the model family of that name, or -1 (foreign). `map` holds
 * ds->nlabels entries. Returns how many labels matched. */
int mf_eval_label_map(const mf_model_t *m, const mf_dataset_t *ds, int *map);

/* Score every sample of `split` (MF_SPLIT_ANY = all) in `mode` and count it into `out`
 * (initialised by the caller with m->nfam classes). When `best` is not NULL it receives the
 * best score of each scored sample, in sample order, and *nbest their count (a buffer of
 * ds->n). MF_OK or the first scoring error. */
int mf_eval_run(const mf_scorer_t *s, int mode, const mf_dataset_t *ds, int split,
                const int *map, mf_metrics_t *out, double *best, int *best_truth,
                size_t *nbest);

/* k-fold cross-validation over the model's training references, for a neighbour mode
 * (nn, knn, combo, linear: the folds only need references left out, linear is retrained on
 * the rest in each fold; modes built from a pattern or
 * an LSTM would need retraining and give MF_EINVAL). Folds: references shuffled with
 * `seed`, then dealt class by class so every fold holds about 1/k of each class. Each
 * fold's references are scored by a scorer built without them (idf included) with options
 * `o`, and for `mode` alone (as mf_scorer_new_mode: the SVM is fitted for linear only).
 * `out` is initialised by the caller with m->nfam classes. */
int mf_eval_cv(const mf_model_t *m, const mf_score_opts_t *o, int mode, int k, uint64_t seed,
               mf_metrics_t *out);

/* Open-set figures for one left-out family. */
typedef struct mf_openset {
    double auroc;      /* unknown score (= -best score) separating left-out vs known samples */
    double thr;        /* threshold calibrated on the kept training references */
    double fu_rate;    /* known test samples flagged unknown at thr */
    double detect;     /* left-out test samples flagged unknown at thr */
    double detect_at;  /* left-out samples flagged at the ROC point of false-unknown fu_rate
                          among these known samples (mf_detect_at_rate) */
    size_t nknown, nout;
} mf_openset_t;

/* Leave family `fam` out (its references and its ranking entry: per-family models never see
 * other families' data, so this equals training without it), calibrate the unknown threshold
 * on the kept references at false-unknown rate `fu_rate` (leave-one-out for neighbour modes)
 * and score the `split` samples of `ds`, with a scorer built for `mode` alone. MF_OK,
 * MF_EINVAL, MF_ENOMEM. */
int mf_eval_leave_out(const mf_model_t *m, const mf_score_opts_t *o, int mode, int fam,
                      double fu_rate, const mf_dataset_t *ds, int split, const int *map,
                      mf_openset_t *res);

/* Fill an empty model (from mf_model_new: no families, no references) with one family per
 * dataset label (no LSTM, empty pattern) and the `split` samples as references (deep
 * copies). Only the neighbour modes can score such a model: it serves cross-validation and
 * evaluation before a trained model exists. Memory is released by mf_model_free.
 * MF_OK, MF_EINVAL (model not empty), MF_ENOMEM (model left consistent, to be freed). */
int mf_eval_model_from_dataset(mf_model_t *m, const mf_dataset_t *ds, int split);

#endif
