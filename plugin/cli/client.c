/* client.c - `malfam classify` and `malfam label`: clients of a running malfamd. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "answer.h"
#include "cli.h"
#include "mf.h"
#include "proto.h"

#define DEFAULT_SOCKET "/run/malfam/malfamd.sock"
#define MAX_ANSWER (1 << 20)

typedef struct {
    const char *socket;
    int top;
    const char *mode;
    int timeout_ms;
    int quiet;
    const char *store; /* label --store DIR */
    const char *from;  /* label --from FILE: report paths, one a line ("-" = stdin) */
    int first_path; /* argv index of the first report */
} opts_t;

/* The daemon's socket unless --socket says otherwise: $MALFAM_SOCKET, else the default. */
static const char *default_socket(void)
{
    const char *env = getenv("MALFAM_SOCKET");
    return env && *env ? env : DEFAULT_SOCKET;
}

/* Flags shared by both commands. Returns 0, or 2 for a usage error. */
static int parse_opts(int argc, char **argv, opts_t *o, const char *usage)
{
    o->socket = default_socket();
    o->top = 0;
    o->mode = NULL;
    o->timeout_ms = 600000;
    o->quiet = 0;
    o->store = NULL;
    o->from = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if ((!strcmp(a, "--socket") || !strcmp(a, "-s")) && more) {
            o->socket = argv[++i];
        } else if (!strcmp(a, "--top") && more) {
            o->top = atoi(argv[++i]);
            if (o->top < 1 || o->top > MF_MAX_TOP) {
                fprintf(stderr, "malfam %s: --top must be 1..%d\n", argv[0], MF_MAX_TOP);
                return 2;
            }
        } else if (!strcmp(a, "--mode") && more) {
            o->mode = argv[++i];
        } else if (!strcmp(a, "--timeout") && more) {
            o->timeout_ms = atoi(argv[++i]) * 1000;
        } else if (!strcmp(a, "--store") && more && !strcmp(argv[0], "label")) {
            o->store = argv[++i];
        } else if (!strcmp(a, "--from") && more && !strcmp(argv[0], "label")) {
            o->from = argv[++i];
        } else if ((!strcmp(a, "--quiet") || !strcmp(a, "-q")) && !strcmp(argv[0], "label")) {
            o->quiet = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("%s", usage);
            return 1; /* caller turns this into exit 0 */
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else {
            fprintf(stderr, "malfam %s: unknown option '%s'\n%s", argv[0], a, usage);
            return 2;
        }
    }
    o->first_path = i;
    if (i >= argc && !o->store && !o->from) {
        fprintf(stderr, "malfam %s: no report given\n%s", argv[0], usage);
        return 2;
    }
    return 0;
}

/* The request's optional keys (top, mode) and its end: MF_OK, or MF_ENOMEM. */
static int end_request(mfp_buf_t *b, const opts_t *o)
{
    if (o->top)
        mfp_buf_printf(b, ",\"top\":%d", o->top);
    if (o->mode) {
        mfp_buf_adds(b, ",\"mode\":");
        mfp_buf_json_str(b, o->mode, strlen(o->mode));
    }
    mfp_buf_adds(b, "}\n");
    return b->oom ? MF_ENOMEM : MF_OK;
}

/* The request line for one report. */
static int build_request(mfp_buf_t *b, const opts_t *o, const char *path, int write_back,
                         unsigned id)
{
    char abs[PATH_MAX];
    if (path[0] == '/') {
        snprintf(abs, sizeof abs, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return MF_EIO;
        if ((size_t)snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= sizeof abs)
            return MF_ELIMIT;
    }
    mfp_buf_reset(b);
    mfp_buf_printf(b, "{\"op\":\"classify\",\"id\":%u,\"write_back\":%s,\"path\":", id,
                   write_back ? "true" : "false");
    mfp_buf_json_str(b, abs, strlen(abs));
    return end_request(b, o);
}

/* The request line for a report streamed from stdin (classify_stream, never written back);
 * the body is sent after it. */
static int build_stream_request(mfp_buf_t *b, const opts_t *o, size_t bytes, unsigned id)
{
    mfp_buf_reset(b);
    mfp_buf_printf(b, "{\"op\":\"classify_stream\",\"id\":%u,\"bytes\":%zu", id, bytes);
    return end_request(b, o);
}

/* All of stdin into body (a report given as "-"). MF_OK, MF_EIO, MF_ENOMEM. */
static int read_stdin(mfp_buf_t *body)
{
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        mfp_buf_add(body, chunk, k);
    if (ferror(stdin))
        return MF_EIO;
    return body->oom ? MF_ENOMEM : MF_OK;
}

/* The reports a command works on, in order. */
typedef struct {
    char **p;
    size_t n, cap;
} list_t;

static int list_add(list_t *l, const char *path)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **p = realloc(l->p, cap * sizeof *p);
        if (!p)
            return MF_ENOMEM;
        l->p = p;
        l->cap = cap;
    }
    if (!(l->p[l->n] = strdup(path)))
        return MF_ENOMEM;
    l->n++;
    return MF_OK;
}

