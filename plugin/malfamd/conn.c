/* conn.c - one client connection: reading request lines, classify_stream bodies,
 * handing work to the pool, writing answers in request order; and the limits that keep one
 * client from taking the daemon from the others.
 *
 * A connection works on one request at a time. While a request is in the pool the
 * connection stops reading (later lines wait in the kernel), except for a classify_stream
 * body, which is read in chunks and fed to the parser by small pool jobs, one at a time;
 * reading pauses while STREAM_HIGH bytes wait to be parsed, so a fast sender costs at most
 * that much memory.
 *
 * Every buffer is bounded, and reading is the one valve: want_read() says whether a
 * connection may read now. It does not while its answers are not drained (OUT_HIGH unsent),
 * while it has complete requests left after its turn, while a request (or a complete stream
 * body) is being worked on, or while its stream waits for memory. Connections take turns:
 * at most TURN_REQS requests each per loop iteration, the rest on the next one (s->turn).
 *
 * Slots (max_jobs + max_queue requests in progress): bodies still arriving may hold at most
 * three quarters, so that a quarter stays for requests that can run at once, and one peer
 * uid at most max_peer_requests. A client must send each request within request_timeout s
 * of its own time (waits on the daemon do not count) and read its answers within
 * idle_timeout s, or it is dropped with a log line.
 *
 * memory_budget: the RSS at start (the model), the worst case of every connection's buffers
 * (CONN_COST), the worst case of the max_jobs parses of files (JOB_COST) and of every open
 * stream (STREAM_COST: a token of MF_MAX_STRING, the window, trace and scratch) must fit. A
 * stream that does not fit waits, without reading its body, until one ends (first come
 * first served, except that a uid holding half of what the budget fits lets other uids'
 * waiting streams go first); with no other stream open it always starts.
 *
 * Connections: at most max_clients, fewer when the fd limit (fds kept for the work in
 * flight) or the budget says so. When full, the connection idle the longest is closed for
 * the newcomer; with none idle the newcomer is refused, and the log says so (at most once a
 * second).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

#define READ_CHUNK (64 * 1024)
#define FEED_MIN (64 * 1024)     /* feed the parser once this much body has arrived */
#define STREAM_HIGH (1024 * 1024) /* stop reading while this much body waits */
#define OUT_HIGH (64 * 1024)      /* take no more requests while this much answer is unsent */
#define TURN_REQS 16              /* requests of one connection per loop iteration */
#define TICK_MS 1000              /* the per-connection timer: idle, too slow, not reading */
#define ACCEPT_BURST 16           /* connections accepted per millisecond of the loop */
/* worst cases charged against memory_budget */
#define SCRATCH_COST (1024 * 1024) /* trace, extractor, inflate window, answer */
#define STREAM_COST ((uint64_t)MF_MAX_STRING + STREAM_HIGH + 2 * READ_CHUNK + SCRATCH_COST)
#define JOB_COST ((uint64_t)MF_MAX_STRING + READ_CHUNK + SCRATCH_COST)
#define FDS_PER_JOB 5  /* report, its directory, temp file, directory scan, spare */
#define FDS_SLACK 16   /* model reload, log, libuv's own, the spare for EMFILE */

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
    int slot;       /* holds one of the max_jobs + max_queue slots */
    int recv;       /* counted in s->receiving: a stream whose body has not all arrived */
    int memwait;    /* a stream waiting in s->memq for memory_budget */
    mfd_conn_t *memq_next;
    int backlog;    /* complete requests left after its turn */
    int eof;        /* the client half-closed: finish what it sent, answer, close */
    size_t unsent;  /* answer bytes handed to libuv, not written yet */
    uint64_t last_ms;  /* last bytes read or answer written (uv_now) */
    uint64_t tick_ms;  /* the previous tick */
    uint64_t wait_ms;  /* the client's own time spent on the current request */
    uint64_t nreq;     /* request lines taken */
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
    mfd_conn_t *c;
    char *data;
    size_t len;
} write_t;

