/* check_trace.c - the streaming extractor against a Python json reference on every real
 * report, on generated reports (up to a million calls), in every chunk size, and on a corpus
 * of bad inputs; plus traces, preprocessing and the dataset loaders. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset.h"
#include "extract_priv.h"
#include "internal.h"
#include "mf.h"
#include "testutil.h"
#include "trace.h"

static const char *reports[] = {
    "cape22_55dcd387.json",           "cape22_qakbot_0000a657.json.gz",
    "cape24_cobaltstrikestager_5d61700f.json.gz", "cape24_suncrypt_0a0882b8.json.gz",
    "cuckoo12_drewboardman1.json.gz", "cuckoo207_benign_cmdkey.json",
    "cuckoo207_sodinokibi_nocalls.json", "cuckoo20dev_demo_icqw3.json.gz",
};
#define NREPORTS (sizeof reports / sizeof reports[0])

/* ---- helpers ----------------------------------------------------------------------------- */

/* Emitted names joined by '\n', as the CLI prints them. */
typedef struct {
    char *buf;
    size_t n, cap;
    size_t calls;
    int stop_after; /* on_call asks to stop after this many (0 = never) */
} names_t;

static int collect(void *ud, const mf_call_t *c)
{
    names_t *nm = ud;
    ck_assert_int_eq(mf__grow((void **)&nm->buf, &nm->cap, nm->n + c->api_len + 2, 1), MF_OK);
    memcpy(nm->buf + nm->n, c->api, c->api_len);
    nm->n += c->api_len;
    nm->buf[nm->n++] = '\n';
    nm->buf[nm->n] = '\0';
    nm->calls++;
    return nm->stop_after && nm->calls >= (size_t)nm->stop_after;
}

static void names_free(names_t *nm)
{
    mf__free(nm->buf);
    memset(nm, 0, sizeof *nm);
}

/* Whole file, decompressed when gzip. */
static char *load_report(const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/reports/%s", tu_data(), name);
    gzFile gz = gzopen(path, "rb");
    ck_assert_msg(gz != NULL, "cannot open %s", path);
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    int r;
    while ((r = gzread(gz, b + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    gzclose(gz);
    *len = n;
    return b;
}

/* Feed `data` to ex in chunks of `chunk` bytes (0 = whole), then finish. The first error. */
static int feed_chunks(mf_extract_t *ex, const char *data, size_t len, size_t chunk)
{
    int rc = MF_OK;
    if (!chunk)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len && rc == MF_OK; off += chunk)
        rc = mf_extract_feed(ex, data + off, len - off < chunk ? len - off : chunk);
    return rc == MF_OK ? mf_extract_finish(ex) : rc;
}

/* Feed `data` in chunks of `chunk` bytes (0 = whole). Returns the rc of feed/finish. */
static int extract_mem(const char *data, size_t len, size_t chunk, const mf_extract_opts_t *o,
                       mf_vocab_t *v, names_t *nm, mf_extract_stats_t *st, char *msg,
                       size_t msglen)
{
    mf_extract_cbs_t cbs = {nm ? collect : NULL, NULL};
    mf_extract_t *ex = mf_extract_new(o, v, &cbs, nm);
    ck_assert_ptr_nonnull(ex);
    int rc = feed_chunks(ex, data, len, chunk);
    if (st)
        *st = *mf_extract_stats(ex);
    if (msg)
        snprintf(msg, msglen, "%s", mf_extract_errmsg(ex));
    mf_extract_free(ex);
    return rc;
}

/* Output of a shell command (the Python reference), malloc'd. */
static char *run_cmd(const char *cmd, size_t *len)
{
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen %s", cmd);
    size_t cap = 1 << 16, n = 0, r;
    char *b = malloc(cap + 1);
    while ((r = fread(b + n, 1, cap - n, p)) > 0) {
        n += r;
        if (n == cap)
            b = realloc(b, (cap *= 2) + 1);
    }
    b[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    *len = n;
    return b;
}

static char *python_ref(const char *report_path, const char *mode, size_t *len)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s tests/tools/ref_extract.py '%s' %s", tu_python(), report_path,
             mode);
    return run_cmd(cmd, len);
}

static void assert_same(const char *what, const char *want, size_t wlen, const names_t *got)
{
    if (wlen == got->n && memcmp(want, got->buf ? got->buf : "", wlen) == 0)
        return;
    size_t i = 0;
    while (i < wlen && i < got->n && want[i] == got->buf[i])
        i++;
    ck_abort_msg("%s: differs from the reference at byte %zu (want %zu bytes, got %zu)", what,
                 i, wlen, got->n);
}

/* The default extraction options, learning new names into the vocabulary (grow_vocab). */
static mf_extract_opts_t grow_opts(void)
{
    mf_extract_opts_t o;
    mf_extract_opts_default(&o);
    o.grow_vocab = 1;
    return o;
}

/* ---- real reports ------------------------------------------------------------------------ */

/* Every real report, in the three repeat modes, gives the reference sequence. */
START_TEST(test_real_reports_match_python)
{
    static const struct {
        const char *ref;
        mf_repeat_mode mode;
    } modes[] = {{"asis", MF_REPEAT_ASIS}, {"expand", MF_REPEAT_EXPAND}, {"fold", MF_REPEAT_FOLD}};
    const char *name = reports[_i / 3];
    char path[4096];
    snprintf(path, sizeof path, "%s/reports/%s", tu_data(), name);
    size_t wlen;
    char *want = python_ref(path, modes[_i % 3].ref, &wlen);
    mf_vocab_t *v = mf_vocab_new();
    mf_extract_opts_t o = grow_opts();
    o.repeat = modes[_i % 3].mode;
    names_t nm = {0};
    mf_extract_cbs_t cbs = {collect, NULL};
    mf_extract_t *ex = mf_extract_new(&o, v, &cbs, &nm);
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    int rc = mf_extract_fd(ex, fd);
    close(fd);
    ck_assert_msg(rc == MF_OK, "%s: %s", name, mf_extract_errmsg(ex));
    const mf_extract_stats_t *st = mf_extract_stats(ex);
    ck_assert_int_eq(st->truncated, 0);
    ck_assert_int_ge(st->analysis_id, 1);
    assert_same(name, want, wlen, &nm);
    mf_extract_free(ex);
    mf_vocab_free(v);
    names_free(&nm);
    free(want);
}
END_TEST

/* Small reports split at every chunk size 1..31 give the same names as whole. */
START_TEST(test_small_reports_every_chunk_size)
{
    const char *small[] = {"cape22_55dcd387.json", "cuckoo207_benign_cmdkey.json",
                           "cuckoo207_sodinokibi_nocalls.json"};
    size_t len;
    char *data = load_report(small[_i], &len);
    mf_vocab_t *v = mf_vocab_new();
    mf_extract_opts_t o = grow_opts();
    o.repeat = MF_REPEAT_EXPAND;
    names_t whole = {0};
    ck_assert_int_eq(extract_mem(data, len, 0, &o, v, &whole, NULL, NULL, 0), MF_OK);
    for (size_t chunk = 1; chunk <= 31; chunk++) {
        names_t nm = {0};
        mf_extract_stats_t st;
        ck_assert_int_eq(extract_mem(data, len, chunk, &o, v, &nm, &st, NULL, 0), MF_OK);
        assert_same(small[_i], whole.buf ? whole.buf : "", whole.n, &nm);
        ck_assert_uint_eq(st.bytes, len);
        names_free(&nm);
    }
    names_free(&whole);
    mf_vocab_free(v);
    free(data);
}
END_TEST

/* Big reports in a few chunk sizes, including 1 byte at a time. */
START_TEST(test_big_reports_some_chunk_sizes)
{
    const char *big[] = {"cuckoo20dev_demo_icqw3.json.gz", "cuckoo12_drewboardman1.json.gz"};
    size_t sizes[] = {1, 7, 4096, 0};
    size_t len;
    char *data = load_report(big[_i], &len);
    mf_vocab_t *v = mf_vocab_new();
    mf_extract_opts_t o = grow_opts();
    names_t whole = {0};
    ck_assert_int_eq(extract_mem(data, len, 0, &o, v, &whole, NULL, NULL, 0), MF_OK);
    ck_assert_uint_gt(whole.calls, 1000);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        names_t nm = {0};
        ck_assert_int_eq(extract_mem(data, len, sizes[k], &o, v, &nm, NULL, NULL, 0), MF_OK);
        assert_same(big[_i], whole.buf, whole.n, &nm);
        names_free(&nm);
    }
    names_free(&whole);
    mf_vocab_free(v);
    free(data);
}
END_TEST

