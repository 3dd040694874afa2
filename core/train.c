/* train.c - one language model per family, trained in parallel, then its pattern.
 *
 * Batching: the family's traces are concatenated into one sequence of L ids and cut into B
 * equal streams (B = opts.batch, fewer when the family is too small); each training window
 * takes the next `bptt` ids of every stream, so one window is a (bptt, B) block, and the LSTM
 * state of stream b carries from one window to the next (truncated BPTT). An epoch is one
 * pass over the streams, starting from zero state.
 */
#include "train.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "internal.h"
#include "lstm.h"
#include "model.h"

void mf_train_opts_default(mf_train_opts_t *o)
{
    memset(o, 0, sizeof *o);
#define X(type, io, name, dflt, ok, msg, optional, absent) o->name = dflt;
    MF_TRAIN_OPTS(X)
#undef X
}

int mf_train_opts_check(const mf_train_opts_t *o, char *msg, size_t msglen)
{
    const char *bad = NULL;
#define X(type, io, name, dflt, ok, message, optional, absent) \
    if (!bad) {                                                  \
        const type v = o->name;                                  \
        (void)v; /* seed's `ok` is 1 */                          \
        if (!(ok))                                               \
            bad = message;                                       \
    }
    MF_TRAIN_OPTS(X)
#undef X
    if (msg && msglen)
        snprintf(msg, msglen, "%s", bad ? bad : "");
    return bad ? MF_EINVAL : MF_OK;
}

void mf_train_cfg_default(mf_train_cfg_t *c)
{
    memset(c, 0, sizeof *c);
    c->split = MF_SPLIT_TRAIN;
}

double mf_unigram_entropy(const mf_trace_t *const *t, size_t n, int nvocab)
{
    size_t *count = mf__calloc((size_t)nvocab, sizeof *count);
    if (!count)
        return NAN;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < t[i]->n; k++)
            if (t[i]->ids[k] >= 0 && t[i]->ids[k] < nvocab) {
                count[t[i]->ids[k]]++;
                total++;
            }
    double h = 0.0;
    for (int v = 0; v < nvocab; v++)
        if (count[v]) {
            double p = (double)count[v] / (double)total;
            h -= p * log(p);
        }
    mf__free(count);
    return h;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* What the worker threads share. Each family slot is written by exactly one thread. */
typedef struct job {
    mf_model_t *m;
    const mf_dataset_t *ds;
    const mf_train_cfg_t *cfg;
    const int *todo;   /* dataset labels to train */
    int ntodo;
    const int *fam_of; /* dataset label -> model family */
    int next;          /* next index into todo, under lock */
    int rc;            /* first error, under lock */
    char err[256];
    pthread_mutex_t lock;
    /* per family results, applied to the model after all threads are done */
    mf_lstm_t **nets;
    mf_lstm_t **gen_nets; /* the gen_epoch snapshot each pattern was sampled from, or NULL */
    mf_trace_t *patterns;
    double *loss, *entropy;
    size_t *tokens;
} job_t;

static void logf_(job_t *j, int level, const char *fmt, ...)
{
    if (!j->cfg->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&j->lock);
    j->cfg->log(j->cfg->ud, level, msg);
    pthread_mutex_unlock(&j->lock);
}

