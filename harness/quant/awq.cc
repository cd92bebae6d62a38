// AWQ (see awq.h). Follows mit-han-lab/llm-awq auto_scale.py / auto_clip.py (docs/algorithms.md §2): the layer's
// inputs are those of the ORIGINAL model (llm-awq computes the next layer's inputs with the fp
// layer before searching, and scaling preserves the function), the four Llama groups are searched on
// those inputs, scales are folded, cached inputs divided by s, then clipping is searched on the
// scaled inputs. The quantizer inside the search is the cell's own scheme (llm-awq: int4 g128 asym).
#include "harness/quant/awq.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "kernels/act_quant.h"
#include "kernels/gemm.h"
#include "kernels/group_error.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"
#include "kernels/quantizer.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

using Overrides = std::map<std::string, const std::vector<float>*>;

const std::vector<float>& Get(const Model& m, const std::string& name, const Overrides& ov) {
  auto it = ov.find(name);
  return it != ov.end() ? *it->second : m.W(name).data;
}

// y[n, out] = x[n, in] · W[out, in]ᵀ
void MatMulT(const float* x, int n, int in, const float* w, int out, float* y) {
  Gemm(n, out, in, 1.0f, x, in, w, in, BLayout::kNK, y, out, NumThreads());
}

}  // namespace

std::vector<float> AttentionBlockOutput(const Model& model, int layer, const std::vector<float>& x, int seqlen,
                                        const Overrides& ov) {
  const ModelConfig& c = model.config;
  const std::string p = LayerPrefix(layer) + "self_attn.";
  const int D = c.dim, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim, group = H / KV;
  const int qo = H * hd, kvo = KV * hd;
  const int n = int(x.size() / D);
  std::vector<float> q(size_t(n) * qo), k(size_t(n) * kvo), v(size_t(n) * kvo), att(size_t(n) * qo);
  MatMulT(x.data(), n, D, Get(model, p + "q_proj.weight", ov).data(), qo, q.data());
  MatMulT(x.data(), n, D, Get(model, p + "k_proj.weight", ov).data(), kvo, k.data());
  MatMulT(x.data(), n, D, Get(model, p + "v_proj.weight", ov).data(), kvo, v.data());
  if (c.qkv_bias) {
    const auto& bq = Get(model, p + "q_proj.bias", ov);
    const auto& bk = Get(model, p + "k_proj.bias", ov);
    const auto& bv = Get(model, p + "v_proj.bias", ov);
    for (int t = 0; t < n; ++t) {
      ops::Add(bq.data(), &q[size_t(t) * qo], qo);
      ops::Add(bk.data(), &k[size_t(t) * kvo], kvo);
      ops::Add(bv.data(), &v[size_t(t) * kvo], kvo);
    }
  }
  std::vector<float> cs(size_t(seqlen) * hd), sn(size_t(seqlen) * hd);
  ops::RopeTables(0, seqlen, hd, c.rope_theta, c.rope_interleaved, cs.data(), sn.data());
  const float* qn = c.qk_norm ? model.W(p + "q_norm.weight").data.data() : nullptr;
  const float* kn = c.qk_norm ? model.W(p + "k_norm.weight").data.data() : nullptr;
  for (int t = 0; t < n; ++t) {
    const int pos = t % seqlen;
    float* qt = &q[size_t(t) * qo];
    float* kt = &k[size_t(t) * kvo];
    if (c.qk_norm) {
      for (int h = 0; h < H; ++h) ops::RmsNorm(qt + h * hd, qn, hd, c.norm_eps, qt + h * hd);
      for (int h = 0; h < KV; ++h) ops::RmsNorm(kt + h * hd, kn, hd, c.norm_eps, kt + h * hd);
    }
    ops::Rope(qt, H, hd, &cs[size_t(pos) * hd], &sn[size_t(pos) * hd], c.rope_interleaved);
    ops::Rope(kt, KV, hd, &cs[size_t(pos) * hd], &sn[size_t(pos) * hd], c.rope_interleaved);
  }
  // Per (window, head): S = Q_h·K_hᵀ/√hd [L, L] (sgemm), causal row softmax, O_h = S·V_h. The items run
  // on the threads, each product on its item's thread alone (a GEMM's values do not depend on its
  // thread count; a fork/join per [L, L] product cost more than the product at L = 128).
  const float scale = 1.0f / std::sqrt(float(hd));
  const int items = (n / seqlen) * H;
  const int threads = std::min(NumThreads(), items);
  std::vector<float> scratch(size_t(std::max(1, threads)) * seqlen * seqlen);  // [threads, L, L]
  ParallelFor(items, threads, [&](int item, int tid) {
    const int w0 = item / H * seqlen, h = item % H, kvh = h / group;
    float* s = scratch.data() + size_t(tid) * seqlen * seqlen;
    Gemm(seqlen, seqlen, hd, scale, &q[size_t(w0) * qo + h * hd], qo, &k[size_t(w0) * kvo + kvh * hd], kvo,
         BLayout::kNK, s, seqlen, 1);
    for (int i = 0; i < seqlen; ++i) {
      float* row = s + size_t(i) * seqlen;
      ops::Softmax(row, i + 1);
      std::fill(row + i + 1, row + seqlen, 0.0f);
    }
    Gemm(seqlen, hd, seqlen, 1.0f, s, seqlen, &v[size_t(w0) * kvo + kvh * hd], kvo, BLayout::kKN,
         &att[size_t(w0) * qo + h * hd], qo, 1);
  });
  std::vector<float> out(size_t(n) * D);
  MatMulT(att.data(), n, qo, Get(model, p + "o_proj.weight", ov).data(), D, out.data());
  return out;
}

