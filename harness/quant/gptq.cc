// GPTQ (see gptq.h). Follows IST-DASLab/gptq gptq.py fasterquant (docs/algorithms.md §1) step for step; the
// model-level driver quantizes true-sequentially like its llama.py --true-sequential: per layer, the
// inputs of (q,k,v), then o, then (gate,up), then down are re-captured on the model whose earlier
// modules are already quantized, running only that layer from the cached residual stream.
#include "harness/quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "harness/quant/calibration.h"
#include "harness/quant/gptaq.h"
#include "harness/quant/quant_util.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"
#include "kernels/quantizer.h"
#include "kernels/spd.h"

namespace ql {
namespace {

inline float RoundEven(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5·2^23: ties to even under the default rounding mode
  return (v + kMagic) - kMagic;
}

}  // namespace

void LazyBatchUpdate(const std::vector<float>& p, int64_t cols, int64_t rows, int64_t i1, int64_t i2, const float* e,
                     float sign, float* wt, LazyBatchScratch* s) {
  const int64_t m = cols - i2, k = i2 - i1;
  s->pt.resize(size_t(m * k));  // [m, k] = P[i1:i2, i2:]ᵀ (quantlab's GEMM takes A untransposed)
  for (int64_t a = 0; a < k; ++a)
    for (int64_t j = 0; j < m; ++j) s->pt[size_t(j * k + a)] = p[size_t((i1 + a) * cols + i2 + j)];
  s->prod.resize(size_t(m * rows));  // [m, rows]
  Gemm(int(m), int(rows), int(k), 1.0f, s->pt.data(), int(k), e, int(rows), BLayout::kKN, s->prod.data(), int(rows),
       NumThreads());
  float* dst = wt + i2 * rows;
  for (size_t x = 0; x < s->prod.size(); ++x) dst[x] += sign * s->prod[x];
}

StatusOr<ColumnQuantizer> ColumnQuantizer::Make(const Scheme& scheme, int64_t rows, int64_t cols) {
  ColumnQuantizer q;
  q.scheme_ = scheme;
  q.rows_ = rows;
  q.cols_ = cols;
  if (scheme.is_block) {
    QL_ASSIGN_OR_RETURN(q.block_, FindBlockCodec(scheme.format));
    if (!q.block_->granularity().empty())
      return Status::Errorf("gptq: {} fits a codebook per {}, not column blocks; use rtn or squeezellm",
                            ToString(scheme), q.block_->granularity());
    q.block_cols_ = scheme.block.block_size > 0 ? scheme.block.block_size : q.block_->default_block_size();
    return q;
  }
  QL_ASSIGN_OR_RETURN(q.codec_, FindElementCodec(scheme.format));
  q.is_int_ = q.codec_->kind() == FormatKind::kInt;
  q.scaled_ = scheme.granularity != Granularity::kNone;
  const int bits = q.codec_->bits();
  const int half = 1 << (bits - 1);
  // The code ranges of kernels/quantizer.h (docs/formats.md §1.4).
  if (q.is_int_ && q.scaled_) {
    switch (scheme.int_mode) {
      case IntMode::kSym: q.qmin_ = -(half - 1), q.qmax_ = half - 1; break;
      case IntMode::kSymFull: q.qmin_ = -half, q.qmax_ = half - 1; break;
      case IntMode::kAsym: q.qmin_ = 0, q.qmax_ = 2 * half - 1; break;
    }
  }
  q.lo_ = q.codec_->min_value();
  q.hi_ = q.codec_->max_finite();
  switch (scheme.granularity) {
    case Granularity::kGroup: q.group_cols_ = scheme.group_size; break;
    case Granularity::kBlock2d: q.group_cols_ = scheme.tile_cols; break;
    case Granularity::kChannelIn: q.group_cols_ = 1; break;
    default: q.group_cols_ = 0; break;
  }
  q.p_.scale.assign(rows, 1.0f);
  q.p_.zero.assign(rows, 0);
  return q;
}

Status ColumnQuantizer::FindParams(const float* w, int64_t ld, int64_t c0, int64_t width) {
  QL_CHECK(!is_block(), "FindParams on a block codec");
  if (!scaled_) return Status::Ok();
  scratch_.resize(size_t(rows_) * width);
  for (int64_t r = 0; r < rows_; ++r)
    std::copy(w + r * ld + c0, w + r * ld + c0 + width, scratch_.begin() + r * width);
  // The scheme's own scale rule (clipping, scale dtype) on the slice: Quantize gives the stored scale.
  QL_ASSIGN_OR_RETURN(QuantizedTensor qt, Quantize(scheme_, scratch_.data(), rows_, width));
  const int64_t tr = qt.tiles.tile_rows;
  QL_CHECK(qt.tiles.grid_cols == 1, "group slice of width {} spans {} tiles", width, qt.tiles.grid_cols);
  for (int64_t r = 0; r < rows_; ++r) {
    p_.scale[r] = qt.Scale(r / tr);
    p_.zero[r] = qt.ZeroPoint(r / tr);
  }
  return mse_.on ? SearchMse(width) : Status::Ok();
}

Status ColumnQuantizer::set_mse(const MseSearch& m) {
  const Granularity g = scheme_.granularity;
  const bool per_row = g == Granularity::kGroup || g == Granularity::kChannel || g == Granularity::kToken;
  if (m.on && (is_block() || !per_row || scheme_.clip != ClipRule::kMax))
    return Status::Errorf("gptq: mse searches one range per row and group; {} is not an element scheme of "
                          "g<N> or channel granularity with max clipping (drop mse or use e.g. int4:g32)",
                          ToString(scheme_));
  if (m.on && (m.grid < 1 || !(m.maxshrink > 0 && m.maxshrink < 1) || !(m.norm > 0)))
    return Status::Errorf("gptq: mse_grid {} must be >= 1, mse_maxshrink {} in (0, 1), mse_norm {} > 0", m.grid,
                          m.maxshrink, m.norm);
  mse_ = m;
  return Status::Ok();
}

Status ColumnQuantizer::SearchMse(int64_t width) {
  const std::vector<float> slice = scratch_;  // [rows, width]
  std::vector<float> shrunk(slice.size());
  std::vector<double> best(size_t(rows_), std::numeric_limits<double>::infinity());
  Params cur = p_;
  const int steps = int(mse_.maxshrink * mse_.grid);
  for (int i = 0; i < steps; ++i) {
    // The scheme's parameters for the range scaled by p: the quantizer on p·w (x -> p·x is monotone, so
    // the max/min of p·w are p·max/p·min in fp32).
    const float p = float(1.0 - double(i) / mse_.grid);
    for (size_t k = 0; k < slice.size(); ++k) shrunk[k] = p * slice[k];
    QL_ASSIGN_OR_RETURN(QuantizedTensor qt, Quantize(scheme_, shrunk.data(), rows_, width));
    for (int64_t r = 0; r < rows_; ++r) {
      p_.scale[r] = qt.Scale(r);  // one tile per row (checked in set_mse)
      p_.zero[r] = qt.ZeroPoint(r);
      double err = 0;
      for (int64_t c = 0; c < width; ++c) {
        float q;
        RoundOne(r, slice[r * width + c], &q);
        err += std::pow(std::fabs(double(q) - double(slice[r * width + c])), mse_.norm);
        if ((c & 15) == 15 && err >= best[r]) break;  // cannot win any more (the sum only grows)
      }
      if (err < best[r]) {  // strict, as gptq.py: the first (largest) p wins a tie
        best[r] = err;
        cur.scale[r] = p_.scale[r];
        cur.zero[r] = p_.zero[r];
      }
    }
  }
  p_ = cur;
  return Status::Ok();
}

void ColumnQuantizer::RoundOne(int64_t r, float x, float* q) const {
  if (!scaled_) {
    *q = codec_->Round(x);
    return;
  }
  const float s = p_.scale[r];
  if (!(s > 0)) {
    *q = 0.0f;
    return;
  }
  if (is_int_) {
    const int32_t z = p_.zero[r];
    const float v = std::clamp(x / s, float(qmin_ - z), float(qmax_ - z));
    *q = RoundEven(v) * s;  // (q - z)·s with q = rne(v) + z
  } else {
    *q = codec_->Round(std::clamp(x / s, lo_, hi_)) * s;
  }
}

void ColumnQuantizer::QuantizeColumn(const float* col, float* q) const {
  for (int64_t r = 0; r < rows_; ++r) RoundOne(r, col[r], &q[r]);
}

Status ColumnQuantizer::QuantizeBlockColumn(const float* blk, int64_t width, int64_t k, float* q) {
  scratch_.resize(size_t(rows_) * width);
  scratch_q_.resize(size_t(rows_) * width);
  for (int64_t c = 0; c < width; ++c)
    for (int64_t r = 0; r < rows_; ++r) scratch_[r * width + c] = blk[c * rows_ + r];
  QL_RETURN_IF_ERROR(FakeQuantize(scheme_, scratch_.data(), rows_, width, scratch_q_.data()));
  for (int64_t r = 0; r < rows_; ++r) q[r] = scratch_q_[r * width + k];
  return Status::Ok();
}

Status ColumnQuantizer::Finalize(float* w, int64_t rows, int64_t cols) const {
  if (!is_block()) return Status::Ok();
  return FakeQuantize(scheme_, w, rows, cols, w);
}

StatusOr<GptqFactor> GptqFactorize(std::vector<double> h, int64_t cols, const GptqOptions& opt) {
  QL_CHECK(int64_t(h.size()) == cols * cols, "Hessian {} for {} columns", h.size(), cols);
  GptqFactor f;
  f.cols = cols;
  auto H = [&](int64_t i, int64_t j) -> double& { return h[size_t(i * cols + j)]; };  // [cols, cols], symmetric
  // Dead inputs: never seen non-zero → weight irrelevant; H[i,i] = 1, W[:, i] = 0.
  f.dead.assign(size_t(cols), 0);
  for (int64_t i = 0; i < cols; ++i) {
    if (H(i, i) == 0) {
      H(i, i) = 1;
      f.dead[size_t(i)] = 1;
    }
  }
  f.perm.resize(size_t(cols));
  std::iota(f.perm.begin(), f.perm.end(), 0);
  if (opt.act_order) {
    std::stable_sort(f.perm.begin(), f.perm.end(), [&](int64_t a, int64_t b) { return H(a, a) > H(b, b); });
    std::vector<double> hp(h.size());
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) hp[size_t(i * cols + j)] = H(f.perm[size_t(i)], f.perm[size_t(j)]);
    h.swap(hp);
  }
  double diag_sum = 0;
  for (int64_t i = 0; i < cols; ++i) diag_sum += H(i, i);
  const double damp = opt.percdamp * (diag_sum / double(cols));
  for (int64_t i = 0; i < cols; ++i) H(i, i) += damp;
  // U = upper Cholesky factor of H⁻¹ (gptq.py: cholesky → cholesky_inverse → cholesky(upper=True)), by
  // kernels/spd.h's route (Cholesky of the reversed H and a triangular inverse): deterministic, the same
  // bits for any thread count and SIMD width.
  std::vector<double> r(h.size());  // [cols, cols] row-major, upper
  const int64_t bad = InverseCholeskyUpper(h.data(), cols, r.data(), NumThreads());
  if (bad >= 0 && bad < cols)
    return Status::Errorf("gptq: the damped Hessian is not positive definite (raise percdamp above {})",
                          opt.percdamp);
  if (bad == cols)
    return Status::Errorf("gptq: Cholesky of the inverse Hessian failed (raise percdamp above {})", opt.percdamp);
  f.U.assign(r.begin(), r.end());  // float, as gptq.py runs in float32
  return f;
}

