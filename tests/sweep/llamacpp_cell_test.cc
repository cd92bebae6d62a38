// llama.cpp in the cell pipeline, on quantlab-tiny (6 layers, hidden 256, FFN 704, tied head): every
// llama.cpp mix is a grid preset resolved by LlamaMixScheme (fallback types for the 704-wide down_proj
// rows), and `activations: llamacpp` rounds every linear's input to its weight type's vec_dot_type.
#include <algorithm>
#include "tests/test_paths.h"
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "harness/io/load.h"
#include "harness/quant/quant_util.h"
#include "harness/sweep/cell_pipeline.h"

namespace ql {
namespace {

const std::string kTiny = std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny";

std::string Yaml(const std::string& grid) {
  return "name: llamacpp\nmodel: " + kTiny + "\ndata: " + kTiny + "/heldout.txt\n" +
         "protocol: {name: llamacpp, ctx: 128, chunks: 2}\ngrid:\n" + grid;
}

TEST(LlamaCppCells, EveryMixIsAPresetAndUniformNamesStaySchemes) {
  auto e = ParseExperiment(Yaml("  schemes: [Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, mix:Q2_K, "
                                "mix:Q6_K, mix:Q8_0, mix:IQ4_NL, mix:IQ4_XS, Q6_K]\n"),
                           "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::vector<std::string> mixes;
  for (const SchemeSpec& s : e->schemes) mixes.push_back(s.mix);
  const std::vector<std::string> want = {"q3_k_s", "q3_k_m",  "q3_k_l",   "q4_k_s",    "q4_k_m",
                                         "q5_k_s", "q5_k_m",  "mix:q2_k", "mix:q6_k",  "mix:q8_0",
                                         "mix:iq4_nl", "mix:iq4_xs", ""};
  EXPECT_EQ(mixes, want);
  EXPECT_EQ(e->schemes[12].weights, "q6_k");  // the bare block name is the uniform scheme
  EXPECT_EQ(e->schemes[4].label, "Q4_K_M");
  // mix:Q4_K_S is Q4_K_S (one cell), and a mix preset works as the weights of a scheme map.
  auto dup = ParseExperiment(Yaml("  schemes: [Q4_K_S, mix:q4_k_s]\n"), "x.yaml");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("same cell twice"), std::string::npos) << dup.status().message();
  auto map = ParseExperiment(Yaml("  schemes: [{weights: mix:Q6_K, activations: llamacpp}]\n"), "x.yaml");
  ASSERT_TRUE(map.ok()) << map.status().message();
  EXPECT_EQ(map->schemes[0].mix, "mix:q6_k");
  EXPECT_EQ(map->schemes[0].weights, "q6_k");
  EXPECT_EQ(map->schemes[0].activations, "llamacpp");
  EXPECT_EQ(map->schemes[0].label, "W=mix:Q6_K, A=llamacpp");
}

TEST(LlamaCppCells, Q4KMOnTheDefaultModelIsLlamaQuantizesChoice) {
  auto e = ParseExperiment(Yaml("  schemes: [Q4_K_M]\n"), "x.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  auto model = LoadModel(kTiny);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto ms = CellModuleSchemes(*model, *e, ExpandGrid(*e)[0]);
  ASSERT_TRUE(ms.ok()) << ms.status().message();
  // n = 6: use_more_bits(i) = i < 0 || i >= 5 || i % 3 == 2 -> layers 2 and 5. v_proj there q6_k, else q4_k;
  // down_proj rows are 704 = 2.75 x 256: q6_k falls back to q8_0 and q4_k to q5_0; the tied head (rows of
  // 256) is the output tensor: q6_k.
  std::map<std::string, std::string> got(ms->begin(), ms->end());
  ASSERT_EQ(got.size(), 6u * 7u + 1u);
  for (int l = 0; l < 6; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const bool more = l == 2 || l == 5;
    EXPECT_EQ(got[p + "self_attn.v_proj"], more ? "q6_k" : "q4_k") << l;
    EXPECT_EQ(got[p + "mlp.down_proj"], more ? "q8_0" : "q5_0") << l;
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj"})
      EXPECT_EQ(got[p + m], "q4_k") << p << m;
  }
  EXPECT_EQ(got["lm_head"], "q6_k");
}

class LlamaCppSession : public ::testing::Test {
 protected:
  void Open(const std::string& grid) {
    auto e = ParseExperiment(Yaml(grid), "x.yaml");
    ASSERT_TRUE(e.ok()) << e.status().message();
    exp_ = std::make_unique<Experiment>(*e);
    cells_ = ExpandGrid(*exp_);
    auto s = OpenSession(*exp_, cells_, {});
    ASSERT_TRUE(s.ok()) << s.status().message();
    session_ = std::move(*s);
  }
  std::unique_ptr<Experiment> exp_;
  std::vector<Cell> cells_;
  std::unique_ptr<Session> session_;
};

TEST_F(LlamaCppSession, ActivationsLlamaCppResolvePerModuleAndMoveThePplSlightly) {
  Open("  schemes: [Q4_K_M]\n  activations: [none, llamacpp]\n");
  ASSERT_EQ(cells_.size(), 2u);
  EXPECT_EQ(cells_[1].scheme.activations, "llamacpp");
  auto plain = PlanCell(*session_, cells_[0]);
  auto llama = PlanCell(*session_, cells_[1]);
  ASSERT_TRUE(plain.ok() && llama.ok()) << (plain.ok() ? llama.status().message() : plain.status().message());
  EXPECT_TRUE(plain->llamacpp_act.empty());
  const auto& act = llama->llamacpp_act;
  EXPECT_EQ(act.size(), session_->reference.LinearModules().size());
  EXPECT_EQ(act.at("lm_head"), VecDotType::kQ8_K);                        // q6_k
  EXPECT_EQ(act.at("model.layers.0.self_attn.q_proj"), VecDotType::kQ8_K);  // q4_k
  EXPECT_EQ(act.at("model.layers.0.mlp.down_proj"), VecDotType::kQ8_0);     // q5_0 fallback
  EXPECT_EQ(act.at("model.layers.2.mlp.down_proj"), VecDotType::kQ8_0);     // q8_0 fallback
  Model work = session_->reference;
  const CellResult a = RunCell(*session_, work, *plain);
  const CellResult b = RunCell(*session_, work, *llama);
  ASSERT_EQ(a.cell.status, "ok") << a.cell.reason;
  ASSERT_EQ(b.cell.status, "ok") << b.cell.reason;
  EXPECT_EQ(b.cell.act_scheme, "llamacpp");
  EXPECT_NE(a.cell.id, b.cell.id);
  const double pa = *a.metrics->Get("ppl"), pb = *b.metrics->Get("ppl");
  EXPECT_NE(pa, pb);                        // 8-bit activations change the logits
  EXPECT_LT(std::fabs(pb / pa - 1), 0.01);  // ... by little: Q8 inputs cost far less than the 4-bit weights
  EXPECT_EQ(*a.metrics->Get("bits_per_weight"), *b.metrics->Get("bits_per_weight"));
}

TEST_F(LlamaCppSession, ActivationsLlamaCppRefuseWeightsLlamaCppCannotRun) {
  Open("  schemes: [{weights: int4:g32, activations: llamacpp}]\n");
  auto p = PlanCell(*session_, cells_[0]);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("model.layers.0.self_attn.q_proj (int4:g32)"), std::string::npos)
      << p.status().message();
  Open("  schemes: [{weights: q4_k, kv_cache: llamacpp}]\n");
  auto kv = PlanCell(*session_, cells_[0]);
  ASSERT_FALSE(kv.ok());
  EXPECT_NE(kv.status().message().find("activation mode"), std::string::npos) << kv.status().message();
}

}  // namespace
}  // namespace ql