uint64_t mf__family_seed(uint64_t seed, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

int mf_train_pattern_rng(const mf_train_opts_t *o, const char *name, int nvocab, uint64_t *rng)
{
    mf_lstm_dims_t d = {nvocab, o->nembed, o->nhidden, o->ndense};
    if (mf_lstm_dims_check(&d) != MF_OK)
        return MF_EINVAL;
    mf_lstm_t *scratch = mf_lstm_new(&d);
    if (!scratch)
        return MF_ENOMEM;
    *rng = mf__family_seed(o->seed, name); /* as train_one: the init draws, then the sampler's */
    mf_lstm_init(scratch, rng);
    mf_lstm_free(scratch);
    return MF_OK;
}

/* Sample the representative pattern (opts.gen_len calls from `start`, opts.gen_temp) from
 * `net` as it is now into `pat` (empty on entry; on error it may hold a buffer the caller's
 * cleanup frees). The generator reads the network only, so training can go on after. */
static int make_pattern(const mf_lstm_t *net, const mf_train_opts_t *o, int start, uint64_t *rng,
                        mf_trace_t *pat)
{
    pat->ids = mf__malloc((size_t)o->gen_len * sizeof *pat->ids);
    if (!pat->ids)
        return MF_ENOMEM;
    pat->cap = (size_t)o->gen_len;
    int rc = mf_lstm_generate(net, start, (size_t)o->gen_len, o->gen_temp, rng, pat->ids);
    if (rc != MF_OK)
        return rc;
    pat->n = (size_t)o->gen_len;
    return MF_OK;
}

/* Train label `lab`: fills j->nets[k] etc. for todo index k. */
static int train_one(job_t *j, int k)
{
    const mf_dataset_t *ds = j->ds;
    const mf_train_opts_t *o = &j->m->opts;
    int lab = j->todo[k];
    const char *name = ds->labels[lab];
    int V = mf_vocab_size(j->m->vocab);
    int rc = MF_ENOMEM;

    /* the concatenated sequence and the first-call counts */
    size_t L = 0, nt = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->samples[i].label == lab && (j->cfg->split == MF_SPLIT_ANY ||
                                            ds->samples[i].split == j->cfg->split)) {
            L += ds->samples[i].trace.n;
            nt++;
        }
    int32_t *seq = mf__malloc((L ? L : 1) * sizeof *seq);
    const mf_trace_t **tr = mf__malloc((nt ? nt : 1) * sizeof *tr);
    size_t *first = mf__calloc((size_t)V, sizeof *first);
    int32_t *x = NULL, *y = NULL;
    mf_lstm_t *net = NULL;
    mf_lstm_trainer_t *trn = NULL;
    if (!seq || !tr || !first)
        goto out;
    L = nt = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const mf_sample_t *s = &ds->samples[i];
        if (s->label != lab || (j->cfg->split != MF_SPLIT_ANY && s->split != j->cfg->split))
            continue;
        tr[nt++] = &s->trace;
        if (s->trace.n)
            memcpy(seq + L, s->trace.ids, s->trace.n * sizeof *seq);
        L += s->trace.n;
        if (s->trace.n && s->trace.ids[0] >= 0 && s->trace.ids[0] < V)
            first[s->trace.ids[0]]++;
    }
    for (size_t i = 0; i < L; i++)
        if (seq[i] < 0 || seq[i] >= V) {
            rc = MF_EINVAL;
            logf_(j, MF_LOG_ERROR, "%s: id %d outside the vocabulary", name, (int)seq[i]);
            goto out;
        }
    j->tokens[k] = L;
    j->entropy[k] = mf_unigram_entropy(tr, nt, V);
    if (j->cfg->here && !j->cfg->here[lab]) { /* another process trains it */
        rc = MF_OK;
        goto out;
    }
    if (L < 3) {
        logf_(j, MF_LOG_WARN, "%s: %zu calls, too few to train; no network", name, L);
        rc = MF_OK;
        goto out;
    }

    /* streams: each at least two windows long when the family allows it */
    int T = o->bptt, B = o->batch;
    while (B > 1 && L / (size_t)B < (size_t)T + 1)
        B--;
    if (L / (size_t)B < (size_t)T + 1)
        T = (int)(L / (size_t)B) - 1;
    size_t per = L / (size_t)B; /* ids per stream */
    size_t windows = (per - 2) / (size_t)T + 1;

    mf_lstm_dims_t d = {V, o->nembed, o->nhidden, o->ndense};
    net = mf_lstm_new(&d);
    trn = net ? mf_lstm_trainer_new(net, T, B) : NULL;
    x = mf__malloc((size_t)T * B * sizeof *x);
    y = mf__malloc((size_t)T * B * sizeof *y);
    if (!trn || !x || !y)
        goto out;
    /* one stream: the weight init, then the pattern sampler (mf_train_pattern_rng) */
    uint64_t rng = mf__family_seed(o->seed, name);
    mf_lstm_init(net, &rng);

    /* the pattern's first call */
    int start = o->gen_start;
    if (start < 0 || start >= V) {
        start = 0;
        for (int v = 1; v < V; v++)
            if (first[v] > first[start])
                start = v;
    }
    int pat_done = 0;
    double t0 = now(), loss = 0.0;
    for (int ep = 0; ep < o->epochs; ep++) {
        mf_lstm_trainer_reset(trn);
        double sum = 0.0;
        size_t count = 0;
        for (size_t w = 0; w < windows; w++) {
            size_t pos = w * (size_t)T;
            int Tw = (int)(per - 1 - pos < (size_t)T ? per - 1 - pos : (size_t)T);
            for (int t = 0; t < Tw; t++)
                for (int b = 0; b < B; b++) {
                    size_t at = (size_t)b * per + pos + (size_t)t;
                    x[t * B + b] = seq[at];
                    y[t * B + b] = seq[at + 1];
                }
            double l = mf_lstm_trainer_grad(trn, x, y, Tw, 1);
            mf_lstm_trainer_adam(trn, o->lr, o->clip);
            sum += l * Tw * B;
            count += (size_t)Tw * B;
        }
        loss = sum / (double)count;
        double el = now() - t0;
        double tps = (double)count * (ep + 1) / (el > 0 ? el : 1e-9);
        logf_(j, MF_LOG_INFO, "%s: epoch %d/%d loss %.4f (entropy %.4f) %.0f tokens/s ETA %.0fs",
              name, ep + 1, o->epochs, loss, j->entropy[k], tps,
              el / (ep + 1) * (o->epochs - ep - 1));
        if (ep + 1 == o->gen_epoch && ep + 1 < o->epochs) {
            /* the earlier snapshot's pattern; the snapshot is kept so that the pattern can be
             * sampled again (other seeds, other settings) from the network that made it */
            j->gen_nets[k] = mf_lstm_clone(net);
            if (!j->gen_nets[k]) {
                rc = MF_ENOMEM;
                goto out;
            }
            rc = make_pattern(j->gen_nets[k], o, start, &rng, &j->patterns[k]);
            if (rc != MF_OK)
                goto out;
            pat_done = 1;
            logf_(j, MF_LOG_INFO, "%s: pattern generated after epoch %d", name, ep + 1);
        }
    }
    j->loss[k] = o->epochs > 0 ? loss : NAN;

    if (!pat_done) { /* gen_epoch 0 or >= epochs: the last epoch's network */
        rc = make_pattern(net, o, start, &rng, &j->patterns[k]);
        if (rc != MF_OK)
            goto out;
    }
    j->nets[k] = net;
    net = NULL;
    rc = MF_OK;
