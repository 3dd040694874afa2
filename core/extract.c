/* extract.c - the streaming extractor of API calls from report.json: yajl callbacks, roles,
 * calls emitted into a callback and the trace (see extract_priv.h for the state). */
#include "extract_priv.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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

/* Role of the value that starts now in the current container. */
static int value_role(mf_extract_t *ex)
{
    switch (ex->role[ex->depth]) {
    case R_PROCS:
        return ex->calls_done ? R_OTHER : R_PROC;
    case R_CALLS:
        return ex->calls_done ? R_OTHER : R_CALL;
    case R_DETS:
        return R_DET;
    case R_DET_DETAILS:
        return R_DET_DETAIL;
    case R_SIGS:
        return R_SIG;
    case R_SIG_FAMS:
        return V_SIG_FAM;
    case R_OTHER:
        return R_OTHER;
    default: /* a known map: set by the last key */
        return ex->expect;
    }
}

static int cb_start_map(void *ctx);
static int cb_start_array(void *ctx);
static int cb_end(void *ctx);
static int cb_map_key(void *ctx, const unsigned char *k, size_t n);
static int cb_number(void *ctx, const char *s, size_t n);
static int cb_string(void *ctx, const unsigned char *s, size_t n);
static int cb_null(void *ctx);
static int cb_boolean(void *ctx, int b);

/* Speed: yajl decodes a string (escapes, copies) only when a string callback is set, and
 * every callback costs a call. Most of a report is skipped, so scalar and key callbacks are
 * switched on only where a value or key can matter: this brings extraction close to yajl's
 * bare parsing speed. Container callbacks stay on to track depth. */
static void arm(mf_extract_t *ex)
{
    int scalars = ex->depth == 0 || value_role(ex) != R_OTHER;
    ex->cb.yajl_null = scalars ? cb_null : NULL;
    ex->cb.yajl_boolean = scalars ? cb_boolean : NULL;
    ex->cb.yajl_number = scalars ? cb_number : NULL;
    ex->cb.yajl_string = scalars ? cb_string : NULL;
    ex->cb.yajl_map_key = ex->role[ex->depth] != R_OTHER ? cb_map_key : NULL;
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
    if (ex->depth == 0)
        return fail(ex, MF_ETYPE, "report is not a JSON object");
    if (r >= R_BEHAVIOR && r <= R_CALL)
        return fail(ex, MF_ETYPE, role_what(r));
    if (r == V_API || r == V_REPEATED)
        return fail(ex, MF_ETYPE, role_what(r));
    return 1;
}

/* Calls stop here (a cap, a callback or a full trace). Without want_meta the parse stops;
 * with it, later calls and processes are skipped unseen and the rest is read for meta. */
static int stop_calls(mf_extract_t *ex)
{
    if (!ex->opts.want_meta) {
        ex->stopped = 1;
        return 0;
    }
    ex->calls_done = 1;
    ex->st.truncated = 1;
    return 1;
}

static int emit(mf_extract_t *ex)
{
    if (ex->calls_done)
        return 1;
    if (ex->opts.repeat == MF_REPEAT_FOLD && ex->last_len == ex->api_len &&
        memcmp(ex->last_api, ex->api, ex->api_len) == 0)
        return 1;
    memcpy(ex->last_api, ex->api, ex->api_len + 1);
    ex->last_len = ex->api_len;

    int id;
    name_slot_t *slot = &ex->cache[(ex->api_hash ^ ex->api_hash >> 7) & 63];
    if (slot->len == ex->api_len && slot->hash == ex->api_hash &&
        memcmp(slot->name, ex->api, ex->api_len) == 0) {
        id = slot->id;
    } else {
        if (ex->opts.grow_vocab) {
            id = mf_vocab_add(ex->vocab, ex->api, ex->api_len);
            if (id == MF_ENOMEM)
                return fail(ex, MF_ENOMEM, "out of memory");
            if (id < 0) /* the vocabulary is at its size limit */
                id = MF_UNK;
        } else {
            id = mf_vocab_find(ex->vocab, ex->api, ex->api_len);
        }
        memcpy(slot->name, ex->api, ex->api_len + 1);
        slot->len = ex->api_len;
        slot->hash = ex->api_hash;
        slot->id = id;
    }
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
        if (ex->cbs.on_call(ex->ud, &c))
            return stop_calls(ex);
    }
    if (ex->out) {
        int rc = mf_prep_push(ex->prep_p, ex->out, id);
        if (rc == MF_ENOMEM)
            return fail(ex, MF_ENOMEM, "out of memory for the trace");
        if (rc == MF_PREP_FULL && !ex->opts.read_all)
            return stop_calls(ex);
    }
    if (ex->opts.max_calls && ex->st.calls >= ex->opts.max_calls)
        return stop_calls(ex);
    return 1;
}