/* ---- generated reports ------------------------------------------------------------------- */

/* gen_report.py output (both layouts) carries exactly the Mal-API trace it was built from. */
static void check_generated(int row, long calls, const char *format)
{
    char path[] = "/tmp/mf_gen_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s/../tools/gen_report.py --row %d %s%.0ld --format %s > %s",
             tu_python(), tu_data(), row, calls ? "--calls " : "", calls, format, path);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s tests/tools/ref_extract.py --malapi %d %ld", tu_python(), row,
             calls);
    size_t wlen;
    char *want = run_cmd(cmd, &wlen);
    mf_vocab_t *v = tu_malapi_vocab();
    mf_extract_opts_t o;
    mf_extract_opts_default(&o);
    names_t nm = {0};
    mf_extract_cbs_t cbs = {collect, NULL};
    mf_extract_t *ex = mf_extract_new(&o, v, &cbs, &nm);
    fd = open(path, O_RDONLY);
    int rc = mf_extract_fd(ex, fd);
    close(fd);
    unlink(path);
    ck_assert_msg(rc == MF_OK, "%s", mf_extract_errmsg(ex));
    assert_same(format, want, wlen, &nm);
    ck_assert_int_eq(mf_extract_stats(ex)->unknown, 0);
    ck_assert_int_eq(mf_extract_stats(ex)->analysis_id, row + 1);
    mf_extract_free(ex);
    mf_vocab_free(v);
    names_free(&nm);
    free(want);
}

START_TEST(test_generated_cuckoo2_and_cape)
{
    check_generated(3, 0, "cuckoo2");
    check_generated(3, 0, "cape");
    check_generated(11, 5000, "cape");
}
END_TEST

START_TEST(test_generated_million_calls)
{
    check_generated(7, 1000000, _i ? "cape" : "cuckoo2");
}
END_TEST

/* ---- layouts, modes, caps ---------------------------------------------------------------- */

typedef struct {
    int64_t pid[8];
    char name[8][32];
    size_t ncalls[8];
    int n;
} procs_t;

static int collect_proc(void *ud, const mf_proc_t *p)
{
    procs_t *ps = ud;
    ck_assert_int_lt(ps->n, 8);
    ck_assert_uint_eq(p->index, (unsigned)ps->n);
    ps->pid[ps->n] = p->pid;
    snprintf(ps->name[ps->n], sizeof ps->name[0], "%s", p->name);
    ps->ncalls[ps->n++] = p->ncalls;
    return 0;
}

START_TEST(test_processes_any_key_order)
{
    /* name and pid after the calls; CAPE's process_id; a bare behavior object */
    const char *doc = "{\"processes\":[{\"calls\":[{\"api\":\"A\"}],\"process_name\":\"x.exe\","
                      "\"pid\":7},{\"process_id\":\"9\",\"calls\":[],\"process_name\":"
                      "\"\\u00e9.exe\"}]}";
    mf_vocab_t *v = mf_vocab_new();
    procs_t ps = {0};
    mf_extract_opts_t o = grow_opts();
    mf_extract_cbs_t cbs = {NULL, collect_proc};
    mf_extract_t *ex = mf_extract_new(&o, v, &cbs, &ps);
    ck_assert_int_eq(mf_extract_feed(ex, doc, strlen(doc)), MF_OK);
    ck_assert_int_eq(mf_extract_finish(ex), MF_OK);
    ck_assert_int_eq(ps.n, 2);
    ck_assert_int_eq(ps.pid[0], 7);
    ck_assert_str_eq(ps.name[0], "x.exe");
    ck_assert_uint_eq(ps.ncalls[0], 1);
    ck_assert_int_eq(ps.pid[1], 9);
    ck_assert_str_eq(ps.name[1], "\xc3\xa9.exe");
    ck_assert_int_eq(mf_extract_stats(ex)->has_behavior, 1);
    mf_extract_free(ex);
    mf_vocab_free(v);
}
END_TEST

static const char repeats_doc[] =
    "{\"behavior\":{\"processes\":["
    "{\"process_id\":1,\"calls\":[{\"repeated\":2,\"api\":\"A\"},{\"api\":\"B\"},"
    "{\"api\":\"b\",\"repeated\":0},{\"api\":\"A\"}]},"
    "{\"process_id\":2,\"calls\":[{\"api\":\"a\"},{\"category\":\"x\"}]}]}}";

/* extract_mem over repeats_doc, fed in `chunk`-byte pieces (0: whole), must return MF_OK. */
static void extract_repeats(size_t chunk, const mf_extract_opts_t *o, mf_vocab_t *v,
                            names_t *nm, mf_extract_stats_t *st)
{
    ck_assert_int_eq(extract_mem(repeats_doc, strlen(repeats_doc), chunk, o, v, nm, st, NULL, 0),
                     MF_OK);
}

START_TEST(test_repeat_modes)
{
    static const char *want[] = {"a\nb\nb\na\na\n", "a\na\na\nb\nb\na\na\n", "a\nb\na\na\n"};
    mf_vocab_t *v = mf_vocab_new();
    for (int m = MF_REPEAT_ASIS; m <= MF_REPEAT_FOLD; m++) {
        mf_extract_opts_t o = grow_opts();
        o.repeat = (mf_repeat_mode)m;
        names_t nm = {0};
        mf_extract_stats_t st;
        extract_repeats(0, &o, v, &nm, &st);
        ck_assert_str_eq(nm.buf, want[m]);
        ck_assert_uint_eq(st.entries, 6);
        ck_assert_uint_eq(st.noapi, 1); /* the entry without "api" */
        ck_assert_uint_eq(st.distinct, 2);
        names_free(&nm);
    }
    mf_vocab_free(v);
}
END_TEST

START_TEST(test_max_calls_and_callback_stop)
{
    mf_vocab_t *v = mf_vocab_new();
    mf_extract_opts_t o = grow_opts();
    o.repeat = MF_REPEAT_EXPAND;
    o.max_calls = 2;
    names_t nm = {0};
    mf_extract_stats_t st;
    extract_repeats(5, &o, v, &nm, &st);
    ck_assert_str_eq(nm.buf, "a\na\n");
    ck_assert_int_eq(st.truncated, 1);
    ck_assert_uint_eq(st.raw_bytes, strlen(repeats_doc)); /* later feeds accepted, ignored */
    names_free(&nm);

    o.max_calls = 0;
    nm.stop_after = 3;
    extract_repeats(0, &o, v, &nm, &st);
    ck_assert_uint_eq(nm.calls, 3);
    ck_assert_int_eq(st.truncated, 1);
    names_free(&nm);
    mf_vocab_free(v);
}
END_TEST

