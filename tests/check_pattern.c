/* check_pattern.c - representative patterns: training's pattern and its gen_epoch snapshot,
 * replaying stored patterns bit for bit by regeneration, the generator's cycle-breaking
 * rules, the stop rules, allocation failure. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "internal.h"
#include "lstm.h"
#include "model.h"
#include "pattern.h"
#include "testutil.h"
#include "train.h"
#include "vocab.h"

/* A model of two toy families trained with `epochs` and `gen_epoch` (tiny network). */
static mf_model_t *train_toy(int epochs, int gen_epoch)
{
    mf_model_t *m = tu_model_letters('f');
    m->opts.nembed = 4;
    m->opts.nhidden = 8;
    m->opts.ndense = 4;
    m->opts.bptt = 4;
    m->opts.batch = 2;
    m->opts.gen_len = 60;
    m->opts.epochs = epochs;
    m->opts.gen_epoch = gen_epoch;
    mf_dataset_t ds;
    mf_dataset_init(&ds);
    const char *tr[6] = {"abcabcabdabc", "abcadcabcabc", "abcabcabcaec",
                         "defedfdefdef", "dfedefdefdaf", "defdefdfedef"};
    ds.samples = mf__calloc(6, sizeof *ds.samples);
    ck_assert_ptr_nonnull(ds.samples);
    ds.n = ds.cap = 6;
    ck_assert_int_eq(mf_dataset_label(&ds, "abc"), 0);
    ck_assert_int_eq(mf_dataset_label(&ds, "def"), 1);
    for (int i = 0; i < 6; i++) {
        tu_trace_letters(&ds.samples[i].trace, tr[i]);
        ds.samples[i].label = i / 3;
        ds.samples[i].split = MF_SPLIT_TRAIN;
    }
    mf_train_cfg_t cfg;
    mf_train_cfg_default(&cfg);
    cfg.threads = 1;
    char err[256];
    ck_assert_msg(mf_train_model(m, &ds, &cfg, err, sizeof err) == MF_OK, "%s", err);
    mf_dataset_destroy(&ds);
    return m;
}

/* train_toy(epochs, gen_epoch), with *g the model's generation options. */
static mf_model_t *train_toy_gen(int epochs, int gen_epoch, mf_gen_opts_t *g)
{
    mf_model_t *m = train_toy(epochs, gen_epoch);
    mf_gen_opts_from_model(m, g);
    return m;
}

/* gen_epoch E of an N-epoch run: the pattern is the one an E-epoch run generates (the
 * generator's random stream does not depend on the training), the network is the N-epoch
 * one; gen_epoch 0 or >= epochs is the last epoch's pattern. */
START_TEST(test_gen_epoch_snapshot)
{
    mf_model_t *e2 = train_toy(2, 0), *e5g2 = train_toy(5, 2), *e5 = train_toy(5, 0);
    mf_model_t *e5g9 = train_toy(5, 9);
    size_t np = e2->fam[0].lstm->nparams;
    int pattern_moved = 0;
    for (int f = 0; f < 2; f++) {
        ck_assert_uint_eq(e5g2->fam[f].pattern.n, 60);
        ck_assert_int_eq(memcmp(e2->fam[f].pattern.ids, e5g2->fam[f].pattern.ids,
                                60 * sizeof(int32_t)), 0);
        ck_assert_int_eq(memcmp(e5->fam[f].lstm->w, e5g2->fam[f].lstm->w, np * sizeof(float)),
                         0);
        ck_assert_int_ne(memcmp(e2->fam[f].lstm->w, e5g2->fam[f].lstm->w, np * sizeof(float)),
                         0);
        ck_assert(e5g2->fam[f].loss == e5->fam[f].loss);
        ck_assert_int_eq(memcmp(e5->fam[f].pattern.ids, e5g9->fam[f].pattern.ids,
                                60 * sizeof(int32_t)), 0);
        pattern_moved |= memcmp(e5->fam[f].pattern.ids, e5g2->fam[f].pattern.ids,
                                60 * sizeof(int32_t)) != 0;
    }
    ck_assert(pattern_moved); /* three more epochs change what is sampled */
    mf_model_free(e2);
    mf_model_free(e5g2);
    mf_model_free(e5);
    mf_model_free(e5g9);
}
END_TEST

