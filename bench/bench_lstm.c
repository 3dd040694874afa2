/* bench_lstm.c - LSTM training and scoring speed, against single-thread sgemm peak.
 *
 * usage: bench_lstm [seconds-per-figure]     (default 3)
 *
 * One line per figure, `name n seconds ratio`:
 *   blas_info               the BLAS build, core and thread count (text line, '#')
 *   sgemm_peak  flops s GFLOP/s     1024^3 products, the ceiling for everything below
 *   sgemm_naive flops s speedup     the naive loop on 256^3, ratio = BLAS / naive
 *   lstm_train  tokens s tokens/s   fwd+bwd+Adam, vocab 342, embed 64, hidden 128, dense 128,
 *                                   bptt 64, batch 32 (the reference configuration)
 *   lstm_flops  flops s fraction    matrix flops of those steps / s, ratio = share of peak
 *   lstm_loglik tokens s tokens/s   mf_lstm_loglik on 1000-call traces, same model
 * Run with OPENBLAS_NUM_THREADS=1 (bench_lstm.sh does) so figures compare with one core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "lstm.h"
#include "rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rand_floats(size_t n, uint64_t *rng)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_lstm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(mf_rng_uniform(rng) - 0.5);
    return p;
}

static double sgemm_peak(double budget)
{
    const int n = 1024;
    uint64_t rng = 1;
    float *a = rand_floats((size_t)n * n, &rng), *b = rand_floats((size_t)n * n, &rng);
    float *c = rand_floats((size_t)n * n, &rng);
    mf_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    int reps = 0;
    double t0 = now(), t;
    do {
        mf_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        reps++;
    } while ((t = now() - t0) < budget);
    double flops = 2.0 * n * n * n * reps;
    printf("sgemm_peak %.0f %.3f %.2f\n", flops, t, flops / t * 1e-9);

    const int m = 256;
    t0 = now();
    mf_sgemm_naive(0, 0, m, m, m, 1.0f, a, m, b, m, 0.0f, c, m);
    double tn = now() - t0;
    double fl = 2.0 * m * m * m;
    printf("sgemm_naive %.0f %.3f %.1f\n", fl, tn, (flops / t) / (fl / tn));
    free(a);
    free(b);
    free(c);
    return flops / t;
}

/* Matrix flops of one training window, as lstm.c computes it (multiply-adds counted as 2). */
static double step_flops(int V, int E, int H, int D, int T, int B)
{
    double N = (double)T * B, G = 4.0 * H;
    double fwd = V * E * G + N * H * G + N * H * D + N * D * V;
    double bwd = 2 * N * D * V + 2 * N * H * D + N * H * G /* dh */ + N * H * G /* dWh */
                 + 2 * V * E * G;
    return 2.0 * (fwd + bwd);
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 3.0;
    if (budget <= 0)
        budget = 3.0;
    char info[256];
    int threads = 0;
    mf_blas_info(info, sizeof info, &threads);
    printf("# blas %s threads=%d\n", info, threads);
    double peak = sgemm_peak(budget / 2);

    const int V = 342, E = 64, H = 128, D = 128, T = 64, B = 32;
    mf_lstm_dims_t d = {V, E, H, D};
    mf_lstm_t *m = mf_lstm_new(&d);
    mf_lstm_trainer_t *tr = m ? mf_lstm_trainer_new(m, T, B) : NULL;
    if (!tr) {
        fprintf(stderr, "bench_lstm: out of memory\n");
        return 1;
    }
    uint64_t rng = 11;
    mf_lstm_init(m, &rng);
    /* a long random stream with some structure (ids drawn near the previous one) */
    size_t len = 1u << 20;
    int32_t *seq = malloc(len * sizeof *seq);
    if (!seq)
        return 1;
    seq[0] = 0;
    for (size_t i = 1; i < len; i++)
        seq[i] = (int32_t)((seq[i - 1] + mf_rng_next(&rng) % 17) % V);
    int32_t *x = malloc(sizeof(int32_t) * T * B), *y = malloc(sizeof(int32_t) * T * B);
    size_t stream = len / B, pos = 0;
    long steps = 0;
    double loss = 0.0, t0 = now(), t;
    do {
        if (pos + T + 1 > stream)
            pos = 0;
        for (int s = 0; s < T; s++)
            for (int b = 0; b < B; b++) {
                x[s * B + b] = seq[b * stream + pos + s];
                y[s * B + b] = seq[b * stream + pos + s + 1];
            }
        pos += T;
        loss = mf_lstm_trainer_grad(tr, x, y, T, 1);
        mf_lstm_trainer_adam(tr, 1e-3f, 5.0f);
        steps++;
    } while ((t = now() - t0) < budget);
    double tokens = (double)steps * T * B;
    printf("lstm_train %.0f %.3f %.0f\n", tokens, t, tokens / t);
    double fl = step_flops(V, E, H, D, T, B) * steps;
    printf("lstm_flops %.0f %.3f %.3f\n", fl, t, fl / t / peak);
    fprintf(stderr, "bench_lstm: %ld steps, last loss %.3f, %.2f GFLOP/s of %.2f peak\n", steps,
            loss, fl / t * 1e-9, peak * 1e-9);

    long n = 0;
    double sum = 0.0;
    t0 = now();
    do {
        sum += mf_lstm_loglik(m, seq + (n % 1000) * 1000, 1000);
        n++;
    } while ((t = now() - t0) < budget);
    printf("lstm_loglik %.0f %.3f %.0f\n", n * 1000.0, t, n * 1000.0 / t);
    fprintf(stderr, "bench_lstm: mean loglik %.3f\n", sum / n);

    free(x);
    free(y);
    free(seq);
    mf_lstm_trainer_free(tr);
    mf_lstm_free(m);
    return 0;
}
