/* trace.c - traces, and the streaming extractor of API calls from report.json.
 *
 * The extractor keeps one role per open JSON container (root, behavior, processes array,
 * process, calls array, call, other). A key inside a known map sets what the next value is;
 * everything else is skipped by counting depth, without copying. A call is emitted when its
 * object closes, because "repeated" comes after "api" in CAPE and key order is not guaranteed.
 */
#include "trace.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include <zlib.h>

#include "internal.h"
#include "mf.h"

/* ---- traces ------------------------------------------------------------------------------ */

void mf_trace_init(mf_trace_t *t)
{
    memset(t, 0, sizeof *t);
}

void mf_trace_destroy(mf_trace_t *t)
{
    mf__free(t->ids);
    mf_trace_init(t);
}

int mf_trace_push(mf_trace_t *t, int32_t id)
{
    if (t->n == t->cap && mf__grow((void **)&t->ids, &t->cap, t->n + 1, sizeof *t->ids))
        return MF_ENOMEM;
    t->ids[t->n++] = id;
    return MF_OK;
}

void mf_trace_prep(mf_trace_t *t, int fold, size_t max_len)
{
    if (fold && t->n > 1) {
        size_t w = 1;
        for (size_t r = 1; r < t->n; r++)
            if (t->ids[r] != t->ids[w - 1])
                t->ids[w++] = t->ids[r];
        t->n = w;
    }
    if (max_len && t->n > max_len)
        t->n = max_len;
}

/* ---- extractor state --------------------------------------------------------------------- */

enum role {
    R_OTHER = 0, /* skipped container */
    R_ROOT,      /* the top-level object */
    R_INFO,      /* info */
    R_BEHAVIOR,  /* behavior */
    R_PROCS,     /* behavior.processes or a bare processes array */
    R_PROC,      /* one process */
    R_CALLS,     /* its calls array */
    R_CALL,      /* one call */
    /* scalar values we keep */
    V_INFO_ID,
    V_PID,
    V_PNAME,
    V_API,
    V_REPEATED,
};

struct mf_extract {
    yajl_handle yh;
    mf_extract_opts_t opts;
    mf_vocab_t *vocab;
    mf_extract_cbs_t cbs;
    void *ud;

    unsigned char role[MF_MAX_DEPTH + 1]; /* role of the open container at each depth */
    int depth;                            /* 0 = outside the root value */
    int expect;                           /* role of the value after the last key */

    /* the current process */
    int64_t pid;
    char pname[MF_MAX_PROC_NAME + 1];
    size_t proc_calls;
    char last_api[MF_MAX_API_LEN + 1]; /* last emitted name in this process (fold) */
    size_t last_len;

    /* the current call */
    char api[MF_MAX_API_LEN + 1];
    size_t api_len;
    int has_api;
    uint32_t repeated;

    uint64_t *seen; /* (MF_MAX_VOCAB/64) bitset of emitted ids, for stats.distinct */
    mf_extract_stats_t st;

    uint64_t chunk_base; /* bytes fed before the current chunk */
    uint64_t last_token; /* absolute offset just after the last token a callback saw */
    int stopped;         /* a cap or callback ended the parse early */
    int err;             /* sticky error */
    char errmsg[256];
};

/* Record our own error (it cancels the parse); the message names the byte offset. */
static int fail(mf_extract_t *ex, int err, const char *what)
{
    if (!ex->err) {
        ex->err = err;
        uint64_t at = ex->chunk_base + yajl_get_bytes_consumed(ex->yh);
        snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: %s", (unsigned long long)at, what);
    }
    return 0;
}

static void mark_token(mf_extract_t *ex)
{
    ex->last_token = ex->chunk_base + yajl_get_bytes_consumed(ex->yh);
}

/* Role of the value that starts now in the current container. */
static int value_role(mf_extract_t *ex)
{
    switch (ex->role[ex->depth]) {
    case R_PROCS:
        return R_PROC;
    case R_CALLS:
        return R_CALL;
    case R_OTHER:
        return R_OTHER;
    default: /* a known map: set by the last key */
        return ex->expect;
    }
}

