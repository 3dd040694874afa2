/* train.h - training a whole model: one LSTM language model per family, its generated
 * representative pattern, and the training traces kept as references.
 */
#ifndef MF_TRAIN_H
#define MF_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "lstm.h"
#include "mf.h"

typedef struct mf_model mf_model_t; /* model.h; it includes this header for mf_train_opts_t */
typedef struct mf_family mf_family_t;

/* ---- training options ----------------------------------------------------------------------
 * Training and generation settings, stored in the model file. One list makes the struct, the
 * defaults, the check and the file's OPTS section (model.c), in this order, which is the
 * file's: X(type, io, name, default, ok, message, optional, absent)
 *   type     the C type of the field
 *   io       how the file stores it: i32, f32 or u64 (little-endian)
 *   default  mf_train_opts_default's value
 *   ok       an expression in `v` (the value) that mf_train_opts_check requires
 *   message  mf_train_opts_check's detail when `ok` fails
 *   optional 1 when files written before the field existed end before it: they load with
 *            `absent`; 0 when every file has it (a file ending before it is truncated). Only
 *            trailing fields may be optional, and new fields go at the end. */
#define MF_TRAIN_OPTS(X) \
    X(int, i32, nembed, 32, v >= 1 && v <= MF_LSTM_MAX_DIM, "embed must be in 1..4096", \
      0, 0) \
    X(int, i32, nhidden, 128, v >= 1 && v <= MF_LSTM_MAX_DIM, "hidden must be in 1..4096", \
      0, 0) \
    X(int, i32, ndense, 64, v >= 1 && v <= MF_LSTM_MAX_DIM, "dense must be in 1..4096", \
      0, 0) \
    /* truncated-BPTT window */ \
    X(int, i32, bptt, 32, v >= 1 && v <= MF_LSTM_MAX_DIM, "bptt must be in 1..4096", \
      0, 0) \
    /* parallel streams over the concatenated sequence */ \
    X(int, i32, batch, 16, v >= 1 && v <= MF_LSTM_MAX_DIM, "batch must be in 1..4096", \
      0, 0) \
    X(int, i32, epochs, 20, v >= 0 && v <= 100000, "epochs must be in 0..100000", \
      0, 0) \
    X(float, f32, lr, 3e-3f, v > 0.0f && v < 10.0f, "lr must be in (0, 10)", 0, 0) \
    X(float, f32, clip, 5.0f, v >= 0.0f && v < 1e9f, "clip must be >= 0 (0 = off)", \
      0, 0) \
    X(uint64_t, u64, seed, 11, 1, "", 0, 0) \
    /* representative pattern length */ \
    X(int, i32, gen_len, 2000, v >= 1 && v <= 1000000, "pattern length must be in 1..1000000", \
      0, 0) \
    /* sampling temperature, 0 = greedy */ \
    X(float, f32, gen_temp, 1.0f, v >= 0.0f && v <= 100.0f, \
      "temperature must be in 0..100 (0 = greedy)", 0, 0) \
    /* start token id, -1 = the family's most frequent first call */ \
    X(int, i32, gen_start, -1, v >= -1 && v < MF_MAX_VOCAB, \
      "start token must be -1 or a vocabulary id", 0, 0) \
    /* the pattern is generated when this epoch completes (an earlier snapshot memorises its \
     * traces less); 0 or >= epochs = after the last. Default 3: 3-fold CV on the train \
     * split, see README "Scoring and evaluation". Files written before it: 0. */ \
    X(int, i32, gen_epoch, 3, v >= 0 && v <= 100000, \
      "pattern epoch must be in 0..100000 (0 = after the last epoch)", 1, 0)

#define MF_TRAIN_OPTS_FIELD_(type, io, name, dflt, ok, msg, optional, absent) type name;
typedef struct mf_train_opts {
    MF_TRAIN_OPTS(MF_TRAIN_OPTS_FIELD_)
} mf_train_opts_t;
#undef MF_TRAIN_OPTS_FIELD_

/* Fill o with the defaults of MF_TRAIN_OPTS (hidden 128, 20 epochs, seed 11, ...). */
void mf_train_opts_default(mf_train_opts_t *o);

