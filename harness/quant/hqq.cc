// HQQ (see hqq.h). Follows mobiusml/hqq optimize_weights_proximal_legacy step for step (paper: Badri & Shaji,
// "Half-Quadratic Quantization of Large Machine Learning Models", 2023), per group of one row:
//   W_q = clamp(round(W/s + z), 0, qmax);  W_r = (W_q − z)·s;  W_e = shrink_p(W − W_r, beta);
//   z ← mean(W_q − (W − W_e)/s);  beta ← kappa·beta;  stop when mean |W − W_r| stops decreasing.
// Deviations: the scale and the starting zero are the scheme's own (int<b>:asym: range widened to include 0,
// integer zero; HQQ starts from min/max without that widening and an unrounded zero), and the zero that
// leaves is the best iterate's (the reference keeps the last one), in fp16 as the reference stores it (its
// bytes reported beyond the scheme's), or rounded to the scheme's integer grid [0, qmax] with `zero: int`.
#include "harness/quant/hqq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "harness/quant/quant_util.h"
#include "kernels/half.h"
#include "kernels/quantizer.h"

namespace ql {
namespace {

inline float RoundEven(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5·2^23: ties to even (|v| < 2^22 after the clamp)
  return (v + kMagic) - kMagic;
}

// One group: x [n], scale s > 0, zero z (continuous while optimising). Returns mean |x − W_r|.
struct Group {
  const float* x;
  int64_t n;
  float s;
  int qmax;
  float Quant(float v, float z) const { return std::clamp(RoundEven(v / s + z), 0.0f, float(qmax)); }
  double MeanAbsError(float z) const {
    double e = 0;
    for (int64_t k = 0; k < n; ++k) e += std::fabs(double(x[k]) - double((Quant(x[k], z) - z) * s));
    return e / double(n);
  }
  // One half-quadratic iteration: the new zero from the current one.
  float Step(float z, float beta, float p) const { return HqqZeroStep(x, n, s, qmax, z, beta, p); }
};

// Optimises one group's zero from the scheme's integer zero z0; returns the zero to store (fp16 or integer),
// never one worse than z0.
float OptimiseZero(const Group& g, int32_t z0, const HqqOptions& opt, std::vector<double>* trace) {
  float z = float(z0), best_z = z;
  double best = std::numeric_limits<double>::infinity();
  float beta = float(opt.beta);
  for (int i = 0; i < opt.iters; ++i) {
    const double err = g.MeanAbsError(z);
    if (trace) trace->push_back(err);
    if (err < best) {
      best = err;
      best_z = z;
    } else if (opt.early_stop) {
      break;
    }
    z = g.Step(z, beta, float(opt.lp_norm));
    beta *= float(opt.kappa);
  }
  const float stored = opt.fp16_zero ? F16ToF32(F32ToF16(best_z))
                                     : std::clamp(RoundEven(best_z), 0.0f, float(g.qmax));
  return g.MeanAbsError(stored) <= g.MeanAbsError(float(z0)) ? stored : float(z0);
}

}  // namespace

float HqqShrink(float x, float beta, float p) {
  const float ax = std::fabs(x);
  const float t = ax - std::pow(ax + 1e-8f, p - 1.0f) / beta;
  return t > 0 ? std::copysign(t, x) : 0.0f;
}

float HqqZeroStep(const float* x, int64_t n, float s, int qmax, float z, float beta, float p) {
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) {
    const float q = std::clamp(RoundEven(x[k] / s + z), 0.0f, float(qmax));
    const float we = HqqShrink(x[k] - (q - z) * s, beta, p);
    sum += double(q) - double((x[k] - we) / s);
  }
  return float(sum / double(n));
}

