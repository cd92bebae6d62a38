// Body reuse and the scored-rows LM head: the head run on a window's later rows only gives bitwise those
// rows of the full product (FP32 and BF16 products; the head's input hook still sees every row); a
// cell run from the previous cell's kept body is bitwise the cell run alone (weights, W8A8, KV cells,
// pairs that differ only in the LM head, one thread against two); cells whose bodies differ (a tied
// head quantizes the embedding, different activations) do not reuse; a sweep records which cells
// reused and stores the same metrics as its two shards, which split every pair and so reuse nothing.
#include "harness/eval/body_reuse.h"
#include "tests/test_paths.h"

#include <bit>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include "harness/eval/baseline.h"
#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "harness/sweep/cell_eval.h"
#include "harness/sweep/runner.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "results/store.h"
#include "tests/sweep/store_rows.h"
#include "tests/sweep/same_cell_result.h"
#include "tests/temp_dir.h"

namespace ql {
namespace {

bool SameBits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

TEST(LogitsFromRow, TheRowsComputedAreBitwiseTheFullProduct) {
  ModelConfig c = Stories260KConfig();
  for (const bool bf16 : {false, true}) {
    Model m = RandomModel(c, 11);
    if (bf16) m = WithPrecision(std::move(m), BaselinePrecision::kBf16Compute);
    const int T = 37, V = c.vocab_size;
    std::vector<int> tokens(T);
    for (int i = 0; i < T; ++i) tokens[i] = (i * 29 + 3) % V;
    std::vector<float> full(size_t(T) * V);
    ASSERT_TRUE(ForwardWindow(m, tokens, full.data()).ok());
    for (const int from : {1, 18, 33, 36, 100}) {  // 33 and beyond: at least kGemmDotRows rows still run
      std::vector<float> part(full.size(), -7.0f);
      int head_rows = 0;
      ForwardHooks h;
      h.logits_from_row = from;
      h.linear_input = [&](std::string_view path, float*, int rows, int) {
        if (path == "lm_head") head_rows = rows;
      };
      ASSERT_TRUE(ForwardWindow(m, tokens, part.data(), &h).ok());
      const int ran = std::min(from, T - kGemmDotRows);
      EXPECT_EQ(head_rows, T) << "the head's input hook sees every row";
      EXPECT_TRUE(SameBits(full.data() + size_t(ran) * V, part.data() + size_t(ran) * V, size_t(T - ran) * V))
          << "from " << from << (bf16 ? " bf16" : " fp32");
      for (size_t i = 0; i < size_t(ran) * V; ++i) ASSERT_EQ(part[i], -7.0f) << "row " << i / V << " was written";
    }
  }
}

TEST(BodyKeyBuilder, BoundariesAndEveryBitCount) {
  auto key = [](std::initializer_list<std::string_view> parts) {
    BodyKeyBuilder k;
    for (std::string_view p : parts) k.Add(p);
    return k.Key();
  };
  EXPECT_EQ(key({"abcdefghij"}), key({"abcdefghij"}));
  EXPECT_FALSE(key({"ab", "c"}) == key({"a", "bc"}));
  EXPECT_FALSE(key({"abcdefghij"}) == key({"abcdefghik"}));
  EXPECT_FALSE(key({""}) == key({}));
  std::vector<float> v(1000, 0.25f), w = v;
  w[517] = std::bit_cast<float>(std::bit_cast<uint32_t>(w[517]) ^ 1u);  // one bit of one weight
  BodyKeyBuilder a, b;
  a.AddFloats(v);
  b.AddFloats(w);
  EXPECT_FALSE(a.Key() == b.Key());
}

class BodyReuse : public ::testing::Test {
 protected:
  std::string Yaml(const std::string& tied, const std::string& schemes) const {
    const std::string src = QL_SOURCE_DIR;
    return "name: body\nmodel: " + src + "/models/quantlab-tiny\ndata: " + src +
           "/models/quantlab-tiny/heldout.txt\nprotocol: {name: llamacpp, ctx: 64, chunks: 6}\nlayer_error_windows: 2\n"
           "tied_head: " + tied + "\nresults: " + (dir_.path() / "res").string() + "\ngrid:\n  schemes: " + schemes +
           "\n  ignore: [none, lm_head]\n";
  }
  qltest::TempDir dir_{"ql_body_reuse_test"};
};

// Every cell of `yaml` run in the runner's order with a kept body on one thread and alone on two: the
// same results. Returns the body_from of each cell of the first run, in that order.
std::vector<std::string> RunWithAndWithout(const std::string& yaml) {
  auto e = ParseExperiment(yaml, "body.yaml");
  EXPECT_TRUE(e.ok()) << e.status().message();
  if (!e.ok()) return {};
  const std::vector<Cell> cells = ExpandGrid(*e);
  auto s = OpenSession(*e, cells, {});
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return {};
  Model with = (*s)->reference, alone = with;
  KeptBody body;
  std::vector<std::string> from;
  for (const Cell& c : cells) {
    auto p = PlanCell(**s, c);
    EXPECT_TRUE(p.ok()) << p.status().message();
    SetNumThreads(1);
    const CellResult a = RunCell(**s, with, *p, {}, &body);
    SetNumThreads(2);
    const CellResult b = RunCell(**s, alone, *p);
    testing::ExpectBitwiseSameCellResult(a, b, c.Label());
    EXPECT_EQ(b.cell.body_from, "");
    from.push_back(a.cell.body_from == "" ? "" : a.cell.body_from == DescribeCell(**s, cells[&c - &cells[0] - 1]).id
                                                     ? "previous"
                                                     : "other");
  }
  SetNumThreads(0);
  return from;
}

TEST_F(BodyReuse, AHeadOnlyCellOfAnUntiedPairIsBitwiseTheFullCell) {
  // tied_head untie: lm_head is a quantized copy, so each pair's second cell has the first's body.
  const auto from = RunWithAndWithout(Yaml("untie", "[int4:g32, W8A8, {weights: int8:channel, kv_cache: int8:token}]"));
  EXPECT_EQ(from, (std::vector<std::string>{"", "previous", "", "previous", "", "previous"}));
}

TEST_F(BodyReuse, BodiesThatDifferAreNotReused) {
  // tied_head shared: quantizing lm_head quantizes the embedding, which every block reads.
  EXPECT_EQ(RunWithAndWithout(Yaml("shared", "[int4:g32]")), (std::vector<std::string>{"", ""}));
  // Same weights, activations quantized in the blocks of one only (grid order: none, lm_head per scheme).
  auto e = ParseExperiment(Yaml("untie", "[int8:channel, W8A8]"), "body.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::vector<Cell> cells = ExpandGrid(*e);
  auto s = OpenSession(*e, cells, {});
  ASSERT_TRUE(s.ok()) << s.status().message();
  Model work = (*s)->reference;
  auto key = [&](int i) {
    auto p = PlanCell(**s, cells[size_t(i)]);
    EXPECT_TRUE(p.ok());
    return *CellBodyKey(**s, work, *p, {});  // rtn not applied: the keys of the plans' hooks alone
  };
  EXPECT_EQ(key(0), key(1));         // int8:channel none / lm_head: the same unquantized work model
  EXPECT_FALSE(key(1) == key(3));    // W8A8 quantizes the blocks' inputs
  EXPECT_EQ(key(2), key(3));         // W8A8's lm_head input is the head's
}

TEST_F(BodyReuse, ASweepRecordsItsReuseAndStoresWhatItsShardsStore) {
  auto e = ParseExperiment(Yaml("untie", "[int4:g32, W8A8]"), "body.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  std::ostringstream log;
  auto run = [&](const std::string& results, const std::string& shard) {
    SweepOptions o;
    o.results = (dir_.path() / results).string();
    o.shard = shard;
    o.progress_bar = false;
    auto sum = RunSweep(*e, o, log);
    ASSERT_TRUE(sum.ok()) << sum.status().message();
    EXPECT_EQ(sum->failed, 0);
  };
  run("all", "");
  run("s0", "0/2");
  run("s1", "1/2");
  const std::string all = (dir_.path() / "all").string();
  const SqlResult reused = Rows(all, "SELECT c.ignore_set, c.body_from = p.id FROM cells c JOIN cells p ON "
                                     "p.weight_scheme = c.weight_scheme AND p.act_scheme = c.act_scheme AND "
                                     "p.ignore_set = 'none' WHERE c.body_from != '' ORDER BY c.weight_scheme");
  ASSERT_EQ(reused.rows.size(), 2u) << log.str();
  for (const auto& r : reused.rows) {
    EXPECT_EQ(SqlValueToString(r[0]), "lm_head");
    EXPECT_EQ(SqlValueToString(r[1]), "1");
  }
  EXPECT_NE(log.str().find("head only: the body of "), std::string::npos) << log.str();
  for (const std::string shard : {"s0", "s1"}) {
    EXPECT_EQ(SqlValueToString(Rows((dir_.path() / shard).string(), "SELECT count(*) FROM cells WHERE body_from != ''")
                                   .rows[0][0]),
              "0");
    auto store = ResultStore::Open(all);
    ASSERT_TRUE(store.ok()) << store.status().message();
    ASSERT_TRUE((*store)->db().Exec("ATTACH DATABASE '" + (dir_.path() / shard / "results.sqlite").string() + "' AS o").ok());
    for (const char* table : {"metrics", "layer_errors", "tensor_errors"}) {
      auto diff = (*store)->Query(fmt::format(
          "SELECT count(*) FROM (SELECT * FROM o.{0} EXCEPT SELECT * FROM main.{0})", table));
      ASSERT_TRUE(diff.ok()) << diff.status().message();
      EXPECT_EQ(SqlValueToString(diff->rows[0][0]), "0") << table << " of " << shard;
    }
  }
}

}  // namespace
}  // namespace ql
