// Loaders against hostile headers: sizes declared by a file are checked against what the file holds
// before anything is allocated per layer or per token, and wrong-typed tokenizer.json fields are errors.
#include <functional>
#include "tests/test_paths.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "harness/io/declared_sizes.h"
#include "harness/io/hf.h"
#include "harness/tokenizer/byte_bpe.h"
#include "harness/tokenizer/spm_bpe.h"
#include "tests/harness/io_testing.h"

namespace ql {
namespace {
using nlohmann::json;
using testing::TempDir;

json Tiny() {
  return json::parse(testing::ReadBytes(std::string(QL_SOURCE_DIR) + "/tests/data/tokenizer/tiny_bpe.json"));
}
StatusOr<std::unique_ptr<ByteBpeTokenizer>> Load(const json& j) { return LoadTokenizerJsonText(j.dump(), "t.json"); }

TEST(TokenizerJsonTypes, EveryOptionalFieldIsTypeChecked) {
  ASSERT_TRUE(Load(Tiny()).ok());
  struct Case {
    std::function<void(json&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["pre_tokenizer"]["add_prefix_space"] = "yes"; }, "add_prefix_space"},
      {[](json& j) { j["pre_tokenizer"]["use_regex"] = 1; }, "use_regex"},
      {[](json& j) { j["model"]["ignore_merges"] = "no"; }, "ignore_merges"},
      {[](json& j) { j["model"]["byte_fallback"] = json::array(); }, "byte_fallback"},
      {[](json& j) { j["model"]["fuse_unk"] = "x"; }, "fuse_unk"},
      {[](json& j) { j["model"]["unk_token"] = 3; }, "unk_token"},
      {[](json& j) { j["model"]["type"] = 1; }, "type"},
      {[](json& j) { j["model"]["continuing_subword_prefix"] = 2; }, "continuing_subword_prefix"},
      {[](json& j) { j["model"]["dropout"] = "0.1"; }, "dropout"},
      {[](json& j) { j["added_tokens"][0]["special"] = "yes"; }, "special"},
      {[](json& j) { j["decoder"] = {{"type", 7}}; }, "type"},
      {[](json& j) { j["normalizer"] = {{"type", false}}; }, "type"},
      {[](json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", 5}}}}}}};
       }, "id"},
      {[](json& j) { j["post_processor"] = {{"type", 5}}; }, "type"},
      {[](json& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", " "}}}, {"behavior", 3}}; },
       "behavior"},
      {[](json& j) { j["added_tokens"] = "none"; }, "added_tokens"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    json j = Tiny();
    cases[i].edit(j);
    auto t = Load(j);
    ASSERT_FALSE(t.ok()) << "case " << i;
    EXPECT_NE(t.status().message().find(cases[i].field), std::string::npos) << t.status().message();
    EXPECT_EQ(t.status().message().rfind("t.json: ", 0), 0u) << t.status().message();
  }
}

TEST(TokenizerJsonIds, BoundedByTheNamedTokens) {
  // 18 vocab entries + 1 added token + 65536 holes: ids up to 65554 are accepted.
  json j = Tiny();
  j["added_tokens"][0]["id"] = 17 + 1000;  // a hole of 1000 ids (padding rows) is fine
  j["model"]["vocab"].erase("<|endoftext|>");
  auto ok = Load(j);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ((*ok)->vocab_size(), 1018);
  for (json id : {json(65555), json(2147483647), json(int64_t(1) << 40), json(uint64_t(18446744073709551615u)),
                  json(-1)}) {
    json k = Tiny();
    k["added_tokens"][0]["id"] = id;
    QL_EXPECT_ERROR(Load(k), "ids must be in [0, 65555)", id.dump());
  }
  json v = Tiny();
  v["model"]["vocab"]["zz"] = 1 << 24;
  QL_EXPECT_ERROR(Load(v), "model.vocab['zz'] = 16777216 is not a token id");
}

TEST(TokenizerJsonNesting, DeepSequencesStop) {
  json j = Tiny();
  json p = j["pre_tokenizer"];
  for (int i = 0; i < 20; ++i) p = {{"type", "Sequence"}, {"pretokenizers", {p}}};
  j["pre_tokenizer"] = p;
  QL_EXPECT_ERROR(Load(j), "nest deeper than 8");
}

TEST(Llama2cTokenizer, VocabSizeBoundedByTheFile) {
  TempDir d;
  // max_token_length, then one token: score 0, length 1, "a".
  std::string bytes(4, '\0');
  bytes[0] = 1;
  bytes += std::string(4, '\0') + std::string("\1\0\0\0", 4) + "a";
  testing::WriteBytes(d / "tok.bin", bytes);
  EXPECT_TRUE(LoadLlama2cTokenizer(d / "tok.bin", 1).ok());
  QL_EXPECT_ERROR(LoadLlama2cTokenizer(d / "tok.bin", 1 << 24), "cannot hold 16777216 tokens");
  // A token length beyond the file is reported before anything is sized by it.
  std::string big = bytes;
  big[8] = '\xff', big[9] = '\xff', big[10] = '\xff', big[11] = '\x7f';
  testing::WriteBytes(d / "big.bin", std::string(4, '\0') + big.substr(4));
  QL_EXPECT_ERROR(LoadLlama2cTokenizer(d / "big.bin", 1), "truncated inside token 0");
}

TEST(DeclaredSizes, LayersAndWidthAgainstTheTensors) {
  Model m = testing::RandomModel({});
  const io::DeclaredKeys keys{"n_layers_key", "dim_key", "heads_key"};
  EXPECT_TRUE(io::CheckDeclaredSizes(m.config, m.weights, "f", keys).ok());
  ModelConfig c = m.config;
  c.n_layers = 16777221;
  QL_EXPECT_ERROR(io::CheckDeclaredSizes(c, m.weights, "f", keys), "f: n_layers_key = 16777221",
                  "tensors for 2 layers");
  c = m.config;
  c.dim = 64;
  c.n_heads = 4;
  QL_EXPECT_ERROR(io::CheckDeclaredSizes(c, m.weights, "f", keys), "dim_key = 64 but the token embedding is 32 wide");
  QL_EXPECT_ERROR(io::CheckDeclaredWidth(0, 4, "f", keys), "dim_key = 0 must be > 0");
  QL_EXPECT_ERROR(io::CheckDeclaredWidth(32, 1 << 24, "f", keys), "heads_key = 16777216 must be between 1 and dim_key = 32");
}

TEST(DeclaredSizes, HfLayerCountIsCheckedBeforeSizingByIt) {
  TempDir d;
  ASSERT_TRUE(io::WriteHfDir(d.str(), testing::RandomModel({}), io::FloatDtype::kF32).ok());
  json c = json::parse(testing::ReadBytes(d / "config.json"));
  c["num_hidden_layers"] = 2147483647;  // would build a 2^31-layer tensor list
  testing::WriteBytes(d / "config.json", c.dump());
  QL_EXPECT_ERROR(io::ReadHfDir(d.str()), "num_hidden_layers = 2147483647 but the file holds tensors for 2 layers");
}

}  // namespace
}  // namespace ql
