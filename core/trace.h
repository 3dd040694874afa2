/* trace.h - API-call traces and the streaming extractor for Cuckoo / CAPE report.json.
 *
 * The extractor is an opaque handle fed a report (plain, gzip or zlib) in chunks of any size:
 *     mf_extract_new -> mf_extract_feed ... -> mf_extract_finish -> mf_extract_free
 * It never builds a tree: each call is handed to a callback as soon as its API name is seen,
 * so memory stays constant whatever the report size. Layouts understood:
 *   Cuckoo 2.0.x  behavior.processes[].{pid, process_name, calls[].api}
 *   CAPEv2, 1.2   behavior.processes[].{process_id, process_name, calls[].{api, repeated}}
 *   bare          {"processes": [...]} (a behavior object on its own, as the Cuckoo module sends)
 * A report with no behavior section is a valid report with an empty trace.
 * When asked (opts.want_meta), the same single pass also captures the few fields that label a
 * report: target hashes, CAPE's detections and malfamily_tag, signature families
 * (mf_report_meta_t, mf_extract_meta).
 */
#ifndef MF_TRACE_H
#define MF_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "mf.h"
#include "vocab.h"

/* ---- traces ------------------------------------------------------------------------------ */

/* A flat API-id sequence (processes concatenated in report order). Caller-embedded.
 * Ids are >= 0: calls with names outside the vocabulary are dropped and counted instead. */
typedef struct mf_trace {
    int32_t *ids;
    size_t n, cap;
} mf_trace_t;

void mf_trace_init(mf_trace_t *t);
void mf_trace_destroy(mf_trace_t *t);               /* frees ids, leaves t empty */
int mf_trace_push(mf_trace_t *t, int32_t id);        /* MF_OK or MF_ENOMEM */
/* A deep copy of src into dst (initialised, its old ids freed). MF_OK or MF_ENOMEM (dst left
 * empty). */
int mf_trace_copy(mf_trace_t *dst, const mf_trace_t *src);

/* ---- preprocessing ----------------------------------------------------------------------- */

/* The one preprocessing of a trace, stored in the model and applied the same way by training,
 * scoring, evaluation and the daemon. A call is kept when its API is in the vocabulary, when
 * it does not repeat the last kept call (if `fold`), and while fewer than `max_len` calls are
 * kept (0 = no cap besides MF_MAX_TRACE). So out-of-vocabulary calls never count toward the
 * cap, and a run A UNK A folds to A. */
typedef struct mf_prep {
    int fold;       /* collapse runs of the same call */
    size_t max_len; /* keep the first max_len calls after folding (0 = all) */
} mf_prep_t;

/* The default cap (max_len) of new models, `malfam train` and eval's in-memory model: chosen by
 * CV on both train splits (docs/results.md, "the trace cap"); a model keeps its own. */
#define MF_PREP_MAX_LEN 5000

/* Append call `id` (MF_UNK for an unknown API) to t as `p` says (p NULL: keep every known
 * call). Returns MF_OK, MF_PREP_FULL when t now holds all the calls it can take (the caller
 * may stop reading), or MF_ENOMEM. */
#define MF_PREP_FULL 1
int mf_prep_push(const mf_prep_t *p, mf_trace_t *t, int32_t id);

/* The same rule over a whole trace, in place (never allocates): the result equals pushing
 * t's ids one by one into an empty trace. */
void mf_trace_prep(mf_trace_t *t, const mf_prep_t *p);

/* ---- extraction -------------------------------------------------------------------------- */

typedef enum {
    MF_REPEAT_ASIS = 0, /* one call per entry as the report lists it */
    MF_REPEAT_EXPAND,   /* an entry with "repeated": r stands for 1 + r calls */
    MF_REPEAT_FOLD      /* consecutive calls of the same API in a process become one */
} mf_repeat_mode;

typedef struct mf_extract_opts {
    mf_repeat_mode repeat;
    size_t max_calls;   /* stop parsing after this many calls are emitted (0 = no cap);
                           reaching it sets stats.truncated, it is not an error */
    int grow_vocab;     /* add unknown API names to the vocabulary instead of MF_UNK */
    uint64_t max_bytes; /* JSON bytes parsed, counted after decompression (0 = no limit);
                           beyond it MF_ELIMIT */
    int read_all;       /* a trace extractor (mf_extract_new_trace) parses to the end even
                           once its trace is full, so the whole report is validated */
    int want_meta;      /* also capture the label fields (mf_report_meta_t). They may come
                           after behavior, so the parse then never stops early: once calls
                           would stop (max_calls, a callback, a full trace) later calls and
                           processes are skipped unseen, so the trace, callbacks and stats are
                           those without want_meta (but for bytes, raw_bytes, analysis_id),
                           and the rest is read for the label fields */
} mf_extract_opts_t;

