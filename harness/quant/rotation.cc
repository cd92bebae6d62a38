// Hadamard rotation (see rotation.h). Placement follows spcl/QuaRot rotation_utils.py (fuse norms,
// rotate embeddings / attention inputs / outputs / MLP / head with Q) and SpinQuant's per-head R2 on
// v_proj outputs and o_proj inputs. Both repos also mean-center embedding rows; that is exact only for
// LayerNorm, so it is skipped here (docs/algorithms.md §5).
#include "harness/quant/rotation.h"

#include <cblas.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <random>

#include "harness/quant/gptq.h"
#include "harness/quant/quant_util.h"
#include "kernels/hadamard.h"

namespace ql {
namespace {

// W[rows, n] ← W · R   (R: [n, n])
void RightMul(Tensor& w, const std::vector<float>& r, int64_t n) {
  const int64_t rows = int64_t(w.data.size()) / n;
  std::vector<float> out(w.data.size());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(n), int(n), 1.0f, w.data.data(), int(n),
              r.data(), int(n), 0.0f, out.data(), int(n));
  w.data.swap(out);
}

// W[n, cols] ← Rᵀ · W   (R: [n, n])
void LeftMulT(Tensor& w, const std::vector<float>& r, int64_t n) {
  const int64_t cols = int64_t(w.data.size()) / n;
  std::vector<float> out(w.data.size());
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(n), int(cols), int(n), 1.0f, r.data(), int(n),
              w.data.data(), int(cols), 0.0f, out.data(), int(cols));
  w.data.swap(out);
}

// W[:, j] *= g[j]; g ← 1.
void FuseNorm(Model& m, const std::string& norm, const std::vector<std::string>& weights) {
  Tensor& g = m.W(norm);
  for (const auto& name : weights) {
    Tensor& w = m.W(name);
    const int64_t in = w.cols();
    for (int64_t r = 0; r < w.rows(); ++r)
      for (int64_t j = 0; j < in; ++j) w.data[r * in + j] *= g.data[j];
  }
  std::fill(g.data.begin(), g.data.end(), 1.0f);
}

}  // namespace

StatusOr<std::vector<float>> HadamardR1(int dim, uint64_t seed) {
  QL_ASSIGN_OR_RETURN(HadamardPlan plan, PlanHadamard(dim));
  std::vector<float> r1 = HadamardMatrixExplicit(plan);  // [dim, dim]
  std::mt19937_64 rng(seed);
  for (int i = 0; i < dim; ++i)  // R1 = diag(±1) · H/√dim: row i scaled by a random sign
    if (rng() & 1)
      for (int j = 0; j < dim; ++j) r1[size_t(i) * dim + j] = -r1[size_t(i) * dim + j];
  return r1;
}

StatusOr<std::vector<float>> HadamardR2(int head_dim) {
  QL_ASSIGN_OR_RETURN(HadamardPlan plan, PlanHadamard(head_dim));
  return HadamardMatrixExplicit(plan);  // [hd, hd]
}

