/* blas.h - the one matrix product libmalfam uses, and the hook to pick its implementation.
 *
 * mf_sgemm computes C = alpha * op(A) * op(B) + beta * C on row-major matrices, the same
 * contract as cblas_sgemm(CblasRowMajor, ...). Built normally it calls OpenBLAS; built with
 * -DMF_NO_BLAS it runs the naive loop below, which the tests also call directly to check
 * the fast path against.
 */
#ifndef MF_BLAS_H
#define MF_BLAS_H

#include <stddef.h>

/* op(A) is (m,k), op(B) is (k,n), C is (m,n). lda/ldb/ldc are row strides in floats.
 * ta/tb: 0 = as stored, 1 = transposed. */
void mf_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

/* The reference triple loop (double accumulation); same contract as mf_sgemm. */
void mf_sgemm_naive(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc);

/* Limit the BLAS library to `n` threads (no-op without BLAS). Training runs one family per
 * core, so each must use a single-threaded BLAS. */
void mf_blas_set_threads(int n);

/* Library description ("OpenBLAS ... Haswell", "naive") written into buf (snprintf
 * semantics); `threads` (may be NULL) gets the BLAS thread count. */
int mf_blas_info(char *buf, size_t cap, int *threads);

#endif