out:
    mf_lstm_trainer_free(trn);
    mf_lstm_free(net);
    mf__free(x);
    mf__free(y);
    mf__free(seq);
    mf__free(tr);
    mf__free(first);
    return rc;
}

static void *worker(void *arg)
{
    job_t *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        int k = j->rc == MF_OK && j->next < j->ntodo ? j->next++ : -1;
        pthread_mutex_unlock(&j->lock);
        if (k < 0)
            return NULL;
        int rc = train_one(j, k);
        if (rc != MF_OK) {
            pthread_mutex_lock(&j->lock);
            if (j->rc == MF_OK) {
                j->rc = rc;
                snprintf(j->err, sizeof j->err, "family %s: %s", j->ds->labels[j->todo[k]],
                         mf_strerror(rc));
            }
            pthread_mutex_unlock(&j->lock);
        }
    }
}

/* Replace the references of the trained families with their samples (deep copies). */
static int replace_refs(mf_model_t *m, const job_t *j)
{
    const mf_dataset_t *ds = j->ds;
    int *trained = mf__calloc((size_t)m->nfam, sizeof *trained);
    if (!trained)
        return MF_ENOMEM;
    for (int k = 0; k < j->ntodo; k++)
        trained[j->fam_of[j->todo[k]]] = 1;
    size_t keep = 0, add = 0;
    for (size_t i = 0; i < m->nrefs; i++)
        keep += !trained[m->ref_label[i]];
    for (size_t i = 0; i < ds->n; i++) {
        const mf_sample_t *s = &ds->samples[i];
        add += j->fam_of[s->label] >= 0 && trained[j->fam_of[s->label]] &&
               (j->cfg->split == MF_SPLIT_ANY || s->split == j->cfg->split);
    }
    size_t total = keep + add;
    mf_trace_t *refs = mf__calloc(total ? total : 1, sizeof *refs);
    int *lab = mf__calloc(total ? total : 1, sizeof *lab);
    int rc = MF_ENOMEM;
    if (!refs || !lab)
        goto fail;
    size_t r = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const mf_sample_t *s = &ds->samples[i];
        if (j->fam_of[s->label] < 0 || !trained[j->fam_of[s->label]] ||
            (j->cfg->split != MF_SPLIT_ANY && s->split != j->cfg->split))
            continue;
        if (mf_trace_copy(&refs[r], &s->trace) != MF_OK)
            goto fail;
        lab[r++] = j->fam_of[s->label];
    }
    /* success is certain from here: move the kept references over */
    for (size_t i = 0; i < m->nrefs; i++) {
        if (trained[m->ref_label[i]]) {
            mf_trace_destroy(&m->refs[i]);
        } else {
            refs[r] = m->refs[i];
            lab[r++] = m->ref_label[i];
        }
    }
    mf__free(m->refs);
    mf__free(m->ref_label);
    m->refs = refs;
    m->ref_label = lab;
    m->nrefs = total;
    mf__free(trained);
    return MF_OK;
