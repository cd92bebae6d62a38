// Highway implementation of kernels/spd.h (Gram matrix, Cholesky, triangular inverse, inverse's
// Cholesky factor), compiled once per SIMD target and dispatched at run time, plus the scalar oracles.
// Register tiles of kRows rows x kVecs vectors accumulate in place; work items are fixed column chunks
// (kChunk wide, a multiple of every target's tile width) whose boundaries depend on the shape only.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/spd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep (must precede highway.h)
#include "hwy/highway.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <utility>
#include <vector>

#include "kernels/parallel.h"
#include "kernels/spd.h"

#ifndef QL_KERNELS_SPD_CONSTANTS_  // this file is re-included once per SIMD target
#define QL_KERNELS_SPD_CONSTANTS_
namespace ql {
namespace spd_detail {
constexpr int kRows = 4;          // rows of a register tile
constexpr int kVecs = 3;          // vectors of a register tile: tile width 3·lanes (3, 6, 12 or 24 doubles)
constexpr int64_t kChunk = 96;    // columns of a work item: a multiple of every tile width
constexpr int64_t kPanel = 48;    // rows of a Cholesky panel: a multiple of kRows and of every tile width
constexpr double kMinThreadedFmas = 2e5;  // below this one thread: waking a pool worker costs µs

// Leading dimension of the padded working copies: whole chunks, so every tile is a full one.
inline int64_t PaddedLd(int64_t n) { return (n + kChunk - 1) / kChunk * kChunk; }
inline int Threads(double fmas, int threads) { return fmas < kMinThreadedFmas ? 1 : std::max(1, threads); }

// 64-byte aligned storage: a full-vector load from a packed panel then never splits a cache line.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const Aligned64&) const { return true; }
  bool operator!=(const Aligned64&) const { return false; }
};
using AlignedDoubles = std::vector<double, Aligned64<double>>;
}  // namespace spd_detail
}  // namespace ql
#endif

