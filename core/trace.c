/* trace.c - traces, and the streaming extractor of API calls from report.json.
 *
 * The extractor keeps one role per open JSON container (root, behavior, processes array,
 * process, calls array, call, other). A key inside a known map sets what the next value is;
 * everything else is skipped by counting depth, without copying. A call is emitted when its
 * object closes, because "repeated" comes after "api" in CAPE and key order is not guaranteed.
 */
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include <unistd.h>
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

int mf_trace_copy(mf_trace_t *dst, const mf_trace_t *src)
{
    mf_trace_destroy(dst);
    dst->ids = mf__malloc((src->n ? src->n : 1) * sizeof *dst->ids);
    if (!dst->ids)
        return MF_ENOMEM;
    if (src->n)
        memcpy(dst->ids, src->ids, src->n * sizeof *dst->ids);
    dst->n = dst->cap = src->n;
    return MF_OK;
}

/* Does prep keep `id` after the kept calls ids[0..n-1]? (The cap is the caller's check.) */
static int prep_keeps(const mf_prep_t *p, const int32_t *ids, size_t n, int32_t id)
{
    if (id < 0)
        return 0;
    return !(p && p->fold && n && ids[n - 1] == id);
}

static size_t prep_cap(const mf_prep_t *p)
{
    return p && p->max_len && p->max_len < MF_MAX_TRACE ? p->max_len : MF_MAX_TRACE;
}

int mf_prep_push(const mf_prep_t *p, mf_trace_t *t, int32_t id)
{
    size_t cap = prep_cap(p);
    if (t->n >= cap)
        return MF_PREP_FULL;
    if (prep_keeps(p, t->ids, t->n, id) && mf_trace_push(t, id) != MF_OK)
        return MF_ENOMEM;
    return t->n >= cap ? MF_PREP_FULL : MF_OK;
}

void mf_trace_prep(mf_trace_t *t, const mf_prep_t *p)
{
    size_t cap = prep_cap(p), w = 0;
    for (size_t r = 0; r < t->n && w < cap; r++)
        if (prep_keeps(p, t->ids, w, t->ids[r]))
            t->ids[w++] = t->ids[r];
    t->n = w;
}

void mf_prep_extract_opts(const mf_prep_t *p, mf_extract_opts_t *o)
{
    (void)p; /* every prep reads a report the same way; the trace applies the rest */
    mf_extract_opts_default(o);
    o->repeat = MF_REPEAT_EXPAND;
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
    /* label fields (opts.want_meta): a wrong type is ignored, never an error */
    R_TARGET,    /* target */
    R_TFILE,     /* target.file */
    R_DETS,      /* detections as a list */
    R_DET,       /* one detection entry */
    R_DET_DETAILS, /* its details list */
    R_DET_DETAIL,  /* one details object: its first key says what detected it */
    R_SIGS,      /* signatures */
    R_SIG,       /* one signature */
    R_SIG_FAMS,  /* its families list */
    /* scalar values we keep */
    V_INFO_ID,
    V_PID,
    V_PNAME,
    V_API,
    V_REPEATED,
    V_MD5,
    V_SHA256,
    V_DETECTIONS, /* a string, a list, or anything else */
    V_DET_FAMILY,
    V_TAG,
    V_SIG_FAM,
};

/* A trace uses few distinct APIs, so nearly every call hits this cache and skips the
 * vocabulary's hash table. len 0 = empty (API names are never empty). */
typedef struct {
    uint32_t hash;
    int id;
    size_t len;
    char name[MF_MAX_API_LEN + 1];
} name_slot_t;

struct mf_extract {
    yajl_handle yh;
    yajl_callbacks cb; /* yajl keeps this pointer, so arm() can switch callbacks mid-parse */
    mf_extract_opts_t opts;
    mf_vocab_t *vocab;
    mf_extract_cbs_t cbs;
    void *ud;

    unsigned char role[MF_MAX_DEPTH + 1]; /* role of the open container at each depth */
    int depth;                            /* 0 = outside the root value */
    int skip;                             /* levels open inside a skipped container */
    int expect;                           /* role of the value after the last key */

