/* model.c - the model in memory and its one-file binary form.
 *
 * File layout, all integers and floats little-endian (the loader refuses to build on other
 * hosts rather than read garbage):
 *
 *   "MALFAMMD"  8 bytes magic
 *   u32 version (MODEL_VERSION), u32 0 (reserved), u64 payload bytes
 *   payload: sections, each  u32 tag, u32 0, u64 length, then `length` bytes
 *   u32 CRC-32 (zlib) of everything before it
 *
 * Sections, in this order (unknown tags are skipped, so later versions can add some):
 *   VOCB  u32 count, then count x (u32 id, u16 len, name bytes)
 *   OPTS  the training options, the fields of MF_TRAIN_OPTS (train.h) in its order as its i32,
 *         f32 or u64; trailing optional fields may be missing (files written before
 *         gen_epoch end at gen_start and load with gen_epoch 0: the last epoch's pattern)
 *   PREP  u32 fold, u64 max_len
 *   FAMS  u32 nfam, then per family: u16 len + name, u64 tokens, f64 loss, f64 entropy,
 *         u32 has_lstm [, i32 nvocab nembed nhidden ndense, nparams f32 weights],
 *         u64 pattern length, i32 ids
 *   REFS  u64 nrefs, then per reference: i32 family, u64 n, i32 ids
 *   PARM  u32 n, then n x (48-byte NUL-padded name, f64 value)
 *   SNAP  optional, only when some family has one: the networks the patterns were sampled
 *         from (gen_epoch snapshots), u32 n, then n x (u32 family index, ascending,
 *         i32 nvocab nembed nhidden ndense, nparams f32 weights); each has the shape of its
 *         family's network. Files without it (all files written before it) load with
 *         gen_lstm NULL; builds that predate it skip it as an unknown tag, so no version bump.
 *   ALGN  before LINR: zero bytes, as many as put LINR's weights on a 4096-byte boundary of
 *         the file, so the loader can mmap them in place of a copy. The loader skips it as it
 *         skips any unknown tag (so do older builds); weights elsewhere are read, not mapped.
 *   LINR  optional: linear's classifier (linear.h) fitted on REFS, so loading fits nothing:
 *         u32 CRC-32 of the REFS section's bytes (a classifier for other references is
 *         dropped at load), u32 nclass (= nfam), i32 hi, f64 c, i32 min_df, i32 balanced,
 *         f64 proto, u64 nf, u32 encoding (0: dense f32), nf u64 keys (ascending), nf f32
 *         idf, (nf + 1) * nclass f32 weights (feature major, bias row last), then optionally
 *         i32 tf (files written before it end at the weights and load with tf 0: sublinear).
 *         Files without the section (written before it) load as before: scorers fit the
 *         classifier (a warning on stderr says to retrain). Older builds skip it as an
 *         unknown tag.
 *   NOVI  optional, only when linear's novelty compares prototypes (nov_protos in effect
 *         with the model's options): its index, so a linear-only scorer builds key sets for
 *         the prototypes alone (score_priv.h): u32 CRC-32 of the REFS bytes (dropped at load
 *         when it differs), i32 combo_hi, i32 np (prototypes per family), u64 nkept, u64
 *         nproto, nproto u64 reference indices (ascending), then combo's two idf tables (APIs
 *         alone, orders 1..combo_hi), each f32 unseen, u64 nd, nd u64 keys (ascending), nd f32
 *         idf. Files without it load as before; older builds skip it as an unknown tag.
 *   NOVK  optional, after NOVI: its prototypes' key sets as an inverted index per table, so a
 *         scorer neither rebuilds nor searches them: u32 CRC-32 of the REFS bytes, then for
 *         each of the two tables u64 total, (nd + 1) u32 offsets (0 first, total last,
 *         non-decreasing), total u32 prototype positions (ascending per key, < nproto).
 *         Read only with its NOVI; files without it build the key sets from the traces.
 *
 * The loader checks magic, version, section sizes and the checksum (streamed) before parsing,
 * then parses one section at a time, checking every count against the bytes left and the
 * MF_MAX_* limits, and every id against the vocabulary, so a hostile file that carries a
 * valid checksum still cannot make it read out of bounds or allocate without bound. LINR's
 * weights, when aligned and the caller asks (MF_LOAD_MAP), stay a read-only mapping of the
 * file. mf_model_save replaces a file by rename, never in place.
 */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"
#include "score_priv.h" /* mf__nov_build: the NOVI section */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model.c writes little-endian files by memcpy; add byte swapping for this host"
#endif

#define MODEL_MAGIC "MALFAMMD"
#define MODEL_VERSION 1u
#define HEADER_LEN 24
#define MAX_FILE ((uint64_t)1 << 36) /* 64 GiB: far above any real model */

#define TAG(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_VOCB TAG('V', 'O', 'C', 'B')
#define TAG_OPTS TAG('O', 'P', 'T', 'S')
#define TAG_PREP TAG('P', 'R', 'E', 'P')
#define TAG_FAMS TAG('F', 'A', 'M', 'S')
#define TAG_REFS TAG('R', 'E', 'F', 'S')
#define TAG_PARM TAG('P', 'A', 'R', 'M')
#define TAG_SNAP TAG('S', 'N', 'A', 'P')
#define TAG_LINR TAG('L', 'I', 'N', 'R')
#define TAG_NOVI TAG('N', 'O', 'V', 'I')
#define TAG_NOVK TAG('N', 'O', 'V', 'K')
#define TAG_ALGN TAG('A', 'L', 'G', 'N') /* padding, skipped as an unknown tag */
#define WEIGHTS_ALIGN 4096

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- the model in memory ----------------------------------------------------------------- */

mf_model_t *mf_model_new(void)
{
    mf_model_t *m = mf__calloc(1, sizeof *m);
    if (!m)
        return NULL;
    mf_train_opts_default(&m->opts);
    m->prep.fold = 1;
    m->prep.max_len = MF_PREP_MAX_LEN;
    return m;
}

static void family_destroy(mf_family_t *f)
{
    mf__free(f->name);
    mf_lstm_free(f->lstm);
    mf_lstm_free(f->gen_lstm);
    mf_trace_destroy(&f->pattern);
    memset(f, 0, sizeof *f);
}

void mf_model_free(mf_model_t *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nfam; i++)
        family_destroy(&m->fam[i]);
    mf__free(m->fam);
    for (size_t i = 0; m->refs && i < m->nrefs; i++)
        mf_trace_destroy(&m->refs[i]);
    mf__free(m->refs);
    mf__free(m->ref_label);
    mf__free(m->ref_api);
    mf__free(m->params);
    mf_linear_free(m->lin);
    mf_model_nov_free(m->nov);
    mf_vocab_free(m->vocab);
    mf__free(m);
}

int mf_model_find_family(const mf_model_t *m, const char *name)
{
    for (int i = 0; i < m->nfam; i++)
        if (strcmp(m->fam[i].name, name) == 0)
            return i;
    return MF_ENOENT;
}

int mf_model_add_family(mf_model_t *m, const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > MF_MAX_FAMILY_NAME)
        return MF_EINVAL;
    int i = mf_model_find_family(m, name);
    if (i >= 0)
        return i;
    if (m->nfam >= MF_MAX_FAMILIES)
        return MF_ELIMIT;
    mf_family_t *nf = mf__realloc(m->fam, (size_t)(m->nfam + 1) * sizeof *nf);
    if (!nf)
        return MF_ENOMEM;
    m->fam = nf;
    mf_family_t *f = &m->fam[m->nfam];
    memset(f, 0, sizeof *f);
    f->name = mf__strndup(name, len);
    if (!f->name)
        return MF_ENOMEM;
    mf_trace_init(&f->pattern);
    return m->nfam++;
}

double mf_model_param(const mf_model_t *m, const char *name, double dflt)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return m->params[i].value;
    return dflt;
}

int mf_model_set_param(mf_model_t *m, const char *name, double value)
{
    if (!name || !*name || strlen(name) >= sizeof m->params[0].name)
        return MF_EINVAL;
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0) {
            m->params[i].value = value;
            return MF_OK;
        }
    if (m->nparams >= MF_MAX_PARAMS)
        return MF_ELIMIT;
    mf_model_param_t *np = mf__realloc(m->params, (size_t)(m->nparams + 1) * sizeof *np);
    if (!np)
        return MF_ENOMEM;
    m->params = np;
    memset(&np[m->nparams], 0, sizeof *np);
    strcpy(np[m->nparams].name, name);
    np[m->nparams].value = value;
    m->nparams++;
    return MF_OK;
}

