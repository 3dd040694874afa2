/* check_daemon.c - malfamd internals without a loop: request lines, config, safe open,
 * write-back byte preservation on every real report, classification against offline. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <yajl/yajl_parse.h>
#include <zlib.h>

#include "dataset.h"
#include "eval.h"
#include "linear.h"
#include "lstm.h"
#include "mf.h"
#include "private.h"
#include "testutil.h"
#include "proto.h"

/* ---- request lines ----------------------------------------------------------------------- */

static int parse(mfp_req_t *r, const char *line)
{
    char msg[256];
    return mfp_req_parse(r, line, strlen(line), msg, sizeof msg);
}

START_TEST(test_req_valid)
{
    mfp_req_t r;
    ck_assert_int_eq(parse(&r, "{\"op\":\"classify\",\"path\":\"/a/b.json\",\"write_back\":true,"
                              "\"top\":5,\"id\":\"x\\\"1\",\"task_id\":77}\r\n"), MF_OK);
    ck_assert_int_eq(r.op, MFP_OP_CLASSIFY);
    ck_assert_str_eq(r.path, "/a/b.json");
    ck_assert_int_eq(r.write_back, 1);
    ck_assert_int_eq(r.top, 5);
    ck_assert_str_eq(r.id, "\"x\\\"1\"");
    ck_assert_int_eq(r.task_id, 77);
    ck_assert_int_eq(parse(&r, "{\"op\":\"classify_stream\",\"bytes\":123,\"id\":4.5e1}"), MF_OK);
    ck_assert_int_eq(r.bytes, 123);
    ck_assert_str_eq(r.id, "4.5e1");
    /* classify_stream may write its answer into a report (the CAPE json.calls=0 fallback) */
    ck_assert_int_eq(parse(&r, "{\"op\":\"classify_stream\",\"bytes\":9,\"write_back\":true,"
                              "\"path\":\"/r/report.json\"}"), MF_OK);
    ck_assert_int_eq(r.op, MFP_OP_STREAM);
    ck_assert_int_eq(r.write_back, 1);
    ck_assert_str_eq(r.path, "/r/report.json");
    /* unknown keys are allowed (newer clients), whatever their value */
    ck_assert_int_eq(parse(&r, "{\"op\":\"ping\",\"x\":{\"y\":[1,{\"z\":null}]}}"), MF_OK);
    ck_assert_int_eq(r.op, MFP_OP_PING);
    ck_assert_str_eq(r.id, "null");
    /* an escaped path is decoded */
    ck_assert_int_eq(parse(&r, "{\"op\":\"classify\",\"path\":\"/r\\u00e9p/a\\/b\"}"), MF_OK);
    ck_assert_str_eq(r.path, "/r\xc3\xa9p/a/b");
}
END_TEST

