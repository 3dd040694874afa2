/* proto.c - the request-line parser and the client end of the socket.
 *
 * The parser uses yajl's callback interface rather than its tree: a request is a flat object,
 * so we keep a small state (current key, depth) and never build anything. Unknown keys are
 * allowed (later protocol versions may add some) but their values may nest only MFP_REQ_DEPTH
 * deep, which bounds the parser's work on a hostile line.
 */
#include "proto.h"

#include "score.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yajl/yajl_parse.h>

/* ---- request parsing --------------------------------------------------------------------- */

enum {
    K_NONE = 0, K_OP, K_ID, K_PATH, K_MODE, K_WRITE_BACK, K_TOP, K_TASK_ID, K_BYTES, K_OTHER
};

static const char *const key_names[] = {
    [K_OP] = "op", [K_ID] = "id", [K_PATH] = "path", [K_MODE] = "mode",
    [K_WRITE_BACK] = "write_back", [K_TOP] = "top", [K_TASK_ID] = "task_id",
    [K_BYTES] = "bytes",
};

typedef struct {
    mfp_req_t *r;
    int depth;      /* 1 inside the request object */
    int key;        /* K_* of the value about to come at depth 1 */
    unsigned seen;  /* bit per K_* already given, to refuse duplicates */
    int rc;         /* first error found by a callback */
    char *msg;
    size_t cap;
} pstate_t;

static int fail(pstate_t *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(pstate_t *s, int rc, const char *fmt, ...)
{
    if (s->rc == MF_OK) {
        s->rc = rc;
        if (s->msg && s->cap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(s->msg, s->cap, fmt, ap);
            va_end(ap);
        }
    }
    return 0; /* stops yajl */
}

/* Common check for any value: top level must be an object; nested values of unknown keys
 * are skipped. Returns 1 when the value belongs to a known key of the request object. */
static int at_field(pstate_t *s)
{
    if (s->depth == 0) {
        fail(s, MF_EJSON, "a request must be a JSON object");
        return -1;
    }
    return s->depth == 1 && s->key != K_OTHER;
}

static int bad_type(pstate_t *s, const char *want)
{
    return fail(s, MF_EINVAL, "\"%s\" must be %s", key_names[s->key], want);
}

static int on_null(void *ctx)
{
    pstate_t *s = ctx;
    int f = at_field(s);
    if (f < 0)
        return 0;
    if (f == 1) {
        if (s->key == K_ID)
            return 1; /* id null = absent */
        return bad_type(s, "given a value, not null");
    }
    return 1;
}

static int on_bool(void *ctx, int v)
{
    pstate_t *s = ctx;
    int f = at_field(s);
    if (f < 0)
        return 0;
    if (f == 1) {
        if (s->key != K_WRITE_BACK)
            return bad_type(s, s->key == K_ID ? "a string or a number" : "of another type");
        s->r->write_back = v != 0;
    }
    return 1;
}

/* yajl hands numbers as text (yajl_number): we keep the text for "id" and check integers
 * ourselves, which avoids yajl's own overflow handling. */
static int on_number(void *ctx, const char *num, size_t len)
{
    pstate_t *s = ctx;
    int f = at_field(s);
    if (f < 0)
        return 0;
    if (f == 0)
        return 1;
    if (s->key == K_ID) {
        if (len >= MFP_ID_MAX)
            return fail(s, MF_ELIMIT, "\"id\" longer than %d bytes", MFP_ID_MAX - 1);
        memcpy(s->r->id, num, len);
        s->r->id[len] = '\0';
        return 1;
    }
    if (s->key != K_TOP && s->key != K_TASK_ID && s->key != K_BYTES)
        return bad_type(s, s->key == K_WRITE_BACK ? "true or false" : "a string");
    /* a non-negative integer of at most 18 digits: no sign, fraction or exponent */
    if (len == 0 || len > 18)
        return fail(s, MF_EINVAL, "\"%s\" out of range", key_names[s->key]);
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (num[i] < '0' || num[i] > '9')
            return fail(s, MF_EINVAL, "\"%s\" must be a non-negative integer",
                        key_names[s->key]);
        v = v * 10 + (num[i] - '0');
    }
    if (s->key == K_TOP) {
        if (v < 1 || v > MF_MAX_TOP)
            return fail(s, MF_EINVAL, "\"top\" must be 1..%d", MF_MAX_TOP);
        s->r->top = (int)v;
    } else if (s->key == K_TASK_ID) {
        s->r->task_id = v;
    } else {
        s->r->bytes = v;
    }
    return 1;
}

