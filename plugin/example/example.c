/* example.c - the smallest complete user of libmalfam: label reports with a trained model.
 *
 *     example MODEL REPORT...
 *
 * Prints one line per report: path, calls scored, best family and its score in the model's
 * default mode (or "no trace" / "no known calls" when nothing is left to score). Errors go to
 * stderr as "example: <path>: <error>: <detail>"; the exit status is then 1.
 */
#include <stdio.h>

#include "malfam.h"

static void fail(const char *path, int rc, const char *detail)
{
    fprintf(stderr, "example: %s: %s: %s\n", path, mf_strerror(rc), detail);
}

int main(int argc, char **argv)
{
    char err[512] = "";
    mf_model_t *model = NULL;
    if (argc < 3) {
        fprintf(stderr, "usage: example MODEL REPORT...\n");
        return 2;
    }
    int rc = mf_model_load(&model, argv[1], err, sizeof err);
    if (rc != MF_OK) {
        fail(argv[1], rc, err);
        return 1;
    }
    mf_scorer_t *scorer = mf_scorer_new(model); /* read-only: one serves every report */
    if (!scorer) {
        fail(argv[1], MF_ENOMEM, "building the scorer");
        mf_model_free(model);
        return 1;
    }
    int mode = mf_score_pick_default(model), status = 0;
    for (int i = 2; i < argc; i++) {
        mf_trace_t trace;
        mf_extract_stats_t stats;
        mf_result_t res;
        mf_trace_init(&trace);
        err[0] = '\0';
        /* the model's preprocessing, as malfam and malfamd extract it */
        rc = mf_extract_file(argv[i], NULL, &model->prep, model->vocab, &trace, &stats, NULL, err,
                             sizeof err);
        if (rc == MF_OK && trace.n == 0)
            printf("%s\t0\t%s\n", argv[i], stats.calls ? "no known calls" : "no trace");
        else if (rc == MF_OK && (rc = mf_score_trace(scorer, mode, &trace, 1, &res)) == MF_OK)
            printf("%s\t%zu\t%s\t%.6f\n", argv[i], res.calls, /* top[0]: the best family */
                   res.ntop ? model->fam[res.top[0].family].name : "-",
                   res.ntop ? res.top[0].score : 0.0);
        if (rc != MF_OK) {
            fail(argv[i], rc, err[0] ? err : "scoring");
            status = 1;
        }
        mf_trace_destroy(&trace);
    }
    mf_scorer_free(scorer);
    mf_model_free(model);
    return status;
}
