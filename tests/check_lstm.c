/* check_lstm.c - the LSTM language model: sgemm against the naive loop, gradients against
 * finite differences and PyTorch, determinism, likelihood, generation, allocation failure. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "eval.h"
#include "internal.h"
#include "lstm.h"
#include "model.h"
#include "rng.h"
#include "train.h"
#include "testutil.h"

static void fill_random(float *p, size_t n, float scale, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = scale * (float)(2.0 * mf_rng_uniform(rng) - 1.0);
}

/* ---- sgemm ------------------------------------------------------------------------------ */

START_TEST(test_sgemm_matches_naive)
{
    uint64_t rng = 5;
    int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 130, 65}, {32, 512, 128}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
                float *c1 = malloc(sizeof(float) * m * n), *c2 = malloc(sizeof(float) * m * n);
                fill_random(a, (size_t)m * k, 1.0f, &rng);
                fill_random(b, (size_t)k * n, 1.0f, &rng);
                fill_random(c1, (size_t)m * n, 1.0f, &rng);
                memcpy(c2, c1, sizeof(float) * m * n);
                int lda = ta ? m : k, ldb = tb ? k : n;
                mf_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c1, n);
                mf_sgemm_naive(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c2, n);
                double maxerr = 0.0;
                for (int i = 0; i < m * n; i++) {
                    double e = fabs(c1[i] - c2[i]) / (1.0 + fabs(c2[i]));
                    maxerr = e > maxerr ? e : maxerr;
                }
                ck_assert_msg(maxerr < 1e-5, "m%d n%d k%d ta%d tb%d: max err %g", m, n, k, ta,
                              tb, maxerr);
                free(a); free(b); free(c1); free(c2);
            }
        }
    }
    char info[256];
    int threads = 0;
    ck_assert_int_gt(mf_blas_info(info, sizeof info, &threads), 0);
    ck_assert_int_ge(threads, 1);
}
END_TEST

/* ---- a tiny model and one window ----------------------------------------------------------- */

typedef struct {
    mf_lstm_t *m;
    mf_lstm_trainer_t *tr;
    int T, B;
    int32_t x[64], y[64];
} tiny_t;

static void tiny_setup(tiny_t *k, int V, int E, int H, int D, int T, int B, uint64_t seed)
{
    mf_lstm_dims_t d = {V, E, H, D};
    uint64_t rng = seed;
    k->m = mf_lstm_new(&d);
    ck_assert_ptr_nonnull(k->m);
    mf_lstm_init(k->m, &rng);
    /* larger weights than training starts with, so every nonlinearity is off its linear part */
    fill_random(k->m->w, k->m->nparams, 0.8f, &rng);
    k->tr = mf_lstm_trainer_new(k->m, T, B);
    ck_assert_ptr_nonnull(k->tr);
    k->T = T;
    k->B = B;
    ck_assert_int_le(T * B, 64);
    for (int i = 0; i < T * B; i++) {
        k->x[i] = (int32_t)(mf_rng_next(&rng) % (uint64_t)V);
        k->y[i] = (int32_t)(mf_rng_next(&rng) % (uint64_t)V);
    }
    /* a non-zero carried state, so the state path is checked too */
    fill_random(mf_lstm_trainer_state(k->tr, 0), (size_t)B * H, 0.5f, &rng);
    fill_random(mf_lstm_trainer_state(k->tr, 1), (size_t)B * H, 0.5f, &rng);
}

static void tiny_teardown(tiny_t *k)
{
    mf_lstm_trainer_free(k->tr);
    mf_lstm_free(k->m);
}

static double tiny_loss(tiny_t *k)
{
    return mf_lstm_trainer_grad(k->tr, k->x, k->y, k->T, 0);
}

/* Finite differences in float32, two ways per tensor:
 *  - directional (kann's kad_check_grad): move the whole tensor along a random direction u,
 *    compare (f(w+eps u) - f(w-eps u)) / 2eps with g.u; summing over the tensor makes the
 *    difference large against float rounding of the loss;
 *  - elementwise for the 3 largest gradient entries of the tensor.
 * Relative error < 1e-2 for both, as float32 allows. */
