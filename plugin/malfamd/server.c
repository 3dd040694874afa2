/* server.c - the listening socket, signals, model reload, stats and the drain on exit. */
#include "private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <grp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>


uint64_t mfd__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the socket -------------------------------------------------------------------------- */

/* A socket file at `path`: is a daemon answering on it? 1 yes, 0 no (stale), -1 error. */
static int socket_alive(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0)
        return 1;
    return e == ECONNREFUSED || e == ENOENT ? 0 : -1;
}

static void on_connection(uv_stream_t *server, int status)
{
    mfd_server_t *s = server->data;
    if (status < 0) {
        mfd_log(MF_LOG_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    mfd__conn_incoming(s);
}

/* One directory on the socket's path (`sock`, for the message). Whoever can write it can rename
 * the socket (or the next directory down) away and put a symlink in its place. Users other
 * than us and root may not write it, except in a sticky directory owned by us or root (like
 * /tmp): there only an entry's owner can rename or remove it, and a name planted before bind
 * makes bind fail. */
static int check_dir(const char *dir, const char *sock, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        snprintf(err, errlen, "socket %s: %s: %s", sock, dir, strerror(errno));
        return MF_EIO;
    }
    if (S_ISLNK(st.st_mode))
        return MF_OK; /* its target is checked on the resolved path */
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(err, errlen, "socket %s: directory %s belongs to uid %u, not to us or root: "
                 "it could replace the socket", sock, dir, (unsigned)st.st_uid);
        return MF_EPERM;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
        snprintf(err, errlen, "socket %s: directory %s is writable by %s (mode %04o): another "
                 "user could replace the socket; use a directory only we can write", sock, dir,
                 st.st_mode & S_IWOTH ? "others" : "its group", (unsigned)(st.st_mode & 07777));
        return MF_EPERM;
    }
    return MF_OK;
}

/* `dir` (absolute, "" for /) and every directory above it, up to /. */
static int check_dir_chain(char *dir, const char *sock, char *err, size_t errlen)
{
    for (;;) {
        int rc = check_dir(dir[0] ? dir : "/", sock, err, errlen);
        if (rc != MF_OK || !dir[0])
            return rc;
        *strrchr(dir, '/') = '\0';
    }
}

/* Every directory from the socket's up to /, as written and as resolved (a symlink on the
 * way leads elsewhere). */
int mfd_check_socket_dirs(const char *sock, char *err, size_t errlen)
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(sock, '/');
    size_t n = slash ? (size_t)(slash - sock) : 0;
    if (sock[0] == '/') {
        snprintf(dir, sizeof dir, "%.*s", (int)n, sock);
    } else if (!getcwd(real, sizeof real) ||
               (size_t)snprintf(dir, sizeof dir, "%s%s%.*s", strcmp(real, "/") ? real : "",
                                slash ? "/" : "", (int)n, sock) >= sizeof dir) {
        snprintf(err, errlen, "socket %s: cannot make the path absolute", sock);
        return MF_EINVAL;
    }
    if (!realpath(dir[0] ? dir : "/", real)) {
        snprintf(err, errlen, "socket %s: %s: %s", sock, dir, strerror(errno));
        return MF_EIO;
    }
    if (!strcmp(real, "/"))
        real[0] = '\0';
    int rc = check_dir_chain(dir, sock, err, errlen);
    return rc == MF_OK ? check_dir_chain(real, sock, err, errlen) : rc;
}

