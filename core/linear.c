/* linear.c - tf-idf n-gram features and a one-vs-rest squared-hinge SVM (see linear.h).
 *
 * Shapes: nf features (sorted keys dk[nf], idf[nf]); weights w[(nf + 1) * nclass], feature
 * major, the bias row last, so scoring one feature touches nclass adjacent floats. */
#include "linear.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "lstm.h"
#include "mf.h"
#include "simil.h"

struct mf_linear {
    mf_linear_opts_t o; /* as trained */
    int hi, nclass;
    size_t nf;
    uint64_t *dk; /* nf sorted n-gram keys */
    float *idf;   /* nf */
    float *w;     /* (nf + 1) * nclass */
    size_t map_len; /* > 0: w is a read-only mapping of that many bytes (mf_linear_alloc_mapped) */
    double proto; /* weight of the nearest-reference view (opts.proto) */
    mf_linear_vec_t *ref; /* proto > 0: the training vectors, labels ref_y, nref of them */
    int *ref_y;
    size_t nref;
};

static atomic_ulong fits;

unsigned long mf_linear_fit_count(void)
{
    return atomic_load(&fits);
}

/* Every n-gram key (orders 1..hi) of ids[0..n-1], sorted, repeats kept: a key's run length
 * is its count. *out is mf__malloc'ed (NULL when there are none). How many, or MF_ENOMEM. */
static long gram_keys(const int32_t *ids, size_t n, int hi, uint64_t **out)
{
    *out = NULL;
    size_t cap = 0;
    for (int o = 1; o <= hi; o++)
        if (n >= (size_t)o)
            cap += n - (size_t)o + 1;
    if (cap == 0)
        return 0;
    uint64_t *k = mf__malloc(cap * sizeof *k);
    if (!k)
        return MF_ENOMEM;
    size_t m = 0;
    for (int o = 1; o <= hi; o++)
        for (size_t i = 0; i + (size_t)o <= n; i++)
            k[m++] = mf_ngram_key(ids + i, o);
    qsort(k, m, sizeof *k, mf__cmp_u64);
    *out = k;
    return (long)m;
}

void mf_linear_vec_free(mf_linear_vec_t *v)
{
    mf__free(v->idx);
    mf__free(v->val);
    memset(v, 0, sizeof *v);
}

int mf_linear_vectorise(const mf_linear_t *l, const int32_t *ids, size_t n, mf_linear_vec_t *v)
{
    memset(v, 0, sizeof *v);
    uint64_t *k;
    long nk = gram_keys(ids, n, l->hi, &k);
    if (nk < 0)
        return MF_ENOMEM;
    size_t cap = 0; /* distinct keys */
    for (long i = 0; i < nk; i++)
        cap += i == 0 || k[i] != k[i - 1];
    v->idx = mf__malloc((cap ? cap : 1) * sizeof *v->idx);
    v->val = mf__malloc((cap ? cap : 1) * sizeof *v->val);
    if (!v->idx || !v->val) {
        mf__free(k);
        mf_linear_vec_free(v);
        return MF_ENOMEM;
    }
    double norm = 0;
    for (long i = 0, j; i < nk; i = j) {
        for (j = i; j < nk && k[j] == k[i]; j++)
            ;
        long f = mf__find_u64(l->dk, l->nf, k[i]);
        if (f < 0)
            continue; /* not a feature: unseen in training or too rare there */
        float x = l->o.tf ? l->idf[f] : (float)((1.0 + log((double)(j - i))) * l->idf[f]);
        v->idx[v->nnz] = (uint32_t)f;
        v->val[v->nnz++] = x;
        norm += (double)x * x;
    }
    mf__free(k);
    if (norm > 0) {
        float sc = (float)(1.0 / sqrt(norm));
        for (size_t i = 0; i < v->nnz; i++)
            v->val[i] *= sc;
    }
    return MF_OK;
}

