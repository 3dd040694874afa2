/* lstm.h - the paper's per-family network: API id -> embedding -> LSTM -> dense -> softmax.
 * Training options are in train.h, pattern generation with its rules in pattern.h.
 */
#ifndef MF_LSTM_H
#define MF_LSTM_H

#include <stddef.h>
#include <stdint.h>

#include "mf.h"
#include "rng.h" /* the RNG mf_lstm_init and the sampler draw from */

typedef struct mf_lstm_dims {
    int nvocab; /* softmax width = input ids 0..nvocab-1 */
    int nembed;
    int nhidden;
    int ndense;
} mf_lstm_dims_t;

typedef struct mf_lstm {
    mf_lstm_dims_t d;
    size_t nparams;
    float *w; /* all weights in one block of nparams floats (save/load = one write/read) */
} mf_lstm_t;

size_t mf_lstm_nparams(const mf_lstm_dims_t *d);
mf_lstm_t *mf_lstm_new(const mf_lstm_dims_t *d); /* weights zero; NULL on ENOMEM/bad dims */
void mf_lstm_free(mf_lstm_t *m);

/* A new network with m's dimensions and a copy of its weights (a snapshot that training m
 * further leaves as it is). Free with mf_lstm_free. NULL on ENOMEM. */
mf_lstm_t *mf_lstm_clone(const mf_lstm_t *m);

/* Initialise the weights for training, deterministically from *rng (advanced): uniform
 * +-1/sqrt(fan-in) for the matrices, unit-variance-ish embedding rows, zero biases except
 * the forget gate's (1, so early gradients flow through the cell). */
void mf_lstm_init(mf_lstm_t *m, uint64_t *rng);

/* MF_OK when every dimension is in 1..MF_LSTM_MAX_DIM (nvocab up to MF_MAX_VOCAB), else
 * MF_EINVAL. Loaders call it before trusting sizes read from a file. */
#define MF_LSTM_MAX_DIM 4096
int mf_lstm_dims_check(const mf_lstm_dims_t *d);

/* ---- the weight block ----------------------------------------------------------------------
 * Tensors in block order, all row-major. Gates are ordered i, f, g, o (PyTorch's order, so
 * the cross-check can copy weights verbatim):
 *   EMB (nvocab, nembed)   WX (nembed, 4*nhidden)   WH (nhidden, 4*nhidden)   B (4*nhidden)
 *   WD (nhidden, ndense)   BD (ndense)              WO (ndense, nvocab)        BO (nvocab)  */
enum {
    MF_LSTM_EMB, MF_LSTM_WX, MF_LSTM_WH, MF_LSTM_B,
    MF_LSTM_WD, MF_LSTM_BD, MF_LSTM_WO, MF_LSTM_BO, MF_LSTM_NTENSORS
};

typedef struct mf_lstm_tensor {
    const char *name;  /* "emb", "wx", ... */
    size_t off;        /* offset in floats from the start of the block */
    size_t rows, cols; /* vectors have rows == 1 */
} mf_lstm_tensor_t;

void mf_lstm_layout(const mf_lstm_dims_t *d, mf_lstm_tensor_t t[MF_LSTM_NTENSORS]);

/* ---- training ------------------------------------------------------------------------------
 * A trainer holds everything one training run needs besides the weights: gradients, Adam
 * moments, activations of one window and the LSTM state carried from one window to the next.
 * Inputs are `batch` parallel streams, laid out time-major: x[t*batch + b] is stream b's id at
 * step t, y the id that follows it. The model must outlive the trainer; one trainer per
 * thread (it writes m->w). */
typedef struct mf_lstm_trainer mf_lstm_trainer_t;

/* NULL on ENOMEM or bad sizes (bptt, batch in 1..MF_LSTM_MAX_DIM). State starts at zero. */
mf_lstm_trainer_t *mf_lstm_trainer_new(mf_lstm_t *m, int bptt, int batch);
void mf_lstm_trainer_free(mf_lstm_trainer_t *tr); /* NULL is a no-op */

/* Zero the carried state (start of an epoch). */
void mf_lstm_trainer_reset(mf_lstm_trainer_t *tr);

/* The carried state, (batch, nhidden) each, writable: which = 0 for h, 1 for the cell. */
float *mf_lstm_trainer_state(mf_lstm_trainer_t *tr, int which);