/* ---- writing ----------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int err; /* sticky: MF_ENOMEM after the first failed growth */
} wbuf_t;

static void put(wbuf_t *w, const void *src, size_t len)
{
    if (w->err || len == 0) /* len 0: src may be NULL (an empty trace) */
        return;
    if (mf__grow((void **)&w->p, &w->cap, w->n + len, 1) != MF_OK) {
        w->err = MF_ENOMEM;
        return;
    }
    memcpy(w->p + w->n, src, len);
    w->n += len;
}

static void put_u16(wbuf_t *w, uint16_t v) { put(w, &v, sizeof v); }
static void put_u32(wbuf_t *w, uint32_t v) { put(w, &v, sizeof v); }
static void put_i32(wbuf_t *w, int32_t v) { put(w, &v, sizeof v); }
static void put_u64(wbuf_t *w, uint64_t v) { put(w, &v, sizeof v); }
static void put_f32(wbuf_t *w, float v) { put(w, &v, sizeof v); }
static void put_f64(wbuf_t *w, double v) { put(w, &v, sizeof v); }

/* Start a section; returns where its length goes, filled in by end_section. */
static size_t begin_section(wbuf_t *w, uint32_t tag)
{
    put_u32(w, tag);
    put_u32(w, 0);
    size_t at = w->n;
    put_u64(w, 0);
    return at;
}

static void end_section(wbuf_t *w, size_t at)
{
    if (w->err)
        return;
    uint64_t len = w->n - (at + 8);
    memcpy(w->p + at, &len, sizeof len);
}

/* The fields of MF_TRAIN_OPTS (train.h) in its order, each as its `io` type. */
static void put_opts(wbuf_t *w, const mf_train_opts_t *o)
{
#define X(type, io, name, dflt, ok, message, optional, absent) put_##io(w, o->name);
    MF_TRAIN_OPTS(X)
#undef X
}

static void put_ids(wbuf_t *w, const mf_trace_t *t)
{
    put_u64(w, t->n);
    put(w, t->ids, t->n * sizeof *t->ids);
}

/* A network: its four dimensions, then its weight block. */
static void put_lstm(wbuf_t *w, const mf_lstm_t *net)
{
    put_i32(w, net->d.nvocab);
    put_i32(w, net->d.nembed);
    put_i32(w, net->d.nhidden);
    put_i32(w, net->d.ndense);
    put(w, net->w, net->nparams * sizeof(float));
}

static void put_linear(wbuf_t *w, const mf_linear_t *l, uint32_t refs_crc)
{
    mf_linear_parts_t p;
    mf_linear_get_parts(l, &p);
    put_u32(w, refs_crc);
    put_u32(w, (uint32_t)p.nclass);
    put_i32(w, p.o.hi);
    put_f64(w, p.o.c);
    put_i32(w, p.o.min_df);
    put_i32(w, p.o.balanced);
    put_f64(w, p.o.proto);
    put_u64(w, p.nf);
    put_u32(w, 0); /* dense f32 weights (docs/design.md: why not sparse or quantised) */
    put(w, p.dk, p.nf * sizeof *p.dk);
    put(w, p.idf, p.nf * sizeof *p.idf);
    put(w, p.w, (p.nf + 1) * (size_t)p.nclass * sizeof *p.w);
    put_i32(w, p.o.tf);
}

static uint32_t crc_more(uint32_t crc, const uint8_t *p, size_t n)
{
    for (size_t off = 0; off < n;) { /* crc32 takes uInt lengths */
        size_t chunk = n - off > (1u << 30) ? (1u << 30) : n - off;
        crc = (uint32_t)crc32(crc, p + off, (uInt)chunk);
        off += chunk;
    }
    return crc;
}

static uint32_t crc_bytes(const uint8_t *p, size_t n)
{
    return crc_more((uint32_t)crc32(0L, Z_NULL, 0), p, n);
}

static int same_dims(const mf_lstm_dims_t *a, const mf_lstm_dims_t *b)
{
    return a->nvocab == b->nvocab && a->nembed == b->nembed && a->nhidden == b->nhidden &&
           a->ndense == b->ndense;
}

/* Families with a snapshot network, or -1 - i when family i has one the loader would refuse
 * (no network of its own, or another shape): saving it would write an unloadable file. */
static int count_snapshots(const mf_model_t *m)
{
    int n = 0;
    for (int i = 0; i < m->nfam; i++) {
        const mf_family_t *f = &m->fam[i];
        if (!f->gen_lstm)
            continue;
        if (!f->lstm || !same_dims(&f->lstm->d, &f->gen_lstm->d))
            return -1 - i;
        n++;
    }
    return n;
}

static void put_snapshots(wbuf_t *w, const mf_model_t *m, int nsnap)
{
    put_u32(w, (uint32_t)nsnap);
    for (int i = 0; i < m->nfam; i++)
        if (m->fam[i].gen_lstm) {
            put_u32(w, (uint32_t)i);
            put_lstm(w, m->fam[i].gen_lstm);
        }
}

int mf_model_has_nets(const mf_model_t *m)
{
    for (int f = 0; f < m->nfam; f++)
        if (m->fam[f].lstm && !m->fam[f].lstm->w)
            return 0;
    return 1;
}

static int load(mf_model_t **out, const char *path, int flags, int warn, char *err,
                size_t errlen);
/* load's flag for reading again what a lighter load skipped: LINR, NOVI and NOVK only
 * checksummed (m has them already; 219 MiB of weights at 500 x 50,000) */
#define LOAD_BARE 0x100

/* Whether `full`, read again from path for what a lighter load skipped, is not the model m
 * was loaded from (another id: the file was replaced meanwhile); detail in err. */
static int not_loaded(const mf_model_t *m, const mf_model_t *full, const char *path, char *err,
                      size_t errlen)
{
    if (strcmp(full->version, m->version) == 0 && full->nfam == m->nfam &&
        full->nrefs == m->nrefs)
        return 0;
    set_err(err, errlen, "%s: the file is model %s now, not %s as loaded: reload it", path,
            full->version, m->version);
    return 1;
}

/* The whole file again, with every check, for the parts `flags` adds to m: they come from the
 * bytes loaded before (same checksum) or not at all (MF_ECHECKSUM, err says to reload). */
static int load_same(const mf_model_t *m, const char *path, int flags, mf_model_t **full,
                     char *err, size_t errlen)
{
    int rc = load(full, path, flags | LOAD_BARE, 0, err, errlen);
    if (rc != MF_OK)
        return rc;
    if (not_loaded(m, *full, path, err, errlen)) {
        mf_model_free(*full);
        *full = NULL;
        return MF_ECHECKSUM;
    }
    return MF_OK;
}

int mf_model_read_nets(mf_model_t *m, const char *path, char *err, size_t errlen)
{
    if (mf_model_has_nets(m))
        return MF_OK;
    mf_model_t *full;
    int rc = load_same(m, path, MF_LOAD_NETS, &full, err, errlen);
    if (rc != MF_OK)
        return rc;
    for (int f = 0; f < m->nfam; f++) {
        mf_family_t *a = &m->fam[f], *b = &full->fam[f];
        if (a->lstm && !a->lstm->w) {
            a->lstm->w = b->lstm->w;
            b->lstm->w = NULL;
        }
        if (!a->gen_lstm) {
            a->gen_lstm = b->gen_lstm;
            b->gen_lstm = NULL;
        }
    }
    mf_model_free(full);
    return MF_OK;
}

int mf_model_has_refs(const mf_model_t *m)
{
    return m->refs || !m->ref_api;
}

int mf_model_read_refs(mf_model_t *m, const char *path, char *err, size_t errlen)
{
    if (mf_model_has_refs(m))
        return MF_OK;
    mf_model_t *full;
    int rc = load_same(m, path, MF_LOAD_REFS, &full, err, errlen);
    if (rc != MF_OK)
        return rc;
    /* the classifier's nearest-reference view (lin_proto) is made from the traces too */
    if (m->lin && (rc = mf_linear_set_refs(m->lin, full->refs, m->ref_label, NULL, m->nrefs)) !=
                      MF_OK) {
        set_err(err, errlen, "%s: out of memory", path);
        mf_model_free(full);
        return rc;
    }
    m->refs = full->refs;
    full->refs = NULL;
    full->nrefs = 0;
    mf__free(m->ref_api);
    m->ref_api = NULL;
    mf_model_free(full);
    return MF_OK;
}