HWY_BEFORE_NAMESPACE();
namespace ql {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using namespace spd_detail;

using DD = hn::ScalableTag<double>;
using VD = hn::Vec<DD>;

// c − a·b with one rounding: the FMA instruction, or lane by lane std::fma on targets without one (so
// every target computes the same bits).
HWY_INLINE VD NegFma(VD a, VD b, VD c) {
#if HWY_NATIVE_FMA
  return hn::NegMulAdd(a, b, c);
#else
  const DD d;
  constexpr size_t kMax = HWY_MAX_BYTES / sizeof(double);
  HWY_ALIGN double ta[kMax], tb[kMax], tc[kMax];
  hn::Store(a, d, ta);
  hn::Store(b, d, tb);
  hn::Store(c, d, tc);
  for (size_t l = 0; l < hn::Lanes(d); ++l) tc[l] = std::fma(-ta[l], tb[l], tc[l]);
  return hn::Load(d, tc);
#endif
}

// c + a·b with one rounding, as NegFma.
HWY_INLINE VD PosFma(VD a, VD b, VD c) {
#if HWY_NATIVE_FMA
  return hn::MulAdd(a, b, c);
#else
  return NegFma(hn::Neg(a), b, c);
#endif
}

enum class TileOp { kAddExact, kAddFused, kSubFused };  // Gram (exact products), cross products, Cholesky

size_t TileWidth() { return kVecs * hn::Lanes(DD()); }

// c[r·ldc + j] (+= or, kSubFused, −=) Σ_{k=k0}^{k1-1} p[k·kRows + r] · q[k·tw + j] for r < R and j < tw (the
// tile width), from packed panels (Pack): each element one chain, k ascending. Gram (kAddExact: products of
// floats are exact, so MulAdd is fused or not alike), cross products (kAddFused) and the Cholesky panel
// update (kSubFused).
template <int R, TileOp kOp>
HWY_INLINE void TileUp(const double* p, const double* q, int64_t k0, int64_t k1, double* c, size_t ldc) {
  const DD d;
  const size_t N = hn::Lanes(d), tw = kVecs * N;
  VD acc[R][kVecs];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVecs; ++v) acc[r][v] = hn::LoadU(d, c + r * ldc + v * N);
  for (int64_t k = k0; k < k1; ++k) {
    const double* pk = p + size_t(k) * kRows;
    const double* qk = q + size_t(k) * tw;
    VD b[kVecs];
    for (int v = 0; v < kVecs; ++v) b[v] = hn::LoadU(d, qk + v * N);
    for (int r = 0; r < R; ++r) {
      const VD a = hn::Set(d, pk[r]);
      for (int v = 0; v < kVecs; ++v) {
        if (kOp == TileOp::kAddExact) acc[r][v] = hn::MulAdd(a, b[v], acc[r][v]);
        else if (kOp == TileOp::kAddFused) acc[r][v] = PosFma(a, b[v], acc[r][v]);
        else acc[r][v] = NegFma(a, b[v], acc[r][v]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVecs; ++v) hn::StoreU(acc[r][v], d, c + r * ldc + v * N);
}

// Packs src[k·ld + c0 + c] for k < K, c < width (a multiple of w) into panels of w columns, panel by panel:
// out[(c / w)·K·w + k·w + c % w], in double. Unit-stride reads for the micro-kernel, and no page is
// touched once per k.
template <class T>
void Pack(const T* src, size_t ld, int64_t K, int64_t c0, int64_t width, int64_t w, double* out) {
  for (int64_t p = 0; p < width / w; ++p)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < w; ++c) out[(p * K + k) * w + c] = double(src[size_t(k) * ld + c0 + p * w + c]);
}

// Thread-private scratch that keeps its pages between calls (a fresh vector per item page-faults).
// Slots 0, 1: packed panels (items); 2, 3: the factor's working matrices (the calling thread).
double* Scratch(int slot, size_t n) {
  thread_local AlignedDoubles buf[4];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// Panels of kRows columns of src's columns [c0, c0 + width) for k < K: the full panels as Pack, then one
// panel per leftover column in its lane 0 (TileUp<1> reads lane 0). Size RowPanelOffset(width, ...).
void PackRowPanels(const double* src, size_t ld, int64_t K, int64_t c0, int64_t width, double* out) {
  const int64_t full = width / kRows * kRows;
  Pack(src, ld, K, c0, full, kRows, out);
  for (int64_t e = 0; e < width - full; ++e)
    for (int64_t k = 0; k < K; ++k) out[(full + e * kRows) * K + k * kRows] = src[size_t(k) * ld + c0 + full + e];
}
inline int64_t RowPanelOffset(int64_t r, int64_t width, int64_t K) {
  const int64_t full = width / kRows * kRows;
  return r < full ? r * K : (full + (r - full) * kRows) * K;
}

constexpr int64_t kKc = 256;  // k per pass over a chunk's tiles: a q panel of 256 x 24 doubles stays in L1/L2

// ---- Gram ----

// Rows [i0, i1) of h against the columns [j0, j1) (j1 ≤ n), tiles wholly below the diagonal skipped: the
// full tiles from packed panels of x, the last columns of the matrix (n not a multiple of tw) scalar.
void GramItem(const float* x, int64_t T, int64_t n, double* h, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const int64_t tw = int64_t(TileWidth());
  const int64_t full_rows = (i1 - i0) / kRows * kRows, full_cols = (j1 - j0) / tw * tw;
  double* pp = Scratch(0, size_t((full_rows + kRows) * T));  // + one panel for a leftover row
  double* qp = Scratch(1, size_t(std::max<int64_t>(full_cols, tw) * T));
  Pack(x, size_t(n), T, i0, full_rows, kRows, pp);
  Pack(x, size_t(n), T, j0, full_cols, tw, qp);
  double* lone = pp + full_rows * T;  // [T, kRows], lane 0: a leftover row's column of x
  for (int64_t i = i0; i < i1;) {
    const int rows = i + kRows <= i1 ? kRows : 1;
    if (rows == 1)
      for (int64_t t = 0; t < T; ++t) lone[t * kRows] = double(x[size_t(t) * n + i]);
    int64_t j = j0;
    for (; j + tw <= j1; j += tw) {
      if (j + tw <= i) continue;  // every lane below the diagonal
      double* c = h + size_t(i) * n + j;
      const double* q = qp + (j - j0) * T;
      if (rows == kRows) TileUp<kRows, TileOp::kAddExact>(pp + (i - i0) * T, q, 0, T, c, size_t(n));
      else TileUp<1, TileOp::kAddExact>(lone, q, 0, T, c, size_t(n));
    }
    for (int64_t r = i; r < i + rows; ++r)
      for (int64_t jj = std::max(j, r); jj < j1; ++jj) {
        double acc = h[size_t(r) * n + jj];
        for (int64_t t = 0; t < T; ++t) acc += double(x[size_t(t) * n + r]) * double(x[size_t(t) * n + jj]);
        h[size_t(r) * n + jj] = acc;
      }
    i += rows;
  }
}

void GramUpperAddImpl(const float* x, int64_t T, int64_t n, double* h, int threads) {
  std::vector<std::pair<int64_t, int64_t>> items;  // (first row, first column) of each item
  for (int64_t i = 0; i < n; i += kPanel)
    for (int64_t j = i / kChunk * kChunk; j < n; j += kChunk) items.emplace_back(i, j);
  const double fmas = 0.5 * double(n) * double(n) * double(T);
  ParallelFor(int(items.size()), Threads(fmas, threads), [&](int it, int) {
    const auto [i, j] = items[size_t(it)];
    GramItem(x, T, n, h, i, std::min(n, i + kPanel), j, std::min(n, j + kChunk));
  });
}

// ---- Cross product c += aᵀb ----

// Rows [i0, i1) of c ([m, n]) at the columns [j0, j1): k in passes of kKc, each pass's panels of a and b
// packed; the last columns (n not a multiple of tw) scalar, each the same fused chain.
void CrossItem(const double* a, const double* b, int64_t K, int64_t m, int64_t n, double* c, int64_t i0, int64_t i1,
               int64_t j0, int64_t j1) {
  const int64_t tw = int64_t(TileWidth()), rows = i1 - i0, full_cols = (j1 - j0) / tw * tw;
  double* pp = Scratch(0, size_t(RowPanelOffset(rows, rows, kKc)));
  double* qp = Scratch(1, size_t(std::max<int64_t>(full_cols, tw) * kKc));
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    PackRowPanels(a + size_t(k0) * m, size_t(m), kc, i0, rows, pp);
    Pack(b + size_t(k0) * n, size_t(n), kc, j0, full_cols, tw, qp);
    for (int64_t i = i0; i < i1;) {
      const int r = i + kRows <= i1 ? kRows : 1;
      const double* p = pp + RowPanelOffset(i - i0, rows, kc);
      int64_t j = j0;
      for (; j + tw <= j1; j += tw) {
        double* ct = c + size_t(i) * n + j;
        if (r == kRows) TileUp<kRows, TileOp::kAddFused>(p, qp + (j - j0) * kc, 0, kc, ct, size_t(n));
        else TileUp<1, TileOp::kAddFused>(p, qp + (j - j0) * kc, 0, kc, ct, size_t(n));
      }
      for (int64_t rr = i; rr < i + r; ++rr)
        for (int64_t jj = j; jj < j1; ++jj) {
          double acc = c[size_t(rr) * n + jj];
          for (int64_t k = k0; k < k0 + kc; ++k) acc = std::fma(a[size_t(k) * m + rr], b[size_t(k) * n + jj], acc);
          c[size_t(rr) * n + jj] = acc;
        }
      i += r;
    }
  }
}

void CrossAddImpl(const double* a, const double* b, int64_t K, int64_t m, int64_t n, double* c, int threads) {
  std::vector<std::pair<int64_t, int64_t>> items;  // (first row, first column) of each item
  for (int64_t i = 0; i < m; i += kPanel)
    for (int64_t j = 0; j < n; j += kChunk) items.emplace_back(i, j);
  ParallelFor(int(items.size()), Threads(double(m) * double(n) * double(K), threads), [&](int it, int) {
    const auto [i, j] = items[size_t(it)];
    CrossItem(a, b, K, m, n, c, i, std::min(m, i + kPanel), j, std::min(n, j + kChunk));
  });
}

// ---- Cholesky on a padded copy w [n, ld] (ld a multiple of kChunk, padding columns 0) ----

// Rows [i0, i1) of the panel, columns [j0, j1): the update by the finished rows k < i0, from pp (the
// panel's columns of rows k < i0, packed by CholeskyPadded) and the chunk's columns packed here; k in
// passes of kKc (each element's chain is stored and reloaded between passes: exact).
void PanelUpdate(double* w, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1, const double* pp) {
  const int64_t tw = int64_t(TileWidth());
  double* qp = Scratch(1, size_t((j1 - j0) * i0));
  Pack(w, size_t(ld), i0, j0, j1 - j0, tw, qp);
  for (int64_t k0 = 0; k0 < i0; k0 += kKc) {
    const int64_t k1 = std::min(i0, k0 + kKc);
    for (int64_t j = j0; j < j1; j += tw)
      for (int64_t i = i0; i < i1;) {
        const int rows = i + kRows <= i1 ? kRows : 1;
        if (j + tw > i) {
          double* c = w + size_t(i) * ld + j;
          const double* q = qp + (j - j0) * i0;
          const double* p = pp + RowPanelOffset(i - i0, i1 - i0, i0);  // PackRowPanels
          if (rows == kRows) TileUp<kRows, TileOp::kSubFused>(p, q, k0, k1, c, size_t(ld));
          else TileUp<1, TileOp::kSubFused>(p, q, k0, k1, c, size_t(ld));
        }
        i += rows;
      }
  }
}

// The diagonal block [i0, i1)² after PanelUpdate, scalar: the chains continue with k in [i0, i).
int64_t FactorDiagonalBlock(double* w, int64_t ld, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t j = i; j < i1; ++j) {
      double acc = w[size_t(i) * ld + j];
      for (int64_t k = i0; k < i; ++k) acc = std::fma(-w[size_t(k) * ld + i], w[size_t(k) * ld + j], acc);
      if (j == i) {
        if (!(acc > 0) || !std::isfinite(acc)) return i;
        w[size_t(i) * ld + i] = std::sqrt(acc);
      } else {
        w[size_t(i) * ld + j] = acc / w[size_t(i) * ld + i];
      }
    }
  }
  return -1;
}