static void list_free(list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->p[i]);
    free(l->p);
    memset(l, 0, sizeof *l);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return strcmp(path, "-") && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Add one path: a directory is a Cuckoo/CAPE store (or its storage or analyses folder),
 * walked by store.c's walker; anything else is a report. Returns 0 or the exit status (the
 * error printed); *noreport counts numbered analyses without a report. */
static int add_path(list_t *l, const char *path, size_t *noreport)
{
    if (!is_dir(path)) {
        if (list_add(l, path) == MF_OK)
            return 0;
        cli_error(path, MF_ENOMEM, NULL);
        return 1;
    }
    cli_store_t st;
    char err[4400];
    int rc = cli_store_list(&st, path, err, sizeof err);
    if (rc == MF_OK && st.n == 0) {
        rc = MF_ENOENT;
        snprintf(err, sizeof err, "a directory without reports (looked for "
                 "%s/<task>/reports/report.json)", st.analyses);
    }
    for (size_t i = 0; rc == MF_OK && i < st.n; i++)
        rc = list_add(l, st.items[i].path);
    *noreport += st.noreport;
    cli_store_free(&st);
    if (rc != MF_OK)
        cli_error(path, rc, rc == MF_ENOMEM ? NULL : err);
    return rc == MF_OK ? 0 : rc == MF_ENOMEM ? 1 : 2;
}

/* The paths of a list file, one a line ("-" = stdin; blank lines skipped; directories walked
 * as add_path does). No argument-length limit: a whole store's paths fit. */
