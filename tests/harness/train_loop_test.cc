// The training driver (harness/train/train_loop.h): a run stopped after a checkpoint and resumed in a
// fresh state reproduces the uninterrupted run's learning curve; the exported directory loads with the
// io reader and gives the same held-out loss; batches depend only on (seed, step).
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <unistd.h>

#include "harness/io/hf.h"
#include "harness/tokenizer/byte_bpe.h"
#include "harness/train/train_loop.h"
#include "tests/temp_dir.h"

namespace ql::train {
namespace {
namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

std::string Column(const std::string& line, int col) {  // col-th comma-separated field
  std::stringstream ss(line);
  std::string f;
  for (int i = 0; i <= col; ++i) std::getline(ss, f, ',');
  return f;
}

class TrainLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string train, held;
    const char* words[] = {"the", "lord", "said", "unto", "moses", "and", "land", "of", "egypt", "people"};
    for (int i = 0; i < 900; ++i) train += std::string(words[(i * 7 + i / 3) % 10]) + (i % 13 == 12 ? ".\n" : " ");
    for (int i = 0; i < 200; ++i) held += std::string(words[(i * 3 + 1) % 10]) + (i % 11 == 10 ? ".\n" : " ");
    std::ofstream(dir_ / "train.txt") << train;
    std::ofstream(dir_ / "held.txt") << held;
  }

  TrainOptions Options(const std::string& out) const {
    TrainOptions o;
    o.config.dim = 16, o.config.hidden_dim = 24, o.config.n_layers = 2, o.config.n_heads = 4;
    o.config.n_kv_heads = 2, o.config.head_dim = 4, o.config.max_seq_len = 16, o.config.tied_embeddings = true;
    o.train_text = (dir_ / "train.txt").string();
    o.heldout_text = (dir_ / "held.txt").string();
    o.tokenizer_vocab = 300;
    o.batch = 3, o.seq = 16;
    o.schedule = {.total_steps = 6, .warmup_steps = 2, .max_lr = 1e-2f, .min_lr = 1e-3f};
    o.eval_every = 2, o.eval_windows = 4, o.checkpoint_every = 3;
    o.seed = 7;
    o.out_dir = (dir_ / out).string();
    o.export_dtype = io::FloatDtype::kF32;
    return o;
  }
  qltest::TempDir dir_{"ql_train_loop"};
};

TEST_F(TrainLoop, ResumeReproducesUninterruptedCurve) {
  std::ostringstream log;
  auto full = RunTraining(Options("full"), &log);
  ASSERT_TRUE(full.ok()) << full.status().message();
  EXPECT_EQ(full->end_step, 6);

  TrainOptions first = Options("split");
  first.stop_after = 4;  // checkpoint at 3 (every 3) and at the stop (4)
  ASSERT_TRUE(RunTraining(first, &log).ok());
  // Simulate a kill after step 4's checkpoint but with a stale later row in the CSV: it must be dropped.
  std::ofstream(first.out_dir + "/learning_curve.csv", std::ios::app) << "5,0.1,9.9,,1.0,240,1.0\n";
  TrainOptions second = Options("split");
  second.resume = true;
  auto resumed = RunTraining(second, &log);
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  EXPECT_EQ(resumed->start_step, 4);
  EXPECT_EQ(resumed->end_step, 6);

  const auto a = Lines(ReadAll(Options("full").out_dir + "/learning_curve.csv"));
  const auto b = Lines(ReadAll(second.out_dir + "/learning_curve.csv"));
  ASSERT_EQ(a.size(), 7u);  // header + 6 steps
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 1; i < a.size(); ++i) {
    EXPECT_EQ(Column(a[i], 0), Column(b[i], 0));
    EXPECT_EQ(Column(a[i], 1), Column(b[i], 1)) << "lr at row " << i;
    EXPECT_NEAR(std::stod(Column(a[i], 2)), std::stod(Column(b[i], 2)), 1e-5) << "train loss at row " << i;
  }
  // Held-out loss at the end, rows 2/4/6 evaluated, 6 also being the last step.
  EXPECT_NEAR(std::stod(Column(a[6], 3)), std::stod(Column(b[6], 3)), 1e-5);
  // Loss went down over 6 steps on this repetitive text.
  EXPECT_LT(std::stod(Column(a[6], 2)), std::stod(Column(a[1], 2)));
}

TEST_F(TrainLoop, ExportLoadsAndGivesTheLoggedHeldoutLoss) {
  std::ostringstream log;
  TrainOptions o = Options("exp");
  auto s = RunTraining(o, &log);
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto model = io::ReadHfDir(o.out_dir);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(model->config.dim, 16);
  EXPECT_TRUE(fs::exists(o.out_dir + "/tokenizer.json"));
  auto tok = LoadTokenizerJson(o.out_dir + "/tokenizer.json");
  ASSERT_TRUE(tok.ok());
  EXPECT_LE((*tok)->vocab_size(), 300);
  const std::vector<int> held = (*tok)->Encode(ReadAll(o.heldout_text), false);
  auto loss = HeldoutLoss(*model, held, o.batch, o.seq, o.eval_windows);
  ASSERT_TRUE(loss.ok());
  EXPECT_NEAR(*loss, s->heldout_loss, 1e-5);  // F32 export: the same weights
}

TEST(TrainBatch, DependsOnlyOnSeedAndStep) {
  std::vector<int> corpus(1000);
  for (int i = 0; i < 1000; ++i) corpus[i] = i;
  std::vector<int> a, b, c;
  SampleBatch(corpus, 3, 17, 4, 10, &a);
  SampleBatch(corpus, 3, 17, 4, 10, &b);
  SampleBatch(corpus, 3, 18, 4, 10, &c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (int r = 0; r < 4; ++r)  // each row is 11 consecutive corpus tokens
    for (int i = 1; i < 11; ++i) EXPECT_EQ(a[r * 11 + i], a[r * 11] + i);
}

}  // namespace
}  // namespace ql::train
