/* score.c - `malfam score`: rank the families of report.json files offline, one JSON answer
 * per report (the same answer malfamd gives), with the model and options of source.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "answer.h"
#include "blas.h"
#include "cli.h"
#include "mf.h"
#include "model.h"
#include "score.h"
#include "trace.h"

static const char usage_text[] =
    "usage: malfam score --model MODEL [--mode M] [--top N] [--json] REPORT.json...\n"
    "       malfam score --calls F --index F --api-index F [...] REPORT.json...\n"
    "Ranks the families of each report offline, as malfamd would. REPORT may be plain JSON or\n"
    "gzip; - reads one report from stdin.\n"
    "  --model MODEL   the model file from `malfam train` (or build one in memory from a\n"
    "                  Mal-API split: --calls, --index, --api-index, --max-len N)\n"
    "  --mode M        scoring mode (default: the model's): " CLI_MODE_NAMES "\n"
    "  --top N         families per answer, 1..16 (default 3)\n"
    "  --json          one JSON object per line: {\"path\":REPORT, then malfamd's answer}\n"
    "                  (default: REPORT<TAB>verdict<TAB>raw score, novelty and threshold)\n"
    "  --reports LIST.csv  without --model: build the model from these labelled reports\n"
    "  scoring options, as `malfam eval --help` explains them (a change recalibrates, with\n"
    "  --mode that mode alone):\n"
    "                  [--fu-rate R] [--ngram-n N] [--knn-k K] [--knn-hi N] [--knn-idf 0|1]\n"
    "                  [--combo-hi N] [--fuse-w 0..100] [--lin-hi N] [--lin-c C100]\n"
    "                  [--lin-bal 0|1] [--lin-df N] [--lin-tf 0|1] [--lin-proto W100]\n"
    "                  [--lin-nov 0..5]\n"
    "                  [--lin-fthr 0|1] [--nov-protos -1|0|N]\n"
    "The verdict's number is the calibrated probability p where the mode has one (linear),\n"
    "else the mode's raw score, named as such.\n";

/* One report's human line: path, verdict (as in the JSON answer), then the raw numbers as
 * secondary detail. */
static void print_human(const char *path, const mf_result_t *r, const mf_model_t *m)
{
    mfp_buf_t v = {0};
    mfp_verdict(&v, r, m);
    printf("%s\t%s", path, v.oom ? "?" : v.p);
    mfp_buf_free(&v);
    if (r->ntop > 0) {
        /* the raw score is secondary; where the verdict already shows it, not again */
        putchar('\t');
        if (isfinite(r->top[0].p))
            printf("raw %s score %.4g, ", mf_score_mode_name(r->mode), r->top[0].score);
        printf("novelty %.4g %s threshold %.4g, %zu calls", r->novelty,
               r->novelty < r->threshold ? "<" : ">=", r->threshold, r->calls);
    }
    putchar('\n');
}

int cli_score(int argc, char **argv)
{
    mf_blas_set_threads(1); /* one report's products are small: threads only add overhead */
    cli_src_t s;
    memset(&s, 0, sizeof s);
    mf_score_opts_default(&s.o);
    s.fu_rate = -1;
    int mode = -2, top = 3, first = argc, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_src_flag(&s, argc, argv, &i);
        if (r < 0) {
            fprintf(stderr, "malfam score: bad or missing value for %s\n", a);
            return 2;
        }
        if (r > 0)
            continue;
        if (!strcmp(a, "--mode") && i + 1 < argc) {
            if ((mode = mf_score_mode_parse(argv[++i])) < 0) {
                fprintf(stderr, "malfam score: unknown mode '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--top") && i + 1 < argc) {
            top = atoi(argv[++i]);
            if (top < 1 || top > MF_MAX_TOP) {
                fprintf(stderr, "malfam score: --top 1..%d\n", MF_MAX_TOP);
                return 2;
            }
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "malfam score: unknown option '%s'\n%s", a, usage_text);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "malfam score: no report given (malfam score --help)\n");
        return 2;
    }
    if (!s.model && !s.calls && !s.reports) {
        fprintf(stderr, "malfam score: no model: give --model MODEL (a file from `malfam "
                        "train`), or --calls, --index and --api-index (or --reports LIST.csv) to build one\n");
        return 2;
    }
    s.split = MF_SPLIT_TEST;
    s.model_only = 1;
    s.one_mode = mode >= 0 ? mode + 1 : 0; /* without --mode the model's default, known later */
    int st = cli_src_open(&s);
    if (st != 0) {
        cli_src_destroy(&s);
        return st;
    }
    if (mode == -2)
        mode = mf_score_pick_default(s.m);
    /* one mode per run: build only what it needs (no SVM, no views for paper) */
    mf_scorer_t *sc = mf_scorer_new_mode(s.m, &s.o, mode);
    if (!sc) {
        cli_error("scorer", MF_ENOMEM, NULL);
        cli_src_destroy(&s);
        return 1;
    }
    if (!mf_score_mode_available(sc, mode)) {
        fprintf(stderr, "malfam score: mode %s needs what this model lacks\n",
                mf_score_mode_name(mode));
        mf_scorer_free(sc);
        cli_src_destroy(&s);
        return 2;
    }
    /* each report is read and answered exactly as malfamd does it (answer.h) */
    mfp_classify_opts_t co = {mode, top, NAN};
    mfp_buf_t out = {0};
    for (int i = first; i < argc; i++) {
        mf_trace_t t;
        mf_extract_stats_t es;
        mf_result_t r;
        struct stat sb;
        char err[512] = "";
        /* "-" is stdin; a directory is refused as such before open() half-succeeds on it */
        const char *path = strcmp(argv[i], "-") ? argv[i] : "/dev/stdin";
        mf_trace_init(&t);
        mfp_buf_reset(&out);
        memset(&r, 0, sizeof r);
        int rc = MF_OK;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            rc = MF_EIO;
            snprintf(err, sizeof err, "is a directory, not a report file");
        }
        if (rc == MF_OK)
            rc = mf_extract_file(path, NULL, &s.m->prep, s.vocab, &t, &es, NULL, err,
                                 sizeof err);
        if (rc == MF_OK)
            rc = mfp_classify(sc, s.m, &co, &t, &es, &out, &r);
        mf_trace_destroy(&t);
        if (rc != MF_OK) {
            cli_error(argv[i], rc, err[0] ? err : NULL);
            st = rc == MF_ENOMEM || rc == MF_EIO ? 1 : 2;
            mfp_buf_reset(&out);
            mfp_value_error(&out, rc, err);
        }
        if (out.oom) {
            cli_error(argv[i], MF_ENOMEM, NULL);
            st = 1;
            continue;
        }
        if (json) {
            /* {"path":..., then the answer's members}: one jq-readable object a line */
            mfp_buf_t line = {0};
            mfp_buf_adds(&line, "{\"path\":");
            mfp_buf_json_cstr(&line, argv[i]);
            mfp_buf_adds(&line, ",");
            mfp_buf_add(&line, out.p + 1, out.n - 1);
            if (line.oom) {
                cli_error(argv[i], MF_ENOMEM, NULL);
                st = 1;
            } else {
                printf("%s\n", line.p);
            }
            mfp_buf_free(&line);
        } else if (rc != MF_OK) {
            printf("%s\terror: %s: %s\n", argv[i], mf_err_name(rc),
                   err[0] ? err : mf_strerror(rc));
        } else {
            print_human(argv[i], &r, s.m);
        }
    }
    mfp_buf_free(&out);
    mf_scorer_free(sc);
    cli_src_destroy(&s);
    return st;
}
