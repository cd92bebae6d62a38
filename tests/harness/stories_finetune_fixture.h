// The stories260K fine-tuning fixture shared by the training-based algorithm tests (QAT, QLoRA):
// the model, 64 calibration windows of 129 tokens from the second half of the shared text, and the
// first 40 KB of it as held-out tokens (disjoint from the calibration windows). Test-only.
#pragma once

#include <map>
#include "tests/test_paths.h"
#include <string>
#include <vector>

#include "harness/io/file_io.h"
#include "harness/io/llama2c.h"
#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "harness/tokenizer/tokenizer.h"
#include "harness/train/train_loop.h"

namespace ql::testing {

struct StoriesFinetune {
  Model model;
  CalibrationSet calib;      // from the second half of the text
  std::vector<int> heldout;  // the first 40 KB of the text
};

inline const StoriesFinetune& GetStoriesFinetune() {
  static const StoriesFinetune f = [] {
    const std::string dir = std::string(QL_SHARED_DIR) + "/models/stories260K/";
    StoriesFinetune f;
    auto m = io::ReadLlama2c(dir + "stories260K.bin", dir + "tok512.bin");
    QL_CHECK(m.ok(), "{}", m.status().message());
    f.model = std::move(*m);
    auto text = io::ReadTextFile(std::string(QL_SHARED_DIR) + "/data/tinystories-valid-head.txt");
    QL_CHECK(text.ok(), "{}", text.status().message());
    const std::string& t = *text;
    auto c = BuildCalibrationFromText(f.model, t.substr(t.size() / 2), 64, 129, 3, "second half");
    QL_CHECK(c.ok(), "{}", c.status().message());
    f.calib = std::move(*c);
    f.heldout = f.model.tokenizer->Encode(t.substr(0, 40000), false);
    return f;
  }();
  return f;
}

// Held-out loss of m on the fixture's held-out tokens (8 windows of 128).
inline double StoriesHeldout(const Model& m) {
  auto l = train::HeldoutLoss(m, GetStoriesFinetune().heldout, 8, 128, 0);
  QL_CHECK(l.ok(), "{}", l.status().message());
  return *l;
}

// Every linear but lm_head at `scheme`, keyed by weight name.
inline std::map<std::string, std::string> AllLinearsExceptHead(const Model& m, const std::string& scheme) {
  std::map<std::string, std::string> w;
  for (const auto& mod : m.LinearModules())
    if (mod != "lm_head") w[WeightKey(m, mod)] = scheme;
  return w;
}

}  // namespace ql::testing