static void process_input(mfd_conn_t *c);
static void conn_close(mfd_conn_t *c, const char *why);
static void sync_reading(mfd_conn_t *c);
static void stream_end(mfd_conn_t *c);
static void slot_release(mfd_conn_t *c);
static void memq_remove(mfd_conn_t *c);
static void mem_wake(mfd_server_t *s);
static void on_turn(uv_idle_t *h);
static void answer_error(mfd_conn_t *c, const char *id, int rc, const char *msg);
static void pump_stream(mfd_conn_t *c);
static void recv_set(mfd_conn_t *c, int on);

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
    if (c->st) /* a stream abandoned by its client: it ends here */
        stream_end(c);
    slot_release(c);
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
    c->s->nopen--;
    if (why)
        mfd_log(MF_LOG_DEBUG, "connection closed: %s", why);
    if (c->s->reload_waiter == c)
        c->s->reload_waiter = NULL;
    if (c->backlog) {
        c->backlog = 0;
        c->s->nbacklog--;
    }
    memq_remove(c);
    recv_set(c, 0); /* its body will not arrive: the share of slots is free again */
    uv_close((uv_handle_t *)&c->pipe, on_handle_close);
    uv_close((uv_handle_t *)&c->idle, on_handle_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    mfd_conn_t *c = req->data;
    conn_close(c, c->eof ? "client done" : "server stopping");
}

/* Close once the answers written so far have left. */
static void conn_close_flushed(mfd_conn_t *c)
{
    if (c->closing || c->shut.data)
        return;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->pipe, on_shutdown) < 0)
        conn_close(c, c->eof ? "client done" : "server stopping");
}

void mfd__conn_shutdown(mfd_conn_t *c)
{
    c->shutdown = 1;
    if (c->memwait) { /* never started: it gets its answer now */
        memq_remove(c);
        recv_set(c, 0);
        slot_release(c);
        c->busy = 0;
        answer_error(c, c->req.id, MF_ECANCELED, "the daemon is stopping");
    }
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

/* The client still owes bytes of its current request: a partial line, a body. */
static int in_request(const mfd_conn_t *c)
{
    if (c->st)
        return c->st->remaining > 0;
    return !c->busy && (c->n > 0 || c->discard || c->skip > 0);
}

/* The daemon, not the client, is what the connection waits for. */
static int waiting_on_us(const mfd_conn_t *c)
{
    if (c->memwait || c->backlog)
        return 1;
    if (c->st)
        return c->st->feeding || c->st->remaining == 0;
    return c->busy;
}

static int want_read(const mfd_conn_t *c)
{
    if (c->closing || c->eof || c->memwait || c->backlog || c->unsent >= OUT_HIGH)
        return 0;
    if (c->st) /* a complete body: nothing more to take until it is answered */
        return c->st->remaining > 0 && c->st->npend < STREAM_HIGH;
    return !c->busy;
}

/* The one place reading starts and stops. */
static void sync_reading(mfd_conn_t *c)
{
    int want = want_read(c);
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0) {
            c->reading = 1;
            c->last_ms = c->tick_ms = uv_now(c->s->loop);
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = 0;
    }
}

static void drop(mfd_conn_t *c, const char *fmt, const char *detail)
{
    mfd_log(MF_LOG_WARN, fmt, c->peer.known ? (long)c->peer.uid : -1L,
            c->peer.known ? (long)c->peer.pid : -1L, detail);
    c->s->stats.dropped++;
    if (c->st || c->busy)
        c->s->stats.hangups++;
    conn_close(c, "dropped");
}

