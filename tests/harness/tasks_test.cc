// Tests of task accuracy: the JSONL readers (datasets/tasks.h), the scoring conventions against
// log-likelihoods computed by hand from ForwardWindow on a tiny random model (harness/eval/tasks.h),
// shared-prefix scoring against scoring every candidate alone, and the paired statistics
// (harness/eval/paired_stats.h) against hand-computed values.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "datasets/tasks.h"
#include "harness/eval/metrics.h"
#include "harness/eval/paired_stats.h"
#include "harness/eval/tasks.h"
#include "harness/model/forward.h"
#include "harness/model/random_model.h"
#include "harness/tokenizer/byte_bpe.h"

namespace ql {
namespace {

// ---------------------------------------------------------------- readers

TaskSet MustParse(const std::string& text, const TaskLimit& limit = {}) {
  auto s = ParseTaskText(text, "t", "t.jsonl", limit);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : TaskSet{};
}

std::string ParseError(const std::string& text) {
  auto s = ParseTaskText(text, "t", "t.jsonl");
  EXPECT_FALSE(s.ok()) << "parsed: " << text;
  return s.ok() ? "" : s.status().message();
}

TEST(TaskReader, ThreeShapes) {
  TaskSet mc = MustParse("{\"query\": \"Q: a?\", \"choices\": [\"x\", \"y\", \"z\"], \"gold\": 2}\n");
  EXPECT_EQ(mc.shape, TaskShape::kMultipleChoice);
  ASSERT_EQ(mc.items.size(), 1u);
  EXPECT_EQ(mc.items[0].num_candidates(), 3);
  EXPECT_EQ(mc.items[0].Context(1), "Q: a?");
  EXPECT_EQ(mc.items[0].Continuation(1), "y");
  EXPECT_EQ(mc.items[0].gold, 2);

  TaskSet wg = MustParse("\n{\"context_options\": [\"A so A\", \"A so B\"], \"continuation\": \"ran.\", \"gold\": 1}\n");
  EXPECT_EQ(wg.shape, TaskShape::kPartialContext);
  EXPECT_EQ(wg.items[0].line, 2);  // the blank first line still counts
  EXPECT_EQ(wg.items[0].Context(1), "A so B");
  EXPECT_EQ(wg.items[0].Continuation(1), "ran.");

  TaskSet cl = MustParse("{\"context\": \"he said\", \"continuation\": \"hello\"}");
  EXPECT_EQ(cl.shape, TaskShape::kCloze);
  EXPECT_EQ(cl.items[0].num_candidates(), 1);
  EXPECT_EQ(cl.items[0].gold, 0);
}

TEST(TaskReader, ErrorsNameTheLine) {
  const std::string ok = "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n";
  EXPECT_EQ(ParseError(ok + "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0\n"),
            "t.jsonl:2: not valid JSON (one JSON object a line expected)");
  EXPECT_EQ(ParseError(ok + ok + "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n"),
            "t.jsonl:3: gold 2 is out of range for 2 choices (use 0..1)");
  EXPECT_EQ(ParseError("{\"query\": \"q\", \"choices\": [\"a\", \"\"], \"gold\": 0}"),
            "t.jsonl:1: choices[1] is empty (an empty candidate cannot be scored)");
  EXPECT_EQ(ParseError("{\"query\": \"q\", \"choices\": [\"a\", \"b\"]}"), "t.jsonl:1: missing field \"gold\"");
  EXPECT_EQ(ParseError("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": \"0\"}"),
            "t.jsonl:1: field \"gold\" is a string, expected an integer");
  EXPECT_EQ(ParseError("{\"query\": \"q\", \"choices\": \"a\", \"gold\": 0}"),
            "t.jsonl:1: field \"choices\" is a string, expected an array of strings");
  EXPECT_EQ(ParseError("{\"query\": 3, \"choices\": [\"a\", \"b\"], \"gold\": 0}"),
            "t.jsonl:1: field \"query\" is a number, expected a string");
  EXPECT_EQ(ParseError("{\"query\": \"q\", \"choices\": [\"a\", 1], \"gold\": 0}"),
            "t.jsonl:1: choices[1] is a number, expected a string");
  EXPECT_EQ(ParseError("{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}"),
            "t.jsonl:1: field \"choices\" has 1 entries, need at least 2");
  EXPECT_EQ(ParseError(ok + "{\"context\": \"c\", \"continuation\": \"x\"}"),
            "t.jsonl:2: a cloze item in a multiple_choice file (every line must have the fields of the first)");
  EXPECT_EQ(ParseError("{\"context\": \"c\", \"continuation\": \"\"}"), "t.jsonl:1: field \"continuation\" is empty");
  EXPECT_EQ(ParseError("{\"context\": \"c\"}"), "t.jsonl:1: missing field \"continuation\"");
  EXPECT_EQ(ParseError("[1, 2]"), "t.jsonl:1: a JSON array, expected an object");
  EXPECT_EQ(ParseError("\n  \n"), "t.jsonl: no task items (one JSON object a line expected)");
  EXPECT_EQ(ParseError("{\"context_options\": [\"a\", \"b\"], \"continuation\": \"c\", \"gold\": -1}"),
            "t.jsonl:1: gold -1 is out of range for 2 context options (use 0..1)");
  auto missing = ReadTaskFile("/nonexistent/tasks.jsonl", "t");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/tasks.jsonl"), std::string::npos);
}

TEST(TaskReader, LimitFirstAndSeededSample) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "{\"context\": \"c" + std::to_string(i) + "\", \"continuation\": \"x\"}\n";
  TaskSet first = MustParse(text, {5, 0});
  ASSERT_EQ(first.items.size(), 5u);
  EXPECT_EQ(first.items[4].line, 5);
  EXPECT_EQ(first.items_in_file, 50);
  EXPECT_EQ(first.limit.Canonical(), "first5");
  const std::vector<int64_t> a = SelectItems(50, {10, 7}), b = SelectItems(50, {10, 7}), c = SelectItems(50, {10, 8});
  EXPECT_EQ(a, b);  // reproducible
  EXPECT_NE(a, c);  // the seed matters
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end());  // without replacement
  EXPECT_EQ(SelectItems(50, {80, 7}).size(), 50u);  // more than the file: all
  EXPECT_EQ((TaskLimit{10, 7}.Canonical()), "sample10:seed7");
  TaskSet sample = MustParse(text, {10, 7});
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(sample.items[i].line, a[i] + 1);
}