START_TEST(test_req_hostile)
{
    static const struct {
        const char *line;
        int rc;
    } cases[] = {
        {"", MF_EJSON},
        {"   ", MF_EJSON},
        {"[]", MF_EJSON},
        {"\"op\"", MF_EJSON},
        {"42", MF_EJSON},
        {"{", MF_EJSON},
        {"{\"op\":\"ping\"", MF_EJSON},
        {"{\"op\":\"ping\"}{}", MF_EJSON},
        {"{\"op\":\"ping\"} x", MF_EJSON},
        {"{\"op\":\"ping\",}", MF_EJSON},
        {"{'op':'ping'}", MF_EJSON},
        {"{\"op\":\"p\xff\"}", MF_EJSON},               /* invalid UTF-8 */
        {"{}", MF_EINVAL},                              /* no op */
        {"{\"op\":\"nope\"}", MF_EINVAL},
        {"{\"op\":1}", MF_EINVAL},
        {"{\"op\":[\"ping\"]}", MF_EINVAL},
        {"{\"op\":\"ping\",\"op\":\"stats\"}", MF_EINVAL},
        {"{\"op\":\"classify\"}", MF_EINVAL},           /* no path */
        {"{\"op\":\"classify\",\"path\":\"\"}", MF_EINVAL},
        {"{\"op\":\"classify\",\"path\":\"/a\\u0000b\"}", MF_EINVAL},
        {"{\"op\":\"classify\",\"path\":\"/a\",\"write_back\":1}", MF_EINVAL},
        {"{\"op\":\"classify\",\"path\":\"/a\",\"top\":0}", MF_EINVAL},
        {"{\"op\":\"classify\",\"path\":\"/a\",\"top\":17}", MF_EINVAL},
        {"{\"op\":\"classify\",\"path\":\"/a\",\"top\":2.5}", MF_EINVAL},
        {"{\"op\":\"classify\",\"path\":\"/a\",\"top\":-1}", MF_EINVAL},
        {"{\"op\":\"classify_stream\"}", MF_EINVAL},    /* no bytes */
        {"{\"op\":\"classify_stream\",\"bytes\":-5}", MF_EINVAL},
        {"{\"op\":\"classify_stream\",\"bytes\":99999999999999999999}", MF_EINVAL},
        {"{\"op\":\"classify_stream\",\"bytes\":1,\"write_back\":true}", MF_EINVAL},
        {"{\"op\":\"ping\",\"id\":{}}", MF_EINVAL},
        {"{\"op\":\"ping\",\"id\":true}", MF_EINVAL},
        {"{\"op\":\"ping\",\"x\":[[[[[[[[[[1]]]]]]]]]]}", MF_ELIMIT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mfp_req_t r;
        char msg[256];
        int rc = mfp_req_parse(&r, cases[i].line, strlen(cases[i].line), msg, sizeof msg);
        ck_assert_msg(rc == cases[i].rc, "case %zu %s: rc %d want %d (%s)", i, cases[i].line,
                      rc, cases[i].rc, msg);
        ck_assert_msg(msg[0] != '\0', "case %zu: no message", i);
    }
}
END_TEST

START_TEST(test_req_limits)
{
    mfp_req_t r;
    char msg[256];
    /* deep nesting far beyond the limit: refused, no recursion */
    size_t n = 60000;
    char *deep = malloc(2 * n + 64);
    ck_assert_ptr_nonnull(deep);
    strcpy(deep, "{\"op\":\"ping\",\"x\":");
    size_t k = strlen(deep);
    for (size_t i = 0; i < n / 2; i++)
        deep[k++] = '[';
    deep[k] = '\0';
    ck_assert_int_eq(mfp_req_parse(&r, deep, k, msg, sizeof msg), MF_ELIMIT);
    free(deep);
    /* an id over MFP_ID_MAX, a path over MFP_PATH_MAX */
    char line[MF_MAX_REQUEST];
    int len = snprintf(line, sizeof line, "{\"op\":\"ping\",\"id\":\"%0300d\"}", 0);
    ck_assert_int_eq(mfp_req_parse(&r, line, (size_t)len, msg, sizeof msg), MF_ELIMIT);
    len = snprintf(line, sizeof line, "{\"op\":\"classify\",\"path\":\"/%05000d\"}", 0);
    ck_assert_int_eq(mfp_req_parse(&r, line, (size_t)len, msg, sizeof msg), MF_ELIMIT);
    /* the id read before an error is kept for the answer */
    ck_assert_int_eq(parse(&r, "{\"id\":7,\"op\":\"zap\"}"), MF_EINVAL);
    ck_assert_str_eq(r.id, "7");
    /* every prefix of a valid line fails cleanly */
    const char *ok = "{\"op\":\"classify\",\"path\":\"/x\",\"id\":\"a\",\"top\":2}";
    for (size_t i = 0; i < strlen(ok); i++)
        ck_assert_int_ne(mfp_req_parse(&r, ok, i, msg, sizeof msg), MF_OK);
    ck_assert_int_eq(mfp_req_parse(&r, ok, strlen(ok), msg, sizeof msg), MF_OK);
}
END_TEST

START_TEST(test_answer_error_escapes)
{
    mfp_buf_t b = {0};
    mfp_answer_error(&b, "\"q\"", MF_EPERM, "a \"quoted\"\n\x01 thing");
    ck_assert_str_eq(b.p, "{\"v\":1,\"id\":\"q\",\"ok\":false,\"error\":\"MF_EPERM\","
                          "\"message\":\"a \\\"quoted\\\"\\n\\u0001 thing\"}\n");
    mfp_buf_free(&b);
}
END_TEST

/* ---- config ------------------------------------------------------------------------------ */

static char *write_temp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/check_daemon_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(test_config)
{
    mfd_config_t c;
    char err[MFD_ERR_LEN];
    mfd_config_default(&c);
    ck_assert_int_eq(c.top, 3);
    ck_assert_int_eq(c.max_request, MF_MAX_REQUEST);
    char *p = write_temp("[malfamd]\nsocket = /tmp/x.sock\nsocket_mode = 0600\n"
                         "allowed_roots = /tmp : /\nallowed_roots = /var\nmax_report_bytes = 2M\n"
                         "log = syslog\nunknown_threshold = 0.25\n");
    ck_assert_int_eq(mfd_config_load(&c, p, err, sizeof err), MF_OK);
    unlink(p);
    ck_assert_str_eq(c.socket, "/tmp/x.sock");
    ck_assert_uint_eq(c.socket_mode, 0600);
    ck_assert_int_eq(c.nroots, 3);
    ck_assert_str_eq(c.roots[1], "/");
    ck_assert_uint_eq(c.max_report_bytes, 2u << 20);
    ck_assert_int_eq(c.log_target, MFD_LOG_SYSLOG);
    ck_assert_double_eq(c.unknown_threshold, 0.25);
    ck_assert_int_eq(mfd_config_check(&c, err, sizeof err), MF_OK);

    /* an unknown key and a bad value each name their line */
    mfd_config_default(&c);
    p = write_temp("# comment\n\nsocket = /tmp/y.sock\nsockt = /tmp/z\n");
    ck_assert_int_eq(mfd_config_load(&c, p, err, sizeof err), MF_EINVAL);
    unlink(p);
    ck_assert_msg(strstr(err, ":4: unknown key \"sockt\""), "%s", err);
    p = write_temp("top = 3\nmax_jobs = zero\n");
    ck_assert_int_eq(mfd_config_load(&c, p, err, sizeof err), MF_EINVAL);
    unlink(p);
    ck_assert_msg(strstr(err, ":2: max_jobs"), "%s", err);
    p = write_temp("[other]\ntop = 3\n");
    ck_assert_int_eq(mfd_config_load(&c, p, err, sizeof err), MF_EINVAL);
    unlink(p);
    ck_assert_msg(strstr(err, "unknown section"), "%s", err);
    /* a line over libinih's 200 bytes is named with its own number, not "syntax error" on a
     * line the file does not have; 198 characters and the newline still fit */
    char longconf[1024], root198[256];
    memset(root198, 'r', 198 - strlen("allowed_roots = /"));
    root198[198 - strlen("allowed_roots = /")] = '\0';
    snprintf(longconf, sizeof longconf, "[malfamd]\ntop = 3\nallowed_roots = /%s\n"
             "allowed_roots = /%sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\ntop = 2\n",
             root198, root198);
    p = write_temp(longconf);
    mfd_config_default(&c);
    ck_assert_int_eq(mfd_config_load(&c, p, err, sizeof err), MF_EINVAL);
    unlink(p);
    ck_assert_msg(strstr(err, ":4: line longer than 198 characters"), "%s", err);
    ck_assert_int_eq(c.nroots, 1);
    ck_assert_uint_eq(strlen(c.roots[0]), 198 - strlen("allowed_roots = "));

    static const char *const bad[][2] = {
        {"socket", "relative.sock"}, {"socket_mode", "999"}, {"top", "0"}, {"top", "17"},
        {"max_report_bytes", "12Q"}, {"max_report_bytes", "-1"}, {"repeat", "twice"},
        {"log_level", "loud"}, {"log", "file"}, {"idle_timeout", "0"},
        {"max_request", "1000000"}, {"allowed_roots", "rel/dir"}, {"unknown_threshold", "x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(mfd_config_set(&c, bad[i][0], bad[i][1], err, sizeof err) == MF_EINVAL,
                      "%s = %s accepted", bad[i][0], bad[i][1]);
    /* a root that does not exist fails the check */
    mfd_config_default(&c);
    ck_assert_int_eq(mfd_config_set(&c, "allowed_roots", "/nonexistent/malfam", err, sizeof err),
                     MF_OK);
    ck_assert_int_eq(mfd_config_check(&c, err, sizeof err), MF_EINVAL);
    /* the shipped config parses (its allowed_roots is empty, so the check asks for one) */
    mfd_config_default(&c);
    ck_assert_int_eq(mfd_config_load(&c, "conf/malfamd.conf", err, sizeof err), MF_OK);
}
END_TEST

/* --check-config checks what the start would: a socket_group that does not exist fails the
 * check, and a relative `model =` means beside the config file, whatever the cwd (systemd
 * starts the daemon in /), so the check and the start see the same file. */
START_TEST(test_config_checks_what_start_needs)
{
    mfd_config_t c;
    char err[MFD_ERR_LEN];
    char dir[] = "/tmp/check_daemon_cfg_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char conf[256], model[256];
    snprintf(conf, sizeof conf, "%s/malfamd.conf", dir);
    snprintf(model, sizeof model, "%s/my.model", dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[malfamd]\nsocket = /tmp/x.sock\nmodel = my.model\nallowed_roots = /tmp\n");
    fclose(f);
    mfd_config_default(&c);
    ck_assert_int_eq(mfd_config_load(&c, conf, err, sizeof err), MF_OK);
    ck_assert_str_eq(c.model, model);
    ck_assert_int_eq(mfd_config_check(&c, err, sizeof err), MF_OK);
    ck_assert_str_eq(c.model, model);
    /* a relative --model flag (set after the file) is the shell's: made absolute by the check */
    ck_assert_int_eq(mfd_config_set(&c, "model", "conf/malfamd.conf", err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_check(&c, err, sizeof err), MF_OK);
    ck_assert_int_eq(c.model[0], '/');
    ck_assert_ptr_nonnull(strstr(c.model, "/conf/malfamd.conf"));
    ck_assert_int_eq(mfd_config_set(&c, "socket_group", "no-such-group-malfam", err, sizeof err),
                     MF_OK);
    ck_assert_int_eq(mfd_config_check(&c, err, sizeof err), MF_EINVAL);
    ck_assert_msg(strstr(err, "socket_group") && strstr(err, "no-such-group-malfam"), "%s", err);
    ck_assert_int_eq(mfd_config_set(&c, "socket_group", "root", err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_check(&c, err, sizeof err), MF_OK);
    unlink(conf);
    rmdir(dir);
}
END_TEST

/* a client connected as root (the tests run as root) */
static const mfd_peer_t root_peer = {.known = 1, .uid = 0, .gid = 0};

/* ---- safe open ----------------------------------------------------------------------------- */

static char root[64], outside[64];
static char roots[1][4096];

static void mk(const char *dir, const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void paths_setup(void)
{
    strcpy(root, "/tmp/mfd_root_XXXXXX");
    strcpy(outside, "/tmp/mfd_out_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    ck_assert_ptr_nonnull(mkdtemp(outside));
    char p[256], q[256];
    snprintf(p, sizeof p, "%s/sub", root);
    mkdir(p, 0755);
    mk(root, "sub/report.json", "{\"a\":1}\n");
    mk(outside, "secret.json", "{\"s\":1}\n");
    snprintf(p, sizeof p, "%s/out.json", root);
    snprintf(q, sizeof q, "%s/secret.json", outside);
    ck_assert_int_eq(symlink(q, p), 0);                    /* escapes */
    snprintf(p, sizeof p, "%s/in.json", root);
    ck_assert_int_eq(symlink("sub/report.json", p), 0);    /* stays inside */
    snprintf(p, sizeof p, "%s/outdir", root);
    ck_assert_int_eq(symlink(outside, p), 0);
    snprintf(p, sizeof p, "%s/fifo.json", root);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/null.json", root);
    ck_assert_int_eq(symlink("/dev/null", p), 0);
    ck_assert_ptr_nonnull(realpath(root, roots[0]));
}

static void paths_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", root, outside);
    ck_assert_int_eq(system(cmd), 0);
}

static int try_open(const char *rel)
{
    char p[512], err[512];
    if (rel[0] == '/' || rel[0] == '.')
        snprintf(p, sizeof p, "%s", rel);
    else
        snprintf(p, sizeof p, "%s/%s", root, rel);
    mfd_file_t f;
    int rc = mfd_file_open(&f, roots, 1, p, err, sizeof err);
    if (rc == MF_OK)
        mfd_file_close(&f);
    else
        ck_assert_msg(err[0], "no detail for %s", rel);
    return rc;
}

START_TEST(test_paths)
{
    char p[512];
    ck_assert_int_eq(try_open("sub/report.json"), MF_OK);
    ck_assert_int_eq(try_open("in.json"), MF_OK);
    ck_assert_int_eq(try_open("out.json"), MF_EPERM);
    ck_assert_int_eq(try_open("outdir/secret.json"), MF_EPERM);
    snprintf(p, sizeof p, "%s/sub/../../%s/secret.json", root, outside + 5);
    ck_assert_int_eq(try_open(p), MF_EPERM);
    ck_assert_int_eq(try_open("fifo.json"), MF_EPERM);   /* refused without blocking */
    ck_assert_int_eq(try_open("null.json"), MF_EPERM);   /* /dev/null is outside anyway */
    ck_assert_int_eq(try_open("sub"), MF_EPERM);         /* a directory */
    ck_assert_int_eq(try_open("missing.json"), MF_ENOENT);
    ck_assert_int_eq(try_open("./relative.json"), MF_EINVAL);
    ck_assert_int_eq(try_open("/etc/passwd"), MF_EPERM);
    /* a device inside a root is refused before it is opened */
    char dev[4096];
    strcpy(dev, "/dev");
    ck_assert_int_eq(mfd_file_open(&(mfd_file_t){0}, (const char (*)[4096])&dev, 1, "/dev/null",
                                   p, sizeof p), MF_EPERM);
}
END_TEST

/* ---- write-back ---------------------------------------------------------------------------- */

static int json_valid(const char *buf, size_t len)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    ck_assert_ptr_nonnull(h);
    yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    return st == yajl_status_ok;
}

static void scan_all(mfd_wb_scan_t *s, const char *buf, size_t len, size_t chunk)
{
    mfd_wb_scan_init(s);
    for (size_t o = 0; o < len; o += chunk)
        ck_assert_int_eq(mfd_wb_scan_feed(s, buf + o, len - o < chunk ? len - o : chunk), MF_OK);
    ck_assert_msg(mfd_wb_scan_finish(s) == MF_OK, "%s", s->errmsg);
}

/* Label `orig` twice (add, then replace) and check every byte outside the value. */
static void check_writeback(const char *name, const char *orig, size_t len)
{
    static const char v1[] = "{\"families\":[{\"family\":\"A\",\"score\":1}],\"calls\":3}";
    static const char v2[] = "{\"families\":[],\"note\":\"no trace\"}";
    mfd_wb_scan_t s;
    scan_all(&s, orig, len, 1 << 16);
    ck_assert_int_eq(s.nranges, 0);
    mfp_buf_t out = {0}, out2 = {0};
    ck_assert_int_eq(mfd_wb_apply_mem(&s, orig, len, v1, strlen(v1), &out), MF_OK);
    ck_assert_msg(json_valid(out.p, out.n), "%s: labelled report does not parse", name);
    /* original = labelled minus the inserted text, byte for byte */
    const char ins_pre[] = ", \"malfam\": ";
    size_t at = (size_t)s.last_end, ilen = strlen(ins_pre) + strlen(v1);
    ck_assert_uint_eq(out.n, len + ilen);
    ck_assert_int_eq(memcmp(out.p, orig, at), 0);
    ck_assert_int_eq(memcmp(out.p + at, ins_pre, strlen(ins_pre)), 0);
    ck_assert_int_eq(memcmp(out.p + at + strlen(ins_pre), v1, strlen(v1)), 0);
    ck_assert_msg(memcmp(out.p + at + ilen, orig + at, len - at) == 0, "%s: tail differs", name);
    /* label again: replaced, not duplicated */
    scan_all(&s, out.p, out.n, 4096);
    ck_assert_int_eq(s.nranges, 1);
    ck_assert_int_eq(mfd_wb_apply_mem(&s, out.p, out.n, v2, strlen(v2), &out2), MF_OK);
    ck_assert(json_valid(out2.p, out2.n));
    ck_assert_uint_eq(out2.n, len + strlen(ins_pre) + strlen(v2));
    ck_assert_int_eq(memcmp(out2.p, orig, at), 0);
    ck_assert_int_eq(memcmp(out2.p + at + strlen(ins_pre), v2, strlen(v2)), 0);
    ck_assert_int_eq(memcmp(out2.p + at + strlen(ins_pre) + strlen(v2), orig + at, len - at), 0);
    mfp_buf_free(&out);
    mfp_buf_free(&out2);
}

static char *gunzip_file(const char *path, size_t *len)
{
    gzFile g = gzopen(path, "rb");
    ck_assert_ptr_nonnull(g);
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    int r;
    while (b && (r = gzread(g, b + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    gzclose(g);
    ck_assert_ptr_nonnull(b);
    *len = n;
    return b;
}

static const char *const reports[] = {
    "reports/cape22_55dcd387.json", "reports/cuckoo207_benign_cmdkey.json",
    "reports/cuckoo207_sodinokibi_nocalls.json", "reports/cape22_qakbot_0000a657.json.gz",
    "reports/cape24_cobaltstrikestager_5d61700f.json.gz",
    "reports/cape24_suncrypt_0a0882b8.json.gz", "reports/cuckoo12_drewboardman1.json.gz",
    "reports/cuckoo20dev_demo_icqw3.json.gz",
};

START_TEST(test_writeback_real_reports)
{
    /* every real report: plain ones directly, gzipped ones decompressed in memory */
    const char *name = reports[_i];
    size_t len;
    char *buf = strstr(name, ".gz") ? gunzip_file(tu_path(name), &len)
                                    : tu_slurp(tu_path(name), &len);
    ck_assert_ptr_nonnull(buf);
    check_writeback(name, buf, len);
    free(buf);
}
END_TEST

START_TEST(test_writeback_shapes)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{}", "{\"malfam\": 1}"},
        {" { \n } \n", " {\"malfam\": 1 \n } \n"},
        {"{\"a\":2}", "{\"a\":2, \"malfam\": 1}"},
        {"{\"a\":2 }", "{\"a\":2, \"malfam\": 1 }"},
        {"{\"malfam\":{\"old\":[1,{}]},\"b\":\"}\"}", "{\"malfam\":1,\"b\":\"}\"}"},
        {"{\"a\":\"x\\\"}\",\"malfam\" : null}", "{\"a\":\"x\\\"}\",\"malfam\" : 1}"},
        {"{\"malfam\":3,\"malfam\":\"s\"}", "{\"malfam\":1,\"malfam\":1}"},
        {"{\"malfamx\":3,\"c\":[{\"malfam\":1}]}", "{\"malfamx\":3,\"c\":[{\"malfam\":1}], "
                                                   "\"malfam\": 1}"},
        {"{\"n\":-1.5e3}\r\n", "{\"n\":-1.5e3, \"malfam\": 1}\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        for (size_t chunk = 1; chunk <= 31; chunk++) {
            mfd_wb_scan_t s;
            scan_all(&s, cases[i].in, len, chunk);
            mfp_buf_t out = {0};
            ck_assert_int_eq(mfd_wb_apply_mem(&s, cases[i].in, len, "1", 1, &out), MF_OK);
            ck_assert_msg(strcmp(out.p, cases[i].out) == 0, "case %zu chunk %zu: %s", i, chunk,
                          out.p);
            mfp_buf_free(&out);
        }
    }
    static const char *const bad[] = {"", "[]", "\"s\"", "{\"a\":1", "{\"a\" 1}", "{\"a\":1} x",
                                      "{\"a\":1}{}", "{,}", "{\"a\":}", "nul"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mfd_wb_scan_t s;
        mfd_wb_scan_init(&s);
        int rc = mfd_wb_scan_feed(&s, bad[i], strlen(bad[i]));
        if (rc == MF_OK)
            rc = mfd_wb_scan_finish(&s);
        ck_assert_msg(rc != MF_OK, "bad case %zu accepted", i);
    }
}
END_TEST

START_TEST(test_writeback_commit)
{
    /* on disk: mode kept, content as in memory, no temp file left */
    char p[512], err[512];
    snprintf(p, sizeof p, "%s/sub/report.json", root);
    ck_assert_int_eq(chmod(p, 0640), 0);
    mfd_file_t f;
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, err, sizeof err), MF_OK);
    mfd_wb_scan_t s;
    scan_all(&s, "{\"a\":1}\n", 8, 8);
    ck_assert_int_eq(mfd_wb_commit(&f, &s, "{\"x\":2}", 7, err, sizeof err), MF_OK);
    mfd_file_close(&f);
    size_t len;
    char *b = tu_slurp(p, &len);
    const char want[] = "{\"a\":1, \"malfam\": {\"x\":2}}\n";
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_int_eq(memcmp(b, want, len), 0);
    free(b);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    snprintf(p, sizeof p, "ls -a %s/sub | grep -c malfam- || true", root);
    FILE *ls = popen(p, "r");
    char line[16] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, ls));
    pclose(ls);
    ck_assert_str_eq(line, "0\n");
    /* the file changed since it was scanned: refused, left as it is */
    snprintf(p, sizeof p, "%s/sub/report.json", root);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, err, sizeof err), MF_OK);
    b = tu_slurp(p, &len);
    scan_all(&s, b, len, len);
    FILE *a = fopen(p, "a");
    fputs(" ", a);
    fclose(a);
    ck_assert_int_ne(mfd_wb_commit(&f, &s, "1", 1, err, sizeof err), MF_OK);
    mfd_file_close(&f);
    size_t len2;
    char *b2 = tu_slurp(p, &len2);
    ck_assert_uint_eq(len2, len + 1);
    ck_assert_int_eq(memcmp(b, b2, len), 0);
    free(b);
    free(b2);
}
END_TEST