std::vector<float> MlpBlockOutput(const Model& model, int layer, const std::vector<float>& x, const Overrides& ov) {
  const ModelConfig& c = model.config;
  const std::string p = LayerPrefix(layer) + "mlp.";
  const int D = c.dim, F = c.hidden_dim, n = int(x.size() / D);
  std::vector<float> g(size_t(n) * F), u(size_t(n) * F), out(size_t(n) * D);
  MatMulT(x.data(), n, D, Get(model, p + "gate_proj.weight", ov).data(), F, g.data());
  MatMulT(x.data(), n, D, Get(model, p + "up_proj.weight", ov).data(), F, u.data());
  ops::SiluMul(g.data(), u.data(), g.size(), g.data());
  MatMulT(g.data(), n, F, Get(model, p + "down_proj.weight", ov).data(), D, out.data());
  return out;
}

namespace {

const nlohmann::json& AwqDefaults() {
  static const nlohmann::json j = {{"n_grid", 20}, {"clip", true}, {"clip_tokens", 512}, {"max_shrink", 0.5}};
  return j;
}

// W·diag(s) fake-quantized, then ·diag(1/s) (auto_scale.py: fc.weight.mul_(s); w_quantize; div_(s)).
StatusOr<std::vector<float>> QuantScaled(const Tensor& w, const std::vector<float>& s, const Scheme& scheme) {
  const int64_t rows = w.rows(), cols = w.cols();
  std::vector<float> q(w.data.size());  // [rows, cols]
  // Element by element, so rows on the threads in fixed chunks give the same bits.
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, cols));
  ParallelForChunks(rows, chunk, NumThreads(), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < cols; ++c) q[r * cols + c] = w.data[r * cols + c] * s[c];
  });
  // Bitwise FakeQuantize; the SIMD path on ParallelFor threads for the symmetric integer schemes.
  QL_RETURN_IF_ERROR(FakeQuantizeInPlace(scheme, q.data(), rows, cols));
  ParallelForChunks(rows, chunk, NumThreads(), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < cols; ++c) q[r * cols + c] /= s[c];
  });
  return q;
}

struct ScaleGroup {
  std::vector<std::string> fcs;  // module paths scaled by s on their inputs (targeted ones)
  const std::vector<float>* x;   // their cached input [n, in]
  int64_t window = 1;            // rows that must stay together (attention: one calibration window)
  // The inspected module's output [rows, out] for some rows of x (whole windows).
  std::function<std::vector<float>(const Overrides&, const std::vector<float>& x)> block;
};

