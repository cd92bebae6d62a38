// GGUF block quants added after the first seven: Q2_K, Q3_K, Q5_K, Q8_K, IQ4_NL, IQ4_XS (reference
// quantizers and dequantizers), ggml's extra fitting helpers, and the importance-weighted row quantizers
// of every type that has one. Bit-exact with ggml-quants.c (layouts and rules in docs/gguf.md); written
// from the published algorithms, with the reference's expression order so that float results match.
// Not the dispatch table or the BlockCodecs (kernels/gguf_blocks.cc).

// As in gguf_blocks.cc: a*b + c must stay two rounded operations (no FMA contraction).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/gguf_blocks.h"
#include "kernels/half.h"

namespace ql {
namespace gguf {
namespace {


int Clamp(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// 2-bit codes L[0..255] -> qs[64] (Q2_K, and the low bits of Q3_K): element 128h + 32k + l goes to bits
// 2k of qs[32h + l].
void Pack2Bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQKK; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] =
          uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
  }
}

// Q3_K: 16 six-bit values (already +32, 0..63) into 12 bytes.
void PackScalesQ3K(const int* l6, uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 16; ++j) {
    int l = l6[j];
    if (j < 8) {
      s[j] = uint8_t(l & 0xF);
    } else {
      s[j - 8] |= uint8_t((l & 0xF) << 4);
    }
    l >>= 4;
    s[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
  }
}

int ScaleQ3K(const uint8_t* s, int j) {  // signed 6-bit scale of sub-block j (-32..31)
  const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  return (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Q3_K: requantize against the stored scales, then split codes 0..7 into hmask bits and 2-bit qs.
void FinishQ3K(const float* x, int8_t* L, BlockQ3_K* y) {
  for (int j = 0; j < kQKK / 16; ++j) {
    const float d = F16ToF32(y->d) * float(ScaleQ3K(y->scales, j));
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      const int l = NearestInt(x[16 * j + ii] / d);
      L[16 * j + ii] = int8_t(Clamp(l, -4, 3) + 4);
    }
  }
  std::memset(y->hmask, 0, sizeof(y->hmask));
  uint8_t u[kQKK];
  for (int j = 0; j < kQKK; ++j) {
    int l = L[j];
    if (l > 3) {
      y->hmask[j % 32] |= uint8_t(1u << (j / 32));
      l -= 4;
    }
    u[j] = uint8_t(l);
  }
  Pack2Bit(u, y->qs);
}

void PackQ5K(const uint8_t* L, BlockQ5_K* y) {
  uint8_t* ql = y->qs;
  std::memset(y->qh, 0, sizeof(y->qh));
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQKK; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        y->qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        y->qh[j] |= m2;
      }
      ql[j] = uint8_t(l1 | (l2 << 4));
    }
    m1 = uint8_t(m1 << 2);
    m2 = uint8_t(m2 << 2);
    ql += 32;
  }
}

// Q2_K: requantize against the stored scales/mins (scales[j]: low nibble scale, high nibble min).
void FinishQ2K(const float* x, float dm, float mm, uint8_t* L, BlockQ2_K* y) {
  for (int j = 0; j < kQKK / 16; ++j) {
    const float d = dm * float(y->scales[j] & 0xF);
    if (d == 0.0f) continue;
    const float m = mm * float(y->scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) {
      const int l = NearestInt((x[16 * j + ii] + m) / d);
      L[16 * j + ii] = uint8_t(Clamp(l, 0, 3));
    }
  }
  Pack2Bit(L, y->qs);
}