static const char *role_what(int r)
{
    switch (r) {
    case R_BEHAVIOR: return "\"behavior\" is not an object";
    case R_PROCS: return "\"processes\" is not an array";
    case R_PROC: return "a process is not an object";
    case R_CALLS: return "\"calls\" is not an array";
    case R_CALL: return "a call is not an object";
    case V_API: return "\"api\" is not a string";
    case V_REPEATED: return "\"repeated\" is not a non-negative integer";
    default: return "unexpected type";
    }
}

/* A scalar arrived where role `r` was expected: containers must not be scalars. */
static int scalar_ok(mf_extract_t *ex, int r)
{
    if (r >= R_BEHAVIOR && r <= R_CALL)
        return fail(ex, MF_ETYPE, role_what(r));
    if (r == V_API || r == V_REPEATED)
        return fail(ex, MF_ETYPE, role_what(r));
    return 1;
}

static int emit(mf_extract_t *ex)
{
    if (ex->opts.repeat == MF_REPEAT_FOLD && ex->last_len == ex->api_len &&
        memcmp(ex->last_api, ex->api, ex->api_len) == 0)
        return 1;
    memcpy(ex->last_api, ex->api, ex->api_len + 1);
    ex->last_len = ex->api_len;

    int id = ex->opts.grow_vocab ? mf_vocab_add(ex->vocab, ex->api, ex->api_len)
                                 : mf_vocab_find(ex->vocab, ex->api, ex->api_len);
    if (id == MF_ENOMEM)
        return fail(ex, MF_ENOMEM, "out of memory");
    if (id < 0) /* MF_UNK, or a grown vocabulary at its size limit */
        id = MF_UNK;
    if (id == MF_UNK) {
        ex->st.unknown++;
    } else if (id < MF_MAX_VOCAB && !(ex->seen[id >> 6] & (1ull << (id & 63)))) {
        ex->seen[id >> 6] |= 1ull << (id & 63);
        ex->st.distinct++;
    }
    ex->st.calls++;
    ex->proc_calls++;
    if (ex->cbs.on_call) {
        mf_call_t c = {ex->api, ex->api_len, id, (uint32_t)ex->st.processes, ex->repeated};
        if (ex->cbs.on_call(ex->ud, &c)) {
            ex->stopped = 1;
            return 0;
        }
    }
    if (ex->opts.max_calls && ex->st.calls >= ex->opts.max_calls) {
        ex->stopped = 1;
        return 0;
    }
    return 1;
}

static int end_call(mf_extract_t *ex)
{
    ex->st.entries++;
    if (!ex->has_api) {
        ex->st.noapi++;
        return 1;
    }
    uint32_t n = 1;
    if (ex->opts.repeat == MF_REPEAT_EXPAND)
        n += ex->repeated < MF_MAX_REPEATED ? ex->repeated : MF_MAX_REPEATED;
    for (uint32_t i = 0; i < n; i++)
        if (!emit(ex))
            return 0;
    return 1;
}

static int end_proc(mf_extract_t *ex)
{
    int go = 1;
    if (ex->cbs.on_proc) {
        mf_proc_t p = {(uint32_t)ex->st.processes, ex->pid, ex->pname, ex->proc_calls};
        if (ex->cbs.on_proc(ex->ud, &p)) {
            ex->stopped = 1;
            go = 0;
        }
    }
    ex->st.processes++;
    return go;
}

/* ---- yajl callbacks ---------------------------------------------------------------------- */

