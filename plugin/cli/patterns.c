/* patterns.c - `malfam patterns`: print each family's representative API-call pattern of a
 * model, after a header line with its training statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "train.h"
#include "vocab.h"

int cli_patterns(int argc, char **argv)
{
    const char *path = NULL, *only = NULL;
    int ids = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: malfam patterns MODEL [--family NAME] [--ids]\n"
                   "Prints each family's generated pattern (API names, or ids with --ids) after "
                   "a header line with its training statistics.\n");
            return 0;
        } else if (!strcmp(argv[i], "--family") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--ids")) {
            ids = 1;
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            fprintf(stderr, "malfam patterns: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: malfam patterns MODEL [--family NAME] [--ids]\n");
        return 2;
    }
    char err[512];
    mf_model_t *m = NULL;
    int rc = mf_model_load(&m, path, err, sizeof err);
    if (rc != MF_OK) {
        cli_error(path, rc, err);
        return rc == MF_ENOMEM ? 1 : 2;
    }
    int found = 0;
    const mf_train_opts_t *o = &m->opts;
    printf("# model %s: %d families, vocabulary %d, embed %d hidden %d dense %d, pattern "
           "length %d temp %g after epoch %d of %d\n", m->version, m->nfam,
           mf_vocab_size(m->vocab), o->nembed, o->nhidden, o->ndense, o->gen_len, o->gen_temp,
           o->gen_epoch > 0 && o->gen_epoch < o->epochs ? o->gen_epoch : o->epochs, o->epochs);
    for (int f = 0; f < m->nfam; f++) {
        const mf_family_t *fa = &m->fam[f];
        if (only && strcmp(only, fa->name))
            continue;
        found = 1;
        /* distinct APIs in the pattern: what set Jaccard sees */
        int nv = mf_vocab_size(m->vocab), distinct = 0;
        unsigned char *seen = calloc((size_t)nv + 1, 1);
        for (size_t i = 0; seen && i < fa->pattern.n; i++)
            if (!seen[fa->pattern.ids[i]]++)
                distinct++;
        free(seen);
        printf("%s: tokens %zu loss %.4f entropy %.4f pattern %zu calls, %d distinct\n", fa->name,
               fa->tokens, fa->loss, fa->entropy, fa->pattern.n, distinct);
        for (size_t i = 0; i < fa->pattern.n; i++) {
            const char *name = mf_vocab_name(m->vocab, fa->pattern.ids[i]);
            if (ids || !name)
                printf("%s%d", i ? " " : "  ", (int)fa->pattern.ids[i]);
            else
                printf("%s%s", i ? " " : "  ", name);
        }
        printf("\n");
    }
    mf_model_free(m);
    if (only && !found) {
        fprintf(stderr, "malfam patterns: no family %s in %s\n", only, path);
        return 1;
    }
    return 0;
}
