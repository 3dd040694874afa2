/* private.h - malfamd's cross-file internals: safe open and write-back (file.c),
 * classification jobs (job.c), the server state, connections and stats (server.c, conn.c).
 * Not for main, which sees malfamd.h only. (Named apart from core/internal.h, which tests
 * include too.)
 *
 * Safe open: the request path is resolved component by component (as realpath would, but a
 * path that fails or ends outside the roots gets one error that tells nothing about it) and
 * must lie under one of the configured allowed_roots. The file is then opened again from "/"
 * one component at a time with O_NOFOLLOW, the roots and the directories above them included,
 * so a symlink swapped in anywhere after the check makes the open fail rather than leave the
 * root. Only regular files are accepted (a FIFO is opened non-blocking, then refused).
 *
 * Write-back: mfd_wb_scan_* finds, in one streaming pass over the bytes, where the report's
 * top-level object ends and where any top-level "malfam" values are (keys compared after
 * unescaping). mfd_wb_commit then copies the report into a temp file beside it (mode, extended
 * attributes, owner kept), replacing those values (or adding the key before the closing
 * brace), fsyncs it, exchanges it with the report if the report is still the file read, and
 * fsyncs the directory. Every other byte is preserved, so the original minus the key is
 * exactly the old file. Who may ask for it: mfd_wb_allowed.
 *
 * Classification runs on a libuv pool thread and touches no libuv handle, so it can be unit
 * tested without a loop. Server fields are touched on the loop thread only.
 */
#ifndef MF_MALFAMD_PRIVATE_H
#define MF_MALFAMD_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <uv.h>

#include "malfamd.h"
#include "answer.h"
#include "proto.h"
#include "trace.h"

/* ---- the peer of a connection ------------------------------------------------------------ */

/* Who is on the other end of a client connection, from SO_PEERCRED at accept. `known` is 0
 * when the platform or the socket could not tell (then every credential check refuses). */
typedef struct mfd_peer {
    int known;
    pid_t pid;
    uid_t uid;
    gid_t gid;
} mfd_peer_t;

/* The credentials of the peer of a connected Unix socket fd. */
mfd_peer_t mfd_peer_of_fd(int fd);

/* ---- safe open and write-back (file.c) --------------------------------------------------- */
typedef struct mfd_file {
    int dirfd;            /* the report's directory (opened without following links) */
    int fd;               /* the report, read-only */
    char name[256];       /* its name inside dirfd */
    char real[4096];      /* resolved path, for logs */
    struct stat st;       /* at open time: write-back keeps mode and owner, checks changes */
} mfd_file_t;

/* Open `path` for reading if it resolves under one of `roots`. MF_OK; MF_EINVAL (relative
 * path), MF_ENOENT (does not exist), MF_EPERM (outside the roots, symlink swap, not a
 * regular file), MF_EIO, each with detail in err. On error nothing stays open. */
int mfd_file_open(mfd_file_t *f, const char roots[][4096], int nroots, const char *path, char *err,
                  size_t errlen);
void mfd_file_close(mfd_file_t *f);

/* "/proc/self/fd/N": a path naming the file open as fd, whatever its name is by now (a
 * rename or a swapped symlink cannot redirect it). Written into buf, which it returns. */
#define MFD_FD_PATH_LEN 32
const char *mfd_fd_path(int fd, char buf[MFD_FD_PATH_LEN]);

/* Is the file at f's name still the one opened, same size and mtime? 1 yes, 0 no. */
int mfd_file_unchanged(const mfd_file_t *f);

/* May `peer` have the report with status `st` written back? Yes for root, the daemon's own
 * uid, the uids and primary gids listed in write_back_uids / write_back_gids, and a peer that
 * could write the report itself (its mode bits for the peer's class: owner, group - primary or
 * from the group database - or others). A peer whose credentials are unknown may not. MF_OK or
 * MF_EPERM with the reason in err. */
int mfd_wb_allowed(const mfd_config_t *cfg, const mfd_peer_t *peer, const struct stat *st,
                   char *err, size_t errlen);