Status HqqQuantizeWeight(const Scheme& scheme, float* w, int64_t rows, int64_t cols, const HqqOptions& opt,
                         std::vector<double>* trace, int64_t* extra_bytes) {
  const Granularity g = scheme.granularity;
  const bool per_row = g == Granularity::kGroup || g == Granularity::kChannel || g == Granularity::kToken;
  if (scheme.is_block || scheme.int_mode != IntMode::kAsym || !per_row || scheme.clip != ClipRule::kMax)
    return Status::Errorf("hqq optimises zero points: {} is not an integer asym scheme of g<N> or channel "
                          "granularity with max clipping (use e.g. int4:g32:asym)", ToString(scheme));
  if (opt.iters < 1 || !(opt.beta > 0) || !(opt.kappa >= 1) || !(opt.lp_norm > 0 && opt.lp_norm <= 1))
    return Status::Errorf("hqq: iters {} >= 1, beta {} > 0, kappa {} >= 1 and lp_norm {} in (0, 1] are needed",
                          opt.iters, opt.beta, opt.kappa, opt.lp_norm);
  QL_ASSIGN_OR_RETURN(QuantizedTensor qt, Quantize(scheme, w, rows, cols));  // the scheme's scales and zeros
  const int qmax = (1 << qt.code_bits) - 1;
  const int64_t gc = qt.tiles.grid_cols, tc = qt.tiles.tile_cols;
  if (extra_bytes) *extra_bytes = opt.fp16_zero ? 2 * rows * gc - int64_t(qt.zeros.size()) : 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < gc; ++t) {
      const int64_t c0 = t * tc, n = std::min(cols, c0 + tc) - c0;
      const float s = qt.Scale(r * gc + t);
      float* x = w + r * cols + c0;  // [n]
      if (!(s > 0)) {                // an all-zero group (or an underflowed scale) stays the scheme's 0
        std::fill(x, x + n, 0.0f);
        continue;
      }
      const Group grp{x, n, s, qmax};
      const float z = OptimiseZero(grp, qt.ZeroPoint(r * gc + t), opt, r == 0 && t == 0 ? trace : nullptr);
      for (int64_t k = 0; k < n; ++k) x[k] = (grp.Quant(x[k], z) - z) * s;
    }
  }
  return Status::Ok();
}

namespace {

const nlohmann::json& HqqDefaults() {
  static const nlohmann::json j = {
      {"lp_norm", 0.7}, {"beta", 10.0}, {"kappa", 1.01}, {"iters", 20}, {"early_stop", true}, {"zero", "fp16"}};
  return j;
}

Status ApplyHqq(Model& model, const AlgorithmContext& ctx) {
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(HqqAlgorithm(), ctx));
  HqqOptions opt;
  opt.lp_norm = p["lp_norm"].get<double>();
  opt.beta = p["beta"].get<double>();
  opt.kappa = p["kappa"].get<double>();
  opt.iters = p["iters"].get<int>();
  opt.early_stop = p["early_stop"].get<bool>();
  const std::string zero = p["zero"].get<std::string>();
  if (zero != "fp16" && zero != "int")
    return Status::Errorf("hqq: zero '{}' must be fp16 (the reference's storage) or int (the scheme's)", zero);
  opt.fp16_zero = zero == "fp16";
  for (const auto& [module, text] : SchemeMap(ctx)) {
    QL_ASSIGN_OR_RETURN(Scheme scheme, ParseScheme(text));
    Tensor& w = model.W(WeightKey(model, module));
    int64_t extra = 0;
    Status s = HqqQuantizeWeight(scheme, w.data.data(), w.rows(), w.cols(), opt, nullptr, &extra);
    if (!s.ok()) return Status::Errorf("hqq on {}: {}", module, s.message());
    if (ctx.runtime) ctx.runtime->extra_weight_bytes += extra;  // the fp16 zeros, in the cell's sizes
  }
  return Status::Ok();
}

}  // namespace

AlgorithmInfo HqqAlgorithm() {
  return {"hqq",
          "HQQ (Badri & Shaji 2023): calibration-free half-quadratic optimisation of each group's zero point "
          "for an lp-norm (p = 0.7) weight error; integer asym schemes (docs/algorithms.md)",
          HqqDefaults(), false, ApplyHqq, {}, /*changes_only_targets=*/true};
}

}  // namespace ql
