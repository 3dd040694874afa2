/* lstm.h - the paper's per-family network: API id -> embedding -> LSTM -> dense -> softmax.
 *
 * INTERFACE SKETCH (owner: the LSTM work). Names and meanings below are relied on by
 * model.c, score.c and the CLI; the owner may add functions and fields, not rename these.
 */
#ifndef MF_LSTM_H
#define MF_LSTM_H

#include <stddef.h>
#include <stdint.h>

#include "mf.h"

typedef struct mf_lstm_dims {
    int nvocab; /* softmax width = input ids 0..nvocab-1 */
    int nembed;
    int nhidden;
    int ndense;
} mf_lstm_dims_t;

/* Training and generation settings; stored in the model file. */
typedef struct mf_train_opts {
    int nembed, nhidden, ndense;
    int bptt;        /* truncated-BPTT window */
    int batch;       /* parallel streams over the concatenated sequence */
    int epochs;
    float lr, clip;
    uint64_t seed;
    int gen_len;     /* representative pattern length */
    float gen_temp;  /* 0 = greedy */
    int gen_start;   /* start token id, -1 = the family's most frequent first call */
} mf_train_opts_t;

void mf_train_opts_default(mf_train_opts_t *o);
int mf_train_opts_check(const mf_train_opts_t *o, char *msg, size_t msglen); /* MF_OK/MF_EINVAL */

typedef struct mf_lstm {
    mf_lstm_dims_t d;
    size_t nparams;
    float *w; /* all weights in one block of nparams floats (save/load = one write/read) */
    /* owner may add private fields after these */
} mf_lstm_t;

size_t mf_lstm_nparams(const mf_lstm_dims_t *d);
mf_lstm_t *mf_lstm_new(const mf_lstm_dims_t *d); /* weights zero; NULL on ENOMEM/bad dims */
void mf_lstm_free(mf_lstm_t *m);

/* Mean per-call natural-log likelihood of `seq` (n ids, each < nvocab) under the model,
 * state starting at zero. Reentrant: the model is read-only. n < 2 gives 0. */
double mf_lstm_loglik(const mf_lstm_t *m, const int32_t *seq, size_t n);

#endif