static const struct {
    const char *name;
    mfp_op op;
} ops[] = {
    {"ping", MFP_OP_PING},         {"stats", MFP_OP_STATS},
    {"reload", MFP_OP_RELOAD},     {"classify", MFP_OP_CLASSIFY},
    {"classify_stream", MFP_OP_STREAM},
};

const char *mfp_op_name(mfp_op op)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (ops[i].op == op)
            return ops[i].name;
    return "";
}

static int on_string(void *ctx, const unsigned char *str, size_t len)
{
    pstate_t *s = ctx;
    int f = at_field(s);
    if (f < 0)
        return 0;
    if (f == 0)
        return 1;
    const char *v = (const char *)str; /* borrowed, not NUL-terminated */
    switch (s->key) {
    case K_OP:
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (strlen(ops[i].name) == len && memcmp(ops[i].name, v, len) == 0) {
                s->r->op = ops[i].op;
                return 1;
            }
        return fail(s, MF_EINVAL, "unknown op \"%.*s\"", len > 40 ? 40 : (int)len, v);
    case K_ID: {
        /* kept as JSON text: re-escape into a bounded buffer */
        mfp_buf_t b = {0};
        mfp_buf_json_str(&b, v, len);
        int ok = !b.oom && b.n < MFP_ID_MAX;
        if (ok) {
            memcpy(s->r->id, b.p, b.n);
            s->r->id[b.n] = '\0';
        }
        int oom = b.oom;
        mfp_buf_free(&b);
        if (oom)
            return fail(s, MF_ENOMEM, "out of memory");
        if (!ok)
            return fail(s, MF_ELIMIT, "\"id\" longer than %d bytes", MFP_ID_MAX - 1);
        return 1;
    }
    case K_PATH:
        if (len == 0)
            return fail(s, MF_EINVAL, "\"path\" is empty");
        if (len >= MFP_PATH_MAX)
            return fail(s, MF_ELIMIT, "\"path\" longer than %d bytes", MFP_PATH_MAX - 1);
        if (memchr(v, '\0', len))
            return fail(s, MF_EINVAL, "\"path\" contains a NUL byte");
        memcpy(s->r->path, v, len);
        s->r->path[len] = '\0';
        return 1;
    case K_MODE:
        if (len == 0 || len >= MFP_MODE_MAX || memchr(v, '\0', len))
            return fail(s, MF_EINVAL, "bad \"mode\"");
        memcpy(s->r->mode, v, len);
        s->r->mode[len] = '\0';
        return 1;
    default:
        return bad_type(s, s->key == K_WRITE_BACK ? "true or false" : "a number");
    }
}

static int on_start_map(void *ctx)
{
    pstate_t *s = ctx;
    if (s->depth >= 1 && at_field(s) == 1)
        return bad_type(s, "a scalar");
    if (++s->depth > MFP_REQ_DEPTH)
        return fail(s, MF_ELIMIT, "nesting deeper than %d", MFP_REQ_DEPTH);
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    pstate_t *s = ctx;
    if (s->depth != 1)
        return 1;
    s->key = K_OTHER;
    for (int k = K_OP; k < K_OTHER; k++)
        if (strlen(key_names[k]) == len && memcmp(key_names[k], key, len) == 0) {
            if (s->seen & (1u << k))
                return fail(s, MF_EINVAL, "duplicate key \"%s\"", key_names[k]);
            s->seen |= 1u << k;
            s->key = k;
            break;
        }
    return 1;
}

static int on_end_map(void *ctx)
{
    pstate_t *s = ctx;
    s->depth--;
    return 1;
}

static int on_start_array(void *ctx)
{
    pstate_t *s = ctx;
    if (s->depth == 0)
        return fail(s, MF_EJSON, "a request must be a JSON object");
    if (at_field(s) == 1)
        return bad_type(s, "a scalar");
    if (++s->depth > MFP_REQ_DEPTH)
        return fail(s, MF_ELIMIT, "nesting deeper than %d", MFP_REQ_DEPTH);
    return 1;
}

static int on_end_array(void *ctx)
{
    return on_end_map(ctx);
}

static const yajl_callbacks req_cbs = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

void mfp_req_init(mfp_req_t *r)
{
    memset(r, 0, sizeof *r);
    strcpy(r->id, "null");
    r->task_id = -1;
    r->bytes = -1;
}