// ---------------------------------------------------------------- scoring

// Byte-level BPE over all 256 bytes (id = byte value), two merges, an <eos> added token, no BOS:
//   256 "Ġy" (" y"), 257 "Ġb" (" b"), 258 <eos>.
constexpr int kSpace = ' ', kX = 'x', kY = 'y', kZ = 'z', kA = 'a', kB = 'b', kSpY = 256, kSpB = 257, kEos = 258;

std::shared_ptr<const Tokenizer> TinyTokenizer() {
  ByteBpeSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.push_back(ByteBpeTokenizer::ByteToUnicode(uint8_t(b)));
  const std::string sp = ByteBpeTokenizer::ByteToUnicode(' ');
  spec.vocab.push_back(sp + "y");
  spec.vocab.push_back(sp + "b");
  spec.vocab.push_back("<eos>");
  spec.merges = {{sp, "y"}, {sp, "b"}};
  spec.added_tokens = {{kEos, "<eos>", true}};
  spec.eos_id = kEos;
  auto t = ByteBpeTokenizer::Create(spec);
  QL_CHECK(t.ok(), "{}", t.status().message());
  return std::shared_ptr<const Tokenizer>(std::move(*t));
}

Model TinyModel(int max_seq_len = 64) {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 259;
  c.max_seq_len = max_seq_len;
  c.tied_embeddings = true;
  c.eos_id = kEos;
  Model m = RandomModel(c, 11);
  m.tokenizer = TinyTokenizer();
  return m;
}

// Σ log p(tokens[j] | tokens[<j]) over j in [from, size), straight from ForwardWindow + LogSoftmax.
double HandLogLik(const Model& m, const std::vector<int>& tokens, int from) {
  const int V = m.config.vocab_size;
  const std::span<const int> fed(tokens.data(), tokens.size() - 1);  // the last token is only predicted
  std::vector<float> logits(fed.size() * V);
  QL_CHECK(ForwardWindow(m, fed, logits.data()).ok());
  double sum = 0;
  std::vector<double> lp(V);
  for (size_t j = from; j < tokens.size(); ++j) {
    LogSoftmax(std::span<const float>(logits.data() + (j - 1) * V, V), lp);
    sum += lp[tokens[j]];
  }
  return sum;
}

