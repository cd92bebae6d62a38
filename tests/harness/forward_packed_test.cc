// Tests of the packed forward pass (harness/model/forward_packed.h): every sequence of a packed trie
// against ForwardWindow of that sequence alone, a row's logits bitwise independent of what is packed
// beside it and of the thread count, and the batch errors.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "harness/model/forward.h"
#include "harness/model/forward_packed.h"
#include "harness/model/random_model.h"
#include "kernels/parallel.h"

namespace ql {
namespace {

Model PackModel(bool qkv_bias, bool qk_norm) {
  ModelConfig c;
  c.dim = 48;
  c.hidden_dim = 96;
  c.n_layers = 2;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 97;
  c.max_seq_len = 64;
  c.tied_embeddings = !qkv_bias;
  c.qkv_bias = qkv_bias;
  c.qk_norm = qk_norm;
  return RandomModel(c, 5);
}

// Appends `seq` to the batch, its first shared_rows.size() positions on those existing rows (a trie
// branch), asks for every new row's logits, returns the rows of its positions.
std::vector<int> AddSequence(PackedBatch& b, const std::vector<int>& seq, const std::vector<int>& shared_rows = {}) {
  std::vector<int> rows;
  int parent = -1;
  for (size_t j = 0; j < seq.size(); ++j) {
    if (j < shared_rows.size()) {
      parent = shared_rows[j];
    } else {
      parent = b.Add(seq[j], parent);
      b.logit_rows.push_back(parent);
    }
    rows.push_back(parent);
  }
  return rows;
}

// logits of `row` in the output of ForwardPacked (rows in logit_rows order).
const float* RowLogits(const PackedBatch& b, const std::vector<float>& logits, int row, int V) {
  for (size_t i = 0; i < b.logit_rows.size(); ++i)
    if (b.logit_rows[i] == row) return logits.data() + i * V;
  ADD_FAILURE() << "row " << row << " has no logits";
  return logits.data();
}

std::vector<float> Window(const Model& m, const std::vector<int>& seq) {
  std::vector<float> out(seq.size() * size_t(m.config.vocab_size));
  QL_CHECK(ForwardWindow(m, seq, out.data()).ok());
  return out;
}

// Three tries: [a] with two branches sharing 5 tokens, [b] alone, [c] a single token (position 0).
TEST(ForwardPacked, EverySequenceMatchesForwardWindow) {
  for (bool variant : {false, true}) {
    const Model m = PackModel(variant, variant);
    const int V = m.config.vocab_size;
    const std::vector<int> a1 = {3, 14, 15, 92, 65, 35, 89}, a2 = {3, 14, 15, 92, 65, 7, 9, 33, 2};
    const std::vector<int> b = {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61}, c = {42};
    PackedBatch batch;
    const std::vector<int> r1 = AddSequence(batch, a1);
    const std::vector<int> r2 = AddSequence(batch, a2, std::vector<int>(r1.begin(), r1.begin() + 5));
    const std::vector<int> rb = AddSequence(batch, b), rc = AddSequence(batch, c);
    ASSERT_EQ(batch.rows(), 7 + 4 + 12 + 1);
    std::vector<float> logits(batch.logit_rows.size() * V);
    ASSERT_TRUE(ForwardPacked(m, batch, logits.data()).ok());
    double worst = 0;
    for (const auto& [seq, rows] : {std::pair{a1, r1}, {a2, r2}, {b, rb}, {c, rc}}) {
      const std::vector<float> want = Window(m, seq);
      for (size_t j = 0; j < seq.size(); ++j) {
        const float* got = RowLogits(batch, logits, rows[j], V);
        for (int v = 0; v < V; ++v) worst = std::max(worst, double(std::abs(got[v] - want[j * V + v])));
      }
    }
    // Same terms, other summation order in attention (ForwardWindow's blocked GEMM): float rounding.
    EXPECT_LT(worst, 2e-5) << "variant " << variant;
  }
}

// A row's logits are the same bits alone (padded to the GEMM's row minimum), beside other tries, and
// on one thread or several.
TEST(ForwardPacked, BitwiseIndependentOfNeighboursAndThreads) {
  const Model m = PackModel(false, false);
  const int V = m.config.vocab_size;
  const std::vector<int> s = {9, 8, 7, 6, 5, 4, 3}, t = {1, 2, 3}, u = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  PackedBatch alone;
  const std::vector<int> rows_alone = AddSequence(alone, t);
  std::vector<float> la(alone.logit_rows.size() * V);
  ASSERT_TRUE(ForwardPacked(m, alone, la.data()).ok());
  for (int threads : {1, 2}) {
    SetNumThreads(threads);
    PackedBatch many;
    AddSequence(many, s);
    const std::vector<int> rows_t = AddSequence(many, t);
    AddSequence(many, u);
    std::vector<float> lm(many.logit_rows.size() * V);
    ASSERT_TRUE(ForwardPacked(m, many, lm.data()).ok());
    for (size_t j = 0; j < t.size(); ++j) {
      const float* x = RowLogits(alone, la, rows_alone[j], V);
      const float* y = RowLogits(many, lm, rows_t[j], V);
      for (int v = 0; v < V; ++v) ASSERT_EQ(x[v], y[v]) << "threads " << threads << " pos " << j << " v " << v;
    }
  }
  SetNumThreads(0);
}

TEST(ForwardPacked, BatchErrors) {
  Model m = PackModel(false, false);
  std::vector<float> logits(4 * m.config.vocab_size);
  PackedBatch empty;
  EXPECT_EQ(ForwardPacked(m, empty, logits.data()).message(), "packed forward: empty batch (need at least one row)");
  PackedBatch bad_token;
  bad_token.Add(97, -1);
  EXPECT_EQ(ForwardPacked(m, bad_token, logits.data()).message(),
            "packed forward: token id 97 in row 0 is outside the vocabulary [0, 97)");
  PackedBatch bad_parent;
  bad_parent.Add(1, -1);
  bad_parent.Add(2, 1);
  EXPECT_EQ(ForwardPacked(m, bad_parent, logits.data()).message(),
            "packed forward: row 1 has parent 1 (must be -1 or an earlier row)");
  PackedBatch too_deep;
  int p = -1;
  for (int i = 0; i < 65; ++i) p = too_deep.Add(1, p);
  EXPECT_EQ(ForwardPacked(m, too_deep, logits.data()).message(),
            "packed forward: row 64 sits at position 64, past the model's max_seq_len 64");
  PackedBatch ok;
  ok.Add(1, -1);
  ok.logit_rows = {3};
  EXPECT_EQ(ForwardPacked(m, ok, logits.data()).message(), "packed forward: logit row 3 outside the 1 rows");
  m.matmul = MatmulPrecision::kBf16;
  ok.logit_rows = {0};
  EXPECT_EQ(ForwardPacked(m, ok, logits.data()).message(),
            "packed forward: only FP32 matmuls are supported (use ForwardWindow for BF16 compute)");
}

}  // namespace
}  // namespace ql
