// Quantization-aware training (see qat.h). Master weights stay in fp32; every step the quantized
// tensors are rounded from them (FakeQuantize with the cell's scheme, scales recomputed from the
// current master values), the loss and its gradient are computed on the rounded model, and the
// gradient with respect to each rounded tensor is applied to its master tensor unchanged: the
// straight-through estimator d round(w) / d w := 1 (no masking of clipped values).
#include "harness/quant/qat.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <random>

#include "harness/model/forward.h"
#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "harness/train/train_model.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {

Status RunQat(Model& model, const std::map<std::string, std::string>& weight_schemes, const CalibrationSet& data,
              const QatOptions& o, QatLog* log) {
  if (model.config.qkv_bias || model.config.qk_norm)
    return Status::Errorf("qat: the trainer supports the Llama layout only (this model has {})",
                          model.config.qkv_bias ? "q/k/v biases" : "q/k norms");
  if (o.steps < 1 || o.batch < 1) return Status::Errorf("qat: steps ({}) and batch ({}) must be >= 1", o.steps, o.batch);
  if (data.windows.empty()) return Status::Error("qat: the calibration set has no windows");
  const int t = int(data.windows[0].size()) - 1;  // each window is t+1 tokens: inputs and shifted targets
  if (t < 1) return Status::Error("qat: calibration windows must have at least 2 tokens");
  if (model.config.max_seq_len > 0 && t > model.config.max_seq_len)
    return Status::Errorf("qat: calibration seqlen {} exceeds the model context {}", t + 1, model.config.max_seq_len + 1);

  std::map<std::string, Scheme> quantized;  // weight name -> scheme
  for (const auto& [name, text] : weight_schemes) {
    if (!model.Has(name)) return Status::Errorf("qat: no weight '{}' in the model", name);
    QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(text));
    quantized.emplace(name, s);
  }

  // The teacher for distillation: the model as it came in.
  std::optional<Model> teacher;
  if (o.distill) teacher = model;
  std::vector<float> teacher_probs, teacher_logits;  // [batch * t, V], [t, V]
  const int V = model.config.vocab_size;
  if (o.distill) {
    teacher_probs.resize(size_t(o.batch) * t * V);
    teacher_logits.resize(size_t(t) * V);
  }

  // `master` is updated by AdamW; `rounded` is what the forward pass sees.
  Model& master = model;
  Model rounded = master;
  auto round_all = [&]() -> Status {
    for (const auto& [name, s] : quantized) {
      const Tensor& w = master.W(name);
      Status st = FakeQuantize(s, w.data.data(), w.rows(), w.cols(), rounded.W(name).data.data());
      if (!st.ok()) return Status::Errorf("qat: {}: {}", name, st.message());
    }
    return Status::Ok();
  };

  train::AdamWState adam = train::NewAdamW(master);
  train::TensorMap grads = train::ZerosLike(master);
  train::AdamWOptions aw;
  aw.weight_decay = float(o.weight_decay);
  train::ScheduleOptions sched;
  sched.total_steps = o.steps;
  sched.warmup_steps = std::min(o.warmup, o.steps);
  sched.max_lr = float(o.lr);
  sched.min_lr = float(o.min_lr);

  std::vector<int> tokens(size_t(o.batch) * (t + 1));  // [batch, t+1]
  const size_t n_windows = data.windows.size();
  for (int step = 0; step < o.steps; ++step) {
    QL_RETURN_IF_ERROR(round_all());
    // Windows of this step from a generator keyed by (seed, step): reproducible without history.
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + uint64_t(step) + 1);
    for (int bi = 0; bi < o.batch; ++bi) {
      const auto& w = data.windows[rng() % n_windows];
      if (int(w.size()) != t + 1) return Status::Error("qat: calibration windows differ in length");
      std::copy(w.begin(), w.end(), tokens.begin() + size_t(bi) * (t + 1));
    }
    if (teacher) {
      for (int bi = 0; bi < o.batch; ++bi) {
        const int* w = tokens.data() + size_t(bi) * (t + 1);
        QL_RETURN_IF_ERROR(ForwardWindow(*teacher, std::span<const int>(w, size_t(t)), teacher_logits.data()));
        for (int i = 0; i < t; ++i) {  // softmax of each row, in double
          const float* lr = teacher_logits.data() + size_t(i) * V;
          float* pr = teacher_probs.data() + (size_t(bi) * t + i) * V;
          const float mx = *std::max_element(lr, lr + V);
          double sum = 0;
          for (int j = 0; j < V; ++j) sum += std::exp(double(lr[j] - mx));
          for (int j = 0; j < V; ++j) pr[j] = float(std::exp(double(lr[j] - mx)) / sum);
        }
      }
    }
    train::SetZero(&grads);
    QL_ASSIGN_OR_RETURN(double loss, train::LossAndGradients(rounded, tokens.data(), o.batch, t, &grads,
                                                             teacher ? teacher_probs.data() : nullptr));
    if (!std::isfinite(loss)) return Status::Errorf("qat: the training loss is {} at step {} (lower lr?)", loss, step);
    if (!o.train_all)
      for (auto& [name, g] : grads)
        if (!quantized.count(name)) std::fill(g.data.begin(), g.data.end(), 0.0f);
    const double norm = train::GlobalNorm(grads);
    if (o.clip > 0 && norm > o.clip) train::ScaleAll(&grads, float(o.clip / norm));
    train::AdamWStep(&master, grads, train::LearningRate(step, sched), aw, &adam);
    // The tensors that are not rounded: frozen ones stay exact (weight decay would still move them),
    // trained ones go to the forward model. Rounded ones are refreshed by round_all().
    for (auto& [name, w] : rounded.weights) {
      if (quantized.count(name)) continue;
      if (o.train_all) w.data = master.W(name).data;
      else master.W(name).data = w.data;
    }
    if (log) log->loss.push_back(loss);
    if (o.progress) o.progress(step + 1, o.steps);
  }
  // The result: master weights rounded one last time; fine-tuned values for the rest.
  QL_RETURN_IF_ERROR(round_all());
  for (const auto& [name, s] : quantized) master.W(name).data = rounded.W(name).data;
  return Status::Ok();
}

