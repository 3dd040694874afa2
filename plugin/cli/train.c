/* train.c - `malfam train`: build a model, or extend one with a family (--add-family). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blas.h"
#include "cli.h"
#include "dataset.h"
#include "json.h"
#include "model.h"
#include "mpi.h"
#include "score.h"
#include "train.h"
#include "vocab.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: malfam train --calls FILE --index FILE --api-index FILE [--split train|all]\n"
            "                    --out MODEL [OPTIONS]\n"
            "       malfam train --reports LIST.csv [--skip-bad] --out MODEL [OPTIONS]\n"
            "       malfam train --store DIR --labels SOURCE [--min-samples N] [--dry-run]\n"
            "                    --out MODEL [OPTIONS]\n"
            "       malfam train --model OLD --add-family NAME (--calls ... | --reports ... |\n"
            "                    --store ...) --out MODEL [OPTIONS]\n"
            "\n"
            "Trains one LSTM language model per family on its concatenated training traces,\n"
            "generates each family's representative pattern, keeps the traces as references and\n"
            "calibrates the unknown thresholds. LIST.csv lines are report_path,family.\n"
            "With --model, only family NAME is (re)trained; the others are kept as they are.\n"
            "\n"
            "--store DIR  a Cuckoo/CAPE store: DIR/storage/analyses/<n>/reports/report.json[.gz]\n"
            "             (DIR may also be the storage or the analyses folder), task order;\n"
            "             each report is read once; unreadable or bad ones are skipped, counted\n"
            "--labels SOURCE  where each report's family comes from:\n"
            "    cape          top-level detections (list: the first entry's family; a string:\n"
            "                  CAPE 2.2), by malfamily_tag or the details' source\n"
            "    cuckoo        signatures[].families: the family most signatures name (a tie\n"
            "                  is a conflict: not used)\n"
            "    avclass:FILE  AVClass/AVClass2 output, hash<TAB>family[<TAB>...], matched by\n"
            "                  target.file sha256 or md5; SINGLETON: families are unlabelled\n"
            "    csv:FILE      key,family lines; key: task id (the analysis folder), sha256, md5\n"
            "  Family names: whitespace trimmed, ASCII lower-cased (QakBot = qakbot). Keys that\n"
            "  give one report two families are conflicting and not used.\n"
            "--min-samples N [1; 2 with --store]  families with fewer samples are dropped, by\n"
            "             name; so is a family without a single call, whatever N\n"
            "--skip-bad   with --reports: unreadable or bad reports are left out and counted\n"
            "             instead of stopping the run\n"
            "--dry-run    print the label coverage table and stop (no --out needed)\n"
            "\n"
            "options (defaults in brackets):\n"
            "  --epochs N [20]   --hidden N [128]  --embed N [32]   --dense N [64]\n"
            "  --bptt N [32]     --batch N [16]    --lr X [0.003]   --clip X [5, 0 = off]\n"
            "  --seed N [11]     --gen-len N [2000] --temp X [1, 0 = greedy]\n"
            "  --start ID [-1 = the family's most frequent first call]\n"
            "  --gen-epoch N [3] the pattern is sampled when epoch N completes (less memorised);\n"
            "                    the network keeps training to --epochs for likelihood\n"
            "                    [0 = after the last epoch]\n"
            "  --max-len N [5000, 0 = all] calls kept per trace   --no-fold  keep repeated calls\n"
            "  --unknown-rate X [0.05] false-unknown rate the thresholds are calibrated for\n"
            "  --threads N [all CPUs] families trained at once   --quiet  no progress\n"
            "  --no-lstm    no network and no pattern per family: the references and linear's\n"
            "               classifier only (modes nn, knn, combo, linear; paper, multiset,\n"
            "               ngram, likelihood and fusion are then unavailable)\n"
            "  scoring options (--lin-nov N, --lin-c C100, ... as `malfam eval --help` lists\n"
            "  them): stored in the model and calibrated with it, so malfamd serves them;\n"
            "  with --model, the stored ones except those given\n");
}

/* Progress of the phases (lstm, svm, svm folds, calibration <mode>): a line with done/total
 * and an ETA at most every 2 s and when a phase ends, and the time of each kind of phase for
 * the closing line (phases run one after the other: the time since the previous report is
 * the current phase's). */
typedef struct {
    char phase[48];
    double start, last, prev; /* phase start, last line, previous report (cli_now()) */
    int nfam, fam_done;       /* lstm: families to train, finished */
    double lstm, svm, cal;    /* seconds per kind of phase */
} train_progress_t;

static void progress_line(train_progress_t *p, const char *phase, size_t done, size_t total)
{
    double now = cli_now();
    if (strcmp(p->phase, phase) != 0) {
        snprintf(p->phase, sizeof p->phase, "%s", phase);
        p->start = p->prev;
        p->last = now;
    }
    p->prev = now;
    if (done < total && now - p->last < 2)
        return;
    p->last = now;
    double el = now - p->start;
    if (done < total && done > 0)
        fprintf(stderr, "malfam train: %s %zu/%zu, %.0fs, ETA %.0fs\n", phase, done, total, el,
                el / (double)done * (double)(total - done));
    else if (done >= total)
        fprintf(stderr, "malfam train: %s %zu/%zu done in %.1fs\n", phase, done, total, el);
}

static void on_progress(void *ctx, const char *phase, size_t done, size_t total)
{
    train_progress_t *p = ctx;
    double dt = cli_now() - p->prev;
    *(strncmp(phase, "svm", 3) == 0 ? &p->svm : &p->cal) += dt;
    progress_line(p, phase, done, total);
}

/* A load that stopped at MF_MAX_FAMILIES says so (the loaders' MF_ELIMIT alone reads as a
 * fault of the file); 1 when that was the failure. */
static int too_many_families(const mf_dataset_t *ds, int rc, const char *labels)
{
    if (rc != MF_ELIMIT || ds->nlabels < MF_MAX_FAMILIES)
        return 0;
    fprintf(stderr, "malfam train: %s: more than %d families; a model holds at most %d "
            "(MF_MAX_FAMILIES)\n", labels, MF_MAX_FAMILIES, MF_MAX_FAMILIES);
    return 1;
}

static void on_log(void *ud, int level, const char *msg)
{
    train_progress_t *p = ud;
    fprintf(stderr, "%s%s\n", level <= 1 ? "malfam train: " : "  ", msg);
    /* a family is done at its last epoch, or when it has too few calls to train */
    int e, ne;
    const char *ep = strstr(msg, ": epoch ");
    if (p && ((ep && sscanf(ep, ": epoch %d/%d", &e, &ne) == 2 && e == ne) ||
              strstr(msg, "too few to train")))
        progress_line(p, "lstm", (size_t)++p->fam_done, (size_t)p->nfam);
}

static int parse_int(const char *opt, const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "malfam train: %s: expected an integer in %ld..%ld, got '%s'\n", opt, lo,
                hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "malfam train: %s: expected a number in %g..%g, got '%s'\n", opt, lo, hi,
                v);
        return -1;
    }
    *out = x;
    return 0;
}

/* The flags of mf_train_opts_t's fields. Each is parsed into its field; with --model only the
 * given ones replace the stored settings. lo..hi is what the flag accepts (its error message
 * quotes it); mf_train_opts_check still judges the result. */
