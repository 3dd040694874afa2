/* mfd_server.h - malfamd's loop: the listening socket, connections, signals, reload, stats.
 *
 * main owns one mfd_server_t: mfd_server_init (config already checked, model loaded),
 * mfd_server_run (until SIGTERM/SIGINT and the drain), mfd_server_destroy. All fields are
 * touched on the loop thread only; pool threads see a job and nothing else.
 */
#ifndef MF_MFD_SERVER_H
#define MF_MFD_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "mfd_config.h"
#include "mfd_job.h"
#include "util_proto.h"

#define MFD_LAT_RING 8192 /* latencies kept for percentiles */

typedef struct mfd_stats {
    uint64_t requests, errors, classified, written, streams, hangups, busy, reloads,
        reload_failures, stale_tmp;
    uint64_t by_op[6];
    double lat[MFD_LAT_RING]; /* classify latencies, ms, ring */
    uint64_t nlat;
} mfd_stats_t;

typedef struct mfd_conn mfd_conn_t;

typedef struct mfd_server {
    uv_loop_t *loop;
    mfd_config_t cfg;
    char config_path[4096];
    mfd_scoring_t sc;
    mfd_model_t *model;       /* current model; requests take their own reference */
    uv_pipe_t listener;
    int listening;
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t drain_timer;
    int stopping;
    int reloading;
    mfd_conn_t *reload_waiter; /* the client that asked for the reload in progress */
    int inflight;             /* requests being worked on (classify jobs, open streams) */
    int pool_jobs;            /* uv_work_t items not yet completed */
    mfd_conn_t *conns;        /* open connections (doubly linked) */
    int nconns;
    uint64_t start_ms;
    mfd_stats_t stats;
} mfd_server_t;

/* Bind the socket (refusing a live daemon's path, replacing a stale file), set its mode and
 * group, install signal handlers. `model` is adopted (its reference passes to the server).
 * MF_OK, or MF_EIO / MF_EPERM / MF_EINVAL with detail in err. */
int mfd_server_init(mfd_server_t *s, uv_loop_t *loop, const mfd_config_t *cfg,
                    mfd_model_t *model, char *err, size_t errlen);
/* Run the loop until stopped and drained. Returns 0 after a clean stop. */
int mfd_server_run(mfd_server_t *s);
/* Release the model and remaining state (after run returned). */
void mfd_server_destroy(mfd_server_t *s);

/* ---- shared between mfd_server.c and mfd_conn.c ------------------------------------------ */

uint64_t mfd__now_ms(void);
void mfd__stats_json(mfd_server_t *s, const char *id, mfu_buf_t *out);
void mfd__latency(mfd_server_t *s, double ms);
/* Start a reload for conn (NULL = SIGHUP). 0 started, else an error code (one in progress). */
int mfd__reload(mfd_server_t *s, mfd_conn_t *conn);
/* Send the reload answer to the waiting conn (called by the server when a reload ends). */
void mfd__conn_reload_done(mfd_conn_t *c, int rc, const char *msg, const char *version);

/* connections */
void mfd__conn_accept(mfd_server_t *s);
mfd_conn_t *mfd__conn_next(mfd_conn_t *c);
void mfd__conn_shutdown(mfd_conn_t *c);    /* close now if idle, else after its answer */
void mfd__server_maybe_done(mfd_server_t *s);

#endif
