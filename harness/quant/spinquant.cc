// SpinQuant (see spinquant.h). Each step builds the rotated model with rotation.cc's RotateModel (the same
// code that fuses the final rotation), rounds the quantized weights, runs the trainer's forward and
// backward (harness/train/train_model.h), and maps the weight gradients back to R1 and R2 by the chain rule
// written out below. The trainer has no online transform, so down_proj's online R4 is folded into its
// weight for training: Q(W·R4ᵀ)·x' with x' = R4·x equals (Q(W·R4ᵀ)·R4)·x.
#include "harness/quant/spinquant.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <numbers>
#include <random>
#include <span>

#include "harness/model/forward.h"
#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "harness/quant/rotation.h"
#include "harness/train/train_model.h"
#include "kernels/hadamard.h"
#include "kernels/quantizer.h"

namespace ql {
namespace {

// C[M, N] = beta·C + op(A)·op(B), row-major floats with leading dimensions (cblas_sgemm).
void Gemm(bool ta, bool tb, int M, int N, int K, const float* a, int lda, const float* b, int ldb, float beta,
          float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, a, lda,
              b, ldb, beta, c, ldc);
}

std::vector<float> ToFloat(const std::vector<double>& v) { return {v.begin(), v.end()}; }
std::vector<double> ToDouble(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Solves A·X = B for X (A, B: [n, n] row-major; both overwritten, X left in B), Gaussian elimination with
// partial pivoting. A = I + α/2·W with W skew has eigenvalues 1 + iλ, so it is never singular.
void SolveInPlace(std::vector<double>& a, std::vector<double>& b, int n) {
  for (int k = 0; k < n; ++k) {
    int piv = k;
    for (int i = k + 1; i < n; ++i)
      if (std::fabs(a[size_t(i) * n + k]) > std::fabs(a[size_t(piv) * n + k])) piv = i;
    if (piv != k)
      for (int j = 0; j < n; ++j) {
        std::swap(a[size_t(k) * n + j], a[size_t(piv) * n + j]);
        std::swap(b[size_t(k) * n + j], b[size_t(piv) * n + j]);
      }
    const double inv = 1.0 / a[size_t(k) * n + k];
    for (int i = k + 1; i < n; ++i) {
      const double f = a[size_t(i) * n + k] * inv;
      if (f == 0) continue;
      for (int j = k; j < n; ++j) a[size_t(i) * n + j] -= f * a[size_t(k) * n + j];
      for (int j = 0; j < n; ++j) b[size_t(i) * n + j] -= f * b[size_t(k) * n + j];
    }
  }
  for (int k = n - 1; k >= 0; --k) {  // back substitution, all right-hand sides at once
    const double inv = 1.0 / a[size_t(k) * n + k];
    for (int j = 0; j < n; ++j) {
      double s = b[size_t(k) * n + j];
      for (int i = k + 1; i < n; ++i) s -= a[size_t(k) * n + i] * b[size_t(i) * n + j];
      b[size_t(k) * n + j] = s * inv;
    }
  }
}

// The rotated model of this step: base with R1 and R2 applied (RotateModel; R4 is already in base).
StatusOr<Model> Rotated(const SpinQuantProblem& p, const SpinRotations& rot) {
  Model m = p.base;
  RotationOptions o;
  o.r1 = !rot.r1.empty();
  o.r2 = !rot.r2.empty();
  o.r4 = false;
  o.r1_matrix = ToFloat(rot.r1);
  for (const auto& r2 : rot.r2) o.r2_matrices.push_back(ToFloat(r2));
  QL_RETURN_IF_ERROR(RotateModel(m, o, nullptr, nullptr));
  return m;
}

// Rounds the quantized weights of m in place; down_proj then gets R4 folded back in (W ← W·R4).
Status RoundForTraining(const SpinQuantProblem& p, Model& m) {
  for (const auto& [name, s] : p.quantized) {
    if (p.identity_rounding) continue;
    Tensor& w = m.W(name);
    std::vector<float> q(w.data.size());
    Status st = FakeQuantize(s, w.data.data(), w.rows(), w.cols(), q.data());
    if (!st.ok()) return Status::Errorf("spinquant: {}: {}", name, st.message());
    w.data.swap(q);
  }
  if (p.r4.empty()) return Status::Ok();
  const int F = m.config.hidden_dim, D = m.config.dim;
  for (int l = 0; l < m.config.n_layers; ++l) {
    Tensor& w = m.W(LayerPrefix(l) + "mlp.down_proj.weight");  // [D, F]
    std::vector<float> out(w.data.size());
    Gemm(false, false, D, F, F, w.data.data(), F, p.r4.data(), F, 0.0f, out.data(), F);
    w.data.swap(out);
  }
  return Status::Ok();
}

// Gradients w.r.t. R1 [D, D] and R2 [hd, hd] of one layer (float accumulators).
struct RotGrads {
  std::vector<float> r1;
  std::vector<std::vector<float>> r2;
};

// dR1 += Bᵀ·dW for a weight W = B·R1 (B, dW: [rows, D]).
void RightR1(const std::vector<float>& b, const std::vector<float>& dw, int D, std::vector<float>* dr1) {
  const int rows = int(b.size() / D);
  Gemm(true, false, D, D, rows, b.data(), D, dw.data(), D, 1.0f, dr1->data(), D);
}

// v_proj: W_h = R2ᵀ·(B·R1)_h per KV head h (B, dW: [KV·hd, D]).
void VProjGrads(const std::vector<float>& b, const std::vector<float>& dw, const std::vector<float>& r1,
                const std::vector<float>* r2, int D, int hd, std::vector<float>* dr1, std::vector<float>* dr2) {
  const int rows = int(b.size() / D), heads = rows / hd;
  std::vector<float> u = b;  // [KV·hd, D] B·R1
  if (!r1.empty()) Gemm(false, false, rows, D, D, b.data(), D, r1.data(), D, 0.0f, u.data(), D);
  std::vector<float> du = dw;  // [KV·hd, D] dL/d(B·R1)
  if (r2)
    for (int h = 0; h < heads; ++h) {
      const size_t off = size_t(h) * hd * D;
      Gemm(false, true, hd, hd, D, u.data() + off, D, dw.data() + off, D, 1.0f, dr2->data(), hd);  // U_h·dW_hᵀ
      Gemm(false, false, hd, D, hd, r2->data(), hd, dw.data() + off, D, 0.0f, du.data() + off, D);  // R2·dW_h
    }
  if (!r1.empty()) RightR1(b, du, D, dr1);
}

// o_proj: W[:, h] = (R1ᵀ·B)[:, h]·R2 per query head h (B, dW: [D, H·hd]).
void OProjGrads(const std::vector<float>& b, const std::vector<float>& dw, const std::vector<float>& r1,
                const std::vector<float>* r2, int D, int hd, std::vector<float>* dr1, std::vector<float>* dr2) {
  const int qd = int(b.size() / D), heads = qd / hd;
  std::vector<float> pm = b;  // [D, qd] R1ᵀ·B
  if (!r1.empty()) Gemm(true, false, D, qd, D, r1.data(), D, b.data(), qd, 0.0f, pm.data(), qd);
  std::vector<float> dp = dw;  // [D, qd] dL/d(R1ᵀ·B)
  if (r2)
    for (int h = 0; h < heads; ++h) {
      const int off = h * hd;
      Gemm(true, false, hd, hd, D, pm.data() + off, qd, dw.data() + off, qd, 1.0f, dr2->data(), hd);  // P_hᵀ·dW_h
      Gemm(false, true, D, hd, hd, dw.data() + off, qd, r2->data(), hd, 0.0f, dp.data() + off, qd);   // dW_h·R2ᵀ
    }
  if (!r1.empty()) Gemm(false, true, D, D, qd, b.data(), qd, dp.data(), qd, 1.0f, dr1->data(), D);  // B·dPᵀ
}

// Maps the trainer's weight gradients (of the rounded model) to R1 and R2.
void RotationGradients(const SpinQuantProblem& p, const SpinRotations& rot, train::TensorMap& g, RotGrads* out) {
  const ModelConfig& c = p.base.config;
  const int D = c.dim, F = c.hidden_dim, hd = c.head_dim;
  const std::vector<float> r1 = ToFloat(rot.r1);
  const auto B = [&](const std::string& n) -> const std::vector<float>& { return p.base.W(n).data; };
  const auto G = [&](const std::string& n) -> std::vector<float>& { return g.at(n).data; };
  out->r1.assign(r1.size(), 0.0f);
  out->r2.assign(rot.r2.size(), std::vector<float>(size_t(hd) * hd, 0.0f));
  const bool has_r1 = !r1.empty();
  if (has_r1)
    for (const char* n : {"model.embed_tokens.weight", "lm_head.weight"}) RightR1(B(n), G(n), D, &out->r1);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = LayerPrefix(l);
    std::vector<float> r2;
    if (!rot.r2.empty()) r2 = ToFloat(rot.r2[l]);
    std::vector<float>* dr2 = rot.r2.empty() ? nullptr : &out->r2[l];
    if (has_r1)
      for (const char* s : {"self_attn.q_proj", "self_attn.k_proj", "mlp.gate_proj", "mlp.up_proj"})
        RightR1(B(pre + s + ".weight"), G(pre + s + ".weight"), D, &out->r1);
    const std::string v = pre + "self_attn.v_proj.weight", o = pre + "self_attn.o_proj.weight";
    VProjGrads(B(v), G(v), r1, dr2 ? &r2 : nullptr, D, hd, &out->r1, dr2);
    OProjGrads(B(o), G(o), r1, dr2 ? &r2 : nullptr, D, hd, &out->r1, dr2);
    if (!has_r1) continue;
    const std::string d = pre + "mlp.down_proj.weight";
    std::vector<float> dw = G(d);  // [D, F]: dL/d(the rotated weight before R4 is folded back)
    if (!p.r4.empty()) Gemm(false, true, D, F, F, G(d).data(), F, p.r4.data(), F, 0.0f, dw.data(), F);
    Gemm(false, true, D, D, F, B(d).data(), F, dw.data(), F, 1.0f, out->r1.data(), D);  // W = R1ᵀ·B: dR1 += B·dWᵀ
  }
}

}  // namespace

