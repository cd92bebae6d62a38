// Importance matrices (harness/quant/imatrix.h): the collected statistic against a plain double-precision
// sum of x² over the captured linear inputs, llama-imatrix's chunking of a text, and the `imatrix`
// algorithm against ggml's weighted row quantizer (kernels QuantizeGgmlRow with quant_weights) row by row.
#include <cmath>
#include "tests/test_paths.h"
#include <string>

#include <gtest/gtest.h>

#include "harness/io/load.h"
#include "harness/quant/algorithm.h"
#include "harness/quant/imatrix.h"
#include "harness/quant/quant_util.h"
#include "harness/tokenizer/tokenizer.h"
#include "kernels/gguf_blocks.h"
#include "tests/harness/algo_test_util.h"
#include "tests/harness/io_testing.h"

namespace ql {
namespace {

// Rows of 256 (K-quant blocks) in every linear but down_proj (FFN 320: one whole and one partial block).
ModelConfig Config256() {
  ModelConfig c = Stories260KConfig();
  c.dim = 256, c.hidden_dim = 320, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64;
  return c;
}

TEST(ImatrixCollect, SumOfSquaresAndCountsOfEveryLinear) {
  const Model m = RandomModel(Stories260KConfig(), 3);
  const CalibrationSet calib = testing::RandomCalibration(512, 3, 24, 5);
  std::vector<std::vector<int>> windows = calib.windows;
  windows.push_back(std::vector<int>(15, 7));  // fewer than 16 tokens: skipped, as llama-imatrix does
  StatusOr<io::Imatrix> im = CollectImatrix(m, windows, {});
  ASSERT_TRUE(im.ok()) << im.status().message();
  EXPECT_EQ(im->entries.size(), size_t(7 * m.config.n_layers));  // lm_head only with process_output (tied: never)
  EXPECT_FALSE(im->entries.count("output.weight"));
  CaptureRequest req;
  req.inputs = true;
  for (int l = 0; l < m.config.n_layers; ++l)
    for (const std::string& mod : LayerLinears(l)) req.modules.insert(mod);
  StatusOr<std::map<std::string, LinearStats>> st = CaptureLinearStats(m, calib, req);
  ASSERT_TRUE(st.ok());
  for (const auto& [mod, s] : *st) {
    const io::ImatrixEntry& e = im->entries.at(ImatrixName(mod));
    ASSERT_EQ(e.counts, (std::vector<int64_t>{72})) << mod;
    ASSERT_EQ(int64_t(e.sums.size()), s.in) << mod;
    for (int j = 0; j < s.in; ++j) {
      double ref = 0;
      for (int64_t t = 0; t < 72; ++t) ref += double(s.inputs[t * s.in + j]) * s.inputs[t * s.in + j];
      ASSERT_NEAR(e.sums[j], ref, 1e-5 * ref + 1e-30) << mod << " column " << j;  // float accumulation order
    }
  }
  EXPECT_EQ(im->chunk_size, 24);
  EXPECT_EQ(im->chunk_count, 3);
}

TEST(ImatrixCollect, ChunksLikeLlamaImatrix) {
  StatusOr<Model> m = LoadModel(std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const std::string text = testing::ReadBytes(std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny/heldout.txt");
  const int bos = m->tokenizer->bos_id();
  const std::vector<int> tokens = m->tokenizer->Encode(text, bos >= 0);
  StatusOr<std::vector<std::vector<int>>> c = ImatrixChunks(*m, text, "heldout.txt", 64, 3);
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    std::vector<int> expect(tokens.begin() + i * 64, tokens.begin() + (i + 1) * 64);
    if (bos >= 0) expect[0] = bos;
    EXPECT_EQ((*c)[i], expect) << "chunk " << i;
  }
  StatusOr<std::vector<std::vector<int>>> all = ImatrixChunks(*m, text, "heldout.txt", 64, -1);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), tokens.size() / 64);
  Status too_short = ImatrixChunks(*m, "a b", "short.txt", 64, 1).status();
  EXPECT_NE(too_short.message().find("short.txt"), std::string::npos) << too_short.message();
}

// The weight a module gets from ggml's importance-weighted quantizer, row by row.
std::vector<float> GgmlWeighted(const Tensor& w, int type, const std::vector<float>& qw) {
  std::vector<float> out(w.data.size());
  for (int64_t r = 0; r < w.rows(); ++r) {
    auto q = QuantizeGgmlRow(type, w.data.data() + r * w.cols(), w.cols(), qw.data());
    QL_CHECK(q.ok(), "{}", q.status().message());
    QL_CHECK(DequantizeGgmlRow(type, q->data(), w.cols(), out.data() + r * w.cols()).ok(), "dequantize");
  }
  return out;
}

TEST(ImatrixAlgorithm, FromAFileEqualsGgmlWeightedRows) {
  testing::TempDir d;
  const Model base = RandomModel(Config256(), 11);
  const CalibrationSet calib = testing::RandomCalibration(512, 2, 32, 9);
  StatusOr<io::Imatrix> im = CollectImatrix(base, calib.windows, {});
  ASSERT_TRUE(im.ok());
  ASSERT_TRUE(io::WriteImatrixGguf(d / "m.gguf", *im).ok());
  const auto importance = io::ImatrixImportances(*im);
  for (const char* scheme : {"q4_k", "iq4_xs", "q3_k", "q4_0"}) {
    SCOPED_TRACE(scheme);
    Model m = base;
    const std::vector<std::pair<std::string, std::string>> mods = {{"model.layers.0.self_attn.q_proj", scheme},
                                                                   {"model.layers.1.mlp.up_proj", scheme}};
    AlgorithmContext ctx;
    ctx.module_schemes = &mods;
    ctx.params = {{"file", d / "m.gguf"}};
    const AlgorithmInfo* algo = *FindAlgorithm("imatrix");
    EXPECT_FALSE(NeedsCalibration(*algo, ctx.params));
    ASSERT_TRUE(algo->apply(m, ctx).ok());
    for (const auto& [mod, s] : mods) {
      const std::string key = mod + ".weight";
      const std::vector<float> expect = GgmlWeighted(base.W(key), GgmlTypeIdOfCodec(scheme), importance.at(ImatrixName(mod)));
      EXPECT_EQ(m.W(key).data, expect) << mod;
      Model rtn = base;
      ASSERT_TRUE(RtnModule(rtn, mod, scheme).ok());
      EXPECT_NE(m.W(key).data, rtn.W(key).data) << mod << ": the importance changed nothing";
    }
    EXPECT_EQ(m.W("model.layers.0.self_attn.k_proj.weight").data, base.W("model.layers.0.self_attn.k_proj.weight").data);
  }
}

TEST(ImatrixAlgorithm, CollectsFromCalibrationPadsPartialBlocksRejectsOtherSchemes) {
  const Model base = RandomModel(Config256(), 12);
  const CalibrationSet calib = testing::RandomCalibration(512, 2, 32, 4);
  const AlgorithmInfo* algo = *FindAlgorithm("imatrix");
  EXPECT_TRUE(NeedsCalibration(*algo, nlohmann::json::object()));
  // down_proj has 320 columns: one whole 256-block and a partial one (zero weights of zero importance).
  const std::vector<std::pair<std::string, std::string>> mods = {{"model.layers.0.mlp.down_proj", "q4_k"},
                                                                 {"model.layers.1.self_attn.o_proj", "q6_k"}};
  AlgorithmContext ctx;
  ctx.module_schemes = &mods;
  Model m = base;
  EXPECT_FALSE(algo->apply(m, ctx).ok());  // no calibration
  ctx.calibration = &calib;
  ASSERT_TRUE(algo->apply(m, ctx).ok());
  StatusOr<io::Imatrix> im = CollectImatrix(base, calib.windows, {});
  const auto importance = io::ImatrixImportances(*im);
  const std::vector<float> o = GgmlWeighted(base.W("model.layers.1.self_attn.o_proj.weight"), 14,
                                            importance.at("blk.1.attn_output.weight"));
  EXPECT_EQ(m.W("model.layers.1.self_attn.o_proj.weight").data, o);
  // The partial block's rows against ggml on the zero-padded row with zero importance on the padding.
  const Tensor& w = base.W("model.layers.0.mlp.down_proj.weight");
  std::vector<float> qw = importance.at("blk.0.ffn_down.weight");
  qw.resize(512, 0.0f);
  for (int64_t r = 0; r < w.rows(); r += 37) {
    std::vector<float> row(512, 0.0f), deq(512);
    std::copy_n(w.data.data() + r * 320, 320, row.data());
    auto q = QuantizeGgmlRow(12, row.data(), 512, qw.data());
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(DequantizeGgmlRow(12, q->data(), 512, deq.data()).ok());
    for (int j = 0; j < 320; ++j) ASSERT_EQ(m.W("model.layers.0.mlp.down_proj.weight").data[r * 320 + j], deq[j]);
  }
  // Schemes without an importance-weighted quantizer are refused, naming the module and the scheme.
  const std::vector<std::pair<std::string, std::string>> bad = {{"model.layers.0.mlp.up_proj", "int4:g32"}};
  ctx.module_schemes = &bad;
  Model m2 = base;
  Status s = algo->apply(m2, ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.layers.0.mlp.up_proj has scheme int4:g32"), std::string::npos) << s.message();
}

TEST(ImatrixAlgorithm, MissingEntryIsUnweightedWrongSizeIsAnError) {
  testing::TempDir d;
  const Model base = RandomModel(Config256(), 13);
  io::Imatrix im;
  im.entries["blk.0.attn_q.weight"] = {std::vector<float>(100, 1.0f), {4}};
  im.chunk_size = 4;
  ASSERT_TRUE(io::WriteImatrixGguf(d / "m.gguf", im).ok());
  const std::vector<std::pair<std::string, std::string>> other = {{"model.layers.0.self_attn.k_proj", "q4_k"}};
  AlgorithmContext ctx;
  ctx.module_schemes = &other;
  ctx.params = {{"file", d / "m.gguf"}};
  Model m = base, rtn = base;
  ASSERT_TRUE((*FindAlgorithm("imatrix"))->apply(m, ctx).ok());
  ASSERT_TRUE(RtnModule(rtn, "model.layers.0.self_attn.k_proj", "q4_k").ok());
  EXPECT_EQ(m.W("model.layers.0.self_attn.k_proj.weight").data, rtn.W("model.layers.0.self_attn.k_proj.weight").data);
  const std::vector<std::pair<std::string, std::string>> q = {{"model.layers.0.self_attn.q_proj", "q4_k"}};
  ctx.module_schemes = &q;
  Status s = (*FindAlgorithm("imatrix"))->apply(m, ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("100 importances for 256"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ql
