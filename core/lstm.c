/* lstm.c - the per-family language model: embedding -> LSTM -> dense (tanh) -> softmax.
 *
 * Input: a token id looks up a row of the embedding (nvocab, nembed). A one-hot input times a
 * matrix would select that same row at nvocab times the cost, so we never build one-hots.
 * Better still, the embedding only ever reaches the LSTM through WX, so one training step
 * first forms the table P = EMB * WX (nvocab, 4H) and each step's input projection is a row
 * copy from P; with 2048 tokens per window and 342 ids that is six times fewer flops than
 * projecting every token, forward and backward.
 *
 * Dense layer activation: tanh. It is smooth (finite-difference gradient checks stay clean,
 * unlike ReLU's kink) and bounded like the LSTM output it reads.
 *
 * Shapes: V vocab, E embed, H hidden, D dense, B streams, T steps, N = T*B rows (time-major:
 * row t*B + b). Gates are ordered i, f, g, o in every 4H-wide row.
 */
#include "lstm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "internal.h"

/* ---- small things ----------------------------------------------------------------------- */

int mf_lstm_dims_check(const mf_lstm_dims_t *d)
{
    if (!d || d->nvocab < 1 || d->nvocab > MF_MAX_VOCAB || d->nembed < 1 ||
        d->nembed > MF_LSTM_MAX_DIM || d->nhidden < 1 || d->nhidden > MF_LSTM_MAX_DIM ||
        d->ndense < 1 || d->ndense > MF_LSTM_MAX_DIM)
        return MF_EINVAL;
    return MF_OK;
}

void mf_lstm_layout(const mf_lstm_dims_t *d, mf_lstm_tensor_t t[MF_LSTM_NTENSORS])
{
    size_t V = (size_t)d->nvocab, E = (size_t)d->nembed, H = (size_t)d->nhidden;
    size_t D = (size_t)d->ndense;
    static const char *names[MF_LSTM_NTENSORS] = {"emb", "wx", "wh", "b", "wd", "bd", "wo", "bo"};
    size_t shape[MF_LSTM_NTENSORS][2] = {
        {V, E}, {E, 4 * H}, {H, 4 * H}, {1, 4 * H}, {H, D}, {1, D}, {D, V}, {1, V},
    };
    size_t off = 0;
    for (int i = 0; i < MF_LSTM_NTENSORS; i++) {
        t[i].name = names[i];
        t[i].off = off;
        t[i].rows = shape[i][0];
        t[i].cols = shape[i][1];
        off += shape[i][0] * shape[i][1];
    }
}

size_t mf_lstm_nparams(const mf_lstm_dims_t *d)
{
    if (mf_lstm_dims_check(d) != MF_OK)
        return 0;
    mf_lstm_tensor_t t[MF_LSTM_NTENSORS];
    mf_lstm_layout(d, t);
    return t[MF_LSTM_BO].off + t[MF_LSTM_BO].cols;
}

mf_lstm_t *mf_lstm_new(const mf_lstm_dims_t *d)
{
    size_t n = mf_lstm_nparams(d);
    if (!n)
        return NULL;
    mf_lstm_t *m = mf__calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->d = *d;
    m->nparams = n;
    m->w = mf__calloc(n, sizeof *m->w);
    if (!m->w) {
        mf_lstm_free(m);
        return NULL;
    }
    return m;
}

void mf_lstm_free(mf_lstm_t *m)
{
    if (!m)
        return;
    mf__free(m->w);
    mf__free(m);
}

mf_lstm_t *mf_lstm_clone(const mf_lstm_t *m)
{
    mf_lstm_t *c = mf_lstm_new(&m->d);
    if (c)
        memcpy(c->w, m->w, m->nparams * sizeof *c->w);
    return c;
}