static int add_list_file(list_t *l, const char *file, size_t *noreport)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (!f) {
        cli_error(file, MF_EIO, strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int st = 0;
    while (!st && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0)
            st = add_path(l, line, noreport);
    }
    if (!st && ferror(f)) {
        cli_error(file, MF_EIO, strerror(errno));
        st = 1;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return st;
}

/* Gzip reports cannot be written back (malfamd stores its answer in plain JSON): label skips
 * them and counts them. By name, or by the magic bytes of a file that is readable. */
static int is_gzip(const char *path)
{
    size_t n = strlen(path);
    if (n > 3 && !strcmp(path + n - 3, ".gz"))
        return 1;
    FILE *f = fopen(path, "rb");
    unsigned char m[2] = {0, 0};
    int gz = f && fread(m, 1, 2, f) == 2 && m[0] == 0x1f && m[1] == 0x8b;
    if (f)
        fclose(f);
    return gz;
}

/* What an answer says, for the summary and error messages. */
typedef struct {
    int ok;
    int unknown;       /* the answer says "unknown": family is then only the closest */
    int traced;        /* the answer ranked families (not "no trace" / "no known calls") */
    char family[128];  /* best family, or "(note)" when nothing was ranked */
    char verdict[256]; /* the answer's verdict (answer.c), "" from a daemon without one */
    char model[64];    /* the model id the daemon names (ping, reload, answers) */
    char error[64];
    char message[512];
} answer_t;

static void read_answer(const char *line, answer_t *a)
{
    memset(a, 0, sizeof *a);
    char ebuf[128];
    yajl_val v = yajl_tree_parse(line, ebuf, sizeof ebuf);
    if (!v || !YAJL_IS_OBJECT(v)) {
        snprintf(a->error, sizeof a->error, "MF_EJSON");
        snprintf(a->message, sizeof a->message, "answer is not a JSON object");
        yajl_tree_free(v);
        return;
    }
    const char *p_ok[] = {"ok", NULL}, *p_fam[] = {"families", NULL};
    const char *p_err[] = {"error", NULL}, *p_msg[] = {"message", NULL};
    const char *p_note[] = {"note", NULL}, *p_name[] = {"family", NULL};
    const char *p_unk[] = {"unknown", NULL}, *p_verdict[] = {"verdict", NULL};
    const char *p_model[] = {"model", NULL};
    a->ok = YAJL_IS_TRUE(yajl_tree_get(v, p_ok, yajl_t_any));
    a->unknown = YAJL_IS_TRUE(yajl_tree_get(v, p_unk, yajl_t_any));
    yajl_val fams = yajl_tree_get(v, p_fam, yajl_t_array);
    a->traced = fams && YAJL_GET_ARRAY(fams)->len > 0;
    if (a->traced) {
        yajl_val f = yajl_tree_get(YAJL_GET_ARRAY(fams)->values[0], p_name, yajl_t_string);
        if (f)
            snprintf(a->family, sizeof a->family, "%s", YAJL_GET_STRING(f));
    } else {
        yajl_val n = yajl_tree_get(v, p_note, yajl_t_string);
        snprintf(a->family, sizeof a->family, "(%s)", n ? YAJL_GET_STRING(n) : "none");
    }
    yajl_val vd = yajl_tree_get(v, p_verdict, yajl_t_string);
    if (vd)
        snprintf(a->verdict, sizeof a->verdict, "%s", YAJL_GET_STRING(vd));
    yajl_val md = yajl_tree_get(v, p_model, yajl_t_string);
    if (md)
        snprintf(a->model, sizeof a->model, "%s", YAJL_GET_STRING(md));
    yajl_val e = yajl_tree_get(v, p_err, yajl_t_string);
    yajl_val m = yajl_tree_get(v, p_msg, yajl_t_string);
    if (e)
        snprintf(a->error, sizeof a->error, "%s", YAJL_GET_STRING(e));
    if (m)
        snprintf(a->message, sizeof a->message, "%s", YAJL_GET_STRING(m));
    yajl_tree_free(v);
}

/* Print an answer line as the daemon sent it; when it says no, also `malfam: WHAT: code:
 * message` on stderr. Returns whether the answer was ok; *a gets what it says. */
static int print_answer(const char *what, const char *line, answer_t *a)
{
    printf("%s\n", line);
    read_answer(line, a);
    if (!a->ok)
        fprintf(stderr, "malfam: %s: %s: %s\n", what, a->error, a->message);
    return a->ok;
}

/* The same for a report's answer, with {"path":PATH, first: a script needs no bookkeeping of
 * which answer was for which report. */
static int print_report_answer(const char *path, const char *line)
{
    mfp_buf_t b = {0};
    mfp_buf_adds(&b, "{\"path\":");
    mfp_buf_json_cstr(&b, path);
    if (line[0] == '{' && line[1] && line[1] != '}') {
        mfp_buf_adds(&b, ",");
        mfp_buf_adds(&b, line + 1);
    } else {
        mfp_buf_adds(&b, "}");
    }
    printf("%s\n", b.oom ? line : b.p);
    mfp_buf_free(&b);
    answer_t a;
    read_answer(line, &a);
    if (!a.ok)
        fprintf(stderr, "malfam: %s: %s: %s\n", path, a.error, a.message);
    return a.ok;
}

/* One exchange on an open connection; *line gets the answer (caller frees). */
static int exchange(mfp_client_t *c, const mfp_buf_t *req, char **line, int timeout_ms)
{
    int rc = mfp_client_send(c, req->p, req->n);
    if (rc == MF_OK)
        rc = mfp_client_recv(c, line, MAX_ANSWER, timeout_ms);
    return rc;
}

/* Ask malfamd about one report: a path (written back when asked), or "-": stdin streamed
 * with classify_stream, never written back. *line gets the answer (caller frees). */
static int ask(mfp_client_t *c, const opts_t *o, const char *path, int write_back,
               unsigned id, char **line)
{
    mfp_buf_t req = {0}, body = {0};
    int rc;
    if (strcmp(path, "-")) {
        rc = build_request(&req, o, path, write_back, id);
        if (rc == MF_OK)
            rc = exchange(c, &req, line, o->timeout_ms);
    } else {
        rc = read_stdin(&body);
        if (rc == MF_OK)
            rc = build_stream_request(&req, o, body.n, id);
        if (rc == MF_OK)
            rc = mfp_client_send(c, req.p, req.n);
        if (rc == MF_OK && body.n)
            rc = mfp_client_send(c, body.p, body.n);
        if (rc == MF_OK)
            rc = mfp_client_recv(c, line, MAX_ANSWER, o->timeout_ms);
    }
    mfp_buf_free(&req);
    mfp_buf_free(&body);
    return rc;
}

/* A directory where a report is expected: say that (malfamd would only answer that it is not
 * a file under allowed_roots). */
static void print_dir_error(const char *path)
{
    static const char msg[] = "is a directory, not a report file";
    mfp_buf_t b = {0};
    mfp_answer_error(&b, NULL, MF_EIO, msg);
    if (!b.oom && b.n) {
        b.p[--b.n] = '\0'; /* the line's newline */
        print_report_answer(path, b.p);
    } else {
        fprintf(stderr, "malfam: %s: %s\n", path, msg);
    }
    mfp_buf_free(&b);
}

int cli_classify(int argc, char **argv)
{
    static const char usage[] =
        "usage: malfam classify [--socket S] [--top N] [--mode M] [--timeout SECONDS] "
        "REPORT.json...\n"
        "Asks malfamd for the families of each report and prints its JSON answer, one object a\n"
        "line with the report's path first ({\"path\":...,\"ok\":...,\"verdict\":...}). The\n"
        "report is not changed; - streams one report from stdin.\n"
        "  --socket S, -s S  malfamd's socket (default $MALFAM_SOCKET, else " DEFAULT_SOCKET ")\n"
        "  --top N           families per answer, 1..16 (default: the daemon's)\n"
        "  --mode M          scoring mode (default: the daemon's): " CLI_MODE_NAMES "\n"
        "  --timeout SECONDS wait at most this long for each answer (default 600)\n"
        "Exit 0 when every report was answered, 1 otherwise, 2 on usage.\n";
    opts_t o;
    int u = parse_opts(argc, argv, &o, usage);
    if (u)
        return u == 1 ? 0 : 2;
    mfp_client_t c;
    char err[256];
    int rc = mfp_client_open(&c, o.socket, err, sizeof err);
    if (rc != MF_OK) {
        cli_error("malfamd", rc, err);
        return 1;
    }
    int status = 0;
    for (int i = o.first_path; i < argc; i++) {
        char *line = NULL;
        if (is_dir(argv[i])) {
            print_dir_error(argv[i]);
            status = 1;
            continue;
        }
        rc = ask(&c, &o, argv[i], 0, (unsigned)i, &line);
        if (rc != MF_OK) {
            cli_error(argv[i], rc, "no answer from malfamd");
            free(line);
            status = 1;
            break;
        }
        if (!print_report_answer(argv[i], line))
            status = 1;
        free(line);
    }
    mfp_client_close(&c);
    return status;
}

/* Reports per family, for label's summary: names in first-seen order, printed by count. */
typedef struct {
    struct tally_item {
        char name[128];
        int n;
    } *it;
    size_t n, cap;
    int oom; /* a family could not be added: the summary says so instead of lying */
} tally_t;

static void tally_add(tally_t *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->it[i].name, name)) {
            t->it[i].n++;
            return;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        struct tally_item *p = realloc(t->it, cap * sizeof *p);
        if (!p) {
            t->oom = 1;
            return;
        }
        t->it = p;
        t->cap = cap;
    }
    snprintf(t->it[t->n].name, sizeof t->it[t->n].name, "%s", name);
    t->it[t->n++].n = 1;
}

