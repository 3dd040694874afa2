/* trace.h - API-call traces and the streaming extractor for Cuckoo / CAPE report.json.
 *
 * The extractor is an opaque handle fed a report in chunks of any size:
 *     mf_extract_new -> mf_extract_feed ... -> mf_extract_finish -> mf_extract_free
 * It never builds a tree: each call is handed to a callback as soon as its API name is seen,
 * so memory stays constant whatever the report size. Layouts understood:
 *   Cuckoo 2.0.x  behavior.processes[].{pid, process_name, calls[].api}
 *   CAPEv2, 1.2   behavior.processes[].{process_id, process_name, calls[].{api, repeated}}
 *   bare          {"processes": [...]} (a behavior object on its own, as the Cuckoo module sends)
 * A report with no behavior section is a valid report with an empty trace.
 */
#ifndef MF_TRACE_H
#define MF_TRACE_H

#include <stddef.h>
#include <stdint.h>

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

/* Preprocessing: collapse runs of one id to a single call when `fold`, then keep the first
 * `max_len` calls (0 = all). In place; never allocates. */
void mf_trace_prep(mf_trace_t *t, int fold, size_t max_len);

/* ---- extraction -------------------------------------------------------------------------- */

typedef enum {
    MF_REPEAT_ASIS = 0, /* one call per entry as the report lists it */
    MF_REPEAT_EXPAND,   /* an entry with "repeated": r stands for 1 + r calls */
    MF_REPEAT_FOLD      /* consecutive calls of the same API in a process become one */
} mf_repeat_mode;

typedef struct mf_extract_opts {
    mf_repeat_mode repeat;
    size_t max_calls; /* stop parsing after this many calls are emitted (0 = no cap);
                         reaching it sets stats.truncated, it is not an error */
    int grow_vocab;   /* add unknown API names to the vocabulary instead of MF_UNK */
} mf_extract_opts_t;

void mf_extract_opts_default(mf_extract_opts_t *o); /* ASIS, no cap, no growth */

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

typedef struct mf_extract_stats {
    size_t processes;   /* process objects seen */
    size_t entries;     /* call entries as listed in the report */
    size_t calls;       /* calls emitted (after expand/fold/cap) */
    size_t distinct;    /* distinct API names among emitted calls */
    size_t unknown;     /* emitted calls whose name was not in the vocabulary */
    uint64_t bytes;     /* bytes fed */
    int64_t analysis_id;/* info.id, -1 when absent or not yet seen */
    size_t noapi;       /* call entries without an "api" string, skipped */
    int truncated;      /* stopped early (max_calls or a callback) */
    int has_behavior;   /* a behavior/processes section was found */
} mf_extract_stats_t;

typedef struct mf_extract mf_extract_t;

/* A new extractor. `vocab` is used for ids (and grown when opts->grow_vocab); it must outlive
 * the extractor and is not freed by it. `opts` NULL = defaults; `cbs` is copied.
 * NULL on allocation failure. */
mf_extract_t *mf_extract_new(const mf_extract_opts_t *opts, mf_vocab_t *vocab,
                             const mf_extract_cbs_t *cbs, void *ud);

/* Parse the next `len` bytes. MF_OK, or MF_EJSON / MF_ETYPE / MF_ELIMIT / MF_ENOMEM with
 * detail in mf_extract_errmsg() (it names the byte offset). After an error every later call
 * returns the same error. */
int mf_extract_feed(mf_extract_t *ex, const void *buf, size_t len);

/* End of input: MF_OK, or MF_EJSON for truncated / empty input. */
int mf_extract_finish(mf_extract_t *ex);

/* Detail of the last error ("byte 1234: ..."); "" when none. Owned by the extractor. */
const char *mf_extract_errmsg(const mf_extract_t *ex);

/* Counters so far; valid until mf_extract_free. */
const mf_extract_stats_t *mf_extract_stats(const mf_extract_t *ex);

void mf_extract_free(mf_extract_t *ex); /* NULL is a no-op */

/* Feed everything readable from `fd` (plain or gzip, detected from the first bytes) and
 * finish. Stops reading when the extractor stops (cap or callback). `max_bytes` (0 = none)
 * bounds the bytes read: beyond it, MF_ELIMIT. Errors as mf_extract_feed/finish, MF_EIO
 * (read failed), MF_EFORMAT (bad gzip data); the detail is in mf_extract_errmsg(). The fd
 * is not closed. */
int mf_extract_fd(mf_extract_t *ex, int fd, uint64_t max_bytes);

/* Read a report file (plain or gzip, by content) in 64 KiB chunks, appending its calls to
 * `out`. `stats` and `err` may be NULL. Errors as mf_extract_feed, plus MF_EIO. */
int mf_extract_file(const char *path, const mf_extract_opts_t *opts, mf_vocab_t *vocab,
                    mf_trace_t *out, mf_extract_stats_t *stats, char *err, size_t errlen);

#endif