void mf_lstm_init(mf_lstm_t *m, uint64_t *rng)
{
    mf_lstm_tensor_t t[MF_LSTM_NTENSORS];
    mf_lstm_layout(&m->d, t);
    for (int i = 0; i < MF_LSTM_NTENSORS; i++) {
        float *p = m->w + t[i].off;
        size_t n = t[i].rows * t[i].cols;
        float scale;
        if (t[i].rows == 1)
            scale = 0.0f;                       /* biases */
        else if (i == MF_LSTM_EMB)
            scale = 1.0f;                       /* ids carry no scale of their own */
        else
            scale = 1.0f / sqrtf((float)t[i].rows);
        for (size_t k = 0; k < n; k++)
            p[k] = scale * (float)(2.0 * mf_rng_uniform(rng) - 1.0);
    }
    int H = m->d.nhidden;
    float *b = m->w + t[MF_LSTM_B].off;
    for (int j = H; j < 2 * H; j++)
        b[j] = 1.0f;                            /* forget gate starts open */
}

/* ---- elementwise kernels ------------------------------------------------------------------
 * These run on every gate of every step, so they are written as plain loops over arrays the
 * compiler can vectorise, with an exp of our own (libm's expf is a call per element).
 * fexp: 2^(x log2 e) split into 2^k * 2^f, f in [-0.5, 0.5], degree-6 polynomial for 2^f;
 * relative error about 2e-7, same order as float rounding. Exponents are clamped to +-126. */
/* The kernels below are compiled with the loop vectoriser on (-O2 leaves these loops scalar)
 * and, on x86-64 with GCC, cloned for AVX2 with the best clone picked at load time.
 * no-trapping-math lets the clamps in fexp become vector selects; we never test FP flags. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MF_HOT __attribute__((optimize("O3", "no-trapping-math"), target_clones("avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__)
#define MF_HOT __attribute__((optimize("O3", "no-trapping-math")))
#else
#define MF_HOT
#endif
/* the hot kernels' optimize() differs from the file's, which stops GCC inlining plain helpers */
#ifdef __GNUC__
#define MF_INLINE __attribute__((always_inline))
#else
#define MF_INLINE
#endif

MF_INLINE static inline float fexp(float x)
{
    float t = x * 1.44269504089f;
    t = t < -126.0f ? -126.0f : t;
    t = t > 126.0f ? 126.0f : t;
    /* round to nearest by the 1.5 * 2^23 trick: no branch, no libm call */
    float k = (t + 12582912.0f) - 12582912.0f;
    float f = t - k;
    float p = 1.5403530e-4f;
    p = p * f + 1.3333558e-3f;
    p = p * f + 9.6181291e-3f;
    p = p * f + 5.5504109e-2f;
    p = p * f + 2.4022651e-1f;
    p = p * f + 6.9314718e-1f;
    p = p * f + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale); /* 2^k */
    return p * scale;
}

MF_INLINE static inline float fsigm(float x)
{
    return 1.0f / (1.0f + fexp(-x));
}

MF_INLINE static inline float ftanh(float x)
{
    return 2.0f / (1.0f + fexp(-2.0f * x)) - 1.0f;
}

/* One LSTM cell update for B rows. a: (B,4H) pre-activations in, activations out;
 * cp: (B,H) previous cell; c, tc, h: (B,H) new cell, tanh(cell), hidden. c may be cp. */
MF_HOT static void cell_forward(int B, int H, float *restrict a, const float *cp,
                         float *c, float *restrict tc, float *restrict h)
{
    for (int b = 0; b < B; b++) {
        float *ab = a + (size_t)b * 4 * H;
        for (int j = 0; j < 2 * H; j++)
            ab[j] = fsigm(ab[j]);
        for (int j = 2 * H; j < 3 * H; j++)
            ab[j] = ftanh(ab[j]);
        for (int j = 3 * H; j < 4 * H; j++)
            ab[j] = fsigm(ab[j]);
        const float *ig = ab, *fg = ab + H, *gg = ab + 2 * H, *og = ab + 3 * H;
        size_t r = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float cv = fg[j] * cp[r + j] + ig[j] * gg[j];
            float t = ftanh(cv);
            c[r + j] = cv;
            tc[r + j] = t;
            h[r + j] = og[j] * t;
        }
    }
}

