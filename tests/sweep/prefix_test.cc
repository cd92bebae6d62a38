// Prefix reuse and adaptive evaluation: a forward started at block k from the reference's stream, or at
// block k's MLP from the stream after its attention, is bitwise the full forward (several k, hooks on
// what changed); a cell run with the session's prefix store (all blocks kept, or every second one; MLP
// units from their block's attention output, at several blocks) is bitwise the cell run without it
// (weights, activations, KV cells); a sensitivity scan gives the same table both ways; the adaptive
// order and stopping rule against hand-computed cases, and an adaptive scan records its windows.
#include "harness/eval/prefix.h"
#include "tests/test_paths.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "harness/quant/quant_util.h"
#include "harness/sweep/cell_eval.h"
#include "harness/sweep/sensitivity.h"
#include "tests/sweep/same_cell_result.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(ForwardFromBlock, BitwiseTheFullForwardWithHooksOnLaterBlocks) {
  ModelConfig c = Stories260KConfig();
  const Model ref = RandomModel(c, 3);
  std::vector<int> tokens(97);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int((i * 37 + 5) % c.vocab_size);
  const int D = c.dim, V = c.vocab_size, L = c.n_layers;
  std::vector<std::vector<float>> in(L + 1);  // [L+1][T, D] stream entering block l
  ForwardHooks capture;
  capture.block_output = [&](int l, const float* h, int T) { in[l + 1].assign(h, h + size_t(T) * D); };
  std::vector<float> logits(tokens.size() * V);
  ASSERT_TRUE(ForwardWindow(ref, tokens, logits.data(), &capture).ok());
  for (int k : {1, 2, L - 1, L}) {
    Model m = ref;  // changed from block k on: weights and hooks
    for (int l = k; l < L; ++l) ASSERT_TRUE(RtnModule(m, LayerPrefix(l) + "mlp.down_proj", "int4:g32").ok());
    ForwardHooks h;
    h.kv = [k](int layer, float* kk, float*, int T) {
      if (layer >= k) kk[T / 2] *= 0.5f;
    };
    h.linear_input = [k](std::string_view path, float* x, int, int) {
      if (ModuleLayer(std::string(path)) >= k || path == "lm_head") x[0] = std::round(x[0] * 4) / 4;
    };
    std::vector<float> full(logits.size()), from(logits.size());
    ASSERT_TRUE(ForwardWindow(m, tokens, full.data(), &h).ok());
    ASSERT_TRUE(ForwardFromBlock(m, tokens, k, in[k].data(), from.data(), &h).ok());
    EXPECT_TRUE(SameBits(full, from)) << "k = " << k;
    EXPECT_FALSE(SameBits(full, logits)) << "k = " << k << ": the change must show";
  }
}

// Sub-block reuse: a window started at block k's MLP from the reference's stream after block k's
// attention is bitwise the full forward, with the MLP of block k and everything after changed and hooked.
TEST(ForwardFromMlp, BitwiseTheFullForwardWithTheBlocksMlpChanged) {
  ModelConfig c = Stories260KConfig();
  const Model ref = RandomModel(c, 4);
  std::vector<int> tokens(83);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int((i * 29 + 3) % c.vocab_size);
  const int D = c.dim, V = c.vocab_size, L = c.n_layers;
  std::vector<std::vector<float>> mid(L);  // [L][T, D] after block l's attention
  ForwardHooks capture;
  capture.attn_residual = [&](int l, const float* h, int T) { mid[l].assign(h, h + size_t(T) * D); };
  std::vector<float> logits(tokens.size() * V);
  ASSERT_TRUE(ForwardWindow(ref, tokens, logits.data(), &capture).ok());
  for (int k : {0, 1, L - 1}) {
    Model m = ref;  // block k's MLP and every later block changed
    ASSERT_TRUE(RtnModule(m, LayerPrefix(k) + "mlp.up_proj", "int3:g32").ok());
    for (int l = k + 1; l < L; ++l) ASSERT_TRUE(RtnModule(m, LayerPrefix(l) + "self_attn.q_proj", "int4:g32").ok());
    ForwardHooks h;
    h.kv = [k](int layer, float* kk, float*, int T) {
      if (layer > k) kk[T / 3] *= 0.5f;
    };
    h.linear_input = [k](std::string_view path, float* x, int, int) {
      const int layer = ModuleLayer(std::string(path));
      if ((layer == k && path.find(".mlp.") != std::string_view::npos) || layer > k) x[1] = std::round(x[1] * 4) / 4;
    };
    std::vector<float> full(logits.size()), from(logits.size());
    ASSERT_TRUE(ForwardWindow(m, tokens, full.data(), &h).ok());
    ASSERT_TRUE(ForwardFromMlp(m, tokens, k, mid[k].data(), from.data(), &h).ok());
    EXPECT_TRUE(SameBits(full, from)) << "k = " << k;
    EXPECT_FALSE(SameBits(full, logits)) << "k = " << k << ": the change must show";
  }
}