TaskScores MustScore(const Model& m, const std::string& jsonl, TaskConvention conv, bool share = true, int window = 0,
                     int pack_rows = TaskScoreOptions{}.pack_rows) {
  TaskSet set = MustParse(jsonl);
  TaskScoreOptions opt;
  opt.share_prefix = share;
  opt.window = window;
  opt.pack_rows = pack_rows;
  auto s = ScoreTask(m, set, conv, opt);
  QL_CHECK(s.ok(), "{}", s.status().message());
  return *s;
}

TEST(TaskScoring, TinyTokenizerHandDerivedIds) {
  auto tok = TinyTokenizer();
  EXPECT_EQ(tok->Encode("x yz", false), (std::vector<int>{kX, kSpY, kZ}));
  EXPECT_EQ(tok->Encode("x  yz", false), (std::vector<int>{kX, kSpace, kSpY, kZ}));  // gpt2: "x", " ", " yz"
  EXPECT_EQ(tok->Encode("x b", false), (std::vector<int>{kX, kSpB}));
  EXPECT_EQ(tok->Encode("x yz", true), (std::vector<int>{kX, kSpY, kZ}));  // no BOS in this vocabulary
}

// lmeval: context_enc = [x]; " yz" -> [Ġy z] summed over 2 tokens, acc_norm divides by len("yz") = 2;
// " b" -> [Ġb], divided by 1.
TEST(TaskScoring, LmEvalSumAndCharNormalisation) {
  const Model m = TinyModel();
  const TaskScores s = MustScore(m, "{\"query\": \"x\", \"choices\": [\"yz\", \"b\"], \"gold\": 1}", TaskConvention::kLmEval);
  ASSERT_EQ(s.items.size(), 1u);
  const ItemScore& it = s.items[0];
  const double ll0 = HandLogLik(m, {kX, kSpY, kZ}, 1), ll1 = HandLogLik(m, {kX, kSpB}, 1);
  EXPECT_NEAR(it.candidates[0].loglik, ll0, 1e-5);
  EXPECT_NEAR(it.candidates[1].loglik, ll1, 1e-5);
  EXPECT_EQ(it.candidates[0].n_tokens, 2);
  EXPECT_EQ(it.candidates[1].n_tokens, 1);
  EXPECT_EQ(it.candidates[0].n_chars, 2);
  EXPECT_EQ(it.candidates[1].n_chars, 1);
  EXPECT_NEAR(it.Score(0, ChoiceRule::kPerChar), ll0 / 2, 1e-5);
  EXPECT_EQ(it.Chosen(ChoiceRule::kSum), ll1 > ll0 ? 1 : 0);
  EXPECT_EQ(it.Chosen(ChoiceRule::kPerChar), ll1 > ll0 / 2 ? 1 : 0);
  const std::vector<TaskMetricValue> metrics = TaskMetrics(s);
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_EQ(metrics[0].name, "acc");
  EXPECT_EQ(metrics[1].name, "acc_norm");
  EXPECT_EQ(metrics[0].value, ll1 > ll0 ? 1.0 : 0.0);
}

// The context's trailing space moves to the continuation: "x " + " yz" -> context "x", continuation
// "  yz" -> tokens [x][Ġ Ġy z]: three scored tokens, the lone space among them. The non-ASCII choice
// counts code points, not bytes ("é" is 2 bytes, 1 character).
TEST(TaskScoring, LmEvalTrailingContextSpaceBelongsToTheContinuation) {
  const Model m = TinyModel();
  const TaskScores s =
      MustScore(m, "{\"query\": \"x \", \"choices\": [\"yz\", \"\xC3\xA9\"], \"gold\": 0}", TaskConvention::kLmEval);
  const ItemScore& it = s.items[0];
  EXPECT_EQ(it.candidates[0].n_tokens, 3);
  EXPECT_NEAR(it.candidates[0].loglik, HandLogLik(m, {kX, kSpace, kSpY, kZ}, 1), 1e-5);
  EXPECT_EQ(it.candidates[1].n_chars, 1);
  EXPECT_NEAR(it.candidates[1].loglik, HandLogLik(m, {kX, kSpace, kSpace, 0xC3, 0xA9}, 1), 1e-5);
}

// An empty context is conditioned on <eos> (lm-eval's prefix token).
TEST(TaskScoring, LmEvalEmptyContextUsesEos) {
  const Model m = TinyModel();
  const TaskScores s = MustScore(m, "{\"query\": \"\", \"choices\": [\"yz\", \"b\"], \"gold\": 0}", TaskConvention::kLmEval);
  EXPECT_NEAR(s.items[0].candidates[0].loglik, HandLogLik(m, {kEos, kSpY, kZ}, 1), 1e-5);
  EXPECT_NEAR(s.items[0].candidates[1].loglik, HandLogLik(m, {kEos, kSpB}, 1), 1e-5);
}

