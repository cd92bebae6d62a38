// Walsh–Hadamard transforms for sizes n = K·2^m (docs/algorithms.md §6): the fast transform (Sylvester, natural
// order) for powers of two, and small Hadamard matrices H_K built by construction, combined as
// (H_K ⊗ H_{2^m})·x/√n. Not QuaRot's tables: K comes from Paley I (K = q+1, q a prime power ≡ 3 mod 4:
// 4, 8, 12, 20, 24, 28, 32, 44, 48, 60, 68, 72, 80, 84, 104, 108, 128, 132, 140, ...), Paley II
// (K = 2(q+1), q a prime power ≡ 1 mod 4: 12, 28, 36, 52 (GF(25)), 60, 76, 100 (GF(49)), 108, ...) or
// Kronecker products of these (40 = 2·20, 56 = 2·28, 144 = 12·12, ...), so the matrices differ from
// Sloane's (any orthogonal H works numerically, docs/algorithms.md §6). Orders that need Williamson-type matrices
// (156 = 4·39, 172 = 4·43 — stories260K's FFN) have no construction here: Plan returns an error
// naming the size.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/status.h"

namespace ql {

// Unnormalized in-place FWHT of x[n], n a power of two: for h = 1, 2, 4, …: (a, b) ← (a + b, a − b).
void Fwht(float* x, int64_t n);

// A Hadamard matrix of order k (entries ±1, H·Hᵀ = k·I), row-major [k, k]; error when no Sylvester,
// Paley (prime-power field) or Kronecker-product construction gives order k.
StatusOr<std::vector<int8_t>> HadamardMatrix(int k);

struct HadamardPlan {
  int64_t n = 0;
  int k = 1;                    // n = k · 2^m
  std::vector<int8_t> hk;       // [k, k]
};

// The largest power-of-two factor first (K as small as possible), then any constructible K.
StatusOr<HadamardPlan> PlanHadamard(int64_t n);

// x[n] ← (H_K ⊗ H_{n/K}) x / √n, viewing x as [K, n/K] (element k·(n/K) + r). Orthogonal.
void ApplyHadamard(const HadamardPlan& plan, float* x);

// The same transform as an explicit [n, n] row-major matrix R (y = R x).
std::vector<float> HadamardMatrixExplicit(const HadamardPlan& plan);

}  // namespace ql
