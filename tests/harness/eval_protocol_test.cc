// Tests of harness/eval/protocol: windows cut from the stream 0..N-1 checked token by token.
#include "datasets/protocol.h"

#include <numeric>
#include <vector>

#include <gtest/gtest.h>

namespace ql {
namespace {

constexpr int kBos = 1000;  // not in 0..N-1, so its placement is visible

std::vector<int> Iota(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(EvalProtocol, CanonicalStringsRoundTrip) {
  for (const char* s : {"llamacpp:ctx512", "gptq:ctx2048", "strided:ctx1024:s512", "llamacpp:ctx256:chunks4"}) {
    auto p = ProtocolSpec::Parse(s);
    ASSERT_TRUE(p.ok()) << s << ": " << p.status().message();
    EXPECT_EQ(p->Canonical(), s);
  }
  EXPECT_EQ(ProtocolSpec::Parse("llamacpp")->Canonical(), "llamacpp:ctx512");
  EXPECT_EQ(ProtocolSpec::Parse("gptq")->Canonical(), "gptq:ctx2048");
  EXPECT_EQ(ProtocolSpec::Parse("strided:ctx256")->Canonical(), "strided:ctx256:s128");
  for (const char* bad : {"wiki", "llamacpp:ctx", "llamacpp:ctx-4", "gptq:s4", "strided:ctx8:s9",
                          "strided:ctx8:s0", "llamacpp:ctx512:foo", "gptq:ctx1"}) {
    EXPECT_FALSE(ProtocolSpec::Parse(bad).ok()) << bad;
  }
}

TEST(EvalProtocol, LlamaCppWindowsBosAndSecondHalf) {
  // stream = [B, 0..29] (31 tokens) → floor(31/8) = 3 windows, 7 tail tokens dropped.
  const ProtocolSpec spec = *ProtocolSpec::Parse("llamacpp:ctx8");
  auto w = BuildWindows(spec, Iota(30), kBos);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 3u);
  EXPECT_EQ((*w)[0].tokens, (std::vector<int>{kBos, 0, 1, 2, 3, 4, 5, 6}));
  // Stream index 8 holds text token 7: overwritten by BOS, never fed, never scored.
  EXPECT_EQ((*w)[1].tokens, (std::vector<int>{kBos, 8, 9, 10, 11, 12, 13, 14}));
  EXPECT_EQ((*w)[2].tokens, (std::vector<int>{kBos, 16, 17, 18, 19, 20, 21, 22}));
  for (const Window& win : *w) {
    // first = 8/2 = 4; logits 4..6 predict positions 5..7: 8 - 4 - 1 = 3 tokens.
    EXPECT_EQ(win.score_begin, 5);
    EXPECT_EQ(win.score_end, 8);
  }
  EXPECT_EQ((*w)[2].stream_offset, 16);
  EXPECT_EQ(CountScored(*w), 9);
  // Odd context: first = 7/2 = 3 → scored 4..6.
  auto w7 = BuildWindows(*ProtocolSpec::Parse("llamacpp:ctx7"), Iota(30), kBos);
  ASSERT_TRUE(w7.ok());
  EXPECT_EQ((*w7)[0].score_begin, 4);
  EXPECT_EQ((*w7)[0].score_end, 7);
  // Cap the number of chunks.
  auto w2 = BuildWindows(*ProtocolSpec::Parse("llamacpp:ctx8:chunks2"), Iota(30), kBos);
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(w2->size(), 2u);
  // llama.cpp refuses fewer than 2·n_ctx tokens: [B, 0..13] is 15 < 16.
  EXPECT_FALSE(BuildWindows(spec, Iota(14), kBos).ok());
  EXPECT_TRUE(BuildWindows(spec, Iota(15), kBos).ok());
}

TEST(EvalProtocol, LlamaCppWithoutBosKeepsTheToken) {
  auto w = BuildWindows(*ProtocolSpec::Parse("llamacpp:ctx4"), Iota(9), -1);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 2u);
  EXPECT_EQ((*w)[1].tokens, (std::vector<int>{4, 5, 6, 7}));
}

TEST(EvalProtocol, GptqWindowsNoBosTailDropped) {
  // stream = [B, 0..29]: windows [B,0..6], [7..14], [15..22]; tail 23..29 dropped.
  auto w = BuildWindows(*ProtocolSpec::Parse("gptq:ctx8"), Iota(30), kBos);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 3u);
  EXPECT_EQ((*w)[0].tokens, (std::vector<int>{kBos, 0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ((*w)[1].tokens, (std::vector<int>{7, 8, 9, 10, 11, 12, 13, 14}));
  EXPECT_EQ((*w)[2].tokens, (std::vector<int>{15, 16, 17, 18, 19, 20, 21, 22}));
  for (const Window& win : *w) {
    EXPECT_EQ(win.score_begin, 1);
    EXPECT_EQ(win.score_end, 8);
  }
  EXPECT_EQ(CountScored(*w), 21);
  EXPECT_FALSE(BuildWindows(*ProtocolSpec::Parse("gptq:ctx64"), Iota(30), kBos).ok());
}

TEST(EvalProtocol, StridedScoresEveryTokenExactlyOnce) {
  for (int n : {20, 21, 23, 40}) {
    for (int stride : {1, 3, 4, 7}) {
      ProtocolSpec spec;
      spec.kind = ProtocolKind::kStrided;
      spec.n_ctx = 8;
      spec.stride = stride;
      auto w = BuildWindows(spec, Iota(n), kBos);
      ASSERT_TRUE(w.ok());
      std::vector<int> hits(n + 1, 0);  // stream = [B, 0..n-1]
      for (const Window& win : *w) {
        ASSERT_LE(int(win.tokens.size()), 8);
        EXPECT_EQ(win.stream_offset % stride, 0);
        for (size_t i = 0; i < win.tokens.size(); ++i) {
          const int64_t s = win.stream_offset + int64_t(i);
          EXPECT_EQ(win.tokens[i], s == 0 ? kBos : int(s - 1));  // the stream slice, no BOS inside
        }
        ASSERT_GE(win.score_begin, 1);
        for (int t = win.score_begin; t < win.score_end; ++t) ++hits[win.stream_offset + t];
      }
      EXPECT_EQ(hits[0], 0) << "n=" << n << " stride=" << stride;
      for (int s = 1; s <= n; ++s) EXPECT_EQ(hits[s], 1) << "n=" << n << " stride=" << stride << " s=" << s;
      EXPECT_EQ(CountScored(*w), n);
    }
  }
}

TEST(EvalProtocol, StridedWindowsByHand) {
  // stream [B, 0..9] (11 tokens), ctx 6, stride 4: windows start 0, 4, 8.
  //  w0: stream 0..5, targets 1..5; w1: stream 4..9, prev_end 6 → new targets stream 6..9 = pos 2..5;
  //  w2: stream 8..10, prev_end 10 → target stream 10 = pos 2; reaches the end, stop.
  auto w = BuildWindows(*ProtocolSpec::Parse("strided:ctx6:s4"), Iota(10), kBos);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 3u);
  EXPECT_EQ((*w)[0].tokens, (std::vector<int>{kBos, 0, 1, 2, 3, 4}));
  EXPECT_EQ((*w)[0].score_begin, 1);
  EXPECT_EQ((*w)[0].score_end, 6);
  EXPECT_EQ((*w)[1].tokens, (std::vector<int>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ((*w)[1].score_begin, 2);
  EXPECT_EQ((*w)[1].score_end, 6);
  EXPECT_EQ((*w)[2].tokens, (std::vector<int>{7, 8, 9}));
  EXPECT_EQ((*w)[2].score_begin, 2);
  EXPECT_EQ((*w)[2].score_end, 3);
}

}  // namespace
}  // namespace ql