// llamacpp: "x yz" = [x Ġy z] and "x yb" = [x Ġy b] share [x Ġy]: only z / b are scored (mean of one).
// "x y" = [x Ġy] against "x yz": the common prefix [x Ġy] is capped at min length − 1 = 1, so Ġy is
// scored in both and the second candidate's score is the mean of two tokens.
TEST(TaskScoring, LlamaCppCommonPrefixRule) {
  const Model m = TinyModel();
  const TaskScores s = MustScore(m,
                                 "{\"query\": \"x\", \"choices\": [\"yz\", \"yb\"], \"gold\": 1}\n"
                                 "{\"query\": \"x\", \"choices\": [\"y\", \"yz\"], \"gold\": 0}\n",
                                 TaskConvention::kLlamaCpp);
  const ItemScore& a = s.items[0];
  EXPECT_EQ(a.candidates[0].n_tokens, 1);
  EXPECT_NEAR(a.candidates[0].loglik, HandLogLik(m, {kX, kSpY, kZ}, 2), 1e-5);
  EXPECT_NEAR(a.candidates[1].loglik, HandLogLik(m, {kX, kSpY, kB}, 2), 1e-5);
  const ItemScore& b = s.items[1];
  EXPECT_EQ(b.candidates[0].n_tokens, 1);
  EXPECT_EQ(b.candidates[1].n_tokens, 2);
  const double ll1 = HandLogLik(m, {kX, kSpY, kZ}, 1);
  EXPECT_NEAR(b.Score(1, ChoiceRule::kPerToken), ll1 / 2, 1e-5);
  ASSERT_EQ(TaskMetrics(s).size(), 1u);
  EXPECT_EQ(TaskMetrics(s)[0].name, "acc_per_token");
}

// WinoGrande-style: contexts differ, the continuation " yz" is scored after each.
TEST(TaskScoring, PartialContextScoresTheSharedContinuation) {
  const Model m = TinyModel();
  const std::string item = "{\"context_options\": [\"xa\", \"xb\"], \"continuation\": \"yz\", \"gold\": 1}";
  const TaskScores s = MustScore(m, item, TaskConvention::kLmEval);
  EXPECT_NEAR(s.items[0].candidates[0].loglik, HandLogLik(m, {kX, kA, kSpY, kZ}, 2), 1e-5);
  EXPECT_NEAR(s.items[0].candidates[1].loglik, HandLogLik(m, {kX, kB, kSpY, kZ}, 2), 1e-5);
  // llamacpp: the whole sentences "xa yz" / "xb yz" after their common prefix [x].
  const TaskScores l = MustScore(m, item, TaskConvention::kLlamaCpp);
  EXPECT_EQ(l.items[0].candidates[0].n_tokens, 3);
  EXPECT_NEAR(l.items[0].candidates[0].loglik, HandLogLik(m, {kX, kA, kSpY, kZ}, 1), 1e-5);
}

// LAMBADA-style: greedy exact match and the target's perplexity.
TEST(TaskScoring, ClozeGreedyAndPerplexity) {
  const Model m = TinyModel();
  const TaskScores s = MustScore(m,
                                 "{\"context\": \"x\", \"continuation\": \"yz\"}\n"
                                 "{\"context\": \"ab\", \"continuation\": \"b\"}\n",
                                 TaskConvention::kLmEval);
  const double ll0 = HandLogLik(m, {kX, kSpY, kZ}, 1), ll1 = HandLogLik(m, {kA, kB, kSpB}, 2);
  EXPECT_NEAR(s.items[0].candidates[0].loglik, ll0, 1e-5);
  EXPECT_NEAR(s.items[1].candidates[0].loglik, ll1, 1e-5);
  // Greedy: every scored token must be its row's argmax.
  const int V = m.config.vocab_size;
  std::vector<float> logits(3 * V);
  ASSERT_TRUE(ForwardWindow(m, std::vector<int>{kX, kSpY, kZ}, logits.data()).ok());
  const bool greedy0 = ArgMax(std::span<const float>(logits.data(), V)) == kSpY &&
                       ArgMax(std::span<const float>(logits.data() + V, V)) == kZ;
  EXPECT_EQ(s.items[0].candidates[0].greedy, greedy0);
  const std::vector<TaskMetricValue> metrics = TaskMetrics(s);
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_EQ(metrics[1].name, "ppl");
  EXPECT_NEAR(metrics[1].value, std::exp(-(ll0 + ll1) / 2), 1e-4 * metrics[1].value);
  EXPECT_EQ(metrics[2].name, "ppl_token");
  EXPECT_NEAR(metrics[2].value, std::exp(-(ll0 + ll1) / 3), 1e-4 * metrics[2].value);
  // llamacpp: encode("x yz") after its common prefix with encode("x"): the same two tokens.
  const TaskScores l = MustScore(m, "{\"context\": \"x\", \"continuation\": \"yz\"}", TaskConvention::kLlamaCpp);
  EXPECT_NEAR(l.items[0].candidates[0].loglik, ll0, 1e-5);
}