// Rows [i0, i1) at the columns [j0, j1) right of the diagonal block: the chains continue with the panel's
// own rows k in [i0, i), then divide by the pivot. One row at a time (row i needs rows i0..i-1 final).
void PanelSolve(double* w, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const DD d;
  const int64_t tw = int64_t(TileWidth());
  const size_t N = hn::Lanes(d);
  for (int64_t j = j0; j < j1; j += tw)
    for (int64_t i = i0; i < i1; ++i) {
      double* c = w + size_t(i) * ld + j;
      VD acc[kVecs];
      for (int v = 0; v < kVecs; ++v) acc[v] = hn::LoadU(d, c + v * N);
      for (int64_t k = i0; k < i; ++k) {
        const VD a = hn::Set(d, w[size_t(k) * ld + i]);
        for (int v = 0; v < kVecs; ++v) acc[v] = NegFma(a, hn::LoadU(d, w + size_t(k) * ld + j + v * N), acc[v]);
      }
      const VD piv = hn::Set(d, w[size_t(i) * ld + i]);
      for (int v = 0; v < kVecs; ++v) hn::StoreU(hn::Div(acc[v], piv), d, c + v * N);
    }
}

// Column chunks of [j0, ld) as (begin, end) pairs, the first one possibly shorter.
std::vector<std::pair<int64_t, int64_t>> Chunks(int64_t j0, int64_t ld) {
  std::vector<std::pair<int64_t, int64_t>> c;
  for (int64_t j = j0; j < ld; j = (j / kChunk + 1) * kChunk) c.emplace_back(j, std::min(ld, (j / kChunk + 1) * kChunk));
  return c;
}

