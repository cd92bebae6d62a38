// Re-packing dequantized GGUF blocks, the fallback of `quantlab export --cell` for an algorithm that keeps no
// rounding inputs (harness/sweep/cell_export.h): does a weight already on a type's grid (the dequantized output
// of its quantizer, with or without importances) pack again to blocks that dequantize to it bit for bit? For
// the types whose fit is a direct formula of the block's extremes (q4_0, q4_1, q5_0, q5_1) and for q4_K, yes on
// plain RTN outputs; for the searched fits (q2_K, q3_K, q5_K, q6_K, iq4_nl, iq4_xs, and everything after an
// importance-weighted fit) not in general, which is why export packs the rounding inputs instead and checks
// every tensor. Every type of the registry is looped over (rows with outliers, tiny and huge scales, constant
// and all-zero blocks); the inexact ones are printed.
#include <cmath>
#include <cstring>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/gguf_blocks.h"

namespace ql {
namespace {

// Rows of the shapes that make fits hard: gaussian with outliers at several scales, one constant row, one
// all-zero row, one with a single non-zero, one half-zero (a whole 32-block of zeros inside a 256-block).
std::vector<std::vector<float>> Rows(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> rows;
  for (float scale : {1e-6f, 0.02f, 1.0f, 300.0f}) {
    std::vector<float> r(static_cast<size_t>(n));
    for (float& v : r) v = scale * g(rng);
    for (int k = 0; k < 3; ++k) r[size_t(rng() % n)] *= 12.0f;  // outliers
    rows.push_back(r);
  }
  rows.push_back(std::vector<float>(size_t(n), 0.37f));
  rows.push_back(std::vector<float>(size_t(n), 0.0f));
  std::vector<float> one(size_t(n), 0.0f);
  one[5] = -1.5f;
  rows.push_back(one);
  std::vector<float> half = rows[2];
  std::fill(half.begin(), half.begin() + 32, 0.0f);
  rows.push_back(half);
  return rows;
}

std::vector<float> Dequantize(int type, const std::vector<uint8_t>& b, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  EXPECT_TRUE(DequantizeGgmlRow(type, b.data(), n, y.data()).ok());
  return y;
}

// On-grid input w = dequant(quant(x, qw)); how many values of pack(w) do not dequantize to w.
int64_t RepackMismatches(int type, const std::vector<float>& x, const float* qw) {
  const int64_t n = int64_t(x.size());
  StatusOr<std::vector<uint8_t>> first = QuantizeGgmlRow(type, x.data(), n, qw);
  EXPECT_TRUE(first.ok()) << first.status().message();
  if (!first.ok()) return n;
  const std::vector<float> w = Dequantize(type, *first, n);
  StatusOr<std::vector<uint8_t>> again = QuantizeGgmlRow(type, w.data(), n);
  EXPECT_TRUE(again.ok()) << again.status().message();
  if (!again.ok()) return n;
  const std::vector<float> w2 = Dequantize(type, *again, n);
  int64_t differ = 0;
  for (int64_t i = 0; i < n; ++i) differ += std::memcmp(&w[size_t(i)], &w2[size_t(i)], sizeof(float)) != 0;
  return differ;
}

TEST(GgufRepack, PlainRtnOutputsOfTheFormulaTypesPackBackExactly) {
  const std::set<std::string> exact = {"q4_0", "q4_1", "q5_0", "q5_1", "q4_K"};
  int tested = 0;
  for (const GgmlTypeInfo& t : GgmlTypeTable()) {
    if (!t.supported || t.block_elems == 1 || std::string(t.name) == "q8_K") continue;  // q8_K: not a weight type
    SCOPED_TRACE(t.name);
    const int64_t n = 512;  // two 256-blocks, sixteen 32-blocks
    std::mt19937 rng(uint32_t(t.id));
    std::vector<float> qw(static_cast<size_t>(n));
    for (float& v : qw) v = std::exp(std::normal_distribution<float>(0.0f, 1.5f)(rng));  // importances 0.01..100
    int64_t plain = 0, weighted = 0, rows = 0;
    for (const std::vector<float>& x : Rows(n, uint32_t(100 + t.id))) {
      plain += RepackMismatches(t.id, x, nullptr);
      weighted += RepackMismatches(t.id, x, qw.data());
      ++rows;
    }
    if (exact.count(t.name)) EXPECT_EQ(plain, 0) << t.name << ": plain RTN output does not pack back";
    std::printf("[repack] %-7s values moved on re-packing, of %lld: RTN output %lld, importance-weighted output %lld\n",
                t.name, static_cast<long long>(rows * n), static_cast<long long>(plain), static_cast<long long>(weighted));
    ++tested;
  }
  EXPECT_EQ(tested, 12);  // q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K iq4_nl iq4_xs
}

}  // namespace
}  // namespace ql
