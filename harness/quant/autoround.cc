// AutoRound (see autoround.h). Block inputs come from the partly quantized model (the reference code's
// enable_quanted_input), targets from the full-precision model on full-precision inputs; the block's
// forward and backward are the trainer's (train::LayerForward / LayerBackward), the quantizer's backward
// is the straight-through estimator written out below. The parameters kept are those of the lowest
// minibatch loss seen, the first being round to nearest (as the reference code keeps its best).
#include "harness/quant/autoround.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "harness/train/train_model.h"
#include "harness/train/train_ops.h"
#include "kernels/half.h"
#include "kernels/int_codec.h"
#include "kernels/quantizer.h"

namespace ql {
namespace {

// Round to nearest even as kernels/quantizer.cc (|v| < 2^22 after clamping), or the identity.
inline float Rne(float v, bool identity) {
  if (identity) return v;
  return float(RoundHalfEven(double(v)));
}

float StoreScale(ScaleDtype d, float s) {
  switch (d) {
    case ScaleDtype::kFp16: return F16ToF32(F32ToF16(std::min(s, 65504.0f)));
    case ScaleDtype::kBf16: return Bf16ToF32(F32ToBf16(std::min(s, BitsF32(0x7F7F0000u))));
    default: return s;
  }
}

// One tile's scale and zero point from its raw min/max and the factors.
struct TileQ {
  float s = 0, z = 0;  // stored scale, zero point (asym; rounded unless identity)
  float lo0 = 0;       // asym: min(α·min, 0); sym: unused
  bool z_in = false;   // asym: the zero point was not clamped
  bool alpha_wins = false;  // sym: α·|min| >= β·|max| (the gradient goes to α)
};

TileQ TileScale(const AutoRoundGrid& g, float lo, float hi, float alpha, float beta, bool identity) {
  TileQ q;
  const float a = alpha == 1.0f ? lo : alpha * lo, b = beta == 1.0f ? hi : beta * hi;
  if (g.asym) {
    q.lo0 = std::min(a, 0.0f);
    const float hi0 = std::max(b, 0.0f);
    q.s = StoreScale(g.scale_dtype, (hi0 - q.lo0) / g.range_div);
    if (q.s > 0 && std::isfinite(q.s)) {
      const float zr = -q.lo0 / q.s;
      q.z_in = zr >= 0 && zr <= float(g.qmax);
      q.z = Rne(std::clamp(zr, 0.0f, float(g.qmax)), identity);
    }
    return q;
  }
  q.alpha_wins = std::fabs(a) >= std::fabs(b);
  q.s = StoreScale(g.scale_dtype, std::max(std::fabs(a), std::fabs(b)) / g.range_div);
  return q;
}

// Raw min and max of every tile: [tiles] each.
void TileRanges(const AutoRoundGrid& g, const float* w, std::vector<float>* lo, std::vector<float>* hi) {
  const int64_t nt = g.tiles.num_tiles();
  lo->assign(nt, 0.0f);
  hi->assign(nt, 0.0f);
  std::vector<char> seen(nt, 0);
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t c = 0; c < g.cols; ++c) {
      const int64_t t = (r / g.tiles.tile_rows) * g.tiles.grid_cols + c / g.tiles.tile_cols;
      const float x = w[r * g.cols + c];
      if (!seen[t]) (*lo)[t] = x, (*hi)[t] = x, seen[t] = 1;
      else (*lo)[t] = std::min((*lo)[t], x), (*hi)[t] = std::max((*hi)[t], x);
    }
}

inline int64_t TileOf(const AutoRoundGrid& g, int64_t r, int64_t c) {
  return (r / g.tiles.tile_rows) * g.tiles.grid_cols + c / g.tiles.tile_cols;
}

}  // namespace