int64_t CholeskyPadded(double* w, int64_t n, int64_t ld, int threads) {
  for (int64_t i0 = 0; i0 < n; i0 += kPanel) {
    const int64_t i1 = std::min(n, i0 + kPanel);
    if (i0 > 0) {
      double* pp = Scratch(0, size_t(RowPanelOffset(i1 - i0, i1 - i0, i0)));  // read by every item
      PackRowPanels(w, size_t(ld), i0, i0, i1 - i0, pp);
      const auto chunks = Chunks(i0, ld);
      const double fmas = double(i1 - i0) * double(ld - i0) * double(i0);
      ParallelFor(int(chunks.size()), Threads(fmas, threads), [&](int c, int) {
        PanelUpdate(w, ld, i0, i1, chunks[size_t(c)].first, chunks[size_t(c)].second, pp);
      });
    }
    const int64_t bad = FactorDiagonalBlock(w, ld, i0, i1);
    if (bad >= 0) return bad;
    if (i0 + kPanel >= ld) continue;  // no column right of the panel but padding (zeros, which solve to zeros)
    const auto chunks = Chunks(i0 + kPanel, ld);
    const double fmas = 0.5 * double(i1 - i0) * double(i1 - i0) * double(ld - i0 - kPanel);
    ParallelFor(int(chunks.size()), Threads(fmas, threads), [&](int c, int) {
      PanelSolve(w, ld, i0, i1, chunks[size_t(c)].first, chunks[size_t(c)].second);
    });
  }
  return -1;
}

