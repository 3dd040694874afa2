/* conn.c - one client connection: reading request lines, classify_stream bodies,
 * handing work to the pool, writing answers in request order.
 *
 * A connection works on one request at a time. While a request is in the pool the
 * connection stops reading (later lines wait in the kernel), except for a classify_stream
 * body, which is read in chunks and fed to the parser by small pool jobs, one at a time;
 * reading pauses while STREAM_HIGH bytes wait to be parsed, so a fast sender costs at most
 * that much memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

#define READ_CHUNK (64 * 1024)
#define FEED_MIN (64 * 1024)     /* feed the parser once this much body has arrived */
#define STREAM_HIGH (1024 * 1024) /* stop reading while this much body waits */

typedef struct stream {
    mfd_classify_t cl;
    uint64_t remaining; /* body bytes not read yet */
    char *pend;         /* body bytes read, not fed yet */
    size_t npend, cap;
    int feeding;        /* a pool job owns cl right now */
} stream_t;

struct mfd_conn {
    uv_pipe_t pipe; /* first member: the handle pointer is the connection */
    uv_timer_t idle;
    uv_shutdown_t shut;
    mfd_server_t *s;
    mfd_conn_t *next, *prev;
    int handles;    /* open libuv handles (pipe, timer); freed when 0 and jobs == 0 */
    int jobs;       /* pool items that point at this connection */
    int closing;
    int shutdown;   /* the server is stopping: close after the current answer */
    int reading;
    int busy;       /* a request is being worked on */
    int discard;    /* dropping the rest of an oversized line */
    uint64_t skip;  /* body bytes of a refused classify_stream still to drop */
    char *in;       /* bytes read and not consumed */
    size_t n, cap;
    stream_t *st;
    mfp_req_t req;  /* the request being worked on */
    uint64_t t0;    /* its start, uv_hrtime() */
    mfd_peer_t peer; /* who connected (SO_PEERCRED at accept) */
};

enum { J_CLASSIFY, J_FEED, J_FINISH };

typedef struct job {
    uv_work_t work;
    mfd_conn_t *c;
    int kind;
    mfd_classify_t cl; /* J_CLASSIFY */
    mfd_model_t *model; /* J_CLASSIFY: the model it started with (a reference) */
    char *buf;         /* J_FEED, J_FINISH: body bytes to feed */
    size_t len;
} job_t;

typedef struct {
    uv_write_t req;
    char *data;
} write_t;

static void process_input(mfd_conn_t *c);
static void conn_close(mfd_conn_t *c, const char *why);

mfd_conn_t *mfd__conn_next(mfd_conn_t *c)
{
    return c->next;
}

static double elapsed_ms(const mfd_conn_t *c)
{
    return (double)(uv_hrtime() - c->t0) / 1e6;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void conn_free(mfd_conn_t *c)
{
    mfd_server_t *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->st) {
        /* a stream abandoned by its client: it ends here */
        mfd_classify_destroy(&c->st->cl);
        free(c->st->pend);
        free(c->st);
        s->inflight--;
    }
    free(c->in);
    free(c);
    mfd__server_maybe_done(s);
}

static void on_handle_close(uv_handle_t *h)
{
    mfd_conn_t *c = h->data;
    if (--c->handles == 0 && c->jobs == 0)
        conn_free(c);
}

static void conn_close(mfd_conn_t *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (why)
        mfd_log(MF_LOG_DEBUG, "connection closed: %s", why);
    if (c->s->reload_waiter == c)
        c->s->reload_waiter = NULL;
    uv_close((uv_handle_t *)&c->pipe, on_handle_close);
    uv_close((uv_handle_t *)&c->idle, on_handle_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data, "server stopping");
}

/* Close once the answers written so far have left. */
static void conn_close_flushed(mfd_conn_t *c)
{
    if (c->closing)
        return;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->pipe, on_shutdown) < 0)
        conn_close(c, "server stopping");
}

void mfd__conn_shutdown(mfd_conn_t *c)
{
    c->shutdown = 1;
    if (!c->busy)
        conn_close_flushed(c);
}