enum { OPT_INT, OPT_FLOAT, OPT_U64 };
typedef struct {
    const char *flag;
    size_t off, size; /* the field in mf_train_opts_t */
    int type;
    double lo, hi;
} train_flag_t;

#define FIELD_(f) (((mf_train_opts_t *)0)->f)
#define FLAG(flag, f, lo, hi) \
    {flag, offsetof(mf_train_opts_t, f), sizeof FIELD_(f), \
     _Generic(FIELD_(f), int: OPT_INT, float: OPT_FLOAT, uint64_t: OPT_U64), lo, hi}
static const train_flag_t train_flags[] = {
    FLAG("--epochs", epochs, 0, 100000),
    FLAG("--hidden", nhidden, 1, MF_LSTM_MAX_DIM),
    FLAG("--embed", nembed, 1, MF_LSTM_MAX_DIM),
    FLAG("--dense", ndense, 1, MF_LSTM_MAX_DIM),
    FLAG("--bptt", bptt, 1, MF_LSTM_MAX_DIM),
    FLAG("--batch", batch, 1, MF_LSTM_MAX_DIM),
    FLAG("--lr", lr, 1e-7, 9.99),
    FLAG("--clip", clip, 0, 1e8),
    FLAG("--seed", seed, 0, INT_MAX),
    FLAG("--gen-len", gen_len, 1, 1000000),
    FLAG("--temp", gen_temp, 0, 100),
    FLAG("--start", gen_start, -1, MF_MAX_VOCAB - 1),
    FLAG("--gen-epoch", gen_epoch, 0, 100000),
};
#undef FLAG
#undef FIELD_
#define NFLAGS ((int)(sizeof train_flags / sizeof *train_flags))

/* A field added to MF_TRAIN_OPTS without a flag here would be one `malfam train` can neither
 * set nor change when extending a model: make that a compile error, not a silent gap. */
#define COUNT_(type, io, name, dflt, ok, msg, optional, absent) +1
_Static_assert(NFLAGS == 0 MF_TRAIN_OPTS(COUNT_),
               "every field of mf_train_opts_t has a flag in train_flags");
#undef COUNT_

/* Parse v into t's field of o; 0, or -1 after printing why. */
static int parse_flag(const train_flag_t *t, const char *v, mf_train_opts_t *o)
{
    char *field = (char *)o + t->off;
    if (t->type == OPT_FLOAT) {
        double d;
        if (parse_float(t->flag, v, t->lo, t->hi, &d))
            return -1;
        *(float *)field = (float)d;
        return 0;
    }
    int n;
    if (parse_int(t->flag, v, (long)t->lo, (long)t->hi, &n))
        return -1;
    if (t->type == OPT_U64)
        *(uint64_t *)field = (uint64_t)n;
    else
        *(int *)field = n;
    return 0;
}

/* Families too small to learn from leave the training set, by name: fewer than min_samples
 * samples, or no call at all. 0, or the exit status (nothing left to train, no memory). */
static int drop_small_families(mf_dataset_t *ds, int min_samples)
{
    size_t nl = ds->nlabels ? (size_t)ds->nlabels : 1;
    unsigned char *dropped = calloc(nl, 1);
    size_t *n = calloc(nl, sizeof *n);
    int nd = dropped && n ? mf_dataset_drop_labels(ds, (size_t)min_samples, dropped, n)
                          : MF_ENOMEM;
    if (nd < 0) {
        free(n);
        free(dropped);
        cli_error("dataset", nd, NULL);
        return 1;
    }
    if (nd > 0) {
        fprintf(stderr, "malfam train: dropped, fewer than --min-samples %d samples or no call: ",
                min_samples);
        for (int l = 0, k = 0; l < ds->nlabels; l++)
            if (dropped[l])
                fprintf(stderr, "%s%s", k++ ? ", " : "", ds->labels[l]);
        fputc('\n', stderr);
    }
    /* kept, but worth a word: one trace cannot calibrate a family's unknown threshold */
    int ones = 0;
    for (int l = 0; l < ds->nlabels; l++)
        if (n[l] == 1 && !dropped[l])
            fprintf(stderr, "%s%s", ones++ ? ", " : "malfam train: note: one sample only: ",
                    ds->labels[l]);
    if (ones)
        fputc('\n', stderr);
    free(n);
    free(dropped);
    if (ds->n == 0) {
        cli_error("training set", MF_EINVAL, "no family left to train");
        return 2;
    }
    return 0;
}

/* ---- MPI: families over ranks (mpi.h) ----------------------------------------------------
 * The families mf_train_model would train (labels with samples in the split, `only` if set),
 * each an item costing its training tokens; every rank trains its own, rank 0 gets the others
 * packed and installs them, then calibrates and writes the model alone. */
typedef struct {
    mf_model_t *m;
    const mf_dataset_t *ds;
    const int *label; /* item -> dataset label */
} spread_t;

static int give_family(void *ud, int item, uint8_t **buf, size_t *len)
{
    spread_t *s = ud;
    int f = mf_model_find_family(s->m, s->ds->labels[s->label[item]]);
    return f < 0 ? f : mf_train_family_pack(&s->m->fam[f], buf, len);
}

static int take_family(void *ud, int item, const uint8_t *buf, size_t len)
{
    spread_t *s = ud;
    char err[200];
    int rc = mf_train_family_unpack(s->m, buf, len, err, sizeof err);
    if (rc != MF_OK)
        cli_error(s->ds->labels[s->label[item]], rc, err);
    return rc;
}

/* Train m's families over the ranks: mf_train_model on each, then the gather. */
static int train_spread(mf_model_t *m, const mf_dataset_t *ds, mf_train_cfg_t *cfg, int quiet,
                        char *err, size_t errlen)
{
    int nl = ds->nlabels, n = 0;
    size_t cap = nl ? (size_t)nl : 1;
    double *cost = calloc(cap, sizeof *cost);
    int *label = calloc(cap, sizeof *label), *owner = calloc(cap, sizeof *owner);
    unsigned char *has = calloc(cap, 1), *here = calloc(cap, 1);
    int rc = MF_ENOMEM;
    if (!cost || !label || !owner || !has || !here)
        goto out;
    double *tok = calloc(cap, sizeof *tok);
    if (!tok)
        goto out;
    for (size_t i = 0; i < ds->n; i++) {
        const mf_sample_t *s = &ds->samples[i];
        if (cfg->split == MF_SPLIT_ANY || s->split == cfg->split) {
            has[s->label] = 1;
            tok[s->label] += (double)s->trace.n;
        }
    }
    for (int l = 0; l < nl; l++)
        if (has[l] && (!cfg->only || !strcmp(cfg->only, ds->labels[l]))) {
            label[n] = l;
            cost[n++] = tok[l] + 1.0; /* + 1: an empty family still costs its slot */
        }
    free(tok);
    cli_mpi_assign(cost, n, owner);
    for (int i = 0; i < n; i++)
        here[label[i]] = owner[i] == cli_mpi_rank();
    if (!quiet) {
        int r = cli_mpi_size();
        fprintf(stderr, "malfam train: MPI, %d ranks; families (tokens) per rank:", r);
        for (int q = 0; q < r; q++) {
            int k = 0;
            double t = 0;
            for (int i = 0; i < n; i++)
                if (owner[i] == q)
                    k++, t += cost[i] - 1.0;
            fprintf(stderr, " %d (%.0f)", k, t);
        }
        fputc('\n', stderr);
    }
    cfg->here = here;
    rc = mf_train_model(m, ds, cfg, err, errlen);
    cfg->here = NULL;
    spread_t sp = {m, ds, label};
    int g = cli_mpi_gather(n, owner, rc == MF_OK ? give_family : NULL, take_family, &sp);
    if (rc == MF_OK && g != 0) {
        rc = g < 0 ? g : MF_EINVAL;
        snprintf(err, errlen, "families trained by other ranks could not be gathered");
    }
out:
    free(cost);
    free(label);
    free(owner);
    free(has);
    free(here);
    return rc;
}