/* MF_OK when every field satisfies its `ok` in MF_TRAIN_OPTS, else MF_EINVAL with the first
 * failing field's message in msg (msg may be NULL; "" when all are fine). */
int mf_train_opts_check(const mf_train_opts_t *o, char *msg, size_t msglen);

typedef struct mf_train_cfg {
    int threads;      /* families trained at once, one per thread; 0 = one per online CPU */
    const char *only; /* train only the family of this label (NULL = every label) */
    int split;        /* samples used: MF_SPLIT_TRAIN (Mal-API) or MF_SPLIT_ANY (reports) */
    const unsigned char *here; /* NULL, or per dataset label: 1 = train its network in this
                                  call, 0 = only make its family slot and references and set
                                  its tokens and entropy; another process trains it and
                                  mf_train_family_unpack installs the result (MPI training) */
    mf_log_fn log;    /* progress (per family: epoch, loss, tokens/s, ETA); may be NULL.
                         Calls are serialised, never concurrent. */
    void *ud;
} mf_train_cfg_t;

void mf_train_cfg_default(mf_train_cfg_t *c); /* all CPUs, every label, train split */

/* Train families of `m` from the `cfg->split` samples of `ds`, with m->opts (checked first).
 * m->vocab must be the vocabulary the dataset ids come from. Every dataset label with
 * samples becomes (or replaces) a family of that name; other families of m are left as they
 * are, so adding a family to a trained model trains only that family. For each trained
 * family: the concatenated traces train a fresh network (weights from opts.seed and the family
 * name, so results do not depend on thread scheduling), then `tokens`, `loss` (last epoch's
 * mean cross-entropy), `entropy` (unigram entropy of its calls) and `pattern` (opts.gen_*) are
 * set, `gen_lstm` is a copy of the network when epoch opts.gen_epoch completed if that is
 * before the last epoch (the pattern was sampled from it; else NULL: from `lstm`), and its
 * samples replace its references in m->refs. Sets the BLAS library to one thread. MF_OK,
 * MF_EINVAL (bad options, unknown `only`, no samples; detail in err), MF_ENOMEM (m keeps its
 * previous families for those not yet replaced). */
int mf_train_model(mf_model_t *m, const mf_dataset_t *ds, const mf_train_cfg_t *cfg, char *err,
                   size_t errlen);

/* A trained family (network, pattern snapshot, pattern, tokens, loss, entropy) as bytes in
 * this machine's byte order, to hand to another process of the same build. *buf is malloc'd
 * (the caller frees it). MF_OK or MF_ENOMEM. */
int mf_train_family_pack(const mf_family_t *f, uint8_t **buf, size_t *len);

/* Install a packed family into the family of m of the same name (which must exist, as
 * mf_train_model with cfg->here made it), replacing its network, snapshot, pattern and
 * counters; the model then is as if this process had trained it. MF_OK, MF_EFORMAT (bytes not
 * from mf_train_family_pack, dimensions or ids that do not fit m; detail in err), MF_ENOENT
 * (no such family), MF_ENOMEM. */
int mf_train_family_unpack(mf_model_t *m, const uint8_t *buf, size_t len, char *err,
                           size_t errlen);

/* The state of the RNG family `name`'s pattern is sampled with by mf_train_model under options
 * o (seed, network shape) and a vocabulary of nvocab ids: mf__family_seed(o->seed, name),
 * advanced past the weight initialisation. Training draws nothing else from it, so sampling
 * the network the pattern came from (gen_lstm, or lstm when the pattern is the last epoch's)
 * with mf_lstm_generate(net, pattern.ids[0], gen_len, gen_temp, &rng, out), or
 * mf_pattern_regen with mf_gen_opts_from_model, gives the stored pattern back.
 * MF_OK, MF_EINVAL (bad shape), MF_ENOMEM. */
int mf_train_pattern_rng(const mf_train_opts_t *o, const char *name, int nvocab, uint64_t *rng);

/* Unigram entropy, in nats per call, of the ids in `n` traces (ids < nvocab). */
double mf_unigram_entropy(const mf_trace_t *const *t, size_t n, int nvocab);

#endif