    /* the current process */
    int64_t pid;
    char pname[MF_MAX_PROC_NAME + 1];
    size_t proc_calls;
    char last_api[MF_MAX_API_LEN + 1]; /* last emitted name in this process (fold) */
    size_t last_len;
    name_slot_t cache[64]; /* names already looked up, direct-mapped by hash */

    /* the current call */
    char api[MF_MAX_API_LEN + 1];
    size_t api_len;
    uint32_t api_hash;
    int has_api;
    uint32_t repeated;

    /* label fields (opts.want_meta) */
    mf_report_meta_t meta;
    int calls_done;      /* calls stopped (cap, callback, full trace); the rest is read for meta */
    size_t det_open;     /* detection entries opened so far */
    size_t det_cur;      /* index of the open one */
    uint32_t sig_cur;    /* 1-based number of the open signature */
    uint32_t sig_stamp[MF_MAX_META_FAMILIES]; /* last signature that counted meta.sig[i] */
    uint32_t sig_counted;  /* last signature counted in meta.sig_entries */

    uint64_t *seen; /* (MF_MAX_VOCAB/64) bitset of emitted ids, for stats.distinct */
    mf_extract_stats_t st;

    /* the trace being built (mf_extract_new_trace), else out is NULL */
    mf_trace_t *out;
    mf_prep_t prep;
    const mf_prep_t *prep_p; /* &prep, or NULL: keep every known call */

    /* input decoding: the first two bytes decide plain / gzip / zlib */
    unsigned char magic[2];
    size_t nmagic;
    z_stream z;
    int zinit;              /* inflateInit2 done */
    int zend;               /* the last compressed member ended; nothing pending */
    unsigned char *zbuf;    /* ZCHUNK bytes of inflated output */