namespace {

const nlohmann::json& QatDefaults() {
  static const nlohmann::json j = {{"steps", 200}, {"batch", 8},          {"lr", 1e-4},
                                   {"min_lr", 1e-5}, {"warmup", 10},      {"weight_decay", 0.0},
                                   {"clip", 1.0},    {"train_all", true}, {"loss", "ce"}};
  return j;
}

Status ApplyQat(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "qat"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(QatAlgorithm(), ctx));
  QatOptions o;
  o.steps = p["steps"].get<int>();
  o.batch = p["batch"].get<int>();
  o.lr = p["lr"].get<double>();
  o.min_lr = p["min_lr"].get<double>();
  o.warmup = p["warmup"].get<int>();
  o.weight_decay = p["weight_decay"].get<double>();
  o.clip = p["clip"].get<double>();
  o.train_all = p["train_all"].get<bool>();
  const std::string loss = p["loss"].get<std::string>();
  if (loss != "ce" && loss != "kd")
    return Status::Errorf("qat: loss '{}' is not one of ce (next-token cross-entropy), kd (distillation)", loss);
  o.distill = loss == "kd";
  o.seed = uint64_t(ctx.seed);
  o.progress = ctx.progress;
  std::map<std::string, std::string> weights;
  for (const auto& [module, scheme] : SchemeMap(ctx)) {
    const std::string key = WeightKey(model, module);
    auto [it, inserted] = weights.emplace(key, scheme);
    if (!inserted && it->second != scheme)
      return Status::Errorf("qat: {} is quantized twice with different schemes ({} and {}: a tied lm_head?)", key,
                            it->second, scheme);
  }
  QatLog log;
  QL_RETURN_IF_ERROR(RunQat(model, weights, *ctx.calibration, o, &log));
  if (ctx.runtime) ctx.runtime->arrays["qat_loss"].assign(log.loss.begin(), log.loss.end());
  return Status::Ok();
}

}  // namespace

AlgorithmInfo QatAlgorithm() {
  return {"qat",
          "quantization-aware training: fine-tune on the calibration windows with fake-quantized weights in "
          "the forward pass and the straight-through estimator, loss cross-entropy (ce) or distillation to the "
          "unquantized model (kd); weight-only, scales by the scheme's rule",
          QatDefaults(), true, ApplyQat};
}

}  // namespace ql
