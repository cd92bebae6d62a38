// Greedy generation over ForwardCached (harness/model/forward.cc): prefill the prompt once, then one
// token per step with the KV cache. Token ids only; decoding to text is the caller's.
#include "harness/model/generate.h"

#include <algorithm>

namespace ql {

StatusOr<std::vector<int>> GenerateGreedy(const Model& model, std::vector<int> prompt, int steps) {
  const ModelConfig& c = model.config;
  if (prompt.empty()) return Status::Error("generate: empty prompt (start with at least the BOS token)");
  if (steps < 0) return Status::Errorf("generate: steps = {} must be >= 0", steps);
  // Positions run through the model: the prompt and every new token but the last (never fed back).
  const int64_t positions = int64_t(prompt.size()) + std::max(steps - 1, 0);
  if (c.max_seq_len > 0 && positions > c.max_seq_len)
    return Status::Errorf("generate: prompt ({} tokens) + {} steps needs {} positions, max_seq_len is {}",
                          prompt.size(), steps, positions, c.max_seq_len);
  KvCache cache = KvCache::ForModel(c, int(positions));
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
