// Importance-matrix collection and the `imatrix` algorithm (see imatrix.h). The statistic and the chunking
// follow llama.cpp's tools/imatrix/imatrix.cpp (IMatrixCollector::collect_imatrix, compute_imatrix).
#include "harness/quant/imatrix.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "harness/io/gguf.h"
#include "harness/model/forward.h"
#include "harness/quant/calibration.h"
#include "harness/quant/quant_util.h"
#include "harness/tokenizer/tokenizer.h"
#include "kernels/format.h"
#include "kernels/gguf_blocks.h"
#include "kernels/scheme.h"

namespace ql {
namespace {

constexpr int kMinBatchTokens = 16;  // llama-imatrix ignores matrix products over fewer tokens

// The modules whose inputs are collected, by module path.
std::set<std::string> CollectedModules(const Model& model, const ImatrixCollectOptions& opt) {
  if (!opt.modules.empty()) return {opt.modules.begin(), opt.modules.end()};
  std::set<std::string> out;
  for (int l = 0; l < model.config.n_layers; ++l)
    for (const std::string& m : LayerLinears(l)) out.insert(m);
  if (opt.process_output && model.Has("lm_head.weight")) out.insert("lm_head");
  return out;
}

// Σ x² per column in float, row after row, as collect_imatrix accumulates; then the token count.
void Accumulate(io::ImatrixEntry& e, const float* x, int T, int in) {
  if (e.sums.empty()) {
    e.sums.assign(size_t(in), 0.0f);
    e.counts.assign(1, 0);
  }
  float* acc = e.sums.data();
  for (int t = 0; t < T; ++t) {
    const float* r = x + size_t(t) * in;
    for (int j = 0; j < in; ++j) acc[j] += r[j] * r[j];
  }
  e.counts[0] += T;
}

// The matrix to continue from: each collected entry must have the module's input width and one matrix.
StatusOr<io::Imatrix> StartFrom(const Model& model, const std::set<std::string>& wanted, const io::Imatrix& start) {
  for (const std::string& module : wanted) {
    const auto it = start.entries.find(ImatrixName(module));
    if (it == start.entries.end()) continue;
    const int64_t in = model.W(WeightKey(model, module)).cols();
    if (int64_t(it->second.sums.size()) != in || it->second.counts.size() != 1)
      return Status::Errorf("imatrix: the --in-file entry {} has {} sums in {} matrices; the model's input has {} "
                            "columns (an imatrix of another model?)", it->first, it->second.sums.size(),
                            it->second.counts.size(), in);
  }
  if (start.legacy)
    return Status::Errorf("imatrix: a legacy matrix must be merged (MergeImatrix) before collecting on it");
  return start;
}

Status CheckFinite(const io::Imatrix& m) {
  for (const auto& [name, e] : m.entries)
    for (float v : e.sums)
      if (!std::isfinite(v))
        return Status::Errorf("imatrix: non-finite sum of squares for {} (the model's activations overflow)", name);
  return Status::Ok();
}

// Quantizes one [rows, cols] weight with a GGUF block codec and per-column importance qw ([cols] or null),
// in place (dequantized values stored back). A partial last block is padded with zero weights of zero
// importance, which is what the codec's own zero padding means for an unweighted fit.
Status WeightedModule(Tensor& w, const BlockCodec& codec, const Scheme& scheme, const float* qw) {
  const int64_t rows = w.rows(), cols = w.cols(), bs = codec.default_block_size();
  const int64_t padded = (cols + bs - 1) / bs * bs;
  std::vector<float> x(size_t(rows * padded), 0.0f), imp;
  for (int64_t r = 0; r < rows; ++r) std::copy_n(w.data.data() + r * cols, cols, x.data() + r * padded);
  BlockOptions opt = scheme.block;
  if (qw) {
    imp.assign(size_t(padded), 0.0f);
    std::copy_n(qw, cols, imp.data());
    opt.importance = imp.data();
  }
  QL_ASSIGN_OR_RETURN(PackedBlocks packed, codec.Quantize(x.data(), rows, padded, opt));
  codec.Dequantize(packed, x.data());
  for (int64_t r = 0; r < rows; ++r) std::copy_n(x.data() + r * padded, cols, w.data.data() + r * cols);
  return Status::Ok();
}

// One module: GGUF block types get the importance-weighted fit; fp16/bf16 (nothing to weight) are rounded;
// any other scheme is refused, since only ggml's quantizers define how importances choose the codes.
Status QuantizeModule(Model& model, const std::string& module, const std::string& scheme_text,
                      const std::map<std::string, std::vector<float>>& importance) {
  QL_ASSIGN_OR_RETURN(Scheme scheme, ParseScheme(scheme_text));
  if (!scheme.is_block && (scheme.format == "fp16" || scheme.format == "bf16"))
    return RtnModule(model, module, scheme_text);
  if (!scheme.is_block || GgmlTypeIdOfCodec(scheme.format) < 0)
    return Status::Errorf("imatrix: {} has scheme {}, which has no importance-weighted quantizer (the imatrix "
                          "algorithm takes GGUF block types: q4_0 ... q8_0, q2_k ... q6_k, iq4_nl, iq4_xs; use rtn, "
                          "gptq or awq for {})", module, scheme_text, scheme_text);
  QL_ASSIGN_OR_RETURN(const BlockCodec* codec, FindBlockCodec(scheme.format));
  Tensor& w = model.W(WeightKey(model, module));
  const float* qw = nullptr;  // no entry: quantized without importance, as llama-quantize does
  if (auto it = importance.find(ImatrixName(module)); it != importance.end()) {
    if (int64_t(it->second.size()) != w.cols())
      return Status::Errorf("imatrix: {} has {} importances for {} input columns (an imatrix of another model?)",
                            ImatrixName(module), it->second.size(), w.cols());
    qw = it->second.data();
  }
  Status s = WeightedModule(w, *codec, scheme, qw);
  if (!s.ok()) return Status::Errorf("{}: {}", module, s.message());
  return Status::Ok();
}

Status ApplyImatrix(Model& model, const AlgorithmContext& ctx) {
  if (!ctx.module_schemes) return Status::Ok();
  QL_ASSIGN_OR_RETURN(io::Imatrix m, CellImatrix(model, ctx));  // all collected before any rounding
  const auto importance = io::ImatrixImportances(m);
  for (const auto& [module, scheme] : *ctx.module_schemes)
    QL_RETURN_IF_ERROR(QuantizeModule(model, module, scheme, importance));
  return Status::Ok();
}

}  // namespace

StatusOr<io::Imatrix> CellImatrix(const Model& model, const AlgorithmContext& ctx) {
  QL_ASSIGN_OR_RETURN(nlohmann::json params, Params(ImatrixAlgorithm(), ctx));
  const std::string file = params["file"].get<std::string>();
  if (!file.empty()) return io::ReadImatrix(file);
  QL_RETURN_IF_ERROR(NeedCalibration(ctx, "imatrix"));
  ImatrixCollectOptions opt;
  if (ctx.module_schemes)
    for (const auto& [module, scheme] : *ctx.module_schemes) opt.modules.push_back(module);
  opt.datasets = {ctx.calibration->source};
  return CollectImatrix(model, ctx.calibration->windows, opt);
}

std::string ImatrixName(const std::string& module) {
  if (module == "lm_head") return "output.weight";
  return io::HfToGgufName(module + ".weight");
}

StatusOr<std::vector<std::vector<int>>> ImatrixChunks(const Model& model, const std::string& text,
                                                      const std::string& source, int ctx, int chunks) {
  if (!model.tokenizer) return Status::Errorf("imatrix: the model has no tokenizer to read {}", source);
  if (ctx < 1) return Status::Errorf("imatrix: --ctx {} must be positive", ctx);
  if (model.config.max_seq_len > 0 && ctx > model.config.max_seq_len)
    return Status::Errorf("imatrix: --ctx {} exceeds the model's max_seq_len {}", ctx, model.config.max_seq_len);
  const int bos = model.tokenizer->bos_id();
  const std::vector<int> tokens = model.tokenizer->Encode(text, /*add_bos=*/bos >= 0);
  if (int64_t(tokens.size()) < 2 * int64_t(ctx))
    return Status::Errorf("imatrix: {} has {} tokens; a context of {} needs at least {} (give a longer text or a "
                          "smaller --ctx)", source, tokens.size(), ctx, 2 * int64_t(ctx));
  int64_t n = int64_t(tokens.size()) / ctx;
  if (chunks >= 0) n = std::min<int64_t>(n, chunks);
  std::vector<std::vector<int>> out;
  for (int64_t i = 0; i < n; ++i) {
    out.emplace_back(tokens.begin() + i * ctx, tokens.begin() + (i + 1) * ctx);
    if (bos >= 0) out.back()[0] = bos;
  }
  return out;
}

StatusOr<io::Imatrix> CollectImatrix(const Model& model, const std::vector<std::vector<int>>& windows,
                                     const ImatrixCollectOptions& opt) {
  const std::set<std::string> wanted = CollectedModules(model, opt);
  io::Imatrix m;
  if (opt.start) {
    QL_ASSIGN_OR_RETURN(m, StartFrom(model, wanted, *opt.start));
  }
  m.datasets.insert(m.datasets.end(), opt.datasets.begin(), opt.datasets.end());
  ForwardHooks hooks;
  if (!wanted.count("lm_head")) hooks.stop_after_layer = model.config.n_layers - 1;
  hooks.linear_input = [&](std::string_view path, float* x, int T, int in) {
    if (wanted.count(std::string(path))) Accumulate(m.entries[ImatrixName(std::string(path))], x, T, in);
  };
  std::vector<float> logits;  // [T, vocab]
  int64_t max_len = 0;
  for (const std::vector<int>& w : windows) {
    if (int(w.size()) < kMinBatchTokens) continue;
    max_len = std::max<int64_t>(max_len, int64_t(w.size()));
    logits.resize(w.size() * size_t(model.config.vocab_size));
    QL_RETURN_IF_ERROR(ForwardWindow(model, w, logits.data(), &hooks));
  }
  QL_RETURN_IF_ERROR(CheckFinite(m));
  m.chunk_size = opt.chunk_size > 0 ? opt.chunk_size : int32_t(max_len);
  int64_t max_count = 0;
  for (const auto& [name, e] : m.entries) max_count = std::max(max_count, e.counts[0]);
  m.chunk_count = m.chunk_size > 0 ? int32_t(max_count / m.chunk_size) : 0;
  return m;
}

AlgorithmInfo ImatrixAlgorithm() {
  AlgorithmInfo a;
  a.name = "imatrix";
  a.description = "llama.cpp importance matrix: GGUF block types fitted with per-column mean x^2 weights "
                  "(file= a llama-imatrix / quantlab imatrix file, else collected from the calibration text)";
  a.defaults = {{"file", ""}};
  a.apply = ApplyImatrix;
  a.needs_calibration_for = [](const nlohmann::json& p) {
    return !p.contains("file") || !p["file"].is_string() || p["file"].get<std::string>().empty();
  };
  a.changes_only_targets = true;
  return a;
}

}  // namespace ql
