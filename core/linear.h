/* linear.h - a linear classifier over the n-grams of a trace.
 *
 * Features: every n-gram of orders 1..hi that occurs in at least min_df training traces, valued
 * idf (binary tf: the n-gram occurs) or (1 + ln count) * idf (sublinear tf), scaled to unit
 * length per trace, plus a constant 1 for the bias. Classifier: one-vs-rest L2-regularised
 * squared-hinge SVM per class, trained by dual coordinate descent (Hsieh et al., ICML 2008), the method of LIBLINEAR's
 * default solver. A class's score is its decision value w_c . x + b_c (higher = closer).
 *
 * Training is deterministic (fixed shuffle seed). Its cost grows as classes x traces (minutes at
 * 500 x 50,000), so `malfam train` fits it once (mf_score_calibrate) and the model file carries
 * it (model.c, section LINR); a scorer fits its own only for masked references (evaluation
 * folds), other options, or files written before that section.
 */
#ifndef MF_LINEAR_H
#define MF_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "trace.h"

typedef struct mf_linear_opts {
    int hi;     /* n-gram orders 1..hi (1..8) */
    double c;   /* cost of a margin violation (> 0); smaller = smoother */
    int min_df; /* traces a key must occur in to become a feature (>= 1) */
    int balanced; /* 1: class c's own traces cost C * m / (K * m_c) in its one-vs-rest problem
                   * (m kept traces, K classes with traces, m_c of class c; LIBLINEAR's class
                   * weights with scikit-learn's "balanced" values), so a family of one or two
                   * traces is not outvoted; the other traces cost C. 0: every trace costs C */
    double proto; /* > 0: a class's score also gets proto * the cosine of the trace's vector with
                   * the class's nearest training vector (a nearest-prototype view beside the
                   * SVM; the classifier then keeps its training vectors). 0: the SVM alone */
    int tf;       /* a feature's term frequency: 1 binary (idf if the n-gram occurs, so a loop
                   * repeated 10,000 times weighs what one pass does), 0 sublinear (1 + ln count) */
} mf_linear_opts_t;

/* Classes the nearest-reference view covers (later ones get only the SVM's value). */
#define MF_LINEAR_MAX_PROTO_CLASSES 1024

typedef struct mf_linear mf_linear_t;

/* A trace as the classifier sees it: feature indices idx[0..nnz-1] with their values (unit
 * length). Made once per trace by mf_linear_vectorise, then scored and explained. */
typedef struct mf_linear_vec {
    uint32_t *idx;
    float *val;
    size_t nnz;
} mf_linear_vec_t;

/* Train on traces[0..n-1] with labels in 0..nclass-1. A trace with skip[i] set (skip may be
 * NULL) or a label outside 0..nclass-1 is left out; a class without traces scores low on
 * everything. *out is NULL on error. MF_OK, MF_EINVAL (bad options, nclass < 1), MF_ENOMEM. */
int mf_linear_train(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                    const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o);

/* The same, calling progress (may be NULL) with (ctx, classes done, classes) after each
 * class's SVM is fitted. */
int mf_linear_train_ex(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                       const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                       void (*progress)(void *ctx, int done, int total), void *ctx);

/* The same for the classes with mine[c] set only; the other classes' columns stay 0 until
 * mf_linear_class_set fills them. Never calls the spread hook. */
int mf_linear_train_classes(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                            const unsigned char *skip, size_t n, int nclass,
                            const mf_linear_opts_t *o, const unsigned char *mine);

/* Class c's weights, nf features then the bias (mf_linear_nfeatures(l) + 1 floats), out of
 * or into l. A class's fit depends on nothing but the inputs, so columns fitted apart and set
 * into one classifier give the very classifier one full fit gives. MF_OK or MF_EINVAL. */
int mf_linear_class_get(const mf_linear_t *l, int c, float *col);
int mf_linear_class_set(mf_linear_t *l, int c, const float *col);

/* A way for a program to spread the one-vs-rest fits of mf_linear_train(_ex) over processes
 * (the CLI's MPI layer; libmalfam knows nothing of it). Process-wide; set it before and clear
 * it (NULL) after the fits it is for, from one thread. plan is called first: it sets mine[c]
 * for the classes this process fits, or *local = 1 to fit them all here (e.g. traces it does
 * not know). Unless local, the classes not mine are then left to merge, which gets l (NULL
 * when this process failed, so that the others still hear of it) and fills their columns
 * (mf_linear_class_set). Each returns MF_OK or an error, which fails the training. */