/* Through a file and back, as `malfam eval` gets it. */
static mf_model_t *save_and_load(mf_model_t *m)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "/tmp/malfam_check_lstm_%ld.model", (long)getpid());
    ck_assert_msg(mf_model_save(m, path, err, sizeof err) == MF_OK, "%s", err);
    mf_model_t *l = NULL;
    ck_assert_msg(mf_model_load(&l, path, err, sizeof err) == MF_OK, "%s", err);
    unlink(path);
    mf_model_free(m);
    return l;
}

/* Sample family f's pattern again from `net` into out, with the model's generation settings
 * and the seed training used, through the plain sampler training uses. */
static void resample(const mf_model_t *m, int f, const mf_lstm_t *net, int32_t *out)
{
    const mf_train_opts_t *o = &m->opts;
    uint64_t rng;
    ck_assert_int_eq(mf_train_pattern_rng(o, m->fam[f].name, mf_vocab_size(m->vocab), &rng),
                     MF_OK);
    ck_assert_int_eq(mf_lstm_generate(net, m->fam[f].pattern.ids[0], (size_t)o->gen_len,
                                      o->gen_temp, &rng, out),
                     MF_OK);
}

/* The gen_epoch snapshot is stored (it is the network an epoch-E run ends with), and
 * sampling it again with the model's own settings and training's seed gives the stored
 * pattern back exactly, through the model file; the final network does not. Without a
 * snapshot (gen_epoch 0, or >= epochs) the final network gives the pattern back. */
START_TEST(test_gen_snapshot_reproduces_pattern)
{
    mf_model_t *e2 = train_toy(2, 0);
    mf_model_t *m = save_and_load(train_toy(5, 2)), *e5 = save_and_load(train_toy(5, 0));
    mf_model_t *e5g5 = train_toy(5, 5);
    int32_t a[60];
    int final_differs = 0;
    for (int f = 0; f < 2; f++) {
        const mf_family_t *fa = &m->fam[f];
        ck_assert_ptr_nonnull(fa->gen_lstm);
        ck_assert_int_eq(memcmp(fa->gen_lstm->w, e2->fam[f].lstm->w,
                                fa->lstm->nparams * sizeof(float)), 0);
        ck_assert_uint_eq(fa->pattern.n, 60);
        resample(m, f, fa->gen_lstm, a);
        ck_assert_int_eq(memcmp(a, fa->pattern.ids, sizeof a), 0);
        resample(m, f, fa->lstm, a);
        final_differs |= memcmp(a, fa->pattern.ids, sizeof a) != 0;

        ck_assert_ptr_null(e5->fam[f].gen_lstm);
        ck_assert_ptr_null(e5g5->fam[f].gen_lstm);
        resample(e5, f, e5->fam[f].lstm, a);
        ck_assert_int_eq(memcmp(a, e5->fam[f].pattern.ids, sizeof a), 0);
    }
    ck_assert(final_differs); /* so the test tells the snapshot from the final network */
    mf_model_free(e2);
    mf_model_free(m);
    mf_model_free(e5);
    mf_model_free(e5g5);
}
END_TEST

/* Regeneration (eval's generation flags, --seeds) samples the snapshot when the model has
 * one: the same patterns as a model whose final network is that snapshot, other patterns
 * than the final network's. */
