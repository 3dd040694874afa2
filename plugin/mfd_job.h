/* mfd_job.h - the work malfamd does off the loop: loading models, classifying reports.
 *
 * Everything here runs on a libuv pool thread and touches no libuv handle, so it can be unit
 * tested without a loop. A loaded model is shared read-only by all threads and counted:
 * each request takes a reference when it starts and drops it when its answer is built, so a
 * reload never frees a model that a request is still scoring with.
 */
#ifndef MF_MFD_JOB_H
#define MF_MFD_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "mf.h"
#include "mfd_config.h"
#include "mfd_file.h"
#include "model.h"
#include "score.h"
#include "trace.h"
#include "util_proto.h"

/* ---- models ------------------------------------------------------------------------------ */

typedef struct mfd_model {
    mf_model_t *m;
    mf_scorer_t *s;
    int refs;             /* atomic */
    int mode;             /* the mode it serves: the configured one, else mf_score_pick_default */
    char path[4096];
} mfd_model_t;

/* Load `path`, build its scorer and check it offers `mode` (refs = 1); mode -1 (no mode
 * configured) picks the model's default (mf_score_pick_default) into md->mode. MF_OK or the
 * loader's error with detail in err (MF_EINVAL: the model cannot serve `mode`); a bad model
 * never replaces a good one. */
int mfd_model_load(mfd_model_t **out, const char *path, int mode, char *err, size_t errlen);
mfd_model_t *mfd_model_ref(mfd_model_t *m);
void mfd_model_unref(mfd_model_t *m); /* frees at zero; NULL is a no-op */

/* Scoring settings resolved from the config for one model. MF_OK or MF_EINVAL (mode). */
typedef struct mfd_scoring {
    int mode;             /* -1: not configured, each model serves its default (model->mode) */
    int top;
    double threshold;     /* NaN = the model's own */
    mf_repeat_mode repeat;
} mfd_scoring_t;

int mfd_scoring_init(mfd_scoring_t *sc, const mfd_config_t *c, char *err, size_t errlen);

/* ---- classification ---------------------------------------------------------------------- */

/* Streaming state of one classification: the extractor, the trace being built, and (for
 * write-back) the top-level scan. Fed from a file or from a socket stream. */
typedef struct mfd_classify {
    mfd_model_t *model;   /* a reference, dropped by mfd_classify_destroy */
    mfd_scoring_t sc;
    int top;
    int mode;
    mf_extract_t *ex;
    mf_trace_t trace;
    int fold;
    size_t max_len;
    int keep_parsing;     /* the whole report must be read (write-back validates it) */
    int want_scan;        /* run the write-back scan on the same bytes */
    mfd_wb_scan_t scan;
    uint64_t bytes, max_bytes;
    int rc;               /* first error, sticky */
    char err[512];
    /* results, after mfd_classify_finish */
    mfu_buf_t value;      /* the "malfam" object: {"families":[...],...} */
    char family[128];     /* best family for the log, "" when none */
    size_t calls;
    int stale_removed;    /* stale temp files of an earlier, killed write-back removed */
} mfd_classify_t;

/* `model` gets a new reference. `mode_name` "" = sc's mode; top 0 = sc's. MF_OK, MF_EINVAL
 * (unknown mode), MF_ENOMEM. */
int mfd_classify_init(mfd_classify_t *c, mfd_model_t *model, const mfd_scoring_t *sc,
                      const char *mode_name, int top, uint64_t max_bytes, int want_scan);
/* Feed report bytes; errors are sticky in c->rc / c->err. */
int mfd_classify_feed(mfd_classify_t *c, const void *buf, size_t len);
/* End of input: finish the parse and score. Fills value, family, calls. */
int mfd_classify_finish(mfd_classify_t *c);
void mfd_classify_destroy(mfd_classify_t *c);

/* Classify a report file (plain or gzip) under the roots, and with `write_back` label it.
 * The whole thing, as a pool thread runs it. Result in c (initialised by this call). */
int mfd_classify_path(mfd_classify_t *c, const mfd_config_t *cfg, mfd_model_t *model,
                      const mfd_scoring_t *sc, const mfu_req_t *req);

/* After a successful mfd_classify_finish of a stream (classify_stream with write_back):
 * store c's answer in the report file at `path`, which is opened under the roots, scanned
 * (plain JSON only) and rewritten exactly as mfd_classify_path's write-back does. The file's
 * own calls are not read. Errors go to c->rc / c->err. */
int mfd_classify_write_back(mfd_classify_t *c, const mfd_config_t *cfg, const char *path);

/* The success answer line for c: {"v":1,"id":..,"ok":true,<value fields>,"ms":..}\n */
void mfd_classify_answer(const mfd_classify_t *c, const char *id, double ms, mfu_buf_t *out);

#endif