static void put_nov(wbuf_t *w, const mf_model_nov_t *v, uint32_t refs_crc)
{
    put_u32(w, refs_crc);
    put_i32(w, v->combo_hi);
    put_i32(w, v->np);
    put_u64(w, v->nkept);
    put_u64(w, v->nproto);
    for (size_t i = 0; i < v->nproto; i++)
        put_u64(w, v->proto[i]);
    for (int k = 0; k < 2; k++) {
        put_f32(w, v->view[k].unseen);
        put_u64(w, v->view[k].nd);
        put(w, v->view[k].dk, v->view[k].nd * sizeof *v->view[k].dk);
        put(w, v->view[k].dw, v->view[k].nd * sizeof *v->view[k].dw);
    }
}

static void put_novk(wbuf_t *w, const mf_model_nov_t *v, uint32_t refs_crc)
{
    put_u32(w, refs_crc);
    for (int k = 0; k < 2; k++) {
        uint64_t total = v->view[k].off[v->view[k].nd];
        put_u64(w, total);
        put(w, v->view[k].off, (v->view[k].nd + 1) * sizeof *v->view[k].off);
        put(w, v->view[k].pos, total * sizeof *v->view[k].pos);
    }
}

void mf_model_nov_free(mf_model_nov_t *nov)
{
    if (!nov)
        return;
    mf__free(nov->proto);
    for (int k = 0; k < 2; k++) {
        mf__free(nov->view[k].dk);
        mf__free(nov->view[k].dw);
        mf__free(nov->view[k].off);
        mf__free(nov->view[k].pos);
    }
    mf__free(nov);
}

uint32_t mf_model_refs_crc(const mf_model_t *m)
{
    if (!mf_model_has_refs(m))
        return m->ref_crc; /* the traces were not read: their CRC from the file */
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    uint64_t n = m->nrefs;
    crc = (uint32_t)crc32(crc, (const Bytef *)&n, sizeof n);
    for (size_t i = 0; i < m->nrefs; i++) {
        int32_t l = m->ref_label[i];
        uint64_t len = m->refs[i].n;
        crc = (uint32_t)crc32(crc, (const Bytef *)&l, sizeof l);
        crc = (uint32_t)crc32(crc, (const Bytef *)&len, sizeof len);
        const uint8_t *p = (const uint8_t *)m->refs[i].ids;
        for (size_t off = 0, all = len * sizeof *m->refs[i].ids; off < all;) {
            size_t chunk = all - off > (1u << 30) ? (1u << 30) : all - off;
            crc = (uint32_t)crc32(crc, p + off, (uInt)chunk);
            off += chunk;
        }
    }
    return crc;
}

int mf_model_encode(mf_model_t *m, const char *path, uint8_t **out, size_t *len, char *err,
                    size_t errlen)
{
    *out = NULL;
    *len = 0;
    if (!mf_model_has_nets(m) || !mf_model_has_refs(m)) {
        set_err(err, errlen, "%s: the model was loaded without its %s (mf_model_read_%s first)",
                path, mf_model_has_nets(m) ? "reference traces" : "networks",
                mf_model_has_nets(m) ? "refs" : "nets");
        return MF_EINVAL;
    }
    int nsnap = count_snapshots(m);
    if (nsnap < 0) {
        set_err(err, errlen, "%s: family %s: its pattern's network differs in shape from its "
                "network", path, m->fam[-1 - nsnap].name);
        return MF_EINVAL;
    }
    wbuf_t w = {0};
    put(&w, MODEL_MAGIC, 8);
    put_u32(&w, MODEL_VERSION);
    put_u32(&w, 0);
    put_u64(&w, 0); /* payload length, known at the end */

    size_t at = begin_section(&w, TAG_VOCB);
    int nv = m->vocab ? mf_vocab_size(m->vocab) : 0;
    put_u32(&w, m->vocab ? (uint32_t)mf_vocab_count(m->vocab) : 0);
    for (int id = 0; id < nv; id++) {
        const char *name = mf_vocab_name(m->vocab, id);
        if (!name)
            continue;
        put_u32(&w, (uint32_t)id);
        put_u16(&w, (uint16_t)strlen(name));
        put(&w, name, strlen(name));
    }
    end_section(&w, at);

    at = begin_section(&w, TAG_OPTS);
    put_opts(&w, &m->opts);
    end_section(&w, at);

    at = begin_section(&w, TAG_PREP);
    put_u32(&w, (uint32_t)m->prep.fold);
    put_u64(&w, m->prep.max_len);
    end_section(&w, at);

    at = begin_section(&w, TAG_FAMS);
    put_u32(&w, (uint32_t)m->nfam);
    for (int i = 0; i < m->nfam; i++) {
        const mf_family_t *f = &m->fam[i];
        put_u16(&w, (uint16_t)strlen(f->name));
        put(&w, f->name, strlen(f->name));
        put_u64(&w, f->tokens);
        put_f64(&w, f->loss);
        put_f64(&w, f->entropy);
        put_u32(&w, f->lstm != NULL);
        if (f->lstm)
            put_lstm(&w, f->lstm);
        put_ids(&w, &f->pattern);
    }
    end_section(&w, at);

    at = begin_section(&w, TAG_REFS);
    put_u64(&w, m->nrefs);
    for (size_t i = 0; i < m->nrefs; i++) {
        put_i32(&w, m->ref_label[i]);
        put_ids(&w, &m->refs[i]);
    }
    end_section(&w, at);
    size_t refs_at = at + 8, refs_end = w.n; /* the REFS bytes the classifier belongs to */

    at = begin_section(&w, TAG_PARM);
    put_u32(&w, (uint32_t)m->nparams);
    for (int i = 0; i < m->nparams; i++) {
        put(&w, m->params[i].name, sizeof m->params[i].name);
        put_f64(&w, m->params[i].value);
    }
    end_section(&w, at);

    if (nsnap > 0) { /* none: the file is byte for byte what older builds write */
        at = begin_section(&w, TAG_SNAP);
        put_snapshots(&w, m, nsnap);
        end_section(&w, at);
    }

    if (m->lin && m->nrefs > 0 && !w.err) {
        uint32_t refs_crc = crc_bytes(w.p + refs_at, refs_end - refs_at);
        /* pad so that LINR's weights start on a 4 KiB boundary of the file (the loader maps
         * them): after this section's and LINR's headers, LINR's 48-byte head, keys and idf */
        size_t before = w.n + 16 + 16 + 48 + mf_linear_nfeatures(m->lin) * 12;
        at = begin_section(&w, TAG_ALGN);
        static const uint8_t zero[WEIGHTS_ALIGN];
        put(&w, zero, (WEIGHTS_ALIGN - before % WEIGHTS_ALIGN) % WEIGHTS_ALIGN);
        end_section(&w, at);
        at = begin_section(&w, TAG_LINR);
        put_linear(&w, m->lin, refs_crc);
        end_section(&w, at);
        mf_model_nov_t *nov = NULL;
        if (mf__nov_build(m, &nov) != MF_OK)
            w.err = 1;
        if (nov) {
            at = begin_section(&w, TAG_NOVI);
            put_nov(&w, nov, refs_crc);
            end_section(&w, at);
            if (nov->view[0].off && nov->view[1].off) {
                at = begin_section(&w, TAG_NOVK);
                put_novk(&w, nov, refs_crc);
                end_section(&w, at);
            }
            mf_model_nov_free(nov);
        }
    }

    if (w.err) {
        mf__free(w.p);
        set_err(err, errlen, "%s: building the model file", path);
        return MF_ENOMEM;
    }
    uint64_t payload = w.n - HEADER_LEN;
    memcpy(w.p + 16, &payload, sizeof payload);
    uint32_t crc = crc_bytes(w.p, w.n);
    put_u32(&w, crc);
    if (w.err) {
        mf__free(w.p);
        set_err(err, errlen, "%s: building the model file", path);
        return MF_ENOMEM;
    }
    *out = w.p;
    *len = w.n;
    return MF_OK;
}

