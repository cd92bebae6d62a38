// Body reuse: the residual stream entering the final norm (the LM head's side of the model starts there)
// of every evaluation window, kept from one cell's evaluation, so that a later cell whose embedding and
// blocks compute bitwise the same runs only the final norm, the LM head and the scoring. Not the decision
// which cells have the same body (harness/sweep/cell_eval.h CellBodyKey) and not prefix reuse (prefix.h,
// which starts from the reference's streams).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/eval/evaluator.h"

namespace ql {

// 128 bits naming what a body computes (two independent 64-bit hashes of the same bytes).
struct BodyKey {
  uint64_t a = 0, b = 0;
  bool operator==(const BodyKey&) const = default;
};

// Builds a BodyKey from bytes, 8 at a time (~4 GB/s): word-wise multiply–xor-shift in two streams with
// different constants, each byte count and boundary fed in, so "ab"+"c" and "a"+"bc" differ.
class BodyKeyBuilder {
 public:
  void Add(const void* data, size_t bytes);
  void Add(std::string_view s) { Add(s.data(), s.size()); }
  void AddFloats(const std::vector<float>& v) { Add(v.data(), v.size() * sizeof(float)); }
  BodyKey Key() const;

 private:
  uint64_t a_ = 0x6a09e667f3bcc908ull, b_ = 0xbb67ae8584caa73bull;
};

// One cell's bodies: the stream entering the final norm of every window and that cell's per-layer errors
// (the same body gives the same ones), kept for the next cell with the same key.
struct KeptBody {
  BodyKey key;
  std::string owner;                  // id of the cell that computed it
  std::vector<std::vector<float>> h;  // [windows][T_w * dim]
  std::vector<SignalError> layers;    // [n_layers]
  size_t bytes() const;
};

// The memory a KeptBody of `windows` takes: Σ T_w · dim floats.
size_t BodyBytes(const ModelConfig& c, const std::vector<Window>& windows);

// The records of `model` on `windows` when its body is body's: every window from the final norm on
// (ForwardFromBlock at n_layers) with `hooks` (the LM head's input hook still applies), scored as
// EvaluateCell scores it, so bitwise EvaluateCell's records for such a model. layers = body.layers.
StatusOr<CellEvaluation> EvaluateHeadOnBody(const Model& model, const std::vector<Window>& windows,
                                            const Baseline& base, const ForwardHooks* hooks, const KeptBody& body,
                                            const ProgressFn& progress);

}  // namespace ql