double CayleyStep(std::vector<double>* r, const std::vector<double>& g, int n, double lr) {
  QL_CHECK(r->size() == size_t(n) * n && g.size() == r->size(), "CayleyStep: shapes");
  std::vector<double> x(size_t(n) * n);  // RᵀG
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, r->data(), n, g.data(), n, 0.0, x.data(), n);
  std::vector<double> w(size_t(n) * n);  // ½(RᵀG − GᵀR)
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) w[size_t(i) * n + j] = 0.5 * (x[size_t(i) * n + j] - x[size_t(j) * n + i]);
  double norm1 = 0;  // max column sum of |W|
  for (int j = 0; j < n; ++j) {
    double s = 0;
    for (int i = 0; i < n; ++i) s += std::fabs(w[size_t(i) * n + j]);
    norm1 = std::max(norm1, s);
  }
  const double alpha = std::min(lr, 1.0 / (norm1 + 1e-8));
  std::vector<double> a(size_t(n) * n), m(size_t(n) * n);  // I + α/2·W, I − α/2·W
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5 * alpha * w[i], m[i] = -0.5 * alpha * w[i];
  for (int i = 0; i < n; ++i) a[size_t(i) * n + i] += 1.0, m[size_t(i) * n + i] += 1.0;
  SolveInPlace(a, m, n);  // m ← (I + α/2·W)⁻¹(I − α/2·W)
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, r->data(), n, m.data(), n, 0.0, x.data(), n);
  r->swap(x);
  return alpha;
}