int mf_model_save(mf_model_t *m, const char *path, char *err, size_t errlen)
{
    uint8_t *bytes;
    size_t nbytes;
    int rc = mf_model_encode(m, path, &bytes, &nbytes, err, errlen);
    if (rc != MF_OK)
        return rc;
    /* write a temporary file beside the target, then rename: a reader never sees half a model */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        mf__free(bytes);
        set_err(err, errlen, "%s: path too long", path);
        return MF_EINVAL;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        set_err(err, errlen, "%s: %s", tmp, strerror(errno));
        mf__free(bytes);
        return MF_EIO;
    }
    uint32_t crc; /* the file's id, its last 4 bytes */
    memcpy(&crc, bytes + nbytes - 4, sizeof crc);
    size_t wr = fwrite(bytes, 1, nbytes, f);
    int bad = wr != nbytes;
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    mf__free(bytes);
    if (bad || rename(tmp, path) != 0) {
        if (!bad)
            e = errno;
        set_err(err, errlen, "%s: %s", bad ? tmp : path, strerror(e));
        unlink(tmp);
        return MF_EIO;
    }
    snprintf(m->version, sizeof m->version, "%08x", crc);
    return MF_OK;
}

/* ---- reading ----------------------------------------------------------------------------- */

/* A section read through a window of the file, never whole (REFS is 82 MB at 500 x 50,000,
 * and a reload would hold it beside the running model): p[off..n) are the window's unparsed
 * bytes, `rest` the section's bytes not yet read, from `at` on. Every byte read goes into *crc
 * (the loader's second checksum) and sec_crc (the section's own: REFS's identifies the
 * references a classifier belongs to). */
typedef struct {
    const uint8_t *p;
    size_t n, off;
    int bad; /* sticky: a read went past the section's end, or the file failed (err) */
    int err; /* MF_EIO or MF_ENOMEM when reading the file failed, else 0 */
    int fd;
    uint64_t at, rest;
    uint8_t *buf;
    size_t cap;
    uint32_t *crc, sec_crc;
} rbuf_t;

enum { WINDOW = 1 << 20 };

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    for (size_t got = 0; got < len;) {
        ssize_t k = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}


/* len more bytes of the section straight from the file into dst (NULL: into the window,
 * which then holds them alone). 0, or -1 (r->err set). */
static int fill(rbuf_t *r, uint8_t *dst, size_t len)
{
    const int window = !dst;
    if (window) {
        if (!r->buf) {
            r->cap = r->rest < WINDOW ? (size_t)r->rest : WINDOW;
            r->buf = mf__malloc(r->cap ? r->cap : 1);
            if (!r->buf) {
                r->err = MF_ENOMEM;
                return -1;
            }
        }
        dst = r->buf;
        r->p = r->buf;
        r->n = r->off = 0;
    }
    if (pread_full(r->fd, dst, len, r->at) != 0) {
        r->err = MF_EIO;
        return -1;
    }
    *r->crc = crc_more(*r->crc, dst, len);
    r->sec_crc = crc_more(r->sec_crc, dst, len);
    r->at += len;
    r->rest -= len;
    if (window)
        r->n = len;
    return 0;
}

/* The next len bytes of the section into dst (NULL: skipped, still read and checksummed). */
static int get(rbuf_t *r, void *dst, size_t len)
{
    if (r->bad || len > r->n - r->off + r->rest) {
        r->bad = 1;
        if (dst)
            memset(dst, 0, len);
        return -1;
    }
    uint8_t *d = dst;
    const size_t want = len;
    while (len > 0) {
        size_t k = r->n - r->off;
        if (k == 0 && dst && len >= WINDOW) { /* a big array: read in place */
            if (fill(r, d, len) != 0)
                break;
            return 0;
        }
        if (k == 0) {
            if (fill(r, NULL, r->rest < WINDOW ? (size_t)r->rest : WINDOW) != 0)
                break;
            continue;
        }
        if (k > len)
            k = len;
        if (d) {
            memcpy(d, r->p + r->off, k);
            d += k;
        }
        r->off += k;
        len -= k;
    }
    if (len > 0) { /* the file failed (r->err) */
        r->bad = 1;
        if (dst)
            memset(dst, 0, want);
        return -1;
    }
    return 0;
}

static uint16_t get_u16(rbuf_t *r) { uint16_t v; get(r, &v, sizeof v); return v; }
static uint32_t get_u32(rbuf_t *r) { uint32_t v; get(r, &v, sizeof v); return v; }
static int32_t get_i32(rbuf_t *r) { int32_t v; get(r, &v, sizeof v); return v; }
static uint64_t get_u64(rbuf_t *r) { uint64_t v; get(r, &v, sizeof v); return v; }
static float get_f32(rbuf_t *r) { float v; get(r, &v, sizeof v); return v; }
static double get_f64(rbuf_t *r) { double v; get(r, &v, sizeof v); return v; }

/* The section's bytes not parsed yet. */
static uint64_t left(const rbuf_t *r)
{
    return r->bad ? 0 : r->n - r->off + r->rest;
}

/* Read a u64-counted id array into t, each id checked against nvocab. */
static int get_ids(rbuf_t *r, mf_trace_t *t, int nvocab, const char *what, char *err,
                   size_t errlen)
{
    uint64_t n = get_u64(r);
    if (r->bad || n > left(r) / sizeof(int32_t)) {
        set_err(err, errlen, "%s: length %llu exceeds the file", what, (unsigned long long)n);
        return MF_EFORMAT;
    }
    mf_trace_init(t);
    if (n == 0)
        return MF_OK;
    t->ids = mf__malloc((size_t)n * sizeof *t->ids);
    if (!t->ids)
        return MF_ENOMEM;
    t->n = t->cap = (size_t)n;
    get(r, t->ids, (size_t)n * sizeof *t->ids);
    for (size_t i = 0; i < t->n; i++)
        if (t->ids[i] < 0 || t->ids[i] >= nvocab) {
            set_err(err, errlen, "%s: id %d outside the vocabulary", what, (int)t->ids[i]);
            return MF_EFORMAT;
        }
    return MF_OK;
}

static void get_dims(rbuf_t *r, mf_lstm_dims_t *d)
{
    d->nvocab = get_i32(r);
    d->nembed = get_i32(r);
    d->nhidden = get_i32(r);
    d->ndense = get_i32(r);
}

static int read_vocab(rbuf_t *r, mf_model_t *m, char *err, size_t errlen)
{
    uint32_t count = get_u32(r);
    if (count > MF_MAX_VOCAB || count > left(r) / 6) {
        set_err(err, errlen, "vocabulary: bad count %u", count);
        return MF_EFORMAT;
    }
    m->vocab = mf_vocab_new();
    if (!m->vocab)
        return MF_ENOMEM;
    char name[MF_MAX_API_LEN + 1];
    for (uint32_t i = 0; i < count; i++) {
        uint32_t id = get_u32(r);
        uint16_t len = get_u16(r);
        if (r->bad || len == 0 || len > MF_MAX_API_LEN || len > left(r) || id >= MF_MAX_VOCAB) {
            set_err(err, errlen, "vocabulary: bad entry %u", i);
            return MF_EFORMAT;
        }
        get(r, name, len);
        int rc = mf_vocab_put(m->vocab, name, len, (int)id);
        if (rc == MF_ENOMEM)
            return rc;
        if (rc != MF_OK) {
            set_err(err, errlen, "vocabulary: entry %u (id %u) is a duplicate or invalid", i, id);
            return MF_EFORMAT;
        }
    }
    return MF_OK;
}

static int read_opts(rbuf_t *r, mf_model_t *m, char *err, size_t errlen)
{
    mf_train_opts_t *o = &m->opts;
    /* an optional field is absent when the section ends before it (older files); sizeof of
     * the getter's call is its field's size (sizeof does not evaluate the call) */
#define X(type, io, name, dflt, ok, message, optional, absent) \
    o->name = optional && left(r) < sizeof get_##io(r) ? (type)(absent) : (type)get_##io(r);
    MF_TRAIN_OPTS(X)
#undef X
    char msg[128];
    if (r->bad || mf_train_opts_check(o, msg, sizeof msg) != MF_OK) {
        set_err(err, errlen, "training options: %s", r->bad ? "truncated" : msg);
        return MF_EFORMAT;
    }
    return MF_OK;
}

