/* client.c - `malfam classify` and `malfam label`: clients of a running malfamd. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

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
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
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
    if ((i >= argc) == !o->store) { /* reports, or a store */
        fprintf(stderr, "%s", usage);
        return 2;
    }
    return 0;
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
    if (o->top)
        mfp_buf_printf(b, ",\"top\":%d", o->top);
    if (o->mode) {
        mfp_buf_adds(b, ",\"mode\":");
        mfp_buf_json_str(b, o->mode, strlen(o->mode));
    }
    mfp_buf_adds(b, "}\n");
    return b->oom ? MF_ENOMEM : MF_OK;
}

/* What an answer says, for the summary and error messages. */
typedef struct {
    int ok;
    int unknown;       /* the answer says "unknown": family is then only the closest */
    int traced;        /* the answer ranked families (not "no trace" / "no known calls") */
    char family[128];  /* best family, or "(note)" when nothing was ranked */
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
    const char *p_unk[] = {"unknown", NULL};
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
    yajl_val e = yajl_tree_get(v, p_err, yajl_t_string);
    yajl_val m = yajl_tree_get(v, p_msg, yajl_t_string);
    if (e)
        snprintf(a->error, sizeof a->error, "%s", YAJL_GET_STRING(e));
    if (m)
        snprintf(a->message, sizeof a->message, "%s", YAJL_GET_STRING(m));
    yajl_tree_free(v);
}

/* Print an answer line as the daemon sent it; when it says no, also `malfam: WHAT: code:
 * message` on stderr. Returns whether the answer was ok. */