START_TEST(test_unknown_names_counted)
{
    mf_vocab_t *v = mf_vocab_new();
    ck_assert_int_eq(mf_vocab_add(v, "a", 1), 0);
    names_t nm = {0};
    mf_extract_stats_t st;
    extract_repeats(0, NULL, v, &nm, &st);
    ck_assert_uint_eq(st.calls, 5);
    ck_assert_uint_eq(st.unknown, 2); /* the two "b" */
    ck_assert_int_eq(mf_vocab_count(v), 1); /* no growth */
    names_free(&nm);
    mf_vocab_free(v);
}
END_TEST

/* ---- bad input --------------------------------------------------------------------------- */

static const struct bad_case {
    const char *name;
    const char *doc;
    int rc;
    const char *msg; /* substring of the error detail */
} bad_cases[] = {
    {"empty", "", MF_EJSON, "empty"},
    {"whitespace_only", "  \n", MF_EJSON, "byte"},
    {"truncated", "{\"behavior\":{\"processes\":[{\"calls\":[{\"api\":\"a\"", MF_EJSON,
     "truncated"},
    {"malformed", "{\"behavior\":}", MF_EJSON, "byte 13: parse error"},
    {"trailing_garbage", "{} x", MF_EJSON, "byte"},
    {"api_not_string", "{\"behavior\":{\"processes\":[{\"calls\":[{\"api\":5}]}]}}", MF_ETYPE,
     "\"api\" is not a string"},
    {"api_object", "{\"behavior\":{\"processes\":[{\"calls\":[{\"api\":{}}]}]}}", MF_ETYPE,
     "\"api\""},
    {"api_nul", "{\"processes\":[{\"calls\":[{\"api\":\"a\\u0000b\"}]}]}", MF_ETYPE, "NUL"},
    {"api_empty", "{\"processes\":[{\"calls\":[{\"api\":\"\"}]}]}", MF_ETYPE, "empty"},
    {"calls_not_array", "{\"behavior\":{\"processes\":[{\"calls\":{}}]}}", MF_ETYPE,
     "\"calls\" is not an array"},
    {"calls_string", "{\"behavior\":{\"processes\":[{\"calls\":\"x\"}]}}", MF_ETYPE, "calls"},
    {"processes_not_array", "{\"behavior\":{\"processes\":7}}", MF_ETYPE, "processes"},
    {"process_not_object", "{\"behavior\":{\"processes\":[[]]}}", MF_ETYPE, "process"},
    {"call_not_object", "{\"processes\":[{\"calls\":[\"NtClose\"]}]}", MF_ETYPE, "call"},
    {"behavior_array", "{\"behavior\":[]}", MF_ETYPE, "behavior"},
    {"repeated_negative", "{\"processes\":[{\"calls\":[{\"api\":\"a\",\"repeated\":-1}]}]}",
     MF_ETYPE, "repeated"},
    {"repeated_float", "{\"processes\":[{\"calls\":[{\"api\":\"a\",\"repeated\":1.5}]}]}",
     MF_ETYPE, "repeated"},
    {"top_level_array", "[1,2]", MF_ETYPE, "not a JSON object"},
    {"top_level_string", "\"x\"", MF_ETYPE, "not a JSON object"},
    {"invalid_utf8", "{\"behavior\":{\"x\":\"\xff\xfe\"}}", MF_EJSON, "UTF8"},
    {"invalid_utf8_api", "{\"processes\":[{\"calls\":[{\"api\":\"a\xc3\"}]}]}", MF_EJSON,
     "UTF8"},
    {"bad_escape", "{\"x\":\"\\q\"}", MF_EJSON, "byte"},
    {"huge_number_ok", "{\"info\":{\"id\":123456789012345678901234567890},\"behavior\":{}}",
     MF_OK, ""},
    {"no_behavior", "{\"info\":{\"id\":42},\"target\":{}}", MF_OK, ""},
};
#define NBAD (sizeof bad_cases / sizeof bad_cases[0])

START_TEST(test_bad_inputs)
{
    const struct bad_case *c = &bad_cases[_i];
    mf_vocab_t *v = mf_vocab_new();
    mf_extract_opts_t o = grow_opts();
    for (size_t chunk = 0; chunk <= 7; chunk++) { /* whole, then 1..7 */
        names_t nm = {0};
        char msg[256];
        int rc = extract_mem(c->doc, strlen(c->doc), chunk, &o, v, &nm, NULL, msg, sizeof msg);
        ck_assert_msg(rc == c->rc, "%s (chunk %zu): rc %s, want %s (%s)", c->name, chunk,
                      mf_err_name(rc), mf_err_name(c->rc), msg);
        ck_assert_msg(strstr(msg, c->msg) != NULL, "%s: message '%s' lacks '%s'", c->name, msg,
                      c->msg);
        names_free(&nm);
    }
    mf_vocab_free(v);
}
END_TEST

/* Generated hostile documents: deep nesting, a giant string, a long API name. */
START_TEST(test_limits)
{
    mf_vocab_t *v = mf_vocab_new();
    char msg[256];
    size_t n = 100000;
    char *deep = malloc(2 * n + 16);
    ck_assert_ptr_nonnull(deep);
    memcpy(deep, "{\"x\":", 5);
    memset(deep + 5, '[', n);
    memset(deep + 5 + n, ']', n);
    memcpy(deep + 5 + 2 * n, "}", 2);
    ck_assert_int_eq(extract_mem(deep, 2 * n + 6, 4096, NULL, v, &(names_t){0}, NULL, msg,
                                 sizeof msg), MF_ELIMIT);
    ck_assert_ptr_nonnull(strstr(msg, "nesting"));
    free(deep);

    size_t big = (size_t)MF_MAX_STRING + (1 << 20);
    char *s = malloc(big + 16);
    ck_assert_ptr_nonnull(s);
    memcpy(s, "{\"x\":\"", 6);
    memset(s + 6, 'a', big);
    memcpy(s + 6 + big, "\"}", 3);
    ck_assert_int_eq(extract_mem(s, big + 8, 65536, NULL, v, &(names_t){0}, NULL, msg,
                                 sizeof msg), MF_ELIMIT);
    ck_assert_ptr_nonnull(strstr(msg, "longer than"));
    free(s);

    char doc[1024];
    char longapi[300];
    memset(longapi, 'x', sizeof longapi - 1);
    longapi[sizeof longapi - 1] = '\0';
    snprintf(doc, sizeof doc, "{\"processes\":[{\"calls\":[{\"api\":\"%s\"}]}]}", longapi);
    ck_assert_int_eq(extract_mem(doc, strlen(doc), 0, NULL, v, &(names_t){0}, NULL, msg,
                                 sizeof msg), MF_ELIMIT);
    mf_vocab_free(v);
}
END_TEST

START_TEST(test_no_behavior_is_empty_trace)
{
    size_t len;
    char *data = load_report("cuckoo207_sodinokibi_nocalls.json", &len);
    mf_vocab_t *v = mf_vocab_new();
    names_t nm = {0};
    mf_extract_stats_t st;
    ck_assert_int_eq(extract_mem(data, len, 0, NULL, v, &nm, &st, NULL, 0), MF_OK);
    ck_assert_uint_eq(st.calls, 0);
    ck_assert_uint_eq(st.processes, 1); /* lsass.exe only */
    ck_assert_int_eq(st.analysis_id, 18);
    mf_vocab_free(v);
    free(data);
}
END_TEST