static int open_container(mf_extract_t *ex, int is_map)
{
    int r = ex->depth == 0 ? R_ROOT : value_role(ex);
    ex->expect = R_OTHER;
    mark_token(ex);
    if (ex->depth == 0 && !is_map)
        return fail(ex, MF_ETYPE, "report is not a JSON object");
    if (ex->depth >= MF_MAX_DEPTH)
        return fail(ex, MF_ELIMIT, "nesting deeper than MF_MAX_DEPTH");
    int want_array = (r == R_PROCS || r == R_CALLS);
    if (r >= V_INFO_ID) {
        if (r == V_API || r == V_REPEATED)
            return fail(ex, MF_ETYPE, role_what(r));
        r = R_OTHER; /* pid or process name of an odd type: ignored */
    } else if (r == R_INFO && !is_map) {
        r = R_OTHER; /* info is only read for its id */
    } else if (r != R_OTHER && r != R_ROOT && want_array != !is_map) {
        return fail(ex, MF_ETYPE, role_what(r));
    }
    ex->role[++ex->depth] = (unsigned char)r;
    if (r == R_BEHAVIOR || r == R_PROCS)
        ex->st.has_behavior = 1;
    if (r == R_PROC) {
        ex->pid = -1;
        ex->pname[0] = '\0';
        ex->proc_calls = 0;
        ex->last_len = (size_t)-1; /* nothing emitted yet in this process */
    } else if (r == R_CALL) {
        ex->has_api = 0;
        ex->repeated = 0;
    }
    return 1;
}

static int close_container(mf_extract_t *ex)
{
    int r = ex->role[ex->depth--];
    ex->expect = R_OTHER;
    mark_token(ex);
    if (r == R_CALL)
        return end_call(ex);
    if (r == R_PROC)
        return end_proc(ex);
    return 1;
}

static int cb_start_map(void *ctx)
{
    return open_container(ctx, 1);
}

static int cb_start_array(void *ctx)
{
    return open_container(ctx, 0);
}

static int cb_end(void *ctx)
{
    return close_container(ctx);
}

static int key_is(const unsigned char *k, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(k, lit, l) == 0;
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t n)
{
    mf_extract_t *ex = ctx;
    int e = R_OTHER;
    switch (ex->role[ex->depth]) {
    case R_ROOT:
        if (key_is(k, n, "behavior"))
            e = R_BEHAVIOR;
        else if (key_is(k, n, "processes"))
            e = R_PROCS;
        else if (key_is(k, n, "info"))
            e = R_INFO;
        break;
    case R_INFO:
        if (key_is(k, n, "id"))
            e = V_INFO_ID;
        break;
    case R_BEHAVIOR:
        if (key_is(k, n, "processes"))
            e = R_PROCS;
        break;
    case R_PROC:
        if (key_is(k, n, "calls"))
            e = R_CALLS;
        else if (key_is(k, n, "pid") || key_is(k, n, "process_id"))
            e = V_PID;
        else if (key_is(k, n, "process_name"))
            e = V_PNAME;
        break;
    case R_CALL:
        if (key_is(k, n, "api"))
            e = V_API;
        else if (key_is(k, n, "repeated"))
            e = V_REPEATED;
        break;
    default:
        break;
    }
    ex->expect = e;
    mark_token(ex);
    return 1;
}

/* Parse a JSON number token as a signed 64-bit integer; 0 when it is not one. */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
    int neg = n && s[0] == '-';
    size_t i = (size_t)neg;
    if (i == n)
        return 0;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (uint64_t)INT64_MAX / 10)
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return 0;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 1;
}

