// QLoRA (see qlora.h). Without dropout each step folds the fp32 master adapters into the frozen quantized
// base (W_eff = Q(W) + s·B·A), takes dL/dW_eff from train::LossAndGradients and maps it to the adapters by
// the chain rule (LoraBackward). With dropout the adapters run as their own path beside the frozen linears
// inside the trainer's layers (LoraDropoutPath), since a mask on each token's input cannot be folded into
// W; dropout 0 keeps the fold, so its cells stay bitwise what they were. Only the adapters are updated
// (AdamW, no weight decay). Evaluation likewise folds the BF16 adapters into fp32
// weights: forward.h has no linear-output hook, and the fold equals the two-matmul form
// Q(W)·x + s·B·(A·x) up to fp32 summation order (tests/harness/algo_qlora_test.cc).
#include "harness/quant/qlora.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <random>
#include <span>

#include <armadillo>

#include "harness/model/forward.h"
#include "harness/quant/calibration.h"
#include "harness/quant/lora_dropout.h"
#include "harness/quant/quant_util.h"
#include "harness/train/train_model.h"
#include "harness/util/hash.h"
#include "kernels/half.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {

void LoraEffectiveWeight(const float* base, const LoraAdapter& ad, float scale, float* w_eff) {
  const int r = ad.rank, in = ad.in;
  std::vector<double> row(static_cast<size_t>(in));  // [in] (B·A) of one output row
  for (int o = 0; o < ad.out; ++o) {
    std::fill(row.begin(), row.end(), 0.0);
    for (int k = 0; k < r; ++k) {
      const double bk = ad.b[size_t(o) * r + k];
      if (bk == 0) continue;
      const float* ak = ad.a.data() + size_t(k) * in;
      for (int j = 0; j < in; ++j) row[j] += bk * ak[j];
    }
    const float* w = base + size_t(o) * in;
    float* y = w_eff + size_t(o) * in;
    for (int j = 0; j < in; ++j) y[j] = row[j] == 0 ? w[j] : float(double(w[j]) + double(scale) * row[j]);
  }
}

void LoraBackward(const float* g, const LoraAdapter& ad, float scale, float* da, float* db) {
  const int r = ad.rank, in = ad.in;
  std::vector<double> acc_a(size_t(r) * in, 0.0);  // [rank, in]
  for (int o = 0; o < ad.out; ++o) {
    const float* go = g + size_t(o) * in;
    for (int k = 0; k < r; ++k) {
      const double bk = ad.b[size_t(o) * r + k];
      const float* ak = ad.a.data() + size_t(k) * in;
      double dot = 0;  // (g·Aᵀ)[o, k]
      for (int j = 0; j < in; ++j) dot += double(go[j]) * ak[j];
      db[size_t(o) * r + k] += float(scale * dot);
      if (bk != 0)
        for (int j = 0; j < in; ++j) acc_a[size_t(k) * in + j] += bk * go[j];
    }
  }
  for (size_t i = 0; i < acc_a.size(); ++i) da[i] += float(scale * acc_a[i]);
}

LoraAdapter InitLoraAdapter(int rank, int in, int out, uint64_t seed, const std::string& name) {
  LoraAdapter ad{rank, in, out, std::vector<float>(size_t(rank) * in), std::vector<float>(size_t(out) * rank, 0.0f)};
  std::mt19937_64 rng(Fnv1a64(name, kTrainerFnvBasis) ^ (seed * 0x9E3779B97F4A7C15ull));  // name mixed with seed
  const double bound = 1.0 / std::sqrt(double(in));
  for (float& v : ad.a) v = float((double(rng() >> 11) * 0x1.0p-53 * 2.0 - 1.0) * bound);
  return ad;
}

namespace {

// ‖w − q − s·B·A‖_F of one weight [out, in].
double LoftqResidual(const float* w, const std::vector<float>& q, const LoraAdapter& ad, float scale) {
  std::vector<float> eff(q.size());  // [out, in]
  LoraEffectiveWeight(q.data(), ad, scale, eff.data());
  double s = 0;
  for (size_t i = 0; i < eff.size(); ++i) s += (double(w[i]) - eff[i]) * (double(w[i]) - eff[i]);
  return std::sqrt(s);
}

}  // namespace