StatusOr<double> GptqQuantizeWeight(const Scheme& scheme, float* w, int64_t rows, int64_t cols,
                                    std::vector<double> h, const GptqOptions& opt) {
  QL_ASSIGN_OR_RETURN(GptqFactor f, GptqFactorize(std::move(h), cols, opt));
  return GptqQuantizeWeight(scheme, w, rows, cols, f, opt);
}

StatusOr<double> GptqQuantizeWeight(const Scheme& scheme, float* w, int64_t rows, int64_t cols,
                                    const GptqFactor& f, const GptqOptions& opt) {
  QL_CHECK(f.cols == cols, "GPTQ factor of {} columns for a weight of {}", f.cols, cols);
  QL_ASSIGN_OR_RETURN(ColumnQuantizer cq, ColumnQuantizer::Make(scheme, rows, cols));
  QL_RETURN_IF_ERROR(cq.set_mse(opt.mse));
  const int64_t gs = cq.group_cols();
  if (cq.is_block() && opt.act_order)
    return Status::Errorf("gptq: act_order is not supported with block format {} (its blocks are contiguous "
                          "columns; use act_order: false)", ToString(scheme));
  int64_t bs = std::max(1, opt.blocksize);
  if (cq.is_block() && bs % cq.block_cols() != 0)  // a codec block must not straddle two lazy batches
    bs = (bs + cq.block_cols() - 1) / cq.block_cols() * cq.block_cols();

  // Wt: [cols, rows] — column i of W is row i here, so column updates are contiguous axpys.
  std::vector<float> wt(size_t(cols) * rows);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) wt[c * rows + r] = w[r * cols + c];

  for (int64_t i = 0; i < cols; ++i)  // dead inputs (GptqFactorize): their weight columns are zero
    if (f.dead[size_t(i)]) std::fill(wt.begin() + i * rows, wt.begin() + (i + 1) * rows, 0.0f);

  // Static groups: parameters from the ORIGINAL column order, before any permutation.
  std::vector<ColumnQuantizer::Params> static_params;
  if (!cq.is_block() && gs > 0 && opt.static_groups) {
    std::vector<float> wrow(size_t(rows) * cols);
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = 0; r < rows; ++r) wrow[r * cols + c] = wt[c * rows + r];
    for (int64_t g = 0; g < cols; g += gs) {
      QL_RETURN_IF_ERROR(cq.FindParams(wrow.data(), cols, g, std::min(gs, cols - g)));
      static_params.push_back(cq.params());
    }
  }

  const std::vector<int64_t>& perm = f.perm;
  if (opt.act_order) {
    std::vector<float> w2(wt.size());
    for (int64_t i = 0; i < cols; ++i) std::copy_n(wt.begin() + perm[i] * rows, rows, w2.begin() + i * rows);
    wt.swap(w2);
  }
  const std::vector<float>& U = f.U;

  // Group parameters in the non-static case come from W as gptq.py reads it: W[:, i1+i : i1+i+gs] of
  // the full matrix, whose columns inside the current lazy batch have not received this batch's
  // updates yet (they live in W1). Row-major view built on demand.
  std::vector<float> q_t(size_t(cols) * rows);  // quantized, [cols, rows]
  std::vector<float> err1(size_t(bs) * rows);   // [bs, rows]
  std::vector<float> wrow;
  std::vector<float> w1;                        // lazy batch, [bs, rows]
  std::vector<float> w1_pre(opt.asym_p ? size_t(bs) * rows : 0);  // GPTAQ: pre-rounding columns, [bs, rows]
  LazyBatchScratch scratch;
  double loss = 0;
  for (int64_t i1 = 0; i1 < cols; i1 += bs) {
    const int64_t i2 = std::min(i1 + bs, cols), count = i2 - i1;
    w1.assign(wt.begin() + i1 * rows, wt.begin() + i2 * rows);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t col = i1 + i;
      float* wc = &w1[i * rows];
      float* qc = &q_t[col * rows];
      const float d = U[col * cols + col];
      if (cq.is_block()) {
        const int64_t b0 = col - col % cq.block_cols();  // block start (inside this lazy batch)
        const int64_t width = std::min(cq.block_cols(), cols - b0);
        // Block state: quantized columns b0..col-1, current values col..b0+width-1.
        std::vector<float> blk(size_t(width) * rows);
        for (int64_t k = 0; k < width; ++k) {
          const float* src = (b0 + k < col) ? &q_t[(b0 + k) * rows] : &w1[(b0 + k - i1) * rows];
          std::copy_n(src, rows, blk.begin() + k * rows);
        }
        QL_RETURN_IF_ERROR(cq.QuantizeBlockColumn(blk.data(), width, col - b0, qc));
      } else {
        if (col == 0 && gs == 0) {  // one parameter set for the whole matrix (channel/tensor)
          wrow.resize(size_t(rows) * cols);
          for (int64_t c = 0; c < cols; ++c)
            for (int64_t r = 0; r < rows; ++r) wrow[r * cols + c] = wt[c * rows + r];
          QL_RETURN_IF_ERROR(cq.FindParams(wrow.data(), cols, 0, cols));
        } else if (gs > 0 && !opt.static_groups && col % gs == 0) {
          const int64_t width = std::min(gs, cols - col);
          wrow.resize(size_t(rows) * width);
          for (int64_t c = 0; c < width; ++c)
            for (int64_t r = 0; r < rows; ++r) wrow[r * width + c] = wt[(col + c) * rows + r];
          QL_RETURN_IF_ERROR(cq.FindParams(wrow.data(), width, 0, width));
        } else if (gs > 0 && opt.static_groups) {
          cq.set_params(static_params[perm[col] / gs]);
        }
        cq.QuantizeColumn(wc, qc);
      }
      float* e = &err1[i * rows];
      for (int64_t r = 0; r < rows; ++r) {
        const float diff = wc[r] - qc[r];
        e[r] = diff / d;
        loss += double(diff) * diff / (double(d) * d) / 2.0;
      }
      // W1[:, i:] -= err ⊗ U[col, col:]  (columns i+1.. of the lazy batch; column i is done)
      for (int64_t j = i + 1; j < count; ++j) ops::Axpy(-U[col * cols + i1 + j], e, &w1[j * rows], size_t(rows));
      if (opt.asym_p) GptaqColumnUpdate(*opt.asym_p, cols, col, wc, rows, i + 1, count, i1, w1.data(), w1_pre.data() + i * rows);
    }
    // W[:, i2:] -= Err1 · U[i1:i2, i2:]  →  Wt[i2:, :] -= U[i1:i2, i2:]ᵀ · Err1t
    if (i2 < cols) LazyBatchUpdate(U, cols, rows, i1, i2, err1.data(), -1.0f, wt.data(), &scratch);
    if (opt.asym_p && i2 < cols) GptaqBlockUpdate(*opt.asym_p, cols, rows, i1, i2, w1_pre.data(), wt.data());
  }
  // Back to the original column order, row-major.
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t r = 0; r < rows; ++r) w[r * cols + perm[i]] = q_t[i * rows + r];
  if (opt.rounding_input && cq.is_block()) opt.rounding_input->assign(w, w + rows * cols);
  QL_RETURN_IF_ERROR(cq.Finalize(w, rows, cols));
  return loss;
}

