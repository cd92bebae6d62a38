// Tests of kernels/attention.h on odd shapes and every Highway target this CPU runs:
// (1) bit for bit the FP32 Gemm path it replaces in the forward pass (S = scale·Q·Kᵀ by Gemm over all
//     keys, ops::Softmax over each row's visible prefix, the rest zeroed, O = P·V by Gemm over all
//     keys), for the forward's stacked causal rows and for arbitrary visible counts;
// (2) within tolerance of the double oracle CausalAttentionRef. Entries in [-1, 1]: each score's FP32
//     chain is within hd·2^-24·Σ|q·k|·scale ≈ 3e-6 of exact at hd = 80, which moves each probability by
//     that relative amount, and P·V adds keys·2^-24 relative to Σ|p·v| <= max|v|; 2e-5 covers both.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "tests/kernels/hwy_targets.h"
#include "tests/kernels/random_fill.h"

namespace ql {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) { return testing::RandomUniform(n, seed); }

struct Case {
  int m, hd, n_keys, pad;
  std::vector<int> valid;  // [m]
  std::vector<float> q, k, v;
  int ldq() const { return hd + pad; }
  int ldkv() const { return 3 * hd + pad; }  // keys/values of several heads side by side, as the forward stores them
  Case(int m_, int hd_, int n_keys_, int pad_, std::vector<int> valid_, uint32_t seed)
      : m(m_), hd(hd_), n_keys(n_keys_), pad(pad_), valid(std::move(valid_)) {
    q = Random(size_t(m) * ldq(), seed);
    k = Random(size_t(n_keys) * ldkv(), seed + 1);
    v = Random(size_t(n_keys) * ldkv(), seed + 2);
  }
  float Scale() const { return 1.0f / std::sqrt(float(hd)); }
};

// The forward's stacked rows: `group` heads of `rows` queries at positions q_pos0 + r.
std::vector<int> Stacked(int group, int rows, int q_pos0) {
  std::vector<int> valid(size_t(group) * rows);
  for (size_t i = 0; i < valid.size(); ++i) valid[i] = q_pos0 + int(i % rows) + 1;
  return valid;
}

// Scores [m, n_keys] and output [m, hd] of the kernels.
void RunKernels(const Case& c, std::vector<float>& s, std::vector<float>& o) {
  std::vector<float> kp(AttentionKeyPanelFloats(c.n_keys, c.hd), -5.0f);
  PackAttentionKeys(c.k.data(), c.ldkv(), c.n_keys, c.hd, kp.data());
  s.assign(size_t(c.m) * c.n_keys, 9.0f);
  CausalScores(c.q.data(), c.ldq(), c.m, c.hd, kp.data(), c.n_keys, c.valid.data(), c.Scale(), s.data(), c.n_keys);
  std::vector<float> p = s;
  for (int i = 0; i < c.m; ++i) ops::Softmax(p.data() + size_t(i) * c.n_keys, c.valid[i]);
  o.assign(size_t(c.m) * (c.hd + 1), -7.0f);  // ldo = hd + 1: the padding column must stay untouched
  CausalPV(p.data(), c.n_keys, c.m, c.valid.data(), c.v.data(), c.ldkv(), c.hd, o.data(), c.hd + 1);
}

// The Gemm path of the forward pass before the causal kernels.
void RunGemms(const Case& c, std::vector<float>& s, std::vector<float>& o) {
  s.assign(size_t(c.m) * c.n_keys, 0.0f);
  Gemm(c.m, c.n_keys, c.hd, c.Scale(), c.q.data(), c.ldq(), c.k.data(), c.ldkv(), BLayout::kNK, s.data(), c.n_keys, 1);
  std::vector<float> p = s;
  for (int i = 0; i < c.m; ++i) {
    float* row = p.data() + size_t(i) * c.n_keys;
    ops::Softmax(row, c.valid[i]);
    std::fill(row + c.valid[i], row + c.n_keys, 0.0f);
  }
  o.assign(size_t(c.m) * (c.hd + 1), -7.0f);
  Gemm(c.m, c.hd, c.n_keys, 1.0f, p.data(), c.n_keys, c.v.data(), c.ldkv(), BLayout::kKN, o.data(), c.hd + 1, 1);
}

