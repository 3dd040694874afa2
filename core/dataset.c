/* dataset.c - loading labelled traces from Mal-API files and from lists of reports. */
#include "dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"
#include "mf.h"

void mf_dataset_init(mf_dataset_t *ds)
{
    memset(ds, 0, sizeof *ds);
}

void mf_dataset_destroy(mf_dataset_t *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        mf_trace_destroy(&ds->samples[i].trace);
    mf__free(ds->samples);
    for (int i = 0; i < ds->nlabels; i++)
        mf__free(ds->labels[i]);
    mf__free(ds->labels);
    mf_dataset_init(ds);
}

int mf_dataset_label(mf_dataset_t *ds, const char *name)
{
    for (int i = 0; i < ds->nlabels; i++)
        if (strcmp(ds->labels[i], name) == 0)
            return i;
    if (ds->nlabels >= MF_MAX_FAMILIES)
        return MF_ELIMIT;
    char **nl = mf__realloc(ds->labels, (size_t)(ds->nlabels + 1) * sizeof *nl);
    if (!nl)
        return MF_ENOMEM;
    ds->labels = nl;
    if (!(nl[ds->nlabels] = mf__strndup(name, strlen(name))))
        return MF_ENOMEM;
    return ds->nlabels++;
}

/* A new empty sample at the end; NULL on ENOMEM. */
static mf_sample_t *add_sample(mf_dataset_t *ds)
{
    if (mf__grow((void **)&ds->samples, &ds->cap, ds->n + 1, sizeof *ds->samples))
        return NULL;
    mf_sample_t *s = &ds->samples[ds->n++];
    memset(s, 0, sizeof *s);
    mf_trace_init(&s->trace);
    return s;
}

static void set_err(char *err, size_t errlen, const char *file, long line, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "%s:%ld: %s", file, line, what);
}

/* ---- Mal-API ----------------------------------------------------------------------------- */

typedef struct {
    int label; /* -1 = row absent from the index */
    int split;
} row_info_t;

/* index.csv: header `row,label,split,...`, then one line per row of calls.txt.gz. */
static int load_index(mf_dataset_t *ds, const char *path, row_info_t **rows, size_t *nrows,
                      char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, path, 0, strerror(errno));
        return MF_EIO;
    }
    char line[512];
    long lineno = 0;
    int rc = MF_OK;
    size_t cap = 0;
    *rows = NULL;
    *nrows = 0;
    while (rc == MF_OK && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (lineno == 1 || !line[0])
            continue; /* header */
        char *label = strchr(line, ',');
        char *split = label ? strchr(label + 1, ',') : NULL;
        char *rest = split ? strchr(split + 1, ',') : NULL;
        char *end;
        long row = strtol(line, &end, 10);
        if (!split || end != label || row < 0 || row > 10000000 || label + 1 == split) {
            set_err(err, errlen, path, lineno, "expected row,label,split");
            rc = MF_EFORMAT;
            break;
        }
        *label++ = '\0';
        *split++ = '\0';
        if (rest)
            *rest = '\0';
        int sp = !strcmp(split, "train") ? MF_SPLIT_TRAIN
                 : !strcmp(split, "test") ? MF_SPLIT_TEST : -1;
        if (sp < 0) {
            set_err(err, errlen, path, lineno, "split must be train or test");
            rc = MF_EFORMAT;
            break;
        }
        if ((size_t)row >= *nrows) {
            if (mf__grow((void **)rows, &cap, (size_t)row + 1, sizeof **rows)) {
                rc = MF_ENOMEM;
                break;
            }
            for (size_t i = *nrows; i <= (size_t)row; i++)
                (*rows)[i].label = -1;
            *nrows = (size_t)row + 1;
        }
        int li = mf_dataset_label(ds, label);
        if (li < 0) {
            rc = li;
            break;
        }
        (*rows)[row].label = li;
        (*rows)[row].split = sp;
    }
    fclose(f);
    if (rc != MF_OK) {
        mf__free(*rows);
        *rows = NULL;
    }
    return rc;
}

/* One Mal-API id into t through the model's preprocessing; ids the vocabulary does not name
 * are unknown calls, dropped and counted like a report's. MF_OK or MF_ENOMEM. */
static int push_id(const mf_vocab_t *vocab, const mf_prep_t *prep, mf_trace_t *t, long num,
                   size_t *unk)
{
    int32_t id = mf_vocab_name(vocab, (int)num) ? (int32_t)num : MF_UNK;
    *unk += id == MF_UNK;
    return mf_prep_push(prep, t, id) == MF_ENOMEM ? MF_ENOMEM : MF_OK;
}