/* ---- top-level scan ---------------------------------------------------------------------- */

#define MFD_WB_MAX_KEYS 8 /* top-level "malfam" keys a report may already hold */

typedef struct mfd_wb_scan {
    uint64_t off;          /* bytes scanned */
    int state;
    int esc;               /* previous byte was a backslash inside a string */
    uint64_t depth;
    char key[8];           /* current top-level key, first bytes, escapes decoded */
    size_t keylen;
    int uhex;              /* hex digits of a \u escape in a key still to come */
    unsigned ucode;
    int is_malfam;         /* the value being read belongs to "malfam" */
    uint64_t last_end;     /* just past the last top-level value, or past the '{' */
    int nmembers;
    uint64_t range[MFD_WB_MAX_KEYS][2]; /* [start, end) of each existing "malfam" value */
    int nranges;
    int err;               /* MF_OK, or MF_EFORMAT / MF_ELIMIT once found */
    char errmsg[96];
} mfd_wb_scan_t;

void mfd_wb_scan_init(mfd_wb_scan_t *s);
/* Scan the next bytes. MF_OK or the error (sticky), with errmsg set. */
int mfd_wb_scan_feed(mfd_wb_scan_t *s, const void *buf, size_t len);
/* End of input: MF_OK when a complete top-level object (then only whitespace) was seen. */
int mfd_wb_scan_finish(mfd_wb_scan_t *s);

/* Apply the edit to an in-memory report (tests, fuzzing): out gets the new report. */
int mfd_wb_apply_mem(const mfd_wb_scan_t *s, const char *orig, size_t len, const char *value,
                     size_t vlen, mfp_buf_t *out);

/* Write the labelled report beside f and put it in f's place (see top). `value` is the JSON
 * object to store under "malfam". MF_OK; MF_EIO (write, fsync, rename failed; disk full),
 * MF_EPERM (owner - CAP_CHOWN is needed to give the file to another user - or an extended
 * attribute cannot be kept), MF_ECANCELED (the report changed meanwhile, up to the exchange:
 * a replacement that lands then is put back), with detail in err. On error the report at f's
 * name is whatever was there (the original, or another process's newer file) and the temp
 * file removed. */
int mfd_wb_commit(const mfd_file_t *f, const mfd_wb_scan_t *s, const char *value,
                  size_t vlen, char *err, size_t errlen);

/* Remove the temp files a killed write-back of this same report left beside it. Temps are
 * named ".NAME.malfam-PID.BOOT.START-N.tmp": PID, the first 12 hex digits of the boot id and
 * the process's start time in clock ticks (/proc/PID/stat) name the daemon instance, so one is
 * stale when it comes from another boot, from a PID that is no live process, or from a live
 * PID that started at another time (a later daemon with the same PID, PID 1 in containers).
 * Older names ".NAME.malfam-PID-N.tmp" are stale when PID is no live process. Temps of this
 * instance (its other threads) are left alone, as are those of other reports. Returns how many
 * were removed (0 on any error: the cleanup is best effort). */
int mfd_wb_clean_stale(const mfd_file_t *f);

/* Tests only: called by mfd_wb_commit between its last "unchanged" check and the rename,
 * to land a replacement of the report exactly there. NULL in the daemon. */
extern void (*mfd_wb_race_hook)(const mfd_file_t *f);

/* This daemon's instance as temp names carry it: boot id (12 hex digits) and start time. */
void mfd_wb_instance(char boot[13], unsigned long long *start);

/* ---- classification ---------------------------------------------------------------------- */

/* Streaming state of one classification: the extractor, the trace being built, and (for
 * write-back) the top-level scan. Fed from a file or from a socket stream. */
