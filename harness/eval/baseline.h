// The reference model's per-token results over a protocol's windows (NLL, argmax, and what KLD
// needs), computed once and cached in memory and optionally on disk. Not the quantized side:
// harness/eval/evaluator.h compares a model against a Baseline.
//
// What KLD needs (DESIGN "KLD needs the baseline's distribution"): two stores, chosen per run.
//  * full   (top_k == 0): every log-probability of every scored token, float32, [n, vocab]. KLD is
//           exact up to float32 rounding of log p (measured on stories260K int8:channel: at most
//           1.2e-7 nats per token against a double recomputation; a model compared with itself gives
//           exactly 0 because both sides round the same way). Used when n·vocab <= full_budget
//           (stories260K: 512 vocab → 2 KiB per token).
//  * top-k  (top_k > 0): the k most likely tokens' ids and log-probs plus, implicitly, the tail mass
//           1 − Σ p_top. KLD merges the tail into one outcome (metrics.h KlDivergenceTopK): a lower
//           bound of the exact KLD, never above it; the gap is measured in eval_baseline_test
//           (stories260K, int4:channel, mean KLD 0.268: top-8 −12%, top-32 −1.4%, top-128 −0.006%).
//           The gap grows with how much mass the quantized model moves inside the tail; it is
//           model-dependent and must be re-measured (compare with --top-k 0) on a new model.
//  NLL, Δp and top-1 are exact in both stores (the correct token's NLL and the argmax are kept).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/protocol.h"
#include "harness/model/model.h"
#include "harness/util/progress.h"
#include "kernels/status.h"

namespace ql {

// Weights the baseline runs with: every tensor rounded to BF16 (round to nearest even, the usual
// reference for quantization papers and llama.cpp's f16/bf16 GGUFs), or left in FP32.
// kBf16Compute: BF16 weights AND BF16 GEMM inputs with FP32 accumulation (Model::matmul = kBf16),
// what BF16 deployments compute; kBf16 rounds the weights only and multiplies in FP32.
enum class BaselinePrecision { kBf16, kFp32, kBf16Compute };
std::string_view PrecisionName(BaselinePrecision p);  // "bf16", "fp32", "bf16-compute"
StatusOr<BaselinePrecision> ParsePrecision(std::string_view name);

// `model` (a copy, or moved in) with every weight rounded to `p` (kernels/half.h F32ToBf16 for bf16 and
// bf16-compute) and, for bf16-compute, matmul = MatmulPrecision::kBf16.
Model WithPrecision(const Model& model, BaselinePrecision p);
// The same, rounding `model`'s own weights in place (no 540 MB copy for a 135M model).
Model WithPrecision(Model&& model, BaselinePrecision p);

struct BaselineOptions {
  BaselinePrecision precision = BaselinePrecision::kBf16;
  int top_k = 0;                          // 0 = auto: full when it fits full_budget, else kAutoTopK
  int64_t full_budget = int64_t(1) << 26; // float32 log-probs kept in full at most (256 MiB)
  static constexpr int kAutoTopK = 64;
  bool force_full = false;                // keep full log-probs whatever the size
  // Baseline::p (exp of the stored log-probs, in double) is cached when it needs at most this many bytes
  // (128 MiB: the default model's 66.6 MB and any top-k store; not SmolLM2's 400 MB at 1016 tokens × 49152,
  // which would add 1.5× its BF16 weights to a sweep's peak memory for ~5% of its CPU).
  int64_t probability_cache_bytes = int64_t(1) << 27;
  std::string cache_dir;                  // "" = in-memory cache only
  ProgressFn progress;                    // windows done, when the baseline is computed (optional)
};

struct Baseline {
  std::string key;       // the cache key this baseline answers (see BaselineKey)
  std::string protocol;  // ProtocolSpec::Canonical()
  BaselinePrecision precision = BaselinePrecision::kBf16;
  int vocab = 0;
  int top_k = 0;                  // 0: full log-probs stored
  std::vector<double> nll;        // [n] −log p_base(correct token)
  std::vector<int32_t> top1;      // [n] argmax of the base logits
  std::vector<float> logp;        // [n, vocab] when top_k == 0
  std::vector<int32_t> top_idx;   // [n, top_k] ids, most likely first
  std::vector<float> top_logp;    // [n, top_k]
  // Derived, not on disk (CacheProbabilities): exp of every stored log-prob in double, as KLD reads
  // them — [n, vocab] (top_k == 0) or [n, top_k] — and for top-k each row's mass Σ_top p [n]. Every
  // compared model's KLD then takes them instead of recomputing the same exps (bitwise the same
  // values). Empty: not cached, KLD computes them.
  std::vector<double> p;          // [n, vocab] or [n, top_k]
  std::vector<double> top_mass;   // [n] when top_k > 0 and p is cached
  double seconds = 0;             // forward + bookkeeping time when computed (0 when loaded)

