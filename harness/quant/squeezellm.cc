// SqueezeLLM (see squeezellm.h): one calibration pass on the unquantized model collects mean x² of every
// targeted linear's input; each weight is then fitted by its lut<b> codec with those column weights.
#include "harness/quant/squeezellm.h"

#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "kernels/format.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

// Fits one module's weight with the codec's weighted k-means; importance: [cols].
Status FitWeighted(Model& model, const std::string& module, const Scheme& scheme, const std::vector<float>& importance) {
  QL_ASSIGN_OR_RETURN(const BlockCodec* codec, FindBlockCodec(scheme.format));
  Tensor& w = model.W(WeightKey(model, module));
  if (int64_t(importance.size()) != w.cols())
    return Status::Errorf("squeezellm on {}: {} input statistics for {} columns", module, importance.size(), w.cols());
  BlockOptions opt = scheme.block;
  opt.importance = importance.data();
  QL_ASSIGN_OR_RETURN(PackedBlocks p, codec->Quantize(w.data.data(), w.rows(), w.cols(), opt));
  codec->Dequantize(p, w.data.data());
  return Status::Ok();
}

Status ApplySqueezeLlm(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "squeezellm"));
  QL_RETURN_IF_ERROR(Params(SqueezeLlmAlgorithm(), ctx).status());
  const auto schemes = SchemeMap(ctx);
  CaptureRequest req;
  req.mean_sq = true;
  if (ctx.runtime) req.transform = ctx.runtime->linear_input;
  for (const auto& [m, text] : schemes) {
    QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(text));
    auto codec = FindBlockCodec(s.format);
    if (!s.is_block || !codec.ok() || (*codec)->granularity() != "channel")
      return Status::Errorf("squeezellm fits per-row codebooks: {} of {} is not a lut<b>:channel scheme "
                            "(use lut4:channel, or another algorithm)", text, m);
    if (m != "model.embed_tokens") req.modules.insert(m);
  }
  std::map<std::string, LinearStats> stats;
  if (!req.modules.empty()) {
    QL_ASSIGN_OR_RETURN(stats, CaptureLinearStats(model, *ctx.calibration, req));
  }
  for (const auto& [m, text] : schemes) {
    if (m == "model.embed_tokens") {  // not a linear input: the unweighted fit
      QL_RETURN_IF_ERROR(RtnModule(model, m, text));
      continue;
    }
    QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(text));
    QL_RETURN_IF_ERROR(FitWeighted(model, m, s, stats.at(m).mean_sq));
  }
  return Status::Ok();
}

}  // namespace

AlgorithmInfo SqueezeLlmAlgorithm() {
  return {"squeezellm",
          "SqueezeLLM's dense part (Kim et al. 2023): lut<b>:channel codebooks by k-means weighted with the "
          "calibration inputs' mean x² per column (docs/algorithms.md)",
          nlohmann::json::object(), true, ApplySqueezeLlm, {}, /*changes_only_targets=*/true};
}

}  // namespace ql
