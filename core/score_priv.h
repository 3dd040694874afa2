/* score_priv.h - the scorer's insides, shared by the files of the scoring module. Private:
 * not installed, not for callers (the API is score.h, the scorer stays opaque there).
 *
 *   score.c        modes (names, parse, default), options, the scorer's life (build, free,
 *                  availability, thresholds) and mf_score_trace: scratch, ranking, novelty
 *   score_modes.c  what each mode computes (mf__score_modes) and the neighbour views
 *   explain.c      the one line telling why the top family won (mf__explain)
 *   calibrate.c    unknown thresholds, each mode's temperature, mf_score_quantile, linear's
 *                  own novelty (mf__linear_novelty) and lin_nov 4's and 5's anchors
 *
 * Shapes: nv = vocabulary size (ids 0..nv-1), nw = bitset words, nfam families, nrefs
 * training references. Everything a mode compares against is precomputed in mf_scorer_new:
 *   pat_bits (nfam, nw)   pat_cnt (nfam, nv)   pat_ng[nfam]   ref_bits (nrefs, nw)
 *   view[V].ref[nrefs]    n-gram key sets of the references with idf weights per key
 * so scoring a trace costs one pass over it plus the comparisons.
 */
#ifndef MF_SCORE_PRIV_H
#define MF_SCORE_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "linear.h"
#include "score.h"
#include "simil.h"

/* A neighbour view: every kept reference as a key set of n-gram orders 1..hi, weighted by
 * idf over the kept references when `idf` (then an unseen key weighs `unseen`). */
typedef struct mf__view {
    int hi, idf;
    mf_keyset_t *ref; /* nrefs; skipped references stay empty */
    uint64_t *dk;     /* sorted keys of the idf table */
    float *dw;        /* their idf */
    size_t nd;
    float unseen;
} mf__view_t;

/* The prototypes' key sets of one view as an inverted index: the prototypes (positions in
 * s->proto) holding the view's table key dk[j] are pos[off[j]..off[j + 1]), ascending. A
 * query then sums its keys' weights per prototype in one pass over its keys' postings, in
 * the order mf_jaccard_keys would (ascending keys), so the similarities are the same bits. */
typedef struct mf__postings {
    uint32_t *off; /* nd + 1, or NULL: no index (the scan compares key sets) */
    uint32_t *pos;
} mf__postings_t;

/* The views a scorer builds: knn's (orders 1..knn_hi, idf per knn_idf) and combo's two
 * (APIs alone, then orders 1..combo_hi, both idf-weighted). nn needs none: it compares the API
 * bitsets ref_bits. */
enum { MF__VIEW_KNN, MF__VIEW_COMBO1, MF__VIEW_COMBO2, MF__NVIEWS };

/* The parts an anchored novelty (lin_nov 4 and 5) judges an answer by: 0 p x combo's best
 * similarity (lin_nov 3), 1 the decision-value margin of the top family over the second, 2
 * combo's similarity to the top family, 3 one minus the compression distance to the nearest
 * reference of the top family (mf_ncd). lin_nov 4 takes parts 0-2, lin_nov 5 parts 0 and 3.
 * Their anchors need MF__NOV_MIN_ROWS calibration rows. */
enum { MF__NOV_PARTS = 4, MF__NOV_MIN_ROWS = 10 };

/* The parts lin_nov takes (bit c: part c); 0 when it is not an anchored novelty. */
static inline unsigned mf__nov_parts_of(int lin_nov)
{
    return lin_nov == 4 ? 0x7u : lin_nov == 5 ? 0x9u : 0u;
}

struct mf_scorer {
    const mf_model_t *m;
    mf_score_opts_t o;
    int only;           /* the one mode built (mf_scorer_new_mode), -1 = all */
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
    mf__view_t view[MF__NVIEWS];
    const mf_linear_t *lin; /* for the kept references: the model's (m->lin) or own_lin;
                             * NULL without references */
    mf_linear_t *own_lin;   /* fitted by this scorer (folds, other options, an old file) */
    void (*fit_progress)(void *ctx, int done, int total); /* when it fits own_lin */
    void *fit_ctx;
    double temp[MF_NMODES]; /* temperature of each mode's probabilities ("<mode>.temp");
                             * NAN = not fitted (then the mode has no p) */
    double *fthr;       /* nfam: linear's per-family thresholds (lin_fthr), NAN = global */
    size_t *proto;      /* nov_protos: the references linear's combo compares (ascending),
                         * nproto of them; NULL = every kept reference */
    size_t nproto;
    int use_nov;        /* may take its novelty index from m->nov (mf__nov_build: not) */
    int from_nov;       /* it did: combo's views hold the prototypes' key sets alone */
    /* lin_nov 4: the anchors of each part of the novelty over the calibration rows, its 5 %
     * quantile lo and the median minus that w; NAN = none (the part counts as it is) */
    double nov_lo[MF__NOV_PARTS], nov_w[MF__NOV_PARTS];
    mf__postings_t post[MF__NVIEWS]; /* combo's two views over the prototypes (score.c) */
    int post_borrowed;  /* post points into m->nov (the file's NOVK): not freed here */
};