fail:
    for (size_t i = 0; refs && i < total; i++)
        mf_trace_destroy(&refs[i]);
    mf__free(refs);
    mf__free(lab);
    mf__free(trained);
    return rc;
}

int mf_train_model(mf_model_t *m, const mf_dataset_t *ds, const mf_train_cfg_t *cfg, char *err,
                   size_t errlen)
{
    char msg[200];
    if (err && errlen)
        err[0] = '\0';
    if (!m->vocab) {
        snprintf(err, errlen, "the model has no vocabulary");
        return MF_EINVAL;
    }
    if (mf_train_opts_check(&m->opts, msg, sizeof msg) != MF_OK) {
        snprintf(err, errlen, "%s", msg);
        return MF_EINVAL;
    }
    int nl = ds->nlabels;
    int *todo = mf__calloc((size_t)(nl ? nl : 1), sizeof *todo);
    int *fam_of = mf__calloc((size_t)(nl ? nl : 1), sizeof *fam_of);
    job_t j;
    memset(&j, 0, sizeof j);
    int rc = MF_ENOMEM;
    if (!todo || !fam_of)
        goto done;
    /* labels with samples in the split, in label order */
    int nt = 0;
    for (int l = 0; l < nl; l++) {
        if (cfg->only && strcmp(cfg->only, ds->labels[l]) != 0)
            continue;
        int has = 0;
        for (size_t i = 0; i < ds->n && !has; i++)
            has = ds->samples[i].label == l &&
                  (cfg->split == MF_SPLIT_ANY || ds->samples[i].split == cfg->split);
        if (has)
            todo[nt++] = l;
    }
    if (nt == 0) {
        snprintf(err, errlen, cfg->only ? "no samples of family %s" : "no samples to train on%s",
                 cfg->only ? cfg->only : "");
        rc = MF_EINVAL;
        goto done;
    }
    /* every family slot exists before any thread starts: m->fam is not reallocated after;
     * a label without samples (dropped as too small, say) makes no family (-1) */
    for (int l = 0; l < nl; l++)
        fam_of[l] = -1;
    for (int k = 0; k < nt; k++) {
        int l = todo[k];
        fam_of[l] = mf_model_add_family(m, ds->labels[l]);
        if (fam_of[l] < 0) {
            rc = fam_of[l];
            snprintf(err, errlen, "family %s: %s", ds->labels[l], mf_strerror(rc));
            goto done;
        }
    }
    j.m = m;
    j.ds = ds;
    j.cfg = cfg;
    j.todo = todo;
    j.ntodo = nt;
    j.fam_of = fam_of;
    j.nets = mf__calloc((size_t)nt, sizeof *j.nets);
    j.gen_nets = mf__calloc((size_t)nt, sizeof *j.gen_nets);
    j.patterns = mf__calloc((size_t)nt, sizeof *j.patterns);
    j.loss = mf__calloc((size_t)nt, sizeof *j.loss);
    j.entropy = mf__calloc((size_t)nt, sizeof *j.entropy);
    j.tokens = mf__calloc((size_t)nt, sizeof *j.tokens);
    if (!j.nets || !j.gen_nets || !j.patterns || !j.loss || !j.entropy || !j.tokens)
        goto done;
    if (pthread_mutex_init(&j.lock, NULL) != 0)
        goto done;

    int nthreads = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > nt)
        nthreads = nt;
    mf_blas_set_threads(1);
    pthread_t th[64];
    if (nthreads > 64)
        nthreads = 64;
    int started = 0;
    for (int t = 1; t < nthreads; t++) {
        if (pthread_create(&th[t], NULL, worker, &j) != 0)
            break;
        started = t;
    }
    worker(&j); /* this thread works too */
    for (int t = 1; t <= started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.lock);
    rc = j.rc;
    if (rc != MF_OK) {
        snprintf(err, errlen, "%s", j.err);
        goto done;
    }
    rc = replace_refs(m, &j);
    if (rc != MF_OK)
        goto done;
    for (int k = 0; k < nt; k++) {
        mf_family_t *f = &m->fam[fam_of[todo[k]]];
        mf_lstm_free(f->lstm);
        mf_lstm_free(f->gen_lstm);
        mf_trace_destroy(&f->pattern);
        f->lstm = j.nets[k];
        f->gen_lstm = j.gen_nets[k];
        f->pattern = j.patterns[k];
        f->tokens = j.tokens[k];
        f->loss = j.loss[k];
        f->entropy = j.entropy[k];
        j.nets[k] = NULL;
        j.gen_nets[k] = NULL;
        mf_trace_init(&j.patterns[k]);
    }