StatusOr<AutoRoundGrid> MakeAutoRoundGrid(const Scheme& s, int64_t rows, int64_t cols) {
  const std::string name = ToString(s);
  if (s.is_block || s.format.rfind("int", 0) != 0 || s.granularity == Granularity::kNone)
    return Status::Errorf("autoround: scheme {} is not a scaled integer scheme (use int<b>:g<n>, int<b>:channel, …)", name);
  if (s.clip != ClipRule::kMax)
    return Status::Errorf("autoround: scheme {} has a clip rule; AutoRound learns the clipping itself (drop it)", name);
  if (s.scale_dtype != ScaleDtype::kFp32 && s.scale_dtype != ScaleDtype::kFp16 && s.scale_dtype != ScaleDtype::kBf16)
    return Status::Errorf("autoround: scheme {}: only fp32, fp16 and bf16 scales are supported", name);
  if (s.granularity == Granularity::kChannelIn || s.granularity == Granularity::kToken)
    return Status::Errorf("autoround: scheme {}: granularity not supported for weights (use g<n>, channel or tensor)", name);
  AutoRoundGrid g;
  QL_ASSIGN_OR_RETURN(const ElementCodec* codec, FindElementCodec(s.format));
  const int bits = codec->bits(), half = 1 << (bits - 1);
  g.tiles = TilesFor(s, rows, cols);
  g.rows = rows, g.cols = cols;
  g.scale_dtype = s.scale_dtype;
  g.asym = s.int_mode == IntMode::kAsym;
  if (s.int_mode == IntMode::kSym) g.qmin = -(half - 1), g.qmax = half - 1, g.range_div = float(half - 1);
  else if (s.int_mode == IntMode::kSymFull) g.qmin = -half, g.qmax = half - 1, g.range_div = float(half) - 0.5f;
  else g.qmin = 0, g.qmax = 2 * half - 1, g.range_div = float(2 * half - 1);
  return g;
}

AutoRoundParams InitialAutoRoundParams(const AutoRoundGrid& g) {
  const size_t nt = size_t(g.tiles.num_tiles());
  return {std::vector<float>(size_t(g.rows * g.cols), 0.0f), std::vector<float>(nt, 1.0f),
          std::vector<float>(nt, 1.0f)};
}

void AutoRoundQuantize(const AutoRoundGrid& g, const float* w, const AutoRoundParams& p, bool identity, float* wq) {
  std::vector<float> lo, hi;  // [tiles]
  TileRanges(g, w, &lo, &hi);
  std::vector<TileQ> tq(lo.size());
  for (size_t t = 0; t < lo.size(); ++t) tq[t] = TileScale(g, lo[t], hi[t], p.alpha[t], p.beta[t], identity);
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t c = 0; c < g.cols; ++c) {
      const int64_t i = r * g.cols + c;
      const TileQ& t = tq[TileOf(g, r, c)];
      if (!(t.s > 0)) {
        wq[i] = 0.0f;
        continue;
      }
      const float u = w[i] / t.s + p.v[i];  // + 0.0f leaves w/s unchanged: RTN at V = 0
      const float q = std::clamp(Rne(u, identity) + t.z, float(g.qmin), float(g.qmax));
      wq[i] = (q - t.z) * t.s;
    }
}