static int bind_socket(mfd_server_t *s, char *err, size_t errlen)
{
    const char *path = s->cfg.socket;
    struct stat st;
    int rc = mfd_check_socket_dirs(path, err, errlen);
    if (rc != MF_OK)
        return rc;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket; not touching it", path);
            return MF_EPERM;
        }
        int alive = socket_alive(path);
        if (alive == 1) {
            snprintf(err, errlen, "%s: another daemon is listening there", path);
            return MF_EPERM;
        }
        if (alive < 0) {
            snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path,
                     strerror(errno));
            return MF_EIO;
        }
        mfd_log(MF_LOG_WARN, "replacing stale socket %s", path);
        if (unlink(path) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "unlink stale %s: %s", path, strerror(errno));
            return MF_EIO;
        }
    }
    rc = uv_pipe_init(s->loop, &s->listener, 0);
    if (rc < 0) {
        snprintf(err, errlen, "uv_pipe_init: %s", uv_strerror(rc));
        return MF_EIO;
    }
    s->listener.data = s;
    s->listening = 1;
    /* bind creates the socket with exactly these bits: no chmod by name afterwards (Linux's
     * fchmod on a socket fd changes the socket, not the file) */
    mode_t old = umask(0777 & ~s->cfg.socket_mode);
    rc = uv_pipe_bind(&s->listener, path);
    umask(old);
    if (rc < 0) {
        snprintf(err, errlen, "bind %s: %s", path, uv_strerror(rc));
        return MF_EIO;
    }
    /* The group change goes through an fd of the entry itself (not following a symlink),
     * after checking it is still a socket of ours: if the name was swapped since bind, we
     * touch nothing and refuse to start. */
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
        snprintf(err, errlen, "%s was replaced right after bind (someone else can write its "
                 "directory): not touching it", path);
        if (fd >= 0)
            close(fd);
        return MF_EPERM;
    }
    if ((st.st_mode & 07777) != s->cfg.socket_mode) {
        /* a default ACL on the directory overrides the umask: set the bits through the fd's
         * /proc link, which names this inode and nothing a rename could put there */
        char self[MFD_FD_PATH_LEN];
        if (chmod(mfd_fd_path(fd, self), s->cfg.socket_mode) < 0) {
            snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
            close(fd);
            return MF_EIO;
        }
    }
    if (s->cfg.socket_group[0]) {
        struct group gr, *res = NULL;
        char buf[4096];
        if (getgrnam_r(s->cfg.socket_group, &gr, buf, sizeof buf, &res) != 0 || !res) {
            snprintf(err, errlen, "socket_group: no group \"%s\"", s->cfg.socket_group);
            close(fd);
            return MF_EINVAL;
        }
        if (fchownat(fd, "", (uid_t)-1, gr.gr_gid, AT_EMPTY_PATH) < 0) {
            snprintf(err, errlen, "chown %s to group %s: %s", path, s->cfg.socket_group,
                     strerror(errno));
            close(fd);
            return MF_EPERM;
        }
    }
    close(fd);
    rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen %s: %s", path, uv_strerror(rc));
        return MF_EIO;
    }
    return MF_OK;
}

/* ---- reload ------------------------------------------------------------------------------ */

typedef struct {
    uv_work_t work;
    mfd_server_t *s;
    mfd_config_t cfg;   /* the settings read again, to apply if the model loads */
    mfd_scoring_t sc;
    char path[4096];
    int copy;           /* not a reload: the served model again, weights copied (check_lease) */
    char name[4096];    /* with copy: the served model's path (path is its descriptor's) */
    mfd_model_t *model;
    int rc;
    char err[512];
} reload_t;

static void reload_work(uv_work_t *w)
{
    reload_t *r = w->data;
    r->rc = mfd_model_load_ex(&r->model, r->path, r->sc.mode, !r->copy, r->err, sizeof r->err);
    if (r->rc != MF_OK)
        return;
    if (r->copy)
        snprintf(r->model->path, sizeof r->model->path, "%s", r->name);
    /* check it can score before it replaces anything: the first call of a family's own
     * pattern will do (one feature: each feature read through the mapped weights maps a
     * page-cache folio of up to 2 MB, and a whole pattern would map half of them while the
     * old model still holds its own, a peak for nothing) */
    const mf_model_t *m = r->model->m;
    for (int i = 0; i < m->nfam; i++) {
        if (m->fam[i].pattern.n == 0)
            continue;
        mf_trace_t head = m->fam[i].pattern;
        head.n = 1;
        mf_result_t res;
        int rc = mf_score_trace(r->model->s, r->model->mode, &head, 1, &res);
        if (rc != MF_OK) {
            snprintf(r->err, sizeof r->err, "test scoring failed: %s", mf_strerror(rc));
            r->rc = rc;
            mfd_model_unref(r->model);
            r->model = NULL;
        }
        break;
    }
}

