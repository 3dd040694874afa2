/* internal.h - shared between core/ files, not part of the public API. */
#ifndef MF_INTERNAL_H
#define MF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Allocation goes through these so tests can make the Nth allocation fail. */
void *mf__malloc(size_t n);
void *mf__calloc(size_t n, size_t size);
void *mf__realloc(void *p, size_t n);
void mf__free(void *p);
char *mf__strndup(const char *s, size_t n);

/* Test hook: the allocation numbered `n` from now on (1 = the next one) fails, and every
 * later one too; 0 turns failures off. Returns how many allocations were made since the last
 * call, so an OOM loop can tell when a run made no allocation at all. */
size_t mf__alloc_fail_after(size_t n);

/* Grow *p (element size `size`) so it holds at least `need` elements; doubles the capacity.
 * Returns MF_OK or MF_ENOMEM (then *p and *cap are unchanged). */
int mf__grow(void **p, size_t *cap, size_t need, size_t size);

/* qsort comparators of uint64_t keys (n-gram key sets) and of doubles, ascending (both
 * defined in simil.c). */
int mf__cmp_u64(const void *a, const void *b);
int mf__cmp_double(const void *a, const void *b);

/* Binary search: the index of `key` in k[0..n-1] (sorted ascending, distinct), or -1. Every
 * sorted key table (key sets, idf tables, the linear dictionary) is searched with it. */
long mf__find_u64(const uint64_t *k, size_t n, uint64_t key);

/* Smoothed idf of a key found in df of n documents, as scikit-learn's TfidfVectorizer
 * (smooth_idf): ln((1 + n) / (1 + df)) + 1, so >= 1 (a key of every document still counts a
 * little) and finite for df = 0 (an unseen key). The neighbour views, the per-API weights of
 * the explanations and the linear classifier's features all use it. Defined in simil.c. */
float mf__idf(size_t df, size_t n);

/* Stratified folds: fold[i] in 0..k-1 for items i = 0..n-1 with labels label[i] (classes
 * 0..nclass-1), dealt round-robin class by class so each fold holds about 1/k of each class.
 * Items are visited in index order, or, when rng is not NULL, in a Fisher-Yates shuffle drawn
 * from *rng (mf_rng_next; advances *rng). Two dealings are in use and kept apart by `carry`:
 *   carry 0: every class deals from fold 0 and items with a label outside 0..nclass-1 get
 *            fold -1 (left out; the linear temperature fit in calibrate.c);
 *   carry 1: the fold counter runs on from one class to the next and out-of-range items are
 *            dealt too, as a class of their own before class 0 (mf_eval_cv).
 * MF_OK, MF_EINVAL (k < 1), MF_ENOMEM (the shuffled order; fold untouched). Defined in eval.c. */
int mf__deal_folds(const int *label, size_t n, int nclass, int k, int carry, uint64_t *rng,
                   int *fold);

/* The seed of family `name` in a run seeded `seed`: the seed mixed with the name (FNV-1a),
 * so each family's weights and pattern depend on neither the order nor the set of families
 * trained with it. Training's weight init and pattern sampling, and pattern regeneration,
 * all start from it (defined in train.c). Changing it changes every trained model's replay. */
uint64_t mf__family_seed(uint64_t seed, const char *name);

/* Lower-case ASCII in place, the way API names are normalised. */
void mf__lower(char *s, size_t n);

#endif