void AutoRoundBackward(const AutoRoundGrid& g, const float* w, const AutoRoundParams& p, bool identity,
                       const float* dwq, AutoRoundParams* grad) {
  std::vector<float> lo, hi;  // [tiles]
  TileRanges(g, w, &lo, &hi);
  const size_t nt = lo.size();
  std::vector<TileQ> tq(nt);
  for (size_t t = 0; t < nt; ++t) tq[t] = TileScale(g, lo[t], hi[t], p.alpha[t], p.beta[t], identity);
  std::vector<double> d_s(nt, 0.0), d_lo0(nt, 0.0);  // dL/ds at fixed lo0, dL/dlo0 at fixed s (asym)
  grad->v.assign(p.v.size(), 0.0f);
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t c = 0; c < g.cols; ++c) {
      const int64_t i = r * g.cols + c, ti = TileOf(g, r, c);
      const TileQ& t = tq[ti];
      if (!(t.s > 0)) continue;
      const double s = t.s, gi = dwq[i];
      const double u = double(w[i] / t.s + p.v[i]);
      const double pre = double(Rne(float(u), identity)) + t.z;  // before the clamp
      const double in = (pre >= g.qmin && pre <= g.qmax) ? 1.0 : 0.0;
      const double q = std::clamp(pre, double(g.qmin), double(g.qmax));
      grad->v[i] = float(gi * s * in);  // wq = (q − z)·s, dq/dV = in
      // dwq/ds = (in·(du/ds + dz/ds) − dz/ds)·s + (q − z),  du/ds = −w/s²,  dz/ds = z_in·lo0/s² (asym)
      const double du_ds = -double(w[i]) / (s * s);
      const double dz_ds = (g.asym && t.z_in) ? double(t.lo0) / (s * s) : 0.0;
      d_s[ti] += gi * ((in * (du_ds + dz_ds) - dz_ds) * s + (q - t.z));
      if (g.asym && t.z_in) d_lo0[ti] += gi * (in - 1.0) * (-1.0 / s) * s;  // dz/dlo0 = −1/s
    }
  grad->alpha.assign(nt, 0.0f);
  grad->beta.assign(nt, 0.0f);
  for (size_t t = 0; t < nt; ++t) {
    if (!(tq[t].s > 0)) continue;
    const double rd = g.range_div;
    if (g.asym) {
      const double dlo0_da = p.alpha[t] * lo[t] < 0 ? double(lo[t]) : 0.0;  // lo0 = min(α·lo, 0)
      const double dhi0_db = p.beta[t] * hi[t] > 0 ? double(hi[t]) : 0.0;   // hi0 = max(β·hi, 0)
      grad->alpha[t] = float(d_s[t] * (-dlo0_da / rd) + d_lo0[t] * dlo0_da);  // s = (hi0 − lo0)/rd
      grad->beta[t] = float(d_s[t] * (dhi0_db / rd));
    } else if (tq[t].alpha_wins) {
      grad->alpha[t] = float(d_s[t] * std::fabs(double(lo[t])) / rd);  // s = α·|lo|/rd
    } else {
      grad->beta[t] = float(d_s[t] * std::fabs(double(hi[t])) / rd);
    }
  }
}

namespace {

// The nine tensors of decoder layer l.
std::vector<std::string> LayerTensors(int l) {
  std::vector<std::string> names;
  for (const auto& m : LayerLinears(l)) names.push_back(m + ".weight");
  names.push_back(LayerPrefix(l) + "input_layernorm.weight");
  names.push_back(LayerPrefix(l) + "post_attention_layernorm.weight");
  return names;
}

// Runs layer l of `model` on windows idx of x [n, t, D] -> out [idx.size() * t, D]; acts saved.
void BlockForward(const Model& model, int l, const std::vector<float>& x, int t, const std::vector<int>& idx,
                  const std::vector<float>& cos, const std::vector<float>& sin, std::vector<float>* out,
                  train::LayerActs* acts) {
  const int D = model.config.dim;
  out->resize(idx.size() * size_t(t) * D);
  for (size_t k = 0; k < idx.size(); ++k)
    std::copy_n(x.begin() + size_t(idx[k]) * t * D, size_t(t) * D, out->begin() + k * t * D);
  train::LayerForward(model, l, int(idx.size()), t, cos.data(), sin.data(), out, acts);
}

}  // namespace