/* Take the settings a reload read: what the model, scoring, the roots and the limits per
 * request use applies now; the socket, its mode and group, the pool size and the log target
 * only at the next start, and the log says so when they changed. */
static void apply_settings(mfd_server_t *s, const mfd_config_t *n, const mfd_scoring_t *sc)
{
    mfd_config_t keep = s->cfg;
    const char *later[5];
    int nl = 0;
    if (strcmp(n->socket, keep.socket))
        later[nl++] = "socket";
    if (n->socket_mode != keep.socket_mode || strcmp(n->socket_group, keep.socket_group))
        later[nl++] = "socket_mode/socket_group";
    if (n->max_jobs != keep.max_jobs)
        later[nl++] = "max_jobs";
    if (n->log_target != keep.log_target)
        later[nl++] = "log";
    s->cfg = *n;
    memcpy(s->cfg.socket, keep.socket, sizeof keep.socket);
    s->cfg.socket_mode = keep.socket_mode;
    memcpy(s->cfg.socket_group, keep.socket_group, sizeof keep.socket_group);
    s->cfg.max_jobs = keep.max_jobs;
    s->cfg.log_target = keep.log_target;
    s->sc = *sc;
    mfd_log_init(s->cfg.log_level, s->cfg.log_target);
    for (int i = 0; i < nl; i++)
        mfd_log(MF_LOG_WARN, "reload: %s changed in %s: takes effect at the next start",
                later[i], s->src.path);
}

/* malloc_trim on the pool: it walks every arena, no work for the loop thread */
static void trim_work(uv_work_t *w)
{
    (void)w;
    malloc_trim(0);
}

static void trim_done(uv_work_t *w, int status)
{
    (void)status;
    mfd_server_t *s = w->data;
    free(w);
    s->pool_jobs--;
    mfd__server_maybe_done(s);
}

/* Give the heap a released model leaves back to the system (glibc keeps freed pages in the
 * arena of whichever pool thread allocated them: without this RSS crept from 30 to 98 MB over
 * 400 reloads of a full-length model). Best effort. */
static void queue_trim(mfd_server_t *s)
{
    uv_work_t *w = malloc(sizeof *w);
    if (!w)
        return;
    w->data = s;
    if (uv_queue_work(s->loop, w, trim_work, trim_done) < 0) {
        free(w);
        return;
    }
    s->pool_jobs++;
}

static void check_lease(mfd_server_t *s);