// Too long for the window: context tokens go on the left, the continuation stays whole.
TEST(TaskScoring, LongItemsLoseContextFromTheLeft) {
  const Model m = TinyModel(/*max_seq_len=*/8);
  // context "abababab" (8 tokens) + [Ġy z]: 10 tokens, 9 fed > 8 -> drop 1: [bababab Ġy z].
  const TaskScores s =
      MustScore(m, "{\"query\": \"abababab\", \"choices\": [\"yz\", \"b\"], \"gold\": 0}", TaskConvention::kLmEval);
  EXPECT_EQ(s.items[0].truncated_tokens, 1);
  EXPECT_EQ(s.truncated_items(), 1);
  EXPECT_NEAR(s.items[0].candidates[0].loglik, HandLogLik(m, {kB, kA, kB, kA, kB, kA, kB, kSpY, kZ}, 7), 1e-5);
  EXPECT_NEAR(s.items[0].candidates[1].loglik, HandLogLik(m, {kA, kB, kA, kB, kA, kB, kA, kB, kSpB}, 8), 1e-5);
  // A continuation that alone exceeds the window is an error naming the line.
  TaskSet bad = MustParse("{\"query\": \"x\", \"choices\": [\"b\", \"yzzzzzzzzzzzz\"], \"gold\": 0}");
  auto r = ScoreTask(m, bad, TaskConvention::kLmEval);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "t.jsonl:1: 13 scored tokens do not fit in a window of 8 (raise --ctx or drop the item)");
}

// The one-item shared-prefix path (cached prefix, one call per candidate remainder; what cells with
// hooks run) against every candidate run alone from position 0, on items of every shape and both
// conventions.
TEST(TaskScoring, SharedPrefixEqualsScoringAlone) {
  const Model m = TinyModel();
  const std::string mc =
      "{\"query\": \"the quick brown fox\", \"choices\": [\"jumps over\", \"yb\", \"ran away quickly\"], \"gold\": 0}\n"
      "{\"query\": \"Question: why?\\n\", \"choices\": [\"because yes\", \"because b\"], \"gold\": 1}\n";
  const std::string wg = "{\"context_options\": [\"Ann told Bo\", \"Ann told Cy\"], \"continuation\": \"to go.\", \"gold\": 0}\n"
                         "{\"context_options\": [\"Ann\", \"Bo\"], \"continuation\": \"left.\", \"gold\": 1}\n";
  const std::string cl = "{\"context\": \"one two three\", \"continuation\": \"four\"}\n";
  double worst = 0;
  for (const std::string& text : {mc, wg, cl}) {
    for (TaskConvention conv : {TaskConvention::kLmEval, TaskConvention::kLlamaCpp}) {
      const TaskScores shared = MustScore(m, text, conv, true, 0, /*pack_rows=*/0), alone = MustScore(m, text, conv, false);
      ASSERT_EQ(shared.items.size(), alone.items.size());
      if (shared.shape != TaskShape::kCloze) EXPECT_LT(shared.tokens_forwarded, alone.tokens_forwarded);
      for (size_t i = 0; i < shared.items.size(); ++i) {
        for (size_t c = 0; c < shared.items[i].candidates.size(); ++c) {
          const CandidateScore &a = shared.items[i].candidates[c], &b = alone.items[i].candidates[c];
          EXPECT_EQ(a.n_tokens, b.n_tokens);
          EXPECT_EQ(a.greedy, b.greedy);
          worst = std::max(worst, std::abs(a.loglik - b.loglik) / std::max(1.0, std::abs(b.loglik)));
        }
      }
    }
  }
  // The two paths run different matrix shapes (BLAS may block the sums differently): float rounding.
  EXPECT_LT(worst, 1e-5);
  std::printf("largest relative log-likelihood difference, shared vs alone: %.3g\n", worst);
}