/* ---- reading ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    mfd_conn_t *c = h->data;
    if (c->cap - c->n < READ_CHUNK) {
        size_t cap = c->n + READ_CHUNK;
        char *p = realloc(c->in, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS; we close */
            return;
        }
        c->in = p;
        c->cap = cap;
    }
    *buf = uv_buf_init(c->in + c->n, (unsigned)(c->cap - c->n));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

static void read_resume(mfd_conn_t *c)
{
    if (c->closing || c->reading)
        return;
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
        c->reading = 1;
    uv_timer_again(&c->idle);
}

static void read_pause(mfd_conn_t *c)
{
    if (c->reading && !c->closing)
        uv_read_stop((uv_stream_t *)&c->pipe);
    c->reading = 0;
}

static void on_idle(uv_timer_t *t)
{
    mfd_conn_t *c = t->data;
    if ((c->busy && !c->st) || (c->st && c->st->feeding))
        return; /* the wait is ours, not the client's */
    mfd_log(MF_LOG_INFO, "client idle for %u s%s: disconnected", c->s->cfg.idle_timeout_ms / 1000,
            c->st ? " in the middle of a classify_stream body" : "");
    if (c->st)
        c->s->stats.hangups++;
    conn_close(c, "idle timeout");
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    mfd_conn_t *c = h->data;
    if (nread < 0) {
        if (c->busy || c->st || c->n > 0) {
            c->s->stats.hangups++;
            mfd_log(MF_LOG_INFO, "id=%s op=%s: client hung up mid-request (%s)", c->req.id,
                    mfp_op_name(c->req.op), nread == UV_EOF ? "EOF" : uv_strerror((int)nread));
        }
        conn_close(c, "peer closed");
        return;
    }
    c->n += (size_t)nread;
    uv_timer_again(&c->idle);
    process_input(c);
}

/* ---- answers ----------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    if (status < 0 && status != UV_ECANCELED)
        mfd_log(MF_LOG_INFO, "answer not delivered: %s", uv_strerror(status));
    free(w->data);
    free(w);
}

/* Send b's line and take its memory. */
static void send_answer(mfd_conn_t *c, mfp_buf_t *b)
{
    if (c->closing || b->oom || b->n == 0) {
        if (b->oom)
            mfd_log(MF_LOG_ERROR, "out of memory building an answer");
        mfp_buf_free(b);
        if (!c->closing && b->oom)
            conn_close(c, "out of memory");
        return;
    }
    write_t *w = malloc(sizeof *w);
    if (!w) {
        mfp_buf_free(b);
        conn_close(c, "out of memory");
        return;
    }
    w->data = b->p;
    uv_buf_t ub = uv_buf_init(b->p, (unsigned)b->n);
    memset(b, 0, sizeof *b);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &ub, 1, on_write) < 0) {
        free(w->data);
        free(w);
        conn_close(c, "write failed");
    }
}

static void answer_error(mfd_conn_t *c, const char *id, int rc, const char *msg)
{
    mfp_buf_t b = {0};
    mfp_answer_error(&b, id, rc, msg);
    c->s->stats.errors++;
    send_answer(c, &b);
}

/* The one log line of a request. */
static void log_request(mfd_conn_t *c, int rc, const char *msg, const char *family,
                        size_t calls, uint64_t bytes)
{
    const mfp_req_t *r = &c->req;
    char where[MFP_PATH_MAX + 32];
    if (r->op == MFP_OP_CLASSIFY)
        snprintf(where, sizeof where, " path=%s%s", r->path, r->write_back ? " write_back" : "");
    else if (r->op == MFP_OP_STREAM && r->write_back)
        snprintf(where, sizeof where, " stream=%lld path=%s write_back", (long long)r->bytes,
                 r->path);
    else if (r->op == MFP_OP_STREAM)
        snprintf(where, sizeof where, " stream=%lld", (long long)r->bytes);
    else
        where[0] = '\0';
    char task[32] = "";
    if (r->task_id >= 0)
        snprintf(task, sizeof task, " task=%lld", (long long)r->task_id);
    if (rc == MF_OK)
        mfd_log(MF_LOG_INFO, "id=%s op=%s%s%s family=%s calls=%zu bytes=%llu ms=%.1f ok", r->id,
                mfp_op_name(r->op), where, task, family && *family ? family : "-", calls,
                (unsigned long long)bytes, elapsed_ms(c));
    else
        mfd_log(MF_LOG_INFO, "id=%s op=%s%s%s ms=%.1f error=%s: %s", r->id,
                r->op ? mfp_op_name(r->op) : "?", where, task, elapsed_ms(c), mf_err_name(rc),
                msg);
}