    uint64_t chunk_base; /* JSON bytes parsed before the current chunk */
    size_t yajl_block;   /* largest block yajl has (re)allocated: its token buffer */
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

/* ---- label fields ------------------------------------------------------------------------ */

static int is_meta_role(int r)
{
    return (r >= R_TARGET && r <= R_SIG_FAMS) || (r >= V_MD5 && r <= V_SIG_FAM);
}

/* Copy a borrowed string into dst[cap] (cap includes the NUL), cut at cap - 1 bytes and at
 * an embedded NUL. Returns the length kept. */
static size_t copy_cut(char *dst, size_t cap, const unsigned char *s, size_t n)
{
    const unsigned char *nul = memchr(s, '\0', n);
    if (nul)
        n = (size_t)(nul - s);
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return n;
}

static int same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* Count `name` in the bounded list fam[*n]; its slot index, or -1 when it was dropped (empty,
 * or the list is full). */
static int meta_add(mf_report_meta_t *m, mf_meta_family_t *fam, size_t *n,
                    const unsigned char *s, size_t len)
{
    char name[MF_MAX_META_NAME + 1];
    if (copy_cut(name, sizeof name, s, len) == 0) {
        m->dropped++;
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        if (same_name(fam[i].name, name))
            return (int)i;
    if (*n >= MF_MAX_META_FAMILIES) {
        m->dropped++;
        return -1;
    }
    memcpy(fam[*n].name, name, sizeof name);
    fam[*n].count = 0;
    return (int)(*n)++;
}

static void meta_detection(mf_extract_t *ex, const unsigned char *s, size_t n)
{
    mf_report_meta_t *m = &ex->meta;
    int i = meta_add(m, m->det, &m->ndet, s, n);
    if (i >= 0) {
        m->det[i].count++;
        m->det_entries++;
    }
}

/* One name of a signature's families list: counted once per signature. */
static void meta_sig_family(mf_extract_t *ex, const unsigned char *s, size_t n)
{
    mf_report_meta_t *m = &ex->meta;
    int i = meta_add(m, m->sig, &m->nsig, s, n);
    if (i < 0 || ex->sig_stamp[i] == ex->sig_cur)
        return;
    ex->sig_stamp[i] = ex->sig_cur;
    m->sig[i].count++;
    if (ex->sig_counted != ex->sig_cur) {
        ex->sig_counted = ex->sig_cur;
        m->sig_entries++;
    }
}

/* A hash of `digits` hex digits into dst (lower-case), else left "". */
static void meta_hash(char *dst, size_t digits, const unsigned char *s, size_t n)
{
    if (n != digits)
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (unsigned char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            dst[0] = '\0';
            return;
        }
        dst[i] = (char)c;
    }
    dst[n] = '\0';
}

/* A string for a label-field role. Returns 1 when `r` was one. */
static int meta_string(mf_extract_t *ex, int r, const unsigned char *s, size_t n)
{
    mf_report_meta_t *m = &ex->meta;
    switch (r) {
    case V_MD5:
        meta_hash(m->md5, 32, s, n);
        return 1;
    case V_SHA256:
        meta_hash(m->sha256, 64, s, n);
        return 1;
    case V_DETECTIONS:
        m->det_kind = MF_DET_STRING;
        meta_detection(ex, s, n);
        return 1;
    case V_DET_FAMILY:
        meta_detection(ex, s, n);
        return 1;
    case V_TAG:
        copy_cut(m->tag, sizeof m->tag, s, n);
        return 1;
    case V_SIG_FAM:
        meta_sig_family(ex, s, n);
        return 1;
    case R_DET:
        m->dropped++; /* a detection entry that is not an object */
        return 1;
    default:
        return is_meta_role(r); /* any other label role: ignored */
    }
}

/* A number, bool or null for a label-field role. Returns 1 when `r` was one. */
static int meta_scalar(mf_extract_t *ex, int r, int is_null)
{
    if (r == V_DETECTIONS) {
        if (!is_null)
            ex->meta.det_kind = MF_DET_OTHER;
        return 1;
    }
    if (r == R_DET || r == V_DET_FAMILY || r == V_SIG_FAM) {
        ex->meta.dropped++;
        return 1;
    }
    return is_meta_role(r);
}

/* A container opens for a label-field role: the role it gets (R_OTHER = skipped). */
static int meta_container(mf_extract_t *ex, int r, int is_map)
{
    mf_report_meta_t *m = &ex->meta;
    switch (r) {
    case V_DETECTIONS:
        m->det_kind = is_map ? MF_DET_OTHER : MF_DET_LIST;
        return is_map ? R_OTHER : R_DETS;
    case R_DET:
        if (!is_map) {
            m->dropped++;
            return R_OTHER;
        }
        ex->det_cur = ex->det_open++;
        return R_DET;
    case R_DET_DETAIL: /* only the first entry's first details object names its source */
        return is_map && ex->det_cur == 0 && !m->det_by[0] ? R_DET_DETAIL : R_OTHER;
    case R_SIG:
        if (is_map)
            ex->sig_cur++;
        return is_map ? R_SIG : R_OTHER;
    case V_DET_FAMILY:
    case V_SIG_FAM:
        m->dropped++;
        return R_OTHER;
    case R_TARGET:
    case R_TFILE:
        return is_map ? r : R_OTHER;
    case R_DET_DETAILS:
    case R_SIGS:
    case R_SIG_FAMS:
        return is_map ? R_OTHER : r;
    default:
        return R_OTHER;
    }
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
    if (is_meta_role(r)) {
        r = meta_container(ex, r, is_map);
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
        if (!ex->meta.det_by[0])
            copy_cut(ex->meta.det_by, sizeof ex->meta.det_by, k, n);
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
        return meta_scalar(ex, r, 0) || scalar_ok(ex, r);
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
        return meta_string(ex, r, s, n) || scalar_ok(ex, r);
    }
}

static int do_other_scalar(void *ctx, int is_null)
{
    mf_extract_t *ex = ctx;
    int r = value_role(ex);
    ex->expect = R_OTHER;
    if (ex->depth == 0)
        return fail(ex, MF_ETYPE, "report is not a JSON object");
    return meta_scalar(ex, r, is_null) || scalar_ok(ex, r);
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
        /* yajl ends its message with a newline: the detail is one line in logs and answers */
        size_t n = strlen(ex->errmsg);
        while (n > 0 && (ex->errmsg[n - 1] == '\n' || ex->errmsg[n - 1] == ' '))
            ex->errmsg[--n] = '\0';
    }
    return ex->err;
}

