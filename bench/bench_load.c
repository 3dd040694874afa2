/* bench_load.c - load test for malfamd: N clients over the Unix socket, mixed requests.
 *
 *   bench_load -s SOCK [-c CLIENTS] [-n REQS | -t SECONDS] [--stream PCT] [--invalid PCT]
 *              [--model FILE --mode NAME] [--name LABEL] REPORT...
 *
 * Each client keeps one connection and sends classify requests for the reports in turn; a
 * share are classify_stream (the file sent as the body) and a share invalid (a garbage line,
 * a path outside the roots), which must get an error answer. With --model, every valid
 * answer is checked against the offline library path (mf_extract_file, mf_trace_prep,
 * mf_score_trace, mf_result_json) for the same file. Prints requests/s, p50/p99/max latency,
 * errors by kind and the daemon's RSS (from "stats") before and after, then one line
 * "NAME n seconds p50_ms" for bench/run.sh.
 */
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mf.h"
#include "model.h"
#include "score.h"
#include "trace.h"
#include "answer.h"
#include "proto.h"

#define MAX_KINDS 32

typedef struct {
    const char *path;
    char *expect;  /* the offline answer's members (no braces), or NULL */
    char *body;    /* file content for classify_stream (loaded lazily, shared) */
    size_t len;
} report_t;

typedef struct {
    const char *sock;
    report_t *rep;
    int nrep;
    int nreq;
    double until;  /* seconds on the monotonic clock, 0 = use nreq */
    int stream_pct, invalid_pct;
} shared_t;