StatusOr<SpinQuantProblem> MakeSpinQuantProblem(const Model& model,
                                                const std::vector<std::pair<std::string, std::string>>& module_schemes,
                                                bool r4, std::string* note) {
  const ModelConfig& c = model.config;
  if (c.qkv_bias || c.qk_norm)
    return Status::Errorf("spinquant: the trainer supports the Llama layout only (this model has {})",
                          c.qkv_bias ? "q/k/v biases" : "q/k norms");
  SpinQuantProblem p;
  p.base = model;
  p.teacher = model;
  RotationOptions o;
  o.r1 = o.r2 = false;
  o.r4 = r4;
  std::function<void(std::string_view, float*, int, int)> online;
  QL_RETURN_IF_ERROR(RotateModel(p.base, o, &online, note));  // untie, fuse norms, down_proj ← W·R4ᵀ
  if (online) {
    QL_ASSIGN_OR_RETURN(HadamardPlan plan, PlanHadamard(c.hidden_dim));
    p.r4 = HadamardMatrixExplicit(plan);  // [F, F], the matrix RotateModel used
  }
  for (const auto& [module, text] : module_schemes) {
    const std::string key = WeightKey(p.base, module);
    QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(text));
    auto [it, inserted] = p.quantized.emplace(key, s);
    if (!inserted && ToString(it->second) != ToString(s))
      return Status::Errorf("spinquant: {} is quantized twice with different schemes", key);
  }
  return p;
}

StatusOr<std::vector<float>> TeacherProbs(const SpinQuantProblem& p, const int* tokens, int b, int t) {
  const int V = p.teacher.config.vocab_size;
  std::vector<float> probs(size_t(b) * t * V), logits(size_t(t) * V);  // [b·t, V], [t, V]
  for (int bi = 0; bi < b; ++bi) {
    const int* w = tokens + size_t(bi) * (t + 1);
    QL_RETURN_IF_ERROR(ForwardWindow(p.teacher, std::span<const int>(w, size_t(t)), logits.data()));
    for (int i = 0; i < t; ++i) {  // softmax of each row, in double
      const float* lr = logits.data() + size_t(i) * V;
      float* pr = probs.data() + (size_t(bi) * t + i) * V;
      const float mx = *std::max_element(lr, lr + V);
      double sum = 0;
      for (int j = 0; j < V; ++j) sum += std::exp(double(lr[j] - mx));
      for (int j = 0; j < V; ++j) pr[j] = float(std::exp(double(lr[j] - mx)) / sum);
    }
  }
  return probs;
}