/* ---- MPI: SVM classes over ranks (linear.h mf_linear_set_spread) -----------------------------
 * Calibration runs on rank 0; each of its SVM fits on the references (the stored one and the
 * folds') is a job: rank 0 shares the job (which references to skip, options) with the other
 * ranks, which wait for jobs after their families; every rank fits the classes cli_mpi_assign
 * gives it and rank 0 gathers the columns. A job of n = SIZE_MAX ends the wait (posted, not
 * shared: the others sleep while rank 0 does the rest of calibration). The other
 * ranks hold the same references (mf_train_model builds them on every rank). */
typedef struct {
    const mf_model_t *m;
    int *owner;     /* class -> rank, of the current job */
    int printed;    /* the split was shown (rank 0, not quiet) */
    int quiet;
    mf_linear_t *l; /* the current job's classifier */
} svm_spread_t;

/* Jobs rank 0 posts besides the SVM's (which start with their n): the model to calibrate,
 * and a mode's calibration rows (see "calibration's rows over ranks" below). */
#define JOB_MODEL (UINT64_MAX - 1)
#define JOB_ROWS (UINT64_MAX - 2)

/* A rank > 0's calibration state: rank 0's model as posted, and its scorer. */
typedef struct {
    mf_model_t *m;
    mf_scorer_t *s;
} cal_worker_t;

static int serve_loop(const mf_model_t *m, cal_worker_t *cw);

/* The job: n (u64), nclass, hi, min_df, balanced, tf (i32), c, proto (f64), skip[n] (0/1). */
static int svm_job_pack(mfp_buf_t *b, size_t n, int nclass, const mf_linear_opts_t *o,
                        const unsigned char *skip)
{
    uint64_t n64 = n == SIZE_MAX ? UINT64_MAX : (uint64_t)n;
    int32_t v[5] = {nclass, o->hi, o->min_df, o->balanced, o->tf};
    double d[2] = {o->c, o->proto};
    mfp_buf_add(b, &n64, sizeof n64);
    mfp_buf_add(b, v, sizeof v);
    mfp_buf_add(b, d, sizeof d);
    for (size_t i = 0; i < n && n != SIZE_MAX; i++) {
        unsigned char k = skip && skip[i];
        mfp_buf_add(b, &k, 1);
    }
    return b->oom ? -1 : 0;
}

/* The owner of each class: cost 1 + its kept traces (every class's fit visits every kept
 * trace; a class with more of its own tends to need more passes). Same on every rank. */
static int svm_assign(const int *label, const unsigned char *skip, size_t n, int nclass,
                      int *owner)
{
    double *cost = malloc((size_t)nclass * sizeof *cost);
    if (!cost)
        return MF_ENOMEM;
    for (int c = 0; c < nclass; c++)
        cost[c] = 1.0;
    for (size_t i = 0; i < n; i++)
        if (!(skip && skip[i]) && label[i] >= 0 && label[i] < nclass)
            cost[label[i]] += 1.0;
    cli_mpi_assign(cost, nclass, owner);
    free(cost);
    return MF_OK;
}

static int svm_give(void *ud, int item, uint8_t **buf, size_t *len)
{
    svm_spread_t *sp = ud;
    size_t nw = mf_linear_nfeatures(sp->l) + 1;
    float *col = malloc(nw * sizeof *col);
    if (!col)
        return MF_ENOMEM;
    mf_linear_class_get(sp->l, item, col);
    *buf = (uint8_t *)col;
    *len = nw * sizeof *col;
    return 0;
}

static int svm_take(void *ud, int item, const uint8_t *buf, size_t len)
{
    svm_spread_t *sp = ud;
    if (!sp->l)
        return MF_EINVAL; /* this rank failed its own part */
    size_t nw = mf_linear_nfeatures(sp->l) + 1;
    if (len != nw * sizeof(float))
        return MF_EINVAL; /* another rank saw other features: not the same references */
    float *col = malloc(len);
    if (!col)
        return MF_ENOMEM;
    memcpy(col, buf, len);
    int rc = mf_linear_class_set(sp->l, item, col);
    free(col);
    return rc;
}

static int svm_plan(void *ctx, const mf_trace_t *traces, const int *label,
                    const unsigned char *skip, size_t n, int nclass, const mf_linear_opts_t *o,
                    unsigned char *mine, int *local)
{
    svm_spread_t *sp = ctx;
    if (traces != sp->m->refs || label != sp->m->ref_label || n != sp->m->nrefs) {
        *local = 1; /* not the references the other ranks hold */
        return MF_OK;
    }
    mfp_buf_t b = {0};
    int rc = svm_job_pack(&b, n, nclass, o, skip) ? MF_ENOMEM : MF_OK;
    /* posted even after a failure (an empty job fails the others' parts too), to stay in step */
    if (cli_mpi_post(rc == MF_OK ? (const uint8_t *)b.p : NULL, rc == MF_OK ? b.n : 0) != 0)
        rc = MF_EINVAL;
    mfp_buf_free(&b);
    free(sp->owner);
    sp->owner = malloc((size_t)nclass * sizeof *sp->owner);
    if (!sp->owner)
        return MF_ENOMEM;
    if (rc == MF_OK)
        rc = svm_assign(label, skip, n, nclass, sp->owner);
    for (int c = 0; c < nclass; c++)
        mine[c] = rc == MF_OK && sp->owner[c] == 0;
    if (rc == MF_OK && !sp->quiet && !sp->printed) {
        sp->printed = 1;
        fprintf(stderr, "malfam train: MPI; SVM classes per rank:");
        for (int r = 0; r < cli_mpi_size(); r++) {
            int k = 0;
            for (int c = 0; c < nclass; c++)
                k += sp->owner[c] == r;
            fprintf(stderr, " %d", k);
        }
        fputc('\n', stderr);
    }
    return rc;
}

static int svm_merge(void *ctx, mf_linear_t *l, const unsigned char *mine)
{
    svm_spread_t *sp = ctx;
    (void)mine;
    sp->l = l;
    int nclass = 0;
    if (l) {
        mf_linear_parts_t p;
        mf_linear_get_parts(l, &p);
        nclass = p.nclass;
    }
    /* rank 0's failure: still collect (nclass from the owners it made) so the others move on */
    if (!sp->owner)
        return MF_ENOMEM;
    if (!l)
        nclass = sp->m->nfam; /* calibration fits nfam classes */
    int g = cli_mpi_gather(nclass, sp->owner, NULL, svm_take, sp);
    sp->l = NULL;
    return g == 0 ? MF_OK : g < 0 ? g : MF_EINVAL;
}

