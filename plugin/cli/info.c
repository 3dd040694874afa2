/* info.c - `malfam info MODEL`: what a model file holds, for an operator deciding whether to
 * serve it: id and file format, vocabulary, families with their sample and token counts, the
 * modes it can score (and the default), its training and preprocessing options, and the
 * named parameters (unknown thresholds, scoring options). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "score.h"
#include "train.h"
#include "vocab.h"

static const char usage[] =
    "usage: malfam info MODEL\n"
    "Prints what a model file from `malfam train` holds: model id (as malfamd's answers name\n"
    "it) and file format version, vocabulary size, each family with its training samples and\n"
    "tokens, the scoring modes it can serve (the default marked; modes: " CLI_MODE_NAMES ")\n"
    "with their unknown thresholds, the training and preprocessing options, and every named\n"
    "parameter stored in it. Exit 0, or 2 when the file is not a loadable model.\n";

/* The format version from the file's header (magic, u32 little-endian); 0 when unreadable.
 * mf_model_load has already checked it; this only shows it. */
static unsigned file_format(const char *path)
{
    unsigned char h[12];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(h, 1, sizeof h, f) : 0;
    if (f)
        fclose(f);
    if (n < sizeof h)
        return 0;
    return (unsigned)h[8] | (unsigned)h[9] << 8 | (unsigned)h[10] << 16 | (unsigned)h[11] << 24;
}

int cli_info(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            fprintf(stderr, "malfam info: unexpected argument %s\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "malfam info: no model given\n%s", usage);
        return 2;
    }
    mf_model_t *m = NULL;
    int status = cli_load_model(path, &m);
    if (status)
        return status;
    /* no scorer: what the model can serve follows from what it holds (a scorer would build
     * every reference's key sets: seconds at 50,000 references) */
    size_t *samples = calloc((size_t)m->nfam + 1, sizeof *samples);
    if (!samples) {
        cli_error(path, MF_ENOMEM, NULL);
        mf_model_free(m);
        return 1;
    }
    for (size_t i = 0; i < m->nrefs; i++)
        if (m->ref_label[i] >= 0 && m->ref_label[i] < m->nfam)
            samples[m->ref_label[i]]++;

    printf("model %s, file format %u: %s\n", m->version, file_format(path), path);
    printf("vocabulary: %d API names\n", mf_vocab_size(m->vocab));
    printf("preprocessing: %s, first %zu calls%s\n", m->prep.fold ? "repeats folded" : "repeats kept",
           m->prep.max_len, m->prep.max_len ? "" : " (0 = all)");
    int dflt = mf_score_pick_default(m);
    printf("modes (unknown below the threshold):\n");
    for (int md = 0; md < MF_NMODES; md++) {
        char key[48];
        snprintf(key, sizeof key, "unknown.%s", mf_score_mode_name(md));
        double thr = mf_model_param(m, key, NAN);
        const char *lacks = mf_score_model_lacks(m, md);
        if (lacks)
            printf("  %-10s unavailable (needs %s; this model has none)\n", mf_score_mode_name(md),
                   lacks);
        else if (isnan(thr))
            printf("  %-10s no threshold%s\n", mf_score_mode_name(md), md == dflt ? "  (default)" : "");
        else
            printf("  %-10s %.4g%s\n", mf_score_mode_name(md), thr,
                   md == dflt ? "  (default)" : "");
    }

    /* family table: widths from the longest name, so long names stay aligned */
    int w = 6;
    for (int f = 0; f < m->nfam; f++) {
        int len = (int)strlen(m->fam[f].name);
        if (len > w)
            w = len;
    }
    printf("families: %d, %zu reference traces\n", m->nfam, m->nrefs);
    printf("  %-*s %8s %10s %8s %5s\n", w, "family", "samples", "tokens", "pattern", "lstm");
    for (int f = 0; f < m->nfam; f++) {
        const mf_family_t *fa = &m->fam[f];
        printf("  %-*s %8zu %10zu %8zu %5s\n", w, fa->name, samples[f], fa->tokens,
               fa->pattern.n, fa->lstm ? "yes" : "no");
    }

    printf("training options:");
#define PRINT_OPT_(type, io, name, dflt, ok, msg, optional, absent) \
    printf(" %s %g", #name, (double)m->opts.name);
    MF_TRAIN_OPTS(PRINT_OPT_)
#undef PRINT_OPT_
    printf("\nparameters: %d\n", m->nparams);
    for (int i = 0; i < m->nparams; i++)
        printf("  %s %.6g\n", m->params[i].name, m->params[i].value);
    free(samples);
    mf_model_free(m);
    return 0;
}