/* The feature dictionary: the keys found in >= min_df kept traces, with their idf. */
static int dictionary(mf_linear_t *l, const mf_trace_t *traces, const unsigned char *keep,
                      size_t n, int min_df)
{
    size_t tot = 0, nkept = 0;
    mf_keyset_t *ks = mf__calloc(n ? n : 1, sizeof *ks);
    if (!ks)
        return MF_ENOMEM;
    int rc = MF_OK;
    for (size_t i = 0; i < n && rc == MF_OK; i++) {
        if (!keep[i])
            continue;
        rc = mf_keyset_build(&ks[i], traces[i].ids, traces[i].n, 1, l->hi);
        tot += ks[i].n;
        nkept++;
    }
    uint64_t *all = rc == MF_OK ? mf__malloc((tot ? tot : 1) * sizeof *all) : NULL;
    if (rc == MF_OK && !all)
        rc = MF_ENOMEM;
    if (rc == MF_OK) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (ks[i].n)
                memcpy(all + k, ks[i].k, ks[i].n * sizeof *all);
            k += ks[i].n;
        }
        /* a trace holds a key once, so the length of a key's run is its document frequency;
         * pass 0 counts the features, pass 1 stores them */
        qsort(all, tot, sizeof *all, mf__cmp_u64);
        for (int pass = 0; pass < 2 && rc == MF_OK; pass++) {
            size_t nf = 0;
            for (size_t i = 0, j; i < tot; i = j) {
                for (j = i; j < tot && all[j] == all[i]; j++)
                    ;
                if (j - i < (size_t)min_df)
                    continue;
                if (pass == 1) {
                    l->dk[nf] = all[i]; /* smoothed idf, as sklearn's TfidfVectorizer */
                    l->idf[nf] = mf__idf(j - i, nkept);
                }
                nf++;
            }
            if (pass == 0) {
                l->nf = nf;
                l->dk = mf__malloc((nf ? nf : 1) * sizeof *l->dk);
                l->idf = mf__malloc((nf ? nf : 1) * sizeof *l->idf);
                if (!l->dk || !l->idf)
                    rc = MF_ENOMEM;
            }
        }
    }
    mf__free(all);
    for (size_t i = 0; i < n; i++)
        mf_keyset_destroy(&ks[i]);
    mf__free(ks);
    return rc;
}

/* Dual coordinate descent for one class: minimise 0.5 |w|^2 + C sum max(0, 1 - y w.x)^2
 * (bias folded into w as a feature of value 1). Writes column c of l->w. */
