// GPTAQ (see gptaq.h): P from the cross-covariance, the fp stream, and the registry entry. Follows the
// authors' reference (Intelligent-Computing-Lab-Yale/GPTAQ, fake_quant/gptaq_utils.py) in H, D, P, α and the
// true-sequential order, with one deviation: across a lazy batch boundary the reference's update uses the
// batch's quantized columns where inside a batch it uses their pre-rounding values; here both use the
// pre-rounding values (the paper's w_q), so the result does not depend on the blocksize (docs/algorithms.md §14).
#include "harness/quant/gptaq.h"

#include <algorithm>

#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"
#include "kernels/spd.h"

namespace ql {

std::vector<float> GptaqP(const GptqFactor& f, std::vector<double> d, double alpha) {
  const int64_t n = f.cols;
  QL_CHECK(int64_t(d.size()) == n * n, "cross-covariance {} for {} columns", d.size(), n);
  // P = α·triu(D·Uᵀ, 1)·U in double with kernels/spd.h's CrossAdd (c += aᵀb, deterministic): D permuted and
  // its dead columns zeroed, U from the factor (float, as GPTQ runs it).
  std::vector<double> dt(size_t(n * n)), ut(size_t(n * n)), u(size_t(n * n));  // Dᵀ, Uᵀ, U: [n, n]
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t pi = f.perm[size_t(i)], pj = f.perm[size_t(j)];
      dt[size_t(j * n + i)] = f.dead[size_t(pj)] ? 0.0 : d[size_t(pi * n + pj)];
      u[size_t(i * n + j)] = ut[size_t(j * n + i)] = f.U[size_t(i * n + j)];
    }
  std::vector<double> m(size_t(n * n), 0.0);  // D·Uᵀ = (Dᵀ)ᵀ·Uᵀ
  CrossAdd(dt.data(), ut.data(), n, n, n, m.data(), NumThreads());
  for (int64_t i = 0; i < n; ++i)  // (strict upper of D·Uᵀ)ᵀ, into dt
    for (int64_t j = 0; j < n; ++j) dt[size_t(j * n + i)] = j > i ? m[size_t(i * n + j)] : 0.0;
  std::fill(m.begin(), m.end(), 0.0);
  CrossAdd(dt.data(), u.data(), n, n, n, m.data(), NumThreads());  // triu(D·Uᵀ, 1)·U
  std::vector<float> p(size_t(n) * n);
  for (size_t i = 0; i < p.size(); ++i) p[i] = float(alpha * m[i]);
  return p;
}

void GptaqColumnUpdate(const std::vector<float>& p, int64_t cols, int64_t col, const float* wc, int64_t rows,
                       int64_t j0, int64_t count, int64_t i1, float* w1, float* pre) {
  std::copy_n(wc, rows, pre);
  for (int64_t j = j0; j < count; ++j) ops::Axpy(p[size_t(col * cols + i1 + j)], wc, &w1[j * rows], size_t(rows));
}

void GptaqBlockUpdate(const std::vector<float>& p, int64_t cols, int64_t rows, int64_t i1, int64_t i2,
                      const float* pre, float* wt) {
  // Wt[i2:, :] += P[i1:i2, i2:]ᵀ · Pre  ([cols − i2, rows])
  LazyBatchScratch scratch;
  LazyBatchUpdate(p, cols, rows, i1, i2, pre, 1.0f, wt, &scratch);
}

GptaqStream::GptaqStream(Model fp, const CalibrationSet* calib, double alpha, Transform transform)
    : fp_(std::move(fp)), calib_(calib), alpha_(alpha), transform_(std::move(transform)) {}

StatusOr<std::vector<float>> GptaqStream::P(int layer, const std::string& module, const LinearStats& quantized,
                                            const GptqFactor& factor) {
  CaptureRequest req;
  req.modules = {module};
  req.inputs = true;
  req.transform = transform_;
  req.start_layer = layer;
  req.start_hidden = layer > 0 ? &hidden_ : nullptr;
  QL_ASSIGN_OR_RETURN(auto stats, CaptureLinearStats(fp_, *calib_, req));
  const LinearStats& fp = stats.at(module);
  const int64_t in = quantized.in, rows = int64_t(quantized.inputs.size()) / in;
  if (fp.in != in || int64_t(fp.inputs.size()) != rows * in)
    return Status::Errorf("gptaq on {}: the fp stream has {} input rows of {}, the quantized one {} of {}", module,
                          int64_t(fp.inputs.size()) / std::max(1, fp.in), fp.in, rows, in);
  // D = (2/n)·ΔXᵀ·X̃ over the token rows ([in, in]), ΔX = X − X̃, n = #sequences as in GPTQ's H.
  std::vector<double> dx(quantized.inputs.size()), xq(quantized.inputs.size());  // [rows, in]
  for (size_t i = 0; i < dx.size(); ++i) {
    xq[i] = quantized.inputs[i];
    dx[i] = double(fp.inputs[i]) - double(quantized.inputs[i]);
  }
  std::vector<double> d(size_t(in) * in, 0.0);
  CrossAdd(dx.data(), xq.data(), rows, in, in, d.data(), NumThreads());  // ΔXᵀ·X̃ (kernels/spd.h)
  const double scale = 2.0 / double(quantized.sequences);
  for (double& v : d) v *= scale;
  return GptaqP(factor, std::move(d), alpha_);
}

Status GptaqStream::Advance(int layer) {
  CaptureRequest adv;
  adv.transform = transform_;
  adv.start_layer = layer;
  adv.start_hidden = layer > 0 ? &hidden_ : nullptr;
  adv.save_after_layer = layer;
  adv.save_hidden = &next_;
  QL_RETURN_IF_ERROR(CaptureLinearStats(fp_, *calib_, adv).status());
  hidden_.swap(next_);
  return Status::Ok();
}

namespace {

nlohmann::json GptaqDefaults() {
  nlohmann::json j = GptqAlgorithm().defaults;
  j["alpha"] = 0.25;  // the reference's default weight of the asymmetric term
  return j;
}

Status ApplyGptaq(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "gptaq"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(GptaqAlgorithm(), ctx));
  const double alpha = p["alpha"].get<double>();
  if (!(alpha >= 0)) return Status::Errorf("gptaq: alpha {} must be >= 0 (0 is GPTQ; the reference uses 0.25)", alpha);
  GptaqStream::Transform online;
  if (ctx.runtime) online = ctx.runtime->linear_input;
  GptaqStream fp(model, ctx.calibration, alpha, online);  // the model before any rounding
  return RunGptq(model, ctx, p, &fp);
}

}  // namespace

AlgorithmInfo GptaqAlgorithm() {
  return {"gptaq",
          "GPTAQ / GPTQv2 (Li et al. 2025): GPTQ with asymmetric calibration, each layer's quantized output "
          "on the quantized prefix's input matched to the full-precision model's output (docs/algorithms.md §14)",
          GptaqDefaults(), true, ApplyGptaq, {}, false, GptqAlgorithm().optional_defaults};
}

}  // namespace ql