START_TEST(test_regen_uses_snapshot)
{
    mf_model_t *m = train_toy(5, 2), *as = train_toy(5, 2), *fin = train_toy(5, 2);
    for (int f = 0; f < 2; f++) {
        mf_lstm_free(as->fam[f].lstm); /* as: the snapshot is its only network */
        as->fam[f].lstm = as->fam[f].gen_lstm;
        as->fam[f].gen_lstm = NULL;
        mf_lstm_free(fin->fam[f].gen_lstm); /* fin: as a file without snapshots */
        fin->fam[f].gen_lstm = NULL;
    }
    mf_gen_opts_t g = {.len = 60, .temp = 1.0f, .top_p = 1.0f, .start = -1, .seed = 7};
    ck_assert_int_eq(mf_pattern_regen(m, &g), MF_OK);
    ck_assert_int_eq(mf_pattern_regen(as, &g), MF_OK);
    ck_assert_int_eq(mf_pattern_regen(fin, &g), MF_OK);
    int differs = 0;
    for (int f = 0; f < 2; f++) {
        ck_assert_uint_eq(m->fam[f].pattern.n, 60);
        ck_assert_int_eq(memcmp(m->fam[f].pattern.ids, as->fam[f].pattern.ids,
                                60 * sizeof(int32_t)), 0);
        differs |= memcmp(m->fam[f].pattern.ids, fin->fam[f].pattern.ids,
                          60 * sizeof(int32_t)) != 0;
    }
    ck_assert(differs);
    mf_model_free(m);
    mf_model_free(as);
    mf_model_free(fin);
}
END_TEST

/* Copy every family's stored pattern, regenerate with the model's own settings, and assert
 * every family gets its pattern back id for id; returns how many families were checked. */
static int assert_regen_replays(mf_model_t *m, const char *what)
{
    mf_trace_t *kept = calloc((size_t)m->nfam, sizeof *kept);
    ck_assert_ptr_nonnull(kept);
    for (int f = 0; f < m->nfam; f++)
        ck_assert_int_eq(mf_trace_copy(&kept[f], &m->fam[f].pattern), MF_OK);
    mf_gen_opts_t g;
    mf_gen_opts_from_model(m, &g);
    ck_assert_int_eq(mf_pattern_regen(m, &g), MF_OK);
    int n = 0;
    for (int f = 0; f < m->nfam; f++) {
        const mf_trace_t *p = &m->fam[f].pattern;
        if (!m->fam[f].lstm)
            continue;
        ck_assert_uint_eq(p->n, kept[f].n);
        size_t i = 0;
        while (i < p->n && p->ids[i] == kept[f].ids[i])
            i++;
        ck_assert_msg(i == p->n, "%s: family %s: regenerated pattern differs at call %zu of %zu",
                      what, m->fam[f].name, i, p->n);
        n++;
    }
    for (int f = 0; f < m->nfam; f++)
        mf_trace_destroy(&kept[f]);
    free(kept);
    return n;
}

/* Regeneration with the model's own settings replays training's draw: every stored pattern
 * comes back id for id, from the gen_epoch snapshot and without one, in memory and through
 * the model file. Toy families (6 ids) and the real Mal-API families (a vocabulary of 342
 * and 400-call patterns at temperature 1, where a sampler whose sums differ in the last bits
 * from training's, or another seed mixing, goes another way within a few calls). */
START_TEST(test_regen_replays_stored_patterns)
{
    mf_model_t *g2 = train_toy(5, 2), *g0 = train_toy(5, 0);
    ck_assert_ptr_nonnull(g2->fam[0].gen_lstm);
    ck_assert_ptr_null(g0->fam[0].gen_lstm);
    ck_assert_int_eq(assert_regen_replays(g2, "toy, snapshot"), 2);
    ck_assert_int_eq(assert_regen_replays(g0, "toy, final network"), 2);
    g2 = save_and_load(g2);
    ck_assert_int_eq(assert_regen_replays(g2, "toy, snapshot, loaded"), 2);
    mf_model_free(g2);
    mf_model_free(g0);

    mf_vocab_t *v;
    mf_dataset_t ds;
    mf_prep_t prep = {1, 100};
    tu_load_malapi(&v, &ds, MF_SPLIT_ANY, &prep);
    char err[256] = "";
    for (int gen_epoch = 0; gen_epoch <= 1; gen_epoch++) {
        mf_model_t *m = mf_model_new();
        ck_assert_ptr_nonnull(m);
        m->vocab = mf_vocab_clone(v);
        ck_assert_ptr_nonnull(m->vocab);
        m->prep = prep;
        m->opts.nembed = 8;
        m->opts.nhidden = 16;
        m->opts.ndense = 8;
        m->opts.epochs = 2;
        m->opts.gen_epoch = gen_epoch;
        m->opts.gen_len = 400;
        m->opts.gen_temp = 1.0f;
        mf_train_cfg_t cfg;
        mf_train_cfg_default(&cfg);
        cfg.threads = 1;
        ck_assert_msg(mf_train_model(m, &ds, &cfg, err, sizeof err) == MF_OK, "%s", err);
        ck_assert_int_eq(m->nfam, 8);
        ck_assert(gen_epoch ? m->fam[0].gen_lstm != NULL : m->fam[0].gen_lstm == NULL);
        ck_assert_int_eq(assert_regen_replays(m, gen_epoch ? "mal-api, snapshot"
                                                           : "mal-api, final network"), 8);
        /* another seed is another draw, not the stored pattern */
        mf_gen_opts_t g;
        mf_gen_opts_from_model(m, &g);
        int32_t first[400];
        memcpy(first, m->fam[0].pattern.ids, sizeof first);
        g.seed++;
        ck_assert_int_eq(mf_pattern_regen(m, &g), MF_OK);
        ck_assert_int_ne(memcmp(first, m->fam[0].pattern.ids, sizeof first), 0);
        mf_model_free(m);
    }
    mf_dataset_destroy(&ds);
    mf_vocab_free(v);
}
END_TEST