Status LoftqInit(const Scheme& scheme, const float* w, float scale, int iters, std::vector<float>* q, LoraAdapter* ad,
                 std::vector<double>* trace) {
  const int out = ad->out, in = ad->in, r = ad->rank;
  q->resize(size_t(out) * in);
  QL_RETURN_IF_ERROR(FakeQuantize(scheme, w, out, in, q->data()));
  if (iters <= 0) {
    if (trace) trace->assign(1, LoftqResidual(w, *q, *ad, scale));
    return Status::Ok();
  }
  LoraAdapter zero = *ad;
  std::fill(zero.b.begin(), zero.b.end(), 0.0f);
  if (trace) trace->assign(1, LoftqResidual(w, *q, zero, scale));
  std::vector<float> target(q->size());  // [out, in] w − s·B·A
  arma::mat R(in, out);                   // column-major [in, out] = (w − q)ᵀ, so R's columns are w's rows
  for (int it = 0; it < iters; ++it) {
    if (it > 0) {
      LoraAdapter neg = *ad;
      for (float& v : neg.b) v = -v;
      LoraEffectiveWeight(w, neg, scale, target.data());
      QL_RETURN_IF_ERROR(FakeQuantize(scheme, target.data(), out, in, q->data()));
    }
    for (int o = 0; o < out; ++o)
      for (int j = 0; j < in; ++j) R(j, o) = double(w[size_t(o) * in + j]) - (*q)[size_t(o) * in + j];
    arma::mat U, V;  // Rᵀ = w − q = V·diag(S)·Uᵀ
    arma::vec S;
    if (!arma::svd_econ(U, S, V, R)) return Status::Error("loftq: the SVD of the quantization residual failed");
    for (int k = 0; k < r; ++k) {
      const double sk = k < int(S.n_elem) ? std::sqrt(S(k) / scale) : 0.0;
      for (int j = 0; j < in; ++j) ad->a[size_t(k) * in + j] = k < int(S.n_elem) ? float(sk * U(j, k)) : 0.0f;
      for (int o = 0; o < out; ++o) ad->b[size_t(o) * r + k] = k < int(S.n_elem) ? float(sk * V(o, k)) : 0.0f;
    }
    if (trace) trace->push_back(LoftqResidual(w, *q, *ad, scale));
  }
  return Status::Ok();
}

void RoundAdapterToBf16(LoraAdapter* ad) {
  for (float& v : ad->a) v = Bf16ToF32(F32ToBf16(v));
  for (float& v : ad->b) v = Bf16ToF32(F32ToBf16(v));
}