static void reload_done(uv_work_t *w, int status)
{
    reload_t *r = w->data;
    mfd_server_t *s = r->s;
    s->reloading = 0;
    s->pool_jobs--;
    if (status < 0 && r->rc == MF_OK) {
        r->rc = MF_ECANCELED;
        snprintf(r->err, sizeof r->err, "canceled");
    }
    const char *version = "";
    if (r->copy) {
        if (r->rc == MF_OK && !s->stopping) {
            mfd_model_t *old = s->model;
            s->model = r->model;
            r->model = NULL;
            mfd_log(MF_LOG_WARN, "model %s (%s) is being rewritten in place: its linear weights "
                    "are copied into memory now, and its lease let go once its requests end "
                    "(replace model files by rename, then reload)", r->name, old->m->version);
            mfd_model_unref(old); /* its last request closes the file: the writer goes on */
            queue_trim(s);
        } else if (r->rc != MF_OK) {
            mfd_log(MF_LOG_ERROR, "model %s is being rewritten in place and its weights could "
                    "not be copied (%s: %s): a truncated page will stop the daemon", r->name,
                    mf_strerror(r->rc), r->err);
        }
    } else if (r->rc == MF_OK && !s->stopping) {
        mfd_model_t *old = s->model;
        s->model = r->model;
        r->model = NULL;
        apply_settings(s, &r->cfg, &r->sc);
        s->stats.reloads++;
        version = s->model->m->version;
        mfd_log(MF_LOG_INFO, "model reloaded from %s: version %s (was %s), mode %s (%s)",
                r->path, version, old ? old->m->version : "none",
                mf_score_mode_name(s->model->mode),
                s->sc.mode >= 0 ? "configured" : "model default");
        mfd_model_unref(old); /* requests still on it keep it alive */
        queue_trim(s);        /* after the release (a later reload's trim takes what they free) */
    } else if (r->rc != MF_OK) {
        s->stats.reload_failures++;
        mfd_log(MF_LOG_ERROR, "reload refused, keeping model %s: %s: %s",
                s->model ? s->model->m->version : "none", mf_strerror(r->rc), r->err);
    }
    mfd_model_unref(r->model);
    if (s->reload_waiter) {
        mfd_conn_t *c = s->reload_waiter;
        s->reload_waiter = NULL;
        mfd__conn_reload_done(c, r->rc, r->err, version);
    }
    free(r);
    if (s->lease_pending) {
        s->lease_pending = 0;
        check_lease(s);
    }
    mfd__server_maybe_done(s);
}

/* Run r (path, settings, copy filled in) on the pool: one load at a time (s->reloading),
 * counted in s->pool_jobs until reload_done. libuv's error (< 0) or 0. */
static int queue_load(mfd_server_t *s, reload_t *r)
{
    r->s = s;
    r->work.data = r;
    int rc = uv_queue_work(s->loop, &r->work, reload_work, reload_done);
    if (rc == 0) {
        s->reloading = 1;
        s->pool_jobs++;
    }
    return rc;
}

/* A lease break (SIGIO): someone opens the served model's file for writing or truncates it,
 * and the kernel holds them off until we let go of the lease (45 s at most, then it breaks
 * it). The weights mapped from it must become a copy before that: load the model again
 * through its descriptor, weights copied, and serve that; the old one (and its lease) goes
 * when its last request ends. An older model still finishing requests lets go by itself. */
static void check_lease(mfd_server_t *s)
{
    mfd_model_t *m = s->model;
    if (!m || !m->leased || s->stopping || fcntl(m->fd, F_GETLEASE) == F_RDLCK)
        return;
    if (s->reloading) { /* after it (reload_done) */
        s->lease_pending = 1;
        return;
    }
    reload_t *r = calloc(1, sizeof *r);
    if (!r) {
        mfd_log(MF_LOG_ERROR, "model %s is being rewritten in place: out of memory", m->path);
        return;
    }
    r->copy = 1;
    r->cfg = s->cfg;
    r->sc = s->sc;
    mfd_fd_path(m->fd, r->path); /* r->path is longer than MFD_FD_PATH_LEN */
    snprintf(r->name, sizeof r->name, "%s", m->path);
    int rc = queue_load(s, r);
    if (rc < 0) {
        mfd_log(MF_LOG_ERROR, "model %s is being rewritten in place: cannot copy it: %s",
                m->path, uv_strerror(rc));
        free(r);
    }
}

