// Unquantized exports round-trip: `quantlab export --format safetensors` (a Hugging Face directory) and
// `--scheme f32|bf16` GGUF files load back into models with the source's weights and tokenizer (tokenizer.json
// for a byte-level BPE, the GGUF metadata for a GGUF source). The logits are bitwise the source's when the
// format keeps the RoPE layout (HF -> HF); HF <-> GGUF permutes q/k rows between the rotate-half and the
// adjacent-pair layout, which reorders the sums of QKᵀ, so there they agree to FP32 rounding (1e-4 absolute).
#include <algorithm>
#include "tests/test_paths.h"
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/io/load.h"
#include "harness/model/forward.h"
#include "harness/tokenizer/tokenizer.h"
#include "tests/run_command.h"

namespace ql {
namespace {
namespace fs = std::filesystem;

const std::string kTiny = std::string(QL_SOURCE_DIR) + "/models/quantlab-tiny";
const std::string kStoriesGguf = std::string(QL_SHARED_DIR) + "/models/stories260K/stories260K.gguf";

class ExportFloat : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ql_export_float_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& n) const { return (dir_ / n).string(); }
  static qltest::CommandResult Quantlab(const std::string& args) {
    return qltest::RunCommand(std::string(QL_QUANTLAB_BIN) + " " + args + " 2>&1");
  }
  // Logits [T, vocab] of `path` on `tokens`; `encoded`: the model's own tokenization of kText (empty when
  // the model has no tokenizer: a SentencePiece one has no tokenizer.json form).
  static std::vector<float> Logits(const std::string& path, const std::vector<int>& tokens, std::vector<int>* encoded) {
    auto m = LoadModel(path);
    EXPECT_TRUE(m.ok()) << m.status().message();
    if (!m.ok()) return {};
    if (m->tokenizer) *encoded = m->tokenizer->Encode(kText, true);
    std::vector<float> logits(tokens.size() * size_t(m->config.vocab_size));
    EXPECT_TRUE(ForwardWindow(*m, tokens, logits.data()).ok());
    return logits;
  }
  static constexpr const char* kText = "And the man said unto them, Once upon a time there was a little girl";
  fs::path dir_;
};

TEST_F(ExportFloat, SafetensorsAndFloatGgufGiveTheSourcesLogits) {
  struct Case {
    std::string source, args, out;
    bool same_layout;
  };
  const std::vector<Case> cases = {
      {kTiny, "--format safetensors --scheme bf16", "tiny-st", true},
      {kTiny, "--scheme bf16", "tiny-bf16.gguf", false},
      {kTiny, "--scheme f32", "tiny-f32.gguf", false},
      {kStoriesGguf, "--format safetensors --scheme f32", "stories-st", false},
  };
  for (const Case& c : cases) {
    const auto r = Quantlab("export --model " + c.source + " " + c.args + " --out " + P(c.out));
    ASSERT_EQ(r.exit_code, 0) << c.args << ": " << r.out;
    auto source = LoadModel(c.source);
    ASSERT_TRUE(source.ok()) << source.status().message();
    const std::vector<int> tokens = source->tokenizer->Encode(kText, true);
    std::vector<int> want_tokens, got_tokens;
    const std::vector<float> want = Logits(c.source, tokens, &want_tokens);
    const std::vector<float> got = Logits(P(c.out), tokens, &got_tokens);
    if (c.out != "stories-st") EXPECT_EQ(got_tokens, want_tokens) << c.out << ": the tokenizer was not carried over";
    ASSERT_EQ(got.size(), want.size()) << c.out;
    if (c.same_layout) {
      EXPECT_TRUE(got == want) << c.out << ": logits differ";
      continue;
    }
    float max_diff = 0.0f;
    for (size_t i = 0; i < got.size(); ++i) max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
    EXPECT_LT(max_diff, 1e-4f) << c.out;
    EXPECT_GT(max_diff, 0.0f) << c.out << ": bitwise equal; make this case same_layout";
  }
  EXPECT_TRUE(fs::exists(P("tiny-st/tokenizer.json")));
  EXPECT_TRUE(fs::exists(P("tiny-st/config.json")));
}

TEST_F(ExportFloat, SafetensorsRefusesQuantizedTypes) {
  const auto r = Quantlab("export --model " + kTiny + " --format safetensors --scheme q4_0 --out " + P("x"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("f32, fp16 or bf16"), std::string::npos) << r.out;
  const auto p = Quantlab("export --model " + kTiny + " --format safetensors --preset Q4_K_M --out " + P("y"));
  EXPECT_NE(p.exit_code, 0);
}

}  // namespace
}  // namespace ql
