/* dataset.h - labelled traces for training and evaluation.
 *
 * Two sources give the same samples: the Mal-API-2019 files (calls.txt.gz + index.csv, ids as
 * in ApiIndex.txt) and real reports streamed through the extractor, from a list
 * (`report_path,family` lines) or one by one (mf_dataset_read_report + mf_dataset_add, as
 * `malfam train --store` labels a sandbox's store). Training and evaluation code sees only
 * mf_dataset_t.
 */
#ifndef MF_DATASET_H
#define MF_DATASET_H

#include <stddef.h>

#include "trace.h"
#include "vocab.h"

enum { MF_SPLIT_ANY = 0, MF_SPLIT_TRAIN = 1, MF_SPLIT_TEST = 2 };

typedef struct mf_sample {
    mf_trace_t trace;
    int label; /* index into mf_dataset_t.labels */
    int split; /* MF_SPLIT_TRAIN or MF_SPLIT_TEST (MF_SPLIT_ANY for report lists) */
    int row;   /* line number in the source (0-based) */
} mf_sample_t;

typedef struct mf_dataset {
    mf_sample_t *samples;
    size_t n, cap;
    char **labels; /* label names, first-seen order */
    int nlabels;
} mf_dataset_t;

void mf_dataset_init(mf_dataset_t *ds);
void mf_dataset_destroy(mf_dataset_t *ds);

/* Index of label `name`, adding it when new. >= 0, or MF_ENOMEM / MF_ELIMIT. */
int mf_dataset_label(mf_dataset_t *ds, const char *name);

/* Load the samples of `split` (MF_SPLIT_ANY = all) from Mal-API files. Traces never hold
 * MF_UNK: an id the vocabulary does not name is dropped and counted in *unknown (may be
 * NULL). Errors: MF_EIO, MF_EFORMAT (with "file:line" in err),
 * MF_ENOMEM. */
int mf_dataset_load_malapi(mf_dataset_t *ds, const char *calls_gz, const char *index_csv,
                           const mf_vocab_t *vocab, int split, const mf_prep_t *prep,
                           size_t *unknown, char *err, size_t errlen);

/* Load every `report_path,family` line of `list_csv` (relative paths are relative to the
 * list's directory; '#' lines, blank lines and a first line naming the columns, such as
 * "report_path,family", are skipped; blanks around either field are trimmed). The vocabulary
 * grows when `grow_vocab`, else unknown names are dropped and counted. A report that cannot
 * be read stops the load (its error, with the report path in err) unless `skipped` is not
 * NULL: then it is left out and counted there, and err names the first one while the load
 * goes on (MF_OK). Errors as above plus the extractor's. */
int mf_dataset_load_reports(mf_dataset_t *ds, const char *list_csv, mf_vocab_t *vocab,
                            int grow_vocab, const mf_prep_t *prep, size_t *unknown,
                            size_t *skipped, char *err, size_t errlen);

/* The same, reading only the reports of one shard: report lines are numbered from 0 in list
 * order and shard `shard` of `nshards` reads those with number % nshards == shard (the others
 * are still parsed, so format errors stop every shard, and their labels are still added: the
 * labels are those of the whole list, in the same order). Samples keep their list line in
 * `row`, so the shards' samples in row order, added with mf_dataset_add into one vocabulary,
 * give what mf_dataset_load_reports gives (MPI ranks reading a list together). MF_EINVAL when
 * not 0 <= shard < nshards. */
int mf_dataset_load_reports_shard(mf_dataset_t *ds, const char *list_csv, mf_vocab_t *vocab,
                                  int grow_vocab, const mf_prep_t *prep, size_t *unknown,
                                  size_t *skipped, int shard, int nshards, char *err,
                                  size_t errlen);

/* Remove the samples of every label with fewer than `min_samples` samples, or whose samples
 * hold no call at all (a family nothing can be learnt from). Labels keep their index; a label
 * left without samples trains no family. dropped[l] (nlabels entries, written) says which
 * were removed; nsamples[l] (may be NULL) gets each label's sample count before the drop.
 * Returns how many labels, or MF_ENOMEM (nothing removed). */
int mf_dataset_drop_labels(mf_dataset_t *ds, size_t min_samples, unsigned char *dropped,
                           size_t *nsamples);

/* Read one report file into `t` (appended to) through `prep`, the way both loaders of real
 * reports read it, and when `meta` is not NULL its label fields too, in the same single pass
 * (mf_extract_opts_t.want_meta). The vocabulary grows when `grow_vocab`, else unknown names
 * are dropped and added to *unknown (may be NULL). Errors: the extractor's (MF_EIO, MF_EJSON,
 * MF_ETYPE, MF_ELIMIT, MF_EFORMAT, MF_ENOMEM) with the detail (or strerror) in err. */
int mf_dataset_read_report(const char *path, mf_vocab_t *vocab, int grow_vocab,
                           const mf_prep_t *prep, mf_trace_t *t, mf_report_meta_t *meta,
                           size_t *unknown, char *err, size_t errlen);

/* Add a sample labelled `family` (split MF_SPLIT_ANY, row `row`) that takes over trace `t`:
 * t is left empty, whatever the result. Its ids name calls in `from`; when `to` is another
 * vocabulary they are renumbered into `to`, names new to it added in trace order: adding
 * traces read with a scratch vocabulary gives the ids and vocabulary that reading the same
 * reports in the same order with mf_dataset_load_reports(grow_vocab) into `to` gives.
 * MF_OK, MF_ENOMEM, MF_ELIMIT (MF_MAX_FAMILIES labels, or `to` is full). */
int mf_dataset_add(mf_dataset_t *ds, const char *family, mf_trace_t *t, int row,
                   const mf_vocab_t *from, mf_vocab_t *to);

#endif