static void on_tick(uv_timer_t *t)
{
    mfd_conn_t *c = t->data;
    mfd_server_t *s = c->s;
    uint64_t now = uv_now(s->loop);
    if (c->reading && in_request(c))
        c->wait_ms += now - c->tick_ms;
    c->tick_ms = now;
    if (c->closing)
        return;
    if (c->reading && in_request(c) && c->wait_ms >= s->cfg.request_timeout_ms) {
        char d[128];
        snprintf(d, sizeof d, "%s not complete after %u s (request_timeout)",
                 c->st ? "classify_stream body" : "request line",
                 s->cfg.request_timeout_ms / 1000);
        drop(c, "client uid=%ld pid=%ld too slow: %s: disconnected", d);
        return;
    }
    if (waiting_on_us(c) || now - c->last_ms < s->cfg.idle_timeout_ms)
        return;
    if (c->unsent >= OUT_HIGH) {
        char d[128];
        snprintf(d, sizeof d, "%zu answer bytes unread for %u s (idle_timeout)", c->unsent,
                 s->cfg.idle_timeout_ms / 1000);
        drop(c, "client uid=%ld pid=%ld does not read its answers: %s: disconnected", d);
        return;
    }
    mfd_log(MF_LOG_INFO, "client idle for %u s%s: disconnected", s->cfg.idle_timeout_ms / 1000,
            c->st ? " in the middle of a classify_stream body" : "");
    if (c->st)
        s->stats.hangups++;
    conn_close(c, "idle timeout");
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    mfd_conn_t *c = h->data;
    if (nread == 0)
        return;
    c->last_ms = uv_now(c->s->loop);
    if (nread < 0) {
        /* A half-close after complete requests is how `... | socat` ends: they are all
         * answered first. Only a request cut short is a hang-up. */
        if (in_request(c) || (c->busy && !c->st)) {
            c->s->stats.hangups++;
            mfd_log(MF_LOG_INFO, "id=%s op=%s: client hung up mid-request (%s)", c->req.id,
                    mfp_op_name(c->req.op), nread == UV_EOF ? "EOF" : uv_strerror((int)nread));
            conn_close(c, "peer closed");
            return;
        }
        if (nread != UV_EOF) {
            conn_close(c, "peer closed");
            return;
        }
        c->eof = 1;
        sync_reading(c);
        if (!c->busy && !c->backlog)
            conn_close_flushed(c);
        return;
    }
    c->n += (size_t)nread;
    process_input(c);
}

/* ---- answers ----------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    mfd_conn_t *c = w->c;
    if (status < 0 && status != UV_ECANCELED)
        mfd_log(MF_LOG_INFO, "answer not delivered: %s", uv_strerror(status));
    int was_full = c->unsent >= OUT_HIGH;
    c->unsent -= w->len;
    free(w->data);
    free(w);
    if (status < 0 || c->closing)
        return;
    c->last_ms = uv_now(c->s->loop);
    if (was_full && c->unsent < OUT_HIGH)
        process_input(c); /* the client reads again: take its next requests */
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
    w->c = c;
    w->data = b->p;
    w->len = b->n;
    uv_buf_t ub = uv_buf_init(b->p, (unsigned)b->n);
    memset(b, 0, sizeof *b);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &ub, 1, on_write) < 0) {
        free(w->data);
        free(w);
        conn_close(c, "write failed");
        return;
    }
    c->unsent += w->len;
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
    c->wait_ms = 0;
    if (c->closing)
        return;
    if (c->shutdown) {
        conn_close_flushed(c);
        return;
    }
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
        mfd_classify_path(&j->cl, &s->cfg, j->model, &s->sc, &c->req, &c->peer);
        break;
    case J_FEED:
        mfd_classify_feed(&c->st->cl, j->buf, j->len);
        break;
    case J_FINISH:
        if (j->len)
            mfd_classify_feed(&c->st->cl, j->buf, j->len);
        /* write_back: the body was scored; its answer goes into the report at path */
        if (mfd_classify_finish(&c->st->cl) == MF_OK && c->req.write_back)
            mfd_classify_write_back(&c->st->cl, &s->cfg, c->req.path, &c->peer);
        break;
    }
}

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
        slot_release(c);
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
            answer_classify(c, &c->st->cl);
            stream_end(c);
            slot_release(c);
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
            sync_reading(c);
            return;
        }
    }
    if (!last && st->npend < FEED_MIN) {
        sync_reading(c);
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
    sync_reading(c);
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
            /* doubling: a window filled 64 KiB at a time is copied O(1) times, not O(n) */
            size_t cap = st->cap * 2 > st->npend + take ? st->cap * 2 : st->npend + take;
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
    if (st->remaining == 0) {
        recv_set(c, 0);
        c->wait_ms = 0;
    }
    pump_stream(c);
}