static int read_families(rbuf_t *r, mf_model_t *m, int nvocab, int nets, char *err,
                         size_t errlen)
{
    uint32_t nfam = get_u32(r);
    if (r->bad || nfam > MF_MAX_FAMILIES || nfam > left(r) / 30) {
        set_err(err, errlen, "families: bad count %u", nfam);
        return MF_EFORMAT;
    }
    m->fam = mf__calloc(nfam ? nfam : 1, sizeof *m->fam);
    if (!m->fam)
        return MF_ENOMEM;
    char name[MF_MAX_FAMILY_NAME + 1];
    for (uint32_t i = 0; i < nfam; i++) {
        mf_family_t *f = &m->fam[i];
        uint16_t len = get_u16(r);
        if (r->bad || len == 0 || len > MF_MAX_FAMILY_NAME || len > left(r)) {
            set_err(err, errlen, "family %u: bad name length", i);
            return MF_EFORMAT;
        }
        get(r, name, len);
        if (memchr(name, '\0', len)) {
            set_err(err, errlen, "family %u: NUL in name", i);
            return MF_EFORMAT;
        }
        f->name = mf__strndup(name, len);
        if (!f->name)
            return MF_ENOMEM;
        m->nfam = (int)i + 1; /* from here on mf_model_free cleans this family up */
        if (mf_model_find_family(m, f->name) != (int)i) {
            set_err(err, errlen, "family %u: duplicate name %s", i, f->name);
            return MF_EFORMAT;
        }
        f->tokens = (size_t)get_u64(r);
        f->loss = get_f64(r);
        f->entropy = get_f64(r);
        uint32_t has = get_u32(r);
        if (r->bad || has > 1) {
            set_err(err, errlen, "family %s: bad header", f->name);
            return MF_EFORMAT;
        }
        if (has) {
            mf_lstm_dims_t d;
            get_dims(r, &d);
            if (r->bad || mf_lstm_dims_check(&d) != MF_OK || d.nvocab != nvocab) {
                set_err(err, errlen, "family %s: bad network dimensions", f->name);
                return MF_EFORMAT;
            }
            size_t np = mf_lstm_nparams(&d);
            if (np > left(r) / sizeof(float)) {
                set_err(err, errlen, "family %s: weights exceed the file", f->name);
                return MF_EFORMAT;
            }
            if (nets) {
                f->lstm = mf_lstm_new(&d);
                if (!f->lstm)
                    return MF_ENOMEM;
                get(r, f->lstm->w, np * sizeof(float));
            } else { /* the shape alone: mf_model_read_nets fills w when a mode needs it */
                f->lstm = mf__calloc(1, sizeof *f->lstm);
                if (!f->lstm)
                    return MF_ENOMEM;
                f->lstm->d = d;
                f->lstm->nparams = np;
                get(r, NULL, np * sizeof(float));
            }
        }
        char what[96];
        snprintf(what, sizeof what, "family %s pattern", f->name);
        int rc = get_ids(r, &f->pattern, nvocab, what, err, errlen);
        if (rc != MF_OK)
            return rc;
    }
    return MF_OK;
}

/* SNAP: each entry must name a family (ascending, so once each) whose own network has the
 * same shape; families already passed the dimension and vocabulary checks. */
static int read_snapshots(rbuf_t *r, mf_model_t *m, char *err, size_t errlen)
{
    uint32_t n = get_u32(r);
    if (r->bad || n > (uint32_t)m->nfam || n > left(r) / 20) {
        set_err(err, errlen, "snapshots: bad count %u", n);
        return MF_EFORMAT;
    }
    int64_t prev = -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t fi = get_u32(r);
        mf_lstm_dims_t d;
        get_dims(r, &d);
        if (r->bad || fi >= (uint32_t)m->nfam || (int64_t)fi <= prev) {
            set_err(err, errlen, "snapshot %u: bad family index %u", i, fi);
            return MF_EFORMAT;
        }
        prev = (int64_t)fi;
        mf_family_t *f = &m->fam[fi];
        if (!f->lstm || !same_dims(&d, &f->lstm->d)) {
            set_err(err, errlen, "family %s: snapshot network differs in shape from its "
                    "network", f->name);
            return MF_EFORMAT;
        }
        if (f->lstm->nparams > left(r) / sizeof(float)) {
            set_err(err, errlen, "family %s: snapshot weights exceed the file", f->name);
            return MF_EFORMAT;
        }
        f->gen_lstm = mf_lstm_new(&d);
        if (!f->gen_lstm)
            return MF_ENOMEM;
        get(r, f->gen_lstm->w, f->gen_lstm->nparams * sizeof(float));
    }
    return MF_OK;
}

/* REFS; without `keep` each trace is checked as usual but only its API set stays (ref_api). */
static int read_refs(rbuf_t *r, mf_model_t *m, int nvocab, int keep, char *err, size_t errlen)
{
    uint64_t n = get_u64(r);
    if (r->bad || n > left(r) / 12) {
        set_err(err, errlen, "references: bad count %llu", (unsigned long long)n);
        return MF_EFORMAT;
    }
    if (n == 0)
        return MF_OK;
    const size_t nw = (size_t)mf_bits_words(nvocab);
    m->ref_label = mf__calloc((size_t)n, sizeof *m->ref_label);
    if (keep)
        m->refs = mf__calloc((size_t)n, sizeof *m->refs);
    else
        m->ref_api = mf__calloc((size_t)n * nw, sizeof *m->ref_api);
    if (!m->ref_label || (keep ? !m->refs : !m->ref_api))
        return MF_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        m->ref_label[i] = get_i32(r);
        if (r->bad || m->ref_label[i] < 0 || m->ref_label[i] >= m->nfam) {
            set_err(err, errlen, "reference %zu: bad family", i);
            return MF_EFORMAT;
        }
        m->nrefs = i + 1;
        mf_trace_t t;
        mf_trace_init(&t);
        int rc = get_ids(r, keep ? &m->refs[i] : &t, nvocab, "reference", err, errlen);
        if (!keep && rc == MF_OK)
            mf_bits_fill(m->ref_api + i * nw, (int)nw, t.ids, t.n);
        mf_trace_destroy(&t);
        if (rc != MF_OK)
            return rc;
    }
    return MF_OK;
}

static int read_params(rbuf_t *r, mf_model_t *m, char *err, size_t errlen)
{
    uint32_t n = get_u32(r);
    size_t rec = sizeof m->params[0].name + 8;
    if (r->bad || n > MF_MAX_PARAMS || n > left(r) / rec) {
        set_err(err, errlen, "parameters: bad count %u", n);
        return MF_EFORMAT;
    }
    for (uint32_t i = 0; i < n; i++) {
        char name[sizeof m->params[0].name];
        get(r, name, sizeof name);
        double v = get_f64(r);
        if (r->bad || name[sizeof name - 1] != '\0' || name[0] == '\0') {
            set_err(err, errlen, "parameter %u: bad name", i);
            return MF_EFORMAT;
        }
        int rc = mf_model_set_param(m, name, v);
        if (rc != MF_OK)
            return rc == MF_ENOMEM ? rc : MF_EFORMAT;
    }
    return MF_OK;
}

/* Where a section's bulk bytes come from when they are not in its buffer: len bytes of fd at
 * off, added to *crc as they are read (the loader's second checksum). */
typedef struct {
    int fd;
    uint64_t off, len;
    uint64_t tail; /* bytes after them that belong to the section (LINR's optional tf) */
    uint32_t *crc;
    int map;       /* MF_LOAD_MAP: mapped when aligned, else read */
} direct_t;



/* CRC-32 of len bytes of fd at off added to *crc, read 1 MB at a time. 0 or -1 (read). */
static int crc_range(int fd, uint64_t off, uint64_t len, uint32_t *crc)
{
    enum { CHUNK = 1 << 20 };
    uint8_t *b = mf__malloc(CHUNK);
    if (!b)
        return -2;
    int rc = 0;
    for (uint64_t at = 0; at < len && rc == 0; at += CHUNK) {
        size_t k = len - at < CHUNK ? (size_t)(len - at) : CHUNK;
        rc = pread_full(fd, b, k, off + at);
        if (rc == 0)
            *crc = crc_more(*crc, b, k);
    }
    mf__free(b);
    return rc;
}