// x in chunks of whole windows, at least kChunkRows rows each (the last takes the remainder): a
// candidate's loss is summed chunk by chunk in the order of one Mse and abandoned once it cannot win.
// Every row of a block's output depends only on its own window (each GEMM element is one FMA chain,
// independent of the row count once it is >= kGemmDotRows), so the chunks' outputs are bitwise those
// of one call on all of x.
constexpr int64_t kChunkRows = 256;
std::vector<std::vector<float>> Chunks(const std::vector<float>& x, int64_t in, int64_t window) {
  const int64_t n = int64_t(x.size()) / in;
  const int64_t rows = std::max<int64_t>(1, (kChunkRows + window - 1) / window) * window;
  const int64_t count = std::max<int64_t>(1, n / rows);
  std::vector<std::vector<float>> out;
  for (int64_t c = 0; c < count; ++c)
    out.emplace_back(x.begin() + c * rows * in, c + 1 < count ? x.begin() + (c + 1) * rows * in : x.end());
  return out;
}

// 0 .. n−1 from the middle outward: n/2, n/2 + 1, n/2 − 1, n/2 + 2, …
std::vector<int> MiddleOut(int n) {
  std::vector<int> order;
  const int m = n / 2;
  for (int d = 0; int(order.size()) < n; ++d) {
    if (m + d < n) order.push_back(m + d);
    if (d > 0 && m - d >= 0) order.push_back(m - d);
  }
  return order;
}

// The grid search of auto_scale.py's _search_module_scale; returns the best s (all ones when
// nothing beats α = 0, which is s = 1).
StatusOr<std::vector<float>> SearchScale(const Model& model, const ScaleGroup& g,
                                         const std::map<std::string, std::string>& schemes, int n_grid) {
  const int in = int(model.W(g.fcs[0] + ".weight").cols());
  const int64_t n = int64_t(g.x->size()) / in;
  std::vector<double> mean_abs(in, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int j = 0; j < in; ++j) mean_abs[j] += std::fabs((*g.x)[t * in + j]);
  for (auto& v : mean_abs) v /= double(n);
  const std::vector<std::vector<float>> xs = Chunks(*g.x, in, g.window);
  std::vector<std::vector<float>> ref;  // per chunk [rows, out]
  double size = 0;
  for (const auto& xc : xs) {
    ref.push_back(g.block({}, xc));
    size += double(ref.back().size());
  }
  // auto_scale.py scans α = i / n_grid upward and keeps the first strict minimum. Candidates are tried
  // from the middle outward (a low loss found early lets the others be abandoned sooner), with the rule
  // that gives the same answer: the least loss wins, a tie goes to the lower index.
  double best = INFINITY;
  int best_i = -1;
  std::vector<float> best_s(in, 1.0f), s(in);
  for (int i : MiddleOut(n_grid)) {
    const double ratio = double(i) / n_grid;
    double mx = 0, mn = INFINITY;
    for (int j = 0; j < in; ++j) {
      s[j] = std::max(float(std::pow(mean_abs[j], ratio)), 1e-4f);
      mx = std::max(mx, double(s[j]));
      mn = std::min(mn, double(s[j]));
    }
    const float norm = float(std::sqrt(mx * mn));
    for (auto& v : s) v /= norm;
    std::vector<std::vector<float>> qs;
    qs.reserve(g.fcs.size());
    Overrides ov;
    for (const auto& fc : g.fcs) {
      QL_ASSIGN_OR_RETURN(Scheme scheme, ParseScheme(schemes.at(fc)));
      QL_ASSIGN_OR_RETURN(auto q, QuantScaled(model.W(fc + ".weight"), s, scheme));
      qs.push_back(std::move(q));
    }
    for (size_t k = 0; k < g.fcs.size(); ++k) ov[g.fcs[k] + ".weight"] = &qs[k];
    // Mse(ref, block(ov)) in chunks, in the order of one Mse; sum / size only grows, so the candidate is
    // out once it can neither beat best nor tie it from a lower index.
    const bool tie_wins = best_i >= 0 && i < best_i;
    auto can_win = [&](double loss) { return tie_wins ? loss <= best : loss < best; };  // false for NaN
    double sum = 0;
    bool out = false;
    for (size_t c = 0; c < xs.size() && !out; ++c) {
      const std::vector<float> y = g.block(ov, xs[c]);
      for (size_t k = 0; k < y.size(); ++k) sum += double(ref[c][k] - y[k]) * (ref[c][k] - y[k]);
      out = !can_win(sum / size);
    }
    if (!out && size > 0) {
      best = sum / size;
      best_i = i;
      best_s = s;
    }
  }
  return best_s;
}