/* ---- slots and memory ---------------------------------------------------------------------- */

static int nslots(const mfd_server_t *s)
{
    return s->cfg.max_jobs + s->cfg.max_queue;
}

static int peer_cap(const mfd_server_t *s)
{
    int n = s->cfg.max_peer_requests ? s->cfg.max_peer_requests : nslots(s) / 2;
    return n > 0 ? n : 1;
}

/* Requests in progress for one uid: a walk over the connections, which max_conns bounds. */
static int peer_inflight(const mfd_server_t *s, uid_t uid)
{
    int n = 0;
    for (const mfd_conn_t *c = s->conns; c; c = c->next)
        n += c->slot && c->peer.known && c->peer.uid == uid;
    return n;
}

static void slot_take(mfd_conn_t *c)
{
    c->slot = 1;
    c->s->inflight++;
}

static void slot_release(mfd_conn_t *c)
{
    if (c->slot) {
        c->slot = 0;
        c->s->inflight--;
    }
}

static void recv_set(mfd_conn_t *c, int on)
{
    if (c->recv != on) {
        c->recv = on;
        c->s->receiving += on ? 1 : -1;
    }
}

/* A connection's buffers at worst: a request line and a read, unsent answers, the rest. */
static uint64_t conn_cost(const mfd_server_t *s)
{
    return (uint64_t)s->cfg.max_request + 2 * READ_CHUNK + OUT_HIGH + 4096;
}

/* What is charged without the streams: the start, the pool's parses, the connections. */
static uint64_t mem_fixed(const mfd_server_t *s)
{
    return s->mem_base + (uint64_t)s->cfg.max_jobs * JOB_COST + (uint64_t)s->nconns * conn_cost(s);
}

/* May one more stream hold its memory? Always when none does, so that a budget below one
 * stream's worst case slows streams down to one at a time instead of stopping them. */
static int mem_fits(const mfd_server_t *s)
{
    return s->nstreams_mem == 0 ||
           mem_fixed(s) + (uint64_t)(s->nstreams_mem + 1) * STREAM_COST <= s->cfg.memory_budget;
}

static int same_peer(const mfd_conn_t *a, const mfd_conn_t *b)
{
    return a->peer.known == b->peer.known && (!a->peer.known || a->peer.uid == b->peer.uid);
}

/* May c's stream take memory now? It must fit; and while another uid's stream waits, a uid
 * holding half of the streams the budget allows must let it go first, so that one user's
 * stalled streams cannot keep the others out (alone, a uid may use it all). */
static int mem_allowed(const mfd_server_t *s, const mfd_conn_t *c)
{
    if (!mem_fits(s))
        return 0;
    int other_waits = 0;
    for (const mfd_conn_t *w = s->memq; w && !other_waits; w = w->memq_next)
        other_waits = !same_peer(w, c);
    if (!other_waits)
        return 1;
    uint64_t fixed = mem_fixed(s);
    uint64_t fit = s->cfg.memory_budget > fixed ? (s->cfg.memory_budget - fixed) / STREAM_COST : 0;
    int held = 0;
    for (const mfd_conn_t *o = s->conns; o; o = o->next)
        held += o->st && same_peer(o, c);
    return held == 0 || (uint64_t)held < fit / 2;
}

/* The first waiting stream that may take memory now, or NULL. */
static mfd_conn_t *memq_next_allowed(const mfd_server_t *s)
{
    for (mfd_conn_t *c = s->memq; c; c = c->memq_next)
        if (mem_allowed(s, c))
            return c;
    return NULL;
}

static void memq_remove(mfd_conn_t *c)
{
    mfd_server_t *s = c->s;
    if (!c->memwait)
        return;
    mfd_conn_t **pp = &s->memq, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->memq_next;
    }
    if (*pp)
        *pp = c->memq_next;
    if (s->memq_tail == c)
        s->memq_tail = prev;
    c->memq_next = NULL;
    c->memwait = 0;
}

