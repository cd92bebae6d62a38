// Highway implementation of kernels/attention.h, compiled once per SIMD target and dispatched at run
// time, plus the double oracle. Scores: the keys are packed once into K-major panels of NR keys
// (NR = kNv vectors) and an MR x NR register tile runs over d, skipping the tiles no row of the
// group can see. P·V: V is read in place (its rows are the panel rows), an MR x (up to 4 vectors)
// tile runs over keys up to the group's last visible key. Same FMA chain per element as gemm.cc.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"
#include "kernels/tail-inl.h"
#include "kernels/gemm_tile-inl.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels/attention.h"

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using ::ql::HWY_NAMESPACE::TailLoad;  // kernels/tail-inl.h
using ::ql::HWY_NAMESPACE::TailStore;
using gemm_tile::kMr;  // kernels/gemm_tile-inl.h: the scores tile is the GEMM's register tile
using gemm_tile::kNv;
using gemm_tile::MicroDispatch;
using gemm_tile::StoreCols;

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kPvRows = 6, kPvVecs = 4;  // P·V tile: rows x vectors of output columns
#else
constexpr int kPvRows = 4, kPvVecs = 2;
#endif

size_t PanelKeys() { return kNv * hn::Lanes(DF()); }

size_t KeyPanelFloats(int n_keys, int hd) {
  const size_t nr = PanelKeys();
  return (size_t(n_keys) + nr - 1) / nr * nr * size_t(hd);
}

// kp panel p: [hd][nr] holds keys p·nr .. p·nr + nr - 1, zero past n_keys.
void PackKeys(const float* k, int ldk, int n_keys, int hd, float* kp) {
  const size_t nr = PanelKeys();
  for (size_t p0 = 0; p0 < size_t(n_keys); p0 += nr) {
    float* panel = kp + p0 * hd;
    const size_t w = std::min(nr, size_t(n_keys) - p0);
    for (size_t j = 0; j < w; ++j) {
      const float* src = k + (p0 + j) * ldk;
      for (int d = 0; d < hd; ++d) panel[d * nr + j] = src[d];
    }
    for (int d = 0; d < hd; ++d) std::fill(panel + d * nr + w, panel + (d + 1) * nr, 0.0f);
  }
}

int MaxValid(const int* valid, int i, int rows) { return *std::max_element(valid + i, valid + i + rows); }

void Scores(const float* q, int ldq, int m, int hd, const float* kp, int n_keys, const int* valid, float scale,
            float* s, int lds) {
  const size_t nr = PanelKeys();
  for (int i = 0; i < m; i += kMr) {
    const int rows = std::min(kMr, m - i);
    const size_t seen = size_t(MaxValid(valid, i, rows));  // keys [0, seen) are visible to some row
    for (size_t p0 = 0; p0 < seen; p0 += nr)
      MicroDispatch(rows, q + size_t(i) * ldq, ldq, kp + p0 * hd, size_t(hd), scale, s + size_t(i) * lds + p0,
                    lds, std::min(nr, size_t(n_keys) - p0));
  }
}

// o[kRows, cols c0 .. c0 + kVecs·N) = p[kRows, 0..len) · v[0..len, same cols]; ncols <= kVecs·N valid.
// D is the full vector, or on AVX-512 a half one (8 floats) for a head's last 8 columns, so that a head of
// 8 (stories260K) or 8 mod 16 columns loads V rows whole instead of through TailLoad's stack buffer (whose
// scalar stores stall the vector load that follows on every key). Lanes change nothing per element.
template <class D, int kRows, int kVecs>
HWY_INLINE void PvTile(D d, const float* HWY_RESTRICT p, size_t lds, size_t len, const float* HWY_RESTRICT v,
                       size_t ldv, float* HWY_RESTRICT o, size_t ldo, size_t ncols) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  V acc[kRows][kVecs];
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kVecs; ++c) acc[r][c] = hn::Zero(d);
  const bool full = ncols == kVecs * N;
  for (size_t k = 0; k < len; ++k) {
    V b[kVecs];
    const float* vk = v + k * ldv;
    for (int c = 0; c < kVecs; ++c) {
      if constexpr (hn::MaxLanes(D()) == hn::MaxLanes(DF())) {
        b[c] = full || (c + 1) * N <= ncols ? hn::LoadU(d, vk + c * N) : TailLoad(d, vk + c * N, ncols - c * N);
      } else {
        b[c] = hn::LoadU(d, vk + c * N);  // the half tile is only used whole
      }
    }
    for (int r = 0; r < kRows; ++r) {
      const V a = hn::Set(d, p[r * lds + k]);
      for (int c = 0; c < kVecs; ++c) acc[r][c] = hn::MulAdd(a, b[c], acc[r][c]);
    }
  }
  // alpha = 1 in the Gemm this replaces: acc · 1 is acc.
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < kVecs && c * N < ncols; ++c) {
      if constexpr (hn::MaxLanes(D()) == hn::MaxLanes(DF())) {
        StoreCols(acc[r][c], d, o + r * ldo + c * N, std::min(N, ncols - c * N));
      } else {
        hn::StoreU(acc[r][c], d, o + r * ldo + c * N);
      }
    }
}