/* Backward of cell_forward for B rows. a: (B,4H) activations; tc, cp: (B,H) tanh(cell) and
 * previous cell; dhs: (B,H) gradient on h from the layer above; dh, dc: (B,H) gradient on h
 * and on the cell from step t+1, dc replaced by the gradient on the previous cell;
 * dg: (B,4H) out, gradient on the gate pre-activations. */
MF_HOT static void cell_backward(int B, int H, const float *restrict a, const float *restrict tc,
                                 const float *restrict cp, const float *restrict dhs,
                                 const float *restrict dh, float *restrict dc,
                                 float *restrict dg)
{
    for (int b = 0; b < B; b++) {
        const float *ig = a + (size_t)b * 4 * H, *fg = ig + H, *gg = ig + 2 * H;
        const float *og = ig + 3 * H;
        float *di = dg + (size_t)b * 4 * H, *df = di + H, *dgg = di + 2 * H, *dou = di + 3 * H;
        size_t r = (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float dhv = dhs[r + j] + dh[r + j];
            float t2 = tc[r + j];
            float dcv = dc[r + j] + dhv * og[j] * (1.0f - t2 * t2);
            dou[j] = dhv * t2 * og[j] * (1.0f - og[j]);
            di[j] = dcv * gg[j] * ig[j] * (1.0f - ig[j]);
            dgg[j] = dcv * ig[j] * (1.0f - gg[j] * gg[j]);
            df[j] = dcv * cp[r + j] * fg[j] * (1.0f - fg[j]);
            dc[r + j] = dcv * fg[j];
        }
    }
}

MF_HOT static void vtanh(float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = ftanh(x[i]);
}

/* Copy `bias` (n) into each of `rows` rows of x. */
static void fill_rows(float *x, size_t rows, const float *bias, size_t n)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(x + r * n, bias, n * sizeof *x);
}

/* Column sums of x (rows, n) into out (n), overwriting. */
static void col_sum(const float *restrict x, size_t rows, size_t n, float *restrict out)
{
    memset(out, 0, n * sizeof *out);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < n; j++)
            out[j] += x[r * n + j];
}

/* Softmax of one row in place, each probability then multiplied by `scale`; returns the log
 * partition log(sum exp(x)). Partial sums in 8 lanes so the loop vectorises without
 * reassociation flags. */