// ---- Inverse of an upper triangular u [n, ld] into v [n, ld] (v = I on entry, padding 0) ----

// Rows [r0, r0 + R) of one tile-wide panel vp of v ([rows, tw], row-major): the chains over k from k_hi
// down to r0 + R, then the tile's own rows bottom-up, each divided by its pivot as it is finished.
template <int R>
HWY_INLINE void InvertTile(const double* u, int64_t ld, double* vp, int64_t r0, int64_t k_hi) {
  const DD d;
  const size_t N = hn::Lanes(d), tw = kVecs * N;
  VD acc[R][kVecs];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVecs; ++v) acc[r][v] = hn::LoadU(d, vp + size_t(r0 + r) * tw + v * N);
  for (int64_t k = k_hi; k >= r0 + R; --k) {
    VD b[kVecs];
    for (int v = 0; v < kVecs; ++v) b[v] = hn::LoadU(d, vp + size_t(k) * tw + v * N);
    for (int r = 0; r < R; ++r) {
      const VD a = hn::Set(d, u[size_t(r0 + r) * ld + k]);
      for (int v = 0; v < kVecs; ++v) acc[r][v] = NegFma(a, b[v], acc[r][v]);
    }
  }
  for (int r = R - 1; r >= 0; --r) {
    const int64_t i = r0 + r;
    for (int64_t k = r0 + R - 1; k > i; --k) {
      const VD a = hn::Set(d, u[size_t(i) * ld + k]);
      for (int v = 0; v < kVecs; ++v) acc[r][v] = NegFma(a, hn::LoadU(d, vp + size_t(k) * tw + v * N), acc[r][v]);
    }
    const VD piv = hn::Set(d, u[size_t(i) * ld + i]);
    for (int v = 0; v < kVecs; ++v) hn::StoreU(hn::Div(acc[r][v], piv), d, vp + size_t(i) * tw + v * N);
  }
}

// Every row of v at the columns [j0, j1): rows m-1 .. 0 (m = min(n, j1); rows below are all zero) in
// tiles of kRows, each through every tile-wide panel of the chunk while its rows of u are in cache. The
// panels live in a packed copy (unit stride); for a panel, rows past its last column only meet exact
// zeros (spd.h), so starting every chain at k = m-1 changes no bit.
void InvertChunk(const double* u, double* v, int64_t n, int64_t ld, int64_t j0, int64_t j1) {
  const int64_t tw = int64_t(TileWidth()), m = std::min(n, j1), panels = (j1 - j0) / tw;
  double* vp = Scratch(1, size_t(m * (j1 - j0)));
  Pack(v, size_t(ld), m, j0, j1 - j0, tw, vp);
  int64_t top = m;
  for (; top >= kRows; top -= kRows)
    for (int64_t p = 0; p < panels; ++p) InvertTile<kRows>(u, ld, vp + p * m * tw, top - kRows, m - 1);
  for (; top > 0; --top)
    for (int64_t p = 0; p < panels; ++p) InvertTile<1>(u, ld, vp + p * m * tw, top - 1, m - 1);
  for (int64_t p = 0; p < panels; ++p)  // unpack
    for (int64_t k = 0; k < m; ++k) std::copy_n(vp + (p * m + k) * tw, tw, v + size_t(k) * ld + j0 + p * tw);
}