/* Parse `len` bytes of JSON text (decoded input). */
static int parse_json(mf_extract_t *ex, const unsigned char *buf, size_t len)
{
    if (ex->opts.max_bytes && ex->st.bytes + len > ex->opts.max_bytes) {
        ex->err = MF_ELIMIT;
        snprintf(ex->errmsg, sizeof ex->errmsg, "report larger than %llu bytes%s",
                 (unsigned long long)ex->opts.max_bytes,
                 ex->st.encoding == MF_ENC_PLAIN ? "" : " after decompression");
        return ex->err;
    }
    ex->chunk_base = ex->st.bytes;
    ex->st.bytes += len;
    yajl_status s = yajl_parse(ex->yh, buf, len);
    int rc = after_parse(ex, s, buf, len);
    if (rc == MF_OK && ex->stopped)
        ex->st.truncated = 1;
    /* yajl buffers a token that straddles chunks; bound it so memory stays bounded. */
    if (rc == MF_OK && ex->yajl_block > MF_MAX_STRING) {
        ex->err = MF_ELIMIT;
        snprintf(ex->errmsg, sizeof ex->errmsg,
                 "byte %llu: a single JSON token longer than %u bytes",
                 (unsigned long long)ex->st.bytes, MF_MAX_STRING);
        return ex->err;
    }
    return rc;
}

enum { ZCHUNK = 64 * 1024 };

static int zfail(mf_extract_t *ex, int err, const char *what)
{
    ex->err = err;
    snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu of the %s file: %s",
             (unsigned long long)(ex->st.raw_bytes - ex->z.avail_in),
             ex->st.encoding == MF_ENC_GZIP ? "gzip" : "zlib", what);
    return err;
}

/* The first two bytes decide the encoding. zlib: a deflate header with a 32 KiB window
 * (0x78) and a valid check; no JSON report starts with 'x'. */
static int start_decoding(mf_extract_t *ex)
{
    const unsigned char *m = ex->magic;
    if (m[0] == 0x1f && m[1] == 0x8b)
        ex->st.encoding = MF_ENC_GZIP;
    else if (m[0] == 0x78 && ((unsigned)m[0] << 8 | m[1]) % 31 == 0)
        ex->st.encoding = MF_ENC_ZLIB;
    else
        ex->st.encoding = MF_ENC_PLAIN;
    if (ex->st.encoding == MF_ENC_PLAIN)
        return MF_OK;
    ex->zbuf = mf__malloc(ZCHUNK);
    if (!ex->zbuf || inflateInit2(&ex->z, 15 + 32) != Z_OK) { /* 32: gzip or zlib header */
        ex->err = MF_ENOMEM;
        snprintf(ex->errmsg, sizeof ex->errmsg, "out of memory for inflate");
        return ex->err;
    }
    ex->zinit = 1;
    return MF_OK;
}

/* Inflate `len` compressed bytes and parse what comes out, ZCHUNK at a time, so a small
 * file that inflates to gigabytes is stopped by max_bytes, not by memory. */
static int inflate_feed(mf_extract_t *ex, const unsigned char *buf, size_t len)
{
    z_stream *z = &ex->z;
    z->next_in = (unsigned char *)buf;
    z->avail_in = (uInt)len;
    for (;;) {
        if (ex->stopped)
            return MF_OK;
        if (ex->zend) {
            if (z->avail_in == 0)
                return MF_OK;
            if (ex->st.encoding == MF_ENC_ZLIB)
                return zfail(ex, MF_EFORMAT, "data after the end of the stream");
            if (inflateReset(z) != Z_OK) /* concatenated gzip members: a new one begins */
                return zfail(ex, MF_EFORMAT, "cannot start the next member");
            ex->zend = 0;
        }
        z->next_out = ex->zbuf;
        z->avail_out = ZCHUNK;
        int zr = inflate(z, Z_NO_FLUSH);
        if (zr == Z_MEM_ERROR)
            return zfail(ex, MF_ENOMEM, "out of memory");
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
            return zfail(ex, MF_EFORMAT, z->msg ? z->msg : "corrupt data");
        size_t got = ZCHUNK - z->avail_out;
        if (got) {
            int rc = parse_json(ex, ex->zbuf, got);
            if (rc != MF_OK)
                return rc;
        }
        if (zr == Z_STREAM_END)
            ex->zend = 1;
        else if (zr == Z_BUF_ERROR || (z->avail_in == 0 && z->avail_out != 0))
            return MF_OK; /* all input taken, all output drained: wait for more */
    }
}