MF_HOT static double softmax_row(float *restrict x, int n, float scale)
{
    float mx = x[0];
    for (int j = 1; j < n; j++)
        mx = x[j] > mx ? x[j] : mx;
    for (int j = 0; j < n; j++)
        x[j] = fexp(x[j] - mx);
    float acc[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[j + l];
    float s = 0.0f;
    for (; j < n; j++)
        s += x[j];
    for (int l = 0; l < 8; l++)
        s += acc[l];
    float inv = scale / s;
    for (int k = 0; k < n; k++)
        x[k] *= inv;
    return log((double)s) + mx;
}

/* ---- trainer ----------------------------------------------------------------------------- */

struct mf_lstm_trainer {
    mf_lstm_t *m;
    int T, B;
    long step;           /* Adam steps taken */
    float *block;        /* everything below is carved from this one allocation */
    float *g, *am, *av;  /* gradient, Adam first and second moments: nparams each */
    float *h0, *c0;      /* carried state (B,H) */
    float *P, *dP;       /* (V,4H) input projection table and its gradient */
    float *act;          /* (N,4H) gate activations */
    float *hall, *call;  /* ((T+1)*B, H): row block 0 = state in, block t+1 = after step t */
    float *tc;           /* (N,H) tanh(cell) */
    float *z, *dz;       /* (N,D) dense output and its gradient */
    int Vp;              /* V rounded up to a multiple of 64: OpenBLAS runs the output layer
                            half again faster at such widths (342 -> 384 measured) */
    float *wop, *gwo;    /* (D,Vp) WO zero-padded, and its gradient */
    float *bop;          /* (Vp) BO zero-padded */
    float *lg;           /* (N,Vp) logits -> probabilities -> d(loss)/d(logits) */
    float *dhs;          /* (N,H) gradient reaching h from the dense layer */
    float *dg;           /* (N,4H) gradient of gate pre-activations */
    float *dh, *dc;      /* (B,H) gradient flowing back through time */
};

mf_lstm_trainer_t *mf_lstm_trainer_new(mf_lstm_t *m, int bptt, int batch)
{
    if (!m || bptt < 1 || bptt > MF_LSTM_MAX_DIM || batch < 1 || batch > MF_LSTM_MAX_DIM)
        return NULL;
    size_t V = (size_t)m->d.nvocab, H = (size_t)m->d.nhidden, D = (size_t)m->d.ndense;
    size_t T = (size_t)bptt, B = (size_t)batch, N = T * B, Vp = (V + 63) / 64 * 64;
    size_t sizes[] = {
        m->nparams, m->nparams, m->nparams, B * H, B * H, V * 4 * H, V * 4 * H, N * 4 * H,
        (T + 1) * B * H, (T + 1) * B * H, N * H, N * D, N * D, N * Vp, N * H, N * 4 * H,
        B * H, B * H, D * Vp, D * Vp, Vp,
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += sizes[i];
    mf_lstm_trainer_t *tr = mf__calloc(1, sizeof *tr);
    if (!tr)
        return NULL;
    tr->block = mf__calloc(total, sizeof(float));
    if (!tr->block) {
        mf__free(tr);
        return NULL;
    }
    tr->m = m;
    tr->T = bptt;
    tr->B = batch;
    tr->Vp = (int)Vp;
    float **slots[] = {
        &tr->g, &tr->am, &tr->av, &tr->h0, &tr->c0, &tr->P, &tr->dP, &tr->act, &tr->hall,
        &tr->call, &tr->tc, &tr->z, &tr->dz, &tr->lg, &tr->dhs, &tr->dg, &tr->dh, &tr->dc,
        &tr->wop, &tr->gwo, &tr->bop,
    };
    float *p = tr->block;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *slots[i] = p;
        p += sizes[i];
    }
    return tr;
}

void mf_lstm_trainer_free(mf_lstm_trainer_t *tr)
{
    if (!tr)
        return;
    mf__free(tr->block);
    mf__free(tr);
}

void mf_lstm_trainer_reset(mf_lstm_trainer_t *tr)
{
    size_t n = (size_t)tr->B * tr->m->d.nhidden;
    memset(tr->h0, 0, n * sizeof *tr->h0);
    memset(tr->c0, 0, n * sizeof *tr->c0);
}

float *mf_lstm_trainer_state(mf_lstm_trainer_t *tr, int which)
{
    return which ? tr->c0 : tr->h0;
}

const float *mf_lstm_trainer_gradient(const mf_lstm_trainer_t *tr)
{
    return tr->g;
}

double mf_lstm_trainer_grad(mf_lstm_trainer_t *tr, const int32_t *x, const int32_t *y, int T,
                            int carry)
{
    const mf_lstm_t *m = tr->m;
    const int V = m->d.nvocab, E = m->d.nembed, H = m->d.nhidden, D = m->d.ndense;
    const int B = tr->B, G = 4 * H;
    if (T < 1 || T > tr->T)
        return NAN;
    const int N = T * B;
    mf_lstm_tensor_t L[MF_LSTM_NTENSORS];
    mf_lstm_layout(&m->d, L);
    const float *emb = m->w + L[MF_LSTM_EMB].off, *wx = m->w + L[MF_LSTM_WX].off;
    const float *wh = m->w + L[MF_LSTM_WH].off, *bias = m->w + L[MF_LSTM_B].off;
    const float *wd = m->w + L[MF_LSTM_WD].off, *bd = m->w + L[MF_LSTM_BD].off;
    const float *wo = m->w + L[MF_LSTM_WO].off, *bo = m->w + L[MF_LSTM_BO].off;
    float *g = tr->g;
    size_t BH = (size_t)B * H;

    /* forward: P = EMB WX (V,4H) once, then per step gates = P[x] + b + h WH */
    mf_sgemm(0, 0, V, G, E, 1.0f, emb, E, wx, G, 0.0f, tr->P, G);
    memcpy(tr->hall, tr->h0, BH * sizeof(float));
    memcpy(tr->call, tr->c0, BH * sizeof(float));
    for (int t = 0; t < T; t++) {
        float *a = tr->act + (size_t)t * B * G;
        for (int b = 0; b < B; b++) {
            const float *pr = tr->P + (size_t)x[t * B + b] * G;
            float *ar = a + (size_t)b * G;
            for (int j = 0; j < G; j++)
                ar[j] = pr[j] + bias[j];
        }
        mf_sgemm(0, 0, B, G, H, 1.0f, tr->hall + t * BH, H, wh, G, 1.0f, a, G);
        cell_forward(B, H, a, tr->call + t * BH, tr->call + (t + 1) * BH, tr->tc + t * BH,
                     tr->hall + (t + 1) * BH);
    }
    const float *hs = tr->hall + BH; /* (N,H): the outputs of all steps */

    /* dense and output layers for all steps at once: z = tanh(hs WD + bd), lg = z WO + bo */
    fill_rows(tr->z, N, bd, D);
    mf_sgemm(0, 0, N, D, H, 1.0f, hs, H, wd, D, 1.0f, tr->z, D);
    vtanh(tr->z, (size_t)N * D);
    const int Vp = tr->Vp;
    for (int r = 0; r < D; r++)
        memcpy(tr->wop + (size_t)r * Vp, wo + (size_t)r * V, V * sizeof(float));
    memcpy(tr->bop, bo, V * sizeof(float));
    fill_rows(tr->lg, N, tr->bop, Vp);
    mf_sgemm(0, 0, N, Vp, D, 1.0f, tr->z, D, tr->wop, Vp, 1.0f, tr->lg, Vp);

    /* softmax cross-entropy; lg becomes d(mean loss)/d(logits) = (p - onehot(y)) / N */
    double loss = 0.0;
    float invn = 1.0f / (float)N;
    for (int r = 0; r < N; r++) {
        float *row = tr->lg + (size_t)r * Vp;
        float zy = row[y[r]];
        loss += softmax_row(row, V, invn) - zy;
        row[y[r]] -= invn;
        memset(row + V, 0, (size_t)(Vp - V) * sizeof(float)); /* padding: no gradient */
    }
    loss /= N;

    /* backward: output layer, then dense */
    mf_sgemm(1, 0, D, Vp, N, 1.0f, tr->z, D, tr->lg, Vp, 0.0f, tr->gwo, Vp);
    for (int r = 0; r < D; r++)
        memcpy(g + L[MF_LSTM_WO].off + (size_t)r * V, tr->gwo + (size_t)r * Vp,
               V * sizeof(float));
    col_sum(tr->lg, N, Vp, tr->bop);
    memcpy(g + L[MF_LSTM_BO].off, tr->bop, V * sizeof(float));
    mf_sgemm(0, 1, N, D, Vp, 1.0f, tr->lg, Vp, tr->wop, Vp, 0.0f, tr->dz, D);
    for (size_t i = 0; i < (size_t)N * D; i++)
        tr->dz[i] *= 1.0f - tr->z[i] * tr->z[i];
    mf_sgemm(1, 0, H, D, N, 1.0f, hs, H, tr->dz, D, 0.0f, g + L[MF_LSTM_WD].off, D);
    col_sum(tr->dz, N, D, g + L[MF_LSTM_BD].off);
    mf_sgemm(0, 1, N, H, D, 1.0f, tr->dz, D, wd, D, 0.0f, tr->dhs, H);

    /* backward through time. dh = gradient reaching h_t from later steps, dc likewise. */
    memset(tr->dh, 0, BH * sizeof(float));
    memset(tr->dc, 0, BH * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        const float *a = tr->act + (size_t)t * B * G;
        const float *tc = tr->tc + t * BH, *cp = tr->call + t * BH, *dhs = tr->dhs + t * BH;
        float *dg = tr->dg + (size_t)t * B * G;
        cell_backward(B, H, a, tc, cp, dhs, tr->dh, tr->dc, dg);
        if (t > 0)
            mf_sgemm(0, 1, B, H, G, 1.0f, dg, G, wh, G, 0.0f, tr->dh, H);
    }

    /* weight gradients of all steps in one product each */
    mf_sgemm(1, 0, H, G, N, 1.0f, tr->hall, H, tr->dg, G, 0.0f, g + L[MF_LSTM_WH].off, G);
    col_sum(tr->dg, N, G, g + L[MF_LSTM_B].off);
    memset(tr->dP, 0, (size_t)V * G * sizeof(float));
    for (int r = 0; r < N; r++) {
        float *dst = tr->dP + (size_t)x[r] * G;
        const float *src = tr->dg + (size_t)r * G;
        for (int j = 0; j < G; j++)
            dst[j] += src[j];
    }
    mf_sgemm(1, 0, E, G, V, 1.0f, emb, E, tr->dP, G, 0.0f, g + L[MF_LSTM_WX].off, G);
    mf_sgemm(0, 1, V, E, G, 1.0f, tr->dP, G, wx, G, 0.0f, g + L[MF_LSTM_EMB].off, E);

    if (carry) {
        memcpy(tr->h0, tr->hall + (size_t)T * BH, BH * sizeof(float));
        memcpy(tr->c0, tr->call + (size_t)T * BH, BH * sizeof(float));
    }
    return loss;
}

double mf_lstm_trainer_adam(mf_lstm_trainer_t *tr, float lr, float clip)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    size_t n = tr->m->nparams;
    float *restrict w = tr->m->w, *restrict g = tr->g, *restrict am = tr->am;
    float *restrict av = tr->av;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    double norm = sqrt(ss);
    float scale = (clip > 0.0f && norm > clip) ? (float)(clip / norm) : 1.0f;
    tr->step++;
    float bc1 = 1.0f - powf(b1, (float)tr->step), bc2 = 1.0f - powf(b2, (float)tr->step);
    float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * scale;
        am[i] = b1 * am[i] + (1.0f - b1) * gi;
        av[i] = b2 * av[i] + (1.0f - b2) * gi * gi;
        w[i] -= step * am[i] / (sqrtf(av[i]) * rbc2 + eps);
    }
    return norm;
}