static int print_answer(const char *what, const char *line)
{
    printf("%s\n", line);
    answer_t a;
    read_answer(line, &a);
    if (!a.ok)
        fprintf(stderr, "malfam: %s: %s: %s\n", what, a.error, a.message);
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

int cli_classify(int argc, char **argv)
{
    static const char usage[] =
        "usage: malfam classify [--socket S] [--top N] [--mode M] REPORT.json...\n"
        "Asks malfamd for the families of each report and prints its JSON answer, one line per\n"
        "report. The report is not changed. Socket: --socket, $MALFAM_SOCKET or "
        DEFAULT_SOCKET ".\n";
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
    mfp_buf_t req = {0};
    for (int i = o.first_path; i < argc; i++) {
        char *line = NULL;
        rc = build_request(&req, &o, argv[i], 0, (unsigned)i);
        if (rc == MF_OK)
            rc = exchange(&c, &req, &line, o.timeout_ms);
        if (rc != MF_OK) {
            cli_error(argv[i], rc, "no answer from malfamd");
            status = 1;
            break;
        }
        if (!print_answer(argv[i], line))
            status = 1;
        free(line);
    }
    mfp_buf_free(&req);
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
        "usage: malfam label [--socket S] [--top N] [--mode M] [--quiet] REPORT.json...\n"
        "       malfam label [--socket S] [--top N] [--mode M] [--quiet] --store DIR\n"
        "Asks malfamd to classify each report and store its answer under the top-level key\n"
        "\"malfam\" of that report (replacing an older one). Reports must lie under the\n"
        "daemon's allowed_roots. --store DIR relabels every report of a Cuckoo/CAPE store,\n"
        "DIR/storage/analyses/<n>/reports/report.json[.gz] in task order (DIR may also be the\n"
        "storage or the analyses folder), walked as `malfam train --store` walks it.\n"
        "Progress with an ETA goes to stderr (a bar on a terminal); a summary ends the run.\n";
    opts_t o;
    int u = parse_opts(argc, argv, &o, usage);
    if (u)
        return u == 1 ? 0 : 2;
    char err[256];
    int rc;
    cli_store_t st;
    memset(&st, 0, sizeof st);
    if (o.store && (rc = cli_store_list(&st, o.store, err, sizeof err)) != MF_OK) {
        cli_error(o.store, rc, err);
        return rc == MF_ENOMEM ? 1 : 2;
    }
    mfp_client_t c;
    rc = mfp_client_open(&c, o.socket, err, sizeof err);
    if (rc != MF_OK) {
        cli_error("malfamd", rc, err);
        cli_store_free(&st);
        return 1;
    }
    int total = o.store ? (int)st.n : argc - o.first_path, done = 0, failed = 0, noted = 0;
    int unknown = 0;
    tally_t known = {0};
    cli_progress_t pr;
    cli_progress_start(&pr, "malfam label", (size_t)total, o.quiet);
    double t0 = cli_now();
    mfp_buf_t req = {0};
    for (int k = 0; k < total; k++) {
        const char *path = o.store ? st.items[k].path : argv[o.first_path + k];
        char *line = NULL;
        rc = build_request(&req, &o, path, 1, (unsigned)k + 1);
        if (rc == MF_OK)
            rc = exchange(&c, &req, &line, o.timeout_ms);
        if (rc != MF_OK) {
            cli_progress_break(&pr);
            cli_error(path, rc, "no answer from malfamd; stopping");
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
            /* what the report now says: a family, "unknown" (with the closest one), or a note */
            char shown[192];
            if (!a.traced) {
                noted++;
                snprintf(shown, sizeof shown, "%s", a.family);
            } else if (a.unknown) {
                unknown++;
                snprintf(shown, sizeof shown, "unknown (closest: %s)", a.family);
            } else {
                snprintf(shown, sizeof shown, "%s", a.family);
                tally_add(&known, a.family);
            }
            if (!o.quiet && !(pr.tty && total > 1))
                printf("%s\t%s\n", path, shown);
        }
        cli_progress_step(&pr, (size_t)done, (size_t)failed);
    }
    double el = cli_now() - t0;
    cli_store_free(&st);
    fprintf(stderr, "malfam label: %d reports, %d labelled (%d with a family, %d unknown, %d "
            "without a trace), %d failed, %.2f s\n", total, done - failed,
            done - failed - unknown - noted, unknown, noted, failed, el);
    tally_print(&known, stderr);
    tally_free(&known);
    mfp_buf_free(&req);
    mfp_client_close(&c);
    return failed ? 1 : 0;
}

/* ---- operator commands: ping, stats, reload ------------------------------------------------ */

/* Send {"op":OP} and print the answer line as it is (JSON, for scripts and jq). Exit 0 when
 * the answer is ok, 1 when the daemon says no or cannot be reached, 2 on usage. */
static int op_command(int argc, char **argv, const char *op, const char *what, int timeout_ms)
{
    const char *sock = default_socket();
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--socket") || !strcmp(argv[i], "-s")) && i + 1 < argc) {
            sock = argv[++i];
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
            fprintf(f, "usage: malfam %s [--socket S] [--timeout SECONDS]\n%s\n"
                       "Prints malfamd's JSON answer; exit 0 ok, 1 refused or unreachable.\n"
                       "Socket: --socket, $MALFAM_SOCKET or " DEFAULT_SOCKET ".\n",
                    op, what);
            return f == stdout ? 0 : 2;
        }
    }
    mfp_client_t c;
    char err[512];
    int rc = mfp_client_open(&c, sock, err, sizeof err);
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
    int ok = print_answer(op, line);
    free(line);
    return ok ? 0 : 1;
}

int cli_ping(int argc, char **argv)
{
    return op_command(argc, argv, "ping", "Is malfamd up? Its answer names its version and model.",
                      10000);
}

int cli_stats(int argc, char **argv)
{
    return op_command(argc, argv, "stats",
                      "malfamd's counters, latency percentiles, model and memory.", 10000);
}

int cli_reload(int argc, char **argv)
{
    return op_command(argc, argv, "reload",
                      "Have malfamd load its model file again (as SIGHUP); answers when the new "
                      "model serves,\nor with the reason it was refused (the old one stays).",
                      600000); /* a reload loads a whole model */
}