/* The current request is answered: take the next one. */
static void request_done(mfd_conn_t *c)
{
    c->busy = 0;
    if (c->closing)
        return;
    if (c->shutdown) {
        conn_close_flushed(c);
        return;
    }
    read_resume(c);
    process_input(c);
}

static void answer_classify(mfd_conn_t *c, mfd_classify_t *cl)
{
    mfd_server_t *s = c->s;
    double ms = elapsed_ms(c);
    log_request(c, cl->rc, cl->err, cl->family, cl->calls, cl->bytes);
    s->stats.stale_tmp += (uint64_t)cl->stale_removed;
    if (cl->stale_removed)
        mfd_log(MF_LOG_INFO, "id=%s: removed %d stale temp file(s) of a killed write-back",
                c->req.id, cl->stale_removed);
    if (c->closing)
        return;
    if (cl->rc != MF_OK) {
        answer_error(c, c->req.id, cl->rc, cl->err);
        return;
    }
    s->stats.classified++;
    if (c->req.write_back)
        s->stats.written++;
    mfd__latency(s, ms);
    mfp_buf_t b = {0};
    mfd_classify_answer(cl, c->req.id, ms, &b);
    send_answer(c, &b);
}

/* ---- pool jobs --------------------------------------------------------------------------- */

static void job_work(uv_work_t *w)
{
    job_t *j = w->data;
    mfd_conn_t *c = j->c;
    mfd_server_t *s = c->s;
    switch (j->kind) {
    case J_CLASSIFY:
        mfd_classify_path(&j->cl, &s->cfg, j->model, &s->sc, &c->req);
        break;
    case J_FEED:
        mfd_classify_feed(&c->st->cl, j->buf, j->len);
        break;
    case J_FINISH:
        if (j->len)
            mfd_classify_feed(&c->st->cl, j->buf, j->len);
        /* write_back: the body was scored; its answer goes into the report at path */
        if (mfd_classify_finish(&c->st->cl) == MF_OK && c->req.write_back)
            mfd_classify_write_back(&c->st->cl, &s->cfg, c->req.path);
        break;
    }
}

static void pump_stream(mfd_conn_t *c);

static void job_done(uv_work_t *w, int status)
{
    job_t *j = w->data;
    mfd_conn_t *c = j->c;
    mfd_server_t *s = c->s;
    (void)status; /* we never cancel pool work */
    c->jobs--;
    s->pool_jobs--;
    switch (j->kind) {
    case J_CLASSIFY:
        s->inflight--;
        if (c->closing) {
            s->stats.stale_tmp += (uint64_t)j->cl.stale_removed;
            log_request(c, j->cl.rc ? j->cl.rc : MF_ECANCELED,
                        j->cl.rc ? j->cl.err : "client gone before the answer", j->cl.family,
                        j->cl.calls, j->cl.bytes);
        } else
            answer_classify(c, &j->cl);
        mfd_classify_destroy(&j->cl);
        mfd_model_unref(j->model);
        if (!c->closing)
            request_done(c);
        break;
    case J_FEED:
        c->st->feeding = 0;
        if (!c->closing)
            pump_stream(c);
        break;
    case J_FINISH:
        c->st->feeding = 0;
        if (!c->closing) {
            stream_t *st = c->st;
            c->st = NULL;
            s->inflight--;
            answer_classify(c, &st->cl);
            mfd_classify_destroy(&st->cl);
            free(st->pend);
            free(st);
            request_done(c);
        }
        break;
    }
    free(j->buf);
    free(j);
    if (c->closing && c->jobs == 0 && c->handles == 0)
        conn_free(c);
    else
        mfd__server_maybe_done(s);
}

