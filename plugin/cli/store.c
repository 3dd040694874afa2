/* store.c - a Cuckoo/CAPE store as `malfam train --store` and `malfam label --store` see it:
 * the one walker (analyses in task order and their report.json[.gz]), progress with an ETA,
 * the four label sources (cape, cuckoo, avclass:FILE, csv:FILE) and the coverage table.
 *
 * Each report is read once, through mf_dataset_read_report: the trace (the model's
 * preprocessing) and the label fields come out of the same pass of the one extractor. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dataset.h"
#include "mf.h"
#include "model.h"
#include "trace.h"
#include "vocab.h"

/* ---- the walker -------------------------------------------------------------------------- */

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int cmp_task(const void *a, const void *b)
{
    long x = ((const cli_store_item_t *)a)->task, y = ((const cli_store_item_t *)b)->task;
    return (x > y) - (x < y);
}

int cli_store_list(cli_store_t *s, const char *dir, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    /* the Cuckoo working directory or CAPE root, its storage folder, or analyses itself */
    snprintf(s->analyses, sizeof s->analyses, "%s/storage/analyses", dir);
    if (!is_dir(s->analyses)) {
        snprintf(s->analyses, sizeof s->analyses, "%s/analyses", dir);
        if (!is_dir(s->analyses))
            snprintf(s->analyses, sizeof s->analyses, "%s", dir);
    }
    DIR *d = opendir(s->analyses);
    if (!d) {
        snprintf(err, errlen, "%s", strerror(errno));
        return MF_EIO;
    }
    struct dirent *e;
    size_t cap = 0;
    char path[sizeof s->analyses + 300];
    int rc = MF_OK, rd_errno = 0;
    while (rc == MF_OK) {
        errno = 0;
        if (!(e = readdir(d))) {
            rd_errno = errno; /* NULL and errno unchanged: the end */
            break;
        }
        /* analyses are numbered folders; `latest` (a symlink) and anything else is skipped */
        size_t len = strspn(e->d_name, "0123456789");
        if (len == 0 || len > 18 || e->d_name[len])
            continue;
        long task = strtol(e->d_name, NULL, 10);
        const char *found = NULL;
        static const char *const names[] = {"report.json", "report.json.gz"};
        for (int k = 0; k < 2 && !found; k++) {
            snprintf(path, sizeof path, "%s/%s/reports/%s", s->analyses, e->d_name, names[k]);
            if (access(path, F_OK) == 0)
                found = path;
        }
        if (!found) {
            s->noreport++;
            continue;
        }
        if (s->n == cap) {
            size_t nc = cap ? 2 * cap : 256;
            cli_store_item_t *ni = realloc(s->items, nc * sizeof *ni);
            if (!ni) {
                rc = MF_ENOMEM;
                break;
            }
            s->items = ni;
            cap = nc;
        }
        if (!(s->items[s->n].path = strdup(found))) {
            rc = MF_ENOMEM;
            break;
        }
        s->items[s->n++].task = task;
    }
    if (rc == MF_OK && rd_errno) {
        snprintf(err, errlen, "readdir: %s", strerror(rd_errno));
        rc = MF_EIO;
    }
    closedir(d);
    if (rc == MF_ENOMEM)
        snprintf(err, errlen, "listing the analyses");
    if (rc != MF_OK) {
        cli_store_free(s);
        return rc;
    }
    if (s->n > 1) /* qsort must not get the NULL items of an empty store */
        qsort(s->items, s->n, sizeof *s->items, cmp_task);
    return MF_OK;
}

void cli_store_free(cli_store_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i].path);
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

/* ---- progress ---------------------------------------------------------------------------- */

void cli_progress_start(cli_progress_t *p, const char *what, size_t total, int quiet)
{
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->quiet = quiet;
    p->tty = isatty(2);
    p->t0 = cli_now();
}

void cli_fmt_secs(char *buf, size_t len, double s)
{
    long l = (long)(s + 0.5);
    if (l < 100)
        snprintf(buf, len, "%ld s", l);
    else if (l < 6000)
        snprintf(buf, len, "%ldm%02lds", l / 60, l % 60);
    else
        snprintf(buf, len, "%.1f h", s / 3600);
}