class PrefixCells : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ql_prefix_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Yaml(const std::string& extra = "") const {
    const std::string src = QL_SOURCE_DIR;
    return "name: prefix\nmodel: " + src + "/models/quantlab-tiny\ndata: " + src +
           "/models/quantlab-tiny/heldout.txt\nprotocol: {name: llamacpp, ctx: 64, chunks: 6}\nresults: " +
           (dir_ / "res").string() + "\nlayer_error_windows: 2\n" + extra + "grid:\n  schemes: [int4:g32]\n";
  }
  fs::path dir_;
};

Cell Unit(const std::string& module, const std::string& scheme, const std::string& act = "",
          const std::string& kv = "") {
  Cell c;
  c.scheme.label = scheme + " @ " + module;
  c.scheme.activations = act;
  c.scheme.kv_cache = kv;
  c.algorithm = {"rtn", nlohmann::json::object()};
  c.ignore = {"none", {}, true};
  c.overrides.push_back({{module}, scheme, "test"});
  return c;
}

TEST_F(PrefixCells, CellsFromTheirFirstBlockAreBitwiseFullCells) {
  auto e = ParseExperiment(Yaml(), "prefix.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::vector<Cell> cells = {Unit("model.layers.1.self_attn.q_proj", "int3:g32"),
                             Unit("model.layers.3.mlp.down_proj", "int4:g32"),
                             Unit("model.layers.5.mlp.up_proj", "int3:g32", "int8:token"),  // activations there only
                             Unit("model.layers.4.self_attn.v_proj", "int4:g32", "", "int8:token"),  // KV: full run
                             Unit("lm_head", "int4:g32")};  // tied: the embedding changes, block 0
  for (size_t i = 0; i < cells.size(); ++i) cells[i].index = int(i);
  auto full = OpenSession(*e, cells, {});
  ASSERT_TRUE(full.ok()) << full.status().message();
  SessionOptions all, every_third;
  all.prefix_budget_mb = 64;
  every_third.prefix_budget_mb = 1;  // 6 windows x 64 tokens x 256 x 4 B = 384 KiB a block: 2 of 6 fit
  auto with_all = OpenSession(*e, cells, all);
  auto with_some = OpenSession(*e, cells, every_third);
  ASSERT_TRUE(with_all.ok() && with_some.ok());
  EXPECT_EQ((*with_all)->prefix->kept_blocks(), 6);
  EXPECT_EQ((*with_all)->prefix->kept_mlp_inputs(), 6);  // the budget left keeps every MLP input too
  EXPECT_EQ((*with_some)->prefix->kept_blocks(), 2);
  EXPECT_EQ((*with_some)->prefix->kept_mlp_inputs(), 0);
  EXPECT_EQ((*with_some)->prefix->StartAtOrBelow(5), 3);
  EXPECT_EQ((*with_some)->prefix->StartAtOrBelow(2), 0);
  const std::vector<int> first = {1, 3, 5, 0, 0};
  Model w0 = (*full)->reference, w1 = w0, w2 = w0;
  for (size_t i = 0; i < cells.size(); ++i) {
    auto p = PlanCell(**full, cells[i]);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ(FirstChangedBlock((*full)->reference, *p, {}), first[i]) << cells[i].Label();
    const CellResult a = RunCell(**full, w0, *p);
    const CellResult b = RunCell(**with_all, w1, *PlanCell(**with_all, cells[i]));
    const CellResult c = RunCell(**with_some, w2, *PlanCell(**with_some, cells[i]));
    testing::ExpectBitwiseSameCellResult(a, b, cells[i].Label() + " (all blocks kept)");
    testing::ExpectBitwiseSameCellResult(a, c, cells[i].Label() + " (every third block kept)");
    EXPECT_GT(*a.metrics->Get("kld_mean"), 0.0);
    EXPECT_EQ(*a.metrics->Get("eval_windows"), 6.0);
  }
}