START_TEST(test_files_missing_and_bad_gzip)
{
    mf_vocab_t *v = mf_vocab_new();
    mf_trace_t t;
    mf_trace_init(&t);
    char err[256];
    ck_assert_int_eq(mf_extract_file("/nonexistent/report.json", NULL, NULL, v, &t, NULL, NULL, err,
                                     sizeof err), MF_EIO);
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    char path[] = "/tmp/mf_badgz_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_eq(write(fd, "\x1f\x8b\x08\x00garbagegarbage", 18), 18);
    close(fd);
    ck_assert_int_eq(mf_extract_file(path, NULL, NULL, v, &t, NULL, NULL, err, sizeof err),
                     MF_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "gzip"));
    /* A gzip report cut in the middle is a truncated JSON or a gzip error, never OK. */
    char src[4096];
    snprintf(src, sizeof src, "%s/reports/cuckoo12_drewboardman1.json.gz", tu_data());
    size_t glen = 0;
    char *gzdata = tu_slurp(src, &glen);
    ck_assert_ptr_nonnull(gzdata);
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(write(fd, gzdata, glen / 2), (ssize_t)(glen / 2));
    close(fd);
    int rc = mf_extract_file(path, NULL, NULL, v, &t, NULL, NULL, err, sizeof err);
    ck_assert_msg(rc == MF_EJSON || rc == MF_EFORMAT, "rc %d %s", rc, err);
    free(gzdata);
    unlink(path);
    mf_trace_destroy(&t);
    mf_vocab_free(v);
}
END_TEST

/* data compressed in memory: gzip (wbits 31) or zlib (wbits 15). Caller frees. */
static unsigned char *deflate_mem(const void *data, size_t len, int wbits, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* One extractor over `data` fed in `chunk`-byte pieces; the emitted names go to nm. */
static int extract_chunks(const unsigned char *data, size_t len, size_t chunk,
                          const mf_extract_opts_t *o, mf_vocab_t *v, names_t *nm,
                          mf_extract_stats_t *st, char *msg, size_t msglen)
{
    return extract_mem((const char *)data, len, chunk, o, v, nm, st, msg, msglen);
}

/* The one reader takes plain JSON, gzip (every member of a multi-member file) and zlib, in
 * every chunk size 1..31, and gives the same calls; the JSON byte count is after inflation. */
START_TEST(test_encodings_every_chunk_size)
{
    size_t len;
    char *data = load_report("cape22_55dcd387.json", &len);
    size_t half = len / 2, glen1, glen2, glen, zlen;
    /* two gzip members whose concatenation inflates to the whole report */
    unsigned char *g1 = deflate_mem(data, half, 31, &glen1);
    unsigned char *g2 = deflate_mem(data + half, len - half, 31, &glen2);
    unsigned char *whole_gz = deflate_mem(data, len, 31, &glen);
    unsigned char *z = deflate_mem(data, len, 15, &zlen);
    unsigned char *multi = malloc(glen1 + glen2);
    memcpy(multi, g1, glen1);
    memcpy(multi + glen1, g2, glen2);
    struct { const unsigned char *p; size_t n; int enc; } in[] = {
        {(const unsigned char *)data, len, MF_ENC_PLAIN}, {whole_gz, glen, MF_ENC_GZIP},
        {multi, glen1 + glen2, MF_ENC_GZIP}, {z, zlen, MF_ENC_ZLIB}};
    mf_vocab_t *v = mf_vocab_new();
    mf_extract_opts_t o = grow_opts();
    names_t ref = {0};
    ck_assert_int_eq(extract_chunks(in[0].p, in[0].n, 0, &o, v, &ref, NULL, NULL, 0), MF_OK);
    ck_assert_uint_gt(ref.n, 0);
    for (size_t k = 0; k < 4; k++) {
        for (size_t chunk = 1; chunk <= 32; chunk++) {
            size_t c = chunk == 32 ? 0 : chunk; /* 0: whole */
            names_t nm = {0};
            mf_extract_stats_t st;
            char msg[256];
            int rc = extract_chunks(in[k].p, in[k].n, c, &o, v, &nm, &st, msg, sizeof msg);
            ck_assert_msg(rc == MF_OK, "input %zu chunk %zu: %s", k, c, msg);
            assert_same("encoded", ref.buf, ref.n, &nm);
            ck_assert_int_eq(st.encoding, in[k].enc);
            ck_assert_uint_eq(st.bytes, len);
            ck_assert_uint_eq(st.raw_bytes, in[k].n);
            names_free(&nm);
        }
    }
    names_free(&ref);
    mf_vocab_free(v);
    free(multi);
    free(z);
    free(whole_gz);
    free(g2);
    free(g1);
    free(data);
}
END_TEST

/* A compressed report cut anywhere, or followed by garbage, is an error, never a shorter trace;
 * the byte limit counts inflated bytes, so a small bomb stops at the limit. */
START_TEST(test_encodings_truncated_garbage_bomb)
{
    size_t len;
    char *data = load_report("cape22_55dcd387.json", &len);
    size_t glen, zlen;
    unsigned char *gz = deflate_mem(data, len, 31, &glen);
    unsigned char *z = deflate_mem(data, len, 15, &zlen);
    mf_vocab_t *v = mf_vocab_new();
    char msg[256];
    const size_t cuts[] = {3, 10, glen / 2, glen - 9, glen - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        int rc = extract_chunks(gz, cuts[i], 7, NULL, v, NULL, NULL, msg, sizeof msg);
        ck_assert_msg(rc == MF_EFORMAT || rc == MF_EJSON, "cut %zu: rc %d %s", cuts[i], rc, msg);
        rc = extract_chunks(z, cuts[i] < zlen ? cuts[i] : zlen - 1, 7, NULL, v, NULL, NULL, msg,
                            sizeof msg);
        ck_assert_msg(rc == MF_EFORMAT || rc == MF_EJSON, "zlib cut: rc %d %s", rc, msg);
    }
    ck_assert_int_eq(extract_chunks(gz, glen - 1, 0, NULL, v, NULL, NULL, msg, sizeof msg),
                     MF_EFORMAT);
    ck_assert_msg(strstr(msg, "truncated"), "%s", msg);
    /* trailing bytes that start no gzip member; bytes after a zlib stream */
    unsigned char *tail = malloc(glen + 4);
    memcpy(tail, gz, glen);
    memcpy(tail + glen, "junk", 4);
    ck_assert_int_eq(extract_chunks(tail, glen + 4, 0, NULL, v, NULL, NULL, msg, sizeof msg),
                     MF_EFORMAT);
    free(tail);
    tail = malloc(zlen + 1);
    memcpy(tail, z, zlen);
    tail[zlen] = '\n';
    ck_assert_int_eq(extract_chunks(tail, zlen + 1, 0, NULL, v, NULL, NULL, msg, sizeof msg),
                     MF_EFORMAT);
    ck_assert_msg(strstr(msg, "zlib"), "%s", msg);
    free(tail);
    /* 64 MiB of spaces before the report inflate from about 64 KiB: the limit stops it */
    size_t pad = 64u << 20;
    char *big = malloc(pad + len);
    memset(big, ' ', pad);
    memcpy(big + pad, data, len);
    size_t blen;
    unsigned char *bomb = deflate_mem(big, pad + len, 31, &blen);
    free(big);
    ck_assert_uint_lt(blen, 1u << 20);
    mf_extract_opts_t o;
    mf_extract_opts_default(&o);
    o.max_bytes = 1u << 20;
    mf_extract_stats_t st;
    ck_assert_int_eq(extract_chunks(bomb, blen, 4096, &o, v, NULL, &st, msg, sizeof msg),
                     MF_ELIMIT);
    ck_assert_msg(strstr(msg, "after decompression"), "%s", msg);
    ck_assert_uint_le(st.bytes, 1u << 20);
    free(bomb);
    /* a one-byte report is plain JSON, and bad */
    ck_assert_int_eq(extract_chunks((const unsigned char *)"{", 1, 1, NULL, v, NULL, NULL, msg,
                                    sizeof msg), MF_EJSON);
    mf_vocab_free(v);
    free(z);
    free(gz);
    free(data);
}
END_TEST

START_TEST(test_read_limit)
{
    mf_vocab_t *v = mf_vocab_new();
    char path[4096];
    snprintf(path, sizeof path, "%s/reports/cape22_55dcd387.json", tu_data());
    mf_extract_opts_t o;
    mf_extract_opts_default(&o);
    o.max_bytes = 100000;
    mf_extract_t *ex = mf_extract_new(&o, v, NULL, NULL);
    int fd = open(path, O_RDONLY);
    ck_assert_int_eq(mf_extract_fd(ex, fd), MF_ELIMIT);
    close(fd);
    ck_assert_ptr_nonnull(strstr(mf_extract_errmsg(ex), "larger than"));
    mf_extract_free(ex);
    mf_vocab_free(v);
}
END_TEST

/* A long number or string token read from a file (64 KiB reads) costs linear time: yajl
 * re-reads a token that straddles chunks from its start at each chunk, so the extractor
 * feeds it fewer, larger chunks while it holds a long one. Counted in yajl_parse calls (the
 * base made one per 64 KiB: 128 for this 8 MiB token, 128 re-reads of up to 8 MiB), not in
 * seconds. The real report after the token gives the same trace as without it. */
START_TEST(test_long_token_linear)
{
    size_t rlen;
    char *rep = load_report("cuckoo207_benign_cmdkey.json", &rlen);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep[0], '{');
    mf_vocab_t *v = mf_vocab_new();
    mf_trace_t want;
    mf_trace_init(&want);
    char err[256];
    mf_extract_opts_t o = grow_opts();
    char path[] = "/tmp/mf_longtok_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, rep, rlen), (ssize_t)rlen);
    close(fd);
    ck_assert_int_eq(mf_extract_file(path, &o, NULL, v, &want, NULL, NULL, err, sizeof err),
                     MF_OK);
    ck_assert_uint_gt(want.n, 0);
    const size_t n = 8u << 20;
    char *doc = malloc(n + rlen + 16);
    ck_assert_ptr_nonnull(doc);
    for (int kind = 0; kind < 3; kind++) { /* number, string, gzip'd string */
        size_t k = 0;
        memcpy(doc, "{\"big\":", 7);
        k = 7;
        if (kind > 0)
            doc[k++] = '"';
        memset(doc + k, kind > 0 ? 'a' : '7', n);
        k += n;
        if (kind > 0)
            doc[k++] = '"';
        doc[k++] = ',';
        memcpy(doc + k, rep + 1, rlen - 1);
        k += rlen - 1;
        size_t flen = k;
        unsigned char *gz = kind == 2 ? deflate_mem(doc, k, 31, &flen) : NULL;
        fd = open(path, O_WRONLY | O_TRUNC);
        ck_assert_int_eq(write(fd, gz ? (char *)gz : doc, flen), (ssize_t)flen);
        close(fd);
        free(gz);
        mf_trace_t t;
        mf_trace_init(&t);
        mf_extract_t *ex = mf_extract_new_trace(&o, NULL, v, &t);
        fd = open(path, O_RDONLY);
        ck_assert_int_eq(mf_extract_fd(ex, fd), MF_OK);
        close(fd);
        ck_assert_uint_eq(t.n, want.n);
        ck_assert_int_eq(memcmp(t.ids, want.ids, want.n * sizeof *t.ids), 0);
        size_t plain = rlen / 65536 + 2; /* what the report itself needs */
        ck_assert_msg(ex->yajl_calls <= plain + 30, "kind %d: %llu yajl_parse calls for an 8 MiB token",
                      kind, (unsigned long long)ex->yajl_calls);
        mf_extract_free(ex);
        mf_trace_destroy(&t);
    }
    unlink(path);
    free(doc);
    free(rep);
    mf_trace_destroy(&want);
    mf_vocab_free(v);
}
END_TEST