static void train_class(mf_linear_t *l, const mf_linear_vec_t *x, const int *y,
                        const double *xx, size_t *order, size_t m, int c, double cneg,
                        double cpos, double *w)
{
    const size_t nf = l->nf;
    /* the squared hinge's diagonal term 0.5 / C_i, C_i = cpos for class c's traces */
    const double dneg = 0.5 / cneg, dpos = 0.5 / cpos;
    double *alpha = w + nf + 1;
    memset(w, 0, (nf + 1) * sizeof *w);
    memset(alpha, 0, m * sizeof *alpha);
    uint64_t rng = 0x6c696e656172ull + (uint64_t)c; /* fixed: training is reproducible */
    for (int iter = 0; iter < 1000; iter++) {
        for (size_t i = m - 1; i > 0; i--) {
            size_t j = (size_t)(mf_rng_next(&rng) % (i + 1));
            size_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double pgmax = -INFINITY, pgmin = INFINITY;
        for (size_t a = 0; a < m; a++) {
            size_t i = order[a];
            const mf_linear_vec_t *v = &x[i];
            double yi = y[i] == c ? 1.0 : -1.0;
            double dii = y[i] == c ? dpos : dneg;
            double dot = w[nf];
            for (size_t k = 0; k < v->nnz; k++)
                dot += w[v->idx[k]] * v->val[k];
            double g = yi * dot - 1.0 + dii * alpha[i];
            double pg = alpha[i] == 0 && g > 0 ? 0 : g;
            pgmax = pg > pgmax ? pg : pgmax;
            pgmin = pg < pgmin ? pg : pgmin;
            if (fabs(pg) < 1e-12)
                continue;
            double old = alpha[i];
            alpha[i] = fmax(old - g / (xx[i] + dii), 0.0);
            double d = (alpha[i] - old) * yi;
            for (size_t k = 0; k < v->nnz; k++)
                w[v->idx[k]] += d * v->val[k];
            w[nf] += d;
        }
        if (pgmax - pgmin < 0.1) /* LIBLINEAR's default tolerance for this solver */
            break;
    }
    for (size_t j = 0; j <= nf; j++)
        l->w[j * (size_t)l->nclass + (size_t)c] = (float)w[j];
}

int mf_linear_train(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                    const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o)
{
    return mf_linear_train_ex(out, traces, label, skip, n, nclass, o, NULL, NULL);
}

static mf_linear_spread_t spread; /* plan NULL: every fit is local */
static atomic_int fit_threads = 1;

void mf_linear_set_threads(int n)
{
    atomic_store(&fit_threads, n > 1 ? n : 1);
}

void mf_linear_set_spread(const mf_linear_spread_t *s)
{
    if (s)
        spread = *s;
    else
        memset(&spread, 0, sizeof spread);
}

static int train(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                 const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                 const unsigned char *mine, void (*progress)(void *ctx, int done, int total),
                 void *ctx);

int mf_linear_train_ex(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                       const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                       void (*progress)(void *ctx, int done, int total), void *ctx)
{
    *out = NULL;
    if (!spread.plan || nclass < 1)
        return train(out, traces, label, skip, n, nclass, o, NULL, progress, ctx);
    unsigned char *mine = mf__calloc((size_t)nclass, 1);
    if (!mine)
        return MF_ENOMEM;
    int local = 0;
    int rc = spread.plan(spread.ctx, traces, label, skip, n, nclass, o, mine, &local);
    if (rc == MF_OK)
        rc = train(out, traces, label, skip, n, nclass, o, local ? NULL : mine, progress, ctx);
    if (!local) {
        /* the others' columns; merge runs even after a failure here, so they hear of it */
        int mr = spread.merge(spread.ctx, rc == MF_OK ? *out : NULL, mine);
        rc = rc == MF_OK ? mr : rc;
        int nmine = 0;
        for (int c = 0; c < nclass; c++)
            nmine += mine[c] != 0;
        if (rc == MF_OK && progress && nmine < nclass) /* else train said it */
            progress(ctx, nclass, nclass);
    }
    mf__free(mine);
    if (rc != MF_OK) {
        mf_linear_free(*out);
        *out = NULL;
    }
    return rc;
}

int mf_linear_train_classes(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                            const unsigned char *skip, size_t n, int nclass,
                            const mf_linear_opts_t *o, const unsigned char *mine)
{
    *out = NULL;
    return train(out, traces, label, skip, n, nclass, o, mine, NULL, NULL);
}

int mf_linear_class_get(const mf_linear_t *l, int c, float *col)
{
    if (!l || c < 0 || c >= l->nclass)
        return MF_EINVAL;
    for (size_t j = 0; j <= l->nf; j++)
        col[j] = l->w[j * (size_t)l->nclass + (size_t)c];
    return MF_OK;
}

int mf_linear_class_set(mf_linear_t *l, int c, const float *col)
{
    if (!l || c < 0 || c >= l->nclass || l->map_len)
        return MF_EINVAL;
    for (size_t j = 0; j <= l->nf; j++)
        l->w[j * (size_t)l->nclass + (size_t)c] = col[j];
    return MF_OK;
}

/* The one-vs-rest fits of one train() over fit_threads threads: each thread takes the next
 * class and fits it with its own scratch (weights + duals, order); a class's column depends
 * on nothing but the inputs, so the classifier is the same for any number of threads. */
typedef struct {
    mf_linear_t *l;
    const mf_linear_vec_t *x;
    const int *y;
    const double *xx;
    size_t m;
    const size_t *per;
    int present;
    const mf_linear_opts_t *o;
    const unsigned char *mine;
    void (*progress)(void *ctx, int done, int total);
    void *ctx;
    atomic_int next;
    pthread_mutex_t lock; /* progress calls and their count */
    int done;
    atomic_int rc;
} class_pool_t;

static void *class_worker(void *arg)
{
    class_pool_t *p = arg;
    const int nclass = p->l->nclass;
    /* one buffer: the weights being trained (nf + 1) and the dual variables (m) */
    double *w = mf__malloc((p->l->nf + 1 + (p->m ? p->m : 1)) * sizeof *w);
    size_t *order = mf__malloc((p->m ? p->m : 1) * sizeof *order);
    if (!w || !order)
        atomic_store(&p->rc, MF_ENOMEM);
    for (;;) {
        int c = atomic_fetch_add(&p->next, 1);
        if (c >= nclass || atomic_load(&p->rc) != MF_OK)
            break;
        if (p->mine && !p->mine[c])
            continue;
        for (size_t i = 0; i < p->m; i++)
            order[i] = i;
        double cpos = p->o->c;
        if (p->o->balanced && p->per[c])
            cpos = p->o->c * (double)p->m / ((double)p->present * (double)p->per[c]);
        train_class(p->l, p->x, p->y, p->xx, order, p->m, c, p->o->c, cpos, w);
        if (p->progress) {
            pthread_mutex_lock(&p->lock);
            p->progress(p->ctx, ++p->done, nclass);
            pthread_mutex_unlock(&p->lock);
        }
    }
    mf__free(w);
    mf__free(order);
    return NULL;
}

static int fit_classes(class_pool_t *p)
{
    enum { MAX_THREADS = 64 };
    pthread_t th[MAX_THREADS];
    int nt = atomic_load(&fit_threads), started = 0;
    nt = nt < MAX_THREADS ? nt : MAX_THREADS;
    nt = nt < p->l->nclass ? nt : p->l->nclass;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return MF_ENOMEM;
    for (int t = 1; t < nt; t++)
        started += pthread_create(&th[started], NULL, class_worker, p) == 0;
    class_worker(p); /* this thread too (alone when none could start) */
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&p->lock);
    return atomic_load(&p->rc);
}