static int job_submit(mfd_conn_t *c, job_t *j)
{
    j->c = c;
    j->work.data = j;
    int rc = uv_queue_work(c->s->loop, &j->work, job_work, job_done);
    if (rc < 0)
        return MF_EIO;
    c->jobs++;
    c->s->pool_jobs++;
    return MF_OK;
}

/* Hand the body bytes read so far to the parser, or finish when the body is complete. */
static void pump_stream(mfd_conn_t *c)
{
    stream_t *st = c->st;
    if (!st || st->feeding)
        return;
    int last = st->remaining == 0;
    if (st->cl.rc != MF_OK) {
        st->npend = 0; /* already failed: drop the rest, answer at the end */
        if (!last) {
            read_resume(c);
            return;
        }
    }
    if (!last && st->npend < FEED_MIN) {
        read_resume(c);
        return;
    }
    job_t *j = calloc(1, sizeof *j);
    if (!j) {
        conn_close(c, "out of memory");
        return;
    }
    j->kind = last ? J_FINISH : J_FEED;
    j->buf = st->pend;
    j->len = st->npend;
    st->pend = NULL;
    st->npend = st->cap = 0;
    st->feeding = 1;
    if (job_submit(c, j) != MF_OK) {
        st->feeding = 0;
        free(j->buf);
        free(j);
        conn_close(c, "cannot queue work");
        return;
    }
    if (!last)
        read_resume(c);
}

/* Move body bytes from the input buffer to the stream. */
static void take_body(mfd_conn_t *c)
{
    stream_t *st = c->st;
    size_t take = c->n < st->remaining ? c->n : (size_t)st->remaining;
    if (take == 0)
        return;
    if (st->cl.rc == MF_OK) {
        if (st->cap - st->npend < take) {
            size_t cap = st->npend + take;
            if (cap < FEED_MIN)
                cap = FEED_MIN;
            char *p = realloc(st->pend, cap);
            if (!p) {
                conn_close(c, "out of memory");
                return;
            }
            st->pend = p;
            st->cap = cap;
        }
        memcpy(st->pend + st->npend, c->in, take);
        st->npend += take;
    }
    memmove(c->in, c->in + take, c->n - take);
    c->n -= take;
    st->remaining -= take;
    if (st->npend >= STREAM_HIGH)
        read_pause(c);
    pump_stream(c);
}

/* ---- requests ---------------------------------------------------------------------------- */

static int admit(mfd_conn_t *c, char *msg, size_t cap)
{
    mfd_server_t *s = c->s;
    if (s->stopping) {
        snprintf(msg, cap, "the daemon is stopping");
        return MF_ECANCELED;
    }
    if (s->inflight >= s->cfg.max_jobs + s->cfg.max_queue) {
        s->stats.busy++;
        snprintf(msg, cap, "busy: %d requests in progress (max_jobs + max_queue)", s->inflight);
        return MF_ELIMIT;
    }
    return MF_OK;
}

static void start_classify(mfd_conn_t *c)
{
    char msg[256];
    int rc = admit(c, msg, sizeof msg);
    job_t *j = NULL;
    if (rc == MF_OK && !(j = calloc(1, sizeof *j))) {
        rc = MF_ENOMEM;
        snprintf(msg, sizeof msg, "out of memory");
    }
    if (rc == MF_OK) {
        j->kind = J_CLASSIFY;
        /* the model is fixed now: a reload during the job does not affect it */
        j->model = mfd_model_ref(c->s->model);
        if (job_submit(c, j) != MF_OK) {
            mfd_model_unref(j->model);
            free(j);
            rc = MF_EIO;
            snprintf(msg, sizeof msg, "cannot queue work");
        }
    }
    if (rc != MF_OK) {
        log_request(c, rc, msg, NULL, 0, 0);
        answer_error(c, c->req.id, rc, msg);
        return;
    }
    c->busy = 1;
    c->s->inflight++;
    read_pause(c);
}