template <int kRows>
void PvColumns(const float* p, size_t lds, size_t len, const float* v, size_t ldv, float* o, size_t ldo, int hd) {
  const DF d;
  const size_t N = hn::Lanes(d);
  for (size_t c0 = 0; c0 < size_t(hd); c0 += kPvVecs * N) {
    size_t cols = std::min(kPvVecs * N, size_t(hd) - c0);
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    if (cols % N == 8) {  // a partial last vector of exactly 8 columns: a half tile
      const hn::CappedTag<float, 8> dh;
      cols -= 8;
      PvTile<decltype(dh), kRows, 1>(dh, p, lds, len, v + c0 + cols, ldv, o + c0 + cols, ldo, 8);
      if (cols == 0) continue;
    }
#endif
    const size_t vecs = (cols + N - 1) / N;
    if (vecs == kPvVecs) PvTile<DF, kRows, kPvVecs>(d, p, lds, len, v + c0, ldv, o + c0, ldo, cols);
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    else if (vecs == 3) PvTile<DF, kRows, 3>(d, p, lds, len, v + c0, ldv, o + c0, ldo, cols);
#endif
    else if (vecs == 2) PvTile<DF, kRows, 2>(d, p, lds, len, v + c0, ldv, o + c0, ldo, cols);
    else PvTile<DF, kRows, 1>(d, p, lds, len, v + c0, ldv, o + c0, ldo, cols);
  }
}

void PvDispatch(int rows, const float* p, size_t lds, size_t len, const float* v, size_t ldv, float* o, size_t ldo,
                int hd) {
  switch (rows) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    case 6: return PvColumns<6>(p, lds, len, v, ldv, o, ldo, hd);
    case 5: return PvColumns<5>(p, lds, len, v, ldv, o, ldo, hd);
#endif
    case 4: return PvColumns<4>(p, lds, len, v, ldv, o, ldo, hd);
    case 3: return PvColumns<3>(p, lds, len, v, ldv, o, ldo, hd);
    case 2: return PvColumns<2>(p, lds, len, v, ldv, o, ldo, hd);
    default: return PvColumns<1>(p, lds, len, v, ldv, o, ldo, hd);
  }
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// A head of exactly 8 columns is one half vector per row: 6 rows would be 6 FMA chains, too few to hide
// the FMA's latency, so such heads take 12 rows at a time.
constexpr int kPvHalfRows = 12;

template <int kRows>
void PvHalf(const float* p, size_t lds, size_t len, const float* v, size_t ldv, float* o, size_t ldo) {
  PvTile<hn::CappedTag<float, 8>, kRows, 1>(hn::CappedTag<float, 8>(), p, lds, len, v, ldv, o, ldo, 8);
}

template <int... kRows>
void PvHalfDispatch(int rows, std::integer_sequence<int, kRows...>, const float* p, size_t lds, size_t len,
                    const float* v, size_t ldv, float* o, size_t ldo) {
  ((rows == kRows + 1 ? PvHalf<kRows + 1>(p, lds, len, v, ldv, o, ldo) : void()), ...);
}
#endif

void Pv(float* p, int lds, int m, const int* valid, const float* v, int ldv, int hd, float* o, int ldo) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  const bool half = hd == 8;
  const int group = half ? kPvHalfRows : kPvRows;
#else
  const int group = kPvRows;
#endif
  for (int i = 0; i < m; i += group) {
    const int rows = std::min(group, m - i);
    const int len = MaxValid(valid, i, rows);
    for (int r = i; r < i + rows; ++r) std::fill(p + size_t(r) * lds + valid[r], p + size_t(r) * lds + len, 0.0f);
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    if (half) {
      PvHalfDispatch(rows, std::make_integer_sequence<int, kPvHalfRows>(), p + size_t(i) * lds, lds, size_t(len), v,
                     ldv, o + size_t(i) * ldo, ldo);
      continue;
    }
#endif
    PvDispatch(rows, p + size_t(i) * lds, lds, size_t(len), v, ldv, o + size_t(i) * ldo, ldo, hd);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql {

HWY_EXPORT(KeyPanelFloats);
HWY_EXPORT(PackKeys);
HWY_EXPORT(Scores);
HWY_EXPORT(Pv);

size_t AttentionKeyPanelFloats(int n_keys, int hd) { return HWY_DYNAMIC_DISPATCH(KeyPanelFloats)(n_keys, hd); }

void PackAttentionKeys(const float* k, int ldk, int n_keys, int hd, float* kp) {
  HWY_DYNAMIC_DISPATCH(PackKeys)(k, ldk, n_keys, hd, kp);
}

void CausalScores(const float* q, int ldq, int m, int hd, const float* kp, int n_keys, const int* valid, float scale,
                  float* s, int lds) {
  HWY_DYNAMIC_DISPATCH(Scores)(q, ldq, m, hd, kp, n_keys, valid, scale, s, lds);
}

void CausalPV(float* p, int lds, int m, const int* valid, const float* v, int ldv, int hd, float* o, int ldo) {
  HWY_DYNAMIC_DISPATCH(Pv)(p, lds, m, valid, v, ldv, hd, o, ldo);
}

void CausalAttentionRef(const float* q, int ldq, int m, int hd, const float* k, int ldk, const float* v, int ldv,
                        const int* valid, float scale, float* o, int ldo) {
  for (int i = 0; i < m; ++i) {
    std::vector<double> s(valid[i]);
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < valid[i]; ++j) {
      double dot = 0;
      for (int d = 0; d < hd; ++d) dot += double(q[size_t(i) * ldq + d]) * k[size_t(j) * ldk + d];
      s[j] = double(scale) * dot;
      mx = std::max(mx, s[j]);
    }
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int c = 0; c < hd; ++c) {
      double acc = 0;
      for (int j = 0; j < valid[i]; ++j) acc += s[j] / sum * v[size_t(j) * ldv + c];
      o[size_t(i) * ldo + c] = float(acc);
    }
  }
}

}  // namespace ql
#endif  // HWY_ONCE
