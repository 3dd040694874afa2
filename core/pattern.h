/* pattern.h - a family's representative pattern, (re)generated from its LSTM: the one
 * generator with its cycle-breaking and stop rules, on top of lstm.h's single step and
 * sampler (which training's mf_lstm_generate uses too).
 *
 * Regenerating with the model's own settings (mf_gen_opts_from_model) from the network the
 * stored pattern came from replays training's draw: the stored patterns come back id for id.
 * Other settings or seeds measure how much a pattern depends on its draw (malfam eval --seeds).
 */
#ifndef MF_PATTERN_H
#define MF_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#include "lstm.h"
#include "model.h"

/* How patterns are (re)generated from a family LSTM. Caller-embedded, plain values. */
typedef struct mf_gen_opts {
    size_t len;       /* calls generated (before the stop rule) */
    float temp;       /* softmax temperature; 0 = greedy */
    float top_p;      /* nucleus: sample among the most likely calls holding this mass (1 = all) */
    int start;        /* start token; < 0: the first call of the family's current pattern */
    int no_repeat;    /* > 1: never repeat an n-gram of this order (0 = off) */
    int restart;      /* > 0: restart from `start` after this many calls without a new API */
    int segment;      /* > 0: restart from `start` every this many calls (0 = one trace) */
    int min_count;    /* > 1: then drop the calls emitted fewer than this many times */
    uint64_t seed;    /* the run seed: each family's RNG is the one training with this seed
                         samples its pattern with (mf_train_pattern_rng) */
    int max_distinct; /* stop rule: > 0 cut before the call that would exceed this many
                         distinct APIs; < 0 per family the median distinct APIs of its
                         references (a pattern as rich as a typical trace); 0 none */
} mf_gen_opts_t;

/* The settings training sampled m's patterns with: len gen_len, temp gen_temp, seed, start
 * -1 (the stored pattern's first call), top_p 1 and no rule. mf_pattern_regen with them gives
 * the stored patterns back. */
void mf_gen_opts_from_model(const mf_model_t *m, mf_gen_opts_t *g);

/* Generate `len` ids from `net` into out: out[0] = start, then each next id from
 * mf_lstm_step and mf_lstm_sample (greedy at temp 0, else softmax(logits/temp) cut to the
 * top_p nucleus) given all before it. With top_p >= 1 and no rule this is mf_lstm_generate
 * bit for bit, draw for draw.
 * no_repeat > 1: a call that would repeat an n-gram of that order already in the output is
 * never drawn (cycle breaking; when every call would, none is banned). restart > 0: when the
 * last `restart` calls brought no API new to the output, the state is reset and the next
 * call is predicted from `start` (a new trace begins). segment > 0: the same every `segment`
 * calls, so the output is a run of independently generated traces of that length.
 * MF_OK, MF_EINVAL (start outside the vocabulary, len 0, temp < 0, top_p <= 0), MF_ENOMEM. */
int mf_pattern_generate(const mf_lstm_t *net, int start, size_t len, float temp, float top_p,
                        int no_repeat, int restart, int segment, uint64_t *rng, int32_t *out);

/* Replace the pattern of every family that has an LSTM by one generated with options g,
 * sampled from the network the stored pattern came from: the family's gen_lstm (gen_epoch
 * snapshot) when it has one, else its lstm. Each family's RNG is mf_train_pattern_rng's for
 * m->opts with g->seed, so one seed gives the same patterns in any process, and the model's
 * own settings replay training. Then the stop rule (max_distinct) and min_count apply.
 * Families without an LSTM keep their pattern. MF_OK, MF_EINVAL (bad options, start outside
 * the vocabulary, a network shape in m->opts that mf_lstm_dims_check refuses), MF_ENOMEM
 * (patterns replaced so far stay). */
int mf_pattern_regen(mf_model_t *m, const mf_gen_opts_t *g);

#endif