static int cal_serve_model(cal_worker_t *w, const uint8_t *p, size_t len);
static int cal_serve_rows(cal_worker_t *w, const uint8_t *p, size_t len);

/* A rank > 0: fit its classes of each SVM job rank 0 shares, and score its rows of each
 * calibration job, until the job that ends it. */
static int svm_serve(const mf_model_t *m)
{
    cal_worker_t cw = {0};
    int rc = serve_loop(m, &cw);
    mf_scorer_free(cw.s);
    mf_model_free(cw.m);
    return rc;
}

static int serve_loop(const mf_model_t *m, cal_worker_t *cw)
{
    for (;;) {
        uint8_t *job = NULL;
        size_t len;
        if (cli_mpi_wait_post(&job, &len) != 0)
            return MF_EINVAL;
        const size_t head = sizeof(uint64_t) + 5 * sizeof(int32_t) + 2 * sizeof(double);
        uint64_t n64 = 0;
        int32_t v[5] = {0};
        double d[2] = {0};
        if (len >= sizeof n64)
            memcpy(&n64, job, sizeof n64);
        if (n64 == JOB_MODEL || n64 == JOB_ROWS) {
            int rc = n64 == JOB_MODEL ? cal_serve_model(cw, job + sizeof n64, len - sizeof n64)
                                      : cal_serve_rows(cw, job + sizeof n64, len - sizeof n64);
            free(job);
            if (rc != MF_OK)
                return rc;
            continue;
        }
        if (len >= head) {
            memcpy(v, job + sizeof n64, sizeof v);
            memcpy(d, job + sizeof n64 + sizeof v, sizeof d);
        }
        if (len >= head && n64 == UINT64_MAX) {
            free(job);
            return MF_OK;
        }
        int nclass = v[0];
        int rc = len == head + m->nrefs && n64 == m->nrefs && nclass >= 1 ? MF_OK : MF_EINVAL;
        mf_linear_opts_t o = {.hi = v[1], .c = d[0], .min_df = v[2], .balanced = v[3],
                              .proto = d[1], .tf = v[4]};
        const unsigned char *skip = job + head;
        int *owner = rc == MF_OK ? malloc((size_t)nclass * sizeof *owner) : NULL;
        unsigned char *mine = rc == MF_OK ? calloc((size_t)nclass, 1) : NULL;
        svm_spread_t sp = {.m = m};
        if (rc == MF_OK && (!owner || !mine))
            rc = MF_ENOMEM;
        if (rc == MF_OK)
            rc = svm_assign(m->ref_label, skip, m->nrefs, nclass, owner);
        for (int c = 0; rc == MF_OK && c < nclass; c++)
            mine[c] = owner[c] == cli_mpi_rank();
        if (rc == MF_OK)
            rc = mf_linear_train_classes(&sp.l, m->refs, m->ref_label, skip, m->nrefs, nclass,
                                         &o, mine);
        /* a bad job (no owners): nothing to give, and rank 0 learns from its own part */
        int g = cli_mpi_gather(owner ? nclass : 0, owner, rc == MF_OK ? svm_give : NULL, NULL,
                               &sp);
        mf_linear_free(sp.l);
        free(owner);
        free(mine);
        free(job);
        if (rc != MF_OK)
            return rc;
        if (g != 0)
            return MF_EINVAL;
    }
}

/* Rank 0: the job that ends the others' svm_serve. */
static int svm_stop(void)
{
    mfp_buf_t b = {0};
    mf_linear_opts_t o = {0};
    int rc = svm_job_pack(&b, SIZE_MAX, 0, &o, NULL) ? MF_ENOMEM : MF_OK;
    if (cli_mpi_post((const uint8_t *)b.p, b.n) != 0)
        rc = MF_EINVAL;
    mfp_buf_free(&b);
    return rc;
}

/* ---- MPI: calibration's rows over ranks (score.h mf_score_set_spread) ---------------------
 * Each mode's leave-one-out scoring of the calibration sample is rows, one reference each.
 * At the first mode rank 0 posts the model as it stands (mf_model_save's bytes: networks,
 * references, classifier, options), which the other ranks load from memory (a memfd) and
 * build a scorer of; for each mode it posts the rows and their owners (cli_mpi_assign by
 * trace length), every rank scores its own, and rank 0 gathers them (one item per rank: the
 * seconds it took, then got, best and the score vector of each of its rows in row order).
 * A row's values depend on nothing but the model and the reference, so the thresholds and
 * temperatures rank 0 then computes are the single-process ones. */
typedef struct {
    const char *out; /* the output, to name the model in messages */
    int quiet;
    int sent;        /* the model was posted */
    int posted;      /* a rows job was posted and not yet gathered */
    size_t n;
    int nfam;
    int *owner;      /* row -> rank, of the current job */
    double *sv, *best, *secs; /* secs: per rank, of the current job */
    unsigned char *got;
    double start;
} cal_spread_t;

/* Rank 0: post the model's file bytes (encoded in memory: they travel by MPI, so no rank
 * needs rank 0's filesystem, and nothing is written beside the output). */
static int cal_post_model(cal_spread_t *c, mf_model_t *m)
{
    char err[512];
    uint8_t *bytes = NULL;
    size_t n = 0;
    int rc = mf_model_encode(m, c->out, &bytes, &n, err, sizeof err);
    if (rc != MF_OK) {
        cli_error("model for the other ranks", rc, err);
        return rc;
    }
    uint8_t *buf = malloc(sizeof(uint64_t) + n);
    if (buf) {
        uint64_t kind = JOB_MODEL;
        memcpy(buf, &kind, sizeof kind);
        memcpy(buf + sizeof kind, bytes, n);
    }
    free(bytes);
    if (!buf) {
        cli_error("model for the other ranks", MF_ENOMEM, "out of memory");
        return MF_ENOMEM;
    }
    rc = cli_mpi_post(buf, sizeof(uint64_t) + n) != 0 ? MF_EINVAL : MF_OK;
    free(buf);
    return rc;
}

static int cal_plan(void *ctx, mf_model_t *m, int mode, const size_t *sample, size_t n,
                    unsigned char *mine)
{
    cal_spread_t *c = ctx;
    int rc = MF_OK;
    if (!c->sent) {
        c->sent = 1;
        rc = cal_post_model(c, m);
    }
    free(c->owner);
    free(c->secs);
    c->owner = malloc((n ? n : 1) * sizeof *c->owner);
    c->secs = calloc((size_t)cli_mpi_size(), sizeof *c->secs);
    double *cost = malloc((n ? n : 1) * sizeof *cost);
    if (rc == MF_OK && (!c->owner || !c->secs || !cost))
        rc = MF_ENOMEM;
    for (size_t k = 0; rc == MF_OK && k < n; k++)
        cost[k] = 1.0 + (double)m->refs[sample[k]].n; /* every mode's work grows with it */
    if (rc == MF_OK)
        cli_mpi_assign(cost, (int)n, c->owner);
    free(cost);
    /* the job: JOB_ROWS, mode (i32), n (u64), then sample (u64) and owner (i32) per row */
    mfp_buf_t b = {0};
    uint64_t kind = JOB_ROWS, n64 = n;
    int32_t md = mode;
    mfp_buf_add(&b, &kind, sizeof kind);
    mfp_buf_add(&b, &md, sizeof md);
    mfp_buf_add(&b, &n64, sizeof n64);
    for (size_t k = 0; rc == MF_OK && k < n; k++) {
        uint64_t i = sample[k];
        int32_t o = c->owner[k];
        mfp_buf_add(&b, &i, sizeof i);
        mfp_buf_add(&b, &o, sizeof o);
    }
    if (rc == MF_OK && b.oom)
        rc = MF_ENOMEM;
    if (rc == MF_OK) {
        if (cli_mpi_post((const uint8_t *)b.p, b.n) != 0)
            rc = MF_EINVAL;
        else
            c->posted = 1;
    }
    mfp_buf_free(&b);
    for (size_t k = 0; rc == MF_OK && k < n; k++)
        mine[k] = c->owner[k] == 0;
    c->n = n;
    c->nfam = m->nfam;
    c->start = cli_now();
    return rc;
}

