/* model.h - a trained malfam model: vocabulary, per-family networks and patterns, training
 * references, calibration, settings. Loaded once, then read-only (share it across threads).
 */
#ifndef MF_MODEL_H
#define MF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "linear.h"
#include "lstm.h"
#include "trace.h"
#include "train.h" /* mf_train_opts_t */
#include "vocab.h"

typedef struct mf_family {
    char *name;
    mf_lstm_t *lstm;      /* the family language model (NULL if absent) */
    mf_lstm_t *gen_lstm;  /* network the pattern was sampled from, when it is not `lstm` (the
                             gen_epoch snapshot: same shape, earlier epoch); NULL otherwise,
                             and in files written before snapshots were stored */
    mf_trace_t pattern;   /* its generated representative API-call pattern */
    size_t tokens;        /* training tokens */
    double loss;          /* final mean training cross-entropy, nats/call */
    double entropy;       /* unigram entropy of its training calls, nats/call */
} mf_family_t;

/* Linear's novelty index (file section NOVI): what a linear-only scorer needs to compare a
 * trace with the prototypes alone (nov_protos) without building every reference's key sets:
 * combo's two idf tables over the kept references and the prototypes. Derived from REFS and
 * the score options; a scorer uses it only when it matches them (refs_crc, combo_hi, np,
 * nkept) and the classifier is the model's own. */
typedef struct mf_model_nov {
    uint32_t refs_crc;   /* mf_model_refs_crc of the references it was built from */
    int combo_hi;        /* combo's highest n-gram order (the second table's keys) */
    int np;              /* prototypes per family in effect (nov_protos resolved) */
    size_t nkept;        /* kept references the idf is over */
    size_t *proto;       /* nproto reference indices, ascending */
    size_t nproto;
    struct {
        uint64_t *dk;    /* nd keys, ascending */
        float *dw;       /* their idf */
        size_t nd;
        float unseen;    /* the weight of a key no reference has */
        /* the file's NOVK section, or NULL: the prototypes holding table key dk[t] are
         * pos[off[t]..off[t + 1]) (positions in proto, ascending), the inverted index a
         * linear scorer queries; its prototype key sets are read from it too */
        uint32_t *off;   /* nd + 1 */
        uint32_t *pos;
    } view[2];           /* combo's views: APIs alone, then orders 1..combo_hi */
} mf_model_nov_t;

/* A named number: calibration thresholds and other settings of scoring modes. */
typedef struct mf_model_param {
    char name[48];
    double value;
} mf_model_param_t;

typedef struct mf_model {
    char version[32];      /* model id printed in answers (hex of the file checksum) */
    mf_vocab_t *vocab;
    mf_train_opts_t opts;
    mf_prep_t prep;        /* preprocessing used for training; apply it before scoring */
    mf_family_t *fam;
    int nfam;
    mf_trace_t *refs;      /* preprocessed training traces (for nearest-neighbour modes);
                              NULL when loaded without MF_LOAD_REFS (then ref_api) */
    int *ref_label;        /* their family index (always loaded) */
    size_t nrefs;
    uint64_t *ref_api;     /* loaded without MF_LOAD_REFS: each reference's API set in place of
                              its trace, nrefs x mf_bits_words(vocabulary size) words (what
                              nn and a linear scorer off the NOVK index read); else NULL */
    uint32_t ref_crc;      /* with ref_api: mf_model_refs_crc of the references not read */
    mf_model_param_t *params;
    int nparams;
    mf_linear_t *lin;      /* linear's classifier fitted on all refs with the model's score
                              options (mf_score_calibrate sets it; the file's LINR section), or
                              NULL: scorers then fit their own. Whoever changes refs must
                              recalibrate or free it */
    mf_model_nov_t *nov;   /* the file's NOVI section when it matched REFS at load, else NULL;
                              mf_model_save writes a fresh one (mf__nov_build) */
} mf_model_t;

#define MF_MAX_FAMILY_NAME 255 /* bytes in a family name */
#define MF_MAX_PARAMS 4096      /* named parameters in one model */

/* An empty model: no vocabulary, no families, default options and preprocessing (fold
 * repeats, first MF_PREP_MAX_LEN calls). NULL on ENOMEM. mf_model_free frees everything it holds,
 * vocabulary included; NULL is a no-op. */
mf_model_t *mf_model_new(void);
void mf_model_free(mf_model_t *m);

/* Index of family `name`, or MF_ENOENT. */
int mf_model_find_family(const mf_model_t *m, const char *name);

/* Index of family `name`, appending an empty one (no network, empty pattern) when new.
 * MF_EINVAL (empty or longer than MF_MAX_FAMILY_NAME), MF_ELIMIT, MF_ENOMEM. Pointers into
 * m->fam are invalidated when a family is appended. */
int mf_model_add_family(mf_model_t *m, const char *name);