// The IQ4 fit of ggml's quantize_row_iq4_nl_impl for one super-block of `sb` elements in sub-blocks of 32
// (sb = 32: IQ4_NL, sb = 256: IQ4_XS). qw: sb importance weights or nullptr (then x² weights); ntry = 7
// (the scale search llama-quantize uses). Writes *dh, q4[sb/2], and for sb = 256 the scales.
void QuantizeIq4(int sb, const float* x, const float* qw, uint16_t* dh, uint8_t* q4, uint16_t* scales_h,
                 uint8_t* scales_l) {
  constexpr int kBs = 32;
  constexpr int kNtry = 7;
  const int8_t* values = kIq4NlValues;
  float sigma2 = 0;
  for (int j = 0; j < sb; ++j) sigma2 += x[j] * x[j];
  sigma2 *= 2.f / float(sb);
  std::memset(q4, 0, size_t(sb / 2));
  *dh = F32ToF16(0.f);
  uint8_t L[kQKK];
  float scales[kQKK / kBs];
  float weight[kBs];
  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < sb / kBs; ++ib) {
    const float* xb = x + ib * kBs;
    uint8_t* Lb = L + ib * kBs;
    if (qw != nullptr) {
      for (int j = 0; j < kBs; ++j) weight[j] = qw[ib * kBs + j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    } else {
      for (int j = 0; j < kBs; ++j) weight[j] = xb[j] * xb[j];
    }
    const float max = SignedAbsMax(xb, kBs);
    if (std::fabs(max) < kGroupMaxEps) {
      scales[ib] = 0;
      continue;
    }
    float d = -max / float(values[0]);
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < kBs; ++j) {
      const int l = BestIndexInt8(16, values, id * xb[j]);
      Lb[j] = uint8_t(l);
      const float q = values[l];
      const float w = weight[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    // 15 candidate scales (K[0] + t)/max, t = -7..7; keep the one with the least weighted error.
    for (int itry = -kNtry; itry <= kNtry; ++itry) {
      id = float(itry + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < kBs; ++j) {
        const int l = BestIndexInt8(16, values, id * xb[j]);
        const float q = values[l];
        const float w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = d;
    }
  }
  if (sb / kBs > 1) {
    // IQ4_XS: 6-bit signed sub-block scales, d = -max_scale/32; codes re-chosen against the stored scale.
    *scales_h = 0;
    const float d = -max_scale / 32;
    *dh = F32ToF16(d);
    const float id = d != 0.0f ? 1 / d : 0.f;
    for (int ib = 0; ib < sb / kBs; ++ib) {
      int l = Clamp(NearestInt(id * scales[ib]), -32, 31);
      const float dl = d * float(l);
      const float idl = dl != 0.0f ? 1 / dl : 0.f;
      for (int j = 0; j < kBs; ++j) L[ib * kBs + j] = uint8_t(BestIndexInt8(16, values, idl * x[ib * kBs + j]));
      l += 32;
      const uint8_t l_l = uint8_t(l & 0xf), l_h = uint8_t(l >> 4);
      if (ib % 2 == 0) {
        scales_l[ib / 2] = l_l;
      } else {
        scales_l[ib / 2] |= uint8_t(l_l << 4);
      }
      *scales_h = uint16_t(*scales_h | (l_h << (2 * (ib % 8))));
    }
  } else {
    *dh = F32ToF16(scales[0]);
    const float id = scales[0] != 0.0f ? 1 / scales[0] : 0;
    for (int j = 0; j < sb; ++j) L[j] = uint8_t(BestIndexInt8(16, values, id * x[j]));
  }
  for (int i = 0; i < sb / 32; ++i) {
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = uint8_t(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
  }
}

// Row mean of x² (the σ² ggml's 32-block weighted quantizers put under the square root).
float RowSigma2(const float* x, int64_t n) {
  float sum_x2 = 0;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / float(n);
}

// Super-block x² sum (K-quant weighted quantizers).
float SumX2(const float* x) {
  float s = 0;
  for (int l = 0; l < kQKK; ++l) s += x[l] * x[l];
  return s;
}

}  // namespace

int BestIndexInt8(int n, const int8_t* val, float x) {
  if (x <= val[0]) return 0;
  if (x >= val[n - 1]) return n - 1;
  int ml = 0, mu = n - 1;
  while (mu - ml > 1) {  // bisection: val[ml] <= x < val[mu]
    const int mav = (ml + mu) / 2;
    if (x < val[mav]) {
      mu = mav;
    } else {
      ml = mav;
    }
  }
  return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// ---------------------------------------------------------------------------------------------
// Fitting helpers
// ---------------------------------------------------------------------------------------------
float MakeQxQuants(int n, int nmax, const float* x, int8_t* L, const float* qw) {
  const float max = SignedAbsMax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  auto weight = [&](int i) { return qw != nullptr ? qw[i] : x[i] * x[i]; };
  float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l + nmax);
    const float w = weight(i);
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  // Search iscale = -(nmax + 0.1·is)/max, is = -9..9, for the largest sumlx²/suml2 (least weighted error).
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
      const float w = weight(i);
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float MakeQkx3Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  auto weight = [&](int i) { return weights != nullptr ? weights[i] : x[i] * x[i]; };
  float min = x[0], max = x[0];
  float sum_w = weight(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weight(i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max <= min) {
    std::memset(L, 0, size_t(n));
    *the_min = -min;
    return 0.f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_mad = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax));
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_mad += weight(i) * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = uint8_t(l);
      const float w = weight(i);
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
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        mad += weight(i) * diff;
      }
      if (mad < best_mad) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_mad = mad;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

float MakeQpQuants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = float(nmax) / max;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(NearestInt(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * float(L[i]);
    best_mse += quant_weights[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {  // 8 nearby scales (nmax ± 0.1·is)/max
    if (is == 0) continue;
    const float iscale_is = (0.1f * float(is) + float(nmax)) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, NearestInt(iscale_is * x[i]));
      const float diff = x[i] - scale_is * float(l);
      mse += quant_weights[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, NearestInt(iscale * x[i]));
    L[i] = uint8_t(l);
    const float w = quant_weights[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  // Coordinate descent: move one code at a time to its best value given the others, keep if it helps.
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = quant_weights[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      float sl2 = suml2 - w * float(L[i]) * float(L[i]);
      if (slx > 0 && sl2 > 0) {
        const int new_l = std::min(nmax, NearestInt(x[i] * sl2 / slx));
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = uint8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

float MakeQ3Quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse) {
  const float max = SignedAbsMax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = float(-nmax) / max;
  if (!do_rmse) {
    for (int i = 0; i < n; ++i) L[i] = int8_t(Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1) + nmax);
    return 1 / iscale;
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        const int new_l = Clamp(NearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Q2_K
// ---------------------------------------------------------------------------------------------
void QuantizeBlockQ2_K(const float* x, BlockQ2_K* y) {
  constexpr float kQ4Scale = 15.f;
  uint8_t L[kQKK];
  uint8_t Laux[16];
  float weights[16];
  float mins[kQKK / 16];
  float scales[kQKK / 16];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQKK / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = MakeQkx2Quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0) {
    const float iscale = kQ4Scale / max_scale;
    for (int j = 0; j < kQKK / 16; ++j) y->scales[j] = uint8_t(NearestInt(iscale * scales[j]));
    y->d = F32ToF16(max_scale / kQ4Scale);
  } else {
    for (int j = 0; j < kQKK / 16; ++j) y->scales[j] = 0;
    y->d = F32ToF16(0.f);
  }
  if (max_min > 0) {
    const float iscale = kQ4Scale / max_min;
    for (int j = 0; j < kQKK / 16; ++j) y->scales[j] |= uint8_t(NearestInt(iscale * mins[j]) << 4);
    y->dmin = F32ToF16(max_min / kQ4Scale);
  } else {
    y->dmin = F32ToF16(0.f);
  }
  FinishQ2K(x, F16ToF32(y->d), F16ToF32(y->dmin), L, y);
}

void DequantizeBlockQ2_K(const BlockQ2_K& b, float* y) {
  const float d = F16ToF32(b.d), min = F16ToF32(b.dmin);
  for (int e = 0; e < kQKK; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t sc = b.scales[e / 16];
    const float dl = d * float(sc & 0xF), ml = min * float(sc >> 4);
    y[e] = dl * float((b.qs[32 * h + l] >> (2 * k)) & 3) - ml;
  }
}

void QuantizeRowWeightedQ2_K(const float* x, int64_t n, const float* qw, BlockQ2_K* y) {
  uint8_t L[kQKK], Laux[16], Ls[kQKK / 16], Lm[kQKK / 16];
  float mins[kQKK / 16], scales[kQKK / 16], sw[kQKK / 16], weight[16];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK, qw += kQKK, ++y) {
    const float sigma2 = SumX2(x) / kQKK;
    for (int j = 0; j < kQKK / 16; ++j) {
      for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
      sw[j] = 0;
      for (int l = 0; l < 16; ++l) sw[j] += weight[l];
      scales[j] = MakeQkx3Quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
    y->d = F32ToF16(MakeQpQuants(kQKK / 16, 15, scales, Ls, sw));
    y->dmin = F32ToF16(MakeQpQuants(kQKK / 16, 15, mins, Lm, sw));
    for (int j = 0; j < kQKK / 16; ++j) y->scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
    FinishQ2K(x, F16ToF32(y->d), F16ToF32(y->dmin), L, y);
  }
}

// ---------------------------------------------------------------------------------------------
// Q3_K
// ---------------------------------------------------------------------------------------------
void QuantizeBlockQ3_K(const float* x, BlockQ3_K* y) {
  int8_t L[kQKK];
  float scales[kQKK / 16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < kQKK / 16; ++j) {
    scales[j] = MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j, true);
    const float scale = std::fabs(scales[j]);
    if (scale > amax) {
      amax = scale;
      max_scale = scales[j];
    }
  }
  std::memset(y->scales, 0, 12);
  if (max_scale != 0.0f) {
    // The signed sub-block scale of largest magnitude maps to -32.
    const float iscale = -32.f / max_scale;
    int l6[16];
    for (int j = 0; j < kQKK / 16; ++j) {
      const int8_t l = int8_t(NearestInt(iscale * scales[j]));
      l6[j] = Clamp(l, -32, 31) + 32;
    }
    PackScalesQ3K(l6, y->scales);
    y->d = F32ToF16(1 / iscale);
  } else {
    y->d = F32ToF16(0.f);
  }
  FinishQ3K(x, L, y);
}

void DequantizeBlockQ3_K(const BlockQ3_K& b, float* y) {
  const float d_all = F16ToF32(b.d);
  for (int e = 0; e < kQKK; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const float dl = d_all * float(ScaleQ3K(b.scales, e / 16));
    const int lo = (b.qs[32 * h + l] >> (2 * k)) & 3;
    const int hi = (b.hmask[l] >> (e / 32)) & 1;
    y[e] = dl * float(lo - (hi != 0 ? 0 : 4));
  }
}

void QuantizeRowWeightedQ3_K(const float* x, int64_t n, const float* qw, BlockQ3_K* y) {
  int8_t L[kQKK], Ls[kQKK / 16];
  float scales[kQKK / 16], weight[16], sw[kQKK / 16];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK, qw += kQKK, ++y) {
    const float sigma2 = 2 * SumX2(x) / kQKK;
    for (int j = 0; j < kQKK / 16; ++j) {
      for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
      float sumw = 0;
      for (int l = 0; l < 16; ++l) sumw += weight[l];
      sw[j] = sumw;
      scales[j] = MakeQxQuants(16, 4, x + 16 * j, L + 16 * j, weight);
    }
    const float d_block = MakeQxQuants(kQKK / 16, 32, scales, Ls, sw);
    int l6[16];
    for (int j = 0; j < 16; ++j) l6[j] = Ls[j];
    PackScalesQ3K(l6, y->scales);
    y->d = F32ToF16(d_block);
    FinishQ3K(x, L, y);
  }
}

// ---------------------------------------------------------------------------------------------
// Q4_K (weighted; the reference is in gguf_blocks.cc) and Q5_K
// ---------------------------------------------------------------------------------------------
namespace {

// The shared weighted fit of Q4_K / Q5_K: per-32 qkx3 fits with weights qw·sqrt(σ² + x²), then the 8
// scales and 8 mins each fitted to 6 bits by make_qp_quants with the sub-block weight sums.
void WeightedScalesK(const float* x, const float* qw, int nmax, uint8_t* L, uint8_t* scales12, uint16_t* d,
                     uint16_t* dmin) {
  uint8_t Laux[32], Ls[8], Lm[8];
  float weights[32], sw[8], mins[8], scales[8];
  const float sigma2 = 2 * SumX2(x) / kQKK;
  for (int j = 0; j < kQKK / 32; ++j) {
    for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += weights[l];
    sw[j] = sumw;
    scales[j] = MakeQkx3Quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
  }
  const float d_block = MakeQpQuants(8, 63, scales, Ls, sw);
  const float m_block = MakeQpQuants(8, 63, mins, Lm, sw);
  for (int j = 0; j < 8; ++j) {
    Ls[j] = std::min<uint8_t>(63, Ls[j]);
    Lm[j] = std::min<uint8_t>(63, Lm[j]);
  }
  PackScaleMinK4(Ls, Lm, scales12);
  *d = F32ToF16(d_block);
  *dmin = F32ToF16(m_block);
}

// A weighted Q4_K / Q5_K row: the fit, the requantization against the stored scales, the packing.
template <class Block>
void WeightedRowK(const float* x, int64_t n, const float* qw, int nmax, void (*pack)(const uint8_t*, Block*),
                  Block* y) {
  uint8_t L[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK, qw += kQKK, ++y) {
    WeightedScalesK(x, qw, nmax, L, y->scales, &y->d, &y->dmin);
    RequantizeK(x, y->scales, y->d, y->dmin, nmax, L);
    pack(L, y);
  }
}

}  // namespace

void QuantizeRowWeightedQ4_K(const float* x, int64_t n, const float* qw, BlockQ4_K* y) {
  WeightedRowK(x, n, qw, 15, PackQ4K, y);
}
void QuantizeRowWeightedQ5_K(const float* x, int64_t n, const float* qw, BlockQ5_K* y) {
  WeightedRowK(x, n, qw, 31, PackQ5K, y);
}

void QuantizeBlockQ5_K(const float* x, BlockQ5_K* y) { QuantizeBlocksQ5_K(1, x, y); }

void QuantizeBlocksQ5_K(int blocks, const float* x, BlockQ5_K* y) {
  uint8_t L[2 * kQKK];
  const int last = blocks - 1;  // blocks 1: the second entry repeats the first, unused
  const ScaleMinK out[2] = {{y[0].scales, &y[0].d, &y[0].dmin}, {y[last].scales, &y[last].d, &y[last].dmin}};
  FitScaleMinKBlocks(blocks, x, 31, -0.5f, 15, L, out);
  for (int b = 0; b < blocks; ++b) {
    RequantizeK(x + b * kQKK, y[b].scales, y[b].d, y[b].dmin, 31, L + b * kQKK);
    PackQ5K(L + b * kQKK, &y[b]);
  }
}

void DequantizeBlockQ5_K(const BlockQ5_K& b, float* y) {
  const float d = F16ToF32(b.d), min = F16ToF32(b.dmin);
  const uint8_t* ql = b.qs;
  uint8_t u1 = 1, u2 = 2;
  for (int c = 0; c < 4; ++c) {
    uint8_t sc, m;
    GetScaleMinK4(2 * c, b.scales, &sc, &m);
    const float d1 = d * float(sc), m1 = min * float(m);
    GetScaleMinK4(2 * c + 1, b.scales, &sc, &m);
    const float d2 = d * float(sc), m2 = min * float(m);
    for (int l = 0; l < 32; ++l) y[l] = d1 * float((ql[l] & 0xF) + ((b.qh[l] & u1) != 0 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) y[32 + l] = d2 * float((ql[l] >> 4) + ((b.qh[l] & u2) != 0 ? 16 : 0)) - m2;
    y += 64;
    ql += 32;
    u1 = uint8_t(u1 << 2);
    u2 = uint8_t(u2 << 2);
  }
}

// ---------------------------------------------------------------------------------------------
// Q6_K weighted (as the reference, with the imatrix as make_qx_quants' weights)
// ---------------------------------------------------------------------------------------------
void QuantizeBlockQ6_KWeighted(const float* x, const float* qw, BlockQ6_K* y);  // gguf_blocks.cc

void QuantizeRowWeightedQ6_K(const float* x, int64_t n, const float* qw, BlockQ6_K* y) {
  for (int64_t i = 0; i < n / kQKK; ++i) QuantizeBlockQ6_KWeighted(x + i * kQKK, qw + i * kQKK, y + i);
}

// ---------------------------------------------------------------------------------------------
// Q8_K
// ---------------------------------------------------------------------------------------------
void QuantizeBlockQ8_K(const float* x, BlockQ8_K* y) {
  const float max = SignedAbsMax(x, kQKK);
  if (max == 0.0f) {
    std::memset(y, 0, sizeof(*y));
    return;
  }
  // -127/max (not -128): ggml keeps the codes symmetric for its IQ2 dot products.
  const float iscale = -127.f / max;
  for (int j = 0; j < kQKK; ++j) y->qs[j] = int8_t(std::min(127, NearestInt(iscale * x[j])));
  for (int j = 0; j < kQKK / 16; ++j) {
    int sum = 0;
    for (int ii = 0; ii < 16; ++ii) sum += y->qs[16 * j + ii];
    y->bsums[j] = int16_t(sum);
  }
  y->d = 1 / iscale;
}

void DequantizeBlockQ8_K(const BlockQ8_K& b, float* y) {
  for (int j = 0; j < kQKK; ++j) y[j] = b.d * float(b.qs[j]);
}

// ---------------------------------------------------------------------------------------------
// IQ4_NL / IQ4_XS
// ---------------------------------------------------------------------------------------------
void QuantizeBlockIq4Nl(const float* x, BlockIq4Nl* y) {
  uint16_t unused_h;
  QuantizeIq4(kQK, x, nullptr, &y->d, y->qs, &unused_h, nullptr);
}

void QuantizeBlockIq4Xs(const float* x, BlockIq4Xs* y) {
  QuantizeIq4(kQKK, x, nullptr, &y->d, y->qs, &y->scales_h, y->scales_l);
}

void DequantizeBlockIq4Nl(const BlockIq4Nl& b, float* y) {
  const float d = F16ToF32(b.d);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * float(kIq4NlValues[b.qs[j] & 0xf]);
    y[j + kQK / 2] = d * float(kIq4NlValues[b.qs[j] >> 4]);
  }
}

void DequantizeBlockIq4Xs(const BlockIq4Xs& b, float* y) {
  const float d = F16ToF32(b.d);
  const uint8_t* qs = b.qs;
  for (int ib = 0; ib < kQKK / 32; ++ib) {
    const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) | (((b.scales_h >> (2 * ib)) & 3) << 4);
    const float dl = d * float(ls - 32);
    for (int j = 0; j < 16; ++j) {
      y[j] = dl * float(kIq4NlValues[qs[j] & 0xf]);
      y[j + 16] = dl * float(kIq4NlValues[qs[j] >> 4]);
    }
    y += 32;
    qs += 16;
  }
}

void QuantizeRowWeightedIq4Nl(const float* x, int64_t n, const float* qw, BlockIq4Nl* y) {
  uint16_t unused_h;
  for (int64_t i = 0; i < n / kQK; ++i) {
    QuantizeIq4(kQK, x + i * kQK, qw + i * kQK, &y[i].d, y[i].qs, &unused_h, nullptr);
  }
}

void QuantizeRowWeightedIq4Xs(const float* x, int64_t n, const float* qw, BlockIq4Xs* y) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    QuantizeIq4(kQKK, x + i * kQKK, qw + i * kQKK, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l);
  }
}

// ---------------------------------------------------------------------------------------------
// 32-element types, weighted: per-block weights qw·sqrt(σ²_row + x²)
// ---------------------------------------------------------------------------------------------
namespace {

// 32 codes (0..15, or the low nibbles of 0..31) into qs[16]: element j low, element j + 16 high.
template <typename Code>
void PackNibbles32(const Code* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t((uint8_t(L[j]) & 0x0F) | ((uint8_t(L[j + 16]) & 0x0F) << 4));
}

// 32 codes 0..31: the low nibbles as PackNibbles32, bit 4 of element j into bit j of qh (u32, little-endian).
template <typename Code>
void Pack5Bit32(const Code* L, uint8_t* qs, uint8_t* qh) {
  PackNibbles32(L, qs);
  uint32_t h = 0;
  for (int j = 0; j < 32; ++j) h |= uint32_t((uint8_t(L[j]) & 0x10u) >> 4) << j;
  std::memcpy(qh, &h, 4);
}

// Q4_0 / Q5_0: one symmetric make_qx_quants fit per block with weights qw·sqrt(σ² + x²); returns d.
float WeightedSym32(const float* x, const float* qw, float sigma2, int nmax, int8_t* L) {
  float weight[kQK];
  for (int j = 0; j < kQK; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
  return MakeQxQuants(kQK, nmax, x, L, weight);
}

// Q4_1 / Q5_1: one qkx3 fit per block; returns d and writes m = -min.
template <typename Block>
void WeightedAsym32(const float* x, const float* qw, float sigma2, int nmax, uint8_t* L, Block* y) {
  float weight[kQK];
  uint8_t Laux[kQK];
  for (int j = 0; j < kQK; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
  float min;
  const float d = MakeQkx3Quants(kQK, nmax, x, weight, L, &min, Laux, -0.9f, 0.05f, 36, false);
  y->d = F32ToF16(d);
  y->m = F32ToF16(-min);
}

}  // namespace

void QuantizeRowWeightedQ4_0(const float* x, int64_t n, const float* qw, BlockQ4_0* y) {
  const float sigma2 = RowSigma2(x, n);
  int8_t L[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    y[ib].d = F32ToF16(WeightedSym32(x + kQK * ib, qw + kQK * ib, sigma2, 8, L));
    PackNibbles32(L, y[ib].qs);
  }
}

void QuantizeRowWeightedQ5_0(const float* x, int64_t n, const float* qw, BlockQ5_0* y) {
  const float sigma2 = RowSigma2(x, n);
  int8_t L[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    y[ib].d = F32ToF16(WeightedSym32(x + kQK * ib, qw + kQK * ib, sigma2, 16, L));
    Pack5Bit32(L, y[ib].qs, y[ib].qh);
  }
}

void QuantizeRowWeightedQ4_1(const float* x, int64_t n, const float* qw, BlockQ4_1* y) {
  const float sigma2 = RowSigma2(x, n);
  uint8_t L[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    WeightedAsym32(x + kQK * ib, qw + kQK * ib, sigma2, 15, L, &y[ib]);
    PackNibbles32(L, y[ib].qs);
  }
}

void QuantizeRowWeightedQ5_1(const float* x, int64_t n, const float* qw, BlockQ5_1* y) {
  const float sigma2 = RowSigma2(x, n);
  uint8_t L[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    WeightedAsym32(x + kQK * ib, qw + kQK * ib, sigma2, 31, L, &y[ib]);
    Pack5Bit32(L, y[ib].qs, y[ib].qh);
  }
}

}  // namespace gguf
}  // namespace ql
