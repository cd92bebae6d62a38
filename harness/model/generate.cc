// Greedy generation over ForwardCached (harness/model/forward.cc): prefill the prompt once, then one
// token per step with the KV cache. Token ids only; decoding to text is the caller's.
#include "harness/model/generate.h"

#include <algorithm>

namespace ql {

StatusOr<std::vector<int>> GenerateGreedy(const Model& model, std::vector<int> prompt, int steps) {
  const ModelConfig& c = model.config;
  if (prompt.empty()) return Status::Error("generate: empty prompt (start with at least the BOS token)");
  if (steps < 0) return Status::Errorf("generate: steps = {} must be >= 0", steps);
  const int64_t total = int64_t(prompt.size()) + steps;
  if (c.max_seq_len > 0 && total > c.max_seq_len)
    return Status::Errorf("generate: prompt ({} tokens) + {} steps exceeds max_seq_len {}", prompt.size(), steps,
                          c.max_seq_len);
  KvCache cache = KvCache::ForModel(c, int(total));
  std::vector<float> logits(c.vocab_size);
  std::vector<int> out = std::move(prompt);
  std::span<const int> pending(out.data(), out.size());
  for (int s = 0; s < steps; ++s) {
    QL_RETURN_IF_ERROR(ForwardCached(model, pending, &cache, logits.data()));
    const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    if (next == c.eos_id) break;
    pending = std::span<const int>(&out.back(), 1);
  }
  return out;
}

}  // namespace ql