typedef struct {
    const char *data;
    size_t len;
} oom_report_t;

/* One OOM attempt: a growing vocabulary and an extractor, fed the whole report. */
static int extract_attempt(void *ctx)
{
    const oom_report_t *r = ctx;
    mf_vocab_t *v = mf_vocab_new();
    mf_extract_opts_t o = grow_opts();
    mf_extract_t *ex = v ? mf_extract_new(&o, v, NULL, NULL) : NULL;
    int rc = ex ? mf_extract_feed(ex, r->data, r->len) : MF_ENOMEM;
    if (rc == MF_OK)
        rc = mf_extract_finish(ex);
    mf_extract_free(ex);
    mf_vocab_free(v);
    return rc;
}

/* Every allocation failure during new + feed gives MF_ENOMEM (or NULL), never a crash. */
START_TEST(test_oom_loop)
{
    oom_report_t r;
    char *data = load_report("cuckoo207_benign_cmdkey.json", &r.len);
    r.data = data;
    tu_oom_loop(extract_attempt, &r, SIZE_MAX);
    free(data);
}
END_TEST

/* ---- traces and datasets ----------------------------------------------------------------- */

START_TEST(test_trace_prep)
{
    mf_trace_t t;
    mf_trace_init(&t);
    int ids[] = {1, 1, 2, 2, 2, 3, 1, 1};
    for (size_t i = 0; i < 8; i++)
        ck_assert_int_eq(mf_trace_push(&t, ids[i]), MF_OK);
    mf_prep_t fold = {1, 0}, cap2 = {0, 2};
    mf_trace_prep(&t, &fold);
    ck_assert_uint_eq(t.n, 4);
    ck_assert_int_eq(t.ids[3], 1);
    mf_trace_prep(&t, &cap2);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_int_eq(t.ids[1], 2);
    mf_trace_destroy(&t);
    ck_assert_ptr_null(t.ids);
}
END_TEST

/* Unknown calls (MF_UNK) are dropped before the fold and the cap: they never take a place
 * under max_len, and A UNK A folds to A. The streaming rule (mf_prep_push) and the whole-trace
 * rule (mf_trace_prep) agree on every prefix, in every setting. (Before one rule served all
 * programs, the offline reader counted unknown calls toward the cap and malfamd did not.) */
START_TEST(test_prep_unknown_outside_the_cap)
{
    const int32_t in[] = {5, MF_UNK, 5, MF_UNK, MF_UNK, 6, 6, 7, MF_UNK, 5, 8, 8, 9};
    const size_t n = sizeof in / sizeof in[0];
    mf_prep_t preps[] = {{1, 0}, {0, 0}, {1, 3}, {0, 3}, {1, 1}, {0, 20}};
    for (size_t k = 0; k < sizeof preps / sizeof preps[0]; k++) {
        for (size_t len = 0; len <= n; len++) {
            mf_trace_t a, b;
            mf_trace_init(&a);
            mf_trace_init(&b);
            int full = 0;
            for (size_t i = 0; i < len; i++) {
                int rc = mf_prep_push(&preps[k], &a, in[i]);
                ck_assert_int_ge(rc, MF_OK);
                full |= rc == MF_PREP_FULL;
                ck_assert_int_eq(mf_trace_push(&b, in[i]), MF_OK);
            }
            mf_trace_prep(&b, &preps[k]);
            ck_assert_uint_eq(a.n, b.n);
            for (size_t i = 0; i < a.n; i++) {
                ck_assert_int_eq(a.ids[i], b.ids[i]);
                ck_assert_int_ge(a.ids[i], 0);
            }
            ck_assert_int_eq(full, preps[k].max_len && a.n == preps[k].max_len);
            mf_trace_destroy(&a);
            mf_trace_destroy(&b);
        }
    }
    /* the cap counts known calls only: 3 known calls after 3 unknown ones all fit */
    mf_trace_t t;
    mf_trace_init(&t);
    mf_prep_t p = {1, 3};
    const int32_t seq[] = {MF_UNK, MF_UNK, MF_UNK, 1, MF_UNK, 2, 3};
    for (size_t i = 0; i < 7; i++)
        mf_prep_push(&p, &t, seq[i]);
    ck_assert_uint_eq(t.n, 3);
    ck_assert_int_eq(t.ids[0], 1);
    ck_assert_int_eq(t.ids[2], 3);
    mf_trace_destroy(&t);
}
END_TEST

