// Calibration windows and linear-input statistics (see calibration.h).
#include "harness/quant/calibration.h"

#include "datasets/protocol.h"
#include "datasets/text.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "harness/model/forward.h"
#include "harness/tokenizer/tokenizer.h"
#include "kernels/parallel.h"
#include "kernels/spd.h"

namespace ql {

int64_t CalibrationSet::num_tokens() const {
  int64_t n = 0;
  for (const auto& w : windows) n += int64_t(w.size());
  return n;
}

StatusOr<CalibrationSet> BuildCalibrationFromText(const Model& model, const std::string& text, int samples,
                                                  int seqlen, int64_t seed, const std::string& source) {
  if (!model.tokenizer) return Status::Errorf("calibration: the model has no tokenizer to read {}", source);
  if (samples <= 0 || seqlen <= 0)
    return Status::Errorf("calibration: samples ({}) and seqlen ({}) must be positive", samples, seqlen);
  if (model.config.max_seq_len > 0 && seqlen > model.config.max_seq_len)
    return Status::Errorf("calibration: seqlen {} exceeds the model's max_seq_len {}", seqlen,
                          model.config.max_seq_len);
  const std::vector<int> tokens = model.tokenizer->Encode(text, /*add_bos=*/false);
  CalibrationSet c;
  c.source = source;
  c.seed = seed;
  QL_ASSIGN_OR_RETURN(c.windows, SampleWindows(tokens, samples, seqlen, seed, source));
  return c;
}

StatusOr<CalibrationSet> BuildCalibration(const Model& model, const std::string& path, int samples, int seqlen,
                                          int64_t seed) {
  QL_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(path, "calibration text (calibration: data:)"));
  return BuildCalibrationFromText(model, text, samples, seqlen, seed, path);
}

std::vector<std::string> LayerLinears(int layer) {
  const std::string p = LayerPrefix(layer);
  return {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj", p + "self_attn.o_proj",
          p + "mlp.gate_proj",    p + "mlp.up_proj",      p + "mlp.down_proj"};
}

namespace {

// The requested module a pass reaches last (LayerLinears order within a layer, lm_head after every
// layer), or "" when some module is not one of those: the pass may stop at that module's input.
std::string LastInForwardOrder(const std::set<std::string>& modules, int n_layers) {
  std::string last;
  int64_t last_pos = -1;
  for (const auto& m : modules) {
    int64_t pos = -1;
    if (m == "lm_head") pos = int64_t(n_layers) * 8;
    int layer = -1;
    if (std::sscanf(m.c_str(), "model.layers.%d.", &layer) == 1 && layer >= 0) {
      const std::vector<std::string> order = LayerLinears(layer);
      const auto it = std::find(order.begin(), order.end(), m);
      if (it != order.end()) pos = int64_t(layer) * 8 + (it - order.begin());
    }
    if (pos < 0) return "";
    if (pos > last_pos) last_pos = pos, last = m;
  }
  return last;
}

}  // namespace

