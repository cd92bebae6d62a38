// GGUF / ggml block quants: reference quantizers and dequantizers of the first seven types, bit-exact with
// ggml's scalar reference (llama.cpp ggml/src/ggml-quants.c; docs/gguf.md), the per-type dispatch table,
// the ggml type table and the BlockCodecs. The other types live in kernels/gguf_kquants.cc.
// Written from the published algorithms; expression order follows the reference so float results match.

// ggml's reference evaluates a*b + c as two rounded operations. Stop the compiler from fusing them into an
// FMA (it may with -march=native), which would change the last bit and so the chosen codes.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels/gguf_blocks.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "kernels/half.h"
#include "kernels/kquant_fit.h"
#include "kernels/parallel.h"

namespace ql {
namespace gguf {
namespace {


}  // namespace

void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void PackScaleMinK4(const uint8_t sc[8], const uint8_t m[8], uint8_t q[12]) {
  // bytes 0-3: sc0..3 (6 bits) + top 2 bits of sc4..7; bytes 4-7: m0..3 + top 2 bits of m4..7;
  // bytes 8-11: low 4 bits of sc4..7 | low 4 bits of m4..7 << 4.
  for (int j = 0; j < 4; ++j) {
    q[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = uint8_t((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    q[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

// ---------------------------------------------------------------------------------------------
// 32-element blocks
// ---------------------------------------------------------------------------------------------
void QuantizeBlockQ4_0(const float* x, BlockQ4_0* y) {
  // Signed value of largest magnitude (first one on ties) maps to code 0 (= -8·d); d = max / -8.
  const float max = SignedAbsMax(x, kQK);
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = F32ToF16(d);
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = x[j] * id;
    const float x1 = x[j + kQK / 2] * id;
    // Truncation of x·id + 8.5 (>= 0.5 here) is round-half-up; the +max element lands on 16 -> 15.
    const uint8_t q0 = uint8_t(std::min<int>(15, int8_t(x0 + 8.5f)));
    const uint8_t q1 = uint8_t(std::min<int>(15, int8_t(x1 + 8.5f)));
    y->qs[j] = uint8_t(q0 | (q1 << 4));
  }
}

void QuantizeBlockQ4_1(const float* x, BlockQ4_1* y) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / 15;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = F32ToF16(d);
  y->m = F32ToF16(min);
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = (x[j] - min) * id;
    const float x1 = (x[j + kQK / 2] - min) * id;
    const uint8_t q0 = uint8_t(std::min<int>(15, int8_t(x0 + 0.5f)));
    const uint8_t q1 = uint8_t(std::min<int>(15, int8_t(x1 + 0.5f)));
    y->qs[j] = uint8_t(q0 | (q1 << 4));
  }
}

void QuantizeBlockQ5_0(const float* x, BlockQ5_0* y) {
  const float max = SignedAbsMax(x, kQK);
  const float d = max / -16;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = F32ToF16(d);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = x[j] * id;
    const float x1 = x[j + kQK / 2] * id;
    const uint8_t q0 = uint8_t(std::min<int>(31, int8_t(x0 + 16.5f)));
    const uint8_t q1 = uint8_t(std::min<int>(31, int8_t(x1 + 16.5f)));
    y->qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= uint32_t((q0 & 0x10u) >> 4) << j;
    qh |= uint32_t((q1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(y->qh, &qh, 4);
}

void QuantizeBlockQ5_1(const float* x, BlockQ5_1* y) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / 31;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = F32ToF16(d);
  y->m = F32ToF16(min);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const float x0 = (x[j] - min) * id;
    const float x1 = (x[j + kQK / 2] - min) * id;
    const uint8_t q0 = uint8_t(x0 + 0.5f);  // ggml has no MIN(31, ...) here; x0 <= 31 (+ rounding)
    const uint8_t q1 = uint8_t(x1 + 0.5f);
    y->qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= uint32_t((q0 & 0x10u) >> 4) << j;
    qh |= uint32_t((q1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(y->qh, &qh, 4);
}

void QuantizeBlockQ8_0(const float* x, BlockQ8_0* y) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y->d = F32ToF16(d);
  for (int j = 0; j < kQK; ++j) y->qs[j] = int8_t(std::round(x[j] * id));  // roundf: half away from 0
}

void DequantizeBlockQ4_0(const BlockQ4_0& b, float* y) {
  const float d = F16ToF32(b.d);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = float((b.qs[j] & 0x0F) - 8) * d;
    y[j + kQK / 2] = float((b.qs[j] >> 4) - 8) * d;
  }
}

void DequantizeBlockQ4_1(const BlockQ4_1& b, float* y) {
  const float d = F16ToF32(b.d), m = F16ToF32(b.m);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = float(b.qs[j] & 0x0F) * d + m;
    y[j + kQK / 2] = float(b.qs[j] >> 4) * d + m;
  }
}

void DequantizeBlockQ5_0(const BlockQ5_0& b, float* y) {
  const float d = F16ToF32(b.d);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const int h0 = int(((qh >> j) << 4) & 0x10);
    const int h1 = int((qh >> (j + 12)) & 0x10);
    y[j] = float(((b.qs[j] & 0x0F) | h0) - 16) * d;
    y[j + kQK / 2] = float(((b.qs[j] >> 4) | h1) - 16) * d;
  }
}

void DequantizeBlockQ5_1(const BlockQ5_1& b, float* y) {
  const float d = F16ToF32(b.d), m = F16ToF32(b.m);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const int h0 = int(((qh >> j) << 4) & 0x10);
    const int h1 = int((qh >> (j + 12)) & 0x10);
    y[j] = float((b.qs[j] & 0x0F) | h0) * d + m;
    y[j + kQK / 2] = float((b.qs[j] >> 4) | h1) * d + m;
  }
}

void DequantizeBlockQ8_0(const BlockQ8_0& b, float* y) {
  const float d = F16ToF32(b.d);
  for (int j = 0; j < kQK; ++j) y[j] = float(b.qs[j]) * d;
}

// ---------------------------------------------------------------------------------------------
// k-quant helpers
// ---------------------------------------------------------------------------------------------
void RequantizeK(const float* x, const uint8_t* scales, uint16_t d16, uint16_t dmin16, int nmax, uint8_t* L) {
  for (int j = 0; j < kQKK / 32; ++j) {
    uint8_t sc, m;
    GetScaleMinK4(j, scales, &sc, &m);
    const float d = F16ToF32(d16) * float(sc);
    if (d == 0.0f) continue;
    const float dm = F16ToF32(dmin16) * float(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = NearestInt((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(std::max(0, std::min(nmax, l)));
    }
  }
}

void FitScaleMinKBlocks(int blocks, const float* x, int nmax, float rmin, int nstep, uint8_t* L,
                        const ScaleMinK* out) {
  QL_CHECK(blocks == 1 || blocks == 2, "FitScaleMinKBlocks: {} blocks", blocks);
  constexpr int kSub = kQKK / 32;  // sub-blocks per super-block
  float weights[2 * kQKK];         // [blocks · 8 sub-blocks, 32]
  float mins[2 * kSub];
  float scales[2 * kSub];
  for (int j = 0; j < blocks * kSub; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[32 * j + l] = av_x + std::fabs(xs[l]);
  }
  // MakeQkx2Quants on each sub-block, all of them at once (kernels/kquant_fit.h: bitwise the same).
  MakeQkx2QuantsBatch(blocks * kSub, 32, nmax, x, weights, L, scales, mins, rmin, 0.1f, nstep, false);
  for (int b = 0; b < blocks; ++b) {
    const float* sc = scales + b * kSub;
    const float* mn = mins + b * kSub;
    float max_scale = 0, max_min = 0;  // scales are >= 0 because the min is subtracted
    for (int j = 0; j < kSub; ++j) {
      if (sc[j] > max_scale) max_scale = sc[j];
      if (mn[j] > max_min) max_min = mn[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[kSub], lm[kSub];
    for (int j = 0; j < kSub; ++j) {
      ls[j] = std::min<uint8_t>(63, uint8_t(NearestInt(inv_scale * sc[j])));  // u8 wrap as in ggml
      lm[j] = std::min<uint8_t>(63, uint8_t(NearestInt(inv_min * mn[j])));
    }
    PackScaleMinK4(ls, lm, out[b].scales12);
    *out[b].d16 = F32ToF16(max_scale / 63.f);
    *out[b].dmin16 = F32ToF16(max_min / 63.f);
  }
}

void FitScaleMinK(const float* x, int nmax, float rmin, int nstep, uint8_t* L, uint8_t* scales12, uint16_t* d16,
                  uint16_t* dmin16) {
  const ScaleMinK out{scales12, d16, dmin16};
  FitScaleMinKBlocks(1, x, nmax, rmin, nstep, L, &out);
}

void PackQ4K(const uint8_t* L, BlockQ4_K* y) {
  uint8_t* q = y->qs;
  for (int j = 0; j < kQKK; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}

float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;  // the offset is a non-positive min, stored as dmin·m >= 0
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = NearestInt(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  // Try nstep+1 slightly different initial scales; for each, the weighted least-squares (scale, min) for
  // the codes it gives. Note `min` is the best so far and feeds the next trial, as in ggml.
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = NearestInt(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * float(l);
      sum_l2 += w * float(l) * float(l);
      sum_xl += w * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

float MakeQxQuantsRmse1(int n, int nmax, const float* x, int8_t* L) {
  return MakeQxQuants(n, nmax, x, L, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Q4_K
// ---------------------------------------------------------------------------------------------
void QuantizeBlockQ4_K(const float* x, BlockQ4_K* y) { QuantizeBlocksQ4_K(1, x, y); }

void QuantizeBlocksQ4_K(int blocks, const float* x, BlockQ4_K* y) {
  uint8_t L[2 * kQKK];
  const int last = blocks - 1;  // blocks 1: the second entry repeats the first, unused
  const ScaleMinK out[2] = {{y[0].scales, &y[0].d, &y[0].dmin}, {y[last].scales, &y[last].d, &y[last].dmin}};
  FitScaleMinKBlocks(blocks, x, 15, -1.f, 20, L, out);
  for (int b = 0; b < blocks; ++b) {
    RequantizeK(x + b * kQKK, y[b].scales, y[b].d, y[b].dmin, 15, L + b * kQKK);
    PackQ4K(L + b * kQKK, &y[b]);
  }
}

void DequantizeBlockQ4_K(const BlockQ4_K& b, float* y) {
  const float d = F16ToF32(b.d), dmin = F16ToF32(b.dmin);
  const uint8_t* q = b.qs;
  for (int c = 0; c < 4; ++c) {  // four 64-element chunks = two sub-blocks each
    uint8_t sc, m;
    GetScaleMinK4(2 * c, b.scales, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    GetScaleMinK4(2 * c + 1, b.scales, &sc, &m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) y[l] = d1 * float(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) y[32 + l] = d2 * float(q[l] >> 4) - m2;
    y += 64;
    q += 32;
  }
}

// ---------------------------------------------------------------------------------------------
// Q6_K
// ---------------------------------------------------------------------------------------------
void QuantizeBlockQ6_K(const float* x, BlockQ6_K* y) { QuantizeBlockQ6_KWeighted(x, nullptr, y); }

void QuantizeBlockQ6_KWeighted(const float* x, const float* qw, BlockQ6_K* y) {
  int8_t L[kQKK];
  float scales[kQKK / 16];
  if (qw == nullptr) {  // weights x²: all sixteen fits at once (kernels/kquant_fit.h: bitwise the same)
    MakeQxQuantsBatch(kQKK / 16, 16, 32, x, L, scales);
  } else {  // ggml passes the raw importance (no sqrt(σ² + x²) factor) as the fit's weights
    for (int ib = 0; ib < kQKK / 16; ++ib) scales[ib] = MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib, qw + 16 * ib);
  }
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < kQKK / 16; ++ib) {
    const float scale = scales[ib];
    if (std::fabs(scale) > max_abs_scale) {
      max_abs_scale = std::fabs(scale);
      max_scale = scale;
    }
  }
  if (max_abs_scale < kGroupMaxEps) {  // all (near) zero: an all-zero block, d = 0
    std::memset(y, 0, sizeof(*y));
    return;
  }
  // The sub-block scale of largest magnitude maps to -128; d is its (signed) step.
  const float iscale = -128.f / max_scale;
  y->d = F32ToF16(1 / iscale);
  for (int ib = 0; ib < kQKK / 16; ++ib) {
    y->scales[ib] = int8_t(std::min(127, NearestInt(iscale * scales[ib])));
  }
  for (int j = 0; j < kQKK / 16; ++j) {
    const float d = F16ToF32(y->d) * float(y->scales[j]);
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = NearestInt(x[16 * j + ii] / d);
      l = std::max(-32, std::min(31, l));
      L[16 * j + ii] = int8_t(l + 32);
    }
  }
  uint8_t* ql = y->ql;
  uint8_t* qh = y->qh;
  for (int j = 0; j < kQKK; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
      ql[l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}

void DequantizeBlockQ6_K(const BlockQ6_K& b, float* y) {
  const float d = F16ToF32(b.d);
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  const int8_t* sc = b.scales;
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * float(sc[is + 0]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace gguf

// ---------------------------------------------------------------------------------------------
// Per-type dispatch table
// ---------------------------------------------------------------------------------------------
namespace {

enum class Pad { kZero, kRepeatLast, kRepeatLastInSubBlock };

struct QuantType {
  int id;
  const char* codec_name;   // BlockCodec::name()
  const char* description;
  int block_elems;
  int block_bytes;
  int element_bits;
  const char* scale_type;
  Pad pad;
  int pad_sub_block;        // kRepeatLastInSubBlock: the sub-block whose min/max the padding keeps
  void (*quantize)(const float* x, uint8_t* block);    // x: block_elems floats
  void (*dequantize)(const uint8_t* block, float* y);  // block: any alignment
  // Importance-weighted row (n a multiple of block_elems, qw: n weights); nullptr: ggml ignores weights.
  void (*quantize_weighted)(const float* x, int64_t n, const float* qw, uint8_t* out);
  // Two consecutive blocks at once (x: 2 · block_elems floats), bitwise `quantize` on each; nullptr: none.
  void (*quantize_pair)(const float* x, uint8_t* blocks) = nullptr;
};

// Adapters from unaligned bytes to the block structs (memcpy: blocks inside a GGUF file or a PackedBlocks
// byte vector need not be aligned for the struct).
template <typename Block, void (*Q)(const float*, Block*)>
void QuantizeBytes(const float* x, uint8_t* out) {
  Block b;
  Q(x, &b);
  std::memcpy(out, &b, sizeof(Block));
}
template <typename Block, void (*Q)(int, const float*, Block*)>
void QuantizePairBytes(const float* x, uint8_t* out) {
  Block b[2];
  Q(2, x, b);
  std::memcpy(out, b, sizeof b);
}
template <typename Block, void (*D)(const Block&, float*)>
void DequantizeBytes(const uint8_t* in, float* y) {
  Block b;
  std::memcpy(&b, in, sizeof(Block));
  D(b, y);
}
template <typename Block, int kElems, void (*W)(const float*, int64_t, const float*, Block*)>
void WeightedBytes(const float* x, int64_t n, const float* qw, uint8_t* out) {
  std::vector<Block> b(size_t(n / kElems));
  W(x, n, qw, b.data());
  std::memcpy(out, b.data(), b.size() * sizeof(Block));
}

using namespace gguf;  // NOLINT: block names in the table below

// Codec order = GgufBlockCodecs() order: the first seven as before, then the types added later.
constexpr QuantType kQuantTypes[] = {
    {8, "q8_0", "ggml Q8_0: 32 int8 codes in [-127,127], fp16 scale absmax/127, roundf", 32, 34, 8,
     "fp16 per 32", Pad::kZero, 0, QuantizeBytes<BlockQ8_0, QuantizeBlockQ8_0>,
     DequantizeBytes<BlockQ8_0, DequantizeBlockQ8_0>, nullptr},
    {2, "q4_0", "ggml Q4_0: 32 4-bit codes (q-8)·d, d = signed absmax / -8", 32, 18, 4, "fp16 per 32",
     Pad::kZero, 0, QuantizeBytes<BlockQ4_0, QuantizeBlockQ4_0>, DequantizeBytes<BlockQ4_0, DequantizeBlockQ4_0>,
     WeightedBytes<BlockQ4_0, 32, QuantizeRowWeightedQ4_0>},
    {3, "q4_1", "ggml Q4_1: 32 4-bit codes q·d + m, d = (max-min)/15, m = min", 32, 20, 4,
     "fp16 scale + fp16 min per 32", Pad::kRepeatLast, 0, QuantizeBytes<BlockQ4_1, QuantizeBlockQ4_1>,
     DequantizeBytes<BlockQ4_1, DequantizeBlockQ4_1>, WeightedBytes<BlockQ4_1, 32, QuantizeRowWeightedQ4_1>},
    {6, "q5_0", "ggml Q5_0: 32 5-bit codes (q-16)·d, d = signed absmax / -16", 32, 22, 5, "fp16 per 32",
     Pad::kZero, 0, QuantizeBytes<BlockQ5_0, QuantizeBlockQ5_0>, DequantizeBytes<BlockQ5_0, DequantizeBlockQ5_0>,
     WeightedBytes<BlockQ5_0, 32, QuantizeRowWeightedQ5_0>},
    {7, "q5_1", "ggml Q5_1: 32 5-bit codes q·d + m, d = (max-min)/31, m = min", 32, 24, 5,
     "fp16 scale + fp16 min per 32", Pad::kRepeatLast, 0, QuantizeBytes<BlockQ5_1, QuantizeBlockQ5_1>,
     DequantizeBytes<BlockQ5_1, DequantizeBlockQ5_1>, WeightedBytes<BlockQ5_1, 32, QuantizeRowWeightedQ5_1>},
    {12, "q4_k", "ggml Q4_K: 256 = 8×32 4-bit codes, 6-bit scale and min per 32 (make_qkx2_quants fit)", 256,
     144, 4, "6-bit scale + 6-bit min per 32, fp16 d + dmin per 256", Pad::kRepeatLastInSubBlock, 32,
     QuantizeBytes<BlockQ4_K, QuantizeBlockQ4_K>, DequantizeBytes<BlockQ4_K, DequantizeBlockQ4_K>,
     WeightedBytes<BlockQ4_K, 256, QuantizeRowWeightedQ4_K>, QuantizePairBytes<BlockQ4_K, QuantizeBlocksQ4_K>},
    {14, "q6_k", "ggml Q6_K: 256 = 16×16 6-bit codes in [-32,31], int8 scale per 16 (make_qx_quants)", 256,
     210, 6, "int8 per 16, fp16 d per 256", Pad::kZero, 0, QuantizeBytes<BlockQ6_K, QuantizeBlockQ6_K>,
     DequantizeBytes<BlockQ6_K, DequantizeBlockQ6_K>, WeightedBytes<BlockQ6_K, 256, QuantizeRowWeightedQ6_K>},
    {10, "q2_k", "ggml Q2_K: 256 = 16×16 2-bit codes, 4-bit scale and min per 16 (make_qkx2_quants, MAD)", 256,
     84, 2, "4-bit scale + 4-bit min per 16, fp16 d + dmin per 256", Pad::kRepeatLastInSubBlock, 16,
     QuantizeBytes<BlockQ2_K, QuantizeBlockQ2_K>, DequantizeBytes<BlockQ2_K, DequantizeBlockQ2_K>,
     WeightedBytes<BlockQ2_K, 256, QuantizeRowWeightedQ2_K>},
    {11, "q3_k", "ggml Q3_K: 256 = 16×16 3-bit codes in [-4,3], 6-bit signed scale per 16 (make_q3_quants)",
     256, 110, 3, "6-bit per 16, fp16 d per 256", Pad::kZero, 0, QuantizeBytes<BlockQ3_K, QuantizeBlockQ3_K>,
     DequantizeBytes<BlockQ3_K, DequantizeBlockQ3_K>, WeightedBytes<BlockQ3_K, 256, QuantizeRowWeightedQ3_K>},
    {13, "q5_k", "ggml Q5_K: 256 = 8×32 5-bit codes, 6-bit scale and min per 32 (make_qkx2_quants fit)", 256,
     176, 5, "6-bit scale + 6-bit min per 32, fp16 d + dmin per 256", Pad::kRepeatLastInSubBlock, 32,
     QuantizeBytes<BlockQ5_K, QuantizeBlockQ5_K>, DequantizeBytes<BlockQ5_K, DequantizeBlockQ5_K>,
     WeightedBytes<BlockQ5_K, 256, QuantizeRowWeightedQ5_K>, QuantizePairBytes<BlockQ5_K, QuantizeBlocksQ5_K>},
    {15, "q8_k", "ggml Q8_K: 256 int8 codes, fp32 scale -max/127 (llama.cpp's activation format)", 256, 292, 8,
     "fp32 per 256 (+ int16 sums per 16)", Pad::kZero, 0, QuantizeBytes<BlockQ8_K, QuantizeBlockQ8_K>,
     DequantizeBytes<BlockQ8_K, DequantizeBlockQ8_K>, nullptr},
    {20, "iq4_nl", "ggml IQ4_NL: 32 4-bit indices into a 16-level non-uniform codebook, fp16 scale", 32, 18, 4,
     "fp16 per 32", Pad::kZero, 0, QuantizeBytes<BlockIq4Nl, QuantizeBlockIq4Nl>,
     DequantizeBytes<BlockIq4Nl, DequantizeBlockIq4Nl>, WeightedBytes<BlockIq4Nl, 32, QuantizeRowWeightedIq4Nl>},
    {23, "iq4_xs", "ggml IQ4_XS: 256 = 8×32 IQ4_NL codebook indices, 6-bit signed scale per 32", 256, 136, 4,
     "6-bit per 32, fp16 d per 256", Pad::kZero, 0, QuantizeBytes<BlockIq4Xs, QuantizeBlockIq4Xs>,
     DequantizeBytes<BlockIq4Xs, DequantizeBlockIq4Xs>, WeightedBytes<BlockIq4Xs, 256, QuantizeRowWeightedIq4Xs>},
};
const QuantType* FindQuantType(int id) {
  for (const QuantType& t : kQuantTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

// Fills `buf` (block_elems floats) from the n_real < block_elems real elements of a partial block.
void PadPartialBlock(const QuantType& t, const float* x, int n_real, float* buf) {
  std::copy(x, x + n_real, buf);
  switch (t.pad) {
    case Pad::kZero:
      std::fill(buf + n_real, buf + t.block_elems, 0.0f);
      break;
    case Pad::kRepeatLast:
      std::fill(buf + n_real, buf + t.block_elems, x[n_real - 1]);
      break;
    case Pad::kRepeatLastInSubBlock: {
      const int sub = t.pad_sub_block;
      const int sub_end = std::min(t.block_elems, (n_real + sub - 1) / sub * sub);
      std::fill(buf + n_real, buf + sub_end, x[n_real - 1]);
      std::fill(buf + sub_end, buf + t.block_elems, 0.0f);
      break;
    }
  }
}

// Quantizes a row of any length n >= 0 into ceil(n / block) full blocks at `out`.
void QuantizeAnyRow(const QuantType& t, const float* x, int64_t n, uint8_t* out) {
  const int64_t full = n / t.block_elems;
  int64_t b = 0;
  if (t.quantize_pair)
    for (; b + 1 < full; b += 2) t.quantize_pair(x + b * t.block_elems, out + b * t.block_bytes);
  for (; b < full; ++b) t.quantize(x + b * t.block_elems, out + b * t.block_bytes);
  const int rest = int(n - full * t.block_elems);
  if (rest > 0) {
    float buf[gguf::kQKK];
    PadPartialBlock(t, x + full * t.block_elems, rest, buf);
    t.quantize(buf, out + full * t.block_bytes);
  }
}

// Importance-weighted row of whole blocks (callers check n % block_elems == 0); types without a weighted
// rule take the reference path, as ggml's quantize_<type> does.
void QuantizeWeightedRow(const QuantType& t, const float* x, int64_t n, const float* qw, uint8_t* out) {
  if (t.quantize_weighted == nullptr) {
    QuantizeAnyRow(t, x, n, out);
  } else {
    t.quantize_weighted(x, n, qw, out);
  }
}

void DequantizeAnyRow(const QuantType& t, const uint8_t* in, int64_t n, float* y) {
  const int64_t full = n / t.block_elems;
  for (int64_t b = 0; b < full; ++b) t.dequantize(in + b * t.block_bytes, y + b * t.block_elems);
  const int rest = int(n - full * t.block_elems);
  if (rest > 0) {
    float buf[gguf::kQKK];
    t.dequantize(in + full * t.block_bytes, buf);
    std::copy(buf, buf + rest, y + full * t.block_elems);
  }
}

// ---------------------------------------------------------------------------------------------
// ggml type table
// ---------------------------------------------------------------------------------------------
// ggml.h enum ggml_type / ggml-common.h block sizes (ggml 0.15.3). Ids 4, 5, 31-33, 36-38 were removed.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "f32", 1, 4, true},          {1, "f16", 1, 2, true},          {2, "q4_0", 32, 18, true},
    {3, "q4_1", 32, 20, true},       {6, "q5_0", 32, 22, true},       {7, "q5_1", 32, 24, true},
    {8, "q8_0", 32, 34, true},       {9, "q8_1", 32, 36, false},      {10, "q2_K", 256, 84, true},
    {11, "q3_K", 256, 110, true},   {12, "q4_K", 256, 144, true},    {13, "q5_K", 256, 176, true},
    {14, "q6_K", 256, 210, true},    {15, "q8_K", 256, 292, true},   {16, "iq2_xxs", 256, 66, false},
    {17, "iq2_xs", 256, 74, false},  {18, "iq3_xxs", 256, 98, false}, {19, "iq1_s", 256, 50, false},
    {20, "iq4_nl", 32, 18, true},   {21, "iq3_s", 256, 110, false},  {22, "iq2_s", 256, 82, false},
    {23, "iq4_xs", 256, 136, true}, {24, "i8", 1, 1, false},         {25, "i16", 1, 2, false},
    {26, "i32", 1, 4, false},        {27, "i64", 1, 8, false},        {28, "f64", 1, 8, false},
    {29, "iq1_m", 256, 56, false},   {30, "bf16", 1, 2, true},        {34, "tq1_0", 256, 54, false},
    {35, "tq2_0", 256, 66, false},   {39, "mxfp4", 32, 17, false},    {40, "nvfp4", 64, 36, false},
    {41, "q1_0", 128, 18, false},
};

std::string SupportedTypeList() {
  std::string s;
  for (const GgmlTypeInfo& t : kGgmlTypes) {
    if (!t.supported) continue;
    if (!s.empty()) s += ", ";
    s += fmt::format("{} ({})", t.name, t.id);
  }
  return s;
}

Status CheckRowLength(const GgmlTypeInfo& info, int64_t n) {
  if (n < 0 || n % info.block_elems != 0) {
    return Status::Errorf("ggml type {} needs a row length that is a multiple of {}; got {} (GGUF rows are "
                          "whole blocks; use the BlockCodec for partial blocks)",
                          info.name, info.block_elems, n);
  }
  return Status::Ok();
}

// Block quantizers need finite input: NaN/Inf would reach float->int conversions (undefined behaviour).
Status CheckFinite(std::string_view what, const float* x, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(x[i])) {
      return Status::Errorf("{}: non-finite input {} at row {}, column {} (ggml block quants need finite "
                            "values; clean or clamp the tensor first)",
                            what, x[i], i / cols, i % cols);
    }
  }
  return Status::Ok();
}

// Importance weights: whole blocks only (ggml's weighted statistics span the row), finite and >= 0.
Status CheckImportance(const QuantType& t, const float* qw, int64_t cols) {
  if (cols % t.block_elems != 0) {
    return Status::Errorf("{}: importance-weighted quantization needs rows of whole {}-blocks; got {} columns "
                          "(drop the importance matrix for this tensor or pick a type with smaller blocks)",
                          t.codec_name, t.block_elems, cols);
  }
  for (int64_t j = 0; j < cols; ++j) {
    if (!std::isfinite(qw[j]) || qw[j] < 0) {
      return Status::Errorf("{}: importance weight {} of column {} is not a finite value >= 0 (check the "
                            "importance matrix)", t.codec_name, qw[j], j);
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// BlockCodec
// ---------------------------------------------------------------------------------------------
constexpr int64_t kParallelMinElems = int64_t(1) << 16;  // below this, threads cost more than they save

// quantlab's threads (kernels/parallel.h), not OpenMP: idle libgomp workers would spin beside them.
int ThreadsFor(int64_t elems) { return elems >= kParallelMinElems ? NumThreads() : 1; }
int64_t RowsPerItem(int64_t cols) { return std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, cols)); }

class GgufCodec final : public BlockCodec {
 public:
  explicit GgufCodec(const QuantType& t) : t_(t) {}
  std::string name() const override { return t_.codec_name; }
  std::string description() const override { return t_.description; }
  int default_block_size() const override { return t_.block_elems; }
  bool block_size_fixed() const override { return true; }
  int element_bits() const override { return t_.element_bits; }
  std::string scale_type() const override { return t_.scale_type; }
  double nominal_bits_per_weight(int block_size) const override {
    return 8.0 * t_.block_bytes / t_.block_elems;  // fixed layout: block_size is always block_elems
  }

  StatusOr<PackedBlocks> Quantize(const float* x, int64_t rows, int64_t cols,
                                  const BlockOptions& opt) const override {
    if (opt.block_size != 0 && opt.block_size != t_.block_elems) {
      return Status::Errorf("{} has a fixed block size of {}; got block_size {} (omit it or use {})",
                            t_.codec_name, t_.block_elems, opt.block_size, t_.block_elems);
    }
    if (rows < 0 || cols < 0) return Status::Errorf("{}: negative shape [{}, {}]", t_.codec_name, rows, cols);
    QL_RETURN_IF_ERROR(CheckFinite(t_.codec_name, x, rows, cols));
    const float* qw = opt.importance;
    if (qw != nullptr) QL_RETURN_IF_ERROR(CheckImportance(t_, qw, cols));
    PackedBlocks p;
    p.rows = rows;
    p.cols = cols;
    p.block_size = t_.block_elems;
    const int64_t row_bytes = (cols + t_.block_elems - 1) / t_.block_elems * t_.block_bytes;
    p.bytes.resize(size_t(rows * row_bytes));
    // Rows are independent (and each is deterministic), so threads do not change the bytes.
    ParallelForChunks(rows, RowsPerItem(cols), ThreadsFor(rows * cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        uint8_t* out = p.bytes.data() + r * row_bytes;
        if (qw != nullptr) {
          QuantizeWeightedRow(t_, x + r * cols, cols, qw, out);
        } else {
          QuantizeAnyRow(t_, x + r * cols, cols, out);
        }
      }
    });
    return p;
  }

  int64_t PackedBytes(int64_t rows, int64_t cols, const BlockOptions&) const override {
    return rows * ((cols + t_.block_elems - 1) / t_.block_elems * t_.block_bytes);
  }
  void Dequantize(const PackedBlocks& p, float* y) const override {
    const int64_t row_bytes = (p.cols + t_.block_elems - 1) / t_.block_elems * t_.block_bytes;
    QL_CHECK(p.block_size == t_.block_elems && int64_t(p.bytes.size()) == p.rows * row_bytes,
             "{}: PackedBlocks of block size {} with {} bytes for [{}, {}]", t_.codec_name, p.block_size,
             p.bytes.size(), p.rows, p.cols);
    ParallelForChunks(p.rows, RowsPerItem(p.cols), ThreadsFor(p.rows * p.cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) DequantizeAnyRow(t_, p.bytes.data() + r * row_bytes, p.cols, y + r * p.cols);
    });
  }

 private:
  const QuantType& t_;
};

// Function-local statics: built on first use, so no static-initialization-order hazard.
std::span<const BlockCodec* const> CodecList() {
  static const std::vector<GgufCodec> codecs = [] {
    std::vector<GgufCodec> v;
    for (const QuantType& t : kQuantTypes) v.emplace_back(t);
    return v;
  }();
  static const std::vector<const BlockCodec*> list = [] {
    std::vector<const BlockCodec*> v;
    for (const GgufCodec& c : codecs) v.push_back(&c);
    return v;
  }();
  return list;
}

}  // namespace

std::span<const GgmlTypeInfo> GgmlTypeTable() { return kGgmlTypes; }

const GgmlTypeInfo* FindGgmlTypeInfo(int type_id) {
  for (const GgmlTypeInfo& t : kGgmlTypes) {
    if (t.id == type_id) return &t;
  }
  return nullptr;
}

StatusOr<GgmlTypeInfo> SupportedGgmlType(int type_id) {
  const GgmlTypeInfo* info = FindGgmlTypeInfo(type_id);
  if (info == nullptr) {
    return Status::Errorf("unknown ggml type id {}; quantlab supports {}", type_id, SupportedTypeList());
  }
  if (!info->supported) {
    return Status::Errorf("ggml type {} (id {}) is not supported by quantlab; supported: {} (re-export the "
                          "tensor in one of these)",
                          info->name, type_id, SupportedTypeList());
  }
  return *info;
}

Status DequantizeGgmlRow(int type_id, const uint8_t* src, int64_t n, float* dst) {
  QL_ASSIGN_OR_RETURN(GgmlTypeInfo info, SupportedGgmlType(type_id));
  QL_RETURN_IF_ERROR(CheckRowLength(info, n));
  switch (type_id) {
    case 0:
      std::memcpy(dst, src, size_t(n) * 4);
      return Status::Ok();
    case 1:
    case 30:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = type_id == 1 ? F16ToF32(h) : Bf16ToF32(h);
      }
      return Status::Ok();
    default: {
      const QuantType* t = FindQuantType(type_id);
      QL_CHECK(t != nullptr, "ggml type {} is marked supported but has no quantizer", type_id);
      DequantizeAnyRow(*t, src, n, dst);
      return Status::Ok();
    }
  }
}

StatusOr<std::vector<uint8_t>> QuantizeGgmlRow(int type_id, const float* x, int64_t n, const float* qw) {
  QL_ASSIGN_OR_RETURN(GgmlTypeInfo info, SupportedGgmlType(type_id));
  QL_RETURN_IF_ERROR(CheckRowLength(info, n));
  if (info.block_elems > 1) QL_RETURN_IF_ERROR(CheckFinite(info.name, x, 1, n));
  const QuantType* qt = FindQuantType(type_id);
  if (qw != nullptr && qt != nullptr) QL_RETURN_IF_ERROR(CheckImportance(*qt, qw, n));
  std::vector<uint8_t> out(size_t(n / info.block_elems * info.block_bytes));
  switch (type_id) {
    case 0:
      std::memcpy(out.data(), x, size_t(n) * 4);
      break;
    case 1:
    case 30:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = type_id == 1 ? F32ToF16(x[i]) : F32ToBf16(x[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    default: {
      const QuantType* t = FindQuantType(type_id);
      QL_CHECK(t != nullptr, "ggml type {} is marked supported but has no quantizer", type_id);
      if (qw != nullptr) {
        QuantizeWeightedRow(*t, x, n, qw, out.data());
      } else {
        QuantizeAnyRow(*t, x, n, out.data());
      }
    }
  }
  return out;
}

int GgmlTypeIdOfCodec(std::string_view codec_name) {
  for (const QuantType& t : kQuantTypes) {
    if (codec_name == t.codec_name) return t.id;
  }
  return -1;
}

const BlockCodec* GgufQ8_0Codec() { return CodecList()[0]; }
const BlockCodec* GgufQ4_0Codec() { return CodecList()[1]; }
const BlockCodec* GgufQ4_1Codec() { return CodecList()[2]; }
const BlockCodec* GgufQ5_0Codec() { return CodecList()[3]; }
const BlockCodec* GgufQ5_1Codec() { return CodecList()[4]; }
const BlockCodec* GgufQ4_KCodec() { return CodecList()[5]; }
const BlockCodec* GgufQ6_KCodec() { return CodecList()[6]; }
const BlockCodec* GgufQ2_KCodec() { return CodecList()[7]; }
const BlockCodec* GgufQ3_KCodec() { return CodecList()[8]; }
const BlockCodec* GgufQ5_KCodec() { return CodecList()[9]; }
const BlockCodec* GgufQ8_KCodec() { return CodecList()[10]; }
const BlockCodec* GgufIq4NlCodec() { return CodecList()[11]; }
const BlockCodec* GgufIq4XsCodec() { return CodecList()[12]; }
std::span<const BlockCodec* const> GgufBlockCodecs() { return CodecList(); }

}  // namespace ql
