// The forward pass on real trained weights: llama2.c's stories260K (models/stories260K/README.md)
// must reproduce its published greedy text byte for byte and a TinyStories NLL near the published 1.30.
#include <algorithm>
#include "tests/test_paths.h"
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness/io/file_io.h"
#include "harness/io/llama2c.h"
#include "harness/model/forward.h"
#include "harness/model/generate.h"
#include "harness/tokenizer/tokenizer.h"

namespace ql {
namespace {

const std::string kDir = std::string(QL_SHARED_DIR) + "/models/stories260K/";

Model LoadStories() {
  auto m = io::ReadLlama2c(kDir + "stories260K.bin", kDir + "tok512.bin");
  QL_CHECK(m.ok(), "{}", m.status().message());
  QL_CHECK(m->tokenizer != nullptr, "tok512.bin not loaded");
  return std::move(m).value();
}

TEST(Stories260KTest, GreedyGenerationReproducesPublishedText) {
  const Model m = LoadStories();
  // Published in models/stories260K/README.md: temperature 0, empty prompt, 200 positions counting BOS,
  // i.e. run.c's steps = 200: forwards at positions 0..199, each emitting one token, so 200 new tokens
  // (the last is printed but never fed back). 199 new tokens stop one word short ("so" without " she").
  const std::string want =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
      "she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, "
      "let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your "
      "ball, but I can't find it.\"\nLily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I "
      "didn't know what to do.\"\nLily didn't want to help her mom, so she";
  auto ids = GenerateGreedy(m, {m.config.bos_id}, 200);
  ASSERT_TRUE(ids.ok()) << ids.status().message();
  EXPECT_EQ(ids->size(), 201u);
  EXPECT_EQ(m.tokenizer->Decode(*ids), want);
}

TEST(Stories260KTest, TinyStoriesNllNearPublished) {
  const Model m = LoadStories();
  auto text = io::ReadTextFile(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt");
  ASSERT_TRUE(text.ok()) << text.status().message();
  // ~4k tokens: the first 16 KB of text tokenizes to about 4.5k tokens with this 512-piece vocabulary.
  const std::vector<int> all = m.tokenizer->Encode(text->substr(0, 16000), /*add_bos=*/false);
  constexpr int kWindow = 512, kText = kWindow - 1, kWindows = 8;  // BOS + 511 text tokens each
  ASSERT_GE(int(all.size()), kText * kWindows);
  std::vector<float> logits(size_t(kWindow) * m.config.vocab_size);
  double nll = 0;
  int64_t count = 0;
  for (int w = 0; w < kWindows; ++w) {
    std::vector<int> win = {m.config.bos_id};
    win.insert(win.end(), all.begin() + w * kText, all.begin() + (w + 1) * kText);
    ASSERT_TRUE(ForwardWindow(m, win, logits.data()).ok());
    for (int t = 0; t + 1 < kWindow; ++t) {  // logits at t predict token t+1; every text token scored
      const float* row = logits.data() + size_t(t) * m.config.vocab_size;
      double mx = row[0];
      for (int i = 1; i < m.config.vocab_size; ++i) mx = std::max(mx, double(row[i]));
      double z = 0;
      for (int i = 0; i < m.config.vocab_size; ++i) z += std::exp(row[i] - mx);
      nll += std::log(z) + mx - row[win[t + 1]];
      ++count;
    }
  }
  const double mean = nll / double(count);
  std::printf("stories260K mean NLL over %lld tokens (8 windows of BOS+511): %.4f nats/token\n",
              static_cast<long long>(count), mean);
  // Published validation loss 1.2968 (llama2.c's held-out shard, 256-token sequences). Our text is
  // another slice of the same distribution and includes each window's cold start, so allow
  // 1.20-1.45; a wrong RoPE layout, norm or GQA mapping lands far above (>2), a random model near ln 512 = 6.2.
  EXPECT_GT(mean, 1.20);
  EXPECT_LT(mean, 1.45);
}


TEST(Stories260KTest, PerStoryNllNearPublished) {
  // llama2.c's protocol: every story its own sequence starting with BOS (its pretokenized shards put
  // BOS before each story). Stories are separated by blank lines; the file's first story is cut off.
  const Model m = LoadStories();
  auto text = io::ReadTextFile(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt");
  ASSERT_TRUE(text.ok()) << text.status().message();
  std::vector<std::string> stories;
  for (size_t pos = 0; pos < text->size();) {
    size_t end = text->find("\n\n", pos);
    if (end == std::string::npos) end = text->size();
    stories.push_back(text->substr(pos, end - pos));
    pos = end + 2;
  }
  double nll = 0;
  int64_t count = 0;
  std::vector<float> logits;
  for (size_t i = 1; i < stories.size() && count < 4000; ++i) {
    std::vector<int> ids = m.tokenizer->Encode(stories[i], /*add_bos=*/true);
    if (ids.size() > 512) ids.resize(512);
    logits.resize(ids.size() * m.config.vocab_size);
    ASSERT_TRUE(ForwardWindow(m, ids, logits.data()).ok());
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      const float* row = logits.data() + t * m.config.vocab_size;
      double mx = row[0];
      for (int j = 1; j < m.config.vocab_size; ++j) mx = std::max(mx, double(row[j]));
      double z = 0;
      for (int j = 0; j < m.config.vocab_size; ++j) z += std::exp(row[j] - mx);
      nll += std::log(z) + mx - row[ids[t + 1]];
      ++count;
    }
  }
  const double mean = nll / double(count);
  std::printf("stories260K per-story mean NLL over %lld tokens: %.4f nats/token\n", static_cast<long long>(count), mean);
  EXPECT_GT(mean, 1.20);
  EXPECT_LT(mean, 1.45);
}

}  // namespace
}  // namespace ql
