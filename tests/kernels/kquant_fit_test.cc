// Tests of kernels/kquant_fit.h: the batched k-quant scale searches against their scalar oracles
// (kernels/gguf_blocks.h MakeQkx2Quants, MakeQxQuants), bit for bit, on every dispatch target, for the
// parameter sets the GGUF types use, odd sub-block counts (lane tails) and odd lengths, and for the
// reference's special cases (flat, all-positive, all-zero and tiny sub-blocks).
#include "kernels/kquant_fit.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/gguf_blocks.h"
#include "tests/kernels/hwy_targets.h"

namespace ql::gguf {
namespace {

// n_sub sub-blocks of n values; every fourth sub-block is one of the special cases.
std::vector<float> SubBlocks(int n_sub, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(n_sub) * n);
  for (int s = 0; s < n_sub; ++s) {
    float* v = x.data() + size_t(s) * n;
    const float scale = std::ldexp(1.0f, int(rng() % 24) - 12);
    for (int i = 0; i < n; ++i) v[i] = scale * normal(rng);
    switch (s % 8) {
      case 3: for (int i = 0; i < n; ++i) v[i] = 0.25f; break;              // flat, positive
      case 5: for (int i = 0; i < n; ++i) v[i] = std::fabs(v[i]) + 1.0f; break;  // all positive (min > 0)
      case 6: for (int i = 0; i < n; ++i) v[i] = 0.0f; break;               // all zero
      case 7: for (int i = 0; i < n; ++i) v[i] *= 1e-17f; break;            // below GROUP_MAX_EPS
      default: break;
    }
  }
  return x;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct Qkx2Case { int n, nmax; float rmin; int nstep; bool use_mad; };

TEST(KquantFit, Qkx2BatchEqualsTheScalarFitOnEveryTarget) {
  const Qkx2Case cases[] = {{32, 15, -1.0f, 20, false},  // Q4_K
                            {32, 31, -0.5f, 15, false},  // Q5_K
                            {16, 3, -0.5f, 15, true},    // Q2_K
                            {13, 15, -1.0f, 0, false},   // no search, odd length
                            {32, 255, -1.0f, 3, true}};
  ForEachTarget([&] {
    for (const Qkx2Case& c : cases)
      for (int n_sub : {1, 3, 8, 17, 33}) {
        const std::vector<float> x = SubBlocks(n_sub, c.n, uint32_t(n_sub * 131 + c.nmax));
        std::vector<float> w(x.size());
        for (size_t k = 0; k < x.size(); ++k) w[k] = 0.5f + std::fabs(x[k]) * float(k % 5);
        std::vector<uint8_t> L(x.size()), Lref(x.size()), laux(32);
        std::vector<float> scales(n_sub), mins(n_sub);
        MakeQkx2QuantsBatch(n_sub, c.n, c.nmax, x.data(), w.data(), L.data(), scales.data(), mins.data(), c.rmin,
                            0.1f, c.nstep, c.use_mad);
        for (int s = 0; s < n_sub; ++s) {
          float min_ref = 0;
          const float scale_ref = MakeQkx2Quants(c.n, c.nmax, x.data() + s * c.n, w.data() + s * c.n,
                                                 Lref.data() + s * c.n, &min_ref, laux.data(), c.rmin, 0.1f, c.nstep,
                                                 c.use_mad);
          ASSERT_EQ(Bits(scales[s]), Bits(scale_ref)) << "nmax " << c.nmax << " n_sub " << n_sub << " s " << s;
          ASSERT_EQ(Bits(mins[s]), Bits(min_ref)) << "nmax " << c.nmax << " n_sub " << n_sub << " s " << s;
        }
        ASSERT_EQ(L, Lref) << "nmax " << c.nmax << " n_sub " << n_sub;
      }
  });
}

TEST(KquantFit, QxBatchEqualsTheScalarFitOnEveryTarget) {
  ForEachTarget([&] {
    for (int n : {16, 32, 7})
      for (int nmax : {32, 4, 16})
        for (int n_sub : {1, 5, 16, 21}) {
          const std::vector<float> x = SubBlocks(n_sub, n, uint32_t(n * 7 + nmax * 3 + n_sub));
          std::vector<int8_t> L(x.size()), Lref(x.size());
          std::vector<float> scales(n_sub);
          MakeQxQuantsBatch(n_sub, n, nmax, x.data(), L.data(), scales.data());
          for (int s = 0; s < n_sub; ++s) {
            const float ref = MakeQxQuants(n, nmax, x.data() + s * n, Lref.data() + s * n, nullptr);
            ASSERT_EQ(Bits(scales[s]), Bits(ref)) << "n " << n << " nmax " << nmax << " s " << s;
          }
          ASSERT_EQ(L, Lref) << "n " << n << " nmax " << nmax << " n_sub " << n_sub;
        }
  });
}

TEST(KquantFit, FlatAndZeroSubBlocksFollowTheReference) {
  // Hand values: a constant positive sub-block has its min clamped to 0, so it is not flat: codes
  // round(15 · 1.5 / 1.5) = 15 at scale 1 / (15 / 1.5) = 0.1f, and no trial has D > 0 (all codes are
  // equal), so that first fit stays. An all-zero sub-block is flat: scale 0, codes 0, min 0.
  std::vector<float> x(64, 0.0f), w(64, 1.0f);
  for (int i = 0; i < 32; ++i) x[i] = 1.5f;
  std::vector<uint8_t> L(64);
  float scales[2], mins[2];
  MakeQkx2QuantsBatch(2, 32, 15, x.data(), w.data(), L.data(), scales, mins, -1.0f, 0.1f, 20, false);
  EXPECT_EQ(scales[0], 0.1f);
  EXPECT_EQ(mins[0], 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(L[i], 15) << i;
  EXPECT_EQ(scales[1], 0.0f);
  EXPECT_EQ(mins[1], 0.0f);
  for (int i = 32; i < 64; ++i) EXPECT_EQ(L[i], 0) << i;
}

}  // namespace
}  // namespace ql::gguf