int mfd__reload(mfd_server_t *s, mfd_conn_t *conn, char *err, size_t errlen)
{
    if (s->reloading || s->stopping) {
        snprintf(err, errlen, "a reload is already in progress (or the daemon is stopping)");
        return MF_ECANCELED;
    }
    reload_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return MF_ENOMEM;
    }
    /* the settings first, as at the start: a bad file refuses the reload, nothing changes */
    int rc = mfd_config_read(&r->cfg, &s->src, err, errlen);
    if (rc == MF_OK)
        rc = mfd_scoring_init(&r->sc, &r->cfg, err, errlen);
    if (rc != MF_OK) {
        s->stats.reload_failures++;
        mfd_log(MF_LOG_ERROR, "reload refused, keeping the running settings and model: %s",
                err);
        free(r);
        return rc;
    }
    snprintf(r->path, sizeof r->path, "%s", r->cfg.model);
    rc = queue_load(s, r);
    if (rc < 0) {
        snprintf(err, errlen, "cannot queue the reload: %s", uv_strerror(rc));
        free(r);
        return MF_EIO;
    }
    s->reload_waiter = conn;
    mfd_log(MF_LOG_INFO, "reloading model from %s", r->path);
    return MF_OK;
}

/* ---- stats ------------------------------------------------------------------------------- */

/* Bucket of a latency: 0 below 1 us, then MFD_LAT_OCT buckets per doubling. */
static int lat_bucket(double ms)
{
    double us = ms * 1e3;
    if (!(us >= 1.0))
        return 0;
    int b = 1 + (int)(log2(us) * MFD_LAT_OCT);
    return b < MFD_LAT_BUCKETS ? b : MFD_LAT_BUCKETS - 1;
}

void mfd__lat_add(mfd_lat_t *l, double ms)
{
    size_t i = (size_t)(l->n % MFD_LAT_RING);
    if (l->n >= MFD_LAT_RING) {
        double old = l->ring[i];
        l->count[lat_bucket(old)]--;
        if (old >= l->max)
            l->max_stale = 1;
    }
    l->ring[i] = ms;
    l->count[lat_bucket(ms)]++;
    if (ms >= l->max) {
        l->max = ms;
        l->max_stale = 0;
    }
    l->n++;
}

size_t mfd__lat_n(const mfd_lat_t *l)
{
    return l->n < MFD_LAT_RING ? (size_t)l->n : MFD_LAT_RING;
}

double mfd__lat_max(mfd_lat_t *l)
{
    if (l->max_stale) { /* the max left the window: one pass, only when that happens */
        size_t n = mfd__lat_n(l);
        l->max = 0;
        for (size_t i = 0; i < n; i++)
            if (l->ring[i] > l->max)
                l->max = l->ring[i];
        l->max_stale = 0;
    }
    return l->max;
}

double mfd__lat_quantile(const mfd_lat_t *l, double q)
{
    size_t n = mfd__lat_n(l);
    if (n == 0)
        return 0;
    size_t rank = (size_t)(q * (double)n);
    if (rank >= n)
        rank = n - 1;
    size_t seen = 0;
    int b = 0;
    for (; b < MFD_LAT_BUCKETS - 1; b++) {
        seen += l->count[b];
        if (seen > rank)
            break;
    }
    /* the bucket's geometric middle: at most half a bucket (4.4 %) from any value in it */
    double v = b == 0 ? 0.0005 : 1e-3 * exp2(((double)b - 0.5) / MFD_LAT_OCT);
    return v < l->max || l->max_stale ? v : l->max;
}

void mfd__latency(mfd_server_t *s, double ms)
{
    mfd__lat_add(&s->stats.lat, ms);
}