/* A PID that no process has: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    return pid;
}

static int exists_in(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

START_TEST(test_writeback_clean_stale)
{
    /* only this report's temps of dead PIDs go; live PIDs, other reports, odd names stay */
    char dir[128], p[256], err[512];
    snprintf(dir, sizeof dir, "%s/sub", root);
    long dead = (long)dead_pid(), me = (long)getpid();
    char stale[128], stale2[128], live[128], other[128];
    snprintf(stale, sizeof stale, ".report.json.malfam-%ld-3.tmp", dead);
    snprintf(stale2, sizeof stale2, ".report.json.malfam-%ld-12.tmp", dead);
    snprintf(live, sizeof live, ".report.json.malfam-%ld-4.tmp", me);
    snprintf(other, sizeof other, ".other.json.malfam-%ld-1.tmp", dead);
    const char *keep[] = {live, other, ".report.json.malfam-0-1.tmp",
                          ".report.json.malfam--5-1.tmp", ".report.json.malfam-77.tmp",
                          ".report.json.malfam-99999999999-1.tmp", ".report.json.malfam-7-1.tmpx"};
    mk(dir, stale, "{\"half\":");
    mk(dir, stale2, "");
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        mk(dir, keep[i], "x");
    snprintf(p, sizeof p, "%s/report.json", dir);
    mfd_file_t f;
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_clean_stale(&f), 2);
    ck_assert_int_eq(mfd_wb_clean_stale(&f), 0);
    mfd_file_close(&f);
    ck_assert(!exists_in(dir, stale));
    ck_assert(!exists_in(dir, stale2));
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        ck_assert_msg(exists_in(dir, keep[i]), "%s removed", keep[i]);
    ck_assert(exists_in(dir, "report.json"));
}
END_TEST

