// SmoothQuant (see smoothquant.h): mit-han-lab/smoothquant smooth.py smooth_ln_fcs_llama_like, with the
// activation scales (per-channel max |x|) captured in one pass over the calibration windows on the
// unmodified model, as calibration.py get_act_scales does.
#include "harness/quant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"

namespace ql {
std::vector<float> SmoothQuantScales(const std::vector<float>& act, const std::vector<float>& wmax, double alpha) {
  std::vector<float> s(act.size());
  for (size_t j = 0; j < act.size(); ++j) {
    const double w = std::max(double(wmax[j]), 1e-5);
    s[j] = float(std::max(std::pow(double(act[j]), alpha) / std::pow(w, 1.0 - alpha), 1e-5));
  }
  return s;
}

namespace {

// norm.weight /= s; every fc's column j *= s_j, with s_j = clamp(a_j^α / max_fc max_i |W[i,j]|^(1−α), 1e-5).
void SmoothLnFcs(Model& model, const std::string& norm, const std::vector<std::string>& fcs,
                 const std::vector<float>& act, double alpha) {
  const size_t in = act.size();
  std::vector<float> wmax(in, 0.0f);
  for (const auto& fc : fcs) {
    const Tensor& w = model.W(fc + ".weight");
    for (int64_t r = 0; r < w.rows(); ++r)
      for (size_t j = 0; j < in; ++j) wmax[j] = std::max(wmax[j], std::fabs(w.data[r * in + j]));
  }
  const std::vector<float> s = SmoothQuantScales(act, wmax, alpha);
  Tensor& g = model.W(norm);
  for (size_t j = 0; j < in; ++j) g.data[j] /= s[j];
  for (const auto& fc : fcs) {
    Tensor& w = model.W(fc + ".weight");
    for (int64_t r = 0; r < w.rows(); ++r)
      for (size_t j = 0; j < in; ++j) w.data[r * in + j] *= s[j];
  }
}

Status ApplySmoothQuant(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "smoothquant"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(SmoothQuantAlgorithm(), ctx));
  const double alpha = p["alpha"].get<double>();
  if (!(alpha >= 0 && alpha <= 1)) return Status::Errorf("smoothquant: alpha {} must be in [0, 1]", alpha);
  CaptureRequest req;
  req.absmax = true;
  for (int l = 0; l < model.config.n_layers; ++l) {
    const auto m = LayerLinears(l);
    req.modules.insert(m[0]);
    req.modules.insert(m[4]);
  }
  QL_ASSIGN_OR_RETURN(auto st, CaptureLinearStats(model, *ctx.calibration, req));
  for (int l = 0; l < model.config.n_layers; ++l) {
    const auto m = LayerLinears(l);
    const std::string pl = LayerPrefix(l);
    SmoothLnFcs(model, pl + "input_layernorm.weight", {m[0], m[1], m[2]}, st.at(m[0]).absmax, alpha);
    SmoothLnFcs(model, pl + "post_attention_layernorm.weight", {m[4], m[5]}, st.at(m[4]).absmax, alpha);
  }
  return RtnAll(model, ctx);
}

}  // namespace

AlgorithmInfo SmoothQuantAlgorithm() {
  return {"smoothquant",
          "SmoothQuant (Xiao et al. 2023): s = a^alpha / w^(1-alpha) folded into the RMSNorms before "
          "q/k/v and gate/up, then RTN; pair with an activation scheme such as W8A8 (docs/algorithms.md §3)",
          {{"alpha", 0.5}}, true, ApplySmoothQuant};
}

}  // namespace ql