typedef struct mfd_classify {
    mfd_model_t *model;   /* a reference, dropped by mfd_classify_destroy */
    mfd_scoring_t sc;
    mfp_classify_opts_t opts; /* mode, top, threshold of this request */
    mf_extract_t *ex;     /* a trace extractor (mf_extract_new_trace with the model's prep) */
    mf_trace_t trace;
    int want_scan;        /* run the write-back scan on the same bytes (alone once the trace
                             is full: the parse stops there either way) */
    uint64_t max_scan;    /* with want_scan: report bytes at most (0 = no limit) */
    mfd_wb_scan_t scan;
    uint64_t bytes;       /* report bytes fed (compressed or not) */
    int rc;               /* first error, sticky */
    char err[512];
    /* results, after mfd_classify_finish */
    mfp_buf_t value;      /* the answer value (answer.h), stored under "malfam" on write-back */
    char family[128];     /* best family for the log, "" when none */
    size_t calls;
    int stale_removed;    /* stale temp files of an earlier, killed write-back removed */
} mfd_classify_t;

/* `model` gets a new reference. `mode_name` "" = sc's mode; top 0 = sc's. The report is read
 * exactly as `malfam score` reads it (mf_extract_new_trace with the model's prep), at most
 * `max_bytes` JSON bytes after decompression (0 = no limit). MF_OK, MF_EINVAL (unknown mode),
 * MF_ENOMEM. */
int mfd_classify_init(mfd_classify_t *c, mfd_model_t *model, const mfd_scoring_t *sc,
                      const char *mode_name, int top, uint64_t max_bytes, int want_scan);
/* Feed report bytes (plain, gzip or zlib); errors are sticky in c->rc / c->err. */
int mfd_classify_feed(mfd_classify_t *c, const void *buf, size_t len);
/* End of input: finish the parse and score. Fills value, family, calls. */
int mfd_classify_finish(mfd_classify_t *c);
void mfd_classify_destroy(mfd_classify_t *c);

/* Classify a report file (plain or gzip) under the roots, and with `write_back` label it if
 * `peer` may (mfd_wb_allowed, checked before the report is read). The whole thing, as a pool
 * thread runs it. Result in c (initialised by this call). */
int mfd_classify_path(mfd_classify_t *c, const mfd_config_t *cfg, mfd_model_t *model,
                      const mfd_scoring_t *sc, const mfp_req_t *req, const mfd_peer_t *peer);

/* After a successful mfd_classify_finish of a stream (classify_stream with write_back):
 * store c's answer in the report file at `path`, which is opened under the roots, scanned
 * (plain JSON only) and rewritten exactly as mfd_classify_path's write-back does, if `peer`
 * may (mfd_wb_allowed). The file's
 * own calls are not read. Errors go to c->rc / c->err. */
int mfd_classify_write_back(mfd_classify_t *c, const mfd_config_t *cfg, const char *path,
                            const mfd_peer_t *peer);

/* The success answer line for c: {"v":1,"id":..,"ok":true,<value fields>,"ms":..}\n */
void mfd_classify_answer(const mfd_classify_t *c, const char *id, double ms, mfp_buf_t *out);

/* ---- server and connections (server.c, conn.c) ------------------------------------------- */
#define MFD_LAT_RING 8192 /* latencies kept for percentiles */
#define MFD_LAT_OCT 8     /* histogram buckets per doubling: a percentile is within 4.5 % */
#define MFD_LAT_BUCKETS (1 + 40 * MFD_LAT_OCT) /* 1 us .. 2^40 us, and one below */

/* The last MFD_LAT_RING latencies and a log-spaced histogram of the same window, kept up to
 * date as they come, so that a percentile costs a walk over the buckets, not a sort. */
typedef struct mfd_lat {
    double ring[MFD_LAT_RING]; /* ms */
    uint64_t n;                /* added since the start */
    uint32_t count[MFD_LAT_BUCKETS];
    double max;                /* of the window; recomputed when the max leaves it */
    int max_stale;
} mfd_lat_t;

void mfd__lat_add(mfd_lat_t *l, double ms);
size_t mfd__lat_n(const mfd_lat_t *l); /* latencies in the window */
/* The q-quantile of the window as core's mf_score_quantile defines it (the value of rank
 * floor(q n)), to the bucket's precision and never above the max; 0 when empty. */
double mfd__lat_quantile(const mfd_lat_t *l, double q);
double mfd__lat_max(mfd_lat_t *l);