/* ---- hostile clients and racing processes (issue 12) -------------------------------------- */

/* A symlink inside a root that leads outside: refused with the same words whether its target
 * exists or not, and the target is not named (item 3). */
START_TEST(test_outside_says_nothing)
{
    char p[512], q[512], e1[512], e2[512];
    snprintf(p, sizeof p, "%s/gone.json", root);
    snprintf(q, sizeof q, "%s/missing.json", outside);
    ck_assert_int_eq(symlink(q, p), 0);
    mfd_file_t f;
    snprintf(p, sizeof p, "%s/out.json", root);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e1, sizeof e1), MF_EPERM);
    snprintf(p, sizeof p, "%s/gone.json", root);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e2, sizeof e2), MF_EPERM);
    ck_assert_str_eq(e1, e2);
    ck_assert_ptr_null(strstr(e1, outside));
    /* and straight outside: /etc/shadow and a missing file there alike */
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, "/etc/shadow", e2, sizeof e2), MF_EPERM);
    ck_assert_str_eq(e1, e2);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, "/etc/no-such-file", e2, sizeof e2), MF_EPERM);
    ck_assert_str_eq(e1, e2);
    /* through .. and a symlinked directory, then back inside: fine */
    snprintf(p, sizeof p, "%s/outdir/../%s/sub/report.json", root, root + 5);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e2, sizeof e2), MF_EPERM); /* outdir/.. is /tmp */
    snprintf(p, sizeof p, "%s/sub/../sub/./report.json", root);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e2, sizeof e2), MF_OK);
    mfd_file_close(&f);
    /* a symlink outside the roots that leads into one (a host spelling the root its own way) */
    snprintf(p, sizeof p, "%s/toroot", outside);
    ck_assert_int_eq(symlink(root, p), 0);
    snprintf(p, sizeof p, "%s/toroot/sub/report.json", outside);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e2, sizeof e2), MF_OK);
    mfd_file_close(&f);
    snprintf(p, sizeof p, "%s/toroot/sub/missing.json", outside);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e2, sizeof e2), MF_ENOENT);
    /* but no ".." outside: it would tell whether the directory before it exists */
    snprintf(p, sizeof p, "%s/no-such-dir/../toroot/sub/report.json", outside);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e2, sizeof e2), MF_EPERM);
    ck_assert_str_eq(e1, e2);
    snprintf(p, sizeof p, "%s/../%s/toroot/sub/report.json", outside, outside + 5);
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, e2, sizeof e2), MF_EPERM);
}
END_TEST

/* The root swapped for a symlink (and back) while reports are opened: every open is the file
 * inside or an error, never the file outside (item 1). */
static volatile int swapping;

static void *swap_root(void *arg)
{
    char *base = arg, real[300], aside[300], link[300];
    snprintf(real, sizeof real, "%s/root", base);
    snprintf(aside, sizeof aside, "%s/root.aside", base);
    snprintf(link, sizeof link, "%s/decoy", base);
    while (swapping) {
        if (rename(real, aside) == 0) {
            (void)symlink(link, real);
            sched_yield();
            (void)unlink(real);
            (void)rename(aside, real);
        }
        usleep(20); /* some time as it should be, for opens that succeed */
    }
    return NULL;
}

START_TEST(test_root_swap)
{
    char base[64], p[300], err[512];
    strcpy(base, "/tmp/mfd_swap_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(p, sizeof p, "%s/root", base);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    mk(p, "r.json", "{\"in\":1}");
    snprintf(p, sizeof p, "%s/decoy", base);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    mk(p, "r.json", "{\"out\":1}");
    char r[1][4096];
    snprintf(p, sizeof p, "%s/root", base);
    ck_assert_ptr_nonnull(realpath(p, r[0]));
    snprintf(p, sizeof p, "%s/root/r.json", base);
    swapping = 1;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, swap_root, base), 0);
    int in = 0, escaped = 0;
    for (int i = 0; i < 20000; i++) {
        mfd_file_t f;
        if (mfd_file_open(&f, r, 1, p, err, sizeof err) != MF_OK)
            continue;
        char b[16] = "";
        ssize_t n = pread(f.fd, b, sizeof b - 1, 0);
        ck_assert_int_gt(n, 0);
        if (strstr(b, "out"))
            escaped++;
        else
            in++;
        mfd_file_close(&f);
    }
    swapping = 0;
    pthread_join(th, NULL);
    ck_assert_msg(escaped == 0, "%d of 20000 opens reached the file outside the root", escaped);
    ck_assert_int_gt(in, 0);
    snprintf(p, sizeof p, "rm -rf '%s'", base);
    ck_assert_int_eq(system(p), 0);
}
END_TEST

/* Who may have a report written back (item 3). */
START_TEST(test_writeback_who)
{
    mfd_config_t cfg;
    char err[256];
    mfd_config_default(&cfg);
    struct stat st = {.st_uid = 4242, .st_gid = 4243, .st_mode = S_IFREG | 0644};
    mfd_peer_t owner = {1, 1, 4242, 4243}, member = {1, 1, 4300, 4243},
               other = {1, 1, 4301, 4301}, unknown = {0, 0, 0, 0}, root_p = {1, 1, 0, 0};
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &root_p, &st, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &owner, &st, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &member, &st, err, sizeof err), MF_EPERM);
    ck_assert_ptr_nonnull(strstr(err, "4300"));
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &other, &st, err, sizeof err), MF_EPERM);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &unknown, &st, err, sizeof err), MF_EPERM);
    st.st_mode = S_IFREG | 0464; /* the kernel's class: the owner may not, the group may */
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &owner, &st, err, sizeof err), MF_EPERM);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &member, &st, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &other, &st, err, sizeof err), MF_EPERM);
    st.st_mode = S_IFREG | 0666;
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &other, &st, err, sizeof err), MF_OK);
    st.st_mode = S_IFREG | 0444;
    ck_assert_int_eq(mfd_config_set(&cfg, "write_back_uids", "4301, 7", err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &other, &st, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_set(&cfg, "write_back_uids", "", err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &other, &st, err, sizeof err), MF_EPERM);
    ck_assert_int_eq(mfd_config_set(&cfg, "write_back_gids", "root 4243", err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_allowed(&cfg, &member, &st, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_set(&cfg, "write_back_gids", "no-such-group-xyz", err, sizeof err),
                     MF_EINVAL);
}
END_TEST

/* Extended attributes and a POSIX ACL survive the write-back (item 14). */
START_TEST(test_writeback_xattrs)
{
    char p[512], err[512];
    snprintf(p, sizeof p, "%s/sub/report.json", root);
    ck_assert_int_eq(setxattr(p, "user.malfam_test", "kept", 4, 0), 0);
    /* user::rw- user:4242:r-- group::r-- mask::r-- other::--- (posix_acl_xattr, version 2) */
    struct { uint16_t tag, perm; uint32_t id; } ent[] = {
        {0x01, 6, 0xffffffffu}, {0x02, 4, 4242}, {0x04, 4, 0xffffffffu},
        {0x10, 4, 0xffffffffu}, {0x20, 0, 0xffffffffu}};
    unsigned char acl[4 + sizeof ent];
    uint32_t ver = 2;
    memcpy(acl, &ver, 4);
    memcpy(acl + 4, ent, sizeof ent);
    int have_acl = setxattr(p, "system.posix_acl_access", acl, sizeof acl, 0) == 0;
    struct stat before;
    ck_assert_int_eq(stat(p, &before), 0);
    mfd_file_t f;
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, err, sizeof err), MF_OK);
    mfd_wb_scan_t s;
    scan_all(&s, "{\"a\":1}\n", 8, 8);
    ck_assert_msg(mfd_wb_commit(&f, &s, "1", 1, err, sizeof err) == MF_OK, "%s", err);
    mfd_file_close(&f);
    struct stat after;
    ck_assert_int_eq(stat(p, &after), 0);
    ck_assert_uint_ne(after.st_ino, before.st_ino);
    ck_assert_uint_eq(after.st_mode, before.st_mode);
    char v[64];
    ck_assert_int_eq(getxattr(p, "user.malfam_test", v, sizeof v), 4);
    ck_assert_int_eq(memcmp(v, "kept", 4), 0);
    if (have_acl) {
        unsigned char got[128];
        ck_assert_int_eq(getxattr(p, "system.posix_acl_access", got, sizeof got), sizeof acl);
        ck_assert_int_eq(memcmp(got, acl, sizeof acl), 0);
    }
}
END_TEST