/* The top kept family of scores d (nfam values; ties to the lower index, as the ranking
 * breaks them), -1 when every family is left out. */
static inline int mf__top_kept(const mf_scorer_t *s, const double *d)
{
    int g = -1;
    for (int f = 0; f < s->nfam; f++)
        if (!s->skip_fam[f] && (g < 0 || d[f] > d[g]))
            g = f;
    return g;
}

/* Per-call scratch: the family scores and, for neighbour modes, the k best similarities of
 * each family (nfam, k) with the reference that gave the best one. */
typedef struct mf__scratch {
    double *score;    /* nfam */
    double *best;     /* (nfam, k) descending, -1 = empty slot */
    long *best_ref;   /* nfam: the closest reference of each family, -1 = none */
    uint64_t *bits;   /* nw: the trace's API set */
    double novelty;   /* the best kept combo score, once combo has run */
    double combo_top; /* linear with lin_nov 4: combo's score of linear's top kept family */
    double ncd_top;   /* linear with lin_nov 5: 1 - the compression distance to the nearest
                       * reference of linear's top kept family */
    mf_linear_vec_t lvec; /* linear: the trace's feature vector (scoring, explanation) */
} mf__scratch_t;

/* ---- score.c ------------------------------------------------------------------------------ */

/* mf_scorer_new_ex for every mode (only = -1) or mode `only` alone, telling fit_progress (may be NULL) of each class fitted when the scorer
 * fits its own linear classifier. */
mf_scorer_t *mf__scorer_new(const mf_model_t *m, const mf_score_opts_t *o,
                            const unsigned char *skip_ref, const unsigned char *skip_fam,
                            void (*fit_progress)(void *, int, int), void *fit_ctx, int only);

/* Calibration is exact (leave-one-out, 5 folds for linear) up to MF__CAL_ALL references;
 * above, it uses a stratified held-out sample of about MF__CAL_SAMPLE of them (fold 0 of
 * enough folds), so its cost grows as R, not R^2. */
#define MF__CAL_ALL 2000
#define MF__CAL_SAMPLE 1000

/* The options of the linear classifier the scorer (and the temperature fit) trains. */
mf_linear_opts_t mf__linear_opts(const mf_score_opts_t *o);

/* The probability of a family with score di, the scores of all families (any mode) being
 * d[0..nfam-1]: softmax(temp * d) over the kept families. */
double mf__p(const mf_scorer_t *s, const double *d, double di, double temp);

/* mf_score_trace_ex that also copies the scores of every family (nfam) into all (may be
 * NULL): what calibration fits the temperatures on. */
int mf__score_trace_all(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip_ref,
                        int top, mf_result_t *res, double *all);

/* Linear's novelty index of m for its file (model.c's NOVI): combo's idf tables and the
 * prototypes a linear scorer with m's options picks, built afresh; *out NULL when there is
 * nothing to store (no fitted classifier of these options, or novelty not by prototypes).
 * MF_OK or MF_ENOMEM. */
int mf__nov_build(const mf_model_t *m, mf_model_nov_t **out);

/* ---- score_modes.c ------------------------------------------------------------------------ */

/* Build view v over the kept references of s (s->skip_ref, s->nkept set): key sets of n-gram
 * orders 1..hi, idf-weighted when `idf`. MF_OK or MF_ENOMEM; on error v holds what was built,
 * for mf__view_destroy. */
int mf__view_build(mf_scorer_t *s, mf__view_t *v, int hi, int idf);

/* View v (orders 1..hi, idf-weighted) from a stored idf table (nd sorted keys dk, weights
 * dw, unseen) with key sets for the references list[0..nlist-1] alone (the others stay
 * empty). MF_OK, MF_ENOMEM, MF_EFORMAT (a reference has a key the table lacks: it was built
 * from other references); on error v holds what was built, for mf__view_destroy. */
int mf__view_from_table(mf_scorer_t *s, mf__view_t *v, int hi, const uint64_t *dk,
                        const float *dw, size_t nd, float unseen, const size_t *list,
                        size_t nlist);

/* Weigh r's keys from the sorted table dk/dw (nd keys). MF_OK, MF_ENOMEM, MF_EFORMAT (a key
 * of r is not in the table; r then has no weights). An empty r is MF_OK. */
int mf__keyset_weigh(mf_keyset_t *r, const uint64_t *dk, const float *dw, size_t nd);

/* Free what v holds (nrefs: the scorer's reference count) and zero it; a zeroed v is fine. */
void mf__view_destroy(mf__view_t *v, size_t nrefs);

/* Scores of every family for trace t in `mode` into sc->score (sc->bits filled by the caller
 * with t's API set). Neighbour modes leave reference `skip` out (-1 = none) and set
 * sc->best_ref; combo (and fusion and linear, which run it) sets sc->novelty; linear keeps
 * t's feature vector in sc->lvec for the explanation. The mode must be available.
 * MF_OK, MF_EINVAL (unknown mode), MF_ENOMEM. */