StatusOr<double> SpinQuantLoss(const SpinQuantProblem& p, const SpinRotations& rot, const int* tokens, int b, int t,
                               SpinRotations* grad, const float* teacher_probs) {
  QL_ASSIGN_OR_RETURN(Model m, Rotated(p, rot));
  QL_RETURN_IF_ERROR(RoundForTraining(p, m));
  if (!grad) return train::LossAndGradients(m, tokens, b, t, nullptr, teacher_probs);
  train::TensorMap g = train::ZerosLike(m);
  QL_ASSIGN_OR_RETURN(double loss, train::LossAndGradients(m, tokens, b, t, &g, teacher_probs));
  RotGrads rg;
  RotationGradients(p, rot, g, &rg);
  grad->r1 = ToDouble(rg.r1);
  grad->r2.clear();
  for (const auto& r2 : rg.r2) grad->r2.push_back(ToDouble(r2));
  return loss;
}

Status LearnRotations(const SpinQuantProblem& p, const CalibrationSet& data, const SpinQuantOptions& o,
                      SpinRotations* rot, SpinQuantLog* log) {
  if (o.iters < 0 || o.batch < 1 || !(o.lr > 0))
    return Status::Errorf("spinquant: iters ({}) must be >= 0, batch ({}) >= 1 and lr ({}) > 0", o.iters, o.batch,
                          o.lr);
  if (o.iters == 0) return Status::Ok();
  if (data.windows.empty()) return Status::Error("spinquant: the calibration set has no windows");
  const int t = int(data.windows[0].size()) - 1;
  if (t < 1) return Status::Error("spinquant: calibration windows must have at least 2 tokens");
  const ModelConfig& c = p.base.config;
  std::vector<int> tokens(size_t(o.batch) * (t + 1));  // [batch, t + 1]
  for (int step = 0; step < o.iters; ++step) {
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + uint64_t(step) + 1);  // as QAT: keyed by (seed, step)
    for (int bi = 0; bi < o.batch; ++bi) {
      const auto& w = data.windows[rng() % data.windows.size()];
      if (int(w.size()) != t + 1) return Status::Error("spinquant: calibration windows differ in length");
      std::copy(w.begin(), w.end(), tokens.begin() + size_t(bi) * (t + 1));
    }
    std::vector<float> teacher;  // [batch·t, V] with distill
    if (o.distill) {
      QL_ASSIGN_OR_RETURN(teacher, TeacherProbs(p, tokens.data(), o.batch, t));
    }
    SpinRotations g;
    QL_ASSIGN_OR_RETURN(double loss, SpinQuantLoss(p, *rot, tokens.data(), o.batch, t, &g,
                                                   o.distill ? teacher.data() : nullptr));
    if (!std::isfinite(loss)) return Status::Errorf("spinquant: the loss is {} at step {} (lower lr?)", loss, step);
    // The reference code's schedule: cosine from lr to 0 over the steps, no warm-up.
    const double lr = o.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * double(step) / double(o.iters)));
    if (!rot->r1.empty()) CayleyStep(&rot->r1, g.r1, c.dim, lr);
    for (size_t l = 0; l < rot->r2.size(); ++l) CayleyStep(&rot->r2[l], g.r2[l], c.head_dim, lr);
    if (log) log->loss.push_back(loss);
    if (o.progress) o.progress(step + 1, o.iters);
  }
  return Status::Ok();
}