Status RotateModel(Model& model, const RotationOptions& opt,
                   std::function<void(std::string_view, float*, int, int)>* online_r4, std::string* note,
                   std::vector<float>* r1_out) {
  if (r1_out) r1_out->clear();
  ModelConfig& c = model.config;
  const int D = c.dim, F = c.hidden_dim, hd = c.head_dim;
  if (c.tied_embeddings) {  // the head gets its own copy before the two are rotated differently
    model.weights["lm_head.weight"] = model.W("model.embed_tokens.weight");
    c.tied_embeddings = false;
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const auto m = [&](const char* s) { return LayerPrefix(l) + s; };
    FuseNorm(model, m("input_layernorm.weight"),
             {m("self_attn.q_proj.weight"), m("self_attn.k_proj.weight"), m("self_attn.v_proj.weight")});
    FuseNorm(model, m("post_attention_layernorm.weight"), {m("mlp.gate_proj.weight"), m("mlp.up_proj.weight")});
  }
  FuseNorm(model, "model.norm.weight", {"lm_head.weight"});

  if (opt.r1) {
    std::vector<float> r1 = opt.r1_matrix;  // [D, D]
    if (r1.empty()) {
      QL_ASSIGN_OR_RETURN(r1, HadamardR1(D, opt.seed));
    }
    if (r1.size() != size_t(D) * D) return Status::Errorf("rotation: R1 has {} entries, not {}x{}", r1.size(), D, D);
    RightMul(model.W("model.embed_tokens.weight"), r1, D);
    RightMul(model.W("lm_head.weight"), r1, D);
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string p = LayerPrefix(l);
      for (const char* s : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"})
        RightMul(model.W(p + s + ".weight"), r1, D);
      LeftMulT(model.W(p + "self_attn.o_proj.weight"), r1, D);
      LeftMulT(model.W(p + "mlp.down_proj.weight"), r1, D);
    }
    if (r1_out) *r1_out = std::move(r1);
  }
  if (opt.r2) {
    std::vector<float> r2_default;  // [hd, hd]
    if (opt.r2_matrices.empty()) {
      QL_ASSIGN_OR_RETURN(r2_default, HadamardR2(hd));
    } else if (opt.r2_matrices.size() != size_t(c.n_layers)) {
      return Status::Errorf("rotation: {} R2 matrices for {} layers", opt.r2_matrices.size(), c.n_layers);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const std::vector<float>& r2 = opt.r2_matrices.empty() ? r2_default : opt.r2_matrices[l];
      if (r2.size() != size_t(hd) * hd) return Status::Errorf("rotation: R2 of layer {} is not {}x{}", l, hd, hd);
      const std::string p = LayerPrefix(l) + "self_attn.";
      // v head h (rows h·hd..): W_v,h ← R2ᵀ W_v,h (and its bias), so v_h ← v_h·R2 as a row.
      Tensor& wv = model.W(p + "v_proj.weight");
      for (int h = 0; h < c.n_kv_heads; ++h) {
        Tensor blk{{hd, D}, std::vector<float>(wv.data.begin() + size_t(h) * hd * D,
                                               wv.data.begin() + size_t(h + 1) * hd * D)};
        LeftMulT(blk, r2, hd);
        std::copy(blk.data.begin(), blk.data.end(), wv.data.begin() + size_t(h) * hd * D);
        if (model.Has(p + "v_proj.bias")) {
          Tensor b{{hd, 1}, std::vector<float>(model.W(p + "v_proj.bias").data.begin() + h * hd,
                                               model.W(p + "v_proj.bias").data.begin() + (h + 1) * hd)};
          LeftMulT(b, r2, hd);
          std::copy(b.data.begin(), b.data.end(), model.W(p + "v_proj.bias").data.begin() + h * hd);
        }
      }
      // o_proj input columns of each query head: W_o[:, h] ← W_o[:, h]·R2.
      Tensor& wo = model.W(p + "o_proj.weight");
      const int qo = c.n_heads * hd;
      std::vector<float> tmp(hd);
      for (int r = 0; r < D; ++r)
        for (int h = 0; h < c.n_heads; ++h) {
          float* row = &wo.data[size_t(r) * qo + h * hd];
          for (int j = 0; j < hd; ++j) {
            float s = 0;
            for (int i = 0; i < hd; ++i) s += row[i] * r2[size_t(i) * hd + j];
            tmp[j] = s;
          }
          std::copy(tmp.begin(), tmp.end(), row);
        }
    }
  }
  if (opt.r4) {
    auto plan = PlanHadamard(F);
    if (!plan.ok()) {
      if (note) *note = fmt::format("R4 skipped: {}", plan.status().message());
    } else {
      // W_down ← W_down · R4ᵀ offline; x ← R4 x online: W_down·x unchanged.
      const std::vector<float> r4 = HadamardMatrixExplicit(*plan);  // [F, F]
      std::vector<float> r4t(r4.size());
      for (int i = 0; i < F; ++i)
        for (int j = 0; j < F; ++j) r4t[size_t(j) * F + i] = r4[size_t(i) * F + j];
      for (int l = 0; l < c.n_layers; ++l) RightMul(model.W(LayerPrefix(l) + "mlp.down_proj.weight"), r4t, F);
      if (online_r4) {
        auto shared = std::make_shared<HadamardPlan>(std::move(*plan));
        *online_r4 = [shared](std::string_view path, float* x, int T, int in) {
          if (!path.ends_with("mlp.down_proj")) return;
          QL_CHECK(in == shared->n, "{}: input width {} != R4 size {}", path, in, shared->n);
          for (int t = 0; t < T; ++t) ApplyHadamard(*shared, x + size_t(t) * in);
        };
      }
    }
  }
  return Status::Ok();
}