int mf__score_modes(const mf_scorer_t *s, int mode, const mf_trace_t *t, long skip,
                    mf__scratch_t *sc);

/* Combo's best kept family score for t (reference `skip` left out) as linear's novelty uses
 * it: over the prototypes when the scorer has them, else every reference; *of_fam (may be
 * NULL) gets combo's score of family fam. MF_OK/MF_ENOMEM. */
int mf__linear_combo(const mf_scorer_t *s, const mf_trace_t *t, long skip, int fam, double *nov,
                     double *of_fam);

/* lin_nov 5's part 3 for t: one minus the smallest compression distance (mf_ncd) between t
 * and the kept references of family fam (the prototypes when the scorer has them), reference
 * `skip` left out; 0 when there is none. Costs 2 compressions per reference compared.
 * MF_OK or MF_ENOMEM. */
int mf__linear_ncd(const mf_scorer_t *s, const mf_trace_t *t, long skip, int fam, double *sim);

/* Modes whose own scores say nothing about closeness to the training data (score.h): they
 * run combo too and take its best absolute score, and combo's threshold, as novelty: fusion,
 * and linear with lin_nov 0. */
int mf__novelty_by_combo(const mf_score_opts_t *o, int mode);

/* ---- explain.c ---------------------------------------------------------------------------- */

/* The explanation of family f winning trace t in `mode`, from the scratch mf__score_modes
 * left, into out (MF_EXPLAIN_LEN bytes, always NUL-terminated; whole words or nothing).
 * MF_OK or MF_ENOMEM (linear's n-gram search). */
int mf__explain(const mf_scorer_t *s, int mode, const mf_trace_t *t, int f,
                const mf__scratch_t *sc, char *out);

/* ---- calibrate.c -------------------------------------------------------------------------- */

/* Out-of-fold decision values of linear (options o) for the references of the families not in
 * skip_fam (NULL = all): the folds of mf__cal_folds (5, dealt class by class in file order by
 * mf__deal_folds without carry; past MF__CAL_ALL references only a held-out fold), each
 * scored fold by an SVM trained on the other folds without the skipped families; fn (may be
 * NULL) hears of each class fitted as phase "svm folds".
 * Rows d[r * nfam ..] (nfam values each) with labels y[r], *rows of them; d and y hold nrefs
 * rows. MF_OK or MF_ENOMEM. */
int mf__linear_oof(const mf_model_t *m, const mf_score_opts_t *o,
                   const unsigned char *skip_fam, double *d, int *y, size_t *ref,
                   size_t *rows, mf_progress_fn fn, void *ctx);

/* The calibration folds of n references (labels label, nclass classes) into fold[]: 5 when
 * n <= MF__CAL_ALL (*keval = 5: every fold is scored), else ceil(n / MF__CAL_SAMPLE) with
 * *keval = 1 (fold 0 alone is scored: the held-out sample). MF_OK or MF_ENOMEM. */
int mf__cal_folds(const int *label, size_t n, int nclass, int *fold, int *keval);

/* Per-family thresholds of linear's novelty (lin_fthr): rows grouped by their top kept family
 * in d (rows x nfam); a family guessed >= 10 times gets the fu_rate quantile of its rows' nov,
 * the others NAN (the global threshold). fthr holds nfam; guess[r] (may be NULL) receives
 * each row's top family. MF_OK or MF_ENOMEM. */
int mf__linear_fam_thr(const mf_scorer_t *s, const double *d, const double *nov, size_t rows,
                       double fu_rate, double *fthr, int *guess);

/* Linear's own novelty from its decision values d (lin_nov 1: the best kept value; 2: that
 * family's probability, with the scorer's temperature or T = 1 when not fitted; 3: that
 * probability times combo, combo's best similarity for the trace; 4 and 5: their parts of
 * MF__NOV_PARTS, each made relative to its anchors (x - lo) / w, the smallest of them through
 * the logistic function: a score in (0, 1), low when any part is low for a known trace;
 * combo_top = combo's score of the top family, ncd_top = part 3). */
double mf__linear_novelty(const mf_scorer_t *s, const double *d, double combo, double combo_top,
                          double ncd_top);

/* Linear's own novelty (lin_nov 1..5) of the out-of-fold rows d (reference ref[r] for row r)
 * into nov[0..rows-1]; lin_nov 3-5 score combo (5 also the compression distance) for each
 * reference with itself left out; 4 and 5 first fit s's anchors on these rows
 * (mf__linear_nov_save stores them).
 * MF_OK or MF_ENOMEM. */
int mf__linear_novelty_oof(mf_scorer_t *s, const double *d, const size_t *ref, size_t rows,
                           double *nov);

/* The anchors of lin_nov 4's or 5's parts: read from the model's parameters
 * "unknown.linear.a<part>.lo|w" into s (NAN when absent or not a part of s's lin_nov), or
 * written from s into m, its lin_nov's parts only (MF_OK or MF_ENOMEM). */
void mf__linear_nov_load(mf_scorer_t *s);
int mf__linear_nov_save(const mf_scorer_t *s, mf_model_t *m);

#endif