namespace {

const nlohmann::json& GptqDefaults() {
  static const nlohmann::json j = {{"percdamp", 0.01},
                                   {"blocksize", 128},
                                   {"act_order", false},
                                   {"static_groups", false},
                                   {"true_sequential", true}};
  return j;
}

// The mse options: optional parameters, so GPTQ cells recorded before them keep their identity.
const nlohmann::json& GptqMseDefaults() {
  static const nlohmann::json j = {{"mse", false}, {"mse_norm", 2.4}, {"mse_grid", 100}, {"mse_maxshrink", 0.8}};
  return j;
}

// GPTQ on the modules that share one input and so one factor (q/k/v, gate/up), one module per thread:
// each module's column loop is serial and touches only its own weight, and its GEMMs give the same bits
// on any number of threads, so the split changes no bit.
Status QuantizeSharingFactor(Model& model, const std::vector<std::string>& mods,
                             const std::map<std::string, std::string>& schemes, const GptqFactor& factor,
                             const GptqOptions& opt, const AlgorithmContext& ctx) {
  struct Job {
    Scheme scheme;
    Tensor* w = nullptr;
    std::vector<float> before;  // export's rounding input (AlgorithmRuntime::keep_rounding_inputs)
    Status status;
  };
  std::vector<Job> jobs(mods.size());
  for (size_t i = 0; i < mods.size(); ++i) {  // map look-ups before the threads start
    QL_ASSIGN_OR_RETURN(jobs[i].scheme, ParseScheme(schemes.at(mods[i])));
    jobs[i].w = &model.W(WeightKey(model, mods[i]));
  }
  const bool keep = ctx.runtime && ctx.runtime->keep_rounding_inputs;
  auto run = [&](int i, int) {
    Job& j = jobs[size_t(i)];
    GptqOptions o = opt;
    if (keep) o.rounding_input = &j.before;
    auto loss = GptqQuantizeWeight(j.scheme, j.w->data.data(), j.w->rows(), j.w->cols(), factor, o);
    if (!loss.ok()) j.status = Status::Errorf("gptq on {}: {}", mods[size_t(i)], loss.status().message());
  };
  // One module (o_proj, down_proj, lm_head): its lazy-batch GEMMs take the threads instead.
  if (jobs.size() == 1) run(0, 0);
  else ParallelFor(int(jobs.size()), NumThreads(), run);
  for (size_t i = 0; i < mods.size(); ++i) {
    QL_RETURN_IF_ERROR(jobs[i].status);
    if (!jobs[i].before.empty()) ctx.runtime->rounding_inputs[WeightKey(model, mods[i])] = std::move(jobs[i].before);
  }
  return Status::Ok();
}

Status ApplyGptq(Model& model, const AlgorithmContext& ctx) {
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "gptq"));
  QL_ASSIGN_OR_RETURN(nlohmann::json p, Params(GptqAlgorithm(), ctx));
  return RunGptq(model, ctx, p, nullptr);
}

}  // namespace