void cli_progress_step(cli_progress_t *p, size_t done, size_t failed)
{
    if (p->quiet || p->total < 2)
        return;
    double now = cli_now(), el = now - p->t0;
    int last = done == p->total;
    if (p->tty ? !last && now - p->last < 0.2 : !last && done % CLI_PROGRESS_EVERY != 0)
        return;
    if (!p->tty && last && done < CLI_PROGRESS_EVERY)
        return; /* a short run's summary says it all */
    p->last = now;
    char eta[32], els[32];
    cli_fmt_secs(els, sizeof els, el);
    cli_fmt_secs(eta, sizeof eta, done ? el / (double)done * (double)(p->total - done) : 0);
    if (p->tty) {
        int width = 30, fill = (int)(done * (size_t)width / p->total);
        char bar[64];
        for (int k = 0; k < width; k++)
            bar[k] = k < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %zu/%zu  %zu failed  %s  ETA %s ", p->what, bar, done,
                p->total, failed, els, eta);
        p->drawn = !last;
        if (last)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %zu/%zu reports, %zu failed, %s, ETA %s\n", p->what, done, p->total,
                failed, els, eta);
    }
    fflush(stderr);
}

void cli_progress_break(cli_progress_t *p)
{
    if (p->drawn)
        fputc('\n', stderr);
    p->drawn = 0;
}

/* ---- label sources ----------------------------------------------------------------------- */

/* The one rule for family names, whatever the source: ASCII whitespace trimmed, ASCII letters
 * lower-cased, cut to MF_MAX_META_NAME bytes ("QakBot" from CAPE and "qakbot" from AVClass
 * are one family). Returns the length; 0 = no family. */
static size_t norm_family(char *dst, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n > MF_MAX_META_NAME)
        n = MF_MAX_META_NAME;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)s[i]);
    dst[n] = '\0';
    return n;
}

enum { SRC_CAPE, SRC_CUCKOO, SRC_AVCLASS, SRC_CSV };

/* key -> family of a label file; fam NULL = the file gives this key two families */
typedef struct {
    char *key;
    char *fam;
} entry_t;

typedef struct {
    int kind;
    const char *spec, *file;
    entry_t *tab; /* open addressing, power-of-two size, at most half full */
    size_t cap, n;
    size_t singletons; /* AVClass SINGLETON lines (unlabelled) */
} labels_t;

static size_t hash_key(const char *k)
{
    size_t h = 1469598103934665603u;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211u;
    return h;
}

