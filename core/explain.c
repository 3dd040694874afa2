/* explain.c - why the top family won, in one line of the answer: the APIs (and n-grams) the
 * trace shares with that family's pattern or nearest reference, rarest first, or for linear
 * the n-grams that weigh most. Scorer layout: score_priv.h. */
#include "score_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mf.h"
#include "vocab.h"

typedef struct item {
    double w;
    size_t pos; /* position in the trace (n-grams) or API id */
} item_t;

static int cmp_item(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->w != y->w)
        return x->w < y->w ? 1 : -1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static void append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > cap)
        return; /* whole words or nothing: no cut names */
    memcpy(buf + *len, s, n + 1);
    *len += n;
}

/* "shared with FAM: api, api, ...; n-grams: a>b, ..." - the APIs (and bigrams) of the trace
 * that the winning family also has, rarest over the training traces first: a rare API in
 * common says more than ntclose does. */
int mf__explain(const mf_scorer_t *s, int mode, const mf_trace_t *t, int f,
                const mf__scratch_t *sc, char *out)
{
    const mf_model_t *m = s->m;
    size_t len = 0;
    char tmp[2 * MF_MAX_API_LEN + 64];
    out[0] = '\0';
    const uint64_t *other = NULL;
    const mf_keyset_t *ong = NULL;
    const mf__view_t *v = NULL;
    int viaref = mode == MF_MODE_NN || mode == MF_MODE_KNN || mode == MF_MODE_COMBO ||
                 mode == MF_MODE_FUSION || mode == MF_MODE_LINEAR; /* the last two ran combo */
    if (viaref) {
        long r = sc->best_ref[f];
        if (r < 0)
            return MF_OK;
        other = s->ref_bits + (size_t)r * s->nw;
        v = mode == MF_MODE_KNN ? &s->view[MF__VIEW_KNN] : mode == MF_MODE_NN ? NULL
                                                                       : &s->view[MF__VIEW_COMBO2];
        if (v && v->hi >= 2)
            ong = &v->ref[r];
    } else {
        other = s->pat_bits + (size_t)f * s->nw;
        if (mode == MF_MODE_NGRAM && s->o.ngram_n == 2)
            ong = &s->pat_ng[f];
    }
    snprintf(tmp, sizeof tmp, "shared with %s:", m->fam[f].name ? m->fam[f].name : "?");
    append(out, MF_EXPLAIN_LEN, &len, tmp);

    item_t it[12];
    int nit = 0;
    for (int id = 0; id < s->nv; id++) {
        if (!((sc->bits[id >> 6] & other[id >> 6]) >> (id & 63) & 1))
            continue;
        item_t x = {s->api_idf[id], (size_t)id};
        if (nit < 8) {
            it[nit++] = x;
        } else if (cmp_item(&x, &it[7]) < 0) {
            it[7] = x;
        } else {
            continue;
        }
        qsort(it, (size_t)nit, sizeof *it, cmp_item);
    }
    for (int i = 0; i < nit; i++) {
        const char *nm = m->vocab ? mf_vocab_name(m->vocab, (int)it[i].pos) : NULL;
        if (nm)
            snprintf(tmp, sizeof tmp, "%s %s", i ? "," : "", nm);
        else
            snprintf(tmp, sizeof tmp, "%s #%d", i ? "," : "", (int)it[i].pos);
        append(out, MF_EXPLAIN_LEN, &len, tmp);
    }
    if (mode == MF_MODE_LINEAR) {
        /* the n-grams of the trace that push it most towards the family */
        size_t pos[4];
        int glen[4];
        int nt = mf_linear_top(s->lin, &sc->lvec, t->ids, t->n, f, 4, pos, glen);
        if (nt < 0)
            return nt; /* MF_ENOMEM: an answer without its n-grams would hide the failure */
        for (int i = 0; i < nt; i++) {
            append(out, MF_EXPLAIN_LEN, &len, i ? ", " : "; weighs most: ");
            for (int j = 0; j < glen[i]; j++) {
                const char *nm = m->vocab ? mf_vocab_name(m->vocab, t->ids[pos[i] + (size_t)j])
                                          : NULL;
                snprintf(tmp, sizeof tmp, "%s%s", j ? ">" : "", nm ? nm : "?");
                append(out, MF_EXPLAIN_LEN, &len, tmp);
            }
        }
        return MF_OK;
    }
    if (!ong || t->n < 2)
        return MF_OK;
    /* bigrams of the trace found in the family's set, highest weight first, distinct */
    nit = 0;
    for (size_t i = 0; i + 1 < t->n; i++) {
        uint64_t key = mf_ngram_key(t->ids + i, 2);
        long j = mf_keyset_find(ong, key);
        if (j < 0)
            continue;
        item_t x = {ong->w ? ong->w[j] : 1.0, i};
        int dup = 0;
        for (int a = 0; a < nit && !dup; a++)
            dup = t->ids[it[a].pos] == t->ids[i] && t->ids[it[a].pos + 1] == t->ids[i + 1];
        if (dup)
            continue;
        if (nit < 4) {
            it[nit++] = x;
        } else if (cmp_item(&x, &it[3]) < 0) {
            it[3] = x;
        } else {
            continue;
        }
        qsort(it, (size_t)nit, sizeof *it, cmp_item);
    }
    for (int i = 0; i < nit; i++) {
        const char *a = m->vocab ? mf_vocab_name(m->vocab, t->ids[it[i].pos]) : NULL;
        const char *b = m->vocab ? mf_vocab_name(m->vocab, t->ids[it[i].pos + 1]) : NULL;
        snprintf(tmp, sizeof tmp, "%s%s>%s", i ? ", " : "; n-grams: ", a ? a : "?", b ? b : "?");
        append(out, MF_EXPLAIN_LEN, &len, tmp);
    }
    return MF_OK;
}