/* The generator: one seed gives one sequence; with no rule it is mf_lstm_generate draw for
 * draw (greedy and sampled); the no-repeat rule leaves no repeated n-gram; segments restart
 * the trace; a tiny nucleus is greedy. */
START_TEST(test_generate_rules)
{
    mf_lstm_dims_t d = {12, 4, 8, 6};
    mf_lstm_t *m = tu_lstm_random(&d, &(uint64_t){3});
    enum { N = 200 };
    int32_t a[N], b[N], g[N];
    uint64_t r1 = 9, r2 = 9;
    ck_assert_int_eq(mf_pattern_generate(m, 2, N, 1.0f, 0.9f, 0, 0, 0, &r1, a), MF_OK);
    ck_assert_int_eq(mf_pattern_generate(m, 2, N, 1.0f, 0.9f, 0, 0, 0, &r2, b), MF_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    for (int i = 0; i < N; i++)
        ck_assert(a[i] >= 0 && a[i] < 12);
    ck_assert_int_eq(mf_pattern_generate(m, 2, N, 0.0f, 1.0f, 0, 0, 0, &r1, a), MF_OK);
    ck_assert_int_eq(mf_lstm_generate(m, 2, N, 0.0f, &r2, g), MF_OK);
    ck_assert_int_eq(memcmp(a, g, sizeof a), 0);
    r1 = r2 = 17;
    ck_assert_int_eq(mf_pattern_generate(m, 2, N, 1.5f, 1.0f, 0, 0, 0, &r1, a), MF_OK);
    ck_assert_int_eq(mf_lstm_generate(m, 2, N, 1.5f, &r2, g), MF_OK);
    ck_assert_int_eq(memcmp(a, g, sizeof a), 0);
    ck_assert_uint_eq(r1, r2); /* one draw per call, no more */
    /* a nucleus holding only the most likely call is greedy */
    ck_assert_int_eq(mf_pattern_generate(m, 2, N, 1.0f, 1e-6f, 0, 0, 0, &r1, a), MF_OK);
    ck_assert_int_eq(mf_lstm_generate(m, 2, N, 0.0f, NULL, g), MF_OK);
    ck_assert_int_eq(memcmp(a, g, sizeof a), 0);
    /* 12 ids allow 144 distinct bigrams: the first 100 calls can avoid any repeat */
    ck_assert_int_eq(mf_pattern_generate(m, 2, 100, 1.0f, 1.0f, 2, 0, 0, &r1, a), MF_OK);
    for (int i = 0; i + 1 < 100; i++)
        for (int j = i + 1; j + 1 < 100; j++)
            ck_assert(a[i] != a[j] || a[i + 1] != a[j + 1]);
    /* greedy too: the rule bans, the sampler takes the best call left */
    ck_assert_int_eq(mf_pattern_generate(m, 2, 100, 0.0f, 1.0f, 2, 0, 0, &r1, a), MF_OK);
    for (int i = 0; i + 1 < 100; i++)
        for (int j = i + 1; j + 1 < 100; j++)
            ck_assert(a[i] != a[j] || a[i + 1] != a[j + 1]);
    ck_assert_int_eq(mf_pattern_generate(m, 2, N, 0.0f, 1.0f, 0, 0, 50, &r1, a), MF_OK);
    /* greedy: calls 1..50 and 51..100 both follow a fresh start */
    ck_assert_int_eq(memcmp(a + 1, a + 51, 50 * sizeof *a), 0);
    ck_assert_int_eq(mf_pattern_generate(m, 12, N, 1.0f, 1.0f, 0, 0, 0, &r1, a), MF_EINVAL);
    ck_assert_int_eq(mf_pattern_generate(m, 2, 0, 1.0f, 1.0f, 0, 0, 0, &r1, a), MF_EINVAL);
    ck_assert_int_eq(mf_pattern_generate(m, 2, N, 1.0f, 0.0f, 0, 0, 0, &r1, a), MF_EINVAL);
    mf_lstm_free(m);
}
END_TEST

/* The stop rule and the noise floor: a distinct cap cuts before the call that would exceed
 * it; min_count keeps only calls emitted that often. */
START_TEST(test_regen_stop_rules)
{
    mf_gen_opts_t g;
    mf_model_t *m = train_toy_gen(3, 0, &g);
    g.len = 200;
    g.max_distinct = 2;
    ck_assert_int_eq(mf_pattern_regen(m, &g), MF_OK);
    for (int f = 0; f < 2; f++) {
        const mf_trace_t *p = &m->fam[f].pattern;
        unsigned char seen[6] = {0};
        int nd = 0;
        for (size_t i = 0; i < p->n; i++)
            nd += !seen[p->ids[i]]++;
        ck_assert_int_le(nd, 2);
        ck_assert_uint_lt(p->n, 200);
    }
    g.max_distinct = 0;
    g.min_count = 30;
    ck_assert_int_eq(mf_pattern_regen(m, &g), MF_OK);
    for (int f = 0; f < 2; f++) {
        const mf_trace_t *p = &m->fam[f].pattern;
        size_t cnt[6] = {0};
        for (size_t i = 0; i < p->n; i++)
            cnt[p->ids[i]]++;
        for (int j = 0; j < 6; j++)
            ck_assert(cnt[j] == 0 || cnt[j] >= 30);
    }
    g.len = 0;
    ck_assert_int_eq(mf_pattern_regen(m, &g), MF_EINVAL);
    g.len = 10;
    g.start = 6;
    ck_assert_int_eq(mf_pattern_regen(m, &g), MF_EINVAL);
    mf_model_free(m);
}
END_TEST

typedef struct {
    mf_model_t *m;
    const mf_gen_opts_t *g;
} regen_ctx_t;

static int regen_attempt(void *ctx)
{
    regen_ctx_t *rc = ctx;
    return mf_pattern_regen(rc->m, rc->g);
}

/* libuv's OOM loop over regeneration: every failure is MF_ENOMEM, never a crash or a leak. */
START_TEST(test_regen_oom)
{
    mf_gen_opts_t g;
    mf_model_t *m = train_toy_gen(2, 1, &g);
    g.no_repeat = 3;
    g.restart = 5;
    g.min_count = 2;
    regen_ctx_t rc = {m, &g};
    ck_assert_int_ge(tu_oom_loop(regen_attempt, &rc, 200), 4);
    mf_model_free(m);
}
END_TEST

Suite *suite_pattern(void)
{
    Suite *s = suite_create("pattern");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_generate_rules);
    tcase_add_test(tc, test_gen_epoch_snapshot);
    tcase_add_test(tc, test_gen_snapshot_reproduces_pattern);
    tcase_add_test(tc, test_regen_uses_snapshot);
    tcase_add_test(tc, test_regen_replays_stored_patterns);
    tcase_add_test(tc, test_regen_stop_rules);
    tcase_add_test(tc, test_regen_oom);
    suite_add_tcase(s, tc);
    return s;
}