typedef struct mfd_stats {
    uint64_t requests, errors, classified, written, streams, hangups, busy, reloads,
        reload_failures, stale_tmp;
    uint64_t dropped;  /* clients disconnected for being too slow or not reading answers */
    uint64_t refused;  /* connections refused: no room and none idle to close */
    uint64_t evicted;  /* idle connections closed to make room for a new one */
    uint64_t mem_waits; /* streams that waited for memory_budget */
    mfd_lat_t lat;     /* classify latencies */
} mfd_stats_t;

typedef struct mfd_conn mfd_conn_t;

struct mfd_server {
    uv_loop_t *loop;
    mfd_config_t cfg;
    char src_path[4096], src_socket[4096], src_model[4096]; /* read again at each reload */
    mfd_config_src_t src;     /* points into the three above ("" flags = NULL) */
    mfd_scoring_t sc;
    mfd_model_t *model;       /* current model; requests take their own reference */
    uv_pipe_t listener;
    int listening;
    uv_signal_t sig_hup, sig_term, sig_int, sig_io; /* sig_io: a model file's lease break */
    uv_timer_t drain_timer;
    int stopping;
    int reloading;
    mfd_conn_t *reload_waiter; /* the client that asked for the reload in progress */
    int lease_pending;        /* a lease break came during a reload: check_lease after it */
    int inflight;             /* requests being worked on (classify jobs, open streams) */
    int pool_jobs;            /* uv_work_t items not yet completed */
    mfd_conn_t *conns;        /* open connections (doubly linked) */
    int nconns;
    uint64_t start_ms;
    mfd_stats_t stats;
    /* fairness and limits (conn.c) */
    int nopen;                /* connections not closing: what max_conns bounds */
    int max_conns;            /* max_clients, lowered to what the fd limit and budget allow */
    int receiving;            /* requests whose body is still arriving (or waiting for memory) */
    int nstreams_mem;         /* streams holding their memory charge */
    uint64_t mem_base;        /* RSS after start (the model), bytes */
    mfd_conn_t *memq, *memq_tail; /* streams waiting for memory, first come first served */
    uv_idle_t turn;           /* runs connections that have requests left after their turn */
    int nbacklog;
    uint64_t refuse_log_ms;   /* last refusal log line (they are rate-limited) */
    uint64_t refused_unlogged, evicted_unlogged;
    uint64_t accept_ms;       /* accepts in the current millisecond, at most ACCEPT_BURST */
    int accepts;
    int accept_deferred;      /* a connection left pending in libuv, taken on the next turn */
};
/* ---- shared between server.c and conn.c ------------------------------------------------ */

uint64_t mfd__now_ms(void);
void mfd__stats_json(mfd_server_t *s, const char *id, mfp_buf_t *out);
void mfd__latency(mfd_server_t *s, double ms);
/* Start a reload for conn (NULL = SIGHUP): the settings are read again first (a bad file
 * refuses the reload), then the model loads on the pool. MF_OK started, else an error code
 * with the reason in err (one in progress, the settings, no memory). */
int mfd__reload(mfd_server_t *s, mfd_conn_t *conn, char *err, size_t errlen);
/* Send the reload answer to the waiting conn (called by the server when a reload ends). */
void mfd__conn_reload_done(mfd_conn_t *c, int rc, const char *msg, const char *version);

/* connections */
void mfd__conn_incoming(mfd_server_t *s); /* a connection waits: accept it now or next turn */
void mfd__conn_accept(mfd_server_t *s);
mfd_conn_t *mfd__conn_next(mfd_conn_t *c);
void mfd__conn_shutdown(mfd_conn_t *c);    /* close now if idle, else after its answer */
void mfd__server_maybe_done(mfd_server_t *s);
/* Set up the per-server fairness state once the socket listens (conn.c): the connection
 * cap from max_clients, the fd limit and memory_budget, and the round-robin turn handle. */
void mfd__conns_init(mfd_server_t *s);
void mfd__conns_close(mfd_server_t *s); /* at stop: close the turn handle */
long mfd__rss_kb(void);

#endif