void InvertPadded(const double* u, double* v, int64_t n, int64_t ld, int threads) {
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  const double fmas = double(n) * double(n) * double(n) / 6;
  // The last chunks cost most: hand them out first.
  ParallelFor(int(n_chunks), Threads(fmas, threads), [&](int it, int) {
    const int64_t c = n_chunks - 1 - it;
    InvertChunk(u, v, n, ld, c * kChunk, (c + 1) * kChunk);
  });
}

int64_t CholeskyUpperImpl(double* a, int64_t n, int threads) {
  const int64_t ld = PaddedLd(n);
  AlignedDoubles w(size_t(n) * ld, 0.0);  // [n, ld]
  for (int64_t i = 0; i < n; ++i) std::copy(a + i * n + i, a + (i + 1) * n, w.begin() + i * ld + i);
  const int64_t bad = CholeskyPadded(w.data(), n, ld, threads);
  if (bad >= 0) return bad;
  for (int64_t i = 0; i < n; ++i) {
    std::fill(a + i * n, a + i * n + i, 0.0);
    std::copy(w.begin() + i * ld + i, w.begin() + i * ld + n, a + i * n + i);
  }
  return -1;
}

void InvertUpperImpl(const double* u, int64_t n, double* v, int threads) {
  const int64_t ld = PaddedLd(n);
  AlignedDoubles uw(size_t(n) * ld, 0.0), vw(size_t(n) * ld, 0.0);  // [n, ld] each
  for (int64_t i = 0; i < n; ++i) {
    std::copy(u + i * n + i, u + (i + 1) * n, uw.begin() + i * ld + i);
    vw[size_t(i) * ld + i] = 1.0;
  }
  InvertPadded(uw.data(), vw.data(), n, ld, threads);
  for (int64_t i = 0; i < n; ++i) {
    std::fill(v + i * n, v + i * n + i, 0.0);
    std::copy(vw.begin() + i * ld + i, vw.begin() + i * ld + n, v + i * n + i);
  }
}

int64_t InverseCholeskyUpperImpl(const double* a, int64_t n, double* r, int threads) {
  const int64_t ld = PaddedLd(n);
  // Working matrices kept by the thread between calls (fresh 19 MB ones page-fault on every call), every
  // element written here: [n, ld] each.
  double* w = Scratch(2, size_t(n * ld));  // J a J's upper triangle, then its factor U (lower part 0)
  double* v = Scratch(3, size_t(n * ld));  // I, then U⁻¹
  for (int64_t i = 0; i < n; ++i) {
    double* wi = w + size_t(i) * ld;
    std::fill(wi, wi + i, 0.0);
    for (int64_t j = i; j < n; ++j) wi[j] = a[size_t(n - 1 - i) * n + (n - 1 - j)];  // row n-1-i reversed
    std::fill(wi + n, wi + ld, 0.0);
    std::fill(v + size_t(i) * ld, v + size_t(i + 1) * ld, 0.0);
    v[size_t(i) * ld + i] = 1.0;
  }
  const int64_t bad = CholeskyPadded(w, n, ld, threads);
  if (bad >= 0) return n - 1 - bad;
  for (int64_t i = 0; i < n; ++i) std::fill(w + i * ld, w + i * ld + i, 0.0);  // PanelUpdate's lanes below
  InvertPadded(w, v, n, ld, threads);
  // r[i, j] = v[n-1-j, n-1-i], in 64 x 64 tiles (an anti-transpose: neither side strides a whole column).
  constexpr int64_t kT = 64;
  bool finite = true;
  for (int64_t i0 = 0; i0 < n; i0 += kT)
    for (int64_t j0 = 0; j0 < n; j0 += kT)
      for (int64_t i = i0; i < std::min(n, i0 + kT); ++i)
        for (int64_t j = j0; j < std::min(n, j0 + kT); ++j) {
          const double x = j < i ? 0.0 : v[size_t(n - 1 - j) * ld + (n - 1 - i)];
          finite &= std::isfinite(x);
          r[size_t(i) * n + j] = x;
        }
  return finite ? -1 : n;
}

}  // namespace HWY_NAMESPACE
}  // namespace ql
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ql {

HWY_EXPORT(GramUpperAddImpl);
HWY_EXPORT(CrossAddImpl);
HWY_EXPORT(CholeskyUpperImpl);
HWY_EXPORT(InvertUpperImpl);
HWY_EXPORT(InverseCholeskyUpperImpl);

void GramUpperAdd(const float* x, int64_t T, int64_t n, double* h, int threads) {
  if (T <= 0 || n <= 0) return;
  HWY_DYNAMIC_DISPATCH(GramUpperAddImpl)(x, T, n, h, threads);
}

void CrossAdd(const double* a, const double* b, int64_t K, int64_t m, int64_t n, double* c, int threads) {
  if (K > 0 && m > 0 && n > 0) HWY_DYNAMIC_DISPATCH(CrossAddImpl)(a, b, K, m, n, c, threads);
}

int64_t CholeskyUpper(double* a, int64_t n, int threads) {
  return n <= 0 ? -1 : HWY_DYNAMIC_DISPATCH(CholeskyUpperImpl)(a, n, threads);
}

void InvertUpper(const double* u, int64_t n, double* v, int threads) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(InvertUpperImpl)(u, n, v, threads);
}