long mfd__rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* O(buckets), never a sort: a client may ask for this in a tight loop. */
void mfd__stats_json(mfd_server_t *s, const char *id, mfp_buf_t *out)
{
    mfd_stats_t *st = &s->stats;
    size_t n = mfd__lat_n(&st->lat);
    double max = mfd__lat_max(&st->lat);
    double p50 = mfd__lat_quantile(&st->lat, 0.50);
    double p90 = mfd__lat_quantile(&st->lat, 0.90);
    double p99 = mfd__lat_quantile(&st->lat, 0.99);
    mfp_buf_printf(out, "{\"v\":%d,\"id\":%s,\"ok\":true,\"requests\":%llu,\"errors\":%llu,"
                   "\"classified\":%llu,\"written\":%llu,\"streams\":%llu,\"hangups\":%llu,"
                   "\"busy\":%llu,\"reloads\":%llu,\"reload_failures\":%llu,"
                   "\"stale_tmp_removed\":%llu,\"inflight\":%d,\"connections\":%d,",
                   MFP_PROTO_VERSION, id, (unsigned long long)st->requests,
                   (unsigned long long)st->errors, (unsigned long long)st->classified,
                   (unsigned long long)st->written, (unsigned long long)st->streams,
                   (unsigned long long)st->hangups, (unsigned long long)st->busy,
                   (unsigned long long)st->reloads, (unsigned long long)st->reload_failures,
                   (unsigned long long)st->stale_tmp, s->inflight, s->nconns);
    mfp_buf_printf(out, "\"dropped\":%llu,\"refused\":%llu,\"evicted\":%llu,\"mem_waits\":%llu,"
                   "\"max_connections\":%d,", (unsigned long long)st->dropped,
                   (unsigned long long)st->refused, (unsigned long long)st->evicted,
                   (unsigned long long)st->mem_waits, s->max_conns);
    mfp_buf_printf(out, "\"latency_ms\":{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
                   "\"max\":%.3f},\"model\":", n, p50, p90, p99, max);
    const char *ver = s->model ? s->model->m->version : "";
    mfp_buf_json_str(out, ver, strlen(ver));
    mfp_buf_adds(out, ",\"model_path\":");
    mfp_buf_json_str(out, s->cfg.model, strlen(s->cfg.model));
    mfp_buf_printf(out, ",\"mode\":\"%s\",\"uptime_s\":%.3f,\"rss_kb\":%ld,\"version\":\"%s\"}\n",
                   s->model ? mf_score_mode_name(s->model->mode) : "",
                   (double)(mfd__now_ms() - s->start_ms) / 1e3, mfd__rss_kb(), MF_VERSION);
}

/* ---- signals and the drain --------------------------------------------------------------- */

static void on_close_noop(uv_handle_t *h)
{
    (void)h;
}

void mfd__server_maybe_done(mfd_server_t *s)
{
    if (!s->stopping || s->nconns > 0 || s->pool_jobs > 0)
        return;
    /* nothing left: close our own handles and let uv_run return */
    if (!uv_is_closing((uv_handle_t *)&s->drain_timer)) {
        if (s->listening >= 0)
            mfd_log(MF_LOG_INFO, "stopped cleanly");
        uv_close((uv_handle_t *)&s->drain_timer, on_close_noop);
        uv_close((uv_handle_t *)&s->sig_hup, on_close_noop);
        uv_close((uv_handle_t *)&s->sig_term, on_close_noop);
        uv_close((uv_handle_t *)&s->sig_int, on_close_noop);
        uv_close((uv_handle_t *)&s->sig_io, on_close_noop);
        mfd__conns_close(s);
    }
}

static void on_drain_timeout(uv_timer_t *t)
{
    mfd_server_t *s = t->data;
    mfd_log(MF_LOG_WARN, "%d requests still running after %u s; exiting without them",
            s->pool_jobs, s->cfg.shutdown_timeout_ms / 1000);
    uv_stop(s->loop);
}

