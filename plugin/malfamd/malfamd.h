/* malfamd.h - what the daemon's main needs: settings, log, models, and the server's life.
 *
 * Settings: defaults, then the INI file, then flags, then a check; every key is listed with
 * its default in conf/malfamd.conf. Log: stderr (with a timestamp) or syslog, one line per
 * event, callable from any thread. Models: loaded off the loop and shared read-only by all
 * threads, counted: each request takes a reference when it starts and drops it when its answer
 * is built, so a reload never frees a model a request is still scoring with. The rest of the
 * daemon's cross-file internals are in private.h, which main does not include.
 */
#ifndef MF_MALFAMD_H
#define MF_MALFAMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "mf.h"
#include "model.h"
#include "score.h"

/* ---- settings ---------------------------------------------------------------------------- */
#define MFD_MAX_ROOTS 32
#define MFD_ERR_LEN 512
#define MFD_MAX_IDS 32

enum { MFD_LOG_STDERR = 0, MFD_LOG_SYSLOG = 1 };

typedef struct mfd_config {
    char socket[108];              /* Unix socket path (sun_path size) */
    unsigned socket_mode;          /* permission bits of the socket file */
    char socket_group[64];         /* group owning the socket, "" = unchanged */
    char model[4096];              /* model file */
    char roots[MFD_MAX_ROOTS][4096]; /* allowed_roots, realpath'ed by mfd_config_check */
    int nroots;
    unsigned write_back_uids[MFD_MAX_IDS]; /* peers that may write back any report */
    int nwrite_back_uids;
    unsigned write_back_gids[MFD_MAX_IDS]; /* ... by their primary group (SO_PEERCRED) */
    int nwrite_back_gids;
    char mode[32];                 /* scoring mode name, "" = the model's default */
    int top;                       /* families per answer, 1..MF_MAX_TOP */
    double unknown_threshold;      /* override of the model's threshold; NaN = the model's */
    uint64_t max_report_bytes;     /* JSON bytes parsed per report (after inflating) */
    uint64_t max_write_back_bytes; /* size of a report written back (scanned and copied) */
    int max_jobs;                  /* worker threads = reports parsed at once */
    int max_queue;                 /* requests waiting for a worker before "busy" */
    int max_clients;               /* open connections */
    unsigned idle_timeout_ms;      /* a client silent this long is disconnected */
    unsigned shutdown_timeout_ms;  /* SIGTERM: wait this long for work in flight */
    size_t max_request;            /* one request line, bytes */
    int log_level;                 /* MF_LOG_ERROR .. MF_LOG_DEBUG */
    int log_target;                /* MFD_LOG_STDERR | MFD_LOG_SYSLOG */
    uint64_t memory_budget;        /* bytes the daemon may use, enforced at admission */
    unsigned request_timeout_ms;   /* time a client may take to send one request (its body) */
    int max_peer_requests;         /* requests in progress per peer uid, 0 = half the slots */
} mfd_config_t;

void mfd_config_default(mfd_config_t *c);

/* Read `path` over the current values. MF_OK, MF_EIO (cannot open), MF_EINVAL (unknown
 * section or key, bad value) with "FILE:LINE: ..." in err. */
int mfd_config_load(mfd_config_t *c, const char *path, char *err, size_t errlen);

/* Set one key from text (what the INI handler and tests use). MF_OK or MF_EINVAL with the
 * reason in err. `allowed_roots` appends. */
int mfd_config_set(mfd_config_t *c, const char *key, const char *value, char *err,
                   size_t errlen);

/* Cross-key checks and resolution: roots must exist and are replaced by their realpath, the
 * model file must be given, the mode must be known (when the scorer is linked), limits sane.
 * MF_OK or MF_EINVAL with the reason in err. */
int mfd_config_check(mfd_config_t *c, char *err, size_t errlen);

/* Where the settings come from: the file and the command line's overrides (NULL = none). */
typedef struct mfd_config_src {
    const char *path;
    const char *socket;
    const char *model;
} mfd_config_src_t;

/* The whole order in one call, as the start and every reload do it: defaults, the file, the
 * flags, the check. MF_OK or the first error with detail in err. */
int mfd_config_read(mfd_config_t *c, const mfd_config_src_t *src, char *err, size_t errlen);

/* ---- log --------------------------------------------------------------------------------- */

void mfd_log_init(int level, int target); /* MF_LOG_*, MFD_LOG_STDERR | MFD_LOG_SYSLOG */
void mfd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mfd_log_close(void);

/* ---- models -------------------------------------------------------------------------------- */