/* LINR's head (48 bytes), keys and idf go through the section buffer; its weights (and the
 * optional tf) are read or mapped in place. From the head at byte at of a len-byte section,
 * set d's off, len and tail to where the weights are. MF_OK, MF_EFORMAT (sizes that do not
 * add up to len) or MF_EIO. */
static int linear_split(int fd, uint64_t at, uint64_t len, direct_t *d)
{
    uint8_t lh[48];
    uint32_t ncl;
    uint64_t nf;
    if (len < sizeof lh)
        return MF_EFORMAT;
    if (pread_full(fd, lh, sizeof lh, at) != 0)
        return MF_EIO;
    memcpy(&ncl, lh + 4, 4);  /* after the REFS checksum */
    memcpy(&nf, lh + 36, 8);  /* after crc, nclass, hi, c, min_df, balanced, proto */
    uint64_t keys = nf < len / 12 ? nf * 12 : len; /* u64 key + f32 idf per feature */
    if (keys > len - sizeof lh || ncl == 0)
        return MF_EFORMAT;
    uint64_t rest = len - sizeof lh - keys; /* weights [+ tf] */
    if (nf + 1 > rest / sizeof(float) / ncl)
        return MF_EFORMAT;
    uint64_t wb = (nf + 1) * (uint64_t)ncl * sizeof(float);
    if (rest - wb != 0 && rest - wb != sizeof(int32_t))
        return MF_EFORMAT;
    d->off = at + sizeof lh + keys;
    d->len = wb;
    d->tail = rest - wb;
    return MF_OK;
}

/* LINR (layout at the top): the classifier, kept only when it was fitted on these very
 * references (refs_crc: CRC-32 of this file's REFS bytes) for these families. r holds the
 * head, keys and idf; d says where the weights (and the optional tf) are in the file. */
static int read_linear(rbuf_t *r, mf_model_t *m, uint32_t refs_crc, const direct_t *d,
                       char *err, size_t errlen)
{
    uint32_t crc = get_u32(r);
    uint32_t nclass = get_u32(r);
    mf_linear_opts_t o = {0};
    o.hi = get_i32(r);
    o.c = get_f64(r);
    o.min_df = get_i32(r);
    o.balanced = get_i32(r);
    o.proto = get_f64(r);
    uint64_t nf = get_u64(r);
    uint32_t enc = get_u32(r);
    if (r->bad || nclass != (uint32_t)m->nfam || nclass == 0 || enc != 0 ||
        nf * 12 != left(r) || (nf + 1) * (uint64_t)nclass * sizeof(float) != d->len) {
        set_err(err, errlen, "linear classifier: bad header or sizes");
        return MF_EFORMAT;
    }
    /* the optional tf after the weights (absent: written before it, sublinear) */
    int32_t tf = 0;
    if (d->tail >= sizeof tf) {
        if (pread_full(d->fd, &tf, sizeof tf, d->off + d->len) != 0) {
            set_err(err, errlen, "linear classifier: cannot read its options");
            return MF_EIO;
        }
        o.tf = tf;
    }
    /* with MF_LOAD_MAP, weights that start on a page of the file (the writer's ALGN section
     * sees to it) are mapped, not copied: a reload holds no second copy, and only the pages
     * of features reports use become resident */
    size_t nw = (size_t)(nf + 1) * nclass, wlen = nw * sizeof(float);
    void *map = NULL;
    if (d->map && d->off % (uint64_t)sysconf(_SC_PAGESIZE) == 0) {
        map = mmap(NULL, wlen, PROT_READ, MAP_PRIVATE, d->fd, (off_t)d->off);
        if (map == MAP_FAILED)
            map = NULL; /* a file system that cannot map: read them as below */
    }
    mf_linear_t *l;
    mf_linear_parts_t p;
    int rc = map ? mf_linear_alloc_mapped(&l, &o, (int)nclass, (size_t)nf, map, wlen, &p)
                 : mf_linear_alloc(&l, &o, (int)nclass, (size_t)nf, &p);
    if (rc != MF_OK && map)
        munmap(map, wlen);
    if (rc == MF_EINVAL) {
        set_err(err, errlen, "linear classifier: bad options");
        return MF_EFORMAT;
    }
    if (rc != MF_OK)
        return rc;
    get(r, p.dk, p.nf * sizeof *p.dk);
    get(r, p.idf, p.nf * sizeof *p.idf);
    if (r->bad || (!map && pread_full(d->fd, p.w, wlen, d->off) != 0)) {
        set_err(err, errlen, "linear classifier: cannot read its weights");
        mf_linear_free(l);
        return MF_EIO;
    }
    rc = MF_OK;
    for (size_t i = 0; i < p.nf && rc == MF_OK; i++)
        if ((i > 0 && p.dk[i] <= p.dk[i - 1]) || !isfinite(p.idf[i]))
            rc = MF_EFORMAT;
    /* the weights a chunk at a time: finite, and into the checksum in file order (then the
     * tf read above); a mapped chunk leaves memory once checked */
    for (size_t at = 0; at < nw && rc == MF_OK; at += WINDOW / sizeof(float)) {
        size_t k = nw - at < WINDOW / sizeof(float) ? nw - at : WINDOW / sizeof(float);
        for (size_t i = at; i < at + k && rc == MF_OK; i++)
            if (!isfinite(p.w[i]))
                rc = MF_EFORMAT;
        *d->crc = crc_more(*d->crc, (const uint8_t *)(p.w + at), k * sizeof(float));
        if (map)
            madvise(p.w + at, k * sizeof(float), MADV_DONTNEED);
    }
    if (d->tail >= sizeof tf)
        *d->crc = crc_more(*d->crc, (const uint8_t *)&tf, sizeof tf);
    if (rc != MF_OK) {
        set_err(err, errlen, "linear classifier: unsorted keys or non-finite values");
        mf_linear_free(l);
        return rc;
    }
    if (crc != refs_crc) { /* fitted on other references: scorers fit their own */
        mf_linear_free(l);
        return MF_OK;
    }
    m->lin = l;
    return MF_OK;
}

/* NOVI (layout at the top): kept only when it belongs to these very references. */
static int read_nov(rbuf_t *r, mf_model_t *m, uint32_t refs_crc, char *err, size_t errlen)
{
    mf_model_nov_t *v = mf__calloc(1, sizeof *v);
    if (!v)
        return MF_ENOMEM;
    uint32_t crc = get_u32(r);
    v->refs_crc = crc;
    v->combo_hi = get_i32(r);
    v->np = get_i32(r);
    uint64_t nkept = get_u64(r), nproto = get_u64(r);
    int rc = MF_OK;
    if (r->bad || v->combo_hi < 1 || v->combo_hi > 8 || v->np < 1 || v->np > 1000 ||
        nkept == 0 || nkept > m->nrefs || nproto == 0 || nproto > nkept ||
        nproto > left(r) / sizeof(uint64_t)) {
        set_err(err, errlen, "novelty index: bad header or sizes");
        rc = MF_EFORMAT;
        goto out;
    }
    v->nkept = (size_t)nkept;
    v->nproto = (size_t)nproto;
    v->proto = mf__malloc(v->nproto * sizeof *v->proto);
    if (!v->proto) {
        rc = MF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < v->nproto && rc == MF_OK; i++) {
        uint64_t x = get_u64(r);
        if (r->bad || x >= m->nrefs || (i > 0 && x <= v->proto[i - 1]))
            rc = MF_EFORMAT;
        v->proto[i] = (size_t)x;
    }
    for (int k = 0; k < 2 && rc == MF_OK; k++) {
        v->view[k].unseen = get_f32(r);
        uint64_t nd = get_u64(r);
        if (r->bad || !isfinite(v->view[k].unseen) ||
            nd > left(r) / (sizeof(uint64_t) + sizeof(float))) {
            rc = MF_EFORMAT;
            break;
        }
        v->view[k].nd = (size_t)nd;
        v->view[k].dk = mf__malloc(v->view[k].nd * sizeof *v->view[k].dk);
        v->view[k].dw = mf__malloc(v->view[k].nd * sizeof *v->view[k].dw);
        if (!v->view[k].dk || !v->view[k].dw) {
            rc = MF_ENOMEM;
            break;
        }
        get(r, v->view[k].dk, v->view[k].nd * sizeof *v->view[k].dk);
        get(r, v->view[k].dw, v->view[k].nd * sizeof *v->view[k].dw);
        for (size_t i = 0; i < v->view[k].nd && rc == MF_OK; i++)
            if (r->bad || (i > 0 && v->view[k].dk[i] <= v->view[k].dk[i - 1]) ||
                !isfinite(v->view[k].dw[i]))
                rc = MF_EFORMAT;
    }
    if (rc == MF_EFORMAT)
        set_err(err, errlen, "novelty index: bad prototypes or idf table");
    if (rc == MF_OK && crc == refs_crc) { /* else built from other references: dropped */
        m->nov = v;
        v = NULL;
    }
out:
    mf_model_nov_free(v);
    return rc;
}