namespace {

const nlohmann::json& SpinQuantDefaults() {
  static const nlohmann::json j = {{"iters", 100}, {"lr", 1.5}, {"batch", 8},         {"loss", "ce"},
                                   {"r1", true},    {"r2", true}, {"r4", true},         {"quantizer", "rtn"},
                                   {"gptq", nlohmann::json::object()}};
  return j;
}

StatusOr<SpinRotations> HadamardStart(const ModelConfig& c, bool r1, bool r2, uint64_t seed) {
  SpinRotations rot;
  if (r1) {
    QL_ASSIGN_OR_RETURN(std::vector<float> h, HadamardR1(c.dim, seed));
    rot.r1 = ToDouble(h);
  }
  if (r2) {
    QL_ASSIGN_OR_RETURN(std::vector<float> h, HadamardR2(c.head_dim));
    rot.r2.assign(c.n_layers, ToDouble(h));
  }
  return rot;
}

void KeepArrays(const SpinRotations& rot, const SpinQuantLog& log, AlgorithmRuntime* rt) {
  if (!rt) return;
  rt->arrays["spinquant_loss"].assign(log.loss.begin(), log.loss.end());
  if (!rot.r1.empty()) rt->arrays["spinquant_r1"] = ToFloat(rot.r1);
  std::vector<float> r2;  // [layers, hd, hd]
  for (const auto& m : rot.r2) r2.insert(r2.end(), m.begin(), m.end());
  if (!r2.empty()) rt->arrays["spinquant_r2"] = std::move(r2);
}

Status ApplySpinQuant(Model& model, const AlgorithmContext& ctx) {
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(SpinQuantAlgorithm(), ctx));
  SpinQuantOptions o;
  o.iters = p["iters"].get<int>();
  o.lr = p["lr"].get<double>();
  o.batch = p["batch"].get<int>();
  const std::string loss = p["loss"].get<std::string>();
  if (loss != "ce" && loss != "kd")
    return Status::Errorf("spinquant: loss '{}' is not one of ce (next-token cross-entropy), kd (distillation)", loss);
  o.distill = loss == "kd";
  o.seed = uint64_t(ctx.seed);
  o.progress = ctx.progress;
  const bool r1 = p["r1"].get<bool>(), r2 = p["r2"].get<bool>(), r4 = p["r4"].get<bool>();
  const std::string quantizer = p["quantizer"].get<std::string>();
  if (quantizer != "rtn" && quantizer != "gptq")
    return Status::Errorf("spinquant: quantizer '{}' is not one of rtn, gptq", quantizer);
  if (o.iters < 0) return Status::Errorf("spinquant: iters ({}) must be >= 0", o.iters);
  if (o.iters > 0 || quantizer == "gptq") QL_RETURN_IF_ERROR(NeedCalibration(ctx, "spinquant"));
  if (r4 && !ctx.runtime) return Status::Error("spinquant: R4 needs the runner's runtime hooks");
  QL_ASSIGN_OR_RETURN(SpinRotations rot, HadamardStart(model.config, r1, r2, o.seed));
  SpinQuantLog log;
  if (o.iters > 0) {
    std::string note;
    QL_ASSIGN_OR_RETURN(SpinQuantProblem prob,
                        MakeSpinQuantProblem(model, ctx.module_schemes ? *ctx.module_schemes
                                                                       : std::vector<std::pair<std::string, std::string>>{},
                                             r4, &note));
    QL_RETURN_IF_ERROR(LearnRotations(prob, *ctx.calibration, o, &rot, &log));
  }
  // The learned rotations fused exactly as the rotation algorithm fuses its Hadamard ones.
  RotationOptions ro;
  ro.r1 = r1, ro.r2 = r2, ro.r4 = r4, ro.seed = o.seed;
  ro.r1_matrix = ToFloat(rot.r1);
  for (const auto& m : rot.r2) ro.r2_matrices.push_back(ToFloat(m));
  std::function<void(std::string_view, float*, int, int)> online_r4;
  std::string note;
  std::vector<float> r1_used;
  QL_RETURN_IF_ERROR(RotateModel(model, ro, &online_r4, &note, &r1_used));
  if (!note.empty()) std::cerr << "spinquant: " << note << "\n";
  KeepArrays(rot, log, ctx.runtime);
  return QuantizeRotatedModel(model, ctx, std::move(online_r4), std::move(r1_used), quantizer, p["gptq"],
                              "spinquant");
}

}  // namespace

AlgorithmInfo SpinQuantAlgorithm() {
  AlgorithmInfo info{
      "spinquant",
      "SpinQuant: R1 (residual) and per-layer R2 (v/o heads) learned by Cayley SGD on the calibration "
      "cross-entropy (loss: ce) or KL to the unquantized model (kd) with the weights quantized in the loop (STE), "
      "from the Hadamard start; R4 online "
      "Hadamard; then RTN or GPTQ (quantizer, gptq: {GPTQ parameters}) (docs/algorithms.md §12)",
      SpinQuantDefaults(), true, ApplySpinQuant};
  info.needs_calibration_for = [](const nlohmann::json& params) {
    const bool learns = !params.contains("iters") || !params["iters"].is_number() || params["iters"] != 0;
    return learns || (params.contains("quantizer") && params["quantizer"] == "gptq");
  };
  return info;
}

}  // namespace ql