START_TEST(test_malapi_split)
{
    mf_vocab_t *v = tu_malapi_vocab();
    /* Per-class train/test counts from the data README. */
    static const struct { const char *label; int train, test; } want[] = {
        {"Adware", 50, 22}, {"Backdoor", 56, 24}, {"Downloader", 53, 22}, {"Dropper", 57, 24},
        {"Spyware", 57, 24}, {"Trojan", 57, 24}, {"Virus", 55, 24}, {"Worms", 56, 24}};
    for (int split = MF_SPLIT_TRAIN; split <= MF_SPLIT_TEST; split++) {
        mf_dataset_t ds;
        mf_prep_t prep = {1, 1000};
        size_t unk = 0;
        tu_malapi_split(&ds, v, split, &prep, &unk);
        ck_assert_uint_eq(ds.n, split == MF_SPLIT_TRAIN ? 441 : 188);
        ck_assert_int_eq(ds.nlabels, 8);
        ck_assert_uint_eq(unk, 0);
        for (size_t k = 0; k < 8; k++) {
            int li = mf_dataset_label(&ds, want[k].label);
            int count = 0;
            for (size_t i = 0; i < ds.n; i++)
                count += ds.samples[i].label == li;
            ck_assert_int_eq(count, split == MF_SPLIT_TRAIN ? want[k].train : want[k].test);
        }
        for (size_t i = 0; i < ds.n; i++) {
            const mf_trace_t *t = &ds.samples[i].trace;
            ck_assert_uint_ge(t->n, 1);
            ck_assert_uint_le(t->n, 1000);
            ck_assert_int_eq(ds.samples[i].split, split);
            for (size_t j = 1; j < t->n; j++)
                ck_assert_int_ne(t->ids[j], t->ids[j - 1]); /* folded */
        }
        mf_dataset_destroy(&ds);
    }
    mf_vocab_free(v);
}
END_TEST

/* Row 7 loaded without preprocessing equals the reference sequence, name for name. */
START_TEST(test_malapi_row_matches_reference)
{
    mf_vocab_t *v;
    mf_dataset_t ds;
    tu_load_malapi(&v, &ds, MF_SPLIT_ANY, NULL);
    ck_assert_uint_eq(ds.n, 629);
    const mf_trace_t *t = &ds.samples[7].trace;
    ck_assert_int_eq(ds.samples[7].row, 7);
    names_t nm = {0};
    for (size_t i = 0; i < t->n; i++) {
        const char *name = mf_vocab_name(v, t->ids[i]);
        mf_call_t c = {name, strlen(name), t->ids[i], 0, 0};
        collect(&nm, &c);
    }
    size_t wlen;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s tests/tools/ref_extract.py --malapi 7 0", tu_python());
    char *want = run_cmd(cmd, &wlen);
    assert_same("row 7", want, wlen, &nm);
    free(want);
    names_free(&nm);
    mf_dataset_destroy(&ds);
    mf_vocab_free(v);
}
END_TEST

START_TEST(test_report_list)
{
    char list[] = "/tmp/mf_list_XXXXXX";
    int fd = mkstemp(list);
    FILE *f = fdopen(fd, "w");
    char data[4096]; /* absolute: relative list entries are taken from the list's directory */
    ck_assert_ptr_nonnull(realpath(tu_data(), data));
    fprintf(f, "# path,family\n%s/reports/cape22_55dcd387.json,Benign\n\n"
               "%s/reports/cuckoo12_drewboardman1.json.gz,Dropper\n", data, data);
    fclose(f);
    mf_vocab_t *v = mf_vocab_new();
    mf_dataset_t ds;
    mf_dataset_init(&ds);
    mf_prep_t prep = {0, 0};
    char err[512];
    ck_assert_int_eq(mf_dataset_load_reports(&ds, list, v, 1, &prep, NULL, NULL, err, sizeof err),
                     MF_OK);
    ck_assert_uint_eq(ds.n, 2);
    ck_assert_int_eq(ds.nlabels, 2);
    ck_assert_uint_eq(ds.samples[0].trace.n, 125);  /* 116 entries + 9 repeated, expanded */
    ck_assert_uint_eq(ds.samples[1].trace.n, 1685); /* 1522 + 163 */
    mf_dataset_destroy(&ds);

    f = fopen(list, "w");
    fprintf(f, "/nonexistent.json,X\n");
    fclose(f);
    mf_dataset_init(&ds);
    ck_assert_int_eq(mf_dataset_load_reports(&ds, list, v, 1, &prep, NULL, NULL, err, sizeof err),
                     MF_EIO);
    ck_assert_ptr_nonnull(strstr(err, ":1:"));
    mf_dataset_destroy(&ds);
    unlink(list);
    mf_vocab_free(v);
}
END_TEST

/* ---- label fields (want_meta) ------------------------------------------------------------ */

/* Feed `data` in chunks of `chunk` (0 = whole) to an extractor with want_meta (and the other
 * options of `o`, NULL = defaults); the label fields go to *meta. Returns the rc. */
static int meta_mem(const char *data, size_t len, size_t chunk, const mf_extract_opts_t *o,
                    mf_vocab_t *v, names_t *nm, mf_report_meta_t *meta, mf_extract_stats_t *st)
{
    mf_extract_opts_t mo = o ? *o : grow_opts();
    mo.want_meta = 1;
    mf_extract_cbs_t cbs = {nm ? collect : NULL, NULL};
    mf_extract_t *ex = mf_extract_new(&mo, v, &cbs, nm);
    ck_assert_ptr_nonnull(ex);
    int rc = feed_chunks(ex, data, len, chunk);
    ck_assert_ptr_nonnull(mf_extract_meta(ex));
    *meta = *mf_extract_meta(ex);
    if (st)
        *st = *mf_extract_stats(ex);
    mf_extract_free(ex);
    return rc;
}

/* Every label field in every shape CAPE and Cuckoo write, split at every chunk size 1..31:
 * the fields come after behavior, keys in any order, names merged case-insensitively, a
 * signature naming a family twice counted once. */