/* Rank 0 takes rank `item`'s rows. */
static int cal_take(void *ud, int item, const uint8_t *buf, size_t len)
{
    cal_spread_t *c = ud;
    size_t nf = (size_t)c->nfam, rowlen = 1 + sizeof(double) * (1 + nf), at = sizeof(double);
    if (!c->sv || len < sizeof(double))
        return MF_EINVAL;
    memcpy(&c->secs[item], buf, sizeof(double));
    for (size_t k = 0; k < c->n; k++) {
        if (c->owner[k] != item)
            continue;
        if (len - at < rowlen)
            return MF_EINVAL;
        c->got[k] = buf[at];
        memcpy(&c->best[k], buf + at + 1, sizeof(double));
        memcpy(c->sv + k * nf, buf + at + 1 + sizeof(double), nf * sizeof(double));
        at += rowlen;
    }
    return at == len ? MF_OK : MF_EINVAL;
}

static int cal_merge(void *ctx, int mode, size_t n, const unsigned char *mine, int nfam,
                     double *sv, double *best, unsigned char *got)
{
    cal_spread_t *c = ctx;
    (void)mine;
    if (!c->posted)
        return MF_EINVAL; /* plan failed: the job ends (cli_mpi_end aborts it) */
    c->posted = 0;
    double mysecs = cli_now() - c->start;
    c->sv = sv;
    c->best = best;
    c->got = got;
    int size = cli_mpi_size(), *ranks = malloc((size_t)size * sizeof *ranks);
    if (!ranks)
        return MF_ENOMEM;
    for (int r = 0; r < size; r++)
        ranks[r] = r;
    int g = cli_mpi_gather(size, ranks, NULL, cal_take, c);
    free(ranks);
    c->sv = c->best = NULL;
    c->got = NULL;
    if (g != 0 || !sv)
        return g < 0 ? g : MF_EINVAL;
    c->secs[0] = mysecs;
    if (!c->quiet) {
        fprintf(stderr, "malfam train: MPI; calibration %s rows per rank:",
                mf_score_mode_name(mode));
        for (int r = 0; r < size; r++) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                k += c->owner[i] == r;
            fprintf(stderr, " %zu (%.1fs)", k, c->secs[r]);
        }
        fputc('\n', stderr);
    }
    (void)nfam;
    return MF_OK;
}