// MLP units start after their block's attention when that stream is kept: bitwise the cell run without a
// prefix store, at several blocks, with activations on the unit, and not with a KV scheme (every layer).
TEST_F(PrefixCells, MlpCellsFromTheirBlocksAttentionAreBitwiseFullCells) {
  auto e = ParseExperiment(Yaml(), "prefix.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::vector<Cell> cells = {Unit("model.layers.0.mlp.down_proj", "int3:g32"),
                             Unit("model.layers.2.mlp.gate_proj", "int4:g32", "int8:token"),
                             Unit("model.layers.4.mlp.up_proj", "int3:g32"),
                             Unit("model.layers.5.mlp.up_proj", "int3:g32", "int8:token"),  // its MLP input not kept
                             Unit("model.layers.3.mlp.down_proj", "int4:g32", "", "int8:token"),  // KV: full run
                             Unit("model.layers.2.self_attn.o_proj", "int4:g32")};  // attention: block start
  Cell layer = Unit("model.layers.4.mlp.up_proj", "int3:g32");  // a layer unit: attention and MLP of block 4
  layer.overrides[0].targets = {"model.layers.4.self_attn.k_proj", "model.layers.4.mlp.up_proj"};
  cells.push_back(layer);
  for (size_t i = 0; i < cells.size(); ++i) cells[i].index = int(i);
  auto full = OpenSession(*e, cells, {});
  SessionOptions some;
  some.prefix_budget_mb = 4;  // 10 of the 384 KiB streams: the 6 block inputs, MLP inputs of blocks 0, 2, 4
  auto with = OpenSession(*e, cells, some);
  ASSERT_TRUE(full.ok() && with.ok());
  EXPECT_EQ((*with)->prefix->kept_blocks(), 6);
  EXPECT_EQ((*with)->prefix->kept_mlp_inputs(), 3);
  const std::vector<PrefixStart> want = {{0, true}, {2, true}, {4, true}, {5, false}, {0, false}, {2, false}, {4, false}};
  Model w0 = (*full)->reference, w1 = w0;
  for (size_t i = 0; i < cells.size(); ++i) {
    auto p = PlanCell(**with, cells[i]);
    ASSERT_TRUE(p.ok()) << p.status().message();
    const PrefixStart got = CellPrefixStart(**with, (*with)->reference, *p, nullptr);
    EXPECT_EQ(got.block, want[i].block) << cells[i].Label();
    EXPECT_EQ(got.mlp, want[i].mlp) << cells[i].Label();
    const CellResult a = RunCell(**full, w0, *PlanCell(**full, cells[i]));
    const CellResult b = RunCell(**with, w1, *p);
    testing::ExpectBitwiseSameCellResult(a, b, cells[i].Label() + " (MLP inputs of blocks 0, 2, 4 kept)");
    EXPECT_GT(*a.metrics->Get("kld_mean"), 0.0);
  }
}