/* mine NULL: every class; else only those with mine[c] set (the others' columns stay 0) */
static int train(mf_linear_t **out, const mf_trace_t *traces, const int *label,
                 const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                 const unsigned char *mine, void (*progress)(void *ctx, int done, int total),
                 void *ctx)
{
    *out = NULL;
    if (!o || o->hi < 1 || o->hi > 8 || !(o->c > 0) || o->min_df < 1 || nclass < 1 ||
        (o->balanced != 0 && o->balanced != 1) || !(o->proto >= 0) ||
        (o->tf != 0 && o->tf != 1) || (n && (!traces || !label)))
        return MF_EINVAL;
    atomic_fetch_add(&fits, 1);
    mf_linear_t *l = mf__calloc(1, sizeof *l);
    unsigned char *keep = mf__calloc(n ? n : 1, 1);
    mf_linear_vec_t *x = mf__calloc(n ? n : 1, sizeof *x);
    double *xx = mf__malloc((n ? n : 1) * sizeof *xx);
    int rc = MF_ENOMEM;
    if (!l || !keep || !x || !xx)
        goto out;
    l->o = *o;
    l->hi = o->hi;
    l->nclass = nclass;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        keep[i] = !(skip && skip[i]) && label[i] >= 0 && label[i] < nclass;
        m += keep[i];
    }
    rc = dictionary(l, traces, keep, n, o->min_df);
    if (rc != MF_OK)
        goto out;
    rc = MF_ENOMEM;
    l->w = mf__calloc((l->nf + 1) * (size_t)nclass, sizeof *l->w);
    if (!l->w)
        goto out;
    /* the kept traces, packed: vectors x[0..m-1], labels y[0..m-1] */
    int *y = mf__malloc((m ? m : 1) * sizeof *y);
    if (!y)
        goto out;
    size_t k = 0;
    rc = MF_OK;
    for (size_t i = 0; i < n && rc == MF_OK; i++) {
        if (!keep[i])
            continue;
        rc = mf_linear_vectorise(l, traces[i].ids, traces[i].n, &x[k]);
        y[k] = label[i];
        double q = 1.0; /* |x|^2 with the bias feature; train_class adds the diagonal term */
        for (size_t j = 0; j < x[k].nnz; j++)
            q += (double)x[k].val[j] * x[k].val[j];
        xx[k++] = q;
    }
    if (rc == MF_OK && m > 0) {
        /* balanced costs: traces per class, and how many classes have any */
        size_t *per = mf__calloc((size_t)nclass, sizeof *per);
        if (!per)
            rc = MF_ENOMEM;
        int present = 0;
        for (size_t i = 0; per && i < m; i++)
            present += per[y[i]]++ == 0;
        if (rc == MF_OK) {
            class_pool_t p = {.l = l, .x = x, .y = y, .xx = xx, .m = m, .per = per,
                              .present = present, .o = o, .mine = mine,
                              .progress = progress, .ctx = ctx};
            atomic_init(&p.next, 0);
            atomic_init(&p.rc, MF_OK);
            rc = fit_classes(&p);
        }
        mf__free(per);
    }
    if (rc == MF_OK && o->proto > 0) { /* the nearest-reference view keeps the vectors */
        l->proto = o->proto;
        l->ref = x;
        l->ref_y = y;
        l->nref = m;
        x = NULL;
        y = NULL;
    }
    mf__free(y);