StatusOr<std::map<std::string, LinearStats>> CaptureLinearStats(const Model& model, const CalibrationSet& calib,
                                                                 const CaptureRequest& req) {
  std::map<std::string, LinearStats> out;
  int last_layer = -1;
  bool full = false;
  for (const auto& m : req.modules) {
    int layer = -1;
    if (std::sscanf(m.c_str(), "model.layers.%d.", &layer) == 1) last_layer = std::max(last_layer, layer);
    else full = true;
    out[m];
  }
  if (req.save_hidden) last_layer = std::max(last_layer, req.save_after_layer);
  if (out.empty() && !req.save_hidden) return out;
  ForwardHooks hooks;
  hooks.stop_after_layer = full ? -1 : last_layer;
  // Nothing past the last requested input is needed unless the residual stream is to be saved.
  if (!req.save_hidden) hooks.stop_at_input = LastInForwardOrder(req.modules, model.config.n_layers);
  hooks.start_layer = req.start_layer;
  size_t window = 0;
  if (req.save_hidden) {
    req.save_hidden->assign(calib.windows.size(), {});
    hooks.block_output = [&](int layer, const float* h, int T) {
      if (layer == req.save_after_layer)
        (*req.save_hidden)[window].assign(h, h + size_t(T) * model.config.dim);
    };
  }
  std::map<std::string, std::vector<double>> abs_sum;  // mean |x| accumulates in double
  std::map<std::string, std::vector<double>> sq_sum;   // mean x² likewise
  hooks.linear_input = [&](std::string_view path, float* x, int T, int in) {
    if (req.transform) req.transform(path, x, T, in);
    auto it = out.find(std::string(path));
    if (it == out.end()) return;
    LinearStats& st = it->second;
    if (st.in == 0) {
      st.in = in;
      if (req.absmax) st.absmax.assign(in, 0.0f);
      if (req.mean_abs) st.mean_abs.assign(in, 0.0f);
      if (req.hessian) st.xtx.assign(size_t(in) * in, 0.0);
    }
    QL_CHECK(st.in == in, "{}: input width changed ({} vs {})", path, st.in, in);
    if (req.absmax || req.mean_abs) {
      std::vector<double>& sum = abs_sum[it->first];
      if (req.mean_abs) sum.resize(in, 0.0);
      for (int t = 0; t < T; ++t) {
        const float* r = x + size_t(t) * in;
        for (int j = 0; j < in; ++j) {
          const float a = std::fabs(r[j]);
          if (req.absmax) st.absmax[j] = std::max(st.absmax[j], a);
          if (req.mean_abs) sum[j] += a;
        }
      }
    }
    if (req.mean_sq) {
      std::vector<double>& sum = sq_sum[it->first];
      sum.resize(in, 0.0);
      for (int t = 0; t < T; ++t)
        for (int j = 0; j < in; ++j) sum[j] += double(x[size_t(t) * in + j]) * x[size_t(t) * in + j];
    }
    // Upper triangle of XᵀX in double, token order (kernels/spd.h: the same bits for any thread count and
    // SIMD width); the lower triangle is mirrored at the end.
    if (req.hessian) GramUpperAdd(x, T, in, st.xtx.data(), NumThreads());
    if (req.inputs) {
      const int64_t cap = req.max_input_tokens < 0 ? INT64_MAX : req.max_input_tokens;
      const int64_t have = int64_t(st.inputs.size()) / in;
      const int64_t take = std::min<int64_t>(T, cap - have);
      if (take > 0) st.inputs.insert(st.inputs.end(), x, x + size_t(take) * in);
    }
    st.tokens += T;
    st.sequences += 1;
  };
  const int64_t vocab = model.config.vocab_size;
  std::vector<float> logits;
  for (window = 0; window < calib.windows.size(); ++window) {
    const auto& w = calib.windows[window];
    if (full && hooks.stop_at_input.empty()) logits.resize(size_t(w.size()) * vocab);
    else logits.resize(1);
    if (req.start_hidden) hooks.start_hidden = (*req.start_hidden).at(window).data();
    QL_RETURN_IF_ERROR(ForwardWindow(model, w, logits.data(), &hooks));
  }
  for (auto& [m, st] : out) {
    if (st.in == 0) return Status::Errorf("calibration: module {} was never called in the forward pass", m);
    if (req.mean_abs)
      for (int j = 0; j < st.in; ++j) st.mean_abs[j] = float(abs_sum[m][j] / double(st.tokens));
    if (req.mean_sq) {
      st.mean_sq.resize(size_t(st.in));
      for (int j = 0; j < st.in; ++j) st.mean_sq[j] = float(sq_sum[m][j] / double(st.tokens));
    }
    if (req.hessian)  // mirror the upper triangle
      for (int i = 0; i < st.in; ++i)
        for (int j = 0; j < i; ++j) st.xtx[size_t(i) * st.in + j] = st.xtx[size_t(j) * st.in + i];
  }
  return out;
}

}  // namespace ql