int mf_dataset_load_malapi(mf_dataset_t *ds, const char *calls_gz, const char *index_csv,
                           const mf_vocab_t *vocab, int split, const mf_prep_t *prep,
                           size_t *unknown, char *err, size_t errlen)
{
    row_info_t *rows = NULL;
    size_t nrows = 0, unk = 0;
    int rc = load_index(ds, index_csv, &rows, &nrows, err, errlen);
    if (rc != MF_OK)
        return rc;
    gzFile gz = gzopen(calls_gz, "rb");
    if (!gz) {
        set_err(err, errlen, calls_gz, 0, errno ? strerror(errno) : "cannot open");
        mf__free(rows);
        return MF_EIO;
    }
    enum { CHUNK = 64 * 1024 };
    unsigned char *buf = mf__malloc(CHUNK);
    if (!buf)
        rc = MF_ENOMEM;
    size_t row = 0;       /* current line */
    mf_sample_t *cur = NULL;
    int keep = 0;         /* current line is wanted */
    int64_t num = -1;     /* number being read, -1 = none */
    int at_line_start = 1;
    int n;
    while (rc == MF_OK && (n = gzread(gz, buf, CHUNK)) > 0) {
        for (int i = 0; i < n && rc == MF_OK; i++) {
            unsigned char c = buf[i];
            if (at_line_start) {
                at_line_start = 0;
                keep = row < nrows && rows[row].label >= 0 &&
                       (split == MF_SPLIT_ANY || rows[row].split == split);
                cur = NULL;
                if (keep) {
                    if (!(cur = add_sample(ds))) {
                        rc = MF_ENOMEM;
                        break;
                    }
                    cur->label = rows[row].label;
                    cur->split = rows[row].split;
                    cur->row = (int)row;
                }
            }
            if (c >= '0' && c <= '9') {
                num = (num < 0 ? 0 : num * 10) + (c - '0');
                if (num > MF_MAX_VOCAB) {
                    set_err(err, errlen, calls_gz, (long)row + 1, "API id out of range");
                    rc = MF_EFORMAT;
                }
            } else if (c == ',' || c == '\n' || c == '\r') {
                if (num >= 0 && keep) {
                    rc = push_id(vocab, prep, &cur->trace, num, &unk);
                }
                num = -1;
                if (c == '\n') {
                    row++;
                    at_line_start = 1;
                }
            } else if (c != ' ') {
                set_err(err, errlen, calls_gz, (long)row + 1, "expected comma-separated ids");
                rc = MF_EFORMAT;
            }
        }
    }
    if (rc == MF_OK && num >= 0 && keep) /* last line without newline */
        rc = push_id(vocab, prep, &cur->trace, num, &unk);
    if (rc == MF_OK) {
        int zerr;
        const char *msg = gzerror(gz, &zerr);
        if (zerr != Z_OK && zerr != Z_STREAM_END) {
            set_err(err, errlen, calls_gz, (long)row + 1, msg);
            rc = MF_EIO;
        }
    }
    gzclose(gz);
    mf__free(buf);
    mf__free(rows);
    if (unknown)
        *unknown += unk;
    return rc;
}

/* ---- report lists ------------------------------------------------------------------------ */

/* s without leading and trailing blanks, in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* A header line: "path,family" and the like, in any case. */
static int is_header(const char *path, const char *family)
{
    static const char *const pk[] = {"report_path", "path", "report", "file"};
    static const char *const fk[] = {"family", "label", "class"};
    int p = 0, f = 0;
    for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++)
        p |= !strcasecmp(path, pk[i]);
    for (size_t i = 0; i < sizeof fk / sizeof fk[0]; i++)
        f |= !strcasecmp(family, fk[i]);
    return p && f;
}

int mf_dataset_load_reports(mf_dataset_t *ds, const char *list_csv, mf_vocab_t *vocab,
                            int grow_vocab, const mf_prep_t *prep, size_t *unknown,
                            size_t *skipped, char *err, size_t errlen)
{
    return mf_dataset_load_reports_shard(ds, list_csv, vocab, grow_vocab, prep, unknown, skipped,
                                         0, 1, err, errlen);
}