/* ---- inference --------------------------------------------------------------------------- */

/* Steps per chunk of mf_lstm_loglik_r: the dense and output layers run as one product per
 * chunk, while scratch stays small. */
#define LL_CHUNK 128

size_t mf_lstm_scratch_floats(const mf_lstm_dims_t *d)
{
    size_t E = (size_t)d->nembed, H = (size_t)d->nhidden, D = (size_t)d->ndense;
    size_t V = (size_t)d->nvocab;
    /* x (K,E), a (K,4H), hs (K,H), z (K,D), lg (K,V), h, c, tc (H each) */
    return LL_CHUNK * (E + 4 * H + H + D + V) + 3 * H;
}

/* Run `K` steps (K <= cap) of input ids from state (h, c), updated in place; leaves the
 * logits of each step in lg (K,V). s is scratch of cap * (E + 4H + H + D) floats: xs (cap,E),
 * a (cap,4H), hs (cap,H), z (cap,D); tcs (H) more scratch. */
static void forward_chunk(const mf_lstm_t *m, const int32_t *ids, int K, size_t cap, float *h,
                          float *c, float *tcs, float *s, float *lg)
{
    const int V = m->d.nvocab, E = m->d.nembed, H = m->d.nhidden, D = m->d.ndense, G = 4 * H;
    mf_lstm_tensor_t L[MF_LSTM_NTENSORS];
    mf_lstm_layout(&m->d, L);
    const float *w = m->w;
    float *xs = s, *a = xs + cap * E, *hs = a + cap * G;
    float *z = hs + cap * H;
    for (int k = 0; k < K; k++)
        memcpy(xs + (size_t)k * E, w + L[MF_LSTM_EMB].off + (size_t)ids[k] * E,
               E * sizeof(float));
    fill_rows(a, K, w + L[MF_LSTM_B].off, G);
    mf_sgemm(0, 0, K, G, E, 1.0f, xs, E, w + L[MF_LSTM_WX].off, G, 1.0f, a, G);
    for (int k = 0; k < K; k++) {
        float *ak = a + (size_t)k * G;
        mf_sgemm(0, 0, 1, G, H, 1.0f, h, H, w + L[MF_LSTM_WH].off, G, 1.0f, ak, G);
        cell_forward(1, H, ak, c, c, tcs, h);
        memcpy(hs + (size_t)k * H, h, H * sizeof(float));
    }
    fill_rows(z, K, w + L[MF_LSTM_BD].off, D);
    mf_sgemm(0, 0, K, D, H, 1.0f, hs, H, w + L[MF_LSTM_WD].off, D, 1.0f, z, D);
    vtanh(z, (size_t)K * D);
    fill_rows(lg, K, w + L[MF_LSTM_BO].off, V);
    mf_sgemm(0, 0, K, V, D, 1.0f, z, D, w + L[MF_LSTM_WO].off, V, 1.0f, lg, V);
}