typedef struct mf_linear_spread {
    int (*plan)(void *ctx, const mf_trace_t *traces, const int *label,
                const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                unsigned char *mine, int *local);
    int (*merge)(void *ctx, mf_linear_t *l, const unsigned char *mine);
    void *ctx;
} mf_linear_spread_t;
void mf_linear_set_spread(const mf_linear_spread_t *s);

/* Threads each fit spreads its one-vs-rest classes over (process-wide, 1 by default; n < 1
 * means 1). The classifier does not depend on it. `malfam train` sets its --threads. */
void mf_linear_set_threads(int n);

void mf_linear_free(mf_linear_t *l); /* NULL is a no-op */

/* The feature vector of the trace ids[0..n-1] into *v (released by mf_linear_vec_free,
 * which also takes a zeroed or failed one). MF_OK or MF_ENOMEM. */
int mf_linear_vectorise(const mf_linear_t *l, const int32_t *ids, size_t n, mf_linear_vec_t *v);
void mf_linear_vec_free(mf_linear_vec_t *v);

/* Decision values of every class for vector v into score[0..nclass-1]. */
void mf_linear_score_vec(const mf_linear_t *l, const mf_linear_vec_t *v, double *score);

/* The same from the trace itself (vectorises it). MF_OK or MF_ENOMEM. */
int mf_linear_score(const mf_linear_t *l, const int32_t *ids, size_t n, double *score);

/* The n-grams of the trace ids[0..n-1] (vector v) that push it most towards class c: up to
 * k of them, largest contribution (feature value * weight) first, only positive ones. For
 * each: its first position in the trace in pos[], its order in len[]. Returns how many
 * (>= 0) or MF_ENOMEM. */
int mf_linear_top(const mf_linear_t *l, const mf_linear_vec_t *v, const int32_t *ids, size_t n,
                  int c, int k, size_t *pos, int *len);

size_t mf_linear_nfeatures(const mf_linear_t *l);

/* How many times mf_linear_train has run in this process (tests check that loading a model
 * and scoring with it fits nothing). */
unsigned long mf_linear_fit_count(void);

/* 1 when l was trained with the options o equal
 * to o's and for nclass classes, else 0. */
int mf_linear_same(const mf_linear_t *l, const mf_linear_opts_t *o, int nclass);

/* The classifier's parts, for the model file: options, classes, nf features with sorted keys
 * dk[nf] and idf[nf], weights w[(nf + 1) * nclass] (feature major, bias row last). get points
 * into l; mf_linear_alloc makes an empty classifier of that shape whose arrays the caller fills
 * through p (then l is usable; with o->proto > 0 call mf_linear_set_refs too). MF_OK, MF_EINVAL
 * (bad options or shape), MF_ENOMEM. */
typedef struct mf_linear_parts {
    mf_linear_opts_t o;
    int nclass;
    size_t nf;
    uint64_t *dk;
    float *idf;
    float *w;
} mf_linear_parts_t;
void mf_linear_get_parts(const mf_linear_t *l, mf_linear_parts_t *p);
int mf_linear_alloc(mf_linear_t **out, const mf_linear_opts_t *o, int nclass, size_t nf,
                    mf_linear_parts_t *p);

/* The same with weights that are not copied: map, page-aligned, is a read-only mmap of
 * map_len bytes (at least the weights' size) whose first bytes are w; once this returns MF_OK
 * the classifier owns it (mf_linear_free unmaps it), before that the caller does.
 * mf_linear_class_set refuses such a classifier. */
int mf_linear_alloc_mapped(mf_linear_t **out, const mf_linear_opts_t *o, int nclass, size_t nf,
                           void *map, size_t map_len, mf_linear_parts_t *p);
/* 1 when l's weights are such a mapping (NULL: 0). */
int mf_linear_mapped(const mf_linear_t *l);

/* The nearest-reference view (proto > 0) of a loaded classifier: the vectors of the traces
 * mf_linear_train kept (same traces, labels and skip). No-op when proto is 0. MF_OK, MF_ENOMEM. */
int mf_linear_set_refs(mf_linear_t *l, const mf_trace_t *traces, const int *label,
                       const unsigned char *skip, size_t n);

#endif
