// Calibration data for the calibrated algorithms (GPTQ, AWQ, SmoothQuant, …): token windows sampled
// deterministically from a text, and on-demand capture of statistics of linear-layer inputs through
// ForwardHooks::linear_input. Not an algorithm: it only observes the model.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "harness/model/model.h"
#include "kernels/status.h"

namespace ql {

// N windows of L tokens each, sampled from one text.
struct CalibrationSet {
  std::string source;                   // the text file
  std::vector<std::vector<int>> windows;  // [N][L] token ids
  int64_t seed = 0;
  int64_t num_tokens() const;
};

// Tokenizes `text` with the model's tokenizer and takes `samples` windows of `seqlen` tokens at
// random starts in [0, n_tokens - seqlen] (std::mt19937_64(seed)() % range, so the same
// arguments give the same windows everywhere), as GPTQ's get_wikitext2 / get_c4 do (no BOS added).
// Errors name the file when it is missing or has fewer than seqlen + 1 tokens.
StatusOr<CalibrationSet> BuildCalibration(const Model& model, const std::string& path, int samples, int seqlen,
                                          int64_t seed);
StatusOr<CalibrationSet> BuildCalibrationFromText(const Model& model, const std::string& text, int samples,
                                                  int seqlen, int64_t seed, const std::string& source);

// What to collect for one linear input (shared inputs like q/k/v are the same vector, so asking for
// any one of them is enough).
struct CaptureRequest {
  std::set<std::string> modules;   // module paths, e.g. "model.layers.0.self_attn.q_proj"
  bool absmax = false;             // per input channel max |x|
  bool mean_abs = false;           // per input channel mean |x|
  bool mean_sq = false;            // per input channel mean x² (the diagonal of XᵀX / tokens)
  bool hessian = false;            // XᵀX, double, [in, in]
  bool inputs = false;             // the raw inputs, [tokens, in] (every window concatenated)
  int64_t max_input_tokens = -1;   // keep at most this many rows of raw inputs (-1: all)
  // Layer-at-a-time passes: start at start_layer from the saved residual streams (one [L, dim] per
  // window), and/or save the residual stream after layer save_after_layer into *save_hidden.
  int start_layer = 0;
  const std::vector<std::vector<float>>* start_hidden = nullptr;
  int save_after_layer = -1;
  std::vector<std::vector<float>>* save_hidden = nullptr;
  // Run on every linear input before anything is recorded (an algorithm's online transform, e.g.
  // rotation's R4 before down_proj), so the statistics are of the inputs the linears see at evaluation.
  std::function<bool(std::string_view module_path, float* x, int T, int in)> transform;
};

struct LinearStats {
  int in = 0;
  int64_t tokens = 0;              // rows seen
  int64_t sequences = 0;           // windows seen
  std::vector<float> absmax;       // [in]
  std::vector<float> mean_abs;     // [in]
  std::vector<float> mean_sq;      // [in]
  std::vector<double> xtx;         // [in, in] Σ_t x_t x_tᵀ (not yet scaled)
  std::vector<float> inputs;       // [rows, in]
};

// Runs every calibration window through ForwardWindow once and returns the statistics of the
// requested modules' inputs. Unless the residual stream is saved, the pass stops at the input of the
// requested module it reaches last (ForwardHooks::stop_at_input: that linear's product and all after it
// are skipped); else after the last layer any requested module lives in.
StatusOr<std::map<std::string, LinearStats>> CaptureLinearStats(const Model& model, const CalibrationSet& calib,
                                                                 const CaptureRequest& req);

// Module paths of one decoder layer, in forward order.
std::vector<std::string> LayerLinears(int layer);

}  // namespace ql