namespace {

// "model.layers.3.self_attn.q_proj" matches targets "all" or a list naming "q_proj"; lm_head never
// gets an adapter (as PEFT's all-linear), a tied head would move the embedding table.
bool IsAdapterTarget(const std::string& module, const std::string& targets) {
  if (module == "lm_head" || ModuleLayer(module) < 0) return false;
  if (targets == "all") return true;
  const std::string leaf = module.substr(module.rfind('.') + 1);
  size_t pos = 0;
  while (pos <= targets.size()) {
    const size_t comma = std::min(targets.find(',', pos), targets.size());
    if (targets.substr(pos, comma - pos) == leaf) return true;
    pos = comma + 1;
  }
  return false;
}

Status CheckTargets(const std::string& targets) {
  if (targets == "all") return Status::Ok();
  static const char* kNames[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  size_t pos = 0;
  while (pos <= targets.size()) {
    const size_t comma = std::min(targets.find(',', pos), targets.size());
    const std::string n = targets.substr(pos, comma - pos);
    if (std::find(std::begin(kNames), std::end(kNames), n) == std::end(kNames))
      return Status::Errorf("qlora: target '{}' in '{}' is not one of all, q_proj, k_proj, v_proj, o_proj, "
                            "gate_proj, up_proj, down_proj (comma-separated)", n, targets);
    pos = comma + 1;
  }
  return Status::Ok();
}

// The teacher's next-token distributions for distillation: probs [batch * t, V].
Status TeacherProbs(const Model& teacher, const std::vector<int>& tokens, int batch, int t, std::vector<float>* probs) {
  const int V = teacher.config.vocab_size;
  std::vector<float> logits(size_t(t) * V);  // [t, V]
  probs->resize(size_t(batch) * t * V);
  for (int bi = 0; bi < batch; ++bi) {
    const int* w = tokens.data() + size_t(bi) * (t + 1);
    QL_RETURN_IF_ERROR(ForwardWindow(teacher, std::span<const int>(w, size_t(t)), logits.data()));
    for (int i = 0; i < t; ++i) {
      const float* lr = logits.data() + size_t(i) * V;
      float* pr = probs->data() + (size_t(bi) * t + i) * V;
      const float mx = *std::max_element(lr, lr + V);
      double sum = 0;
      for (int j = 0; j < V; ++j) sum += std::exp(double(lr[j] - mx));
      for (int j = 0; j < V; ++j) pr[j] = float(std::exp(double(lr[j] - mx)) / sum);
    }
  }
  return Status::Ok();
}

Status CheckInputs(const Model& model, const CalibrationSet& data, const QloraOptions& o) {
  if (model.config.qkv_bias || model.config.qk_norm)
    return Status::Errorf("qlora: the trainer supports the Llama layout only (this model has {})",
                          model.config.qkv_bias ? "q/k/v biases" : "q/k norms");
  if (o.rank < 1) return Status::Errorf("qlora: rank {} must be >= 1", o.rank);
  if (!(o.dropout >= 0 && o.dropout < 1)) return Status::Errorf("qlora: dropout {} must be in [0, 1)", o.dropout);
  if (o.steps < 0 || o.batch < 1) return Status::Errorf("qlora: steps ({}) must be >= 0 and batch ({}) >= 1", o.steps, o.batch);
  if (data.windows.empty()) return Status::Error("qlora: the calibration set has no windows");
  const int t = int(data.windows[0].size()) - 1;
  if (t < 1) return Status::Error("qlora: calibration windows must have at least 2 tokens");
  if (model.config.max_seq_len > 0 && t > model.config.max_seq_len)
    return Status::Errorf("qlora: calibration seqlen {} exceeds the model context {}", t + 1, model.config.max_seq_len + 1);
  for (const auto& w : data.windows)
    if (int(w.size()) != t + 1) return Status::Error("qlora: calibration windows differ in length");
  return CheckTargets(o.targets);
}

// The adapters' trainable tensors as a Model ("<weight>.A", "<weight>.B"), so train::AdamWStep runs on them.
Model AdapterModel(const std::map<std::string, LoraAdapter>& adapters) {
  Model m;
  for (const auto& [name, ad] : adapters) {
    m.weights[name + ".A"] = Tensor{{ad.rank, ad.in}, ad.a};
    m.weights[name + ".B"] = Tensor{{ad.out, ad.rank}, ad.b};
  }
  return m;
}

}  // namespace

Status RunQlora(Model& model, const std::map<std::string, std::string>& weight_schemes, const CalibrationSet& data,
                const QloraOptions& o, QloraLog* log) {
  QL_RETURN_IF_ERROR(CheckInputs(model, data, o));
  const int t = int(data.windows[0].size()) - 1;
  const float scale = float(o.alpha / o.rank);
  std::optional<Model> teacher;
  if (o.distill) teacher = model;

  // The frozen base: every cell weight rounded once; adapters on the targeted ones.
  std::map<std::string, Scheme> schemes;
  std::map<std::string, std::vector<float>> base;  // weight name -> Q(W) [out, in]
  std::map<std::string, LoraAdapter> adapters;
  for (const auto& [name, text] : weight_schemes) {
    if (!model.Has(name)) return Status::Errorf("qlora: no weight '{}' in the model", name);
    QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(text));
    Tensor& w = model.W(name);
    std::vector<float> q(w.data.size());
    const std::string module = name.substr(0, name.size() - std::string(".weight").size());
    if (IsAdapterTarget(module, o.targets)) {
      LoraAdapter ad = InitLoraAdapter(o.rank, int(w.cols()), int(w.rows()), o.seed, name);
      Status st = LoftqInit(s, w.data.data(), scale, o.loftq_iters, &q, &ad);
      if (!st.ok()) return Status::Errorf("qlora: {}: {}", name, st.message());
      adapters.emplace(name, std::move(ad));
    } else {
      Status st = FakeQuantize(s, w.data.data(), w.rows(), w.cols(), q.data());
      if (!st.ok()) return Status::Errorf("qlora: {}: {}", name, st.message());
    }
    w.data = q;
    schemes.emplace(name, s);
    base.emplace(name, std::move(q));
  }
  if (adapters.empty()) return Status::Errorf("qlora: targets '{}' match none of the cell's quantized modules", o.targets);