out:
    if (x)
        for (size_t i = 0; i < n; i++)
            mf_linear_vec_free(&x[i]);
    mf__free(x);
    mf__free(keep);
    mf__free(xx);
    if (rc != MF_OK) {
        mf_linear_free(l);
        return rc;
    }
    *out = l;
    return MF_OK;
}

void mf_linear_free(mf_linear_t *l)
{
    if (!l)
        return;
    mf__free(l->dk);
    mf__free(l->idf);
    if (l->map_len)
        munmap(l->w, l->map_len);
    else
        mf__free(l->w);
    for (size_t i = 0; l->ref && i < l->nref; i++)
        mf_linear_vec_free(&l->ref[i]);
    mf__free(l->ref);
    mf__free(l->ref_y);
    mf__free(l);
}

size_t mf_linear_nfeatures(const mf_linear_t *l)
{
    return l ? l->nf : 0;
}

void mf_linear_score_vec(const mf_linear_t *l, const mf_linear_vec_t *v, double *score)
{
    const size_t nc = (size_t)l->nclass;
    for (size_t c = 0; c < nc; c++)
        score[c] = l->w[l->nf * nc + c];
    for (size_t k = 0; k < v->nnz; k++) {
        const float *wr = l->w + (size_t)v->idx[k] * nc;
        for (size_t c = 0; c < nc; c++)
            score[c] += (double)wr[c] * v->val[k];
    }
    if (!l->ref)
        return;
    /* nearest-reference view: proto * the best cosine (both unit length, indices sorted)
     * of v with a training vector of the class */
    double best[MF_LINEAR_MAX_PROTO_CLASSES];
    size_t nb = nc < MF_LINEAR_MAX_PROTO_CLASSES ? nc : MF_LINEAR_MAX_PROTO_CLASSES;
    for (size_t c = 0; c < nb; c++)
        best[c] = 0;
    for (size_t r = 0; r < l->nref; r++) {
        const mf_linear_vec_t *u = &l->ref[r];
        double dot = 0;
        for (size_t a = 0, b = 0; a < v->nnz && b < u->nnz;) {
            if (v->idx[a] < u->idx[b])
                a++;
            else if (v->idx[a] > u->idx[b])
                b++;
            else
                dot += (double)v->val[a++] * u->val[b++];
        }
        size_t c = (size_t)l->ref_y[r];
        if (c < nb && dot > best[c])
            best[c] = dot;
    }
    for (size_t c = 0; c < nb; c++)
        score[c] += l->proto * best[c];
}

int mf_linear_score(const mf_linear_t *l, const int32_t *ids, size_t n, double *score)
{
    mf_linear_vec_t v;
    if (mf_linear_vectorise(l, ids, n, &v) != MF_OK)
        return MF_ENOMEM;
    mf_linear_score_vec(l, &v, score);
    mf_linear_vec_free(&v);
    return MF_OK;
}

int mf_linear_top(const mf_linear_t *l, const mf_linear_vec_t *v, const int32_t *ids, size_t n,
                  int c, int k, size_t *pos, int *len)
{
    if (c < 0 || c >= l->nclass || k < 1)
        return 0;
    double *best = mf__malloc((size_t)k * sizeof *best);
    uint64_t *key = mf__malloc((size_t)k * sizeof *key);
    if (!best || !key) {
        mf__free(best);
        mf__free(key);
        return MF_ENOMEM;
    }
    int nb = 0;
    for (size_t j = 0; j < v->nnz; j++) {
        double x = (double)v->val[j] * l->w[(size_t)v->idx[j] * (size_t)l->nclass + (size_t)c];
        if (!(x > 0) || (nb == k && x <= best[k - 1]))
            continue;
        int i = nb < k ? nb++ : k - 1; /* insertion into the descending top k */
        while (i > 0 && best[i - 1] < x) {
            best[i] = best[i - 1];
            key[i] = key[i - 1];
            i--;
        }
        best[i] = x;
        key[i] = l->dk[v->idx[j]];
    }
    /* where each chosen n-gram first occurs, and its order */
    for (int i = 0; i < nb; i++) {
        len[i] = 0;
        for (int o = 1; o <= l->hi && !len[i]; o++)
            for (size_t p = 0; p + (size_t)o <= n; p++)
                if (mf_ngram_key(ids + p, o) == key[i]) {
                    pos[i] = p;
                    len[i] = o;
                    break;
                }
    }
    mf__free(best);
    mf__free(key);
    return nb;
}

