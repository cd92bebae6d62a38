// The BF16 compute mode of the forward pass (Model::matmul = kBf16): close to the FP32 forward of
// the same BF16 weights at BF16's precision but not equal to it (the mode is really on), on a random
// model against the scalar oracle and on stories260K's TinyStories NLL.
// Tolerance: BF16 inputs carry 8 significant bits (relative rounding 2^-9); through a few layers the
// logits' relative Frobenius error stays within 3e-2 on these models, and the mean NLL moves < 1%.
#include <cmath>
#include "tests/test_paths.h"
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/eval/baseline.h"
#include "harness/io/llama2c.h"
#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "tests/harness/reference_forward.h"

namespace ql {
namespace {

TEST(ForwardBf16Test, CloseToFp32ButNotEqual) {
  ModelConfig c;
  c.dim = 96, c.hidden_dim = 160, c.n_layers = 2, c.n_heads = 6, c.n_kv_heads = 2, c.head_dim = 16;
  c.vocab_size = 101, c.rope_theta = 10000.f, c.norm_eps = 1e-5f;
  const Model fp32 = WithPrecision(RandomModel(c, 3), BaselinePrecision::kBf16);
  const Model bf16 = WithPrecision(RandomModel(c, 3), BaselinePrecision::kBf16Compute);
  ASSERT_EQ(bf16.matmul, MatmulPrecision::kBf16);
  for (int T : {1, 5, 70}) {
    SCOPED_TRACE(T);
    const auto tok = testing_ref::Tokens(T, c.vocab_size);
    std::vector<float> got(size_t(T) * c.vocab_size);
    ASSERT_TRUE(ForwardWindow(bf16, tok, got.data()).ok());
    const auto ref = testing_ref::ReferenceForward(fp32, tok);
    const double err = testing_ref::RelErr(got, ref);
    EXPECT_LE(err, 3e-2);
    EXPECT_GE(err, 1e-4);  // FP32 arithmetic would be ~1e-7 from the oracle
  }
}

TEST(ForwardBf16Test, Stories260KNllMovesLessThanOnePercent) {
  const std::string dir = std::string(QL_SHARED_DIR) + "/models/stories260K/";
  auto m = io::ReadLlama2c(dir + "stories260K.bin", dir + "tok512.bin");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int T = 256, V = m->config.vocab_size;
  // A deterministic pseudo-text: the model's own greedy continuation would be too easy.
  const auto tok = testing_ref::Tokens(T, V, 1);
  double nll[2] = {0, 0};
  for (int mode = 0; mode < 2; ++mode) {
    const Model w = WithPrecision(*m, mode ? BaselinePrecision::kBf16Compute : BaselinePrecision::kBf16);
    std::vector<float> logits(size_t(T) * V);
    ASSERT_TRUE(ForwardWindow(w, tok, logits.data()).ok());
    for (int t = 0; t + 1 < T; ++t) {
      const float* row = logits.data() + size_t(t) * V;
      double mx = row[0], sum = 0;
      for (int v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
      for (int v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
      nll[mode] += (std::log(sum) + mx - row[tok[t + 1]]) / (T - 1);
    }
  }
  std::printf("stories260K mean NLL on pseudo-text: bf16 weights %.6f, bf16 compute %.6f\n", nll[0], nll[1]);
  EXPECT_NE(nll[0], nll[1]);
  EXPECT_LE(std::fabs(nll[1] - nll[0]), 0.01 * nll[0]);
}

}  // namespace
}  // namespace ql
