/* cli.h - what the `malfam` sub-commands share: one file per command (extract.c, train.c,
 * patterns.c, score.c, eval.c, client.c), the dispatcher and cli_error in main.c, and the
 * model/dataset source of `eval` and `score` in source.c. */
#ifndef MF_CLI_H
#define MF_CLI_H

#include "dataset.h"
#include "model.h"
#include "score.h"
#include "vocab.h"

#define CMD(name, summary) int cli_##name(int argc, char **argv);
#include "commands.h"
#undef CMD

/* "malfam: <what>: <mf_strerror(rc)>[: <detail>]" on stderr. */
void cli_error(const char *what, int rc, const char *detail);

/* Monotonic clock in seconds, for the timings commands print. */
double cli_now(void);

/* ---- source.c: where the model and the samples come from (eval, score) --------------------- */

#define CLI_NOPT 13 /* scoring options settable by flags (--ngram-n ... --lin-nov) */

typedef struct cli_src {
    const char *model, *calls, *index, *api_index, *reports;
    int split;            /* samples to evaluate */
    mf_score_opts_t o;
    int o_set[CLI_NOPT];  /* which options came from flags */
    double fu_rate;
    long max_len;         /* --max-len N: without --model, calls kept per trace (0 = all) */
    int max_len_set;      /* else the in-memory model keeps 1000, as `malfam train` */
    mf_model_t *m;
    mf_vocab_t *vocab;    /* the one samples are read with (the model's when it has one) */
    mf_dataset_t ds;
    int model_only; /* score: a --model is enough, no labelled samples needed */
} cli_src_t;

/* Consume a shared flag at argv[*i] (--model --calls --index --api-index --reports, the
 * scoring options, --fu-rate), advancing *i past its value; 1 = taken, 0 = not ours,
 * -1 = bad or missing value. The caller zeroes s, sets its defaults, then calls this. */
int cli_src_flag(cli_src_t *s, int argc, char **argv, int *i);

/* Load the model (or build one in memory from the train split) and the samples, apply the
 * option flags and recalibrate if they changed. Prints its own errors; returns 0 or the exit
 * status to use. Call cli_src_destroy afterwards in both cases. */
int cli_src_open(cli_src_t *s);

/* Free what cli_src_open loaded; s itself is the caller's. */
void cli_src_destroy(cli_src_t *s);

#endif