/* NOVK (layout at the top): read into m->nov when NOVI was kept and it is for the same
 * references; every offset and position checked, so a scorer can index with them. */
static int read_novk(rbuf_t *r, mf_model_t *m, uint32_t refs_crc, char *err, size_t errlen)
{
    mf_model_nov_t *v = m->nov;
    uint32_t crc = get_u32(r);
    if (!v || crc != refs_crc) { /* no index to go with, or built from other references */
        get(r, NULL, left(r));
        return MF_OK;
    }
    int rc = MF_OK;
    uint32_t *off[2] = {NULL, NULL}, *pos[2] = {NULL, NULL};
    for (int k = 0; k < 2 && rc == MF_OK; k++) {
        size_t nd = v->view[k].nd;
        uint64_t total = get_u64(r);
        if (r->bad || nd + 1 > left(r) / sizeof(uint32_t) || total >= UINT32_MAX ||
            total > (left(r) - (nd + 1) * sizeof(uint32_t)) / sizeof(uint32_t)) {
            rc = MF_EFORMAT;
            break;
        }
        off[k] = mf__malloc((nd + 1) * sizeof *off[k]);
        pos[k] = mf__malloc((total ? total : 1) * sizeof *pos[k]);
        if (!off[k] || !pos[k]) {
            rc = MF_ENOMEM;
            break;
        }
        get(r, off[k], (nd + 1) * sizeof *off[k]);
        get(r, pos[k], total * sizeof *pos[k]);
        if (r->bad || off[k][0] != 0 || off[k][nd] != total)
            rc = MF_EFORMAT;
        for (size_t t = 0; t < nd && rc == MF_OK; t++) {
            if (off[k][t + 1] < off[k][t])
                rc = MF_EFORMAT;
            for (uint32_t e = off[k][t]; e < off[k][t + 1] && rc == MF_OK; e++)
                if (pos[k][e] >= v->nproto || (e > off[k][t] && pos[k][e] <= pos[k][e - 1]))
                    rc = MF_EFORMAT;
        }
    }
    if (rc == MF_OK) {
        for (int k = 0; k < 2; k++) {
            v->view[k].off = off[k];
            v->view[k].pos = pos[k];
        }
        return MF_OK;
    }
    for (int k = 0; k < 2; k++) {
        mf__free(off[k]);
        mf__free(pos[k]);
    }
    if (rc == MF_EFORMAT)
        set_err(err, errlen, "novelty key index: bad offsets or positions");
    return rc;
}

/* The known sections in file order (bit k of a section mask is order[k]); the first
 * NREQUIRED are in every file. */
enum { NREQUIRED = 6, NKNOWN = 10, K_NOVK = 9 };
static const uint32_t order[NKNOWN] = {TAG_VOCB, TAG_OPTS, TAG_PREP, TAG_FAMS, TAG_REFS,
                                       TAG_PARM, TAG_SNAP, TAG_LINR, TAG_NOVI, TAG_NOVK};

/* Parse the payload sections of the file on fd (n bytes, layout and checksum verified), each
 * through a 1 MB window (rbuf_t; never a whole section: REFS is 82 MB at 500 x 50,000), LINR's
 * weights mapped or read straight into the classifier, skipped sections (unknown, SNAP
 * without nets) only checksummed. *crc gets the CRC-32 of every byte read, so that the caller
 * can tell a file changed since its check. */
static int parse(int fd, size_t n, mf_model_t *m, int flags, uint32_t *crc, char *err,
                 size_t errlen)
{
    const int nets = (flags & MF_LOAD_NETS) != 0;
    uint8_t head[HEADER_LEN];
    *crc = (uint32_t)crc32(0L, Z_NULL, 0);
    if (pread_full(fd, head, sizeof head, 0) != 0) {
        set_err(err, errlen, "cannot read the header");
        return MF_EIO;
    }
    *crc = crc_more(*crc, head, sizeof head);
    size_t off = HEADER_LEN;
    uint32_t seen = 0;
    int nvocab = 0;
    uint32_t refs_crc = 0;
    while (n - off > 4) { /* the last 4 bytes are the checksum */
        uint8_t sh[16];
        uint32_t tag;
        uint64_t len;
        /* a header that eats into the checksum: test the room first, or the subtraction
         * wraps and any length passes */
        if (n - off < 4 + sizeof sh || pread_full(fd, sh, sizeof sh, off) != 0) {
            set_err(err, errlen, "section at byte %zu: length exceeds the file", off);
            return MF_EFORMAT;
        }
        *crc = crc_more(*crc, sh, sizeof sh);
        off += sizeof sh;
        memcpy(&tag, sh, 4);
        memcpy(&len, sh + 8, 8);
        if (len > n - off - 4) {
            set_err(err, errlen, "section at byte %zu: length exceeds the file", off);
            return MF_EFORMAT;
        }
        const size_t at = off;
        off += (size_t)len;
        int k = -1;
        for (int i = 0; i < NKNOWN; i++)
            if (order[i] == tag)
                k = i;
        if (k >= 0 && (seen >> k)) {
            set_err(err, errlen, "section %d repeated or out of order", k);
            return MF_EFORMAT;
        }
        if (k < 0 || (k == 6 && !nets) || (k >= 7 && (flags & LOAD_BARE))) {
            /* a later minor revision's, SNAP not wanted (mf_model_read_nets reads the file
             * again), or what a bare load leaves out */
            int cr = crc_range(fd, at, len, crc);
            if (cr != 0) {
                set_err(err, errlen, "cannot read section at byte %zu", at);
                return cr == -2 ? MF_ENOMEM : MF_EIO;
            }
            if (k >= 0)
                seen |= 1u << k;
            continue;
        }
        seen |= 1u << k;
        /* LINR: its head, keys and idf into the buffer, the weights straight into place */
        direct_t d = {fd, 0, 0, 0, crc, (flags & MF_LOAD_MAP) != 0}, *dp = NULL;
        size_t blen = (size_t)len;
        if (k == 7) {
            int lr = linear_split(fd, at, len, &d);
            if (lr == MF_EIO) {
                set_err(err, errlen, "cannot read section at byte %zu", at);
                return MF_EIO;
            }
            if (lr == MF_OK) {
                blen = (size_t)(d.off - at);
                dp = &d;
            }
        }
        if (k == 7 && !dp) {
            set_err(err, errlen, "linear classifier: bad header or sizes");
            return MF_EFORMAT;
        }
        rbuf_t s = {.fd = fd, .at = at, .rest = blen, .crc = crc};
        s.sec_crc = (uint32_t)crc32(0L, Z_NULL, 0);
        int rc;
        switch (k) {
        case 0:
            rc = read_vocab(&s, m, err, errlen);
            nvocab = mf_vocab_size(m->vocab);
            break;
        case 1:
            rc = read_opts(&s, m, err, errlen);
            break;
        case 2:
            m->prep.fold = (int)get_u32(&s);
            m->prep.max_len = (size_t)get_u64(&s);
            rc = s.bad || m->prep.fold > 1 ? MF_EFORMAT : MF_OK;
            if (rc)
                set_err(err, errlen, "preprocessing section is bad");
            break;
        case 3:
            rc = read_families(&s, m, nvocab, nets, err, errlen);
            break;
        case 4:
            rc = read_refs(&s, m, nvocab, (flags & MF_LOAD_REFS) != 0, err, errlen);
            refs_crc = m->ref_crc = s.sec_crc;
            break;
        case 5:
            rc = read_params(&s, m, err, errlen);
            break;
        case 6:
            rc = read_snapshots(&s, m, err, errlen);
            break;
        case 7:
            rc = read_linear(&s, m, refs_crc, dp, err, errlen);
            break;
        case 8:
            rc = read_nov(&s, m, refs_crc, err, errlen);
            break;
        default:
            rc = read_novk(&s, m, refs_crc, err, errlen);
            break;
        }
        uint64_t over = left(&s);
        mf__free(s.buf);
        if (s.err) { /* the file failed under the parser, which saw a short section */
            set_err(err, errlen, s.err == MF_ENOMEM ? "out of memory"
                                                    : "cannot read section at byte %zu", at);
            return s.err;
        }
        if (rc != MF_OK)
            return rc;
        if (over) {
            set_err(err, errlen, "section %d: %llu bytes left over", k, (unsigned long long)over);
            return MF_EFORMAT;
        }
    }
    uint32_t required = (1u << NREQUIRED) - 1;
    if (off != n - 4 || (seen & required) != required) {
        set_err(err, errlen, "missing sections (have mask %#x)", seen);
        return MF_EFORMAT;
    }
    return MF_OK;
}

