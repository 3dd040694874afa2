/* simil.c - bitset, multiset and n-gram key-set similarities (see simil.h). */
#include "simil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "internal.h"
#include "mf.h"

void mf_bits_fill(uint64_t *bits, int nw, const int32_t *seq, size_t n)
{
    uint32_t lim = (uint32_t)nw * 64u;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)seq[i]; /* negative ids wrap to huge and are skipped */
        if (id < lim)
            bits[id >> 6] |= 1ull << (id & 63);
    }
}

double mf_jaccard_bits(const uint64_t *a, const uint64_t *b, int nw)
{
    int inter = 0, uni = 0;
    for (int i = 0; i < nw; i++) {
        inter += __builtin_popcountll(a[i] & b[i]);
        uni += __builtin_popcountll(a[i] | b[i]);
    }
    return uni ? (double)inter / uni : 0.0;
}

double mf_jaccard_counts(const uint32_t *a, const uint32_t *b, int nv)
{
    uint64_t sa = 0, sb = 0, mn = 0;
    for (int i = 0; i < nv; i++) {
        sa += a[i];
        sb += b[i];
        mn += a[i] < b[i] ? a[i] : b[i];
    }
    uint64_t den = sa + sb - mn;
    return den ? (double)mn / (double)den : 0.0;
}

/* splitmix64 finaliser: a cheap mix with good avalanche, enough for a few 10^5 keys. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t mf_ngram_key(const int32_t *seq, int len)
{
    uint64_t h = 0;
    for (int i = 0; i < len; i++)
        h = mix(h ^ (uint32_t)seq[i]);
    return mix(h ^ ((uint64_t)len << 56));
}

int mf__cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int mf__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

long mf__find_u64(const uint64_t *k, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && k[lo] == key ? (long)lo : -1;
}

float mf__idf(size_t df, size_t n)
{
    return (float)(log((1.0 + (double)n) / (1.0 + (double)df)) + 1.0);
}

int mf_keyset_build(mf_keyset_t *ks, const int32_t *seq, size_t n, int lo, int hi)
{
    memset(ks, 0, sizeof *ks);
    if (lo < 1 || hi < lo || hi > 8)
        return MF_EINVAL;
    size_t cap = 0;
    for (int o = lo; o <= hi; o++)
        if (n >= (size_t)o)
            cap += n - (size_t)o + 1;
    if (cap == 0)
        return MF_OK;
    uint64_t *k = mf__malloc(cap * sizeof *k);
    if (!k)
        return MF_ENOMEM;
    size_t m = 0;
    for (int o = lo; o <= hi; o++)
        for (size_t i = 0; i + (size_t)o <= n; i++)
            k[m++] = mf_ngram_key(seq + i, o);
    qsort(k, m, sizeof *k, mf__cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || k[u - 1] != k[i])
            k[u++] = k[i];
    if (u < cap) { /* keep only the distinct keys (views hold one set per reference for good);
                    * a failed shrink keeps the larger block */
        uint64_t *shrunk = mf__realloc(k, u * sizeof *k);
        if (shrunk)
            k = shrunk;
    }
    ks->k = k;
    ks->n = u;
    ks->wsum = (double)u;
    return MF_OK;
}

void mf_keyset_destroy(mf_keyset_t *ks)
{
    mf__free(ks->k);
    mf__free(ks->w);
    memset(ks, 0, sizeof *ks);
}

long mf_keyset_find(const mf_keyset_t *ks, uint64_t key)
{
    return mf__find_u64(ks->k, ks->n, key);
}

double mf_jaccard_keys(const mf_keyset_t *a, const mf_keyset_t *b)
{
    size_t i = 0, j = 0;
    double inter = 0;
    while (i < a->n && j < b->n) {
        if (a->k[i] < b->k[j]) {
            i++;
        } else if (a->k[i] > b->k[j]) {
            j++;
        } else {
            inter += a->w ? a->w[i] : 1.0;
            i++;
            j++;
        }
    }
    double den = a->wsum + b->wsum - inter;
    return den > 0 ? inter / den : 0.0;
}

/* ---- compression distance ----------------------------------------------------------------- */

struct mf_ncd {
    z_stream z;
    uint8_t in[4096];   /* ids turned into bytes, a chunk at a time */
    uint8_t out[16384]; /* deflate's output: only its length counts, so it is overwritten */
};

/* zlib's state through the library's allocator, so that its failures are tested as ours */
static voidpf ncd_alloc(voidpf opaque, uInt n, uInt size)
{
    (void)opaque;
    return mf__calloc(n, size);
}

static void ncd_release(voidpf opaque, voidpf p)
{
    (void)opaque;
    mf__free(p);
}

mf_ncd_t *mf_ncd_new(void)
{
    mf_ncd_t *c = mf__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->z.zalloc = ncd_alloc;
    c->z.zfree = ncd_release;
    if (deflateInit(&c->z, 6) != Z_OK) {
        mf__free(c);
        return NULL;
    }
    return c;
}

void mf_ncd_free(mf_ncd_t *c)
{
    if (!c)
        return;
    deflateEnd(&c->z);
    mf__free(c);
}

/* Feed ids[0..n-1] (at most MF_NCD_MAX_CALLS) to the stream, finishing it when last. */
static int ncd_feed(mf_ncd_t *c, const int32_t *ids, size_t n, int wide, int last)
{
    size_t per = wide ? 2 : 1, step = sizeof c->in / per, i = 0;
    if (n > MF_NCD_MAX_CALLS)
        n = MF_NCD_MAX_CALLS;
    do {
        size_t k = n - i < step ? n - i : step;
        for (size_t j = 0; j < k; j++) {
            uint32_t v = (uint32_t)ids[i + j];
            c->in[j * per] = (uint8_t)v;
            if (wide)
                c->in[j * per + 1] = (uint8_t)(v >> 8);
        }
        i += k;
        int flush = last && i == n ? Z_FINISH : Z_NO_FLUSH, zr;
        c->z.next_in = c->in;
        c->z.avail_in = (uInt)(k * per);
        do {
            c->z.next_out = c->out;
            c->z.avail_out = sizeof c->out;
            zr = deflate(&c->z, flush);
            if (zr == Z_STREAM_ERROR)
                return -1;
        } while (c->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
    } while (i < n);
    return 0;
}

long mf_ncd_len(mf_ncd_t *c, const int32_t *a, size_t na, const int32_t *b, size_t nb, int wide)
{
    if (deflateReset(&c->z) != Z_OK || ncd_feed(c, a, na, wide, b == NULL) != 0 ||
        (b && ncd_feed(c, b, nb, wide, 1) != 0))
        return -1;
    return (long)c->z.total_out;
}

double mf_ncd(mf_ncd_t *c, const int32_t *a, size_t na, long ca, const int32_t *b, size_t nb,
              long cb, int wide)
{
    long cab = mf_ncd_len(c, a, na, b, nb, wide);
    if (cab < 0 || ca < 0 || cb < 0)
        return NAN;
    long lo = ca < cb ? ca : cb, hi = ca < cb ? cb : ca;
    return hi > 0 ? (double)(cab - lo) / (double)hi : 0.0;
}