static int end_call(mf_extract_t *ex)
{
    if (ex->calls_done)
        return 1;
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
    if (ex->calls_done)
        return 1;
    int go = 1;
    if (ex->cbs.on_proc) {
        mf_proc_t p = {(uint32_t)ex->st.processes, ex->pid, ex->pname, ex->proc_calls};
        if (ex->cbs.on_proc(ex->ud, &p))
            go = stop_calls(ex);
    }
    ex->st.processes++;
    return go;
}

/* ---- yajl callbacks ---------------------------------------------------------------------- */

static int open_container(mf_extract_t *ex, int is_map)
{
    int r = ex->depth == 0 ? R_ROOT : value_role(ex);
    ex->expect = R_OTHER;
    if (ex->depth == 0 && !is_map)
        return fail(ex, MF_ETYPE, "report is not a JSON object");
    if (ex->depth >= MF_MAX_DEPTH)
        return fail(ex, MF_ELIMIT, "nesting deeper than MF_MAX_DEPTH");
    int want_array = (r == R_PROCS || r == R_CALLS);
    if (mf__meta_role(r)) {
        r = mf__meta_container(ex, r, is_map);
    } else if (r >= V_INFO_ID) {
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
    if (r == R_CALL)
        return end_call(ex);
    if (r == R_PROC)
        return end_proc(ex);
    return 1;
}

static int do_start_map(void *ctx)
{
    return open_container(ctx, 1);
}

static int do_start_array(void *ctx)
{
    return open_container(ctx, 0);
}

static int do_end(void *ctx)
{
    return close_container(ctx);
}

/* `lit` must be a string literal: its length is known at compile time. */
#define key_is(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

static int do_map_key(void *ctx, const unsigned char *k, size_t n)
{
    mf_extract_t *ex = ctx;
    int e = R_OTHER;
    switch (ex->role[ex->depth]) {
    case R_ROOT:
        if (ex->calls_done && (key_is(k, n, "behavior") || key_is(k, n, "processes")))
            break; /* calls are over: a later trace section is skipped unread */
        if (key_is(k, n, "behavior"))
            e = R_BEHAVIOR;
        else if (key_is(k, n, "processes"))
            e = R_PROCS;
        else if (key_is(k, n, "info"))
            e = R_INFO;
        else if (!ex->opts.want_meta)
            break;
        else if (key_is(k, n, "target"))
            e = R_TARGET;
        else if (key_is(k, n, "detections"))
            e = V_DETECTIONS;
        else if (key_is(k, n, "malfamily_tag"))
            e = V_TAG;
        else if (key_is(k, n, "signatures"))
            e = R_SIGS;
        break;
    case R_TARGET:
        if (key_is(k, n, "file"))
            e = R_TFILE;
        break;
    case R_TFILE:
        if (key_is(k, n, "md5"))
            e = V_MD5;
        else if (key_is(k, n, "sha256"))
            e = V_SHA256;
        break;
    case R_DET:
        if (key_is(k, n, "family"))
            e = V_DET_FAMILY;
        else if (key_is(k, n, "details"))
            e = R_DET_DETAILS;
        break;
    case R_DET_DETAIL:
        mf__meta_detail_key(ex, k, n);
        break;
    case R_SIG:
        if (key_is(k, n, "families"))
            e = R_SIG_FAMS;
        break;
    case R_INFO:
        if (key_is(k, n, "id"))
            e = V_INFO_ID;
        break;
    case R_BEHAVIOR:
        if (key_is(k, n, "processes") && !ex->calls_done)
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

static int do_number(void *ctx, const char *s, size_t n)
{
    mf_extract_t *ex = ctx;
    int r = value_role(ex);
    ex->expect = R_OTHER;
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
        return mf__meta_scalar(ex, r, 0) || scalar_ok(ex, r);
    }
}

static int do_string(void *ctx, const unsigned char *s, size_t n)
{
    mf_extract_t *ex = ctx;
    int r = value_role(ex);
    ex->expect = R_OTHER;
    switch (r) {
    case V_API:
        if (n == 0)
            return fail(ex, MF_ETYPE, "\"api\" is an empty string");
        if (n > MF_MAX_API_LEN)
            return fail(ex, MF_ELIMIT, "\"api\" longer than MF_MAX_API_LEN bytes");
        if (memchr(s, '\0', n)) /* "\u0000": names are C strings downstream */
            return fail(ex, MF_ETYPE, "\"api\" contains a NUL character");
        memcpy(ex->api, s, n);
        mf__lower(ex->api, n);
        ex->api[n] = '\0';
        ex->api_len = n;
        /* A cheap cache key: length and three letters (the slot compares whole names). */
        const unsigned char *a = (const unsigned char *)ex->api;
        ex->api_hash = (uint32_t)n * 2654435761u ^ a[0] * 40503u ^ a[n / 2] * 131u ^ a[n - 1];
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
        return mf__meta_string(ex, r, s, n) || scalar_ok(ex, r);
    }
}

static int do_other_scalar(void *ctx, int is_null)
{
    mf_extract_t *ex = ctx;
    int r = value_role(ex);
    ex->expect = R_OTHER;
    if (ex->depth == 0)
        return fail(ex, MF_ETYPE, "report is not a JSON object");
    return mf__meta_scalar(ex, r, is_null) || scalar_ok(ex, r);
}


/* The functions yajl calls: do the work, then re-arm the callbacks for what comes next. */
/* Inside a container nobody reads, only depth is counted: no key or scalar callbacks, and
 * these two cheap ones for nesting, until the container closes. */
static int cb_skip_open(void *ctx)
{
    mf_extract_t *ex = ctx;
    if (ex->depth + ++ex->skip > MF_MAX_DEPTH)
        return fail(ex, MF_ELIMIT, "nesting deeper than MF_MAX_DEPTH");
    return 1;
}

static int cb_skip_close(void *ctx)
{
    mf_extract_t *ex = ctx;
    if (--ex->skip > 0)
        return 1;
    ex->depth--; /* the skipped container itself */
    ex->expect = R_OTHER;
    ex->cb.yajl_start_map = cb_start_map;
    ex->cb.yajl_start_array = cb_start_array;
    ex->cb.yajl_end_map = cb_end;
    ex->cb.yajl_end_array = cb_end;
    arm(ex);
    return 1;
}

static int opened(mf_extract_t *ex, int go)
{
    if (go && ex->role[ex->depth] == R_OTHER) {
        ex->skip = 1;
        ex->cb.yajl_start_map = cb_skip_open;
        ex->cb.yajl_start_array = cb_skip_open;
        ex->cb.yajl_end_map = cb_skip_close;
        ex->cb.yajl_end_array = cb_skip_close;
        ex->cb.yajl_null = NULL;
        ex->cb.yajl_boolean = NULL;
        ex->cb.yajl_number = NULL;
        ex->cb.yajl_string = NULL;
        ex->cb.yajl_map_key = NULL;
        return 1;
    }
    arm(ex);
    return go;
}

static int cb_start_map(void *ctx)
{
    return opened(ctx, do_start_map(ctx));
}

static int cb_start_array(void *ctx)
{
    return opened(ctx, do_start_array(ctx));
}

static int cb_end(void *ctx)
{
    int go = do_end(ctx);
    arm(ctx);
    return go;
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t n)
{
    int go = do_map_key(ctx, k, n);
    arm(ctx);
    return go;
}

static int cb_number(void *ctx, const char *s, size_t n)
{
    int go = do_number(ctx, s, n);
    arm(ctx);
    return go;
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    int go = do_string(ctx, s, n);
    arm(ctx);
    return go;
}

static int cb_null(void *ctx)
{
    int go = do_other_scalar(ctx, 1);
    arm(ctx);
    return go;
}

static int cb_boolean(void *ctx, int b)
{
    (void)b;
    int go = do_other_scalar(ctx, 0);
    arm(ctx);
    return go;
}

/* yajl's allocator: the plain one (yajl does not check for NULL, so the failure hook must
 * not reach it), recording the largest block, which is the buffer of a straddling token. */
static void *y_malloc(void *ctx, size_t n)
{
    mf_extract_t *ex = ctx;
    if (n > ex->yajl_block)
        ex->yajl_block = n;
    return malloc(n);
}

static void *y_realloc(void *ctx, void *p, size_t n)
{
    mf_extract_t *ex = ctx;
    if (n > ex->yajl_block)
        ex->yajl_block = n;
    return realloc(p, n);
}

static void y_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

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
    ex->cb.yajl_start_map = cb_start_map;
    ex->cb.yajl_end_map = cb_end;
    ex->cb.yajl_start_array = cb_start_array;
    ex->cb.yajl_end_array = cb_end;
    arm(ex);
    yajl_alloc_funcs afs = {y_malloc, y_realloc, y_free, ex};
    ex->yh = ex->seen ? yajl_alloc(&ex->cb, &afs, ex) : NULL;
    if (!ex->yh) {
        mf_extract_free(ex);
        return NULL;
    }
    return ex;
}

mf_extract_t *mf_extract_new_trace(const mf_extract_opts_t *opts, const mf_prep_t *prep,
                                   mf_vocab_t *vocab, mf_trace_t *out)
{
    if (!out)
        return NULL;
    mf_extract_t *ex = mf_extract_new(opts, vocab, NULL, NULL);
    if (!ex)
        return NULL;
    ex->out = out;
    if (prep) {
        ex->prep = *prep;
        ex->prep_p = &ex->prep;
    }
    return ex;
}

void mf_extract_free(mf_extract_t *ex)
{
    if (!ex)
        return;
    if (ex->zinit)
        inflateEnd(&ex->z);
    mf__free(ex->zbuf);
    mf__free(ex->pend);
    if (ex->yh)
        yajl_free(ex->yh);
    mf__free(ex->seen);
    mf__free(ex);
}

const char *mf_extract_errmsg(const mf_extract_t *ex)
{
    return ex->errmsg;
}

const mf_report_meta_t *mf_extract_meta(const mf_extract_t *ex)
{
    return ex->opts.want_meta ? &ex->meta : NULL;
}

const mf_extract_stats_t *mf_extract_stats(const mf_extract_t *ex)
{
    return &ex->st;
}