void mf_extract_opts_default(mf_extract_opts_t *o); /* ASIS, no caps, no growth */

/* Extractor options that read a report the way `p` wants it: CAPE's "repeated" expanded (a
 * folded trace is the same either way), no call cap (the trace's own cap stops the parse). */
void mf_prep_extract_opts(const mf_prep_t *p, mf_extract_opts_t *o);

/* One emitted call. `api` is the lower-cased name, NUL-terminated, borrowed: valid only
 * during the callback. `id` is its vocabulary id or MF_UNK. */
typedef struct mf_call {
    const char *api;
    size_t api_len;
    int id;
    uint32_t proc;     /* 0-based index of the process in report order */
    uint32_t repeated; /* the entry's "repeated" field (0 when absent) */
} mf_call_t;

/* A process, reported when its object closes (its keys may come in any order, so pid and
 * name are only known then). `name` is borrowed like mf_call_t.api; "" when absent. */
typedef struct mf_proc {
    uint32_t index;
    int64_t pid; /* -1 when absent */
    const char *name;
    size_t ncalls; /* calls emitted for it */
} mf_proc_t;

/* Callbacks return 0 to go on, non-zero to stop the parse (then stats.truncated is set and
 * later feeds are accepted and ignored). Either may be NULL. */
typedef struct mf_extract_cbs {
    int (*on_call)(void *ud, const mf_call_t *c);
    int (*on_proc)(void *ud, const mf_proc_t *p);
} mf_extract_cbs_t;

/* How the report bytes were encoded; detected from the first two bytes fed. */
typedef enum {
    MF_ENC_UNKNOWN = 0, /* nothing fed yet */
    MF_ENC_PLAIN,       /* JSON text */
    MF_ENC_GZIP,        /* gzip, one member or several concatenated */
    MF_ENC_ZLIB         /* a zlib stream */
} mf_encoding;

typedef struct mf_extract_stats {
    size_t processes;   /* process objects seen */
    size_t entries;     /* call entries as listed in the report */
    size_t calls;       /* calls emitted (after expand/fold/cap) */
    size_t distinct;    /* distinct API names among emitted calls */
    size_t unknown;     /* emitted calls whose name was not in the vocabulary */
    uint64_t bytes;     /* JSON bytes parsed (after decompression) */
    uint64_t raw_bytes; /* bytes fed (before decompression) */
    int encoding;       /* mf_encoding */
    int64_t analysis_id;/* info.id, -1 when absent or not yet seen */
    size_t noapi;       /* call entries without an "api" string, skipped */
    int truncated;      /* stopped early (max_calls or a callback) */
    int has_behavior;   /* a behavior/processes section was found */
} mf_extract_stats_t;

/* ---- label fields ------------------------------------------------------------------------ */

/* How a report wrote its top-level "detections". */
typedef enum {
    MF_DET_NONE = 0, /* absent or null */
    MF_DET_STRING,   /* a plain string: CAPE 2.2-era, "detections": "QakBot" */
    MF_DET_LIST,     /* CAPE >= 2.3: [{"family": ..., "details": [{"<by>": ...}]}, ...] */
    MF_DET_OTHER     /* any other type (number, object, bool): ignored */
} mf_det_kind;

/* A family name as the report wrote it (cut to MF_MAX_META_NAME bytes, NUL-terminated; cut
 * at an embedded NUL) and how many detection entries / signatures named it. Names that
 * differ only in ASCII case are one entry, spelt as first seen. */
typedef struct mf_meta_family {
    char name[MF_MAX_META_NAME + 1];
    uint32_t count;
} mf_meta_family_t;

/* The label fields of one report, captured by an extractor made with opts.want_meta. Every
 * field is bounded; a field of the wrong type is ignored, never an error (a report's label
 * is advisory, its trace is what the extractor checks). */
