// Symmetric positive definite algebra in double on quantlab's threads: the Gram matrix XᵀX of float rows
// (a Hessian of calibration inputs), a general cross product AᵀB (GPTAQ's), the Cholesky factorization, the inverse of an upper triangular
// matrix, and the upper Cholesky factor of an inverse (what GPTQ needs). Not LAPACK: row-major only,
// one fixed operation sequence per output element, so the bits depend on neither the thread count nor
// the SIMD width (AVX-512, AVX2, SSE4 and the scalar fallback give the same result).
//
// The element rules (each a single chain in the order stated; "fma" is one fused multiply-add, which
// targets without FMA instructions emulate exactly lane by lane):
//   Gram:     h[i,j] += x[t,i]·x[t,j] for t = 0, 1, ..., T-1. Each product of two floats is exact in
//             double, so fused or not makes no difference.
//   Cholesky: a = UᵀU, u[i,j] = (a[i,j] − Σ_{k=0}^{i-1} u[k,i]·u[k,j]) / u[i,i] for j > i (the sum an fma
//             chain from a[i,j], k ascending), u[i,i] = sqrt(a[i,i] − Σ_{k<i} u[k,i]²) likewise.
//   Inverse:  v = u⁻¹ (upper), v[i,j] = (δ_ij − Σ_{k=j}^{i+1} u[i,k]·v[k,j]) / u[i,i], the chain from δ_ij
//             with k descending from j to i+1.
// SIMD vectors run across output columns j only; threads take fixed column chunks. Work items at the
// diagonal also compute some lanes below it (exact zeros in the inverse, unused elsewhere).
//
// The upper Cholesky factor R of A⁻¹ (RᵀR = A⁻¹, R upper with positive diagonal), by the reversal
// permutation J (J[i, n-1-i] = 1, J = Jᵀ = J⁻¹): factor JAJ = UᵀU (U upper), so A = J Uᵀ U J and
// A⁻¹ = J U⁻¹ U⁻ᵀ J = (J U⁻¹ J)(J U⁻ᵀ J) = RᵀR with R = J U⁻ᵀ J = J (U⁻¹)ᵀ J, i.e.
// R[i,j] = (U⁻¹)[n-1-j, n-1-i]. U⁻¹ is upper, so R is upper; its diagonal 1/u[k,k] is positive, so R is
// THE Cholesky factor (it is unique). Cost n³/3 (Cholesky) + n³/3 (triangular inverse) flops, against
// 4n³/3 for forming A⁻¹ (potrf + potri) and factoring it again (potrf), and no second factorization
// that can fail on an ill-conditioned inverse.
#pragma once

#include <cstdint>

namespace ql {

// h[i, j] += Σ_t x[t, i]·x[t, j] for i ≤ j: x [T, n] row-major float (leading dimension n), h [n, n]
// row-major double. h's strict lower triangle is scratch (partly overwritten; mirror it afterwards).
// Cost T·n²/2 multiply-adds.
void GramUpperAdd(const float* x, int64_t T, int64_t n, double* h, int threads);
void GramUpperAddRef(const float* x, int64_t T, int64_t n, double* h);

// c[i, j] += Σ_k a[k, i]·b[k, j] (c += aᵀb): a [K, m], b [K, n], c [m, n], all row-major double; each element
// one fused chain, k ascending (the rule of the Cholesky with +). Cost K·m·n multiply-adds.
void CrossAdd(const double* a, const double* b, int64_t K, int64_t m, int64_t n, double* c, int threads);
void CrossAddRef(const double* a, const double* b, int64_t K, int64_t m, int64_t n, double* c);

// In place: a [n, n] row-major, upper triangle read, becomes U (upper, UᵀU = a; strict lower triangle
// set to 0). Returns -1, or the first index i whose pivot a[i,i] − Σ u[k,i]² is not positive and
// finite (a is then partly overwritten). Cost n³/3 flops.
int64_t CholeskyUpper(double* a, int64_t n, int threads);
int64_t CholeskyUpperRef(double* a, int64_t n);

// v = u⁻¹ for u [n, n] upper triangular with non-zero diagonal (its lower triangle is not read); v
// [n, n], upper, lower triangle 0. Cost n³/3 flops.
void InvertUpper(const double* u, int64_t n, double* v, int threads);
void InvertUpperRef(const double* u, int64_t n, double* v);

// r = the upper Cholesky factor of a⁻¹ for a [n, n] symmetric (read in full: J a J's upper triangle is a's
// lower one, read row by row), by the reversal
// route above; r [n, n] row-major, lower triangle 0. Returns -1, or the index (in a's order) of the pivot
// that was not positive (a is not positive definite) — or n when the result overflowed (not finite).
int64_t InverseCholeskyUpper(const double* a, int64_t n, double* r, int threads);
int64_t InverseCholeskyUpperRef(const double* a, int64_t n, double* r);

}  // namespace ql