static entry_t *find_slot(entry_t *tab, size_t cap, const char *key)
{
    size_t i = hash_key(key) & (cap - 1);
    while (tab[i].key && strcmp(tab[i].key, key))
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static const char *labels_get(const labels_t *L, const char *key, int *found)
{
    *found = 0;
    if (!L->cap || !key[0])
        return NULL;
    entry_t *e = find_slot(L->tab, L->cap, key);
    *found = e->key != NULL;
    return e->fam;
}

static int labels_put(labels_t *L, const char *key, const char *fam)
{
    if (2 * (L->n + 1) > L->cap) {
        size_t nc = L->cap ? 2 * L->cap : 1024;
        entry_t *nt = calloc(nc, sizeof *nt);
        if (!nt)
            return MF_ENOMEM;
        for (size_t i = 0; i < L->cap; i++)
            if (L->tab[i].key)
                *find_slot(nt, nc, L->tab[i].key) = L->tab[i];
        free(L->tab);
        L->tab = nt;
        L->cap = nc;
    }
    entry_t *e = find_slot(L->tab, L->cap, key);
    if (e->key) {
        if (e->fam && strcmp(e->fam, fam)) {
            free(e->fam);
            e->fam = NULL; /* two families for one key: conflicting */
        }
        return MF_OK;
    }
    e->key = strdup(key);
    e->fam = strdup(fam);
    if (!e->key || !e->fam) {
        free(e->key);
        free(e->fam);
        e->key = e->fam = NULL;
        return MF_ENOMEM;
    }
    L->n++;
    return MF_OK;
}

static void labels_free(labels_t *L)
{
    for (size_t i = 0; i < L->cap; i++) {
        free(L->tab[i].key);
        free(L->tab[i].fam);
    }
    free(L->tab);
}

/* A key of a label file, normalised into out: a hash (32, 40 or 64 hex digits) lower-cased,
 * or with `tasks` a task id as "#<n>". 0 when it is neither. */
static int norm_key(char *out, size_t cap, const char *s, size_t n, int tasks)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (tasks && n && n <= 18 && strspn(s, "0123456789") >= n) {
        snprintf(out, cap, "#%ld", strtol(s, NULL, 10));
        return 1;
    }
    if ((n != 32 && n != 40 && n != 64) || n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return 0;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[n] = '\0';
    return 1;
}

/* avclass: `hash<TAB>family[<TAB>more...]` (AVClass, AVClass2); csv: `key,family[,more]`
 * with key a task id or a hash. '#' lines and blank lines are skipped, and a first line whose
 * key is not one (a header). */
static int labels_load(labels_t *L, char *err, size_t errlen)
{
    FILE *f = fopen(L->file, "r");
    if (!f) {
        snprintf(err, errlen, "%s", strerror(errno));
        return MF_EIO;
    }
    char *line = NULL;
    size_t lcap = 0;
    long lineno = 0;
    int rc = MF_OK, csv = L->kind == SRC_CSV;
    char sep = csv ? ',' : '\t';
    while (rc == MF_OK && getline(&line, &lcap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[strspn(line, " \t")] || line[0] == '#')
            continue;
        char *a = strchr(line, sep);
        if (!a && !csv) /* hand-written files: any whitespace */
            a = line + strcspn(line, " ");
        char key[80], fam[MF_MAX_META_NAME + 1];
        if (!a || !*a || !norm_key(key, sizeof key, line, (size_t)(a - line), csv)) {
            if (lineno == 1)
                continue; /* a header */
            snprintf(err, errlen, "line %ld: expected %s", lineno,
                     csv ? "key,family (key: task id, sha256 or md5)" : "hash<TAB>family");
            rc = MF_EFORMAT;
            break;
        }
        a++;
        size_t n = strcspn(a, csv ? "," : "\t");
        if (csv && n >= 2 && a[0] == '"' && a[n - 1] == '"')
            a++, n -= 2;
        if (!csv && n >= 10 && strncasecmp(a, "SINGLETON:", 10) == 0) {
            L->singletons++;
            continue;
        }
        if (norm_family(fam, a, n) == 0)
            continue; /* no family on this line: unlabelled */
        rc = labels_put(L, key, fam);
        if (rc == MF_ENOMEM)
            snprintf(err, errlen, "line %ld", lineno);
    }
    if (rc == MF_OK && ferror(f)) {
        snprintf(err, errlen, "read: %s", strerror(errno));
        rc = MF_EIO;
    }
    free(line);
    fclose(f);
    return rc;
}

static int labels_open(labels_t *L, const char *spec)
{
    memset(L, 0, sizeof *L);
    L->spec = spec;
    if (!strcmp(spec, "cape"))
        L->kind = SRC_CAPE;
    else if (!strcmp(spec, "cuckoo"))
        L->kind = SRC_CUCKOO;
    else if (!strncmp(spec, "avclass:", 8) && spec[8])
        L->kind = SRC_AVCLASS, L->file = spec + 8;
    else if (!strncmp(spec, "csv:", 4) && spec[4])
        L->kind = SRC_CSV, L->file = spec + 4;
    else
        return MF_EINVAL;
    return MF_OK;
}

/* What a source says of one report. */
enum { V_NONE, V_OK, V_CONFLICT };
typedef struct {
    int kind;
    int disagree; /* V_OK, but the source also named another family (resolved) */
    char fam[MF_MAX_META_NAME + 1];
    const char *by; /* cape: what detected it; files: the key that matched */
} verdict_t;

static void verdict_cape(const mf_report_meta_t *m, verdict_t *v)
{
    if (m->ndet == 0 || !norm_family(v->fam, m->det[0].name, strlen(m->det[0].name)))
        return;
    v->kind = V_OK;
    char other[MF_MAX_META_NAME + 1];
    for (size_t i = 1; i < m->ndet; i++)
        if (norm_family(other, m->det[i].name, strlen(m->det[i].name)) && strcmp(other, v->fam))
            v->disagree = 1;
    v->by = m->tag[0] ? m->tag : m->det_by[0] ? m->det_by : "-";
}

/* The family most signatures name; a tie at the top is a conflict. */
static void verdict_cuckoo(const mf_report_meta_t *m, verdict_t *v)
{
    char names[MF_MAX_META_FAMILIES][MF_MAX_META_NAME + 1];
    uint32_t count[MF_MAX_META_FAMILIES];
    size_t n = 0;
    for (size_t i = 0; i < m->nsig; i++) { /* merge names equal once normalised */
        char nm[MF_MAX_META_NAME + 1];
        if (!norm_family(nm, m->sig[i].name, strlen(m->sig[i].name)))
            continue;
        size_t k = 0;
        while (k < n && strcmp(names[k], nm))
            k++;
        if (k == n) {
            memcpy(names[n], nm, sizeof nm);
            count[n++] = 0;
        }
        count[k] += m->sig[i].count;
    }
    if (n == 0)
        return;
    size_t best = 0, ties = 0;
    for (size_t k = 1; k < n; k++) {
        if (count[k] > count[best])
            best = k, ties = 0;
        else if (count[k] == count[best])
            ties++;
    }
    v->kind = ties ? V_CONFLICT : V_OK;
    v->disagree = n > 1;
    memcpy(v->fam, names[best], sizeof v->fam);
}

/* Files: the task id (csv), the sha256 and the md5 are looked up; they must agree. */
static void verdict_file(const labels_t *L, long task, const mf_report_meta_t *m, verdict_t *v)
{
    char tkey[32];
    snprintf(tkey, sizeof tkey, "#%ld", task);
    const char *keys[3] = {L->kind == SRC_CSV ? tkey : "", m->sha256, m->md5};
    static const char *const by[3] = {"task", "sha256", "md5"};
    for (int k = 0; k < 3; k++) {
        int found;
        const char *fam = labels_get(L, keys[k], &found);
        if (!found)
            continue;
        if (!fam || (v->kind == V_OK && strcmp(v->fam, fam))) {
            v->kind = V_CONFLICT;
            return;
        }
        if (v->kind == V_NONE) {
            v->kind = V_OK;
            v->by = by[k];
            snprintf(v->fam, sizeof v->fam, "%s", fam);
        }
    }
}

/* ---- the coverage table ------------------------------------------------------------------ */

typedef struct {
    char *name;
    size_t count;
    struct {
        const char *by; /* a string literal or one of bys[] */
        size_t n;
    } by[8];
    size_t nby, by_other;
} family_t;

typedef struct {
    mf_trace_t trace;
    int fam;
    long task;
} pending_t;

typedef struct {
    family_t *fam;
    size_t nfam, cap;
    char bys[32][MF_MAX_META_NAME + 1]; /* tag strings seen (cape), interned */
    size_t nbys;
} table_t;

static int table_add(table_t *t, const verdict_t *v)
{
    size_t i = 0;
    while (i < t->nfam && strcmp(t->fam[i].name, v->fam))
        i++;
    if (i == t->nfam) {
        if (t->nfam == t->cap) {
            size_t nc = t->cap ? 2 * t->cap : 64;
            family_t *nf = realloc(t->fam, nc * sizeof *nf);
            if (!nf)
                return MF_ENOMEM;
            t->fam = nf;
            t->cap = nc;
        }
        memset(&t->fam[i], 0, sizeof t->fam[i]);
        if (!(t->fam[i].name = strdup(v->fam)))
            return MF_ENOMEM;
        t->nfam++;
    }
    family_t *f = &t->fam[i];
    f->count++;
    if (v->by) {
        const char *by = v->by;
        size_t b = 0;
        while (b < t->nbys && strcmp(t->bys[b], by))
            b++;
        if (b == t->nbys && t->nbys < 32)
            snprintf(t->bys[t->nbys++], sizeof t->bys[0], "%s", by);
        by = b < t->nbys ? t->bys[b] : "other";
        size_t k = 0;
        while (k < f->nby && strcmp(f->by[k].by, by))
            k++;
        if (k == f->nby && f->nby < 8)
            f->by[f->nby++].by = by;
        if (k < f->nby)
            f->by[k].n++;
        else
            f->by_other++;
    }
    return (int)i;
}

static int cmp_family(const void *a, const void *b)
{
    const family_t *x = *(family_t *const *)a, *y = *(family_t *const *)b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->name, y->name);
}