  int64_t n() const { return int64_t(nll.size()); }
  size_t bytes() const;  // memory held by the arrays (the cache included)
  size_t probability_cache_bytes() const { return (size_t(n()) * size_t(top_k == 0 ? vocab : top_k) + (top_k ? size_t(n()) : 0)) * sizeof(double); }
};

// Fills b->p (and b->top_mass) when their bytes (Baseline::probability_cache_bytes: twice the stored
// log-probs', as doubles) are at most max_bytes; else leaves them empty. Rows in parallel; each value
// is the one exp of its log-prob, so the result is the same whatever the threads.
void CacheProbabilities(Baseline* b, int64_t max_bytes);

// Runs `reference` (already at the baseline precision) over the windows. top_k as in Baseline.
// progress (optional): called after each window.
StatusOr<Baseline> ComputeBaseline(const Model& reference, const std::vector<Window>& windows, int top_k,
                                   const ProgressFn& progress = {});

// Identity of a model for the cache: "path|size|mtime" of its source file when it has one, plus
// "weights:<hash of every tensor's name, shape and bytes>" unless the model is large (> 2^26
// values) and has a file (then a model edited in memory must not be passed as the original).
std::string ModelIdentity(const Model& model);
uint64_t Fnv1a64(const void* data, size_t size, uint64_t h = 0xcbf29ce484222325ull);
std::string TextHash(std::string_view text);  // 16 hex digits of FNV-1a 64

// The full cache key: model identity, text hash, protocol, precision, KLD store, and a hash of the
// windows themselves (so a different tokenizer or BOS id can never hit a stale entry).
std::string BaselineKey(const std::string& model_id, const std::string& text_hash, const ProtocolSpec& protocol,
                        const std::vector<Window>& windows, BaselinePrecision precision, int top_k);

// In-memory cache of baselines keyed by BaselineKey, with an optional directory of files
// (<dir>/<16 hex of the key's hash>.qlbase; the key is stored inside and checked on load).
class BaselineCache {
 public:
  explicit BaselineCache(std::string dir = "") : dir_(std::move(dir)) {}
  // `model` is the original (any precision); the cache rounds it to options.precision itself.
  StatusOr<std::shared_ptr<const Baseline>> GetOrCompute(const Model& model, const std::string& text_hash,
                                                         const ProtocolSpec& protocol,
                                                         const std::vector<Window>& windows,
                                                         const BaselineOptions& options);
  int memory_hits() const { return memory_hits_; }
  int disk_hits() const { return disk_hits_; }
  int computed() const { return computed_; }

 private:
  std::string dir_;
  std::map<std::string, std::shared_ptr<const Baseline>> entries_;
  int memory_hits_ = 0, disk_hits_ = 0, computed_ = 0;
};

// On-disk form (little-endian):
//   "QLBASE01" | u32 key_len | key bytes | i64 n | i32 vocab | i32 top_k | i32 precision
//   | f64 nll[n] | i32 top1[n] | (top_k == 0: f32 logp[n·vocab]) or (i32 top_idx[n·k] | f32 top_logp[n·k])
Status SaveBaseline(const Baseline& b, const std::string& path);
StatusOr<Baseline> LoadBaseline(const std::string& path);

}  // namespace ql