// Folds s: prev (a norm weight [in] or a linear's rows) /= s, each fc's columns *= s, cached x /= s.
void FoldScale(Model& model, const std::string& prev_weight, const std::string& prev_bias,
               const std::vector<std::string>& fcs, std::vector<float>* x, const std::vector<float>& s) {
  const int in = int(s.size());
  Tensor& pw = model.W(prev_weight);
  if (pw.shape.size() == 1) {
    for (int j = 0; j < in; ++j) pw.data[j] /= s[j];
  } else {  // a linear [in, k]: its output rows are our input channels
    const int64_t k = pw.cols();
    for (int j = 0; j < in; ++j)
      for (int64_t c = 0; c < k; ++c) pw.data[j * k + c] /= s[j];
  }
  if (!prev_bias.empty() && model.Has(prev_bias))
    for (int j = 0; j < in; ++j) model.W(prev_bias).data[j] /= s[j];
  for (const auto& fc : fcs) {
    Tensor& w = model.W(fc + ".weight");
    const int64_t rows = w.rows();
    for (int64_t r = 0; r < rows; ++r)
      for (int j = 0; j < in; ++j) w.data[r * in + j] *= s[j];
  }
  const int64_t n = int64_t(x->size()) / in;
  for (int64_t t = 0; t < n; ++t)
    for (int j = 0; j < in; ++j) (*x)[t * in + j] /= s[j];
}