/* Gradient of the last mf_lstm_trainer_grad call: nparams floats laid out as the weights. */
const float *mf_lstm_trainer_gradient(const mf_lstm_trainer_t *tr);

/* Forward and backward over one window of T steps (1..bptt) from the carried state: returns
 * the mean cross-entropy (nats per prediction) and leaves d(loss)/d(w) in the gradient.
 * With `carry`, the state at the end of the window becomes the carried state (truncated
 * BPTT: no gradient flows back across windows); without, the state is left as it was, so
 * the same window can be evaluated again (gradient checks). Ids must be < nvocab. */
double mf_lstm_trainer_grad(mf_lstm_trainer_t *tr, const int32_t *x, const int32_t *y, int T,
                            int carry);

/* One Adam step (beta 0.9/0.999, eps 1e-8) with the gradient first scaled down to global
 * L2 norm `clip` when larger (clip <= 0: no clipping). Returns the norm before clipping. */
double mf_lstm_trainer_adam(mf_lstm_trainer_t *tr, float lr, float clip);

/* ---- inference ---------------------------------------------------------------------------- */

/* Generation is one step and one sampler, below; mf_lstm_generate (training's patterns) and
 * pattern.h's generator with its cycle-breaking rules are both loops over them, so a pattern
 * sampled again with the same settings and RNG state comes back bit for bit. */

/* Floats of scratch mf_lstm_step needs for this model. */
size_t mf_lstm_step_floats(const mf_lstm_dims_t *d);

/* One step of the network: input id x advances the state and leaves the logits of the next
 * call in lg. state: (2, nhidden), h then the cell, all zero at the start of a trace, updated
 * in place; scratch: mf_lstm_step_floats floats; lg: (nvocab) out. The same arithmetic as
 * mf_lstm_loglik's forward pass. Reads the model only and allocates nothing (reentrant).
 * MF_OK, or MF_EINVAL when x is outside 0..nvocab-1 (then nothing is written). */
int mf_lstm_step(const mf_lstm_t *m, int x, float *state, float *scratch, float *lg);

/* Draw the next id from logits lg (n): the one sampler of all generation.
 *   temp <= 0: the most likely id (the first of ties); rng is not used (may be NULL).
 *   else: softmax(lg / temp) (the exp of training's softmax), restricted when top_p < 1 to
 *   the nucleus, the smallest set of most likely ids holding top_p of the mass (at least the
 *   most likely id); one mf_rng_uniform(rng) draw then picks in id order by cumulative
 *   probability.
 * An id whose logit is -INFINITY is never drawn (callers ban ids that way). lg is
 * overwritten (probabilities, banned ids -1). scratch: n floats, used when top_p < 1 or an id
 * is banned. Returns the id, or MF_EINVAL when every logit is -INFINITY (or n < 1). */
int mf_lstm_sample(float *lg, int n, float temp, float top_p, uint64_t *rng, float *scratch);

/* Generate `len` ids into out: out[0] = start, then mf_lstm_step from zero state and
 * mf_lstm_sample (top_p 1) for each next id given everything before it. Training samples
 * each family's pattern with it. MF_OK, MF_EINVAL (bad start/len), MF_ENOMEM. */
int mf_lstm_generate(const mf_lstm_t *m, int start, size_t len, float temp, uint64_t *rng,
                     int32_t *out);

/* Scratch floats mf_lstm_loglik_r needs for this model. */
size_t mf_lstm_scratch_floats(const mf_lstm_dims_t *d);

/* As mf_lstm_loglik with caller scratch (mf_lstm_scratch_floats floats): allocates nothing.
 * *out gets the mean log-likelihood. MF_OK, or MF_EINVAL when an id is outside 0..nvocab-1. */
int mf_lstm_loglik_r(const mf_lstm_t *m, const int32_t *seq, size_t n, float *scratch,
                     double *out);

/* Mean per-call natural-log likelihood of `seq` (n ids, each < nvocab) under the model,
 * state starting at zero. Reentrant: the model is read-only. n < 2 gives 0. Allocates its
 * scratch per call: NAN on allocation failure or an id outside 0..nvocab-1. */
double mf_lstm_loglik(const mf_lstm_t *m, const int32_t *seq, size_t n);

#endif