static void start_stream(mfd_conn_t *c)
{
    mfd_server_t *s = c->s;
    char msg[600];
    int rc = MF_OK;
    if ((uint64_t)c->req.bytes > s->cfg.max_report_bytes) {
        rc = MF_ELIMIT;
        snprintf(msg, sizeof msg, "%lld bytes is over max_report_bytes (%llu)",
                 (long long)c->req.bytes, (unsigned long long)s->cfg.max_report_bytes);
    } else {
        rc = admit(c, msg, sizeof msg);
    }
    stream_t *st = NULL;
    if (rc == MF_OK && !(st = calloc(1, sizeof *st))) {
        rc = MF_ENOMEM;
        snprintf(msg, sizeof msg, "out of memory");
    }
    if (rc == MF_OK && mfd_classify_init(&st->cl, s->model, &s->sc, c->req.mode, c->req.top,
                                         s->cfg.max_report_bytes, 0) != MF_OK) {
        rc = st->cl.rc;
        snprintf(msg, sizeof msg, "%s", st->cl.err);
        mfd_classify_destroy(&st->cl);
        free(st);
        st = NULL;
    }
    if (rc != MF_OK) {
        /* the body follows anyway: drop it so the next line is read right */
        c->skip = (uint64_t)c->req.bytes;
        log_request(c, rc, msg, NULL, 0, 0);
        answer_error(c, c->req.id, rc, msg);
        return;
    }
    st->remaining = (uint64_t)c->req.bytes;
    c->st = st;
    c->busy = 1;
    s->inflight++;
    s->stats.streams++;
    take_body(c);
    if (c->st && c->st->remaining == 0)
        pump_stream(c);
}

/* Parse a request line into c->req. The line is consumed right after, before the request
 * runs: a classify_stream takes the bytes that follow it from the same buffer. */
static int parse_line(mfd_conn_t *c, const char *line, size_t len, char *msg, size_t cap)
{
    c->t0 = uv_hrtime();
    c->s->stats.requests++;
    return mfp_req_parse(&c->req, line, len, msg, cap);
}

static void handle_request(mfd_conn_t *c, int rc, char *msg, size_t msgcap)
{
    mfd_server_t *s = c->s;
    if (rc != MF_OK) {
        log_request(c, rc, msg, NULL, 0, 0);
        answer_error(c, c->req.id, rc, msg);
        return;
    }
    mfp_buf_t b = {0};
    switch (c->req.op) {
    case MFP_OP_PING:
        mfp_buf_printf(&b, "{\"v\":%d,\"id\":%s,\"ok\":true,\"pong\":true,\"version\":\"%s\","
                       "\"model\":", MFP_PROTO_VERSION, c->req.id, MF_VERSION);
        mfp_buf_json_str(&b, s->model->m->version, strlen(s->model->m->version));
        mfp_buf_adds(&b, "}\n");
        send_answer(c, &b);
        break;
    case MFP_OP_STATS:
        mfd__stats_json(s, c->req.id, &b);
        send_answer(c, &b);
        break;
    case MFP_OP_RELOAD:
        /* each reload loads a model on the pool: only those who could send the daemon a
         * SIGHUP (its own user and root) may ask */
        if (!c->peer.known || (c->peer.uid != 0 && c->peer.uid != geteuid())) {
            rc = MF_EPERM;
            snprintf(msg, msgcap, "reload: only root and the daemon's own user may reload");
        } else {
            rc = mfd__reload(s, c, msg, msgcap);
        }
        if (rc != MF_OK) {
            log_request(c, rc, msg, NULL, 0, 0);
            answer_error(c, c->req.id, rc, msg);
        } else {
            c->busy = 1;
            read_pause(c);
        }
        break;
    case MFP_OP_CLASSIFY:
        start_classify(c);
        break;
    case MFP_OP_STREAM:
        start_stream(c);
        break;
    default:
        break;
    }
}