StatusOr<double> AutoRoundBlockLoss(const Model& model, int layer, const std::vector<float>& x,
                                    const std::vector<float>& y, int t, const std::vector<int>& idx,
                                    const std::map<std::string, AutoRoundTensor>& tensors, bool identity,
                                    std::map<std::string, AutoRoundParams>* grads) {
  const ModelConfig& c = model.config;
  const int D = c.dim;
  Model blk;  // the layer's tensors only, quantized ones replaced
  blk.config = c;
  for (const auto& name : LayerTensors(layer)) blk.weights[name] = model.W(name);
  for (const auto& [name, at] : tensors) {
    if (!blk.weights.count(name)) return Status::Errorf("autoround: {} is not a tensor of layer {}", name, layer);
    AutoRoundQuantize(at.grid, model.W(name).data.data(), at.params, identity, blk.W(name).data.data());
  }
  std::vector<float> cos, sin;  // [t, hd]
  train::RopeTables(t, c.head_dim, c.rope_theta, c.rope_interleaved, &cos, &sin);
  std::vector<float> out;  // [b * t, D]
  train::LayerActs acts;
  BlockForward(blk, layer, x, t, idx, cos, sin, &out, &acts);
  const size_t n = out.size();
  double loss = 0;
  std::vector<float> dout(n);  // [b * t, D] d mean((out − y)²) / d out
  for (size_t k = 0; k < idx.size(); ++k)
    for (size_t j = 0; j < size_t(t) * D; ++j) {
      const size_t i = k * t * D + j;
      const double d = double(out[i]) - y[size_t(idx[k]) * t * D + j];
      loss += d * d;
      dout[i] = float(2.0 * d / double(n));
    }
  loss /= double(n);
  if (!grads) return loss;
  train::TensorMap g;
  for (const auto& [name, w] : blk.weights) g[name] = Tensor{w.shape, std::vector<float>(w.data.size(), 0.0f)};
  train::LayerBackward(blk, layer, int(idx.size()), t, cos.data(), sin.data(), acts, &dout, &g);
  for (const auto& [name, at] : tensors)
    AutoRoundBackward(at.grid, model.W(name).data.data(), at.params, identity, g.at(name).data.data(),
                      &(*grads)[name]);
  return loss;
}