/* Any spelling of "malfam" is the key: no second member (item 15). */
START_TEST(test_writeback_escaped_key)
{
    static const char *const same[] = {"{\"malf\\u0061m\": 1}", "{\"\\u006dalfam\":1, \"b\":2}",
                                       "{\"ma\\u006CFam\":0, \"malf\\u0061\\u006d\":[1]}",
                                       "{\"m\\u0061lfam\":\"x\"}"};
    static const char *const other[] = {"{\"malf\\u0061m2\": 1}", "{\"malfa\\u00edm\": 1}",
                                        "{\"malfam\\n\": 1}", "{\"m\\\"alfam\": 1}"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        mfd_wb_scan_t s;
        scan_all(&s, same[i], strlen(same[i]), 3);
        /* one range each ("ma\u006CFam" is "malFam", another key: keys are case-sensitive) */
        ck_assert_msg(s.nranges == 1, "%s: %d", same[i], s.nranges);
        mfp_buf_t out = {0};
        ck_assert_int_eq(mfd_wb_apply_mem(&s, same[i], strlen(same[i]), "9", 1, &out), MF_OK);
        ck_assert_msg(json_valid(out.p, out.n), "%.*s", (int)out.n, out.p);
        ck_assert_msg(!strstr(out.p, "\"malfam\""), "%s: key added: %.*s", same[i], (int)out.n,
                      out.p);
        mfp_buf_free(&out);
    }
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        mfd_wb_scan_t s;
        scan_all(&s, other[i], strlen(other[i]), 2);
        ck_assert_msg(s.nranges == 0, "%s", other[i]);
    }
    mfd_wb_scan_t s;
    mfd_wb_scan_init(&s);
    ck_assert_int_eq(mfd_wb_scan_feed(&s, "{\"a\\x\":1}", 9), MF_EFORMAT);
}
END_TEST

/* Another process replaces the report (temp + rename) after the last check and before the
 * labelled copy takes its place: the newer report stays, the write-back says it changed, no
 * temp is left (item 12). */
static char race_path[512];

static void replace_now(const mfd_file_t *f)
{
    (void)f;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", race_path);
    FILE *fp = fopen(tmp, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("{\"newer\":2}\n", fp);
    fclose(fp);
    ck_assert_int_eq(rename(tmp, race_path), 0);
}

START_TEST(test_writeback_replaced_at_rename)
{
    char err[512], dir[256];
    snprintf(dir, sizeof dir, "%s/sub", root);
    snprintf(race_path, sizeof race_path, "%s/report.json", dir);
    mfd_file_t f;
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, race_path, err, sizeof err), MF_OK);
    mfd_wb_scan_t s;
    scan_all(&s, "{\"a\":1}\n", 8, 8);
    mfd_wb_race_hook = replace_now;
    int rc = mfd_wb_commit(&f, &s, "1", 1, err, sizeof err);
    mfd_wb_race_hook = NULL;
    mfd_file_close(&f);
    size_t len;
    char *b = tu_slurp(race_path, &len);
    ck_assert_msg(b && strstr(b, "newer"), "the newer report was replaced: %.80s", b ? b : "(none)");
    free(b);
    ck_assert_int_eq(rc, MF_ECANCELED);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -c malfam- || true", dir);
    FILE *ls = popen(cmd, "r");
    char line[16] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, ls));
    pclose(ls);
    ck_assert_str_eq(line, "0\n");
}
END_TEST

/* A temp left by an earlier daemon that had this very PID (PID 1 in a container) is stale;
 * one of this daemon's own instance is not (item 19). */
START_TEST(test_writeback_stale_same_pid)
{
    char dir[128], p[256], err[512], boot[13], mine[128], reused[128], otherboot[128];
    unsigned long long start;
    mfd_wb_instance(boot, &start);
    ck_assert_uint_gt(start, 0);
    snprintf(dir, sizeof dir, "%s/sub", root);
    long me = (long)getpid();
    snprintf(mine, sizeof mine, ".report.json.malfam-%ld.%s.%llu-1.tmp", me, boot, start);
    snprintf(reused, sizeof reused, ".report.json.malfam-%ld.%s.%llu-1.tmp", me, boot,
             start - 1);
    snprintf(otherboot, sizeof otherboot, ".report.json.malfam-%ld.%s.%llu-2.tmp", me,
             strcmp(boot, "000000000001") ? "000000000001" : "000000000002", start);
    mk(dir, mine, "x");
    mk(dir, reused, "{\"half\":");
    mk(dir, otherboot, "{\"half\":");
    snprintf(p, sizeof p, "%s/report.json", dir);
    mfd_file_t f;
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_wb_clean_stale(&f), 2);
    mfd_file_close(&f);
    ck_assert(exists_in(dir, mine));
    ck_assert(!exists_in(dir, reused));
    ck_assert(!exists_in(dir, otherboot));
    /* a write-back names its temp with this instance: checked by making one fail midway */
    ck_assert_int_eq(mfd_file_open(&f, roots, 1, p, err, sizeof err), MF_OK);
    mfd_wb_scan_t s;
    scan_all(&s, "{\"a\":1}\n", 8, 8);
    mk(dir, "report.json", "{\"a\":12}\n"); /* changed after the scan: refused at the end */
    ck_assert_int_ne(mfd_wb_commit(&f, &s, "1", 1, err, sizeof err), MF_OK);
    mfd_file_close(&f);
}
END_TEST

/* ---- classification against the offline path --------------------------------------------- */

static char model_path[64];