// The packed path (several items per ForwardPacked call) against the one-item-at-a-time KV-cache path
// to float rounding, and bitwise the same for any pack size: one item per call, a few, all in one.
TEST(TaskScoring, PackedItemsEqualOneItemAtATime) {
  const Model m = TinyModel();
  const std::string mc =
      "{\"query\": \"the quick brown fox\", \"choices\": [\"jumps over\", \"yb\", \"ran away quickly\"], \"gold\": 0}\n"
      "{\"query\": \"Question: why?\\n\", \"choices\": [\"because yes\", \"because b\"], \"gold\": 1}\n"
      "{\"query\": \"x \", \"choices\": [\"yz\", \"b\"], \"gold\": 0}\n";
  const std::string wg = "{\"context_options\": [\"Ann told Bo\", \"Ann told Cy\"], \"continuation\": \"to go.\", \"gold\": 0}\n"
                         "{\"context_options\": [\"Ann\", \"Bo\"], \"continuation\": \"left.\", \"gold\": 1}\n";
  const std::string cl = "{\"context\": \"one two three\", \"continuation\": \"four\"}\n"
                         "{\"context\": \"x\", \"continuation\": \"yz\"}\n";
  double worst = 0;
  for (const std::string& text : {mc, wg, cl}) {
    for (TaskConvention conv : {TaskConvention::kLmEval, TaskConvention::kLlamaCpp}) {
      const TaskScores cached = MustScore(m, text, conv, true, 0, /*pack_rows=*/0);
      const TaskScores one = MustScore(m, text, conv, true, 0, 1), few = MustScore(m, text, conv, true, 0, 20),
                       all = MustScore(m, text, conv, true, 0, 100000);
      EXPECT_LE(all.tokens_forwarded, cached.tokens_forwarded);
      ASSERT_EQ(all.items.size(), cached.items.size());
      for (size_t i = 0; i < all.items.size(); ++i) {
        for (size_t c = 0; c < all.items[i].candidates.size(); ++c) {
          const CandidateScore &a = all.items[i].candidates[c], &b = cached.items[i].candidates[c];
          EXPECT_EQ(a.loglik, one.items[i].candidates[c].loglik);  // bitwise
          EXPECT_EQ(a.loglik, few.items[i].candidates[c].loglik);
          EXPECT_EQ(a.greedy, one.items[i].candidates[c].greedy);
          EXPECT_EQ(a.n_tokens, b.n_tokens);
          EXPECT_EQ(a.n_chars, b.n_chars);
          EXPECT_EQ(a.greedy, b.greedy);
          worst = std::max(worst, std::abs(a.loglik - b.loglik) / std::max(1.0, std::abs(b.loglik)));
        }
      }
    }
  }
  EXPECT_LT(worst, 1e-5);
  std::printf("largest relative log-likelihood difference, packed vs KV-cache path: %.3g\n", worst);
}

// Both conventions in one pass give each convention's own scores.
TEST(TaskScoring, JointConventionsEqualSeparateRuns) {
  const Model m = TinyModel();
  const std::string text =
      "{\"query\": \"Question: why?\\n\", \"choices\": [\"because yes\", \"because b\", \"ab\"], \"gold\": 1}\n"
      "{\"query\": \"x \", \"choices\": [\"yz\", \"b\"], \"gold\": 0}\n";
  TaskSet set = MustParse(text);
  const std::vector<TaskConvention> both = {TaskConvention::kLmEval, TaskConvention::kLlamaCpp};
  auto joint = ScoreTaskConventions(m, set, both);
  ASSERT_TRUE(joint.ok()) << joint.status().message();
  ASSERT_EQ(joint->size(), 2u);
  for (size_t v = 0; v < 2; ++v) {
    const TaskScores alone = MustScore(m, text, both[v]);
    EXPECT_EQ((*joint)[v].convention, both[v]);
    EXPECT_LE((*joint)[v].tokens_forwarded, 2 * alone.tokens_forwarded);
    for (size_t i = 0; i < alone.items.size(); ++i)
      for (size_t c = 0; c < alone.items[i].candidates.size(); ++c) {
        EXPECT_NEAR((*joint)[v].items[i].candidates[c].loglik, alone.items[i].candidates[c].loglik, 1e-5);
        EXPECT_EQ((*joint)[v].items[i].candidates[c].n_tokens, alone.items[i].candidates[c].n_tokens);
      }
  }
}