int mf_linear_same(const mf_linear_t *l, const mf_linear_opts_t *o, int nclass)
{
    return l && o && l->nclass == nclass && l->o.hi == o->hi && l->o.c == o->c &&
           l->o.min_df == o->min_df && l->o.balanced == o->balanced && l->o.proto == o->proto &&
           l->o.tf == o->tf;
}

void mf_linear_get_parts(const mf_linear_t *l, mf_linear_parts_t *p)
{
    p->o = l->o;
    p->nclass = l->nclass;
    p->nf = l->nf;
    p->dk = l->dk;
    p->idf = l->idf;
    p->w = l->w;
}

/* mf_linear_alloc and mf_linear_alloc_mapped: the weights malloc'ed (map NULL) or map. */
static int alloc(mf_linear_t **out, const mf_linear_opts_t *o, int nclass, size_t nf, void *map,
                 size_t map_len, mf_linear_parts_t *p)
{
    *out = NULL;
    if (!o || o->hi < 1 || o->hi > 8 || !(o->c > 0) || o->min_df < 1 || nclass < 1 ||
        (o->balanced != 0 && o->balanced != 1) || !(o->proto >= 0) ||
        (o->tf != 0 && o->tf != 1) || nf >= SIZE_MAX / sizeof(float) / (size_t)nclass ||
        (map && map_len < (nf + 1) * (size_t)nclass * sizeof(float)))
        return MF_EINVAL;
    mf_linear_t *l = mf__calloc(1, sizeof *l);
    if (!l)
        return MF_ENOMEM;
    l->o = *o;
    l->hi = o->hi;
    l->nclass = nclass;
    l->nf = nf;
    l->dk = mf__malloc((nf ? nf : 1) * sizeof *l->dk);
    l->idf = mf__malloc((nf ? nf : 1) * sizeof *l->idf);
    if (map) {
        l->w = map;
        l->map_len = map_len;
    } else {
        l->w = mf__malloc((nf + 1) * (size_t)nclass * sizeof *l->w);
    }
    if (!l->dk || !l->idf || !l->w) {
        if (map) { /* the caller's until this succeeds */
            l->w = NULL;
            l->map_len = 0;
        }
        mf_linear_free(l);
        return MF_ENOMEM;
    }
    mf_linear_get_parts(l, p);
    *out = l;
    return MF_OK;
}

int mf_linear_alloc(mf_linear_t **out, const mf_linear_opts_t *o, int nclass, size_t nf,
                    mf_linear_parts_t *p)
{
    return alloc(out, o, nclass, nf, NULL, 0, p);
}

int mf_linear_mapped(const mf_linear_t *l)
{
    return l && l->map_len > 0;
}

int mf_linear_alloc_mapped(mf_linear_t **out, const mf_linear_opts_t *o, int nclass, size_t nf,
                           void *map, size_t map_len, mf_linear_parts_t *p)
{
    return alloc(out, o, nclass, nf, map, map_len, p);
}

int mf_linear_set_refs(mf_linear_t *l, const mf_trace_t *traces, const int *label,
                       const unsigned char *skip, size_t n)
{
    if (!(l->o.proto > 0))
        return MF_OK;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += !(skip && skip[i]) && label[i] >= 0 && label[i] < l->nclass;
    mf_linear_vec_t *x = mf__calloc(m ? m : 1, sizeof *x);
    int *y = mf__malloc((m ? m : 1) * sizeof *y);
    int rc = x && y ? MF_OK : MF_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n && rc == MF_OK; i++) {
        if ((skip && skip[i]) || label[i] < 0 || label[i] >= l->nclass)
            continue;
        y[k] = label[i];
        rc = mf_linear_vectorise(l, traces[i].ids, traces[i].n, &x[k++]);
    }
    if (rc != MF_OK) {
        for (size_t i = 0; x && i < k; i++)
            mf_linear_vec_free(&x[i]);
        mf__free(x);
        mf__free(y);
        return rc;
    }
    l->proto = l->o.proto;
    l->ref = x;
    l->ref_y = y;
    l->nref = m;
    return MF_OK;
}
