/* job.c - model references and classification, run on pool threads. */
#include "private.h"

#include "linear.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1 << 16)

/* ---- models ------------------------------------------------------------------------------ */

/* A mode that runs the families' networks, on a model loaded without them. */
static int needs_nets(const mf_model_t *m, int mode)
{
    return (mode == MF_MODE_LIKELIHOOD || mode == MF_MODE_FUSION) && !mf_model_has_nets(m);
}

/* What a load skipped (the networks, or with refs the reference traces) from the file
 * loaded (its open descriptor), whatever the path names now. */
static int read_skipped(mfd_model_t *md, int refs, char *err, size_t errlen)
{
    char fdpath[MFD_FD_PATH_LEN];
    mfd_fd_path(md->fd, fdpath);
    int rc = refs ? mf_model_read_refs(md->m, fdpath, err, errlen)
                  : mf_model_read_nets(md->m, fdpath, err, errlen);
    if (rc != MF_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s (the %s of %s): %s", md->path,
                 refs ? "reference traces" : "networks", md->m->version, why);
    }
    return rc;
}

/* The networks and reference traces the scorer of `mode` needs and a light load skipped. */
static int read_needed(mfd_model_t *md, int mode, char *err, size_t errlen)
{
    int rc = needs_nets(md->m, mode) ? read_skipped(md, 0, err, errlen) : MF_OK;
    if (rc == MF_OK && mf_score_needs_refs(md->m, mode))
        rc = read_skipped(md, 1, err, errlen);
    return rc;
}

/* err names the file as `path` where the loader named it by its descriptor `fdpath` */
static void name_file(char *err, size_t errlen, const char *fdpath, const char *path)
{
    size_t k = strlen(fdpath);
    if (strncmp(err, fdpath, k) != 0)
        return;
    char rest[512];
    snprintf(rest, sizeof rest, "%s", err + k);
    snprintf(err, errlen, "%s%s", path, rest);
}

int mfd_model_load(mfd_model_t **out, const char *path, int mode, char *err, size_t errlen)
{
    return mfd_model_load_ex(out, path, mode, 1, err, errlen);
}