  Model trainable = AdapterModel(adapters);
  train::AdamWState adam = train::NewAdamW(trainable);
  train::TensorMap agrads = train::ZerosLike(trainable);
  std::optional<LoraDropoutPath> path;  // dropout > 0: the adapters beside the frozen linears
  if (o.dropout > 0) path.emplace(&trainable, &agrads, scale, o.dropout, o.seed);
  train::TensorMap grads = path ? train::TensorMap{} : train::ZerosLike(model);  // empty: all frozen
  train::AdamWOptions aw;
  aw.beta2 = 0.999f;  // the paper's Adam beta2
  aw.weight_decay = 0.0f;
  train::ScheduleOptions sched{o.steps, std::min(o.warmup, o.steps), float(o.lr), float(o.lr)};
  std::vector<int> tokens(size_t(o.batch) * (t + 1));  // [batch, t+1]
  std::vector<float> teacher_probs;                     // [batch * t, V]
  auto fold = [&]() {
    for (auto& [name, ad] : adapters) {
      ad.a = trainable.W(name + ".A").data;
      ad.b = trainable.W(name + ".B").data;
      LoraEffectiveWeight(base.at(name).data(), ad, scale, model.W(name).data.data());
    }
  };
  for (int step = 0; step < o.steps; ++step) {
    if (path) path->SetStep(step);
    else fold();
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + uint64_t(step) + 1);  // windows of this step
    for (int bi = 0; bi < o.batch; ++bi) {
      const auto& w = data.windows[rng() % data.windows.size()];
      std::copy(w.begin(), w.end(), tokens.begin() + size_t(bi) * (t + 1));
    }
    if (teacher) QL_RETURN_IF_ERROR(TeacherProbs(*teacher, tokens, o.batch, t, &teacher_probs));
    train::SetZero(&grads);
    train::SetZero(&agrads);
    QL_ASSIGN_OR_RETURN(double loss, train::LossAndGradients(model, tokens.data(), o.batch, t, &grads,
                                                             teacher ? teacher_probs.data() : nullptr,
                                                             path ? &*path : nullptr));
    if (!std::isfinite(loss)) return Status::Errorf("qlora: the training loss is {} at step {} (lower lr?)", loss, step);
    for (const auto& [name, ad] : adapters)
      if (!path) LoraBackward(grads.at(name).data.data(), ad, scale, agrads.at(name + ".A").data.data(),
                   agrads.at(name + ".B").data.data());
    const double norm = train::GlobalNorm(agrads);
    if (o.clip > 0 && norm > o.clip) train::ScaleAll(&agrads, float(o.clip / norm));
    train::AdamWStep(&trainable, agrads, train::LearningRate(step, sched), aw, &adam);
    if (log) log->loss.push_back(loss);
  }

  // The stored adapters are BF16; evaluate with those.
  fold();
  int64_t params = 0;
  for (auto& [name, ad] : adapters) {
    RoundAdapterToBf16(&ad);
    params += int64_t(ad.rank) * (ad.in + ad.out);
    Tensor& w = model.W(name);
    LoraEffectiveWeight(base.at(name).data(), ad, scale, w.data.data());
    if (!o.merge) continue;
    std::vector<float> q(w.data.size());
    Status st = FakeQuantize(schemes.at(name), w.data.data(), w.rows(), w.cols(), q.data());
    if (!st.ok()) return Status::Errorf("qlora: re-quantizing {} after the merge: {}", name, st.message());
    w.data = q;
  }
  if (log) {
    log->adapter_params = params;
    log->adapter_bytes = o.merge ? 0 : 2 * params;
    log->training_state_bytes = 16 * params;
  }
  return Status::Ok();
}