START_TEST(test_gradient_finite_differences)
{
    tiny_t k;
    tiny_setup(&k, 11, 4, 5, 6, 4, 3, 42);
    tiny_loss(&k);
    size_t np = k.m->nparams;
    float *g = malloc(np * sizeof *g), *u = malloc(np * sizeof *u);
    memcpy(g, mf_lstm_trainer_gradient(k.tr), np * sizeof *g);
    mf_lstm_tensor_t L[MF_LSTM_NTENSORS];
    mf_lstm_layout(&k.m->d, L);
    uint64_t rng = 7;
    const float eps = 1e-2f;
    for (int ti = 0; ti < MF_LSTM_NTENSORS; ti++) {
        size_t off = L[ti].off, n = L[ti].rows * L[ti].cols;
        float *w = k.m->w + off;
        for (int rep = 0; rep < 3; rep++) {
            double dot = 0.0;
            fill_random(u, n, 1.0f, &rng);
            for (size_t i = 0; i < n; i++)
                dot += (double)g[off + i] * u[i];
            for (size_t i = 0; i < n; i++)
                w[i] += eps * u[i];
            double fp = tiny_loss(&k);
            for (size_t i = 0; i < n; i++)
                w[i] -= 2 * eps * u[i];
            double fm = tiny_loss(&k);
            for (size_t i = 0; i < n; i++)
                w[i] += eps * u[i];
            double fd = (fp - fm) / (2 * eps);
            double rel = fabs(fd - dot) / fmax(fabs(fd), fabs(dot));
            ck_assert_msg(rel < 1e-2, "%s dir %d: fd %g analytic %g rel %g", L[ti].name, rep,
                          fd, dot, rel);
        }
        for (int top = 0; top < 3 && (size_t)top < n; top++) {
            size_t best = 0;
            for (size_t i = 1; i < n; i++)
                if (fabs(g[off + i]) > fabs(g[off + best]))
                    best = i;
            float save = w[best];
            w[best] = save + eps;
            double fp = tiny_loss(&k);
            w[best] = save - eps;
            double fm = tiny_loss(&k);
            w[best] = save;
            double fd = (fp - fm) / (2 * eps), an = g[off + best];
            double rel = fabs(fd - an) / fmax(fabs(fd), fabs(an));
            ck_assert_msg(rel < 1e-2, "%s[%zu]: fd %g analytic %g rel %g", L[ti].name, best,
                          fd, an, rel);
            g[off + best] = 0.0f; /* next largest next time; g is our copy */
        }
    }
    free(g);
    free(u);
    tiny_teardown(&k);
}
END_TEST

/* Same weights and window through torch.nn in float64 (tests/lstm_torch.py). */
START_TEST(test_matches_pytorch)
{
    tiny_t k;
    tiny_setup(&k, 13, 6, 8, 7, 5, 4, 99);
    double loss = tiny_loss(&k);
    char path[] = "/tmp/malfam_lstm_torch_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    ck_assert_ptr_nonnull(f);
    int32_t hdr[6] = {k.m->d.nvocab, k.m->d.nembed, k.m->d.nhidden, k.m->d.ndense, k.T, k.B};
    size_t N = (size_t)k.T * k.B, BH = (size_t)k.B * k.m->d.nhidden;
    fwrite(hdr, sizeof hdr, 1, f);
    fwrite(k.x, sizeof(int32_t), N, f);
    fwrite(k.y, sizeof(int32_t), N, f);
    fwrite(mf_lstm_trainer_state(k.tr, 0), sizeof(float), BH, f);
    fwrite(mf_lstm_trainer_state(k.tr, 1), sizeof(float), BH, f);
    fwrite(k.m->w, sizeof(float), k.m->nparams, f);
    fwrite(&loss, sizeof loss, 1, f);
    fwrite(mf_lstm_trainer_gradient(k.tr), sizeof(float), k.m->nparams, f);
    ck_assert_int_eq(fclose(f), 0);

    /* the script lives beside this file */
    char script[4096], cmd[8192];
    const char *src = __FILE__, *slash = strrchr(src, '/');
    snprintf(script, sizeof script, "%.*slstm_torch.py", slash ? (int)(slash - src + 1) : 0, src);
    snprintf(cmd, sizeof cmd, "%s %s %s 2>&1", tu_python(), script, path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[512], out[8192] = "";
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        strncat(out, line, sizeof out - strlen(out) - 1);
    }
    int st = pclose(p);
    unlink(path);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code == 3) {
        printf("check_lstm: NOTICE: PyTorch cross-check skipped (torch cannot be imported)\n");
    } else {
        ck_assert_msg(code == 0, "lstm_torch.py exit %d:\n%s", code, out);
    }
    tiny_teardown(&k);
}
END_TEST

/* ---- determinism, training, likelihood, generation ------------------------------------------ */