int mf_extract_feed(mf_extract_t *ex, const void *buf, size_t len)
{
    if (ex->err)
        return ex->err;
    ex->st.raw_bytes += len;
    if (ex->stopped)
        return MF_OK; /* accepted and ignored */
    const unsigned char *p = buf;
    if (ex->st.encoding == MF_ENC_UNKNOWN) {
        while (ex->nmagic < 2 && len > 0) {
            ex->magic[ex->nmagic++] = *p++;
            len--;
        }
        if (ex->nmagic < 2)
            return MF_OK; /* a one-byte chunk: wait for the second byte */
        int rc = start_decoding(ex);
        if (rc == MF_OK)
            rc = ex->zinit ? inflate_feed(ex, ex->magic, 2) : parse_json(ex, ex->magic, 2);
        if (rc != MF_OK || len == 0)
            return rc;
    }
    return ex->zinit ? inflate_feed(ex, p, len) : parse_json(ex, p, len);
}

int mf_extract_finish(mf_extract_t *ex)
{
    if (ex->err)
        return ex->err;
    if (ex->stopped)
        return MF_OK;
    if (ex->st.encoding == MF_ENC_UNKNOWN && ex->nmagic == 1) {
        ex->st.encoding = MF_ENC_PLAIN; /* a one-byte report: parse it (and fail) as JSON */
        int rc = parse_json(ex, ex->magic, 1);
        if (rc != MF_OK)
            return rc;
    }
    if (ex->zinit && !ex->zend)
        return zfail(ex, MF_EFORMAT, "truncated (the stream ends inside a member)");
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

const mf_report_meta_t *mf_extract_meta(const mf_extract_t *ex)
{
    return ex->opts.want_meta ? &ex->meta : NULL;
}

const mf_extract_stats_t *mf_extract_stats(const mf_extract_t *ex)
{
    return &ex->st;
}

/* ---- whole files ------------------------------------------------------------------------- */

int mf_extract_fd(mf_extract_t *ex, int fd)
{
    enum { CHUNK = 64 * 1024 };
    unsigned char *in = mf__malloc(CHUNK);
    if (!in)
        return MF_ENOMEM;
    int rc = MF_OK;
    while (rc == MF_OK && !ex->stopped) {
        ssize_t n = read(fd, in, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ex->err = rc = MF_EIO;
            snprintf(ex->errmsg, sizeof ex->errmsg, "byte %llu: read: %s",
                     (unsigned long long)ex->st.raw_bytes, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        rc = mf_extract_feed(ex, in, (size_t)n);
    }
    mf__free(in);
    if (rc == MF_OK)
        rc = mf_extract_finish(ex);
    return rc;
}

int mf_extract_file(const char *path, const mf_extract_opts_t *opts, const mf_prep_t *prep,
                    mf_vocab_t *vocab, mf_trace_t *out, mf_extract_stats_t *stats, char *err,
                    size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", strerror(errno));
        return MF_EIO;
    }
    mf_extract_opts_t o;
    if (!opts)
        mf_prep_extract_opts(prep, &o);
    mf_extract_t *ex = mf_extract_new_trace(opts ? opts : &o, prep, vocab, out);
    int rc = ex ? mf_extract_fd(ex, fd) : MF_ENOMEM;
    if (ex && rc != MF_OK && err && errlen)
        snprintf(err, errlen, "%s", ex->err ? ex->errmsg : mf_strerror(rc));
    if (ex && stats)
        *stats = ex->st;
    mf_extract_free(ex);
    close(fd);
    return rc;
}