static void stream_end(mfd_conn_t *c)
{
    stream_t *st = c->st;
    if (!st)
        return;
    c->st = NULL;
    recv_set(c, 0);
    mfd_classify_destroy(&st->cl);
    free(st->pend);
    free(st);
    c->s->nstreams_mem--;
    mem_wake(c->s);
}

/* ---- requests ---------------------------------------------------------------------------- */

static int admit(mfd_conn_t *c, int stream, char *msg, size_t cap)
{
    mfd_server_t *s = c->s;
    if (s->stopping) {
        snprintf(msg, cap, "the daemon is stopping");
        return MF_ECANCELED;
    }
    int slots = nslots(s);
    if (s->inflight >= slots) {
        s->stats.busy++;
        snprintf(msg, cap, "busy: %d requests in progress (max_jobs + max_queue)", s->inflight);
        return MF_ELIMIT;
    }
    /* bodies that are still arriving depend on their clients: a quarter stays for others */
    if (stream && s->receiving >= slots - slots / 4) {
        s->stats.busy++;
        snprintf(msg, cap, "busy: %d classify_stream bodies arriving (the rest of max_jobs + "
                 "max_queue is kept for other requests)", s->receiving);
        return MF_ELIMIT;
    }
    if (c->peer.known && peer_inflight(s, c->peer.uid) >= peer_cap(s)) {
        s->stats.busy++;
        snprintf(msg, cap, "busy: uid %ld has %d requests in progress (max_peer_requests)",
                 (long)c->peer.uid, peer_cap(s));
        return MF_ELIMIT;
    }
    return MF_OK;
}

static void start_classify(mfd_conn_t *c)
{
    char msg[256];
    int rc = admit(c, 0, msg, sizeof msg);
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
    slot_take(c);
}

/* A stream admitted and within the budget: set up its parser; its body comes next. */
static void stream_begin(mfd_conn_t *c)
{
    mfd_server_t *s = c->s;
    char msg[600];
    int rc = MF_OK;
    stream_t *st = calloc(1, sizeof *st);
    if (!st) {
        rc = MF_ENOMEM;
        snprintf(msg, sizeof msg, "out of memory");
    } else if (s->stopping) {
        rc = MF_ECANCELED;
        snprintf(msg, sizeof msg, "the daemon is stopping");
        free(st);
    } else if (mfd_classify_init(&st->cl, s->model, &s->sc, c->req.mode, c->req.top,
                                 s->cfg.max_report_bytes, 0) != MF_OK) {
        rc = st->cl.rc;
        snprintf(msg, sizeof msg, "%s", st->cl.err);
        mfd_classify_destroy(&st->cl);
        free(st);
    }
    if (rc != MF_OK) {
        c->skip = (uint64_t)c->req.bytes;
        recv_set(c, 0);
        slot_release(c);
        c->busy = 0;
        log_request(c, rc, msg, NULL, 0, 0);
        answer_error(c, c->req.id, rc, msg);
        return;
    }
    st->remaining = (uint64_t)c->req.bytes;
    c->st = st;
    s->nstreams_mem++;
    s->stats.streams++;
    if (st->remaining == 0) {
        recv_set(c, 0);
        pump_stream(c);
    }
}

/* Streams that waited for memory start, in order, while they fit (and their uid's share). */
static void mem_wake(mfd_server_t *s)
{
    mfd_conn_t *c;
    while ((c = memq_next_allowed(s))) {
        memq_remove(c);
        stream_begin(c);
        if (!c->closing)
            process_input(c);
    }
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
        rc = admit(c, 1, msg, sizeof msg);
    }
    if (rc != MF_OK) {
        /* the body follows anyway: drop it so the next line is read right */
        c->skip = (uint64_t)c->req.bytes;
        log_request(c, rc, msg, NULL, 0, 0);
        answer_error(c, c->req.id, rc, msg);
        return;
    }
    c->busy = 1;
    slot_take(c);
    recv_set(c, 1);
    if (!mem_allowed(s, c) || memq_next_allowed(s)) {
        /* wait for memory_budget without reading the body: the client's bytes stay in the
         * kernel, and the request keeps its place */
        c->memwait = 1;
        if (s->memq_tail)
            s->memq_tail->memq_next = c;
        else
            s->memq = c;
        s->memq_tail = c;
        s->stats.mem_waits++;
        mfd_log(MF_LOG_DEBUG, "id=%s: classify_stream waits for memory_budget (%d streams open)",
                c->req.id, s->nstreams_mem);
        return;
    }
    stream_begin(c);
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