done:
    for (int k = 0; k < j.ntodo && j.nets; k++) {
        mf_lstm_free(j.nets[k]);
        if (j.gen_nets)
            mf_lstm_free(j.gen_nets[k]);
        if (j.patterns)
            mf_trace_destroy(&j.patterns[k]);
    }
    mf__free(j.nets);
    mf__free(j.gen_nets);
    mf__free(j.patterns);
    mf__free(j.loss);
    mf__free(j.entropy);
    mf__free(j.tokens);
    mf__free(todo);
    mf__free(fam_of);
    return rc;
}

/* ---- a trained family as bytes (MPI training) ----------------------------------------------
 * "MFFP", format 1, name (u32 length + bytes), tokens u64, loss f64, entropy f64, then the
 * network and the snapshot (u8 present; dims as 4 i32, the weight block), then the pattern
 * (u64 length, i32 ids). Native byte order: both ends run the same build. */
#define FP_MAGIC 0x5046464du /* "MFFP" read as little-endian u32 */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} pbuf_t;

static void pput(pbuf_t *b, const void *src, size_t len)
{
    if (b->oom || !len)
        return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len)
            cap *= 2;
        uint8_t *p = mf__realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, len);
    b->n += len;
}

static void pput_net(pbuf_t *b, const mf_lstm_t *net)
{
    uint8_t has = net != NULL;
    pput(b, &has, 1);
    if (!net)
        return;
    int32_t d[4] = {net->d.nvocab, net->d.nembed, net->d.nhidden, net->d.ndense};
    pput(b, d, sizeof d);
    pput(b, net->w, net->nparams * sizeof *net->w);
}

int mf_train_family_pack(const mf_family_t *f, uint8_t **buf, size_t *len)
{
    pbuf_t b = {0};
    uint32_t head[3] = {FP_MAGIC, 1, (uint32_t)strlen(f->name)};
    uint64_t tokens = f->tokens, n = f->pattern.n;
    pput(&b, head, sizeof head);
    pput(&b, f->name, head[2]);
    pput(&b, &tokens, sizeof tokens);
    pput(&b, &f->loss, sizeof f->loss);
    pput(&b, &f->entropy, sizeof f->entropy);
    pput_net(&b, f->lstm);
    pput_net(&b, f->gen_lstm);
    pput(&b, &n, sizeof n);
    pput(&b, f->pattern.ids, f->pattern.n * sizeof *f->pattern.ids);
    if (b.oom) {
        mf__free(b.p);
        return MF_ENOMEM;
    }
    *buf = b.p;
    *len = b.n;
    return MF_OK;
}