typedef struct {
    pthread_t th;
    shared_t *sh;
    int id;
    double *lat;
    size_t nlat, cap;
    char kinds[MAX_KINDS][32];
    int kcount[MAX_KINDS];
    int nkinds;
    uint64_t seed;
} client_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void count(client_t *c, const char *kind)
{
    for (int i = 0; i < c->nkinds; i++)
        if (!strcmp(c->kinds[i], kind)) {
            c->kcount[i]++;
            return;
        }
    if (c->nkinds < MAX_KINDS) {
        snprintf(c->kinds[c->nkinds], sizeof c->kinds[0], "%s", kind);
        c->kcount[c->nkinds++] = 1;
    }
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

/* The part of an answer that must match offline: from "families" to before ,"ms". */
static int answer_matches(const char *ans, const char *expect)
{
    const char *a = strstr(ans, "\"families\"");
    const char *e = strstr(ans, ",\"ms\":");
    if (!a || !e)
        return 0;
    return (size_t)(e - a) == strlen(expect) && memcmp(a, expect, strlen(expect)) == 0;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    shared_t *sh = c->sh;
    mfp_client_t conn;
    char err[256];
    if (mfp_client_open(&conn, sh->sock, err, sizeof err) != MF_OK) {
        count(c, "connect");
        return NULL;
    }
    mfp_buf_t line = {0};
    for (int i = 0;; i++) {
        if (sh->until > 0 ? now() >= sh->until : i >= sh->nreq)
            break;
        report_t *r = &sh->rep[(c->id + i) % sh->nrep];
        uint32_t dice = rnd(&c->seed) % 100;
        int invalid = dice < (uint32_t)sh->invalid_pct;
        int stream = !invalid && dice < (uint32_t)(sh->invalid_pct + sh->stream_pct) && r->body;
        mfp_buf_reset(&line);
        if (invalid) {
            if (dice % 2)
                mfp_buf_adds(&line, "{\"op\":\"classify\",\"path\":\"/proc/self/status\"}\n");
            else
                mfp_buf_adds(&line, "{\"op\":classify}\n");
        } else if (stream) {
            mfp_buf_printf(&line, "{\"op\":\"classify_stream\",\"id\":%d,\"bytes\":%zu}\n", i,
                           r->len);
        } else {
            mfp_buf_printf(&line, "{\"op\":\"classify\",\"id\":%d,\"path\":", i);
            mfp_buf_json_str(&line, r->path, strlen(r->path));
            mfp_buf_adds(&line, "}\n");
        }
        double t0 = now();
        int rc = mfp_client_send(&conn, line.p, line.n);
        if (rc == MF_OK && stream)
            rc = mfp_client_send(&conn, r->body, r->len);
        char *ans = NULL;
        if (rc == MF_OK)
            rc = mfp_client_recv(&conn, &ans, 1 << 20, 600000);
        double ms = (now() - t0) * 1e3;
        if (rc != MF_OK) {
            count(c, "io");
            break;
        }
        int ok = strstr(ans, "\"ok\":true") != NULL;
        if (invalid) {
            count(c, ok ? "invalid_accepted" : "invalid_refused(expected)");
        } else if (!ok) {
            const char *e = strstr(ans, "\"error\":\"");
            char kind[32] = "error";
            if (e)
                sscanf(e + 9, "%31[^\"]", kind);
            count(c, kind);
        } else if (r->expect && !answer_matches(ans, r->expect)) {
            count(c, "mismatch");
        } else {
            if (c->nlat == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 1024;
                double *p = realloc(c->lat, cap * sizeof *p);
                if (p) {
                    c->lat = p;
                    c->cap = cap;
                }
            }
            if (c->nlat < c->cap)
                c->lat[c->nlat++] = ms;
            count(c, "ok");
        }
        free(ans);
    }
    mfp_buf_free(&line);
    mfp_client_close(&conn);
    return NULL;
}

static long daemon_rss(const char *sock)
{
    mfp_client_t c;
    char err[256], *ans = NULL;
    long rss = -1;
    if (mfp_client_open(&c, sock, err, sizeof err) != MF_OK)
        return -1;
    if (mfp_client_send(&c, "{\"op\":\"stats\"}\n", 15) == MF_OK &&
        mfp_client_recv(&c, &ans, 1 << 20, 10000) == MF_OK) {
        const char *p = strstr(ans, "\"rss_kb\":");
        if (p)
            rss = strtol(p + 9, NULL, 10);
    }
    free(ans);
    mfp_client_close(&c);
    return rss;
}

/* The offline answer members for one report, as the daemon would give them. */
static char *offline(const mf_model_t *m, const mf_scorer_t *s, int mode, const char *path)
{
    mf_trace_t t;
    mf_trace_init(&t);
    mf_extract_stats_t st;
    char err[256];
    if (mf_extract_file(path, NULL, &m->prep, m->vocab, &t, &st, NULL, err, sizeof err) != MF_OK) {
        fprintf(stderr, "bench_load: %s: %s\n", path, err);
        mf_trace_destroy(&t);
        return NULL;
    }
    char *out = NULL;
    mfp_classify_opts_t o = {mode, 3, NAN};
    mfp_buf_t b = {0};
    if (t.n > 0 && mfp_classify(s, m, &o, &t, &st, &b, NULL) == MF_OK && !b.oom && b.n > 2) {
        b.p[b.n - 1] = '\0';   /* drop the closing brace */
        out = strdup(b.p + 1); /* and the opening one */
    }
    mfp_buf_free(&b);
    mf_trace_destroy(&t);
    return out;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    shared_t sh = {.nreq = 10};
    int nclients = 1;
    double seconds = 0;
    const char *model_path = NULL, *mode_name = NULL, *name = "load";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            break;
        if (!strcmp(a, "-s"))
            sh.sock = argv[++i];
        else if (!strcmp(a, "-c"))
            nclients = atoi(argv[++i]);
        else if (!strcmp(a, "-n"))
            sh.nreq = atoi(argv[++i]);
        else if (!strcmp(a, "-t"))
            seconds = atof(argv[++i]);
        else if (!strcmp(a, "--stream"))
            sh.stream_pct = atoi(argv[++i]);
        else if (!strcmp(a, "--invalid"))
            sh.invalid_pct = atoi(argv[++i]);
        else if (!strcmp(a, "--model"))
            model_path = argv[++i];
        else if (!strcmp(a, "--mode"))
            mode_name = argv[++i];
        else if (!strcmp(a, "--name"))
            name = argv[++i];
        else
            break;
    }
    if (!sh.sock || i >= argc || nclients < 1 || nclients > 4096) {
        fprintf(stderr, "usage: bench_load -s SOCK [-c N] [-n REQS | -t SECONDS] [--stream PCT] "
                        "[--invalid PCT] [--model FILE --mode NAME] [--name LABEL] REPORT...\n");
        return 2;
    }
    sh.nrep = argc - i;
    sh.rep = calloc((size_t)sh.nrep, sizeof *sh.rep);
    if (!sh.rep)
        return 1;
    mf_model_t *m = NULL;
    mf_scorer_t *sc = NULL;
    int mode = -1;
    if (model_path) {
        char err[512];
        if (mf_model_load(&m, model_path, err, sizeof err) != MF_OK || !(sc = mf_scorer_new(m))) {
            fprintf(stderr, "bench_load: model %s: %s\n", model_path, err);
            return 1;
        }
        mode = mode_name ? mf_score_mode_parse(mode_name) : mf_score_default_mode();
    }
    for (int k = 0; k < sh.nrep; k++) {
        report_t *r = &sh.rep[k];
        r->path = argv[i + k];
        if (m)
            r->expect = offline(m, sc, mode, r->path);
        if (sh.stream_pct > 0) {
            FILE *f = fopen(r->path, "rb");
            if (f && fseek(f, 0, SEEK_END) == 0) {
                long n = ftell(f);
                rewind(f);
                r->body = n > 0 ? malloc((size_t)n) : NULL;
                if (r->body && fread(r->body, 1, (size_t)n, f) == (size_t)n)
                    r->len = (size_t)n;
                else {
                    free(r->body);
                    r->body = NULL;
                }
            }
            if (f)
                fclose(f);
        }
    }
    long rss0 = daemon_rss(sh.sock);
    client_t *cl = calloc((size_t)nclients, sizeof *cl);
    if (!cl)
        return 1;
    double t0 = now();
    if (seconds > 0)
        sh.until = t0 + seconds;
    for (int k = 0; k < nclients; k++) {
        cl[k].sh = &sh;
        cl[k].id = k;
        cl[k].seed = 11 + (uint64_t)k;
        pthread_create(&cl[k].th, NULL, client_main, &cl[k]);
    }
    for (int k = 0; k < nclients; k++)
        pthread_join(cl[k].th, NULL);
    double el = now() - t0;
    long rss1 = daemon_rss(sh.sock);

    size_t n = 0;
    for (int k = 0; k < nclients; k++)
        n += cl[k].nlat;
    double *all = malloc((n ? n : 1) * sizeof *all);
    size_t at = 0;
    for (int k = 0; k < nclients; k++) {
        memcpy(all + at, cl[k].lat, cl[k].nlat * sizeof *all);
        at += cl[k].nlat;
    }
    qsort(all, n, sizeof *all, cmp_double);
    double p50 = n ? all[(n - 1) / 2] : 0, p99 = n ? all[(n - 1) * 99 / 100] : 0;
    double mx = n ? all[n - 1] : 0;
    /* errors by kind, over all clients */
    client_t tot = {0};
    int total = 0, bad = 0;
    for (int k = 0; k < nclients; k++)
        for (int j = 0; j < cl[k].nkinds; j++)
            for (int r = 0; r < cl[k].kcount[j]; r++)
                count(&tot, cl[k].kinds[j]);
    printf("# %s: %d clients, %.2f s, %zu ok answers, %.1f req/s, latency ms p50 %.2f p99 %.2f "
           "max %.2f, daemon RSS %ld -> %ld KiB\n", name, nclients, el, n, (double)n / el, p50,
           p99, mx, rss0, rss1);
    printf("#   answers:");
    for (int j = 0; j < tot.nkinds; j++) {
        printf(" %s=%d", tot.kinds[j], tot.kcount[j]);
        total += tot.kcount[j];
        if (strcmp(tot.kinds[j], "ok") && !strstr(tot.kinds[j], "expected"))
            bad += tot.kcount[j];
    }
    printf("  (%d requests, %d unexpected)\n", total, bad);
    printf("%s %zu %.6f %.3f\n", name, n, el, p50);
    for (int k = 0; k < nclients; k++)
        free(cl[k].lat);
    free(cl);
    free(all);
    for (int k = 0; k < sh.nrep; k++) {
        free(sh.rep[k].expect);
        free(sh.rep[k].body);
    }
    free(sh.rep);
    mf_scorer_free(sc);
    mf_model_free(m);
    return bad ? 1 : 0;
}