/* Take the requests in c->in, at most TURN_REQS of them: the rest waits for the next turn,
 * so that a client pipelining thousands of requests shares the loop with the others. */
static void process_input(mfd_conn_t *c)
{
    int turn = TURN_REQS;
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
            break;
        }
        if (c->busy || c->memwait || c->unsent >= OUT_HIGH)
            break;
        if (turn == 0) {
            if (!c->backlog) {
                c->backlog = 1;
                c->s->nbacklog++;
                uv_idle_start(&c->s->turn, on_turn);
            }
            break;
        }
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
            break;
        }
        size_t len = (size_t)(nl - c->in);
        size_t k = len + 1;
        /* blank lines are keep-alives, not requests */
        size_t i = 0;
        while (i < len && (c->in[i] == ' ' || c->in[i] == '\t' || c->in[i] == '\r'))
            i++;
        if (i < len) {
            turn--;
            c->nreq++;
            c->wait_ms = 0; /* the line is complete: its body (if any) starts a new clock */
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
    if (c->closing)
        return;
    if (c->n == 0 && c->cap > 2 * READ_CHUNK) { /* a big line is done: give it back */
        free(c->in);
        c->in = NULL;
        c->cap = 0;
    }
    sync_reading(c);
    if (c->eof && !c->busy && !c->backlog && c->n == 0)
        conn_close_flushed(c); /* everything the client sent is answered */
}

/* The connections that had requests left after their turn take the next one. */
static void on_turn(uv_idle_t *h)
{
    mfd_server_t *s = h->data;
    if (s->accept_deferred) {
        s->accept_deferred = 0;
        if (s->listening > 0) {
            s->accept_ms = uv_now(s->loop);
            s->accepts = 1;
            mfd__conn_accept(s);
        }
    }
    for (mfd_conn_t *c = s->conns; c && s->nbacklog > 0; c = c->next) {
        if (!c->backlog)
            continue;
        c->backlog = 0;
        s->nbacklog--;
        process_input(c);
    }
    if (s->nbacklog == 0 && !s->accept_deferred)
        uv_idle_stop(&s->turn);
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

/* Refusals and evictions are logged at most once a second, with how many since the last. */
static void log_full(mfd_server_t *s)
{
    uint64_t now = uv_now(s->loop);
    if (s->refuse_log_ms && now - s->refuse_log_ms < 1000)
        return;
    s->refuse_log_ms = now;
    mfd_log(MF_LOG_WARN, "connections full (%d, max_clients %d, fd/budget cap %d): closed %llu "
            "idle connection(s) for newcomers, refused %llu (none idle) since the last such line",
            s->nopen, s->cfg.max_clients, s->max_conns,
            (unsigned long long)s->evicted_unlogged, (unsigned long long)s->refused_unlogged);
    s->evicted_unlogged = s->refused_unlogged = 0;
}

static int conn_cap(const mfd_server_t *s)
{
    return s->cfg.max_clients < s->max_conns ? s->cfg.max_clients : s->max_conns;
}

/* Close an idle connection (no request in progress, nothing unsent) for a newcomer: one
 * that never completed a request first (a slowloris costs nothing to drop, a client that
 * was served may be back), then the one idle the longest. 1 done, 0 none idle. */
static int evict_idle(mfd_server_t *s)
{
    mfd_conn_t *old = NULL;
    for (mfd_conn_t *c = s->conns; c; c = c->next) {
        if (c->closing || c->busy || c->st || c->memwait || c->backlog || c->unsent)
            continue;
        if (!old || (c->nreq == 0 && old->nreq > 0) ||
            ((c->nreq == 0) == (old->nreq == 0) && c->last_ms < old->last_ms))
            old = c;
    }
    if (!old)
        return 0;
    s->stats.evicted++;
    s->evicted_unlogged++;
    conn_close(old, "evicted for a newcomer");
    return 1;
}

/* libuv accepts for as long as connections arrive, all in one loop iteration: a storm of
 * them would starve the clients already connected. Past ACCEPT_BURST in a millisecond the
 * connection is left pending (libuv stops watching the socket until it is accepted) and
 * taken on the next turn of the loop, after the others' I/O. */
void mfd__conn_incoming(mfd_server_t *s)
{
    uint64_t now = uv_now(s->loop);
    if (now != s->accept_ms) {
        s->accept_ms = now;
        s->accepts = 0;
    }
    if (s->accepts >= ACCEPT_BURST) {
        s->accept_deferred = 1;
        uv_idle_start(&s->turn, on_turn);
        return;
    }
    s->accepts++;
    mfd__conn_accept(s);
}

void mfd__conn_accept(mfd_server_t *s)
{
    int full = s->nopen >= conn_cap(s) && !evict_idle(s);
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
    s->nopen++;
    int rc = uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->pipe);
    if (rc < 0) {
        mfd_log(MF_LOG_WARN, "accept: %s", uv_strerror(rc));
        conn_close(c, "accept failed");
        return;
    }
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0)
        c->peer = mfd_peer_of_fd(fd);
    if (full) {
        s->stats.refused++;
        s->refused_unlogged++;
        conn_close(c, "too many clients");
    }
    if (s->evicted_unlogged || s->refused_unlogged)
        log_full(s);
    if (full)
        return;
    c->last_ms = c->tick_ms = uv_now(s->loop);
    unsigned tick = s->cfg.idle_timeout_ms < TICK_MS ? s->cfg.idle_timeout_ms : TICK_MS;
    uv_timer_start(&c->idle, on_tick, tick, tick);
    sync_reading(c);
}