TEST_F(PrefixCells, ScanWithPrefixIsBitwiseTheFullScan) {
  auto e = ParseExperiment(Yaml("sensitivity: {units: layer, schemes: [int3:g32]}\n"), "prefix.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::ostringstream log;
  ScanOptions with, without;
  with.spec = without.spec = *e->sensitivity;
  with.sweep.progress_bar = without.sweep.progress_bar = false;
  with.sweep.results = (dir_ / "with").string();
  without.sweep.results = (dir_ / "without").string();
  without.prefix_budget_mb = 0;
  auto a = RunSensitivity(*e, with, log);
  auto b = RunSensitivity(*e, without, log);
  ASSERT_TRUE(a.ok() && b.ok()) << log.str();
  EXPECT_TRUE((*a)->session->prefix && !(*b)->session->prefix);
  const nlohmann::json ja = SensitivityJson((*a)->table), jb = SensitivityJson((*b)->table);
  ASSERT_EQ(ja["rows"].size(), 7u);  // 6 layers + lm_head
  EXPECT_EQ(ja.dump(), jb.dump());
}

// The ETA's weights: a cell starting at block k costs the blocks from k on plus the head; without a
// prefix store every cell runs everything.
TEST_F(PrefixCells, EtaWorkCountsTheBlocksACellRuns) {
  auto e = ParseExperiment(Yaml(), "prefix.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::vector<Cell> cells = {Unit("model.layers.0.self_attn.q_proj", "int4:g32"),
                                   Unit("model.layers.4.mlp.down_proj", "int4:g32")};
  SessionOptions with;
  with.prefix_budget_mb = 64;
  auto s = OpenSession(*e, cells, with);
  auto plain = OpenSession(*e, cells, {});
  ASSERT_TRUE(s.ok() && plain.ok());
  const Model& m = (*s)->reference;
  double block = 0, head = 0;  // every block has the same weights here
  for (const auto& [name, w] : m.weights)
    if (name.rfind("model.layers.0.", 0) == 0) block += double(w.numel());
  head = double(m.W(m.Has("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight").numel());
  const int L = m.config.n_layers;
  double attention4 = 0;  // block 4's attention: an MLP unit there starts after it
  for (const auto& [name, w] : m.weights)
    if (name.rfind("model.layers.4.self_attn.", 0) == 0) attention4 += double(w.numel());
  EXPECT_GT(attention4, 0.0);
  EXPECT_EQ(CellWork(**s, *PlanCell(**s, cells[0])), L * block + head);
  EXPECT_EQ(CellWork(**s, *PlanCell(**s, cells[1])), (L - 4) * block + head - attention4);
  EXPECT_EQ(CellWork(**plain, *PlanCell(**plain, cells[1])), L * block + head);
}

// The ETA from the windows cells evaluated: a cell costs the mean fixed seconds plus the evaluation rate
// × its work × the mean window fraction of its kind (adaptive or not) so far.
TEST(CellsEtaEstimator, ProjectsEachKindAtTheWindowsItsCellsEvaluated) {
  CellsEta eta;
  for (double w : {4.0, 4.0, 2.0, 2.0, 1.0}) eta.Plan(w, true);  // adaptive units, dearer first
  const size_t full = eta.Plan(2.0, false);                      // a full-window cell
  EXPECT_EQ(eta.SecondsLeft(), 0.0);                             // nothing ran: no rate yet
  // Unit 0: 1 s fixed, 3 s evaluating 3 of 8 windows of work 4 → 3 / (4 · 3/8) = 2 s per unit of work.
  eta.Ran(0, 1, 3, 3.0 / 8);
  // Left: 4 adaptive at 3/8 (works 4, 2, 2, 1) and one full cell at 1 (no full cell ran yet), each + 1 s.
  EXPECT_DOUBLE_EQ(eta.SecondsLeft(), 5 * 1 + 2 * (9 * 3.0 / 8 + 2 * 1.0));
  // Unit 1 stops at 5 of 8 (fixed 3 s, 5 s evaluating): fixed mean 2 s, rate (3 + 5) / (4·3/8 + 4·5/8) = 2,
  // adaptive fraction (3/8 + 5/8) / 2 = 1/2. A skipped cell (recorded already) costs nothing.
  eta.Ran(1, 3, 5, 5.0 / 8);
  eta.Skip(2);
  EXPECT_DOUBLE_EQ(eta.SecondsLeft(), 3 * 2 + 2 * (3 * 0.5 + 2 * 1.0));
  // The full cell resumed from records evaluated a quarter of its windows: the full kind is now at 1/4.
  eta.Ran(full, 2, 1, 0.25);
  // rate (3 + 5 + 1) / (1.5 + 2.5 + 0.5) = 2; fixed mean (1 + 3 + 2) / 3 = 2; units 3 and 4 at 1/2.
  EXPECT_DOUBLE_EQ(eta.SecondsLeft(), 2 * 2 + 2 * (3 * 0.5));
  eta.Ran(3, 2, 2, 0.5), eta.Ran(4, 2, 1, 0.5);
  EXPECT_EQ(eta.SecondsLeft(), 0.0);
}

TEST(Adaptive, OrderIsASeededPermutation) {
  const std::vector<int> a = AdaptiveOrder(50, 7), b = AdaptiveOrder(50, 7), c = AdaptiveOrder(50, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::set<int>(a.begin(), a.end()).size(), 50u);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 49);
  std::vector<int> sorted(50);
  std::iota(sorted.begin(), sorted.end(), 0);
  EXPECT_NE(a, sorted);
}

TEST(Adaptive, StoppingRuleByHand) {
  AdaptiveSpec a;
  a.rel_se = 0.1;
  a.min_windows = 3;
  // Windows of 10 tokens with KLD sums 1, 1.2, 0.8, 1: R = 0.1; residuals 0, .2, -.2, 0: Σ² = 0.08;
  // se = sqrt((1 − 4/100) / 4 · 0.08 / 3) / 10 = 0.0080: ≤ 0.1 · R = 0.01 → stop.
  const std::vector<int64_t> t4 = {10, 10, 10, 10};
  EXPECT_TRUE(AdaptiveStop(a, {1, 1.2, 0.8, 1}, t4, 100));
  // The same spread with rel_se 0.05: 0.0080 > 0.005 → go on; at N windows always stop.
  a.rel_se = 0.05;
  EXPECT_FALSE(AdaptiveStop(a, {1, 1.2, 0.8, 1}, t4, 100));
  EXPECT_TRUE(AdaptiveStop(a, {1, 1.2, 0.8, 1}, t4, 4));
  // Separated from a threshold: |0.1 − 0.2| = 0.1 >= 3 · 0.0080.
  a.threshold = 0.2;
  EXPECT_TRUE(AdaptiveStop(a, {1, 1.2, 0.8, 1}, t4, 100));
  a.threshold = 0.11;  // 0.01 < 0.024
  EXPECT_FALSE(AdaptiveStop(a, {1, 1.2, 0.8, 1}, t4, 100));
  // Below min_windows nothing stops but the end.
  EXPECT_FALSE(AdaptiveStop(a, {1, 1}, {10, 10}, 100));
  // A fixed count (a refinement's doubling step): exactly that many windows, whatever the spread; its
  // identity is the count alone.
  AdaptiveSpec fixed;
  fixed.windows = 3;
  EXPECT_FALSE(AdaptiveStop(fixed, {1, 5}, {10, 10}, 100));
  EXPECT_TRUE(AdaptiveStop(fixed, {1, 5, 1}, {10, 10, 10}, 100));
  EXPECT_TRUE(AdaptiveStop(fixed, {1, 5}, {10, 10}, 2));
  EXPECT_EQ(fixed.ToJson().dump(), "{\"windows\":3}");
  EXPECT_EQ(a.ToJson().count("windows"), 0u);  // the rule's identity is unchanged
}

TEST(Adaptive, DnllRuleByHand) {
  AdaptiveSpec a;
  a.rel_se = 0.1;
  a.min_windows = 3;
  const std::vector<int64_t> t4 = {10, 10, 10, 10};
  const std::vector<double> kld = {1, 1.2, 0.8, 1};  // the KLD rule stops here (StoppingRuleByHand)
  // ΔNLL sums 2, 3, 1, 2: D = 0.2; residuals 0, 1, −1, 0: Σ² = 2; se = sqrt(0.96 / 4 · 2 / 3) / 10 = 0.04.
  const WindowSums big{kld, {2, 3, 1, 2}, t4};
  // ΔNLL sums 0.1, 1.1, −0.9, 0.1: D = 0.01, the same residuals and se 0.04: noise around 0.
  const WindowSums small{kld, {0.1, 1.1, -0.9, 0.1}, t4};
  EXPECT_TRUE(AdaptiveStop(a, big, 100));  // the rule off: KLD alone decides, whatever the ΔNLL
  EXPECT_TRUE(AdaptiveStop(a, small, 100));
  a.dnll_rel_se = 0.25;  // 0.04 <= 0.25 · 0.2 = 0.05: a clearly large ΔNLL stops
  EXPECT_TRUE(AdaptiveStop(a, big, 100));
  EXPECT_FALSE(AdaptiveStop(a, small, 100));  // 0.04 > 0.25 · 0.01: goes on
  EXPECT_TRUE(AdaptiveStop(a, small, 4));     // ... until every window ran
  a.dnll_rel_se = 0.15;  // 0.04 > 0.03
  EXPECT_FALSE(AdaptiveStop(a, big, 100));
  a.dnll_se = 0.0401;  // the absolute floor: se 0.04 <= 0.0401 stops both
  EXPECT_TRUE(AdaptiveStop(a, big, 100));
  EXPECT_TRUE(AdaptiveStop(a, small, 100));
  a.dnll_se = 0.0399;
  EXPECT_FALSE(AdaptiveStop(a, small, 100));
  // The ΔNLL rule never stops a unit the KLD rule does not: KLD sums with twice the spread.
  a.dnll_se = 1;
  EXPECT_FALSE(AdaptiveStop(a, WindowSums{{1, 1.4, 0.6, 1}, {2, 3, 1, 2}, t4}, 100));
  EXPECT_FALSE(AdaptiveStop(a, WindowSums{{1, 1}, {2, 2}, {10, 10}}, 100));  // nor below min_windows
  // The ratio estimate by hand (the se of both rules above).
  const WindowRatio r = RatioOverWindows({2, 3, 1, 2}, t4, 100);
  EXPECT_DOUBLE_EQ(r.r, 0.2);
  EXPECT_NEAR(r.se, std::sqrt(0.96 / 4 * 2.0 / 3) / 10, 1e-15);
  EXPECT_EQ(RatioOverWindows({2, 3, 1, 2}, t4, 4).se, 0.0);  // every window: no sampling error
  // The identity: off, the rule's JSON is the one before (adaptive cells keep their ids); on, it names it.
  AdaptiveSpec off;
  EXPECT_EQ(off.ToJson().dump(), "{\"min_windows\":4,\"rel_se\":0.1,\"threshold\":-1.0,\"z\":3.0}");
  EXPECT_EQ(a.ToJson()["dnll_rel_se"].get<double>(), 0.15);
  EXPECT_EQ(a.ToJson()["dnll_se"].get<double>(), 1.0);
}

TEST_F(PrefixCells, DnllRuleKeysParseAndBadValuesAreErrors) {
  auto e = ParseExperiment(Yaml("sensitivity: {units: layer, schemes: [int3:g32], adaptive: {rel_se: 0.2, "
                                "dnll_rel_se: 0.1, dnll_se: 0.002}}\n"), "prefix.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const AdaptiveSpec& a = *e->sensitivity->adaptive;
  EXPECT_EQ(a.dnll_rel_se, 0.1);
  EXPECT_EQ(a.dnll_se, 0.002);
  EXPECT_TRUE(a.DnllRule());
  auto bad = ParseExperiment(Yaml("sensitivity: {units: layer, schemes: [int3:g32], adaptive: {dnll_se: -0.5}}\n"),
                             "prefix.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("prefix.yaml"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("-0.5"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find(">= 0"), std::string::npos) << bad.status().message();
  auto typo = ParseExperiment(Yaml("sensitivity: {units: layer, schemes: [int3:g32], adaptive: {dnll_sd: 0.1}}\n"),
                              "prefix.yaml");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("dnll_sd"), std::string::npos) << typo.status().message();
}

TEST_F(PrefixCells, AdaptiveScanRecordsItsWindowsAndFullEqualsAllWindows) {
  auto e = ParseExperiment(Yaml("sensitivity: {units: layer, schemes: [int3:g32], adaptive: {rel_se: 0.3, min_windows: 2}}\n"),
                           "prefix.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::ostringstream log;
  ScanOptions o;
  o.spec = *e->sensitivity;
  o.sweep.progress_bar = false;
  auto adaptive = RunSensitivity(*e, o, log);
  ASSERT_TRUE(adaptive.ok()) << adaptive.status().message();
  o.spec.adaptive->rel_se = 1e-9;  // never satisfied: every window runs, in the shuffled order
  auto all = RunSensitivity(*e, o, log);
  // The full scan in its own store: in this one it would resume from the records `all` left
  // (tests/sweep/window_records_test.cc) instead of running its windows.
  o.spec.adaptive.reset();
  o.sweep.results = (dir_ / "full").string();
  auto full = RunSensitivity(*e, o, log);
  ASSERT_TRUE(all.ok() && full.ok()) << log.str();
  int fewer = 0;
  for (size_t i = 0; i < (*full)->table.rows.size(); ++i) {
    const CellFacts& a = *(*adaptive)->table.rows[i].facts;
    const CellFacts& b = *(*all)->table.rows[i].facts;
    const CellFacts& f = *(*full)->table.rows[i].facts;
    EXPECT_NE(a.id, f.id);  // adaptive cells are other cells
    EXPECT_GE(a.eval_windows, 2);
    EXPECT_LE(a.eval_windows, 6);
    fewer += a.eval_windows < 6;
    EXPECT_EQ(b.eval_windows, 6);
    EXPECT_EQ(f.eval_windows, 6);
    // Records are kept in window order, so all windows in any order give the full numbers.
    EXPECT_EQ(std::bit_cast<uint64_t>(b.kld), std::bit_cast<uint64_t>(f.kld)) << i;
    EXPECT_EQ(std::bit_cast<uint64_t>(b.dppl), std::bit_cast<uint64_t>(f.dppl)) << i;
  }
  EXPECT_GT(fewer, 0) << "rel_se 0.3 should stop some unit early";
  EXPECT_NE(FormatSensitivity((*adaptive)->table).find("adaptive evaluation"), std::string::npos);
}

}  // namespace
}  // namespace ql
