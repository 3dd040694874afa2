/* blas.c - mf_sgemm over OpenBLAS, with a naive loop as reference and fallback. */
#include "blas.h"

#include <stdio.h>

#ifndef MF_NO_BLAS
#include <cblas.h>
#endif

void mf_sgemm_naive(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++) {
                float av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += (double)av * bv;
            }
            float *cp = &c[(size_t)i * ldc + j];
            /* beta == 0 must ignore C entirely (it may hold NaN garbage), as BLAS does */
            *cp = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *cp));
        }
    }
}

#ifdef MF_NO_BLAS
void mf_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    mf_sgemm_naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mf_blas_set_threads(int n)
{
    (void)n;
}

int mf_blas_info(char *buf, size_t cap, int *threads)
{
    if (threads)
        *threads = 1;
    return snprintf(buf, cap, "naive (MF_NO_BLAS)");
}
#else
void mf_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mf_blas_set_threads(int n)
{
    openblas_set_num_threads(n);
}

int mf_blas_info(char *buf, size_t cap, int *threads)
{
    if (threads)
        *threads = openblas_get_num_threads();
    return snprintf(buf, cap, "%s core=%s", openblas_get_config(), openblas_get_corename());
}
#endif
