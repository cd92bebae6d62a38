// ByteBpeTokenizer against ids made by Hugging Face `tokenizers` 0.23.3 (tests/data/tokenizer/
// make_golden.py): a BPE it trained, under the GPT-2, Llama 3 (+ignore_merges, BOS template), Qwen2
// and SmolLM pre-tokenizers, on tricky strings and on every data file (count + FNV-1a of the ids).
#include <cstdio>
#include "tests/test_paths.h"
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "harness/tokenizer/byte_bpe.h"

namespace ql {
namespace {

const std::string kDir = std::string(QL_SOURCE_DIR) + "/tests/data/tokenizer/";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string Fnv1a64(const std::vector<int>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int id : ids) {
    uint32_t u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) {
      h ^= (u >> (8 * k)) & 0xFF;
      h *= 0x100000001B3ull;
    }
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

class HfGolden : public testing::TestWithParam<std::string> {};

TEST_P(HfGolden, MatchesTokenizersIds) {
  const std::string variant = GetParam();
  nlohmann::json golden = nlohmann::json::parse(ReadFile(kDir + "hf_golden.json"));
  const nlohmann::json& v = golden["variants"][variant];
  ASSERT_TRUE(v.is_object()) << variant;
  nlohmann::json j = nlohmann::json::parse(ReadFile(kDir + "hf_bpe.json"));
  j["pre_tokenizer"] = v["pre_tokenizer"];
  j["model"]["ignore_merges"] = v["ignore_merges"];
  j["post_processor"] = v["post_processor"];
  auto t = LoadTokenizerJsonText(j.dump(), "hf_bpe.json (" + variant + ")");
  ASSERT_TRUE(t.ok()) << t.status().message();
  const ByteBpeTokenizer& tok = **t;
  EXPECT_EQ(tok.pre_tokenizer().name(), variant);
  EXPECT_EQ(tok.ignore_merges(), v["ignore_merges"].get<bool>());
  EXPECT_EQ(tok.bos_id(), v["post_processor"].is_null() ? -1 : 1);
  const nlohmann::json& samples = golden["samples"];
  ASSERT_EQ(samples.size(), v["ids"].size());
  ASSERT_GE(samples.size(), 16u);
  for (size_t k = 0; k < samples.size(); ++k) {
    std::string text = samples[k];
    std::vector<int> want = v["ids"][k];
    std::vector<int> got = tok.Encode(text, false);
    EXPECT_EQ(got, want) << variant << " on: " << text.substr(0, 200);
    std::vector<int> with = v["ids_with_special_head"][k];
    std::vector<int> got_with = tok.Encode(text, true);
    got_with.resize(std::min(got_with.size(), with.size()));
    EXPECT_EQ(got_with, with) << variant << " (add_bos) on: " << text.substr(0, 80);
  }
  for (const auto& [file, want] : v["files"].items()) {
    std::vector<int> ids = tok.Encode(ReadFile(std::string(QL_SHARED_DIR) + "/data/" + file), false);
    EXPECT_EQ(static_cast<int64_t>(ids.size()), want["count"].get<int64_t>()) << variant << " " << file;
    EXPECT_EQ(Fnv1a64(ids), want["fnv1a64_i32le"].get<std::string>()) << variant << " " << file;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, HfGolden, testing::Values("gpt2", "llama3", "qwen2", "smollm"));

}  // namespace
}  // namespace ql