namespace {

// One signed-gradient step: p −= lr·sign(g), then the boxes V ∈ [−0.5, 0.5], α, β ∈ [0.5, 1].
void SignStep(const AutoRoundParams& g, float lr, AutoRoundParams* p) {
  auto step = [lr](std::vector<float>& x, const std::vector<float>& d, float lo, float hi) {
    for (size_t i = 0; i < x.size(); ++i) {
      const float sg = d[i] > 0 ? 1.0f : d[i] < 0 ? -1.0f : 0.0f;
      x[i] = std::clamp(x[i] - lr * sg, lo, hi);
    }
  };
  step(p->v, g.v, -0.5f, 0.5f);
  step(p->alpha, g.alpha, 0.5f, 1.0f);
  step(p->beta, g.beta, 0.5f, 1.0f);
}

// Signed gradient descent on one layer's tensors; leaves the best parameters in *tensors.
Status OptimizeBlock(const Model& model, int l, const std::vector<float>& xq, const std::vector<float>& y, int t,
                     int n_windows, const AutoRoundOptions& o, std::map<std::string, AutoRoundTensor>* tensors) {
  const float lr0 = float(o.lr > 0 ? o.lr : 1.0 / std::max(1, o.iters));
  double best = std::numeric_limits<double>::infinity();
  std::map<std::string, AutoRoundTensor> best_tensors = *tensors;
  std::map<std::string, AutoRoundParams> grads;
  for (int it = 0; it < o.iters; ++it) {
    std::mt19937_64 rng((o.seed * 0x9E3779B97F4A7C15ull) ^ (uint64_t(l) << 32) ^ uint64_t(it + 1));
    std::vector<int> idx(std::min(o.batch, n_windows));
    for (int& i : idx) i = int(rng() % uint64_t(n_windows));
    QL_ASSIGN_OR_RETURN(double loss, AutoRoundBlockLoss(model, l, xq, y, t, idx, *tensors, false, &grads));
    if (!std::isfinite(loss)) return Status::Errorf("autoround: block {} loss is {} at step {}", l, loss, it);
    if (loss < best) best = loss, best_tensors = *tensors;
    const float lr = lr0 * (1.0f - float(it) / float(o.iters));  // linear decay to 0
    for (auto& [name, at] : *tensors) SignStep(grads.at(name), lr, &at.params);
  }
  if (o.iters > 0) *tensors = best_tensors;
  return Status::Ok();
}

// Block inputs of layer 0: the embeddings of every window, [n, t, D].
std::vector<float> EmbedWindows(const Model& model, const CalibrationSet& data) {
  const int D = model.config.dim;
  const float* emb = model.W("model.embed_tokens.weight").data.data();
  std::vector<float> x;
  x.reserve(data.windows.size() * data.windows[0].size() * D);
  for (const auto& w : data.windows)
    for (int id : w) x.insert(x.end(), emb + size_t(id) * D, emb + size_t(id + 1) * D);
  return x;
}

// x [n, t, D] <- layer l of model applied to it, a batch at a time.
void AdvanceLayer(const Model& model, int l, int t, int n, int batch, std::vector<float>* x) {
  const ModelConfig& c = model.config;
  const size_t per = size_t(t) * c.dim;
  std::vector<float> cos, sin;
  train::RopeTables(t, c.head_dim, c.rope_theta, c.rope_interleaved, &cos, &sin);
  for (int i0 = 0; i0 < n; i0 += batch) {
    std::vector<int> idx;
    for (int i = i0; i < std::min(n, i0 + batch); ++i) idx.push_back(i);
    std::vector<float> out;
    train::LayerActs acts;
    BlockForward(model, l, *x, t, idx, cos, sin, &out, &acts);
    std::copy(out.begin(), out.end(), x->begin() + size_t(i0) * per);
  }
}

// The block objective on every window at the current parameters, a batch of windows at a time (memory
// of one batch's activations): the batch means weighted by their windows.
StatusOr<double> BatchedBlockLoss(const Model& model, int l, const std::vector<float>& x, const std::vector<float>& y,
                                  int t, int n, int batch, const std::map<std::string, AutoRoundTensor>& tensors) {
  double sum = 0;
  for (int i0 = 0; i0 < n; i0 += batch) {
    std::vector<int> idx;
    for (int i = i0; i < std::min(n, i0 + batch); ++i) idx.push_back(i);
    QL_ASSIGN_OR_RETURN(double loss, AutoRoundBlockLoss(model, l, x, y, t, idx, tensors, false, nullptr));
    sum += loss * double(idx.size());
  }
  return sum / double(n);
}

// mean((a − b)²) over every element: a block's objective from its outputs a and targets b.
double MeanSquaredDifference(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s / double(a.size());
}

}  // namespace