START_TEST(test_meta_every_chunk_size)
{
    static const char doc[] =
        "{\"info\":{\"id\":7},\"behavior\":{\"processes\":[{\"pid\":1,\"calls\":["
        "{\"api\":\"NtClose\"},{\"api\":\"NtOpenFile\"}]}]},"
        "\"target\":{\"category\":\"file\",\"file\":{\"name\":\"x\","
        "\"md5\":\"E2147B5333879F98D515CD9AA905D489\",\"sha256\":"
        "\"0000a65749f5902c4d82ffa701198038f0b4870b00a27cfca109f8f933476d82\"}},"
        "\"detections\":[{\"family\":\"QakBot\",\"details\":[{\"Yara\":\"ab\"},{\"Behavior\":\"\"}]},"
        "{\"details\":[{\"Suricata\":\"x\"}],\"family\":\"qakbot\"},{\"family\":\"Emotet\"}],"
        "\"malfamily_tag\":\"Yara\",\"signatures\":["
        "{\"name\":\"a\",\"families\":[\"Vawtrak\",\"neverquest\",\"vawtrak\"]},"
        "{\"families\":[\"VAWTRAK\"],\"name\":\"b\"},{\"name\":\"c\"},{\"families\":[]}]}";
    mf_vocab_t *v = mf_vocab_new();
    for (size_t chunk = 0; chunk <= 31; chunk++) {
        names_t nm = {0};
        mf_report_meta_t m;
        mf_extract_stats_t st;
        ck_assert_int_eq(meta_mem(doc, sizeof doc - 1, chunk, NULL, v, &nm, &m, &st), MF_OK);
        ck_assert_str_eq(nm.buf, "ntclose\nntopenfile\n");
        ck_assert_int_eq(st.analysis_id, 7);
        ck_assert_str_eq(m.md5, "e2147b5333879f98d515cd9aa905d489");
        ck_assert_str_eq(m.sha256,
                         "0000a65749f5902c4d82ffa701198038f0b4870b00a27cfca109f8f933476d82");
        ck_assert_int_eq(m.det_kind, MF_DET_LIST);
        ck_assert_uint_eq(m.ndet, 2);
        ck_assert_str_eq(m.det[0].name, "QakBot");
        ck_assert_uint_eq(m.det[0].count, 2);
        ck_assert_str_eq(m.det[1].name, "Emotet");
        ck_assert_uint_eq(m.det[1].count, 1);
        ck_assert_uint_eq(m.det_entries, 3);
        ck_assert_str_eq(m.det_by, "Yara");
        ck_assert_str_eq(m.tag, "Yara");
        ck_assert_uint_eq(m.nsig, 2);
        ck_assert_str_eq(m.sig[0].name, "Vawtrak");
        ck_assert_uint_eq(m.sig[0].count, 2);
        ck_assert_str_eq(m.sig[1].name, "neverquest");
        ck_assert_uint_eq(m.sig[1].count, 1);
        ck_assert_uint_eq(m.sig_entries, 2);
        ck_assert_uint_eq(m.dropped, 0);
        names_free(&nm);
    }
    /* without want_meta nothing is captured */
    mf_extract_t *ex = mf_extract_new(NULL, v, NULL, NULL);
    ck_assert_ptr_null(mf_extract_meta(ex));
    mf_extract_free(ex);
    mf_vocab_free(v);
}
END_TEST

/* The real reports: CAPE 2.2's string detection with its tag, CAPE 2.4's list with its
 * details source and a signature family, Cuckoo 2.0.7 with none; read once through the
 * trace extractor, whose trace and counters are the same with and without want_meta even
 * though the label fields of these files come after a trace that fills up. */