int mf_lstm_loglik_r(const mf_lstm_t *m, const int32_t *seq, size_t n, float *scratch,
                     double *out)
{
    *out = 0.0;
    for (size_t i = 0; i < n; i++)
        if (seq[i] < 0 || seq[i] >= m->d.nvocab)
            return MF_EINVAL;
    if (n < 2)
        return MF_OK;
    const int V = m->d.nvocab, E = m->d.nembed, H = m->d.nhidden, D = m->d.ndense;
    float *lg = scratch + (size_t)LL_CHUNK * (E + 4 * H + H + D);
    float *h = lg + (size_t)LL_CHUNK * V, *c = h + H, *tc = c + H;
    memset(h, 0, 2 * H * sizeof(float));
    double sum = 0.0;
    for (size_t p = 0; p + 1 < n; p += LL_CHUNK) {
        size_t K = n - 1 - p < LL_CHUNK ? n - 1 - p : LL_CHUNK;
        forward_chunk(m, seq + p, (int)K, LL_CHUNK, h, c, tc, scratch, lg);
        for (size_t k = 0; k < K; k++) {
            float *row = lg + k * V;
            float zy = row[seq[p + k + 1]];
            sum += zy - softmax_row(row, V, 1.0f);
        }
    }
    *out = sum / (double)(n - 1);
    return MF_OK;
}