int64_t InverseCholeskyUpper(const double* a, int64_t n, double* r, int threads) {
  return n <= 0 ? -1 : HWY_DYNAMIC_DISPATCH(InverseCholeskyUpperImpl)(a, n, r, threads);
}

// ---- Scalar oracles: the element rules of spd.h, written out ----

void GramUpperAddRef(const float* x, int64_t T, int64_t n, double* h) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) {
      double acc = h[i * n + j];
      for (int64_t t = 0; t < T; ++t) acc += double(x[t * n + i]) * double(x[t * n + j]);
      h[i * n + j] = acc;
    }
}

void CrossAddRef(const double* a, const double* b, int64_t K, int64_t m, int64_t n, double* c) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = c[i * n + j];
      for (int64_t k = 0; k < K; ++k) acc = std::fma(a[k * m + i], b[k * n + j], acc);
      c[i * n + j] = acc;
    }
}

int64_t CholeskyUpperRef(double* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) {
      double acc = a[i * n + j];
      for (int64_t k = 0; k < i; ++k) acc = std::fma(-a[k * n + i], a[k * n + j], acc);
      if (j == i) {
        if (!(acc > 0) || !std::isfinite(acc)) return i;
        a[i * n + i] = std::sqrt(acc);
      } else {
        a[i * n + j] = acc / a[i * n + i];
      }
    }
    std::fill(a + i * n, a + i * n + i, 0.0);
  }
  return -1;
}

void InvertUpperRef(const double* u, int64_t n, double* v) {
  std::fill(v, v + n * n, 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = j; i >= 0; --i) {
      double acc = i == j ? 1.0 : 0.0;
      for (int64_t k = j; k > i; --k) acc = std::fma(-u[i * n + k], v[k * n + j], acc);
      v[i * n + j] = acc / u[i * n + i];
    }
}

int64_t InverseCholeskyUpperRef(const double* a, int64_t n, double* r) {
  std::vector<double> w(size_t(n) * n), v(size_t(n) * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) w[size_t(i * n + j)] = a[(n - 1 - i) * n + (n - 1 - j)];
  const int64_t bad = CholeskyUpperRef(w.data(), n);
  if (bad >= 0) return n - 1 - bad;
  InvertUpperRef(w.data(), n, v.data());
  bool finite = true;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      r[i * n + j] = j < i ? 0.0 : v[size_t((n - 1 - j) * n + (n - 1 - i))];
      finite &= std::isfinite(r[i * n + j]);
    }
  return finite ? -1 : n;
}

}  // namespace ql
#endif  // HWY_ONCE