static void print_family(const family_t *f, int show_by)
{
    printf("%-24s %7zu", f->name, f->count);
    if (show_by) {
        /* most frequent source first */
        int used[8] = {0};
        for (size_t k = 0; k < f->nby; k++) {
            size_t best = f->nby;
            for (size_t j = 0; j < f->nby; j++)
                if (!used[j] && (best == f->nby || f->by[j].n > f->by[best].n ||
                                 (f->by[j].n == f->by[best].n &&
                                  strcmp(f->by[j].by, f->by[best].by) < 0)))
                    best = j;
            used[best] = 1;
            printf("%s%s %zu", k ? ", " : "  ", f->by[best].by, f->by[best].n);
        }
        if (f->by_other)
            printf(", other %zu", f->by_other);
    }
    putchar('\n');
}

/* ---- train --store ----------------------------------------------------------------------- */

#define SHOW_SKIPPED 3 /* reasons printed for the first skipped reports */

int cli_store_dataset(const char *dir, const char *spec, int min_samples, int quiet,
                      mf_model_t *m, int grow, mf_dataset_t *ds, size_t *unknown)
{
    labels_t L;
    char err[512] = "";
    if (labels_open(&L, spec) != MF_OK) {
        cli_error(spec, MF_EINVAL, "--labels: cape, cuckoo, avclass:FILE or csv:FILE");
        return 2;
    }
    int rc, status = 1;
    cli_store_t st;
    table_t t;
    memset(&t, 0, sizeof t);
    memset(&st, 0, sizeof st);
    pending_t *pend = NULL;
    size_t npend = 0;
    family_t **order = NULL;
    /* a new model's vocabulary gets only the names of the traces it trains on, in the order
     * --reports would add them: read into a scratch vocabulary, renumber when adding */
    mf_vocab_t *scratch = grow ? mf_vocab_new() : m->vocab;
    if (!scratch) {
        cli_error("vocabulary", MF_ENOMEM, NULL);
        goto done;
    }
    if (L.file && (rc = labels_load(&L, err, sizeof err)) != MF_OK) {
        cli_error(L.file, rc, err);
        status = rc == MF_ENOMEM ? 1 : 2;
        goto done;
    }
    if ((rc = cli_store_list(&st, dir, err, sizeof err)) != MF_OK) {
        cli_error(dir, rc, err);
        status = rc == MF_ENOMEM ? 1 : 2;
        goto done;
    }
    if (!(pend = calloc(st.n ? st.n : 1, sizeof *pend))) {
        cli_error("store", MF_ENOMEM, NULL);
        goto done;
    }
    size_t skipped = 0, labelled = 0, disagree = 0, conflict = 0, none = 0;
    cli_progress_t pr;
    cli_progress_start(&pr, "malfam train: reading", st.n, quiet);
    for (size_t i = 0; i < st.n; i++) {
        mf_report_meta_t meta;
        mf_trace_t tr;
        mf_trace_init(&tr);
        rc = mf_dataset_read_report(st.items[i].path, scratch, grow, &m->prep, &tr, &meta,
                                    unknown, err, sizeof err);
        if (rc == MF_ENOMEM) {
            cli_progress_break(&pr);
            cli_error(st.items[i].path, rc, err);
            mf_trace_destroy(&tr);
            goto done;
        }
        if (rc != MF_OK) { /* a bad report is skipped, counted, and the run goes on */
            if (skipped++ < SHOW_SKIPPED) {
                cli_progress_break(&pr);
                cli_error(st.items[i].path, rc, err);
            }
            mf_trace_destroy(&tr);
            cli_progress_step(&pr, i + 1, skipped);
            continue;
        }
        verdict_t v;
        memset(&v, 0, sizeof v);
        if (L.kind == SRC_CAPE)
            verdict_cape(&meta, &v);
        else if (L.kind == SRC_CUCKOO)
            verdict_cuckoo(&meta, &v);
        else
            verdict_file(&L, st.items[i].task, &meta, &v);
        if (v.kind == V_OK) {
            int f = table_add(&t, &v);
            if (f < 0) {
                cli_error("store", MF_ENOMEM, NULL);
                mf_trace_destroy(&tr);
                goto done;
            }
            labelled++;
            disagree += v.disagree;
            pend[npend].trace = tr;
            pend[npend].fam = f;
            pend[npend++].task = st.items[i].task;
        } else {
            conflict += v.kind == V_CONFLICT;
            none += v.kind == V_NONE;
            mf_trace_destroy(&tr);
        }
        cli_progress_step(&pr, i + 1, skipped);
    }
    if (skipped > SHOW_SKIPPED)
        fprintf(stderr, "malfam train: %zu more reports skipped\n", skipped - SHOW_SKIPPED);

    static const char *const resolved[] = {"first detection kept", "majority kept",
                                           "", ""};
    printf("store %s: %zu analyses, %zu reports read, %zu skipped (unreadable or bad), "
           "%zu without a report\n", st.analyses, st.n + st.noreport, st.n - skipped, skipped,
           st.noreport);
    printf("labels %s: %zu labelled", spec, labelled);
    if (disagree)
        printf(" (%zu with disagreeing families: %s)", disagree, resolved[L.kind]);
    printf(", %zu conflicting (not used), %zu unlabelled", conflict, none);
    if (L.singletons)
        printf(" (file: %zu SINGLETON lines)", L.singletons);
    putchar('\n');
    if (!(order = malloc((t.nfam ? t.nfam : 1) * sizeof *order))) {
        cli_error("store", MF_ENOMEM, NULL);
        goto done;
    }
    for (size_t i = 0; i < t.nfam; i++)
        order[i] = &t.fam[i];
    qsort(order, t.nfam, sizeof *order, cmp_family);
    int show_by = L.kind != SRC_CUCKOO;
    if (t.nfam)
        printf("%-24s %7s%s\n", "family", "reports", show_by ? "  by" : "");
    for (size_t i = 0; i < t.nfam; i++)
        print_family(order[i], show_by);
    size_t ndrop = 0, nkept = 0;
    for (size_t i = 0; i < t.nfam; i++)
        if (order[i]->count < (size_t)min_samples)
            printf("%s%s (%zu)", ndrop++ ? ", " : "dropped, fewer than --min-samples reports: ",
                   order[i]->name, order[i]->count);
    if (ndrop)
        printf("\n");
    /* the kept reports, in task order, become the dataset */
    for (size_t i = 0; i < npend; i++) {
        family_t *f = &t.fam[pend[i].fam];
        if (f->count < (size_t)min_samples)
            continue;
        rc = mf_dataset_add(ds, f->name, &pend[i].trace, (int)pend[i].task, scratch, m->vocab);
        if (rc != MF_OK) {
            cli_error(f->name, rc, rc == MF_ELIMIT ? "too many families or API names" : NULL);
            goto done;
        }
        nkept++;
    }
    printf("training set: %zu reports, %d families (--min-samples %d)\n", nkept, ds->nlabels,
           min_samples);
    fflush(stdout);
    status = 0;
done:
    for (size_t i = 0; i < npend; i++)
        mf_trace_destroy(&pend[i].trace);
    free(pend);
    free(order);
    for (size_t i = 0; i < t.nfam; i++)
        free(t.fam[i].name);
    free(t.fam);
    cli_store_free(&st);
    labels_free(&L);
    if (scratch != m->vocab)
        mf_vocab_free(scratch);
    return status;
}