int mfd_model_load_ex(mfd_model_t **out, const char *path, int mode, int map, char *err,
                      size_t errlen)
{
    *out = NULL;
    uint64_t t0 = uv_hrtime();
    mfd_model_t *md = calloc(1, sizeof *md);
    if (!md) {
        snprintf(err, errlen, "out of memory");
        return MF_ENOMEM;
    }
    snprintf(md->path, sizeof md->path, "%s", path);
    md->fd = -1;
    /* only a regular file: a FIFO would hang the load (and the reload with it) until someone
     * writes, a device could be read forever. O_NONBLOCK: opening a FIFO does not wait. */
    int rc = MF_OK;
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = MF_EIO;
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path); /* as mf_model_load says */
        rc = MF_EIO;
    }
    /* kept open: networks read later come from this file even when a new model was renamed
     * over the path meanwhile (a rollout renames, then reloads) */
    md->fd = fd;
    if (rc != MF_OK)
        goto fail;
    /* the linear weights stay a mapping of the file (MF_LOAD_MAP) only under a read lease:
     * the kernel then tells us (SIGIO, server.c) before anyone opens the file for writing or
     * truncates it, and holds them off until we let go, time to copy the weights in. Without
     * one (neither the file's owner nor CAP_LEASE, or the file open for writing) they are
     * copied now. */
    const char *no_lease = "not asked";
    if (map) {
        md->leased = fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
        if (!md->leased)
            no_lease = strerror(errno);
    }
    /* the file of this descriptor, whatever the path names by now */
    char fdpath[MFD_FD_PATH_LEN];
    mfd_fd_path(fd, fdpath);
    /* the networks only when the served mode needs them (likelihood, fusion); a request in
     * such a mode reads them later (mfd_model_scorer) */
    int nets = mode == MF_MODE_LIKELIHOOD || mode == MF_MODE_FUSION; /* configured: now */
    /* the reference traces likewise: not for linear off the file's index (mf_score_needs_refs
     * says after the load), nor nn and the pattern and LSTM modes (labels and API sets) */
    int refs = mode == MF_MODE_KNN || mode == MF_MODE_COMBO || mode == MF_MODE_FUSION;
    rc = mf_model_load_ex(&md->m, fdpath,
                          (nets ? MF_LOAD_NETS : 0) | (refs ? MF_LOAD_REFS : 0) |
                              (md->leased ? MF_LOAD_MAP : 0),
                          err, errlen);
    if (rc != MF_OK) {
        name_file(err, errlen, fdpath, path);
        goto fail;
    }
    if (md->leased && !mf_linear_mapped(md->m->lin)) {
        /* nothing mapped (a file written before its weights were aligned, or no classifier
         * in it): the lease would only make writers wait */
        fcntl(fd, F_SETLEASE, F_UNLCK);
        md->leased = 0;
        no_lease = "no aligned weights in the file";
    }
    if (md->m->nfam <= 0 || !md->m->vocab) {
        snprintf(err, errlen, "%s: model has no families", path);
        rc = MF_EFORMAT;
        goto fail;
    }
    /* only the served mode's parts now; another mode's on the first request that names it */
    md->mode = mode >= 0 ? mode : mf_score_pick_default(md->m);
    rc = read_needed(md, md->mode, err, errlen);
    if (rc != MF_OK)
        goto fail;
    unsigned long fits0 = mf_linear_fit_count();
    md->s = mf_scorer_new_mode(md->m, NULL, md->mode);
    if (!md->s) {
        snprintf(err, errlen, "cannot build scorer: out of memory");
        rc = MF_ENOMEM;
        goto fail;
    }
    md->ms[md->mode] = md->s;
    md->fits = mf_linear_fit_count() - fits0; /* other threads' fits too: a reload is alone */
    /* building the scorer frees far more than it keeps (n-gram key sets, the SVM's training
     * vectors): give that heap back (glibc), else it stays in the daemon's RSS (74 MB for a
     * full-length model) */
    malloc_trim(0);
    if (!mf_score_mode_available(md->s, md->mode)) {
        snprintf(err, errlen, "%s: mode %s %s needs what this model lacks (%s)", path,
                 mf_score_mode_name(md->mode), mode >= 0 ? "(configured)" : "(default)",
                 md->mode == MF_MODE_LIKELIHOOD || md->mode == MF_MODE_FUSION
                     ? "an LSTM per family"
                 : md->mode == MF_MODE_PAPER || md->mode == MF_MODE_MULTISET ||
                         md->mode == MF_MODE_NGRAM
                     ? "a pattern per family"
                     : "training references");
        rc = MF_EINVAL;
        goto fail;
    }
    if (uv_mutex_init(&md->lock) != 0) {
        snprintf(err, errlen, "cannot build scorer: no mutex");
        rc = MF_ENOMEM;
        goto fail;
    }
    md->refs = 1;
    md->load_ms = (double)(uv_hrtime() - t0) / 1e6;
    mfd_log(MF_LOG_INFO, "model %s: read and built mode %s in %.0f ms (SVM fits: %lu); linear "
            "weights %s%s%s", path, mf_score_mode_name(md->mode), md->load_ms, md->fits,
            md->leased ? "mapped (read lease held)" : "copied (not mapped: ",
            md->leased ? "" : no_lease, md->leased ? "" : ")");
    *out = md;
    return MF_OK;
fail:
    if (md->fd >= 0)
        close(md->fd);
    mf_scorer_free(md->s);
    if (md->m)
        mf_model_free(md->m);
    free(md);
    return rc;
}