typedef struct mfd_model {
    mf_model_t *m;
    mf_scorer_t *s;       /* the scorer of `mode` (= ms[mode]), built at load */
    /* one scorer per mode (mf_scorer_new_mode), each built on first use under `lock`: a
     * daemon serving linear never builds knn's or combo's views. Read with an acquire load;
     * NULL = not built yet. */
    mf_scorer_t *ms[MF_NMODES];
    uv_mutex_t lock;
    int refs;             /* atomic */
    int mode;             /* the mode it serves: the configured one, else mf_score_pick_default */
    double load_ms;       /* reading the file and building ms[mode] */
    unsigned long fits;   /* SVMs fitted while building ms[mode] (0 with a stored LINR) */
    int fd;               /* the model file, open: the networks are read from it on demand */
    int leased;           /* a read lease on fd is held: the linear weights are mapped */
    char path[4096];
} mfd_model_t;

/* Load `path`, build the scorer of `mode` alone and check it offers `mode` (refs = 1); mode
 * -1 (no mode configured) picks the model's default (mf_score_pick_default) into md->mode.
 * MF_OK or the loader's error with detail in err (MF_EINVAL: the model cannot serve `mode`); a
 * bad model never replaces a good one. Logs (info) what it built and how long it took. */
int mfd_model_load(mfd_model_t **out, const char *path, int mode, char *err, size_t errlen);
/* The same; map 1 (mfd_model_load's choice) tries for a read lease on the file and, holding
 * it, keeps the linear weights mapped (MF_LOAD_MAP; md->leased), else copies them; map 0
 * copies them without asking. The file is loaded through its descriptor (md->fd). */
int mfd_model_load_ex(mfd_model_t **out, const char *path, int mode, int map, char *err,
                      size_t errlen);
/* The scorer of `mode` (0..MF_NMODES-1) for md, built now if no request needed it before
 * (once: concurrent callers wait for the one build), the networks read first when the mode
 * runs them (the load skips them otherwise). It answers exactly as a scorer of every mode
 * would, into *out. MF_OK; else *out NULL and the reason in err: MF_ENOMEM, MF_EINVAL (no
 * such mode), or the loader's error reading the networks. They come from the file loaded
 * (md->fd), so a new model renamed over the path before the reload changes nothing; a file
 * rewritten in place gives MF_ECHECKSUM. */
int mfd_model_scorer(mfd_model_t *md, int mode, const mf_scorer_t **out, char *err,
                     size_t errlen);
mfd_model_t *mfd_model_ref(mfd_model_t *m);
void mfd_model_unref(mfd_model_t *m); /* frees at zero; NULL is a no-op */

/* Scoring settings resolved from the config for one model. MF_OK or MF_EINVAL (mode). */
typedef struct mfd_scoring {
    int mode;             /* -1: not configured, each model serves its default (model->mode) */
    int top;
    double threshold;     /* NaN = the model's own */
} mfd_scoring_t;

int mfd_scoring_init(mfd_scoring_t *sc, const mfd_config_t *c, char *err, size_t errlen);

/* ---- the server -------------------------------------------------------------------------- */

typedef struct mfd_server mfd_server_t;

/* The socket's directory and every one above it, as written and as resolved, must belong to
 * root or us and not be group/other-writable unless sticky (else another user could swap the
 * socket). MF_OK, MF_EPERM (err names the directory), MF_EIO (one is missing). Run at bind and
 * by --check-config. */
int mfd_check_socket_dirs(const char *sock, char *err, size_t errlen);

/* Bind the socket (refusing a live daemon's path, replacing a stale file), set its mode and
 * group, install signal handlers. `src` (copied) is read again at every reload (SIGHUP or
 * {"op":"reload"}): the model path, scoring and limits take effect then, settings of the
 * socket and the pool at the next start (a reload that changes them says so in the log).
 * `model` is adopted (its reference passes to the server) on success only. NULL with detail in err on failure (MF_EIO / MF_EPERM / MF_EINVAL / MF_ENOMEM
 * in *rc when rc is not NULL). */
mfd_server_t *mfd_server_new(uv_loop_t *loop, const mfd_config_t *cfg,
                             const mfd_config_src_t *src, mfd_model_t *model, int *rc, char *err,
                             size_t errlen);
/* Run the loop until stopped and drained. Returns 0 after a clean stop, 1 when work was left
 * behind (then pool threads may still hold the model: exit without freeing). */
int mfd_server_run(mfd_server_t *s);
/* Release the model and the server (after run returned 0). NULL is a no-op. */
void mfd_server_free(mfd_server_t *s);

#endif
