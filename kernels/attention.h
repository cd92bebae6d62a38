// The two products of causal attention for a block of query rows, computing only what the causal
// mask keeps: S = scale · Q·Kᵀ over each row's visible keys, and O = P·V over each row group's
// visible keys. Bitwise the products of kernels/gemm.h on the whole block (every S and O element is
// one FMA chain from 0 in index order, S multiplied by scale after its chain), because what is left
// out is either overwritten by the mask or a multiply-add of an exact 0. The softmax between them is
// the caller's (kernels/ops.h). Knows nothing of heads or models: rows, keys and strides only.
// Highway SIMD with run-time dispatch; the oracle is CausalAttentionRef (double sums).
#pragma once

#include <cstddef>

namespace ql {

// Floats of the packed keys of PackAttentionKeys for n_keys keys of hd floats (on this CPU's target).
size_t AttentionKeyPanelFloats(int n_keys, int hd);

// k: [n_keys, hd] (row stride ldk) -> kp: the panel layout CausalScores reads (a transposed copy,
// zero-padded to whole panels). Cost: one pass over the keys.
void PackAttentionKeys(const float* k, int ldk, int n_keys, int hd, float* kp);

// s[i, j] = scale · Σ_d q[i, d]·k[j, d] for i < m and j < valid[i] (1 <= valid[i] <= n_keys), with
// q: [m, hd] (ldq) and kp the packed keys. Entries with j >= valid[i] may be written too (whole tiles;
// never j >= n_keys): the caller masks them. Cost ≈ 2·hd·Σ_i valid[i] flops.
void CausalScores(const float* q, int ldq, int m, int hd, const float* kp, int n_keys, const int* valid, float scale,
                  float* s, int lds);

// o[i, c] = Σ_{j < L_i} p[i, j]·v[j, c] for i < m, c < hd, with p: [m, >= L_i] (lds), v: [>= L_i, hd] (ldv),
// L_i the largest valid[] of row i's tile (the few consecutive rows the kernel computes together:
// 6 on AVX-512, 4 elsewhere). First sets p[i, j] = 0
// for valid[i] <= j < L_i (the mask), so the result is bitwise the FP32 Gemm of p · v over any longer
// key range whose extra p entries are 0 (given finite v there). Cost ≈ 2·hd·Σ_groups rows·L flops.
void CausalPV(float* p, int lds, int m, const int* valid, const float* v, int ldv, int hd, float* o, int ldo);

// Oracle of the whole block: s = scale·q·kᵀ in double over j < valid[i], softmax in double over those,
// o = p·v. q: [m, hd], k, v: [n_keys, hd] (strides ldq, ldk, ldv), o: [m, hd] (ldo).
void CausalAttentionRef(const float* q, int ldq, int m, int hd, const float* k, int ldk, const float* v, int ldv,
                        const int* valid, float scale, float* o, int ldo);

}  // namespace ql