double mf_lstm_loglik(const mf_lstm_t *m, const int32_t *seq, size_t n)
{
    if (n < 2)
        return 0.0;
    float *s = mf__malloc(mf_lstm_scratch_floats(&m->d) * sizeof(float));
    if (!s)
        return NAN;
    double ll;
    int rc = mf_lstm_loglik_r(m, seq, n, s, &ll);
    mf__free(s);
    return rc == MF_OK ? ll : NAN;
}

size_t mf_lstm_step_floats(const mf_lstm_dims_t *d)
{
    /* forward_chunk's scratch for one row, then tanh(cell) (H) */
    return (size_t)d->nembed + 6 * (size_t)d->nhidden + (size_t)d->ndense;
}

int mf_lstm_step(const mf_lstm_t *m, int x, float *state, float *scratch, float *lg)
{
    if (x < 0 || x >= m->d.nvocab)
        return MF_EINVAL;
    const int H = m->d.nhidden;
    int32_t id = x;
    float *tc = scratch + mf_lstm_step_floats(&m->d) - (size_t)H;
    forward_chunk(m, &id, 1, 1, state, state + H, tc, scratch, lg);
    return MF_OK;
}

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

int mf_lstm_sample(float *lg, int n, float temp, float top_p, uint64_t *rng, float *scratch)
{
    int best = -1, banned = 0;
    for (int j = 0; j < n; j++) {
        if (lg[j] == -INFINITY) {
            banned = 1;
            continue;
        }
        if (best < 0 || lg[j] > lg[best])
            best = j;
    }
    if (best < 0)
        return MF_EINVAL;
    if (temp <= 0.0f)
        return best;
    if (banned)
        memcpy(scratch, lg, (size_t)n * sizeof *lg);
    for (int j = 0; j < n; j++)
        lg[j] /= temp;
    softmax_row(lg, n, 1.0f);
    /* the draw picks, in id order, the first id whose running sum exceeds u * mass among the
     * ids at or above `cut`; with nothing banned and no nucleus that is u over all of them */
    double mass = 1.0;
    float cut = 0.0f;
    if (banned) {
        mass = 0.0;
        for (int j = 0; j < n; j++) {
            if (scratch[j] == -INFINITY)
                lg[j] = -1.0f; /* below any cut: never drawn, not in the mass */
            else
                mass += lg[j];
        }
    }
    if (top_p < 1.0f) {
        /* nucleus: the smallest set of most likely ids holding top_p of the mass */
        memcpy(scratch, lg, (size_t)n * sizeof *lg);
        qsort(scratch, (size_t)n, sizeof *scratch, cmp_float_desc);
        double acc = 0.0, want = top_p * mass;
        int k = 0;
        do /* the most likely id always, so a tiny top_p is greedy-like, never empty */
            acc += scratch[k++];
        while (k < n && scratch[k] >= 0.0f && acc < want);
        cut = scratch[k - 1];
        mass = 0.0;
        for (int j = 0; j < n; j++)
            if (lg[j] >= cut)
                mass += lg[j];
    }
    double u = mf_rng_uniform(rng) * mass, acc = 0.0;
    int last = best;
    for (int j = 0; j < n; j++) {
        if (lg[j] < cut)
            continue;
        acc += lg[j];
        last = j;
        if (u < acc)
            return j;
    }
    return last; /* rounding left the sum a hair under u */
}

int mf_lstm_generate(const mf_lstm_t *m, int start, size_t len, float temp, uint64_t *rng,
                     int32_t *out)
{
    if (start < 0 || start >= m->d.nvocab || len < 1)
        return MF_EINVAL;
    const int V = m->d.nvocab, H = m->d.nhidden;
    size_t sf = mf_lstm_step_floats(&m->d);
    float *buf = mf__malloc((2 * (size_t)H + sf + 2 * (size_t)V) * sizeof *buf);
    if (!buf)
        return MF_ENOMEM;
    float *state = buf, *scratch = state + 2 * H, *lg = scratch + sf, *ss = lg + V;
    memset(state, 0, 2 * (size_t)H * sizeof *state);
    out[0] = start;
    for (size_t i = 1; i < len; i++) {
        mf_lstm_step(m, out[i - 1], state, scratch, lg);
        out[i] = mf_lstm_sample(lg, V, temp, 1.0f, rng, ss);
    }
    mf__free(buf);
    return MF_OK;
}