static int cmp_tally(const void *a, const void *b)
{
    const struct tally_item *x = a, *y = b;
    return x->n != y->n ? (x->n < y->n) - (x->n > y->n) : strcmp(x->name, y->name);
}

static void tally_print(tally_t *t, FILE *f)
{
    if (!t->n)
        return;
    qsort(t->it, t->n, sizeof *t->it, cmp_tally);
    fprintf(f, "families:");
    for (size_t i = 0; i < t->n; i++)
        fprintf(f, "%s %s %d", i ? "," : "", t->it[i].name, t->it[i].n);
    fprintf(f, "%s\n", t->oom ? " (incomplete: out of memory)" : "");
}

static void tally_free(tally_t *t)
{
    free(t->it);
    memset(t, 0, sizeof *t);
}

int cli_label(int argc, char **argv)
{
    static const char usage[] =
        "usage: malfam label [OPTIONS] REPORT.json|DIR|-...\n"
        "       malfam label [OPTIONS] --from FILE|-\n"
        "Asks malfamd to classify each report and store its answer under the top-level key\n"
        "\"malfam\" of that report (replacing an older one); prints REPORT<TAB>verdict. Reports\n"
        "must lie under the daemon's allowed_roots. A DIR is a Cuckoo/CAPE store, relabelled in\n"
        "task order: DIR/storage/analyses/<n>/reports/report.json (DIR may also be the storage\n"
        "or the analyses folder), walked as `malfam train --store` walks it. Gzip reports are\n"
        "skipped and counted (an answer is stored in plain JSON only). - classifies one report\n"
        "streamed from stdin (printed, not stored).\n"
        "  --from FILE       also the paths in FILE, one a line (- = stdin; DIRs walked too)\n"
        "  --store DIR       the same as giving DIR\n"
        "  --socket S, -s S  malfamd's socket (default $MALFAM_SOCKET, else " DEFAULT_SOCKET ")\n"
        "  --top N           families per answer, 1..16 (default: the daemon's)\n"
        "  --mode M          scoring mode (default: the daemon's): " CLI_MODE_NAMES "\n"
        "  --timeout SECONDS wait at most this long for each answer (default 600)\n"
        "  --quiet, -q       no per-report lines and no progress, only the summary\n"
        "Progress with an ETA goes to stderr (a bar on a terminal); a summary ends the run.\n"
        "Exit 0 when every report was labelled or skipped, 1 otherwise, 2 on usage.\n";
    opts_t o;
    int u = parse_opts(argc, argv, &o, usage);
    if (u)
        return u == 1 ? 0 : 2;
    list_t list = {0};
    size_t noreport = 0;
    int st = 0, stdin_used = o.from && !strcmp(o.from, "-");
    for (int i = o.first_path; !st && i < argc; i++) {
        if (!strcmp(argv[i], "-") && stdin_used++) {
            fprintf(stderr, "malfam label: stdin (-) given twice\n");
            st = 2;
        } else {
            st = add_path(&list, argv[i], &noreport);
        }
    }
    if (!st && o.store)
        st = add_path(&list, o.store, &noreport);
    if (!st && o.from)
        st = add_list_file(&list, o.from, &noreport);
    if (st) {
        list_free(&list);
        return st;
    }
    char err[256];
    mfp_client_t c;
    int rc = mfp_client_open(&c, o.socket, err, sizeof err);
    if (rc != MF_OK) {
        cli_error("malfamd", rc, err);
        list_free(&list);
        return 1;
    }
    size_t total = list.n, done = 0, failed = 0, noted = 0, unknown = 0, gz = 0;
    tally_t known = {0};
    cli_progress_t pr;
    cli_progress_start(&pr, "malfam label", total, o.quiet);
    double t0 = cli_now();
    for (size_t k = 0; k < total; k++) {
        const char *path = list.p[k];
        char *line = NULL;
        if (strcmp(path, "-") && is_gzip(path)) {
            gz++;
            done++;
            cli_progress_step(&pr, done, failed);
            continue;
        }
        rc = ask(&c, &o, path, 1, (unsigned)k + 1, &line);
        if (rc != MF_OK) {
            cli_progress_break(&pr);
            cli_error(path, rc, "no answer from malfamd; stopping");
            free(line);
            failed += total - done;
            done = total;
            break;
        }
        answer_t a;
        read_answer(line, &a);
        free(line);
        done++;
        if (!a.ok) {
            failed++;
            cli_progress_break(&pr);
            fprintf(stderr, "malfam: %s: %s: %s\n", path, a.error, a.message);
        } else {
            /* what the report now says: the answer's verdict (one confidence number, and
             * "unknown (closest: X, p N %)" for an unknown); older daemons send none */
            char shown[300];
            if (!a.traced)
                noted++;
            else if (a.unknown)
                unknown++;
            else
                tally_add(&known, a.family);
            if (a.verdict[0])
                snprintf(shown, sizeof shown, "%s", a.verdict);
            else if (a.traced && a.unknown)
                snprintf(shown, sizeof shown, "unknown (closest: %s)", a.family);
            else
                snprintf(shown, sizeof shown, "%s", a.family);
            if (!o.quiet && !(pr.tty && total > 1))
                printf("%s\t%s%s\n", path, shown, strcmp(path, "-") ? "" : " (stdin: not stored)");
        }
        cli_progress_step(&pr, done, failed);
    }
    double el = cli_now() - t0;
    fprintf(stderr, "malfam label: %zu reports, %zu labelled (%zu with a family, %zu unknown, %zu "
            "without a trace), %zu skipped (gzip), %zu failed, %.2f s\n", total,
            done - failed - gz, done - failed - gz - unknown - noted, unknown, noted, gz, failed,
            el);
    if (noreport)
        fprintf(stderr, "malfam label: %zu analyses without a report\n", noreport);
    tally_print(&known, stderr);
    tally_free(&known);
    list_free(&list);
    mfp_client_close(&c);
    return failed ? 1 : 0;
}