typedef struct mf_report_meta {
    char md5[33];      /* target.file.md5, lower-case hex; "" when absent or not 32 hex digits */
    char sha256[65];   /* target.file.sha256, likewise with 64 */
    int det_kind;      /* mf_det_kind of "detections" */
    mf_meta_family_t det[MF_MAX_META_FAMILIES]; /* detection families, first-seen order:
                                                   det[0] is the first entry's (or the string) */
    size_t ndet;
    size_t det_entries; /* entries with a family string (also those past the cap) */
    char det_by[MF_MAX_META_NAME + 1]; /* the first key of the first entry's details
                                          ("Yara", "Behavior"); "" when none */
    char tag[MF_MAX_META_NAME + 1];    /* top-level "malfamily_tag" ("" when absent) */
    mf_meta_family_t sig[MF_MAX_META_FAMILIES]; /* signatures[].families: each counted once
                                                   per signature naming it */
    size_t nsig;
    size_t sig_entries; /* signatures with at least one family */
    size_t dropped;     /* family names not kept: not a string, empty, or past
                           MF_MAX_META_FAMILIES distinct names; detection entries that are
                           not objects */
} mf_report_meta_t;

typedef struct mf_extract mf_extract_t;

/* A new extractor. `vocab` is used for ids (and grown when opts->grow_vocab); it must outlive
 * the extractor and is not freed by it. `opts` NULL = defaults; `cbs` is copied.
 * NULL on allocation failure. */
mf_extract_t *mf_extract_new(const mf_extract_opts_t *opts, mf_vocab_t *vocab,
                             const mf_extract_cbs_t *cbs, void *ud);

/* An extractor that builds the preprocessed trace of the report into `out` (appended to; it
 * must outlive the extractor): each call goes through mf_prep_push(prep, out, id), unknown
 * APIs are dropped there and counted in stats.unknown, and parsing stops once out is full
 * (stats.truncated) unless opts->read_all. `prep` is copied; NULL keeps every known call.
 * This is the one way every program turns a report into the trace it scores or trains on.
 * NULL on allocation failure. */
mf_extract_t *mf_extract_new_trace(const mf_extract_opts_t *opts, const mf_prep_t *prep,
                                   mf_vocab_t *vocab, mf_trace_t *out);

/* Feed the next `len` bytes of the report: plain JSON, gzip (every member of a multi-member
 * file) or zlib, detected from the first two bytes, in chunks of any size. MF_OK, or MF_EJSON
 * / MF_ETYPE / MF_ELIMIT / MF_EFORMAT (bad compressed data) / MF_ENOMEM with detail in
 * mf_extract_errmsg() (it names the byte offset). After an error every later call returns
 * the same error. */
int mf_extract_feed(mf_extract_t *ex, const void *buf, size_t len);

/* End of input: MF_OK, or MF_EJSON for truncated / empty JSON, MF_EFORMAT for a compressed
 * stream cut inside a member. */
int mf_extract_finish(mf_extract_t *ex);

/* Detail of the last error ("byte 1234: ..."); "" when none. Owned by the extractor. */
const char *mf_extract_errmsg(const mf_extract_t *ex);

/* The label fields seen so far (complete after mf_extract_finish), or NULL when the extractor
 * was not made with opts.want_meta. Valid until mf_extract_free. */
const mf_report_meta_t *mf_extract_meta(const mf_extract_t *ex);

/* Counters so far; valid until mf_extract_free. */
const mf_extract_stats_t *mf_extract_stats(const mf_extract_t *ex);

void mf_extract_free(mf_extract_t *ex); /* NULL is a no-op */

/* Feed everything readable from `fd` in 64 KiB reads and finish. Stops reading when the
 * extractor stops (cap or callback). Errors as mf_extract_feed/finish, and MF_EIO (read
 * failed); the detail is in mf_extract_errmsg(). The fd is not closed. */
int mf_extract_fd(mf_extract_t *ex, int fd);

/* Read a report file into `out` through mf_extract_new_trace(opts, prep, vocab, out): the one
 * way a program reads a report file. `opts` NULL = mf_prep_extract_opts(prep). `stats`,
 * `meta` (the label fields, read in the same pass: opts.want_meta) and `err` may be NULL.
 * Errors as mf_extract_fd, with the detail (or strerror) in err. */
int mf_extract_file(const char *path, const mf_extract_opts_t *opts, const mf_prep_t *prep,
                    mf_vocab_t *vocab, mf_trace_t *out, mf_extract_stats_t *stats,
                    mf_report_meta_t *meta, char *err, size_t errlen);

#endif