int mfd_model_scorer(mfd_model_t *md, int mode, const mf_scorer_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (mode < 0 || mode >= MF_NMODES) {
        snprintf(err, errlen, "no mode %d", mode);
        return MF_EINVAL;
    }
    mf_scorer_t *s = __atomic_load_n(&md->ms[mode], __ATOMIC_ACQUIRE);
    int rc = MF_OK;
    if (!s) {
        /* one build at a time per model: a second request for the same mode waits, takes it */
        uv_mutex_lock(&md->lock);
        s = md->ms[mode];
        if (!s) {
            uint64_t t0 = uv_hrtime();
            /* nothing reads the networks or the traces meanwhile: only builds (under this
             * lock) look at them, and no scorer of a mode that reads them exists before they
             * are in (the scorers built have their own API sets) */
            rc = read_needed(md, mode, err, errlen);
            if (rc == MF_OK && !(s = mf_scorer_new_mode(md->m, NULL, mode))) {
                snprintf(err, errlen, "out of memory");
                rc = MF_ENOMEM;
            }
            if (s) {
                __atomic_store_n(&md->ms[mode], s, __ATOMIC_RELEASE);
                mfd_log(MF_LOG_INFO, "model %s: mode %s built on first use in %.0f ms", md->path,
                        mf_score_mode_name(mode), (double)(uv_hrtime() - t0) / 1e6);
            }
        }
        uv_mutex_unlock(&md->lock);
    }
    *out = s;
    return rc;
}