/* Open fds now: what the daemon holds before any client. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return FDS_SLACK;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

void mfd__conns_init(mfd_server_t *s)
{
    uv_idle_init(s->loop, &s->turn);
    s->turn.data = s;
    long rss = mfd__rss_kb();
    s->mem_base = rss > 0 ? (uint64_t)rss * 1024 : 0;
    /* fds: each connection takes one; the jobs in flight must still open their reports */
    struct rlimit rl;
    long fds = 1L << 20;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        fds = (long)rl.rlim_cur;
    long by_fd = fds - count_fds() - (long)FDS_PER_JOB * s->cfg.max_jobs - FDS_SLACK;
    /* memory: every connection's worst case, next to the parses of max_jobs and one stream */
    uint64_t need = mem_fixed(s) + STREAM_COST;
    long by_mem = need < s->cfg.memory_budget
                      ? (long)((s->cfg.memory_budget - need) / conn_cost(s)) : 1;
    if (need >= s->cfg.memory_budget)
        mfd_log(MF_LOG_WARN, "memory_budget %llu MiB is below what the model (%llu MiB now), "
                "max_jobs parses and one stream need: streams run one at a time",
                (unsigned long long)(s->cfg.memory_budget >> 20),
                (unsigned long long)(s->mem_base >> 20));
    long cap = by_fd < by_mem ? by_fd : by_mem;
    if (cap < 1)
        cap = 1;
    s->max_conns = cap > 1000000 ? 1000000 : (int)cap;
    if (s->max_conns < s->cfg.max_clients)
        mfd_log(MF_LOG_WARN, "at most %d connections, not max_clients %d: %s", s->max_conns,
                s->cfg.max_clients, by_fd < by_mem ? "the fd limit (ulimit -n) and the fds kept "
                "for the work in flight" : "memory_budget");
}

void mfd__conns_close(mfd_server_t *s)
{
    if (s->turn.data && !uv_is_closing((uv_handle_t *)&s->turn))
        uv_close((uv_handle_t *)&s->turn, NULL);
}