void ExpectBitwiseGemm(const Case& c) {
  std::vector<float> s, o, s_want, o_want;
  RunKernels(c, s, o);
  RunGemms(c, s_want, o_want);
  int bad = 0;
  for (int i = 0; i < c.m; ++i)
    for (int j = 0; j < c.valid[i]; ++j)
      bad += std::memcmp(&s[size_t(i) * c.n_keys + j], &s_want[size_t(i) * c.n_keys + j], sizeof(float)) != 0;
  EXPECT_EQ(bad, 0) << "scores differing from Gemm's, m " << c.m << " hd " << c.hd << " keys " << c.n_keys;
  EXPECT_EQ(std::memcmp(o.data(), o_want.data(), sizeof(float) * o.size()), 0)
      << "output differs from the Gemm path, m " << c.m << " hd " << c.hd << " keys " << c.n_keys;
}

TEST(AttentionTest, BitwiseTheGemmPathOnStackedCausalRowsEveryTarget) {
  ForEachTarget([] {
    uint32_t seed = 1;
    for (int hd : {8, 17, 64, 80})
      for (auto [group, rows, q_pos0] : {std::tuple{3, 64, 0}, {3, 64, 128}, {3, 13, 192}, {1, 4, 0}, {2, 37, 5},
                                         {5, 64, 64}})
        ExpectBitwiseGemm(Case(group * rows, hd, q_pos0 + rows, 3, Stacked(group, rows, q_pos0), seed++));
  });
}

TEST(AttentionTest, BitwiseTheGemmPathForAnyVisibleCounts) {
  ForEachTarget([] {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 12; ++trial) {
      const int m = 4 + int(rng() % 60), n_keys = 1 + int(rng() % 150), hd = 1 + int(rng() % 70);
      std::vector<int> valid(m);
      for (int& x : valid) x = 1 + int(rng() % n_keys);
      ExpectBitwiseGemm(Case(m, hd, n_keys, int(rng() % 5), valid, 100 + trial));
    }
  });
}

TEST(AttentionTest, MatchesDoubleReferenceEveryTarget) {
  ForEachTarget([] {
    uint32_t seed = 50;
    for (int hd : {8, 64, 80})
      for (auto [group, rows, q_pos0] : {std::tuple{3, 64, 0}, {3, 29, 300}, {4, 7, 1}}) {
        const Case c(group * rows, hd, q_pos0 + rows, 2, Stacked(group, rows, q_pos0), seed++);
        std::vector<float> s, o;
        RunKernels(c, s, o);
        std::vector<float> want(size_t(c.m) * (c.hd + 1), -7.0f);
        CausalAttentionRef(c.q.data(), c.ldq(), c.m, c.hd, c.k.data(), c.ldkv(), c.v.data(), c.ldkv(), c.valid.data(),
                           c.Scale(), want.data(), c.hd + 1);
        double worst = 0;
        for (size_t i = 0; i < o.size(); ++i) worst = std::max(worst, std::fabs(double(o[i]) - want[i]));
        EXPECT_LE(worst, 2e-5) << "hd " << hd << " rows " << rows << " q_pos0 " << q_pos0;
      }
  });
}

TEST(AttentionTest, PvZeroesTheMaskedProbabilitiesItReads) {
  // Row 0 sees 1 key, row 1 sees 5: row 0's entries 1..4 are read by the shared row tile, so the
  // kernel must zero them (they hold garbage here) and row 0's output is then exactly v[0].
  const int hd = 16, n_keys = 5;
  std::vector<float> p(2 * n_keys, 3.0f);
  p[0] = 1.0f;
  const std::vector<int> valid = {1, 5};
  const std::vector<float> v = Random(size_t(n_keys) * hd, 3);
  std::vector<float> o(2 * hd);
  CausalPV(p.data(), n_keys, 2, valid.data(), v.data(), hd, hd, o.data(), hd);
  for (int c = 0; c < hd; ++c) EXPECT_EQ(o[c], v[c]) << c;
}

}  // namespace
}  // namespace ql