static int cb_number(void *ctx, const char *s, size_t n)
{
    mf_extract_t *ex = ctx;
    int r = value_role(ex);
    ex->expect = R_OTHER;
    mark_token(ex);
    int64_t v;
    switch (r) {
    case V_REPEATED:
        if (!parse_i64(s, n, &v) || v < 0)
            return fail(ex, MF_ETYPE, role_what(r));
        ex->repeated = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
        return 1;
    case V_PID:
        if (parse_i64(s, n, &v))
            ex->pid = v;
        return 1;
    case V_INFO_ID:
        if (parse_i64(s, n, &v))
            ex->st.analysis_id = v;
        return 1;
    default:
        return scalar_ok(ex, r);
    }
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    mf_extract_t *ex = ctx;
    int r = value_role(ex);
    ex->expect = R_OTHER;
    mark_token(ex);
    switch (r) {
    case V_API:
        if (n == 0)
            return fail(ex, MF_ETYPE, "\"api\" is an empty string");
        if (n > MF_MAX_API_LEN)
            return fail(ex, MF_ELIMIT, "\"api\" longer than MF_MAX_API_LEN bytes");
        memcpy(ex->api, s, n);
        ex->api[n] = '\0';
        mf__lower(ex->api, n);
        ex->api_len = n;
        ex->has_api = 1;
        return 1;
    case V_PNAME: {
        size_t k = n < MF_MAX_PROC_NAME ? n : MF_MAX_PROC_NAME;
        memcpy(ex->pname, s, k);
        ex->pname[k] = '\0';
        return 1;
    }
    case V_PID: /* Some layouts write ids as strings. */
    case V_INFO_ID: {
        int64_t v;
        if (parse_i64((const char *)s, n, &v))
            *(r == V_PID ? &ex->pid : &ex->st.analysis_id) = v;
        return 1;
    }
    default:
        return scalar_ok(ex, r);
    }
}

static int cb_other_scalar(void *ctx)
{
    mf_extract_t *ex = ctx;
    int r = value_role(ex);
    ex->expect = R_OTHER;
    mark_token(ex);
    if (ex->depth == 0)
        return fail(ex, MF_ETYPE, "report is not a JSON object");
    return scalar_ok(ex, r);
}

static int cb_boolean(void *ctx, int b)
{
    (void)b;
    return cb_other_scalar(ctx);
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_other_scalar,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end,
};

/* ---- public API -------------------------------------------------------------------------- */

void mf_extract_opts_default(mf_extract_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->repeat = MF_REPEAT_ASIS;
}

mf_extract_t *mf_extract_new(const mf_extract_opts_t *opts, mf_vocab_t *vocab,
                             const mf_extract_cbs_t *cbs, void *ud)
{
    if (!vocab)
        return NULL;
    mf_extract_t *ex = mf__calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    if (opts)
        ex->opts = *opts;
    else
        mf_extract_opts_default(&ex->opts);
    ex->vocab = vocab;
    if (cbs)
        ex->cbs = *cbs;
    ex->ud = ud;
    ex->st.analysis_id = -1;
    ex->seen = mf__calloc(MF_MAX_VOCAB / 64, sizeof *ex->seen);
    /* yajl_alloc does not check its own malloc results, so it cannot take part in the
     * allocation-failure hook: it uses the plain allocator. */
    ex->yh = ex->seen ? yajl_alloc(&callbacks, NULL, ex) : NULL;
    if (!ex->yh) {
        mf_extract_free(ex);
        return NULL;
    }
    return ex;
}

void mf_extract_free(mf_extract_t *ex)
{
    if (!ex)
        return;
    if (ex->yh)
        yajl_free(ex->yh);
    mf__free(ex->seen);
    mf__free(ex);
}

/* Map a yajl status after parse/complete to our code and message. */
static int after_parse(mf_extract_t *ex, yajl_status s, const unsigned char *buf, size_t len)
{
    if (s == yajl_status_ok)
        return MF_OK;
    if (s == yajl_status_client_canceled && !ex->err)
        return MF_OK; /* stopped on purpose: a cap or a callback */
    if (!ex->err) {
        unsigned char *msg = yajl_get_error(ex->yh, 0, buf, len);
        uint64_t at = ex->chunk_base + yajl_get_bytes_consumed(ex->yh);
        ex->err = MF_EJSON;
        snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: %s", (unsigned long long)at,
                 msg ? (const char *)msg : "parse error");
        if (msg)
            yajl_free_error(ex->yh, msg);
    }
    return ex->err;
}