// auto_clip.py's auto_clip_layer on one weight: per (output row, group) the max |w| shrink factor
// (1 − i/n_grid, i < max_shrink·n_grid) minimizing mean_t (Σ_{k∈group} x_tk (Q(W_c) − W)_rk)², then
// W ← clamp(W, −max, max). Groups: the scheme's g<N>, a block codec's block, or the whole row
// (channel/token); other granularities are not searched.
Status ClipSearch(Tensor& w, const Scheme& scheme, const std::vector<float>& x, int64_t n_tokens, int n_grid,
                  double max_shrink) {
  const int64_t rows = w.rows(), cols = w.cols();
  int64_t gs = 0;
  if (scheme.is_block) {
    QL_ASSIGN_OR_RETURN(const BlockCodec* bc, FindBlockCodec(scheme.format));
    gs = scheme.block.block_size > 0 ? scheme.block.block_size : bc->default_block_size();
    if (gs == 0) gs = cols;  // codebook formats (lut<b>, vq2x8): no blocks; search the row's range
  } else if (scheme.granularity == Granularity::kGroup) {
    gs = scheme.group_size;
  } else if (scheme.granularity == Granularity::kChannel || scheme.granularity == Granularity::kToken) {
    gs = cols;
  } else {
    return Status::Ok();
  }
  const int64_t n_groups = (cols + gs - 1) / gs;
  std::vector<float> amax(size_t(rows) * n_groups, 0.0f), best_max(amax.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      amax[r * n_groups + c / gs] = std::max(amax[r * n_groups + c / gs], std::fabs(w.data[r * cols + c]));
  best_max = amax;
  std::vector<double> best_err(amax.size(), 1e300), err(amax.size());
  std::vector<float> m(amax.size()), wc, q;
  // The symmetric integer schemes quantize inside the fused pass (kernels/group_error.h); the others
  // are quantized whole by FakeQuantize and only their error is fused.
  int64_t sym_group = 0;
  int qmax = 0;
  const bool in_pass = IntSymRowsParams(scheme, cols, &sym_group, &qmax) && sym_group == gs;
  const int steps = int(max_shrink * n_grid);
  for (int i = 0; i < steps; ++i) {
    const float f = 1.0f - float(i) / float(n_grid);
    for (size_t k = 0; k < m.size(); ++k) m[k] = amax[k] * f;
    // err[r, g] = Σ_t (Σ_{k in group} x[t, c0+k] · (Q(W_c) − W)[r, c0+k])²; a group stops early once it
    // cannot beat its best (the bound), which changes no choice.
    if (!in_pass || !ClipOutputErrorsIntSym(w.data.data(), m.data(), rows, cols, gs, qmax, x.data(), n_tokens,
                                            best_err.data(), err.data(), NumThreads())) {
      wc.resize(w.data.size());
      q.resize(w.data.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const float b = m[r * n_groups + c / gs];
          wc[r * cols + c] = std::clamp(w.data[r * cols + c], -b, b);
        }
      QL_RETURN_IF_ERROR(FakeQuantize(scheme, wc.data(), rows, cols, q.data()));
      GroupOutputErrors(w.data.data(), q.data(), rows, cols, gs, x.data(), n_tokens, best_err.data(), err.data(),
                        NumThreads());
    }
    for (size_t k = 0; k < err.size(); ++k) {
      const double mse = err[k] / double(n_tokens);
      if (mse < best_err[k]) {
        best_err[k] = mse;
        best_max[k] = m[k];
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float m = best_max[r * n_groups + c / gs];
      w.data[r * cols + c] = std::clamp(w.data[r * cols + c], -m, m);
    }
  return Status::Ok();
}

Status ApplyAwq(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "awq"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(AwqAlgorithm(), ctx));
  const int n_grid = p["n_grid"].get<int>();
  const bool clip = p["clip"].get<bool>();
  const int64_t clip_tokens = p["clip_tokens"].get<int64_t>();
  const double max_shrink = p["max_shrink"].get<double>();
  const auto schemes = SchemeMap(ctx);
  const ModelConfig& c = model.config;
  const int seqlen = int(ctx.calibration->windows.at(0).size());
  for (const auto& w : ctx.calibration->windows)
    if (int(w.size()) != seqlen) return Status::Error("awq: calibration windows must all have the same length");

  std::vector<std::vector<float>> hidden, next;  // per window: the fp model's input of layer l
  for (int l = 0; l < c.n_layers; ++l) {
    if (ctx.progress && l > 0) ctx.progress(l, c.n_layers);  // layers done
    const auto m = LayerLinears(l);  // q k v o gate up down
    // One pass of layer l, still unmodified, from the fp model's cached input; its output (the fp
    // layer's) is saved as the input of layer l+1, as llm-awq computes it before the search.
    CaptureRequest req;
    req.inputs = true;
    req.modules = {m[0], m[3], m[4], m[6]};
    req.start_layer = l;
    req.start_hidden = l > 0 ? &hidden : nullptr;
    req.save_after_layer = l;
    req.save_hidden = &next;
    QL_ASSIGN_OR_RETURN(auto st, CaptureLinearStats(model, *ctx.calibration, req));
    hidden.swap(next);
    std::vector<float>& x_attn = st[m[0]].inputs;
    std::vector<float>& x_o = st[m[3]].inputs;
    std::vector<float>& x_mlp = st[m[4]].inputs;
    std::vector<float>& x_down = st[m[6]].inputs;
    const std::string p_l = LayerPrefix(l);
    auto targeted = [&](std::vector<std::string> v) {
      std::vector<std::string> out;
      for (auto& s : v)
        if (schemes.count(s)) out.push_back(s);
      return out;
    };
    // (input_layernorm → q,k,v; inspect self_attn)
    if (auto fcs = targeted({m[0], m[1], m[2]}); !fcs.empty()) {
      ScaleGroup g{fcs, &x_attn, seqlen, [&](const Overrides& ov, const std::vector<float>& x) {
                     return AttentionBlockOutput(model, l, x, seqlen, ov);
                   }};
      QL_ASSIGN_OR_RETURN(auto s, SearchScale(model, g, schemes, n_grid));
      // Every q/k/v shares the norm: the untargeted ones get the column scaling too (function kept).
      FoldScale(model, p_l + "input_layernorm.weight", "", {m[0], m[1], m[2]}, &x_attn, s);
    }
    // (v_proj → o_proj) only when the shapes are equal, i.e. no grouped-query attention.
    if (model.W(m[2] + ".weight").shape == model.W(m[3] + ".weight").shape && schemes.count(m[3])) {
      ScaleGroup g{{m[3]}, &x_o, 1, [&](const Overrides& ov, const std::vector<float>& x) {
                     const int qo = c.n_heads * c.head_dim;
                     std::vector<float> y(x.size() / qo * c.dim);
                     MatMulT(x.data(), int(x.size() / qo), qo, Get(model, m[3] + ".weight", ov).data(), c.dim, y.data());
                     return y;
                   }};
      QL_ASSIGN_OR_RETURN(auto s, SearchScale(model, g, schemes, n_grid));
      FoldScale(model, m[2] + ".weight", m[2] + ".bias", {m[3]}, &x_o, s);
    }
    // (post_attention_layernorm → gate,up; inspect mlp)
    if (auto fcs = targeted({m[4], m[5]}); !fcs.empty()) {
      ScaleGroup g{fcs, &x_mlp, 1, [&](const Overrides& ov, const std::vector<float>& x) {
                     return MlpBlockOutput(model, l, x, ov);
                   }};
      QL_ASSIGN_OR_RETURN(auto s, SearchScale(model, g, schemes, n_grid));
      FoldScale(model, p_l + "post_attention_layernorm.weight", "", {m[4], m[5]}, &x_mlp, s);
    }
    // (up_proj → down_proj)
    if (schemes.count(m[6])) {
      const int F = c.hidden_dim;
      ScaleGroup g{{m[6]}, &x_down, 1, [&](const Overrides& ov, const std::vector<float>& x) {
                     std::vector<float> y(x.size() / F * c.dim);
                     MatMulT(x.data(), int(x.size() / F), F, Get(model, m[6] + ".weight", ov).data(), c.dim, y.data());
                     return y;
                   }};
      QL_ASSIGN_OR_RETURN(auto s, SearchScale(model, g, schemes, n_grid));
      FoldScale(model, m[5] + ".weight", "", {m[6]}, &x_down, s);
    }
    if (!clip) continue;
    // Clip search, skipping q/k (their errors matter through the softmax, llm-awq skips "q_", "k_").
    const std::vector<std::pair<std::string, std::vector<float>*>> clip_list = {
        {m[2], &x_attn}, {m[3], &x_o}, {m[4], &x_mlp}, {m[5], &x_mlp}, {m[6], &x_down}};
    for (const auto& [mod, x] : clip_list) {
      if (!schemes.count(mod)) continue;
      Tensor& w = model.W(mod + ".weight");
      const int64_t in = w.cols(), n = int64_t(x->size()) / in;
      // auto_clip.py samples every (n / clip_tokens)-th token.
      const int64_t step = std::max<int64_t>(1, n / std::max<int64_t>(1, clip_tokens));
      std::vector<float> xs;
      for (int64_t t = 0; t < n; t += step) xs.insert(xs.end(), x->begin() + t * in, x->begin() + (t + 1) * in);
      QL_ASSIGN_OR_RETURN(Scheme scheme, ParseScheme(schemes.at(mod)));
      QL_RETURN_IF_ERROR(ClipSearch(w, scheme, xs, int64_t(xs.size()) / in, n_grid, max_shrink));
    }
  }
  if (ctx.progress) ctx.progress(c.n_layers, c.n_layers);
  return RtnAll(model, ctx);
}

}  // namespace

AlgorithmInfo AwqAlgorithm() {
  return {"awq",
          "AWQ (Lin et al. 2023): activation-aware per-channel scales folded into norms/linears, clip "
          "search, then RTN with the cell's scheme (docs/algorithms.md §2)",
          AwqDefaults(), true, ApplyAwq};
}

}  // namespace ql
