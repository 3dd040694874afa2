/* train.h - training a whole model: one LSTM language model per family, its generated
 * representative pattern, and the training traces kept as references.
 */
#ifndef MF_TRAIN_H
#define MF_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "mf.h"
#include "model.h"

typedef struct mf_train_cfg {
    int threads;      /* families trained at once, one per thread; 0 = one per online CPU */
    const char *only; /* train only the family of this label (NULL = every label) */
    int split;        /* samples used: MF_SPLIT_TRAIN (Mal-API) or MF_SPLIT_ANY (reports) */
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

/* The state of the RNG family `name`'s pattern is sampled with by mf_train_model under options
 * o (seed, network shape) and a vocabulary of nvocab ids: the run's seed mixed with the name,
 * advanced past the weight initialisation. Training draws nothing from it, so sampling the
 * network the pattern came from (gen_lstm, or lstm when the pattern is the last epoch's) with
 * mf_lstm_generate(net, pattern.ids[0], gen_len, gen_temp, &rng, out) gives the stored
 * pattern back. MF_OK, MF_EINVAL (bad shape), MF_ENOMEM. */
int mf_train_pattern_rng(const mf_train_opts_t *o, const char *name, int nvocab, uint64_t *rng);

/* Unigram entropy, in nats per call, of the ids in `n` traces (ids < nvocab). */
double mf_unigram_entropy(const mf_trace_t *const *t, size_t n, int nvocab);

#endif
