/* testutil.h - helpers shared by the Check suites (header-only, static). */
#ifndef MF_TESTUTIL_H
#define MF_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* mf__alloc_fail_after */
#include "model.h"    /* also dataset.h, lstm.h, vocab.h, mf.h */

/* Root of the shared data ($MF_DATA, default ../shared/data). Fails the test loudly when it
 * is missing: real fixtures are not optional. */
static inline const char *tu_data(void)
{
    const char *d = getenv("MF_DATA");
    if (!d || !*d)
        d = "../shared/data";
    static char probe[4096];
    snprintf(probe, sizeof probe, "%s/mal-api-2019-808/ApiIndex.txt", d);
    FILE *f = fopen(probe, "r");
    ck_assert_msg(f != NULL, "shared data not found at %s (set MF_DATA)", d);
    fclose(f);
    return d;
}

/* "$MF_DATA/<rel>" in a static buffer (one at a time). */
static inline const char *tu_path(const char *rel)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s/%s", tu_data(), rel);
    return p;
}

/* Read a whole file into a malloc'd buffer; *len gets its size. NULL when it cannot. */
static inline char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; }
            else b = nb;
        }
    }
    fclose(f);
    if (len)
        *len = n;
    return b;
}

/* Python interpreter with Debian's packages (torch, django): $PYTHON or /usr/bin/python3. */
static inline const char *tu_python(void)
{
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* ---- fixtures ---------------------------------------------------------------------------- */

/* The Mal-API vocabulary (mal-api-2019-808/ApiIndex.txt). Fails the test when it does not
 * load. Free with mf_vocab_free(). */
static inline mf_vocab_t *tu_malapi_vocab(void)
{
    mf_vocab_t *v = NULL;
    char err[512] = "";
    int rc = mf_vocab_load(&v, tu_path("mal-api-2019-808/ApiIndex.txt"), err, sizeof err);
    ck_assert_msg(rc == MF_OK, "vocab: %s: %s", mf_err_name(rc), err);
    return v;
}

/* Load the Mal-API samples of `split` (MF_SPLIT_ANY/TRAIN/TEST) from calls.txt.gz and
 * index.csv into ds, which this initialises (the caller destroys it), through vocabulary v,
 * preprocessed by prep (NULL: none); *unknown (when not NULL) gets the count of unknown
 * calls. Fails the test unless the load returns MF_OK. */
static inline void tu_malapi_split(mf_dataset_t *ds, const mf_vocab_t *v, int split,
                                   const mf_prep_t *prep, size_t *unknown)
{
    char calls[4096], index[4096], err[512] = "";
    snprintf(calls, sizeof calls, "%s", tu_path("mal-api-2019-808/calls.txt.gz"));
    snprintf(index, sizeof index, "%s", tu_path("mal-api-2019-808/index.csv"));
    mf_dataset_init(ds);
    int rc = mf_dataset_load_malapi(ds, calls, index, v, split, prep, unknown, err, sizeof err);
    ck_assert_msg(rc == MF_OK, "load: %s: %s", mf_err_name(rc), err);
}

/* Both of the above: *v gets the Mal-API vocabulary (free it with mf_vocab_free()) and ds
 * the samples of `split` through it, preprocessed by prep (NULL: none). */
static inline void tu_load_malapi(mf_vocab_t **v, mf_dataset_t *ds, int split,
                                  const mf_prep_t *prep)
{
    *v = tu_malapi_vocab();
    tu_malapi_split(ds, *v, split, prep, NULL);
}

/* A model whose vocabulary is the one-letter names 'a'..last (ids 0, 1, ...), with no
 * families yet. */
static inline mf_model_t *tu_model_letters(char last)
{
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->vocab = mf_vocab_new();
    ck_assert_ptr_nonnull(m->vocab);
    for (char c = 'a'; c <= last; c++)
        ck_assert_int_eq(mf_vocab_add(m->vocab, &c, 1), c - 'a');
    return m;
}

/* Initialise t with the ids of the letters of s ('a' is 0, as in tu_model_letters). */
static inline void tu_trace_letters(mf_trace_t *t, const char *s)
{
    mf_trace_init(t);
    for (; *s; s++)
        ck_assert_int_eq(mf_trace_push(t, *s - 'a'), MF_OK);
}

/* A network of dims *d with random weights from mf_lstm_init(seed *rng, which advances).
 * Free with mf_lstm_free(). */
/* A synthetic trace of class c: calls 3c..3c+2 mostly, the two shared calls `shared` and
 * shared+1 now and then, from a fixed LCG seeded with `seed`. */
static inline void tu_class_trace(mf_trace_t *t, int c, int shared, uint32_t seed, size_t n)
{
    mf_trace_init(t);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = (seed >> 16) % 5;
        ck_assert_int_eq(mf_trace_push(t, r < 3 ? 3 * c + (int)r : shared + (int)(r - 3)), MF_OK);
    }
}

static inline mf_lstm_t *tu_lstm_random(const mf_lstm_dims_t *d, uint64_t *rng)
{
    mf_lstm_t *m = mf_lstm_new(d);
    ck_assert_ptr_nonnull(m);
    mf_lstm_init(m, rng);
    return m;
}

/* ---- the OOM loop ------------------------------------------------------------------------ */

/* One attempt for tu_oom_loop: build (and use) what is under test; return MF_OK, or the error
 * after releasing everything the attempt built. What an MF_OK attempt built it may keep in
 * ctx for the caller. */
typedef int (*tu_oom_fn)(void *ctx);

/* libuv's OOM loop (test/test-loop-oom.c): run fn(ctx) with the Nth allocation failing, for
 * N = 1, 2, ... up to max, until it returns MF_OK. Every failed run must return exactly
 * MF_ENOMEM, and the run that succeeds must have made fewer than N allocations (it succeeded
 * without reaching the failure, not by ignoring it). Fails the test if no run below max
 * succeeds. Returns the number of failed runs (N - 1 of the successful N). */
static inline int tu_oom_loop(tu_oom_fn fn, void *ctx, size_t max)
{
    for (size_t n = 1; n < max; n++) {
        mf__alloc_fail_after(n);
        int rc = fn(ctx);
        size_t made = mf__alloc_fail_after(0);
        if (rc == MF_OK) {
            ck_assert_msg(made < n, "succeeded with allocation %zu failing (%zu made)", n,
                          made);
            return (int)(n - 1);
        }
        ck_assert_msg(rc == MF_ENOMEM, "allocation %zu failing: %s", n, mf_err_name(rc));
    }
    ck_abort_msg("no success with up to %zu allocations", max - 1);
    return -1;
}

#endif