Status RunAutoRound(Model& model, const std::map<std::string, std::string>& weight_schemes,
                    const CalibrationSet& data, const AutoRoundOptions& o, AutoRoundLog* log) {
  if (model.config.qkv_bias || model.config.qk_norm)
    return Status::Error("autoround: the block objective supports the Llama layout only (no q/k/v bias, no q/k norm)");
  if (o.iters < 0 || o.batch < 1) return Status::Errorf("autoround: iters ({}) must be >= 0, batch ({}) >= 1", o.iters, o.batch);
  if (data.windows.empty()) return Status::Error("autoround: the calibration set has no windows");
  const int t = int(data.windows[0].size()), n = int(data.windows.size());
  for (const auto& w : data.windows)
    if (int(w.size()) != t) return Status::Error("autoround: calibration windows differ in length");
  // No full-precision copy of the model: layer l is still full precision when its targets are computed, and
  // the full-precision embeddings are taken before a (tied) head is rounded.
  std::vector<float> xf = EmbedWindows(model, data);  // [n, t, D] full-precision inputs
  std::map<int, std::map<std::string, AutoRoundTensor>> per_layer;
  for (const auto& [name, text] : weight_schemes) {
    if (!model.Has(name)) return Status::Errorf("autoround: no weight '{}' in the model", name);
    QL_ASSIGN_OR_RETURN(Scheme s, ParseScheme(text));
    const int l = ModuleLayer(name);
    if (l < 0) {  // outside the decoder blocks (lm_head): round to nearest
      Tensor& w = model.W(name);
      QL_RETURN_IF_ERROR(FakeQuantize(s, w.data.data(), w.rows(), w.cols(), w.data.data()));
      continue;
    }
    const Tensor& w = model.W(name);
    QL_ASSIGN_OR_RETURN(AutoRoundGrid g, MakeAutoRoundGrid(s, w.rows(), w.cols()));
    per_layer[l][name] = AutoRoundTensor{g, InitialAutoRoundParams(g)};
  }
  std::vector<float> xq = EmbedWindows(model, data);  // [n, t, D] inputs from the quantized blocks so far
  for (int l = 0; l < model.config.n_layers; ++l) {
    std::vector<float> y = xf;  // [n, t, D] full-precision outputs of layer l (not yet quantized)
    AdvanceLayer(model, l, t, n, o.batch, &y);
    auto it = per_layer.find(l);
    double rtn = 0;
    if (it != per_layer.end()) {
      auto& tensors = it->second;
      if (o.iters > 0) {
        QL_ASSIGN_OR_RETURN(rtn, BatchedBlockLoss(model, l, xq, y, t, n, o.batch, tensors));
      }
      QL_RETURN_IF_ERROR(OptimizeBlock(model, l, xq, y, t, n, o, &tensors));
      for (const auto& [name, at] : tensors) {
        Tensor& w = model.W(name);
        std::vector<float> q(w.data.size());
        AutoRoundQuantize(at.grid, w.data.data(), at.params, false, q.data());
        w.data = q;
      }
    }
    AdvanceLayer(model, l, t, n, o.batch, &xq);  // the quantized block's outputs: the final objective's
    if (it != per_layer.end() && log) {
      const double fin = MeanSquaredDifference(xq, y);
      log->rtn_loss.push_back(o.iters > 0 ? rtn : fin);  // iters 0 leaves the block at RTN
      log->final_loss.push_back(fin);
    }
    xf = std::move(y);
  }
  return Status::Ok();
}

namespace {

Status ApplyAutoRound(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "autoround"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(AutoRoundAlgorithm(), ctx));
  AutoRoundOptions o;
  o.iters = p["iters"].get<int>();
  o.lr = p["lr"].get<double>();
  o.batch = p["batch"].get<int>();
  o.seed = uint64_t(ctx.seed);
  std::map<std::string, std::string> weights;
  for (const auto& [module, scheme] : SchemeMap(ctx)) {
    auto [it, inserted] = weights.emplace(WeightKey(model, module), scheme);
    if (!inserted && it->second != scheme)
      return Status::Errorf("autoround: {} is quantized twice with different schemes ({} and {})", it->first,
                            it->second, scheme);
  }
  AutoRoundLog log;
  QL_RETURN_IF_ERROR(RunAutoRound(model, weights, *ctx.calibration, o, &log));
  if (ctx.runtime) {
    ctx.runtime->arrays["autoround_rtn_loss"].assign(log.rtn_loss.begin(), log.rtn_loss.end());
    ctx.runtime->arrays["autoround_final_loss"].assign(log.final_loss.begin(), log.final_loss.end());
  }
  return Status::Ok();
}

}  // namespace

AlgorithmInfo AutoRoundAlgorithm() {
  return {"autoround",
          "AutoRound: signed gradient descent on per-weight rounding offsets and per-group min/max factors, "
          "block by block against the block's full-precision output (integer schemes)",
          nlohmann::json{{"iters", 200}, {"lr", 0.0}, {"batch", 8}}, true, ApplyAutoRound};
}

}  // namespace ql
