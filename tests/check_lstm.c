/* check_lstm.c - the LSTM language model: sgemm against the naive loop, gradients against
 * finite differences and PyTorch, determinism, likelihood, generation, allocation failure. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "internal.h"
#include "lstm.h"
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

/* n ids drawn from 0..nvocab-1 into seq, from *rng. */
static void random_ids(int32_t *seq, int n, int nvocab, uint64_t *rng)
{
    for (int i = 0; i < n; i++)
        seq[i] = (int32_t)(mf_rng_next(rng) % (uint64_t)nvocab);
}

/* mf_lstm_loglik (chunked, one stream) equals minus the trainer's loss on the same sequence,
 * across the chunk boundary. */
START_TEST(test_loglik_matches_trainer)
{
    mf_lstm_dims_t d = {23, 5, 9, 6};
    uint64_t rng = 3;
    mf_lstm_t *m = tu_lstm_random(&d, &rng);
    enum { n = 300 };
    int32_t seq[n];
    random_ids(seq, n, d.nvocab, &rng);
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

/* The one step: stepping a sequence id by id gives mf_lstm_loglik's likelihood; the one
 * sampler: greedy takes the first best, banned (-INFINITY) ids are never drawn, every id
 * banned is an error. */
START_TEST(test_step_and_sample)
{
    mf_lstm_dims_t d = {23, 5, 12, 7};
    uint64_t rng = 3;
    mf_lstm_t *m = tu_lstm_random(&d, &rng);
    enum { N = 300 };
    int32_t seq[N];
    random_ids(seq, N, d.nvocab, &rng);
    float state[24] = {0}, lg[23], ss[23];
    float *scratch = malloc(mf_lstm_step_floats(&d) * sizeof *scratch);
    ck_assert_ptr_nonnull(scratch);
    double sum = 0;
    for (int i = 0; i + 1 < N; i++) {
        ck_assert_int_eq(mf_lstm_step(m, seq[i], state, scratch, lg), MF_OK);
        double mx = lg[0], z = 0;
        for (int j = 1; j < 23; j++)
            mx = lg[j] > mx ? lg[j] : mx;
        for (int j = 0; j < 23; j++)
            z += exp(lg[j] - mx);
        sum += lg[seq[i + 1]] - mx - log(z);
    }
    double ll = mf_lstm_loglik(m, seq, N);
    ck_assert_msg(fabs(sum / (N - 1) - ll) < 1e-5, "step %g loglik %g", sum / (N - 1), ll);
    ck_assert_int_eq(mf_lstm_step(m, 23, state, scratch, lg), MF_EINVAL);
    ck_assert_int_eq(mf_lstm_step(m, -1, state, scratch, lg), MF_EINVAL);

    float l4[4] = {1, 3, 3, -INFINITY};
    ck_assert_int_eq(mf_lstm_sample(l4, 4, 0.0f, 1.0f, NULL, ss), 1);
    for (int k = 0; k < 200; k++) {
        float l[4] = {2, -INFINITY, 2, -INFINITY};
        int id = mf_lstm_sample(l, 4, 1.0f, 1.0f, &rng, ss);
        ck_assert(id == 0 || id == 2);
        float p[4] = {0, 5, 0.1f, 4};
        id = mf_lstm_sample(p, 4, 1.0f, 0.5f, &rng, ss); /* nucleus: id 1 alone */
        ck_assert_int_eq(id, 1);
    }
    float none[2] = {-INFINITY, -INFINITY};
    ck_assert_int_eq(mf_lstm_sample(none, 2, 1.0f, 1.0f, &rng, ss), MF_EINVAL);
    free(scratch);
    mf_lstm_free(m);
}
END_TEST

/* One OOM attempt: network, trainer, a generated sequence and its likelihood. */
static int oom_build_and_use(void *ctx)
{
    const mf_lstm_dims_t *d = ctx;
    mf_lstm_t *m = mf_lstm_new(d);
    mf_lstm_trainer_t *tr = m ? mf_lstm_trainer_new(m, 4, 2) : NULL;
    int32_t out[8] = {0};
    int rc = m ? mf_lstm_generate(m, 1, 8, 1.0f, &(uint64_t){1}, out) : MF_ENOMEM;
    double ll = m ? mf_lstm_loglik(m, out, 8) : NAN;
    if (rc == MF_OK && (!tr || isnan(ll)))
        rc = MF_ENOMEM;
    mf_lstm_trainer_free(tr);
    mf_lstm_free(m);
    return rc;
}

/* libuv's OOM loop: fail the 1st, 2nd, ... allocation until construction succeeds. */
START_TEST(test_oom)
{
    mf_lstm_dims_t d = {9, 3, 4, 5};
    ck_assert_int_ge(tu_oom_loop(oom_build_and_use, &d, 100), 4);
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
    tcase_add_test(tc, test_step_and_sample);
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);
    return s;
}
