/* simil.h - similarity primitives the scoring modes are built from.
 *
 * Three kinds of "set" of a trace:
 *   - API bitsets: one bit per vocabulary id, ceil(nvocab / 64) words (6 words for Mal-API's
 *     342 ids), compared with AND/OR + popcount;
 *   - count vectors: one uint32 per id, for the multiset Jaccard;
 *   - key sets: every n-gram of orders lo..hi as a 64-bit key (a hash of its ids), sorted and
 *     unique, compared by a linear merge; each key may carry a weight (idf).
 * All functions are pure: no allocation except in mf_keyset_build, which says so.
 */
#ifndef MF_SIMIL_H
#define MF_SIMIL_H

#include <stddef.h>
#include <stdint.h>

/* Words of a bitset holding ids 0..nvocab-1. */
static inline int mf_bits_words(int nvocab)
{
    return (nvocab + 63) / 64;
}

/* Set the bit of every id of seq[0..n-1] in bits (nw words, zeroed by the caller).
 * Ids outside 0..64*nw-1 are ignored. */
void mf_bits_fill(uint64_t *bits, int nw, const int32_t *seq, size_t n);

/* Set Jaccard |A & B| / |A | B| of two bitsets; 0 when both are empty. */
double mf_jaccard_bits(const uint64_t *a, const uint64_t *b, int nw);

/* Multiset Jaccard of two count vectors (nv entries):
 * sum min(a,b) / (sum a + sum b - sum min(a,b)); 0 when both are empty. */
double mf_jaccard_counts(const uint32_t *a, const uint32_t *b, int nv);

/* A sorted set of n-gram keys with optional weights (w NULL = every key weighs 1). */
typedef struct mf_keyset {
    uint64_t *k;
    float *w;     /* n weights parallel to k, or NULL */
    size_t n;
    double wsum;  /* sum of the weights (n when w is NULL) */
} mf_keyset_t;

/* Key of the n-gram seq[0..len-1]. Order matters and n-grams of different lengths get
 * different keys (every id is mixed in, then the length). */
uint64_t mf_ngram_key(const int32_t *seq, int len);

/* Fill `ks` with the distinct keys of every n-gram of orders lo..hi (1 <= lo <= hi <= 8) of
 * seq[0..n-1], sorted, without weights. Allocates ks->k (mf__malloc); release with
 * mf_keyset_destroy. MF_OK, MF_EINVAL (bad orders), MF_ENOMEM (ks left empty). */
int mf_keyset_build(mf_keyset_t *ks, const int32_t *seq, size_t n, int lo, int hi);
void mf_keyset_destroy(mf_keyset_t *ks); /* frees k and w, leaves ks empty */

/* Index of key in ks, or -1. */
long mf_keyset_find(const mf_keyset_t *ks, uint64_t key);

/* Weighted Jaccard of two key sets: weight of the common keys / (wsum a + wsum b - common).
 * The weight of a common key is taken from a (a key weighs the same in every set when the
 * weights come from one idf table). Unweighted when a->w is NULL. 0 when both are empty. */
double mf_jaccard_keys(const mf_keyset_t *a, const mf_keyset_t *b);

/* Normalised compression distance (Cilibrasi and Vitanyi 2005): (C(ab) - min(C(a), C(b))) /
 * max(C(a), C(b)), C the length zlib's deflate (level 6) gives. Unlike the sets above it sees
 * order and repetition, so two traces with the same n-grams in other orders or numbers stay
 * apart. A trace counts its first MF_NCD_MAX_CALLS calls, each id one byte (wide = 0: every
 * id below 256) or two (wide = 1). About 0 for a trace and itself, near 1 for unrelated ones. */
#define MF_NCD_MAX_CALLS 16000

typedef struct mf_ncd mf_ncd_t; /* a compressor kept across pairs: one per thread */

/* NULL when out of memory. */
mf_ncd_t *mf_ncd_new(void);
void mf_ncd_free(mf_ncd_t *c); /* NULL is a no-op */

/* C(a) (b NULL) or C(ab), a's calls then b's; -1 when zlib fails (out of memory). */
long mf_ncd_len(mf_ncd_t *c, const int32_t *a, size_t na, const int32_t *b, size_t nb,
                int wide);

/* The distance of a and b given ca = C(a) and cb = C(b) (mf_ncd_len); NAN when zlib fails. */
double mf_ncd(mf_ncd_t *c, const int32_t *a, size_t na, long ca, const int32_t *b, size_t nb,
              long cb, int wide);

#endif