static void stop(mfd_server_t *s, const char *why)
{
    if (s->stopping) {
        mfd_log(MF_LOG_WARN, "%s again: not waiting any longer", why);
        uv_stop(s->loop);
        return;
    }
    s->stopping = 1;
    mfd_log(MF_LOG_INFO, "%s: no new connections; finishing %d requests", why, s->inflight);
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, on_close_noop);
        s->listening = 0;
        unlink(s->cfg.socket);
    }
    /* shutting a connection down may unlink it: take the next one first */
    for (mfd_conn_t *c = s->conns, *next; c; c = next) {
        next = mfd__conn_next(c);
        mfd__conn_shutdown(c);
    }
    uv_timer_start(&s->drain_timer, on_drain_timeout, s->cfg.shutdown_timeout_ms, 0);
    mfd__server_maybe_done(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    mfd_server_t *s = h->data;
    if (signum == SIGIO) {
        check_lease(s);
        return;
    }
    if (signum == SIGHUP) {
        char err[MFD_ERR_LEN];
        int rc = mfd__reload(s, NULL, err, sizeof err);
        if (rc != MF_OK)
            mfd_log(MF_LOG_WARN, "SIGHUP: reload not started: %s: %s", mf_strerror(rc), err);
        return;
    }
    stop(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int server_init(mfd_server_t *s, uv_loop_t *loop, const mfd_config_t *cfg,
                       const mfd_config_src_t *src, mfd_model_t *model, char *err,
                       size_t errlen)
{
    memset(s, 0, sizeof *s);
    /* blocks over 128 KiB (a model's arrays, a long trace, a stream's token or window) get
     * pages of their own, given back when freed: glibc would otherwise raise this threshold
     * as they are freed and keep later ones in its arenas, where reloads fragment them and
     * the RSS grows past what memory_budget counts (conn.c) */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    s->loop = loop;
    s->cfg = *cfg;
    snprintf(s->src_path, sizeof s->src_path, "%s", src->path);
    snprintf(s->src_socket, sizeof s->src_socket, "%s", src->socket ? src->socket : "");
    snprintf(s->src_model, sizeof s->src_model, "%s", src->model ? src->model : "");
    s->src.path = s->src_path;
    s->src.socket = s->src_socket[0] ? s->src_socket : NULL;
    s->src.model = s->src_model[0] ? s->src_model : NULL;
    s->model = model;
    s->start_ms = mfd__now_ms();
    int rc = mfd_scoring_init(&s->sc, cfg, err, errlen);
    if (rc != MF_OK)
        return rc;
    uv_timer_init(loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_signal_t *sigs[] = {&s->sig_hup, &s->sig_term, &s->sig_int, &s->sig_io};
    int nums[] = {SIGHUP, SIGTERM, SIGINT, SIGIO};
    for (int i = 0; i < 4; i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = s;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    rc = bind_socket(s, err, errlen);
    if (rc != MF_OK) {
        s->stopping = 1;
        if (s->listening) {
            uv_close((uv_handle_t *)&s->listener, on_close_noop);
            s->listening = 0;
        }
        s->listening = -1; /* never started: nothing to report when the handles close */
        mfd__server_maybe_done(s);
        uv_run(loop, UV_RUN_DEFAULT); /* let the closes finish */
        s->model = NULL;              /* the caller keeps it on failure */
        return rc;
    }
    mfd__conns_init(s);
    mfd_log(MF_LOG_INFO, "listening on %s (mode %04o), model %s version %s, scoring mode %s "
            "(%s), %d workers", s->cfg.socket, s->cfg.socket_mode, s->cfg.model,
            model->m->version, mf_score_mode_name(model->mode),
            s->sc.mode >= 0 ? "configured" : "model default", s->cfg.max_jobs);
    return MF_OK;
}

int mfd_server_run(mfd_server_t *s)
{
    uv_run(s->loop, UV_RUN_DEFAULT);
    /* uv_stop (timeout or second signal) leaves work behind: report it */
    return s->pool_jobs > 0 || s->nconns > 0 ? 1 : 0;
}

mfd_server_t *mfd_server_new(uv_loop_t *loop, const mfd_config_t *cfg,
                             const mfd_config_src_t *src, mfd_model_t *model, int *rc, char *err,
                             size_t errlen)
{
    mfd_server_t *s = malloc(sizeof *s);
    int r = s ? server_init(s, loop, cfg, src, model, err, errlen) : MF_ENOMEM;
    if (!s)
        snprintf(err, errlen, "out of memory");
    if (rc)
        *rc = r;
    if (r != MF_OK) {
        free(s);
        return NULL;
    }
    return s;
}

void mfd_server_free(mfd_server_t *s)
{
    if (!s)
        return;
    mfd_model_unref(s->model);
    free(s);
}