static void train_cycle(mf_lstm_t *m, uint64_t seed, int steps, double *last_loss)
{
    uint64_t rng = seed;
    mf_lstm_init(m, &rng);
    mf_lstm_trainer_t *tr = mf_lstm_trainer_new(m, 8, 4);
    ck_assert_ptr_nonnull(tr);
    /* four streams over the cycle 0 1 2 3 4 0 1 2 ..., each at a different phase */
    int32_t x[32], y[32];
    double loss = 0.0;
    for (int s = 0; s < steps; s++) {
        for (int t = 0; t < 8; t++)
            for (int b = 0; b < 4; b++) {
                int pos = s * 8 + t + 3 * b;
                x[t * 4 + b] = pos % 5;
                y[t * 4 + b] = (pos + 1) % 5;
            }
        loss = mf_lstm_trainer_grad(tr, x, y, 8, 1);
        mf_lstm_trainer_adam(tr, 1e-2f, 5.0f);
    }
    *last_loss = loss;
    mf_lstm_trainer_free(tr);
}

START_TEST(test_deterministic_and_learns)
{
    mf_lstm_dims_t d = {7, 4, 16, 8};
    mf_lstm_t *a = mf_lstm_new(&d), *b = mf_lstm_new(&d), *c = mf_lstm_new(&d);
    double la, lb, lc;
    train_cycle(a, 1, 150, &la);
    train_cycle(b, 1, 150, &lb);
    train_cycle(c, 2, 150, &lc);
    ck_assert_int_eq(memcmp(a->w, b->w, a->nparams * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(a->w, c->w, a->nparams * sizeof(float)), 0);
    ck_assert_msg(la < 0.05, "a deterministic cycle is not learned: loss %g", la);

    /* greedy generation follows the cycle; the likelihood of the cycle is near 0 */
    int32_t out[20];
    ck_assert_int_eq(mf_lstm_generate(a, 2, 20, 0.0f, NULL, out), MF_OK);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(out[i], (2 + i) % 5);
    double ll = mf_lstm_loglik(a, out, 20);
    ck_assert_msg(ll > -0.1 && ll <= 0.0, "loglik %g", ll);

    /* sampling: same seed, same pattern; ids in range */
    int32_t s1[300], s2[300];
    uint64_t r1 = 9, r2 = 9;
    ck_assert_int_eq(mf_lstm_generate(c, 0, 300, 2.0f, &r1, s1), MF_OK);
    ck_assert_int_eq(mf_lstm_generate(c, 0, 300, 2.0f, &r2, s2), MF_OK);
    ck_assert_int_eq(memcmp(s1, s2, sizeof s1), 0);
    for (int i = 0; i < 300; i++)
        ck_assert(s1[i] >= 0 && s1[i] < 7);
    ck_assert_int_eq(mf_lstm_generate(c, 7, 10, 1.0f, &r1, s1), MF_EINVAL);
    ck_assert_int_eq(mf_lstm_generate(c, 0, 0, 1.0f, &r1, s1), MF_EINVAL);
    mf_lstm_free(a);
    mf_lstm_free(b);
    mf_lstm_free(c);
}
END_TEST

/* mf_lstm_loglik (chunked, one stream) equals minus the trainer's loss on the same sequence,
 * across the chunk boundary. */
START_TEST(test_loglik_matches_trainer)
{
    mf_lstm_dims_t d = {23, 5, 9, 6};
    mf_lstm_t *m = mf_lstm_new(&d);
    uint64_t rng = 3;
    mf_lstm_init(m, &rng);
    enum { n = 300 };
    int32_t seq[n];
    for (int i = 0; i < n; i++)
        seq[i] = (int32_t)(mf_rng_next(&rng) % 23);
    mf_lstm_trainer_t *tr = mf_lstm_trainer_new(m, n - 1, 1);
    double loss = mf_lstm_trainer_grad(tr, seq, seq + 1, n - 1, 0);
    double ll = mf_lstm_loglik(m, seq, n);
    ck_assert_msg(fabs(ll + loss) < 1e-5 * fabs(loss), "loglik %.9g loss %.9g", ll, loss);
    ck_assert(mf_lstm_loglik(m, seq, 1) == 0.0);
    seq[17] = 23;
    ck_assert(isnan(mf_lstm_loglik(m, seq, n)));
    mf_lstm_trainer_free(tr);
    mf_lstm_free(m);
}
END_TEST

START_TEST(test_bad_dims_and_opts)
{
    mf_lstm_dims_t d = {0, 4, 4, 4};
    ck_assert_ptr_null(mf_lstm_new(&d));
    d.nvocab = MF_MAX_VOCAB + 1;
    ck_assert_ptr_null(mf_lstm_new(&d));
    d.nvocab = 5;
    d.nhidden = MF_LSTM_MAX_DIM + 1;
    ck_assert_ptr_null(mf_lstm_new(&d));
    mf_lstm_free(NULL);
    mf_lstm_trainer_free(NULL);

    mf_train_opts_t o;
    char msg[128];
    mf_train_opts_default(&o);
    ck_assert_int_eq(mf_train_opts_check(&o, msg, sizeof msg), MF_OK);
    o.bptt = 0;
    ck_assert_int_eq(mf_train_opts_check(&o, msg, sizeof msg), MF_EINVAL);
    ck_assert(strstr(msg, "bptt") != NULL);
    mf_train_opts_default(&o);
    o.lr = NAN;
    ck_assert_int_eq(mf_train_opts_check(&o, msg, sizeof msg), MF_EINVAL);
    mf_train_opts_default(&o);
    ck_assert_int_gt(o.gen_epoch, 0);
    o.gen_epoch = -1;
    ck_assert_int_eq(mf_train_opts_check(&o, msg, sizeof msg), MF_EINVAL);
    ck_assert(strstr(msg, "pattern epoch") != NULL);
}
END_TEST

/* A model of two toy families trained with `epochs` and `gen_epoch` (tiny network). */
static mf_model_t *train_toy(int epochs, int gen_epoch)
{
    mf_model_t *m = mf_model_new();
    ck_assert_ptr_nonnull(m);
    m->vocab = mf_vocab_new();
    ck_assert_ptr_nonnull(m->vocab);
    for (char c = 'a'; c <= 'f'; c++)
        ck_assert_int_eq(mf_vocab_add(m->vocab, &c, 1), c - 'a');
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
        mf_trace_init(&ds.samples[i].trace);
        for (const char *p = tr[i]; *p; p++)
            ck_assert_int_eq(mf_trace_push(&ds.samples[i].trace, *p - 'a'), MF_OK);
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
 * and the seed training used. (mf_eval_generate would not do: same distribution, but its
 * exp and sums differ in the last bits, so a draw near a boundary can go the other way.) */
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

/* Eval's regeneration (generation flags, --seeds) samples the snapshot when the model has
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
    ck_assert_int_eq(mf_eval_regen_patterns(m, &g), MF_OK);
    ck_assert_int_eq(mf_eval_regen_patterns(as, &g), MF_OK);
    ck_assert_int_eq(mf_eval_regen_patterns(fin, &g), MF_OK);
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

/* libuv's OOM loop: fail the 1st, 2nd, ... allocation until construction succeeds. */
START_TEST(test_oom)
{
    mf_lstm_dims_t d = {9, 3, 4, 5};
    int failures = 0;
    for (size_t n = 1; n < 100; n++) {
        mf__alloc_fail_after(n);
        mf_lstm_t *m = mf_lstm_new(&d);
        mf_lstm_trainer_t *tr = m ? mf_lstm_trainer_new(m, 4, 2) : NULL;
        int32_t out[8] = {0};
        int rc = m ? mf_lstm_generate(m, 1, 8, 1.0f, &(uint64_t){1}, out) : MF_ENOMEM;
        double ll = m ? mf_lstm_loglik(m, out, 8) : NAN;
        mf__alloc_fail_after(0);
        if (m && tr && rc == MF_OK && !isnan(ll)) {
            mf_lstm_trainer_free(tr);
            mf_lstm_free(m);
            break;
        }
        failures++;
        ck_assert(rc == MF_OK || rc == MF_ENOMEM);
        mf_lstm_trainer_free(tr);
        mf_lstm_free(m);
    }
    ck_assert_int_ge(failures, 4);
}
END_TEST

Suite *suite_lstm(void)
{
    Suite *s = suite_create("lstm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sgemm_matches_naive);
    tcase_add_test(tc, test_gradient_finite_differences);
    tcase_add_test(tc, test_matches_pytorch);
    tcase_add_test(tc, test_deterministic_and_learns);
    tcase_add_test(tc, test_loglik_matches_trainer);
    tcase_add_test(tc, test_bad_dims_and_opts);
    tcase_add_test(tc, test_gen_epoch_snapshot);
    tcase_add_test(tc, test_gen_snapshot_reproduces_pattern);
    tcase_add_test(tc, test_regen_uses_snapshot);
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);
    return s;
}