Status RunGptq(Model& model, const AlgorithmContext& ctx, const nlohmann::json& p, GptaqStream* asym) {
  GptqOptions opt;
  opt.percdamp = p["percdamp"].get<double>();
  opt.blocksize = p["blocksize"].get<int>();
  opt.act_order = p["act_order"].get<bool>();
  opt.static_groups = p["static_groups"].get<bool>();
  const nlohmann::json& md = GptqMseDefaults();
  opt.mse = {p.value("mse", md["mse"].get<bool>()), p.value("mse_norm", md["mse_norm"].get<double>()),
             p.value("mse_grid", md["mse_grid"].get<int>()), p.value("mse_maxshrink", md["mse_maxshrink"].get<double>())};
  const bool true_seq = p["true_sequential"].get<bool>();
  const auto schemes = SchemeMap(ctx);
  // An online input transform left by an earlier step (rotation's R4 before down_proj) is part of the
  // model being quantized: every calibration pass runs it, so the Hessians are of the inputs the
  // linears see at evaluation.
  std::function<bool(std::string_view, float*, int, int)> online;
  if (ctx.runtime) online = ctx.runtime->linear_input;

  // Per layer, stages in forward order (true-sequential: q/k/v, o, gate/up, down each re-captured
  // after the previous stage was quantized); the modules of one inner list share their input. Each
  // pass runs only the current layer, from the cached residual stream at its input, which was computed
  // with every earlier layer already quantized (gptq.py's inps/outs hand-over).
  const int L = model.config.n_layers;
  std::vector<std::vector<float>> hidden, next;  // per window [seqlen, dim]: input of the current layer
  auto run_stage = [&](const std::vector<std::vector<std::string>>& stage, int layer) -> Status {
    CaptureRequest req;
    req.hessian = true;
    req.transform = online;
    req.start_layer = layer;
    req.start_hidden = layer > 0 ? &hidden : nullptr;
    req.inputs = asym != nullptr;  // GPTAQ's cross-covariance needs the quantized prefix's inputs
    std::vector<std::pair<std::string, std::vector<std::string>>> todo;  // (input representative, modules)
    for (const auto& group : stage) {
      std::vector<std::string> mods;
      for (const auto& m : group)
        if (schemes.count(m)) mods.push_back(m);
      if (mods.empty()) continue;
      req.modules.insert(mods[0]);
      todo.emplace_back(mods[0], mods);
    }
    if (todo.empty()) return Status::Ok();
    QL_ASSIGN_OR_RETURN(auto stats, CaptureLinearStats(model, *ctx.calibration, req));
    for (const auto& [rep, mods] : todo) {
      const LinearStats& st = stats.at(rep);
      std::vector<double> h(st.xtx.size());
      const double f = 2.0 / double(st.sequences);  // H = (2/n)·Σ x xᵀ, n = #sequences (docs/algorithms.md §1)
      for (size_t i = 0; i < h.size(); ++i) h[i] = st.xtx[i] * f;
      // One factorization for the modules sharing this input (q/k/v, gate/up): it depends on H alone.
      auto factor = GptqFactorize(std::move(h), st.in, opt);
      if (!factor.ok()) return Status::Errorf("gptq on {}: {}", rep, factor.status().message());
      std::vector<float> asym_p;  // GPTAQ's P for the modules of this input (read-only, shared by them)
      GptqOptions o = opt;
      if (asym) {
        QL_ASSIGN_OR_RETURN(asym_p, asym->P(layer, rep, st, *factor));
        o.asym_p = &asym_p;
      }
      QL_RETURN_IF_ERROR(QuantizeSharingFactor(model, mods, schemes, *factor, o, ctx));
    }
    return Status::Ok();
  };
  for (int l = 0; l < L; ++l) {
    const auto m = LayerLinears(l);
    std::vector<std::vector<std::string>> groups = {{m[0], m[1], m[2]}, {m[3]}, {m[4], m[5]}, {m[6]}};
    if (true_seq) {
      for (auto& g : groups) QL_RETURN_IF_ERROR(run_stage({g}, l));
    } else {
      QL_RETURN_IF_ERROR(run_stage(groups, l));
    }
    if (l + 1 < L) {  // the next layer's input, through this (now quantized) layer
      CaptureRequest adv;
      adv.transform = online;
      adv.start_layer = l;
      adv.start_hidden = l > 0 ? &hidden : nullptr;
      adv.save_after_layer = l;
      adv.save_hidden = &next;
      QL_RETURN_IF_ERROR(CaptureLinearStats(model, *ctx.calibration, adv).status());
      hidden.swap(next);
      if (asym) QL_RETURN_IF_ERROR(asym->Advance(l));
    }
    if (ctx.progress) ctx.progress(l + 1, L + 1);
  }
  // lm_head: a pass from the last layer's cached input through the final norm.
  QL_RETURN_IF_ERROR(run_stage({{"lm_head"}}, L - 1));
  if (ctx.progress) ctx.progress(L + 1, L + 1);
  // Targets that are not linear inputs (the embedding table) get round-to-nearest.
  for (const auto& [m, s] : schemes)
    if (m == "model.embed_tokens") {
      KeepRoundingInput(ctx, model, m);
      QL_RETURN_IF_ERROR(RtnModule(model, m, s));
    }
  return Status::Ok();
}

AlgorithmInfo GptqAlgorithm() {
  return {"gptq",
          "GPTQ (Frantar et al. 2022): column-wise rounding with inverse-Hessian error feedback, "
          "true-sequential over the layers; any weight scheme (docs/algorithms.md §1)",
          GptqDefaults(), true, ApplyGptq, {}, false, GptqMseDefaults()};
}

}  // namespace ql