TEST(TaskScoring, BitwiseReproducible) {
  const Model m = TinyModel();
  const std::string text = "{\"query\": \"x\", \"choices\": [\"yz\", \"b\", \"ab\"], \"gold\": 2}\n";
  const TaskScores a = MustScore(m, text, TaskConvention::kLmEval), b = MustScore(m, text, TaskConvention::kLmEval);
  for (size_t c = 0; c < 3; ++c) EXPECT_EQ(a.items[0].candidates[c].loglik, b.items[0].candidates[c].loglik);
}

TEST(TaskScoring, ConventionNames) {
  EXPECT_EQ(TaskConventionName(*ParseTaskConvention("lmeval")), "lmeval");
  EXPECT_EQ(TaskConventionName(*ParseTaskConvention("llamacpp")), "llamacpp");
  auto bad = ParseTaskConvention("lighteval");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "unknown task convention 'lighteval' (use lmeval or llamacpp)");
}

// ---------------------------------------------------------------- statistics

TEST(PairedStats, McNemarExactHandValues) {
  EXPECT_EQ(McNemarExactP(0, 0), 1.0);
  EXPECT_EQ(McNemarExactP(1, 0), 1.0);                          // 2 · 1/2
  EXPECT_NEAR(McNemarExactP(5, 0), 2.0 / 32, 1e-15);            // 2 · (1/2)^5
  EXPECT_NEAR(McNemarExactP(10, 2), 2.0 * 79 / 4096, 1e-14);    // 2 · (1 + 12 + 66) / 2^12
  EXPECT_NEAR(McNemarExactP(2, 10), 2.0 * 79 / 4096, 1e-14);    // symmetric
  EXPECT_EQ(McNemarExactP(3, 3), 1.0);
  // b = 60, c = 40: 2 · Σ_{i<=40} C(100, i) / 2^100, from exact integer arithmetic (Python math.comb).
  EXPECT_NEAR(McNemarExactP(60, 40), 0.05688793364098079, 1e-12);
}

TEST(PairedStats, PairedAccuracyHandCase) {
  // base right on items 0,1,4; cell on 0,2: right->wrong = {1, 4}, wrong->right = {2}.
  const std::vector<uint8_t> base = {1, 1, 0, 0, 1}, cell = {1, 0, 1, 0, 0};
  const PairedAccuracy p = PairAccuracies(base, cell, 2000, 3);
  EXPECT_EQ(p.base.correct, 3);
  EXPECT_DOUBLE_EQ(p.base.acc, 0.6);
  EXPECT_NEAR(p.base.se, std::sqrt(0.24 / 4), 1e-15);
  EXPECT_DOUBLE_EQ(p.cell.acc, 0.4);
  EXPECT_EQ(p.right_to_wrong, 2);
  EXPECT_EQ(p.wrong_to_right, 1);
  EXPECT_NEAR(p.diff, -0.2, 1e-15);
  // d = (0, −1, 1, 0, −1): sample variance 2.8/4 = 0.7, se = sqrt(0.7/5).
  EXPECT_NEAR(p.diff_se, std::sqrt(0.7 / 5), 1e-15);
  EXPECT_EQ(p.mcnemar_p, 1.0);  // n = 3: 2 · (1 + 3)/8 capped at 1
  EXPECT_LE(p.bootstrap.lo, p.diff);
  EXPECT_GE(p.bootstrap.hi, p.diff);
}