void mfd__conn_reload_done(mfd_conn_t *c, int rc, const char *msg, const char *version)
{
    log_request(c, rc, msg, NULL, 0, 0);
    if (rc == MF_OK) {
        mfp_buf_t b = {0};
        mfp_buf_printf(&b, "{\"v\":%d,\"id\":%s,\"ok\":true,\"model\":", MFP_PROTO_VERSION,
                       c->req.id);
        mfp_buf_json_str(&b, version, strlen(version));
        mfp_buf_adds(&b, "}\n");
        send_answer(c, &b);
    } else {
        answer_error(c, c->req.id, rc, msg);
    }
    request_done(c);
}

static void consume(mfd_conn_t *c, size_t k)
{
    memmove(c->in, c->in + k, c->n - k);
    c->n -= k;
}

/* Answer (and count, and log) a request line over max_request; the caller drops its bytes. */
static void refuse_long_line(mfd_conn_t *c)
{
    char msg[96];
    snprintf(msg, sizeof msg, "request line longer than %zu bytes", c->s->cfg.max_request);
    mfp_req_init(&c->req);
    c->t0 = uv_hrtime();
    c->s->stats.requests++;
    log_request(c, MF_ELIMIT, msg, NULL, 0, 0);
    answer_error(c, "null", MF_ELIMIT, msg);
}

static void process_input(mfd_conn_t *c)
{
    while (!c->closing && c->n > 0) {
        if (c->skip) {
            size_t k = c->n < c->skip ? c->n : (size_t)c->skip;
            consume(c, k);
            c->skip -= k;
            continue;
        }
        if (c->st) {
            if (c->st->remaining)
                take_body(c);
            return;
        }
        if (c->busy)
            return;
        char *nl = memchr(c->in, '\n', c->n);
        if (c->discard) {
            consume(c, nl ? (size_t)(nl - c->in) + 1 : c->n);
            if (nl)
                c->discard = 0;
            continue;
        }
        if (!nl) {
            if (c->n > c->s->cfg.max_request) {
                refuse_long_line(c);
                c->discard = 1;
                consume(c, c->n);
            }
            return;
        }
        size_t len = (size_t)(nl - c->in);
        size_t k = len + 1;
        /* blank lines are keep-alives, not requests */
        size_t i = 0;
        while (i < len && (c->in[i] == ' ' || c->in[i] == '\t' || c->in[i] == '\r'))
            i++;
        if (i < len) {
            if (len > c->s->cfg.max_request) {
                refuse_long_line(c);
                consume(c, k);
            } else {
                char msg[512];
                int rc = parse_line(c, c->in, len, msg, sizeof msg);
                consume(c, k);
                handle_request(c, rc, msg, sizeof msg);
            }
            continue;
        }
        consume(c, k);
    }
}

/* ---- accepting --------------------------------------------------------------------------- */

mfd_peer_t mfd_peer_of_fd(int fd)
{
    mfd_peer_t p = {0};
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof cr) {
        p.known = 1;
        p.pid = cr.pid;
        p.uid = cr.uid;
        p.gid = cr.gid;
    }
    return p;
}

void mfd__conn_accept(mfd_server_t *s)
{
    mfd_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        mfd_log(MF_LOG_ERROR, "accept: out of memory");
        return;
    }
    c->s = s;
    mfp_req_init(&c->req);
    uv_pipe_init(s->loop, &c->pipe, 0);
    uv_timer_init(s->loop, &c->idle);
    c->pipe.data = c->idle.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    int rc = uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->pipe);
    if (rc < 0) {
        mfd_log(MF_LOG_WARN, "accept: %s", uv_strerror(rc));
        conn_close(c, "accept failed");
        return;
    }
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0)
        c->peer = mfd_peer_of_fd(fd);
    if (s->nconns > s->cfg.max_clients) {
        mfd_log(MF_LOG_WARN, "max_clients (%d) reached: connection refused", s->cfg.max_clients);
        conn_close(c, "too many clients");
        return;
    }
    uv_timer_start(&c->idle, on_idle, s->cfg.idle_timeout_ms, s->cfg.idle_timeout_ms);
    read_resume(c);
}
