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
                   "Prints each family's training figures, its generated pattern's distinct and\n"
                   "most frequent APIs, and the pattern itself, wrapped (API names, or ids with\n"
                   "--ids). --family NAME prints that family only.\n");
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
    mf_model_t *m = NULL;
    int status = cli_load_model(path, &m);
    if (status)
        return status;
    int found = 0;
    const mf_train_opts_t *o = &m->opts;
    printf("# model %s: %d families, vocabulary %d, embed %d hidden %d dense %d, pattern "
           "length %d temp %g after epoch %d of %d\n", m->version, m->nfam,
           mf_vocab_size(m->vocab), o->nembed, o->nhidden, o->ndense, o->gen_len, o->gen_temp,
           o->gen_epoch > 0 && o->gen_epoch < o->epochs ? o->gen_epoch : o->epochs, o->epochs);
    int nv = mf_vocab_size(m->vocab);
    size_t *count = calloc((size_t)nv + 1, sizeof *count);
    if (!count) {
        cli_error(path, MF_ENOMEM, NULL);
        mf_model_free(m);
        return 1;
    }
    for (int f = 0; f < m->nfam; f++) {
        const mf_family_t *fa = &m->fam[f];
        if (only && strcmp(only, fa->name))
            continue;
        found = 1;
        /* distinct APIs in the pattern (what set Jaccard sees) and the most frequent ones */
        memset(count, 0, ((size_t)nv + 1) * sizeof *count);
        int distinct = 0;
        for (size_t i = 0; i < fa->pattern.n; i++) {
            int32_t id = fa->pattern.ids[i];
            if (id >= 0 && id < nv && !count[id]++)
                distinct++;
        }
        printf("\n%s: %zu training tokens, loss %.4f, entropy %.4f; pattern %zu calls, %d "
               "distinct APIs\n", fa->name, fa->tokens, fa->loss, fa->entropy, fa->pattern.n,
               distinct);
        printf("  top APIs:");
        for (int k = 0; k < 5 && k < distinct; k++) { /* 5 picks of the max: small and clear */
            int best = -1;
            for (int id = 0; id < nv; id++)
                if (count[id] && (best < 0 || count[id] > count[best]))
                    best = id;
            const char *name = mf_vocab_name(m->vocab, best);
            if (ids || !name)
                printf("%s %d x%zu", k ? "," : "", best, count[best]);
            else
                printf("%s %s x%zu", k ? "," : "", name, count[best]);
            count[best] = 0;
        }
        printf("\n  sequence:");
        /* wrapped at 100 columns, indented, so a long pattern stays readable */
        int col = 100;
        for (size_t i = 0; i < fa->pattern.n; i++) {
            char id[16];
            const char *name = mf_vocab_name(m->vocab, fa->pattern.ids[i]);
            if (ids || !name) {
                snprintf(id, sizeof id, "%d", (int)fa->pattern.ids[i]);
                name = id;
            }
            int len = (int)strlen(name);
            if (col + 1 + len > 100) {
                printf("\n   ");
                col = 3;
            }
            printf(" %s", name);
            col += 1 + len;
        }
        printf("\n");
    }
    free(count);
    if (only && !found) {
        fprintf(stderr, "malfam patterns: no family %s in %s; its families:", only, path);
        for (int f = 0; f < m->nfam; f++)
            fprintf(stderr, "%s %s", f ? "," : "", m->fam[f].name);
        fprintf(stderr, "\n");
        mf_model_free(m);
        return 2;
    }
    mf_model_free(m);
    return 0;
}