/* One versioned binary file (magic, version, sections, checksum; layout in model.c). Loading
 * takes only a regular file, checks the header (magic, version, size) and the section sizes
 * against the file size before reading the payload, then parses it a section at a time (each
 * through a 1 MB window, checksummed again as read) and rejects a corrupt, truncated or
 * foreign file with MF_EFORMAT
 * / MF_ECHECKSUM / MF_EVERSION (MF_EIO when it cannot be read), detail in err ("path: ...").
 * Saving writes PATH.tmp.PID then renames it over PATH; both set m->version to the hex of the
 * file's CRC-32. */
int mf_model_load(mf_model_t **out, const char *path, char *err, size_t errlen);

/* mf_model_load with flags: MF_LOAD_NETS | MF_LOAD_REFS reads everything (= mf_model_load).
 * Without MF_LOAD_NETS the
 * families' network weights are skipped: each lstm keeps its shape with w NULL and the
 * pattern snapshots (gen_lstm) stay NULL, so a process serving no LSTM mode does not hold
 * them (0.5 MB per family at the default size). mf_model_read_nets reads them when needed;
 * until then the likelihood and fusion modes are unavailable and the model cannot be saved. */
#define MF_LOAD_NETS 1
/* Without MF_LOAD_REFS the reference traces are not kept: refs stays NULL, nrefs, ref_label
 * and each reference's API set (ref_api) are kept (78 -> 2.3 MiB at 500 x 50,000), so a
 * process serving linear off the file's novelty index (mf_score_needs_refs 0) does not hold
 * them. A file without the NOVK section keeps them anyway (nothing but nn could do without).
 * mf_model_read_refs reads them when needed; until then scorers that need them fail and the
 * model cannot be saved. */
#define MF_LOAD_REFS 2
/* With MF_LOAD_MAP the linear weights (LINR, most of a large model), when the file places them
 * on a page boundary (files of this version do), stay a read-only mapping of the file instead
 * of a copy: a process holds only the pages it reads, shared with the page cache, and a second
 * model loaded beside it (a reload) adds no second copy. Only for a caller that keeps the file
 * from being rewritten in place while it is loaded (malfamd holds a read lease and copies the
 * weights when one is broken): a mapped page truncated away faults the process (SIGBUS).
 * mf_model_load copies them. */
#define MF_LOAD_MAP 4
int mf_model_load_ex(mf_model_t **out, const char *path, int flags, char *err, size_t errlen);
/* The id a load of `path` would give (m->version: the hex of the CRC-32 the file ends with),
 * read from the file's last bytes after the checks that need no payload (header, size,
 * section chain); the payload is not checksummed, so a corrupt file still fails its load.
 * For comparing a file with the model a daemon serves. MF_OK, or a load's error. */
int mf_model_file_id(const char *path, char *id, size_t idlen, char *err, size_t errlen);
/* 1 when every family's network is in memory (always, after mf_model_load). */
int mf_model_has_nets(const mf_model_t *m);
/* The networks a load without MF_LOAD_NETS skipped, read from `path` again with every check
 * of a load; the file must still be the one loaded (same id), else MF_ECHECKSUM ("reload").
 * MF_OK (also when nothing was skipped) or the loader's error with detail in err. Not safe
 * while another thread uses m's networks. */
int mf_model_read_nets(mf_model_t *m, const char *path, char *err, size_t errlen);
/* 1 when the reference traces are in memory (always, after mf_model_load), or there are none. */
int mf_model_has_refs(const mf_model_t *m);
/* The traces a load without MF_LOAD_REFS skipped, read as mf_model_read_nets reads the
 * networks (the file must still be the one loaded, else MF_ECHECKSUM "reload"); frees
 * ref_api. MF_OK (also when nothing was skipped) or the loader's error. Not safe while
 * another thread reads m->refs or builds a scorer on m. */
int mf_model_read_refs(mf_model_t *m, const char *path, char *err, size_t errlen);
int mf_model_save(mf_model_t *m, const char *path, char *err, size_t errlen);
/* The bytes mf_model_save would write, into *out (malloc'ed, *len bytes; the caller frees
 * it), for a program that sends a model rather than store it (the CLI's MPI ranks); `path`
 * only heads error messages (nothing is written). Same errors as mf_model_save but MF_EIO. */
int mf_model_encode(mf_model_t *m, const char *path, uint8_t **out, size_t *len, char *err,
                    size_t errlen);

/* CRC-32 of the references as the file's REFS section holds them (u64 nrefs, then per
 * reference i32 family, u64 n, i32 ids), computed from memory. */
uint32_t mf_model_refs_crc(const mf_model_t *m);
void mf_model_nov_free(mf_model_nov_t *nov); /* NULL is a no-op */

/* Named parameters (e.g. "unknown.knn"): get with a default, set adds or replaces. */
double mf_model_param(const mf_model_t *m, const char *name, double dflt);
int mf_model_set_param(mf_model_t *m, const char *name, double value);

#endif
