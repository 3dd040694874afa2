/* score.c - `malfam score`: rank the families of report.json files offline, one JSON answer
 * per report (the same answer malfamd gives), with the model and options of source.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "blas.h"
#include "cli.h"
#include "mf.h"
#include "model.h"
#include "score.h"
#include "trace.h"

static const char usage_text[] =
    "usage: malfam score (--model MODEL | --calls F --index F --api-index F) [--mode M] "
    "[--top N] REPORT.json...\n"
    "Ranks the families of each report offline and prints the report's path and the JSON\n"
    "answer malfamd would give, one line per report.\n";

int cli_score(int argc, char **argv)
{
    mf_blas_set_threads(1); /* one report's products are small: threads only add overhead */
    cli_src_t s;
    memset(&s, 0, sizeof s);
    mf_score_opts_default(&s.o);
    s.fu_rate = -1;
    int mode = -2, top = 3, first = argc;
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
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fputs(usage_text, stderr);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "malfam score: no report given\n");
        return 2;
    }
    s.split = MF_SPLIT_TEST;
    s.model_only = 1;
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
        char err[512] = "";
        mf_trace_init(&t);
        mfp_buf_reset(&out);
        int rc = mf_extract_file(argv[i], NULL, &s.m->prep, s.vocab, &t, &es, NULL, err,
                                 sizeof err);
        if (rc == MF_OK)
            rc = mfp_classify(sc, s.m, &co, &t, &es, &out, NULL);
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
        printf("%s\t%s\n", argv[i], out.p);
    }
    mfp_buf_free(&out);
    mf_scorer_free(sc);
    cli_src_destroy(&s);
    return st;
}