typedef struct {
    const uint8_t *p;
    size_t n, at;
} pread_t;

static int pget(pread_t *r, void *dst, size_t len)
{
    if (len > r->n - r->at)
        return -1;
    memcpy(dst, r->p + r->at, len);
    r->at += len;
    return 0;
}

/* A network of m's vocabulary and training shape, or NULL in *out when absent. */
static int pget_net(pread_t *r, const mf_model_t *m, mf_lstm_t **out)
{
    uint8_t has;
    *out = NULL;
    if (pget(r, &has, 1) || has > 1)
        return MF_EFORMAT;
    if (!has)
        return MF_OK;
    int32_t d[4];
    if (pget(r, d, sizeof d))
        return MF_EFORMAT;
    mf_lstm_dims_t dims = {d[0], d[1], d[2], d[3]};
    if (dims.nvocab != mf_vocab_size(m->vocab) || dims.nembed != m->opts.nembed ||
        dims.nhidden != m->opts.nhidden || dims.ndense != m->opts.ndense)
        return MF_EFORMAT;
    mf_lstm_t *net = mf_lstm_new(&dims);
    if (!net)
        return MF_ENOMEM;
    if (pget(r, net->w, net->nparams * sizeof *net->w)) {
        mf_lstm_free(net);
        return MF_EFORMAT;
    }
    *out = net;
    return MF_OK;
}

int mf_train_family_unpack(mf_model_t *m, const uint8_t *buf, size_t len, char *err,
                           size_t errlen)
{
    pread_t r = {buf, len, 0};
    uint32_t head[3];
    char name[MF_MAX_FAMILY_NAME + 1];
    uint64_t tokens, n;
    double loss, entropy;
    mf_lstm_t *net = NULL, *gen = NULL;
    mf_trace_t pat;
    mf_trace_init(&pat);
    int rc = MF_EFORMAT;
    const char *why = "truncated";
    if (pget(&r, head, sizeof head) || head[0] != FP_MAGIC || head[1] != 1 ||
        head[2] > MF_MAX_FAMILY_NAME) {
        why = "not a packed family";
        goto fail;
    }
    if (pget(&r, name, head[2]) || pget(&r, &tokens, sizeof tokens) ||
        pget(&r, &loss, sizeof loss) || pget(&r, &entropy, sizeof entropy))
        goto fail;
    name[head[2]] = '\0';
    int f = mf_model_find_family(m, name);
    if (f < 0) {
        rc = MF_ENOENT;
        why = name;
        goto fail;
    }
    if ((rc = pget_net(&r, m, &net)) != MF_OK || (rc = pget_net(&r, m, &gen)) != MF_OK) {
        why = rc == MF_ENOMEM ? "" : "a network that does not fit the model";
        goto fail;
    }
    rc = MF_EFORMAT;
    if (pget(&r, &n, sizeof n) || n > (len - r.at) / sizeof(int32_t))
        goto fail;
    if (n) {
        rc = MF_ENOMEM;
        why = "";
        if (!(pat.ids = mf__malloc(n * sizeof *pat.ids)))
            goto fail;
        pat.cap = pat.n = n;
        pget(&r, pat.ids, n * sizeof *pat.ids);
        rc = MF_EFORMAT;
        why = "pattern id outside the vocabulary";
        for (size_t i = 0; i < n; i++)
            if (pat.ids[i] < 0 || pat.ids[i] >= mf_vocab_size(m->vocab))
                goto fail;
    }
    if (r.at != len) {
        why = "trailing bytes";
        goto fail;
    }
    mf_family_t *fa = &m->fam[f];
    mf_lstm_free(fa->lstm);
    mf_lstm_free(fa->gen_lstm);
    mf_trace_destroy(&fa->pattern);
    fa->lstm = net;
    fa->gen_lstm = gen;
    fa->pattern = pat;
    fa->tokens = (size_t)tokens;
    fa->loss = loss;
    fa->entropy = entropy;
    return MF_OK;
fail:
    if (err && errlen)
        snprintf(err, errlen, "packed family: %s", why);
    mf_lstm_free(net);
    mf_lstm_free(gen);
    mf_trace_destroy(&pat);
    return rc;
}
