/* cli.h - what the `malfam` sub-commands share: one file per command (extract.c, train.c,
 * patterns.c, score.c, eval.c, client.c), the dispatcher and cli_error in main.c, the
 * model/dataset source of `eval` and `score` in source.c, and the sandbox store walker of
 * `train --store` and `label --store` in store.c. */
#ifndef MF_CLI_H
#define MF_CLI_H

#include "dataset.h"
#include "model.h"
#include "score.h"
#include "vocab.h"

#define CMD(name, summary) int cli_##name(int argc, char **argv);
#include "commands.h"
#undef CMD

/* The --mode names every --help lists (core/score.c's order; the help test in
 * tests/integration/cli_ops.sh checks each mf_score_mode_name() appears). */
#define CLI_MODE_NAMES "paper likelihood multiset ngram nn knn combo fusion linear"

/* "malfam: <what>: <mf_strerror(rc)>[: <detail>]" on stderr. */
void cli_error(const char *what, int rc, const char *detail);
/* Load a model for a command: 0, or the command's exit status (1 out of memory, 2 a bad or
 * missing file) after saying why on stderr. */
int cli_load_model(const char *path, mf_model_t **m);

/* Monotonic clock in seconds, for the timings commands print. */
double cli_now(void);

/* ---- source.c: where the model and the samples come from (eval, score) --------------------- */

#define CLI_NOPT 15 /* scoring options settable by flags (--ngram-n ... --lin-tf) */

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
    int one_mode;   /* 1 + the one mode the command scores in (a recalibration for changed
                     * options then does that mode alone), 0 = every mode */
} cli_src_t;

/* Consume a shared flag at argv[*i] (--model --calls --index --api-index --reports, the
 * scoring options, --fu-rate), advancing *i past its value; 1 = taken, 0 = not ours,
 * -1 = bad or missing value. The caller zeroes s, sets its defaults, then calls this. */
int cli_src_flag(cli_src_t *s, int argc, char **argv, int *i);

/* A scoring option flag a (--ngram-n ... --lin-tf) with value v into o, set[k] marking it
 * given: 1 = taken, 0 = not a scoring option, -1 = not an integer. `malfam train` stores what
 * it takes in the model (malfamd serves the model's options). */
int cli_score_flag(mf_score_opts_t *o, int *set, const char *a, const char *v);

/* The options marked in set (cli_score_flag) from src into dst. */
void cli_score_apply(mf_score_opts_t *dst, const mf_score_opts_t *src, const int *set);

/* Load the model (or build one in memory from the train split) and the samples, apply the
 * option flags and recalibrate if they changed. Prints its own errors; returns 0 or the exit
 * status to use. Call cli_src_destroy afterwards in both cases. */
int cli_src_open(cli_src_t *s);

/* Free what cli_src_open loaded; s itself is the caller's. */
void cli_src_destroy(cli_src_t *s);

/* ---- store.c: a Cuckoo/CAPE store (train --store, label --store) -------------------------- */

typedef struct cli_store_item {
    long task;  /* the analysis folder's number */
    char *path; /* its reports/report.json, else reports/report.json.gz */
} cli_store_item_t;

typedef struct cli_store {
    char analyses[4096];     /* the folder walked */
    cli_store_item_t *items; /* ascending task number */
    size_t n;
    size_t noreport;         /* numbered folders without a report */
} cli_store_t;

/* The one walker: list the reports of a store. `dir` is a Cuckoo working directory or CAPE
 * root (DIR/storage/analyses), a storage folder (DIR/analyses) or the analyses folder itself.
 * Numbered folders only (opendir/readdir: no globbing, no argument limits), so `latest` and
 * other names are skipped; sorted by task number. MF_OK, MF_EIO (detail in err), MF_ENOMEM.
 * Free with cli_store_free (also after an error). */
int cli_store_list(cli_store_t *s, const char *dir, char *err, size_t errlen);
void cli_store_free(cli_store_t *s);

/* Progress of a long run on stderr: on a terminal one line redrawn (bar, count, failures,
 * elapsed, ETA) at most 5 times a second; otherwise a line every CLI_PROGRESS_EVERY items.
 * Nothing with `quiet` or fewer than 2 items. */
#define CLI_PROGRESS_EVERY 1000
typedef struct cli_progress {
    const char *what;
    size_t total;
    double t0, last;
    int tty, quiet, drawn;
} cli_progress_t;
void cli_progress_start(cli_progress_t *p, const char *what, size_t total, int quiet);
void cli_progress_step(cli_progress_t *p, size_t done, size_t failed);
/* End a half-drawn line before printing something else on stderr. */
void cli_progress_break(cli_progress_t *p);
/* A duration for progress lines: "42 s", "12m05s", "3.5 h". */
void cli_fmt_secs(char *buf, size_t len, double s);

/* train --store: read every report of the store `dir` once (its trace through m->prep and its
 * label fields), label it from `labels` (cape, cuckoo, avclass:FILE, csv:FILE), print the
 * coverage table on stdout, drop the families with fewer than `min_samples` reports and add
 * the rest to ds in task order. With `grow` (a new model) m->vocab gets the names of the kept
 * traces only, as --reports would add them; else unknown calls are dropped and counted in
 * *unknown. Bad reports are skipped and counted. Returns 0 or the exit status to use (the
 * error printed). */
int cli_store_dataset(const char *dir, const char *labels, int min_samples, int quiet,
                      mf_model_t *m, int grow, mf_dataset_t *ds, size_t *unknown);

#endif