int mf_extract_feed(mf_extract_t *ex, const void *buf, size_t len)
{
    if (ex->err)
        return ex->err;
    if (ex->stopped) {
        ex->st.bytes += len;
        return MF_OK;
    }
    ex->chunk_base = ex->st.bytes;
    ex->st.bytes += len;
    yajl_status s = yajl_parse(ex->yh, buf, len);
    int rc = after_parse(ex, s, buf, len);
    if (rc == MF_OK && ex->stopped)
        ex->st.truncated = 1;
    /* yajl buffers a token that straddles chunks; bound it so memory stays bounded. */
    if (rc == MF_OK && !ex->stopped && ex->st.bytes - ex->last_token > MF_MAX_STRING) {
        ex->err = MF_ELIMIT;
        snprintf(ex->errmsg, sizeof ex->errmsg,
                 "byte %llu: a single JSON token longer than %u bytes",
                 (unsigned long long)ex->last_token, MF_MAX_STRING);
        return ex->err;
    }
    return rc;
}

int mf_extract_finish(mf_extract_t *ex)
{
    if (ex->err)
        return ex->err;
    if (ex->stopped)
        return MF_OK;
    if (ex->st.bytes == 0) {
        ex->err = MF_EJSON;
        snprintf(ex->errmsg, sizeof ex->errmsg, "byte 0: empty input");
        return ex->err;
    }
    ex->chunk_base = ex->st.bytes;
    int rc = after_parse(ex, yajl_complete_parse(ex->yh), NULL, 0);
    if (rc == MF_EJSON && ex->depth > 0) {
        snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: truncated input (%d open)",
                 (unsigned long long)ex->st.bytes, ex->depth);
    }
    return rc;
}

const char *mf_extract_errmsg(const mf_extract_t *ex)
{
    return ex->errmsg;
}

const mf_extract_stats_t *mf_extract_stats(const mf_extract_t *ex)
{
    return &ex->st;
}

/* ---- whole files ------------------------------------------------------------------------- */

typedef struct {
    mf_trace_t *out;
    int err;
} trace_sink_t;

static int sink_call(void *ud, const mf_call_t *c)
{
    trace_sink_t *s = ud;
    if (c->id < 0)
        return 0; /* unknown: counted by the extractor, not kept */
    if (mf_trace_push(s->out, c->id) != MF_OK) {
        s->err = MF_ENOMEM;
        return 1;
    }
    return 0;
}

int mf_extract_file(const char *path, const mf_extract_opts_t *opts, mf_vocab_t *vocab,
                    mf_trace_t *out, mf_extract_stats_t *stats, char *err, size_t errlen)
{
    enum { CHUNK = 64 * 1024 };
    if (err && errlen)
        err[0] = '\0';
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        if (err && errlen)
            snprintf(err, errlen, "%s", errno ? strerror(errno) : "cannot open");
        return MF_EIO;
    }
    gzbuffer(gz, CHUNK);
    trace_sink_t sink = {out, MF_OK};
    mf_extract_cbs_t cbs = {sink_call, NULL};
    mf_extract_t *ex = mf_extract_new(opts, vocab, &cbs, &sink);
    unsigned char *buf = mf__malloc(CHUNK);
    int rc = ex && buf ? MF_OK : MF_ENOMEM;
    while (rc == MF_OK && !ex->stopped) {
        int n = gzread(gz, buf, CHUNK);
        if (n < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            if (err && errlen)
                snprintf(err, errlen, "byte %llu: %s", (unsigned long long)ex->st.bytes,
                         zerr == Z_ERRNO ? strerror(errno) : msg);
            rc = MF_EIO;
            break;
        }
        if (n == 0) {
            rc = mf_extract_finish(ex);
            break;
        }
        rc = mf_extract_feed(ex, buf, (size_t)n);
    }
    if (rc == MF_OK && sink.err)
        rc = sink.err;
    if (ex && rc != MF_OK && err && errlen && !err[0])
        snprintf(err, errlen, "%s", ex->err ? ex->errmsg : mf_strerror(rc));
    if (ex && stats)
        *stats = ex->st;
    mf_extract_free(ex);
    mf__free(buf);
    gzclose(gz);
    return rc;
}
