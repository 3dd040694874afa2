/* score.c - `malfam score`: rank the families of report.json files offline, one JSON answer
 * per report (the same answer malfamd gives), with the model and options of source.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mf.h"
#include "model.h"
#include "score.h"
#include "trace.h"

int cli_score(int argc, char **argv)
{
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
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "usage: malfam score (--model MODEL | --calls F --index F "
                            "--api-index F) [--mode M] [--top N] REPORT.json...\n");
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
    mf_scorer_t *sc = mf_scorer_new_ex(s.m, &s.o, NULL, NULL);
    if (!sc) {
        cli_error("scorer", MF_ENOMEM, NULL);
        cli_src_destroy(&s);
        return 1;
    }
    if (mode == -2)
        mode = mf_score_pick_default(s.m);
    if (!mf_score_mode_available(sc, mode)) {
        fprintf(stderr, "malfam score: mode %s needs what this model lacks\n",
                mf_score_mode_name(mode));
        mf_scorer_free(sc);
        cli_src_destroy(&s);
        return 2;
    }
    mf_extract_opts_t eo;
    mf_prep_extract_opts(&s.m->prep, &eo);
    for (int i = first; i < argc; i++) {
        mf_trace_t t;
        char err[512] = "";
        mf_trace_init(&t);
        int rc = mf_extract_file(argv[i], &eo, s.vocab, &t, NULL, err, sizeof err);
        if (rc != MF_OK) {
            cli_error(argv[i], rc, err);
            st = rc == MF_ENOMEM || rc == MF_EIO ? 1 : 2;
            mf_trace_destroy(&t);
            continue;
        }
        mf_trace_prep(&t, s.m->prep.fold, s.m->prep.max_len);
        if (t.n == 0) { /* nothing to rank: say so, as malfamd does */
            mf_trace_destroy(&t);
            printf("%s\t{\"families\":[],\"unknown\":true,\"note\":\"no trace\","
                   "\"mode\":\"%s\",\"model\":\"%s\",\"calls\":0}\n",
                   argv[i], mf_score_mode_name(mode), s.m->version);
            continue;
        }
        mf_result_t r;
        rc = mf_score_trace(sc, mode, &t, top, &r);
        mf_trace_destroy(&t);
        if (rc != MF_OK) {
            cli_error(argv[i], rc, NULL);
            st = 1;
            continue;
        }
        char buf[4096];
        int n = mf_result_json(&r, s.m, buf, sizeof buf);
        printf("%s\t%s\n", argv[i], n < (int)sizeof buf ? buf : "{\"error\":\"too long\"}");
    }
    mf_scorer_free(sc);
    cli_src_destroy(&s);
    return st;
}