namespace {

Status ApplyRotation(Model& model, const AlgorithmContext& ctx) {
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(RotationAlgorithm(), ctx));
  RotationOptions opt;
  opt.r1 = p["r1"].get<bool>();
  opt.r2 = p["r2"].get<bool>();
  opt.r4 = p["r4"].get<bool>();
  opt.seed = uint64_t(ctx.seed);
  const std::string quantizer = p["quantizer"].get<std::string>();
  if (quantizer != "rtn" && quantizer != "gptq")
    return Status::Errorf("rotation: quantizer '{}' is not one of rtn, gptq", quantizer);
  if (quantizer == "gptq") QL_RETURN_IF_ERROR(NeedCalibration(ctx, "rotation with quantizer: gptq"));
  if (opt.r4 && !ctx.runtime) return Status::Error("rotation: R4 needs the runner's runtime hooks");
  std::function<void(std::string_view, float*, int, int)> r4;
  std::string note;
  std::vector<float> r1;
  QL_RETURN_IF_ERROR(RotateModel(model, opt, &r4, &note, &r1));
  if (!note.empty()) std::cerr << "rotation: " << note << "\n";
  return QuantizeRotatedModel(model, ctx, std::move(r4), std::move(r1), quantizer, p["gptq"], "rotation");
}

}  // namespace

Status QuantizeRotatedModel(Model& model, const AlgorithmContext& ctx,
                            std::function<void(std::string_view, float*, int, int)> r4, std::vector<float> r1_in,
                            const std::string& quantizer, const nlohmann::json& gptq_params, const std::string& who) {
  if (quantizer != "rtn" && quantizer != "gptq")
    return Status::Errorf("{}: quantizer '{}' is not one of rtn, gptq", who, quantizer);
  auto r1 = std::make_shared<std::vector<float>>(std::move(r1_in));
  if (r4) {
    if (!ctx.runtime) return Status::Errorf("{}: R4 needs the runner's runtime hooks", who);
    ctx.runtime->linear_input = [r4](std::string_view path, float* x, int T, int in) {
      r4(path, x, T, in);
      return false;  // rotated, not quantized: the cell's activation scheme still applies
    };
  }
  if (ctx.runtime && !r1->empty()) {
    // Reference residual rows h [T, D] → h·R1, the rotated model's basis.
    ctx.runtime->residual_to_model_basis = [r1](float* h, int T, int D) {
      QL_CHECK(size_t(D) * D == r1->size(), "residual width {} != R1 size", D);
      std::vector<float> out(size_t(T) * D);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, D, 1.0f, h, D, r1->data(), D, 0.0f, out.data(),
                  D);
      std::copy(out.begin(), out.end(), h);
    };
  }
  if (ctx.runtime && ctx.module_schemes)
    for (const auto& [mod, scheme] : *ctx.module_schemes) {
      const std::string key = WeightKey(model, mod);
      ctx.runtime->weights_before_rounding[key] = model.W(key).data;
    }
  // lm_head is its own tensor now; the cell's "lm_head" entry names it.
  if (quantizer == "gptq") {
    // GPTQ on the rotated model, with its own parameters (checked against GPTQ's defaults); the
    // runtime (online R4) is in place, so its calibration passes see the rotated inputs.
    AlgorithmContext g = ctx;
    g.params = gptq_params;
    return GptqAlgorithm().apply(model, g);
  }
  return RtnAll(model, ctx);
}

AlgorithmInfo RotationAlgorithm() {
  AlgorithmInfo info{
      "rotation",
      "QuaRot/SpinQuant-style Hadamard rotation (norm fusion, R1 random ±1·H on the residual, R2 per "
      "head on v/o, R4 online before down_proj), then RTN or GPTQ (quantizer, gptq: {GPTQ parameters}) "
      "(docs/algorithms.md §5/§6)",
      {{"r1", true}, {"r2", true}, {"r4", true}, {"quantizer", "rtn"}, {"gptq", nlohmann::json::object()}},
      false,
      ApplyRotation};
  info.needs_calibration_for = [](const nlohmann::json& params) {
    return params.contains("quantizer") && params["quantizer"] == "gptq";
  };
  return info;
}

}  // namespace ql