namespace {

const nlohmann::json& QloraDefaults() {
  static const nlohmann::json j = {{"rank", 8},       {"alpha", 16.0},  {"dropout", 0.0},  {"targets", "all"},
                                   {"steps", 200},    {"batch", 8},     {"lr", 2e-4},      {"warmup", 6},
                                   {"clip", 0.3},     {"loss", "ce"},   {"merge", false}};
  return j;
}

StatusOr<QloraOptions> OptionsFrom(const nlohmann::json& p, int64_t seed) {
  QloraOptions o;
  o.rank = p["rank"].get<int>();
  o.alpha = p["alpha"].get<double>();
  o.targets = p["targets"].get<std::string>();
  o.steps = p["steps"].get<int>();
  o.batch = p["batch"].get<int>();
  o.lr = p["lr"].get<double>();
  o.warmup = p["warmup"].get<int>();
  o.clip = p["clip"].get<double>();
  o.merge = p["merge"].get<bool>();
  o.seed = uint64_t(seed);
  const std::string init = p.value("init", "lora");
  if (init != "lora" && init != "loftq")
    return Status::Errorf("qlora: init '{}' is not one of lora (PEFT's: random A, B = 0) or loftq", init);
  o.loftq_iters = init == "loftq" ? p.value("loftq_iters", 1) : 0;
  if (o.loftq_iters < 0) return Status::Errorf("qlora: loftq_iters {} must be >= 0", o.loftq_iters);
  o.dropout = p["dropout"].get<double>();
  if (!(o.dropout >= 0 && o.dropout < 1))
    return Status::Errorf("qlora: dropout {} must be in [0, 1) (PEFT's lora_dropout; QLoRA used 0.05-0.1)", o.dropout);
  const std::string loss = p["loss"].get<std::string>();
  if (loss != "ce" && loss != "kd")
    return Status::Errorf("qlora: loss '{}' is not one of ce (next-token cross-entropy), kd (distillation)", loss);
  o.distill = loss == "kd";
  return o;
}

Status ApplyQlora(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "qlora"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(QloraAlgorithm(), ctx));
  QL_ASSIGN_OR_RETURN(QloraOptions o, OptionsFrom(p, ctx.seed));
  std::map<std::string, std::string> weights;
  for (const auto& [module, scheme] : SchemeMap(ctx)) {
    const std::string key = WeightKey(model, module);
    auto [it, inserted] = weights.emplace(key, scheme);
    if (!inserted && it->second != scheme)
      return Status::Errorf("qlora: {} is quantized twice with different schemes ({} and {}: a tied lm_head?)", key,
                            it->second, scheme);
  }
  QloraLog log;
  QL_RETURN_IF_ERROR(RunQlora(model, weights, *ctx.calibration, o, &log));
  if (ctx.runtime) {
    ctx.runtime->arrays["qlora_loss"].assign(log.loss.begin(), log.loss.end());
    // [adapter parameters, stored adapter bytes, training-state bytes (fp32 adapters + grads + AdamW m, v)]
    ctx.runtime->arrays["qlora_memory"] = {float(log.adapter_params), float(log.adapter_bytes),
                                           float(log.training_state_bytes)};
    ctx.runtime->extra_weight_bytes += log.adapter_bytes;
  }
  return Status::Ok();
}

}  // namespace

AlgorithmInfo QloraAlgorithm() {
  return {"qlora",
          "QLoRA: frozen round-to-nearest base (e.g. nf4:dq) + low-rank adapters trained on the calibration "
          "windows (ce or kd loss), kept in BF16 beside the base (merge: false) or merged and re-quantized",
          QloraDefaults(), true, ApplyQlora, {}, /*changes_only_targets=*/false,
          // Added later, so cells without them keep their ids; loftq_iters is PEFT LoftQConfig's default.
          nlohmann::json{{"init", "lora"}, {"loftq_iters", 1}}};
}

}  // namespace ql