START_TEST(test_meta_real_reports)
{
    static const struct {
        const char *name;
        int kind;
        const char *det, *by, *tag, *md5, *sig;
    } want[] = {
        {"cape22_qakbot_0000a657.json.gz", MF_DET_STRING, "QakBot", "", "Yara",
         "e2147b5333879f98d515cd9aa905d489", "vawtrak"},
        {"cape24_suncrypt_0a0882b8.json.gz", MF_DET_LIST, "SunCrypt", "Behavior", "",
         "0a0882b8da225406cc838991b5f67d11", "SunCrypt"},
        {"cape24_cobaltstrikestager_5d61700f.json.gz", MF_DET_LIST, "CobaltStrikeStager",
         "Yara", "", "491eca23ef8a213a9219f7d18510c451", NULL},
        {"cuckoo207_sodinokibi_nocalls.json", MF_DET_NONE, NULL, "", "",
         "4387700607ebc371736db021193c32fa", NULL},
        {"cape22_55dcd387.json", MF_DET_NONE, NULL, "", "", "0a6173561a8f993cd005f6b52b04f4dd",
         NULL},
    };
    const char *name = want[_i].name;
    char path[4096];
    snprintf(path, sizeof path, "%s/reports/%s", tu_data(), name);
    mf_vocab_t *v = mf_vocab_new();
    mf_prep_t prep = {1, 200};
    mf_trace_t t[2];
    mf_extract_stats_t st[2];
    mf_report_meta_t m;
    for (int meta = 0; meta < 2; meta++) {
        mf_extract_opts_t o;
        mf_prep_extract_opts(&prep, &o);
        o.grow_vocab = 1;
        o.want_meta = meta;
        mf_trace_init(&t[meta]);
        mf_extract_t *ex = mf_extract_new_trace(&o, &prep, v, &t[meta]);
        int fd = open(path, O_RDONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_msg(mf_extract_fd(ex, fd) == MF_OK, "%s: %s", name, mf_extract_errmsg(ex));
        close(fd);
        st[meta] = *mf_extract_stats(ex);
        if (meta)
            m = *mf_extract_meta(ex);
        mf_extract_free(ex);
    }
    ck_assert_uint_eq(t[0].n, t[1].n);
    if (t[0].n) /* no calls: ids may be NULL */
        ck_assert_int_eq(memcmp(t[0].ids, t[1].ids, t[0].n * sizeof *t[0].ids), 0);
    ck_assert_uint_eq(st[0].calls, st[1].calls);
    ck_assert_uint_eq(st[0].entries, st[1].entries);
    ck_assert_uint_eq(st[0].processes, st[1].processes);
    ck_assert_uint_eq(st[0].unknown, st[1].unknown);
    ck_assert_int_eq(st[0].truncated, st[1].truncated);
    ck_assert_uint_ge(st[1].bytes, st[0].bytes); /* the meta pass reads to the end */

    ck_assert_int_eq(m.det_kind, want[_i].kind);
    if (want[_i].det) {
        ck_assert_uint_eq(m.ndet, 1);
        ck_assert_str_eq(m.det[0].name, want[_i].det);
    } else {
        ck_assert_uint_eq(m.ndet, 0);
    }
    ck_assert_str_eq(m.det_by, want[_i].by);
    ck_assert_str_eq(m.tag, want[_i].tag);
    ck_assert_str_eq(m.md5, want[_i].md5);
    ck_assert_uint_eq(strlen(m.sha256), 64);
    if (want[_i].sig)
        ck_assert_str_eq(m.sig[0].name, want[_i].sig);
    else
        ck_assert_uint_eq(m.nsig, 0);
    ck_assert_uint_eq(m.dropped, 0);
    mf_trace_destroy(&t[0]);
    mf_trace_destroy(&t[1]);
    mf_vocab_free(v);
}
END_TEST

/* Label fields of the wrong type are ignored (never an error: the trace is what is checked),
 * and every list stays bounded. Each document in every chunk size 1..7 and whole. */
static const struct meta_case {
    const char *name, *doc;
    int kind;
    size_t ndet, nsig, dropped;
    const char *det0, *by, *md5;
} meta_cases[] = {
    {"det_number", "{\"detections\":5}", MF_DET_OTHER, 0, 0, 0, NULL, "", ""},
    {"det_object", "{\"detections\":{\"family\":\"x\"}}", MF_DET_OTHER, 0, 0, 0, NULL, "", ""},
    {"det_null", "{\"detections\":null}", MF_DET_NONE, 0, 0, 0, NULL, "", ""},
    {"det_bool", "{\"detections\":true}", MF_DET_OTHER, 0, 0, 0, NULL, "", ""},
    {"det_empty_list", "{\"detections\":[]}", MF_DET_LIST, 0, 0, 0, NULL, "", ""},
    {"det_bad_entries",
     "{\"detections\":[1,\"x\",null,[],{\"family\":3},{\"family\":{\"a\":[1]}},{\"family\":\"\"},"
     "{\"family\":\"ok\",\"details\":\"no\"},{\"family\":\"ok2\",\"details\":[5,{\"By\":1}]}]}",
     MF_DET_LIST, 2, 0, 7, "ok", "", ""},
    {"det_details_odd", "{\"detections\":[{\"details\":[[1],{\"Yara\":[\"x\"]}],\"family\":\"F\"}]}",
     MF_DET_LIST, 1, 0, 0, "F", "Yara", ""},
    {"wrong_containers",
     "{\"target\":\"x\",\"signatures\":{\"a\":1},\"malfamily_tag\":5,\"behavior\":{}}",
     MF_DET_NONE, 0, 0, 0, NULL, "", ""},
    {"target_file_list", "{\"target\":{\"file\":[\"md5\"]}}", MF_DET_NONE, 0, 0, 0, NULL, "", ""},
    {"bad_hashes", "{\"target\":{\"file\":{\"md5\":\"0123456789abcdef0123456789abcdeX\","
                   "\"sha256\":12}}}", MF_DET_NONE, 0, 0, 0, NULL, "", ""},
    {"good_md5_as_number_sha", "{\"target\":{\"file\":{\"sha256\":[],"
                   "\"md5\":\"0123456789ABCDEF0123456789abcdef\"}}}", MF_DET_NONE, 0, 0, 0, NULL,
     "", "0123456789abcdef0123456789abcdef"},
    {"sig_families_odd",
     "{\"signatures\":[5,{\"families\":\"Zeus\"},{\"families\":[[\"n\"],\"A\\u0000B\",7,null]}]}",
     MF_DET_NONE, 0, 1, 3, NULL, "", ""},
    {"nested_target_not_top", "{\"x\":{\"target\":{\"file\":{\"md5\":"
                   "\"0123456789abcdef0123456789abcdef\"}},\"detections\":\"no\"}}",
     MF_DET_NONE, 0, 0, 0, NULL, "", ""},
};
#define NMETA (sizeof meta_cases / sizeof meta_cases[0])

START_TEST(test_meta_hostile_shapes)
{
    const struct meta_case *c = &meta_cases[_i];
    mf_vocab_t *v = mf_vocab_new();
    for (size_t chunk = 0; chunk <= 7; chunk++) {
        mf_report_meta_t m;
        ck_assert_msg(meta_mem(c->doc, strlen(c->doc), chunk, NULL, v, NULL, &m, NULL) == MF_OK,
                      "%s (chunk %zu)", c->name, chunk);
        ck_assert_msg(m.det_kind == c->kind, "%s: kind %d", c->name, m.det_kind);
        ck_assert_msg(m.ndet == c->ndet && m.nsig == c->nsig && m.dropped == c->dropped,
                      "%s: ndet %zu nsig %zu dropped %zu", c->name, m.ndet, m.nsig, m.dropped);
        if (c->det0)
            ck_assert_str_eq(m.det[0].name, c->det0);
        ck_assert_str_eq(m.det_by, c->by);
        ck_assert_str_eq(m.md5, c->md5);
        ck_assert_str_eq(m.tag, "");
    }
    mf_vocab_free(v);
}
END_TEST

/* 20,000 distinct detection and signature families and a 100 kB name: bounded lists, names
 * cut, the rest counted as dropped; a trace error is still an error with want_meta. */
START_TEST(test_meta_huge_lists_bounded)
{
    enum { N = 20000 };
    size_t cap = (size_t)N * 40 + 300000, n = 0;
    char *doc = malloc(cap);
    ck_assert_ptr_nonnull(doc);
    n += (size_t)sprintf(doc + n, "{\"detections\":[");
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(doc + n, "%s{\"family\":\"F%d\"}", i ? "," : "", i);
    n += (size_t)sprintf(doc + n, "],\"malfamily_tag\":\"");
    memset(doc + n, 't', 100000);
    n += 100000;
    n += (size_t)sprintf(doc + n, "\",\"signatures\":[{\"families\":[\"");
    memset(doc + n, 's', 100000);
    n += 100000;
    n += (size_t)sprintf(doc + n, "\"");
    for (int i = 0; i < N; i++)
        n += (size_t)sprintf(doc + n, ",\"S%d\"", i);
    n += (size_t)sprintf(doc + n, "]}]}");
    ck_assert_uint_lt(n, cap);
    mf_vocab_t *v = mf_vocab_new();
    mf_report_meta_t m;
    ck_assert_int_eq(meta_mem(doc, n, 4096, NULL, v, NULL, &m, NULL), MF_OK);
    ck_assert_uint_eq(m.ndet, MF_MAX_META_FAMILIES);
    ck_assert_uint_eq(m.det_entries, MF_MAX_META_FAMILIES);
    ck_assert_uint_eq(m.nsig, MF_MAX_META_FAMILIES);
    ck_assert_uint_eq(strlen(m.tag), MF_MAX_META_NAME);
    ck_assert_uint_eq(strlen(m.sig[0].name), MF_MAX_META_NAME);
    ck_assert_uint_eq(m.dropped, 2 * (size_t)N + 1 - 2 * MF_MAX_META_FAMILIES);
    free(doc);

    static const char bad[] = "{\"detections\":\"QakBot\",\"behavior\":5}";
    ck_assert_int_eq(meta_mem(bad, sizeof bad - 1, 0, NULL, v, NULL, &m, NULL), MF_ETYPE);
    mf_vocab_free(v);
}
END_TEST

Suite *suite_trace(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("extract");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_real_reports_match_python, 0, (int)NREPORTS * 3);
    tcase_add_loop_test(tc, test_small_reports_every_chunk_size, 0, 3);
    tcase_add_loop_test(tc, test_big_reports_some_chunk_sizes, 0, 2);
    tcase_add_test(tc, test_generated_cuckoo2_and_cape);
    tcase_add_test(tc, test_processes_any_key_order);
    tcase_add_test(tc, test_repeat_modes);
    tcase_add_test(tc, test_max_calls_and_callback_stop);
    tcase_add_test(tc, test_unknown_names_counted);
    tcase_add_loop_test(tc, test_bad_inputs, 0, (int)NBAD);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_no_behavior_is_empty_trace);
    tcase_add_test(tc, test_files_missing_and_bad_gzip);
    tcase_add_test(tc, test_read_limit);
    tcase_add_test(tc, test_long_token_linear);
    tcase_add_test(tc, test_encodings_every_chunk_size);
    tcase_add_test(tc, test_encodings_truncated_garbage_bomb);
    tcase_add_test(tc, test_oom_loop);
    tcase_add_test(tc, test_meta_every_chunk_size);
    tcase_add_loop_test(tc, test_meta_real_reports, 0, 5);
    tcase_add_loop_test(tc, test_meta_hostile_shapes, 0, (int)NMETA);
    tcase_add_test(tc, test_meta_huge_lists_bounded);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("million");
    tcase_set_timeout(big, 300);
    tcase_add_loop_test(big, test_generated_million_calls, 0, 2);
    suite_add_tcase(s, big);

    TCase *ds = tcase_create("dataset");
    tcase_set_timeout(ds, 60);
    tcase_add_test(ds, test_trace_prep);
    tcase_add_test(ds, test_prep_unknown_outside_the_cap);
    tcase_add_test(ds, test_malapi_split);
    tcase_add_test(ds, test_malapi_row_matches_reference);
    tcase_add_test(ds, test_report_list);
    suite_add_tcase(s, ds);
    return s;
}