mfd_model_t *mfd_model_ref(mfd_model_t *m)
{
    if (m)
        __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

void mfd_model_unref(mfd_model_t *m)
{
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (int i = 0; i < MF_NMODES; i++)
        mf_scorer_free(m->ms[i]); /* m->s among them */
    uv_mutex_destroy(&m->lock);
    close(m->fd);
    mf_model_free(m->m);
    free(m);
}

int mfd_scoring_init(mfd_scoring_t *sc, const mfd_config_t *c, char *err, size_t errlen)
{
    sc->mode = c->mode[0] ? mf_score_mode_parse(c->mode) : -1; /* -1: the model's default */
    if (c->mode[0] && sc->mode < 0) {
        snprintf(err, errlen, "mode: unknown scoring mode \"%s\"", c->mode);
        return MF_EINVAL;
    }
    sc->top = c->top;
    sc->threshold = c->unknown_threshold;
    return MF_OK;
}

/* ---- classification ---------------------------------------------------------------------- */

static int set_err(mfd_classify_t *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(mfd_classify_t *c, int rc, const char *fmt, ...)
{
    if (c->rc == MF_OK) {
        c->rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
    }
    return c->rc;
}

int mfd_classify_init(mfd_classify_t *c, mfd_model_t *model, const mfd_scoring_t *sc,
                      const char *mode_name, int top, uint64_t max_bytes, int want_scan)
{
    memset(c, 0, sizeof *c);
    mf_trace_init(&c->trace);
    c->model = mfd_model_ref(model);
    c->sc = *sc;
    c->opts.mode = sc->mode >= 0 ? sc->mode : model->mode;
    if (mode_name && *mode_name) {
        c->opts.mode = mf_score_mode_parse(mode_name);
        if (c->opts.mode < 0)
            return set_err(c, MF_EINVAL, "unknown mode \"%s\"", mode_name);
    }
    c->opts.top = top > 0 ? top : sc->top;
    if (c->opts.top > MF_MAX_TOP)
        c->opts.top = MF_MAX_TOP;
    c->opts.threshold = sc->threshold;
    c->want_scan = want_scan;
    mfd_wb_scan_init(&c->scan);
    /* the same reading as malfam score; the vocabulary is shared between threads: read-only */
    mf_extract_opts_t o;
    mf_prep_extract_opts(&model->m->prep, &o);
    o.max_bytes = max_bytes;
    c->ex = mf_extract_new_trace(&o, &model->m->prep, model->m->vocab, &c->trace);
    if (!c->ex)
        return set_err(c, MF_ENOMEM, "out of memory");
    return MF_OK;
}

int mfd_classify_feed(mfd_classify_t *c, const void *buf, size_t len)
{
    if (c->rc)
        return c->rc;
    c->bytes += len;
    /* once the trace is full the parse is over; write-back only scans the rest */
    const mf_extract_stats_t *st = mf_extract_stats(c->ex);
    if (!st->truncated) {
        int rc = mf_extract_feed(c->ex, buf, len);
        if (rc != MF_OK)
            return set_err(c, rc, "%s", mf_extract_errmsg(c->ex));
    }
    if (c->want_scan && c->max_scan && c->bytes > c->max_scan)
        return set_err(c, MF_ELIMIT, "write-back: report larger than max_write_back_bytes (%llu)",
                       (unsigned long long)c->max_scan);
    int enc = st->encoding;
    if (c->want_scan && enc != MF_ENC_UNKNOWN && enc != MF_ENC_PLAIN)
        return set_err(c, MF_EINVAL, "write_back on a compressed (%s) report is not supported",
                       enc == MF_ENC_GZIP ? "gzip" : "zlib");
    if (c->want_scan && mfd_wb_scan_feed(&c->scan, buf, len) != MF_OK)
        return set_err(c, c->scan.err, "write-back: %s", c->scan.errmsg);
    return MF_OK;
}

int mfd_classify_finish(mfd_classify_t *c)
{
    if (c->rc)
        return c->rc;
    int rc = mf_extract_finish(c->ex);
    if (rc != MF_OK)
        return set_err(c, rc, "%s", mf_extract_errmsg(c->ex));
    const mf_extract_stats_t *st = mf_extract_stats(c->ex);
    if (c->want_scan && mfd_wb_scan_finish(&c->scan) != MF_OK)
        return set_err(c, c->scan.err, "write-back: %s", c->scan.errmsg);
    const mf_model_t *m = c->model->m;
    mf_result_t res;
    mfp_buf_reset(&c->value);
    char why[512];
    const mf_scorer_t *s;
    rc = mfd_model_scorer(c->model, c->opts.mode, &s, why, sizeof why);
    if (rc != MF_OK)
        return set_err(c, rc, "mode %s: %s", mf_score_mode_name(c->opts.mode), why);
    rc = mfp_classify(s, m, &c->opts, &c->trace, st, &c->value, &res);
    if (rc != MF_OK)
        return set_err(c, rc, "scoring in mode %s failed", mf_score_mode_name(c->opts.mode));
    c->calls = c->trace.n;
    if (res.ntop > 0 && res.top[0].family >= 0 && res.top[0].family < m->nfam)
        snprintf(c->family, sizeof c->family, "%s", m->fam[res.top[0].family].name);
    if (c->value.oom)
        return set_err(c, MF_ENOMEM, "out of memory");
    return MF_OK;
}

void mfd_classify_destroy(mfd_classify_t *c)
{
    mf_extract_free(c->ex);
    mf_trace_destroy(&c->trace);
    mfp_buf_free(&c->value);
    mfd_model_unref(c->model);
    memset(c, 0, sizeof *c);
}

void mfd_classify_answer(const mfd_classify_t *c, const char *id, double ms, mfp_buf_t *out)
{
    mfp_answer_line(out, id, 1, c->value.p, c->value.n, ms);
}

/* Read the open file in CHUNK pieces and hand each to take(c, buf, n, ud) until the end, a
 * read error, or take returning non-zero (an error set in c, or enough read). c->rc. */
static int read_chunks(mfd_classify_t *c, const mfd_file_t *f, const char *what,
                       int (*take)(mfd_classify_t *c, const unsigned char *buf, size_t n,
                                   void *ud),
                       void *ud)
{
    unsigned char *in = malloc(CHUNK);
    if (!in)
        return set_err(c, MF_ENOMEM, "out of memory");
    for (;;) {
        ssize_t r = read(f->fd, in, CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_err(c, MF_EIO, "%sread: %s", what, strerror(errno));
            break;
        }
        if (r == 0 || take(c, in, (size_t)r, ud))
            break;
    }
    free(in);
    return c->rc;
}

/* The report into the classification; enough once the trace is full (unless the write-back
 * scan must see every byte: it goes on alone, up to max_write_back_bytes). */
static int take_report(mfd_classify_t *c, const unsigned char *buf, size_t n, void *ud)
{
    (void)ud;
    return mfd_classify_feed(c, buf, n) != MF_OK ||
           (mf_extract_stats(c->ex)->truncated && !c->want_scan);
}

/* Did the open file change (size, mtime) since it was opened? */
static int changed_since_open(const mfd_file_t *f)
{
    struct stat now;
    return fstat(f->fd, &now) < 0 || now.st_size != f->st.st_size ||
           now.st_mtim.tv_sec != f->st.st_mtim.tv_sec ||
           now.st_mtim.tv_nsec != f->st.st_mtim.tv_nsec;
}

/* The write-back both request kinds share: f was read to its end and `scan` saw all of it.
 * Refuse if the file moved meanwhile, clear stale temps of a killed write-back, then write
 * c's answer into the report atomically (mfd_wb_commit). */
static int write_back(mfd_classify_t *c, const mfd_file_t *f, const mfd_wb_scan_t *scan)
{
    char err[512];
    /* the file must not have moved under us between open and the end of the read */
    if (changed_since_open(f))
        return set_err(c, MF_ECANCELED, "the report changed while being read");
    c->stale_removed += mfd_wb_clean_stale(f);
    int rc = mfd_wb_commit(f, scan, c->value.p, c->value.n, err, sizeof err);
    if (rc != MF_OK)
        return set_err(c, rc, "write-back: %s", err);
    return MF_OK;
}

/* The write-back scan of a report whose calls are not read (classify_stream + write_back). */
typedef struct {
    mfd_wb_scan_t *scan;
    uint64_t total, max_bytes;
} scan_job_t;

static int take_scan(mfd_classify_t *c, const unsigned char *in, size_t n, void *ud)
{
    scan_job_t *j = ud;
    if (j->total == 0 && n >= 2 && in[0] == 0x1f && in[1] == 0x8b)
        return set_err(c, MF_EINVAL, "write_back on a compressed (gzip) report is not supported");
    j->total += n;
    if (j->max_bytes && j->total > j->max_bytes)
        return set_err(c, MF_ELIMIT, "write-back: report larger than max_write_back_bytes (%llu)",
                       (unsigned long long)j->max_bytes);
    return mfd_wb_scan_feed(j->scan, in, n) != MF_OK;
}

/* Scan the whole (plain) report for write-back only: no extraction. */
static int scan_report(mfd_classify_t *c, const mfd_file_t *f, uint64_t max_bytes,
                       mfd_wb_scan_t *scan)
{
    scan_job_t j = {scan, 0, max_bytes};
    if (read_chunks(c, f, "write-back: ", take_scan, &j) == MF_OK &&
        mfd_wb_scan_finish(scan) != MF_OK)
        set_err(c, scan->err, "write-back: %s", scan->errmsg);
    return c->rc;
}

int mfd_classify_write_back(mfd_classify_t *c, const mfd_config_t *cfg, const char *path,
                            const mfd_peer_t *peer)
{
    if (c->rc)
        return c->rc;
    mfd_file_t f;
    char err[512];
    int rc = mfd_file_open(&f, cfg->roots, cfg->nroots, path, err, sizeof err);
    if (rc == MF_OK)
        rc = mfd_wb_allowed(cfg, peer, &f.st, err, sizeof err);
    if (rc != MF_OK) {
        mfd_file_close(&f);
        return set_err(c, rc, "write-back: %s", err);
    }
    mfd_wb_scan_t scan;
    mfd_wb_scan_init(&scan);
    if (scan_report(c, &f, cfg->max_write_back_bytes, &scan) == MF_OK)
        write_back(c, &f, &scan);
    mfd_file_close(&f);
    return c->rc;
}

int mfd_classify_path(mfd_classify_t *c, const mfd_config_t *cfg, mfd_model_t *model,
                      const mfd_scoring_t *sc, const mfp_req_t *req, const mfd_peer_t *peer)
{
    if (mfd_classify_init(c, model, sc, req->mode, req->top, cfg->max_report_bytes,
                          req->write_back) != MF_OK)
        return c->rc;
    c->max_scan = cfg->max_write_back_bytes;
    mfd_file_t f;
    char err[512];
    int rc = mfd_file_open(&f, cfg->roots, cfg->nroots, req->path, err, sizeof err);
    if (rc != MF_OK)
        return set_err(c, rc, "%s", err);
    if (req->write_back && (rc = mfd_wb_allowed(cfg, peer, &f.st, err, sizeof err)) != MF_OK) {
        mfd_file_close(&f);
        return set_err(c, rc, "%s", err);
    }
    if (read_chunks(c, &f, "", take_report, NULL) == MF_OK && mfd_classify_finish(c) == MF_OK) {
        if (req->write_back)
            write_back(c, &f, &c->scan);
        else if (changed_since_open(&f))
            set_err(c, MF_ECANCELED, "the report changed while being read");
    }
    mfd_file_close(&f);
    return c->rc;
}