/* ---- operator commands: ping, stats, reload ------------------------------------------------ */

/* Send {"op":OP} and print the answer line as it is (JSON, for scripts and jq). Exit 0 when
 * the answer is ok, 1 when the daemon says no or cannot be reached, 2 on usage. With
 * `expect_ok` the command takes --expect MODEL: the answer must then name that file's model
 * (a reload that loaded another file, e.g. malfamd.conf naming another path, fails). */
static int op_command(int argc, char **argv, const char *op, const char *what, int timeout_ms,
                      int expect_ok)
{
    const char *sock = default_socket(), *expect = NULL;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--socket") || !strcmp(argv[i], "-s")) && i + 1 < argc) {
            sock = argv[++i];
        } else if (expect_ok && !strcmp(argv[i], "--expect") && i + 1 < argc) {
            expect = argv[++i];
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 86400) {
                fprintf(stderr, "malfam %s: --timeout: seconds, 1..86400\n", op);
                return 2;
            }
            timeout_ms = (int)t * 1000;
        } else {
            FILE *f = strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? stderr : stdout;
            fprintf(f, "usage: malfam %s [--socket S] [--timeout SECONDS]%s\n%s\n"
                       "Prints malfamd's JSON answer; exit 0 ok, 1 refused or unreachable.\n"
                       "Socket: --socket, $MALFAM_SOCKET or " DEFAULT_SOCKET ".\n",
                    op, expect_ok ? " [--expect MODEL]" : "", what);
            return f == stdout ? 0 : 2;
        }
    }
    mfp_client_t c;
    char err[512], want[64] = "";
    /* the expected id first: a file that cannot be read is an error before anything happens */
    int rc = expect ? mf_model_file_id(expect, want, sizeof want, err, sizeof err) : MF_OK;
    if (rc != MF_OK) {
        cli_error(expect, rc, err);
        return 1;
    }
    rc = mfp_client_open(&c, sock, err, sizeof err);
    if (rc != MF_OK) {
        cli_error("malfamd", rc, err);
        return 1;
    }
    mfp_buf_t req = {0};
    mfp_buf_printf(&req, "{\"op\":\"%s\",\"id\":1}\n", op);
    char *line = NULL;
    rc = req.oom ? MF_ENOMEM : exchange(&c, &req, &line, timeout_ms);
    mfp_buf_free(&req);
    mfp_client_close(&c);
    if (rc != MF_OK) {
        cli_error("malfamd", rc, "no answer");
        return 1;
    }
    answer_t a;
    int ok = print_answer(op, line, &a);
    if (ok && expect) {
        if (strcmp(a.model, want) != 0) {
            fprintf(stderr, "malfam %s: malfamd serves model %s, not %s's %s (does its config's "
                            "model name that file?)\n", op, a.model[0] ? a.model : "(none)",
                    expect, want);
            ok = 0;
        }
    }
    free(line);
    return ok ? 0 : 1;
}

int cli_ping(int argc, char **argv)
{
    return op_command(argc, argv, "ping", "Is malfamd up? Its answer names its version and model.",
                      10000, 0);
}

int cli_stats(int argc, char **argv)
{
    return op_command(argc, argv, "stats",
                      "malfamd's counters, latency percentiles, model and memory.", 10000, 0);
}

int cli_reload(int argc, char **argv)
{
    return op_command(argc, argv, "reload",
                      "Have malfamd load its model file again (as SIGHUP); answers when the new "
                      "model serves,\nor with the reason it was refused (the old one stays). "
                      "--expect MODEL: fail unless the model\nserved after the reload is that "
                      "file's (the same id).",
                      600000, 1); /* a reload loads a whole model */
}