TEST(PairedStats, BootstrapHandCasesAndSeed) {
  // Constant differences: every resample has mean 1.
  const std::vector<double> zeros(7, 0.0), ones(7, 1.0);
  BootstrapInterval c = PairedBootstrap(zeros, ones, 500, 1);
  EXPECT_EQ(c.lo, 1.0);
  EXPECT_EQ(c.hi, 1.0);
  // d = (0, 1): resample means 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5%
  // percentiles are 0 and 1.
  BootstrapInterval two = PairedBootstrap(std::vector<double>{0, 0}, std::vector<double>{0, 1}, 4000, 5);
  EXPECT_EQ(two.lo, 0.0);
  EXPECT_EQ(two.hi, 1.0);
  // n = 400, d = +1 on 60 items, −1 on 20: mean 0.1, se ≈ sqrt((80/400 − 0.01)/400) ≈ 0.0218; the
  // percentile interval lands near the normal one ±1.96·se.
  std::vector<double> b(400, 0), k(400, 0);
  for (int i = 0; i < 60; ++i) k[i] = 1;
  for (int i = 60; i < 80; ++i) b[i] = 1;
  const BootstrapInterval w = PairedBootstrap(b, k, 4000, 9), w2 = PairedBootstrap(b, k, 4000, 9),
                          w3 = PairedBootstrap(b, k, 4000, 10);
  EXPECT_EQ(w.lo, w2.lo);  // the seed fixes it bitwise
  EXPECT_EQ(w.hi, w2.hi);
  EXPECT_TRUE(w.lo != w3.lo || w.hi != w3.hi);
  const double se = std::sqrt((80.0 / 400 - 0.01) / 400);
  EXPECT_NEAR(w.lo, 0.1 - 1.96 * se, 0.25 * se);
  EXPECT_NEAR(w.hi, 0.1 + 1.96 * se, 0.25 * se);
}

TEST(PairedStats, CandidateKlHandValue) {
  // softmax(0, 0) = (1/2, 1/2); softmax(ln 3, 0) = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
  EXPECT_NEAR(CandidateKl(std::vector<double>{0, 0}, std::vector<double>{std::log(3.0), 0}), 0.5 * std::log(4.0 / 3),
              1e-15);
  EXPECT_EQ(CandidateKl(std::vector<double>{-3, -1, -2}, std::vector<double>{-3, -1, -2}), 0.0);
  // Shifting every score by a constant leaves the distribution alone.
  EXPECT_NEAR(CandidateKl(std::vector<double>{-3, -1}, std::vector<double>{7, 9}), 0.0, 1e-15);
}

// CompareTask on hand-made scores: flips, KL, gold log-likelihood change, mismatch errors.
TEST(PairedStats, CompareTaskOnHandMadeScores) {
  auto make = [](std::vector<std::pair<double, double>> ll) {
    TaskScores s;
    s.task = "t";
    s.shape = TaskShape::kPartialContext;  // metric acc (sum) only
    for (size_t i = 0; i < ll.size(); ++i) {
      ItemScore it;
      it.line = int(i) + 1;
      it.gold = 0;
      it.candidates = {{ll[i].first, 1, 1, false}, {ll[i].second, 1, 1, false}};
      s.items.push_back(it);
    }
    return s;
  };
  const TaskScores base = make({{-1, -2}, {-1, -2}, {-3, -2}, {-1, -2}});
  const TaskScores cell = make({{-1, -2}, {-3, -2}, {-1, -2}, {-2.5, -2}});
  auto c = CompareTask(base, cell, 1000, 1);
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->metrics.size(), 1u);
  const TaskMetricComparison& m = c->metrics[0];
  EXPECT_EQ(m.metric, "acc");
  EXPECT_DOUBLE_EQ(m.paired.base.acc, 0.75);
  EXPECT_DOUBLE_EQ(m.paired.cell.acc, 0.5);
  EXPECT_EQ(m.paired.right_to_wrong, 2);
  EXPECT_EQ(m.paired.wrong_to_right, 1);
  EXPECT_DOUBLE_EQ(m.same_choice, 0.25);
  ASSERT_TRUE(m.has_kl);
  // Per item KL of softmax(scores): 0, KL((e^-1,e^-2) ‖ (e^-3,e^-2)), its mirror, KL(.. ‖ (e^-2.5, e^-2)).
  auto kl = [](double b0, double b1, double c0, double c1) {
    return CandidateKl(std::vector<double>{b0, b1}, std::vector<double>{c0, c1});
  };
  EXPECT_NEAR(m.kl_mean, (0 + kl(-1, -2, -3, -2) + kl(-3, -2, -1, -2) + kl(-1, -2, -2.5, -2)) / 4, 1e-15);
  EXPECT_NEAR(c->dloglik_gold, (0 - 2 + 2 - 1.5) / 4, 1e-15);
  TaskScores shorter = cell;
  shorter.items.pop_back();
  EXPECT_FALSE(CompareTask(base, shorter).ok());
  TaskScores other = cell;
  other.convention = TaskConvention::kLlamaCpp;
  EXPECT_FALSE(CompareTask(base, other).ok());
}

}  // namespace
}  // namespace ql