int mfp_req_parse(mfp_req_t *r, const char *line, size_t len, char *msg, size_t cap)
{
    mfp_req_init(r);
    if (msg && cap)
        msg[0] = '\0';
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    pstate_t s = {.r = r, .msg = msg, .cap = cap};
    if (len == 0)
        return fail(&s, MF_EJSON, "empty request"), s.rc;
    if (len > MF_MAX_REQUEST)
        return fail(&s, MF_ELIMIT, "request longer than %d bytes", MF_MAX_REQUEST), s.rc;
    yajl_handle h = yajl_alloc(&req_cbs, NULL, &s);
    if (!h)
        return fail(&s, MF_ENOMEM, "out of memory"), s.rc;
    yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st == yajl_status_error && s.rc == MF_OK) {
        /* yajl's message names the offending bytes; keep its first line only */
        unsigned char *e = yajl_get_error(h, 0, (const unsigned char *)line, len);
        char *el = e ? (char *)e : NULL;
        if (el) {
            char *nl = strchr(el, '\n');
            if (nl)
                *nl = '\0';
        }
        fail(&s, MF_EJSON, "%s", el && *el ? el : "malformed JSON");
        if (e)
            yajl_free_error(h, e);
    }
    yajl_free(h);
    if (s.rc != MF_OK)
        return s.rc;
    if (r->op == MFP_OP_NONE)
        return fail(&s, MF_EINVAL, "missing \"op\""), s.rc;
    if (r->op == MFP_OP_CLASSIFY && !r->path[0])
        return fail(&s, MF_EINVAL, "classify needs \"path\""), s.rc;
    if (r->op == MFP_OP_STREAM && r->bytes < 0)
        return fail(&s, MF_EINVAL, "classify_stream needs \"bytes\""), s.rc;
    /* classify_stream scores its body but writes the answer into the report at "path" */
    if (r->op == MFP_OP_STREAM && r->write_back && !r->path[0])
        return fail(&s, MF_EINVAL, "classify_stream with write_back needs \"path\""), s.rc;
    return MF_OK;
}

/* ---- client ------------------------------------------------------------------------------ */

int mfp_client_open(mfp_client_t *c, const char *path, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return MF_EINVAL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return MF_EIO;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        /* say what to do: these are the mistakes operators make */
        int e = errno;
        struct stat st;
        int rc = e == ENOENT ? MF_ENOENT : e == EACCES ? MF_EPERM : MF_EIO;
        if (e == ECONNREFUSED && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
            snprintf(err, errlen, "%s is not a socket (give malfamd's: --socket, $MALFAM_SOCKET)",
                     path);
        else if (e == ENOENT)
            snprintf(err, errlen, "%s: no such socket: is malfamd running (systemctl status "
                     "malfamd)? Else give its socket: --socket, $MALFAM_SOCKET", path);
        else if (e == ECONNREFUSED)
            snprintf(err, errlen, "%s: nothing listens: malfamd stopped or died (systemctl "
                     "status malfamd)", path);
        else if (e == EACCES)
            snprintf(err, errlen, "%s: permission denied: join the socket's group "
                     "(socket_group in malfamd.conf) or run as its owner", path);
        else
            snprintf(err, errlen, "connect %s: %s", path, strerror(e));
        close(fd);
        return rc;
    }
    c->fd = fd;
    return MF_OK;
}

void mfp_client_close(mfp_client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

int mfp_client_send(mfp_client_t *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return MF_EIO;
        }
        p += w;
        len -= (size_t)w;
    }
    return MF_OK;
}

int mfp_client_recv(mfp_client_t *c, char **line, size_t max, int timeout_ms)
{
    *line = NULL;
    for (;;) {
        char *nl = c->n ? memchr(c->in, '\n', c->n) : NULL;
        if (nl) {
            size_t len = (size_t)(nl - c->in);
            char *out = malloc(len + 1);
            if (!out)
                return MF_ENOMEM;
            memcpy(out, c->in, len);
            out[len] = '\0';
            memmove(c->in, nl + 1, c->n - len - 1);
            c->n -= len + 1;
            *line = out;
            return MF_OK;
        }
        if (c->n > max)
            return MF_ELIMIT;
        if (c->cap - c->n < 4096) {
            size_t cap = c->cap ? c->cap * 2 : 8192;
            char *p = realloc(c->in, cap);
            if (!p)
                return MF_ENOMEM;
            c->in = p;
            c->cap = cap;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return MF_EIO;
        ssize_t r = read(c->fd, c->in + c->n, c->cap - c->n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return MF_EIO;
        c->n += (size_t)r;
    }
}