/* Header and section sizes from a few small reads, before the payload is read: a foreign,
 * truncated or padded file (even a huge sparse one) is refused without reading it all.
 * *tags gets bit k set for each section of `order` (parse) seen (unchecked: parse checks). */
static int check_layout(int fd, size_t n, const char *path, uint32_t *tags, char *err,
                        size_t errlen)
{
    uint8_t h[HEADER_LEN];
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
        set_err(err, errlen, "%s: cannot read the header", path);
        return MF_EIO;
    }
    uint32_t version;
    uint64_t payload;
    memcpy(&version, h + 8, 4);
    memcpy(&payload, h + 16, 8);
    if (memcmp(h, MODEL_MAGIC, 8) != 0) {
        set_err(err, errlen, "%s: not a malfam model (bad magic)", path);
        return MF_EFORMAT;
    }
    if (version != MODEL_VERSION) {
        set_err(err, errlen, "%s: model format version %u, this build reads %u", path, version,
                MODEL_VERSION);
        return MF_EVERSION;
    }
    if (payload != n - HEADER_LEN - 4) {
        set_err(err, errlen, "%s: truncated or padded (header says %llu payload bytes, file has "
                "%zu)", path, (unsigned long long)payload, n - HEADER_LEN - 4);
        return MF_EFORMAT;
    }
    /* the section chain must end exactly at the checksum; past 64 sections parse() checks */
    uint64_t off = HEADER_LEN;
    for (int i = 0; i < 64 && off < n - 4; i++) {
        uint8_t sh[16];
        uint64_t len;
        if (n - 4 - off < sizeof sh || pread(fd, sh, sizeof sh, (off_t)off) != (ssize_t)sizeof sh) {
            set_err(err, errlen, "%s: section header at byte %llu exceeds the file", path,
                    (unsigned long long)off);
            return MF_EFORMAT;
        }
        memcpy(&len, sh + 8, 8);
        uint32_t tag;
        memcpy(&tag, sh, 4);
        for (int k = 0; k < NKNOWN; k++)
            if (order[k] == tag)
                *tags |= 1u << k;
        if (len > n - 4 - off - sizeof sh) {
            set_err(err, errlen, "%s: section at byte %llu: length %llu exceeds the file", path,
                    (unsigned long long)off, (unsigned long long)len);
            return MF_EFORMAT;
        }
        off += sizeof sh + len;
    }
    return MF_OK;
}

int mf_model_load(mf_model_t **out, const char *path, char *err, size_t errlen)
{
    return mf_model_load_ex(out, path, MF_LOAD_NETS | MF_LOAD_REFS, err, errlen);
}

/* Open a model file and check what can be checked without reading the payload: a regular
 * file of a model's size, header, section chain (check_layout). *fd open on MF_OK only. */
static int open_model(const char *path, int *fd_out, size_t *n_out, uint32_t *tags, char *err,
                      size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    /* O_NONBLOCK: opening a FIFO without a writer must not hang; only regular files pass */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return MF_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return MF_EIO;
    }
    if (st.st_size < HEADER_LEN + 4 || (uint64_t)st.st_size > MAX_FILE) {
        set_err(err, errlen, "%s: %lld bytes is not a model file size", path,
                (long long)st.st_size);
        close(fd);
        return MF_EFORMAT;
    }
    *tags = 0;
    int rc = check_layout(fd, (size_t)st.st_size, path, tags, err, errlen);
    if (rc != MF_OK) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    *n_out = (size_t)st.st_size;
    return MF_OK;
}

int mf_model_file_id(const char *path, char *id, size_t idlen, char *err, size_t errlen)
{
    int fd;
    size_t n;
    uint32_t tags, crc;
    int rc = open_model(path, &fd, &n, &tags, err, errlen);
    if (rc != MF_OK)
        return rc;
    if (pread_full(fd, &crc, sizeof crc, n - 4) != 0) {
        set_err(err, errlen, "%s: cannot read the checksum", path);
        rc = MF_EIO;
    } else {
        snprintf(id, idlen, "%08x", crc); /* as a load names it (m->version) */
    }
    close(fd);
    return rc;
}

/* mf_model_load_ex; warn: say so on stderr when the file has no fitted classifier (not when
 * reading again what a lighter load skipped). */
static int load(mf_model_t **out, const char *path, int flags, int warn, char *err,
                size_t errlen)
{
    *out = NULL;
    int fd;
    size_t n;
    uint32_t tags;
    int rc = open_model(path, &fd, &n, &tags, err, errlen);
    if (rc != MF_OK)
        return rc;
    /* without the novelty key index no scorer that reads the references' labels and API sets
     * alone would serve linear: keep the traces rather than read the file twice */
    if (!(tags >> K_NOVK & 1))
        flags |= MF_LOAD_REFS;
    /* the checksum first, streamed (nothing is parsed from a file that fails it), then the
     * sections one at a time, checksummed again as they are read: a file rewritten in place
     * meanwhile fails instead of loading a mix */
    uint32_t crc_file = 0, crc = (uint32_t)crc32(0L, Z_NULL, 0);
    int cr = crc_range(fd, 0, n - 4, &crc);
    if (cr != 0 || pread_full(fd, &crc_file, 4, n - 4) != 0) {
        if (cr == -2) {
            rc = MF_ENOMEM;
        } else {
            set_err(err, errlen, "%s: short read", path);
            rc = MF_EIO;
        }
    } else if (crc != crc_file) {
        set_err(err, errlen, "%s: checksum %08x, file says %08x (corrupt)", path, crc,
                crc_file);
        rc = MF_ECHECKSUM;
    }
    mf_model_t *m = NULL;
    if (rc == MF_OK) {
        m = mf_model_new();
        if (!m)
            rc = MF_ENOMEM;
    }
    if (rc == MF_OK) {
        char detail[200] = "";
        uint32_t again = 0;
        rc = parse(fd, n, m, flags, &again, detail, sizeof detail);
        if (rc == MF_OK && again != crc_file) {
            snprintf(detail, sizeof detail, "the file changed while it was read");
            rc = MF_ECHECKSUM;
        }
        if (rc == MF_OK && m->lin && m->refs) /* else mf_model_read_refs does */
            rc = mf_linear_set_refs(m->lin, m->refs, m->ref_label, NULL, m->nrefs);
        if (rc == MF_ENOMEM)
            set_err(err, errlen, "%s: out of memory", path);
        else if (rc != MF_OK)
            set_err(err, errlen, "%s: %s", path, detail);
    }
    close(fd);
    if (rc != MF_OK) {
        mf_model_free(m);
        return rc;
    }
    if (warn && !m->lin && m->nrefs > 0) /* the one line the brief of issue 16 asks for */
        fprintf(stderr, "malfam: %s: warning: no fitted linear classifier in this file (an older "
                "build or no calibration): every load fits it; retrain to load faster\n", path);
    snprintf(m->version, sizeof m->version, "%08x", crc_file);
    *out = m;
    return MF_OK;
}

int mf_model_load_ex(mf_model_t **out, const char *path, int flags, char *err, size_t errlen)
{
    return load(out, path, flags, 1, err, errlen);
}
