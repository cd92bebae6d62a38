// Static activation quantization (see static_act.h). The scale rule is the activation scheme's own
// (e.g. int8 sym: absmax/127) applied to the calibration absmax; values beyond it saturate.
#include "harness/quant/static_act.h"

#include <algorithm>
#include <map>
#include <memory>

#include "harness/quant/calibration.h"
#include "harness/quant/gptq.h"
#include "harness/quant/quant_util.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

Status ApplyStaticAct(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "static_act"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(StaticActAlgorithm(), ctx));
  if (!ctx.runtime) return Status::Error("static_act: needs the runner's runtime hooks");
  const std::string text = p["act"].get<std::string>();
  QL_ASSIGN_OR_RETURN(Scheme act, ParseScheme(text));
  const bool per_channel = act.granularity == Granularity::kChannelIn;
  if (act.is_block || !(act.granularity == Granularity::kTensor || per_channel) || act.int_mode == IntMode::kAsym)
    return Status::Errorf("static_act: act '{}' must be a symmetric element scheme with granularity tensor or "
                          "channel_in (e.g. int8:tensor, fp8_e4m3:channel_in)", text);
  CaptureRequest req;
  req.absmax = true;
  for (const auto& [m, s] : SchemeMap(ctx)) req.modules.insert(m);
  QL_ASSIGN_OR_RETURN(auto stats, CaptureLinearStats(model, *ctx.calibration, req));
  // Per module: a ColumnQuantizer over one token's [in] values with per-element (= per-channel) scales.
  auto quantizers = std::make_shared<std::map<std::string, ColumnQuantizer>>();
  for (const auto& [m, st] : stats) {
    const int in = st.in;
    ColumnQuantizer::Params params;
    params.zero.assign(in, 0);
    // Scales from the calibration range by the scheme's rule: quantize the [1, in] absmax row.
    QL_ASSIGN_OR_RETURN(ColumnQuantizer range, ColumnQuantizer::Make(act, 1, in));
    if (per_channel) {
      for (int j = 0; j < in; ++j) {
        QL_RETURN_IF_ERROR(range.FindParams(st.absmax.data(), in, j, 1));
        params.scale.push_back(range.params().scale[0]);
      }
    } else {
      QL_RETURN_IF_ERROR(range.FindParams(st.absmax.data(), in, 0, in));
      params.scale.assign(in, range.params().scale[0]);
    }
    Scheme per_row = act;  // the token's values as "rows" of one column, each with its own scale
    per_row.granularity = Granularity::kChannel;
    QL_ASSIGN_OR_RETURN(ColumnQuantizer q, ColumnQuantizer::Make(per_row, in, 1));
    q.set_params(params);
    quantizers->emplace(m, std::move(q));
  }
  QL_RETURN_IF_ERROR(RtnAll(model, ctx));
  ctx.runtime->linear_input = [quantizers](std::string_view path, float* x, int T, int in) {
    auto it = quantizers->find(std::string(path));
    if (it == quantizers->end()) return false;
    std::vector<float> out(in);
    for (int t = 0; t < T; ++t) {
      it->second.QuantizeColumn(x + size_t(t) * in, out.data());
      std::copy(out.begin(), out.end(), x + size_t(t) * in);
    }
    return true;
  };
  return Status::Ok();
}

}  // namespace

AlgorithmInfo StaticActAlgorithm() {
  return {"static_act",
          "static activation quantization: per-tensor or per-channel scales fixed from the calibration "
          "max |x| (param act, e.g. int8:tensor), weights RTN with the cell's scheme",
          {{"act", "int8:tensor"}}, true, ApplyStaticAct};
}

}  // namespace ql
