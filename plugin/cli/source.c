/* source.c - where `malfam eval` and `malfam score` get their model and samples: the shared
 * flags (--model, the Mal-API files or a report list, scoring options, --fu-rate) and the
 * loading, model building and calibration they lead to. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dataset.h"
#include "eval.h"
#include "mf.h"
#include "model.h"
#include "score.h"
#include "vocab.h"

static const char *const opt_names[CLI_NOPT] = {
    "--ngram-n", "--knn-k",  "--knn-hi", "--knn-idf",   "--combo-hi",  "--fuse-w", "--lin-hi",
    "--lin-c",   "--lin-bal", "--lin-df", "--lin-proto", "--lin-fthr", "--lin-nov",
    "--nov-protos", "--lin-tf"};

static int *opt_field(mf_score_opts_t *o, int i)
{
    int *f[CLI_NOPT] = {&o->ngram_n,  &o->knn_k,  &o->knn_hi, &o->knn_idf,
                        &o->combo_hi, &o->fuse_w, &o->lin_hi, &o->lin_c,
                        &o->lin_bal,  &o->lin_df, &o->lin_proto, &o->lin_fthr,
                        &o->lin_nov, &o->nov_protos, &o->lin_tf};
    return f[i];
}

int cli_score_flag(mf_score_opts_t *o, int *set, const char *a, const char *v)
{
    for (int k = 0; k < CLI_NOPT; k++)
        if (!strcmp(a, opt_names[k])) {
            char *end;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || end == v || n < INT_MIN || n > INT_MAX)
                return -1;
            *opt_field(o, k) = (int)n;
            set[k] = 1;
            return 1;
        }
    return 0;
}

void cli_score_apply(mf_score_opts_t *dst, const mf_score_opts_t *src, const int *set)
{
    mf_score_opts_t from = *src;
    for (int k = 0; k < CLI_NOPT; k++)
        if (set[k])
            *opt_field(dst, k) = *opt_field(&from, k);
}

/* Contracts of the entry points: cli.h. */
int cli_src_flag(cli_src_t *s, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **str = NULL;
    if (!strcmp(a, "--model"))
        str = &s->model;
    else if (!strcmp(a, "--calls"))
        str = &s->calls;
    else if (!strcmp(a, "--index"))
        str = &s->index;
    else if (!strcmp(a, "--api-index"))
        str = &s->api_index;
    else if (!strcmp(a, "--reports"))
        str = &s->reports;
    if (str) {
        if (*i + 1 >= argc)
            return -1;
        *str = argv[++*i];
        return 1;
    }
    int r = cli_score_flag(&s->o, s->o_set, a, *i + 1 < argc ? argv[*i + 1] : NULL);
    if (r != 0) {
        *i += r > 0;
        return r;
    }
    if (!strcmp(a, "--max-len")) { /* the in-memory model's trace cap (a model has its own) */
        char *end;
        if (*i + 1 >= argc)
            return -1;
        s->max_len = strtol(argv[++*i], &end, 10);
        s->max_len_set = 1;
        return *end || s->max_len < 0 ? -1 : 1;
    }
    if (!strcmp(a, "--fu-rate")) {
        char *end;
        if (*i + 1 >= argc)
            return -1;
        s->fu_rate = strtod(argv[++*i], &end);
        return *end || !(s->fu_rate >= 0 && s->fu_rate < 1) ? -1 : 1;
    }
    return 0;
}

void cli_src_destroy(cli_src_t *s)
{
    mf_dataset_destroy(&s->ds);
    if (s->m && s->m->vocab != s->vocab)
        mf_vocab_free(s->vocab);
    mf_model_free(s->m);
}

/* Load the model (or build one in memory from the train split) and the samples. Prints its
 * own errors; returns the exit status to use when not 0. */
int cli_src_open(cli_src_t *s)
{
    char err[512] = "";
    mf_prep_t prep = {1, MF_PREP_MAX_LEN}; /* as `malfam train`: runs collapsed, the default cap */
    int rc;
    if (s->max_len_set && !s->model)
        prep.max_len = (size_t)s->max_len;
    mf_dataset_init(&s->ds);
    if (!(s->model_only && s->model) && !s->reports &&
        !(s->calls && s->index && (s->api_index || s->model))) {
        fprintf(stderr, "malfam: need --calls, --index and --api-index, or --reports\n");
        return 2;
    }
    if (!s->model && !(s->calls && s->index && s->api_index)) {
        fprintf(stderr, "malfam: without --model, the Mal-API files are needed to build one\n");
        return 2;
    }
    if (s->model) {
        rc = mf_model_load(&s->m, s->model, err, sizeof err);
        if (rc != MF_OK) {
            cli_error(s->model, rc, err);
            return 1;
        }
        prep = s->m->prep;
        s->vocab = s->m->vocab;
    }
    if (!s->vocab) {
        const char *vp = s->api_index;
        if (!vp) {
            fprintf(stderr, "malfam: --api-index is needed (the model has no vocabulary)\n");
            return 2;
        }
        rc = mf_vocab_load(&s->vocab, vp, err, sizeof err);
        if (rc != MF_OK) {
            cli_error(vp, rc, err);
            return 2;
        }
    }
    if (s->calls) {
        /* every split: the train part becomes the references of an in-memory model */
        rc = mf_dataset_load_malapi(&s->ds, s->calls, s->index, s->vocab, MF_SPLIT_ANY, &prep,
                                    NULL, err, sizeof err);
        if (rc != MF_OK) {
            cli_error(s->calls, rc, err);
            return rc == MF_ENOMEM ? 1 : 2;
        }
    }
    if (s->reports) {
        rc = mf_dataset_load_reports(&s->ds, s->reports, s->vocab, 0, &prep, NULL, NULL, err,
                                     sizeof err);
        if (rc != MF_OK) {
            cli_error(s->reports, rc, err);
            return rc == MF_ENOMEM ? 1 : 2;
        }
    }
    if (!s->m) {
        s->m = mf_model_new();
        if (!s->m || (s->m->vocab = s->vocab, s->m->prep = prep,
                      mf_eval_model_from_dataset(s->m, &s->ds, MF_SPLIT_TRAIN)) != MF_OK) {
            cli_error("model from the train split", MF_ENOMEM, NULL);
            return 1;
        }
    }
    /* flags override the model's stored options */
    mf_score_opts_t mo;
    mf_score_opts_from_model(&mo, s->m);
    cli_score_apply(&mo, &s->o, s->o_set);
    s->o = mo;
    rc = mf_score_opts_check(&s->o, err, sizeof err);
    if (rc != MF_OK) {
        cli_error("options", rc, err);
        return 2;
    }
    /* a model without calibration (or options changed by flags) is calibrated here, on its
     * training references, the way `malfam train` does it */
    int changed = 0;
    for (int k = 0; k < CLI_NOPT; k++)
        changed |= s->o_set[k];
    if (s->fu_rate < 0)
        s->fu_rate = mf_model_param(s->m, "unknown.rate", 0.05);
    if (changed || mf_model_param(s->m, "unknown.rate", -1) != s->fu_rate) {
        rc = mf_score_opts_save(&s->o, s->m);
        if (rc == MF_OK && s->m->nrefs > 0)
            rc = mf_score_calibrate_mode(s->m, s->fu_rate, s->one_mode - 1);
        if (rc != MF_OK) {
            cli_error("calibration", rc, NULL);
            return 1;
        }
    }
    return 0;
}
