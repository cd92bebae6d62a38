// Incremental decoding with a KV cache, and greedy generation on top of it. Token ids in, token ids
// out: turning text into ids and back is the tokenizer's business (harness/tokenizer/tokenizer.h).
#pragma once

#include <span>
#include <vector>

#include "harness/model/forward.h"
#include "harness/model/model.h"

namespace ql {

// Keys and values of every layer for positions 0..length-1, after RoPE.
struct KvCache {
  int capacity = 0;  // positions the buffers hold
  int length = 0;    // positions filled so far
  std::vector<std::vector<float>> k, v;  // [n_layers][capacity, n_kv_heads * head_dim]
  static KvCache ForModel(const ModelConfig& config, int capacity);
};

// Runs `tokens` at absolute positions cache->length .. cache->length + n - 1 attending to everything
// cached before them, appends their keys/values to the cache and writes the logits of the LAST token
// only, last_logits: [vocab]. Same arithmetic as ForwardWindow (defined in forward.cc).
Status ForwardCached(const Model& model, std::span<const int> tokens, KvCache* cache, float* last_logits,
                     const ForwardHooks* hooks = nullptr);

// As ForwardCached, but writes the logits of EVERY new token, logits: [tokens.size(), vocab]: scoring
// several continuations of one cached prefix (harness/eval/tasks.h) needs all of them.
Status ForwardCachedAll(const Model& model, std::span<const int> tokens, KvCache* cache, float* logits,
                        const ForwardHooks* hooks = nullptr);

// Greedy (argmax, first index on ties) continuation of `prompt` (>= 1 token, e.g. {BOS}) by `steps`
// new tokens. Returns prompt followed by the new tokens; stops early after emitting config.eos_id.
// The model runs prompt.size() + steps - 1 positions (the last new token is never fed back), as
// llama2.c's run.c counts `steps`. Errors: empty prompt, bad token id, more positions than
// config.max_seq_len (when > 0).
StatusOr<std::vector<int>> GenerateGreedy(const Model& model, std::vector<int> prompt, int steps);

}  // namespace ql