/* A references-only model from the Mal-API train split (what `malfam eval` builds). */
static void model_setup(void)
{
    char err[512];
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->prep.max_len = 500;
    mf_dataset_t ds;
    tu_load_malapi(&m->vocab, &ds, MF_SPLIT_TRAIN, &m->prep);
    ck_assert_int_eq(mf_eval_model_from_dataset(m, &ds, MF_SPLIT_TRAIN), MF_OK);
    strcpy(model_path, "/tmp/check_daemon_model_XXXXXX");
    int fd = mkstemp(model_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(mf_model_save(m, model_path, err, sizeof err), MF_OK);
    mf_dataset_destroy(&ds);
    mf_model_free(m);
}

static void model_teardown(void)
{
    unlink(model_path);
}

/* No configured mode: the model's default (linear for this references-only model), used by
 * classification. A configured mode the model cannot serve is refused at load, by name. */
START_TEST(test_model_default_mode)
{
    char err[512];
    mfd_model_t *md;
    ck_assert_int_eq(mfd_model_load(&md, model_path, -1, err, sizeof err), MF_OK);
    ck_assert_int_eq(md->mode, mf_score_pick_default(md->m));
    ck_assert_int_eq(md->mode, MF_MODE_LINEAR);
    mfd_config_t cfg;
    mfd_config_default(&cfg);
    mfd_scoring_t sc;
    ck_assert_int_eq(mfd_scoring_init(&sc, &cfg, err, sizeof err), MF_OK);
    ck_assert_int_eq(sc.mode, -1);
    mfd_classify_t c;
    ck_assert_int_eq(mfd_classify_init(&c, md, &sc, NULL, 3, 1 << 20, 0), MF_OK);
    ck_assert_int_eq(c.opts.mode, MF_MODE_LINEAR);
    mfd_classify_destroy(&c);
    mfd_model_unref(md);
    ck_assert_int_eq(mfd_model_load(&md, model_path, MF_MODE_KNN, err, sizeof err), MF_OK);
    ck_assert_int_eq(md->mode, MF_MODE_KNN);
    mfd_model_unref(md);
    ck_assert_int_eq(mfd_model_load(&md, model_path, MF_MODE_FUSION, err, sizeof err),
                     MF_EINVAL);
    ck_assert_ptr_null(md);
    ck_assert_msg(strstr(err, "fusion") && strstr(err, "LSTM"), "%s", err);
}
END_TEST

START_TEST(test_classify_matches_offline)
{
    const char *name = reports[_i];
    char err[512];
    mfd_model_t *md;
    int knn = mf_score_mode_parse("knn");
    ck_assert_int_eq(mfd_model_load(&md, model_path, knn, err, sizeof err), MF_OK);
    mfd_config_t cfg;
    mfd_config_default(&cfg);
    char data[4096];
    ck_assert_ptr_nonnull(realpath(tu_data(), data));
    ck_assert_int_eq(mfd_config_set(&cfg, "allowed_roots", data, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_set(&cfg, "mode", "knn", err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_check(&cfg, err, sizeof err), MF_OK);
    mfd_scoring_t sc;
    ck_assert_int_eq(mfd_scoring_init(&sc, &cfg, err, sizeof err), MF_OK);
    mfp_req_t req;
    mfp_req_init(&req);
    req.op = MFP_OP_CLASSIFY;
    ck_assert_ptr_nonnull(realpath(tu_path(name), req.path));
    mfd_classify_t c;
    ck_assert_msg(mfd_classify_path(&c, &cfg, md, &sc, &req, &root_peer) == MF_OK, "%s: %s", name, c.err);

    /* offline, as malfam score does it: mf_extract_file with the model's prep, mfp_classify */
    mf_trace_t t;
    mf_trace_init(&t);
    mf_extract_stats_t st;
    ck_assert_int_eq(mf_extract_file(tu_path(name), NULL, &md->m->prep, md->m->vocab, &t, &st, NULL,
                                     err, sizeof err), MF_OK);
    ck_assert_uint_eq(c.calls, t.n);
    mfp_classify_opts_t co = {knn, sc.top, NAN};
    mfp_buf_t js = {0};
    ck_assert_int_eq(mfp_classify(md->s, md->m, &co, &t, &st, &js, NULL), MF_OK);
    ck_assert_str_eq(c.value.p, js.p);
    if (t.n == 0)
        ck_assert_msg(strstr(c.value.p, "\"note\":\"no trace\""), "%s", c.value.p);
    mfp_buf_free(&js);
    mf_trace_destroy(&t);
    mfd_classify_destroy(&c);
    mfd_model_unref(md);
}
END_TEST

START_TEST(test_classify_stream_chunks)
{
    /* the stream path fed in odd chunk sizes gives the file path's answer */
    char err[512];
    mfd_model_t *md;
    ck_assert_int_eq(mfd_model_load(&md, model_path, -1, err, sizeof err), MF_OK);
    mfd_config_t cfg;
    mfd_config_default(&cfg);
    ck_assert_int_eq(mfd_config_set(&cfg, "mode", "knn", err, sizeof err), MF_OK);
    mfd_scoring_t sc;
    ck_assert_int_eq(mfd_scoring_init(&sc, &cfg, err, sizeof err), MF_OK);
    size_t len = 0;
    char *buf = tu_slurp(tu_path("reports/cape22_55dcd387.json"), &len);
    ck_assert_ptr_nonnull(buf);
    char *first = NULL;
    size_t chunks[] = {1, 7, 31, 4096, 65536, len};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        mfd_classify_t c;
        ck_assert_int_eq(mfd_classify_init(&c, md, &sc, "", 0, 0, 0), MF_OK);
        for (size_t o = 0; o < len; o += chunks[k])
            mfd_classify_feed(&c, buf + o, len - o < chunks[k] ? len - o : chunks[k]);
        ck_assert_msg(mfd_classify_finish(&c) == MF_OK, "%s", c.err);
        if (!first)
            first = strdup(c.value.p);
        else
            ck_assert_str_eq(c.value.p, first);
        mfd_classify_destroy(&c);
    }
    /* a limit and bad JSON give errors, not crashes */
    mfd_classify_t c;
    ck_assert_int_eq(mfd_classify_init(&c, md, &sc, "", 0, 1024, 0), MF_OK);
    ck_assert_int_eq(mfd_classify_feed(&c, buf, len), MF_ELIMIT);
    mfd_classify_destroy(&c);
    ck_assert_int_eq(mfd_classify_init(&c, md, &sc, "", 0, 0, 0), MF_OK);
    mfd_classify_feed(&c, "{\"behavior\":{\"processes\":[{\"calls\":[{\"api\":", 40);
    ck_assert_int_ne(mfd_classify_finish(&c), MF_OK);
    mfd_classify_destroy(&c);
    ck_assert_int_eq(mfd_classify_init(&c, md, &sc, "nosuchmode", 0, 0, 0), MF_EINVAL);
    mfd_classify_destroy(&c);
    free(first);
    free(buf);
    mfd_model_unref(md);
}
END_TEST

/* A model carrying its SVM (LINR) loads without fitting one, builds the served mode alone,
 * and builds another mode once on first use, from any number of threads at a time, with the
 * answers of a scorer built for every mode. */
typedef struct {
    mfd_model_t *md;
    int mode;
    const mf_scorer_t *got;
} lazy_arg_t;

static void *lazy_thread(void *p)
{
    lazy_arg_t *a = p;
    char err[512];
    if (mfd_model_scorer(a->md, a->mode, &a->got, err, sizeof err) != MF_OK)
        a->got = NULL;
    return NULL;
}

static void same_result(const mf_scorer_t *x, const mf_scorer_t *y, int mode,
                        const mf_trace_t *t)
{
    mf_result_t a, b;
    ck_assert_int_eq(mf_score_trace(x, mode, t, 3, &a), MF_OK);
    ck_assert_int_eq(mf_score_trace(y, mode, t, 3, &b), MF_OK);
    ck_assert_int_eq(a.ntop, b.ntop);
    for (int i = 0; i < a.ntop; i++) {
        ck_assert_int_eq(a.top[i].family, b.top[i].family);
        ck_assert(a.top[i].score == b.top[i].score);
    }
    ck_assert(a.novelty == b.novelty || (isnan(a.novelty) && isnan(b.novelty)));
    ck_assert_int_eq(a.unknown, b.unknown);
    ck_assert_str_eq(a.explain, b.explain);
}

START_TEST(test_model_load_lazy_modes)
{
    char err[512], path[64];
    /* the fixture's model has no stored SVM: loading it fits one (the counter sees fits) */
    mfd_model_t *md;
    ck_assert_int_eq(mfd_model_load(&md, model_path, -1, err, sizeof err), MF_OK);
    ck_assert_uint_gt(md->fits, 0);
    mfd_model_unref(md);
    /* the same model with its SVM stored, as malfam train writes it */
    mf_model_t *m;
    ck_assert_int_eq(mf_model_load(&m, model_path, err, sizeof err), MF_OK);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    mf_linear_opts_t lo = {.hi = o.lin_hi, .c = o.lin_c / 100.0, .min_df = o.lin_df,
                           .balanced = o.lin_bal, .proto = o.lin_proto / 100.0,
                           .tf = o.lin_tf};
    ck_assert_int_eq(mf_linear_train(&m->lin, m->refs, m->ref_label, NULL, m->nrefs, m->nfam,
                                     &lo), MF_OK);
    strcpy(path, "/tmp/check_daemon_linr_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);

    unsigned long fits = mf_linear_fit_count();
    ck_assert_int_eq(mfd_model_load(&md, path, -1, err, sizeof err), MF_OK);
    ck_assert_int_eq(md->mode, MF_MODE_LINEAR);
    ck_assert_uint_eq(md->fits, 0);
    /* the file's owner holds a read lease on it, and the weights stay mapped under it */
    ck_assert_int_eq(md->leased, 1);
    ck_assert_int_eq(fcntl(md->fd, F_GETLEASE), F_RDLCK);
    ck_assert(mf_linear_mapped(md->m->lin));
    ck_assert_uint_eq(mf_linear_fit_count(), fits);
    for (int i = 0; i < MF_NMODES; i++) /* the served mode alone */
        ck_assert(i == MF_MODE_LINEAR ? md->ms[i] == md->s : md->ms[i] == NULL);

    /* knn and combo asked for by 4 threads each at once: one scorer per mode */
    lazy_arg_t a[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (lazy_arg_t){md, i % 2 ? MF_MODE_KNN : MF_MODE_COMBO, NULL};
        ck_assert_int_eq(pthread_create(&th[i], NULL, lazy_thread, &a[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        ck_assert_ptr_nonnull(a[i].got);
        ck_assert_ptr_eq(a[i].got, md->ms[a[i].mode]);
    }
    const mf_scorer_t *got;
    ck_assert_int_eq(mfd_model_scorer(md, MF_MODE_KNN, &got, err, sizeof err), MF_OK);
    ck_assert_ptr_eq(got, md->ms[MF_MODE_KNN]);
    ck_assert_ptr_null(md->ms[MF_MODE_NN]);
    ck_assert_int_eq(mfd_model_scorer(md, MF_NMODES, &got, err, sizeof err), MF_EINVAL);
    ck_assert_ptr_null(got);
    ck_assert_uint_eq(mf_linear_fit_count(), fits);

    /* every mode's answers as the scorer of every mode gives them */
    mf_scorer_t *full = mf_scorer_new(md->m);
    ck_assert_ptr_nonnull(full);
    const int modes[] = {MF_MODE_LINEAR, MF_MODE_KNN, MF_MODE_COMBO, MF_MODE_NN};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        const mf_scorer_t *s;
        ck_assert_int_eq(mfd_model_scorer(md, modes[k], &s, err, sizeof err), MF_OK);
        for (size_t r = 0; r < md->m->nrefs; r += 37)
            same_result(s, full, modes[k], &md->m->refs[r]);
    }
    mf_scorer_free(full);
    mfd_model_unref(md);
    mf_model_free(m);
    unlink(path);
}
END_TEST

/* Networks read on the first likelihood request, from the file loaded, even after a new model
 * was renamed over its path (a rollout renames, then reloads): the answers of a full load. */
START_TEST(test_model_nets_on_first_use)
{
    char err[512], path[64], other[64];
    mf_model_t *m;
    ck_assert_int_eq(mf_model_load(&m, model_path, err, sizeof err), MF_OK);
    uint64_t rng = 7;
    mf_lstm_dims_t d = {mf_vocab_size(m->vocab), 4, 6, 4};
    for (int f = 0; f < m->nfam; f++) {
        m->fam[f].lstm = mf_lstm_new(&d);
        ck_assert_ptr_nonnull(m->fam[f].lstm);
        mf_lstm_init(m->fam[f].lstm, &rng);
    }
    strcpy(path, "/tmp/check_daemon_nets_XXXXXX");
    strcpy(other, "/tmp/check_daemon_nets_XXXXXX");
    int fd = mkstemp(path), fd2 = mkstemp(other);
    ck_assert(fd >= 0 && fd2 >= 0);
    close(fd);
    close(fd2);
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);
    mfd_model_t *md;
    ck_assert_int_eq(mfd_model_load(&md, path, -1, err, sizeof err), MF_OK);
    ck_assert_int_eq(md->mode, MF_MODE_LINEAR);
    ck_assert_int_eq(mf_model_has_nets(md->m), 0); /* linear needs none */
    /* another model takes the path before any reload */
    mf_lstm_init(m->fam[0].lstm, &rng);
    ck_assert_int_eq(mf_model_save(m, other, err, sizeof err), MF_OK);
    ck_assert_int_eq(rename(other, path), 0);
    const mf_scorer_t *s;
    ck_assert_msg(mfd_model_scorer(md, MF_MODE_LIKELIHOOD, &s, err, sizeof err) == MF_OK, "%s",
                  err);
    ck_assert_int_eq(mf_model_has_nets(md->m), 1);
    /* the same answers as the first file loaded whole */
    mf_model_t *full;
    ck_assert_int_eq(mf_model_load(&full, model_path, err, sizeof err), MF_OK);
    rng = 7;
    for (int f = 0; f < full->nfam; f++) {
        full->fam[f].lstm = mf_lstm_new(&d);
        mf_lstm_init(full->fam[f].lstm, &rng);
    }
    mf_scorer_t *fs = mf_scorer_new_mode(full, NULL, MF_MODE_LIKELIHOOD);
    ck_assert_ptr_nonnull(fs);
    for (size_t r = 0; r < md->m->nrefs; r += 53)
        same_result(s, fs, MF_MODE_LIKELIHOOD, &md->m->refs[r]);
    mf_scorer_free(fs);
    mf_model_free(full);
    mfd_model_unref(md);
    mf_model_free(m);
    unlink(path);
}
END_TEST

/* The answer (JSON value) of md to report `buf` in `mode`, or NULL with the error in err. */
static char *answer_in(mfd_model_t *md, const char *mode, const char *buf, size_t len,
                       char *err, size_t errlen)
{
    mfd_config_t cfg;
    mfd_config_default(&cfg);
    mfd_scoring_t sc;
    ck_assert_int_eq(mfd_scoring_init(&sc, &cfg, err, errlen), MF_OK);
    mfd_classify_t c;
    ck_assert_int_eq(mfd_classify_init(&c, md, &sc, mode, 0, 0, 0), MF_OK);
    mfd_classify_feed(&c, buf, len);
    char *out = mfd_classify_finish(&c) == MF_OK ? strdup(c.value.p) : NULL;
    if (!out)
        snprintf(err, errlen, "%s", c.err);
    mfd_classify_destroy(&c);
    return out;
}

/* Overwrite path in place with the bytes of file `from` (a daemon reads skipped parts
 * through its open descriptor: a rename would not reach it). */
static void rewrite_in_place(const char *path, const char *from)
{
    size_t n = 0;
    char *b = tu_slurp(from, &n);
    ck_assert_ptr_nonnull(b);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(ftruncate(fileno(f), (off_t)n), 0);
    ck_assert_int_eq(fclose(f), 0);
    free(b);
}

/* A linear daemon on a model with the novelty key index (NOVK) loads no reference traces and
 * answers as a daemon that loaded everything; a knn request reads them (from the file loaded,
 * even after a rollout renamed another model over its path) and answers as the eager daemon;
 * a file rewritten in place before that read is refused with a clear error and linear goes
 * on answering. */
START_TEST(test_model_refs_on_first_use)
{
    char err[512], path[64], other[64];
    mf_model_t *m;
    ck_assert_int_eq(mf_model_load(&m, model_path, err, sizeof err), MF_OK);
    mf_score_opts_t o;
    mf_score_opts_from_model(&o, m);
    o.nov_protos = 4; /* prototypes (auto only past 2,000 references): the index is written */
    o.lin_nov = 3;
    ck_assert_int_eq(mf_score_opts_save(&o, m), MF_OK);
    mf_linear_opts_t lo = {.hi = o.lin_hi, .c = o.lin_c / 100.0, .min_df = o.lin_df,
                           .balanced = o.lin_bal, .proto = o.lin_proto / 100.0, .tf = o.lin_tf};
    ck_assert_int_eq(mf_linear_train(&m->lin, m->refs, m->ref_label, NULL, m->nrefs, m->nfam,
                                     &lo), MF_OK);
    strcpy(path, "/tmp/check_daemon_refs_XXXXXX");
    strcpy(other, "/tmp/check_daemon_refs_XXXXXX");
    int fd = mkstemp(path), fd2 = mkstemp(other);
    ck_assert(fd >= 0 && fd2 >= 0);
    close(fd);
    close(fd2);
    ck_assert_int_eq(mf_model_save(m, path, err, sizeof err), MF_OK);

    /* weights copied, no lease (map 0): the file is rewritten in place below, which a lease
     * holder would answer by copying (daemon_faults.sh); here the lazy reads must notice */
    mfd_model_t *lazy, *eager, *lazy2;
    ck_assert_int_eq(mfd_model_load_ex(&lazy, path, -1, 0, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_model_load_ex(&lazy2, path, MF_MODE_LINEAR, 0, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_model_load_ex(&eager, path, MF_MODE_KNN, 0, err, sizeof err), MF_OK);
    ck_assert(!lazy->leased && !mf_linear_mapped(lazy->m->lin));
    ck_assert_int_eq(lazy->mode, MF_MODE_LINEAR);
    ck_assert_int_eq(mf_model_has_refs(lazy->m), 0); /* linear needs none */
    ck_assert_int_eq(mf_model_has_refs(lazy2->m), 0);
    ck_assert_int_eq(mf_model_has_refs(eager->m), 1);

    const char *names[] = {"reports/cape22_55dcd387.json", "reports/cuckoo207_benign_cmdkey.json"};
    char *body[2];
    size_t blen[2];
    for (int i = 0; i < 2; i++) {
        body[i] = tu_slurp(tu_path(names[i]), &blen[i]);
        ck_assert_ptr_nonnull(body[i]);
        char *a = answer_in(lazy, "linear", body[i], blen[i], err, sizeof err);
        char *b = answer_in(eager, "linear", body[i], blen[i], err, sizeof err);
        ck_assert_msg(a && b, "%s", err);
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
    }

    /* a rollout renames another model over the path: the traces still come from the file
     * loaded, and knn answers as the eager daemon does */
    ck_assert_int_eq(mf_model_set_param(m, "score.knn_k", o.knn_k + 1), MF_OK);
    ck_assert_int_eq(mf_model_save(m, other, err, sizeof err), MF_OK);
    char changed[64];
    snprintf(changed, sizeof changed, "%s", other); /* kept for the in-place rewrite */
    strcat(changed, ".keep");
    ck_assert_int_eq(link(other, changed), 0);
    ck_assert_int_eq(rename(other, path), 0);
    for (int i = 0; i < 2; i++) {
        char *a = answer_in(lazy, "knn", body[i], blen[i], err, sizeof err);
        ck_assert_msg(a, "%s", err);
        char *b = answer_in(eager, "knn", body[i], blen[i], err, sizeof err);
        ck_assert_msg(b, "%s", err);
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
    }
    ck_assert_int_eq(mf_model_has_refs(lazy->m), 1);

    /* lazy2's file rewritten in place (the path is now the other model: its open descriptor
     * is the renamed-over file, so rewrite that one through /proc) */
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", lazy2->fd);
    rewrite_in_place(fdpath, changed);
    char *a = answer_in(lazy2, "knn", body[0], blen[0], err, sizeof err);
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(err, "reference traces") && strstr(err, "reload it"), "%s", err);
    ck_assert_int_eq(mf_model_has_refs(lazy2->m), 0);
    for (int i = 0; i < 2; i++) { /* linear as before */
        a = answer_in(lazy2, "linear", body[i], blen[i], err, sizeof err);
        char *b = answer_in(eager, "linear", body[i], blen[i], err, sizeof err);
        ck_assert_msg(a && b, "%s", err);
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
    }
    for (int i = 0; i < 2; i++)
        free(body[i]);
    mfd_model_unref(lazy);
    mfd_model_unref(lazy2);
    mfd_model_unref(eager);
    mf_model_free(m);
    unlink(changed);
    unlink(path);
}
END_TEST

START_TEST(test_classify_stream_write_back)
{
    /* CAPE with json.calls=0: classify + write_back stored "no trace" in report.json; then
     * classify_stream of the calls held in memory, with write_back, replaces it with the
     * streamed answer. A stale temp of a killed earlier write-back is cleared on the way. */
    char err[512], dir[64], path[256], p[512];
    mfd_model_t *md;
    ck_assert_int_eq(mfd_model_load(&md, model_path, -1, err, sizeof err), MF_OK);
    strcpy(dir, "/tmp/mfd_sw_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    mfd_config_t cfg;
    mfd_config_default(&cfg);
    ck_assert_int_eq(mfd_config_set(&cfg, "allowed_roots", dir, err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_set(&cfg, "mode", "knn", err, sizeof err), MF_OK);
    ck_assert_int_eq(mfd_config_check(&cfg, err, sizeof err), MF_OK);
    mfd_scoring_t sc;
    ck_assert_int_eq(mfd_scoring_init(&sc, &cfg, err, sizeof err), MF_OK);
    size_t olen = 0, blen = 0;
    char *orig = tu_slurp(tu_path("reports/cuckoo207_sodinokibi_nocalls.json"), &olen);
    char *body = tu_slurp(tu_path("reports/cape22_55dcd387.json"), &blen);
    ck_assert_ptr_nonnull(orig);
    ck_assert_ptr_nonnull(body);
    snprintf(path, sizeof path, "%s/report.json", dir);
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(orig, 1, olen, fp), olen);
    fclose(fp);

    /* 1. the file's own answer: no trace */
    mfp_req_t req;
    mfp_req_init(&req);
    req.op = MFP_OP_CLASSIFY;
    req.write_back = 1;
    snprintf(req.path, sizeof req.path, "%s", path);
    mfd_classify_t c;
    ck_assert_msg(mfd_classify_path(&c, &cfg, md, &sc, &req, &root_peer) == MF_OK, "%s", c.err);
    ck_assert_uint_eq(c.calls, 0);
    mfd_classify_destroy(&c);

    /* 2. a killed write-back left a temp: dead PID */
    char stale[128];
    snprintf(stale, sizeof stale, ".report.json.malfam-%ld-1.tmp", (long)dead_pid());
    mk(dir, stale, "{\"partial");

    /* 3. the streamed calls, written back */
    ck_assert_int_eq(mfd_classify_init(&c, md, &sc, "", 0, 0, 0), MF_OK);
    for (size_t o = 0; o < blen; o += 4096)
        mfd_classify_feed(&c, body + o, blen - o < 4096 ? blen - o : 4096);
    ck_assert_msg(mfd_classify_finish(&c) == MF_OK, "%s", c.err);
    ck_assert_uint_gt(c.calls, 0);
    ck_assert_msg(mfd_classify_write_back(&c, &cfg, path, &root_peer) == MF_OK, "%s", c.err);
    ck_assert_int_eq(c.stale_removed, 1);
    ck_assert(!exists_in(dir, stale));

    /* the file = original + the streamed answer under one "malfam" key, nothing else */
    size_t len;
    char *now = tu_slurp(path, &len);
    mfd_wb_scan_t s;
    scan_all(&s, orig, olen, olen);
    mfp_buf_t want = {0};
    ck_assert_int_eq(mfd_wb_apply_mem(&s, orig, olen, c.value.p, c.value.n, &want), MF_OK);
    ck_assert_uint_eq(len, want.n);
    ck_assert_msg(memcmp(now, want.p, len) == 0, "report.json does not hold the streamed answer");
    ck_assert_ptr_null(strstr(now, "no trace"));
    mfp_buf_free(&want);
    free(now);
    mfd_classify_destroy(&c);

    /* errors: outside the roots, missing, a gzip file; the report is left as it is */
    static const struct {
        const char *path; /* under dir unless absolute; "!" + name: as given (relative) */
        int rc;
    } bad[] = {{"/etc/passwd", MF_EPERM}, {"missing.json", MF_ENOENT}, {"r.json.gz", MF_EINVAL},
               {"!relative.json", MF_EINVAL}};
    snprintf(p, sizeof p, "%s/r.json.gz", dir);
    gzFile g = gzopen(p, "wb");
    ck_assert_ptr_nonnull(g);
    gzputs(g, "{\"a\":1}");
    gzclose(g);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *b = bad[i].path;
        if (b[0] == '/' || b[0] == '!')
            snprintf(p, sizeof p, "%s", b[0] == '!' ? b + 1 : b);
        else
            snprintf(p, sizeof p, "%s/%s", dir, b);
        ck_assert_int_eq(mfd_classify_init(&c, md, &sc, "", 0, 0, 0), MF_OK);
        mfd_classify_feed(&c, body, blen);
        ck_assert_int_eq(mfd_classify_finish(&c), MF_OK);
        ck_assert_msg(mfd_classify_write_back(&c, &cfg, p, &root_peer) == bad[i].rc, "%s: %s", p, c.err);
        mfd_classify_destroy(&c);
    }
    now = tu_slurp(path, &len);
    ck_assert_ptr_nonnull(now);
    ck_assert_ptr_nonnull(strstr(now, "\"malfam\""));
    ck_assert_ptr_null(strstr(now, "no trace"));
    free(now);
    snprintf(p, sizeof p, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(p), 0);
    free(orig);
    free(body);
    mfd_model_unref(md);
}
END_TEST

/* ---- limits against hostile clients ------------------------------------------------------ */

START_TEST(test_config_limits)
{
    mfd_config_t c;
    char err[MFD_ERR_LEN];
    mfd_config_default(&c);
    ck_assert_uint_eq(c.memory_budget, 512ull << 20);
    ck_assert_uint_eq(c.request_timeout_ms, 30000);
    ck_assert_int_eq(c.max_peer_requests, 0);
    char *p = write_temp("memory_budget = 1G\nrequest_timeout = 5\nmax_peer_requests = 7\n");
    ck_assert_int_eq(mfd_config_load(&c, p, err, sizeof err), MF_OK);
    unlink(p);
    ck_assert_uint_eq(c.memory_budget, 1ull << 30);
    ck_assert_uint_eq(c.request_timeout_ms, 5000);
    ck_assert_int_eq(c.max_peer_requests, 7);
    static const char *const bad[][2] = {
        {"memory_budget", "63M"}, {"memory_budget", "lots"}, {"request_timeout", "0"},
        {"request_timeout", "86401"}, {"max_peer_requests", "-1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(mfd_config_set(&c, bad[i][0], bad[i][1], err, sizeof err) == MF_EINVAL,
                      "%s = %s accepted", bad[i][0], bad[i][1]);
}
END_TEST

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The latency window's percentiles come from a histogram kept as latencies arrive (stats
 * must not sort 8192 values on the loop): each is within a bucket (4.5 %) of the exact
 * quantile of the last MFD_LAT_RING values, the max is exact, and old values leave. */
START_TEST(test_latency_window)
{
    mfd_lat_t *l = calloc(1, sizeof *l);
    double *v = malloc(MFD_LAT_RING * sizeof *v);
    ck_assert_ptr_nonnull(l);
    ck_assert_double_eq(mfd__lat_quantile(l, 0.5), 0);
    ck_assert_uint_eq(mfd__lat_n(l), 0);
    unsigned seed = 7;
    /* a first regime of slow requests, then 1.5 windows of a log-uniform spread 0.01..5000 ms:
     * the slow ones must all have left the window */
    for (int i = 0; i < 1000; i++)
        mfd__lat_add(l, 90000.0);
    size_t total = MFD_LAT_RING + MFD_LAT_RING / 2;
    for (size_t i = 0; i < total; i++) {
        seed = seed * 1103515245u + 12345u;
        double u = (double)((seed >> 8) & 0xffff) / 65536.0;
        double ms = 0.01 * pow(5e5, u);
        mfd__lat_add(l, ms);
        if (i >= total - MFD_LAT_RING)
            v[i - (total - MFD_LAT_RING)] = ms;
    }
    ck_assert_uint_eq(mfd__lat_n(l), MFD_LAT_RING);
    qsort(v, MFD_LAT_RING, sizeof *v, cmp_double);
    static const double qs[] = {0.0, 0.1, 0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double exact = v[(size_t)(qs[i] * MFD_LAT_RING)];
        double got = mfd__lat_quantile(l, qs[i]);
        ck_assert_msg(fabs(got - exact) <= 0.045 * exact, "q%.3f: %.4f, exact %.4f", qs[i], got,
                      exact);
    }
    ck_assert_double_eq(mfd__lat_max(l), v[MFD_LAT_RING - 1]);
    /* a constant window: every percentile is that value (never above the max) */
    for (int i = 0; i < MFD_LAT_RING; i++)
        mfd__lat_add(l, 3.25);
    ck_assert_double_eq(mfd__lat_max(l), 3.25);
    ck_assert_double_le(mfd__lat_quantile(l, 0.99), 3.25);
    ck_assert_double_ge(mfd__lat_quantile(l, 0.5), 3.25 * 0.955);
    free(v);
    free(l);
}
END_TEST

Suite *suite_daemon(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("request");
    tcase_add_test(tc, test_req_valid);
    tcase_add_test(tc, test_req_hostile);
    tcase_add_test(tc, test_req_limits);
    tcase_add_test(tc, test_answer_error_escapes);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_config_checks_what_start_needs);
    suite_add_tcase(s, tc);

    tc = tcase_create("paths");
    tcase_set_timeout(tc, 60); /* the root swap race, under ASan on a loaded machine */
    tcase_add_checked_fixture(tc, paths_setup, paths_teardown);
    tcase_add_test(tc, test_paths);
    tcase_add_test(tc, test_writeback_commit);
    tcase_add_test(tc, test_writeback_clean_stale);
    tcase_add_test(tc, test_outside_says_nothing);
    tcase_add_test(tc, test_root_swap);
    tcase_add_test(tc, test_writeback_who);
    tcase_add_test(tc, test_writeback_xattrs);
    tcase_add_test(tc, test_writeback_escaped_key);
    tcase_add_test(tc, test_writeback_stale_same_pid);
    tcase_add_test(tc, test_writeback_replaced_at_rename);
    suite_add_tcase(s, tc);

    tc = tcase_create("writeback");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_writeback_real_reports, 0, 8);
    tcase_add_test(tc, test_writeback_shapes);
    suite_add_tcase(s, tc);

    tc = tcase_create("classify");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, model_setup, model_teardown);
    tcase_add_test(tc, test_model_default_mode);
    tcase_add_loop_test(tc, test_classify_matches_offline, 0, 8);
    tcase_add_test(tc, test_classify_stream_chunks);
    tcase_add_test(tc, test_model_load_lazy_modes);
    tcase_add_test(tc, test_model_nets_on_first_use);
    tcase_add_test(tc, test_model_refs_on_first_use);
    tcase_add_test(tc, test_classify_stream_write_back);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_config_limits);
    tcase_add_test(tc, test_latency_window);
    suite_add_tcase(s, tc);
    return s;
}