int mf_dataset_load_reports_shard(mf_dataset_t *ds, const char *list_csv, mf_vocab_t *vocab,
                                  int grow_vocab, const mf_prep_t *prep, size_t *unknown,
                                  size_t *skipped, int shard, int nshards, char *err,
                                  size_t errlen)
{
    if (nshards < 1 || shard < 0 || shard >= nshards) {
        set_err(err, errlen, list_csv, 0, "bad shard");
        return MF_EINVAL;
    }
    if (err && errlen)
        err[0] = '\0';
    FILE *f = fopen(list_csv, "r");
    if (!f) {
        set_err(err, errlen, list_csv, 0, strerror(errno));
        return MF_EIO;
    }
    /* Relative report paths are taken relative to the list's directory. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", list_csv);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = '\0';
    else
        dir[0] = '\0';

    char line[8192], path[8192 + 4096], detail[256];
    long lineno = 0;
    int rc = MF_OK, content = 0;
    long nreport = 0; /* report lines so far: the shard's are those nreport % nshards == shard */
    while (rc == MF_OK && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *l = trim(line);
        if (!l[0] || l[0] == '#')
            continue;
        char *comma = strrchr(l, ',');
        if (!comma || comma == l || !comma[1]) {
            set_err(err, errlen, list_csv, lineno, "expected report_path,family");
            rc = MF_EFORMAT;
            break;
        }
        *comma = '\0';
        char *rpath = trim(l), *family = trim(comma + 1);
        if (!content++ && is_header(rpath, family))
            continue;
        if (!rpath[0] || !family[0]) {
            set_err(err, errlen, list_csv, lineno, "expected report_path,family");
            rc = MF_EFORMAT;
            break;
        }
        snprintf(path, sizeof path, "%s%s", rpath[0] == '/' ? "" : dir, rpath);
        int li = mf_dataset_label(ds, family); /* every line's: labels in list order */
        if (li >= 0 && nreport++ % nshards != shard)
            continue;
        mf_sample_t *s = li >= 0 ? add_sample(ds) : NULL;
        if (!s) {
            rc = li < 0 ? li : MF_ENOMEM;
            break;
        }
        s->label = li;
        s->split = MF_SPLIT_ANY;
        s->row = (int)lineno - 1;
        rc = mf_dataset_read_report(path, vocab, grow_vocab, prep, &s->trace, NULL, unknown,
                                    detail, sizeof detail);
        if (rc != MF_OK && rc != MF_ENOMEM && skipped) {
            /* a report that cannot be read is left out and counted; the first one named */
            if (!(*skipped)++ && err && errlen)
                snprintf(err, errlen, "%s:%ld: %s: %s", list_csv, lineno, path, detail);
            mf_trace_destroy(&s->trace);
            ds->n--;
            rc = MF_OK;
        } else if (rc != MF_OK && err && errlen) {
            snprintf(err, errlen, "%s:%ld: %s: %s", list_csv, lineno, path, detail);
        }
    }
    fclose(f);
    return rc;
}

int mf_dataset_drop_labels(mf_dataset_t *ds, size_t min_samples, unsigned char *dropped,
                           size_t *nsamples)
{
    size_t *n = mf__calloc(ds->nlabels ? (size_t)ds->nlabels : 1, sizeof *n);
    size_t *calls = mf__calloc(ds->nlabels ? (size_t)ds->nlabels : 1, sizeof *calls);
    if (!n || !calls) {
        mf__free(n);
        mf__free(calls);
        return MF_ENOMEM;
    }
    for (size_t i = 0; i < ds->n; i++) {
        n[ds->samples[i].label]++;
        calls[ds->samples[i].label] += ds->samples[i].trace.n;
    }
    int ndrop = 0;
    for (int l = 0; l < ds->nlabels; l++) {
        dropped[l] = n[l] > 0 && (n[l] < min_samples || calls[l] == 0);
        ndrop += dropped[l];
        if (nsamples)
            nsamples[l] = n[l];
    }
    size_t w = 0;
    for (size_t i = 0; i < ds->n; i++) {
        if (dropped[ds->samples[i].label])
            mf_trace_destroy(&ds->samples[i].trace);
        else
            ds->samples[w++] = ds->samples[i];
    }
    ds->n = w;
    mf__free(n);
    mf__free(calls);
    return ndrop;
}

/* ---- one report at a time ---------------------------------------------------------------- */

int mf_dataset_read_report(const char *path, mf_vocab_t *vocab, int grow_vocab,
                           const mf_prep_t *prep, mf_trace_t *t, mf_report_meta_t *meta,
                           size_t *unknown, char *err, size_t errlen)
{
    mf_extract_opts_t eo;
    mf_prep_extract_opts(prep, &eo);
    eo.grow_vocab = grow_vocab;
    mf_extract_stats_t st;
    int rc = mf_extract_file(path, &eo, prep, vocab, t, &st, meta, err, errlen);
    if (rc == MF_OK && unknown)
        *unknown += st.unknown;
    return rc;
}

int mf_dataset_add(mf_dataset_t *ds, const char *family, mf_trace_t *t, int row,
                   const mf_vocab_t *from, mf_vocab_t *to)
{
    int rc = MF_OK;
    if (from != to) {
        for (size_t i = 0; i < t->n && rc == MF_OK; i++) {
            const char *name = mf_vocab_name(from, t->ids[i]);
            int id = name ? mf_vocab_add(to, name, strlen(name)) : MF_EINVAL;
            if (id < 0)
                rc = id == MF_ENOMEM ? MF_ENOMEM : MF_ELIMIT;
            else
                t->ids[i] = id;
        }
    }
    int li = rc == MF_OK ? mf_dataset_label(ds, family) : rc;
    mf_sample_t *s = li >= 0 ? add_sample(ds) : NULL;
    if (!s) {
        mf_trace_destroy(t);
        return li < 0 ? li : MF_ENOMEM;
    }
    s->trace = *t;
    s->label = li;
    s->split = MF_SPLIT_ANY;
    s->row = row;
    mf_trace_init(t);
    return MF_OK;
}