/* A rank > 0: load the posted model from memory and build its scorer. */
static int cal_serve_model(cal_worker_t *w, const uint8_t *p, size_t len)
{
    mf_scorer_free(w->s);
    mf_model_free(w->m);
    w->s = NULL;
    w->m = NULL;
    int fd = memfd_create("malfam-model", MFD_CLOEXEC);
    if (fd < 0) {
        cli_error("memfd_create", MF_EIO, strerror(errno));
        return MF_EIO;
    }
    size_t at = 0;
    while (at < len) {
        ssize_t k = write(fd, p + at, len - at);
        if (k <= 0) {
            close(fd);
            return MF_EIO;
        }
        at += (size_t)k;
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int rc = mf_model_load(&w->m, path, err, sizeof err);
    close(fd);
    if (rc != MF_OK) {
        cli_error("the model from rank 0", rc, err);
        return rc;
    }
    w->s = mf_scorer_new(w->m);
    return w->s ? MF_OK : MF_ENOMEM;
}

typedef struct {
    const mfp_buf_t *b; /* this rank's rows, NULL when it failed them */
} cal_rows_out_t;

static int cal_give(void *ud, int item, uint8_t **buf, size_t *len)
{
    const cal_rows_out_t *o = ud;
    (void)item;
    if (!o->b)
        return 1;
    if (!(*buf = malloc(o->b->n ? o->b->n : 1)))
        return MF_ENOMEM;
    memcpy(*buf, o->b->p, o->b->n);
    *len = o->b->n;
    return 0;
}

/* A rank > 0: score its rows of a job and send them to rank 0 (or a failure marker). */
static int cal_serve_rows(cal_worker_t *w, const uint8_t *p, size_t len)
{
    double t0 = cli_now();
    int32_t mode = -1;
    uint64_t n64 = 0;
    const size_t head = sizeof mode + sizeof n64, per = sizeof(uint64_t) + sizeof(int32_t);
    if (len >= head) {
        memcpy(&mode, p, sizeof mode);
        memcpy(&n64, p + sizeof mode, sizeof n64);
    }
    int rc = len >= head && n64 <= (len - head) / per && len == head + n64 * per && w->s
                 ? MF_OK : MF_EINVAL;
    size_t n = rc == MF_OK ? (size_t)n64 : 0, nf = w->m ? (size_t)w->m->nfam : 0;
    size_t *sample = malloc((n ? n : 1) * sizeof *sample);
    unsigned char *mine = calloc(n ? n : 1, 1), *got = calloc(n ? n : 1, 1);
    double *best = calloc(n ? n : 1, sizeof *best);
    double *sv = calloc((n ? n : 1) * (nf ? nf : 1), sizeof *sv);
    if (rc == MF_OK && (!sample || !mine || !got || !best || !sv))
        rc = MF_ENOMEM;
    size_t nmine = 0;
    for (size_t k = 0; rc == MF_OK && k < n; k++) {
        uint64_t i;
        int32_t o;
        memcpy(&i, p + head + k * per, sizeof i);
        memcpy(&o, p + head + k * per + sizeof i, sizeof o);
        sample[k] = i < SIZE_MAX ? (size_t)i : SIZE_MAX;
        mine[k] = o == cli_mpi_rank();
        nmine += mine[k];
    }
    if (rc == MF_OK)
        rc = mf_score_cal_rows(w->s, mode, sample, n, mine, sv, best, got);
    mfp_buf_t b = {0};
    double secs = cli_now() - t0;
    mfp_buf_add(&b, &secs, sizeof secs);
    for (size_t k = 0; rc == MF_OK && k < n; k++)
        if (mine[k]) {
            mfp_buf_add(&b, &got[k], 1);
            mfp_buf_add(&b, &best[k], sizeof best[k]);
            mfp_buf_add(&b, sv + k * nf, nf * sizeof *sv);
        }
    if (rc == MF_OK && b.oom)
        rc = MF_ENOMEM;
    int size = cli_mpi_size(), *ranks = malloc((size_t)size * sizeof *ranks);
    for (int r = 0; ranks && r < size; r++)
        ranks[r] = r;
    /* the item is sent even after a failure (as a failure), so rank 0 does not wait */
    cal_rows_out_t out = {rc == MF_OK ? &b : NULL};
    int g = ranks ? cli_mpi_gather(size, ranks, cal_give, NULL, &out) : -1;
    free(ranks);
    mfp_buf_free(&b);
    free(sample);
    free(mine);
    free(got);
    free(best);
    free(sv);
    if (rc != MF_OK) {
        cli_error("calibration rows for rank 0", rc, NULL);
        return rc;
    }
    return g == 0 ? MF_OK : MF_EINVAL;
}

/* ---- MPI: --reports read in shards --------------------------------------------------------
 * Each rank extracts every size-th report of the list into a scratch vocabulary
 * (mf_dataset_load_reports_shard), the shards go to every rank (cli_mpi_share), and each rank
 * adds all samples in list order into the model's vocabulary: the dataset and vocabulary one
 * process reading the whole list makes (mf_dataset_add's renumbering). Shard bytes: skipped
 * count u64, vocabulary (u32 count, then u32 length + name each), samples (u64 count, then
 * row i32, label i32, u64 length, i32 ids each); labels are the same on every rank. */
static int pack_shard(const mf_dataset_t *part, const mf_vocab_t *v, size_t skipped, mfp_buf_t *b)
{
    uint64_t u = skipped;
    uint32_t nv = (uint32_t)mf_vocab_size(v);
    mfp_buf_add(b, &u, sizeof u);
    mfp_buf_add(b, &nv, sizeof nv);
    for (uint32_t id = 0; id < nv; id++) {
        const char *name = mf_vocab_name(v, (int)id);
        uint32_t len = name ? (uint32_t)strlen(name) : 0;
        mfp_buf_add(b, &len, sizeof len);
        mfp_buf_add(b, name, len);
    }
    u = part->n;
    mfp_buf_add(b, &u, sizeof u);
    for (size_t i = 0; i < part->n; i++) {
        const mf_sample_t *s = &part->samples[i];
        int32_t rl[2] = {s->row, s->label};
        uint64_t n = s->trace.n;
        mfp_buf_add(b, rl, sizeof rl);
        mfp_buf_add(b, &n, sizeof n);
        mfp_buf_add(b, s->trace.ids, s->trace.n * sizeof *s->trace.ids);
    }
    return b->oom ? MF_ENOMEM : MF_OK;
}

typedef struct {
    int32_t row, label;
    int shard;
    const uint8_t *ids; /* n int32, unaligned */
    uint64_t n;
} shard_sample_t;

static int by_row(const void *a, const void *b)
{
    const shard_sample_t *x = a, *y = b;
    return (x->row > y->row) - (x->row < y->row);
}

/* Read one shard's bytes: its vocabulary into *v (new), its samples appended to *all. */
static int unpack_shard(const uint8_t *p, size_t len, int shard, size_t *skipped, mf_vocab_t **v,
                        shard_sample_t **all, size_t *nall, size_t *cap)
{
    size_t at = 0;
#define TAKE(dst, k) \
    do { if ((k) > len - at) return MF_EFORMAT; memcpy((dst), p + at, (k)); at += (k); } while (0)
    uint64_t u;
    uint32_t nv, l;
    TAKE(&u, sizeof u);
    *skipped += (size_t)u;
    TAKE(&nv, sizeof nv);
    if (!(*v = mf_vocab_new()))
        return MF_ENOMEM;
    for (uint32_t id = 0; id < nv; id++) {
        TAKE(&l, sizeof l);
        if (l > len - at)
            return MF_EFORMAT;
        if (mf_vocab_add(*v, (const char *)p + at, l) != (int)id)
            return MF_EFORMAT;
        at += l;
    }
    TAKE(&u, sizeof u);
    for (uint64_t i = 0; i < u; i++) {
        shard_sample_t s = {.shard = shard};
        TAKE(&s.row, sizeof s.row);
        TAKE(&s.label, sizeof s.label);
        TAKE(&s.n, sizeof s.n);
        if (s.n > (len - at) / sizeof(int32_t))
            return MF_EFORMAT;
        s.ids = p + at;
        at += s.n * sizeof(int32_t);
        if (*nall == *cap) {
            size_t c = *cap ? *cap * 2 : 1024;
            shard_sample_t *q = realloc(*all, c * sizeof *q);
            if (!q)
                return MF_ENOMEM;
            *all = q;
            *cap = c;
        }
        (*all)[(*nall)++] = s;
    }
#undef TAKE
    return at == len ? MF_OK : MF_EFORMAT;
}

static int load_reports_spread(mf_dataset_t *ds, const char *list, mf_model_t *m, size_t *skipped,
                               char *err, size_t errlen)
{
    int n = cli_mpi_size();
    mf_dataset_t part;
    mf_dataset_init(&part);
    mf_vocab_t *scratch = mf_vocab_new(), **vs = calloc((size_t)n, sizeof *vs);
    mfp_buf_t b = {0};
    uint8_t **all = NULL;
    size_t *lens = NULL, nss = 0, cap = 0, skip = 0;
    shard_sample_t *ss = NULL;
    int rc = MF_ENOMEM;
    if (!scratch || !vs)
        goto out;
    rc = mf_dataset_load_reports_shard(&part, list, scratch, 1, &m->prep, NULL,
                                       skipped ? &skip : NULL, cli_mpi_rank(), n, err, errlen);
    if (rc != MF_OK || (rc = pack_shard(&part, scratch, skip, &b)) != MF_OK)
        goto out; /* the job ends here (cli_mpi_end aborts it): no rank waits on this one */
    if (cli_mpi_share((const uint8_t *)b.p, b.n, &all, &lens) != 0) {
        rc = MF_ENOMEM;
        goto out;
    }
    if (skipped)
        *skipped = 0;
    size_t total_skipped = 0;
    for (int r = 0; r < n && rc == MF_OK; r++)
        rc = unpack_shard(all[r], lens[r], r, &total_skipped, &vs[r], &ss, &nss, &cap);
    if (rc != MF_OK) {
        snprintf(err, errlen, "a shard of another rank could not be read");
        goto out;
    }
    if (skipped)
        *skipped = total_skipped;
    if (total_skipped && !skip && errlen)
        snprintf(err, errlen, "in another rank's shard; a run without mpirun names it");
    for (int l = 0; l < part.nlabels && rc == MF_OK; l++) /* the list's label order */
        rc = mf_dataset_label(ds, part.labels[l]) == l ? MF_OK : MF_ENOMEM;
    qsort(ss, nss, sizeof *ss, by_row);
    for (size_t i = 0; i < nss && rc == MF_OK; i++) {
        mf_trace_t t;
        mf_trace_init(&t);
        for (uint64_t k = 0; k < ss[i].n && rc == MF_OK; k++) {
            int32_t id;
            memcpy(&id, ss[i].ids + k * sizeof id, sizeof id);
            rc = id >= 0 && id < mf_vocab_size(vs[ss[i].shard]) ? mf_trace_push(&t, id)
                                                                 : MF_EFORMAT;
        }
        if (rc == MF_OK && (ss[i].label < 0 || ss[i].label >= part.nlabels))
            rc = MF_EFORMAT;
        if (rc == MF_OK)
            rc = mf_dataset_add(ds, part.labels[ss[i].label], &t, ss[i].row, vs[ss[i].shard],
                                m->vocab);
        mf_trace_destroy(&t);
    }
    if (rc != MF_OK)
        snprintf(err, errlen, "merging the ranks' shards failed");
out:
    for (int r = 0; all && r < n; r++)
        free(all[r]);
    for (int r = 0; vs && r < n; r++)
        mf_vocab_free(vs[r]);
    free(all);
    free(lens);
    free(vs);
    free(ss);
    mfp_buf_free(&b);
    mf_vocab_free(scratch);
    mf_dataset_destroy(&part);
    return rc;
}

static int train_main(int argc, char **argv);

int cli_train(int argc, char **argv)
{
    if (cli_mpi_start() != 0)
        return 1;
    int status = train_main(argc, argv);
    cli_mpi_end(status);
    return status;
}

static int train_main(int argc, char **argv)
{
    const char *calls = NULL, *index = NULL, *api = NULL, *reports = NULL, *out = NULL;
    const char *old = NULL, *add = NULL, *store = NULL, *labels = NULL;
    int split = MF_SPLIT_TRAIN, quiet = 0, threads = 0, fold = 1, maxlen = MF_PREP_MAX_LEN;
    int min_samples = -1, dry_run = 0, skip_bad = 0; /* -1: the source's default */
    int no_lstm = 0;
    double rate = 0.05;
    mf_train_opts_t o;
    mf_train_opts_default(&o);
    /* which options were given, so that --model keeps the stored ones otherwise */
    int set[NFLAGS] = {0}, maxlen_set = 0;
    mf_score_opts_t score_flags; /* scoring options given (score_set), stored in the model */
    mf_score_opts_default(&score_flags);
    int score_set[CLI_NOPT] = {0}, sr = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(a, "--no-fold")) {
            fold = 0;
            continue;
        }
        if (!strcmp(a, "--dry-run")) {
            dry_run = 1;
            continue;
        }
        if (!strcmp(a, "--skip-bad")) {
            skip_bad = 1;
            continue;
        }
        if (!strcmp(a, "--no-lstm")) {
            no_lstm = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "malfam train: %s: missing value (or unknown option)\n", a);
            train_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0, k = 0;
        while (k < NFLAGS && strcmp(a, train_flags[k].flag))
            k++;
        if (k < NFLAGS)
            bad = parse_flag(&train_flags[k], v, &o), set[k] = 1;
        else if (!strcmp(a, "--calls"))
            calls = v;
        else if (!strcmp(a, "--index"))
            index = v;
        else if (!strcmp(a, "--api-index"))
            api = v;
        else if (!strcmp(a, "--reports"))
            reports = v;
        else if (!strcmp(a, "--store"))
            store = v;
        else if (!strcmp(a, "--labels"))
            labels = v;
        else if (!strcmp(a, "--min-samples"))
            bad = parse_int(a, v, 1, INT_MAX, &min_samples);
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--model"))
            old = v;
        else if (!strcmp(a, "--add-family"))
            add = v;
        else if (!strcmp(a, "--split")) {
            if (!strcmp(v, "train"))
                split = MF_SPLIT_TRAIN;
            else if (!strcmp(v, "all"))
                split = MF_SPLIT_ANY;
            else {
                fprintf(stderr, "malfam train: --split: train or all (never test)\n");
                return 2;
            }
        } else if (!strcmp(a, "--max-len"))
            bad = parse_int(a, v, 0, INT_MAX, &maxlen), maxlen_set = 1;
        else if (!strcmp(a, "--threads"))
            bad = parse_int(a, v, 0, 64, &threads);
        else if (!strcmp(a, "--unknown-rate"))
            bad = parse_float(a, v, 0, 0.99, &rate);
        else if ((sr = cli_score_flag(&score_flags, score_set, a, v)) != 0) {
            if (sr < 0)
                fprintf(stderr, "malfam train: %s: not an integer: %s\n", a, v);
            bad = sr < 0;
        } else {
            fprintf(stderr, "malfam train: unknown option %s\n", a);
            train_usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if ((!out && !dry_run) || (!!calls + !!reports + !!store != 1) ||
        (calls && (!index || (!api && !old))) || (!!old != !!add) || (!!store != !!labels) ||
        (dry_run && !store)) {
        fprintf(stderr, "malfam train: need --out and one of --calls/--index/--api-index, "
                        "--reports or --store/--labels (--model goes with --add-family, "
                        "--dry-run with --store)\n");
        train_usage(stderr);
        return 2;
    }

    if (no_lstm && old) {
        fprintf(stderr, "malfam train: --no-lstm makes a new model; with --model a family "
                        "without a network would make likelihood and fusion unavailable for "
                        "every family\n");
        return 2;
    }
    {
        char why[160];
        if (mf_score_opts_check(&score_flags, why, sizeof why) != MF_OK) {
            fprintf(stderr, "malfam train: %s\n", why);
            return 2;
        }
    }
    if (cli_mpi_rank() > 0)
        quiet = 1; /* rank 0 speaks for the job; the others print only errors */
    char err[512] = "";
    int rc, status = 1;
    mf_model_t *m = NULL;
    mf_dataset_t ds;
    mf_dataset_init(&ds);
    if (old) {
        rc = mf_model_load(&m, old, err, sizeof err);
        if (rc != MF_OK) {
            cli_error(old, rc, err);
            status = rc == MF_ENOMEM ? 1 : 2;
            goto done;
        }
        /* the stored settings, except those given on the command line */
        mf_train_opts_t s = m->opts;
        for (int k = 0; k < NFLAGS; k++)
            if (set[k])
                memcpy((char *)&s + train_flags[k].off, (char *)&o + train_flags[k].off,
                       train_flags[k].size);
        o = s;
        if (maxlen_set || fold != m->prep.fold)
            fprintf(stderr, "malfam train: note: --max-len/--no-fold ignored, the model's "
                            "preprocessing is kept\n");
    } else {
        m = mf_model_new();
        if (!m) {
            cli_error("model", MF_ENOMEM, NULL);
            goto done;
        }
        m->prep.fold = fold;
        m->prep.max_len = (size_t)maxlen;
    }
    m->opts = o;
    char msg[200];
    if (mf_train_opts_check(&m->opts, msg, sizeof msg) != MF_OK) {
        cli_error("options", MF_EINVAL, msg);
        status = 2;
        goto done;
    }

    double t0 = cli_now();
    size_t unknown = 0;
    if (calls) {
        if (!m->vocab) {
            rc = mf_vocab_load(&m->vocab, api, err, sizeof err);
            if (rc != MF_OK) {
                cli_error(api, rc, err);
                status = rc == MF_ENOMEM ? 1 : 2;
                goto done;
            }
        }
        rc = mf_dataset_load_malapi(&ds, calls, index, m->vocab, split, &m->prep, &unknown, err,
                                    sizeof err);
        if (rc != MF_OK && !too_many_families(&ds, rc, index))
            cli_error(calls, rc, err);
        if (rc != MF_OK) {
            status = rc == MF_ENOMEM ? 1 : 2;
            goto done;
        }
    } else {
        int grow = !old; /* a new model grows its vocabulary; an existing one keeps its ids */
        if (!m->vocab && !(m->vocab = mf_vocab_new())) {
            cli_error("vocabulary", MF_ENOMEM, NULL);
            goto done;
        }
        if (store) {
            status = cli_store_dataset(store, labels, min_samples < 0 ? 2 : min_samples, quiet,
                                       m, grow, &ds,
                                       &unknown);
            if (status || dry_run)
                goto done;
            if (ds.n == 0) {
                cli_error(store, MF_EINVAL, "no family has --min-samples labelled reports");
                status = 2;
                goto done;
            }
            status = 1;
        } else {
            size_t skipped = 0;
            if (cli_mpi_size() > 1 && grow) /* extraction sharded by rank */
                rc = load_reports_spread(&ds, reports, m, skip_bad ? &skipped : NULL, err,
                                         sizeof err);
            else
                rc = mf_dataset_load_reports(&ds, reports, m->vocab, grow, &m->prep, &unknown,
                                             skip_bad ? &skipped : NULL, err, sizeof err);
            if (rc != MF_OK && too_many_families(&ds, rc, reports)) {
                status = 2;
                goto done;
            }
            if (rc != MF_OK) {
                cli_error(reports, rc, err);
                if (!skip_bad)
                    fprintf(stderr, "malfam train: --skip-bad leaves such reports out\n");
                status = rc == MF_ENOMEM ? 1 : 2;
                goto done;
            }
            if (skipped)
                fprintf(stderr, "malfam train: %zu unreadable reports left out (first: %s)\n",
                        skipped, err);
        }
    }
    if (!store) { /* the store applied it while counting its labels */
        status = drop_small_families(&ds, min_samples < 0 ? 1 : min_samples);
        if (status)
            goto done;
        status = 1;
    }
    size_t ncalls = 0;
    for (size_t i = 0; i < ds.n; i++)
        ncalls += ds.samples[i].trace.n;
    if (!quiet)
        fprintf(stderr, "malfam train: %zu samples, %d labels, %zu calls after preprocessing "
                        "(fold %d, max %zu), vocabulary %d, %zu unknown calls dropped, %.1fs\n",
                ds.n, ds.nlabels, ncalls, m->prep.fold, m->prep.max_len,
                mf_vocab_size(m->vocab), unknown, cli_now() - t0);

    mf_train_cfg_t cfg;
    mf_train_cfg_default(&cfg);
    cfg.threads = threads;
    cfg.only = add;
    cfg.split = calls ? split : MF_SPLIT_ANY;
    train_progress_t prog = {.nfam = add ? 1 : ds.nlabels};
    cfg.log = quiet ? NULL : on_log;
    cfg.ud = &prog;
    /* --no-lstm: every family gets its slot, references and counters, no network (as when
     * another process trains it); every rank does the same, so nothing is gathered */
    unsigned char *none = NULL;
    if (no_lstm) {
        none = calloc(ds.nlabels ? (size_t)ds.nlabels : 1, 1);
        if (!none) {
            cli_error("train", MF_ENOMEM, NULL);
            goto done;
        }
        cfg.here = none;
        if (!quiet)
            fprintf(stderr, "malfam train: --no-lstm: no networks or patterns; modes paper, "
                            "multiset, ngram, likelihood and fusion will be unavailable\n");
    } else if (!quiet) {
        char info[200];
        mf_blas_info(info, sizeof info, NULL);
        fprintf(stderr, "malfam train: embed %d hidden %d dense %d bptt %d batch %d epochs %d "
                        "lr %g clip %g seed %llu pattern after epoch %d; BLAS %s, 1 thread "
                        "per family\n",
                o.nembed, o.nhidden, o.ndense, o.bptt, o.batch, o.epochs, o.lr, o.clip,
                (unsigned long long)o.seed,
                o.gen_epoch > 0 && o.gen_epoch < o.epochs ? o.gen_epoch : o.epochs, info);
    }
    double t1 = cli_now();
    prog.start = prog.prev = t1;
    snprintf(prog.phase, sizeof prog.phase, "lstm");
    if (cli_mpi_size() > 1 && !no_lstm)
        rc = train_spread(m, &ds, &cfg, quiet, err, sizeof err);
    else
        rc = mf_train_model(m, &ds, &cfg, err, sizeof err);
    cfg.here = NULL;
    free(none);
    prog.prev = cli_now();
    prog.lstm = prog.prev - t1;
    if (rc != MF_OK) {
        cli_error("train", rc, err);
        status = rc == MF_EINVAL ? 2 : 1;
        goto done;
    }
    double secs = cli_now() - t1;
    /* calibration's rows and the SVM's classes over the --threads cores (the families are
     * done), on every rank */
    mf_score_set_threads(threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    if (cli_mpi_rank() > 0) { /* its families are at rank 0 now, which writes the model */
        rc = svm_serve(m); /* then it serves rank 0's calibration: SVM classes, rows */
        if (rc != MF_OK)
            cli_error("calibration for rank 0", rc, NULL);
        status = rc == MF_OK ? 0 : 1;
        goto done;
    }

    /* scoring parameters and unknown thresholds, as eval expects of a trained model */
    mf_score_opts_t so;
    mf_score_opts_from_model(&so, m);
    cli_score_apply(&so, &score_flags, score_set); /* the flags over the model's or defaults */
    rc = mf_score_opts_check(&so, err, sizeof err);
    if (rc == MF_OK)
        rc = mf_score_opts_save(&so, m);
    svm_spread_t sp = {.m = m, .quiet = quiet};
    mf_linear_spread_t hook = {svm_plan, svm_merge, &sp};
    cal_spread_t cs = {.out = out, .quiet = quiet};
    mf_cal_spread_t chook = {cal_plan, cal_merge, &cs};
    if (cli_mpi_size() > 1) {
        mf_linear_set_spread(&hook);
        mf_score_set_spread(&chook);
    }
    if (rc == MF_OK && m->nrefs > 0)
        rc = mf_score_calibrate_ex(m, rate, quiet ? NULL : on_progress, &prog);
    if (cli_mpi_size() > 1) {
        mf_linear_set_spread(NULL);
        mf_score_set_spread(NULL);
        free(sp.owner);
        free(cs.owner);
        free(cs.secs);
        int st = svm_stop(); /* after a failure too: the abort then ends them anyway */
        rc = rc == MF_OK ? st : rc;
    }
    if (rc != MF_OK) {
        cli_error("calibration", rc, NULL);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "malfam train: all done in %.1fs: lstm %.1fs, svm %.1fs, calibration "
                "%.1fs\n", cli_now() - t0, prog.lstm, prog.svm, prog.cal);
    rc = mf_model_save(m, out, err, sizeof err);
    if (rc != MF_OK) {
        cli_error(out, rc, err);
        goto done;
    }
    printf("%-16s %8s %9s %9s %7s\n", "family", "tokens", "loss", "entropy", "ratio");
    for (int f = 0; f < m->nfam; f++) {
        const mf_family_t *fa = &m->fam[f];
        printf("%-16s %8zu %9.4f %9.4f %7.3f%s\n", fa->name, fa->tokens, fa->loss, fa->entropy,
               fa->entropy > 0 ? fa->loss / fa->entropy : NAN,
               add && strcmp(add, fa->name) ? "  (kept)" : "");
    }
    printf("trained in %.1fs, model %s (%s)\n", secs, out, m->version);
    status = 0;
done:
    mf_dataset_destroy(&ds);
    mf_model_free(m);
    return status;
}
